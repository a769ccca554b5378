/*
 * smtp: the worker's SMTP client transport, one transaction per call, on
 * libcurl (lib/smtp.c does the protocol) driven by curluv.
 *
 * Owns: a pool of reusable easy handles, per-key connection limiters with
 * a FIFO of waiting transactions, and the reading of the dialogue: which
 * command was last sent (the stage) and every server reply, so the result
 * carries each recipient's own reply and the exact text of the one that
 * ended the transaction. It does not classify outcomes (classify.c does).
 *
 * Implements the client side of RFC 5321 (SMTP) through libcurl, with
 * RFC 3207 (STARTTLS), RFC 8314 (implicit TLS), RFC 4954 (AUTH), and reads
 * RFC 3463 / RFC 2034 enhanced status codes from replies.
 *
 * Secrets: the password goes to libcurl only. The dialogue reader drops
 * every line we send from AUTH until the server ends the exchange, and
 * nothing sent is ever kept or logged; only replies are kept.
 *
 * libcurl 7.88 facts this module is built around:
 *   - CURLOPT_MAIL_RCPT_ALLLOWFAILS (three Ls) lets a transaction go on
 *     past rejected recipients; if every RCPT fails curl ends with
 *     CURLE_SEND_ERROR ("RCPT failed: N (last error)") without DATA.
 *   - A DATA reply other than 354 ends with CURLE_SEND_ERROR; a final-dot
 *     reply other than 250 with CURLE_WEIRD_SERVER_REPLY (seen with
 *     7.88.1); CURLINFO_RESPONSE_CODE holds the last code. The result
 *     carries the reply itself (stage, code, data_code) either way.
 *   - curl waits for the final-dot reply, and for the QUIT reply when it
 *     closes a connection, synchronously (smtp_block_statemach; curl issue
 *     #8555, "known issue"): the whole loop stalls meanwhile, up to the
 *     response timeout. Keep that timeout modest.
 */
#ifndef RQ_SMTP_H
#define RQ_SMTP_H

#include <stddef.h>

#include "curluv.h"

/* XX(name, code, message): rq_smtp_send's errors. */
#define RQ_SMTP_ERRNO_MAP(XX)                                                                \
  XX(INVAL, -1, "invalid SMTP target or envelope (empty host, bad port, CR/LF or control "  \
                "characters in an address, no recipients)")                                  \
  XX(CURL, -2, "libcurl refused the transfer options")                                       \
  XX(START, -3, "the transfer could not be started (shutting down?)")

enum rq_smtp_errno {
#define XX(name, code, msg) RQ_SMTP_E##name = (code),
  RQ_SMTP_ERRNO_MAP(XX)
#undef XX
};

const char *rq_smtp_strerror(int err);

enum rq_smtp_security {
  RQ_SMTP_STARTTLS_TRY,      /* smtp://, STARTTLS when offered (platform smtp://) */
  RQ_SMTP_STARTTLS_REQUIRED, /* smtp://, fail unless STARTTLS succeeds */
  RQ_SMTP_IMPLICIT_TLS,      /* smtps:// */
  RQ_SMTP_PLAIN,             /* smtp://, never STARTTLS */
};

/* Where and how to send. Every pointer is borrowed during rq_smtp_send
 * only: libcurl copies string options, and the limiter copies the key. */
struct rq_smtp_target {
  const char *host; /* name or address; IPv6 without brackets is fine */
  int port;         /* 1-65535 */
  enum rq_smtp_security security;
  const char *user; /* NULL or "": no AUTH */
  const char *password;
  int tls_verify;        /* 0: accept self-signed or unknown certificates (this transfer only) */
  const char *ca_file;   /* optional CA bundle used instead of the system one (tests) */
  const char *key;       /* identity for connection limiting, e.g. "tenant:host:port:user";
                            NULL = "host:port" */
  int max_connections;   /* concurrent transactions per key; 0 = no limit of ours */
  long connect_timeout_ms; /* TCP connect + implicit TLS handshake; 0 = 30 s */
  long response_timeout_ms; /* each reply (rounded up to seconds for curl 7.88); also the
                               most a stalled upload may take; 0 = 60 s */
  long timeout_ms;       /* the whole transaction, queueing in curl included; 0 = 10 min */
  const char *helo_name; /* EHLO/HELO name (sent as the URL path); NULL = curl's default
                            (this host's name) */
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
  int curl_code;         /* CURLE_OK when the final dot got a 250 */
  char curl_error[256];  /* curl's message for curl_code, "" when OK */
  int stage;             /* enum rq_smtp_stage (classify.h) reached when it ended */
  int code;              /* the last reply: final-dot reply on success, else the one that */
  char enhanced[16];     /* ended the transaction (0 when none, e.g. connect failures) */
  char reply[513];
  size_t n_rcpts;
  struct rq_rcpt_reply *rcpts; /* n_rcpts entries */
  int accepted;          /* RCPTs answered 2xx */
  int data_code;         /* reply to the final dot, 0 if not reached */
  double seconds;        /* transaction time as curl measured it (excludes our queueing) */
  int reused_connection; /* 1 when no new connection was opened */
};

typedef void (*rq_smtp_cb)(const struct rq_smtp_result *res, void *arg);

struct rq_smtp;

/* The transport on curl's multi handle. curl must outlive it. */
struct rq_smtp *rq_smtp_new(struct rq_curl *curl);

/* Sends one transaction: MAIL FROM:<mail_from> ("" for the null sender),
 * RCPT TO each of rcpts (going on past rejected ones), DATA with msg
 * (libcurl dot-stuffs it; it should use CRLF line ends). msg/len are
 * borrowed until the callback; everything else only during this call.
 * A transaction over its key's max_connections waits in a FIFO and starts
 * when a slot frees.
 * Returns 0 and cb runs exactly once later (with CURLE_ABORTED_BY_CALLBACK
 * when curluv closes first), or a negative RQ_SMTP_E* and cb never runs. */
int rq_smtp_send(struct rq_smtp *s, const struct rq_smtp_target *t, const char *mail_from,
                 const char *const *rcpts, size_t n_rcpts, const char *msg, size_t len,
                 rq_smtp_cb cb, void *arg);

/* Transactions accepted by rq_smtp_send whose callback has not run
 * (running and waiting). */
int rq_smtp_pending(const struct rq_smtp *s);

/* Frees the transport. Call it when no transaction is pending, i.e. after
 * rq_curl_close's callback (which completes every transaction). */
void rq_smtp_free(struct rq_smtp *s);

/* The dialogue reader on its own, for unit tests: feed it what libcurl's
 * debug callback would see (curl_infotype, bytes) and read the result's
 * dialogue fields (stage, code, enhanced, reply, rcpts, accepted,
 * data_code; rcpts points into d). */
struct rq_smtp_dialog;
struct rq_smtp_dialog *rq_smtp_dialog_new(size_t n_rcpts);
void rq_smtp_dialog_feed(struct rq_smtp_dialog *d, int type, const char *data, size_t len);
void rq_smtp_dialog_result(const struct rq_smtp_dialog *d, struct rq_smtp_result *out);
int rq_smtp_dialog_in_auth(const struct rq_smtp_dialog *d); /* 1 while our lines are credentials */
void rq_smtp_dialog_free(struct rq_smtp_dialog *d);

#endif
