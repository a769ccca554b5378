/*
 * cmd_tenant_set: `relayq tenant set TENANT FIELD=VALUE ... [--route NAME]
 * [--no-verify] [--stdin FIELD]`: validates every field (one line per
 * problem), merges with what is stored, fills preset and port defaults,
 * seals secrets with RELAYQ_SECRET_KEY, verifies the connection (cli_net.h)
 * unless --no-verify, and writes the canonical values in one MULTI under
 * WATCH, so nothing is saved when verification fails or someone else
 * changed the tenant meanwhile. `FIELD=` deletes FIELD. --route NAME
 * writes P:tenant:T:route:NAME (smtp_* fields) and lists NAME in the
 * tenant's `routes`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <openssl/crypto.h>

#include "cli.h"
#include "cli_net.h"
#include "keys.h"
#include "route.h"
#include "tenant.h"
#include "tenant_cmd.h"
#include "util.h"

/* ---- set ------------------------------------------------------------------------------------------ */

/* Writes the final hash: HDEL what went away, HSET the rest, in one
 * MULTI under the WATCH taken before reading. extra_* (may be NULL): one
 * more HSET or HDEL on the tenant hash (its `routes`). Returns 0, 1 when
 * the WATCH fired (someone else wrote), -1 on error (printed). */
static int write_hash(struct relayq_client *c, const char *key, const struct kvs *old, const struct kvs *final,
                      const char *extra_key, const char *extra_field, const char *extra_value) {
  const char *multi[] = {"MULTI"};
  if (tenant_redis_ok(c, 1, multi) != 0) return -1;
  for (size_t i = 0; i < old->n; i++) {
    if (kvs_find(final, old->f[i]) >= 0) continue;
    const char *argv[] = {"HDEL", key, old->f[i]};
    if (tenant_redis_ok(c, 3, argv) != 0) return -1;
  }
  for (size_t i = 0; i < final->n; i++) {
    const char *argv[] = {"HSET", key, final->f[i], final->v[i]};
    if (tenant_redis_ok(c, 4, argv) != 0) return -1;
  }
  if (extra_key != NULL) {
    if (extra_value != NULL) {
      const char *argv[] = {"HSET", extra_key, extra_field, extra_value};
      if (tenant_redis_ok(c, 4, argv) != 0) return -1;
    } else {
      const char *argv[] = {"HDEL", extra_key, extra_field};
      if (tenant_redis_ok(c, 3, argv) != 0) return -1;
    }
  }
  const char *exec[] = {"EXEC"};
  redisReply *r = tenant_redis(c, 1, exec);
  if (r == NULL) return -1;
  int rc = r->type == REDIS_REPLY_NIL ? 1 : 0;
  freeReplyObject(r);
  return rc;
}

/* Tenant mode: judges the merged hash as a whole and rewrites it with the
 * canonical values. Returns CLI_OK or CLI_USAGE (printed). */
static int settle_tenant(const struct topts *o, struct kvs *merged) {
  struct rq_tenant *shape = NULL;
  char err[512];
  /* Fields another writer left that this parser does not know. */
  for (size_t i = 0; i < merged->n; i++)
    if (!rq_tenant_field_known(merged->f[i]))
      return cli_fail(CLI_USAGE, "the stored tenant has an unknown field '%.60s': remove it with 'relayq tenant set "
                                 "%s %.60s=' (or fix its name).",
                      merged->f[i], o->tenant, merged->f[i]);
  if (tenant_parse_shape(o->tenant, merged, 1, &shape, err, sizeof err) != 0) return cli_fail(CLI_USAGE, "%s", err);
  tenant_canonical_tenant(merged, shape);
  rq_tenant_free(shape);
  return CLI_OK;
}

/* Route mode: the name must fit in the tenant's `routes` (routes_new is
 * the list with it) and the merged route hash must parse. Rewrites it with
 * the canonical values. Returns CLI_OK or CLI_USAGE (printed). */
