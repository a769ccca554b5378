/*
 * test_client_live: librelayq's blocking client (producer/lib/client.c)
 * against a real redis-server this test starts itself (hiredis' own tests
 * do the same): connect and AUTH, relayq_enqueue (status + push + event in
 * one script, idempotent on the id), relayq_enqueue_many (1000 jobs,
 * pipelined), delayed jobs, relayq_status_get, and Redis refusing a write.
 *
 * The server runs on a free 127.0.0.1 port with a password, in a temp dir,
 * and dies with the test (PR_SET_PDEATHSIG). Without redis-server on PATH
 * it fails (exit 2): scripts/deps.sh installs it.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "check.h"
#include "relayq/relayq.h"

#define PASSWORD "s3cret-live"
#define PREFIX "live"
#define N_BULK 1000

struct server {
  pid_t pid;
  int port;
  char dir[64];
  char url[128];
};

static struct server srv = {.pid = -1};

/* ---- the private redis-server ------------------------------------------------ */

static int on_path(const char *name) {
  const char *path = getenv("PATH");
  if (path == NULL) return 0;
  char buf[4096];
  for (const char *p = path; *p;) {
    size_t len = strcspn(p, ":");
    if (len > 0 && len < sizeof buf - strlen(name) - 2) {
      snprintf(buf, sizeof buf, "%.*s/%s", (int)len, p, name);
      if (access(buf, X_OK) == 0) return 1;
    }
    p += len + (p[len] == ':');
  }
  return 0;
}

