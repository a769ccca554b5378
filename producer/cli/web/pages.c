/*
 * pages: the console's pages, rendered on the server (see web.h). Every
 * value read from Redis goes through html_text/html_attr (tenants write
 * their own names, servers their own replies). Secrets never reach a
 * page: tenant secret fields show only whether they are sealed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <relayq/relayq.h>

#include "classify.h"
#include "cli.h"
#include "events.h"
#include "html.h"
#include "keys.h"
#include "queue_stats.h"
#include "tenant.h"
#include "tenant_cmd.h"
#include "web.h"

#define KEY_MAX 600
#define TENANTS_SHOWN 500
#define PAGE_SCAN_ROUNDS 2000
#define DEAD_DEFAULT 50
#define DEAD_MAX 500

/* ---- frame ---------------------------------------------------------------------- */

void page_begin(struct rq_buf *b, const char *title, const char *nav, int live) {
  rq_buf_puts(b, "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                 "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                 "<title>");
  html_text(b, title);
  rq_buf_puts(b, " \xc2\xb7 relayq</title><link rel=\"stylesheet\" href=\"/static/console.css\">"
                 "<script src=\"/static/console.js\" defer></script></head><body>"
                 "<header><a class=\"brand\" href=\"/\">relayq</a><nav>");
  static const char *const items[][2] = {{"overview", "/"}, {"tenants", "/tenants"}, {"dead", "/dead"}};
  static const char *const labels[] = {"Overview", "Tenants", "Dead letters"};
  for (size_t i = 0; i < 3; i++)
    rq_buf_printf(b, "<a href=\"%s\"%s>%s</a>", items[i][1],
                  nav && strcmp(nav, items[i][0]) == 0 ? " class=\"here\"" : "", labels[i]);
  rq_buf_puts(b, "</nav><form class=\"find\" method=\"get\" action=\"/job\">"
                 "<input name=\"id\" placeholder=\"Job id\" aria-label=\"Job id\" required>"
                 "<button>Find job</button></form></header>");
  rq_buf_printf(b, "<main id=\"main\"%s>", live ? " data-live=\"3\"" : "");
}

void page_end(struct rq_buf *b, const struct web_app *app) {
  char now[40];
  html_absolute(now, sizeof now, relayq_now_ms());
  rq_buf_puts(b, "</main><footer>Prefix <code>");
  html_text(b, app ? app->prefix : "");
  rq_buf_puts(b, "</code> \xc2\xb7 rendered <span id=\"rendered\">");
  rq_buf_puts(b, now);
  rq_buf_puts(b, "</span></footer></body></html>");
}

void page_error(struct web_resp *rs, int status, const char *title, const char *message) {
  rs->status = status;
  rq_buf_reset(&rs->body);
  page_begin(&rs->body, title, NULL, 0);
  rq_buf_printf(&rs->body, "<section class=\"error\" id=\"error\" data-status=\"%d\"><h1>", status);
  html_text(&rs->body, title);
  rq_buf_puts(&rs->body, "</h1><p>");
  html_text(&rs->body, message);
  rq_buf_puts(&rs->body, "</p><p><a href=\"/\">Back to the overview</a></p></section>");
  page_end(&rs->body, NULL);
}

void page_login(const struct web_req *rq, struct web_resp *rs, int status, const char *message) {
  (void)rq;
  rs->status = status;
  struct rq_buf *b = &rs->body;
  rq_buf_reset(b);
  rq_buf_puts(b, "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign in"
                 " \xc2\xb7 relayq</title><link rel=\"stylesheet\" href=\"/static/console.css\">"
                 "</head><body class=\"login\"><main><h1>relayq console</h1>");
  if (message) {
    rq_buf_puts(b, "<p class=\"bad\" id=\"login-error\">");
    html_text(b, message);
    rq_buf_puts(b, "</p>");
  } else {
    rq_buf_puts(b, "<p>This console needs the token it was started with (<code>--token-file"
                   "</code>).</p>");
  }
  rq_buf_puts(b, "<form method=\"post\" action=\"/login\" id=\"login\"><label>Token "
                 "<input type=\"password\" name=\"token\" autocomplete=\"current-password\" "
                 "required autofocus></label><button>Sign in</button></form></main></body></html>");
}

/* Opens the Redis connection or turns the page into a 503 that says why. */
static redisContext *redis_or_error(struct web_app *app, struct web_resp *rs) {
  char why[512];
  struct relayq_client *c = web_client(app, why, sizeof why);
  if (c == NULL) {
    char msg[700];
    snprintf(msg, sizeof msg, "Redis cannot be reached: %s The page will work again once it "
                              "can; check the URL given to relayq web.", why);
    page_error(rs, 503, "Redis unavailable", msg);
    return NULL;
  }
  return relayq_client_redis(c);
}

/* A failed command: reset the connection and say so. Frees r. */
static void redis_failed(struct web_app *app, struct web_resp *rs, redisReply *r) {
  char msg[600];
  redisContext *rc = app->client ? relayq_client_redis(app->client) : NULL;
  snprintf(msg, sizeof msg, "Redis failed while reading this page: %s",
           r && r->type == REDIS_REPLY_ERROR ? r->str : rc && rc->errstr[0] ? rc->errstr : "no reply");
  if (r) freeReplyObject(r);
  if (rc && rc->err) web_client_reset(app);
  page_error(rs, 503, "Redis error", msg);
}

/* k: relayq.h's enum relayq_key_kind or keys.h's. */
static void key_of(struct web_app *app, char *dst, int k, const char *name) {
  relayq__key(dst, KEY_MAX, app->prefix, k, name, NULL);
}

static long long num_or(const char *s, long long dflt) {
  long long v;
  return s && cli_parse_int(s, INT64_MIN, INT64_MAX, &v) == 0 ? v : dflt;
}

/* Valid ids and tenant names (CONTRACT.md): checked before they go into a
 * key or a CLI argument. */
static int name_ok(const char *s, int allow_colon) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > 128 || s[0] == '-') return 0;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
          ch == '.' || ch == '_' || ch == '@' || ch == '-' || (allow_colon && ch == ':')))
      return 0;
  }
  return 1;
}

static void badge(struct rq_buf *b, const char *cls, const char *text) {
  rq_buf_printf(b, "<span class=\"badge %s\">", cls);
  html_text(b, text);
  rq_buf_puts(b, "</span>");
}

static const char *state_class(const char *state) {
  if (!state) return "muted";
  if (strcmp(state, "sent") == 0 || strcmp(state, "closed") == 0) return "good";
  if (strcmp(state, "failed") == 0 || strcmp(state, "open") == 0) return "bad";
  if (strcmp(state, "partial") == 0 || strcmp(state, "retry") == 0 ||
      strcmp(state, "deferred") == 0 || strcmp(state, "half_open") == 0)
    return "warn";
  return "info";
}

