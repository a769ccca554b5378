/* Unit tests for oauth_token.c (token endpoint answers) and
 * rq_json_top_int. */
#include <string.h>

#include "check.h"
#include "json_scan.h"
#include "oauth_token.h"

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
  return CHECK_DONE();
}
