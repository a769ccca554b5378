/*
 * `relayq tenant trust TENANT [--route NAME] [--yes]` (CONTRACT.md
 * "Command-line client", docs/tenants.md "Trusting a self-signed server"):
 * connects to the tenant's SMTP server as its route is configured
 * (STARTTLS or implicit TLS, through the worker's connection code and
 * the saas network boundary: cli_net.h's server_key, in the CLI's net
 * part), shows the certificate (subject, issuer, validity) and the pin of
 * its public key, and once confirmed (or with --yes) stores the pin in
 * smtp_tls_pin. Nothing is logged in and no mail is sent. Exit 0: stored
 * (or already trusted); 1: not stored; 2: usage.
 *
 * The pin is curl's --pinnedpubkey form, sha256//BASE64 of the DER
 * SubjectPublicKeyInfo, so it survives certificate renewals that keep the
 * key, and an operator can compute it with openssl (docs/tenants.md).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "cli.h"
#include "cli_net.h"
#include "keys.h"
#include "log.h"
#include "netpolicy.h"
#include "tenant.h"

enum { TRUST_ROUTE = CLI_OPT_FIRST_FREE, TRUST_YES, TRUST_TIMEOUT };

/* HGETALL key into a tenant or route model, without the secrets (the pin
 * does not need them, and they need not open here). */
static int load_conf(redisContext *rc, const char *tenant, const char *key, const char *route, struct rq_tenant **t,
                     const struct rq_smtp_conf **conf, char *err, size_t errlen) {
  redisReply *r = redisCommand(rc, "HGETALL %s", key);
  int rv = -1;
  if (!r || r->type != REDIS_REPLY_ARRAY) {
    snprintf(err, errlen, "cannot read %s from Redis", key);
    goto out;
  }
  if (r->elements == 0) {
    snprintf(err, errlen, "%s %s has no settings (%s is empty)", route ? "route" : "tenant", route ? route : tenant,
             key);
    goto out;
  }
  size_t n = 0;
  const char **f = calloc(r->elements / 2 + 1, sizeof *f), **v = calloc(r->elements / 2 + 1, sizeof *v);
  if (!f || !v) {
    free(f);
    free(v);
    snprintf(err, errlen, "out of memory");
    goto out;
  }
  for (size_t i = 0; i + 1 < r->elements; i += 2) {
    const char *name = r->element[i]->str;
    if (!name || rq_tenant_field_is_secret(name) || strncmp(name, "oauth_", 6) == 0) continue;
    f[n] = name;
    v[n++] = r->element[i + 1]->str ? r->element[i + 1]->str : "";
  }
  if (route) {
    const char *rf[] = {"routes"}, *rv2[] = {route};
    if (rq_tenant_parse(tenant, rf, rv2, 1, NULL, 0, 0, t, err, errlen) == 0 &&
        rq_tenant_parse_route(*t, route, f, v, n, NULL, 0, err, errlen) == 0) {
      *conf = &(*t)->routes[0];
      rv = 0;
    }
  } else if (rq_tenant_parse(tenant, f, v, n, NULL, 0, 0, t, err, errlen) == 0) {
    if ((*t)->gateway != RQ_GW_SMTP || !(*t)->smtp.host)
      snprintf(err, errlen, "tenant %s does not send through its own SMTP server (gateway=smtp); nothing to trust",
               tenant);
    else {
      *conf = &(*t)->smtp;
      rv = 0;
    }
  }
  free(f);
  free(v);
out:
  if (r) freeReplyObject(r);
  return rv;
}

static int confirmed(const char *tenant) {
  char line[16];
  printf("Trust this key for tenant %s? [y/N] ", tenant);
  fflush(stdout);
  if (!fgets(line, sizeof line, stdin)) {
    printf("\n");
    return 0;
  }
  return line[0] == 'y' || line[0] == 'Y';
}

