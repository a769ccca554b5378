/*
 * heartbeat: this worker's presence in Redis and the recovery of jobs
 * held by workers that are gone.
 *
 *   P:worker:ID  hash (host, pid, started_at, inflight, sent, failed,
 *                version, queues, updated_at), PEXPIRE heartbeat_ttl,
 *                refreshed every ttl/3;
 *   P:workers    hash ID -> comma list of its queues: the registry that
 *                tells live workers whose inflight lists to look at after
 *                a heartbeat expired.
 *
 * Each beat, for every registered worker without a heartbeat, a RECLAIM
 * script call moves its inflight jobs back (atomic: when workers race,
 * one moves them and the others find an empty list). A worker that
 * restarts with the same id reclaims its own list before fetching.
 *
 * Recovery: when a fetch reply was lost with the connection, the jobs it
 * moved sit in our inflight list but not in memory. After reconnecting,
 * before fetching again, the inflight list is compared with what we hold
 * and the difference handed back to the queue.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "heartbeat.h"

#include "engine.h"
#include "log.h"
#include "redis_health.h"
#include "util.h"

void rq_heartbeat_init(struct rq_engine *eng, const struct rq_heartbeat_hooks *hooks) {
  eng->heartbeat_hooks = *hooks;
}

/* The beat is a write every few seconds even when no job moves: it is how
 * an idle worker learns that Redis refuses writes (redis_health.h). */
static void on_beat_written(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  redisReply *reply = r;
  if (reply && reply->type == REDIS_REPLY_ERROR) rq_redis_health_refused(priv, reply->str);
}

static void write_beat(struct rq_engine *eng) {
  const struct rq_config *cfg = eng->cfg;
  char host[256] = "", pid[24], started[24], inflight[24], sent[24], failed[24], updated[24], ttl[24];
  char queues[RQ_MAX_QUEUES * (RELAYQ_ID_MAX + 1) + 1] = "";
  gethostname(host, sizeof host - 1);
  snprintf(pid, sizeof pid, "%ld", (long)getpid());
  snprintf(started, sizeof started, "%lld", (long long)eng->started_at_ms);
  snprintf(inflight, sizeof inflight, "%d", eng->held);
  snprintf(sent, sizeof sent, "%llu", (unsigned long long)(eng->n_sent + eng->n_partial));
  snprintf(failed, sizeof failed, "%llu", (unsigned long long)eng->n_failed);
  snprintf(updated, sizeof updated, "%lld", (long long)relayq_now_ms());
  snprintf(ttl, sizeof ttl, "%lld", (long long)cfg->heartbeat_ttl_s * 1000);
  for (size_t i = 0; i < cfg->n_queues; i++) {
    if (i) strcat(queues, ",");
    strcat(queues, cfg->queues[i]);
  }
  const char *argv[] = {"HSET",     eng->worker_key, "host",    host,     "pid",     pid,
                        "started_at", started,      "inflight", inflight, "sent",    sent,
                        "failed",   failed,          "version", RELAYQ_VERSION, "queues", queues,
                        "updated_at", updated};
  rq_rconn_cmd(eng->cmd, on_beat_written, eng, (int)(sizeof argv / sizeof argv[0]), argv, NULL);
  rq_rconn_cmdf(eng->cmd, NULL, NULL, "PEXPIRE %s %s", eng->worker_key, ttl);
  rq_rconn_cmdf(eng->cmd, NULL, NULL, "HSET %s %s %s", eng->workers_key, cfg->worker_id, queues);
}

static void on_reclaimed(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  char *who = priv;
  redisReply *reply = r;
  if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0)
    rq_logf(RQ_LOG_WARN, "moved %lld job(s) of worker %s back to their queues", (long long)reply->integer, who);
  free(who);
}

