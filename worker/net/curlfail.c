/* curlfail: CURLcode -> enum rq_fail (see curlfail.h). */
#include "curlfail.h"

#include <string.h>
#include <strings.h>

#include <curl/curl.h>

static int has(const char *text, const char *needle) { return strcasestr(text, needle) != NULL; }

static int digit(char c) { return c >= '0' && c <= '9'; }

/* The server code curl appends to its message ("RCPT failed: 550",
 * "Authentication failed: 535", "STARTTLS denied, code 454"), or 0. Only
 * curl's own shapes, so "... on port 587" is not read as a reply. */
static int trailing_code(const char *eb) {
  size_t n = strlen(eb);
  while (n > 0 && (eb[n - 1] == ' ' || eb[n - 1] == '\n' || eb[n - 1] == '\r' || eb[n - 1] == '.')) n--;
  if (n < 3) return 0;
  const char *p = eb + n - 3;
  if (!digit(p[0]) || !digit(p[1]) || !digit(p[2])) return 0;
  int after_colon = n >= 5 && p[-1] == ' ' && p[-2] == ':';
  int after_code = n >= 8 && !strncasecmp(p - 5, "code ", 5);
  if (!after_colon && !after_code) return 0;
  int code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
  return code >= 400 && code <= 599 ? code : 0;
}

enum rq_fail rq_curl_fail(int curl_code, const char *errbuf) {
  const char *eb = errbuf ? errbuf : "";
  switch (curl_code) {
  case CURLE_OK: return RQ_FAIL_NONE;
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY: return RQ_FAIL_DNS;
  case CURLE_COULDNT_CONNECT:
  case CURLE_INTERFACE_FAILED:
  case CURLE_NO_CONNECTION_AVAILABLE:
  case CURLE_PROXY: return RQ_FAIL_CONNECT;
  case CURLE_OPERATION_TIMEDOUT: return RQ_FAIL_TIMEOUT;
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR:
  case CURLE_GOT_NOTHING:
  case CURLE_PARTIAL_FILE:
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM:
  case CURLE_AGAIN: return RQ_FAIL_CLOSED;
  case CURLE_ABORTED_BY_CALLBACK: return RQ_FAIL_ABORTED;
  case CURLE_SSL_CONNECT_ERROR:
    if (has(eb, "wrong version number") || has(eb, "packet length too long") || has(eb, "unsupported protocol") ||
        has(eb, "no protocols available") || has(eb, "protocol version") || has(eb, "version too low") ||
        has(eb, "no shared cipher") || has(eb, "handshake failure") || has(eb, "certificate"))
      return RQ_FAIL_TLS_MISMATCH;
    return RQ_FAIL_TLS;
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_INVALIDCERTSTATUS:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH: return RQ_FAIL_TLS_CERT;
  case CURLE_SSL_CIPHER: return RQ_FAIL_TLS_MISMATCH;
  case CURLE_SSL_CLIENTCERT: return RQ_FAIL_TLS_CLIENT_CERT;
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_CRL_BADFILE:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_ENGINE_NOTFOUND:
  case CURLE_SSL_ENGINE_SETFAILED:
  case CURLE_SSL_ENGINE_INITFAILED:
  case CURLE_SSL_SHUTDOWN_FAILED: return RQ_FAIL_TLS_LOCAL;
  case CURLE_USE_SSL_FAILED: return RQ_FAIL_NO_STARTTLS;
  case CURLE_LOGIN_DENIED:
  case CURLE_AUTH_ERROR: return has(eb, "no known authentication mechanism") ? RQ_FAIL_AUTH_NO_MECH : RQ_FAIL_AUTH;
  case CURLE_REMOTE_ACCESS_DENIED: return RQ_FAIL_REFUSED_SESSION;
  case CURLE_WEIRD_SERVER_REPLY: return RQ_FAIL_PROTOCOL;
  case CURLE_UNSUPPORTED_PROTOCOL:
  case CURLE_URL_MALFORMAT: return RQ_FAIL_CONFIG;
  case CURLE_TOO_MANY_REDIRECTS: return RQ_FAIL_REDIRECTS;
  default: return RQ_FAIL_OTHER;
  }
}

void rq_curl_classify(int curl_code, const char *errbuf, enum rq_smtp_stage stage, struct rq_class *out) {
  const char *eb = errbuf ? errbuf : "";
  char bounded[CURL_ERROR_SIZE];
  snprintf(bounded, sizeof bounded, "%s", eb); /* curl's buffer is CURL_ERROR_SIZE; never read past it */
  enum rq_fail kind = rq_curl_fail(curl_code, bounded);
  struct rq_reply r;
  memset(&r, 0, sizeof r);
  switch (curl_code) { /* failures that are a server reply in disguise */
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR:
  case CURLE_LOGIN_DENIED:
  case CURLE_WEIRD_SERVER_REPLY:
  case CURLE_USE_SSL_FAILED:
  case CURLE_REMOTE_ACCESS_DENIED:
    r.code = trailing_code(bounded);
    break;
  default:
    break;
  }
  if (kind == RQ_FAIL_OTHER) {
    char what[CURL_ERROR_SIZE + 48];
    snprintf(what, sizeof what, "libcurl error %d%s%s", curl_code, bounded[0] ? ": " : "", bounded);
    rq_classify_failure(kind, stage, NULL, what, out);
    return;
  }
  rq_classify_failure(kind, stage, r.code ? &r : NULL, bounded, out);
}
