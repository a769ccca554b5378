/* mime: the message builder (see mime.h). */
#include "mime.h"
#include "msg.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "address.h"
#include "encode.h"
#include "util.h"

#define BOUNDARY_CAP 48

/* ---- small helpers ------------------------------------------------------------ */

/* Appends s[0..n) with every bare LF and bare CR made CRLF. Bodies are
 * large and usually free of CR, so that case copies line by line with
 * memchr rather than looking at each byte. */
static void put_crlf(struct rq_buf *out, const char *s, size_t n) {
  size_t start = 0;
  rq_buf_reserve(out, n + n / 32 + 2);
  if (memchr(s, '\r', n) == NULL) {
    const char *lf;
    while (start < n && (lf = memchr(s + start, '\n', n - start)) != NULL) {
      size_t i = (size_t)(lf - s);
      rq_buf_append(out, s + start, i - start);
      rq_buf_append(out, "\r\n", 2);
      start = i + 1;
    }
    rq_buf_append(out, s + start, n - start);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '\r') {
      if (i + 1 < n && s[i + 1] == '\n') {
        i++;
        continue;
      }
    } else if (s[i] != '\n') {
      continue;
    }
    rq_buf_append(out, s + start, i - start);
    rq_buf_append(out, "\r\n", 2);
    start = i + 1;
  }
  rq_buf_append(out, s + start, n - start);
}

static int ends_crlf(const struct rq_buf *b) {
  return b->len >= 2 && b->data[b->len - 2] == '\r' && b->data[b->len - 1] == '\n';
}

/* FNV-1a: a stable, dependency-free hash; boundaries need to be
 * deterministic and unlikely in text, not secret. */
static uint64_t fnv1a(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  return h;
}

/* "=_" can never occur in quoted-printable or base64 output, and 7bit parts
 * holding it are sent quoted-printable instead (fits_7bit), so no part
 * body can contain a delimiter line. */
static void make_boundary(char out[BOUNDARY_CAP], const char *message_id, unsigned k) {
  snprintf(out, BOUNDARY_CAP, "=_rq%016" PRIx64 "_%u", fnv1a(message_id), k);
}

/* ---- Date and Message-ID ---------------------------------------------------------- */

/* v % 100 as two digits at p; returns the end. */
static char *two_digits(char *p, unsigned v) {
  p[0] = (char)('0' + v / 10u % 10u);
  p[1] = (char)('0' + v % 10u);
  return p + 2;
}

void rq_mime_date(int64_t ms, char out[40]) {
  static const char *const wday[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  int64_t s = ms / 1000 - (ms % 1000 < 0); /* floor, for times before 1970 */
  time_t t = (time_t)s;
  struct tm tm;
  if (gmtime_r(&t, &tm) == NULL) {
    t = 0;
    gmtime_r(&t, &tm);
  }
  unsigned year = (unsigned)(tm.tm_year + 1900) % 10000u;
  /* By hand: one snprintf of seven fields cost 3,000 instructions a
   * message (bench --callgrind). */
  char *p = out;
  memcpy(p, wday[tm.tm_wday % 7], 3), p += 3;
  *p++ = ',', *p++ = ' ';
  p = two_digits(p, (unsigned)tm.tm_mday);
  *p++ = ' ';
  memcpy(p, mon[tm.tm_mon % 12], 3), p += 3;
  *p++ = ' ';
  p = two_digits(p, year / 100u);
  p = two_digits(p, year);
  *p++ = ' ';
  p = two_digits(p, (unsigned)tm.tm_hour);
  *p++ = ':';
  p = two_digits(p, (unsigned)tm.tm_min);
  *p++ = ':';
  p = two_digits(p, (unsigned)tm.tm_sec);
  memcpy(p, " +0000", 7); /* with its NUL: 31 bytes in all */
}

static int hostname_ok(const char *d) {
  size_t n = d ? strlen(d) : 0, label = 0;
  if (n == 0 || n > 253) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)d[i];
    if (c == '.') {
      if (label == 0) return 0;
      label = 0;
    } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               (c >= '0' && c <= '9') || c == '-' || c == '_') {
      label++;
    } else {
      return 0;
    }
  }
  return label > 0;
}

