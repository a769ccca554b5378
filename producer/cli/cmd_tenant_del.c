/* cmd_tenant_del: `relayq tenant del TENANT [--route NAME]`: the tenant
 * and every route hash (found with SCAN), or one route, under WATCH. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "cli.h"
#include "tenant_cmd.h"
#include "util.h"

/* ---- del --------------------------------------------------------------------------------------------------- */

/* EXEC of a MULTI opened under WATCH: 0 done, 1 the WATCH fired, -1
 * failed (printed). */
static int tenant_exec_watched(struct relayq_client *c) {
  const char *exec[] = {"EXEC"};
  redisReply *r = tenant_redis(c, 1, exec);
  if (r == NULL) return -1;
  int raced = r->type == REDIS_REPLY_NIL;
  freeReplyObject(r);
  return raced;
}

/* `del --route NAME`: the route hash and its name in `routes`, under the
 * WATCH the caller took on the tenant hash (read into hash). */
static int del_route(const struct topts *o, struct relayq_client *c, const char *key, const struct kvs *hash) {
  char rkey[700];
  route_key(c, o->tenant, o->route, rkey, sizeof rkey);
  const char *old_list = kvs_get(hash, "routes");
  char *list = tenant_routes_with(old_list, o->route, 0);
  int rc = CLI_FAIL;
  const char *exists[] = {"EXISTS", rkey};
  redisReply *r = tenant_redis(c, 2, exists);
  if (r == NULL) goto out;
  int had = r->type == REDIS_REPLY_INTEGER && r->integer > 0;
  freeReplyObject(r);
  if (!had && (old_list == NULL || strcmp(list, old_list) == 0)) {
    cli_fail(CLI_FAIL, "tenant '%s' has no route '%s'; nothing deleted.", o->tenant, o->route);
    goto out;
  }
  const char *multi[] = {"MULTI"}, *del[] = {"DEL", rkey};
  const char *set[] = {"HSET", key, "routes", list}, *hdel[] = {"HDEL", key, "routes"};
  if (tenant_redis_ok(c, 1, multi) != 0 || tenant_redis_ok(c, 2, del) != 0) goto out;
  if (old_list != NULL && (list[0] ? tenant_redis_ok(c, 4, set) : tenant_redis_ok(c, 3, hdel)) != 0) goto out;
  int x = tenant_exec_watched(c);
  if (x < 0) goto out;
  if (x > 0) {
    cli_fail(CLI_FAIL, "not deleted: tenant '%s' changed while this command ran; run it again.", o->tenant);
    goto out;
  }
  printf("Deleted route %s of tenant %s.\n", o->route, o->tenant);
  rc = CLI_OK;
out:
  free(list);
  return rc;
}

/* `del`: the tenant hash and every route hash, including ones `routes` no
 * longer names (found with SCAN; tenant ids hold no glob characters). */
static int del_tenant(const struct topts *o, struct relayq_client *c, const char *key, const struct kvs *hash) {
  char pattern[720];
  char **keys = NULL;
  size_t n_keys = 0;
  int rc = CLI_FAIL;
  route_key(c, o->tenant, "*", pattern, sizeof pattern);
  if (tenant_scan_keys(relayq_client_redis(c), pattern, &keys, &n_keys) != 0) goto out;
  /* Route names have no ':' (v1.1): a key with one after ":route:" is not
   * this tenant's route but another hash (e.g. a tenant "T:route:x" written
   * before names lost ':'), and is left alone. */
  size_t kept = 0, plen = strlen(pattern) - 1;
  for (size_t i = 0; i < n_keys; i++) {
    if (strlen(keys[i]) > plen && relayq_valid_tenant(keys[i] + plen)) keys[kept++] = keys[i];
    else free(keys[i]);
  }
  n_keys = kept;
  if (hash->n == 0 && n_keys == 0) {
    cli_fail(CLI_FAIL, "tenant '%s' has no settings; nothing deleted.", o->tenant);
    goto out;
  }
  const char *multi[] = {"MULTI"}, *del[] = {"DEL", key};
  if (tenant_redis_ok(c, 1, multi) != 0 || tenant_redis_ok(c, 2, del) != 0) goto out;
  for (size_t i = 0; i < n_keys; i++) {
    const char *d[] = {"DEL", keys[i]};
    if (tenant_redis_ok(c, 2, d) != 0) goto out;
  }
  int x = tenant_exec_watched(c);
  if (x < 0) goto out;
  if (x > 0) {
    cli_fail(CLI_FAIL, "not deleted: tenant '%s' changed while this command ran; run it again.", o->tenant);
    goto out;
  }
  printf("Deleted tenant %s (%zu route hash%s).\n", o->tenant, n_keys, n_keys == 1 ? "" : "es");
  rc = CLI_OK;
out:
  for (size_t i = 0; i < n_keys; i++) free(keys[i]);
  free(keys);
  return rc;
}

int cmd_tenant_del(struct topts *o, struct cli_ctx *ctx) {
  char key[512];
  struct kvs hash = {0};
  int rc = CLI_FAIL;
  struct relayq_client *c = cli_client(ctx);
  if (c == NULL) return CLI_FAIL;
  tenant_key(c, o->tenant, key, sizeof key);
  const char *watch[] = {"WATCH", key};
  if (tenant_redis_ok(c, 2, watch) == 0 && tenant_hgetall(c, key, &hash) == 0)
    rc = o->route ? del_route(o, c, key, &hash) : del_tenant(o, c, key, &hash);
  kvs_free(&hash);
  const char *unwatch[] = {"UNWATCH"};
  redisReply *r = redisCommandArgv(relayq_client_redis(c), 1, unwatch, NULL);
  if (r) freeReplyObject(r);
  return rc;
}

