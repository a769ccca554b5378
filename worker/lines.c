/* lines: per-tenant-route lines, send budget, shared breakers, pause (see lines.h). */
#include "lines.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "hmap.h"
#include "keys.h"
#include "log.h"
#include "tenants.h"
#include "util.h"
#include "when.h"

#define MAX_SHARED_ROUTES 16
#define LINE_IDLE_FREE_MS 10000 /* an idle line goes (its breaker lives on in Redis) */
/* Beyond this many lines, idle ones go at the next tick whatever their
 * age: with 100,000 tenants sending a message each, lines idle for 10 s
 * would hold ~70 MB: RSS stays bounded whatever the number of tenants. */
#define LINES_IDLE_KEEP 1024
#define PROBE_TTL_EXTRA_MS 30000 /* a probe's claim outlives its transaction's timeout by this */

/* What the tenant's shared hashes said at the last read. */
struct shared_route {
  char name[64];
  struct rq_breaker b;
  int64_t probe_until;
};

/* One tenant's shared state, cached. */
struct rq_tstate {
  struct rq_hent h;       /* in tstates by id (hmap.h) */
  char *id;
  int64_t read_ms;        /* 0: never read */
  int64_t read_sent_ms;   /* when the read in flight (or the last one) was sent */
  int reading;            /* replies still to come (breaker, hold) */
  int paused;
  int64_t paused_until;   /* 0: until resumed */
  char *pause_reason;     /* NULL unless paused with a reason (owned) */
  struct shared_route *routes; /* only for tenants with a breaker hash (owned) */
  int n_routes;
  int lines;              /* lines referring to it */
  struct rq_line *tlines; /* those lines */
  struct rq_engine *eng;
};

struct rq_line {
  struct rq_hent h;       /* in lines by key (hmap.h) */
  char *key;
  char *tenant;
  char route[64];
  int cap;                /* connections at once; 0: no cap of its own */
  int active, waiting;
  int connecting;         /* of active: admitted without a slot, connection unproven */
  int proven;             /* a connection was usable since the line was made or last failed */
  struct rq_jobctx *head, *tail;
  struct rq_breaker b;
  int probing;            /* a probe claim is in flight */
  int64_t written_ms;     /* when this worker last wrote the shared breaker */
  int failing;            /* a failure count is in flight */
  int in_ready;
  int counted;            /* its waiting jobs counted in eng->ready_waiting */
  int in_skip;            /* in the skipping list */
  struct rq_line *snext, *sprev;
  struct rq_line *rnext, *rprev; /* ready ring */
  struct rq_line *anext, *aprev; /* all lines */
  struct rq_line *tnext, *tprev; /* the tenant's lines */
  struct rq_tstate *ts;
  int64_t idle_since;
  struct rq_engine *eng;
};

struct rq_lines {
  struct rq_hmap lines;   /* struct rq_line by key */
  struct rq_hmap tstates; /* struct rq_tstate by tenant id */
  struct rq_line *all;
  struct rq_line *ready; /* ring cursor: the next line to serve */
  int n_ready;           /* lines in the ring */
  struct rq_line *skipping; /* lines whose tenant FETCH should skip */
  int dispatching;
  struct rq_lines_hooks hooks;
  char **skip;           /* last skip list (owned copies) */
  size_t n_skip;
  size_t n_lines;        /* lines in `all` */
};

static void tstate_free(struct rq_tstate *t) {
  free(t->routes);
  free(t->pause_reason);
  free(t->id);
  free(t);
}

void rq_lines_init(struct rq_engine *eng, const struct rq_lines_hooks *hooks) {
  eng->lines = rq_xcalloc(1, sizeof *eng->lines);
  eng->lines->hooks = *hooks;
}

static void skip_free(struct rq_lines *s) {
  for (size_t i = 0; i < s->n_skip; i++) free(s->skip[i]);
  free(s->skip);
  s->skip = NULL;
  s->n_skip = 0;
}

void rq_lines_free(struct rq_engine *eng) {
  struct rq_lines *s = eng->lines;
  if (!s) return;
  while (s->all) {
    struct rq_line *l = s->all;
    s->all = l->anext;
    free(l->key);
    free(l->tenant);
    free(l);
  }
  for (size_t i = 0; i < s->tstates.nb; i++)
    while (s->tstates.b[i]) {
      struct rq_tstate *t = (struct rq_tstate *)s->tstates.b[i];
      rq_hmap_del(&s->tstates, &t->h);
      if (t->reading) { /* a read is still answered later: let it find nothing to update */
        t->eng = NULL;
        continue;
      }
      tstate_free(t);
    }
  rq_hmap_free(&s->tstates, NULL);
  rq_hmap_free(&s->lines, NULL); /* the lines were freed from s->all */
  skip_free(s);
  free(s);
  eng->lines = NULL;
}

