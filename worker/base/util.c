/* util: allocation policy and rq_buf (see util.h). */
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void rq_oom(size_t n) {
  fprintf(stderr, "relayq-worker: out of memory allocating %zu bytes; "
                  "exiting (jobs in flight are reclaimed by other workers)\n", n);
  abort();
}

void *rq_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) rq_oom(n);
  return p;
}

void *rq_xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p) rq_oom(n * size);
  return p;
}

void *rq_xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) rq_oom(n);
  return q;
}

static size_t scopy(char *dst, size_t cap, const char *src) {
  size_t n = strlen(src);
  if (cap == 0) return n;
  size_t k = n < cap - 1 ? n : cap - 1;
  memcpy(dst, src, k);
  dst[k] = '\0';
  return n;
}

size_t rq_scat(char *dst, size_t cap, size_t at, const char *src) {
  if (at < cap) return at + scopy(dst + at, cap - at, src);
  return at + strlen(src);
}

char *rq_xstrdup(const char *s) { return s ? rq_xmemdup(s, strlen(s) + 1) : NULL; }

char *rq_xstrndup(const char *s, size_t n) {
  char *p = rq_xmalloc(n + 1);
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

void *rq_xmemdup(const void *p, size_t n) {
  void *q = rq_xmalloc(n);
  if (n) memcpy(q, p, n);
  return q;
}

void rq_freep(void *pp) {
  void **p = pp;
  free(*p);
  *p = NULL;
}

void rq_errf(char *err, size_t errlen, const char *fmt, ...) {
  if (err == NULL || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

void rq_buf_init(struct rq_buf *b) { b->data = NULL, b->len = 0, b->cap = 0; }

void rq_buf_free(struct rq_buf *b) {
  free(b->data);
  rq_buf_init(b);
}

void rq_buf_reset(struct rq_buf *b) {
  b->len = 0;
  if (b->data) b->data[0] = '\0';
}

void rq_buf_reserve(struct rq_buf *b, size_t extra) {
  size_t need = b->len + extra + 1;
  if (need <= b->cap) return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need) cap *= 2;
  b->data = rq_xrealloc(b->data, cap);
  b->cap = cap;
}

void rq_buf_append(struct rq_buf *b, const void *p, size_t n) {
  rq_buf_reserve(b, n);
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
}

void rq_buf_puts(struct rq_buf *b, const char *s) { rq_buf_append(b, s, strlen(s)); }

void rq_buf_putc(struct rq_buf *b, char c) { rq_buf_append(b, &c, 1); }

void rq_buf_vprintf(struct rq_buf *b, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  char small[256];
  int n = vsnprintf(small, sizeof small, fmt, ap);
  if (n < 0) {
    va_end(ap2);
    return;
  }
  if ((size_t)n < sizeof small) {
    rq_buf_append(b, small, (size_t)n);
  } else {
    rq_buf_reserve(b, (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    b->len += (size_t)n;
  }
  va_end(ap2);
}

void rq_buf_printf(struct rq_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  rq_buf_vprintf(b, fmt, ap);
  va_end(ap);
}

size_t rq_fmt_i64(char *dst, size_t cap, int64_t v) {
  if (cap == 0) return 0;
  char t[21];
  size_t n = 0;
  if (v < 0) t[n++] = '-';
  n += rq_fmt_u64(t + n, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
  size_t w = n < cap - 1 ? n : cap - 1;
  memcpy(dst, t, w);
  dst[w] = '\0';
  return w;
}

/* Written in place: every FINISH and CLAIM formats a dozen numbers. */
void rq_buf_put_i64(struct rq_buf *b, int64_t v) {
  rq_buf_reserve(b, 21);
  char *p = b->data + b->len;
  size_t n = 0;
  if (v < 0) p[n++] = '-';
  n += rq_fmt_u64(p + n, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
  b->len += n;
  b->data[b->len] = '\0';
}

char *rq_buf_steal(struct rq_buf *b, size_t *len) {
  if (!b->data) rq_buf_reserve(b, 0);
  char *d = b->data;
  if (len) *len = b->len;
  rq_buf_init(b);
  return d;
}
