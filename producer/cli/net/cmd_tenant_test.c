/*
 * cmd_tenant_test: `relayq tenant test TENANT --to ADDR [--subject S]
 * [--route NAME]`: builds a short message with the worker's builder
 * (message.h: sender rules, MIME, DKIM) and sends it now through the
 * tenant's route with the worker's own transports (smtp.h, mailgun.h) on
 * a private uv loop; no worker needs to run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <uv.h>

#include "address.h"
#include "classify.h"
#include "cli.h"
#include "cli_oauth.h"
#include "curlfail.h"
#include "curluv.h"
#include "dkim.h"
#include "mailgun.h"
#include "message.h"
#include "mime.h"
#include "probe.h"
#include "route.h"
#include "settings.h"
#include "smtp.h"
#include "tenant.h"
#include "tenant_probe.h"
#include "tenant_cmd.h"
#include "util.h"

/* ---- test ------------------------------------------------------------------------------------------------ */

/* The outcome of the test send, copied out of the transport's callback
 * (its result lives only during the callback). */
struct outcome {
  int done;
  int err;           /* the SMTP session's enum rq_smtp_err, or Mailgun's CURLcode */
  char errmsg[256];
  int stage, code, data_code, accepted;
  char enhanced[16], reply[513];
  size_t n_rcpts;
  struct rq_rcpt_reply rcpts[MAX_TO];
  long http_status;
  char provider_id[256], message[513];
  int is_http;
  double seconds;
  struct rq_class smtp_failure; /* the transport's classification of a failed transaction */
};

static void on_smtp(const struct rq_smtp_result *res, void *arg) {
  struct outcome *out = arg;
  out->done = 1;
  out->err = res->err;
  snprintf(out->errmsg, sizeof out->errmsg, "%s", res->errmsg);
  out->stage = res->stage;
  out->code = res->code;
  snprintf(out->enhanced, sizeof out->enhanced, "%s", res->enhanced);
  snprintf(out->reply, sizeof out->reply, "%s", res->reply);
  out->n_rcpts = res->n_rcpts < MAX_TO ? res->n_rcpts : MAX_TO;
  memcpy(out->rcpts, res->rcpts, out->n_rcpts * sizeof *out->rcpts);
  out->accepted = res->accepted;
  out->data_code = res->data_code;
  out->seconds = res->seconds;
  if (res->err != RQ_SMTP_ERR_OK) rq_smtp_classify_failure(res, &out->smtp_failure);
}

static void on_mailgun(const struct rq_mailgun_result *res, void *arg) {
  struct outcome *out = arg;
  out->done = 1;
  out->is_http = 1;
  out->err = res->curl_code;
  snprintf(out->errmsg, sizeof out->errmsg, "%s", res->curl_error);
  out->http_status = res->status;
  snprintf(out->provider_id, sizeof out->provider_id, "%s", res->id);
  snprintf(out->message, sizeof out->message, "%s", res->message);
  out->seconds = res->seconds;
}

static void on_closed(void *arg) { *(int *)arg = 1; }

/* The tenant's DKIM key for the test message (a rq_message_key_fn),
 * parsed on first use; the caller frees key. */
struct test_key {
  void *key;
  const char *pem;
};

static int test_key_fn(void *arg, void **key, char *err, size_t errlen) {
  struct test_key *k = arg;
  if (k->key == NULL) k->key = rq_dkim_key_load(k->pem, err, errlen);
  *key = k->key;
  return k->key ? 0 : -1;
}

/* Builds the test message for job j with the worker's builder (message.h:
 * sender rule, MIME, DKIM where the worker signs), so it is what a worker
 * would send. msg is flat, for either transport. */
static int build_test_message(const struct rq_route_settings *rs, const struct rq_tenant *t, const struct relayq_job *j,
                              const struct rq_route *route, struct rq_sender *snd, struct rq_buf *msg,
                              char *mid_out, size_t mid_cap, char *err, size_t errlen) {
  struct rq_buf mid;
  rq_buf_init(&mid);
  rq_route_sender(rs, t, j, route, snd);
  rq_mime_message_id(j->id, rq_route_domain_of(snd->from_addr), &mid);
  snprintf(mid_out, mid_cap, "%s", mid.data);
  rq_buf_free(&mid);
  struct test_key k = {NULL, t ? t->dkim_private_key : NULL};
  const struct rq_message_input in = {
      .settings = rs,
      .tenant = t,
      .job = j,
      .route = route,
      .message_id = mid_out,
      .date_ms = relayq_now_ms(),
      .now_s = relayq_now_ms() / 1000,
      .dkim_key = test_key_fn,
      .dkim_arg = &k,
  };
  struct rq_msg m;
  rq_msg_init(&m);
  int rc = rq_message_build(&in, &m, err, errlen);
  if (rc == 0) rq_msg_flatten(&m, msg);
  rq_msg_free(&m);
  rq_dkim_key_free(k.key);
  return rc;
}

