/*
 * bench/enqueue: the benchmark's load generator. Enqueues N jobs of one
 * profile through librelayq's bulk producer API (relayq_enqueue_many:
 * status hash + push + event per job, up to 256 jobs per script call, two
 * calls in flight), or with --api one through relayq_enqueue, one job and
 * one round trip per call (what a web request handler does), as fast as it
 * can or at a fixed rate, and prints one JSON line with what it did.
 *
 * Profiles (bench/README.md):
 *   small    1 KB text body, one recipient, one tenant
 *   large    50 KB HTML body + a 100 KB PDF attachment, one recipient
 *   tenants  1 KB text, 20 tenants round robin, mixed recipient counts
 *   many     1 KB text, one recipient, --tenants T tenants round robin
 *            ("t0".."tT-1"; bench/run.sh gives each a hash)
 *            (7 in 10 jobs have 1 recipient, 2 in 10 have 5, 1 in 10 has 20)
 *
 * Job ids are ID_PREFIX followed by the job's index, zero-padded to 9
 * digits, so bench/report.py can read every status back without a SCAN.
 *
 * Usage: enqueue --redis URL [--prefix P] [--queue Q] --profile NAME -n N
 *                [--id-prefix S] [--start K] [--rate JOBS_PER_S]
 *                [--batch B] [--timeout S] [--api many|one]
 * Exit 0 when all N were enqueued; 1 on a Redis or validation error, 2 on
 * a usage error.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <relayq/relayq.h>

#define MAX_RCPT 20      /* most recipients of any profile's job */
#define ADDR_MAX 64
#define ID_MAX 64
#define TENANTS 20
#define TEXT_BYTES 1024
#define HTML_BYTES (50 * 1024)
#define PDF_BYTES (100 * 1024)
#define MAX_BATCH 10000

enum profile { P_SMALL, P_LARGE, P_TENANTS, P_MANY };

struct opts {
  const char *redis, *prefix, *queue, *id_prefix;
  enum profile profile;
  size_t n, start, batch;
  size_t attach_bytes; /* large: the attachment's size (default PDF_BYTES) */
  size_t tenants;      /* tenants profile: how many (default TENANTS) */
  double rate;    /* jobs/s; 0 = as fast as possible */
  double timeout; /* seconds; the whole run gives up after this */
  int one;        /* --api one: relayq_enqueue per job (a round trip each) */
};

/* One reusable job slot: the job and the storage its strings point into.
 * Slots live for the whole run; only ids and recipients change. */
struct slot {
  char id[ID_MAX];
  char tenant[32];
  char addr[MAX_RCPT][ADDR_MAX];
  char *rcpt[MAX_RCPT];
};

/* Bodies shared by every job (the library only reads them). */
static char *text_body, *html_body;
static unsigned char *pdf_data;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* This process's user+system CPU seconds. */
static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         (double)ru.ru_stime.tv_usec / 1e6;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
  }
}

/* Fills dst with cap-1 bytes of wrapped prose: realistic for the MIME
 * encoder (line lengths, spaces) without being all one byte. */
static char *make_text(size_t cap, const char *before, const char *after, const char *line_start,
                       const char *line_end) {
  static const char words[] =
      "Thank you for your order. Your invoice is attached and payment is due within thirty "
      "days. If you have any questions about this statement, reply to this message and our "
      "billing team will get back to you within one business day. ";
  char *s = malloc(cap);
  if (s == NULL) return NULL;
  size_t len = 0, blen = strlen(before), alen = strlen(after);
  memcpy(s, before, blen);
  len = blen;
  size_t w = 0;
  while (len + alen + 1 < cap) {
    size_t room = cap - 1 - alen - len;
    char line[160];
    /* One line of up to 72 characters of prose. */
    size_t ll = 0;
    ll += (size_t)snprintf(line, sizeof line, "%s", line_start);
    for (size_t i = 0; i < 72; i++, w++) line[ll++] = words[w % (sizeof words - 1)];
    ll += (size_t)snprintf(line + ll, sizeof line - ll, "%s\n", line_end);
    if (ll > room) ll = room;
    memcpy(s + len, line, ll);
    len += ll;
  }
  memcpy(s + len, after, alen);
  len += alen;
  s[len] = '\0';
  return s;
}

/* A PDF-looking attachment: header, incompressible pseudo-random body
 * (xorshift, fixed seed: every run sends the same bytes), trailer. */
static unsigned char *make_pdf(size_t n) {
  if (n < 64) return NULL; /* --attach-bytes is at least 64: room for head and tail */
  unsigned char *p = malloc(n);
  if (p == NULL) return NULL;
  static const char head[] = "%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", tail[] = "\n%%EOF\n";
  uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    p[i] = (unsigned char)x;
  }
  memcpy(p, head, sizeof head - 1);
  memcpy(p + n - (sizeof tail - 1), tail, sizeof tail - 1);
  return p;
}

