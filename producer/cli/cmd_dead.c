/*
 * cmd_dead: the dead-letter list P:dead (CONTRACT.md "Redis keys"; the
 * worker LPUSHes there every job that failed for good, re-encoded with its
 * bookkeeping, and every payload it could not decode, as received).
 *
 *   dead list [--limit N] [--json]
 *       newest first: index, id, tenant, attempts, payload size, and the
 *       error and detail of the job's status hash P:status:ID when it still
 *       exists; an undecodable payload shows as "(undecodable, N bytes)"
 *       with its index and the decoder's reason.
 *   dead requeue (ID | --all) [--queue NAME]
 *       puts the job(s) back on their queue (the payload's "_queue", or
 *       NAME) with a fresh start: attempts 0, status `queued`.
 *
 * What a requeue sends again. A dead payload's "_rcpt" (when present) lists
 * the recipients that were still pending when it was last written, and
 * "_accepted" counts those outside that list that had already accepted
 * the message. When nobody accepted it ("_accepted" 0 or absent), every
 * recipient of to/cc/bcc is sent again, including those a server rejected
 * for good: the operator requeues after fixing the cause. When some had
 * accepted, only the "_rcpt" recipients are sent again, so nobody gets the
 * message twice; the counts are kept so the final status still adds up.
 *
 * Atomicity. Each payload is requeued by one Lua script (REQUEUE below)
 * that removes that exact payload from P:dead, resets the status, pushes
 * the new payload and publishes the event; if the payload is no longer in
 * P:dead (another operator requeued it a moment ago) it does nothing, so a
 * double requeue never makes two live copies. It also refuses while the
 * job's status says it is already on its way (queued, sending, retry,
 * deferred), so two dead copies of one id cannot both go out.
 *
 * The list is walked in pages by index while workers may push to it: a
 * job dead-lettered during the walk is not seen, and one may be seen twice;
 * requeueing stays exact either way (the script checks).
 *
 * Exit: list: 0 printed, 1 Redis failed. requeue: 0 when at least one job
 * was requeued (or --all found P:dead empty); 1 when ID is not in P:dead
 * or nothing could be requeued (undecodable, already queued); 2 bad
 * arguments.
 *
 * Memory: like the daemon (worker/util.h), aborts on out of memory in
 * rq_x*; payloads are held one page at a time.
 */
#include <getopt.h> /* the build defines _GNU_SOURCE: memmem, getopt_long */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "cli.h"
#include "event.h"
#include "scripts.h"
#include "util.h"

#define PAGE 100                  /* payloads per LRANGE */
#define DEFAULT_LIMIT 50
#define MAX_LIMIT 100000
#define MAX_PAGES 100000000L      /* a bound on the walk, far above any list */
#define KEY_MAX 600
#define NAME_RULE "1-128 characters of A-Z a-z 0-9 . _ : @ -"

enum { O_JSON = CLI_OPT_FIRST_FREE, O_LIMIT, O_ALL, O_QUEUE };

static const struct option dead_opts[] = {
    CLI_GLOBAL_LONGOPTS,
    {"json", no_argument, NULL, O_JSON},
    {"limit", required_argument, NULL, O_LIMIT},
    {"all", no_argument, NULL, O_ALL},
    {"queue", required_argument, NULL, O_QUEUE},
    {NULL, 0, NULL, 0},
};


/* ---- reading P:dead ------------------------------------------------------------ */

/* One page of P:dead: the LRANGE reply (owned) and its first index. */
struct page {
  redisReply *r;
  long long start;
};

static int read_page(redisContext *rc, const char *dead_key, long long start, struct page *p) {
  p->start = start;
  p->r = redisCommand(rc, "LRANGE %s %lld %lld", dead_key, start, start + PAGE - 1);
  if (p->r == NULL)
    return cli_fail(CLI_FAIL, "the Redis connection failed reading %s: %s.", dead_key,
                    rc->errstr);
  if (p->r->type != REDIS_REPLY_ARRAY) {
    int rc2 = cli_fail(CLI_FAIL, "Redis refused to read %s: %.200s", dead_key,
                       p->r->type == REDIS_REPLY_ERROR ? p->r->str : "unexpected reply");
    freeReplyObject(p->r);
    p->r = NULL;
    return rc2;
  }
  return 0;
}

