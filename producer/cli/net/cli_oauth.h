/*
 * cli_oauth: the OAuth2 step of `relayq tenant set/verify` for routes with
 * smtp_auth=xoauth2: a real token request, made by the worker's own token
 * client (worker/net/oauth_http.c on a private libuv loop), so the check
 * asks the provider exactly what a worker will ask; the access token then
 * logs in to the SMTP server with XOAUTH2 (probe.h's bearer).
 *
 * Secrets: the token and a rotated refresh token are returned to the
 * caller (who wipes them); the report shows only the outcome.
 */
#ifndef RQ_CLI_OAUTH_H
#define RQ_CLI_OAUTH_H

#include "probe.h"
#include "tenant.h"

struct rq_netpolicy;

/* The token step of a probe, inside netpolicy (NULL: onprem). Returns 0 with *token (malloc'd; the caller
 * wipes and frees) and *rotated (a new refresh token the provider issued,
 * malloc'd, or NULL), the passed step kept in *stage for
 * cli_oauth_stage_first; or -1 with r filled as a failed report (category
 * auth, or policy for a token URL outside the network boundary). */
int cli_oauth_token(const struct rq_smtp_conf *c, const char *ca_file, long timeout_ms,
                    const struct rq_netpolicy *netpolicy, char **token, char **rotated,
                    struct rq_probe_stage *stage, struct rq_probe_report *r);

/* Puts the token step before the SMTP stages of r (rq_probe_smtp_run
 * starts its report afresh). */
void cli_oauth_stage_first(struct rq_probe_report *r, const struct rq_probe_stage *stage);

#endif
