/*
 * heartbeat: this worker's presence in Redis (P:worker:ID, the P:workers
 * registry), the reclaim of jobs held by workers that are gone, and the
 * recovery of jobs a lost fetch reply left in our inflight list
 * (heartbeat.c says how).
 *
 * Calls run downward: heartbeat.c calls status.c (a payload handed back),
 * redis_health and rconn; "there may be work to fetch" goes up through
 * the room hook the engine installs (rq_heartbeat_init).
 */
#ifndef RQ_HEARTBEAT_H
#define RQ_HEARTBEAT_H

struct rq_engine;

struct rq_heartbeat_hooks {
  void (*room)(struct rq_engine *eng); /* jobs went back to the queues, or recovery is over: fetch */
};
void rq_heartbeat_init(struct rq_engine *eng, const struct rq_heartbeat_hooks *hooks);

/* First connection: registers, reclaims our own list, beats. */
void rq_heartbeat_start(struct rq_engine *eng);
/* One beat now (and the reclaim pass and recovery that go with it). */
void rq_heartbeat_beat(struct rq_engine *eng);
void rq_heartbeat_reclaim_own(struct rq_engine *eng);

#endif
