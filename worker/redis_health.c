/* redis_health: Redis refusing writes as one worker condition (see redis_health.h). */
#include "redis_health.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "log.h"
#include "sentinel_watch.h"
#include "util.h"

#define PROBE_FIRST_MS 200
#define PROBE_MAX_MS 1000 /* work resumes within about a second of Redis accepting writes */

struct rq_redis_health {
  struct rq_engine *eng;
  struct rq_redis_health_hooks hooks;
  uv_timer_t probe_timer;
  enum relayq_refusal kind; /* NONE: Redis accepts writes */
  char words[160];          /* Redis's own error text when it started */
  int64_t since_ms;
  int64_t next_ms;          /* the probe's current backoff */
  int probing;              /* a probe is waiting for its reply */
  int reasked;              /* READONLY with Sentinel: connections dropped once to ask again */
  uint64_t refusals;
  int closed;
  struct rq_sentinel_watch *watch; /* redis+sentinel://: follows +switch-master */
};

static void probe_later(struct rq_redis_health *h);

/* Jittered (+-25%) so a fleet of workers does not probe in step. */
static uint64_t jitter(int64_t ms) {
  return (uint64_t)(ms * 3 / 4 + (int64_t)((uint64_t)rand() % (uint64_t)(ms / 2 + 1)));
}

static void recover(struct rq_redis_health *h) {
  struct rq_engine *eng = h->eng;
  int waited = 0;
  for (struct rq_jobctx *jc = eng->jobs; jc; jc = jc->next) waited++;
  rq_logf(RQ_LOG_WARN, "Redis accepts writes again after %.1f s (%s); %d job(s) held by this worker waited, "
          "none failed; resuming", (double)(relayq_now_ms() - h->since_ms) / 1000.0,
          relayq_refusal_summary(h->kind), waited);
  h->kind = RELAYQ_REFUSAL_NONE;
  h->words[0] = '\0';
  h->hooks.writable(eng); /* the heartbeat, stalled writes, waiting claims, fetching */
}

static void on_probe(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  struct rq_redis_health *h = priv;
  redisReply *reply = r;
  h->probing = 0;
  if (h->closed || h->kind == RELAYQ_REFUSAL_NONE) return;
  if (reply && reply->type != REDIS_REPLY_ERROR) {
    recover(h);
    return;
  }
  if (reply) {
    enum relayq_refusal k = relayq_redis_refusal(reply->str);
    if (k != RELAYQ_REFUSAL_NONE) h->kind = k; /* e.g. OOM gave way to READONLY */
  }
  probe_later(h);
}

static void probe(uv_timer_t *t) {
  struct rq_redis_health *h = t->data;
  struct rq_engine *eng = h->eng;
  if (h->probing || h->kind == RELAYQ_REFUSAL_NONE) return;
  if (!rq_rconn_ready(eng->cmd)) {
    probe_later(h);
    return;
  }
  if (h->kind == RELAYQ_REFUSAL_READONLY && eng->url.n_sentinels && !h->reasked) {
    /* A demoted primary: reconnecting asks the sentinels where the new one is. */
    h->reasked = 1;
    rq_logf(RQ_LOG_WARN, "asking the sentinels for the primary of '%s' again", eng->url.master);
    rq_rconn_drop(eng->cmd);
    if (!eng->blk_closed) rq_rconn_drop(eng->blk);
    probe_later(h);
    return;
  }
  if (h->kind == RELAYQ_REFUSAL_NOSCRIPT)
    for (int s = 0; s < RQ_SCRIPT_COUNT; s++)
      rq_rconn_cmdf(eng->cmd, NULL, NULL, "SCRIPT LOAD %s", rq_script_source(s));
  char now[24];
  rq_fmt_i64(now, sizeof now, relayq_now_ms());
  const char *argv[] = {"HSET", eng->worker_key, "updated_at", now};
  if (rq_rconn_cmd(eng->cmd, on_probe, h, 4, argv, NULL)) {
    probe_later(h);
    return;
  }
  h->probing = 1;
}

