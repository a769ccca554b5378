/*
 * probe: the SMTP and Mailgun connection verifier (see probe.h).
 *
 * Three parts, top to bottom: the trace (what the worker's SMTP session
 * shows of a check, rq_smtp_check, reduced to per-stage replies and
 * timestamps), where a failure shows among the stages (its words are the
 * mail core's, as for a delivery: rq_smtp_classify_failure, rq_curl_classify,
 * rq_classify_http), and the two probes with the report printers.
 */
#include "probe.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/asn1.h>
#include <openssl/x509.h>
#include <uv.h>

#include "address.h"
#include "cert_text.h"
#include "classify.h"
#include "cli.h"
#include "curlfail.h"
#include "curlguard.h"
#include "smtp.h"

#define RAW_MAX 4096    /* bytes of one reply kept for parsing */
#define LINE_MAX_ 1024  /* bytes of one reply line kept */
#define OFFERS_MAX 300  /* the EHLO keyword summary */
#define BODY_MAX 16384  /* Mailgun answer kept */
#define CONNECT_TIMEOUT_CAP_MS 10000L

/* ---- small helpers ---------------------------------------------------------- */

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sanitize(char *dst, size_t cap, const char *src) {
  rq_text_sanitize(dst, cap, src ? src : "", src ? strlen(src) : 0);
}

void rq_probe_fail(struct rq_probe_report *r, const struct rq_class *c) {
  size_t n = strnlen(c->detail, sizeof c->detail);
  if (n > 0 && c->detail[n - 1] == '.') n--; /* the CLI's line adds its own stop */
  r->ok = 0;
  r->cls = *c;
  snprintf(r->error, sizeof r->error, "%.*s", (int)n, c->detail);
}

/* A failure of kind, seen at stage; msg (may be NULL) says what was seen.
 * Worded by the mail core's failure table, as the worker words it. */
static void fail_kind(struct rq_probe_report *r, enum rq_fail kind, enum rq_smtp_stage stage, const char *msg) {
  struct rq_class c;
  rq_classify_failure(kind, stage, NULL, msg, &c);
  rq_probe_fail(r, &c);
}

__attribute__((format(printf, 5, 6))) static struct rq_probe_stage *
add_stage(struct rq_probe_report *r, const char *name, int ok, double ms, const char *fmt, ...) {
  if (r->n_stages == RQ_PROBE_MAX_STAGES) return &r->stages[RQ_PROBE_MAX_STAGES - 1];
  struct rq_probe_stage *s = &r->stages[r->n_stages++];
  s->name = name;
  s->ok = ok;
  s->ms = ms;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->detail, sizeof s->detail, fmt, ap);
  va_end(ap);
  return s;
}

void rq_probe_note(struct rq_probe_report *r, const char *fmt, ...) {
  if (r->n_notes == RQ_PROBE_MAX_NOTES) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->notes[r->n_notes++], sizeof r->notes[0], fmt, ap);
  va_end(ap);
}

/* ---- the trace ------------------------------------------------------------------ */

/* The steps of a check, in the order they happen. */
enum tstage { T_BANNER, T_EHLO, T_STARTTLS, T_EHLO_TLS, T_AUTH, T_MAIL, T_RCPT, T__COUNT };

struct tstep {
  int seen;          /* command sent (or, for the banner, reply read) */
  int answered;      /* a final reply was read */
  double start, end; /* monotonic ms */
  struct rq_reply reply;
  char offers[OFFERS_MAX]; /* EHLO keywords, "STARTTLS, AUTH PLAIN, ..." */
};

/* Owned by rq_probe_smtp_run for one check; the session's step callback
 * fills it. Holds replies only, never what we sent (the session names our
 * commands by verb). */
struct trace {
  enum tstage cur;
  int in_auth;   /* our lines are credentials until the final AUTH reply */
  int quitting;  /* QUIT sent: its reply belongs to no stage */
  int tls_done;  /* a TLS session is up (implicit or after STARTTLS) */
  double tls_done_at;
  char tls_info[128];       /* "TLSv1.3 / TLS_AES_256_GCM_SHA384" */
  char verify_problem[128]; /* why verification would fail (checking off) */
  int offers_starttls;      /* some EHLO answer offered STARTTLS */
  struct tstep st[T__COUNT];
  char raw[RAW_MAX + 1];    /* the reply being read */
  size_t raw_len;
  char line[LINE_MAX_ + 1]; /* the line being read */
  size_t line_len;
};

static int starts(const char *p, size_t n, const char *word) {
  size_t w = strlen(word);
  return n >= w && strncasecmp(p, word, w) == 0;
}

/* One EHLO keyword line ("AUTH LOGIN PLAIN") into the step's summary. */
static void trace_offer(struct trace *t, struct tstep *s, const char *kw, size_t n) {
  char clean[128];
  rq_text_sanitize(clean, sizeof clean, kw, n);
  if (clean[0] == '\0') return;
  if (starts(clean, strlen(clean), "STARTTLS")) t->offers_starttls = 1;
  size_t used = strlen(s->offers);
  if (used + strlen(clean) + 3 >= sizeof s->offers) return; /* summary is full */
  snprintf(s->offers + used, sizeof s->offers - used, "%s%s", used ? ", " : "", clean);
}

