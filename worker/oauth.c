/*
 * oauth: shared OAuth2 access tokens for XOAUTH2 routes (see oauth.h).
 *
 * One entry per place, created on first use and kept until shutdown
 * (bounded by the tenant routes that use XOAUTH2). An entry runs at most
 * one refresh at a time (busy); jobs that need its token meanwhile wait in
 * its list and are all answered together.
 *
 * Safe points: every Redis command and the token request hold the module
 * (o->pending); after rq_oauth_close the memory is freed once the last of
 * them has called back and the timer has closed.
 */
#include "oauth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <relayq/relayq.h>

#include "engine.h"
#include "hmap.h"
#include "keys.h"
#include "log.h"
#include "oauth_http.h"
#include "scripts.h"
#include "util.h"

#define MARGIN_MAX_MS 300000 /* refresh this long before expiry at most */
#define LOCK_MS 30000        /* the refresh lock's lifetime: a crashed refresher frees it */
#define POLL_MS 250          /* re-read P:oauth while another worker refreshes */
#define WAIT_MAX_MS 20000    /* most a job waits for another worker's refresh */
#define FAIL_MEMO_MS 300000  /* a refused grant is not retried for these credentials */
#define STALE_OK_MS 30000    /* an old token still this far from expiry serves when a refresh fails */
#define TOKEN_TIMEOUT_MS 20000 /* well inside LOCK_MS: a slow answer never overlaps a second refresh */

struct waiter {
  rq_oauth_cb cb;
  void *arg;
  struct waiter *next;
};

struct entry {
  struct rq_hent h; /* in o->map, keyed by place (hmap.h) */
  struct rq_oauth *o;
  char place[300];        /* oauth:T[:route:R] (AAD place of the access token) */
  char key[400];          /* P:oauth:T[:route:R] */
  char lock_key[420];
  char tenant_place[300]; /* tenant:T[:route:R] (AAD place of the refresh token) */
  char tenant_key[400];   /* P:tenant:T[:route:R] */
  char tenant[130], route[130];
  char fp[33];   /* who the token is for: URL, client, scope, grant, user (no secret) */
  char cred[33]; /* fp plus the refresh token and client secret: a failure belongs to these */
  /* the token held */
  char *token;
  char *sealed; /* as written to Redis, for rq_oauth_invalidate's compare */
  int64_t expires_at, refresh_at;
  /* a refusal remembered */
  int64_t fail_until;
  char fail_cred[33];
  struct rq_class fail;
  /* the refresh in progress */
  int busy, op_pending, have_lock, waiting_other;
  int64_t wait_deadline;
  struct waiter *waiters;
  char *token_url, *client_id, *client_secret, *refresh_token, *scope;
  int client_credentials;
  char *rt_stored; /* oauth_refresh_token as stored when we read it (compare-and-set) */
  char *rt_used;   /* the plaintext refresh token sent */
};

struct rq_oauth {
  struct rq_engine *eng;
  struct rq_hmap map; /* struct entry by place */
  uv_timer_t timer;
  int timer_on;
  int pending; /* Redis commands and token requests not yet called back */
  int closing, timer_closed;
  void (*closed_cb)(void *);
  void *closed_arg;
};

static void read_entry(struct entry *e);
static void maybe_free(struct rq_oauth *o);

/* ---- small helpers ---------------------------------------------------------------- */

static void wipe_str(char **s) {
  if (*s) {
    OPENSSL_cleanse(*s, strlen(*s));
    free(*s);
    *s = NULL;
  }
}

static void set_str(char **dst, const char *v) {
  wipe_str(dst);
  if (v) *dst = rq_xstrdup(v);
}

/* Hex of the first 16 bytes of SHA-256 over the parts, each ended by a NUL. */
static void digest(char out[33], const char *const *parts, size_t n) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) abort();
  for (size_t i = 0; i < n; i++) {
    const char *p = parts[i] ? parts[i] : "";
    EVP_DigestUpdate(c, p, strlen(p) + 1);
  }
  EVP_DigestFinal_ex(c, md, &len);
  EVP_MD_CTX_free(c);
  for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
  OPENSSL_cleanse(md, sizeof md);
}