/* Recipients of job i in the tenants profile: 70% 1, 20% 5, 10% 20. */
static size_t rcpt_count(enum profile p, size_t i) {
  if (p != P_TENANTS) return 1;
  size_t r = i % 10;
  return r < 7 ? 1 : r < 9 ? 5 : 20;
}

static void fill(struct relayq_job *j, struct slot *s, const struct opts *o, size_t i,
                 struct relayq_attachment *att) {
  memset(j, 0, sizeof *j);
  snprintf(s->id, sizeof s->id, "%s%09zu", o->id_prefix, i);
  if (o->profile == P_TENANTS) snprintf(s->tenant, sizeof s->tenant, "tenant%02zu", i % o->tenants);
  else if (o->profile == P_MANY) snprintf(s->tenant, sizeof s->tenant, "t%zu", i % o->tenants);
  else snprintf(s->tenant, sizeof s->tenant, "acme");
  size_t nr = rcpt_count(o->profile, i);
  for (size_t r = 0; r < nr; r++) {
    snprintf(s->addr[r], ADDR_MAX, "user%zu.%zu@example.com", i, r);
    s->rcpt[r] = s->addr[r];
  }
  j->v = RELAYQ_JOB_VERSION;
  j->id = s->id;
  j->tenant = s->tenant;
  j->to.v = s->rcpt;
  j->to.n = nr;
  j->subject = "Your invoice from ACME (benchmark)";
  if (o->profile == P_LARGE) {
    j->html = html_body;
    j->attachments = att;
    j->n_attachments = 1;
  } else {
    j->text = text_body;
  }
}

static int usage(const char *msg) {
  if (msg) fprintf(stderr, "enqueue: %s\n", msg);
  fprintf(stderr,
          "usage: enqueue --redis URL [--prefix P] [--queue Q] --profile small|large|tenants -n N\n"
          "               [--id-prefix S] [--start K] [--rate JOBS_PER_S] [--batch B] [--timeout S]\n"
          "               [--api many|one]\n"
          "               [--attach-bytes N] [--tenants T]\n");
  return 2;
}

static int parse_size(const char *s, size_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || s[0] == '-') return -1;
  *out = (size_t)v;
  return 0;
}

static int parse(int argc, char **argv, struct opts *o) {
  *o = (struct opts){.redis = "redis://127.0.0.1:6379", .prefix = RELAYQ_DEFAULT_PREFIX,
                     .queue = RELAYQ_DEFAULT_QUEUE, .id_prefix = "bench-", .profile = P_SMALL,
                     .n = 1000, .batch = 1000, .timeout = 600,
                     .attach_bytes = PDF_BYTES, .tenants = TENANTS};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (v == NULL) return usage("every option takes a value");
    i++;
    char *end;
    if (!strcmp(a, "--redis")) o->redis = v;
    else if (!strcmp(a, "--prefix")) o->prefix = v;
    else if (!strcmp(a, "--queue")) o->queue = v;
    else if (!strcmp(a, "--id-prefix")) o->id_prefix = v;
    else if (!strcmp(a, "--profile")) {
      if (!strcmp(v, "small")) o->profile = P_SMALL;
      else if (!strcmp(v, "large")) o->profile = P_LARGE;
      else if (!strcmp(v, "tenants")) o->profile = P_TENANTS;
      else if (!strcmp(v, "many")) o->profile = P_MANY;
      else return usage("--profile is small, large, tenants or many");
    } else if (!strcmp(a, "-n")) {
      if (parse_size(v, &o->n)) return usage("-n takes a count");
    } else if (!strcmp(a, "--start")) {
      if (parse_size(v, &o->start)) return usage("--start takes a count");
    } else if (!strcmp(a, "--batch")) {
      if (parse_size(v, &o->batch) || o->batch == 0 || o->batch > MAX_BATCH)
        return usage("--batch takes 1-10000");
    } else if (!strcmp(a, "--attach-bytes")) {
      if (parse_size(v, &o->attach_bytes) || o->attach_bytes < 64 || o->attach_bytes > ((size_t)64 << 20))
        return usage("--attach-bytes takes 64 to 67108864");
    } else if (!strcmp(a, "--tenants")) {
      if (parse_size(v, &o->tenants) || o->tenants == 0 || o->tenants > 10000000)
        return usage("--tenants takes 1-10000000");
    } else if (!strcmp(a, "--rate")) {
      o->rate = strtod(v, &end);
      if (*end || o->rate < 0) return usage("--rate takes jobs per second (0: as fast as possible)");
    } else if (!strcmp(a, "--api")) {
      if (!strcmp(v, "one")) o->one = 1;
      else if (!strcmp(v, "many")) o->one = 0;
      else return usage("--api is many (relayq_enqueue_many, the default) or one (relayq_enqueue)");
    } else if (!strcmp(a, "--timeout")) {
      o->timeout = strtod(v, &end);
      if (*end || o->timeout <= 0) return usage("--timeout takes seconds");
    } else {
      return usage("unknown option");
    }
  }
  if (strlen(o->id_prefix) > 40) return usage("--id-prefix is at most 40 characters");
  return 0;
}

