/*
 * keys: the Redis keys beyond relayq.h's (the contract's v1.1 per-tenant
 * keys and the worker's own bookkeeping), built by the same code as
 * relayq_key (keys.c), so the worker, the CLI and the console spell every
 * key one way. librelayq's house API (producer/lib/CMakeLists.txt); not
 * installed.
 */
#ifndef RELAYQ_KEYS_H
#define RELAYQ_KEYS_H

#include <stddef.h>

/* Numbered after relayq.h's enum relayq_key_kind, which relayq__key
 * also takes. NAME and SUB are its two name arguments. */
enum relayq__key_kind {
  RELAYQ__KEY_TQ = 64,    /* P:tq:QUEUE:TENANT (name QUEUE, sub TENANT) */
  RELAYQ__KEY_TRING,      /* P:tring:QUEUE */
  RELAYQ__KEY_BREAKER,    /* P:breaker:TENANT */
  RELAYQ__KEY_ROUTE,      /* P:tenant:TENANT:route:NAME (sub NAME) */
  RELAYQ__KEY_OAUTH,      /* P:oauth:TENANT, or P:oauth:TENANT:route:NAME (sub NAME) */
  RELAYQ__KEY_TPAUSE,     /* P:tpause:TENANT: paused by its quota until the value (ms) */
  RELAYQ__KEY_THOLD,      /* P:thold:TENANT: held by an operator (relayq tenant pause) */
  RELAYQ__KEY_AUTOREPLY,  /* P:autoreply:TENANT: (a prefix: the CLAIM script appends the address) */
  RELAYQ__KEY_STATS,      /* P:stats:TENANT, or P:stats:TENANT:YYYYMMDD (sub the UTC day) */
  RELAYQ__KEY_OAUTH_LOCK, /* P:oauth:TENANT[:route:NAME]:lock: one worker refreshes the token */
};

/* relayq_key for any kind, public or above: writes the key into dst
 * (always NUL-terminated when cap > 0) and returns the length it needs,
 * excluding the NUL (>= cap: truncated). sub is NULL where the kind has
 * none, or where it is optional and absent. */
size_t relayq__key(char *dst, size_t cap, const char *prefix, int kind, const char *name, const char *sub);

/* The key's name without the prefix and its colon ("tenant:T",
 * "tenant:T:route:R", "oauth:T"): the place a sealed secret is bound to
 * (its AAD, producer/lib/secret.c), so a value copied to another key does
 * not open. Same arguments (but the prefix) and return as relayq__key. */
size_t relayq__key_place(char *dst, size_t cap, int kind, const char *name, const char *sub);

/* One rate_limits window of a tenant, or of one of its named routes
 * (route NULL: the tenant's own limits): P:rate:T:PERIOD_MS:m (messages)
 * or :r (recipients), P:rate:T:route:R:PERIOD_MS:m|r. The CLAIM script
 * reads PERIOD_MS and the unit back from the end of the name and keeps
 * the window's counts in KEY:c. Same return as relayq__key. */
size_t relayq__rate_key(char *dst, size_t cap, const char *prefix, const char *tenant, const char *route,
                        long long period_ms, int rcpt);

#endif