static const struct rq_config *cfg_of(const struct entry *e) {
  return e->o->eng->cfg;
}

static int64_t margin_ms(int64_t lifetime_ms) {
  int64_t m = lifetime_ms / 4;
  return m < MARGIN_MAX_MS ? m : MARGIN_MAX_MS;
}

static struct rq_oauth *module(struct rq_engine *eng) {
  if (!eng->oauth) {
    struct rq_oauth *o = rq_xcalloc(1, sizeof *o);
    o->eng = eng;
    uv_timer_init(eng->loop, &o->timer);
    o->timer.data = o;
    eng->oauth = o;
  }
  return eng->oauth;
}

static struct entry *entry_for(struct rq_oauth *o, const struct rq_oauth_need *need) {
  char place[300];
  relayq__key_place(place, sizeof place, RELAYQ__KEY_OAUTH, need->tenant, need->route);
  uint32_t h = rq_hash_str(RQ_HASH_SEED, place);
  for (struct rq_hent *x = rq_hmap_chain(&o->map, h); x; x = x->next)
    if (x->hash == h && !strcmp(((struct entry *)x)->place, place)) return (struct entry *)x;
  struct entry *e = rq_xcalloc(1, sizeof *e);
  const char *prefix = o->eng->cfg->prefix;
  e->o = o;
  snprintf(e->place, sizeof e->place, "%s", place);
  relayq__key(e->key, sizeof e->key, prefix, RELAYQ__KEY_OAUTH, need->tenant, need->route);
  relayq__key(e->lock_key, sizeof e->lock_key, prefix, RELAYQ__KEY_OAUTH_LOCK, need->tenant, need->route);
  if (need->route)
    relayq__key_place(e->tenant_place, sizeof e->tenant_place, RELAYQ__KEY_ROUTE, need->tenant, need->route);
  else relayq__key_place(e->tenant_place, sizeof e->tenant_place, RELAYQ_KEY_TENANT, need->tenant, NULL);
  if (need->route) relayq__key(e->tenant_key, sizeof e->tenant_key, prefix, RELAYQ__KEY_ROUTE, need->tenant, need->route);
  else relayq_key(e->tenant_key, sizeof e->tenant_key, prefix, RELAYQ_KEY_TENANT, need->tenant);
  snprintf(e->tenant, sizeof e->tenant, "%s", need->tenant);
  snprintf(e->route, sizeof e->route, "%s", need->route ? need->route : "");
  e->h.hash = h;
  rq_hmap_add(&o->map, &e->h);
  return e;
}

static void entry_free(struct entry *e) {
  wipe_str(&e->token);
  wipe_str(&e->sealed);
  wipe_str(&e->token_url);
  wipe_str(&e->client_id);
  wipe_str(&e->client_secret);
  wipe_str(&e->refresh_token);
  wipe_str(&e->scope);
  wipe_str(&e->rt_stored);
  wipe_str(&e->rt_used);
  while (e->waiters) {
    struct waiter *w = e->waiters;
    e->waiters = w->next;
    free(w);
  }
  free(e);
}

static void free_entry(struct rq_hent *x) { entry_free((struct entry *)x); }

/* ---- answering the waiting jobs -------------------------------------------------------- */

/* The refresh is over: every waiting job gets the token or the failure.
 * State is settled first, since a callback may ask again at once. */
static void deliver(struct entry *e, const char *token, const struct rq_class *fail) {
  struct waiter *w = e->waiters;
  e->waiters = NULL;
  e->busy = e->waiting_other = e->have_lock = 0;
  char *copy = token ? rq_xstrdup(token) : NULL; /* e->token may change under a callback */
  struct rq_class f;
  if (fail) f = *fail;
  while (w) {
    struct waiter *next = w->next;
    w->cb(copy, copy ? NULL : &f, w->arg);
    free(w);
    w = next;
  }
  wipe_str(&copy);
}

