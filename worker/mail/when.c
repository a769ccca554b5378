/* when: a time as a person reads it in a detail (see when.h). */
#include "when.h"

#include <stdio.h>
#include <time.h>

char *rq_when(char *dst, size_t cap, int64_t at_ms, int64_t now_ms) {
  if (cap == 0) return dst;
  int64_t left = at_ms - now_ms;
  if (left <= 0) {
    snprintf(dst, cap, "now");
    return dst;
  }
  int64_t s = (left + 999) / 1000;
  char span[32];
  if (s < 120) snprintf(span, sizeof span, "%lld s", (long long)s);
  else if (s < 2 * 3600) snprintf(span, sizeof span, "%lld min", (long long)((s + 59) / 60));
  else if (s < 2 * 86400) snprintf(span, sizeof span, "%lld h", (long long)((s + 3599) / 3600));
  else snprintf(span, sizeof span, "%lld d", (long long)((s + 86399) / 86400));
  time_t at = (time_t)(at_ms / 1000), now = (time_t)(now_ms / 1000);
  struct tm a, n;
  if (!gmtime_r(&at, &a) || !gmtime_r(&now, &n)) {
    snprintf(dst, cap, "in %s", span);
    return dst;
  }
  char clock[40];
  if (a.tm_year == n.tm_year && a.tm_yday == n.tm_yday) strftime(clock, sizeof clock, "%H:%M:%S UTC", &a);
  else strftime(clock, sizeof clock, "%Y-%m-%d %H:%M:%S UTC", &a);
  snprintf(dst, cap, "in %s (%s)", span, clock);
  return dst;
}
