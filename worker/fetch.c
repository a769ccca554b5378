/*
 * fetch: moves jobs from the queues into this worker's inflight list and
 * hands them up to the engine (fetch.h: the arrived hook).
 *
 * While the queues have work, one FETCH script call moves up to
 * min(fetch_batch, free room) jobs (and promotes due delayed jobs). When
 * it finds nothing, the worker blocks in BLMOVE on the second connection
 * (a blocked connection can serve nothing else) with a timeout bounded by
 * the next delayed job's due time and 1 s, so delayed jobs and the other
 * queues are looked at again soon. --concurrency bounds the jobs this
 * worker is busy with (being sent, or on their way to their tenant route's
 * line); jobs waiting in a line for their tenant's connection do not count
 * (lines.c), so a slow tenant's backlog never keeps another tenant's job
 * from being fetched. A batch asks only for the free room, and waits until
 * that room is a quarter of a batch so a saturated worker still fetches in
 * batches rather than one job per call. Tenants whose line is full or
 * blocked are passed to FETCH, which leaves their backlog in Redis; while
 * it names any, an idle worker waits for new work with a BLMOVE that moves
 * nothing (watch), as a BLMOVE that took a job could take theirs.
 *
 * Memory: the worker holds at most --max-inflight-bytes of payload
 * (budget.h), whatever waits in its lines. FETCH is told the bytes still
 * free and takes jobs only while they fit; one that does not waits in
 * Redis (budget.waiting). A job larger than the whole budget makes the
 * worker stop fetching until it holds nothing, then it is taken alone.
 * A tenant takes at most half the budget while others have work. While the
 * budget is short the idle BLMOVE (which cannot weigh a job) is replaced
 * by a timed FETCH.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budget.h"
#include "engine.h"
#include "fetch.h"
#include "log.h"
#include "metrics.h"
#include "lines.h"
#include "redis_health.h"
#include "util.h"

#define IDLE_BLOCK_MS 1000
#define IDLE_POLL_MS 100 /* a worker short of budget looks again at least this often */
#define MAX_HEAVY 16 /* tenants holding 1/16 of the budget or more: at most 16 */
#define SKIP_POLL_MS 200

static void start_fetch(struct rq_engine *eng);

void rq_fetch_init(struct rq_engine *eng, const struct rq_fetch_hooks *hooks) { eng->fetch_hooks = *hooks; }

/* The payload of a string reply, taken over rather than copied (a 10 MB
 * job would otherwise exist twice until the reply is freed): hiredis
 * allocates reply strings with malloc (its default allocator, which the
 * worker does not change) and its freeReplyObject frees a NULL str
 * happily, so the reply gives the string up and we free() it. */
static char *steal_str(redisReply *p, size_t *len) {
  if (p == NULL || p->type != REDIS_REPLY_STRING || p->str == NULL) {
    *len = 0;
    return rq_xmemdup("", 1);
  }
  char *s = p->str;
  *len = p->len;
  p->str = NULL;
  p->len = 0;
  return s;
}

static struct rq_jobctx *take(struct rq_engine *eng, redisReply *reply, int queue_idx) {
  struct rq_jobctx *jc = rq_xcalloc(1, sizeof *jc);
  jc->eng = eng;
  jc->payload = steal_str(reply, &jc->payload_len);
  rq_budget_hold(&eng->budget, jc->payload_len);
  if (jc->payload_len > eng->budget.max) {
    eng->budget.oversize_total++;
    rq_logf(RQ_LOG_WARN,
            "a job of %zu bytes is larger than this worker's --max-inflight-bytes (%zu): taken alone, nothing else "
            "is fetched until it is done; raise RELAYQ_MAX_INFLIGHT_BYTES (and the memory limit) if such jobs are "
            "common",
            jc->payload_len, eng->budget.max);
  }
  jc->queue_idx = queue_idx;
  rq_msg_init(&jc->msg);
  jc->next = eng->jobs;
  if (eng->jobs) eng->jobs->prev = jc;
  eng->jobs = jc;
  eng->held++;
  eng->n_fetched++;
  return jc;
}

/* Jobs that take up the budget: all held but those waiting for their own
 * tenant route or its connection (its connections busy, breaker open, paused); a job whose
 * line waits only for a free send slot counts, so a saturated worker does
 * not fetch what it cannot send. */
