/*
 * cli: what every `relayq` subcommand shares (CONTRACT.md "Command-line
 * client").
 *
 * Adding a subcommand X: write producer/cli/cmd_X.c defining
 *     int cmd_X(int argc, char **argv, struct cli_ctx *ctx);
 * declare it below and give it a line in main.c's command table. A
 * command that talks to mail servers goes in producer/cli/net instead,
 * reached through cli_net.h (the core does not link the transports).
 *
 * A subcommand gets argv[0] = its own name and the arguments after it;
 * getopt_long is reset for it (optind = 0), and it includes
 * CLI_GLOBAL_LONGOPTS in its option table so --redis and --prefix may come
 * after the subcommand too. It returns the process exit status:
 * CLI_OK, CLI_FAIL, CLI_USAGE (bad arguments), or its own documented codes.
 * Every error is one line on stderr, "relayq: ...", printed with cli_fail().
 */
#ifndef RELAYQ_CLI_H
#define RELAYQ_CLI_H

#include <getopt.h>
#include <stddef.h>
#include <stdio.h>

#include "relayq/relayq.h"

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2, CLI_TIMEOUT = 3 };

#define CLI_DEFAULT_URL "redis://127.0.0.1:6379"

/* Shared state of one invocation. Owns client (closed by main). */
struct cli_ctx {
  const char *redis_url; /* --redis, else RELAYQ_REDIS_URL, else the default */
  const char *prefix;    /* --prefix, else RELAYQ_PREFIX, else "relayq" */
  struct relayq_client *client; /* NULL until cli_client() connects */
  const char *mode;       /* --mode, else RELAYQ_MODE, else "saas" (as the workers) */
  const char *allow_nets; /* --allow-private-nets, else RELAYQ_ALLOW_PRIVATE_NETS; NULL: none */
  struct relayq_tls_options tls; /* --redis-ca-file/-cert/-key; NULL fields: the RELAYQ_REDIS_* variables */
  /* `tenant verify-domain`: the tenant `dns check` runs for; its one line
   * on failure then says the domain was not verified for it. NULL: plain
   * `dns check`. */
  const char *verify_for;
  /* The commands that talk to mail servers (cli_net.h), set by main.c;
   * NULL: not in this build. Borrowed. */
  const struct cli_net *net;
};

/* Long-option values for the global options; subcommands use their own
 * values below 0x100 (single characters) or from CLI_OPT_FIRST_FREE up. */
enum {
  CLI_OPT_REDIS = 0x100,
  CLI_OPT_PREFIX,
  CLI_OPT_VERSION,
  CLI_OPT_MODE,
  CLI_OPT_ALLOW_NETS,
  CLI_OPT_REDIS_CA_FILE,
  CLI_OPT_REDIS_CERT,
  CLI_OPT_REDIS_KEY,
  CLI_OPT_FIRST_FREE = 0x200
};

#define CLI_GLOBAL_LONGOPTS                                                  \
  {"redis", required_argument, NULL, CLI_OPT_REDIS},                         \
      {"prefix", required_argument, NULL, CLI_OPT_PREFIX},                   \
      {"mode", required_argument, NULL, CLI_OPT_MODE},                       \
      {"allow-private-nets", required_argument, NULL, CLI_OPT_ALLOW_NETS},   \
      {"redis-ca-file", required_argument, NULL, CLI_OPT_REDIS_CA_FILE},     \
      {"redis-cert", required_argument, NULL, CLI_OPT_REDIS_CERT},           \
      {"redis-key", required_argument, NULL, CLI_OPT_REDIS_KEY},             \
      {"help", no_argument, NULL, 'h'}

/* Applies --redis/--prefix/--mode/--allow-private-nets/--redis-ca-file/
 * --redis-cert/--redis-key. Returns 1 when opt was one of them. */
int cli_global_opt(int opt, const char *arg, struct cli_ctx *ctx);

/* Prints the usual line for getopt's '?' and ':' results (call with
 * opterr = 0 and an optstring starting with ':'); returns CLI_USAGE. */
int cli_bad_option(const char *cmd, int opt, char **argv);

/* The connected client, connecting on first use. On failure prints the
 * reason (never the password) and returns NULL; return CLI_FAIL then. */
