/*
 * smtp: one SMTP transaction per call on libcurl's multi handle. See smtp.h.
 *
 * Three parts, top to bottom: the dialogue reader (pure: fed what libcurl's
 * debug callback sees), the per-key limiter with its FIFO, and the
 * transfer itself (easy-handle options, pool, completion).
 */
#include "smtp.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "classify.h"
#include "log.h"
#include "util.h"

#define REPLY_RAW_MAX 8192 /* bytes of one reply kept for parsing; the rest is dropped */
#define POOL_MAX 64        /* idle easy handles kept for reuse */
#define KEY_MAX 512        /* longest limiter key accepted */
#define DEFAULT_CONNECT_TIMEOUT_MS 30000L
#define DEFAULT_RESPONSE_TIMEOUT_MS 60000L
#define DEFAULT_TIMEOUT_MS 600000L

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

/* ---- the dialogue reader ------------------------------------------------------ */

/* What libcurl's debug callback showed of one transaction, reduced to the
 * stage and the replies. Owned by its transfer; plain memory. */
struct rq_smtp_dialog {
  enum rq_smtp_stage stage; /* set by the last command we sent */
  int in_auth;      /* from AUTH until a reply other than 334: our lines carry credentials */
  int quit_pending; /* QUIT sent: its reply belongs to no stage */
  int seen_reply;   /* any reply at all (the banner included) */
  int commands;     /* commands seen since the transfer began */
  /* the reply being read */
  char raw[REPLY_RAW_MAX + 3]; /* room for a forced "\r\n" after truncation */
  size_t raw_len;
  char head[4]; /* first bytes of the current line, kept even when raw is full */
  size_t head_len;
  int line_open; /* bytes of the current line seen, its end not yet */
  /* the reply in the current stage (code 0: none yet) */
  struct rq_reply last;
  /* recipients */
  size_t n_rcpts, rcpt_answered;
  struct rq_rcpt_reply *rcpts;
  int accepted;
  int data_code;
};

static void dialog_init(struct rq_smtp_dialog *d, struct rq_rcpt_reply *rcpts, size_t n_rcpts) {
  memset(d, 0, sizeof *d);
  d->stage = RQ_STAGE_CONNECT;
  d->rcpts = rcpts;
  d->n_rcpts = n_rcpts;
  memset(rcpts, 0, n_rcpts * sizeof *rcpts);
}

static int starts_with(const char *p, size_t len, const char *word) {
  size_t n = strlen(word);
  return len >= n && strncasecmp(p, word, n) == 0;
}

/* A command we sent. Only its verb is looked at, and nothing is kept. */
static void dialog_command(struct rq_smtp_dialog *d, const char *p, size_t len) {
  /* Between AUTH and the end of the exchange our lines are credentials
   * (base64 can spell "DATA" or "QUIT" too): never read them. */
  if (d->in_auth) return;
  enum rq_smtp_stage st;
  if (starts_with(p, len, "EHLO") || starts_with(p, len, "HELO")) st = RQ_STAGE_EHLO;
  else if (starts_with(p, len, "STARTTLS")) st = RQ_STAGE_STARTTLS;
  else if (starts_with(p, len, "AUTH")) st = RQ_STAGE_AUTH;
  else if (starts_with(p, len, "MAIL FROM:")) st = RQ_STAGE_MAIL;
  else if (starts_with(p, len, "RCPT TO:")) st = RQ_STAGE_RCPT;
  else if (starts_with(p, len, "DATA")) st = RQ_STAGE_DATA;
  else if (starts_with(p, len, "QUIT")) {
    /* curl closes connections with QUIT after a failure, and sometimes an
     * older idle one through this transfer: neither changes our stage, and
     * the 221 must not hide the reply that ended the transaction. */
    d->quit_pending = 1;
    return;
  } else return; /* RSET, NOOP, ...: not part of a transaction's story */
  d->commands++;
  d->stage = st;
  memset(&d->last, 0, sizeof d->last);
  if (st == RQ_STAGE_AUTH) d->in_auth = 1;
  if (st == RQ_STAGE_MAIL) {
    /* curl retries a transaction once on a fresh connection when a reused
     * one turns out dead: start the recipients' story again. */
    memset(d->rcpts, 0, d->n_rcpts * sizeof *d->rcpts);
    d->rcpt_answered = 0;
    d->accepted = 0;
    d->data_code = 0;
  }
}

