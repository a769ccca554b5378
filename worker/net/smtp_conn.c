/* smtp_conn: one SMTP client connection on libuv. See smtp_conn.h. */
#include "smtp_conn.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "classify.h"
#include "log.h"
#include "netpolicy.h"
#include "smtp.h"
#include "smtp_proto.h"
#include "tlsio.h"
#include "util.h"

enum cstate { C_NEW, C_CONNECTING, C_OPEN, C_CLOSING };
enum tstate { T_NONE, T_HANDSHAKE, T_READY };

struct rq_smtp_conn {
  uv_loop_t *loop;
  struct rq_smtp_conn_shared *sh;
  rq_smtp_conn_cb cb;
  void *data;
  enum cstate state;
  enum tstate tls_state;
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_connect_t creq;
  uv_shutdown_t sreq;
  uv_getaddrinfo_t gai;
  int gai_pending; /* the lookup's callback has not run: c must not be freed */
  int tcp_open;    /* tcp initialised and not closed */
  int handles;     /* uv handles whose close callback has not run */
  int closed_sent;
  int failed;      /* ERROR reported (or about to be) */
  int pending_err; /* an error found inside an API call, reported from the timer */
  char pending_msg[256];
  int discard;     /* TLS started from a reply: drop the plain text read with it */
  int port;
  struct addrinfo *ai_list, *ai_next;
  struct sockaddr_storage literal;
  int use_literal;
  const struct rq_netpolicy *policy; /* borrowed; NULL: any address */
  int saw_forbidden;                 /* the boundary skipped an address */
  char *pins;
  char host[256];
  char last_connect_err[128];
  char peer[80];        /* the address connected to */
  uint64_t resolved_at; /* loop time of the name's resolution */
  struct rq_tlsio *tls;
  size_t queued;
  int nwrites;
  struct rq_smtp_reader rd;
};

/* A write the kernel did not take at once. Owned by the connection from
 * uv_write until on_write. */
struct wreq {
  uv_write_t req;
  struct rq_smtp_conn *c;
  size_t len;
  int secret;
  char data[];
};

static void emit(struct rq_smtp_conn *c, const struct rq_smtp_conn_event *ev) {
  c->cb(c, ev);
}

static void emit_type(struct rq_smtp_conn *c, enum rq_smtp_conn_event_type type) {
  struct rq_smtp_conn_event ev = {.type = type};
  emit(c, &ev);
}

/* ---- closing --------------------------------------------------------------------- */

static void maybe_free(struct rq_smtp_conn *c) {
  if (c->handles > 0 || c->gai_pending || c->closed_sent) return;
  c->closed_sent = 1;
  emit_type(c, RQ_CONN_EV_CLOSED);
  if (c->ai_list) uv_freeaddrinfo(c->ai_list);
  rq_tlsio_free(c->tls);
  free(c->pins);
  free(c);
}

static void on_handle_closed(uv_handle_t *h) {
  struct rq_smtp_conn *c = h->data;
  if (h == (uv_handle_t *)&c->tcp) c->tcp_open = 0;
  c->handles--;
  maybe_free(c);
}

