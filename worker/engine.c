/*
 * engine: start, run and stop the worker (see engine.h).
 *
 * Stopping (SIGTERM/SIGINT): no more fetching; jobs in flight finish
 * within the grace period; when it runs out, transfers still running are
 * aborted and those jobs handed back unchanged to the front of their queue.
 * Last, anything still in this worker's inflight list (a fetch reply that
 * never reached us) is moved back, the worker's registry entry and
 * heartbeat are removed, and the loop ends: exit 0, nothing lost.
 */
#include "engine.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "batch.h"
#include "delivery.h"
#include "curluv.h"
#include "log.h"
#include "mailgun.h"
#include "lines.h"
#include "metrics.h"
#include "oauth.h"
#include "redis_health.h"
#include "redis_tls.h"
#include "smtp.h"
#include "tenants.h"

static char *make_key(const struct rq_config *cfg, enum relayq_key_kind kind, const char *name) {
  char buf[600];
  relayq_key(buf, sizeof buf, cfg->prefix, kind, name);
  return rq_xstrdup(buf);
}

static void script_sha(const char *src, char out[41]) {
  unsigned char md[SHA_DIGEST_LENGTH];
  SHA1((const unsigned char *)src, strlen(src), md);
  for (int i = 0; i < SHA_DIGEST_LENGTH; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
}


static void on_script_loaded(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  redisReply *reply = r;
  if (reply && reply->type == REDIS_REPLY_ERROR)
    rq_logf(RQ_LOG_ERROR, "SCRIPT LOAD %s failed: %s", (const char *)priv, reply->str);
}

static void load_scripts(struct rq_engine *eng) {
  for (int s = 0; s < RQ_SCRIPT_COUNT; s++)
    rq_rconn_cmdf(eng->cmd, on_script_loaded, (void *)rq_script_name(s), "SCRIPT LOAD %s", rq_script_source(s));
  /* Redis answers in order: every EVALSHA queued after these finds them. */
  eng->scripts_ready = 1;
}

static void on_cmd_event(struct rq_rconn *rc, enum rq_rconn_event ev, void *arg) {
  struct rq_engine *eng = arg;
  switch (ev) {
  case RQ_RCONN_READY:
    load_scripts(eng);
    if (!eng->ever_ready) {
      eng->ever_ready = 1;
      rq_logf(RQ_LOG_INFO, "connected to Redis");
      rq_heartbeat_start(eng); /* registers, reclaims our own list, beats */
    } else {
      rq_logf(RQ_LOG_INFO, "reconnected to Redis; resuming");
      rq_heartbeat_beat(eng);
    }
    rq_status_retry_stalled(eng);
    rq_tenants_retry(eng);
    rq_fetch_kick(eng);
    break;
  case RQ_RCONN_LOST:
    eng->scripts_ready = 0;
    break;
  case RQ_RCONN_AUTH_FAILED:
    rq_logf(RQ_LOG_ERROR, "%s", rq_rconn_error(rc));
    if (!eng->ever_ready) { /* a wrong password at start is fatal: say so and exit */
      eng->exit_code = 1;
      rq_engine_stop(eng);
    }
    break;
  case RQ_RCONN_FAILED:
    if (!eng->ever_ready) rq_logf(RQ_LOG_WARN, "Redis not reachable yet (%s); retrying", rq_rconn_error(rc));
    break;
  }
}

static void drop_if_stuck(struct rq_engine *eng);
static void maybe_finished(struct rq_engine *eng);

static void on_blk_event(struct rq_rconn *rc, enum rq_rconn_event ev, void *arg) {
  (void)rc;
  struct rq_engine *eng = arg;
  if (ev == RQ_RCONN_READY) rq_fetch_kick(eng);
}

static void stall_tick(uv_timer_t *t) {
  struct rq_engine *eng = t->data;
  rq_status_retry_stalled(eng);
  rq_tenants_retry(eng);
  if (eng->needs_recovery && !eng->recovering) rq_heartbeat_beat(eng);
  drop_if_stuck(eng);
  rq_lines_tick(eng);
}

/* A job's FINISH was written (status.c's finished hook): it goes. */
static void job_done(struct rq_jobctx *jc) {
  struct rq_engine *eng = jc->eng;
  if (jc->prev) jc->prev->next = jc->next;
  else eng->jobs = jc->next;
  if (jc->next) jc->next->prev = jc->prev;
  eng->held--;
  rq_lines_release(jc);
  rq_job_free(jc);
  if (eng->stopping) maybe_finished(eng);
  else rq_fetch_kick(eng);
}

/* ---- shutdown ------------------------------------------------------------------ */

static int handles_closing;

static void on_closed(uv_handle_t *h) {
  (void)h;
  handles_closing--;
}

static void on_rconn_closed(void *arg) {
  (void)arg;
  handles_closing--;
}

static void on_smtp_closed(void *arg) {
  struct rq_engine *eng = arg;
  eng->smtp = NULL; /* rq_smtp_close freed it */
  handles_closing--;
}

static void on_curl_closed(void *arg) {
  struct rq_engine *eng = arg;
  if (eng->mailgun) rq_mailgun_free(eng->mailgun);
  eng->mailgun = NULL;
  handles_closing--;
}

/* Aborts every SMTP and Mailgun transfer (their callbacks run now) and
 * closes both transports. */
static void close_transports(struct rq_engine *eng) {
  if (eng->curl_closed) return;
  eng->curl_closed = 1;
  handles_closing += 2;
  rq_smtp_close(eng->smtp, on_smtp_closed, eng);
  rq_curl_close(eng->curl, on_curl_closed, eng);
}

static void close_everything(struct rq_engine *eng) {
  rq_metrics_stop(eng);
  handles_closing++;
  rq_oauth_close(eng, on_rconn_closed, NULL);
  uv_close((uv_handle_t *)&eng->fetch_timer, on_closed);
  uv_close((uv_handle_t *)&eng->heartbeat_timer, on_closed);
  uv_close((uv_handle_t *)&eng->grace_timer, on_closed);
  uv_close((uv_handle_t *)&eng->stall_timer, on_closed);
  uv_close((uv_handle_t *)&eng->sig_term, on_closed);
  uv_close((uv_handle_t *)&eng->sig_int, on_closed);
  handles_closing += 6 + 2;
  close_transports(eng);
  handles_closing++;
  rq_batch_close(eng, on_rconn_closed, NULL); /* nothing queued: every job is done */
  rq_rconn_close(eng->cmd, on_rconn_closed, NULL);
  if (!eng->blk_closed) rq_rconn_close(eng->blk, on_rconn_closed, NULL);
  else handles_closing--;
  rq_redis_health_close(eng); /* after cmd: its probe reply has run */
  rq_tenants_free_all(eng);
  rq_budget_free(&eng->budget);
  rq_lines_free(eng);
  if (eng->on_stopped) eng->on_stopped(eng);
}

static void on_handed_back(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac, (void)priv;
  redisReply *reply = r;
  if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0)
    rq_logf(RQ_LOG_INFO, "handed back %lld job(s) left in the inflight list", (long long)reply->integer);
}