static void reclaim(struct rq_engine *eng, const char *worker, const char *queues, int force) {
  char first_queue[RELAYQ_ID_MAX + 1];
  size_t len = strcspn(queues, ",");
  if (len == 0 || len > RELAYQ_ID_MAX) snprintf(first_queue, sizeof first_queue, "%s", eng->cfg->queues[0]);
  else snprintf(first_queue, sizeof first_queue, "%.*s", (int)len, queues);
  char hb[600], infl[600];
  relayq_key(hb, sizeof hb, eng->cfg->prefix, RELAYQ_KEY_WORKER, worker);
  relayq_key(infl, sizeof infl, eng->cfg->prefix, RELAYQ_KEY_INFLIGHT, worker);
  const char *argv[] = {"EVALSHA", eng->sha[RQ_SCRIPT_RECLAIM], "3", hb, infl, eng->workers_key,
                        eng->cfg->prefix, worker, first_queue, force ? "force" : ""};
  char *who = rq_xstrdup(worker);
  if (rq_rconn_cmd(eng->cmd, on_reclaimed, who, 10, argv, NULL)) free(who);
}

static void on_registry(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  struct rq_engine *eng = priv;
  redisReply *reply = r;
  if (!reply || reply->type != REDIS_REPLY_ARRAY) return;
  for (size_t i = 0; i + 1 < reply->elements; i += 2) {
    redisReply *w = reply->element[i], *q = reply->element[i + 1];
    if (w->type != REDIS_REPLY_STRING || q->type != REDIS_REPLY_STRING) continue;
    if (!strcmp(w->str, eng->cfg->worker_id) || !relayq_valid_id(w->str)) continue;
    reclaim(eng, w->str, q->str, 0);
  }
}

/* ---- recovery of jobs a lost reply left in our inflight list ---------------------- */

static int held_payload(struct rq_engine *eng, const char *p, size_t len, char *used) {
  size_t i = 0;
  for (struct rq_jobctx *jc = eng->jobs; jc; jc = jc->next, i++) {
    if (used[i] || jc->payload_len != len || memcmp(jc->payload, p, len)) continue;
    used[i] = 1;
    return 1;
  }
  return 0;
}

static void on_inflight_list(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  struct rq_engine *eng = priv;
  redisReply *reply = r;
  eng->recovering = 0;
  if (!reply || reply->type != REDIS_REPLY_ARRAY) return; /* try again next time */
  eng->needs_recovery = 0;
  char *used = rq_xcalloc((size_t)eng->held + 1, 1);
  size_t moved = 0;
  for (size_t i = 0; i < reply->elements; i++) {
    redisReply *p = reply->element[i];
    if (p->type != REDIS_REPLY_STRING || held_payload(eng, p->str, p->len, used)) continue;
    rq_status_requeue_payload(eng, p->str, p->len);
    moved++;
  }
  free(used);
  if (moved) rq_logf(RQ_LOG_WARN, "recovered %zu job(s) whose fetch reply was lost; handed back", moved);
  eng->heartbeat_hooks.room(eng);
}

static void recover(struct rq_engine *eng) {
  if (eng->recovering || eng->fetch_pending) return;
  eng->recovering = 1;
  if (rq_rconn_cmdf(eng->cmd, on_inflight_list, eng, "LRANGE %s 0 -1", eng->inflight_key)) eng->recovering = 0;
}

void rq_heartbeat_beat(struct rq_engine *eng) {
  if (!rq_rconn_ready(eng->cmd) || !eng->scripts_ready) return;
  write_beat(eng);
  if (eng->needs_recovery) recover(eng);
  if (!eng->stopping) rq_rconn_cmdf(eng->cmd, on_registry, eng, "HGETALL %s", eng->workers_key);
}

static void beat_tick(uv_timer_t *t) { rq_heartbeat_beat(t->data); }

void rq_heartbeat_reclaim_own(struct rq_engine *eng) {
  char queues[RELAYQ_ID_MAX + 1];
  snprintf(queues, sizeof queues, "%s", eng->cfg->queues[0]);
  reclaim(eng, eng->cfg->worker_id, queues, 1);
}

void rq_heartbeat_start(struct rq_engine *eng) {
  /* Order matters and Redis keeps it: reclaim our own leftovers (a restart
   * with the same id) before the first fetch is queued. */
  rq_heartbeat_reclaim_own(eng);
  rq_heartbeat_beat(eng);
  uint64_t period = (uint64_t)eng->cfg->heartbeat_ttl_s * 1000 / 3;
  uv_timer_start(&eng->heartbeat_timer, beat_tick, period, period);
}
