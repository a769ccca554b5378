/*
 * cmd_tenant: `relayq tenant set|get|verify|test|del` (CONTRACT.md
 * "Tenant hash P:tenant:TENANT" and "Command-line client"; docs/tenants.md
 * documents every field, the rules and the output).
 *
 *   set TENANT FIELD=VALUE ... [--route NAME] [--no-verify] [--stdin FIELD]
 *       validates every field (one line per problem), merges with what is
 *       stored, fills preset and port defaults, seals secrets with
 *       RELAYQ_SECRET_KEY, verifies the connection (probe.h) unless
 *       --no-verify, and writes the canonical values in one MULTI under
 *       WATCH, so nothing is saved when verification fails or someone else
 *       changed the tenant meanwhile. `FIELD=` deletes FIELD. --route NAME
 *       writes P:tenant:T:route:NAME (smtp_* fields) and lists NAME in the
 *       tenant's `routes`.
 *   get TENANT [--json]      fields sorted, secrets masked, routes.
 *   verify TENANT [--route NAME] [--probe-rcpt ADDR] [--json]
 *   test TENANT --to ADDR [--subject S] [--route NAME]
 *       builds a short message (worker/mime.h) and sends it now through the
 *       tenant's route with the worker's own transports (worker/smtp.h,
 *       worker/mailgun.h) on a private uv loop, with the worker's sender
 *       rules (worker/route.h); no worker needs to run.
 *   del TENANT [--route NAME]
 *
 * Exit: 0 done (probe passed, message sent); 1 failed (Redis, probe,
 * delivery, not found); 2 bad arguments or environment.
 *
 * Secrets: plaintext secrets exist only in argv (or stdin with --stdin),
 * the parsed tenant (wiped by rq_tenant_free) and libcurl; they are never
 * printed. Values read from Redis are sealed or the operator's plaintext,
 * and are shown masked.
 */
#include <getopt.h>
#include <stdio.h>
#include <sys/types.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <openssl/crypto.h>
#include <uv.h>

#include "address.h"
#include "classify.h"
#include "cli.h"
#include "curlfail.h"
#include "curluv.h"
#include "log.h"
#include "dkim.h"
#include "keys.h"
#include "mailgun.h"
#include "message.h"
#include "mime.h"
#include "cli_oauth.h"
#include "probe.h"
#include "route.h"
#include "settings.h"
#include "smtp.h"
#include "tenant.h"
#include "text.h"
#include "util.h"

#define MAX_PAIRS 64      /* FIELD=VALUE arguments in one `set` */
#define MAX_TO 16         /* --to for `test` */
#define SHOW_MAX 120      /* characters of a long value in text output */
#define STDIN_MAX 65536   /* --stdin value */
#define SCAN_ROUNDS 10000 /* bound on SCAN iterations in `del` */
#define PEM_PLACEHOLDER "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n"

/* ---- options ---------------------------------------------------------------------- */

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

/* Which subcommand takes which option (bit = option - O_JSON). */
#define BIT(o) (1u << ((o)-O_JSON))

static const struct option tenant_opts[] = {
    CLI_GLOBAL_LONGOPTS,
    {"json", no_argument, NULL, O_JSON},
    {"route", required_argument, NULL, O_ROUTE},
    {"probe-rcpt", required_argument, NULL, O_PROBE_RCPT},
    {"no-verify", no_argument, NULL, O_NO_VERIFY},
    {"ca-file", required_argument, NULL, O_CA_FILE},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"to", required_argument, NULL, O_TO},
    {"subject", required_argument, NULL, O_SUBJECT},
    {"stdin", required_argument, NULL, O_STDIN},
    {NULL, 0, NULL, 0},
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

static void usage(FILE *f) {
  fputs("usage: relayq tenant COMMAND TENANT [options]\n"
        "\n"
        "  set TENANT FIELD=VALUE ... [--route NAME] [--no-verify] [--stdin FIELD]\n"
        "        validate, fill preset and port defaults, seal secrets (RELAYQ_SECRET_KEY),\n"
        "        verify the connection, then save; FIELD= deletes FIELD\n"
        "  get TENANT [--json]\n"
        "        show the settings, secrets masked, and the routes\n"
        "  verify TENANT [--route NAME] [--probe-rcpt ADDR] [--json]\n"
        "        connect, EHLO, STARTTLS or TLS, AUTH (Mailgun: an authenticated\n"
        "        request) and report each stage; --probe-rcpt adds MAIL FROM and\n"
        "        RCPT TO without DATA\n"
        "  test TENANT --to ADDR [--to ADDR ...] [--subject S] [--route NAME]\n"
        "        send a real test message through the tenant's route now\n"
        "  del TENANT [--route NAME]\n"
        "        delete the tenant (and its routes), or one route\n"
        "  reseal (TENANT | --all)\n"
        "        rewrite enc:v1: and plaintext secrets as enc:v2: (bound to hash and field)\n"
        "  verify-domain TENANT DOMAIN [dns check options]\n"
        "        run the checks of 'relayq dns check' and add DOMAIN to verified_domains\n"
        "  trust TENANT [--route NAME] [--yes]\n"
        "        show the server's certificate and key pin; store it in smtp_tls_pin\n"
        "\n"
        "Options:\n"
        "  --ca-file FILE   CA bundle (PEM) to verify servers with (env RELAYQ_CA_FILE)\n"
        "  --timeout S      seconds for a check or a test send (default 15 / 120)\n"
        "  --stdin FIELD    read FIELD's value from standard input (keeps a secret\n"
        "                   out of the process list and shell history)\n"
        "\n"
        "Exit: 0 done, 1 failed (probe, delivery, Redis, not found), 2 bad arguments.\n"
        "Fields, presets and examples: docs/tenants.md.\n",
        f);
}

static unsigned allowed_opts(const char *sub) {
  unsigned common = BIT(O_CA_FILE) | BIT(O_TIMEOUT);
  if (strcmp(sub, "set") == 0)
    return common | BIT(O_ROUTE) | BIT(O_NO_VERIFY) | BIT(O_STDIN) | BIT(O_JSON) | BIT(O_PROBE_RCPT);
  if (strcmp(sub, "get") == 0) return BIT(O_JSON);
  if (strcmp(sub, "verify") == 0) return common | BIT(O_ROUTE) | BIT(O_PROBE_RCPT) | BIT(O_JSON);
  if (strcmp(sub, "test") == 0) return common | BIT(O_ROUTE) | BIT(O_TO) | BIT(O_SUBJECT);
  if (strcmp(sub, "del") == 0) return BIT(O_ROUTE);
  return 0;
}

/* Parses argv (argv[0] = the subcommand). Returns -1 after printing a
 * usage error, 1 after printing help, 0 otherwise. */
