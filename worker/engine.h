/*
 * engine: the worker's state and the life of one job, shared by the
 * modules that move a job along. Calls run downward, in this order:
 *
 *   engine.c     the top: start, stop (SIGTERM: stop fetching, grace period,
 *                hand back); wires the hooks below
 *   fetch.c      queues -> inflight -> struct rq_jobctx (batch Lua, BLMOVE when idle)
 *   heartbeat.c  P:worker:ID heartbeat, registry, reclaim of dead workers
 *   delivery.c   decode, checks, tenant, route, claim, build, send, outcome
 *   metrics.c    counters and /metrics, /readyz
 *   lines.c      per-tenant-route lines: send slots, connections, breakers, pause
 *   status.c     every status/stats/quota/rate/pause/breaker write (CLAIM,
 *                FINISH, breaker scripts) from typed outcomes
 *   tenants.c, oauth.c, batch.c, budget.c, redis_health.c, rconn.c: below all
 *
 * A module calls only modules below it; nothing calls the engine. What
 * goes up (a job arrived, CLAIM answered, FINISH written so the job can
 * go, a line admitted a job, room to fetch, Redis writable again) goes
 * through hooks (function pointers) the engine installs at start:
 * rq_fetch_init, rq_heartbeat_init, rq_lines_init, rq_status_init,
 * rq_redis_health_init. tests/e2e/test_parts.py checks the call graph.
 *
 * Ownership: the engine owns every rq_jobctx from the moment its payload
 * arrives from Redis until the FINISH script for it has been answered OK
 * (then rq_job_free). While a job waits on an async step (tenant lookup,
 * Redis reply, SMTP transfer) exactly one pending callback refers to it;
 * that callback continues or finishes it. A job is in eng->jobs (a list)
 * for its whole life, which is how shutdown finds what to hand back. A
 * hook gets the job (or the engine) it names, borrowed for the call; it
 * may finish or free the job only where its header says so.
 */
#ifndef RQ_ENGINE_H
#define RQ_ENGINE_H

#include <stdint.h>

#include <relayq/relayq.h>
#include <uv.h>

#include "breaker.h"
#include "budget.h"
#include "classify.h"
#include "config.h"
#include "msg.h"
#include "rconn.h"
#include "route.h"
#include "scripts.h"
#include "settings.h"
#include "fetch.h"
#include "heartbeat.h"
#include "status.h"
#include "util.h"

struct rq_curl;
struct rq_smtp;
struct rq_mailgun;
struct rq_tenant_entry;
struct rq_metrics;
struct rq_redis_health;
struct rq_oauth;
struct rq_batch;

enum rq_job_phase {
  RQ_PHASE_NEW,      /* payload held, not decoded */
  RQ_PHASE_TENANT,   /* waiting for tenant settings */
  RQ_PHASE_WAIT,     /* in its tenant route's line (lines.c), holding no send slot */
  RQ_PHASE_CLAIM,    /* waiting for the CLAIM script */
  RQ_PHASE_SENDING,  /* a transaction is in flight */
  RQ_PHASE_FINISH,   /* waiting for the FINISH script */
  RQ_PHASE_STALLED,  /* FINISH could not be sent (Redis down); retried on reconnect */
  RQ_PHASE_REDIS_WAIT, /* CLAIM refused by a Redis that refuses writes (redis_health.h); claimed again after */
};

/* Per-recipient bookkeeping for one attempt. */
enum rq_rcpt_state { RQ_RCPT_TODO, RQ_RCPT_ACCEPTED, RQ_RCPT_TEMP, RQ_RCPT_REJECTED };

struct rq_rcpt {
  char *addr; /* bare envelope address (owned) */
  enum rq_rcpt_state state;
  int code;
  char enhanced[16];
};

struct rq_jobctx {
  struct rq_engine *eng;
  struct rq_jobctx *prev, *next; /* eng->jobs */
  char *payload;                 /* exact bytes held in inflight (owned) */
  size_t payload_len;
  int queue_idx;                 /* index into cfg->queues */
  struct relayq_job *job;        /* decoded (owned), NULL when invalid */
  enum rq_job_phase phase;
  int attempt;                   /* number of this attempt (1-based) */
  int64_t started_ms;            /* when this worker took it */
  int64_t created_ms;            /* status created_at (or first seen) */
  struct rq_tenant_entry *tenant; /* reference held (tenants.c) */
  struct rq_budget_tenant *budget_tenant; /* its bytes in the budget's per-tenant count (budget.h) */
  int finish_counted; /* its FINISH (carrying the payload) is in eng->finish_bytes */
  int finish_gated;   /* its FINISH waits for room in eng->finish_bytes (status.c) */
  struct rq_route route;
  struct rq_msg msg;             /* the built message (attachments borrowed from job) */
  char message_id[300];
  char from_addr[RELAYQ_MAX_ADDRESS_LEN + 1];
  struct rq_rcpt *rcpts;         /* envelope for this attempt */
  size_t n_rcpts;
  size_t next_rcpt;              /* first recipient not yet in a transaction */
  size_t chunk_first, chunk_n;   /* recipients of the transaction in flight */
  int slots;                     /* transactions allowed by the quota claim */
  int claimed;                   /* CLAIM answered ok: the status has created_at (status.c) */
  int transactions;              /* transactions done in this attempt */
  int cap_override;              /* learned from a 452 too-many-recipients, 0 = none */
  /* last noteworthy reply (the rejection on partial/failed) */
  int last_code;
  char last_enhanced[16];
  char last_reply[513];
  struct rq_class last_class;
  char provider_id[256];
  double send_seconds;
  /* the FINISH call being written (status.c) */
  struct rq_finish *finish;
  char invalid_id[RELAYQ_ID_MAX + 1]; /* id read from an invalid payload */
  /* lines.c */
  struct rq_line *line;          /* its tenant route's line, from submit until release */
  struct rq_jobctx *lnext;       /* next job waiting in that line */
  int64_t wait_since;            /* when it joined the line */
  int admitted;                  /* holds one of the line's connections (lines.c) */
  int slot;                      /* admitted and holding a --concurrency send slot; 0 while its
                                    connection is still proving itself (eng->connecting) */
  char *oauth_token;  /* XOAUTH2 routes: this attempt's access token (owned, wiped) */
};

