/*
 * Unit tests for the pure parts of producer/cli/probe.c: the trace that
 * reads the worker's SMTP session steps (stages, replies, EHLO keywords,
 * that a challenge is not kept), the plain-words explanations and the
 * report printers. The probes themselves run against real servers in
 * tests/e2e/test_cli_tenant.py.
 *
 * probe.c is compiled in (curl's UNITTEST idea) to reach its static
 * tracer; the rest of the CLI comes from the relayq_cli library.
 */
#include "probe.c"

#include "check.h"

/* The steps as the session reports them (rq_smtp_step): whole replies,
 * and our commands by verb only. */
static void in(struct check *c, const char *reply) {
  const struct rq_smtp_step st = {.kind = RQ_SMTP_STEP_REPLY, .raw = reply, .len = strlen(reply)};
  on_step(&st, c);
}

static void out(struct check *c, const char *verb) {
  const struct rq_smtp_step st = {.kind = RQ_SMTP_STEP_COMMAND, .verb = verb};
  on_step(&st, c);
}

static void tls(struct check *c, long verify) {
  const struct rq_smtp_step st = {.kind = RQ_SMTP_STEP_TLS, .tls = "TLSv1.3 / TLS_AES_256_GCM_SHA384",
                                  .verify = verify};
  on_step(&st, c);
}

static void test_starttls_auth_dialogue(void) {
  struct check *c = calloc(1, sizeof *c);
  struct trace *t = &c->t;
  const struct rq_smtp_step conn = {.kind = RQ_SMTP_STEP_CONNECTED, .peer = "127.0.0.1", .dns_ms = 1.5};
  on_step(&conn, c);
  CHECK_STR(c->peer, "127.0.0.1");
  in(c, "220 mx.example ESMTP ready\r\n");
  out(c, "EHLO");
  in(c, "250-mx.example hello\r\n250-SIZE 1000\r\n250-STARTTLS\r\n250 8BITMIME\r\n");
  out(c, "STARTTLS");
  in(c, "220 2.0.0 go ahead\r\n");
  tls(c, X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT);
  out(c, "EHLO");
  in(c, "250-mx.example hello\r\n250 AUTH PLAIN LOGIN\r\n");
  out(c, "AUTH");
  in(c, "235 2.7.0 Authentication successful\r\n");

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
  CHECK_STR(t->verify_problem, "self-signed certificate");
  CHECK(t->st[T_EHLO_TLS].seen);
  CHECK_STR(t->st[T_EHLO_TLS].offers, "AUTH PLAIN LOGIN");
  CHECK_INT(t->st[T_AUTH].reply.code, ==, 235);
  CHECK(!t->in_auth);

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
  free(c);
}

/* AUTH LOGIN: the challenges are not kept; a refused login is told in
 * plain words. Then MAIL FROM and RCPT TO: a refused recipient. */
static void test_auth_login_refused_and_rcpt(void) {
  struct check *c = calloc(1, sizeof *c);
  struct trace *t = &c->t;
  in(c, "220 ready\r\n");
  out(c, "EHLO");
  in(c, "250 AUTH LOGIN\r\n");
  out(c, "AUTH");
  in(c, "334 VXNlcm5hbWU6\r\n");
  in(c, "334 UGFzc3dvcmQ6\r\n");
  in(c, "535 5.7.8 Authentication credentials invalid\r\n");
  CHECK_INT(t->cur, ==, T_AUTH);
  CHECK_INT(t->st[T_AUTH].reply.code, ==, 535);
  CHECK_STR(t->st[T_AUTH].reply.enhanced, "5.7.8");
  CHECK(!t->st[T_EHLO_TLS].seen);

  struct rq_probe_report r;
  memset(&r, 0, sizeof r);
  r.ok = 1;
  char hp[] = "mx.example:587";
  struct rq_probe_smtp o = {.host = "mx.example", .port = 587, .user = "alice", .rcpt = "nobody@example.com"};
  explain_proto(&r, t, T_AUTH, RQ_SMTP_ERR_AUTH, "", hp, &o);
  CHECK_STR(r.error, "login refused (535 5.7.8): check smtp_user and smtp_password");
  CHECK_STR(r.category, "auth");
  add_proto_stages(&r, t, now_ms(), T_AUTH, NULL);
  CHECK_INT(r.n_stages, ==, 3);
  CHECK(!r.stages[2].ok);

  memset(c, 0, sizeof *c);
  in(c, "220 ready\r\n");
  out(c, "EHLO");
  in(c, "250 ok\r\n");
  out(c, "MAIL");
  in(c, "250 2.1.0 ok\r\n");
  out(c, "RCPT");
  in(c, "550 5.1.1 No such user\r\n");
  memset(&r, 0, sizeof r);
  r.ok = 1;
  explain_proto(&r, t, T_RCPT, RQ_SMTP_ERR_REJECTED, "", hp, &o);
  CHECK_STR(r.error, "the server refused the recipient nobody@example.com (550 5.1.1: No such user)");
  CHECK_STR(r.category, "recipient");
  add_proto_stages(&r, t, now_ms(), T_RCPT, NULL);
  CHECK_INT(r.n_stages, ==, 4);
  CHECK_STR(r.stages[2].name, "MAIL FROM");
  CHECK_STR(r.stages[3].name, "RCPT TO");
  CHECK(!r.stages[3].ok);
  free(c);
}

/* A refused greeting; a server that never greets leaves the banner
 * unanswered. */
static void test_refusal_and_silence(void) {
  struct check *c = calloc(1, sizeof *c);
  in(c, "554 5.7.1 no service for you\r\n");
  CHECK_INT(c->t.st[T_BANNER].reply.code, ==, 554);
  struct rq_probe_report r;
  memset(&r, 0, sizeof r);
  r.ok = 1;
  struct rq_probe_smtp o = {.host = "mx.example", .port = 25, .security = RQ_SEC_STARTTLS};
  explain_proto(&r, &c->t, T_BANNER, RQ_SMTP_ERR_REJECTED, "", "mx.example:25", &o);
  CHECK(strstr(r.error, "refused the session at its greeting (554 5.7.1: no service for you)") != NULL);

  memset(c, 0, sizeof *c);
  memset(&r, 0, sizeof r);
  explain_proto(&r, &c->t, T_BANNER, RQ_SMTP_ERR_TIMEOUT, "", "mx.example:465", &o);
  CHECK(strstr(r.error, "set smtp_security=tls") != NULL);
  CHECK_STR(r.category, "timeout");
  free(c);
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
  test_auth_login_refused_and_rcpt();
  test_refusal_and_silence();
  test_cert_explanations();
  test_transport_explanations();
  test_mailgun_message();
  test_print_json();
  return CHECK_DONE();
}
