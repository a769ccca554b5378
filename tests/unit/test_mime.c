/* Unit tests for worker/mime.c: the message for text, html, both and
 * attachments, parsed back by a small MIME reader below (boundaries present
 * and closed, Bcc absent, CRLF everywhere, no line over 998); Date,
 * Message-ID escaping, raw normalisation, refusals, determinism. */
#include <openssl/evp.h>

#include "check.h"
#include "encode.h"
#include "mime.h"

/* ---- a small MIME reader ------------------------------------------------------ */

struct entity {
  const char *hdr; /* header block, CRLF-terminated lines */
  size_t hdr_len;
  const char *body;
  size_t body_len;
};

static int split_entity(const char *s, size_t n, struct entity *e) {
  if (n >= 2 && s[0] == '\r' && s[1] == '\n') { /* no headers */
    e->hdr = s, e->hdr_len = 0, e->body = s + 2, e->body_len = n - 2;
    return 0;
  }
  const char *sep = memmem(s, n, "\r\n\r\n", 4);
  if (sep == NULL) return -1;
  e->hdr = s;
  e->hdr_len = (size_t)(sep - s) + 2;
  e->body = sep + 4;
  e->body_len = n - (size_t)(e->body - s);
  return 0;
}

/* Unfolded value of the idx-th (0-based) header `name`; returns how many
 * such headers exist. */
static int header_nth(const struct entity *e, const char *name, int idx, char *out,
                      size_t cap) {
  size_t nl = strlen(name);
  int count = 0;
  const char *p = e->hdr, *end = e->hdr + e->hdr_len;
  if (cap) out[0] = '\0';
  while (p < end) {
    const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
    if (eol == NULL) break;
    if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
      if (count == idx) {
        size_t o = 0;
        const char *v = p + nl + 1;
        while (v < eol && (*v == ' ' || *v == '\t')) v++;
        for (;;) {
          while (v < eol && o + 1 < cap) out[o++] = *v++;
          const char *next = eol + 2;
          if (next < end && (*next == ' ' || *next == '\t')) {
            v = next;
            eol = memmem(next, (size_t)(end - next), "\r\n", 2);
            continue;
          }
          break;
        }
        out[o] = '\0';
      }
      count++;
    }
    p = eol + 2;
  }
  return count;
}

static int header(const struct entity *e, const char *name, char *out, size_t cap) {
  return header_nth(e, name, 0, out, cap);
}

/* Value of parameter `param` in a header value (quoted or token). */
static int param(const char *value, const char *name, char *out, size_t cap) {
  char key[64];
  snprintf(key, sizeof key, "%s=", name);
  for (const char *p = value; (p = strcasestr(p, key)) != NULL; p++) {
    if (p != value && p[-1] != ';' && p[-1] != ' ' && p[-1] != '\t') continue;
    p += strlen(key);
    size_t o = 0;
    if (*p == '"') {
      for (p++; *p && *p != '"' && o + 1 < cap; p++) {
        if (*p == '\\' && p[1]) p++;
        out[o++] = *p;
      }
    } else {
      while (*p && *p != ';' && *p != ' ' && o + 1 < cap) out[o++] = *p++;
    }
    out[o] = '\0';
    return 0;
  }
  return -1;
}

/* Splits a multipart body at its boundary; -1 when a delimiter is missing
 * or the close delimiter is not there. */
