/* batch: one BATCH script call per loop turn (see batch.h). */
#include "batch.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "hmap.h"
#include "resp.h"
#include "util.h"

/* Room before the arguments for the command's head ("*N", EVALSHA, the
 * sha, "0" keys), written in place at the flush. */
#define HEAD_ROOM 96

struct call {
  redisCallbackFn *cb;
  void *privdata;
};

/* One BATCH in flight: whose replies its elements are. */
struct sent {
  size_t n;
  struct call calls[];
};

/* A job of the turn's transaction: its commands are tx.cmd_end[first ..
 * first + n - 1]; counter: its index in tx.counters, or -1. */
struct tx_job {
  redisCallbackFn *cb;
  void *privdata;
  uint32_t first, n;
  int32_t counter;
};

/* The tenant counters of the transaction's jobs, summed per daily key
 * (which names the tenant and the day) and state. */
struct tx_counter {
  size_t stats, daily, state; /* offsets in tx.keys */
  uint32_t hash;
  int64_t n;
};

/* The plain commands of one loop turn, sent as MULTI ... EXEC. */
struct tx {
  char *buf; /* the jobs' commands as RESP, back to back */
  size_t len, cap;
  size_t *cmd_end; /* where each command ends in buf */
  size_t n_cmds, cap_cmds;
  struct tx_job *jobs;
  size_t n_jobs, cap_jobs;
  struct tx_counter *counters;
  size_t n_counters, cap_counters;
  struct rq_buf keys; /* the counters' key names */
};

/* One transaction in flight: whose replies EXEC's elements are. refs:
 * callbacks registered and not run yet (MULTI, each command, EXEC). */
struct tx_sent {
  struct rq_engine *eng;
  size_t refs;
  int answered;
  char *refused; /* the first error Redis answered while queueing (EXECABORT follows) */
  size_t n_job_cmds, n_counters;
  struct tx_counter *counters; /* with their names, for undo_half_counts */
  char *keys;
  size_t n_jobs;
  struct tx_job jobs[];
};

struct rq_batch {
  struct rq_engine *eng;
  struct tx tx;
  uv_prepare_t prepare; /* before the loop waits for I/O */
  uv_check_t check;     /* after it handled I/O */
  int armed;
  void (*closed_cb)(void *);
  void *closed_arg;
  int open_handles;
  char *buf; /* HEAD_ROOM, then the RESP of the queued calls' arguments */
  size_t len, cap;
  size_t n_args;
  struct call *calls;
  size_t n, cap_calls;
};

static void put(struct rq_batch *b, const char *s, size_t len) {
  char *p = b->buf + b->len;
  *p++ = '$';
  p += rq_fmt_u64(p, len);
  *p++ = '\r', *p++ = '\n';
  memcpy(p, s, len);
  p += len;
  *p++ = '\r', *p++ = '\n';
  b->len = (size_t)(p - b->buf);
  b->n_args++;
}

static void reply_all(struct sent *s, redisAsyncContext *ac, redisReply *reply) {
  for (size_t i = 0; i < s->n; i++) s->calls[i].cb(ac, reply, s->calls[i].privdata);
}

static void on_batch(redisAsyncContext *ac, void *r, void *priv) {
  struct sent *s = priv;
  redisReply *reply = r;
  if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == s->n) {
    for (size_t i = 0; i < s->n; i++) s->calls[i].cb(ac, reply->element[i], s->calls[i].privdata);
  } else if (reply && reply->type != REDIS_REPLY_ERROR) {
    static char what[] = "ERR relayq: BATCH answered something else than one reply per call";
    redisReply bad = {.type = REDIS_REPLY_ERROR, .str = what, .len = sizeof what - 1};
    reply_all(s, ac, &bad);
  } else {
    reply_all(s, ac, reply); /* NULL (connection lost) or an error for the whole call */
  }
  free(s);
}


/* ---- the transaction of plain commands --------------------------------------- */

static void flush(struct rq_engine *eng);
static void arm(struct rq_batch *b);
static struct rq_batch *batch_of(struct rq_engine *eng);

/* The daily counters' TTL (40 days), set each turn a day's key is counted
 * in (a command cannot set it only when the count starts, as a script
 * can: the key then lives 40 days from its day's last count). */
#define DAILY_TTL_MS "3456000000"

static void tx_grow(struct tx *t, size_t need) {
  if (t->len + need <= t->cap) return;
  size_t cap = t->cap ? t->cap * 2 : 4096;
  if (cap < t->len + need) cap = t->len + need;
  t->buf = rq_xrealloc(t->buf, cap);
  t->cap = cap;
}

