/* tenant_common: what the tenant subcommands share: field/value lists,
 * Redis I/O, the secret key and environment, display, the stored tenant
 * (see tenant_cmd.h). */
#include <stdio.h>
#include <sys/types.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/hiredis.h>
#include <openssl/crypto.h>

#include "cli.h"
#include "keys.h"
#include "tenant.h"
#include "tenant_cmd.h"
#include "util.h"

/* ---- field/value lists ----------------------------------------------------------- */


void kvs_free(struct kvs *k) {
  for (size_t i = 0; i < k->n; i++) {
    free(k->f[i]);
    if (k->v[i]) OPENSSL_cleanse(k->v[i], strlen(k->v[i]));
    free(k->v[i]);
  }
  free(k->f);
  free(k->v);
  memset(k, 0, sizeof *k);
}

ssize_t kvs_find(const struct kvs *k, const char *field) {
  for (size_t i = 0; i < k->n; i++)
    if (strcmp(k->f[i], field) == 0) return (ssize_t)i;
  return -1;
}

const char *kvs_get(const struct kvs *k, const char *field) {
  ssize_t i = kvs_find(k, field);
  return i < 0 ? NULL : k->v[i];
}

void kvs_del(struct kvs *k, const char *field) {
  ssize_t i = kvs_find(k, field);
  if (i < 0) return;
  free(k->f[i]);
  OPENSSL_cleanse(k->v[i], strlen(k->v[i]));
  free(k->v[i]);
  k->n--;
  k->f[i] = k->f[k->n];
  k->v[i] = k->v[k->n];
}

/* Sets field to value (copied); an empty value deletes the field. */
void kvs_set(struct kvs *k, const char *field, const char *value) {
  if (value == NULL || value[0] == '\0') {
    kvs_del(k, field);
    return;
  }
  ssize_t i = kvs_find(k, field);
  if (i >= 0) {
    OPENSSL_cleanse(k->v[i], strlen(k->v[i]));
    free(k->v[i]);
    k->v[i] = rq_xstrdup(value);
    return;
  }
  if (k->n == k->cap) {
    k->cap = k->cap ? k->cap * 2 : 16;
    k->f = rq_xrealloc(k->f, k->cap * sizeof *k->f);
    k->v = rq_xrealloc(k->v, k->cap * sizeof *k->v);
  }
  k->f[k->n] = rq_xstrdup(field);
  k->v[k->n] = rq_xstrdup(value);
  k->n++;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Indices of k's fields in name order, for printing. Caller frees. */
static size_t *kvs_order(const struct kvs *k) {
  size_t *idx = rq_xcalloc(k->n ? k->n : 1, sizeof *idx);
  char **names = rq_xcalloc(k->n ? k->n : 1, sizeof *names);
  for (size_t i = 0; i < k->n; i++) names[i] = k->f[i];
  qsort(names, k->n, sizeof *names, by_name);
  for (size_t i = 0; i < k->n; i++) idx[i] = (size_t)kvs_find(k, names[i]);
  free(names);
  return idx;
}

/* ---- Redis ---------------------------------------------------------------------------- */

void tenant_key(struct relayq_client *c, const char *tenant, char *out, size_t cap) {
  relayq_key(out, cap, relayq_client_prefix(c), RELAYQ_KEY_TENANT, tenant);
}

void route_key(struct relayq_client *c, const char *tenant, const char *route, char *out, size_t cap) {
  relayq__key(out, cap, relayq_client_prefix(c), RELAYQ__KEY_ROUTE, tenant, route);
}

redisReply *tenant_redis_rc(redisContext *rc, int argc, const char **argv) {
  redisReply *r = redisCommandArgv(rc, argc, argv, NULL); /* NULL: lengths by strlen */
  if (r == NULL) {
    cli_fail(CLI_FAIL, "Redis failed: %s.", rc->errstr[0] ? rc->errstr : "connection lost");
    return NULL;
  }
  if (r->type == REDIS_REPLY_ERROR) {
    cli_fail(CLI_FAIL, "Redis refused %s: %s.", argv[0], r->str);
    freeReplyObject(r);
    return NULL;
  }
  return r;
}

redisReply *tenant_redis(struct relayq_client *c, int argc, const char **argv) {
  return tenant_redis_rc(relayq_client_redis(c), argc, argv);
}

int tenant_scan_keys(redisContext *rc, const char *pattern, char ***keys, size_t *n) {
  char cursor[32] = "0";
  for (int round = 0; round < SCAN_ROUNDS; round++) {
    const char *scan[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "500"};
    redisReply *r = tenant_redis_rc(rc, 6, scan);
    if (r == NULL) return -1;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_ARRAY) {
      freeReplyObject(r);
      return cli_fail(-1, "Redis answered SCAN unexpectedly.");
    }
    for (size_t i = 0; i < r->element[1]->elements; i++) {
      redisReply *k = r->element[1]->element[i];
      if (k->type != REDIS_REPLY_STRING) continue;
      *keys = rq_xrealloc(*keys, (*n + 1) * sizeof **keys);
      (*keys)[(*n)++] = rq_xstrdup(k->str);
    }
    snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
    freeReplyObject(r);
    if (strcmp(cursor, "0") == 0) return 0;
  }
  return cli_fail(-1, "too many keys match %s; nothing was changed.", pattern);
}

