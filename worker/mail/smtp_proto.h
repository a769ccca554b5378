/*
 * smtp_proto: the pure parts of the SMTP client (no I/O, no allocation
 * except into a caller's rq_buf), so unit tests reach them directly:
 *
 *   - the reply reader: bytes in, complete (possibly multi-line) replies
 *     out, incrementally and with bounded memory;
 *   - EHLO capabilities (RFC 5321 4.1.1.1 and the extensions below);
 *   - the DATA writer: dot-stuffing on the fly (RFC 5321 4.5.2) and the
 *     end-of-data sequence, in chunks, without a copy of the message;
 *   - command builders: MAIL FROM with SIZE= (RFC 1870), BODY=8BITMIME
 *     (RFC 6152) and SMTPUTF8 (RFC 6531) parameters, RCPT TO, AUTH PLAIN
 *     (RFC 4616 initial response, RFC 4954) and the base64 lines of LOGIN;
 *   - validation of what we put on the wire: envelope addresses, the EHLO
 *     name and the server's host name.
 *
 * Hand-written because libcurl's SMTP code blocks the event loop (see
 * smtp.h); OpenSSL's EVP_EncodeBlock does the base64.
 */
#ifndef RQ_SMTP_PROTO_H
#define RQ_SMTP_PROTO_H

#include <stddef.h>
#include <stdint.h>

struct rq_buf;

/* ---- replies ------------------------------------------------------------------ */

/* The most of one reply kept (RFC 5321 4.5.3.1.5 allows 512 bytes a line;
 * we keep 8 KB). Longer lines are cut, the rest of the reply dropped; the
 * reply's end is still found. */
#define RQ_SMTP_REPLY_MAX 8192

/* Incremental reader of server replies. Plain memory (no pointers):
 * embed it; rq_smtp_reader_init before use. */
struct rq_smtp_reader {
  char raw[RQ_SMTP_REPLY_MAX + 3]; /* + a forced "\r\n" after a cut line, + NUL */
  size_t raw_len;
  char head[4]; /* first bytes of the current line, kept even when raw is full */
  size_t head_len;
  int first_code; /* code of the reply's first line; 0 while unknown, -1 when it had none */
  int lines;      /* lines of the current reply seen so far */
};

/* Called once per complete reply. raw: its lines as received (bounded, see
 * above), NUL-terminated; code: the first line's 3-digit code, or 0 when
 * the first line did not start with one. Return nonzero to stop the
 * reader right after this reply (the caller gets the bytes consumed). */
typedef int (*rq_smtp_reply_fn)(void *arg, const char *raw, size_t len, int code);

void rq_smtp_reader_init(struct rq_smtp_reader *r);

/* Feeds server bytes (any split). Returns how many were consumed: len,
 * unless fn asked to stop. Lines without a code inside a reply are kept as
 * text; a line "NNN" or "NNN text" ends the reply (RFC 5321 4.2.1). */
size_t rq_smtp_reader_feed(struct rq_smtp_reader *r, const char *p, size_t len, rq_smtp_reply_fn fn,
                           void *arg);

/* 1 when the reply being read cannot be SMTP: its first line does not
 * start with three digits and a space, '-' or the line end. Known after 4
 * bytes, so a server speaking TLS or HTTP is told apart at once. */
int rq_smtp_reader_bad(const struct rq_smtp_reader *r);

/* 1 when part of a reply has been read but not its end. */
int rq_smtp_reader_partial(const struct rq_smtp_reader *r);

/* ---- EHLO --------------------------------------------------------------------- */

struct rq_smtp_caps {
  unsigned starttls : 1, pipelining : 1, size : 1, eightbitmime : 1, enhanced : 1, smtputf8 : 1,
      auth : 1, auth_plain : 1, auth_login : 1, auth_xoauth2 : 1;
  uint64_t size_max; /* SIZE's argument; 0 when none or 0 (no limit) */
};

/* Reads the keywords of an EHLO reply ("250-host greets\r\n250-SIZE 100\r\n
 * 250 AUTH PLAIN LOGIN\r\n"). The first line is the greeting and is
 * skipped. Keywords are case-insensitive; "AUTH=PLAIN" (an old form) is
 * understood too. */
void rq_smtp_caps_parse(const char *raw, size_t len, struct rq_smtp_caps *out);

/* ---- DATA --------------------------------------------------------------------- */