static void csrf_field(struct rq_buf *b, const struct web_req *rq) {
  rq_buf_printf(b, "<input type=\"hidden\" name=\"csrf\" value=\"%s\">", rq->csrf);
}

/* ---- overview ---------------------------------------------------------------------- */

static void overview_rates(struct rq_buf *b, int64_t now) {
  struct events_stats es;
  events_stats(&es, now);
  long sent = 0, failed = 0, retry = 0, peak = 1;
  for (int i = 0; i < EVENTS_MINUTES; i++) {
    if (i < 1) sent += es.minutes[i].sent, failed += es.minutes[i].failed, retry += es.minutes[i].retry;
    long t = es.minutes[i].sent + es.minutes[i].failed;
    if (t > peak) peak = t;
  }
  rq_buf_puts(b, "<section><h2>Sent and failed per minute</h2>");
  rq_buf_printf(b, "<p class=\"figures\"><span class=\"fig good\" id=\"rate-sent\">%ld</span> sent "
                   "\xc2\xb7 <span class=\"fig bad\" id=\"rate-failed\">%ld</span> failed "
                   "\xc2\xb7 <span class=\"fig warn\">%ld</span> retried this minute</p>",
                sent, failed, retry);
  rq_buf_puts(b, "<div class=\"bars\" aria-label=\"last 30 minutes, oldest left\">");
  for (int i = EVENTS_MINUTES - 1; i >= 0; i--) {
    const struct events_minute *m = &es.minutes[i];
    int hs = (int)(m->sent * 100 / peak), hf = (int)(m->failed * 100 / peak);
    rq_buf_printf(b, "<div class=\"bar\" title=\"%d min ago: %ld sent, %ld failed\">"
                     "<i class=\"f h%d\"></i><i class=\"s h%d\"></i></div>",
                  i, m->sent, m->failed, hf / 5 * 5, hs / 5 * 5);
  }
  rq_buf_puts(b, "</div>");
  rq_buf_puts(b, "<p class=\"muted\">Counted from <code>P:events</code> since this console started (");
  html_time(b, es.since, now);
  rq_buf_printf(b, "); %s.</p></section>",
                es.connected ? "listening" : "<strong class=\"bad\">not connected to the event channel</strong>");
}

void page_overview(struct web_app *app, const struct web_req *rq, struct web_resp *rs) {
  (void)rq;
  redisContext *rc = redis_or_error(app, rs);
  if (rc == NULL) return;
  struct stats s = {.rc = rc, .prefix = app->prefix, .now = relayq_now_ms()};
  if (queue_stats_collect(&s) != 0) {
    queue_stats_free(&s);
    redis_failed(app, rs, NULL);
    return;
  }
  struct rq_buf *b = &rs->body;
  page_begin(b, "Overview", "overview", 1);
  long long ready = 0, inflight = 0;
  size_t live = 0;
  for (size_t i = 0; i < s.nq; i++) ready += s.q[i].shared + s.q[i].sorted;
  for (size_t i = 0; i < s.nw; i++) inflight += s.w[i].inflight_len, live += s.w[i].live;
  rq_buf_puts(b, "<h1>Overview</h1><section class=\"cards\">");
  rq_buf_printf(b, "<div class=\"card\"><b id=\"total-ready\">%lld</b>ready</div>", ready);
  rq_buf_printf(b, "<div class=\"card\"><b id=\"total-inflight\">%lld</b>in flight</div>", inflight);
  rq_buf_printf(b, "<div class=\"card\"><b id=\"total-delayed\">%lld</b>delayed (%lld due)</div>",
                s.due + s.later, s.due);
  rq_buf_printf(b, "<div class=\"card%s\"><a href=\"/dead\"><b id=\"total-dead\">%lld</b>dead</a></div>",
                s.dead ? " alert" : "", s.dead);
  rq_buf_printf(b, "<div class=\"card%s\"><b id=\"total-workers\">%zu</b>live workers</div>",
                live ? "" : " alert", live);
  rq_buf_puts(b, "</section>");
  overview_rates(b, s.now);

  rq_buf_puts(b, "<section><h2>Queues</h2>");
  if (s.nq == 0) {
    rq_buf_puts(b, "<p class=\"empty\">No queues yet. Jobs pushed with <code>relayq send</code> or "
                   "a producer library appear here.</p>");
  } else {
    rq_buf_puts(b, "<table id=\"queues\"><thead><tr><th>Queue</th><th class=\"n\">Ready</th>"
                   "<th class=\"n\">Waiting per tenant</th><th>Deepest tenants</th></tr></thead><tbody>");
    for (size_t i = 0; i < s.nq; i++) {
      const struct queue_stat *q = &s.q[i];
      rq_buf_puts(b, "<tr data-queue=\"");
      html_attr(b, q->name);
      rq_buf_puts(b, "\"><td>");
      html_text(b, q->name);
      rq_buf_printf(b, "</td><td class=\"n\">%lld</td><td class=\"n\">%lld in %zu tenant(s)</td><td>",
                    q->shared + q->sorted, q->sorted, q->with_backlog);
      size_t shown = 0;
      for (size_t k = 0; k < q->nt && shown < 5; k++) {
        if (q->t[k].depth <= 0) continue;
        rq_buf_puts(b, shown++ ? ", " : "");
        rq_buf_puts(b, "<a href=\"/tenant?id=");
        html_url(b, q->t[k].tenant);
        rq_buf_puts(b, "\">");
        html_text(b, q->t[k].tenant);
        rq_buf_printf(b, "</a> %lld%s", q->t[k].depth,
                      q->t[k].held ? " (held by an operator)" : q->t[k].paused ? " (over its quota)" : "");
      }
      if (!shown) rq_buf_puts(b, "<span class=\"muted\">none</span>");
      rq_buf_puts(b, "</td></tr>");
    }
    rq_buf_puts(b, "</tbody></table>");
  }
  rq_buf_puts(b, "</section><section><h2>Workers</h2>");
  if (s.nw == 0) {
    rq_buf_puts(b, "<p class=\"empty\" id=\"no-workers\">No worker has registered. Start "
                   "<code>relayq-worker</code>; it appears here within a few seconds.</p>");
  } else {
    rq_buf_puts(b, "<table id=\"workers\"><thead><tr><th>Worker</th><th>State</th><th>Heartbeat</th>"
                   "<th class=\"n\">In flight</th><th class=\"n\">Sent</th><th class=\"n\">Failed</th>"
                   "<th>Queues</th></tr></thead><tbody>");
    for (size_t i = 0; i < s.nw; i++) {
      const struct worker_stat *w = &s.w[i];
      rq_buf_puts(b, "<tr data-worker=\"");
      html_attr(b, w->id);
      rq_buf_puts(b, "\"><td>");
      html_text(b, w->id);
      rq_buf_puts(b, "</td><td>");
      if (w->live) badge(b, "good", "live");
      else if (w->registered) badge(b, "bad", "dead: jobs await reclaim");
      else badge(b, "warn", "not registered");
      rq_buf_puts(b, "</td><td>");
      html_time(b, queue_stats_hb_num(w, HB_UPDATED), s.now);
      rq_buf_printf(b, "</td><td class=\"n\">%lld</td><td class=\"n\">%lld</td><td class=\"n\">%lld</td><td>",
                    w->inflight_len, queue_stats_hb_num(w, HB_SENT), queue_stats_hb_num(w, HB_FAILED));
      html_text(b, w->hb[HB_QUEUES] ? w->hb[HB_QUEUES] : w->registered);
      rq_buf_puts(b, "</td></tr>");
    }
    rq_buf_puts(b, "</tbody></table>");
  }
  rq_buf_puts(b, "</section>");
  page_end(b, app);
  queue_stats_free(&s);
}

