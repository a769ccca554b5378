/*
 * tlsio: a TLS client as a filter over OpenSSL memory BIOs, for sockets
 * that an event loop owns (smtp_conn.c feeds it from a uv stream).
 *
 * Owns: one SSL object with its two BIO_s_mem buffers (SSL_set_bio):
 * ciphertext read from the network goes in with rq_tlsio_feed, and what
 * OpenSSL wants sent comes out with rq_tlsio_out_take. No I/O here, so the
 * caller decides when and how bytes travel, and unit tests can pair it
 * with an in-memory server.
 *
 * Implements RFC 8446 / RFC 5246 through OpenSSL 3 (TLS 1.2 or newer),
 * RFC 6066 SNI, and RFC 6125 server identity checks (X509_VERIFY_PARAM
 * host or IP), used for STARTTLS (RFC 3207) and implicit TLS (RFC 8314).
 *
 * Ownership: the SSL_CTX is the caller's and must outlive every rq_tlsio
 * made from it (OpenSSL counts references, so freeing it early is safe,
 * but the cache in smtp.c keeps it for the transport's life anyway).
 */
#ifndef RQ_TLSIO_H
#define RQ_TLSIO_H

#include <stddef.h>
#include <sys/types.h>

#include <openssl/ssl.h>

/* XX(name, code, message): what went wrong, so callers can classify it. */
#define RQ_TLSIO_ERRNO_MAP(XX)                                                               \
  XX(HANDSHAKE, -1, "the TLS handshake failed")                                              \
  XX(CERT, -2, "the server's certificate failed verification")                              \
  XX(MISMATCH, -3, "no TLS version or cipher in common, or the server does not speak TLS")   \
  XX(LOCAL, -4, "the local TLS setup failed")                                                \
  XX(IO, -5, "a TLS record could not be read or written")                                    \
  XX(PIN, -6, "the server's public key is not the pinned one")

enum rq_tlsio_errno {
#define XX(name, code, msg) RQ_TLSIO_E##name = (code),
  RQ_TLSIO_ERRNO_MAP(XX)
#undef XX
};

#define RQ_TLSIO_AGAIN 1 /* more input from the network is needed */
#define RQ_TLSIO_EOF (-100) /* rq_tlsio_read: the server sent close_notify */

struct rq_tlsio;

/* A client context: TLS 1.2 or newer, the system's trust store
 * (SSL_CTX_set_default_verify_paths) or ca_file instead when given.
 * Returns NULL with a sentence in err when the CA file cannot be loaded. */
SSL_CTX *rq_tlsio_ctx_new(const char *ca_file, char *err, size_t errlen);

/* One session towards host (name or IP literal, brackets allowed). With
 * verify: SSL_VERIFY_PEER and the name (X509_VERIFY_PARAM_set1_host) or
 * address (set1_ip_asc) must match; without, any certificate is taken.
 * SNI is sent for names, never for addresses (RFC 6066 section 3).
 * Returns NULL with a sentence in err. */
struct rq_tlsio *rq_tlsio_new(SSL_CTX *ctx, const char *host, int verify, char *err, size_t errlen);
void rq_tlsio_free(struct rq_tlsio *t);

/* Trusts the server by its key instead of its certificate chain: pins is
 * one or more comma-separated "sha256//BASE64" (SHA-256 of the DER
 * SubjectPublicKeyInfo, curl's --pinnedpubkey form). Call before the
 * first rq_tlsio_handshake; the session then skips chain and name checks
 * (self-signed is fine) and the handshake ends in RQ_TLSIO_EPIN, before
 * any application data can be written, when the key is none of them.
 * Returns 0, or -1 when pins is not in that form. NULL or "": no pin. */
int rq_tlsio_set_pins(struct rq_tlsio *t, const char *pins);

/* 1 when pins is a valid pin list (see rq_tlsio_set_pins). */
int rq_tlsio_pins_valid(const char *pins);

/* The pin of the server's key ("sha256//BASE64", 52 characters), after
 * the handshake, or after it failed with RQ_TLSIO_EPIN; "" when no
 * certificate was seen. cap >= 53. */
void rq_tlsio_peer_pin(const struct rq_tlsio *t, char *out, size_t cap);

/* The server's certificate (borrowed, valid while t lives), or NULL. */
X509 *rq_tlsio_peer_cert(const struct rq_tlsio *t);

/* The pin of a certificate's key; 0, or -1 (cap >= 53). */
int rq_tlsio_cert_pin(X509 *cert, char *out, size_t cap);

/* Ciphertext from the network. Returns 0, or RQ_TLSIO_EIO. */
int rq_tlsio_feed(struct rq_tlsio *t, const void *data, size_t len);

/* Advances the handshake: 0 when complete, RQ_TLSIO_AGAIN when it waits
 * for the server, or a negative RQ_TLSIO_E* (rq_tlsio_errmsg says why).
 * Send rq_tlsio_out_take's bytes after every call. */
int rq_tlsio_handshake(struct rq_tlsio *t);

/* Decrypted bytes into buf: > 0 bytes, 0 when none are ready yet,
 * RQ_TLSIO_EOF after the server's close_notify, or a negative
 * RQ_TLSIO_E*. Call until it returns <= 0 after each feed. */
ssize_t rq_tlsio_read(struct rq_tlsio *t, void *buf, size_t cap);

/* Encrypts all of data (memory BIOs never refuse). 0 or RQ_TLSIO_EIO. */
int rq_tlsio_write(struct rq_tlsio *t, const void *data, size_t len);

/* Queues our close_notify (RFC 8446 6.1). */
void rq_tlsio_shutdown(struct rq_tlsio *t);

/* Ciphertext waiting to be sent, and taking it out (up to cap bytes;
 * returns how many). */
size_t rq_tlsio_out_pending(const struct rq_tlsio *t);
size_t rq_tlsio_out_take(struct rq_tlsio *t, void *buf, size_t cap);

/* The last failure as a sentence ("certificate verify failed: self-signed
 * certificate"); "" when none. */
const char *rq_tlsio_errmsg(const struct rq_tlsio *t);

/* "TLSv1.3", after the handshake. */
const char *rq_tlsio_version(const struct rq_tlsio *t);

/* After the handshake: "TLSv1.3 / TLS_AES_256_GCM_SHA384" into out, and
 * the certificate check's verdict (X509_V_OK, or why the chain would not
 * verify, whether or not it was required). For reports. */
long rq_tlsio_describe(const struct rq_tlsio *t, char *out, size_t cap);

#endif
