/*
 * Unit tests for producer/cli/spf.c (RFC 7208 parsing, tree loading,
 * check_host evaluation, suggested records) against a fake DNS table.
 */
#include "check.h"

/* Compiled in (curl's UNITTEST idea) to reach its static helpers. */
#include "spf.c"

/* ---- a fake DNS table ---------------------------------------------------- */

/* type: 'T' TXT, 'A' A, '6' AAAA, 'M' MX, 'E' every query for name fails. */
struct rr {
  char type;
  const char *name;
  const char *value;
};

static const struct rr *table;
static int queries;

static int err_for(const char *name, char *err, size_t errlen) {
  for (const struct rr *r = table; r->name; r++)
    if (r->type == 'E' && strcasecmp(r->name, name) == 0) {
      snprintf(err, errlen, "no answer for %s", name);
      return 1;
    }
  return 0;
}

static int fake_txt(void *ctx, const char *name, char ***recs, size_t *n, char *err, size_t errlen) {
  (void)ctx;
  queries++;
  *recs = NULL, *n = 0;
  if (err_for(name, err, errlen)) return SPF_DNS_ERROR;
  for (const struct rr *r = table; r->name; r++)
    if (r->type == 'T' && strcasecmp(r->name, name) == 0) {
      *recs = realloc(*recs, (*n + 1) * sizeof **recs);
      (*recs)[(*n)++] = strdup(r->value);
    }
  return *n ? SPF_DNS_OK : SPF_DNS_NONE;
}

static int fake_addr(void *ctx, const char *name, int family, struct spf_ip **ips, size_t *n, char *err,
                     size_t errlen) {
  (void)ctx;
  queries++;
  *ips = NULL, *n = 0;
  if (err_for(name, err, errlen)) return SPF_DNS_ERROR;
  for (const struct rr *r = table; r->name; r++)
    if (r->type == (family == 4 ? 'A' : '6') && strcasecmp(r->name, name) == 0) {
      *ips = realloc(*ips, (*n + 1) * sizeof **ips);
      if (spf_ip_parse(r->value, &(*ips)[*n]) == 0) (*n)++;
    }
  return *n ? SPF_DNS_OK : SPF_DNS_NONE;
}

static int fake_mx(void *ctx, const char *name, char ***hosts, size_t *n, char *err, size_t errlen) {
  (void)ctx;
  queries++;
  *hosts = NULL, *n = 0;
  if (err_for(name, err, errlen)) return SPF_DNS_ERROR;
  for (const struct rr *r = table; r->name; r++)
    if (r->type == 'M' && strcasecmp(r->name, name) == 0) {
      *hosts = realloc(*hosts, (*n + 1) * sizeof **hosts);
      (*hosts)[(*n)++] = strdup(r->value);
    }
  return *n ? SPF_DNS_OK : SPF_DNS_NONE;
}

static const struct spf_resolver fake = {NULL, fake_txt, fake_addr, fake_mx};

static struct spf_tree *load(const struct rr *t, const char *domain) {
  struct spf_tree *tree = NULL;
  table = t;
  queries = 0;
  CHECK_INT(spf_load(domain, &fake, &tree), ==, 0);
  return tree;
}

static enum spf_result eval(struct spf_tree *t, const char *ip, int *decider) {
  struct spf_ip a;
  char err[300];
  int d;
  CHECK_INT(spf_ip_parse(ip, &a), ==, 0);
  enum spf_result r = spf_eval(t, &a, decider ? decider : &d, err, sizeof err);
  return r;
}

/* ---- syntax ---------------------------------------------------------------- */

static int parses(const char *text) {
  struct spf_record *r = NULL;
  char err[300];
  int rc = spf_parse("example.com", text, &r, err, sizeof err);
  if (rc == 0) CHECK(r != NULL);
  else CHECK(err[0] != '\0');
  spf_record_free(r);
  return rc == 0;
}

