/*
 * The streaming message (worker/mail/msg.h) against the whole-message
 * builder, for a corpus of jobs (text, HTML, both, attachments of every
 * size around a base64 line, 8-bit bodies and names, long lines, raw):
 *   - rq_mime_build_msg read in chunks of any size, and from any offset
 *     (rq_msg_seek), gives exactly rq_mime_build's bytes;
 *   - rq_dkim_sign_msg gives exactly rq_dkim_sign's bytes (RSA and
 *     Ed25519), i.e. the streamed body hash equals the whole one;
 *   - the DKIM body canonicaliser fed in pieces split anywhere equals the
 *     one-pass form;
 *   - the SMTP stuffer pulling windows equals the stuffer over the flat
 *     message (dot-stuffing and the end-of-data rule across windows);
 *   - a decoded job's attachment data points into the payload
 *     (relayq_job_decode_ref), which is what lets the worker hold a
 *     10 MB attachment once.
 */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include <relayq/relayq.h>

#include "check.h"
#include "dkim.h"
#include "dkim_canon.h"
#include "mime.h"
#include "msg.h"
#include "smtp_proto.h"

static uint64_t rng = 0x2545F4914F6CDD1DULL;
static unsigned rnd(unsigned n) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (unsigned)(rng % n);
}

static unsigned char *bytes(size_t n) {
  unsigned char *p = malloc(n ? n : 1);
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)rnd(256);
  return p;
}

/* Reads all of m in chunks of `chunk` (0: random sizes 1-200). */
static void read_all(const struct rq_msg *m, size_t chunk, struct rq_buf *out) {
  struct rq_msg_cursor c;
  rq_msg_cursor_init(&c, m);
  char buf[70000];
  rq_buf_reset(out);
  for (;;) {
    size_t want = chunk ? chunk : 1 + rnd(200);
    size_t n = rq_msg_read(&c, buf, want);
    if (n == 0) break;
    CHECK(n <= want);
    rq_buf_append(out, buf, n);
  }
}

static void same_bytes(const struct rq_buf *a, const struct rq_buf *b, const char *what) {
  if (a->len != b->len || (a->len > 0 && memcmp(a->data, b->data, a->len) != 0)) {
    size_t i = 0;
    while (i < a->len && i < b->len && a->data[i] == b->data[i]) i++;
    CHECK_FAIL_("%s: %zu vs %zu bytes, first difference at %zu", what, a->len, b->len, i);
  } else {
    check_passed_++;
  }
}

static void stuff_all(struct rq_smtp_stuffer *st, size_t cap, struct rq_buf *out) {
  char buf[8192];
  rq_buf_reset(out);
  while (!rq_smtp_stuffer_done(st)) {
    size_t n = rq_smtp_stuff(st, buf, cap);
    rq_buf_append(out, buf, n);
  }
}

/* The stuffer's source, as smtp.c's: literal bytes in place, encoded
 * ones through a window of pull_cap bytes. */
static char pull_win[8192 * 3 + 5];
static size_t pull_cap;
static const char *pull_cur(void *arg, size_t *len) {
  return rq_msg_next(arg, pull_win, pull_cap, len);
}

static EVP_PKEY *rsa, *ed;

/* What the worker does with a raw job: the header block normalised into
 * the literal buffer, the body a line-end-normalised segment. */
static void raw_msg(const unsigned char *raw, size_t len, struct rq_msg *m) {
  size_t head = rq_mime_raw_head(raw, len);
  rq_msg_reset(m);
  rq_mime_raw(raw, head, &m->lit);
  rq_msg_add_crlf(m, raw + head, len - head);
  rq_msg_finish(m);
}