/* ---- shared state: reads ---------------------------------------------------------- */

static void dispatch(struct rq_engine *eng);
static void line_check(struct rq_line *l);
static void skip_unlink(struct rq_lines *s, struct rq_line *l);

static struct shared_route *shared_route(struct rq_tstate *t, const char *route, int create) {
  for (int i = 0; i < t->n_routes; i++)
    if (!strcmp(t->routes[i].name, route)) return &t->routes[i];
  if (!create || t->n_routes >= MAX_SHARED_ROUTES) return NULL;
  if (!t->routes) t->routes = rq_xcalloc(MAX_SHARED_ROUTES, sizeof *t->routes);
  struct shared_route *r = &t->routes[t->n_routes++];
  memset(r, 0, sizeof *r);
  snprintf(r->name, sizeof r->name, "%s", route);
  return r;
}

/* Applies a P:breaker:TENANT hash reply (field/value pairs). */
static void parse_breakers(struct rq_tstate *t, const redisReply *r) {
  t->n_routes = 0;
  for (size_t i = 0; i + 1 < r->elements; i += 2) {
    const redisReply *f = r->element[i], *v = r->element[i + 1];
    if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) continue;
    const char *dot = strrchr(f->str, '.');
    if (!dot || (size_t)(dot - f->str) >= sizeof ((struct shared_route *)0)->name) continue;
    char route[64];
    memcpy(route, f->str, (size_t)(dot - f->str));
    route[dot - f->str] = '\0';
    struct shared_route *sr = shared_route(t, route, 1);
    if (!sr) continue;
    const char *field = dot + 1;
    if (!strcmp(field, "state")) sr->b.state = rq_breaker_state_parse(v->str);
    else if (!strcmp(field, "reason")) rq_errcat_parse(v->str, &sr->b.reason);
    else if (!strcmp(field, "until")) sr->b.open_until = strtoll(v->str, NULL, 10);
    else if (!strcmp(field, "failures")) sr->b.failures = atoi(v->str);
    else if (!strcmp(field, "trips")) sr->b.trips = atoi(v->str);
    else if (!strcmp(field, "probe_until")) sr->probe_until = strtoll(v->str, NULL, 10);
  }
}

static void parse_hold(struct rq_tstate *t, const redisReply *r) {
  t->paused = r->elements >= 2;
  t->paused_until = 0;
  free(t->pause_reason);
  t->pause_reason = NULL;
  for (size_t i = 0; i + 1 < r->elements; i += 2) {
    const redisReply *f = r->element[i], *v = r->element[i + 1];
    if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) continue;
    if (!strcmp(f->str, "until")) t->paused_until = strtoll(v->str, NULL, 10);
    else if (!strcmp(f->str, "reason") && v->len > 0 && !t->pause_reason) {
      t->pause_reason = rq_xmalloc(256);
      rq_text_sanitize(t->pause_reason, 256, v->str, v->len);
    }
  }
}

/* A fresh read: every line of the tenant follows what the workers shared,
 * unless it wrote its own breaker after the read was sent (then the read
 * is older than what this worker knows). */
static void tstate_apply(struct rq_tstate *t) {
  struct rq_engine *eng = t->eng;
  for (struct rq_line *l = t->tlines; l; l = l->tnext) {
    if (l->written_ms < t->read_sent_ms && !l->probing && !l->failing) {
      struct shared_route *sr = shared_route(t, l->route, 0);
      struct rq_breaker closed = {.state = RQ_BREAKER_CLOSED};
      if (sr) rq_breaker_adopt(&l->b, &sr->b, sr->probe_until);
      else if (l->b.state != RQ_BREAKER_HALF_OPEN) rq_breaker_adopt(&l->b, &closed, 0); /* hash gone: reset */
    }
    line_check(l);
  }
  dispatch(eng);
}

/* One of a tenant state's two reads answered: 0 when the state is gone
 * (the lines were freed while it was out; the last answer frees it). */
static int read_answered(struct rq_tstate *t) {
  t->reading--;
  if (t->eng) return 1;
  if (!t->reading) tstate_free(t);
  return 0;
}

static void on_breaker_read(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  struct rq_tstate *t = priv;
  redisReply *reply = r;
  if (!read_answered(t)) return;
  if (reply && reply->type == REDIS_REPLY_ARRAY) parse_breakers(t, reply);
}

static void on_hold_read(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  struct rq_tstate *t = priv;
  redisReply *reply = r;
  if (!read_answered(t)) return;
  if (reply && reply->type == REDIS_REPLY_ARRAY) {
    parse_hold(t, reply);
    t->read_ms = relayq_now_ms();
  }
  /* On a lost reply read_ms stays: the next submit (or the tick) reads again. */
  tstate_apply(t);
}

