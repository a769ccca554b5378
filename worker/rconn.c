/* rconn: self-reconnecting hiredis async connection (see rconn.h). */
#include "rconn.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_tls.h"
#include "redis_uv.h"
#include "resp.h"

#include "log.h"
#include "util.h"

#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 5000

struct rq_rconn {
  uv_loop_t *loop;
  struct relayq_redis_url url;
  char name[32];
  SSL_CTX *tls_ctx;          /* rediss: the engine's; NULL for plain redis:// */
  redisAsyncContext *ac;     /* plain link; NULL while disconnected */
  struct rq_redis_tls *tls;  /* TLS link; NULL while disconnected */
  unsigned gen;              /* bumped per link: replies of an old one are not counted */
  /* Sentinel (url.n_sentinels > 0): the link first goes to a sentinel to
   * ask where the primary is, then to that primary. */
  int asking;                /* the current link is to a sentinel */
  int resolved;              /* host/port below came from a sentinel */
  int si;                    /* the sentinel to ask next */
  char host[256];            /* where the current link goes */
  int port;
  int ready;
  int closing;
  int64_t stall_ms;
  int64_t block_extra_ms;
  int pending;
  uint64_t last_progress_ms;
  uint64_t reconnects;
  int64_t backoff_ms;
  int ever_ready;
  uv_timer_t reconnect_timer;
  uv_timer_t watchdog;
  int handles_open;
  char error[512];
  rq_rconn_event_cb cb;
  void *cb_arg;
  void (*closed_cb)(void *);
  void *closed_arg;
  char *resp;      /* rq_rconn_cmd's formatting buffer, reused (see there) */
  size_t resp_cap;
};

static void start_connect(struct rq_rconn *rc);
static void queued_shared(redisReader *r);

static void emit(struct rq_rconn *rc, enum rq_rconn_event ev) {
  if (rc->cb && !rc->closing) rc->cb(rc, ev, rc->cb_arg);
}

static void reconnect_tick(uv_timer_t *t) { start_connect(t->data); }

static void schedule_reconnect(struct rq_rconn *rc) {
  if (rc->closing) return;
  uv_timer_start(&rc->reconnect_timer, reconnect_tick, (uint64_t)rc->backoff_ms, 0);
  rc->backoff_ms = rc->backoff_ms * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : rc->backoff_ms * 2;
}

/* ---- the link: hiredis async (redis://) or redis_tls (rediss://) ------------------- */

static int linked(const struct rq_rconn *rc) { return rc->ac || rc->tls; }

static int link_send(struct rq_rconn *rc, redisCallbackFn *cb, void *priv, const char *cmd, size_t len) {
  if (rc->tls) return rq_redis_tls_send(rc->tls, cb, priv, cmd, len) ? -1 : 0;
  if (rc->ac) return redisAsyncFormattedCommand(rc->ac, cb, priv, cmd, len) == REDIS_OK ? 0 : -1;
  return -1;
}

static int link_sendv(struct rq_rconn *rc, redisCallbackFn *cb, void *priv, const char *fmt, va_list ap) {
  char *cmd = NULL;
  int len = redisvFormatCommand(&cmd, fmt, ap);
  if (len < 0) return -1;
  int r = link_send(rc, cb, priv, cmd, (size_t)len);
  free(cmd);
  return r;
}

static int link_sendf(struct rq_rconn *rc, redisCallbackFn *cb, void *priv, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int r = link_sendv(rc, cb, priv, fmt, ap);
  va_end(ap);
  return r;
}

/* Ends the current link without telling anyone (pending callbacks get
 * NULL replies, which they ignore or count as lost). */
static void link_close(struct rq_rconn *rc) {
  redisAsyncContext *ac = rc->ac;
  struct rq_redis_tls *t = rc->tls;
  rc->ac = NULL;
  rc->tls = NULL;
  rc->gen++;
  /* Mark first: freeing runs pending callbacks (NULL replies) and, for
   * hiredis, the disconnect callback, which must see the link abandoned. */
  if (ac) {
    ac->data = NULL;
    redisAsyncFree(ac);
  }
  if (t) rq_redis_tls_free(t);
}

