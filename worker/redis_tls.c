/* redis_tls: Redis over TLS with tlsio + redisReader (see redis_tls.h). */
#include "redis_tls.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <openssl/err.h>

#include "tlsio.h"
#include "util.h"

#define READ_BUF 65536

struct pending {
  redisCallbackFn *cb;
  void *privdata;
  struct pending *next;
};

enum state { CONNECTING, HANDSHAKE, OPEN, CLOSED };

struct rq_redis_tls {
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  struct rq_tlsio *tls;
  redisReader *reader;
  struct rq_redis_tls_cbs cbs;
  enum state state;
  int cert_failed; /* the handshake failed on the certificate: connected(-1) */
  int writing;     /* a uv_write is in flight: more ciphertext waits for it */
  struct pending *head, *tail;
  char host[256];
  char rbuf[READ_BUF];
  char plain[READ_BUF];
};

struct wreq {
  uv_write_t req;
  char *data;
};

static void on_closed(uv_handle_t *h) {
  struct rq_redis_tls *t = h->data;
  rq_tlsio_free(t->tls);
  if (t->reader) redisReaderFree(t->reader);
  free(t);
}

/* Pending callbacks get NULL, then the handle closes (freeing t after any
 * write callbacks). */
static void finish(struct rq_redis_tls *t) {
  t->state = CLOSED;
  uv_read_stop((uv_stream_t *)&t->tcp);
  struct pending *p = t->head;
  t->head = t->tail = NULL;
  while (p) {
    struct pending *next = p->next;
    if (p->cb) p->cb(NULL, NULL, p->privdata);
    free(p);
    p = next;
  }
  if (!uv_is_closing((uv_handle_t *)&t->tcp)) uv_close((uv_handle_t *)&t->tcp, on_closed);
}

/* The connection failed or ended on its own: tell the owner, then end. */
static void fail(struct rq_redis_tls *t, const char *why) {
  if (t->state == CLOSED) return;
  enum state was = t->state;
  t->state = CLOSED;
  if (was == OPEN) t->cbs.disconnected(t, why, t->cbs.arg);
  else t->cbs.connected(t, t->cert_failed ? -1 : 0, why, t->cbs.arg);
  finish(t);
}

static void flush(struct rq_redis_tls *t);

static void on_written(uv_write_t *req, int status) {
  struct wreq *w = (struct wreq *)req;
  struct rq_redis_tls *t = req->handle->data;
  free(w->data);
  free(w);
  t->writing = 0;
  if (t->state == CLOSED) return;
  if (status < 0 && status != UV_ECANCELED) {
    char why[160];
    snprintf(why, sizeof why, "writing to Redis failed: %s", uv_strerror(status));
    fail(t, why);
    return;
  }
  flush(t);
}

/* Sends whatever ciphertext OpenSSL produced. One write at a time: what
 * the commands of a loop turn add while one is in flight goes out
 * together when it completes (one syscall and fewer TLS reads for Redis,
 * instead of one per command; bench/run.sh --redis-tls). */
static void flush(struct rq_redis_tls *t) {
  size_t n = rq_tlsio_out_pending(t->tls);
  if (n == 0 || t->state == CLOSED || t->writing) return;
  struct wreq *w = rq_xmalloc(sizeof *w);
  w->data = rq_xmalloc(n);
  size_t got = rq_tlsio_out_take(t->tls, w->data, n);
  uv_buf_t buf = uv_buf_init(w->data, (unsigned)got);
  if (uv_write(&w->req, (uv_stream_t *)&t->tcp, &buf, 1, on_written) != 0) {
    free(w->data);
    free(w);
    fail(t, "writing to Redis failed");
    return;
  }
  t->writing = 1;
}

static void deliver(struct rq_redis_tls *t) {
  void *reply = NULL;
  while (t->state == OPEN) {
    if (redisReaderGetReply(t->reader, &reply) != REDIS_OK) {
      char why[160];
      snprintf(why, sizeof why, "Redis sent a reply that cannot be parsed: %s", t->reader->errstr);
      fail(t, why);
      return;
    }
    if (!reply) return;
    struct pending *p = t->head;
    if (p) {
      t->head = p->next;
      if (!t->head) t->tail = NULL;
      if (p->cb) p->cb(NULL, reply, p->privdata);
      free(p);
    } else if (t->cbs.push) {
      t->cbs.push(t, reply, t->cbs.arg);
    }
    freeReplyObject(reply);
  }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  struct rq_redis_tls *t = h->data;
  *buf = uv_buf_init(t->rbuf, sizeof t->rbuf);
}

