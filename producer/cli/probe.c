/*
 * probe: the SMTP and Mailgun connection verifier (see probe.h).
 *
 * Three parts, top to bottom: the trace (what libcurl's debug callback
 * shows of the session set-up, reduced to per-stage replies and
 * timestamps), the explanation of failures in plain words, and the two
 * probes with the report printers.
 */
#include "probe.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "address.h"
#include "classify.h"
#include "cli.h"
#include "curlguard.h"

#define RAW_MAX 4096    /* bytes of one reply kept for parsing */
#define LINE_MAX_ 1024  /* bytes of one reply line kept */
#define OFFERS_MAX 300  /* the EHLO keyword summary */
#define BODY_MAX 16384  /* Mailgun answer kept */
#define CONNECT_TIMEOUT_CAP_MS 10000L
#define CMD_MAX 600     /* "RCPT TO:<address>" with a 254-byte address */

/* ---- small helpers ---------------------------------------------------------- */

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sanitize(char *dst, size_t cap, const char *src) {
  rq_text_sanitize(dst, cap, src ? src : "", src ? strlen(src) : 0);
}

/* Trims the line end curl leaves on its info texts. */
static void chomp(char *s) {
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ')) s[--n] = '\0';
}

__attribute__((format(printf, 2, 3))) static void set_error(struct rq_probe_report *r,
                                                            const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->error, sizeof r->error, fmt, ap);
  va_end(ap);
  r->ok = 0;
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

/* "host:port" with an IPv6 literal kept in its brackets. */
static void host_port(char *out, size_t cap, const char *host, int port) {
  snprintf(out, cap, "%s:%d", host, port);
}

/* ---- the trace ------------------------------------------------------------------ */

/* The session set-up stages libcurl runs before CONNECT_ONLY stops it. */
enum tstage { T_BANNER, T_EHLO, T_STARTTLS, T_EHLO_TLS, T_AUTH, T__COUNT };

struct tstep {
  int seen;          /* command sent (or, for the banner, reply read) */
  int answered;      /* a final reply was read */
  double start, end; /* monotonic ms */
  struct rq_reply reply;
  char offers[OFFERS_MAX]; /* EHLO keywords, "STARTTLS, AUTH PLAIN, ..." */
};

/* Owned by rq_probe_smtp_run for one transfer and freed after
 * curl_easy_cleanup (which may still report the QUIT); the debug callback
 * gets it through CURLOPT_DEBUGDATA. Holds replies only, never what we
 * sent. */
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

static void trace_text(struct trace *t, const char *p, size_t n) {
  char msg[256];
  size_t take = n < sizeof msg - 1 ? n : sizeof msg - 1;
  memcpy(msg, p, take);
  msg[take] = '\0';
  chomp(msg);
  const char *m = msg, *k;
  while (*m == ' ') m++; /* curl indents the certificate lines */
  if ((k = "SSL connection using "), strncmp(m, k, strlen(k)) == 0) {
    sanitize(t->tls_info, sizeof t->tls_info, m + strlen(k));
    t->tls_done = 1;
    t->tls_done_at = now_ms();
  } else if ((k = "SSL certificate verify result: "), strncmp(m, k, strlen(k)) == 0) {
    char *end = strstr(msg, ", continuing anyway");
    if (end) *end = '\0';
    sanitize(t->verify_problem, sizeof t->verify_problem, m + strlen(k));
  }
}

/* CURLOPT_DEBUGFUNCTION. Replies arrive as HEADER_IN, possibly several
 * lines or part of one per call; our commands as HEADER_OUT. */
static int debug_cb(CURL *h, curl_infotype type, char *data, size_t size, void *arg) {
  struct trace *t = arg;
  (void)h;
  if (type == CURLINFO_TEXT) {
    trace_text(t, data, size);
  } else if (type == CURLINFO_HEADER_OUT) {
    trace_command(t, data, size);
  } else if (type == CURLINFO_HEADER_IN) {
    for (size_t i = 0; i < size; i++) {
      char c = data[i];
      if (c == '\n') {
        size_t n = t->line_len;
        if (n > 0 && t->line[n - 1] == '\r') n--;
        trace_line(t, t->line, n);
        t->line_len = 0;
      } else if (t->line_len < LINE_MAX_) {
        t->line[t->line_len++] = c; /* the rest of an overlong line is dropped */
      }
    }
  }
  return 0;
}

/* ---- failures in plain words ---------------------------------------------------- */

