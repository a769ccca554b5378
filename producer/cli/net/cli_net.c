/* cli_net: the table of the commands that talk to mail servers
 * (cli_net.h). Those that may use libcurl (the Mailgun probe, the OAuth
 * token request, the test send) start it around the command. */
#include "cli_net.h"

#include <curl/curl.h>

#include "cli.h"
#include "tenant_probe.h"

static int curl_start(void) {
  if (curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK) return 0;
  return cli_fail(-1, "libcurl failed to start.");
}

static int verify(struct topts *o, struct cli_ctx *ctx) {
  if (curl_start() != 0) return CLI_FAIL;
  int rc = cmd_tenant_verify(o, ctx);
  curl_global_cleanup();
  return rc;
}

static int test(struct topts *o, struct cli_ctx *ctx) {
  if (curl_start() != 0) return CLI_FAIL;
  int rc = cmd_tenant_test(o, ctx);
  curl_global_cleanup();
  return rc;
}

static int set_verify(const struct topts *o, const struct kvs *merged, const unsigned char *key,
                      const char *tenant_from, int *json_open, char **rotated) {
  if (curl_start() != 0) return CLI_FAIL;
  int rc = tenant_set_verify(o, merged, key, tenant_from, json_open, rotated);
  curl_global_cleanup();
  return rc;
}

const struct cli_net cli_net_commands = {
    .tenant_verify = verify,
    .tenant_test = test,
    .server_key = cli_server_key,
    .tenant_set_verify = set_verify,
};
