/* dkim_canon: DKIM canonicalisation and signature header text (see dkim_canon.h). */
#include "dkim_canon.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

const struct rq_dkim_hname rq_dkim_sign_headers[] = {
    {"from", 1},
    {"to", 0},
    {"cc", 0},
    {"subject", 0},
    {"date", 0},
    {"message-id", 0},
    {"reply-to", 0},
    {"mime-version", 0},
    {"content-type", 0},
    {"content-transfer-encoding", 0},
    {"list-unsubscribe", 0},
    {"list-unsubscribe-post", 0},
};
const size_t rq_dkim_n_sign_headers = sizeof rq_dkim_sign_headers / sizeof rq_dkim_sign_headers[0];

static int is_wsp(char c) { return c == ' ' || c == '\t'; }

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : c; }

/* Index of the CR of the first CRLF at or after start, or len. */
static size_t line_end(const char *s, size_t len, size_t start) {
  size_t i = start;
  while (i < len) {
    const char *cr = memchr(s + i, '\r', len - i);
    if (cr == NULL) return len;
    i = (size_t)(cr - s);
    if (i + 1 < len && s[i + 1] == '\n') return i;
    i++;
  }
  return len;
}

/* RFC 5322 3.6.8: a field name is 1*ftext, printable ASCII but ':'. */
static int name_ok(const char *s, size_t n) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 33 || (unsigned char)s[i] > 126) return 0;
  return 1;
}

/* ---- message structure ------------------------------------------------------------ */

void rq_dkim_split(const char *msg, size_t len, size_t *hdr_len, size_t *body_off) {
  if (len >= 2 && msg[0] == '\r' && msg[1] == '\n') {
    *hdr_len = 0;
    *body_off = 2;
    return;
  }
  const char *p = len >= 4 ? memmem(msg, len, "\r\n\r\n", 4) : NULL;
  if (p == NULL) {
    *hdr_len = *body_off = len;
    return;
  }
  *hdr_len = (size_t)(p - msg) + 2;
  *body_off = (size_t)(p - msg) + 4;
}

int rq_dkim_field_next(const char *hdr, size_t hdr_len, size_t *pos, struct rq_dkim_field *f) {
  while (*pos < hdr_len) {
    size_t start = *pos;
    size_t end = line_end(hdr, hdr_len, start);
    if (end == start) { /* the empty line that ends the header block */
      *pos = hdr_len;
      return 0;
    }
    size_t first_end = end;
    size_t next = end < hdr_len ? end + 2 : hdr_len;
    while (next < hdr_len && is_wsp(hdr[next])) {
      end = line_end(hdr, hdr_len, next);
      next = end < hdr_len ? end + 2 : hdr_len;
    }
    *pos = next;
    const char *s = hdr + start;
    if (is_wsp(s[0])) continue; /* a continuation with no field above it */
    const char *colon = memchr(s, ':', first_end - start);
    if (colon == NULL) continue; /* e.g. an mbox "From " line */
    size_t name_len = (size_t)(colon - s);
    while (name_len > 0 && is_wsp(s[name_len - 1])) name_len--;
    if (!name_ok(s, name_len)) continue;
    f->p = s;
    f->len = end - start;
    f->name_len = name_len;
    return 1;
  }
  return 0;
}

/* ---- relaxed canonicalisation ------------------------------------------------------- */

void rq_dkim_canon_header(struct rq_buf *out, const struct rq_dkim_field *f, int crlf) {
  /* The relaxed form is never longer than the field plus ':' and CRLF, so
   * reserve once and write in place. */
  rq_buf_reserve(out, f->len + 3);
  char *w = out->data + out->len;
  const char *p = f->p;
  for (size_t i = 0; i < f->name_len; i++) *w++ = lower(p[i]);
  *w++ = ':';
  const char *colon = memchr(p + f->name_len, ':', f->len - f->name_len);
  size_t i = colon ? (size_t)(colon - p) + 1 : f->len;
  int started = 0, wsp = 0;
  for (; i < f->len; i++) {
    char c = p[i];
    if (c == '\r' && i + 1 < f->len && p[i + 1] == '\n') { /* unfold */
      i++;
      continue;
    }
    if (is_wsp(c)) {
      wsp = 1;
      continue;
    }
    if (wsp && started) *w++ = ' ';
    wsp = 0;
    started = 1;
    *w++ = c;
  }
  if (crlf) {
    *w++ = '\r';
    *w++ = '\n';
  }
  out->len = (size_t)(w - out->data);
  out->data[out->len] = '\0';
}

