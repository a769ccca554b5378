/*
 * cmd_tenant_reseal: `relayq tenant reseal (TENANT | --all)` (CONTRACT.md
 * v1.1): rewrites every enc:v1: and plaintext secret field of a tenant
 * hash and of its route hashes as enc:v2:, bound to that hash and field.
 *
 *   - Hashes: P:tenant:T and every P:tenant:T:route:R (SCAN, so a route
 *     `routes` no longer names is covered too); --all: every P:tenant:*
 *     key that is a tenant or route hash by the v1.1 names (no ':' in T or
 *     R); other keys (a legacy tenant id with ':') are reported, not read.
 *   - Fields: the tenant model's secret fields plus the OAuth secrets
 *     (oauth_client_secret, oauth_refresh_token), whichever build wrote
 *     them.
 *   - An enc:v2: value that does not open for its hash is left as it is
 *     and reported (it was sealed for another place): exit 1.
 *   - Each hash is rewritten with HSET in MULTI under WATCH, so a value
 *     someone changed meanwhile is never overwritten with an old one.
 *
 * Exit: 0 done (also when nothing needed resealing), 1 a value could not
 * be opened or Redis failed, 2 bad arguments or no RELAYQ_SECRET_KEY.
 * Plaintext exists only in a wiped buffer between opening and sealing;
 * output names keys and fields, never values.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <openssl/crypto.h>

#include "cli.h"
#include "keys.h"
#include "text.h"
#include "tenant.h"
#include "tenant_cmd.h"
#include "util.h"

#define MAX_FIELDS 512    /* fields read from one hash */

enum { O_ALL = CLI_OPT_FIRST_FREE };

static const struct option reseal_opts[] = {
    CLI_GLOBAL_LONGOPTS,
    {"all", no_argument, NULL, O_ALL},
    {NULL, 0, NULL, 0},
};

static int secret_field(const char *f) {
  return rq_tenant_field_is_secret(f) || strcmp(f, "oauth_client_secret") == 0 ||
         strcmp(f, "oauth_refresh_token") == 0;
}

/* Counts for the summary line. */
struct tally {
  size_t hashes, resealed, already, bad;
  int failed; /* Redis */
};

/* The place of a key under P:tenant: ("tenant:T" or "tenant:T:route:R"),
 * or 0 when rest (the part after "P:tenant:") is neither by v1.1 names. */
static int place_of(const char *rest, char *place, size_t cap) {
  const char *r = strstr(rest, ":route:");
  if (r == NULL) {
    if (!relayq_valid_tenant(rest)) return 0;
  } else {
    if (!relayq__valid_tenant_name(rest, (size_t)(r - rest)) || !relayq_valid_tenant(r + 7)) return 0;
  }
  snprintf(place, cap, "tenant:%s", rest);
  return 1;
}

/* The new enc:v2: value of one field, or NULL when it stays (already v2
 * for this place, empty) or cannot be opened (counted, printed). */
static char *reseal_value(const unsigned char *key, const char *place, const char *field, const char *v,
                          struct tally *t) {
  char *plain = NULL, *sealed = NULL;
  struct relayq_error e;
  if (v[0] == '\0') return NULL;
  if (relayq_secret_is_sealed(v)) {
    if (relayq_secret_open_for(key, place, field, v, &plain, &e) != 0) {
      t->bad++;
      cli_fail(CLI_FAIL, "%s %s: %s", place, field, e.message);
      return NULL;
    }
    if (relayq_secret_is_v2(v)) {
      t->already++;
      OPENSSL_cleanse(plain, strlen(plain));
      free(plain);
      return NULL;
    }
  } else if (strncmp(v, "enc:", 4) == 0) {
    t->bad++;
    cli_fail(CLI_FAIL, "%s %s: sealed in a format this build does not read; left as it is.", place, field);
    return NULL;
  } else {
    plain = rq_xstrdup(v);
  }
  if (relayq_secret_seal_for(key, place, field, plain, &sealed, &e) != 0) {
    t->bad++;
    cli_fail(CLI_FAIL, "%s %s: %s", place, field, e.message);
    sealed = NULL;
  }
  OPENSSL_cleanse(plain, strlen(plain));
  free(plain);
  return sealed;
}