/* One complete reply: file it under the stage it answers. */
static void dialog_reply(struct rq_smtp_dialog *d) {
  struct rq_reply r;
  rq_reply_parse(d->raw, d->raw_len, &r);
  if (d->quit_pending) {
    d->quit_pending = 0;
    return;
  }
  d->seen_reply = 1;
  d->last = r;
  switch (d->stage) {
  case RQ_STAGE_CONNECT:
  case RQ_STAGE_TLS:
    if (d->commands == 0) d->stage = RQ_STAGE_BANNER; /* the greeting */
    break;
  case RQ_STAGE_STARTTLS:
    /* 220: the handshake comes next and has no reply of its own. */
    if (r.code == 220) {
      d->stage = RQ_STAGE_TLS;
      memset(&d->last, 0, sizeof d->last);
    }
    break;
  case RQ_STAGE_AUTH:
    if (r.code != 334) d->in_auth = 0;
    break;
  case RQ_STAGE_RCPT:
    if (d->rcpt_answered < d->n_rcpts) {
      struct rq_rcpt_reply *rr = &d->rcpts[d->rcpt_answered++];
      rr->code = r.code;
      memcpy(rr->enhanced, r.enhanced, sizeof rr->enhanced);
      rq_text_sanitize(rr->text, sizeof rr->text, r.text, strlen(r.text));
      if (r.code >= 200 && r.code < 300) d->accepted++;
    }
    break;
  case RQ_STAGE_DATA:
    /* 354: the message goes out; the next reply answers the final dot. */
    if (r.code == 354) {
      d->stage = RQ_STAGE_BODY;
      memset(&d->last, 0, sizeof d->last);
    }
    break;
  case RQ_STAGE_BODY:
    d->data_code = r.code;
    break;
  default:
    break;
  }
}

/* A line is the end of a reply when it is "NNN" or starts "NNN " (RFC 5321
 * 4.2.1); "NNN-" continues it. Lines without a code are kept as text, as
 * libcurl does. */
static int line_ends_reply(const struct rq_smtp_dialog *d) {
  const char *h = d->head;
  if (d->head_len < 3) return 0;
  for (int i = 0; i < 3; i++)
    if (h[i] < '0' || h[i] > '9') return 0;
  return d->head_len == 3 || h[3] == ' ' || h[3] == '\r' || h[3] == '\n';
}

/* Server bytes: whole lines in practice, but nothing here relies on that.
 * Memory stays bounded: an over-long reply is cut, its lines still seen. */
static void dialog_in(struct rq_smtp_dialog *d, const char *p, size_t len) {
  while (len > 0) {
    const char *nl = memchr(p, '\n', len);
    size_t seg = nl ? (size_t)(nl - p) + 1 : len;
    /* raw_len may exceed the cap by the "\r\n" a truncated line got. */
    size_t room = d->raw_len < REPLY_RAW_MAX ? REPLY_RAW_MAX - d->raw_len : 0;
    size_t take = seg < room ? seg : room;
    memcpy(d->raw + d->raw_len, p, take);
    d->raw_len += take;
    for (size_t i = 0; i < seg && d->head_len < sizeof d->head; i++) d->head[d->head_len++] = p[i];
    d->line_open = 1;
    if (nl) {
      if (take < seg && d->raw_len + 2 <= sizeof d->raw &&
          (d->raw_len == 0 || d->raw[d->raw_len - 1] != '\n')) {
        /* truncated: end the kept part as a line */
        d->raw[d->raw_len++] = '\r';
        d->raw[d->raw_len++] = '\n';
      }
      int end = line_ends_reply(d);
      d->head_len = 0;
      d->line_open = 0;
      if (end) {
        dialog_reply(d);
        d->raw_len = 0;
      }
    }
    p += seg;
    len -= seg;
  }
}

/* The CURLINFO_* types libcurl hands its debug callback. Only commands
 * (HEADER_OUT) and replies (HEADER_IN) matter; text, message data and TLS
 * records are ignored. */
