/*
 * util: the worker's allocation policy and growable byte buffer.
 *
 * The daemon aborts on out-of-memory in exactly one place (rq_oom): a job
 * it held stays in its inflight list and is reclaimed, so nothing is lost.
 * librelayq, by contrast, returns RELAYQ_ENOMEM.
 */
#ifndef RQ_UTIL_H
#define RQ_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "resp.h"

void *rq_xmalloc(size_t n);
void *rq_xcalloc(size_t n, size_t size);
void *rq_xrealloc(void *p, size_t n);
char *rq_xstrdup(const char *s);
char *rq_xstrndup(const char *s, size_t n);
void *rq_xmemdup(const void *p, size_t n);
/* Appends src at dst[at] (what fits; terminated when cap > 0): chains
 * copies without printf, n = rq_scat(d, cap, rq_scat(d, cap, 0, a), b);
 * returns at + strlen(src), the length the whole string needs (what
 * snprintf("%s%s") returns). */
size_t rq_scat(char *dst, size_t cap, size_t at, const char *src);
/* Frees *p and sets it to NULL. */
void rq_freep(void *pp);
/* Writes a formatted message into a caller's error buffer (cut to
 * errlen); err NULL or errlen 0: nothing, for callers that want none. */
void rq_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A growable byte buffer. Owns data; data is always NUL-terminated (the
 * NUL is not counted in len) so text can be used as a C string. */
struct rq_buf {
  char *data;
  size_t len;
  size_t cap;
};

void rq_buf_init(struct rq_buf *b);
void rq_buf_free(struct rq_buf *b);
void rq_buf_reset(struct rq_buf *b); /* len = 0, keeps memory */
void rq_buf_reserve(struct rq_buf *b, size_t extra);
void rq_buf_append(struct rq_buf *b, const void *p, size_t n);
void rq_buf_puts(struct rq_buf *b, const char *s);
void rq_buf_putc(struct rq_buf *b, char c);
void rq_buf_printf(struct rq_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void rq_buf_vprintf(struct rq_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Hands the data to the caller (malloc'd, NUL-terminated) and resets b. */
char *rq_buf_steal(struct rq_buf *b, size_t *len);

/* v in decimal at dst, not terminated (at most 20 characters); returns the
 * length. librelayq's digit writer (resp.h), the one the RESP headers use. */
static inline size_t rq_fmt_u64(char *dst, uint64_t v) { return relayq__u64_dec(dst, v); }
/* src into dst (cap > 0 bytes), cut to fit and terminated; returns the
 * length copied. snprintf("%s") costs ten times this on the hot path. */
static inline size_t rq_copy(char *dst, size_t cap, const char *src) {
  size_t n = strlen(src);
  if (n >= cap) n = cap - 1;
  memcpy(dst, src, n);
  dst[n] = '\0';
  return n;
}

/* v in decimal, NUL-terminated, truncated to cap - 1 characters; returns
 * the length written. The hot path formats a dozen numbers per message,
 * and snprintf costs about 800 instructions each (bench --callgrind). */
size_t rq_fmt_i64(char *dst, size_t cap, int64_t v);
/* Appends v in decimal. */
void rq_buf_put_i64(struct rq_buf *b, int64_t v);

#endif
