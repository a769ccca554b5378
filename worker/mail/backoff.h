/*
 * backoff: the retry schedule after a temporary failure. Pure: the caller
 * supplies the random bits, so tests are deterministic.
 *
 * Exponential backoff with "full jitter" (AWS Architecture Blog,
 * "Exponential Backoff And Jitter", 2015): the delay is uniform over
 * [floor, cap] with cap = min(max, base * 2^(attempt-1)). Full jitter spreads
 * the retries of many jobs that failed together (a server that went down
 * takes down every job bound for it), where plain exponential backoff would
 * bring them back in one wave.
 *
 * The floor: pure full jitter draws from [0, cap] and may retry at once. A
 * flapping server would then be hit by a share of its jobs immediately, so
 * the delay never drops below floor = max(RQ_BACKOFF_FLOOR_MS, base / 10),
 * itself never above cap (a small base in tests stays small).
 */
#ifndef RQ_BACKOFF_H
#define RQ_BACKOFF_H

#include <stdint.h>

#define RQ_BACKOFF_FLOOR_MS 1000

/* The upper bound of the delay after `attempt`: min(max, base *
 * 2^(attempt-1)), computed without overflow for any attempt. Arguments are
 * normalised as in rq_backoff_ms. */
int64_t rq_backoff_cap(int attempt, int64_t base_ms, int64_t max_ms);

/* The delay in ms before the next attempt. attempt: 1-based number of the
 * attempt that just failed (values < 1 count as 1); base_ms < 1 counts as 1;
 * max_ms below base counts as base. random64: uniformly random bits. The
 * result is in [floor, cap] (see above), > 0, and <= max(base, max). */
int64_t rq_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms, uint64_t random64);

/* The backoff, or the server's own hint when it asks for longer
 * (struct rq_class retry_after_ms, already capped by the classifier). A
 * hint may exceed max_ms: the server said when it will take mail again. */
int64_t rq_backoff_next(int attempt, int64_t base_ms, int64_t max_ms, int64_t hint_ms,
                        uint64_t random64);

#endif
