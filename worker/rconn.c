/* rconn: self-reconnecting hiredis async connection (see rconn.h). */
#include "rconn.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
  redisAsyncContext *ac; /* NULL while disconnected */
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
  char error[256];
  rq_rconn_event_cb cb;
  void *cb_arg;
  void (*closed_cb)(void *);
  void *closed_arg;
  char *resp;      /* rq_rconn_cmd's formatting buffer, reused (see there) */
  size_t resp_cap;
};

static void start_connect(struct rq_rconn *rc);

static void emit(struct rq_rconn *rc, enum rq_rconn_event ev) {
  if (rc->cb && !rc->closing) rc->cb(rc, ev, rc->cb_arg);
}

static void reconnect_tick(uv_timer_t *t) { start_connect(t->data); }

static void schedule_reconnect(struct rq_rconn *rc) {
  if (rc->closing) return;
  uv_timer_start(&rc->reconnect_timer, reconnect_tick, (uint64_t)rc->backoff_ms, 0);
  rc->backoff_ms = rc->backoff_ms * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : rc->backoff_ms * 2;
}

/* The context is gone (hiredis frees it after this); decide what next. */
static void on_lost(struct rq_rconn *rc, const char *why) {
  int was_ready = rc->ready;
  rc->ac = NULL;
  rc->ready = 0;
  rc->pending = 0;
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

static void on_select(redisAsyncContext *ac, void *r, void *priv) {
  struct rq_rconn *rc = priv;
  redisReply *reply = r;
  if (!reply || rc->ac != ac) return;
  if (reply->type == REDIS_REPLY_ERROR) {
    snprintf(rc->error, sizeof rc->error, "SELECT %d refused: %.200s", rc->url.db, reply->str);
    emit(rc, RQ_RCONN_FAILED);
    rq_rconn_drop(rc);
    return;
  }
  rc->ready = 1;
  rc->ever_ready = 1;
  rc->backoff_ms = RECONNECT_MIN_MS;
  rc->error[0] = '\0';
  emit(rc, RQ_RCONN_READY);
}

static void on_auth(redisAsyncContext *ac, void *r, void *priv) {
  struct rq_rconn *rc = priv;
  redisReply *reply = r;
  if (!reply || rc->ac != ac) return;
  if (reply->type == REDIS_REPLY_ERROR) {
    /* Never echo the password: Redis's own text does not contain it. */
    snprintf(rc->error, sizeof rc->error,
             "Redis refused the credentials in the URL (%.120s): check the user and password", reply->str);
    emit(rc, RQ_RCONN_AUTH_FAILED);
    rq_rconn_drop(rc);
  }
}

static void on_connect(const redisAsyncContext *cac, int status) {
  redisAsyncContext *ac = (redisAsyncContext *)cac;
  struct rq_rconn *rc = ac->data;
  if (!rc || rc->ac != ac) return;
  if (status != REDIS_OK) {
    char why[256];
    snprintf(why, sizeof why, "cannot connect to %s:%d: %s", rc->url.host, rc->url.port,
             ac->errstr[0] ? ac->errstr : "error");
    rc->ac = NULL; /* hiredis frees it after this callback */
    snprintf(rc->error, sizeof rc->error, "%s", why);
    emit(rc, RQ_RCONN_FAILED);
    schedule_reconnect(rc);
    return;
  }
  rq_logf(RQ_LOG_DEBUG, "redis connection '%s': connected", rc->name);
  rc->last_progress_ms = uv_now(rc->loop);
  /* AUTH and SELECT are queued without waiting: Redis answers in order,
   * and on_auth drops the connection before anything else is trusted. */
  if (rc->url.password[0]) {
    if (rc->url.user[0])
      redisAsyncCommand(ac, on_auth, rc, "AUTH %s %s", rc->url.user, rc->url.password);
    else
      redisAsyncCommand(ac, on_auth, rc, "AUTH %s", rc->url.password);
  }
  redisAsyncCommand(ac, on_select, rc, "SELECT %d", rc->url.db);
}

static void start_connect(struct rq_rconn *rc) {
  if (rc->closing || rc->ac) return;
  if (rc->ever_ready || rc->reconnects) rc->reconnects++;
  else rc->reconnects = 0;
  rq_logf(RQ_LOG_DEBUG, "redis connection '%s': connecting to %s:%d", rc->name, rc->url.host, rc->url.port);
  redisAsyncContext *ac = redisAsyncConnect(rc->url.host, rc->url.port);
  if (!ac) {
    snprintf(rc->error, sizeof rc->error, "out of memory connecting to Redis");
    schedule_reconnect(rc);
    return;
  }
  if (ac->err) {
    snprintf(rc->error, sizeof rc->error, "cannot connect to %s:%d: %s", rc->url.host, rc->url.port, ac->errstr);
    redisAsyncFree(ac);
    emit(rc, RQ_RCONN_FAILED);
    schedule_reconnect(rc);
    return;
  }
  ac->data = rc;
  rc->ac = ac;
  rq_redis_uv_attach(ac, rc->loop);
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
}

static void watchdog_tick(uv_timer_t *t) {
  struct rq_rconn *rc = t->data;
  if (!rc->ac || rc->pending == 0 || rc->stall_ms <= 0) return;
  uint64_t now = uv_now(rc->loop);
  if (now - rc->last_progress_ms > (uint64_t)(rc->stall_ms + rc->block_extra_ms)) {
    snprintf(rc->error, sizeof rc->error, "no reply from Redis for %lld ms",
             (long long)(now - rc->last_progress_ms));
    rq_rconn_drop(rc);
  }
}

struct rq_rconn *rq_rconn_new(uv_loop_t *loop, const struct relayq_redis_url *url, const char *name,
                              int64_t stall_ms, rq_rconn_event_cb cb, void *arg) {
  struct rq_rconn *rc = rq_xcalloc(1, sizeof *rc);
  rc->loop = loop;
  rc->url = *url;
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
};

static void trampoline(redisAsyncContext *ac, void *reply, void *priv) {
  struct call *call = priv;
  struct rq_rconn *rc = call->rc;
  if (rc->ac == ac && rc->pending > 0) {
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
 * the producer uses too) and hands it to hiredis preformatted: redisAsyncCommandArgv builds it with sdscatfmt, a printf
 * per argument, which was a quarter of the worker's instructions per
 * message (bench/run.sh --callgrind). Here one pass sizes it, one writes
 * it into a buffer the connection keeps; hiredis copies it once into its
 * output buffer.
 */
int rq_rconn_cmd(struct rq_rconn *rc, redisCallbackFn *cb, void *privdata, int argc, const char **argv,
                 const size_t *argvlen) {
  if (!rc->ready || rc->closing || argc <= 0) return -1;
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
  struct call *call = rq_xmalloc(sizeof *call);
  *call = (struct call){rc, cb, privdata};
  int r = redisAsyncFormattedCommand(rc->ac, trampoline, call, buf, len);
  if (buf != rc->resp) free(buf);
  if (r != REDIS_OK) {
    free(call);
    return -1;
  }
  if (rc->pending++ == 0) rc->last_progress_ms = uv_now(rc->loop);
  return 0;
}

int rq_rconn_cmdf(struct rq_rconn *rc, redisCallbackFn *cb, void *privdata, const char *fmt, ...) {
  if (!rc->ready || rc->closing) return -1;
  struct call *call = rq_xmalloc(sizeof *call);
  *call = (struct call){rc, cb, privdata};
  va_list ap;
  va_start(ap, fmt);
  int r = redisvAsyncCommand(rc->ac, trampoline, call, fmt, ap);
  va_end(ap);
  if (r != REDIS_OK) {
    free(call);
    return -1;
  }
  if (rc->pending++ == 0) rc->last_progress_ms = uv_now(rc->loop);
  return 0;
}

void rq_rconn_drop(struct rq_rconn *rc) {
  redisAsyncContext *ac = rc->ac;
  if (!ac) return;
  /* Mark first: redisAsyncFree runs pending callbacks (NULL replies) and
   * the disconnect callback, which must see this context as abandoned. */
  rc->ac = NULL;
  ac->data = NULL;
  redisAsyncFree(ac);
  on_lost(rc, NULL);
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
  redisAsyncContext *ac = rc->ac;
  if (ac) {
    rc->ac = NULL;
    rc->ready = 0;
    ac->data = NULL;
    redisAsyncFree(ac);
  }
  uv_close((uv_handle_t *)&rc->reconnect_timer, on_handle_closed);
  uv_close((uv_handle_t *)&rc->watchdog, on_handle_closed);
}
