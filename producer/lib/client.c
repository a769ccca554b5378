/*
 * client: librelayq's small blocking Redis client (hiredis 0.14 sync API):
 * connect + AUTH + SELECT, enqueue (status hash, push and event in one
 * atomic step), pipelined bulk enqueue, status reads.
 *
 * Enqueueing is one Lua script rather than MULTI/EXEC because it must be
 * conditional: a job id is the idempotency key (CONTRACT.md), so when a
 * status for that id already exists the script writes nothing. A blind
 * HSET state=queued over a `sent` status would make the worker send the
 * job a second time; over a `sending` one it would corrupt the record.
 * Redis runs a script atomically, so the status and the push still appear
 * together or not at all, as the contract requires.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "internal.h"

#define CONNECT_TIMEOUT_S 5
#define COMMAND_TIMEOUT_S 30  /* a 25 MB payload over a slow link */
#define KEY_MAX 512
#define PIPELINE_BATCH 256    /* jobs per round trip in enqueue_many */
#define DEFAULT_URL "redis://127.0.0.1:6379"

/* Owns the hiredis context and a copy of the prefix. */
struct relayq_client {
  redisContext *rc;
  char prefix[RELAYQ_ID_MAX + 1];
};

/*
 * KEYS[1] status hash, KEYS[2] queue list or delayed zset, KEYS[3] events
 * channel (a channel, listed with the keys so everything it touches is
 * declared). ARGV[1] payload, ARGV[2] zset score or "" for a list push,
 * ARGV[3] event JSON, ARGV[4..] the status hash's field/value pairs.
 * Returns 1 when enqueued, or the existing state when the id is taken.
 *
 * Order matters: a script that fails half-way keeps what it already wrote
 * (Redis does not roll back). HGET fails first if the status key has the
 * wrong type, the push next if the queue key has; only then is the status
 * written, so a failed enqueue leaves neither behind.
 */
static const char enqueue_lua[] =
    "local st = redis.call('HGET', KEYS[1], 'state')\n"
    "if st then return st end\n"
    "if ARGV[2] ~= '' then\n"
    "  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])\n"
    "else\n"
    "  redis.call('LPUSH', KEYS[2], ARGV[1])\n"
    "end\n"
    "redis.call('HSET', KEYS[1], unpack(ARGV, 4))\n"
    "redis.call('PUBLISH', KEYS[3], ARGV[3])\n"
    "return 1\n";

/* ---- connection ------------------------------------------------------------- */

/* Maps a failed hiredis call to our codes; the context's errstr names
 * the socket problem and never holds a credential. */
static int io_fail(struct relayq_client *c, struct relayq_error *err, const char *what) {
  int code = RELAYQ_EREDIS;
  if (c->rc->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK))
    code = RELAYQ_ETIMEOUT;
  else if (c->rc->err == REDIS_ERR_IO || c->rc->err == REDIS_ERR_EOF)
    code = RELAYQ_ECONNECT;
  else if (c->rc->err == REDIS_ERR_OOM)
    code = RELAYQ_ENOMEM;
  return relayq__fail(err, code, "Redis connection failed during %s: %s.", what,
                      c->rc->errstr[0] ? c->rc->errstr : relayq_strerror(code));
}

static int auth(struct relayq_client *c, const struct relayq_redis_url *u,
                struct relayq_error *err) {
  const char *argv[3] = {"AUTH", u->user, u->password};
  size_t lens[3] = {4, strlen(u->user), strlen(u->password)};
  int argc = 3;
  if (u->user[0] == '\0') argv[1] = u->password, lens[1] = lens[2], argc = 2;
  redisReply *r = redisCommandArgv(c->rc, argc, argv, lens);
  if (r == NULL) return io_fail(c, err, "AUTH");
  int rc = 0;
  if (r->type == REDIS_REPLY_ERROR)
    rc = relayq__fail(err, RELAYQ_EAUTH, "Redis refused the password (%.120s): check the URL.",
                      r->str);
  freeReplyObject(r);
  return rc;
}