static void fail_with(struct entry *e, enum rq_verdict v, enum rq_errcat err, int trip_now, const char *detail) {
  struct rq_class c;
  memset(&c, 0, sizeof c);
  c.verdict = v;
  c.error = err;
  c.trip_now = trip_now;
  snprintf(c.detail, sizeof c.detail, "%s", detail);
  deliver(e, NULL, &c);
}

/* A refresh failed for now: an old token that is still valid serves. */
static void temp_failure(struct entry *e, const char *detail) {
  if (e->token && relayq_now_ms() < e->expires_at - STALE_OK_MS) {
    deliver(e, e->token, NULL);
    return;
  }
  fail_with(e, RQ_TEMP, RQ_ERR_AUTH, 0, detail);
}

/* ---- Redis steps --------------------------------------------------------------------- */

static int cmd(struct entry *e, redisCallbackFn *cb, int argc, const char **argv) {
  struct rq_oauth *o = e->o;
  if (rq_rconn_cmd(o->eng->cmd, cb, cb ? e : NULL, argc, argv, NULL)) return -1;
  if (cb) o->pending++;
  return 0;
}

/* Fire and forget: lock release, write-backs. */
static void cmd_nocb(struct rq_oauth *o, int argc, const char **argv) {
  rq_rconn_cmd(o->eng->cmd, NULL, NULL, argc, argv, NULL);
}


static void release_lock(struct entry *e) {
  if (!e->have_lock) return;
  e->have_lock = 0;
  const char *argv[] = {"EVAL", rq_lua_source(RQ_LUA_OAUTH_RELEASE), "1", e->lock_key, cfg_of(e)->worker_id};
  cmd_nocb(e->o, 5, argv);
}

/* Opens a stored secret: enc:v2 for (place, field), enc:v1, or plaintext. */
static char *open_stored(const struct entry *e, const char *v, const char *place, const char *field) {
  const struct rq_config *cfg = cfg_of(e);
  struct relayq_error err;
  char *pt = NULL;
  if (relayq_secret_is_sealed(v)) { /* enc:v2 for this place and field, or enc:v1 */
    if (!cfg->have_secret_key || relayq_secret_open_for(cfg->secret_key, place, field, v, &pt, &err)) return NULL;
    return pt;
  }
  return rq_xstrdup(v);
}

/* Seals for (place, field) when the worker has a key; plaintext otherwise
 * (the operator runs without RELAYQ_SECRET_KEY, so the tenant's own
 * secrets are plaintext too). */
static char *seal(const struct entry *e, const char *v, const char *place, const char *field) {
  const struct rq_config *cfg = cfg_of(e);
  struct relayq_error err;
  char *out = NULL;
  if (!cfg->have_secret_key) return rq_xstrdup(v);
  if (relayq_secret_seal_for(cfg->secret_key, place, field, v, &out, &err)) return NULL;
  return out;
}

static void schedule_poll(struct entry *e);