void rq_probe_explain_cert(const char *curl_error, const char *host, char *out, size_t cap) {
  const char *e = curl_error ? curl_error : "";
  if (strstr(e, "self-signed certificate in certificate chain") || strstr(e, "self signed certificate in certificate chain"))
    snprintf(out, cap, "TLS: the server's certificate chain ends in a self-signed root that is not trusted and "
                       "smtp_tls_verify=1: install a certificate from a public authority, pass its CA with "
                       "--ca-file, or set smtp_tls_verify=0");
  else if (strstr(e, "self-signed") || strstr(e, "self signed"))
    snprintf(out, cap, "TLS: the server's certificate is self-signed and smtp_tls_verify=1: install a trusted "
                       "certificate or set smtp_tls_verify=0");
  else if (strstr(e, "has expired") || strstr(e, "expired"))
    snprintf(out, cap, "TLS: the server's certificate has expired: renew it on the server (or set "
                       "smtp_tls_verify=0 meanwhile)");
  else if (strstr(e, "not yet valid"))
    snprintf(out, cap, "TLS: the server's certificate is not valid yet: check the clocks of the server and "
                       "this machine");
  else if (strstr(e, "unable to get local issuer") || strstr(e, "unable to get issuer") ||
           strstr(e, "unable to verify the first certificate"))
    snprintf(out, cap, "TLS: the server's certificate is signed by an authority this machine does not trust "
                       "and smtp_tls_verify=1: install the full certificate chain on the server, pass the CA "
                       "with --ca-file (RELAYQ_CA_FILE), or set smtp_tls_verify=0");
  else if (strstr(e, "subject name") || strstr(e, "does not match") || strstr(e, "hostname"))
    snprintf(out, cap, "TLS: the server's certificate is not issued for %s: set smtp_host to a name the "
                       "certificate lists, or set smtp_tls_verify=0",
             host);
  else
    snprintf(out, cap, "TLS: the server's certificate was not accepted (%s): fix it on the server or set "
                       "smtp_tls_verify=0",
             e[0] ? e : "verification failed");
}

/* What failed, for the report's stages. */
enum where { W_NONE, W_DNS, W_CONNECT, W_TLS, W_PROTO };

/*
 * Explains a libcurl failure that happened before any protocol reply
 * mattered (DNS, connect, TLS, timeouts, dropped connections) into r->error
 * and r->category, and says at which stage it happened. field_host and
 * field_tls name the settings to check ("smtp_host", "smtp_tls_verify").
 */
static enum where explain_transport(struct rq_probe_report *r, CURLcode rc, const char *errbuf, long os_errno,
                                    const char *host, int port, curl_off_t connect_us, long timeout_ms,
                                    const char *field_host, int smtp) {
  char hp[300];
  host_port(hp, sizeof hp, host, port);
  switch (rc) {
  case CURLE_COULDNT_RESOLVE_HOST:
    r->category = "dns";
    set_error(r, "DNS: cannot resolve %s: check %s (and this machine's DNS)", host, field_host);
    return W_DNS;
  case CURLE_COULDNT_CONNECT:
    r->category = "connect";
    if (os_errno == ECONNREFUSED)
      set_error(r, "connection refused by %s: nothing accepts connections on that port; check %s and the port",
                hp, field_host);
    else if (os_errno == ETIMEDOUT)
      set_error(r, "no answer from %s: a firewall may drop the connection, or the host or port is wrong", hp);
    else if (os_errno == ENETUNREACH || os_errno == EHOSTUNREACH)
      set_error(r, "%s is unreachable from this machine (%s)", hp, strerror((int)os_errno));
    else
      set_error(r, "cannot connect to %s (%s)", hp, errbuf[0] ? errbuf : curl_easy_strerror(rc));
    return W_CONNECT;
  case CURLE_OPERATION_TIMEDOUT:
    r->category = "timeout";
    if (connect_us <= 0) {
      set_error(r, "no answer from %s within %.0f s: a firewall may drop the connection, or the host or port is "
                   "wrong",
                hp, (double)timeout_ms / 1000.0);
      return W_CONNECT;
    }
    set_error(r, "timed out after %.0f s waiting for %s", (double)timeout_ms / 1000.0, hp);
    return W_PROTO;
  case CURLE_PEER_FAILED_VERIFICATION:
    r->category = "tls";
    rq_probe_explain_cert(errbuf, host, r->error, sizeof r->error);
    r->ok = 0;
    return W_TLS;
  case CURLE_SSL_CACERT_BADFILE:
    r->category = "config";
    set_error(r, "TLS: cannot read the CA file (--ca-file or RELAYQ_CA_FILE): %s",
              errbuf[0] ? errbuf : curl_easy_strerror(rc));
    return W_TLS;
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    r->category = "tls";
    set_error(r, "TLS: the key of %s is not the one in smtp_tls_pin (the server's key changed?): if the new key "
                 "is right, relayq tenant trust stores it",
              hp);
    return W_TLS;
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_INVALIDCERTSTATUS:
    r->category = "tls";
    if (strstr(errbuf, "wrong version number") || strstr(errbuf, "packet length too long") ||
        strstr(errbuf, "record layer failure"))
      set_error(r, "TLS: the handshake with %s failed: the server does not speak TLS there (%s); %s", hp, errbuf,
                smtp ? "for a port that starts in plain text (587, 25) use smtp_security=starttls"
                     : "use an http:// URL in mailgun_base_url for a plain-text server");
    else
      set_error(r, "TLS: the handshake with %s failed (%s)", hp, errbuf[0] ? errbuf : curl_easy_strerror(rc));
    return W_TLS;
  case CURLE_RECV_ERROR:
  case CURLE_SEND_ERROR:
  case CURLE_GOT_NOTHING:
    r->category = "connect";
    set_error(r, "%s closed the connection (%s)", hp, errbuf[0] ? errbuf : curl_easy_strerror(rc));
    return W_PROTO;
  default:
    r->category = "protocol";
    set_error(r, "%s: %s", hp, errbuf[0] ? errbuf : curl_easy_strerror(rc));
    return W_PROTO;
  }
}

