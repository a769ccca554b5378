/*
 * live: what the transport drivers share (test_smtp_live.c,
 * test_mailgun_live.c, run by tests/e2e/test_smtp_transport.py and
 * test_mailgun_transport.py against the fixtures): settings read from the
 * environment, and the message to send.
 */
#ifndef RELAYQ_TEST_LIVE_H
#define RELAYQ_TEST_LIVE_H

#include <stdio.h>
#include <stdlib.h>

#include "util.h"

/* The variable's value, or def when unset or empty. */
static const char *env(const char *name, const char *def) {
  const char *v = getenv(name);
  return v && *v ? v : def;
}

static long env_long(const char *name, long def) {
  const char *v = getenv(name);
  return v && *v ? strtol(v, NULL, 10) : def;
}

/* The message: the file the variable `var` names, else def (len bytes).
 * *msg is malloc'd. Returns 0, or -1 after saying why. */
static int live_message(const char *var, const char *def, size_t def_len, char **msg, size_t *len) {
  const char *file = env(var, NULL);
  if (file == NULL) {
    *msg = rq_xmemdup(def, def_len);
    *len = def_len;
    return 0;
  }
  FILE *f = fopen(file, "rb");
  if (!f) {
    fprintf(stderr, "Cannot open %s %s.\n", var, file);
    return -1;
  }
  struct rq_buf b;
  rq_buf_init(&b);
  char chunk[65536];
  size_t got;
  while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) rq_buf_append(&b, chunk, got);
  fclose(f);
  *msg = b.data ? rq_buf_steal(&b, len) : (*len = 0, rq_xstrdup(""));
  return 0;
}

#endif