/* Appends one command as RESP (librelayq's one writer); its end is
 * recorded. */
static void tx_put_cmd(struct tx *t, size_t argc, const char **argv, const size_t *argvlen) {
  tx_grow(t, relayq__resp_bound((int)argc, argv, argvlen));
  t->len += relayq__resp_command(t->buf + t->len, (int)argc, argv, argvlen);
  if (t->n_cmds == t->cap_cmds) {
    t->cap_cmds = t->cap_cmds ? 2 * t->cap_cmds : 256;
    t->cmd_end = rq_xrealloc(t->cmd_end, t->cap_cmds * sizeof *t->cmd_end);
  }
  t->cmd_end[t->n_cmds++] = t->len;
}

/* The counter of (daily key, state) this turn, made on first use. */
static int32_t tx_counter(struct tx *t, const char *stats_key, const char *daily_key, const char *state) {
  uint32_t h = rq_hash_str(RQ_HASH_SEED, daily_key);
  for (size_t i = 0; i < t->n_counters; i++) {
    struct tx_counter *c = &t->counters[i];
    if (c->hash == h && !strcmp(t->keys.data + c->state, state) && !strcmp(t->keys.data + c->daily, daily_key))
      return (int32_t)i;
  }
  if (t->n_counters == t->cap_counters) {
    t->cap_counters = t->cap_counters ? 2 * t->cap_counters : 16;
    t->counters = rq_xrealloc(t->counters, t->cap_counters * sizeof *t->counters);
  }
  struct tx_counter *c = &t->counters[t->n_counters];
  c->stats = t->keys.len;
  rq_buf_append(&t->keys, stats_key, strlen(stats_key) + 1);
  c->daily = t->keys.len;
  rq_buf_append(&t->keys, daily_key, strlen(daily_key) + 1);
  c->state = t->keys.len;
  rq_buf_append(&t->keys, state, strlen(state) + 1);
  c->hash = h;
  c->n = 0;
  return (int32_t)t->n_counters++;
}

static void tx_answer_all(struct tx_sent *s, redisAsyncContext *ac, redisReply *reply) {
  s->answered = 1;
  for (size_t i = 0; i < s->n_jobs; i++) s->jobs[i].cb(ac, reply, s->jobs[i].privdata);
}

/* A job's reply: the first error among its commands and its counter's,
 * else its last command's (LREM's count). */
static redisReply *tx_job_reply(const struct tx_sent *s, const struct tx_job *j, redisReply *exec) {
  for (uint32_t k = j->first; k < j->first + j->n; k++)
    if (exec->element[k]->type == REDIS_REPLY_ERROR) return exec->element[k];
  if (j->counter >= 0) {
    size_t at = s->n_job_cmds + 3 * (size_t)j->counter;
    for (size_t k = at; k < at + 3; k++)
      if (exec->element[k]->type == REDIS_REPLY_ERROR) return exec->element[k];
  }
  return exec->element[j->first + j->n - 1];
}

static void tx_unref(struct tx_sent *s) {
  if (--s->refs > 0) return;
  /* EXEC was never sent (the connection failed mid-way and is dropped):
   * nothing ran. */
  if (!s->answered) tx_answer_all(s, NULL, NULL);
  free(s->refused);
  free(s->counters);
  free(s->keys);
  free(s);
}

/* A counter pair of which one HINCRBY failed inside EXEC (a key that is
 * not a hash, a field that is not a number: nothing refuses one and not
 * the other otherwise) has counted its jobs in the other key only. Its
 * jobs answer the error and are finished again, counting both: the half
 * that went through is taken back first, so the totals end exact (as a
 * script's pair, whose second HINCRBY never ran when the first failed). */
static void undo_half_counts(struct rq_engine *eng, const struct tx_sent *s, const redisReply *exec) {
  for (size_t i = 0; i < s->n_counters; i++) {
    const struct tx_counter *c = &s->counters[i];
    size_t at = s->n_job_cmds + 3 * i;
    int stats_failed = exec->element[at]->type == REDIS_REPLY_ERROR;
    int daily_failed = exec->element[at + 1]->type == REDIS_REPLY_ERROR;
    if (stats_failed == daily_failed) continue;
    char n[24];
    n[0] = '-';
    n[1 + rq_fmt_u64(n + 1, (uint64_t)c->n)] = '\0';
    const char *argv[] = {"HINCRBY", s->keys + (stats_failed ? c->daily : c->stats), s->keys + c->state, n};
    rq_rconn_cmd(eng->cmd, NULL, NULL, 4, argv, NULL);
  }
}

