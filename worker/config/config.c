/*
 * config: settings table, environment and flag parsing (see config.h).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <relayq/relayq.h>

#include "log.h"
#include "util.h"

enum setting_type { T_STR, T_INT, T_I64, T_BOOL, T_MODE, T_QUEUES, T_KEY, T_SIZE, T_LOGFMT, T_LEVEL };

struct setting {
  const char *flag; /* without "--" */
  const char *env;
  enum setting_type type;
  size_t offset;
  const char *def; /* default, parsed like user input; NULL = unset */
  int64_t min, max;
  const char *help;
};

#define OFF(f) offsetof(struct rq_config, f)

/* The one list of settings. Order = order in --help. */
static const struct setting SETTINGS[] = {
  {"redis", "RELAYQ_REDIS_URL", T_STR, OFF(redis_url), "redis://127.0.0.1:6379", 0, 0,
   "Redis URL, redis://[user:password@]host:port[/db], rediss:// (TLS), redis+sentinel://H:P,H:P/MASTER[/db]"},
  {"redis-ca-file", "RELAYQ_REDIS_CA_FILE", T_STR, OFF(redis_ca_file), NULL, 0, 0,
   "CA bundle (PEM) to verify a rediss:// server with, instead of the system's"},
  {"redis-cert", "RELAYQ_REDIS_CERT", T_STR, OFF(redis_cert), NULL, 0, 0,
   "client certificate (PEM) for rediss:// servers that ask for one"},
  {"redis-key", "RELAYQ_REDIS_KEY", T_STR, OFF(redis_key), NULL, 0, 0,
   "private key (PEM) of --redis-cert"},
  {"prefix", "RELAYQ_PREFIX", T_STR, OFF(prefix), "relayq", 0, 0, "key prefix"},
  {"queue", "RELAYQ_QUEUES", T_QUEUES, OFF(queues), "default", 0, 0,
   "queue to serve (repeatable; env: comma list)"},
  {"concurrency", "RELAYQ_CONCURRENCY", T_INT, OFF(concurrency), "64", 1, 10000,
   "sends in flight per process"},
  {"fetch-batch", "RELAYQ_FETCH_BATCH", T_INT, OFF(fetch_batch), "32", 1, 1000,
   "most jobs moved per fetch call"},
  {"platform-smtp", "RELAYQ_PLATFORM_SMTP", T_STR, OFF(platform_smtp), NULL, 0, 0,
   "platform gateway, smtp://[user:pass@]host:port (STARTTLS when offered; required with a login), smtps://, "
   "or smtp+insecure:// (a login may go in clear text)"},
  {"platform-from", "RELAYQ_PLATFORM_FROM", T_STR, OFF(platform_from), "no-reply@platform.example", 0, 0,
   "platform sender address"},
  {"platform-tls-verify", "RELAYQ_PLATFORM_TLS_VERIFY", T_BOOL, OFF(platform_tls_verify), "1", 0, 1,
   "verify the platform gateway's certificate (1/0)"},
  {"ca-file", "RELAYQ_CA_FILE", T_STR, OFF(ca_file), NULL, 0, 0,
   "CA bundle (PEM) to verify SMTP/HTTPS servers with, instead of the system's"},
  {"mode", "RELAYQ_MODE", T_MODE, OFF(mode), "saas", 0, 0,
   "saas (refuse tenant servers on port 25, without AUTH, or in private networks) or onprem"},
  {"allow-private-nets", "RELAYQ_ALLOW_PRIVATE_NETS", T_STR, OFF(allow_private_nets), NULL, 0, 0,
   "networks saas tenants may reach despite the boundary, CIDR[,CIDR] (e.g. a tenant's VPN 10.8.0.0/16)"},
  {"max-attempts", "RELAYQ_MAX_ATTEMPTS", T_INT, OFF(max_attempts), "8", 1, 1000,
   "attempts before a job fails with max_attempts"},
  {"retry-base-ms", "RELAYQ_RETRY_BASE_MS", T_I64, OFF(retry_base_ms), "30000", 1, INT64_C(86400000),
   "backoff base"},
  {"retry-max-ms", "RELAYQ_RETRY_MAX_MS", T_I64, OFF(retry_max_ms), "3600000", 1, INT64_C(604800000),
   "backoff cap"},
  {"metrics", "RELAYQ_METRICS_ADDR", T_STR, OFF(metrics_addr), NULL, 0, 0,
   "serve /metrics, /healthz and /readyz on HOST:PORT"},
  {"metrics-tenants", "RELAYQ_METRICS_TENANTS", T_INT, OFF(metrics_tenants), "20", 0, 1000,
   "tenants given their own relayq_tenant_jobs_total series (first seen; the rest count as _other)"},
  {"id", "RELAYQ_WORKER_ID", T_STR, OFF(worker_id), NULL, 0, 0, "worker id (default hostname-pid)"},
  {"quota-window-s", "RELAYQ_QUOTA_WINDOW_S", T_I64, OFF(quota_window_s), "3600", 1, INT64_C(604800),
   "rolling quota window"},
  {"status-ttl-s", "RELAYQ_STATUS_TTL_S", T_I64, OFF(status_ttl_s), "604800", 1, INT64_C(31536000),
   "lifetime of a final status hash"},
  {"secret-key", "RELAYQ_SECRET_KEY", T_KEY, OFF(secret_key), NULL, 0, 0,
   "base64 32-byte key opening enc:v1: tenant secrets (prefer the env var)"},
  {"require-encrypted", "RELAYQ_REQUIRE_ENCRYPTED", T_BOOL, OFF(require_encrypted), "0", 0, 1,
   "refuse plaintext tenant secrets"},
  {"max-job-bytes", "RELAYQ_MAX_JOB_BYTES", T_SIZE, OFF(max_job_bytes), "26214400", 1024, INT64_C(1073741824),
   "largest payload accepted"},
  {"max-inflight-bytes", "RELAYQ_MAX_INFLIGHT_BYTES", T_SIZE, OFF(max_inflight_bytes), "268435456", 65536,
   INT64_C(1099511627776), "payload bytes held at once; a job that does not fit waits in Redis"},
  {"grace-period-s", "RELAYQ_GRACE_PERIOD_S", T_I64, OFF(grace_ms), "30", 0, 3600,
   "on SIGTERM, how long in-flight sends may finish"},
  {"heartbeat-ttl-s", "RELAYQ_HEARTBEAT_TTL_S", T_I64, OFF(heartbeat_ttl_s), "15", 3, 3600,
   "heartbeat lifetime; a worker silent this long is presumed dead"},
  {"smtp-connect-timeout-ms", "RELAYQ_SMTP_CONNECT_TIMEOUT_MS", T_I64, OFF(smtp_connect_timeout_ms), "10000", 100,
   INT64_C(600000), "TCP+TLS connect and greeting timeout"},
  {"smtp-reply-timeout-ms", "RELAYQ_SMTP_REPLY_TIMEOUT_MS", T_I64, OFF(smtp_reply_timeout_ms), "60000", 100,
   INT64_C(3600000), "longest wait for any one SMTP reply (banner, each command, the final dot)"},
  {"smtp-timeout-ms", "RELAYQ_SMTP_TIMEOUT_MS", T_I64, OFF(smtp_timeout_ms), "120000", 100, INT64_C(3600000),
   "whole-transaction timeout"},
  {"tenant-cache-max", "RELAYQ_TENANT_CACHE_MAX", T_INT, OFF(tenant_cache_max), "10000", 1, 10000000,
   "tenant settings cached at most (entries; least recently used go first)"},
  {"tenant-cache-ms", "RELAYQ_TENANT_CACHE_MS", T_I64, OFF(tenant_cache_ms), "3000", 0, INT64_C(600000),
   "how long tenant settings are cached"},
  {"auto-reply-window-s", "RELAYQ_AUTO_REPLY_WINDOW_S", T_I64, OFF(auto_reply_window_s), "86400", 1,
   INT64_C(31536000), "at most one auto_reply per tenant and recipient in this window"},
  {"platform-max-recipients", "RELAYQ_PLATFORM_MAX_RECIPIENTS", T_INT, OFF(platform_max_recipients), "100", 1,
   100000, "default recipient cap per transaction, platform gateway"},
  {"smtp-max-recipients", "RELAYQ_SMTP_MAX_RECIPIENTS", T_INT, OFF(smtp_max_recipients), "50", 1, 100000,
   "default recipient cap per transaction, tenant SMTP"},
  {"mailgun-max-recipients", "RELAYQ_MAILGUN_MAX_RECIPIENTS", T_INT, OFF(mailgun_max_recipients), "1000", 1,
   100000, "default recipient cap per Mailgun call"},
  {"log-format", "RELAYQ_LOG_FORMAT", T_LOGFMT, OFF(log_format), "text", 0, 0, "text or json"},
  {"log-level", "RELAYQ_LOG_LEVEL", T_LEVEL, OFF(log_level), "info", 0, 0, "debug, info, warn, error"},
};
#define N_SETTINGS (sizeof SETTINGS / sizeof SETTINGS[0])