static int settle_route(const struct topts *o, struct kvs *merged, const char *routes_new) {
  struct rq_tenant *shape = NULL, *values = NULL;
  char err[512];
  int rc = CLI_USAGE;
  const char *rf[] = {"routes"}, *rv[] = {routes_new};
  if (rq_tenant_parse(o->tenant, rf, rv, 1, NULL, 0, 1, &shape, err, sizeof err) != 0) {
    cli_fail(CLI_USAGE, "%s", err);
    goto out;
  }
  for (size_t i = 0; i < merged->n; i++)
    if (strncmp(merged->f[i], "smtp_", 5) != 0 || !rq_tenant_field_known(merged->f[i])) {
      cli_fail(CLI_USAGE, "the stored route has a field '%.60s' that routes do not use: remove it with 'relayq "
                          "tenant set %s --route %s %.60s='.",
               merged->f[i], o->tenant, o->route, merged->f[i]);
      goto out;
    }
  /* Strict value checks first (the route parser ignores unknown fields),
   * then the route's own rules (a host is required). */
  if (tenant_parse_shape(o->tenant, merged, 1, &values, err, sizeof err) != 0) {
    cli_fail(CLI_USAGE, "%s", err);
    goto out;
  }
  const char **f = rq_xcalloc(merged->n + 1, sizeof *f), **v = rq_xcalloc(merged->n + 1, sizeof *v);
  for (size_t i = 0; i < merged->n; i++) {
    f[i] = merged->f[i];
    v[i] = rq_tenant_field_is_secret(f[i]) && relayq_secret_is_sealed(merged->v[i]) ? "sealed" : merged->v[i];
  }
  int prc = rq_tenant_parse_route(shape, o->route, f, v, merged->n, NULL, 0, err, sizeof err);
  free(f);
  free(v);
  if (prc != 0) {
    cli_fail(CLI_USAGE, "%s", err);
    goto out;
  }
  tenant_canonical_smtp(merged, &shape->routes[tenant_route_index(shape, o->route)]);
  rc = CLI_OK;
out:
  rq_tenant_free(shape);
  rq_tenant_free(values);
  return rc;
}

/* The saas refusals a worker would make, judged on the merged hash before
 * anything is saved (--no-verify included): a tenant server on port 25, a
 * numeric-shorthand host, a host in a network closed to tenants, a
 * Mailgun URL that is not https:// or points into such a network.
 * Returns CLI_OK, or CLI_USAGE after printing the reason. */
static int saas_refusal(const struct topts *o, const struct kvs *merged, const unsigned char *key) {
  if (!o->netpolicy.enforce) return CLI_OK;
  struct rq_tenant *t = NULL;
  char err[512], why[400];
  const char *const *f = (const char *const *)merged->f, *const *v = (const char *const *)merged->v;
  int refused = 0;
  (void)key; /* secrets need not open to judge where they would go */
  if (o->route != NULL) {
    const char *rf[] = {"routes"}, *rv[] = {o->route};
    if (rq_tenant_parse(o->tenant, rf, rv, 1, NULL, 0, 0, &t, err, sizeof err) != 0 ||
        rq_tenant_parse_route(t, o->route, f, v, merged->n, NULL, 0, err, sizeof err) != 0) {
      rq_tenant_free(t);
      return CLI_OK; /* the shape checks already judged it */
    }
    refused = cli_saas_smtp_refusal(&o->netpolicy, &t->routes[0], why, sizeof why) ||
              (t->routes[0].xoauth2 && cli_saas_url_refusal(&o->netpolicy, "oauth_token_url",
                                                           t->routes[0].oauth.token_url, why, sizeof why));
  } else {
    if (rq_tenant_parse(o->tenant, f, v, merged->n, NULL, 0, 0, &t, err, sizeof err) != 0) return CLI_OK;
    if (t->gateway == RQ_GW_SMTP)
      refused = cli_saas_smtp_refusal(&o->netpolicy, &t->smtp, why, sizeof why) ||
                (t->smtp.xoauth2 &&
                 cli_saas_url_refusal(&o->netpolicy, "oauth_token_url", t->smtp.oauth.token_url, why, sizeof why));
    else if (t->gateway == RQ_GW_MAILGUN)
      refused = cli_saas_url_refusal(&o->netpolicy, "mailgun_base_url", t->mailgun_base_url, why, sizeof why);
  }
  rq_tenant_free(t);
  if (!refused) return CLI_OK;
  return cli_fail(CLI_USAGE, "not saved: %s (workers run in --mode saas; --no-verify does not change that).", why);
}

/* Seals every secret of m that is still plaintext, as enc:v2: bound to
 * place (the hash key without the prefix) and its field. Returns 0 or -1
 * (printed). */
