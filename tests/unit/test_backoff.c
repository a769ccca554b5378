/*
 * Unit tests for worker/backoff: bounds for every attempt, the cap grows
 * monotonically to max, the jitter is roughly uniform, no overflow for huge
 * attempt numbers, and server hints win when longer.
 */
#include "backoff.h"
#include "check.h"

#include <limits.h>

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* The cap computed the slow, obvious way. */
static int64_t slow_cap(int attempt, int64_t base, int64_t max) {
  int64_t c = base;
  for (int i = 1; i < attempt && c < max; i++) c = c > max / 2 ? max : c * 2;
  return c < max ? c : max;
}

static int64_t floor_of(int64_t base, int64_t cap) {
  int64_t f = base / 10 > RQ_BACKOFF_FLOOR_MS ? base / 10 : RQ_BACKOFF_FLOOR_MS;
  return f < cap ? f : cap;
}

static void test_bounds(void) {
  const int64_t base = 30000, max = 3600000; /* the contract's defaults */
  uint64_t seed = 1;
  int64_t prev_cap = 0;
  for (int a = 1; a <= 60; a++) {
    int64_t cap = rq_backoff_cap(a, base, max);
    CHECK_INT(cap, ==, slow_cap(a, base, max));
    CHECK_INT(cap, >=, prev_cap); /* monotone */
    CHECK_INT(cap, <=, max);
    prev_cap = cap;
    int64_t lo = floor_of(base, cap);
    /* The extremes are reachable: r = 0 gives the floor, r = span-1 the cap. */
    CHECK_INT(rq_backoff_ms(a, base, max, 0), ==, lo);
    CHECK_INT(rq_backoff_ms(a, base, max, (uint64_t)(cap - lo)), ==, cap);
    for (int k = 0; k < 200; k++) {
      int64_t d = rq_backoff_ms(a, base, max, splitmix(&seed));
      if (d < lo || d > cap) {
        fprintf(stderr, "attempt %d: %lld outside [%lld, %lld]\n", a, (long long)d, (long long)lo,
                (long long)cap);
        check_failed_++;
        break;
      }
    }
    check_passed_++;
  }
  CHECK_INT(rq_backoff_cap(1, base, max), ==, 30000);
  CHECK_INT(rq_backoff_cap(2, base, max), ==, 60000);
  CHECK_INT(rq_backoff_cap(7, base, max), ==, 1920000);
  CHECK_INT(rq_backoff_cap(8, base, max), ==, 3600000);
  CHECK_INT(rq_backoff_cap(60, base, max), ==, 3600000);
  /* Never zero, even from the smallest random value. */
  CHECK_INT(rq_backoff_ms(1, base, max, 0), ==, 3000);
  CHECK_INT(rq_backoff_ms(1, 1000, max, 0), ==, 1000);
}

