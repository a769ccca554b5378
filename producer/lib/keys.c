/*
 * keys: every Redis key name, spelled in this one place: the contract's
 * (relayq.h, CONTRACT.md "Redis keys") and the worker's bookkeeping
 * (house/keys.h). The C code of the library, the worker, the CLI and the
 * console builds its keys here. The Lua scripts (producer/lib/scripts.c) get
 * the prefix and build the per-tenant keys they discover while running
 * (P:tpause:T, P:tq:Q:T) with the same spellings.
 */
#include <string.h>

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
  case RELAYQ__KEY_OAUTH_LOCK: return (struct shape){"oauth", 1, ":route:"};
  }
  return (struct shape){"unknown", 1, NULL};
}

/* Appends s at dst + *n while it fits in cap (keeping room for the NUL);
 * *n counts every byte, written or not. The worker builds a few keys per
 * message, and snprintf costs ten times these copies. */
static void put(char *dst, size_t cap, size_t *n, const char *s) {
  size_t len = strlen(s);
  if (*n < cap) {
    size_t room = cap - 1 - *n;
    memcpy(dst + *n, s, len < room ? len : room);
  }
  *n += len;
}

/* A key (prefix not NULL) or its place (prefix NULL). */
static size_t spell(char *dst, size_t cap, const char *prefix, int kind, const char *name, const char *sub) {
  struct shape sh = shape_of(kind);
  if (kind == RELAYQ_KEY_QUEUE && (name == NULL || name[0] == '\0')) name = RELAYQ_DEFAULT_QUEUE;
  if (name == NULL) name = "";
  /* The autoreply key is a prefix the script completes: its separator
   * comes even without a sub. */
  if (kind == RELAYQ__KEY_AUTOREPLY && sub == NULL) sub = "";
  size_t n = 0;
  if (prefix != NULL) {
    put(dst, cap, &n, prefix);
    put(dst, cap, &n, ":");
  }
  put(dst, cap, &n, sh.part);
  if (sh.named) {
    put(dst, cap, &n, ":");
    put(dst, cap, &n, name);
    if (sh.sub_sep != NULL && sub != NULL) {
      put(dst, cap, &n, sh.sub_sep);
      put(dst, cap, &n, sub);
    }
  }
  if (kind == RELAYQ__KEY_OAUTH_LOCK) put(dst, cap, &n, ":lock");
  /* Always terminated when there is room for anything; the return value
   * is the length needed, as snprintf's. */
  if (cap > 0) dst[n < cap ? n : cap - 1] = '\0';
  return n;
}

size_t relayq__key(char *dst, size_t cap, const char *prefix, int kind, const char *name, const char *sub) {
  if (prefix == NULL || prefix[0] == '\0') prefix = RELAYQ_DEFAULT_PREFIX;
  return spell(dst, cap, prefix, kind, name, sub);
}

size_t relayq__key_place(char *dst, size_t cap, int kind, const char *name, const char *sub) {
  return spell(dst, cap, NULL, kind, name, sub);
}

size_t relayq_key(char *dst, size_t cap, const char *prefix, enum relayq_key_kind kind, const char *name) {
  return relayq__key(dst, cap, prefix, (int)kind, name, NULL);
}

size_t relayq__rate_key(char *dst, size_t cap, const char *prefix, const char *tenant, const char *route,
                        long long period_ms, int rcpt) {
  /* Digits without snprintf: CLAIM builds one of these per limit and message. */
  char period[24];
  size_t pl = 0;
  unsigned long long v = period_ms > 0 ? (unsigned long long)period_ms : 0;
  char rev[24];
  do rev[pl++] = (char)('0' + v % 10); while ((v /= 10) && pl < sizeof rev);
  for (size_t i = 0; i < pl; i++) period[i] = rev[pl - 1 - i];
  period[pl] = '\0';
  if (prefix == NULL || prefix[0] == '\0') prefix = RELAYQ_DEFAULT_PREFIX;
  size_t n = 0;
  put(dst, cap, &n, prefix);
  put(dst, cap, &n, ":rate:");
  put(dst, cap, &n, tenant ? tenant : "");
  if (route != NULL) {
    put(dst, cap, &n, ":route:");
    put(dst, cap, &n, route);
  }
  put(dst, cap, &n, ":");
  put(dst, cap, &n, period);
  put(dst, cap, &n, rcpt ? ":r" : ":m");
  if (cap > 0) dst[n < cap ? n : cap - 1] = '\0';
  return n;
}
