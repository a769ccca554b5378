/*
 * Unit tests for tenant.c and presets.c: every validation rule, defaults
 * and presets, sealed secrets, RELAYQ_REQUIRE_ENCRYPTED, strict mode with
 * suggestions, and route hashes.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "check.h"
#include "relayq/relayq.h"
#include "tenant.h"

static unsigned char KEY[32];

#include "tenant_parse.h"

#define CHECK_ACCEPT(...)                                                      \
  do {                                                                         \
    struct rq_tenant *t_ = PARSE(__VA_ARGS__);                                 \
    if (t_ != NULL) check_passed_++;                                           \
    else CHECK_FAIL_("rejected: %s", err);                                     \
    rq_tenant_free(t_);                                                        \
  } while (0)

static char *seal(const char *plain) {
  char *out = NULL;
  struct relayq_error e;
  CHECK_INT(relayq_secret_seal(KEY, plain, &out, &e), ==, 0);
  return out;
}

static void test_defaults(void) {
  struct rq_tenant *t = parse_opts(KEY, 0, 1, (const char *const[]){NULL});
  CHECK(t != NULL);
  if (t == NULL) return;
  CHECK_STR(t->id, "acme");
  CHECK_INT(t->gateway, ==, RQ_GW_PLATFORM);
  CHECK(t->smtp.host == NULL);
  CHECK_INT(t->smtp.port, ==, 0);
  CHECK_INT(t->smtp.tls_verify, ==, 1);
  CHECK_INT(t->smtp.max_connections, ==, 2);
  CHECK_INT(t->smtp.security, ==, RQ_SEC_STARTTLS);
  CHECK_STR(t->mailgun_base_url, "https://api.mailgun.net");
  CHECK_INT(t->domain_verified, ==, 0);
  CHECK_INT(t->hourly_quota, ==, 0);
  CHECK_INT(t->n_routes, ==, 0);
  CHECK(t->routes == NULL);
  rq_tenant_free(t);
}

static void test_full_smtp(void) {
  struct rq_tenant *t = PARSE(
      "gateway", "smtp", "smtp_host", "mail.example.com", "smtp_port", "2525",
      "smtp_security", "none", "smtp_user", "u@example.com", "smtp_password",
      "pw", "smtp_tls_verify", "0", "smtp_max_connections", "7", "from_email",
      "billing@example.com", "from_name", "Acme Srl", "reply_to",
      "help@example.com", "domain_verified", "1", "signature_text",
      "--\nAcme\n", "signature_html", "<p>Acme</p>\r\n", "logo_url",
      "https://cdn.example.com/logo.png?v=2", "hourly_quota", "500",
      "max_recipients", "50", "bulk_max_recipients", "1000");
  CHECK(t != NULL);
  if (t == NULL) {
    fprintf(stderr, "%s\n", err);
    return;
  }
  CHECK_INT(t->gateway, ==, RQ_GW_SMTP);
  CHECK_STR(t->smtp.host, "mail.example.com");
  CHECK_INT(t->smtp.port, ==, 2525);
  CHECK_INT(t->smtp.security, ==, RQ_SEC_NONE);
  CHECK_STR(t->smtp.user, "u@example.com");
  CHECK_STR(t->smtp.password, "pw");
  CHECK_INT(t->smtp.tls_verify, ==, 0);
  CHECK_INT(t->smtp.max_connections, ==, 7);
  CHECK(t->smtp.preset == NULL);
  CHECK_STR(t->from_email, "billing@example.com");
  CHECK_STR(t->from_name, "Acme Srl");
  CHECK_STR(t->reply_to, "help@example.com");
  CHECK_INT(t->domain_verified, ==, 1);
  CHECK_STR(t->signature_text, "--\nAcme\n");
  CHECK_STR(t->logo_url, "https://cdn.example.com/logo.png?v=2");
  CHECK_INT(t->hourly_quota, ==, 500);
  CHECK_INT(t->max_recipients, ==, 50);
  CHECK_INT(t->bulk_max_recipients, ==, 1000);
  rq_tenant_free(t);
}

static int port_for(const char *security) {
  struct rq_tenant *t = PARSE("gateway", "smtp", "smtp_host", "h.example",
                              "smtp_security", security);
  int port = t ? t->smtp.port : -1;
  rq_tenant_free(t);
  return port;
}

static void test_port_defaults(void) {
  CHECK_INT(port_for("tls"), ==, 465);
  CHECK_INT(port_for("starttls"), ==, 587);
  CHECK_INT(port_for("none"), ==, 25);
  CHECK_INT(port_for("TLS"), ==, 465); /* case-insensitive */
  struct rq_tenant *t = PARSE("gateway", "smtp", "smtp_host", "h.example");
  CHECK(t != NULL && t->smtp.port == 587 && t->smtp.security == RQ_SEC_STARTTLS);
  rq_tenant_free(t);
  t = PARSE("gateway", "smtp", "smtp_host", "h.example", "smtp_security",
            "tls", "smtp_port", "10465");
  CHECK(t != NULL && t->smtp.port == 10465);
  rq_tenant_free(t);
}

