/*
 * oauth: the worker's OAuth2 access tokens for SASL XOAUTH2 routes
 * (smtp_auth=xoauth2), shared by every worker through Redis so that the
 * provider's token endpoint is called about once per token lifetime per
 * tenant route, never per message (CONTRACT.md `P:oauth:...`).
 *
 * For one place ("oauth:T" or "oauth:T:route:R"):
 *   1. a token held here, fresh (more than its refresh margin before
 *      expires_at: 5 min, or a quarter of a short lifetime), is used;
 *   2. else P:oauth:PLACE is read: a fresh token there (sealed enc:v2,
 *      AAD "oauth:T\0access_token", for the same credentials) is used;
 *   3. else one worker takes P:oauth:PLACE:lock (SET NX PX 30 s), reads
 *      the tenant's current refresh token from its hash, asks the token
 *      endpoint (oauth_http.c), writes the new token (sealed) and its
 *      expires_at, writes a rotated refresh token back into the tenant
 *      hash at once (sealed enc:v2, AAD "tenant:T\0oauth_refresh_token",
 *      only if the stored value is still the one it used), then releases
 *      the lock; workers that found the lock taken re-read P:oauth every
 *      250 ms for up to 20 s.
 * A refused grant (invalid_grant, invalid_client, ...) is remembered in
 * P:oauth:PLACE for those credentials (5 min, or until the refresh token,
 * client id or secret changes), so no worker asks again meanwhile: the
 * attempt ends `auth`, "the tenant must sign in again", and the route's
 * breaker trips at once (rq_class.trip_now).
 *
 * Secrets: tokens are held here in plaintext only as long as they are
 * valid (wiped on free), written to Redis sealed when RELAYQ_SECRET_KEY is
 * set, and never logged; a log line names the tenant, route and outcome.
 */
#ifndef RQ_OAUTH_H
#define RQ_OAUTH_H

#include "classify.h"
#include "tenant.h"

struct rq_engine;

/* What a job needs a token for; borrowed during rq_oauth_get only. */
struct rq_oauth_need {
  const char *tenant;
  const char *route; /* a named route, or NULL for the tenant's own */
  const char *user;  /* smtp_user */
  const struct rq_oauth_conf *conf;
};

/* token: valid during the callback only (copy it); NULL on failure, then
 * fail says why (verdict, error auth/policy/connect, detail, trip_now). */
typedef void (*rq_oauth_cb)(const char *token, const struct rq_class *fail, void *arg);

/* cb runs exactly once, possibly before this returns (a token held here). */
void rq_oauth_get(struct rq_engine *eng, const struct rq_oauth_need *need, rq_oauth_cb cb, void *arg);

/* The server refused token: forget it here and in P:oauth (if it is still
 * the one stored), so the next attempt gets a new one. */
void rq_oauth_invalidate(struct rq_engine *eng, const struct rq_oauth_need *need, const char *token);

/* Shutdown: waiting jobs get a temporary failure now; closed_cb(arg) runs
 * once the module's timer has closed. */
void rq_oauth_close(struct rq_engine *eng, void (*closed_cb)(void *), void *arg);

#endif