struct rq_engine {
  uv_loop_t *loop;
  struct rq_config *cfg;
  struct relayq_redis_url url;
  struct rq_route_settings routing; /* from cfg (settings.h) */
  struct ssl_ctx_st *redis_tls; /* rediss:// client context (redis_tls.h), NULL for redis:// */
  struct rq_rconn *cmd; /* scripts, status writes, tenant reads */
  struct rq_rconn *blk; /* BLMOVE only (a blocked connection serves nothing else) */
  struct rq_curl *curl;
  struct rq_smtp *smtp;
  struct rq_mailgun *mailgun;
  struct rq_metrics *metrics;
  struct rq_redis_health *health; /* Redis refusing writes (redis_health.h) */
  struct rq_batch *batch; /* CLAIM/FINISH calls of this loop turn (batch.h) */
  struct rq_oauth *oauth; /* shared OAuth2 access tokens (oauth.c), created on first use */
  char sha[RQ_SCRIPT_COUNT][41];
  int scripts_ready;

  /* keys */
  char *inflight_key, *delayed_key, *dead_key, *events_key, *worker_key, *workers_key;
  char *queue_keys[RQ_MAX_QUEUES];

  /* jobs held */
  struct rq_jobctx *jobs;
  int held;          /* jobs in eng->jobs */
  int fetch_pending; /* a FETCH call or BLMOVE is waiting for a reply */
  int blocking;      /* the pending one is BLMOVE */
  int fetch_active;  /* inside on_fetch: jobs being started */
  int fetch_skipped; /* the pending FETCH named tenants to skip (lines.c) */
  int watching;      /* a BLMOVE that moves nothing waits for new work (fetch.c) */
  int watch_woke;    /* the last watch saw work: poll if FETCH then finds none */
  int fetch_again;   /* the watch saw work while a FETCH was out: fetch once more */
  int needs_recovery; /* a fetch reply was lost: inflight may hold jobs we don't */
  int recovering;
  unsigned fetch_rr; /* round-robin start queue */
  int64_t next_due_ms;
  uv_timer_t fetch_timer; /* retry/poll pacing */
  uv_timer_t heartbeat_timer;
  uv_timer_t grace_timer;
  uv_timer_t stall_timer; /* retries FINISH writes after Redis outages */
  uv_signal_t sig_term, sig_int;
  int stopping;   /* 1: SIGTERM seen, no more fetching; 2: grace period over */
  int curl_closed;
  int blk_closed;
  int handed_back;
  int exit_code;
  int64_t started_at_ms;

  /* tenant route lines, breakers, pause (lines.c) */
  struct rq_lines *lines;
  int sending; /* jobs holding a send slot: the --concurrency budget in use */
  int connecting; /* jobs admitted whose connection has not proven itself yet (no slot) */
  int waiting; /* jobs waiting in lines (no slot) */
  int ready_waiting; /* of those, in lines that wait only for a send slot (they count as busy) */

  /* What the modules below tell the engine, installed by rq_engine_init
   * (calls run downward; see each header). */
  struct rq_status_hooks status_hooks;
  struct rq_fetch_hooks fetch_hooks;
  struct rq_heartbeat_hooks heartbeat_hooks;

  /* tenant cache (tenants.c) */
  struct rq_tenant_cache *tenants; /* owned by tenants.c */

  /* payload bytes in memory (budget.c) */
  struct rq_budget budget;
  size_t finish_bytes; /* payload bytes in FINISH commands not yet answered (status.c) */
  int finish_gated;    /* jobs whose FINISH waits for those (RQ_PHASE_STALLED) */

  /* counters for heartbeat/metrics */
  uint64_t n_sent, n_failed, n_partial, n_retry, n_deferred, n_dup, n_invalid, n_attempts;
  uint64_t n_fetch_calls, n_fetched;
  int ever_ready;
  void (*on_stopped)(struct rq_engine *eng);
};

/* engine.c */
int rq_engine_init(struct rq_engine *eng, uv_loop_t *loop, struct rq_config *cfg);
void rq_engine_stop(struct rq_engine *eng); /* SIGTERM/SIGINT path */
void rq_engine_free(struct rq_engine *eng);

#endif
