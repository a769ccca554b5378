/*
 * smtp: the SMTP client transport. See smtp.h.
 *
 * Parts, top to bottom: error names; the transaction story (what each
 * reply meant, shared with the rq_smtp_dialog test API); pools, limiters
 * and FIFOs; the dialogue state machine on smtp_conn events; the public
 * API; classification of our own failures.
 *
 * Life of a transaction (struct tx): rq_smtp_send -> acquire (an idle
 * connection of its pool, LIFO; else a new one if its key and the global
 * cap have room; else it waits in the key's or the global FIFO) -> on a
 * new connection the session is set up for it (banner, EHLO, STARTTLS,
 * EHLO, AUTH) -> MAIL, RCPT..., DATA (one write with PIPELINING) -> the
 * message in chunks -> the final reply -> the connection goes back to the
 * pool (or gets RSET, or QUIT) and a waiter, if any, gets it, before the
 * callback runs; then tx is freed.
 *
 * Safe points: a struct sconn is freed only on its connection's CLOSED
 * event; a tx right after its callback; the transport at the end of the
 * outermost of our entry points (depth) once closing and nothing is open.
 */
#include "smtp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "classify.h"
#include "curluv.h"
#include "hmap.h"
#include "log.h"
#include "msg.h"
#include "smtp_conn.h"
#include "smtp_proto.h"
#include "tlsio.h"
#include "util.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 30000L
#define DEFAULT_RESPONSE_TIMEOUT_MS 60000L
#define DEFAULT_TIMEOUT_MS 600000L
#define DEFAULT_MAX_CONNECTIONS 512
#define DEFAULT_MAX_IDLE_PER_SERVER 64
#define DEFAULT_MAX_IDLE 256
#define DEFAULT_IDLE_TIMEOUT_MS 30000L
#define QUIT_LINGER_MS 2000    /* most we wait for the server to close after QUIT */
#define SHUTDOWN_LINGER_MS 500 /* the same when the transport closes */
#define KEY_MAX 512            /* longest limiter key accepted */
#define USER_MAX 512
#define TOKEN_MAX 16384 /* an OAuth2 access token (Microsoft's JWTs run to a few KB) */
#define BODY_CHUNK 65536
#define BODY_SYNC_BUDGET (256 * 1024) /* message bytes written in one loop turn at most */
#define BODY_WINDOW 16384 /* a segmented message is produced this much at a time */
#define SWEEP_MS 100                  /* how often waiting transactions' deadlines are checked */

/* ---- names ------------------------------------------------------------------------ */

const char *rq_smtp_strerror(int err) {
  switch (err) {
#define XX(name, code, msg)                                                                  \
  case code: return msg;
    RQ_SMTP_ERRNO_MAP(XX)
#undef XX
  case 0: return "success";
  default: return "unknown error";
  }
}

const char *rq_smtp_err_name(int err) { return err == RQ_SMTP_ERR_OK ? "ok" : rq_fail_name((enum rq_fail)err); }

/* ---- the transaction story ---------------------------------------------------------- */

/* What one transaction's replies meant: the stage and the reply that ended
 * it, each recipient's reply, the final reply. Plain memory; rcpts belongs
 * to the owner (struct tx or struct rq_smtp_dialog). */
struct story {
  enum rq_smtp_stage stage;
  int in_auth;      /* dialog feed: our lines are credentials until AUTH's exchange ends */
  int quit_pending; /* dialog feed: QUIT sent; its reply belongs to no stage */
  int commands;
  struct rq_reply last; /* the reply in the current stage (code 0: none yet) */
  size_t n_rcpts, rcpt_answered;
  struct rq_rcpt_reply *rcpts;
  int accepted;
  int data_code;
};

static void story_init(struct story *st, struct rq_rcpt_reply *rcpts, size_t n) {
  memset(st, 0, sizeof *st);
  st->stage = RQ_STAGE_CONNECT;
  st->rcpts = rcpts;
  st->n_rcpts = n;
  memset(rcpts, 0, n * sizeof *rcpts);
}

/* A stage without a command of its own (connect, banner, TLS). */
static void story_stage(struct story *st, enum rq_smtp_stage stage) {
  st->stage = stage;
  memset(&st->last, 0, sizeof st->last);
}

/* The command whose reply comes next. */
static void story_enter(struct story *st, enum rq_smtp_stage stage) {
  st->commands++;
  story_stage(st, stage);
  if (stage == RQ_STAGE_AUTH) st->in_auth = 1;
  if (stage == RQ_STAGE_MAIL) {
    /* A transaction moved to a fresh connection starts its story again. */
    memset(st->rcpts, 0, st->n_rcpts * sizeof *st->rcpts);
    st->rcpt_answered = 0;
    st->accepted = 0;
    st->data_code = 0;
  }
}

/* One complete reply, filed under the stage it answers. */
static void story_reply(struct story *st, const char *raw, size_t len) {
  struct rq_reply r;
  rq_reply_parse(raw, len, &r);
  if (st->quit_pending) {
    st->quit_pending = 0;
    return;
  }
  st->last = r;
  switch (st->stage) {
  case RQ_STAGE_CONNECT:
  case RQ_STAGE_TLS:
    if (st->commands == 0) st->stage = RQ_STAGE_BANNER; /* the greeting */
    break;
  case RQ_STAGE_STARTTLS:
    if (r.code == 220) story_stage(st, RQ_STAGE_TLS); /* the handshake has no reply of its own */
    break;
  case RQ_STAGE_AUTH:
    if (r.code != 334) st->in_auth = 0;
    break;
  case RQ_STAGE_RCPT:
    if (st->rcpt_answered < st->n_rcpts) {
      struct rq_rcpt_reply *rr = &st->rcpts[st->rcpt_answered++];
      rr->code = r.code;
      memcpy(rr->enhanced, r.enhanced, sizeof rr->enhanced);
      rq_text_sanitize(rr->text, sizeof rr->text, r.text, strlen(r.text));
      if (r.code >= 200 && r.code < 300) st->accepted++;
    }
    break;
  case RQ_STAGE_DATA:
    if (r.code == 354) story_stage(st, RQ_STAGE_BODY); /* the next reply answers the final dot */
    break;
  case RQ_STAGE_BODY:
    st->data_code = r.code;
    break;
  default:
    break;
  }
}

static void story_result(const struct story *st, struct rq_smtp_result *out) {
  out->stage = st->stage;
  out->code = st->last.code;
  memcpy(out->enhanced, st->last.enhanced, sizeof out->enhanced);
  memcpy(out->reply, st->last.text, sizeof out->reply);
  out->n_rcpts = st->n_rcpts;
  out->rcpts = st->rcpts;
  out->accepted = st->accepted;
  out->data_code = st->data_code;
}

/* ---- the dialog test API ------------------------------------------------------------- */

struct rq_smtp_dialog {
  struct story st;
  struct rq_smtp_reader rd;
  struct rq_rcpt_reply rcpts[];
};

static int starts_with(const char *p, size_t len, const char *word) {
  size_t n = strlen(word);
  return len >= n && strncasecmp(p, word, n) == 0;
}

/* A command line; only its verb is looked at, and nothing is kept. */
static void dialog_command(struct story *st, const char *p, size_t len) {
  if (st->in_auth) return; /* credentials (base64 can spell "DATA" too) */
  enum rq_smtp_stage stage;
  if (starts_with(p, len, "EHLO") || starts_with(p, len, "HELO")) stage = RQ_STAGE_EHLO;
  else if (starts_with(p, len, "STARTTLS")) stage = RQ_STAGE_STARTTLS;
  else if (starts_with(p, len, "AUTH")) stage = RQ_STAGE_AUTH;
  else if (starts_with(p, len, "MAIL FROM:")) stage = RQ_STAGE_MAIL;
  else if (starts_with(p, len, "RCPT TO:")) stage = RQ_STAGE_RCPT;
  else if (starts_with(p, len, "DATA")) stage = RQ_STAGE_DATA;
  else if (starts_with(p, len, "QUIT")) {
    st->quit_pending = 1; /* its 221 must not hide the reply that ended the transaction */
    return;
  } else
    return; /* RSET, NOOP: not part of a transaction's story */
  story_enter(st, stage);
}

static int dialog_reply(void *arg, const char *raw, size_t len, int code) {
  (void)code;
  story_reply(arg, raw, len);
  return 0;
}

struct rq_smtp_dialog *rq_smtp_dialog_new(size_t n_rcpts) {
  struct rq_smtp_dialog *d = rq_xmalloc(sizeof *d + (n_rcpts ? n_rcpts : 1) * sizeof d->rcpts[0]);
  story_init(&d->st, d->rcpts, n_rcpts);
  rq_smtp_reader_init(&d->rd);
  return d;
}

void rq_smtp_dialog_feed(struct rq_smtp_dialog *d, int type, const char *data, size_t len) {
  if (type == RQ_SMTP_DIALOG_OUT) dialog_command(&d->st, data, len);
  else if (type == RQ_SMTP_DIALOG_IN) rq_smtp_reader_feed(&d->rd, data, len, dialog_reply, &d->st);
}

void rq_smtp_dialog_result(const struct rq_smtp_dialog *d, struct rq_smtp_result *out) {
  story_result(&d->st, out);
}

int rq_smtp_dialog_in_auth(const struct rq_smtp_dialog *d) {
  return d->st.in_auth;
}

void rq_smtp_dialog_free(struct rq_smtp_dialog *d) {
  free(d);
}

/* ---- structures ------------------------------------------------------------------------ */

struct tx;
struct sconn;

/* A FIFO of waiting transactions (doubly linked through tx->qprev/qnext). */
struct fifo {
  struct tx *head, *tail;
  int n;
};

/* Connections to one server with one identity. Lives while a connection
 * or a transaction refers to it. Strings are copies in the same block. */
