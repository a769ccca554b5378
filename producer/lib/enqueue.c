/*
 * enqueue: relayq_enqueue and relayq_enqueue_many.
 *
 * Enqueueing is one Lua script rather than MULTI/EXEC because it must be
 * conditional: a job id is the idempotency key (CONTRACT.md), so when a
 * status for that id already exists the script writes nothing. A blind
 * HSET state=queued over a `sent` status would make the worker send the
 * job a second time; over a `sending` one it would corrupt the record.
 * Redis runs a script atomically, so a job's status and its push appear
 * together or not at all, as the contract requires.
 *
 * One script call takes a batch of jobs (one for relayq_enqueue, up to
 * BATCH_JOBS for relayq_enqueue_many): Redis' cost per call (argument
 * conversion, dispatch) is larger than the four commands a job needs, so
 * batching is what gets a producer past 50,000 jobs a second. Two calls
 * are in flight, so the next batch is encoded while Redis runs the last.
 *
 * Ownership: the batch slots, the encode buffer and the script SHA belong
 * to the client (struct relayq__enqueue, freed by relayq_close). A slot's
 * bytes are kept until its reply has been read, so a call refused with
 * NOSCRIPT can be sent again. Nothing here keeps a pointer into the
 * caller's jobs after the call returns.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <msgpack.h>

#include "client.h"
#include "event.h"
#include "resp.h"
#include "scripts.h"

#define BATCH_JOBS 256        /* jobs per script call */
#define BATCH_BYTES (1 << 20) /* ARGV bytes per call: large jobs go a few at a time */
#define IN_FLIGHT 2           /* calls sent before the first reply is read */
#define SLOTS (2 * IN_FLIGHT) /* room for each in-flight call's resend */
#define RESP_MIN_CAP 4096
#define KEEP_MAX (4u << 20)   /* buffers larger than this are freed after the call */


/* ---- RESP by hand ------------------------------------------------------------------
 *
 * The call is written to the socket by hand rather than with hiredis'
 * redisAppendCommandArgv: hiredis 0.14 formats each command into a fresh
 * sds (printf per argument), copies it into its output buffer and frees
 * both, and at 300 KB per batch those copies, the printf calls and the
 * page faults of the big short-lived allocations were most of the
 * producer's CPU (perf; docs/performance.md). Here each job is appended
 * once into buffers the client keeps, and written with one writev while
 * hiredis' own output buffer is empty; replies are still read with
 * redisGetReply, so the connection stays hiredis' to read. */

/* A growing byte buffer; oom sticks until the caller checks it. */
struct resp_buf {
  char *p;
  size_t len, cap;
  int oom;
};

static void resp_reserve(struct resp_buf *b, size_t more) {
  if (b->oom || b->len + more <= b->cap) return;
  size_t cap = b->cap ? b->cap : RESP_MIN_CAP;
  while (cap < b->len + more) cap *= 2;
  char *p = realloc(b->p, cap);
  if (p == NULL) {
    b->oom = 1;
    return;
  }
  b->p = p, b->cap = cap;
}

/* An array header (resp.h). */
static void resp_head(struct resp_buf *b, char mark, size_t n) {
  resp_reserve(b, RELAYQ__RESP_HEAD_MAX);
  if (b->oom) return;
  b->len += relayq__resp_head(b->p + b->len, mark, n);
}

static void resp_arg(struct resp_buf *b, const void *s, size_t n) {
  resp_reserve(b, RELAYQ__RESP_HEAD_MAX + n + 2);
  if (b->oom) return;
  b->len += relayq__resp_bulk(b->p + b->len, s, n);
}

static void resp_str(struct resp_buf *b, const char *s) { resp_arg(b, s, strlen(s)); }

static void resp_u64(struct resp_buf *b, uint64_t v) {
  char t[20];
  resp_arg(b, t, relayq__u64_dec(t, v));
}

