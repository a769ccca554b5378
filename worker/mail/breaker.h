/*
 * breaker: a circuit breaker per tenant server (route connection key).
 *
 * Why: a tenant whose password changed, or whose certificate expired, makes
 * every one of its jobs fail the same way; hammering the server locks the
 * account (providers lock after repeated failed logins) and wastes
 * attempts. After `threshold` consecutive failures of one kind (auth, tls,
 * or connect/421) the breaker opens: no connections for a cool-down (60 s,
 * doubling per consecutive trip up to 15 min). Then one job is let through
 * as a probe (half-open): success closes it, failure reopens it.
 *
 * Pure logic: the caller passes the time; delivery.c keeps one table per
 * worker and publishes state changes to P:breaker:TENANT for dashboards.
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
  int failures;          /* consecutive failures counted towards a trip */
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

/* Which outcomes count: auth and tls failures, connection failures and
 * 421s (error connect). A recipient or message rejection says nothing
 * about the server's health. */
int rq_breaker_counts(const struct rq_class *c);

/* A worker's breakers, one per route connection key. Entries are never
 * freed before the table (bounded by the tenants' servers seen). */
#define RQ_BREAKER_BUCKETS 256
struct rq_breaker_entry {
  char *key;
  struct rq_breaker b;
  struct rq_breaker_entry *next;
};
struct rq_breaker_entry *rq_breaker_get(struct rq_breaker_entry **table, const char *key);
void rq_breaker_table_free(struct rq_breaker_entry **table);

#endif