static int parse_int64(const char *s, int64_t min, int64_t max, int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || *end || v < min || v > max) return -1;
  *out = v;
  return 0;
}

static int add_queue(struct rq_config *cfg, const char *name, size_t len, char *why, size_t wcap) {
  char tmp[RELAYQ_ID_MAX + 1];
  if (len == 0) return 0;
  if (len > RELAYQ_ID_MAX) {
    snprintf(why, wcap, "queue names are at most %d characters", RELAYQ_ID_MAX);
    return -1;
  }
  memcpy(tmp, name, len);
  tmp[len] = '\0';
  if (!relayq_valid_id(tmp)) {
    snprintf(why, wcap, "queue name '%s' must use only [A-Za-z0-9._:@-]", tmp);
    return -1;
  }
  for (size_t i = 0; i < cfg->n_queues; i++)
    if (strcmp(cfg->queues[i], tmp) == 0) return 0;
  if (cfg->n_queues == RQ_MAX_QUEUES) {
    snprintf(why, wcap, "at most %d queues per worker", RQ_MAX_QUEUES);
    return -1;
  }
  cfg->queues[cfg->n_queues++] = rq_xstrdup(tmp);
  return 0;
}

static void clear_queues(struct rq_config *cfg) {
  for (size_t i = 0; i < cfg->n_queues; i++) free(cfg->queues[i]);
  cfg->n_queues = 0;
}

