/* smtp_proto: pure SMTP client helpers. See smtp_proto.h. */
#include "smtp_proto.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "util.h"

/* ---- replies ------------------------------------------------------------------ */

static int is_digit(int c) {
  return c >= '0' && c <= '9';
}

void rq_smtp_reader_init(struct rq_smtp_reader *r) {
  r->raw_len = 0;
  r->raw[0] = '\0';
  r->head_len = 0;
  r->first_code = 0;
  r->lines = 0;
}

/* "NNN", "NNN ", "NNN-", "NNN\r": h holds the line's first n (<= 4) bytes,
 * line_done says whether the line has ended within them. */
static int valid_start(const char *h, size_t n, int line_done) {
  if (n < 3) return 0;
  if (!is_digit((unsigned char)h[0]) || !is_digit((unsigned char)h[1]) || !is_digit((unsigned char)h[2]))
    return 0;
  if (n == 3) return line_done;
  return h[3] == ' ' || h[3] == '-' || h[3] == '\r' || h[3] == '\n';
}

/* The line ends the reply: a code not followed by '-'. */
static int line_final(const char *h, size_t n) {
  return valid_start(h, n, 1) && (n == 3 || h[3] != '-');
}

static void note_first(struct rq_smtp_reader *r, int line_done) {
  if (r->lines != 0 || r->first_code != 0) return;
  if (r->head_len < 4 && !line_done) return;
  if (valid_start(r->head, r->head_len, line_done))
    r->first_code = (r->head[0] - '0') * 100 + (r->head[1] - '0') * 10 + (r->head[2] - '0');
  else
    r->first_code = -1;
}

size_t rq_smtp_reader_feed(struct rq_smtp_reader *r, const char *p, size_t len, rq_smtp_reply_fn fn,
                           void *arg) {
  size_t used = 0;
  while (used < len) {
    const char *q = p + used;
    size_t left = len - used;
    const char *nl = memchr(q, '\n', left);
    size_t seg = nl ? (size_t)(nl - q) + 1 : left;
    /* raw_len may exceed the cap by the "\r\n" a cut line got. */
    size_t room = r->raw_len < RQ_SMTP_REPLY_MAX ? RQ_SMTP_REPLY_MAX - r->raw_len : 0;
    size_t take = seg < room ? seg : room;
    memcpy(r->raw + r->raw_len, q, take);
    r->raw_len += take;
    for (size_t i = 0; i < seg && r->head_len < sizeof r->head; i++) r->head[r->head_len++] = q[i];
    used += seg;
    note_first(r, nl != NULL);
    if (!nl) break;
    if (take < seg && r->raw_len + 2 <= RQ_SMTP_REPLY_MAX + 2 &&
        (r->raw_len == 0 || r->raw[r->raw_len - 1] != '\n')) {
      r->raw[r->raw_len++] = '\r'; /* cut: end the kept part as a line */
      r->raw[r->raw_len++] = '\n';
    }
    int final = line_final(r->head, r->head_len);
    r->head_len = 0;
    r->lines++;
    if (!final) continue;
    r->raw[r->raw_len] = '\0';
    int code = r->first_code > 0 ? r->first_code : 0;
    int stop = fn(arg, r->raw, r->raw_len, code);
    r->raw_len = 0;
    r->raw[0] = '\0';
    r->first_code = 0;
    r->lines = 0;
    if (stop) break;
  }
  return used;
}

int rq_smtp_reader_bad(const struct rq_smtp_reader *r) {
  return r->first_code < 0;
}

int rq_smtp_reader_partial(const struct rq_smtp_reader *r) {
  return r->raw_len > 0 || r->head_len > 0 || r->lines > 0;
}

/* ---- EHLO --------------------------------------------------------------------- */

static int word_is(const char *w, size_t n, const char *kw) {
  return strlen(kw) == n && strncasecmp(w, kw, n) == 0;
}

