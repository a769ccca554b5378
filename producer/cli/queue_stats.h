/*
 * queue_stats: the snapshot `relayq queue stats` reads (cmd_queue.c owns
 * the reading and the text/JSON output); `relayq web` renders the same
 * snapshot as a page, so both show the same numbers.
 */
#ifndef RELAYQ_CLI_QUEUE_STATS_H
#define RELAYQ_CLI_QUEUE_STATS_H

#include <stddef.h>

#include <hiredis/hiredis.h>

/* Owns its strings. */
struct names {
  char **v;
  size_t n, cap;
};

/* One tenant's sorted backlog in one queue. paused: 0 no, 1 yes; until:
 * the pause's end (ms), or -1 when the pause key holds no number. */
struct tenant_depth {
  char *tenant;
  long long depth;
  int paused;
  int held; /* the pause is an operator's hold (P:thold:T), not the quota's */
  long long until;
};

struct queue_stat {
  char *name;                /* owned by struct stats' queue names */
  long long shared;          /* LLEN P:queue:Q */
  long long sorted;          /* sum of the tenant lists */
  struct tenant_depth *t;    /* every tenant in the ring; owned */
  size_t nt;
  size_t with_backlog, paused;
};

/* A heartbeat field's raw value, or NULL when absent. */
enum { HB_HOST, HB_PID, HB_STARTED, HB_INFLIGHT, HB_SENT, HB_FAILED, HB_VERSION, HB_QUEUES,
       HB_UPDATED, HB_COUNT };

struct worker_stat {
  char *id;               /* owned by struct stats' worker names */
  char *registered;       /* queues in the registry; NULL: not registered (owned) */
  int live;               /* the heartbeat hash exists */
  char *hb[HB_COUNT];     /* heartbeat fields (owned) */
  long long inflight_len; /* LLEN P:inflight:W */
};

/* Everything one `queue stats` reads. Owns every string and array. */
struct stats {
  redisContext *rc;
  const char *prefix; /* borrowed from the client */
  long long now;
  struct names queue_names, worker_names;
  struct queue_stat *q;
  size_t nq;
  struct worker_stat *w;
  size_t nw;
  long long due, later, dead;
  int warnings;
  size_t cur; /* the queue a tenant phase works on */
};

/* Reads the snapshot into s (s->rc, s->prefix and s->now set by the
 * caller, the rest zeroed). 0 on success; CLI_FAIL with the reason on
 * stderr. Free with queue_stats_free either way. */
int queue_stats_collect(struct stats *s);
void queue_stats_free(struct stats *s);
/* A heartbeat number, or -1 when absent or not a number. */
long long queue_stats_hb_num(const struct worker_stat *w, int f);

#endif
