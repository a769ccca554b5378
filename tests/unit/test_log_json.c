/*
 * Unit tests for worker/base/log's JSON string writer (rq_json_str), which
 * copies runs of plain bytes at once: the same text as escaping one byte
 * at a time, for every byte value in every position of a run.
 */
#include "check.h"
#include "log.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

/* The reference: one byte at a time. */
static void reference(struct rq_buf *b, const char *s) {
  rq_buf_putc(b, '"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
    case '"': rq_buf_puts(b, "\\\""); break;
    case '\\': rq_buf_puts(b, "\\\\"); break;
    case '\n': rq_buf_puts(b, "\\n"); break;
    case '\r': rq_buf_puts(b, "\\r"); break;
    case '\t': rq_buf_puts(b, "\\t"); break;
    default:
      if (*p < 0x20 || *p == 0x7f) rq_buf_printf(b, "\\u%04x", *p);
      else rq_buf_putc(b, (char)*p);
    }
  }
  rq_buf_putc(b, '"');
}

static void same(const char *s) {
  struct rq_buf want, got;
  rq_buf_init(&want);
  rq_buf_init(&got);
  reference(&want, s);
  rq_json_str(&got, s);
  CHECK_INT(got.len, ==, want.len);
  CHECK_MEM(got.data, want.data, want.len);
  rq_buf_free(&want);
  rq_buf_free(&got);
}

int main(void) {
  same("");
  same("plain ascii text");
  same("\"quoted\" and \\back\\slash");
  same("line\nbreak\r\n\ttab");
  same("\"");
  same("\x01\x1f\x7f end");
  same("utf-8: \xc3\xa9t\xc3\xa9 \xe2\x82\xac");
  char s[8];
  for (int c = 1; c < 256; c++) {
    for (int pos = 0; pos < 3; pos++) {
      memcpy(s, "abc", 4);
      s[pos] = (char)c;
      same(s);
    }
    s[0] = (char)c, s[1] = '\0';
    same(s);
  }
  return CHECK_DONE();
}
