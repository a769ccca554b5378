/* cli_oauth: the token step of a tenant check (see cli_oauth.h). */
#include "cli_oauth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <uv.h>

#include "curluv.h"
#include "oauth_http.h"
#include "oauth_token.h"
#include "util.h"

struct outcome {
  int done;
  enum rq_oauth_outcome kind;
  char *token, *rotated;
  char detail[512];
};

static void on_token(const struct rq_oauth_token *tok, void *arg) {
  struct outcome *o = arg;
  o->done = 1;
  o->kind = tok->outcome;
  snprintf(o->detail, sizeof o->detail, "%s", tok->detail);
  if (tok->outcome == RQ_OAUTH_OK) {
    o->token = rq_xstrdup(tok->access_token);
    if (tok->refresh_token[0]) o->rotated = rq_xstrdup(tok->refresh_token);
  }
}

static void on_closed(void *arg) {
  *(int *)arg = 1;
}

int cli_oauth_token(const struct rq_smtp_conf *c, const char *ca_file, long timeout_ms,
                    const struct rq_netpolicy *netpolicy, char **token, char **rotated,
                    struct rq_probe_stage *stage, struct rq_probe_report *r) {
  struct outcome o;
  uv_loop_t loop;
  int closed = 0;
  memset(&o, 0, sizeof o);
  *token = *rotated = NULL;
  uv_loop_init(&loop);
  struct rq_curl *curl = rq_curl_new(&loop, 0, 0);
  uint64_t t0 = uv_hrtime();
  struct rq_oauth_request q = {
      .token_url = c->oauth.token_url,
      .client_credentials = c->oauth.grant == RQ_GRANT_CLIENT_CREDENTIALS,
      .client_id = c->oauth.client_id,
      .client_secret = c->oauth.client_secret,
      .refresh_token = c->oauth.refresh_token,
      .scope = c->oauth.scope,
      .ca_file = ca_file,
      .timeout_ms = timeout_ms > 0 ? timeout_ms : RQ_PROBE_DEFAULT_TIMEOUT_MS,
      .netpolicy = netpolicy, /* --mode/--allow-private-nets, as a worker's */
  };
  if (!curl || rq_oauth_http_request(curl, &q, on_token, &o) != 0) {
    o.done = 1;
    o.kind = RQ_OAUTH_POLICY;
    snprintf(o.detail, sizeof o.detail, "oauth_token_url must be an https:// URL");
  }
  while (!o.done && uv_run(&loop, UV_RUN_ONCE)) {
  }
  if (curl) {
    rq_curl_close(curl, on_closed, &closed);
    while (!closed && uv_run(&loop, UV_RUN_ONCE)) {
    }
  }
  uv_loop_close(&loop);
  double ms = (double)(uv_hrtime() - t0) / 1e6;
  memset(stage, 0, sizeof *stage);
  stage->name = "OAuth token";
  stage->ms = ms;
  if (o.kind == RQ_OAUTH_OK && o.token) {
    stage->ok = 1;
    snprintf(stage->detail, sizeof stage->detail, "%s: %s grant accepted%s", c->oauth.token_url,
             q.client_credentials ? "client_credentials" : "refresh_token",
             o.rotated ? ", refresh token rotated" : "");
    *token = o.token;
    *rotated = o.rotated;
    return 0;
  }
  memset(r, 0, sizeof *r);
  snprintf(r->target, sizeof r->target, "smtp %s:%d xoauth2, user %s", c->host ? c->host : "?", c->port,
           c->user ? c->user : "");
  *stage = (struct rq_probe_stage){.name = "OAuth token", .ok = 0, .ms = ms};
  snprintf(stage->detail, sizeof stage->detail, "%s", c->oauth.token_url ? c->oauth.token_url : "");
  r->stages[0] = *stage;
  r->n_stages = 1;
  struct rq_class cls;
  rq_oauth_token_class(o.kind, o.detail, &cls); /* as a worker reads it */
  rq_probe_fail(r, &cls);
  return -1;
}

void cli_oauth_stage_first(struct rq_probe_report *r, const struct rq_probe_stage *stage) {
  size_t n = r->n_stages < RQ_PROBE_MAX_STAGES ? r->n_stages : RQ_PROBE_MAX_STAGES - 1;
  memmove(&r->stages[1], &r->stages[0], n * sizeof r->stages[0]);
  r->stages[0] = *stage;
  r->n_stages = n + 1;
}
