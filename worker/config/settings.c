/* settings: the worker's settings as the parts take them (see settings.h). */
#include "settings.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

static void copy_part(CURLU *u, CURLUPart part, char *dst, size_t cap, int decode) {
  char *v = NULL;
  dst[0] = '\0';
  if (curl_url_get(u, part, &v, decode ? CURLU_URLDECODE : 0) == CURLUE_OK && v) {
    snprintf(dst, cap, "%s", v);
    curl_free(v);
  }
}

static int platform_parse(const char *url, struct rq_platform *p, char *err, size_t errlen) {
  memset(p, 0, sizeof *p);
  if (!url || !*url) return 0;
  CURLU *u = curl_url();
  if (!u) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  int rc = -1;
  char scheme[16], port[16];
  if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK) {
    snprintf(err, errlen, "--platform-smtp is not a valid URL (expected smtp://user:pass@host:port)");
    goto out;
  }
  copy_part(u, CURLUPART_SCHEME, scheme, sizeof scheme, 0);
  copy_part(u, CURLUPART_HOST, p->host, sizeof p->host, 0);
  copy_part(u, CURLUPART_PORT, port, sizeof port, 0);
  copy_part(u, CURLUPART_USER, p->user, sizeof p->user, 1);
  copy_part(u, CURLUPART_PASSWORD, p->password, sizeof p->password, 1);
  if (strcasecmp(scheme, "smtp") && strcasecmp(scheme, "smtps") && strcasecmp(scheme, "smtp+insecure")) {
    snprintf(err, errlen, "--platform-smtp must use smtp://, smtps:// or smtp+insecure://, not %s://", scheme);
    goto out;
  }
  if (!p->host[0]) {
    snprintf(err, errlen, "--platform-smtp has no host");
    goto out;
  }
  p->implicit_tls = !strcasecmp(scheme, "smtps");
  p->insecure = !strcasecmp(scheme, "smtp+insecure");
  p->port = port[0] ? atoi(port) : (p->implicit_tls ? 465 : 25);
  p->configured = 1;
  rc = 0;
out:
  curl_url_cleanup(u);
  return rc;
}

int rq_settings_route(const struct rq_config *cfg, struct rq_route_settings *s, char *err, size_t errlen) {
  memset(s, 0, sizeof *s);
  s->saas = cfg->mode == RQ_MODE_SAAS;
  s->netpolicy = &cfg->netpolicy;
  s->platform_from = cfg->platform_from;
  s->platform_tls_verify = cfg->platform_tls_verify;
  s->platform_max_recipients = cfg->platform_max_recipients;
  s->smtp_max_recipients = cfg->smtp_max_recipients;
  s->mailgun_max_recipients = cfg->mailgun_max_recipients;
  return platform_parse(cfg->platform_smtp, &s->platform, err, errlen);
}

static enum rq_smtp_security smtp_security(enum rq_route_security s) {
  switch (s) {
  case RQ_ROUTE_STARTTLS_TRY: return RQ_SMTP_STARTTLS_TRY;
  case RQ_ROUTE_STARTTLS_TRY_INSECURE: return RQ_SMTP_STARTTLS_TRY_INSECURE;
  case RQ_ROUTE_STARTTLS_REQUIRED: return RQ_SMTP_STARTTLS_REQUIRED;
  case RQ_ROUTE_IMPLICIT_TLS: return RQ_SMTP_IMPLICIT_TLS;
  case RQ_ROUTE_PLAIN: return RQ_SMTP_PLAIN;
  }
  return RQ_SMTP_STARTTLS_REQUIRED;
}

void rq_settings_smtp_target(const struct rq_config *cfg, const struct rq_route *r, struct rq_smtp_target *t) {
  memset(t, 0, sizeof *t);
  t->host = r->host;
  t->port = r->port;
  t->security = smtp_security(r->smtp_security);
  t->user = r->user;
  t->password = r->password;
  t->xoauth2 = r->smtp_conf && r->smtp_conf->xoauth2; /* the password is then the job's access token */
  t->tls_verify = r->tls_verify;
  t->ca_file = cfg->ca_file;
  t->key = r->conn_key;
  t->max_connections = r->max_connections;
  t->connect_timeout_ms = cfg->smtp_connect_timeout_ms;
  t->response_timeout_ms = cfg->smtp_reply_timeout_ms;
  t->timeout_ms = cfg->smtp_timeout_ms;
  t->netpolicy = r->netpolicy;
  t->require_auth = r->require_auth;
  t->tls_pin = r->tls_pin;
}
