/*
 * Unit tests for redis:// URL parsing (producer/lib/url.c), key names
 * (keys.c), ids and the clock (ids.c), error names and final states.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "relayq/relayq.h"

struct url_ok {
  const char *url;
  const char *host;
  int port;
  const char *user, *password;
  int db;
};

static const struct url_ok good_urls[] = {
    {"redis://127.0.0.1:6379", "127.0.0.1", 6379, "", "", 0},
    {"redis://localhost", "localhost", 6379, "", "", 0},
    {"redis://localhost/", "localhost", 6379, "", "", 0},
    {"redis://redis.internal:7000/3", "redis.internal", 7000, "", "", 3},
    {"redis://:s3cret@h:1/15", "h", 1, "", "s3cret", 15},
    {"redis://app:s3cret@h", "h", 6379, "app", "s3cret", 0},
    {"redis://app:@h", "h", 6379, "app", "", 0},
    {"redis://:p%40ss%3Aw%2Fd%25@h:6380/2", "h", 6380, "", "p@ss:w/d%", 2},
    {"redis://us%65r:pw@h", "h", 6379, "user", "pw", 0},
    {"redis://:p@ss/word@h:6390", "h", 6390, "", "p@ss/word", 0},
    {"redis://[::1]:6390/1", "::1", 6390, "", "", 1},
    {"redis://[::1]", "::1", 6379, "", "", 0},
    {"redis://:pw@[fe80::1]:7", "fe80::1", 7, "", "pw", 0},
    {"redis://h:65535", "h", 65535, "", "", 0},
};

struct url_bad {
  const char *url;
  const char *expect; /* substring of the message */
};

static const struct url_bad bad_urls[] = {
    {"http://h", "redis://"},
    {"redis+sentinel://h:26379", "master's name"},
    {"redis+sentinel://h:26379/", "master's name"},
    {"rediss+sentinel://:hunter2@a,b:0/m", "port"},
    {"redis+sentinel://a,b/m/x", "database"},
    {"redis+sentinel://1,2,3,4,5,6,7,8,9/m", "at most 8"},
    {"h:6379", "redis://"},
    {"redis://", "no host"},
    {"redis://:hunter2@", "no host"},
    {"redis://:hunter2@:6379", "no host"},
    {"redis://h:0", "port"},
    {"redis://h:65536", "port"},
    {"redis://h:abc", "port"},
    {"redis://h:", "port"},
    {"redis://h/x", "database"},
    {"redis://h/-1", "database"},
    {"redis://h/1?timeout=3", "query"},
    {"redis://[::1", "IPv6"},
    {"redis://[::1]x", "IPv6"},
    {"redis://hunter2@h", "colon"},
    {"redis://:hunter2%zz@h", "percent"},
    {"redis://:hunter2%2@h", "percent"},
    {"redis://:hunter2%00@h", "percent"},
    {"redis://h ost", "space"},
    {"redis://:hunter2@h:99999", "port"},
};

static void test_tls_sentinel_urls(void) {
  struct relayq_redis_url u;
  struct relayq_error err;
  CHECK_INT(relayq_redis_url_parse("rediss://:pw@redis.example:6380/2", &u, &err), ==, 0);
  CHECK_INT(u.tls, ==, 1);
  CHECK_STR(u.host, "redis.example");
  CHECK_INT(u.port, ==, 6380);
  CHECK_INT(u.n_sentinels, ==, 0);
  CHECK_INT(relayq_redis_url_parse("redis://h", &u, &err), ==, 0);
  CHECK_INT(u.tls, ==, 0);
  CHECK_INT(relayq_redis_url_parse("redis+sentinel://app:p%40w@s1,s2:26380,[::1]:7/mymaster/3", &u, &err), ==, 0);
  CHECK_INT(u.tls, ==, 0);
  CHECK_INT(u.n_sentinels, ==, 3);
  CHECK_STR(u.sentinels[0].host, "s1");
  CHECK_INT(u.sentinels[0].port, ==, 26379);
  CHECK_STR(u.sentinels[1].host, "s2");
  CHECK_INT(u.sentinels[1].port, ==, 26380);
  CHECK_STR(u.sentinels[2].host, "::1");
  CHECK_INT(u.sentinels[2].port, ==, 7);
  CHECK_STR(u.master, "mymaster");
  CHECK_INT(u.db, ==, 3);
  CHECK_STR(u.user, "app");
  CHECK_STR(u.password, "p@w");
  CHECK_STR(u.host, "s1");
  CHECK_INT(relayq_redis_url_parse("rediss+sentinel://127.0.0.1:5000/m", &u, &err), ==, 0);
  CHECK_INT(u.tls, ==, 1);
  CHECK_INT(u.n_sentinels, ==, 1);
  CHECK_STR(u.master, "m");
  CHECK_INT(u.db, ==, 0);
}

