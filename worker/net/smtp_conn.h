/*
 * smtp_conn: one client connection to an SMTP server, on libuv: DNS
 * (uv_getaddrinfo, every address tried in turn), uv_tcp_connect, reading
 * server replies (framed by smtp_proto's reader), writing commands and
 * message data, TLS on demand (tlsio.c, for implicit TLS or after a 220
 * to STARTTLS), one timer for the owner, and closing, gracefully (TLS
 * close_notify, FIN, a bounded wait for the server's EOF) or at once.
 *
 * It knows no SMTP command: smtp.c drives the dialogue through the events
 * below and decides what every reply means.
 *
 * Ownership and callbacks:
 *   - Events arrive through one callback, from the loop only (never from
 *     inside a call of this API), except RQ_CONN_EV_REPLY/TLS_READY which
 *     may follow each other within one read.
 *   - Write buffers: rq_smtp_conn_write copies what the kernel did not take
 *     at once into a request it owns until libuv's write callback; the
 *     caller's bytes are never kept. RQ_CONN_WRITE_SECRET wipes that copy.
 *   - After RQ_CONN_EV_ERROR the connection is already closing; the only
 *     event left is RQ_CONN_EV_CLOSED, the last one, after which the
 *     connection frees itself (with its TLS session and address list).
 *   - Plain text after a reply that led the owner to start TLS (STARTTLS)
 *     is dropped, never read as if it had come over TLS (RFC 3207 5, the
 *     "STARTTLS command injection" class of bugs).
 */
#ifndef RQ_SMTP_CONN_H
#define RQ_SMTP_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

enum rq_smtp_conn_event_type {
  RQ_CONN_EV_CONNECTED, /* TCP is up; replies are being read */
  RQ_CONN_EV_TLS_READY, /* the TLS handshake completed */
  RQ_CONN_EV_REPLY,     /* one complete reply: code, raw, len */
  RQ_CONN_EV_DRAINED,   /* every queued write has been handed to the kernel */
  RQ_CONN_EV_TIMER,     /* the owner's timer fired */
  RQ_CONN_EV_ERROR,     /* err (enum rq_smtp_err), msg: the connection failed and is closing */
  RQ_CONN_EV_CLOSED,    /* every handle is closed; the connection is freed after this */
};

/* Valid during the callback only. */
struct rq_smtp_conn_event {
  enum rq_smtp_conn_event_type type;
  int code;        /* REPLY: the 3-digit code */
  const char *raw; /* REPLY: the reply's lines, NUL-terminated (at most 8 KB) */
  size_t len;
  int err;         /* ERROR: RQ_SMTP_ERR_* */
  const char *msg; /* ERROR: a sentence */
};

struct rq_smtp_conn;
struct rq_netpolicy;
typedef void (*rq_smtp_conn_cb)(struct rq_smtp_conn *c, const struct rq_smtp_conn_event *ev);

/* Scratch memory shared by every connection of one loop; only used
 * within one callback, never across. Owned by the transport, which must
 * outlive its connections' last event. */
struct rq_smtp_conn_shared {
  char rbuf[65536];  /* bytes read from sockets */
  char plain[16384]; /* decrypted TLS records */
  char cipher[17408]; /* TLS records on their way out (one record plus headroom) */
};

#define RQ_CONN_WRITE_SECRET 1 /* wipe any copy made of these bytes */
#define RQ_CONN_WRITE_QUEUE 2  /* do not try to write now; finish in a later loop turn */

struct rq_smtp_conn *rq_smtp_conn_new(uv_loop_t *loop, struct rq_smtp_conn_shared *sh, rq_smtp_conn_cb cb,
                                      void *data);
void *rq_smtp_conn_data(const struct rq_smtp_conn *c);

/* The network boundary for this connection (borrowed; must outlive it):
 * numeric shorthand hosts and every address it forbids are never
 * connected to (netpolicy.h). NULL (the default): any address. Call
 * before rq_smtp_conn_connect. */
void rq_smtp_conn_set_netpolicy(struct rq_smtp_conn *c, const struct rq_netpolicy *p);

/* Key pins for the TLS session (tlsio.h rq_tlsio_set_pins; copied). Call
 * before rq_smtp_conn_start_tls. NULL or "": none. */
void rq_smtp_conn_set_pins(struct rq_smtp_conn *c, const char *pins);

/* Resolves host (unless it is an IP literal; brackets allowed) and
 * connects to each address in turn until one answers, skipping those the
 * network boundary forbids. Ends in CONNECTED or ERROR (RQ_SMTP_ERR_DNS /
 * RQ_SMTP_ERR_CONNECT; RQ_SMTP_ERR_POLICY when the boundary left no
 * address, and then nothing was connected). The owner bounds it with its
 * timer. */
void rq_smtp_conn_connect(struct rq_smtp_conn *c, const char *host, int port);

/* Starts TLS on the open connection (after CONNECTED for implicit TLS,
 * from the 220 reply to STARTTLS). Ends in TLS_READY or ERROR
 * (RQ_SMTP_ERR_TLS, _TLS_CERT, _TLS_MISMATCH, _TLS_LOCAL; _TLS_PIN when
 * pins are set and the key is none of them: TLS_READY never comes, so
 * nothing is written over that session). */
void rq_smtp_conn_start_tls(struct rq_smtp_conn *c, SSL_CTX *ctx, const char *host, int verify);
int rq_smtp_conn_is_tls(const struct rq_smtp_conn *c);

/* The server's certificate once TLS_READY came (borrowed, valid until
 * CLOSED), or NULL. */
X509 *rq_smtp_conn_peer_cert(const struct rq_smtp_conn *c);

/* For reports (`relayq tenant verify`): the address connected to, once
 * CONNECTED ("" before); the loop time (ms) the name was resolved at (0:
 * an address literal, or not yet); the TLS session (rq_tlsio_describe,
 * -1 before TLS_READY). */
const char *rq_smtp_conn_peer(const struct rq_smtp_conn *c);
uint64_t rq_smtp_conn_resolved_at(const struct rq_smtp_conn *c);
long rq_smtp_conn_tls_describe(const struct rq_smtp_conn *c, char *out, size_t cap);

/* Sends bytes (through TLS once it is up). Returns 0, or -1 when the
 * connection cannot take them (closing, or failed: ERROR follows). */
int rq_smtp_conn_write(struct rq_smtp_conn *c, const void *data, size_t len, int flags);

/* Bytes handed to rq_smtp_conn_write that the kernel has not taken yet. */
size_t rq_smtp_conn_queued(const struct rq_smtp_conn *c);

/* Arms (or re-arms) the owner's timer: TIMER after ms. */
void rq_smtp_conn_timer(struct rq_smtp_conn *c, uint64_t ms);
void rq_smtp_conn_timer_stop(struct rq_smtp_conn *c);

/* Closes. graceful: sends what is queued, TLS close_notify and FIN, then
 * waits up to linger_ms for the server to close its side (reading and
 * dropping what it says, e.g. QUIT's 221); otherwise at once. No event
 * but CLOSED follows. Calling it again does nothing. */
void rq_smtp_conn_close(struct rq_smtp_conn *c, int graceful, uint64_t linger_ms);

#endif