/* Turns a message into the bytes sent after the 354 reply: each line that
 * starts with '.' gets one more, and the end-of-data ".\r\n" follows a
 * CRLF (one is added when the message does not end with one; the message
 * itself should already use CRLF, which is the builder's job). The message
 * is borrowed; nothing is copied except into the caller's chunks. */
/* The message's next bytes (a window the source owns, valid until the
 * next call) and their count in *len; NULL at the end. */
typedef const char *(*rq_smtp_pull_fn)(void *arg, size_t *len);

struct rq_smtp_stuffer {
  const char *msg; /* the window being stuffed: the whole message, or a pulled one */
  size_t len, off;
  rq_smtp_pull_fn pull; /* NULL once the message has no more windows */
  void *pull_arg;
  size_t seen;    /* message bytes in windows before this one */
  char tail[2];   /* the last two message bytes of those windows */
  int bol;   /* the next message byte starts a line */
  int state; /* 0: message, 1: terminator, 2: done */
  size_t term_off;
  char term[5];
  size_t term_len;
};

void rq_smtp_stuffer_init(struct rq_smtp_stuffer *st, const char *msg, size_t len);

/* The same for a message produced while it is sent (msg.h): pull is
 * called for the next window whenever the last one is stuffed, so at most
 * one window of the message is held. */
void rq_smtp_stuffer_init_pull(struct rq_smtp_stuffer *st, rq_smtp_pull_fn pull, void *arg);

/* Writes the next at most cap bytes (cap >= 2) into out; returns how many.
 * rq_smtp_stuffer_done() is 1 once the end-of-data sequence is out. */
size_t rq_smtp_stuff(struct rq_smtp_stuffer *st, char *out, size_t cap);
int rq_smtp_stuffer_done(const struct rq_smtp_stuffer *st);

/* ---- commands ------------------------------------------------------------------- */

/* Appends "MAIL FROM:<from>[ SIZE=n][ BODY=8BITMIME][ SMTPUTF8]\r\n",
 * parameters only when caps offer them; msg is scanned for 8-bit bytes
 * only when 8BITMIME is offered. */
void rq_smtp_cmd_mail(struct rq_buf *b, const char *from, const char *const *rcpts, size_t n_rcpts,
                      const char *msg, size_t len, const struct rq_smtp_caps *caps);

/* The same with the message's size and 8-bit flag known (a message that
 * is produced while it is sent). */
void rq_smtp_cmd_mail_sized(struct rq_buf *b, const char *from, const char *const *rcpts, size_t n_rcpts,
                            size_t len, int has_8bit, const struct rq_smtp_caps *caps);

/* Appends "RCPT TO:<addr>\r\n". */
void rq_smtp_cmd_rcpt(struct rq_buf *b, const char *addr);

/* Appends "AUTH PLAIN base64(\0user\0password)\r\n". Secrets: the caller
 * wipes b after use (OPENSSL_cleanse). */
void rq_smtp_cmd_auth_plain(struct rq_buf *b, const char *user, const char *password);

/* Appends "AUTH XOAUTH2 base64(user=USER^Aauth=Bearer TOKEN^A^A)\r\n", the
 * initial client response of SASL XOAUTH2 as Google and Microsoft define it
 * (^A is 0x01). Same secrecy rule. */
void rq_smtp_cmd_auth_xoauth2(struct rq_buf *b, const char *user, const char *token);

/* Appends base64(s) "\r\n" (the lines of AUTH LOGIN). Same secrecy rule. */
void rq_smtp_cmd_b64_line(struct rq_buf *b, const char *s);

/* ---- validation ------------------------------------------------------------------- */

/* An envelope address we may send: no CR, LF or other control characters,
 * which would let a value smuggle extra commands, no angle brackets (we
 * add our own), at most 998 bytes. "" only when allow_empty (the null
 * sender of bounces, RFC 5321 4.5.5). */
int rq_smtp_address_ok(const char *a, int allow_empty);

/* An EHLO name: a domain or an address literal "[...]", 1-255 bytes. */
int rq_smtp_helo_ok(const char *h);

/* A server name or address: letters, digits, '.', '-', '_' and ':' (IPv6,
 * optionally in brackets), 1-253 bytes. */
int rq_smtp_host_ok(const char *h);

/* 1 when any byte of p[0..n) is 8-bit (>= 0x80). */
int rq_smtp_has_8bit(const char *p, size_t n);

#endif