static void tstate_read(struct rq_tstate *t) {
  struct rq_engine *eng = t->eng;
  if (t->reading || !rq_rconn_ready(eng->cmd)) return;
  t->reading = 2;
  t->read_sent_ms = relayq_now_ms();
  /* Redis answers in order: the hold reply comes last and applies both. */
  char key[400];
  relayq__key(key, sizeof key, eng->cfg->prefix, RELAYQ__KEY_BREAKER, t->id, NULL);
  if (rq_rconn_cmdf(eng->cmd, on_breaker_read, t, "HGETALL %s", key)) {
    t->reading = 0;
    return;
  }
  relayq__key(key, sizeof key, eng->cfg->prefix, RELAYQ__KEY_THOLD, t->id, NULL);
  if (rq_rconn_cmdf(eng->cmd, on_hold_read, t, "HGETALL %s", key)) t->reading = 1;
}

static struct rq_tstate *tstate_get(struct rq_engine *eng, const char *tenant) {
  uint32_t h = rq_hash_str(RQ_HASH_SEED, tenant);
  for (struct rq_hent *x = rq_hmap_chain(&eng->lines->tstates, h); x; x = x->next)
    if (x->hash == h && !strcmp(((struct rq_tstate *)x)->id, tenant)) return (struct rq_tstate *)x;
  struct rq_tstate *t = rq_xcalloc(1, sizeof *t);
  t->id = rq_xstrdup(tenant);
  t->eng = eng;
  t->h.hash = h;
  rq_hmap_add(&eng->lines->tstates, &t->h);
  return t;
}

static void tstate_unref(struct rq_engine *eng, struct rq_tstate *t) {
  if (--t->lines > 0) return;
  rq_hmap_del(&eng->lines->tstates, &t->h);
  if (t->reading) {
    t->eng = NULL; /* freed by its last reply */
    return;
  }
  tstate_free(t);
}

/* ---- lines ---------------------------------------------------------------------------- */

static void ready_add(struct rq_lines *s, struct rq_line *l) {
  if (l->in_ready) return;
  l->in_ready = 1;
  s->n_ready++;
  if (!s->ready) {
    l->rnext = l->rprev = l;
    s->ready = l;
    return;
  }
  /* Behind the cursor: served after every line already waiting. */
  l->rnext = s->ready;
  l->rprev = s->ready->rprev;
  s->ready->rprev->rnext = l;
  s->ready->rprev = l;
}

static void ready_remove(struct rq_lines *s, struct rq_line *l) {
  if (!l->in_ready) return;
  l->in_ready = 0;
  s->n_ready--;
  if (l->rnext == l) {
    s->ready = NULL;
  } else {
    l->rprev->rnext = l->rnext;
    l->rnext->rprev = l->rprev;
    if (s->ready == l) s->ready = l->rnext;
  }
  l->rnext = l->rprev = NULL;
}

/* The line key: tenant, route name and everything that makes it another
 * server or login (a Mailgun line is one tenant's domain and key; only a
 * fingerprint of the key is kept). */
static void line_key(const struct rq_jobctx *jc, char *out, size_t cap) {
  const struct rq_route *r = &jc->route;
  if (r->gateway == RQ_GW_MAILGUN)
    snprintf(out, cap, "%s\x1f%s\x1f%s\x1f%s\x1f%08x", jc->job->tenant, r->name, r->mg_base_url ? r->mg_base_url : "",
             r->mg_domain ? r->mg_domain : "", rq_hash_str(RQ_HASH_SEED, r->mg_key ? r->mg_key : ""));
  else { /* every job: copies, not snprintf */
    size_t n = rq_scat(out, cap, 0, jc->job->tenant);
    n = rq_scat(out, cap, n, "\x1f");
    n = rq_scat(out, cap, n, r->name ? r->name : "platform");
    n = rq_scat(out, cap, n, "\x1f");
    rq_scat(out, cap, n, r->conn_key);
  }
}