static void test_urls(void) {
  for (size_t i = 0; i < sizeof good_urls / sizeof *good_urls; i++) {
    const struct url_ok *c = &good_urls[i];
    struct relayq_redis_url u;
    struct relayq_error err;
    int r = relayq_redis_url_parse(c->url, &u, &err);
    if (r != 0) fprintf(stderr, "url %s: %s\n", c->url, err.message);
    CHECK_INT(r, ==, 0);
    CHECK_STR(u.host, c->host);
    CHECK_INT(u.port, ==, c->port);
    CHECK_STR(u.user, c->user);
    CHECK_STR(u.password, c->password);
    CHECK_INT(u.db, ==, c->db);
  }
  for (size_t i = 0; i < sizeof bad_urls / sizeof *bad_urls; i++) {
    const struct url_bad *c = &bad_urls[i];
    struct relayq_redis_url u;
    struct relayq_error err;
    int r = relayq_redis_url_parse(c->url, &u, &err);
    if (r != RELAYQ_EURL || strstr(err.message, c->expect) == NULL)
      fprintf(stderr, "url %s: r=%d \"%s\" (want \"%s\")\n", c->url, r, err.message, c->expect);
    CHECK_INT(r, ==, RELAYQ_EURL);
    CHECK(strstr(err.message, c->expect) != NULL);
    /* Never echo the password, and never leave it behind in the struct. */
    CHECK(strstr(err.message, "hunter2") == NULL);
    CHECK_STR(u.password, "");
  }
  struct relayq_redis_url u;
  CHECK_INT(relayq_redis_url_parse(NULL, &u, NULL), ==, RELAYQ_EINVAL);
  /* A password at the 255-byte limit fits; one byte more does not. */
  char url[400];
  char pw[300];
  memset(pw, 'p', 256);
  pw[255] = '\0';
  snprintf(url, sizeof url, "redis://:%s@h", pw);
  CHECK_INT(relayq_redis_url_parse(url, &u, NULL), ==, 0);
  CHECK_INT(strlen(u.password), ==, 255);
  pw[255] = 'p';
  pw[256] = '\0';
  snprintf(url, sizeof url, "redis://:%s@h", pw);
  struct relayq_error err;
  CHECK_INT(relayq_redis_url_parse(url, &u, &err), ==, RELAYQ_EURL);
  CHECK(strstr(err.message, "too long") != NULL);
}

static void test_keys(void) {
  struct {
    enum relayq_key_kind kind;
    const char *name;
    const char *want;
  } cases[] = {
      {RELAYQ_KEY_QUEUE, "default", "P:queue:default"},
      {RELAYQ_KEY_QUEUE, NULL, "P:queue:default"},
      {RELAYQ_KEY_INFLIGHT, "w1-42", "P:inflight:w1-42"},
      {RELAYQ_KEY_DELAYED, "ignored", "P:delayed"},
      {RELAYQ_KEY_DEAD, NULL, "P:dead"},
      {RELAYQ_KEY_STATUS, "job-1", "P:status:job-1"},
      {RELAYQ_KEY_TENANT, "acme", "P:tenant:acme"},
      {RELAYQ_KEY_EVENTS, NULL, "P:events"},
      {RELAYQ_KEY_WORKER, "w1", "P:worker:w1"},
      {RELAYQ_KEY_WORKERS, NULL, "P:workers"},
      {RELAYQ_KEY_QUOTA, "acme", "P:quota:acme"},
  };
  char buf[128];
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    size_t n = relayq_key(buf, sizeof buf, "P", cases[i].kind, cases[i].name);
    CHECK_STR(buf, cases[i].want);
    CHECK_INT(n, ==, strlen(cases[i].want));
  }
  /* Default prefix, truncation and the length-needed contract. */
  relayq_key(buf, sizeof buf, NULL, RELAYQ_KEY_DEAD, NULL);
  CHECK_STR(buf, "relayq:dead");
  char small[8];
  size_t need = relayq_key(small, sizeof small, "relayq", RELAYQ_KEY_STATUS, "abcdef");
  CHECK_INT(need, ==, strlen("relayq:status:abcdef"));
  CHECK_STR(small, "relayq:");
  CHECK_INT(relayq_key(NULL, 0, "p", RELAYQ_KEY_DEAD, NULL), ==, 6);
}

