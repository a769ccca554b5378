/*
 * status: writes a job's status change, publishes its event, and moves its
 * payload (ack, park in P:delayed, dead-letter, hand back), all in one
 * FINISH script call (sent with the loop turn's other calls as one BATCH,
 * batch.h) so the status is always written before the job leaves inflight
 * (see scripts.c). It also writes a tenant route's breaker
 * (rq_status_breaker) as lines.c decided it.
 *
 * Ownership: a struct rq_finish belongs to its job (jc->finish) from
 * rq_status_finish until the script is answered OK; then the job is freed
 * with it. When Redis is away the call is kept and re-sent after
 * reconnect: nothing is acknowledged that was not written.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch.h"
#include "engine.h"
#include "event.h"
#include "keys.h"
#include "log.h"
#include "redis_health.h"
#include "util.h"

struct rq_finish {
  const char **argv;
  size_t *argvlen; /* in argv's allocation */
  size_t argc;
  char *text; /* the strings this record owns, one block (argv points into it) */
  unsigned char *park;
  int lrem_after; /* mode "done": the worker removes the job from inflight once FINISH answered */
};

static void finish_free(struct rq_finish *f) {
  if (!f) return;
  free(f->text);
  free(f->argv);
  free(f->park);
  free(f);
}

/* P:stats:TENANT's UTC day, YYYYMMDD, formatted once a day. */
static const char *utc_day(void) {
  static _Thread_local time_t cached = -1;
  static _Thread_local char day[16];
  time_t now_s = time(NULL);
  if (now_s / 86400 != cached) {
    struct tm tm;
    gmtime_r(&now_s, &tm);
    strftime(day, sizeof day, "%Y%m%d", &tm);
    cached = now_s / 86400;
  }
  return day;
}

static const char *find(const struct rq_status_kv *kv, size_t n, const char *key) {
  for (size_t i = 0; i < n; i++)
    if (kv[i].key && !strcmp(kv[i].key, key)) return kv[i].value;
  return NULL;
}

void rq_status_event_json(struct rq_buf *b, const char *id, const char *tenant, const char *state, int attempts,
                          int64_t ts, const char *route, int code, const char *error, const char *worker) {
  const struct relayq__event ev = {id, tenant, state, attempts, ts, route, code, error, worker};
  rq_buf_reserve(b, relayq__event_max(&ev));
  b->len += relayq__event_json(b->data + b->len, &ev);
  b->data[b->len] = '\0';
}

static void send_finish(struct rq_jobctx *jc);

/* Fields this worker's CLAIM of the job (answered ok) wrote with the
 * value FINISH would write again: the job's tenant, route, Message-ID,
 * recipient count, this worker, and the attempt when it is the one
 * claimed. Nothing else writes a claimed status's fields (only a second
 * copy of the same job could: the same values but the worker's), so
 * they are left out of FINISH's arguments. */
static int claim_wrote(const struct rq_jobctx *jc, const char *key, const char *value) {
  switch (key[0]) {
  case 't': return !strcmp(key, "tenant");
  case 'r': return !strcmp(key, "route") || !strcmp(key, "recipients");
  case 'm': return !strcmp(key, "message_id");
  case 'w': return !strcmp(key, "worker");
  case 'a': return !strcmp(key, "attempts") && value && strtol(value, NULL, 10) == jc->attempt;
  default: return 0;
  }
}

/* FINISH carries the payload (LREM from the inflight list needs it), and
 * hiredis holds a command in two copies until it is written: a dozen 10 MB
 * jobs finishing in one loop turn would double the worker's memory for a
 * moment. So payload bytes in unanswered FINISH commands are bounded;
 * a FINISH over the bound waits (RQ_PHASE_STALLED, finish_gated) for an
 * earlier one's answer. One is always allowed, whatever its size. */
#define FINISH_BYTES_MAX ((size_t)32 << 20)

