/* dkim_job: signing a job's message with its tenant's cached key (see
 * dkim_job.h). */
#include "dkim_job.h"

#include <stdio.h>
#include <time.h>

#include "dkim.h"
#include "engine.h"
#include "log.h"
#include "tenants.h"

int rq_dkim_sign_job(struct rq_jobctx *jc, char *err, size_t errlen) {
  if (jc->route.gateway != RQ_GW_PLATFORM) return 0;
  struct rq_tenant_entry *e = jc->tenant;
  const struct rq_tenant *t = e ? e->t : NULL;
  if (t == NULL || t->dkim_domain == NULL || t->dkim_selector == NULL || t->dkim_private_key == NULL) return 0;
  /* Once per settings version: a new version is a new entry. The job
   * loop is single-threaded, so the entry needs no lock. */
  if (e->dkim_key == NULL && e->dkim_error[0] == '\0') {
    e->dkim_key = rq_dkim_key_load(t->dkim_private_key, e->dkim_error, sizeof e->dkim_error);
    if (e->dkim_key == NULL)
      RQ_LOG_FIELDS(RQ_LOG_WARN, "DKIM key unusable; the tenant's mail fails until it is fixed",
                    {"tenant", jc->job->tenant}, {"detail", e->dkim_error});
  }
  if (e->dkim_key == NULL) {
    snprintf(err, errlen, "%s", e->dkim_error);
    return -1;
  }
  return rq_dkim_sign_msg(&jc->msg, e->dkim_key, t->dkim_domain, t->dkim_selector, (int64_t)time(NULL), err, errlen);
}