static int split_parts(const struct entity *e, const char *b, struct entity *parts, int max) {
  char open[100], delim[100], close[100];
  snprintf(open, sizeof open, "--%s\r\n", b);
  snprintf(delim, sizeof delim, "\r\n--%s\r\n", b);
  snprintf(close, sizeof close, "\r\n--%s--", b);
  const char *s = e->body, *end = e->body + e->body_len;
  const char *p = memmem(s, e->body_len, open, strlen(open));
  if (p == NULL || (p != s && !(p >= s + 2 && p[-2] == '\r' && p[-1] == '\n'))) return -1;
  p += strlen(open);
  const char *fin = memmem(p, (size_t)(end - p), close, strlen(close));
  if (fin == NULL) return -1;
  int n = 0;
  while (n < max) {
    const char *next = memmem(p, (size_t)(fin - p), delim, strlen(delim));
    const char *stop = next ? next : fin;
    if (split_entity(p, (size_t)(stop - p), &parts[n]) != 0) return -1;
    n++;
    if (!next) break;
    p = next + strlen(delim);
  }
  /* After the close delimiter: only CRLF (an epilogue would be allowed,
   * but the builder writes none). */
  const char *after = fin + strlen(close);
  if ((size_t)(end - after) > 2) return -1;
  return n;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static void qp_decode(const char *s, size_t n, struct rq_buf *out) {
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '=' && i + 2 < n && s[i + 1] == '\r' && s[i + 2] == '\n') {
      i += 2;
    } else if (s[i] == '=' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
      rq_buf_putc(out, (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2])));
      i += 2;
    } else {
      rq_buf_putc(out, s[i]);
    }
  }
}

/* Decoded content of a text entity per its Content-Transfer-Encoding. */
static void text_of(const struct entity *e, struct rq_buf *out) {
  char cte[64];
  header(e, "Content-Transfer-Encoding", cte, sizeof cte);
  rq_buf_reset(out);
  if (strcasecmp(cte, "quoted-printable") == 0) qp_decode(e->body, e->body_len, out);
  else rq_buf_append(out, e->body, e->body_len);
}

static size_t b64_decode_lines(const struct entity *e, unsigned char *out, int *bad_lines) {
  struct rq_buf joined;
  rq_buf_init(&joined);
  size_t start = 0;
  *bad_lines = 0;
  const char *s = e->body;
  for (size_t i = 0; i <= e->body_len; i++) {
    if (i == e->body_len || (s[i] == '\r' && i + 1 < e->body_len && s[i + 1] == '\n')) {
      size_t l = i - start;
      int last = i + 2 >= e->body_len;
      if (l > 76 || (!last && l != 76)) (*bad_lines)++;
      rq_buf_append(&joined, s + start, l);
      start = i + 2;
      i++;
    }
  }
  if (joined.len == 0) {
    rq_buf_free(&joined);
    return 0;
  }
  int len = EVP_DecodeBlock(out, (unsigned char *)joined.data, (int)joined.len);
  size_t l = len < 0 ? 0 : (size_t)len;
  if (joined.data[joined.len - 1] == '=') l--;
  if (joined.data[joined.len - 2] == '=') l--;
  rq_buf_free(&joined);
  return l;
}

/* Every line ends in CRLF and has at most 998 octets. */
static void check_lines(const struct rq_buf *m) {
  size_t cur = 0, longest = 0, bare = 0;
  for (size_t i = 0; i < m->len; i++) {
    char c = m->data[i];
    if (c == '\r' && i + 1 < m->len && m->data[i + 1] == '\n') {
      cur = 0;
      i++;
    } else if (c == '\r' || c == '\n') {
      bare++;
    } else if (++cur > longest) {
      longest = cur;
    }
  }
  CHECK_INT(bare, ==, 0);
  CHECK_INT(longest, <=, RQ_LINE_MAX);
  CHECK(m->len >= 2 && m->data[m->len - 2] == '\r' && m->data[m->len - 1] == '\n');
}

/* Header lines of the top entity stay within 78 unless a token is longer. */
static size_t longest_header_line(const struct entity *e) {
  size_t best = 0, cur = 0;
  for (size_t i = 0; i < e->hdr_len; i++) {
    if (e->hdr[i] == '\r') cur = 0;
    else if (e->hdr[i] != '\n' && ++cur > best) best = cur;
  }
  return best;
}

/* ---- fixtures --------------------------------------------------------------------- */

static char *to_list[] = {"Alice <alice@example.com>", "bob@example.com"};
static char *cc_list[] = {"\"Carol, C\" <carol@example.com>"};
static char *bcc_list[] = {"secret-bcc@example.com"};

