/*
 * breaker: the circuit breaker of one tenant route (tenant, route, server and login).
 *
 * Why: a tenant whose password changed, or whose certificate expired, makes
 * every one of its jobs fail the same way; hammering the server locks the
 * account (providers lock after repeated failed logins) and wastes
 * attempts. After `threshold` consecutive failures of one kind (auth, tls,
 * or connect/421) the breaker opens: no connections for a cool-down (60 s,
 * doubling per consecutive trip up to 15 min). Then one job is let through
 * as a probe (half-open): success closes it, failure reopens it.
 *
 * Pure logic: the caller passes the time. sched.c keeps one breaker per
 * tenant route and shares it with every worker through P:breaker:TENANT:
 * failures are counted there (rq_breaker_failed takes the shared count),
 * and a worker adopts what the others decided (rq_breaker_adopt).
 */
#ifndef RQ_BREAKER_H
#define RQ_BREAKER_H

#include <stddef.h>
#include <stdint.h>

#include "classify.h"

enum rq_breaker_state { RQ_BREAKER_CLOSED, RQ_BREAKER_OPEN, RQ_BREAKER_HALF_OPEN };

struct rq_breaker {
  enum rq_breaker_state state;
  enum rq_errcat reason; /* what tripped it */
  int failures;          /* consecutive failures since the route last worked: counts on while
                            open (it shows what tripped it), 0 again once a send succeeds */
  int trips;             /* consecutive trips (cool-down doubles) */
  int64_t open_until;    /* ms */
  int probe_out;         /* half-open: a probe is in flight */
};

#define RQ_BREAKER_AUTH_TLS_THRESHOLD 3
#define RQ_BREAKER_CONNECT_THRESHOLD 5
#define RQ_BREAKER_BASE_MS 60000
#define RQ_BREAKER_MAX_MS (15 * 60000)

/* May a transaction start now? Returns 1 (and, half-open, marks the probe
 * as taken) or 0 with *until set to when to try again. */
int rq_breaker_allow(struct rq_breaker *b, int64_t now, int64_t *until);

/* Records a transaction's outcome. Returns 1 when the state changed
 * (opened or closed), so the caller can publish it. */
int rq_breaker_record(struct rq_breaker *b, const struct rq_class *c, int64_t now);

const char *rq_breaker_state_name(enum rq_breaker_state s);
/* The reverse ("" and unknown names are closed). */
enum rq_breaker_state rq_breaker_state_parse(const char *s);

/* Consecutive failures of kind e that trip the breaker: 3 for auth and
 * tls, 5 for connect. */
int rq_breaker_threshold(enum rq_errcat e);

/* The cool-down after the trips-th consecutive trip: 60 s doubling, at
 * most 15 min. */
int64_t rq_breaker_cooldown(int trips);

/* A counted failure (rq_breaker_counts) with `failures` the consecutive
 * failures counted so far by every worker, this one included. Trips when
 * that reaches the threshold, or when a probe failed (half-open). Returns
 * 1 when it tripped (b is open until b->open_until). */
int rq_breaker_failed(struct rq_breaker *b, enum rq_errcat e, int failures, int64_t now);

/* Adopts the state other workers shared (`shared` as read from Redis):
 * open there is open here, with the shared cool-down (when it has ended,
 * this worker asks for the probe instead of sending freely); half-open
 * there (another worker's probe is out) is open here until probe_until;
 * closed there closes ours. A probe of our own (half-open here) is left
 * to its verdict. Returns 1 when b's state or cool-down changed. */
int rq_breaker_adopt(struct rq_breaker *b, const struct rq_breaker *shared, int64_t probe_until);

/* Which outcomes count: auth and tls failures, connection failures and
 * 421s (error connect). A recipient or message rejection says nothing
 * about the server's health. */
int rq_breaker_counts(const struct rq_class *c);

#endif