/* ---- the SMTP probe --------------------------------------------------------------- */

static double us_to_ms(curl_off_t us) { return us > 0 ? (double)us / 1000.0 : 0.0; }

/* Waits until the connect-only connection's socket is readable (for_recv)
 * or writable, at most until deadline. Returns 0, or -1 on timeout. */
static int wait_socket(CURL *h, int for_recv, double deadline) {
  curl_socket_t fd = CURL_SOCKET_BAD;
  if (curl_easy_getinfo(h, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK || fd == CURL_SOCKET_BAD) return -1;
  double left = deadline - now_ms();
  if (left <= 0) return -1;
  struct pollfd p = {.fd = fd, .events = for_recv ? POLLIN : POLLOUT};
  int n = poll(&p, 1, (int)(left + 1));
  return n > 0 ? 0 : -1;
}

/* Sends all of s on the connect-only connection, waiting for the socket
 * when libcurl says CURLE_AGAIN. Returns 0 or -1. */
static int send_all(CURL *h, const char *s, double deadline) {
  size_t len = strlen(s), off = 0;
  while (off < len) {
    size_t n = 0;
    CURLcode rc = curl_easy_send(h, s + off, len - off, &n);
    if (rc == CURLE_AGAIN) {
      if (wait_socket(h, 0, deadline) != 0) return -1;
      continue;
    }
    if (rc != CURLE_OK) return -1;
    off += n;
  }
  return 0;
}

/* Reads one complete (possibly multi-line) reply into out. Returns 0, or -1
 * on timeout or a closed connection. The raw reply is bounded: a server
 * that sends more than RAW_MAX bytes without ending it gets cut off. */
static int read_reply(CURL *h, double deadline, char *raw, size_t *raw_len, struct rq_reply *out) {
  size_t len = *raw_len;
  for (;;) {
    /* Is there a complete final line in what we have? */
    size_t line = 0;
    for (size_t i = 0; i < len; i++) {
      if (raw[i] != '\n') continue;
      size_t n = i - line;
      if (n < 4 || raw[line + 3] != '-') {
        rq_reply_parse(raw, i + 1, out);
        /* Keep what follows (nothing, for a well-behaved server). */
        memmove(raw, raw + i + 1, len - (i + 1));
        *raw_len = len - (i + 1);
        return 0;
      }
      line = i + 1;
    }
    if (len == RAW_MAX) return -1;
    size_t got = 0;
    CURLcode rc = curl_easy_recv(h, raw + len, RAW_MAX - len, &got);
    if (rc == CURLE_AGAIN) {
      if (wait_socket(h, 1, deadline) != 0) return -1;
      continue;
    }
    if (rc != CURLE_OK || got == 0) return -1;
    len += got;
  }
}

/*
 * MAIL FROM and RCPT TO on the connection libcurl set up, then RSET so the
 * server forgets the transaction; DATA is never sent, so nothing can be
 * delivered. Adds the two stages to r. Returns 0 when the server accepted
 * both.
 */
static int probe_rcpt(CURL *h, const struct rq_probe_smtp *o, double deadline, struct rq_probe_report *r) {
  char cmd[CMD_MAX];
  char raw[RAW_MAX + 1];
  size_t raw_len = 0;
  struct rq_reply rep;
  const char *what[2] = {"MAIL FROM", "RCPT TO"};
  const char *addr[2] = {o->mail_from ? o->mail_from : "", o->rcpt};
  for (int i = 0; i < 2; i++) {
    /* Anything that could end the command line or the path would let the
     * address smuggle commands (curl's lib/smtp.c warns of the same). */
    int bad = strlen(addr[i]) > RQ_ADDR_MAX;
    for (const char *p = addr[i]; *p && !bad; p++) bad = (unsigned char)*p <= ' ' || *p == '<' || *p == '>' || *p == 0x7f;
    if (bad) {
      r->category = "config";
      set_error(r, "the %s address is not a plain address; nothing was sent", what[i]);
      return -1;
    }
  }
  for (int i = 0; i < 2; i++) {
    double t0 = now_ms();
    snprintf(cmd, sizeof cmd, "%s:<%s>\r\n", i == 0 ? "MAIL FROM" : "RCPT TO", addr[i]);
    if (send_all(h, cmd, deadline) != 0 || read_reply(h, deadline, raw, &raw_len, &rep) != 0) {
      add_stage(r, what[i], 0, now_ms() - t0, "no answer");
      r->category = "connect";
      set_error(r, "the server did not answer %s (connection closed or timed out)", what[i]);
      return -1;
    }
    if (rep.code < 200 || rep.code > 299) {
      add_stage(r, what[i], 0, now_ms() - t0, "%d %s%s%s", rep.code, rep.enhanced, rep.enhanced[0] ? " " : "",
                rep.text);
      r->category = i == 0 ? "protocol" : "recipient";
      if (i == 0)
        set_error(r, "the server refused the sender %s (%d%s%s): check from_email, and that this login may send "
                     "as that address",
                  addr[i], rep.code, rep.enhanced[0] ? " " : "", rep.enhanced);
      else
        set_error(r, "the server refused the recipient %s (%d%s%s%s%s)", addr[i], rep.code,
                  rep.enhanced[0] ? " " : "", rep.enhanced, rep.text[0] ? ": " : "", rep.text);
      return -1;
    }
    add_stage(r, what[i], 1, now_ms() - t0, "%d %s%s%s", rep.code, rep.enhanced, rep.enhanced[0] ? " " : "",
              rep.text);
  }
  /* Best effort: the server forgets the transaction; QUIT follows anyway. */
  if (send_all(h, "RSET\r\n", deadline) == 0) (void)read_reply(h, deadline, raw, &raw_len, &rep);
  return 0;
}

/* Subject, issuer and expiry of the first certificate libcurl saw. */
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

/* Days until the certificate expires, or INT32_MIN when unknown. */
static long cert_days_left(const struct rq_probe_report *r) {
  if (!r->cert_expire[0]) return INT32_MIN;
  time_t t = curl_getdate(r->cert_expire, NULL);
  if (t == (time_t)-1) return INT32_MIN;
  return (long)((t - time(NULL)) / 86400);
}

static int pinned(const struct rq_probe_smtp *o) {
  return o->tls_pin && o->tls_pin[0];
}

static void cert_verdict(const struct trace *t, const struct rq_probe_smtp *o, struct rq_probe_report *r) {
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
  long days = cert_days_left(r);
  if (days != INT32_MIN && days >= 0 && days < 14)
    rq_probe_note(r, "the server's certificate expires in %ld day%s", days, days == 1 ? "" : "s");
}

/* The stages libcurl's set-up went through, from the trace; `fail` is the
 * protocol step that failed (T__COUNT: none). */
static void add_proto_stages(struct rq_probe_report *r, const struct trace *t, double banner_from,
                             enum tstage fail, const char *fail_detail) {
  static const char *names[T__COUNT] = {"banner", "EHLO", "STARTTLS", "EHLO (TLS)", "AUTH"};
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

/* Fills r->error for a failure inside the protocol steps. */
static void explain_proto(struct rq_probe_report *r, const struct trace *t, enum tstage step, CURLcode rc,
                          const char *errbuf, const char *hp, const struct rq_probe_smtp *o) {
  const struct tstep *s = &t->st[step];
  char code[40] = "";
  if (s->answered)
    snprintf(code, sizeof code, "%d%s%s", s->reply.code, s->reply.enhanced[0] ? " " : "", s->reply.enhanced);
  switch (step) {
  case T_BANNER:
    if (rc == CURLE_OPERATION_TIMEDOUT) {
      r->category = "timeout";
      if (o->security != RQ_SEC_TLS)
        set_error(r, "%s sent no SMTP greeting: if it uses implicit TLS (usually port 465), set smtp_security=tls",
                  hp);
      else
        set_error(r, "%s sent no SMTP greeting after the TLS handshake", hp);
    } else if (s->answered) {
      r->category = "protocol";
      set_error(r, "%s refused the session at its greeting (%s: %s)", hp, code, s->reply.text);
    }
    return;
  case T_EHLO:
  case T_EHLO_TLS:
    if (rc == CURLE_USE_SSL_FAILED) {
      r->category = "tls";
      set_error(r, "%s does not offer STARTTLS: if it uses implicit TLS (usually port 465) set smtp_security=tls; "
                   "smtp_security=none sends the password unencrypted",
                hp);
      return;
    }
    r->category = "protocol";
    set_error(r, "%s refused EHLO and HELO (%s%s%s)", hp, code, s->reply.text[0] ? ": " : "", s->reply.text);
    return;
  case T_STARTTLS:
    r->category = "tls";
    if (s->answered && s->reply.code != 220)
      set_error(r, "%s refused STARTTLS (%s%s%s)", hp, code, s->reply.text[0] ? ": " : "", s->reply.text);
    else
      set_error(r, "TLS: the STARTTLS handshake with %s failed (%s)", hp,
                errbuf[0] ? errbuf : curl_easy_strerror(rc));
    return;
  case T_AUTH:
    r->category = "auth";
    if (s->answered && s->reply.code >= 500 && s->reply.code != 504)
      set_error(r, "login refused (%s): check smtp_user and smtp_password", code);
    else if (s->answered && s->reply.code >= 400 && s->reply.code < 500)
      set_error(r, "login failed temporarily (%s%s%s): try again later", code, s->reply.text[0] ? ": " : "",
                s->reply.text);
    else if (s->answered)
      set_error(r, "login failed (%s%s%s): check smtp_user and smtp_password", code,
                s->reply.text[0] ? ": " : "", s->reply.text);
    else
      set_error(r, "login failed: %s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
    return;
  case T__COUNT: break;
  }
}

/* What libcurl measured of the connection; ip borrowed from the handle. */
struct timing {
  curl_off_t dns_us, conn_us, app_us;
  long os_errno;
  const char *ip;
};

static void read_timing(CURL *h, struct timing *tm) {
  char *ip = NULL;
  memset(tm, 0, sizeof *tm);
  curl_easy_getinfo(h, CURLINFO_NAMELOOKUP_TIME_T, &tm->dns_us);
  curl_easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &tm->conn_us);
  curl_easy_getinfo(h, CURLINFO_APPCONNECT_TIME_T, &tm->app_us);
  curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &tm->os_errno);
  curl_easy_getinfo(h, CURLINFO_PRIMARY_IP, &ip);
  tm->ip = ip && ip[0] ? ip : NULL;
}

/* The session set-up with CONNECT_ONLY, the trace on the debug callback. */
static void smtp_options(CURL *h, const struct rq_probe_smtp *o, long timeout_ms, struct trace *t, char *errbuf,
                         char *url, size_t url_cap) {
  snprintf(url, url_cap, "%s://%s:%d", o->security == RQ_SEC_TLS ? "smtps" : "smtp", o->host, o->port);
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
  curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                   timeout_ms < CONNECT_TIMEOUT_CAP_MS ? timeout_ms : CONNECT_TIMEOUT_CAP_MS);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h, CURLOPT_SERVER_RESPONSE_TIMEOUT, (timeout_ms + 999) / 1000);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_CERTINFO, 1L);
  curl_easy_setopt(h, CURLOPT_VERBOSE, 1L); /* feeds debug_cb; nothing is printed */
  curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, debug_cb);
  curl_easy_setopt(h, CURLOPT_DEBUGDATA, t);
  curl_easy_setopt(h, CURLOPT_USE_SSL, (long)(o->security == RQ_SEC_NONE ? CURLUSESSL_NONE : CURLUSESSL_ALL));
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, o->tls_verify && !pinned(o) ? 1L : 0L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, o->tls_verify && !pinned(o) ? 2L : 0L);
  if (pinned(o)) {
    /* The key is the trust anchor, as in the worker (tlsio.c); curl checks
     * the pin whatever VERIFYPEER says and takes pins separated by ';'. */
    char pins[1024];
    size_t k = 0;
    for (const char *c = o->tls_pin; *c && k + 1 < sizeof pins; c++)
      if (*c != ' ') pins[k++] = *c == ',' ? ';' : *c;
    pins[k] = '\0';
    curl_easy_setopt(h, CURLOPT_PINNEDPUBLICKEY, pins);
  }
  if (o->ca_file && o->ca_file[0]) curl_easy_setopt(h, CURLOPT_CAINFO, o->ca_file);
  if (o->user && o->user[0]) {
    curl_easy_setopt(h, CURLOPT_USERNAME, o->user);
    if (o->bearer) {
      curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, o->bearer);
      curl_easy_setopt(h, CURLOPT_LOGIN_OPTIONS, "AUTH=XOAUTH2");
    } else {
      curl_easy_setopt(h, CURLOPT_PASSWORD, o->password ? o->password : "");
    }
    curl_easy_setopt(h, CURLOPT_SASL_IR, 1L); /* as the worker logs in */
  }
}