/* ---- tenants --------------------------------------------------------------------- */

/* Breaker routes of one tenant from HGETALL P:breaker:T: fields
 * ROUTE.state/.reason/.until/.failures. Writes a summary badge for the
 * worst route. */
static void breaker_summary(struct rq_buf *b, const redisReply *h) {
  const char *worst = NULL;
  if (h && h->type == REDIS_REPLY_ARRAY)
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
      const char *f = h->element[i]->str, *v = h->element[i + 1]->str;
      if (!f || !v) continue;
      const char *dot = strrchr(f, '.');
      if (!dot || strcmp(dot, ".state") != 0) continue;
      if (strcmp(v, "open") == 0) worst = "open";
      else if (strcmp(v, "half_open") == 0 && !worst) worst = "half_open";
    }
  badge(b, state_class(worst ? worst : "closed"), worst ? worst : "closed");
}

static int by_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

void page_tenants(struct web_app *app, const struct web_req *rq, struct web_resp *rs) {
  redisContext *rc = redis_or_error(app, rs);
  if (rc == NULL) return;
  const char *filter = web_form_get(&rq->query, "q");
  char pattern[KEY_MAX];
  key_of(app, pattern, RELAYQ_KEY_TENANT, "*");
  size_t plen = strlen(pattern) - 1; /* up to the '*' */
  char **names = NULL;
  size_t n = 0, cap = 0;
  int more = 0;
  char cursor[32] = "0";
  for (int round = 0; round < PAGE_SCAN_ROUNDS; round++) {
    redisReply *r = redisCommand(rc, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
      for (size_t i = 0; i < n; i++) free(names[i]);
      free(names);
      redis_failed(app, rs, r);
      return;
    }
    snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
    const redisReply *keys = r->element[1];
    for (size_t i = 0; i < keys->elements; i++) {
      const char *k = keys->element[i]->str;
      if (!k || strlen(k) <= plen) continue;
      const char *t = k + plen;
      if (strstr(t, ":route:")) continue;
      if (filter && filter[0] && !strstr(t, filter)) continue;
      if (n == TENANTS_SHOWN) {
        more = 1;
        continue;
      }
      if (n == cap) names = rq_xrealloc(names, (cap = cap ? cap * 2 : 64) * sizeof *names);
      names[n++] = rq_xstrdup(t);
    }
    freeReplyObject(r);
    if (strcmp(cursor, "0") == 0) break;
  }
  qsort(names, n, sizeof *names, by_str);
  for (size_t i = 0; i < n; i++) {
    char tk[KEY_MAX], bk[KEY_MAX], hk[KEY_MAX], pk[KEY_MAX];
    key_of(app, tk, RELAYQ_KEY_TENANT, names[i]);
    key_of(app, bk, RELAYQ__KEY_BREAKER, names[i]);
    key_of(app, hk, RELAYQ__KEY_THOLD, names[i]);
    key_of(app, pk, RELAYQ__KEY_TPAUSE, names[i]);
    redisAppendCommand(rc, "HMGET %s gateway smtp_host mailgun_domain from_email", tk);
    redisAppendCommand(rc, "HGETALL %s", bk);
    redisAppendCommand(rc, "EXISTS %s %s", hk, pk);
  }
  struct rq_buf *b = &rs->body;
  page_begin(b, "Tenants", "tenants", 0);
  rq_buf_puts(b, "<h1>Tenants</h1><form method=\"get\" action=\"/tenants\" class=\"filter\">"
                 "<input name=\"q\" placeholder=\"Filter by name\" value=\"");
  html_attr(b, filter);
  rq_buf_puts(b, "\"><button>Filter</button></form>");
  if (n == 0) {
    rq_buf_puts(b, "<p class=\"empty\" id=\"no-tenants\">No tenant hash found");
    if (filter && filter[0]) rq_buf_puts(b, " matching the filter");
    rq_buf_puts(b, ". Tenants without a hash send through the platform gateway with the "
                   "defaults; <code>relayq tenant set</code> creates one.</p>");
  } else {
    rq_buf_puts(b, "<table id=\"tenants\"><thead><tr><th>Tenant</th><th>Gateway</th>"
                   "<th>Server or domain</th><th>From</th><th>Breaker</th><th>Paused</th>"
                   "</tr></thead><tbody>");
  }
  int failed = 0;
  for (size_t i = 0; i < n; i++) {
    redisReply *f = NULL, *br = NULL, *pz = NULL;
    if (redisGetReply(rc, (void **)&f) != REDIS_OK || redisGetReply(rc, (void **)&br) != REDIS_OK ||
        redisGetReply(rc, (void **)&pz) != REDIS_OK) {
      failed = 1;
      if (f) freeReplyObject(f);
      if (br) freeReplyObject(br);
      break;
    }
    const char *gw = NULL, *host = NULL, *dom = NULL, *from = NULL;
    if (f->type == REDIS_REPLY_ARRAY && f->elements == 4) {
      gw = f->element[0]->str, host = f->element[1]->str;
      dom = f->element[2]->str, from = f->element[3]->str;
    }
    rq_buf_puts(b, "<tr data-tenant=\"");
    html_attr(b, names[i]);
    rq_buf_puts(b, "\"><td><a href=\"/tenant?id=");
    html_url(b, names[i]);
    rq_buf_puts(b, "\">");
    html_text(b, names[i]);
    rq_buf_puts(b, "</a></td><td>");
    html_text(b, gw && gw[0] ? gw : "platform");
    rq_buf_puts(b, "</td><td>");
    html_text(b, gw && strcmp(gw, "mailgun") == 0 ? dom : host);
    rq_buf_puts(b, "</td><td>");
    html_text(b, from);
    rq_buf_puts(b, "</td><td>");
    breaker_summary(b, br);
    rq_buf_puts(b, "</td><td>");
    if (pz->type == REDIS_REPLY_INTEGER && pz->integer) badge(b, "warn", "paused");
    else rq_buf_puts(b, "<span class=\"muted\">no</span>");
    rq_buf_puts(b, "</td></tr>");
    freeReplyObject(f);
    freeReplyObject(br);
    freeReplyObject(pz);
  }
  if (n) rq_buf_puts(b, "</tbody></table>");
  if (more) rq_buf_printf(b, "<p class=\"muted\">Showing the first %d; filter to see others.</p>", TENANTS_SHOWN);
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
  if (failed) {
    redis_failed(app, rs, NULL);
    return;
  }
  page_end(b, app);
}

