/*
 * raw_from: the From header of a producer's complete message (job `raw`),
 * read and replaced, pure (no I/O).
 *
 * What this module owns:
 *   - finding the header fields of a CRLF-normalised RFC 5322 message
 *     (section 2.2: a field starts at a line that does not begin with
 *     space or tab, continuation lines do; the header ends at the first
 *     empty line);
 *   - reading the one mailbox of its From field (RFC 5322 3.6.2);
 *   - writing the message again with every From field replaced by one
 *     the platform chose, and a Reply-To added when the message has none.
 *
 * Decisions:
 *   - A message with no From, several From fields, or a From that is not
 *     exactly one mailbox (a group, a list, unparseable) has no readable
 *     sender: rq_raw_from_addr says so and the caller treats it as not
 *     vouched for, so it is rewritten like a spoofed one.
 *   - Field names are matched case-insensitively, with white space before
 *     the colon allowed (RFC 5322 4.5.3 obsolete syntax), since receivers
 *     read such fields too.
 *   - Nothing else in the message changes (the body, other fields and
 *     their order stay), so a DKIM signature made after the rewrite covers
 *     what is sent.
 */
#ifndef RQ_RAW_FROM_H
#define RQ_RAW_FROM_H

#include <stddef.h>

#include "util.h"

/* The address of msg's single From mailbox into addr (cap >= 255).
 * Returns 1 found, 0 none readable (see above). *has_reply_to (may be
 * NULL) gets 1 when the message has a Reply-To field. */
int rq_raw_from_addr(const char *msg, size_t len, char *addr, size_t cap, int *has_reply_to);

/* Appends msg to out with every From field removed and one
 * "From: name <from_addr>" in place of the first (at the top when there
 * was none), then "Reply-To: reply_to" after it when reply_to is not NULL
 * and msg has no Reply-To. name may be NULL. from_addr and reply_to must
 * be valid addr-specs. */
void rq_raw_put_from(const char *msg, size_t len, const char *name, const char *from_addr,
                     const char *reply_to, struct rq_buf *out);

#endif
