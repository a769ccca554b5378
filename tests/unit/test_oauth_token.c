/* Unit tests for oauth_token.c (token endpoint answers) and
 * rq_json_top_int. */
#include <string.h>

#include "check.h"
#include "classify.h"
#include "json_scan.h"
#include "oauth_token.h"
#include "smtp_proto.h"
#include "util.h"

static struct rq_oauth_token T;

static void parse(long status, const char *body) {
  rq_oauth_token_parse(status, body, strlen(body), &T);
}

int main(void) {
  long long v = 0;
  const char *b = "{\"a\": {\"expires_in\": 5}, \"expires_in\": 3599, \"s\": \"3600\"}";
  CHECK_INT(rq_json_top_int(b, strlen(b), "expires_in", &v), ==, 0);
  CHECK_INT(v, ==, 3599);
  CHECK_INT(rq_json_top_int(b, strlen(b), "s", &v), ==, 0);
  CHECK_INT(v, ==, 3600);
  CHECK_INT(rq_json_top_int(b, strlen(b), "a", &v), ==, RQ_JSON_ABSENT);
  CHECK_INT(rq_json_top_int("{\"x\":-4}", 8, "x", &v), ==, RQ_JSON_ABSENT);
  CHECK_INT(rq_json_top_int("{\"x\":\"4a\"}", 10, "x", &v), ==, RQ_JSON_ABSENT);

  /* Microsoft: rotated refresh token, expires_in as a number. */
  parse(200, "{\"token_type\":\"Bearer\",\"scope\":\"https://outlook.office.com/SMTP.Send\",\"expires_in\":4479,"
             "\"ext_expires_in\":4479,\"access_token\":\"eyJ0eXAi.AAA.BBB\",\"refresh_token\":\"M.C5_new\"}");
  CHECK_INT(T.outcome, ==, RQ_OAUTH_OK);
  CHECK_STR(T.access_token, "eyJ0eXAi.AAA.BBB");
  CHECK_STR(T.refresh_token, "M.C5_new");
  CHECK_INT(T.expires_in, ==, 4479);
  /* Google: no refresh token on refresh; no expires_in -> an hour. */
  parse(200, "{\"access_token\": \"ya29.a0\", \"token_type\": \"Bearer\"}");
  CHECK_INT(T.outcome, ==, RQ_OAUTH_OK);
  CHECK_STR(T.refresh_token, "");
  CHECK_INT(T.expires_in, ==, 3600);
  /* A token with a control byte or space is not sent in SASL. */
  parse(200, "{\"access_token\": \"ya29 a0\"}");
  CHECK_INT(T.outcome, ==, RQ_OAUTH_TEMP);
  CHECK_STR(T.access_token, "");
  parse(200, "{\"access_token\": \"x\", \"token_type\": \"mac\"}");
  CHECK_INT(T.outcome, ==, RQ_OAUTH_TEMP);
  parse(200, "<html>oops</html>");
  CHECK_INT(T.outcome, ==, RQ_OAUTH_TEMP);

  /* Refusals: the tenant must sign in again. */
  parse(400, "{\"error\":\"invalid_grant\",\"error_description\":\"AADSTS70000: The provided value for the "
             "'refresh_token' is not valid. Trace ID: 1234 Correlation ID: 5678\",\"error_codes\":[70000]}");
  CHECK_INT(T.outcome, ==, RQ_OAUTH_REFUSED);
  CHECK_STR(T.error, "invalid_grant");
  CHECK(strstr(T.detail, "must sign in again") != NULL);
  CHECK(strstr(T.detail, "AADSTS70000") != NULL);
  CHECK(strstr(T.detail, "Trace ID") == NULL);
  parse(400, "{\"error\": \"invalid_grant\", \"error_description\": \"Token has been expired or revoked.\"}");
  CHECK_INT(T.outcome, ==, RQ_OAUTH_REFUSED);
  CHECK(strstr(T.detail, "Token has been expired or revoked.") != NULL);
  parse(401, "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000222: The provided client secret "
             "keys are expired.\"}");
  CHECK_INT(T.outcome, ==, RQ_OAUTH_REFUSED);
  CHECK(strstr(T.detail, "oauth_client_secret") != NULL);
  CHECK(strstr(T.detail, "must sign in again") != NULL);
  parse(401, "");
  CHECK_INT(T.outcome, ==, RQ_OAUTH_REFUSED);
  CHECK_STR(T.error, "http_401");

  /* Temporary. */
  parse(503, "{\"error\":\"temporarily_unavailable\"}");
  CHECK_INT(T.outcome, ==, RQ_OAUTH_TEMP);
  parse(429, "");
  CHECK_INT(T.outcome, ==, RQ_OAUTH_TEMP);
  parse(0, "");
  CHECK_INT(T.outcome, ==, RQ_OAUTH_TEMP);
  CHECK(strstr(T.detail, "retries") != NULL);
  parse(404, "not found");
  CHECK_INT(T.outcome, ==, RQ_OAUTH_TEMP);
  /* SASL XOAUTH2's initial response: Google's worked example. */
  struct rq_buf cmd;
  rq_buf_init(&cmd);
  rq_smtp_cmd_auth_xoauth2(&cmd, "someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg");
  CHECK_STR(cmd.data, "AUTH XOAUTH2 dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52"
                    "YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==\r\n");
  rq_buf_free(&cmd);
  struct rq_smtp_caps caps;
  const char *ehlo = "250-smtp.gmail.com at your service\r\n250-AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN "
                     "OAUTHBEARER XOAUTH\r\n250 SMTPUTF8\r\n";
  memset(&caps, 0, sizeof caps);
  rq_smtp_caps_parse(ehlo, strlen(ehlo), &caps);
  CHECK(caps.auth_xoauth2 && caps.auth_plain && caps.auth_login);

  /* Microsoft with Basic authentication off, on a password route. */
  struct { int code; const char *enh, *text; int stage; int verdict, error; const char *needle; } rows[] = {
      {535, "5.7.139", "Authentication unsuccessful, basic authentication is disabled.", RQ_STAGE_AUTH, RQ_PERM,
       RQ_ERR_AUTH, "switch to smtp_auth=xoauth2"},
      {550, "5.7.30", "Basic authentication is not supported for Client Submission.", RQ_STAGE_MAIL, RQ_PERM,
       RQ_ERR_AUTH, "switch to smtp_auth=xoauth2"},
      {535, "5.7.3", "Authentication unsuccessful", RQ_STAGE_AUTH, RQ_PERM, RQ_ERR_AUTH, "smtp_auth=xoauth2"},
      {535, "5.7.139", "Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.",
       RQ_STAGE_AUTH, RQ_PERM, RQ_ERR_AUTH, "enable Authenticated SMTP"},
      {454, "4.7.0", "Temporary authentication failure", RQ_STAGE_AUTH, RQ_TEMP, RQ_ERR_AUTH, "retries"},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    struct rq_reply r;
    struct rq_class c;
    memset(&r, 0, sizeof r);
    r.code = rows[i].code;
    snprintf(r.enhanced, sizeof r.enhanced, "%s", rows[i].enh);
    snprintf(r.text, sizeof r.text, "%s", rows[i].text);
    rq_classify_smtp((enum rq_smtp_stage)rows[i].stage, &r, &c);
    CHECK_INT(c.verdict, ==, rows[i].verdict);
    CHECK_INT(c.error, ==, rows[i].error);
    if (!strstr(c.detail, rows[i].needle)) fprintf(stderr, "row %zu: %s\n", i, c.detail);
    CHECK(strstr(c.detail, rows[i].needle) != NULL);
  }
  /* How a job reads a failed request: policy stays policy; a refusal
   * trips the breaker at once. */
  struct rq_class c;
  rq_oauth_token_class(RQ_OAUTH_REFUSED, "Sign in again.", &c);
  CHECK_INT(c.error, ==, RQ_ERR_AUTH);
  CHECK_INT(c.verdict, ==, RQ_TEMP);
  CHECK(c.trip_now);
  CHECK_STR(c.detail, "Sign in again.");
  rq_oauth_token_class(RQ_OAUTH_POLICY, "Not https.", &c);
  CHECK_INT(c.error, ==, RQ_ERR_POLICY);
  CHECK_INT(c.verdict, ==, RQ_PERM);
  CHECK(!c.trip_now);
  rq_oauth_token_class(RQ_OAUTH_TEMP, NULL, &c);
  CHECK_INT(c.error, ==, RQ_ERR_AUTH);
  CHECK_STR(c.detail, "");
  return CHECK_DONE();
}