/* A port on 127.0.0.1 that was free a moment ago (bind port 0). */
static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof a;
  int port = -1;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
      getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
    port = ntohs(a.sin_port);
  close(fd);
  return port;
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_ms(int ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static int write_conf(const char *path) {
  FILE *f = fopen(path, "w");
  if (f == NULL) return -1;
  /* The password lives in the file, not argv, where ps would show it. */
  fprintf(f,
          "port %d\nbind 127.0.0.1\nsave \"\"\nappendonly no\ndaemonize no\n"
          "dir %s\nlogfile %s/redis.log\nrequirepass %s\n",
          srv.port, srv.dir, srv.dir, PASSWORD);
  return fclose(f);
}

/* Polls until the server answers PING with our password (ready), the
 * child exits, or 10 s pass. Returns 1 when ready. */
static int wait_ready(void) {
  int64_t deadline = mono_ms() + 10000;
  while (mono_ms() < deadline) {
    int st;
    if (waitpid(srv.pid, &st, WNOHANG) == srv.pid) {
      srv.pid = -1;
      return 0;
    }
    struct relayq_client *c = NULL;
    if (relayq_connect(srv.url, PREFIX, &c, NULL) == 0) {
      relayq_close(c);
      return 1;
    }
    nap_ms(10);
  }
  return 0;
}

static void stop_server(void) {
  if (srv.pid <= 0) return;
  kill(srv.pid, SIGTERM);
  int64_t deadline = mono_ms() + 5000;
  int st;
  while (waitpid(srv.pid, &st, WNOHANG) == 0) {
    if (mono_ms() > deadline) {
      kill(srv.pid, SIGKILL);
      waitpid(srv.pid, &st, 0);
      break;
    }
    nap_ms(10);
  }
  srv.pid = -1;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

/* Starts redis-server (up to 5 ports, as one may be taken meanwhile). */
static int start_server(void) {
  snprintf(srv.dir, sizeof srv.dir, "/tmp/relayq-live-XXXXXX");
  if (mkdtemp(srv.dir) == NULL) return -1;
  char conf[128];
  snprintf(conf, sizeof conf, "%s/redis.conf", srv.dir);
  for (int attempt = 0; attempt < 5; attempt++) {
    srv.port = free_port();
    if (srv.port <= 0 || write_conf(conf) != 0) return -1;
    snprintf(srv.url, sizeof srv.url, "redis://:%s@127.0.0.1:%d", PASSWORD, srv.port);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
      /* The server must not outlive the test, even after a crash. */
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      int devnull = open("/dev/null", O_RDWR);
      if (devnull >= 0) {
        dup2(devnull, 0), dup2(devnull, 1), dup2(devnull, 2);
        if (devnull > 2) close(devnull);
      }
      execlp("redis-server", "redis-server", conf, (char *)NULL);
      _exit(127);
    }
    srv.pid = pid;
    if (wait_ready()) return 0;
    stop_server();
  }
  return -1;
}

/* ---- helpers ------------------------------------------------------------------ */

/* A raw command on the client's own connection; caller frees the reply. */
static redisReply *cmd(struct relayq_client *c, const char *fmt, const char *arg) {
  return redisCommand(relayq_client_redis(c), fmt, arg);
}

static long long llen(struct relayq_client *c, const char *key) {
  redisReply *r = cmd(c, "LLEN %s", key);
  long long n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
  freeReplyObject(r);
  return n;
}

static char *to_a[] = {"Ann <ann@dest.example>"};
static char *cc_b[] = {"bob@dest.example"};

static struct relayq_job base_job(char *id) {
  struct relayq_job j = {0};
  j.id = id;
  j.tenant = "acme";
  j.to = (struct relayq_strv){to_a, 1};
  j.cc = (struct relayq_strv){cc_b, 1};
  j.subject = "Rechnung";
  j.text = "Hallo";
  return j;
}

/* ---- tests -------------------------------------------------------------------- */

static void test_connect(void) {
  struct relayq_client *c = NULL;
  struct relayq_error err;
  char url[160];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", srv.port);
  CHECK_INT(relayq_connect(url, PREFIX, &c, &err), ==, RELAYQ_EAUTH);
  CHECK(strstr(err.message, "NOAUTH") != NULL);
  CHECK(c == NULL);
  snprintf(url, sizeof url, "redis://:wrong@127.0.0.1:%d", srv.port);
  CHECK_INT(relayq_connect(url, PREFIX, &c, &err), ==, RELAYQ_EAUTH);
  CHECK(strstr(err.message, "wrong") == NULL); /* never the password */
  snprintf(url, sizeof url, "redis://:%s@127.0.0.1:%d/3", PASSWORD, srv.port);
  CHECK_INT(relayq_connect(url, PREFIX, &c, &err), ==, 0);
  CHECK_STR(relayq_client_prefix(c), PREFIX);
  relayq_close(c);
  snprintf(url, sizeof url, "redis://:%s@127.0.0.1:%d/99", PASSWORD, srv.port);
  CHECK_INT(relayq_connect(url, PREFIX, &c, &err), ==, RELAYQ_EREDIS);
  CHECK(strstr(err.message, PASSWORD) == NULL);
  int closed = free_port();
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", closed);
  CHECK_INT(relayq_connect(url, PREFIX, &c, &err), ==, RELAYQ_ECONNECT);
  CHECK_INT(relayq_connect(srv.url, "bad prefix", &c, &err), ==, RELAYQ_EINVAL);
}

/* 1000 jobs in one call: all pushed in order, each with its status and its
 * event, and the events arrive in enqueue order. */
static void test_enqueue_many(struct relayq_client *c) {
  redisContext *sub = redisConnect("127.0.0.1", srv.port);
  CHECK(sub != NULL && sub->err == 0);
  struct timeval tv = {5, 0};
  redisSetTimeout(sub, tv);
  redisReply *r = redisCommand(sub, "AUTH %s", PASSWORD);
  freeReplyObject(r);
  r = redisCommand(sub, "SUBSCRIBE %s", PREFIX ":events");
  CHECK(r != NULL && r->type == REDIS_REPLY_ARRAY);
  freeReplyObject(r);

  static char ids[N_BULK][32];
  static struct relayq_job jobs[N_BULK];
  struct relayq_kv meta[] = {{"order", "A-17"}};
  for (int i = 0; i < N_BULK; i++) {
    snprintf(ids[i], sizeof ids[i], "bulk-%04d", i);
    jobs[i] = base_job(ids[i]);
    if (i % 100 == 0) jobs[i].meta = meta, jobs[i].n_meta = 1;
  }
  struct relayq_error err;
  int64_t t0 = relayq_now_ms();
  CHECK_INT(relayq_enqueue_many(c, jobs, N_BULK, "bulk", &err), ==, 0);
  CHECK_INT(llen(c, PREFIX ":queue:bulk"), ==, N_BULK);

  /* FIFO: producers LPUSH, workers take from the right, oldest first. */
  r = cmd(c, "LINDEX %s -1", PREFIX ":queue:bulk");
  struct relayq_job *first = NULL;
  CHECK(r != NULL && r->type == REDIS_REPLY_STRING);
  if (r && r->type == REDIS_REPLY_STRING) {
    CHECK_INT(relayq_job_decode(r->str, r->len, 0, &first, &err), ==, 0);
    if (first) {
      CHECK_STR(first->id, "bulk-0000");
      CHECK_STR(first->cc.v[0], "bob@dest.example");
      CHECK(first->queue_ == NULL); /* only delayed payloads carry _queue */
    }
    relayq_job_free(first);
  }
  freeReplyObject(r);

  int statuses_ok = 0;
  for (int i = 0; i < N_BULK; i++) {
    struct relayq_status *st = NULL;
    if (relayq_status_get(c, ids[i], &st, &err) != 0) continue;
    const char *state = relayq_status_field(st, "state");
    const char *created = relayq_status_field(st, "created_at");
    const char *rcpts = relayq_status_field(st, "recipients");
    const char *meta_v = relayq_status_field(st, "meta.order");
    int ok = state && !strcmp(state, "queued") && rcpts && !strcmp(rcpts, "2") && created &&
             atoll(created) >= t0 && !strcmp(relayq_status_field(st, "tenant"), "acme") &&
             !strcmp(relayq_status_field(st, "attempts"), "0") &&
             (i % 100 == 0 ? meta_v && !strcmp(meta_v, "A-17") : meta_v == NULL);
    statuses_ok += ok;
    relayq_status_free(st);
  }
  CHECK_INT(statuses_ok, ==, N_BULK);

  int events_ok = 0;
  for (int i = 0; i < N_BULK; i++) {
    void *v = NULL;
    if (redisGetReply(sub, &v) != REDIS_OK || v == NULL) break;
    redisReply *m = v;
    char want[128];
    snprintf(want, sizeof want, "{\"id\":\"%s\",\"tenant\":\"acme\",\"state\":\"queued\"", ids[i]);
    if (m->type == REDIS_REPLY_ARRAY && m->elements == 3 &&
        m->element[2]->type == REDIS_REPLY_STRING &&
        strncmp(m->element[2]->str, want, strlen(want)) == 0 &&
        strstr(m->element[2]->str, "\"attempts\":0,\"ts\":") != NULL)
      events_ok++;
    freeReplyObject(m);
  }
  CHECK_INT(events_ok, ==, N_BULK);
  redisFree(sub);

  /* Enqueueing the same 1000 again pushes nothing: the ids are taken. */
  CHECK_INT(relayq_enqueue_many(c, jobs, N_BULK, "bulk", &err), ==, 0);
  CHECK_INT(llen(c, PREFIX ":queue:bulk"), ==, N_BULK);

  /* Validation comes first: one bad job and nothing at all is sent. */
  struct relayq_job bad[3] = {base_job("v-1"), base_job("v-2"), base_job("v-3")};
  bad[1].to.n = 0, bad[1].cc.n = 0;
  CHECK_INT(relayq_enqueue_many(c, bad, 3, "val", &err), ==, RELAYQ_EINVALID_JOB);
  CHECK_INT(llen(c, PREFIX ":queue:val"), ==, 0);
  bad[1] = base_job(NULL);
  CHECK_INT(relayq_enqueue_many(c, bad, 3, "val", &err), ==, RELAYQ_EINVAL);
  CHECK(strstr(err.message, "Job 2 has no id") != NULL);
  CHECK_INT(llen(c, PREFIX ":queue:val"), ==, 0);
  CHECK_INT(relayq_enqueue_many(c, bad, 0, "val", &err), ==, 0);
}

/* The id is the idempotency key: a second enqueue writes nothing. */
static void test_duplicates(struct relayq_client *c) {
  struct relayq_job j = base_job("dup-1");
  struct relayq_error err;
  char id[RELAYQ_ID_MAX + 1] = "";
  CHECK_INT(relayq_enqueue(c, &j, "dups", id, &err), ==, 0);
  CHECK_STR(id, "dup-1");
  CHECK_STR(err.message, "");
  struct relayq_status *st = NULL;
  CHECK_INT(relayq_status_get(c, "dup-1", &st, &err), ==, 0);
  char created[32] = "";
  snprintf(created, sizeof created, "%s", st ? relayq_status_field(st, "created_at") : "");
  relayq_status_free(st);

  j.subject = "changed";
  CHECK_INT(relayq_enqueue(c, &j, "dups", id, &err), ==, 0);
  CHECK(strstr(err.message, "already exists (state queued)") != NULL);
  CHECK_INT(llen(c, PREFIX ":queue:dups"), ==, 1);
  CHECK_INT(relayq_status_get(c, "dup-1", &st, &err), ==, 0);
  if (st) CHECK_STR(relayq_status_field(st, "created_at"), created);
  relayq_status_free(st);

  /* A final state is never sent again either. */
  freeReplyObject(cmd(c, "HSET %s state sent", PREFIX ":status:dup-1"));
  CHECK_INT(relayq_enqueue(c, &j, "dups", NULL, &err), ==, 0);
  CHECK(strstr(err.message, "state sent") != NULL);
  CHECK_INT(llen(c, PREFIX ":queue:dups"), ==, 1);

  /* Mixed batch: only the new ids go in. */
  struct relayq_job batch[3] = {base_job("dup-1"), base_job("dup-2"), base_job("dup-3")};
  CHECK_INT(relayq_enqueue_many(c, batch, 3, "dups", &err), ==, 0);
  CHECK_INT(llen(c, PREFIX ":queue:dups"), ==, 3);

  /* No id: one is made, returned, and used for the status. */
  j.id = NULL;
  CHECK_INT(relayq_enqueue(c, &j, "dups", id, &err), ==, 0);
  CHECK(relayq_valid_id(id));
  CHECK_INT(relayq_status_get(c, id, &st, &err), ==, 0);
  if (st) CHECK_STR(relayq_status_field(st, "state"), "queued");
  relayq_status_free(st);
  CHECK_INT(llen(c, PREFIX ":queue:dups"), ==, 4);
}

/* not_before in the future: the delayed zset, state deferred, _queue set. */
static void test_delayed(struct relayq_client *c) {
  struct relayq_job j = base_job("later-1");
  int64_t due = relayq_now_ms() + 3600 * 1000;
  j.not_before = due;
  struct relayq_error err;
  CHECK_INT(relayq_enqueue(c, &j, "slow", NULL, &err), ==, 0);
  CHECK_INT(llen(c, PREFIX ":queue:slow"), ==, 0);
  redisReply *r = cmd(c, "ZRANGE %s 0 -1 WITHSCORES", PREFIX ":delayed");
  CHECK(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2);
  if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
    CHECK_INT(atoll(r->element[1]->str), ==, due);
    struct relayq_job *d = NULL;
    CHECK_INT(relayq_job_decode(r->element[0]->str, r->element[0]->len, 0, &d, &err), ==, 0);
    if (d) CHECK_STR(d->queue_, "slow");
    relayq_job_free(d);
    /* "_queue" is the first key: the worker's Lua reads it raw. */
    CHECK(r->element[0]->len > 8 && memcmp(r->element[0]->str + 1, "\xa6_queue", 7) == 0);
  }
  freeReplyObject(r);
  struct relayq_status *st = NULL;
  CHECK_INT(relayq_status_get(c, "later-1", &st, &err), ==, 0);
  if (st) {
    CHECK_STR(relayq_status_field(st, "state"), "deferred");
    char want[24];
    snprintf(want, sizeof want, "%lld", (long long)due);
    CHECK_STR(relayq_status_field(st, "next_attempt_at"), want);
  }
  relayq_status_free(st);
}