/* PING catches a server that wants a password the URL lacks, here rather
 * than at the first real command with a less obvious message. */
static int ping_select(struct relayq_client *c, int db, struct relayq_error *err) {
  redisReply *r = redisCommand(c->rc, "PING");
  if (r == NULL) return io_fail(c, err, "PING");
  int rc = 0;
  if (r->type == REDIS_REPLY_ERROR) {
    if (strncmp(r->str, "NOAUTH", 6) == 0)
      rc = relayq__fail(err, RELAYQ_EAUTH,
                        "Redis requires a password (NOAUTH): give it in the URL, "
                        "redis://:PASSWORD@host:port.");
    else
      rc = relayq__fail(err, RELAYQ_EREDIS, "Redis answered PING with an error: %.150s", r->str);
  }
  freeReplyObject(r);
  if (rc != 0 || db == 0) return rc;
  r = redisCommand(c->rc, "SELECT %d", db);
  if (r == NULL) return io_fail(c, err, "SELECT");
  if (r->type == REDIS_REPLY_ERROR)
    rc = relayq__fail(err, RELAYQ_EREDIS, "Redis refused database %d (%.150s): check the URL.",
                      db, r->str);
  freeReplyObject(r);
  return rc;
}

static int valid_prefix(const char *p) {
  size_t n = strnlen(p, RELAYQ_ID_MAX + 1);
  if (n == 0 || n > RELAYQ_ID_MAX) return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)p[i] <= ' ' || (unsigned char)p[i] >= 127) return 0;
  return 1;
}

int relayq_connect(const char *url, const char *prefix, struct relayq_client **out,
                   struct relayq_error *err) {
  relayq__error_clear(err);
  if (out == NULL) return relayq__fail(err, RELAYQ_EINVAL, "relayq_connect needs an output.");
  *out = NULL;
  if (prefix == NULL) prefix = RELAYQ_DEFAULT_PREFIX;
  if (!valid_prefix(prefix))
    return relayq__fail(err, RELAYQ_EINVAL,
                        "The key prefix must be 1-128 printable characters without spaces.");
  struct relayq_redis_url u;
  int rc = relayq_redis_url_parse(url ? url : DEFAULT_URL, &u, err);
  if (rc != 0) return rc;
  struct relayq_client *c = calloc(1, sizeof *c);
  if (c == NULL) {
    rc = relayq__fail(err, RELAYQ_ENOMEM, "Out of memory connecting to Redis.");
    goto out;
  }
  memcpy(c->prefix, prefix, strlen(prefix) + 1);
  struct timeval tv = {CONNECT_TIMEOUT_S, 0};
  c->rc = redisConnectWithTimeout(u.host, u.port, tv);
  if (c->rc == NULL) {
    rc = relayq__fail(err, RELAYQ_ENOMEM, "Out of memory connecting to Redis.");
    goto out;
  }
  if (c->rc->err) {
    rc = relayq__fail(err, RELAYQ_ECONNECT, "Cannot connect to Redis at %s:%d: %s.", u.host,
                      u.port, c->rc->errstr);
    goto out;
  }
  struct timeval ctv = {COMMAND_TIMEOUT_S, 0};
  redisSetTimeout(c->rc, ctv);
  if (u.password[0] != '\0' && (rc = auth(c, &u, err)) != 0) goto out;
  if ((rc = ping_select(c, u.db, err)) != 0) goto out;
  *out = c;
  c = NULL;
out:
  explicit_bzero(&u, sizeof u); /* the password */
  relayq_close(c);
  return rc;
}

void relayq_close(struct relayq_client *c) {
  if (c == NULL) return;
  if (c->rc) redisFree(c->rc);
  free(c);
}

void *relayq_client_redis(struct relayq_client *c) { return c ? c->rc : NULL; }

const char *relayq_client_prefix(const struct relayq_client *c) {
  return c ? c->prefix : RELAYQ_DEFAULT_PREFIX;
}