static int busy(const struct rq_engine *eng) {
  /* Jobs whose connection is still proving itself hold no slot either
   * (their number is bounded by lines.c). */
  int held = eng->held - eng->waiting - eng->connecting;
  /* Lines that already send may not use the reserved slots (lines.c), so
   * those stay free for another tenant's job: fetch it. */
  int usable = eng->cfg->concurrency - eng->cfg->concurrency / RQ_RESERVE_SHARE - held;
  int ready = eng->ready_waiting < usable ? eng->ready_waiting : usable;
  return held + (ready > 0 ? ready : 0);
}

static int room(const struct rq_engine *eng) {
  int r = eng->cfg->concurrency - busy(eng);
  return r > 0 ? r : 0;
}

#define MAX_SKIP 200 /* tenants named to FETCH as not wanted now */

static void fetch_tick(uv_timer_t *t) { rq_fetch_kick(t->data); }

static void later(struct rq_engine *eng, uint64_t ms) { uv_timer_start(&eng->fetch_timer, fetch_tick, ms, 0); }

/* The budget wait is over (see rq_fetch_kick): fetch even if the jobs
 * left last time still do not fit, so other tenants' new work is seen. */
static void budget_tick(uv_timer_t *t) {
  struct rq_engine *eng = t->data;
  eng->budget.min_left = 0;
  rq_fetch_kick(eng);
}

static void on_blmove(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  struct rq_engine *eng = priv;
  redisReply *reply = r;
  if (eng->blk_closed && !reply) return; /* shutdown closed the connection */
  int qi = (int)(eng->fetch_rr % eng->cfg->n_queues);
  eng->fetch_pending = 0;
  eng->blocking = 0;
  eng->fetch_rr++;
  if (reply && reply->type == REDIS_REPLY_STRING) {
    /* The job is in inflight even if we are stopping: deliver it (or hand
     * it back) like any other. */
    struct rq_jobctx *jc = take(eng, reply, qi);
    rq_metrics_fetched(eng, 1);
    eng->fetch_hooks.arrived(jc);
  } else if (reply && reply->type == REDIS_REPLY_ERROR) {
    if (rq_redis_health_refused(eng, reply->str)) return; /* resumed by redis_health */
    rq_logf(RQ_LOG_ERROR, "BLMOVE failed: %s", reply->str);
    later(eng, 1000);
    return;
  }
  if (!reply && !eng->stopping) {
    /* The connection dropped while blocked: the job, if one was moved, is
     * in our inflight list but not in memory; heartbeat.c recovers it. */
    eng->needs_recovery = 1;
  }
  rq_fetch_kick(eng);
}

/* The watch's reply: the queue got work, or SKIP_POLL_MS passed. */
static void on_watch(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  struct rq_engine *eng = priv;
  redisReply *reply = r;
  if (eng->blk_closed && !reply) return; /* shutdown closed the connection */
  eng->watching = 0;
  eng->fetch_rr++;
  if (reply && reply->type == REDIS_REPLY_ERROR) rq_logf(RQ_LOG_ERROR, "BLMOVE (watch) failed: %s", reply->str);
  if (!reply || reply->type == REDIS_REPLY_ERROR) {
    later(eng, SKIP_POLL_MS);
    return;
  }
  int woke = reply->type == REDIS_REPLY_STRING;
  if (woke && eng->fetch_pending) {
    /* A FETCH sent before the push may miss it: fetch again after it. */
    eng->fetch_again = 1;
    return;
  }
  rq_fetch_kick(eng);
  /* The FETCH this wake started, if it finds nothing, polls (no spin). */
  eng->watch_woke = woke && eng->fetch_pending;
}

/* Waits for new work in a shared queue without taking it: BLMOVE from
 * the list's head to its head moves nothing (Redis allows source ==
 * destination), but returns as soon as a producer pushes. It holds the
 * blocking connection only, not fetch_pending, so FETCH calls (a job
 * ended, a line freed up) still go meanwhile; both may run at once as
 * the watch changes nothing. */
