/*
 * ratelimit: the `rate_limits` value of a tenant or route hash
 * (CONTRACT.md v1.1): comma-separated layered limits `COUNT/PERIOD`, PERIOD
 * `s`, `m`, `h`, `d` or a number of seconds, each with an optional `:rcpt`
 * to count recipients instead of messages, e.g. "30/m,10000/d:rcpt".
 *
 * Pure: no I/O, no allocation. Parsed once by the tenant model (validation
 * for `relayq tenant set`, the worker's cache); the worker hands each limit
 * to the CLAIM script, which keeps the rolling windows in Redis.
 *
 * librelayq-internal: not installed. Errors are sentences naming the part
 * of the value that is wrong.
 */
#ifndef RELAYQ_RATELIMIT_H
#define RELAYQ_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#define RQ_RATE_MAX 8                       /* limits in one value */
#define RQ_RATE_MAX_COUNT 1000000000L       /* most messages or recipients per window */
#define RQ_RATE_MAX_PERIOD_S (31L * 86400)  /* longest window: 31 days */

struct rq_rate {
  long count;        /* 1..RQ_RATE_MAX_COUNT */
  int64_t period_ms; /* 1000..RQ_RATE_MAX_PERIOD_S * 1000 */
  int rcpt;          /* 1: counts recipients; 0: messages */
};

struct rq_rates {
  size_t n;
  struct rq_rate r[RQ_RATE_MAX];
};

/* Parses s (NUL-terminated; surrounding spaces around items are allowed).
 * An empty value is no limit (n = 0). Returns 0, or -1 with a sentence in
 * err (when errlen > 0) and out->n = 0. */
int rq_rates_parse(const char *s, struct rq_rates *out, char *err, size_t errlen);

/* Writes limit r the way people read it, e.g. "30 messages per minute",
 * "10000 recipients per day", "5 messages per 90 s". Returns dst. */
char *rq_rate_describe(const struct rq_rate *r, char *dst, size_t cap);

/* Writes r in the canonical form of the value, e.g. "30/m", "10000/d:rcpt",
 * "5/90". Returns dst. */
char *rq_rate_format(const struct rq_rate *r, char *dst, size_t cap);

#endif
