/*
 * relayq: the command-line client (CONTRACT.md "Command-line client").
 * main.c only reads the global options, hands the core the commands that
 * talk to mail servers (cli_net.h: the CLI's net part, which this binary
 * links) and dispatches to a subcommand; each subcommand lives in its own
 * cmd_X.c.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <signal.h>

#include "cli.h"
#include "cli_net.h"

typedef int (*cmd_fn)(int argc, char **argv, struct cli_ctx *ctx);

struct command {
  const char *name;
  cmd_fn fn;
  const char *summary;
};

static const struct command commands[] = {
    {"send", cmd_send, "enqueue one message and print its id"},
    {"status", cmd_status, "show a job's delivery status"},
    {"tenant", cmd_tenant, "set, get, verify, test or delete a tenant's sending setup"},
    {"queue", cmd_queue, "queue depths, delayed, in-flight and dead jobs, live workers"},
    {"dead", cmd_dead, "list or requeue dead-lettered jobs"},
    {"dns", cmd_dns, "check a domain's SPF, DKIM and DMARC records"},
    {"dnsbl", cmd_dnsbl, "check whether an IP address is on a blocklist"},
    {"web", cmd_web, "the operator console in a browser (queues, tenants, jobs, dead letters)"},
};
#define N_COMMANDS (sizeof commands / sizeof *commands)

static void usage(FILE *f) {
  fprintf(f,
          "usage: relayq [--redis URL] [--prefix P] COMMAND [ARGS...]\n"
          "\n"
          "Global options (also accepted after COMMAND):\n"
          "  --redis URL   redis://[[user]:password@]host[:port][/db]; rediss://\n"
          "                (TLS); redis+sentinel://HOST:PORT[,HOST:PORT]/MASTER[/db]\n"
          "                (env RELAYQ_REDIS_URL; default %s)\n"
          "  --redis-ca-file F  CA (PEM) for rediss:// (env RELAYQ_REDIS_CA_FILE)\n"
          "  --redis-cert F, --redis-key F  client certificate for rediss://\n"
          "                (env RELAYQ_REDIS_CERT, RELAYQ_REDIS_KEY)\n"
          "  --prefix P    key prefix (env RELAYQ_PREFIX; default %s)\n"
          "  --mode saas|onprem  the workers' mode: in saas, tenant set/verify/test\n"
          "                refuse what a saas worker refuses (env RELAYQ_MODE; default saas)\n"
          "  --allow-private-nets CIDR[,CIDR]  networks saas tenants may reach\n"
          "                (env RELAYQ_ALLOW_PRIVATE_NETS; default none)\n"
          "  -h, --help    this help; 'relayq COMMAND --help' for a command's\n"
          "  --version     print the version\n"
          "\n"
          "Commands:\n",
          CLI_DEFAULT_URL, RELAYQ_DEFAULT_PREFIX);
  for (size_t i = 0; i < N_COMMANDS; i++)
    fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
}

static const struct command *find(const char *name) {
  for (size_t i = 0; i < N_COMMANDS; i++)
    if (strcmp(commands[i].name, name) == 0) return &commands[i];
  return NULL;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN); /* a server closing mid-write is an error to report, not a kill */
  struct cli_ctx ctx = {.net = &cli_net_commands};
  ctx.redis_url = getenv("RELAYQ_REDIS_URL");
  if (ctx.redis_url == NULL || ctx.redis_url[0] == '\0') ctx.redis_url = CLI_DEFAULT_URL;
  ctx.prefix = getenv("RELAYQ_PREFIX");
  if (ctx.prefix == NULL || ctx.prefix[0] == '\0') ctx.prefix = RELAYQ_DEFAULT_PREFIX;
  ctx.mode = getenv("RELAYQ_MODE");
  if (ctx.mode == NULL || ctx.mode[0] == '\0') ctx.mode = "saas";
  ctx.allow_nets = getenv("RELAYQ_ALLOW_PRIVATE_NETS");

  static const struct option opts[] = {
      CLI_GLOBAL_LONGOPTS,
      {"version", no_argument, NULL, CLI_OPT_VERSION},
      {NULL, 0, NULL, 0},
  };
  int help = 0, opt;
  opterr = 0;
  /* '+': stop at the first non-option, the command name. */
  while ((opt = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
    if (cli_global_opt(opt, optarg, &ctx)) continue;
    switch (opt) {
    case 'h': help = 1; break;
    case CLI_OPT_VERSION: printf("relayq %s\n", RELAYQ_VERSION); return CLI_OK;
    default: return cli_bad_option(NULL, opt, argv);
    }
  }
  if (optind >= argc) {
    if (help) {
      usage(stdout);
      return CLI_OK;
    }
    return cli_fail(CLI_USAGE, "no command given (see 'relayq --help').");
  }
  const char *name = argv[optind];
  const struct command *cmd = find(name);
  if (cmd == NULL)
    return cli_fail(CLI_USAGE, "unknown command '%s' (see 'relayq --help').", name);

  int sub_argc = argc - optind;
  char **sub_argv = argv + optind;
  char *help_argv[] = {argv[optind], "--help", NULL};
  if (help) sub_argc = 2, sub_argv = help_argv; /* relayq --help send */
  optind = 0; /* GNU getopt: start afresh for the subcommand */
  int rc = cmd->fn(sub_argc, sub_argv, &ctx);
  relayq_close(ctx.client);
  fflush(stdout);
  if (ferror(stdout) && rc == CLI_OK) return cli_fail(CLI_FAIL, "cannot write the output.");
  return rc;
}
