/* tenants: tenant settings cache (see tenants.h). */
#include "tenants.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "engine.h"
#include "keys.h"
#include "log.h"
#include "util.h"

/* A job waiting for an entry to load. */
struct rq_waiter {
  struct rq_jobctx *jc;
  rq_tenant_cb cb;
  struct rq_waiter *next;
};

/* The table (hmap.h: a lookup stays a few compares with 100,000 tenants),
 * and every entry in the table on one LRU list (head: most recently
 * used). Bounded by cfg->tenant_cache_max entries. */
struct rq_tenant_cache {
  struct rq_hmap map;
  struct rq_tenant_entry *lru_head, *lru_tail;
  struct rq_tenant_cache_stats st;
};

static struct rq_tenant_cache *cache(struct rq_engine *eng) {
  if (!eng->tenants) eng->tenants = rq_xcalloc(1, sizeof *eng->tenants);
  return eng->tenants;
}

static void lru_unlink(struct rq_tenant_cache *c, struct rq_tenant_entry *e) {
  if (e->lru_prev) e->lru_prev->lru_next = e->lru_next;
  else c->lru_head = e->lru_next;
  if (e->lru_next) e->lru_next->lru_prev = e->lru_prev;
  else c->lru_tail = e->lru_prev;
  e->lru_prev = e->lru_next = NULL;
}

static void lru_front(struct rq_tenant_cache *c, struct rq_tenant_entry *e) {
  e->lru_prev = NULL;
  e->lru_next = c->lru_head;
  if (c->lru_head) c->lru_head->lru_prev = e;
  c->lru_head = e;
  if (!c->lru_tail) c->lru_tail = e;
}

static void entry_free(struct rq_tenant_entry *e) {
  rq_tenant_free(e->t);
  if (e->dkim_key) EVP_PKEY_free(e->dkim_key);
  free(e->id);
  free(e);
}

static void unlink_entry(struct rq_engine *eng, struct rq_tenant_entry *e) {
  struct rq_tenant_cache *c = cache(eng);
  if (!e->in_table) return;
  rq_hmap_del(&c->map, &e->h);
  lru_unlink(c, e);
  e->in_table = 0;
  e->refs--;
}

/* Drops e from the table; jobs holding it keep it alive until they end. */
static void drop(struct rq_engine *eng, struct rq_tenant_entry *e) {
  unlink_entry(eng, e);
  if (e->refs == 0) entry_free(e);
}

/* An entry can leave the table when no read or waiting job depends on
 * its place there. */
static int evictable(const struct rq_tenant_entry *e) {
  return !e->loading && !e->waiters && e->loaded_ms;
}

/* Keeps the table within its bound (least recently used first; entries
 * with a read in flight wait, so the table exceeds the bound by at most
 * the reads in flight, and is trimmed again as each completes) and
 * drops a few expired entries from the cold end on every lookup, so
 * memory follows the tenants seen within the cache lifetime, not every
 * tenant ever seen. Bounded work: the walk stops after a few entries
 * that cannot go (a read in flight). */
static void trim(struct rq_engine *eng, int64_t now) {
  struct rq_tenant_cache *c = cache(eng);
  size_t max = eng->cfg->tenant_cache_max > 0 ? (size_t)eng->cfg->tenant_cache_max : 1;
  int expire_budget = 2, skip_budget = 8;
  struct rq_tenant_entry *e = c->lru_tail;
  while (e && skip_budget > 0) {
    struct rq_tenant_entry *prev = e->lru_prev;
    int stale = e->loaded_ms && now - e->loaded_ms >= eng->cfg->tenant_cache_ms;
    if (c->map.n <= max && !(stale && expire_budget > 0)) break;
    if (!evictable(e)) {
      skip_budget--;
    } else if (c->map.n > max) {
      c->st.evictions++;
      drop(eng, e);
    } else {
      c->st.expired++;
      expire_budget--;
      drop(eng, e);
    }
    e = prev;
  }
}

void rq_tenants_stats(struct rq_engine *eng, struct rq_tenant_cache_stats *out) {
  if (!eng->tenants) {
    memset(out, 0, sizeof *out);
    return;
  }
  *out = eng->tenants->st;
  out->entries = eng->tenants->map.n;
}

void rq_tenants_release(struct rq_engine *eng, struct rq_tenant_entry *e) {
  (void)eng;
  if (e && --e->refs == 0) entry_free(e);
}

static void deliver(struct rq_tenant_entry *e) {
  struct rq_waiter *w = e->waiters;
  e->waiters = NULL;
  while (w) {
    struct rq_waiter *next = w->next;
    e->refs++;
    w->jc->tenant = e;
    w->cb(w->jc, e);
    free(w);
    w = next;
  }
}

