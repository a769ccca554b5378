/*
 * test_smtp_live: drives the SMTP transport (smtp.c over smtp_conn.c and
 * tlsio.c) against live servers. Starts no server itself:
 * tests/e2e/test_smtp_transport.py starts the fixtures and runs this
 * binary with the scenario in the environment (ctest runs it through
 * e2e_test_smtp_transport, not on its own). Without RELAYQ_TEST_SMTP_URL
 * it checks nothing, so it says so and exits 2 rather than pass.
 *
 * Environment (all but the URL optional):
 *   RELAYQ_TEST_SMTP_URL         smtp://127.0.0.1:PORT or smtps://... (target "a")
 *   RELAYQ_TEST_SMTP_URL2        a second server (target "b"), for scenario two
 *   RELAYQ_TEST_SMTP_SCENARIO    send (default) | abort | abort_in_cb | two | unit
 *   RELAYQ_TEST_SMTP_SECURITY    try | required | tls | plain (default: tls
 *                                for smtps, else try)
 *   RELAYQ_TEST_SMTP_USER, _PASSWORD, _CAFILE, _KEY, _HELO
 *   RELAYQ_TEST_SMTP_VERIFY      1 (default) or 0
 *   RELAYQ_TEST_SMTP_FROM        envelope sender (default sender@example.org)
 *   RELAYQ_TEST_SMTP_RCPTS       comma-separated recipients
 *   RELAYQ_TEST_SMTP_MSG_FILE    message bytes (default: a small built-in one)
 *   RELAYQ_TEST_SMTP_COUNT       transactions (default 1); in scenario two,
 *                                those to target b (one after another)
 *   RELAYQ_TEST_SMTP_COUNT_A     scenario two: transactions to target a, all at once
 *   RELAYQ_TEST_SMTP_CONCURRENT  1: start all at once; 0 (default): one
 *                                after another, each from the previous
 *                                callback (or GAP_MS later)
 *   RELAYQ_TEST_SMTP_PARALLEL    N: keep N transactions in flight (throughput runs)
 *   RELAYQ_TEST_SMTP_GAP_MS      sequential runs: wait this long between sends
 *   RELAYQ_TEST_SMTP_MAX_CONN    max_connections for the key
 *   RELAYQ_TEST_SMTP_IDLE_MS     idle timeout of pooled connections
 *   RELAYQ_TEST_SMTP_MAX_TOTAL   the transport's global connection cap
 *   RELAYQ_TEST_SMTP_CONNECT_TIMEOUT_MS, _RESPONSE_TIMEOUT_MS, _TIMEOUT_MS
 *   RELAYQ_TEST_SMTP_QUIET       1: print RESULT lines only for failures
 *
 * Output: one line per transaction, "RESULT {json}" (t_ms: when it
 * completed, ms after the start), then "STALL {json}" (the longest the
 * loop went without running a 5 ms timer), "STATS {json}" (the
 * transport's counters) and "RATE {json}", then the check summary.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "check.h"
#include "live.h"
#include "classify.h"
#include "log.h"
#include "smtp.h"
#include "util.h"

#define MAX_RCPTS 64
#define MAX_COUNT 1000000

/* ---- settings from the environment (live.h reads them) --------------------------- */

struct target {
  struct rq_smtp_target t;
  char host[256];
  int count, started, done;
};

struct live {
  uv_loop_t loop;
  uv_timer_t tick, gap;
  uint64_t t0_ns, last_tick_ns, max_gap_ns;
  struct rq_smtp *smtp;
  struct target tg[2];
  int n_targets;
  const char *from;
  char *rcpt_store;
  const char *rcpts[MAX_RCPTS];
  size_t n_rcpts;
  char *msg;
  size_t msg_len;
  int total, done, concurrent, parallel, quiet, closed, finishing;
  long gap_ms;
  int abort_in_cb;
  int aborted; /* callbacks with RQ_SMTP_ERR_ABORTED */
  int failed;
  struct rq_smtp_stats stats;
};

/* "smtp[s]://host:port": enough URL for a test driver. */
static int parse_url(const char *url, struct target *tg, int *implicit) {
  const char *p;
  if (strncmp(url, "smtps://", 8) == 0) *implicit = 1, p = url + 8;
  else if (strncmp(url, "smtp://", 7) == 0) *implicit = 0, p = url + 7;
  else return -1;
  const char *colon = strrchr(p, ':');
  if (!colon || colon == p || (size_t)(colon - p) >= sizeof tg->host) return -1;
  memcpy(tg->host, p, (size_t)(colon - p));
  tg->host[colon - p] = '\0';
  tg->t.port = atoi(colon + 1);
  return tg->t.port > 0 ? 0 : -1;
}