/* The AUTH keyword's mechanisms, space separated. */
static void auth_mechs(const char *p, const char *end, struct rq_smtp_caps *out) {
  out->auth = 1;
  while (p < end) {
    while (p < end && (*p == ' ' || *p == '\t')) p++;
    const char *w = p;
    while (p < end && *p != ' ' && *p != '\t') p++;
    if (word_is(w, (size_t)(p - w), "PLAIN")) out->auth_plain = 1;
    else if (word_is(w, (size_t)(p - w), "LOGIN")) out->auth_login = 1;
    else if (word_is(w, (size_t)(p - w), "XOAUTH2")) out->auth_xoauth2 = 1;
  }
}

static void caps_line(const char *p, const char *end, struct rq_smtp_caps *out) {
  if (end - p >= 4 && is_digit((unsigned char)p[0]) && is_digit((unsigned char)p[1]) &&
      is_digit((unsigned char)p[2]) && (p[3] == '-' || p[3] == ' '))
    p += 4;
  while (p < end && (*p == ' ' || *p == '\t')) p++;
  const char *kw = p;
  while (p < end && *p != ' ' && *p != '\t' && *p != '=') p++;
  size_t n = (size_t)(p - kw);
  const char *args = p < end ? p + 1 : p;
  if (word_is(kw, n, "STARTTLS")) out->starttls = 1;
  else if (word_is(kw, n, "PIPELINING")) out->pipelining = 1;
  else if (word_is(kw, n, "8BITMIME")) out->eightbitmime = 1;
  else if (word_is(kw, n, "ENHANCEDSTATUSCODES")) out->enhanced = 1;
  else if (word_is(kw, n, "SMTPUTF8")) out->smtputf8 = 1;
  else if (word_is(kw, n, "AUTH")) auth_mechs(args, end, out);
  else if (word_is(kw, n, "SIZE")) {
    uint64_t v = 0;
    out->size = 1;
    for (const char *q = args; q < end && is_digit((unsigned char)*q); q++) {
      if (v > UINT64_MAX / 10 - 10) break; /* absurd: treat as no limit */
      v = v * 10 + (uint64_t)(*q - '0');
    }
    out->size_max = v;
  }
}

void rq_smtp_caps_parse(const char *raw, size_t len, struct rq_smtp_caps *out) {
  memset(out, 0, sizeof *out);
  const char *p = raw, *end = raw + len;
  int line = 0;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    const char *te = le;
    if (te > p && te[-1] == '\r') te--;
    if (line++ > 0) caps_line(p, te, out); /* the first line is the greeting */
    p = nl ? nl + 1 : end;
  }
}

/* ---- DATA --------------------------------------------------------------------- */

void rq_smtp_stuffer_init(struct rq_smtp_stuffer *st, const char *msg, size_t len) {
  st->msg = msg;
  st->len = len;
  st->off = 0;
  st->pull = NULL;
  st->pull_arg = NULL;
  st->seen = 0;
  st->bol = 1;
  st->state = 0;
  st->term_off = st->term_len = 0;
}

void rq_smtp_stuffer_init_pull(struct rq_smtp_stuffer *st, rq_smtp_pull_fn pull, void *arg) {
  rq_smtp_stuffer_init(st, "", 0);
  st->pull = pull;
  st->pull_arg = arg;
}

/* The window is stuffed: remember its tail, then take the next one, or
 * (none left) choose the end-of-data sequence. RFC 5321 4.1.1.4: the end
 * is CRLF "." CRLF, the first CRLF ending the message's last line; a
 * message that does not end in one gets one. The CRLF after DATA's 354
 * serves an empty message. */