static void on_http(const struct rq_oauth_token *tok, void *arg) {
  struct entry *e = arg;
  struct rq_oauth *o = e->o;
  o->pending--;
  if (o->closing) {
    maybe_free(o);
    return;
  }
  int64_t now = relayq_now_ms();
  const char *route = e->route[0] ? e->route : NULL;
  if (tok->outcome == RQ_OAUTH_OK) {
    int64_t life = tok->expires_in * 1000;
    char *sealed = seal(e, tok->access_token, e->place, "access_token");
    if (!sealed) {
      release_lock(e);
      temp_failure(e, "The worker could not seal the OAuth access token: the relay retries.");
      return;
    }
    set_str(&e->token, tok->access_token);
    wipe_str(&e->sealed);
    e->sealed = sealed;
    e->expires_at = now + life;
    e->refresh_at = e->expires_at - margin_ms(life);
    e->fail_until = 0;
    char exp_s[24], ref_s[24], ttl_s[24];
    rq_fmt_i64(exp_s, sizeof exp_s, e->expires_at);
    rq_fmt_i64(ref_s, sizeof ref_s, e->refresh_at);
    rq_fmt_i64(ttl_s, sizeof ttl_s, life + 60000);
    const char *hset[] = {"HSET", e->key, "access_token", sealed, "expires_at", exp_s, "refresh_at", ref_s,
                          "fp", e->fp};
    cmd_nocb(o, 10, hset);
    const char *hdel[] = {"HDEL", e->key, "error", "error_detail", "error_cred", "error_until"};
    cmd_nocb(o, 6, hdel);
    const char *pexp[] = {"PEXPIRE", e->key, ttl_s};
    cmd_nocb(o, 3, pexp);
    /* A rotated refresh token goes back into the tenant hash before the
     * lock is released: the old one may already be dead. */
    int rotated = tok->refresh_token[0] && (!e->rt_used || strcmp(tok->refresh_token, e->rt_used));
    if (rotated) {
      char *rt = seal(e, tok->refresh_token, e->tenant_place, "oauth_refresh_token");
      if (rt) {
        const char *rot[] = {"EVAL", rq_lua_source(RQ_LUA_OAUTH_ROTATE), "1", e->tenant_key, "oauth_refresh_token",
                             e->rt_stored ? e->rt_stored : "", rt};
        cmd_nocb(o, 7, rot);
        OPENSSL_cleanse(rt, strlen(rt));
        free(rt);
      } else {
        RQ_LOG_FIELDS(RQ_LOG_ERROR, "could not seal a rotated OAuth refresh token", {"tenant", e->tenant},
                      {"route", route});
      }
    }
    release_lock(e);
    RQ_LOG_FIELDS(RQ_LOG_INFO, "oauth token refreshed", {"tenant", e->tenant}, {"route", route},
                  {"expires_at", exp_s}, {"rotated", rotated ? "1" : "0"});
    deliver(e, e->token, NULL);
    return;
  }
  if (tok->outcome == RQ_OAUTH_REFUSED) {
    /* Remembered for these credentials, here and for every worker. */
    e->fail_until = now + FAIL_MEMO_MS;
    memcpy(e->fail_cred, e->cred, sizeof e->fail_cred);
    rq_oauth_token_class(tok->outcome, tok->detail, &e->fail); /* the mail core's reading, as the CLI's */
    char until_s[24];
    rq_fmt_i64(until_s, sizeof until_s, e->fail_until);
    const char *hset[] = {"HSET", e->key, "error", tok->error, "error_detail", tok->detail, "error_cred", e->cred,
                          "error_until", until_s};
    cmd_nocb(o, 10, hset);
    char ttl_s[24];
    rq_fmt_i64(ttl_s, sizeof ttl_s, FAIL_MEMO_MS + 60000);
    const char *keep[] = {"EVAL", rq_lua_source(RQ_LUA_OAUTH_KEEP), "1", e->key, ttl_s};
    cmd_nocb(o, 5, keep);
    release_lock(e);
    RQ_LOG_FIELDS(RQ_LOG_WARN, "oauth token refused", {"tenant", e->tenant}, {"route", route},
                  {"error", tok->error}, {"detail", tok->detail});
    deliver(e, NULL, &e->fail);
    return;
  }
  release_lock(e);
  RQ_LOG_FIELDS(RQ_LOG_WARN, "oauth token request failed", {"tenant", e->tenant}, {"route", route},
                {"detail", tok->detail});
  if (tok->outcome == RQ_OAUTH_POLICY) {
    struct rq_class c;
    rq_oauth_token_class(tok->outcome, tok->detail, &c);
    deliver(e, NULL, &c);
  } else {
    temp_failure(e, tok->detail);
  }
}

