/*
 * tenant: the tenant configuration model of CONTRACT.md ("Tenant hash
 * P:tenant:TENANT"), parsed and validated in one place for the worker
 * (its cache of HGETALL P:tenant:T) and the CLI (`relayq tenant set/get`).
 *
 * What this module owns:
 *   - the field names of a tenant hash and of a route hash
 *     (P:tenant:T:route:NAME: smtp_*, oauth_* and rate_limits);
 *   - validation of every value (gateway, security, region, ports,
 *     integers, host names, addresses, URLs) and the defaults: explicit
 *     field > provider preset > port from security (465 tls, 587
 *     starttls, 25 none); Mailgun base URL explicit > region > US;
 *   - opening sealed secrets (enc:v1:, and enc:v2: with the hash's place,
 *     see relayq_secret_open_for) and the
 *     RELAYQ_REQUIRE_ENCRYPTED rule;
 *   - the provider preset table (presets.c, documented in docs/presets.md).
 *
 * Pure: no I/O, no globals written; reentrant. Host syntax follows RFC 1123
 * section 2.1 (labels of letters, digits and hyphens) with IPv6 literals in
 * brackets (RFC 3986 section 3.2.2).
 *
 * librelayq's house API (producer/lib/CMakeLists.txt): for the worker and
 * the CLI, linked statically; not installed, not exported from the .so.
 * Errors are sentences that name the field and never quote a secret value.
 */
#ifndef RELAYQ_TENANT_H
#define RELAYQ_TENANT_H

#include <stddef.h>

#include "ratelimit.h"

enum rq_gateway { RQ_GW_PLATFORM, RQ_GW_SMTP, RQ_GW_MAILGUN };
enum rq_security { RQ_SEC_STARTTLS, RQ_SEC_TLS, RQ_SEC_NONE };

/* Defaults the contract fixes. */
#define RQ_TENANT_DEFAULT_MAX_CONNECTIONS 2
#define RQ_MAILGUN_US_URL "https://api.mailgun.net"
#define RQ_MAILGUN_EU_URL "https://api.eu.mailgun.net"

/* Limits this module applies (docs/presets.md lists them). */
#define RQ_TENANT_MAX_FIELDS 256      /* field/value pairs in one hash */
#define RQ_TENANT_MAX_ROUTES 32       /* names in `routes` */
#define RQ_TENANT_MAX_VALUE 1024      /* most values, bytes */
#define RQ_TENANT_MAX_LONG_VALUE 65536 /* signatures and PEM keys, bytes */
#define RQ_TENANT_MAX_CONNECTIONS 100 /* smtp_max_connections upper bound */
#define RQ_TENANT_MAX_PINS 8          /* pins in smtp_tls_pin */
#define RQ_TENANT_MAX_DOMAINS 32      /* names in verified_domains */

/* rq_tenant_parse / rq_tenant_parse_route: an enc:v2: secret that does not
 * open for this hash and field (sealed for another tenant, route or field,
 * or with another key). A worker ends the job's attempt with `auth`. */
#define RQ_TENANT_ESEALED (-2)

/* v1.1 OAuth2 for SASL XOAUTH2 (smtp_auth=xoauth2): the provider's token
 * endpoint and the app's credentials. Strings owned like rq_smtp_conf's;
 * client_secret and refresh_token are opened plaintext, wiped on free. */
enum rq_oauth_grant { RQ_GRANT_REFRESH_TOKEN, RQ_GRANT_CLIENT_CREDENTIALS };
struct rq_oauth_conf {
  char *token_url;     /* explicit, else the preset's */
  char *client_id;
  char *client_secret; /* plaintext; NULL for a public client */
  char *refresh_token; /* plaintext; NULL with client_credentials */
  char *scope;         /* explicit, else the preset's for the grant */
  enum rq_oauth_grant grant;
};

/*
 * One SMTP server. Every string is malloc'd and owned by the struct that
 * holds it (freed by rq_tenant_free); NULL when absent. `password` is the
 * opened plaintext: rq_tenant_free wipes it.
 */
struct rq_smtp_conf {
  char *host;          /* host name, IPv4, or [IPv6]; NULL: not set */
  int port;            /* 1-65535 once resolved; 0 when host is NULL */
  enum rq_security security;
  char *user;          /* NULL: no AUTH */
  char *password;      /* plaintext */
  int tls_verify;      /* 1 (default) or 0 */
  int max_connections; /* default RQ_TENANT_DEFAULT_MAX_CONNECTIONS */
  char *preset;        /* canonical preset name, or NULL */
  char *tls_pin;       /* smtp_tls_pin: "sha256//BASE64[,...]" as given, or NULL */
  int xoauth2;         /* smtp_auth=xoauth2: `oauth` is complete and checked */
  struct rq_oauth_conf oauth;
  struct rq_rates rates; /* rate_limits, explicit else the preset's (n 0: none) */
  /* A route only (rq_tenant_route_unusable): why its hash cannot be used,
   * or NULL; unusable_auth 1 when a secret was sealed for another place. */
  char *unusable;
  int unusable_auth;
};

/*
 * One tenant. Owns all its memory (caller frees with rq_tenant_free); it
 * never points into the field/value arrays it was parsed from, so a
 * hiredis reply can be freed right after rq_tenant_parse returns.
 * Secrets (smtp.password, mailgun_api_key, dkim_private_key, and each
 * route's password) are plaintext here and wiped on free.
 */