static void test_syntax(void) {
  CHECK(parses("v=spf1"));
  CHECK(parses("v=spf1 -all"));
  CHECK(parses("V=SPF1 IP4:192.0.2.0/24 Include:_spf.example.net ~ALL"));
  CHECK(parses("v=spf1 ip6:2001:db8::/32 a mx/24 a:mail.example.com//64 mx:example.org/24//64 ?all"));
  CHECK(parses("v=spf1 exists:%{i}._spf.%{d} ptr ptr:example.net -all"));
  CHECK(parses("v=spf1 include:%{d2}.example.net redirect=_spf.example.com"));
  CHECK(parses("v=spf1 mx exp=explain._spf.%{d} foo-bar=baz -all"));
  CHECK(parses("v=spf1 a:example.com. -all")); /* trailing dot */
  CHECK(parses("v=spf1  ip4:192.0.2.1   -all  ")); /* extra spaces */

  CHECK(!parses("v=spf10 -all"));
  CHECK(!parses("spf1 -all"));
  CHECK(!parses("v=spf1 ipv4:192.0.2.1 -all"));         /* unknown mechanism */
  CHECK(!parses("v=spf1 ip4:192.0.2.256 -all"));
  CHECK(!parses("v=spf1 ip4:192.0.2.0/33 -all"));
  CHECK(!parses("v=spf1 ip4:192.0.2.0/024 -all"));      /* leading zero */
  CHECK(!parses("v=spf1 ip4:2001:db8::1 -all"));
  CHECK(!parses("v=spf1 ip6:2001:db8::/129 -all"));
  CHECK(!parses("v=spf1 ip4: -all"));
  CHECK(!parses("v=spf1 include: -all"));
  CHECK(!parses("v=spf1 include -all"));
  CHECK(!parses("v=spf1 include:localhost -all"));      /* no dot: not a domain */
  CHECK(!parses("v=spf1 include:example.123 -all"));    /* numeric top label */
  CHECK(!parses("v=spf1 all:example.com"));
  CHECK(!parses("v=spf1 a/33"));
  CHECK(!parses("v=spf1 mx//129"));
  CHECK(!parses("v=spf1 redirect=a.example redirect=b.example"));
  CHECK(!parses("v=spf1 exp=a.example exp=b.example -all"));
  CHECK(!parses("v=spf1 exists:%{x}.example.com -all")); /* bad macro letter */
  CHECK(!parses("v=spf1 exists:%{c}.example.com -all")); /* c only in exp */
  CHECK(!parses("v=spf1 include:%{d.example.com -all"));
  CHECK(!parses("v=spf1 1bad=x -all"));
  CHECK(!parses("v=spf1 a:exa\tmple.com -all"));
  CHECK(!parses("v=spf1 -all \xc3\xa9"));

  /* Term details. */
  struct spf_record *r = NULL;
  char err[300];
  CHECK_INT(spf_parse("example.com", "v=spf1 -ip4:192.0.2.0/24 ~a:mail.example.com/28//64 redirect=x.example",
                      &r, err, sizeof err),
            ==, 0);
  if (r) {
    CHECK_INT(r->n, ==, 3);
    CHECK_INT(r->terms[0].qual, ==, '-');
    CHECK_INT(r->terms[0].kind, ==, SPF_IP4);
    CHECK_INT(r->terms[0].cidr4, ==, 24);
    CHECK_INT(r->terms[1].qual, ==, '~');
    CHECK_STR(r->terms[1].domain, "mail.example.com");
    CHECK_INT(r->terms[1].cidr4, ==, 28);
    CHECK_INT(r->terms[1].cidr6, ==, 64);
    CHECK_INT(r->redirect, ==, 2);
    CHECK_INT(r->has_all, ==, 0);
  }
  spf_record_free(r);

  /* Errors name the term. */
  CHECK_INT(spf_parse("example.com", "v=spf1 ip4:1.2.3 -all", &r, err, sizeof err), ==, -1);
  CHECK(strstr(err, "ip4:1.2.3") != NULL);

  /* Bounds: too long, too many terms. */
  char big[SPF_MAX_RECORD + 20];
  strcpy(big, "v=spf1");
  while (strlen(big) < SPF_MAX_RECORD + 5) strcat(big, " a");
  CHECK(!parses(big));
  char many[2000] = "v=spf1";
  for (int i = 0; i < SPF_MAX_TERMS + 1; i++) strcat(many, " a");
  CHECK(!parses(many));

  CHECK(spf_is_record("v=spf1"));
  CHECK(spf_is_record("V=SPF1 -all"));
  CHECK(!spf_is_record("v=spf1-all"));
  CHECK(!spf_is_record("v=DKIM1; p="));
}

