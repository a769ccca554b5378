/* tenants: tenant settings cache (see tenants.h). */
#include "tenants.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "engine.h"
#include "log.h"
#include "util.h"

/* A job waiting for an entry to load. */
struct rq_waiter {
  struct rq_jobctx *jc;
  rq_tenant_cb cb;
  struct rq_waiter *next;
};

static void entry_free(struct rq_tenant_entry *e) {
  rq_tenant_free(e->t);
  if (e->dkim_key) EVP_PKEY_free(e->dkim_key);
  free(e->id);
  free(e);
}

static void unlink_entry(struct rq_engine *eng, struct rq_tenant_entry *e) {
  if (e->in_table) {
    rq_hmap_del(&eng->tenants, &e->h);
    e->in_table = 0;
    e->refs--;
  }
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
  (void)eng;
  e->loading = 0;
  e->loaded_ms = relayq_now_ms();
  if (e->error[0]) {
    rq_tenant_free(e->t);
    e->t = NULL;
    RQ_LOG_FIELDS(RQ_LOG_WARN, "tenant settings unusable", {"tenant", e->id}, {"detail", e->error});
  }
  deliver(e);
}

static void on_route(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  struct route_read *rr = priv;
  struct rq_tenant_entry *e = rr->e;
  redisReply *reply = r;
  if (!reply) {
    e->loading = -1; /* Redis went away: everything is read again once it is back */
  } else if (reply->type != REDIS_REPLY_ARRAY) {
    /* An answer that is not a hash (WRONGTYPE): reading again cannot help
     * until someone fixes the key, so the tenant's jobs fail now, as for a
     * tenant hash of the wrong type, and the fix is picked up like any
     * other change. Retrying would leave them waiting for ever. */
    if (!e->error[0])
      snprintf(e->error, sizeof e->error, "could not read route '%s' of tenant '%s': %.200s", rr->name, e->id,
               reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
  } else if (e->t && !e->error[0]) {
    const char **f, **v;
    size_t n = reply_pairs(reply, &f, &v);
    char err[300];
    if (n == 0) {
      snprintf(e->error, sizeof e->error,
               "tenant '%s' lists route '%s' but %s:tenant:%s:route:%s does not exist: create it or remove the "
               "name from `routes`",
               e->id, rr->name, rr->eng->cfg->prefix, e->id, rr->name);
    } else {
      int prc = rq_tenant_parse_route(e->t, rr->name, f, v, n,
                                      rr->eng->cfg->have_secret_key ? rr->eng->cfg->secret_key : NULL,
                                      rr->eng->cfg->require_encrypted, err, sizeof err);
      if (prc) snprintf(e->error, sizeof e->error, "route '%s' of tenant '%s': %s", rr->name, e->id, err);
      e->error_auth = prc == RQ_TENANT_ESEALED;
    }
    free(f);
    free(v);
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
  relayq_key(key, sizeof key, eng->cfg->prefix, RELAYQ_KEY_TENANT, e->id);
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
  for (size_t i = 0; i < n_routes; i++)
    if (rq_rconn_cmdf(eng->cmd, on_route, reads[i], "HGETALL %s:route:%s", key, reads[i]->name))
      on_route(NULL, NULL, reads[i]);
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
  uint32_t h = rq_hash_str(RQ_HASH_SEED, tenant_id);
  struct rq_tenant_entry *e = NULL;
  for (struct rq_hent *x = rq_hmap_chain(&eng->tenants, h); x && !e; x = x->next)
    if (x->hash == h && !strcmp(((struct rq_tenant_entry *)x)->id, tenant_id)) e = (struct rq_tenant_entry *)x;
  int64_t now = relayq_now_ms();
  if (e && !e->loading && !e->waiters && e->loaded_ms && now - e->loaded_ms >= eng->cfg->tenant_cache_ms) {
    unlink_entry(eng, e); /* stale: jobs holding it keep it alive */
    if (e->refs == 0) entry_free(e);
    e = NULL;
  }
  if (!e) {
    e = rq_xcalloc(1, sizeof *e);
    e->id = rq_xstrdup(tenant_id);
    e->eng = eng;
    e->refs = 1;
    e->in_table = 1;
    e->h.hash = h;
    rq_hmap_add(&eng->tenants, &e->h);
  }
  if (e->loaded_ms && !e->loading && !e->waiters) {
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
  if (!e->loading) start_read(eng, e);
}

void rq_tenants_retry(struct rq_engine *eng) {
  if (!rq_rconn_ready(eng->cmd)) return;
  for (size_t b = 0; b < eng->tenants.nb; b++)
    for (struct rq_hent *x = eng->tenants.b[b]; x; x = x->next) {
      struct rq_tenant_entry *e = (struct rq_tenant_entry *)x;
      if (e->waiters && !e->loading) start_read(eng, e);
    }
}

void rq_tenants_free_all(struct rq_engine *eng) {
  for (size_t b = 0; b < eng->tenants.nb; b++) {
    while (eng->tenants.b[b]) {
      struct rq_tenant_entry *e = (struct rq_tenant_entry *)eng->tenants.b[b];
      unlink_entry(eng, e);
      if (e->refs == 0) entry_free(e);
    }
  }
  rq_hmap_free(&eng->tenants, NULL);
}