static void test_ids(void) {
  CHECK(relayq_valid_id("a"));
  CHECK(relayq_valid_id("A-z_0.9:x@y"));
  CHECK(!relayq_valid_id(""));
  CHECK(!relayq_valid_id(NULL));
  CHECK(!relayq_valid_id("a b"));
  CHECK(!relayq_valid_id("a/b"));
  CHECK(!relayq_valid_id("\xc3\xa9"));
  char id[200];
  memset(id, 'x', 128);
  id[128] = '\0';
  CHECK(relayq_valid_id(id));
  id[128] = 'x';
  id[129] = '\0';
  CHECK(!relayq_valid_id(id));

  /* New ids: valid, 28 hex chars, distinct, and ordered by time. */
  enum { N = 2000 };
  static char ids[N][40];
  int dup = 0, unordered = 0, invalid = 0;
  for (int i = 0; i < N; i++) {
    relayq_id_new(ids[i]);
    if (!relayq_valid_id(ids[i]) || strlen(ids[i]) != 28 ||
        strspn(ids[i], "0123456789abcdef") != 28)
      invalid++;
    if (i > 0 && strncmp(ids[i - 1], ids[i], 12) > 0) unordered++;
    for (int k = 0; k < i && k < 50; k++)
      if (strcmp(ids[i], ids[i - 1 - k]) == 0) dup++;
  }
  CHECK_INT(invalid, ==, 0);
  CHECK_INT(unordered, ==, 0);
  CHECK_INT(dup, ==, 0);
  /* The time prefix is the clock in ms. */
  int64_t now = relayq_now_ms();
  char fresh[40];
  relayq_id_new(fresh);
  char prefix[13];
  memcpy(prefix, fresh, 12);
  prefix[12] = '\0';
  long long t = strtoll(prefix, NULL, 16);
  CHECK(t >= now && t <= now + 1000);
  CHECK(now > 1600000000000LL);
}

static void test_misc(void) {
  CHECK_STR(relayq_strerror(0), "success");
  CHECK_STR(relayq_strerror(RELAYQ_EAUTH), "authentication failed");
  CHECK_STR(relayq_strerror(RELAYQ_EIO), "input/output error");
  CHECK_STR(relayq_strerror(-999), "unknown error");
  CHECK(relayq_state_is_final("sent"));
  CHECK(relayq_state_is_final("partial"));
  CHECK(relayq_state_is_final("failed"));
  CHECK(!relayq_state_is_final("queued"));
  CHECK(!relayq_state_is_final("retry"));
  CHECK(!relayq_state_is_final("deferred"));
  CHECK(!relayq_state_is_final("sending"));
  CHECK(!relayq_state_is_final(NULL));
  CHECK(relayq_status_field(NULL, "state") == NULL);
  struct relayq_kv f[] = {{"state", "sent"}, {"tenant", "acme"}};
  struct relayq_status st = {f, 2};
  CHECK_STR(relayq_status_field(&st, "tenant"), "acme");
  CHECK(relayq_status_field(&st, "nope") == NULL);
  /* Connecting to a port nobody listens on fails with a sentence. */
  struct relayq_client *c = (struct relayq_client *)&st;
  struct relayq_error err;
  CHECK_INT(relayq_connect("redis://127.0.0.1:1", NULL, &c, &err), ==, RELAYQ_ECONNECT);
  CHECK(c == NULL);
  CHECK(strstr(err.message, "127.0.0.1:1") != NULL);
  CHECK_INT(relayq_connect("redis+sentinel://h", NULL, &c, &err), ==, RELAYQ_EURL);
  CHECK_INT(relayq_connect("redis://h", "bad prefix", &c, &err), ==, RELAYQ_EINVAL);
  relayq_close(NULL);
}

/* The masker hides exactly what the parser reads as the password, for
 * passwords holding '@' and ':' escaped or not. */
static void test_redact(void) {
  static const struct {
    const char *url, *masked, *password;
  } cases[] = {
      {"redis://:p@ss:w0rd@h:6379/0", "redis://:***@h:6379/0", "p@ss:w0rd"},
      {"redis://u:p@ss@h", "redis://u:***@h", "p@ss"},
      {"redis://:p%40ss%3Aw0rd@h", "redis://:***@h", "p@ss:w0rd"},
      {"rediss://default:a@b:c@h:1/2", "rediss://default:***@h:1/2", "a@b:c"},
      {"redis://:pa/ss@h/0", "redis://:***@h/0", "pa/ss"},
      {"smtp://user%40x:p@ss@gw:25", "smtp://user%40x:***@gw:25", NULL},
      {"redis://h:6379", "redis://h:6379", ""},
  };
  char out[300];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    relayq_url_redact(cases[i].url, out, sizeof out);
    CHECK_STR(out, cases[i].masked);
    struct relayq_redis_url u;
    struct relayq_error e;
    if (cases[i].password && strncmp(cases[i].url, "redis", 5) == 0) {
      CHECK_INT(relayq_redis_url_parse(cases[i].url, &u, &e), ==, 0);
      CHECK_STR(u.password, cases[i].password);
    }
  }
  relayq_url_redact(NULL, out, sizeof out);
  CHECK_STR(out, "(none)");
}

int main(void) {
  test_redact();
  test_urls();
  test_tls_sentinel_urls();
  test_keys();
  test_ids();
  test_misc();
  return CHECK_DONE();
}
