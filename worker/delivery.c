/*
 * delivery: one job's way from payload to outcome (see engine.h for the
 * modules around it and the ownership rule).
 *
 *   decode -> expired? not_before? -> tenant settings -> route + policy
 *   -> envelope (deduplicated, split by the recipient cap) -> CLAIM
 *   (idempotency, quota slots, auto-reply rule, `sending`) -> build the
 *   message once -> transactions one after another -> per-recipient
 *   outcome -> FINISH (sent | partial | failed | retry | deferred)
 *
 * Recipients accepted in an earlier attempt are never sent to again: a
 * retry carries only the recipients still pending ("_rcpt") and the
 * counts so far ("_accepted", "_rejected") in the re-encoded payload.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <relayq/relayq.h>

#include "address.h"
#include "backoff.h"
#include "batch.h"
#include "classify.h"
#include "curlfail.h"
#include "engine.h"
#include "keys.h"
#include "log.h"
#include "mailgun.h"
#include "metrics.h"
#include "mime.h"
#include "oauth.h"
#include "redis_health.h"
#include "dkim_job.h"
#include "message.h"
#include "route.h"
#include "lines.h"
#include "smtp.h"
#include "tenants.h"
#include "util.h"

#define MAX_RCPT_FIELDS 100 /* rcpt.ADDR fields written per job */

static void send_next(struct rq_jobctx *jc);
static void token_refused(struct rq_jobctx *jc, const struct rq_smtp_result *res);
static const struct rq_rates *route_rates(const struct rq_jobctx *jc);

void rq_job_free(struct rq_jobctx *jc) {
  if (jc->oauth_token) {
    OPENSSL_cleanse(jc->oauth_token, strlen(jc->oauth_token));
    free(jc->oauth_token);
  }
  if (jc->tenant) rq_tenants_release(jc->eng, jc->tenant);
  relayq_job_free(jc->job);
  for (size_t i = 0; i < jc->n_rcpts; i++) free(jc->rcpts[i].addr);
  free(jc->rcpts);
  rq_msg_free(&jc->msg); /* before the payload its segments point into */
  rq_budget_release(&jc->eng->budget, jc->budget_tenant, jc->payload_len);
  if (jc->finish_gated) jc->eng->finish_gated--; /* dropped while its FINISH waited (status.c) */
  if (jc->finish_counted) jc->eng->finish_bytes -= jc->payload_len;
  free(jc->payload);
  free(jc);
}

/* ---- status helpers ------------------------------------------------------ */

/* Status fields being assembled; values (and keys marked in key_owned)
 * are owned here until fields_free. */
struct fields {
  struct rq_status_kv kv[48 + MAX_RCPT_FIELDS];
  char key_owned[48 + MAX_RCPT_FIELDS];
  size_t n;
};

static void put(struct fields *f, const char *key, const char *value) {
  if (f->n >= sizeof f->kv / sizeof f->kv[0]) return;
  f->kv[f->n].key = key;
  f->kv[f->n].value = rq_xstrdup(value ? value : "");
  f->n++;
}

/* Like put, with a key made here ("meta.K", "rcpt.ADDR"). */
static void put_keyed(struct fields *f, const char *prefix, const char *name, const char *value) {
  if (f->n >= sizeof f->kv / sizeof f->kv[0]) return;
  size_t len = strlen(prefix) + strlen(name) + 1;
  char *key = rq_xmalloc(len);
  snprintf(key, len, "%s%s", prefix, name);
  put(f, key, value);
  f->key_owned[f->n - 1] = 1;
}

static void put_int(struct fields *f, const char *key, int64_t v) {
  char tmp[32];
  rq_fmt_i64(tmp, sizeof tmp, v);
  put(f, key, tmp);
}

static void fields_free(struct fields *f) {
  for (size_t i = 0; i < f->n; i++) {
    free(f->kv[i].value);
    if (f->key_owned[i]) free((char *)f->kv[i].key);
    f->key_owned[i] = 0;
  }
  f->n = 0;
}

static int count_rcpts(const struct rq_jobctx *jc, enum rq_rcpt_state st) {
  int n = 0;
  for (size_t i = 0; i < jc->n_rcpts; i++) n += jc->rcpts[i].state == st;
  return n;
}

/* Total distinct envelope recipients of the job (all attempts). */
static int total_recipients(const struct rq_jobctx *jc) {
  const struct relayq_job *j = jc->job;
  if (j->pending_.n) return j->accepted_ + j->rejected_ + (int)j->pending_.n;
  return (int)jc->n_rcpts;
}

/* Fields every status change after decoding carries. */
static void put_common(struct fields *f, struct rq_jobctx *jc, const char *state) {
  struct rq_engine *eng = jc->eng;
  put(f, "state", state);
  put(f, "tenant", jc->job->tenant);
  put_int(f, "updated_at", relayq_now_ms());
  put(f, "worker", eng->cfg->worker_id);
  if (jc->route.name) put(f, "route", jc->route.name);
  if (jc->message_id[0]) put(f, "message_id", jc->message_id);
  if (jc->n_rcpts) put_int(f, "recipients", total_recipients(jc));
  /* meta keys are validated by the codec (no CR/LF, bounded). */
  for (size_t i = 0; i < jc->job->n_meta; i++) put_keyed(f, "meta.", jc->job->meta[i].key, jc->job->meta[i].value);
}

/* last_code/last_enhanced/last_reply are the server's reply; a failure
 * with no reply (connect, TLS) leaves them out and says why in detail. */
static void put_last_reply(struct fields *f, const struct rq_jobctx *jc) {
  if (!jc->last_code) return;
  put_int(f, "last_code", jc->last_code);
  put(f, "last_enhanced", jc->last_enhanced);
  put(f, "last_reply", jc->last_reply);
}

/* Re-encodes the job for P:delayed or P:dead with its bookkeeping. The
 * decoded job's own pointers are restored afterwards (it owns them).
 * with_pending: 0 none; PENDING_RETRY the recipients still to try (retry);
 * PENDING_NOT_ACCEPTED every recipient not accepted (dead letter, so an
 * operator's requeue resends to exactly those). */
