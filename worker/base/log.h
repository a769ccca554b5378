/*
 * log: one line per event on stderr, human-readable ("text") or JSON lines
 * ("json"), with levels. Callers never pass secrets: URLs go through
 * rq_url_mask(), tenant secrets are never formatted at all.
 *
 * A line is a message plus key=value fields; the JSON form carries the
 * same fields as string members, with "ts", "level", "worker" and "msg".
 */
#ifndef RQ_LOG_H
#define RQ_LOG_H

#include <stddef.h>

enum rq_log_level { RQ_LOG_DEBUG, RQ_LOG_INFO, RQ_LOG_WARN, RQ_LOG_ERROR };
enum rq_log_format { RQ_LOG_TEXT, RQ_LOG_JSON };

struct rq_log_field {
  const char *key;
  const char *value; /* NULL or "" fields are left out */
};

void rq_log_init(int format /* enum rq_log_format */, int level, const char *worker_id);
int rq_log_level_parse(const char *s);
int rq_log_enabled(int level);
void rq_log_fields(int level, const char *msg, const struct rq_log_field *fields, size_t n);
void rq_logf(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define RQ_LOG_FIELDS(level, msg, ...)                                                     \
  do {                                                                                     \
    if (rq_log_enabled(level)) {                                                           \
      const struct rq_log_field f_[] = {__VA_ARGS__};                                      \
      rq_log_fields(level, msg, f_, sizeof f_ / sizeof f_[0]);                             \
    }                                                                                      \
  } while (0)

/* Appends s as a quoted JSON string (librelayq's json.h rules). */
struct rq_buf;
void rq_json_str(struct rq_buf *b, const char *s);

#endif
