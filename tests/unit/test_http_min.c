/* Unit tests for http_min: the metrics endpoint's request reader and
 * response writer (RFC 9112 request line and field syntax, bounds). */
#include <string.h>

#include "check.h"
#include "http_min.h"

static int parse(const char *s, struct rq_http_request *req) { return rq_http_parse(s, strlen(s), req); }

static void test_complete_requests(void) {
  struct rq_http_request req;
  const char *get = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9464\r\nAccept: */*\r\n\r\n";
  CHECK_INT(parse(get, &req), ==, (int)strlen(get));
  CHECK_INT(req.method, ==, RQ_HTTP_GET);
  CHECK_STR(req.path, "/metrics");

  CHECK_INT(parse("HEAD /healthz?verbose=1 HTTP/1.0\r\n\r\n", &req), >, 0);
  CHECK_INT(req.method, ==, RQ_HTTP_HEAD);
  CHECK_STR(req.path, "/healthz");

  /* Bare LF line ends and leading empty lines (RFC 9112 2.2). */
  CHECK_INT(parse("\r\n\nGET /readyz HTTP/1.1\nHost: x\n\n", &req), >, 0);
  CHECK_STR(req.path, "/readyz");

  /* absolute-form keeps only its path. */
  CHECK_INT(parse("GET http://127.0.0.1:9464/metrics?x HTTP/1.1\r\n\r\n", &req), >, 0);
  CHECK_STR(req.path, "/metrics");
  CHECK_INT(parse("GET http://127.0.0.1:9464 HTTP/1.1\r\n\r\n", &req), >, 0);
  CHECK_STR(req.path, "/");

  /* Other methods parse; the server answers them 405. */
  CHECK_INT(parse("POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", &req), >, 0);
  CHECK_INT(req.method, ==, RQ_HTTP_OTHER);
  CHECK_INT(parse("get /metrics HTTP/1.1\r\n\r\n", &req), >, 0); /* methods are case-sensitive */
  CHECK_INT(req.method, ==, RQ_HTTP_OTHER);

  /* The head length excludes a body or a pipelined request after it. */
  const char *two = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
  CHECK_INT(parse(two, &req), ==, 19);
  CHECK_STR(req.path, "/a");
}

static void test_incomplete(void) {
  struct rq_http_request req;
  CHECK_INT(parse("", &req), ==, 0);
  CHECK_INT(parse("GET /metr", &req), ==, 0);
  CHECK_INT(parse("GET /metrics HTTP/1.1\r\n", &req), ==, 0);
  CHECK_INT(parse("GET /metrics HTTP/1.1\r\nHost: x\r\n", &req), ==, 0);
  CHECK_INT(parse("GET /metrics HTTP/1.1\r\nHost: x\r\n\r", &req), ==, 0);
  CHECK_INT(parse("\r\n\r\n", &req), ==, 0);
}

static void test_malformed(void) {
  struct rq_http_request req;
  const char *bad[] = {
      "GET\r\n\r\n",
      "GET /metrics\r\n\r\n",
      "GET  /metrics HTTP/1.1\r\n\r\n",          /* two spaces */
      "GET /metrics HTTP/1.1 \r\n\r\n",          /* trailing space */
      "GET /metrics HTTP/1\r\n\r\n",
      "GET /metrics http/1.1\r\n\r\n",
      "GET metrics HTTP/1.1\r\n\r\n",            /* not origin-form */
      "GET /met\x01rics HTTP/1.1\r\n\r\n",       /* control character in the target */
      "GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n", /* space before the colon */
      "GET /metrics HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", /* obs-fold */
      "GET /metrics HTTP/1.1\r\nNoColon\r\n\r\n",
      "GET /metrics HTTP/1.1\r\nA: b\rc\r\n\r\n", /* bare CR */
      "G(T /metrics HTTP/1.1\r\n\r\n",           /* not a token */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int r = parse(bad[i], &req);
    if (r != -400) fprintf(stderr, "case %zu: %d\n", i, r);
    CHECK_INT(r, ==, -400);
  }
  const char nul[] = "GET /metrics HTTP/1.1\r\nA: b\0c\r\n\r\n";
  CHECK_INT(rq_http_parse(nul, sizeof nul - 1, &req), ==, -400);
  CHECK_INT(parse("GET /metrics HTTP/2.0\r\n\r\n", &req), ==, -505);
  CHECK_INT(parse("GET /metrics HTTP/0.9\r\n\r\n", &req), ==, -505);
}

static void test_bounds(void) {
  struct rq_http_request req;
  static char big[RQ_HTTP_MAX_HEAD + 100];
  /* A target longer than the path buffer: 414. */
  strcpy(big, "GET /");
  memset(big + 5, 'a', RQ_HTTP_MAX_PATH);
  strcpy(big + 5 + RQ_HTTP_MAX_PATH, " HTTP/1.1\r\n\r\n");
  CHECK_INT(parse(big, &req), ==, -414);
  /* The longest path that fits. */
  memset(big, 0, sizeof big);
  strcpy(big, "GET /");
  memset(big + 5, 'a', RQ_HTTP_MAX_PATH - 2);
  strcat(big, " HTTP/1.1\r\n\r\n");
  CHECK_INT(parse(big, &req), >, 0);
  CHECK_INT(strlen(req.path), ==, RQ_HTTP_MAX_PATH - 1);
  /* A head that has not ended within the bound: 431, never a read past it. */
  memset(big, 0, sizeof big);
  strcpy(big, "GET /metrics HTTP/1.1\r\nX-Long: ");
  memset(big + strlen(big), 'x', RQ_HTTP_MAX_HEAD);
  CHECK_INT(rq_http_parse(big, RQ_HTTP_MAX_HEAD, &req), ==, -431);
  CHECK_INT(rq_http_parse(big, RQ_HTTP_MAX_HEAD - 1, &req), ==, 0);
  CHECK_INT(rq_http_parse(big, sizeof big, &req), ==, -431);
}

static void test_respond(void) {
  struct rq_buf b;
  rq_buf_init(&b);
  rq_http_respond(&b, 503, "text/plain; charset=utf-8", NULL, "no\n", 3, 0);
  CHECK_STR(b.data, "HTTP/1.1 503 Service Unavailable\r\n"
                    "Content-Type: text/plain; charset=utf-8\r\n"
                    "Content-Length: 3\r\n"
                    "Cache-Control: no-store\r\n"
                    "X-Content-Type-Options: nosniff\r\n"
                    "Connection: close\r\n"
                    "\r\n"
                    "no\n");
  rq_buf_reset(&b);
  /* HEAD: the length of the body that GET would send, and no body. */
  rq_http_respond(&b, 405, "text/plain", "Allow: GET, HEAD\r\n", "abcdef", 6, 1);
  CHECK(strstr(b.data, "HTTP/1.1 405 Method Not Allowed\r\n") == b.data);
  CHECK(strstr(b.data, "Content-Length: 6\r\n") != NULL);
  CHECK(strstr(b.data, "Allow: GET, HEAD\r\n\r\n") != NULL);
  CHECK_INT(b.len, ==, (size_t)(strstr(b.data, "\r\n\r\n") - b.data) + 4);
  rq_buf_free(&b);
  CHECK_STR(rq_http_reason(431), "Request Header Fields Too Large");
  CHECK_STR(rq_http_reason(404), "Not Found");
}

int main(void) {
  test_complete_requests();
  test_incomplete();
  test_malformed();
  test_bounds();
  test_respond();
  return CHECK_DONE();
}
