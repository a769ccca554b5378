/*
 * Unit tests for worker/util's number formatting (rq_fmt_u64, rq_fmt_i64,
 * rq_buf_put_i64): the same text as printf("%lld") for edge values and a
 * sweep, and truncation that always leaves a terminated string.
 */
#include "check.h"
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static void same_as_printf(int64_t v) {
  char want[32], got[32];
  snprintf(want, sizeof want, "%" PRId64, v);
  size_t n = rq_fmt_i64(got, sizeof got, v);
  CHECK_STR(got, want);
  CHECK_INT(n, ==, strlen(want));
}

int main(void) {
  const int64_t edges[] = {0, 1, -1, 9, 10, -10, 99, 100, 1796394780675LL, INT64_MAX, INT64_MIN};
  for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) same_as_printf(edges[i]);
  for (int64_t v = -100000; v <= 100000; v += 7) same_as_printf(v);

  char u[24];
  u[rq_fmt_u64(u, UINT64_MAX)] = '\0'; /* the 20-digit worst case */
  CHECK_STR(u, "18446744073709551615");
  u[rq_fmt_u64(u, 0)] = '\0';
  CHECK_STR(u, "0");

  char small[4];
  CHECK_INT(rq_fmt_i64(small, sizeof small, 123456), ==, 3);
  CHECK_STR(small, "123"); /* leading digits, terminated */
  CHECK_INT(rq_fmt_i64(small, 1, 5), ==, 0);
  CHECK_STR(small, "");

  struct rq_buf b;
  rq_buf_init(&b);
  rq_buf_put_i64(&b, -42);
  rq_buf_puts(&b, ",");
  rq_buf_put_i64(&b, 1796394780675LL);
  CHECK_STR(b.data, "-42,1796394780675");
  rq_buf_free(&b);

  /* rq_scat: what snprintf("%s") / "%s%s" would write and return. */
  char d[8], want[8];
  const char *srcs[] = {"", "a", "abcdefg", "abcdefgh", "abcdefghijk"};
  for (size_t i = 0; i < sizeof srcs / sizeof srcs[0]; i++) {
    for (size_t cap = 1; cap <= sizeof d; cap++) {
      int w = snprintf(want, cap, "%s", srcs[i]);
      CHECK_INT(rq_scat(d, cap, 0, srcs[i]), ==, (size_t)w);
      CHECK_STR(d, want);
      for (size_t j = 0; j < sizeof srcs / sizeof srcs[0]; j++) {
        w = snprintf(want, cap, "%s%s", srcs[i], srcs[j]);
        CHECK_INT(rq_scat(d, cap, rq_scat(d, cap, 0, srcs[i]), srcs[j]), ==, (size_t)w);
        CHECK_STR(d, want);
      }
    }
  }
  CHECK_INT(rq_scat(NULL, 0, 0, "abc"), ==, 3);
  return CHECK_DONE();
}
