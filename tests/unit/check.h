/*
 * Tiny assertion header for unit tests (libuv test/task.h style): prints
 * both values on failure, is not disabled by NDEBUG, and counts checks so
 * each test binary ends with a "N passed, N failed" line.
 */
#ifndef RELAYQ_CHECK_H
#define RELAYQ_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_passed_, check_failed_;

#define CHECK_FAIL_(fmt, ...)                                                  \
  do {                                                                         \
    check_failed_++;                                                           \
    fprintf(stderr, "%s:%d: " fmt "\n", __FILE__, __LINE__, __VA_ARGS__);     \
  } while (0)

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (cond) check_passed_++;                                                 \
    else CHECK_FAIL_("CHECK(%s) failed", #cond);                               \
  } while (0)

#define CHECK_INT(a, op, b)                                                    \
  do {                                                                         \
    int64_t a_ = (int64_t)(a), b_ = (int64_t)(b);                              \
    if (a_ op b_) check_passed_++;                                             \
    else CHECK_FAIL_("CHECK_INT(%s %s %s): %" PRId64 " vs %" PRId64, #a, #op,  \
                     #b, a_, b_);                                              \
  } while (0)

#define CHECK_STR(a, b)                                                        \
  do {                                                                         \
    const char *a_ = (a), *b_ = (b);                                           \
    if (a_ && b_ && strcmp(a_, b_) == 0) check_passed_++;                      \
    else CHECK_FAIL_("CHECK_STR(%s, %s): \"%s\" vs \"%s\"", #a, #b,            \
                     a_ ? a_ : "(null)", b_ ? b_ : "(null)");                  \
  } while (0)

#define CHECK_MEM(a, b, n)                                                     \
  do {                                                                         \
    if (memcmp((a), (b), (n)) == 0) check_passed_++;                           \
    else CHECK_FAIL_("CHECK_MEM(%s, %s, %zu) differ", #a, #b, (size_t)(n));    \
  } while (0)

/* Call at the end of main: prints the summary and returns the exit code. */
#define CHECK_DONE()                                                           \
  (printf("%d passed, %d failed\n", check_passed_, check_failed_),             \
   check_failed_ ? 1 : 0)

#endif