static struct rq_line *line_get(struct rq_jobctx *jc) {
  struct rq_engine *eng = jc->eng;
  struct rq_lines *s = eng->lines;
  char key[1200];
  line_key(jc, key, sizeof key);
  uint32_t h = rq_hash_str(RQ_HASH_SEED, key);
  for (struct rq_hent *x = rq_hmap_chain(&s->lines, h); x; x = x->next)
    if (x->hash == h && !strcmp(((struct rq_line *)x)->key, key)) return (struct rq_line *)x;
  struct rq_line *l = rq_xcalloc(1, sizeof *l);
  l->key = rq_xstrdup(key);
  l->tenant = rq_xstrdup(jc->job->tenant);
  snprintf(l->route, sizeof l->route, "%s", jc->route.name ? jc->route.name : "platform");
  l->eng = eng;
  l->ts = tstate_get(eng, jc->job->tenant);
  l->ts->lines++;
  l->tnext = l->ts->tlines;
  if (l->tnext) l->tnext->tprev = l;
  l->ts->tlines = l;
  l->h.hash = h;
  rq_hmap_add(&s->lines, &l->h);
  l->anext = s->all;
  if (s->all) s->all->aprev = l;
  s->all = l;
  s->n_lines++;
  l->idle_since = relayq_now_ms();
  /* A line starts with what the other workers know. */
  struct shared_route *sr = shared_route(l->ts, l->route, 0);
  if (sr) rq_breaker_adopt(&l->b, &sr->b, sr->probe_until);
  return l;
}

static void line_free(struct rq_engine *eng, struct rq_line *l) {
  struct rq_lines *s = eng->lines;
  ready_remove(s, l);
  eng->ready_waiting -= l->counted;
  if (l->in_skip) skip_unlink(s, l); /* idle lines are never in it; be safe */
  rq_hmap_del(&s->lines, &l->h);
  if (l->aprev) l->aprev->anext = l->anext;
  else s->all = l->anext;
  if (l->anext) l->anext->aprev = l->aprev;
  s->n_lines--;
  if (l->tprev) l->tprev->tnext = l->tnext;
  else l->ts->tlines = l->tnext;
  if (l->tnext) l->tnext->tprev = l->tprev;
  tstate_unref(eng, l->ts);
  free(l->key);
  free(l->tenant);
  free(l);
}

/* Keeps eng->ready_waiting: the waiting jobs of lines that wait only for a
 * send slot (ready) or for their first read of the shared state (a moment);
 * fetch.c counts them as busy. */
/* A line FETCH should skip now: full, or waiting for its probe's verdict.
 * A paused tenant is skipped by FETCH itself (P:thold:T). A tenant whose
 * breaker is open is not skipped: each of its jobs is taken once per
 * cool-down and parked with the breaker's detail, so its status says why
 * it waits. */
static int wants_skip(const struct rq_line *l) {
  int limit = l->cap > 0 && 2 * l->cap > RQ_LINE_MAX_WAIT ? 2 * l->cap : RQ_LINE_MAX_WAIT;
  return l->waiting >= limit || (l->b.state == RQ_BREAKER_HALF_OPEN && l->b.probe_out);
}

/* Keeps the line's place in the skipping list (so building the skip list
 * costs the lines in it, not every line). */
static void skip_sync(struct rq_line *l) {
  struct rq_lines *s = l->eng->lines;
  int want = wants_skip(l);
  if (want == l->in_skip) return;
  if (!want) {
    skip_unlink(s, l);
    s->hooks.room(l->eng); /* its tenant may be fetched again */
    return;
  }
  l->in_skip = 1;
  l->snext = s->skipping;
  l->sprev = NULL;
  if (s->skipping) s->skipping->sprev = l;
  s->skipping = l;
}

static void skip_unlink(struct rq_lines *s, struct rq_line *l) {
  l->in_skip = 0;
  if (l->sprev) l->sprev->snext = l->snext;
  else s->skipping = l->snext;
  if (l->snext) l->snext->sprev = l->sprev;
  l->snext = l->sprev = NULL;
}

static void count_sync(struct rq_line *l) {
  int want = l->in_ready || (l->waiting > 0 && l->ts->read_ms == 0) ? l->waiting : 0;
  l->eng->ready_waiting += want - l->counted;
  l->counted = want;
  skip_sync(l);
}

static struct rq_jobctx *pop_waiting(struct rq_line *l) {
  struct rq_jobctx *jc = l->head;
  if (!jc) return NULL;
  l->head = jc->lnext;
  if (!l->head) l->tail = NULL;
  jc->lnext = NULL;
  l->waiting--;
  l->eng->waiting--;
  count_sync(l);
  return jc;
}