/* Explains a failed set-up into r and says where it failed; *fail_step is
 * the protocol step when that is W_PROTO. */
static enum where smtp_failure(struct rq_probe_report *r, const struct rq_probe_smtp *o, const struct trace *t,
                               CURLcode rc, const char *errbuf, const char *hp, const struct timing *tm,
                               long timeout_ms, enum tstage *fail_step) {
  enum where w = explain_transport(r, rc, errbuf, tm->os_errno, o->host, o->port, tm->conn_us, timeout_ms,
                                   "smtp_host", 1);
  *fail_step = t->cur;
  if (w == W_TLS && o->security != RQ_SEC_TLS) {
    *fail_step = T_STARTTLS; /* the handshake belongs to the STARTTLS step */
    return W_PROTO;
  }
  if (w != W_PROTO) return w;
  if (o->security == RQ_SEC_TLS && !t->tls_done && !t->st[T_BANNER].seen) {
    set_error(r, "TLS: no TLS handshake with %s (%s): the server may not use implicit TLS on this port; for a "
                 "port that starts in plain text (587, 25) use smtp_security=starttls",
              hp, errbuf[0] ? errbuf : curl_easy_strerror(rc));
    return W_TLS;
  }
  if (rc == CURLE_LOGIN_DENIED && !t->st[T_AUTH].seen) {
    *fail_step = T_AUTH;
    r->category = "auth";
    set_error(r, "login not possible: %s offers no login method libcurl supports (%s)", hp,
              errbuf[0] ? errbuf : "no AUTH mechanism in common");
  } else if (rc == CURLE_LOGIN_DENIED || rc == CURLE_USE_SSL_FAILED || rc == CURLE_WEIRD_SERVER_REPLY ||
             rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_AUTH_ERROR || rc == CURLE_REMOTE_ACCESS_DENIED) {
    explain_proto(r, t, *fail_step, rc, errbuf, hp, o);
  }
  return W_PROTO;
}

