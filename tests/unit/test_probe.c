/*
 * Unit tests for the pure parts of producer/cli/probe.c: the trace that
 * reads libcurl's debug stream (stages, replies, EHLO keywords, and that
 * nothing we send during AUTH is ever kept), the plain-words explanations
 * and the report printers. The probes themselves run against real servers
 * in tests/e2e/test_cli_tenant.py.
 *
 * probe.c is compiled in (curl's UNITTEST idea) to reach its static dialogue
 * tracer; the rest of the CLI comes from the relayq_cli library.
 */
#include "probe.c"

#include "check.h"

#define SECRET_B64 "AGFsaWNlAHMzY3JldC1wYXNz" /* "\0alice\0s3cret-pass" */

static void feed(struct trace *t, curl_infotype type, const char *s) {
  debug_cb(NULL, type, (char *)s, strlen(s), t);
}

/* 1 when needle occurs anywhere in the bytes of the trace. */
static int trace_holds(const struct trace *t, const char *needle) {
  return memmem(t, sizeof *t, needle, strlen(needle)) != NULL;
}

static void test_starttls_auth_dialogue(void) {
  struct trace *t = calloc(1, sizeof *t);
  feed(t, CURLINFO_TEXT, "  Trying 127.0.0.1:2525...\n");
  feed(t, CURLINFO_HEADER_IN, "220 mx.example ESMTP ready\r\n");
  feed(t, CURLINFO_HEADER_OUT, "EHLO client\r\n");
  /* A multi-line reply, split inside a line across callbacks. */
  feed(t, CURLINFO_HEADER_IN, "250-mx.example hello\r\n250-SIZE 1000\r\n250-STA");
  feed(t, CURLINFO_HEADER_IN, "RTTLS\r\n250 8BITMIME\r\n");
  feed(t, CURLINFO_HEADER_OUT, "STARTTLS\r\n");
  feed(t, CURLINFO_HEADER_IN, "220 2.0.0 go ahead\r\n");
  feed(t, CURLINFO_TEXT, "SSL connection using TLSv1.3 / TLS_AES_256_GCM_SHA384\n");
  feed(t, CURLINFO_TEXT, " SSL certificate verify result: self-signed certificate (18), continuing anyway.\n");
  feed(t, CURLINFO_HEADER_OUT, "EHLO client\r\n");
  feed(t, CURLINFO_HEADER_IN, "250-mx.example hello\r\n250 AUTH PLAIN LOGIN\r\n");
  feed(t, CURLINFO_HEADER_OUT, "AUTH PLAIN " SECRET_B64 "\r\n");
  feed(t, CURLINFO_HEADER_IN, "235 2.7.0 Authentication successful\r\n");

  CHECK_INT(t->cur, ==, T_AUTH);
  CHECK(t->st[T_BANNER].answered);
  CHECK_INT(t->st[T_BANNER].reply.code, ==, 220);
  CHECK_STR(t->st[T_BANNER].reply.text, "mx.example ESMTP ready");
  CHECK_INT(t->st[T_EHLO].reply.code, ==, 250);
  CHECK_STR(t->st[T_EHLO].reply.text, "mx.example hello");
  CHECK_STR(t->st[T_EHLO].offers, "SIZE 1000, STARTTLS, 8BITMIME");
  CHECK(t->offers_starttls);
  CHECK_STR(t->st[T_STARTTLS].reply.enhanced, "2.0.0");
  CHECK(t->tls_done);
  CHECK_STR(t->tls_info, "TLSv1.3 / TLS_AES_256_GCM_SHA384");
  CHECK_STR(t->verify_problem, "self-signed certificate (18)");
  CHECK(t->st[T_EHLO_TLS].seen);
  CHECK_STR(t->st[T_EHLO_TLS].offers, "AUTH PLAIN LOGIN");
  CHECK_INT(t->st[T_AUTH].reply.code, ==, 235);
  CHECK(!t->in_auth);
  CHECK(!trace_holds(t, SECRET_B64));

  /* The report built from it names every step in order. */
  struct rq_probe_report r;
  memset(&r, 0, sizeof r);
  r.ok = 1;
  add_proto_stages(&r, t, now_ms(), T__COUNT, NULL);
  CHECK_INT(r.n_stages, ==, 5);
  CHECK_STR(r.stages[0].name, "banner");
  CHECK_STR(r.stages[3].name, "EHLO (TLS)");
  CHECK(strstr(r.stages[2].detail, "TLSv1.3") != NULL);
  CHECK_STR(r.stages[4].detail, "235 2.7.0 Authentication successful");
  free(t);
}