static void base_job(struct relayq_job *job) {
  memset(job, 0, sizeof *job);
  job->v = 1;
  job->id = "job-1";
  job->tenant = "t1";
  job->to.v = to_list, job->to.n = 2;
  job->cc.v = cc_list, job->cc.n = 1;
  job->bcc.v = bcc_list, job->bcc.n = 1;
  job->subject = "Hello";
}

static void base_input(struct rq_mime_input *in, const struct relayq_job *job) {
  memset(in, 0, sizeof *in);
  in->job = job;
  in->from_addr = "sender@example.org";
  in->from_name = "Sender Team";
  in->message_id = "<job-1@example.org>";
  in->date_ms = 1795332600000LL;
}

static void build_ok(const struct rq_mime_input *in, struct rq_buf *m, struct entity *top) {
  char err[256] = "";
  rq_buf_reset(m);
  int rc = rq_mime_build(in, m, err, sizeof err);
  if (rc != 0) fprintf(stderr, "build failed: %s\n", err);
  CHECK_INT(rc, ==, 0);
  check_lines(m);
  CHECK_INT(split_entity(m->data, m->len, top), ==, 0);
}

/* ---- tests -------------------------------------------------------------------------- */

static void test_text_only(void) {
  struct relayq_job job;
  struct rq_mime_input in;
  struct rq_buf m, t;
  struct entity top;
  char v[1024];
  rq_buf_init(&m), rq_buf_init(&t);
  base_job(&job);
  job.text = "Hi there,\nline two\n";
  base_input(&in, &job);
  in.reply_to = "help@example.org";
  in.signature_text = "ACME Ltd\nwww.example.com";
  build_ok(&in, &m, &top);

  CHECK_INT(header(&top, "From", v, sizeof v), ==, 1);
  CHECK_STR(v, "Sender Team <sender@example.org>");
  CHECK_INT(header(&top, "To", v, sizeof v), ==, 1);
  CHECK_STR(v, "Alice <alice@example.com>, bob@example.com");
  CHECK_INT(header(&top, "Cc", v, sizeof v), ==, 1);
  CHECK_STR(v, "\"Carol, C\" <carol@example.com>");
  CHECK_INT(header(&top, "Bcc", v, sizeof v), ==, 0);
  CHECK(memmem(m.data, m.len, "secret-bcc", 10) == NULL);
  CHECK_INT(header(&top, "Reply-To", v, sizeof v), ==, 1);
  CHECK_STR(v, "help@example.org");
  CHECK_INT(header(&top, "Subject", v, sizeof v), ==, 1);
  CHECK_STR(v, "Hello");
  CHECK_INT(header(&top, "Date", v, sizeof v), ==, 1);
  CHECK_STR(v, "Sun, 22 Nov 2026 07:30:00 +0000");
  CHECK_INT(header(&top, "Message-ID", v, sizeof v), ==, 1);
  CHECK_STR(v, "<job-1@example.org>");
  CHECK_INT(header(&top, "MIME-Version", v, sizeof v), ==, 1);
  CHECK_STR(v, "1.0");
  CHECK_INT(header(&top, "Content-Type", v, sizeof v), ==, 1);
  CHECK_STR(v, "text/plain; charset=UTF-8");
  CHECK_INT(header(&top, "Content-Transfer-Encoding", v, sizeof v), ==, 1);
  CHECK_STR(v, "7bit");
  /* From comes first (some filters look at the order, all readers accept it). */
  CHECK(strncmp(m.data, "From: ", 6) == 0);
  text_of(&top, &t);
  CHECK_STR(t.data, "Hi there,\r\nline two\r\n\r\n-- \r\nACME Ltd\r\nwww.example.com\r\n");
  rq_buf_free(&m), rq_buf_free(&t);
}