/* ---- one tenant --------------------------------------------------------------------- */

/* The tenant model's secret fields, and any other field whose name says it
 * holds one (a route hash may carry fields this build does not know). */
static int is_secret_field(const char *f) {
  return rq_tenant_field_is_secret(f) || strstr(f, "password") || strstr(f, "api_key") ||
         strstr(f, "private_key") || strstr(f, "token");
}

/* A hash's fields as a two-column table, secrets masked. */
static void fields_table(struct rq_buf *b, const redisReply *h, const char *id) {
  rq_buf_printf(b, "<table class=\"fields\" id=\"%s\"><tbody>", id);
  for (size_t i = 0; i + 1 < h->elements; i += 2) {
    const char *f = h->element[i]->str, *v = h->element[i + 1]->str;
    if (!f) continue;
    rq_buf_puts(b, "<tr><th>");
    html_text(b, f);
    rq_buf_puts(b, "</th><td>");
    if (is_secret_field(f)) {
      rq_buf_puts(b, "<span class=\"secret\">");
      html_text(b, tenant_masked(v)); /* as `relayq tenant get` shows it */
      rq_buf_puts(b, "</span>");
    } else if (v && strlen(f) > 3 && strcmp(f + strlen(f) - 3, "_at") == 0 && num_or(v, 0) > 0) {
      html_time(b, num_or(v, 0), relayq_now_ms());
      rq_buf_puts(b, " <span class=\"muted\">");
      html_text(b, v);
      rq_buf_puts(b, "</span>");
    } else {
      html_text(b, v);
    }
    rq_buf_puts(b, "</td></tr>");
  }
  rq_buf_puts(b, "</tbody></table>");
}

static const char *hash_get(const redisReply *h, const char *name) {
  if (!h || h->type != REDIS_REPLY_ARRAY) return NULL;
  for (size_t i = 0; i + 1 < h->elements; i += 2)
    if (h->element[i]->str && strcmp(h->element[i]->str, name) == 0) return h->element[i + 1]->str;
  return NULL;
}

static void breaker_table(struct rq_buf *b, const redisReply *h, int64_t now) {
  rq_buf_puts(b, "<section><h2>Circuit breakers</h2>");
  int any = 0;
  for (size_t i = 0; h && h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements; i += 2) {
    const char *f = h->element[i]->str;
    const char *dot = f ? strrchr(f, '.') : NULL;
    if (!dot || strcmp(dot, ".state") != 0) continue;
    char route[128], k[160];
    snprintf(route, sizeof route, "%.*s", (int)(dot - f), f);
    if (!any++)
      rq_buf_puts(b, "<table id=\"breakers\"><thead><tr><th>Route</th><th>State</th><th>Why</th>"
                     "<th class=\"n\">Failures</th><th>Sending resumes</th></tr></thead><tbody>");
    const char *state = h->element[i + 1]->str;
    rq_buf_puts(b, "<tr data-route=\"");
    html_attr(b, route);
    rq_buf_puts(b, "\"><td>");
    html_text(b, route);
    rq_buf_puts(b, "</td><td>");
    badge(b, state_class(state), state ? state : "?");
    rq_buf_puts(b, "</td><td>");
    snprintf(k, sizeof k, "%s.reason", route);
    html_text(b, hash_get(h, k));
    snprintf(k, sizeof k, "%s.failures", route);
    rq_buf_puts(b, "</td><td class=\"n\">");
    html_text(b, hash_get(h, k));
    rq_buf_puts(b, "</td><td>");
    snprintf(k, sizeof k, "%s.until", route);
    long long until = num_or(hash_get(h, k), 0);
    if (state && strcmp(state, "closed") != 0 && until > 0) html_time(b, until, now);
    else rq_buf_puts(b, "<span class=\"muted\">\xe2\x80\x94</span>");
    rq_buf_puts(b, "</td></tr>");
  }
  if (any) rq_buf_puts(b, "</tbody></table>");
  else rq_buf_puts(b, "<p class=\"empty\">No breaker has tripped for this tenant: every route is "
                      "closed (sending normally).</p>");
  rq_buf_puts(b, "</section>");
}

static void failures_list(struct rq_buf *b, const char *tenant, int64_t now) {
  struct web_event ev[10];
  size_t n = events_find(NULL, tenant, "failed retry partial", ev, 10);
  rq_buf_puts(b, "<section><h2>Last failures</h2>");
  if (n == 0) {
    rq_buf_puts(b, "<p class=\"empty\">No failure or retry seen since this console started.</p></section>");
    return;
  }
  rq_buf_puts(b, "<table id=\"failures\"><thead><tr><th>When</th><th>Job</th><th>State</th>"
                 "<th>Error</th><th>Code</th></tr></thead><tbody>");
  for (size_t i = 0; i < n; i++) {
    rq_buf_puts(b, "<tr><td>");
    html_time(b, ev[i].ts, now);
    rq_buf_puts(b, "</td><td><a href=\"/job?id=");
    html_url(b, ev[i].id);
    rq_buf_puts(b, "\">");
    html_text(b, ev[i].id);
    rq_buf_puts(b, "</a></td><td>");
    badge(b, state_class(ev[i].state), ev[i].state);
    rq_buf_puts(b, "</td><td>");
    html_text(b, ev[i].error);
    rq_buf_puts(b, "</td><td>");
    html_text(b, ev[i].code);
    rq_buf_puts(b, "</td></tr>");
  }
  rq_buf_puts(b, "</tbody></table><p class=\"muted\">Open a job for its detail and the next step.</p></section>");
}

/* The operator's hold (relayq tenant pause: P:thold:T, a hash of reason,
 * since, until) and the quota's pause (P:tpause:T) both
 * hold a tenant's jobs; this shows either with its end and reason. */
