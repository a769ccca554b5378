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
 * the route settings, the tenant and the job; they are
 * valid while those are (a job holds its tenant entry).
 */
#ifndef RQ_ROUTE_H
#define RQ_ROUTE_H

#include <relayq/relayq.h>

#include "tenant.h"

/* The platform gateway, from --platform-smtp (rq_settings_route parses
 * it). */
struct rq_platform {
  int configured;
  int implicit_tls; /* smtps:// */
  char host[256];
  int port;
  char user[256];
  char password[256];
};

/* What routing takes from the worker's settings (worker/config/settings.h
 * fills it from the flags and environment). Strings are borrowed. */
struct rq_route_settings {
  int saas;                  /* --mode saas: refuse port 25 and servers without AUTH */
  const char *platform_from; /* the platform's sender address */
  int platform_tls_verify;
  int platform_max_recipients, smtp_max_recipients, mailgun_max_recipients;
  struct rq_platform platform;
};

/* How an SMTP route uses TLS; the transport's enum rq_smtp_security
 * names the same four ways (rq_settings_smtp_target converts). */
enum rq_route_security {
  RQ_ROUTE_STARTTLS_TRY,      /* STARTTLS when offered (the platform's smtp://) */
  RQ_ROUTE_STARTTLS_REQUIRED, /* tenants' starttls: never plain text */
  RQ_ROUTE_IMPLICIT_TLS,      /* smtps://, security tls */
  RQ_ROUTE_PLAIN,             /* security none */
};

struct rq_route {
  const char *name; /* platform, smtp, mailgun, or a route name */
  int gateway;      /* enum rq_gateway */
  const char *host;
  int port;
  enum rq_route_security smtp_security;
  const char *user;
  const char *password;
  int tls_verify;
  const char *ca_file;
  int max_connections;
  int max_recipients;
  char conn_key[300];
  /* mailgun */
  const char *mg_base_url, *mg_domain, *mg_key;
};

/* Resolves the route. Returns 0; -1 for a permanent refusal (*error is
 * the status error category, err a sentence); 1 for a temporary one (this
 * worker cannot serve it now, e.g. no platform gateway configured). */
int rq_route_resolve(const struct rq_route_settings *s, const struct rq_tenant *t, const struct relayq_job *j,
                     struct rq_route *out, const char **error, char *err, size_t errlen);

struct rq_sender {
  char from_addr[RELAYQ_MAX_ADDRESS_LEN + 1];     /* header From address */
  const char *from_name;                          /* header display name or NULL */
  const char *reply_to;                           /* header Reply-To or NULL */
  char envelope_from[RELAYQ_MAX_ADDRESS_LEN + 1]; /* MAIL FROM */
};

void rq_route_sender(const struct rq_route_settings *s, const struct rq_tenant *t, const struct relayq_job *j,
                     const struct rq_route *r, struct rq_sender *out);

/* The domain part of an address ("platform.example" for "a@platform.example"). */
const char *rq_route_domain_of(const char *addr);

#endif