static long long llen(redisContext *rc, const char *key, int *failed) {
  redisReply *r = redisCommand(rc, "LLEN %s", key);
  long long n = 0;
  if (r == NULL) {
    *failed = cli_fail(CLI_FAIL, "the Redis connection failed reading %s: %s.", key, rc->errstr);
    return 0;
  }
  if (r->type == REDIS_REPLY_INTEGER) n = r->integer;
  else *failed = cli_fail(CLI_FAIL, "Redis refused to read %s: %.200s", key,
                          r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
  freeReplyObject(r);
  return n;
}

/* ---- list -------------------------------------------------------------------- */

/* One listed entry. Owns its strings. ok: decoded; else reason says why
 * not and id/tenant hold what could be read (maybe ""). */
struct row {
  long long index;
  size_t size;
  int ok;
  char *id, *tenant, *queue, *reason;
  int attempts;
  long long created;
  char *state, *error, *detail; /* from P:status:ID; NULL when absent */
};

static void row_free(struct row *r) {
  free(r->id), free(r->tenant), free(r->queue), free(r->reason);
  free(r->state), free(r->error), free(r->detail);
}

static void fill_row(struct row *row, long long index, const redisReply *el) {
  memset(row, 0, sizeof *row);
  row->index = index;
  row->size = el->type == REDIS_REPLY_STRING ? el->len : 0;
  struct relayq_job *job = NULL;
  struct relayq_error err;
  int rc = RELAYQ_EINVALID_JOB;
  if (el->type == REDIS_REPLY_STRING)
    rc = relayq_job_decode(el->str, el->len, cli_max_job_bytes(), &job, &err);
  if (rc == 0) {
    row->ok = 1;
    row->id = rq_xstrdup(job->id);
    row->tenant = rq_xstrdup(job->tenant);
    row->queue = rq_xstrdup(job->queue_ ? job->queue_ : RELAYQ_DEFAULT_QUEUE);
    row->attempts = job->attempts_;
    row->created = job->created_;
    relayq_job_free(job);
    return;
  }
  row->id = rq_xstrdup(el->type == REDIS_REPLY_STRING ? err.id : "");
  row->tenant = rq_xstrdup(el->type == REDIS_REPLY_STRING ? err.tenant : "");
  row->reason = rq_xstrdup(el->type == REDIS_REPLY_STRING ? err.message : "not a string");
}

static char *field(const redisReply *h, const char *name) {
  for (size_t i = 0; i + 1 < h->elements; i += 2) {
    const redisReply *k = h->element[i], *v = h->element[i + 1];
    if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING &&
        k->len == strlen(name) && memcmp(k->str, name, k->len) == 0)
      return rq_xstrndup(v->str, v->len);
  }
  return NULL;
}

/* Reads the status hash of every row with an id, pipelined. */
static int read_statuses(redisContext *rc, const char *prefix, struct row *rows, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (!rows[i].id[0]) continue;
    char key[600];
    relayq_key(key, sizeof key, prefix, RELAYQ_KEY_STATUS, rows[i].id);
    redisAppendCommand(rc, "HGETALL %s", key);
  }
  for (size_t i = 0; i < n; i++) {
    if (!rows[i].id[0]) continue;
    void *v = NULL;
    if (redisGetReply(rc, &v) != REDIS_OK || v == NULL)
      return cli_fail(CLI_FAIL, "the Redis connection failed reading job statuses: %s.",
                      rc->errstr);
    redisReply *h = v;
    if (h->type == REDIS_REPLY_ARRAY && h->elements > 0) {
      rows[i].state = field(h, "state");
      rows[i].error = field(h, "error");
      rows[i].detail = field(h, "detail");
    }
    freeReplyObject(h);
  }
  return 0;
}

