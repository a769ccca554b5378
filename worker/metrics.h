/*
 * metrics: the worker's counters and histograms, and the tiny HTTP server
 * that serves them on --metrics ADDR from the worker's own libuv loop:
 *
 *   GET /metrics  Prometheus text exposition format 0.0.4
 *   GET /healthz  200 "ok" while the process runs (liveness)
 *   GET /readyz   200 when Redis is connected, 503 otherwise (readiness)
 *
 * The engine, fetch and delivery call the rq_metrics_* recorders on
 * their hot path: they only add to in-memory counters (no allocation
 * except the first time a tenant is seen, and per-tenant series are
 * bounded, see metrics.c).
 *
 * Calls run downward: metrics.c reads lines (rq_lines_foreach), the
 * tenant cache, redis_health and rconn; it calls nothing above it, and a
 * line's wait reaches it through the waited hook the engine gives lines.
 */
#ifndef RQ_METRICS_H
#define RQ_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct rq_engine;

/* Starts listening on addr ("127.0.0.1:9464", "[::1]:9464", ":9464").
 * Returns 0, or -1 after logging why (bad address, port in use). */
int rq_metrics_start(struct rq_engine *eng, const char *addr);
/* Closes the listener and open connections (on shutdown). */
void rq_metrics_stop(struct rq_engine *eng);

/* A job reached a final state (sent, partial, failed) on route (platform,
 * smtp, mailgun, or a route name: reported as "route" for named routes to
 * bound cardinality), error "" or a category. enqueue_to_final_ms: from
 * the status created_at to now; -1 when unknown. */
void rq_metrics_final(struct rq_engine *eng, const char *state, const char *route, const char *tenant,
                      const char *error, int64_t enqueue_to_final_ms);
/* One SMTP transaction or Mailgun call finished, with its duration. */
void rq_metrics_transaction(struct rq_engine *eng, const char *route, double seconds, int ok);
/* A job was parked: state "retry" or "deferred", reason = error category
 * ("quota", "connect", ...; "not_before" for not_before deferrals). */
void rq_metrics_parked(struct rq_engine *eng, const char *state, const char *reason);
/* A job waited this long in its tenant route's line before its turn. */
void rq_metrics_line_wait(struct rq_engine *eng, double seconds);
/* A fetch call returned n jobs. */
void rq_metrics_fetched(struct rq_engine *eng, size_t n);

#endif
