/*
 * oauth_http: one OAuth 2.0 token request (RFC 6749 section 6 refresh,
 * section 4.4 client credentials) as an HTTPS POST on the worker's curl
 * multi handle (curluv.c). The answer is read by oauth_token.c; what to do
 * with it (cache, lock, write-back) is the daemon's oauth.c. Never Redis.
 *
 * The form is application/x-www-form-urlencoded: grant_type, then
 * refresh_token (refresh) , client_id, client_secret (when set; form
 * fields, which Microsoft and Google both take), and scope, always
 * (Microsoft requires it on a refresh too).
 *
 * Secrets: the form is built in our own buffer (CURLOPT_POSTFIELDS, not
 * COPYPOSTFIELDS, so no copy stays in curl's memory), wiped when the
 * transfer ends; no verbose transcript is ever kept. Server certificates
 * are verified (CURLOPT_SSL_VERIFYPEER/HOST stay on); redirects are not
 * followed (they would carry the secrets elsewhere).
 */
#ifndef RQ_OAUTH_HTTP_H
#define RQ_OAUTH_HTTP_H

#include "oauth_token.h"

struct rq_curl;
struct rq_netpolicy;

/* Everything borrowed during rq_oauth_http_request only. */
struct rq_oauth_request {
  const char *token_url;
  int client_credentials; /* 0: grant_type=refresh_token with refresh_token */
  const char *client_id;
  const char *client_secret; /* NULL: a public client */
  const char *refresh_token;
  const char *scope;
  const char *ca_file;      /* NULL: the system store */
  long timeout_ms;          /* whole request; 0 = 30 s */
  /* The saas network boundary (curlguard.h): checked on the address
   * actually connected to; http:// only towards an allowed network.
   * NULL (onprem): every address, http:// or https://. */
  const struct rq_netpolicy *netpolicy;
};

/* tok is the transport's, valid only during the callback. */
typedef void (*rq_oauth_http_cb)(const struct rq_oauth_token *tok, void *arg);

/* Returns 0 and cb runs exactly once, later (outcome TEMP when curluv
 * closes first), or -1 (bad request, transport closing) and cb never
 * runs. */
int rq_oauth_http_request(struct rq_curl *curl, const struct rq_oauth_request *req, rq_oauth_http_cb cb,
                          void *arg);

#endif
