/*
 * Unit tests for the job codec and validation (producer/lib/codec.c,
 * job.c): round trips of every field, one invalid payload per rule, every
 * truncation of a valid payload, and seeded random round trips.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "check.h"
#include "relayq/relayq.h"

/* ---- comparing jobs --------------------------------------------------------- */

static int str_eq(const char *a, const char *b) {
  if (a == NULL || b == NULL) return a == b;
  return strcmp(a, b) == 0;
}

static int strv_eq(const struct relayq_strv *a, const struct relayq_strv *b) {
  if (a->n != b->n) return 0;
  for (size_t i = 0; i < a->n; i++)
    if (!str_eq(a->v[i], b->v[i])) return 0;
  return 1;
}

static int kv_eq(const struct relayq_kv *a, size_t na, const struct relayq_kv *b, size_t nb) {
  if (na != nb) return 0;
  for (size_t i = 0; i < na; i++)
    if (!str_eq(a[i].key, b[i].key) || !str_eq(a[i].value, b[i].value)) return 0;
  return 1;
}

/* Returns NULL when equal, else the name of the first field that differs.
 * An attachment without content_type decodes as application/octet-stream. */
static const char *job_diff(const struct relayq_job *a, const struct relayq_job *b) {
  if (!str_eq(a->id, b->id)) return "id";
  if (!str_eq(a->tenant, b->tenant)) return "tenant";
  if (!strv_eq(&a->to, &b->to)) return "to";
  if (!strv_eq(&a->cc, &b->cc)) return "cc";
  if (!strv_eq(&a->bcc, &b->bcc)) return "bcc";
  if (!str_eq(a->from, b->from)) return "from";
  if (!str_eq(a->from_name, b->from_name)) return "from_name";
  if (!str_eq(a->reply_to, b->reply_to)) return "reply_to";
  if (!str_eq(a->subject, b->subject)) return "subject";
  if (!str_eq(a->text, b->text)) return "text";
  if (!str_eq(a->html, b->html)) return "html";
  if (!kv_eq(a->headers, a->n_headers, b->headers, b->n_headers)) return "headers";
  if (a->n_attachments != b->n_attachments) return "attachments";
  for (size_t i = 0; i < a->n_attachments; i++) {
    const struct relayq_attachment *x = &a->attachments[i], *y = &b->attachments[i];
    const char *cx = x->content_type ? x->content_type : "application/octet-stream";
    const char *cy = y->content_type ? y->content_type : "application/octet-stream";
    if (!str_eq(x->filename, y->filename) || !str_eq(cx, cy) || x->size != y->size ||
        (x->size && memcmp(x->data, y->data, x->size) != 0))
      return "attachments";
  }
  if (a->raw_len != b->raw_len || (a->raw == NULL) != (b->raw == NULL) ||
      (a->raw_len && memcmp(a->raw, b->raw, a->raw_len) != 0))
    return "raw";
  if (!str_eq(a->route, b->route)) return "route";
  if (a->kind != b->kind) return "kind";
  if (a->not_before != b->not_before) return "not_before";
  if (a->expires_at != b->expires_at) return "expires_at";
  if (a->max_attempts != b->max_attempts) return "max_attempts";
  if (!kv_eq(a->meta, a->n_meta, b->meta, b->n_meta)) return "meta";
  if (!str_eq(a->queue_, b->queue_)) return "_queue";
  if (a->attempts_ != b->attempts_) return "_attempts";
  if (!strv_eq(&a->pending_, &b->pending_)) return "_rcpt";
  if (a->accepted_ != b->accepted_) return "_accepted";
  if (a->rejected_ != b->rejected_) return "_rejected";
  if (a->created_ != b->created_) return "_created";
  return NULL;
}

/* ---- a job with every field ---------------------------------------------------- */

static char *to_v[] = {"Alice Example <alice@example.com>", "bob@example.org"};
static char *cc_v[] = {"\"Carol, Q.\" <carol@example.net>"};
static char *bcc_v[] = {"audit@example.com"};
static char *rcpt_v[] = {"bob@example.org", "audit@example.com"};
static struct relayq_kv hdrs[] = {
    {"List-Unsubscribe", "<mailto:unsub@example.com>"},
    {"X-Campaign", "spring \xe2\x98\x80 sale"},
};
static struct relayq_kv meta[] = {{"order", "A-1001"}, {"user", "42"}};
static unsigned char bin_data[] = {0x00, 0xff, 0x00, 'P', 'D', 'F', 0xff, 0xfe, 0x00, 0x80};
static unsigned char raw_msg[] = "From: a@example.com\r\nTo: b@example.com\r\n\r\nhi\r\n";

static struct relayq_job full_job(void) {
  static struct relayq_attachment att[2];
  att[0] = (struct relayq_attachment){"invoice \xc3\xa9t\xc3\xa9.pdf", "application/pdf",
                                      bin_data, sizeof bin_data};
  att[1] = (struct relayq_attachment){"empty.txt", "text/plain", (unsigned char *)"", 0};
  struct relayq_job j = {0};
  j.v = 1;
  j.id = "job-0001.a:b@c_d";
  j.tenant = "acme";
  j.to = (struct relayq_strv){to_v, 2};
  j.cc = (struct relayq_strv){cc_v, 1};
  j.bcc = (struct relayq_strv){bcc_v, 1};
  j.from = "billing@acme.example";
  j.from_name = "ACME F\xc3\xa4kturierung";
  j.reply_to = "support@acme.example";
  j.subject = "Ihre Rechnung \xe2\x82\xac 12,50 \xf0\x9f\x93\x84";
  j.text = "Hallo,\r\nanbei die Rechnung.\n";
  j.html = "<p>Hallo, <b>anbei</b> die Rechnung.</p>";
  j.headers = hdrs;
  j.n_headers = 2;
  j.attachments = att;
  j.n_attachments = 2;
  j.raw = raw_msg;
  j.raw_len = sizeof raw_msg - 1;
  j.route = "eu-relay";
  j.kind = RELAYQ_KIND_BULK;
  j.not_before = 1700000000123;
  j.expires_at = 1800000000456;
  j.max_attempts = 12;
  j.meta = meta;
  j.n_meta = 2;
  j.queue_ = "priority";
  j.attempts_ = 3;
  j.pending_ = (struct relayq_strv){rcpt_v, 2};
  j.accepted_ = 1;
  j.rejected_ = 1;
  j.created_ = 1699999999999;
  return j;
}

