/*
 * cmd_tenant: `relayq tenant`'s options and dispatch (CONTRACT.md "Tenant
 * hash P:tenant:TENANT" and "Command-line client"; docs/tenants.md
 * documents every field, the rules and the output). Each subcommand is a
 * file of its own (cmd_tenant_*.c); what they share is tenant_cmd.h.
 *
 * Exit: 0 done (probe passed, message sent); 1 failed (Redis, probe,
 * delivery, not found); 2 bad arguments or environment.
 *
 * Secrets: plaintext secrets exist only in argv (or stdin with --stdin),
 * the parsed tenant (wiped by rq_tenant_free) and the transports; they are
 * never printed. Values read from Redis are sealed or the operator's
 * plaintext, and are shown masked.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "address.h"
#include "cli.h"
#include "cli_net.h"
#include "log.h"
#include "tenant_cmd.h"

/* ---- options ---------------------------------------------------------------------- */


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


static void usage(FILE *f) {
  fputs("usage: relayq tenant COMMAND TENANT [options]\n"
        "\n"
        "  set TENANT FIELD=VALUE ... [--route NAME] [--no-verify] [--stdin FIELD]\n"
        "        validate, fill preset and port defaults, seal secrets (RELAYQ_SECRET_KEY),\n"
        "        verify the connection, then save; FIELD= deletes FIELD\n"
        "  get TENANT [--json]\n"
        "        show the settings, secrets tenant_masked, and the routes\n"
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
        "  pause TENANT [--for SECONDS] [--reason TEXT] | resume TENANT\n"
        "        hold the tenant's jobs (they wait as deferred), or lift the hold\n"
        "\n"
        "Options:\n"
        "  --ca-file FILE   CA bundle (PEM) to verify servers with (env RELAYQ_CA_FILE)\n"
        "  --timeout S      set, verify, test: seconds for a check or a test send (default 15 / 120)\n"
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

/* A command of producer/cli/net in a build without it (cli_net.h). */
static int not_in_build(const char *sub) {
  return cli_fail(CLI_USAGE, "'relayq tenant %s' talks to mail servers and is not in this build.", sub);
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
  const struct {
    const char *name;
    int (*fn)(struct topts *, struct cli_ctx *);
  } subs[] = {{"set", cmd_tenant_set},
              {"get", cmd_tenant_get},
              {"verify", ctx->net ? ctx->net->tenant_verify : NULL},
              {"test", ctx->net ? ctx->net->tenant_test : NULL},
              {"del", cmd_tenant_del}};
  for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
    if (strcmp(argv[1], subs[i].name) != 0) continue;
    if (subs[i].fn == NULL) return not_in_build(subs[i].name);
    struct topts o;
    int p = parse_opts(argc - 1, argv + 1, ctx, &o);
    if (p != 0) return p > 0 ? CLI_OK : CLI_USAGE;
    if (cli_netpolicy(ctx, &o.netpolicy) != 0) return CLI_USAGE;
    if (strlen(ctx->prefix) > 200) return cli_fail(CLI_USAGE, "--prefix is longer than 200 characters.");
    if (strcmp(o.sub, "set") != 0 && o.npos > 0)
      return cli_fail(CLI_USAGE, "unexpected argument '%.60s' (see 'relayq tenant --help').", o.pos[0]);
    rq_log_init(RQ_LOG_TEXT, RQ_LOG_ERROR, "relayq");
    return subs[i].fn(&o, ctx);
  }
  return cli_fail(CLI_USAGE, "unknown tenant command '%.40s': set, get, verify, test or del (see 'relayq tenant "
                             "--help').",
                  argv[1]);
}