static void pause_section(struct rq_buf *b, const struct web_req *rq, const char *tenant,
                          const redisReply *pause, const redisReply *qpause, int64_t now) {
  rq_buf_puts(b, "<section id=\"pause\"><h2>Pause</h2>");
  const char *until_s = hash_get(pause, "until"), *reason = hash_get(pause, "reason");
  int paused = pause && pause->type == REDIS_REPLY_ARRAY && pause->elements > 0;
  if (paused) {
    rq_buf_puts(b, "<p>");
    badge(b, "warn", "paused by an operator");
    long long until = num_or(until_s, 0);
    if (until > 0) {
      rq_buf_puts(b, " until ");
      html_time(b, until, now);
    } else {
      rq_buf_puts(b, " until resumed");
    }
    if (reason && reason[0]) {
      rq_buf_puts(b, ": ");
      html_text(b, reason);
    }
    rq_buf_puts(b, ". Its jobs wait as <code>deferred</code>; none is lost.</p>");
    rq_buf_puts(b, "<form method=\"post\" action=\"/tenant/resume\" class=\"act\">");
    csrf_field(b, rq);
    rq_buf_puts(b, "<input type=\"hidden\" name=\"tenant\" value=\"");
    html_attr(b, tenant);
    rq_buf_puts(b, "\"><button id=\"resume\" class=\"primary\">Resume sending</button></form>");
  } else {
    rq_buf_puts(b, "<p>Sending normally.</p><form method=\"post\" action=\"/tenant/pause\" class=\"act\">");
    csrf_field(b, rq);
    rq_buf_puts(b, "<input type=\"hidden\" name=\"tenant\" value=\"");
    html_attr(b, tenant);
    rq_buf_puts(b, "\"><label>For <select name=\"for\"><option value=\"\">until resumed</option>"
                   "<option value=\"900\">15 minutes</option><option value=\"3600\">1 hour</option>"
                   "<option value=\"86400\">1 day</option></select></label> "
                   "<label>Reason <input name=\"reason\" maxlength=\"200\" "
                   "placeholder=\"e.g. tenant asked to stop a campaign\"></label> "
                   "<button id=\"pause-btn\" class=\"danger\">Pause tenant</button></form>");
  }
  if (qpause && qpause->type == REDIS_REPLY_STRING) {
    rq_buf_puts(b, "<p>");
    badge(b, "warn", "over its quota");
    rq_buf_puts(b, " until ");
    html_time(b, num_or(qpause->str, 0), now);
    rq_buf_puts(b, ".</p>");
  }
  rq_buf_puts(b, "</section>");
}

void page_tenant(struct web_app *app, const struct web_req *rq, struct web_resp *rs) {
  const char *tenant = web_form_get(&rq->query, "id");
  if (!name_ok(tenant, 1)) {
    page_error(rs, 400, "Not a tenant name",
               "A tenant name is 1-128 characters of A-Z a-z 0-9 . _ @ -. Pick one from the tenants list.");
    return;
  }
  redisContext *rc = redis_or_error(app, rs);
  if (rc == NULL) return;
  char tk[KEY_MAX], quota[KEY_MAX], bk[KEY_MAX], hk[KEY_MAX], pk[KEY_MAX];
  key_of(app, tk, RELAYQ_KEY_TENANT, tenant);
  key_of(app, quota, RELAYQ_KEY_QUOTA, tenant);
  key_of(app, bk, RELAYQ__KEY_BREAKER, tenant);
  key_of(app, hk, RELAYQ__KEY_THOLD, tenant);
  key_of(app, pk, RELAYQ__KEY_TPAUSE, tenant);
  int64_t now = relayq_now_ms();
  long long window_ms = num_or(getenv("RELAYQ_QUOTA_WINDOW_S"), 3600) * 1000;
  redisAppendCommand(rc, "HGETALL %s", tk);
  redisAppendCommand(rc, "HGETALL %s", bk);
  redisAppendCommand(rc, "HGETALL %s", hk);
  redisAppendCommand(rc, "GET %s", pk);
  redisAppendCommand(rc, "ZCOUNT %s %lld +inf", quota, (long long)(now - window_ms));
  redisReply *r[5] = {0};
  for (int i = 0; i < 5; i++)
    if (redisGetReply(rc, (void **)&r[i]) != REDIS_OK) {
      for (int k = 0; k < i; k++) freeReplyObject(r[k]);
      redis_failed(app, rs, NULL);
      return;
    }
  const redisReply *h = r[0];
  struct rq_buf *b = &rs->body;
  page_begin(b, tenant, "tenants", 0);
  rq_buf_puts(b, "<h1>Tenant <span id=\"tenant-name\">");
  html_text(b, tenant);
  rq_buf_puts(b, "</span></h1>");
  if (h->type != REDIS_REPLY_ARRAY || h->elements == 0) {
    rq_buf_puts(b, "<p class=\"empty\" id=\"no-hash\">This tenant has no settings hash: it sends "
                   "through the platform gateway with the worker's defaults.</p>");
  } else {
    const char *gw = hash_get(h, "gateway");
    rq_buf_puts(b, "<p class=\"lead\">Sends through ");
    badge(b, "info", gw && gw[0] ? gw : "platform");
    const char *host = hash_get(h, "smtp_host"), *dom = hash_get(h, "mailgun_domain");
    if (gw && strcmp(gw, "smtp") == 0 && host) {
      rq_buf_puts(b, " to <code>");
      html_text(b, host);
      rq_buf_puts(b, "</code>");
    } else if (gw && strcmp(gw, "mailgun") == 0 && dom) {
      rq_buf_puts(b, " for <code>");
      html_text(b, dom);
      rq_buf_puts(b, "</code>");
    }
    const char *vd = hash_get(h, "verified_domains");
    rq_buf_puts(b, ". Verified domains: ");
    if (vd && vd[0]) {
      rq_buf_puts(b, "<span id=\"verified-domains\">");
      html_text(b, vd);
      rq_buf_puts(b, "</span>");
    } else {
      rq_buf_puts(b, "<span class=\"muted\" id=\"verified-domains\">none (mail goes out From the platform sender)</span>");
    }
    rq_buf_puts(b, ".</p>");
  }
  pause_section(b, rq, tenant, r[2], r[3], now);
  breaker_table(b, r[1], now);
  rq_buf_puts(b, "<section><h2>Limits</h2><ul>");
  const char *hq = h->type == REDIS_REPLY_ARRAY ? hash_get(h, "hourly_quota") : NULL;
  long long used = r[4]->type == REDIS_REPLY_INTEGER ? r[4]->integer : 0;
  if (hq && num_or(hq, 0) > 0)
    rq_buf_printf(b, "<li id=\"quota\">Quota: <b>%lld</b> of %lld messages in the last %lld s</li>",
                  used, num_or(hq, 0), window_ms / 1000);
  else
    rq_buf_printf(b, "<li id=\"quota\">No hourly quota (%lld sent in the last %lld s)</li>", used,
                  window_ms / 1000);
  const char *rl = h->type == REDIS_REPLY_ARRAY ? hash_get(h, "rate_limits") : NULL;
  rq_buf_puts(b, "<li>Rate limits: ");
  if (rl && rl[0]) html_text(b, rl);
  else rq_buf_puts(b, "<span class=\"muted\">none</span>");
  rq_buf_puts(b, "</li></ul></section>");
  failures_list(b, tenant, now);
  if (h->type == REDIS_REPLY_ARRAY && h->elements > 0) {
    rq_buf_puts(b, "<section><h2>Settings</h2>");
    fields_table(b, h, "settings");
    rq_buf_puts(b, "<p class=\"muted\">Secrets are never shown. Change settings with "
                   "<code>relayq tenant set</code>.</p></section>");
  }
  page_end(b, app);
  for (int i = 0; i < 5; i++) freeReplyObject(r[i]);
}

