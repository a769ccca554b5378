/* route: route decision, policy and sender identity (see route.h). */
#include "route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "address.h"
#include "raw_from.h"
#include "util.h"

const char *rq_route_domain_of(const char *addr) {
  const char *at = addr ? strrchr(addr, '@') : NULL;
  return at ? at + 1 : "localhost";
}

static enum rq_route_security smtp_security_of(enum rq_security s) {
  switch (s) {
  case RQ_SEC_TLS: return RQ_ROUTE_IMPLICIT_TLS;
  case RQ_SEC_NONE: return RQ_ROUTE_PLAIN;
  case RQ_SEC_STARTTLS: break;
  }
  return RQ_ROUTE_STARTTLS_REQUIRED; /* required, never opportunistic, for tenants */
}

static int tenant_cap(const struct rq_tenant *t, const struct relayq_job *j) {
  if (!t) return 0;
  if (j->kind == RELAYQ_KIND_BULK && t->bulk_max_recipients > 0) return t->bulk_max_recipients;
  return t->max_recipients;
}

static int smtp_route(const struct rq_route_settings *cfg, const struct rq_tenant *t, const struct rq_smtp_conf *c,
                      const char *name, struct rq_route *out, const char **error, char *err, size_t errlen) {
  if (c->unusable) { /* only the jobs on this route fail: the tenant's others go on */
    *error = c->unusable_auth ? "auth" : "policy";
    snprintf(err, errlen, "%s", c->unusable);
    return -1;
  }
  if (!c->host) {
    *error = "policy";
    snprintf(err, errlen, "Tenant '%s' route '%s' has no smtp_host: set smtp_host or smtp_preset.", t->id, name);
    return -1;
  }
  if (cfg->saas && (c->port == 25 || !c->user)) {
    *error = "policy";
    snprintf(err, errlen,
             "Tenant '%s' route '%s' uses %s, which workers in --mode saas refuse: use the submission port "
             "587 (starttls) or 465 (tls) with smtp_user and smtp_password, or run the worker with --mode onprem.",
             t->id, name, c->port == 25 ? "port 25" : "a server without AUTH (no smtp_user)");
    return -1;
  }
  out->name = name;
  out->gateway = RQ_GW_SMTP;
  out->smtp_conf = c;
  out->host = c->host;
  out->port = c->port;
  out->smtp_security = smtp_security_of(c->security);
  out->user = c->user;
  out->password = c->password;
  out->tls_verify = c->tls_verify;
  out->tls_pin = c->tls_pin;
  if (cfg->saas) {
    out->netpolicy = cfg->netpolicy;
    out->require_auth = 1;
  }
  out->max_connections = c->max_connections > 0 ? c->max_connections : RQ_TENANT_DEFAULT_MAX_CONNECTIONS;
  out->max_recipients = cfg->smtp_max_recipients;
  /* One limiter per tenant server and login: smtp_max_connections is the
   * tenant's promise to its provider, not shared with other tenants. */
  snprintf(out->conn_key, sizeof out->conn_key, "%s|%s|%d|%s", t->id, c->host, c->port, c->user ? c->user : "");
  return 0;
}

int rq_route_resolve(const struct rq_route_settings *cfg, const struct rq_tenant *t, const struct relayq_job *j,
                     struct rq_route *out, const char **error, char *err, size_t errlen) {
  const struct rq_platform *platform = &cfg->platform;
  memset(out, 0, sizeof *out);
  int cap = tenant_cap(t, j);
  if (j->route && *j->route) {
    for (size_t i = 0; t && i < t->n_routes; i++) {
      if (strcmp(t->route_names[i], j->route)) continue;
      if (smtp_route(cfg, t, &t->routes[i], t->route_names[i], out, error, err, errlen)) return -1;
      out->named = 1;
      if (cap > 0) out->max_recipients = cap;
      return 0;
    }
    *error = "policy";
    size_t n = (size_t)snprintf(err, errlen, "Route '%s' is not configured for tenant '%s'", j->route, j->tenant);
    if (t && t->n_routes && n < errlen) {
      n += (size_t)snprintf(err + n, errlen - n, " (its routes:");
      for (size_t i = 0; i < t->n_routes && n < errlen; i++)
        n += (size_t)snprintf(err + n, errlen - n, " %s", t->route_names[i]);
      if (n < errlen) n += (size_t)snprintf(err + n, errlen - n, ")");
    }
    if (n < errlen) snprintf(err + n, errlen - n, ": add it to the tenant's `routes` or fix the job's `route`.");
    return -1;
  }
  enum rq_gateway gw = t ? t->gateway : RQ_GW_PLATFORM;
  if (gw == RQ_GW_SMTP) {
    if (smtp_route(cfg, t, &t->smtp, "smtp", out, error, err, errlen)) return -1;
  } else if (gw == RQ_GW_MAILGUN) {
    out->name = "mailgun";
    out->gateway = RQ_GW_MAILGUN;
    out->mg_base_url = t->mailgun_base_url;
    out->mg_domain = t->mailgun_domain;
    out->mg_key = t->mailgun_api_key;
    if (cfg->saas) out->netpolicy = cfg->netpolicy;
    out->max_recipients = cfg->mailgun_max_recipients;
    snprintf(out->conn_key, sizeof out->conn_key, "mailgun|%s", t->mailgun_base_url ? t->mailgun_base_url : "");
  } else {
    if (!platform->configured) {
      *error = "connect";
      snprintf(err, errlen, "This worker has no platform gateway: start it with --platform-smtp "
                            "(RELAYQ_PLATFORM_SMTP); the job will be retried.");
      return 1;
    }
    out->name = "platform";
    out->gateway = RQ_GW_PLATFORM;
    out->host = platform->host;
    out->port = platform->port;
    out->smtp_security = platform->implicit_tls ? RQ_ROUTE_IMPLICIT_TLS
                         : platform->insecure   ? RQ_ROUTE_STARTTLS_TRY_INSECURE
                                                : RQ_ROUTE_STARTTLS_TRY;
    out->user = platform->user[0] ? platform->user : NULL;
    out->password = platform->password[0] ? platform->password : NULL;
    out->tls_verify = cfg->platform_tls_verify;
    out->max_connections = 0; /* the transport's global connection cap applies */
    out->max_recipients = cfg->platform_max_recipients;
    rq_copy(out->conn_key, sizeof out->conn_key, "platform");
  }
  if (cap > 0) out->max_recipients = cap;
  return 0;
}

