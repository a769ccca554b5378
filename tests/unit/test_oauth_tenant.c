/*
 * Unit tests for the v1.1 tenant fields of OAuth2 sign-in: smtp_auth, oauth_*,
 * rate_limits (tenant and route hashes, presets office365 and gmail),
 * enc:v2 sealing bound to its place, and the rate_limits parser.
 */
#include <string.h>

#include "check.h"
#include "ratelimit.h"
#include "relayq/relayq.h"
#include "tenant.h"

static unsigned char KEY[32];

#include "tenant_parse.h"

static void test_rates(void) {
  struct rq_rates r;
  char e[300], d[80];
  CHECK_INT(rq_rates_parse("30/m,10000/d:rcpt", &r, e, sizeof e), ==, 0);
  CHECK_INT(r.n, ==, 2);
  CHECK_INT(r.r[0].count, ==, 30);
  CHECK_INT(r.r[0].period_ms, ==, 60000);
  CHECK_INT(r.r[0].rcpt, ==, 0);
  CHECK_INT(r.r[1].count, ==, 10000);
  CHECK_INT(r.r[1].period_ms, ==, 86400000);
  CHECK_INT(r.r[1].rcpt, ==, 1);
  CHECK_STR(rq_rate_describe(&r.r[1], d, sizeof d), "10000 recipients per day");
  CHECK_STR(rq_rate_format(&r.r[1], d, sizeof d), "10000/d:rcpt");
  CHECK_INT(rq_rates_parse(" 3/s , 5/90 ,100/H:RCPT,", &r, e, sizeof e), ==, 0);
  CHECK_INT(r.n, ==, 3);
  CHECK_INT(r.r[0].period_ms, ==, 1000);
  CHECK_INT(r.r[1].period_ms, ==, 90000);
  CHECK_STR(rq_rate_describe(&r.r[1], d, sizeof d), "5 messages per 90 s");
  CHECK_INT(r.r[2].period_ms, ==, 3600000);
  CHECK_INT(r.r[2].rcpt, ==, 1);
  CHECK_INT(rq_rates_parse("", &r, e, sizeof e), ==, 0);
  CHECK_INT(r.n, ==, 0);
  CHECK_INT(rq_rates_parse("  ", &r, e, sizeof e), ==, 0);
  CHECK_INT(r.n, ==, 0);
  const char *bad[] = {"30", "0/m", "-1/m", "30/x", "30/m:msgs", "30/0", "1/2678401", "30/m,,5/s",
                       "1/s,1/s,1/s,1/s,1/s,1/s,1/s,1/s,1/s", "99999999999/m", "3 /s", NULL};
  for (int i = 0; bad[i]; i++) {
    int rc = rq_rates_parse(bad[i], &r, e, sizeof e);
    if (rc == 0) fprintf(stderr, "accepted: %s\n", bad[i]);
    CHECK_INT(rc, ==, -1);
    CHECK_INT(r.n, ==, 0);
    CHECK(strstr(e, "rate_limits") != NULL);
  }
}

