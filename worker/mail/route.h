/*
 * route: where a job goes and as whom (pure logic, no I/O).
 *
 *   - the route: the job's named route, else the tenant's gateway
 *     (platform, smtp, mailgun); the --mode saas policy (no tenant server
 *     on port 25 or without AUTH);
 *   - the recipient cap per transaction (tenant max_recipients or
 *     bulk_max_recipients, else the worker's default for that gateway);
 *   - the sender identity: From, display name, Reply-To and the envelope
 *     sender, including the DMARC rule for tenants whose domain is not
 *     verified on the platform gateway (From the platform sender, the
 *     tenant's name, Reply-To the tenant's address). domain_verified
 *     covers the domain of the tenant's from_email and its dkim_domain,
 *     with their subdomains; a job From any other domain is treated as
 *     unverified.
 *
 * Ownership: struct rq_route and struct rq_sender only borrow strings from
 * the config, the parsed platform URL, the tenant and the job; they are
 * valid while those are (a job holds its tenant entry).
 */
#ifndef RQ_ROUTE_H
#define RQ_ROUTE_H

#include <relayq/relayq.h>

#include "config.h"
#include "tenant.h"

struct rq_smtp_target;

/* The platform gateway, parsed once from --platform-smtp with curl's URL
 * parser. */
struct rq_platform {
  int configured;
  int implicit_tls; /* smtps:// */
  char host[256];
  int port;
  char user[256];
  char password[256];
};

int rq_route_platform_parse(const char *url, struct rq_platform *p, char *err, size_t errlen);

struct rq_route {
  const char *name; /* platform, smtp, mailgun, or a route name */
  int gateway;      /* enum rq_gateway */
  const char *host;
  int port;
  int smtp_security; /* enum rq_smtp_security (smtp.h) */
  const char *user;
  const char *password;
  int tls_verify;
  const char *ca_file;
  int max_connections;
  int max_recipients;
  char conn_key[300];
  /* v1.1: the SMTP conf the route came from (smtp_auth/oauth_*,
   * rate_limits), NULL for platform and mailgun; named: a route of
   * `routes` (P:tenant:T:route:NAME) rather than the tenant's own. */
  const struct rq_smtp_conf *smtp_conf;
  int named;
  /* mailgun */
  const char *mg_base_url, *mg_domain, *mg_key;
};

/* Resolves the route. Returns 0; -1 for a permanent refusal (*error is
 * the status error category, err a sentence); 1 for a temporary one (this
 * worker cannot serve it now, e.g. no platform gateway configured). */
int rq_route_resolve(const struct rq_config *cfg, const struct rq_platform *platform, const struct rq_tenant *t,
                     const struct relayq_job *j, struct rq_route *out, const char **error, char *err,
                     size_t errlen);

struct rq_sender {
  char from_addr[RELAYQ_MAX_ADDRESS_LEN + 1];     /* header From address */
  const char *from_name;                          /* header display name or NULL */
  const char *reply_to;                           /* header Reply-To or NULL */
  char envelope_from[RELAYQ_MAX_ADDRESS_LEN + 1]; /* MAIL FROM */
};

void rq_route_sender(const struct rq_config *cfg, const struct rq_tenant *t, const struct relayq_job *j,
                     const struct rq_route *r, struct rq_sender *out);

/* The transport target for an SMTP route (strings borrowed from r/cfg). */
void rq_route_smtp_target(const struct rq_route *r, const struct rq_config *cfg, struct rq_smtp_target *t);

/* The domain part of an address ("platform.example" for "a@platform.example"). */
const char *rq_route_domain_of(const char *addr);

#endif