static void test_status_get(struct relayq_client *c) {
  struct relayq_status *st = (struct relayq_status *)1;
  struct relayq_error err;
  CHECK_INT(relayq_status_get(c, "no-such-job", &st, &err), ==, RELAYQ_ENOT_FOUND);
  CHECK(st == NULL);
  CHECK(strstr(err.message, "no-such-job") != NULL);
  CHECK_INT(relayq_status_get(c, "bad id", &st, &err), ==, RELAYQ_EINVAL);
  CHECK_INT(relayq_status_get(c, "", &st, &err), ==, RELAYQ_EINVAL);
  CHECK_INT(relayq_status_get(NULL, "x", &st, &err), ==, RELAYQ_EINVAL);

  /* Values may hold any bytes, an empty string included. */
  redisReply *r = redisCommand(relayq_client_redis(c), "HSET %s state failed detail %b error %s",
                               PREFIX ":status:st-1", "a\0b", (size_t)3, "");
  freeReplyObject(r);
  CHECK_INT(relayq_status_get(c, "st-1", &st, &err), ==, 0);
  if (st) {
    CHECK_INT(st->n, ==, 3);
    CHECK_STR(relayq_status_field(st, "state"), "failed");
    CHECK_STR(relayq_status_field(st, "error"), "");
    CHECK_STR(relayq_status_field(st, "detail"), "a"); /* NUL-terminated copy */
    CHECK(relayq_status_field(st, "nope") == NULL);
    CHECK(relayq_state_is_final(relayq_status_field(st, "state")));
  }
  relayq_status_free(st);

  /* A status key of the wrong type is Redis' error, reported as such. */
  freeReplyObject(cmd(c, "SET %s x", PREFIX ":status:st-2"));
  CHECK_INT(relayq_status_get(c, "st-2", &st, &err), ==, RELAYQ_EREDIS);
  CHECK(strstr(err.message, "WRONGTYPE") != NULL);
}