/* ---- enqueue ------------------------------------------------------------------- */

/* Everything one enqueue sends, built before any I/O. Owns payload. */
struct enq {
  char id[RELAYQ_ID_MAX + 1];
  char status_key[KEY_MAX], target_key[KEY_MAX], events_key[KEY_MAX];
  unsigned char *payload;
  size_t payload_len;
  char score[24], now[24], recipients[24], event[RELAYQ_ID_MAX * 2 + 128];
};

static int key_into(char *dst, const struct relayq_client *c, enum relayq_key_kind k,
                    const char *name, struct relayq_error *err) {
  if (relayq_key(dst, KEY_MAX, c->prefix, k, name) >= KEY_MAX)
    return relayq__fail(err, RELAYQ_EINVAL, "A Redis key name would be too long.");
  return 0;
}

/* Validates and encodes job for queue; fills e (caller frees e->payload). */
static int prepare(struct relayq_client *c, const struct relayq_job *job,
                   const char *queue, struct enq *e, struct relayq_error *err) {
  if (job == NULL) return relayq__fail(err, RELAYQ_EINVAL, "No job was given.");
  if (queue == NULL) queue = RELAYQ_DEFAULT_QUEUE;
  if (!relayq_valid_id(queue))
    return relayq__fail(err, RELAYQ_EINVAL,
                        "The queue name must be 1-128 characters of A-Z a-z 0-9 . _ : @ -.");
  struct relayq_job j = *job; /* shallow: only id and queue_ change */
  if (j.id == NULL) relayq_id_new(e->id);
  else snprintf(e->id, sizeof e->id, "%s", j.id);
  j.id = e->id;
  int64_t now = relayq_now_ms();
  int delayed = j.not_before > now;
  /* A delayed job carries its queue so the worker knows where to promote
   * it; a pushed one is in its queue already. */
  if (delayed) j.queue_ = (char *)queue;
  int rc = relayq_job_encode(&j, &e->payload, &e->payload_len, err);
  if (rc != 0) return rc;
  if ((rc = key_into(e->status_key, c, RELAYQ_KEY_STATUS, e->id, err)) != 0 ||
      (rc = key_into(e->target_key, c, delayed ? RELAYQ_KEY_DELAYED : RELAYQ_KEY_QUEUE, queue,
                     err)) != 0 ||
      (rc = key_into(e->events_key, c, RELAYQ_KEY_EVENTS, NULL, err)) != 0) {
    free(e->payload);
    e->payload = NULL;
    return rc;
  }
  e->score[0] = '\0'; /* empty: push to the queue, not the delayed zset */
  if (delayed) snprintf(e->score, sizeof e->score, "%lld", (long long)j.not_before);
  snprintf(e->now, sizeof e->now, "%lld", (long long)now);
  snprintf(e->recipients, sizeof e->recipients, "%zu", j.to.n + j.cc.n + j.bcc.n);
  /* id and tenant are validated to [A-Za-z0-9._:@-]: nothing to escape. */
  snprintf(e->event, sizeof e->event,
           "{\"id\":\"%s\",\"tenant\":\"%s\",\"state\":\"%s\",\"attempts\":0,\"ts\":%lld}",
           e->id, j.tenant, delayed ? "deferred" : "queued", (long long)now);
  return 0;
}

/* Appends the script call for e to the pipeline. The meta.* field names
 * are built into one scratch block that hiredis copies at append time. */
