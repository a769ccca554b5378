/*
 * tenant_cmd: what the `relayq tenant` subcommands share (cmd_tenant*.c,
 * tenant_common.c, tenant_validate.c): the parsed options, field/value
 * lists, the stored tenant, and the helpers each file offers the others.
 * Private to the CLI.
 */
#ifndef RELAYQ_TENANT_CMD_H
#define RELAYQ_TENANT_CMD_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include <relayq/relayq.h>

#include "address.h"
#include "cli.h"
#include "netpolicy.h"
#include "tenant.h"

#define MAX_PAIRS 64      /* FIELD=VALUE arguments in one `set` */
#define MAX_TO 16         /* --to for `test` */
#define SHOW_MAX 120      /* characters of a long value in text output */
#define STDIN_MAX 65536   /* --stdin value */
#define SCAN_ROUNDS 10000 /* bound on SCAN iterations (del, reseal) */
#define PEM_PLACEHOLDER "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n"

enum {
  O_JSON = CLI_OPT_FIRST_FREE,
  O_ROUTE,
  O_PROBE_RCPT,
  O_NO_VERIFY,
  O_CA_FILE,
  O_TIMEOUT,
  O_TO,
  O_SUBJECT,
  O_STDIN,
};

/* What one invocation asked for. Strings borrowed from argv. */
struct topts {
  const char *sub;
  const char *tenant;
  char **pos; /* arguments after TENANT */
  int npos;
  int json, no_verify;
  const char *route, *probe_rcpt, *ca_file, *subject, *stdin_field;
  const char *to[MAX_TO];
  int n_to;
  long timeout_ms;
  char rcpt_buf[RQ_ADDR_MAX + 1]; /* --probe-rcpt as a bare address */
  struct rq_netpolicy netpolicy;  /* --mode/--allow-private-nets: what the workers refuse */
};

/* A hash as field/value pairs. Owns every string. */
struct kvs {
  char **f, **v;
  size_t n, cap;
};

/* One FIELD=VALUE argument. */
struct pair {
  const char *field; /* points into argv (the '=' replaced) or static */
  const char *value; /* "" deletes */
};

/* The tenant's hash and every route hash `routes` names. */
struct stored {
  struct kvs hash;
  char **route_names;
  struct kvs *routes; /* parallel to route_names */
  size_t n_routes;
};

/* tenant_common.c */
void kvs_free(struct kvs *k);
ssize_t kvs_find(const struct kvs *k, const char *field);
const char *kvs_get(const struct kvs *k, const char *field);
void kvs_del(struct kvs *k, const char *field);
void kvs_set(struct kvs *k, const char *field, const char *value);
void tenant_key(struct relayq_client *c, const char *tenant, char *out, size_t cap);
void route_key(struct relayq_client *c, const char *tenant, const char *route, char *out, size_t cap);
/* Redis is the core's: hiredis's types by their struct names, so the
 * CLI's net part (producer/cli/net) shares these helpers without seeing
 * hiredis itself (cmake/forbid.cmake). */
struct redisContext;
struct redisReply;
struct redisReply *tenant_redis(struct relayq_client *c, int argc, const char **argv);
/* The same on a bare connection (any number of words). */
struct redisReply *tenant_redis_rc(struct redisContext *rc, int argc, const char **argv);
/* Every key matching pattern (SCAN, bounded by SCAN_ROUNDS), appended to
 * *keys (caller frees each and the array); *n grows. 0, or -1 (printed). */
int tenant_scan_keys(struct redisContext *rc, const char *pattern, char ***keys, size_t *n);
int tenant_redis_ok(struct relayq_client *c, int argc, const char **argv);
int tenant_hgetall(struct relayq_client *c, const char *key, struct kvs *out);
int tenant_secret_key(unsigned char key[RELAYQ_SECRET_KEY_LEN]);
int tenant_connection_field(const char *f);
const char *tenant_masked(const char *value);
void tenant_print_fields(const struct kvs *k, const char *indent);
void tenant_json_fields(const struct kvs *k);
void tenant_stored_free(struct stored *s);
int tenant_load_stored(struct relayq_client *c, const char *tenant, struct stored *s);
int tenant_parse_stored(const char *tenant, const struct stored *s, const unsigned char *key, struct rq_tenant **t, char *err, size_t errlen);
int tenant_not_found(const char *tenant);
char *tenant_routes_with(const char *routes, const char *name, int add);
int tenant_save_rotated(struct relayq_client *c, const struct topts *o, const unsigned char *key, const char *rotated);

/* tenant_validate.c */
int tenant_parse_shape(const char *tenant, const struct kvs *k, int strict, struct rq_tenant **out, char *err, size_t errlen);
char *tenant_read_stdin_value(void);
int tenant_collect_pairs(const struct topts *o, const unsigned char *key, const char *stdin_value, struct pair *pairs);
void tenant_forget_derived(struct kvs *m, const struct pair *pairs, int n);
int tenant_forget_verified(struct kvs *m, const struct pair *pairs, int n);
void tenant_canonical_smtp(struct kvs *m, const struct rq_smtp_conf *conf);
void tenant_canonical_tenant(struct kvs *m, const struct rq_tenant *t);
int tenant_route_index(const struct rq_tenant *t, const char *name);

/* cmd_tenant_set.c */
int cmd_tenant_set(struct topts *o, struct cli_ctx *ctx);

/* cmd_tenant_get.c */
int cmd_tenant_get(struct topts *o, struct cli_ctx *ctx);

/* cmd_tenant_del.c */
int cmd_tenant_del(struct topts *o, struct cli_ctx *ctx);

#endif
