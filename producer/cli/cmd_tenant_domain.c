/*
 * cmd_tenant_domain: `relayq tenant verify-domain TENANT DOMAIN [dns
 * options]` (CONTRACT.md v1.1): runs exactly the checks of `relayq dns
 * check DOMAIN` (cmd_dns.c, with --tenant TENANT when the tenant has a
 * hash, so its DKIM selector and key are the ones checked) and, when they
 * all pass, adds DOMAIN to the tenant's `verified_domains` and records
 * `verified_at.DOMAIN` (ms since epoch). Exit as `dns check`: 0 passed
 * and added, 1 a check failed (nothing written), 2 error.
 *
 * The platform's own domain (RELAYQ_PLATFORM_FROM's, and its subdomains)
 * is refused: its SPF authorises the platform, so the checks would pass.
 *
 * Decision: at least one --expect-include or --expect-ip is required.
 * Without one the SPF check only proves the record is well formed, not
 * that the domain authorises the platform, and a domain verified that way
 * would let the platform sign for mail the domain never allowed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <getopt.h>
#include <hiredis/hiredis.h>

#include "cli.h"
#include "dnsq.h"
#include "util.h"

#define MAX_ARGS 64

/* Adds domain to the tenant's verified_domains under WATCH. Returns
 * CLI_OK, or CLI_FAIL (printed). */
static int add_domain(struct relayq_client *c, const char *tenant, const char *domain) {
  redisContext *rc = relayq_client_redis(c);
  char key[600], at_field[300], now_s[24];
  relayq_key(key, sizeof key, relayq_client_prefix(c), RELAYQ_KEY_TENANT, tenant);
  snprintf(at_field, sizeof at_field, "verified_at.%s", domain);
  snprintf(now_s, sizeof now_s, "%lld", (long long)relayq_now_ms());
  for (int round = 0; round < 5; round++) {
    redisReply *r = redisCommand(rc, "WATCH %s", key);
    if (r) freeReplyObject(r);
    r = redisCommand(rc, "HGET %s verified_domains", key);
    if (r == NULL || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL)) {
      int e = cli_fail(CLI_FAIL, "cannot read %s: %s", key, r && r->type == REDIS_REPLY_ERROR ? r->str : "Redis failed.");
      if (r) freeReplyObject(r);
      return e;
    }
    struct rq_buf list;
    rq_buf_init(&list);
    int present = 0;
    if (r->type == REDIS_REPLY_STRING) {
      /* Keep the others as they are; compare names case-insensitively. */
      for (const char *p = r->str; *p;) {
        while (*p == ' ' || *p == ',') p++;
        const char *e = p;
        while (*e && *e != ',') e++;
        const char *end = e;
        while (end > p && end[-1] == ' ') end--;
        if (end > p) {
          present |= (size_t)(end - p) == strlen(domain) && strncasecmp(p, domain, (size_t)(end - p)) == 0;
          if (list.len) rq_buf_putc(&list, ',');
          rq_buf_append(&list, p, (size_t)(end - p));
        }
        p = e;
      }
    }
    freeReplyObject(r);
    if (!present) {
      if (list.len) rq_buf_putc(&list, ',');
      rq_buf_puts(&list, domain);
    }
    rq_buf_putc(&list, '\0');
    r = redisCommand(rc, "MULTI");
    if (r) freeReplyObject(r);
    r = redisCommand(rc, "HSET %s verified_domains %s %s %s", key, list.data, at_field, now_s);
    if (r) freeReplyObject(r);
    rq_buf_free(&list);
    r = redisCommand(rc, "EXEC");
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
      int e = cli_fail(CLI_FAIL, "cannot write %s: %s", key, r ? r->str : "Redis failed.");
      if (r) freeReplyObject(r);
      return e;
    }
    int raced = r->type == REDIS_REPLY_NIL;
    freeReplyObject(r);
    if (!raced) return CLI_OK;
  }
  return cli_fail(CLI_FAIL, "%s kept changing while this command ran; run it again.", key);
}

