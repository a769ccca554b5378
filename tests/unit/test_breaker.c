/* Unit tests for the per-server circuit breaker. */
#include "breaker.h"
#include "check.h"

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
  return CHECK_DONE();
}
