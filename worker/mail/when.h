/*
 * when: "when does this happen" for a person reading a status detail, e.g.
 * "in 58 s (06:52:10 UTC)". A raw epoch in ms (next_attempt_at) is for
 * programs; a detail says the same in words a person can act on.
 *
 * Pure: the caller passes the time.
 */
#ifndef RQ_WHEN_H
#define RQ_WHEN_H

#include <stddef.h>
#include <stdint.h>

/* Writes "in N s (HH:MM:SS UTC)" (min, h, d for longer waits; the date is
 * added when it is not today's) for the time at_ms as seen at now_ms;
 * "now" when it is not in the future. Always NUL-terminates (cap > 0);
 * returns dst. */
char *rq_when(char *dst, size_t cap, int64_t at_ms, int64_t now_ms);

#endif
