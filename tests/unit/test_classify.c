/*
 * Unit tests for worker/classify: reply parsing edge cases, the corpus of
 * real replies in the .txt files of tests/data/replies (every line asserted), retry
 * hints, libcurl transport errors and Mailgun HTTP responses.
 */
#include "check.h"
#include "classify.h"
#include "curlfail.h"

#include <curl/curl.h>
#include <dirent.h>
#include <stdint.h>

/* ---- helpers ------------------------------------------------------------- */

static int valid_utf8_no_controls(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    if (*p < 0x20 || *p == 0x7F) return 0;
    if (*p < 0x80) {
      p++;
      continue;
    }
    size_t n = (*p >= 0xF0) ? 4 : (*p >= 0xE0) ? 3 : (*p >= 0xC2) ? 2 : 0;
    if (n == 0) return 0;
    for (size_t i = 1; i < n; i++)
      if ((p[i] & 0xC0) != 0x80) return 0;
    p += n;
  }
  return 1;
}

static int parse_str(const char *s, struct rq_reply *r) { return rq_reply_parse(s, strlen(s), r); }

static void classify_text(enum rq_smtp_stage st, int code, const char *enh, const char *text,
                          struct rq_class *c) {
  struct rq_reply r;
  memset(&r, 0, sizeof r);
  r.code = code;
  snprintf(r.enhanced, sizeof r.enhanced, "%s", enh);
  snprintf(r.text, sizeof r.text, "%s", text);
  rq_classify_smtp(st, &r, c);
}

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* ---- parsing --------------------------------------------------------------- */

static void test_parse_multiline(void) {
  struct rq_reply r;
  CHECK_INT(parse_str("250-mx.example.com\r\n250-PIPELINING\r\n250 SIZE 35882577\r\n", &r), ==, 0);
  CHECK_INT(r.code, ==, 250);
  CHECK_STR(r.enhanced, "");
  CHECK_STR(r.text, "mx.example.com PIPELINING SIZE 35882577");

  /* Gmail repeats the enhanced code on every line. */
  CHECK_INT(parse_str("550-5.1.1 The email account that you tried to reach does not exist. Please try\r\n"
                      "550-5.1.1 double-checking the recipient's email address for typos or\r\n"
                      "550 5.1.1  https://support.google.com/mail/?p=NoSuchUser - gsmtp\r\n",
                      &r),
            ==, 0);
  CHECK_INT(r.code, ==, 550);
  CHECK_STR(r.enhanced, "5.1.1");
  CHECK_STR(r.text, "The email account that you tried to reach does not exist. Please try "
                    "double-checking the recipient's email address for typos or "
                    "https://support.google.com/mail/?p=NoSuchUser - gsmtp");

  /* Bare LF, no final line end. */
  CHECK_INT(parse_str("550-5.1.1 a\n550 5.1.1 b", &r), ==, 0);
  CHECK_STR(r.text, "a b");
  /* The first code wins; lines without a code keep their text. */
  CHECK_INT(parse_str("550-first\r\ngarbage line\r\n451 second\r\n", &r), ==, 0);
  CHECK_INT(r.code, ==, 550);
  CHECK_STR(r.text, "first garbage line second");
}

static void test_parse_edges(void) {
  struct rq_reply r;
  CHECK_INT(parse_str("550 No such user here\r\n", &r), ==, 0);
  CHECK_INT(r.code, ==, 550);
  CHECK_STR(r.enhanced, "");
  CHECK_STR(r.text, "No such user here");

  CHECK_INT(parse_str("250 2.0.0 Ok: queued as 4BQ3Xy0zK1z9\r\n", &r), ==, 0);
  CHECK_STR(r.enhanced, "2.0.0");
  CHECK_STR(r.text, "Ok: queued as 4BQ3Xy0zK1z9");

  CHECK_INT(parse_str("451 4.7.500 Server busy.\r\n", &r), ==, 0);
  CHECK_STR(r.enhanced, "4.7.500");
  CHECK_INT(parse_str("550 5.1234.1 x\r\n", &r), ==, 0);
  CHECK_STR(r.enhanced, "");
  CHECK_INT(parse_str("550 5.1.1: x\r\n", &r), ==, 0);
  CHECK_STR(r.enhanced, "");
  CHECK_INT(parse_str("550 3.1.1 x\r\n", &r), ==, 0);
  CHECK_STR(r.enhanced, "");
  CHECK_INT(parse_str("550 5.1.1\r\n", &r), ==, 0);
  CHECK_STR(r.enhanced, "5.1.1");
  CHECK_STR(r.text, "");

  /* "250 " with empty text, and the code alone. */
  CHECK_INT(parse_str("250 \r\n", &r), ==, 0);
  CHECK_INT(r.code, ==, 250);
  CHECK_STR(r.text, "");
  CHECK_INT(parse_str("250", &r), ==, 0);
  CHECK_INT(r.code, ==, 250);
  CHECK_INT(parse_str("354\r\n", &r), ==, 0);
  CHECK_INT(r.code, ==, 354);

  /* No code at all. */
  CHECK_INT(parse_str("hello world\r\n", &r), ==, -1);
  CHECK_INT(r.code, ==, 0);
  CHECK_STR(r.text, "hello world");
  CHECK_INT(parse_str("2500 too many digits\r\n", &r), ==, -1);
  CHECK_INT(parse_str("650 out of range\r\n", &r), ==, -1);
  CHECK_INT(parse_str("", &r), ==, -1);
  CHECK_INT(rq_reply_parse(NULL, 0, &r), ==, -1);
  CHECK_INT(rq_reply_parse(NULL, 10, &r), ==, -1);
  CHECK_STR(r.text, "");

  /* Control characters, C1 controls, invalid UTF-8. */
  CHECK_INT(parse_str("550 a\tb\x01" "c\x7f d\r\n", &r), ==, 0);
  CHECK_STR(r.text, "a b c d");
  CHECK_INT(parse_str("550 a\xc2\x85" "b\r\n", &r), ==, 0);
  CHECK_STR(r.text, "a b");
  CHECK_INT(parse_str("550 caf\xe9 \xc0\xaf \xed\xa0\x80 ok \xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80\r\n", &r), ==, 0);
  CHECK_STR(r.text, "caf? ?? ??? ok \xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80");
  /* A truncated sequence at the very end. */
  CHECK_INT(parse_str("550 x \xe2\x82", &r), ==, 0);
  CHECK_STR(r.text, "x ??");

  /* NUL bytes inside, length given. */
  const char nul[] = "550 5.1.1 a\0b\r\n";
  CHECK_INT(rq_reply_parse(nul, sizeof nul - 1, &r), ==, 0);
  CHECK_STR(r.text, "a b");
}