/* ---- one job ---------------------------------------------------------------------------- */

/* What a person should do next, from the state and error category (the
 * mail core's words for the category, classify.h). */
static const char *next_step(const char *state, const char *error) {
  enum rq_errcat cat;
  if (state && strcmp(state, "sent") == 0) return "Delivered to every recipient: nothing to do.";
  if (state && (strcmp(state, "queued") == 0 || strcmp(state, "sending") == 0))
    return "On its way: nothing to do yet.";
  if (error && error[0] && rq_errcat_parse(error, &cat) == 0) return rq_errcat_next_step(cat);
  if (state && strcmp(state, "retry") == 0) return "A temporary failure: relayq retries at the next attempt time.";
  if (state && strcmp(state, "deferred") == 0) return "Waiting for its time (not_before) or a limit: nothing to do.";
  return "Read the detail below.";
}

static void timeline_row(struct rq_buf *b, int64_t ts, const char *what, const char *state,
                         const char *extra, int64_t now) {
  if (ts <= 0) return;
  rq_buf_puts(b, "<li><span class=\"when\">");
  html_time(b, ts, now);
  rq_buf_puts(b, "</span> ");
  if (state) badge(b, state_class(state), state);
  rq_buf_puts(b, " ");
  html_text(b, what);
  if (extra && extra[0]) {
    rq_buf_puts(b, " <span class=\"muted\">");
    html_text(b, extra);
    rq_buf_puts(b, "</span>");
  }
  rq_buf_puts(b, "</li>");
}

void page_job(struct web_app *app, const struct web_req *rq, struct web_resp *rs) {
  const char *id = web_form_get(&rq->query, "id");
  if (!name_ok(id, 1)) {
    page_error(rs, 400, "Not a job id",
               "A job id is 1-128 characters of A-Z a-z 0-9 . _ : @ -. Copy it from `relayq send` or your producer.");
    return;
  }
  redisContext *rc = redis_or_error(app, rs);
  if (rc == NULL) return;
  char sk[KEY_MAX];
  key_of(app, sk, RELAYQ_KEY_STATUS, id);
  redisReply *h = redisCommand(rc, "HGETALL %s", sk);
  if (h == NULL || h->type != REDIS_REPLY_ARRAY) {
    redis_failed(app, rs, h);
    return;
  }
  int64_t now = relayq_now_ms();
  struct rq_buf *b = &rs->body;
  if (h->elements == 0) {
    freeReplyObject(h);
    rs->status = 404;
    page_begin(b, "Job not found", NULL, 0);
    rq_buf_puts(b, "<h1>Job <code>");
    html_text(b, id);
    rq_buf_puts(b, "</code></h1><p class=\"empty\" id=\"no-job\">No status for this id. It was never "
                   "enqueued, or it reached a final state more than RELAYQ_STATUS_TTL_S ago (7 days by "
                   "default) and its status expired. A job LPUSHed without a status gets one when a "
                   "worker first sees it.</p>");
    page_end(b, app);
    return;
  }
  const char *state = hash_get(h, "state"), *error = hash_get(h, "error");
  page_begin(b, id, NULL, state && !relayq_state_is_final(state));
  rq_buf_puts(b, "<h1>Job <code id=\"job-id\">");
  html_text(b, id);
  rq_buf_puts(b, "</code> ");
  rq_buf_printf(b, "<span id=\"job-state\" class=\"badge %s\">", state_class(state));
  html_text(b, state ? state : "?");
  rq_buf_puts(b, "</span></h1>");
  rq_buf_puts(b, "<section class=\"next\" id=\"next-step\"><h2>Next step</h2><p>");
  html_text(b, next_step(state, error));
  rq_buf_puts(b, "</p>");
  const char *detail = hash_get(h, "detail");
  if (detail && detail[0]) {
    rq_buf_puts(b, "<p class=\"detail\" id=\"detail\">");
    html_text(b, detail);
    rq_buf_puts(b, "</p>");
  }
  rq_buf_puts(b, "</section>");

  const char *tenant = hash_get(h, "tenant");
  rq_buf_puts(b, "<section><h2>Summary</h2><dl class=\"summary\">");
  static const char *const shown[][2] = {
      {"tenant", "Tenant"},       {"route", "Route"},          {"attempts", "Attempts"},
      {"recipients", "Recipients"}, {"accepted", "Accepted"}, {"rejected", "Rejected"},
      {"error", "Error"},         {"last_code", "Last code"},  {"last_enhanced", "Enhanced code"},
      {"last_reply", "Last reply"}, {"message_id", "Message-ID"}, {"provider_id", "Provider id"},
      {"worker", "Worker"}};
  for (size_t i = 0; i < sizeof shown / sizeof *shown; i++) {
    const char *v = hash_get(h, shown[i][0]);
    if (!v || !v[0]) continue;
    rq_buf_printf(b, "<dt>%s</dt><dd data-field=\"%s\">", shown[i][1], shown[i][0]);
    if (strcmp(shown[i][0], "tenant") == 0) {
      rq_buf_puts(b, "<a href=\"/tenant?id=");
      html_url(b, v);
      rq_buf_puts(b, "\">");
      html_text(b, v);
      rq_buf_puts(b, "</a>");
    } else {
      html_text(b, v);
    }
    rq_buf_puts(b, "</dd>");
  }
  rq_buf_puts(b, "</dl></section>");

  /* Per-recipient outcomes: rcpt.ADDR fields. */
  int any = 0;
  for (size_t i = 0; i + 1 < h->elements; i += 2) {
    const char *f = h->element[i]->str;
    if (!f || strncmp(f, "rcpt.", 5) != 0) continue;
    if (!any++)
      rq_buf_puts(b, "<section><h2>Recipients</h2><table id=\"recipients\"><thead><tr>"
                     "<th>Address</th><th>Outcome</th></tr></thead><tbody>");
    rq_buf_puts(b, "<tr><td>");
    html_text(b, f + 5);
    rq_buf_puts(b, "</td><td>");
    html_text(b, h->element[i + 1]->str);
    rq_buf_puts(b, "</td></tr>");
  }
  if (any) rq_buf_puts(b, "</tbody></table></section>");

  rq_buf_puts(b, "<section><h2>Timeline</h2><ol class=\"timeline\" id=\"timeline\">");
  struct web_event ev[40];
  size_t n = events_find(id, NULL, NULL, ev, 40);
  timeline_row(b, num_or(hash_get(h, "created_at"), 0), "created", NULL, NULL, now);
  if (n == 0) {
    timeline_row(b, num_or(hash_get(h, "updated_at"), 0), "last change", state, NULL, now);
  } else {
    for (size_t i = n; i-- > 0;) {
      char extra[160] = "";
      if (ev[i].attempts >= 0) snprintf(extra, sizeof extra, "attempt %ld", ev[i].attempts);
      if (ev[i].error[0]) snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " %s", ev[i].error);
      if (ev[i].code[0]) snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " %s", ev[i].code);
      if (ev[i].worker[0]) snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " on %s", ev[i].worker);
      timeline_row(b, ev[i].ts, "", ev[i].state, extra, now);
    }
  }
  long long next = num_or(hash_get(h, "next_attempt_at"), 0);
  if (next > 0 && state && !relayq_state_is_final(state)) timeline_row(b, next, "next attempt", NULL, NULL, now);
  rq_buf_puts(b, "</ol>");
  if (n == 0)
    rq_buf_puts(b, "<p class=\"muted\">Events are kept from when this console started; this job's "
                   "earlier changes show as its creation and last change.</p>");
  rq_buf_puts(b, "</section><section><h2>All status fields</h2>");
  fields_table(b, h, "status-fields");
  rq_buf_puts(b, "</section>");
  (void)tenant;
  page_end(b, app);
  freeReplyObject(h);
}