/* DNS, TCP connect and (implicit) TLS stages from curl's own clock.
 * Returns 0 to go on with the protocol steps (*banner_from: when the
 * banner could start, monotonic ms), -1 when one of these failed. */
static int transport_stages(struct rq_probe_report *r, const struct rq_probe_smtp *o, const struct trace *t,
                            const struct timing *tm, enum where w, const char *errbuf, double t0,
                            double *banner_from) {
  const char *addr = tm->ip ? tm->ip : o->host;
  if (w == W_DNS) {
    add_stage(r, "DNS", 0, us_to_ms(tm->dns_us), "%s: %s", o->host, errbuf[0] ? errbuf : "not found");
    return -1;
  }
  if (tm->ip) add_stage(r, "DNS", 1, us_to_ms(tm->dns_us), "%s -> %s", o->host, tm->ip);
  else add_stage(r, "DNS", 1, us_to_ms(tm->dns_us), "%s", o->host);
  if (w == W_CONNECT) {
    add_stage(r, "TCP connect", 0, tm->conn_us > 0 ? us_to_ms(tm->conn_us - tm->dns_us) : -1, "%s port %d: %s", addr,
              o->port, errbuf[0] ? errbuf : "failed");
    return -1;
  }
  add_stage(r, "TCP connect", 1, us_to_ms(tm->conn_us - tm->dns_us), "%s port %d", addr, o->port);
  *banner_from = t0 + us_to_ms(tm->conn_us);
  if (o->security != RQ_SEC_TLS) return 0;
  if (w == W_TLS) {
    add_stage(r, "TLS", 0, tm->app_us > tm->conn_us ? us_to_ms(tm->app_us - tm->conn_us) : -1, "%s",
              errbuf[0] ? errbuf : "handshake failed");
    return -1;
  }
  add_stage(r, "TLS", 1, us_to_ms(tm->app_us - tm->conn_us), "%s", t->tls_info[0] ? t->tls_info : "handshake done");
  *banner_from = t0 + us_to_ms(tm->app_us);
  return 0;
}

