/*
 * internal: helpers shared by librelayq's own files, never installed.
 *
 * Owns the error-filling convention (one place formats struct
 * relayq_error) and the small text predicates that the codec, the key
 * builder and the client all need. Names start with `relayq__` (libuv's
 * `uv__`): private to the library, not part of relayq.h.
 */
#ifndef RELAYQ_INTERNAL_H
#define RELAYQ_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>

#include "relayq/relayq.h"
#include "text.h"

/* Bounds the contract leaves to the implementation (docs/producers.md). */
#define RELAYQ__MAX_SUBJECT 8192   /* subject and from_name, bytes */
#define RELAYQ__MAX_FILENAME 255   /* attachment filename, bytes */
#define RELAYQ__MAX_CTYPE 255      /* attachment content_type, bytes */
#define RELAYQ__MAX_META_KEY 128   /* meta key, bytes */
#define RELAYQ__MAX_ATTEMPTS 1000  /* max_attempts upper bound */
#define RELAYQ__MAX_ATTEMPTS_DONE 1000000 /* "_attempts" upper bound */

/*
 * Fills err (when not NULL) with code and a printf-formatted sentence and
 * returns code, so callers write `return relayq__fail(err, ...)`. Leaves
 * err->id and err->tenant alone (the decoder fills those itself). The
 * message must never contain a secret.
 */
int relayq__fail(struct relayq_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* When redis_error is a server-wide write refusal (relayq_redis_refusal),
 * fills err with RELAYQ_EREFUSED, what it means, Redis's words and what
 * to do, and returns RELAYQ_EREFUSED; otherwise returns 0 and leaves err. */
int relayq__refused(struct relayq_error *err, const char *redis_error);

/* Resets err to success with empty message, id and tenant. NULL is fine. */
void relayq__error_clear(struct relayq_error *err);

/* relayq_job_encode into a caller's buffer, cleared first and kept (the
 * bulk enqueue reuses one for every job instead of a malloc each). */
struct msgpack_sbuffer;
int relayq__job_encode_sb(const struct relayq_job *job, struct msgpack_sbuffer *sb,
                          struct relayq_error *err);

#endif