static int parse_opts(int argc, char **argv, struct cli_ctx *ctx, struct topts *o) {
  memset(o, 0, sizeof *o);
  o->sub = argv[0];
  unsigned allowed = allowed_opts(o->sub);
  int opt;
  long long secs;
  optind = 0;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, ":h", tenant_opts, NULL)) != -1) {
    if (cli_global_opt(opt, optarg, ctx)) continue;
    if (opt == 'h') {
      usage(stdout);
      return 1;
    }
    if (opt == '?' || opt == ':') {
      char cmd[32];
      snprintf(cmd, sizeof cmd, "tenant %s", o->sub);
      cli_bad_option(cmd, opt, argv);
      return -1;
    }
    if (opt >= O_JSON && !(allowed & BIT(opt))) {
      const char *name = "that option";
      for (const struct option *x = tenant_opts; x->name; x++)
        if (x->val == opt) name = x->name;
      cli_fail(CLI_USAGE, "'relayq tenant %s' does not take --%s (see 'relayq tenant --help').", o->sub, name);
      return -1;
    }
    switch (opt) {
    case O_JSON: o->json = 1; break;
    case O_ROUTE: o->route = optarg; break;
    case O_PROBE_RCPT: o->probe_rcpt = optarg; break;
    case O_NO_VERIFY: o->no_verify = 1; break;
    case O_CA_FILE: o->ca_file = optarg; break;
    case O_SUBJECT: o->subject = optarg; break;
    case O_STDIN: o->stdin_field = optarg; break;
    case O_TIMEOUT:
      if (cli_parse_int(optarg, 1, 3600, &secs) != 0) {
        cli_fail(CLI_USAGE, "--timeout takes whole seconds from 1 to 3600.");
        return -1;
      }
      o->timeout_ms = (long)secs * 1000;
      break;
    case O_TO:
      if (o->n_to == MAX_TO) {
        cli_fail(CLI_USAGE, "at most %d --to addresses for a test message.", MAX_TO);
        return -1;
      }
      o->to[o->n_to++] = optarg;
      break;
    default: break;
    }
  }
  if (optind >= argc) {
    cli_fail(CLI_USAGE, "'relayq tenant %s' needs a TENANT (see 'relayq tenant --help').", o->sub);
    return -1;
  }
  o->tenant = argv[optind];
  if (!relayq_valid_tenant(o->tenant)) {
    cli_fail(CLI_USAGE, "the tenant id must be 1-128 characters of A-Z a-z 0-9 . _ @ - (no ':', which would make "
                        "one tenant's route key another tenant's hash).");
    return -1;
  }
  o->pos = argv + optind + 1;
  o->npos = argc - optind - 1;
  if (o->route != NULL && !relayq_valid_tenant(o->route)) {
    cli_fail(CLI_USAGE, "--route takes a name of 1-128 characters of A-Z a-z 0-9 . _ @ - (no ':').");
    return -1;
  }
  if (o->route != NULL && (strcasecmp(o->route, "platform") == 0 || strcasecmp(o->route, "smtp") == 0 ||
                           strcasecmp(o->route, "mailgun") == 0)) {
    cli_fail(CLI_USAGE, "a route cannot be called '%s': platform, smtp and mailgun name the gateways.", o->route);
    return -1;
  }
  if (o->probe_rcpt != NULL) {
    if (rq_addr_envelope(o->probe_rcpt, o->rcpt_buf, sizeof o->rcpt_buf) != 0) {
      cli_fail(CLI_USAGE, "--probe-rcpt is not a valid address: write it as name@example.com.");
      return -1;
    }
    o->probe_rcpt = o->rcpt_buf;
  }
  if (o->ca_file == NULL) {
    const char *env = getenv("RELAYQ_CA_FILE");
    if (env != NULL && env[0] != '\0') o->ca_file = env;
  }
  return 0;
}

/* ---- field/value lists ----------------------------------------------------------- */

/* A hash as field/value pairs. Owns every string. */
struct kvs {
  char **f, **v;
  size_t n, cap;
};

static void kvs_free(struct kvs *k) {
  for (size_t i = 0; i < k->n; i++) {
    free(k->f[i]);
    if (k->v[i]) OPENSSL_cleanse(k->v[i], strlen(k->v[i]));
    free(k->v[i]);
  }
  free(k->f);
  free(k->v);
  memset(k, 0, sizeof *k);
}

static ssize_t kvs_find(const struct kvs *k, const char *field) {
  for (size_t i = 0; i < k->n; i++)
    if (strcmp(k->f[i], field) == 0) return (ssize_t)i;
  return -1;
}

static const char *kvs_get(const struct kvs *k, const char *field) {
  ssize_t i = kvs_find(k, field);
  return i < 0 ? NULL : k->v[i];
}

