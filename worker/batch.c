/* batch: one BATCH script call per loop turn (see batch.h). */
#include "batch.h"

#include <stdlib.h>
#include <string.h>

#include "engine.h"
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

struct rq_batch {
  struct rq_engine *eng;
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

static void flush(struct rq_engine *eng);
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
  eng->batch = b;
  return b;
}

static void flush(struct rq_engine *eng) {
  struct rq_batch *b = eng->batch;
  if (b->armed) {
    uv_prepare_stop(&b->prepare);
    uv_check_stop(&b->check);
    b->armed = 0;
  }
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
  if (b->n >= RQ_BATCH_MAX && can_send) {
    flush(eng);
  } else if (!b->armed) {
    uv_prepare_start(&b->prepare, on_prepare);
    uv_check_start(&b->check, on_check);
    b->armed = 1;
  }
}

static void on_handle_closed(uv_handle_t *h) {
  struct rq_batch *b = h->data;
  if (--b->open_handles > 0) return;
  void (*cb)(void *) = b->closed_cb;
  void *arg = b->closed_arg;
  free(b->calls);
  free(b->buf);
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