static void test_parse_long_and_garbage(void) {
  struct rq_reply r;
  size_t n = 100 * 1024;
  char *big = malloc(n + 32);
  memcpy(big, "550 5.1.1 ", 10);
  memset(big + 10, 'a', n);
  memcpy(big + 10 + n, "\r\n550 5.1.1 tail\r\n", 18);
  CHECK_INT(rq_reply_parse(big, n + 28, &r), ==, 0);
  CHECK_INT(r.code, ==, 550);
  CHECK_STR(r.enhanced, "5.1.1");
  CHECK_INT(strlen(r.text), ==, RQ_REPLY_TEXT_MAX);

  /* Two-byte characters never get cut in half. */
  size_t i = 4;
  memcpy(big, "550 ", 4);
  while (i + 2 <= n) big[i++] = (char)0xC3, big[i++] = (char)0xA9;
  CHECK_INT(rq_reply_parse(big, i, &r), ==, 0);
  CHECK_INT(strlen(r.text), <=, RQ_REPLY_TEXT_MAX);
  CHECK(valid_utf8_no_controls(r.text));
  /* Three-byte characters: 512 is not a multiple of 3. */
  i = 4;
  while (i + 3 <= n) big[i++] = (char)0xE2, big[i++] = (char)0x82, big[i++] = (char)0xAC;
  CHECK_INT(rq_reply_parse(big, i, &r), ==, 0);
  CHECK_INT(strlen(r.text), ==, 510);
  CHECK(valid_utf8_no_controls(r.text));

  /* Binary garbage, many times over: never crashes, output stays clean. */
  uint64_t seed = 42;
  for (int round = 0; round < 200; round++) {
    size_t len = (size_t)(splitmix(&seed) % 4096);
    for (size_t k = 0; k < len; k++) big[k] = (char)(splitmix(&seed) & 0xFF);
    rq_reply_parse(big, len, &r);
    CHECK(strlen(r.text) <= RQ_REPLY_TEXT_MAX);
    CHECK(valid_utf8_no_controls(r.text));
    CHECK(r.code == 0 || (r.code >= 100 && r.code <= 599));
    struct rq_class c;
    rq_classify_smtp((enum rq_smtp_stage)(round % RQ_STAGE__COUNT), &r, &c);
    CHECK(strlen(c.detail) <= RQ_CLASS_DETAIL_MAX);
  }
  free(big);
}

/* ---- the corpus --------------------------------------------------------------- */

struct corpus_stats {
  int lines, failures;
};

static int stage_by_name(const char *name, enum rq_smtp_stage *out) {
  for (int s = 0; s < RQ_STAGE__COUNT; s++) {
    if (strcmp(rq_stage_name((enum rq_smtp_stage)s), name) == 0) {
      *out = (enum rq_smtp_stage)s;
      return 0;
    }
  }
  return -1;
}

/* Splits s on '|' into at most max fields, in place. */
static int split(char *s, char **f, int max) {
  int n = 0;
  f[n++] = s;
  for (char *p = s; *p && n < max; p++) {
    if (*p == '|') {
      *p = '\0';
      f[n++] = p + 1;
    }
  }
  return n;
}

/* The reply text the parser should produce from the corpus text. */
static void expected_text(const char *t, char *out, size_t cap) {
  size_t n = 0;
  int space = 0;
  for (; *t && n + 2 < cap; t++) {
    if (t[0] == '\\' && t[1] == 'n') {
      space = 1;
      t++;
      continue;
    }
    if (*t == ' ') {
      space = 1;
      continue;
    }
    if (space && n > 0) out[n++] = ' ';
    space = 0;
    out[n++] = *t;
  }
  out[n] = '\0';
}

/* Builds the raw multi-line reply: each "\n"-separated piece is one line. */
static size_t build_raw(const char *code, const char *enh, const char *text, char *raw, size_t cap) {
  size_t n = 0;
  const char *p = text;
  for (;;) {
    const char *nl = strstr(p, "\\n");
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    n += (size_t)snprintf(raw + n, cap - n, "%s%c%s%s%.*s\r\n", code, nl ? '-' : ' ',
                          strcmp(enh, "-") ? enh : "", strcmp(enh, "-") ? " " : "", (int)len, p);
    if (!nl || n >= cap) break;
    p = nl + 2;
  }
  return n < cap ? n : cap - 1;
}

#define CORPUS_FAIL(fmt, ...)                                                  \
  do {                                                                         \
    fprintf(stderr, "%s:%d: " fmt "\n", path, lineno, __VA_ARGS__);            \
    st->failures++;                                                            \
    check_failed_++;                                                           \
  } while (0)

