/*
 * delivery: one job's way from payload to outcome: decode, checks, tenant,
 * route, its line, claim, build, send, classify, decide (delivery.c).
 *
 * Calls run downward: delivery.c calls tenants, lines, oauth, metrics,
 * the budget, the transports and status.c, which writes what it decided.
 * Nothing below calls into delivery.c: the engine wires these functions
 * as the hooks of fetch (arrived), lines (admitted, hold), status
 * (claimed) and redis_health (writable: resume_waiting).
 *
 * Ownership: every job is the engine's (engine.h); delivery.c frees what
 * a job owns in rq_job_free, which only the engine calls.
 */
#ifndef RQ_DELIVERY_H
#define RQ_DELIVERY_H

#include <stdint.h>

#include "classify.h"
#include "status.h"

struct rq_engine;
struct rq_jobctx;

void rq_delivery_start(struct rq_jobctx *jc);    /* payload held: takes it from there */
void rq_delivery_admitted(struct rq_jobctx *jc); /* its line admitted it: claim, build, send */
/* Parks a job that never started a transaction back in Redis:
 * RQ_STATE_RETRY or RQ_STATE_DEFERRED, not an attempt, with why. */
void rq_delivery_hold(struct rq_jobctx *jc, enum rq_state state, int64_t due_ms, enum rq_errcat error,
                      const char *detail);
/* CLAIM answered: send, park or fail. */
void rq_delivery_claimed(struct rq_jobctx *jc, const struct rq_claim_result *r);
/* Claims again the jobs in RQ_PHASE_REDIS_WAIT (Redis accepts writes
 * again); while stopping, hands them back instead. */
void rq_delivery_resume_waiting(struct rq_engine *eng);
/* Frees a job and what it holds (the engine, when it is done). */
void rq_job_free(struct rq_jobctx *jc);

#endif
