/* Unit tests for worker/encode.c: base64 lines, quoted-printable, RFC 2047
 * encoded-words with folding, RFC 2231 parameters, UTF-8 checks. Encoded
 * output is decoded back by small independent decoders below. */
#include <openssl/evp.h>

#include "check.h"
#include "encode.h"

/* ---- helpers ------------------------------------------------------------------ */

/* Longest line (without CRLF) and whether every line break is CRLF. */
static size_t max_line(const char *s, size_t n, int *bare) {
  size_t best = 0, cur = 0;
  *bare = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n') {
      if (cur > best) best = cur;
      cur = 0;
      i++;
    } else if (s[i] == '\r' || s[i] == '\n') {
      *bare = 1;
    } else {
      cur++;
    }
  }
  return cur > best ? cur : best;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* RFC 2045 6.7 decoder: soft breaks vanish, hard CRLFs stay. Returns -1 on
 * malformed input (bad escape, trailing whitespace on an encoded line). */
static int qp_decode(const char *s, size_t n, struct rq_buf *out) {
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '=') {
      if (i + 2 < n && s[i + 1] == '\r' && s[i + 2] == '\n') {
        i += 2;
        continue;
      }
      if (i + 2 >= n + 0 || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0) return -1;
      rq_buf_putc(out, (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2])));
      i += 2;
    } else if ((s[i] == ' ' || s[i] == '\t') &&
               (i + 1 == n || s[i + 1] == '\r')) {
      return -1;
    } else {
      rq_buf_putc(out, s[i]);
    }
  }
  return 0;
}

static size_t b64_decode(const char *s, size_t n, unsigned char *out) {
  int len = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
  if (len < 0) return (size_t)-1;
  size_t l = (size_t)len;
  if (n >= 1 && s[n - 1] == '=') l--;
  if (n >= 2 && s[n - 2] == '=') l--;
  return l;
}

/* Decodes one encoded-word body (after "=?UTF-8?X?" up to "?="). */
static int ew_decode(char enc, const char *p, size_t n, struct rq_buf *out) {
  if (enc == 'B' || enc == 'b') {
    unsigned char tmp[128];
    if (n > 100 || n % 4) return -1;
    size_t l = b64_decode(p, n, tmp);
    if (l == (size_t)-1) return -1;
    rq_buf_append(out, tmp, l);
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    if (p[i] == '_') rq_buf_putc(out, ' ');
    else if (p[i] == '=' && i + 2 < n + 0 && hexval(p[i + 1]) >= 0 && hexval(p[i + 2]) >= 0) {
      rq_buf_putc(out, (char)(hexval(p[i + 1]) * 16 + hexval(p[i + 2])));
      i += 2;
    } else if (p[i] == '=' || p[i] == '?' || p[i] == ' ') return -1;
    else rq_buf_putc(out, p[i]);
  }
  return 0;
}

struct ew_stats {
  int words, longest, bad_utf8, bad;
};

/* Unfolds and decodes a header value the way RFC 2047 section 6 says:
 * whitespace between adjacent encoded-words is dropped. Each word must
 * decode to whole UTF-8 characters on its own. */