static void resp_free(struct resp_buf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

/* ---- batches ----------------------------------------------------------------------- */

/* One script call: jobs [first, first + n) of the caller's array, in RESP.
 * keys holds the per-job key arguments, args the ARGV part. */
struct batch {
  struct resp_buf keys, args;
  char (*ids)[RELAYQ_ID_MAX + 1]; /* BATCH_JOBS; the id each job got */
  size_t first, n, argc;          /* argc: arguments in keys + args */
  int64_t now;                    /* the batch's created_at, in ms */
  int retried;                    /* sent again with the body after NOSCRIPT */
};

/* The client's enqueue state (client.h). queue and the three keys are set
 * at the start of each call. */
struct relayq__enqueue {
  char sha[41]; /* SCRIPT LOAD's answer; the SHA1 of rq_lua_source(RQ_LUA_ENQUEUE) */
  int eval_body; /* SCRIPT LOAD was refused (an ACL): send EVAL with the body */
  struct batch slot[SLOTS];
  struct resp_buf head; /* the command's first arguments */
  msgpack_sbuffer sb;   /* one job's payload */
  const char *queue;
  char queue_key[RELAYQ__KEY_MAX], delayed_key[RELAYQ__KEY_MAX],
      events_key[RELAYQ__KEY_MAX], dead_key[RELAYQ__KEY_MAX];
};

void relayq__enqueue_free(struct relayq__enqueue *q) {
  if (q == NULL) return;
  for (size_t i = 0; i < SLOTS; i++) {
    resp_free(&q->slot[i].keys);
    resp_free(&q->slot[i].args);
    free(q->slot[i].ids);
  }
  resp_free(&q->head);
  msgpack_sbuffer_destroy(&q->sb);
  free(q);
}

static char *cat(char *p, const char *s) {
  size_t n = strlen(s);
  memcpy(p, s, n);
  return p + n;
}

/* Encodes job and appends its keys and arguments to b. */
static int batch_add(struct relayq_client *c, struct relayq__enqueue *q,
                     const struct relayq_job *job, struct batch *b, struct relayq_error *err) {
  char *id = b->ids[b->n];
  if (job->id == NULL) relayq_id_new(id);
  else snprintf(id, RELAYQ_ID_MAX + 1, "%s", job->id);
  struct relayq_job j = *job; /* shallow: only id and queue_ change */
  j.id = id;
  int delayed = j.not_before > b->now;
  /* A delayed job carries its queue so the worker knows where to promote
   * it; a pushed one is in its queue already. */
  if (delayed) j.queue_ = (char *)q->queue;
  int rc = relayq__job_encode_sb(&j, &q->sb, err);
  if (rc != 0) return rc;

  /* prefix and id are at most 128 bytes each: the key always fits. */
  char key[RELAYQ__KEY_MAX];
  resp_arg(&b->keys, key, relayq_key(key, sizeof key, c->prefix, RELAYQ_KEY_STATUS, id));
  resp_str(&b->keys, delayed ? q->delayed_key : q->queue_key);

  const char *state = delayed ? "deferred" : "queued";
  /* relayq__event_max for an id and a tenant of RELAYQ_ID_MAX characters
   * (validated before) and this state is under 1,800 bytes. */
  char event[2048];
  const struct relayq__event ev = {.id = id, .tenant = j.tenant, .state = state, .ts = b->now};
  struct resp_buf *a = &b->args;
  resp_arg(a, q->sb.data, q->sb.size);
  if (delayed) resp_u64(a, (uint64_t)j.not_before);
  else resp_arg(a, "", 0); /* empty: push to the queue, not the delayed zset */
  resp_arg(a, event, relayq__event_json(event, &ev));
  resp_str(a, j.tenant);
  resp_u64(a, j.to.n + j.cc.n + j.bcc.n);
  resp_u64(a, j.n_meta);
  for (size_t m = 0; m < j.n_meta; m++) {
    char name[5 + RELAYQ__MAX_META_KEY + 1]; /* validated: the key fits */
    resp_arg(a, name, (size_t)(cat(cat(name, "meta."), j.meta[m].key) - name));
    resp_str(a, j.meta[m].value);
  }
  b->argc += 2 + 6 + 2 * j.n_meta;
  b->n++;
  return 0;
}

/* Fills b with jobs[from..] until it holds BATCH_JOBS jobs or BATCH_BYTES
 * of arguments (at least one job). */
static int batch_fill(struct relayq_client *c, struct relayq__enqueue *q,
                      const struct relayq_job *jobs, size_t n, size_t from, struct batch *b,
                      struct relayq_error *err) {
  b->keys.len = b->args.len = 0;
  b->first = from;
  b->n = b->argc = 0;
  b->retried = 0;
  b->now = relayq_now_ms();
  resp_u64(&b->args, (uint64_t)b->now); /* ARGV[1] */
  b->argc = 1;
  if (b->ids == NULL && (b->ids = malloc(BATCH_JOBS * sizeof *b->ids)) == NULL)
    return relayq__fail(err, RELAYQ_ENOMEM, "Out of memory enqueueing.");
  while (from + b->n < n && b->n < BATCH_JOBS && (b->n == 0 || b->args.len < BATCH_BYTES)) {
    int rc = batch_add(c, q, &jobs[from + b->n], b, err);
    if (rc != 0) return rc;
  }
  if (b->keys.oom || b->args.oom) {
    b->keys.oom = b->args.oom = 0;
    return relayq__fail(err, RELAYQ_ENOMEM, "Out of memory building an enqueue command.");
  }
  return 0;
}

/* Writes every iov in full; a failure leaves the connection out of step,
 * so it is marked failed the way hiredis marks its own I/O errors. */
static int write_all(struct relayq_client *c, struct iovec *iov, int cnt,
                     struct relayq_error *err) {
  redisContext *rc = c->rc;
  while (cnt > 0) {
    ssize_t w = writev(rc->fd, iov, cnt);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      rc->err = REDIS_ERR_IO;
      snprintf(rc->errstr, sizeof rc->errstr, "%s", w < 0 ? strerror(errno) : "short write");
      return relayq__io_fail(c, err, "enqueue");
    }
    size_t done = (size_t)w;
    for (; cnt > 0 && done >= iov->iov_len; iov++, cnt--) done -= iov->iov_len;
    if (cnt > 0) {
      iov->iov_base = (char *)iov->iov_base + done;
      iov->iov_len -= done;
    }
  }
  return 0;
}