static const char DEFAULT_MSG[] =
    "From: sender@example.org\r\n"
    "To: rcpt@example.org\r\n"
    "Subject: relayq live transport test\r\n"
    "Message-ID: <live@relayq.test>\r\n"
    "\r\n"
    "Hello.\r\n"
    ".A line starting with a dot (the transport stuffs it).\r\n"
    "Bye.\r\n";

static int load_target(struct target *tg, const char *url) {
  int implicit = 0;
  if (parse_url(url, tg, &implicit) != 0) {
    fprintf(stderr, "%s is not a URL this test understands.\n", url);
    return -1;
  }
  const char *sec = env("RELAYQ_TEST_SMTP_SECURITY", implicit ? "tls" : "try");
  struct rq_smtp_target *t = &tg->t;
  t->host = tg->host;
  t->security = strcmp(sec, "tls") == 0        ? RQ_SMTP_IMPLICIT_TLS
                : strcmp(sec, "required") == 0 ? RQ_SMTP_STARTTLS_REQUIRED
                : strcmp(sec, "plain") == 0    ? RQ_SMTP_PLAIN
                : strcmp(sec, "insecure") == 0 ? RQ_SMTP_STARTTLS_TRY_INSECURE
                                               : RQ_SMTP_STARTTLS_TRY;
  t->user = env("RELAYQ_TEST_SMTP_USER", NULL);
  t->password = env("RELAYQ_TEST_SMTP_PASSWORD", NULL);
  t->tls_verify = (int)env_long("RELAYQ_TEST_SMTP_VERIFY", 1);
  t->ca_file = env("RELAYQ_TEST_SMTP_CAFILE", NULL);
  t->key = env("RELAYQ_TEST_SMTP_KEY", NULL);
  t->helo_name = env("RELAYQ_TEST_SMTP_HELO", NULL);
  t->max_connections = (int)env_long("RELAYQ_TEST_SMTP_MAX_CONN", 0);
  t->connect_timeout_ms = env_long("RELAYQ_TEST_SMTP_CONNECT_TIMEOUT_MS", 5000);
  t->response_timeout_ms = env_long("RELAYQ_TEST_SMTP_RESPONSE_TIMEOUT_MS", 10000);
  t->timeout_ms = env_long("RELAYQ_TEST_SMTP_TIMEOUT_MS", 30000);
  return 0;
}

static int load_settings(struct live *L, const char *scenario) {
  if (load_target(&L->tg[0], getenv("RELAYQ_TEST_SMTP_URL")) != 0) return -1;
  L->n_targets = 1;
  int count = (int)env_long("RELAYQ_TEST_SMTP_COUNT", 1);
  if (count < 1 || count > MAX_COUNT) count = 1;
  L->tg[0].count = count;
  if (strcmp(scenario, "two") == 0) {
    if (load_target(&L->tg[1], env("RELAYQ_TEST_SMTP_URL2", "")) != 0) return -1;
    L->n_targets = 2;
    L->tg[1].count = count;
    L->tg[0].count = (int)env_long("RELAYQ_TEST_SMTP_COUNT_A", 1);
  }
  L->from = env("RELAYQ_TEST_SMTP_FROM", "sender@example.org");
  L->rcpt_store = rq_xstrdup(env("RELAYQ_TEST_SMTP_RCPTS", "rcpt@example.org"));
  for (char *save = NULL, *p = strtok_r(L->rcpt_store, ",", &save); p && L->n_rcpts < MAX_RCPTS;
       p = strtok_r(NULL, ",", &save))
    L->rcpts[L->n_rcpts++] = p;

  if (live_message("RELAYQ_TEST_SMTP_MSG_FILE", DEFAULT_MSG, sizeof DEFAULT_MSG - 1, &L->msg, &L->msg_len) != 0) return -1;
  L->concurrent = (int)env_long("RELAYQ_TEST_SMTP_CONCURRENT", 0);
  L->parallel = (int)env_long("RELAYQ_TEST_SMTP_PARALLEL", 0);
  L->gap_ms = env_long("RELAYQ_TEST_SMTP_GAP_MS", 0);
  L->quiet = (int)env_long("RELAYQ_TEST_SMTP_QUIET", 0);
  for (int i = 0; i < L->n_targets; i++) L->total += L->tg[i].count;
  return 0;
}

