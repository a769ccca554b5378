/*
 * job: the validation rules of a relayq job (CONTRACT.md "A job"), applied
 * alike to jobs a producer fills in (before encoding) and to jobs the
 * worker decodes, and the job's release.
 *
 * Rules and the standards behind them:
 *   - addresses: RFC 5321 section 4.5.3.1.3 (998-octet line bound used as
 *     the address bound), RFC 5322 section 3.4 (name-addr / addr-spec);
 *     CR, LF and NUL are refused everywhere they could reach the SMTP
 *     envelope or a header (the command smuggling curl's smtp.c guards
 *     against);
 *   - header field names: RFC 5322 section 3.6.8 ftext, at most 76 octets
 *     so a field fits the 78-octet line with ": ";
 *   - text: RFC 3629 UTF-8;
 *   - attachment content types: RFC 2045 section 5.1 type "/" subtype.
 *
 * Messages name the field (and the item's position, counted from 1) but
 * never repeat the offending value: it may hold control characters that
 * would corrupt a log line, or personal data.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

/* ---- text predicates ------------------------------------------------------ */

int relayq__utf8_valid(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    /* Mail is mostly ASCII: skip 8 bytes at a time while none has the
     * high bit (memcpy: no unaligned loads). */
    while (n - i >= 8) {
      uint64_t w;
      memcpy(&w, p + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    unsigned char c = p[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t need;
    unsigned int cp, min;
    if ((c & 0xe0) == 0xc0) {
      need = 1, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      need = 2, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      need = 3, cp = c & 0x07, min = 0x10000;
    } else {
      return 0;
    }
    if (n - i <= need) return 0;
    for (size_t k = 1; k <= need; k++) {
      if ((p[i + k] & 0xc0) != 0x80) return 0;
      cp = (cp << 6) | (p[i + k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    i += need + 1;
  }
  return 1;
}

static int has_line_break(const char *p, size_t n) {
  return memchr(p, '\r', n) != NULL || memchr(p, '\n', n) != NULL;
}

static int has_control(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c < 0x20 || c == 0x7f) return 1;
  }
  return 0;
}

/* ---- addresses ------------------------------------------------------------ */

/* Checks an addr-spec (local@domain). Returns NULL or why it is not one.
 * Deliberately stricter than RFC 5322's obsolete forms: no comments, no
 * whitespace, no list separators; a quoted local part is allowed. */
static const char *addr_spec_problem(const char *p, size_t n) {
  const char *at = NULL;
  for (size_t i = n; i > 0; i--)
    if (p[i - 1] == '@') {
      at = p + i - 1;
      break;
    }
  if (at == NULL) return "it has no '@'";
  size_t llen = (size_t)(at - p), dlen = n - llen - 1;
  if (llen == 0) return "nothing comes before the '@'";
  if (dlen == 0) return "it has no domain after the '@'";
  if (p[0] == '"') {
    if (llen < 2 || p[llen - 1] != '"') return "its quoted local part is not closed";
    for (size_t i = 1; i + 1 < llen; i++)
      if (p[i] == '"' || p[i] == '\\') return "its quoted local part has a quote or backslash";
  } else {
    for (size_t i = 0; i < llen; i++)
      if (strchr(" \t<>()[],;:\\\"@", p[i]) != NULL)
        return "its local part has a space or one of < > ( ) [ ] , ; : \\ \" @";
  }
  for (size_t i = 0; i < dlen; i++)
    if (strchr(" \t<>(),;\\\"@", at[1 + i]) != NULL)
      return "its domain has a space or one of < > ( ) , ; \\ \" @";
  return NULL;
}

/*
 * One address of field `field` (item `idx` from 1, or 0 for a single
 * value). allow_name: "Name <addr>" is accepted (to and cc), otherwise
 * only a bare addr-spec (bcc, from, reply_to, the envelope list).
 */
static const char *where_of(char *buf, size_t cap, const char *field, size_t idx) {
  if (idx) snprintf(buf, cap, "field '%s' item %zu", field, idx);
  else snprintf(buf, cap, "field '%s'", field);
  return buf;
}

static int check_address(const char *field, size_t idx, const char *p,
                         int allow_name, struct relayq_error *err) {
  char where_buf[64];
  /* Formatted only for an error (every address of every job passes here). */
#define where where_of(where_buf, sizeof where_buf, field, idx)
  if (p == NULL)
    return relayq__fail(err, RELAYQ_EINVALID_JOB, "%s is missing (NULL).", where);
  size_t n = strnlen(p, RELAYQ_MAX_ADDRESS_LEN + 1);
  if (n == 0)
    return relayq__fail(err, RELAYQ_EINVALID_JOB, "%s is an empty address.", where);
  if (n > RELAYQ_MAX_ADDRESS_LEN)
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "%s is longer than %d bytes.", where, RELAYQ_MAX_ADDRESS_LEN);
  if (has_line_break(p, n))
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "%s contains CR or LF, which is not allowed in an "
                        "address.", where);
  if (has_control(p, n))
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "%s contains a control character.", where);
  if (!relayq__utf8_valid(p, n))
    return relayq__fail(err, RELAYQ_EINVALID_JOB, "%s is not valid UTF-8.", where);
  const char *spec = p;
  size_t slen = n;
  if (p[n - 1] == '>') {
    const char *lt = NULL;
    for (size_t i = n - 1; i > 0; i--)
      if (p[i - 1] == '<') {
        lt = p + i - 1;
        break;
      }
    if (lt == NULL)
      return relayq__fail(err, RELAYQ_EINVALID_JOB,
                          "%s ends with '>' but has no '<'.", where);
    if (!allow_name)
      return relayq__fail(err, RELAYQ_EINVALID_JOB,
                          "%s must be a bare address (user@example.com); "
                          "'Name <addr>' is allowed only in 'to' and 'cc'%s.",
                          where,
                          strcmp(field, "from") == 0 ? " (use 'from_name' for the name)" : "");
    spec = lt + 1;
    slen = (size_t)(p + n - 1 - spec);
    if (memchr(p, '<', (size_t)(lt - p)) != NULL || memchr(p, '>', (size_t)(lt - p)) != NULL)
      return relayq__fail(err, RELAYQ_EINVALID_JOB,
                          "%s has a display name containing '<' or '>'.", where);
  }
  const char *why = addr_spec_problem(spec, slen);
  if (why != NULL)
    return relayq__fail(err, RELAYQ_EINVALID_JOB, "%s is not a valid address: %s.",
                        where, why);
  return 0;
#undef where
}