static void test_full_round_trip(void) {
  struct relayq_job j = full_job();
  struct relayq_error err;
  unsigned char *buf = NULL;
  size_t len = 0;
  CHECK_INT(relayq_job_encode(&j, &buf, &len, &err), ==, 0);
  CHECK(buf != NULL && len > 0);
  /* "_queue" is the first key, so the worker's Lua reads it without a
   * decoder: fixmap or map16 header, then fixstr "_queue". */
  size_t h = (buf[0] & 0xf0) == 0x80 ? 1 : 3;
  CHECK_INT(buf[h], ==, 0xa6);
  CHECK_MEM(buf + h + 1, "_queue", 6);

  struct relayq_job *d = NULL;
  CHECK_INT(relayq_job_decode(buf, len, 0, &d, &err), ==, 0);
  if (d != NULL) {
    const char *diff = job_diff(&j, d);
    CHECK_STR(diff ? diff : "(equal)", "(equal)");
    CHECK_INT(d->v, ==, 1);
    CHECK_INT(d->attachments[0].size, ==, sizeof bin_data);
    CHECK_MEM(d->attachments[0].data, bin_data, sizeof bin_data);
    CHECK_STR(d->subject, j.subject);
    CHECK_STR(err.id, "job-0001.a:b@c_d");
    CHECK_STR(err.tenant, "acme");
    /* Re-encoding the decoded job gives the same bytes. */
    unsigned char *buf2 = NULL;
    size_t len2 = 0;
    CHECK_INT(relayq_job_encode(d, &buf2, &len2, &err), ==, 0);
    CHECK_INT(len2, ==, len);
    if (len2 == len) CHECK_MEM(buf2, buf, len);
    free(buf2);
  }
  relayq_job_free(d);
  free(buf);
}

/* A minimal job: only what is required, nothing else on the wire. */
static void test_minimal(void) {
  char *to[] = {"x@example.com"};
  struct relayq_job j = {0};
  j.id = "m1";
  j.tenant = "t";
  j.to = (struct relayq_strv){to, 1};
  j.text = "";
  struct relayq_error err;
  unsigned char *buf = NULL;
  size_t len = 0;
  CHECK_INT(relayq_job_encode(&j, &buf, &len, &err), ==, 0);
  CHECK_INT(buf[0], ==, 0x85); /* v, id, tenant, to, text */
  struct relayq_job *d = NULL;
  CHECK_INT(relayq_job_decode(buf, len, 0, &d, &err), ==, 0);
  if (d) {
    CHECK(job_diff(&j, d) == NULL);
    CHECK(d->subject == NULL && d->html == NULL && d->raw == NULL && d->queue_ == NULL);
    CHECK(d->cc.n == 0 && d->cc.v == NULL && d->n_headers == 0 && d->headers == NULL);
    CHECK_STR(d->text, "");
  }
  relayq_job_free(d);
  free(buf);
  relayq_job_free(NULL);
}

/* ---- building payloads by hand ------------------------------------------------- */

static void pstr(msgpack_packer *pk, const char *s) {
  msgpack_pack_str(pk, strlen(s));
  msgpack_pack_str_body(pk, s, strlen(s));
}

static void pbin(msgpack_packer *pk, const void *p, size_t n) {
  msgpack_pack_bin(pk, n);
  msgpack_pack_bin_body(pk, n ? p : "", n);
}

static void pstrs(msgpack_packer *pk, int n, ...) {
  va_list ap;
  va_start(ap, n);
  msgpack_pack_array(pk, (size_t)n);
  for (int i = 0; i < n; i++) pstr(pk, va_arg(ap, const char *));
  va_end(ap);
}

typedef void (*put_fn)(msgpack_packer *pk);

/* Packs the base job (v, id, tenant, to, text) without `skip`, plus the
 * `extra` key/value pairs that put() writes. */
static unsigned char *payload(const char *skip, int extra, put_fn put, size_t *len) {
  static const char *base[] = {"v", "id", "tenant", "to", "text"};
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  int n = 5 + extra - (skip ? 1 : 0);
  msgpack_pack_map(&pk, (size_t)n);
  for (int i = 0; i < 5; i++) {
    if (skip && strcmp(skip, base[i]) == 0) continue;
    pstr(&pk, base[i]);
    switch (i) {
    case 0: msgpack_pack_int(&pk, 1); break;
    case 1: pstr(&pk, "job-1"); break;
    case 2: pstr(&pk, "acme"); break;
    case 3: pstrs(&pk, 1, "a@example.com"); break;
    case 4: pstr(&pk, "hello"); break;
    }
  }
  if (put) put(&pk);
  *len = sb.size;
  return (unsigned char *)msgpack_sbuffer_release(&sb);
}

static char long_buf[20000];
static const char *longstr(char c, size_t n) {
  memset(long_buf, c, n);
  long_buf[n] = '\0';
  return long_buf;
}

#define PUT(name, body) static void name(msgpack_packer *pk) { body; }
PUT(v2, pstr(pk, "v"); msgpack_pack_int(pk, 2))
PUT(v_str, pstr(pk, "v"); pstr(pk, "1"))
PUT(id_space, pstr(pk, "id"); pstr(pk, "a b"))
PUT(id_long, pstr(pk, "id"); pstr(pk, longstr('x', 129)))
PUT(id_empty, pstr(pk, "id"); pstr(pk, ""))
PUT(tenant_int, pstr(pk, "tenant"); msgpack_pack_int(pk, 7))
PUT(to_int, pstr(pk, "to"); msgpack_pack_int(pk, 7))
PUT(to_int_item, pstr(pk, "to"); msgpack_pack_array(pk, 1); msgpack_pack_int(pk, 1))
PUT(to_crlf, pstr(pk, "to"); pstrs(pk, 1, "a@example.com\r\nRCPT TO:<evil@example.com>"))
PUT(to_lf, pstr(pk, "to"); pstrs(pk, 1, "a@example.com\n"))
PUT(to_noat, pstr(pk, "to"); pstrs(pk, 1, "alice.example.com"))
PUT(to_nodomain, pstr(pk, "to"); pstrs(pk, 1, "alice@"))
PUT(to_comma, pstr(pk, "to"); pstrs(pk, 1, "a@example.com, b@example.com"))
PUT(to_long, pstr(pk, "to"); pstrs(pk, 1, longstr('a', 999)))
PUT(to_nul, pstr(pk, "to"); msgpack_pack_array(pk, 1); msgpack_pack_str(pk, 5);
    msgpack_pack_str_body(pk, "a\0@b.c", 5))
