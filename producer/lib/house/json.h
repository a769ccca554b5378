/*
 * json: the project's one JSON string writer (RFC 8259 section 7), used
 * for status events (event.h), the worker's JSON log lines and the CLI's
 * --json output, so all three escape alike.
 *
 * Escapes '"', '\\', \n, \r, \t and every other control character
 * (\u00XX, DEL included); copies valid UTF-8 (RFC 3629) as is and writes
 * U+FFFD for each byte that does not start a valid sequence, so the output
 * is always valid JSON whatever the input. librelayq's house API
 * (producer/lib/CMakeLists.txt); not installed.
 */
#ifndef RELAYQ_JSON_H
#define RELAYQ_JSON_H

#include <stddef.h>

/* Bytes relayq__json_str may write for n input bytes: the quotes and at
 * most six per byte (\u00XX, \ufffd). */
#define RELAYQ__JSON_STR_MAX(n) (6 * (size_t)(n) + 2)

/* s[0..n) as a quoted JSON string at dst, which has room for
 * RELAYQ__JSON_STR_MAX(n) bytes; not terminated. Returns the length. */
size_t relayq__json_str(char *dst, const char *s, size_t n);

#endif
