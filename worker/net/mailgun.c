/*
 * mailgun: one POST to Mailgun's messages.mime endpoint per call, on
 * libcurl's multi handle through curluv. See mailgun.h.
 *
 * Three parts, top to bottom: reading the answer ("id" and "message" through
 * json_scan.h, the Retry-After header), checking and building the request
 * (domain, base URL, multipart form), and the transfer itself (easy-handle
 * pool, completion).
 *
 * Implements the client side of RFC 9110 (HTTP semantics: Retry-After,
 * 10.2.3), RFC 7578 (multipart/form-data, built by libcurl's mime API) and
 * RFC 7617 (Basic authentication, done by libcurl); json_scan reads the
 * RFC 8259 (JSON) answer.
 *
 * Secrets: the API key is handed to libcurl (CURLOPT_PASSWORD) and nowhere
 * else: it is never copied, formatted or logged here, and CURLOPT_VERBOSE
 * is never set, so no transcript (which would hold the Authorization
 * header) exists. curl_easy_reset drops it from a pooled handle.
 *
 * Errors rq_mailgun_send returns (mailgun.h names none; smtp.h's numbering):
 *   -1  invalid request: no recipients, a recipient with a control
 *       character or a comma, a domain that is empty, too long, or holds
 *       '/', '?', '#', white space or controls (or is "." or ".."), a base
 *       URL that is not http(s)://host[:port][/prefix];
 *   -2  libcurl refused an option or an allocation;
 *   -3  curluv refused the transfer (it is closing).
 */
#include "mailgun.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "classify.h"
#include "curlguard.h"
#include "curlfail.h"
#include "curluv.h"
#include "json_scan.h"
#include "log.h"
#include "msg.h"
#include "util.h"

#define BODY_MAX (64 * 1024) /* response bytes kept; the rest is read and dropped */
#define POOL_MAX 64          /* idle easy handles kept for reuse */
#define DOMAIN_MAX 253       /* a DNS name's longest text form */
#define RCPT_MAX 998         /* RFC 5322 line length: no address is longer */
#define MESSAGE_RAW_MAX 2048 /* decoded "message" bytes kept before sanitising */
#define DEFAULT_CONNECT_TIMEOUT_MS 30000L
#define DEFAULT_TIMEOUT_MS 600000L

#define MG_EINVAL (-1)
#define MG_ECURL (-2)
#define MG_ESTART (-3)

/* ---- reading the answer ------------------------------------------------------- */

/* Fills res->id (2xx only) and res->message from the body. A plain-text
 * body (Mailgun's 401 is "Forbidden"; a proxy's "oops") gives its own text
 * as the message; HTML and JSON other than an object give none. */
static void read_body(struct rq_mailgun_result *res) {
  char raw_id[sizeof res->id], raw_msg[MESSAGE_RAW_MAX + 1];
  const char *b = res->body;
  size_t n = res->body_len, i = rq_json_skip_ws(b, n, 0);
  int len;
  res->id[0] = res->message[0] = '\0';
  if (i < n && b[i] == '{') {
    /* cut NULL: half a string (the body was cut) is no id, nor message. */
    if (res->status >= 200 && res->status < 300) {
      len = rq_json_top_string(b, n, "id", raw_id, sizeof raw_id, NULL);
      if (len > 0) rq_text_sanitize(res->id, sizeof res->id, raw_id, (size_t)len);
    }
    len = rq_json_top_string(b, n, "message", raw_msg, sizeof raw_msg, NULL);
    if (len > 0) rq_text_sanitize(res->message, sizeof res->message, raw_msg, (size_t)len);
  } else if (i < n && b[i] != '<' && b[i] != '[') {
    rq_text_sanitize(res->message, sizeof res->message, b + i, n - i);
  }
}

/* ---- one POST ------------------------------------------------------------------------- */

/* One send. Owned by the transport from rq_mailgun_send until its callback
 * has returned. The easy handle, form, errbuf and the msg cursor belong to
 * the transfer until curluv hands the handle back; msg itself is the
 * caller's, borrowed until the callback. */
struct post {
  struct rq_mailgun *m;
  CURL *easy;
  curl_mime *form;
  const char *msg;
  size_t msg_len, off;
  const struct rq_msg *src; /* when set, the bytes come from cur instead of msg */
  struct rq_msg_cursor cur;
  rq_mailgun_cb cb;
  void *arg;
  struct rq_buf body;    /* at most BODY_MAX bytes of the final response's body */
  char retry_after[64];  /* of the latest response */
  char errbuf[CURL_ERROR_SIZE];
  struct rq_curl_guard guard; /* the saas boundary, checked on each socket */
};