PUT(to_bad_utf8, pstr(pk, "to"); pstrs(pk, 1, "J\xc3 <a@example.com>"))
PUT(to_many, pstr(pk, "to"); msgpack_pack_array(pk, 10001);
    for (int i = 0; i < 10001; i++) pstr(pk, "a@example.com"))
PUT(cc_nul, pstr(pk, "cc"); msgpack_pack_array(pk, 1); msgpack_pack_str(pk, 7);
    msgpack_pack_str_body(pk, "c@d.e\0x", 7))
PUT(cc_str, pstr(pk, "cc"); pstr(pk, "c@example.com"))
PUT(bcc_named, pstr(pk, "bcc"); pstrs(pk, 1, "Bob <b@example.com>"))
PUT(from_named, pstr(pk, "from"); pstr(pk, "ACME <a@example.com>"))
PUT(from_int, pstr(pk, "from"); msgpack_pack_int(pk, 3))
PUT(reply_bad, pstr(pk, "reply_to"); pstr(pk, "nobody"))
PUT(subject_lf, pstr(pk, "subject"); pstr(pk, "Hello\nBcc: victim@example.com"))
PUT(subject_utf8, pstr(pk, "subject"); pstr(pk, "caf\xe9"))
PUT(from_name_cr, pstr(pk, "from_name"); pstr(pk, "ACME\r"))
PUT(text_utf8, pstr(pk, "text"); pstr(pk, "bad \xff byte"))
PUT(text_overlong, pstr(pk, "text"); pstr(pk, "\xc0\xaf"))
PUT(text_surrogate, pstr(pk, "text"); pstr(pk, "\xed\xa0\x80"))
PUT(html_int, pstr(pk, "html"); msgpack_pack_int(pk, 1))
PUT(headers_arr, pstr(pk, "headers"); pstrs(pk, 1, "X-A: b"))
PUT(headers_space, pstr(pk, "headers"); msgpack_pack_map(pk, 1); pstr(pk, "X A"); pstr(pk, "v"))
PUT(headers_colon, pstr(pk, "headers"); msgpack_pack_map(pk, 1); pstr(pk, "X:A"); pstr(pk, "v"))
PUT(headers_empty, pstr(pk, "headers"); msgpack_pack_map(pk, 1); pstr(pk, ""); pstr(pk, "v"))
PUT(headers_long, pstr(pk, "headers"); msgpack_pack_map(pk, 1); pstr(pk, longstr('X', 77));
    pstr(pk, "v"))
PUT(headers_subject, pstr(pk, "headers"); msgpack_pack_map(pk, 1); pstr(pk, "Subject");
    pstr(pk, "v"))
PUT(headers_ctype, pstr(pk, "headers"); msgpack_pack_map(pk, 1); pstr(pk, "content-TYPE");
    pstr(pk, "text/plain"))
PUT(headers_msgid, pstr(pk, "headers"); msgpack_pack_map(pk, 1); pstr(pk, "message-id");
    pstr(pk, "<x@y>"))
PUT(headers_crlf, pstr(pk, "headers"); msgpack_pack_map(pk, 1); pstr(pk, "X-A");
    pstr(pk, "v\r\nBcc: x@y.z"))
PUT(headers_bigval, pstr(pk, "headers"); msgpack_pack_map(pk, 1); pstr(pk, "X-A");
    pstr(pk, longstr('v', 8193)))
PUT(headers_intval, pstr(pk, "headers"); msgpack_pack_map(pk, 1); pstr(pk, "X-A");
    msgpack_pack_int(pk, 1))
PUT(headers_many, pstr(pk, "headers"); msgpack_pack_map(pk, 101); for (int i = 0; i < 101; i++) {
  char k[16];
  snprintf(k, sizeof k, "X-H%d", i);
  pstr(pk, k);
  pstr(pk, "v");
})
PUT(att_map, pstr(pk, "attachments"); msgpack_pack_map(pk, 0))
PUT(att_item, pstr(pk, "attachments"); pstrs(pk, 1, "file.pdf"))
PUT(att_nodata, pstr(pk, "attachments"); msgpack_pack_array(pk, 1); msgpack_pack_map(pk, 2);
    pstr(pk, "filename"); pstr(pk, "a.pdf"); pstr(pk, "content_type");
    pstr(pk, "application/pdf"))
PUT(att_dataint, pstr(pk, "attachments"); msgpack_pack_array(pk, 1); msgpack_pack_map(pk, 2);
    pstr(pk, "filename"); pstr(pk, "a.pdf"); pstr(pk, "data"); msgpack_pack_int(pk, 1))
PUT(att_ctype, pstr(pk, "attachments"); msgpack_pack_array(pk, 1); msgpack_pack_map(pk, 3);
    pstr(pk, "filename"); pstr(pk, "a.pdf"); pstr(pk, "content_type"); pstr(pk, "pdf");
    pstr(pk, "data"); pbin(pk, "x", 1))
PUT(att_noname, pstr(pk, "attachments"); msgpack_pack_array(pk, 1); msgpack_pack_map(pk, 1);
    pstr(pk, "data"); pbin(pk, "x", 1))
PUT(att_namecrlf, pstr(pk, "attachments"); msgpack_pack_array(pk, 1); msgpack_pack_map(pk, 2);
    pstr(pk, "filename"); pstr(pk, "a\r\n.pdf"); pstr(pk, "data"); pbin(pk, "x", 1))
PUT(att_many, pstr(pk, "attachments"); msgpack_pack_array(pk, 101);
    for (int i = 0; i < 101; i++) {
      msgpack_pack_map(pk, 2);
      pstr(pk, "filename");
      pstr(pk, "a.txt");
      pstr(pk, "data");
      pbin(pk, "x", 1);
    })