enum { PENDING_NONE, PENDING_RETRY, PENDING_NOT_ACCEPTED };
static unsigned char *reencode(struct rq_jobctx *jc, int attempts, int with_pending, size_t *len) {
  struct relayq_job *j = jc->job;
  struct relayq_job saved = *j;
  char **pend = NULL;
  size_t np = 0;
  if (with_pending) {
    pend = rq_xcalloc(jc->n_rcpts + 1, sizeof *pend);
    for (size_t i = 0; i < jc->n_rcpts; i++) {
      enum rq_rcpt_state st = jc->rcpts[i].state;
      if (with_pending == PENDING_NOT_ACCEPTED ? st != RQ_RCPT_ACCEPTED : (st == RQ_RCPT_TEMP || st == RQ_RCPT_TODO))
        pend[np++] = jc->rcpts[i].addr;
    }
    j->pending_.v = pend;
    j->pending_.n = np;
    /* Counts carried from earlier attempts exist only with a pending list. */
    j->accepted_ = (saved.pending_.n ? saved.accepted_ : 0) + count_rcpts(jc, RQ_RCPT_ACCEPTED);
    j->rejected_ = (saved.pending_.n ? saved.rejected_ : 0) + count_rcpts(jc, RQ_RCPT_REJECTED);
  }
  j->queue_ = jc->eng->cfg->queues[jc->queue_idx];
  j->attempts_ = attempts;
  j->created_ = jc->created_ms;
  unsigned char *out = NULL;
  struct relayq_error err;
  if (relayq_job_encode(j, &out, len, &err)) {
    RQ_LOG_FIELDS(RQ_LOG_ERROR, "could not re-encode job", {"job", j->id}, {"detail", err.message});
    out = NULL;
  }
  *j = saved;
  free(pend);
  return out;
}

/* ---- outcomes ---------------------------------------------------------------- */

/* Ends the job for good. error/detail may be NULL (sent). */
static void finish_final(struct rq_jobctx *jc, const char *state, const char *error, const char *detail) {
  struct fields f = {.n = 0};
  int64_t now = relayq_now_ms();
  int accepted = count_rcpts(jc, RQ_RCPT_ACCEPTED), rejected = count_rcpts(jc, RQ_RCPT_REJECTED);
  if (jc->job->pending_.n) {
    accepted += jc->job->accepted_;
    rejected += jc->job->rejected_;
  }
  put_common(&f, jc, state);
  put_int(&f, "attempts", jc->attempt);
  put_int(&f, "accepted", accepted);
  put_int(&f, "rejected", rejected);
  put(&f, "next_attempt_at", "");
  if (accepted > 0) put_int(&f, "sent_at", now);
  if (jc->provider_id[0]) put(&f, "provider_id", jc->provider_id);
  put_last_reply(&f, jc);
  put(&f, "error", error ? error : "");
  put(&f, "detail", detail ? detail : "");
  /* Which addresses were refused, and why (bounded). */
  size_t listed = 0;
  for (size_t i = 0; i < jc->n_rcpts && listed < MAX_RCPT_FIELDS; i++) {
    if (jc->rcpts[i].state != RQ_RCPT_REJECTED && jc->rcpts[i].state != RQ_RCPT_TEMP) continue;
    char val[64];
    snprintf(val, sizeof val, "%d %s", jc->rcpts[i].code, jc->rcpts[i].enhanced);
    put_keyed(&f, "rcpt.", jc->rcpts[i].addr, val);
    listed++;
  }
  enum rq_finish_mode mode = RQ_FINISH_ACK;
  unsigned char *park = NULL;
  size_t park_len = 0;
  if (strcmp(state, "sent") != 0 && strcmp(state, "partial") != 0) {
    mode = RQ_FINISH_DEAD; /* every failed job leaves its payload in P:dead */
    /* Only when someone accepted: otherwise a requeue resends to all. */
    park = reencode(jc, jc->attempt, accepted > 0 ? PENDING_NOT_ACCEPTED : PENDING_NONE, &park_len);
  }
  rq_metrics_final(jc->eng, state, jc->route.name, jc->job->tenant, error ? error : "", now - jc->created_ms);
  if (!strcmp(state, "sent")) jc->eng->n_sent++;
  else if (!strcmp(state, "partial")) jc->eng->n_partial++;
  else jc->eng->n_failed++;
  char code_s[16] = "", dur_s[32];
  if (jc->last_code) rq_fmt_i64(code_s, sizeof code_s, jc->last_code);
  rq_fmt_i64(dur_s, sizeof dur_s, now - jc->started_ms);
  RQ_LOG_FIELDS(strcmp(state, "sent") ? RQ_LOG_WARN : RQ_LOG_INFO, "delivery", {"job", jc->job->id},
                {"tenant", jc->job->tenant}, {"route", jc->route.name}, {"state", state}, {"error", error},
                {"code", code_s}, {"duration_ms", dur_s}, {"detail", detail});
  rq_status_finish(jc, mode, state, now, f.kv, f.n, park, park_len);
  fields_free(&f);
}

/* Fails a job that never reached a transaction (policy, expired, ...). */
static void fail(struct rq_jobctx *jc, const char *error, const char *detail) {
  jc->last_code = 0;
  finish_final(jc, "failed", error, detail);
}

/* Parks the job in P:delayed. state is `retry` or `deferred`. counts_as_attempt:
 * quota and not_before deferrals are not attempts. */
static void park(struct rq_jobctx *jc, const char *state, int64_t due_ms, int counts_as_attempt, const char *error,
                 const char *detail) {
  struct fields f = {.n = 0};
  int attempts = counts_as_attempt ? jc->attempt : jc->attempt - 1;
  put_common(&f, jc, state);
  put_int(&f, "attempts", attempts);
  put_int(&f, "next_attempt_at", due_ms);
  put_last_reply(&f, jc);
  put(&f, "error", error ? error : "");
  put(&f, "detail", detail ? detail : "");
  size_t len = 0;
  unsigned char *payload = reencode(jc, attempts, jc->n_rcpts > 0 ? PENDING_RETRY : PENDING_NONE, &len);
  if (!payload) {
    fields_free(&f);
    fail(jc, "invalid_job", "the job could not be re-encoded for a retry");
    return;
  }
  rq_metrics_parked(jc->eng, state, error ? error : (strcmp(state, "deferred") ? "" : "not_before"));
  if (!strcmp(state, "retry")) jc->eng->n_retry++;
  else jc->eng->n_deferred++;
  char due[32];
  rq_fmt_i64(due, sizeof due, due_ms);
  RQ_LOG_FIELDS(RQ_LOG_INFO, "delivery", {"job", jc->job->id}, {"tenant", jc->job->tenant},
                {"route", jc->route.name}, {"state", state}, {"error", error}, {"next_attempt_at", due},
                {"detail", detail});
  rq_status_finish(jc, RQ_FINISH_DELAY, state, due_ms, f.kv, f.n, payload, len);
  fields_free(&f);
}

