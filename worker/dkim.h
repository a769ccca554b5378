/*
 * dkim: DKIM signing (RFC 6376, rsa-sha256; RFC 8463 ed25519-sha256) of
 * messages sent through the platform gateway for tenants with dkim_domain,
 * dkim_selector and dkim_private_key. Signs jc->msg in place (prepends the
 * DKIM-Signature header) after every header and body change.
 */
#ifndef RQ_DKIM_H
#define RQ_DKIM_H

#include <stddef.h>

struct rq_jobctx;

/* Returns 0 (signed, or nothing to sign) or -1 with err (a bad key: the
 * job fails with that sentence, other tenants go on). */
int rq_dkim_sign_job(struct rq_jobctx *jc, char *err, size_t errlen);

#endif