/* ---- trees and evaluation -------------------------------------------------------- */

static const struct rr good[] = {
    {'T', "example.com", "v=spf1 ip4:192.0.2.0/24 include:_spf.relay.test mx -all"},
    {'T', "example.com", "google-site-verification=abc"},
    {'T', "_spf.relay.test", "v=spf1 ip4:198.51.100.10 ip6:2001:db8:10::/48 ~all"},
    {'M', "example.com", "mx1.example.com"},
    {'A', "mx1.example.com", "203.0.113.7"},
    {'6', "mx1.example.com", "2001:db8:77::7"},
    {0, NULL, NULL},
};

static void test_eval(void) {
  struct spf_tree *t = load(good, "example.com");
  CHECK_INT(t->n_records, ==, 1);
  CHECK_STR(t->problem, "");
  CHECK_STR(t->temp, "");
  CHECK_INT(t->lookups, ==, 2); /* include + mx */
  CHECK_INT(t->plus_all, ==, 0);
  int d = 99;
  CHECK_INT(eval(t, "192.0.2.55", &d), ==, SPF_PASS);
  CHECK_INT(d, ==, 0);
  CHECK_INT(eval(t, "198.51.100.10", &d), ==, SPF_PASS); /* through the include */
  CHECK_INT(d, ==, 1);
  CHECK_INT(eval(t, "2001:db8:10:1::5", NULL), ==, SPF_PASS);
  CHECK_INT(eval(t, "203.0.113.7", &d), ==, SPF_PASS); /* mx */
  CHECK_INT(d, ==, 2);
  CHECK_INT(eval(t, "2001:db8:77::7", NULL), ==, SPF_PASS);
  CHECK_INT(eval(t, "198.51.100.11", &d), ==, SPF_FAIL); /* include softfails: no match, then -all */
  CHECK_INT(d, ==, 3);
  /* The mx answers are cached: a second address costs no query. */
  int before = queries;
  CHECK_INT(eval(t, "203.0.113.8", NULL), ==, SPF_FAIL);
  CHECK_INT(queries, ==, before);
  CHECK(spf_has_include(t, "_spf.relay.test"));
  CHECK(spf_has_include(t, "_SPF.Relay.Test."));
  CHECK(!spf_has_include(t, "relay.test"));

  /* Suggestions: insert before the term that decided, or the all. */
  const char *add[] = {"include:spf.platform.test", "ip4:203.0.113.8"};
  char *fix = spf_suggest(t, add, 2, 3);
  CHECK_STR(fix, "v=spf1 ip4:192.0.2.0/24 include:_spf.relay.test mx include:spf.platform.test "
                 "ip4:203.0.113.8 -all");
  free(fix);
  const char *dup[] = {"include:_spf.relay.test"};
  fix = spf_suggest(t, dup, 1, -1);
  CHECK_STR(fix, "v=spf1 ip4:192.0.2.0/24 include:_spf.relay.test mx -all");
  free(fix);
  spf_free(t);
}