static const char *reason_advice(enum rq_errcat e, const struct rq_jobctx *jc) {
  if (jc->route.gateway == RQ_GW_PLATFORM)
    return "The platform gateway (--platform-smtp) is failing: the operator must fix it; nothing is needed from the "
           "tenant.";
  if (jc->route.gateway == RQ_GW_MAILGUN) {
    switch (e) {
    case RQ_ERR_AUTH: return "Check the tenant's mailgun_api_key and mailgun_domain (Mailgun refused them).";
    case RQ_ERR_TLS: return "Check the certificate of the tenant's mailgun_base_url (or its mailgun_region).";
    default: return "Check that the tenant's mailgun_base_url (or mailgun_region) is up and reachable.";
    }
  }
  switch (e) {
  case RQ_ERR_AUTH:
    if (jc->route.smtp_conf && jc->route.smtp_conf->xoauth2)
      return "The tenant must sign in again (smtp_auth=xoauth2: a new oauth_refresh_token), or check smtp_user.";
    return "Check the login: smtp_user and smtp_password.";
  case RQ_ERR_TLS:
    return "Check the server's certificate (relayq tenant trust pins a self-signed one), or smtp_security.";
  default: return "Check that the server is up and reachable at smtp_host and smtp_port.";
  }
}

/* Hands every waiting job back to Redis while the breaker is open. */
static void park_for_breaker(struct rq_line *l) {
  int64_t until = l->b.open_until;
  char detail[700], when[64];
  rq_when(when, sizeof when, until, relayq_now_ms());
  struct rq_jobctx *jc;
  while ((jc = pop_waiting(l))) {
    snprintf(detail, sizeof detail,
             "The circuit breaker of route %s is open after repeated %s failures: no worker connects until the "
             "cool-down ends %s; then one job probes the server and sending resumes when it goes through. %s",
             l->route, rq_errcat_name(l->b.reason), when, reason_advice(l->b.reason, jc));
    jc->line = NULL;
    l->eng->lines->hooks.hold(jc, RQ_STATE_RETRY, until, l->b.reason, detail);
  }
}

static void park_for_pause(struct rq_line *l) {
  struct rq_tstate *t = l->ts;
  char detail[600];
  char until_s[96] = "", when[64];
  if (t->paused_until > 0)
    snprintf(until_s, sizeof until_s, " or when the hold ends %s",
             rq_when(when, sizeof when, t->paused_until, relayq_now_ms()));
  struct rq_jobctx *jc;
  while ((jc = pop_waiting(l))) {
    snprintf(detail, sizeof detail,
             "Tenant %s is paused by the operator%s%s. Its jobs wait and are sent once it is resumed "
             "(relayq tenant resume %s)%s.",
             l->tenant, t->pause_reason ? ": " : "", t->pause_reason ? t->pause_reason : "", l->tenant, until_s);
    jc->line = NULL;
    l->eng->lines->hooks.hold(jc, RQ_STATE_DEFERRED, relayq_now_ms() + RQ_PAUSE_RECHECK_MS, RQ_ERR_POLICY, detail);
  }
}

/* Shared writes. ---------------------------------------------------------------------- */

static void breaker_write(struct rq_line *l) {
  struct rq_engine *eng = l->eng;
  char until[24];
  rq_fmt_i64(until, sizeof until, l->b.state == RQ_BREAKER_OPEN ? l->b.open_until : 0);
  rq_status_breaker(eng, l->tenant, l->route, &l->b);
  l->written_ms = relayq_now_ms();
  RQ_LOG_FIELDS(l->b.state == RQ_BREAKER_OPEN ? RQ_LOG_WARN : RQ_LOG_INFO, "circuit breaker", {"tenant", l->tenant},
                {"route", l->route}, {"state", rq_breaker_state_name(l->b.state)},
                {"reason", l->b.state == RQ_BREAKER_CLOSED ? NULL : rq_errcat_name(l->b.reason)}, {"until", until});
  /* What we wrote is what the others will read: keep the cache in step. */
  struct shared_route *sr = shared_route(l->ts, l->route, 1);
  if (sr) sr->b = l->b;
}

/* Counts a failure for every worker and trips when they add up. */
struct fail_call {
  struct rq_engine *eng;
  char *key; /* line key: the line may be gone when the reply comes */
  enum rq_errcat reason;
};

static struct rq_line *line_by_key(struct rq_engine *eng, const char *key) {
  if (!eng->lines) return NULL;
  uint32_t h = rq_hash_str(RQ_HASH_SEED, key);
  for (struct rq_hent *x = rq_hmap_chain(&eng->lines->lines, h); x; x = x->next)
    if (x->hash == h && !strcmp(((struct rq_line *)x)->key, key)) return (struct rq_line *)x;
  return NULL;
}

