/* tlsio: TLS client over memory BIOs. See tlsio.h. */
#include "tlsio.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "util.h"

struct rq_tlsio {
  SSL *ssl;
  BIO *rbio; /* network -> SSL (we write, OpenSSL reads) */
  BIO *wbio; /* SSL -> network (OpenSSL writes, we read) */
  int verify;
  char *pins; /* NULL: trust by certificate chain (or not at all) */
  char errmsg[256];
};

#define PIN_PREFIX "sha256//"
#define PIN_B64_LEN 44 /* base64 of 32 bytes */

SSL_CTX *rq_tlsio_ctx_new(const char *ca_file, char *err, size_t errlen) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    snprintf(err, errlen, "OpenSSL could not create a TLS context.");
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  /* Idle pooled connections need not hold 34 KB of record buffers each. */
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  int ok = ca_file && *ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                               : SSL_CTX_set_default_verify_paths(ctx);
  if (ok != 1) {
    unsigned long e = ERR_peek_last_error();
    const char *why = e ? ERR_reason_error_string(e) : NULL;
    snprintf(err, errlen, "The CA certificates %s%s could not be loaded%s%s.", ca_file ? "in " : "",
             ca_file ? ca_file : "of the system", why ? ": " : "", why ? why : "");
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

/* host without brackets into buf; returns 1 when it is an IP literal. */
static int strip_host(const char *host, char *buf, size_t cap) {
  size_t n = strlen(host);
  if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
    host++;
    n -= 2;
  }
  if (n >= cap) n = cap - 1;
  memcpy(buf, host, n);
  buf[n] = '\0';
  unsigned char addr[16];
  return inet_pton(AF_INET, buf, addr) == 1 || inet_pton(AF_INET6, buf, addr) == 1;
}

struct rq_tlsio *rq_tlsio_new(SSL_CTX *ctx, const char *host, int verify, char *err, size_t errlen) {
  char name[256];
  int is_ip = strip_host(host, name, sizeof name);
  struct rq_tlsio *t = rq_xcalloc(1, sizeof *t);
  t->verify = verify;
  ERR_clear_error();
  t->ssl = SSL_new(ctx);
  t->rbio = BIO_new(BIO_s_mem());
  t->wbio = BIO_new(BIO_s_mem());
  if (!t->ssl || !t->rbio || !t->wbio) {
    snprintf(err, errlen, "OpenSSL could not create a TLS session.");
    goto fail;
  }
  /* An empty input buffer means "wait for the network", not end of file. */
  BIO_set_mem_eof_return(t->rbio, -1);
  SSL_set_bio(t->ssl, t->rbio, t->wbio); /* the SSL owns both BIOs from here */
  SSL_set_connect_state(t->ssl);
  if (!is_ip && SSL_set_tlsext_host_name(t->ssl, name) != 1) {
    snprintf(err, errlen, "The server name '%s' cannot be sent in TLS (SNI).", name);
    goto fail_ssl;
  }
  if (verify) {
    X509_VERIFY_PARAM *param = SSL_get0_param(t->ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name) : X509_VERIFY_PARAM_set1_host(param, name, 0);
    if (ok != 1) {
      snprintf(err, errlen, "The server name '%s' cannot be checked against a certificate.", name);
      goto fail_ssl;
    }
    SSL_set_verify(t->ssl, SSL_VERIFY_PEER, NULL);
  } else {
    SSL_set_verify(t->ssl, SSL_VERIFY_NONE, NULL);
  }
  return t;
fail:
  BIO_free(t->rbio);
  BIO_free(t->wbio);
  SSL_free(t->ssl);
  free(t);
  ERR_clear_error();
  return NULL;
fail_ssl:
  SSL_free(t->ssl); /* frees the BIOs too */
  free(t);
  ERR_clear_error();
  return NULL;
}

void rq_tlsio_free(struct rq_tlsio *t) {
  if (!t) return;
  SSL_free(t->ssl);
  free(t->pins);
  free(t);
}

/* ---- key pinning ------------------------------------------------------------ */