/* The body's canonical bytes are batched in st->buf so the sink (a digest
 * update) sees few large calls rather than one per word. */
static void body_flush(struct rq_dkim_body *st) {
  if (st->n) st->sink(st->arg, st->buf, st->n);
  st->n = 0;
}

static void body_put(struct rq_dkim_body *st, const char *p, size_t n) {
  if (n > sizeof st->buf - st->n) {
    body_flush(st);
    if (n >= sizeof st->buf) {
      st->sink(st->arg, p, n);
      return;
    }
  }
  memcpy(st->buf + st->n, p, n);
  st->n += n;
}

void rq_dkim_body_init(struct rq_dkim_body *st, rq_dkim_sink sink, void *arg) {
  memset(st, 0, sizeof *st);
  st->sink = sink;
  st->arg = arg;
}

/* Content on the current line: held-back empty lines count now, and a
 * WSP run before it becomes one SP. */
static void body_content(struct rq_dkim_body *st) {
  if (!st->has) {
    for (; st->empty > 0; st->empty--) body_put(st, "\r\n", 2);
    st->has = 1;
  }
  if (st->wsp) body_put(st, " ", 1);
  st->wsp = 0;
}

/* A line ends (its CRLF seen): WSP before it is dropped. */
static void body_eol(struct rq_dkim_body *st) {
  if (st->has) body_put(st, "\r\n", 2);
  else st->empty++;
  st->has = st->wsp = 0;
}

void rq_dkim_body_feed(struct rq_dkim_body *st, const char *p, size_t len) {
  size_t i = 0;
  while (i < len) {
    char c = p[i];
    if (st->cr) { /* a CR ended the last chunk or byte: CRLF, or a bare CR (content) */
      st->cr = 0;
      if (c == '\n') {
        body_eol(st);
        i++;
        continue;
      }
      body_content(st);
      body_put(st, "\r", 1);
      continue; /* c again, as itself */
    }
    if (c == '\r') {
      st->cr = 1;
      i++;
      continue;
    }
    if (is_wsp(c)) {
      st->wsp = 1;
      i++;
      continue;
    }
    body_content(st);
    /* A span of ordinary bytes (a bare LF is one of them). */
    size_t j = i + 1;
    while (j < len && !is_wsp(p[j]) && p[j] != '\r') j++;
    body_put(st, p + i, j - i);
    i = j;
  }
}

void rq_dkim_body_end(struct rq_dkim_body *st) {
  if (st->cr) { /* a CR at the very end is content */
    st->cr = 0;
    body_content(st);
    body_put(st, "\r", 1);
  }
  /* A last line without CRLF gets one when it has content (RFC 6376
   * 3.4.4); empty lines at the end are dropped (they were held back). */
  if (st->has) body_put(st, "\r\n", 2);
  st->has = st->wsp = 0;
  st->empty = 0;
  body_flush(st);
}

void rq_dkim_canon_body(const char *body, size_t len, rq_dkim_sink sink, void *arg) {
  struct rq_dkim_body st;
  rq_dkim_body_init(&st, sink, arg);
  rq_dkim_body_feed(&st, body, len);
  rq_dkim_body_end(&st);
}

/* ---- h= ------------------------------------------------------------------------------- */

static int name_is(const struct rq_dkim_field *f, const char *name, size_t n) {
  return f->name_len == n && strncasecmp(f->p, name, n) == 0;
}

static size_t count_fields(const char *hdr, size_t hdr_len, const char *name, size_t n) {
  size_t pos = 0, c = 0;
  struct rq_dkim_field f;
  while (rq_dkim_field_next(hdr, hdr_len, &pos, &f))
    if (name_is(&f, name, n)) c++;
  return c;
}

size_t rq_dkim_header_list(const char *hdr, size_t hdr_len, const struct rq_dkim_hname *names, size_t n_names,
                           struct rq_buf *h) {
  size_t entries = 0;
  for (size_t k = 0; k < n_names; k++) {
    size_t n = strlen(names[k].name);
    size_t c = count_fields(hdr, hdr_len, names[k].name, n);
    if (c > RQ_DKIM_MAX_INSTANCES) c = RQ_DKIM_MAX_INSTANCES;
    if (names[k].oversign) c++;
    for (size_t i = 0; i < c; i++) {
      if (entries++) rq_buf_putc(h, ':');
      rq_buf_append(h, names[k].name, n);
    }
  }
  return entries;
}

