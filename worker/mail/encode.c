/* encode: mail encodings and header folding (see encode.h). */
#include "encode.h"

#include <openssl/evp.h>
#include <string.h>

static const char hexdig[] = "0123456789ABCDEF";

/* An ASCII word longer than this cannot be folded (folding happens only at
 * whitespace), so it is encoded instead; with the header name and one
 * separator the line still stays under RQ_LINE_MAX. */
#define TOKEN_MAX 900
/* Whitespace runs longer than this are written as one space. */
#define WS_MAX 64
/* Smallest encoded-word worth starting on a line: 12 octets of
 * "=?UTF-8?Q?" and "?=" plus one 4-byte character in Q (12 octets). Every
 * word is given at least this much room, so each one carries a character. */
#define EW_OVERHEAD 12
#define EW_MIN (EW_OVERHEAD + 12)
/* Payload of one RFC 2231 section; with " filename*NN*=" and ";" the
 * line stays under 78. */
#define PARAM_SECTION 50

/* ---- UTF-8 ----------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at s, or 0 when it is not one
 * (RFC 3629 section 4 table). */
static size_t utf8_seq(const unsigned char *p, size_t n) {
  if (n == 0) return 0;
  unsigned c = p[0];
  if (c < 0x80) return 1;
  size_t len;
  unsigned lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) len = 2;
  else if (c == 0xE0) len = 3, lo = 0xA0;
  else if (c >= 0xE1 && c <= 0xEC) len = 3;
  else if (c == 0xED) len = 3, hi = 0x9F; /* no surrogates */
  else if (c >= 0xEE && c <= 0xEF) len = 3;
  else if (c == 0xF0) len = 4, lo = 0x90;
  else if (c >= 0xF1 && c <= 0xF3) len = 4;
  else if (c == 0xF4) len = 4, hi = 0x8F; /* nothing above U+10FFFF */
  else return 0;
  if (len > n || p[1] < lo || p[1] > hi) return 0;
  for (size_t i = 2; i < len; i++)
    if (p[i] < 0x80 || p[i] > 0xBF) return 0;
  return len;
}

int rq_is_ascii(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] >= 0x80) return 0;
  return 1;
}

int rq_utf8_valid(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    if (p[i] < 0x80) {
      i++;
      continue;
    }
    size_t l = utf8_seq(p + i, n - i);
    if (l == 0) return 0;
    i += l;
  }
  return 1;
}

size_t rq_utf8_char_len(const char *s, size_t n) {
  if (n == 0) return 0;
  size_t l = utf8_seq((const unsigned char *)s, n);
  return l ? l : 1;
}

/* ---- base64 ---------------------------------------------------------------- */

void rq_b64_lines(const void *p, size_t n, struct rq_buf *out) {
  enum { IN_LINE = RQ_B64_LINE / 4 * 3 }; /* 57 input bytes per line */
  if (n == 0) return;
  size_t lines = (n + IN_LINE - 1) / IN_LINE;
  rq_buf_reserve(out, 4 * ((n + 2) / 3) + 2 * lines);
  const unsigned char *in = p;
  /* EVP_EncodeBlock writes one line's characters and a NUL straight into
   * the reserved space; the CRLF then overwrites that NUL. */
  for (size_t off = 0; off < n; off += IN_LINE) {
    size_t chunk = n - off < IN_LINE ? n - off : IN_LINE;
    int w = EVP_EncodeBlock((unsigned char *)out->data + out->len, in + off, (int)chunk);
    out->len += (size_t)w;
    out->data[out->len++] = '\r';
    out->data[out->len++] = '\n';
  }
  out->data[out->len] = '\0';
}

/* ---- quoted-printable ------------------------------------------------------- */

