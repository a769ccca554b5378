/*
 * status: the one writer of a job's status, its counters and holds, and
 * of the tenant route breakers (see status.h). Every job's Redis write is
 * spelled here, from the typed request or outcome its caller hands over:
 * CLAIM before sending (the `sending` status, quota and rate_limits
 * windows, the quota pause, auto-reply markers), FINISH after (the status,
 * its event, the tenant's counters, and where the payload goes: ack, park
 * in P:delayed, dead-letter, hand back), each sent with the loop turn's
 * other calls as one BATCH (batch.h), so the status is always written
 * before the job leaves inflight (see scripts.c); an acknowledged job that
 * needs no script is plain commands in the turn's MULTI ... EXEC instead
 * (finish_plain), its status and its LREM from inflight one step.
 */
#include "status.h"

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

const char *rq_state_name(enum rq_state s) {
  switch (s) {
  case RQ_STATE_NONE: return "";
  case RQ_STATE_SENT: return "sent";
  case RQ_STATE_PARTIAL: return "partial";
  case RQ_STATE_FAILED: return "failed";
  case RQ_STATE_RETRY: return "retry";
  case RQ_STATE_DEFERRED: return "deferred";
  }
  return "";
}

static int is_final(enum rq_state s) {
  return s == RQ_STATE_SENT || s == RQ_STATE_PARTIAL || s == RQ_STATE_FAILED;
}

void rq_status_init(struct rq_engine *eng, const struct rq_status_hooks *hooks) { eng->status_hooks = *hooks; }

/* ---- arguments --------------------------------------------------------------- */

/* A script call's arguments being written: argv points either at strings
 * that outlive the call (arg) or into one text block the call owns (own:
 * one allocation for every string instead of a malloc and a free per
 * string and message). While writing, at[i] is where string i starts in
 * text (SIZE_MAX: not in it); args_seal points argv there. Past cap,
 * arguments are dropped: callers size cap for the most they write. */
struct args {
  const char **argv;
  size_t *argvlen; /* in argv's allocation */
  size_t *at;      /* in argv's allocation too */
  size_t k, cap;
  struct rq_buf text;
};

static void args_init(struct args *a, size_t cap, size_t text) {
  a->argv = rq_xmalloc(cap * (sizeof *a->argv + sizeof *a->argvlen + sizeof *a->at));
  a->argvlen = (size_t *)(a->argv + cap);
  a->at = a->argvlen + cap;
  a->k = 0;
  a->cap = cap;
  rq_buf_init(&a->text);
  rq_buf_reserve(&a->text, text);
}

static void arg_n(struct args *a, const char *s, size_t n) {
  if (a->k >= a->cap) return;
  a->argv[a->k] = s, a->argvlen[a->k] = n, a->at[a->k] = SIZE_MAX, a->k++;
}
static void arg(struct args *a, const char *s) { arg_n(a, s ? s : "", s ? strlen(s) : 0); }

/* Starts an owned string; append to a->text, then own_end. */
static void own_begin(struct args *a) {
  if (a->k < a->cap) a->at[a->k] = a->text.len;
}
static void own_end(struct args *a) {
  if (a->k >= a->cap) return;
  a->argvlen[a->k] = a->text.len - a->at[a->k];
  rq_buf_putc(&a->text, '\0');
  a->k++;
}
static void own(struct args *a, const char *s) {
  own_begin(a);
  if (s) rq_buf_puts(&a->text, s);
  own_end(a);
}
static void own_i64(struct args *a, int64_t v) {
  own_begin(a);
  rq_buf_put_i64(&a->text, v);
  own_end(a);
}
/* A field name made of two parts ("meta." K, "rcpt." ADDR). */
static void own_cat(struct args *a, const char *prefix, const char *name) {
  own_begin(a);
  rq_buf_puts(&a->text, prefix);
  rq_buf_puts(&a->text, name);
  own_end(a);
}

/* Points argv at the text block; returns it (the caller owns it). */
static char *args_seal(struct args *a) {
  char *text = rq_buf_steal(&a->text, NULL);
  for (size_t i = 0; i < a->k; i++)
    if (a->at[i] != SIZE_MAX) a->argv[i] = text + a->at[i];
  return text;
}