/* Everything this file checks, for one job. */
static void check_job(const struct relayq_job *job, const char *name) {
  struct rq_mime_input in = {
      .job = job,
      .from_addr = "sender@example.org",
      .from_name = "Sender Team",
      .signature_text = "ACME Ltd",
      .message_id = "<job-1@example.org>",
      .date_ms = 1795332600000LL,
  };
  struct rq_buf flat, got;
  struct rq_msg m;
  rq_buf_init(&flat), rq_buf_init(&got);
  rq_msg_init(&m);
  char err[256] = "";
  if (job->raw) {
    rq_mime_raw(job->raw, job->raw_len, &flat);
    raw_msg(job->raw, job->raw_len, &m);
  } else {
    CHECK_INT(rq_mime_build(&in, &flat, err, sizeof err), ==, 0);
    CHECK_INT(rq_mime_build_msg(&in, &m, err, sizeof err), ==, 0);
  }
  CHECK_INT(m.len, ==, flat.len);
  CHECK_INT(m.has_8bit, ==, rq_smtp_has_8bit(flat.data, flat.len));
  static const size_t chunks[] = {1, 2, 3, 5, 76, 77, 78, 79, 80, 81, 1000, 4096, 65536, 0, 0};
  for (size_t i = 0; i < sizeof chunks / sizeof *chunks; i++) {
    read_all(&m, chunks[i], &got);
    same_bytes(&got, &flat, name);
  }
  /* From any offset: seek, then read the rest. */
  for (int k = 0; k < 40; k++) {
    size_t off = k == 0 ? 0 : k == 1 ? flat.len : rnd((unsigned)flat.len + 1);
    struct rq_msg_cursor c;
    rq_msg_cursor_init(&c, &m);
    CHECK_INT(rq_msg_seek(&c, off), ==, 0);
    char buf[4096];
    size_t n, at = off;
    int ok = 1;
    while ((n = rq_msg_read(&c, buf, 1 + rnd(sizeof buf))) > 0) {
      if (at + n > flat.len || memcmp(buf, flat.data + at, n) != 0) ok = 0;
      at += n;
    }
    CHECK(ok && at == flat.len);
  }
  struct rq_msg_cursor c;
  rq_msg_cursor_init(&c, &m);
  CHECK_INT(rq_msg_seek(&c, flat.len + 1), ==, -1);

  /* The SMTP stuffer pulling from the message sends what it sends for
   * the flat bytes. */
  struct rq_smtp_stuffer *a = malloc(sizeof *a), *b = malloc(sizeof *b);
  struct rq_buf sa, sb;
  rq_buf_init(&sa), rq_buf_init(&sb);
  static const size_t caps[] = {2, 3, 64, 8192};
  for (size_t i = 0; i < sizeof caps / sizeof *caps; i++) {
    rq_smtp_stuffer_init(a, flat.data, flat.len);
    stuff_all(a, caps[i], &sa);
    rq_msg_cursor_init(&c, &m);
    pull_cap = i == 0 ? 1 : caps[i] * 3 + 5; /* windows of 1 byte too */
    rq_smtp_stuffer_init_pull(b, pull_cur, &c);
    stuff_all(b, caps[i], &sb);
    same_bytes(&sb, &sa, "stuffed");
  }
  free(a), free(b);
  rq_buf_free(&sa), rq_buf_free(&sb);

  /* DKIM over the streamed body equals DKIM over the whole message. */
  EVP_PKEY *keys[] = {rsa, ed};
  for (int k = 0; k < 2; k++) {
    struct rq_buf signed_flat;
    rq_buf_init(&signed_flat);
    rq_buf_append(&signed_flat, flat.data, flat.len);
    struct rq_msg sm;
    rq_msg_init(&sm);
    if (job->raw) raw_msg(job->raw, job->raw_len, &sm);
    else CHECK_INT(rq_mime_build_msg(&in, &sm, err, sizeof err), ==, 0);
    CHECK_INT(rq_dkim_sign(&signed_flat, keys[k], "acme.example", "s1", 1700000000, err, sizeof err), ==, 0);
    CHECK_INT(rq_dkim_sign_msg(&sm, keys[k], "acme.example", "s1", 1700000000, err, sizeof err), ==, 0);
    CHECK_INT(sm.len, ==, signed_flat.len);
    read_all(&sm, 0, &got);
    same_bytes(&got, &signed_flat, "dkim-signed");
    rq_msg_free(&sm);
    rq_buf_free(&signed_flat);
  }
  rq_msg_free(&m);
  rq_buf_free(&flat), rq_buf_free(&got);
}

static char *to_list[] = {"Alice <alice@example.com>", "bob@example.com"};

static void base_job(struct relayq_job *job) {
  memset(job, 0, sizeof *job);
  job->v = 1;
  job->id = "job-1";
  job->tenant = "t1";
  job->to.v = to_list, job->to.n = 2;
  job->subject = "Hello";
}