static void test_html_only(void) {
  struct relayq_job job;
  struct rq_mime_input in;
  struct rq_buf m, t;
  struct entity top;
  char v[256];
  rq_buf_init(&m), rq_buf_init(&t);
  base_job(&job);
  job.html = "<html><BODY class=\"x\"><p>Hi</p></body></html>";
  base_input(&in, &job);
  in.logo_url = "https://cdn.example.com/logo.png?a=1&b=\"2\"";
  in.signature_html = "<p>ACME</p>";
  in.signature_text = "ignored for html-only";
  build_ok(&in, &m, &top);
  header(&top, "Content-Type", v, sizeof v);
  CHECK_STR(v, "text/html; charset=UTF-8");
  text_of(&top, &t);
  CHECK_STR(t.data,
            "<html><BODY class=\"x\"><div><img src=\"https://cdn.example.com/logo.png?a=1&amp;"
            "b=&quot;2&quot;\" alt=\"\"></div>\r\n<p>Hi</p>\r\n<p>ACME</p></body></html>\r\n");
  CHECK(memmem(m.data, m.len, "ignored", 7) == NULL);

  /* A fragment without <body>: logo first, signature last. */
  job.html = "<p>frag</p>";
  build_ok(&in, &m, &top);
  text_of(&top, &t);
  CHECK(strncmp(t.data, "<div><img src=", 14) == 0);
  CHECK(strstr(t.data, "<p>frag</p>\r\n<p>ACME</p>") != NULL);
  rq_buf_free(&m), rq_buf_free(&t);
}

static void test_alternative(void) {
  struct relayq_job job;
  struct rq_mime_input in;
  struct rq_buf m, t;
  struct entity top, parts[4];
  char v[256], b[100];
  rq_buf_init(&m), rq_buf_init(&t);
  base_job(&job);
  job.text = "Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln";
  job.html = "<p>Gr\xc3\xbc\xc3\x9f" "e</p>";
  job.subject = "Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln";
  base_input(&in, &job);
  build_ok(&in, &m, &top);
  header(&top, "Subject", v, sizeof v);
  CHECK_STR(v, "=?UTF-8?B?R3LDvMOfZQ==?= aus =?UTF-8?B?S8O2bG4=?=");
  header(&top, "Content-Type", v, sizeof v);
  CHECK(strncmp(v, "multipart/alternative;", 22) == 0);
  CHECK_INT(param(v, "boundary", b, sizeof b), ==, 0);
  CHECK_INT(split_parts(&top, b, parts, 4), ==, 2);
  header(&parts[0], "Content-Type", v, sizeof v);
  CHECK_STR(v, "text/plain; charset=UTF-8");
  header(&parts[0], "Content-Transfer-Encoding", v, sizeof v);
  CHECK_STR(v, "quoted-printable");
  text_of(&parts[0], &t);
  CHECK_STR(t.data, job.text);
  header(&parts[1], "Content-Type", v, sizeof v);
  CHECK_STR(v, "text/html; charset=UTF-8");
  text_of(&parts[1], &t);
  CHECK_STR(t.data, job.html);
  rq_buf_free(&m), rq_buf_free(&t);
}