/* ---- dead letters ------------------------------------------------------------------------ */

void page_dead(struct web_app *app, const struct web_req *rq, struct web_resp *rs) {
  long long limit = num_or(web_form_get(&rq->query, "limit"), DEAD_DEFAULT);
  if (limit < 1) limit = DEAD_DEFAULT;
  if (limit > DEAD_MAX) limit = DEAD_MAX;
  redisContext *rc = redis_or_error(app, rs);
  if (rc == NULL) return;
  char dk[KEY_MAX];
  key_of(app, dk, RELAYQ_KEY_DEAD, NULL);
  redisAppendCommand(rc, "LLEN %s", dk);
  redisAppendCommand(rc, "LRANGE %s 0 %lld", dk, limit - 1);
  redisReply *len = NULL, *list = NULL;
  if (redisGetReply(rc, (void **)&len) != REDIS_OK || redisGetReply(rc, (void **)&list) != REDIS_OK ||
      list->type != REDIS_REPLY_ARRAY) {
    if (len) freeReplyObject(len);
    redis_failed(app, rs, list);
    return;
  }
  long long total = len->type == REDIS_REPLY_INTEGER ? len->integer : 0;
  freeReplyObject(len);
  struct relayq_job **jobs = rq_xcalloc(list->elements + 1, sizeof *jobs);
  char (*why)[200] = rq_xcalloc(list->elements + 1, sizeof *why);
  char (*ids)[RELAYQ_ID_MAX + 1] = rq_xcalloc(list->elements + 1, sizeof *ids);
  for (size_t i = 0; i < list->elements; i++) {
    struct relayq_error err = {0};
    const redisReply *el = list->element[i];
    if (el->type != REDIS_REPLY_STRING ||
        relayq_job_decode(el->str, el->len, cli_max_job_bytes(), &jobs[i], &err) != 0) {
      jobs[i] = NULL;
      snprintf(why[i], sizeof why[i], "%s", el->type == REDIS_REPLY_STRING ? err.message : "not a string");
      /* An invalid job whose id could be read still has a status. */
      if (el->type == REDIS_REPLY_STRING && name_ok(err.id, 1)) snprintf(ids[i], sizeof ids[i], "%s", err.id);
    } else {
      snprintf(ids[i], sizeof ids[i], "%s", jobs[i]->id);
    }
    if (!ids[i][0]) continue;
    char sk[KEY_MAX];
    key_of(app, sk, RELAYQ_KEY_STATUS, ids[i]);
    redisAppendCommand(rc, "HMGET %s error detail updated_at tenant attempts", sk);
  }
  struct rq_buf *b = &rs->body;
  int64_t now = relayq_now_ms();
  page_begin(b, "Dead letters", "dead", 0);
  rq_buf_printf(b, "<h1>Dead letters <span class=\"muted\" id=\"dead-total\">%lld</span></h1>", total);
  if (list->elements == 0) {
    rq_buf_puts(b, "<p class=\"empty\" id=\"no-dead\">No dead letters. Jobs that fail for good, and "
                   "payloads no worker could read, land here for inspection and requeue.</p>");
  } else {
    rq_buf_puts(b, "<p><a class=\"button danger\" id=\"requeue-all\" href=\"/dead/requeue?all=1\">"
                   "Requeue all\xe2\x80\xa6</a> <span class=\"muted\">Newest first.</span></p>");
    rq_buf_puts(b, "<table id=\"dead\"><thead><tr><th>Job</th><th>Tenant</th><th class=\"n\">Attempts</th>"
                   "<th>Reason</th><th>When</th><th></th></tr></thead><tbody>");
  }
  int failed = 0;
  for (size_t i = 0; i < list->elements; i++) {
    if (!ids[i][0]) {
      rq_buf_printf(b, "<tr class=\"undecodable\"><td colspan=\"3\">(undecodable, %zu bytes)</td><td>",
                    list->element[i]->len);
      html_text(b, why[i]);
      rq_buf_puts(b, "</td><td></td><td></td></tr>");
      continue;
    }
    redisReply *st = NULL;
    if (failed || redisGetReply(rc, (void **)&st) != REDIS_OK) {
      failed = 1;
      continue;
    }
    const char *error = NULL, *detail = NULL, *upd = NULL, *st_tenant = NULL, *st_attempts = NULL;
    if (st->type == REDIS_REPLY_ARRAY && st->elements == 5) {
      error = st->element[0]->str, detail = st->element[1]->str, upd = st->element[2]->str;
      st_tenant = st->element[3]->str, st_attempts = st->element[4]->str;
    }
    const char *tenant = jobs[i] ? jobs[i]->tenant : st_tenant;
    rq_buf_puts(b, "<tr data-id=\"");
    html_attr(b, ids[i]);
    rq_buf_puts(b, "\"><td><a href=\"/job?id=");
    html_url(b, ids[i]);
    rq_buf_puts(b, "\">");
    html_text(b, ids[i]);
    rq_buf_puts(b, "</a></td><td>");
    if (tenant && name_ok(tenant, 1)) {
      rq_buf_puts(b, "<a href=\"/tenant?id=");
      html_url(b, tenant);
      rq_buf_puts(b, "\">");
      html_text(b, tenant);
      rq_buf_puts(b, "</a>");
    }
    rq_buf_printf(b, "</td><td class=\"n\">%lld</td><td>",
                  jobs[i] ? (long long)jobs[i]->attempts_ : num_or(st_attempts, 0));
    if (error && error[0]) badge(b, "bad", error);
    rq_buf_puts(b, " ");
    html_text(b, detail && detail[0] ? detail : jobs[i] ? NULL : why[i]);
    rq_buf_puts(b, "</td><td>");
    html_time(b, num_or(upd, 0), now);
    rq_buf_puts(b, "</td><td>");
    if (jobs[i]) {
      rq_buf_puts(b, "<a class=\"button\" href=\"/dead/requeue?id=");
      html_url(b, ids[i]);
      rq_buf_puts(b, "\">Requeue\xe2\x80\xa6</a>");
    } else {
      rq_buf_puts(b, "<span class=\"muted\" title=\"an invalid job cannot be requeued as is\">fix the producer</span>");
    }
    rq_buf_puts(b, "</td></tr>");
    freeReplyObject(st);
  }
  if (list->elements) rq_buf_puts(b, "</tbody></table>");
  if ((long long)list->elements < total)
    rq_buf_printf(b, "<p class=\"muted\">Showing %zu of %lld. <a href=\"/dead?limit=%d\">Show up to %d</a>.</p>",
                  list->elements, total, DEAD_MAX, DEAD_MAX);
  for (size_t i = 0; i < list->elements; i++) relayq_job_free(jobs[i]);
  free(jobs);
  free(why);
  free(ids);
  freeReplyObject(list);
  if (failed) {
    redis_failed(app, rs, NULL);
    return;
  }
  page_end(b, app);
}