static void on_fail_counted(void *arg, const struct rq_breaker_count *c) {
  struct fail_call *fc = arg;
  struct rq_line *l = line_by_key(fc->eng, fc->key);
  if (l) {
    int64_t now = relayq_now_ms();
    l->failing = 0;
    int failures = l->b.failures + 1; /* no answer: counted here alone */
    if (c->ok) {
      failures = c->shared.failures;
      /* Another worker may have decided already: follow it, do not trip twice.
       * The count goes on while the breaker is open or probing (so it
       * shows what tripped it): only a closed breaker trips on it; open or
       * half-open, the cool-down and the probe decide and this worker
       * follows. */
      if (c->shared.state != RQ_BREAKER_CLOSED) {
        rq_breaker_adopt(&l->b, &c->shared, 0);
        line_check(l);
        failures = -1;
      } else if (c->shared.trips > l->b.trips) {
        l->b.trips = c->shared.trips;
      }
    }
    if (failures >= 0 && rq_breaker_failed(&l->b, fc->reason, failures, now)) {
      breaker_write(l);
      line_check(l);
    }
  }
  free(fc->key);
  free(fc);
}

static void count_failure(struct rq_line *l, enum rq_errcat reason) {
  struct rq_engine *eng = l->eng;
  if (l->b.state == RQ_BREAKER_HALF_OPEN) { /* the probe failed: reopen at once */
    rq_breaker_failed(&l->b, reason, l->b.failures + 1, relayq_now_ms());
    breaker_write(l);
    line_check(l);
    return;
  }
  struct fail_call *fc = rq_xmalloc(sizeof *fc);
  fc->eng = eng;
  fc->key = rq_xstrdup(l->key);
  fc->reason = reason;
  l->failing = 1;
  rq_status_breaker_fail(eng, l->tenant, l->route, on_fail_counted, fc); /* Redis away: counted locally */
}

struct probe_call {
  struct rq_engine *eng;
  char *key;
};

static void on_probe(void *arg, const struct rq_breaker_probe *p) {
  struct probe_call *pc = arg;
  struct rq_line *l = line_by_key(pc->eng, pc->key);
  free(pc->key);
  free(pc);
  if (!l) return;
  l->probing = 0;
  int64_t now = relayq_now_ms();
  if (!p->ok) {
    l->b.open_until = now + 1000; /* ask again soon */
    line_check(l);
    return;
  }
  if (p->verdict == 1) {
    l->b.state = RQ_BREAKER_HALF_OPEN;
    l->b.probe_out = 0;
    RQ_LOG_FIELDS(RQ_LOG_INFO, "circuit breaker", {"tenant", l->tenant}, {"route", l->route},
                  {"state", "half_open"}, {"detail", "this worker sends one probe job"});
  } else if (p->verdict == 2) {
    l->b.state = RQ_BREAKER_CLOSED; /* another worker's probe closed it */
    l->b.trips = 0;
    l->b.failures = 0;
  } else {
    int64_t until = p->until >= 0 ? p->until : now + 5000;
    l->b.state = RQ_BREAKER_OPEN;
    l->b.open_until = until > now ? until : now + 1000;
  }
  line_check(l);
  dispatch(l->eng);
}

static void ask_probe(struct rq_line *l) {
  struct rq_engine *eng = l->eng;
  if (l->probing) return;
  struct probe_call *pc = rq_xmalloc(sizeof *pc);
  pc->eng = eng;
  pc->key = rq_xstrdup(l->key);
  l->probing = 1;
  int64_t probe_until = relayq_now_ms() + eng->cfg->smtp_timeout_ms + PROBE_TTL_EXTRA_MS;
  if (rq_status_breaker_probe(eng, l->tenant, l->route, probe_until, on_probe, pc)) {
    l->probing = 0;
    free(pc->key);
    free(pc);
  }
}

/* ---- admission ------------------------------------------------------------------------ */

/* How many connects an unproven line may have in flight: its own cap,
 * or one (the server proves itself first) when it has none. */
static int unproven_cap(const struct rq_line *l) { return l->cap > 0 ? l->cap : 1; }

/* Puts the line in the ready ring when it can send, hands its jobs back
 * when it cannot for a while. */
static void line_check(struct rq_line *l) {
  struct rq_lines *s = l->eng->lines;
  struct rq_tstate *t = l->ts;
  int64_t now = relayq_now_ms();
  int can = l->waiting > 0 && t->read_ms > 0 && (l->cap == 0 || l->active < l->cap);
  if (t->read_ms > 0 && t->paused && (t->paused_until == 0 || t->paused_until > now)) {
    park_for_pause(l);
    can = 0;
  } else if (l->b.state == RQ_BREAKER_OPEN) {
    if (now < l->b.open_until) {
      /* Park only on fresh news: a read in flight may say the cool-down
       * ended or another worker's probe closed it. */
      if (!l->probing && !t->reading) park_for_breaker(l);
      can = 0;
    } else {
      if (l->waiting > 0) ask_probe(l);
      can = 0;
    }
  } else if (l->b.state == RQ_BREAKER_HALF_OPEN && l->b.probe_out) {
    can = 0; /* the probe's verdict first */
  } else if (!l->proven && l->connecting >= unproven_cap(l)) {
    can = 0; /* its connects prove the server first */
  }
  if (can) ready_add(s, l);
  else ready_remove(s, l);
  count_sync(l);
}