static void next_window(struct rq_smtp_stuffer *st) {
  if (st->len >= 2) {
    st->tail[0] = st->msg[st->len - 2];
    st->tail[1] = st->msg[st->len - 1];
  } else if (st->len == 1) {
    st->tail[0] = st->tail[1];
    st->tail[1] = st->msg[0];
  }
  st->seen += st->len;
  st->off = st->len = 0;
  if (st->pull != NULL) {
    size_t n = 0;
    const char *p = st->pull(st->pull_arg, &n);
    if (p != NULL && n > 0) {
      st->msg = p;
      st->len = n;
      return;
    }
    st->msg = "";
    st->pull = NULL;
  }
  if (st->seen == 0 || (st->seen >= 2 && st->tail[0] == '\r' && st->tail[1] == '\n'))
    memcpy(st->term, ".\r\n", st->term_len = 3);
  else
    memcpy(st->term, "\r\n.\r\n", st->term_len = 5);
  st->state = 1;
}

size_t rq_smtp_stuff(struct rq_smtp_stuffer *st, char *out, size_t cap) {
  size_t n = 0;
  while (n < cap && st->state != 2) {
    if (st->state == 1) {
      size_t k = st->term_len - st->term_off;
      if (k > cap - n) k = cap - n;
      memcpy(out + n, st->term + st->term_off, k);
      n += k;
      st->term_off += k;
      if (st->term_off == st->term_len) st->state = 2;
      continue;
    }
    if (st->off == st->len) {
      next_window(st);
      continue;
    }
    if (st->bol && st->msg[st->off] == '.') {
      out[n++] = '.'; /* the stuffed dot; the line's own follows */
      st->bol = 0;
      continue;
    }
    size_t lim = cap - n, avail = st->len - st->off;
    if (lim > avail) lim = avail;
    const char *src = st->msg + st->off;
    const char *nl = memchr(src, '\n', lim);
    size_t seg = nl ? (size_t)(nl - src) + 1 : lim;
    memcpy(out + n, src, seg);
    n += seg;
    st->off += seg;
    st->bol = nl != NULL;
  }
  return n;
}

int rq_smtp_stuffer_done(const struct rq_smtp_stuffer *st) {
  return st->state == 2;
}

/* ---- commands ------------------------------------------------------------------- */

int rq_smtp_has_8bit(const char *p, size_t n) {
  size_t i = 0;
  /* 8 bytes at a time: this scans every message, and gcc does not
   * vectorise a loop that can exit early (memcpy: no unaligned loads). */
  for (uint64_t w; i + 8 <= n; i += 8) {
    memcpy(&w, p + i, 8);
    if (w & 0x8080808080808080ull) return 1;
  }
  for (; i < n; i++)
    if ((unsigned char)p[i] >= 0x80) return 1;
  return 0;
}

void rq_smtp_cmd_mail(struct rq_buf *b, const char *from, const char *const *rcpts, size_t n_rcpts,
                      const char *msg, size_t len, const struct rq_smtp_caps *caps) {
  /* Scanned only when the server could use the answer. */
  rq_smtp_cmd_mail_sized(b, from, rcpts, n_rcpts, len, caps->eightbitmime && rq_smtp_has_8bit(msg, len), caps);
}

void rq_smtp_cmd_mail_sized(struct rq_buf *b, const char *from, const char *const *rcpts, size_t n_rcpts,
                            size_t len, int has_8bit, const struct rq_smtp_caps *caps) {
  rq_buf_puts(b, "MAIL FROM:<");
  rq_buf_puts(b, from);
  rq_buf_putc(b, '>');
  if (caps->size) {
    rq_buf_puts(b, " SIZE=");
    rq_buf_put_i64(b, (int64_t)len);
  }
  if (caps->eightbitmime && has_8bit) rq_buf_puts(b, " BODY=8BITMIME");
  if (caps->smtputf8) {
    int utf8 = rq_smtp_has_8bit(from, strlen(from));
    for (size_t i = 0; i < n_rcpts && !utf8; i++) utf8 = rq_smtp_has_8bit(rcpts[i], strlen(rcpts[i]));
    if (utf8) rq_buf_puts(b, " SMTPUTF8");
  }
  rq_buf_puts(b, "\r\n");
}

