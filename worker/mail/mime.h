/*
 * mime: builds the RFC 5322 message for a job, pure (no I/O).
 *
 * What this module owns:
 *   - the header block (RFC 5322 section 3.6): From, To, Cc, Reply-To,
 *     Subject, Date, Message-ID, MIME-Version, the job's extra headers;
 *     never Bcc (those recipients exist only in the envelope);
 *   - the MIME structure (RFC 2045, RFC 2046): text/plain, text/html,
 *     multipart/alternative for both, multipart/mixed around the body and
 *     base64 attachments (RFC 2183 Content-Disposition, RFC 2231 filename);
 *   - the transfer encoding of each text part: 7bit when it is ASCII with
 *     lines of at most 998 octets and no "=_" (the boundary prefix), else
 *     quoted-printable;
 *   - the tenant's signature and logo, the Message-ID derived from the job
 *     id, and the Date;
 *   - raw messages (job->raw): line endings normalised, nothing else.
 *
 * Decisions:
 *   - A job without a subject gets an empty "Subject: " header, as most
 *     mail clients write one: some filters score a missing Subject (e.g.
 *     SpamAssassin's MISSING_SUBJECT) but not an empty one.
 *   - A job with only Bcc recipients gets "To: undisclosed-recipients:;"
 *     (an empty group, RFC 5322 3.4), as sendmail and most MTAs add.
 *   - A job with neither text nor html gets an empty text/plain body.
 *   - Extra headers the builder writes itself (the list the job validator
 *     refuses, plus anything starting "Content-") are skipped, so a job
 *     can neither duplicate them nor reveal Bcc.
 *   - Output is a pure function of the input: boundaries derive from the
 *     Message-ID and a counter, so a retry sends the same bytes (and the
 *     same DKIM body hash).
 *   - Every line ends in CRLF and is at most 998 octets; header lines are
 *     folded at 78 where the content allows.
 */
#ifndef RQ_MIME_H
#define RQ_MIME_H

#include <relayq/relayq.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Everything the builder needs besides the job; all borrowed for the call
 * and not kept. */
struct rq_mime_input {
  const struct relayq_job *job;
  const char *from_addr;      /* resolved sender address (bare), required */
  const char *from_name;      /* display name or NULL */
  const char *reply_to;       /* bare address or NULL */
  const char *signature_text; /* appended to the text part after "-- " or NULL */
  const char *signature_html; /* appended at the end of the HTML body or NULL */
  const char *logo_url;       /* <img> placed above the HTML content or NULL */
  const char *message_id;     /* full "<...>" value, from rq_mime_message_id */
  int64_t date_ms;            /* Date header, ms since epoch */
};

/*
 * Builds the complete message (headers and body, CRLF line endings, no line
 * over 998 octets) and appends it to out. Returns 0, or -1 with err (a
 * sentence naming the field) when the sender, Reply-To or a To/Cc address
 * is not valid, an extra header name is not RFC 5322 ftext, or a required
 * input is missing; out is then as it was before the call. Header values
 * are never written raw: control characters in them are encoded, so no
 * input can add a header line.
 */
int rq_mime_build(const struct rq_mime_input *in, struct rq_buf *out, char *err,
                  size_t errlen);

struct rq_msg;

/* rq_mime_build into a segmented message (msg.h): the same bytes, but
 * each attachment stays in the job (borrowed: in->job's attachment data
 * must outlive m's use) and is base64-encoded only while m is read. m is
 * reset first and finished after; on error it is left empty. */
int rq_mime_build_msg(const struct rq_mime_input *in, struct rq_msg *m, char *err, size_t errlen);

/* The length of raw's header block through the empty line that ends it
 * (a line break being CRLF, bare CR or bare LF, as rq_mime_raw reads
 * them), or len when there is none: rq_mime_raw(raw[0..head]) followed by
 * rq_mime_raw(raw[head..len]) is rq_mime_raw(raw), never splitting a
 * CRLF. The worker normalises (and may rewrite) only the head and sends
 * the body as a segment of the message (rq_msg_add_crlf). */
size_t rq_mime_raw_head(const unsigned char *raw, size_t len);

/* rq_mime_raw into m (reset first, finished after): one literal segment. */
void rq_mime_raw_msg(const unsigned char *raw, size_t len, struct rq_msg *m);

/* For job->raw: appends raw with bare LF and bare CR turned into CRLF, and
 * nothing else changed. */
void rq_mime_raw(const unsigned char *raw, size_t len, struct rq_buf *out);

/* Appends "<" + id + "@" + domain + ">". The job id charset is
 * [A-Za-z0-9._:@-]; ':' and '@' (and '.' where a dot-atom forbids it: first,
 * last, doubled) become '=' + 2 hex digits, which is injective because ids
 * have no '='. A domain that is not a plain ASCII hostname becomes
 * "relayq.invalid". */
void rq_mime_message_id(const char *job_id, const char *domain, struct rq_buf *out);

/* RFC 5322 3.3 date-time in UTC, e.g. "Sun, 22 Nov 2026 07:30:00 +0000". */
void rq_mime_date(int64_t ms, char out[40]);

#endif
