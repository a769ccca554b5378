/* address: parse, validate and render mailboxes (see address.h). */
#include "address.h"

#include <string.h>

/* Mirrors encode.c: longer words cannot be folded, so names holding one
 * are encoded; longer whitespace runs become one space. */
#define TOKEN_MAX 900
#define WS_MAX 64

static int is_wsp(char c) { return c == ' ' || c == '\t'; }

static int is_ctl(unsigned char c) { return c < 0x20 || c == 0x7f; }

/* ---- validation -------------------------------------------------------------- */

/* One domain label character: letters, digits, '-', '_' (seen in real
 * hostnames), or UTF-8 (RFC 6531 internationalised domains). */
static int label_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '_' || c >= 0x80;
}

static int domain_valid(const char *d, size_t n) {
  if (n == 0 || n > 253) return 0;
  if (d[0] == '[') { /* address literal, RFC 5321 4.1.3 */
    if (n < 3 || d[n - 1] != ']') return 0;
    for (size_t i = 1; i + 1 < n; i++) {
      unsigned char c = (unsigned char)d[i];
      /* IPv4, or a tagged literal such as "IPv6:2001:db8::1". */
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            c == '.' || c == ':' || c == '-'))
        return 0;
    }
    return 1;
  }
  size_t label = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)d[i];
    if (c == '.') {
      if (label == 0) return 0; /* empty label: "..", leading dot */
      label = 0;
    } else if (label_char(c)) {
      if (++label > 63) return 0;
    } else {
      return 0;
    }
  }
  return label > 0; /* no trailing dot */
}

/* Unquoted local part: anything but whitespace, controls and the specials
 * that would end or split it in a header or an SMTP command. Dots are not
 * policed (servers accept "a..b" more often than RFC 5321 does). */
static int local_char(unsigned char c) {
  return !is_ctl(c) && c != ' ' && strchr("<>()[],;:\\\"@", c) == NULL;
}

int rq_addr_spec_valid(const char *a, size_t n) {
  if (n == 0 || n > RQ_ADDR_MAX || !rq_utf8_valid(a, n)) return 0;
  size_t llen;
  if (a[0] == '"') {
    size_t i = 1;
    while (i < n && a[i] != '"') {
      unsigned char c = (unsigned char)a[i];
      if (is_ctl(c) || c == '\\') return 0;
      i++;
    }
    if (i >= n) return 0; /* not closed */
    llen = i + 1;
    if (llen < 3) return 0; /* "" */
  } else {
    llen = 0;
    while (llen < n && a[llen] != '@') {
      if (!local_char((unsigned char)a[llen])) return 0;
      llen++;
    }
    if (llen == 0) return 0;
  }
  if (llen > 64 || llen >= n || a[llen] != '@') return 0;
  return domain_valid(a + llen + 1, n - llen - 1);
}

/* ---- parsing ------------------------------------------------------------------ */

static int copy_out(char *dst, size_t cap, const char *s, size_t n) {
  if (dst == NULL) return 0;
  if (n + 1 > cap) return -1;
  memcpy(dst, s, n);
  dst[n] = '\0';
  return 0;
}

static void trim(const char **s, size_t *n) {
  while (*n > 0 && is_wsp(**s)) (*s)++, (*n)--;
  while (*n > 0 && is_wsp((*s)[*n - 1])) (*n)--;
}

/* Position of the first '<' outside a quoted string, or n. */
static size_t find_angle(const char *s, size_t n) {
  int q = 0;
  for (size_t i = 0; i < n; i++) {
    if (q && s[i] == '\\') i++;
    else if (s[i] == '"') q = !q;
    else if (!q && s[i] == '<') return i;
  }
  return n;
}

/* The display name before '<': a quoted-string (unescaped) or the bare
 * text, which may hold what RFC 5322 would want quoted ("Smith, John");
 * producers write that and mean it. */
static int parse_name(const char *s, size_t n, char *name, size_t cap) {
  trim(&s, &n);
  if (n == 0 || s[0] != '"')
    return memchr(s, '>', n) != NULL ? -1 : copy_out(name, cap, s, n);
  char tmp[RQ_NAME_MAX + 1];
  size_t tl = 0, i = 1;
  for (; i < n && s[i] != '"'; i++) {
    if (s[i] == '\\' && i + 1 < n) i++;
    if (tl == RQ_NAME_MAX) return -1;
    tmp[tl++] = s[i];
  }
  /* Unclosed, or text after the closing quote ('"Smith" John'): keep the
   * text as written, as the bare form does. */
  if (i + 1 != n) return copy_out(name, cap, s, n);
  return copy_out(name, cap, tmp, tl);
}

int rq_addr_parse(const char *in, char *addr, size_t addr_cap, char *name,
                  size_t name_cap) {
  if (in == NULL) return -1;
  if (name != NULL && name_cap > 0) name[0] = '\0';
  size_t n = strnlen(in, RQ_NAME_MAX + RQ_ADDR_MAX + 8);
  if (in[n] != '\0' || !rq_utf8_valid(in, n)) return -1;
  for (size_t i = 0; i < n; i++)
    if (is_ctl((unsigned char)in[i]) && in[i] != '\t') return -1; /* CR, LF, ... */
  const char *s = in;
  trim(&s, &n);
  const char *spec = s;
  size_t slen = n;
  size_t lt = find_angle(s, n);
  if (lt < n) {
    if (s[n - 1] != '>') return -1;
    spec = s + lt + 1;
    slen = n - lt - 2;
    if (memchr(spec, '<', slen) != NULL || memchr(spec, '>', slen) != NULL) return -1;
    trim(&spec, &slen);
    if (parse_name(s, lt, name, name_cap) != 0) return -1;
  }
  if (!rq_addr_spec_valid(spec, slen)) return -1;
  return copy_out(addr, addr_cap, spec, slen);
}