static void watch(struct rq_engine *eng) {
  int qi = (int)(eng->fetch_rr % eng->cfg->n_queues);
  char timeout[24];
  snprintf(timeout, sizeof timeout, "%.3f", (double)SKIP_POLL_MS / 1000.0);
  const char *argv[] = {"BLMOVE", eng->queue_keys[qi], eng->queue_keys[qi], "LEFT", "LEFT", timeout};
  eng->watching = 1;
  rq_rconn_expect_block(eng->blk, SKIP_POLL_MS);
  if (rq_rconn_cmd(eng->blk, on_watch, eng, 6, argv, NULL)) {
    eng->watching = 0;
    later(eng, SKIP_POLL_MS);
  }
}

static void block_idle(struct rq_engine *eng) {
  if (eng->blk_closed) return;
  if (eng->held > 0 && rq_budget_room(&eng->budget) < (int64_t)eng->cfg->max_job_bytes) {
    /* BLMOVE takes the next job whatever its size: with the budget this
     * short, look again with FETCH, which weighs it. */
    later(eng, IDLE_POLL_MS);
    return;
  }
  if (!rq_rconn_ready(eng->blk)) {
    later(eng, 200);
    return;
  }
  if (eng->watching) return; /* its reply kicks: a BLMOVE now would queue behind it */
  if (rq_lines_skipping(eng)) {
    /* Work waits in Redis for a tenant we skip: no BLMOVE that takes a
     * job (it would take that tenant's jobs from the shared queue); watch
     * the shared queue for new work instead, so other tenants' jobs are
     * fetched as soon as they are pushed, and look again every
     * SKIP_POLL_MS for the skipped tenants. */
    if (eng->watch_woke) {
      /* The watch saw work that FETCH did not take: poll, do not spin. */
      eng->watch_woke = 0;
      later(eng, SKIP_POLL_MS);
    } else {
      watch(eng);
    }
    return;
  }
  int64_t wait = IDLE_BLOCK_MS;
  if (eng->next_due_ms > 0) {
    int64_t until = eng->next_due_ms - relayq_now_ms();
    if (until < wait) wait = until;
  }
  if (wait <= 0) {
    start_fetch(eng);
    return;
  }
  if (eng->cfg->n_queues > 1 && wait > 250) wait = 250; /* look at the other queues soon */
  int qi = (int)(eng->fetch_rr % eng->cfg->n_queues);
  char timeout[24];
  /* BLMOVE's timeout is a double in seconds since Redis 6. */
  snprintf(timeout, sizeof timeout, "%.3f", (double)wait / 1000.0);
  const char *argv[] = {"BLMOVE", eng->queue_keys[qi], eng->inflight_key, "RIGHT", "LEFT", timeout};
  eng->fetch_pending = 1;
  eng->blocking = 1;
  rq_rconn_expect_block(eng->blk, wait);
  if (rq_rconn_cmd(eng->blk, on_blmove, eng, 6, argv, NULL)) {
    eng->fetch_pending = 0;
    eng->blocking = 0;
    later(eng, 200);
  }
}

/* FETCH's budget answer: jobs left in Redis because they did not fit,
 * and the largest of them, with the list it waits in. */
static void note_budget(struct rq_engine *eng, const redisReply *reply) {
  struct rq_budget *b = &eng->budget;
  b->waiting = 0;
  b->min_left = 0;
  b->oversize = 0;
  if (reply->elements < 9 || reply->element[4]->type != REDIS_REPLY_INTEGER) return;
  b->waiting = (size_t)reply->element[4]->integer;
  b->waits_total += b->waiting;
  if (reply->element[8]->type == REDIS_REPLY_INTEGER && reply->element[8]->integer > 0)
    b->min_left = (size_t)reply->element[8]->integer;
  long long size = reply->element[5]->type == REDIS_REPLY_INTEGER ? reply->element[5]->integer : 0;
  if (b->waiting == 0 || size <= 0 || (size_t)size <= b->max) return;
  const redisReply *t = reply->element[6], *q = reply->element[7];
  if (t->type != REDIS_REPLY_STRING || t->len == 0 || t->len >= sizeof b->oversize_tenant) return;
  memcpy(b->oversize_tenant, t->str, t->len);
  b->oversize_tenant[t->len] = '\0';
  b->oversize_q = q->type == REDIS_REPLY_INTEGER && q->integer >= 0 && (size_t)q->integer < eng->cfg->n_queues
                      ? (int)q->integer : 0;
  b->oversize = 1;
}