/* Converts a HGETALL reply into field/value arrays for rq_tenant_parse. */
static size_t reply_pairs(redisReply *r, const char ***fields, const char ***values) {
  size_t n = r->elements / 2;
  *fields = rq_xcalloc(n + 1, sizeof(char *));
  *values = rq_xcalloc(n + 1, sizeof(char *));
  size_t k = 0;
  for (size_t i = 0; i + 1 < r->elements; i += 2) {
    if (r->element[i]->type != REDIS_REPLY_STRING || r->element[i + 1]->type != REDIS_REPLY_STRING) continue;
    (*fields)[k] = r->element[i]->str;
    (*values)[k] = r->element[i + 1]->str;
    k++;
  }
  return k;
}

struct route_read {
  struct rq_engine *eng;
  struct rq_tenant_entry *e;
  char *name;
};

static void loaded(struct rq_engine *eng, struct rq_tenant_entry *e) {
  e->loading = 0;
  e->loaded_ms = relayq_now_ms();
  if (e->error[0]) {
    rq_tenant_free(e->t);
    e->t = NULL;
    RQ_LOG_FIELDS(RQ_LOG_WARN, "tenant settings unusable", {"tenant", e->id}, {"detail", e->error});
  }
  deliver(e);
  /* Entries whose read was in flight could not be evicted: now they can
   * (the jobs just handed this one hold it; the table may let it go). */
  if (e->in_table) trim(eng, e->loaded_ms);
}