void rq_mime_message_id(const char *job_id, const char *domain, struct rq_buf *out) {
  static const char hex[] = "0123456789ABCDEF";
  const char *id = job_id ? job_id : "";
  size_t n = strlen(id);
  rq_buf_reserve(out, 3 * n + 8 + (domain ? strlen(domain) : 16));
  rq_buf_putc(out, '<');
  if (n == 0) rq_buf_puts(out, "none");
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)id[i];
    int keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               (c >= '0' && c <= '9') || c == '-' || c == '_';
    /* dot-atom-text: a dot only between two atext characters. */
    if (c == '.') keep = i > 0 && i + 1 < n && id[i - 1] != '.' && id[i + 1] != '.';
    if (keep) {
      rq_buf_putc(out, (char)c);
    } else {
      char e[3] = {'=', hex[c >> 4], hex[c & 15]};
      rq_buf_append(out, e, 3);
    }
  }
  rq_buf_putc(out, '@');
  rq_buf_puts(out, hostname_ok(domain) ? domain : "relayq.invalid");
  rq_buf_putc(out, '>');
}

/* ---- raw ---------------------------------------------------------------------------- */

void rq_mime_raw(const unsigned char *raw, size_t len, struct rq_buf *out) {
  put_crlf(out, (const char *)raw, len);
}

/* ---- headers ------------------------------------------------------------------------ */

/* Headers the builder owns (the job validator's list); "Content-*" too. */
static int builder_header(const char *name) {
  static const char *const own[] = {
      "From",   "To",          "Cc",          "Bcc",
      "Subject", "Date",       "Message-ID",  "MIME-Version",
      "Reply-To", "Sender",    "Return-Path",
  };
  if (strncasecmp(name, "Content-", 8) == 0) return 1;
  for (size_t i = 0; i < sizeof own / sizeof *own; i++)
    if (strcasecmp(name, own[i]) == 0) return 1;
  return 0;
}

/* RFC 5322 3.6.8 field-name: 1*ftext, printable ASCII except ':'. */
static int field_name_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > RELAYQ_MAX_HEADER_NAME) return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 33 || (unsigned char)s[i] > 126 || s[i] == ':') return 0;
  return 1;
}

/* "Name: " + one mailbox + CRLF. */
static int put_mailbox_header(struct rq_buf *out, const char *field, const char *in,
                              const char *name_override, char *err, size_t errlen) {
  char addr[RQ_ADDR_MAX + 1], name[RQ_NAME_MAX + 1];
  if (rq_addr_parse(in, addr, sizeof addr, name, sizeof name) != 0) {
    rq_errf(err, errlen, "The %s address \"%.200s\" is not a valid email address.",
            field, in);
    return -1;
  }
  const char *dn = name_override && *name_override ? name_override : name;
  rq_buf_printf(out, "%s: ", field);
  rq_addr_render(dn, addr, strlen(field), out);
  rq_buf_puts(out, "\r\n");
  return 0;
}

static int put_list_header(struct rq_buf *out, const char *field,
                           const struct relayq_strv *list, char *err, size_t errlen) {
  size_t bad = 0;
  rq_buf_printf(out, "%s: ", field);
  if (rq_addr_render_list(list->v, list->n, strlen(field), out, &bad) != 0) {
    rq_errf(err, errlen, "The %s address \"%.200s\" (item %zu) is not a valid email address.",
            field, list->v[bad] ? list->v[bad] : "", bad + 1);
    return -1;
  }
  rq_buf_puts(out, "\r\n");
  return 0;
}

static void put_text_header(struct rq_buf *out, const char *name, const char *value) {
  rq_buf_puts(out, name);
  rq_buf_puts(out, ": ");
  rq_rfc2047_encode(value ? value : "", strlen(name), out);
  rq_buf_puts(out, "\r\n");
}

