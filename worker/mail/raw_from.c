/* raw_from: From of a raw message, read and replaced (see raw_from.h). */
#include "raw_from.h"

#include <string.h>
#include <strings.h>

#include "address.h"

#define MAX_FROM_VALUE 4096 /* unfolded From value we parse; longer is unreadable */

/* One header field: [start, end) including its final CRLF. */
struct field {
  size_t start, end, name_len, colon;
};

/* Reads the field at *off; 0 at the end of the header (empty line, end of
 * input, or a line that is no field). */
static int next_field(const char *m, size_t len, size_t *off, struct field *f) {
  size_t i = *off;
  if (i >= len || m[i] == '\r' || m[i] == '\n' || m[i] == ' ' || m[i] == '\t') return 0;
  size_t colon = i;
  while (colon < len && m[colon] != ':' && m[colon] != '\r' && m[colon] != '\n') colon++;
  if (colon >= len || m[colon] != ':') return 0;
  size_t name_end = colon;
  while (name_end > i && (m[name_end - 1] == ' ' || m[name_end - 1] == '\t')) name_end--;
  size_t e = colon;
  for (;;) {
    const char *nl = memchr(m + e, '\n', len - e);
    if (nl == NULL) {
      e = len;
      break;
    }
    e = (size_t)(nl - m) + 1;
    if (e >= len || (m[e] != ' ' && m[e] != '\t')) break;
  }
  f->start = i, f->end = e, f->name_len = name_end - i, f->colon = colon;
  *off = e;
  return 1;
}

static int is_field(const char *m, const struct field *f, const char *name) {
  size_t n = strlen(name);
  return f->name_len == n && strncasecmp(m + f->start, name, n) == 0;
}

int rq_raw_from_addr(const char *msg, size_t len, char *addr, size_t cap, int *has_reply_to) {
  size_t off = 0;
  struct field f, from = {0, 0, 0, 0};
  int n_from = 0;
  if (has_reply_to) *has_reply_to = 0;
  while (next_field(msg, len, &off, &f)) {
    if (is_field(msg, &f, "From")) from = f, n_from++;
    else if (has_reply_to && is_field(msg, &f, "Reply-To")) *has_reply_to = 1;
  }
  if (n_from != 1) return 0;
  char value[MAX_FROM_VALUE + 1];
  size_t k = 0;
  for (size_t i = from.colon + 1; i < from.end; i++) {
    if (msg[i] == '\r' || msg[i] == '\n') continue; /* unfold */
    if (k == MAX_FROM_VALUE) return 0;
    value[k++] = msg[i];
  }
  value[k] = '\0';
  return rq_addr_parse(value, addr, cap, NULL, 0) == 0;
}

static void put_from(const char *name, const char *from_addr, const char *reply_to, struct rq_buf *out) {
  rq_buf_puts(out, "From: ");
  rq_addr_render(name, from_addr, 4, out);
  rq_buf_puts(out, "\r\n");
  if (reply_to) {
    rq_buf_puts(out, "Reply-To: ");
    rq_addr_render(NULL, reply_to, 8, out);
    rq_buf_puts(out, "\r\n");
  }
}

void rq_raw_put_from(const char *msg, size_t len, const char *name, const char *from_addr,
                     const char *reply_to, struct rq_buf *out) {
  int has_reply_to = 0, has_from = 0;
  size_t off = 0;
  struct field f;
  while (next_field(msg, len, &off, &f)) {
    has_reply_to |= is_field(msg, &f, "Reply-To");
    has_from |= is_field(msg, &f, "From");
  }
  if (has_reply_to) reply_to = NULL;
  if (!has_from) put_from(name, from_addr, reply_to, out);
  off = 0;
  size_t copied = 0;
  int written = !has_from;
  while (next_field(msg, len, &off, &f)) {
    if (!is_field(msg, &f, "From")) continue;
    rq_buf_append(out, msg + copied, f.start - copied);
    if (!written) put_from(name, from_addr, reply_to, out);
    written = 1;
    copied = f.end;
  }
  rq_buf_append(out, msg + copied, len - copied);
}