static void print_row_json(const struct row *r) {
  printf("{\"index\":%lld,\"size\":%zu,", r->index, r->size);
  if (!r->ok) {
    fputs("\"undecodable\":true,\"reason\":", stdout);
    cli_json_string(stdout, r->reason);
    putchar(',');
  }
  fputs("\"id\":", stdout);
  if (r->id[0]) cli_json_string(stdout, r->id);
  else fputs("null", stdout);
  fputs(",\"tenant\":", stdout);
  if (r->tenant[0]) cli_json_string(stdout, r->tenant);
  else fputs("null", stdout);
  if (r->ok) {
    fputs(",\"queue\":", stdout);
    cli_json_string(stdout, r->queue);
    printf(",\"attempts\":%d,\"created_at\":", r->attempts);
    if (r->created > 0) printf("%lld", r->created);
    else fputs("null", stdout);
  }
  const char *names[] = {"state", "error", "detail"};
  const char *vals[] = {r->state, r->error, r->detail};
  for (int k = 0; k < 3; k++) {
    printf(",\"%s\":", names[k]);
    if (vals[k]) cli_json_string(stdout, vals[k]);
    else fputs("null", stdout);
  }
  putchar('}');
}

/* "error: detail", or what is known. Returns a malloc'd string. */
static char *why(const struct row *r) {
  struct rq_buf b;
  rq_buf_init(&b);
  if (!r->ok && r->id[0]) rq_buf_printf(&b, "job %s: %s", r->id, r->reason);
  else if (!r->ok) rq_buf_printf(&b, "%s", r->reason);
  if (r->error && r->error[0]) rq_buf_printf(&b, "%s%s", b.len ? "; " : "", r->error);
  if (r->detail && r->detail[0]) rq_buf_printf(&b, "%s%s", b.len ? ": " : "", r->detail);
  if (b.len == 0) rq_buf_puts(&b, r->state ? "-" : "- (no status)");
  return rq_buf_steal(&b, NULL);
}

static void print_rows_text(const struct row *rows, size_t n, long long total) {
  if (total == 0) {
    puts("P:dead is empty.");
    return;
  }
  struct cli_table t = {.ncol = 6, .align = "rllrrl"};
  cli_table_row(&t, "#", "ID", "TENANT", "ATTEMPTS", "SIZE", "ERROR");
  for (size_t i = 0; i < n; i++) {
    const struct row *r = &rows[i];
    char idx[24], att[16], size[24], label[64];
    snprintf(idx, sizeof idx, "%lld", r->index);
    snprintf(size, sizeof size, "%zu", r->size);
    snprintf(att, sizeof att, "%d", r->attempts);
    snprintf(label, sizeof label, "(undecodable, %zu bytes)", r->size);
    char *w = why(r);
    if (r->ok) cli_table_row(&t, idx, r->id, r->tenant, att, size, w);
    else cli_table_row(&t, idx, label, r->tenant[0] ? r->tenant : NULL, NULL, size, w);
    free(w);
  }
  cli_table_print(&t, stdout, "");
  if ((long long)n < total)
    printf("(%zu of %lld shown, newest first; --limit N for more)\n", n, total);
}

static int list_cmd(struct relayq_client *c, long long limit, int json) {
  redisContext *rc = relayq_client_redis(c);
  const char *prefix = relayq_client_prefix(c);
  char dead_key[KEY_MAX];
  relayq_key(dead_key, sizeof dead_key, prefix, RELAYQ_KEY_DEAD, NULL);
  int failed = 0;
  long long total = llen(rc, dead_key, &failed);
  if (failed) return failed;
  struct row *rows = rq_xcalloc((size_t)limit + 1, sizeof *rows);
  size_t n = 0;
  int rcode = 0;
  for (long long start = 0; (long long)n < limit && rcode == 0;) {
    struct page p;
    if ((rcode = read_page(rc, dead_key, start, &p)) != 0) break;
    size_t got = p.r->elements;
    for (size_t i = 0; i < got && (long long)n < limit; i++)
      fill_row(&rows[n++], start + (long long)i, p.r->element[i]);
    freeReplyObject(p.r);
    if (got < PAGE) break;
    start += PAGE;
  }
  if (rcode == 0) rcode = read_statuses(rc, prefix, rows, n);
  if (rcode == 0) {
    if (json) {
      printf("{\"total\":%lld,\"shown\":%zu,\"jobs\":[", total, n);
      for (size_t i = 0; i < n; i++) {
        if (i) putchar(',');
        print_row_json(&rows[i]);
      }
      puts("]}");
    } else {
      print_rows_text(rows, n, total > (long long)n ? total : (long long)n);
    }
  }
  for (size_t i = 0; i < n; i++) row_free(&rows[i]);
  free(rows);
  return rcode ? CLI_FAIL : CLI_OK;
}

