/* Unit tests for route decisions, the saas/onprem policy, recipient caps
 * and the sender identity rules (worker/mail/route.c, pure). */
#include <string.h>

#include "check.h"
#include "raw_from.h"
#include "route.h"
#include "tenant.h"

static struct rq_tenant *tenant(const char *id, const char *const *kv) {
  const char *f[32], *v[32];
  size_t n = 0;
  for (; kv && kv[2 * n]; n++) f[n] = kv[2 * n], v[n] = kv[2 * n + 1];
  struct rq_tenant *t = NULL;
  char err[300];
  if (rq_tenant_parse(id, f, v, n, NULL, 0, 0, &t, err, sizeof err)) {
    fprintf(stderr, "tenant parse: %s\n", err);
    return NULL;
  }
  return t;
}

static struct relayq_job job(const char *from) {
  static char *to[] = {"a@dest.example"};
  struct relayq_job j;
  memset(&j, 0, sizeof j);
  j.v = 1, j.id = "j1", j.tenant = "acme", j.to.v = to, j.to.n = 1, j.from = (char *)from;
  return j;
}

/* The sender rule on raw messages (raw_from.c through rq_route_raw_from). */
static void test_raw_from(const struct rq_route_settings *cfg) {
  char addr[300];
  int rt = 0;
  const char *m1 = "From: \"Ceo\" <ceo@bank.example>\r\nSubject: x\r\n\r\nFrom: body@x.example\r\n";
  CHECK_INT(rq_raw_from_addr(m1, strlen(m1), addr, sizeof addr, &rt), ==, 1);
  CHECK_STR(addr, "ceo@bank.example");
  CHECK_INT(rt, ==, 0);
  const char *folded = "Subject: x\r\nfrom :\r\n ceo@bank.example\r\nReply-To: r@x.example\r\n\r\nb";
  CHECK_INT(rq_raw_from_addr(folded, strlen(folded), addr, sizeof addr, &rt), ==, 1);
  CHECK_STR(addr, "ceo@bank.example");
  CHECK_INT(rt, ==, 1);
  const char *two = "From: a@x.example\r\nFROM: b@y.example\r\n\r\n";
  CHECK_INT(rq_raw_from_addr(two, strlen(two), addr, sizeof addr, NULL), ==, 0);
  const char *none = "Subject: x\r\n\r\n";
  CHECK_INT(rq_raw_from_addr(none, strlen(none), addr, sizeof addr, NULL), ==, 0);
  const char *group = "From: a@x.example, b@y.example\r\n\r\n";
  CHECK_INT(rq_raw_from_addr(group, strlen(group), addr, sizeof addr, NULL), ==, 0);

  struct rq_tenant *t = tenant("acme", (const char *const[]){"verified_domains", "acme.example", NULL});
  struct relayq_job j = job(NULL);
  struct rq_route plat = {.name = "platform", .gateway = RQ_GW_PLATFORM}, smtp = {.name = "smtp", .gateway = RQ_GW_SMTP};
  struct rq_buf b;
  rq_buf_init(&b);
  rq_buf_puts(&b, m1);
  CHECK_INT(rq_route_raw_from(cfg, t, &j, &smtp, &b), ==, 0); /* the tenant's own server: as given */
  CHECK_INT(rq_route_raw_from(cfg, t, &j, &plat, &b), ==, 1);
  /* Replies reach the spoofed address's owner through Reply-To, but no
   * address becomes the display name (clients that show only the name
   * would show the spoof); the body (which has a "From:" line of its own)
   * is untouched. */
  static const char want[] = "From: no-reply@platform.example\r\nReply-To: ceo@bank.example\r\n"
                             "Subject: x\r\n\r\nFrom: body@x.example\r\n";
  CHECK_INT(b.len, ==, sizeof want - 1);
  CHECK(memcmp(b.data, want, b.len) == 0);
  CHECK_INT(rq_raw_from_addr(b.data, b.len, addr, sizeof addr, &rt), ==, 1);
  CHECK_STR(addr, "no-reply@platform.example");
  CHECK_INT(rt, ==, 1);
  /* Once rewritten it stands. */
  CHECK_INT(rq_route_raw_from(cfg, t, &j, &plat, &b), ==, 0);
  rq_buf_reset(&b);
  rq_buf_puts(&b, "From: news@mail.acme.example\r\n\r\nb");
  CHECK_INT(rq_route_raw_from(cfg, t, &j, &plat, &b), ==, 0);
  rq_buf_reset(&b);
  rq_buf_puts(&b, two);
  CHECK_INT(rq_route_raw_from(cfg, t, &j, &plat, &b), ==, 1);
  CHECK_INT(rq_raw_from_addr(b.data, b.len, addr, sizeof addr, NULL), ==, 1);
  CHECK_STR(addr, "no-reply@platform.example");
  rq_buf_reset(&b);
  rq_buf_puts(&b, none);
  CHECK_INT(rq_route_raw_from(cfg, t, &j, &plat, &b), ==, 1);
  CHECK(strncmp(b.data, "From: no-reply@platform.example\r\nSubject: x\r\n", 44) == 0);
  rq_buf_free(&b);

  /* The platform's own domain: only the platform sender itself. */
  CHECK(rq_route_vouched(cfg, t, "no-reply@platform.example"));
  CHECK(rq_route_vouched(cfg, t, "NO-REPLY@platform.EXAMPLE"));
  CHECK(!rq_route_vouched(cfg, t, "billing@platform.example"));
  CHECK(rq_route_vouched(cfg, t, "x@acme.example") && !rq_route_vouched(cfg, t, "x@bank.example"));
  CHECK(!rq_route_vouched(cfg, NULL, "x@acme.example"));
  struct rq_tenant *tp = tenant("acme", (const char *const[]){"verified_domains", "platform.example", NULL});
  CHECK(!rq_route_vouched(cfg, tp, "billing@platform.example"));
  CHECK(!rq_route_vouched(cfg, tp, "x@mail.platform.example"));
  CHECK(!rq_route_vouched(cfg, tp, "no-reply@mail.platform.example"));
  rq_tenant_free(tp);
  rq_tenant_free(t);
}