static const char *profile_name(enum profile p) {
  return p == P_SMALL ? "small" : p == P_LARGE ? "large" : p == P_MANY ? "many" : "tenants";
}

int main(int argc, char **argv) {
  struct opts o;
  int rc = parse(argc, argv, &o);
  if (rc) return rc;
  text_body = make_text(TEXT_BYTES + 1, "", "", "", "");
  html_body = make_text(HTML_BYTES + 1, "<!DOCTYPE html><html><body>\n", "</body></html>\n", "<p>",
                        "</p>");
  pdf_data = make_pdf(o.attach_bytes);
  /* Big attachments: bound the producer's memory (each job of a call is
   * encoded before the call sends), about 64 MB of payloads at once. */
  if (o.profile == P_LARGE && o.batch * o.attach_bytes > ((size_t)64 << 20)) {
    o.batch = ((size_t)64 << 20) / o.attach_bytes;
    if (o.batch == 0) o.batch = 1;
  }
  struct slot *slots = calloc(o.batch, sizeof *slots);
  struct relayq_job *jobs = calloc(o.batch, sizeof *jobs);
  struct relayq_client *c = NULL;
  struct relayq_error err;
  struct relayq_attachment att = {"invoice-2024-0042.pdf", "application/pdf", pdf_data, o.attach_bytes};
  if (!text_body || !html_body || !pdf_data || !slots || !jobs) {
    fprintf(stderr, "enqueue: out of memory\n");
    rc = 1;
    goto out;
  }
  /* Payload size of one job, for the report (encode is what enqueue does). */
  size_t payload_len = 0;
  {
    unsigned char *buf = NULL;
    fill(&jobs[0], &slots[0], &o, o.start, &att);
    if (relayq_job_encode(&jobs[0], &buf, &payload_len, &err) != 0) {
      fprintf(stderr, "enqueue: the %s profile's job does not encode: %s\n", profile_name(o.profile),
              err.message);
      rc = 1;
      goto out;
    }
    free(buf);
  }
  if (relayq_connect(o.redis, o.prefix, &c, &err) != 0) {
    fprintf(stderr, "enqueue: %s\n", err.message);
    rc = 1;
    goto out;
  }
  double t0 = now_s(), deadline = t0 + o.timeout, c0 = cpu_s();
  size_t done = 0, rcpts = 0;
  while (done < o.n) {
    double t = now_s();
    if (t > deadline) {
      fprintf(stderr, "enqueue: gave up after %.0f s with %zu of %zu jobs enqueued\n", o.timeout, done,
              o.n);
      rc = 1;
      goto out;
    }
    size_t want = o.n - done;
    if (o.rate > 0) {
      /* Paced: enqueue what is due by now, in small steps, so created_at
       * is close to the moment each job was pushed. */
      double due = (t - t0) * o.rate;
      size_t due_n = due >= (double)o.n ? o.n : (size_t)due;
      if (due_n <= done) {
        sleep_ms(1);
        continue;
      }
      want = due_n - done;
    }
    if (want > o.batch) want = o.batch;
    for (size_t k = 0; k < want; k++) {
      fill(&jobs[k], &slots[k], &o, o.start + done + k, &att);
      rcpts += jobs[k].to.n;
    }
    int erc = 0;
    if (o.one)
      for (size_t k = 0; k < want && erc == 0; k++) erc = relayq_enqueue(c, &jobs[k], o.queue, NULL, &err);
    else
      erc = relayq_enqueue_many(c, jobs, want, o.queue, &err);
    if (erc != 0) {
      fprintf(stderr, "enqueue: %s\n", err.message);
      rc = 1;
      goto out;
    }
    done += want;
  }
  double secs = now_s() - t0;
  printf("{\"profile\":\"%s\",\"n\":%zu,\"recipients\":%zu,\"seconds\":%.6f,\"rate\":%.1f,"
         "\"target_rate\":%.1f,\"payload_bytes\":%zu,\"batch\":%zu,\"cpu_s\":%.3f,\"api\":\"%s\"}\n",
         profile_name(o.profile), done, rcpts, secs, secs > 0 ? (double)done / secs : 0.0, o.rate,
         payload_len, o.batch, cpu_s() - c0, o.one ? "relayq_enqueue" : "relayq_enqueue_many");
out:
  relayq_close(c);
  free(slots);
  free(jobs);
  free(text_body);
  free(html_body);
  free(pdf_data);
  return rc;
}