static int check_strv(const char *field, const struct relayq_strv *sv,
                      int allow_name, struct relayq_error *err) {
  if (sv->n > RELAYQ_MAX_RECIPIENTS)
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "field '%s' has %zu addresses, more than the limit of %d.",
                        field, sv->n, RELAYQ_MAX_RECIPIENTS);
  if (sv->n > 0 && sv->v == NULL)
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "field '%s' says %zu addresses but has no array.", field, sv->n);
  for (size_t i = 0; i < sv->n; i++) {
    int r = check_address(field, i + 1, sv->v[i], allow_name, err);
    if (r != 0) return r;
  }
  return 0;
}

static int check_single_address(const char *field, const char *p,
                                struct relayq_error *err) {
  return p == NULL ? 0 : check_address(field, 0, p, 0, err);
}

/* ---- text fields ---------------------------------------------------------- */

/* A one-line text value (subject, from_name): UTF-8, no CR/LF, bounded. */
static int check_line(const char *field, const char *p, size_t max,
                      struct relayq_error *err) {
  if (p == NULL) return 0;
  size_t n = strnlen(p, max + 1);
  if (n > max)
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "field '%s' is longer than %zu bytes.", field, max);
  if (has_line_break(p, n))
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "field '%s' contains CR or LF; it must be one line.", field);
  if (!relayq__utf8_valid(p, n))
    return relayq__fail(err, RELAYQ_EINVALID_JOB, "field '%s' is not valid UTF-8.", field);
  return 0;
}

static int check_body(const char *field, const char *p, struct relayq_error *err) {
  if (p == NULL) return 0;
  if (!relayq__utf8_valid(p, strlen(p)))
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "field '%s' is not valid UTF-8 (send other encodings as "
                        "an attachment or a raw message).", field);
  return 0;
}

static int check_name_field(const char *field, const char *p, int required,
                            struct relayq_error *err) {
  if (p == NULL) {
    if (!required) return 0;
    return relayq__fail(err, RELAYQ_EINVALID_JOB, "field '%s' is required.", field);
  }
  if (!relayq_valid_id(p))
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "field '%s' must be 1-128 characters of A-Z a-z 0-9 "
                        ". _ : @ -.", field);
  return 0;
}

/* tenant and route: no ':' (v1.1), so a tenant's route key is never
 * another tenant's hash. */
