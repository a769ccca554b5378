/*
 * Unit tests for the pure parts of producer/cli/net/probe.c: the trace that
 * reads the worker's SMTP session steps (stages, replies, EHLO keywords,
 * that a challenge is not kept), where a failure shows and that its words
 * are the worker's (the mail core's classification), and the report
 * printers. The probes themselves run against real servers in
 * tests/e2e/test_cli_tenant.py.
 *
 * probe.c is compiled in (curl's UNITTEST idea) to reach its static
 * tracer; the rest of the CLI comes from the relayq_cli_net library.
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

/* How the session ended, as its callback reports it. */
static void ended(struct check *c, int err, int stage, int code, const char *enhanced, const char *reply) {
  struct rq_smtp_result res;
  memset(&res, 0, sizeof res);
  res.err = err;
  res.stage = stage;
  res.code = code;
  snprintf(res.enhanced, sizeof res.enhanced, "%s", enhanced);
  snprintf(res.reply, sizeof res.reply, "%s", reply);
  snprintf(res.errmsg, sizeof res.errmsg, "%s", code ? "" : reply);
  on_checked(&res, c);
}

/* AUTH LOGIN: the challenges are not kept; a refused login is told in
 * the worker's words. Then MAIL FROM and RCPT TO: a refused recipient. */
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
  struct rq_probe_smtp o = {.host = "mx.example", .port = 587, .user = "alice", .rcpt = "nobody@example.com"};
  c->connected_at = 1;
  ended(c, RQ_SMTP_ERR_AUTH, RQ_STAGE_AUTH, 535, "5.7.8", "Authentication credentials invalid");
  enum tstage step;
  CHECK_INT(where_failed(&o, c, &step), ==, W_PROTO);
  CHECK_INT(step, ==, T_AUTH);
  rq_probe_fail(&r, &c->cls);
  CHECK_STR(r.error, "The tenant's server refused the login (535 5.7.8): check smtp_user and smtp_password");
  CHECK_STR(rq_errcat_name(r.cls.error), "auth");
  CHECK_INT(r.cls.verdict, ==, RQ_PERM);
  add_proto_stages(&r, t, now_ms(), step, NULL);
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
  c->connected_at = 1;
  ended(c, RQ_SMTP_ERR_REJECTED, RQ_STAGE_RCPT, 550, "5.1.1", "No such user");
  CHECK_INT(where_failed(&o, c, &step), ==, W_PROTO);
  CHECK_INT(step, ==, T_RCPT);
  rq_probe_fail(&r, &c->cls);
  CHECK(strstr(r.error, "rejected the recipient address (550 5.1.1)") != NULL);
  CHECK_STR(rq_errcat_name(r.cls.error), "recipient_rejected");
  add_proto_stages(&r, t, now_ms(), step, NULL);
  CHECK_INT(r.n_stages, ==, 4);
  CHECK_STR(r.stages[2].name, "MAIL FROM");
  CHECK_STR(r.stages[3].name, "RCPT TO");
  CHECK(!r.stages[3].ok);
  free(c);
}

/* A server that never greets: the banner is the failed step, and the
 * probe adds which setting that points at. Before any connection, the
 * failure is the connect step's. */
static void test_silence_and_no_connection(void) {
  struct check *c = calloc(1, sizeof *c);
  struct rq_probe_report r;
  memset(&r, 0, sizeof r);
  struct rq_probe_smtp o = {.host = "mx.example", .port = 465, .security = RQ_SEC_STARTTLS};
  c->connected_at = 1;
  ended(c, RQ_SMTP_ERR_TIMEOUT, RQ_STAGE_BANNER, 0, "", "No progress for 2000 ms while waiting for the greeting.");
  enum tstage step;
  enum where w = where_failed(&o, c, &step);
  CHECK_INT(w, ==, W_PROTO);
  CHECK_INT(step, ==, T_BANNER);
  rq_probe_fail(&r, &c->cls);
  hint(&r, &o, c, w, step);
  CHECK_STR(rq_errcat_name(r.cls.error), "connect");
  CHECK(strstr(r.error, "The server did not answer in time") == r.error);
  CHECK_INT(r.n_notes, ==, 1);
  CHECK(strstr(r.notes[0], "set smtp_security=tls") != NULL);

  memset(c, 0, sizeof *c);
  ended(c, RQ_SMTP_ERR_CONNECT, RQ_STAGE_CONNECT, 0, "", "Could not connect to 127.0.0.1 port 9: connection refused.");
  CHECK_INT(where_failed(&o, c, &step), ==, W_CONNECT);
  CHECK_STR(rq_errcat_name(c->cls.error), "connect");
  CHECK(strstr(c->cls.detail, "connection refused") != NULL);
  free(c);
}