static void on_fetch(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  struct rq_engine *eng = priv;
  redisReply *reply = r;
  eng->fetch_pending = 0;
  eng->n_fetch_calls++;
  if (!reply) {
    /* Lost mid-call: the script may have moved jobs we never saw. */
    eng->needs_recovery = 1;
    later(eng, 200);
    return;
  }
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 || reply->element[0]->type != REDIS_REPLY_ARRAY ||
      reply->element[1]->type != REDIS_REPLY_ARRAY) {
    if (reply->type == REDIS_REPLY_ERROR && rq_redis_health_refused(eng, reply->str)) return;
    rq_logf(RQ_LOG_ERROR, "fetch script failed: %s",
            reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
    later(eng, 1000);
    return;
  }
  redisReply *jobs = reply->element[0], *qidx = reply->element[1], *due = reply->element[2];
  long long aside = reply->elements > 3 && reply->element[3]->type == REDIS_REPLY_INTEGER ? reply->element[3]->integer : 0;
  eng->next_due_ms = due->type == REDIS_REPLY_STRING ? (int64_t)strtod(due->str, NULL) : 0;
  note_budget(eng, reply);
  size_t n = jobs->elements;
  rq_metrics_fetched(eng, n);
  /* Take every job first, then start them: a job may finish synchronously
   * and call rq_fetch_kick. */
  struct rq_jobctx **taken = rq_xmalloc((n ? n : 1) * sizeof *taken);
  for (size_t i = 0; i < n; i++) {
    redisReply *p = jobs->element[i];
    int q = i < qidx->elements && qidx->element[i]->type == REDIS_REPLY_INTEGER ? (int)qidx->element[i]->integer - 1 : 0;
    if (q < 0 || (size_t)q >= eng->cfg->n_queues) q = 0;
    taken[i] = take(eng, p, q);
  }
  eng->fetch_rr++;
  eng->fetch_active = 1;
  for (size_t i = 0; i < n; i++) eng->fetch_hooks.arrived(taken[i]);
  eng->fetch_active = 0;
  free(taken);
  if (n > 0 || aside > 0) eng->watch_woke = eng->fetch_again = 0;
  if (n == 0 && aside == 0 && eng->budget.waiting > 0) return; /* a finishing job frees room and kicks */
  if (n == 0 && aside == 0) {
    if (eng->fetch_again) {
      eng->fetch_again = 0;
      rq_fetch_kick(eng);
      return;
    }
    if (eng->fetch_skipped && !rq_lines_skipping(eng)) {
      /* The tenants this call skipped are wanted again already: their
       * jobs are in Redis, fetch them now. */
      rq_fetch_kick(eng);
      return;
    }
    block_idle(eng);
    return;
  }
  rq_fetch_kick(eng);
}