static int seal_all(struct kvs *m, const unsigned char *key, const char *place) {
  for (size_t i = 0; i < m->n; i++) {
    if (!rq_tenant_field_is_secret(m->f[i]) || relayq_secret_is_sealed(m->v[i])) continue;
    char *sealed = NULL;
    struct relayq_error e;
    if (key == NULL || relayq_secret_seal_for(key, place, m->f[i], m->v[i], &sealed, &e) != 0)
      return cli_fail(-1, "cannot seal %s: %s", m->f[i], key ? e.message : "RELAYQ_SECRET_KEY is not set.");
    kvs_set(m, m->f[i], sealed);
    free(sealed);
  }
  return 0;
}

/* 1 when any argument changes how mail leaves (or it is a route). */
static int touches_connection(const struct topts *o, const struct pair *pairs, int n) {
  int changed = o->route != NULL;
  for (int i = 0; i < n; i++) changed |= tenant_connection_field(pairs[i].field);
  return changed;
}

static void print_saved(const struct topts *o, const char *key, const struct kvs *m, int json_open) {
  if (o->json) {
    fputs(json_open ? ",\"saved\":" : "{\"verify\":null,\"saved\":", stdout);
    tenant_json_fields(m);
    fputs("}\n", stdout);
    return;
  }
  if (o->route) printf("Saved route %s of tenant %s (%s):\n", o->route, o->tenant, key);
  else printf("Saved tenant %s (%s):\n", o->tenant, key);
  tenant_print_fields(m, "  ");
  if (m->n == 0)
    printf("  (no fields left: the hash is gone%s)\n",
           o->route ? "" : "; the tenant sends through the platform gateway with defaults");
}

/* `set`: validate the arguments, read and merge under WATCH, settle the
 * merged hash, verify, seal, write in one MULTI. */
