/*
 * test_smtp_proto: the pure parts of the SMTP client (worker/smtp_proto.h):
 * the reply reader, EHLO keywords, dot-stuffing and the end of data,
 * command builders and validation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "check.h"
#include "smtp_proto.h"
#include "util.h"

/* ---- the reply reader --------------------------------------------------------------- */

#define MAX_SEEN 16

struct seen {
  int n;
  int codes[MAX_SEEN];
  char raw[MAX_SEEN][256];
  size_t len[MAX_SEEN];
  int stop_after; /* stop the reader after this many replies (0: never) */
};

static int on_reply(void *arg, const char *raw, size_t len, int code) {
  struct seen *s = arg;
  if (s->n < MAX_SEEN) {
    s->codes[s->n] = code;
    snprintf(s->raw[s->n], sizeof s->raw[s->n], "%s", raw);
    s->len[s->n] = len;
  }
  s->n++;
  return s->stop_after && s->n == s->stop_after;
}

static void feed_all(struct rq_smtp_reader *r, struct seen *s, const char *text, size_t step) {
  size_t len = strlen(text);
  for (size_t off = 0; off < len; off += step) {
    size_t n = len - off < step ? len - off : step;
    size_t used = rq_smtp_reader_feed(r, text + off, n, on_reply, s);
    CHECK_INT(used, ==, n);
  }
}

static void test_reader_splits(void) {
  const char *text = "220 mx.example ESMTP\r\n250-mx.example\r\n250-PIPELINING\r\n250 SIZE 100\r\n"
                     "354 go\r\n250 2.0.0 queued\r\n";
  /* Every split, down to one byte at a time, gives the same replies. */
  for (size_t step = 1; step <= strlen(text); step++) {
    struct rq_smtp_reader r;
    struct seen s = {0};
    rq_smtp_reader_init(&r);
    feed_all(&r, &s, text, step);
    CHECK_INT(s.n, ==, 4);
    CHECK_INT(s.codes[0], ==, 220);
    CHECK_INT(s.codes[1], ==, 250);
    CHECK_STR(s.raw[1], "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 100\r\n");
    CHECK_INT(s.codes[2], ==, 354);
    CHECK_INT(s.codes[3], ==, 250);
    CHECK_INT(rq_smtp_reader_partial(&r), ==, 0);
    CHECK_INT(rq_smtp_reader_bad(&r), ==, 0);
  }
}

static void test_reader_forms(void) {
  struct rq_smtp_reader r;
  struct seen s = {0};
  rq_smtp_reader_init(&r);
  /* A bare code ends a reply; bare LF is accepted; a codeless line inside
   * a reply is text. */
  feed_all(&r, &s, "250\r\n221 bye\n250-first\r\nno code here\r\n250 last\r\n", 1000);
  CHECK_INT(s.n, ==, 3);
  CHECK_INT(s.codes[0], ==, 250);
  CHECK_INT(s.codes[1], ==, 221);
  CHECK_STR(s.raw[2], "250-first\r\nno code here\r\n250 last\r\n");
  /* Not the end yet. */
  feed_all(&r, &s, "250 par", 1000);
  CHECK_INT(s.n, ==, 3);
  CHECK_INT(rq_smtp_reader_partial(&r), ==, 1);
  feed_all(&r, &s, "tial\r\n", 1000);
  CHECK_INT(s.n, ==, 4);
  CHECK_STR(s.raw[3], "250 partial\r\n");
}

static void test_reader_stop(void) {
  struct rq_smtp_reader r;
  struct seen s = {0};
  rq_smtp_reader_init(&r);
  s.stop_after = 1;
  const char *text = "220 go ahead\r\n\x16\x03\x01 not for the plain text reader";
  size_t used = rq_smtp_reader_feed(&r, text, strlen(text), on_reply, &s);
  CHECK_INT(used, ==, strlen("220 go ahead\r\n"));
  CHECK_INT(s.n, ==, 1);
  CHECK_INT(rq_smtp_reader_partial(&r), ==, 0);
}