static int is_fws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* The next entry of a colon-separated h= list, FWS trimmed; 0 at the end. */
static int next_name(const char *h, size_t h_len, size_t *pos, const char **name, size_t *n) {
  if (*pos > h_len) return 0;
  const char *s = h + *pos;
  const char *colon = memchr(s, ':', h_len - *pos);
  size_t len = colon ? (size_t)(colon - s) : h_len - *pos;
  *pos += len + 1; /* past the colon; past h_len at the end */
  while (len > 0 && is_fws(s[0])) s++, len--;
  while (len > 0 && is_fws(s[len - 1])) len--;
  *name = s;
  *n = len;
  return 1;
}

void rq_dkim_canon_signed(const char *hdr, size_t hdr_len, const char *h, size_t h_len, struct rq_buf *out) {
  size_t pos = 0;
  for (;;) {
    size_t start = pos;
    const char *name;
    size_t n;
    if (!next_name(h, h_len, &pos, &name, &n)) break;
    if (n == 0) continue;
    /* The entries before this one that name the same field have used up
     * that many instances, counted from the bottom. */
    size_t used = 0, p2 = 0;
    const char *other;
    size_t on;
    while (p2 < start && next_name(h, h_len, &p2, &other, &on))
      if (on == n && strncasecmp(other, name, n) == 0) used++;
    size_t total = count_fields(hdr, hdr_len, name, n);
    if (used >= total) continue; /* none left: it stands for an absent field */
    size_t want = total - 1 - used, seen = 0, fp = 0;
    struct rq_dkim_field f;
    while (rq_dkim_field_next(hdr, hdr_len, &fp, &f)) {
      if (name_is(&f, name, n) && seen++ == want) {
        rq_dkim_canon_header(out, &f, 1);
        break;
      }
    }
  }
}

/* ---- the DKIM-Signature header -------------------------------------------------------------- */

/* Appends a + b[0..blen) + c as one unbreakable token: on the current line
 * after a space (when space is 1) if it fits in RQ_DKIM_FOLD columns, else
 * on a new folded line. */
static void put_tok(struct rq_buf *out, size_t *col, int space, const char *a, const char *b, size_t blen,
                    const char *c) {
  size_t n = strlen(a) + blen + strlen(c);
  if (*col + (size_t)space + n > RQ_DKIM_FOLD && *col > 1) {
    rq_buf_append(out, "\r\n ", 3);
    *col = 1;
  } else if (space) {
    rq_buf_putc(out, ' ');
    (*col)++;
  }
  rq_buf_puts(out, a);
  rq_buf_append(out, b, blen);
  rq_buf_puts(out, c);
  *col += n;
}

size_t rq_dkim_sig_begin(struct rq_buf *out, const struct rq_dkim_tags *t) {
  size_t col = 0;
  char ts[24];
  snprintf(ts, sizeof ts, "%lld", (long long)t->time);
  rq_buf_puts(out, "DKIM-Signature:");
  col = strlen("DKIM-Signature:");
  put_tok(out, &col, 1, "v=", "1", 1, ";");
  put_tok(out, &col, 1, "a=", t->algo, strlen(t->algo), ";");
  put_tok(out, &col, 1, "c=", "relaxed/relaxed", strlen("relaxed/relaxed"), ";");
  put_tok(out, &col, 1, "d=", t->domain, strlen(t->domain), ";");
  put_tok(out, &col, 1, "s=", t->selector, strlen(t->selector), ";");
  put_tok(out, &col, 1, "t=", ts, strlen(ts), ";");
  /* h= may break after any colon (RFC 6376 3.5: FWS around the names). */
  size_t h_len = strlen(t->h), pos = 0;
  int first = 1;
  while (pos < h_len) {
    const char *colon = memchr(t->h + pos, ':', h_len - pos);
    size_t n = colon ? (size_t)(colon - (t->h + pos)) : h_len - pos;
    put_tok(out, &col, first, first ? "h=" : "", t->h + pos, n, colon ? ":" : ";");
    pos += n + 1;
    first = 0;
  }
  put_tok(out, &col, 1, "bh=", t->bh, strlen(t->bh), ";");
  /* b= starts a line of its own, so the signature reads as one block. */
  rq_buf_puts(out, "\r\n b=");
  return 3;
}

void rq_dkim_sig_end(struct rq_buf *out, size_t col, const char *b64) {
  size_t n = strlen(b64), i = 0;
  while (i < n) {
    if (col >= RQ_DKIM_FOLD) {
      rq_buf_append(out, "\r\n ", 3);
      col = 1;
    }
    size_t take = RQ_DKIM_FOLD - col;
    if (take > n - i) take = n - i;
    rq_buf_append(out, b64 + i, take);
    i += take;
    col += take;
  }
  rq_buf_append(out, "\r\n", 2);
}