static void close_handles(struct rq_smtp_conn *c) {
  if (!uv_is_closing((uv_handle_t *)&c->timer)) uv_close((uv_handle_t *)&c->timer, on_handle_closed);
  if (c->tcp_open && !uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void begin_close(struct rq_smtp_conn *c) {
  c->state = C_CLOSING;
  if (c->gai_pending) uv_cancel((uv_req_t *)&c->gai); /* its callback still runs */
  close_handles(c);
}

/* Reports a failure (once) and closes at once. */
static void fail(struct rq_smtp_conn *c, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(struct rq_smtp_conn *c, int err, const char *fmt, ...) {
  if (c->failed || c->state == C_CLOSING) return;
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  c->failed = 1;
  begin_close(c);
  struct rq_smtp_conn_event ev = {.type = RQ_CONN_EV_ERROR, .err = err, .msg = msg};
  emit(c, &ev);
}

static void on_timer(uv_timer_t *t);

/* Errors found inside an API call are reported from the loop, so that the
 * owner never gets an event in the middle of its own call. */
static void fail_later(struct rq_smtp_conn *c, int err, const char *msg) {
  if (c->failed || c->pending_err || c->state == C_CLOSING) return;
  c->pending_err = err;
  snprintf(c->pending_msg, sizeof c->pending_msg, "%s", msg);
  uv_timer_start(&c->timer, on_timer, 0, 0);
}

/* libuv calls a pending shutdown's callback (with UV_ECANCELED) when the
 * handle closes, so there must be one; the EOF that follows is what we
 * wait for. */
static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)req;
  (void)status;
}

void rq_smtp_conn_close(struct rq_smtp_conn *c, int graceful, uint64_t linger_ms) {
  if (c->state == C_CLOSING) return;
  c->failed = 1; /* nothing more is reported */
  if (!graceful || c->state != C_OPEN) {
    begin_close(c);
    return;
  }
  c->state = C_CLOSING;
  if (c->tls && c->tls_state == T_READY) {
    rq_tlsio_shutdown(c->tls);
    size_t n;
    while ((n = rq_tlsio_out_take(c->tls, c->sh->cipher, sizeof c->sh->cipher)) > 0) {
      uv_buf_t b = uv_buf_init(c->sh->cipher, (unsigned)n);
      if (c->nwrites == 0 && uv_try_write((uv_stream_t *)&c->tcp, &b, 1) == (int)n) continue;
      break; /* a stuck socket: the close_notify is a courtesy, drop it */
    }
  }
  /* FIN after the queued writes; then wait for the server's EOF. */
  if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
    close_handles(c);
    return;
  }
  uv_timer_start(&c->timer, on_timer, linger_ms, 0);
}

/* ---- timer ---------------------------------------------------------------------- */

static void on_timer(uv_timer_t *t) {
  struct rq_smtp_conn *c = t->data;
  if (c->state == C_CLOSING) {
    close_handles(c); /* the graceful close waited long enough */
    return;
  }
  if (c->pending_err) {
    fail(c, c->pending_err, "%s", c->pending_msg);
    return;
  }
  emit_type(c, RQ_CONN_EV_TIMER);
}

void rq_smtp_conn_timer(struct rq_smtp_conn *c, uint64_t ms) {
  if (c->state == C_CLOSING || c->pending_err) return;
  uv_timer_start(&c->timer, on_timer, ms, 0);
}

void rq_smtp_conn_timer_stop(struct rq_smtp_conn *c) {
  if (c->state == C_CLOSING || c->pending_err) return;
  uv_timer_stop(&c->timer);
}

/* ---- writing -------------------------------------------------------------------- */

static void on_write(uv_write_t *req, int status) {
  struct wreq *w = (struct wreq *)req;
  struct rq_smtp_conn *c = w->c;
  c->nwrites--;
  c->queued -= w->len;
  if (w->secret) OPENSSL_cleanse(w->data, w->len);
  free(w);
  if (c->state == C_CLOSING) return;
  if (status < 0) {
    fail(c, RQ_SMTP_ERR_CLOSED, "The connection dropped while sending (%s).", uv_strerror(status));
    return;
  }
  if (c->nwrites == 0) emit_type(c, RQ_CONN_EV_DRAINED);
}

/* Bytes to the socket: what the kernel takes now, the rest copied into a
 * queued request (kept in order: nothing is tried while one is queued). */
static void raw_send(struct rq_smtp_conn *c, const char *p, size_t n, int flags) {
  if (n == 0) return;
  if (c->nwrites == 0 && !(flags & RQ_CONN_WRITE_QUEUE)) {
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    int r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (r > 0) {
      p += r;
      n -= (size_t)r;
      if (n == 0) return;
    } else if (r != UV_EAGAIN) {
      char msg[128];
      snprintf(msg, sizeof msg, "The connection dropped while sending (%s).", uv_strerror(r));
      fail_later(c, RQ_SMTP_ERR_CLOSED, msg);
      return;
    }
  }
  struct wreq *w = rq_xmalloc(sizeof *w + n);
  w->c = c;
  w->len = n;
  w->secret = flags & RQ_CONN_WRITE_SECRET;
  memcpy(w->data, p, n);
  uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
  int r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
  if (r != 0) {
    if (w->secret) OPENSSL_cleanse(w->data, n);
    free(w);
    char msg[128];
    snprintf(msg, sizeof msg, "The connection dropped while sending (%s).", uv_strerror(r));
    fail_later(c, RQ_SMTP_ERR_CLOSED, msg);
    return;
  }
  c->nwrites++;
  c->queued += n;
}

