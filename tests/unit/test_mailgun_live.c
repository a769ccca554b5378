/*
 * test_mailgun_live: drives the Mailgun transport (mailgun.c over
 * curluv.c) against a live HTTP server. Starts no server itself:
 * tests/e2e/test_mailgun_transport.py starts the fake (tests/fixtures/
 * mailgun_fake.py) and runs this binary with the scenario in the
 * environment (ctest runs it through e2e_test_mailgun_transport, not on
 * its own). Without RELAYQ_TEST_MAILGUN_URL it checks nothing, so it says
 * so and exits 2 rather than pass.
 *
 * Environment (all but the URL optional):
 *   RELAYQ_TEST_MAILGUN_URL         base URL, e.g. http://127.0.0.1:PORT
 *   RELAYQ_TEST_MAILGUN_SCENARIO    send (default) | abort | abort_in_cb | unit
 *   RELAYQ_TEST_MAILGUN_DOMAIN      default mg.example.com
 *   RELAYQ_TEST_MAILGUN_KEY         default key-test
 *   RELAYQ_TEST_MAILGUN_RCPTS       comma-separated recipients
 *   RELAYQ_TEST_MAILGUN_MSG_FILE    message bytes (default: a small built-in one)
 *   RELAYQ_TEST_MAILGUN_COUNT       sends (default 1)
 *   RELAYQ_TEST_MAILGUN_CONCURRENT  1: start all at once; 0 (default): one
 *                                   after another, each from the previous
 *                                   callback
 *   RELAYQ_TEST_MAILGUN_CAFILE, _CONNECT_TIMEOUT_MS, _TIMEOUT_MS
 *
 * Output: one line per send, "RESULT {json}" (the API key is never
 * printed), then the check summary.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <uv.h>

#include "check.h"
#include "live.h"
#include "curluv.h"
#include "log.h"
#include "mailgun.h"
#include "util.h"

#define MAX_RCPTS 5000
#define MAX_COUNT 1000


/* One send's record: kept until the end so a second callback is caught. */
struct call {
  struct live *L;
  int i;
  int calls;
};

struct live {
  uv_loop_t loop;
  struct rq_curl *curl;
  struct rq_mailgun *mg;
  struct rq_mailgun_request req;
  char *rcpt_store;
  const char **rcpts;
  char *msg;
  size_t msg_len;
  struct call *calls;
  int count, started, done, concurrent, closed, finishing;
  int abort_in_cb;
  int aborted; /* callbacks with CURLE_ABORTED_BY_CALLBACK */
};

static const char DEFAULT_MSG[] =
    "From: sender@mg.example.com\r\n"
    "To: rcpt@example.org\r\n"
    "Subject: relayq live Mailgun test\r\n"
    "Message-ID: <live@relayq.test>\r\n"
    "\r\n"
    "Hello.\r\n";

static int load_settings(struct live *L) {
  struct rq_mailgun_request *r = &L->req;
  r->base_url = getenv("RELAYQ_TEST_MAILGUN_URL");
  r->domain = env("RELAYQ_TEST_MAILGUN_DOMAIN", "mg.example.com");
  r->api_key = env("RELAYQ_TEST_MAILGUN_KEY", "key-test");
  r->ca_file = env("RELAYQ_TEST_MAILGUN_CAFILE", NULL);
  r->connect_timeout_ms = env_long("RELAYQ_TEST_MAILGUN_CONNECT_TIMEOUT_MS", 5000);
  r->timeout_ms = env_long("RELAYQ_TEST_MAILGUN_TIMEOUT_MS", 30000);

  L->rcpt_store = rq_xstrdup(env("RELAYQ_TEST_MAILGUN_RCPTS", "rcpt@example.org"));
  L->rcpts = rq_xcalloc(MAX_RCPTS, sizeof *L->rcpts);
  size_t n = 0;
  for (char *save = NULL, *p = strtok_r(L->rcpt_store, ",", &save); p && n < MAX_RCPTS;
       p = strtok_r(NULL, ",", &save))
    L->rcpts[n++] = p;
  r->rcpts = L->rcpts;
  r->n_rcpts = n;

  if (live_message("RELAYQ_TEST_MAILGUN_MSG_FILE", DEFAULT_MSG, sizeof DEFAULT_MSG - 1, &L->msg, &L->msg_len) != 0) return -1;
  r->msg = L->msg;
  r->msg_len = L->msg_len;
  L->count = (int)env_long("RELAYQ_TEST_MAILGUN_COUNT", 1);
  if (L->count < 1 || L->count > MAX_COUNT) L->count = 1;
  L->concurrent = (int)env_long("RELAYQ_TEST_MAILGUN_CONCURRENT", 0);
  L->calls = rq_xcalloc((size_t)L->count, sizeof *L->calls);
  return 0;
}