/* A complete reply line from the server. */
static void trace_line(struct trace *t, const char *p, size_t n) {
  if (t->quitting) return;
  struct tstep *s = &t->st[t->cur];
  if (t->cur == T_BANNER) s->seen = 1;
  int final = n < 4 || p[3] != '-';
  /* EHLO: lines after the first are extension keywords. */
  if ((t->cur == T_EHLO || t->cur == T_EHLO_TLS) && t->raw_len > 0 && n > 4)
    trace_offer(t, s, p + 4, n - 4);
  size_t room = RAW_MAX - t->raw_len;
  if (t->raw_len == 0 || !(t->cur == T_EHLO || t->cur == T_EHLO_TLS)) {
    /* Keep the first line of an EHLO answer (the greeting) and every line
     * of other replies. */
    size_t take = n < room ? n : room;
    memcpy(t->raw + t->raw_len, p, take);
    t->raw_len += take;
    if (t->raw_len < RAW_MAX) t->raw[t->raw_len++] = '\n';
  }
  if (!final) return;
  struct rq_reply rep;
  rq_reply_parse(t->raw, t->raw_len, &rep);
  t->raw_len = 0;
  if (t->cur == T_AUTH && rep.code == 334) return; /* a challenge: not kept */
  if (t->cur == T_AUTH) t->in_auth = 0;
  s->reply = rep;
  s->answered = 1;
  s->end = now_ms();
}

/* A command we sent: only its verb is looked at, and nothing is kept. */
static void trace_command(struct trace *t, const char *p, size_t n) {
  if (t->in_auth) return; /* credentials (base64 can spell any verb) */
  enum tstage next;
  if (starts(p, n, "EHLO") || starts(p, n, "HELO")) next = t->tls_done && t->st[T_EHLO].seen ? T_EHLO_TLS : T_EHLO;
  else if (starts(p, n, "STARTTLS")) next = T_STARTTLS;
  else if (starts(p, n, "AUTH")) next = T_AUTH;
  else if (starts(p, n, "MAIL")) next = T_MAIL;
  else if (starts(p, n, "RCPT")) next = T_RCPT;
  else if (starts(p, n, "QUIT")) {
    t->quitting = 1;
    return;
  } else return;
  /* HELO after a refused EHLO restarts the same step. */
  t->cur = next;
  t->st[next].seen = 1;
  t->st[next].answered = 0;
  t->st[next].start = now_ms();
  t->st[next].offers[0] = '\0';
  t->raw_len = 0;
  if (next == T_AUTH) t->in_auth = 1;
}

/* A complete reply from the session: its lines, one at a time. */
static void trace_reply(struct trace *t, const char *raw, size_t len) {
  size_t i = 0;
  while (i < len) {
    size_t e = i;
    while (e < len && raw[e] != '\n') e++;
    size_t n = e - i;
    if (n > 0 && raw[i + n - 1] == '\r') n--;
    if (n > LINE_MAX_) n = LINE_MAX_;
    if (n > 0) trace_line(t, raw + i, n);
    i = e + 1;
  }
}

/* ---- where a failure shows ------------------------------------------------------ */

/* The stage of the report a failure ends: the words come from the mail
 * core (rq_probe_fail); this only says where to draw the FAIL. */
enum where { W_NONE, W_DNS, W_CONNECT, W_TLS, W_PROTO };

/* For a transfer of the HTTP transport (Mailgun); connected: TCP was up. */
static enum where where_of_kind(enum rq_fail kind, int connected) {
  switch (kind) {
  case RQ_FAIL_NONE: return W_NONE;
  case RQ_FAIL_DNS: return W_DNS;
  case RQ_FAIL_CONNECT: return W_CONNECT;
  case RQ_FAIL_TLS:
  case RQ_FAIL_TLS_CERT:
  case RQ_FAIL_TLS_MISMATCH:
  case RQ_FAIL_TLS_CLIENT_CERT:
  case RQ_FAIL_TLS_LOCAL:
  case RQ_FAIL_TLS_PIN: return W_TLS;
  default: return connected ? W_PROTO : W_CONNECT;
  }
}

/* ---- the SMTP probe --------------------------------------------------------------- */

/* A duration from two times in ms since the start; 0 when unknown. */
static double span(double from, double to) { return to > from ? to - from : 0.0; }
static double pos(double ms) { return ms > 0 ? ms : 0.0; }

/* Subject, issuer and expiry of the server's certificate; the days it
 * has left into *days (INT32_MIN: unknown). */