struct pool {
  struct rq_hent h;
  int refs;
  const char *limkey; /* "" when unlimited */
  const char *host;
  int port;
  enum rq_smtp_security security;
  const char *user; /* NULL: no login */
  int tls_verify;
  const char *ca_file; /* NULL: the system's */
  const char *helo;
  const struct rq_netpolicy *netpolicy; /* borrowed (the target's); NULL: any address */
  int require_auth;
  const char *tls_pin; /* NULL: trust by certificate */
  struct sconn *idle_head, *idle_tail; /* LIFO: reuse the head, expire the tail */
  int n_idle;
  char strings[];
};

/* Connections open per target key (max_connections). */
struct limiter {
  struct rq_hent h;
  int refs;
  int max;
  int open; /* counted connections (any state but closing) */
  struct fifo waiters;
  char key[];
};

/* One SSL_CTX per CA file (NULL: the system store). */
struct ctxent {
  struct ctxent *next;
  SSL_CTX *ctx;
  char ca_file[]; /* "" for the system store */
};

/* Connection states: what the next reply (or event) means. */
enum sstate {
  S_CONNECTING, /* DNS + TCP */
  S_TLS,        /* implicit TLS handshake */
  S_BANNER,
  S_EHLO,
  S_HELO,
  S_STARTTLS,
  S_STARTTLS_HS, /* handshake after STARTTLS's 220 */
  S_AUTH,
  S_MAIL,
  S_RCPT,
  S_DATA,
  S_BODY, /* the message is being written */
  S_DOT,  /* waiting for the final reply */
  S_IDLE, /* in the pool */
  S_RSET, /* after an aborted transaction, no tx */
  S_DRAIN, /* swallowing pipelined replies of an aborted transaction, then RSET */
  S_CLOSING
};

enum auth_step { A_PLAIN, A_LOGIN_USER, A_LOGIN_PASS, A_LOGIN_DONE, A_XOAUTH2, A_XOAUTH2_ERR };

/* One connection with its SMTP session. Owned by the transport; freed on
 * the connection's CLOSED event only. */
struct sconn {
  struct rq_smtp *s;
  struct rq_smtp_conn *io;
  char *win; /* window for a segmented message's body (owned; from the first one sent) */
  struct pool *pool;      /* holds a reference */
  struct limiter *lim;    /* holds a reference; NULL when unlimited */
  struct sconn *prev, *next;   /* s->conns */
  struct sconn *iprev, *inext; /* pool's idle list */
  struct sconn *gprev, *gnext; /* s's idle list (head newest) */
  enum sstate state;
  struct tx *tx;
  struct rq_smtp_caps caps;
  int tls;     /* TLS is up */
  int counted; /* in the open counts of pool/limiter/transport */
  int idle;    /* in the idle lists */
  enum auth_step auth;
  int drain;
  int ehlo_cut; /* the EHLO reply was longer than the reader keeps: its keywords are not all known */
  long reply_ms; /* the last transaction's response timeout, for RSET and the like */
  struct rq_buf out; /* commands being built; wiped after AUTH */
};

/* One transaction. Owned by the transport from rq_smtp_send until its
 * callback has returned. msg is the caller's, borrowed; the envelope and
 * password are copies in the same block (the password wiped at the end). */
struct tx {
  struct rq_smtp *s;
  struct tx *prev, *next;   /* s->txs: everything pending */
  struct tx *qprev, *qnext; /* the FIFO it waits in */
  struct fifo *queue;       /* NULL when not waiting */
  struct pool *pool;        /* holds a reference */
  struct limiter *lim;      /* holds a reference; NULL when unlimited */
  struct sconn *conn;
  rq_smtp_cb cb;
  void *arg;
  void (*ready)(void *arg); /* the target's, until called once (then NULL) */
  const char *msg;
  size_t len;
  const struct rq_msg *body; /* instead of msg: read while sent (borrowed) */
  struct rq_msg_cursor cur;
  char *mail_from;
  char **rcpts;
  size_t n_rcpts;
  char *password; /* or the OAuth2 access token when xoauth2 */
  size_t password_len;
  int xoauth2;
  enum rq_smtp_until until; /* rq_smtp_check: where it stops; 0 for a send */
  rq_smtp_step_cb step;     /* rq_smtp_check's observer, or NULL */
  uint64_t t_loop_start;    /* loop time at rq_smtp_send/check */
  long connect_ms, response_ms;
  uint64_t deadline;  /* loop time (ms) when the whole transaction times out */
  uint64_t t_start;   /* uv_hrtime() when it got a connection; 0 before */
  int reused, retried, force_new;
  int pipelined;
  int replies_on_conn; /* replies read for it on its current connection */
  size_t rcpt_sent, rcpt_replied;
  int err;
  char errmsg[256];
  struct rq_smtp_stuffer stuffer;
  struct story st;
  struct rq_rcpt_reply rcpt_replies[];
};

struct rq_smtp {
  uv_loop_t *loop;
  int pooling; /* 0: every connection is closed after its transaction */
  struct rq_smtp_limits limits;
  struct rq_hmap pools, limiters; /* hmap.h */
  struct tx *txs;
  int pending;
  struct fifo waiters; /* transactions waiting for the global cap */
  struct sconn *conns; /* every connection not yet CLOSED */
  int n_alive;         /* struct sconn not yet freed */
  int n_open;          /* counted connections */
  struct sconn *idle_head, *idle_tail;
  int n_idle;
  uv_timer_t *sweep; /* created when a transaction first waits */
  int sweep_open;
  struct ctxent *ctxs;
  char helo[256];
  int closing;
  int warned_clear_login; /* the no-STARTTLS-with-a-login error was logged */
  void (*closed_cb)(void *arg);
  void *closed_arg;
  int depth; /* our entry points on the stack */
  struct rq_smtp_stats stats;
  struct rq_smtp_conn_shared sh;
  char chunk[BODY_CHUNK];
};

static void on_io(struct rq_smtp_conn *io, const struct rq_smtp_conn_event *ev);
static void on_sweep(uv_timer_t *t);
static struct tx *first_live(struct rq_smtp *s, struct fifo *f);
static void acquire(struct tx *tx, int from_queue);
static void pump(struct rq_smtp *s, struct limiter *lim);
static void ensure_sweep(struct rq_smtp *s);
static void maybe_finalize(struct rq_smtp *s);

/* ---- small containers ------------------------------------------------------------------ */

static void fifo_push(struct fifo *f, struct tx *tx) {
  tx->queue = f;
  tx->qnext = NULL;
  tx->qprev = f->tail;
  if (f->tail) f->tail->qnext = tx;
  else f->head = tx;
  f->tail = tx;
  f->n++;
}

static void fifo_remove(struct tx *tx) {
  struct fifo *f = tx->queue;
  if (!f) return;
  if (tx->qprev) tx->qprev->qnext = tx->qnext;
  else f->head = tx->qnext;
  if (tx->qnext) tx->qnext->qprev = tx->qprev;
  else f->tail = tx->qprev;
  tx->qprev = tx->qnext = NULL;
  tx->queue = NULL;
  f->n--;
}

/* ---- pools and limiters ---------------------------------------------------------------- */

/* The pool identity of a target, as a hash. */
static uint32_t pool_hash(const char *limkey, const struct rq_smtp_target *t, const char *user, const char *ca,
                          const char *helo) {
  uint32_t h = RQ_HASH_SEED;
  int nums[4] = {t->port, (int)t->security, t->tls_verify ? 1 : 0, t->require_auth ? 1 : 0};
  const void *policy = t->netpolicy;
  h = rq_hash(h, &policy, sizeof policy);
  h = rq_hash_str(h, t->tls_pin && *t->tls_pin ? t->tls_pin : NULL);
  h = rq_hash_str(h, limkey);
  h = rq_hash_str(h, t->host);
  h = rq_hash(h, nums, sizeof nums);
  h = rq_hash_str(h, user);
  h = rq_hash_str(h, ca);
  return rq_hash_str(h, helo);
}

/* Pools and limiters are one allocation each, their hent first. */
static void free_hent(struct rq_hent *e) { free(e); }

static int str_eq(const char *a, const char *b) {
  if (!a || !b) return a == b;
  return strcmp(a, b) == 0;
}

static char *pack(char **p, const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  char *d = memcpy(*p, s, n);
  *p += n;
  return d;
}

static struct pool *pool_get(struct rq_smtp *s, const char *limkey, const struct rq_smtp_target *t,
                             const char *user, const char *ca, const char *helo) {
  uint32_t h = pool_hash(limkey, t, user, ca, helo);
  for (struct rq_hent *e = rq_hmap_chain(&s->pools, h); e; e = e->next) {
    struct pool *p = (struct pool *)e;
    if (e->hash == h && p->port == t->port && p->security == t->security &&
        p->tls_verify == (t->tls_verify ? 1 : 0) && str_eq(p->limkey, limkey) && str_eq(p->host, t->host) &&
        str_eq(p->user, user) && str_eq(p->ca_file, ca) && str_eq(p->helo, helo) &&
        p->netpolicy == t->netpolicy && p->require_auth == (t->require_auth ? 1 : 0) &&
        str_eq(p->tls_pin, t->tls_pin && *t->tls_pin ? t->tls_pin : NULL)) {
      p->refs++;
      return p;
    }
  }
  const char *pin = t->tls_pin && *t->tls_pin ? t->tls_pin : NULL;
  size_t n = strlen(limkey) + strlen(t->host) + strlen(helo) + 3 + (user ? strlen(user) + 1 : 0) +
             (ca ? strlen(ca) + 1 : 0) + (pin ? strlen(pin) + 1 : 0);
  struct pool *p = rq_xcalloc(1, sizeof *p + n);
  char *w = p->strings;
  p->h.hash = h;
  p->limkey = pack(&w, limkey);
  p->host = pack(&w, t->host);
  p->helo = pack(&w, helo);
  p->user = pack(&w, user);
  p->ca_file = pack(&w, ca);
  p->tls_pin = pack(&w, pin);
  p->netpolicy = t->netpolicy;
  p->require_auth = t->require_auth ? 1 : 0;
  p->port = t->port;
  p->security = t->security;
  p->tls_verify = t->tls_verify ? 1 : 0;
  p->refs = 1;
  rq_hmap_add(&s->pools, &p->h);
  return p;
}