static int put_headers(const struct rq_mime_input *in, struct rq_buf *out, char *err,
                       size_t errlen) {
  const struct relayq_job *job = in->job;
  char date[40];
  if (put_mailbox_header(out, "From", in->from_addr, in->from_name, err, errlen) != 0)
    return -1;
  if (job->to.n > 0) {
    if (put_list_header(out, "To", &job->to, err, errlen) != 0) return -1;
  } else if (job->cc.n == 0) {
    rq_buf_puts(out, "To: undisclosed-recipients:;\r\n");
  }
  if (job->cc.n > 0 && put_list_header(out, "Cc", &job->cc, err, errlen) != 0) return -1;
  if (in->reply_to && *in->reply_to &&
      put_mailbox_header(out, "Reply-To", in->reply_to, NULL, err, errlen) != 0)
    return -1;
  put_text_header(out, "Subject", job->subject);
  rq_mime_date(in->date_ms, date);
  rq_buf_printf(out, "Date: %s\r\n", date);
  /* The id is ours (rq_mime_message_id), but it is written through the
   * folder like any value so nothing in it can start a header line. */
  put_text_header(out, "Message-ID", in->message_id);
  rq_buf_puts(out, "MIME-Version: 1.0\r\n");
  for (size_t i = 0; i < job->n_headers; i++) {
    const struct relayq_kv *kv = &job->headers[i];
    if (kv->key == NULL || kv->value == NULL) continue;
    if (!field_name_ok(kv->key)) {
      rq_errf(err, errlen, "The extra header name \"%.80s\" is not valid: use 1-%d "
                           "printable ASCII characters without spaces or ':'.",
              kv->key, RELAYQ_MAX_HEADER_NAME);
      return -1;
    }
    if (builder_header(kv->key)) continue;
    put_text_header(out, kv->key, kv->value);
  }
  return 0;
}

/* ---- bodies ------------------------------------------------------------------------- */

/* 7bit (RFC 2045 2.7) needs ASCII and lines of at most 998 octets (no NUL
 * either, which C-string content cannot hold). "=_" is refused too, so a
 * body can never hold a boundary line. s is CRLF-normalised. Three cheap
 * passes (8 bytes at a time, then memchr) rather than one byte loop. */
static int fits_7bit(const char *s, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, s + i, 8);
    if (w & 0x8080808080808080ULL) return 0;
  }
  for (; i < n; i++)
    if ((unsigned char)s[i] >= 0x80) return 0;
  const char *p = s, *end = s + n;
  while (p < end) {
    const char *lf = memchr(p, '\n', (size_t)(end - p));
    const char *eol = lf ? lf : end;
    size_t len = (size_t)(eol - p);
    if (len > 0 && p[len - 1] == '\r') len--;
    if (len > RQ_LINE_MAX) return 0;
    p = eol + 1;
  }
  for (p = s; (p = memchr(p, '=', (size_t)(end - p))) != NULL; p++)
    if (p + 1 < end && p[1] == '_') return 0;
  return 1;
}

/* Writes one text entity (its headers, a blank line, its encoded body)
 * from CRLF-normalised content. No CRLF is added after the body. */
static void put_text_entity(struct rq_buf *out, const char *subtype,
                            const struct rq_buf *content) {
  int seven = fits_7bit(content->data ? content->data : "", content->len);
  rq_buf_printf(out,
                "Content-Type: text/%s; charset=UTF-8\r\n"
                "Content-Transfer-Encoding: %s\r\n\r\n",
                subtype, seven ? "7bit" : "quoted-printable");
  if (content->len == 0) return;
  if (seven) rq_buf_append(out, content->data, content->len);
  else rq_qp_encode(content->data, content->len, out);
}

/* The text part: the job's text, then "-- " and the signature. */
static void compose_text(const struct rq_mime_input *in, struct rq_buf *c) {
  const char *t = in->job->text ? in->job->text : "";
  rq_buf_reset(c);
  put_crlf(c, t, strlen(t));
  if (in->signature_text && *in->signature_text) {
    rq_buf_puts(c, "\r\n-- \r\n");
    put_crlf(c, in->signature_text, strlen(in->signature_text));
  }
}

/* Is there the tag name tag ("<body", "</body", lower case) at s[i], as a
 * whole name (followed by '>', '/' or whitespace)? */
static int tag_at(const char *s, size_t n, size_t i, const char *tag, size_t tl) {
  if (i + tl > n || strncasecmp(s + i, tag, tl) != 0) return 0;
  char after = i + tl < n ? s[i + tl] : '\0';
  return after == '>' || after == '/' || after == ' ' || after == '\t' || after == '\r' ||
         after == '\n';
}

/* The first "<body" tag, or NULL. memchr jumps between '<'s. */
static const char *find_body_open(const char *s, size_t n) {
  for (const char *p = s; (p = memchr(p, '<', n - (size_t)(p - s))) != NULL; p++)
    if ((size_t)(p - s) + 1 < n && (p[1] | 0x20) == 'b' &&
        tag_at(s, n, (size_t)(p - s), "<body", 5))
      return p;
  return NULL;
}

/* The last "</body" tag, or NULL; searched from the end, where it is. */
static const char *find_body_close(const char *s, size_t n) {
  for (size_t i = n; i > 0; i--)
    if (s[i - 1] == '<' && i < n && s[i] == '/' && tag_at(s, n, i - 1, "</body", 6))
      return s + i - 1;
  return NULL;
}