/* The saas boundary refused every address (or the host as written):
 * nothing was connected, and the report says so as a worker would. */
static int boundary_refused(struct rq_probe_report *r, const struct rq_curl_guard *g, CURLcode rc) {
  if (!g->refused || rc == CURLE_OK) return 0;
  add_stage(r, "network boundary", 0, -1, "refused (--mode saas)");
  r->category = "policy";
  size_t n = strlen(g->why);
  set_error(r, "%.*s", (int)(n && g->why[n - 1] == '.' ? n - 1 : n), g->why); /* the report adds its own stop */
  return 1;
}

/* A login was configured but the server never offered AUTH. */
static void auth_not_offered(struct rq_probe_report *r, const struct rq_probe_smtp *o, const struct trace *t,
                             const char *hp) {
  add_stage(r, "AUTH", 0, -1, "not offered by the server");
  r->category = "auth";
  if (o->security == RQ_SEC_NONE && t->offers_starttls)
    set_error(r, "login not possible: %s offers AUTH only after STARTTLS: set smtp_security=starttls", hp);
  else
    set_error(r,
              "login not possible: %s does not offer AUTH; check smtp_security (many servers offer AUTH only "
              "after STARTTLS) or leave smtp_user empty",
              hp);
}

int rq_probe_smtp_run(const struct rq_probe_smtp *o, struct rq_probe_report *r) {
  struct trace *t = NULL;
  CURL *h = NULL;
  char url[400], errbuf[CURL_ERROR_SIZE] = "", hp[300];
  memset(r, 0, sizeof *r);
  r->ok = 1;
  if (o->host == NULL || o->host[0] == '\0' || o->port < 1 || o->port > 65535) {
    snprintf(r->target, sizeof r->target, "smtp (no server)");
    r->category = "config";
    set_error(r, "no SMTP server to check: set smtp_host (or smtp_preset) and smtp_port");
    return -1;
  }
  describe_target(o, r);
  host_port(hp, sizeof hp, o->host, o->port);
  long timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : RQ_PROBE_DEFAULT_TIMEOUT_MS;
  if ((t = calloc(1, sizeof *t)) == NULL || (h = curl_easy_init()) == NULL) {
    free(t);
    r->category = "config";
    set_error(r, "out of memory starting the check");
    return -1;
  }
  smtp_options(h, o, timeout_ms, t, errbuf, url, sizeof url);
  struct rq_curl_guard guard;
  rq_curl_guard_install_host(h, &guard, o->netpolicy, o->host);

  double t0 = now_ms(), banner_from = 0;
  CURLcode rc = curl_easy_perform(h);
  if (boundary_refused(r, &guard, rc)) goto done;
  struct timing tm;
  read_timing(h, &tm);
  read_certinfo(h, r);
  enum where w = W_NONE;
  enum tstage fail_step = T__COUNT;
  if (rc != CURLE_OK) w = smtp_failure(r, o, t, rc, errbuf, hp, &tm, timeout_ms, &fail_step);
  if (transport_stages(r, o, t, &tm, w, errbuf, t0, &banner_from) != 0) goto done;
  if (w == W_PROTO) {
    char detail[300] = "";
    if (fail_step == T_STARTTLS && t->st[T_STARTTLS].answered && t->st[T_STARTTLS].reply.code == 220)
      snprintf(detail, sizeof detail, "handshake failed: %s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
    else if (fail_step == T_EHLO && rc == CURLE_USE_SSL_FAILED)
      snprintf(detail, sizeof detail, "STARTTLS not offered");
    add_proto_stages(r, t, banner_from, fail_step, detail);
    goto done;
  }
  add_proto_stages(r, t, banner_from, T__COUNT, NULL);
  if (o->user && o->user[0] && !t->st[T_AUTH].seen) auth_not_offered(r, o, t, hp);
  else if (o->rcpt && o->rcpt[0]) (void)probe_rcpt(h, o, t0 + (double)timeout_ms, r);

done:
  cert_verdict(t, o, r);
  r->total_ms = now_ms() - t0;
  curl_easy_cleanup(h); /* sends QUIT on a live session */
  free(t);
  return r->ok ? 0 : -1;
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

/* The JSON "message" member of a Mailgun answer, sanitised; the whole body
 * (sanitised, cut) when there is none. Mailgun's error bodies are small
 * flat objects, so a string scan is enough for a message to show a person;
 * nothing decides on it. */
static void mailgun_message(const struct body *b, char *out, size_t cap) {
  const char *m = strstr(b->data, "\"message\"");
  out[0] = '\0';
  if (m != NULL) {
    m = strchr(m + 9, '"');
    if (m != NULL) {
      const char *end = m + 1;
      while (*end && *end != '"') end += (*end == '\\' && end[1]) ? 2 : 1;
      rq_text_sanitize(out, cap, m + 1, (size_t)(end - m - 1));
      return;
    }
  }
  rq_text_sanitize(out, cap < 160 ? cap : 160, b->data, b->len);
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

/* The verdict on Mailgun's answer. */
static void mailgun_verdict(struct rq_probe_report *r, long status, const char *msg, const char *domain) {
  if (status >= 200 && status < 300) return;
  r->category = "http";
  if (status == 401 || status == 403)
    set_error(r, "the API key was refused (HTTP %ld): check mailgun_api_key", status);
  else if (status == 404)
    set_error(r, "domain %s not found in this Mailgun account/region (HTTP 404): check mailgun_domain and "
                 "mailgun_region (domains in the EU region need mailgun_region=eu)",
              domain);
  else if (status >= 500)
    set_error(r, "Mailgun answered HTTP %ld (%s): the service has a problem; try again later", status, msg);
  else
    set_error(r, "Mailgun answered HTTP %ld (%s)", status, msg);
}

int rq_probe_mailgun_run(const struct rq_probe_mailgun *o, struct rq_probe_report *r) {
  char url[2600], errbuf[CURL_ERROR_SIZE] = "", msg[200], raw[sizeof r->target], hn[256];
  struct body *b = NULL;
  CURL *h = NULL;
  int port = 0;
  memset(r, 0, sizeof *r);
  r->ok = 1;
  snprintf(raw, sizeof raw, "mailgun %s domain %s", o->base_url ? o->base_url : "?", o->domain ? o->domain : "?");
  sanitize(r->target, sizeof r->target, raw);
  long timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : RQ_PROBE_DEFAULT_TIMEOUT_MS;
  if (!o->base_url || !o->domain || !o->domain[0] || !o->api_key || !o->api_key[0]) {
    r->category = "config";
    set_error(r, "gateway mailgun needs mailgun_domain and mailgun_api_key");
    return -1;
  }
  if ((b = calloc(1, sizeof *b)) == NULL || (h = curl_easy_init()) == NULL) {
    free(b);
    r->category = "config";
    set_error(r, "out of memory starting the check");
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
  curl_off_t total_us = 0;
  long status = 0;
  read_timing(h, &tm);
  curl_easy_getinfo(h, CURLINFO_TOTAL_TIME_T, &total_us);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  read_certinfo(h, r);
  int https = strncasecmp(o->base_url, "https://", 8) == 0;
  const char *addr = tm.ip ? tm.ip : hn;

  enum where w = W_NONE;
  if (rc != CURLE_OK) {
    w = explain_transport(r, rc, errbuf, tm.os_errno, hn, port, tm.conn_us, timeout_ms, "mailgun_base_url", 0);
    /* The certificate advice names the SMTP setting; Mailgun has none. */
    if (rc == CURLE_PEER_FAILED_VERIFICATION)
      set_error(r, "TLS: the certificate of %s was not accepted (%s): check mailgun_base_url, or pass the CA "
                   "with --ca-file",
                hn, errbuf);
  }
  if (w == W_DNS) {
    add_stage(r, "DNS", 0, us_to_ms(tm.dns_us), "%s: %s", hn, errbuf[0] ? errbuf : "not found");
    goto done;
  }
  add_stage(r, "DNS", 1, us_to_ms(tm.dns_us), "%s -> %s", hn, addr);
  if (w == W_CONNECT) {
    add_stage(r, "TCP connect", 0, -1, "%s port %d: %s", addr, port, errbuf[0] ? errbuf : "failed");
    goto done;
  }
  add_stage(r, "TCP connect", 1, us_to_ms(tm.conn_us - tm.dns_us), "%s port %d", addr, port);
  if (https) {
    if (w == W_TLS) {
      add_stage(r, "TLS", 0, -1, "%s", errbuf[0] ? errbuf : "handshake failed");
      goto done;
    }
    add_stage(r, "TLS", 1, us_to_ms(tm.app_us - tm.conn_us), "handshake done");
    if (r->have_cert) snprintf(r->cert_verify, sizeof r->cert_verify, "verified");
  }
  double http_ms = us_to_ms(total_us - (https ? tm.app_us : tm.conn_us));
  if (w != W_NONE) {
    add_stage(r, "HTTP", 0, http_ms, "GET /v3/domains/%s: %s", o->domain, errbuf[0] ? errbuf : "failed");
    goto done;
  }
  mailgun_message(b, msg, sizeof msg);
  int ok = status >= 200 && status < 300;
  add_stage(r, "HTTP", ok, http_ms, "GET /v3/domains/%s: %ld%s%s", o->domain, status, ok ? "" : " ", ok ? "" : msg);
  mailgun_verdict(r, status, msg, o->domain);

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
  json_kv(f, "category", r->ok ? NULL : r->category, 1);
  json_kv(f, "error", r->ok ? NULL : r->error, 0);
  fputs("}\n", f);
}