struct rq_tenant {
  char *id;
  enum rq_gateway gateway;
  struct rq_smtp_conf smtp;
  char *mailgun_domain, *mailgun_api_key, *mailgun_region;
  /* Always set: explicit > region eu RQ_MAILGUN_EU_URL > RQ_MAILGUN_US_URL;
   * scheme://host[:port] without a trailing slash. */
  char *mailgun_base_url;
  char *from_email, *from_name, *reply_to;
  int domain_verified;
  /* verified_domains, lower case, plus what v1's domain_verified=1 stands
   * for (the domain of dkim_domain, else of from_email). */
  char **verified_domains;
  size_t n_verified_domains;
  char *signature_text, *signature_html, *logo_url;
  long hourly_quota;                      /* 0: no limit */
  int max_recipients, bulk_max_recipients; /* 0: the worker's default */
  char *dkim_domain, *dkim_selector, *dkim_private_key;
  /* From `routes`: n_routes names, and as many route configs, zeroed by
   * rq_tenant_parse and filled by rq_tenant_parse_route(); a route whose
   * hash was never parsed has host == NULL. */
  char **route_names;
  size_t n_routes;
  struct rq_smtp_conf *routes;
};

/*
 * Parses the field/value pairs of a tenant hash (as HGETALL returns them;
 * the arrays are only read). An empty value counts as absent.
 *   secret_key        32 bytes, or NULL when RELAYQ_SECRET_KEY is unset.
 *   require_encrypted 1: a plaintext secret is an error naming the field.
 *   strict            1 (the CLI): unknown or repeated fields are errors,
 *                     with a "did you mean" suggestion; 0 (the worker):
 *                     unknown fields are ignored, the last repeat wins.
 * Returns 0 with *out set (caller frees with rq_tenant_free), or -1 (or
 * RQ_TENANT_ESEALED) with a sentence in err (when errlen > 0) and *out NULL.
 * Secrets open with the place "tenant:TENANT_ID" (enc:v2:).
 */
int rq_tenant_parse(const char *tenant_id, const char *const *fields,
                    const char *const *values, size_t n,
                    const unsigned char *secret_key, int require_encrypted,
                    int strict, struct rq_tenant **out, char *err,
                    size_t errlen);

/*
 * Parses route hash P:tenant:T:route:NAME into t->routes[i] where
 * t->route_names[i] is route_name. Reads only smtp_*, oauth_* and
 * rate_limits fields (others are
 * ignored); smtp_host or smtp_preset is required; preset and port
 * defaults apply as for the tenant. Returns 0, or -1 with err (unknown
 * route name, invalid value); on error t->routes[i] is left empty.
 */
int rq_tenant_parse_route(struct rq_tenant *t, const char *route_name,
                          const char *const *fields, const char *const *values,
                          size_t n, const unsigned char *secret_key,
                          int require_encrypted, char *err, size_t errlen);

/*
 * Marks route route_name of t unusable with the sentence why (copied): the
 * worker's answer to a route hash that is missing, unreadable or invalid,
 * or holds a secret that does not open. Only a job that names that route
 * fails (with why; `auth` when auth is 1, else `policy`): one bad route
 * never stops the tenant's other jobs. Returns 0, or -1 when t lists no
 * such route.
 */
int rq_tenant_route_unusable(struct rq_tenant *t, const char *route_name, const char *why, int auth);

/* 1 when domain is one of t's verified domains or a subdomain of one
 * (case-insensitive). */
int rq_tenant_domain_verified(const struct rq_tenant *t, const char *domain);

/* Frees t and everything it owns, wiping secrets. NULL is fine. */
void rq_tenant_free(struct rq_tenant *t);

/* 1 for smtp_password, mailgun_api_key, dkim_private_key,
 * oauth_client_secret, oauth_refresh_token. */
int rq_tenant_field_is_secret(const char *field);
/* 1 for every field the contract names (tenant and route hashes). */
int rq_tenant_field_known(const char *field);
/* NULL-terminated list of every known field, static. */
const char *const *rq_tenant_fields(void);

/* Static names: "platform", "starttls", ... */
const char *rq_gateway_name(enum rq_gateway g);
const char *rq_security_name(enum rq_security s);

/* ---- provider presets (presets.c) ---------------------------------------- */

/* One documented provider submission endpoint; static, never freed. */
struct rq_preset {
  const char *name;   /* canonical, lower case */
  const char *host;
  int port;
  enum rq_security security;
  const char *source; /* URL of the page that documents it */
};

/* v1.1: what a preset adds beyond the endpoint (presets.c): the OAuth2
 * token endpoint, the scope for delegated consent (refresh_token) and for
 * app-only access (client_credentials), the provider's sending limits in
 * rate_limits syntax and the page that documents them. Static. */
struct rq_preset_extra {
  const char *name;
  const char *oauth_token_url;
  const char *oauth_scope;
  const char *oauth_scope_app; /* NULL: the provider has no app-only SMTP */
  const char *rate_limits;
  const char *limits_source;
};
/* The extra of a canonical preset name, or NULL. */
const struct rq_preset_extra *rq_preset_extra(const char *canonical);

/* Case-insensitive lookup by name or alias (outlook = office365); also
 * "ses:REGION" for "ses-REGION". NULL when unknown. */
const struct rq_preset *rq_preset_find(const char *name);
/* The whole table (canonical entries only); *n gets its length. */
const struct rq_preset *rq_presets(size_t *n);
/* The canonical name an alias stands for, or NULL; for `relayq` help. */
const char *rq_preset_alias_target(const char *alias);

#endif