static void read_cert(X509 *cert, struct rq_probe_report *r, long *days) {
  *days = INT32_MIN;
  if (cert == NULL) return;
  cert_name_text(X509_get_subject_name(cert), r->cert_subject, sizeof r->cert_subject);
  cert_name_text(X509_get_issuer_name(cert), r->cert_issuer, sizeof r->cert_issuer);
  const ASN1_TIME *until = X509_get0_notAfter(cert);
  cert_time_text(until, r->cert_expire, sizeof r->cert_expire);
  int d = 0, sec = 0;
  if (ASN1_TIME_diff(&d, &sec, NULL, until) == 1) *days = d;
  r->have_cert = r->cert_subject[0] != '\0';
}

static int pinned(const struct rq_probe_smtp *o) {
  return o->tls_pin && o->tls_pin[0];
}

static void cert_verdict(const struct trace *t, const struct rq_probe_smtp *o, long days, struct rq_probe_report *r) {
  if (!r->have_cert) return;
  if (pinned(o) && r->ok)
    snprintf(r->cert_verify, sizeof r->cert_verify, "trusted by its key (smtp_tls_pin)");
  else if (pinned(o))
    snprintf(r->cert_verify, sizeof r->cert_verify, "not the key in smtp_tls_pin");
  else if (o->tls_verify)
    snprintf(r->cert_verify, sizeof r->cert_verify, "verified");
  else if (t->verify_problem[0] && strncmp(t->verify_problem, "ok", 2) != 0)
    snprintf(r->cert_verify, sizeof r->cert_verify, "not checked (smtp_tls_verify=0); it would fail: %s",
             t->verify_problem);
  else
    snprintf(r->cert_verify, sizeof r->cert_verify, "valid, though not checked (smtp_tls_verify=0)");
  if (days != INT32_MIN && days >= 0 && days < 14)
    rq_probe_note(r, "the server's certificate expires in %ld day%s", days, days == 1 ? "" : "s");
}

/* The steps the check went through, from the trace; `fail` is the
 * protocol step that failed (T__COUNT: none). */
static void add_proto_stages(struct rq_probe_report *r, const struct trace *t, double banner_from,
                             enum tstage fail, const char *fail_detail) {
  static const char *names[T__COUNT] = {"banner", "EHLO", "STARTTLS", "EHLO (TLS)", "AUTH", "MAIL FROM", "RCPT TO"};
  for (int i = 0; i < T__COUNT; i++) {
    const struct tstep *s = &t->st[i];
    if (!s->seen && i != (int)fail) continue;
    double start = i == T_BANNER ? banner_from : s->start;
    double end = s->answered ? s->end : now_ms();
    if (i == T_STARTTLS && t->tls_done_at > 0 && t->tls_done_at > end) end = t->tls_done_at;
    char detail[400] = "";
    if (s->answered) {
      snprintf(detail, sizeof detail, "%d%s%s%s%s", s->reply.code, s->reply.enhanced[0] ? " " : "",
               s->reply.enhanced, s->reply.text[0] ? " " : "", s->reply.text);
      if ((i == T_EHLO || i == T_EHLO_TLS) && s->offers[0]) {
        size_t used = strlen(detail);
        snprintf(detail + used, sizeof detail - used, "; offers %s", s->offers);
      }
      if (i == T_STARTTLS && t->tls_info[0]) {
        size_t used = strlen(detail);
        snprintf(detail + used, sizeof detail - used, "; %s", t->tls_info);
      }
    } else {
      snprintf(detail, sizeof detail, "no answer");
    }
    int ok = i != (int)fail;
    if (!ok && fail_detail && fail_detail[0]) {
      size_t used = strlen(detail);
      snprintf(detail + used, sizeof detail - used, "%s%s", used ? "; " : "", fail_detail);
    }
    add_stage(r, names[i], ok, start > 0 ? end - start : -1, "%s", detail);
    if (!ok) return;
  }
}

static void describe_target(const struct rq_probe_smtp *o, struct rq_probe_report *r) {
  char raw[sizeof r->target];
  int login = o->user && o->user[0];
  snprintf(raw, sizeof raw, "smtp %s:%d (%s, %s%s, smtp_tls_verify=%d)", o->host, o->port,
           rq_security_name(o->security), login ? "user " : "no login", login ? o->user : "", o->tls_verify);
  sanitize(r->target, sizeof r->target, raw);
}

/* What libcurl (Mailgun) or the session (SMTP) measured of the
 * connection, in ms since the start (0: not reached); ip borrowed. */
struct timing {
  double dns_ms, conn_ms, app_ms;
  const char *ip;
};

static void read_timing(CURL *h, struct timing *tm) {
  char *ip = NULL;
  curl_off_t dns = 0, conn = 0, app = 0;
  memset(tm, 0, sizeof *tm);
  curl_easy_getinfo(h, CURLINFO_NAMELOOKUP_TIME_T, &dns);
  curl_easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &conn);
  curl_easy_getinfo(h, CURLINFO_APPCONNECT_TIME_T, &app);
  tm->dns_ms = (double)dns / 1000.0;
  tm->conn_ms = (double)conn / 1000.0;
  tm->app_ms = (double)app / 1000.0;
  curl_easy_getinfo(h, CURLINFO_PRIMARY_IP, &ip);
  tm->ip = ip && ip[0] ? ip : NULL;
}

