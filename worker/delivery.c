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
#include "classify.h"
#include "curlfail.h"
#include "delivery.h"
#include "engine.h"
#include "log.h"
#include "mailgun.h"
#include "metrics.h"
#include "mime.h"
#include "oauth.h"
#include "dkim_job.h"
#include "message.h"
#include "route.h"
#include "lines.h"
#include "smtp.h"
#include "tenants.h"
#include "util.h"

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

/* ---- outcomes ---------------------------------------------------------------- */

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

/* What every outcome of a decoded job carries: its recipients and the
 * last noteworthy reply (the rejection on partial/failed). */
static struct rq_outcome outcome_of(const struct rq_jobctx *jc, enum rq_state state, enum rq_errcat error,
                                    const char *detail) {
  return (struct rq_outcome){
      .state = state,
      .error = error,
      .detail = detail,
      .recipients = jc->n_rcpts ? total_recipients(jc) : 0,
      .code = jc->last_code,
      .enhanced = jc->last_enhanced,
      .reply = jc->last_reply,
  };
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

/* Ends the job for good: sent, partial or failed (error NONE for sent). */
static void finish_final(struct rq_jobctx *jc, enum rq_state state, enum rq_errcat error, const char *detail) {
  int64_t now = relayq_now_ms();
  struct rq_outcome o = outcome_of(jc, state, error, detail);
  o.mode = RQ_FINISH_ACK;
  o.attempts = jc->attempt;
  o.accepted = count_rcpts(jc, RQ_RCPT_ACCEPTED);
  o.rejected = count_rcpts(jc, RQ_RCPT_REJECTED);
  if (jc->job->pending_.n) {
    o.accepted += jc->job->accepted_;
    o.rejected += jc->job->rejected_;
  }
  o.provider_id = jc->provider_id;
  o.rcpts = jc->rcpts;
  o.n_rcpts = jc->n_rcpts;
  if (state == RQ_STATE_FAILED) {
    o.mode = RQ_FINISH_DEAD; /* every failed job leaves its payload in P:dead */
    /* Only when someone accepted: otherwise a requeue resends to all. */
    o.park = reencode(jc, jc->attempt, o.accepted > 0 ? PENDING_NOT_ACCEPTED : PENDING_NONE, &o.park_len);
  }
  const char *state_s = rq_state_name(state), *error_s = rq_errcat_name(error);
  rq_metrics_final(jc->eng, state_s, jc->route.name, jc->job->tenant, error_s, now - jc->created_ms);
  if (state == RQ_STATE_SENT) jc->eng->n_sent++;
  else if (state == RQ_STATE_PARTIAL) jc->eng->n_partial++;
  else jc->eng->n_failed++;
  char code_s[16] = "", dur_s[32];
  if (jc->last_code) rq_fmt_i64(code_s, sizeof code_s, jc->last_code);
  rq_fmt_i64(dur_s, sizeof dur_s, now - jc->started_ms);
  RQ_LOG_FIELDS(state != RQ_STATE_SENT ? RQ_LOG_WARN : RQ_LOG_INFO, "delivery", {"job", jc->job->id},
                {"tenant", jc->job->tenant}, {"route", jc->route.name}, {"state", state_s},
                {"error", error_s[0] ? error_s : NULL}, {"code", code_s}, {"duration_ms", dur_s}, {"detail", detail});
  rq_status_finish(jc, &o);
}

/* Fails a job that never reached a transaction (policy, expired, ...). */
static void fail(struct rq_jobctx *jc, enum rq_errcat error, const char *detail) {
  jc->last_code = 0;
  finish_final(jc, RQ_STATE_FAILED, error, detail);
}

/* Parks the job in P:delayed: RQ_STATE_RETRY or RQ_STATE_DEFERRED.
 * counts_as_attempt: quota and not_before deferrals are not attempts. */
static void park(struct rq_jobctx *jc, enum rq_state state, int64_t due_ms, int counts_as_attempt,
                 enum rq_errcat error, const char *detail) {
  struct rq_outcome o = outcome_of(jc, state, error, detail);
  o.mode = RQ_FINISH_DELAY;
  o.due_ms = due_ms;
  o.attempts = counts_as_attempt ? jc->attempt : jc->attempt - 1;
  o.park = reencode(jc, o.attempts, jc->n_rcpts > 0 ? PENDING_RETRY : PENDING_NONE, &o.park_len);
  if (!o.park) {
    fail(jc, RQ_ERR_INVALID_JOB, "the job could not be re-encoded for a retry");
    return;
  }
  const char *state_s = rq_state_name(state), *error_s = rq_errcat_name(error);
  rq_metrics_parked(jc->eng, state_s, error_s[0] ? error_s : state == RQ_STATE_DEFERRED ? "not_before" : "");
  if (state == RQ_STATE_RETRY) jc->eng->n_retry++;
  else jc->eng->n_deferred++;
  char due[32];
  rq_fmt_i64(due, sizeof due, due_ms);
  RQ_LOG_FIELDS(RQ_LOG_INFO, "delivery", {"job", jc->job->id}, {"tenant", jc->job->tenant},
                {"route", jc->route.name}, {"state", state_s}, {"error", error_s[0] ? error_s : NULL},
                {"next_attempt_at", due}, {"detail", detail});
  rq_status_finish(jc, &o);
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
    if (rejected == 0) finish_final(jc, RQ_STATE_SENT, RQ_ERR_NONE, NULL);
    else if (accepted == 0) finish_final(jc, RQ_STATE_FAILED, c->error, c->detail);
    else finish_final(jc, RQ_STATE_PARTIAL, c->error, c->detail);
    return;
  }
  if (temp == 0 && todo > 0) {
    /* Only the quota stopped us: not an attempt's failure. */
    park(jc, RQ_STATE_DEFERRED, now + 1000, 1, RQ_ERR_QUOTA,
         "The tenant's hourly_quota or rate_limits are used up; the rest waits for a free slot.");
    return;
  }
  if (jc->job->expires_at && now >= jc->job->expires_at) {
    finish_final(jc, accepted ? RQ_STATE_PARTIAL : RQ_STATE_FAILED, RQ_ERR_EXPIRED,
                 "The job expired (expires_at) before every recipient accepted it.");
    return;
  }
  if (jc->eng->stopping == 2) { /* shutdown: the rest goes again right away, elsewhere */
    park(jc, RQ_STATE_RETRY, now, 1, c->error, "The worker stopped during the attempt; retrying.");
    return;
  }
  if (jc->attempt >= max_attempts(jc)) {
    char detail[RQ_CLASS_DETAIL_MAX + 64];
    snprintf(detail, sizeof detail, "Gave up after %d attempts. Last error: %s", jc->attempt,
             c->detail[0] ? c->detail : "temporary failure");
    /* Pending recipients are counted as rejected in the final status. */
    for (size_t i = 0; i < jc->n_rcpts; i++)
      if (jc->rcpts[i].state == RQ_RCPT_TEMP || jc->rcpts[i].state == RQ_RCPT_TODO) jc->rcpts[i].state = RQ_RCPT_REJECTED;
    finish_final(jc, accepted ? RQ_STATE_PARTIAL : RQ_STATE_FAILED, RQ_ERR_MAX_ATTEMPTS, detail);
    return;
  }
  const struct rq_config *cfg = jc->eng->cfg;
  uint64_t r = 0;
  RAND_bytes((unsigned char *)&r, sizeof r);
  int64_t delay = rq_backoff_next(jc->attempt, cfg->retry_base_ms, cfg->retry_max_ms, c->retry_after_ms, r);
  int64_t due = now + delay;
  if (jc->job->expires_at && due > jc->job->expires_at) due = jc->job->expires_at;
  park(jc, RQ_STATE_RETRY, due, 1, c->error, c->detail);
}