static void kvs_del(struct kvs *k, const char *field) {
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
static void kvs_set(struct kvs *k, const char *field, const char *value) {
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

static void tenant_key(struct relayq_client *c, const char *tenant, char *out, size_t cap) {
  relayq_key(out, cap, relayq_client_prefix(c), RELAYQ_KEY_TENANT, tenant);
}

static void route_key(struct relayq_client *c, const char *tenant, const char *route, char *out, size_t cap) {
  relayq__key(out, cap, relayq_client_prefix(c), RELAYQ__KEY_ROUTE, tenant, route);
}

/* Runs a command given as argv; prints the failure and returns NULL. The
 * reply is the caller's (freeReplyObject). */
static redisReply *command(struct relayq_client *c, int argc, const char **argv) {
  redisContext *rc = relayq_client_redis(c);
  size_t lens[8];
  if (argc > 8) return NULL; /* our commands have at most 6 words */
  for (int i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
  redisReply *r = redisCommandArgv(rc, argc, argv, lens);
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

static int simple(struct relayq_client *c, int argc, const char **argv) {
  redisReply *r = command(c, argc, argv);
  if (r == NULL) return -1;
  freeReplyObject(r);
  return 0;
}

/* HGETALL key into out (fields whose value holds a NUL byte are kept cut
 * at it; the parser then judges the rest). Returns 0 or -1. */
static int hgetall(struct relayq_client *c, const char *key, struct kvs *out) {
  const char *argv[] = {"HGETALL", key};
  memset(out, 0, sizeof *out);
  redisReply *r = command(c, 2, argv);
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
static int load_key(unsigned char key[RELAYQ_SECRET_KEY_LEN]) {
  const char *b64 = getenv("RELAYQ_SECRET_KEY");
  if (b64 == NULL || b64[0] == '\0') return 0;
  struct relayq_error err;
  if (relayq_secret_key_parse(b64, key, &err) != 0)
    return cli_fail(-1, "RELAYQ_SECRET_KEY: %s", err.message);
  return 1;
}

static int env_flag(const char *name) {
  const char *v = getenv(name);
  return v != NULL && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0);
}

/* A field whose value decides how mail leaves: changing it calls for a
 * fresh verification. */
static int connection_field(const char *f) {
  return strcmp(f, "gateway") == 0 || strncmp(f, "smtp_", 5) == 0 || strncmp(f, "mailgun_", 8) == 0 ||
         strncmp(f, "oauth_", 6) == 0;
}

/* ---- display ---------------------------------------------------------------------------- */

/* What is shown of a secret: whether it is sealed, never its value. */
static const char *masked(const char *value) {
  if (relayq_secret_is_v2(value)) return "enc:v2:\xe2\x80\xa6(sealed)";
  return relayq_secret_is_sealed(value) ? "enc:v1:\xe2\x80\xa6(sealed)" : "****(plaintext)";
}

/* Text for one value: secrets masked, line breaks shown as \n, long
 * values cut (on a UTF-8 boundary). Writes into buf. */
static const char *show_value(const char *field, const char *value, char *buf, size_t cap) {
  if (rq_tenant_field_is_secret(field)) {
    snprintf(buf, cap, "%s", masked(value));
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

static void print_fields(const struct kvs *k, const char *indent) {
  char buf[SHOW_MAX * 4 + 16];
  size_t *idx = kvs_order(k);
  for (size_t j = 0; j < k->n; j++) {
    size_t i = idx[j];
    printf("%s%-22s %s\n", indent, k->f[i], show_value(k->f[i], k->v[i], buf, sizeof buf));
  }
  free(idx);
}

static void json_fields(const struct kvs *k) {
  size_t *idx = kvs_order(k);
  putchar('{');
  for (size_t j = 0; j < k->n; j++) {
    size_t i = idx[j];
    if (j) putchar(',');
    cli_json_string(stdout, k->f[i]);
    putchar(':');
    cli_json_string(stdout, rq_tenant_field_is_secret(k->f[i]) ? masked(k->v[i]) : k->v[i]);
  }
  putchar('}');
  free(idx);
}

/* ---- validation ---------------------------------------------------------------------------- */

/* Parses the hash with sealed secrets replaced by stand-ins, so its shape
 * can be judged without RELAYQ_SECRET_KEY (sealed values were checked when
 * they were given). */
static int parse_shape(const char *tenant, const struct kvs *k, int strict, struct rq_tenant **out, char *err,
                       size_t errlen) {
  const char **f = rq_xcalloc(k->n + 1, sizeof *f), **v = rq_xcalloc(k->n + 1, sizeof *v);
  for (size_t i = 0; i < k->n; i++) {
    f[i] = k->f[i];
    v[i] = k->v[i];
    if (rq_tenant_field_is_secret(k->f[i]) && relayq_secret_is_sealed(k->v[i]))
      v[i] = strcmp(k->f[i], "dkim_private_key") == 0 ? PEM_PLACEHOLDER : "sealed";
  }
  int rc = rq_tenant_parse(tenant, f, v, k->n, NULL, 0, strict, out, err, errlen);
  free(f);
  free(v);
  return rc;
}

/* Judges one FIELD=VALUE on its own. Fields that only make sense with
 * others (gateway, the DKIM trio) get neutral companions, so the message
 * is about this value, not about what else is missing. */
static int check_one(const char *tenant, const char *field, const char *value, const unsigned char *key, char *err,
                     size_t errlen) {
  const char *f[8] = {field}, *v[8] = {value};
  size_t n = 1;
  if (strcmp(field, "smtp_auth") == 0) { /* xoauth2 needs the sign-in fields */
    f[n] = "smtp_user", v[n++] = "user@example.com";
    f[n] = "oauth_token_url", v[n++] = "https://idp.example.com/token";
    f[n] = "oauth_client_id", v[n++] = "app";
    f[n] = "oauth_refresh_token", v[n++] = "token";
    f[n] = "oauth_scope", v[n++] = "scope";
  } else if (strcmp(field, "gateway") == 0) {
    f[n] = "smtp_host", v[n++] = "smtp.example.com";
    f[n] = "mailgun_domain", v[n++] = "mg.example.com";
    f[n] = "mailgun_api_key", v[n++] = "key";
  } else if (strncmp(field, "dkim_", 5) == 0) {
    if (strcmp(field, "dkim_domain") != 0) f[n] = "dkim_domain", v[n++] = "example.com";
    if (strcmp(field, "dkim_selector") != 0) f[n] = "dkim_selector", v[n++] = "s1";
    if (strcmp(field, "dkim_private_key") != 0) f[n] = "dkim_private_key", v[n++] = PEM_PLACEHOLDER;
  }
  struct rq_tenant *t = NULL;
  int rc = rq_tenant_parse(tenant, f, v, n, key, 0, 1, &t, err, errlen);
  rq_tenant_free(t);
  return rc;
}

/* One FIELD=VALUE argument. */
struct pair {
  const char *field; /* points into argv (the '=' replaced) or static */
  const char *value; /* "" deletes */
};

/* Reads FIELD's value from stdin: the whole input, one trailing line end
 * removed (a PEM key keeps its inner line breaks). Caller frees. */
static char *read_stdin_value(void) {
  unsigned char *buf = NULL;
  size_t len = 0;
  if (cli_read_file("/dev/stdin", STDIN_MAX, &buf, &len) != CLI_OK) return NULL;
  if (len > 0 && buf[len - 1] == '\n') buf[--len] = '\0';
  if (len > 0 && buf[len - 1] == '\r') buf[--len] = '\0';
  if (strlen((char *)buf) != len) {
    OPENSSL_cleanse(buf, len);
    free(buf);
    cli_fail(CLI_USAGE, "the value on standard input contains a NUL byte.");
    return NULL;
  }
  return (char *)buf;
}

/*
 * Splits and checks the FIELD=VALUE arguments: each problem is one line on
 * stderr. route_mode: only smtp_* fields. Returns the number of pairs, or
 * -1 when any was wrong.
 */
static int collect_pairs(const struct topts *o, const unsigned char *key, const char *stdin_value,
                         struct pair *pairs) {
  int n = 0, bad = 0;
  char err[400];
  for (int i = 0; i < o->npos; i++) {
    char *arg = o->pos[i];
    char *eq = strchr(arg, '=');
    if (eq == NULL || eq == arg) {
      /* Not echoed: a mistyped pair may be a password. */
      if (rq_tenant_field_known(arg))
        cli_fail(CLI_USAGE, "argument %d is not FIELD=VALUE: write %s=VALUE (%s= deletes it).", i + 2, arg, arg);
      else
        cli_fail(CLI_USAGE, "argument %d is not FIELD=VALUE (FIELD= deletes a field).", i + 2);
      bad++;
      continue;
    }
    if (n == MAX_PAIRS) {
      cli_fail(CLI_USAGE, "at most %d fields in one command.", MAX_PAIRS);
      return -1;
    }
    *eq = '\0';
    pairs[n].field = arg;
    pairs[n].value = eq + 1;
    n++;
  }
  if (o->stdin_field != NULL) {
    if (n == MAX_PAIRS) return cli_fail(-1, "at most %d fields in one command.", MAX_PAIRS);
    pairs[n].field = o->stdin_field;
    pairs[n].value = stdin_value;
    n++;
  }
  for (int i = 0; i < n; i++) {
    const char *f = pairs[i].field, *v = pairs[i].value;
    int dup = 0;
    for (int j = 0; j < i; j++) dup |= strcmp(pairs[j].field, f) == 0;
    if (dup) {
      cli_fail(CLI_USAGE, "tenant field '%.60s' is given twice.", f);
      bad++;
      continue;
    }
    if (!rq_tenant_field_known(f)) {
      /* The parser words it, with a "did you mean". */
      check_one(o->tenant, f, "x", NULL, err, sizeof err);
      cli_fail(CLI_USAGE, "%s", err);
      bad++;
      continue;
    }
    if (o->route != NULL && strncmp(f, "smtp_", 5) != 0) {
      cli_fail(CLI_USAGE, "a route holds only smtp_* fields; %s belongs to the tenant (relayq tenant set %s %s=...).",
               f, o->tenant, f);
      bad++;
      continue;
    }
    if (v[0] == '\0') continue; /* deletion */
    if (rq_tenant_field_is_secret(f) && strncmp(v, "enc:", 4) == 0) {
      /* A sealed value copied from another hash would be replayed there
       * (v1) or fail to open here (v2): only plaintext is sealed here. */
      cli_fail(CLI_USAGE, "%s is given already sealed (enc:...): give the plaintext; `relayq tenant set` seals it "
                          "for this tenant and field itself.",
               f);
      bad++;
      continue;
    }
    if (check_one(o->tenant, f, v, key, err, sizeof err) != 0) {
      cli_fail(CLI_USAGE, "%s", err);
      bad++;
    }
  }
  return bad ? -1 : n;
}

/* When a command changes the preset or the security without the values
 * they imply, the stored ones (written canonically by an earlier `set`)
 * would pin the old choice: drop them so the new one fills them in. */
static void forget_derived(struct kvs *m, const struct pair *pairs, int n) {
  int preset = 0, sec = 0, host = 0, port = 0;
  for (int i = 0; i < n; i++) {
    const char *f = pairs[i].field;
    int given = pairs[i].value[0] != '\0';
    if (strcmp(f, "smtp_preset") == 0 && given) preset = 1;
    if (strcmp(f, "smtp_security") == 0) sec = 1;
    if (strcmp(f, "smtp_host") == 0) host = 1;
    if (strcmp(f, "smtp_port") == 0) port = 1;
  }
  if (preset && !host) kvs_del(m, "smtp_host");
  if (preset && !sec) kvs_del(m, "smtp_security");
  if ((preset || sec) && !port) kvs_del(m, "smtp_port");
  /* A host that is not the preset's makes the preset name a lie. */
  const struct rq_preset *p = !preset && host ? rq_preset_find(kvs_get(m, "smtp_preset") ? kvs_get(m, "smtp_preset") : "")
                                               : NULL;
  for (int i = 0; p && i < n; i++)
    if (strcmp(pairs[i].field, "smtp_host") == 0 && strcasecmp(pairs[i].value, p->host) != 0)
      kvs_del(m, "smtp_preset");
}

/* v1's domain_verified=1 stands for the domain of dkim_domain, else of
 * from_email (CONTRACT.md v1.1): a command that changes either, without
 * setting domain_verified itself, clears it, so the mark never carries
 * over to a domain nobody verified. */
static int forget_verified(struct kvs *m, const struct pair *pairs, int n) {
  int changed = 0;
  for (int i = 0; i < n; i++) {
    const char *f = pairs[i].field, *old;
    if (strcmp(f, "domain_verified") == 0) return 0;
    if (strcmp(f, "from_email") != 0 && strcmp(f, "dkim_domain") != 0) continue;
    old = kvs_get(m, f);
    if (old == NULL || strcasecmp(old, pairs[i].value) != 0) changed = 1;
  }
  if (!changed || kvs_get(m, "domain_verified") == NULL) return 0;
  kvs_del(m, "domain_verified");
  return 1;
}

/* Replaces the SMTP values in m by the canonical ones conf resolved to
 * (preset and port defaults filled in). */
static void canonical_smtp(struct kvs *m, const struct rq_smtp_conf *conf) {
  char port[16];
  if (conf->host == NULL) return;
  kvs_set(m, "smtp_host", conf->host);
  snprintf(port, sizeof port, "%d", conf->port);
  kvs_set(m, "smtp_port", port);
  kvs_set(m, "smtp_security", rq_security_name(conf->security));
  if (conf->preset != NULL) kvs_set(m, "smtp_preset", conf->preset);
}

static void canonical_tenant(struct kvs *m, const struct rq_tenant *t) {
  if (kvs_get(m, "gateway") != NULL) kvs_set(m, "gateway", rq_gateway_name(t->gateway));
  canonical_smtp(m, &t->smtp);
  if (kvs_get(m, "mailgun_region") != NULL && t->mailgun_region) kvs_set(m, "mailgun_region", t->mailgun_region);
  if (kvs_get(m, "mailgun_base_url") != NULL) kvs_set(m, "mailgun_base_url", t->mailgun_base_url);
}

static int route_index(const struct rq_tenant *t, const char *name) {
  for (size_t i = 0; t && i < t->n_routes; i++)
    if (strcmp(t->route_names[i], name) == 0) return (int)i;
  return -1;
}

/* ---- probing --------------------------------------------------------------------------------- */

/* Saas/onprem advice for an SMTP server (CONTRACT.md --mode). */
static void policy_notes(struct rq_probe_report *r, const struct rq_smtp_conf *c) {
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
static void probe_conf(const struct rq_smtp_conf *c, const struct topts *o, const char *mail_from,
                       struct rq_probe_report *r, char **rotated) {
  char *token = NULL, *rt = NULL;
  struct rq_probe_stage tok_stage;
  if (c->xoauth2 && cli_oauth_token(c, o->ca_file, o->timeout_ms, o->netpolicy.enforce ? &o->netpolicy : NULL,
                                    &token, &rt, &tok_stage, r) != 0) {
    policy_notes(r, c);
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
  policy_notes(r, c);
}

static void probe_mailgun(const struct rq_tenant *t, const struct topts *o, struct rq_probe_report *r) {
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

static void print_report(const struct rq_probe_report *r, int json) {
  if (json) rq_probe_print_json(stdout, r);
  else rq_probe_print(stdout, r);
  fflush(stdout);
}

/* The envelope sender a check or a test uses: the tenant's from_email,
 * else RELAYQ_PLATFORM_FROM, else the worker's default. */
static const char *probe_sender(const struct rq_tenant *t) {
  if (t != NULL && t->from_email != NULL) return t->from_email;
  const char *env = getenv("RELAYQ_PLATFORM_FROM");
  return env != NULL && env[0] != '\0' ? env : "no-reply@platform.example";
}

/* ---- set ------------------------------------------------------------------------------------------ */

/* Writes the final hash: HDEL what went away, HSET the rest, in one
 * MULTI under the WATCH taken before reading. extra_* (may be NULL): one
 * more HSET or HDEL on the tenant hash (its `routes`). Returns 0, 1 when
 * the WATCH fired (someone else wrote), -1 on error (printed). */
static int write_hash(struct relayq_client *c, const char *key, const struct kvs *old, const struct kvs *final,
                      const char *extra_key, const char *extra_field, const char *extra_value) {
  const char *multi[] = {"MULTI"};
  if (simple(c, 1, multi) != 0) return -1;
  for (size_t i = 0; i < old->n; i++) {
    if (kvs_find(final, old->f[i]) >= 0) continue;
    const char *argv[] = {"HDEL", key, old->f[i]};
    if (simple(c, 3, argv) != 0) return -1;
  }
  for (size_t i = 0; i < final->n; i++) {
    const char *argv[] = {"HSET", key, final->f[i], final->v[i]};
    if (simple(c, 4, argv) != 0) return -1;
  }
  if (extra_key != NULL) {
    if (extra_value != NULL) {
      const char *argv[] = {"HSET", extra_key, extra_field, extra_value};
      if (simple(c, 4, argv) != 0) return -1;
    } else {
      const char *argv[] = {"HDEL", extra_key, extra_field};
      if (simple(c, 3, argv) != 0) return -1;
    }
  }
  const char *exec[] = {"EXEC"};
  redisReply *r = command(c, 1, exec);
  if (r == NULL) return -1;
  int rc = r->type == REDIS_REPLY_NIL ? 1 : 0;
  freeReplyObject(r);
  return rc;
}

/* `routes` with name added (or removed when add is 0); "" when empty.
 * Caller frees. */
static char *routes_with(const char *routes, const char *name, int add) {
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
  if (parse_shape(o->tenant, merged, 1, &shape, err, sizeof err) != 0) return cli_fail(CLI_USAGE, "%s", err);
  canonical_tenant(merged, shape);
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
  if (parse_shape(o->tenant, merged, 1, &values, err, sizeof err) != 0) {
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
  canonical_smtp(merged, &shape->routes[route_index(shape, o->route)]);
  rc = CLI_OK;
out:
  rq_tenant_free(shape);
  rq_tenant_free(values);
  return rc;
}

/*
 * Probes what merged describes, with the real secrets (stored ones opened
 * with key, new ones still plaintext), and prints the report. With --json
 * the report opens the output object and *json_open is set. Returns CLI_OK
 * (passed, or nothing to probe), CLI_FAIL (probe failed, printed) or
 * CLI_USAGE (secrets cannot be opened, printed). tenant_from: the stored
 * tenant's from_email, the sender of a route's --probe-rcpt check.
 */
static int verify_merged(const struct topts *o, const struct kvs *merged, const unsigned char *key,
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
    probe_conf(&t->routes[0], o, tenant_from ? tenant_from : probe_sender(NULL), &rep, rotated);
  } else {
    if (rq_tenant_parse(o->tenant, f, v, merged->n, key, 0, 0, &t, err, sizeof err) != 0) goto cannot;
    if (t->gateway == RQ_GW_SMTP) {
      probe_conf(&t->smtp, o, probe_sender(t), &rep, rotated);
    } else if (t->gateway == RQ_GW_MAILGUN) {
      probe_mailgun(t, o, &rep);
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
    print_report(&rep, 0);
  }
  rc = rep.ok ? CLI_OK : cli_fail(CLI_FAIL, "not saved: %s.", rep.error);
  goto out;
cannot:
  cli_fail(CLI_USAGE, "cannot verify: %s Or pass --no-verify to save without checking.", err);
out:
  rq_tenant_free(t);
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
  for (int i = 0; i < n; i++) changed |= connection_field(pairs[i].field);
  return changed;
}

static void print_saved(const struct topts *o, const char *key, const struct kvs *m, int json_open) {
  if (o->json) {
    fputs(json_open ? ",\"saved\":" : "{\"verify\":null,\"saved\":", stdout);
    json_fields(m);
    fputs("}\n", stdout);
    return;
  }
  if (o->route) printf("Saved route %s of tenant %s (%s):\n", o->route, o->tenant, key);
  else printf("Saved tenant %s (%s):\n", o->tenant, key);
  print_fields(m, "  ");
  if (m->n == 0)
    printf("  (no fields left: the hash is gone%s)\n",
           o->route ? "" : "; the tenant sends through the platform gateway with defaults");
}

/* `set`: validate the arguments, read and merge under WATCH, settle the
 * merged hash, verify, seal, write in one MULTI. */
static int cmd_set(struct topts *o, struct cli_ctx *ctx) {
  char *rotated = NULL;
  struct pair pairs[MAX_PAIRS + 1];
  unsigned char keybuf[RELAYQ_SECRET_KEY_LEN];
  const unsigned char *key = NULL;
  char *stdin_value = NULL, *routes_new = NULL;
  struct kvs old = {0}, merged = {0}, route_old = {0};
  char tkey[512], rkey[700];
  int rc = CLI_USAGE, json_open = 0;

  int have = load_key(keybuf);
  if (have < 0) goto out;
  if (have) key = keybuf;
  if (o->stdin_field != NULL && (stdin_value = read_stdin_value()) == NULL) goto out;
  int n = collect_pairs(o, key, stdin_value, pairs);
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
  if (simple(c, o->route ? 3 : 2, watch) != 0) goto out;
  if (hgetall(c, tkey, &old) != 0) goto out;
  if (o->route != NULL && hgetall(c, rkey, &route_old) != 0) goto out;

  const struct kvs *base = o->route ? &route_old : &old;
  for (size_t i = 0; i < base->n; i++) kvs_set(&merged, base->f[i], base->v[i]);
  forget_derived(&merged, pairs, n);
  if (o->route == NULL && forget_verified(&merged, pairs, n) && !o->json)
    printf("domain_verified cleared: it vouched for the old domain; 'relayq tenant verify-domain %s DOMAIN' "
           "verifies the new one.\n",
           o->tenant);
  for (int i = 0; i < n; i++) kvs_set(&merged, pairs[i].field, pairs[i].value);
  if (o->route != NULL) {
    routes_new = routes_with(kvs_get(&old, "routes"), o->route, 1);
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
  } else if ((rc = verify_merged(o, &merged, key, o->route ? kvs_get(&old, "from_email") : NULL, &json_open,
                                 &rotated)) != CLI_OK) {
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
  if (o->route) snprintf(place, sizeof place, "tenant:%s:route:%s", o->tenant, o->route);
  else snprintf(place, sizeof place, "tenant:%s", o->tenant);
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

/* ---- loading a stored tenant (get, verify, test, del) ------------------------------------------------ */

/* The tenant's hash and every route hash `routes` names. */
struct stored {
  struct kvs hash;
  char **route_names;
  struct kvs *routes; /* parallel to route_names */
  size_t n_routes;
};

static void stored_free(struct stored *s) {
  kvs_free(&s->hash);
  for (size_t i = 0; i < s->n_routes; i++) {
    free(s->route_names[i]);
    kvs_free(&s->routes[i]);
  }
  free(s->route_names);
  free(s->routes);
  memset(s, 0, sizeof *s);
}

static int load_stored(struct relayq_client *c, const char *tenant, struct stored *s) {
  char key[512], rkey[700];
  memset(s, 0, sizeof *s);
  tenant_key(c, tenant, key, sizeof key);
  if (hgetall(c, key, &s->hash) != 0) return -1;
  char *list = routes_with(kvs_get(&s->hash, "routes"), "", 0);
  /* routes_with normalised the list; split it. */
  for (char *p = list, *e; p && *p; p = e ? e + 1 : NULL) {
    e = strchr(p, ',');
    if (e) *e = '\0';
    if (!*p || !relayq_valid_tenant(p) || s->n_routes == RQ_TENANT_MAX_ROUTES) continue;
    s->route_names = rq_xrealloc(s->route_names, (s->n_routes + 1) * sizeof *s->route_names);
    s->routes = rq_xrealloc(s->routes, (s->n_routes + 1) * sizeof *s->routes);
    s->route_names[s->n_routes] = rq_xstrdup(p);
    route_key(c, tenant, p, rkey, sizeof rkey);
    if (hgetall(c, rkey, &s->routes[s->n_routes]) != 0) {
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
static int parse_stored(const char *tenant, const struct stored *s, const unsigned char *key, struct rq_tenant **t,
                        char *err, size_t errlen) {
  *t = NULL;
  if (s->hash.n == 0) return 0;
  int req = env_flag("RELAYQ_REQUIRE_ENCRYPTED");
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

static int not_found(const char *tenant) {
  return cli_fail(CLI_FAIL, "tenant '%s' has no settings: it sends through the platform gateway with the worker's "
                            "defaults.",
                  tenant);
}

/* ---- get ------------------------------------------------------------------------------------------------ */

static int cmd_get(struct topts *o, struct cli_ctx *ctx) {
  struct stored s;
  struct rq_tenant *shape = NULL;
  char err[512], key[512];
  struct relayq_client *c = cli_client(ctx);
  if (c == NULL) return CLI_FAIL;
  if (load_stored(c, o->tenant, &s) != 0) {
    stored_free(&s);
    return CLI_FAIL;
  }
  if (s.hash.n == 0) {
    stored_free(&s);
    return not_found(o->tenant);
  }
  /* Would the worker accept it? Judged without opening secrets. */
  int bad = parse_shape(o->tenant, &s.hash, 0, &shape, err, sizeof err);
  rq_tenant_free(shape);
  tenant_key(c, o->tenant, key, sizeof key);
  if (o->json) {
    printf("{\"tenant\":");
    cli_json_string(stdout, o->tenant);
    printf(",\"key\":");
    cli_json_string(stdout, key);
    printf(",\"fields\":");
    json_fields(&s.hash);
    printf(",\"routes\":{");
    for (size_t i = 0; i < s.n_routes; i++) {
      if (i) putchar(',');
      cli_json_string(stdout, s.route_names[i]);
      putchar(':');
      if (s.routes[i].n) json_fields(&s.routes[i]);
      else fputs("null", stdout);
    }
    printf("},\"problem\":");
    if (bad) cli_json_string(stdout, err);
    else fputs("null", stdout);
    printf("}\n");
  } else {
    printf("tenant %s (%s)\n", o->tenant, key);
    print_fields(&s.hash, "  ");
    for (size_t i = 0; i < s.n_routes; i++) {
      printf("route %s\n", s.route_names[i]);
      if (s.routes[i].n) print_fields(&s.routes[i], "  ");
      else printf("  (missing: jobs naming this route fail; set it with --route %s)\n", s.route_names[i]);
    }
    if (bad) printf("problem: %s\n", err);
  }
  stored_free(&s);
  return CLI_OK;
}

/* ---- verify ---------------------------------------------------------------------------------------------- */

/* Writes a refresh token the provider rotated during `tenant verify` back
 * into the hash at once, sealed for its place like `tenant set` would. */
static int save_rotated(struct relayq_client *c, const struct topts *o, const unsigned char *key,
                        const char *rotated) {
  char hkey[800], place[720];
  if (o->route) {
    route_key(c, o->tenant, o->route, hkey, sizeof hkey);
    snprintf(place, sizeof place, "tenant:%s:route:%s", o->tenant, o->route);
  } else {
    tenant_key(c, o->tenant, hkey, sizeof hkey);
    snprintf(place, sizeof place, "tenant:%s", o->tenant);
  }
  char *sealed = NULL;
  struct relayq_error e;
  if (key && relayq_secret_seal_for(key, place, "oauth_refresh_token", rotated, &sealed, &e) != 0) {
    cli_fail(CLI_FAIL, "could not seal the rotated refresh token: %s", e.message);
    return -1;
  }
  const char *argv[] = {"HSET", hkey, "oauth_refresh_token", sealed ? sealed : rotated};
  int rc = simple(c, 4, argv);
  if (sealed) {
    OPENSSL_cleanse(sealed, strlen(sealed));
    free(sealed);
  }
  if (rc == 0 && !o->json) printf("The provider rotated the refresh token: the new one is saved (sealed).\n");
  return rc;
}

static int cmd_verify(struct topts *o, struct cli_ctx *ctx) {
  char *rotated = NULL;
  struct stored s;
  struct rq_tenant *t = NULL;
  unsigned char keybuf[RELAYQ_SECRET_KEY_LEN];
  char err[512];
  int rc = CLI_FAIL;
  int have = load_key(keybuf);
  if (have < 0) return CLI_USAGE;
  struct relayq_client *c = cli_client(ctx);
  if (c == NULL) return CLI_FAIL;
  if (load_stored(c, o->tenant, &s) != 0) goto out;
  if (s.hash.n == 0) {
    rc = not_found(o->tenant);
    goto out;
  }
  if (parse_stored(o->tenant, &s, have ? keybuf : NULL, &t, err, sizeof err) != 0) {
    rc = cli_fail(CLI_FAIL, "cannot verify tenant '%s': %s", o->tenant, err);
    goto out;
  }
  struct rq_probe_report rep;
  if (o->route != NULL) {
    int i = route_index(t, o->route);
    if (i < 0 || t->routes[i].host == NULL) {
      rc = cli_fail(CLI_FAIL, "tenant '%s' has no route '%s'%s.", o->tenant, o->route,
                    i < 0 ? " in its routes" : " hash");
      goto out;
    }
    probe_conf(&t->routes[i], o, probe_sender(t), &rep, &rotated);
  } else if (t->gateway == RQ_GW_SMTP) {
    probe_conf(&t->smtp, o, probe_sender(t), &rep, &rotated);
  } else if (t->gateway == RQ_GW_MAILGUN) {
    if (o->probe_rcpt) rc = cli_fail(CLI_USAGE, "--probe-rcpt applies to SMTP routes, not Mailgun.");
    if (o->probe_rcpt) goto out;
    probe_mailgun(t, o, &rep);
  } else {
    const char *why = "mail leaves through the platform's server, which the workers check; nothing to verify";
    if (o->json) {
      printf("{\"ok\":true,\"target\":\"platform\",\"stages\":[],\"certificate\":null,\"notes\":[");
      cli_json_string(stdout, why);
      printf("],\"category\":null,\"error\":null}\n");
    } else {
      printf("tenant %s uses the platform gateway: %s%s.\n", o->tenant, why,
             t->n_routes ? " (check a route with --route NAME)" : "");
    }
    rc = CLI_OK;
    goto out;
  }
  print_report(&rep, o->json);
  rc = rep.ok ? CLI_OK : cli_fail(CLI_FAIL, "%s.", rep.error);
  if (rotated && save_rotated(c, o, have ? keybuf : NULL, rotated) != 0) rc = CLI_FAIL;
out:
  if (rotated) {
    OPENSSL_cleanse(rotated, strlen(rotated));
    free(rotated);
  }
  OPENSSL_cleanse(keybuf, sizeof keybuf);
  rq_tenant_free(t);
  stored_free(&s);
  return rc;
}

/* ---- test ------------------------------------------------------------------------------------------------ */

/* The outcome of the test send, copied out of the transport's callback
 * (its result lives only during the callback). */
struct outcome {
  int done;
  int curl_code;
  char curl_error[256];
  int stage, code, data_code, accepted;
  char enhanced[16], reply[513];
  size_t n_rcpts;
  struct rq_rcpt_reply rcpts[MAX_TO];
  long http_status;
  char provider_id[256], message[513];
  int is_http;
  double seconds;
  struct rq_class smtp_failure; /* the transport's classification of a failed transaction */
};

static void on_smtp(const struct rq_smtp_result *res, void *arg) {
  struct outcome *out = arg;
  out->done = 1;
  out->curl_code = res->err;
  snprintf(out->curl_error, sizeof out->curl_error, "%s", res->errmsg);
  out->stage = res->stage;
  out->code = res->code;
  snprintf(out->enhanced, sizeof out->enhanced, "%s", res->enhanced);
  snprintf(out->reply, sizeof out->reply, "%s", res->reply);
  out->n_rcpts = res->n_rcpts < MAX_TO ? res->n_rcpts : MAX_TO;
  memcpy(out->rcpts, res->rcpts, out->n_rcpts * sizeof *out->rcpts);
  out->accepted = res->accepted;
  out->data_code = res->data_code;
  out->seconds = res->seconds;
  if (res->err != RQ_SMTP_ERR_OK) rq_smtp_classify_failure(res, &out->smtp_failure);
}

static void on_mailgun(const struct rq_mailgun_result *res, void *arg) {
  struct outcome *out = arg;
  out->done = 1;
  out->is_http = 1;
  out->curl_code = res->curl_code;
  snprintf(out->curl_error, sizeof out->curl_error, "%s", res->curl_error);
  out->http_status = res->status;
  snprintf(out->provider_id, sizeof out->provider_id, "%s", res->id);
  snprintf(out->message, sizeof out->message, "%s", res->message);
  out->seconds = res->seconds;
}

static void on_closed(void *arg) { *(int *)arg = 1; }

/* The tenant's DKIM key for the test message (a rq_message_key_fn),
 * parsed on first use; the caller frees key. */
struct test_key {
  void *key;
  const char *pem;
};

static int test_key_fn(void *arg, void **key, char *err, size_t errlen) {
  struct test_key *k = arg;
  if (k->key == NULL) k->key = rq_dkim_key_load(k->pem, err, errlen);
  *key = k->key;
  return k->key ? 0 : -1;
}

/* Builds the test message for job j with the worker's builder (message.h:
 * sender rule, MIME, DKIM where the worker signs), so it is what a worker
 * would send. msg is flat, for either transport. */
static int build_test_message(const struct rq_route_settings *rs, const struct rq_tenant *t, const struct relayq_job *j,
                              const struct rq_route *route, struct rq_sender *snd, struct rq_buf *msg,
                              char *mid_out, size_t mid_cap, char *err, size_t errlen) {
  struct rq_buf mid;
  rq_buf_init(&mid);
  rq_route_sender(rs, t, j, route, snd);
  rq_mime_message_id(j->id, rq_route_domain_of(snd->from_addr), &mid);
  snprintf(mid_out, mid_cap, "%s", mid.data);
  rq_buf_free(&mid);
  struct test_key k = {NULL, t ? t->dkim_private_key : NULL};
  const struct rq_message_input in = {
      .settings = rs,
      .tenant = t,
      .job = j,
      .route = route,
      .message_id = mid_out,
      .date_ms = relayq_now_ms(),
      .now_s = relayq_now_ms() / 1000,
      .dkim_key = test_key_fn,
      .dkim_arg = &k,
  };
  struct rq_msg m;
  rq_msg_init(&m);
  int rc = rq_message_build(&in, &m, err, errlen);
  if (rc == 0) rq_msg_flatten(&m, msg);
  rq_msg_free(&m);
  rq_dkim_key_free(k.key);
  return rc;
}

/* Sends msg through route on a private loop and waits for the outcome.
 * Returns 0 when the transport ran (out filled), -1 (printed) when it
 * could not start. */
static int send_now(const struct rq_config *cfg, const struct rq_route *route, const char *envelope_from,
                    const char *const *rcpts, size_t n, const struct rq_buf *msg, long timeout_ms,
                    const char *bearer, struct outcome *out) {
  uv_loop_t loop;
  int closed = 0, rc = -1;
  if (uv_loop_init(&loop) != 0) return cli_fail(-1, "cannot start an event loop.");
  struct rq_curl *curl = rq_curl_new(&loop, 0, 0);
  if (curl == NULL) {
    uv_loop_close(&loop);
    return cli_fail(-1, "libcurl could not start a transfer.");
  }
  struct rq_smtp *smtp = NULL;
  struct rq_mailgun *mg = NULL;
  int started;
  if (route->gateway == RQ_GW_MAILGUN) {
    mg = rq_mailgun_new(curl);
    struct rq_mailgun_request req = {
        .base_url = route->mg_base_url,
        .domain = route->mg_domain,
        .api_key = route->mg_key,
        .rcpts = rcpts,
        .n_rcpts = n,
        .msg = msg->data,
        .msg_len = msg->len,
        .connect_timeout_ms = cfg->smtp_connect_timeout_ms,
        .timeout_ms = timeout_ms,
        .netpolicy = route->netpolicy,
        .ca_file = cfg->ca_file,
    };
    started = mg != NULL ? rq_mailgun_send(mg, &req, on_mailgun, out) : -1;
  } else {
    smtp = rq_smtp_new(curl);
    struct rq_smtp_target t;
    rq_settings_smtp_target(cfg, route, &t);
    t.timeout_ms = timeout_ms;
    if (bearer) t.password = bearer; /* smtp_auth=xoauth2: the access token just issued */
    started = smtp != NULL ? rq_smtp_send(smtp, &t, envelope_from, rcpts, n, msg->data, msg->len, on_smtp, out) : -1;
    if (started != 0 && smtp != NULL)
      cli_fail(CLI_FAIL, "the test message could not be started: %s.", rq_smtp_strerror(started));
  }
  if (started == 0) {
    /* Every wait is bounded by the transfer's own timeout. */
    while (!out->done && uv_run(&loop, UV_RUN_ONCE) != 0) {
    }
    rc = out->done ? 0 : cli_fail(-1, "the transfer ended without a result.");
  } else if (route->gateway == RQ_GW_MAILGUN) {
    cli_fail(CLI_FAIL, "the Mailgun transport could not start the request (is it in this build?).");
  }
  rq_curl_close(curl, on_closed, &closed);
  while (!closed && uv_run(&loop, UV_RUN_ONCE) != 0) {
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  rq_smtp_free(smtp);
  rq_mailgun_free(mg);
  if (uv_loop_close(&loop) != 0) fprintf(stderr, "relayq: warning: the event loop did not close cleanly.\n");
  return rc;
}

static void describe_route(const struct rq_route *r, char *out, size_t cap) {
  if (r->gateway == RQ_GW_MAILGUN) {
    snprintf(out, cap, "mailgun (%s, domain %s)", r->mg_base_url, r->mg_domain);
    return;
  }
  const char *sec = r->smtp_security == RQ_ROUTE_IMPLICIT_TLS       ? "tls"
                    : r->smtp_security == RQ_ROUTE_PLAIN            ? "none"
                    : r->smtp_security == RQ_ROUTE_STARTTLS_TRY     ? "starttls when offered"
                                                                    : "starttls";
  snprintf(out, cap, "%s (%s:%d, %s%s%s)", r->name, r->host, r->port, sec, r->user ? ", user " : ", no login",
           r->user ? r->user : "");
}

/* Prints the outcome; returns the exit status (0 only when every
 * recipient was accepted and the message was taken). */
static int report_outcome(const struct outcome *out, const char *const *rcpts, size_t n) {
  struct rq_class cls;
  if (out->is_http) {
    if (out->curl_code == 0 && out->http_status >= 200 && out->http_status < 300) {
      printf("  Mailgun: %ld %s%s%s\n", out->http_status, out->message, out->provider_id[0] ? " id " : "",
             out->provider_id);
      printf("Result: sent (%.2f s)\n", out->seconds);
      return CLI_OK;
    }
    if (out->http_status == 0) {
      rq_curl_classify(out->curl_code, out->curl_error, RQ_STAGE_CONNECT, &cls);
      printf("Result: failed: %s (%s)\n", cls.detail, out->curl_error);
      return cli_fail(CLI_FAIL, "the test message was not sent: %s", cls.detail);
    }
    rq_classify_http(out->http_status, out->message, strlen(out->message), "", relayq_now_ms(), &cls);
    printf("  Mailgun: %ld %s\nResult: failed: %s\n", out->http_status, out->message, cls.detail);
    return cli_fail(CLI_FAIL, "the test message was not sent: HTTP %ld %s", out->http_status, out->message);
  }
  for (size_t i = 0; i < n && i < out->n_rcpts && out->stage >= RQ_STAGE_RCPT; i++) {
    const struct rq_rcpt_reply *r = &out->rcpts[i];
    if (r->code == 0) printf("  RCPT %s: no answer\n", rcpts[i]);
    else printf("  RCPT %s: %d%s%s %s\n", rcpts[i], r->code, r->enhanced[0] ? " " : "", r->enhanced, r->text);
  }
  if (out->data_code != 0)
    printf("  DATA: %d%s%s %s\n", out->code, out->enhanced[0] ? " " : "", out->enhanced, out->reply);
  int all = out->accepted == (int)n;
  if (out->curl_code == 0 && all) {
    printf("Result: sent (%.2f s)\n", out->seconds);
    return CLI_OK;
  }
  if (out->curl_code == 0 && out->accepted > 0) {
    printf("Result: partial: %d of %zu recipients accepted (%.2f s)\n", out->accepted, n, out->seconds);
    return cli_fail(CLI_FAIL, "the test message reached %d of %zu recipients.", out->accepted, n);
  }
  cls = out->smtp_failure;
  char code[40] = "";
  if (out->code) snprintf(code, sizeof code, "%d%s%s ", out->code, out->enhanced[0] ? " " : "", out->enhanced);
  printf("Result: failed at %s: %s%s (%s: %s)\n", rq_stage_name((enum rq_smtp_stage)out->stage), code,
         out->code ? out->reply : out->curl_error, rq_errcat_name(cls.error), cls.detail);
  return cli_fail(CLI_FAIL, "the test message was not sent: %s%s (%s)", code, out->code ? out->reply : out->curl_error,
                  rq_errcat_name(cls.error));
}

static int cmd_test(struct topts *o, struct cli_ctx *ctx) {
  char *bearer = NULL, *rotated = NULL;
  struct stored s = {0};
  struct rq_tenant *t = NULL;
  struct rq_config cfg;
  struct rq_buf msg;
  char err[512], id[40], job_id[64], mid[600], subject[300], text[1200], route_desc[700];
  char *to_addrs[MAX_TO] = {0};
  char env_addrs[MAX_TO][RQ_ADDR_MAX + 1];
  const char *rcpts[MAX_TO];
  int rc = CLI_USAGE, cfg_loaded = 0;
  rq_buf_init(&msg);
  if (o->n_to == 0) return cli_fail(CLI_USAGE, "'relayq tenant test' needs --to ADDR.");
  for (int i = 0; i < o->n_to; i++) {
    if (rq_addr_envelope(o->to[i], env_addrs[i], sizeof env_addrs[i]) != 0)
      return cli_fail(CLI_USAGE, "--to '%.80s' is not a valid address.", o->to[i]);
    rcpts[i] = env_addrs[i];
    to_addrs[i] = (char *)o->to[i];
  }
  /* The worker's settings from the environment (RELAYQ_MODE,
   * RELAYQ_PLATFORM_SMTP, RELAYQ_PLATFORM_FROM, RELAYQ_SECRET_KEY, ...). */
  char *cfg_argv[] = {"relayq", NULL};
  if (rq_config_load(&cfg, 1, cfg_argv) != 0) return CLI_USAGE;
  cfg_loaded = 1;
  if (o->ca_file != NULL) {
    free(cfg.ca_file);
    cfg.ca_file = rq_xstrdup(o->ca_file);
  }
  /* The boundary of --mode/--allow-private-nets, as the workers hold it. */
  cfg.mode = o->netpolicy.enforce ? RQ_MODE_SAAS : RQ_MODE_ONPREM;
  cfg.netpolicy = o->netpolicy;
  rc = CLI_FAIL;
  struct relayq_client *c = cli_client(ctx);
  if (c == NULL) goto out;
  if (load_stored(c, o->tenant, &s) != 0) goto out;
  if (parse_stored(o->tenant, &s, cfg.have_secret_key ? cfg.secret_key : NULL, &t, err, sizeof err) != 0) {
    rc = cli_fail(CLI_FAIL, "tenant '%s' cannot send: %s", o->tenant, err);
    goto out;
  }
  relayq_id_new(id);
  snprintf(job_id, sizeof job_id, "tenant-test-%s", id);
  snprintf(subject, sizeof subject, "%s", o->subject ? o->subject : "relayq test message");
  snprintf(text, sizeof text,
           "This is a test message from `relayq tenant test` for tenant %s.\n"
           "If you can read it, the tenant's sending route works.\n\nTest id: %s\n",
           o->tenant, job_id);
  struct relayq_job j = {
      .v = RELAYQ_JOB_VERSION,
      .id = job_id,
      .tenant = (char *)o->tenant,
      .to = {to_addrs, (size_t)o->n_to},
      .subject = subject,
      .text = text,
      .route = (char *)o->route,
  };
  struct relayq_error jerr;
  if (relayq_job_validate(&j, &jerr) != 0) {
    rc = cli_fail(CLI_USAGE, "%s", jerr.message);
    goto out;
  }
  struct rq_route_settings rs;
  if (rq_settings_route(&cfg, &rs, err, sizeof err) != 0) {
    rc = cli_fail(CLI_USAGE, "RELAYQ_PLATFORM_SMTP: %s.", err);
    goto out;
  }
  struct rq_route route;
  const char *category = NULL;
  int r = rq_route_resolve(&rs, t, &j, &route, &category, err, sizeof err);
  if (r > 0 && route.gateway == RQ_GW_PLATFORM && !rs.platform.configured) {
    rc = cli_fail(CLI_FAIL, "tenant '%s' sends through the platform gateway, and RELAYQ_PLATFORM_SMTP is not set: "
                            "set it to the platform's smtp:// URL (as the workers have it) to test that route.",
                  o->tenant);
    goto out;
  }
  if (r != 0) {
    rc = cli_fail(CLI_FAIL, "not sent (%s): %s", category ? category : "policy", err);
    goto out;
  }
  struct rq_sender snd;
  if (build_test_message(&rs, t, &j, &route, &snd, &msg, mid, sizeof mid, err, sizeof err) != 0) {
    rc = cli_fail(CLI_FAIL, "cannot build the test message: %s", err);
    goto out;
  }
  describe_route(&route, route_desc, sizeof route_desc);
  printf("Sending a test message for tenant %s through %s\n", o->tenant, route_desc);
  printf("  From %s, envelope sender %s, Message-ID %s\n", snd.from_addr,
         snd.envelope_from[0] ? snd.envelope_from : "<>", mid);
  fflush(stdout);
  struct outcome out = {0};
  long timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : (long)cfg.smtp_timeout_ms;
  if (route.smtp_conf && route.smtp_conf->xoauth2) {
    /* A token as a worker would get it; a rotated refresh token is saved. */
    struct rq_probe_report rep;
    struct rq_probe_stage st;
    if (cli_oauth_token(route.smtp_conf, cfg.ca_file, timeout_ms, route.netpolicy, &bearer, &rotated, &st, &rep) != 0) {
      rc = cli_fail(CLI_FAIL, "not sent: %s.", rep.error);
      goto out;
    }
    if (rotated && save_rotated(c, o, cfg.have_secret_key ? cfg.secret_key : NULL, rotated) != 0) goto out;
  }
  if (send_now(&cfg, &route, snd.envelope_from, rcpts, (size_t)o->n_to, &msg, timeout_ms, bearer, &out) != 0)
    goto out;
  rc = report_outcome(&out, rcpts, (size_t)o->n_to);
out:
  if (bearer) {
    OPENSSL_cleanse(bearer, strlen(bearer));
    free(bearer);
  }
  if (rotated) {
    OPENSSL_cleanse(rotated, strlen(rotated));
    free(rotated);
  }
  rq_buf_free(&msg);
  rq_tenant_free(t);
  stored_free(&s);
  if (cfg_loaded) rq_config_free(&cfg);
  return rc;
}

/* ---- del --------------------------------------------------------------------------------------------------- */

/* EXEC of a MULTI opened under WATCH: 0 done, 1 the WATCH fired, -1
 * failed (printed). */
static int exec_watched(struct relayq_client *c) {
  const char *exec[] = {"EXEC"};
  redisReply *r = command(c, 1, exec);
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
  char *list = routes_with(old_list, o->route, 0);
  int rc = CLI_FAIL;
  const char *exists[] = {"EXISTS", rkey};
  redisReply *r = command(c, 2, exists);
  if (r == NULL) goto out;
  int had = r->type == REDIS_REPLY_INTEGER && r->integer > 0;
  freeReplyObject(r);
  if (!had && (old_list == NULL || strcmp(list, old_list) == 0)) {
    cli_fail(CLI_FAIL, "tenant '%s' has no route '%s'; nothing deleted.", o->tenant, o->route);
    goto out;
  }
  const char *multi[] = {"MULTI"}, *del[] = {"DEL", rkey};
  const char *set[] = {"HSET", key, "routes", list}, *hdel[] = {"HDEL", key, "routes"};
  if (simple(c, 1, multi) != 0 || simple(c, 2, del) != 0) goto out;
  if (old_list != NULL && (list[0] ? simple(c, 4, set) : simple(c, 3, hdel)) != 0) goto out;
  int x = exec_watched(c);
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

/* Every key matching pattern (SCAN, bounded). Returns 0 or -1 (printed);
 * *keys (caller frees each and the array) grows by *n. */
static int scan_keys(struct relayq_client *c, const char *pattern, char ***keys, size_t *n) {
  char cursor[32] = "0";
  for (int round = 0; round < SCAN_ROUNDS; round++) {
    const char *scan[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "500"};
    redisReply *r = command(c, 6, scan);
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
  return cli_fail(-1, "too many keys match %s; nothing deleted.", pattern);
}

/* `del`: the tenant hash and every route hash, including ones `routes` no
 * longer names (found with SCAN; tenant ids hold no glob characters). */
static int del_tenant(const struct topts *o, struct relayq_client *c, const char *key, const struct kvs *hash) {
  char pattern[720];
  char **keys = NULL;
  size_t n_keys = 0;
  int rc = CLI_FAIL;
  route_key(c, o->tenant, "*", pattern, sizeof pattern);
  if (scan_keys(c, pattern, &keys, &n_keys) != 0) goto out;
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
  if (simple(c, 1, multi) != 0 || simple(c, 2, del) != 0) goto out;
  for (size_t i = 0; i < n_keys; i++) {
    const char *d[] = {"DEL", keys[i]};
    if (simple(c, 2, d) != 0) goto out;
  }
  int x = exec_watched(c);
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

static int cmd_del(struct topts *o, struct cli_ctx *ctx) {
  char key[512];
  struct kvs hash = {0};
  int rc = CLI_FAIL;
  struct relayq_client *c = cli_client(ctx);
  if (c == NULL) return CLI_FAIL;
  tenant_key(c, o->tenant, key, sizeof key);
  const char *watch[] = {"WATCH", key};
  if (simple(c, 2, watch) == 0 && hgetall(c, key, &hash) == 0)
    rc = o->route ? del_route(o, c, key, &hash) : del_tenant(o, c, key, &hash);
  kvs_free(&hash);
  const char *unwatch[] = {"UNWATCH"};
  redisReply *r = redisCommandArgv(relayq_client_redis(c), 1, unwatch, NULL);
  if (r) freeReplyObject(r);
  return rc;
}

/* ---- dispatch ------------------------------------------------------------------------------------------------ */

int cmd_tenant(int argc, char **argv, struct cli_ctx *ctx) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
    if (argc < 2) {
      usage(stderr);
      return CLI_USAGE;
    }
    usage(stdout);
    return CLI_OK;
  }
  if (!strcmp(argv[1], "pause") || !strcmp(argv[1], "resume")) return cmd_tenant_pause(argc, argv, ctx);
  if (strcmp(argv[1], "trust") == 0) return cmd_tenant_trust(argc - 1, argv + 1, ctx);
  if (strcmp(argv[1], "reseal") == 0) return cmd_tenant_reseal(argc - 1, argv + 1, ctx);
  if (strcmp(argv[1], "verify-domain") == 0) return cmd_tenant_verify_domain(argc - 1, argv + 1, ctx);
  static const struct {
    const char *name;
    int (*fn)(struct topts *, struct cli_ctx *);
  } subs[] = {{"set", cmd_set}, {"get", cmd_get}, {"verify", cmd_verify}, {"test", cmd_test}, {"del", cmd_del}};
  for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
    if (strcmp(argv[1], subs[i].name) != 0) continue;
    struct topts o;
    int p = parse_opts(argc - 1, argv + 1, ctx, &o);
    if (p != 0) return p > 0 ? CLI_OK : CLI_USAGE;
    if (cli_netpolicy(ctx, &o.netpolicy) != 0) return CLI_USAGE;
    if (strlen(ctx->prefix) > 200) return cli_fail(CLI_USAGE, "--prefix is longer than 200 characters.");
    if (strcmp(o.sub, "set") != 0 && o.npos > 0)
      return cli_fail(CLI_USAGE, "unexpected argument '%.60s' (see 'relayq tenant --help').", o.pos[0]);
    /* The probes and the test send use libcurl's easy and multi APIs. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return cli_fail(CLI_FAIL, "libcurl failed to start.");
    rq_log_init(RQ_LOG_TEXT, RQ_LOG_ERROR, "relayq");
    int rc = subs[i].fn(&o, ctx);
    curl_global_cleanup();
    return rc;
  }
  return cli_fail(CLI_USAGE, "unknown tenant command '%.40s': set, get, verify, test or del (see 'relayq tenant "
                             "--help').",
                  argv[1]);
}