/* ---- running transactions ---------------------------------------------------------- */

static void print_result(struct live *L, int target, int i, const struct rq_smtp_result *r) {
  struct rq_class c;
  rq_smtp_classify_failure(r, &c);
  struct rq_buf b;
  rq_buf_init(&b);
  rq_buf_printf(&b, "RESULT {\"i\":%d,\"target\":\"%c\",\"err\":%d,\"err_name\":\"%s\",\"errmsg\":", i,
                'a' + target, r->err, rq_smtp_err_name(r->err));
  rq_json_str(&b, r->errmsg);
  rq_buf_puts(&b, ",\"stage\":");
  rq_json_str(&b, rq_stage_name((enum rq_smtp_stage)r->stage));
  rq_buf_printf(&b, ",\"code\":%d,\"enhanced\":", r->code);
  rq_json_str(&b, r->enhanced);
  rq_buf_puts(&b, ",\"reply\":");
  rq_json_str(&b, r->reply);
  rq_buf_printf(&b,
                ",\"accepted\":%d,\"data_code\":%d,\"reused\":%d,\"seconds\":%.3f,\"t_ms\":%.1f,"
                "\"verdict\":\"%s\",\"error\":\"%s\",\"detail\":",
                r->accepted, r->data_code, r->reused_connection, r->seconds,
                (double)(uv_hrtime() - L->t0_ns) / 1e6, rq_verdict_name(c.verdict), rq_errcat_name(c.error));
  rq_json_str(&b, c.detail);
  rq_buf_puts(&b, ",\"rcpts\":[");
  for (size_t k = 0; k < r->n_rcpts; k++) {
    rq_buf_printf(&b, "%s{\"code\":%d,\"enhanced\":", k ? "," : "", r->rcpts[k].code);
    rq_json_str(&b, r->rcpts[k].enhanced);
    rq_buf_puts(&b, ",\"text\":");
    rq_json_str(&b, r->rcpts[k].text);
    rq_buf_puts(&b, "}");
  }
  rq_buf_puts(&b, "]}\n");
  fputs(b.data, stdout);
  fflush(stdout);
  rq_buf_free(&b);
}

static void on_smtp_closed(void *arg) {
  struct live *L = arg;
  L->closed = 1;
}

static void finish(struct live *L) {
  if (L->finishing) return;
  L->finishing = 1;
  rq_smtp_stats(L->smtp, &L->stats);
  uv_timer_stop(&L->tick);
  uv_close((uv_handle_t *)&L->tick, NULL);
  uv_close((uv_handle_t *)&L->gap, NULL);
  rq_smtp_close(L->smtp, on_smtp_closed, L);
}

static void start_one(struct live *L, int target);
static void note_gap(struct live *L);

struct call {
  struct live *L;
  int target, i;
};

static void on_gap(uv_timer_t *t) {
  struct live *L = t->data;
  if (!L->finishing) start_one(L, 0);
}

/* What to start after a completion on target: sequential runs chain. */
static void next_after(struct live *L, int target) {
  struct target *tg = &L->tg[target];
  if (tg->started >= tg->count) return;
  int chained = L->n_targets == 2 ? target == 1 : (!L->concurrent || L->parallel > 0);
  if (!chained) return;
  if (L->gap_ms > 0 && L->n_targets == 1 && !L->parallel) uv_timer_start(&L->gap, on_gap, (uint64_t)L->gap_ms, 0);
  else start_one(L, target);
}

static void on_sent(const struct rq_smtp_result *r, void *arg) {
  struct call *c = arg;
  struct live *L = c->L;
  note_gap(L);
  if (!L->quiet || r->err) print_result(L, c->target, c->i, r);
  CHECK_INT(r->n_rcpts, ==, L->n_rcpts);
  if (r->err == RQ_SMTP_ERR_ABORTED) L->aborted++;
  if (r->err) L->failed++;
  int target = c->target;
  free(c);
  L->done++;
  L->tg[target].done++;
  if (L->abort_in_cb && L->done == 1) {
    finish(L); /* the rest must be called back with an abort, from here */
    return;
  }
  if (L->finishing) return;
  if (L->done == L->total) finish(L);
  else next_after(L, target);
}