static int max_attempts(const struct rq_jobctx *jc) {
  return jc->job->max_attempts > 0 ? jc->job->max_attempts : jc->eng->cfg->max_attempts;
}

/* All transactions of this attempt are done (or can't run): decide. */
static void conclude(struct rq_jobctx *jc) {
  int accepted = count_rcpts(jc, RQ_RCPT_ACCEPTED) + (jc->job->pending_.n ? jc->job->accepted_ : 0);
  int rejected = count_rcpts(jc, RQ_RCPT_REJECTED) + (jc->job->pending_.n ? jc->job->rejected_ : 0);
  int temp = count_rcpts(jc, RQ_RCPT_TEMP);
  int todo = count_rcpts(jc, RQ_RCPT_TODO);
  int64_t now = relayq_now_ms();
  const struct rq_class *c = &jc->last_class;

  if (temp + todo == 0) {
    if (rejected == 0) finish_final(jc, "sent", NULL, NULL);
    else if (accepted == 0) finish_final(jc, "failed", rq_errcat_name(c->error), c->detail);
    else finish_final(jc, "partial", rq_errcat_name(c->error), c->detail);
    return;
  }
  if (temp == 0 && todo > 0) {
    /* Only the quota stopped us: not an attempt's failure. */
    park(jc, "deferred", now + 1000, 1, "quota",
         "The tenant's hourly_quota or rate_limits are used up; the rest waits for a free slot.");
    return;
  }
  if (jc->job->expires_at && now >= jc->job->expires_at) {
    finish_final(jc, accepted ? "partial" : "failed", "expired",
                 "The job expired (expires_at) before every recipient accepted it.");
    return;
  }
  if (jc->eng->stopping == 2) { /* shutdown: the rest goes again right away, elsewhere */
    park(jc, "retry", now, 1, rq_errcat_name(c->error), "The worker stopped during the attempt; retrying.");
    return;
  }
  if (jc->attempt >= max_attempts(jc)) {
    char detail[RQ_CLASS_DETAIL_MAX + 64];
    snprintf(detail, sizeof detail, "Gave up after %d attempts. Last error: %s", jc->attempt,
             c->detail[0] ? c->detail : "temporary failure");
    /* Pending recipients are counted as rejected in the final status. */
    for (size_t i = 0; i < jc->n_rcpts; i++)
      if (jc->rcpts[i].state == RQ_RCPT_TEMP || jc->rcpts[i].state == RQ_RCPT_TODO) jc->rcpts[i].state = RQ_RCPT_REJECTED;
    finish_final(jc, accepted ? "partial" : "failed", "max_attempts", detail);
    return;
  }
  const struct rq_config *cfg = jc->eng->cfg;
  uint64_t r = 0;
  RAND_bytes((unsigned char *)&r, sizeof r);
  int64_t delay = rq_backoff_next(jc->attempt, cfg->retry_base_ms, cfg->retry_max_ms, c->retry_after_ms, r);
  int64_t due = now + delay;
  if (jc->job->expires_at && due > jc->job->expires_at) due = jc->job->expires_at;
  park(jc, "retry", due, 1, rq_errcat_name(c->error), c->detail);
}

void rq_delivery_hold(struct rq_jobctx *jc, const char *state, int64_t due_ms, const char *error, const char *detail) {
  park(jc, state, due_ms, 0, error, detail);
}

/* ---- transactions --------------------------------------------------------------- */

static void note_reply(struct rq_jobctx *jc, int code, const char *enhanced, const char *text,
                       const struct rq_class *c) {
  jc->last_code = code;
  rq_copy(jc->last_enhanced, sizeof jc->last_enhanced, enhanced ? enhanced : "");
  rq_copy(jc->last_reply, sizeof jc->last_reply, text ? text : "");
  jc->last_class = *c;
}