struct rq_mailgun {
  struct rq_curl *curl;
  CURL *pool[POOL_MAX];
  int n_pool;
  int pending;
};

/* The `message` part's bytes come straight from the caller's buffer (it is
 * borrowed until the callback), so a 25 MB message is not copied once per
 * send as curl_mime_data would. */
static size_t msg_read(char *buf, size_t size, size_t nitems, void *arg) {
  struct post *p = arg;
  /* A segmented message is encoded as curl asks for it (a buffer of
   * CURL_MAX_WRITE_SIZE or so at a time), so nothing but the chunk is
   * held: curl reads only while the socket takes data. */
  if (p->src) return rq_msg_read(&p->cur, buf, size * nitems);
  size_t want = size * nitems, left = p->msg_len - p->off;
  size_t n = want < left ? want : left;
  if (n) memcpy(buf, p->msg + p->off, n);
  p->off += n;
  return n;
}

/* curl rewinds the form when it resends (a reused connection that turned
 * out closed, a 417 to Expect: 100-continue). */
static int msg_seek(void *arg, curl_off_t offset, int origin) {
  struct post *p = arg;
  if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > p->msg_len) return CURL_SEEKFUNC_FAIL;
  if (p->src && rq_msg_seek(&p->cur, (size_t)offset) != 0) return CURL_SEEKFUNC_FAIL;
  p->off = (size_t)offset;
  return CURL_SEEKFUNC_OK;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg) {
  struct post *p = arg;
  size_t n = size * nmemb;
  size_t room = p->body.len < BODY_MAX ? BODY_MAX - p->body.len : 0;
  rq_buf_append(&p->body, data, n < room ? n : room);
  return n; /* what does not fit is read and dropped: memory stays bounded */
}

/* Header lines, one complete line per call, for every response (a 100
 * Continue comes before the final one): a status line starts afresh. */
static size_t on_header(char *line, size_t size, size_t nitems, void *arg) {
  struct post *p = arg;
  size_t n = size * nitems;
  static const char name[] = "retry-after:";
  if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) {
    p->retry_after[0] = '\0';
    rq_buf_reset(&p->body);
  } else if (n >= sizeof name - 1 && strncasecmp(line, name, sizeof name - 1) == 0) {
    size_t i = sizeof name - 1;
    while (i < n && (line[i] == ' ' || line[i] == '\t')) i++;
    size_t end = n;
    while (end > i && (line[end - 1] == '\r' || line[end - 1] == '\n' || line[end - 1] == ' ' ||
                       line[end - 1] == '\t'))
      end--;
    rq_text_sanitize(p->retry_after, sizeof p->retry_after, line + i, end - i);
  }
  return n;
}

/* ---- checking and building the request ------------------------------------------------ */

/* A Mailgun domain goes into the URL path: nothing in it may end the path
 * segment ('/', '?', '#') or be a dot segment that curl would resolve away
 * ("/v3/../messages.mime"). Everything else is percent-encoded. */
static int valid_domain(const char *d) {
  size_t n = strlen(d);
  if (n == 0 || n > DOMAIN_MAX || strcmp(d, ".") == 0 || strcmp(d, "..") == 0) return 0;
  for (const unsigned char *p = (const unsigned char *)d; *p; p++)
    if (*p <= 0x20 || *p == 0x7f || *p == '/' || *p == '?' || *p == '#') return 0;
  return 1;
}

/* An envelope recipient becomes one `to` field. Mailgun reads `to` as a
 * comma-separated list, so a comma would add recipients nobody asked for;
 * controls have no place in an address. */
static int valid_rcpt(const char *a) {
  if (!a) return 0;
  size_t n = strlen(a);
  if (n == 0 || n > RCPT_MAX) return 0;
  for (const unsigned char *p = (const unsigned char *)a; *p; p++)
    if (*p < 0x20 || *p == 0x7f || *p == ',') return 0;
  return 1;
}

/* "{base_url}/v3/{domain}/messages.mime", built with curl's URL API, which
 * validates the host and port. base_url is http:// or https:// with a host,
 * no credentials, query or fragment; a path prefix (a proxy) is kept, and
 * a trailing "/v3" (a common slip: the contract says without it) is
 * dropped rather than doubled. Returns a curl_free'd string or NULL. */
