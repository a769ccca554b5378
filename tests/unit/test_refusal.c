/* relayq_redis_refusal: which Redis errors refuse writes for the whole
 * server (as Redis 7 words them, bare and wrapped by a script). */
#include <string.h>

#include <relayq/relayq.h>

#include "check.h"

int main(void) {
  static const struct {
    const char *err;
    enum relayq_refusal kind;
  } cases[] = {
      {"OOM command not allowed when used memory > 'maxmemory'.", RELAYQ_REFUSAL_OOM},
      {"OOM command not allowed when used memory > 'maxmemory'. script: 73bd, on @user_script:34.",
       RELAYQ_REFUSAL_OOM},
      {"ERR Error running script (call to f_1): @user_script:12: OOM command not allowed", RELAYQ_REFUSAL_OOM},
      {"READONLY You can't write against a read only replica.", RELAYQ_REFUSAL_READONLY},
      {"MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk.",
       RELAYQ_REFUSAL_MISCONF},
      {"BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
       RELAYQ_REFUSAL_BUSY},
      {"NOSCRIPT No matching script. Please use EVAL.", RELAYQ_REFUSAL_NOSCRIPT},
      {"NOREPLICAS Not enough good replicas to write.", RELAYQ_REFUSAL_NOREPLICAS},
      /* not refusals */
      {"ERR user_script:34: attempt to compare number with nil", RELAYQ_REFUSAL_NONE},
      {"WRONGTYPE Operation against a key holding the wrong kind of value", RELAYQ_REFUSAL_NONE},
      {"OOMPH not a word Redis uses", RELAYQ_REFUSAL_NONE},
      {"ERR something: NOSCRIPT inside a message", RELAYQ_REFUSAL_NONE},
      {"", RELAYQ_REFUSAL_NONE},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    enum relayq_refusal k = relayq_redis_refusal(cases[i].err);
    if (k != cases[i].kind) fprintf(stderr, "case %zu: %s\n", i, cases[i].err);
    CHECK_INT(k, ==, cases[i].kind);
    CHECK((k == RELAYQ_REFUSAL_NONE) == (relayq_refusal_summary(k)[0] == '\0'));
  }
  CHECK_INT(relayq_redis_refusal(NULL), ==, RELAYQ_REFUSAL_NONE);
  CHECK_STR(relayq_refusal_summary(RELAYQ_REFUSAL_OOM), "Redis is full (maxmemory)");
  CHECK(strstr(relayq_refusal_advice(RELAYQ_REFUSAL_OOM), "maxmemory") != NULL);
  CHECK_STR(relayq_strerror(RELAYQ_EREFUSED), "Redis refuses writes");
  CHECK_STR(relayq_strerror(RELAYQ_ETLS), "TLS verification failed");
  return CHECK_DONE();
}