int main(void) {
  struct rq_route_settings cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.saas = 1;
  cfg.platform_from = "no-reply@platform.example";
  cfg.platform_max_recipients = 100, cfg.smtp_max_recipients = 50, cfg.mailgun_max_recipients = 1000;
  cfg.platform_tls_verify = 1;
  cfg.platform = (struct rq_platform){.configured = 1, .host = "gw.example", .port = 2525};
  char err[512];

  struct rq_route r;
  const char *error = NULL;
  struct relayq_job j = job(NULL);

  /* No tenant hash: platform gateway with the worker's cap. */
  struct rq_tenant *none = tenant("acme", NULL);
  CHECK_INT(rq_route_resolve(&cfg, none, &j, &r, &error, err, sizeof err), ==, 0);
  CHECK_STR(r.name, "platform");
  CHECK_INT(r.max_recipients, ==, 100);
  CHECK_INT(r.smtp_security, ==, RQ_ROUTE_STARTTLS_TRY);
  /* No platform gateway configured: temporary. */
  struct rq_route_settings unset = cfg;
  memset(&unset.platform, 0, sizeof unset.platform);
  CHECK_INT(rq_route_resolve(&unset, none, &j, &r, &error, err, sizeof err), ==, 1);

  /* Tenant SMTP with AUTH on 587: allowed in saas, cap from the tenant. */
  const char *smtp_kv[] = {"gateway", "smtp", "smtp_host", "smtp.acme.example", "smtp_user", "u", "smtp_password",
                           "p", "max_recipients", "25", "bulk_max_recipients", "10", NULL};
  struct rq_tenant *ts = tenant("acme", smtp_kv);
  CHECK_INT(rq_route_resolve(&cfg, ts, &j, &r, &error, err, sizeof err), ==, 0);
  CHECK_STR(r.name, "smtp");
  CHECK_INT(r.port, ==, 587);
  CHECK_INT(r.smtp_security, ==, RQ_ROUTE_STARTTLS_REQUIRED);
  CHECK_INT(r.max_recipients, ==, 25);
  j.kind = RELAYQ_KIND_BULK;
  CHECK_INT(rq_route_resolve(&cfg, ts, &j, &r, &error, err, sizeof err), ==, 0);
  CHECK_INT(r.max_recipients, ==, 10);
  j.kind = RELAYQ_KIND_TRANSACTIONAL;

  /* saas refuses port 25 and servers without AUTH; onprem allows them. */
  const char *p25_kv[] = {"gateway", "smtp", "smtp_host", "mx.acme.example", "smtp_security", "none",
                          "smtp_user", "u", "smtp_password", "p", NULL};
  struct rq_tenant *t25 = tenant("acme", p25_kv);
  CHECK_INT(t25->smtp.port, ==, 25);
  CHECK_INT(rq_route_resolve(&cfg, t25, &j, &r, &error, err, sizeof err), ==, -1);
  CHECK_STR(error, "policy");
  CHECK(strstr(err, "port 25") != NULL);
  const char *noauth_kv[] = {"gateway", "smtp", "smtp_host", "smtp.acme.example", NULL};
  struct rq_tenant *tna = tenant("acme", noauth_kv);
  CHECK_INT(rq_route_resolve(&cfg, tna, &j, &r, &error, err, sizeof err), ==, -1);
  CHECK(strstr(err, "AUTH") != NULL);
  cfg.saas = 0;
  CHECK_INT(rq_route_resolve(&cfg, t25, &j, &r, &error, err, sizeof err), ==, 0);
  CHECK_INT(rq_route_resolve(&cfg, tna, &j, &r, &error, err, sizeof err), ==, 0);
  cfg.saas = 1;

  /* Named routes: unknown ones are refused with the name in the detail. */
  j.route = "billing";
  CHECK_INT(rq_route_resolve(&cfg, ts, &j, &r, &error, err, sizeof err), ==, -1);
  CHECK_STR(error, "policy");
  CHECK(strstr(err, "billing") != NULL);
  j.route = NULL;

  /* One unusable route fails only the jobs that name it (rq_tenant_route_unusable). */
  {
    const char *rk[] = {"gateway", "platform", "routes", "billing,backup", NULL};
    struct rq_tenant *tr = tenant("acme", rk);
    const char *rf[] = {"smtp_host", "smtp_user", "smtp_password"}, *rv[] = {"mail.acme.example", "u", "p"};
    char perr[300];
    CHECK_INT(rq_tenant_parse_route(tr, "backup", rf, rv, 3, NULL, 0, perr, sizeof perr), ==, 0);
    CHECK_INT(rq_tenant_route_unusable(tr, "billing", "route 'billing' of tenant 'acme': sealed elsewhere", 1), ==, 0);
    CHECK_INT(rq_tenant_route_unusable(tr, "nosuch", "x", 0), ==, -1);
    j.route = "billing";
    CHECK_INT(rq_route_resolve(&cfg, tr, &j, &r, &error, err, sizeof err), ==, -1);
    CHECK_STR(error, "auth");
    CHECK_STR(err, "route 'billing' of tenant 'acme': sealed elsewhere");
    j.route = "backup";
    CHECK_INT(rq_route_resolve(&cfg, tr, &j, &r, &error, err, sizeof err), ==, 0);
    j.route = NULL;
    CHECK_INT(rq_route_resolve(&cfg, tr, &j, &r, &error, err, sizeof err), ==, 0);
    CHECK_STR(r.name, "platform");
    /* A route marked twice keeps one sentence (no leak: ASan). */
    CHECK_INT(rq_tenant_route_unusable(tr, "billing", "missing hash", 0), ==, 0);
    j.route = "billing";
    CHECK_INT(rq_route_resolve(&cfg, tr, &j, &r, &error, err, sizeof err), ==, -1);
    CHECK_STR(error, "policy");
    j.route = NULL;
    rq_tenant_free(tr);
  }

  /* Mailgun. */
  const char *mg_kv[] = {"gateway", "mailgun", "mailgun_domain", "mg.acme.example", "mailgun_api_key", "key-1",
                         "mailgun_region", "eu", NULL};
  struct rq_tenant *tm = tenant("acme", mg_kv);
  CHECK_INT(rq_route_resolve(&cfg, tm, &j, &r, &error, err, sizeof err), ==, 0);
  CHECK_STR(r.name, "mailgun");
  CHECK_STR(r.mg_base_url, "https://api.eu.mailgun.net");
  CHECK_INT(r.max_recipients, ==, 1000);

  /* Sender identity on the platform gateway. */
  struct rq_sender s;
  rq_route_resolve(&cfg, none, &j, &r, &error, err, sizeof err);
  const char *unver_kv[] = {"from_email", "billing@acme.example", "from_name", "Acme", NULL};
  struct rq_tenant *tu = tenant("acme", unver_kv);
  rq_route_sender(&cfg, tu, &j, &r, &s);
  CHECK_STR(s.from_addr, "no-reply@platform.example");
  CHECK_STR(s.from_name, "Acme");
  CHECK_STR(s.reply_to, "billing@acme.example");
  CHECK_STR(s.envelope_from, "no-reply@platform.example");
  const char *ver_kv[] = {"from_email", "billing@acme.example", "domain_verified", "1", NULL};
  struct rq_tenant *tv = tenant("acme", ver_kv);
  rq_route_sender(&cfg, tv, &j, &r, &s);
  CHECK_STR(s.from_addr, "billing@acme.example");
  struct relayq_job sub = job("news@mail.acme.example");
  rq_route_sender(&cfg, tv, &sub, &r, &s);
  CHECK_STR(s.from_addr, "news@mail.acme.example"); /* a subdomain of the verified one */
  struct relayq_job spoof = job("ceo@bank.example");
  rq_route_sender(&cfg, tv, &spoof, &r, &s);
  CHECK_STR(s.from_addr, "no-reply@platform.example"); /* verified for acme only */
  CHECK_STR(s.reply_to, "ceo@bank.example");
  /* The tenant's own server sends as the tenant, verified or not. */
  rq_route_resolve(&cfg, ts, &j, &r, &error, err, sizeof err);
  rq_route_sender(&cfg, tu, &j, &r, &s);
  CHECK_STR(s.from_addr, "billing@acme.example");

  CHECK_STR(rq_route_domain_of("a@b.example"), "b.example");

  rq_tenant_free(none), rq_tenant_free(ts), rq_tenant_free(t25), rq_tenant_free(tna);
  rq_tenant_free(tm), rq_tenant_free(tu), rq_tenant_free(tv);
  test_raw_from(&cfg);
  return CHECK_DONE();
}