static char *build_url(const char *base_url, const char *domain) {
  CURLU *u = NULL;
  char *scheme = NULL, *host = NULL, *path = NULL, *tmp = NULL, *enc = NULL, *url = NULL;
  struct rq_buf p;
  rq_buf_init(&p);
  if (strncasecmp(base_url, "http://", 7) != 0 && strncasecmp(base_url, "https://", 8) != 0) goto out;
  for (const unsigned char *c = (const unsigned char *)base_url; *c; c++)
    if (*c <= 0x20 || *c == 0x7f) goto out;
  u = curl_url();
  if (!u || curl_url_set(u, CURLUPART_URL, base_url, 0) != CURLUE_OK) goto out;
  if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host)
    goto out;
  if (curl_url_get(u, CURLUPART_USER, &tmp, 0) == CURLUE_OK ||
      curl_url_get(u, CURLUPART_PASSWORD, &tmp, 0) == CURLUE_OK ||
      curl_url_get(u, CURLUPART_QUERY, &tmp, 0) == CURLUE_OK ||
      curl_url_get(u, CURLUPART_FRAGMENT, &tmp, 0) == CURLUE_OK)
    goto out; /* credentials in the URL would bypass the api:KEY rule */
  if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) goto out;
  size_t plen = strlen(path);
  while (plen > 0 && path[plen - 1] == '/') plen--;
  if (plen >= 3 && strncasecmp(path + plen - 3, "/v3", 3) == 0) plen -= 3;
  while (plen > 0 && path[plen - 1] == '/') plen--;
  enc = curl_easy_escape(NULL, domain, 0);
  if (!enc) goto out;
  rq_buf_append(&p, path, plen);
  rq_buf_printf(&p, "/v3/%s/messages.mime", enc);
  if (curl_url_set(u, CURLUPART_PATH, p.data, 0) != CURLUE_OK) goto out;
  if (curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK) url = NULL;
out:
  curl_free(scheme);
  curl_free(host);
  curl_free(path);
  curl_free(tmp);
  curl_free(enc);
  curl_url_cleanup(u);
  rq_buf_free(&p);
  return url;
}

/* The form: one `to` part per recipient, then the `message` file part read
 * from p->msg. Content-Type application/octet-stream is what `curl -F
 * message=@file.mime` (Mailgun's documented call) sends, and no transfer
 * encoding is set, so the bytes arrive exactly as built. */
static int build_form(struct post *p, const struct rq_mailgun_request *req) {
  curl_mimepart *part;
  p->form = curl_mime_init(p->easy);
  if (!p->form) return -1;
  for (size_t i = 0; i < req->n_rcpts; i++) {
    part = curl_mime_addpart(p->form);
    if (!part || curl_mime_name(part, "to") != CURLE_OK ||
        curl_mime_data(part, req->rcpts[i], CURL_ZERO_TERMINATED) != CURLE_OK)
      return -1;
  }
  part = curl_mime_addpart(p->form);
  if (!part || curl_mime_name(part, "message") != CURLE_OK ||
      curl_mime_filename(part, "message.mime") != CURLE_OK ||
      curl_mime_type(part, "application/octet-stream") != CURLE_OK ||
      curl_mime_data_cb(part, (curl_off_t)p->msg_len, msg_read, msg_seek, NULL, p) != CURLE_OK)
    return -1;
  return 0;
}

static long or_default(long v, long def) {
  return v > 0 ? v : def;
}

#define SETOPT(opt, val)                                                                     \
  do {                                                                                       \
    if (curl_easy_setopt(e, opt, val) != CURLE_OK) goto out;                                 \
  } while (0)

/* Every option of one POST. libcurl copies the strings (the key among
 * them); the form, errbuf and p stay ours until completion. Never
 * CURLOPT_VERBOSE: its transcript would carry the Authorization header. */
