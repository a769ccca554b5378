/* cmd_tenant_verify: `relayq tenant verify TENANT [--route NAME]
 * [--probe-rcpt ADDR] [--json]`: checks the tenant's connection with the
 * worker's SMTP session or an authenticated Mailgun request (probe.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "probe.h"
#include "route.h"
#include "tenant.h"
#include "tenant_probe.h"
#include "tenant_cmd.h"

/* ---- verify ---------------------------------------------------------------------------------------------- */

int cmd_tenant_verify(struct topts *o, struct cli_ctx *ctx) {
  char *rotated = NULL;
  struct stored s;
  struct rq_tenant *t = NULL;
  unsigned char keybuf[RELAYQ_SECRET_KEY_LEN];
  char err[512];
  int rc = CLI_FAIL;
  int have = tenant_secret_key(keybuf);
  if (have < 0) return CLI_USAGE;
  struct relayq_client *c = cli_client(ctx);
  if (c == NULL) return CLI_FAIL;
  if (tenant_load_stored(c, o->tenant, &s) != 0) goto out;
  if (s.hash.n == 0) {
    rc = tenant_not_found(o->tenant);
    goto out;
  }
  if (tenant_parse_stored(o->tenant, &s, have ? keybuf : NULL, &t, err, sizeof err) != 0) {
    rc = cli_fail(CLI_FAIL, "cannot verify tenant '%s': %s", o->tenant, err);
    goto out;
  }
  struct rq_probe_report rep;
  if (o->route != NULL) {
    int i = tenant_route_index(t, o->route);
    if (i < 0 || t->routes[i].host == NULL) {
      rc = cli_fail(CLI_FAIL, "tenant '%s' has no route '%s'%s.", o->tenant, o->route,
                    i < 0 ? " in its routes" : " hash");
      goto out;
    }
    tenant_probe_conf(&t->routes[i], o, tenant_probe_sender(t), &rep, &rotated);
  } else if (t->gateway == RQ_GW_SMTP) {
    tenant_probe_conf(&t->smtp, o, tenant_probe_sender(t), &rep, &rotated);
  } else if (t->gateway == RQ_GW_MAILGUN) {
    if (o->probe_rcpt) rc = cli_fail(CLI_USAGE, "--probe-rcpt applies to SMTP routes, not Mailgun.");
    if (o->probe_rcpt) goto out;
    tenant_probe_mailgun(t, o, &rep);
  } else {
    const char *why = "mail leaves through the platform's server, which the workers check; nothing to verify";
    if (o->json) {
      printf("{\"ok\":true,\"target\":\"platform\",\"stages\":[],\"certificate\":null,\"notes\":[");
      cli_json_string(stdout, why);
      printf("],\"category\":null,\"verdict\":null,\"error\":null}\n");
    } else {
      printf("tenant %s uses the platform gateway: %s%s.\n", o->tenant, why,
             t->n_routes ? " (check a route with --route NAME)" : "");
    }
    rc = CLI_OK;
    goto out;
  }
  tenant_print_report(&rep, o->json);
  rc = rep.ok ? CLI_OK : cli_fail(CLI_FAIL, "%s.", rep.error);
  if (rotated && tenant_save_rotated(c, o, have ? keybuf : NULL, rotated) != 0) rc = CLI_FAIL;
out:
  if (rotated) {
    OPENSSL_cleanse(rotated, strlen(rotated));
    free(rotated);
  }
  OPENSSL_cleanse(keybuf, sizeof keybuf);
  rq_tenant_free(t);
  tenant_stored_free(&s);
  return rc;
}