/* Redis refuses the push (the queue key is a string): the script fails
 * before writing the status, so nothing half-done is left behind. */
static void test_refused(struct relayq_client *c) {
  freeReplyObject(cmd(c, "SET %s oops", PREFIX ":queue:broken"));
  struct relayq_job j = base_job("ref-1");
  struct relayq_error err;
  CHECK_INT(relayq_enqueue(c, &j, "broken", NULL, &err), ==, RELAYQ_EREDIS);
  CHECK(strstr(err.message, "ref-1") != NULL);
  struct relayq_status *st = NULL;
  CHECK_INT(relayq_status_get(c, "ref-1", &st, &err), ==, RELAYQ_ENOT_FOUND);

  /* The connection stays usable after a refused batch. */
  struct relayq_job batch[2] = {base_job("ref-2"), base_job("ref-3")};
  CHECK_INT(relayq_enqueue_many(c, batch, 2, "broken", &err), ==, RELAYQ_EREDIS);
  CHECK_INT(relayq_enqueue(c, &j, "fine", NULL, &err), ==, 0);
  CHECK_INT(llen(c, PREFIX ":queue:fine"), ==, 1);
  CHECK_INT(relayq_enqueue(c, &j, "bad queue", NULL, &err), ==, RELAYQ_EINVAL);

  /* Jobs share a script call, but each is written on its own: the one
   * whose status key is taken by a string fails, named; the others land. */
  freeReplyObject(cmd(c, "SET %s oops", PREFIX ":status:mix-2"));
  struct relayq_job mix[3] = {base_job("mix-1"), base_job("mix-2"), base_job("mix-3")};
  CHECK_INT(relayq_enqueue_many(c, mix, 3, "mixed", &err), ==, RELAYQ_EREDIS);
  CHECK(strstr(err.message, "mix-2") != NULL);
  CHECK(strstr(err.message, "WRONGTYPE") != NULL);
  CHECK_INT(llen(c, PREFIX ":queue:mixed"), ==, 2);
}