/* A certificate that fails verification: tls, permanent, and the advice
 * the worker's status gives (pin it with `relayq tenant trust`). */
static void test_certificate_in_the_workers_words(void) {
  struct check *c = calloc(1, sizeof *c);
  struct rq_probe_smtp o = {.host = "mx.example", .port = 587, .security = RQ_SEC_STARTTLS};
  c->connected_at = 1;
  ended(c, RQ_SMTP_ERR_TLS_CERT, RQ_STAGE_TLS, 0, "", "certificate verify failed: self-signed certificate");
  enum tstage step;
  CHECK_INT(where_failed(&o, c, &step), ==, W_PROTO);
  CHECK_INT(step, ==, T_STARTTLS);
  CHECK_STR(rq_errcat_name(c->cls.error), "tls");
  CHECK_INT(c->cls.verdict, ==, RQ_PERM);
  CHECK(strstr(c->cls.detail, "self-signed certificate") != NULL);
  CHECK(strstr(c->cls.detail, "relayq tenant trust") != NULL);
  o.security = RQ_SEC_TLS;
  CHECK_INT(where_failed(&o, c, &step), ==, W_TLS);
  free(c);
}

/* Mailgun's transfer failures: where they show, by their kind. */
static void test_http_failures_show_where(void) {
  CHECK_INT(where_of_kind(rq_curl_fail(CURLE_COULDNT_RESOLVE_HOST, ""), 0), ==, W_DNS);
  CHECK_INT(where_of_kind(rq_curl_fail(CURLE_COULDNT_CONNECT, ""), 0), ==, W_CONNECT);
  CHECK_INT(where_of_kind(rq_curl_fail(CURLE_SSL_CONNECT_ERROR, "wrong version number"), 1), ==, W_TLS);
  CHECK_INT(where_of_kind(rq_curl_fail(CURLE_OPERATION_TIMEDOUT, ""), 0), ==, W_CONNECT);
  CHECK_INT(where_of_kind(rq_curl_fail(CURLE_OPERATION_TIMEDOUT, ""), 1), ==, W_PROTO);
  struct rq_probe_report r;
  memset(&r, 0, sizeof r);
  struct rq_class cls;
  rq_classify_http(401, "Forbidden", 9, NULL, 0, &cls);
  rq_probe_fail(&r, &cls);
  CHECK_STR(rq_errcat_name(r.cls.error), "auth");
  CHECK(strstr(r.error, "Mailgun rejected the API key (HTTP 401: Forbidden)") == r.error);
  CHECK(r.error[strlen(r.error) - 1] != '.');
}

static void test_print_json(void) {
  struct rq_probe_report r;
  memset(&r, 0, sizeof r);
  snprintf(r.target, sizeof r.target, "smtp \"q\":1");
  add_stage(&r, "DNS", 1, 0.5, "a -> b");
  add_stage(&r, "TCP connect", 0, -1, "refused");
  fail_kind(&r, RQ_FAIL_CONNECT, RQ_STAGE_CONNECT, "connection refused by a:1");
  rq_probe_note(&r, "note %d", 1);
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  rq_probe_print_json(f, &r);
  fclose(f);
  CHECK(strstr(buf, "\"ok\":false,\"target\":\"smtp \\\"q\\\":1\"") != NULL);
  CHECK(strstr(buf, "{\"name\":\"TCP connect\",\"ok\":false,\"ms\":null,\"detail\":\"refused\"}") != NULL);
  CHECK(strstr(buf, "\"certificate\":null,\"notes\":[\"note 1\"],\"category\":\"connect\",\"verdict\":\"temp\","
                   "\"error\":\"Could not connect to the server (connection refused by a:1)") != NULL);
  free(buf);
}

int main(void) {
  test_starttls_auth_dialogue();
  test_auth_login_refused_and_rcpt();
  test_silence_and_no_connection();
  test_certificate_in_the_workers_words();
  test_http_failures_show_where();
  test_print_json();
  return CHECK_DONE();
}
