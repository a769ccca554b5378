/* log: text and JSON log lines (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "json.h"
#include "util.h"

static int log_format = RQ_LOG_TEXT;
static int log_level = RQ_LOG_INFO;
static char log_worker[130] = "";

static const char *LEVEL_NAMES[] = {"debug", "info", "warn", "error"};

void rq_log_init(int format, int level, const char *worker_id) {
  log_format = format;
  log_level = level;
  snprintf(log_worker, sizeof log_worker, "%s", worker_id ? worker_id : "");
}

int rq_log_level_parse(const char *s) {
  for (int i = 0; i < 4; i++)
    if (!strcasecmp(s, LEVEL_NAMES[i])) return i;
  if (!strcasecmp(s, "warning")) return RQ_LOG_WARN;
  return -1;
}

int rq_log_enabled(int level) { return level >= log_level; }

void rq_json_str(struct rq_buf *b, const char *s) {
  size_t n = strlen(s);
  rq_buf_reserve(b, RELAYQ__JSON_STR_MAX(n));
  b->len += relayq__json_str(b->data + b->len, s, n);
  b->data[b->len] = '\0';
}

/* The seconds are formatted once per second (a line per delivery). */
static void timestamp(char *out, size_t cap) {
  static _Thread_local time_t last_s = -1;
  static _Thread_local char secs[32];
  static _Thread_local size_t n;
  struct timeval tv;
  gettimeofday(&tv, NULL);
  if (tv.tv_sec != last_s) {
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(secs, sizeof secs, "%Y-%m-%dT%H:%M:%S", &tm);
    last_s = tv.tv_sec;
  }
  int ms = (int)(tv.tv_usec / 1000);
  if (cap < n + 6) {
    snprintf(out, cap, "%s", secs);
    return;
  }
  memcpy(out, secs, n);
  char *p = out + n;
  *p++ = '.', *p++ = (char)('0' + ms / 100), *p++ = (char)('0' + ms / 10 % 10), *p++ = (char)('0' + ms % 10);
  *p++ = 'Z', *p = '\0';
}

/* Text values with spaces or quotes are quoted so lines stay parseable. */
static void text_value(struct rq_buf *b, const char *v) {
  if (!strpbrk(v, " \"=\t") && *v) {
    for (const char *p = v; *p;) {
      size_t n = strcspn(p, "\r\n");
      rq_buf_append(b, p, n);
      p += n;
      if (*p) rq_buf_putc(b, ' '), p++;
    }
    return;
  }
  rq_json_str(b, v);
}

void rq_log_fields(int level, const char *msg, const struct rq_log_field *fields, size_t n) {
  if (!rq_log_enabled(level)) return;
  char ts[40];
  struct rq_buf b;
  rq_buf_init(&b);
  timestamp(ts, sizeof ts);
  if (log_format == RQ_LOG_JSON) {
    rq_buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"worker\":", ts, LEVEL_NAMES[level]);
    rq_json_str(&b, log_worker);
    rq_buf_puts(&b, ",\"msg\":");
    rq_json_str(&b, msg);
    for (size_t i = 0; i < n; i++) {
      if (!fields[i].value || !*fields[i].value) continue;
      rq_buf_putc(&b, ',');
      rq_json_str(&b, fields[i].key);
      rq_buf_putc(&b, ':');
      rq_json_str(&b, fields[i].value);
    }
    rq_buf_puts(&b, "}\n");
  } else {
    /* "%s %-5s %s" and " %s=" without printf (a line per delivery at info) */
    const char *lv = LEVEL_NAMES[level];
    rq_buf_puts(&b, ts);
    rq_buf_putc(&b, ' ');
    rq_buf_puts(&b, lv);
    for (size_t pad = strlen(lv); pad < 5; pad++) rq_buf_putc(&b, ' ');
    rq_buf_putc(&b, ' ');
    rq_buf_puts(&b, msg);
    for (size_t i = 0; i < n; i++) {
      if (!fields[i].value || !*fields[i].value) continue;
      rq_buf_putc(&b, ' ');
      rq_buf_puts(&b, fields[i].key);
      rq_buf_putc(&b, '=');
      text_value(&b, fields[i].value);
    }
    rq_buf_putc(&b, '\n');
  }
  fwrite(b.data, 1, b.len, stderr);
  rq_buf_free(&b);
}

void rq_logf(int level, const char *fmt, ...) {
  if (!rq_log_enabled(level)) return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  rq_log_fields(level, msg, NULL, 0);
}