int tenant_redis_ok(struct relayq_client *c, int argc, const char **argv) {
  redisReply *r = tenant_redis(c, argc, argv);
  if (r == NULL) return -1;
  freeReplyObject(r);
  return 0;
}

/* HGETALL key into out (fields whose value holds a NUL byte are kept cut
 * at it; the parser then judges the rest). Returns 0 or -1. */
int tenant_hgetall(struct relayq_client *c, const char *key, struct kvs *out) {
  const char *argv[] = {"HGETALL", key};
  memset(out, 0, sizeof *out);
  redisReply *r = tenant_redis(c, 2, argv);
  if (r == NULL) return -1;
  if (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0) {
    freeReplyObject(r);
    return cli_fail(-1, "%s is not a hash: remove it or use another tenant id.", key);
  }
  for (size_t i = 0; i + 1 < r->elements; i += 2) {
    redisReply *f = r->element[i], *v = r->element[i + 1];
    if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || f->str[0] == '\0') continue;
    kvs_set(out, f->str, v->str);
  }
  freeReplyObject(r);
  return 0;
}

/* ---- secrets and the environment --------------------------------------------------------- */

/* RELAYQ_SECRET_KEY: 1 and key filled, 0 when unset, -1 (printed) when
 * it does not parse. */
int tenant_secret_key(unsigned char key[RELAYQ_SECRET_KEY_LEN]) {
  const char *b64 = getenv("RELAYQ_SECRET_KEY");
  if (b64 == NULL || b64[0] == '\0') return 0;
  struct relayq_error err;
  if (relayq_secret_key_parse(b64, key, &err) != 0)
    return cli_fail(-1, "RELAYQ_SECRET_KEY: %s", err.message);
  return 1;
}

static int tenant_env_flag(const char *name) {
  const char *v = getenv(name);
  return v != NULL && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0);
}

/* A field whose value decides how mail leaves: changing it calls for a
 * fresh verification. */
int tenant_connection_field(const char *f) {
  return strcmp(f, "gateway") == 0 || strncmp(f, "smtp_", 5) == 0 || strncmp(f, "mailgun_", 8) == 0 ||
         strncmp(f, "oauth_", 6) == 0;
}

/* ---- display ---------------------------------------------------------------------------- */

/* What is shown of a secret: whether it is sealed, never its value. */
const char *tenant_masked(const char *value) {
  if (relayq_secret_is_v2(value)) return "enc:v2:\xe2\x80\xa6(sealed)";
  return relayq_secret_is_sealed(value) ? "enc:v1:\xe2\x80\xa6(sealed)" : "****(plaintext)";
}

