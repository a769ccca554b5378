/*
 * server: `relayq web [--listen ADDR] [--token-file FILE]` (see web.h).
 *
 * Who may use it. Listening on loopback without a token serves anyone who
 * can reach that loopback address: the operator's own machine (and the
 * Host header must name a loopback address, so a web page elsewhere cannot
 * reach it through DNS rebinding). Any other address needs --token-file;
 * with a token every request needs it: `Authorization: Bearer TOKEN`, or
 * the cookie the login form sets (HttpOnly, SameSite=Strict, a MAC of the
 * token under a key made at start, so it is worthless after a restart).
 *
 * Every action is a POST of an HTML form that carries a CSRF field (a MAC
 * of the session under the same key); a POST without it, or marked
 * cross-site by the browser, is refused with 403. Every response carries
 * a CSP without inline script, X-Frame-Options DENY, nosniff, no-referrer
 * and no-store.
 *
 * Request bodies are bounded (16 KB) and parsed here (a handful of
 * urlencoded fields; libmicrohttpd's post processor streams fields in
 * pieces, which a 16 KB body does not need).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "cli.h"
#include "events.h"
#include "web.h"

#define BODY_MAX 16384
#define DEFAULT_LISTEN "127.0.0.1:8080"

enum { O_LISTEN = CLI_OPT_FIRST_FREE, O_TOKEN_FILE };

static const struct option web_opts[] = {
    CLI_GLOBAL_LONGOPTS,
    {"listen", required_argument, NULL, O_LISTEN},
    {"token-file", required_argument, NULL, O_TOKEN_FILE},
    {NULL, 0, NULL, 0},
};

/* ---- forms ------------------------------------------------------------------- */

const char *web_form_get(const struct web_form *f, const char *name) {
  for (size_t i = 0; i < f->n; i++)
    if (strcmp(f->name[i], name) == 0) return f->value[i];
  return NULL;
}

static void form_add(struct web_form *f, const char *name, size_t nlen, const char *value,
                     size_t vlen) {
  if (f->n == WEB_FORM_MAX) return; /* our forms have a few fields: extra ones are noise */
  f->name[f->n] = rq_xstrndup(name, nlen);
  f->value[f->n] = rq_xstrndup(value, vlen);
  f->n++;
}

static void form_free(struct web_form *f) {
  for (size_t i = 0; i < f->n; i++) {
    free(f->name[i]);
    free(f->value[i]);
  }
  f->n = 0;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Decodes application/x-www-form-urlencoded s[0..n) in place; new length. */
static size_t url_decode(char *s, size_t n) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '+') s[o++] = ' ';
    else if (s[i] == '%' && i + 2 < n + 0 && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
      s[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
      i += 2;
    } else s[o++] = s[i];
  }
  return o;
}

static void parse_urlencoded(struct web_form *f, char *body, size_t len) {
  for (size_t i = 0; i < len;) {
    size_t end = i;
    while (end < len && body[end] != '&') end++;
    size_t eq = i;
    while (eq < end && body[eq] != '=') eq++;
    if (eq > i) {
      size_t nlen = url_decode(body + i, eq - i);
      size_t vlen = eq < end ? url_decode(body + eq + 1, end - eq - 1) : 0;
      form_add(f, body + i, nlen, eq < end ? body + eq + 1 : "", vlen);
    }
    i = end + 1;
  }
}

static enum MHD_Result query_it(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value) {
  (void)kind;
  if (key) form_add(cls, key, strlen(key), value ? value : "", value ? strlen(value) : 0);
  return MHD_YES;
}

/* ---- authentication ------------------------------------------------------------ */

static void mac_hex(const unsigned char key[32], const char *label, const char *msg, char out[65]) {
  unsigned char md[32];
  unsigned int mdlen = sizeof md;
  struct rq_buf m;
  rq_buf_init(&m);
  rq_buf_puts(&m, label);
  rq_buf_putc(&m, '\0');
  rq_buf_puts(&m, msg);
  HMAC(EVP_sha256(), key, 32, (const unsigned char *)m.data, m.len, md, &mdlen);
  rq_buf_free(&m);
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < 32; i++) {
    out[2 * i] = hex[md[i] >> 4];
    out[2 * i + 1] = hex[md[i] & 15];
  }
  out[64] = '\0';
}

/* Constant-time equality of two strings (lengths may differ). */
static int same_secret(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la != lb || la == 0) return 0;
  return CRYPTO_memcmp(a, b, la) == 0;
}

static int authorised(const struct web_app *app, struct MHD_Connection *c) {
  if (app->token[0] == '\0') return 1;
  const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
  if (auth && strncasecmp(auth, "Bearer ", 7) == 0 && same_secret(auth + 7, app->token)) return 1;
  const char *cookie = MHD_lookup_connection_value(c, MHD_COOKIE_KIND, "relayq_session");
  return cookie && same_secret(cookie, app->session);
}

