/*
 * smtp: the worker's SMTP client transport, one transaction per call,
 * non-blocking from the first DNS lookup to the last QUIT, on libuv with
 * OpenSSL (smtp_conn.c: one connection; tlsio.c: TLS over memory BIOs;
 * smtp_proto.c: replies, EHLO keywords, dot-stuffing, commands).
 *
 * Why hand-written, not libcurl: libcurl 7.88's SMTP waits for the reply
 * to the final dot, and for the QUIT reply when it closes a connection,
 * synchronously (smtp_block_statemach; curl issue #8555, "More
 * non-blocking" in curl's TODO). One slow or silent server at the final
 * dot would freeze every other send, the heartbeat and the Redis I/O of
 * the worker, and peers would then reclaim its jobs and send them twice.
 * libcurl stays for Mailgun's HTTP API (mailgun.c over curluv.c).
 *
 * Owns: a connection pool keyed by (host, port, security, user,
 * tls_verify, ca_file, EHLO name) with idle connections reused LIFO, an
 * idle timeout and caps; per-key connection limits (target.key,
 * max_connections) with a FIFO of waiting transactions; a global cap; the
 * SSL_CTX cache; and the story of each transaction: the stage reached and
 * every server reply, so the result carries each recipient's own reply and
 * the exact text of the one that ended the transaction. It classifies only
 * its own failures (rq_smtp_classify_failure); replies go to classify.c.
 *
 * Implements the client side of RFC 5321 (SMTP), RFC 1870 (SIZE), RFC 2920
 * (PIPELINING: MAIL, every RCPT and DATA in one write when offered),
 * RFC 3207 (STARTTLS), RFC 8314 (implicit TLS), RFC 4954 with RFC 4616
 * (AUTH PLAIN, or LOGIN when PLAIN is not offered; SASL XOAUTH2 with an
 * OAuth2 access token for routes with smtp_auth=xoauth2, as
 * https://developers.google.com/gmail/imap/xoauth2-protocol defines it:
 * an error comes as a 334 challenge of base64 JSON, answered with an empty
 * line, then the final 5xx), RFC 6152 (8BITMIME),
 * RFC 6531 (SMTPUTF8 envelopes) and reads RFC 2034 / RFC 3463 enhanced
 * status codes.
 *
 * Secrets: the password is copied for the transaction's life only (wiped
 * when it ends), sent only after TLS (unless security is PLAIN or
 * STARTTLS_TRY_INSECURE), and nothing we send is ever logged or kept;
 * only replies are kept. With a tls_pin, nothing is sent over TLS before
 * the server's key matched.
 *
 * Every wait is bounded: DNS + connect + implicit TLS + the greeting by the connect
 * timeout, each reply (and each stalled write) by the response timeout,
 * the whole transaction, queueing included, by the transaction timeout;
 * QUIT is sent after the result is reported and its wait is short.
 *
 * The process must ignore SIGPIPE (relayq-worker's main does): a server
 * closing mid-write is reported as a dropped connection.
 */
#ifndef RQ_SMTP_H
#define RQ_SMTP_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "classify.h"

/* XX(name, code, message): rq_smtp_send's errors. */
#define RQ_SMTP_ERRNO_MAP(XX)                                                                \
  XX(INVAL, -1, "invalid SMTP target or envelope (empty host, bad port, CR/LF or control "  \
                "characters in an address, no recipients)")                                  \
  XX(START, -3, "the transaction could not be started (the transport is closing)")

enum rq_smtp_errno {
#define XX(name, code, msg) RQ_SMTP_E##name = (code),
  RQ_SMTP_ERRNO_MAP(XX)
#undef XX
};

const char *rq_smtp_strerror(int err);

/* XX(name, code, message): how a transaction ended (rq_smtp_result.err),
 * in the mail core's transport-neutral failure vocabulary (classify.h,
 * enum rq_fail), so the classification and the circuit breaker read an
 * SMTP failure exactly as any other transport's. A server reply that ended
 * it is in code/enhanced/reply whatever err says. */
