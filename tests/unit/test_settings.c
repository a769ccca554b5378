/* Unit tests for the worker's settings as the parts take them
 * (worker/config/settings.c): the platform URL, the mode, and the SMTP
 * transport's target built from a route. */
#include <string.h>

#include "check.h"
#include "settings.h"

int main(void) {
  struct rq_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.mode = RQ_MODE_SAAS;
  cfg.platform_from = "no-reply@platform.example";
  cfg.platform_max_recipients = 100, cfg.smtp_max_recipients = 50, cfg.mailgun_max_recipients = 1000;
  cfg.platform_tls_verify = 1;
  char err[512];
  struct rq_route_settings s;

  cfg.platform_smtp = "smtp://u%40x:p%24ss@gw.example:2525";
  CHECK_INT(rq_settings_route(&cfg, &s, err, sizeof err), ==, 0);
  CHECK_INT(s.platform.configured, ==, 1);
  CHECK_STR(s.platform.host, "gw.example");
  CHECK_INT(s.platform.port, ==, 2525);
  CHECK_STR(s.platform.user, "u@x");
  CHECK_STR(s.platform.password, "p$ss");
  CHECK_INT(s.platform.implicit_tls, ==, 0);
  CHECK_INT(s.saas, ==, 1);
  CHECK_STR(s.platform_from, "no-reply@platform.example");
  CHECK_INT(s.smtp_max_recipients, ==, 50);
  cfg.platform_smtp = "smtps://gw.example";
  CHECK_INT(rq_settings_route(&cfg, &s, err, sizeof err), ==, 0);
  CHECK_INT(s.platform.port, ==, 465);
  CHECK_INT(s.platform.implicit_tls, ==, 1);
  cfg.platform_smtp = "smtp+insecure://gw.example";
  CHECK_INT(rq_settings_route(&cfg, &s, err, sizeof err), ==, 0);
  CHECK_INT(s.platform.insecure, ==, 1);
  CHECK_INT(s.platform.port, ==, 25);
  CHECK(s.netpolicy == &cfg.netpolicy);
  cfg.platform_smtp = "http://gw.example";
  CHECK_INT(rq_settings_route(&cfg, &s, err, sizeof err), ==, -1);
  CHECK(strstr(err, "smtp://") != NULL);
  cfg.platform_smtp = NULL;
  cfg.mode = RQ_MODE_ONPREM;
  CHECK_INT(rq_settings_route(&cfg, &s, err, sizeof err), ==, 0);
  CHECK_INT(s.platform.configured, ==, 0);
  CHECK_INT(s.saas, ==, 0);

  /* The transport target carries the route's server and the timeouts. */
  cfg.smtp_connect_timeout_ms = 1000, cfg.smtp_reply_timeout_ms = 2000, cfg.smtp_timeout_ms = 3000;
  cfg.ca_file = "/tmp/ca.pem";
  struct rq_route r = {.name = "smtp", .host = "smtp.acme.example", .port = 587,
                       .smtp_security = RQ_ROUTE_STARTTLS_REQUIRED, .user = "u", .password = "p",
                       .tls_verify = 1, .max_connections = 2, .conn_key = "acme|smtp.acme.example|587|u",
                       .require_auth = 1, .tls_pin = "sha256//abc"};
  struct rq_smtp_target tg;
  rq_settings_smtp_target(&cfg, &r, &tg);
  CHECK_STR(tg.host, "smtp.acme.example");
  CHECK_INT(tg.port, ==, 587);
  CHECK_INT(tg.security, ==, RQ_SMTP_STARTTLS_REQUIRED);
  CHECK_STR(tg.key, "acme|smtp.acme.example|587|u");
  CHECK_STR(tg.ca_file, "/tmp/ca.pem");
  CHECK_INT(tg.connect_timeout_ms, ==, 1000);
  CHECK_INT(tg.response_timeout_ms, ==, 2000);
  CHECK_INT(tg.timeout_ms, ==, 3000);
  CHECK_INT(tg.max_connections, ==, 2);
  CHECK(tg.netpolicy == NULL);
  CHECK_STR(tg.tls_pin, "sha256//abc");
  CHECK_INT(tg.require_auth, ==, 1);
  const enum rq_route_security in[] = {RQ_ROUTE_STARTTLS_TRY, RQ_ROUTE_STARTTLS_TRY_INSECURE, RQ_ROUTE_IMPLICIT_TLS,
                                       RQ_ROUTE_PLAIN};
  const enum rq_smtp_security want[] = {RQ_SMTP_STARTTLS_TRY, RQ_SMTP_STARTTLS_TRY_INSECURE, RQ_SMTP_IMPLICIT_TLS,
                                        RQ_SMTP_PLAIN};
  for (size_t i = 0; i < 4; i++) {
    r.smtp_security = in[i];
    rq_settings_smtp_target(&cfg, &r, &tg);
    CHECK_INT(tg.security, ==, want[i]);
  }
  return CHECK_DONE();
}