static void admit(struct rq_line *l, struct rq_jobctx *jc) {
  struct rq_engine *eng = l->eng;
  int64_t until = 0;
  rq_breaker_allow(&l->b, relayq_now_ms(), &until); /* half-open: marks the probe as out */
  skip_sync(l);
  l->active++;
  jc->admitted = 1;
  jc->slot = l->proven;
  if (jc->slot) {
    eng->sending++;
  } else {
    l->connecting++;
    eng->connecting++;
  }
  eng->lines->hooks.waited(eng, (double)(relayq_now_ms() - jc->wait_since) / 1000.0);
  eng->lines->hooks.admitted(jc);
}

static void dispatch(struct rq_engine *eng) {
  struct rq_lines *s = eng->lines;
  if (!s || s->dispatching) return;
  s->dispatching = 1;
  /* The last RQ_RESERVE_SHARE-th of the slots go only to lines sending
   * nothing yet: a tenant whose server or API is slow can fill the rest,
   * never the slot another tenant's first job needs. */
  int reserve = eng->cfg->concurrency / RQ_RESERVE_SHARE;
  /* Unproven lines connect outside the slots, within their own budget
   * (lines.h): a silent server holds no slot while it times out. */
  int ucap = RQ_UNPROVEN_FACTOR * eng->cfg->concurrency;
  int ureserve = ucap / RQ_UNPROVEN_RESERVE;
  int skipped = 0;
  while (s->ready && (eng->sending < eng->cfg->concurrency || eng->connecting < ucap) && !eng->stopping &&
         skipped <= s->n_ready) {
    struct rq_line *l = s->ready;
    s->ready = l->rnext; /* round robin: the next line goes next */
    line_check(l);
    if (!l->in_ready) continue;
    int full = l->proven ? eng->sending >= eng->cfg->concurrency ||
                               (l->active > 0 && eng->sending >= eng->cfg->concurrency - reserve)
                         : eng->connecting >= ucap || (l->connecting > 0 && eng->connecting >= ucap - ureserve);
    if (full) {
      skipped++;
      continue;
    }
    skipped = 0;
    struct rq_jobctx *jc = pop_waiting(l);
    line_check(l);
    admit(l, jc);
  }
  s->dispatching = 0;
  /* A job that now waits for its own tenant route no longer takes up the
   * fetch budget. */
  s->hooks.room(eng);
}

void rq_lines_submit(struct rq_jobctx *jc) {
  struct rq_engine *eng = jc->eng;
  if (eng->stopping) { /* hand it back as it came */
    eng->lines->hooks.hand_back(jc);
    return;
  }
  struct rq_line *l = line_get(jc);
  l->cap = jc->route.max_connections > 0 ? jc->route.max_connections : 0;
  jc->line = l;
  jc->phase = RQ_PHASE_WAIT;
  jc->wait_since = relayq_now_ms();
  jc->lnext = NULL;
  if (l->tail) l->tail->lnext = jc;
  else l->head = jc;
  l->tail = jc;
  l->waiting++;
  eng->waiting++;
  int64_t now = relayq_now_ms();
  if (now - l->ts->read_ms >= RQ_SHARED_TTL_MS) tstate_read(l->ts);
  if (l->ts->read_ms == 0 && !l->ts->reading) {
    /* Redis is away: nothing is sent anyway; go on with what we know. */
    l->ts->read_ms = 1;
  }
  line_check(l);
  dispatch(eng);
}

void rq_lines_ready(struct rq_jobctx *jc) {
  struct rq_line *l = jc->line;
  if (!l || !jc->admitted) return;
  l->proven = 1;
  if (jc->slot) return;
  /* It takes its slot even when the slots are full at this instant: the
   * worker then admits no proven job until one frees (so sends in flight
   * exceed --concurrency by at most the unproven connects, briefly). */
  jc->slot = 1;
  l->connecting--;
  jc->eng->connecting--;
  jc->eng->sending++;
  line_check(l);
  dispatch(jc->eng);
}