/* DNS, TCP connect and (implicit) TLS stages from the measured times.
 * Returns 0 to go on with the protocol steps (*banner_from: when the
 * banner could start, monotonic ms), -1 when one of these failed. */
static int transport_stages(struct rq_probe_report *r, const struct rq_probe_smtp *o, const struct trace *t,
                            const struct timing *tm, enum where w, const char *errbuf, double t0,
                            double *banner_from) {
  const char *addr = tm->ip ? tm->ip : o->host;
  if (w == W_DNS) {
    add_stage(r, "DNS", 0, pos(tm->dns_ms), "%s: %s", o->host, errbuf[0] ? errbuf : "not found");
    return -1;
  }
  if (tm->ip) add_stage(r, "DNS", 1, pos(tm->dns_ms), "%s -> %s", o->host, tm->ip);
  else add_stage(r, "DNS", 1, pos(tm->dns_ms), "%s", o->host);
  if (w == W_CONNECT) {
    add_stage(r, "TCP connect", 0, tm->conn_ms > 0 ? span(tm->dns_ms, tm->conn_ms) : -1, "%s port %d: %s", addr,
              o->port, errbuf[0] ? errbuf : "failed");
    return -1;
  }
  add_stage(r, "TCP connect", 1, span(tm->dns_ms, tm->conn_ms), "%s port %d", addr, o->port);
  *banner_from = t0 + pos(tm->conn_ms);
  if (o->security != RQ_SEC_TLS) return 0;
  if (w == W_TLS) {
    add_stage(r, "TLS", 0, tm->app_ms > tm->conn_ms ? span(tm->conn_ms, tm->app_ms) : -1, "%s",
              errbuf[0] ? errbuf : "handshake failed");
    return -1;
  }
  add_stage(r, "TLS", 1, span(tm->conn_ms, tm->app_ms), "%s", t->tls_info[0] ? t->tls_info : "handshake done");
  *banner_from = t0 + pos(tm->app_ms);
  return 0;
}

/* A login was configured but the server never offered AUTH: in saas a
 * worker sends nothing there, in onprem nothing logged in. */
static void auth_not_offered(struct rq_probe_report *r, const struct rq_probe_smtp *o, const struct trace *t) {
  add_stage(r, "AUTH", 0, -1, "not offered by the server");
  fail_kind(r, RQ_FAIL_AUTH_NO_MECH, RQ_STAGE_AUTH,
            o->security == RQ_SEC_NONE && t->offers_starttls
                ? "it offers AUTH only after STARTTLS: set smtp_security=starttls"
                : "it offers no AUTH at all; without smtp_user nothing asks for one");
}

/* One check on a private loop: what the session reported. */
struct check {
  struct trace t;
  double t0, connected_at, tls_at, dns_ms;
  char peer[80];
  X509 *cert;        /* held (X509_up_ref) until the report is done */
  int done, closed;
  int err, stage;
  char errmsg[256];
  struct rq_class cls; /* the worker's reading of the failure (err != 0) */
};

static void on_step(const struct rq_smtp_step *st, void *arg) {
  struct check *c = arg;
  switch (st->kind) {
  case RQ_SMTP_STEP_CONNECTED:
    c->connected_at = now_ms();
    c->dns_ms = st->dns_ms;
    snprintf(c->peer, sizeof c->peer, "%s", st->peer ? st->peer : "");
    break;
  case RQ_SMTP_STEP_TLS:
    c->t.tls_done = 1;
    c->t.tls_done_at = c->tls_at = now_ms();
    sanitize(c->t.tls_info, sizeof c->t.tls_info, st->tls);
    sanitize(c->t.verify_problem, sizeof c->t.verify_problem,
             st->verify == X509_V_OK ? "ok" : X509_verify_cert_error_string(st->verify));
    if (st->cert && c->cert == NULL && X509_up_ref(st->cert) == 1) c->cert = st->cert;
    break;
  case RQ_SMTP_STEP_COMMAND: trace_command(&c->t, st->verb, strlen(st->verb)); break;
  case RQ_SMTP_STEP_REPLY: trace_reply(&c->t, st->raw, st->len); break;
  }
}

static void on_checked(const struct rq_smtp_result *res, void *arg) {
  struct check *c = arg;
  c->done = 1;
  c->err = res->err;
  c->stage = res->stage;
  snprintf(c->errmsg, sizeof c->errmsg, "%s", res->errmsg);
  size_t n = strlen(c->errmsg);
  if (n > 0 && c->errmsg[n - 1] == '.') c->errmsg[n - 1] = '\0'; /* stage details carry no stop */
  if (res->err != RQ_SMTP_ERR_OK) rq_smtp_classify_failure(res, &c->cls);
}

static void on_closed(void *arg) { ((struct check *)arg)->closed = 1; }