void page_requeue_confirm(struct web_app *app, const struct web_req *rq, struct web_resp *rs) {
  const char *id = web_form_get(&rq->query, "id");
  int all = web_form_get(&rq->query, "all") != NULL;
  if (!all && !name_ok(id, 1)) {
    page_error(rs, 400, "Nothing to requeue", "Pick a dead letter from the list.");
    return;
  }
  struct rq_buf *b = &rs->body;
  page_begin(b, "Confirm requeue", "dead", 0);
  rq_buf_puts(b, "<h1>Requeue ");
  if (all) rq_buf_puts(b, "every dead letter?");
  else {
    rq_buf_puts(b, "job <code>");
    html_text(b, id);
    rq_buf_puts(b, "</code>?");
  }
  rq_buf_puts(b, "</h1><p>The job goes back on its queue with attempts 0 and status "
                 "<code>queued</code>. Recipients that already accepted it do not get it again. "
                 "Do this after fixing the cause, or it fails the same way.</p>"
                 "<form method=\"post\" action=\"/dead/requeue\" id=\"confirm\">");
  csrf_field(b, rq);
  if (all) rq_buf_puts(b, "<input type=\"hidden\" name=\"all\" value=\"1\">");
  else {
    rq_buf_puts(b, "<input type=\"hidden\" name=\"id\" value=\"");
    html_attr(b, id);
    rq_buf_puts(b, "\">");
  }
  rq_buf_puts(b, "<button class=\"primary\" id=\"confirm-requeue\">Yes, requeue</button> "
                 "<a href=\"/dead\">Cancel</a></form>");
  page_end(b, app);
}

static void action_result(struct web_app *app, struct web_resp *rs, const char *title, int code,
                          const struct rq_buf *out, const char *back, const char *back_label) {
  struct rq_buf *b = &rs->body;
  rs->status = code == 0 ? 200 : 409;
  page_begin(b, title, NULL, 0);
  rq_buf_puts(b, "<h1>");
  html_text(b, title);
  rq_buf_printf(b, "</h1><p id=\"result\" class=\"%s\">%s</p><pre id=\"output\">", code == 0 ? "good" : "bad",
                code == 0 ? "Done." : code < 0 ? "The command could not run." : "Not done: see why below.");
  html_text(b, out->data ? out->data : "");
  rq_buf_puts(b, "</pre><p><a href=\"");
  rq_buf_puts(b, back);
  rq_buf_puts(b, "\">");
  html_text(b, back_label);
  rq_buf_puts(b, "</a></p>");
  page_end(b, app);
}

void page_requeue(struct web_app *app, const struct web_req *rq, struct web_resp *rs) {
  const char *id = web_form_get(&rq->form, "id");
  int all = web_form_get(&rq->form, "all") != NULL;
  if (!all && !name_ok(id, 1)) {
    page_error(rs, 400, "Nothing to requeue", "Pick a dead letter from the list.");
    return;
  }
  const char *args[] = {"dead", "requeue", all ? "--all" : id, NULL};
  struct rq_buf out;
  rq_buf_init(&out);
  int code = web_run_cli(app, args, &out);
  action_result(app, rs, all ? "Requeue all" : "Requeue", code, &out, "/dead", "Back to dead letters");
  rq_buf_free(&out);
}

void page_pause(struct web_app *app, const struct web_req *rq, struct web_resp *rs, int pause) {
  const char *tenant = web_form_get(&rq->form, "tenant");
  if (!name_ok(tenant, 0)) {
    page_error(rs, 400, "Not a tenant name", "A tenant name is 1-128 characters of A-Z a-z 0-9 . _ @ -.");
    return;
  }
  const char *for_s = web_form_get(&rq->form, "for"), *reason = web_form_get(&rq->form, "reason");
  long long secs = 0;
  if (for_s && for_s[0] && cli_parse_int(for_s, 1, 31536000, &secs) != 0) {
    page_error(rs, 400, "Bad duration", "The pause length must be a number of seconds.");
    return;
  }
  const char *args[10];
  size_t n = 0;
  char secs_s[24];
  args[n++] = "tenant";
  args[n++] = pause ? "pause" : "resume";
  args[n++] = tenant;
  if (pause && secs > 0) {
    snprintf(secs_s, sizeof secs_s, "%lld", secs);
    args[n++] = "--for";
    args[n++] = secs_s;
  }
  if (pause && reason && reason[0]) {
    args[n++] = "--reason";
    args[n++] = reason;
  }
  args[n] = NULL;
  struct rq_buf out, back;
  rq_buf_init(&out);
  rq_buf_init(&back);
  int code = web_run_cli(app, args, &out);
  rq_buf_puts(&back, "/tenant?id=");
  html_url(&back, tenant);
  action_result(app, rs, pause ? "Pause tenant" : "Resume tenant", code, &out, back.data, "Back to the tenant");
  rq_buf_free(&out);
  rq_buf_free(&back);
}
