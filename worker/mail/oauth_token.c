/*
 * oauth_token: reading a token endpoint's answer (see oauth_token.h).
 */
#include "oauth_token.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "classify.h"
#include "json_scan.h"

/* The error codes RFC 6749 5.2 and OpenID Connect define, and Microsoft's
 * additions, that no retry can fix: the tenant (or an admin) must consent
 * again, or the app's registration must be fixed. */
static const char *const refused_codes[] = {
    "invalid_grant", "invalid_client", "unauthorized_client", "invalid_scope", "unsupported_grant_type",
    "consent_required", "interaction_required", "login_required", "access_denied", "invalid_request", NULL};

static int is_refused(const char *code) {
  for (int i = 0; refused_codes[i]; i++)
    if (!strcasecmp(code, refused_codes[i])) return 1;
  return 0;
}

/* The provider's description up to its first line end and 200 bytes:
 * Microsoft appends "Trace ID: ... Correlation ID: ... Timestamp: ...". */
static void short_description(const char *d, char *dst, size_t cap) {
  size_t n = strcspn(d, "\r\n");
  const char *trace = strstr(d, " Trace ID:");
  if (trace && (size_t)(trace - d) < n) n = (size_t)(trace - d);
  if (n > 200) n = 200;
  rq_text_sanitize(dst, cap, d, n);
}

static void refused_detail(struct rq_oauth_token *out) {
  char why[300];
  if (out->error_description[0]) snprintf(why, sizeof why, "%s: %s", out->error, out->error_description);
  else snprintf(why, sizeof why, "%s", out->error[0] ? out->error : "refused");
  if (!strcasecmp(out->error, "invalid_client") || !strcasecmp(out->error, "unauthorized_client"))
    snprintf(out->detail, sizeof out->detail,
             "The provider refused the platform app's credentials (%s): check oauth_client_id and "
             "oauth_client_secret (client secrets expire); if they are right, the tenant must sign in again.",
             why);
  else if (!strcasecmp(out->error, "invalid_scope"))
    snprintf(out->detail, sizeof out->detail,
             "The provider refused the scope (%s): check oauth_scope (docs/oauth.md lists each provider's); the "
             "tenant must sign in again with that scope.",
             why);
  else
    snprintf(out->detail, sizeof out->detail,
             "The provider refused the tenant's sign-in (%s): the tenant must sign in again (consent revoked, "
             "password changed or the refresh token expired); mail waits meanwhile.",
             why);
}

void rq_oauth_token_no_answer(const char *why, struct rq_oauth_token *out) {
  memset(out, 0, sizeof *out);
  out->outcome = RQ_OAUTH_TEMP;
  snprintf(out->detail, sizeof out->detail,
           "The OAuth token endpoint could not be reached (%s): the relay retries.", why && *why ? why : "no answer");
}

void rq_oauth_token_parse(long status, const char *body, size_t len, struct rq_oauth_token *out) {
  char raw[1024];
  memset(out, 0, sizeof *out);
  if (status == 0) {
    rq_oauth_token_no_answer(NULL, out);
    return;
  }
  int n = rq_json_top_string(body, len, "error", raw, sizeof raw, NULL);
  if (n > 0) rq_text_sanitize(out->error, sizeof out->error, raw, (size_t)n);
  n = rq_json_top_string(body, len, "error_description", raw, sizeof raw, NULL);
  if (n > 0) {
    raw[n] = '\0';
    short_description(raw, out->error_description, sizeof out->error_description);
  }
  if (status >= 200 && status < 300 && !out->error[0]) {
    int at = rq_json_top_string(body, len, "access_token", out->access_token, sizeof out->access_token, NULL);
    char type[32] = "";
    rq_json_top_string(body, len, "token_type", type, sizeof type, NULL);
    /* A token we could not hold whole, or with bytes that cannot go in a
     * SASL response, is no token. */
    int ok = at > 0 && (size_t)at < sizeof out->access_token - 1 && (!type[0] || !strcasecmp(type, "bearer"));
    for (int i = 0; ok && i < at; i++)
      if ((unsigned char)out->access_token[i] <= 0x20 || (unsigned char)out->access_token[i] >= 0x7f) ok = 0;
    if (!ok) {
      memset(out->access_token, 0, sizeof out->access_token);
      out->outcome = RQ_OAUTH_TEMP;
      snprintf(out->detail, sizeof out->detail,
               "The OAuth token endpoint answered %ld without a usable bearer access token: the relay retries; "
               "check oauth_token_url if it persists.",
               status);
      return;
    }
    long long exp = 0;
    if (rq_json_top_int(body, len, "expires_in", &exp) != 0 || exp <= 0) exp = 3600;
    out->expires_in = exp;
    int rt = rq_json_top_string(body, len, "refresh_token", out->refresh_token, sizeof out->refresh_token, NULL);
    if (rt <= 0 || (size_t)rt >= sizeof out->refresh_token - 1) memset(out->refresh_token, 0, sizeof out->refresh_token);
    out->outcome = RQ_OAUTH_OK;
    return;
  }
  int temp_code = !strcasecmp(out->error, "temporarily_unavailable") || !strcasecmp(out->error, "server_error") ||
                  !strcasecmp(out->error, "slow_down");
  if (status == 429 || status >= 500 || temp_code || (status >= 200 && status < 300)) {
    out->outcome = RQ_OAUTH_TEMP;
    snprintf(out->detail, sizeof out->detail,
             "The OAuth token endpoint failed for now (HTTP %ld%s%s): the relay retries.", status,
             out->error[0] ? ", " : "", out->error);
    return;
  }
  if (is_refused(out->error) || status == 400 || status == 401 || status == 403) {
    if (!out->error[0]) snprintf(out->error, sizeof out->error, "http_%ld", status);
    out->outcome = RQ_OAUTH_REFUSED;
    refused_detail(out);
    return;
  }
  out->outcome = RQ_OAUTH_TEMP;
  snprintf(out->detail, sizeof out->detail,
           "The OAuth token endpoint answered HTTP %ld: the relay retries; check oauth_token_url if it persists.",
           status);
}

void rq_oauth_token_class(enum rq_oauth_outcome outcome, const char *detail, struct rq_class *out) {
  memset(out, 0, sizeof *out);
  out->verdict = outcome == RQ_OAUTH_POLICY ? RQ_PERM : RQ_TEMP;
  out->error = outcome == RQ_OAUTH_POLICY ? RQ_ERR_POLICY : RQ_ERR_AUTH;
  out->trip_now = outcome == RQ_OAUTH_REFUSED;
  rq_text_sanitize(out->detail, sizeof out->detail, detail ? detail : "", detail ? strnlen(detail, 1024) : 0);
}