static void args_event(struct args *a, const struct relayq__event *ev) {
  own_begin(a);
  rq_buf_reserve(&a->text, relayq__event_max(ev));
  a->text.len += relayq__event_json(a->text.data + a->text.len, ev);
  own_end(a);
}

/* ---- FINISH ------------------------------------------------------------------ */

struct rq_finish {
  const char **argv; /* argvlen in the same allocation */
  size_t *argvlen;
  size_t argc;
  char *text; /* the strings this call owns, one block (argv points into it) */
  unsigned char *park;
  /* A plain finish (PLAIN_MAX): argv holds its commands back to back,
   * then the counter's two keys (when counted). */
  int plain;
  size_t n_cmds, cmd_argc[4];
  const char *state; /* counted state (rq_state_name's), NULL = none */
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

static void send_finish(struct rq_jobctx *jc);

/* A FINISH that moves the payload itself (a retry, a dead letter, a hand
 * back, a job over PLAIN_MAX) carries it, and hiredis holds a command
 * in two copies until it is written: a dozen 10 MB
 * jobs finishing in one loop turn would double the worker's memory for a
 * moment. So payload bytes in unanswered FINISH commands are bounded;
 * a FINISH over the bound waits (RQ_PHASE_STALLED, finish_gated) for an
 * earlier one's answer. One is always allowed, whatever its size. */
#define FINISH_BYTES_MAX ((size_t)32 << 20)

/* An acknowledged job whose CLAIM answered ok in this worker (or a
 * duplicate's ack, which writes no status) needs nothing a script decides:
 * its FINISH is plain commands in the turn's transaction (batch.h), and
 * the payload (1 KB to 1 MB) never becomes a Lua string (Redis hashes
 * every byte of a string entering Lua). Larger payloads go to FINISH,
 * where FINISH_BYTES_MAX bounds what unanswered commands hold. */
#define PLAIN_MAX ((size_t)1 << 20)

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
  finish_free(jc->finish);
  jc->finish = NULL;
  jc->eng->status_hooks.finished(jc);
}