/* Runs the check (the worker's session, rq_smtp_check) to its end.
 * Returns 0, or -1 when it could not start (r says why). */
static int run_check(const struct rq_probe_smtp *o, long timeout_ms, struct check *c, struct rq_probe_report *r) {
  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0) {
    fail_kind(r, RQ_FAIL_OTHER, RQ_STAGE_CONNECT, "cannot start an event loop");
    return -1;
  }
  struct rq_smtp *s = rq_smtp_new_loop(&loop);
  const char *secret = o->bearer ? o->bearer : o->password;
  struct rq_smtp_target t = {
      .host = o->host,
      .port = o->port,
      .security = o->security == RQ_SEC_TLS    ? RQ_SMTP_IMPLICIT_TLS
                  : o->security == RQ_SEC_NONE ? RQ_SMTP_PLAIN
                                               : RQ_SMTP_STARTTLS_REQUIRED,
      .user = o->user,
      .password = secret,
      .xoauth2 = o->bearer != NULL,
      .tls_verify = o->tls_verify,
      .ca_file = o->ca_file,
      .connect_timeout_ms = timeout_ms < CONNECT_TIMEOUT_CAP_MS ? timeout_ms : CONNECT_TIMEOUT_CAP_MS,
      .response_timeout_ms = timeout_ms,
      .timeout_ms = timeout_ms,
      .netpolicy = o->netpolicy,
      .tls_pin = o->tls_pin, /* then the key is the trust anchor, as in the worker */
  };
  const char *rcpts[1] = {o->rcpt};
  int rcpt = o->rcpt && o->rcpt[0];
  c->t0 = now_ms();
  int rc = s ? rq_smtp_check(s, &t, rcpt ? RQ_SMTP_UNTIL_RCPT : RQ_SMTP_UNTIL_AUTH, o->mail_from ? o->mail_from : "",
                             rcpts, rcpt ? 1 : 0, on_step, on_checked, c)
             : RQ_SMTP_ESTART;
  if (rc == 0) {
    while (!c->done && uv_run(&loop, UV_RUN_ONCE) != 0) {
    }
  } else {
    fail_kind(r, RQ_FAIL_CONFIG, RQ_STAGE_CONNECT,
              rcpt ? "the MAIL FROM or RCPT TO address is not a plain address; nothing was sent"
                   : "the check could not start");
  }
  if (s) rq_smtp_close(s, on_closed, c);
  while (!c->closed && uv_run(&loop, UV_RUN_ONCE) != 0) {
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop) != 0) fprintf(stderr, "relayq: warning: the event loop did not close cleanly.\n");
  return rc == 0 ? 0 : -1;
}

/* Where the session's failure shows in the stages; *fail_step is the
 * protocol step when that is W_PROTO. */
static enum where where_failed(const struct rq_probe_smtp *o, const struct check *c, enum tstage *fail_step) {
  const struct trace *t = &c->t;
  *fail_step = t->cur;
  switch (c->err) {
  case RQ_SMTP_ERR_DNS: return W_DNS;
  case RQ_SMTP_ERR_CONNECT: return W_CONNECT;
  case RQ_SMTP_ERR_TIMEOUT:
    if (c->connected_at == 0) return W_CONNECT;
    if (o->security == RQ_SEC_TLS && !t->tls_done) return W_TLS;
    if (!t->st[T_BANNER].answered) *fail_step = T_BANNER;
    return W_PROTO;
  case RQ_SMTP_ERR_TLS_CERT:
  case RQ_SMTP_ERR_TLS:
  case RQ_SMTP_ERR_TLS_MISMATCH:
  case RQ_SMTP_ERR_TLS_PIN:
  case RQ_SMTP_ERR_TLS_LOCAL:
    if (o->security == RQ_SEC_TLS) return W_TLS;
    *fail_step = T_STARTTLS; /* the handshake belongs to the STARTTLS step */
    return W_PROTO;
  case RQ_SMTP_ERR_NO_STARTTLS:
    *fail_step = t->st[T_STARTTLS].answered ? T_STARTTLS : T_EHLO;
    return W_PROTO;
  case RQ_SMTP_ERR_AUTH: *fail_step = T_AUTH; return W_PROTO;
  case RQ_SMTP_ERR_REJECTED:
    if (c->stage == RQ_STAGE_RCPT || t->cur == T_RCPT) *fail_step = T_RCPT;
    else if (c->stage == RQ_STAGE_MAIL || t->cur == T_MAIL) *fail_step = T_MAIL;
    return W_PROTO;
  default: return c->connected_at == 0 ? W_CONNECT : W_PROTO;
  }
}

/* What the probe knows and the worker's words cannot: which setting a
 * silent greeting points at. */
