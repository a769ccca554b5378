/* msg: see msg.h. */
#include "msg.h"

#include <stdint.h>
#include <string.h>

#include <openssl/evp.h>

#include "encode.h"
#include "smtp_proto.h" /* rq_smtp_has_8bit: BODY=8BITMIME asks the same question */

enum { B64_IN = RQ_B64_LINE / 4 * 3, B64_OUT = RQ_B64_LINE + 2 }; /* 57 bytes in, 76 + CRLF out */

void rq_msg_init(struct rq_msg *m) {
  memset(m, 0, sizeof *m);
  rq_buf_init(&m->lit);
  m->seg = m->inline_seg;
  m->cap_seg = sizeof m->inline_seg / sizeof *m->inline_seg;
}

void rq_msg_free(struct rq_msg *m) {
  rq_buf_free(&m->lit);
  if (m->seg != m->inline_seg) free(m->seg);
  rq_msg_init(m);
}

void rq_msg_reset(struct rq_msg *m) {
  rq_buf_reset(&m->lit);
  m->n_seg = 0;
  m->open = 0;
  m->len = 0;
  m->has_8bit = 0;
}

size_t rq_msg_b64_len(size_t n) {
  if (n == 0) return 0;
  size_t full = n / B64_IN, rem = n % B64_IN;
  size_t out = full * B64_OUT + (rem ? 4 * ((rem + 2) / 3) + 2 : 0);
  return out - 2;
}

static struct rq_msg_seg *push(struct rq_msg *m) {
  if (m->n_seg == m->cap_seg) {
    m->cap_seg *= 2;
    if (m->seg == m->inline_seg) {
      m->seg = rq_xmalloc(m->cap_seg * sizeof *m->seg);
      memcpy(m->seg, m->inline_seg, sizeof m->inline_seg);
    } else {
      m->seg = rq_xrealloc(m->seg, m->cap_seg * sizeof *m->seg);
    }
  }
  struct rq_msg_seg *s = &m->seg[m->n_seg++];
  memset(s, 0, sizeof *s);
  return s;
}

static void close_lit(struct rq_msg *m) {
  if (m->lit.len == m->open) return;
  struct rq_msg_seg *s = push(m);
  s->kind = RQ_MSG_LIT;
  s->off = m->open;
  s->n = s->out_len = m->lit.len - m->open;
  m->open = m->lit.len;
}

void rq_msg_add_b64(struct rq_msg *m, const void *p, size_t n) {
  if (n == 0) return;
  close_lit(m);
  struct rq_msg_seg *s = push(m);
  s->kind = RQ_MSG_B64;
  s->src = p;
  s->n = n;
  s->out_len = rq_msg_b64_len(n);
}

/* Bytes p[0..n) read as with bare CR and bare LF made CRLF. */
static size_t crlf_len(const unsigned char *p, size_t n) {
  size_t out = n;
  for (size_t i = 0; i < n; i++) {
    if (p[i] == '\r') {
      if (i + 1 < n && p[i + 1] == '\n') i++;
      else out++;
    } else if (p[i] == '\n') {
      out++;
    }
  }
  return out;
}

void rq_msg_add_crlf(struct rq_msg *m, const void *p, size_t n) {
  if (n == 0) return;
  close_lit(m);
  struct rq_msg_seg *s = push(m);
  s->kind = RQ_MSG_CRLF;
  s->src = p;
  s->n = n;
  s->out_len = crlf_len(p, n);
}

void rq_msg_finish(struct rq_msg *m) {
  close_lit(m);
  m->len = 0;
  for (size_t i = 0; i < m->n_seg; i++) m->len += m->seg[i].out_len;
  /* base64 is ASCII: only the literal bytes can be 8-bit. */
  m->has_8bit = rq_smtp_has_8bit(m->lit.data ? m->lit.data : "", m->lit.len);
  for (size_t i = 0; i < m->n_seg && !m->has_8bit; i++)
    if (m->seg[i].kind == RQ_MSG_CRLF) m->has_8bit = rq_smtp_has_8bit((const char *)m->seg[i].src, m->seg[i].n);
}

void rq_msg_prepend(struct rq_msg *m, const void *p, size_t n) {
  if (n == 0) return;
  size_t off = m->lit.len;
  rq_buf_append(&m->lit, p, n);
  m->open = m->lit.len;
  push(m); /* room for one more, then shift everything up by one */
  memmove(&m->seg[1], &m->seg[0], (m->n_seg - 1) * sizeof *m->seg);
  m->seg[0] = (struct rq_msg_seg){.kind = RQ_MSG_LIT, .off = off, .n = n, .out_len = n};
  m->len += n;
  if (!m->has_8bit) m->has_8bit = rq_smtp_has_8bit(p, n);
}

const char *rq_msg_first_lit(const struct rq_msg *m, size_t *n) {
  if (m->n_seg == 0 || m->seg[0].kind != RQ_MSG_LIT) {
    *n = 0;
    return NULL;
  }
  *n = m->seg[0].n;
  return m->lit.data + m->seg[0].off;
}

void rq_msg_flatten(const struct rq_msg *m, struct rq_buf *out) {
  rq_buf_reserve(out, m->len);
  struct rq_msg_cursor c;
  rq_msg_cursor_init(&c, m);
  size_t n;
  while ((n = rq_msg_read(&c, out->data + out->len, out->cap - out->len - 1)) > 0) out->len += n;
  out->data[out->len] = '\0';
}

/* ---- reading ------------------------------------------------------------------ */

