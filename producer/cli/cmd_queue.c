/*
 * cmd_queue: `relayq queue stats [--json]`, a snapshot of what waits in
 * Redis (CONTRACT.md "Redis keys"), read in the worker's own layout
 * (producer/lib/scripts.c FETCH and RECLAIM, worker/heartbeat.c):
 *
 *   P:queue:Q          ready jobs not yet sorted ("shared")
 *   P:tring:Q          tenants with sorted work in queue Q
 *   P:tq:Q:T           tenant T's sorted backlog in queue Q
 *   P:tpause:T         T is paused by its quota until the value (ms)
 *   P:thold:T          T is held by an operator (relayq tenant pause): a
 *                      hash with `until` (ms, 0 = until resumed)
 *   P:delayed          zset, score = due time (ms)
 *   P:inflight:W       jobs worker W holds
 *   P:worker:W         W's heartbeat hash (expires when W stops beating)
 *   P:workers          registry W -> queues, kept until W's jobs are reclaimed
 *   P:dead             dead-lettered payloads
 *
 * Ready jobs of queue Q = LLEN P:queue:Q + the sum of LLEN P:tq:Q:T over
 * the tenants in P:tring:Q. Queues are every P:queue:* and P:tring:* key
 * (found with SCAN, never KEYS, so a large keyspace does not stall Redis)
 * plus the queues workers name in the registry and their heartbeats, so an
 * empty queue someone serves still shows with 0. Workers are the union of
 * the registry, the heartbeats and the inflight lists found.
 *
 * The numbers are read in a few pipelined round trips, not in one atomic
 * step: under load they are a close snapshot, not an exact one. "now" is
 * this machine's clock (the workers use theirs for due times and
 * heartbeats too).
 *
 * Exit: 0 printed; 1 Redis failed; 2 bad arguments.
 *
 * Memory: like the daemon (worker/util.h), the CLI aborts on out of
 * memory in rq_x*: it holds nothing that a crash would lose.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "cli.h"
#include "keys.h"
#include "queue_stats.h"
#include "util.h"

#define SCAN_COUNT "1000"          /* keys Redis looks at per SCAN call */
#define SCAN_MAX_ROUNDS 100000000L /* a bound on the walk, far above any keyspace */
#define CHUNK 512                  /* items per pipelined round trip */
#define TOP_TENANTS 5
#define MAX_NAME 512               /* longer key suffixes are not ours: ignored */
#define MAX_WARNINGS 5
#define KEY_MAX (2 * MAX_NAME + 400) /* a prefix and two names */

static const char *const hb_fields[HB_COUNT] = {"host",   "pid",     "started_at",
                                                "inflight", "sent",  "failed",
                                                "version", "queues", "updated_at"};

enum { O_JSON = CLI_OPT_FIRST_FREE };

static const struct option queue_opts[] = {
    CLI_GLOBAL_LONGOPTS,
    {"json", no_argument, NULL, O_JSON},
    {NULL, 0, NULL, 0},
};

/* ---- sets of names ----------------------------------------------------------- */


/* Appends a copy of p[0..len), whatever it holds but NUL. */
/* Key kind (relayq.h or keys.h) under s's prefix, written into buf. */
static const char *key(const struct stats *s, char buf[KEY_MAX], int kind, const char *name, const char *sub) {
  relayq__key(buf, KEY_MAX, s->prefix, kind, name, sub);
  return buf;
}

static void names_push(struct names *s, const char *p, size_t len) {
  if (s->n == s->cap) {
    s->cap = s->cap ? 2 * s->cap : 16;
    s->v = rq_xrealloc(s->v, s->cap * sizeof *s->v);
  }
  s->v[s->n++] = rq_xstrndup(p, len);
}

/* Appends a name: 1-MAX_NAME bytes without NUL; anything else is not one
 * of our names and is skipped. */
static void names_add(struct names *s, const char *p, size_t len) {
  if (len == 0 || len > MAX_NAME || memchr(p, '\0', len)) return;
  names_push(s, p, len);
}

