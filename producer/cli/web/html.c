/* html: escaping writers for the console's pages (see html.h). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "html.h"

void html_text(struct rq_buf *b, const char *s) {
  if (s == NULL) return;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
    case '&': rq_buf_puts(b, "&amp;"); break;
    case '<': rq_buf_puts(b, "&lt;"); break;
    case '>': rq_buf_puts(b, "&gt;"); break;
    case '"': rq_buf_puts(b, "&quot;"); break;
    case '\'': rq_buf_puts(b, "&#39;"); break;
    default:
      if ((*p < 0x20 && *p != '\t' && *p != '\n') || *p == 0x7f) rq_buf_puts(b, "\xef\xbf\xbd");
      else rq_buf_putc(b, (char)*p);
    }
  }
}

void html_url(struct rq_buf *b, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  if (s == NULL) return;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
        *p == '-' || *p == '.' || *p == '_' || *p == '~') {
      rq_buf_putc(b, (char)*p);
    } else {
      char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
      rq_buf_append(b, e, 3);
    }
  }
}

void html_absolute(char *dst, size_t cap, int64_t ms) {
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(dst, cap, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

void html_relative(char *dst, size_t cap, int64_t ms, int64_t now) {
  int64_t d = now - ms;
  int future = d < 0;
  if (future) d = -d;
  int64_t s = d / 1000;
  char amount[48];
  if (s < 2) {
    snprintf(dst, cap, "just now");
    return;
  }
  if (s < 120) snprintf(amount, sizeof amount, "%lld s", (long long)s);
  else if (s < 7200) snprintf(amount, sizeof amount, "%lld min", (long long)(s / 60));
  else if (s < 172800) snprintf(amount, sizeof amount, "%lld h", (long long)(s / 3600));
  else snprintf(amount, sizeof amount, "%lld days", (long long)(s / 86400));
  snprintf(dst, cap, future ? "in %s" : "%s ago", amount);
}

void html_time(struct rq_buf *b, int64_t ms, int64_t now) {
  if (ms <= 0) {
    rq_buf_puts(b, "<span class=\"muted\">never</span>");
    return;
  }
  char abs[40], rel[48];
  html_absolute(abs, sizeof abs, ms);
  html_relative(rel, sizeof rel, ms, now);
  rq_buf_printf(b, "<time datetime=\"%lld\" title=\"%s\">%s</time>", (long long)ms, abs, rel);
}