PUT(raw_int, pstr(pk, "raw"); msgpack_pack_int(pk, 5))
PUT(raw_empty, pstr(pk, "raw"); pbin(pk, "", 0))
PUT(route_bad, pstr(pk, "route"); pstr(pk, "eu relay"))
PUT(kind_bad, pstr(pk, "kind"); pstr(pk, "spam"))
PUT(kind_int, pstr(pk, "kind"); msgpack_pack_int(pk, 1))
PUT(nb_neg, pstr(pk, "not_before"); msgpack_pack_int(pk, -1))
PUT(nb_huge, pstr(pk, "not_before"); msgpack_pack_uint64(pk, UINT64_MAX))
PUT(exp_str, pstr(pk, "expires_at"); pstr(pk, "tomorrow"))
PUT(max_zero, pstr(pk, "max_attempts"); msgpack_pack_int(pk, 0))
PUT(max_big, pstr(pk, "max_attempts"); msgpack_pack_int(pk, 1001))
PUT(max_float, pstr(pk, "max_attempts"); msgpack_pack_double(pk, 3.0))
PUT(meta_arr, pstr(pk, "meta"); pstrs(pk, 1, "x"))
PUT(meta_int, pstr(pk, "meta"); msgpack_pack_map(pk, 1); pstr(pk, "k"); msgpack_pack_int(pk, 1))
PUT(meta_long, pstr(pk, "meta"); msgpack_pack_map(pk, 1); pstr(pk, "k");
    pstr(pk, longstr('m', 1025)))
PUT(meta_emptykey, pstr(pk, "meta"); msgpack_pack_map(pk, 1); pstr(pk, ""); pstr(pk, "v"))
PUT(meta_many, pstr(pk, "meta"); msgpack_pack_map(pk, 65); for (int i = 0; i < 65; i++) {
  char k[16];
  snprintf(k, sizeof k, "k%d", i);
  pstr(pk, k);
  pstr(pk, "v");
})
PUT(queue_bad, pstr(pk, "_queue"); pstr(pk, "a/b"))
PUT(queue_int, pstr(pk, "_queue"); msgpack_pack_int(pk, 1))
PUT(attempts_neg, pstr(pk, "_attempts"); msgpack_pack_int(pk, -1))
PUT(rcpt_named, pstr(pk, "_rcpt"); pstrs(pk, 1, "Bob <b@example.com>"))
PUT(accepted_big, pstr(pk, "_accepted"); msgpack_pack_int(pk, 10001))
PUT(rejected_str, pstr(pk, "_rejected"); pstr(pk, "1"))
PUT(created_float, pstr(pk, "_created"); msgpack_pack_double(pk, 1.5))
PUT(dup_to, pstr(pk, "to"); pstrs(pk, 1, "b@example.com"))
PUT(int_key, msgpack_pack_int(pk, 1); pstr(pk, "x"))
PUT(deep, pstr(pk, "x-deep"); for (int i = 0; i < 20; i++) msgpack_pack_array(pk, 1);
    msgpack_pack_nil(pk))

struct bad_case {
  const char *name;
  const char *skip; /* base field left out */
  int extra;        /* key/value pairs put() adds */
  put_fn put;
  const char *expect; /* substring of the message */
};

static const struct bad_case bad_cases[] = {
    {"v missing", "v", 0, NULL, "'v'"},
    {"v=2", "v", 1, v2, "v=2"},
    {"v is str", "v", 1, v_str, "'v' must be an integer, got str"},
    {"id missing", "id", 0, NULL, "'id'"},
    {"id space", "id", 1, id_space, "'id'"},
    {"id 129", "id", 1, id_long, "'id'"},
    {"id empty", "id", 1, id_empty, "'id'"},
    {"tenant missing", "tenant", 0, NULL, "'tenant'"},
    {"tenant int", "tenant", 1, tenant_int, "field 'tenant' must be a string, got int"},
    {"to int", "to", 1, to_int, "field 'to' must be an array of strings, got int"},
    {"to item int", "to", 1, to_int_item, "'to' must be an array of strings, got int at item 1"},
    {"no recipient", "to", 0, NULL, "recipient"},
    {"to CRLF", "to", 1, to_crlf, "'to'"},
    {"to LF", "to", 1, to_lf, "'to'"},
    {"to no @", "to", 1, to_noat, "'to'"},
    {"to no domain", "to", 1, to_nodomain, "'to'"},
    {"to comma", "to", 1, to_comma, "'to'"},
    {"to 999 bytes", "to", 1, to_long, "'to'"},
    {"to NUL", "to", 1, to_nul, "'to' contains a NUL"},
    {"to bad UTF-8", "to", 1, to_bad_utf8, "'to'"},
    {"to 10001", "to", 1, to_many, "'to'"},
    {"cc NUL", NULL, 1, cc_nul, "'cc'"},
    {"cc str", NULL, 1, cc_str, "field 'cc' must be an array of strings, got str"},
    {"bcc named", NULL, 1, bcc_named, "'bcc'"},
    {"from named", NULL, 1, from_named, "'from_name'"},
    {"from int", NULL, 1, from_int, "'from'"},
    {"reply_to bad", NULL, 1, reply_bad, "'reply_to'"},
    {"subject LF", NULL, 1, subject_lf, "'subject'"},
    {"subject latin1", NULL, 1, subject_utf8, "'subject'"},
    {"from_name CR", NULL, 1, from_name_cr, "'from_name'"},
    {"text not UTF-8", "text", 1, text_utf8, "'text'"},
    {"text overlong", "text", 1, text_overlong, "'text'"},
    {"text surrogate", "text", 1, text_surrogate, "'text'"},
    {"html int", NULL, 1, html_int, "field 'html' must be a string, got int"},
    {"no body", "text", 0, NULL, "body"},
    {"headers array", NULL, 1, headers_arr, "'headers'"},
    {"header name space", NULL, 1, headers_space, "'headers'"},
    {"header name colon", NULL, 1, headers_colon, "'headers'"},
    {"header name empty", NULL, 1, headers_empty, "'headers'"},
    {"header name 77", NULL, 1, headers_long, "'headers'"},
    {"header Subject", NULL, 1, headers_subject, "Subject"},
    {"header content-TYPE", NULL, 1, headers_ctype, "Content-Type"},
    {"header message-id", NULL, 1, headers_msgid, "Message-ID"},
    {"header value CRLF", NULL, 1, headers_crlf, "'headers'"},
    {"header value 8193", NULL, 1, headers_bigval, "'headers'"},
    {"header value int", NULL, 1, headers_intval, "'headers'"},
    {"headers 101", NULL, 1, headers_many, "'headers'"},
    {"attachments map", NULL, 1, att_map, "'attachments'"},
    {"attachment str", NULL, 1, att_item, "'attachments'"},
    {"attachment no data", NULL, 1, att_nodata, "'data'"},
    {"attachment data int", NULL, 1, att_dataint, "attachments.data"},
    {"attachment content_type", NULL, 1, att_ctype, "content_type"},
    {"attachment no filename", NULL, 1, att_noname, "filename"},
    {"attachment filename CRLF", NULL, 1, att_namecrlf, "filename"},
    {"attachments 101", NULL, 1, att_many, "'attachments'"},
    {"raw int", NULL, 1, raw_int, "'raw'"},
    {"raw empty", "text", 1, raw_empty, "'raw'"},
    {"route space", NULL, 1, route_bad, "'route'"},
    {"kind spam", NULL, 1, kind_bad, "'kind'"},
    {"kind int", NULL, 1, kind_int, "'kind'"},
    {"not_before -1", NULL, 1, nb_neg, "'not_before'"},
    {"not_before 2^64-1", NULL, 1, nb_huge, "'not_before'"},
    {"expires_at str", NULL, 1, exp_str, "'expires_at' must be an integer, got str"},
    {"max_attempts 0", NULL, 1, max_zero, "'max_attempts'"},
    {"max_attempts 1001", NULL, 1, max_big, "'max_attempts'"},
    {"max_attempts float", NULL, 1, max_float, "got float"},
    {"meta array", NULL, 1, meta_arr, "'meta'"},
    {"meta int value", NULL, 1, meta_int, "'meta'"},
    {"meta value 1025", NULL, 1, meta_long, "'meta'"},
    {"meta empty key", NULL, 1, meta_emptykey, "'meta'"},
    {"meta 65", NULL, 1, meta_many, "'meta'"},
    {"_queue slash", NULL, 1, queue_bad, "'_queue'"},
    {"_queue int", NULL, 1, queue_int, "'_queue'"},
    {"_attempts -1", NULL, 1, attempts_neg, "'_attempts'"},
    {"_rcpt named", NULL, 1, rcpt_named, "'_rcpt'"},
    {"_accepted 10001", NULL, 1, accepted_big, "'_accepted'"},
    {"_rejected str", NULL, 1, rejected_str, "'_rejected'"},
    {"_created float", NULL, 1, created_float, "'_created'"},
    {"to twice", NULL, 1, dup_to, "'to' appears twice"},
    {"int key", NULL, 1, int_key, "keys must be strings"},
    {"deep nesting", NULL, 1, deep, "deeper"},
};