/* AUTH LOGIN: the user name and password lines after each 334 are ours and
 * must be skipped even when they spell a verb; the challenges are not
 * kept either. */
static void test_auth_login_refused(void) {
  struct trace *t = calloc(1, sizeof *t);
  feed(t, CURLINFO_HEADER_IN, "220 ready\r\n");
  feed(t, CURLINFO_HEADER_OUT, "EHLO c\r\n");
  feed(t, CURLINFO_HEADER_IN, "250 AUTH LOGIN\r\n");
  feed(t, CURLINFO_HEADER_OUT, "AUTH LOGIN\r\n");
  feed(t, CURLINFO_HEADER_IN, "334 VXNlcm5hbWU6\r\n");
  feed(t, CURLINFO_HEADER_OUT, "EHLO-looking-user\r\n"); /* a user name that starts like a verb */
  feed(t, CURLINFO_HEADER_IN, "334 UGFzc3dvcmQ6\r\n");
  feed(t, CURLINFO_HEADER_OUT, "c2VjcmV0LXBhc3N3b3Jk\r\n");
  feed(t, CURLINFO_HEADER_IN, "535 5.7.8 Authentication credentials invalid\r\n");
  CHECK_INT(t->cur, ==, T_AUTH);
  CHECK_INT(t->st[T_AUTH].reply.code, ==, 535);
  CHECK_STR(t->st[T_AUTH].reply.enhanced, "5.7.8");
  CHECK(!t->st[T_EHLO_TLS].seen);
  CHECK(!trace_holds(t, "c2VjcmV0LXBhc3N3b3Jk"));
  CHECK(!trace_holds(t, "EHLO-looking-user"));

  struct rq_probe_report r;
  memset(&r, 0, sizeof r);
  r.ok = 1;
  char hp[] = "mx.example:587";
  struct rq_probe_smtp o = {.host = "mx.example", .port = 587, .user = "alice"};
  explain_proto(&r, t, T_AUTH, CURLE_LOGIN_DENIED, "", hp, &o);
  CHECK_STR(r.error, "login refused (535 5.7.8): check smtp_user and smtp_password");
  CHECK_STR(r.category, "auth");
  add_proto_stages(&r, t, now_ms(), T_AUTH, NULL);
  CHECK_INT(r.n_stages, ==, 3);
  CHECK(!r.stages[2].ok);
  free(t);
}

/* QUIT's 221 belongs to no step; a server that never greets leaves the
 * banner unanswered. */
static void test_quit_and_silence(void) {
  struct trace *t = calloc(1, sizeof *t);
  feed(t, CURLINFO_HEADER_IN, "554 5.7.1 no service for you\r\n");
  feed(t, CURLINFO_HEADER_OUT, "QUIT\r\n");
  feed(t, CURLINFO_HEADER_IN, "221 bye\r\n");
  CHECK_INT(t->st[T_BANNER].reply.code, ==, 554);
  struct rq_probe_report r;
  memset(&r, 0, sizeof r);
  r.ok = 1;
  struct rq_probe_smtp o = {.host = "mx.example", .port = 25, .security = RQ_SEC_STARTTLS};
  explain_proto(&r, t, T_BANNER, CURLE_WEIRD_SERVER_REPLY, "", "mx.example:25", &o);
  CHECK(strstr(r.error, "refused the session at its greeting (554 5.7.1: no service for you)") != NULL);
  free(t);

  t = calloc(1, sizeof *t);
  memset(&r, 0, sizeof r);
  explain_proto(&r, t, T_BANNER, CURLE_OPERATION_TIMEDOUT, "", "mx.example:465", &o);
  CHECK(strstr(r.error, "set smtp_security=tls") != NULL);
  CHECK_STR(r.category, "timeout");
  free(t);
}