/* Text for one value: secrets tenant_masked, line breaks shown as \n, long
 * values cut (on a UTF-8 boundary). Writes into buf. */
static const char *tenant_show_value(const char *field, const char *value, char *buf, size_t cap) {
  if (rq_tenant_field_is_secret(field)) {
    snprintf(buf, cap, "%s", tenant_masked(value));
    return buf;
  }
  size_t o = 0, n = strlen(value);
  for (size_t i = 0; i < n && o + 8 < cap; i++) {
    if (i >= SHOW_MAX && ((unsigned char)value[i] & 0xc0) != 0x80) {
      memcpy(buf + o, "\xe2\x80\xa6", 3);
      o += 3;
      break;
    }
    unsigned char ch = (unsigned char)value[i];
    if (ch == '\n') buf[o++] = '\\', buf[o++] = 'n';
    else if (ch == '\r') buf[o++] = '\\', buf[o++] = 'r';
    else if (ch < 0x20 || ch == 0x7f) buf[o++] = '?';
    else buf[o++] = (char)ch;
  }
  buf[o] = '\0';
  return buf;
}

void tenant_print_fields(const struct kvs *k, const char *indent) {
  char buf[SHOW_MAX * 4 + 16];
  size_t *idx = kvs_order(k);
  for (size_t j = 0; j < k->n; j++) {
    size_t i = idx[j];
    printf("%s%-22s %s\n", indent, k->f[i], tenant_show_value(k->f[i], k->v[i], buf, sizeof buf));
  }
  free(idx);
}

void tenant_json_fields(const struct kvs *k) {
  size_t *idx = kvs_order(k);
  putchar('{');
  for (size_t j = 0; j < k->n; j++) {
    size_t i = idx[j];
    if (j) putchar(',');
    cli_json_string(stdout, k->f[i]);
    putchar(':');
    cli_json_string(stdout, rq_tenant_field_is_secret(k->f[i]) ? tenant_masked(k->v[i]) : k->v[i]);
  }
  putchar('}');
  free(idx);
}

/* ---- loading a stored tenant (get, verify, test, del) ------------------------------------------------ */


void tenant_stored_free(struct stored *s) {
  kvs_free(&s->hash);
  for (size_t i = 0; i < s->n_routes; i++) {
    free(s->route_names[i]);
    kvs_free(&s->routes[i]);
  }
  free(s->route_names);
  free(s->routes);
  memset(s, 0, sizeof *s);
}

int tenant_load_stored(struct relayq_client *c, const char *tenant, struct stored *s) {
  char key[512], rkey[700];
  memset(s, 0, sizeof *s);
  tenant_key(c, tenant, key, sizeof key);
  if (tenant_hgetall(c, key, &s->hash) != 0) return -1;
  char *list = tenant_routes_with(kvs_get(&s->hash, "routes"), "", 0);
  /* routes_with normalised the list; split it. */
  for (char *p = list, *e; p && *p; p = e ? e + 1 : NULL) {
    e = strchr(p, ',');
    if (e) *e = '\0';
    if (!*p || !relayq_valid_tenant(p) || s->n_routes == RQ_TENANT_MAX_ROUTES) continue;
    s->route_names = rq_xrealloc(s->route_names, (s->n_routes + 1) * sizeof *s->route_names);
    s->routes = rq_xrealloc(s->routes, (s->n_routes + 1) * sizeof *s->routes);
    s->route_names[s->n_routes] = rq_xstrdup(p);
    route_key(c, tenant, p, rkey, sizeof rkey);
    if (tenant_hgetall(c, rkey, &s->routes[s->n_routes]) != 0) {
      free(s->route_names[s->n_routes]);
      free(list);
      return -1;
    }
    s->n_routes++;
  }
  free(list);
  return 0;
}