int cmd_tenant_set(struct topts *o, struct cli_ctx *ctx) {
  char *rotated = NULL;
  struct pair pairs[MAX_PAIRS + 1];
  unsigned char keybuf[RELAYQ_SECRET_KEY_LEN];
  const unsigned char *key = NULL;
  char *stdin_value = NULL, *routes_new = NULL;
  struct kvs old = {0}, merged = {0}, route_old = {0};
  char tkey[512], rkey[700];
  int rc = CLI_USAGE, json_open = 0;

  int have = tenant_secret_key(keybuf);
  if (have < 0) goto out;
  if (have) key = keybuf;
  if (o->stdin_field != NULL && (stdin_value = tenant_read_stdin_value()) == NULL) goto out;
  int n = tenant_collect_pairs(o, key, stdin_value, pairs);
  if (n < 0) goto out;
  if (n == 0) {
    cli_fail(CLI_USAGE, "nothing to set: give FIELD=VALUE pairs (see 'relayq tenant --help').");
    goto out;
  }
  /* Sealing needs the key; say so before touching anything. */
  for (int i = 0; i < n; i++)
    if (rq_tenant_field_is_secret(pairs[i].field) && pairs[i].value[0] && !relayq_secret_is_sealed(pairs[i].value) &&
        key == NULL) {
      cli_fail(CLI_USAGE, "RELAYQ_SECRET_KEY is not set: `relayq tenant set` stores %s sealed (enc:v2:); set it to "
                          "the base64 32-byte key the workers use.",
               pairs[i].field);
      goto out;
    }

  rc = CLI_FAIL;
  struct relayq_client *c = cli_client(ctx);
  if (c == NULL) goto out;
  tenant_key(c, o->tenant, tkey, sizeof tkey);
  if (o->route != NULL) route_key(c, o->tenant, o->route, rkey, sizeof rkey);
  const char *target_key = o->route ? rkey : tkey;
  /* Optimistic lock: EXEC fails if either hash changes before we write. */
  const char *watch[] = {"WATCH", tkey, o->route ? rkey : NULL};
  if (tenant_redis_ok(c, o->route ? 3 : 2, watch) != 0) goto out;
  if (tenant_hgetall(c, tkey, &old) != 0) goto out;
  if (o->route != NULL && tenant_hgetall(c, rkey, &route_old) != 0) goto out;

  const struct kvs *base = o->route ? &route_old : &old;
  for (size_t i = 0; i < base->n; i++) kvs_set(&merged, base->f[i], base->v[i]);
  tenant_forget_derived(&merged, pairs, n);
  if (o->route == NULL && tenant_forget_verified(&merged, pairs, n) && !o->json)
    printf("domain_verified cleared: it vouched for the old domain; 'relayq tenant verify-domain %s DOMAIN' "
           "verifies the new one.\n",
           o->tenant);
  for (int i = 0; i < n; i++) kvs_set(&merged, pairs[i].field, pairs[i].value);
  if (o->route != NULL) {
    routes_new = tenant_routes_with(kvs_get(&old, "routes"), o->route, 1);
    rc = settle_route(o, &merged, routes_new);
  } else {
    rc = settle_tenant(o, &merged);
  }
  if (rc != CLI_OK) goto out;
  /* What a worker in this mode would refuse is never saved, verified or not. */
  if ((rc = saas_refusal(o, &merged, key)) != CLI_OK) goto out;

  if (o->no_verify) {
    if (!o->json) printf("Not verified (--no-verify).\n");
  } else if (!touches_connection(o, pairs, n)) {
    if (!o->json)
      printf("Connection settings unchanged: not verified again (relayq tenant verify %s checks them).\n",
             o->tenant);
  } else if (ctx->net == NULL) {
    rc = cli_fail(CLI_USAGE, "not saved: this build cannot verify a connection; pass --no-verify to save without "
                             "checking.");
    goto out;
  } else if ((rc = ctx->net->tenant_set_verify(o, &merged, key, o->route ? kvs_get(&old, "from_email") : NULL,
                                               &json_open, &rotated)) != CLI_OK) {
    goto out;
  }
  if (rotated) {
    /* The provider rotated the refresh token during the check: the new
     * one is what gets saved (the old one may be dead already). */
    kvs_set(&merged, "oauth_refresh_token", rotated);
    OPENSSL_cleanse(rotated, strlen(rotated));
    free(rotated);
    rotated = NULL;
  }

  rc = CLI_FAIL;
  char place[720];
  if (o->route) relayq__key_place(place, sizeof place, RELAYQ__KEY_ROUTE, o->tenant, o->route);
  else relayq__key_place(place, sizeof place, RELAYQ_KEY_TENANT, o->tenant, NULL);
  if (seal_all(&merged, key, place) != 0) goto out;
  int w = o->route ? write_hash(c, rkey, &route_old, &merged, tkey, "routes", routes_new)
                   : write_hash(c, tkey, &old, &merged, NULL, NULL, NULL);
  if (w < 0) goto out;
  if (w == 1) {
    cli_fail(CLI_FAIL, "not saved: %s changed while this command ran; run it again.", target_key);
    goto out;
  }
  print_saved(o, target_key, &merged, json_open);
  json_open = 0;
  const char *tv = kvs_get(&merged, "smtp_tls_verify");
  if (!o->json && tv && strcmp(tv, "0") == 0 && !kvs_get(&merged, "smtp_tls_pin"))
    printf("Note: smtp_tls_verify=0 accepts any certificate, so whoever sits between the workers and %s gets the "
           "password. `relayq tenant trust %s%s%s` pins the server's own key instead: the safer choice.\n",
           kvs_get(&merged, "smtp_host") ? kvs_get(&merged, "smtp_host") : "the server", o->tenant,
           o->route ? " --route " : "", o->route ? o->route : "");
  rc = CLI_OK;
out:
  if (rotated) {
    OPENSSL_cleanse(rotated, strlen(rotated));
    free(rotated);
  }
  if (json_open) fputs(",\"saved\":null}\n", stdout);
  if (stdin_value) {
    OPENSSL_cleanse(stdin_value, strlen(stdin_value));
    free(stdin_value);
  }
  free(routes_new);
  kvs_free(&old);
  kvs_free(&route_old);
  kvs_free(&merged);
  OPENSSL_cleanse(keybuf, sizeof keybuf);
  if (ctx->client) {
    /* EXEC already dropped the WATCH; after an early exit, drop it here. */
    const char *unwatch[] = {"UNWATCH"};
    redisReply *r = redisCommandArgv(relayq_client_redis(ctx->client), 1, unwatch, NULL);
    if (r) freeReplyObject(r);
  }
  return rc;
}

