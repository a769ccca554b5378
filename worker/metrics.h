/*
 * metrics: /metrics (Prometheus text), /healthz and /readyz served from
 * the worker's loop on --metrics ADDR.
 */
#ifndef RQ_METRICS_H
#define RQ_METRICS_H

struct rq_engine;

/* Starts listening on addr ("127.0.0.1:9464"). Returns 0 or -1 (logged). */
int rq_metrics_start(struct rq_engine *eng, const char *addr);

#endif