static void start_one(struct live *L, int target) {
  struct target *tg = &L->tg[target];
  struct call *c = rq_xmalloc(sizeof *c);
  c->L = L;
  c->target = target;
  c->i = tg->started++;
  int rc = rq_smtp_send(L->smtp, &tg->t, L->from, L->rcpts, L->n_rcpts, L->msg, L->msg_len, on_sent, c);
  CHECK_INT(rc, ==, 0);
  if (rc != 0) {
    fprintf(stderr, "rq_smtp_send: %s\n", rq_smtp_strerror(rc));
    free(c);
    L->done++; /* count it so the run still ends */
    if (L->done == L->total) finish(L);
  }
}

/* The loop's longest stretch without running the 5 ms timer. Also noted
 * from each completion, since the last one stops the timer before it
 * could see the stall that preceded it. */
static void note_gap(struct live *L) {
  uint64_t now = uv_hrtime();
  if (L->last_tick_ns && now - L->last_tick_ns > L->max_gap_ns) L->max_gap_ns = now - L->last_tick_ns;
  L->last_tick_ns = now;
}

static void on_tick(uv_timer_t *t) {
  note_gap(t->data);
}

/* scenario: send, abort (close before the loop runs), abort_in_cb, two */
static void run_live(const char *scenario) {
  struct live L;
  memset(&L, 0, sizeof L);
  if (load_settings(&L, scenario) != 0) {
    CHECK(0);
    return;
  }
  CHECK_INT(uv_loop_init(&L.loop), ==, 0);
  uv_timer_init(&L.loop, &L.tick);
  uv_timer_init(&L.loop, &L.gap);
  L.tick.data = L.gap.data = &L;
  uv_timer_start(&L.tick, on_tick, 5, 5);
  L.smtp = rq_smtp_new_loop(&L.loop);
  CHECK(L.smtp != NULL);
  struct rq_smtp_limits lim = {.idle_timeout_ms = env_long("RELAYQ_TEST_SMTP_IDLE_MS", 0),
                               .max_connections = (int)env_long("RELAYQ_TEST_SMTP_MAX_TOTAL", 0)};
  rq_smtp_set_limits(L.smtp, &lim);
  L.abort_in_cb = strcmp(scenario, "abort_in_cb") == 0;
  L.t0_ns = uv_hrtime();

  if (L.n_targets == 2) {
    while (L.tg[0].started < L.tg[0].count) start_one(&L, 0);
    start_one(&L, 1);
  } else if (L.parallel > 0) {
    while (L.tg[0].started < L.tg[0].count && L.tg[0].started < L.parallel) start_one(&L, 0);
  } else if (L.concurrent || L.abort_in_cb || strcmp(scenario, "abort") == 0) {
    while (L.tg[0].started < L.tg[0].count) start_one(&L, 0);
  } else {
    start_one(&L, 0);
  }
  if (strcmp(scenario, "abort") == 0) {
    /* Close before any I/O: every callback runs inside rq_smtp_close. */
    CHECK_INT(rq_smtp_pending(L.smtp), ==, L.total);
    finish(&L);
    CHECK_INT(L.done, ==, L.total);
    CHECK_INT(L.aborted, ==, L.total);
  }
  CHECK_INT(uv_run(&L.loop, UV_RUN_DEFAULT), ==, 0);
  double secs = (double)(uv_hrtime() - L.t0_ns) / 1e9;
  CHECK_INT(L.done, ==, L.total);
  CHECK_INT(L.closed, ==, 1);
  if (L.abort_in_cb) CHECK_INT(L.aborted, ==, L.total - 1);
  CHECK_INT(uv_loop_close(&L.loop), ==, 0);
  printf("STALL {\"max_ms\":%.1f}\n", (double)L.max_gap_ns / 1e6);
  printf("STATS {\"connections_opened\":%llu,\"transactions_reused\":%llu,\"retried_dead\":%llu}\n",
         (unsigned long long)L.stats.connections_opened, (unsigned long long)L.stats.transactions_reused,
         (unsigned long long)L.stats.retried_dead);
  printf("RATE {\"messages\":%d,\"failed\":%d,\"seconds\":%.3f,\"per_second\":%.0f}\n", L.done, L.failed, secs,
         secs > 0 ? L.done / secs : 0);
  free(L.msg);
  free(L.rcpt_store);
}