/* Without a token the console trusts loopback callers; the Host header
 * must then name loopback too, or a rebinding DNS name could let a remote
 * page drive the operator's browser against it. */
static int host_is_loopback(const char *host) {
  if (host == NULL) return 0;
  char h[256];
  snprintf(h, sizeof h, "%s", host);
  char *end;
  if (h[0] == '[') {
    end = strchr(h, ']');
    if (!end) return 0;
    *end = '\0';
    return strcmp(h + 1, "::1") == 0;
  }
  end = strrchr(h, ':');
  if (end) *end = '\0';
  if (strcasecmp(h, "localhost") == 0) return 1;
  struct in_addr a;
  return inet_pton(AF_INET, h, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

/* ---- responses ------------------------------------------------------------------- */

static enum MHD_Result send_resp(struct MHD_Connection *c, struct web_resp *rs) {
  size_t len = 0;
  char *body = rq_buf_steal(&rs->body, &len);
  struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
  if (r == NULL) {
    free(body);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                          rs->content_type ? rs->content_type : "text/html; charset=utf-8");
  MHD_add_response_header(r, "Content-Security-Policy",
                          "default-src 'none'; script-src 'self'; style-src 'self'; "
                          "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
                          "frame-ancestors 'none'; base-uri 'none'");
  MHD_add_response_header(r, "X-Frame-Options", "DENY");
  MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
  MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  if (rs->location[0]) MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, rs->location);
  if (rs->set_cookie[0]) MHD_add_response_header(r, MHD_HTTP_HEADER_SET_COOKIE, rs->set_cookie);
  enum MHD_Result ret = MHD_queue_response(c, (unsigned)rs->status, r);
  MHD_destroy_response(r);
  return ret;
}

static void asset(struct web_resp *rs, const char *type, const unsigned char *data, size_t len) {
  rs->status = 200;
  rs->content_type = type;
  rq_buf_append(&rs->body, data, len);
}

/* ---- routing --------------------------------------------------------------------- */

struct conn_state {
  struct rq_buf body;
  int too_big;
};

static void login(struct web_app *app, const struct web_req *rq, struct web_resp *rs) {
  if (strcmp(rq->method, "POST") != 0) {
    page_login(rq, rs, 200, NULL);
    return;
  }
  const char *token = web_form_get(&rq->form, "token");
  if (token == NULL || !same_secret(token, app->token)) {
    page_login(rq, rs, 401, "That token is not the one this console was started with.");
    return;
  }
  rs->status = 303;
  snprintf(rs->location, sizeof rs->location, "/");
  snprintf(rs->set_cookie, sizeof rs->set_cookie,
           "relayq_session=%s; HttpOnly; SameSite=Strict; Path=/", app->session);
}

static void route(struct web_app *app, struct web_req *rq, struct web_resp *rs) {
  const char *p = rq->path;
  int get = strcmp(rq->method, "GET") == 0 || strcmp(rq->method, "HEAD") == 0;
  int post = strcmp(rq->method, "POST") == 0;
  if (get && strcmp(p, "/") == 0) page_overview(app, rq, rs);
  else if (get && strcmp(p, "/tenants") == 0) page_tenants(app, rq, rs);
  else if (get && strcmp(p, "/tenant") == 0) page_tenant(app, rq, rs);
  else if (get && strcmp(p, "/job") == 0) page_job(app, rq, rs);
  else if (get && strcmp(p, "/dead") == 0) page_dead(app, rq, rs);
  else if (get && strcmp(p, "/dead/requeue") == 0) page_requeue_confirm(app, rq, rs);
  else if (post && strcmp(p, "/dead/requeue") == 0) page_requeue(app, rq, rs);
  else if (post && strcmp(p, "/tenant/pause") == 0) page_pause(app, rq, rs, 1);
  else if (post && strcmp(p, "/tenant/resume") == 0) page_pause(app, rq, rs, 0);
  else if (post && strcmp(p, "/logout") == 0) {
    rs->status = 303;
    snprintf(rs->location, sizeof rs->location, "/login");
    snprintf(rs->set_cookie, sizeof rs->set_cookie,
             "relayq_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
  } else if (!get && !post) page_error(rs, 405, "Method not allowed", "Use the pages' links and forms.");
  else page_error(rs, 404, "Not found", "There is no such page. Start from the overview.");
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls) {
  (void)version;
  struct web_app *app = cls;
  struct conn_state *st = *con_cls;
  if (st == NULL) {
    st = rq_xcalloc(1, sizeof *st);
    rq_buf_init(&st->body);
    *con_cls = st;
    return MHD_YES;
  }
  if (*upload_size) {
    if (st->body.len + *upload_size > BODY_MAX) st->too_big = 1;
    else rq_buf_append(&st->body, upload, *upload_size);
    *upload_size = 0;
    return MHD_YES;
  }

  struct web_resp rs = {.status = 200};
  rq_buf_init(&rs.body);
  struct web_req rq = {.method = method, .path = url};
  MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, query_it, &rq.query);
  char csrf[65];
  mac_hex(app->key, "csrf", app->token[0] ? app->session : "loopback", csrf);
  rq.csrf = csrf;

  if (strcmp(url, "/static/console.css") == 0) {
    asset(&rs, "text/css; charset=utf-8", web_asset_css, web_asset_css_len);
  } else if (strcmp(url, "/static/console.js") == 0) {
    asset(&rs, "text/javascript; charset=utf-8", web_asset_js, web_asset_js_len);
  } else if (strcmp(url, "/healthz") == 0) {
    rs.content_type = "text/plain; charset=utf-8";
    rq_buf_puts(&rs.body, "ok\n");
  } else if (app->token[0] == '\0' &&
             !host_is_loopback(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host"))) {
    page_error(&rs, 403, "Host not allowed",
               "This console listens on loopback without a token and answers only requests "
               "addressed to a loopback host (127.0.0.1, localhost, [::1]).");
  } else if (st->too_big) {
    page_error(&rs, 413, "Request too large", "Forms here are small; this one was over 16 KB.");
  } else {
    int is_post = strcmp(method, "POST") == 0;
    if (is_post) {
      const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
      if (ct && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0)
        parse_urlencoded(&rq.form, st->body.data ? st->body.data : "", st->body.len);
    }
    const char *site = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Site");
    if (strcmp(url, "/login") == 0) {
      if (app->token[0] == '\0') {
        rs.status = 303;
        snprintf(rs.location, sizeof rs.location, "/");
      } else {
        login(app, &rq, &rs);
      }
    } else if (!authorised(app, c)) {
      page_login(&rq, &rs, 401, NULL);
    } else if (is_post && ((site && strcmp(site, "cross-site") == 0) ||
                           !same_secret(web_form_get(&rq.form, "csrf") ? web_form_get(&rq.form, "csrf") : "", csrf))) {
      page_error(&rs, 403, "Form refused",
                 "This form did not carry the console's CSRF token (it was not sent from a "
                 "page of this console). Reload the page and try again.");
    } else {
      route(app, &rq, &rs);
    }
  }
  enum MHD_Result ret = send_resp(c, &rs);
  rq_buf_free(&rs.body);
  form_free(&rq.query);
  form_free(&rq.form);
  return ret;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode why) {
  (void)cls, (void)c, (void)why;
  struct conn_state *st = *con_cls;
  if (st) {
    rq_buf_free(&st->body);
    free(st);
    *con_cls = NULL;
  }
}

/* ---- the page thread's Redis connection --------------------------------------------- */

struct relayq_client *web_client(struct web_app *app, char *why, size_t cap) {
  if (app->client) return app->client;
  struct relayq_error err;
  if (relayq_connect(app->redis_url, app->prefix, &app->client, &err) != 0) {
    snprintf(why, cap, "%s", err.message);
    app->client = NULL;
  }
  return app->client;
}

void web_client_reset(struct web_app *app) {
  if (app->client) relayq_close(app->client);
  app->client = NULL;
}

/* ---- the command ----------------------------------------------------------------------- */

static void web_usage(void) {
  puts("usage: relayq web [--listen ADDR] [--token-file FILE]\n"
       "\n"
       "Serves the operator console: queues and workers (live), tenants (route,\n"
       "breaker, limits, pause/resume), a job by id with its events, dead letters\n"
       "with requeue. ADDR is HOST:PORT or [IPv6]:PORT (default " DEFAULT_LISTEN ").\n"
       "Listening on anything but loopback needs --token-file; with a token,\n"
       "every request needs it (Authorization: Bearer TOKEN, or the login form).\n"
       "See docs/console.md.");
}

/* Parses HOST:PORT / [V6]:PORT into sa; sets *loopback. */
static int parse_listen(const char *s, struct sockaddr_storage *sa, int *loopback) {
  char host[128];
  const char *port;
  if (s[0] == '[') {
    const char *end = strchr(s, ']');
    if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof host) return -1;
    memcpy(host, s + 1, (size_t)(end - s - 1));
    host[end - s - 1] = '\0';
    port = end + 2;
  } else {
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof host) return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    port = colon + 1;
  }
  long long p;
  if (cli_parse_int(port, 0, 65535, &p) != 0) return -1;
  if (strcasecmp(host, "localhost") == 0 || host[0] == '\0')
    snprintf(host, sizeof host, "%s", host[0] ? "127.0.0.1" : "0.0.0.0");
  /* A numeric address only: the console must know what it binds. */
  struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE,
                           .ai_socktype = SOCK_STREAM}, *ai = NULL;
  if (getaddrinfo(host, port, &hints, &ai) != 0 || ai == NULL) return -1;
  memset(sa, 0, sizeof *sa);
  memcpy(sa, ai->ai_addr, ai->ai_addrlen);
  freeaddrinfo(ai);
  if (sa->ss_family == AF_INET)
    *loopback = (ntohl(((struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
  else
    *loopback = IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)sa)->sin6_addr);
  return 0;
}