static void probe_later(struct rq_redis_health *h) {
  if (h->closed) return;
  uv_timer_start(&h->probe_timer, probe, jitter(h->next_ms), 0);
  h->next_ms = h->next_ms * 2 > PROBE_MAX_MS ? PROBE_MAX_MS : h->next_ms * 2;
}

/* Sentinel switched the primary: both connections reconnect, which asks
 * Sentinel again (replies pending on the old primary come back NULL and
 * are handled as a lost connection: at-least-once, nothing dropped). */
static void on_switch(void *arg, const char *host, int port) {
  (void)host, (void)port;
  struct rq_engine *eng = arg;
  if (eng->cmd) rq_rconn_drop(eng->cmd);
  if (eng->blk && !eng->blk_closed) rq_rconn_drop(eng->blk);
}

void rq_redis_health_init(struct rq_engine *eng, const struct rq_redis_health_hooks *hooks) {
  struct rq_redis_health *h = rq_xcalloc(1, sizeof *h);
  h->eng = eng;
  h->hooks = *hooks;
  uv_timer_init(eng->loop, &h->probe_timer);
  h->probe_timer.data = h;
  eng->health = h;
  if (eng->url.n_sentinels) h->watch = rq_sentinel_watch_new(eng->loop, &eng->url, eng->redis_tls, on_switch, eng);
}

static void on_closed(uv_handle_t *handle) { free(handle->data); }

void rq_redis_health_close(struct rq_engine *eng) {
  struct rq_redis_health *h = eng->health;
  if (!h) return;
  eng->health = NULL;
  h->closed = 1;
  rq_sentinel_watch_close(h->watch);
  /* Called after the command connection closed, which ran a pending
   * probe's callback (with NULL): nothing refers to h after this. */
  uv_close((uv_handle_t *)&h->probe_timer, on_closed);
}

int rq_redis_health_refused(struct rq_engine *eng, const char *redis_error) {
  struct rq_redis_health *h = eng->health;
  enum relayq_refusal k = relayq_redis_refusal(redis_error);
  if (!h || k == RELAYQ_REFUSAL_NONE) return 0;
  if (h->kind != RELAYQ_REFUSAL_NONE) return 1; /* said already */
  h->kind = k;
  h->since_ms = relayq_now_ms();
  h->next_ms = PROBE_FIRST_MS;
  h->reasked = 0;
  h->refusals++;
  snprintf(h->words, sizeof h->words, "%s", redis_error);
  rq_logf(RQ_LOG_ERROR, "Redis refuses writes: %s (Redis: \"%s\"); fetching paused, %d job(s) held wait in "
          "memory and stay in the inflight list, nothing is failed; to fix: %s", relayq_refusal_summary(k),
          h->words, eng->held, relayq_refusal_advice(k));
  probe_later(h);
  return 1;
}

int rq_redis_health_ok(const struct rq_engine *eng) {
  return !eng->health || eng->health->kind == RELAYQ_REFUSAL_NONE;
}

void rq_redis_health_reason(const struct rq_engine *eng, char *buf, size_t cap) {
  const struct rq_redis_health *h = eng->health;
  if (rq_redis_health_ok(eng)) {
    snprintf(buf, cap, "%s", "");
    return;
  }
  snprintf(buf, cap, "%s for %lld s (Redis: %s); %s", relayq_refusal_summary(h->kind),
           (long long)((relayq_now_ms() - h->since_ms) / 1000), h->words, relayq_refusal_advice(h->kind));
}

int rq_redis_health_refused_now(const struct rq_engine *eng) { return !rq_redis_health_ok(eng); }

uint64_t rq_redis_health_refusals(const struct rq_engine *eng) {
  return eng->health ? eng->health->refusals : 0;
}
