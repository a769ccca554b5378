/*
 * address: email addresses as jobs give them and as headers need them,
 * pure (no I/O).
 *
 * What this module owns:
 *   - parsing one address as a job gives it: a bare addr-spec
 *     ("user@example.com") or a name-addr ("Name <user@example.com>",
 *     '"Smith, John" <j@example.com>'), RFC 5322 section 3.4, without the
 *     obsolete forms (no comments, no routes, no groups);
 *   - validating the addr-spec that goes into the SMTP envelope (RFC 5321
 *     4.1.2 and 4.5.3.1: local part at most 64 octets, address at most 254),
 *     refusing CR, LF and other controls anywhere (the command smuggling
 *     curl's lib/smtp.c warns about), whitespace outside a quoted local
 *     part, a missing '@' and an '@' in the domain. UTF-8 (RFC 6531) is
 *     accepted when well-formed;
 *   - rendering mailboxes for From, To, Cc and Reply-To: a display name
 *     as atoms when it can be, as a quoted-string when it holds specials,
 *     and when it holds non-ASCII as its atoms plus RFC 2047 encoded-words
 *     (RFC 2047 5(3)) for the other words; lists joined by ", " and folded
 *     at 78 columns.
 */
#ifndef RQ_ADDRESS_H
#define RQ_ADDRESS_H

#include <stddef.h>

#include "encode.h"
#include "util.h"

#define RQ_ADDR_MAX 254   /* addr-spec, RFC 5321 path limit less "<>" */
#define RQ_NAME_MAX 998   /* display name after unquoting */

/*
 * Parses in ("Name <addr>", "<addr>" or a bare addr) into addr (the bare
 * addr-spec, for the envelope and the header) and name (the display name,
 * unquoted and unescaped; empty when there is none). name may be NULL when
 * the caller does not want it. Surrounding whitespace is ignored.
 * Returns 0, or -1 when in is not one valid address or a result does not
 * fit its buffer (RQ_ADDR_MAX + 1 and RQ_NAME_MAX + 1 always suffice).
 */
int rq_addr_parse(const char *in, char *addr, size_t addr_cap, char *name,
                  size_t name_cap);

/* The envelope address of in (rq_addr_parse without the name). */
int rq_addr_envelope(const char *in, char *addr, size_t addr_cap);

/* 1 when addr[0..n) is a valid bare addr-spec by the rules above. */
int rq_addr_spec_valid(const char *addr, size_t n);

/*
 * Appends one mailbox to a header being folded by f: `addr` alone when
 * name is NULL or blank, else `name <addr>`. trail octets (e.g. 1 for a
 * list's ",") are kept free on the line after it. addr must be valid
 * (rq_addr_parse output); name is any text (controls are encoded, never
 * written raw).
 */
void rq_addr_fold(struct rq_fold *f, const char *name, const char *addr, size_t trail);

/* A whole header value holding one mailbox, for a field whose name has
 * header_name_len octets ("From" = 4). The caller writes "Name: " before
 * and CRLF after. */
void rq_addr_render(const char *name, const char *addr, size_t header_name_len,
                    struct rq_buf *out);

/*
 * A header value holding list[0..n) (each "Name <addr>" or bare), joined by
 * ", " and folded. Returns 0, or -1 when an entry is not a valid address:
 * then *bad (when not NULL) is its index and out holds a partial value the
 * caller must discard.
 */
int rq_addr_render_list(char *const *list, size_t n, size_t header_name_len,
                        struct rq_buf *out, size_t *bad);

#endif