#define RQ_SMTP_ERR_MAP(XX)                                                                  \
  XX(OK, RQ_FAIL_NONE, "delivered")                                                          \
  XX(DNS, RQ_FAIL_DNS, "the server's name could not be resolved")                            \
  XX(CONNECT, RQ_FAIL_CONNECT, "could not connect to the server")                            \
  XX(TIMEOUT, RQ_FAIL_TIMEOUT, "the server did not answer in time")                          \
  XX(CLOSED, RQ_FAIL_CLOSED, "the connection dropped")                                       \
  XX(PROTOCOL, RQ_FAIL_PROTOCOL, "the server's reply is not SMTP")                           \
  XX(TLS, RQ_FAIL_TLS, "the TLS handshake failed")                                           \
  XX(TLS_CERT, RQ_FAIL_TLS_CERT, "the server's TLS certificate failed verification")         \
  XX(TLS_MISMATCH, RQ_FAIL_TLS_MISMATCH, "no TLS version or cipher in common, or no TLS on this port") \
  XX(TLS_LOCAL, RQ_FAIL_TLS_LOCAL, "the worker's TLS setup failed")                          \
  XX(NO_STARTTLS, RQ_FAIL_NO_STARTTLS, "STARTTLS is required but the server does not offer or refuses it") \
  XX(AUTH, RQ_FAIL_AUTH, "the login failed")                                                 \
  XX(REJECTED, RQ_FAIL_REJECTED, "the server refused the transaction")                       \
  XX(ABORTED, RQ_FAIL_ABORTED, "the transport was closed before the transaction ended") \
  XX(POLICY, RQ_FAIL_POLICY, "refused by policy: the network boundary, or a login the server cannot take") \
  XX(TLS_PIN, RQ_FAIL_TLS_PIN, "the server's TLS key is not the pinned one")

enum rq_smtp_err {
#define XX(name, code, msg) RQ_SMTP_ERR_##name = (code),
  RQ_SMTP_ERR_MAP(XX)
#undef XX
};

/* "ok", "dns", "connect", "timeout", "closed", "protocol", "tls",
 * "tls_cert", "tls_mismatch", "tls_local", "no_starttls", "auth",
 * "rejected", "aborted", "policy", "tls_pin"; "unknown" otherwise. */
const char *rq_smtp_err_name(int err);

enum rq_smtp_security {
  RQ_SMTP_STARTTLS_TRY,      /* STARTTLS when offered (platform smtp://); a failed handshake
                                fails the transaction, it never falls back to plain text */
  RQ_SMTP_STARTTLS_REQUIRED, /* fail unless STARTTLS succeeds */
  RQ_SMTP_IMPLICIT_TLS,      /* TLS from the first byte (smtps://, port 465) */
  RQ_SMTP_PLAIN,             /* never STARTTLS; AUTH in clear text allowed */
  RQ_SMTP_STARTTLS_TRY_INSECURE, /* STARTTLS when offered, and a login may then go in clear text
                                    (platform smtp+insecure://); RQ_SMTP_STARTTLS_TRY never sends
                                    one in clear: it fails NO_STARTTLS instead */
};

/* Where and how to send. Every pointer is borrowed during rq_smtp_send
 * only (the transport copies what it keeps). */
struct rq_smtp_target {
  const char *host; /* name or address; IPv6 with or without brackets */
  int port;         /* 1-65535 */
  enum rq_smtp_security security;
  const char *user; /* NULL or "": no AUTH. Also none when the server offers no AUTH at all */
  const char *password;  /* with xoauth2: the OAuth2 access token */
  int xoauth2;           /* 1: SASL XOAUTH2 (RFC 7628's predecessor as Google and Microsoft
                            define it) instead of PLAIN/LOGIN; the server must offer it */
  int tls_verify;        /* 0: accept self-signed or unknown certificates */
  const char *ca_file;   /* optional CA bundle used instead of the system one (tests) */
  const char *key;       /* identity for connection limiting, e.g. "tenant|host|port|user";
                            NULL = "host:port" */
  int max_connections;   /* connections open per key; 0 = only the global cap */
  long connect_timeout_ms; /* DNS + TCP connect + implicit TLS handshake, then the greeting; 0 = 30 s */
  long response_timeout_ms; /* each reply, and each stalled write; 0 = 60 s */
  long timeout_ms;       /* the whole transaction, queueing included; 0 = 10 min */
  const char *helo_name; /* EHLO/HELO name; NULL = this host's name */
  /* The saas boundary (docs/security.md). netpolicy: addresses never
   * connected to (borrowed, must outlive the transport); NULL = any.
   * require_auth: with a user, a server that offers no usable AUTH (or
   * whose EHLO reply was too long to read whole) gets nothing: the
   * transaction ends RQ_SMTP_ERR_POLICY. */
  const struct rq_netpolicy *netpolicy;
  int require_auth;
  /* "sha256//BASE64[,...]": trust the server by its key (tlsio.h); then
   * tls_verify is not used. NULL or "": by certificate. */
  const char *tls_pin;
  /* Optional: called once, with the callback's arg, when the transaction
   * has a usable connection: a new one greeted and through EHLO, STARTTLS
   * and AUTH, or a pooled one (then possibly from inside rq_smtp_send).
   * Never after cb; not called when the connection never became usable.
   * Lets the caller tell a server that answers from one that is silent. */
  void (*ready)(void *arg);
};

/* One recipient's reply, in the order the recipients were given. code 0:
 * never answered (the session ended before its RCPT was answered). */