static int configure(struct post *p, const struct rq_mailgun_request *req, const char *url) {
  CURL *e = p->easy;
  int rc = -1;
  SETOPT(CURLOPT_URL, url);
  SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
  SETOPT(CURLOPT_NOSIGNAL, 1L);
  SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
  SETOPT(CURLOPT_USERAGENT, "relayq/" RELAYQ_VERSION);
  SETOPT(CURLOPT_CONNECTTIMEOUT_MS, or_default(req->connect_timeout_ms, DEFAULT_CONNECT_TIMEOUT_MS));
  SETOPT(CURLOPT_TIMEOUT_MS, or_default(req->timeout_ms, DEFAULT_TIMEOUT_MS));
  SETOPT(CURLOPT_ERRORBUFFER, p->errbuf);
  if (req->ca_file && *req->ca_file) SETOPT(CURLOPT_CAINFO, req->ca_file);
  SETOPT(CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
  SETOPT(CURLOPT_USERNAME, "api");
  SETOPT(CURLOPT_PASSWORD, req->api_key);
  SETOPT(CURLOPT_MIMEPOST, p->form);
  SETOPT(CURLOPT_WRITEFUNCTION, on_body);
  SETOPT(CURLOPT_WRITEDATA, p);
  SETOPT(CURLOPT_HEADERFUNCTION, on_header);
  SETOPT(CURLOPT_HEADERDATA, p);
  if (rq_curl_guard_install(e, &p->guard, req->netpolicy, url) != 0) goto out;
  rc = 0;
out:
  return rc;
}

/* ---- the transport ------------------------------------------------------------------------ */

/* Returns the handle to the pool (reset, so neither the key nor a pointer
 * of this POST survives), frees the form and p. */
static void post_free(struct post *p) {
  struct rq_mailgun *m = p->m;
  if (p->easy) {
    curl_easy_reset(p->easy);
    if (m->n_pool < POOL_MAX) m->pool[m->n_pool++] = p->easy;
    else curl_easy_cleanup(p->easy);
  }
  curl_mime_free(p->form);
  rq_buf_free(&p->body);
  m->pending--;
  free(p);
}

/* Fills res from what curl and the callbacks collected. res->body points
 * into p. */
static void post_result(struct post *p, CURLcode result, struct rq_mailgun_result *res) {
  long status = 0;
  double total = 0;
  memset(res, 0, sizeof *res);
  res->curl_code = (int)result;
  res->fail = (int)rq_curl_fail((int)result, p->errbuf);
  if (result != CURLE_OK && p->guard.refused) {
    res->policy = 1;
    snprintf(res->curl_error, sizeof res->curl_error, "%s", p->guard.why);
  } else if (result != CURLE_OK)
    snprintf(res->curl_error, sizeof res->curl_error, "%s",
             p->errbuf[0] ? p->errbuf : curl_easy_strerror(result));
  curl_easy_getinfo(p->easy, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(p->easy, CURLINFO_TOTAL_TIME, &total);
  /* An interim 100 Continue is no answer. A final status whose body was cut
   * short is kept: Mailgun decided, and the status is what it decided. */
  res->status = status >= 200 && status <= 999 ? status : 0;
  res->seconds = total;
  memcpy(res->retry_after, p->retry_after, sizeof res->retry_after);
  res->body = p->body.data ? p->body.data : "";
  res->body_len = p->body.len;
  if (res->status) read_body(res);
}

static void on_transfer_done(CURL *easy, CURLcode result, void *arg) {
  struct post *p = arg;
  struct rq_mailgun_result res;
  (void)easy;
  post_result(p, result, &res);
  p->cb(&res, p->arg);
  post_free(p);
}

struct rq_mailgun *rq_mailgun_new(struct rq_curl *curl) {
  struct rq_mailgun *m = rq_xcalloc(1, sizeof *m);
  m->curl = curl;
  return m;
}

int rq_mailgun_pending(const struct rq_mailgun *m) {
  return m->pending;
}

static int valid_request(const struct rq_mailgun_request *req) {
  if (!req || !req->base_url || !req->domain || !req->api_key || !req->rcpts || req->n_rcpts == 0 ||
      (!req->msg && !req->body && req->msg_len > 0))
    return 0;
  if (!valid_domain(req->domain)) return 0;
  for (size_t i = 0; i < req->n_rcpts; i++)
    if (!valid_rcpt(req->rcpts[i])) return 0;
  return 1;
}

int rq_mailgun_send(struct rq_mailgun *m, const struct rq_mailgun_request *req, rq_mailgun_cb cb, void *arg) {
  if (!m || !cb || !valid_request(req)) return MG_EINVAL;
  char *url = build_url(req->base_url, req->domain);
  if (!url) return MG_EINVAL;

  int rc = MG_ECURL;
  struct post *p = rq_xcalloc(1, sizeof *p);
  p->m = m;
  p->msg = req->msg ? req->msg : "";
  p->msg_len = req->msg_len;
  if (req->body) {
    p->src = req->body;
    p->msg_len = req->body->len;
    rq_msg_cursor_init(&p->cur, req->body);
  }
  p->cb = cb;
  p->arg = arg;
  rq_buf_init(&p->body);
  m->pending++;
  p->easy = m->n_pool > 0 ? m->pool[--m->n_pool] : curl_easy_init();
  if (!p->easy || build_form(p, req) != 0 || configure(p, req, url) != 0) goto fail;
  if (rq_curl_add(m->curl, p->easy, on_transfer_done, p) != 0) {
    rc = MG_ESTART;
    goto fail;
  }
  curl_free(url);
  return 0;
fail:
  post_free(p);
  curl_free(url);
  return rc;
}

void rq_mailgun_free(struct rq_mailgun *m) {
  if (!m) return;
  if (m->pending)
    rq_logf(RQ_LOG_ERROR, "The Mailgun transport was freed with %d sends pending; this is a bug.",
            m->pending);
  for (int i = 0; i < m->n_pool; i++) curl_easy_cleanup(m->pool[i]);
  free(m);
}