/* Sends b's call: EVALSHA, or EVAL with the body (with_body) when the
 * server's script cache was flushed. */
static int batch_send(struct relayq_client *c, struct relayq__enqueue *q, const struct batch *b,
                      int with_body, struct relayq_error *err) {
  /* Anything hiredis still buffers must go first (none in practice: every
   * hiredis call here reads its reply before returning). */
  for (int done = 0; !done;)
    if (redisBufferWrite(c->rc, &done) != REDIS_OK) return relayq__io_fail(c, err, "enqueue");
  struct resp_buf *h = &q->head;
  h->len = 0;
  resp_head(h, '*', 5 + b->argc); /* command, script, numkeys, events, dead */
  if (with_body) resp_str(h, "EVAL"), resp_arg(h, rq_lua_source(RQ_LUA_ENQUEUE), strlen(rq_lua_source(RQ_LUA_ENQUEUE)));
  else resp_str(h, "EVALSHA"), resp_arg(h, q->sha, 40);
  resp_u64(h, 2 + 2 * b->n);
  resp_str(h, q->events_key);
  resp_str(h, q->dead_key);
  if (h->oom) {
    h->oom = 0;
    return relayq__fail(err, RELAYQ_ENOMEM, "Out of memory building an enqueue command.");
  }
  struct iovec iov[3] = {{h->p, h->len}, {b->keys.p, b->keys.len}, {b->args.p, b->args.len}};
  return write_all(c, iov, 3, err);
}

enum { NOSCRIPT = -1 }; /* batch_read: send the batch again with the body */

/* Reads b's reply. Returns 0, NOSCRIPT, or the first failed job's error
 * (err names the job). dup gets the first existing state seen, if asked. */
