/*
 * cmd_send: `relayq send` builds one job from flags and files, enqueues it
 * (status `queued` written atomically with the push, via relayq_enqueue),
 * prints its id, and with --wait polls the status until a final state.
 *
 * Exit: 0 enqueued (with --wait: delivered, state `sent`); 1 failure
 * (with --wait: `partial` or `failed`); 2 bad arguments; 3 --wait ran
 * out of time before a final state.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli.h"

#define POLL_INTERVAL_MS 100

enum {
  O_TENANT = CLI_OPT_FIRST_FREE, O_TO, O_CC, O_BCC, O_FROM, O_FROM_NAME, O_REPLY_TO,
  O_SUBJECT, O_TEXT, O_TEXT_FILE, O_HTML, O_HTML_FILE, O_RAW_FILE, O_ATTACH, O_ID,
  O_QUEUE, O_KIND, O_WAIT, O_HEADER, O_META, O_NOT_BEFORE, O_EXPIRES_AT,
  O_MAX_ATTEMPTS, O_ROUTE,
};

static const struct option send_opts[] = {
    CLI_GLOBAL_LONGOPTS,
    {"tenant", required_argument, NULL, O_TENANT},
    {"to", required_argument, NULL, O_TO},
    {"cc", required_argument, NULL, O_CC},
    {"bcc", required_argument, NULL, O_BCC},
    {"from", required_argument, NULL, O_FROM},
    {"from-name", required_argument, NULL, O_FROM_NAME},
    {"reply-to", required_argument, NULL, O_REPLY_TO},
    {"subject", required_argument, NULL, O_SUBJECT},
    {"text", required_argument, NULL, O_TEXT},
    {"text-file", required_argument, NULL, O_TEXT_FILE},
    {"html", required_argument, NULL, O_HTML},
    {"html-file", required_argument, NULL, O_HTML_FILE},
    {"raw-file", required_argument, NULL, O_RAW_FILE},
    {"attach", required_argument, NULL, O_ATTACH},
    {"id", required_argument, NULL, O_ID},
    {"queue", required_argument, NULL, O_QUEUE},
    {"kind", required_argument, NULL, O_KIND},
    {"wait", required_argument, NULL, O_WAIT},
    {"header", required_argument, NULL, O_HEADER},
    {"meta", required_argument, NULL, O_META},
    {"not-before", required_argument, NULL, O_NOT_BEFORE},
    {"expires-at", required_argument, NULL, O_EXPIRES_AT},
    {"max-attempts", required_argument, NULL, O_MAX_ATTEMPTS},
    {"route", required_argument, NULL, O_ROUTE},
    {NULL, 0, NULL, 0},
};

static void send_usage(void) {
  puts("usage: relayq send --tenant T --to ADDR [--to ADDR ...] [options]\n"
       "\n"
       "Enqueues one message and prints its id.\n"
       "\n"
       "  --tenant T            tenant id (required)\n"
       "  --to/--cc ADDR        recipient, 'user@example.com' or 'Name <user@example.com>'\n"
       "  --bcc ADDR            hidden recipient (bare address); all three repeatable\n"
       "  --from ADDR           sender address (default: the tenant's)\n"
       "  --from-name NAME      sender display name\n"
       "  --reply-to ADDR       Reply-To address\n"
       "  --subject S           subject (UTF-8)\n"
       "  --text S | --text-file F    plain-text body\n"
       "  --html S | --html-file F    HTML body\n"
       "  --raw-file F          a complete RFC 5322 message instead of the above\n"
       "  --attach FILE ...     attach files (repeatable, or several after one --attach;\n"
       "                        type from the extension)\n"
       "  --header 'Name: v'    extra header, e.g. List-Unsubscribe (repeatable)\n"
       "  --meta KEY=VALUE      copied to the status as meta.KEY (repeatable)\n"
       "  --id ID               job id (idempotency key; default: a new id)\n"
       "  --queue NAME          queue (default: default)\n"
       "  --kind K              transactional (default), bulk or auto_reply\n"
       "  --route NAME          one of the tenant's extra SMTP routes\n"
       "  --not-before MS       do not send before this time (ms since epoch)\n"
       "  --expires-at MS       give up if not delivered by then (ms since epoch)\n"
       "  --max-attempts N      attempts before giving up (1-1000)\n"
       "  --wait SECONDS        wait for a final state; exit 0 only when sent,\n"
       "                        1 on partial/failed, 3 on timeout\n"
       "  --redis URL, --prefix P   as for every command");
}

/* A growable array of pointers (addresses, attachments' buffers). */
struct vec {
  void **v;
  size_t n, cap;
};

