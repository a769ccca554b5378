/*
 * json_scan: one top-level string member of a JSON object (see json_scan.h
 * for why it is hand-written and what it promises).
 *
 * Every index stays within [0, n]; a helper that meets the end of the input
 * returns n (or n + 1 for a string that does not end, so the caller can
 * tell a cut string from a whole one) and every caller stops on i >= n.
 */
#include "json_scan.h"

#include <limits.h>
#include <string.h>

size_t rq_json_skip_ws(const char *b, size_t len, size_t i) {
  while (i < len && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n')) i++;
  return i;
}

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Four hex digits at b[i] into *out; 0 when they are not there. */
static int read_hex4(const char *b, size_t n, size_t i, unsigned *out) {
  unsigned v = 0;
  if (i + 4 > n) return 0;
  for (size_t k = 0; k < 4; k++) {
    int h = hexval((unsigned char)b[i + k]);
    if (h < 0) return 0;
    v = v << 4 | (unsigned)h;
  }
  *out = v;
  return 1;
}

/* UTF-8 of code point u into out (4 bytes of room); returns the length. */
static size_t utf8_put(unsigned u, unsigned char *out) {
  if (u < 0x80) {
    out[0] = (unsigned char)u;
    return 1;
  }
  if (u < 0x800) {
    out[0] = (unsigned char)(0xC0 | u >> 6);
    out[1] = (unsigned char)(0x80 | (u & 0x3F));
    return 2;
  }
  if (u < 0x10000) {
    out[0] = (unsigned char)(0xE0 | u >> 12);
    out[1] = (unsigned char)(0x80 | ((u >> 6) & 0x3F));
    out[2] = (unsigned char)(0x80 | (u & 0x3F));
    return 3;
  }
  out[0] = (unsigned char)(0xF0 | u >> 18);
  out[1] = (unsigned char)(0x80 | ((u >> 12) & 0x3F));
  out[2] = (unsigned char)(0x80 | ((u >> 6) & 0x3F));
  out[3] = (unsigned char)(0x80 | (u & 0x3F));
  return 4;
}

/* Decodes the JSON string whose opening quote is at b[i]. Writes whole
 * characters while they fit in dst[0..cap) (dst may be NULL) and stops
 * writing at the first that does not, so no character is dropped from the
 * middle; *dlen is what was written, *need what the whole string decodes to
 * (so a caller can tell a cut). Returns the index after the closing quote,
 * or n + 1 when the string does not end (the body was cut). Invalid escapes
 * and lone surrogates decode as '?'; a backslash cut from its escape stays
 * a backslash. */
static size_t decode_string(const char *b, size_t n, size_t i, char *dst, size_t cap, size_t *dlen,
                            size_t *need) {
  *dlen = *need = 0;
  for (i++; i < n; i++) {
    unsigned char out[4];
    size_t k = 1;
    unsigned char c = (unsigned char)b[i];
    if (c == '"') return i + 1;
    out[0] = c; /* also a backslash the cut left without its escape */
    if (c == '\\' && i + 1 < n) {
      out[0] = '?';
      switch (b[++i]) {
      case '"': case '\\': case '/': out[0] = (unsigned char)b[i]; break;
      case 'b': out[0] = '\b'; break;
      case 'f': out[0] = '\f'; break;
      case 'n': out[0] = '\n'; break;
      case 'r': out[0] = '\r'; break;
      case 't': out[0] = '\t'; break;
      case 'u': {
        unsigned u, lo;
        if (!read_hex4(b, n, i + 1, &u)) break;
        i += 4;
        if (u >= 0xD800 && u <= 0xDBFF && i + 6 < n && b[i + 1] == '\\' && b[i + 2] == 'u' &&
            read_hex4(b, n, i + 3, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
          u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
          i += 6;
        } else if (u >= 0xD800 && u <= 0xDFFF) {
          break; /* a lone surrogate is no character */
        }
        k = utf8_put(u, out);
        break;
      }
      default: break;
      }
    }
    if (dst && *dlen == *need && *dlen + k <= cap) {
      memcpy(dst + *dlen, out, k);
      *dlen += k;
    }
    *need += k;
  }
  return n + 1;
}

/* Skips the value at b[i] (after white space) and returns the index after
 * it, or n (n + 1 for a cut string) when the input ends first or holds no
 * value there. Brackets are counted, not matched: a value this module
 * skips is never read, only stepped over. */
static size_t skip_value(const char *b, size_t n, size_t i) {
  size_t depth = 0, dl, need, start;
  i = start = rq_json_skip_ws(b, n, i);
  while (i < n) {
    char c = b[i];
    if (c == '"') {
      i = decode_string(b, n, i, NULL, 0, &dl, &need);
      if (depth == 0) return i;
      continue;
    }
    if (c == '{' || c == '[') {
      depth++;
    } else if (c == '}' || c == ']') {
      /* At depth 0 this ends the enclosing object after a scalar
       * ("1}"), or stands where a value should be ("}"). */
      if (depth == 0) return i > start ? i : n;
      if (--depth == 0) return i + 1;
    } else if (depth == 0 && (c == ',' || c == ':' || c == ' ' || c == '\t' || c == '\r' || c == '\n')) {
      return i > start ? i : n; /* the end of a number, true, false or null */
    }
    i++;
  }
  return n;
}

int rq_json_top_string(const char *body, size_t len, const char *key, char *dst, size_t cap,
                       int *cut) {
  size_t klen, i, room, dl, need;
  if (dst && cap) dst[0] = '\0';
  if (cut) *cut = 0;
  if (!key || !body) return RQ_JSON_ABSENT;
  klen = strlen(key);
  if (klen > RQ_JSON_KEY_MAX) return RQ_JSON_ABSENT;
  if (cap > INT_MAX) cap = INT_MAX; /* so the length fits the int result */
  room = cap ? cap - 1 : 0;         /* one byte for the NUL */

  i = rq_json_skip_ws(body, len, 0);
  if (i >= len || body[i] != '{') return RQ_JSON_ABSENT;
  i = rq_json_skip_ws(body, len, i + 1);
  while (i < len) {
    char name[RQ_JSON_KEY_MAX + 1];
    size_t nl, nneed;
    if (body[i] != '"') return RQ_JSON_ABSENT; /* "}" (empty object) ends here too */
    i = decode_string(body, len, i, name, sizeof name, &nl, &nneed);
    i = rq_json_skip_ws(body, len, i);
    if (i >= len || body[i] != ':') return RQ_JSON_ABSENT;
    i = rq_json_skip_ws(body, len, i + 1);
    if (i >= len) return RQ_JSON_ABSENT;
    /* A name longer than name[] decodes as a prefix: the whole decoded
     * length must match too, so "identity" is not "id". */
    if (body[i] == '"' && nneed == klen && nl == klen && memcmp(name, key, klen) == 0) {
      i = decode_string(body, len, i, dst, dst ? room : 0, &dl, &need);
      if (i > len) { /* the body ends inside the string */
        if (!cut) dl = 0; /* half a string is no value */
        else *cut = 1;
      }
      if (dst && cap) dst[dl] = '\0';
      return i > len && !cut ? RQ_JSON_ABSENT : (int)dl;
    }
    i = rq_json_skip_ws(body, len, skip_value(body, len, i));
    if (i >= len || body[i] != ',') return RQ_JSON_ABSENT;
    i = rq_json_skip_ws(body, len, i + 1);
  }
  return RQ_JSON_ABSENT;
}

/* Digits (then an optional fraction or exponent, ignored) at b[i]. */
static int read_uint(const char *b, size_t n, size_t i, long long *out) {
  long long v = 0;
  size_t start = i;
  while (i < n && b[i] >= '0' && b[i] <= '9') {
    if (v > 1000000000000000LL) return RQ_JSON_ABSENT;
    v = v * 10 + (b[i] - '0');
    i++;
  }
  if (i == start) return RQ_JSON_ABSENT;
  *out = v;
  return 0;
}

int rq_json_top_int(const char *body, size_t len, const char *key, long long *out) {
  char digits[24];
  int cut = 0;
  int n = rq_json_top_string(body, len, key, digits, sizeof digits, &cut);
  if (n > 0 && !cut) {
    long long v;
    if (read_uint(digits, (size_t)n, 0, &v) == 0 && strspn(digits, "0123456789") == (size_t)n) {
      *out = v;
      return 0;
    }
    return RQ_JSON_ABSENT;
  }
  /* Not a string: find the member and read the number that follows. */
  size_t klen = key ? strlen(key) : 0, i, nl, nneed;
  if (!key || !body || klen > RQ_JSON_KEY_MAX) return RQ_JSON_ABSENT;
  i = rq_json_skip_ws(body, len, 0);
  if (i >= len || body[i] != '{') return RQ_JSON_ABSENT;
  i = rq_json_skip_ws(body, len, i + 1);
  while (i < len) {
    char name[RQ_JSON_KEY_MAX + 1];
    if (body[i] != '"') return RQ_JSON_ABSENT;
    i = decode_string(body, len, i, name, sizeof name, &nl, &nneed);
    i = rq_json_skip_ws(body, len, i);
    if (i >= len || body[i] != ':') return RQ_JSON_ABSENT;
    i = rq_json_skip_ws(body, len, i + 1);
    if (i >= len) return RQ_JSON_ABSENT;
    if (nneed == klen && nl == klen && memcmp(name, key, klen) == 0) return read_uint(body, len, i, out);
    i = rq_json_skip_ws(body, len, skip_value(body, len, i));
    if (i >= len || body[i] != ',') return RQ_JSON_ABSENT;
    i = rq_json_skip_ws(body, len, i + 1);
  }
  return RQ_JSON_ABSENT;
}
