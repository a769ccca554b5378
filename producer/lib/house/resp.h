/*
 * resp: Redis commands as RESP2 (an array of bulk strings), written by
 * hand into the caller's memory. The one writer of the project: the
 * producer's enqueue (enqueue.c) and the worker's connection
 * (worker/rconn.c) both send their commands this way rather than through
 * hiredis' formatter, which spends a printf per argument and copies each
 * command twice (docs/performance.md). Replies are still read by hiredis.
 *
 * Inline: the worker writes every command through here, two headers per
 * argument. librelayq's house API (producer/lib/CMakeLists.txt): for the
 * library, the worker and the CLI; not installed.
 */
#ifndef RELAYQ_RESP_H
#define RELAYQ_RESP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* An array or bulk-string header: a mark, at most 20 digits, CRLF. */
#define RELAYQ__RESP_HEAD_MAX 23

/* v in decimal at dst, not terminated (at most 20 characters); returns
 * the length. */
static inline size_t relayq__u64_dec(char *dst, uint64_t v) {
  char t[20];
  size_t n = 0;
  do t[n++] = (char)('0' + v % 10);
  while ((v /= 10) != 0);
  for (size_t i = 0; i < n; i++) dst[i] = t[n - 1 - i];
  return n;
}

/* "<mark><n>\r\n" at dst ('*' an array of n, '$' a string of n bytes);
 * returns the length (at most RELAYQ__RESP_HEAD_MAX). */
static inline size_t relayq__resp_head(char *dst, char mark, uint64_t n) {
  size_t k = 1 + relayq__u64_dec(dst + 1, n);
  dst[0] = mark;
  dst[k] = '\r', dst[k + 1] = '\n';
  return k + 2;
}

/* One bulk string: header, the n bytes of s, CRLF; needs
 * RELAYQ__RESP_HEAD_MAX + n + 2 bytes at dst. Returns the length. */
static inline size_t relayq__resp_bulk(char *dst, const void *s, size_t n) {
  size_t k = relayq__resp_head(dst, '$', n);
  memcpy(dst + k, s, n);
  dst[k + n] = '\r', dst[k + n + 1] = '\n';
  return k + n + 2;
}

/* Bytes that relayq__resp_command may write for these arguments (argvlen
 * NULL: each argv[i] is a C string). */
static inline size_t relayq__resp_bound(int argc, const char *const *argv, const size_t *argvlen) {
  size_t total = RELAYQ__RESP_HEAD_MAX;
  for (int i = 0; i < argc; i++) total += RELAYQ__RESP_HEAD_MAX + (argvlen ? argvlen[i] : strlen(argv[i])) + 2;
  return total;
}

/* The whole command at dst (room for relayq__resp_bound); returns its
 * length. */
static inline size_t relayq__resp_command(char *dst, int argc, const char *const *argv, const size_t *argvlen) {
  size_t k = relayq__resp_head(dst, '*', (uint64_t)argc);
  for (int i = 0; i < argc; i++) k += relayq__resp_bulk(dst + k, argv[i], argvlen ? argvlen[i] : strlen(argv[i]));
  return k;
}

#endif
