/* dkim: not yet implemented; signing is a no-op until the DKIM issue lands. */
#include "dkim.h"

int rq_dkim_sign_job(struct rq_jobctx *jc, char *err, size_t errlen) {
  (void)jc, (void)err, (void)errlen;
  return 0;
}