static void on_goodbye(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac, (void)r;
  struct rq_engine *eng = priv;
  rq_logf(RQ_LOG_INFO, "stopped: sent=%llu partial=%llu failed=%llu", (unsigned long long)eng->n_sent,
          (unsigned long long)eng->n_partial, (unsigned long long)eng->n_failed);
  close_everything(eng);
}

static void maybe_finished(struct rq_engine *eng) {
  if (!eng->stopping || eng->held > 0 || eng->fetch_pending || eng->handed_back) return;
  eng->handed_back = 1;
  uv_timer_stop(&eng->grace_timer);
  if (!rq_rconn_ready(eng->cmd) || !eng->scripts_ready) {
    close_everything(eng); /* nothing in memory; inflight leftovers are reclaimed by peers */
    return;
  }
  /* Move back anything left in our inflight list (a BLMOVE or FETCH reply
   * that never arrived), drop our registry entry and heartbeat. */
  const char *argv[] = {"EVALSHA", eng->sha[RQ_SCRIPT_RECLAIM], "3", eng->worker_key, eng->inflight_key,
                        eng->workers_key, eng->cfg->prefix, eng->cfg->worker_id, eng->cfg->queues[0], "force"};
  if (rq_rconn_cmd(eng->cmd, on_handed_back, NULL, 10, argv, NULL) ||
      rq_rconn_cmdf(eng->cmd, NULL, NULL, "HDEL %s %s", eng->workers_key, eng->cfg->worker_id) ||
      rq_rconn_cmdf(eng->cmd, on_goodbye, eng, "DEL %s", eng->worker_key))
    close_everything(eng);
}