static void send_finish(struct rq_jobctx *jc) {
  struct rq_engine *eng = jc->eng;
  if (jc->finish_gated) return; /* its turn comes with an earlier answer */
  struct rq_finish *f = jc->finish;
  if (f->plain) { /* not gated: PLAIN_MAX bounds its payload */
    jc->phase = RQ_PHASE_FINISH;
    size_t argc = f->argc - (f->state ? 2 : 0);
    const struct rq_batch_plain p = {f->n_cmds, f->cmd_argc, argc, f->argv, f->argvlen,
                                     f->state ? f->argv[argc] : NULL, f->state ? f->argv[argc + 1] : NULL, f->state};
    rq_batch_plain(eng, on_finish, jc, &p);
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

/* The status fields of a decoded job's outcome (FINISH's ARGV[9..]). */
static void finish_fields(struct args *a, const struct rq_jobctx *jc, const struct rq_outcome *o, int64_t now) {
  const struct relayq_job *j = jc->job;
  const char *worker = jc->eng->cfg->worker_id;
  arg(a, "state"), arg(a, rq_state_name(o->state));
  arg(a, "updated_at"), own_i64(a, now);
  /* This worker's CLAIM of the job (answered ok) wrote its tenant, route,
   * Message-ID, recipient count, this worker and the attempt claimed;
   * nothing else writes a claimed status's fields (only a second copy of
   * the same job could: the same values but its worker's), so FINISH
   * leaves them out. */
  if (!jc->claimed) {
    arg(a, "tenant"), arg(a, j->tenant);
    arg(a, "worker"), arg(a, worker);
    if (jc->route.name) arg(a, "route"), arg(a, jc->route.name);
    if (jc->message_id[0]) arg(a, "message_id"), arg(a, jc->message_id);
    if (o->recipients) arg(a, "recipients"), own_i64(a, o->recipients);
  }
  /* meta keys are validated by the codec (no CR/LF, bounded). */
  for (size_t i = 0; i < j->n_meta; i++) own_cat(a, "meta.", j->meta[i].key), arg(a, j->meta[i].value);
  if (!jc->claimed || o->attempts != jc->attempt) arg(a, "attempts"), own_i64(a, o->attempts);
  if (is_final(o->state)) {
    arg(a, "accepted"), own_i64(a, o->accepted);
    arg(a, "rejected"), own_i64(a, o->rejected);
    arg(a, "next_attempt_at"), arg(a, "");
    if (o->accepted > 0) arg(a, "sent_at"), own_i64(a, now);
    if (o->provider_id && o->provider_id[0]) arg(a, "provider_id"), arg(a, o->provider_id);
  } else {
    arg(a, "next_attempt_at"), own_i64(a, o->due_ms);
  }
  /* last_code/last_enhanced/last_reply are the server's reply; a failure
   * with no reply (connect, TLS) leaves them out and says why in detail. */
  if (o->code) {
    arg(a, "last_code"), own_i64(a, o->code);
    arg(a, "last_enhanced"), arg(a, o->enhanced);
    arg(a, "last_reply"), arg(a, o->reply);
  }
  arg(a, "error"), arg(a, rq_errcat_name(o->error));
  arg(a, "detail"), arg(a, o->detail);
  if (!is_final(o->state)) return;
  /* Which addresses were refused, and why (bounded). */
  size_t listed = 0;
  for (size_t i = 0; i < o->n_rcpts && listed < RQ_STATUS_MAX_RCPT; i++) {
    const struct rq_rcpt *rc = &o->rcpts[i];
    if (rc->state != RQ_RCPT_REJECTED && rc->state != RQ_RCPT_TEMP) continue;
    own_cat(a, "rcpt.", rc->addr);
    own_begin(a);
    rq_buf_put_i64(&a->text, rc->code);
    rq_buf_putc(&a->text, ' ');
    rq_buf_puts(&a->text, rc->enhanced);
    own_end(a);
    listed++;
  }
}

/* The status fields of a job that could not be decoded: no route, no
 * recipients, no attempt. */
static void invalid_fields(struct args *a, const struct rq_jobctx *jc, const struct rq_outcome *o, int64_t now) {
  arg(a, "state"), arg(a, rq_state_name(o->state));
  arg(a, "error"), arg(a, rq_errcat_name(o->error));
  arg(a, "detail"), arg(a, o->detail);
  arg(a, "updated_at"), own_i64(a, now);
  arg(a, "worker"), arg(a, jc->eng->cfg->worker_id);
  arg(a, "attempts"), arg(a, "0");
  if (o->tenant && o->tenant[0]) arg(a, "tenant"), arg(a, o->tenant);
}

/* Hands the written call (a's strings, sealed into f) to the job and
 * sends it. */
static void finish_start(struct rq_jobctx *jc, struct rq_finish *f, struct args *a, const struct rq_outcome *o) {
  f->text = args_seal(a);
  f->argv = a->argv;
  f->argvlen = a->argvlen;
  f->argc = a->k;
  f->park = o->park;
  jc->finish = f;
  send_finish(jc);
}

/* A plain finish's commands (PLAIN_MAX): the status's fields and TTL, its
 * event, and LREM from inflight, in the turn's transaction (batch.h); the
 * counter's keys follow the commands in argv. status_key NULL: a
 * duplicate's ack, only the LREM. a: initialised, empty. */
static void finish_plain(struct rq_jobctx *jc, const struct rq_outcome *o, struct args *a, const char *status_key,
                         const char *stats_key, const char *daily_key, int64_t now) {
  struct rq_engine *eng = jc->eng;
  const struct rq_config *cfg = eng->cfg;
  const struct relayq_job *j = jc->job;
  struct rq_finish *f = rq_xcalloc(1, sizeof *f);
  size_t k = 0;
  if (status_key) {
    arg(a, "HSET"), own(a, status_key);
    finish_fields(a, jc, o, now);
    f->cmd_argc[f->n_cmds++] = a->k - k, k = a->k;
    /* Only a final status carries a TTL (CONTRACT.md). */
    if (is_final(o->state)) arg(a, "PEXPIRE"), own(a, status_key), own_i64(a, cfg->status_ttl_s * 1000LL);
    else arg(a, "PERSIST"), own(a, status_key);
    f->cmd_argc[f->n_cmds++] = a->k - k, k = a->k;
    const struct relayq__event ev = {j->id, j->tenant, rq_state_name(o->state), o->attempts, now, jc->route.name,
                                     o->code, rq_errcat_name(o->error), cfg->worker_id};
    arg(a, "PUBLISH"), arg(a, eng->events_key), args_event(a, &ev);
    f->cmd_argc[f->n_cmds++] = a->k - k, k = a->k;
  }
  arg(a, "LREM"), arg(a, eng->inflight_key), arg(a, "-1"), arg_n(a, jc->payload, jc->payload_len);
  f->cmd_argc[f->n_cmds++] = a->k - k;
  if (status_key && stats_key[0]) {
    own(a, stats_key), own(a, daily_key);
    f->state = rq_state_name(o->state);
  }
  f->plain = 1;
  finish_start(jc, f, a, o);
}

void rq_status_finish(struct rq_jobctx *jc, const struct rq_outcome *o) {
  struct rq_engine *eng = jc->eng;
  const struct rq_config *cfg = eng->cfg;
  const struct relayq_job *j = jc->job;
  int64_t now = relayq_now_ms();
  const char *id = j ? j->id : jc->invalid_id[0] ? jc->invalid_id : NULL;
  const char *tenant = j ? j->tenant : o->tenant;
  int status = o->state != RQ_STATE_NONE && id;
  size_t n_fields = 2 * (24 + (j ? j->n_meta : 0) + (o->n_rcpts < RQ_STATUS_MAX_RCPT ? o->n_rcpts : RQ_STATUS_MAX_RCPT));
  struct args a;
  args_init(&a, 18 + n_fields, 1024);

  char status_key[600] = "", stats_key[600] = "", daily_key[620] = "";
  if (status) relayq_key(status_key, sizeof status_key, cfg->prefix, RELAYQ_KEY_STATUS, id);
  /* Per-tenant counters for dashboards: P:stats:T (lifetime) and
   * P:stats:T:YYYYMMDD (UTC day, kept 40 days), one count per status
   * change by state. */
  if (status && tenant && tenant[0]) {
    relayq__key(stats_key, sizeof stats_key, cfg->prefix, RELAYQ__KEY_STATS, tenant, NULL);
    relayq__key(daily_key, sizeof daily_key, cfg->prefix, RELAYQ__KEY_STATS, tenant, utc_day());
  }
  const char *mode = "ack", *dest = "";
  switch (o->mode) {
  case RQ_FINISH_ACK: break;
  case RQ_FINISH_DELAY: mode = "delay", dest = eng->delayed_key; break;
  case RQ_FINISH_DEAD: mode = "dead", dest = eng->dead_key; break;
  case RQ_FINISH_REQUEUE: mode = "requeue", dest = eng->queue_keys[jc->queue_idx]; break;
  }
  /* An acknowledgement that writes a status this worker's CLAIM proved
   * its own (or none: a duplicate's) is plain commands (PLAIN_MAX). */
  if (o->mode == RQ_FINISH_ACK && (jc->claimed || !status) && jc->payload_len <= PLAIN_MAX) {
    finish_plain(jc, o, &a, status ? status_key : NULL, stats_key, daily_key, now);
    return;
  }
  arg(&a, "EVALSHA");
  arg(&a, eng->sha[RQ_SCRIPT_FINISH]);
  arg(&a, "7");
  own(&a, status_key);
  arg(&a, eng->events_key);
  arg(&a, eng->inflight_key);
  arg(&a, dest);
  own(&a, stats_key);
  own(&a, daily_key);
  arg(&a, eng->dead_key);
  arg(&a, mode);
  arg_n(&a, jc->payload, jc->payload_len);
  if (o->park) arg_n(&a, (const char *)o->park, o->park_len);
  else arg(&a, "");
  own_i64(&a, o->mode == RQ_FINISH_DELAY ? o->due_ms : now);
  own_i64(&a, is_final(o->state) ? cfg->status_ttl_s * 1000 : 0LL);
  if (status) {
    const struct relayq__event ev = {id, tenant, rq_state_name(o->state), j ? o->attempts : 0, now,
                                     j ? jc->route.name : NULL, o->code, rq_errcat_name(o->error),
                                     cfg->worker_id};
    args_event(&a, &ev);
  } else {
    arg(&a, "");
  }
  arg(&a, stats_key[0] ? rq_state_name(o->state) : "");
  arg(&a, jc->claimed ? "" : "1"); /* CLAIM wrote created_at already */
  if (status) {
    if (j) finish_fields(&a, jc, o, now);
    else invalid_fields(&a, jc, o, now);
  }
  finish_start(jc, rq_xcalloc(1, sizeof(struct rq_finish)), &a, o);
}

void rq_status_hand_back(struct rq_jobctx *jc) {
  const struct rq_outcome o = {.state = RQ_STATE_NONE, .mode = RQ_FINISH_REQUEUE};
  rq_status_finish(jc, &o);
}

void rq_status_retry_stalled(struct rq_engine *eng) {
  if (!rq_rconn_ready(eng->cmd) || !rq_redis_health_ok(eng)) return;
  for (struct rq_jobctx *jc = eng->jobs; jc; jc = jc->next)
    if (jc->phase == RQ_PHASE_STALLED && jc->finish) send_finish(jc);
}

void rq_status_drop(struct rq_jobctx *jc) {
  finish_free(jc->finish);
  jc->finish = NULL;
}

void rq_status_requeue_payload(struct rq_engine *eng, const char *payload, size_t len) {
  /* FINISH in requeue mode with no status: LREM from inflight + RPUSH. */
  const char *argv[] = {"EVALSHA", eng->sha[RQ_SCRIPT_FINISH], "7", "", eng->events_key, eng->inflight_key,
                        eng->queue_keys[0], "", "", eng->dead_key, "requeue", payload, "", "0", "0", "", "", ""};
  size_t n = sizeof argv / sizeof argv[0], lens[sizeof argv / sizeof argv[0]];
  for (size_t k = 0; k < n; k++) lens[k] = strlen(argv[k]);
  lens[11] = len;
  rq_rconn_cmd(eng->cmd, NULL, NULL, (int)n, argv, lens);
}

/* ---- CLAIM ------------------------------------------------------------------- */

static void on_claim(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  struct rq_jobctx *jc = priv;
  redisReply *reply = r;
  struct rq_claim_result res = {.verdict = RQ_CLAIM_FAILED, .text = ""};
  if (!reply) {
    res.verdict = RQ_CLAIM_LOST;
  } else if (reply->type == REDIS_REPLY_ERROR && rq_redis_health_refused(jc->eng, reply->str)) {
    res.verdict = RQ_CLAIM_REFUSED;
  } else if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
             reply->element[0]->type != REDIS_REPLY_STRING) {
    res.text = reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply";
  } else {
    const char *verdict = reply->element[0]->str;
    res.text = reply->element[1]->type == REDIS_REPLY_STRING ? reply->element[1]->str : "";
    if (!strcmp(verdict, "foreign")) res.verdict = RQ_CLAIM_FOREIGN;
    else if (!strcmp(verdict, "dup")) res.verdict = RQ_CLAIM_DUP;
    else if (!strcmp(verdict, "suppressed")) res.verdict = RQ_CLAIM_SUPPRESSED;
    else if (!strcmp(verdict, "quota")) {
      res.verdict = RQ_CLAIM_QUOTA;
      res.free_at = strtoll(res.text, NULL, 10);
      if (reply->elements > 2 && reply->element[2]->type == REDIS_REPLY_STRING)
        res.rate_limit = atoi(reply->element[2]->str);
    } else if (!strcmp(verdict, "ok")) {
      res.verdict = RQ_CLAIM_OK;
      res.slots = atoi(res.text);
      jc->claimed = 1; /* the status has created_at: FINISH need not set it */
    } else {
      res.text = "unexpected reply";
    }
  }
  jc->eng->status_hooks.claimed(jc, &res);
}

/* The window keys of the route's rate_limits (CLAIM's KEYS[5..]) and
 * ARGV[2] "HOURLY|todo|cap|count...". */
static void claim_limits(struct args *a, size_t keys_at, const struct rq_jobctx *jc, const struct rq_claim_req *req) {
  const struct rq_engine *eng = jc->eng;
  size_t n = req->rates ? req->rates->n : 0;
  own_begin(a);
  rq_buf_put_i64(&a->text, req->hourly_quota);
  if (n) {
    rq_buf_putc(&a->text, '|');
    rq_buf_put_i64(&a->text, (int64_t)req->todo);
    rq_buf_putc(&a->text, '|');
    rq_buf_put_i64(&a->text, req->cap);
    for (size_t i = 0; i < n; i++) {
      rq_buf_putc(&a->text, '|');
      rq_buf_put_i64(&a->text, req->rates->r[i].count);
    }
  }
  own_end(a);
  /* The window keys go before ARGV (they are KEYS), written in place. */
  for (size_t i = 0; i < n; i++) {
    const struct rq_rate *r = &req->rates->r[i];
    char key[900];
    relayq__rate_key(key, sizeof key, eng->cfg->prefix, jc->job->tenant, jc->route.named ? jc->route.name : NULL,
                     r->period_ms, r->rcpt);
    a->at[keys_at + i] = a->text.len;
    rq_buf_puts(&a->text, key);
    a->argvlen[keys_at + i] = a->text.len - a->at[keys_at + i];
    rq_buf_putc(&a->text, '\0');
  }
}

/* The `sending` status's values, CLAIM's last arguments in its order
 * (scripts.c names the fields and writes state, updated_at and the
 * emptied next_attempt_at, error and detail itself: only values cross). */
static void sending_fields(struct args *a, const struct rq_jobctx *jc, const struct rq_claim_req *req) {
  arg(a, jc->job->tenant);
  own_i64(a, jc->attempt);
  arg(a, jc->eng->cfg->worker_id);
  arg(a, jc->route.name);
  own_i64(a, req->recipients);
  arg(a, jc->message_id);
}

void rq_status_claim(struct rq_jobctx *jc, const struct rq_claim_req *req) {
  struct rq_engine *eng = jc->eng;
  const struct rq_config *cfg = eng->cfg;
  const struct relayq_job *j = jc->job;
  int64_t now = relayq_now_ms();
  size_t n_rates = req->rates ? req->rates->n : 0;
  size_t nr = j->kind == RELAYQ_KIND_AUTO_REPLY ? jc->n_rcpts : 0; /* recipients whose loop marker counts */
  struct args a;
  args_init(&a, 7 + n_rates + 8 + nr + 1 + 6, 1024);

  arg(&a, "EVALSHA");
  arg(&a, eng->sha[RQ_SCRIPT_CLAIM]);
  own_i64(&a, 4 + (int64_t)n_rates);
  char key[600];
  relayq_key(key, sizeof key, cfg->prefix, RELAYQ_KEY_STATUS, j->id);
  own(&a, key);
  arg(&a, eng->events_key);
  if (req->hourly_quota > 0) relayq_key(key, sizeof key, cfg->prefix, RELAYQ_KEY_QUOTA, j->tenant), own(&a, key);
  else arg(&a, "");
  if (j->kind == RELAYQ_KIND_AUTO_REPLY)
    relayq__key(key, sizeof key, cfg->prefix, RELAYQ__KEY_AUTOREPLY, j->tenant, NULL), own(&a, key);
  else arg(&a, "");
  size_t keys_at = a.k;
  for (size_t i = 0; i < n_rates; i++) arg(&a, ""); /* claim_limits writes them */
  own_i64(&a, now);
  claim_limits(&a, keys_at, jc, req);
  own_i64(&a, cfg->quota_window_s * 1000);
  own_i64(&a, req->slots);
  /* The quota's unique member base, "ID:ATTEMPT:NOW". */
  own_begin(&a);
  rq_buf_puts(&a.text, j->id);
  rq_buf_putc(&a.text, ':');
  rq_buf_put_i64(&a.text, jc->attempt);
  rq_buf_putc(&a.text, ':');
  rq_buf_put_i64(&a.text, now);
  own_end(&a);
  const struct relayq__event ev = {j->id, j->tenant, "sending", jc->attempt, now, jc->route.name, 0, NULL,
                                   cfg->worker_id};
  args_event(&a, &ev);
  own_i64(&a, cfg->auto_reply_window_s * 1000);
  own_i64(&a, (int64_t)nr);
  for (size_t i = 0; i < nr; i++) arg(&a, jc->rcpts[i].addr);
  /* The tenant's quota pause, set while its hourly_quota or a tenant-wide
   * rate limit is used up (a route's own limit pauses nothing else). */
  if (req->hourly_quota > 0 || (n_rates && !jc->route.named))
    relayq__key(key, sizeof key, cfg->prefix, RELAYQ__KEY_TPAUSE, j->tenant, NULL), own(&a, key);
  else arg(&a, "");
  sending_fields(&a, jc, req);
  char *text = args_seal(&a);
  jc->phase = RQ_PHASE_CLAIM;
  rq_batch_call(eng, RQ_SCRIPT_CLAIM, on_claim, jc, (int)a.k, a.argv, a.argvlen);
  free(text);
  free(a.argv);
}

/* ---- breakers ---------------------------------------------------------------- */

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

/* A breaker call's continuation (the caller's callback and its argument),
 * owned by the pending call until its reply. */
struct breaker_call {
  void (*fail_cb)(void *arg, const struct rq_breaker_count *c);
  void (*probe_cb)(void *arg, const struct rq_breaker_probe *p);
  void *arg;
};

static const char *reply_str(const redisReply *r, size_t i) {
  return i < r->elements && r->element[i]->type == REDIS_REPLY_STRING ? r->element[i]->str : "";
}

static void on_fail_counted(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  struct breaker_call *bc = priv;
  const redisReply *reply = r;
  struct rq_breaker_count c = {.ok = 0};
  if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 5 &&
      reply->element[0]->type == REDIS_REPLY_INTEGER) {
    c.ok = 1;
    c.shared = (struct rq_breaker){.state = rq_breaker_state_parse(reply_str(reply, 1)),
                                   .open_until = strtoll(reply_str(reply, 2), NULL, 10),
                                   .trips = atoi(reply_str(reply, 3)),
                                   .failures = (int)reply->element[0]->integer};
    rq_errcat_parse(reply_str(reply, 4), &c.shared.reason);
  }
  bc->fail_cb(bc->arg, &c);
  free(bc);
}