void rq_qp_encode(const char *s, size_t n, struct rq_buf *out) {
  /* Encoded into a stack chunk and flushed, so the per-byte work is plain
   * stores rather than a buffer call each. */
  char chunk[4096];
  size_t cl = 0, col = 0;
  rq_buf_reserve(out, n + n / 16 + 16);
  for (size_t i = 0; i < n; i++) {
    if (cl > sizeof chunk - 8) {
      rq_buf_append(out, chunk, cl);
      cl = 0;
    }
    unsigned char c = (unsigned char)s[i];
    if (c == '\r' || c == '\n') {
      if (c == '\r' && i + 1 < n && s[i + 1] == '\n') i++;
      chunk[cl++] = '\r';
      chunk[cl++] = '\n';
      col = 0;
      continue;
    }
    int last = i + 1 == n || s[i + 1] == '\r' || s[i + 1] == '\n';
    /* RFC 2045 6.7 rules (2) and (3): printable ASCII but '=' goes as is;
     * whitespace only when something follows it on the line. */
    int lit = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !last);
    size_t w = lit ? 1 : 3;
    /* Rule (5): 76 characters a line, the soft break's '=' included. The
     * last token of a line needs no soft break after it, so it may use
     * column 76. */
    if (col + w > (last ? 76u : 75u)) {
      chunk[cl++] = '=';
      chunk[cl++] = '\r';
      chunk[cl++] = '\n';
      col = 0;
    }
    if (lit) {
      chunk[cl++] = (char)c;
    } else {
      chunk[cl++] = '=';
      chunk[cl++] = hexdig[c >> 4];
      chunk[cl++] = hexdig[c & 15];
    }
    col += w;
  }
  rq_buf_append(out, chunk, cl);
}

/* ---- folding --------------------------------------------------------------- */

void rq_fold_init(struct rq_fold *f, struct rq_buf *out, size_t header_name_len) {
  f->out = out;
  f->col = header_name_len + 2; /* "Name: " */
  f->started = 0;
}

void rq_fold_space(struct rq_fold *f, const char *ws, size_t ws_len, size_t need) {
  int may_break = f->started || ws_len > 0;
  if (may_break && f->col + ws_len + need > RQ_FOLD_WIDTH && f->col > 1) {
    rq_buf_append(f->out, "\r\n", 2);
    f->col = 0;
    if (ws_len == 0) ws = " ", ws_len = 1; /* a folded line starts with WSP */
  }
  rq_buf_append(f->out, ws, ws_len);
  f->col += ws_len;
}

void rq_fold_put(struct rq_fold *f, const char *p, size_t n) {
  rq_buf_append(f->out, p, n);
  f->col += n;
  f->started = 1;
}

void rq_fold_token(struct rq_fold *f, const char *ws, size_t ws_len,
                   const char *p, size_t n) {
  rq_fold_space(f, ws, ws_len, n);
  rq_fold_put(f, p, n);
}

/* ---- RFC 2047 encoded-words -------------------------------------------------- */

/* RFC 2047 5(3): in a phrase, Q may leave only letters, digits and
 * "!*+-/" unencoded; using that everywhere keeps one alphabet valid in
 * Subject, display names and quoted parameter values alike. */
static int q_plain(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '!' || c == '*' || c == '+' || c == '-' || c == '/';
}

static size_t q_cost(unsigned char c) { return q_plain(c) || c == ' ' ? 1 : 3; }

static size_t q_len(const char *s, size_t n) {
  size_t l = 0;
  for (size_t i = 0; i < n; i++) l += q_cost((unsigned char)s[i]);
  return l;
}

/* Writes one encoded-word of at most cap (>= EW_MIN) octets holding as many
 * whole characters of s as fit. Returns the number of input bytes used. */
static size_t put_word(struct rq_fold *f, const char *s, size_t n, int use_q, size_t cap) {
  size_t payload = cap - EW_OVERHEAD, used = 0, enc = 0;
  while (used < n) {
    size_t cl = rq_utf8_char_len(s + used, n - used), e;
    if (use_q) {
      e = enc;
      for (size_t k = 0; k < cl; k++) e += q_cost((unsigned char)s[used + k]);
    } else {
      e = 4 * ((used + cl + 2) / 3);
    }
    if (e > payload) break;
    enc = e;
    used += cl;
  }
  /* When the text goes on in another word, end this one after a space if
   * that keeps it at least half full: a decoder that wrongly keeps the
   * whitespace between encoded-words (Python's address parser does) then
   * shows a doubled space instead of a word cut in two. */
  if (used < n) {
    size_t k = used;
    while (k > used / 2 && s[k - 1] != ' ') k--;
    if (k > used / 2 && k < used) {
      used = k;
      enc = use_q ? q_len(s, used) : 4 * ((used + 2) / 3);
    }
  }
  struct rq_buf *out = f->out;
  rq_buf_reserve(out, EW_OVERHEAD + enc);
  rq_buf_append(out, use_q ? "=?UTF-8?Q?" : "=?UTF-8?B?", 10);
  if (use_q) {
    char *d = out->data + out->len;
    for (size_t i = 0; i < used; i++) {
      unsigned char c = (unsigned char)s[i];
      if (c == ' ') {
        *d++ = '_';
      } else if (q_plain(c)) {
        *d++ = (char)c;
      } else {
        *d++ = '=';
        *d++ = hexdig[c >> 4];
        *d++ = hexdig[c & 15];
      }
    }
    out->len += enc;
  } else {
    out->len += (size_t)EVP_EncodeBlock((unsigned char *)out->data + out->len,
                                        (const unsigned char *)s, (int)used);
  }
  rq_buf_append(out, "?=", 2);
  f->col += EW_OVERHEAD + enc;
  f->started = 1;
  return used;
}