static void pool_put(struct rq_smtp *s, struct pool *p) {
  if (--p->refs > 0) return;
  rq_hmap_del(&s->pools, &p->h);
  free(p);
}

static struct limiter *limiter_get(struct rq_smtp *s, const char *key, int max) {
  uint32_t h = rq_hash_str(RQ_HASH_SEED, key);
  struct limiter *l = NULL;
  for (struct rq_hent *e = rq_hmap_chain(&s->limiters, h); e; e = e->next)
    if (e->hash == h && strcmp(((struct limiter *)e)->key, key) == 0) {
      l = (struct limiter *)e;
      break;
    }
  if (!l) {
    size_t n = strlen(key);
    l = rq_xcalloc(1, sizeof *l + n + 1);
    memcpy(l->key, key, n + 1);
    l->h.hash = h;
    rq_hmap_add(&s->limiters, &l->h);
  }
  l->max = max; /* the latest settings win (a tenant may change its limit) */
  l->refs++;
  return l;
}

static void limiter_put(struct rq_smtp *s, struct limiter *l) {
  if (!l || --l->refs > 0) return;
  rq_hmap_del(&s->limiters, &l->h);
  free(l);
}

static SSL_CTX *ctx_get(struct rq_smtp *s, const char *ca_file, char *err, size_t errlen) {
  const char *key = ca_file ? ca_file : "";
  for (struct ctxent *e = s->ctxs; e; e = e->next)
    if (strcmp(e->ca_file, key) == 0) return e->ctx;
  SSL_CTX *ctx = rq_tlsio_ctx_new(ca_file, err, errlen);
  if (!ctx) return NULL;
  size_t n = strlen(key);
  struct ctxent *e = rq_xmalloc(sizeof *e + n + 1);
  memcpy(e->ca_file, key, n + 1);
  e->ctx = ctx;
  e->next = s->ctxs;
  s->ctxs = e;
  return ctx;
}

/* ---- connections: counting, idle lists, closing ------------------------------------------ */

static void idle_remove(struct sconn *sc) {
  if (!sc->idle) return;
  struct pool *p = sc->pool;
  struct rq_smtp *s = sc->s;
  if (sc->iprev) sc->iprev->inext = sc->inext;
  else p->idle_head = sc->inext;
  if (sc->inext) sc->inext->iprev = sc->iprev;
  else p->idle_tail = sc->iprev;
  p->n_idle--;
  if (sc->gprev) sc->gprev->gnext = sc->gnext;
  else s->idle_head = sc->gnext;
  if (sc->gnext) sc->gnext->gprev = sc->gprev;
  else s->idle_tail = sc->gprev;
  s->n_idle--;
  sc->iprev = sc->inext = sc->gprev = sc->gnext = NULL;
  sc->idle = 0;
}

static void idle_push(struct sconn *sc) {
  struct pool *p = sc->pool;
  struct rq_smtp *s = sc->s;
  sc->idle = 1;
  sc->iprev = NULL;
  sc->inext = p->idle_head;
  if (p->idle_head) p->idle_head->iprev = sc;
  else p->idle_tail = sc;
  p->idle_head = sc;
  p->n_idle++;
  sc->gprev = NULL;
  sc->gnext = s->idle_head;
  if (s->idle_head) s->idle_head->gprev = sc;
  else s->idle_tail = sc;
  s->idle_head = sc;
  s->n_idle++;
}

/* Frees the connection's slot in its limiter and the global cap. */
static void uncount(struct sconn *sc) {
  idle_remove(sc);
  if (!sc->counted) return;
  sc->counted = 0;
  sc->s->n_open--;
  if (sc->lim) sc->lim->open--;
}

/* Closes a connection that has no transaction. graceful: QUIT first (when
 * the session is in a state to take it) and a short wait for the server
 * to close. Does not pump waiters: callers do when they are done. */
static void sc_close(struct sconn *sc, int graceful, uint64_t linger_ms) {
  if (sc->state == S_CLOSING) return;
  uncount(sc);
  int quit = 0;
  switch (sc->state) {
  /* The server reads commands here; elsewhere a QUIT would be taken for
   * message data or TLS records, so the connection is just closed. */
  case S_BANNER:
  case S_EHLO:
  case S_HELO:
  case S_STARTTLS:
  case S_AUTH:
  case S_IDLE:
  case S_RSET: quit = graceful; break;
  default: break;
  }
  sc->state = S_CLOSING;
  if (quit) rq_smtp_conn_write(sc->io, "QUIT\r\n", 6, 0);
  rq_smtp_conn_close(sc->io, quit, linger_ms);
}

static struct sconn *sc_new(struct rq_smtp *s, struct pool *p, struct limiter *lim) {
  struct sconn *sc = rq_xcalloc(1, sizeof *sc);
  sc->s = s;
  sc->pool = p;
  p->refs++;
  sc->lim = lim;
  if (lim) lim->refs++;
  sc->io = rq_smtp_conn_new(s->loop, &s->sh, on_io, sc);
  sc->state = S_CONNECTING;
  sc->counted = 1;
  s->n_open++;
  if (lim) lim->open++;
  s->n_alive++;
  sc->next = s->conns;
  if (s->conns) s->conns->prev = sc;
  s->conns = sc;
  rq_buf_init(&sc->out);
  s->stats.connections_opened++;
  return sc;
}

static void sc_free(struct sconn *sc) {
  struct rq_smtp *s = sc->s;
  if (sc->prev) sc->prev->next = sc->next;
  else s->conns = sc->next;
  if (sc->next) sc->next->prev = sc->prev;
  s->n_alive--;
  pool_put(s, sc->pool);
  limiter_put(s, sc->lim);
  if (sc->out.data) OPENSSL_cleanse(sc->out.data, sc->out.cap);
  rq_buf_free(&sc->out);
  free(sc->win);
  free(sc);
}

/* ---- timers ------------------------------------------------------------------------------ */

/* Arms the connection's timer for the current wait: ms from now, or the
 * transaction's deadline when that comes first. */
static void arm(struct sconn *sc, long ms) {
  uint64_t now = uv_now(sc->s->loop), due = now + (uint64_t)ms;
  if (sc->tx && sc->tx->deadline < due) due = sc->tx->deadline;
  rq_smtp_conn_timer(sc->io, due > now ? due - now : 0);
}

static long response_ms(const struct sconn *sc) {
  return sc->tx ? sc->tx->response_ms : DEFAULT_RESPONSE_TIMEOUT_MS;
}

/* ---- transactions: results ---------------------------------------------------------------- */

static void tx_fail(struct tx *tx, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void tx_fail(struct tx *tx, int err, const char *fmt, ...) {
  if (tx->err) return; /* the first failure is the story */
  tx->err = err;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tx->errmsg, sizeof tx->errmsg, fmt, ap);
  va_end(ap);
}

/* A failure told by the server's last reply. */
static void tx_fail_reply(struct tx *tx, int err, const char *what) {
  const struct rq_reply *r = &tx->st.last;
  tx_fail(tx, err, "%s: %d%s%s %s", what, r->code, r->enhanced[0] ? " " : "", r->enhanced, r->text);
}

static void tx_free(struct tx *tx) {
  struct rq_smtp *s = tx->s;
  if (tx->password) OPENSSL_cleanse(tx->password, tx->password_len);
  pool_put(s, tx->pool);
  limiter_put(s, tx->lim);
  free(tx);
}

/* Calls tx back and frees it. tx must be detached (no connection, no
 * FIFO). The last thing its caller does with tx. */
static void finish(struct tx *tx) {
  struct rq_smtp *s = tx->s;
  struct rq_smtp_result res;
  memset(&res, 0, sizeof res);
  story_result(&tx->st, &res);
  res.err = tx->err;
  if (tx->err) snprintf(res.errmsg, sizeof res.errmsg, "%s", tx->errmsg);
  res.seconds = tx->t_start ? (double)(uv_hrtime() - tx->t_start) / 1e9 : 0;
  res.reused_connection = tx->reused;
  res.xoauth2 = tx->xoauth2;
  if (tx->prev) tx->prev->next = tx->next;
  else s->txs = tx->next;
  if (tx->next) tx->next->prev = tx->prev;
  s->pending--;
  s->depth++;
  tx->cb(&res, tx->arg);
  s->depth--;
  tx_free(tx);
}

static struct tx *detach(struct sconn *sc) {
  struct tx *tx = sc->tx;
  if (tx) tx->conn = NULL;
  sc->tx = NULL;
  return tx;
}

/* ---- a check's observer ---------------------------------------------------------------------- */

static void tell(struct tx *tx, const struct rq_smtp_step *st) {
  if (tx && tx->step) tx->step(st, tx->arg);
}

static void tell_cmd(struct tx *tx, const char *verb) {
  const struct rq_smtp_step st = {.kind = RQ_SMTP_STEP_COMMAND, .verb = verb};
  tell(tx, &st);
}

/* ---- the dialogue ------------------------------------------------------------------------------ */

static void send_cmd(struct sconn *sc, int flags) {
  rq_smtp_conn_write(sc->io, sc->out.data, sc->out.len, flags); /* a failure arrives as ERROR */
  if (flags & RQ_CONN_WRITE_SECRET) OPENSSL_cleanse(sc->out.data, sc->out.len);
  rq_buf_reset(&sc->out);
}

static void send_line(struct sconn *sc, const char *line) {
  rq_buf_reset(&sc->out);
  rq_buf_puts(&sc->out, line);
  send_cmd(sc, 0);
}

