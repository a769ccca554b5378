/*
 * libFuzzer target for rq_tenant_parse and rq_tenant_parse_route: a tenant
 * hash is whatever a platform backend or an attacker with Redis access
 * wrote, so no byte sequence may crash, leak or read out of bounds.
 *
 * Input: byte 0 picks the mode (bit 0 strict, bit 1 require_encrypted,
 * bit 2 a secret key is given, bit 3 each listed route is also parsed from
 * the same pairs); the rest is split at '\n' into field, value, field,
 * value, ... Build with -DRELAYQ_FUZZ=ON (clang).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tenant.h"

/* A little over the parser's own bound, so that bound is exercised too. */
#define MAX_TOKENS (2 * RQ_TENANT_MAX_FIELDS + 8)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const unsigned char key[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
                                        12, 13, 14, 15, 16, 17, 18, 19, 20,
                                        21, 22, 23, 24, 25, 26, 27, 28, 29,
                                        30, 31, 32};
  if (size == 0) return 0;
  unsigned mode = data[0];
  data++;
  size--;

  /* One NUL-terminated copy; tokens point into it. */
  char *buf = malloc(size + 1);
  if (buf == NULL) return 0;
  memcpy(buf, data, size);
  buf[size] = '\0';
  const char *tok[MAX_TOKENS];
  size_t ntok = 0;
  char *p = buf;
  while (ntok < MAX_TOKENS) {
    tok[ntok++] = p;
    char *nl = memchr(p, '\n', (size_t)(buf + size - p));
    if (nl == NULL) break;
    *nl = '\0';
    p = nl + 1;
  }
  size_t npairs = ntok / 2;
  const char *fields[MAX_TOKENS / 2], *values[MAX_TOKENS / 2];
  for (size_t i = 0; i < npairs; i++) {
    fields[i] = tok[2 * i];
    values[i] = tok[2 * i + 1];
  }

  char err[256];
  struct rq_tenant *t = NULL;
  int rc = rq_tenant_parse("fuzz", fields, values, npairs,
                           (mode & 4) ? key : NULL, (mode & 2) != 0,
                           (mode & 1) != 0, &t, err, sizeof err);
  if (rc == 0 && (mode & 8)) {
    for (size_t i = 0; i < t->n_routes; i++)
      (void)rq_tenant_parse_route(t, t->route_names[i], fields, values, npairs,
                                  (mode & 4) ? key : NULL, (mode & 2) != 0,
                                  err, sizeof err);
  }
  /* The error is always a terminated string. */
  if (rc != 0 && strnlen(err, sizeof err) == sizeof err) abort();
  rq_tenant_free(t);
  free(buf);
  return 0;
}
