/*
 * dkim_job: the tenant's DKIM key for the daemon's jobs, parsed once per
 * tenant-settings version and cached in the tenant entry (tenants.h:
 * dkim_key, dkim_error), so a bad key costs one parse and fails only that
 * tenant's jobs. The message builder (message.h) asks for it when the
 * route signs.
 */
#ifndef RQ_DKIM_JOB_H
#define RQ_DKIM_JOB_H

#include <stddef.h>

/* A rq_message_key_fn for arg = the job (struct rq_jobctx *): 0 with *key
 * set, or -1 with err (the key is unusable; logged once per entry). */
int rq_dkim_job_key(void *arg, void **key, char *err, size_t errlen);

#endif
