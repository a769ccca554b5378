/*
 * tenant_probe: a tenant's connection checked as `relayq tenant verify`
 * and `relayq tenant set` (before saving) check it: the SMTP route (with
 * its OAuth2 token step) or the Mailgun account through probe.h, with the
 * advice a saas or onprem worker implies, and the report printed as text
 * or JSON. Private to the CLI's net part (producer/cli/net).
 */
#ifndef RELAYQ_TENANT_PROBE_H
#define RELAYQ_TENANT_PROBE_H

#include "probe.h"
#include "tenant.h"
#include "tenant_cmd.h"

/* Probes the SMTP server c describes into r. mail_from: the envelope
 * sender of a --probe-rcpt check. rotated (may be NULL): set to a refresh
 * token the provider issued during the check (smtp_auth=xoauth2), which
 * replaces the stored one; the caller wipes and frees it. */
void tenant_probe_conf(const struct rq_smtp_conf *c, const struct topts *o, const char *mail_from,
                       struct rq_probe_report *r, char **rotated);
/* Probes the tenant's Mailgun account and domain into r. */
void tenant_probe_mailgun(const struct rq_tenant *t, const struct topts *o, struct rq_probe_report *r);
/* Prints r on stdout, as text or (json) one JSON object. */
void tenant_print_report(const struct rq_probe_report *r, int json);
/* The envelope sender a check uses: the tenant's from_email, else
 * RELAYQ_PLATFORM_FROM, else the worker's default. t may be NULL. */
const char *tenant_probe_sender(const struct rq_tenant *t);
/* `tenant set`'s check (cli_net.h, tenant_set_verify). */
int tenant_set_verify(const struct topts *o, const struct kvs *merged, const unsigned char *key,
                      const char *tenant_from, int *json_open, char **rotated);

/* The commands (cmd_tenant_verify.c, cmd_tenant_test.c) and `tenant
 * trust`'s look at a server's key (server_key.c); the core reaches them
 * through cli_net.h. */
int cmd_tenant_verify(struct topts *o, struct cli_ctx *ctx);
int cmd_tenant_test(struct topts *o, struct cli_ctx *ctx);
struct cli_server_key;
int cli_server_key(const struct rq_smtp_conf *conf, const struct rq_netpolicy *policy, long timeout_ms,
                   struct cli_server_key *out);

#endif
