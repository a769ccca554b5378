/* http_min: a bounded HTTP/1.x request-head reader and response writer
 * (see http_min.h). */
#include "http_min.h"

#include <string.h>

/* RFC 9110 5.6.2: tchar. */
static int is_tchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return 1;
  return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* One line of buf starting at pos. Returns 1 with [*start, *start + *n)
 * the line without its CR LF (or bare LF) and *next the offset after it;
 * 0 when no LF has arrived yet; -1 when the line holds a NUL or a CR that
 * does not end it (RFC 9112 2.2: a bare CR must be rejected or replaced). */
static int next_line(const char *buf, size_t len, size_t pos, const char **start, size_t *n, size_t *next) {
  const char *lf = memchr(buf + pos, '\n', len - pos);
  if (!lf) return 0;
  size_t l = (size_t)(lf - (buf + pos));
  if (l && buf[pos + l - 1] == '\r') l--;
  if (memchr(buf + pos, '\0', l) || memchr(buf + pos, '\r', l)) return -1;
  *start = buf + pos;
  *n = l;
  *next = (size_t)(lf - buf) + 1;
  return 1;
}

/* request-line = method SP request-target SP HTTP-version (RFC 9112 3). */
static int parse_request_line(const char *p, size_t n, struct rq_http_request *req) {
  size_t i = 0;
  while (i < n && is_tchar((unsigned char)p[i])) i++;
  if (i == 0 || i >= n || p[i] != ' ') return -400;
  if (i == 3 && !memcmp(p, "GET", 3)) req->method = RQ_HTTP_GET; /* methods are case-sensitive */
  else if (i == 4 && !memcmp(p, "HEAD", 4)) req->method = RQ_HTTP_HEAD;
  else req->method = RQ_HTTP_OTHER;
  size_t t0 = ++i;
  while (i < n && p[i] > 0x20 && p[i] < 0x7f) i++;
  size_t t1 = i;
  if (t1 == t0 || i >= n || p[i] != ' ') return -400;
  i++;
  /* HTTP-version = "HTTP/" DIGIT "." DIGIT, and nothing after it. */
  if (n - i != 8 || memcmp(p + i, "HTTP/", 5) || p[i + 5] < '0' || p[i + 5] > '9' || p[i + 6] != '.' ||
      p[i + 7] < '0' || p[i + 7] > '9')
    return -400;
  if (p[i + 5] != '1') return -505;

  const char *t = p + t0;
  size_t tn = t1 - t0;
  /* absolute-form (RFC 9112 3.2.2) must be accepted: keep only its path. */
  for (int s = 0; s < 2; s++) {
    const char *scheme = s ? "https://" : "http://";
    size_t sl = strlen(scheme);
    if (tn > sl && !strncmp(t, scheme, sl)) {
      const char *slash = memchr(t + sl, '/', tn - sl);
      if (!slash) {
        t = "/";
        tn = 1;
      } else {
        tn -= (size_t)(slash - t);
        t = slash;
      }
      break;
    }
  }
  if (t[0] != '/' && !(tn == 1 && t[0] == '*')) return -400;
  const char *q = memchr(t, '?', tn);
  size_t pn = q ? (size_t)(q - t) : tn;
  if (pn >= sizeof req->path) return -414;
  memcpy(req->path, t, pn);
  req->path[pn] = '\0';
  return 0;
}

/* field-line = field-name ":" OWS field-value OWS (RFC 9112 5); the value
 * is not needed. A line starting with whitespace is obsolete folding and
 * whitespace before the colon is forbidden (5.1): both are 400. */
static int check_field_line(const char *p, size_t n) {
  size_t i = 0;
  while (i < n && is_tchar((unsigned char)p[i])) i++;
  if (i == 0 || i >= n || p[i] != ':') return -400;
  return 0;
}

int rq_http_parse(const char *buf, size_t len, struct rq_http_request *req) {
  const char *line;
  size_t n, pos = 0, next;
  int r;
  if (len > RQ_HTTP_MAX_HEAD) len = RQ_HTTP_MAX_HEAD; /* look no further than the bound */
  /* Empty lines before the request line are skipped (RFC 9112 2.2). */
  while ((r = next_line(buf, len, pos, &line, &n, &next)) == 1 && n == 0) pos = next;
  if (r < 0) return -400;
  if (r == 0) goto incomplete;
  if ((r = parse_request_line(line, n, req)) != 0) return r;
  for (pos = next;; pos = next) {
    r = next_line(buf, len, pos, &line, &n, &next);
    if (r < 0) return -400;
    if (r == 0) goto incomplete;
    if (n == 0) return (int)next; /* the empty line ends the head */
    if (check_field_line(line, n)) return -400;
  }
incomplete:
  return len >= RQ_HTTP_MAX_HEAD ? -431 : 0;
}

const char *rq_http_reason(int status) {
  switch (status) {
  case 200: return "OK";
  case 400: return "Bad Request";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 414: return "URI Too Long";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 503: return "Service Unavailable";
  case 505: return "HTTP Version Not Supported";
  default: return "Unknown";
  }
}

void rq_http_respond(struct rq_buf *out, int status, const char *content_type, const char *extra_headers,
                     const char *body, size_t body_len, int head_only) {
  rq_buf_printf(out,
                "HTTP/1.1 %d %s\r\n"
                "Content-Type: %s\r\n"
                "Content-Length: %zu\r\n"
                "Cache-Control: no-store\r\n"
                "X-Content-Type-Options: nosniff\r\n"
                "Connection: close\r\n"
                "%s\r\n",
                status, rq_http_reason(status), content_type, body_len, extra_headers ? extra_headers : "");
  if (!head_only && body_len) rq_buf_append(out, body, body_len);
}