/* Sends every TLS record OpenSSL has produced. */
static void flush_tls(struct rq_smtp_conn *c, int flags) {
  size_t n;
  while ((n = rq_tlsio_out_take(c->tls, c->sh->cipher, sizeof c->sh->cipher)) > 0)
    raw_send(c, c->sh->cipher, n, flags & RQ_CONN_WRITE_QUEUE);
}

int rq_smtp_conn_write(struct rq_smtp_conn *c, const void *data, size_t len, int flags) {
  if (c->state != C_OPEN || c->failed || c->pending_err) return -1;
  if (len == 0) return 0;
  if (c->tls_state == T_NONE) {
    raw_send(c, data, len, flags);
  } else if (c->tls_state != T_READY) {
    return -1; /* the owner waits for TLS_READY */
  } else if (rq_tlsio_write(c->tls, data, len) != 0) {
    char msg[256];
    snprintf(msg, sizeof msg, "TLS failed while sending: %s.", rq_tlsio_errmsg(c->tls));
    fail_later(c, RQ_SMTP_ERR_TLS, msg);
  } else {
    flush_tls(c, flags);
  }
  return c->pending_err ? -1 : 0;
}

size_t rq_smtp_conn_queued(const struct rq_smtp_conn *c) {
  return c->queued;
}

/* ---- reading -------------------------------------------------------------------- */

static int on_reply(void *arg, const char *raw, size_t len, int code) {
  struct rq_smtp_conn *c = arg;
  if (code == 0) {
    /* What a server that does not speak SMTP sent is not repeated: it
     * may be an internal service's banner (docs/security.md). */
    fail(c, RQ_SMTP_ERR_PROTOCOL, "The server sent a line that is not an SMTP reply.");
    return 1;
  }
  struct rq_smtp_conn_event ev = {.type = RQ_CONN_EV_REPLY, .code = code, .raw = raw, .len = len};
  emit(c, &ev);
  return c->state != C_OPEN || c->discard;
}

/* Plain text from the server: replies to the owner, in order. */
static void deliver(struct rq_smtp_conn *c, const char *p, size_t n) {
  rq_smtp_reader_feed(&c->rd, p, n, on_reply, c);
  if (c->state == C_OPEN && !c->discard && rq_smtp_reader_bad(&c->rd))
    fail(c, RQ_SMTP_ERR_PROTOCOL,
         "The server's answer is not an SMTP reply (is smtp_security right for this port, and is it a mail server?).");
}

static int tls_err(int e) {
  switch (e) {
  case RQ_TLSIO_ECERT: return RQ_SMTP_ERR_TLS_CERT;
  case RQ_TLSIO_EMISMATCH: return RQ_SMTP_ERR_TLS_MISMATCH;
  case RQ_TLSIO_ELOCAL: return RQ_SMTP_ERR_TLS_LOCAL;
  case RQ_TLSIO_EPIN: return RQ_SMTP_ERR_TLS_PIN;
  default: return RQ_SMTP_ERR_TLS;
  }
}

/* The key is not the pinned one. Nothing OpenSSL queued after its side of
 * the handshake is sent, and the new pin goes to the operator's log (it
 * is public: the hash of the key the server showed). */
static void pin_mismatch(struct rq_smtp_conn *c) {
  char pin[64], port[8];
  rq_tlsio_peer_pin(c->tls, pin, sizeof pin);
  snprintf(port, sizeof port, "%d", c->port);
  RQ_LOG_FIELDS(RQ_LOG_INFO, "server TLS key is not the pinned one (smtp_tls_pin)", {"host", c->host},
                {"port", port}, {"presented_pin", pin[0] ? pin : "none"});
  fail(c, RQ_SMTP_ERR_TLS_PIN,
       "The TLS key of %s changed (%s); nothing was sent. If the new key is right, re-trust it: relayq tenant "
       "trust TENANT [--route NAME].",
       c->host, rq_tlsio_errmsg(c->tls));
}

