/*
 * oauth_http: an OAuth 2.0 token request over libcurl (see oauth_http.h).
 */
#include "oauth_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "classify.h"
#include "curlguard.h"
#include "curluv.h"
#include "util.h"

#define BODY_MAX (64 * 1024)
#define DEFAULT_TIMEOUT_MS 30000L

/* One request, owned from rq_oauth_http_request until its callback has
 * returned; the form and the answer's body are wiped then. */
struct req {
  CURL *easy;
  struct rq_buf form;
  struct rq_buf body;
  rq_oauth_http_cb cb;
  void *arg;
  struct rq_curl_guard guard; /* the saas boundary, checked on each socket */
  char errbuf[CURL_ERROR_SIZE];
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg) {
  struct req *r = arg;
  size_t n = size * nmemb, room = r->body.len < BODY_MAX ? BODY_MAX - r->body.len : 0;
  rq_buf_append(&r->body, data, n < room ? n : room);
  return n;
}

static void put_field(struct rq_buf *b, const char *name, const char *value) {
  char *enc = curl_easy_escape(NULL, value, 0);
  if (b->len) rq_buf_puts(b, "&");
  rq_buf_puts(b, name);
  rq_buf_puts(b, "=");
  if (enc) {
    rq_buf_puts(b, enc);
    OPENSSL_cleanse(enc, strlen(enc));
    curl_free(enc);
  }
}

static void wipe(struct rq_buf *b) {
  if (b->data && b->cap) OPENSSL_cleanse(b->data, b->cap);
  rq_buf_free(b);
}

static void req_free(struct req *r) {
  if (r->easy) curl_easy_cleanup(r->easy);
  wipe(&r->form);
  wipe(&r->body);
  free(r);
}

static void on_done(CURL *easy, CURLcode result, void *arg) {
  struct req *r = arg;
  struct rq_oauth_token *tok = rq_xmalloc(sizeof *tok);
  long status = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  if (result != CURLE_OK && r->guard.refused) {
    memset(tok, 0, sizeof *tok);
    tok->outcome = RQ_OAUTH_POLICY;
    snprintf(tok->detail, sizeof tok->detail, "oauth_token_url: %s", r->guard.why);
  } else if (result != CURLE_OK || status == 0) {
    char why[300];
    rq_text_sanitize(why, sizeof why, r->errbuf[0] ? r->errbuf : curl_easy_strerror(result),
                     strlen(r->errbuf[0] ? r->errbuf : curl_easy_strerror(result)));
    rq_oauth_token_no_answer(why, tok);
  } else {
    rq_oauth_token_parse(status, r->body.data ? r->body.data : "", r->body.len, tok);
  }
  r->cb(tok, r->arg);
  OPENSSL_cleanse(tok, sizeof *tok);
  free(tok);
  req_free(r);
}

#define SETOPT(opt, val)                                                                     \
  do {                                                                                       \
    if (curl_easy_setopt(e, opt, val) != CURLE_OK) goto fail;                                \
  } while (0)

int rq_oauth_http_request(struct rq_curl *curl, const struct rq_oauth_request *q, rq_oauth_http_cb cb,
                          void *arg) {
  if (!curl || !q || !cb || !q->token_url || !q->client_id || !q->scope ||
      (!q->client_credentials && !q->refresh_token))
    return -1;
  int https = strncasecmp(q->token_url, "https://", 8) == 0;
  if (!https && strncasecmp(q->token_url, "http://", 7) != 0) return -1;
  struct req *r = rq_xcalloc(1, sizeof *r);
  rq_buf_init(&r->form);
  rq_buf_init(&r->body);
  r->cb = cb;
  r->arg = arg;
  if (q->client_credentials) {
    put_field(&r->form, "grant_type", "client_credentials");
  } else {
    put_field(&r->form, "grant_type", "refresh_token");
    put_field(&r->form, "refresh_token", q->refresh_token);
  }
  put_field(&r->form, "client_id", q->client_id);
  if (q->client_secret && *q->client_secret) put_field(&r->form, "client_secret", q->client_secret);
  put_field(&r->form, "scope", q->scope);
  CURL *e = r->easy = curl_easy_init();
  if (!e) goto fail;
  SETOPT(CURLOPT_URL, q->token_url);
  SETOPT(CURLOPT_PROTOCOLS_STR, https ? "https" : "http");
  SETOPT(CURLOPT_FOLLOWLOCATION, 0L); /* a redirect would carry the secrets elsewhere */
  SETOPT(CURLOPT_NOSIGNAL, 1L);
  SETOPT(CURLOPT_USERAGENT, "relayq/" RELAYQ_VERSION);
  SETOPT(CURLOPT_TIMEOUT_MS, q->timeout_ms > 0 ? q->timeout_ms : DEFAULT_TIMEOUT_MS);
  SETOPT(CURLOPT_ERRORBUFFER, r->errbuf);
  if (q->ca_file && *q->ca_file) SETOPT(CURLOPT_CAINFO, q->ca_file);
  SETOPT(CURLOPT_POST, 1L);
  SETOPT(CURLOPT_POSTFIELDS, r->form.data);
  SETOPT(CURLOPT_POSTFIELDSIZE, (long)r->form.len);
  SETOPT(CURLOPT_WRITEFUNCTION, on_body);
  SETOPT(CURLOPT_WRITEDATA, r);
  if (rq_curl_guard_install(e, &r->guard, q->netpolicy, q->token_url) != 0) goto fail;
  if (rq_curl_add(curl, e, on_done, r) != 0) goto fail;
  return 0;
fail:
  req_free(r);
  return -1;
}