/* Jobs of several MB go a few per call (the 1 MB budget) and arrive whole,
 * in order, next to small ones. */
static void test_big_jobs(struct relayq_client *c) {
  enum { BIG = 6 * 1024 * 1024 };
  unsigned char *pdf = malloc(BIG);
  CHECK(pdf != NULL);
  if (pdf == NULL) return;
  for (size_t i = 0; i < BIG; i++) pdf[i] = (unsigned char)(i * 131 + 7);
  struct relayq_attachment att = {"big.pdf", "application/pdf", pdf, BIG};
  char ids[4][16];
  struct relayq_job jobs[4];
  for (int i = 0; i < 4; i++) {
    snprintf(ids[i], sizeof ids[i], "big-%d", i);
    jobs[i] = base_job(ids[i]);
    if (i % 2 == 0) jobs[i].attachments = &att, jobs[i].n_attachments = 1;
  }
  struct relayq_error err;
  CHECK_INT(relayq_enqueue_many(c, jobs, 4, "big", &err), ==, 0);
  redisReply *r = cmd(c, "LRANGE %s 0 -1", PREFIX ":queue:big");
  CHECK(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 4);
  for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
    struct relayq_job *got = NULL;
    const redisReply *el = r->element[r->elements - 1 - i];
    CHECK_INT(relayq_job_decode(el->str, el->len, 0, &got, &err), ==, 0);
    if (got == NULL) continue;
    CHECK_STR(got->id, ids[i]);
    CHECK_INT(got->n_attachments, ==, i % 2 == 0 ? 1 : 0);
    if (got->n_attachments == 1)
      CHECK(got->attachments[0].size == BIG && memcmp(got->attachments[0].data, pdf, BIG) == 0);
    relayq_job_free(got);
  }
  freeReplyObject(r);
  free(pdf);
}