/* Escapes a URL for a double-quoted HTML attribute. */
static void put_attr(struct rq_buf *out, const char *s) {
  for (; *s; s++) {
    switch (*s) {
      case '&': rq_buf_puts(out, "&amp;"); break;
      case '"': rq_buf_puts(out, "&quot;"); break;
      case '\'': rq_buf_puts(out, "&#39;"); break;
      case '<': rq_buf_puts(out, "&lt;"); break;
      case '>': rq_buf_puts(out, "&gt;"); break;
      default:
        if ((unsigned char)*s >= 0x20) rq_buf_putc(out, *s); /* drop controls */
    }
  }
}

/* The HTML part: the logo right after <body ...> (or first), the job's
 * html, and the signature right before </body> (or last). */
static void compose_html(const struct rq_mime_input *in, struct rq_buf *c) {
  const char *h = in->job->html ? in->job->html : "";
  size_t n = strlen(h), ins = 0, sig_at = n;
  const char *body = find_body_open(h, n);
  if (body) {
    const char *gt = memchr(body, '>', n - (size_t)(body - h));
    if (gt) ins = (size_t)(gt + 1 - h);
  }
  const char *end = find_body_close(h, n);
  if (end && (size_t)(end - h) >= ins) sig_at = (size_t)(end - h);
  rq_buf_reset(c);
  put_crlf(c, h, ins);
  if (in->logo_url && *in->logo_url) {
    rq_buf_puts(c, "<div><img src=\"");
    put_attr(c, in->logo_url);
    rq_buf_puts(c, "\" alt=\"\"></div>\r\n");
  }
  put_crlf(c, h + ins, sig_at - ins);
  if (in->signature_html && *in->signature_html) {
    rq_buf_puts(c, "\r\n");
    put_crlf(c, in->signature_html, strlen(in->signature_html));
  }
  put_crlf(c, h + sig_at, n - sig_at);
}

/* The body entity: text, html, or multipart/alternative of both. */
static void put_body_entity(const struct rq_mime_input *in, struct rq_buf *out,
                            struct rq_buf *scratch) {
  const struct relayq_job *job = in->job;
  int has_html = job->html != NULL, has_text = job->text != NULL || !has_html;
  if (has_text && !has_html) {
    compose_text(in, scratch);
    put_text_entity(out, "plain", scratch);
    return;
  }
  if (has_html && !has_text) {
    compose_html(in, scratch);
    put_text_entity(out, "html", scratch);
    return;
  }
  char b[BOUNDARY_CAP];
  make_boundary(b, in->message_id, 2);
  rq_buf_printf(out, "Content-Type: multipart/alternative;\r\n boundary=\"%s\"\r\n\r\n--%s\r\n",
                b, b);
  compose_text(in, scratch);
  put_text_entity(out, "plain", scratch);
  rq_buf_printf(out, "\r\n--%s\r\n", b);
  compose_html(in, scratch);
  put_text_entity(out, "html", scratch);
  rq_buf_printf(out, "\r\n--%s--", b);
}

/* RFC 2045 token "/" token, as the job validator checks; else the generic
 * type, so a bad value cannot break the header. */
static int ctype_ok(const char *ct) {
  if (ct == NULL) return 0;
  size_t n = strlen(ct), slashes = 0;
  if (n == 0 || n > 127) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)ct[i];
    if (c == '/') {
      if (++slashes > 1 || i == 0 || i + 1 == n) return 0;
    } else if (c <= 32 || c >= 127 || strchr("()<>@,;:\\\"[]?=", c) != NULL) {
      return 0;
    }
  }
  return slashes == 1;
}

static int printable_ascii(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e) return 0;
  return 1;
}

/* m: NULL writes the base64 into out; else out is m->lit and the data
 * becomes a base64 segment of m, read later without a copy (msg.h). */