static void test_presets_apply(void) {
  struct rq_tenant *t = PARSE("gateway", "smtp", "smtp_preset", "gmail");
  CHECK(t != NULL);
  if (t != NULL) {
    CHECK_STR(t->smtp.host, "smtp.gmail.com");
    CHECK_INT(t->smtp.port, ==, 587);
    CHECK_INT(t->smtp.security, ==, RQ_SEC_STARTTLS);
    CHECK_STR(t->smtp.preset, "gmail");
  }
  rq_tenant_free(t);

  t = PARSE("gateway", "smtp", "smtp_preset", "Aruba");
  CHECK(t != NULL && strcmp(t->smtp.host, "smtps.aruba.it") == 0 &&
        t->smtp.port == 465 && t->smtp.security == RQ_SEC_TLS);
  rq_tenant_free(t);

  /* Explicit security beats the preset's, and the port follows it. */
  t = PARSE("gateway", "smtp", "smtp_preset", "gmail", "smtp_security", "tls");
  CHECK(t != NULL && t->smtp.port == 465 && t->smtp.security == RQ_SEC_TLS);
  rq_tenant_free(t);
  /* Explicit host and port beat the preset's. */
  t = PARSE("gateway", "smtp", "smtp_preset", "office365", "smtp_host",
            "relay.example.com", "smtp_port", "2587");
  CHECK(t != NULL && strcmp(t->smtp.host, "relay.example.com") == 0 &&
        t->smtp.port == 2587);
  rq_tenant_free(t);
  /* Aliases and the SES region syntax. */
  t = PARSE("gateway", "smtp", "smtp_preset", "outlook");
  CHECK(t != NULL && strcmp(t->smtp.host, "smtp.office365.com") == 0 &&
        strcmp(t->smtp.preset, "office365") == 0);
  rq_tenant_free(t);
  t = PARSE("gateway", "smtp", "smtp_preset", "ses:eu-west-1");
  CHECK(t != NULL &&
        strcmp(t->smtp.host, "email-smtp.eu-west-1.amazonaws.com") == 0 &&
        t->smtp.port == 587);
  rq_tenant_free(t);

  CHECK_REJECT("smtp_preset 'gmial' is not a known provider (did you mean "
               "gmail?)",
               "gateway", "smtp", "smtp_preset", "gmial");
  CHECK_REJECT("is not a known provider;", "smtp_preset", "nothing-like-it");
}

static void test_preset_table(void) {
  size_t n = 0;
  const struct rq_preset *p = rq_presets(&n);
  CHECK(n >= 20);
  const char *required[] = {"gmail",    "office365", "outlook",  "yahoo",
                            "aruba",    "libero",    "virgilio", "tiscali",
                            "register", "ovh",       "ionos",    "zoho",
                            "sendgrid", "mailgun",   "mandrill", "ses-us-east-1",
                            "ses-eu-west-1", "SES:eu-central-1"};
  for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
    if (rq_preset_find(required[i]) != NULL) check_passed_++;
    else CHECK_FAIL_("preset %s missing", required[i]);
  }
  for (size_t i = 0; i < n; i++) {
    CHECK(p[i].host != NULL && p[i].host[0] != '\0');
    /* Submission ports only, with the security that goes with them. */
    CHECK((p[i].port == 587 && p[i].security == RQ_SEC_STARTTLS) ||
          (p[i].port == 465 && p[i].security == RQ_SEC_TLS));
    CHECK(strncmp(p[i].source, "https://", 8) == 0 ||
          strncmp(p[i].source, "http://", 7) == 0);
    CHECK(rq_preset_find(p[i].name) == &p[i]);
    for (const char *c = p[i].name; *c; c++) CHECK(!(*c >= 'A' && *c <= 'Z'));
    for (size_t j = i + 1; j < n; j++) CHECK(strcmp(p[i].name, p[j].name) != 0);
  }
  CHECK(rq_preset_find("nope") == NULL);
  CHECK(rq_preset_find("") == NULL);
  CHECK(rq_preset_find(NULL) == NULL);
  CHECK(rq_preset_find("ses:mars-north-1") == NULL);
  CHECK_STR(rq_preset_alias_target("OUTLOOK"), "office365");
}