/* Applies one SMTP transaction's result to the recipients [first, first+n). */
static void on_smtp_done(const struct rq_smtp_result *res, void *arg) {
  struct rq_jobctx *jc = arg;
  size_t first = jc->chunk_first;
  struct rq_class c;
  rq_metrics_transaction(jc->eng, jc->route.name, res->seconds, res->err == RQ_SMTP_ERR_OK);
  if (jc->eng->stopping == 2 && res->err == RQ_SMTP_ERR_ABORTED && jc->transactions == 1 &&
      !jc->job->pending_.n) {
    /* Shutdown cut the job's only transaction: hand it back as it came. */
    rq_status_finish(jc, RQ_FINISH_REQUEUE, NULL, 0, NULL, 0, NULL, 0);
    return;
  }
  int too_many = 0, accepted_here = 0;
  jc->send_seconds += res->seconds;
  token_refused(jc, res);

  /* Per-recipient replies first. */
  for (size_t i = 0; i < res->n_rcpts; i++) {
    struct rq_rcpt *rc = &jc->rcpts[first + i];
    const struct rq_rcpt_reply *rr = &res->rcpts[i];
    rc->code = rr->code;
    rq_copy(rc->enhanced, sizeof rc->enhanced, rr->enhanced);
    if (rr->code == 0) continue; /* never answered: decided below */
    struct rq_reply rep = {.code = rr->code};
    rq_copy(rep.enhanced, sizeof rep.enhanced, rr->enhanced);
    rq_copy(rep.text, sizeof rep.text, rr->text);
    rq_classify_smtp(RQ_STAGE_RCPT, &rep, &c);
    if (c.verdict == RQ_OK) {
      rc->state = RQ_RCPT_ACCEPTED; /* provisional: DATA must succeed too */
      accepted_here++;
    } else if (c.error == RQ_ERR_TOO_MANY_RECIPIENTS) {
      rc->state = RQ_RCPT_TODO; /* goes in a further transaction */
      too_many = 1;
    } else {
      rc->state = c.verdict == RQ_TEMP ? RQ_RCPT_TEMP : RQ_RCPT_REJECTED;
      note_reply(jc, rr->code, rr->enhanced, rr->text, &c);
    }
  }

  int delivered = res->err == RQ_SMTP_ERR_OK && res->data_code >= 200 && res->data_code < 300;
  if (!delivered && accepted_here > 0) {
    /* The message itself was not taken: nobody in this transaction got it. */
    rq_smtp_classify_failure(res, &c);
    note_reply(jc, res->code, res->enhanced, res->code ? res->reply : res->errmsg, &c);
    for (size_t i = 0; i < res->n_rcpts; i++) {
      struct rq_rcpt *rc = &jc->rcpts[first + i];
      if (rc->state == RQ_RCPT_ACCEPTED) {
        rc->state = c.verdict == RQ_PERM ? RQ_RCPT_REJECTED : RQ_RCPT_TEMP;
        rc->code = res->code;
        rq_copy(rc->enhanced, sizeof rc->enhanced, res->enhanced);
      }
    }
  }
  /* Recipients never answered (the session broke before their RCPT). */
  int unanswered = 0;
  for (size_t i = 0; i < res->n_rcpts; i++) unanswered += jc->rcpts[first + i].code == 0;
  if (unanswered) {
    rq_smtp_classify_failure(res, &c);
    note_reply(jc, res->code, res->enhanced, res->code ? res->reply : res->errmsg, &c);
    for (size_t i = 0; i < res->n_rcpts; i++) {
      struct rq_rcpt *rc = &jc->rcpts[first + i];
      if (rc->code != 0 || rc->state != RQ_RCPT_TODO) continue;
      rc->state = c.verdict == RQ_PERM ? RQ_RCPT_REJECTED : RQ_RCPT_TEMP;
    }
  }
  /* The server's health, for its circuit breaker: failures before MAIL
   * (connect, greeting, TLS, login), a 421, or a dropped session; never
   * individual recipients or a rejected message. */
  struct rq_class health = {.verdict = RQ_OK};
  if (res->err != RQ_SMTP_ERR_OK && (res->stage < RQ_STAGE_MAIL || res->code == 421 || res->code == 0))
    rq_smtp_classify_failure(res, &health);
  rq_lines_outcome(jc, &health);
  if (too_many) {
    /* The server told us its cap: send the rest in smaller transactions
     * (and remember it for this job). Recipients it refused for that
     * reason were put back to TODO above. */
    int took = accepted_here > 0 ? accepted_here : 1;
    if (!jc->cap_override || took < jc->cap_override) jc->cap_override = took;
    /* Restart scanning from the first TODO recipient. */
    for (size_t i = 0; i < jc->n_rcpts; i++)
      if (jc->rcpts[i].state == RQ_RCPT_TODO) {
        jc->next_rcpt = i;
        break;
      }
  }
  send_next(jc);
}

/* A Mailgun call is one transaction for all its recipients: accepted or
 * refused together. */
static void on_mailgun_done(const struct rq_mailgun_result *res, void *arg) {
  struct rq_jobctx *jc = arg;
  struct rq_class c;
  jc->send_seconds += res->seconds;
  rq_metrics_transaction(jc->eng, jc->route.name, res->seconds, res->status >= 200 && res->status < 300);
  if (jc->eng->stopping == 2 && res->fail == RQ_FAIL_ABORTED && jc->transactions == 1 &&
      !jc->job->pending_.n) {
    rq_status_finish(jc, RQ_FINISH_REQUEUE, NULL, 0, NULL, 0, NULL, 0);
    return;
  }
  if (res->policy) { /* the saas network boundary: nothing was connected */
    c = (struct rq_class){.verdict = RQ_PERM, .error = RQ_ERR_POLICY};
    snprintf(c.detail, sizeof c.detail, "%s", res->curl_error);
  } else if (res->status == 0) rq_curl_classify(res->curl_code, res->curl_error, RQ_STAGE_CONNECT, &c);
  else rq_classify_http(res->status, res->body, res->body_len, res->retry_after, relayq_now_ms(), &c);
  rq_lines_outcome(jc, &c);
  enum rq_rcpt_state st = c.verdict == RQ_OK ? RQ_RCPT_ACCEPTED : c.verdict == RQ_TEMP ? RQ_RCPT_TEMP : RQ_RCPT_REJECTED;
  for (size_t i = jc->chunk_first; i < jc->chunk_first + jc->chunk_n; i++) {
    jc->rcpts[i].state = st;
    jc->rcpts[i].code = (int)res->status;
  }
  if (c.verdict == RQ_OK) {
    if (res->id[0]) snprintf(jc->provider_id, sizeof jc->provider_id, "%s", res->id);
  } else {
    note_reply(jc, (int)res->status, "", res->status ? res->message : res->curl_error, &c);
  }
  send_next(jc);
}

/* ---- XOAUTH2 access tokens (oauth.c) ------------------------------------------------- */

static int needs_token(const struct rq_jobctx *jc) {
  return jc->route.gateway == RQ_GW_SMTP && jc->route.smtp_conf && jc->route.smtp_conf->xoauth2 && !jc->oauth_token;
}

static void token_need(const struct rq_jobctx *jc, struct rq_oauth_need *n) {
  n->tenant = jc->job->tenant;
  n->route = jc->route.named ? jc->route.name : NULL;
  n->user = jc->route.user;
  n->conf = &jc->route.smtp_conf->oauth;
}

/* A token for this attempt, or the attempt ends with why not: a refused
 * grant is `auth` and trips the route's breaker at once. */