static void test_problems(void) {
  /* Two records. */
  static const struct rr two[] = {
      {'T', "example.com", "v=spf1 include:_spf.google.com ~all"},
      {'T', "example.com", "v=spf1 ip4:192.0.2.1 -all"},
      {0, NULL, NULL},
  };
  struct spf_tree *t = load(two, "example.com");
  CHECK_INT(t->n_records, ==, 2);
  CHECK(t->root == NULL);
  CHECK(strstr(t->problem, "2 SPF records") != NULL);
  CHECK_INT(eval(t, "192.0.2.1", NULL), ==, SPF_PERMERROR);
  char *fix = spf_suggest(t, NULL, 0, -1);
  CHECK_STR(fix, "v=spf1 include:_spf.google.com ip4:192.0.2.1 ~all");
  free(fix);
  spf_free(t);

  /* The merged all is the mildest of the records', whatever their order. */
  static const struct rr strict[] = {
      {'T', "example.com", "v=spf1 a ?all"},
      {'T', "example.com", "v=spf1 mx -all"},
      {0, NULL, NULL},
  };
  t = load(strict, "example.com");
  fix = spf_suggest(t, NULL, 0, -1);
  CHECK_STR(fix, "v=spf1 a mx -all");
  free(fix);
  spf_free(t);

  /* +all, and a bare all (same meaning). */
  static const struct rr plus[] = {{'T', "example.com", "v=spf1 mx +all"}, {0, NULL, NULL}};
  t = load(plus, "example.com");
  CHECK_INT(t->plus_all, ==, 1);
  CHECK_INT(eval(t, "203.0.113.200", NULL), ==, SPF_PASS);
  const char *add[] = {"include:spf.platform.test"};
  fix = spf_suggest(t, add, 1, -1);
  CHECK_STR(fix, "v=spf1 mx include:spf.platform.test ~all");
  free(fix);
  spf_free(t);
  static const struct rr bare[] = {{'T', "example.com", "v=spf1 all"}, {0, NULL, NULL}};
  t = load(bare, "example.com");
  CHECK_INT(t->plus_all, ==, 1);
  spf_free(t);
  /* +all inside an include is as open. */
  static const struct rr inc_plus[] = {
      {'T', "example.com", "v=spf1 include:open.test -all"},
      {'T', "open.test", "v=spf1 +all"},
      {0, NULL, NULL},
  };
  t = load(inc_plus, "example.com");
  CHECK_INT(t->plus_all, ==, 1);
  spf_free(t);

  /* No record. */
  static const struct rr none[] = {{'T', "example.com", "hello"}, {0, NULL, NULL}};
  t = load(none, "example.com");
  CHECK_INT(t->n_records, ==, 0);
  CHECK_STR(t->problem, "");
  CHECK_INT(eval(t, "192.0.2.1", NULL), ==, SPF_NONE);
  fix = spf_suggest(t, add, 1, -1);
  CHECK_STR(fix, "v=spf1 include:spf.platform.test ~all");
  free(fix);
  fix = spf_suggest(t, NULL, 0, -1);
  CHECK_STR(fix, "v=spf1 mx ~all");
  free(fix);
  spf_free(t);

  /* Syntax error at the top. */
  static const struct rr bad[] = {{'T', "example.com", "v=spf1 ip4:192.0.2 -all"}, {0, NULL, NULL}};
  t = load(bad, "example.com");
  CHECK(t->root == NULL);
  CHECK(strstr(t->problem, "ip4:192.0.2") != NULL);
  CHECK_INT(eval(t, "192.0.2.1", NULL), ==, SPF_PERMERROR);
  spf_free(t);

  /* An include without a record is permerror when reached. */
  static const struct rr dangling[] = {
      {'T', "example.com", "v=spf1 ip4:192.0.2.1 include:gone.test -all"},
      {0, NULL, NULL},
  };
  t = load(dangling, "example.com");
  CHECK(strstr(t->problem, "gone.test has no SPF record") != NULL);
  CHECK_INT(eval(t, "192.0.2.1", NULL), ==, SPF_PASS); /* decided before the include */
  CHECK_INT(eval(t, "192.0.2.2", NULL), ==, SPF_PERMERROR);
  spf_free(t);

  /* A DNS failure is temperror, not "no record". */
  static const struct rr broken[] = {
      {'T', "example.com", "v=spf1 include:flaky.test -all"},
      {'E', "flaky.test", NULL},
      {0, NULL, NULL},
  };
  t = load(broken, "example.com");
  CHECK(strstr(t->temp, "flaky.test") != NULL);
  CHECK_INT(eval(t, "192.0.2.1", NULL), ==, SPF_TEMPERROR);
  spf_free(t);
  static const struct rr broken_a[] = {
      {'T', "example.com", "v=spf1 a:host.flaky.test -all"},
      {'E', "host.flaky.test", NULL},
      {0, NULL, NULL},
  };
  t = load(broken_a, "example.com");
  CHECK_STR(t->temp, "");
  CHECK_INT(eval(t, "192.0.2.1", NULL), ==, SPF_TEMPERROR);
  spf_free(t);
}

