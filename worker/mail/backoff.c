/* backoff: exponential backoff with full jitter and a floor (see backoff.h). */
#include "backoff.h"

static void normalise(int *attempt, int64_t *base, int64_t *max) {
  if (*attempt < 1) *attempt = 1;
  if (*base < 1) *base = 1;
  if (*max < *base) *max = *base;
}

int64_t rq_backoff_cap(int attempt, int64_t base_ms, int64_t max_ms) {
  normalise(&attempt, &base_ms, &max_ms);
  int shift = attempt - 1;
  /* base << shift <= max exactly when base <= max >> shift: no overflow. */
  if (shift >= 62 || base_ms > (max_ms >> shift)) return max_ms;
  return base_ms << shift;
}

int64_t rq_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms, uint64_t random64) {
  normalise(&attempt, &base_ms, &max_ms);
  int64_t cap = rq_backoff_cap(attempt, base_ms, max_ms);
  int64_t floor = base_ms / 10;
  if (floor < RQ_BACKOFF_FLOOR_MS) floor = RQ_BACKOFF_FLOOR_MS;
  if (floor > cap) floor = cap;
  /* The modulo's bias is below span / 2^64: under 2^-20 for spans up to
   * 2^44 ms (half a millennium), so it is not worth a rejection loop. */
  uint64_t span = (uint64_t)(cap - floor) + 1;
  return floor + (int64_t)(random64 % span);
}

int64_t rq_backoff_next(int attempt, int64_t base_ms, int64_t max_ms, int64_t hint_ms,
                        uint64_t random64) {
  int64_t d = rq_backoff_ms(attempt, base_ms, max_ms, random64);
  return hint_ms > d ? hint_ms : d;
}
