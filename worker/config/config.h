/*
 * config: the worker's settings (CONTRACT.md "Worker configuration").
 *
 * Every setting has a flag and an environment variable; flags win. The
 * table in config.c is the single list of settings: it drives parsing,
 * --help and docs/configuration.md, so a setting cannot exist in one and
 * not the others.
 *
 * Ownership: struct rq_config owns every string in it; rq_config_free()
 * releases them. Secrets (the platform SMTP password inside its URL, the
 * secret key) are kept here and never printed: rq_config_describe()
 * masks them.
 */
#ifndef RQ_CONFIG_H
#define RQ_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "netpolicy.h"

#define RQ_MAX_QUEUES 16

enum rq_mode { RQ_MODE_SAAS, RQ_MODE_ONPREM };

struct rq_config {
  char *redis_url;
  char *prefix;
  char *queues[RQ_MAX_QUEUES];
  size_t n_queues;
  int concurrency;
  int fetch_batch;
  char *platform_smtp; /* URL as given (may carry user:password) */
  char *platform_from;
  int platform_tls_verify;
  char *ca_file;
  char *redis_ca_file, *redis_cert, *redis_key; /* rediss:// (redis_tls.h) */
  enum rq_mode mode;
  char *allow_private_nets;       /* as given: CIDR[,CIDR] */
  struct rq_netpolicy netpolicy; /* the tenant network boundary: enforced in saas mode, with those nets open */
  int max_attempts;
  int64_t retry_base_ms, retry_max_ms;
  char *metrics_addr;
  int metrics_tenants; /* per-tenant metric series, at most this many */
  char *worker_id;
  int64_t quota_window_s;
  int64_t status_ttl_s;
  unsigned char secret_key[32];
  int have_secret_key;
  int require_encrypted;
  size_t max_job_bytes;
  size_t max_inflight_bytes; /* payload bytes held at once (budget.h) */
  int64_t grace_ms;
  int64_t heartbeat_ttl_s;
  int64_t smtp_connect_timeout_ms;
  int64_t smtp_reply_timeout_ms;
  int64_t smtp_timeout_ms;
  int64_t tenant_cache_ms;
  int tenant_cache_max; /* tenant settings cached at most (entries) */
  int64_t auto_reply_window_s;
  int platform_max_recipients, smtp_max_recipients, mailgun_max_recipients;
  enum rq_log_format log_format;
  int log_level; /* enum rq_log_level */
};

/* Fills cfg from defaults, then the environment, then argv. Returns 0;
 * 1 when the caller should exit 0 (--help, --version printed); -1 on a bad
 * setting, after printing one line saying which and why to stderr. */
int rq_config_load(struct rq_config *cfg, int argc, char **argv);
void rq_config_free(struct rq_config *cfg);

/* One log-safe line describing the effective settings (passwords masked). */
void rq_config_describe(const struct rq_config *cfg, char *out, size_t cap);

/* Copies url into out with any password replaced by "***". */
void rq_url_mask(const char *url, char *out, size_t cap);

#endif