struct relayq_client *cli_client(struct cli_ctx *ctx);

/* Prints "relayq: <message>" on stderr and returns code. */
int cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reads a whole file (at most max bytes) into a malloc'd, NUL-terminated
 * buffer; *len excludes the NUL. Prints the error and returns CLI_FAIL
 * when it cannot (missing, unreadable, too large). */
int cli_read_file(const char *path, size_t max, unsigned char **out, size_t *len);

/* Parses a whole decimal integer in [lo, hi]. Returns 0 or -1. */
int cli_parse_int(const char *s, long long lo, long long hi, long long *out);

/* RELAYQ_MAX_JOB_BYTES (the limit the worker applies too), else
 * RELAYQ_DEFAULT_MAX_JOB_BYTES. */
size_t cli_max_job_bytes(void);

/* Writes s as a JSON string (quotes included) to f: escapes quotes,
 * backslashes and control characters, and replaces bytes that are not
 * UTF-8 with U+FFFD so the output is always valid JSON. */
void cli_json_string(FILE *f, const char *s);

/* A text table whose columns are as wide as their widest cell (UTF-8
 * continuation bytes take no column). Set ncol (at most CLI_TABLE_MAX_COLS)
 * and align (one char per column: 'r' right-aligned, else left) in the
 * initialiser; the table owns the cells it copies. */
#define CLI_TABLE_MAX_COLS 12
struct cli_table {
  size_t ncol;
  const char *align;
  char **cells; /* row-major, ncol per row */
  size_t nrows, cap;
};

/* Adds a row of ncol `const char *` cells; NULL shows as "-", and control
 * characters (from Redis, say) as '?' so a row stays one line. Aborts on
 * out of memory, like the worker's rq_xmalloc. */
void cli_table_row(struct cli_table *t, ...);

/* Prints the rows, each line starting with indent, and empties the table
 * (it may be reused with the same ncol). */
void cli_table_print(struct cli_table *t, FILE *f, const char *indent);

struct rq_netpolicy;
/* The network boundary the workers hold (CONTRACT.md --mode,
 * --allow-private-nets), from ctx: enforcing in saas mode. Returns 0, or
 * CLI_USAGE after printing why (a bad mode or CIDR). cli_netpolicy.c. */
int cli_netpolicy(const struct cli_ctx *ctx, struct rq_netpolicy *out);

/* What a saas worker refuses, judged before saving (`tenant set`, with or
 * without --no-verify): 1 with a sentence in why, or 0. A tenant SMTP
 * server on port 25, a numeric-shorthand host, a host (literal, or every
 * address its name resolves to now) in a network closed to tenants; for a
 * URL (mailgun_base_url), also http:// outside an allowed network. */
struct rq_smtp_conf;
int cli_saas_smtp_refusal(const struct rq_netpolicy *p, const struct rq_smtp_conf *c, char *why, size_t cap);
int cli_saas_url_refusal(const struct rq_netpolicy *p, const char *field, const char *url, char *why, size_t cap);

/* Subcommands. */
int cmd_send(int argc, char **argv, struct cli_ctx *ctx);
int cmd_status(int argc, char **argv, struct cli_ctx *ctx);
int cmd_tenant(int argc, char **argv, struct cli_ctx *ctx);
/* `tenant pause` and `tenant resume` (argv[1]); cmd_tenant_pause.c. */
int cmd_tenant_pause(int argc, char **argv, struct cli_ctx *ctx);
int cmd_tenant_trust(int argc, char **argv, struct cli_ctx *ctx);         /* tenant trust */
int cmd_tenant_reseal(int argc, char **argv, struct cli_ctx *ctx);        /* tenant reseal */
int cmd_tenant_verify_domain(int argc, char **argv, struct cli_ctx *ctx); /* tenant verify-domain */
int cmd_queue(int argc, char **argv, struct cli_ctx *ctx);
int cmd_dead(int argc, char **argv, struct cli_ctx *ctx);
int cmd_dns(int argc, char **argv, struct cli_ctx *ctx);
int cmd_dnsbl(int argc, char **argv, struct cli_ctx *ctx);
int cmd_web(int argc, char **argv, struct cli_ctx *ctx);

#endif
