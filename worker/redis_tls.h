/*
 * redis_tls: a Redis connection over TLS on the worker's loop, with the
 * same callback contract as a hiredis async context.
 *
 * Why not hiredis: the hiredis in Debian 12 (0.14) has no TLS (it came in
 * 1.0), and its async context reads and writes the socket itself, with
 * no hook to put a TLS layer between. So the bytes travel here instead:
 * a uv_tcp_t carries ciphertext, the worker's own OpenSSL-on-memory-BIO
 * layer (net/tlsio.c, the one SMTP uses) encrypts and decrypts, and
 * hiredis's redisReader parses the decrypted replies. Commands arrive
 * already formatted as RESP (rconn.c formats them), so nothing else of
 * hiredis is needed. Certificates and the host name (or IP) are verified
 * and SNI is sent (tlsio); a failure is reported with OpenSSL's reason.
 *
 * Callback contract, as hiredis: every rq_redis_tls_send that returned 0
 * has its callback run exactly once, with the reply (valid only during
 * the call) or NULL when the connection ends or is freed. `connected`
 * runs once (ok or not); after a failed `connected` or a `disconnected`
 * the connection frees itself and must not be used again. Replies that
 * arrive with no command waiting (pub/sub messages) go to `push`.
 *
 * Ownership: the caller owns the connection until it frees it
 * (rq_redis_tls_free) or one of the two end callbacks ran; the SSL_CTX is
 * the caller's and must outlive it.
 */
#ifndef RQ_REDIS_TLS_H
#define RQ_REDIS_TLS_H

#include <stddef.h>

#include <hiredis/async.h>
#include <openssl/ssl.h>
#include <uv.h>

struct rq_redis_tls;

struct rq_redis_tls_cbs {
  /* ok: 1 open; 0 failed; -1 the server's certificate failed verification */
  void (*connected)(struct rq_redis_tls *t, int ok, const char *why, void *arg);
  void (*disconnected)(struct rq_redis_tls *t, const char *why, void *arg);
  void (*push)(struct rq_redis_tls *t, redisReply *reply, void *arg); /* may be NULL */
  void *arg;
};

/* The client context for rediss://: tlsio's (TLS 1.2+, ca_file or the
 * system's trust store) plus a client certificate when cert is given.
 * Returns NULL with a sentence in err. */
SSL_CTX *rq_redis_tls_ctx_new(const char *ca_file, const char *cert, const char *key, char *err, size_t errlen);

/* Starts connecting to host:port (resolved now, like hiredis does).
 * Returns NULL with a sentence in err when it cannot even start. */
struct rq_redis_tls *rq_redis_tls_connect(uv_loop_t *loop, SSL_CTX *ctx, const char *host, int port,
                                          const struct rq_redis_tls_cbs *cbs, char *err, size_t errlen);

/* Sends one RESP-formatted command; cb(NULL, reply, privdata) later.
 * Returns 0, or -1 (not open) and cb never runs. */
int rq_redis_tls_send(struct rq_redis_tls *t, redisCallbackFn *cb, void *privdata, const char *cmd, size_t len);

/* Ends it now: pending callbacks run with NULL before this returns; no
 * connected/disconnected callback. */
void rq_redis_tls_free(struct rq_redis_tls *t);

#endif