static int load_token(const char *path, struct web_app *app) {
  unsigned char *data = NULL;
  size_t len = 0;
  if (cli_read_file(path, 4096, &data, &len) != CLI_OK) return -1;
  while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r' || data[len - 1] == ' '))
    len--;
  data[len] = '\0';
  int bad = len < 16 || len >= sizeof app->token || strpbrk((char *)data, " \t\r\n") != NULL;
  if (!bad) snprintf(app->token, sizeof app->token, "%s", (char *)data);
  OPENSSL_cleanse(data, len);
  free(data);
  if (bad)
    return cli_fail(-1, "the token in %s must be 16 to 255 characters without spaces (e.g. "
                        "`openssl rand -hex 32 > %s`).", path, path);
  return 0;
}

int cmd_web(int argc, char **argv, struct cli_ctx *ctx) {
  const char *listen = DEFAULT_LISTEN, *token_file = NULL;
  int opt;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, ":h", web_opts, NULL)) != -1) {
    if (cli_global_opt(opt, optarg, ctx)) continue;
    switch (opt) {
    case 'h': web_usage(); return CLI_OK;
    case O_LISTEN: listen = optarg; break;
    case O_TOKEN_FILE: token_file = optarg; break;
    default: return cli_bad_option("web", opt, argv);
    }
  }
  if (optind != argc) return cli_fail(CLI_USAGE, "web takes no arguments (see 'relayq web --help').");

  static struct web_app app;
  struct sockaddr_storage sa;
  int loopback = 0;
  if (parse_listen(listen, &sa, &loopback) != 0)
    return cli_fail(CLI_USAGE, "--listen %s is not HOST:PORT or [IPv6]:PORT with a numeric "
                               "address (e.g. 127.0.0.1:8080).", listen);
  if (token_file && load_token(token_file, &app) != 0) return CLI_FAIL;
  if (!loopback && app.token[0] == '\0')
    return cli_fail(CLI_USAGE, "listening on %s (not loopback) needs --token-file: anyone who "
                               "can reach it could requeue mail and pause tenants.", listen);
  app.redis_url = ctx->redis_url;
  app.prefix = ctx->prefix;
  snprintf(app.listen, sizeof app.listen, "%s", listen);
  static char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return cli_fail(CLI_FAIL, "cannot find this program's path (/proc/self/exe): %s.", strerror(errno));
  exe[n] = '\0';
  app.self_exe = exe;
  if (RAND_bytes(app.key, sizeof app.key) != 1) return cli_fail(CLI_FAIL, "no random bytes for the session key.");
  if (app.token[0]) mac_hex(app.key, "session", app.token, app.session);

  /* Check Redis now, so a wrong URL is a clear error at start. */
  char why[512];
  if (web_client(&app, why, sizeof why) == NULL) return cli_fail(CLI_FAIL, "%s", why);

  /* SIGINT/SIGTERM are taken by sigwait below; threads started after
   * this inherit the mask, so the signal always reaches this thread. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);

  if (events_start(app.redis_url, app.prefix) != 0) return cli_fail(CLI_FAIL, "cannot start the event reader thread.");
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | (sa.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
  struct MHD_Daemon *d = MHD_start_daemon(
      flags, 0, NULL, NULL, handle, &app, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
      MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
  if (d == NULL)
    return cli_fail(CLI_FAIL, "cannot listen on %s (in use, or not an address of this machine).", listen);
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  unsigned port = info ? info->port : 0;
  char shown[160];
  if (sa.ss_family == AF_INET6) {
    char a[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, a, sizeof a);
    snprintf(shown, sizeof shown, "http://[%s]:%u/", a, port);
  } else {
    char a[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, a, sizeof a);
    snprintf(shown, sizeof shown, "http://%s:%u/", a, port);
  }
  printf("relayq web: serving %s%s (Ctrl-C stops)\n", shown,
         app.token[0] ? " with a token" : " on loopback, no token");
  fflush(stdout);
  int sig = 0;
  sigwait(&stop, &sig);
  MHD_stop_daemon(d);
  web_client_reset(&app);
  return CLI_OK;
}