static void hint(struct rq_probe_report *r, const struct rq_probe_smtp *o, const struct check *c, enum where w,
                 enum tstage fail_step) {
  if (c->err == RQ_SMTP_ERR_TIMEOUT && w == W_PROTO && fail_step == T_BANNER && o->security != RQ_SEC_TLS)
    rq_probe_note(r, "no SMTP greeting came: if the server uses implicit TLS (usually port 465), set "
                     "smtp_security=tls");
  else if (c->err == RQ_SMTP_ERR_TIMEOUT && w == W_TLS)
    rq_probe_note(r, "no TLS handshake: if the port starts in plain text (587, 25), set smtp_security=starttls");
}

int rq_probe_smtp_run(const struct rq_probe_smtp *o, struct rq_probe_report *r) {
  memset(r, 0, sizeof *r);
  r->ok = 1;
  if (o->host == NULL || o->host[0] == '\0' || o->port < 1 || o->port > 65535) {
    snprintf(r->target, sizeof r->target, "smtp (no server)");
    fail_kind(r, RQ_FAIL_CONFIG, RQ_STAGE_CONNECT, "no SMTP server to check: set smtp_host (or smtp_preset) and smtp_port");
    return -1;
  }
  describe_target(o, r);
  long timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : RQ_PROBE_DEFAULT_TIMEOUT_MS;
  struct check *c = calloc(1, sizeof *c);
  if (c == NULL) {
    fail_kind(r, RQ_FAIL_OTHER, RQ_STAGE_CONNECT, "out of memory starting the check");
    return -1;
  }
  long days = INT32_MIN;
  if (run_check(o, timeout_ms, c, r) != 0) goto done;
  read_cert(c->cert, r, &days);
  if (c->err == RQ_SMTP_ERR_POLICY && c->connected_at == 0) {
    /* The saas boundary refused every address (or the host as written):
     * nothing was connected, and the report says so as a worker would. */
    add_stage(r, "network boundary", 0, -1, "refused (--mode saas)");
    rq_probe_fail(r, &c->cls);
    goto done;
  }
  enum where w = W_NONE;
  enum tstage fail_step = T__COUNT;
  if (c->err != 0) {
    w = where_failed(o, c, &fail_step);
    rq_probe_fail(r, &c->cls);
    hint(r, o, c, w, fail_step);
  }
  struct timing tm = {0};
  double dns = c->dns_ms > 0 ? c->dns_ms : 0;
  tm.dns_ms = dns;
  tm.conn_ms = c->connected_at > 0 ? c->connected_at - c->t0 : 0;
  tm.app_ms = c->tls_at > 0 && o->security == RQ_SEC_TLS ? c->tls_at - c->t0 : 0;
  tm.ip = c->peer[0] ? c->peer : NULL;
  double banner_from = 0;
  const char *why = c->errmsg;
  if (transport_stages(r, o, &c->t, &tm, w, why, c->t0, &banner_from) != 0) goto done;
  if (w == W_PROTO) {
    char detail[300] = "";
    if (fail_step == T_STARTTLS && c->t.st[T_STARTTLS].answered && c->t.st[T_STARTTLS].reply.code == 220)
      snprintf(detail, sizeof detail, "handshake failed: %s", why);
    else if (fail_step == T_EHLO && c->err == RQ_SMTP_ERR_NO_STARTTLS)
      snprintf(detail, sizeof detail, "STARTTLS not offered");
    add_proto_stages(r, &c->t, banner_from, fail_step, detail);
    goto done;
  }
  add_proto_stages(r, &c->t, banner_from, T__COUNT, NULL);
  if (o->user && o->user[0] && !c->t.st[T_AUTH].seen) auth_not_offered(r, o, &c->t);

done:
  cert_verdict(&c->t, o, days, r);
  r->total_ms = c->t0 > 0 ? now_ms() - c->t0 : 0;
  X509_free(c->cert);
  free(c);
  return r->ok ? 0 : -1;
}

/* Subject, issuer and expiry of the first certificate libcurl saw
 * (Mailgun). */
static void read_certinfo(CURL *h, struct rq_probe_report *r) {
  struct curl_certinfo *ci = NULL;
  if (curl_easy_getinfo(h, CURLINFO_CERTINFO, &ci) != CURLE_OK || ci == NULL || ci->num_of_certs < 1) return;
  for (struct curl_slist *s = ci->certinfo[0]; s != NULL; s = s->next) {
    const char *d = s->data;
    if (strncmp(d, "Subject:", 8) == 0) sanitize(r->cert_subject, sizeof r->cert_subject, d + 8);
    else if (strncmp(d, "Issuer:", 7) == 0) sanitize(r->cert_issuer, sizeof r->cert_issuer, d + 7);
    else if (strncmp(d, "Expire date:", 12) == 0) sanitize(r->cert_expire, sizeof r->cert_expire, d + 12);
  }
  r->have_cert = r->cert_subject[0] != '\0';
}

/* libcurl's saas boundary refused every address (or the host as
 * written): nothing was connected, and the report says so as a worker
 * would. */