static void start_fetch(struct rq_engine *eng) {
  int want = room(eng);
  if (want > eng->cfg->fetch_batch) want = eng->cfg->fetch_batch;
  size_t nq = eng->cfg->n_queues;
  const char *skip[MAX_SKIP];
  size_t n_skip = rq_lines_skip_list(eng, skip, MAX_SKIP);
  eng->fetch_skipped = n_skip > 0;
  const struct rq_budget *b = &eng->budget;
  const char *heavy[MAX_HEAVY];
  size_t heavy_bytes[MAX_HEAVY];
  size_t n_heavy = rq_budget_heavy_tenants(b, heavy, heavy_bytes, MAX_HEAVY);
  int alone = eng->held == 0 && b->held == 0;
  const char **argv = rq_xcalloc(3 + 2 + nq + 13 + n_skip + 2 * n_heavy, sizeof *argv);
  char numkeys[16], k_s[16], now_s[24], rr_s[16], sort_s[16], keep_s[16], sort_bytes_s[24], free_s[24];
  char share_s[24], nheavy_s[8], hb[MAX_HEAVY][24];
  rq_fmt_i64(free_s, sizeof free_s, rq_budget_room(b));
  rq_fmt_i64(share_s, sizeof share_s, (int64_t)(b->max / 2));
  rq_fmt_i64(nheavy_s, sizeof nheavy_s, (int64_t)n_heavy);
  for (size_t i = 0; i < n_heavy; i++) rq_fmt_i64(hb[i], sizeof hb[i], (int64_t)heavy_bytes[i]);
  snprintf(keep_s, sizeof keep_s, "%d", 4 * eng->cfg->fetch_batch);
  /* Sort many more than we take, so a tenant's job is reached quickly even
   * behind a long backlog of another's. */
  snprintf(sort_s, sizeof sort_s, "%d", 1000);
  /* ... but bounded in bytes: a script blocks Redis for everyone. */
  snprintf(sort_bytes_s, sizeof sort_bytes_s, "%d", 4 << 20);
  snprintf(numkeys, sizeof numkeys, "%zu", 2 + nq);
  snprintf(k_s, sizeof k_s, "%d", want);
  snprintf(now_s, sizeof now_s, "%lld", (long long)relayq_now_ms());
  snprintf(rr_s, sizeof rr_s, "%u", alone && b->oversize ? (unsigned)b->oversize_q : eng->fetch_rr % (unsigned)nq);
  size_t k = 0;
  argv[k++] = "EVALSHA";
  argv[k++] = eng->sha[RQ_SCRIPT_FETCH];
  argv[k++] = numkeys;
  argv[k++] = eng->inflight_key;
  argv[k++] = eng->delayed_key;
  for (size_t i = 0; i < nq; i++) argv[k++] = eng->queue_keys[i];
  argv[k++] = k_s;
  argv[k++] = now_s;
  argv[k++] = eng->cfg->prefix;
  argv[k++] = eng->cfg->queues[0];
  argv[k++] = rr_s;
  argv[k++] = sort_s;
  argv[k++] = keep_s;
  argv[k++] = sort_bytes_s;
  argv[k++] = free_s;
  argv[k++] = alone ? "1" : "0";
  argv[k++] = alone && b->oversize ? b->oversize_tenant : "";
  argv[k++] = share_s;
  argv[k++] = nheavy_s;
  for (size_t i = 0; i < n_heavy; i++) argv[k++] = heavy[i], argv[k++] = hb[i];
  for (size_t i = 0; i < n_skip; i++) argv[k++] = skip[i];
  eng->fetch_pending = 1;
  if (rq_rconn_cmd(eng->cmd, on_fetch, eng, (int)k, argv, NULL)) {
    eng->fetch_pending = 0;
    later(eng, 200);
  }
  free(argv);
}

void rq_fetch_kick(struct rq_engine *eng) {
  if (eng->stopping || eng->fetch_pending || eng->fetch_active || eng->recovering || !eng->scripts_ready) return;
  if (!rq_rconn_ready(eng->cmd)) return; /* resumed by the READY event */
  if (!rq_redis_health_ok(eng)) return;     /* resumed by redis_health */
  int min_room = eng->cfg->fetch_batch < eng->cfg->concurrency ? eng->cfg->fetch_batch : eng->cfg->concurrency;
  min_room /= 4;
  int reserve = eng->cfg->concurrency / RQ_RESERVE_SHARE;
  if (reserve > 0 && min_room > reserve) min_room = reserve; /* the reserved slots alone justify a fetch */
  if (room(eng) == 0 || (busy(eng) > 0 && room(eng) < min_room)) return; /* resumed when a job is done (the engine) */
  /* Out of budget, or a job larger than the whole budget waits for this
   * worker to empty: resumed when a job is done (the engine). */
  if (eng->held > 0 && (eng->budget.oversize || rq_budget_room(&eng->budget) <= 0)) return;
  /* Nothing the last fetch tried fits yet: asking again would only copy a
   * big job out of Redis and back. New work of other tenants is looked
   * for at least every IDLE_POLL_MS. */
  if (eng->held > 0 && eng->budget.waiting > 0 && rq_budget_room(&eng->budget) < (int64_t)eng->budget.min_left) {
    if (!uv_is_active((uv_handle_t *)&eng->fetch_timer))
      uv_timer_start(&eng->fetch_timer, budget_tick, IDLE_POLL_MS, 0);
    return;
  }
  uv_timer_stop(&eng->fetch_timer);
  start_fetch(eng);
}
