/*
 * mailgun: the Mailgun HTTP API transport on the worker's curl multi
 * handle. Every send is POST {base_url}/v3/{domain}/messages.mime with
 * multipart fields `to` (each envelope recipient; Bcc included, as the
 * envelope) and `message` (the complete MIME message relayq built, so
 * signatures, attachments and DKIM are identical to the SMTP routes),
 * HTTP basic auth "api:KEY". Classification is the caller's
 * (rq_classify_http).
 *
 * Secrets: the API key goes to libcurl only (CURLOPT_USERNAME/PASSWORD);
 * no verbose transcript is ever kept.
 */
#ifndef RQ_MAILGUN_H
#define RQ_MAILGUN_H

#include <stddef.h>

struct rq_curl;
struct rq_mailgun;
struct rq_netpolicy;
struct rq_msg;

/* Everything borrowed during rq_mailgun_send only, except msg or body (borrowed
 * until the callback). */
struct rq_mailgun_request {
  const char *base_url; /* "https://api.mailgun.net" or a test server, no /v3 */
  const char *domain;
  const char *api_key;
  const char *const *rcpts;
  size_t n_rcpts;
  const char *msg;
  size_t msg_len;
  const struct rq_msg *body; /* instead of msg: a segmented message (msg.h,
                                finished), read in chunks as curl sends it;
                                borrowed until the callback */
  long connect_timeout_ms, timeout_ms;
  const char *ca_file; /* optional CA bundle */
  const struct rq_netpolicy *netpolicy; /* saas boundary (curlguard.h), borrowed; NULL: any address */
};

/* Owned by the transport, valid only during the callback. */
struct rq_mailgun_result {
  int fail;              /* enum rq_fail (classify.h): RQ_FAIL_NONE when an HTTP response arrived */
  int curl_code;         /* the CURLcode behind fail, CURLE_OK when an HTTP response arrived */
  char curl_error[256];
  int policy;            /* 1: the network boundary refused it; curl_error says why; nothing was connected */
  long status;           /* HTTP status, 0 when none */
  char id[256];          /* "id" from a 2xx JSON body ("<...@domain>"), else "" */
  char message[513];     /* "message" from the JSON body, sanitised, bounded */
  char retry_after[64];  /* Retry-After header value, "" when absent */
  const char *body;      /* raw body (bounded to 64 KB), NUL-terminated */
  size_t body_len;
  double seconds;
};

typedef void (*rq_mailgun_cb)(const struct rq_mailgun_result *res, void *arg);

struct rq_mailgun *rq_mailgun_new(struct rq_curl *curl);
/* Returns 0 and cb runs exactly once later (CURLE_ABORTED_BY_CALLBACK when
 * curluv closes first), or <0 and cb never runs. */
int rq_mailgun_send(struct rq_mailgun *m, const struct rq_mailgun_request *req, rq_mailgun_cb cb, void *arg);
int rq_mailgun_pending(const struct rq_mailgun *m);
/* After rq_curl_close's callback. */
void rq_mailgun_free(struct rq_mailgun *m);

#endif