/* Reseals one hash. */
static void reseal_hash(redisContext *rc, const unsigned char *key, const char *hkey, const char *place,
                        struct tally *t) {
  const char *watch[] = {"WATCH", hkey}, *getall[] = {"HGETALL", hkey};
  redisReply *w = tenant_redis_rc(rc, 2, watch);
  if (w == NULL) goto fail;
  freeReplyObject(w);
  redisReply *r = tenant_redis_rc(rc, 2, getall);
  if (r == NULL) goto fail;
  if (r->type != REDIS_REPLY_ARRAY || r->elements > 2 * MAX_FIELDS) {
    freeReplyObject(r);
    cli_fail(CLI_FAIL, "%s is not a tenant hash; skipped.", hkey);
    goto fail;
  }
  if (r->elements > 0) t->hashes++;
  const char **argv = rq_xcalloc(2 + r->elements, sizeof *argv);
  char **owned = rq_xcalloc(r->elements / 2 + 1, sizeof *owned);
  size_t argc = 2, n_owned = 0;
  argv[0] = "HSET";
  argv[1] = hkey;
  for (size_t i = 0; i + 1 < r->elements; i += 2) {
    redisReply *f = r->element[i], *v = r->element[i + 1];
    if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || !secret_field(f->str)) continue;
    char *nv = reseal_value(key, place, f->str, v->str, t);
    if (nv == NULL) continue;
    owned[n_owned++] = nv;
    argv[argc++] = f->str;
    argv[argc++] = nv;
    printf("%s %s: %s -> enc:v2\n", place, f->str, relayq_secret_is_sealed(v->str) ? "enc:v1" : "plaintext");
  }
  if (argc > 2) {
    const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    redisReply *m = tenant_redis_rc(rc, 1, multi), *h = m ? tenant_redis_rc(rc, (int)argc, argv) : NULL, *x = h ? tenant_redis_rc(rc, 1, exec) : NULL;
    if (x != NULL && x->type == REDIS_REPLY_NIL) {
      cli_fail(CLI_FAIL, "%s changed while resealing; nothing written there: run the command again.", hkey);
      t->failed = 1;
    } else if (x != NULL) {
      t->resealed += (argc - 2) / 2;
    } else {
      t->failed = 1;
    }
    if (m) freeReplyObject(m);
    if (h) freeReplyObject(h);
    if (x) freeReplyObject(x);
  }
  for (size_t i = 0; i < n_owned; i++) {
    OPENSSL_cleanse(owned[i], strlen(owned[i]));
    free(owned[i]);
  }
  free(owned);
  free(argv);
  freeReplyObject(r);
  const char *unwatch[] = {"UNWATCH"};
  redisReply *u = redisCommandArgv(rc, 1, unwatch, NULL);
  if (u) freeReplyObject(u);
  return;
fail:
  t->failed = 1;
}

int cmd_tenant_reseal(int argc, char **argv, struct cli_ctx *ctx) {
  int all = 0, opt;
  optind = 0;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, ":h", reseal_opts, NULL)) != -1) {
    if (cli_global_opt(opt, optarg, ctx)) continue;
    if (opt == 'h') {
      printf("usage: relayq tenant reseal (TENANT | --all)\n"
             "  rewrites enc:v1: and plaintext secret fields of the tenant and its routes as enc:v2:\n"
             "  (bound to their hash and field); needs RELAYQ_SECRET_KEY. docs/tenants.md.\n");
      return CLI_OK;
    }
    if (opt == O_ALL) all = 1;
    else return cli_bad_option("tenant reseal", opt, argv);
  }
  const char *tenant = optind < argc ? argv[optind] : NULL;
  if ((tenant == NULL) == !all || optind + (tenant != NULL) < argc)
    return cli_fail(CLI_USAGE, "usage: relayq tenant reseal (TENANT | --all).");
  if (tenant != NULL && !relayq_valid_tenant(tenant))
    return cli_fail(CLI_USAGE, "the tenant id must be 1-128 characters of A-Z a-z 0-9 . _ @ - (no ':').");
  const char *b64 = getenv("RELAYQ_SECRET_KEY");
  unsigned char key[RELAYQ_SECRET_KEY_LEN];
  struct relayq_error e;
  if (b64 == NULL || b64[0] == '\0')
    return cli_fail(CLI_USAGE, "RELAYQ_SECRET_KEY is not set: resealing needs the key the workers use.");
  if (relayq_secret_key_parse(b64, key, &e) != 0) return cli_fail(CLI_USAGE, "RELAYQ_SECRET_KEY: %s", e.message);
  if (strlen(ctx->prefix) > 200) return cli_fail(CLI_USAGE, "--prefix is longer than 200 characters.");

  struct relayq_client *c = cli_client(ctx);
  if (c == NULL) return CLI_FAIL;
  redisContext *rc = relayq_client_redis(c);
  char base[300], pattern[700];
  relayq_key(base, sizeof base, ctx->prefix, RELAYQ_KEY_TENANT, ""); /* "P:tenant:" */
  char **keys = NULL;
  size_t n = 0;
  struct tally t = {0};
  if (all) {
    snprintf(pattern, sizeof pattern, "%s*", base);
  } else {
    keys = rq_xcalloc(1, sizeof *keys);
    relayq_key(pattern, sizeof pattern, ctx->prefix, RELAYQ_KEY_TENANT, tenant);
    keys[n++] = rq_xstrdup(pattern);
    relayq__key(pattern, sizeof pattern, ctx->prefix, RELAYQ__KEY_ROUTE, tenant, "*");
  }
  if (tenant_scan_keys(rc, pattern, &keys, &n) != 0) t.failed = 1;
  for (size_t i = 0; i < n && !t.failed; i++) {
    char place[700];
    if (strncmp(keys[i], base, strlen(base)) != 0 || !place_of(keys[i] + strlen(base), place, sizeof place)) {
      printf("%s: not a tenant or route hash by its name (a ':' in a tenant or route name); skipped.\n", keys[i]);
      continue;
    }
    reseal_hash(rc, key, keys[i], place, &t);
  }
  for (size_t i = 0; i < n; i++) free(keys[i]);
  free(keys);
  OPENSSL_cleanse(key, sizeof key);
  printf("Resealed %zu value%s in %zu hash%s (%zu already enc:v2, %zu could not be opened).\n", t.resealed,
         t.resealed == 1 ? "" : "s", t.hashes, t.hashes == 1 ? "" : "es", t.already, t.bad);
  if (t.failed || t.bad) return CLI_FAIL;
  return CLI_OK;
}
