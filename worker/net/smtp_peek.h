/*
 * smtp_peek: fetches an SMTP server's TLS certificate without logging in
 * or sending mail, for `relayq tenant trust` (the "trust this
 * certificate" button of a platform's settings page).
 *
 * Connects the way a route is configured, through the worker's own
 * connection module (smtp_conn.c, so the saas network boundary holds and
 * the address checked is the one connected to): implicit TLS from the
 * first byte, or the greeting, EHLO and STARTTLS (RFC 3207) first. The
 * handshake accepts any certificate (finding out which one the server
 * shows is the point); nothing but EHLO, STARTTLS and QUIT is sent.
 *
 * Ownership: the callback gets the certificate (borrowed, valid during the
 * callback only; X509_up_ref to keep it). cb runs exactly once, from the
 * loop, when rq_smtp_peek returned 0.
 */
#ifndef RQ_SMTP_PEEK_H
#define RQ_SMTP_PEEK_H

#include <openssl/x509.h>
#include <uv.h>

struct rq_netpolicy;

struct rq_smtp_peek_opts {
  const char *host; /* name or address, [IPv6] allowed */
  int port;
  int implicit_tls;  /* 1: TLS at once (465); 0: STARTTLS */
  const char *helo;  /* EHLO name; NULL: "localhost" */
  const struct rq_netpolicy *netpolicy; /* NULL: any address */
  long timeout_ms;   /* whole exchange; 0: 15 s */
};

/* err 0 and cert set, or err an RQ_SMTP_ERR_* (smtp.h) and msg saying why. */
typedef void (*rq_smtp_peek_cb)(int err, const char *msg, X509 *cert, void *arg);

/* Starts the exchange on loop. Returns 0 (cb will run), or -1 (bad
 * options or no TLS context; cb never runs). */
int rq_smtp_peek(uv_loop_t *loop, const struct rq_smtp_peek_opts *o, rq_smtp_peek_cb cb, void *arg);

#endif