void rq_fold_words(struct rq_fold *f, const char *ws, size_t ws_len,
                   const char *text, size_t n) {
  size_t qrem = q_len(text, n);
  int use_q = qrem <= 4 * ((n + 2) / 3);
  size_t i = 0;
  int first = 1;
  while (i < n) {
    const char *sep = first ? ws : " ";
    size_t sep_len = first ? ws_len : 1;
    size_t avail = RQ_FOLD_WIDTH > f->col + sep_len ? RQ_FOLD_WIDTH - f->col - sep_len : 0;
    /* What is left would fit one word on a fresh line but not here: break
     * rather than split, since every extra word is a place where decoders
     * disagree about whitespace (Python's address parser keeps a space
     * between adjacent encoded-words that RFC 2047 6.2 says to drop). */
    size_t whole = EW_OVERHEAD + (use_q ? qrem : 4 * ((n - i + 2) / 3));
    int fits_fresh = whole <= RQ_EW_MAX && whole + (sep_len ? sep_len : 1) <= RQ_FOLD_WIDTH;
    /* Never break right after the field name: some parsers (Python's
     * email) then keep the folding space as part of the value. */
    int may_break = (f->started || sep_len > 0) && f->col > sep_len;
    if (may_break && (avail < EW_MIN || (fits_fresh && whole > avail))) {
      rq_buf_append(f->out, "\r\n", 2);
      f->col = 0;
      if (sep_len == 0) sep = " ", sep_len = 1; /* a folded line starts with WSP */
      avail = RQ_FOLD_WIDTH - sep_len;
    }
    rq_buf_append(f->out, sep, sep_len);
    f->col += sep_len;
    size_t cap = avail < RQ_EW_MAX ? avail : RQ_EW_MAX;
    if (cap < EW_MIN) cap = EW_MIN;
    size_t used = put_word(f, text + i, n - i, use_q, cap);
    if (use_q) qrem -= q_len(text + i, used);
    i += used;
    first = 0;
  }
}

static int is_wsp(char c) { return c == ' ' || c == '\t'; }

/* A word holding "=?" and then "?=" could be taken for an encoded-word by a
 * decoder (some decode them even inside a word), so it is encoded itself
 * (RFC 2047 section 5 asks for that). */
static int looks_encoded(const char *w, size_t n) {
  const char *p = memmem(w, n, "=?", 2);
  return p != NULL && memmem(p + 2, n - (size_t)(p + 2 - w), "?=", 2) != NULL;
}

/* A word of unstructured text must be encoded when it holds bytes such a
 * header cannot carry as they are (non-ASCII, controls), is too long to
 * fold, or looks like an encoded-word. */
static int text_word_needs_ew(const char *w, size_t n) {
  if (n > TOKEN_MAX) return 1;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)w[i];
    if (c < 0x20 || c >= 0x7f) return 1;
  }
  return looks_encoded(w, n);
}

