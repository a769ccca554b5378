/* breaker: per-server circuit breaker (see breaker.h). */
#include "breaker.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

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

static int64_t cooldown(int trips) {
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
  b->open_until = now + cooldown(b->trips);
  b->failures = 0;
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
  if (b->state == RQ_BREAKER_HALF_OPEN) { /* the probe failed */
    trip(b, c->error, now);
    return 1;
  }
  if (b->state == RQ_BREAKER_OPEN) return 0; /* a transaction started before it opened */
  int threshold = c->error == RQ_ERR_CONNECT ? RQ_BREAKER_CONNECT_THRESHOLD : RQ_BREAKER_AUTH_TLS_THRESHOLD;
  if (++b->failures >= threshold || c->trip_now) {
    trip(b, c->error, now);
    return 1;
  }
  return 0;
}

static unsigned hash(const char *s) {
  unsigned h = 2166136261u;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) h = (h ^ *p) * 16777619u;
  return h % RQ_BREAKER_BUCKETS;
}

struct rq_breaker_entry *rq_breaker_get(struct rq_breaker_entry **table, const char *key) {
  unsigned h = hash(key);
  for (struct rq_breaker_entry *e = table[h]; e; e = e->next)
    if (!strcmp(e->key, key)) return e;
  struct rq_breaker_entry *e = rq_xcalloc(1, sizeof *e);
  e->key = rq_xstrdup(key);
  e->next = table[h];
  table[h] = e;
  return e;
}

void rq_breaker_table_free(struct rq_breaker_entry **table) {
  for (unsigned i = 0; i < RQ_BREAKER_BUCKETS; i++) {
    while (table[i]) {
      struct rq_breaker_entry *e = table[i];
      table[i] = e->next;
      free(e->key);
      free(e);
    }
  }
}