/* The context is gone (its owner frees it after this); decide what next. */
static void on_lost(struct rq_rconn *rc, const char *why) {
  int was_ready = rc->ready;
  rc->ac = NULL;
  rc->tls = NULL;
  rc->gen++;
  rc->ready = 0;
  rc->pending = 0;
  if (rc->url.n_sentinels) rc->resolved = 0; /* ask the sentinels again: there may have been a failover */
  if (why) snprintf(rc->error, sizeof rc->error, "%s", why);
  if (rc->closing) return;
  if (was_ready) {
    rq_logf(RQ_LOG_WARN, "redis connection '%s' lost (%s); reconnecting", rc->name, rc->error);
    emit(rc, RQ_RCONN_LOST);
  }
  schedule_reconnect(rc);
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  struct rq_rconn *rc = ac->data;
  if (!rc || rc->ac != ac) return; /* a context we already gave up on */
  on_lost(rc, status == REDIS_OK ? "closed" : (ac->errstr[0] ? ac->errstr : "connection error"));
}

static void became_ready(struct rq_rconn *rc) {
  rc->ready = 1;
  rc->ever_ready = 1;
  rc->backoff_ms = RECONNECT_MIN_MS;
  rc->error[0] = '\0';
  emit(rc, RQ_RCONN_READY);
}

/* Sentinel only: the address a sentinel gave must really be the primary
 * (a sentinel that has not seen the failover yet names the old one). */
static void on_role(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  struct rq_rconn *rc = priv;
  redisReply *reply = r;
  if (!reply) return;
  const char *role = reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
                             reply->element[0]->type == REDIS_REPLY_STRING
                         ? reply->element[0]->str
                         : "unknown";
  if (strcmp(role, "master") != 0) {
    snprintf(rc->error, sizeof rc->error, "%s:%d, named primary of '%s' by a sentinel, reports role '%.40s'; "
             "asking the sentinels again", rc->host, rc->port, rc->url.master, role);
    rc->si++;
    emit(rc, RQ_RCONN_FAILED);
    rq_rconn_drop(rc);
    return;
  }
  became_ready(rc);
}

static void on_select(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  struct rq_rconn *rc = priv;
  redisReply *reply = r;
  if (!reply) return;
  if (reply->type == REDIS_REPLY_ERROR) {
    snprintf(rc->error, sizeof rc->error, "SELECT %d refused: %.200s", rc->url.db, reply->str);
    emit(rc, RQ_RCONN_FAILED);
    rq_rconn_drop(rc);
    return;
  }
  if (rc->url.n_sentinels) {
    if (link_sendf(rc, on_role, rc, "ROLE")) rq_rconn_drop(rc);
    return;
  }
  became_ready(rc);
}

static void on_auth(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  struct rq_rconn *rc = priv;
  redisReply *reply = r;
  if (!reply) return;
  if (reply->type == REDIS_REPLY_ERROR) {
    /* Never echo the password: Redis's own text does not contain it. */
    snprintf(rc->error, sizeof rc->error,
             "Redis refused the credentials in the URL (%.120s): check the user and password", reply->str);
    emit(rc, RQ_RCONN_AUTH_FAILED);
    rq_rconn_drop(rc);
  }
}

static void on_sentinel(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  struct rq_rconn *rc = priv;
  redisReply *reply = r;
  if (!reply) return;
  if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 && reply->element[0]->type == REDIS_REPLY_STRING &&
      reply->element[1]->type == REDIS_REPLY_STRING && reply->element[0]->len < sizeof rc->host) {
    int port = atoi(reply->element[1]->str);
    if (port > 0 && port < 65536) {
      if (strcmp(rc->host, reply->element[0]->str) || rc->port != port || !rc->ever_ready)
        rq_logf(RQ_LOG_INFO, "redis connection '%s': sentinel %s:%d names %s:%d as primary of '%s'", rc->name,
                rc->host, rc->port, reply->element[0]->str, port, rc->url.master);
      snprintf(rc->host, sizeof rc->host, "%s", reply->element[0]->str);
      rc->port = port;
      rc->resolved = 1;
      link_close(rc);
      start_connect(rc);
      return;
    }
  }
  snprintf(rc->error, sizeof rc->error, "sentinel %s:%d does not know a primary named '%s' (%.100s)", rc->host,
           rc->port, rc->url.master, reply->type == REDIS_REPLY_ERROR ? reply->str : "no address");
  rc->si++;
  emit(rc, RQ_RCONN_FAILED);
  link_close(rc);
  schedule_reconnect(rc);
}