/* Adds every element of a comma-separated list. */
static void names_add_list(struct names *s, const char *list) {
  for (const char *p = list; *p;) {
    size_t len = strcspn(p, ",");
    names_add(s, p, len);
    p += len + (p[len] == ',');
  }
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts and removes duplicates. */
static void names_uniq(struct names *s) {
  if (s->n == 0) return;
  qsort(s->v, s->n, sizeof *s->v, cmp_str);
  size_t w = 1;
  for (size_t i = 1; i < s->n; i++) {
    if (strcmp(s->v[i], s->v[w - 1]) == 0) free(s->v[i]);
    else s->v[w++] = s->v[i];
  }
  s->n = w;
}

static void names_free(struct names *s) {
  for (size_t i = 0; i < s->n; i++) free(s->v[i]);
  free(s->v);
  memset(s, 0, sizeof *s);
}

/* ---- the snapshot ---------------------------------------------------------------- */

void queue_stats_free(struct stats *s) {
  for (size_t i = 0; i < s->nq; i++) {
    for (size_t k = 0; k < s->q[i].nt; k++) free(s->q[i].t[k].tenant);
    free(s->q[i].t);
  }
  free(s->q);
  for (size_t i = 0; i < s->nw; i++) {
    free(s->w[i].registered);
    for (int f = 0; f < HB_COUNT; f++) free(s->w[i].hb[f]);
  }
  free(s->w);
  names_free(&s->queue_names);
  names_free(&s->worker_names);
}

/* ---- Redis plumbing -------------------------------------------------------------- */

/* The next pipelined reply; NULL, with the reason on stderr, when the
 * connection failed (nothing more can be read from it then). */
static redisReply *next_reply(struct stats *s) {
  void *r = NULL;
  if (redisGetReply(s->rc, &r) != REDIS_OK || r == NULL) {
    cli_fail(CLI_FAIL, "the Redis connection failed while reading the queue state: %s.",
             s->rc->errstr[0] ? s->rc->errstr : "no reply");
    return NULL;
  }
  return r;
}

/* A key of an unexpected type is someone else's data in our namespace:
 * say so (a few times at most) and count it as empty rather than hide the
 * rest of the snapshot. */
static void warn_reply(struct stats *s, const redisReply *r, const char *what, const char *name) {
  if (r->type != REDIS_REPLY_ERROR || s->warnings++ >= MAX_WARNINGS) return;
  fprintf(stderr, "relayq: warning: Redis refused to read %s%s%.200s (%.200s); counted as 0.\n",
          what, name[0] ? " " : "", name, r->str);
}

static long long int_of(struct stats *s, const redisReply *r, const char *what, const char *name) {
  if (r->type == REDIS_REPLY_INTEGER) return r->integer;
  warn_reply(s, r, what, name);
  return 0;
}

static char *str_of(const redisReply *r) {
  return r->type == REDIS_REPLY_STRING ? rq_xstrndup(r->str, r->len) : NULL;
}

/* Appends the commands for item i; reads item i's replies (0 or -1 when
 * the connection failed). */
typedef void (*append_fn)(struct stats *s, size_t i);
typedef int (*read_fn)(struct stats *s, size_t i);

/* Runs n items CHUNK at a time: one round trip per chunk. */
static int pipelined(struct stats *s, size_t n, append_fn append, read_fn read) {
  for (size_t start = 0; start < n; start += CHUNK) {
    size_t end = start + CHUNK < n ? start + CHUNK : n;
    for (size_t i = start; i < end; i++) append(s, i);
    for (size_t i = start; i < end; i++)
      if (read(s, i) != 0) return -1;
  }
  return 0;
}

/* Escapes the glob characters of the prefix for SCAN MATCH. */
static void glob_escape(char *dst, size_t cap, const char *src) {
  size_t n = 0;
  for (; *src && n + 2 < cap; src++) {
    if (strchr("*?[]\\", *src)) dst[n++] = '\\';
    dst[n++] = *src;
  }
  dst[n] = '\0';
}

/* If key is PREFIX:part:NAME, adds NAME to set. */
static void take_suffix(const struct stats *s, const redisReply *key, const char *part,
                        struct names *set) {
  size_t pl = strlen(s->prefix), tl = strlen(part);
  if (key->type != REDIS_REPLY_STRING || key->len <= pl + tl + 2) return;
  if (memcmp(key->str, s->prefix, pl) != 0 || key->str[pl] != ':' ||
      memcmp(key->str + pl + 1, part, tl) != 0 || key->str[pl + 1 + tl] != ':')
    return;
  size_t off = pl + tl + 2;
  names_add(set, key->str + off, key->len - off);
}

/* One SCAN walk over P:[qtiw]* (queue, tring, inflight, worker, and the
 * tq/tpause/tenant keys we skip): one pass instead of one per pattern. */
static int scan_keys(struct stats *s) {
  char pat[2 * RELAYQ_ID_MAX + 16];
  glob_escape(pat, sizeof pat - 8, s->prefix);
  strcat(pat, ":[qtiw]*");
  char cursor[32] = "0";
  for (long round = 0; round < SCAN_MAX_ROUNDS; round++) {
    const char *argv[] = {"SCAN", cursor, "MATCH", pat, "COUNT", SCAN_COUNT};
    redisReply *r = redisCommandArgv(s->rc, 6, argv, NULL);
    if (r == NULL)
      return cli_fail(CLI_FAIL, "the Redis connection failed during SCAN: %s.", s->rc->errstr);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
      int rc = cli_fail(CLI_FAIL, "Redis answered SCAN unexpectedly%s%.200s.",
                        r->type == REDIS_REPLY_ERROR ? ": " : "",
                        r->type == REDIS_REPLY_ERROR ? r->str : "");
      freeReplyObject(r);
      return rc;
    }
    snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
    const redisReply *keys = r->element[1];
    for (size_t i = 0; i < keys->elements; i++) {
      take_suffix(s, keys->element[i], "queue", &s->queue_names);
      take_suffix(s, keys->element[i], "tring", &s->queue_names);
      take_suffix(s, keys->element[i], "inflight", &s->worker_names);
      take_suffix(s, keys->element[i], "worker", &s->worker_names);
    }
    freeReplyObject(r);
    if (strcmp(cursor, "0") == 0) return 0;
  }
  return cli_fail(CLI_FAIL, "SCAN did not finish; the keyspace changed too fast to walk.");
}

