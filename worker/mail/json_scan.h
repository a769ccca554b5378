/*
 * json_scan: reads one top-level string member out of a JSON object held in
 * an untrusted, length-bounded buffer (RFC 8259: objects, strings and their
 * escapes, including UTF-16 surrogate pairs). Pure: no I/O, no allocation,
 * no global state. Mailgun's answers are its users ({"id": "<...>",
 * "message": "Queued. Thank you."}): the Mailgun transport reads "id" and
 * "message", classify reads "message" for its detail sentence.
 *
 * Hand-written: the machine has no JSON development library (only runtime
 * libjansson/libjson-c, no headers, and none is a project dependency), and
 * one string member of a body the transport caps at 64 KB does not justify
 * adding one. It reads the input once, never recurses (nesting is counted,
 * so depth cannot exhaust the stack), never reads past len nor writes past
 * cap, and gives up quietly on anything that is not an object of members.
 * It does not validate the whole document: it stops at the member it wants.
 */
#ifndef RQ_JSON_SCAN_H
#define RQ_JSON_SCAN_H

#include <stddef.h>

/* rq_json_top_string's result when the member is not there. */
#define RQ_JSON_ABSENT (-1)

/* The longest key rq_json_top_string looks for, in bytes. */
#define RQ_JSON_KEY_MAX 63

/* Finds the first top-level member named exactly `key` (compared after
 * decoding, case-sensitively; "identity" is not "id") whose value is a
 * string, in the object that body[0..len) holds (white space around it
 * allowed; body need not be NUL-terminated and may be NULL when len is 0).
 * Decodes that string into dst as UTF-8: whole characters while they fit in
 * cap - 1 bytes, stopping at the first that does not, then a NUL (nothing
 * is written when cap is 0; dst may then be NULL, to ask only whether the
 * member is there). Escapes \n \r \t \b \f decode to those control
 * bytes, \u0000 to a NUL byte; an invalid escape, a lone surrogate or a
 * broken \u decodes as '?'. The bytes are NOT sanitised: callers pass them
 * through rq_text_sanitize before logging or storing them.
 *
 * A string that does not end before len (the body was cut) is half a value:
 * with cut NULL it counts as absent (dst ""); with cut non-NULL, *cut is set
 * to 1 and its decoded start is returned like a whole one (a backslash
 * whose escape was cut off stays a backslash); *cut is 0 otherwise.
 *
 * Returns the number of bytes written to dst (not counting the NUL), or
 * RQ_JSON_ABSENT when body is not an object, has no such member before it
 * stops being well-formed, or that member's value is no string. A key longer
 * than RQ_JSON_KEY_MAX bytes is never found. cap above INT_MAX is treated
 * as INT_MAX. */
int rq_json_top_string(const char *body, size_t len, const char *key, char *dst, size_t cap,
                       int *cut);

/* Like rq_json_top_string for a member whose value is a JSON number
 * (RFC 8259 section 6) or a string holding only digits (some token
 * endpoints send "expires_in": "3599"): its integer part into *out.
 * Returns 0, or RQ_JSON_ABSENT when there is no such member, it is neither,
 * or it is negative or larger than 10^15. */
int rq_json_top_int(const char *body, size_t len, const char *key, long long *out);

/* The index of the first byte at or after i in b[0..len) that is not JSON
 * white space (space, tab, CR, LF); len when there is none (i when i is
 * already past len). b may be NULL when len is 0. Callers use it to tell an
 * object, an HTML page and plain text apart by their first byte. */
size_t rq_json_skip_ws(const char *b, size_t len, size_t i);

#endif