static void dialog_feed(struct rq_smtp_dialog *d, curl_infotype type, const char *p, size_t len) {
  if (type == CURLINFO_HEADER_OUT) dialog_command(d, p, len);
  else if (type == CURLINFO_HEADER_IN) dialog_in(d, p, len);
}

struct rq_smtp_dialog *rq_smtp_dialog_new(size_t n_rcpts) {
  struct rq_smtp_dialog *d = rq_xmalloc(sizeof *d);
  dialog_init(d, rq_xcalloc(n_rcpts ? n_rcpts : 1, sizeof *d->rcpts), n_rcpts);
  return d;
}

void rq_smtp_dialog_feed(struct rq_smtp_dialog *d, int type, const char *data, size_t len) {
  dialog_feed(d, (curl_infotype)type, data, len);
}

void rq_smtp_dialog_result(const struct rq_smtp_dialog *d, struct rq_smtp_result *out) {
  out->stage = d->stage;
  out->code = d->last.code;
  memcpy(out->enhanced, d->last.enhanced, sizeof out->enhanced);
  memcpy(out->reply, d->last.text, sizeof out->reply);
  out->n_rcpts = d->n_rcpts;
  out->rcpts = d->rcpts;
  out->accepted = d->accepted;
  out->data_code = d->data_code;
}

int rq_smtp_dialog_in_auth(const struct rq_smtp_dialog *d) {
  return d->in_auth;
}

void rq_smtp_dialog_free(struct rq_smtp_dialog *d) {
  if (!d) return;
  free(d->rcpts);
  free(d);
}

/* ---- transfers and limiters ----------------------------------------------------- */

struct limiter;

/* One transaction. Owned by the transport from rq_smtp_send until its
 * callback has returned. The easy handle, the recipient list and errbuf
 * belong to the transfer until curluv hands the handle back. */
struct tx {
  struct rq_smtp *s;
  struct limiter *lim; /* holds a reference; NULL when unlimited */
  struct tx *qnext;    /* lim's FIFO while waiting */
  CURL *easy;
  struct curl_slist *rcpt_list;
  const char *msg; /* borrowed until the callback */
  size_t len, off;
  int implicit_tls;
  rq_smtp_cb cb;
  void *arg;
  char errbuf[CURL_ERROR_SIZE];
  struct rq_smtp_dialog d;
  struct rq_rcpt_reply rcpts[]; /* n_rcpts, d.rcpts points here */
};

/* Concurrent transactions for one key. Lives while any tx refers to it. */
struct limiter {
  struct limiter *next; /* hash chain */
  uint32_t hash;
  int max, active, refs;
  struct tx *qhead, *qtail;
  char key[];
};

struct rq_smtp {
  struct rq_curl *curl;
  CURL *pool[POOL_MAX];
  int n_pool;
  int pending;
  struct limiter **buckets;
  size_t n_buckets, n_limiters;
};

/* FNV-1a: keys are short and ours (not attacker-chosen in bulk). */
static uint32_t hash_key(const char *k) {
  uint32_t h = 2166136261u;
  for (; *k; k++) h = (h ^ (unsigned char)*k) * 16777619u;
  return h;
}

static void grow_buckets(struct rq_smtp *s) {
  size_t n = s->n_buckets * 2;
  struct limiter **b = rq_xcalloc(n, sizeof *b);
  for (size_t i = 0; i < s->n_buckets; i++) {
    struct limiter *l = s->buckets[i], *next;
    for (; l; l = next) {
      next = l->next;
      l->next = b[l->hash & (n - 1)];
      b[l->hash & (n - 1)] = l;
    }
  }
  free(s->buckets);
  s->buckets = b;
  s->n_buckets = n;
}

