/*
 * web: `relayq web`, the operator console (CONTRACT.md "relayq web";
 * docs/console.md). Parts:
 *
 *   server.c   the command, libmicrohttpd, authentication (token, login
 *              cookie), CSRF, security headers, routing
 *   pages.c    one function per page, HTML rendered on the server so every
 *              page and every action works without JavaScript
 *   actions.c  requeue and pause/resume, run as the `relayq` CLI itself so
 *              the console changes Redis exactly as the CLI does
 *   events.c   recent P:events kept in memory (rates, timelines)
 *   html.c     escaping writers; assets.c (generated) the CSS and JS
 *
 * Threads: libmicrohttpd runs every request on one internal thread, which
 * owns app->client (a blocking Redis connection); events.c has its own
 * thread and connection. Nothing else is shared.
 */
#ifndef RQ_WEB_H
#define RQ_WEB_H

#include <stddef.h>
#include <stdint.h>

#include <relayq/relayq.h>

#include "util.h"

#define WEB_FORM_MAX 16

struct web_app {
  const char *redis_url;   /* as given (may hold a password: never shown) */
  const char *prefix;
  const char *self_exe;    /* this binary, for actions.c */
  struct relayq_client *client; /* page thread only; NULL until connected */
  char token[256];         /* --token-file contents; "" when none */
  unsigned char key[32];   /* random per process: session and CSRF MACs */
  char session[65];        /* hex MAC of the token: the login cookie's value */
  char listen[128];        /* shown in the footer */
};

/* A parsed urlencoded form (POST body) or query; values owned. */
struct web_form {
  char *name[WEB_FORM_MAX], *value[WEB_FORM_MAX];
  size_t n;
};

const char *web_form_get(const struct web_form *f, const char *name);

struct web_req {
  const char *method;      /* "GET", "POST" */
  const char *path;        /* without the query */
  struct web_form query, form;
  const char *csrf;        /* the token forms on this page must carry */
};

struct web_resp {
  int status;
  const char *content_type; /* default text/html; charset=utf-8 */
  struct rq_buf body;
  char location[600];       /* a redirect target when status is 303 */
  char set_cookie[300];
};

/* Pages (pages.c). Each fills resp; they never fail: a Redis error
 * becomes a page that says so. */
void page_overview(struct web_app *app, const struct web_req *rq, struct web_resp *rs);
void page_tenants(struct web_app *app, const struct web_req *rq, struct web_resp *rs);
void page_tenant(struct web_app *app, const struct web_req *rq, struct web_resp *rs);
void page_job(struct web_app *app, const struct web_req *rq, struct web_resp *rs);
void page_dead(struct web_app *app, const struct web_req *rq, struct web_resp *rs);
void page_requeue_confirm(struct web_app *app, const struct web_req *rq, struct web_resp *rs);
void page_requeue(struct web_app *app, const struct web_req *rq, struct web_resp *rs);
void page_pause(struct web_app *app, const struct web_req *rq, struct web_resp *rs, int pause);
void page_login(const struct web_req *rq, struct web_resp *rs, int status, const char *message);
void page_error(struct web_resp *rs, int status, const char *title, const char *message);

/* Page frame: the head, navigation and the start of <main>; page_end
 * closes it. `live` makes console.js refresh <main> every few seconds. */
void page_begin(struct rq_buf *b, const char *title, const char *nav, int live);
void page_end(struct rq_buf *b, const struct web_app *app);

/* Actions (actions.c): runs `relayq ARGS...` (this binary) with the
 * console's Redis URL and prefix in its environment, never on its command
 * line. Captures stdout+stderr (bounded) into out; returns the exit status,
 * or -1 when it could not run. */
int web_run_cli(const struct web_app *app, const char *const *args, struct rq_buf *out);

/* The page thread's Redis connection, (re)connected on demand; NULL with
 * the reason in why when Redis cannot be reached. */
struct relayq_client *web_client(struct web_app *app, char *why, size_t cap);
/* Drops the connection after an I/O error so the next request reconnects. */
void web_client_reset(struct web_app *app);

/* Embedded assets (assets.c, generated from web/static/). */
extern const unsigned char web_asset_css[], web_asset_js[];
extern const size_t web_asset_css_len, web_asset_js_len;

#endif