static void put_attachment(const struct relayq_attachment *a, struct rq_buf *out, struct rq_msg *m) {
  const char *fn = a->filename && *a->filename ? a->filename : NULL;
  rq_buf_puts(out, "Content-Type: ");
  rq_buf_puts(out, ctype_ok(a->content_type) ? a->content_type : "application/octet-stream");
  if (fn && printable_ascii(fn)) {
    rq_rfc2231_param("name", fn, out);
  } else if (fn) {
    /* Old clients read only Content-Type's name=, and only as RFC 2047
     * words inside quotes (not standard, but what Outlook and Gmail
     * write); modern ones use the RFC 2231 filename below. */
    struct rq_fold f;
    rq_buf_puts(out, ";\r\n name=\"");
    rq_fold_init(&f, out, 5); /* column 7, like after "Name: " with 5 */
    rq_fold_words(&f, "", 0, fn, strlen(fn));
    rq_buf_putc(out, '"');
  }
  rq_buf_puts(out, "\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment");
  if (fn) rq_rfc2231_param("filename", fn, out);
  rq_buf_puts(out, "\r\n\r\n");
  if (a->size > 0 && a->data != NULL && m != NULL) {
    rq_msg_add_b64(m, a->data, a->size); /* reads without the last CRLF, as below */
  } else if (a->size > 0 && a->data != NULL) {
    rq_b64_lines(a->data, a->size, out);
    out->len -= 2; /* the delimiter that follows brings its own CRLF */
    out->data[out->len] = '\0';
  }
}

static size_t estimate(const struct rq_mime_input *in, int with_attachments) {
  const struct relayq_job *job = in->job;
  size_t n = 2048;
  if (job->text) n += strlen(job->text) * 11 / 10;
  if (job->html) n += strlen(job->html) * 11 / 10;
  for (size_t i = 0; i < job->n_attachments; i++)
    n += (with_attachments ? job->attachments[i].size / 57 * 78 : 0) + 512;
  return n;
}

/* The builder of both forms: m == NULL appends everything to out; else
 * out is m->lit and attachments become segments of m. */
static int build(const struct rq_mime_input *in, struct rq_buf *out, struct rq_msg *m, char *err,
                 size_t errlen) {
  size_t mark = out->len;
  struct rq_buf scratch;
  rq_buf_init(&scratch);
  int rc = -1;
  if (in == NULL || in->job == NULL || in->from_addr == NULL || in->message_id == NULL) {
    rq_errf(err, errlen, "The message cannot be built: the job, sender address or "
                         "Message-ID is missing.");
    goto out;
  }
  const struct relayq_job *job = in->job;
  rq_buf_reserve(out, estimate(in, m == NULL));
  if (put_headers(in, out, err, errlen) != 0) goto out;
  if (job->n_attachments == 0 || job->attachments == NULL) {
    put_body_entity(in, out, &scratch);
  } else {
    char b[BOUNDARY_CAP];
    make_boundary(b, in->message_id, 1);
    rq_buf_printf(out, "Content-Type: multipart/mixed;\r\n boundary=\"%s\"\r\n\r\n--%s\r\n",
                  b, b);
    put_body_entity(in, out, &scratch);
    for (size_t i = 0; i < job->n_attachments; i++) {
      rq_buf_printf(out, "\r\n--%s\r\n", b);
      put_attachment(&job->attachments[i], out, m);
    }
    rq_buf_printf(out, "\r\n--%s--", b);
  }
  if (!ends_crlf(out)) rq_buf_puts(out, "\r\n");
  rc = 0;
out:
  rq_buf_free(&scratch);
  if (rc != 0 && out->data != NULL) {
    out->len = mark;
    out->data[mark] = '\0';
  }
  return rc;
}

int rq_mime_build(const struct rq_mime_input *in, struct rq_buf *out, char *err, size_t errlen) {
  return build(in, out, NULL, err, errlen);
}

int rq_mime_build_msg(const struct rq_mime_input *in, struct rq_msg *m, char *err, size_t errlen) {
  rq_msg_reset(m);
  int rc = build(in, &m->lit, m, err, errlen);
  if (rc != 0) rq_msg_reset(m);
  else rq_msg_finish(m);
  return rc;
}

size_t rq_mime_raw_head(const unsigned char *raw, size_t len) {
  size_t line_start = 0;
  for (size_t i = 0; i < len;) {
    if (raw[i] != '\r' && raw[i] != '\n') {
      i++;
      continue;
    }
    size_t brk = raw[i] == '\r' && i + 1 < len && raw[i + 1] == '\n' ? 2 : 1;
    if (i == line_start) return i + brk; /* an empty line ends the header */
    i += brk;
    line_start = i;
  }
  return len;
}

void rq_mime_raw_msg(const unsigned char *raw, size_t len, struct rq_msg *m) {
  rq_msg_reset(m);
  rq_mime_raw(raw, len, &m->lit);
  rq_msg_finish(m);
}
