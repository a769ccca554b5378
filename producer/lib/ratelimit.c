/*
 * ratelimit: the `rate_limits` syntax (see ratelimit.h).
 */
#include "ratelimit.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int fail(char *err, size_t errlen, const char *what, const char *item, size_t len) {
  if (err && errlen)
    snprintf(err, errlen,
             "rate_limits item '%.*s' %s; write COUNT/PERIOD with PERIOD s, m, h, d or a number of "
             "seconds, and :rcpt to count recipients, e.g. 30/m,10000/d:rcpt.",
             (int)(len > 40 ? 40 : len), item, what);
  return -1;
}

/* Digits only, no sign, bounded; 0 on success. */
static int parse_digits(const char *p, size_t n, long max, long *out) {
  long v = 0;
  if (n == 0 || n > 12) return -1;
  for (size_t i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9') return -1;
    v = v * 10 + (p[i] - '0');
  }
  if (v > max) return -1;
  *out = v;
  return 0;
}

static int parse_item(const char *p, size_t n, struct rq_rate *r, char *err, size_t errlen) {
  const char *item = p;
  size_t item_len = n;
  memset(r, 0, sizeof *r);
  const char *colon = memchr(p, ':', n);
  if (colon) {
    size_t tail = n - (size_t)(colon + 1 - p);
    if (tail != 4 || strncasecmp(colon + 1, "rcpt", 4) != 0)
      return fail(err, errlen, "has an unknown suffix (only :rcpt is allowed)", item, item_len);
    r->rcpt = 1;
    n = (size_t)(colon - p);
  }
  const char *slash = memchr(p, '/', n);
  if (!slash) return fail(err, errlen, "has no '/'", item, item_len);
  if (parse_digits(p, (size_t)(slash - p), RQ_RATE_MAX_COUNT, &r->count) || r->count < 1)
    return fail(err, errlen, "needs a COUNT from 1 to 1000000000 before '/'", item, item_len);
  const char *per = slash + 1;
  size_t plen = n - (size_t)(per - p);
  long seconds = 0;
  if (plen == 1 && strchr("smhdSMHD", per[0])) {
    switch (tolower((unsigned char)per[0])) {
    case 's': seconds = 1; break;
    case 'm': seconds = 60; break;
    case 'h': seconds = 3600; break;
    default: seconds = 86400; break;
    }
  } else if (parse_digits(per, plen, RQ_RATE_MAX_PERIOD_S, &seconds) || seconds < 1) {
    return fail(err, errlen, "needs a PERIOD of s, m, h, d or 1 to 2678400 seconds after '/'", item, item_len);
  }
  r->period_ms = (int64_t)seconds * 1000;
  return 0;
}

int rq_rates_parse(const char *s, struct rq_rates *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (err && errlen) err[0] = '\0';
  if (!s || s[strspn(s, " \t")] == '\0') return 0;
  const char *p = s;
  while (*p) {
    while (*p == ' ' || *p == '\t') p++;
    const char *end = strchr(p, ',');
    if (!end) end = p + strlen(p);
    const char *e = end;
    while (e > p && (e[-1] == ' ' || e[-1] == '\t')) e--;
    if (e == p) {
      if (!*end && out->n > 0) break; /* a trailing comma */
      out->n = 0;
      return fail(err, errlen, "is empty", "", 0);
    }
    if (out->n == RQ_RATE_MAX) {
      out->n = 0;
      if (err && errlen) snprintf(err, errlen, "rate_limits has more than %d limits.", RQ_RATE_MAX);
      return -1;
    }
    if (parse_item(p, (size_t)(e - p), &out->r[out->n], err, errlen)) {
      out->n = 0;
      return -1;
    }
    out->n++;
    p = *end ? end + 1 : end;
  }
  return 0;
}

static const char *unit_word(int64_t period_ms) {
  switch (period_ms) {
  case 1000: return "second";
  case 60000: return "minute";
  case 3600000: return "hour";
  case 86400000: return "day";
  default: return NULL;
  }
}

char *rq_rate_describe(const struct rq_rate *r, char *dst, size_t cap) {
  const char *w = unit_word(r->period_ms);
  const char *what = r->rcpt ? "recipients" : "messages";
  if (w) snprintf(dst, cap, "%ld %s per %s", r->count, what, w);
  else snprintf(dst, cap, "%ld %s per %lld s", r->count, what, (long long)(r->period_ms / 1000));
  return dst;
}

char *rq_rate_format(const struct rq_rate *r, char *dst, size_t cap) {
  const char *u = r->period_ms == 1000       ? "s"
                  : r->period_ms == 60000    ? "m"
                  : r->period_ms == 3600000  ? "h"
                  : r->period_ms == 86400000 ? "d"
                                             : NULL;
  if (u) snprintf(dst, cap, "%ld/%s%s", r->count, u, r->rcpt ? ":rcpt" : "");
  else snprintf(dst, cap, "%ld/%lld%s", r->count, (long long)(r->period_ms / 1000), r->rcpt ? ":rcpt" : "");
  return dst;
}
