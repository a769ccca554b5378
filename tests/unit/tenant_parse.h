/*
 * tenant_parse: what the tenant model's unit tests (test_tenant.c,
 * test_oauth_tenant.c) share: a hash written inline as field, value, ...
 * pairs, parsed for tenant "acme" with the test's KEY, and the check that
 * a hash is refused with a given message. Include after check.h; the
 * test defines KEY (32 bytes) and gets `err` (the last parse's message).
 */
#ifndef RELAYQ_TEST_TENANT_PARSE_H
#define RELAYQ_TEST_TENANT_PARSE_H

#include <string.h>

#include "relayq/relayq.h"
#include "tenant.h"

static char err[512];

/* Parses NULL-terminated field, value, field, value, ... */
static struct rq_tenant *parse_opts(const unsigned char *key, int require_enc, int strict, const char *const *kv) {
  const char *f[64], *v[64];
  size_t n = 0;
  while (kv[2 * n] != NULL) {
    f[n] = kv[2 * n];
    v[n] = kv[2 * n + 1];
    n++;
  }
  struct rq_tenant *t = NULL;
  int rc = rq_tenant_parse("acme", f, v, n, key, require_enc, strict, &t, err, sizeof err);
  CHECK((rc == 0) == (t != NULL));
  return t;
}

#define KV(...) ((const char *const[]){__VA_ARGS__, NULL})
#define PARSE(...) parse_opts(KEY, 0, 1, KV(__VA_ARGS__))

/* Expects a parse failure whose message contains `needle`. */
#define CHECK_REJECT(needle, ...)                                              \
  do {                                                                         \
    struct rq_tenant *t_ = PARSE(__VA_ARGS__);                                 \
    CHECK(t_ == NULL);                                                         \
    if (strstr(err, (needle)) != NULL) check_passed_++;                        \
    else CHECK_FAIL_("error \"%s\" lacks \"%s\"", err, (needle));              \
    rq_tenant_free(t_);                                                        \
  } while (0)

#endif