static void test_bad_payloads(void) {
  for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++) {
    const struct bad_case *c = &bad_cases[i];
    size_t len = 0;
    unsigned char *buf = payload(c->skip, c->extra, c->put, &len);
    struct relayq_job *j = NULL;
    struct relayq_error err;
    int r = relayq_job_decode(buf, len, 0, &j, &err);
    if (r != RELAYQ_EINVALID_JOB || j != NULL || strstr(err.message, c->expect) == NULL)
      fprintf(stderr, "case '%s': r=%d message=\"%s\" (want \"%s\")\n", c->name, r,
              err.message, c->expect);
    CHECK_INT(r, ==, RELAYQ_EINVALID_JOB);
    CHECK(j == NULL);
    CHECK(strstr(err.message, c->expect) != NULL);
    CHECK_INT(err.code, ==, RELAYQ_EINVALID_JOB);
    /* id and tenant are reported whenever they were readable and valid. */
    if (c->skip == NULL || (strcmp(c->skip, "id") != 0 && strcmp(c->skip, "tenant") != 0)) {
      CHECK_STR(err.id, "job-1");
      CHECK_STR(err.tenant, "acme");
    }
    relayq_job_free(j);
    free(buf);
  }
}

/* Payloads that are not a job map at all, or break the framing. */
static void test_bad_framing(void) {
  struct relayq_job *j = NULL;
  struct relayq_error err;
  /* Empty and non-map roots. */
  CHECK_INT(relayq_job_decode("", 0, 0, &j, &err), ==, RELAYQ_EINVALID_JOB);
  CHECK_INT(relayq_job_decode("\x91\x01", 2, 0, &j, &err), ==, RELAYQ_EINVALID_JOB);
  CHECK(strstr(err.message, "map, got array") != NULL);
  CHECK_INT(relayq_job_decode("\xc1", 1, 0, &j, &err), ==, RELAYQ_EINVALID_JOB);
  CHECK(strstr(err.message, "0xc1") != NULL);
  /* A container declaring 2^28 elements in 8 bytes is refused before
   * msgpack-c would reserve gigabytes for it. */
  CHECK_INT(relayq_job_decode("\x81\xa1x\xdd\x10\x00\x00\x00", 8, 0, &j, &err), ==,
            RELAYQ_EINVALID_JOB);
  CHECK(strstr(err.message, "declares") != NULL);
  CHECK_INT(relayq_job_decode("\xdf\xff\xff\xff\xff", 5, 0, &j, &err), ==, RELAYQ_EINVALID_JOB);

  size_t len = 0;
  unsigned char *buf = payload(NULL, 0, NULL, &len);
  CHECK_INT(relayq_job_decode(buf, len, 0, &j, &err), ==, 0);
  relayq_job_free(j);
  j = NULL;
  /* Size is checked first: over the limit is TOO_LARGE, whatever it holds. */
  CHECK_INT(relayq_job_decode(buf, len, len - 1, &j, &err), ==, RELAYQ_ETOO_LARGE);
  CHECK(strstr(err.message, "limit") != NULL);
  CHECK_INT(relayq_job_decode(buf, len, len, &j, &err), ==, 0);
  relayq_job_free(j);
  j = NULL;
  /* Trailing bytes after the map. */
  unsigned char *longer = malloc(len + 1);
  memcpy(longer, buf, len);
  longer[len] = 0xc0;
  CHECK_INT(relayq_job_decode(longer, len + 1, 0, &j, &err), ==, RELAYQ_EINVALID_JOB);
  CHECK(strstr(err.message, "after the job map") != NULL);
  free(longer);
  free(buf);
}

/* Every proper prefix of a valid payload fails cleanly (run under ASan,
 * this also proves nothing reads past the end). */