/* The link is up (TCP, and TLS when asked): ask the sentinel, or log in. */
static void link_up(struct rq_rconn *rc) {
  rc->last_progress_ms = uv_now(rc->loop);
  if (rc->asking) {
    if (link_sendf(rc, on_sentinel, rc, "SENTINEL get-master-addr-by-name %s", rc->url.master)) {
      link_close(rc);
      schedule_reconnect(rc);
    }
    return;
  }
  rq_logf(RQ_LOG_DEBUG, "redis connection '%s': connected to %s:%d", rc->name, rc->host, rc->port);
  /* AUTH and SELECT are queued without waiting: Redis answers in order,
   * and on_auth drops the connection before anything else is trusted. */
  if (rc->url.password[0]) {
    if (rc->url.user[0])
      link_sendf(rc, on_auth, rc, "AUTH %s %s", rc->url.user, rc->url.password);
    else
      link_sendf(rc, on_auth, rc, "AUTH %s", rc->url.password);
  }
  link_sendf(rc, on_select, rc, "SELECT %d", rc->url.db);
}

/* A connection attempt failed (before the link was up). */
static void link_failed(struct rq_rconn *rc, const char *why, int cert) {
  snprintf(rc->error, sizeof rc->error, "cannot connect to %s%s:%d: %s", rc->asking ? "sentinel " : "", rc->host,
           rc->port, why);
  if (rc->asking) rc->si++;
  else if (rc->url.n_sentinels) rc->resolved = 0;
  /* A certificate that fails verification is a configuration error, like
   * a wrong password: the owner decides (the worker exits at start-up). */
  emit(rc, cert ? RQ_RCONN_AUTH_FAILED : RQ_RCONN_FAILED);
  schedule_reconnect(rc);
}

static void on_connect(const redisAsyncContext *cac, int status) {
  redisAsyncContext *ac = (redisAsyncContext *)cac;
  struct rq_rconn *rc = ac->data;
  if (!rc || rc->ac != ac) return;
  if (status != REDIS_OK) {
    rc->ac = NULL; /* hiredis frees it after this callback */
    rc->gen++;
    link_failed(rc, ac->errstr[0] ? ac->errstr : "error", 0);
    return;
  }
  link_up(rc);
}

static void on_tls_connected(struct rq_redis_tls *t, int ok, const char *why, void *arg) {
  struct rq_rconn *rc = arg;
  if (rc->tls != t) return;
  if (ok <= 0) {
    rc->tls = NULL; /* frees itself after this callback */
    rc->gen++;
    link_failed(rc, why, ok < 0);
    return;
  }
  link_up(rc);
}

static void on_tls_disconnected(struct rq_redis_tls *t, const char *why, void *arg) {
  struct rq_rconn *rc = arg;
  if (rc->tls != t) return;
  on_lost(rc, why);
}

static void start_connect(struct rq_rconn *rc) {
  if (rc->closing || linked(rc)) return;
  if (rc->ever_ready || rc->reconnects) rc->reconnects++;
  else rc->reconnects = 0;
  rc->asking = rc->url.n_sentinels > 0 && !rc->resolved;
  if (rc->asking) {
    const struct relayq_redis_hostport *s = &rc->url.sentinels[rc->si % rc->url.n_sentinels];
    snprintf(rc->host, sizeof rc->host, "%s", s->host);
    rc->port = s->port;
  } else if (!rc->url.n_sentinels) {
    snprintf(rc->host, sizeof rc->host, "%s", rc->url.host);
    rc->port = rc->url.port;
  }
  rq_logf(RQ_LOG_DEBUG, "redis connection '%s': connecting to %s%s:%d", rc->name, rc->asking ? "sentinel " : "",
          rc->host, rc->port);
  rc->gen++;
  if (rc->tls_ctx) {
    char err[300] = "";
    struct rq_redis_tls_cbs cbs = {on_tls_connected, on_tls_disconnected, NULL, rc};
    rc->tls = rq_redis_tls_connect(rc->loop, rc->tls_ctx, rc->host, rc->port, &cbs, err, sizeof err);
    if (!rc->tls) link_failed(rc, err, 0);
    return;
  }
  redisAsyncContext *ac = redisAsyncConnect(rc->host, rc->port);
  if (!ac) {
    link_failed(rc, "out of memory", 0);
    return;
  }
  if (ac->err) {
    char why[200];
    snprintf(why, sizeof why, "%s", ac->errstr);
    redisAsyncFree(ac);
    link_failed(rc, why, 0);
    return;
  }
  ac->data = rc;
  rc->ac = ac;
  queued_shared(ac->c.reader);
  rq_redis_uv_attach(ac, rc->loop);
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
}