int rq_addr_envelope(const char *in, char *addr, size_t addr_cap) {
  return rq_addr_parse(in, addr, addr_cap, NULL, 0);
}

/* ---- rendering ---------------------------------------------------------------- */

/* RFC 5322 3.2.3 atext. */
static int atext(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* ATOMS: plain words; QUOTED: printable ASCII with specials; ENCODED:
 * anything else (non-ASCII, controls, a word too long to fold, or text a
 * decoder could take for an encoded-word), written by rq_fold_phrase. */
enum name_form { NAME_ATOMS, NAME_QUOTED, NAME_ENCODED };

static enum name_form classify(const char *s, size_t n) {
  int atoms = 1;
  size_t word = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (is_ctl(c) && c != '\t') return NAME_ENCODED;
    if (c >= 0x80) return NAME_ENCODED;
    if (is_wsp((char)c)) {
      word = 0;
      continue;
    }
    if (++word > TOKEN_MAX) return NAME_ENCODED;
    if (!atext(c)) atoms = 0;
  }
  const char *q = memmem(s, n, "=?", 2);
  if (q != NULL && memmem(q + 2, n - (size_t)(q + 2 - s), "?=", 2) != NULL)
    return NAME_ENCODED;
  return atoms ? NAME_ATOMS : NAME_QUOTED;
}

static size_t escaped_len(const char *s, size_t n) {
  size_t l = n;
  for (size_t i = 0; i < n; i++) l += s[i] == '"' || s[i] == '\\';
  return l;
}

/* Writes the phrase; sep is the separator before its first token. */
static void put_phrase(struct rq_fold *f, const char *s, size_t n, const char *sep,
                       size_t sep_len) {
  enum name_form form = classify(s, n);
  if (form == NAME_ENCODED) {
    rq_fold_phrase(f, sep, sep_len, s, n);
    return;
  }
  size_t i = 0;
  int first = 1;
  while (i < n) {
    size_t ws0 = i;
    while (i < n && is_wsp(s[i])) i++;
    size_t w0 = i;
    while (i < n && !is_wsp(s[i])) i++;
    const char *ws = s + ws0;
    size_t wsn = w0 - ws0, wl = i - w0;
    /* Between atoms any whitespace means one space (CFWS). */
    if (first) ws = sep, wsn = sep_len;
    else if (form == NAME_ATOMS || wsn > WS_MAX) ws = " ", wsn = 1;
    int last = i >= n;
    if (form == NAME_ATOMS) {
      rq_fold_token(f, ws, wsn, s + w0, wl);
    } else {
      /* A quoted-string may fold at its own whitespace: the CRLF is
       * removed on unfolding and the whitespace kept (RFC 5322 3.2.4). */
      rq_fold_space(f, ws, wsn, escaped_len(s + w0, wl) + first + last);
      if (first) rq_fold_put(f, "\"", 1);
      for (size_t k = w0; k < i; k++) {
        if (s[k] == '"' || s[k] == '\\') rq_fold_put(f, "\\", 1);
        rq_fold_put(f, s + k, 1);
      }
      if (last) rq_fold_put(f, "\"", 1);
    }
    first = 0;
  }
}

void rq_addr_fold(struct rq_fold *f, const char *name, const char *addr, size_t trail) {
  const char *sep = f->started ? " " : "";
  size_t sep_len = f->started ? 1 : 0, alen = strlen(addr);
  size_t nl = name ? strlen(name) : 0;
  if (name) trim(&name, &nl);
  if (nl == 0) {
    rq_fold_space(f, sep, sep_len, alen + trail);
    rq_fold_put(f, addr, alen);
    return;
  }
  put_phrase(f, name, nl, sep, sep_len);
  rq_fold_space(f, " ", 1, alen + 2 + trail);
  rq_fold_put(f, "<", 1);
  rq_fold_put(f, addr, alen);
  rq_fold_put(f, ">", 1);
}

void rq_addr_render(const char *name, const char *addr, size_t header_name_len,
                    struct rq_buf *out) {
  struct rq_fold f;
  rq_fold_init(&f, out, header_name_len);
  rq_addr_fold(&f, name, addr, 0);
}

int rq_addr_render_list(char *const *list, size_t n, size_t header_name_len,
                        struct rq_buf *out, size_t *bad) {
  char addr[RQ_ADDR_MAX + 1], name[RQ_NAME_MAX + 1];
  struct rq_fold f;
  rq_fold_init(&f, out, header_name_len);
  for (size_t i = 0; i < n; i++) {
    if (rq_addr_parse(list[i], addr, sizeof addr, name, sizeof name) != 0) {
      if (bad) *bad = i;
      return -1;
    }
    int more = i + 1 < n;
    rq_addr_fold(&f, name, addr, more ? 1 : 0);
    if (more) rq_fold_put(&f, ",", 1);
  }
  return 0;
}