static void test_truncations(void) {
  struct relayq_job j = full_job();
  struct relayq_error err;
  unsigned char *buf = NULL;
  size_t len = 0;
  CHECK_INT(relayq_job_encode(&j, &buf, &len, &err), ==, 0);
  int bad = 0, id_seen = 0;
  for (size_t k = 0; k < len; k++) {
    unsigned char *cut = malloc(k ? k : 1); /* exact size: ASan sees overreads */
    memcpy(cut, buf, k);
    struct relayq_job *d = NULL;
    int r = relayq_job_decode(cut, k, 0, &d, &err);
    if (r != RELAYQ_EINVALID_JOB || d != NULL) bad++;
    if (strcmp(err.id, "job-0001.a:b@c_d") == 0) id_seen++;
    relayq_job_free(d);
    free(cut);
  }
  CHECK_INT(bad, ==, 0);
  /* Once the id has been read, a cut payload still reports it. */
  CHECK(id_seen > (int)len / 2);
  free(buf);
}

/* Forward compatibility and leniency: unknown keys ignored, nil as absent,
 * str accepted for bin fields, content_type defaulted. */
static void put_lenient(msgpack_packer *pk) {
  pstr(pk, "x-future");
  msgpack_pack_map(pk, 1);
  pstr(pk, "nested");
  pstrs(pk, 2, "a", "b");
  pstr(pk, "subject");
  msgpack_pack_nil(pk);
  pstr(pk, "attachments");
  msgpack_pack_array(pk, 1);
  msgpack_pack_map(pk, 3);
  pstr(pk, "filename");
  pstr(pk, "a.bin");
  pstr(pk, "data");
  pstr(pk, "as str");
  pstr(pk, "x-unknown");
  msgpack_pack_true(pk);
  pstr(pk, "raw");
  pstr(pk, "Subject: raw\r\n\r\nbody");
}

static void test_lenient(void) {
  size_t len = 0;
  unsigned char *buf = payload(NULL, 4, put_lenient, &len);
  struct relayq_job *j = NULL;
  struct relayq_error err;
  CHECK_INT(relayq_job_decode(buf, len, 0, &j, &err), ==, 0);
  if (j) {
    CHECK(j->subject == NULL);
    CHECK_INT(j->n_attachments, ==, 1);
    CHECK_STR(j->attachments[0].content_type, "application/octet-stream");
    CHECK_INT(j->attachments[0].size, ==, 6);
    CHECK_MEM(j->attachments[0].data, "as str", 6);
    CHECK_INT(j->raw_len, ==, 20);
    CHECK_STR(j->tenant, "acme");
  }
  relayq_job_free(j);
  free(buf);
}

/* The encoder applies the same rules to a caller's struct. */
static void test_encode_rejects(void) {
  char *to[] = {"a@example.com"};
  char *bad_to[] = {"a@example.com\r\nDATA"};
  struct relayq_job j = {0};
  j.id = "e1";
  j.tenant = "t";
  j.to = (struct relayq_strv){to, 1};
  j.text = "x";
  struct relayq_error err;
  unsigned char *buf = (unsigned char *)"sentinel";
  size_t len = 1;
  struct relayq_job k = j;
  k.id = NULL;
  CHECK_INT(relayq_job_encode(&k, &buf, &len, &err), ==, RELAYQ_EINVALID_JOB);
  CHECK(buf == NULL && len == 0);
  CHECK(strstr(err.message, "'id'") != NULL);
  k = j;
  k.to.v = bad_to;
  CHECK_INT(relayq_job_encode(&k, &buf, &len, &err), ==, RELAYQ_EINVALID_JOB);
  CHECK(strstr(err.message, "'to'") != NULL);
  k = j;
  k.v = 3;
  CHECK_INT(relayq_job_encode(&k, &buf, &len, &err), ==, RELAYQ_EINVALID_JOB);
  CHECK(strstr(err.message, "v=3") != NULL);
  k = j;
  k.kind = (enum relayq_kind)9;
  CHECK_INT(relayq_job_validate(&k, &err), ==, RELAYQ_EINVALID_JOB);
  k = j;
  k.to.n = 2; /* more than the array holds is a caller bug we cannot see;
                 n > 0 with v == NULL we can */
  k.to.v = NULL;
  CHECK_INT(relayq_job_validate(&k, &err), ==, RELAYQ_EINVALID_JOB);
  CHECK_INT(relayq_job_validate(NULL, &err), ==, RELAYQ_EINVAL);
  CHECK_INT(relayq_job_validate(&j, NULL), ==, 0);
  k = j;
  k.raw = (unsigned char *)"x";
  k.raw_len = 0;
  CHECK_INT(relayq_job_validate(&k, &err), ==, RELAYQ_EINVALID_JOB);
  CHECK_STR(relayq_strerror(RELAYQ_EINVALID_JOB), "invalid job");

  /* The list fields: their bound, and an array whenever n > 0. The count
   * is checked before any entry is read. */
  struct relayq_kv kv[1] = {{"X-Tag", "v"}};
  struct relayq_attachment at[1] = {{"a.txt", NULL, (unsigned char *)"x", 1}};
  k = j;
  k.n_headers = 1;
  CHECK_INT(relayq_job_validate(&k, &err), ==, RELAYQ_EINVALID_JOB);
  CHECK_STR(err.message, "field 'headers' has entries but no array.");
  k.headers = kv;
  k.n_headers = RELAYQ_MAX_HEADERS + 1;
  CHECK_INT(relayq_job_validate(&k, &err), ==, RELAYQ_EINVALID_JOB);
  CHECK_STR(err.message, "field 'headers' has 101 entries, more than the limit of 100.");
  k = j;
  k.n_attachments = 1;
  CHECK_INT(relayq_job_validate(&k, &err), ==, RELAYQ_EINVALID_JOB);
  CHECK_STR(err.message, "field 'attachments' has entries but no array.");
  k.attachments = at;
  k.n_attachments = RELAYQ_MAX_ATTACHMENTS + 1;
  CHECK_INT(relayq_job_validate(&k, &err), ==, RELAYQ_EINVALID_JOB);
  CHECK_STR(err.message, "field 'attachments' has 101 entries, more than the limit of 100.");
  k = j;
  k.n_meta = 1;
  CHECK_INT(relayq_job_validate(&k, &err), ==, RELAYQ_EINVALID_JOB);
  CHECK_STR(err.message, "field 'meta' has entries but no array.");
  k.meta = kv;
  k.n_meta = RELAYQ_MAX_META + 1;
  CHECK_INT(relayq_job_validate(&k, &err), ==, RELAYQ_EINVALID_JOB);
  CHECK_STR(err.message, "field 'meta' has 65 entries, more than the limit of 64.");
  k.n_meta = 1;
  k.headers = kv;
  k.n_headers = 1;
  k.attachments = at;
  k.n_attachments = 1;
  CHECK_INT(relayq_job_validate(&k, &err), ==, 0);
}