/* ---- requeue ----------------------------------------------------------------- */

/* What one requeue run found. */
struct tally {
  long long seen, requeued, matched, undecodable, busy;
};

/*
 * Builds the payload to push from a decoded dead job (see the file's top
 * comment for which recipients go again). *out: malloc'd, caller frees.
 */
static int fresh_payload(const struct relayq_job *dead, const char *queue, unsigned char **out,
                         size_t *out_len, struct relayq_error *err) {
  struct relayq_job j = *dead; /* shallow: the dead job keeps ownership */
  j.attempts_ = 0;
  j.queue_ = (char *)queue;
  if (!(j.pending_.n > 0 && j.accepted_ > 0)) {
    /* Nobody has the message yet: everyone gets it. */
    j.pending_.v = NULL;
    j.pending_.n = 0;
    j.accepted_ = 0;
    j.rejected_ = 0;
  }
  return relayq_job_encode(&j, out, out_len, err);
}

/* Runs REQUEUE for one payload. Returns 1 requeued, 0 not (said why on
 * stderr), or -1 when Redis failed. */
static int requeue_one(redisContext *rc, const char *prefix, const redisReply *el,
                       const struct relayq_job *job, const char *queue_opt, struct tally *t) {
  const char *queue = queue_opt ? queue_opt : job->queue_ ? job->queue_ : RELAYQ_DEFAULT_QUEUE;
  unsigned char *payload = NULL;
  size_t len = 0;
  struct relayq_error err;
  if (fresh_payload(job, queue, &payload, &len, &err) != 0) {
    cli_fail(CLI_FAIL, "job %s cannot be re-encoded (%s); it stays in P:dead.", job->id,
             err.message);
    t->undecodable++;
    return 0;
  }
  char dead_key[KEY_MAX], status_key[KEY_MAX], queue_key[KEY_MAX], events_key[KEY_MAX];
  relayq_key(dead_key, sizeof dead_key, prefix, RELAYQ_KEY_DEAD, NULL);
  relayq_key(status_key, sizeof status_key, prefix, RELAYQ_KEY_STATUS, job->id);
  relayq_key(queue_key, sizeof queue_key, prefix, RELAYQ_KEY_QUEUE, queue);
  relayq_key(events_key, sizeof events_key, prefix, RELAYQ_KEY_EVENTS, NULL);
  long long now = relayq_now_ms();
  char now_s[24], event[2048]; /* relayq__event_max for two ids of RELAYQ_ID_MAX: under 1,800 */
  snprintf(now_s, sizeof now_s, "%lld", now);
  const struct relayq__event ev = {.id = job->id, .tenant = job->tenant, .state = "queued", .ts = now};
  event[relayq__event_json(event, &ev)] = '\0';
  const char *argv[] = {"EVAL", rq_lua_source(RQ_LUA_REQUEUE), "4",     dead_key, status_key, queue_key,
                        events_key, el->str, (const char *)payload, now_s, event, job->tenant};
  size_t lens[12];
  for (int i = 0; i < 12; i++) lens[i] = strlen(argv[i]);
  lens[7] = el->len;
  lens[8] = len;
  redisReply *r = redisCommandArgv(rc, 12, argv, lens);
  free(payload);
  if (r == NULL) {
    cli_fail(CLI_FAIL, "the Redis connection failed requeueing job %s: %s.", job->id, rc->errstr);
    return -1;
  }
  int done = 0;
  if (r->type == REDIS_REPLY_ERROR) {
    cli_fail(CLI_FAIL, "Redis refused to requeue job %s: %.200s", job->id, r->str);
    done = -1;
  } else if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
             r->element[0]->type == REDIS_REPLY_STRING) {
    const char *what = r->element[0]->str;
    if (strcmp(what, "ok") == 0) {
      printf("requeued %s (tenant %s) to queue %s\n", job->id, job->tenant, queue);
      if (job->expires_at > 0 && job->expires_at <= now)
        fprintf(stderr,
                "relayq: warning: job %s expired at %lld (expires_at); the worker will fail it "
                "again with error expired.\n",
                job->id, (long long)job->expires_at);
      t->requeued++;
      done = 1;
    } else if (strcmp(what, "foreign") == 0) {
      cli_fail(CLI_FAIL, "job %s: its id is used by another tenant's job, whose status is left alone; this copy "
               "stays in P:dead (send it again with a new id).", job->id);
      t->busy++;
    } else if (strcmp(what, "busy") == 0) {
      cli_fail(CLI_FAIL, "job %s is already on its way (state %s); this copy stays in P:dead.",
               job->id,
               r->elements > 1 && r->element[1]->type == REDIS_REPLY_STRING ? r->element[1]->str
                                                                             : "?");
      t->busy++;
    } else {
      /* Someone else requeued or removed it a moment ago: nothing to do. */
      fprintf(stderr, "relayq: job %s left P:dead meanwhile (requeued by someone else?).\n",
              job->id);
      done = 2;
    }
  } else {
    cli_fail(CLI_FAIL, "Redis answered the requeue of job %s unexpectedly.", job->id);
    done = -1;
  }
  freeReplyObject(r);
  return done;
}