static int check_tenant_field(const char *field, const char *p, int required,
                              struct relayq_error *err) {
  if (p == NULL) return check_name_field(field, p, required, err);
  if (!relayq_valid_tenant(p))
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "field '%s' must be 1-128 characters of A-Z a-z 0-9 "
                        ". _ @ - (no ':').", field);
  return 0;
}

/* The count and array of a list field (headers, attachments, meta): at
 * most max entries, and an array whenever the caller's struct says there
 * are any. */
static int check_list(const char *field, size_t n, const void *arr, int max,
                      struct relayq_error *err) {
  if (n > (size_t)max)
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "field '%s' has %zu entries, more than the limit of %d.", field, n, max);
  if (n > 0 && arr == NULL)
    return relayq__fail(err, RELAYQ_EINVALID_JOB, "field '%s' has entries but no array.", field);
  return 0;
}

/* ---- headers -------------------------------------------------------------- */

/* Fields the message builder writes itself; letting a job set them would
 * produce duplicates or let it forge what the platform vouches for. */
static const char *const builder_headers[] = {
    "From",         "To",           "Cc",
    "Bcc",          "Subject",      "Date",
    "Message-ID",   "MIME-Version", "Content-Type",
    "Content-Transfer-Encoding",    "Reply-To",
    "Sender",       "Return-Path",
};

/* Trace and authentication headers (RFC 5321 4.4, RFC 6376, RFC 8617,
 * RFC 8601, RFC 5322 3.6.6) are written by the servers that handle the
 * message, never by a producer: a forged Received or
 * Authentication-Results line would be vouched for by the platform. The
 * entries ending in '-' are prefixes. */
static const char *const trace_headers[] = {
    "Received", "Return-Path", "DKIM-Signature", "Authentication-Results",
    "ARC-",     "Resent-",
};

static int trace_header(const char *name) {
  for (size_t i = 0; i < sizeof trace_headers / sizeof *trace_headers; i++) {
    const char *t = trace_headers[i];
    size_t n = strlen(t);
    if (t[n - 1] == '-' ? strncasecmp(name, t, n) == 0 : strcasecmp(name, t) == 0) return 1;
  }
  return 0;
}

static int check_header(size_t idx, const struct relayq_kv *kv,
                        struct relayq_error *err) {
  if (kv->key == NULL || kv->value == NULL)
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "field 'headers' entry %zu has no name or no value.", idx);
  size_t n = strnlen(kv->key, RELAYQ_MAX_HEADER_NAME + 1);
  if (n == 0 || n > RELAYQ_MAX_HEADER_NAME)
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "field 'headers' entry %zu: a header name must be 1-%d "
                        "characters.", idx, RELAYQ_MAX_HEADER_NAME);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)kv->key[i];
    if (c < 33 || c > 126 || c == ':')
      return relayq__fail(err, RELAYQ_EINVALID_JOB,
                          "field 'headers' entry %zu: a header name may only "
                          "hold printable ASCII without spaces or ':' "
                          "(RFC 5322 ftext).", idx);
  }
  if (trace_header(kv->key))
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "field 'headers' must not set %s: trace and authentication "
                        "headers (Received, Return-Path, DKIM-Signature, ARC-*, "
                        "Authentication-Results, Resent-*) are written by mail "
                        "servers, not by producers.", kv->key);
  for (size_t i = 0; i < sizeof builder_headers / sizeof *builder_headers; i++)
    if (strcasecmp(kv->key, builder_headers[i]) == 0)
      return relayq__fail(err, RELAYQ_EINVALID_JOB,
                          "field 'headers' must not set %s: relayq writes that "
                          "header itself (use the job's own fields instead).",
                          builder_headers[i]);
  size_t vn = strnlen(kv->value, RELAYQ_MAX_HEADER_VALUE + 1);
  if (vn > RELAYQ_MAX_HEADER_VALUE)
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "field 'headers': the value of %s is longer than %d bytes.",
                        kv->key, RELAYQ_MAX_HEADER_VALUE);
  if (has_line_break(kv->value, vn))
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "field 'headers': the value of %s contains CR or LF "
                        "(relayq folds long headers itself).", kv->key);
  if (!relayq__utf8_valid(kv->value, vn))
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "field 'headers': the value of %s is not valid UTF-8.", kv->key);
  return 0;
}