static void hdr_decode(const char *s, struct rq_buf *out, struct ew_stats *st) {
  struct rq_buf unf;
  rq_buf_init(&unf);
  memset(st, 0, sizeof *st);
  for (size_t i = 0; s[i]; i++) {
    if (s[i] == '\r' && s[i + 1] == '\n') {
      i++;
      continue;
    }
    rq_buf_putc(&unf, s[i]);
  }
  const char *p = unf.data ? unf.data : "";
  size_t pending_ws = 0;
  const char *ws_at = NULL;
  int prev_ew = 0;
  while (*p) {
    if (*p == ' ' || *p == '\t') {
      if (!pending_ws) ws_at = p;
      pending_ws++;
      p++;
      continue;
    }
    const char *end = p;
    while (*end && *end != ' ' && *end != '\t') end++;
    size_t wl = (size_t)(end - p);
    int is_ew = wl >= 12 && strncmp(p, "=?UTF-8?", 8) == 0 && p[9] == '?' &&
                strncmp(end - 2, "?=", 2) == 0;
    if (!(is_ew && prev_ew) && pending_ws) rq_buf_append(out, ws_at, pending_ws);
    pending_ws = 0;
    if (is_ew) {
      struct rq_buf w;
      rq_buf_init(&w);
      if (ew_decode(p[8], p + 10, wl - 12, &w) != 0) st->bad++;
      if (!rq_utf8_valid(w.data ? w.data : "", w.len)) st->bad_utf8++;
      rq_buf_append(out, w.data ? w.data : "", w.len);
      rq_buf_free(&w);
      st->words++;
      if ((int)wl > st->longest) st->longest = (int)wl;
    } else {
      rq_buf_append(out, p, wl);
    }
    prev_ew = is_ew;
    p = end;
  }
  if (pending_ws) rq_buf_append(out, ws_at, pending_ws);
  rq_buf_free(&unf);
}

/* Encodes value as header `name`, checks folding, decodes it back. */
static void roundtrip_header(const char *name, const char *value, int expect_words) {
  struct rq_buf b, line, dec;
  struct ew_stats st;
  int bare;
  rq_buf_init(&b), rq_buf_init(&line), rq_buf_init(&dec);
  rq_rfc2047_encode(value, strlen(name), &b);
  rq_buf_printf(&line, "%s: %s", name, b.data ? b.data : "");
  size_t ml = max_line(line.data, line.len, &bare);
  CHECK(!bare);
  CHECK_INT(ml, <=, RQ_FOLD_WIDTH);
  hdr_decode(b.data ? b.data : "", &dec, &st);
  CHECK_STR(dec.data ? dec.data : "", value);
  CHECK_INT(st.bad, ==, 0);
  CHECK_INT(st.bad_utf8, ==, 0);
  CHECK_INT(st.longest, <=, RQ_EW_MAX);
  if (expect_words >= 0) CHECK_INT(st.words > 0, ==, expect_words > 0);
  rq_buf_free(&b), rq_buf_free(&line), rq_buf_free(&dec);
}

/* ---- base64 ------------------------------------------------------------------- */

static void test_b64(void) {
  struct rq_buf b;
  rq_buf_init(&b);
  rq_b64_lines("", 0, &b);
  CHECK_INT(b.len, ==, 0);
  rq_b64_lines("f", 1, &b);
  CHECK_STR(b.data, "Zg==\r\n");
  rq_buf_reset(&b);
  rq_b64_lines("foobar", 6, &b);
  CHECK_STR(b.data, "Zm9vYmFy\r\n");

  /* 57 bytes are exactly one 76-character line. */
  unsigned char data[4000];
  for (size_t i = 0; i < sizeof data; i++) data[i] = (unsigned char)(i * 131 + 7);
  rq_buf_reset(&b);
  rq_b64_lines(data, 57, &b);
  CHECK_INT(b.len, ==, 78);
  CHECK(b.data[76] == '\r' && b.data[77] == '\n');
  rq_buf_reset(&b);
  rq_b64_lines(data, 58, &b);
  CHECK_INT(b.len, ==, 78 + 4 + 2);

  /* Every line but the last is 76; all decode back to the input. */
  for (size_t n = 1; n < sizeof data; n += 397) {
    rq_buf_reset(&b);
    rq_b64_lines(data, n, &b);
    struct rq_buf all;
    rq_buf_init(&all);
    size_t start = 0, lines = 0, bad_len = 0;
    for (size_t i = 0; i + 1 < b.len; i++) {
      if (b.data[i] == '\r' && b.data[i + 1] == '\n') {
        size_t l = i - start;
        lines++;
        if (i + 2 < b.len && l != 76) bad_len++;
        if (l > 76 || l == 0) bad_len++;
        rq_buf_append(&all, b.data + start, l);
        start = i + 2;
      }
    }
    CHECK_INT(start, ==, b.len);
    CHECK_INT(bad_len, ==, 0);
    CHECK_INT(lines, ==, (n + 56) / 57);
    unsigned char *dec = malloc(n + 3);
    size_t dl = b64_decode(all.data, all.len, dec);
    CHECK_INT(dl, ==, n);
    CHECK_MEM(dec, data, n);
    free(dec);
    rq_buf_free(&all);
  }
  rq_buf_free(&b);
}

