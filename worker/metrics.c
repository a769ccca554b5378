/*
 * metrics: the worker's counters and histograms, the Prometheus text
 * exposition of them (format 0.0.4), and the HTTP server for /metrics,
 * /healthz and /readyz on the worker's own loop (see metrics.h; request
 * parsing in http_min.c). docs/metrics.md lists every series.
 *
 * Cardinality is bounded by construction: labels take values from fixed
 * lists (states, the three gateways plus "route" for every named route,
 * error categories), except relayq_tenant_jobs_total, which gives the
 * first RELAYQ_METRICS_TENANTS tenants this process sees their own series
 * and counts every other tenant under tenant="_other". First-seen rather
 * than top-N because Prometheus counters must never disappear and come
 * back: a tenant, once given a series, keeps it until the process exits.
 *
 * Queue depth is not known to a worker, so the module samples it from
 * Redis on a timer (one read-only script every DEPTH_EVERY_MS) and serves
 * the last sample; a failed sample withdraws the series rather than serve
 * stale numbers.
 *
 * The server: at most MAX_CONNS connections, each closed CONN_TIMEOUT_MS
 * after it was accepted whatever it is doing (a slow client cannot hold
 * one), one request per connection, then a graceful close: shutdown(),
 * read and discard until the peer's EOF or the timeout, close.
 */
#include "metrics.h"
#include "redis_health.h"
#include "tenants.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "engine.h"
#include "http_min.h"
#include "lines.h"
#include "log.h"
#include "rconn.h"
#include "scripts.h"
#include "util.h"

#define MAX_CONNS 64
#define CONN_TIMEOUT_MS 5000
#define LISTEN_BACKLOG 128
#define DEPTH_TICK_MS 1000   /* how often the timer looks */
#define DEPTH_EVERY_MS 10000 /* how often a sample is taken once one succeeded */

#define TEXT_PLAIN "text/plain; charset=utf-8"
#define EXPOSITION "text/plain; version=0.0.4; charset=utf-8"

/* ---- label value sets ------------------------------------------------------------ */

enum { ST_SENT, ST_PARTIAL, ST_FAILED, N_FINAL };
static const char *const FINAL_NAMES[N_FINAL] = {"sent", "partial", "failed"};

/* Named routes are folded into "route"; "none" is a job that ended before
 * a route was chosen (invalid, expired, policy). */
enum { RT_PLATFORM, RT_SMTP, RT_MAILGUN, RT_NAMED, RT_NONE, N_ROUTES };
static const char *const ROUTE_NAMES[N_ROUTES] = {"platform", "smtp", "mailgun", "route", "none"};
#define N_TXN_ROUTES RT_NONE /* a transaction always has a route */

enum { PK_RETRY, PK_DEFERRED, N_PARKED };
static const char *const PARKED_NAMES[N_PARKED] = {"retry", "deferred"};

/* The contract's error categories, "not_before" for deferrals, "none"
 * for an empty category and "other" for anything else. */
static const char *const REASONS[] = {"none",        "connect",      "tls",          "auth",
                                      "policy",      "quota",        "recipient_rejected",
                                      "too_many_recipients",         "blocklisted",  "invalid_job",
                                      "expired",     "max_attempts", "provider",     "not_before",
                                      "other"};
#define N_REASONS (sizeof REASONS / sizeof REASONS[0])

/* ---- histograms ---------------------------------------------------------------- */

#define MAX_BOUNDS 16

/* SMTP transaction or Mailgun call: a local sink answers in milliseconds,
 * a remote server in tens to hundreds of ms, a tarpit in tens of seconds. */