static void request_token(struct entry *e) {
  const struct rq_config *cfg = cfg_of(e);
  struct rq_oauth_request q = {
      .token_url = e->token_url,
      .client_credentials = e->client_credentials,
      .client_id = e->client_id,
      .client_secret = e->client_secret,
      .refresh_token = e->rt_used,
      .scope = e->scope,
      .ca_file = cfg->ca_file,
      .netpolicy = cfg->mode == RQ_MODE_SAAS ? &cfg->netpolicy : NULL,
  };
  if (rq_oauth_http_request(e->o->eng->curl, &q, on_http, e)) {
    release_lock(e);
    fail_with(e, RQ_PERM, RQ_ERR_POLICY, 0,
              "The OAuth token request could not be started: oauth_token_url must be an https:// URL.");
    return;
  }
  e->o->pending++;
}

/* The bookkeeping every Redis reply of an entry starts with: the command
 * is no longer pending. Returns 1 when the cache is closing (and frees it
 * once nothing is pending): the callback must stop there. */
static int command_answered(struct entry *e) {
  struct rq_oauth *o = e->o;
  o->pending--;
  e->op_pending = 0;
  if (!o->closing) return 0;
  maybe_free(o);
  return 1;
}

/* The refresh token as the tenant hash holds it now (another worker may
 * have rotated it since our tenant cache read it). */
static void on_refresh_token(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  struct entry *e = priv;
  redisReply *reply = r;
  if (command_answered(e)) return;
  wipe_str(&e->rt_stored);
  wipe_str(&e->rt_used);
  if (reply && reply->type == REDIS_REPLY_STRING) {
    e->rt_stored = rq_xstrdup(reply->str);
    e->rt_used = open_stored(e, reply->str, e->tenant_place, "oauth_refresh_token");
  }
  if (!e->rt_used && e->refresh_token) e->rt_used = rq_xstrdup(e->refresh_token);
  if (!e->rt_used) {
    release_lock(e);
    fail_with(e, RQ_TEMP, RQ_ERR_AUTH, 1,
              "The tenant has no usable oauth_refresh_token: the tenant must sign in again.");
    return;
  }
  request_token(e);
}

static void after_lock(struct entry *e) {
  if (e->client_credentials) {
    request_token(e);
    return;
  }
  const char *argv[] = {"HGET", e->tenant_key, "oauth_refresh_token"};
  if (cmd(e, on_refresh_token, 3, argv)) {
    release_lock(e);
    temp_failure(e, "Redis is not reachable: the relay retries.");
    return;
  }
  e->op_pending = 1;
}

static void on_lock(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  struct entry *e = priv;
  redisReply *reply = r;
  if (command_answered(e)) return;
  if (!reply || reply->type == REDIS_REPLY_ERROR) {
    temp_failure(e, "Redis is not reachable: the relay retries.");
    return;
  }
  if (reply->type == REDIS_REPLY_STATUS) {
    /* Ours. Read P:oauth once more: a refresh may have finished between
     * our read and the lock. */
    e->have_lock = 1;
    read_entry(e);
    return;
  }
  e->waiting_other = 1; /* another worker refreshes: wait for its result */
  schedule_poll(e);
}

static void take_lock(struct entry *e) {
  const char *argv[] = {"SET", e->lock_key, cfg_of(e)->worker_id, "NX", "PX", "30000"};
  if (cmd(e, on_lock, 6, argv)) {
    temp_failure(e, "Redis is not reachable: the relay retries.");
    return;
  }
  e->op_pending = 1;
}

static const char *field_of(const redisReply *r, const char *name) {
  for (size_t i = 0; i + 1 < r->elements; i += 2)
    if (r->element[i]->type == REDIS_REPLY_STRING && r->element[i + 1]->type == REDIS_REPLY_STRING &&
        !strcmp(r->element[i]->str, name))
      return r->element[i + 1]->str;
  return NULL;
}