static void test_attachments(void) {
  struct relayq_job job;
  struct rq_mime_input in;
  struct rq_buf m, t;
  struct entity top, parts[5], alt[3];
  char v[512], b[100], b2[100], fn[256];
  rq_buf_init(&m), rq_buf_init(&t);
  base_job(&job);
  job.text = "See attached.";
  job.html = "<p>See attached.</p>";
  static unsigned char pdf[5000];
  for (size_t i = 0; i < sizeof pdf; i++) pdf[i] = (unsigned char)(i * 7 + 3);
  struct relayq_attachment att[3] = {
      {"report.pdf", "application/pdf", pdf, sizeof pdf},
      {"R\xc3\xa9sum\xc3\xa9 \xe2\x82\xac.xlsx", NULL, pdf, 100},
      {"empty.txt", "bad type", NULL, 0},
  };
  job.attachments = att;
  job.n_attachments = 3;
  base_input(&in, &job);
  build_ok(&in, &m, &top);

  header(&top, "Content-Type", v, sizeof v);
  CHECK(strncmp(v, "multipart/mixed;", 16) == 0);
  CHECK_INT(param(v, "boundary", b, sizeof b), ==, 0);
  CHECK_INT(split_parts(&top, b, parts, 5), ==, 4);
  /* The body: an alternative nested in the mixed. */
  header(&parts[0], "Content-Type", v, sizeof v);
  CHECK(strncmp(v, "multipart/alternative;", 22) == 0);
  CHECK_INT(param(v, "boundary", b2, sizeof b2), ==, 0);
  CHECK(strcmp(b, b2) != 0);
  CHECK_INT(split_parts(&parts[0], b2, alt, 3), ==, 2);
  text_of(&alt[0], &t);
  CHECK_STR(t.data, "See attached.");

  /* The PDF: base64 in 76-character lines, decoding to the bytes. */
  header(&parts[1], "Content-Type", v, sizeof v);
  CHECK_STR(v, "application/pdf; name=\"report.pdf\"");
  header(&parts[1], "Content-Transfer-Encoding", v, sizeof v);
  CHECK_STR(v, "base64");
  header(&parts[1], "Content-Disposition", v, sizeof v);
  CHECK_STR(v, "attachment; filename=\"report.pdf\"");
  static unsigned char dec[6000];
  int bad_lines = -1;
  size_t dl = b64_decode_lines(&parts[1], dec, &bad_lines);
  CHECK_INT(bad_lines, ==, 0);
  CHECK_INT(dl, ==, sizeof pdf);
  CHECK_MEM(dec, pdf, sizeof pdf);

  /* Non-ASCII name: RFC 2231 filename*, RFC 2047 name=, default type. */
  header(&parts[2], "Content-Type", v, sizeof v);
  CHECK(strncmp(v, "application/octet-stream; name=\"=?UTF-8?", 40) == 0);
  header(&parts[2], "Content-Disposition", v, sizeof v);
  CHECK_STR(v, "attachment; filename*=UTF-8''R%C3%A9sum%C3%A9%20%E2%82%AC.xlsx");
  dl = b64_decode_lines(&parts[2], dec, &bad_lines);
  CHECK_INT(dl, ==, 100);
  CHECK_MEM(dec, pdf, 100);

  /* Empty data and an invalid type. */
  header(&parts[3], "Content-Type", v, sizeof v);
  CHECK_STR(v, "application/octet-stream; name=\"empty.txt\"");
  CHECK_INT(parts[3].body_len, ==, 0);
  param(v, "name", fn, sizeof fn);
  CHECK_STR(fn, "empty.txt");
  rq_buf_free(&m), rq_buf_free(&t);
}