static void on_tx_queued(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  struct tx_sent *s = priv;
  redisReply *reply = r;
  if (reply && reply->type == REDIS_REPLY_ERROR && !s->refused) s->refused = rq_xstrdup(reply->str);
  tx_unref(s);
}

static void on_tx_exec(redisAsyncContext *ac, void *r, void *priv) {
  struct tx_sent *s = priv;
  redisReply *reply = r;
  size_t n = s->n_job_cmds + 3 * s->n_counters;
  if (!reply) {
    tx_answer_all(s, ac, NULL);
  } else if (reply->type == REDIS_REPLY_ARRAY && reply->elements == n) {
    s->answered = 1;
    undo_half_counts(s->eng, s, reply);
    for (size_t i = 0; i < s->n_jobs; i++) s->jobs[i].cb(ac, tx_job_reply(s, &s->jobs[i], reply), s->jobs[i].privdata);
  } else if (reply->type == REDIS_REPLY_ERROR) {
    /* EXECABORT: nothing ran. Every job gets the refusal itself (OOM,
     * READONLY, MISCONF, ...: redis_health tells a refused write by it),
     * which Redis answered to the refused command, or names in EXEC's
     * error when it came at EXEC. */
    const char *why = s->refused;
    const char *at = why ? NULL : strstr(reply->str, "because of: ");
    if (at) why = at + strlen("because of: ");
    if (why) {
      redisReply e = {.type = REDIS_REPLY_ERROR, .str = (char *)why, .len = strlen(why)};
      tx_answer_all(s, ac, &e);
    } else {
      tx_answer_all(s, ac, reply);
    }
  } else {
    static char what[] = "ERR relayq: EXEC answered something else than one reply per command";
    redisReply bad = {.type = REDIS_REPLY_ERROR, .str = what, .len = sizeof what - 1};
    tx_answer_all(s, ac, &bad);
  }
  tx_unref(s);
}

static int tx_send(struct rq_engine *eng, struct tx_sent *s, redisCallbackFn *cb, const char *resp, size_t len) {
  if (rq_rconn_send(eng->cmd, cb, s, resp, len)) return -1;
  s->refs++;
  return 0;
}

/* Sends the turn's transaction: MULTI, the jobs' commands, the summed
 * counters, EXEC. */
static void flush_tx(struct rq_engine *eng) {
  struct rq_batch *b = eng->batch;
  struct tx *t = &b->tx;
  if (t->n_jobs == 0) return;
  struct tx_sent *s = rq_xcalloc(1, sizeof *s + t->n_jobs * sizeof s->jobs[0]);
  s->n_jobs = t->n_jobs;
  s->n_job_cmds = t->n_cmds;
  s->n_counters = t->n_counters;
  memcpy(s->jobs, t->jobs, t->n_jobs * sizeof s->jobs[0]);
  s->eng = eng;
  if (t->n_counters) {
    s->counters = rq_xmalloc(t->n_counters * sizeof *s->counters);
    memcpy(s->counters, t->counters, t->n_counters * sizeof *s->counters);
    s->keys = rq_xmalloc(t->keys.len);
    memcpy(s->keys, t->keys.data, t->keys.len);
  }
  for (size_t i = 0; i < t->n_counters; i++) {
    const struct tx_counter *c = &t->counters[i];
    char n[24];
    size_t nl = rq_fmt_u64(n, (uint64_t)c->n);
    const char *stats = t->keys.data + c->stats, *daily = t->keys.data + c->daily, *state = t->keys.data + c->state;
    const char *a1[] = {"HINCRBY", stats, state, n}, *a2[] = {"HINCRBY", daily, state, n},
               *a3[] = {"PEXPIRE", daily, DAILY_TTL_MS};
    const size_t l1[] = {7, strlen(stats), strlen(state), nl}, l2[] = {7, strlen(daily), strlen(state), nl},
                 l3[] = {7, strlen(daily), sizeof DAILY_TTL_MS - 1};
    tx_put_cmd(t, 4, a1, l1);
    tx_put_cmd(t, 4, a2, l2);
    tx_put_cmd(t, 3, a3, l3);
  }
  s->refs = 1; /* this function's own, so no callback frees s meanwhile */
  int failed = tx_send(eng, s, on_tx_queued, "*1\r\n$5\r\nMULTI\r\n", 15);
  for (size_t i = 0, at = 0; i < t->n_cmds && !failed; at = t->cmd_end[i++])
    failed = tx_send(eng, s, on_tx_queued, t->buf + at, t->cmd_end[i] - at);
  if (!failed) failed = tx_send(eng, s, on_tx_exec, "*1\r\n$4\r\nEXEC\r\n", 14);
  t->len = t->n_cmds = t->n_jobs = t->n_counters = 0;
  rq_buf_reset(&t->keys);
  if (t->cap > 2 * RQ_BATCH_BYTES) { /* one huge turn: do not keep its memory */
    free(t->buf);
    t->buf = NULL;
    t->cap = 0;
  }
  /* Not connected: every job learns it now (callbacks may queue new
   * calls, which go into the next turn). A transaction cut short (MULTI
   * sent, EXEC not) is dropped with its connection: nothing of it ran. */
  if (failed && s->refs > 1) rq_rconn_drop(eng->cmd);
  tx_unref(s);
}