static void on_read(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  struct entry *e = priv;
  redisReply *reply = r;
  if (command_answered(e)) return;
  if (!reply || reply->type != REDIS_REPLY_ARRAY) {
    release_lock(e);
    temp_failure(e, "Redis is not reachable: the relay retries.");
    return;
  }
  int64_t now = relayq_now_ms();
  const char *fp = field_of(reply, "fp"), *at = field_of(reply, "access_token");
  const char *exp = field_of(reply, "expires_at"), *ref = field_of(reply, "refresh_at");
  int64_t expires_at = exp ? strtoll(exp, NULL, 10) : 0;
  int64_t refresh_at = ref ? strtoll(ref, NULL, 10) : expires_at - MARGIN_MAX_MS;
  if (at && fp && !strcmp(fp, e->fp) && now < refresh_at) {
    char *token = open_stored(e, at, e->place, "access_token");
    if (token) {
      wipe_str(&e->token);
      e->token = token;
      set_str(&e->sealed, at);
      e->expires_at = expires_at;
      e->refresh_at = refresh_at;
      release_lock(e);
      deliver(e, e->token, NULL);
      return;
    }
  }
  const char *ecred = field_of(reply, "error_cred"), *euntil = field_of(reply, "error_until");
  const char *edetail = field_of(reply, "error_detail");
  if (ecred && euntil && !strcmp(ecred, e->cred) && now < strtoll(euntil, NULL, 10)) {
    e->fail_until = strtoll(euntil, NULL, 10);
    memcpy(e->fail_cred, e->cred, sizeof e->fail_cred);
    memset(&e->fail, 0, sizeof e->fail);
    e->fail.verdict = RQ_TEMP;
    e->fail.error = RQ_ERR_AUTH;
    e->fail.trip_now = 1;
    snprintf(e->fail.detail, sizeof e->fail.detail, "%s",
             edetail ? edetail : "The provider refused the tenant's sign-in: the tenant must sign in again.");
    release_lock(e);
    deliver(e, NULL, &e->fail);
    return;
  }
  if (e->have_lock) {
    after_lock(e);
    return;
  }
  if (e->waiting_other && now >= e->wait_deadline) {
    temp_failure(e, "Another worker's OAuth token refresh did not finish in time: the relay retries.");
    return;
  }
  take_lock(e); /* again while waiting: the other worker may have given up */
}

static void read_entry(struct entry *e) {
  const char *argv[] = {"HGETALL", e->key};
  if (cmd(e, on_read, 2, argv)) {
    release_lock(e);
    temp_failure(e, "Redis is not reachable: the relay retries.");
    return;
  }
  e->op_pending = 1;
}

/* ---- waiting for another worker -------------------------------------------------------- */

static void on_tick(uv_timer_t *t) {
  struct rq_oauth *o = t->data;
  int waiting = 0;
  for (size_t b = 0; b < o->map.nb; b++)
    for (struct rq_hent *x = o->map.b[b]; x; x = x->next) {
      struct entry *e = (struct entry *)x;
      if (!e->busy || !e->waiting_other) continue;
      waiting = 1;
      if (!e->op_pending) read_entry(e);
    }
  if (!waiting) {
    uv_timer_stop(&o->timer);
    o->timer_on = 0;
  }
}

static void schedule_poll(struct entry *e) {
  struct rq_oauth *o = e->o;
  if (!o->timer_on) {
    uv_timer_start(&o->timer, on_tick, POLL_MS, POLL_MS);
    o->timer_on = 1;
  }
}

/* ---- API ---------------------------------------------------------------------------- */