static void test_limits(void) {
  /* 11 lookups: a chain of includes plus a and mx terms. */
  static const struct rr chain[] = {
      {'T', "example.com", "v=spf1 a mx include:l1.test include:l2.test -all"},
      {'T', "l1.test", "v=spf1 a:x.l1.test a:y.l1.test mx:l1.test include:l3.test ~all"},
      {'T', "l2.test", "v=spf1 exists:%{i}.l2.test ptr ~all"},
      {'T', "l3.test", "v=spf1 a a ~all"},
      {0, NULL, NULL},
  };
  struct spf_tree *t = load(chain, "example.com");
  CHECK_INT(t->lookups, ==, SPF_MAX_LOOKUPS + 1);
  CHECK(strstr(t->problem, "more than 10 DNS lookups") != NULL);
  spf_free(t);

  /* Exactly 10 is fine. */
  static const struct rr ten[] = {
      {'T', "example.com", "v=spf1 a mx include:l1.test include:l2.test -all"},
      {'T', "l1.test", "v=spf1 a:x.l1.test a:y.l1.test mx:l1.test ~all"},
      {'T', "l2.test", "v=spf1 exists:%{i}.l2.test ptr ~all"},
      {0, NULL, NULL},
  };
  t = load(ten, "example.com");
  CHECK_INT(t->lookups, ==, 9);
  CHECK_STR(t->problem, "");
  spf_free(t);

  /* An include loop stops at the limit instead of recursing forever. */
  static const struct rr loop[] = {
      {'T', "a.test", "v=spf1 include:b.test -all"},
      {'T', "b.test", "v=spf1 include:a.test -all"},
      {0, NULL, NULL},
  };
  t = load(loop, "a.test");
  CHECK_INT(t->lookups, ==, SPF_MAX_LOOKUPS + 1);
  CHECK(t->problem[0] != '\0');
  CHECK(queries <= SPF_MAX_LOOKUPS + 1);
  CHECK_INT(eval(t, "192.0.2.1", NULL), ==, SPF_PERMERROR);
  spf_free(t);

  /* More than 10 MX names is permerror when evaluated. */
  static const struct rr mx11[] = {
      {'T', "example.com", "v=spf1 mx -all"},
      {'M', "example.com", "m1.test"}, {'M', "example.com", "m2.test"}, {'M', "example.com", "m3.test"},
      {'M', "example.com", "m4.test"}, {'M', "example.com", "m5.test"}, {'M', "example.com", "m6.test"},
      {'M', "example.com", "m7.test"}, {'M', "example.com", "m8.test"}, {'M', "example.com", "m9.test"},
      {'M', "example.com", "m10.test"}, {'M', "example.com", "m11.test"},
      {0, NULL, NULL},
  };
  t = load(mx11, "example.com");
  CHECK_INT(eval(t, "192.0.2.1", NULL), ==, SPF_PERMERROR);
  spf_free(t);
}