/* Calls fn on each trimmed item of a comma list; stops at a nonzero return. */
static int each_pin(const char *pins, int (*fn)(const char *p, size_t n, void *arg), void *arg) {
  const char *q = pins;
  for (;;) {
    const char *comma = strchr(q, ',');
    size_t n = comma ? (size_t)(comma - q) : strlen(q);
    while (n && (*q == ' ' || *q == '\t')) q++, n--;
    while (n && (q[n - 1] == ' ' || q[n - 1] == '\t')) n--;
    int r = fn(q, n, arg);
    if (r) return r;
    if (!comma) return 0;
    q = comma + 1;
  }
}

static int pin_bad(const char *p, size_t n, void *arg) {
  (void)arg;
  size_t pl = sizeof PIN_PREFIX - 1;
  if (n != pl + PIN_B64_LEN || strncmp(p, PIN_PREFIX, pl) != 0) return 1;
  unsigned char raw[40];
  if (EVP_DecodeBlock(raw, (const unsigned char *)p + pl, PIN_B64_LEN) != 33 || p[n - 1] != '=') return 1;
  return 0;
}

int rq_tlsio_pins_valid(const char *pins) {
  return pins && *pins && each_pin(pins, pin_bad, NULL) == 0;
}

int rq_tlsio_cert_pin(X509 *cert, char *out, size_t cap) {
  unsigned char *der = NULL, md[32];
  unsigned int mdlen = 0;
  if (cap) out[0] = '\0';
  EVP_PKEY *key = cert ? X509_get0_pubkey(cert) : NULL;
  int len = key ? i2d_PUBKEY(key, &der) : -1;
  if (len <= 0 || cap < sizeof PIN_PREFIX + PIN_B64_LEN) {
    OPENSSL_free(der);
    ERR_clear_error();
    return -1;
  }
  int ok = EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL);
  OPENSSL_free(der);
  if (ok != 1 || mdlen != 32) return -1;
  memcpy(out, PIN_PREFIX, sizeof PIN_PREFIX - 1);
  EVP_EncodeBlock((unsigned char *)out + sizeof PIN_PREFIX - 1, md, 32);
  return 0;
}

X509 *rq_tlsio_peer_cert(const struct rq_tlsio *t) {
  return SSL_get0_peer_certificate(t->ssl);
}

void rq_tlsio_peer_pin(const struct rq_tlsio *t, char *out, size_t cap) {
  if (rq_tlsio_cert_pin(rq_tlsio_peer_cert(t), out, cap) != 0 && cap) out[0] = '\0';
}

int rq_tlsio_set_pins(struct rq_tlsio *t, const char *pins) {
  if (!pins || !*pins) return 0;
  if (!rq_tlsio_pins_valid(pins)) return -1;
  free(t->pins);
  t->pins = rq_xstrdup(pins);
  t->verify = 0; /* the key is the trust anchor: no chain, no name */
  SSL_set_verify(t->ssl, SSL_VERIFY_NONE, NULL);
  return 0;
}

static int pin_match(const char *p, size_t n, void *arg) {
  const char *have = arg;
  return n == strlen(have) && CRYPTO_memcmp(p, have, n) == 0;
}

/* 0 when the server's key is one of the pins. */
static int check_pin(struct rq_tlsio *t) {
  char have[64];
  rq_tlsio_peer_pin(t, have, sizeof have);
  if (have[0] && each_pin(t->pins, pin_match, have)) return 0;
  snprintf(t->errmsg, sizeof t->errmsg, "%s",
           have[0] ? "its public key is not in smtp_tls_pin"
                   : "it sent no certificate to check");
  return RQ_TLSIO_EPIN;
}

int rq_tlsio_feed(struct rq_tlsio *t, const void *data, size_t len) {
  size_t done = 0;
  if (len == 0) return 0;
  if (BIO_write_ex(t->rbio, data, len, &done) != 1 || done != len) {
    snprintf(t->errmsg, sizeof t->errmsg, "out of memory buffering TLS records");
    return RQ_TLSIO_EIO;
  }
  return 0;
}

/* Handshake failures that no retry fixes: the two sides share no protocol
 * or cipher, or the server is not speaking TLS at all. */
static int mismatch_reason(int reason) {
  switch (reason) {
  case SSL_R_WRONG_VERSION_NUMBER:
  case SSL_R_UNSUPPORTED_PROTOCOL:
  case SSL_R_NO_PROTOCOLS_AVAILABLE:
  case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
  case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
  case SSL_R_NO_SHARED_CIPHER:
  case SSL_R_NO_CIPHERS_AVAILABLE:
  case SSL_R_PACKET_LENGTH_TOO_LONG:
  case SSL_R_HTTP_REQUEST:
  case SSL_R_RECORD_LENGTH_MISMATCH:
  case SSL_R_UNSUPPORTED_SSL_VERSION: return 1;
  default: return 0;
  }
}

