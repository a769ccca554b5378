/* tenant_probe: the connection checks of the tenant commands: a tenant's
 * SMTP route or Mailgun account probed (probe.h) as `tenant verify` and
 * `tenant set` (before it saves) run them, with the saas/onprem advice,
 * and the report printed. See tenant_probe.h. */
#include "tenant_probe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "cli_oauth.h"
#include "probe.h"
#include "tenant.h"

/* Saas/onprem advice for an SMTP server (CONTRACT.md --mode). */
static void tenant_policy_notes(struct rq_probe_report *r, const struct rq_smtp_conf *c) {
  const char *mode = getenv("RELAYQ_MODE");
  int onprem = mode != NULL && strcmp(mode, "onprem") == 0;
  if (c->port == 25 || c->user == NULL)
    rq_probe_note(r, "workers in --mode saas refuse %s (error policy); it works with --mode onprem%s",
                  c->port == 25 ? "a tenant server on port 25" : "a tenant server without AUTH (no smtp_user)",
                  onprem ? " (RELAYQ_MODE=onprem here)" : "");
  if (c->security == RQ_SEC_NONE && c->user != NULL)
    rq_probe_note(r, "smtp_security=none sends the password unencrypted");
  if (!c->tls_verify && c->security != RQ_SEC_NONE && !c->tls_pin)
    rq_probe_note(r, "smtp_tls_verify=0: the server's identity is not checked; `relayq tenant trust` (a key pin) "
                     "is the safer choice");
}

/* rotated (may be NULL): a refresh token the provider issued during the
 * check (smtp_auth=xoauth2), which replaces the stored one. */
void tenant_probe_conf(const struct rq_smtp_conf *c, const struct topts *o, const char *mail_from,
                       struct rq_probe_report *r, char **rotated) {
  char *token = NULL, *rt = NULL;
  struct rq_probe_stage tok_stage;
  if (c->xoauth2 && cli_oauth_token(c, o->ca_file, o->timeout_ms, o->netpolicy.enforce ? &o->netpolicy : NULL,
                                    &token, &rt, &tok_stage, r) != 0) {
    tenant_policy_notes(r, c);
    return;
  }
  struct rq_probe_smtp p = {
      .host = c->host,
      .port = c->port,
      .security = c->security,
      .user = c->user,
      .password = c->password,
      .tls_verify = c->tls_verify,
      .ca_file = o->ca_file,
      .mail_from = mail_from,
      .rcpt = o->probe_rcpt,
      .timeout_ms = o->timeout_ms,
      .netpolicy = &o->netpolicy,
      .tls_pin = c->tls_pin,
      .bearer = token,
  };
  rq_probe_smtp_run(&p, r);
  if (token) {
    cli_oauth_stage_first(r, &tok_stage);
    OPENSSL_cleanse(token, strlen(token));
    free(token);
  }
  if (rt && rotated) *rotated = rt;
  else if (rt) {
    OPENSSL_cleanse(rt, strlen(rt));
    free(rt);
  }
  tenant_policy_notes(r, c);
}

void tenant_probe_mailgun(const struct rq_tenant *t, const struct topts *o, struct rq_probe_report *r) {
  struct rq_probe_mailgun p = {
      .base_url = t->mailgun_base_url,
      .domain = t->mailgun_domain,
      .api_key = t->mailgun_api_key,
      .ca_file = o->ca_file,
      .timeout_ms = o->timeout_ms,
      .netpolicy = &o->netpolicy,
  };
  rq_probe_mailgun_run(&p, r);
}

void tenant_print_report(const struct rq_probe_report *r, int json) {
  if (json) rq_probe_print_json(stdout, r);
  else rq_probe_print(stdout, r);
  fflush(stdout);
}

/* The envelope sender a check or a test uses: the tenant's from_email,
 * else RELAYQ_PLATFORM_FROM, else the worker's default. */
const char *tenant_probe_sender(const struct rq_tenant *t) {
  if (t != NULL && t->from_email != NULL) return t->from_email;
  const char *env = getenv("RELAYQ_PLATFORM_FROM");
  return env != NULL && env[0] != '\0' ? env : "no-reply@platform.example";
}


/*
 * Probes what merged describes, with the real secrets (stored ones opened
 * with key, new ones still plaintext), and prints the report. With --json
 * the report opens the output object and *json_open is set. Returns CLI_OK
 * (passed, or nothing to probe), CLI_FAIL (probe failed, printed) or
 * CLI_USAGE (secrets cannot be opened, printed). tenant_from: the stored
 * tenant's from_email, the sender of a route's --probe-rcpt check.
 */
int tenant_set_verify(const struct topts *o, const struct kvs *merged, const unsigned char *key,
                         const char *tenant_from, int *json_open, char **rotated) {
  struct rq_tenant *t = NULL;
  struct rq_probe_report rep;
  char err[512];
  const char *const *f = (const char *const *)merged->f, *const *v = (const char *const *)merged->v;
  int rc = CLI_USAGE;
  if (o->route != NULL) {
    const char *rf[] = {"routes"}, *rv[] = {o->route};
    if (rq_tenant_parse(o->tenant, rf, rv, 1, NULL, 0, 0, &t, err, sizeof err) != 0 ||
        rq_tenant_parse_route(t, o->route, f, v, merged->n, key, 0, err, sizeof err) != 0)
      goto cannot;
    tenant_probe_conf(&t->routes[0], o, tenant_from ? tenant_from : tenant_probe_sender(NULL), &rep, rotated);
  } else {
    if (rq_tenant_parse(o->tenant, f, v, merged->n, key, 0, 0, &t, err, sizeof err) != 0) goto cannot;
    if (t->gateway == RQ_GW_SMTP) {
      tenant_probe_conf(&t->smtp, o, tenant_probe_sender(t), &rep, rotated);
    } else if (t->gateway == RQ_GW_MAILGUN) {
      tenant_probe_mailgun(t, o, &rep);
    } else {
      if (!o->json) printf("gateway platform: mail leaves through the platform's server; nothing to verify.\n");
      rc = CLI_OK;
      goto out;
    }
  }
  if (o->json) {
    fputs("{\"verify\":", stdout);
    rq_probe_print_json(stdout, &rep);
    *json_open = 1;
  } else {
    tenant_print_report(&rep, 0);
  }
  rc = rep.ok ? CLI_OK : cli_fail(CLI_FAIL, "not saved: %s.", rep.error);
  goto out;
cannot:
  cli_fail(CLI_USAGE, "cannot verify: %s Or pass --no-verify to save without checking.", err);
out:
  rq_tenant_free(t);
  return rc;
}