/* Sends msg through route on a private loop and waits for the outcome.
 * Returns 0 when the transport ran (out filled), -1 (printed) when it
 * could not start. */
static int send_now(const struct rq_config *cfg, const struct rq_route *route, const char *envelope_from,
                    const char *const *rcpts, size_t n, const struct rq_buf *msg, long timeout_ms,
                    const char *bearer, struct outcome *out) {
  uv_loop_t loop;
  int closed = 0, rc = -1;
  if (uv_loop_init(&loop) != 0) return cli_fail(-1, "cannot start an event loop.");
  struct rq_curl *curl = rq_curl_new(&loop, 0, 0);
  if (curl == NULL) {
    uv_loop_close(&loop);
    return cli_fail(-1, "libcurl could not start a transfer.");
  }
  struct rq_smtp *smtp = NULL;
  struct rq_mailgun *mg = NULL;
  int started;
  if (route->gateway == RQ_GW_MAILGUN) {
    mg = rq_mailgun_new(curl);
    struct rq_mailgun_request req = {
        .base_url = route->mg_base_url,
        .domain = route->mg_domain,
        .api_key = route->mg_key,
        .rcpts = rcpts,
        .n_rcpts = n,
        .msg = msg->data,
        .msg_len = msg->len,
        .connect_timeout_ms = cfg->smtp_connect_timeout_ms,
        .timeout_ms = timeout_ms,
        .netpolicy = route->netpolicy,
        .ca_file = cfg->ca_file,
    };
    started = mg != NULL ? rq_mailgun_send(mg, &req, on_mailgun, out) : -1;
  } else {
    smtp = rq_smtp_new(curl);
    struct rq_smtp_target t;
    rq_settings_smtp_target(cfg, route, &t);
    t.timeout_ms = timeout_ms;
    if (bearer) t.password = bearer; /* smtp_auth=xoauth2: the access token just issued */
    started = smtp != NULL ? rq_smtp_send(smtp, &t, envelope_from, rcpts, n, msg->data, msg->len, on_smtp, out) : -1;
    if (started != 0 && smtp != NULL)
      cli_fail(CLI_FAIL, "the test message could not be started: %s.", rq_smtp_strerror(started));
  }
  if (started == 0) {
    /* Every wait is bounded by the transfer's own timeout. */
    while (!out->done && uv_run(&loop, UV_RUN_ONCE) != 0) {
    }
    rc = out->done ? 0 : cli_fail(-1, "the transfer ended without a result.");
  } else if (route->gateway == RQ_GW_MAILGUN) {
    cli_fail(CLI_FAIL, "the Mailgun transport could not start the request (is it in this build?).");
  }
  rq_curl_close(curl, on_closed, &closed);
  while (!closed && uv_run(&loop, UV_RUN_ONCE) != 0) {
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  rq_smtp_free(smtp);
  rq_mailgun_free(mg);
  if (uv_loop_close(&loop) != 0) fprintf(stderr, "relayq: warning: the event loop did not close cleanly.\n");
  return rc;
}

static void describe_route(const struct rq_route *r, char *out, size_t cap) {
  if (r->gateway == RQ_GW_MAILGUN) {
    snprintf(out, cap, "mailgun (%s, domain %s)", r->mg_base_url, r->mg_domain);
    return;
  }
  const char *sec = r->smtp_security == RQ_ROUTE_IMPLICIT_TLS       ? "tls"
                    : r->smtp_security == RQ_ROUTE_PLAIN            ? "none"
                    : r->smtp_security == RQ_ROUTE_STARTTLS_TRY     ? "starttls when offered"
                                                                    : "starttls";
  snprintf(out, cap, "%s (%s:%d, %s%s%s)", r->name, r->host, r->port, sec, r->user ? ", user " : ", no login",
           r->user ? r->user : "");
}

/* Prints the outcome; returns the exit status (0 only when every
 * recipient was accepted and the message was taken). */
static int report_outcome(const struct outcome *out, const char *const *rcpts, size_t n) {
  struct rq_class cls;
  if (out->is_http) {
    if (out->err == 0 && out->http_status >= 200 && out->http_status < 300) {
      printf("  Mailgun: %ld %s%s%s\n", out->http_status, out->message, out->provider_id[0] ? " id " : "",
             out->provider_id);
      printf("Result: sent (%.2f s)\n", out->seconds);
      return CLI_OK;
    }
    if (out->http_status == 0) {
      rq_curl_classify(out->err, out->errmsg, RQ_STAGE_CONNECT, &cls);
      printf("Result: failed: %s (%s)\n", cls.detail, out->errmsg);
      return cli_fail(CLI_FAIL, "the test message was not sent: %s", cls.detail);
    }
    rq_classify_http(out->http_status, out->message, strlen(out->message), "", relayq_now_ms(), &cls);
    printf("  Mailgun: %ld %s\nResult: failed: %s\n", out->http_status, out->message, cls.detail);
    return cli_fail(CLI_FAIL, "the test message was not sent: HTTP %ld %s", out->http_status, out->message);
  }
  for (size_t i = 0; i < n && i < out->n_rcpts && out->stage >= RQ_STAGE_RCPT; i++) {
    const struct rq_rcpt_reply *r = &out->rcpts[i];
    if (r->code == 0) printf("  RCPT %s: no answer\n", rcpts[i]);
    else printf("  RCPT %s: %d%s%s %s\n", rcpts[i], r->code, r->enhanced[0] ? " " : "", r->enhanced, r->text);
  }
  if (out->data_code != 0)
    printf("  DATA: %d%s%s %s\n", out->code, out->enhanced[0] ? " " : "", out->enhanced, out->reply);
  int all = out->accepted == (int)n;
  if (out->err == 0 && all) {
    printf("Result: sent (%.2f s)\n", out->seconds);
    return CLI_OK;
  }
  if (out->err == 0 && out->accepted > 0) {
    printf("Result: partial: %d of %zu recipients accepted (%.2f s)\n", out->accepted, n, out->seconds);
    return cli_fail(CLI_FAIL, "the test message reached %d of %zu recipients.", out->accepted, n);
  }
  cls = out->smtp_failure;
  char code[40] = "";
  if (out->code) snprintf(code, sizeof code, "%d%s%s ", out->code, out->enhanced[0] ? " " : "", out->enhanced);
  printf("Result: failed at %s: %s%s (%s: %s)\n", rq_stage_name((enum rq_smtp_stage)out->stage), code,
         out->code ? out->reply : out->errmsg, rq_errcat_name(cls.error), cls.detail);
  return cli_fail(CLI_FAIL, "the test message was not sent: %s%s (%s)", code, out->code ? out->reply : out->errmsg,
                  rq_errcat_name(cls.error));
}

int cmd_tenant_test(struct topts *o, struct cli_ctx *ctx) {
  char *bearer = NULL, *rotated = NULL;
  struct stored s = {0};
  struct rq_tenant *t = NULL;
  struct rq_config cfg;
  struct rq_buf msg;
  char err[512], id[40], job_id[64], mid[600], subject[300], text[1200], route_desc[700];
  char *to_addrs[MAX_TO] = {0};
  char env_addrs[MAX_TO][RQ_ADDR_MAX + 1];
  const char *rcpts[MAX_TO];
  int rc = CLI_USAGE, cfg_loaded = 0;
  rq_buf_init(&msg);
  if (o->n_to == 0) return cli_fail(CLI_USAGE, "'relayq tenant test' needs --to ADDR.");
  for (int i = 0; i < o->n_to; i++) {
    if (rq_addr_envelope(o->to[i], env_addrs[i], sizeof env_addrs[i]) != 0)
      return cli_fail(CLI_USAGE, "--to '%.80s' is not a valid address.", o->to[i]);
    rcpts[i] = env_addrs[i];
    to_addrs[i] = (char *)o->to[i];
  }
  /* The worker's settings from the environment (RELAYQ_MODE,
   * RELAYQ_PLATFORM_SMTP, RELAYQ_PLATFORM_FROM, RELAYQ_SECRET_KEY, ...). */
  char *cfg_argv[] = {"relayq", NULL};
  if (rq_config_load(&cfg, 1, cfg_argv) != 0) return CLI_USAGE;
  cfg_loaded = 1;
  if (o->ca_file != NULL) {
    free(cfg.ca_file);
    cfg.ca_file = rq_xstrdup(o->ca_file);
  }
  /* The boundary of --mode/--allow-private-nets, as the workers hold it. */
  cfg.mode = o->netpolicy.enforce ? RQ_MODE_SAAS : RQ_MODE_ONPREM;
  cfg.netpolicy = o->netpolicy;
  rc = CLI_FAIL;
  struct relayq_client *c = cli_client(ctx);
  if (c == NULL) goto out;
  if (tenant_load_stored(c, o->tenant, &s) != 0) goto out;
  if (tenant_parse_stored(o->tenant, &s, cfg.have_secret_key ? cfg.secret_key : NULL, &t, err, sizeof err) != 0) {
    rc = cli_fail(CLI_FAIL, "tenant '%s' cannot send: %s", o->tenant, err);
    goto out;
  }
  relayq_id_new(id);
  snprintf(job_id, sizeof job_id, "tenant-test-%s", id);
  snprintf(subject, sizeof subject, "%s", o->subject ? o->subject : "relayq test message");
  snprintf(text, sizeof text,
           "This is a test message from `relayq tenant test` for tenant %s.\n"
           "If you can read it, the tenant's sending route works.\n\nTest id: %s\n",
           o->tenant, job_id);
  struct relayq_job j = {
      .v = RELAYQ_JOB_VERSION,
      .id = job_id,
      .tenant = (char *)o->tenant,
      .to = {to_addrs, (size_t)o->n_to},
      .subject = subject,
      .text = text,
      .route = (char *)o->route,
  };
  struct relayq_error jerr;
  if (relayq_job_validate(&j, &jerr) != 0) {
    rc = cli_fail(CLI_USAGE, "%s", jerr.message);
    goto out;
  }
  struct rq_route_settings rs;
  if (rq_settings_route(&cfg, &rs, err, sizeof err) != 0) {
    rc = cli_fail(CLI_USAGE, "RELAYQ_PLATFORM_SMTP: %s.", err);
    goto out;
  }
  struct rq_route route;
  const char *category = NULL;
  int r = rq_route_resolve(&rs, t, &j, &route, &category, err, sizeof err);
  if (r > 0 && route.gateway == RQ_GW_PLATFORM && !rs.platform.configured) {
    rc = cli_fail(CLI_FAIL, "tenant '%s' sends through the platform gateway, and RELAYQ_PLATFORM_SMTP is not set: "
                            "set it to the platform's smtp:// URL (as the workers have it) to test that route.",
                  o->tenant);
    goto out;
  }
  if (r != 0) {
    rc = cli_fail(CLI_FAIL, "not sent (%s): %s", category ? category : "policy", err);
    goto out;
  }
  struct rq_sender snd;
  if (build_test_message(&rs, t, &j, &route, &snd, &msg, mid, sizeof mid, err, sizeof err) != 0) {
    rc = cli_fail(CLI_FAIL, "cannot build the test message: %s", err);
    goto out;
  }
  describe_route(&route, route_desc, sizeof route_desc);
  printf("Sending a test message for tenant %s through %s\n", o->tenant, route_desc);
  printf("  From %s, envelope sender %s, Message-ID %s\n", snd.from_addr,
         snd.envelope_from[0] ? snd.envelope_from : "<>", mid);
  fflush(stdout);
  struct outcome out = {0};
  long timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : (long)cfg.smtp_timeout_ms;
  if (route.smtp_conf && route.smtp_conf->xoauth2) {
    /* A token as a worker would get it; a rotated refresh token is saved. */
    struct rq_probe_report rep;
    struct rq_probe_stage st;
    if (cli_oauth_token(route.smtp_conf, cfg.ca_file, timeout_ms, route.netpolicy, &bearer, &rotated, &st, &rep) != 0) {
      rc = cli_fail(CLI_FAIL, "not sent: %s.", rep.error);
      goto out;
    }
    if (rotated && tenant_save_rotated(c, o, cfg.have_secret_key ? cfg.secret_key : NULL, rotated) != 0) goto out;
  }
  if (send_now(&cfg, &route, snd.envelope_from, rcpts, (size_t)o->n_to, &msg, timeout_ms, bearer, &out) != 0)
    goto out;
  rc = report_outcome(&out, rcpts, (size_t)o->n_to);
out:
  if (bearer) {
    OPENSSL_cleanse(bearer, strlen(bearer));
    free(bearer);
  }
  if (rotated) {
    OPENSSL_cleanse(rotated, strlen(rotated));
    free(rotated);
  }
  rq_buf_free(&msg);
  rq_tenant_free(t);
  tenant_stored_free(&s);
  if (cfg_loaded) rq_config_free(&cfg);
  return rc;
}