struct rq_rcpt_reply {
  int code;
  char enhanced[16]; /* "5.1.1" or "" */
  char text[257];    /* reply text after code and enhanced code, lines joined by a space */
};

/* A transaction's outcome. Owned by the transport; valid only during the
 * callback (copy what you keep). */
struct rq_smtp_result {
  int err;               /* enum rq_smtp_err (an enum rq_fail): 0 when the final dot got a 2xx */
  char errmsg[256];      /* what went wrong, a sentence; "" when OK */
  int stage;             /* enum rq_smtp_stage (classify.h) reached when it ended */
  int code;              /* the last reply: final-dot reply on success, else the one that */
  char enhanced[16];     /* ended the transaction (0 when none, e.g. connect failures) */
  char reply[513];
  size_t n_rcpts;
  struct rq_rcpt_reply *rcpts; /* n_rcpts entries */
  int accepted;          /* RCPTs answered 2xx */
  int data_code;         /* reply to the final dot, 0 if not reached */
  double seconds;        /* from getting a connection (or starting one) to the result */
  int reused_connection; /* 1 when the transaction ran on a pooled connection */
  int xoauth2;           /* the login was (or was to be) SASL XOAUTH2 */
};

typedef void (*rq_smtp_cb)(const struct rq_smtp_result *res, void *arg);

struct rq_smtp;
struct rq_curl;
struct rq_netpolicy;
struct rq_class;

/* The transport on loop, with a connection pool. */
struct rq_smtp *rq_smtp_new_loop(uv_loop_t *loop);

/* For one-shot callers that share curl's loop (`relayq tenant test`, which
 * may send through Mailgun instead): runs on that loop (curl itself is not
 * used) and keeps no idle connection,
 * so once the loop has run dry nothing of the transport is left on it and
 * rq_smtp_free frees at once. Prefer rq_smtp_new_loop + rq_smtp_close. */
struct rq_smtp *rq_smtp_new(struct rq_curl *curl);

/* Pool settings; 0 fields keep the default (in brackets). */
struct rq_smtp_limits {
  int max_connections;      /* open connections in all [512] */
  int max_idle_per_server;  /* idle ones per pool key [64] */
  int max_idle;             /* idle ones in all [256] */
  long idle_timeout_ms;     /* an idle connection is closed (QUIT) after [30000] */
};
void rq_smtp_set_limits(struct rq_smtp *s, const struct rq_smtp_limits *l);

/* Sends one transaction: MAIL FROM:<mail_from> ("" for the null sender),
 * RCPT TO each of rcpts (going on past rejected ones; when none is
 * accepted it ends without DATA), DATA with msg, dot-stuffed on the fly
 * (msg should use CRLF line ends; a final CRLF is added when missing).
 * msg/len are borrowed until the callback; everything else only during
 * this call. A transaction over its key's max_connections, or over the
 * global cap, waits in a FIFO (its timeout_ms runs meanwhile).
 * Returns 0 and cb runs exactly once, later, never from inside this call
 * (with RQ_SMTP_ERR_ABORTED when rq_smtp_close comes first); or a
 * negative RQ_SMTP_E* and cb never runs. */
int rq_smtp_send(struct rq_smtp *s, const struct rq_smtp_target *t, const char *mail_from,
                 const char *const *rcpts, size_t n_rcpts, const char *msg, size_t len,
                 rq_smtp_cb cb, void *arg);

/* rq_smtp_send for a segmented message (msg.h, finished): its bytes are
 * produced while they are sent, a window at a time as the socket takes
 * them, so the encoded message is never held whole. m is borrowed until
 * the callback. SIZE= and BODY=8BITMIME come from m->len and m->has_8bit. */
struct rq_msg;
int rq_smtp_send_msg(struct rq_smtp *s, const struct rq_smtp_target *t, const char *mail_from,
                     const char *const *rcpts, size_t n_rcpts, const struct rq_msg *m, rq_smtp_cb cb,
                     void *arg);

/* ---- checking a server without sending (relayq tenant verify) ------------ */

/* How far rq_smtp_check goes before QUIT. */
enum rq_smtp_until {
  RQ_SMTP_UNTIL_AUTH = 1, /* the session: connect, TLS, greeting, EHLO, STARTTLS, AUTH */
  RQ_SMTP_UNTIL_RCPT,     /* then MAIL FROM and RCPT TO, never DATA: nothing is delivered */
};

/* One thing a check saw, as it happened; valid during the callback. Our
 * commands are named by verb only: no argument, no credential. */