/* ---- scenario "unit": the dialogue reader and argument checks, no I/O --------------- */

static void feed(struct rq_smtp_dialog *d, int type, const char *s) {
  rq_smtp_dialog_feed(d, type, s, strlen(s));
}
#define OUT(s) feed(d, RQ_SMTP_DIALOG_OUT, s)
#define IN(s) feed(d, RQ_SMTP_DIALOG_IN, s)

static void test_dialog_transaction(void) {
  struct rq_smtp_dialog *d = rq_smtp_dialog_new(3);
  struct rq_smtp_result r;
  IN("220 mx.example ESMTP\r\n");
  rq_smtp_dialog_result(d, &r);
  CHECK_INT(r.stage, ==, RQ_STAGE_BANNER);
  CHECK_INT(r.code, ==, 220);
  OUT("EHLO client\r\n");
  IN("250-mx.example\r\n250-PIPELINING\r\n");
  IN("250 SIZE 1000\r\n");
  OUT("MAIL FROM:<a@example.org>\r\n");
  IN("250 2.1.0 OK\r\n");
  OUT("RCPT TO:<b@example.org>\r\n");
  IN("250 2.1.5 OK\r\n");
  OUT("RCPT TO:<c@example.org>\r\n");
  /* split inside a line and across the lines of a multi-line reply */
  IN("550-5.1.1 No such");
  IN(" user here\r\n55");
  IN("0 5.1.1 try another\r\n");
  OUT("RCPT TO:<d@example.org>\r\n");
  IN("452 4.5.3 Too many recipients\r\n");
  feed(d, 0, "250 not a reply: informational text\r\n"); /* other types are ignored */
  feed(d, 3, "250 not a reply either\r\n");
  OUT("DATA\r\n");
  IN("354 go ahead\r\n");
  rq_smtp_dialog_result(d, &r);
  CHECK_INT(r.stage, ==, RQ_STAGE_BODY);
  CHECK_INT(r.code, ==, 0);
  feed(d, 4, "DATA that is message text\r\n");
  IN("250 2.0.0 queued as 1\r\n");
  rq_smtp_dialog_result(d, &r);
  CHECK_INT(r.stage, ==, RQ_STAGE_BODY);
  CHECK_INT(r.code, ==, 250);
  CHECK_INT(r.data_code, ==, 250);
  CHECK_STR(r.reply, "queued as 1");
  CHECK_STR(r.enhanced, "2.0.0");
  CHECK_INT(r.accepted, ==, 1);
  CHECK_INT(r.n_rcpts, ==, 3);
  CHECK_INT(r.rcpts[0].code, ==, 250);
  CHECK_INT(r.rcpts[1].code, ==, 550);
  CHECK_STR(r.rcpts[1].enhanced, "5.1.1");
  CHECK_STR(r.rcpts[1].text, "No such user here try another");
  CHECK_INT(r.rcpts[2].code, ==, 452);
  rq_smtp_dialog_free(d);
}

static void test_dialog_auth_is_opaque(void) {
  struct rq_smtp_dialog *d = rq_smtp_dialog_new(1);
  struct rq_smtp_result r;
  IN("220 hi\r\n");
  OUT("EHLO x\r\n");
  IN("250 AUTH PLAIN LOGIN\r\n");
  OUT("AUTH LOGIN\r\n");
  CHECK_INT(rq_smtp_dialog_in_auth(d), ==, 1);
  IN("334 VXNlcm5hbWU6\r\n");
  OUT("REFUQQ==\r\n"); /* base64 of "DATA": must not look like a command */
  OUT("DATA\r\n");     /* nor a password that reads "DATA" */
  OUT("QUIT\r\n");
  IN("334 UGFzc3dvcmQ6\r\n");
  rq_smtp_dialog_result(d, &r);
  CHECK_INT(r.stage, ==, RQ_STAGE_AUTH);
  CHECK_INT(rq_smtp_dialog_in_auth(d), ==, 1);
  IN("535 5.7.8 Authentication credentials invalid\r\n");
  rq_smtp_dialog_result(d, &r);
  CHECK_INT(rq_smtp_dialog_in_auth(d), ==, 0);
  CHECK_INT(r.stage, ==, RQ_STAGE_AUTH);
  CHECK_INT(r.code, ==, 535);
  CHECK_STR(r.enhanced, "5.7.8");
  /* Then QUIT: its exchange hides nothing. */
  OUT("QUIT\r\n");
  IN("221 2.0.0 Bye\r\n");
  rq_smtp_dialog_result(d, &r);
  CHECK_INT(r.stage, ==, RQ_STAGE_AUTH);
  CHECK_INT(r.code, ==, 535);
  rq_smtp_dialog_free(d);
}