static void check_corpus_line(const char *path, int lineno, char *line, struct corpus_stats *st) {
  char *f[8];
  char raw[8192], want_text[4096], code_s[40];
  struct rq_reply r;
  struct rq_class c;
  enum rq_smtp_stage stage;
  enum rq_errcat want_err;

  line[strcspn(line, "\r\n")] = '\0';
  if (line[0] == '\0' || line[0] == '#') return;
  st->lines++;
  if (split(line, f, 7) != 7) {
    CORPUS_FAIL("%s", "expected 7 '|'-separated fields");
    return;
  }
  if (stage_by_name(f[0], &stage) != 0) {
    CORPUS_FAIL("unknown stage \"%s\"", f[0]);
    return;
  }
  if (rq_errcat_parse(f[5], &want_err) != 0) {
    CORPUS_FAIL("unknown error category \"%s\"", f[5]);
    return;
  }
  size_t rl = build_raw(f[1], f[2], f[3], raw, sizeof raw);
  if (rq_reply_parse(raw, rl, &r) != 0 || r.code != atoi(f[1])) {
    CORPUS_FAIL("parse: code %d, want %s", r.code, f[1]);
    return;
  }
  check_passed_++;
  if (strcmp(r.enhanced, strcmp(f[2], "-") ? f[2] : "") != 0)
    CORPUS_FAIL("parse: enhanced \"%s\", want \"%s\"", r.enhanced, f[2]);
  expected_text(f[3], want_text, sizeof want_text);
  if (strncmp(r.text, want_text, RQ_REPLY_TEXT_MAX) != 0)
    CORPUS_FAIL("parse: text \"%s\", want \"%s\"", r.text, want_text);

  rq_classify_smtp(stage, &r, &c);
  if (strcmp(rq_verdict_name(c.verdict), f[4]) != 0 || c.error != want_err) {
    CORPUS_FAIL("got %s/%s, want %s/%s (detail: %s)", rq_verdict_name(c.verdict), rq_errcat_name(c.error), f[4],
                f[5], c.detail);
    return;
  }
  check_passed_++;
  /* Every detail is a sentence that names the code. */
  snprintf(code_s, sizeof code_s, "%s%s%s", f[1], strcmp(f[2], "-") ? " " : "", strcmp(f[2], "-") ? f[2] : "");
  if (!strstr(c.detail, code_s)) CORPUS_FAIL("detail lacks \"%s\": %s", code_s, c.detail);
  if (strlen(c.detail) < 20 || c.detail[strlen(c.detail) - 1] != '.')
    CORPUS_FAIL("detail is not a sentence: %s", c.detail);
  if (strlen(r.text) > 60 && strstr(c.detail, r.text)) CORPUS_FAIL("detail copies the reply: %s", c.detail);
  if (c.verdict != RQ_TEMP && c.retry_after_ms != 0) CORPUS_FAIL("retry hint on %s", f[4]);

  /* Extra checks. */
  for (char *chk = strtok(f[6], ","); chk; chk = strtok(NULL, ",")) {
    if (strncmp(chk, "list=", 5) == 0) {
      char want[160];
      snprintf(want, sizeof want, "listed on %s (", chk + 5);
      if (!strstr(c.detail, want)) CORPUS_FAIL("detail does not name list %s: %s", chk + 5, c.detail);
    } else if (strncmp(chk, "has=", 4) == 0) {
      if (!strstr(c.detail, chk + 4)) CORPUS_FAIL("detail lacks \"%s\": %s", chk + 4, c.detail);
    } else if (strncmp(chk, "retry=", 6) == 0) {
      if (c.retry_after_ms != atoll(chk + 6))
        CORPUS_FAIL("retry_after_ms %lld, want %s", (long long)c.retry_after_ms, chk + 6);
    } else {
      CORPUS_FAIL("unknown check \"%s\"", chk);
    }
  }
}

static void test_corpus(void) {
  static const char *const required[] = {"gmail.txt", "microsoft.txt", "yahoo.txt", "postfix.txt",
                                         "exim.txt",  "blocklists.txt", "others.txt"};
  const char *dir = RELAYQ_TEST_DATA "/replies";
  struct corpus_stats st = {0, 0};
  int files = 0, found[sizeof required / sizeof required[0]] = {0};
  DIR *d = opendir(dir);
  CHECK(d != NULL);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t n = strlen(e->d_name);
    if (n < 5 || strcmp(e->d_name + n - 4, ".txt") != 0) continue;
    for (size_t k = 0; k < sizeof required / sizeof required[0]; k++)
      if (strcmp(e->d_name, required[k]) == 0) found[k] = 1;
    char path[1024], line[8192];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    FILE *fp = fopen(path, "r");
    CHECK(fp != NULL);
    if (!fp) continue;
    files++;
    int lineno = 0;
    while (fgets(line, sizeof line, fp)) check_corpus_line(path, ++lineno, line, &st);
    fclose(fp);
  }
  closedir(d);
  for (size_t k = 0; k < sizeof required / sizeof required[0]; k++) {
    if (!found[k]) fprintf(stderr, "corpus file %s missing\n", required[k]);
    CHECK(found[k]);
  }
  printf("corpus: %d replies in %d files, %d failures\n", st.lines, files, st.failures);
  CHECK_INT(st.lines, >=, 40);
}

/* ---- classification cases outside the corpus ------------------------------------ */

