/*
 * html: writing HTML into a growing buffer (worker/base's rq_buf) with
 * every value escaped. The console's pages show what tenants and remote
 * servers wrote (tenant names, server replies, status details), so every
 * string that did not come from this file's caller as a literal goes
 * through html_text or html_attr: never rq_buf_printf with a %s of data.
 */
#ifndef RQ_WEB_HTML_H
#define RQ_WEB_HTML_H

#include <stdint.h>

#include "util.h"

/* Appends s with & < > " ' escaped and control characters (other than
 * tab and newline) shown as U+FFFD; NULL appends nothing. */
void html_text(struct rq_buf *b, const char *s);
/* Same escaping; for attribute values inside double quotes. */
#define html_attr html_text
/* Appends s percent-encoded for a URL query value (RFC 3986 unreserved
 * characters kept). */
void html_url(struct rq_buf *b, const char *s);
/* Appends a time as "<time datetime=ISO title=ISO>3 min ago</time>";
 * ms <= 0 appends "never". now is the reference (ms). */
void html_time(struct rq_buf *b, int64_t ms, int64_t now);
/* "3 min ago", "in 12 s", "just now" into dst. */
void html_relative(char *dst, size_t cap, int64_t ms, int64_t now);
/* "2026-12-06 05:50:50 UTC" into dst. */
void html_absolute(char *dst, size_t cap, int64_t ms);

#endif