/* ---- running sends ------------------------------------------------------------------ */

static void print_result(int i, const struct rq_mailgun_result *r) {
  struct rq_buf b;
  rq_buf_init(&b);
  rq_buf_printf(&b, "RESULT {\"i\":%d,\"curl_code\":%d,\"curl_error\":", i, r->curl_code);
  rq_json_str(&b, r->curl_error);
  rq_buf_printf(&b, ",\"status\":%ld,\"id\":", r->status);
  rq_json_str(&b, r->id);
  rq_buf_puts(&b, ",\"message\":");
  rq_json_str(&b, r->message);
  rq_buf_puts(&b, ",\"retry_after\":");
  rq_json_str(&b, r->retry_after);
  rq_buf_printf(&b, ",\"body_len\":%zu,\"seconds\":%.3f,\"body\":", r->body_len, r->seconds);
  rq_json_str(&b, r->body);
  rq_buf_puts(&b, "}\n");
  fputs(b.data, stdout);
  fflush(stdout);
  rq_buf_free(&b);
}

static void on_curl_closed(void *arg) {
  struct live *L = arg;
  L->closed = 1;
}

static void finish(struct live *L) {
  if (L->finishing) return;
  L->finishing = 1;
  rq_curl_close(L->curl, on_curl_closed, L);
}

static void start_one(struct live *L);

static void on_sent(const struct rq_mailgun_result *r, void *arg) {
  struct call *c = arg;
  struct live *L = c->L;
  c->calls++;
  print_result(c->i, r);
  /* What the header promises of every result. */
  CHECK(r->body != NULL);
  CHECK_INT(strlen(r->body), <=, r->body_len);
  CHECK_INT(r->body_len, <=, 64 * 1024);
  CHECK_INT(strlen(r->message), <=, 512);
  if (r->curl_code == CURLE_OK) CHECK_INT(r->status, >=, 200);
  if (!(r->status >= 200 && r->status < 300)) CHECK_STR(r->id, "");
  if (r->curl_code == CURLE_ABORTED_BY_CALLBACK) L->aborted++;
  L->done++;
  if (L->abort_in_cb && L->done == 1) {
    finish(L); /* the rest must be called back with an abort, from here */
    return;
  }
  if (L->finishing) return;
  if (!L->concurrent && L->started < L->count) start_one(L);
  else if (L->done == L->count) finish(L);
}

static void start_one(struct live *L) {
  struct call *c = &L->calls[L->started];
  c->L = L;
  c->i = L->started++;
  int rc = rq_mailgun_send(L->mg, &L->req, on_sent, c);
  CHECK_INT(rc, ==, 0);
  if (rc != 0) {
    c->calls++; /* counted so the run still ends and the once-check holds */
    L->done++;
    if (L->done == L->count) finish(L);
  }
}

/* scenario: send, abort (close before the loop runs), abort_in_cb */
static void run_live(const char *scenario) {
  struct live L;
  memset(&L, 0, sizeof L);
  if (load_settings(&L) != 0) {
    CHECK(0);
    return;
  }
  CHECK_INT(uv_loop_init(&L.loop), ==, 0);
  L.curl = rq_curl_new(&L.loop, 0, 0);
  CHECK(L.curl != NULL);
  L.mg = rq_mailgun_new(L.curl);
  L.abort_in_cb = strcmp(scenario, "abort_in_cb") == 0;

  if (L.concurrent || L.abort_in_cb || strcmp(scenario, "abort") == 0)
    while (L.started < L.count) start_one(&L);
  else start_one(&L);
  CHECK_INT(rq_mailgun_pending(L.mg), ==, L.started - L.done);
  if (strcmp(scenario, "abort") == 0) {
    /* Close before any I/O: every callback runs inside rq_curl_close. */
    finish(&L);
    CHECK_INT(L.done, ==, L.count);
    CHECK_INT(L.aborted, ==, L.count);
  }
  CHECK_INT(uv_run(&L.loop, UV_RUN_DEFAULT), ==, 0);
  CHECK_INT(L.done, ==, L.count);
  CHECK_INT(L.closed, ==, 1);
  CHECK_INT(rq_mailgun_pending(L.mg), ==, 0);
  for (int i = 0; i < L.count; i++) CHECK_INT(L.calls[i].calls, ==, 1);
  if (L.abort_in_cb) CHECK_INT(L.aborted, ==, L.count - 1);
  rq_mailgun_free(L.mg);
  CHECK_INT(uv_loop_close(&L.loop), ==, 0);
  free(L.calls);
  free(L.msg);
  free(L.rcpts);
  free(L.rcpt_store);
}

