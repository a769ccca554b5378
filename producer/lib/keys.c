/*
 * keys: every Redis key name of the contract (CONTRACT.md "Redis keys"),
 * built from the prefix in this one place so producers, the CLI and the
 * worker can never disagree on a spelling.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

size_t relayq_key(char *dst, size_t cap, const char *prefix,
                  enum relayq_key_kind kind, const char *name) {
  const char *part = NULL; /* "queue", "inflight", ... */
  int named = 1;           /* does the key end in ":NAME"? */
  switch (kind) {
  case RELAYQ_KEY_QUEUE: part = "queue"; break;
  case RELAYQ_KEY_INFLIGHT: part = "inflight"; break;
  case RELAYQ_KEY_DELAYED: part = "delayed"; named = 0; break;
  case RELAYQ_KEY_DEAD: part = "dead"; named = 0; break;
  case RELAYQ_KEY_STATUS: part = "status"; break;
  case RELAYQ_KEY_TENANT: part = "tenant"; break;
  case RELAYQ_KEY_EVENTS: part = "events"; named = 0; break;
  case RELAYQ_KEY_WORKER: part = "worker"; break;
  case RELAYQ_KEY_WORKERS: part = "workers"; named = 0; break;
  case RELAYQ_KEY_QUOTA: part = "quota"; break;
  }
  if (prefix == NULL || prefix[0] == '\0') prefix = RELAYQ_DEFAULT_PREFIX;
  if (part == NULL) part = "unknown";
  if (kind == RELAYQ_KEY_QUEUE && (name == NULL || name[0] == '\0'))
    name = RELAYQ_DEFAULT_QUEUE;
  if (name == NULL) name = "";
  /* The contract of snprintf("%s:%s:%s"): the length it needs, and a
   * NUL-terminated (possibly truncated) result; by hand, as workers build
   * keys for every message. */
  const char *parts[5] = {prefix, ":", part, ":", name};
  size_t n = 0;
  for (int i = 0; i < (named ? 5 : 3); i++) {
    size_t len = strlen(parts[i]);
    if (n < cap) memcpy(dst + n, parts[i], n + len < cap ? len : cap - n);
    n += len;
  }
  if (cap > 0) dst[n < cap ? n : cap - 1] = '\0';
  return n;
}
