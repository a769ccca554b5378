/*
 * fetch: moves jobs from the queues into this worker's inflight list and
 * hands each one up to the engine (fetch.c says how and when).
 *
 * Calls run downward: fetch.c calls the budget, lines (which tenants to
 * leave in Redis), metrics, redis_health and rconn; a job it took reaches
 * delivery through the arrived hook the engine installs
 * (rq_fetch_init), never by a call into delivery.c.
 *
 * Ownership: a job handed to arrived is the engine's (engine.h) and is
 * already in eng->jobs; fetch.c keeps no pointer to it.
 */
#ifndef RQ_FETCH_H
#define RQ_FETCH_H

struct rq_engine;
struct rq_jobctx;

struct rq_fetch_hooks {
  void (*arrived)(struct rq_jobctx *jc); /* its payload is held: decode and deliver it */
};
void rq_fetch_init(struct rq_engine *eng, const struct rq_fetch_hooks *hooks);

/* Fetches more if there is room (and Redis takes writes); safe to call
 * any time: what cannot be done now is resumed by a timer or a reply. */
void rq_fetch_kick(struct rq_engine *eng);

#endif