/* MAIL FROM, and with PIPELINING every RCPT TO and DATA, in one write. */
static void tx_begin(struct sconn *sc) {
  struct tx *tx = sc->tx;
  sc->state = S_MAIL;
  tx->pipelined = sc->caps.pipelining && !tx->until; /* a check reads each reply before the next */
  tx->rcpt_sent = tx->rcpt_replied = 0;
  rq_buf_reset(&sc->out);
  if (tx->body)
    rq_smtp_cmd_mail_sized(&sc->out, tx->mail_from, (const char *const *)tx->rcpts, tx->n_rcpts, tx->len,
                           tx->body->has_8bit, &sc->caps);
  else
    rq_smtp_cmd_mail(&sc->out, tx->mail_from, (const char *const *)tx->rcpts, tx->n_rcpts, tx->msg, tx->len,
                     &sc->caps);
  if (tx->pipelined) {
    for (size_t i = 0; i < tx->n_rcpts; i++) rq_smtp_cmd_rcpt(&sc->out, tx->rcpts[i]);
    rq_buf_puts(&sc->out, "DATA\r\n");
    tx->rcpt_sent = tx->n_rcpts;
  }
  send_cmd(sc, 0);
  tell_cmd(tx, "MAIL");
  arm(sc, tx->response_ms);
  if (tx->ready) { /* last: the connection's state is settled whatever the caller does */
    void (*ready)(void *) = tx->ready;
    tx->ready = NULL;
    ready(tx->arg);
  }
}

static void attach(struct tx *tx, struct sconn *sc, int reused) {
  tx->conn = sc;
  sc->tx = tx;
  sc->reply_ms = tx->response_ms;
  tx->reused = reused;
  tx->replies_on_conn = 0;
  if (!tx->t_start) tx->t_start = uv_hrtime();
  if (reused) {
    tx->s->stats.transactions_reused++;
    idle_remove(sc);
    /* A connection still resetting after an aborted transaction starts
     * this one when RSET is answered. */
    if (sc->state == S_IDLE) tx_begin(sc);
  }
}

/* A new connection for tx. */
static void open_for(struct tx *tx) {
  struct sconn *sc = sc_new(tx->s, tx->pool, tx->lim);
  attach(tx, sc, 0);
  story_stage(&tx->st, RQ_STAGE_CONNECT);
  rq_smtp_conn_set_netpolicy(sc->io, tx->pool->netpolicy);
  rq_smtp_conn_set_pins(sc->io, tx->pool->tls_pin);
  rq_smtp_conn_connect(sc->io, tx->pool->host, tx->pool->port);
  arm(sc, tx->connect_ms);
}

/* Returns a connection whose transaction completed to the pool, or hands
 * it to the first waiter that can use it. */
static void release(struct sconn *sc) {
  struct rq_smtp *s = sc->s;
  sc->state = S_IDLE;
  idle_remove(sc); /* it may have waited there while resetting */
  if (!s->pooling || s->closing) {
    sc_close(sc, 1, s->closing ? SHUTDOWN_LINGER_MS : QUIT_LINGER_MS);
    pump(s, sc->lim);
    return;
  }
  struct tx *tx = sc->lim ? first_live(s, &sc->lim->waiters) : NULL;
  if (!tx) tx = first_live(s, &s->waiters);
  if (tx) {
    if (tx->pool == sc->pool && !tx->force_new) {
      fifo_remove(tx);
      attach(tx, sc, 1);
      return;
    }
    /* The waiter needs another kind of connection: make room for it. */
    sc_close(sc, 1, QUIT_LINGER_MS);
    pump(s, sc->lim);
    return;
  }
  idle_push(sc);
  rq_smtp_conn_timer(sc->io, (uint64_t)s->limits.idle_timeout_ms);
  struct pool *p = sc->pool;
  while (p->n_idle > s->limits.max_idle_per_server) sc_close(p->idle_tail, 1, QUIT_LINGER_MS);
  while (s->n_idle > s->limits.max_idle) sc_close(s->idle_tail, 1, QUIT_LINGER_MS);
}

/* After an aborted transaction: RSET, then idle (RFC 5321 4.1.1.5).
 * Meanwhile the connection waits in the pool, so that the next
 * transaction takes it rather than opening another. */
static void reset(struct sconn *sc) {
  if (!sc->s->pooling || sc->s->closing) {
    sc->state = S_IDLE; /* the server waits for a command: QUIT is welcome */
    sc_close(sc, 1, QUIT_LINGER_MS);
    pump(sc->s, sc->lim);
    return;
  }
  sc->state = S_RSET;
  send_line(sc, "RSET\r\n");
  if (!sc->tx && !sc->idle) idle_push(sc);
  arm(sc, sc->reply_ms);
}

/* Pipelined replies still to come for an aborted transaction. */
static void drain(struct sconn *sc, int n) {
  if (n <= 0) {
    reset(sc);
    return;
  }
  sc->state = S_DRAIN;
  sc->drain = n;
  if (!sc->tx && !sc->idle) idle_push(sc);
  arm(sc, sc->reply_ms);
}

/* Still cleaning up after an aborted transaction. A transaction waiting
 * on such a connection when it fails is not at fault: it moves to a fresh
 * connection (on_error, on_timeout). */
static int resetting(const struct sconn *sc) {
  return sc->state == S_RSET || sc->state == S_DRAIN;
}

/* What happens to the connection after its transaction ended. */
enum after { AFTER_RELEASE, AFTER_RESET, AFTER_QUIT, AFTER_CLOSE };

/* Ends tx on sc: the connection goes on (or away) first, then the
 * callback. 421 from the server always closes (RFC 5321 3.8). */
static void complete(struct sconn *sc, enum after after, int drain_n) {
  struct rq_smtp *s = sc->s;
  struct tx *tx = detach(sc);
  if (tx && tx->st.last.code == 421) after = AFTER_CLOSE;
  switch (after) {
  case AFTER_RELEASE: release(sc); break;
  case AFTER_RESET:
    if (drain_n > 0) drain(sc, drain_n);
    else reset(sc);
    break;
  case AFTER_QUIT:
    sc_close(sc, 1, QUIT_LINGER_MS);
    pump(s, sc->lim);
    break;
  case AFTER_CLOSE:
    sc_close(sc, 0, 0);
    pump(s, sc->lim);
    break;
  }
  if (tx) finish(tx);
}

static void send_ehlo(struct sconn *sc, int helo) {
  rq_buf_reset(&sc->out);
  rq_buf_printf(&sc->out, "%s %s\r\n", helo ? "HELO" : "EHLO", sc->pool->helo);
  send_cmd(sc, 0);
  tell_cmd(sc->tx, helo ? "HELO" : "EHLO");
  story_enter(&sc->tx->st, RQ_STAGE_EHLO);
  sc->state = helo ? S_HELO : S_EHLO;
  arm(sc, response_ms(sc));
}

static void ready(struct sconn *sc) {
  if (sc->tx->until == RQ_SMTP_UNTIL_AUTH) { /* a check of the session: done */
    complete(sc, AFTER_QUIT, 0);
    return;
  }
  tx_begin(sc);
}

/* 1 when the session offers a login relayq can use for its transaction:
 * XOAUTH2 for smtp_auth=xoauth2, else PLAIN or LOGIN. */
static int auth_usable(const struct sconn *sc) {
  if (!sc->caps.auth || sc->ehlo_cut) return 0;
  if (sc->tx && sc->tx->xoauth2) return sc->caps.auth_xoauth2;
  return sc->caps.auth_plain || sc->caps.auth_login;
}

/* The start of the platform gateway's no-STARTTLS sentence: the whole
 * detail (rq_smtp_classify_failure), since a tenant's advice (its
 * smtp_security) is no setting of --platform-smtp. */
#define PLATFORM_NO_STARTTLS "The platform gateway "