void rq_batch_plain(struct rq_engine *eng, redisCallbackFn *cb, void *privdata, const struct rq_batch_plain *p) {
  struct rq_batch *b = batch_of(eng);
  struct tx *t = &b->tx;
  int can_send = rq_rconn_ready(eng->cmd);
  size_t bytes = 0;
  for (size_t i = 0; i < p->argc; i++) bytes += p->argvlen[i];
  if (t->n_jobs > 0 && t->len + bytes > RQ_BATCH_BYTES && can_send) flush(eng);
  if (t->n_jobs == t->cap_jobs) {
    t->cap_jobs = t->cap_jobs ? 2 * t->cap_jobs : 64;
    t->jobs = rq_xrealloc(t->jobs, t->cap_jobs * sizeof *t->jobs);
  }
  struct tx_job *j = &t->jobs[t->n_jobs++];
  *j = (struct tx_job){cb, privdata, (uint32_t)t->n_cmds, (uint32_t)p->n_cmds, -1};
  for (size_t c = 0, at = 0; c < p->n_cmds; at += p->cmd_argc[c++])
    tx_put_cmd(t, p->cmd_argc[c], p->argv + at, p->argvlen + at);
  if (p->stats_key && p->stats_key[0]) {
    j->counter = tx_counter(t, p->stats_key, p->daily_key, p->state);
    t->counters[j->counter].n++;
  }
  if (t->n_jobs >= RQ_BATCH_MAX && can_send) flush(eng);
  else arm(b);
}

static void on_turn(struct rq_batch *b) { flush(b->eng); }
static void on_prepare(uv_prepare_t *h) { on_turn(h->data); }
static void on_check(uv_check_t *h) { on_turn(h->data); }

static struct rq_batch *batch_of(struct rq_engine *eng) {
  if (eng->batch) return eng->batch;
  struct rq_batch *b = rq_xcalloc(1, sizeof *b);
  b->eng = eng;
  uv_prepare_init(eng->loop, &b->prepare);
  uv_check_init(eng->loop, &b->check);
  b->prepare.data = b->check.data = b;
  b->cap = HEAD_ROOM + 4096;
  b->buf = rq_xmalloc(b->cap);
  b->len = HEAD_ROOM;
  rq_buf_init(&b->tx.keys);
  eng->batch = b;
  return b;
}

static void arm(struct rq_batch *b) {
  if (b->armed) return;
  uv_prepare_start(&b->prepare, on_prepare);
  uv_check_start(&b->check, on_check);
  b->armed = 1;
}

/* The transaction first: a CLAIM in the BATCH after it sees every plain
 * FINISH of the turn written, those queued before it among them (batch.h). */