/* The registry P:workers: adds its workers and their queues. *pairs gets
 * the id/queues pairs (owned, even count). */
static int read_registry(struct stats *s, struct names *pairs) {
  char k[KEY_MAX];
  redisReply *r = redisCommand(s->rc, "HGETALL %s", key(s, k, RELAYQ_KEY_WORKERS, NULL, NULL));
  if (r == NULL)
    return cli_fail(CLI_FAIL, "the Redis connection failed reading the worker registry: %s.",
                    s->rc->errstr);
  if (r->type == REDIS_REPLY_ARRAY) {
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
      const redisReply *id = r->element[i], *q = r->element[i + 1];
      if (id->type != REDIS_REPLY_STRING || q->type != REDIS_REPLY_STRING) continue;
      if (id->len == 0 || id->len > MAX_NAME || memchr(id->str, '\0', id->len) ||
          memchr(q->str, '\0', q->len))
        continue;
      names_add(&s->worker_names, id->str, id->len);
      names_push(pairs, id->str, id->len);
      names_push(pairs, q->str, q->len);
      names_add_list(&s->queue_names, pairs->v[pairs->n - 1]);
    }
  } else {
    warn_reply(s, r, "the worker registry", "");
  }
  freeReplyObject(r);
  return 0;
}

/* ---- workers ------------------------------------------------------------------- */

static void append_worker(struct stats *s, size_t i) {
  char k[KEY_MAX];
  redisAppendCommand(s->rc, "HGETALL %s", key(s, k, RELAYQ_KEY_WORKER, s->w[i].id, NULL));
  redisAppendCommand(s->rc, "LLEN %s", key(s, k, RELAYQ_KEY_INFLIGHT, s->w[i].id, NULL));
}

static int read_worker(struct stats *s, size_t i) {
  struct worker_stat *w = &s->w[i];
  redisReply *hb = next_reply(s);
  if (hb == NULL) return -1;
  if (hb->type == REDIS_REPLY_ARRAY && hb->elements > 0) {
    w->live = 1;
    for (size_t k = 0; k + 1 < hb->elements; k += 2) {
      const redisReply *f = hb->element[k];
      if (f->type != REDIS_REPLY_STRING) continue;
      for (int h = 0; h < HB_COUNT; h++)
        if (f->len == strlen(hb_fields[h]) && memcmp(f->str, hb_fields[h], f->len) == 0 &&
            w->hb[h] == NULL)
          w->hb[h] = str_of(hb->element[k + 1]);
    }
  } else {
    warn_reply(s, hb, "the heartbeat of worker", w->id);
  }
  freeReplyObject(hb);
  redisReply *len = next_reply(s);
  if (len == NULL) return -1;
  w->inflight_len = int_of(s, len, "the inflight list of worker", w->id);
  freeReplyObject(len);
  return 0;
}

