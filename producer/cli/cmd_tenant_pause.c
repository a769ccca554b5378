/*
 * cmd_tenant_pause: `relayq tenant pause TENANT [--for SECONDS] [--reason
 * TEXT]` and `relayq tenant resume TENANT` (CONTRACT.md, v1.1).
 *
 * An operator's hold on one tenant, kept in P:thold:TENANT (a hash:
 * reason, since, until in ms, 0 = until resumed; with --for it also
 * expires then). Every worker's FETCH leaves a paused tenant's backlog in
 * its Redis list; a job a worker already holds waits as `deferred`, error
 * `policy`, with the reason in its detail. Nothing is lost or failed, and
 * `resume` (deleting the key) takes effect at the next fetch of every
 * worker, within a few seconds. Other tenants are not touched.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "cli.h"
#include "keys.h"

#define REASON_MAX 200

static int usage(FILE *f, int code) {
  fputs("usage: relayq tenant pause TENANT [--for SECONDS] [--reason TEXT]\n"
        "       relayq tenant resume TENANT\n"
        "\n"
        "pause: holds every job of TENANT: workers stop sending them, and a job\n"
        "they already took waits as 'deferred' (error policy, the reason in its\n"
        "detail). Nothing is lost or failed. --for ends the pause by itself after\n"
        "SECONDS; --reason (at most 200 characters) is shown in the jobs' detail.\n"
        "resume: lifts the pause; workers send again within a few seconds.\n",
        f);
  return code;
}

static int valid_reason(const char *s) {
  if (strlen(s) > REASON_MAX) return 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p < 0x20 || *p == 0x7f) return 0;
  return 1;
}

static int run(redisContext *rc, const char *prefix, int pause, const char *tenant, long long for_s,
               const char *reason) {
  char key[400];
  relayq__key(key, sizeof key, prefix, RELAYQ__KEY_THOLD, tenant, NULL);
  redisReply *r;
  if (!pause) {
    r = redisCommand(rc, "DEL %s", key);
    if (!r || r->type == REDIS_REPLY_ERROR) {
      int code = cli_fail(CLI_FAIL, "could not resume %s: %s", tenant, r ? r->str : rc->errstr);
      if (r) freeReplyObject(r);
      return code;
    }
    printf("%s: %s\n", tenant, r->integer ? "resumed; workers send its jobs again within a few seconds"
                                          : "was not paused");
    freeReplyObject(r);
    return CLI_OK;
  }
  long long now = relayq_now_ms();
  long long until = for_s > 0 ? now + for_s * 1000 : 0;
  char now_s[24], until_s[24], px[24];
  snprintf(now_s, sizeof now_s, "%lld", now);
  snprintf(until_s, sizeof until_s, "%lld", until);
  snprintf(px, sizeof px, "%lld", for_s * 1000);
  /* One transaction: the old hold's fields go, so a pause without --for
   * does not inherit an earlier expiry. */
  redisAppendCommand(rc, "MULTI");
  redisAppendCommand(rc, "DEL %s", key);
  redisAppendCommand(rc, "HSET %s reason %s since %s until %s", key, reason, now_s, until_s);
  if (for_s > 0) redisAppendCommand(rc, "PEXPIRE %s %s", key, px);
  redisAppendCommand(rc, "EXEC");
  int n = for_s > 0 ? 5 : 4, failed = 0;
  char why[300] = "";
  for (int i = 0; i < n; i++) {
    if (redisGetReply(rc, (void **)&r) != REDIS_OK) {
      snprintf(why, sizeof why, "%s", rc->errstr);
      failed = 1;
      break;
    }
    if (r->type == REDIS_REPLY_ERROR || (i == n - 1 && r->type != REDIS_REPLY_ARRAY)) {
      snprintf(why, sizeof why, "%s", r->type == REDIS_REPLY_ERROR ? r->str : "the transaction was not run");
      failed = 1;
    }
    freeReplyObject(r);
  }
  if (failed) return cli_fail(CLI_FAIL, "could not pause %s: %s", tenant, why);
  if (for_s > 0) {
    char when[40] = "";
    time_t t = (time_t)(until / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
    printf("%s: paused for %lld s (until %s)\n", tenant, for_s, when);
  }
  else printf("%s: paused until 'relayq tenant resume %s'\n", tenant, tenant);
  return CLI_OK;
}

int cmd_tenant_pause(int argc, char **argv, struct cli_ctx *ctx) {
  enum { O_FOR = CLI_OPT_FIRST_FREE, O_REASON };
  static const struct option longopts[] = {
      CLI_GLOBAL_LONGOPTS, {"for", required_argument, NULL, O_FOR}, {"reason", required_argument, NULL, O_REASON},
      {NULL, 0, NULL, 0}};
  /* argv[0] is "tenant", argv[1] "pause" or "resume". */
  int pause = strcmp(argv[1], "pause") == 0;
  long long for_s = 0;
  const char *reason = "";
  int opt;
  optind = 0;
  opterr = 0;
  while ((opt = getopt_long(argc - 1, argv + 1, ":h", longopts, NULL)) != -1) {
    if (cli_global_opt(opt, optarg, ctx)) continue;
    switch (opt) {
    case 'h': return usage(stdout, CLI_OK);
    case O_FOR:
      if (!pause) return cli_fail(CLI_USAGE, "resume takes no --for.");
      if (cli_parse_int(optarg, 1, 366LL * 24 * 3600, &for_s))
        return cli_fail(CLI_USAGE, "--for takes a number of seconds from 1 to 31622400, not '%.40s'.", optarg);
      break;
    case O_REASON:
      if (!pause) return cli_fail(CLI_USAGE, "resume takes no --reason.");
      if (!valid_reason(optarg))
        return cli_fail(CLI_USAGE, "--reason must be at most %d characters without control characters.",
                        REASON_MAX);
      reason = optarg;
      break;
    default: return cli_bad_option(pause ? "tenant pause" : "tenant resume", opt, argv + 1);
    }
  }
  if (argc - 1 - optind != 1)
    return cli_fail(CLI_USAGE, "tenant %s needs exactly one tenant id: relayq tenant %s (see --help).",
                    pause ? "pause" : "resume", pause ? "pause TENANT [--for SECONDS] [--reason TEXT]" : "resume TENANT");
  const char *tenant = argv[1 + optind];
  if (!relayq_valid_tenant(tenant))
    return cli_fail(CLI_USAGE, "'%.140s' is not a tenant id (1-128 characters of A-Z a-z 0-9 . _ @ -, no ':').",
                    tenant);
  if (strlen(ctx->prefix) > 200) return cli_fail(CLI_USAGE, "--prefix is longer than 200 characters.");
  struct relayq_client *c = cli_client(ctx);
  if (!c) return CLI_FAIL;
  return run(relayq_client_redis(c), relayq_client_prefix(c), pause, tenant, for_s, reason);
}