/* The "+QUEUED" of every command in a MULTI (batch.c: four per finished
 * job) is one shared reply instead of an allocation each; hiredis frees a
 * reply with the reader's freeObject after its callback, which leaves the
 * shared one alone. Nothing keeps a QUEUED reply past its callback. */
static const redisReplyObjectFunctions *hiredis_fns;
static redisReply queued_reply = {.type = REDIS_REPLY_STATUS, .str = "QUEUED", .len = 6};

static void *create_string(const redisReadTask *task, char *str, size_t len) {
  if (task->type == REDIS_REPLY_STATUS && !task->parent && len == 6 && !memcmp(str, "QUEUED", 6))
    return &queued_reply;
  return hiredis_fns->createString(task, str, len);
}
static void free_object(void *reply) {
  if (reply != &queued_reply) hiredis_fns->freeObject(reply);
}
static redisReplyObjectFunctions queued_fns;

static void queued_shared(redisReader *r) {
  if (!hiredis_fns) {
    hiredis_fns = r->fn;
    queued_fns = *r->fn;
    queued_fns.createString = create_string;
    queued_fns.freeObject = free_object;
  }
  if (r->fn == hiredis_fns) r->fn = &queued_fns;
}

static void watchdog_tick(uv_timer_t *t) {
  struct rq_rconn *rc = t->data;
  if (!linked(rc) || rc->pending == 0 || rc->stall_ms <= 0) return;
  uint64_t now = uv_now(rc->loop);
  if (now - rc->last_progress_ms > (uint64_t)(rc->stall_ms + rc->block_extra_ms)) {
    snprintf(rc->error, sizeof rc->error, "no reply from Redis for %lld ms",
             (long long)(now - rc->last_progress_ms));
    rq_rconn_drop(rc);
  }
}

struct rq_rconn *rq_rconn_new(uv_loop_t *loop, const struct relayq_redis_url *url, SSL_CTX *tls_ctx,
                              const char *name, int64_t stall_ms, rq_rconn_event_cb cb, void *arg) {
  struct rq_rconn *rc = rq_xcalloc(1, sizeof *rc);
  rc->loop = loop;
  rc->url = *url;
  rc->tls_ctx = tls_ctx;
  snprintf(rc->name, sizeof rc->name, "%s", name);
  rc->stall_ms = stall_ms;
  rc->cb = cb;
  rc->cb_arg = arg;
  rc->backoff_ms = RECONNECT_MIN_MS;
  uv_timer_init(loop, &rc->reconnect_timer);
  uv_timer_init(loop, &rc->watchdog);
  rc->reconnect_timer.data = rc->watchdog.data = rc;
  rc->handles_open = 2;
  if (stall_ms > 0) uv_timer_start(&rc->watchdog, watchdog_tick, 500, 500);
  start_connect(rc);
  return rc;
}

int rq_rconn_ready(const struct rq_rconn *rc) { return rc->ready; }
const char *rq_rconn_error(const struct rq_rconn *rc) { return rc->error; }
uint64_t rq_rconn_reconnects(const struct rq_rconn *rc) { return rc->reconnects; }
int rq_rconn_pending(const struct rq_rconn *rc) { return rc->pending; }

void rq_rconn_expect_block(struct rq_rconn *rc, int64_t ms) { rc->block_extra_ms = ms; }

/* Every user callback goes through this trampoline so the pending count
 * and the watchdog's progress clock stay right. */
struct call {
  struct rq_rconn *rc;
  redisCallbackFn *cb;
  void *privdata;
  unsigned gen; /* the link it was sent on */
};