static int read_workers(struct stats *s, const struct names *pairs) {
  names_uniq(&s->worker_names);
  s->nw = s->worker_names.n;
  s->w = rq_xcalloc(s->nw + 1, sizeof *s->w);
  for (size_t i = 0; i < s->nw; i++) s->w[i].id = s->worker_names.v[i];
  for (size_t p = 0; p + 1 < pairs->n; p += 2) {
    char **hit = bsearch(&pairs->v[p], s->worker_names.v, s->nw, sizeof *s->worker_names.v,
                         cmp_str);
    if (hit) s->w[hit - s->worker_names.v].registered = rq_xstrdup(pairs->v[p + 1]);
  }
  if (pipelined(s, s->nw, append_worker, read_worker) != 0) return CLI_FAIL;
  for (size_t i = 0; i < s->nw; i++)
    if (s->w[i].live && s->w[i].hb[HB_QUEUES])
      names_add_list(&s->queue_names, s->w[i].hb[HB_QUEUES]);
  return 0;
}

/* ---- queues ------------------------------------------------------------------- */

static void append_queue(struct stats *s, size_t i) {
  char k[KEY_MAX];
  redisAppendCommand(s->rc, "LLEN %s", key(s, k, RELAYQ_KEY_QUEUE, s->q[i].name, NULL));
  redisAppendCommand(s->rc, "LRANGE %s 0 -1", key(s, k, RELAYQ__KEY_TRING, s->q[i].name, NULL));
}

static int read_queue(struct stats *s, size_t i) {
  struct queue_stat *q = &s->q[i];
  redisReply *len = next_reply(s);
  if (len == NULL) return -1;
  q->shared = int_of(s, len, "queue", q->name);
  freeReplyObject(len);
  redisReply *ring = next_reply(s);
  if (ring == NULL) return -1;
  struct names tenants = {0};
  if (ring->type == REDIS_REPLY_ARRAY)
    for (size_t k = 0; k < ring->elements; k++)
      if (ring->element[k]->type == REDIS_REPLY_STRING)
        names_add(&tenants, ring->element[k]->str, ring->element[k]->len);
  warn_reply(s, ring, "the tenant ring of queue", q->name);
  freeReplyObject(ring);
  /* A tenant is in the ring once; dedupe anyway so a damaged ring cannot
   * count a backlog twice. */
  names_uniq(&tenants);
  q->nt = tenants.n;
  q->t = rq_xcalloc(q->nt + 1, sizeof *q->t);
  for (size_t k = 0; k < q->nt; k++) q->t[k].tenant = tenants.v[k];
  free(tenants.v);
  return 0;
}

static void append_tenant(struct stats *s, size_t k) {
  const struct queue_stat *q = &s->q[s->cur];
  char kb[KEY_MAX];
  redisAppendCommand(s->rc, "LLEN %s", key(s, kb, RELAYQ__KEY_TQ, q->name, q->t[k].tenant));
  redisAppendCommand(s->rc, "GET %s", key(s, kb, RELAYQ__KEY_TPAUSE, q->t[k].tenant, NULL));
  redisAppendCommand(s->rc, "HMGET %s until since", key(s, kb, RELAYQ__KEY_THOLD, q->t[k].tenant, NULL));
}