/* ---- quoted-printable --------------------------------------------------------------- */

static void qp_case(const char *in, const char *expect) {
  struct rq_buf b;
  rq_buf_init(&b);
  rq_qp_encode(in, strlen(in), &b);
  CHECK_STR(b.data ? b.data : "", expect);
  rq_buf_free(&b);
}

static void test_qp(void) {
  qp_case("", "");
  qp_case("hello", "hello");
  qp_case("a=b", "a=3Db");
  qp_case("caf\xc3\xa9", "caf=C3=A9");
  /* Trailing whitespace is encoded, before a break and at the end. */
  qp_case("hello \r\nworld\t", "hello=20\r\nworld=09");
  qp_case("a b", "a b");
  /* CRLF preserved, bare LF and bare CR become CRLF. */
  qp_case("l1\r\nl2\nl3\rl4", "l1\r\nl2\r\nl3\r\nl4");
  qp_case("\n\n", "\r\n\r\n");

  char in[300], exp[400];
  /* 76 characters fit on a line when nothing follows; 77 need a soft break
   * after 75. */
  memset(in, 'a', 76), in[76] = 0;
  qp_case(in, in);
  memset(in, 'a', 77), in[77] = 0;
  memset(exp, 'a', 75);
  strcpy(exp + 75, "=\r\naa");
  qp_case(in, exp);
  /* An escape is never split by a soft break. */
  memset(in, 'a', 74);
  strcpy(in + 74, "\xc3\xa9z");
  memset(exp, 'a', 74);
  strcpy(exp + 74, "=\r\n=C3=A9z");
  qp_case(in, exp);

  /* Random-ish text round-trips, with every line <= 76 and no trailing
   * whitespace on any encoded line. */
  struct rq_buf src, enc, dec;
  rq_buf_init(&src), rq_buf_init(&enc), rq_buf_init(&dec);
  const char *pieces[] = {("Gr\xc3\xbc\xc3\x9f" "e "), "=", " ", "\t", "\r\n", "\n",
                          "word ", "x", "\xe2\x82\xac", "  \n", "."};
  for (int i = 0; i < 3000; i++) rq_buf_puts(&src, pieces[(i * 7 + i / 5) % 11]);
  rq_qp_encode(src.data, src.len, &enc);
  int bare;
  CHECK_INT(max_line(enc.data, enc.len, &bare), <=, 76);
  CHECK(!bare);
  CHECK_INT(qp_decode(enc.data, enc.len, &dec), ==, 0);
  /* Decoded equals the source with line breaks normalised to CRLF. */
  struct rq_buf norm;
  rq_buf_init(&norm);
  for (size_t i = 0; i < src.len; i++) {
    if (src.data[i] == '\r' && i + 1 < src.len && src.data[i + 1] == '\n') continue;
    if (src.data[i] == '\n' || src.data[i] == '\r') rq_buf_puts(&norm, "\r\n");
    else rq_buf_putc(&norm, src.data[i]);
  }
  CHECK_INT(dec.len, ==, norm.len);
  CHECK(dec.len == norm.len && memcmp(dec.data, norm.data, dec.len) == 0);
  rq_buf_free(&src), rq_buf_free(&enc), rq_buf_free(&dec), rq_buf_free(&norm);
}

/* ---- RFC 2047 -------------------------------------------------------------------- */

static void enc_case(const char *name, const char *value, const char *expect) {
  struct rq_buf b;
  rq_buf_init(&b);
  rq_rfc2047_encode(value, strlen(name), &b);
  CHECK_STR(b.data ? b.data : "", expect);
  rq_buf_free(&b);
}