static void handshake(struct rq_redis_tls *t) {
  int rc = rq_tlsio_handshake(t->tls);
  flush(t);
  if (rc == RQ_TLSIO_AGAIN) return;
  if (rc < 0) {
    char why[400];
    snprintf(why, sizeof why, "TLS to Redis at %s failed: %s (%s)%s", t->host, rq_tlsio_errmsg(t->tls),
             rc == RQ_TLSIO_ECERT ? "the server's certificate failed verification" : "handshake",
             rc == RQ_TLSIO_ECERT ? "; give the CA that signed it with --redis-ca-file" : "");
    t->cert_failed = rc == RQ_TLSIO_ECERT;
    fail(t, why);
    return;
  }
  t->state = OPEN;
  t->cbs.connected(t, 1, NULL, t->cbs.arg);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  struct rq_redis_tls *t = s->data;
  if (t->state == CLOSED) return;
  if (n < 0) {
    char why[160];
    snprintf(why, sizeof why, "%s", n == UV_EOF ? "Redis closed the connection" : uv_strerror((int)n));
    fail(t, why);
    return;
  }
  if (n == 0) return;
  if (rq_tlsio_feed(t->tls, t->rbuf, (size_t)n)) {
    fail(t, rq_tlsio_errmsg(t->tls));
    return;
  }
  if (t->state == HANDSHAKE) {
    handshake(t);
    if (t->state != OPEN) return;
  }
  for (;;) {
    ssize_t got = rq_tlsio_read(t->tls, t->plain, sizeof t->plain);
    if (got == 0) break;
    if (got < 0) {
      fail(t, got == RQ_TLSIO_EOF ? "Redis ended the TLS session" : rq_tlsio_errmsg(t->tls));
      return;
    }
    if (redisReaderFeed(t->reader, t->plain, (size_t)got) != REDIS_OK) {
      fail(t, "out of memory reading a Redis reply");
      return;
    }
  }
  flush(t); /* TLS 1.3 may answer key updates */
  deliver(t);
}

static void on_connect(uv_connect_t *req, int status) {
  struct rq_redis_tls *t = req->data;
  if (t->state == CLOSED) return;
  if (status < 0) {
    char why[300];
    snprintf(why, sizeof why, "%s", uv_strerror(status));
    fail(t, why);
    return;
  }
  uv_tcp_nodelay(&t->tcp, 1);
  t->state = HANDSHAKE;
  uv_read_start((uv_stream_t *)&t->tcp, on_alloc, on_read);
  handshake(t);
}

SSL_CTX *rq_redis_tls_ctx_new(const char *ca_file, const char *cert, const char *key, char *err, size_t errlen) {
  SSL_CTX *ctx = rq_tlsio_ctx_new(ca_file, err, errlen);
  if (!ctx) return NULL;
  if ((cert && *cert) != (key && *key)) {
    snprintf(err, errlen, "--redis-cert and --redis-key go together: give both or neither.");
    SSL_CTX_free(ctx);
    return NULL;
  }
  if (cert && *cert) {
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
      unsigned long e = ERR_peek_last_error();
      snprintf(err, errlen, "The client certificate %s or its key %s could not be used: %s.", cert, key,
               e ? ERR_reason_error_string(e) : "unknown error");
      ERR_clear_error();
      SSL_CTX_free(ctx);
      return NULL;
    }
  }
  return ctx;
}

struct rq_redis_tls *rq_redis_tls_connect(uv_loop_t *loop, SSL_CTX *ctx, const char *host, int port,
                                          const struct rq_redis_tls_cbs *cbs, char *err, size_t errlen) {
  char portstr[16];
  snprintf(portstr, sizeof portstr, "%d", port);
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
  int gai = getaddrinfo(host, portstr, &hints, &ai);
  if (gai != 0) {
    snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(gai));
    return NULL;
  }
  struct rq_redis_tls *t = rq_xcalloc(1, sizeof *t);
  t->cbs = *cbs;
  snprintf(t->host, sizeof t->host, "%s", host);
  t->tls = rq_tlsio_new(ctx, host, 1, err, errlen);
  t->reader = redisReaderCreate();
  if (!t->tls || !t->reader) {
    if (t->reader) redisReaderFree(t->reader);
    rq_tlsio_free(t->tls);
    free(t);
    freeaddrinfo(ai);
    if (!err[0]) snprintf(err, errlen, "out of memory");
    return NULL;
  }
  uv_tcp_init(loop, &t->tcp);
  t->tcp.data = t;
  t->connect_req.data = t;
  int rc = uv_tcp_connect(&t->connect_req, &t->tcp, ai->ai_addr, on_connect);
  freeaddrinfo(ai);
  if (rc != 0) {
    snprintf(err, errlen, "cannot connect to %s:%d: %s", host, port, uv_strerror(rc));
    t->state = CLOSED;
    uv_close((uv_handle_t *)&t->tcp, on_closed);
    return NULL;
  }
  return t;
}

int rq_redis_tls_send(struct rq_redis_tls *t, redisCallbackFn *cb, void *privdata, const char *cmd, size_t len) {
  if (t->state != OPEN) return -1;
  if (rq_tlsio_write(t->tls, cmd, len)) return -1;
  struct pending *p = rq_xmalloc(sizeof *p);
  *p = (struct pending){cb, privdata, NULL};
  if (t->tail) t->tail->next = p;
  else t->head = p;
  t->tail = p;
  flush(t);
  return 0;
}

void rq_redis_tls_free(struct rq_redis_tls *t) {
  if (!t) return;
  if (t->state == OPEN) rq_tlsio_shutdown(t->tls), flush(t);
  finish(t);
}