static int read_tenant(struct stats *s, size_t k) {
  struct tenant_depth *t = &s->q[s->cur].t[k];
  redisReply *len = next_reply(s);
  if (len == NULL) return -1;
  t->depth = int_of(s, len, "the backlog of tenant", t->tenant);
  freeReplyObject(len);
  redisReply *pause = next_reply(s);
  if (pause == NULL) return -1;
  /* FETCH skips a tenant whenever the key exists, whatever it holds. */
  if (pause->type == REDIS_REPLY_STRING) {
    long long until;
    t->paused = 1;
    t->until = cli_parse_int(pause->str, 0, INT64_MAX, &until) == 0 ? until : -1;
  } else if (pause->type == REDIS_REPLY_ERROR) { /* WRONGTYPE: the key exists */
    t->paused = 1;
    t->until = -1;
  }
  freeReplyObject(pause);
  /* An operator's hold outlasts a quota pause: it is what the line shows. */
  redisReply *hold = next_reply(s);
  if (hold == NULL) return -1;
  if (hold->type == REDIS_REPLY_ARRAY && hold->elements == 2 &&
      (hold->element[0]->type == REDIS_REPLY_STRING || hold->element[1]->type == REDIS_REPLY_STRING)) {
    long long until = 0;
    t->paused = 1;
    t->held = 1;
    t->until = hold->element[0]->type == REDIS_REPLY_STRING &&
                       cli_parse_int(hold->element[0]->str, 0, INT64_MAX, &until) == 0 && until > 0
                   ? until
                   : -1;
  }
  freeReplyObject(hold);
  return 0;
}

/* Deepest first, then by name, so the output is stable. */
static int by_depth(const void *a, const void *b) {
  const struct tenant_depth *x = a, *y = b;
  if (x->depth != y->depth) return x->depth > y->depth ? -1 : 1;
  return strcmp(x->tenant, y->tenant);
}

static int read_queues(struct stats *s) {
  names_uniq(&s->queue_names);
  s->nq = s->queue_names.n;
  s->q = rq_xcalloc(s->nq + 1, sizeof *s->q);
  for (size_t i = 0; i < s->nq; i++) s->q[i].name = s->queue_names.v[i];
  if (pipelined(s, s->nq, append_queue, read_queue) != 0) return CLI_FAIL;
  for (size_t i = 0; i < s->nq; i++) {
    struct queue_stat *q = &s->q[i];
    s->cur = i;
    if (pipelined(s, q->nt, append_tenant, read_tenant) != 0) return CLI_FAIL;
    qsort(q->t, q->nt, sizeof *q->t, by_depth);
    for (size_t k = 0; k < q->nt; k++) {
      q->sorted += q->t[k].depth;
      q->with_backlog += q->t[k].depth > 0;
      q->paused += q->t[k].depth > 0 && q->t[k].paused;
    }
  }
  return 0;
}

static int read_totals(struct stats *s) {
  char k[KEY_MAX];
  redisAppendCommand(s->rc, "ZCOUNT %s -inf %lld", key(s, k, RELAYQ_KEY_DELAYED, NULL, NULL), s->now);
  redisAppendCommand(s->rc, "ZCOUNT %s (%lld +inf", k, s->now);
  redisAppendCommand(s->rc, "LLEN %s", key(s, k, RELAYQ_KEY_DEAD, NULL, NULL));
  long long *out[] = {&s->due, &s->later, &s->dead};
  const char *what[] = {"the delayed set", "the delayed set", "the dead list"};
  for (int i = 0; i < 3; i++) {
    redisReply *r = next_reply(s);
    if (r == NULL) return CLI_FAIL;
    *out[i] = int_of(s, r, what[i], "");
    freeReplyObject(r);
  }
  return 0;
}

int queue_stats_collect(struct stats *s) {
  struct names pairs = {0};
  int rc = scan_keys(s);
  if (rc == 0) rc = read_registry(s, &pairs);
  if (rc == 0) rc = read_workers(s, &pairs);
  if (rc == 0) rc = read_queues(s);
  if (rc == 0) rc = read_totals(s);
  names_free(&pairs);
  return rc;
}

/* ---- output helpers ------------------------------------------------------------ */

/* A heartbeat number, or -1 when absent or not a number. */
long long queue_stats_hb_num(const struct worker_stat *w, int f) {
  long long v;
  if (w->hb[f] == NULL || cli_parse_int(w->hb[f], 0, INT64_MAX, &v) != 0) return -1;
  return v;
}

static long long hb_age(const struct stats *s, const struct worker_stat *w) {
  long long upd = queue_stats_hb_num(w, HB_UPDATED);
  if (upd < 0) return -1;
  return s->now > upd ? s->now - upd : 0;
}

static const char *worker_state(const struct worker_stat *w) {
  if (w->live) return "live";
  return w->registered ? "dead" : "unregistered";
}

/* ---- JSON ------------------------------------------------------------------------ */

static void json_num_or_null(long long v) {
  if (v < 0) fputs("null", stdout);
  else printf("%lld", v);
}