static void test_codes_and_stages(void) {
  struct rq_class c;
  classify_text(RQ_STAGE_RCPT, 250, "2.1.5", "Ok", &c);
  CHECK_INT(c.verdict, ==, RQ_OK);
  CHECK_INT(c.error, ==, RQ_ERR_NONE);
  CHECK_STR(c.detail, "");
  classify_text(RQ_STAGE_DATA, 354, "", "End data with <CR><LF>.<CR><LF>", &c);
  CHECK_INT(c.verdict, ==, RQ_OK);

  classify_text(RQ_STAGE_BODY, 0, "", "", &c);
  CHECK_INT(c.verdict, ==, RQ_TEMP);
  CHECK_INT(c.error, ==, RQ_ERR_PROVIDER);
  rq_classify_smtp(RQ_STAGE_BODY, NULL, &c);
  CHECK_INT(c.verdict, ==, RQ_TEMP);
  CHECK_INT(c.error, ==, RQ_ERR_PROVIDER);
  classify_text(RQ_STAGE_BODY, 600, "", "", &c);
  CHECK_INT(c.verdict, ==, RQ_TEMP);
  classify_text(RQ_STAGE_BODY, 199, "", "", &c);
  CHECK_INT(c.verdict, ==, RQ_TEMP);

  /* Bare codes: the stage decides. */
  classify_text(RQ_STAGE_RCPT, 550, "", "", &c);
  CHECK_INT(c.verdict, ==, RQ_PERM);
  CHECK_INT(c.error, ==, RQ_ERR_RECIPIENT_REJECTED);
  CHECK(strstr(c.detail, "(550)") != NULL);
  classify_text(RQ_STAGE_RCPT, 551, "", "User not local; please try <forward@example.org>", &c);
  CHECK_INT(c.error, ==, RQ_ERR_RECIPIENT_REJECTED);
  classify_text(RQ_STAGE_RCPT, 553, "5.1.3", "Bad recipient address syntax", &c);
  CHECK_INT(c.error, ==, RQ_ERR_RECIPIENT_REJECTED);
  classify_text(RQ_STAGE_BODY, 554, "", "", &c);
  CHECK_INT(c.verdict, ==, RQ_PERM);
  CHECK_INT(c.error, ==, RQ_ERR_PROVIDER);
  classify_text(RQ_STAGE_BANNER, 554, "", "mx.example.com ESMTP not accepting messages", &c);
  CHECK_INT(c.verdict, ==, RQ_PERM);
  CHECK_INT(c.error, ==, RQ_ERR_PROVIDER);
  classify_text(RQ_STAGE_MAIL, 550, "", "", &c);
  CHECK_INT(c.error, ==, RQ_ERR_POLICY);
  classify_text(RQ_STAGE_AUTH, 535, "", "", &c);
  CHECK_INT(c.error, ==, RQ_ERR_AUTH);
  classify_text(RQ_STAGE_AUTH, 530, "5.7.0", "Authentication required", &c);
  CHECK_INT(c.error, ==, RQ_ERR_AUTH);
  CHECK_INT(c.verdict, ==, RQ_PERM);
  classify_text(RQ_STAGE_STARTTLS, 501, "5.5.4", "Syntax error", &c);
  CHECK_INT(c.error, ==, RQ_ERR_TLS);
  CHECK_INT(c.verdict, ==, RQ_PERM);
  classify_text(RQ_STAGE_BODY, 421, "", "", &c);
  CHECK_INT(c.verdict, ==, RQ_TEMP);
  CHECK_INT(c.error, ==, RQ_ERR_CONNECT);
  classify_text(RQ_STAGE_BODY, 451, "4.3.0", "Error: queue file write error", &c);
  CHECK_INT(c.verdict, ==, RQ_TEMP);
  CHECK_INT(c.error, ==, RQ_ERR_PROVIDER);
  CHECK(strstr(c.detail, "while sending the message") != NULL);
  /* A bare 452 to RCPT is RFC 5321's "too many recipients"; so is 552
   * with those words (RFC 5321 4.5.3.1.10). */
  classify_text(RQ_STAGE_RCPT, 452, "", "Requested action not taken: insufficient system storage", &c);
  CHECK_INT(c.error, ==, RQ_ERR_TOO_MANY_RECIPIENTS);
  CHECK_INT(c.verdict, ==, RQ_TEMP);
  classify_text(RQ_STAGE_RCPT, 552, "", "Too many recipients", &c);
  CHECK_INT(c.error, ==, RQ_ERR_TOO_MANY_RECIPIENTS);
  CHECK_INT(c.verdict, ==, RQ_TEMP);
  /* A 5xx quota stays temporary. */
  classify_text(RQ_STAGE_MAIL, 554, "5.7.1", "Account limit exceeded", &c);
  CHECK_INT(c.error, ==, RQ_ERR_QUOTA);
  CHECK_INT(c.verdict, ==, RQ_TEMP);
  /* A mismatched enhanced class does not override the basic code. */
  classify_text(RQ_STAGE_BODY, 550, "4.7.1", "whatever", &c);
  CHECK_INT(c.verdict, ==, RQ_PERM);
  /* A hand-filled reply with a malformed enhanced code and no NUL. */
  struct rq_reply r;
  memset(&r, 'A', sizeof r);
  r.code = 550;
  memcpy(r.enhanced, "5.x.1", 6);
  rq_classify_smtp(RQ_STAGE_RCPT, &r, &c);
  CHECK_INT(c.error, ==, RQ_ERR_RECIPIENT_REJECTED);
  CHECK(strstr(c.detail, "(550)") != NULL);
  /* A very long list name is cut, the detail stays bounded. */
  char longtext[600];
  snprintf(longtext, sizeof longtext, "blocked using %.*s.example.org", 300,
           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
  classify_text(RQ_STAGE_RCPT, 554, "5.7.1", longtext, &c);
  CHECK(strlen(c.detail) <= RQ_CLASS_DETAIL_MAX);
}

static void test_retry_hints(void) {
  struct rq_class c;
  CHECK_INT(rq_retry_hint_parse("Please try again in 5 minutes"), ==, 300000);
  CHECK_INT(rq_retry_hint_parse("retry in 30 seconds"), ==, 30000);
  CHECK_INT(rq_retry_hint_parse("Deferred, try after 300 seconds."), ==, 300000);
  CHECK_INT(rq_retry_hint_parse("blocked, try again in 1 hour"), ==, 3600000);
  CHECK_INT(rq_retry_hint_parse("try again in an hour"), ==, 3600000);
  CHECK_INT(rq_retry_hint_parse("Greylisted, try again in 300s"), ==, 300000);
  CHECK_INT(rq_retry_hint_parse("IN 2 MINS"), ==, 120000);
  CHECK_INT(rq_retry_hint_parse("locked for 10 minutes"), ==, 600000);
  CHECK_INT(rq_retry_hint_parse("try again in 99999 hours"), ==, RQ_RETRY_HINT_MAX_MS);
  CHECK_INT(rq_retry_hint_parse("in 9999999999 seconds"), ==, 0);
  CHECK_INT(rq_retry_hint_parse("try again later"), ==, 0);
  CHECK_INT(rq_retry_hint_parse("sent to 1 recipient for 1 domain"), ==, 0);
  CHECK_INT(rq_retry_hint_parse("(AS77712344)"), ==, 0);
  CHECK_INT(rq_retry_hint_parse("login 5 minutes"), ==, 0);
  CHECK_INT(rq_retry_hint_parse("5 minutes"), ==, 0);
  CHECK_INT(rq_retry_hint_parse("in 0 seconds"), ==, 0);
  CHECK_INT(rq_retry_hint_parse("in 5"), ==, 0);
  CHECK_INT(rq_retry_hint_parse(""), ==, 0);
  CHECK_INT(rq_retry_hint_parse(NULL), ==, 0);

  classify_text(RQ_STAGE_MAIL, 451, "4.7.1", "Sending rate exceeded, try again in 5 minutes", &c);
  CHECK_INT(c.verdict, ==, RQ_TEMP);
  CHECK_INT(c.retry_after_ms, ==, 300000);
  classify_text(RQ_STAGE_MAIL, 421, "4.7.0", "Too many connections, retry in 30 seconds", &c);
  CHECK_INT(c.error, ==, RQ_ERR_CONNECT);
  CHECK_INT(c.retry_after_ms, ==, 30000);
  /* Permanent verdicts carry no hint. */
  classify_text(RQ_STAGE_RCPT, 550, "5.1.1", "User unknown, try again in 5 minutes", &c);
  CHECK_INT(c.verdict, ==, RQ_PERM);
  CHECK_INT(c.retry_after_ms, ==, 0);
}

static void test_names(void) {
  static const char *const want[] = {"",           "connect",          "tls",
                                     "auth",       "policy",           "quota",
                                     "recipient_rejected", "too_many_recipients", "blocklisted",
                                     "invalid_job", "expired",         "max_attempts",
                                     "provider"};
  CHECK_INT(RQ_ERR__COUNT, ==, sizeof want / sizeof want[0]);
  for (int i = 0; i < RQ_ERR__COUNT; i++) {
    enum rq_errcat e;
    CHECK_STR(rq_errcat_name((enum rq_errcat)i), want[i]);
    CHECK_INT(rq_errcat_parse(want[i], &e), ==, 0);
    CHECK_INT(e, ==, i);
  }
  CHECK_STR(rq_errcat_name(RQ_ERR_BLOCKLISTED), "blocklisted");
  CHECK_STR(rq_errcat_name((enum rq_errcat)99), "");
  /* Every category but NONE says what to do next. */
  for (int i = 1; i < RQ_ERR__COUNT; i++) CHECK(rq_errcat_next_step((enum rq_errcat)i)[0] != '\0');
  CHECK_STR(rq_errcat_next_step(RQ_ERR_NONE), "");
  CHECK_STR(rq_errcat_next_step((enum rq_errcat)99), "");
  CHECK(strstr(rq_errcat_next_step(RQ_ERR_TLS), "relayq tenant trust") != NULL);
  enum rq_errcat e;
  CHECK_INT(rq_errcat_parse("Connect", &e), ==, -1);
  CHECK_INT(rq_errcat_parse(NULL, &e), ==, -1);
  CHECK_STR(rq_stage_name(RQ_STAGE_RCPT), "rcpt");
  CHECK_STR(rq_stage_name(RQ_STAGE_BODY), "body");
  CHECK_STR(rq_stage_name((enum rq_smtp_stage)99), "unknown");
  CHECK_STR(rq_verdict_name(RQ_PERM), "perm");
  char out[8];
  CHECK_INT(rq_text_sanitize(out, sizeof out, "  a \r\n b\x01 c  d e f g", 20), ==, 7);
  CHECK_STR(out, "a b c d");
}

/* ---- libcurl --------------------------------------------------------------------- */

static void test_transport(void) {
  struct rq_class c;
  rq_curl_classify(CURLE_OK, "", RQ_STAGE_BODY, &c);
  CHECK_INT(c.verdict, ==, RQ_OK);

  rq_curl_classify(CURLE_COULDNT_RESOLVE_HOST, "Could not resolve host: smtp.example.invalid",
                        RQ_STAGE_CONNECT, &c);
  CHECK_INT(c.verdict, ==, RQ_TEMP);
  CHECK_INT(c.error, ==, RQ_ERR_CONNECT);
  CHECK(strstr(c.detail, "smtp_host") && strstr(c.detail, "smtp.example.invalid"));
  rq_curl_classify(CURLE_COULDNT_CONNECT,
                        "Failed to connect to 127.0.0.1 port 2525 after 0 ms: Couldn't connect to server",
                        RQ_STAGE_CONNECT, &c);
  CHECK_INT(c.error, ==, RQ_ERR_CONNECT);
  CHECK_INT(c.verdict, ==, RQ_TEMP);
  rq_curl_classify(CURLE_OPERATION_TIMEDOUT, "Operation timed out after 30001 milliseconds",
                        RQ_STAGE_BODY, &c);
  CHECK_INT(c.error, ==, RQ_ERR_CONNECT);
  CHECK(strstr(c.detail, "while sending the message") != NULL);
  rq_curl_classify(CURLE_SEND_ERROR, "Failure when sending data to the peer", RQ_STAGE_BODY, &c);
  CHECK_INT(c.error, ==, RQ_ERR_CONNECT);
  CHECK_INT(c.verdict, ==, RQ_TEMP);
  CHECK(strstr(c.detail, "dropped") != NULL);
  rq_curl_classify(CURLE_RECV_ERROR, "", RQ_STAGE_RCPT, &c);
  CHECK_INT(c.error, ==, RQ_ERR_CONNECT);
  rq_curl_classify(CURLE_GOT_NOTHING, NULL, RQ_STAGE_BANNER, &c);
  CHECK_INT(c.error, ==, RQ_ERR_CONNECT);

  /* curl's messages that carry the server's code. */
  rq_curl_classify(CURLE_SEND_ERROR, "RCPT failed: 550", RQ_STAGE_RCPT, &c);
  CHECK_INT(c.verdict, ==, RQ_PERM);
  CHECK_INT(c.error, ==, RQ_ERR_RECIPIENT_REJECTED);
  rq_curl_classify(CURLE_SEND_ERROR, "MAIL failed: 553", RQ_STAGE_MAIL, &c);
  CHECK_INT(c.error, ==, RQ_ERR_POLICY);
  rq_curl_classify(CURLE_LOGIN_DENIED, "Authentication failed: 535", RQ_STAGE_AUTH, &c);
  CHECK_INT(c.verdict, ==, RQ_PERM);
  CHECK_INT(c.error, ==, RQ_ERR_AUTH);
  CHECK(strstr(c.detail, "smtp_password") != NULL);
  rq_curl_classify(CURLE_LOGIN_DENIED, "Authentication failed: 454", RQ_STAGE_MAIL, &c);
  CHECK_INT(c.verdict, ==, RQ_TEMP);
  CHECK_INT(c.error, ==, RQ_ERR_AUTH);
  rq_curl_classify(CURLE_LOGIN_DENIED, "", RQ_STAGE_AUTH, &c);
  CHECK_INT(c.verdict, ==, RQ_PERM);
  CHECK_INT(c.error, ==, RQ_ERR_AUTH);
  rq_curl_classify(CURLE_LOGIN_DENIED, "No known authentication mechanisms supported", RQ_STAGE_AUTH, &c);
  CHECK_INT(c.error, ==, RQ_ERR_AUTH);
  CHECK(strstr(c.detail, "smtp_security") != NULL);
  rq_curl_classify(CURLE_USE_SSL_FAILED, "STARTTLS denied, code 454", RQ_STAGE_STARTTLS, &c);
  CHECK_INT(c.verdict, ==, RQ_TEMP);
  CHECK_INT(c.error, ==, RQ_ERR_TLS);
  rq_curl_classify(CURLE_USE_SSL_FAILED, "STARTTLS not supported.", RQ_STAGE_EHLO, &c);
  CHECK_INT(c.verdict, ==, RQ_PERM);
  CHECK_INT(c.error, ==, RQ_ERR_TLS);
  rq_curl_classify(CURLE_WEIRD_SERVER_REPLY, "Got unexpected smtp-server response: 554", RQ_STAGE_BANNER, &c);
  CHECK_INT(c.verdict, ==, RQ_PERM);
  rq_curl_classify(CURLE_WEIRD_SERVER_REPLY, "", RQ_STAGE_BANNER, &c);
  CHECK_INT(c.verdict, ==, RQ_TEMP);
  CHECK_INT(c.error, ==, RQ_ERR_PROVIDER);
  /* A port number is not a reply code. */
  rq_curl_classify(CURLE_SEND_ERROR, "Send failure: Broken pipe on port 587", RQ_STAGE_BODY, &c);
  CHECK_INT(c.error, ==, RQ_ERR_CONNECT);

  /* TLS. */
  rq_curl_classify(CURLE_SSL_CONNECT_ERROR,
                        "OpenSSL/3.0.11: error:0A00010B:SSL routines::wrong version number", RQ_STAGE_TLS, &c);
  CHECK_INT(c.verdict, ==, RQ_PERM);
  CHECK_INT(c.error, ==, RQ_ERR_TLS);
  CHECK(strstr(c.detail, "smtp_security") != NULL);
  rq_curl_classify(CURLE_SSL_CONNECT_ERROR, "OpenSSL SSL_connect: Connection reset by peer in connection to x:465",
                        RQ_STAGE_TLS, &c);
  CHECK_INT(c.verdict, ==, RQ_TEMP);
  CHECK_INT(c.error, ==, RQ_ERR_TLS);
  rq_curl_classify(CURLE_SSL_CONNECT_ERROR, "error:0A000410:SSL routines::sslv3 alert handshake failure",
                        RQ_STAGE_TLS, &c);
  CHECK_INT(c.verdict, ==, RQ_PERM);
  rq_curl_classify(CURLE_PEER_FAILED_VERIFICATION,
                        "SSL certificate problem: self-signed certificate", RQ_STAGE_TLS, &c);
  CHECK_INT(c.verdict, ==, RQ_PERM);
  CHECK_INT(c.error, ==, RQ_ERR_TLS);
  CHECK(strstr(c.detail, "relayq tenant trust") != NULL); /* a pin, not verification off */
  rq_curl_classify(CURLE_SSL_CACERT_BADFILE, "error setting certificate file: /nonexistent", RQ_STAGE_TLS, &c);
  CHECK_INT(c.verdict, ==, RQ_TEMP);
  CHECK_INT(c.error, ==, RQ_ERR_TLS);

  /* Configuration, internal, unknown. */
  rq_curl_classify(CURLE_URL_MALFORMAT, "URL rejected: Bad hostname", RQ_STAGE_CONNECT, &c);
  CHECK_INT(c.verdict, ==, RQ_PERM);
  CHECK_INT(c.error, ==, RQ_ERR_PROVIDER);
  rq_curl_classify(CURLE_OUT_OF_MEMORY, "", RQ_STAGE_BODY, &c);
  CHECK_INT(c.verdict, ==, RQ_TEMP);
  rq_curl_classify(9999, "mystery", RQ_STAGE_BODY, &c);
  CHECK_INT(c.verdict, ==, RQ_TEMP);
  CHECK_INT(c.error, ==, RQ_ERR_PROVIDER);
  CHECK(strstr(c.detail, "9999") != NULL);

  /* A long, dirty error buffer: the detail stays bounded and clean. */
  char eb[CURL_ERROR_SIZE];
  memset(eb, 'x', sizeof eb - 1);
  eb[sizeof eb - 1] = '\0';
  eb[10] = '\x01';
  eb[20] = '\n';
  rq_curl_classify(CURLE_COULDNT_CONNECT, eb, RQ_STAGE_CONNECT, &c);
  CHECK(strlen(c.detail) <= RQ_CLASS_DETAIL_MAX);
  CHECK(valid_utf8_no_controls(c.detail));
}

/* ---- Mailgun / HTTP ------------------------------------------------------------------ */

static void http(long status, const char *body, const char *retry_after, int64_t now_ms, struct rq_class *c) {
  rq_classify_http(status, body, body ? strlen(body) : 0, retry_after, now_ms, c);
}

static void test_http(void) {
  struct rq_class c;
  http(200, "{\"id\":\"<20240101.1@mg.example.com>\",\"message\":\"Queued. Thank you.\"}", NULL, 0, &c);
  CHECK_INT(c.verdict, ==, RQ_OK);
  CHECK_INT(c.error, ==, RQ_ERR_NONE);

  http(400, "{\"message\": \"'to' parameter is not a valid address. please check documentation\"}", NULL, 0, &c);
  CHECK_INT(c.verdict, ==, RQ_PERM);
  CHECK_INT(c.error, ==, RQ_ERR_PROVIDER);
  CHECK(strstr(c.detail, "'to' parameter is not a valid address") != NULL);
  CHECK(strstr(c.detail, "HTTP 400") != NULL);

  http(401, "Forbidden", NULL, 0, &c);
  CHECK_INT(c.verdict, ==, RQ_PERM);
  CHECK_INT(c.error, ==, RQ_ERR_AUTH);
  CHECK(strstr(c.detail, "Forbidden") && strstr(c.detail, "mailgun_api_key"));
  http(403, "{\"message\":\"Domain example.com is not allowed to send: Free accounts are for test purposes only.\"}",
       NULL, 0, &c);
  CHECK_INT(c.error, ==, RQ_ERR_AUTH);
  CHECK_INT(c.verdict, ==, RQ_PERM);
  http(404, "{\"message\": \"Domain not found: mg.example.com\"}", NULL, 0, &c);
  CHECK_INT(c.verdict, ==, RQ_PERM);
  CHECK_INT(c.error, ==, RQ_ERR_PROVIDER);
  CHECK(strstr(c.detail, "Domain not found: mg.example.com") && strstr(c.detail, "mailgun_region"));
  http(413, "<html><body>Request Entity Too Large</body></html>", NULL, 0, &c);
  CHECK_INT(c.verdict, ==, RQ_PERM);
  CHECK(strstr(c.detail, "<html>") == NULL);
  http(408, NULL, NULL, 0, &c);
  CHECK_INT(c.verdict, ==, RQ_TEMP);
  CHECK_INT(c.error, ==, RQ_ERR_CONNECT);

  /* Retry-After: seconds, an HTTP-date, garbage, the past, huge. */
  http(429, "{\"message\":\"Too many requests\"}", "30", 0, &c);
  CHECK_INT(c.verdict, ==, RQ_TEMP);
  CHECK_INT(c.error, ==, RQ_ERR_QUOTA);
  CHECK_INT(c.retry_after_ms, ==, 30000);
  int64_t date_ms = 1445412480LL * 1000; /* Wed, 21 Oct 2015 07:28:00 GMT */
  http(503, "", "Wed, 21 Oct 2015 07:28:00 GMT", date_ms - 120000, &c);
  CHECK_INT(c.verdict, ==, RQ_TEMP);
  CHECK_INT(c.error, ==, RQ_ERR_PROVIDER);
  CHECK_INT(c.retry_after_ms, ==, 120000);
  http(503, "", " Wednesday, 21-Oct-15 07:28:00 GMT ", date_ms - 5000, &c);
  CHECK_INT(c.retry_after_ms, ==, 5000);
  http(503, "", "Wed, 21 Oct 2015 07:28:00 GMT", date_ms + 1000, &c);
  CHECK_INT(c.retry_after_ms, ==, 0);
  http(503, "", "soon", 0, &c);
  CHECK_INT(c.retry_after_ms, ==, 0);
  http(503, "", "12x", 0, &c);
  CHECK_INT(c.retry_after_ms, ==, 0);
  http(429, "", "99999999999999999999999", 0, &c);
  CHECK_INT(c.retry_after_ms, ==, RQ_RETRY_HINT_MAX_MS);
  http(500, NULL, NULL, 0, &c);
  CHECK_INT(c.verdict, ==, RQ_TEMP);
  CHECK_INT(c.retry_after_ms, ==, 0);
  /* Hints only on temporary outcomes. */
  http(400, "{}", "30", 0, &c);
  CHECK_INT(c.retry_after_ms, ==, 0);

  http(302, "", NULL, 0, &c);
  CHECK_INT(c.verdict, ==, RQ_PERM);
  CHECK_INT(c.error, ==, RQ_ERR_PROVIDER);
  http(0, NULL, NULL, 0, &c);
  CHECK_INT(c.verdict, ==, RQ_TEMP);
  CHECK_INT(c.error, ==, RQ_ERR_CONNECT);

  /* JSON: the top-level field, escapes, nesting, truncation. */
  http(400, "{\"a\":{\"message\":\"inner\"},\"b\":[1,\"x\\\"]\",{\"c\":2}],\"message\":\"outer \\u00e9\\ud83d\\ude00 \\\"q\\\"\\n\"}",
       NULL, 0, &c);
  CHECK(strstr(c.detail, ": outer \xc3\xa9\xf0\x9f\x98\x80 \"q\")") != NULL);
  CHECK(strstr(c.detail, "inner") == NULL);
  http(400, "{\"message\":\"lone \\ud800 surrogate \\uZZZZ\"}", NULL, 0, &c);
  CHECK(valid_utf8_no_controls(c.detail));
  const char body[] = "{\"message\":\"abcdef\"}";
  rq_classify_http(400, body, 15, NULL, 0, &c); /* cut mid-string, not NUL-terminated */
  CHECK(valid_utf8_no_controls(c.detail));
  CHECK(strstr(c.detail, "(HTTP 400: abc)") != NULL); /* a cut message still names the problem */
  /* Not JSON before the member: the scan stops there, no message. */
  http(400, "{\"a\":1 2,\"message\":\"guess\"}", NULL, 0, &c);
  CHECK(strstr(c.detail, "guess") == NULL);
  CHECK(strstr(c.detail, "(HTTP 400)") != NULL);
  size_t deep = 20000;
  char *nest = malloc(deep * 2 + 64);
  size_t n = (size_t)sprintf(nest, "{\"x\":");
  for (size_t i = 0; i < deep; i++) nest[n++] = '[';
  for (size_t i = 0; i < deep; i++) nest[n++] = ']';
  n += (size_t)sprintf(nest + n, ",\"message\":\"deep\"}");
  rq_classify_http(400, nest, n, NULL, 0, &c);
  CHECK(strstr(c.detail, ": deep)") != NULL);
  /* A long message is cut; the detail stays a bounded sentence. */
  memset(nest, 'm', 3000);
  memcpy(nest, "{\"message\":\"", 12);
  memcpy(nest + 2990, "\"}", 3);
  rq_classify_http(400, nest, strlen(nest), NULL, 0, &c);
  CHECK(strlen(c.detail) <= RQ_CLASS_DETAIL_MAX);
  CHECK(strstr(c.detail, "it is not retried.") != NULL);
  free(nest);
}

/* ---- the failure table: one vocabulary for every transport ---------------------------- */

static void test_failure_table(void) {
  struct rq_class c;
  /* Every transport failure that says the server is unreachable is
   * `connect`, TEMP, whatever the stage: these count for the breaker. */
  const enum rq_fail conn[] = {RQ_FAIL_DNS, RQ_FAIL_CONNECT, RQ_FAIL_TIMEOUT, RQ_FAIL_CLOSED, RQ_FAIL_ABORTED};
  for (size_t i = 0; i < sizeof conn / sizeof conn[0]; i++) {
    rq_classify_failure(conn[i], RQ_STAGE_BANNER, NULL, "x", &c);
    CHECK_INT(c.verdict, ==, RQ_TEMP);
    CHECK_INT(c.error, ==, RQ_ERR_CONNECT);
    CHECK(c.detail[0] != '\0');
  }
  /* A silent server: the greeting timed out. */
  rq_classify_failure(RQ_FAIL_TIMEOUT, RQ_STAGE_BANNER, NULL, "No progress for 10000 ms waiting for the greeting.",
                      &c);
  CHECK_INT(c.error, ==, RQ_ERR_CONNECT);
  CHECK(strstr(c.detail, "waiting for the greeting") != NULL);
  /* Closed instead of the greeting, and a 421 greeting: connect. */
  rq_classify_failure(RQ_FAIL_CLOSED, RQ_STAGE_BANNER, NULL, "closed", &c);
  CHECK_INT(c.error, ==, RQ_ERR_CONNECT);
  struct rq_reply r421 = {.code = 421};
  snprintf(r421.text, sizeof r421.text, "Service not available, closing transmission channel");
  rq_classify_failure(RQ_FAIL_REJECTED, RQ_STAGE_BANNER, &r421, "", &c);
  CHECK_INT(c.verdict, ==, RQ_TEMP);
  CHECK_INT(c.error, ==, RQ_ERR_CONNECT);
  /* TLS and login. */
  rq_classify_failure(RQ_FAIL_TLS, RQ_STAGE_TLS, NULL, "", &c);
  CHECK_INT(c.error, ==, RQ_ERR_TLS);
  CHECK_INT(c.verdict, ==, RQ_TEMP);
  rq_classify_failure(RQ_FAIL_TLS_CERT, RQ_STAGE_TLS, NULL, "", &c);
  CHECK_INT(c.error, ==, RQ_ERR_TLS);
  CHECK_INT(c.verdict, ==, RQ_PERM);
  rq_classify_failure(RQ_FAIL_AUTH, RQ_STAGE_AUTH, NULL, "", &c);
  CHECK_INT(c.error, ==, RQ_ERR_AUTH);
  struct rq_reply r535 = {.code = 535};
  snprintf(r535.enhanced, sizeof r535.enhanced, "5.7.8");
  rq_classify_failure(RQ_FAIL_AUTH, RQ_STAGE_MAIL, &r535, "", &c); /* the reply is read at the AUTH stage */
  CHECK_INT(c.error, ==, RQ_ERR_AUTH);
  CHECK_INT(c.verdict, ==, RQ_PERM);
  /* A 2xx "reply" never turns a failure into success. */
  struct rq_reply r250 = {.code = 250};
  rq_classify_failure(RQ_FAIL_CLOSED, RQ_STAGE_DATA, &r250, "", &c);
  CHECK_INT(c.verdict, ==, RQ_TEMP);
  rq_classify_failure(RQ_FAIL_NONE, RQ_STAGE_BODY, NULL, NULL, &c);
  CHECK_INT(c.verdict, ==, RQ_OK);
  /* Out of range is OTHER, never OK. */
  rq_classify_failure((enum rq_fail)999, RQ_STAGE_BODY, NULL, NULL, &c);
  CHECK_INT(c.verdict, ==, RQ_TEMP);
  CHECK_INT(c.error, ==, RQ_ERR_PROVIDER);
  /* Names. */
  CHECK_STR(rq_fail_name(RQ_FAIL_TLS_CERT), "tls_cert");
  CHECK_STR(rq_fail_name(RQ_FAIL_DNS), "dns");
  CHECK_STR(rq_fail_name((enum rq_fail)999), "unknown");
  /* curl codes land on the same rows. */
  CHECK_INT(rq_curl_fail(CURLE_COULDNT_CONNECT, ""), ==, RQ_FAIL_CONNECT);
  CHECK_INT(rq_curl_fail(CURLE_COULDNT_RESOLVE_HOST, NULL), ==, RQ_FAIL_DNS);
  CHECK_INT(rq_curl_fail(CURLE_OPERATION_TIMEDOUT, ""), ==, RQ_FAIL_TIMEOUT);
  CHECK_INT(rq_curl_fail(CURLE_PEER_FAILED_VERIFICATION, ""), ==, RQ_FAIL_TLS_CERT);
  CHECK_INT(rq_curl_fail(CURLE_OK, ""), ==, RQ_FAIL_NONE);
  /* Every row has a sentence and a known category. */
  for (int k = 1; k < RQ_FAIL__COUNT; k++) {
    rq_classify_failure((enum rq_fail)k, RQ_STAGE_CONNECT, NULL, "m", &c);
    CHECK(c.verdict != RQ_OK);
    CHECK(c.error != RQ_ERR_NONE);
    CHECK(c.detail[0] != '\0');
  }
}

int main(void) {
  test_failure_table();
  test_parse_multiline();
  test_parse_edges();
  test_parse_long_and_garbage();
  test_corpus();
  test_codes_and_stages();
  test_retry_hints();
  test_names();
  test_transport();
  test_http();
  return CHECK_DONE();
}