static int vec_push(struct vec *x, void *p) {
  if (x->n == x->cap) {
    size_t ncap = x->cap ? x->cap * 2 : 8;
    void **nv = realloc(x->v, ncap * sizeof *nv);
    if (nv == NULL) return -1;
    x->v = nv, x->cap = ncap;
  }
  x->v[x->n++] = p;
  return 0;
}

/* Everything one invocation builds. Owns `owned` (file contents, split
 * header/meta copies) and the arrays; the job points into them and argv. */
struct send {
  struct relayq_job job;
  struct vec to, cc, bcc, headers, meta, attach_paths, owned;
  const char *queue;
  const char *text_file, *html_file, *raw_file;
  double wait_s;
  size_t max_bytes;
};

static void send_free(struct send *s) {
  for (size_t i = 0; i < s->owned.n; i++) free(s->owned.v[i]);
  free(s->to.v), free(s->cc.v), free(s->bcc.v), free(s->headers.v), free(s->meta.v);
  free(s->attach_paths.v), free(s->owned.v);
  free(s->job.headers), free(s->job.meta), free(s->job.attachments);
}

/* Content types by extension for --attach; anything else is
 * application/octet-stream. */
static const char *guess_type(const char *path) {
  static const char *const table[][2] = {
      {"pdf", "application/pdf"},
      {"csv", "text/csv"},
      {"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
      {"xls", "application/vnd.ms-excel"},
      {"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
      {"png", "image/png"},
      {"jpg", "image/jpeg"},
      {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},
      {"txt", "text/plain"},
      {"html", "text/html"},
      {"htm", "text/html"},
      {"zip", "application/zip"},
      {"json", "application/json"},
      {"ics", "text/calendar"},
  };
  const char *base = strrchr(path, '/');
  const char *dot = strrchr(base ? base : path, '.');
  if (dot != NULL)
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
      if (strcasecmp(dot + 1, table[i][0]) == 0) return table[i][1];
  return "application/octet-stream";
}

/* "Name: value" -> a kv whose strings are one owned copy split in two. */
static int split_pair(struct send *s, const char *arg, char sep, int trim, struct vec *out) {
  char *copy = strdup(arg);
  if (copy == NULL || vec_push(&s->owned, copy) != 0) {
    free(copy);
    return -1;
  }
  char *mid = strchr(copy, sep);
  if (mid == NULL || mid == copy) return 1;
  *mid++ = '\0';
  if (trim)
    while (*mid == ' ' || *mid == '\t') mid++;
  if (vec_push(out, copy) != 0 || vec_push(out, mid) != 0) return -1;
  return 0;
}

static int parse_args(int argc, char **argv, struct send *s, struct cli_ctx *ctx) {
  int opt;
  long long v;
  /* "--attach a.pdf b.csv" (the contract's "[--attach FILE ...]") as well
   * as repeated --attach: arguments right after an --attach's file are
   * more files. The leading '-' makes getopt return them in order (1). */
  int after_attach = 0;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, "-:h", send_opts, NULL)) != -1) {
    if (opt == 1) {
      if (!after_attach)
        return cli_fail(CLI_USAGE, "send takes no positional argument ('%s'); see 'relayq send --help'.", optarg);
      if (vec_push(&s->attach_paths, optarg) < 0) return cli_fail(CLI_FAIL, "out of memory.");
      continue;
    }
    after_attach = opt == O_ATTACH;
    if (cli_global_opt(opt, optarg, ctx)) continue;
    struct relayq_job *j = &s->job;
    int r = 0;
    switch (opt) {
    case 'h': send_usage(); return -1;
    case O_TENANT: j->tenant = optarg; break;
    case O_TO: r = vec_push(&s->to, optarg); break;
    case O_CC: r = vec_push(&s->cc, optarg); break;
    case O_BCC: r = vec_push(&s->bcc, optarg); break;
    case O_FROM: j->from = optarg; break;
    case O_FROM_NAME: j->from_name = optarg; break;
    case O_REPLY_TO: j->reply_to = optarg; break;
    case O_SUBJECT: j->subject = optarg; break;
    case O_TEXT: j->text = optarg; break;
    case O_TEXT_FILE: s->text_file = optarg; break;
    case O_HTML: j->html = optarg; break;
    case O_HTML_FILE: s->html_file = optarg; break;
    case O_RAW_FILE: s->raw_file = optarg; break;
    case O_ATTACH: r = vec_push(&s->attach_paths, optarg); break;
    case O_ID:
      if (!relayq_valid_id(optarg))
        return cli_fail(CLI_USAGE, "--id must be 1-128 characters of A-Z a-z 0-9 . _ : @ -.");
      j->id = optarg;
      break;
    case O_QUEUE:
      if (!relayq_valid_id(optarg))
        return cli_fail(CLI_USAGE, "--queue must be 1-128 characters of A-Z a-z 0-9 . _ : @ -.");
      s->queue = optarg;
      break;
    case O_KIND:
      if (strcmp(optarg, "transactional") == 0) j->kind = RELAYQ_KIND_TRANSACTIONAL;
      else if (strcmp(optarg, "bulk") == 0) j->kind = RELAYQ_KIND_BULK;
      else if (strcmp(optarg, "auto_reply") == 0) j->kind = RELAYQ_KIND_AUTO_REPLY;
      else return cli_fail(CLI_USAGE, "--kind must be transactional, bulk or auto_reply.");
      break;
    case O_WAIT: {
      char *end = NULL;
      errno = 0;
      s->wait_s = strtod(optarg, &end);
      if (errno || end == optarg || *end != '\0' || !(s->wait_s > 0) || s->wait_s > 86400 * 7)
        return cli_fail(CLI_USAGE, "--wait needs a number of seconds, e.g. --wait 30.");
      break;
    }
    case O_HEADER:
      r = split_pair(s, optarg, ':', 1, &s->headers);
      if (r == 1) return cli_fail(CLI_USAGE, "--header needs 'Name: value'.");
      break;
    case O_META:
      r = split_pair(s, optarg, '=', 0, &s->meta);
      if (r == 1) return cli_fail(CLI_USAGE, "--meta needs KEY=VALUE.");
      break;
    case O_NOT_BEFORE:
      if (cli_parse_int(optarg, 0, INT64_MAX, &v) != 0)
        return cli_fail(CLI_USAGE, "--not-before needs a time in ms since the epoch.");
      j->not_before = v;
      break;
    case O_EXPIRES_AT:
      if (cli_parse_int(optarg, 0, INT64_MAX, &v) != 0)
        return cli_fail(CLI_USAGE, "--expires-at needs a time in ms since the epoch.");
      j->expires_at = v;
      break;
    case O_MAX_ATTEMPTS:
      if (cli_parse_int(optarg, 1, 1000, &v) != 0)
        return cli_fail(CLI_USAGE, "--max-attempts needs a number from 1 to 1000.");
      j->max_attempts = (int)v;
      break;
    case O_ROUTE: j->route = optarg; break;
    default: return cli_bad_option("send", opt, argv);
    }
    if (r < 0) return cli_fail(CLI_FAIL, "out of memory.");
  }
  if (optind < argc)
    return cli_fail(CLI_USAGE, "send takes no positional argument ('%s'); see 'relayq send --help'.",
                    argv[optind]);
  return 0;
}

