/*
 * keys: every Redis key name of the contract (CONTRACT.md "Redis keys"),
 * built from the prefix in this one place so producers, the CLI and the
 * worker can never disagree on a spelling.
 */
#include <stdio.h>

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
  /* snprintf gives exactly the contract of this function: the length it
   * needs, and a NUL-terminated (possibly truncated) result. */
  int n = named ? snprintf(dst, cap, "%s:%s:%s", prefix, part, name)
                : snprintf(dst, cap, "%s:%s", prefix, part);
  if (n < 0) {
    if (cap > 0) dst[0] = '\0';
    return 0;
  }
  return (size_t)n;
}