static int check_headers(const struct relayq_job *job, struct relayq_error *err) {
  int r = check_list("headers", job->n_headers, job->headers, RELAYQ_MAX_HEADERS, err);
  if (r != 0) return r;
  for (size_t i = 0; i < job->n_headers; i++) {
    r = check_header(i + 1, &job->headers[i], err);
    if (r != 0) return r;
  }
  return 0;
}

/* ---- attachments ------------------------------------------------------------ */

/* RFC 2045 token: printable ASCII except space and tspecials. */
static int is_token(const char *p, size_t n) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c <= 32 || c >= 127 || strchr("()<>@,;:\\\"/[]?=", c) != NULL) return 0;
  }
  return 1;
}

static int content_type_ok(const char *ct) {
  size_t n = strnlen(ct, RELAYQ__MAX_CTYPE + 1);
  if (n > RELAYQ__MAX_CTYPE) return 0;
  const char *slash = memchr(ct, '/', n);
  if (slash == NULL) return 0;
  size_t tl = (size_t)(slash - ct);
  return is_token(ct, tl) && is_token(slash + 1, n - tl - 1);
}

static int check_attachments(const struct relayq_job *job, struct relayq_error *err) {
  int r = check_list("attachments", job->n_attachments, job->attachments, RELAYQ_MAX_ATTACHMENTS,
                     err);
  if (r != 0) return r;
  for (size_t i = 0; i < job->n_attachments; i++) {
    const struct relayq_attachment *a = &job->attachments[i];
    if (a->filename == NULL || a->filename[0] == '\0')
      return relayq__fail(err, RELAYQ_EINVALID_JOB,
                          "field 'attachments' item %zu has no 'filename'.", i + 1);
    size_t n = strnlen(a->filename, RELAYQ__MAX_FILENAME + 1);
    if (n > RELAYQ__MAX_FILENAME || has_control(a->filename, n) ||
        !relayq__utf8_valid(a->filename, n))
      return relayq__fail(err, RELAYQ_EINVALID_JOB,
                          "field 'attachments' item %zu: 'filename' must be UTF-8 "
                          "text of at most %d bytes without control characters.",
                          i + 1, RELAYQ__MAX_FILENAME);
    if (a->content_type != NULL && !content_type_ok(a->content_type))
      return relayq__fail(err, RELAYQ_EINVALID_JOB,
                          "field 'attachments' item %zu: 'content_type' must be "
                          "type/subtype, e.g. application/pdf.", i + 1);
    if (a->data == NULL && a->size > 0)
      return relayq__fail(err, RELAYQ_EINVALID_JOB,
                          "field 'attachments' item %zu has a size but no 'data'.", i + 1);
  }
  return 0;
}

/* ---- meta ------------------------------------------------------------------- */

static int check_meta(const struct relayq_job *job, struct relayq_error *err) {
  int r = check_list("meta", job->n_meta, job->meta, RELAYQ_MAX_META, err);
  if (r != 0) return r;
  for (size_t i = 0; i < job->n_meta; i++) {
    const struct relayq_kv *kv = &job->meta[i];
    if (kv->key == NULL || kv->value == NULL)
      return relayq__fail(err, RELAYQ_EINVALID_JOB,
                          "field 'meta' entry %zu has no key or no value.", i + 1);
    size_t kn = strnlen(kv->key, RELAYQ__MAX_META_KEY + 1);
    if (kn == 0 || kn > RELAYQ__MAX_META_KEY || has_control(kv->key, kn) ||
        !relayq__utf8_valid(kv->key, kn))
      return relayq__fail(err, RELAYQ_EINVALID_JOB,
                          "field 'meta' entry %zu: a key must be 1-%d bytes of "
                          "UTF-8 without control characters.", i + 1,
                          RELAYQ__MAX_META_KEY);
    size_t vn = strnlen(kv->value, RELAYQ_MAX_META_LEN + 1);
    if (vn > RELAYQ_MAX_META_LEN || !relayq__utf8_valid(kv->value, vn))
      return relayq__fail(err, RELAYQ_EINVALID_JOB,
                          "field 'meta' entry %zu: a value must be UTF-8 of at "
                          "most %d bytes.", i + 1, RELAYQ_MAX_META_LEN);
  }
  return 0;
}

/* ---- the whole job ------------------------------------------------------------ */

static int check_range(const char *field, int64_t v, int64_t lo, int64_t hi,
                       struct relayq_error *err) {
  if (v < lo || v > hi)
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "field '%s' must be between %lld and %lld, got %lld.", field,
                        (long long)lo, (long long)hi, (long long)v);
  return 0;
}