static void on_token(const char *token, const struct rq_class *fail, void *arg) {
  struct rq_jobctx *jc = arg;
  if (token) {
    jc->oauth_token = rq_xstrdup(token);
    send_next(jc);
    return;
  }
  note_reply(jc, 0, "", "", fail);
  rq_lines_outcome(jc, fail);
  for (size_t i = 0; i < jc->n_rcpts; i++)
    if (jc->rcpts[i].state == RQ_RCPT_TODO) jc->rcpts[i].state = fail->verdict == RQ_PERM ? RQ_RCPT_REJECTED : RQ_RCPT_TEMP;
  send_next(jc);
}

static void get_token(struct rq_jobctx *jc) {
  struct rq_oauth_need n;
  token_need(jc, &n);
  rq_oauth_get(jc->eng, &n, on_token, jc);
}

/* The server refused our token: the next attempt asks for a new one. */
static void token_refused(struct rq_jobctx *jc, const struct rq_smtp_result *res) {
  if (!jc->oauth_token || res->err != RQ_SMTP_ERR_AUTH || res->code < 500) return;
  struct rq_oauth_need n;
  token_need(jc, &n);
  rq_oauth_invalidate(jc->eng, &n, jc->oauth_token);
}

static int recipient_cap(const struct rq_jobctx *jc) {
  int cap = jc->route.max_recipients;
  if (jc->cap_override && jc->cap_override < cap) cap = jc->cap_override;
  return cap > 0 ? cap : 1;
}

static void on_smtp_ready(void *arg) { rq_lines_ready(arg); }

/* Starts the next transaction, or concludes the attempt. */
static void send_next(struct rq_jobctx *jc) {
  while (jc->next_rcpt < jc->n_rcpts && jc->rcpts[jc->next_rcpt].state != RQ_RCPT_TODO) jc->next_rcpt++;
  if (jc->next_rcpt < jc->n_rcpts && jc->eng->stopping == 2) {
    for (size_t i = jc->next_rcpt; i < jc->n_rcpts; i++)
      if (jc->rcpts[i].state == RQ_RCPT_TODO) jc->rcpts[i].state = RQ_RCPT_TEMP;
    jc->next_rcpt = jc->n_rcpts;
  }
  if (jc->next_rcpt >= jc->n_rcpts) {
    conclude(jc);
    return;
  }
  if (jc->transactions >= jc->slots) {
    conclude(jc); /* quota: remaining recipients stay TODO -> deferred */
    return;
  }
  /* The breaker let this job through when its line admitted it (lines.c). */
  if (needs_token(jc)) {
    get_token(jc);
    return;
  }
  int cap = recipient_cap(jc);
  const char *list[RELAYQ_MAX_RECIPIENTS];
  size_t n = 0;
  size_t first = jc->next_rcpt;
  for (size_t i = first; i < jc->n_rcpts && n < (size_t)cap; i++) {
    if (jc->rcpts[i].state != RQ_RCPT_TODO) break; /* keep the chunk contiguous */
    list[n++] = jc->rcpts[i].addr;
  }
  jc->next_rcpt = first + n;
  jc->chunk_first = first;
  jc->chunk_n = n;
  jc->transactions++;
  jc->eng->n_attempts++;
  int rc;
  if (jc->route.gateway == RQ_GW_MAILGUN) {
    const struct rq_config *cfg = jc->eng->cfg;
    struct rq_mailgun_request req = {
        .base_url = jc->route.mg_base_url,
        .domain = jc->route.mg_domain,
        .api_key = jc->route.mg_key,
        .rcpts = list,
        .n_rcpts = n,
        .body = &jc->msg,
        .connect_timeout_ms = cfg->smtp_connect_timeout_ms,
        .timeout_ms = cfg->smtp_timeout_ms,
        .ca_file = cfg->ca_file,
        .netpolicy = jc->route.netpolicy,
    };
    rq_lines_ready(jc); /* an HTTP API: no session to prove, the send slot now */
    rc = rq_mailgun_send(jc->eng->mailgun, &req, on_mailgun_done, jc);
  } else {
    struct rq_smtp_target t;
    rq_settings_smtp_target(jc->eng->cfg, &jc->route, &t);
    if (jc->oauth_token) t.password = jc->oauth_token;
    t.ready = on_smtp_ready; /* the send slot only once the server answers (lines.h) */
    rc = rq_smtp_send_msg(jc->eng->smtp, &t, jc->from_addr, list, n, &jc->msg, on_smtp_done, jc);
  }
  if (rc) {
    struct rq_class c = {.verdict = RQ_TEMP, .error = RQ_ERR_CONNECT};
    snprintf(c.detail, sizeof c.detail, "The transfer could not be started (internal error %d); will retry.", rc);
    note_reply(jc, 0, "", "", &c);
    for (size_t i = first; i < first + n; i++) jc->rcpts[i].state = RQ_RCPT_TEMP;
    send_next(jc);
  }
}

/* ---- claim ------------------------------------------------------------------------ */

/* Returns 0, -1 (the job cannot be built: invalid_job) or -2 (the tenant's
 * DKIM key is unusable: policy). */
static int build_message(struct rq_jobctx *jc, char *err, size_t errlen);