static void test_cert_explanations(void) {
  char out[512];
  rq_probe_explain_cert("SSL certificate problem: self-signed certificate", "mx", out, sizeof out);
  CHECK_STR(out, "TLS: the server's certificate is self-signed and smtp_tls_verify=1: install a trusted "
                 "certificate or set smtp_tls_verify=0");
  rq_probe_explain_cert("SSL certificate problem: self-signed certificate in certificate chain", "mx", out,
                        sizeof out);
  CHECK(strstr(out, "chain ends in a self-signed root") != NULL);
  rq_probe_explain_cert("SSL certificate problem: certificate has expired", "mx", out, sizeof out);
  CHECK(strstr(out, "has expired") != NULL);
  rq_probe_explain_cert("SSL certificate problem: unable to get local issuer certificate", "mx", out, sizeof out);
  CHECK(strstr(out, "authority this machine does not trust") != NULL);
  rq_probe_explain_cert("SSL: no alternative certificate subject name matches target host name 'mx'", "mx", out,
                        sizeof out);
  CHECK(strstr(out, "not issued for mx") != NULL);
  rq_probe_explain_cert("", "mx", out, sizeof out);
  CHECK(strstr(out, "was not accepted (verification failed)") != NULL);
}

static void test_transport_explanations(void) {
  struct rq_probe_report r;
  memset(&r, 0, sizeof r);
  CHECK_INT(explain_transport(&r, CURLE_COULDNT_RESOLVE_HOST, "", 0, "smtp.example.com", 587, 0, 1000,
                              "smtp_host", 1), ==, W_DNS);
  CHECK(strstr(r.error, "DNS: cannot resolve smtp.example.com:") == r.error);
  memset(&r, 0, sizeof r);
  CHECK_INT(explain_transport(&r, CURLE_COULDNT_CONNECT, "", ECONNREFUSED, "127.0.0.1", 2525, 0, 1000,
                              "smtp_host", 1), ==, W_CONNECT);
  CHECK(strstr(r.error, "connection refused by 127.0.0.1:2525:") == r.error);
  memset(&r, 0, sizeof r);
  CHECK_INT(explain_transport(&r, CURLE_SSL_CONNECT_ERROR, "error:0A00010B:SSL routines::wrong version number", 0,
                              "mx", 25, 1, 1000, "smtp_host", 1), ==, W_TLS);
  CHECK(strstr(r.error, "use smtp_security=starttls") != NULL);
  memset(&r, 0, sizeof r);
  CHECK_INT(explain_transport(&r, CURLE_OPERATION_TIMEDOUT, "", 0, "mx", 25, 0, 3000, "smtp_host", 1), ==,
            W_CONNECT);
  CHECK(strstr(r.error, "no answer from mx:25 within 3 s") != NULL);
}

static void test_mailgun_message(void) {
  struct body b;
  char out[200];
  memset(&b, 0, sizeof b);
  snprintf(b.data, sizeof b.data, "{\"message\": \"Domain not found: x \\\"y\\\"\"}");
  b.len = strlen(b.data);
  mailgun_message(&b, out, sizeof out);
  CHECK_STR(out, "Domain not found: x \\\"y\\\"");
  snprintf(b.data, sizeof b.data, "Forbidden\n");
  b.len = strlen(b.data);
  mailgun_message(&b, out, sizeof out);
  CHECK_STR(out, "Forbidden");
}

static void test_print_json(void) {
  struct rq_probe_report r;
  memset(&r, 0, sizeof r);
  snprintf(r.target, sizeof r.target, "smtp \"q\":1");
  add_stage(&r, "DNS", 1, 0.5, "a -> b");
  add_stage(&r, "TCP connect", 0, -1, "refused");
  r.category = "connect";
  snprintf(r.error, sizeof r.error, "connection refused by a:1");
  rq_probe_note(&r, "note %d", 1);
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  rq_probe_print_json(f, &r);
  fclose(f);
  CHECK(strstr(buf, "\"ok\":false,\"target\":\"smtp \\\"q\\\":1\"") != NULL);
  CHECK(strstr(buf, "{\"name\":\"TCP connect\",\"ok\":false,\"ms\":null,\"detail\":\"refused\"}") != NULL);
  CHECK(strstr(buf, "\"certificate\":null,\"notes\":[\"note 1\"],\"category\":\"connect\"") != NULL);
  free(buf);
}

int main(void) {
  test_starttls_auth_dialogue();
  test_auth_login_refused();
  test_quit_and_silence();
  test_cert_explanations();
  test_transport_explanations();
  test_mailgun_message();
  test_print_json();
  return CHECK_DONE();
}