static int boundary_refused(struct rq_probe_report *r, const struct rq_curl_guard *g, CURLcode rc) {
  if (!g->refused || rc == CURLE_OK) return 0;
  add_stage(r, "network boundary", 0, -1, "refused (--mode saas)");
  fail_kind(r, RQ_FAIL_POLICY, RQ_STAGE_CONNECT, g->why);
  return 1;
}

/* ---- the Mailgun probe -------------------------------------------------------------- */

struct body {
  char data[BODY_MAX + 1];
  size_t len;
};

static size_t body_cb(char *p, size_t size, size_t n, void *arg) {
  struct body *b = arg;
  size_t len = size * n, room = BODY_MAX - b->len;
  size_t take = len < room ? len : room; /* the rest is dropped, not an error */
  memcpy(b->data + b->len, p, take);
  b->len += take;
  b->data[b->len] = '\0';
  return len;
}

/* The authenticated GET; b receives the (bounded) body. */
static void mailgun_options(CURL *h, const struct rq_probe_mailgun *o, const char *url, long timeout_ms,
                            char *errbuf, struct body *b) {
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                   timeout_ms < CONNECT_TIMEOUT_CAP_MS ? timeout_ms : CONNECT_TIMEOUT_CAP_MS);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_CERTINFO, 1L);
  curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
  curl_easy_setopt(h, CURLOPT_USERNAME, "api");
  curl_easy_setopt(h, CURLOPT_PASSWORD, o->api_key);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "relayq/" RELAYQ_VERSION);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_cb);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
  if (o->ca_file && o->ca_file[0]) curl_easy_setopt(h, CURLOPT_CAINFO, o->ca_file);
}

/* Host and port of url (the port from the scheme when absent). */
static void url_host_port(const char *url, char *host, size_t cap, int *port) {
  CURLU *u = curl_url();
  char *h = NULL, *p = NULL;
  snprintf(host, cap, "?");
  *port = 0;
  if (u != NULL && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK) {
    if (curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK) snprintf(host, cap, "%s", h);
    if (curl_url_get(u, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT) == CURLUE_OK) *port = atoi(p);
  }
  curl_free(h);
  curl_free(p);
  curl_url_cleanup(u);
}

int rq_probe_mailgun_run(const struct rq_probe_mailgun *o, struct rq_probe_report *r) {
  char url[2600], errbuf[CURL_ERROR_SIZE] = "", raw[sizeof r->target], hn[256];
  struct body *b = NULL;
  CURL *h = NULL;
  int port = 0;
  memset(r, 0, sizeof *r);
  r->ok = 1;
  snprintf(raw, sizeof raw, "mailgun %s domain %s", o->base_url ? o->base_url : "?", o->domain ? o->domain : "?");
  sanitize(r->target, sizeof r->target, raw);
  long timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : RQ_PROBE_DEFAULT_TIMEOUT_MS;
  if (!o->base_url || !o->domain || !o->domain[0] || !o->api_key || !o->api_key[0]) {
    fail_kind(r, RQ_FAIL_CONFIG, RQ_STAGE_CONNECT, "gateway mailgun needs mailgun_domain and mailgun_api_key");
    return -1;
  }
  if ((b = calloc(1, sizeof *b)) == NULL || (h = curl_easy_init()) == NULL) {
    free(b);
    fail_kind(r, RQ_FAIL_OTHER, RQ_STAGE_CONNECT, "out of memory starting the check");
    return -1;
  }
  char *dom = curl_easy_escape(h, o->domain, 0);
  snprintf(url, sizeof url, "%s/v3/domains/%s", o->base_url, dom ? dom : "");
  curl_free(dom);
  url_host_port(url, hn, sizeof hn, &port);
  mailgun_options(h, o, url, timeout_ms, errbuf, b);
  struct rq_curl_guard guard;
  rq_curl_guard_install(h, &guard, o->netpolicy, url);

  double t0 = now_ms();
  CURLcode rc = curl_easy_perform(h);
  if (boundary_refused(r, &guard, rc)) goto done;
  struct timing tm;
  curl_off_t total_us = 0; /* libcurl's unit */
  long status = 0;
  read_timing(h, &tm);
  curl_easy_getinfo(h, CURLINFO_TOTAL_TIME_T, &total_us);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  read_certinfo(h, r);
  int https = strncasecmp(o->base_url, "https://", 8) == 0;
  const char *addr = tm.ip ? tm.ip : hn;

  enum where w = W_NONE;
  if (rc != CURLE_OK) {
    struct rq_class cls;
    rq_curl_classify(rc, errbuf, RQ_STAGE_CONNECT, &cls); /* as the worker's delivery reads a Mailgun transfer */
    rq_probe_fail(r, &cls);
    w = where_of_kind(rq_curl_fail(rc, errbuf), tm.conn_ms > 0);
  }
  if (w == W_DNS) {
    add_stage(r, "DNS", 0, pos(tm.dns_ms), "%s: %s", hn, errbuf[0] ? errbuf : "not found");
    goto done;
  }
  add_stage(r, "DNS", 1, pos(tm.dns_ms), "%s -> %s", hn, addr);
  if (w == W_CONNECT) {
    add_stage(r, "TCP connect", 0, -1, "%s port %d: %s", addr, port, errbuf[0] ? errbuf : "failed");
    goto done;
  }
  add_stage(r, "TCP connect", 1, span(tm.dns_ms, tm.conn_ms), "%s port %d", addr, port);
  if (https) {
    if (w == W_TLS) {
      add_stage(r, "TLS", 0, -1, "%s", errbuf[0] ? errbuf : "handshake failed");
      goto done;
    }
    add_stage(r, "TLS", 1, span(tm.conn_ms, tm.app_ms), "handshake done");
    if (r->have_cert) snprintf(r->cert_verify, sizeof r->cert_verify, "verified");
  }
  double http_ms = span(https ? tm.app_ms : tm.conn_ms, (double)total_us / 1000.0);
  if (w != W_NONE) {
    add_stage(r, "HTTP", 0, http_ms, "GET /v3/domains/%s: %s", o->domain, errbuf[0] ? errbuf : "failed");
    goto done;
  }
  int ok = status >= 200 && status < 300;
  add_stage(r, "HTTP", ok, http_ms, "GET /v3/domains/%s: %ld", o->domain, status);
  if (!ok) {
    struct rq_class cls;
    rq_classify_http(status, b->data, b->len, NULL, relayq_now_ms(), &cls);
    rq_probe_fail(r, &cls);
  }

done:
  r->total_ms = now_ms() - t0;
  curl_easy_cleanup(h);
  free(b);
  return r->ok ? 0 : -1;
}

