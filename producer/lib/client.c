/*
 * client: librelayq's small blocking Redis client (hiredis 0.14 sync API):
 * connect (plain, or TLS through tls_pipe.c; the primary named by a
 * sentinel for redis+sentinel://) + AUTH + SELECT, and status reads. Enqueueing is in enqueue.c;
 * the client struct both share is in client.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "client.h"
#include "tls_pipe.h"

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

/* Opens c->rc to host:port, through TLS when asked. */
static int open_link(struct relayq_client *c, const char *host, int port, int tls,
                     const struct relayq_tls_options *o, struct relayq_error *err) {
  if (tls) {
    int fd = -1;
    int rc = relayq__tls_open(host, port, o, CONNECT_TIMEOUT_S, &fd, &c->tls, err);
    if (rc != 0) return rc;
    c->rc = redisConnectFd(fd);
    if (c->rc == NULL) {
      close(fd);
      return relayq__fail(err, RELAYQ_ENOMEM, "Out of memory connecting to Redis.");
    }
  } else {
    struct timeval tv = {CONNECT_TIMEOUT_S, 0};
    c->rc = redisConnectWithTimeout(host, port, tv);
    if (c->rc == NULL) return relayq__fail(err, RELAYQ_ENOMEM, "Out of memory connecting to Redis.");
  }
  if (c->rc->err)
    return relayq__fail(err, RELAYQ_ECONNECT, "Cannot connect to Redis at %s:%d: %s.", host, port,
                        c->rc->errstr);
  struct timeval ctv = {COMMAND_TIMEOUT_S, 0};
  redisSetTimeout(c->rc, ctv);
  return 0;
}

static void close_link(struct relayq_client *c) {
  if (c->rc) redisFree(c->rc); /* closes hiredis's end of the TLS pipe */
  c->rc = NULL;
  relayq__tls_close(c->tls);
  c->tls = NULL;
}

/* Asks the sentinels in turn where the primary is. */
static int sentinel_primary(const struct relayq_redis_url *u, const struct relayq_tls_options *o,
                            char *host, size_t hcap, int *port, struct relayq_error *err) {
  char last[256] = "no sentinel answered";
  for (int i = 0; i < u->n_sentinels; i++) {
    const struct relayq_redis_hostport *s = &u->sentinels[i];
    struct relayq_client sc = {0};
    struct relayq_error e;
    if (open_link(&sc, s->host, s->port, u->tls, o, &e) != 0) {
      snprintf(last, sizeof last, "%s", e.message);
      close_link(&sc);
      continue;
    }
    redisReply *r = redisCommand(sc.rc, "SENTINEL get-master-addr-by-name %s", u->master);
    int ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
             r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING &&
             r->element[0]->len < hcap;
    if (ok) {
      memcpy(host, r->element[0]->str, r->element[0]->len + 1);
      *port = atoi(r->element[1]->str);
    } else {
      snprintf(last, sizeof last, "sentinel %s:%d does not know a primary named '%s' (%.100s)", s->host,
               s->port, u->master, r && r->type == REDIS_REPLY_ERROR ? r->str : "no address");
    }
    freeReplyObject(r);
    close_link(&sc);
    if (ok) return 0;
  }
  size_t n = strlen(last);
  if (n > 0 && last[n - 1] == '.') last[n - 1] = '\0';
  return relayq__fail(err, RELAYQ_ECONNECT, "No sentinel named the Redis primary: %s.", last);
}

/* A sentinel that has not seen a failover yet may name the old primary. */
static int check_master(struct relayq_client *c, const char *host, int port, struct relayq_error *err) {
  redisReply *r = redisCommand(c->rc, "ROLE");
  if (r == NULL) return relayq__io_fail(c, err, "ROLE");
  int ok = r->type == REDIS_REPLY_ARRAY && r->elements > 0 && r->element[0]->type == REDIS_REPLY_STRING &&
           strcmp(r->element[0]->str, "master") == 0;
  freeReplyObject(r);
  if (ok) return 0;
  return relayq__fail(err, RELAYQ_EREFUSED,
                      "The sentinels named %s:%d as the primary, but it is not (ROLE): a failover is in "
                      "progress; try again in a few seconds.", host, port);
}

int relayq_connect(const char *url, const char *prefix, struct relayq_client **out,
                   struct relayq_error *err) {
  return relayq_connect_tls(url, prefix, NULL, out, err);
}

int relayq_connect_tls(const char *url, const char *prefix, const struct relayq_tls_options *tls,
                       struct relayq_client **out, struct relayq_error *err) {
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
  if (u.n_sentinels > 0 &&
      (rc = sentinel_primary(&u, tls, u.host, sizeof u.host, &u.port, err)) != 0)
    goto out;
  if ((rc = open_link(c, u.host, u.port, u.tls, tls, err)) != 0) goto out;
  if (u.password[0] != '\0' && (rc = auth(c, &u, err)) != 0) goto out;
  if ((rc = ping_select(c, u.db, err)) != 0) goto out;
  if (u.n_sentinels > 0 && (rc = check_master(c, u.host, u.port, err)) != 0) goto out;
  *out = c;
  c = NULL;
out:
  explicit_bzero(&u, sizeof u); /* the password */
  relayq_close(c);
  return rc;
}

void relayq_close(struct relayq_client *c) {
  if (c == NULL) return;
  close_link(c);
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