static void json_list(const char *list) {
  putchar('[');
  int first = 1;
  for (const char *p = list ? list : ""; *p;) {
    size_t len = strcspn(p, ",");
    if (len > 0) {
      char *one = rq_xstrndup(p, len);
      if (!first) putchar(',');
      cli_json_string(stdout, one);
      free(one);
      first = 0;
    }
    p += len + (p[len] == ',');
  }
  putchar(']');
}

static void print_json_queue(const struct queue_stat *q) {
  fputs("{\"name\":", stdout);
  cli_json_string(stdout, q->name);
  printf(",\"ready\":%lld,\"shared\":%lld,\"sorted\":%lld,\"tenants_with_backlog\":%zu,"
         "\"top_tenants\":[",
         q->shared + q->sorted, q->shared, q->sorted, q->with_backlog);
  size_t shown = 0;
  for (size_t k = 0; k < q->nt && shown < TOP_TENANTS; k++) {
    if (q->t[k].depth <= 0) continue;
    if (shown++) putchar(',');
    fputs("{\"tenant\":", stdout);
    cli_json_string(stdout, q->t[k].tenant);
    printf(",\"depth\":%lld}", q->t[k].depth);
  }
  fputs("],\"paused_tenants\":[", stdout);
  shown = 0;
  for (size_t k = 0; k < q->nt; k++) {
    if (q->t[k].depth <= 0 || !q->t[k].paused) continue;
    if (shown++) putchar(',');
    fputs("{\"tenant\":", stdout);
    cli_json_string(stdout, q->t[k].tenant);
    printf(",\"depth\":%lld,\"why\":\"%s\",\"until\":", q->t[k].depth, q->t[k].held ? "operator" : "quota");
    json_num_or_null(q->t[k].until);
    putchar('}');
  }
  fputs("]}", stdout);
}

static void print_json_worker(const struct stats *s, const struct worker_stat *w) {
  fputs("{\"id\":", stdout);
  cli_json_string(stdout, w->id);
  fputs(",\"host\":", stdout);
  cli_json_string(stdout, w->hb[HB_HOST] ? w->hb[HB_HOST] : "");
  fputs(",\"pid\":", stdout);
  json_num_or_null(queue_stats_hb_num(w, HB_PID));
  fputs(",\"version\":", stdout);
  cli_json_string(stdout, w->hb[HB_VERSION] ? w->hb[HB_VERSION] : "");
  fputs(",\"queues\":", stdout);
  json_list(w->hb[HB_QUEUES]);
  static const int nums[] = {HB_INFLIGHT, HB_SENT, HB_FAILED, HB_STARTED, HB_UPDATED};
  static const char *const names[] = {"inflight", "sent", "failed", "started_at", "updated_at"};
  for (size_t i = 0; i < sizeof nums / sizeof *nums; i++) {
    printf(",\"%s\":", names[i]);
    json_num_or_null(queue_stats_hb_num(w, nums[i]));
  }
  fputs(",\"heartbeat_age_ms\":", stdout);
  json_num_or_null(hb_age(s, w));
  printf(",\"inflight_list\":%lld}", w->inflight_len);
}

static void print_json(const struct stats *s) {
  printf("{\"now\":%lld,\"queues\":[", s->now);
  for (size_t i = 0; i < s->nq; i++) {
    if (i) putchar(',');
    print_json_queue(&s->q[i]);
  }
  printf("],\"delayed\":{\"due\":%lld,\"later\":%lld},\"dead\":%lld,\"inflight\":[", s->due,
         s->later, s->dead);
  long long total = 0;
  for (size_t i = 0; i < s->nw; i++) {
    if (i) putchar(',');
    fputs("{\"worker\":", stdout);
    cli_json_string(stdout, s->w[i].id);
    printf(",\"jobs\":%lld,\"worker_state\":\"%s\"}", s->w[i].inflight_len,
           worker_state(&s->w[i]));
    total += s->w[i].inflight_len;
  }
  printf("],\"inflight_total\":%lld,\"workers\":[", total);
  size_t n = 0;
  for (size_t i = 0; i < s->nw; i++) {
    if (!s->w[i].live) continue;
    if (n++) putchar(',');
    print_json_worker(s, &s->w[i]);
  }
  fputs("],\"dead_workers\":[", stdout);
  n = 0;
  for (size_t i = 0; i < s->nw; i++) {
    const struct worker_stat *w = &s->w[i];
    if (w->live || !w->registered) continue;
    if (n++) putchar(',');
    fputs("{\"id\":", stdout);
    cli_json_string(stdout, w->id);
    fputs(",\"queues\":", stdout);
    json_list(w->registered);
    printf(",\"awaiting_reclaim\":%lld}", w->inflight_len);
  }
  puts("]}");
}