int cmd_tenant_verify_domain(int argc, char **argv, struct cli_ctx *ctx) {
  /* argv[0] "verify-domain", then TENANT DOMAIN and dns options, in any
   * order: positionals are the arguments not starting with '-' and not
   * the value of an option that takes one. */
  static const char *const with_value[] = {"--selector", "--expect-include", "--expect-ip", "--dkim-key",
                                           "--dns-server", "--redis", "--prefix"};
  const char *pos[2] = {NULL, NULL}, *dargv[MAX_ARGS];
  int npos = 0, dargc = 0, expect = 0, json = 0;
  if (argc > MAX_ARGS - 6) return cli_fail(2, "too many arguments.");
  dargv[dargc++] = "dns";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      printf("usage: relayq tenant verify-domain TENANT DOMAIN [--selector S] [--expect-include NAME ...]\n"
             "                                  [--expect-ip IP ...] [--dkim-key FILE] [--json]\n"
             "                                  [--dns-server IP[:PORT]]\n"
             "  runs the checks of 'relayq dns check DOMAIN' (with the tenant's DKIM selector and key)\n"
             "  and, when they pass, adds DOMAIN to the tenant's verified_domains.\n"
             "  At least one --expect-include or --expect-ip (what the platform sends from) is required.\n"
             "  Exit: 0 verified, 1 a check failed (nothing saved), 2 error.\n");
      return CLI_OK;
    }
    if (strcmp(a, "--timeout") == 0 || strncmp(a, "--timeout=", 10) == 0)
      return cli_fail(2, "verify-domain takes no --timeout: its DNS queries give up after %d s per try (%d tries).",
                      DNSQ_TIMEOUT_S, DNSQ_TRIES);
    if (strcmp(a, "--tenant") == 0 || strncmp(a, "--tenant=", 9) == 0)
      return cli_fail(2, "verify-domain takes the tenant as its first argument, not --tenant.");
    if (a[0] != '-') {
      if (npos == 2) return cli_fail(2, "unexpected argument '%.60s' (usage: relayq tenant verify-domain TENANT DOMAIN).", a);
      pos[npos++] = a;
      continue;
    }
    int takes = 0;
    for (size_t k = 0; k < sizeof with_value / sizeof *with_value; k++) takes |= strcmp(a, with_value[k]) == 0;
    if (strncmp(a, "--expect-", 9) == 0) expect = 1;
    if (strcmp(a, "--json") == 0) json = 1;
    if (strcmp(a, "--redis") == 0 || strcmp(a, "--prefix") == 0 || strncmp(a, "--redis=", 8) == 0 ||
        strncmp(a, "--prefix=", 9) == 0) {
      /* Global options apply to this command's own Redis use as well. */
      const char *v = strchr(a, '=') ? strchr(a, '=') + 1 : (i + 1 < argc ? argv[i + 1] : NULL);
      if (v == NULL) return cli_fail(2, "%s needs a value.", a);
      if (strncmp(a, "--redis", 7) == 0) ctx->redis_url = v;
      else ctx->prefix = v;
      if (!strchr(a, '=')) i++;
      continue;
    }
    dargv[dargc++] = a;
    if (takes && i + 1 < argc) dargv[dargc++] = argv[++i];
  }
  if (npos != 2) return cli_fail(2, "usage: relayq tenant verify-domain TENANT DOMAIN [dns check options].");
  const char *tenant = pos[0];
  if (!relayq_valid_tenant(tenant))
    return cli_fail(2, "the tenant id must be 1-128 characters of A-Z a-z 0-9 . _ @ - (no ':').");
  char domain[256];
  size_t dl = strlen(pos[1]);
  if (dl && pos[1][dl - 1] == '.') dl--;
  if (dl == 0 || dl >= sizeof domain) return cli_fail(2, "'%.80s' is not a domain name.", pos[1]);
  for (size_t k = 0; k < dl; k++) domain[k] = (char)(pos[1][k] >= 'A' && pos[1][k] <= 'Z' ? pos[1][k] + 32 : pos[1][k]);
  domain[dl] = '\0';
  if (!dnsq_valid_name(domain) || strchr(domain, '.') == NULL)
    return cli_fail(2, "'%.80s' is not a domain name (ASCII; use the xn-- form for international names).", pos[1]);
  /* The platform's own domain is never a tenant's (its SPF authorises the
   * platform, so the checks would pass). */
  const char *pf = getenv("RELAYQ_PLATFORM_FROM");
  const char *pd = pf ? strrchr(pf, '@') : NULL;
  if (pd != NULL) {
    pd++;
    size_t lp = strlen(pd);
    if (dl >= lp && strcasecmp(domain + (dl - lp), pd) == 0 && (dl == lp || domain[dl - lp - 1] == '.'))
      return cli_fail(2, "%s is the platform's own domain (RELAYQ_PLATFORM_FROM): it is never a tenant's.", domain);
  }
  if (!expect)
    return cli_fail(2, "say what the platform sends from: --expect-include NAME (its SPF include) or --expect-ip "
                       "IP, so the SPF check proves that %s authorises the platform.",
                    domain);

  struct relayq_client *c = cli_client(ctx);
  if (c == NULL) return 2;
  char key[600];
  relayq_key(key, sizeof key, relayq_client_prefix(c), RELAYQ_KEY_TENANT, tenant);
  redisReply *r = redisCommand(relayq_client_redis(c), "EXISTS %s", key);
  int exists = r && r->type == REDIS_REPLY_INTEGER && r->integer > 0;
  if (r) freeReplyObject(r);
  if (exists) {
    dargv[dargc++] = "--tenant";
    dargv[dargc++] = tenant;
  }
  dargv[dargc++] = "check";
  dargv[dargc++] = domain;
  dargv[dargc] = NULL;
  optind = 0; /* cmd_dns parses its own argv with getopt */
  ctx->verify_for = tenant; /* its one failure line says what was not done */
  int rc = cmd_dns(dargc, (char **)dargv, ctx);
  ctx->verify_for = NULL;
  fflush(stdout);
  if (rc != 0) return rc;
  if (add_domain(c, tenant, domain) != CLI_OK) return 2;
  if (!json) printf("Verified: %s added to tenant %s's verified_domains.\n", domain, tenant);
  return CLI_OK;
}