static void auth_or_ready(struct sconn *sc) {
  struct tx *tx = sc->tx;
  struct pool *p = sc->pool;
  if (p->user && !sc->tls && p->security == RQ_SMTP_STARTTLS_TRY) {
    /* The platform's smtp:// URL: STARTTLS when offered, but its login
     * never in clear text (smtp+insecure:// is the operator's opt-in). */
    story_stage(&tx->st, RQ_STAGE_STARTTLS);
    tx_fail(tx, RQ_SMTP_ERR_NO_STARTTLS, PLATFORM_NO_STARTTLS "%.200s port %d offers no STARTTLS", p->host, p->port);
    if (!sc->s->warned_clear_login) {
      sc->s->warned_clear_login = 1;
      rq_logf(RQ_LOG_ERROR,
              "SMTP server %s port %d offers no STARTTLS; relayq does not send its login in clear text, so nothing "
              "goes through it: enable STARTTLS on it, use smtps://, or smtp+insecure:// to allow a clear-text login",
              p->host, p->port);
    }
    complete(sc, AFTER_QUIT, 0);
    return;
  }
  if (p->user && p->require_auth && !auth_usable(sc)) {
    /* saas: a route that must authenticate never sends unauthenticated,
     * whatever the server says it allows. */
    story_stage(&tx->st, RQ_STAGE_AUTH);
    tx_fail(tx, RQ_SMTP_ERR_POLICY,
            sc->ehlo_cut ? "The server's EHLO reply is too long to read whole, so its login methods are unknown; "
                           "with smtp_user set, nothing is sent without a login (--mode saas)."
                         : "The server offers no login relayq can use (AUTH PLAIN or LOGIN, or XOAUTH2 for "
                           "smtp_auth=xoauth2); with smtp_user set, "
                           "nothing is sent without a login (--mode saas): check smtp_host, smtp_port, smtp_security.");
    complete(sc, AFTER_QUIT, 0);
    return;
  }
  if (!p->user || !sc->caps.auth) {
    /* No login wanted, or none offered (a relay that trusts the sending
     * address, which takes the mail without one): go on. */
    ready(sc);
    return;
  }
  /* A password goes in clear text only where the operator chose that: a
   * tenant's `none`, or the platform's own smtp:// URL ("STARTTLS when
   * offered", CONTRACT.md). A tenant's `starttls` never falls back. */
  if (!sc->tls && p->security != RQ_SMTP_PLAIN && p->security != RQ_SMTP_STARTTLS_TRY_INSECURE) {
    story_stage(&tx->st, RQ_STAGE_AUTH);
    tx_fail(tx, RQ_SMTP_ERR_AUTH,
            "The server offers no TLS, and relayq does not send a password in clear text: use "
            "smtp_security=starttls or tls, or none on a trusted network.");
    complete(sc, AFTER_QUIT, 0);
    return;
  }
  rq_buf_reset(&sc->out);
  if (tx->xoauth2) {
    if (!sc->caps.auth_xoauth2) {
      story_stage(&tx->st, RQ_STAGE_AUTH);
      tx_fail(tx, RQ_SMTP_ERR_AUTH,
              "The server does not offer AUTH XOAUTH2 (smtp_auth=xoauth2): check smtp_host and "
              "smtp_security, or use smtp_auth=password if the server takes passwords.");
      complete(sc, AFTER_QUIT, 0);
      return;
    }
    rq_smtp_cmd_auth_xoauth2(&sc->out, p->user, tx->password ? tx->password : "");
    sc->auth = A_XOAUTH2;
  } else if (sc->caps.auth_plain) {
    rq_smtp_cmd_auth_plain(&sc->out, p->user, tx->password ? tx->password : "");
    sc->auth = A_PLAIN;
  } else if (sc->caps.auth_login) {
    rq_buf_puts(&sc->out, "AUTH LOGIN\r\n");
    sc->auth = A_LOGIN_USER;
  } else {
    story_stage(&tx->st, RQ_STAGE_AUTH);
    tx_fail(tx, RQ_SMTP_ERR_AUTH,
            "The server offers no login method relayq supports (PLAIN or LOGIN): check smtp_security, since many "
            "servers offer AUTH only after STARTTLS.");
    complete(sc, AFTER_QUIT, 0);
    return;
  }
  send_cmd(sc, RQ_CONN_WRITE_SECRET);
  tell_cmd(tx, "AUTH");
  story_enter(&tx->st, RQ_STAGE_AUTH);
  sc->state = S_AUTH;
  arm(sc, tx->response_ms);
}

static void after_ehlo(struct sconn *sc) {
  struct tx *tx = sc->tx;
  enum rq_smtp_security sec = sc->pool->security;
  if (!sc->tls &&
      (sec == RQ_SMTP_STARTTLS_REQUIRED || sec == RQ_SMTP_STARTTLS_TRY || sec == RQ_SMTP_STARTTLS_TRY_INSECURE) &&
      sc->caps.starttls) {
    send_line(sc, "STARTTLS\r\n");
    tell_cmd(tx, "STARTTLS");
    story_enter(&tx->st, RQ_STAGE_STARTTLS);
    sc->state = S_STARTTLS;
    arm(sc, tx->response_ms);
    return;
  }
  if (!sc->tls && sec == RQ_SMTP_STARTTLS_REQUIRED) {
    tx_fail(tx, RQ_SMTP_ERR_NO_STARTTLS,
            "The server does not offer STARTTLS (its EHLO reply does not list it), and the route requires it.");
    complete(sc, AFTER_QUIT, 0);
    return;
  }
  auth_or_ready(sc);
}

static void start_tls(struct sconn *sc) {
  char err[256];
  struct tx *tx = sc->tx;
  SSL_CTX *ctx = ctx_get(sc->s, sc->pool->ca_file, err, sizeof err);
  if (!ctx) {
    story_stage(&tx->st, RQ_STAGE_TLS);
    tx_fail(tx, RQ_SMTP_ERR_TLS_LOCAL, "%s", err);
    complete(sc, AFTER_CLOSE, 0);
    return;
  }
  rq_smtp_conn_start_tls(sc->io, ctx, sc->pool->host, sc->pool->tls_verify);
}

/* ---- replies, by state ------------------------------------------------------------------------ */

static int is2xx(int code) {
  return code >= 200 && code < 300;
}

static void on_session_reply(struct sconn *sc, int code, const char *raw, size_t len) {
  struct tx *tx = sc->tx;
  story_reply(&tx->st, raw, len);
  switch (sc->state) {
  case S_BANNER:
    if (code == 220) {
      send_ehlo(sc, 0);
      return;
    }
    tx_fail_reply(tx, RQ_SMTP_ERR_REJECTED, "The server refused the session in its greeting");
    complete(sc, AFTER_QUIT, 0);
    return;
  case S_EHLO:
    if (is2xx(code)) {
      rq_smtp_caps_parse(raw, len, &sc->caps);
      sc->ehlo_cut = len >= RQ_SMTP_REPLY_MAX; /* the reader cut it: keywords may be missing */
      after_ehlo(sc);
      return;
    }
    if (code >= 500 && code != 554) { /* an old server without EHLO: HELO, no extensions */
      send_ehlo(sc, 1);
      return;
    }
    tx_fail_reply(tx, RQ_SMTP_ERR_REJECTED, "The server refused EHLO");
    complete(sc, AFTER_QUIT, 0);
    return;
  case S_HELO:
    if (is2xx(code)) {
      memset(&sc->caps, 0, sizeof sc->caps);
      after_ehlo(sc);
      return;
    }
    tx_fail_reply(tx, RQ_SMTP_ERR_REJECTED, "The server refused EHLO and HELO");
    complete(sc, AFTER_QUIT, 0);
    return;
  case S_STARTTLS:
    if (code == 220) {
      sc->state = S_STARTTLS_HS;
      arm(sc, tx->response_ms);
      start_tls(sc);
      return;
    }
    if (sc->pool->security == RQ_SMTP_STARTTLS_REQUIRED) {
      tx_fail_reply(tx, RQ_SMTP_ERR_NO_STARTTLS, "The server refused STARTTLS");
      complete(sc, AFTER_QUIT, 0);
      return;
    }
    auth_or_ready(sc); /* opportunistic: go on in clear text */
    return;
  case S_AUTH:
    switch (sc->auth) {
    case A_PLAIN:
    case A_LOGIN_DONE:
      if (is2xx(code)) {
        ready(sc);
        return;
      }
      break;
    case A_XOAUTH2:
      if (is2xx(code)) {
        ready(sc);
        return;
      }
      if (code == 334) {
        /* The token was refused: the challenge carries an error JSON, and
         * the server sends its final reply once we answer with an empty
         * line. */
        send_line(sc, "\r\n");
        sc->auth = A_XOAUTH2_ERR;
        arm(sc, tx->response_ms);
        return;
      }
      break;
    case A_XOAUTH2_ERR:
      break;
    case A_LOGIN_USER:
    case A_LOGIN_PASS:
      if (code == 334) {
        rq_buf_reset(&sc->out);
        rq_smtp_cmd_b64_line(&sc->out, sc->auth == A_LOGIN_USER ? sc->pool->user
                                                                : (tx->password ? tx->password : ""));
        send_cmd(sc, RQ_CONN_WRITE_SECRET);
        sc->auth = sc->auth == A_LOGIN_USER ? A_LOGIN_PASS : A_LOGIN_DONE;
        arm(sc, tx->response_ms);
        return;
      }
      break;
    }
    tx_fail_reply(tx, RQ_SMTP_ERR_AUTH, "The server refused the login");
    complete(sc, AFTER_QUIT, 0);
    return;
  default:
    return;
  }
}

/* The connection was pooled and died under the transaction's first
 * command: the server had not seen MAIL, so it is safe to move on. */
static void retry_fresh(struct sconn *sc) {
  struct rq_smtp *s = sc->s;
  struct tx *tx = detach(sc);
  sc_close(sc, 0, 0);
  tx->retried = 1;
  tx->force_new = 1;
  tx->reused = 0;
  s->stats.retried_dead++;
  story_stage(&tx->st, RQ_STAGE_CONNECT);
  acquire(tx, 1); /* takes the slot the dead one freed */
}

/* The stuffer's source for a segmented message: literal bytes as they
 * are, encoded ones produced now into the connection's window (pump_body
 * asks only while the socket takes them: backpressure). The window is
 * the connection's: one transaction at a time uses it, and it outlives
 * them (no 16 KB malloc per message). */
static const char *pull_body(void *arg, size_t *len) {
  struct tx *tx = arg;
  struct sconn *sc = tx->conn;
  if (!sc->win) sc->win = rq_xmalloc(BODY_WINDOW);
  return rq_msg_next(&tx->cur, sc->win, BODY_WINDOW, len);
}

