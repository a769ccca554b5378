/* smtp_peek: an SMTP server's certificate, without a login. See smtp_peek.h. */
#include "smtp_peek.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp.h"
#include "smtp_conn.h"
#include "smtp_proto.h"
#include "tlsio.h"
#include "util.h"

enum step { P_CONNECT, P_BANNER, P_EHLO, P_STARTTLS, P_HANDSHAKE, P_DONE };

/* One exchange; freed on the connection's CLOSED event. */
struct peek {
  struct rq_smtp_conn_shared sh;
  struct rq_smtp_conn *io;
  SSL_CTX *ctx;
  enum step step;
  char host[256];
  char helo[256];
  int implicit_tls;
  rq_smtp_peek_cb cb;
  void *arg;
  int reported;
};

static void report(struct peek *p, int err, const char *msg, X509 *cert) {
  if (p->reported) return;
  p->reported = 1;
  p->cb(err, msg, cert, p->arg);
}

static void give_up(struct peek *p, int err, const char *msg) {
  report(p, err, msg, NULL);
  rq_smtp_conn_close(p->io, 0, 0);
}

static void write_line(struct peek *p, const char *line) {
  rq_smtp_conn_write(p->io, line, strlen(line), 0); /* a failure arrives as ERROR */
}

static void on_reply(struct peek *p, int code, const char *raw, size_t len) {
  char line[300];
  switch (p->step) {
  case P_BANNER:
    if (code != 220) return give_up(p, RQ_SMTP_ERR_REJECTED, "The server refused the session in its greeting.");
    snprintf(line, sizeof line, "EHLO %s\r\n", p->helo);
    write_line(p, line);
    p->step = P_EHLO;
    return;
  case P_EHLO: {
    struct rq_smtp_caps caps;
    if (code < 200 || code > 299) return give_up(p, RQ_SMTP_ERR_REJECTED, "The server refused EHLO.");
    rq_smtp_caps_parse(raw, len, &caps);
    if (!caps.starttls)
      return give_up(p, RQ_SMTP_ERR_NO_STARTTLS,
                     "The server does not offer STARTTLS: check smtp_port and smtp_security (tls for port 465).");
    write_line(p, "STARTTLS\r\n");
    p->step = P_STARTTLS;
    return;
  }
  case P_STARTTLS:
    if (code != 220) return give_up(p, RQ_SMTP_ERR_NO_STARTTLS, "The server refused STARTTLS.");
    p->step = P_HANDSHAKE;
    rq_smtp_conn_start_tls(p->io, p->ctx, p->host, 0);
    return;
  default:
    return;
  }
}

static void on_io(struct rq_smtp_conn *io, const struct rq_smtp_conn_event *ev) {
  struct peek *p = rq_smtp_conn_data(io);
  switch (ev->type) {
  case RQ_CONN_EV_CONNECTED:
    if (p->implicit_tls) {
      p->step = P_HANDSHAKE;
      rq_smtp_conn_start_tls(io, p->ctx, p->host, 0);
    } else {
      p->step = P_BANNER;
    }
    return;
  case RQ_CONN_EV_REPLY: on_reply(p, ev->code, ev->raw, ev->len); return;
  case RQ_CONN_EV_TLS_READY: {
    X509 *cert = rq_smtp_conn_peer_cert(io);
    if (cert) report(p, 0, "", cert);
    else report(p, RQ_SMTP_ERR_TLS, "The server sent no certificate.", NULL);
    p->step = P_DONE;
    if (!p->implicit_tls) write_line(p, "QUIT\r\n");
    rq_smtp_conn_close(io, !p->implicit_tls, 1000);
    return;
  }
  case RQ_CONN_EV_TIMER: give_up(p, RQ_SMTP_ERR_TIMEOUT, "The server did not answer in time."); return;
  case RQ_CONN_EV_ERROR: report(p, ev->err, ev->msg, NULL); return;
  case RQ_CONN_EV_CLOSED:
    report(p, RQ_SMTP_ERR_CLOSED, "The connection closed.", NULL);
    SSL_CTX_free(p->ctx);
    free(p);
    return;
  default: return;
  }
}

int rq_smtp_peek(uv_loop_t *loop, const struct rq_smtp_peek_opts *o, rq_smtp_peek_cb cb, void *arg) {
  char err[256];
  if (!o || !o->host || !*o->host || strlen(o->host) >= 256 || o->port < 1 || o->port > 65535 || !cb) return -1;
  SSL_CTX *ctx = rq_tlsio_ctx_new(NULL, err, sizeof err);
  if (!ctx) return -1;
  struct peek *p = rq_xcalloc(1, sizeof *p);
  p->ctx = ctx;
  p->cb = cb;
  p->arg = arg;
  p->implicit_tls = o->implicit_tls;
  snprintf(p->host, sizeof p->host, "%s", o->host);
  snprintf(p->helo, sizeof p->helo, "%s", o->helo && rq_smtp_helo_ok(o->helo) ? o->helo : "localhost");
  p->io = rq_smtp_conn_new(loop, &p->sh, on_io, p);
  rq_smtp_conn_set_netpolicy(p->io, o->netpolicy);
  rq_smtp_conn_timer(p->io, (uint64_t)(o->timeout_ms > 0 ? o->timeout_ms : 15000));
  rq_smtp_conn_connect(p->io, p->host, o->port);
  return 0;
}
