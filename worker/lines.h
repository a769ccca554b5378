/*
 * lines: tenant isolation inside one worker. A worker's --concurrency is a
 * budget of sends in flight, not of jobs held.
 *
 * Every job, once its route is known, joins the line of its tenant route
 * (struct rq_line: tenant + route + server and login, so a Mailgun line
 * belongs to one tenant's domain and key). A line admits a job when the
 * worker has a free send slot, the route has a free connection (its
 * smtp_max_connections), its circuit breaker lets it through and the
 * tenant is not paused; lines that can send are served round-robin, and
 * the last sixteenth of the slots is kept for lines sending nothing yet (so
 * a tenant with a slow API cannot take every slot). A job
 * waiting in a line holds no send slot and blocks nothing behind it.
 *
 * Unproven connections: a job of a line whose server has not proven it
 * answers (no usable connection since the line was made, or a connect,
 * TLS or login failure since) is admitted without a send slot: it takes
 * one only when the transport reports its connection usable
 * (rq_lines_ready: greeted and through EHLO, TLS and login, or a pooled
 * connection). So a silent server (accepts TCP, never greets) holds no
 * slot while it times out. Such connects are bounded per line by its
 * smtp_max_connections (1 when it has none) and in all by
 * RQ_UNPROVEN_FACTOR x --concurrency, whose last RQ_UNPROVEN_RESERVE-th
 * is kept for lines with nothing connecting yet. A proven line's jobs take
 * a slot at admission. A

 * line that cannot send for a while (breaker open, tenant paused) hands
 * its jobs back to Redis as `retry` or `deferred` (not an attempt).
 *
 * Bounded memory and Redis work: a line holds at most RQ_LINE_MAX_WAIT
 * (or twice its connections) waiting jobs; the tenants of full or blocked
 * lines are passed to FETCH (rq_lines_skip_list), which leaves their
 * backlog in their Redis list instead of moving it through this worker.
 *
 * Shared state, read per tenant at most once per RQ_SHARED_TTL_MS while it
 * has work (never per message): the breaker hash P:breaker:TENANT (fields
 * ROUTE.state, .reason, .until, .failures, .trips, .probe_until,
 * updated_at) and the operator's pause P:thold:TENANT (reason, until).
 * Breaker decisions are the pure maths of breaker.c; this module makes
 * them and reads the shared state, and status.c writes them (status.h):
 * a counted failure increments ROUTE.failures atomically (so every
 * worker's failures add up), a trip writes `open` with the cool-down, a
 * success closes it, and after the cool-down one worker wins the probe
 * (a script sets `half_open`) and sends one job.
 *
 * Calls run downward: lines.c calls status.c and rconn; what it does with
 * a job (admit, park, hand back), room to fetch and a job's wait go up
 * through the hooks the engine installs (rq_lines_init).
 *
 * Ownership: lines and tenant states belong to the engine (eng->lines);
 * a waiting job is owned by the engine as always and linked into its
 * line; jc->line is set from admission until rq_lines_release.
 */
#ifndef RQ_LINES_H
#define RQ_LINES_H

#include <stddef.h>
#include <stdint.h>

#include "breaker.h"
#include "classify.h"
#include "status.h"

struct rq_engine;
struct rq_jobctx;

#define RQ_LINE_MAX_WAIT 16     /* waiting jobs a line holds before FETCH skips its tenant */
#define RQ_RESERVE_SHARE 16     /* 1/16 of --concurrency is kept for lines sending nothing yet */
#define RQ_UNPROVEN_FACTOR 2    /* connects not yet proven: at most 2 x --concurrency at once */
#define RQ_UNPROVEN_RESERVE 4   /* 1/4 of those is kept for lines with nothing connecting yet */
#define RQ_SHARED_TTL_MS 1000   /* how stale the cached breaker/pause state may be */
#define RQ_PAUSE_RECHECK_MS 2000 /* a paused tenant's job comes back this soon (then waits in Redis) */

/* What a line does with a job, set by the engine (calls run downward:
 * lines.c knows nothing of delivery, fetch or status). */
struct rq_lines_hooks {
  void (*admitted)(struct rq_jobctx *jc);  /* its turn: claim, build, send */
  /* back to Redis without an attempt: state retry or deferred */
  void (*hold)(struct rq_jobctx *jc, enum rq_state state, int64_t due_ms, enum rq_errcat error, const char *detail);
  void (*hand_back)(struct rq_jobctx *jc); /* shutdown: back to its queue unchanged */
  void (*room)(struct rq_engine *eng);     /* fewer jobs take up the fetch budget */
  void (*waited)(struct rq_engine *eng, double seconds); /* a job's wait for its turn (metrics) */
};

void rq_lines_init(struct rq_engine *eng, const struct rq_lines_hooks *hooks);
void rq_lines_free(struct rq_engine *eng);

/* The job's route is resolved (jc->route): it joins its line. It goes on
 * through the admitted hook once admitted, or is parked through the hold
 * hook. */
void rq_lines_submit(struct rq_jobctx *jc);

/* The job's connection is usable (the transport said so, or the route
 * has no connection to prove, e.g. Mailgun's API): it takes its send slot
 * if it has none and its line counts as proven. Safe to call again. */
void rq_lines_ready(struct rq_jobctx *jc);

/* A transaction's outcome for the job's route breaker. */
void rq_lines_outcome(struct rq_jobctx *jc, const struct rq_class *c);

/* The job is done (its FINISH was answered, or it is being dropped): frees
 * its send slot and its line's connection, admits the next job. */
void rq_lines_release(struct rq_jobctx *jc);

/* Shutdown: hands every waiting job back to its queue. */
void rq_lines_stop(struct rq_engine *eng);

/* Once a second: frees idle lines. */
void rq_lines_tick(struct rq_engine *eng);

/* Tenants FETCH should leave in Redis now (full or blocked lines), at
 * most max; the strings live until the next call into lines.c. */
size_t rq_lines_skip_list(struct rq_engine *eng, const char **out, size_t max);

/* 1 while some tenant is on that list. */
int rq_lines_skipping(const struct rq_engine *eng);

/* For metrics: calls cb for each line with work or a breaker not closed. */
struct rq_line_view {
  const char *tenant, *route;
  int active, waiting;
  enum rq_breaker_state breaker;
};
void rq_lines_foreach(struct rq_engine *eng, void (*cb)(const struct rq_line_view *v, void *arg), void *arg);

#endif
