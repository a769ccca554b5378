/* Unit tests for the per-server circuit breaker. */
#include "breaker.h"
#include "check.h"
#include "when.h"

#include <string.h>

static struct rq_class cls(enum rq_verdict v, enum rq_errcat e) {
  struct rq_class c = {.verdict = v, .error = e};
  return c;
}

int main(void) {
  struct rq_breaker b = {0};
  struct rq_class auth = cls(RQ_PERM, RQ_ERR_AUTH), ok = cls(RQ_OK, RQ_ERR_NONE),
                  conn = cls(RQ_TEMP, RQ_ERR_CONNECT), rcpt = cls(RQ_PERM, RQ_ERR_RECIPIENT_REJECTED);
  int64_t until = 0, t = 1000;

  /* Closed: everything allowed; two auth failures do not trip it. */
  CHECK_INT(rq_breaker_allow(&b, t, &until), ==, 1);
  CHECK_INT(rq_breaker_record(&b, &auth, t), ==, 0);
  CHECK_INT(rq_breaker_record(&b, &auth, t), ==, 0);
  /* A recipient rejection is no evidence about the server: it resets. */
  CHECK_INT(rq_breaker_record(&b, &rcpt, t), ==, 0);
  CHECK_INT(b.failures, ==, 0);
  /* Three in a row trip it. */
  rq_breaker_record(&b, &auth, t);
  rq_breaker_record(&b, &auth, t);
  CHECK_INT(rq_breaker_record(&b, &auth, t), ==, 1);
  CHECK_INT(b.state, ==, RQ_BREAKER_OPEN);
  CHECK_INT(b.reason, ==, RQ_ERR_AUTH);
  /* An open breaker shows the count that tripped it (P:breaker ROUTE.failures). */
  CHECK_INT(b.failures, ==, 3);
  CHECK_INT(rq_breaker_allow(&b, t + 1, &until), ==, 0);
  CHECK_INT(until, ==, t + RQ_BREAKER_BASE_MS);
  /* After the cool-down one probe goes through, the next waits. */
  t += RQ_BREAKER_BASE_MS;
  CHECK_INT(rq_breaker_allow(&b, t, &until), ==, 1);
  CHECK_INT(b.state, ==, RQ_BREAKER_HALF_OPEN);
  CHECK_INT(rq_breaker_allow(&b, t, &until), ==, 0);
  /* The probe fails: open again, for twice as long. */
  CHECK_INT(rq_breaker_record(&b, &auth, t), ==, 1);
  CHECK_INT(b.open_until, ==, t + 2 * RQ_BREAKER_BASE_MS);
  /* Cool-down is capped. */
  for (int i = 0; i < 20; i++) {
    t = b.open_until;
    rq_breaker_allow(&b, t, &until);
    rq_breaker_record(&b, &auth, t);
  }
  CHECK_INT(b.open_until - t, ==, RQ_BREAKER_MAX_MS);
  /* A successful probe closes it and resets the counters. */
  t = b.open_until;
  CHECK_INT(rq_breaker_allow(&b, t, &until), ==, 1);
  CHECK_INT(rq_breaker_record(&b, &ok, t), ==, 1);
  CHECK_INT(b.state, ==, RQ_BREAKER_CLOSED);
  CHECK_INT(b.trips, ==, 0);
  /* Connection failures need five. */
  for (int i = 0; i < 4; i++) CHECK_INT(rq_breaker_record(&b, &conn, t), ==, 0);
  CHECK_INT(rq_breaker_record(&b, &conn, t), ==, 1);
  CHECK_STR(rq_breaker_state_name(b.state), "open");

  /* Shared across workers: the count comes from Redis. */
  struct rq_breaker s1 = {0};
  CHECK_INT(rq_breaker_threshold(RQ_ERR_AUTH), ==, 3);
  CHECK_INT(rq_breaker_threshold(RQ_ERR_TLS), ==, 3);
  CHECK_INT(rq_breaker_threshold(RQ_ERR_CONNECT), ==, 5);
  CHECK_INT(rq_breaker_cooldown(1), ==, RQ_BREAKER_BASE_MS);
  CHECK_INT(rq_breaker_cooldown(2), ==, 2 * RQ_BREAKER_BASE_MS);
  CHECK_INT(rq_breaker_cooldown(30), ==, RQ_BREAKER_MAX_MS);
  t = 5000;
  CHECK_INT(rq_breaker_failed(&s1, RQ_ERR_CONNECT, 4, t), ==, 0); /* 4 by every worker so far */
  CHECK_INT(s1.failures, ==, 4);
  CHECK_INT(rq_breaker_failed(&s1, RQ_ERR_CONNECT, 5, t), ==, 1);
  CHECK_INT(s1.state, ==, RQ_BREAKER_OPEN);
  CHECK_INT(s1.open_until, ==, t + RQ_BREAKER_BASE_MS);
  CHECK_INT(s1.failures, ==, 5); /* the count that tripped it, not 0 */
  /* A late failure of a transaction started before the trip changes
   * nothing but the count. */
  CHECK_INT(rq_breaker_failed(&s1, RQ_ERR_CONNECT, 9, t + 10), ==, 0);
  CHECK_INT(s1.open_until, ==, t + RQ_BREAKER_BASE_MS);
  CHECK_INT(s1.failures, ==, 9);
  /* A failed probe (half-open) reopens at once, whatever the count. */
  s1.state = RQ_BREAKER_HALF_OPEN;
  CHECK_INT(rq_breaker_failed(&s1, RQ_ERR_CONNECT, 0, t + RQ_BREAKER_BASE_MS), ==, 1);
  CHECK_INT(s1.open_until, ==, t + 3 * RQ_BREAKER_BASE_MS);

  /* Adopting what other workers shared. */
  struct rq_breaker mine = {0}, shared = {.state = RQ_BREAKER_OPEN, .open_until = 90000, .reason = RQ_ERR_TLS,
                                         .trips = 2};
  CHECK_INT(rq_breaker_adopt(&mine, &shared, 0), ==, 1);
  CHECK_INT(mine.state, ==, RQ_BREAKER_OPEN);
  CHECK_INT(mine.open_until, ==, 90000);
  CHECK_INT(mine.reason, ==, RQ_ERR_TLS);
  CHECK_INT(mine.trips, ==, 2);
  CHECK_INT(rq_breaker_adopt(&mine, &shared, 0), ==, 0); /* nothing new */
  /* Another worker probes: wait for its verdict until its deadline. */
  shared.state = RQ_BREAKER_HALF_OPEN;
  CHECK_INT(rq_breaker_adopt(&mine, &shared, 120000), ==, 1);
  CHECK_INT(mine.state, ==, RQ_BREAKER_OPEN);
  CHECK_INT(mine.open_until, ==, 120000);
  /* Our own probe is left to its verdict. */
  mine.state = RQ_BREAKER_HALF_OPEN;
  shared.state = RQ_BREAKER_OPEN;
  CHECK_INT(rq_breaker_adopt(&mine, &shared, 0), ==, 0);
  CHECK_INT(mine.state, ==, RQ_BREAKER_HALF_OPEN);
  /* Closed there closes it here. */
  shared = (struct rq_breaker){.state = RQ_BREAKER_CLOSED, .failures = 1};
  CHECK_INT(rq_breaker_adopt(&mine, &shared, 0), ==, 1);
  CHECK_INT(mine.state, ==, RQ_BREAKER_CLOSED);
  CHECK_INT(mine.trips, ==, 0);
  CHECK_INT(mine.failures, ==, 1);
  /* Open there with a higher count: ours shows it too. */
  mine = (struct rq_breaker){0};
  shared = (struct rq_breaker){.state = RQ_BREAKER_OPEN, .open_until = 90000, .failures = 5};
  rq_breaker_adopt(&mine, &shared, 0);
  CHECK_INT(mine.failures, ==, 5);
  /* A success resets the count. */
  CHECK_INT(rq_breaker_record(&mine, &ok, 100000), ==, 1);
  CHECK_INT(mine.failures, ==, 0);
  CHECK_INT(rq_breaker_state_parse("half_open"), ==, RQ_BREAKER_HALF_OPEN);
  CHECK_INT(rq_breaker_state_parse("open"), ==, RQ_BREAKER_OPEN);
  CHECK_INT(rq_breaker_state_parse(""), ==, RQ_BREAKER_CLOSED);
  CHECK_INT(rq_breaker_state_parse(NULL), ==, RQ_BREAKER_CLOSED);

  /* When sending resumes, in words a person reads (status detail). */
  char w[64];
  int64_t now = 1796539930000; /* 2026-12-06 06:52:10 UTC */
  CHECK_STR(rq_when(w, sizeof w, now + 58000, now), "in 58 s (06:53:08 UTC)");
  CHECK_STR(rq_when(w, sizeof w, now + 57001, now), "in 58 s (06:53:07 UTC)");
  CHECK_STR(rq_when(w, sizeof w, now + 600000, now), "in 10 min (07:02:10 UTC)");
  CHECK_STR(rq_when(w, sizeof w, now + 3 * 3600000, now), "in 3 h (09:52:10 UTC)");
  CHECK_STR(rq_when(w, sizeof w, now + 20 * 3600000, now), "in 20 h (2026-12-07 02:52:10 UTC)");
  CHECK_STR(rq_when(w, sizeof w, now + 3 * 86400000LL, now), "in 3 d (2026-12-09 06:52:10 UTC)");
  CHECK_STR(rq_when(w, sizeof w, now - 5, now), "now");
  CHECK_STR(rq_when(w, 8, now + 58000, now), "in 58 s");
  CHECK_INT((int)strlen(rq_when(w, 1, now + 1, now)), ==, 0);
  return CHECK_DONE();
}