void rq_smtp_cmd_rcpt(struct rq_buf *b, const char *addr) {
  rq_buf_puts(b, "RCPT TO:<");
  rq_buf_puts(b, addr);
  rq_buf_puts(b, ">\r\n");
}

/* Appends base64(p[0..n)) then "\r\n", reserving first so that the buffer
 * is not reallocated (leaving a copy behind in freed memory) meanwhile. */
static void b64_append(struct rq_buf *b, const unsigned char *p, size_t n) {
  size_t enc = 4 * ((n + 2) / 3);
  rq_buf_reserve(b, enc + 2);
  int w = EVP_EncodeBlock((unsigned char *)b->data + b->len, p, (int)n);
  b->len += (size_t)(w > 0 ? w : 0);
  memcpy(b->data + b->len, "\r\n", 3);
  b->len += 2;
}

void rq_smtp_cmd_auth_plain(struct rq_buf *b, const char *user, const char *password) {
  size_t ul = strlen(user), pl = strlen(password), n = ul + pl + 2;
  unsigned char *tmp = rq_xmalloc(n);
  tmp[0] = 0; /* no authorization identity: act as the login itself */
  memcpy(tmp + 1, user, ul);
  tmp[1 + ul] = 0;
  memcpy(tmp + 2 + ul, password, pl);
  rq_buf_reserve(b, 11 + 4 * ((n + 2) / 3) + 2);
  rq_buf_puts(b, "AUTH PLAIN ");
  b64_append(b, tmp, n);
  OPENSSL_cleanse(tmp, n);
  free(tmp);
}

void rq_smtp_cmd_auth_xoauth2(struct rq_buf *b, const char *user, const char *token) {
  size_t ul = strlen(user), tl = strlen(token), n = 5 + ul + 13 + tl + 2;
  unsigned char *tmp = rq_xmalloc(n);
  size_t k = 0;
  memcpy(tmp + k, "user=", 5), k += 5;
  memcpy(tmp + k, user, ul), k += ul;
  memcpy(tmp + k, "\001auth=Bearer ", 13), k += 13;
  memcpy(tmp + k, token, tl), k += tl;
  tmp[k++] = 1;
  tmp[k++] = 1;
  rq_buf_reserve(b, 13 + 4 * ((n + 2) / 3) + 2);
  rq_buf_puts(b, "AUTH XOAUTH2 ");
  b64_append(b, tmp, n);
  OPENSSL_cleanse(tmp, n);
  free(tmp);
}

void rq_smtp_cmd_b64_line(struct rq_buf *b, const char *s) {
  b64_append(b, (const unsigned char *)s, strlen(s));
}

/* ---- validation ------------------------------------------------------------------- */

int rq_smtp_address_ok(const char *a, int allow_empty) {
  if (!a) return 0;
  size_t n = strlen(a);
  if (n == 0) return allow_empty;
  if (n > 998) return 0;
  for (const unsigned char *p = (const unsigned char *)a; *p; p++)
    if (*p < 0x20 || *p == 0x7f || *p == '<' || *p == '>') return 0;
  return 1;
}

int rq_smtp_helo_ok(const char *h) {
  size_t n = strlen(h);
  if (n == 0 || n > 255) return 0;
  for (const char *p = h; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || is_digit((unsigned char)*p) || *p == '.' ||
          *p == '-' || *p == '[' || *p == ']' || *p == ':'))
      return 0;
  return 1;
}

int rq_smtp_host_ok(const char *h) {
  size_t n = strlen(h);
  if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
    h++;
    n -= 2;
  }
  if (n == 0 || n > 253) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = h[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit((unsigned char)c) || c == '.' || c == '-' ||
          c == '_' || c == ':'))
      return 0;
  }
  return 1;
}