static struct limiter *limiter_get(struct rq_smtp *s, const char *key, int max) {
  uint32_t h = hash_key(key);
  struct limiter *l = s->buckets[h & (s->n_buckets - 1)];
  for (; l; l = l->next)
    if (l->hash == h && strcmp(l->key, key) == 0) break;
  if (!l) {
    size_t klen = strlen(key);
    l = rq_xcalloc(1, sizeof *l + klen + 1);
    memcpy(l->key, key, klen + 1);
    l->hash = h;
    l->next = s->buckets[h & (s->n_buckets - 1)];
    s->buckets[h & (s->n_buckets - 1)] = l;
    if (++s->n_limiters > 2 * s->n_buckets) grow_buckets(s);
  }
  l->max = max; /* the latest settings win (a tenant may change its limit) */
  l->refs++;
  return l;
}

static void limiter_put(struct rq_smtp *s, struct limiter *l) {
  if (--l->refs > 0) return;
  struct limiter **pp = &s->buckets[l->hash & (s->n_buckets - 1)];
  while (*pp != l) pp = &(*pp)->next;
  *pp = l->next;
  s->n_limiters--;
  free(l);
}

static void on_transfer_done(CURL *easy, CURLcode result, void *arg);

/* Returns the handle to the pool (reset, so no option or pointer of this
 * transfer survives), drops the limiter reference and frees tx. */
static void tx_free(struct tx *tx) {
  struct rq_smtp *s = tx->s;
  if (tx->easy) {
    curl_easy_reset(tx->easy);
    if (s->n_pool < POOL_MAX) s->pool[s->n_pool++] = tx->easy;
    else curl_easy_cleanup(tx->easy);
  }
  curl_slist_free_all(tx->rcpt_list);
  if (tx->lim) limiter_put(s, tx->lim);
  s->pending--;
  free(tx);
}

static int tls_error(CURLcode rc) {
  switch (rc) {
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_CRL_BADFILE:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_INVALIDCERTSTATUS:
  case CURLE_SSL_ENGINE_INITFAILED:
  case CURLE_USE_SSL_FAILED: return 1;
  default: return 0;
  }
}

/* Fills res from the dialogue and what curl knows of the transfer. */
static void tx_result(struct tx *tx, CURLcode result, struct rq_smtp_result *res) {
  memset(res, 0, sizeof *res);
  rq_smtp_dialog_result(&tx->d, res);
  res->curl_code = (int)result;
  if (result != CURLE_OK)
    snprintf(res->curl_error, sizeof res->curl_error, "%s",
             tx->errbuf[0] ? tx->errbuf : curl_easy_strerror(result));
  long connects = 0;
  double total = 0, connect_time = 0;
  curl_easy_getinfo(tx->easy, CURLINFO_NUM_CONNECTS, &connects);
  curl_easy_getinfo(tx->easy, CURLINFO_TOTAL_TIME, &total);
  curl_easy_getinfo(tx->easy, CURLINFO_CONNECT_TIME, &connect_time);
  res->seconds = total;
  res->reused_connection = connects == 0 && (tx->d.seen_reply || tx->d.commands > 0);
  if (!tx->d.seen_reply && tx->d.commands == 0 && result != CURLE_OK) {
    /* Nothing was said: the failure was before the banner. curl 7.88
     * records CONNECT_TIME for plain TCP only once connected, but with
     * implicit TLS only after the handshake, so there the error code tells
     * the handshake apart (a timeout inside it stays "connect"). */
    if (tx->implicit_tls) res->stage = tls_error(result) ? RQ_STAGE_TLS : RQ_STAGE_CONNECT;
    else res->stage = connect_time > 0 ? RQ_STAGE_BANNER : RQ_STAGE_CONNECT;
  }
  if (result == CURLE_OK && res->data_code == 0) {
    /* Cannot happen with curl 7.88 (a transaction ends after the final
     * dot's reply); say so rather than report an unanswered success. */
    long code = 0;
    curl_easy_getinfo(tx->easy, CURLINFO_RESPONSE_CODE, &code);
    res->data_code = (int)code;
  }
}

/* Runs tx's callback and frees it. */
static void tx_complete(struct tx *tx, CURLcode result) {
  struct rq_smtp_result res;
  tx_result(tx, result, &res);
  tx->cb(&res, tx->arg);
  tx_free(tx);
}

/* Starts waiting transactions while their key has room. A start that
 * fails (curluv closing) completes that transaction with an abort. */
