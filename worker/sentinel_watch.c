/* sentinel_watch: +switch-master subscription (see sentinel_watch.h). */
#include "sentinel_watch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "log.h"
#include "redis_tls.h"
#include "redis_uv.h"
#include "util.h"

#define RETRY_MS 1000
#define CHANNEL "+switch-master"

struct rq_sentinel_watch {
  uv_loop_t *loop;
  struct relayq_redis_url url;
  SSL_CTX *tls_ctx;
  redisAsyncContext *ac;
  struct rq_redis_tls *tls;
  int si;
  int closing;
  uv_timer_t timer;
  rq_sentinel_switch_cb cb;
  void *arg;
};

static void connect_next(struct rq_sentinel_watch *w);

static void retry_tick(uv_timer_t *t) { connect_next(t->data); }

static void lost(struct rq_sentinel_watch *w) {
  w->ac = NULL;
  w->tls = NULL;
  if (w->closing) return;
  w->si++;
  uv_timer_start(&w->timer, retry_tick, RETRY_MS, 0);
}

/* ["message", "+switch-master", "NAME OLD-IP OLD-PORT NEW-IP NEW-PORT"] */
static void on_message(struct rq_sentinel_watch *w, const redisReply *r) {
  if (w->closing || !r || r->type != REDIS_REPLY_ARRAY || r->elements != 3) return;
  const redisReply *kind = r->element[0], *body = r->element[2];
  if (kind->type != REDIS_REPLY_STRING || strcmp(kind->str, "message") || body->type != REDIS_REPLY_STRING) return;
  char name[256], old_ip[256], new_ip[256];
  int old_port, new_port;
  if (sscanf(body->str, "%255s %255s %d %255s %d", name, old_ip, &old_port, new_ip, &new_port) != 5) return;
  if (strcmp(name, w->url.master)) return;
  rq_logf(RQ_LOG_WARN, "sentinel: primary of '%s' switched from %s:%d to %s:%d; reconnecting there", name, old_ip,
          old_port, new_ip, new_port);
  w->cb(w->arg, new_ip, new_port);
}

static void on_sub(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  on_message(priv, r);
}

static void on_push(struct rq_redis_tls *t, redisReply *reply, void *arg) {
  (void)t;
  on_message(arg, reply);
}

static void on_connect(const redisAsyncContext *ac, int status) {
  struct rq_sentinel_watch *w = ac->data;
  if (!w || w->ac != ac) return;
  if (status != REDIS_OK) {
    lost(w); /* hiredis frees it after this */
    return;
  }
  redisAsyncCommand(w->ac, on_sub, w, "SUBSCRIBE " CHANNEL);
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  (void)status;
  struct rq_sentinel_watch *w = ac->data;
  if (!w || w->ac != ac) return;
  lost(w);
}

static void on_tls_connected(struct rq_redis_tls *t, int ok, const char *why, void *arg) {
  (void)why;
  struct rq_sentinel_watch *w = arg;
  if (w->tls != t) return;
  if (ok <= 0) {
    lost(w);
    return;
  }
  static const char sub[] = "*2\r\n$9\r\nSUBSCRIBE\r\n$14\r\n" CHANNEL "\r\n";
  rq_redis_tls_send(t, on_sub, w, sub, sizeof sub - 1);
}

static void on_tls_disconnected(struct rq_redis_tls *t, const char *why, void *arg) {
  (void)why;
  struct rq_sentinel_watch *w = arg;
  if (w->tls == t) lost(w);
}

static void connect_next(struct rq_sentinel_watch *w) {
  if (w->closing || w->ac || w->tls) return;
  const struct relayq_redis_hostport *s = &w->url.sentinels[w->si % w->url.n_sentinels];
  if (w->tls_ctx) {
    char err[300] = "";
    struct rq_redis_tls_cbs cbs = {on_tls_connected, on_tls_disconnected, on_push, w};
    w->tls = rq_redis_tls_connect(w->loop, w->tls_ctx, s->host, s->port, &cbs, err, sizeof err);
    if (!w->tls) lost(w);
    return;
  }
  redisAsyncContext *ac = redisAsyncConnect(s->host, s->port);
  if (!ac || ac->err) {
    if (ac) redisAsyncFree(ac);
    lost(w);
    return;
  }
  ac->data = w;
  w->ac = ac;
  rq_redis_uv_attach(ac, w->loop);
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
}

struct rq_sentinel_watch *rq_sentinel_watch_new(uv_loop_t *loop, const struct relayq_redis_url *url, SSL_CTX *tls,
                                                rq_sentinel_switch_cb cb, void *arg) {
  struct rq_sentinel_watch *w = rq_xcalloc(1, sizeof *w);
  w->loop = loop;
  w->url = *url;
  w->tls_ctx = tls;
  w->cb = cb;
  w->arg = arg;
  uv_timer_init(loop, &w->timer);
  w->timer.data = w;
  connect_next(w);
  return w;
}

static void on_closed(uv_handle_t *h) { free(h->data); }

void rq_sentinel_watch_close(struct rq_sentinel_watch *w) {
  if (!w) return;
  w->closing = 1;
  redisAsyncContext *ac = w->ac;
  struct rq_redis_tls *t = w->tls;
  w->ac = NULL;
  w->tls = NULL;
  if (ac) {
    ac->data = NULL;
    redisAsyncFree(ac);
  }
  if (t) rq_redis_tls_free(t);
  uv_close((uv_handle_t *)&w->timer, on_closed);
}