static int batch_read(struct relayq_client *c, const struct batch *b, char *dup,
                      size_t dup_cap, struct relayq_error *err) {
  redisReply *r = NULL;
  if (redisGetReply(c->rc, (void **)&r) != REDIS_OK || r == NULL)
    return relayq__io_fail(c, err, "enqueue");
  int rc = 0;
  if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0 && !b->retried) {
    rc = NOSCRIPT;
  } else if (r->type == REDIS_REPLY_ERROR && (rc = relayq__refused(err, r->str)) != 0) {
    /* Redis refuses every write: say why, not "job X refused" */
  } else if (r->type != REDIS_REPLY_ARRAY || r->elements != b->n) {
    rc = relayq__fail(err, RELAYQ_EREDIS, "Redis refused to enqueue job %s: %.150s", b->ids[0],
                      r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
  } else {
    for (size_t i = 0; i < b->n && rc == 0; i++) {
      const redisReply *el = r->element[i];
      if (el->type == REDIS_REPLY_ERROR && (rc = relayq__refused(err, el->str)) != 0) break;
      if (el->type == REDIS_REPLY_ERROR)
        rc = relayq__fail(err, RELAYQ_EREDIS, "Redis refused to enqueue job %s: %.150s",
                          b->ids[i], el->str);
      else if (el->type == REDIS_REPLY_INTEGER && el->integer == 2)
        rc = relayq__fail(err, RELAYQ_EINVALID_JOB,
                          "Job %s was not enqueued: its id is already used by another job "
                          "(ids are the idempotency key). It was dead-lettered as failed, "
                          "invalid_job; send it again with a new id.", b->ids[i]);
      else if (el->type == REDIS_REPLY_STRING && dup != NULL && dup[0] == '\0')
        snprintf(dup, dup_cap, "%.*s", (int)el->len, el->str);
    }
  }
  freeReplyObject(r);
  return rc;
}

/* Creates the client's enqueue state and loads the script into Redis'
 * cache (once per client; EVALSHA then sends 40 bytes, not the body). */
static int enqueue_state(struct relayq_client *c, struct relayq_error *err) {
  if (c->enq != NULL) return 0;
  struct relayq__enqueue *q = calloc(1, sizeof *q);
  if (q == NULL) return relayq__fail(err, RELAYQ_ENOMEM, "Out of memory enqueueing.");
  msgpack_sbuffer_init(&q->sb);
  redisReply *r = redisCommand(c->rc, "SCRIPT LOAD %b", rq_lua_source(RQ_LUA_ENQUEUE), strlen(rq_lua_source(RQ_LUA_ENQUEUE)));
  int rc = 0;
  if (r == NULL)
    rc = relayq__io_fail(c, err, "SCRIPT LOAD");
  else if (r->type == REDIS_REPLY_STRING && r->len == 40)
    memcpy(q->sha, r->str, 41);
  else if (r->type == REDIS_REPLY_ERROR)
    q->eval_body = 1; /* e.g. an ACL that allows EVAL but not SCRIPT; if EVAL
                       * is refused too, the first call says so */
  else
    rc = relayq__fail(err, RELAYQ_EREDIS, "Redis answered SCRIPT LOAD unexpectedly.");
  freeReplyObject(r);
  if (rc != 0) relayq__enqueue_free(q);
  else c->enq = q;
  return rc;
}

/* Frees buffers a big job grew (one 25 MB attachment must not stay
 * allocated for the life of the client); the usual sizes are kept. */
static void trim(struct relayq__enqueue *q) {
  for (size_t i = 0; i < SLOTS; i++)
    if (q->slot[i].args.cap > KEEP_MAX) resp_free(&q->slot[i].args);
  if (q->sb.alloc > KEEP_MAX) {
    msgpack_sbuffer_destroy(&q->sb);
    msgpack_sbuffer_init(&q->sb);
  }
}

/*
 * Sends jobs[0..n) in batches with up to IN_FLIGHT calls outstanding.
 * Replies come back in send order. A call refused with NOSCRIPT (Redis
 * restarted, or SCRIPT FLUSH) wrote nothing; it goes to the back of the
 * line with the body, which keeps the jobs in order since every call sent
 * after it was refused the same way. After an error no new call is sent,
 * but every reply asked for is read so the connection stays in step.
 * ids_out (n slots, may be NULL) gets each job's id; dup as in batch_read.
 */