static void on_route(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  struct route_read *rr = priv;
  struct rq_tenant_entry *e = rr->e;
  redisReply *reply = r;
  if (!reply) {
    e->loading = -1; /* Redis went away: everything is read again once it is back */
  } else if (e->t && !e->error[0]) {
    /* A route that cannot be used fails only the jobs that name it: the
     * tenant's other routes and its default gateway go on. An answer that
     * is not a hash (WRONGTYPE) is such a route too: reading again cannot
     * help until someone fixes the key, and the fix is picked up like any
     * other change. */
    char why[400] = "", err[300];
    int prc = 0;
    if (reply->type != REDIS_REPLY_ARRAY) {
      snprintf(why, sizeof why, "could not read route '%s' of tenant '%s': %.200s", rr->name, e->id,
               reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
    } else {
      const char **f, **v;
      size_t n = reply_pairs(reply, &f, &v);
      if (n == 0) {
        char key[600];
        relayq__key(key, sizeof key, rr->eng->cfg->prefix, RELAYQ__KEY_ROUTE, e->id, rr->name);
        snprintf(why, sizeof why,
                 "tenant '%s' lists route '%s' but %s does not exist: create it or remove the name from `routes`",
                 e->id, rr->name, key);
      } else {
        prc = rq_tenant_parse_route(e->t, rr->name, f, v, n,
                                    rr->eng->cfg->have_secret_key ? rr->eng->cfg->secret_key : NULL,
                                    rr->eng->cfg->require_encrypted, err, sizeof err);
        if (prc) snprintf(why, sizeof why, "route '%s' of tenant '%s': %s", rr->name, e->id, err);
      }
      free(f);
      free(v);
    }
    if (why[0]) {
      rq_tenant_route_unusable(e->t, rr->name, why, prc == RQ_TENANT_ESEALED);
      RQ_LOG_FIELDS(RQ_LOG_WARN, "tenant route unusable", {"tenant", e->id}, {"route", rr->name}, {"detail", why});
    }
  }
  struct rq_engine *eng = rr->eng;
  free(rr->name);
  free(rr);
  if (--e->routes_pending == 0) {
    if (e->loading == -1) { /* a route read was cut off: read everything again later */
      e->error[0] = '\0';
      e->error_auth = 0;
      rq_tenant_free(e->t);
      e->t = NULL;
      e->loading = 0;
    } else {
      loaded(eng, e);
    }
  }
  rq_tenants_release(eng, e);
}

static void on_tenant(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  struct rq_tenant_entry *e = priv;
  struct rq_engine *eng = e->eng;
  redisReply *reply = r;
  e->loading = 0;
  if (!reply) { /* Redis went away: rq_tenants_retry reissues the read */
    rq_tenants_release(eng, e);
    return;
  }
  if (reply->type != REDIS_REPLY_ARRAY) {
    snprintf(e->error, sizeof e->error, "could not read tenant '%s': %.200s", e->id,
             reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
    loaded(eng, e);
    rq_tenants_release(eng, e);
    return;
  }
  const char **f, **v;
  size_t n = reply_pairs(reply, &f, &v);
  char err[300];
  int prc = rq_tenant_parse(e->id, f, v, n, eng->cfg->have_secret_key ? eng->cfg->secret_key : NULL,
                            eng->cfg->require_encrypted, 0, &e->t, err, sizeof err);
  if (prc) snprintf(e->error, sizeof e->error, "tenant '%s' settings are invalid: %s", e->id, err);
  e->error_auth = prc == RQ_TENANT_ESEALED;
  free(f);
  free(v);
  if (e->error[0] || e->t->n_routes == 0) {
    loaded(eng, e);
    rq_tenants_release(eng, e);
    return;
  }
  /* Read every named route now, so a job's `route` never waits twice.
   * The read's reference passes to the route reads. */
  e->loading = 1;
  size_t n_routes = e->t->n_routes;
  e->routes_pending = (int)n_routes;
  char key[600];
  /* Every read is prepared before any is issued: a command that cannot be
   * sent completes at once, and the last completion frees e->t. */
  struct route_read **reads = rq_xcalloc(n_routes, sizeof *reads);
  for (size_t i = 0; i < n_routes; i++) {
    reads[i] = rq_xmalloc(sizeof *reads[i]);
    reads[i]->eng = eng;
    reads[i]->e = e;
    reads[i]->name = rq_xstrdup(e->t->route_names[i]);
    e->refs++;
  }
  for (size_t i = 0; i < n_routes; i++) {
    relayq__key(key, sizeof key, eng->cfg->prefix, RELAYQ__KEY_ROUTE, e->id, reads[i]->name);
    if (rq_rconn_cmdf(eng->cmd, on_route, reads[i], "HGETALL %s", key)) on_route(NULL, NULL, reads[i]);
  }
  free(reads);
  rq_tenants_release(eng, e);
}

static void start_read(struct rq_engine *eng, struct rq_tenant_entry *e) {
  char key[600];
  relayq_key(key, sizeof key, eng->cfg->prefix, RELAYQ_KEY_TENANT, e->id);
  e->loading = 1;
  e->refs++; /* held by the pending read */
  if (rq_rconn_cmdf(eng->cmd, on_tenant, e, "HGETALL %s", key)) {
    e->loading = 0; /* not connected: retried by rq_tenants_retry */
    e->refs--;
  }
}

void rq_tenants_get(struct rq_engine *eng, struct rq_jobctx *jc, const char *tenant_id, rq_tenant_cb cb) {
  struct rq_tenant_cache *c = cache(eng);
  uint32_t h = rq_hash_str(RQ_HASH_SEED, tenant_id);
  struct rq_tenant_entry *e = NULL;
  for (struct rq_hent *x = rq_hmap_chain(&c->map, h); x && !e; x = x->next)
    if (x->hash == h && !strcmp(((struct rq_tenant_entry *)x)->id, tenant_id)) e = (struct rq_tenant_entry *)x;
  int64_t now = relayq_now_ms();
  if (e && evictable(e) && now - e->loaded_ms >= eng->cfg->tenant_cache_ms) {
    c->st.expired++;
    drop(eng, e); /* stale: jobs holding it keep it alive */
    e = NULL;
  }
  if (!e) {
    e = rq_xcalloc(1, sizeof *e);
    e->id = rq_xstrdup(tenant_id);
    e->eng = eng;
    e->refs = 1;
    e->in_table = 1;
    e->h.hash = h;
    rq_hmap_add(&c->map, &e->h);
  } else {
    lru_unlink(c, e);
  }
  lru_front(c, e);
  trim(eng, now);
  if (e->loaded_ms && !e->loading && !e->waiters) {
    c->st.hits++;
    e->refs++;
    jc->tenant = e;
    cb(jc, e);
    return;
  }
  struct rq_waiter *w = rq_xmalloc(sizeof *w);
  w->jc = jc;
  w->cb = cb;
  w->next = e->waiters;
  e->waiters = w;
  if (!e->loading) {
    /* Reads started while one fetched batch is handed out leave in one
     * write (hiredis sends what was queued in a loop turn together): the
     * batch's distinct tenants cost one round trip, not one per job. */
    c->st.misses++;
    start_read(eng, e);
  } else {
    c->st.hits++; /* joins the read in flight */
  }
}

void rq_tenants_retry(struct rq_engine *eng) {
  if (!eng->tenants || !rq_rconn_ready(eng->cmd)) return;
  struct rq_tenant_cache *c = cache(eng);
  for (struct rq_tenant_entry *e = c->lru_head; e; e = e->lru_next)
    if (e->waiters && !e->loading) start_read(eng, e);
}

void rq_tenants_free_all(struct rq_engine *eng) {
  if (!eng->tenants) return;
  struct rq_tenant_cache *c = cache(eng);
  while (c->lru_head) drop(eng, c->lru_head);
  rq_hmap_free(&c->map, NULL);
  free(c);
  eng->tenants = NULL;
}