/* An acknowledged job whose status FINISH wrote leaves the inflight list
 * by an LREM sent after FINISH answered, on the same connection: the
 * status is written before the job leaves inflight, and the payload
 * (1 KB to 1 MB) never becomes a Lua string (Redis hashes every byte of
 * a string entering Lua: the largest cost of a small job's FINISH).
 * Lost (the connection drops first, or the LREM fails), the job stays in
 * inflight with its final status: recovery hands it back (below) or a
 * peer reclaims it, and its CLAIM answers 'dup': acknowledged, not sent
 * again. */
#define LREM_AFTER_MAX ((size_t)1 << 20)

static void on_lrem(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  struct rq_engine *eng = priv;
  redisReply *reply = r;
  if (!reply || reply->type == REDIS_REPLY_ERROR) eng->needs_recovery = 1;
}

static void lrem(struct rq_jobctx *jc) {
  struct rq_engine *eng = jc->eng;
  const char *argv[] = {"LREM", eng->inflight_key, "-1", jc->payload};
  const size_t lens[] = {4, strlen(eng->inflight_key), 2, jc->payload_len};
  if (rq_rconn_cmd(eng->cmd, on_lrem, eng, 4, argv, lens)) eng->needs_recovery = 1;
}

static void finish_answered(struct rq_jobctx *jc) {
  struct rq_engine *eng = jc->eng;
  if (!jc->finish_counted) return;
  jc->finish_counted = 0;
  eng->finish_bytes -= jc->payload_len;
  if (eng->finish_gated == 0) return;
  for (struct rq_jobctx *o = eng->jobs; o && eng->finish_gated > 0; o = o->next) {
    if (o->phase != RQ_PHASE_STALLED || !o->finish || !o->finish_gated) continue;
    if (eng->finish_bytes > 0 && eng->finish_bytes + o->payload_len > FINISH_BYTES_MAX) break;
    o->finish_gated = 0;
    eng->finish_gated--;
    send_finish(o);
  }
}

static void on_finish(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  struct rq_jobctx *jc = priv;
  redisReply *reply = r;
  finish_answered(jc);
  if (!reply || reply->type == REDIS_REPLY_ERROR) {
    if (reply && !rq_redis_health_refused(jc->eng, reply->str))
      RQ_LOG_FIELDS(RQ_LOG_ERROR, "status write failed; will retry", {"job", jc->job ? jc->job->id : NULL},
                    {"detail", reply->str});
    jc->phase = RQ_PHASE_STALLED; /* re-sent by rq_status_retry_stalled */
    return;
  }
  if (reply->type == REDIS_REPLY_ARRAY)
    RQ_LOG_FIELDS(RQ_LOG_WARN, "job id is another tenant's: status left alone, job dead-lettered",
                  {"job", jc->job ? jc->job->id : jc->invalid_id}, {"tenant", jc->job ? jc->job->tenant : NULL},
                  {"error", "invalid_job"});
  if (jc->finish->lrem_after) lrem(jc);
  finish_free(jc->finish);
  jc->finish = NULL;
  rq_engine_job_done(jc->eng, jc);
}

static void send_finish(struct rq_jobctx *jc) {
  struct rq_engine *eng = jc->eng;
  if (jc->finish_gated) return; /* its turn comes with an earlier answer */
  if (jc->finish->lrem_after) { /* the payload is not in this call */
    jc->phase = RQ_PHASE_FINISH;
    rq_batch_call(eng, RQ_SCRIPT_FINISH, on_finish, jc, (int)jc->finish->argc, jc->finish->argv,
                  jc->finish->argvlen);
    return;
  }
  if (eng->finish_bytes > 0 && eng->finish_bytes + jc->payload_len > FINISH_BYTES_MAX) {
    jc->phase = RQ_PHASE_STALLED;
    jc->finish_gated = 1;
    eng->finish_gated++;
    return;
  }
  jc->phase = RQ_PHASE_FINISH;
  /* Answered by on_finish in every case (NULL when Redis is away). */
  rq_batch_call(eng, RQ_SCRIPT_FINISH, on_finish, jc, (int)jc->finish->argc, jc->finish->argv, jc->finish->argvlen);
  jc->finish_counted = 1;
  eng->finish_bytes += jc->payload_len;
}