/* RFC 5322 3.2.3 atext. */
static int atext(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* In a phrase, a word may stay plain only as an atom. */
static int phrase_word_needs_ew(const char *w, size_t n) {
  if (n > TOKEN_MAX) return 1;
  for (size_t i = 0; i < n; i++)
    if (!atext((unsigned char)w[i])) return 1;
  return looks_encoded(w, n);
}

/* Writes text word by word: words for which needs() is false as they are,
 * folded at the text's own whitespace; maximal runs of the others as
 * encoded-words, the whitespace between them encoded too because decoders
 * drop whitespace between adjacent encoded-words (RFC 2047 section 6.2).
 * When sep is not NULL it replaces the whitespace before the first word. */
static void fold_mixed(struct rq_fold *f, const char *sep, size_t sep_len,
                       const char *text, size_t n, int (*needs)(const char *, size_t)) {
  size_t i = 0;
  int first = 1;
  while (i < n) {
    size_t ws0 = i;
    while (i < n && is_wsp(text[i])) i++;
    const char *ws = text + ws0;
    size_t wsn = i - ws0;
    if (wsn > WS_MAX) ws = " ", wsn = 1;
    if (first && sep != NULL) ws = sep, wsn = sep_len;
    first = 0;
    size_t w0 = i;
    while (i < n && !is_wsp(text[i])) i++;
    if (i == w0) { /* trailing whitespace: kept, nothing to fold before */
      rq_fold_put(f, ws, wsn);
      break;
    }
    if (!needs(text + w0, i - w0)) {
      rq_fold_token(f, ws, wsn, text + w0, i - w0);
      continue;
    }
    size_t end = i;
    for (;;) {
      size_t j = end;
      while (j < n && is_wsp(text[j])) j++;
      size_t k = j;
      while (k < n && !is_wsp(text[k])) k++;
      if (k == j || !needs(text + j, k - j)) break;
      end = k;
    }
    rq_fold_words(f, ws, wsn, text + w0, end - w0);
    i = end;
  }
}

void rq_fold_text(struct rq_fold *f, const char *text, size_t n) {
  fold_mixed(f, NULL, 0, text, n, text_word_needs_ew);
}

void rq_fold_phrase(struct rq_fold *f, const char *sep, size_t sep_len,
                    const char *text, size_t n) {
  fold_mixed(f, sep, sep_len, text, n, phrase_word_needs_ew);
}

void rq_rfc2047_encode(const char *text, size_t header_name_len, struct rq_buf *out) {
  struct rq_fold f;
  rq_fold_init(&f, out, header_name_len);
  rq_fold_text(&f, text, strlen(text));
}

/* ---- RFC 2231 parameters -------------------------------------------------------- */

/* RFC 5987 attr-char: what an extended value may carry unescaped. */
static int attr_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c != 0 && strchr("!#$&+-.^_`|~", c) != NULL);
}

static int printable_ascii(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e) return 0;
  return 1;
}

static void put_quoted(struct rq_buf *out, const char *s, size_t n) {
  rq_buf_putc(out, '"');
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '"' || s[i] == '\\') rq_buf_putc(out, '\\');
    rq_buf_putc(out, s[i]);
  }
  rq_buf_putc(out, '"');
}

static size_t quoted_len(const char *s, size_t n) {
  size_t l = 2;
  for (size_t i = 0; i < n; i++) l += (s[i] == '"' || s[i] == '\\') ? 2 : 1;
  return l;
}

/* Extended (percent-encoded) sections, each ending at a character
 * boundary: name*0*=UTF-8''..., name*1*=..., or name*=UTF-8''... when one
 * section holds it all. */
static void put_extended(const char *name, const char *v, size_t n, struct rq_buf *out) {
  size_t total = 0;
  for (size_t i = 0; i < n; i++) total += attr_char((unsigned char)v[i]) ? 1 : 3;
  int single = total <= PARAM_SECTION;
  size_t i = 0;
  for (unsigned sec = 0; i < n || sec == 0; sec++) {
    if (single) rq_buf_printf(out, ";\r\n %s*=UTF-8''", name);
    else rq_buf_printf(out, ";\r\n %s*%u*=%s", name, sec, sec == 0 ? "UTF-8''" : "");
    size_t used = 0;
    while (i < n) {
      size_t cl = rq_utf8_char_len(v + i, n - i), cost = 0;
      for (size_t k = 0; k < cl; k++) cost += attr_char((unsigned char)v[i + k]) ? 1 : 3;
      if (used > 0 && used + cost > PARAM_SECTION) break;
      for (size_t k = 0; k < cl; k++) {
        unsigned char c = (unsigned char)v[i + k];
        if (attr_char(c)) {
          rq_buf_putc(out, (char)c);
        } else {
          char e[3] = {'%', hexdig[c >> 4], hexdig[c & 15]};
          rq_buf_append(out, e, 3);
        }
      }
      used += cost;
      i += cl;
    }
  }
}

void rq_rfc2231_param(const char *name, const char *value, struct rq_buf *out) {
  size_t n = strlen(value), nl = strlen(name);
  if (!printable_ascii(value, n)) {
    put_extended(name, value, n, out);
    return;
  }
  /* " name=" + quoted value + ";" within 78. */
  if (2 + nl + quoted_len(value, n) + 1 <= RQ_FOLD_WIDTH) {
    rq_buf_printf(out, ";\r\n %s=", name);
    put_quoted(out, value, n);
    return;
  }
  /* RFC 2231 section 3 continuations of plain quoted sections. */
  size_t i = 0;
  for (unsigned sec = 0; i < n; sec++) {
    size_t take = n - i < PARAM_SECTION ? n - i : PARAM_SECTION;
    rq_buf_printf(out, ";\r\n %s*%u=", name, sec);
    put_quoted(out, value + i, take);
    i += take;
  }
}