/* Handles element i of a page. Returns 1 when it left P:dead (so the
 * walk's next index does not move), 0 when it stayed, -1 on failure. */
static int requeue_element(redisContext *rc, const char *prefix, const redisReply *el,
                           long long index, const char *want_id, const char *queue_opt,
                           struct tally *t) {
  t->seen++;
  if (el->type != REDIS_REPLY_STRING) return 0;
  /* The id is in the payload verbatim: skip the decoder for the others. */
  if (want_id && !memmem(el->str, el->len, want_id, strlen(want_id))) return 0;
  struct relayq_job *job = NULL;
  struct relayq_error err;
  if (relayq_job_decode(el->str, el->len, cli_max_job_bytes(), &job, &err) != 0) {
    if (want_id && strcmp(err.id, want_id) != 0) return 0;
    t->matched += want_id != NULL;
    t->undecodable++;
    cli_fail(CLI_FAIL,
             "dead payload #%lld (undecodable, %zu bytes%s%s) cannot be requeued: %s It stays "
             "in P:dead.",
             index, el->len, err.id[0] ? ", job " : "", err.id, err.message);
    return 0;
  }
  int r = 0;
  if (want_id == NULL || strcmp(job->id, want_id) == 0) {
    t->matched++;
    r = requeue_one(rc, prefix, el, job, queue_opt, t);
  }
  relayq_job_free(job);
  return r < 0 ? -1 : r > 0;
}

static int requeue_cmd(struct relayq_client *c, const char *want_id, const char *queue_opt) {
  redisContext *rc = relayq_client_redis(c);
  const char *prefix = relayq_client_prefix(c);
  char dead_key[KEY_MAX];
  relayq_key(dead_key, sizeof dead_key, prefix, RELAYQ_KEY_DEAD, NULL);
  struct tally t = {0};
  long long start = 0;
  for (long pages = 0; pages < MAX_PAGES; pages++) {
    struct page p;
    if (read_page(rc, dead_key, start, &p) != 0) return CLI_FAIL;
    size_t got = p.r->elements;
    long long left = 0; /* payloads of this page that left P:dead */
    for (size_t i = 0; i < got; i++) {
      /* Earlier removals in this page moved this element up by `left`. */
      int r = requeue_element(rc, prefix, p.r->element[i], start + (long long)i - left,
                              want_id, queue_opt, &t);
      if (r < 0) {
        freeReplyObject(p.r);
        return CLI_FAIL;
      }
      left += r;
    }
    freeReplyObject(p.r);
    if (got < PAGE) break;
    start += (long long)got - left;
  }
  if (want_id) {
    if (t.matched == 0) return cli_fail(CLI_FAIL, "job %s is not in P:dead.", want_id);
    /* Not requeued: the line above said why. */
    return t.requeued > 0 ? CLI_OK : CLI_FAIL;
  }
  if (t.seen == 0) {
    puts("P:dead is empty; nothing to requeue.");
    return CLI_OK;
  }
  long long stayed = t.undecodable + t.busy;
  printf("requeued %lld of %lld dead job(s)", t.requeued, t.seen);
  if (stayed) printf("; %lld stay in P:dead (see the lines above)", stayed);
  putchar('\n');
  return t.requeued > 0 ? CLI_OK : CLI_FAIL;
}