/* Applies one value to a setting. `replace_list` is set for the first
 * --queue flag so flags replace the env/default list rather than add. */
static int apply(struct rq_config *cfg, const struct setting *s, const char *val, int replace_list, char *why,
                 size_t wcap) {
  char *base = (char *)cfg;
  int64_t v;
  switch (s->type) {
  case T_STR: {
    char **dst = (char **)(base + s->offset);
    free(*dst);
    *dst = *val ? rq_xstrdup(val) : NULL;
    return 0;
  }
  case T_INT:
  case T_I64:
  case T_SIZE:
    if (parse_int64(val, s->min, s->max, &v)) {
      snprintf(why, wcap, "expects a whole number from %lld to %lld, got '%s'", (long long)s->min,
               (long long)s->max, val);
      return -1;
    }
    if (s->type == T_INT) *(int *)(base + s->offset) = (int)v;
    else if (s->type == T_SIZE) *(size_t *)(base + s->offset) = (size_t)v;
    else if (s->offset == OFF(grace_ms)) *(int64_t *)(base + s->offset) = v * 1000;
    else *(int64_t *)(base + s->offset) = v;
    return 0;
  case T_BOOL:
    if (!strcmp(val, "1") || !strcasecmp(val, "true") || !strcasecmp(val, "yes")) v = 1;
    else if (!strcmp(val, "0") || !strcasecmp(val, "false") || !strcasecmp(val, "no") || !*val) v = 0;
    else {
      snprintf(why, wcap, "expects 1 or 0, got '%s'", val);
      return -1;
    }
    *(int *)(base + s->offset) = (int)v;
    return 0;
  case T_MODE:
    if (!strcmp(val, "saas")) cfg->mode = RQ_MODE_SAAS;
    else if (!strcmp(val, "onprem")) cfg->mode = RQ_MODE_ONPREM;
    else {
      snprintf(why, wcap, "expects saas or onprem, got '%s'", val);
      return -1;
    }
    return 0;
  case T_LOGFMT:
    if (!strcmp(val, "text")) cfg->log_format = RQ_LOG_TEXT;
    else if (!strcmp(val, "json")) cfg->log_format = RQ_LOG_JSON;
    else {
      snprintf(why, wcap, "expects text or json, got '%s'", val);
      return -1;
    }
    return 0;
  case T_LEVEL: {
    int lvl = rq_log_level_parse(val);
    if (lvl < 0) {
      snprintf(why, wcap, "expects debug, info, warn or error, got '%s'", val);
      return -1;
    }
    cfg->log_level = lvl;
    return 0;
  }
  case T_QUEUES: {
    if (replace_list) clear_queues(cfg);
    const char *p = val;
    while (1) {
      const char *comma = strchr(p, ',');
      size_t len = comma ? (size_t)(comma - p) : strlen(p);
      while (len && *p == ' ') p++, len--;
      while (len && p[len - 1] == ' ') len--;
      if (add_queue(cfg, p, len, why, wcap)) return -1;
      if (!comma) break;
      p = comma + 1;
    }
    if (cfg->n_queues == 0) {
      snprintf(why, wcap, "needs at least one queue name");
      return -1;
    }
    return 0;
  }
  case T_KEY: {
    struct relayq_error err;
    if (!*val) {
      cfg->have_secret_key = 0;
      return 0;
    }
    if (relayq_secret_key_parse(val, cfg->secret_key, &err)) {
      snprintf(why, wcap, "%s", err.message);
      return -1;
    }
    cfg->have_secret_key = 1;
    return 0;
  }
  }
  return -1;
}