void rq_status_finish(struct rq_jobctx *jc, enum rq_finish_mode mode, const char *state, int64_t score,
                      const struct rq_status_kv *fields, size_t n_fields, unsigned char *park_payload,
                      size_t park_len) {
  struct rq_engine *eng = jc->eng;
  const struct rq_config *cfg = eng->cfg;
  struct rq_finish *f = rq_xcalloc(1, sizeof *f);
  size_t argc = 3 + 7 + 8 + 2 * n_fields;
  /* argv, argvlen and (while building) where each owned string starts in
   * text: one allocation for the pointers, one for the strings, instead of
   * one per string (a malloc and a free each, per message). */
  f->argv = rq_xmalloc(argc * (sizeof *f->argv + sizeof *f->argvlen));
  f->argvlen = (size_t *)(f->argv + argc);
  size_t *at = rq_xmalloc(argc * sizeof *at);
  struct rq_buf text;
  rq_buf_init(&text);
  rq_buf_reserve(&text, 1024);
  f->park = park_payload;

  char status_buf[600], stats_buf[600], daily_buf[620];
  const char *status_key = "";
  const char *mode_s = "ack", *dest = "";
  switch (mode) {
  case RQ_FINISH_ACK: break;
  case RQ_FINISH_DELAY: mode_s = "delay", dest = eng->delayed_key; break;
  case RQ_FINISH_DEAD: mode_s = "dead", dest = eng->dead_key; break;
  case RQ_FINISH_REQUEUE: mode_s = "requeue", dest = eng->queue_keys[jc->queue_idx]; break;
  }
  const char *status_id = jc->job ? jc->job->id : NULL;
  if (!status_id && n_fields) status_id = jc->invalid_id[0] ? jc->invalid_id : NULL;
  if (state && n_fields && status_id) {
    relayq_key(status_buf, sizeof status_buf, cfg->prefix, RELAYQ_KEY_STATUS, status_id);
    status_key = status_buf;
  }
  /* An acknowledgement that writes a status this worker's CLAIM proved
   * its own (or none: a duplicate's) leaves inflight by the LREM after
   * (lrem). The other modes move the payload in the same script. */
  f->lrem_after = mode == RQ_FINISH_ACK && (jc->claimed || !status_key[0]) && jc->payload_len <= LREM_AFTER_MAX;
  if (f->lrem_after) mode_s = "done";
  /* Event */
  struct rq_buf ev;
  rq_buf_init(&ev);
  if (state && status_key[0]) {
    const char *att = find(fields, n_fields, "attempts"), *code = find(fields, n_fields, "last_code");
    rq_status_event_json(&ev, status_id, find(fields, n_fields, "tenant"), state, att ? atoi(att) : 0,
                         relayq_now_ms(), find(fields, n_fields, "route"), code ? atoi(code) : 0,
                         find(fields, n_fields, "error"), cfg->worker_id);
  }
  int final = state && (!strcmp(state, "sent") || !strcmp(state, "partial") || !strcmp(state, "failed"));
  /* Per-tenant counters for dashboards: P:stats:T (lifetime) and
   * P:stats:T:YYYYMMDD (UTC day, kept 40 days), one count per status
   * change by state. */
  const char *stats_key = "", *daily_key = "";
  const char *tenant = find(fields, n_fields, "tenant");
  if (state && status_key[0] && tenant && *tenant) {
    relayq__key(stats_buf, sizeof stats_buf, cfg->prefix, RELAYQ__KEY_STATS, tenant, NULL);
    relayq__key(daily_buf, sizeof daily_buf, cfg->prefix, RELAYQ__KEY_STATS, tenant, utc_day());
    stats_key = stats_buf, daily_key = daily_buf;
  }
  char score_s[24], ttl_s[24];
  rq_fmt_i64(score_s, sizeof score_s, score);
  rq_fmt_i64(ttl_s, sizeof ttl_s, final ? cfg->status_ttl_s * 1000 : 0LL);

  size_t k = 0;
#define ARG(s) (f->argv[k] = (s), f->argvlen[k] = strlen(f->argv[k]), at[k] = SIZE_MAX, k++)
#define OWN(s, n) (f->argvlen[k] = (n), at[k] = text.len, rq_buf_append(&text, (s), f->argvlen[k]), \
                   rq_buf_putc(&text, '\0'), k++)
