/*
 * budget: the worker's budget of payload bytes in memory
 * (--max-inflight-bytes, CONTRACT.md v1.1), so resident memory stays near
 * the budget plus a fixed base whatever the jobs weigh.
 *
 * What this module owns:
 *   - the bytes of payload the worker holds (every fetched job's payload,
 *     from fetch to free) and, per tenant, the bytes of its decoded jobs;
 *   - what FETCH is told: the bytes still free, whether the worker holds
 *     nothing (then one job larger than the whole budget may come, alone),
 *     the tenants that hold their share already (half the budget: one
 *     tenant's large jobs cannot take it all from the others), and the
 *     list a too-large job waits in;
 *   - what FETCH answers: jobs it left in Redis because they did not fit
 *     (gauge and counter), and a job larger than the whole budget, which
 *     makes the worker stop fetching until it holds nothing, then take
 *     that job alone.
 *
 * The message built from a job borrows the payload (msg.h), so the payload
 * bytes are most of a job's memory: about 1.15 resident bytes per payload
 * byte in flight, measured (docs/performance.md).
 *
 * Ownership: struct rq_budget lives in the engine; its per-tenant entries
 * are owned here and freed when their bytes reach 0. A job remembers its
 * entry (jc->budget_tenant) from decode to free.
 */
#ifndef RQ_BUDGET_H
#define RQ_BUDGET_H

#include <stddef.h>
#include <stdint.h>

#include <relayq/relayq.h>

struct rq_budget_tenant;

struct rq_budget {
  size_t max;                 /* --max-inflight-bytes */
  size_t held;                /* payload bytes of every job held */
  size_t waiting;             /* jobs the last fetch left in Redis for the budget */
  size_t min_left;            /* the smallest of them (bytes) */
  uint64_t waits_total;       /* every such job, each time it was left */
  uint64_t oversize_total;    /* jobs larger than the whole budget, taken alone */
  int oversize;               /* such a job waits: fetch nothing until held == 0 */
  int oversize_q;             /* its queue index */
  char oversize_tenant[RELAYQ_ID_MAX + 1]; /* its list ("~shared": the shared queue) */
  struct rq_budget_tenant **tab; /* per-tenant bytes, chained */
  size_t n_tab;
};

void rq_budget_init(struct rq_budget *b, size_t max);
void rq_budget_free(struct rq_budget *b);

/* Payload bytes still free (negative when one oversize job is held). */
int64_t rq_budget_room(const struct rq_budget *b);

/* A job of len bytes was fetched / was freed (with its tenant entry from
 * rq_budget_attach, or NULL). */
void rq_budget_hold(struct rq_budget *b, size_t len);
void rq_budget_release(struct rq_budget *b, struct rq_budget_tenant *t, size_t len);

/* A held job of len bytes turned out to be tenant's: returns its entry. */
struct rq_budget_tenant *rq_budget_attach(struct rq_budget *b, const char *tenant, size_t len);

/* The tenants holding at least a sixteenth of the budget (at most 16
 * of them, or cap), with their bytes: what FETCH needs to keep each
 * tenant within its share (half the budget) while others have work. */
size_t rq_budget_heavy_tenants(const struct rq_budget *b, const char **ids, size_t *bytes, size_t cap);

#endif