enum rq_smtp_step_kind {
  RQ_SMTP_STEP_CONNECTED, /* TCP is up: peer, dns_ms */
  RQ_SMTP_STEP_TLS,       /* a handshake completed: tls, cert, verify */
  RQ_SMTP_STEP_COMMAND,   /* a command went out: verb ("EHLO", "STARTTLS", "AUTH", "MAIL", "RCPT") */
  RQ_SMTP_STEP_REPLY,     /* a complete reply came in: code, raw (its lines), len */
};
struct rq_smtp_step {
  enum rq_smtp_step_kind kind;
  const char *peer;  /* CONNECTED: the address connected to */
  double dns_ms;     /* CONNECTED: how long the name took to resolve; -1: an address literal */
  const char *tls;   /* TLS: "TLSv1.3 / TLS_AES_256_GCM_SHA384" */
  void *cert;        /* TLS: the server's certificate (X509 *, borrowed) */
  long verify;       /* TLS: X509_V_OK, or why the chain would not verify (required or not) */
  const char *verb;  /* COMMAND */
  int code;          /* REPLY */
  const char *raw;
  size_t len;
};
typedef void (*rq_smtp_step_cb)(const struct rq_smtp_step *st, void *arg);

/* Connects to t as rq_smtp_send would (same session, TLS, login and
 * network boundary), on a connection of its own, up to `until`, then
 * QUIT. With RQ_SMTP_UNTIL_RCPT, MAIL FROM:<mail_from> and RCPT TO each
 * of rcpts, without pipelining. step (may be NULL) sees each step; cb
 * gets the result (err 0 when every step passed: for UNTIL_RCPT every
 * recipient accepted; data_code is always 0). Callback contract as
 * rq_smtp_send. */
int rq_smtp_check(struct rq_smtp *s, const struct rq_smtp_target *t, enum rq_smtp_until until,
                  const char *mail_from, const char *const *rcpts, size_t n_rcpts, rq_smtp_step_cb step,
                  rq_smtp_cb cb, void *arg);

/* Transactions accepted by rq_smtp_send whose callback has not run
 * (running and waiting). */
int rq_smtp_pending(const struct rq_smtp *s);

/* Counters, for metrics and tests. */
struct rq_smtp_stats {
  uint64_t connections_opened; /* connection attempts started */
  uint64_t transactions_reused; /* transactions that ran on a pooled connection */
  uint64_t retried_dead;       /* transactions moved to a fresh connection because a pooled
                                  one turned out closed */
  int open;                    /* connections open now (any state) */
  int idle;                    /* of which idle in the pool */
  int waiting;                 /* transactions waiting for a connection */
};
void rq_smtp_stats(const struct rq_smtp *s, struct rq_smtp_stats *out);

/* Shutdown: every transaction still pending is called back now, before
 * this returns, with RQ_SMTP_ERR_ABORTED; idle connections get QUIT;
 * every connection closes. rq_smtp_send fails with RQ_SMTP_ESTART from
 * here on (callbacks may still call it). Once the last uv handle has
 * closed, s is freed and closed_cb(arg) (may be NULL) runs, possibly
 * before this returns when nothing was open. Safe from a transaction's
 * callback. Do not call rq_smtp_free after it. */
void rq_smtp_close(struct rq_smtp *s, void (*closed_cb)(void *arg), void *arg);

/* Frees a transport with nothing open (no pending transaction, no
 * connection). Otherwise it logs that this is a bug and falls back to
 * rq_smtp_close(s, NULL, NULL): the loop must then run again. */
void rq_smtp_free(struct rq_smtp *s);

/* Classifies a transaction's result with the mail core's failure table
 * (rq_classify_failure): a reply that ended it goes through
 * rq_classify_smtp at its stage; our own failures by their kind (DNS,
 * connect, timeouts including the greeting's, dropped connection and
 * shutdown are connect TEMP; TLS, login and protocol as the table says).
 * Never yields RQ_OK for a failure. */
void rq_smtp_classify_failure(const struct rq_smtp_result *res, struct rq_class *out);

/* The transaction story on its own, for unit tests: feed it commands
 * (RQ_SMTP_DIALOG_OUT) and server bytes (RQ_SMTP_DIALOG_IN) and read the
 * result's dialogue fields (stage, code, enhanced, reply, rcpts, accepted,
 * data_code; rcpts points into d). The transport records each
 * transaction with the same code. */
#define RQ_SMTP_DIALOG_IN 1
#define RQ_SMTP_DIALOG_OUT 2
struct rq_smtp_dialog;
struct rq_smtp_dialog *rq_smtp_dialog_new(size_t n_rcpts);
void rq_smtp_dialog_feed(struct rq_smtp_dialog *d, int type, const char *data, size_t len);
void rq_smtp_dialog_result(const struct rq_smtp_dialog *d, struct rq_smtp_result *out);
int rq_smtp_dialog_in_auth(const struct rq_smtp_dialog *d); /* 1 while our lines are credentials */
void rq_smtp_dialog_free(struct rq_smtp_dialog *d);

#endif