/* Turns OpenSSL's error state after a failed call into one of ours. */
static int failure(struct rq_tlsio *t, int ssl_err, int in_handshake) {
  unsigned long e = ERR_peek_last_error();
  long vr = SSL_get_verify_result(t->ssl);
  int code = in_handshake ? RQ_TLSIO_EHANDSHAKE : RQ_TLSIO_EIO;
  if (t->verify && vr != X509_V_OK) {
    snprintf(t->errmsg, sizeof t->errmsg, "certificate verify failed: %s", X509_verify_cert_error_string(vr));
    code = RQ_TLSIO_ECERT;
  } else if (e) {
    const char *why = ERR_reason_error_string(e);
    snprintf(t->errmsg, sizeof t->errmsg, "%s", why ? why : "unknown OpenSSL error");
    if (ERR_GET_LIB(e) == ERR_LIB_SSL && mismatch_reason(ERR_GET_REASON(e))) code = RQ_TLSIO_EMISMATCH;
    if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) code = RQ_TLSIO_ECERT;
  } else if (ssl_err == SSL_ERROR_ZERO_RETURN || ssl_err == SSL_ERROR_SYSCALL) {
    snprintf(t->errmsg, sizeof t->errmsg, "the server ended the TLS session%s",
             in_handshake ? " during the handshake" : "");
  } else {
    snprintf(t->errmsg, sizeof t->errmsg, "OpenSSL error %d", ssl_err);
  }
  ERR_clear_error();
  return code;
}

int rq_tlsio_handshake(struct rq_tlsio *t) {
  ERR_clear_error();
  int rc = SSL_do_handshake(t->ssl);
  if (rc == 1) {
    if (t->pins) return check_pin(t);
    /* SSL_VERIFY_PEER fails the handshake itself; this is belt and braces. */
    if (t->verify && SSL_get_verify_result(t->ssl) != X509_V_OK) return failure(t, SSL_ERROR_SSL, 1);
    return 0;
  }
  int err = SSL_get_error(t->ssl, rc);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return RQ_TLSIO_AGAIN;
  return failure(t, err, 1);
}

ssize_t rq_tlsio_read(struct rq_tlsio *t, void *buf, size_t cap) {
  size_t got = 0;
  ERR_clear_error();
  if (SSL_read_ex(t->ssl, buf, cap, &got) == 1) return (ssize_t)got;
  int err = SSL_get_error(t->ssl, 0);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return 0;
  if (err == SSL_ERROR_ZERO_RETURN) return RQ_TLSIO_EOF;
  return failure(t, err, 0);
}

int rq_tlsio_write(struct rq_tlsio *t, const void *data, size_t len) {
  size_t done = 0;
  if (len == 0) return 0;
  ERR_clear_error();
  if (SSL_write_ex(t->ssl, data, len, &done) == 1 && done == len) return 0;
  return failure(t, SSL_get_error(t->ssl, 0), 0);
}

void rq_tlsio_shutdown(struct rq_tlsio *t) {
  ERR_clear_error();
  if (SSL_is_init_finished(t->ssl)) SSL_shutdown(t->ssl); /* queues close_notify; no wait for the reply */
  ERR_clear_error();
}

size_t rq_tlsio_out_pending(const struct rq_tlsio *t) {
  return BIO_ctrl_pending(t->wbio);
}

size_t rq_tlsio_out_take(struct rq_tlsio *t, void *buf, size_t cap) {
  size_t got = 0;
  if (cap == 0 || BIO_read_ex(t->wbio, buf, cap, &got) != 1) return 0;
  return got;
}

const char *rq_tlsio_errmsg(const struct rq_tlsio *t) {
  return t->errmsg;
}

const char *rq_tlsio_version(const struct rq_tlsio *t) {
  return SSL_get_version(t->ssl);
}

long rq_tlsio_describe(const struct rq_tlsio *t, char *out, size_t cap) {
  snprintf(out, cap, "%s / %s", SSL_get_version(t->ssl), SSL_get_cipher_name(t->ssl));
  return SSL_get_verify_result(t->ssl);
}