static void test_corpus(void) {
  struct relayq_job job;
  base_job(&job);
  job.text = "Hi there,\nline two\n.starts with a dot\n";
  check_job(&job, "text");

  base_job(&job);
  job.html = "<p>Hello <b>world</b></p>\n";
  check_job(&job, "html");

  base_job(&job);
  job.text = "Grüße aus Köln — 8-bit text ✓\r\n";
  job.html = "<p>Grüße ✓</p>";
  job.subject = "Fattura n° 42 — Grüße";
  check_job(&job, "8bit");

  /* A line over 998 octets: quoted-printable with soft breaks. */
  char *longline = malloc(5001);
  for (int i = 0; i < 5000; i++) longline[i] = (char)('a' + i % 26);
  longline[5000] = '\0';
  base_job(&job);
  job.text = longline;
  check_job(&job, "long line");

  /* Attachments of every size around a base64 line (57 bytes in). */
  static const size_t sizes[] = {1, 2, 3, 56, 57, 58, 113, 114, 115, 1000, 4096, 70000, 300001};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    unsigned char *d = bytes(sizes[i]);
    struct relayq_attachment at[2] = {
        {"report.pdf", "application/pdf", d, sizes[i]},
        {"Résumé — 2026.xlsx", "application/vnd.ms-excel", d, sizes[i] / 2},
    };
    base_job(&job);
    job.text = "See attached.\n";
    job.html = "<p>See attached.</p>";
    job.attachments = at;
    job.n_attachments = sizes[i] / 2 ? 2 : 1;
    char name[64];
    snprintf(name, sizeof name, "attachment %zu", sizes[i]);
    check_job(&job, name);
    free(d);
  }
  /* An empty attachment writes no segment. */
  struct relayq_attachment empty = {"empty.txt", "text/plain", (unsigned char *)"", 0};
  base_job(&job);
  job.text = "x";
  job.attachments = &empty;
  job.n_attachments = 1;
  check_job(&job, "empty attachment");

  /* Raw messages: bare LF, bare CR, no final line end. */
  static const char *raws[] = {
      "From: a@example.com\nTo: b@example.com\nSubject: raw\n\nbody\n.dot\rcr\n\n\n",
      "From: a@example.com\r\n\r\nno final CRLF",
      "From: a@example.com\r\nSubject: x\r\n\r\n\r\n\r\n",
      "From: a@example.com\r\r\rbody after bare CRs\r",
      "Subject: no body at all\r\n",
      "\nbody only\n",
      "From: a@example.com\n\n8-bit body: Gr\xc3\xbc\xc3\x9f" "e \r\n trailing  \t\n",
      "",
  };
  for (size_t i = 0; i < sizeof raws / sizeof *raws; i++) {
    base_job(&job);
    job.raw = (unsigned char *)raws[i];
    job.raw_len = strlen(raws[i]);
    check_job(&job, "raw");
  }
  /* A large raw body: many windows, lines of every ending. */
  size_t big = 200000;
  char *rb = malloc(big + 64);
  size_t bl = (size_t)snprintf(rb, 64, "From: a@example.com\r\nSubject: big\r\n\r\n");
  static const char *ends[] = {"\r\n", "\n", "\r", ".", " ", "x"};
  while (bl < big) {
    const char *e = ends[rnd(6)];
    size_t el = strlen(e);
    memcpy(rb + bl, e, el);
    bl += el;
  }
  base_job(&job);
  job.raw = (unsigned char *)rb;
  job.raw_len = bl;
  check_job(&job, "big raw");
  free(rb);
  free(longline);
}

/* The canonical body from pieces split anywhere equals the one-pass form. */
static void sink_buf(void *arg, const void *p, size_t n) {
  rq_buf_append(arg, p, n);
}

static void test_canon_pieces(void) {
  static const char *bodies[] = {
      "a  b \t c \r\n\r\n\r\nd\r\n\r\n\r\n",
      "x\r\r\ny\r",
      "\r\n\r\n",
      " \t \r\n  x  ",
      "line\r",
      "a\nb\r\nc \r \n",
      "",
  };
  for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
    size_t n = strlen(bodies[i]);
    struct rq_buf whole, parts;
    rq_buf_init(&whole), rq_buf_init(&parts);
    rq_dkim_canon_body(bodies[i], n, sink_buf, &whole);
    for (int t = 0; t < 50; t++) {
      rq_buf_reset(&parts);
      struct rq_dkim_body st;
      rq_dkim_body_init(&st, sink_buf, &parts);
      size_t at = 0;
      while (at < n) {
        size_t k = t == 0 ? 1 : 1 + rnd(4);
        if (k > n - at) k = n - at;
        rq_dkim_body_feed(&st, bodies[i] + at, k);
        at += k;
      }
      rq_dkim_body_end(&st);
      same_bytes(&parts, &whole, bodies[i]);
    }
    rq_buf_free(&whole), rq_buf_free(&parts);
  }
}

/* relayq_job_decode_ref: attachment data and raw point into the payload,
 * strings are copies; the job equals what relayq_job_decode gives. */
static void test_decode_ref(void) {
  unsigned char *d = bytes(100000);
  struct relayq_attachment at = {"a.bin", "application/octet-stream", d, 100000};
  struct relayq_job job;
  base_job(&job);
  job.text = "x";
  job.attachments = &at;
  job.n_attachments = 1;
  unsigned char *payload = NULL;
  size_t len = 0;
  struct relayq_error err;
  CHECK_INT(relayq_job_encode(&job, &payload, &len, &err), ==, 0);
  struct relayq_job *ref = NULL, *copy = NULL;
  CHECK_INT(relayq_job_decode_ref(payload, len, 0, &ref, &err), ==, 0);
  CHECK_INT(relayq_job_decode(payload, len, 0, &copy, &err), ==, 0);
  if (ref && copy) {
    const unsigned char *p = ref->attachments[0].data;
    CHECK(p >= payload && p + 100000 <= payload + len);
    CHECK(copy->attachments[0].data < payload || copy->attachments[0].data >= payload + len);
    CHECK_MEM(p, d, 100000);
    CHECK_STR(ref->attachments[0].filename, "a.bin");
    CHECK((const unsigned char *)ref->text < payload || (const unsigned char *)ref->text >= payload + len);
  }
  relayq_job_free(ref);
  relayq_job_free(copy);
  free(payload);
  free(d);
}

int main(void) {
  rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
  static const unsigned char seed[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                         17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
  ed = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
  CHECK(rsa && ed);
  test_corpus();
  test_canon_pieces();
  test_decode_ref();
  EVP_PKEY_free(rsa);
  EVP_PKEY_free(ed);
  return CHECK_DONE();
}