/* After the grace period, jobs whose status cannot be written because
 * Redis is away are let go: they are still in our inflight list, where a
 * peer (or this worker restarting with the same id) reclaims them. */
static void drop_if_stuck(struct rq_engine *eng) {
  if (eng->stopping < 2 || (rq_rconn_ready(eng->cmd) && rq_redis_health_ok(eng))) return;
  for (struct rq_jobctx *jc = eng->jobs; jc; jc = jc->next)
    if (jc->phase != RQ_PHASE_STALLED && jc->phase != RQ_PHASE_REDIS_WAIT) return;
  while (eng->jobs) {
    struct rq_jobctx *jc = eng->jobs;
    eng->jobs = jc->next;
    rq_status_drop(jc);
    rq_job_free(jc);
  }
  eng->held = 0;
  eng->fetch_pending = 0;
  maybe_finished(eng);
}

static void grace_expired(uv_timer_t *t) {
  struct rq_engine *eng = t->data;
  rq_logf(RQ_LOG_WARN, "grace period over: aborting %d job(s) still in flight and handing them back", eng->held);
  eng->stopping = 2; /* delivery hands aborted jobs back unchanged */
  close_transports(eng); /* aborts every transfer: their callbacks run now */
  drop_if_stuck(eng);
}

void rq_engine_stop(struct rq_engine *eng) {
  if (eng->stopping) return;
  eng->stopping = 1;
  uv_timer_stop(&eng->fetch_timer);
  rq_logf(RQ_LOG_INFO, "stopping: no more fetching; %d job(s) in flight get %lld ms to finish", eng->held,
          (long long)eng->cfg->grace_ms);
  rq_lines_stop(eng); /* jobs waiting for their tenant's connection go back now */
  uv_timer_start(&eng->grace_timer, grace_expired, (uint64_t)eng->cfg->grace_ms, 0);
  /* Closing the blocking connection unblocks BLMOVE now: Redis moves
   * nothing for a client that is gone. */
  eng->blk_closed = 1;
  eng->fetch_pending = eng->blocking ? 0 : eng->fetch_pending;
  eng->blocking = 0;
  rq_rconn_close(eng->blk, on_rconn_closed, NULL);
  handles_closing++;
  maybe_finished(eng);
}

static void on_signal(uv_signal_t *s, int signum) {
  struct rq_engine *eng = s->data;
  if (eng->stopping && signum == SIGINT) {
    rq_logf(RQ_LOG_WARN, "second interrupt: aborting now");
    grace_expired(&eng->grace_timer);
    return;
  }
  rq_engine_stop(eng);
}


/* Redis accepts writes again (redis_health's writable hook). The
 * heartbeat first: peers must see us alive before their next reclaim
 * pass; then everything that waited. */
static void writable_again(struct rq_engine *eng) {
  rq_heartbeat_beat(eng);
  rq_status_retry_stalled(eng);
  rq_delivery_resume_waiting(eng);
  rq_fetch_kick(eng);
}

/* ---- start ---------------------------------------------------------------------- */