/* An ACL that allows EVAL but not SCRIPT (some managed Redis plans): the
 * client sends the body with every call instead of failing. */
static void test_no_script_command(struct relayq_client *c) {
  freeReplyObject(cmd(c, "ACL SETUSER evalonly on >pw-eval ~* &* +@all -script %s", "-debug"));
  struct relayq_client *limited = NULL;
  struct relayq_error err;
  char url[160];
  snprintf(url, sizeof url, "redis://evalonly:pw-eval@127.0.0.1:%d", srv.port);
  CHECK_INT(relayq_connect(url, PREFIX, &limited, &err), ==, 0);
  if (limited == NULL) return;
  struct relayq_job jobs[2] = {base_job("acl-1"), base_job("acl-2")};
  CHECK_INT(relayq_enqueue_many(limited, jobs, 2, "acl", &err), ==, 0);
  struct relayq_job one = base_job("acl-3");
  CHECK_INT(relayq_enqueue(limited, &one, "acl", NULL, &err), ==, 0);
  CHECK_INT(llen(c, PREFIX ":queue:acl"), ==, 3);
  relayq_close(limited);
}

/* Redis forgot the script (restart, SCRIPT FLUSH) between calls and
 * between batches of one call: the calls refused with NOSCRIPT are sent
 * again with the body, every job lands once and in order. */
static void test_script_flushed(struct relayq_client *c) {
  enum { N = 700 }; /* three script calls */
  static char ids[N][32];
  static struct relayq_job jobs[N];
  for (int i = 0; i < N; i++) {
    snprintf(ids[i], sizeof ids[i], "fl-%04d", i);
    jobs[i] = base_job(ids[i]);
  }
  struct relayq_error err;
  CHECK_INT(relayq_enqueue_many(c, jobs, 10, "flush", &err), ==, 0); /* loads the script */
  freeReplyObject(cmd(c, "SCRIPT %s", "FLUSH"));
  CHECK_INT(relayq_enqueue_many(c, jobs, N, "flush", &err), ==, 0);
  CHECK_INT(llen(c, PREFIX ":queue:flush"), ==, N);
  redisReply *r = cmd(c, "LRANGE %s 0 -1", PREFIX ":queue:flush");
  int in_order = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == N;
  for (size_t i = 0; in_order && i < N; i++) {
    struct relayq_job *got = NULL;
    const redisReply *el = r->element[N - 1 - i]; /* LPUSH: oldest on the right */
    in_order = relayq_job_decode(el->str, el->len, 0, &got, &err) == 0 &&
               strcmp(got->id, ids[i]) == 0;
    relayq_job_free(got);
  }
  freeReplyObject(r);
  CHECK(in_order);
  freeReplyObject(cmd(c, "SCRIPT %s", "FLUSH"));
  struct relayq_job one = base_job("fl-single");
  CHECK_INT(relayq_enqueue(c, &one, "flush", NULL, &err), ==, 0);
  CHECK_INT(llen(c, PREFIX ":queue:flush"), ==, N + 1);
}

int main(void) {
  if (!on_path("redis-server")) {
    /* scripts/deps.sh installs it: a missing server is a broken machine,
     * not a pass with nothing checked. */
    printf("redis-server not on PATH: install it (scripts/deps.sh)\n");
    return 2;
  }
  if (start_server() != 0) {
    CHECK_FAIL_("%s", "could not start redis-server");
  } else {
    test_connect();
    struct relayq_client *c = NULL;
    struct relayq_error err;
    CHECK_INT(relayq_connect(srv.url, PREFIX, &c, &err), ==, 0);
    if (c != NULL) {
      test_enqueue_many(c);
      test_duplicates(c);
      test_delayed(c);
      test_status_get(c);
      test_refused(c);
      test_script_flushed(c);
      test_big_jobs(c);
      test_no_script_command(c);
      relayq_close(c);
    }
  }
  stop_server();
  if (srv.dir[0]) nftw(srv.dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
  return CHECK_DONE();
}