static int check_envelope(const struct relayq_job *job, struct relayq_error *err) {
  int r;
  if ((r = check_strv("to", &job->to, 1, err)) != 0) return r;
  if ((r = check_strv("cc", &job->cc, 1, err)) != 0) return r;
  if ((r = check_strv("bcc", &job->bcc, 0, err)) != 0) return r;
  size_t total = job->to.n + job->cc.n + job->bcc.n;
  if (total == 0)
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "The job has no recipient: give at least one address in "
                        "'to', 'cc' or 'bcc'.");
  if (total > RELAYQ_MAX_RECIPIENTS)
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "The job has %zu recipients in 'to', 'cc' and 'bcc', more "
                        "than the limit of %d; split it into several jobs.",
                        total, RELAYQ_MAX_RECIPIENTS);
  if ((r = check_single_address("from", job->from, err)) != 0) return r;
  if ((r = check_single_address("reply_to", job->reply_to, err)) != 0) return r;
  return check_strv("_rcpt", &job->pending_, 0, err);
}

static int check_content(const struct relayq_job *job, struct relayq_error *err) {
  int r;
  if ((r = check_line("subject", job->subject, RELAYQ__MAX_SUBJECT, err)) != 0) return r;
  if ((r = check_line("from_name", job->from_name, RELAYQ__MAX_SUBJECT, err)) != 0) return r;
  if ((r = check_body("text", job->text, err)) != 0) return r;
  if ((r = check_body("html", job->html, err)) != 0) return r;
  if (job->raw == NULL && job->raw_len > 0)
    return relayq__fail(err, RELAYQ_EINVALID_JOB, "field 'raw' has a length but no data.");
  if (job->raw != NULL && job->raw_len == 0)
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "field 'raw' is empty; give a complete RFC 5322 message.");
  if (job->raw == NULL && job->text == NULL && job->html == NULL)
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "The job has no body: give 'text' or 'html' (or a "
                        "complete message in 'raw').");
  if ((r = check_headers(job, err)) != 0) return r;
  return check_attachments(job, err);
}

static int check_scheduling(const struct relayq_job *job, struct relayq_error *err) {
  int r;
  if (job->kind != RELAYQ_KIND_TRANSACTIONAL && job->kind != RELAYQ_KIND_BULK &&
      job->kind != RELAYQ_KIND_AUTO_REPLY)
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "field 'kind' must be transactional, bulk or auto_reply.");
  if ((r = check_range("not_before", job->not_before, 0, INT64_MAX, err)) != 0) return r;
  if ((r = check_range("expires_at", job->expires_at, 0, INT64_MAX, err)) != 0) return r;
  if ((r = check_range("max_attempts", job->max_attempts, 0, RELAYQ__MAX_ATTEMPTS, err)) != 0)
    return r;
  if ((r = check_tenant_field("route", job->route, 0, err)) != 0) return r;
  if ((r = check_name_field("_queue", job->queue_, 0, err)) != 0) return r;
  if ((r = check_range("_attempts", job->attempts_, 0, RELAYQ__MAX_ATTEMPTS_DONE, err)) != 0)
    return r;
  if ((r = check_range("_accepted", job->accepted_, 0, RELAYQ_MAX_RECIPIENTS, err)) != 0)
    return r;
  if ((r = check_range("_rejected", job->rejected_, 0, RELAYQ_MAX_RECIPIENTS, err)) != 0)
    return r;
  return check_range("_created", job->created_, 0, INT64_MAX, err);
}

int relayq_job_validate(const struct relayq_job *job, struct relayq_error *err) {
  if (job == NULL) return relayq__fail(err, RELAYQ_EINVAL, "No job was given.");
  int r;
  if (job->v != 0 && job->v != RELAYQ_JOB_VERSION)
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "Unsupported job version v=%d; this build reads v=%d.",
                        job->v, RELAYQ_JOB_VERSION);
  if ((r = check_name_field("id", job->id, 1, err)) != 0) return r;
  if ((r = check_tenant_field("tenant", job->tenant, 1, err)) != 0) return r;
  if ((r = check_envelope(job, err)) != 0) return r;
  if ((r = check_content(job, err)) != 0) return r;
  if ((r = check_scheduling(job, err)) != 0) return r;
  return check_meta(job, err);
}

/* A decoded job is one arena block starting with the struct itself
 * (codec.c), so one free releases every string and array it points to. */
void relayq_job_free(struct relayq_job *job) { free(job); }