/* Parses what is stored the way the worker does (unknown fields ignored,
 * RELAYQ_REQUIRE_ENCRYPTED honoured), routes included. *t is NULL when
 * the tenant has no hash. Returns 0, or -1 with err. */
int tenant_parse_stored(const char *tenant, const struct stored *s, const unsigned char *key, struct rq_tenant **t,
                        char *err, size_t errlen) {
  *t = NULL;
  if (s->hash.n == 0) return 0;
  int req = tenant_env_flag("RELAYQ_REQUIRE_ENCRYPTED");
  if (rq_tenant_parse(tenant, (const char *const *)s->hash.f, (const char *const *)s->hash.v, s->hash.n, key, req, 0,
                      t, err, errlen) != 0)
    return -1;
  for (size_t i = 0; i < s->n_routes; i++) {
    char e[400];
    if (s->routes[i].n == 0) continue; /* the worker reports a missing route when a job names it */
    if (rq_tenant_parse_route(*t, s->route_names[i], (const char *const *)s->routes[i].f,
                              (const char *const *)s->routes[i].v, s->routes[i].n, key, req, e, sizeof e) != 0) {
      snprintf(err, errlen, "route %s: %s", s->route_names[i], e);
      rq_tenant_free(*t);
      *t = NULL;
      return -1;
    }
  }
  return 0;
}

int tenant_not_found(const char *tenant) {
  return cli_fail(CLI_FAIL, "tenant '%s' has no settings: it sends through the platform gateway with the worker's "
                            "defaults.",
                  tenant);
}

/* `routes` with name added (or removed when add is 0); "" when empty.
 * Caller frees. */
char *tenant_routes_with(const char *routes, const char *name, int add) {
  struct rq_buf b;
  rq_buf_init(&b);
  const char *p = routes ? routes : "";
  int present = 0;
  while (*p) {
    while (*p == ' ' || *p == ',') p++;
    const char *e = p;
    while (*e && *e != ',') e++;
    const char *end = e;
    while (end > p && end[-1] == ' ') end--;
    size_t len = (size_t)(end - p);
    if (len > 0) {
      int same = len == strlen(name) && strncmp(p, name, len) == 0;
      present |= same;
      if (!(same && !add)) {
        if (b.len) rq_buf_putc(&b, ',');
        rq_buf_append(&b, p, len);
      }
    }
    p = e;
  }
  if (add && !present) {
    if (b.len) rq_buf_putc(&b, ',');
    rq_buf_puts(&b, name);
  }
  if (b.data == NULL) rq_buf_puts(&b, "");
  return rq_buf_steal(&b, NULL);
}

/* Writes a refresh token the provider rotated during `tenant verify` back
 * into the hash at once, sealed for its place like `tenant set` would. */
int tenant_save_rotated(struct relayq_client *c, const struct topts *o, const unsigned char *key,
                        const char *rotated) {
  char hkey[800], place[720];
  if (o->route) {
    route_key(c, o->tenant, o->route, hkey, sizeof hkey);
    relayq__key_place(place, sizeof place, RELAYQ__KEY_ROUTE, o->tenant, o->route);
  } else {
    tenant_key(c, o->tenant, hkey, sizeof hkey);
    relayq__key_place(place, sizeof place, RELAYQ_KEY_TENANT, o->tenant, NULL);
  }
  char *sealed = NULL;
  struct relayq_error e;
  if (key && relayq_secret_seal_for(key, place, "oauth_refresh_token", rotated, &sealed, &e) != 0) {
    cli_fail(CLI_FAIL, "could not seal the rotated refresh token: %s", e.message);
    return -1;
  }
  const char *argv[] = {"HSET", hkey, "oauth_refresh_token", sealed ? sealed : rotated};
  int rc = tenant_redis_ok(c, 4, argv);
  if (sealed) {
    OPENSSL_cleanse(sealed, strlen(sealed));
    free(sealed);
  }
  if (rc == 0 && !o->json) printf("The provider rotated the refresh token: the new one is saved (sealed).\n");
  return rc;
}
