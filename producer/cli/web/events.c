/* events: the console's ring of recent P:events messages (see events.h). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <relayq/relayq.h>

#include "events.h"
#include "json_scan.h"
#include "util.h"

static struct {
  pthread_mutex_t mu;
  struct web_event ring[EVENTS_RING];
  size_t next;           /* slot the next event goes to */
  size_t count;          /* events in the ring (<= EVENTS_RING) */
  struct events_minute minutes[EVENTS_MINUTES]; /* indexed by minute % N */
  long total;
  int connected;
  int64_t since;
  char *url, *prefix;
} E = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* A top-level number member: events are our workers' flat objects, so a
 * bounded search for "key": and strtoll is enough (json_scan reads
 * strings only). -1 when absent or not a number. */
static long top_number(const char *json, size_t len, const char *key) {
  char pat[40];
  int n = snprintf(pat, sizeof pat, "\"%s\":", key);
  if (n <= 0 || (size_t)n >= sizeof pat) return -1;
  const char *p = memmem(json, len, pat, (size_t)n);
  if (p == NULL) return -1;
  p += n;
  const char *end = json + len;
  while (p < end && (*p == ' ' || *p == '\t')) p++;
  char digits[24];
  size_t k = 0;
  while (p < end && k + 1 < sizeof digits && ((*p >= '0' && *p <= '9') || (k == 0 && *p == '-')))
    digits[k++] = *p++;
  digits[k] = '\0';
  if (k == 0 || (k == 1 && digits[0] == '-')) return -1;
  return strtol(digits, NULL, 10);
}

static void str_member(const char *json, size_t len, const char *key, char *dst, size_t cap) {
  if (rq_json_top_string(json, len, key, dst, cap, NULL) < 0) dst[0] = '\0';
}

int events_parse(const char *json, size_t len, struct web_event *ev) {
  memset(ev, 0, sizeof *ev);
  str_member(json, len, "id", ev->id, sizeof ev->id);
  str_member(json, len, "state", ev->state, sizeof ev->state);
  if (ev->id[0] == '\0' || ev->state[0] == '\0') return -1;
  str_member(json, len, "tenant", ev->tenant, sizeof ev->tenant);
  str_member(json, len, "error", ev->error, sizeof ev->error);
  str_member(json, len, "route", ev->route, sizeof ev->route);
  str_member(json, len, "worker", ev->worker, sizeof ev->worker);
  if (rq_json_top_string(json, len, "code", ev->code, sizeof ev->code, NULL) < 0) {
    long code = top_number(json, len, "code");
    if (code > 0 && code < 1000) snprintf(ev->code, sizeof ev->code, "%ld", code);
  }
  long ts = top_number(json, len, "ts");
  ev->ts = ts > 0 ? ts : relayq_now_ms();
  ev->attempts = top_number(json, len, "attempts");
  return 0;
}

static void record(const struct web_event *ev) {
  pthread_mutex_lock(&E.mu);
  E.ring[E.next] = *ev;
  E.next = (E.next + 1) % EVENTS_RING;
  if (E.count < EVENTS_RING) E.count++;
  E.total++;
  int64_t minute = ev->ts / 60000;
  struct events_minute *m = &E.minutes[minute % EVENTS_MINUTES];
  if (m->minute != minute) *m = (struct events_minute){.minute = minute};
  if (strcmp(ev->state, "sent") == 0 || strcmp(ev->state, "partial") == 0) m->sent++;
  else if (strcmp(ev->state, "failed") == 0) m->failed++;
  else if (strcmp(ev->state, "retry") == 0) m->retry++;
  pthread_mutex_unlock(&E.mu);
}

static void set_connected(int on) {
  pthread_mutex_lock(&E.mu);
  E.connected = on;
  pthread_mutex_unlock(&E.mu);
}

/* One subscription until the connection fails. */
static void listen_once(void) {
  struct relayq_client *c = NULL;
  struct relayq_error err;
  if (relayq_connect(E.url, E.prefix, &c, &err) != 0) return;
  redisContext *rc = relayq_client_redis(c);
  char channel[600];
  relayq_key(channel, sizeof channel, E.prefix, RELAYQ_KEY_EVENTS, NULL);
  redisReply *r = redisCommand(rc, "SUBSCRIBE %s", channel);
  if (r == NULL || r->type == REDIS_REPLY_ERROR) {
    if (r) freeReplyObject(r);
    relayq_close(c);
    return;
  }
  freeReplyObject(r);
  set_connected(1);
  for (;;) {
    void *reply = NULL;
    if (redisGetReply(rc, &reply) != REDIS_OK || reply == NULL) break;
    redisReply *m = reply;
    /* ["message", channel, payload] */
    if (m->type == REDIS_REPLY_ARRAY && m->elements == 3 &&
        m->element[2]->type == REDIS_REPLY_STRING) {
      struct web_event ev;
      if (events_parse(m->element[2]->str, m->element[2]->len, &ev) == 0) record(&ev);
    }
    freeReplyObject(m);
  }
  set_connected(0);
  relayq_close(c);
}

static void *collector(void *arg) {
  (void)arg;
  /* Reconnect with a capped backoff; the page thread shows "not
   * connected" meanwhile. Runs until the process exits. */
  unsigned delay_ms = 250;
  for (;;) {
    listen_once();
    struct timespec ts = {delay_ms / 1000, (long)(delay_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    if (delay_ms < 5000) delay_ms *= 2;
  }
  return NULL;
}

int events_start(const char *url, const char *prefix) {
  E.url = rq_xstrdup(url);
  E.prefix = rq_xstrdup(prefix);
  E.since = relayq_now_ms();
  pthread_t t;
  if (pthread_create(&t, NULL, collector, NULL) != 0) return -1;
  pthread_detach(t);
  return 0;
}

void events_stats(struct events_stats *out, int64_t now) {
  memset(out, 0, sizeof *out);
  int64_t minute = now / 60000;
  pthread_mutex_lock(&E.mu);
  out->connected = E.connected;
  out->since = E.since;
  out->total = E.total;
  for (int i = 0; i < EVENTS_MINUTES; i++) {
    const struct events_minute *m = &E.minutes[(minute - i) % EVENTS_MINUTES];
    out->minutes[i] = m->minute == minute - i ? *m : (struct events_minute){.minute = minute - i};
  }
  pthread_mutex_unlock(&E.mu);
}

static int state_in(const char *state, const char *states) {
  if (states == NULL) return 1;
  size_t n = strlen(state);
  for (const char *p = states; *p;) {
    size_t len = strcspn(p, " ");
    if (len == n && memcmp(p, state, n) == 0) return 1;
    p += len + (p[len] == ' ');
  }
  return 0;
}

size_t events_find(const char *id, const char *tenant, const char *states,
                   struct web_event *out, size_t max) {
  size_t got = 0;
  pthread_mutex_lock(&E.mu);
  for (size_t k = 0; k < E.count && got < max; k++) {
    const struct web_event *ev = &E.ring[(E.next + EVENTS_RING - 1 - k) % EVENTS_RING];
    if (id && strcmp(ev->id, id) != 0) continue;
    if (tenant && strcmp(ev->tenant, tenant) != 0) continue;
    if (!state_in(ev->state, states)) continue;
    out[got++] = *ev;
  }
  pthread_mutex_unlock(&E.mu);
  return got;
}