static void flush(struct rq_engine *eng) {
  struct rq_batch *b = eng->batch;
  if (b->armed) {
    uv_prepare_stop(&b->prepare);
    uv_check_stop(&b->check);
    b->armed = 0;
  }
  flush_tx(eng);
  if (b->n == 0) return;
  /* The head, right-aligned against the arguments. */
  char head[HEAD_ROOM];
  char *p = head;
  const char *sha = eng->sha[RQ_SCRIPT_BATCH];
  *p++ = '*';
  p += rq_fmt_u64(p, 3 + b->n_args);
  memcpy(p, "\r\n$7\r\nEVALSHA\r\n$40\r\n", 20);
  p += 20;
  memcpy(p, sha, 40);
  p += 40;
  memcpy(p, "\r\n$1\r\n0\r\n", 9);
  p += 9;
  size_t hlen = (size_t)(p - head);
  char *start = b->buf + HEAD_ROOM - hlen;
  memcpy(start, head, hlen);

  struct sent *s = rq_xmalloc(sizeof *s + b->n * sizeof s->calls[0]);
  s->n = b->n;
  memcpy(s->calls, b->calls, b->n * sizeof s->calls[0]);
  int failed = rq_rconn_send(eng->cmd, on_batch, s, start, b->len - (HEAD_ROOM - hlen));
  b->n = 0;
  b->n_args = 0;
  b->len = HEAD_ROOM;
  if (b->cap > 2 * RQ_BATCH_BYTES) { /* one huge call: do not keep its memory */
    free(b->buf);
    b->cap = HEAD_ROOM + 4096;
    b->buf = rq_xmalloc(b->cap);
  }
  /* Not connected (only at a turn's end, see rq_batch_call): every call
   * learns it now, as a single call would have; callbacks may queue new
   * calls, which go into the next batch. */
  if (failed) on_batch(NULL, NULL, s);
}

void rq_batch_call(struct rq_engine *eng, enum rq_script script, redisCallbackFn *cb, void *privdata, int argc,
                   const char **argv, const size_t *argvlen) {
  struct rq_batch *b = batch_of(eng);
  /* argv: EVALSHA sha NKEYS keys... args... */
  size_t nkeys = (size_t)strtoul(argv[2], NULL, 10);
  size_t nargs = (size_t)argc - 3 - nkeys;
  enum { HEAD = 1 + 20 + 2 };
  size_t need = 3 * (HEAD + 22);
  /* Each length once: the bound and the writer both need them. */
  size_t small[128], *lens = small;
  if (argvlen == NULL) {
    if (argc > 128) lens = rq_xmalloc((size_t)argc * sizeof *lens);
    for (int i = 3; i < argc; i++) lens[i] = strlen(argv[i]);
    argvlen = lens;
  }
  for (int i = 3; i < argc; i++) need += HEAD + argvlen[i] + 2;
  /* Full: sent now, when that cannot answer anything from here (with the
   * connection down it waits for the turn's end like the rest). */
  int can_send = rq_rconn_ready(eng->cmd);
  if (b->n > 0 && b->len + need > HEAD_ROOM + RQ_BATCH_BYTES && can_send) flush(eng);
  if (b->len + need > b->cap) {
    size_t cap = b->cap * 2 > b->len + need ? b->cap * 2 : b->len + need;
    char *nb = rq_xmalloc(cap);
    memcpy(nb, b->buf, b->len);
    free(b->buf);
    b->buf = nb;
    b->cap = cap;
  }
  char head[48]; /* "c4:15": the call's script, keys and arguments (scripts.c BATCH) */
  size_t hl = 0;
  head[hl++] = script == RQ_SCRIPT_CLAIM ? 'c' : 'f';
  hl += rq_fmt_u64(head + hl, nkeys);
  head[hl++] = ':';
  hl += rq_fmt_u64(head + hl, nargs);
  put(b, head, hl);
  for (int i = 3; i < argc; i++) put(b, argv[i], argvlen[i]);
  if (lens != small) free(lens);
  if (b->n == b->cap_calls) {
    b->cap_calls = b->cap_calls ? 2 * b->cap_calls : 64;
    b->calls = rq_xrealloc(b->calls, b->cap_calls * sizeof *b->calls);
  }
  b->calls[b->n++] = (struct call){cb, privdata};
  if (b->n >= RQ_BATCH_MAX && can_send) flush(eng);
  else arm(b);
}

static void on_handle_closed(uv_handle_t *h) {
  struct rq_batch *b = h->data;
  if (--b->open_handles > 0) return;
  void (*cb)(void *) = b->closed_cb;
  void *arg = b->closed_arg;
  free(b->calls);
  free(b->buf);
  free(b->tx.buf);
  free(b->tx.cmd_end);
  free(b->tx.jobs);
  free(b->tx.counters);
  rq_buf_free(&b->tx.keys);
  free(b);
  if (cb) cb(arg);
}

void rq_batch_close(struct rq_engine *eng, void (*closed_cb)(void *), void *arg) {
  struct rq_batch *b = eng->batch;
  eng->batch = NULL;
  if (!b) {
    if (closed_cb) closed_cb(arg);
    return;
  }
  b->closed_cb = closed_cb;
  b->closed_arg = arg;
  b->open_handles = 2;
  uv_close((uv_handle_t *)&b->prepare, on_handle_closed);
  uv_close((uv_handle_t *)&b->check, on_handle_closed);
}