static void test_overflow_and_odd_arguments(void) {
  const int64_t base = 30000, max = 3600000;
  uint64_t seed = 7;
  int64_t s;
  for (int a = 61; a <= 1000; a++) {
    CHECK_INT(rq_backoff_cap(a, base, max), ==, max);
    int64_t d = rq_backoff_ms(a, base, max, splitmix(&seed));
    if (d < 3000 || d > max) {
      fprintf(stderr, "attempt %d: %lld\n", a, (long long)d);
      check_failed_++;
    }
  }
  check_passed_++;
  CHECK_INT(rq_backoff_cap(1000, base, max), ==, max);
  CHECK_INT(rq_backoff_cap(INT_MAX, base, max), ==, max);
  CHECK_INT(rq_backoff_ms(INT_MAX, base, max, UINT64_MAX), <=, max);
  /* A max near INT64_MAX: shifting must not overflow either. */
  CHECK_INT(rq_backoff_cap(63, 3, INT64_MAX), ==, INT64_MAX);
  CHECK_INT(rq_backoff_cap(63, 2, INT64_MAX), ==, INT64_MAX);
  CHECK_INT(rq_backoff_cap(62, 1, INT64_MAX), ==, (int64_t)1 << 61);
  CHECK_INT(rq_backoff_cap(62, 2, INT64_MAX), ==, (int64_t)1 << 62);
  CHECK_INT(rq_backoff_cap(62, 3, INT64_MAX), ==, (int64_t)3 << 61);
  CHECK_INT(rq_backoff_cap(62, 4, INT64_MAX), ==, INT64_MAX);
  CHECK_INT(rq_backoff_cap(61, 2, INT64_MAX), ==, (int64_t)1 << 61);
  int64_t d = rq_backoff_ms(1000, INT64_MAX / 2, INT64_MAX, UINT64_MAX);
  CHECK_INT(d, >, 0);
  CHECK_INT(d, <=, INT64_MAX);
  /* Odd arguments are normalised, never trusted. */
  CHECK_INT(rq_backoff_cap(0, base, max), ==, base);
  CHECK_INT(rq_backoff_cap(-5, base, max), ==, base);
  CHECK_INT(rq_backoff_cap(3, 0, max), ==, 4);
  CHECK_INT(rq_backoff_cap(3, -10, max), ==, 4);
  CHECK_INT(rq_backoff_cap(3, base, 10), ==, base); /* max below base */
  s = rq_backoff_ms(3, base, 10, 12345);
  CHECK_INT(s, >=, 3000);
  CHECK_INT(s, <=, base);
  CHECK_INT(rq_backoff_ms(1, 0, 0, 12345), ==, 1);
  /* A small base (tests use milliseconds): the floor never exceeds the cap. */
  CHECK_INT(rq_backoff_ms(1, 50, 1000, UINT64_MAX), ==, 50);
  s = rq_backoff_ms(3, 50, 1000, 3);
  CHECK_INT(s, >=, 200);
  CHECK_INT(s, <=, 200);
}

static void test_uniform(void) {
  /* 10,000 samples at attempt 6 (cap 960 s) over 10 buckets: each should
   * hold about 1,000. Chi-square with 9 degrees of freedom is above 27.9
   * with probability 0.001; 40 leaves a wide margin for a fixed seed. */
  enum { N = 10000, B = 10 };
  const int64_t base = 30000, max = 3600000;
  int64_t cap = rq_backoff_cap(6, base, max), lo = floor_of(base, cap);
  int counts[B] = {0};
  uint64_t seed = 20240601;
  for (int i = 0; i < N; i++) {
    int64_t d = rq_backoff_ms(6, base, max, splitmix(&seed));
    int b = (int)((d - lo) * B / (cap - lo + 1));
    counts[b < 0 ? 0 : b >= B ? B - 1 : b]++;
  }
  double chi = 0;
  for (int b = 0; b < B; b++) {
    double diff = counts[b] - (double)N / B;
    chi += diff * diff / ((double)N / B);
  }
  printf("chi-square over %d buckets: %.2f\n", B, chi);
  CHECK(chi < 40.0);
  for (int b = 0; b < B; b++) CHECK_INT(counts[b], >, 800);

  /* And the mean sits in the middle of [floor, cap]. */
  double sum = 0;
  for (int i = 0; i < N; i++) sum += (double)rq_backoff_ms(6, base, max, splitmix(&seed));
  double mean = sum / N, mid = (double)(lo + cap) / 2;
  CHECK(mean > mid * 0.97 && mean < mid * 1.03);
}

static void test_hint(void) {
  const int64_t base = 30000, max = 3600000;
  /* The server asks for longer than the backoff: the hint wins. */
  CHECK_INT(rq_backoff_next(1, base, max, 300000, 0), ==, 300000);
  /* Even past max: the server said when it takes mail again. */
  CHECK_INT(rq_backoff_next(1, base, max, 7200000, 0), ==, 7200000);
  /* A shorter hint does not shorten the backoff. */
  CHECK_INT(rq_backoff_next(8, base, max, 1000, 0), ==, rq_backoff_ms(8, base, max, 0));
  CHECK_INT(rq_backoff_next(2, base, max, 0, 42), ==, rq_backoff_ms(2, base, max, 42));
  CHECK_INT(rq_backoff_next(2, base, max, -5, 42), ==, rq_backoff_ms(2, base, max, 42));
}

int main(void) {
  test_bounds();
  test_overflow_and_odd_arguments();
  test_uniform();
  test_hint();
  return CHECK_DONE();
}
