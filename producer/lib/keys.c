/*
 * keys: every Redis key name, spelled in this one place: the contract's
 * (relayq.h, CONTRACT.md "Redis keys") and the worker's bookkeeping
 * (house/keys.h). The C code of the library, the worker, the CLI and the
 * console builds its keys here. The Lua scripts (worker/scripts.c) get
 * the prefix and build the per-tenant keys they discover while running
 * (P:tpause:T, P:tq:Q:T) with the same spellings; the rate-limit windows
 * (P:rate:..., worker/delivery.c) are the one family spelled elsewhere.
 */
#include <stdio.h>

#include "internal.h"
#include "keys.h"

/* One kind's spelling: its part after the prefix, whether a name follows,
 * and what goes between the name and an optional sub. */
struct shape {
  const char *part;
  int named;
  const char *sub_sep; /* NULL: no sub */
};

static struct shape shape_of(int kind) {
  switch (kind) {
  case RELAYQ_KEY_QUEUE: return (struct shape){"queue", 1, NULL};
  case RELAYQ_KEY_INFLIGHT: return (struct shape){"inflight", 1, NULL};
  case RELAYQ_KEY_DELAYED: return (struct shape){"delayed", 0, NULL};
  case RELAYQ_KEY_DEAD: return (struct shape){"dead", 0, NULL};
  case RELAYQ_KEY_STATUS: return (struct shape){"status", 1, NULL};
  case RELAYQ_KEY_TENANT: return (struct shape){"tenant", 1, NULL};
  case RELAYQ_KEY_EVENTS: return (struct shape){"events", 0, NULL};
  case RELAYQ_KEY_WORKER: return (struct shape){"worker", 1, NULL};
  case RELAYQ_KEY_WORKERS: return (struct shape){"workers", 0, NULL};
  case RELAYQ_KEY_QUOTA: return (struct shape){"quota", 1, NULL};
  case RELAYQ__KEY_TQ: return (struct shape){"tq", 1, ":"};
  case RELAYQ__KEY_TRING: return (struct shape){"tring", 1, NULL};
  case RELAYQ__KEY_BREAKER: return (struct shape){"breaker", 1, NULL};
  case RELAYQ__KEY_ROUTE: return (struct shape){"tenant", 1, ":route:"};
  case RELAYQ__KEY_OAUTH: return (struct shape){"oauth", 1, ":route:"};
  case RELAYQ__KEY_TPAUSE: return (struct shape){"tpause", 1, NULL};
  case RELAYQ__KEY_THOLD: return (struct shape){"thold", 1, NULL};
  case RELAYQ__KEY_AUTOREPLY: return (struct shape){"autoreply", 1, ":"};
  case RELAYQ__KEY_STATS: return (struct shape){"stats", 1, ":"};
  }
  return (struct shape){"unknown", 1, NULL};
}

size_t relayq__key(char *dst, size_t cap, const char *prefix, int kind, const char *name, const char *sub) {
  struct shape sh = shape_of(kind);
  if (prefix == NULL || prefix[0] == '\0') prefix = RELAYQ_DEFAULT_PREFIX;
  if (kind == RELAYQ_KEY_QUEUE && (name == NULL || name[0] == '\0')) name = RELAYQ_DEFAULT_QUEUE;
  if (name == NULL) name = "";
  /* The autoreply key is a prefix the script completes: its separator
   * comes even without a sub. */
  if (kind == RELAYQ__KEY_AUTOREPLY && sub == NULL) sub = "";
  int n;
  /* snprintf gives exactly the contract of this function: the length it
   * needs, and a NUL-terminated (possibly truncated) result. */
  if (!sh.named) n = snprintf(dst, cap, "%s:%s", prefix, sh.part);
  else if (sh.sub_sep == NULL || sub == NULL) n = snprintf(dst, cap, "%s:%s:%s", prefix, sh.part, name);
  else n = snprintf(dst, cap, "%s:%s:%s%s%s", prefix, sh.part, name, sh.sub_sep, sub);
  if (n < 0) {
    if (cap > 0) dst[0] = '\0';
    return 0;
  }
  return (size_t)n;
}

size_t relayq_key(char *dst, size_t cap, const char *prefix, enum relayq_key_kind kind, const char *name) {
  return relayq__key(dst, cap, prefix, (int)kind, name, NULL);
}