static void on_claim(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  struct rq_jobctx *jc = priv;
  redisReply *reply = r;
  if (!reply) {
    /* Redis went away before answering: we do not know whether the job was
     * claimed. Hand it back; it is still in inflight and is resent (a
     * status of `sending` without a send is harmless). */
    jc->phase = RQ_PHASE_FINISH;
    rq_status_finish(jc, RQ_FINISH_REQUEUE, NULL, 0, NULL, 0, NULL, 0);
    return;
  }
  if (reply->type == REDIS_REPLY_ERROR && rq_redis_health_refused(jc->eng, reply->str)) {
    jc->phase = RQ_PHASE_REDIS_WAIT; /* held; rq_delivery_resume_waiting claims it again */
    return;
  }
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 || reply->element[0]->type != REDIS_REPLY_STRING) {
    RQ_LOG_FIELDS(RQ_LOG_ERROR, "claim script failed", {"job", jc->job->id},
                  {"detail", reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply"});
    rq_status_finish(jc, RQ_FINISH_REQUEUE, NULL, 0, NULL, 0, NULL, 0);
    return;
  }
  const char *verdict = reply->element[0]->str;
  const char *arg = reply->element[1]->type == REDIS_REPLY_STRING ? reply->element[1]->str : "";
  if (!strcmp(verdict, "foreign")) {
    /* FINISH leaves the other tenant's status alone and dead-letters this
     * job; the detail names no tenant. */
    fail(jc, "invalid_job", "This job id is already used by another job (ids are the idempotency key): the job was "
                            "not sent; send it again with a new id.");
    return;
  }
  if (!strcmp(verdict, "dup")) {
    jc->eng->n_dup++;
    RQ_LOG_FIELDS(RQ_LOG_INFO, "duplicate job acknowledged without sending", {"job", jc->job->id},
                  {"tenant", jc->job->tenant}, {"state", arg});
    rq_status_finish(jc, RQ_FINISH_ACK, NULL, 0, NULL, 0, NULL, 0);
    return;
  }
  if (!strcmp(verdict, "quota")) {
    int64_t due = strtoll(arg, NULL, 10);
    char detail[400];
    const char *which = reply->elements > 2 && reply->element[2]->type == REDIS_REPLY_STRING ? reply->element[2]->str : "";
    const struct rq_rates *rates = route_rates(jc);
    long idx = atol(which);
    if (rates && idx >= 1 && (size_t)idx <= rates->n) {
      char what[80], spec[40];
      rq_rate_describe(&rates->r[idx - 1], what, sizeof what);
      rq_rate_format(&rates->r[idx - 1], spec, sizeof spec);
      int64_t wait_s = (due - relayq_now_ms() + 999) / 1000;
      snprintf(detail, sizeof detail,
               "The route's sending limit of %s (rate_limits %s) is reached; the job waits until it clears in %lld s.",
               what, spec, (long long)(wait_s > 0 ? wait_s : 0));
    } else {
      snprintf(detail, sizeof detail,
               "The tenant's quota of %ld messages per %llds is used up; the job waits for a free slot.",
               jc->tenant->t ? jc->tenant->t->hourly_quota : 0L, (long long)jc->eng->cfg->quota_window_s);
    }
    park(jc, "deferred", due, 0, "quota", detail);
    return;
  }
  if (!strcmp(verdict, "suppressed")) {
    char detail[RELAYQ_MAX_ADDRESS_LEN + 200];
    snprintf(detail, sizeof detail,
             "An auto-reply already went to %s from this tenant within %llds; suppressed to prevent a mail loop.",
             arg, (long long)jc->eng->cfg->auto_reply_window_s);
    fail(jc, "policy", detail);
    return;
  }
  jc->claimed = 1;
  /* Without a quota every transaction may run; with one, each needs a
   * slot (a 452 split that needs more than claimed waits for the next). */
  const struct rq_rates *rates = route_rates(jc);
  jc->slots = (jc->tenant->t && jc->tenant->t->hourly_quota > 0) || (rates && rates->n) ? atoi(arg)
                                                                                      : RELAYQ_MAX_RECIPIENTS + 1;
  char err[300];
  int built = build_message(jc, err, sizeof err);
  if (built) {
    fail(jc, built == -2 ? "policy" : "invalid_job", err);
    return;
  }
  jc->phase = RQ_PHASE_SENDING;
  send_next(jc);
}

/* The rate_limits that apply to the job's route: a named route's own, else
 * the tenant's (whatever its gateway). */
static const struct rq_rates *route_rates(const struct rq_jobctx *jc) {
  if (jc->route.smtp_conf) return &jc->route.smtp_conf->rates;
  return jc->tenant->t ? &jc->tenant->t->smtp.rates : NULL;
}

/* CLAIM's rate_limits arguments (scripts.c): one window key per limit and
 * ARGV[2] "HOURLY|todo|cap|count..."; returns the number of keys. */
static size_t rate_args(const struct rq_jobctx *jc, const struct rq_rates *rates, long hourly, size_t todo, int cap,
                        char *limit_s, size_t limit_cap, char keys[][700]) {
  size_t n = rates ? rates->n : 0;
  int w = (int)rq_fmt_i64(limit_s, limit_cap, hourly); /* snprintf costs ten times this per message */
  if (n == 0) return 0;
  w += snprintf(limit_s + w, limit_cap - (size_t)w, "|%zu|%d", todo, cap);
  for (size_t i = 0; i < n && (size_t)w < limit_cap; i++) {
    const struct rq_rate *r = &rates->r[i];
    w += snprintf(limit_s + w, limit_cap - (size_t)w, "|%ld", r->count);
    if (jc->route.named)
      snprintf(keys[i], 700, "%s:rate:%s:route:%s:%lld:%c", jc->eng->cfg->prefix, jc->job->tenant, jc->route.name,
               (long long)r->period_ms, r->rcpt ? 'r' : 'm');
    else
      snprintf(keys[i], 700, "%s:rate:%s:%lld:%c", jc->eng->cfg->prefix, jc->job->tenant, (long long)r->period_ms,
               r->rcpt ? 'r' : 'm');
  }
  return n;
}

static void claim(struct rq_jobctx *jc) {
  struct rq_engine *eng = jc->eng;
  const struct rq_tenant *t = jc->tenant->t;
  const struct relayq_job *j = jc->job;
  char status_key[300], quota_key[300] = "", auto_key[600] = "", now_s[24], limit_s[400], win_s[24], slots_s[16],
       member[300], arwin_s[24], nr_s[16], attempts_s[16], recips_s[16];
  int64_t now = relayq_now_ms();
  relayq_key(status_key, sizeof status_key, eng->cfg->prefix, RELAYQ_KEY_STATUS, j->id);
  long limit = t ? t->hourly_quota : 0;
  if (limit > 0) relayq_key(quota_key, sizeof quota_key, eng->cfg->prefix, RELAYQ_KEY_QUOTA, j->tenant);
  int cap = recipient_cap(jc);
  size_t todo = (size_t)count_rcpts(jc, RQ_RCPT_TODO);
  int slots = (int)((todo + (size_t)cap - 1) / (size_t)cap);
  const struct rq_rates *rates = route_rates(jc);
  char rate_keys[RQ_RATE_MAX][700];
  size_t n_rates = rate_args(jc, rates, limit, todo, cap, limit_s, sizeof limit_s, rate_keys);
  if (j->kind == RELAYQ_KIND_AUTO_REPLY)
    relayq__key(auto_key, sizeof auto_key, eng->cfg->prefix, RELAYQ__KEY_AUTOREPLY, j->tenant, NULL);
  rq_fmt_i64(now_s, sizeof now_s, now);
  rq_fmt_i64(win_s, sizeof win_s, eng->cfg->quota_window_s * 1000);
  rq_fmt_i64(slots_s, sizeof slots_s, slots);
  /* "ID:ATTEMPT:NOW" without snprintf (ten times the cost, per message);
   * the id is at most RELAYQ_ID_MAX characters, so it fits. */
  size_t mk = strlen(j->id);
  memcpy(member, j->id, mk);
  member[mk++] = ':';
  mk += rq_fmt_i64(member + mk, sizeof member - mk, jc->attempt);
  member[mk++] = ':';
  rq_fmt_i64(member + mk, sizeof member - mk, now);
  rq_fmt_i64(arwin_s, sizeof arwin_s, eng->cfg->auto_reply_window_s * 1000);
  rq_fmt_i64(attempts_s, sizeof attempts_s, jc->attempt);
  rq_fmt_i64(recips_s, sizeof recips_s, total_recipients(jc));
  size_t nr = j->kind == RELAYQ_KIND_AUTO_REPLY ? jc->n_rcpts : 0;
  rq_fmt_i64(nr_s, sizeof nr_s, nr);

  struct rq_buf ev;
  rq_buf_init(&ev);
  rq_status_event_json(&ev, j->id, j->tenant, "sending", jc->attempt, now, jc->route.name, 0, NULL,
                       eng->cfg->worker_id);
  char nkeys_s[8];
  rq_fmt_i64(nkeys_s, sizeof nkeys_s, 4 + (int64_t)n_rates);
  const char *fixed[] = {"EVALSHA",   eng->sha[RQ_SCRIPT_CLAIM],
                         nkeys_s,     status_key,
                         eng->events_key, quota_key,
                         auto_key};
  const char *fixed2[] = {now_s,
                         limit_s,     win_s,
                         slots_s,     member,
                         ev.data,     arwin_s,
                         nr_s};
  size_t nfixed = sizeof fixed / sizeof fixed[0], nfixed2 = sizeof fixed2 / sizeof fixed2[0];
  /* The `sending` status's values, in CLAIM's order (scripts.c names the
   * fields and writes state, updated_at and the emptied ones itself). */
  const char *status_fields[] = {j->tenant, attempts_s, eng->cfg->worker_id, jc->route.name, recips_s,
                                 jc->message_id};
  size_t nsf = sizeof status_fields / sizeof status_fields[0];
  char pause_key[300] = "";
  if (limit > 0 || (n_rates && !jc->route.named))
    relayq__key(pause_key, sizeof pause_key, eng->cfg->prefix, RELAYQ__KEY_TPAUSE, j->tenant, NULL);
  size_t argc = nfixed + n_rates + nfixed2 + nr + 1 + nsf;
  const char **argv = rq_xmalloc(argc * sizeof *argv);
  size_t k = 0;
  for (size_t i = 0; i < nfixed; i++) argv[k++] = fixed[i];
  for (size_t i = 0; i < n_rates; i++) argv[k++] = rate_keys[i];
  for (size_t i = 0; i < nfixed2; i++) argv[k++] = fixed2[i];
  for (size_t i = 0; i < nr; i++) argv[k++] = jc->rcpts[i].addr;
  argv[k++] = pause_key;
  for (size_t i = 0; i < nsf; i++) argv[k++] = status_fields[i];
  jc->phase = RQ_PHASE_CLAIM;
  rq_batch_call(eng, RQ_SCRIPT_CLAIM, on_claim, jc, (int)argc, argv, NULL);
  free(argv);
  rq_buf_free(&ev);
}

void rq_delivery_resume_waiting(struct rq_engine *eng) {
  struct rq_jobctx *next;
  for (struct rq_jobctx *jc = eng->jobs; jc; jc = next) {
    next = jc->next; /* a claim may finish (and free) jc synchronously */
    if (jc->phase != RQ_PHASE_REDIS_WAIT) continue;
    if (eng->stopping) rq_status_finish(jc, RQ_FINISH_REQUEUE, NULL, 0, NULL, 0, NULL, 0);
    else claim(jc);
  }
}

/* ---- routing, sender, envelope ------------------------------------------------------ */

static int build_message(struct rq_jobctx *jc, char *err, size_t errlen) {
  const struct rq_message_input in = {
      .settings = &jc->eng->routing,
      .tenant = jc->tenant->t,
      .job = jc->job,
      .route = &jc->route,
      .message_id = jc->message_id,
      .date_ms = jc->created_ms, /* origination time: a retry sends identical bytes */
      .now_s = (int64_t)time(NULL),
      .dkim_key = rq_dkim_job_key,
      .dkim_arg = jc,
  };
  return rq_message_build(&in, &jc->msg, err, errlen);
}

/* Envelope: the pending recipients of a retry, else to+cc+bcc, as bare
 * addresses, each once (case-insensitive), in order. */
static int build_envelope(struct rq_jobctx *jc, char *err, size_t errlen) {
  const struct relayq_job *j = jc->job;
  const struct relayq_strv *lists[3] = {&j->to, &j->cc, &j->bcc};
  size_t cap = j->pending_.n ? j->pending_.n : j->to.n + j->cc.n + j->bcc.n;
  jc->rcpts = rq_xcalloc(cap ? cap : 1, sizeof *jc->rcpts);
  for (int l = 0; l < 3; l++) {
    const struct relayq_strv *sv = j->pending_.n ? (l == 0 ? &j->pending_ : NULL) : lists[l];
    if (!sv) continue;
    for (size_t i = 0; i < sv->n; i++) {
      char addr[RELAYQ_MAX_ADDRESS_LEN + 1], name[RELAYQ_MAX_ADDRESS_LEN + 1];
      if (rq_addr_parse(sv->v[i], addr, sizeof addr, name, sizeof name)) {
        snprintf(err, errlen, "recipient '%.200s' is not a valid address", sv->v[i]);
        return -1;
      }
      int seen = 0;
      for (size_t k = 0; k < jc->n_rcpts && !seen; k++) seen = !strcasecmp(jc->rcpts[k].addr, addr);
      if (seen) continue;
      jc->rcpts[jc->n_rcpts].addr = rq_xstrdup(addr);
      jc->rcpts[jc->n_rcpts].state = RQ_RCPT_TODO;
      jc->n_rcpts++;
    }
  }
  if (jc->n_rcpts == 0) {
    snprintf(err, errlen, "the job has no recipient");
    return -1;
  }
  return 0;
}

static void on_tenant(struct rq_jobctx *jc, struct rq_tenant_entry *e) {
  char err[600];
  if (e->error[0]) {
    /* A secret sealed for another place is a login that cannot be used:
     * `auth`, like a refused one; nothing was sent to any server. */
    fail(jc, e->error_auth ? "auth" : "policy", e->error);
    return;
  }
  if (build_envelope(jc, err, sizeof err)) {
    fail(jc, "invalid_job", err);
    return;
  }
  const char *error = NULL;
  int r = rq_route_resolve(&jc->eng->routing, e->t, jc->job, &jc->route, &error, err, sizeof err);
  if (r < 0) {
    fail(jc, error, err);
    return;
  }
  if (r > 0) { /* this worker can't serve it now: an attempt that failed temporarily */
    jc->last_class = (struct rq_class){.verdict = RQ_TEMP, .error = RQ_ERR_CONNECT};
    snprintf(jc->last_class.detail, sizeof jc->last_class.detail, "%s", err);
    for (size_t i = 0; i < jc->n_rcpts; i++) jc->rcpts[i].state = RQ_RCPT_TEMP;
    conclude(jc);
    return;
  }
  struct rq_sender s;
  rq_route_sender(&jc->eng->routing, e->t, jc->job, &jc->route, &s);
  rq_copy(jc->from_addr, sizeof jc->from_addr, s.envelope_from);
  struct rq_buf mid;
  rq_buf_init(&mid);
  rq_mime_message_id(jc->job->id, rq_route_domain_of(s.from_addr), &mid);
  rq_copy(jc->message_id, sizeof jc->message_id, mid.data);
  rq_buf_free(&mid);
  rq_lines_submit(jc); /* waits for its tenant route's turn, holding no send slot */
}

void rq_delivery_admitted(struct rq_jobctx *jc) { claim(jc); }

/* ---- entry ------------------------------------------------------------------------------ */

static void invalid(struct rq_jobctx *jc, const struct relayq_error *e) {
  struct rq_engine *eng = jc->eng;
  struct rq_status_kv kv[12];
  size_t n = 0;
  char now_s[24];
  rq_fmt_i64(now_s, sizeof now_s, relayq_now_ms());
  eng->n_invalid++;
  eng->n_failed++;
  RQ_LOG_FIELDS(RQ_LOG_WARN, "invalid job dead-lettered", {"job", e->id[0] ? e->id : NULL},
                {"tenant", e->tenant[0] ? e->tenant : NULL}, {"state", "failed"}, {"error", "invalid_job"},
                {"detail", e->message});
  snprintf(jc->invalid_id, sizeof jc->invalid_id, "%s", e->id);
  if (e->id[0]) {
    kv[n++] = (struct rq_status_kv){"state", "failed"};
    kv[n++] = (struct rq_status_kv){"error", "invalid_job"};
    kv[n++] = (struct rq_status_kv){"detail", (char *)e->message};
    kv[n++] = (struct rq_status_kv){"updated_at", now_s};
    kv[n++] = (struct rq_status_kv){"worker", eng->cfg->worker_id};
    kv[n++] = (struct rq_status_kv){"attempts", "0"};
    if (e->tenant[0]) kv[n++] = (struct rq_status_kv){"tenant", (char *)e->tenant};
  }
  rq_status_finish(jc, RQ_FINISH_DEAD, "failed", relayq_now_ms(), kv, n, NULL, 0);
}

void rq_delivery_start(struct rq_jobctx *jc) {
  struct rq_engine *eng = jc->eng;
  struct relayq_error err;
  memset(&err, 0, sizeof err);
  jc->started_ms = relayq_now_ms();
  int bad = relayq_job_decode_ref(jc->payload, jc->payload_len, eng->cfg->max_job_bytes, &jc->job, &err);
  if (!bad) jc->budget_tenant = rq_budget_attach(&eng->budget, jc->job->tenant, jc->payload_len);
  if (bad) {
    if (err.code == RELAYQ_ETOO_LARGE) {
      /* The size is checked before decoding; the id and tenant usually sit
       * at the start of the map, so read them from a bounded prefix to give
       * the job its invalid_job status. */
      struct relayq_error head;
      struct relayq_job *none = NULL;
      memset(&head, 0, sizeof head);
      relayq_job_decode(jc->payload, jc->payload_len < 65536 ? jc->payload_len : 65536, 0, &none, &head);
      relayq_job_free(none);
      if (!err.id[0]) memcpy(err.id, head.id, sizeof err.id);
      if (!err.tenant[0]) memcpy(err.tenant, head.tenant, sizeof err.tenant);
      snprintf(err.message, sizeof err.message,
               "The payload is %zu bytes, larger than this worker's limit of %zu bytes (RELAYQ_MAX_JOB_BYTES): "
               "send large files as links, or raise the limit.",
               jc->payload_len, eng->cfg->max_job_bytes);
    }
    jc->job = NULL;
    invalid(jc, &err);
    return;
  }
  struct relayq_job *j = jc->job;
  jc->attempt = j->attempts_ + 1;
  jc->created_ms = j->created_ ? j->created_ : jc->started_ms;
  int64_t now = jc->started_ms;
  if (j->expires_at && now >= j->expires_at) {
    fail(jc, "expired", "The job expired (expires_at) before it could be delivered.");
    return;
  }
  if (j->not_before && now < j->not_before) {
    park(jc, "deferred", j->not_before, 0, NULL, "Waiting for not_before.");
    return;
  }
  jc->phase = RQ_PHASE_TENANT;
  rq_tenants_get(eng, jc, j->tenant, on_tenant);
}