static void tls_input(struct rq_smtp_conn *c, const char *p, size_t n) {
  if (rq_tlsio_feed(c->tls, p, n) != 0) {
    fail(c, RQ_SMTP_ERR_TLS, "TLS failed: %s.", rq_tlsio_errmsg(c->tls));
    return;
  }
  if (c->tls_state == T_HANDSHAKE) {
    int rc = rq_tlsio_handshake(c->tls);
    if (rc == RQ_TLSIO_EPIN) {
      pin_mismatch(c);
      return;
    }
    flush_tls(c, 0);
    if (rc < 0) {
      fail(c, tls_err(rc), "TLS handshake with %s failed: %s.", c->host, rq_tlsio_errmsg(c->tls));
      return;
    }
    if (rc == RQ_TLSIO_AGAIN || c->state != C_OPEN) return;
    c->tls_state = T_READY;
    emit_type(c, RQ_CONN_EV_TLS_READY);
  }
  while (c->state == C_OPEN && c->tls_state == T_READY) {
    ssize_t r = rq_tlsio_read(c->tls, c->sh->plain, sizeof c->sh->plain);
    if (r > 0) {
      deliver(c, c->sh->plain, (size_t)r);
      continue;
    }
    if (r == 0) break;
    if (r == RQ_TLSIO_EOF) fail(c, RQ_SMTP_ERR_CLOSED, "The server ended the TLS session.");
    else fail(c, RQ_SMTP_ERR_TLS, "TLS failed while reading: %s.", rq_tlsio_errmsg(c->tls));
    return;
  }
  /* Session tickets and key updates can make OpenSSL answer. */
  if (c->state == C_OPEN && c->tls) flush_tls(c, 0);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct rq_smtp_conn *c = h->data;
  (void)suggested;
  *buf = uv_buf_init(c->sh->rbuf, sizeof c->sh->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct rq_smtp_conn *c = s->data;
  if (c->state == C_CLOSING) {
    if (nread < 0) close_handles(c); /* the server's EOF after our FIN */
    return;
  }
  if (nread == 0) return;
  if (nread < 0) {
    if (nread == UV_EOF) fail(c, RQ_SMTP_ERR_CLOSED, "The server closed the connection.");
    else fail(c, RQ_SMTP_ERR_CLOSED, "The connection dropped (%s).", uv_strerror((int)nread));
    return;
  }
  c->discard = 0;
  if (c->tls_state == T_NONE) deliver(c, buf->base, (size_t)nread);
  else tls_input(c, buf->base, (size_t)nread);
}

/* ---- TLS ------------------------------------------------------------------------- */

void rq_smtp_conn_start_tls(struct rq_smtp_conn *c, SSL_CTX *ctx, const char *host, int verify) {
  char err[256];
  if (c->state != C_OPEN || c->tls) return;
  /* Whatever else arrived in clear text with the reply is dropped. */
  c->discard = 1;
  rq_smtp_reader_init(&c->rd);
  c->tls = rq_tlsio_new(ctx, host, verify, err, sizeof err);
  if (!c->tls) {
    fail_later(c, RQ_SMTP_ERR_TLS_LOCAL, err);
    return;
  }
  if (rq_tlsio_set_pins(c->tls, c->pins) != 0) {
    fail_later(c, RQ_SMTP_ERR_TLS_LOCAL, "smtp_tls_pin is not a list of sha256//BASE64 pins.");
    return;
  }
  c->tls_state = T_HANDSHAKE;
  int rc = rq_tlsio_handshake(c->tls); /* writes the ClientHello */
  flush_tls(c, 0);
  if (rc < 0) {
    snprintf(err, sizeof err, "TLS handshake with %s failed: %s.", c->host, rq_tlsio_errmsg(c->tls));
    fail_later(c, tls_err(rc), err);
  }
}

int rq_smtp_conn_is_tls(const struct rq_smtp_conn *c) {
  return c->tls_state == T_READY;
}

X509 *rq_smtp_conn_peer_cert(const struct rq_smtp_conn *c) {
  return c->tls && c->tls_state == T_READY ? rq_tlsio_peer_cert(c->tls) : NULL;
}

const char *rq_smtp_conn_peer(const struct rq_smtp_conn *c) { return c->peer; }

uint64_t rq_smtp_conn_resolved_at(const struct rq_smtp_conn *c) { return c->resolved_at; }

long rq_smtp_conn_tls_describe(const struct rq_smtp_conn *c, char *out, size_t cap) {
  if (!c->tls || c->tls_state != T_READY) {
    if (cap) out[0] = '\0';
    return -1;
  }
  return rq_tlsio_describe(c->tls, out, cap);
}

void rq_smtp_conn_set_pins(struct rq_smtp_conn *c, const char *pins) {
  free(c->pins);
  c->pins = pins && *pins ? rq_xstrdup(pins) : NULL;
}

/* ---- connecting ------------------------------------------------------------------ */

static void try_next(struct rq_smtp_conn *c);

static void on_tcp_closed_retry(uv_handle_t *h) {
  struct rq_smtp_conn *c = h->data;
  c->tcp_open = 0;
  c->handles--;
  if (c->state == C_CLOSING) {
    maybe_free(c);
    return;
  }
  try_next(c);
}

static void addr_text(const struct sockaddr *sa, char *out, size_t cap) {
  char ip[64] = "?";
  if (sa->sa_family == AF_INET6) {
    uv_ip6_name((const struct sockaddr_in6 *)sa, ip, sizeof ip);
    snprintf(out, cap, "[%s]", ip);
  } else {
    uv_ip4_name((const struct sockaddr_in *)sa, ip, sizeof ip);
    snprintf(out, cap, "%s", ip);
  }
}

void rq_smtp_conn_set_netpolicy(struct rq_smtp_conn *c, const struct rq_netpolicy *p) {
  c->policy = p;
}

/* The first address from ai on that may be connected to: IPv4 or IPv6,
 * and allowed by the network boundary. Forbidden ones are logged for the
 * operator and never connected. */
static struct addrinfo *next_usable(struct rq_smtp_conn *c, struct addrinfo *ai) {
  for (; ai; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    int cls = rq_netpolicy_check_addr(c->policy, ai->ai_addr);
    if (cls == 0) return ai;
    char where[80], port[8];
    addr_text(ai->ai_addr, where, sizeof where);
    snprintf(port, sizeof port, "%d", c->port);
    RQ_LOG_FIELDS(RQ_LOG_INFO, "network boundary: not connecting", {"host", c->host}, {"address", where},
                  {"port", port}, {"class", rq_net_class_name((enum rq_net_class)cls)});
    c->saw_forbidden = 1;
  }
  return NULL;
}

/* The boundary left nothing to connect to. The tenant learns neither the
 * addresses its name resolved to nor their class: it could map the
 * platform's internal DNS that way. */
static void fail_boundary(struct rq_smtp_conn *c) {
  fail(c, RQ_SMTP_ERR_POLICY,
       "%s resolves only to addresses closed to tenants (loopback, private, link-local, reserved); nothing was "
       "connected. The operator may open a network: --allow-private-nets.",
       c->host);
}

static void on_connect(uv_connect_t *req, int status) {
  struct rq_smtp_conn *c = req->data;
  if (c->state == C_CLOSING) return; /* cancelled by a close */
  if (status < 0) {
    char where[80];
    const struct sockaddr *sa =
        c->use_literal ? (const struct sockaddr *)&c->literal : (c->ai_next ? c->ai_next->ai_addr : NULL);
    if (sa) addr_text(sa, where, sizeof where);
    else snprintf(where, sizeof where, "%s", c->host);
    snprintf(c->last_connect_err, sizeof c->last_connect_err, "%s port %d: %s", where, c->port,
             uv_strerror(status));
    struct addrinfo *more = !c->use_literal && c->ai_next ? next_usable(c, c->ai_next->ai_next) : NULL;
    if (more) {
      c->ai_next = more;
      uv_close((uv_handle_t *)&c->tcp, on_tcp_closed_retry);
      return;
    }
    fail(c, RQ_SMTP_ERR_CONNECT, "Could not connect to %s.", c->last_connect_err);
    return;
  }
  c->state = C_OPEN;
  addr_text(c->use_literal ? (const struct sockaddr *)&c->literal : c->ai_next->ai_addr, c->peer, sizeof c->peer);
  uv_tcp_nodelay(&c->tcp, 1);
  uv_tcp_keepalive(&c->tcp, 1, 60);
  int r = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (r != 0) {
    fail(c, RQ_SMTP_ERR_CONNECT, "Could not read from %s: %s.", c->host, uv_strerror(r));
    return;
  }
  emit_type(c, RQ_CONN_EV_CONNECTED);
}

/* Connects to the literal address, or to c->ai_next and its successors. */
static void try_next(struct rq_smtp_conn *c) {
  const struct sockaddr *sa = NULL;
  if (c->use_literal) {
    sa = (const struct sockaddr *)&c->literal;
  } else {
    c->ai_next = next_usable(c, c->ai_next);
    if (c->ai_next) sa = c->ai_next->ai_addr;
  }
  if (!sa) {
    if (c->saw_forbidden) fail_boundary(c);
    else fail(c, RQ_SMTP_ERR_DNS, "%s has no IPv4 or IPv6 address.", c->host);
    return;
  }
  int r = uv_tcp_init(c->loop, &c->tcp);
  if (r == 0) {
    c->tcp.data = c;
    c->tcp_open = 1;
    c->handles++;
    c->creq.data = c;
    r = uv_tcp_connect(&c->creq, &c->tcp, sa, on_connect);
  }
  if (r != 0) {
    /* Reported from the loop: try_next also runs inside connect(). */
    char msg[200];
    snprintf(msg, sizeof msg, "Could not connect to %s port %d: %s.", c->host, c->port, uv_strerror(r));
    c->state = C_CONNECTING;
    fail_later(c, RQ_SMTP_ERR_CONNECT, msg);
  }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  struct rq_smtp_conn *c = req->data;
  c->gai_pending = 0;
  c->resolved_at = uv_now(c->loop);
  c->ai_list = res;
  c->ai_next = res;
  if (c->state == C_CLOSING) {
    maybe_free(c);
    return;
  }
  if (status < 0) {
    fail(c, RQ_SMTP_ERR_DNS, "The name %s could not be resolved: %s.", c->host, uv_strerror(status));
    return;
  }
  try_next(c);
}

void rq_smtp_conn_connect(struct rq_smtp_conn *c, const char *host, int port) {
  if (c->state != C_NEW) return;
  c->state = C_CONNECTING;
  c->port = port;
  size_t n = strlen(host);
  if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
    host++;
    n -= 2;
  }
  if (n >= sizeof c->host) n = sizeof c->host - 1;
  memcpy(c->host, host, n);
  c->host[n] = '\0';
  char why[300];
  if (rq_netpolicy_check_host(c->policy, c->host, why, sizeof why) != 0) {
    char msg[360];
    snprintf(msg, sizeof msg, "Not connecting: %s; nothing was connected.", why);
    fail_later(c, RQ_SMTP_ERR_POLICY, msg);
    return;
  }
  if (uv_ip4_addr(c->host, port, (struct sockaddr_in *)&c->literal) == 0 ||
      uv_ip6_addr(c->host, port, (struct sockaddr_in6 *)&c->literal) == 0) {
    c->use_literal = 1;
    try_next(c);
    return;
  }
  char port_s[8];
  snprintf(port_s, sizeof port_s, "%d", port);
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  c->gai.data = c;
  int r = uv_getaddrinfo(c->loop, &c->gai, on_resolved, c->host, port_s, &hints);
  if (r != 0) {
    char msg[300];
    snprintf(msg, sizeof msg, "The name %s could not be resolved: %s.", c->host, uv_strerror(r));
    fail_later(c, RQ_SMTP_ERR_DNS, msg);
    return;
  }
  c->gai_pending = 1;
}

/* ---- life ------------------------------------------------------------------------ */

struct rq_smtp_conn *rq_smtp_conn_new(uv_loop_t *loop, struct rq_smtp_conn_shared *sh, rq_smtp_conn_cb cb,
                                      void *data) {
  struct rq_smtp_conn *c = rq_xcalloc(1, sizeof *c);
  c->loop = loop;
  c->sh = sh;
  c->cb = cb;
  c->data = data;
  uv_timer_init(loop, &c->timer);
  c->timer.data = c;
  c->handles = 1;
  rq_smtp_reader_init(&c->rd);
  return c;
}

void *rq_smtp_conn_data(const struct rq_smtp_conn *c) {
  return c->data;
}