void rq_delivery_hold(struct rq_jobctx *jc, enum rq_state state, int64_t due_ms, enum rq_errcat error,
                      const char *detail) {
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
    rq_status_hand_back(jc);
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
    rq_status_hand_back(jc);
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

void rq_delivery_claimed(struct rq_jobctx *jc, const struct rq_claim_result *r) {
  switch (r->verdict) {
  case RQ_CLAIM_LOST:
    /* Redis went away before answering: we do not know whether the job was
     * claimed. Hand it back; it is still in inflight and is resent (a
     * status of `sending` without a send is harmless). */
    jc->phase = RQ_PHASE_FINISH;
    rq_status_hand_back(jc);
    return;
  case RQ_CLAIM_REFUSED:
    jc->phase = RQ_PHASE_REDIS_WAIT; /* held; rq_delivery_resume_waiting claims it again */
    return;
  case RQ_CLAIM_FAILED:
    RQ_LOG_FIELDS(RQ_LOG_ERROR, "claim script failed", {"job", jc->job->id}, {"detail", r->text});
    rq_status_hand_back(jc);
    return;
  case RQ_CLAIM_FOREIGN:
    /* FINISH leaves the other tenant's status alone and dead-letters this
     * job; the detail names no tenant. */
    fail(jc, RQ_ERR_INVALID_JOB, "This job id is already used by another job (ids are the idempotency key): the job "
                                 "was not sent; send it again with a new id.");
    return;
  case RQ_CLAIM_DUP: {
    jc->eng->n_dup++;
    RQ_LOG_FIELDS(RQ_LOG_INFO, "duplicate job acknowledged without sending", {"job", jc->job->id},
                  {"tenant", jc->job->tenant}, {"state", r->text});
    const struct rq_outcome ack = {.state = RQ_STATE_NONE, .mode = RQ_FINISH_ACK};
    rq_status_finish(jc, &ack);
    return;
  }
  case RQ_CLAIM_QUOTA: {
    char detail[400];
    const struct rq_rates *rates = route_rates(jc);
    int idx = r->rate_limit;
    if (rates && idx >= 1 && (size_t)idx <= rates->n) {
      char what[80], spec[40];
      rq_rate_describe(&rates->r[idx - 1], what, sizeof what);
      rq_rate_format(&rates->r[idx - 1], spec, sizeof spec);
      int64_t wait_s = (r->free_at - relayq_now_ms() + 999) / 1000;
      snprintf(detail, sizeof detail,
               "The route's sending limit of %s (rate_limits %s) is reached; the job waits until it clears in %lld s.",
               what, spec, (long long)(wait_s > 0 ? wait_s : 0));
    } else {
      snprintf(detail, sizeof detail,
               "The tenant's quota of %ld messages per %llds is used up; the job waits for a free slot.",
               jc->tenant->t ? jc->tenant->t->hourly_quota : 0L, (long long)jc->eng->cfg->quota_window_s);
    }
    park(jc, RQ_STATE_DEFERRED, r->free_at, 0, RQ_ERR_QUOTA, detail);
    return;
  }
  case RQ_CLAIM_SUPPRESSED: {
    char detail[RELAYQ_MAX_ADDRESS_LEN + 200];
    snprintf(detail, sizeof detail,
             "An auto-reply already went to %s from this tenant within %llds; suppressed to prevent a mail loop.",
             r->text, (long long)jc->eng->cfg->auto_reply_window_s);
    fail(jc, RQ_ERR_POLICY, detail);
    return;
  }
  case RQ_CLAIM_OK: break;
  }
  /* Without a quota every transaction may run; with one, each needs a
   * slot (a 452 split that needs more than claimed waits for the next). */
  const struct rq_rates *rates = route_rates(jc);
  jc->slots = (jc->tenant->t && jc->tenant->t->hourly_quota > 0) || (rates && rates->n) ? r->slots
                                                                                      : RELAYQ_MAX_RECIPIENTS + 1;
  char err[300];
  int built = build_message(jc, err, sizeof err);
  if (built) {
    fail(jc, built == -2 ? RQ_ERR_POLICY : RQ_ERR_INVALID_JOB, err);
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

/* Asks CLAIM for the transactions this attempt needs (status.c writes it). */
static void claim(struct rq_jobctx *jc) {
  int cap = recipient_cap(jc);
  size_t todo = (size_t)count_rcpts(jc, RQ_RCPT_TODO);
  const struct rq_claim_req req = {
      .hourly_quota = jc->tenant->t ? jc->tenant->t->hourly_quota : 0,
      .rates = route_rates(jc),
      .todo = todo,
      .cap = cap,
      .slots = (int)((todo + (size_t)cap - 1) / (size_t)cap),
      .recipients = total_recipients(jc),
  };
  rq_status_claim(jc, &req);
}

void rq_delivery_resume_waiting(struct rq_engine *eng) {
  struct rq_jobctx *next;
  for (struct rq_jobctx *jc = eng->jobs; jc; jc = next) {
    next = jc->next; /* a claim may finish (and free) jc synchronously */
    if (jc->phase != RQ_PHASE_REDIS_WAIT) continue;
    if (eng->stopping) rq_status_hand_back(jc);
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
    fail(jc, e->error_auth ? RQ_ERR_AUTH : RQ_ERR_POLICY, e->error);
    return;
  }
  if (build_envelope(jc, err, sizeof err)) {
    fail(jc, RQ_ERR_INVALID_JOB, err);
    return;
  }
  const char *error = NULL;
  int r = rq_route_resolve(&jc->eng->routing, e->t, jc->job, &jc->route, &error, err, sizeof err);
  if (r < 0) {
    enum rq_errcat cat = RQ_ERR_POLICY;
    rq_errcat_parse(error ? error : "", &cat);
    fail(jc, cat, err);
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
  eng->n_invalid++;
  eng->n_failed++;
  RQ_LOG_FIELDS(RQ_LOG_WARN, "invalid job dead-lettered", {"job", e->id[0] ? e->id : NULL},
                {"tenant", e->tenant[0] ? e->tenant : NULL}, {"state", "failed"}, {"error", "invalid_job"},
                {"detail", e->message});
  snprintf(jc->invalid_id, sizeof jc->invalid_id, "%s", e->id);
  const struct rq_outcome o = {.state = RQ_STATE_FAILED,
                               .mode = RQ_FINISH_DEAD,
                               .error = RQ_ERR_INVALID_JOB,
                               .detail = e->message,
                               .tenant = e->tenant};
  rq_status_finish(jc, &o);
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
    fail(jc, RQ_ERR_EXPIRED, "The job expired (expires_at) before it could be delivered.");
    return;
  }
  if (j->not_before && now < j->not_before) {
    park(jc, RQ_STATE_DEFERRED, j->not_before, 0, RQ_ERR_NONE, "Waiting for not_before.");
    return;
  }
  jc->phase = RQ_PHASE_TENANT;
  rq_tenants_get(eng, jc, j->tenant, on_tenant);
}