int cmd_tenant_trust(int argc, char **argv, struct cli_ctx *ctx) {
  static const struct option opts[] = {
      CLI_GLOBAL_LONGOPTS,
      {"route", required_argument, NULL, TRUST_ROUTE},
      {"yes", no_argument, NULL, TRUST_YES},
      {"timeout-ms", required_argument, NULL, TRUST_TIMEOUT},
      {NULL, 0, NULL, 0},
  };
  const char *route = NULL;
  int yes = 0, opt;
  long long timeout_ms = 15000;
  opterr = 0;
  optind = 0;
  while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
    if (cli_global_opt(opt, optarg, ctx)) continue;
    switch (opt) {
    case TRUST_ROUTE: route = optarg; break;
    case TRUST_YES: yes = 1; break;
    case TRUST_TIMEOUT:
      if (cli_parse_int(optarg, 100, 600000, &timeout_ms) != 0)
        return cli_fail(CLI_USAGE, "--timeout-ms must be 100-600000.");
      break;
    case 'h':
      printf("usage: relayq tenant trust TENANT [--route NAME] [--yes] [--timeout-ms MS]\n"
             "Connects to the tenant's SMTP server as configured, shows its certificate and key pin,\n"
             "and stores the pin in smtp_tls_pin once confirmed (or with --yes). Exit 0 stored, 1 not.\n");
      return CLI_OK;
    default: return cli_bad_option("tenant trust", opt, argv);
    }
  }
  if (optind + 1 != argc) return cli_fail(CLI_USAGE, "usage: relayq tenant trust TENANT [--route NAME] [--yes]");
  const char *tenant = argv[optind];
  if (!relayq_valid_id(tenant) || strchr(tenant, ':') || (route && (!relayq_valid_id(route) || strchr(route, ':'))))
    return cli_fail(CLI_USAGE, "'%.60s' is not a tenant%s name.", route ? route : tenant, route ? " route" : "");
  if (ctx->net == NULL)
    return cli_fail(CLI_USAGE, "'relayq tenant trust' talks to mail servers and is not in this build.");
  struct rq_netpolicy policy;
  if (cli_netpolicy(ctx, &policy) != 0) return CLI_USAGE;
  rq_log_init(RQ_LOG_TEXT, RQ_LOG_ERROR, "relayq"); /* the worker's modules log; here only errors */

  struct relayq_client *c = cli_client(ctx);
  if (c == NULL) return CLI_FAIL;
  redisContext *rc = relayq_client_redis(c);
  char key[600], err[400];
  if (route) relayq__key(key, sizeof key, relayq_client_prefix(c), RELAYQ__KEY_ROUTE, tenant, route);
  else relayq_key(key, sizeof key, relayq_client_prefix(c), RELAYQ_KEY_TENANT, tenant);
  struct rq_tenant *t = NULL;
  const struct rq_smtp_conf *conf = NULL;
  if (load_conf(rc, tenant, key, route, &t, &conf, err, sizeof err) != 0) {
    rq_tenant_free(t);
    return cli_fail(CLI_FAIL, "nothing trusted: %s.", err);
  }
  int code = CLI_FAIL;
  if (conf->security == RQ_SEC_NONE) {
    cli_fail(CLI_FAIL, "nothing trusted: smtp_security=none uses no TLS, so there is no key to pin; use starttls or "
                       "tls.");
    goto out;
  }
  char why[400];
  if (cli_saas_smtp_refusal(&policy, conf, why, sizeof why)) {
    cli_fail(CLI_FAIL, "nothing trusted: %s.", why);
    goto out;
  }
  struct cli_server_key k;
  if (ctx->net->server_key(conf, &policy, (long)timeout_ms, &k) != 0) {
    cli_fail(CLI_FAIL, "nothing trusted: %s:%d (%s): %s", conf->host, conf->port, rq_security_name(conf->security),
             k.msg);
    goto out;
  }
  printf("Server %s port %d (%s) presents:\n", conf->host, conf->port, rq_security_name(conf->security));
  printf("  subject:    %s\n  issuer:     %s\n  valid from: %s\n  valid to:   %s\n  key pin:    %s\n", k.subject,
         k.issuer, k.not_before, k.not_after, k.pin);
  if (conf->tls_pin && strstr(conf->tls_pin, k.pin)) {
    printf("Already trusted: smtp_tls_pin holds this key.\n");
    code = CLI_OK;
    goto out;
  }
  if (conf->tls_pin) printf("This is NOT the key in smtp_tls_pin now (%s): the server's key changed.\n", conf->tls_pin);
  if (!yes && !confirmed(tenant)) {
    printf("Not stored.\n");
    goto out;
  }
  redisReply *r = redisCommand(rc, "HSET %s smtp_tls_pin %s", key, k.pin);
  if (!r || r->type == REDIS_REPLY_ERROR) {
    cli_fail(CLI_FAIL, "could not store smtp_tls_pin in %s%s%s.", key, r && r->str ? ": " : "",
             r && r->str ? r->str : "");
  } else {
    printf("Stored smtp_tls_pin=%s in %s: workers now trust this key (and only this key) for %s%s%s.\n", k.pin, key,
           tenant, route ? " route " : "", route ? route : "");
    code = CLI_OK;
  }
  if (r) freeReplyObject(r);
out:
  rq_tenant_free(t);
  return code;
}
