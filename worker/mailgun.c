/* mailgun: placeholder until the Mailgun transport lands. */
#include "mailgun.h"

#include <stdlib.h>

struct rq_mailgun {
  int unused;
};

struct rq_mailgun *rq_mailgun_new(struct rq_curl *curl) {
  (void)curl;
  return calloc(1, sizeof(struct rq_mailgun));
}

void rq_mailgun_free(struct rq_mailgun *m) { free(m); }

int rq_mailgun_send_for_job(struct rq_jobctx *jc, const char *const *rcpts, size_t n, rq_smtp_cb cb) {
  (void)jc, (void)rcpts, (void)n, (void)cb;
  return -1;
}
