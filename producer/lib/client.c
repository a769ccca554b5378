/*
 * client: librelayq's small blocking Redis client (hiredis 0.14 sync API):
 * connect + AUTH + SELECT, and status reads. Enqueueing is in enqueue.c;
 * the client struct both share is in client.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "client.h"

#define CONNECT_TIMEOUT_S 5
#define COMMAND_TIMEOUT_S 30  /* a 25 MB payload over a slow link */
#define DEFAULT_URL "redis://127.0.0.1:6379"

/* ---- connection ------------------------------------------------------------- */

/* Maps a failed hiredis call to our codes; the context's errstr names
 * the socket problem and never holds a credential. */
int relayq__io_fail(struct relayq_client *c, struct relayq_error *err, const char *what) {
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
  if (r == NULL) return relayq__io_fail(c, err, "AUTH");
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
  if (r == NULL) return relayq__io_fail(c, err, "PING");
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
  if (r == NULL) return relayq__io_fail(c, err, "SELECT");
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
  relayq__enqueue_free(c->enq);
  free(c);
}

void *relayq_client_redis(struct relayq_client *c) { return c ? c->rc : NULL; }

const char *relayq_client_prefix(const struct relayq_client *c) {
  return c ? c->prefix : RELAYQ_DEFAULT_PREFIX;
}

int relayq__key_into(char *dst, const struct relayq_client *c, enum relayq_key_kind k,
                     const char *name, struct relayq_error *err) {
  if (relayq_key(dst, RELAYQ__KEY_MAX, c->prefix, k, name) >= RELAYQ__KEY_MAX)
    return relayq__fail(err, RELAYQ_EINVAL, "A Redis key name would be too long.");
  return 0;
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
  char key[RELAYQ__KEY_MAX];
  int rc = relayq__key_into(key, c, RELAYQ_KEY_STATUS, id, err);
  if (rc != 0) return rc;
  const char *argv[2] = {"HGETALL", key};
  size_t lens[2] = {7, strlen(key)};
  redisReply *r = redisCommandArgv(c->rc, 2, argv, lens);
  if (r == NULL) return relayq__io_fail(c, err, "HGETALL");
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