/* ---- text ---------------------------------------------------------------------- */

/* "850ms", "12s", "3m04s", "2h01m", "3d04h". */
static void fmt_age(char *dst, size_t cap, long long ms) {
  if (ms < 0) snprintf(dst, cap, "?");
  else if (ms < 1000) snprintf(dst, cap, "%lldms", ms);
  else if (ms < 60000) snprintf(dst, cap, "%.1fs", (double)ms / 1000.0);
  else if (ms < 3600000) snprintf(dst, cap, "%lldm%02llds", ms / 60000, ms / 1000 % 60);
  else if (ms < 86400000) snprintf(dst, cap, "%lldh%02lldm", ms / 3600000, ms / 60000 % 60);
  else snprintf(dst, cap, "%lldd%02lldh", ms / 86400000, ms / 3600000 % 24);
}

static char *num(long long v) {
  static char ring[16][24]; /* a few numbers live at once in one table_row */
  static unsigned slot;
  char *p = ring[slot++ % 16];
  if (v < 0) snprintf(p, 24, "?");
  else snprintf(p, 24, "%lld", v);
  return p;
}

static void print_queue_details(const struct stats *s, const struct queue_stat *q) {
  struct rq_buf b;
  rq_buf_init(&b);
  size_t shown = 0;
  for (size_t k = 0; k < q->nt && shown < TOP_TENANTS; k++) {
    if (q->t[k].depth <= 0) continue;
    rq_buf_printf(&b, "%s%s %lld", shown++ ? ", " : "", q->t[k].tenant, q->t[k].depth);
  }
  if (shown) {
    if (q->with_backlog > shown) rq_buf_printf(&b, ", +%zu more", q->with_backlog - shown);
    printf("  %s top tenants: %s\n", q->name, b.data);
  }
  rq_buf_reset(&b);
  shown = 0;
  for (size_t k = 0; k < q->nt; k++) {
    const struct tenant_depth *t = &q->t[k];
    if (t->depth <= 0 || !t->paused) continue;
    if (shown++ == TOP_TENANTS) {
      rq_buf_printf(&b, ", +%zu more", q->paused - TOP_TENANTS);
      break;
    }
    char left[32];
    fmt_age(left, sizeof left, t->until < 0 ? -1 : t->until > s->now ? t->until - s->now : 0);
    if (t->held && t->until < 0)
      rq_buf_printf(&b, "%s%s (held by an operator until resumed)", shown > 1 ? ", " : "", t->tenant);
    else
      rq_buf_printf(&b, "%s%s (%s, %s left)", shown > 1 ? ", " : "", t->tenant,
                    t->held ? "held by an operator" : "quota", left);
  }
  if (shown) printf("  %s paused: %s\n", q->name, b.data);
  rq_buf_free(&b);
}