void rq_msg_cursor_init(struct rq_msg_cursor *c, const struct rq_msg *m) {
  memset(c, 0, sizeof *c);
  c->m = m;
}

/* Encodes the next line of s at c->in into dst (room for B64_OUT + 1: the
 * encoder writes a NUL after the characters); returns its length. The
 * segment's last line has no CRLF. */
static size_t b64_line(struct rq_msg_cursor *c, const struct rq_msg_seg *s, unsigned char *dst) {
  size_t chunk = s->n - c->in < B64_IN ? s->n - c->in : B64_IN;
  size_t w = (size_t)EVP_EncodeBlock(dst, s->src + c->in, (int)chunk);
  c->in += chunk;
  if (c->in < s->n) {
    dst[w++] = '\r';
    dst[w++] = '\n';
  }
  return w;
}

static size_t read_b64(struct rq_msg_cursor *c, const struct rq_msg_seg *s, char *out, size_t cap) {
  size_t n = 0;
  while (n < cap) {
    if (c->line_off < c->line_len) {
      size_t k = c->line_len - c->line_off;
      if (k > cap - n) k = cap - n;
      memcpy(out + n, c->line + c->line_off, k);
      c->line_off += k;
      n += k;
      continue;
    }
    if (c->in >= s->n) break;
    if (cap - n > B64_OUT) { /* a whole line fits, NUL included: straight into out */
      n += b64_line(c, s, (unsigned char *)out + n);
    } else {
      c->line_len = b64_line(c, s, c->line);
      c->line_off = 0;
    }
  }
  return n;
}

/* A line-end-normalised segment: runs of ordinary bytes copied, each bare
 * CR, bare LF or CRLF written as CRLF (the LF owed when out is full). */
static size_t read_crlf(struct rq_msg_cursor *c, const struct rq_msg_seg *s, char *out, size_t cap) {
  size_t n = 0;
  while (n < cap) {
    if (c->line_len) { /* the LF of a line end */
      out[n++] = '\n';
      c->line_len = 0;
      continue;
    }
    if (c->in >= s->n) break;
    const unsigned char *p = s->src + c->in;
    size_t avail = s->n - c->in, room = cap - n, k = 0;
    size_t lim = avail < room ? avail : room;
    while (k < lim && p[k] != '\r' && p[k] != '\n') k++;
    memcpy(out + n, p, k);
    n += k;
    c->in += k;
    if (k == lim) continue; /* out full, or the segment ends */
    /* A line end: CRLF, bare CR or bare LF, all written as CRLF. */
    c->in += p[k] == '\r' && k + 1 < avail && p[k + 1] == '\n' ? 2 : 1;
    out[n++] = '\r';
    c->line_len = 1;
  }
  return n;
}

size_t rq_msg_read(struct rq_msg_cursor *c, char *out, size_t cap) {
  const struct rq_msg *m = c->m;
  size_t n = 0;
  while (n < cap && c->seg < m->n_seg) {
    const struct rq_msg_seg *s = &m->seg[c->seg];
    size_t k;
    if (s->kind == RQ_MSG_LIT) {
      k = s->n - c->pos;
      if (k > cap - n) k = cap - n;
      memcpy(out + n, m->lit.data + s->off + c->pos, k);
    } else if (s->kind == RQ_MSG_B64) {
      k = read_b64(c, s, out + n, cap - n);
    } else {
      k = read_crlf(c, s, out + n, cap - n);
    }
    c->pos += k;
    n += k;
    if (c->pos == s->out_len) {
      c->seg++;
      c->pos = c->in = c->line_len = c->line_off = 0;
    }
  }
  c->total += n;
  return n;
}

const char *rq_msg_next(struct rq_msg_cursor *c, char *buf, size_t cap, size_t *len) {
  const struct rq_msg *m = c->m;
  if (c->seg >= m->n_seg) {
    *len = 0;
    return NULL;
  }
  const struct rq_msg_seg *s = &m->seg[c->seg];
  if (s->kind != RQ_MSG_LIT) {
    *len = rq_msg_read(c, buf, cap);
    return *len ? buf : NULL;
  }
  const char *p = m->lit.data + s->off + c->pos;
  *len = s->n - c->pos;
  c->total += *len;
  c->seg++;
  c->pos = c->in = c->line_len = c->line_off = 0;
  return p;
}

int rq_msg_seek(struct rq_msg_cursor *c, size_t off) {
  const struct rq_msg *m = c->m;
  if (off > m->len) return -1;
  rq_msg_cursor_init(c, m);
  c->total = off;
  size_t seg = 0;
  while (seg < m->n_seg && off >= m->seg[seg].out_len) off -= m->seg[seg++].out_len;
  c->seg = seg;
  if (seg == m->n_seg) return 0;
  const struct rq_msg_seg *s = &m->seg[seg];
  c->pos = off;
  if (s->kind == RQ_MSG_B64 && off > 0) {
    c->in = off / B64_OUT * B64_IN; /* the line off falls in */
    c->line_len = b64_line(c, s, c->line);
    c->line_off = off % B64_OUT;
  } else if (s->kind == RQ_MSG_CRLF && off > 0) {
    /* Output offsets do not map to input offsets: read up to off. */
    char skip[4096];
    size_t left = off;
    c->pos = 0;
    while (left > 0) {
      size_t k = read_crlf(c, s, skip, left < sizeof skip ? left : sizeof skip);
      c->pos += k;
      left -= k;
    }
  }
  return 0;
}