static int append_enqueue(struct relayq_client *c, const struct relayq_job *job,
                          const struct enq *e, struct relayq_error *err) {
  enum { FIXED = 9, PAIRS = 7 }; /* EVAL..event; status pairs at most */
  size_t argc = FIXED + 2 * PAIRS + 2 * job->n_meta;
  const char **argv = malloc(argc * sizeof *argv);
  size_t *lens = malloc(argc * sizeof *lens);
  size_t meta_bytes = 1;
  for (size_t i = 0; i < job->n_meta; i++) meta_bytes += 5 + strlen(job->meta[i].key) + 1;
  char *names = malloc(meta_bytes);
  int rc = 0;
  if (argv == NULL || lens == NULL || names == NULL) {
    rc = relayq__fail(err, RELAYQ_ENOMEM, "Out of memory building an enqueue command.");
    goto out;
  }
  size_t n = 0;
#define ARG(s, l) (argv[n] = (const char *)(s), lens[n] = (l), n++)
#define SARG(s) ARG((s), strlen(s))
  int delayed = e->score[0] != '\0';
  SARG("EVAL");
  ARG(enqueue_lua, sizeof enqueue_lua - 1);
  SARG("3");
  SARG(e->status_key);
  SARG(e->target_key);
  SARG(e->events_key);
  ARG(e->payload, e->payload_len);
  SARG(e->score);
  SARG(e->event);
  SARG("state"), SARG(delayed ? "deferred" : "queued");
  SARG("tenant"), SARG(job->tenant);
  SARG("created_at"), SARG(e->now);
  SARG("updated_at"), SARG(e->now);
  SARG("attempts"), SARG("0");
  SARG("recipients"), SARG(e->recipients);
  if (delayed) SARG("next_attempt_at"), SARG(e->score);
  char *p = names;
  for (size_t i = 0; i < job->n_meta; i++) {
    int w = sprintf(p, "meta.%s", job->meta[i].key);
    ARG(p, (size_t)w);
    SARG(job->meta[i].value);
    p += w + 1;
  }
#undef SARG
#undef ARG
  if (redisAppendCommandArgv(c->rc, (int)n, argv, lens) != REDIS_OK)
    rc = io_fail(c, err, "enqueue");
out:
  free(argv);
  free(lens);
  free(names);
  return rc;
}

/* Reads one script reply. *dup gets the existing state's first bytes when
 * the id was taken (the job was not pushed again). */
static int read_enqueue_reply(struct relayq_client *c, const char *id, char *dup,
                              size_t dup_cap, struct relayq_error *err) {
  redisReply *r = NULL;
  if (redisGetReply(c->rc, (void **)&r) != REDIS_OK || r == NULL)
    return io_fail(c, err, "enqueue");
  int rc = 0;
  if (r->type == REDIS_REPLY_ERROR)
    rc = relayq__fail(err, RELAYQ_EREDIS, "Redis refused to enqueue job %s: %.150s", id,
                      r->str);
  else if (r->type == REDIS_REPLY_STRING && dup != NULL)
    snprintf(dup, dup_cap, "%.*s", (int)r->len, r->str);
  freeReplyObject(r);
  return rc;
}

int relayq_enqueue(struct relayq_client *c, const struct relayq_job *job,
                   const char *queue, char *id_out, struct relayq_error *err) {
  relayq__error_clear(err);
  if (c == NULL || c->rc == NULL)
    return relayq__fail(err, RELAYQ_EINVAL, "relayq_enqueue needs a connected client.");
  struct enq e;
  memset(&e, 0, sizeof e);
  int rc = prepare(c, job, queue, &e, err);
  if (rc != 0) return rc;
  char dup[32] = "";
  rc = append_enqueue(c, job, &e, err);
  if (rc == 0) rc = read_enqueue_reply(c, e.id, dup, sizeof dup, err);
  free(e.payload);
  if (rc == 0 && id_out != NULL) memcpy(id_out, e.id, strlen(e.id) + 1);
  /* Idempotent success: the id already has a status, so the job is (or
   * was) on its way; report it without failing (code stays 0). */
  if (rc == 0 && dup[0] != '\0' && err != NULL)
    snprintf(err->message, sizeof err->message,
             "Job %s already exists (state %s); it was not enqueued again.", e.id, dup);
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
  int first = 0;
  for (size_t start = 0; start < n; start += PIPELINE_BATCH) {
    size_t end = start + PIPELINE_BATCH < n ? start + PIPELINE_BATCH : n;
    size_t appended = 0;
    int rc = 0;
    for (size_t i = start; i < end && rc == 0; i++) {
      struct enq e;
      memset(&e, 0, sizeof e);
      rc = prepare(c, &jobs[i], queue, &e, err);
      if (rc == 0) rc = append_enqueue(c, &jobs[i], &e, err);
      if (rc == 0) appended++;
      free(e.payload);
    }
    struct relayq_error rerr;
    relayq__error_clear(&rerr);
    /* Drain every reply we asked for, even after an error, so the
     * connection stays in step; report the first problem. */
    for (size_t i = 0; i < appended; i++) {
      int r = read_enqueue_reply(c, jobs[start + i].id, NULL, 0, &rerr);
      if (r != 0 && rc == 0) {
        rc = r;
        if (err) *err = rerr;
      }
      if (r != 0 && c->rc->err) break; /* the connection is gone */
    }
    if (rc != 0) {
      first = rc;
      break;
    }
  }
  return first;
}