static void trampoline(redisAsyncContext *ac, void *reply, void *priv) {
  struct call *call = priv;
  struct rq_rconn *rc = call->rc;
  (void)ac; /* NULL on a TLS link */
  if (rc->gen == call->gen && rc->pending > 0) {
    rc->pending--;
    rc->last_progress_ms = uv_now(rc->loop);
    if (rc->pending == 0) rc->block_extra_ms = 0;
  }
  if (call->cb) call->cb(ac, reply, call->privdata);
  free(call);
}

/* Buffers above this are allocated for the one command (a 25 MB payload
 * must not stay allocated for the life of the connection). */
#define RESP_KEEP_MAX (1u << 20)

/*
 * Formats the command as RESP by hand (librelayq's resp.h, the writer
 * the producer uses too) and hands it to hiredis preformatted:
 * redisAsyncCommandArgv builds it with sdscatfmt, a printf per argument,
 * which was a quarter of the worker's instructions per message
 * (bench/run.sh --callgrind). Here one pass sizes it, one writes it into
 * a buffer the connection keeps; hiredis copies it once into its output
 * buffer.
 */
int rq_rconn_cmd(struct rq_rconn *rc, redisCallbackFn *cb, void *privdata, int argc, const char **argv,
                 const size_t *argvlen) {
  if (!rc->ready || rc->closing || argc <= 0) return -1;
  /* Each length once: the bound and the writer both need them. */
  size_t small[64], *lens = NULL;
  if (argvlen == NULL) {
    lens = argc <= 64 ? small : rq_xmalloc((size_t)argc * sizeof *lens);
    for (int i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
    argvlen = lens;
  }
  size_t total = relayq__resp_bound(argc, argv, argvlen);
  char *buf = rc->resp;
  if (total > rc->resp_cap) {
    if (total > RESP_KEEP_MAX) {
      buf = rq_xmalloc(total);
    } else {
      free(rc->resp);
      rc->resp_cap = total < 4096 ? 4096 : total * 2;
      buf = rc->resp = rq_xmalloc(rc->resp_cap);
    }
  }
  size_t len = relayq__resp_command(buf, argc, argv, argvlen);
  int r = rq_rconn_send(rc, cb, privdata, buf, len);
  if (buf != rc->resp) free(buf);
  if (lens != small) free(lens);
  return r;
}

int rq_rconn_send(struct rq_rconn *rc, redisCallbackFn *cb, void *privdata, const char *resp, size_t len) {
  if (!rc->ready || rc->closing || len == 0) return -1;
  struct call *call = rq_xmalloc(sizeof *call);
  *call = (struct call){rc, cb, privdata, rc->gen};
  if (link_send(rc, trampoline, call, resp, len) != 0) {
    free(call);
    return -1;
  }
  if (rc->pending++ == 0) rc->last_progress_ms = uv_now(rc->loop);
  return 0;
}

int rq_rconn_cmdf(struct rq_rconn *rc, redisCallbackFn *cb, void *privdata, const char *fmt, ...) {
  if (!rc->ready || rc->closing) return -1;
  struct call *call = rq_xmalloc(sizeof *call);
  *call = (struct call){rc, cb, privdata, rc->gen};
  va_list ap;
  va_start(ap, fmt);
  int r = link_sendv(rc, trampoline, call, fmt, ap);
  va_end(ap);
  if (r != 0) {
    free(call);
    return -1;
  }
  if (rc->pending++ == 0) rc->last_progress_ms = uv_now(rc->loop);
  return 0;
}

void rq_rconn_drop(struct rq_rconn *rc) {
  if (!linked(rc)) return;
  link_close(rc);
  on_lost(rc, rc->error[0] ? NULL : "dropped to reconnect");
}

static void on_handle_closed(uv_handle_t *h) {
  struct rq_rconn *rc = h->data;
  if (--rc->handles_open == 0) {
    void (*closed_cb)(void *) = rc->closed_cb;
    void *arg = rc->closed_arg;
    free(rc->resp);
    free(rc);
    if (closed_cb) closed_cb(arg);
  }
}

void rq_rconn_close(struct rq_rconn *rc, void (*closed_cb)(void *), void *arg) {
  rc->closing = 1;
  rc->closed_cb = closed_cb;
  rc->closed_arg = arg;
  rc->ready = 0;
  link_close(rc);
  uv_close((uv_handle_t *)&rc->reconnect_timer, on_handle_closed);
  uv_close((uv_handle_t *)&rc->watchdog, on_handle_closed);
}
