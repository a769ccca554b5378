/*
 * route: where a job goes and as whom (pure logic, no I/O).
 *
 *   - the route: the job's named route, else the tenant's gateway
 *     (platform, smtp, mailgun); the --mode saas policy (no tenant server
 *     on port 25 or without AUTH);
 *   - the recipient cap per transaction (tenant max_recipients or
 *     bulk_max_recipients, else the worker's default for that gateway);
 *   - the sender identity: From, display name, Reply-To and the envelope
 *     sender, including the DMARC rule on the platform gateway: a From
 *     is used as is only when its domain is one of the tenant's
 *     verified_domains or a subdomain of one (v1's domain_verified=1
 *     stands for the domain of dkim_domain, else of from_email); else the
 *     mail goes From the platform sender, with the tenant's name and
 *     Reply-To the tenant's address. At the platform sender's own domain
 *     only the platform sender itself is ever a From. The same rule
 *     rewrites the From field of a raw message (raw_from.h).
 *
 * Ownership: struct rq_route and struct rq_sender only borrow strings from
 * the route settings, the tenant and the job; they are valid while those
 * are (a job holds its tenant entry).
 */
#ifndef RQ_ROUTE_H
#define RQ_ROUTE_H

#include <relayq/relayq.h>

#include "tenant.h"
#include "util.h"

struct rq_netpolicy;

/* The platform gateway, from --platform-smtp (rq_settings_route parses
 * it). */
struct rq_platform {
  int configured;
  int implicit_tls; /* smtps:// */
  int insecure;     /* smtp+insecure://: its login may go in clear text */
  char host[256];
  int port;
  char user[256];
  char password[256];
};

/* What routing takes from the worker's settings (worker/config/settings.h
 * fills it from the flags and environment). Pointers are borrowed. */
struct rq_route_settings {
  int saas;                  /* --mode saas: port 25 and servers without AUTH refused */
  const struct rq_netpolicy *netpolicy; /* saas: the network boundary (netpolicy.h) */
  const char *platform_from; /* the platform's sender address */
  int platform_tls_verify;
  int platform_max_recipients, smtp_max_recipients, mailgun_max_recipients;
  struct rq_platform platform;
};

/* How an SMTP route uses TLS; the transport's enum rq_smtp_security
 * names the same ways (rq_settings_smtp_target converts). */
enum rq_route_security {
  RQ_ROUTE_STARTTLS_TRY,          /* STARTTLS when offered (the platform's smtp://) */
  RQ_ROUTE_STARTTLS_TRY_INSECURE, /* the same, and a login may go in clear (smtp+insecure://) */
  RQ_ROUTE_STARTTLS_REQUIRED,     /* tenants' starttls: never plain text */
  RQ_ROUTE_IMPLICIT_TLS,          /* smtps://, security tls */
  RQ_ROUTE_PLAIN,                 /* security none */
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
  /* saas only: the network boundary (the settings', borrowed) and "must log in";
   * NULL / 0 for the platform gateway and in onprem mode. */
  const struct rq_netpolicy *netpolicy;
  int require_auth;
  const char *tls_pin; /* smtp_tls_pin or NULL */
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

/* 1 when the platform gateway may send From addr for tenant t (NULL: a
 * tenant without a hash, nothing verified). */
int rq_route_vouched(const struct rq_route_settings *s, const struct rq_tenant *t, const char *addr);

/* For a raw job on the platform gateway: when the From field of msg (the
 * CRLF-normalised message) is not vouched for, replaces msg with a copy
 * whose From is the platform sender (display name the job's or tenant's
 * from_name, else the original address) and whose Reply-To is the job's
 * or tenant's reply_to, else the original address, unless msg has one.
 * Returns 1 when rewritten, 0 when msg is sent as given. */
int rq_route_raw_from(const struct rq_route_settings *s, const struct rq_tenant *t, const struct relayq_job *j,
                      const struct rq_route *r, struct rq_buf *msg);

/* The domain part of an address ("platform.example" for "a@platform.example"). */
const char *rq_route_domain_of(const char *addr);

#endif