static const double TXN_BOUNDS[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
/* Enqueue to final: seconds when healthy, up to a day through retries. */
static const double E2F_BOUNDS[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400};
/* Jobs per fetch call: powers of two up to the largest --fetch-batch. */
static const double BATCH_BOUNDS[] = {0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000};
/* Waiting for the tenant route's turn: none while it has a free
 * connection, a transaction's time while saturated, more when slow. */
static const double WAIT_BOUNDS[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
#define LINE_SERIES_MAX 50 /* per-tenant line gauges shown: the busiest */

struct hist {
  uint64_t bucket[MAX_BOUNDS]; /* observations in (bounds[i-1], bounds[i]]; cumulated when rendered */
  uint64_t count;              /* all observations, so also the +Inf bucket */
  double sum;
};

static void observe(struct hist *h, const double *bounds, size_t n, double v) {
  if (isnan(v)) return;
  for (size_t i = 0; i < n; i++)
    if (v <= bounds[i]) {
      h->bucket[i]++;
      break;
    }
  h->count++;
  h->sum += v;
}

/* ---- state ---------------------------------------------------------------------- */

struct tenant_series {
  char id[RELAYQ_ID_MAX + 1];
  uint64_t n[N_FINAL];
};

struct conn;

/* Owned by the engine through eng->metrics from rq_metrics_start until
 * rq_metrics_stop; after that it frees itself once its handles have
 * closed, every connection has closed and no Redis reply is pending
 * (maybe_free). */
struct rq_metrics {
  struct rq_engine *eng;
  uv_tcp_t listener;
  uv_timer_t depth_timer;
  int open_handles; /* of listener and depth_timer */
  int stopped;
  struct conn *conns;
  int n_conns;

  uint64_t jobs[N_FINAL][N_ROUTES];
  uint64_t errors[N_FINAL][N_REASONS];
  uint64_t attempts[N_TXN_ROUTES][2]; /* [route][0 ok, 1 error] */
  uint64_t parked[N_PARKED][N_REASONS];
  struct hist txn[N_TXN_ROUTES];
  struct hist e2f[N_FINAL];
  struct hist batch;
  struct hist line_wait;

  struct tenant_series *tenants; /* cfg->metrics_tenants slots */
  size_t n_tenants, max_tenants;
  uint64_t other_tenants[N_FINAL];

  /* queue depth samples (rq_lua_source(RQ_LUA_DEPTH)) */
  int depth_pending; /* an EVAL is waiting for its reply */
  int depth_valid;
  int depth_warned;
  uint64_t depth_at;
  int64_t depth[RQ_MAX_QUEUES];
  int64_t delayed, dead;
  uint64_t blk_reconnects; /* last read from eng->blk, which shutdown closes early */
};

/* One HTTP connection. Owned by the rq_metrics list; freed in the close
 * callback of the last of its two handles (tcp, timer). The write and
 * shutdown requests live here: libuv runs their callbacks (with
 * UV_ECANCELED when closing) before the close callbacks, so they never
 * see freed memory. */
struct conn {
  struct rq_metrics *m;
  struct conn *prev, *next;
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_write_t wreq;
  uv_shutdown_t sreq;
  int open_handles;
  int closing;
  int responded; /* the response is written or being written: input is drained */
  size_t len;
  char in[RQ_HTTP_MAX_HEAD];
  struct rq_buf out;
};

static void maybe_free(struct rq_metrics *m) {
  if (!m->stopped || m->open_handles || m->n_conns || m->depth_pending) return;
  free(m->tenants);
  free(m);
}

/* ---- recorders (hot path: no allocation) ------------------------------------------ */

static int index_of(const char *const *names, size_t n, const char *s) {
  for (size_t i = 0; i < n; i++)
    if (!strcmp(names[i], s)) return (int)i;
  return -1;
}

static int route_index(const char *route) {
  if (!route || !*route) return RT_NONE;
  int i = index_of(ROUTE_NAMES, RT_NAMED, route);
  return i < 0 ? RT_NAMED : i;
}

static int reason_index(const char *reason) {
  if (!reason || !*reason) return 0; /* "none" */
  int i = index_of(REASONS, N_REASONS, reason);
  return i < 0 ? (int)N_REASONS - 1 : i;
}

static void count_tenant(struct rq_metrics *m, const char *tenant, int state) {
  if (tenant && *tenant && strlen(tenant) <= RELAYQ_ID_MAX) {
    for (size_t i = 0; i < m->n_tenants; i++)
      if (!strcmp(m->tenants[i].id, tenant)) {
        m->tenants[i].n[state]++;
        return;
      }
    if (m->n_tenants < m->max_tenants) {
      struct tenant_series *t = &m->tenants[m->n_tenants++];
      snprintf(t->id, sizeof t->id, "%s", tenant);
      t->n[state]++;
      return;
    }
  }
  m->other_tenants[state]++;
}

void rq_metrics_final(struct rq_engine *eng, const char *state, const char *route, const char *tenant,
                      const char *error, int64_t enqueue_to_final_ms) {
  struct rq_metrics *m = eng->metrics;
  if (!m || !state) return;
  int s = index_of(FINAL_NAMES, N_FINAL, state);
  if (s < 0) return;
  m->jobs[s][route_index(route)]++;
  if (s != ST_SENT) m->errors[s][reason_index(error)]++;
  /* A year or more means created_at was missing, not a slow job. */
  if (enqueue_to_final_ms >= 0 && enqueue_to_final_ms < INT64_C(365) * 86400 * 1000)
    observe(&m->e2f[s], E2F_BOUNDS, sizeof E2F_BOUNDS / sizeof E2F_BOUNDS[0], (double)enqueue_to_final_ms / 1000.0);
  count_tenant(m, tenant, s);
}

void rq_metrics_transaction(struct rq_engine *eng, const char *route, double seconds, int ok) {
  struct rq_metrics *m = eng->metrics;
  if (!m) return;
  int r = route_index(route);
  if (r == RT_NONE) r = RT_NAMED; /* cannot happen: a transaction has a route */
  m->attempts[r][ok ? 0 : 1]++;
  observe(&m->txn[r], TXN_BOUNDS, sizeof TXN_BOUNDS / sizeof TXN_BOUNDS[0], seconds < 0 ? 0 : seconds);
}

void rq_metrics_parked(struct rq_engine *eng, const char *state, const char *reason) {
  struct rq_metrics *m = eng->metrics;
  if (!m || !state) return;
  int s = index_of(PARKED_NAMES, N_PARKED, state);
  if (s < 0) return;
  m->parked[s][reason_index(reason)]++;
}

void rq_metrics_fetched(struct rq_engine *eng, size_t n) {
  struct rq_metrics *m = eng->metrics;
  if (!m) return;
  observe(&m->batch, BATCH_BOUNDS, sizeof BATCH_BOUNDS / sizeof BATCH_BOUNDS[0], (double)n);
}

/* ---- exposition ----------------------------------------------------------------- */

/* Shortest text that reads back as the same double ("0.25", "1e-05"). */
void rq_metrics_line_wait(struct rq_engine *eng, double seconds) {
  struct rq_metrics *m = eng->metrics;
  if (m) observe(&m->line_wait, WAIT_BOUNDS, sizeof WAIT_BOUNDS / sizeof WAIT_BOUNDS[0], seconds);
}

static void put_double(struct rq_buf *b, double v) {
  char tmp[40];
  if (isinf(v)) {
    rq_buf_puts(b, v > 0 ? "+Inf" : "-Inf");
    return;
  }
  for (int prec = 6; prec <= 17; prec++) {
    snprintf(tmp, sizeof tmp, "%.*g", prec, v);
    if (strtod(tmp, NULL) == v) break;
  }
  rq_buf_puts(b, tmp);
}

/* Label values: backslash, double quote and newline escaped (format 0.0.4). */
static void put_label_value(struct rq_buf *b, const char *v) {
  rq_buf_putc(b, '"');
  for (; *v; v++) {
    if (*v == '\\') rq_buf_puts(b, "\\\\");
    else if (*v == '"') rq_buf_puts(b, "\\\"");
    else if (*v == '\n') rq_buf_puts(b, "\\n");
    else rq_buf_putc(b, *v);
  }
  rq_buf_putc(b, '"');
}

static void family(struct rq_buf *b, const char *name, const char *type, const char *help) {
  rq_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{k1="v1",k2="v2"} value; k2 may be NULL. */
static void sample_u64(struct rq_buf *b, const char *name, const char *k1, const char *v1, const char *k2,
                       const char *v2, uint64_t value) {
  rq_buf_puts(b, name);
  if (k1) {
    rq_buf_printf(b, "{%s=", k1);
    put_label_value(b, v1);
    if (k2) {
      rq_buf_printf(b, ",%s=", k2);
      put_label_value(b, v2);
    }
    rq_buf_putc(b, '}');
  }
  rq_buf_printf(b, " %" PRIu64 "\n", value);
}

static void sample_double(struct rq_buf *b, const char *name, double value) {
  rq_buf_printf(b, "%s ", name);
  put_double(b, value);
  rq_buf_putc(b, '\n');
}

/* The series of one histogram, with an optional label k="v". */
static void put_hist(struct rq_buf *b, const char *name, const char *k, const char *v, const struct hist *h,
                     const double *bounds, size_t n) {
  uint64_t cum = 0;
  for (size_t i = 0; i <= n; i++) {
    cum = i < n ? cum + h->bucket[i] : h->count;
    rq_buf_printf(b, "%s_bucket{", name);
    if (k) {
      rq_buf_printf(b, "%s=", k);
      put_label_value(b, v);
      rq_buf_putc(b, ',');
    }
    rq_buf_puts(b, "le=\"");
    put_double(b, i < n ? bounds[i] : INFINITY);
    rq_buf_printf(b, "\"} %" PRIu64 "\n", cum);
  }
  rq_buf_printf(b, "%s_sum", name);
  if (k) {
    rq_buf_printf(b, "{%s=", k);
    put_label_value(b, v);
    rq_buf_putc(b, '}');
  }
  rq_buf_putc(b, ' ');
  put_double(b, h->sum);
  rq_buf_printf(b, "\n%s_count", name);
  if (k) {
    rq_buf_printf(b, "{%s=", k);
    put_label_value(b, v);
    rq_buf_putc(b, '}');
  }
  rq_buf_printf(b, " %" PRIu64 "\n", h->count);
}

static void render_process(struct rq_buf *b, const struct rq_engine *eng) {
  size_t rss = 0;
  uv_rusage_t ru;
  if (uv_resident_set_memory(&rss) == 0) {
    family(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    sample_u64(b, "process_resident_memory_bytes", NULL, NULL, NULL, NULL, rss);
  }
  if (uv_getrusage(&ru) == 0) {
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                 (double)ru.ru_stime.tv_usec / 1e6;
    family(b, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
    sample_double(b, "process_cpu_seconds_total", cpu);
  }
  family(b, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.");
  sample_double(b, "process_start_time_seconds", (double)eng->started_at_ms / 1000.0);
}

/* Reconnects of both connections. The fetch connection is closed (and
 * freed) at the start of shutdown while /metrics still answers, so its
 * count is remembered from the last time it was open. */
static uint64_t reconnects(struct rq_metrics *m) {
  const struct rq_engine *eng = m->eng;
  if (!eng->blk_closed) m->blk_reconnects = rq_rconn_reconnects(eng->blk);
  return rq_rconn_reconnects(eng->cmd) + m->blk_reconnects;
}

/* The busiest lines (in flight + waiting), at most LINE_SERIES_MAX, so the
 * label set stays bounded whatever the number of tenants. */
struct line_top {
  struct rq_line_view v[LINE_SERIES_MAX];
  size_t n;
  uint64_t rest_active, rest_waiting;
  uint64_t breakers[3];
};

static void collect_line(const struct rq_line_view *v, void *arg) {
  struct line_top *t = arg;
  t->breakers[v->breaker]++;
  if (v->active == 0 && v->waiting == 0 && v->breaker == RQ_BREAKER_CLOSED) return;
  size_t at = t->n;
  if (t->n == LINE_SERIES_MAX) { /* replace the smallest if this one is busier */
    size_t min = 0;
    for (size_t i = 1; i < t->n; i++)
      if (t->v[i].active + t->v[i].waiting < t->v[min].active + t->v[min].waiting) min = i;
    const struct rq_line_view *out = v;
    if (t->v[min].active + t->v[min].waiting < v->active + v->waiting) {
      out = &t->v[min];
      at = min;
    } else {
      at = LINE_SERIES_MAX;
    }
    t->rest_active += (uint64_t)out->active;
    t->rest_waiting += (uint64_t)out->waiting;
    if (at == LINE_SERIES_MAX) return;
  } else {
    t->n++;
  }
  t->v[at] = *v;
}

static void render_lines(struct rq_metrics *m, struct rq_buf *b) {
  struct line_top *t = rq_xcalloc(1, sizeof *t);
  rq_lines_foreach(m->eng, collect_line, t);
  family(b, "relayq_tenant_inflight", "gauge",
         "Jobs of a tenant route being sent (holding a send slot), for the busiest lines; the rest are "
         "tenant=\"_other\".");
  for (size_t i = 0; i < t->n; i++)
    sample_u64(b, "relayq_tenant_inflight", "tenant", t->v[i].tenant, "route", t->v[i].route,
               (uint64_t)t->v[i].active);
  sample_u64(b, "relayq_tenant_inflight", "tenant", "_other", "route", "_other", t->rest_active);
  family(b, "relayq_tenant_waiting", "gauge",
         "Jobs of a tenant route waiting in this worker for a connection (holding no send slot).");
  for (size_t i = 0; i < t->n; i++)
    sample_u64(b, "relayq_tenant_waiting", "tenant", t->v[i].tenant, "route", t->v[i].route,
               (uint64_t)t->v[i].waiting);
  sample_u64(b, "relayq_tenant_waiting", "tenant", "_other", "route", "_other", t->rest_waiting);
  family(b, "relayq_breaker_open", "gauge",
         "1 for a tenant route whose circuit breaker is open (or half-open: probing) in this worker.");
  for (size_t i = 0; i < t->n; i++)
    if (t->v[i].breaker != RQ_BREAKER_CLOSED)
      sample_u64(b, "relayq_breaker_open", "tenant", t->v[i].tenant, "route", t->v[i].route, 1);
  family(b, "relayq_breakers", "gauge", "Tenant route breakers this worker knows, by state.");
  for (int st = 0; st < 3; st++)
    sample_u64(b, "relayq_breakers", "state", rq_breaker_state_name((enum rq_breaker_state)st), NULL, NULL,
               t->breakers[st]);
  family(b, "relayq_sending", "gauge", "Jobs holding one of the --concurrency send slots.");
  sample_u64(b, "relayq_sending", NULL, NULL, NULL, NULL, (uint64_t)(m->eng->sending > 0 ? m->eng->sending : 0));
  family(b, "relayq_connecting_unproven", "gauge",
         "Jobs whose connection has not proven its server answers yet (they hold no send slot).");
  sample_u64(b, "relayq_connecting_unproven", NULL, NULL, NULL, NULL,
             (uint64_t)(m->eng->connecting > 0 ? m->eng->connecting : 0));
  family(b, "relayq_line_wait_seconds", "histogram",
         "Time a job waited in this worker for its tenant route's turn (a free connection and send slot).");
  put_hist(b, "relayq_line_wait_seconds", NULL, NULL, &m->line_wait, WAIT_BOUNDS,
           sizeof WAIT_BOUNDS / sizeof WAIT_BOUNDS[0]);
  free(t);
}

static void render(struct rq_metrics *m, struct rq_buf *b) {
  const struct rq_engine *eng = m->eng;
  const struct rq_config *cfg = eng->cfg;

  family(b, "relayq_build_info", "gauge", "Always 1; the worker's version in a label.");
  sample_u64(b, "relayq_build_info", "version", RELAYQ_VERSION, NULL, NULL, 1);

  family(b, "relayq_jobs_total", "counter", "Jobs that reached a final state, by state and route.");
  for (int s = 0; s < N_FINAL; s++)
    for (int r = 0; r < N_ROUTES; r++)
      sample_u64(b, "relayq_jobs_total", "state", FINAL_NAMES[s], "route", ROUTE_NAMES[r], m->jobs[s][r]);

  family(b, "relayq_job_errors_total", "counter",
         "Jobs that ended partial or failed, by state and error category.");
  for (int s = ST_PARTIAL; s < N_FINAL; s++)
    for (size_t e = 0; e < N_REASONS; e++)
      if (strcmp(REASONS[e], "not_before"))
        sample_u64(b, "relayq_job_errors_total", "state", FINAL_NAMES[s], "error", REASONS[e], m->errors[s][e]);

  family(b, "relayq_attempts_total", "counter",
         "SMTP transactions and Mailgun calls, by route and result (ok: the server took the message).");
  for (int r = 0; r < N_TXN_ROUTES; r++)
    for (int k = 0; k < 2; k++)
      sample_u64(b, "relayq_attempts_total", "route", ROUTE_NAMES[r], "result", k ? "error" : "ok",
                 m->attempts[r][k]);

  family(b, "relayq_parked_total", "counter",
         "Jobs parked in the delayed set, by state (retry, deferred) and reason.");
  for (int s = 0; s < N_PARKED; s++)
    for (size_t e = 0; e < N_REASONS; e++)
      sample_u64(b, "relayq_parked_total", "state", PARKED_NAMES[s], "reason", REASONS[e], m->parked[s][e]);

  family(b, "relayq_transaction_seconds", "histogram",
         "Duration of one SMTP transaction or Mailgun call, connection included, by route.");
  for (int r = 0; r < N_TXN_ROUTES; r++)
    put_hist(b, "relayq_transaction_seconds", "route", ROUTE_NAMES[r], &m->txn[r], TXN_BOUNDS,
             sizeof TXN_BOUNDS / sizeof TXN_BOUNDS[0]);

  family(b, "relayq_enqueue_to_final_seconds", "histogram",
         "From the job's status created_at to its final state, by final state.");
  for (int s = 0; s < N_FINAL; s++)
    put_hist(b, "relayq_enqueue_to_final_seconds", "state", FINAL_NAMES[s], &m->e2f[s], E2F_BOUNDS,
             sizeof E2F_BOUNDS / sizeof E2F_BOUNDS[0]);

  family(b, "relayq_fetch_batch_size", "histogram", "Jobs returned by one fetch call.");
  put_hist(b, "relayq_fetch_batch_size", NULL, NULL, &m->batch, BATCH_BOUNDS,
           sizeof BATCH_BOUNDS / sizeof BATCH_BOUNDS[0]);

  render_lines(m, b);
  struct rq_tenant_cache_stats tc;
  rq_tenants_stats(m->eng, &tc);
  family(b, "relayq_tenant_cache_lookups_total", "counter",
         "Tenant settings lookups: hit (served from the cache, or joined a read in flight) or miss (read "
         "from Redis).");
  sample_u64(b, "relayq_tenant_cache_lookups_total", "result", "hit", NULL, NULL, tc.hits);
  sample_u64(b, "relayq_tenant_cache_lookups_total", "result", "miss", NULL, NULL, tc.misses);
  family(b, "relayq_tenant_cache_evictions_total", "counter",
         "Tenant settings dropped from the cache: evicted (the least recently used, to stay within "
         "--tenant-cache-max) or expired (older than --tenant-cache-ms).");
  sample_u64(b, "relayq_tenant_cache_evictions_total", "reason", "evicted", NULL, NULL, tc.evictions);
  sample_u64(b, "relayq_tenant_cache_evictions_total", "reason", "expired", NULL, NULL, tc.expired);
  family(b, "relayq_tenant_cache_entries", "gauge", "Tenants whose settings the cache holds now.");
  sample_u64(b, "relayq_tenant_cache_entries", NULL, NULL, NULL, NULL, tc.entries);

  family(b, "relayq_tenant_jobs_total", "counter",
         "Final states per tenant, for the first RELAYQ_METRICS_TENANTS tenants seen; the rest are "
         "tenant=\"_other\".");
  for (size_t i = 0; i < m->n_tenants; i++)
    for (int s = 0; s < N_FINAL; s++)
      sample_u64(b, "relayq_tenant_jobs_total", "tenant", m->tenants[i].id, "state", FINAL_NAMES[s],
                 m->tenants[i].n[s]);
  for (int s = 0; s < N_FINAL; s++)
    sample_u64(b, "relayq_tenant_jobs_total", "tenant", "_other", "state", FINAL_NAMES[s], m->other_tenants[s]);

  family(b, "relayq_invalid_jobs_total", "counter", "Payloads that could not be decoded as a job (dead-lettered).");
  sample_u64(b, "relayq_invalid_jobs_total", NULL, NULL, NULL, NULL, eng->n_invalid);
  family(b, "relayq_duplicate_jobs_total", "counter",
         "Jobs acknowledged without sending because their id was already final.");
  sample_u64(b, "relayq_duplicate_jobs_total", NULL, NULL, NULL, NULL, eng->n_dup);

  family(b, "relayq_inflight", "gauge", "Jobs this worker holds (fetched, not yet finished).");
  sample_u64(b, "relayq_inflight", NULL, NULL, NULL, NULL, (uint64_t)(eng->held > 0 ? eng->held : 0));
  family(b, "relayq_inflight_bytes", "gauge", "Payload bytes of the jobs this worker holds.");
  sample_u64(b, "relayq_inflight_bytes", NULL, NULL, NULL, NULL, eng->budget.held);
  family(b, "relayq_inflight_bytes_limit", "gauge", "Most payload bytes this worker holds at once (--max-inflight-bytes).");
  sample_u64(b, "relayq_inflight_bytes_limit", NULL, NULL, NULL, NULL, eng->budget.max);
  family(b, "relayq_budget_waiting_jobs", "gauge",
         "Jobs the last fetch left in Redis because they did not fit the free budget.");
  sample_u64(b, "relayq_budget_waiting_jobs", NULL, NULL, NULL, NULL, eng->budget.waiting);
  family(b, "relayq_budget_waits_total", "counter",
         "Times a fetch left a job in Redis because it did not fit the free budget.");
  sample_u64(b, "relayq_budget_waits_total", NULL, NULL, NULL, NULL, eng->budget.waits_total);
  family(b, "relayq_oversize_jobs_total", "counter",
         "Jobs larger than --max-inflight-bytes, each taken alone.");
  sample_u64(b, "relayq_oversize_jobs_total", NULL, NULL, NULL, NULL, eng->budget.oversize_total);
  family(b, "relayq_concurrency_limit", "gauge", "Most sends this worker runs at once (--concurrency).");
  sample_u64(b, "relayq_concurrency_limit", NULL, NULL, NULL, NULL, (uint64_t)cfg->concurrency);
  family(b, "relayq_stopping", "gauge", "1 once SIGTERM/SIGINT was received and the worker is draining.");
  sample_u64(b, "relayq_stopping", NULL, NULL, NULL, NULL, eng->stopping ? 1 : 0);

  family(b, "relayq_redis_connected", "gauge", "1 while the worker's command connection to Redis is ready.");
  sample_u64(b, "relayq_redis_connected", NULL, NULL, NULL, NULL, rq_rconn_ready(eng->cmd) ? 1 : 0);
  family(b, "relayq_redis_write_refused", "gauge",
         "1 while Redis refuses writes (maxmemory, read-only replica, persistence failure, busy script).");
  sample_u64(b, "relayq_redis_write_refused", NULL, NULL, NULL, NULL, (uint64_t)rq_redis_health_refused_now(eng));
  family(b, "relayq_redis_write_refusals_total", "counter", "Times Redis started refusing writes.");
  sample_u64(b, "relayq_redis_write_refusals_total", NULL, NULL, NULL, NULL, rq_redis_health_refusals(eng));
  family(b, "relayq_redis_reconnects_total", "counter",
         "Redis connections re-established after a loss (both connections).");
  sample_u64(b, "relayq_redis_reconnects_total", NULL, NULL, NULL, NULL, reconnects(m));

  if (m->depth_valid) {
    family(b, "relayq_queue_depth", "gauge",
           "Jobs waiting in a queue (its shared list and per-tenant lists), sampled from Redis.");
    for (size_t q = 0; q < cfg->n_queues; q++)
      sample_u64(b, "relayq_queue_depth", "queue", cfg->queues[q], NULL, NULL, (uint64_t)m->depth[q]);
    family(b, "relayq_delayed_jobs", "gauge", "Jobs in the delayed set (retry and deferred), sampled from Redis.");
    sample_u64(b, "relayq_delayed_jobs", NULL, NULL, NULL, NULL, (uint64_t)m->delayed);
    family(b, "relayq_dead_jobs", "gauge", "Payloads in the dead-letter list, sampled from Redis.");
    sample_u64(b, "relayq_dead_jobs", NULL, NULL, NULL, NULL, (uint64_t)m->dead);
  }

  render_process(b, eng);
}

/* ---- queue depth sampling ---------------------------------------------------------- */


static void on_depth(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  struct rq_metrics *m = priv;
  redisReply *reply = r;
  m->depth_pending = 0;
  if (m->stopped) {
    maybe_free(m);
    return;
  }
  size_t nq = m->eng->cfg->n_queues;
  if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != nq + 2) {
    m->depth_valid = 0;
    if (reply && !m->depth_warned) {
      m->depth_warned = 1;
      rq_logf(RQ_LOG_WARN, "metrics: sampling queue depth failed (%s); relayq_queue_depth is left out",
              reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
    }
    return;
  }
  for (size_t i = 0; i < nq + 2; i++)
    if (reply->element[i]->type != REDIS_REPLY_INTEGER) {
      m->depth_valid = 0;
      return;
    }
  for (size_t i = 0; i < nq; i++) m->depth[i] = reply->element[i]->integer;
  m->delayed = reply->element[nq]->integer;
  m->dead = reply->element[nq + 1]->integer;
  m->depth_valid = 1;
  m->depth_at = uv_now(m->eng->loop);
}

static void depth_tick(uv_timer_t *t) {
  struct rq_metrics *m = t->data;
  struct rq_engine *eng = m->eng;
  reconnects(m); /* keeps the fetch connection's count fresh */
  if (m->depth_pending) return;
  if (!rq_rconn_ready(eng->cmd)) {
    m->depth_valid = 0;
    return;
  }
  if (m->depth_valid && uv_now(eng->loop) - m->depth_at < DEPTH_EVERY_MS) return;
  size_t nq = eng->cfg->n_queues, k = 0;
  const char *argv[4 + 2 + 2 * RQ_MAX_QUEUES + 1];
  char numkeys[16];
  snprintf(numkeys, sizeof numkeys, "%zu", 2 + nq);
  argv[k++] = "EVAL";
  argv[k++] = rq_lua_source(RQ_LUA_DEPTH);
  argv[k++] = numkeys;
  argv[k++] = eng->delayed_key;
  argv[k++] = eng->dead_key;
  for (size_t i = 0; i < nq; i++) argv[k++] = eng->queue_keys[i];
  argv[k++] = eng->cfg->prefix;
  for (size_t i = 0; i < nq; i++) argv[k++] = eng->cfg->queues[i];
  if (rq_rconn_cmd(eng->cmd, on_depth, m, (int)k, argv, NULL) == 0) m->depth_pending = 1;
}

/* ---- HTTP connections ------------------------------------------------------------- */

static void on_conn_closed(uv_handle_t *h) {
  struct conn *c = h->data;
  if (--c->open_handles) return;
  struct rq_metrics *m = c->m;
  if (c->prev) c->prev->next = c->next;
  else m->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  m->n_conns--;
  rq_buf_free(&c->out);
  free(c);
  maybe_free(m);
}

static void conn_close(struct conn *c) {
  if (c->closing) return;
  c->closing = 1;
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
  uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void on_conn_timeout(uv_timer_t *t) { conn_close(t->data); }

static void on_shutdown(uv_shutdown_t *req, int status) {
  struct conn *c = req->data;
  /* Success: wait for the peer's EOF (or the timeout) so unread request
   * bytes cannot turn our close into a reset that loses the response. */
  if (status < 0) conn_close(c);
}

static void on_written(uv_write_t *req, int status) {
  struct conn *c = req->data;
  if (status < 0 || c->closing) {
    conn_close(c);
    return;
  }
  c->sreq.data = c;
  if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown)) conn_close(c);
}

static void respond_as(struct conn *c, int status, const char *type, const char *extra, const char *body,
                       size_t len, int head) {
  c->responded = 1;
  rq_http_respond(&c->out, status, type, extra, body, len, head);
  uv_buf_t buf = uv_buf_init(c->out.data, (unsigned)c->out.len);
  c->wreq.data = c;
  if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &buf, 1, on_written)) conn_close(c);
}

static void respond(struct conn *c, int status, const char *extra, const char *body, size_t len, int head) {
  respond_as(c, status, TEXT_PLAIN, extra, body, len, head);
}

/* Routes one parsed request (r > 0) or answers a parse error (r < 0). */
static void serve(struct conn *c, int r, const struct rq_http_request *req) {
  struct rq_metrics *m = c->m;
  struct rq_engine *eng = m->eng;
  char msg[600];
  if (r < 0) {
    snprintf(msg, sizeof msg, "%s\n", rq_http_reason(-r));
    respond(c, -r, NULL, msg, strlen(msg), 0);
    return;
  }
  int known = !strcmp(req->path, "/metrics") || !strcmp(req->path, "/healthz") || !strcmp(req->path, "/readyz");
  if (!known) {
    snprintf(msg, sizeof msg, "Not found: try /metrics, /healthz or /readyz.\n");
    respond(c, 404, NULL, msg, strlen(msg), req->method == RQ_HTTP_HEAD);
    return;
  }
  if (req->method == RQ_HTTP_OTHER) {
    snprintf(msg, sizeof msg, "Only GET and HEAD are served here.\n");
    respond(c, 405, "Allow: GET, HEAD\r\n", msg, strlen(msg), 0);
    return;
  }
  int head = req->method == RQ_HTTP_HEAD;
  if (!strcmp(req->path, "/metrics")) {
    struct rq_buf body;
    rq_buf_init(&body);
    render(m, &body);
    respond_as(c, 200, EXPOSITION, NULL, body.data, body.len, head);
    rq_buf_free(&body);
  } else if (!strcmp(req->path, "/healthz")) {
    respond(c, 200, NULL, "ok\n", 3, head);
  } else if (eng->stopping) {
    snprintf(msg, sizeof msg, "not ready: the worker is stopping\n");
    respond(c, 503, NULL, msg, strlen(msg), head);
  } else if (!rq_rconn_ready(eng->cmd)) {
    snprintf(msg, sizeof msg, "not ready: Redis is not connected\n");
    respond(c, 503, NULL, msg, strlen(msg), head);
  } else if (!rq_redis_health_ok(eng)) {
    char why[400];
    rq_redis_health_reason(eng, why, sizeof why);
    snprintf(msg, sizeof msg, "not ready: Redis refuses writes: %s\n", why);
    respond(c, 503, NULL, msg, strlen(msg), head);
  } else {
    respond(c, 200, NULL, "ready\n", 6, head);
  }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  struct conn *c = h->data;
  /* After the response the head buffer is scratch space for draining. */
  size_t used = c->responded ? 0 : c->len;
  *buf = uv_buf_init(c->in + used, (unsigned)(sizeof c->in - used));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  struct conn *c = s->data;
  if (nread < 0) { /* EOF or error: nothing more to do here either way */
    conn_close(c);
    return;
  }
  if (nread == 0 || c->responded || c->closing) return;
  c->len += (size_t)nread;
  struct rq_http_request req;
  int r = rq_http_parse(c->in, c->len, &req);
  if (r != 0) serve(c, r, &req);
}

static void free_handle(uv_handle_t *h) { free(h); }

static void reject(uv_stream_t *server) {
  /* Over the connection cap: accept and close at once, since a pending
   * connection left unaccepted stops libuv from accepting any more. */
  uv_tcp_t *t = rq_xmalloc(sizeof *t);
  uv_tcp_init(server->loop, t);
  if (uv_accept(server, (uv_stream_t *)t) == 0) uv_tcp_close_reset(t, free_handle);
  else uv_close((uv_handle_t *)t, free_handle);
}

static void on_connection(uv_stream_t *server, int status) {
  struct rq_metrics *m = server->data;
  if (status < 0 || m->stopped) return;
  if (m->n_conns >= MAX_CONNS) {
    reject(server);
    return;
  }
  struct conn *c = rq_xcalloc(1, sizeof *c);
  c->m = m;
  rq_buf_init(&c->out);
  uv_tcp_init(server->loop, &c->tcp);
  uv_timer_init(server->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->open_handles = 2;
  c->next = m->conns;
  if (m->conns) m->conns->prev = c;
  m->conns = c;
  m->n_conns++;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) || uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read)) {
    conn_close(c);
    return;
  }
  uv_timer_start(&c->timer, on_conn_timeout, CONN_TIMEOUT_MS, 0);
}

/* ---- start / stop ----------------------------------------------------------------- */

/* "127.0.0.1:9464", "[::1]:9464", ":9464" (all IPv4 addresses),
 * "localhost:9464". Numeric only otherwise: no DNS lookup at start. */
static int parse_addr(const char *addr, struct sockaddr_storage *ss) {
  char host[64];
  const char *port_s;
  if (addr[0] == '[') {
    const char *end = strchr(addr, ']');
    if (!end || end[1] != ':' || (size_t)(end - addr - 1) >= sizeof host) return -1;
    memcpy(host, addr + 1, (size_t)(end - addr - 1));
    host[end - addr - 1] = '\0';
    port_s = end + 2;
  } else {
    const char *colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= sizeof host) return -1;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    if (strchr(host, ':')) return -1; /* IPv6 needs brackets */
    port_s = colon + 1;
  }
  char *end;
  long port = strtol(port_s, &end, 10);
  if (!*port_s || *end || port < 1 || port > 65535) return -1;
  if (!host[0]) snprintf(host, sizeof host, "0.0.0.0");
  if (!strcmp(host, "localhost")) snprintf(host, sizeof host, "127.0.0.1");
  if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0) return 0;
  if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0) return 0;
  return -1;
}

