/*
 * errors: names for RELAYQ_E* codes and the one function that fills a
 * struct relayq_error (libuv's UV_ERRNO_MAP pattern: the table in relayq.h
 * gives each code its name and message).
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

const char *relayq_strerror(int code) {
  switch (code) {
#define RELAYQ_ERR_CASE(name, num, msg) \
  case (num):                           \
    return (msg);
    RELAYQ_ERRNO_MAP(RELAYQ_ERR_CASE)
#undef RELAYQ_ERR_CASE
  default:
    return "unknown error";
  }
}

int relayq__fail(struct relayq_error *err, int code, const char *fmt, ...) {
  if (err == NULL) return code;
  err->code = code;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
  /* A message cut at 255 bytes still reads as a sentence start; mark it so
   * nobody mistakes a truncated field value for the whole value. */
  if (n >= (int)sizeof err->message)
    memcpy(err->message + sizeof err->message - 4, "...", 4);
  return code;
}

void relayq__error_clear(struct relayq_error *err) {
  if (err == NULL) return;
  err->code = 0;
  err->message[0] = '\0';
  err->id[0] = '\0';
  err->tenant[0] = '\0';
}
