/* mailgun: placeholder until the Mailgun transport lands (see mailgun.h). */
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
int rq_mailgun_pending(const struct rq_mailgun *m) { (void)m; return 0; }

int rq_mailgun_send(struct rq_mailgun *m, const struct rq_mailgun_request *req, rq_mailgun_cb cb, void *arg) {
  (void)m, (void)req, (void)cb, (void)arg;
  return -1;
}