static void limiter_pump(struct rq_smtp *s, struct limiter *l) {
  l->refs++; /* completions below must not free l under us */
  while (l->qhead && l->active < l->max) {
    struct tx *tx = l->qhead;
    l->qhead = tx->qnext;
    if (!l->qhead) l->qtail = NULL;
    tx->qnext = NULL;
    l->active++;
    if (rq_curl_add(s->curl, tx->easy, on_transfer_done, tx) != 0) {
      l->active--;
      snprintf(tx->errbuf, sizeof tx->errbuf, "The transfer could not be started (shutting down).");
      tx_complete(tx, CURLE_ABORTED_BY_CALLBACK);
    }
  }
  limiter_put(s, l);
}

static void on_transfer_done(CURL *easy, CURLcode result, void *arg) {
  struct tx *tx = arg;
  struct rq_smtp *s = tx->s;
  struct limiter *l = tx->lim;
  (void)easy;
  struct rq_smtp_result res;
  tx_result(tx, result, &res);
  /* Free the slot and start the next waiter before the callback, so that a
   * send made from the callback queues behind those already waiting. */
  if (l) {
    l->active--;
    limiter_pump(s, l);
  }
  tx->cb(&res, tx->arg);
  tx_free(tx);
}

/* ---- easy-handle options -------------------------------------------------------- */

static int debug_cb(CURL *easy, curl_infotype type, char *data, size_t size, void *userp) {
  (void)easy;
  dialog_feed(userp, type, data, size);
  return 0;
}

static size_t read_cb(char *buf, size_t size, size_t nitems, void *userp) {
  struct tx *tx = userp;
  size_t want = size * nitems, left = tx->len - tx->off;
  size_t n = want < left ? want : left;
  memcpy(buf, tx->msg + tx->off, n);
  tx->off += n;
  return n;
}

/* curl rewinds the upload when it resends on a fresh connection. */
static int seek_cb(void *userp, curl_off_t offset, int origin) {
  struct tx *tx = userp;
  if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > tx->len) return CURL_SEEKFUNC_FAIL;
  tx->off = (size_t)offset;
  return CURL_SEEKFUNC_OK;
}

/* Envelope addresses: no CR, LF or other controls, which would let a
 * value smuggle extra SMTP commands (curl 7.88 sends them as given), and
 * no angle brackets (curl adds its own). */
static int valid_address(const char *a, int allow_empty) {
  if (!a) return 0;
  size_t n = strlen(a);
  if (n == 0) return allow_empty;
  if (n > 998) return 0;
  for (const unsigned char *p = (const unsigned char *)a; *p; p++)
    if (*p < 0x20 || *p == 0x7f || *p == '<' || *p == '>') return 0;
  return 1;
}

/* An EHLO name: a domain or an address literal, nothing that could break
 * out of the URL path it travels in. */
static int valid_helo(const char *h) {
  size_t n = strlen(h);
  if (n == 0 || n > 255) return 0;
  for (const char *p = h; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '.' || *p == '-' || *p == '[' || *p == ']' || *p == ':'))
      return 0;
  return 1;
}

/* "smtp[s]://host:port[/helo]" built by curl's URL API, which validates
 * the host name (and needs IPv6 literals in brackets). */
static char *build_url(const struct rq_smtp_target *t) {
  char hostbuf[300], port[8];
  const char *host = t->host;
  char *url = NULL;
  if (strchr(host, ':') && host[0] != '[') {
    if (snprintf(hostbuf, sizeof hostbuf, "[%s]", host) >= (int)sizeof hostbuf) return NULL;
    host = hostbuf;
  }
  snprintf(port, sizeof port, "%d", t->port);
  CURLU *u = curl_url();
  if (!u) return NULL;
  if (curl_url_set(u, CURLUPART_SCHEME, t->security == RQ_SMTP_IMPLICIT_TLS ? "smtps" : "smtp", 0) ||
      curl_url_set(u, CURLUPART_HOST, host, 0) || curl_url_set(u, CURLUPART_PORT, port, 0))
    goto out;
  if (t->helo_name && *t->helo_name) {
    char path[300];
    snprintf(path, sizeof path, "/%s", t->helo_name);
    if (curl_url_set(u, CURLUPART_PATH, path, 0)) goto out;
  }
  if (curl_url_get(u, CURLUPART_URL, &url, 0)) url = NULL;
out:
  curl_url_cleanup(u);
  return url;
}