static void test_redirect(void) {
  static const struct rr red[] = {
      {'T', "example.com", "v=spf1 ip4:192.0.2.1 redirect=_spf.example.net"},
      {'T', "_spf.example.net", "v=spf1 ip4:198.51.100.0/24 include:inner.test -all"},
      {'T', "inner.test", "v=spf1 ip6:2001:db8::/32 -all"},
      {0, NULL, NULL},
  };
  struct spf_tree *t = load(red, "example.com");
  CHECK_INT(t->lookups, ==, 2);
  CHECK_INT(eval(t, "192.0.2.1", NULL), ==, SPF_PASS);
  CHECK_INT(eval(t, "198.51.100.77", NULL), ==, SPF_PASS);
  CHECK_INT(eval(t, "2001:db8::1", NULL), ==, SPF_PASS);
  CHECK_INT(eval(t, "203.0.113.1", NULL), ==, SPF_FAIL);
  CHECK(spf_has_include(t, "inner.test")); /* found through the redirect */
  const char *add[] = {"ip4:203.0.113.1"};
  char *fix = spf_suggest(t, add, 1, -1);
  CHECK_STR(fix, "v=spf1 ip4:192.0.2.1 ip4:203.0.113.1 redirect=_spf.example.net");
  free(fix);
  spf_free(t);

  /* A redirect next to an all is ignored and costs nothing. */
  static const struct rr ignored[] = {
      {'T', "example.com", "v=spf1 redirect=nowhere.test ?all"},
      {0, NULL, NULL},
  };
  t = load(ignored, "example.com");
  CHECK_INT(t->lookups, ==, 0);
  CHECK_STR(t->problem, "");
  CHECK_INT(eval(t, "192.0.2.1", NULL), ==, SPF_NEUTRAL);
  spf_free(t);

  /* No match and no all: neutral. */
  static const struct rr open[] = {{'T', "example.com", "v=spf1 ip4:192.0.2.1"}, {0, NULL, NULL}};
  t = load(open, "example.com");
  CHECK_INT(eval(t, "192.0.2.2", NULL), ==, SPF_NEUTRAL);
  spf_free(t);
}

static void test_ip(void) {
  struct spf_ip ip;
  char buf[64];
  CHECK_INT(spf_ip_parse("192.0.2.1", &ip), ==, 0);
  CHECK_INT(ip.family, ==, 4);
  spf_ip_format(&ip, buf, sizeof buf);
  CHECK_STR(buf, "192.0.2.1");
  CHECK_INT(spf_ip_parse("2001:DB8::1", &ip), ==, 0);
  CHECK_INT(ip.family, ==, 6);
  spf_ip_format(&ip, buf, sizeof buf);
  CHECK_STR(buf, "2001:db8::1");
  CHECK_INT(spf_ip_parse("192.0.2", &ip), ==, -1);
  CHECK_INT(spf_ip_parse("", &ip), ==, -1);
  unsigned char a[4] = {10, 1, 2, 3}, b[4] = {10, 1, 2, 200};
  CHECK(prefix_match(a, b, 24));
  CHECK(!prefix_match(a, b, 25));
  CHECK(prefix_match(a, b, 0));
  CHECK(!prefix_match(a, b, 32));
  CHECK_STR(spf_result_name(SPF_SOFTFAIL), "softfail");
}

/* The cases the RFC 7208 suite caught (tests/e2e/test_spf_suite.py runs
 * the whole suite through the CLI). */