static void on_txn_reply(struct sconn *sc, int code, const char *raw, size_t len) {
  struct tx *tx = sc->tx;
  int first = tx->replies_on_conn++ == 0;
  switch (sc->state) {
  case S_MAIL:
    if (first && code == 421 && tx->reused && !tx->retried) {
      retry_fresh(sc); /* a pooled connection the server had already given up on */
      return;
    }
    story_enter(&tx->st, RQ_STAGE_MAIL);
    story_reply(&tx->st, raw, len);
    if (!is2xx(code)) {
      tx_fail_reply(tx, RQ_SMTP_ERR_REJECTED, "The server refused the sender (MAIL FROM)");
      complete(sc, AFTER_RESET, tx->pipelined ? (int)tx->n_rcpts + 1 : 0);
      return;
    }
    sc->state = S_RCPT;
    if (!tx->pipelined) {
      rq_buf_reset(&sc->out);
      rq_smtp_cmd_rcpt(&sc->out, tx->rcpts[tx->rcpt_sent++]);
      send_cmd(sc, 0);
      tell_cmd(tx, "RCPT");
    }
    arm(sc, tx->response_ms);
    return;
  case S_RCPT:
    story_enter(&tx->st, RQ_STAGE_RCPT);
    story_reply(&tx->st, raw, len);
    tx->rcpt_replied++;
    if (code == 421) {
      tx_fail_reply(tx, RQ_SMTP_ERR_REJECTED, "The server closed the session at RCPT TO");
      complete(sc, AFTER_CLOSE, 0);
      return;
    }
    if (tx->rcpt_replied < tx->n_rcpts) {
      if (!tx->pipelined) {
        rq_buf_reset(&sc->out);
        rq_smtp_cmd_rcpt(&sc->out, tx->rcpts[tx->rcpt_sent++]);
        send_cmd(sc, 0);
        tell_cmd(tx, "RCPT");
      }
      arm(sc, tx->response_ms);
      return;
    }
    if (tx->until) { /* a check: the envelope is answered, and DATA is never sent */
      if (tx->st.accepted < (int)tx->n_rcpts) tx_fail_reply(tx, RQ_SMTP_ERR_REJECTED, "The server refused a recipient");
      complete(sc, AFTER_QUIT, 0);
      return;
    }
    if (tx->st.accepted == 0) {
      tx_fail_reply(tx, RQ_SMTP_ERR_REJECTED, "The server refused every recipient; the last reply");
      /* Pipelined, DATA is on its way and gets 503/554 (or 354: see S_DRAIN). */
      complete(sc, AFTER_RESET, tx->pipelined ? 1 : 0);
      return;
    }
    sc->state = S_DATA;
    if (!tx->pipelined) send_line(sc, "DATA\r\n");
    arm(sc, tx->response_ms);
    return;
  case S_DATA:
    story_enter(&tx->st, RQ_STAGE_DATA);
    story_reply(&tx->st, raw, len);
    if (code == 354) {
      sc->state = S_BODY;
      if (tx->body) { /* from its start: a retry on a fresh connection reads it again */
        rq_msg_cursor_init(&tx->cur, tx->body);
        rq_smtp_stuffer_init_pull(&tx->stuffer, pull_body, tx);
      } else {
        rq_smtp_stuffer_init(&tx->stuffer, tx->msg, tx->len);
      }
      arm(sc, tx->response_ms);
      return; /* the body goes out from on_io, after this read */
    }
    tx_fail_reply(tx, RQ_SMTP_ERR_REJECTED, "The server refused DATA");
    complete(sc, AFTER_RESET, 0);
    return;
  case S_BODY:
  case S_DOT: {
    int early = sc->state == S_BODY; /* a reply before our final dot: the session is out of step */
    story_reply(&tx->st, raw, len);
    if (!is2xx(code) || early)
      tx_fail_reply(tx, RQ_SMTP_ERR_REJECTED,
                    early ? "The server answered before the end of the message" : "The server refused the message");
    complete(sc, early ? AFTER_CLOSE : AFTER_RELEASE, 0);
    return;
  }
  default:
    return;
  }
}

/* Writes the message, dot-stuffed, in chunks: each while the socket
 * takes it at once, up to a budget per loop turn, then on DRAINED. */
static void pump_body(struct sconn *sc) {
  struct tx *tx = sc->tx;
  struct rq_smtp *s = sc->s;
  size_t budget = BODY_SYNC_BUDGET;
  while (!rq_smtp_stuffer_done(&tx->stuffer)) {
    if (rq_smtp_conn_queued(sc->io) > 0) return; /* DRAINED brings us back */
    size_t n = rq_smtp_stuff(&tx->stuffer, s->chunk, sizeof s->chunk);
    int flags = budget == 0 ? RQ_CONN_WRITE_QUEUE : 0;
    if (rq_smtp_conn_write(sc->io, s->chunk, n, flags) != 0) return; /* ERROR follows */
    budget = budget > n ? budget - n : 0;
  }
  sc->state = S_DOT;
  arm(sc, tx->response_ms);
}

static void on_reply(struct sconn *sc, int code, const char *raw, size_t len) {
  if (sc->tx && sc->tx->step) {
    const struct rq_smtp_step st = {.kind = RQ_SMTP_STEP_REPLY, .code = code, .raw = raw, .len = len};
    tell(sc->tx, &st);
  }
  switch (sc->state) {
  case S_BANNER:
  case S_EHLO:
  case S_HELO:
  case S_STARTTLS:
  case S_AUTH:
    on_session_reply(sc, code, raw, len);
    return;
  case S_MAIL:
  case S_RCPT:
  case S_DATA:
  case S_BODY:
  case S_DOT:
    on_txn_reply(sc, code, raw, len);
    if (sc->state == S_BODY && sc->tx) pump_body(sc);
    return;
  case S_RSET:
    if (is2xx(code) && sc->tx) {
      tx_begin(sc);
    } else if (is2xx(code)) {
      release(sc);
    } else {
      sc_close(sc, 1, QUIT_LINGER_MS);
      pump(sc->s, sc->lim);
    }
    return;
  case S_DRAIN:
    if (code == 354) {
      /* DATA accepted although nothing else was (RFC 2920 3.1): an empty
       * message ends it; its reply is swallowed too. */
      rq_smtp_conn_write(sc->io, ".\r\n", 3, 0);
      sc->drain++;
    }
    if (--sc->drain <= 0) reset(sc);
    else arm(sc, sc->reply_ms);
    return;
  case S_IDLE:
  default:
    /* Unsolicited (an idle connection's "421 timeout"), or out of step. */
    sc_close(sc, 0, 0);
    pump(sc->s, sc->lim);
    return;
  }
}

static const char *state_phrase(enum sstate st) {
  switch (st) {
  case S_CONNECTING: return "connecting";
  case S_TLS: return "in the TLS handshake";
  case S_BANNER: return "waiting for the greeting";
  case S_EHLO: return "waiting for the reply to EHLO";
  case S_HELO: return "waiting for the reply to HELO";
  case S_STARTTLS: return "waiting for the reply to STARTTLS";
  case S_STARTTLS_HS: return "in the TLS handshake after STARTTLS";
  case S_AUTH: return "waiting for the reply to AUTH";
  case S_MAIL: return "waiting for the reply to MAIL FROM";
  case S_RCPT: return "waiting for the reply to RCPT TO";
  case S_DATA: return "waiting for the reply to DATA";
  case S_BODY: return "sending the message (the server stopped reading)";
  case S_DOT: return "waiting for the reply to the end of the message";
  default: return "waiting";
  }
}

static void on_timeout(struct sconn *sc) {
  struct rq_smtp *s = sc->s;
  struct tx *tx = sc->tx;
  if (!tx) {
    /* Idle too long: QUIT. A reset or drain that got no answer: drop. */
    int idle = sc->state == S_IDLE;
    sc_close(sc, idle, QUIT_LINGER_MS);
    pump(s, sc->lim);
    return;
  }
  if (resetting(sc) && !tx->retried && uv_now(s->loop) < tx->deadline) {
    retry_fresh(sc);
    return;
  }
  if (uv_now(s->loop) >= tx->deadline)
    tx_fail(tx, RQ_SMTP_ERR_TIMEOUT, "The transaction did not finish within its timeout (%s).",
            state_phrase(sc->state));
  else
    tx_fail(tx, RQ_SMTP_ERR_TIMEOUT, "No progress for %ld ms %s.",
            sc->state <= S_BANNER ? tx->connect_ms : tx->response_ms, state_phrase(sc->state));
  complete(sc, AFTER_CLOSE, 0);
}

static void on_error(struct sconn *sc, int err, const char *msg) {
  struct rq_smtp *s = sc->s;
  struct tx *tx = sc->tx;
  if (tx && err == RQ_SMTP_ERR_CLOSED && tx->reused && tx->replies_on_conn == 0 && !tx->retried &&
      (sc->state == S_MAIL || resetting(sc))) {
    retry_fresh(sc);
    return;
  }
  if (tx) tx_fail(tx, err, "%s", msg);
  detach(sc);
  sc_close(sc, 0, 0); /* already closing: marks and uncounts */
  pump(s, sc->lim);
  if (tx) finish(tx);
}

static void on_connected(struct sconn *sc) {
  struct tx *tx = sc->tx;
  if (!tx) return;
  if (tx->step) {
    uint64_t resolved = rq_smtp_conn_resolved_at(sc->io);
    struct rq_smtp_step st = {.kind = RQ_SMTP_STEP_CONNECTED, .peer = rq_smtp_conn_peer(sc->io), .dns_ms = -1};
    if (resolved) st.dns_ms = (double)(resolved - tx->t_loop_start);
    tell(tx, &st);
  }
  if (sc->pool->security == RQ_SMTP_IMPLICIT_TLS) {
    sc->state = S_TLS;
    story_stage(&tx->st, RQ_STAGE_TLS);
    start_tls(sc); /* the connect timer keeps running: it covers the handshake */
    return;
  }
  sc->state = S_BANNER;
  story_stage(&tx->st, RQ_STAGE_BANNER);
  /* The greeting is part of connecting: a server that accepts TCP and
   * never greets fails within the connect timeout, as `connect`. */
  arm(sc, tx->connect_ms);
}

static void on_tls_ready(struct sconn *sc) {
  struct tx *tx = sc->tx;
  sc->tls = 1;
  if (tx && tx->step) {
    char tls[160];
    struct rq_smtp_step st = {.kind = RQ_SMTP_STEP_TLS, .tls = tls, .cert = rq_smtp_conn_peer_cert(sc->io)};
    st.verify = rq_smtp_conn_tls_describe(sc->io, tls, sizeof tls);
    tell(tx, &st);
  }
  if (sc->state == S_TLS) {
    sc->state = S_BANNER;
    story_stage(&tx->st, RQ_STAGE_BANNER);
    arm(sc, tx->connect_ms);
  } else if (sc->state == S_STARTTLS_HS) {
    memset(&sc->caps, 0, sizeof sc->caps); /* RFC 3207 4.2: forget what was said in clear text */
    send_ehlo(sc, 0);
  }
}

