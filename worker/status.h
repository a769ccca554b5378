/*
 * status: the one writer of a job's Redis record and of the keys that
 * count or hold it: the status hash P:status:ID and its event, the
 * per-tenant counters (P:stats:T, P:stats:T:DAY), the hourly quota
 * (P:quota:T), the rate_limits windows (P:rate:...), the quota pause
 * (P:tpause:T), the auto-reply markers (P:autoreply:T:ADDR) and the tenant
 * route breakers (P:breaker:T). The modules above decide (delivery.c: what
 * happened to a job; lines.c: what a breaker does); they hand status.c a
 * typed request or outcome, and status.c alone turns it into status
 * fields, events and the scripts' arguments (CLAIM, FINISH, BREAKER_FAIL,
 * BREAKER_PROBE: producer/lib/scripts.c says what each takes).
 *
 * Calls run downward: status.c calls batch.c, rconn, redis_health and
 * librelayq; it calls nothing above it. What Redis answered goes up
 * through the hooks the engine installs (rq_status_init).
 *
 * Ownership: a job's FINISH call (struct rq_finish, jc->finish) belongs to
 * the job from rq_status_finish until the script is answered OK; then the
 * finished hook takes the job. When Redis is away the call is kept and
 * re-sent after reconnect: nothing is acknowledged that was not written.
 * The strings of a struct rq_outcome, rq_claim_req and rq_claim_result
 * belong to the caller and are read (copied) during the call only.
 */
#ifndef RQ_STATUS_H
#define RQ_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include "breaker.h"
#include "classify.h"

struct rq_engine;
struct rq_jobctx;
struct rq_rcpt;
struct rq_rates;
struct rq_buf;

/* The contract's status states a job can end an attempt in. */
enum rq_state {
  RQ_STATE_NONE,     /* no status change: a duplicate's ack, a hand-back */
  RQ_STATE_SENT,
  RQ_STATE_PARTIAL,
  RQ_STATE_FAILED,
  RQ_STATE_RETRY,
  RQ_STATE_DEFERRED,
};
/* "sent", "partial", ...; "" for NONE. */
const char *rq_state_name(enum rq_state s);

/* Where the payload goes: acknowledged, parked in P:delayed, dead-lettered
 * in P:dead, or handed back to the front of its queue unchanged. */
enum rq_finish_mode { RQ_FINISH_ACK, RQ_FINISH_DELAY, RQ_FINISH_DEAD, RQ_FINISH_REQUEUE };

#define RQ_STATUS_MAX_RCPT 100 /* rcpt.ADDR fields written per job */

/* What delivery decided about one job. Its identity (id, tenant, route,
 * message id, meta) is the job's own (jc->job, jc->route). */
struct rq_outcome {
  enum rq_state state;
  enum rq_finish_mode mode;
  int64_t due_ms;          /* DELAY: when it is due again (next_attempt_at) */
  int attempts;            /* the status's attempts */
  int recipients;          /* distinct envelope recipients of the job; 0: not known, not written */
  int accepted, rejected;  /* final states: over all attempts */
  enum rq_errcat error;    /* the status's error category; RQ_ERR_NONE for sent */
  const char *detail;      /* what happened, for a person; NULL = "" */
  int code;                /* the last noteworthy server reply; 0 = none (a connect or TLS failure) */
  const char *enhanced, *reply;
  const char *provider_id; /* NULL or "" = none */
  const struct rq_rcpt *rcpts; /* final states: the refused ones become rcpt.ADDR fields */
  size_t n_rcpts;
  const char *tenant;      /* a job that could not be decoded (jc->job NULL): the tenant read, or NULL */
  unsigned char *park;     /* DELAY/DEAD: re-encoded payload, owned by the call afterwards; NULL = as held */
  size_t park_len;
};

/* Starts writing one job's outcome and moving its payload (one FINISH
 * call, sent with the loop turn's others, batch.h). The finished hook
 * gets the job once Redis confirms; on Redis loss the write is retried
 * after reconnect. */
void rq_status_finish(struct rq_jobctx *jc, const struct rq_outcome *o);
/* Hands the job back to its queue unchanged (no status change). */
void rq_status_hand_back(struct rq_jobctx *jc);
/* Frees a job's pending FINISH call without sending it (shutdown with
 * Redis away: the job stays in inflight for reclaim). */