static int check_args(const struct send *s) {
  const struct relayq_job *j = &s->job;
  if (j->tenant == NULL) return cli_fail(CLI_USAGE, "send needs --tenant.");
  if (s->to.n + s->cc.n + s->bcc.n == 0)
    return cli_fail(CLI_USAGE, "send needs at least one --to, --cc or --bcc.");
  if (j->text && s->text_file) return cli_fail(CLI_USAGE, "give --text or --text-file, not both.");
  if (j->html && s->html_file) return cli_fail(CLI_USAGE, "give --html or --html-file, not both.");
  if (!j->text && !s->text_file && !j->html && !s->html_file && !s->raw_file)
    return cli_fail(CLI_USAGE, "send needs a body: --text, --text-file, --html-file or --raw-file.");
  return 0;
}

/* Reads a body file as text: NUL bytes would cut it short silently. */
static int read_text(struct send *s, const char *path, char **dst) {
  unsigned char *buf;
  size_t len;
  int rc = cli_read_file(path, s->max_bytes, &buf, &len);
  if (rc != 0) return rc;
  if (vec_push(&s->owned, buf) != 0) {
    free(buf);
    return cli_fail(CLI_FAIL, "out of memory.");
  }
  if (memchr(buf, '\0', len) != NULL)
    return cli_fail(CLI_USAGE, "%s contains NUL bytes; it is not a text file.", path);
  *dst = (char *)buf;
  return 0;
}