/* ---- scenario "unit": argument checks, no I/O ------------------------------------------ */

static void on_never(const struct rq_mailgun_result *r, void *arg) {
  (void)r;
  (void)arg;
  CHECK(0); /* a refused send must never call back */
}

static void test_send_validation(const char *base_url) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct rq_curl *c = rq_curl_new(&loop, 0, 0);
  struct rq_mailgun *m = rq_mailgun_new(c);
  const char *ok[] = {"a@example.org", "b@example.org"};
  struct rq_mailgun_request good = {.base_url = base_url, .domain = "mg.example.com",
                                    .api_key = "key-test", .rcpts = ok, .n_rcpts = 2,
                                    .msg = "m", .msg_len = 1};
  struct rq_mailgun_request r;

  char long_domain[300];
  memset(long_domain, 'a', 254);
  long_domain[254] = '\0';
  const char *bad_domains[] = {"", "a/b", "a?b", "a#b", "a b", "a\tb", "a\r\nb", ".", "..",
                               "../../v2", long_domain};
  for (size_t i = 0; i < sizeof bad_domains / sizeof *bad_domains; i++) {
    r = good;
    r.domain = bad_domains[i];
    int rc = rq_mailgun_send(m, &r, on_never, NULL);
    if (rc >= 0) fprintf(stderr, "domain accepted: %s\n", bad_domains[i]);
    CHECK_INT(rc, <, 0);
  }
  const char *bad_urls[] = {"",
                            "ftp://127.0.0.1",
                            "127.0.0.1:8080",
                            "http://",
                            "http://user:pw@127.0.0.1",
                            "http://127.0.0.1/?q=1",
                            "http://127.0.0.1/#frag",
                            "http://127.0.0.1:99999",
                            "http://127.0.0.1\r\nX-Evil: 1",
                            "https://bad host.example",
                            "file:///etc/passwd"};
  for (size_t i = 0; i < sizeof bad_urls / sizeof *bad_urls; i++) {
    r = good;
    r.base_url = bad_urls[i];
    int rc = rq_mailgun_send(m, &r, on_never, NULL);
    if (rc >= 0) fprintf(stderr, "base_url accepted: %s\n", bad_urls[i]);
    CHECK_INT(rc, <, 0);
  }
  const char *comma[] = {"a@example.org,c@example.org"};
  const char *crlf[] = {"a@example.org\r\nb@example.org"};
  const char *empty[] = {""};
  const char *with_null[] = {"a@example.org", NULL};
  const char *const *bad_lists[] = {comma, crlf, empty, with_null};
  size_t bad_ns[] = {1, 1, 1, 2};
  for (size_t i = 0; i < 4; i++) {
    r = good;
    r.rcpts = bad_lists[i];
    r.n_rcpts = bad_ns[i];
    CHECK_INT(rq_mailgun_send(m, &r, on_never, NULL), <, 0);
  }
  r = good;
  r.n_rcpts = 0;
  CHECK_INT(rq_mailgun_send(m, &r, on_never, NULL), <, 0);
  r = good;
  r.api_key = NULL;
  CHECK_INT(rq_mailgun_send(m, &r, on_never, NULL), <, 0);
  r = good;
  r.msg = NULL;
  CHECK_INT(rq_mailgun_send(m, &r, on_never, NULL), <, 0);
  CHECK_INT(rq_mailgun_send(m, &good, NULL, NULL), <, 0);
  CHECK_INT(rq_mailgun_send(m, NULL, on_never, NULL), <, 0);
  CHECK_INT(rq_mailgun_pending(m), ==, 0);
  CHECK_INT(rq_curl_active(c), ==, 0);

  /* After close, a valid send is refused and never calls back. */
  rq_curl_close(c, NULL, NULL);
  CHECK_INT(rq_mailgun_send(m, &good, on_never, NULL), <, 0);
  CHECK_INT(rq_mailgun_pending(m), ==, 0);
  CHECK_INT(uv_run(&loop, UV_RUN_DEFAULT), ==, 0);
  rq_mailgun_free(m);
  CHECK_INT(uv_loop_close(&loop), ==, 0);
}

int main(void) {
  const char *url = getenv("RELAYQ_TEST_MAILGUN_URL");
  if (!url || !*url) {
    fprintf(stderr, "test_mailgun_live: RELAYQ_TEST_MAILGUN_URL is not set: run it through "
                    "tests/e2e/test_mailgun_transport.py, which starts the fake\n");
    return 2;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const char *scenario = env("RELAYQ_TEST_MAILGUN_SCENARIO", "send");
  if (strcmp(scenario, "unit") == 0) test_send_validation(url);
  else run_live(scenario);
  curl_global_cleanup();
  return CHECK_DONE();
}