/* ---- random round trips ---------------------------------------------------------- */

static uint64_t rng_state;
static uint64_t rnd(void) { /* xorshift64*: seeded, reproducible */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 2685821657736338717ull;
}
static size_t rndn(size_t n) { return n ? (size_t)(rnd() % n) : 0; }

/* A tiny pool allocator for one generated job; reset per iteration. */
static char pool[1 << 20];
static size_t pool_used;
static void *palloc(size_t n) {
  size_t off = (pool_used + 7) & ~(size_t)7;
  pool_used = off + n;
  if (pool_used > sizeof pool) abort();
  return pool + off;
}

static const char *name_chars =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:@-";
static char *rnd_name(void) {
  size_t n = 1 + rndn(RELAYQ_ID_MAX);
  char *s = palloc(n + 1);
  for (size_t i = 0; i < n; i++) s[i] = name_chars[rndn(strlen(name_chars))];
  s[n] = '\0';
  return s;
}

/* A tenant or route name: no ':' (v1.1). */
static char *rnd_tenant(void) {
  char *s = rnd_name();
  for (char *p = s; *p; p++)
    if (*p == ':') *p = '_';
  return s;
}

/* UTF-8 text mixing ASCII, 2-, 3- and 4-byte characters; lines allowed
 * only when multiline. */
static char *rnd_text(size_t max, int multiline) {
  static const char *pieces[] = {"a", "Z", " ", "0", "\xc3\xa9", "\xe2\x82\xac",
                                 "\xf0\x9f\x93\x84", "<", "\"", "\t", "\r\n", "\n"};
  size_t np = multiline ? 12 : 10;
  size_t n = rndn(max);
  char *s = palloc(n * 4 + 1), *p = s;
  for (size_t i = 0; i < n; i++) {
    const char *piece = pieces[rndn(np)];
    size_t l = strlen(piece);
    memcpy(p, piece, l);
    p += l;
  }
  *p = '\0';
  return s;
}

static char *rnd_addr(int named) {
  char *local = rnd_name(), *s = palloc(300);
  /* Keep only characters allowed in a local part. */
  size_t k = 0;
  for (size_t i = 0; local[i] && k < 30; i++)
    if (local[i] != ':' && local[i] != '@') local[k++] = local[i];
  if (k == 0) local[k++] = 'x';
  local[k] = '\0';
  if (named) snprintf(s, 300, "%s <%s@example%zu.com>", rnd_text(10, 0), local, rndn(100));
  else snprintf(s, 300, "%s@ex-%zu.example", local, rndn(1000));
  /* A display name must not itself contain '<' or '>'. */
  if (named)
    for (char *q = s; *q && q < strrchr(s, '<'); q++)
      if (*q == '<' || *q == '>' || *q == '\t') *q = 'x';
  return s;
}

static struct relayq_strv rnd_addrs(size_t max, int named) {
  struct relayq_strv sv = {NULL, rndn(max + 1)};
  if (sv.n) sv.v = palloc(sv.n * sizeof *sv.v);
  for (size_t i = 0; i < sv.n; i++) sv.v[i] = rnd_addr(named && rndn(2));
  return sv;
}

static struct relayq_kv *rnd_kv(size_t *n, int headers) {
  *n = rndn(5);
  struct relayq_kv *kv = *n ? palloc(*n * sizeof *kv) : NULL;
  for (size_t i = 0; i < *n; i++) {
    char *k = palloc(24);
    snprintf(k, 24, headers ? "X-Rand-%zu-%zu" : "k%zu.%zu", i, rndn(1000));
    kv[i].key = k;
    kv[i].value = rnd_text(40, !headers);
  }
  return kv;
}

static void rnd_job(struct relayq_job *j) {
  memset(j, 0, sizeof *j);
  j->v = rndn(2) ? 1 : 0;
  j->id = rnd_name();
  j->tenant = rnd_tenant();
  do {
    j->to = rnd_addrs(3, 1);
    j->cc = rnd_addrs(2, 1);
    j->bcc = rnd_addrs(2, 0);
  } while (j->to.n + j->cc.n + j->bcc.n == 0);
  if (rndn(2)) j->from = rnd_addr(0);
  if (rndn(2)) j->from_name = rnd_text(20, 0);
  if (rndn(2)) j->reply_to = rnd_addr(0);
  if (rndn(2)) j->subject = rnd_text(60, 0);
  int raw = rndn(5) == 0;
  if (raw || rndn(2)) j->html = rnd_text(200, 1);
  if (!raw && (j->html == NULL || rndn(2))) j->text = rnd_text(200, 1);
  j->headers = rnd_kv(&j->n_headers, 1);
  j->n_attachments = rndn(3);
  if (j->n_attachments) j->attachments = palloc(j->n_attachments * sizeof *j->attachments);
  for (size_t i = 0; i < j->n_attachments; i++) {
    struct relayq_attachment *a = &j->attachments[i];
    a->filename = rnd_text(20, 0);
    if (a->filename[0] == '\0' || strchr(a->filename, '\t')) a->filename = "file.bin";
    a->content_type = rndn(3) ? "application/vnd.ms-excel" : NULL;
    a->size = rndn(600);
    a->data = palloc(a->size + 1);
    for (size_t k = 0; k < a->size; k++) a->data[k] = (unsigned char)rnd();
  }
  if (raw) {
    j->raw_len = 1 + rndn(300);
    j->raw = palloc(j->raw_len);
    for (size_t k = 0; k < j->raw_len; k++) j->raw[k] = (unsigned char)rnd();
  }
  if (rndn(2)) j->route = rnd_tenant();
  j->kind = (enum relayq_kind)rndn(3);
  if (rndn(2)) j->not_before = (int64_t)(rnd() >> 1);
  if (rndn(2)) j->expires_at = (int64_t)rndn(4000000000000ull);
  j->max_attempts = (int)rndn(1001);
  j->meta = rnd_kv(&j->n_meta, 0);
  if (rndn(3) == 0) {
    j->queue_ = rnd_name();
    j->attempts_ = (int)rndn(100);
    j->pending_ = rnd_addrs(3, 0);
    j->accepted_ = (int)rndn(5);
    j->rejected_ = (int)rndn(5);
    j->created_ = (int64_t)rndn(1ull << 50);
  }
}