static void test_xoauth2_fields(void) {
  struct rq_tenant *t = PARSE("gateway", "smtp", "smtp_preset", "office365", "smtp_user", "a@acme.example",
                              "smtp_auth", "xoauth2", "oauth_client_id", "app-1", "oauth_refresh_token", "rt-1");
  CHECK(t != NULL);
  if (t) {
    CHECK_INT(t->smtp.xoauth2, ==, 1);
    CHECK_STR(t->smtp.oauth.token_url, "https://login.microsoftonline.com/common/oauth2/v2.0/token");
    CHECK_STR(t->smtp.oauth.scope, "https://outlook.office.com/SMTP.Send offline_access");
    CHECK_STR(t->smtp.oauth.refresh_token, "rt-1");
    CHECK_INT(t->smtp.oauth.grant, ==, RQ_GRANT_REFRESH_TOKEN);
    CHECK_INT(t->smtp.rates.n, ==, 2); /* office365: 30/m,10000/d:rcpt */
    CHECK_INT(t->smtp.rates.r[0].count, ==, 30);
    CHECK_STR(t->smtp.host, "smtp.office365.com");
  }
  rq_tenant_free(t);
  /* Gmail fills its own endpoint and scope; explicit rate_limits win. */
  t = PARSE("gateway", "smtp", "smtp_preset", "gmail", "smtp_user", "a@acme.example", "smtp_auth", "XOAUTH2",
            "oauth_client_id", "cid", "oauth_client_secret", "cs", "oauth_refresh_token", "rt", "rate_limits",
            "3/s");
  CHECK(t != NULL);
  if (t) {
    CHECK_STR(t->smtp.oauth.token_url, "https://oauth2.googleapis.com/token");
    CHECK_STR(t->smtp.oauth.scope, "https://mail.google.com/");
    CHECK_INT(t->smtp.rates.n, ==, 1);
    CHECK_INT(t->smtp.rates.r[0].period_ms, ==, 1000);
  }
  rq_tenant_free(t);
  /* rate_limits=none: no limit, not the preset's. */
  t = PARSE("smtp_preset", "office365", "rate_limits", "none");
  CHECK(t != NULL && t->smtp.rates.n == 0);
  rq_tenant_free(t);
  /* client_credentials: Office 365's /common/ endpoint is not used. */
  CHECK_REJECT("your directory's own", "gateway", "smtp", "smtp_preset", "office365", "smtp_user", "a@acme.example",
         "smtp_auth", "xoauth2", "oauth_grant", "client_credentials", "oauth_client_id", "c", "oauth_client_secret",
         "s");
  t = PARSE("gateway", "smtp", "smtp_preset", "office365", "smtp_user", "a@acme.example", "smtp_auth", "xoauth2",
            "oauth_grant", "client_credentials", "oauth_client_id", "c", "oauth_client_secret", "s",
            "oauth_token_url", "https://login.microsoftonline.com/0000-1111/oauth2/v2.0/token");
  CHECK(t != NULL);
  if (t) {
    CHECK_STR(t->smtp.oauth.scope, "https://outlook.office365.com/.default");
    CHECK_INT(t->smtp.oauth.grant, ==, RQ_GRANT_CLIENT_CREDENTIALS);
  }
  rq_tenant_free(t);
  CHECK_REJECT("needs smtp_user", "gateway", "smtp", "smtp_preset", "gmail", "smtp_auth", "xoauth2");
  CHECK_REJECT("needs oauth_client_id", "gateway", "smtp", "smtp_preset", "gmail", "smtp_user", "a@b.example",
         "smtp_auth", "xoauth2", "oauth_refresh_token", "r");
  CHECK_REJECT("needs oauth_refresh_token", "gateway", "smtp", "smtp_preset", "gmail", "smtp_user", "a@b.example",
         "smtp_auth", "xoauth2", "oauth_client_id", "c");
  CHECK_REJECT("needs oauth_token_url", "gateway", "smtp", "smtp_host", "mail.example", "smtp_user", "a@b.example",
         "smtp_auth", "xoauth2", "oauth_client_id", "c", "oauth_refresh_token", "r");
  CHECK_REJECT("smtp_auth must be", "smtp_auth", "oauth");
  CHECK_REJECT("oauth_grant must be", "oauth_grant", "password");
  CHECK_REJECT("oauth_token_url must be", "oauth_token_url", "https://user:pw@idp.example/token");
  CHECK_REJECT("oauth_token_url must be", "oauth_token_url", "ftp://idp.example/token");
  CHECK_REJECT("rate_limits item", "rate_limits", "30/fortnight");
  CHECK(rq_tenant_field_is_secret("oauth_refresh_token"));
  CHECK(rq_tenant_field_is_secret("oauth_client_secret"));
  CHECK(!rq_tenant_field_is_secret("oauth_client_id"));
}

static void test_v2_secrets(void) {
  struct relayq_error e;
  char *sealed = NULL, *open = NULL;
  CHECK_INT(relayq_secret_seal_for(KEY, "tenant:acme", "oauth_refresh_token", "rt-secret", &sealed, &e), ==, 0);
  CHECK(relayq_secret_is_v2(sealed));
  CHECK_INT(relayq_secret_open_for(KEY, "tenant:acme", "oauth_refresh_token", sealed, &open, &e), ==, 0);
  CHECK_STR(open, "rt-secret");
  free(open);
  open = NULL;
  /* Another tenant, route or field does not open it. */
  CHECK_INT(relayq_secret_open_for(KEY, "tenant:evil", "oauth_refresh_token", sealed, &open, &e), ==,
            RELAYQ_ECRYPTO);
  CHECK_INT(relayq_secret_open_for(KEY, "tenant:acme", "smtp_password", sealed, &open, &e), ==, RELAYQ_ECRYPTO);
  CHECK(open == NULL);
  /* Through the tenant model: opens in its place only. */
  struct rq_tenant *t = PARSE("oauth_refresh_token", sealed);
  CHECK(t != NULL && t->smtp.oauth.refresh_token && !strcmp(t->smtp.oauth.refresh_token, "rt-secret"));
  rq_tenant_free(t);
  const char *f[] = {"oauth_refresh_token"}, *v[] = {sealed};
  t = NULL;
  CHECK_INT(rq_tenant_parse("other", f, v, 1, KEY, 0, 1, &t, err, sizeof err), ==, RQ_TENANT_ESEALED);
  CHECK(strstr(err, "sealed for another") != NULL);
  free(sealed);
}

static void test_route_fields(void) {
  struct rq_tenant *t = PARSE("routes", "m365");
  CHECK(t != NULL);
  if (!t) return;
  const char *f[] = {"smtp_preset", "smtp_user", "smtp_auth", "oauth_client_id", "oauth_refresh_token",
                     "rate_limits", "from_email"};
  const char *v[] = {"office365", "b@acme.example", "xoauth2", "c", "r", "5/s", "x@y.example"};
  CHECK_INT(rq_tenant_parse_route(t, "m365", f, v, 7, KEY, 0, err, sizeof err), ==, 0);
  CHECK_INT(t->routes[0].xoauth2, ==, 1);
  CHECK_STR(t->routes[0].oauth.refresh_token, "r");
  CHECK_INT(t->routes[0].rates.n, ==, 1);
  CHECK_INT(t->routes[0].rates.r[0].count, ==, 5);
  rq_tenant_free(t);
}

int main(void) {
  struct relayq_error e;
  CHECK_INT(relayq_secret_key_parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", KEY, &e), ==, 0);
  test_rates();
  test_xoauth2_fields();
  test_v2_secrets();
  test_route_fields();
  return CHECK_DONE();
}