void rq_lines_outcome(struct rq_jobctx *jc, const struct rq_class *c) {
  struct rq_line *l = jc->line;
  if (!l) return;
  if (rq_breaker_counts(c) && c->trip_now) { /* e.g. an OAuth grant the provider refused */
    l->proven = 0;
    if (rq_breaker_record(&l->b, c, relayq_now_ms())) {
      breaker_write(l);
      line_check(l);
    }
    return;
  }
  if (rq_breaker_counts(c)) {
    l->proven = 0; /* its next connects prove the server again, outside the slots */
    count_failure(l, c->error);
    return;
  }
  /* Any answer that is not a server-health failure proves the server and
   * the login work. Written only when there is something to undo. */
  int was = l->b.state != RQ_BREAKER_CLOSED || l->b.failures > 0;
  struct shared_route *sr = shared_route(l->ts, l->route, 0);
  if (sr && (sr->b.state != RQ_BREAKER_CLOSED || sr->b.failures > 0)) was = 1;
  rq_breaker_record(&l->b, c, relayq_now_ms());
  if (was) breaker_write(l);
}

void rq_lines_release(struct rq_jobctx *jc) {
  struct rq_line *l = jc->line;
  struct rq_engine *eng = jc->eng;
  if (!l) return;
  if (jc->admitted) {
    l->active--;
    if (jc->slot) {
      eng->sending--;
    } else {
      l->connecting--;
      eng->connecting--;
    }
    jc->admitted = 0;
    jc->slot = 0;
    if (l->b.state == RQ_BREAKER_HALF_OPEN && l->b.probe_out && !l->failing) {
      /* The probe ended without a verdict on the server (quota, duplicate,
       * a message rejected before connecting): let another job probe. */
      l->b.probe_out = 0;
    }
  } else {
    /* Still waiting (shutdown drop): unlink it. */
    struct rq_jobctx **pp = &l->head, *prev = NULL;
    while (*pp && *pp != jc) {
      prev = *pp;
      pp = &(*pp)->lnext;
    }
    if (*pp) {
      *pp = jc->lnext;
      if (l->tail == jc) l->tail = prev;
      l->waiting--;
      eng->waiting--;
      count_sync(l);
    }
  }
  jc->line = NULL;
  if (l->active == 0 && l->waiting == 0) l->idle_since = relayq_now_ms();
  line_check(l);
  dispatch(eng);
}

void rq_lines_stop(struct rq_engine *eng) {
  struct rq_lines *s = eng->lines;
  if (!s) return;
  for (struct rq_line *l = s->all; l; l = l->anext) {
    ready_remove(s, l);
    struct rq_jobctx *jc;
    while ((jc = pop_waiting(l))) {
      jc->line = NULL;
      s->hooks.hand_back(jc);
    }
  }
}

void rq_lines_tick(struct rq_engine *eng) {
  struct rq_lines *s = eng->lines;
  if (!s) return;
  int64_t now = relayq_now_ms();
  struct rq_line *next;
  for (struct rq_line *l = s->all; l; l = next) {
    next = l->anext;
    if (l->active == 0 && l->waiting == 0 && !l->probing && !l->failing && l->b.state == RQ_BREAKER_CLOSED &&
        (now - l->idle_since > LINE_IDLE_FREE_MS || s->n_lines > LINES_IDLE_KEEP)) {
      line_free(eng, l);
      continue;
    }
    /* Lines with work, and blocked ones (so a resume or another worker's
     * successful probe is seen): one read per tenant per RQ_SHARED_TTL_MS. */
    int blocked = l->b.state != RQ_BREAKER_CLOSED || l->ts->paused;
    if (l->waiting > 0 || blocked) {
      if (now - l->ts->read_ms >= RQ_SHARED_TTL_MS) tstate_read(l->ts);
      line_check(l);
    }
  }
  dispatch(eng);
}

size_t rq_lines_skip_list(struct rq_engine *eng, const char **out, size_t max) {
  struct rq_lines *s = eng->lines;
  skip_free(s);
  if (!max) return 0;
  s->skip = rq_xcalloc(max, sizeof *s->skip);
  for (struct rq_line *l = s->skipping; l && s->n_skip < max; l = l->snext) {
    int dup = 0;
    for (size_t i = 0; i < s->n_skip && !dup; i++) dup = !strcmp(s->skip[i], l->tenant);
    if (!dup) s->skip[s->n_skip++] = rq_xstrdup(l->tenant);
  }
  for (size_t i = 0; i < s->n_skip; i++) out[i] = s->skip[i];
  return s->n_skip;
}

int rq_lines_skipping(const struct rq_engine *eng) { return eng->lines && eng->lines->skipping; }

void rq_lines_foreach(struct rq_engine *eng, void (*cb)(const struct rq_line_view *v, void *arg), void *arg) {
  if (!eng->lines) return;
  for (struct rq_line *l = eng->lines->all; l; l = l->anext) {
    if (l->active == 0 && l->waiting == 0 && l->b.state == RQ_BREAKER_CLOSED) continue;
    struct rq_line_view v = {l->tenant, l->route, l->active, l->waiting, l->b.state};
    cb(&v, arg);
  }
}