static void on_io(struct rq_smtp_conn *io, const struct rq_smtp_conn_event *ev) {
  struct sconn *sc = rq_smtp_conn_data(io);
  struct rq_smtp *s = sc->s;
  s->depth++;
  switch (ev->type) {
  case RQ_CONN_EV_CLOSED:
    sc_free(sc);
    break;
  case RQ_CONN_EV_ERROR:
    on_error(sc, ev->err, ev->msg);
    break;
  default:
    if (sc->state == S_CLOSING) break;
    if (!sc->tx && sc->state != S_IDLE && sc->state != S_RSET && sc->state != S_DRAIN) {
      /* A setup whose transaction went away (cannot happen: they close). */
      sc_close(sc, 0, 0);
      pump(s, sc->lim);
      break;
    }
    switch (ev->type) {
    case RQ_CONN_EV_CONNECTED: on_connected(sc); break;
    case RQ_CONN_EV_TLS_READY: on_tls_ready(sc); break;
    case RQ_CONN_EV_REPLY: on_reply(sc, ev->code, ev->raw, ev->len); break;
    case RQ_CONN_EV_DRAINED:
      if (sc->state == S_BODY) {
        arm(sc, sc->tx->response_ms); /* progress */
        pump_body(sc);
      }
      break;
    case RQ_CONN_EV_TIMER: on_timeout(sc); break;
    default: break;
    }
  }
  s->depth--;
  maybe_finalize(s);
}

/* ---- acquiring connections ---------------------------------------------------------------- */

static struct sconn *idle_of_limiter(struct rq_smtp *s, const struct limiter *lim) {
  for (struct sconn *sc = s->idle_tail; sc; sc = sc->gprev)
    if (sc->lim == lim) return sc;
  return NULL;
}

/* Gets tx a connection, or queues it. from_queue: it was waiting already,
 * so it need not queue behind others. Never calls a callback. */
static void acquire(struct tx *tx, int from_queue) {
  struct rq_smtp *s = tx->s;
  struct pool *p = tx->pool;
  if (!tx->force_new && p->idle_head) {
    attach(tx, p->idle_head, 1); /* LIFO: the most recently used is the most likely alive */
    return;
  }
  if (tx->lim && tx->lim->open >= tx->lim->max) {
    struct sconn *other = idle_of_limiter(s, tx->lim);
    if (!other) {
      fifo_push(&tx->lim->waiters, tx);
      ensure_sweep(s);
      return;
    }
    sc_close(other, 1, QUIT_LINGER_MS); /* idle with other settings: its slot is ours */
  }
  if (s->n_open >= s->limits.max_connections || (!from_queue && s->waiters.head)) {
    if (s->n_open >= s->limits.max_connections && s->idle_tail) {
      sc_close(s->idle_tail, 1, QUIT_LINGER_MS);
    } else {
      fifo_push(&s->waiters, tx);
      ensure_sweep(s);
      return;
    }
  }
  open_for(tx);
}

/* The first waiter of f whose time has not run out. Those whose time
 * has are left for the sweep, which calls them back (pump may not: its
 * callers are in the middle of other work), and the sweep is made to run
 * at once: a connection opened for them would only time out. */
static struct tx *first_live(struct rq_smtp *s, struct fifo *f) {
  uint64_t now = uv_now(s->loop);
  for (struct tx *tx = f->head; tx; tx = tx->qnext) {
    if (tx->deadline > now) return tx;
    if (s->sweep) uv_timer_start(s->sweep, on_sweep, 0, SWEEP_MS);
  }
  return NULL;
}

/* Starts waiting transactions that can go now. */
static void pump(struct rq_smtp *s, struct limiter *lim) {
  if (s->closing) return;
  struct tx *tx;
  while (lim && (tx = first_live(s, &lim->waiters))) {
    if (!(tx->pool->idle_head && !tx->force_new) && lim->open >= lim->max && !idle_of_limiter(s, lim)) break;
    fifo_remove(tx);
    acquire(tx, 1);
  }
  while ((tx = first_live(s, &s->waiters))) {
    if (!(tx->pool->idle_head && !tx->force_new) && s->n_open >= s->limits.max_connections && !s->idle_tail)
      break;
    fifo_remove(tx);
    acquire(tx, 1);
  }
}

/* ---- waiting deadlines ------------------------------------------------------------------------- */

static void on_sweep(uv_timer_t *t) {
  struct rq_smtp *s = t->data;
  uint64_t now = uv_now(s->loop);
  s->depth++;
  int waiting = 0;
  for (struct tx *tx = s->txs, *next; tx && !s->closing; tx = next) {
    next = tx->next;
    if (!tx->queue) continue;
    if (now < tx->deadline) {
      waiting++;
      continue;
    }
    fifo_remove(tx);
    tx_fail(tx, RQ_SMTP_ERR_TIMEOUT,
            "Waited for a free connection to %s port %d longer than the transaction timeout (max_connections %d).",
            tx->pool->host, tx->pool->port, tx->lim ? tx->lim->max : s->limits.max_connections);
    finish(tx); /* a callback may send more: those are at the list head, behind us */
  }
  if (!waiting && !s->closing) uv_timer_stop(t);
  s->depth--;
  maybe_finalize(s);
}

static void on_sweep_closed(uv_handle_t *h) {
  struct rq_smtp *s = h->data;
  free(h);
  s->sweep = NULL;
  s->sweep_open = 0;
  maybe_finalize(s);
}

