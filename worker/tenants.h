/*
 * tenants: the worker's cache of tenant settings (P:tenant:T and its route
 * hashes P:tenant:T:route:NAME), read asynchronously and kept for
 * cfg->tenant_cache_ms so a change is picked up within that time.
 *
 * Concurrent lookups of one tenant share one read. An entry is reference
 * counted: a job holds its entry from lookup until it is freed, so
 * settings never change under a job in flight; a stale entry is replaced
 * in the table and freed when its last job lets go.
 *
 * The table holds at most cfg->tenant_cache_max entries: a new tenant
 * pushes out the least recently used one, and expired entries are
 * dropped from the cold end as lookups go by, so memory follows the
 * tenants active within the cache lifetime (docs/tenants.md).
 *
 * A tenant with no hash is a valid tenant with every default (platform
 * gateway). A hash that does not parse yields an entry with `error` set:
 * its jobs fail with error `policy` and that sentence; others go on. A
 * route hash that is missing, unreadable, invalid or holds a secret that
 * does not open marks that route alone unusable (rq_tenant_route_unusable):
 * only the jobs that name it fail; the tenant's other jobs go on.
 *
 * Calls run downward: tenants.c calls rconn and librelayq only; a lookup's
 * answer goes back through the callback its caller passes (delivery's);
 * rq_tenants_get says who owns what.
 */
#ifndef RQ_TENANTS_H
#define RQ_TENANTS_H

#include <stdint.h>

#include "hmap.h"
#include "tenant.h"

struct rq_engine;
struct rq_jobctx;

struct rq_tenant_entry {
  struct rq_hent h; /* in the cache's table while in_table (hmap.h) */
  char *id;
  struct rq_tenant *t;   /* parsed settings; NULL when error[0] */
  char error[400];       /* why the settings are unusable */
  int error_auth;        /* error is a secret sealed for another place: jobs end `auth` */
  int64_t loaded_ms;
  int refs;              /* jobs holding it + 1 while in the table */
  int in_table;
  int loading;           /* a read is in flight */
  int routes_pending;    /* route hashes still to read */
  struct rq_waiter *waiters;
  struct rq_tenant_entry *lru_prev, *lru_next; /* while in the table */
  struct rq_engine *eng;
  void *dkim_key;        /* EVP_PKEY parsed once per settings version, or NULL */
  char dkim_error[300];
};

typedef void (*rq_tenant_cb)(struct rq_jobctx *jc, struct rq_tenant_entry *e);

/* Looks up tenant settings for jc; cb runs exactly once, possibly before
 * this returns (cache hit), with a referenced entry now owned by jc
 * (jc->tenant). While Redis is down the lookup waits and is retried. */
void rq_tenants_get(struct rq_engine *eng, struct rq_jobctx *jc, const char *tenant_id, rq_tenant_cb cb);
void rq_tenants_release(struct rq_engine *eng, struct rq_tenant_entry *e);
/* Re-issues reads that failed while Redis was away. */
void rq_tenants_retry(struct rq_engine *eng);
void rq_tenants_free_all(struct rq_engine *eng);

/* For metrics: lookups served from the table (a read in flight joined
 * counts too), lookups that started a read, entries pushed out by the
 * bound, entries dropped because they expired, and entries now. */
struct rq_tenant_cache_stats {
  uint64_t hits, misses, evictions, expired;
  size_t entries;
};
void rq_tenants_stats(struct rq_engine *eng, struct rq_tenant_cache_stats *out);

#endif
