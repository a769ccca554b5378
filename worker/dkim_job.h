/*
 * dkim_job: DKIM for the daemon's jobs. Signs a job's built message
 * (jc->msg) when its route is the platform gateway and its tenant has
 * dkim_domain, dkim_selector and dkim_private_key (dkim.h explains why
 * only that route). The key is parsed once per tenant-settings version and
 * cached in the tenant entry (tenants.h: dkim_key, dkim_error).
 */
#ifndef RQ_DKIM_JOB_H
#define RQ_DKIM_JOB_H

#include <stddef.h>

struct rq_jobctx;

/* Returns 0 (signed, or nothing to sign) or -1 with err (a bad key: the
 * job fails with that sentence, other tenants go on). Loads and caches
 * the tenant's key on first use. */
int rq_dkim_sign_job(struct rq_jobctx *jc, char *err, size_t errlen);

#endif