static void usage(FILE *f) {
  fprintf(f, "Usage: relayq-worker [options]\n\n"
             "Delivers relayq mail jobs from Redis. Every option also reads an environment\n"
             "variable; options win. See docs/configuration.md.\n\n");
  for (size_t i = 0; i < N_SETTINGS; i++) {
    const struct setting *s = &SETTINGS[i];
    int bare = s->type == T_BOOL;
    fprintf(f, "  --%s%s\n      %s [%s%s%s]\n", s->flag, bare ? "[=0|1]" : " VALUE", s->help, s->env,
            s->def && s->type != T_KEY ? ", default " : "", s->def && s->type != T_KEY ? s->def : "");
  }
  fprintf(f, "  --help, --version\n");
}

static void default_worker_id(struct rq_config *cfg) {
  char host[256] = "worker";
  gethostname(host, sizeof host - 1);
  host[sizeof host - 1] = '\0';
  char id[300];
  snprintf(id, sizeof id, "%s-%ld", host, (long)getpid());
  /* Hostnames may carry characters outside the id charset. */
  for (char *p = id; *p; p++)
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:@-", *p)) *p = '-';
  id[RELAYQ_ID_MAX] = '\0';
  cfg->worker_id = rq_xstrdup(id);
}

static int check_consistency(struct rq_config *cfg, char *why, size_t wcap) {
  if (cfg->retry_max_ms < cfg->retry_base_ms) {
    snprintf(why, wcap, "--retry-max-ms (%lld) is smaller than --retry-base-ms (%lld)",
             (long long)cfg->retry_max_ms, (long long)cfg->retry_base_ms);
    return -1;
  }
  if (!relayq_valid_id(cfg->worker_id)) {
    snprintf(why, wcap, "--id '%s' must be 1-128 characters of [A-Za-z0-9._:@-]", cfg->worker_id);
    return -1;
  }
  if (!cfg->prefix || !*cfg->prefix || strpbrk(cfg->prefix, " \r\n")) {
    snprintf(why, wcap, "--prefix must be non-empty without spaces");
    return -1;
  }
  if (cfg->platform_smtp && strncmp(cfg->platform_smtp, "smtp://", 7) &&
      strncmp(cfg->platform_smtp, "smtps://", 8) && strncmp(cfg->platform_smtp, "smtp+insecure://", 16)) {
    snprintf(why, wcap, "--platform-smtp must start with smtp://, smtps:// or smtp+insecure://");
    return -1;
  }
  char nerr[200];
  rq_netpolicy_init(&cfg->netpolicy, cfg->mode == RQ_MODE_SAAS);
  if (rq_netpolicy_allow(&cfg->netpolicy, cfg->allow_private_nets, nerr, sizeof nerr)) {
    snprintf(why, wcap, "--allow-private-nets: %s", nerr);
    return -1;
  }
  if (!strchr(cfg->platform_from, '@') || strpbrk(cfg->platform_from, "\r\n <>")) {
    snprintf(why, wcap, "--platform-from must be a bare address like no-reply@platform.example");
    return -1;
  }
  struct relayq_redis_url u;
  struct relayq_error err;
  if (relayq_redis_url_parse(cfg->redis_url, &u, &err)) {
    snprintf(why, wcap, "--redis: %s", err.message);
    return -1;
  }
  return 0;
}