#define OWNS(s) OWN((s), strlen(s))
  ARG("EVALSHA");
  ARG(eng->sha[RQ_SCRIPT_FINISH]);
  ARG("7");
  OWNS(status_key);
  ARG(eng->events_key);
  ARG(eng->inflight_key);
  ARG(dest);
  OWNS(stats_key);
  OWNS(daily_key);
  ARG(eng->dead_key);
  ARG(mode_s);
  if (f->lrem_after) ARG("");
  else f->argv[k] = jc->payload, f->argvlen[k] = jc->payload_len, at[k] = SIZE_MAX, k++;
  if (park_payload) f->argv[k] = (const char *)park_payload, f->argvlen[k] = park_len, at[k] = SIZE_MAX, k++;
  else ARG("");
  OWNS(score_s);
  OWNS(ttl_s);
  OWN(ev.len ? ev.data : "", ev.len);
  ARG(stats_key[0] ? state : "");
  ARG(jc->claimed ? "" : "1"); /* CLAIM wrote created_at already */
  if (status_key[0]) {
    for (size_t i = 0; i < n_fields; i++) {
      if (!fields[i].key || !fields[i].key[0] || fields[i].key[0] == '_') continue;
      if (jc->claimed && claim_wrote(jc, fields[i].key, fields[i].value)) continue;
      OWNS(fields[i].key);
      OWNS(fields[i].value ? fields[i].value : "");
    }
  }
#undef ARG
#undef OWN
#undef OWNS
  f->argc = k;
  f->text = rq_buf_steal(&text, NULL);
  for (size_t i = 0; i < k; i++)
    if (at[i] != SIZE_MAX) f->argv[i] = f->text + at[i];
  free(at);
  rq_buf_free(&ev);
  jc->finish = f;
  send_finish(jc);
}

void rq_status_retry_stalled(struct rq_engine *eng) {
  if (!rq_engine_redis_ready(eng) || !rq_redis_health_ok(eng)) return;
  for (struct rq_jobctx *jc = eng->jobs; jc; jc = jc->next)
    if (jc->phase == RQ_PHASE_STALLED && jc->finish) send_finish(jc);
}

void rq_status_drop(struct rq_jobctx *jc) {
  finish_free(jc->finish);
  jc->finish = NULL;
}

void rq_status_breaker(struct rq_engine *eng, const char *tenant, const char *route, const struct rq_breaker *b) {
  char key[400], f_state[100], f_reason[100], f_until[100], f_fail[100], f_trips[100], until[24], now_s[24],
      trips[16], failures[16];
  relayq__key(key, sizeof key, eng->cfg->prefix, RELAYQ__KEY_BREAKER, tenant, NULL);
  snprintf(f_state, sizeof f_state, "%s.state", route);
  snprintf(f_reason, sizeof f_reason, "%s.reason", route);
  snprintf(f_until, sizeof f_until, "%s.until", route);
  snprintf(f_fail, sizeof f_fail, "%s.failures", route);
  snprintf(f_trips, sizeof f_trips, "%s.trips", route);
  rq_fmt_i64(until, sizeof until, b->state == RQ_BREAKER_OPEN ? b->open_until : 0);
  rq_fmt_i64(now_s, sizeof now_s, relayq_now_ms());
  rq_fmt_i64(trips, sizeof trips, b->trips);
  rq_fmt_i64(failures, sizeof failures, b->failures); /* open: the count that tripped it (see breaker.h) */
  const char *argv[] = {"HSET", key, f_state, rq_breaker_state_name(b->state), f_reason,
                        b->state == RQ_BREAKER_CLOSED ? "" : rq_errcat_name(b->reason), f_until, until, f_fail,
                        failures, f_trips, trips, "updated_at", now_s};
  rq_rconn_cmd(eng->cmd, NULL, NULL, 14, argv, NULL); /* fire and forget: the next change writes again */
}