static int enqueue_batches(struct relayq_client *c, const struct relayq_job *jobs, size_t n,
                           const char *queue, char (*ids_out)[RELAYQ_ID_MAX + 1], char *dup,
                           size_t dup_cap, struct relayq_error *err) {
  if (queue == NULL) queue = RELAYQ_DEFAULT_QUEUE;
  if (!relayq_valid_id(queue))
    return relayq__fail(err, RELAYQ_EINVAL,
                        "The queue name must be 1-128 characters of A-Z a-z 0-9 . _ : @ -.");
  int rc = enqueue_state(c, err);
  if (rc != 0) return rc;
  struct relayq__enqueue *q = c->enq;
  q->queue = queue;
  if ((rc = relayq__key_into(q->queue_key, c, RELAYQ_KEY_QUEUE, queue, err)) != 0 ||
      (rc = relayq__key_into(q->delayed_key, c, RELAYQ_KEY_DELAYED, NULL, err)) != 0 ||
      (rc = relayq__key_into(q->events_key, c, RELAYQ_KEY_EVENTS, NULL, err)) != 0 ||
      (rc = relayq__key_into(q->dead_key, c, RELAYQ_KEY_DEAD, NULL, err)) != 0)
    return rc;
  size_t head = 0, count = 0, next = 0;
  struct relayq_error first;
  relayq__error_clear(&first);
  while (count > 0 || (next < n && rc == 0)) {
    while (rc == 0 && next < n && count < IN_FLIGHT) {
      struct batch *b = &q->slot[(head + count) % SLOTS];
      rc = batch_fill(c, q, jobs, n, next, b, &first);
      if (rc == 0) rc = batch_send(c, q, b, q->eval_body, &first);
      if (rc != 0) break;
      next += b->n;
      count++;
    }
    if (count == 0) break;
    struct batch *b = &q->slot[head];
    struct relayq_error rerr;
    relayq__error_clear(&rerr);
    int r = batch_read(c, b, dup, dup_cap, &rerr);
    if (r == NOSCRIPT) {
      struct batch *again = &q->slot[(head + count) % SLOTS], tmp = *again;
      *again = *b; /* swap: the bytes move to the back of the line */
      *b = tmp;
      b->n = 0;
      again->retried = 1;
      r = batch_send(c, q, again, 1, &rerr);
      if (r == 0) count++;
    }
    if (r != 0 && rc == 0) rc = r, first = rerr;
    if (r == 0 && ids_out != NULL)
      for (size_t i = 0; i < b->n; i++) memcpy(ids_out[b->first + i], b->ids[i], sizeof *b->ids);
    head = (head + 1) % SLOTS;
    count--;
    /* The connection is gone: no reply will come (the next call refills
     * the slots still marked in flight). */
    if (r != 0 && c->rc->err) break;
  }
  trim(q);
  if (rc != 0 && err != NULL) *err = first;
  return rc;
}

int relayq_enqueue(struct relayq_client *c, const struct relayq_job *job,
                   const char *queue, char *id_out, struct relayq_error *err) {
  relayq__error_clear(err);
  if (c == NULL || c->rc == NULL)
    return relayq__fail(err, RELAYQ_EINVAL, "relayq_enqueue needs a connected client.");
  if (job == NULL) return relayq__fail(err, RELAYQ_EINVAL, "No job was given.");
  char id[1][RELAYQ_ID_MAX + 1] = {""}, dup[32] = "";
  int rc = enqueue_batches(c, job, 1, queue, id, dup, sizeof dup, err);
  if (rc == 0 && id_out != NULL) memcpy(id_out, id[0], strlen(id[0]) + 1);
  /* Idempotent success: the id already has a status, so the job is (or
   * was) on its way; report it without failing (code stays 0). */
  if (rc == 0 && dup[0] != '\0' && err != NULL)
    snprintf(err->message, sizeof err->message,
             "Job %s already exists (state %s); it was not enqueued again.", id[0], dup);
  return rc;
}

int relayq_enqueue_many(struct relayq_client *c, const struct relayq_job *jobs, size_t n,
                        const char *queue, struct relayq_error *err) {
  relayq__error_clear(err);
  if (c == NULL || c->rc == NULL || (jobs == NULL && n > 0))
    return relayq__fail(err, RELAYQ_EINVAL, "relayq_enqueue_many needs a client and jobs.");
  /* Validate everything first so a bad job k does not leave jobs before
   * it half-sent in a partly written batch. */
  for (size_t i = 0; i < n; i++) {
    if (jobs[i].id == NULL)
      return relayq__fail(err, RELAYQ_EINVAL,
                          "Job %zu has no id; relayq_enqueue_many needs ids.", i + 1);
    int rc = relayq_job_validate(&jobs[i], err);
    if (rc != 0) return rc;
  }
  if (n == 0) return 0;
  return enqueue_batches(c, jobs, n, queue, NULL, NULL, 0, err);
}