void rq_status_drop(struct rq_jobctx *jc);
/* Re-sends the FINISH calls that stalled while Redis was away. */
void rq_status_retry_stalled(struct rq_engine *eng);
/* Moves one payload this worker does not hold from its inflight list back
 * to its first queue (a fetch reply that was lost); no status change. */
void rq_status_requeue_payload(struct rq_engine *eng, const char *payload, size_t len);

/* What CLAIM needs beyond the job: its checks (idempotency, per-tenant
 * ids, quota, rate limits, auto-reply loops) and the `sending` status. */
struct rq_claim_req {
  long hourly_quota;             /* the tenant's; 0 = none */
  const struct rq_rates *rates;  /* the route's rate_limits; NULL = none */
  size_t todo;                   /* recipients still to send */
  int cap;                       /* recipients per transaction */
  int slots;                     /* transactions wanted */
  int recipients;                /* distinct envelope recipients of the job */
};

enum rq_claim_verdict {
  RQ_CLAIM_OK,         /* slots: transactions it may run */
  RQ_CLAIM_DUP,        /* text: the final state an earlier run reached */
  RQ_CLAIM_FOREIGN,    /* the id is another tenant's job */
  RQ_CLAIM_QUOTA,      /* free_at, rate_limit */
  RQ_CLAIM_SUPPRESSED, /* text: the recipient an auto-reply went to within the window */
  RQ_CLAIM_LOST,       /* no answer (Redis went away): whether it was claimed is unknown */
  RQ_CLAIM_REFUSED,    /* Redis refuses writes (redis_health.h): claim again once it accepts them */
  RQ_CLAIM_FAILED,     /* text: Redis's error */
};
struct rq_claim_result {
  enum rq_claim_verdict verdict;
  int slots;
  int64_t free_at;  /* QUOTA: when a slot frees (ms) */
  int rate_limit;   /* QUOTA: the 1-based rate limit that is full; 0 = the hourly quota */
  const char *text; /* valid during the hook only */
};

/* Claims the job before sending (CLAIM, batched); the claimed hook gets
 * the verdict. */
void rq_status_claim(struct rq_jobctx *jc, const struct rq_claim_req *req);

/* Breakers: P:breaker:TENANT, fields ROUTE.state, .reason, .until,
 * .failures, .trips, .probe_until, updated_at (lines.h). */

/* Writes the decision lines.c made from breaker.c's maths (fire and
 * forget: the next change writes again). */
void rq_status_breaker(struct rq_engine *eng, const char *tenant, const char *route, const struct rq_breaker *b);

/* What every worker's counted failures add up to (BREAKER_FAIL). ok 0:
 * no answer (count locally). */
struct rq_breaker_count {
  int ok;
  struct rq_breaker shared; /* failures: the shared count; state, open_until, trips, reason as written */
};
/* Counts one failure of a tenant route for every worker; cb(arg, count)
 * runs once, perhaps at once (Redis away). */
void rq_status_breaker_fail(struct rq_engine *eng, const char *tenant, const char *route,
                            void (*cb)(void *arg, const struct rq_breaker_count *c), void *arg);

/* Asks to send the one probe of an open breaker whose cool-down is over
 * (BREAKER_PROBE). verdict: 1 this worker probes, 2 another's probe
 * closed it, 0 still open until `until` (-1: not said); ok 0: no answer. */
struct rq_breaker_probe {
  int ok;
  int verdict;
  int64_t until;
};
/* Returns -1 (cb never runs) when the call could not be sent. */
int rq_status_breaker_probe(struct rq_engine *eng, const char *tenant, const char *route, int64_t probe_until,
                            void (*cb)(void *arg, const struct rq_breaker_probe *p), void *arg);

/* What status.c tells the module above it, set by the engine. */
struct rq_status_hooks {
  void (*claimed)(struct rq_jobctx *jc, const struct rq_claim_result *r); /* CLAIM answered (delivery) */
  void (*finished)(struct rq_jobctx *jc); /* FINISH written: the job may go (the engine frees it) */
};
void rq_status_init(struct rq_engine *eng, const struct rq_status_hooks *hooks);

#endif