static long or_default(long v, long def) {
  return v > 0 ? v : def;
}

#define SETOPT(opt, val)                                                                     \
  do {                                                                                       \
    if (curl_easy_setopt(e, opt, val) != CURLE_OK) goto out;                                 \
  } while (0)

/* Sets every option of one transaction on tx->easy. libcurl copies the
 * strings; the recipient list, errbuf and tx stay ours until completion. */
static int configure(struct tx *tx, const struct rq_smtp_target *t, const char *mail_from) {
  CURL *e = tx->easy;
  int rc = -1;
  char *url = build_url(t);
  if (!url) return -1;
  long response_ms = or_default(t->response_timeout_ms, DEFAULT_RESPONSE_TIMEOUT_MS);
  long response_s = (response_ms + 999) / 1000;

  SETOPT(CURLOPT_URL, url);
  SETOPT(CURLOPT_PROTOCOLS_STR, "smtp,smtps");
  SETOPT(CURLOPT_NOSIGNAL, 1L);
  SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
  SETOPT(CURLOPT_CONNECTTIMEOUT_MS, or_default(t->connect_timeout_ms, DEFAULT_CONNECT_TIMEOUT_MS));
  SETOPT(CURLOPT_TIMEOUT_MS, or_default(t->timeout_ms, DEFAULT_TIMEOUT_MS));
  /* Bounds each reply, including the final-dot and QUIT replies that curl
   * waits for synchronously; the speed check is what curl consults during
   * that wait and while the message uploads. */
  SETOPT(CURLOPT_SERVER_RESPONSE_TIMEOUT, response_s);
  SETOPT(CURLOPT_LOW_SPEED_LIMIT, 1L);
  SETOPT(CURLOPT_LOW_SPEED_TIME, response_s);
  SETOPT(CURLOPT_ERRORBUFFER, tx->errbuf);

  switch (t->security) {
  case RQ_SMTP_STARTTLS_TRY: SETOPT(CURLOPT_USE_SSL, (long)CURLUSESSL_TRY); break;
  case RQ_SMTP_STARTTLS_REQUIRED:
  case RQ_SMTP_IMPLICIT_TLS: SETOPT(CURLOPT_USE_SSL, (long)CURLUSESSL_ALL); break;
  case RQ_SMTP_PLAIN: SETOPT(CURLOPT_USE_SSL, (long)CURLUSESSL_NONE); break;
  }
  if (!t->tls_verify) {
    SETOPT(CURLOPT_SSL_VERIFYPEER, 0L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (t->ca_file && *t->ca_file) SETOPT(CURLOPT_CAINFO, t->ca_file);
  if (t->user && *t->user) {
    SETOPT(CURLOPT_USERNAME, t->user);
    SETOPT(CURLOPT_PASSWORD, t->password ? t->password : "");
    SETOPT(CURLOPT_SASL_IR, 1L); /* one round trip less per login */
  }

  SETOPT(CURLOPT_MAIL_FROM, mail_from);
  SETOPT(CURLOPT_MAIL_RCPT, tx->rcpt_list);
  SETOPT(CURLOPT_MAIL_RCPT_ALLLOWFAILS, 1L);
  SETOPT(CURLOPT_UPLOAD, 1L);
  SETOPT(CURLOPT_READFUNCTION, read_cb);
  SETOPT(CURLOPT_READDATA, tx);
  SETOPT(CURLOPT_SEEKFUNCTION, seek_cb);
  SETOPT(CURLOPT_SEEKDATA, tx);
  SETOPT(CURLOPT_INFILESIZE_LARGE, (curl_off_t)tx->len);

  /* VERBOSE makes curl hand every command and reply line to debug_cb;
   * without a debug function it would print them, so set both. */
  SETOPT(CURLOPT_DEBUGFUNCTION, debug_cb);
  SETOPT(CURLOPT_DEBUGDATA, &tx->d);
  SETOPT(CURLOPT_VERBOSE, 1L);
  rc = 0;
out:
  curl_free(url);
  return rc;
}

/* ---- the transport -------------------------------------------------------------- */

struct rq_smtp *rq_smtp_new(struct rq_curl *curl) {
  struct rq_smtp *s = rq_xcalloc(1, sizeof *s);
  s->curl = curl;
  s->n_buckets = 64;
  s->buckets = rq_xcalloc(s->n_buckets, sizeof *s->buckets);
  return s;
}

int rq_smtp_pending(const struct rq_smtp *s) {
  return s->pending;
}

static int valid_target(const struct rq_smtp_target *t) {
  if (!t || !t->host || !*t->host || strlen(t->host) > 253) return 0;
  if (t->port < 1 || t->port > 65535) return 0;
  if (t->helo_name && *t->helo_name && !valid_helo(t->helo_name)) return 0;
  if (t->key && strlen(t->key) > KEY_MAX) return 0;
  return 1;
}

int rq_smtp_send(struct rq_smtp *s, const struct rq_smtp_target *t, const char *mail_from,
                 const char *const *rcpts, size_t n_rcpts, const char *msg, size_t len,
                 rq_smtp_cb cb, void *arg) {
  if (!cb || !valid_target(t) || !valid_address(mail_from, 1) || n_rcpts == 0 || !rcpts ||
      (!msg && len > 0))
    return RQ_SMTP_EINVAL;
  for (size_t i = 0; i < n_rcpts; i++)
    if (!valid_address(rcpts[i], 0)) return RQ_SMTP_EINVAL;

  struct tx *tx = rq_xcalloc(1, sizeof *tx + n_rcpts * sizeof tx->rcpts[0]);
  tx->s = s;
  tx->msg = msg ? msg : "";
  tx->len = len;
  tx->implicit_tls = t->security == RQ_SMTP_IMPLICIT_TLS;
  tx->cb = cb;
  tx->arg = arg;
  dialog_init(&tx->d, tx->rcpts, n_rcpts);
  s->pending++;
  for (size_t i = 0; i < n_rcpts; i++) {
    struct curl_slist *l = curl_slist_append(tx->rcpt_list, rcpts[i]);
    if (!l) { /* curl's own allocation failed */
      tx_free(tx);
      return RQ_SMTP_ECURL;
    }
    tx->rcpt_list = l;
  }
  tx->easy = s->n_pool > 0 ? s->pool[--s->n_pool] : curl_easy_init();
  if (!tx->easy) {
    tx_free(tx);
    return RQ_SMTP_ECURL;
  }
  if (configure(tx, t, mail_from) != 0) {
    tx_free(tx);
    return RQ_SMTP_EINVAL;
  }

  if (t->max_connections > 0) {
    char keybuf[300];
    const char *key = t->key;
    if (!key || !*key) {
      snprintf(keybuf, sizeof keybuf, "%s:%d", t->host, t->port);
      key = keybuf;
    }
    tx->lim = limiter_get(s, key, t->max_connections);
    if (tx->lim->active >= tx->lim->max || tx->lim->qhead) {
      /* Wait behind the others; the easy handle is ready to go. */
      if (tx->lim->qtail) tx->lim->qtail->qnext = tx;
      else tx->lim->qhead = tx;
      tx->lim->qtail = tx;
      return 0;
    }
    tx->lim->active++;
  }
  if (rq_curl_add(s->curl, tx->easy, on_transfer_done, tx) != 0) {
    if (tx->lim) tx->lim->active--;
    tx_free(tx);
    return RQ_SMTP_ESTART;
  }
  return 0;
}

void rq_smtp_free(struct rq_smtp *s) {
  if (!s) return;
  if (s->pending)
    rq_logf(RQ_LOG_ERROR, "The SMTP transport was freed with %d transactions pending; this is a bug.",
            s->pending);
  for (int i = 0; i < s->n_pool; i++) curl_easy_cleanup(s->pool[i]);
  for (size_t i = 0; i < s->n_buckets; i++) {
    struct limiter *l = s->buckets[i], *next;
    for (; l; l = next) {
      next = l->next;
      free(l);
    }
  }
  free(s->buckets);
  free(s);
}