static void test_dialog_starttls_and_bounds(void) {
  struct rq_smtp_dialog *d = rq_smtp_dialog_new(1);
  struct rq_smtp_result r;
  IN("220 hi\r\n");
  OUT("EHLO x\r\n");
  IN("250 STARTTLS\r\n");
  OUT("STARTTLS\r\n");
  IN("220 2.0.0 Ready to start TLS\r\n");
  rq_smtp_dialog_result(d, &r);
  CHECK_INT(r.stage, ==, RQ_STAGE_TLS); /* a handshake failure lands here */
  CHECK_INT(r.code, ==, 0);
  OUT("EHLO x\r\n");
  IN("250 OK\r\n");
  OUT("MAIL FROM:<a@b>\r\n");
  /* A hostile reply: 100 KB of continuation lines and one 50 KB line, fed
   * in odd-sized pieces. Memory stays bounded and the end is still seen. */
  char *junk = rq_xmalloc(50001);
  memset(junk, 'x', 50000);
  junk[50000] = 0;
  for (int i = 0; i < 1000; i++) IN("451-4.3.0 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
  IN("451-");
  for (int off = 0; off < 50000; off += 777) {
    size_t n = 50000 - off < 777 ? 50000 - off : 777;
    rq_smtp_dialog_feed(d, RQ_SMTP_DIALOG_IN, junk + off, n);
  }
  IN("\r\n451 4.3.0 the end\r\n");
  free(junk);
  rq_smtp_dialog_result(d, &r);
  CHECK_INT(r.stage, ==, RQ_STAGE_MAIL);
  CHECK_INT(r.code, ==, 451);
  CHECK_STR(r.enhanced, "4.3.0");
  CHECK(strlen(r.reply) <= 512);
  /* A reply with no line end yet is not a reply. */
  OUT("RSET\r\n");
  IN("250 par");
  rq_smtp_dialog_result(d, &r);
  CHECK_INT(r.code, ==, 451);
  rq_smtp_dialog_free(d);
}

static void test_dialog_all_rejected(void) {
  struct rq_smtp_dialog *d = rq_smtp_dialog_new(2);
  struct rq_smtp_result r;
  IN("220 hi\r\n");
  OUT("EHLO x\r\n");
  IN("250 OK\r\n");
  OUT("MAIL FROM:<a@b>\r\n");
  IN("250 OK\r\n");
  OUT("RCPT TO:<x@b>\r\n");
  IN("550 5.1.1 no\r\n");
  OUT("RCPT TO:<y@b>\r\n");
  IN("551 5.1.6 moved\r\n");
  OUT("QUIT\r\n");
  IN("221 Bye\r\n");
  rq_smtp_dialog_result(d, &r);
  CHECK_INT(r.stage, ==, RQ_STAGE_RCPT);
  CHECK_INT(r.code, ==, 551);
  CHECK_INT(r.accepted, ==, 0);
  CHECK_INT(r.rcpts[0].code, ==, 550);
  CHECK_INT(r.rcpts[1].code, ==, 551);
  CHECK_INT(r.data_code, ==, 0);
  rq_smtp_dialog_free(d);
}

static void test_dialog_data_refused(void) {
  struct rq_smtp_dialog *d = rq_smtp_dialog_new(1);
  struct rq_smtp_result r;
  IN("220 hi\r\n");
  OUT("EHLO x\r\n");
  IN("250 OK\r\n");
  OUT("MAIL FROM:<>\r\n");
  IN("250 OK\r\n");
  OUT("RCPT TO:<x@b>\r\n");
  IN("250 OK\r\n");
  OUT("DATA\r\n");
  IN("554 5.7.1 Rejected by policy\r\n");
  OUT("QUIT\r\n");
  IN("221 Bye\r\n");
  rq_smtp_dialog_result(d, &r);
  CHECK_INT(r.stage, ==, RQ_STAGE_DATA);
  CHECK_INT(r.code, ==, 554);
  CHECK_STR(r.enhanced, "5.7.1");
  CHECK_STR(r.reply, "Rejected by policy");
  CHECK_INT(r.accepted, ==, 1);
  CHECK_INT(r.data_code, ==, 0);
  /* The session retries on a fresh connection when a pooled one turns
   * out dead: the second MAIL FROM starts the recipients' story again. */
  OUT("MAIL FROM:<>\r\n");
  rq_smtp_dialog_result(d, &r);
  CHECK_INT(r.accepted, ==, 0);
  CHECK_INT(r.rcpts[0].code, ==, 0);
  CHECK_INT(r.code, ==, 0);
  rq_smtp_dialog_free(d);
}

static void on_never(const struct rq_smtp_result *r, void *arg) {
  (void)r;
  (void)arg;
  CHECK(0); /* a refused send must never call back */
}

static int closed_flag;
static void on_closed_flag(void *arg) {
  *(int *)arg = 1;
}

static void test_send_validation(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct rq_smtp *s = rq_smtp_new_loop(&loop);
  struct rq_smtp_target t = {.host = "127.0.0.1", .port = 25, .security = RQ_SMTP_PLAIN};
  const char *ok[] = {"a@example.org"};
  const char *crlf[] = {"a@example.org>\r\nRCPT TO:<b@example.org"};
  const char *empty[] = {""};
  CHECK_INT(rq_smtp_send(s, &t, "x@example.org", crlf, 1, "m", 1, on_never, NULL), ==, RQ_SMTP_EINVAL);
  CHECK_INT(rq_smtp_send(s, &t, "x@example.org\n", ok, 1, "m", 1, on_never, NULL), ==, RQ_SMTP_EINVAL);
  CHECK_INT(rq_smtp_send(s, &t, "x@example.org", empty, 1, "m", 1, on_never, NULL), ==, RQ_SMTP_EINVAL);
  CHECK_INT(rq_smtp_send(s, &t, "x@example.org", ok, 0, "m", 1, on_never, NULL), ==, RQ_SMTP_EINVAL);
  t.port = 0;
  CHECK_INT(rq_smtp_send(s, &t, "x@example.org", ok, 1, "m", 1, on_never, NULL), ==, RQ_SMTP_EINVAL);
  t.port = 25;
  t.host = "bad host/with@stuff";
  CHECK_INT(rq_smtp_send(s, &t, "x@example.org", ok, 1, "m", 1, on_never, NULL), ==, RQ_SMTP_EINVAL);
  t.host = "127.0.0.1";
  t.helo_name = "evil/../path?x";
  CHECK_INT(rq_smtp_send(s, &t, "x@example.org", ok, 1, "m", 1, on_never, NULL), ==, RQ_SMTP_EINVAL);
  t.helo_name = NULL;
  t.user = "user\r\nAUTH";
  CHECK_INT(rq_smtp_send(s, &t, "x@example.org", ok, 1, "m", 1, on_never, NULL), ==, RQ_SMTP_EINVAL);
  CHECK_INT(rq_smtp_pending(s), ==, 0);
  closed_flag = 0;
  rq_smtp_close(s, on_closed_flag, &closed_flag);
  CHECK_INT(closed_flag, ==, 1); /* nothing was open: at once */
  CHECK_INT(uv_run(&loop, UV_RUN_DEFAULT), ==, 0);
  CHECK_INT(uv_loop_close(&loop), ==, 0);

  /* rq_smtp_free frees at once when nothing is open. */
  uv_loop_init(&loop);
  s = rq_smtp_new_loop(&loop);
  rq_smtp_free(s);
  CHECK_INT(uv_loop_close(&loop), ==, 0);
}

/* Failures are classified as classify.c decides for transport errors. */
static void test_classify_failure(void) {
  struct rq_smtp_result r;
  struct rq_class c;
  memset(&r, 0, sizeof r);
  r.data_code = 250;
  rq_smtp_classify_failure(&r, &c);
  CHECK_INT(c.verdict, ==, RQ_OK);
  static const struct {
    int err, verdict, cat;
  } cases[] = {
      {RQ_SMTP_ERR_DNS, RQ_TEMP, RQ_ERR_CONNECT},        {RQ_SMTP_ERR_CONNECT, RQ_TEMP, RQ_ERR_CONNECT},
      {RQ_SMTP_ERR_TIMEOUT, RQ_TEMP, RQ_ERR_CONNECT},    {RQ_SMTP_ERR_CLOSED, RQ_TEMP, RQ_ERR_CONNECT},
      {RQ_SMTP_ERR_ABORTED, RQ_TEMP, RQ_ERR_CONNECT},    {RQ_SMTP_ERR_PROTOCOL, RQ_TEMP, RQ_ERR_PROVIDER},
      {RQ_SMTP_ERR_TLS, RQ_TEMP, RQ_ERR_TLS},            {RQ_SMTP_ERR_TLS_CERT, RQ_PERM, RQ_ERR_TLS},
      {RQ_SMTP_ERR_TLS_MISMATCH, RQ_PERM, RQ_ERR_TLS},   {RQ_SMTP_ERR_TLS_LOCAL, RQ_TEMP, RQ_ERR_TLS},
      {RQ_SMTP_ERR_NO_STARTTLS, RQ_PERM, RQ_ERR_TLS},    {RQ_SMTP_ERR_AUTH, RQ_PERM, RQ_ERR_AUTH},
      {RQ_SMTP_ERR_REJECTED, RQ_TEMP, RQ_ERR_PROVIDER},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    memset(&r, 0, sizeof r);
    r.err = cases[i].err;
    snprintf(r.errmsg, sizeof r.errmsg, "Something went wrong.");
    rq_smtp_classify_failure(&r, &c);
    CHECK_INT(c.verdict, ==, cases[i].verdict);
    CHECK_INT(c.error, ==, cases[i].cat);
    CHECK(c.detail[0] != '\0');
    CHECK(strcmp(rq_smtp_err_name(r.err), "unknown") != 0);
  }
  /* A reply that ended it wins: 535 at AUTH, 421 anywhere, 550 at RCPT. */
  memset(&r, 0, sizeof r);
  r.err = RQ_SMTP_ERR_AUTH;
  r.stage = RQ_STAGE_AUTH;
  r.code = 535;
  snprintf(r.enhanced, sizeof r.enhanced, "5.7.8");
  rq_smtp_classify_failure(&r, &c);
  CHECK_INT(c.verdict, ==, RQ_PERM);
  CHECK_INT(c.error, ==, RQ_ERR_AUTH);
  r.err = RQ_SMTP_ERR_REJECTED;
  r.stage = RQ_STAGE_MAIL;
  r.code = 421;
  r.enhanced[0] = 0;
  rq_smtp_classify_failure(&r, &c);
  CHECK_INT(c.verdict, ==, RQ_TEMP);
  CHECK_INT(c.error, ==, RQ_ERR_CONNECT);
  r.stage = RQ_STAGE_BODY;
  r.code = 451;
  rq_smtp_classify_failure(&r, &c);
  CHECK_INT(c.verdict, ==, RQ_TEMP);
  /* STARTTLS required but missing: the EHLO 250 must not read as OK. */
  r.err = RQ_SMTP_ERR_NO_STARTTLS;
  r.stage = RQ_STAGE_EHLO;
  r.code = 250;
  rq_smtp_classify_failure(&r, &c);
  CHECK_INT(c.verdict, ==, RQ_PERM);
  CHECK_INT(c.error, ==, RQ_ERR_TLS);
  /* Never OK for a failure, even with a 2xx final reply recorded. */
  r.err = RQ_SMTP_ERR_REJECTED;
  r.code = 250;
  r.data_code = 250;
  rq_smtp_classify_failure(&r, &c);
  CHECK(c.verdict != RQ_OK);
}

int main(void) {
  const char *url = getenv("RELAYQ_TEST_SMTP_URL");
  if (!url || !*url) {
    fprintf(stderr, "test_smtp_live: RELAYQ_TEST_SMTP_URL is not set: run it through "
                    "tests/e2e/test_smtp_transport.py, which starts the servers\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN); /* as relayq-worker does: a dropped connection is an error, not a signal */
  const char *scenario = env("RELAYQ_TEST_SMTP_SCENARIO", "send");
  if (strcmp(scenario, "unit") == 0) {
    test_dialog_transaction();
    test_dialog_auth_is_opaque();
    test_dialog_starttls_and_bounds();
    test_dialog_all_rejected();
    test_dialog_data_refused();
    test_send_validation();
    test_classify_failure();
  } else {
    run_live(scenario);
  }
  return CHECK_DONE();
}