static void test_validation(void) {
  CHECK_REJECT("gateway must be platform, smtp or mailgun", "gateway", "sms");
  CHECK_REJECT("smtp_security must be starttls, tls or none",
               "smtp_security", "ssl3");
  CHECK_REJECT("use tls", "smtp_security", "ssl");
  CHECK_REJECT("mailgun_region must be us or eu", "mailgun_region", "ap");
  CHECK_REJECT("smtp_port must be a whole number from 1 to 65535",
               "smtp_port", "0");
  CHECK_REJECT("smtp_port", "smtp_port", "65536");
  CHECK_REJECT("smtp_port", "smtp_port", "-1");
  CHECK_REJECT("smtp_port", "smtp_port", "25a");
  CHECK_REJECT("smtp_port", "smtp_port", " 25");
  CHECK_REJECT("smtp_port", "smtp_port", "99999999999999999999999");
  CHECK_REJECT("smtp_max_connections", "smtp_max_connections", "0");
  CHECK_REJECT("smtp_max_connections", "smtp_max_connections", "101");
  CHECK_REJECT("smtp_tls_verify must be 1 or 0", "smtp_tls_verify", "yes");
  CHECK_REJECT("domain_verified must be 1 or 0", "domain_verified", "true");
  CHECK_REJECT("hourly_quota", "hourly_quota", "-5");
  CHECK_REJECT("hourly_quota", "hourly_quota", "10000000000");
  CHECK_REJECT("max_recipients", "max_recipients", "10001");
  CHECK_REJECT("bulk_max_recipients", "bulk_max_recipients", "x");

  /* Hosts. */
  CHECK_ACCEPT("smtp_host", "smtp.example.com");
  CHECK_ACCEPT("smtp_host", "127.0.0.1");
  CHECK_ACCEPT("smtp_host", "[::1]");
  CHECK_ACCEPT("smtp_host", "[2001:db8::25]");
  CHECK_ACCEPT("smtp_host", "localhost");
  /* An IPv6 address bare or in brackets (CONTRACT.md), kept in brackets. */
  {
    const char *bare[][2] = {{"::1", "[::1]"}, {"2606:4700:4700::1111", "[2606:4700:4700::1111]"},
                             {"::ffff:127.0.0.1", "[::ffff:127.0.0.1]"}};
    for (size_t i = 0; i < sizeof bare / sizeof bare[0]; i++) {
      struct rq_tenant *t6 = PARSE("gateway", "smtp", "smtp_host", bare[i][0]);
      CHECK(t6 != NULL);
      if (t6) CHECK_STR(t6->smtp.host, bare[i][1]);
      rq_tenant_free(t6);
    }
  }
  CHECK_REJECT("mailgun_domain", "mailgun_domain", "2001:db8::1"); /* a domain is never an address */
  const char *bad_hosts[] = {"smtp://mail.example.com", "mail example.com",
                             "-mail.example.com", "mail-.example.com",
                             "mail..example.com", ".example.com",
                             "example.com.", "::1:", "[::1", "[zz::1]", "zz::1",
                             "mail.example.com:25", "mail\r\n.example.com",
                             "ma_il.example.com",
                             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com"};
  for (size_t i = 0; i < sizeof bad_hosts / sizeof bad_hosts[0]; i++)
    CHECK_REJECT("smtp_host is not a valid host name", "smtp_host",
                 bad_hosts[i]);
  CHECK_REJECT("needs smtp_host", "gateway", "smtp");
  CHECK_REJECT("needs smtp_host", "gateway", "smtp", "smtp_port", "25");

  /* Addresses. */
  CHECK_ACCEPT("from_email", "a@b.co", "reply_to", "x.y+z@mail.example.org");
  const char *bad_mail[] = {"no-at-sign",         "@example.com",
                            "user@",              "user@exa mple.com",
                            "user@example.com\r\nBcc: x@evil.example",
                            "Name <user@example.com>", "user@example.com,x@y.z",
                            "user@-bad.com"};
  for (size_t i = 0; i < sizeof bad_mail / sizeof bad_mail[0]; i++) {
    CHECK_REJECT("from_email is not a usable e-mail address", "from_email",
                 bad_mail[i]);
    CHECK_REJECT("reply_to is not a usable e-mail address", "reply_to",
                 bad_mail[i]);
  }

  /* Text. */
  CHECK_REJECT("from_name contains a line break", "from_name",
               "Acme\r\nBcc: x@evil.example");
  CHECK_REJECT("from_name is not valid UTF-8", "from_name", "Acme \xff");
  CHECK_ACCEPT("from_name", "Caff\xc3\xa8 Roma");
  CHECK_REJECT("signature_text contains control characters",
               "signature_text", "a\x01");
  CHECK_REJECT("logo_url must be an http", "logo_url", "javascript:alert(1)");
  CHECK_REJECT("logo_url", "logo_url", "https://x.example/\"onerror=\"x");
  CHECK_REJECT("logo_url", "logo_url", "https://x.example/a b.png");
  CHECK_REJECT("logo_url", "logo_url", "https://");

  /* Length bound. */
  static char longname[RQ_TENANT_MAX_VALUE + 2];
  memset(longname, 'a', sizeof longname - 1);
  CHECK_REJECT("from_name is longer than 1024 bytes", "from_name", longname);
}

static void test_mailgun(void) {
  struct rq_tenant *t = PARSE("gateway", "mailgun", "mailgun_domain",
                              "mg.example.com", "mailgun_api_key", "key-1");
  CHECK(t != NULL && t->gateway == RQ_GW_MAILGUN &&
        strcmp(t->mailgun_base_url, "https://api.mailgun.net") == 0 &&
        strcmp(t->mailgun_api_key, "key-1") == 0);
  rq_tenant_free(t);
  t = PARSE("gateway", "mailgun", "mailgun_domain", "mg.example.com",
            "mailgun_api_key", "k", "mailgun_region", "EU");
  CHECK(t != NULL && strcmp(t->mailgun_base_url, "https://api.eu.mailgun.net") == 0 &&
        strcmp(t->mailgun_region, "eu") == 0);
  rq_tenant_free(t);
  /* Explicit URL beats the region; one trailing slash is dropped. */
  t = PARSE("gateway", "mailgun", "mailgun_domain", "mg.example.com",
            "mailgun_api_key", "k", "mailgun_region", "eu", "mailgun_base_url",
            "http://127.0.0.1:8025/");
  CHECK(t != NULL && strcmp(t->mailgun_base_url, "http://127.0.0.1:8025") == 0);
  rq_tenant_free(t);
  t = PARSE("mailgun_base_url", "https://[::1]:443");
  CHECK(t != NULL && strcmp(t->mailgun_base_url, "https://[::1]:443") == 0);
  rq_tenant_free(t);

  CHECK_REJECT("mailgun_domain is missing", "gateway", "mailgun",
               "mailgun_api_key", "k");
  CHECK_REJECT("mailgun_api_key is missing", "gateway", "mailgun",
               "mailgun_domain", "mg.example.com");
  CHECK_REJECT("without a path such as /v3", "mailgun_base_url",
               "https://api.mailgun.net/v3");
  CHECK_REJECT("must start with https://", "mailgun_base_url",
               "ftp://api.mailgun.net");
  CHECK_REJECT("port outside 1-65535", "mailgun_base_url",
               "https://api.mailgun.net:70000");
  CHECK_REJECT("invalid port", "mailgun_base_url", "https://api.mailgun.net:");
  CHECK_REJECT("valid host name", "mailgun_base_url", "https://exa mple.com");
  CHECK_REJECT("mailgun_domain is not a valid host name", "mailgun_domain",
               "https://mg.example.com");
}

static void test_dkim(void) {
  const char *pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n"
                    "-----END PRIVATE KEY-----\n";
  struct rq_tenant *t = PARSE("dkim_domain", "example.com", "dkim_selector",
                              "s1", "dkim_private_key", pem);
  CHECK(t != NULL && strcmp(t->dkim_private_key, pem) == 0);
  rq_tenant_free(t);
  CHECK_REJECT("dkim_selector is missing", "dkim_domain", "example.com",
               "dkim_private_key", pem);
  CHECK_REJECT("dkim_private_key is missing", "dkim_domain", "example.com",
               "dkim_selector", "s1");
  CHECK_REJECT("dkim_domain is missing", "dkim_selector", "s1",
               "dkim_private_key", pem);
  CHECK_REJECT("must be a PEM private key", "dkim_domain", "example.com",
               "dkim_selector", "s1", "dkim_private_key", "not a key");
  CHECK_REJECT("dkim_selector must be DNS labels", "dkim_domain",
               "example.com", "dkim_selector", "s 1", "dkim_private_key", pem);
}

static void test_secrets(void) {
  char *pw = seal("s3cr3t-pw");
  char *api = seal("key-abc");
  const char *pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA "
                    "PRIVATE KEY-----\n";
  char *dk = seal(pem);

  /* Sealed values are opened with the key. */
  struct rq_tenant *t = parse_opts(
      KEY, 1, 0,
      KV("gateway", "smtp", "smtp_host", "h.example", "smtp_user", "u",
         "smtp_password", pw, "mailgun_api_key", api, "dkim_domain",
         "example.com", "dkim_selector", "s1", "dkim_private_key", dk));
  CHECK(t != NULL);
  if (t != NULL) {
    CHECK_STR(t->smtp.password, "s3cr3t-pw");
    CHECK_STR(t->mailgun_api_key, "key-abc");
    CHECK_STR(t->dkim_private_key, pem);
  }
  rq_tenant_free(t);

  /* Sealed but no key: the message says exactly what to do. */
  t = parse_opts(NULL, 0, 0, KV("smtp_password", pw));
  CHECK(t == NULL);
  CHECK_STR(err, "RELAYQ_SECRET_KEY is not set but smtp_password is sealed: "
                 "set the key the secrets were sealed with.");

  /* Wrong key. */
  unsigned char other[32];
  memcpy(other, KEY, 32);
  other[5] ^= 0x40;
  t = parse_opts(other, 0, 0, KV("mailgun_api_key", api));
  CHECK(t == NULL);
  CHECK(strstr(err, "mailgun_api_key cannot be opened with RELAYQ_SECRET_KEY") !=
        NULL);
  CHECK(strstr(err, api + 7) == NULL);

  /* A damaged sealed value. */
  t = parse_opts(KEY, 0, 0, KV("smtp_password", "enc:v1:@@@@"));
  CHECK(t == NULL && strstr(err, "smtp_password cannot be opened") != NULL);

  /* Plaintext is fine by default, refused when encryption is required,
   * and the message names the field but never the value. */
  t = parse_opts(KEY, 0, 0, KV("smtp_password", "PlainHunter2"));
  CHECK(t != NULL && strcmp(t->smtp.password, "PlainHunter2") == 0);
  rq_tenant_free(t);
  t = parse_opts(KEY, 1, 0, KV("smtp_password", "PlainHunter2"));
  CHECK(t == NULL);
  CHECK(strstr(err, "smtp_password is stored in plaintext") != NULL);
  CHECK(strstr(err, "RELAYQ_REQUIRE_ENCRYPTED=1") != NULL);
  CHECK(strstr(err, "PlainHunter2") == NULL);
  t = parse_opts(NULL, 1, 0, KV("dkim_private_key", pem));
  CHECK(t == NULL && strstr(err, "dkim_private_key is stored in plaintext"));
  /* Non-secret fields are never subject to the rule. */
  t = parse_opts(NULL, 1, 0, KV("smtp_user", "plain-user"));
  CHECK(t != NULL);
  rq_tenant_free(t);

  CHECK(rq_tenant_field_is_secret("smtp_password"));
  CHECK(rq_tenant_field_is_secret("mailgun_api_key"));
  CHECK(rq_tenant_field_is_secret("dkim_private_key"));
  CHECK(!rq_tenant_field_is_secret("smtp_user"));
  CHECK(!rq_tenant_field_is_secret(NULL));
  free(pw);
  free(api);
  free(dk);
}

static void test_unknown_fields(void) {
  struct rq_tenant *t = parse_opts(KEY, 0, 1, KV("smtp_hostt", "x"));
  CHECK(t == NULL);
  CHECK_STR(err, "unknown tenant field 'smtp_hostt' (did you mean smtp_host?).");
  t = parse_opts(KEY, 0, 1, KV("Gateway", "smtp"));
  CHECK(t == NULL && strstr(err, "(did you mean gateway?)") != NULL);
  t = parse_opts(KEY, 0, 1, KV("mailgun_apikey", "x"));
  CHECK(t == NULL && strstr(err, "did you mean mailgun_api_key?") != NULL);
  t = parse_opts(KEY, 0, 1, KV("completely_unrelated", "x"));
  CHECK(t == NULL);
  CHECK_STR(err, "unknown tenant field 'completely_unrelated'.");
  /* Non-printable names are shown safely. */
  t = parse_opts(KEY, 0, 1, KV("a\r\nb", "x"));
  CHECK(t == NULL && strstr(err, "'a??b'") != NULL);

  /* The worker ignores unknown fields. */
  t = parse_opts(KEY, 0, 0, KV("smtp_hostt", "x", "platform_plan", "gold"));
  CHECK(t != NULL);
  rq_tenant_free(t);

  /* Repeats: strict refuses, the worker keeps the last. */
  t = parse_opts(KEY, 0, 1, KV("from_name", "A", "from_name", "B"));
  CHECK(t == NULL && strstr(err, "'from_name' is given twice") != NULL);
  t = parse_opts(KEY, 0, 0, KV("from_name", "A", "from_name", "B"));
  CHECK(t != NULL && strcmp(t->from_name, "B") == 0);
  rq_tenant_free(t);

  /* An empty value counts as absent. */
  t = PARSE("gateway", "", "smtp_port", "", "from_email", "");
  CHECK(t != NULL && t->gateway == RQ_GW_PLATFORM && t->from_email == NULL);
  rq_tenant_free(t);

  /* Field list. */
  const char *const *all = rq_tenant_fields();
  size_t n = 0;
  for (; all[n] != NULL; n++) CHECK(rq_tenant_field_known(all[n]));
  CHECK_INT(n, ==, 37); /* v1.1: smtp_tls_pin, verified_domains, smtp_auth, oauth_* (6), rate_limits */
  CHECK(!rq_tenant_field_known("smtp_hostt"));
  CHECK(!rq_tenant_field_known(NULL));
}

static void test_bad_calls(void) {
  struct rq_tenant *t = NULL;
  const char *f[] = {"gateway"}, *v[] = {"smtp"};
  CHECK_INT(rq_tenant_parse("bad id!", f, v, 1, KEY, 0, 0, &t, err, sizeof err),
            ==, -1);
  CHECK(t == NULL && strstr(err, "tenant id") != NULL);
  CHECK_INT(rq_tenant_parse(NULL, f, v, 1, KEY, 0, 0, &t, err, sizeof err), ==,
            -1);
  CHECK_INT(rq_tenant_parse("acme", NULL, NULL, 3, KEY, 0, 0, &t, err,
                            sizeof err),
            ==, -1);
  CHECK_INT(rq_tenant_parse("acme", f, v, RQ_TENANT_MAX_FIELDS + 1, KEY, 0, 0,
                            &t, err, sizeof err),
            ==, -1);
  const char *nf[] = {NULL};
  CHECK_INT(rq_tenant_parse("acme", nf, v, 1, KEY, 0, 0, &t, err, sizeof err),
            ==, -1);
  /* NULL value: absent. No error buffer: still fine. */
  const char *nv[] = {NULL};
  CHECK_INT(rq_tenant_parse("acme", f, nv, 1, KEY, 0, 0, &t, NULL, 0), ==, 0);
  rq_tenant_free(t);
  rq_tenant_free(NULL);
}

static void test_routes(void) {
  struct rq_tenant *t = PARSE("gateway", "smtp", "smtp_preset", "gmail",
                              "routes", " eu , us-2,, backup@x ");
  CHECK(t != NULL);
  if (t == NULL) return;
  CHECK_INT(t->n_routes, ==, 3);
  CHECK_STR(t->route_names[0], "eu");
  CHECK_STR(t->route_names[1], "us-2");
  CHECK_STR(t->route_names[2], "backup@x");
  for (size_t i = 0; i < t->n_routes; i++) CHECK(t->routes[i].host == NULL);

  const char *f1[] = {"smtp_host", "smtp_security", "smtp_user",
                      "smtp_password", "from_email", "whatever"};
  const char *v1[] = {"eu.relay.example", "tls", "user", "pw",
                      "ignored@example.com", "x"};
  CHECK_INT(rq_tenant_parse_route(t, "eu", f1, v1, 6, KEY, 0, err, sizeof err),
            ==, 0);
  CHECK_STR(t->routes[0].host, "eu.relay.example");
  CHECK_INT(t->routes[0].port, ==, 465);
  CHECK_INT(t->routes[0].security, ==, RQ_SEC_TLS);
  CHECK_STR(t->routes[0].password, "pw");
  CHECK_INT(t->routes[0].tls_verify, ==, 1);
  CHECK(t->from_email == NULL); /* route hashes only carry smtp_* */

  const char *f2[] = {"smtp_preset"};
  const char *v2[] = {"ses-us-east-1"};
  CHECK_INT(rq_tenant_parse_route(t, "us-2", f2, v2, 1, KEY, 0, err, sizeof err),
            ==, 0);
  CHECK_STR(t->routes[1].host, "email-smtp.us-east-1.amazonaws.com");
  CHECK_STR(t->routes[1].preset, "ses-us-east-1");

  /* Parsing a route again replaces it. */
  const char *f3[] = {"smtp_host"};
  const char *v3[] = {"other.example"};
  CHECK_INT(rq_tenant_parse_route(t, "eu", f3, v3, 1, KEY, 0, err, sizeof err),
            ==, 0);
  CHECK_STR(t->routes[0].host, "other.example");
  CHECK(t->routes[0].password == NULL);

  /* A route needs a host; errors leave the slot as it was. */
  const char *f4[] = {"smtp_user"};
  const char *v4[] = {"u"};
  CHECK_INT(rq_tenant_parse_route(t, "backup@x", f4, v4, 1, KEY, 0, err,
                                  sizeof err),
            ==, -1);
  CHECK(strstr(err, "route backup@x needs smtp_host") != NULL);
  CHECK(t->routes[2].host == NULL);
  CHECK_INT(rq_tenant_parse_route(t, "eu", f4, v4, 1, KEY, 0, err, sizeof err),
            ==, -1);
  CHECK_STR(t->routes[0].host, "other.example");
  /* Unknown route. */
  CHECK_INT(rq_tenant_parse_route(t, "asia", f3, v3, 1, KEY, 0, err, sizeof err),
            ==, -1);
  CHECK(strstr(err, "route 'asia' is not listed") != NULL);
  /* Route secrets obey the same rules. */
  const char *f5[] = {"smtp_host", "smtp_password"};
  const char *v5[] = {"h.example", "plain"};
  CHECK_INT(rq_tenant_parse_route(t, "eu", f5, v5, 2, KEY, 1, err, sizeof err),
            ==, -1);
  CHECK(strstr(err, "smtp_password is stored in plaintext") != NULL);
  const char *v6[] = {"h.example", "enc:v1:AAAA"};
  CHECK_INT(rq_tenant_parse_route(t, "eu", f5, v6, 2, NULL, 0, err, sizeof err),
            ==, -1);
  CHECK(strstr(err, "RELAYQ_SECRET_KEY is not set") != NULL);
  rq_tenant_free(t);

  CHECK_REJECT("platform, smtp and mailgun name the gateways", "routes",
               "eu,smtp");
  CHECK_REJECT("names 'eu' twice", "routes", "eu,us,eu");
  CHECK_REJECT("routes has an invalid name 'e u'", "routes", "e u");
  CHECK_REJECT("more than 32 routes", "routes",
               "a1,a2,a3,a4,a5,a6,a7,a8,a9,a10,a11,a12,a13,a14,a15,a16,a17,"
               "a18,a19,a20,a21,a22,a23,a24,a25,a26,a27,a28,a29,a30,a31,a32,"
               "a33");
  /* Only separators: no routes. */
  t = PARSE("routes", " , ,");
  CHECK(t != NULL && t->n_routes == 0);
  rq_tenant_free(t);
}

/* v1.1: names without ':', verified_domains, secrets bound to their place. */
static void test_v11(void) {
  struct rq_tenant *t = NULL;
  const char *f1[] = {"from_email"}, *v1[] = {"a@acme.example"};
  CHECK_INT(rq_tenant_parse("acme:route:x", f1, v1, 1, KEY, 0, 1, &t, err, sizeof err), ==, -1);
  CHECK(t == NULL && strstr(err, "no ':'") != NULL);
  CHECK_REJECT("no ':'", "routes", "a,b:c");

  /* verified_domains and what domain_verified=1 stands for. */
  t = PARSE("verified_domains", " Acme.Example , mail.other.example", "from_email", "x@third.example");
  CHECK(t != NULL && t->n_verified_domains == 2);
  CHECK(rq_tenant_domain_verified(t, "acme.example") && rq_tenant_domain_verified(t, "news.ACME.example"));
  CHECK(rq_tenant_domain_verified(t, "mail.other.example") && !rq_tenant_domain_verified(t, "other.example"));
  CHECK(!rq_tenant_domain_verified(t, "evilacme.example") && !rq_tenant_domain_verified(t, "third.example"));
  rq_tenant_free(t);
  t = PARSE("from_email", "x@old.example", "domain_verified", "1");
  CHECK(t != NULL && rq_tenant_domain_verified(t, "old.example") && !rq_tenant_domain_verified(t, "new.example"));
  rq_tenant_free(t);
  char *pem = NULL;
  t = PARSE("from_email", "x@old.example", "domain_verified", "1", "dkim_domain", "sign.example", "dkim_selector",
            "s1", "dkim_private_key", "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n");
  CHECK(t != NULL && rq_tenant_domain_verified(t, "sign.example") && !rq_tenant_domain_verified(t, "old.example"));
  rq_tenant_free(t);
  t = PARSE("domain_verified", "1");
  CHECK(t != NULL && t->n_verified_domains == 0);
  rq_tenant_free(t);
  CHECK_REJECT("verified_domains", "verified_domains", "localhost");
  CHECK_REJECT("verified_domains", "verified_domains", "[::1]");
  CHECK_ACCEPT("verified_domains", "a.example", "verified_at.a.example", "1765000000000");
  CHECK(rq_tenant_field_known("verified_at.x.example") && rq_tenant_field_known("verified_domains"));

  /* enc:v2: opens only for its own hash and field. */
  struct relayq_error e;
  char *mine = NULL, *route = NULL;
  CHECK_INT(relayq_secret_seal_for(KEY, "tenant:acme", "smtp_password", "pw", &mine, &e), ==, 0);
  CHECK_INT(relayq_secret_seal_for(KEY, "tenant:acme:route:b", "smtp_password", "rpw", &route, &e), ==, 0);
  t = PARSE("smtp_user", "u", "smtp_password", mine);
  CHECK(t != NULL && t->smtp.password && strcmp(t->smtp.password, "pw") == 0);
  rq_tenant_free(t);
  const char *f2[] = {"smtp_user", "smtp_password"}, *v2[] = {"u", mine};
  t = NULL;
  CHECK_INT(rq_tenant_parse("other", f2, v2, 2, KEY, 0, 0, &t, err, sizeof err), ==, RQ_TENANT_ESEALED);
  CHECK(t == NULL && strstr(err, "sealed for another place") != NULL && strstr(err, "tenant:other") != NULL);
  const char *f3[] = {"mailgun_api_key"}, *v3[] = {mine};
  CHECK_INT(rq_tenant_parse("acme", f3, v3, 1, KEY, 0, 0, &t, err, sizeof err), ==, RQ_TENANT_ESEALED);
  /* Routes: their own place. */
  const char *rf[] = {"routes"}, *rv[] = {"b,c"};
  CHECK_INT(rq_tenant_parse("acme", rf, rv, 1, KEY, 0, 0, &t, err, sizeof err), ==, 0);
  const char *sf[] = {"smtp_host", "smtp_user", "smtp_password"}, *sv[] = {"h.example", "u", route};
  CHECK_INT(rq_tenant_parse_route(t, "b", sf, sv, 3, KEY, 0, err, sizeof err), ==, 0);
  CHECK(t->routes[0].password && strcmp(t->routes[0].password, "rpw") == 0);
  CHECK_INT(rq_tenant_parse_route(t, "c", sf, sv, 3, KEY, 0, err, sizeof err), ==, RQ_TENANT_ESEALED);
  sv[2] = mine;
  CHECK_INT(rq_tenant_parse_route(t, "b", sf, sv, 3, KEY, 0, err, sizeof err), ==, RQ_TENANT_ESEALED);
  rq_tenant_free(t);
  free(mine);
  free(route);
  free(pem);
}

int main(void) {
  struct relayq_error e;
  CHECK_INT(relayq_secret_key_parse(
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", KEY, &e),
            ==, 0);
  test_defaults();
  test_full_smtp();
  test_port_defaults();
  test_presets_apply();
  test_preset_table();
  test_validation();
  test_mailgun();
  test_dkim();
  test_secrets();
  test_unknown_fields();
  test_bad_calls();
  test_routes();
  test_v11();
  return CHECK_DONE();
}