int rq_engine_init(struct rq_engine *eng, uv_loop_t *loop, struct rq_config *cfg) {
  memset(eng, 0, sizeof *eng);
  eng->loop = loop;
  eng->cfg = cfg;
  rq_budget_init(&eng->budget, cfg->max_inflight_bytes);
  eng->started_at_ms = relayq_now_ms();
  struct relayq_error err;
  if (relayq_redis_url_parse(cfg->redis_url, &eng->url, &err)) {
    rq_logf(RQ_LOG_ERROR, "--redis: %s", err.message);
    return -1;
  }
  char why[300];
  if (rq_settings_route(cfg, &eng->routing, why, sizeof why)) {
    rq_logf(RQ_LOG_ERROR, "%s", why);
    return -1;
  }
  if (!eng->routing.platform.configured)
    rq_logf(RQ_LOG_WARN, "no --platform-smtp: jobs for the platform gateway will wait and retry");
  if (eng->url.tls && !(eng->redis_tls = rq_redis_tls_ctx_new(cfg->redis_ca_file, cfg->redis_cert, cfg->redis_key,
                                                              why, sizeof why))) {
    rq_logf(RQ_LOG_ERROR, "--redis rediss://: %s", why);
    return -1;
  }
  for (int s = 0; s < RQ_SCRIPT_COUNT; s++) script_sha(rq_script_source(s), eng->sha[s]);
  eng->inflight_key = make_key(cfg, RELAYQ_KEY_INFLIGHT, cfg->worker_id);
  eng->delayed_key = make_key(cfg, RELAYQ_KEY_DELAYED, NULL);
  eng->dead_key = make_key(cfg, RELAYQ_KEY_DEAD, NULL);
  eng->events_key = make_key(cfg, RELAYQ_KEY_EVENTS, NULL);
  eng->worker_key = make_key(cfg, RELAYQ_KEY_WORKER, cfg->worker_id);
  eng->workers_key = make_key(cfg, RELAYQ_KEY_WORKERS, NULL);
  for (size_t i = 0; i < cfg->n_queues; i++) eng->queue_keys[i] = make_key(cfg, RELAYQ_KEY_QUEUE, cfg->queues[i]);

  uv_timer_init(loop, &eng->fetch_timer);
  uv_timer_init(loop, &eng->heartbeat_timer);
  uv_timer_init(loop, &eng->grace_timer);
  uv_timer_init(loop, &eng->stall_timer);
  eng->fetch_timer.data = eng->heartbeat_timer.data = eng->grace_timer.data = eng->stall_timer.data = eng;
  uv_timer_start(&eng->stall_timer, stall_tick, 1000, 1000);
  uv_signal_init(loop, &eng->sig_term);
  uv_signal_init(loop, &eng->sig_int);
  eng->sig_term.data = eng->sig_int.data = eng;
  uv_signal_start(&eng->sig_term, on_signal, SIGTERM);
  uv_signal_start(&eng->sig_int, on_signal, SIGINT);

  static const struct rq_lines_hooks lines_hooks = {
      .admitted = rq_delivery_admitted,
      .hold = rq_delivery_hold,
      .hand_back = rq_status_hand_back,
      .room = rq_fetch_kick,
      .waited = rq_metrics_line_wait,
  };
  rq_lines_init(eng, &lines_hooks);
  static const struct rq_status_hooks status_hooks = {
      .claimed = rq_delivery_claimed,
      .finished = job_done,
  };
  rq_status_init(eng, &status_hooks);
  eng->curl = rq_curl_new(loop, 0, 0);
  eng->smtp = rq_smtp_new_loop(loop);
  /* As many idle connections kept as sends can be in flight: a busy worker
   * holds up to --concurrency connections to one gateway, and closing all
   * but 64 of them whenever a burst ends made it reconnect (TCP handshake,
   * greeting, EHLO, later QUIT) for about one message in 20. */
  int idle = eng->cfg->concurrency;
  rq_smtp_set_limits(eng->smtp, &(struct rq_smtp_limits){.max_idle_per_server = idle > 64 ? idle : 0,
                                                         .max_idle = idle > 256 ? idle : 0});
  eng->mailgun = rq_mailgun_new(eng->curl);
  static const struct rq_fetch_hooks fetch_hooks = {.arrived = rq_delivery_start};
  rq_fetch_init(eng, &fetch_hooks);
  static const struct rq_heartbeat_hooks heartbeat_hooks = {.room = rq_fetch_kick};
  rq_heartbeat_init(eng, &heartbeat_hooks);
  static const struct rq_redis_health_hooks health_hooks = {.writable = writable_again};
  rq_redis_health_init(eng, &health_hooks);
  eng->cmd = rq_rconn_new(loop, &eng->url, eng->redis_tls, "commands", 10000, on_cmd_event, eng);
  eng->blk = rq_rconn_new(loop, &eng->url, eng->redis_tls, "fetch", 5000, on_blk_event, eng);
  return 0;
}

void rq_engine_free(struct rq_engine *eng) {
  free(eng->inflight_key);
  free(eng->delayed_key);
  free(eng->dead_key);
  free(eng->events_key);
  free(eng->worker_key);
  free(eng->workers_key);
  SSL_CTX_free(eng->redis_tls);
  for (size_t i = 0; i < eng->cfg->n_queues; i++) free(eng->queue_keys[i]);
}
