/*
 * The CLI core (producer/cli, target relayq_cli) on its own: this test
 * links it without its net part, so it builds only while the core calls
 * nothing of the transports, and a command that talks to mail servers
 * then says it is not in this build (cli_net.h), before touching Redis.
 */
#include "check.h"
#include "cli.h"

int main(void) {
  struct cli_ctx ctx = {.redis_url = "redis://127.0.0.1:1", .prefix = "relayq", .mode = "saas"};
  char *verify[] = {"tenant", "verify", "acme", NULL};
  CHECK_INT(cmd_tenant(3, verify, &ctx), ==, CLI_USAGE);
  char *test[] = {"tenant", "test", "acme", "--to", "a@b.example", NULL};
  CHECK_INT(cmd_tenant(5, test, &ctx), ==, CLI_USAGE);
  char *trust[] = {"tenant", "trust", "acme", NULL};
  CHECK_INT(cmd_tenant(3, trust, &ctx), ==, CLI_USAGE);
  CHECK(ctx.client == NULL); /* none of them connected */
  return CHECK_DONE();
}
