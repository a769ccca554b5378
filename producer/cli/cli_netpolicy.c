/*
 * cli_netpolicy: the saas network boundary for the CLI's commands that
 * connect (`tenant set`'s verification, `tenant verify`, `tenant test`,
 * `tenant trust`), from --mode and --allow-private-nets, so they never
 * connect where a worker in the same mode would not. The checks
 * themselves are the worker's (worker/mail/netpolicy.c).
 */
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "cli.h"
#include "netpolicy.h"
#include "tenant.h"

int cli_netpolicy(const struct cli_ctx *ctx, struct rq_netpolicy *out) {
  const char *mode = ctx->mode ? ctx->mode : "saas";
  int saas = strcmp(mode, "saas") == 0;
  if (!saas && strcmp(mode, "onprem") != 0)
    return cli_fail(CLI_USAGE, "--mode must be saas or onprem, not '%.40s'.", mode);
  char err[200];
  rq_netpolicy_init(out, saas);
  if (rq_netpolicy_allow(out, ctx->allow_nets, err, sizeof err) != 0)
    return cli_fail(CLI_USAGE, "--allow-private-nets: %s.", err);
  return 0;
}

/* Resolves host now and judges every address: 0 when one may be reached
 * (for plain http: one inside an allowed network), 1 when none may, -1
 * when the name does not resolve (the verification says why). */
static int resolved_refused(const struct rq_netpolicy *p, const char *host, int plain_http) {
  char name[256];
  size_t n = strlen(host);
  if (n >= 2 && host[0] == '[' && host[n - 1] == ']') host++, n -= 2;
  if (n == 0 || n >= sizeof name) return -1;
  memcpy(name, host, n);
  name[n] = '\0';
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(name, NULL, &hints, &res) != 0 || res == NULL) return -1;
  int any_ok = 0;
  for (struct addrinfo *ai = res; ai && !any_ok; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    any_ok = rq_netpolicy_check_addr(p, ai->ai_addr) == 0 &&
             (!plain_http || rq_netpolicy_allowed_net(p, ai->ai_addr));
  }
  freeaddrinfo(res);
  return any_ok ? 0 : 1;
}

int cli_saas_smtp_refusal(const struct rq_netpolicy *p, const struct rq_smtp_conf *c, char *why, size_t cap) {
  char w[300];
  if (!p || !p->enforce || c->host == NULL) return 0;
  if (c->port == 25) {
    snprintf(why, cap, "smtp_port 25 is refused for tenant servers: use the submission port 587 (starttls) or "
                       "465 (tls) with smtp_user and smtp_password");
    return 1;
  }
  if (rq_netpolicy_check_host(p, c->host, w, sizeof w) != 0) {
    snprintf(why, cap, "smtp_host: %s", w);
    return 1;
  }
  if (resolved_refused(p, c->host, 0) == 1) {
    snprintf(why, cap, "smtp_host %.100s resolves only to addresses closed to tenants (loopback, private, "
                       "link-local, reserved); the operator may open a network with --allow-private-nets",
             c->host);
    return 1;
  }
  return 0;
}

/* The host of scheme://[userinfo@]host[:port][/...] ("[v6]" keeps its
 * brackets) into host, and whether the scheme is https. Returns 0, or -1
 * when url has no such shape (the tenant model judges the syntax; these
 * URLs passed it). */
static int url_host(const char *url, char *host, size_t cap, int *https) {
  const char *sep = strstr(url, "://");
  if (sep == NULL || sep == url) return -1;
  *https = (size_t)(sep - url) == 5 && strncasecmp(url, "https", 5) == 0;
  const char *a = sep + 3, *end = a + strcspn(a, "/?#");
  for (const char *at = a; at < end; at++)
    if (*at == '@') a = at + 1;
  const char *h_end = end;
  if (*a == '[') {
    const char *close = memchr(a, ']', (size_t)(end - a));
    if (close == NULL) return -1;
    h_end = close + 1;
  } else {
    const char *colon = memchr(a, ':', (size_t)(end - a));
    if (colon != NULL) h_end = colon;
  }
  size_t n = (size_t)(h_end - a);
  if (n == 0 || n >= cap) return -1;
  memcpy(host, a, n);
  host[n] = '\0';
  return 0;
}

int cli_saas_url_refusal(const struct rq_netpolicy *p, const char *field, const char *url, char *why, size_t cap) {
  char w[300], host[256];
  int https = 0;
  if (!p || !p->enforce || url == NULL || url_host(url, host, sizeof host, &https) != 0) return 0;
  int plain = !https;
  if (rq_netpolicy_check_host(p, host, w, sizeof w) != 0) {
    snprintf(why, cap, "%s: %s", field, w);
    return 1;
  }
  if (resolved_refused(p, host, plain) == 1 || (plain && resolved_refused(p, host, plain) != 0)) {
    if (plain)
      snprintf(why, cap, "%s must be https:// (plain http:// only towards a network opened with "
                         "--allow-private-nets)", field);
    else
      snprintf(why, cap, "%s's host resolves only to addresses closed to tenants (loopback, private, "
                         "link-local, reserved)", field);
    return 1;
  }
  return 0;
}
