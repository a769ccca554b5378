/* dkim_job: the tenant's cached DKIM key (see dkim_job.h). */
#include "dkim_job.h"

#include <stdio.h>

#include "dkim.h"
#include "engine.h"
#include "log.h"
#include "tenants.h"

int rq_dkim_job_key(void *arg, void **key, char *err, size_t errlen) {
  struct rq_jobctx *jc = arg;
  struct rq_tenant_entry *e = jc->tenant;
  /* Once per settings version: a new version is a new entry. The job
   * loop is single-threaded, so the entry needs no lock. */
  if (e->dkim_key == NULL && e->dkim_error[0] == '\0') {
    e->dkim_key = rq_dkim_key_load(e->t->dkim_private_key, e->dkim_error, sizeof e->dkim_error);
    if (e->dkim_key == NULL)
      RQ_LOG_FIELDS(RQ_LOG_WARN, "DKIM key unusable; the tenant's mail fails until it is fixed",
                    {"tenant", jc->job->tenant}, {"detail", e->dkim_error});
  }
  if (e->dkim_key == NULL) {
    snprintf(err, errlen, "%s", e->dkim_error);
    return -1;
  }
  *key = e->dkim_key;
  return 0;
}
