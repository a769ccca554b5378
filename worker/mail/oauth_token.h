/*
 * oauth_token: reads an OAuth 2.0 token endpoint's answer (RFC 6749
 * section 5.1 success, 5.2 error) and decides what it means for the
 * tenant: a fresh access token, a refusal that only a new sign-in fixes,
 * or a temporary failure. Pure: no I/O; the HTTP request is
 * worker/net/oauth_http.c's, the cache and lock the daemon's oauth.c.
 *
 * Providers it is written against: Microsoft identity platform v2.0
 * (login.microsoftonline.com/.../oauth2/v2.0/token: `error` plus an
 * AADSTS code in `error_description`; rotates the refresh token on every
 * refresh) and Google (oauth2.googleapis.com/token: `invalid_grant` with
 * "Token has been expired or revoked."; keeps the refresh token).
 *
 * Secrets: the access and refresh tokens land in the result only; detail,
 * error and error_description never carry them (a description that echoes
 * a token-like value is cut to its first sentence and sanitised).
 */
#ifndef RQ_OAUTH_TOKEN_H
#define RQ_OAUTH_TOKEN_H

#include <stddef.h>

#define RQ_OAUTH_TOKEN_MAX 16384 /* longest access or refresh token kept */

enum rq_oauth_outcome {
  RQ_OAUTH_OK,      /* access_token set */
  RQ_OAUTH_REFUSED, /* the grant or the app was refused: sign in again / fix the app */
  RQ_OAUTH_TEMP,    /* try again later: 5xx, 429, temporarily_unavailable, no answer */
  RQ_OAUTH_POLICY,  /* not asked: the token URL is outside what the worker may reach */
};

/* One answer. Large: allocate it (about 33 KB). */
struct rq_oauth_token {
  enum rq_oauth_outcome outcome;
  char access_token[RQ_OAUTH_TOKEN_MAX + 1];
  long long expires_in;                       /* seconds; 3600 when the answer has none */
  char refresh_token[RQ_OAUTH_TOKEN_MAX + 1]; /* a rotated one, "" when not sent */
  char error[64];             /* the OAuth error code, sanitised ("" when none) */
  char error_description[256]; /* sanitised, bounded */
  char detail[512];           /* a sentence for the job's status: what to do */
};

/* Reads status (HTTP status, 0 when no answer came) and body[0..len) into
 * out. Always fills outcome and, unless OK, detail. */
void rq_oauth_token_parse(long status, const char *body, size_t len, struct rq_oauth_token *out);

/* The detail for a token request that got no HTTP answer (transport
 * error text, sanitised by the caller); outcome TEMP. */
void rq_oauth_token_no_answer(const char *why, struct rq_oauth_token *out);

struct rq_class;
/* How a job reads a failed token request (outcome not OK), in the mail
 * core's terms (classify.h): POLICY is policy, permanent; REFUSED and TEMP
 * are auth, temporary, and REFUSED trips the route's breaker at once
 * (nothing changes until the tenant signs in again); detail is the
 * answer's sentence. For the daemon's token cache and `relayq tenant
 * verify` alike. */
void rq_oauth_token_class(enum rq_oauth_outcome outcome, const char *detail, struct rq_class *out);

#endif