static void print_text(const struct stats *s) {
  struct cli_table t = {.ncol = 6, .align = "lrrrrr"};
  cli_table_row(&t, "QUEUE", "READY", "SHARED", "SORTED", "TENANTS", "PAUSED");
  for (size_t i = 0; i < s->nq; i++) {
    const struct queue_stat *q = &s->q[i];
    cli_table_row(&t, q->name, num(q->shared + q->sorted), num(q->shared), num(q->sorted),
              num((long long)q->with_backlog), num((long long)q->paused));
  }
  if (s->nq == 0) puts("no queues");
  else cli_table_print(&t, stdout, "");
  for (size_t i = 0; i < s->nq; i++) print_queue_details(s, &s->q[i]);

  printf("\ndelayed: %lld due now, %lld later\n", s->due, s->later);
  printf("dead: %lld\n", s->dead);

  long long total = 0;
  for (size_t i = 0; i < s->nw; i++) total += s->w[i].inflight_len;
  printf("in flight: %lld\n", total);
  t = (struct cli_table){.ncol = 3, .align = "lrl"};
  for (size_t i = 0; i < s->nw; i++) {
    const struct worker_stat *w = &s->w[i];
    const char *note = w->live ? "live"
                       : w->registered ? "dead, awaiting reclaim"
                                       : "not registered: no worker will reclaim these";
    if (w->inflight_len > 0 || w->live) cli_table_row(&t, w->id, num(w->inflight_len), note);
  }
  cli_table_print(&t, stdout, "  ");

  size_t live = 0, dead = 0;
  for (size_t i = 0; i < s->nw; i++) {
    live += s->w[i].live;
    dead += !s->w[i].live && s->w[i].registered;
  }
  printf("\nlive workers: %zu\n", live);
  if (live) {
    t = (struct cli_table){.ncol = 9, .align = "llrrrrrll"};
    cli_table_row(&t, "ID", "HOST", "PID", "HEARTBEAT", "INFLIGHT", "SENT", "FAILED", "VERSION",
              "QUEUES");
    for (size_t i = 0; i < s->nw; i++) {
      const struct worker_stat *w = &s->w[i];
      if (!w->live) continue;
      char age[40];
      fmt_age(age, sizeof age - 4, hb_age(s, w));
      if (strcmp(age, "?") != 0) strcat(age, " ago");
      cli_table_row(&t, w->id, w->hb[HB_HOST], num(queue_stats_hb_num(w, HB_PID)), age,
                num(queue_stats_hb_num(w, HB_INFLIGHT)), num(queue_stats_hb_num(w, HB_SENT)), num(queue_stats_hb_num(w, HB_FAILED)),
                w->hb[HB_VERSION], w->hb[HB_QUEUES]);
    }
    cli_table_print(&t, stdout, "  ");
  }
  if (dead) {
    printf("dead workers (heartbeat expired): %zu\n", dead);
    t = (struct cli_table){.ncol = 3, .align = "lll"};
    for (size_t i = 0; i < s->nw; i++) {
      const struct worker_stat *w = &s->w[i];
      if (w->live || !w->registered) continue;
      char note[64], queues[MAX_NAME + 16];
      snprintf(note, sizeof note, "dead, jobs awaiting reclaim: %lld", w->inflight_len);
      snprintf(queues, sizeof queues, "queues: %s", w->registered[0] ? w->registered : "-");
      cli_table_row(&t, w->id, note, queues);
    }
    cli_table_print(&t, stdout, "  ");
  }
}

/* ---- the command ------------------------------------------------------------- */

static void queue_usage(void) {
  puts("usage: relayq queue stats [--json]\n"
       "\n"
       "Prints, per queue, the ready jobs (shared list + tenant-sorted backlog),\n"
       "the tenants with a backlog (the 5 deepest) and those paused by their\n"
       "quota; the delayed jobs due now and later; the jobs in flight per\n"
       "worker; the dead-letter count; the live workers with their heartbeat\n"
       "age and counters, and the dead workers whose jobs await reclaim.\n"
       "--json prints one JSON object (see docs/cli.md).");
}

static int stats_cmd(struct cli_ctx *ctx, int json) {
  struct relayq_client *c = cli_client(ctx);
  if (c == NULL) return CLI_FAIL;
  struct stats s = {.rc = relayq_client_redis(c), .prefix = relayq_client_prefix(c)};
  s.now = relayq_now_ms();
  int rc = queue_stats_collect(&s);
  if (rc == 0) {
    if (json) print_json(&s);
    else print_text(&s);
  }
  queue_stats_free(&s);
  return rc == 0 ? CLI_OK : CLI_FAIL;
}

int cmd_queue(int argc, char **argv, struct cli_ctx *ctx) {
  int opt, json = 0;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, ":h", queue_opts, NULL)) != -1) {
    if (cli_global_opt(opt, optarg, ctx)) continue;
    switch (opt) {
    case 'h': queue_usage(); return CLI_OK;
    case O_JSON: json = 1; break;
    default: return cli_bad_option("queue", opt, argv);
    }
  }
  if (argc - optind != 1 || strcmp(argv[optind], "stats") != 0)
    return cli_fail(CLI_USAGE, "queue takes one subcommand, 'stats' (see 'relayq queue --help').");
  return stats_cmd(ctx, json);
}