static void test_random_round_trips(void) {
  rng_state = 0x9e3779b97f4a7c15ull;
  int failures = 0;
  for (int it = 0; it < 3000; it++) {
    pool_used = 0;
    struct relayq_job j;
    rnd_job(&j);
    struct relayq_error err;
    unsigned char *buf = NULL, *buf2 = NULL;
    size_t len = 0, len2 = 0;
    struct relayq_job *d = NULL;
    const char *diff = NULL;
    if (relayq_job_encode(&j, &buf, &len, &err) != 0) {
      diff = err.message;
    } else if (relayq_job_decode(buf, len, 0, &d, &err) != 0) {
      diff = err.message;
    } else if ((diff = job_diff(&j, d)) == NULL) {
      if (relayq_job_encode(d, &buf2, &len2, &err) != 0 || len2 != len ||
          memcmp(buf, buf2, len) != 0)
        diff = "re-encoding differs";
    }
    if (diff != NULL && failures++ < 5) fprintf(stderr, "iteration %d: %s\n", it, diff);
    relayq_job_free(d);
    free(buf);
    free(buf2);
  }
  CHECK_INT(failures, ==, 0);
}

int relayq__utf8_valid(const char *p, size_t n); /* librelayq-internal */

/* The validator skips ASCII 8 bytes at a time: a bad or multi-byte
 * sequence must be seen at every offset, across the 8-byte steps. */
static void test_utf8_offsets(void) {
  for (size_t at = 0; at < 24; at++) {
    char buf[32];
    memset(buf, 'a', sizeof buf);
    buf[at] = (char)0xff;
    CHECK(!relayq__utf8_valid(buf, 24));
    memcpy(buf + at, "\xf0\x9f\x93\xa7", 4); /* U+1F4E7, 4 bytes */
    CHECK(relayq__utf8_valid(buf, at + 4));
    CHECK(!relayq__utf8_valid(buf, at + 3)); /* cut short */
    memcpy(buf + at, "\xc0\xaf", 2);         /* overlong '/' */
    CHECK(!relayq__utf8_valid(buf, 24));
  }
  CHECK(relayq__utf8_valid("", 0));
  CHECK(relayq__utf8_valid("plain ascii, longer than eight", 30));
}

/* v1.1: tenant and route names without ':', trace and authentication
 * headers refused, on the encoder's and the decoder's side alike. */
static void test_v11_rules(void) {
  char *to[] = {"a@example.com"};
  struct relayq_job j = {0};
  j.id = "id:with:colons";
  j.tenant = "acme";
  j.to = (struct relayq_strv){to, 1};
  j.text = "x";
  struct relayq_error err;
  CHECK_INT(relayq_job_validate(&j, &err), ==, 0);
  struct relayq_job k = j;
  k.tenant = "acme:route:billing";
  CHECK_INT(relayq_job_validate(&k, &err), ==, RELAYQ_EINVALID_JOB);
  CHECK(strstr(err.message, "'tenant'") != NULL && strstr(err.message, "no ':'") != NULL);
  k = j;
  k.route = "a:b";
  CHECK_INT(relayq_job_validate(&k, &err), ==, RELAYQ_EINVALID_JOB);
  CHECK(strstr(err.message, "'route'") != NULL);
  CHECK(relayq_valid_tenant("A-z_0.9@x") && !relayq_valid_tenant("a:b") && !relayq_valid_tenant(""));
  CHECK(relayq_valid_id("a:b"));

  static const char *const bad[] = {"Received", "RECEIVED", "Return-Path", "DKIM-Signature", "dkim-signature",
                                    "ARC-Seal", "arc-authentication-results", "ARC-Message-Signature",
                                    "Authentication-Results", "Resent-From", "resent-message-id"};
  static const char *const good[] = {"X-Received-By", "ARC", "X-ARC-Seal", "Resent", "List-Unsubscribe",
                                     "Authentication-Result"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct relayq_kv kv = {(char *)bad[i], "v"};
    k = j;
    k.headers = &kv;
    k.n_headers = 1;
    CHECK_INT(relayq_job_validate(&k, &err), ==, RELAYQ_EINVALID_JOB);
    CHECK(strstr(err.message, bad[i]) != NULL);
  }
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    struct relayq_kv kv = {(char *)good[i], "v"};
    k = j;
    k.headers = &kv;
    k.n_headers = 1;
    CHECK_INT(relayq_job_validate(&k, &err), ==, 0);
  }
  /* The decoder: a payload written by another producer. */
  struct relayq_kv kv = {"Xeceived", "from evil"};
  k = j;
  k.headers = &kv;
  k.n_headers = 1;
  unsigned char *buf = NULL;
  size_t len = 0;
  CHECK_INT(relayq_job_encode(&k, &buf, &len, &err), ==, 0);
  unsigned char *at = memmem(buf, len, "Xeceived", 8);
  CHECK(at != NULL);
  if (at) *at = 'R';
  struct relayq_job *d = NULL;
  CHECK_INT(relayq_job_decode(buf, len, 0, &d, &err), ==, RELAYQ_EINVALID_JOB);
  CHECK(d == NULL && strstr(err.message, "Received") != NULL);
  CHECK_STR(err.id, "id:with:colons");
  free(buf);
  /* A tenant with ':' is not captured for the status (it names no tenant). */
  k = j;
  k.tenant = "acmeXroute";
  CHECK_INT(relayq_job_encode(&k, &buf, &len, &err), ==, 0);
  at = memmem(buf, len, "acmeXroute", 10);
  if (at) at[4] = ':';
  CHECK_INT(relayq_job_decode(buf, len, 0, &d, &err), ==, RELAYQ_EINVALID_JOB);
  CHECK_STR(err.tenant, "");
  free(buf);
}

int main(void) {
  test_utf8_offsets();
  test_v11_rules();
  test_full_round_trip();
  test_minimal();
  test_bad_payloads();
  test_bad_framing();
  test_truncations();
  test_lenient();
  test_encode_rejects();
  test_random_round_trips();
  return CHECK_DONE();
}