/* 1 when addr is at the platform sender's domain or one of its
 * subdomains (mail.platform.example is the platform's too). */
static int platform_domain(const char *addr, const char *platform_from) {
  const char *d = rq_route_domain_of(addr), *p = rq_route_domain_of(platform_from);
  size_t ld = strlen(d), lp = strlen(p);
  if (ld < lp || strcasecmp(d + (ld - lp), p)) return 0;
  return ld == lp || d[ld - lp - 1] == '.';
}

int rq_route_vouched(const struct rq_route_settings *cfg, const struct rq_tenant *t, const char *from) {
  /* The platform's own domain (and its subdomains) is the platform's: no
   * tenant may be no-reply's neighbour (billing@, security@), verified or
   * not. */
  if (platform_domain(from, cfg->platform_from)) return !strcasecmp(from, cfg->platform_from);
  return rq_tenant_domain_verified(t, rq_route_domain_of(from));
}

void rq_route_sender(const struct rq_route_settings *cfg, const struct rq_tenant *t, const struct relayq_job *j,
                     const struct rq_route *r, struct rq_sender *out) {
  const char *from = j->from ? j->from : (t && t->from_email ? t->from_email : cfg->platform_from);
  const char *name = j->from_name ? j->from_name : (t ? t->from_name : NULL);
  const char *reply_to = j->reply_to ? j->reply_to : (t ? t->reply_to : NULL);
  memset(out, 0, sizeof *out);
  if (r->gateway == RQ_GW_PLATFORM && !rq_route_vouched(cfg, t, from)) {
    /* DMARC alignment: the platform may not claim the tenant's domain. The
     * reader still sees the tenant's name and replies reach the tenant
     * (never an address at the platform's own domain it was not given). */
    rq_copy(out->from_addr, sizeof out->from_addr, cfg->platform_from);
    out->from_name = name;
    out->reply_to = reply_to ? reply_to : (platform_domain(from, cfg->platform_from) ? NULL : from);
    rq_copy(out->envelope_from, sizeof out->envelope_from, cfg->platform_from);
    /* Without a name there is none: an address as the display name
     * ("ceo@bank.example" <no-reply@...>) is exactly the spoof this rule
     * exists to stop, since many mail clients show only the name. */
    return;
  }
  rq_copy(out->from_addr, sizeof out->from_addr, from);
  out->from_name = name;
  out->reply_to = reply_to;
  rq_copy(out->envelope_from, sizeof out->envelope_from, from);
}

int rq_route_raw_from(const struct rq_route_settings *cfg, const struct rq_tenant *t, const struct relayq_job *j,
                      const struct rq_route *r, struct rq_buf *msg) {
  if (r->gateway != RQ_GW_PLATFORM) return 0;
  char addr[RQ_ADDR_MAX + 1];
  int readable = rq_raw_from_addr(msg->data, msg->len, addr, sizeof addr, NULL);
  if (readable && rq_route_vouched(cfg, t, addr)) return 0;
  const char *name = j->from_name ? j->from_name : (t ? t->from_name : NULL);
  const char *reply_to = j->reply_to ? j->reply_to : (t ? t->reply_to : NULL);
  if (!reply_to && readable && !platform_domain(addr, cfg->platform_from)) reply_to = addr;
  /* No address becomes the display name (see rq_route_sender). */
  struct rq_buf out;
  rq_buf_init(&out);
  rq_raw_put_from(msg->data, msg->len, name, cfg->platform_from, reply_to, &out);
  rq_buf_free(msg);
  *msg = out;
  return 1;
}