static void test_rfc2047(void) {
  /* Printable ASCII comes back as it is. */
  enc_case("Subject", "Hello world", "Hello world");
  enc_case("Subject", "", "");
  enc_case("Subject", "a=?b c?=d (x) \"q\"", "a=?b c?=d (x) \"q\"");
  /* A word a decoder could take for an encoded-word is encoded itself. */
  enc_case("Subject", "see =?UTF-8?Q?x?= here", "see =?UTF-8?B?PT9VVEYtOD9RP3g/PQ==?= here");
  roundtrip_header("Subject", "lit =?UTF-8?B?eA==?= eral", 1);
  /* Fixed vectors: the shorter of B and Q is chosen per run, only the
   * words that need it are encoded. */
  enc_case("Subject", "Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln",
           "=?UTF-8?B?R3LDvMOfZQ==?= aus =?UTF-8?B?S8O2bG4=?=");
  /* Adjacent words needing encoding share a run, space included. */
  enc_case("Subject", "caf\xc3\xa9 cr\xc3\xa8me", "=?UTF-8?B?Y2Fmw6kgY3LDqG1l?=");
  enc_case("Subject", "Pr\xc3\xa4sentation morgen", "=?UTF-8?Q?Pr=C3=A4sentation?= morgen");
  enc_case("X-Test", "\xe6\x97\xa5\xe6\x9c\xac", "=?UTF-8?B?5pel5pys?=");
  /* Controls are encoded, never written raw. */
  enc_case("Subject", "abc\x01" "def", "=?UTF-8?Q?abc=01def?=");

  roundtrip_header("Subject", "Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln", 1);
  roundtrip_header("Subject", "  leading and trailing  ", 0);
  roundtrip_header("Subject", "tab\there", 0);

  /* A 200-character UTF-8 subject (mixed 1-4 byte characters) folds into
   * encoded-words of at most 75, none splitting a character. */
  struct rq_buf s;
  rq_buf_init(&s);
  const char *chars[] = {"a", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", " ", "Z"};
  for (int i = 0; i < 200; i++) rq_buf_puts(&s, chars[(i * 5 + i / 3) % 6]);
  roundtrip_header("Subject", s.data, 1);
  /* The same behind a long header name. */
  roundtrip_header("X-A-Rather-Long-Header-Name-For-Testing-Folding", s.data, 1);
  /* One long run without spaces. */
  rq_buf_reset(&s);
  for (int i = 0; i < 200; i++) rq_buf_puts(&s, "\xc3\xa9");
  roundtrip_header("Subject", s.data, 1);
  /* Long ASCII folds at its own whitespace and unfolds to itself. */
  rq_buf_reset(&s);
  for (int i = 0; i < 60; i++) rq_buf_puts(&s, i ? " word" : "word");
  roundtrip_header("Subject", s.data, 0);
  /* Mixed: ASCII words stay readable between encoded runs. */
  rq_buf_reset(&s);
  for (int i = 0; i < 40; i++) rq_buf_puts(&s, i % 3 ? "plain " : "\xc3\xbc" "ber ");
  roundtrip_header("Subject", s.data, 1);

  /* A word too long to fold is encoded so lines stay under 998. */
  rq_buf_reset(&s);
  for (int i = 0; i < 1500; i++) rq_buf_putc(&s, 'x');
  struct rq_buf b;
  rq_buf_init(&b);
  rq_rfc2047_encode(s.data, 7, &b);
  int bare;
  CHECK_INT(max_line(b.data, b.len, &bare), <=, RQ_FOLD_WIDTH);
  roundtrip_header("Subject", s.data, 1);
  /* A huge whitespace run becomes one space rather than a long line. */
  rq_buf_reset(&s);
  rq_buf_puts(&s, "a");
  for (int i = 0; i < 2000; i++) rq_buf_putc(&s, ' ');
  rq_buf_puts(&s, "b");
  rq_buf_reset(&b);
  rq_rfc2047_encode(s.data, 7, &b);
  CHECK_STR(b.data, "a b");
  rq_buf_free(&b);
  rq_buf_free(&s);
}

/* ---- RFC 2231 ------------------------------------------------------------------------ */

static void param_case(const char *name, const char *value, const char *expect) {
  struct rq_buf b;
  rq_buf_init(&b);
  rq_rfc2231_param(name, value, &b);
  CHECK_STR(b.data ? b.data : "", expect);
  rq_buf_free(&b);
}

static void test_rfc2231(void) {
  param_case("filename", "report.pdf", ";\r\n filename=\"report.pdf\"");
  param_case("filename", "a \"b\" \\c.txt", ";\r\n filename=\"a \\\"b\\\" \\\\c.txt\"");
  param_case("filename", "Gr\xc3\xbc\xc3\x9f" "e.pdf",
             ";\r\n filename*=UTF-8''Gr%C3%BC%C3%9Fe.pdf");
  param_case("filename", "a b.txt\x01", ";\r\n filename*=UTF-8''a%20b.txt%01");
  /* Long ASCII: plain continuations. */
  char v[200];
  memset(v, 'n', 120), v[120] = 0;
  struct rq_buf b;
  rq_buf_init(&b);
  rq_rfc2231_param("filename", v, &b);
  CHECK(strstr(b.data, "filename*0=\"") != NULL);
  CHECK(strstr(b.data, "filename*2=\"") != NULL);
  CHECK(strstr(b.data, "filename*3") == NULL);
  /* Long non-ASCII: extended sections, charset only on the first, each
   * section whole characters, lines short. */
  struct rq_buf s;
  rq_buf_init(&s);
  for (int i = 0; i < 60; i++) rq_buf_puts(&s, "\xe2\x82\xac");
  rq_buf_reset(&b);
  rq_rfc2231_param("filename", s.data, &b);
  CHECK(strncmp(b.data, ";\r\n filename*0*=UTF-8''%E2%82%AC", 32) == 0);
  CHECK(strstr(b.data, "filename*1*=%E2") != NULL);
  CHECK(strstr(b.data, "filename*1*=UTF-8") == NULL);
  int bare;
  CHECK_INT(max_line(b.data, b.len, &bare), <=, RQ_FOLD_WIDTH);
  /* Reassemble: the percent-decoded sections give the value back. */
  struct rq_buf dec;
  rq_buf_init(&dec);
  for (const char *p = b.data; (p = strstr(p, "*=")) != NULL;) {
    p += 2;
    if (strncmp(p, "UTF-8''", 7) == 0) p += 7;
    while (*p && *p != ';') {
      if (*p == '%') rq_buf_putc(&dec, (char)(hexval(p[1]) * 16 + hexval(p[2]))), p += 3;
      else rq_buf_putc(&dec, *p++);
    }
  }
  CHECK_STR(dec.data, s.data);
  rq_buf_free(&dec);
  rq_buf_free(&s);
  rq_buf_free(&b);
}

/* ---- UTF-8 ------------------------------------------------------------------------------ */

static void test_utf8(void) {
  CHECK(rq_utf8_valid("", 0));
  CHECK(rq_utf8_valid("plain", 5));
  CHECK(rq_utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9));
  CHECK(!rq_utf8_valid("\xc0\xaf", 2));         /* overlong '/' */
  CHECK(!rq_utf8_valid("\xe0\x80\xaf", 3));     /* overlong */
  CHECK(!rq_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
  CHECK(!rq_utf8_valid("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
  CHECK(!rq_utf8_valid("\xc3", 1));             /* truncated */
  CHECK(!rq_utf8_valid("\x80", 1));             /* lone continuation */
  CHECK_INT(rq_utf8_char_len("\xf0\x9f\x98\x80", 4), ==, 4);
  CHECK_INT(rq_utf8_char_len("\xf0\x9f\x98", 3), ==, 1);
  CHECK_INT(rq_utf8_char_len("\xff", 1), ==, 1);
  CHECK(rq_is_ascii("abc\x7f", 4));
  CHECK(!rq_is_ascii("ab\xc3\xa9", 4));
}

int main(void) {
  test_b64();
  test_qp();
  test_rfc2047();
  test_rfc2231();
  test_utf8();
  return CHECK_DONE();
}
