/* json: the JSON string writer (see json.h). */
#include "json.h"

#include <string.h>

#include "internal.h"

/* Length of the valid UTF-8 sequence at p (n bytes left), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t n) {
  size_t want = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc0 ? 2 : 0;
  if (want == 0 || want > n) return 0;
  return relayq__utf8_valid((const char *)p, want) ? want : 0;
}

size_t relayq__json_str(char *dst, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *p = (const unsigned char *)s;
  char *o = dst;
  *o++ = '"';
  for (size_t i = 0; i < n;) {
    unsigned char c = p[i];
    if (c >= 0x80) {
      size_t l = utf8_seq(p + i, n - i);
      if (l == 0) {
        memcpy(o, "\\ufffd", 6), o += 6, i++;
      } else {
        memcpy(o, p + i, l), o += l, i += l;
      }
      continue;
    }
    i++;
    switch (c) {
    case '"': *o++ = '\\', *o++ = '"'; break;
    case '\\': *o++ = '\\', *o++ = '\\'; break;
    case '\n': *o++ = '\\', *o++ = 'n'; break;
    case '\r': *o++ = '\\', *o++ = 'r'; break;
    case '\t': *o++ = '\\', *o++ = 't'; break;
    default:
      if (c < 0x20 || c == 0x7f) {
        memcpy(o, "\\u00", 4);
        o[4] = hex[c >> 4], o[5] = hex[c & 15];
        o += 6;
      } else {
        *o++ = (char)c;
      }
    }
  }
  *o++ = '"';
  return (size_t)(o - dst);
}
