/*
 * cli_net: the one way the CLI core reaches the commands that talk to
 * mail servers (`tenant verify`, `tenant test`), and the server checks
 * of core commands (`tenant set`'s before it saves, `tenant trust`'s look
 * at the server's key). They live in producer/cli/net
 * (target relayq_cli_net), the only part of the CLI that links the
 * transports; the core (every other command, and the web console) may
 * not include their headers (cmake/forbid.cmake), so it calls them
 * through this table, which main.c puts in cli_ctx.net. A core without it
 * (ctx->net NULL) says such a command is not in this build.
 */
#ifndef RELAYQ_CLI_NET_H
#define RELAYQ_CLI_NET_H

struct cli_ctx;
struct kvs;
struct rq_netpolicy;
struct rq_smtp_conf;
struct topts;

/* What a server's TLS certificate shows (`tenant trust`). Plain value;
 * the texts are sanitised (the server chose them). */
struct cli_server_key {
  char pin[64];      /* sha256//BASE64 of its public key (smtp_tls_pin's form) */
  char subject[300], issuer[300], not_before[64], not_after[64];
  char msg[300];     /* why not, when the look failed */
};

struct cli_net {
  /* `tenant verify` and `tenant test`, with the parsed options (tenant_cmd.h). */
  int (*tenant_verify)(struct topts *o, struct cli_ctx *ctx);
  int (*tenant_test)(struct topts *o, struct cli_ctx *ctx);
  /* Connects to the SMTP server conf names as its security says (STARTTLS
   * or implicit TLS; never a login, never mail) inside policy, within
   * timeout_ms, and reads its certificate into *out. Returns 0, or -1
   * with out->msg. */
  int (*server_key)(const struct rq_smtp_conf *conf, const struct rq_netpolicy *policy, long timeout_ms,
                    struct cli_server_key *out);
  /* `tenant set`'s check of the merged hash, with the real secrets
   * (stored ones opened with key): prints the report; with --json it
   * opens the output object and sets *json_open. Returns CLI_OK (passed,
   * or nothing to check), CLI_FAIL or CLI_USAGE (printed). tenant_from:
   * the stored tenant's from_email, the sender of a route's --probe-rcpt
   * check. *rotated: a refresh token the provider issued meanwhile, to
   * save instead of the old one (the caller wipes and frees it). */
  int (*tenant_set_verify)(const struct topts *o, const struct kvs *merged, const unsigned char *key,
                           const char *tenant_from, int *json_open, char **rotated);
};

/* The table, defined by relayq_cli_net (net/cli_net.c). */
extern const struct cli_net cli_net_commands;

#endif