static void test_reader_bad_and_bounded(void) {
  struct rq_smtp_reader r;
  struct seen s = {0};
  rq_smtp_reader_init(&r);
  /* Known to be wrong after 4 bytes, without waiting for a line end. */
  rq_smtp_reader_feed(&r, "HTTP", 4, on_reply, &s);
  CHECK_INT(rq_smtp_reader_bad(&r), ==, 1);
  rq_smtp_reader_init(&r);
  rq_smtp_reader_feed(&r, "25", 2, on_reply, &s);
  CHECK_INT(rq_smtp_reader_bad(&r), ==, 0);
  rq_smtp_reader_feed(&r, "0x", 2, on_reply, &s);
  CHECK_INT(rq_smtp_reader_bad(&r), ==, 1);
  /* A complete line without a code is delivered with code 0. */
  rq_smtp_reader_init(&r);
  feed_all(&r, &s, "garbage\r\n250 ok\r\n", 3);
  CHECK_INT(s.n, ==, 1);
  CHECK_INT(s.codes[0], ==, 0);

  /* 100 KB of continuation lines and one 50 KB line: memory stays at
   * RQ_SMTP_REPLY_MAX, the end is still found. */
  memset(&s, 0, sizeof s);
  rq_smtp_reader_init(&r);
  for (int i = 0; i < 1000; i++)
    feed_all(&r, &s, "451-4.3.0 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
             37);
  char *junk = rq_xmalloc(50001);
  memset(junk, 'x', 50000);
  junk[50000] = 0;
  feed_all(&r, &s, "451-", 4);
  feed_all(&r, &s, junk, 777);
  free(junk);
  CHECK_INT(r.raw_len, <=, RQ_SMTP_REPLY_MAX + 2);
  feed_all(&r, &s, "\r\n451 4.3.0 the end\r\n", 5);
  CHECK_INT(s.n, ==, 1);
  CHECK_INT(s.codes[0], ==, 451);
  CHECK_INT(s.len[0], <=, RQ_SMTP_REPLY_MAX + 2);
  CHECK_INT(rq_smtp_reader_partial(&r), ==, 0);
}

/* ---- EHLO ---------------------------------------------------------------------------- */

static void test_caps(void) {
  struct rq_smtp_caps c;
  const char *ehlo = "250-PIPELINING greets you\r\n" /* the greeting: a host name, not a keyword */
                     "250-size 35882577\r\n"
                     "250-8BITMIME\r\n"
                     "250-STARTTLS\r\n"
                     "250-ENHANCEDSTATUSCODES\r\n"
                     "250-AUTH=LOGIN\r\n"
                     "250-AUTH CRAM-MD5 PLAIN XOAUTH2\r\n"
                     "250 SMTPUTF8\r\n";
  rq_smtp_caps_parse(ehlo, strlen(ehlo), &c);
  CHECK_INT(c.pipelining, ==, 0);
  CHECK_INT(c.size, ==, 1);
  CHECK_INT(c.size_max, ==, 35882577);
  CHECK_INT(c.eightbitmime, ==, 1);
  CHECK_INT(c.starttls, ==, 1);
  CHECK_INT(c.enhanced, ==, 1);
  CHECK_INT(c.auth, ==, 1);
  CHECK_INT(c.auth_plain, ==, 1);
  CHECK_INT(c.auth_login, ==, 1);
  CHECK_INT(c.smtputf8, ==, 1);
  const char *plain = "250-mx\n250-PIPELINING\n250-SIZE\n250 AUTH CRAM-MD5\n";
  rq_smtp_caps_parse(plain, strlen(plain), &c);
  CHECK_INT(c.pipelining, ==, 1);
  CHECK_INT(c.size, ==, 1);
  CHECK_INT(c.size_max, ==, 0);
  CHECK_INT(c.auth, ==, 1);
  CHECK_INT(c.auth_plain, ==, 0);
  CHECK_INT(c.auth_login, ==, 0);
  CHECK_INT(c.starttls, ==, 0);
  rq_smtp_caps_parse("250 mx\r\n", 8, &c);
  CHECK_INT(c.auth, ==, 0);
  CHECK_INT(c.size, ==, 0);
}

