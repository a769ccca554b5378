/*
 * events: the console's memory of P:events. Workers publish one JSON
 * object per status change and keep no history, so the console subscribes
 * while it runs and keeps the most recent events (a ring of
 * EVENTS_RING entries) and per-minute totals. Pages read it for the
 * sent/failed rate, a tenant's last failures and a job's timeline; what
 * happened before the console started is not there (pages say so).
 *
 * Threads: events_run() owns its own Redis connection and blocks on it in
 * the collector thread; the page thread reads through the events_* query
 * functions, which take the ring's mutex. Strings copied out are bounded.
 */
#ifndef RQ_WEB_EVENTS_H
#define RQ_WEB_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#define EVENTS_RING 8192
#define EVENTS_MINUTES 30

struct web_event {
  int64_t ts;        /* when it was published (ms; the worker's "ts") */
  char id[129];
  char tenant[129];
  char state[16];
  char error[32];
  char code[8];
  char route[48];
  char worker[64];
  long attempts;     /* -1 when absent */
};

struct events_minute {
  int64_t minute;    /* ms / 60000 */
  long sent, failed, retry;
};

struct events_stats {
  int connected;     /* 1 while subscribed */
  int64_t since;     /* when the console started listening (ms) */
  long total;        /* events seen */
  struct events_minute minutes[EVENTS_MINUTES]; /* newest first */
};

/* Starts the collector thread for url/prefix (copied). 0 or -1. */
int events_start(const char *url, const char *prefix);
/* Fills out (minutes newest first, empty minutes included). */
void events_stats(struct events_stats *out, int64_t now);
/* Copies up to max events matching id (or, with id NULL, tenant and
 * only states in `states`, a space-separated list; NULL any), newest
 * first. Returns the number copied. */
size_t events_find(const char *id, const char *tenant, const char *states,
                   struct web_event *out, size_t max);

/* Parses one event JSON into ev (pure; for tests). 0, or -1 when it
 * is not an object with at least an id and a state. */
int events_parse(const char *json, size_t len, struct web_event *ev);

#endif
