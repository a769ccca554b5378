/* cmd_tenant_get: `relayq tenant get TENANT [--json]`: fields sorted,
 * secrets masked, routes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tenant.h"
#include "tenant_cmd.h"

/* ---- get ------------------------------------------------------------------------------------------------ */

int cmd_tenant_get(struct topts *o, struct cli_ctx *ctx) {
  struct stored s;
  struct rq_tenant *shape = NULL;
  char err[512], key[512];
  struct relayq_client *c = cli_client(ctx);
  if (c == NULL) return CLI_FAIL;
  if (tenant_load_stored(c, o->tenant, &s) != 0) {
    tenant_stored_free(&s);
    return CLI_FAIL;
  }
  if (s.hash.n == 0) {
    tenant_stored_free(&s);
    return tenant_not_found(o->tenant);
  }
  /* Would the worker accept it? Judged without opening secrets. */
  int bad = tenant_parse_shape(o->tenant, &s.hash, 0, &shape, err, sizeof err);
  rq_tenant_free(shape);
  tenant_key(c, o->tenant, key, sizeof key);
  if (o->json) {
    printf("{\"tenant\":");
    cli_json_string(stdout, o->tenant);
    printf(",\"key\":");
    cli_json_string(stdout, key);
    printf(",\"fields\":");
    tenant_json_fields(&s.hash);
    printf(",\"routes\":{");
    for (size_t i = 0; i < s.n_routes; i++) {
      if (i) putchar(',');
      cli_json_string(stdout, s.route_names[i]);
      putchar(':');
      if (s.routes[i].n) tenant_json_fields(&s.routes[i]);
      else fputs("null", stdout);
    }
    printf("},\"problem\":");
    if (bad) cli_json_string(stdout, err);
    else fputs("null", stdout);
    printf("}\n");
  } else {
    printf("tenant %s (%s)\n", o->tenant, key);
    tenant_print_fields(&s.hash, "  ");
    for (size_t i = 0; i < s.n_routes; i++) {
      printf("route %s\n", s.route_names[i]);
      if (s.routes[i].n) tenant_print_fields(&s.routes[i], "  ");
      else printf("  (missing: jobs naming this route fail; set it with --route %s)\n", s.route_names[i]);
    }
    if (bad) printf("problem: %s\n", err);
  }
  tenant_stored_free(&s);
  return CLI_OK;
}