void rq_status_breaker_fail(struct rq_engine *eng, const char *tenant, const char *route,
                            void (*cb)(void *arg, const struct rq_breaker_count *c), void *arg) {
  struct breaker_call *bc = rq_xcalloc(1, sizeof *bc);
  bc->fail_cb = cb;
  bc->arg = arg;
  char key[400];
  relayq__key(key, sizeof key, eng->cfg->prefix, RELAYQ__KEY_BREAKER, tenant, NULL);
  const char *argv[] = {"EVALSHA", eng->sha[RQ_SCRIPT_BREAKER_FAIL], "1", key, route};
  if (rq_rconn_cmd(eng->cmd, on_fail_counted, bc, 5, argv, NULL)) on_fail_counted(NULL, NULL, bc); /* Redis away */
}

static void on_probe(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  struct breaker_call *bc = priv;
  const redisReply *reply = r;
  struct rq_breaker_probe p = {.ok = 0, .until = -1};
  if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 3 &&
      reply->element[0]->type == REDIS_REPLY_INTEGER) {
    p.ok = 1;
    p.verdict = (int)reply->element[0]->integer;
    if (reply->element[2]->type == REDIS_REPLY_STRING) p.until = strtoll(reply->element[2]->str, NULL, 10);
  }
  bc->probe_cb(bc->arg, &p);
  free(bc);
}

int rq_status_breaker_probe(struct rq_engine *eng, const char *tenant, const char *route, int64_t probe_until,
                            void (*cb)(void *arg, const struct rq_breaker_probe *p), void *arg) {
  char key[400], now_s[24], pu[24];
  relayq__key(key, sizeof key, eng->cfg->prefix, RELAYQ__KEY_BREAKER, tenant, NULL);
  rq_fmt_i64(now_s, sizeof now_s, relayq_now_ms());
  rq_fmt_i64(pu, sizeof pu, probe_until);
  struct breaker_call *bc = rq_xcalloc(1, sizeof *bc);
  bc->probe_cb = cb;
  bc->arg = arg;
  const char *argv[] = {"EVALSHA", eng->sha[RQ_SCRIPT_BREAKER_PROBE], "1", key, route, now_s, pu};
  if (rq_rconn_cmd(eng->cmd, on_probe, bc, 7, argv, NULL)) {
    free(bc);
    return -1;
  }
  return 0;
}