static void on_handle_closed(uv_handle_t *h) {
  struct rq_metrics *m = h->data;
  m->open_handles--;
  maybe_free(m);
}

int rq_metrics_start(struct rq_engine *eng, const char *addr) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  if (parse_addr(addr, &ss)) {
    rq_logf(RQ_LOG_ERROR, "--metrics '%s' is not an address to listen on: use HOST:PORT with a numeric IPv4 "
                          "host, [IPv6]:PORT, or :PORT for every interface", addr);
    return -1;
  }
  struct rq_metrics *m = rq_xcalloc(1, sizeof *m);
  m->eng = eng;
  m->max_tenants = eng->cfg->metrics_tenants > 0 ? (size_t)eng->cfg->metrics_tenants : 0;
  m->tenants = rq_xcalloc(m->max_tenants ? m->max_tenants : 1, sizeof *m->tenants);
  uv_tcp_init(eng->loop, &m->listener);
  uv_timer_init(eng->loop, &m->depth_timer);
  m->listener.data = m->depth_timer.data = m;
  m->open_handles = 2;
  int r = uv_tcp_bind(&m->listener, (const struct sockaddr *)&ss, 0);
  if (r == 0) r = uv_listen((uv_stream_t *)&m->listener, LISTEN_BACKLOG, on_connection);
  if (r) {
    rq_logf(RQ_LOG_ERROR, "--metrics %s: cannot listen there: %s", addr, uv_strerror(r));
    m->stopped = 1;
    uv_close((uv_handle_t *)&m->listener, on_handle_closed);
    uv_close((uv_handle_t *)&m->depth_timer, on_handle_closed);
    return -1;
  }
  uv_timer_start(&m->depth_timer, depth_tick, DEPTH_TICK_MS, DEPTH_TICK_MS);
  eng->metrics = m;
  rq_logf(RQ_LOG_INFO, "metrics: serving /metrics, /healthz and /readyz on %s", addr);
  return 0;
}

void rq_metrics_stop(struct rq_engine *eng) {
  struct rq_metrics *m = eng->metrics;
  if (!m) return;
  eng->metrics = NULL;
  m->stopped = 1;
  uv_close((uv_handle_t *)&m->listener, on_handle_closed);
  uv_close((uv_handle_t *)&m->depth_timer, on_handle_closed);
  for (struct conn *c = m->conns; c; c = c->next) conn_close(c);
  /* Freed by maybe_free once the close callbacks (and any pending depth
   * reply, which rconn delivers as NULL when it closes) have run. */
}