/* ---- the command --------------------------------------------------------------- */

static void dead_usage(void) {
  puts("usage: relayq dead list [--limit N] [--json]\n"
       "       relayq dead requeue (ID | --all) [--queue NAME]\n"
       "\n"
       "list      the dead-lettered jobs, newest first (default 50, at most\n"
       "          100000): index, id, tenant, attempts, size, and the error and\n"
       "          detail of the job's status; undecodable payloads show as\n"
       "          '(undecodable, N bytes)' with the decoder's reason.\n"
       "requeue   puts job ID (or every decodable dead job, --all) back on its\n"
       "          queue, or on NAME, with attempts 0 and status 'queued'. Only\n"
       "          recipients that have not accepted the message get it again.\n"
       "          Exit 0 when something was requeued, 1 when ID is not in the\n"
       "          dead list or nothing could be requeued.");
}

int cmd_dead(int argc, char **argv, struct cli_ctx *ctx) {
  int opt, json = 0, all = 0;
  long long limit = -1;
  const char *queue = NULL;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, ":h", dead_opts, NULL)) != -1) {
    if (cli_global_opt(opt, optarg, ctx)) continue;
    switch (opt) {
    case 'h': dead_usage(); return CLI_OK;
    case O_JSON: json = 1; break;
    case O_ALL: all = 1; break;
    case O_QUEUE: queue = optarg; break;
    case O_LIMIT:
      if (cli_parse_int(optarg, 1, MAX_LIMIT, &limit) != 0)
        return cli_fail(CLI_USAGE, "--limit takes a number from 1 to %d, not '%.40s'.", MAX_LIMIT,
                        optarg);
      break;
    default: return cli_bad_option("dead", opt, argv);
    }
  }
  int npos = argc - optind;
  const char *sub = npos > 0 ? argv[optind] : "";
  if (strcmp(sub, "list") == 0) {
    if (npos != 1 || all || queue)
      return cli_fail(CLI_USAGE,
                      "dead list takes only --limit and --json (see 'relayq dead --help').");
    struct relayq_client *c = cli_client(ctx);
    return c ? list_cmd(c, limit > 0 ? limit : DEFAULT_LIMIT, json) : CLI_FAIL;
  }
  if (strcmp(sub, "requeue") == 0) {
    if (json || limit >= 0)
      return cli_fail(CLI_USAGE,
                      "dead requeue takes ID or --all, and --queue (see 'relayq dead --help').");
    if (npos > 2) return cli_fail(CLI_USAGE, "dead requeue takes one job ID.");
    if ((npos == 2) == all)
      return cli_fail(CLI_USAGE, "dead requeue needs exactly one of a job ID and --all.");
    const char *id = npos == 2 ? argv[optind + 1] : NULL;
    if (id && !relayq_valid_id(id))
      return cli_fail(CLI_USAGE, "'%.140s' is not a job id (%s).", id, NAME_RULE);
    if (queue && !relayq_valid_id(queue))
      return cli_fail(CLI_USAGE, "'%.140s' is not a queue name (%s).", queue, NAME_RULE);
    struct relayq_client *c = cli_client(ctx);
    return c ? requeue_cmd(c, id, queue) : CLI_FAIL;
  }
  if (npos == 0)
    return cli_fail(CLI_USAGE,
                    "dead needs a subcommand, list or requeue (see 'relayq dead --help').");
  return cli_fail(CLI_USAGE, "unknown dead subcommand '%.40s': use list or requeue.", sub);
}