static void test_rfc7208_cases(void) {
  /* ':' and '/' inside a domain-spec; only the end is a prefix length. */
  CHECK(parses("v=spf1 a:foo:bar/baz.example.com"));
  CHECK(parses("v=spf1 mx:foo:bar/baz.example.com/24//64"));
  CHECK(!parses("v=spf1 a:example.com/33"));
  CHECK(!parses("v=spf1 a:example.com/024"));
  CHECK(!parses("v=spf1 a:example.com/"));
  static const struct rr colon[] = {{'T', "c.example", "v=spf1 a:foo:bar/baz.example.com -all"},
                                    {'A', "foo:bar/baz.example.com", "192.0.2.7"},
                                    {0, NULL, NULL}};
  struct spf_tree *t = load(colon, "c.example");
  CHECK_INT(eval(t, "192.0.2.7", NULL), ==, SPF_PASS);
  spf_free(t);

  /* Macro syntax in unknown modifiers and exp= (no c, r, t there). */
  CHECK(!parses("v=spf1 -all foo=%abc"));
  CHECK(parses("v=spf1 -all foo=%{l}%%"));
  CHECK(!parses("v=spf1 -all exp=%{r}.example.com"));
  CHECK(parses("v=spf1 -all exp=%{d}.example.com"));

  /* Labels DNS cannot carry are a syntax error (permerror), not a lookup error. */
  CHECK(!parses("v=spf1 a:mail.example...com -all"));
  CHECK(!parses("v=spf1 a:a123456789012345678901234567890123456789012345678901234567890123.example.com -all"));
  CHECK(parses("v=spf1 a:a12345678901234567890123456789012345678901234567890123456789012.example.com -all"));

  /* %%, %_ and %- are literal characters, looked up expanded. */
  static const struct rr mania[] = {{'T', "m.example", "v=spf1 a:macro%%percent%_space%-url.example.com -all"},
                                    {'A', "macro%percent space%20url.example.com", "192.0.2.8"},
                                    {0, NULL, NULL}};
  t = load(mania, "m.example");
  CHECK_INT(eval(t, "192.0.2.8", NULL), ==, SPF_PASS);
  spf_free(t);

  /* An IPv4-mapped IPv6 address is evaluated as IPv4 (section 5). */
  static const struct rr mapped[] = {{'T', "v.example", "v=spf1 -ip4:1.2.3.4 ip6:::FFFF:1.2.3.4"},
                                     {'T', "w.example", "v=spf1 ip6:::FFFF:1.2.3.4 ip4:1.2.3.4 -all"},
                                     {0, NULL, NULL}};
  t = load(mapped, "v.example");
  CHECK_INT(eval(t, "::ffff:1.2.3.4", NULL), ==, SPF_FAIL);
  CHECK_INT(eval(t, "1.2.3.4", NULL), ==, SPF_FAIL);
  spf_free(t);
  int dec = -1;
  t = load(mapped, "w.example");
  CHECK_INT(eval(t, "::ffff:1.2.3.4", &dec), ==, SPF_PASS);
  CHECK_INT(dec, ==, 1);
  spf_free(t);

  /* Void lookups: two may find nothing, the third is permerror. */
  static const struct rr voids[] = {{'T', "two.example", "v=spf1 a:nx1.example a:nx2.example ip4:192.0.2.1 -all"},
                                    {'T', "three.example",
                                     "v=spf1 a:nx1.example a:nx2.example a:nx3.example ip4:192.0.2.1 -all"},
                                    {'T', "hit.example", "v=spf1 ip4:192.0.2.1 a:nx1.example a:nx2.example a:nx3.example -all"},
                                    {0, NULL, NULL}};
  t = load(voids, "two.example");
  CHECK_INT(eval(t, "192.0.2.1", NULL), ==, SPF_PASS);
  spf_free(t);
  t = load(voids, "three.example");
  CHECK_INT(eval(t, "192.0.2.1", NULL), ==, SPF_PERMERROR);
  CHECK_INT(eval(t, "192.0.2.1", NULL), ==, SPF_PERMERROR); /* cached answers count again */
  spf_free(t);
  t = load(voids, "hit.example"); /* matched before the void lookups run */
  CHECK_INT(eval(t, "192.0.2.1", NULL), ==, SPF_PASS);
  spf_free(t);

  /* Lookups are counted as evaluation makes them: the 11th is permerror
   * even when the tree's first branch would have matched later. */
  static const struct rr over[] = {{'T', "e9.example", "v=spf1 a include:inc.example a ip4:1.2.3.4 -all"},
                                   {'T', "inc.example", "v=spf1 a a a a a a a a"},
                                   {'A', "e9.example", "1.2.3.21"},
                                   {'A', "inc.example", "1.2.3.10"},
                                   {0, NULL, NULL}};
  t = load(over, "e9.example");
  CHECK_INT(eval(t, "1.2.3.4", NULL), ==, SPF_PERMERROR);
  CHECK_INT(eval(t, "1.2.3.21", NULL), ==, SPF_PASS);
  spf_free(t);
}

int main(void) {
  test_syntax();
  test_rfc7208_cases();
  test_eval();
  test_problems();
  test_limits();
  test_redirect();
  test_ip();
  return CHECK_DONE();
}