static void test_encodings_and_limits(void) {
  struct relayq_job job;
  struct rq_mime_input in;
  struct rq_buf m, t, big;
  struct entity top;
  char v[4096];
  rq_buf_init(&m), rq_buf_init(&t), rq_buf_init(&big);
  base_job(&job);
  base_input(&in, &job);

  /* A 3000-character ASCII line is sent quoted-printable. */
  for (int i = 0; i < 3000; i++) rq_buf_putc(&big, (char)('a' + i % 26));
  job.text = big.data;
  build_ok(&in, &m, &top);
  header(&top, "Content-Transfer-Encoding", v, sizeof v);
  CHECK_STR(v, "quoted-printable");
  text_of(&top, &t);
  /* A single-part message ends with the CRLF SMTP needs before "." */
  CHECK_INT(t.len, ==, big.len + 2);
  CHECK(t.len == big.len + 2 && memcmp(t.data, big.data, big.len) == 0);

  /* Text holding "=_" (what boundaries start with) is not sent 7bit. */
  job.text = "a=_b";
  build_ok(&in, &m, &top);
  header(&top, "Content-Transfer-Encoding", v, sizeof v);
  CHECK_STR(v, "quoted-printable");

  /* Neither text nor html: an empty text/plain body. */
  job.text = NULL;
  build_ok(&in, &m, &top);
  header(&top, "Content-Type", v, sizeof v);
  CHECK_STR(v, "text/plain; charset=UTF-8");
  CHECK_INT(top.body_len, ==, 0);

  /* No subject: an empty Subject header. */
  job.subject = NULL;
  build_ok(&in, &m, &top);
  CHECK_INT(header(&top, "Subject", v, sizeof v), ==, 1);
  CHECK_STR(v, "");
  CHECK(memmem(m.data, m.len, "\r\nSubject: \r\n", 13) != NULL);

  /* Bcc only: an empty group in To, no Cc. */
  job.to.n = 0;
  job.cc.n = 0;
  build_ok(&in, &m, &top);
  header(&top, "To", v, sizeof v);
  CHECK_STR(v, "undisclosed-recipients:;");
  CHECK_INT(header(&top, "Cc", v, sizeof v), ==, 0);
  CHECK(memmem(m.data, m.len, "secret-bcc", 10) == NULL);

  /* A long non-ASCII subject and display name fold to 78. */
  base_job(&job);
  rq_buf_reset(&big);
  for (int i = 0; i < 100; i++) rq_buf_puts(&big, "\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80 ");
  job.subject = big.data;
  job.text = "x";
  in.from_name = big.data;
  build_ok(&in, &m, &top);
  CHECK_INT(longest_header_line(&top), <=, RQ_FOLD_WIDTH);

  /* Extra headers: kept, encoded when non-ASCII, builder's own skipped. */
  struct relayq_kv hdrs[] = {
      {"List-Unsubscribe", "<https://example.com/u?id=1>, <mailto:u@example.com>"},
      {"X-Note", "Stra\xc3\x9f" "e"},
      {"Bcc", "leak@example.com"},
      {"content-type", "text/evil"},
  };
  job.headers = hdrs;
  job.n_headers = 4;
  in.from_name = "Sender";
  build_ok(&in, &m, &top);
  header(&top, "List-Unsubscribe", v, sizeof v);
  CHECK_STR(v, hdrs[0].value);
  header(&top, "X-Note", v, sizeof v);
  CHECK_STR(v, "=?UTF-8?Q?Stra=C3=9Fe?=");
  CHECK_INT(header(&top, "Bcc", v, sizeof v), ==, 0);
  CHECK(memmem(m.data, m.len, "leak@", 5) == NULL);
  CHECK(memmem(m.data, m.len, "text/evil", 9) == NULL);
  CHECK_INT(header(&top, "Content-Type", v, sizeof v), ==, 1);

  rq_buf_free(&m), rq_buf_free(&t), rq_buf_free(&big);
}

static void test_refusals(void) {
  struct relayq_job job;
  struct rq_mime_input in;
  struct rq_buf m;
  char err[256];
  rq_buf_init(&m);
  rq_buf_puts(&m, "KEEP");
  base_job(&job);
  job.text = "x";
  base_input(&in, &job);

  in.from_addr = "not an address";
  err[0] = 0;
  CHECK_INT(rq_mime_build(&in, &m, err, sizeof err), ==, -1);
  CHECK(strstr(err, "From") != NULL);
  CHECK_STR(m.data, "KEEP"); /* out untouched on failure */

  in.from_addr = "sender@example.org";
  char *bad_to[] = {"ok@example.com", "x@y@z"};
  job.to.v = bad_to;
  CHECK_INT(rq_mime_build(&in, &m, err, sizeof err), ==, -1);
  CHECK(strstr(err, "To") != NULL && strstr(err, "item 2") != NULL);
  CHECK_STR(m.data, "KEEP");

  base_job(&job);
  job.text = "x";
  in.reply_to = "bad reply";
  CHECK_INT(rq_mime_build(&in, &m, err, sizeof err), ==, -1);
  CHECK(strstr(err, "Reply-To") != NULL);
  in.reply_to = NULL;

  struct relayq_kv hdr = {"Bad Name", "v"};
  job.headers = &hdr;
  job.n_headers = 1;
  CHECK_INT(rq_mime_build(&in, &m, err, sizeof err), ==, -1);
  CHECK(strstr(err, "header name") != NULL);
  struct relayq_kv inj = {"X-Inject", "v\r\nBcc: evil@example.com"};
  job.headers = &inj;
  CHECK_INT(rq_mime_build(&in, &m, err, sizeof err), ==, 0);
  CHECK(memmem(m.data, m.len, "\r\nBcc:", 6) == NULL);

  in.message_id = NULL;
  CHECK_INT(rq_mime_build(&in, &m, err, sizeof err), ==, -1);
  CHECK_INT(rq_mime_build(NULL, &m, NULL, 0), ==, -1);
  rq_buf_free(&m);
}