/* ---- DATA ---------------------------------------------------------------------------- */

/* What the stuffer must produce, written the obvious way. */
static void reference(const char *msg, size_t len, struct rq_buf *out) {
  int bol = 1;
  for (size_t i = 0; i < len; i++) {
    if (bol && msg[i] == '.') rq_buf_putc(out, '.');
    rq_buf_putc(out, msg[i]);
    bol = msg[i] == '\n';
  }
  if (len == 0 || (len >= 2 && msg[len - 2] == '\r' && msg[len - 1] == '\n')) rq_buf_puts(out, ".\r\n");
  else rq_buf_puts(out, "\r\n.\r\n");
}

static void stuff_all(const char *msg, size_t len, size_t chunk, struct rq_buf *out) {
  struct rq_smtp_stuffer st;
  char *buf = rq_xmalloc(chunk);
  rq_smtp_stuffer_init(&st, msg, len);
  int rounds = 0;
  while (!rq_smtp_stuffer_done(&st) && rounds++ < 1000000) {
    size_t n = rq_smtp_stuff(&st, buf, chunk);
    CHECK(n > 0 && n <= chunk);
    rq_buf_append(out, buf, n);
  }
  free(buf);
}

static void test_stuffing(void) {
  static const char *const msgs[] = {
      "",
      "Subject: x\r\n\r\nbody\r\n",
      ".starts with a dot\r\n.\r\n..two\r\nmid . dot\r\n.",
      "no final line end",
      "bare LF end\n",
      "\r\n.\r\n",
      ".",
      "a\r\n.b\r\n.c\r\n.d\r\n",
  };
  for (size_t m = 0; m < sizeof msgs / sizeof msgs[0]; m++) {
    struct rq_buf want;
    rq_buf_init(&want);
    reference(msgs[m], strlen(msgs[m]), &want);
    for (size_t chunk = 2; chunk <= 40; chunk++) {
      struct rq_buf got;
      rq_buf_init(&got);
      stuff_all(msgs[m], strlen(msgs[m]), chunk, &got);
      CHECK_INT(got.len, ==, want.len);
      if (got.len == want.len) CHECK_MEM(got.data, want.data, want.len);
      rq_buf_free(&got);
    }
    rq_buf_free(&want);
  }
  /* A large message, in big chunks. */
  struct rq_buf big, want, got;
  rq_buf_init(&big);
  rq_buf_init(&want);
  rq_buf_init(&got);
  for (int i = 0; i < 20000; i++) rq_buf_printf(&big, "%sline %d of the message\r\n", i % 3 ? "" : ".", i);
  reference(big.data, big.len, &want);
  stuff_all(big.data, big.len, 65536, &got);
  CHECK_INT(got.len, ==, want.len);
  if (got.len == want.len) CHECK_MEM(got.data, want.data, want.len);
  rq_buf_free(&big);
  rq_buf_free(&want);
  rq_buf_free(&got);
}

/* ---- commands ------------------------------------------------------------------------- */