/* Turns the collected flags and files into the job's arrays. */
static int build_job(struct send *s) {
  struct relayq_job *j = &s->job;
  int rc;
  j->v = RELAYQ_JOB_VERSION;
  j->to = (struct relayq_strv){(char **)s->to.v, s->to.n};
  j->cc = (struct relayq_strv){(char **)s->cc.v, s->cc.n};
  j->bcc = (struct relayq_strv){(char **)s->bcc.v, s->bcc.n};
  if (s->text_file && (rc = read_text(s, s->text_file, &j->text)) != 0) return rc;
  if (s->html_file && (rc = read_text(s, s->html_file, &j->html)) != 0) return rc;
  if (s->raw_file) {
    unsigned char *buf;
    if ((rc = cli_read_file(s->raw_file, s->max_bytes, &buf, &j->raw_len)) != 0) return rc;
    if (vec_push(&s->owned, buf) != 0) {
      free(buf);
      return cli_fail(CLI_FAIL, "out of memory.");
    }
    j->raw = buf;
  }
  size_t nh = s->headers.n / 2, nm = s->meta.n / 2, na = s->attach_paths.n;
  j->headers = nh ? calloc(nh, sizeof *j->headers) : NULL;
  j->meta = nm ? calloc(nm, sizeof *j->meta) : NULL;
  j->attachments = na ? calloc(na, sizeof *j->attachments) : NULL;
  if ((nh && !j->headers) || (nm && !j->meta) || (na && !j->attachments))
    return cli_fail(CLI_FAIL, "out of memory.");
  for (size_t i = 0; i < nh; i++)
    j->headers[i] = (struct relayq_kv){s->headers.v[2 * i], s->headers.v[2 * i + 1]};
  for (size_t i = 0; i < nm; i++)
    j->meta[i] = (struct relayq_kv){s->meta.v[2 * i], s->meta.v[2 * i + 1]};
  j->n_headers = nh;
  j->n_meta = nm;
  for (size_t i = 0; i < na; i++) {
    const char *path = s->attach_paths.v[i];
    struct relayq_attachment *a = &j->attachments[i];
    if ((rc = cli_read_file(path, s->max_bytes, &a->data, &a->size)) != 0) return rc;
    if (vec_push(&s->owned, a->data) != 0) {
      free(a->data);
      return cli_fail(CLI_FAIL, "out of memory.");
    }
    const char *base = strrchr(path, '/');
    a->filename = (char *)(base ? base + 1 : path);
    a->content_type = (char *)guess_type(path);
    j->n_attachments = i + 1;
  }
  return 0;
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void print_final(const struct relayq_status *st) {
  const char *state = relayq_status_field(st, "state");
  const char *code = relayq_status_field(st, "last_code");
  const char *enh = relayq_status_field(st, "last_enhanced");
  const char *error = relayq_status_field(st, "error");
  const char *detail = relayq_status_field(st, "detail");
  printf("state=%s", state);
  if (code && *code) printf(" code=%s", code);
  if (enh && *enh) printf(" enhanced=%s", enh);
  if (error && *error) printf(" error=%s", error);
  if (detail && *detail) {
    fputs(" detail=", stdout);
    for (const char *p = detail; *p; p++) putchar(*p == '\n' || *p == '\r' ? ' ' : *p);
  }
  putchar('\n');
}

/* Polls the status every POLL_INTERVAL_MS until a final state or the
 * deadline; the loop is bounded by the deadline. */
static int wait_final(struct relayq_client *c, const char *id, double wait_s) {
  int64_t deadline = mono_ms() + (int64_t)(wait_s * 1000);
  const char *last = "queued";
  char last_buf[32];
  for (;;) {
    struct relayq_status *st = NULL;
    struct relayq_error err;
    int rc = relayq_status_get(c, id, &st, &err);
    if (rc != 0 && rc != RELAYQ_ENOT_FOUND) return cli_fail(CLI_FAIL, "%s", err.message);
    const char *state = st ? relayq_status_field(st, "state") : NULL;
    if (relayq_state_is_final(state)) {
      print_final(st);
      int sent = strcmp(state, "sent") == 0;
      if (sent) {
        relayq_status_free(st);
        return CLI_OK;
      }
      /* The outcome stays on stdout for scripts; why it failed goes to
       * stderr like every other failing command's reason. */
      const char *error = relayq_status_field(st, "error");
      const char *detail = relayq_status_field(st, "detail");
      char why[600];
      snprintf(why, sizeof why, "%s", detail && *detail ? detail : "no detail recorded");
      for (char *p = why; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
      int failed = cli_fail(CLI_FAIL, "job %s %s (%s): %s", id, state, error && *error ? error : "no error category",
                        why);
      relayq_status_free(st);
      return failed;
    }
    if (state) {
      snprintf(last_buf, sizeof last_buf, "%s", state);
      last = last_buf;
    }
    relayq_status_free(st);
    int64_t left = deadline - mono_ms();
    if (left <= 0)
      return cli_fail(CLI_TIMEOUT, "job %s is still %s after %g seconds.", id, last, wait_s);
    int64_t nap = left < POLL_INTERVAL_MS ? left : POLL_INTERVAL_MS;
    struct timespec ts = {(time_t)(nap / 1000), (long)(nap % 1000) * 1000000L};
    nanosleep(&ts, NULL);
  }
}

int cmd_send(int argc, char **argv, struct cli_ctx *ctx) {
  struct send s;
  memset(&s, 0, sizeof s);
  s.max_bytes = cli_max_job_bytes();
  char id[40];
  int rc = parse_args(argc, argv, &s, ctx);
  if (rc != 0) {
    rc = rc < 0 ? CLI_OK : rc; /* -1: --help was printed */
    goto out;
  }
  if ((rc = check_args(&s)) != 0 || (rc = build_job(&s)) != 0) goto out;
  if (s.job.id == NULL) {
    relayq_id_new(id);
    s.job.id = id;
  }
  /* Validate and size-check here so argument mistakes exit 2 before any
   * connection, and an oversized job is refused before it reaches the
   * worker (which would dead-letter it). */
  struct relayq_error err;
  unsigned char *payload = NULL;
  size_t len = 0;
  if (relayq_job_encode(&s.job, &payload, &len, &err) != 0) {
    rc = cli_fail(err.code == RELAYQ_EINVALID_JOB ? CLI_USAGE : CLI_FAIL, "%s", err.message);
    goto out;
  }
  free(payload);
  if (len > s.max_bytes) {
    rc = cli_fail(CLI_FAIL, "the job is %zu bytes, over the limit of %zu (RELAYQ_MAX_JOB_BYTES).",
                  len, s.max_bytes);
    goto out;
  }
  struct relayq_client *c = cli_client(ctx);
  if (c == NULL) {
    rc = CLI_FAIL;
    goto out;
  }
  char used[RELAYQ_ID_MAX + 1];
  if (relayq_enqueue(c, &s.job, s.queue, used, &err) != 0) {
    rc = cli_fail(CLI_FAIL, "%s", err.message);
    goto out;
  }
  if (err.message[0] != '\0') cli_fail(CLI_OK, "%s", err.message); /* id already existed */
  printf("%s\n", used);
  fflush(stdout);
  rc = s.wait_s > 0 ? wait_final(c, used, s.wait_s) : CLI_OK;
out:
  send_free(&s);
  return rc;
}