static void test_deterministic(void) {
  struct relayq_job job;
  struct rq_mime_input in;
  struct rq_buf a, b;
  rq_buf_init(&a), rq_buf_init(&b);
  base_job(&job);
  job.text = "t";
  job.html = "<b>h</b>";
  unsigned char data[10] = "0123456789";
  struct relayq_attachment att = {"a.bin", "application/octet-stream", data, 10};
  job.attachments = &att;
  job.n_attachments = 1;
  base_input(&in, &job);
  CHECK_INT(rq_mime_build(&in, &a, NULL, 0), ==, 0);
  CHECK_INT(rq_mime_build(&in, &b, NULL, 0), ==, 0);
  CHECK_INT(a.len, ==, b.len);
  CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
  /* Another Message-ID, other boundaries. */
  in.message_id = "<job-2@example.org>";
  rq_buf_reset(&b);
  CHECK_INT(rq_mime_build(&in, &b, NULL, 0), ==, 0);
  CHECK(a.len != b.len || memcmp(a.data, b.data, a.len) != 0);
  rq_buf_free(&a), rq_buf_free(&b);
}

static void msgid_case(const char *id, const char *domain, const char *expect) {
  struct rq_buf b;
  rq_buf_init(&b);
  rq_mime_message_id(id, domain, &b);
  CHECK_STR(b.data, expect);
  rq_buf_free(&b);
}

static void test_message_id(void) {
  msgid_case("job-1", "example.org", "<job-1@example.org>");
  msgid_case("order:42@shop", "mail.example.org", "<order=3A42=40shop@mail.example.org>");
  msgid_case("a.b_c", "example.org", "<a.b_c@example.org>");
  msgid_case(".a..b.", "example.org", "<=2Ea=2E=2Eb=2E@example.org>");
  msgid_case("x", "bad domain>", "<x@relayq.invalid>");
  msgid_case("x", NULL, "<x@relayq.invalid>");
}

static void test_date(void) {
  char d[40];
  rq_mime_date(0, d);
  CHECK_STR(d, "Thu, 01 Jan 1970 00:00:00 +0000");
  rq_mime_date(1795332600000LL, d);
  CHECK_STR(d, "Sun, 22 Nov 2026 07:30:00 +0000");
  rq_mime_date(1795332600999LL, d);
  CHECK_STR(d, "Sun, 22 Nov 2026 07:30:00 +0000");
  rq_mime_date(-1500, d);
  CHECK_STR(d, "Wed, 31 Dec 1969 23:59:58 +0000");
}

static void test_raw(void) {
  struct rq_buf b;
  rq_buf_init(&b);
  const char *in = "A: 1\nB: 2\r\n\r\nbody\rmore\r\n\n";
  rq_mime_raw((const unsigned char *)in, strlen(in), &b);
  CHECK_STR(b.data, "A: 1\r\nB: 2\r\n\r\nbody\r\nmore\r\n\r\n");
  rq_buf_reset(&b);
  rq_mime_raw((const unsigned char *)"x\r", 2, &b);
  CHECK_STR(b.data, "x\r\n");
  rq_buf_reset(&b);
  rq_mime_raw((const unsigned char *)"no newline", 10, &b);
  CHECK_STR(b.data, "no newline");
  rq_buf_free(&b);
}

int main(void) {
  test_text_only();
  test_html_only();
  test_alternative();
  test_attachments();
  test_encodings_and_limits();
  test_refusals();
  test_deterministic();
  test_message_id();
  test_date();
  test_raw();
  return CHECK_DONE();
}