/* ---- printing ----------------------------------------------------------------------- */

void rq_probe_print(FILE *f, const struct rq_probe_report *r) {
  fprintf(f, "Checking %s\n", r->target);
  for (size_t i = 0; i < r->n_stages; i++) {
    const struct rq_probe_stage *s = &r->stages[i];
    char ms[32] = "";
    if (s->ms >= 0) snprintf(ms, sizeof ms, "%.1f ms", s->ms);
    fprintf(f, "  %-4s  %-11s %10s  %s\n", s->ok ? "ok" : "FAIL", s->name, ms, s->detail);
  }
  if (r->have_cert) {
    fprintf(f, "  certificate: subject %s\n", r->cert_subject);
    fprintf(f, "               issuer  %s\n", r->cert_issuer);
    fprintf(f, "               expires %s%s%s%s\n", r->cert_expire[0] ? r->cert_expire : "?",
            r->cert_verify[0] ? " (" : "", r->cert_verify, r->cert_verify[0] ? ")" : "");
  }
  for (size_t i = 0; i < r->n_notes; i++) fprintf(f, "  note: %s\n", r->notes[i]);
  if (r->ok)
    fprintf(f, "Result: ok (%.0f ms)\n", r->total_ms);
  else
    fprintf(f, "Result: FAILED (%.0f ms): %s\n", r->total_ms, r->error);
}

static void json_kv(FILE *f, const char *k, const char *v, int comma) {
  cli_json_string(f, k);
  fputc(':', f);
  if (v) cli_json_string(f, v);
  else fputs("null", f);
  if (comma) fputc(',', f);
}

void rq_probe_print_json(FILE *f, const struct rq_probe_report *r) {
  fputc('{', f);
  fprintf(f, "\"ok\":%s,", r->ok ? "true" : "false");
  json_kv(f, "target", r->target, 1);
  fprintf(f, "\"total_ms\":%.1f,\"stages\":[", r->total_ms);
  for (size_t i = 0; i < r->n_stages; i++) {
    const struct rq_probe_stage *s = &r->stages[i];
    fprintf(f, "%s{", i ? "," : "");
    json_kv(f, "name", s->name, 1);
    fprintf(f, "\"ok\":%s,", s->ok ? "true" : "false");
    if (s->ms >= 0) fprintf(f, "\"ms\":%.1f,", s->ms);
    else fputs("\"ms\":null,", f);
    json_kv(f, "detail", s->detail, 0);
    fputc('}', f);
  }
  fputs("],\"certificate\":", f);
  if (r->have_cert) {
    fputc('{', f);
    json_kv(f, "subject", r->cert_subject, 1);
    json_kv(f, "issuer", r->cert_issuer, 1);
    json_kv(f, "expires", r->cert_expire, 1);
    json_kv(f, "verify", r->cert_verify, 0);
    fputc('}', f);
  } else {
    fputs("null", f);
  }
  fputs(",\"notes\":[", f);
  for (size_t i = 0; i < r->n_notes; i++) {
    if (i) fputc(',', f);
    cli_json_string(f, r->notes[i]);
  }
  fputs("],", f);
  json_kv(f, "category", r->ok ? NULL : rq_errcat_name(r->cls.error), 1);
  json_kv(f, "verdict", r->ok ? NULL : rq_verdict_name(r->cls.verdict), 1);
  json_kv(f, "error", r->ok ? NULL : r->error, 0);
  fputs("}\n", f);
}