/* ---- status ---------------------------------------------------------------------- */

int relayq_status_get(struct relayq_client *c, const char *id, struct relayq_status **out,
                      struct relayq_error *err) {
  relayq__error_clear(err);
  if (c == NULL || c->rc == NULL || out == NULL)
    return relayq__fail(err, RELAYQ_EINVAL, "relayq_status_get needs a client and an output.");
  *out = NULL;
  if (!relayq_valid_id(id))
    return relayq__fail(err, RELAYQ_EINVAL,
                        "A job id is 1-128 characters of A-Z a-z 0-9 . _ : @ -.");
  char key[KEY_MAX];
  int rc = key_into(key, c, RELAYQ_KEY_STATUS, id, err);
  if (rc != 0) return rc;
  const char *argv[2] = {"HGETALL", key};
  size_t lens[2] = {7, strlen(key)};
  redisReply *r = redisCommandArgv(c->rc, 2, argv, lens);
  if (r == NULL) return io_fail(c, err, "HGETALL");
  if (r->type == REDIS_REPLY_ERROR) {
    rc = relayq__fail(err, RELAYQ_EREDIS, "Redis refused to read status %s: %.150s", id, r->str);
  } else if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
    rc = relayq__fail(err, RELAYQ_ENOT_FOUND, "No status for job %s.", id);
  } else {
    /* One block: the struct, the pair array, then every string. */
    size_t pairs = r->elements / 2, bytes = sizeof(struct relayq_status) +
                                            pairs * sizeof(struct relayq_kv);
    for (size_t i = 0; i < pairs * 2; i++) bytes += r->element[i]->len + 1;
    struct relayq_status *st = malloc(bytes);
    if (st == NULL) {
      rc = relayq__fail(err, RELAYQ_ENOMEM, "Out of memory reading status %s.", id);
    } else {
      st->fields = (struct relayq_kv *)(st + 1);
      st->n = pairs;
      char *p = (char *)(st->fields + pairs);
      for (size_t i = 0; i < pairs * 2; i++) {
        const redisReply *el = r->element[i];
        memcpy(p, el->str ? el->str : "", el->len);
        p[el->len] = '\0';
        if (i % 2 == 0) st->fields[i / 2].key = p;
        else st->fields[i / 2].value = p;
        p += el->len + 1;
      }
      *out = st;
    }
  }
  freeReplyObject(r);
  return rc;
}

const char *relayq_status_field(const struct relayq_status *st, const char *name) {
  if (st == NULL || name == NULL) return NULL;
  for (size_t i = 0; i < st->n; i++)
    if (strcmp(st->fields[i].key, name) == 0) return st->fields[i].value;
  return NULL;
}

void relayq_status_free(struct relayq_status *st) { free(st); }

int relayq_state_is_final(const char *state) {
  return state != NULL &&
         (strcmp(state, "sent") == 0 || strcmp(state, "partial") == 0 ||
          strcmp(state, "failed") == 0);
}