static void ensure_sweep(struct rq_smtp *s) {
  if (!s->sweep) {
    s->sweep = rq_xmalloc(sizeof *s->sweep);
    uv_timer_init(s->loop, s->sweep);
    s->sweep->data = s;
    s->sweep_open = 1;
  }
  if (!uv_is_active((uv_handle_t *)s->sweep)) uv_timer_start(s->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
}

/* ---- the transport ------------------------------------------------------------------------------ */

static struct rq_smtp *create(uv_loop_t *loop, int pooling) {
  struct rq_smtp *s = rq_xcalloc(1, sizeof *s);
  s->loop = loop;
  s->pooling = pooling;
  rq_smtp_set_limits(s, NULL);
  /* EHLO names this host (RFC 5321 4.1.1.1: the client's own name); a
   * name that could not go in an EHLO line is replaced by one that can. */
  if (gethostname(s->helo, sizeof s->helo - 1) != 0 || !rq_smtp_helo_ok(s->helo))
    snprintf(s->helo, sizeof s->helo, "localhost");
  return s;
}

struct rq_smtp *rq_smtp_new_loop(uv_loop_t *loop) {
  return create(loop, 1);
}

struct rq_smtp *rq_smtp_new(struct rq_curl *curl) {
  return create(rq_curl_loop(curl), 0);
}

void rq_smtp_set_limits(struct rq_smtp *s, const struct rq_smtp_limits *l) {
  struct rq_smtp_limits d = {DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_IDLE_PER_SERVER, DEFAULT_MAX_IDLE,
                             DEFAULT_IDLE_TIMEOUT_MS};
  if (l) {
    if (l->max_connections > 0) d.max_connections = l->max_connections;
    if (l->max_idle_per_server > 0) d.max_idle_per_server = l->max_idle_per_server;
    if (l->max_idle > 0) d.max_idle = l->max_idle;
    if (l->idle_timeout_ms > 0) d.idle_timeout_ms = l->idle_timeout_ms;
  }
  s->limits = d;
}

int rq_smtp_pending(const struct rq_smtp *s) {
  return s->pending;
}

void rq_smtp_stats(const struct rq_smtp *s, struct rq_smtp_stats *out) {
  *out = s->stats;
  out->open = s->n_open;
  out->idle = s->n_idle;
  out->waiting = s->waiters.n;
  for (struct tx *tx = s->txs; tx; tx = tx->next)
    if (tx->queue && tx->queue != &s->waiters) out->waiting++;
}

static int valid_target(const struct rq_smtp_target *t) {
  if (!t || !t->host || !rq_smtp_host_ok(t->host)) return 0;
  if (t->port < 1 || t->port > 65535) return 0;
  if (t->security < RQ_SMTP_STARTTLS_TRY || t->security > RQ_SMTP_STARTTLS_TRY_INSECURE) return 0;
  if (t->tls_pin && *t->tls_pin && !rq_tlsio_pins_valid(t->tls_pin)) return 0;
  if (t->helo_name && *t->helo_name && !rq_smtp_helo_ok(t->helo_name)) return 0;
  if (t->key && strlen(t->key) > KEY_MAX) return 0;
  if (t->user && *t->user) {
    /* The login goes in AUTH's base64 only, but no control characters in
     * a configured name, and a bound. */
    if (strlen(t->user) > USER_MAX) return 0;
    for (const unsigned char *c = (const unsigned char *)t->user; *c; c++)
      if (*c < 0x20 || *c == 0x7f) return 0;
    if (t->password && strlen(t->password) > (t->xoauth2 ? TOKEN_MAX : USER_MAX)) return 0;
    /* The token sits between 0x01 separators in XOAUTH2's response. */
    if (t->xoauth2 && t->password)
      for (const unsigned char *c = (const unsigned char *)t->password; *c; c++)
        if (*c <= 0x20 || *c == 0x7f) return 0;
  }
  return 1;
}

static long or_default(long v, long def) {
  return v > 0 ? v : def;
}

/* A check (rq_smtp_check) when until is not 0: then there may be no
 * recipient (UNTIL_AUTH) and no message. */
static int start(struct rq_smtp *s, const struct rq_smtp_target *t, const char *mail_from,
                 const char *const *rcpts, size_t n_rcpts, const char *msg, size_t len,
                 const struct rq_msg *body, enum rq_smtp_until until, rq_smtp_step_cb step, rq_smtp_cb cb,
                 void *arg) {
  int no_envelope = until == RQ_SMTP_UNTIL_AUTH;
  if (!cb || !valid_target(t) || !rq_smtp_address_ok(mail_from, 1) ||
      (!no_envelope && (n_rcpts == 0 || !rcpts)) || (!msg && !body && len > 0))
    return RQ_SMTP_EINVAL;
  if (no_envelope) n_rcpts = 0;
  size_t strings = strlen(mail_from) + 1;
  for (size_t i = 0; i < n_rcpts; i++) {
    if (!rq_smtp_address_ok(rcpts[i], 0)) return RQ_SMTP_EINVAL;
    strings += strlen(rcpts[i]) + 1;
  }
  if (s->closing) return RQ_SMTP_ESTART;
  const char *user = t->user && *t->user ? t->user : NULL;
  const char *password = user ? (t->password ? t->password : "") : NULL;
  size_t pwlen = password ? strlen(password) + 1 : 0;

  /* One block: tx, recipients' replies, the recipient pointers, strings. */
  size_t off_ptrs = sizeof(struct tx) + n_rcpts * sizeof(struct rq_rcpt_reply);
  off_ptrs = (off_ptrs + sizeof(void *) - 1) & ~(sizeof(void *) - 1);
  size_t off_str = off_ptrs + n_rcpts * sizeof(char *);
  struct tx *tx = rq_xcalloc(1, off_str + strings + pwlen);
  char *w = (char *)tx + off_str;
  tx->s = s;
  tx->cb = cb;
  tx->arg = arg;
  tx->ready = t->ready;
  tx->msg = msg ? msg : "";
  tx->len = len;
  tx->body = body;
  tx->rcpts = (char **)((char *)tx + off_ptrs);
  tx->n_rcpts = n_rcpts;
  tx->mail_from = pack(&w, mail_from);
  for (size_t i = 0; i < n_rcpts; i++) tx->rcpts[i] = pack(&w, rcpts[i]);
  if (password) {
    tx->password = pack(&w, password);
    tx->password_len = pwlen;
  }
  tx->xoauth2 = user && t->xoauth2;
  tx->until = until;
  tx->step = step;
  tx->force_new = until != 0; /* a check tests setting up a connection, never a pooled one */
  tx->t_loop_start = uv_now(s->loop);
  tx->connect_ms = or_default(t->connect_timeout_ms, DEFAULT_CONNECT_TIMEOUT_MS);
  tx->response_ms = or_default(t->response_timeout_ms, DEFAULT_RESPONSE_TIMEOUT_MS);
  tx->deadline = uv_now(s->loop) + (uint64_t)or_default(t->timeout_ms, DEFAULT_TIMEOUT_MS);
  story_init(&tx->st, tx->rcpt_replies, n_rcpts);

  char keybuf[300];
  const char *limkey = "";
  if (t->max_connections > 0) {
    limkey = t->key && *t->key ? t->key : keybuf;
    if (limkey == keybuf) snprintf(keybuf, sizeof keybuf, "%s:%d", t->host, t->port);
    tx->lim = limiter_get(s, limkey, t->max_connections);
  }
  const char *ca = t->ca_file && *t->ca_file ? t->ca_file : NULL;
  const char *helo = t->helo_name && *t->helo_name ? t->helo_name : s->helo;
  tx->pool = pool_get(s, limkey, t, user, ca, helo);

  tx->next = s->txs;
  if (s->txs) s->txs->prev = tx;
  s->txs = tx;
  s->pending++;
  s->depth++;
  if (tx->lim && tx->lim->waiters.head) {
    fifo_push(&tx->lim->waiters, tx); /* behind those already waiting for this key */
    ensure_sweep(s);
  } else {
    acquire(tx, 0);
  }
  s->depth--;
  return 0;
}

int rq_smtp_send(struct rq_smtp *s, const struct rq_smtp_target *t, const char *mail_from,
                 const char *const *rcpts, size_t n_rcpts, const char *msg, size_t len, rq_smtp_cb cb,
                 void *arg) {
  return start(s, t, mail_from, rcpts, n_rcpts, msg, len, NULL, 0, NULL, cb, arg);
}

int rq_smtp_send_msg(struct rq_smtp *s, const struct rq_smtp_target *t, const char *mail_from,
                     const char *const *rcpts, size_t n_rcpts, const struct rq_msg *m, rq_smtp_cb cb,
                     void *arg) {
  if (!m) return RQ_SMTP_EINVAL;
  return start(s, t, mail_from, rcpts, n_rcpts, NULL, m->len, m, 0, NULL, cb, arg);
}

int rq_smtp_check(struct rq_smtp *s, const struct rq_smtp_target *t, enum rq_smtp_until until,
                  const char *mail_from, const char *const *rcpts, size_t n_rcpts, rq_smtp_step_cb step,
                  rq_smtp_cb cb, void *arg) {
  if (until != RQ_SMTP_UNTIL_AUTH && until != RQ_SMTP_UNTIL_RCPT) return RQ_SMTP_EINVAL;
  return start(s, t, mail_from ? mail_from : "", rcpts, n_rcpts, NULL, 0, NULL, until, step, cb, arg);
}

static void free_transport(struct rq_smtp *s) {
  for (struct ctxent *e = s->ctxs, *next; e; e = next) {
    next = e->next;
    SSL_CTX_free(e->ctx);
    free(e);
  }
  rq_hmap_free(&s->pools, free_hent);
  rq_hmap_free(&s->limiters, free_hent);
  free(s);
}

/* Frees a closing transport once nothing of it is left on the loop and
 * none of our frames is on the stack. */
static void maybe_finalize(struct rq_smtp *s) {
  if (!s->closing || s->depth > 0 || s->n_alive > 0 || s->sweep_open) return;
  void (*cb)(void *) = s->closed_cb;
  void *arg = s->closed_arg;
  free_transport(s);
  if (cb) cb(arg);
}

void rq_smtp_close(struct rq_smtp *s, void (*closed_cb)(void *arg), void *arg) {
  if (s->closing) return;
  s->closing = 1;
  s->closed_cb = closed_cb;
  s->closed_arg = arg;
  s->depth++;
  while (s->txs) {
    struct tx *tx = s->txs;
    fifo_remove(tx);
    if (tx->conn) {
      struct sconn *sc = tx->conn;
      detach(sc);
      sc_close(sc, 0, 0);
    }
    tx_fail(tx, RQ_SMTP_ERR_ABORTED, "The transaction was aborted: the SMTP transport is shutting down.");
    finish(tx);
  }
  for (struct sconn *sc = s->conns; sc; sc = sc->next)
    sc_close(sc, sc->state == S_IDLE, SHUTDOWN_LINGER_MS);
  if (s->sweep && !uv_is_closing((uv_handle_t *)s->sweep)) uv_close((uv_handle_t *)s->sweep, on_sweep_closed);
  s->depth--;
  maybe_finalize(s);
}

void rq_smtp_free(struct rq_smtp *s) {
  if (!s) return;
  if (s->pending || s->n_alive || s->sweep_open) {
    rq_logf(RQ_LOG_ERROR,
            "The SMTP transport was freed with %d transactions pending and %d connections open; this is a bug "
            "(call rq_smtp_close and run the loop).",
            s->pending, s->n_alive);
    rq_smtp_close(s, NULL, NULL);
    return;
  }
  free_transport(s);
}

/* ---- classification ------------------------------------------------------------------------------- */

/* Password advice does not fit an XOAUTH2 login with a token the provider
 * just issued: what is wrong is which mailbox the token may use, or SMTP
 * AUTH being off for it. */
static void xoauth2_detail(const struct rq_smtp_result *res, struct rq_class *out) {
  char c[40];
  snprintf(c, sizeof c, "%d%s%s", res->code, res->enhanced[0] ? " " : "", res->enhanced);
  if (strstr(out->detail, "smtp_password"))
    snprintf(out->detail, sizeof out->detail,
             "The server refused the OAuth2 access token (%s): smtp_user must be the mailbox that signed in (or, "
             "for app-only access, one the app was granted), and SMTP AUTH must be enabled for it.",
             c);
  else if (strstr(out->detail, "switch to smtp_auth=xoauth2"))
    snprintf(out->detail, sizeof out->detail,
             "The server refused the XOAUTH2 login (%s): a Microsoft 365 admin must enable Authenticated SMTP "
             "for the mailbox (Set-CASMailbox -SmtpClientAuthenticationDisabled $false).",
             c);
}

void rq_smtp_classify_failure(const struct rq_smtp_result *res, struct rq_class *out) {
  if (res->err == RQ_SMTP_ERR_OK && !(res->data_code >= 200 && res->data_code < 300)) {
    rq_classify_failure(RQ_FAIL_OTHER, (enum rq_smtp_stage)res->stage, NULL,
                        "the transaction ended without a final reply", out);
    return;
  }
  struct rq_reply r;
  memset(&r, 0, sizeof r);
  r.code = res->code;
  snprintf(r.enhanced, sizeof r.enhanced, "%s", res->enhanced);
  snprintf(r.text, sizeof r.text, "%s", res->reply);
  rq_classify_failure((enum rq_fail)res->err, (enum rq_smtp_stage)res->stage, res->code ? &r : NULL, res->errmsg,
                      out);
  if (res->err == RQ_SMTP_ERR_NO_STARTTLS && !res->code &&
      !strncmp(res->errmsg, PLATFORM_NO_STARTTLS, sizeof PLATFORM_NO_STARTTLS - 1)) {
    char what[sizeof res->errmsg];
    rq_text_sanitize(what, sizeof what, res->errmsg, strnlen(res->errmsg, sizeof res->errmsg));
    snprintf(out->detail, sizeof out->detail,
             "%s, and its login never goes in clear text: the operator enables STARTTLS there, or sets "
             "--platform-smtp to smtps:// (implicit TLS), or to smtp+insecure:// on a trusted network.",
             what);
  }
  if (res->xoauth2 && out->error == RQ_ERR_AUTH && res->code) xoauth2_detail(res, out);
}
