/* breaker: a tenant route's circuit breaker, pure maths (see breaker.h). */
#include "breaker.h"

#include <string.h>

const char *rq_breaker_state_name(enum rq_breaker_state s) {
  switch (s) {
  case RQ_BREAKER_OPEN: return "open";
  case RQ_BREAKER_HALF_OPEN: return "half_open";
  case RQ_BREAKER_CLOSED: break;
  }
  return "closed";
}

int rq_breaker_counts(const struct rq_class *c) {
  if (c->verdict == RQ_OK) return 0;
  return c->error == RQ_ERR_AUTH || c->error == RQ_ERR_TLS || c->error == RQ_ERR_CONNECT;
}

enum rq_breaker_state rq_breaker_state_parse(const char *s) {
  if (s && !strcmp(s, "open")) return RQ_BREAKER_OPEN;
  if (s && !strcmp(s, "half_open")) return RQ_BREAKER_HALF_OPEN;
  return RQ_BREAKER_CLOSED;
}

int rq_breaker_threshold(enum rq_errcat e) {
  return e == RQ_ERR_CONNECT ? RQ_BREAKER_CONNECT_THRESHOLD : RQ_BREAKER_AUTH_TLS_THRESHOLD;
}

int64_t rq_breaker_cooldown(int trips) {
  int64_t ms = RQ_BREAKER_BASE_MS;
  for (int i = 1; i < trips && ms < RQ_BREAKER_MAX_MS; i++) ms *= 2;
  return ms > RQ_BREAKER_MAX_MS ? RQ_BREAKER_MAX_MS : ms;
}

int rq_breaker_allow(struct rq_breaker *b, int64_t now, int64_t *until) {
  if (b->state == RQ_BREAKER_CLOSED) return 1;
  if (b->state == RQ_BREAKER_OPEN && now >= b->open_until) {
    b->state = RQ_BREAKER_HALF_OPEN;
    b->probe_out = 0;
  }
  if (b->state == RQ_BREAKER_HALF_OPEN && !b->probe_out) {
    b->probe_out = 1;
    return 1;
  }
  /* Open, or half-open with its probe in flight: wait a little. */
  *until = b->state == RQ_BREAKER_OPEN ? b->open_until : now + 5000;
  return 0;
}

static void trip(struct rq_breaker *b, enum rq_errcat reason, int64_t now) {
  b->state = RQ_BREAKER_OPEN;
  b->reason = reason;
  b->trips++;
  b->open_until = now + rq_breaker_cooldown(b->trips);
  /* failures keeps the count that tripped it: an operator reading
   * ROUTE.failures of an open breaker sees why it opened. */
  b->probe_out = 0;
}

int rq_breaker_record(struct rq_breaker *b, const struct rq_class *c, int64_t now) {
  if (!rq_breaker_counts(c)) {
    /* Any answer that is not a server-health failure proves the server
     * and the credentials work. */
    int changed = b->state != RQ_BREAKER_CLOSED;
    b->state = RQ_BREAKER_CLOSED;
    b->failures = 0;
    b->trips = 0;
    b->probe_out = 0;
    return changed;
  }
  b->failures++; /* consecutive failures since the route last worked, open or not */
  if (b->state == RQ_BREAKER_HALF_OPEN) { /* the probe failed */
    trip(b, c->error, now);
    return 1;
  }
  if (b->state == RQ_BREAKER_OPEN) return 0; /* a transaction started before it opened */
  if (b->failures >= rq_breaker_threshold(c->error) || c->trip_now) {
    trip(b, c->error, now);
    return 1;
  }
  return 0;
}

int rq_breaker_failed(struct rq_breaker *b, enum rq_errcat e, int failures, int64_t now) {
  b->failures = failures; /* every worker's count, also while open */
  if (b->state == RQ_BREAKER_OPEN && now < b->open_until) return 0; /* started before it opened */
  if (b->state == RQ_BREAKER_HALF_OPEN || failures >= rq_breaker_threshold(e)) {
    trip(b, e, now);
    return 1;
  }
  return 0;
}

int rq_breaker_adopt(struct rq_breaker *b, const struct rq_breaker *shared, int64_t probe_until) {
  struct rq_breaker before = *b;
  if (b->state == RQ_BREAKER_HALF_OPEN && shared->state != RQ_BREAKER_CLOSED) {
    /* Our own probe is out: its verdict decides. */
  } else if (shared->state == RQ_BREAKER_OPEN) {
    /* Past its cool-down too: then the next job here asks for the probe
     * rather than sending as if nothing happened. */
    b->state = RQ_BREAKER_OPEN;
    b->open_until = shared->open_until;
    b->reason = shared->reason;
    if (shared->trips > b->trips) b->trips = shared->trips;
    b->probe_out = 0;
  } else if (shared->state == RQ_BREAKER_HALF_OPEN) {
    /* Another worker's probe is out: wait for its verdict (or, past its
     * deadline, ask for the probe ourselves). */
    b->state = RQ_BREAKER_OPEN;
    b->open_until = probe_until;
    b->reason = shared->reason;
    b->probe_out = 0;
  } else if (shared->state == RQ_BREAKER_CLOSED && b->state != RQ_BREAKER_CLOSED) {
    b->state = RQ_BREAKER_CLOSED;
    b->trips = 0;
    b->probe_out = 0;
  }
  /* The shared count is every worker's; closed there resets ours. */
  if (shared->state == RQ_BREAKER_CLOSED || shared->failures > b->failures) b->failures = shared->failures;
  return before.state != b->state || before.open_until != b->open_until;
}
