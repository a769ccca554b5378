/*
 * http_min: the smallest HTTP/1.x server-side reader and writer the
 * metrics endpoint needs. Pure: bytes in, a verdict or bytes out; no
 * sockets (metrics.c owns the connections).
 *
 * Implements the parts of RFC 9112 (HTTP/1.1 message syntax) that a
 * GET-only, one-request-per-connection server must get right:
 *
 *   - request-line = method SP request-target SP HTTP-version CRLF (3),
 *     origin-form targets only (3.2.1); empty lines before it are skipped
 *     and a bare LF is accepted as a line end (2.2);
 *   - header fields are checked for syntax and otherwise ignored (5):
 *     no whitespace before the colon, no obsolete line folding (5.2);
 *   - the whole head is bounded (RQ_HTTP_MAX_HEAD): a longer one is
 *     refused with 431 (RFC 6585), a longer target with 414;
 *   - a response always closes the connection ("Connection: close",
 *     RFC 9112 9.6), so requests are never pipelined or kept alive.
 *
 * Why hand-written: the only dependency that could do this (libcurl) is a
 * client; an HTTP server library for three fixed GET endpoints would be
 * more code to audit than this file.
 */
#ifndef RQ_HTTP_MIN_H
#define RQ_HTTP_MIN_H

#include <stddef.h>

#include "util.h"

#define RQ_HTTP_MAX_HEAD 8192 /* request line + headers + the empty line */
#define RQ_HTTP_MAX_PATH 256  /* path without the query, NUL included */

enum rq_http_method { RQ_HTTP_GET, RQ_HTTP_HEAD, RQ_HTTP_OTHER };

struct rq_http_request {
  enum rq_http_method method;
  char path[RQ_HTTP_MAX_PATH]; /* "/metrics": the query string is dropped */
};

/* Reads one request head from buf[0..len).
 * Returns the head's length (> 0) when complete, with *req filled;
 * 0 when more bytes are needed (and len < RQ_HTTP_MAX_HEAD);
 * or minus the HTTP status to answer: -400 malformed, -414 target too
 * long, -431 head too long, -505 an HTTP version other than 1.x. */
int rq_http_parse(const char *buf, size_t len, struct rq_http_request *req);

/* The reason phrase of a status this module writes ("Not Found"). */
const char *rq_http_reason(int status);

/* Appends a complete response: status line, Content-Type, Content-Length,
 * Connection: close, Cache-Control: no-store, extra_headers (NULL or
 * complete "Name: value\r\n" lines), the empty line and, unless head_only
 * (a HEAD request), the body. */
void rq_http_respond(struct rq_buf *out, int status, const char *content_type, const char *extra_headers,
                     const char *body, size_t body_len, int head_only);

#endif
