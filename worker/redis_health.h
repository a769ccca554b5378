/*
 * redis_health: whether Redis accepts writes, as one condition of the
 * whole worker rather than an error of each job.
 *
 * A Redis at maxmemory with noeviction (OOM), a demoted primary
 * (READONLY), failing persistence (MISCONF), a long script (BUSY) or an
 * emptied script cache (NOSCRIPT) refuses every job alike. Callers that
 * get an error reply ask rq_redis_health_refused(); when it says yes they
 * keep what they hold (the job stays in memory and in the inflight list)
 * and do nothing else: no log line, no retry, no attempt counted. While
 * the condition lasts fetching pauses (rq_fetch_kick consults
 * rq_redis_health_ok), /readyz answers 503 with the reason, and a probe
 * (an HSET of the heartbeat's updated_at, a write every kind refuses)
 * runs with jittered backoff capped at 1 s; NOSCRIPT reloads the scripts
 * first. When the probe succeeds everything resumes at once: the
 * heartbeat, stalled status writes, waiting claims, fetching.
 *
 * With redis+sentinel:// it also runs the +switch-master subscription
 * (sentinel_watch.h) that makes both connections move to a new primary
 * at once; READONLY from a demoted primary makes them ask again too.
 *
 * One log line when it starts (Redis's words, what to do), one when it
 * ends (how long, how many jobs waited). Metrics:
 * relayq_redis_write_refused (gauge), relayq_redis_write_refusals_total.
 *
 * Ownership: the engine owns the one rq_redis_health (eng->health), made
 * by rq_redis_health_init and freed by rq_redis_health_close, which runs
 * after the command connection closed (so no probe reply is pending).
 */
#ifndef RQ_REDIS_HEALTH_H
#define RQ_REDIS_HEALTH_H

#include <stdint.h>

#include <relayq/relayq.h>

struct rq_engine;
struct rq_buf;

/* Calls run downward: redis_health.c calls rconn and sentinel_watch;
 * "Redis accepts writes again" goes up through the writable hook the
 * engine installs, which resumes the heartbeat, stalled writes, waiting
 * claims and fetching. */
struct rq_redis_health_hooks {
  void (*writable)(struct rq_engine *eng);
};
void rq_redis_health_init(struct rq_engine *eng, const struct rq_redis_health_hooks *hooks);
void rq_redis_health_close(struct rq_engine *eng);

/* 1 when redis_error (an error reply's text) refuses writes for the whole
 * server: the condition starts (or goes on) and the caller must keep
 * what it holds and wait; 0 for any other error. */
int rq_redis_health_refused(struct rq_engine *eng, const char *redis_error);

/* 1 unless the condition holds. */
int rq_redis_health_ok(const struct rq_engine *eng);

/* "Redis is full (maxmemory) for 12 s (Redis: OOM command not allowed
 * ...)": the reason for /readyz, while the condition holds. */
void rq_redis_health_reason(const struct rq_engine *eng, char *buf, size_t cap);

/* For /metrics: 1 while it holds; conditions started so far. */
int rq_redis_health_refused_now(const struct rq_engine *eng);
uint64_t rq_redis_health_refusals(const struct rq_engine *eng);

#endif