int rq_config_load(struct rq_config *cfg, int argc, char **argv) {
  char why[300];
  memset(cfg, 0, sizeof *cfg);
  cfg->log_level = RQ_LOG_INFO;

  /* 1. defaults, 2. environment */
  for (size_t i = 0; i < N_SETTINGS; i++) {
    const struct setting *s = &SETTINGS[i];
    if (s->def && apply(cfg, s, s->def, 1, why, sizeof why)) abort(); /* a bad default is our bug */
    const char *env = getenv(s->env);
    if (env && *env && apply(cfg, s, env, 1, why, sizeof why)) {
      fprintf(stderr, "relayq-worker: %s: %s\n", s->env, why);
      return -1;
    }
  }

  /* 3. flags */
  struct option opts[N_SETTINGS + 3];
  for (size_t i = 0; i < N_SETTINGS; i++) {
    opts[i].name = SETTINGS[i].flag;
    opts[i].has_arg = SETTINGS[i].type == T_BOOL ? optional_argument : required_argument;
    opts[i].flag = NULL;
    opts[i].val = 1000 + (int)i;
  }
  opts[N_SETTINGS] = (struct option){"help", no_argument, NULL, 'h'};
  opts[N_SETTINGS + 1] = (struct option){"version", no_argument, NULL, 'V'};
  opts[N_SETTINGS + 2] = (struct option){0, 0, 0, 0};
  int queue_flag_seen = 0, c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
    if (c == 'h') {
      usage(stdout);
      return 1;
    }
    if (c == 'V') {
      printf("relayq-worker %s\n", RELAYQ_VERSION);
      return 1;
    }
    if (c < 1000) {
      fprintf(stderr, "relayq-worker: unknown or incomplete option '%s' (see --help)\n", argv[optind - 1]);
      return -1;
    }
    const struct setting *s = &SETTINGS[c - 1000];
    const char *val = optarg ? optarg : "1";
    int replace = s->type == T_QUEUES && !queue_flag_seen;
    if (s->type == T_QUEUES) queue_flag_seen = 1;
    if (apply(cfg, s, val, replace, why, sizeof why)) {
      fprintf(stderr, "relayq-worker: --%s %s\n", s->flag, why);
      return -1;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "relayq-worker: unexpected argument '%s' (see --help)\n", argv[optind]);
    return -1;
  }
  if (!cfg->worker_id) default_worker_id(cfg);
  if (check_consistency(cfg, why, sizeof why)) {
    fprintf(stderr, "relayq-worker: %s\n", why);
    return -1;
  }
  return 0;
}

void rq_config_free(struct rq_config *cfg) {
  for (size_t i = 0; i < N_SETTINGS; i++)
    if (SETTINGS[i].type == T_STR) rq_freep((char *)cfg + SETTINGS[i].offset);
  clear_queues(cfg);
  memset(cfg->secret_key, 0, sizeof cfg->secret_key);
}

void rq_url_mask(const char *url, char *out, size_t cap) {
  /* One rule for parsing and masking (librelayq's url.c): the masker once
   * split at the first '@' while the parser split at the last, and a
   * password holding '@' leaked into the start-up line. */
  relayq_url_redact(url, out, cap);
}

void rq_config_describe(const struct rq_config *cfg, char *out, size_t cap) {
  char redis[300], smtp[300], queues[512] = "";
  rq_url_mask(cfg->redis_url, redis, sizeof redis);
  rq_url_mask(cfg->platform_smtp, smtp, sizeof smtp);
  for (size_t i = 0; i < cfg->n_queues; i++) {
    if (i) strncat(queues, ",", sizeof queues - strlen(queues) - 1);
    strncat(queues, cfg->queues[i], sizeof queues - strlen(queues) - 1);
  }
  snprintf(out, cap,
           "redis=%s prefix=%s queues=%s concurrency=%d platform_smtp=%s platform_from=%s mode=%s "
           "allow_private_nets=%s max_attempts=%d retry_base_ms=%lld retry_max_ms=%lld secret_key=%s",
           redis, cfg->prefix, queues, cfg->concurrency, smtp, cfg->platform_from,
           cfg->mode == RQ_MODE_SAAS ? "saas" : "onprem",
           cfg->allow_private_nets ? cfg->allow_private_nets : "none", cfg->max_attempts, (long long)cfg->retry_base_ms,
           (long long)cfg->retry_max_ms, cfg->have_secret_key ? "set" : "unset");
}