static void test_commands(void) {
  struct rq_smtp_caps none = {0}, all = {0};
  all.size = all.eightbitmime = all.smtputf8 = 1;
  const char *ascii_rcpts[] = {"b@example.org"};
  const char *utf8_rcpts[] = {"j\xc3\xb6rg@example.org"};
  struct rq_buf b;
  rq_buf_init(&b);
  rq_smtp_cmd_mail(&b, "a@example.org", ascii_rcpts, 1, "caf\xc3\xa9", 5, &none);
  CHECK_STR(b.data, "MAIL FROM:<a@example.org>\r\n");
  rq_buf_reset(&b);
  rq_smtp_cmd_mail(&b, "", ascii_rcpts, 1, "plain", 5, &all);
  CHECK_STR(b.data, "MAIL FROM:<> SIZE=5\r\n");
  rq_buf_reset(&b);
  rq_smtp_cmd_mail(&b, "a@example.org", utf8_rcpts, 1, "caf\xc3\xa9", 5, &all);
  CHECK_STR(b.data, "MAIL FROM:<a@example.org> SIZE=5 BODY=8BITMIME SMTPUTF8\r\n");
  rq_buf_reset(&b);
  rq_smtp_cmd_rcpt(&b, "b@example.org");
  CHECK_STR(b.data, "RCPT TO:<b@example.org>\r\n");
  rq_buf_reset(&b);
  rq_smtp_cmd_auth_plain(&b, "user", "pa55");
  /* base64("\0user\0pa55") */
  CHECK_STR(b.data, "AUTH PLAIN AHVzZXIAcGE1NQ==\r\n");
  rq_buf_reset(&b);
  rq_smtp_cmd_b64_line(&b, "user");
  CHECK_STR(b.data, "dXNlcg==\r\n");
  rq_buf_free(&b);
}

static void test_validation(void) {
  CHECK_INT(rq_smtp_address_ok("a@example.org", 0), ==, 1);
  CHECK_INT(rq_smtp_address_ok("", 0), ==, 0);
  CHECK_INT(rq_smtp_address_ok("", 1), ==, 1);
  CHECK_INT(rq_smtp_address_ok(NULL, 1), ==, 0);
  CHECK_INT(rq_smtp_address_ok("a@b>\r\nRCPT TO:<c@d", 0), ==, 0);
  CHECK_INT(rq_smtp_address_ok("a\x7f@b", 0), ==, 0);
  CHECK_INT(rq_smtp_address_ok("<a@b>", 0), ==, 0);
  CHECK_INT(rq_smtp_address_ok("j\xc3\xb6rg@example.org", 0), ==, 1);
  CHECK_INT(rq_smtp_helo_ok("client.relayq.test"), ==, 1);
  CHECK_INT(rq_smtp_helo_ok("[127.0.0.1]"), ==, 1);
  CHECK_INT(rq_smtp_helo_ok("evil/../path?x"), ==, 0);
  CHECK_INT(rq_smtp_helo_ok("a b"), ==, 0);
  CHECK_INT(rq_smtp_helo_ok(""), ==, 0);
  CHECK_INT(rq_smtp_host_ok("smtp.example.com"), ==, 1);
  CHECK_INT(rq_smtp_host_ok("::1"), ==, 1);
  CHECK_INT(rq_smtp_host_ok("[2001:db8::1]"), ==, 1);
  CHECK_INT(rq_smtp_host_ok("bad host/with@stuff"), ==, 0);
  CHECK_INT(rq_smtp_host_ok(""), ==, 0);
  CHECK_INT(rq_smtp_has_8bit("abc", 3), ==, 0);
  CHECK_INT(rq_smtp_has_8bit("ab\x80", 3), ==, 1);
  for (size_t at = 0; at < 20; at++) { /* every offset, across the 8-byte steps */
    char buf[20];
    memset(buf, 'a', sizeof buf);
    CHECK_INT(rq_smtp_has_8bit(buf, sizeof buf), ==, 0);
    buf[at] = (char)0xc3;
    CHECK_INT(rq_smtp_has_8bit(buf, sizeof buf), ==, 1);
    CHECK_INT(rq_smtp_has_8bit(buf, at), ==, 0);
  }
}

int main(void) {
  test_reader_splits();
  test_reader_forms();
  test_reader_stop();
  test_reader_bad_and_bounded();
  test_caps();
  test_stuffing();
  test_commands();
  test_validation();
  return CHECK_DONE();
}