void rq_oauth_get(struct rq_engine *eng, const struct rq_oauth_need *need, rq_oauth_cb cb, void *arg) {
  struct rq_oauth *o = module(eng);
  const struct rq_oauth_conf *c = need->conf;
  struct rq_class f;
  if (o->closing) {
    memset(&f, 0, sizeof f);
    f.verdict = RQ_TEMP;
    f.error = RQ_ERR_CONNECT;
    snprintf(f.detail, sizeof f.detail, "The worker is stopping; the job is retried.");
    cb(NULL, &f, arg);
    return;
  }
  struct entry *e = entry_for(o, need);
  const char *grant = c->grant == RQ_GRANT_CLIENT_CREDENTIALS ? "client_credentials" : "refresh_token";
  const char *id_parts[] = {c->token_url, c->client_id, c->scope, grant, need->user};
  char fp[33];
  digest(fp, id_parts, 5);
  if (strcmp(fp, e->fp) && !e->busy) {
    /* Other credentials (a changed client, scope or mailbox): the token
     * held is not theirs. */
    wipe_str(&e->token);
    e->refresh_at = e->expires_at = 0;
    memcpy(e->fp, fp, sizeof e->fp);
  }
  const char *cred_parts[] = {e->fp, c->refresh_token, c->client_secret};
  digest(e->cred, cred_parts, 3);
  int64_t now = relayq_now_ms();
  if (e->token && now < e->refresh_at && !e->busy) {
    cb(e->token, NULL, arg);
    return;
  }
  if (e->fail_until > now && !strcmp(e->fail_cred, e->cred) && !e->busy) {
    cb(NULL, &e->fail, arg);
    return;
  }
  struct waiter *w = rq_xmalloc(sizeof *w);
  w->cb = cb;
  w->arg = arg;
  w->next = e->waiters;
  e->waiters = w;
  if (e->busy) return;
  e->busy = 1;
  e->wait_deadline = now + WAIT_MAX_MS;
  set_str(&e->token_url, c->token_url);
  set_str(&e->client_id, c->client_id);
  set_str(&e->client_secret, c->client_secret);
  set_str(&e->refresh_token, c->refresh_token);
  set_str(&e->scope, c->scope);
  e->client_credentials = c->grant == RQ_GRANT_CLIENT_CREDENTIALS;
  read_entry(e);
}

void rq_oauth_invalidate(struct rq_engine *eng, const struct rq_oauth_need *need, const char *token) {
  if (!eng->oauth || !token) return;
  struct entry *e = entry_for(eng->oauth, need);
  if (!e->token || strcmp(e->token, token)) return;
  wipe_str(&e->token);
  e->refresh_at = e->expires_at = 0;
  if (e->sealed) {
    const char *argv[] = {"EVAL", rq_lua_source(RQ_LUA_OAUTH_INVALIDATE), "1", e->key, e->sealed};
    cmd_nocb(e->o, 5, argv);
    wipe_str(&e->sealed);
  }
}

static void maybe_free(struct rq_oauth *o) {
  if (!o->closing || o->pending > 0 || !o->timer_closed) return;
  rq_hmap_free(&o->map, free_entry);
  void (*cb)(void *) = o->closed_cb;
  void *arg = o->closed_arg;
  free(o);
  if (cb) cb(arg);
}

static void on_timer_closed(uv_handle_t *h) {
  struct rq_oauth *o = h->data;
  o->timer_closed = 1;
  maybe_free(o);
}

void rq_oauth_close(struct rq_engine *eng, void (*closed_cb)(void *), void *arg) {
  struct rq_oauth *o = eng->oauth;
  if (!o) {
    if (closed_cb) closed_cb(arg);
    return;
  }
  eng->oauth = NULL;
  o->closing = 1;
  o->closed_cb = closed_cb;
  o->closed_arg = arg;
  for (size_t b = 0; b < o->map.nb; b++)
    for (struct rq_hent *x = o->map.b[b]; x; x = x->next) {
      struct entry *e = (struct entry *)x;
      if (e->waiters) fail_with(e, RQ_TEMP, RQ_ERR_CONNECT, 0, "The worker is stopping; the job is retried.");
    }
  uv_close((uv_handle_t *)&o->timer, on_timer_closed);
}
