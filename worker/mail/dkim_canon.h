/*
 * dkim_canon: the pure text side of DKIM signing (RFC 6376), no crypto and
 * no I/O, so unit tests reach every rule directly:
 *
 *   - splitting a message into its header block and body, and walking the
 *     header fields (RFC 5322 2.2: a field is its first line plus every
 *     following line that starts with SP or HTAB);
 *   - "relaxed" header canonicalisation (RFC 6376 3.4.2) and "relaxed"
 *     body canonicalisation (RFC 6376 3.4.4), the latter streamed into a
 *     sink in one pass without per-line allocation;
 *   - the h= list: which fields are signed, once per instance, with
 *     over-signing (RFC 6376 8.15: listing a name once more than it occurs
 *     stops anyone adding that field later), and picking the instances an
 *     h= list names bottom-up (RFC 6376 5.4.2);
 *   - the DKIM-Signature header text (RFC 6376 3.5), folded at 78 columns
 *     (RFC 5322 2.1.1), in two steps: everything up to "b=", which is what
 *     gets signed, then the b= value.
 *
 * Ownership: struct rq_dkim_field points into the caller's message and is
 * valid while it is; every output goes to a caller's rq_buf or sink.
 */
#ifndef RQ_DKIM_CANON_H
#define RQ_DKIM_CANON_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Line length the DKIM-Signature header is folded at (RFC 5322 2.1.1). */
#define RQ_DKIM_FOLD 78
/* Instances of one name that h= covers; further (upper) ones stay
 * unsigned. Bounds the work for hostile raw messages. */
#define RQ_DKIM_MAX_INSTANCES 8

/* One header field inside a message (borrowed). */
struct rq_dkim_field {
  const char *p;   /* its first byte (the name) */
  size_t len;      /* through its last line, without that line's CRLF */
  size_t name_len; /* the name, without WSP before the colon */
};

/* A name to sign when present; oversign: list it once more than it occurs. */
struct rq_dkim_hname {
  const char *name; /* lower case */
  int oversign;
};

/* The header set relayq signs: from (over-signed), to, cc, subject, date,
 * message-id, reply-to, mime-version, content-type,
 * content-transfer-encoding, list-unsubscribe, list-unsubscribe-post. */
extern const struct rq_dkim_hname rq_dkim_sign_headers[];
extern const size_t rq_dkim_n_sign_headers;

/* Receives canonical bytes (e.g. EVP_DigestUpdate). */
typedef void (*rq_dkim_sink)(void *arg, const void *p, size_t n);

/* Finds the end of the header block: *hdr_len is its length including
 * the CRLF of its last field, *body_off where the body starts (after the
 * empty line). A message without an empty line is all header, with an
 * empty body (*hdr_len == *body_off == len). */
void rq_dkim_split(const char *msg, size_t len, size_t *hdr_len, size_t *body_off);

/* Walks the header fields of hdr[0..hdr_len): fills *f with the field at
 * *pos (start at 0) and advances *pos past it; returns 1, or 0 at the
 * end. Lines that are not fields (no colon on the first line, a name
 * that is not RFC 5322 ftext such as an mbox "From " line, a
 * continuation with no field before it) are skipped. */
int rq_dkim_field_next(const char *hdr, size_t hdr_len, size_t *pos, struct rq_dkim_field *f);

/* Appends the relaxed form of one field (RFC 6376 3.4.2): lower-case name,
 * ':', the value unfolded, WSP runs as one SP, no WSP at either end, then
 * CRLF when crlf is 1. f->len may include the field's own folding CRLFs. */
void rq_dkim_canon_header(struct rq_buf *out, const struct rq_dkim_field *f, int crlf);

/* Streams the relaxed form of body[0..len) (RFC 6376 3.4.4) into sink:
 * WSP at line ends dropped, other WSP runs one SP, empty lines at the end
 * dropped, a CRLF added after a last line that lacks one; an empty body
 * stays empty. Calls sink with chunks of at most 4 KB. */
void rq_dkim_canon_body(const char *body, size_t len, rq_dkim_sink sink, void *arg);

/* The same, streamed: a body fed in chunks split anywhere (a CRLF across
 * two chunks included) gives the bytes rq_dkim_canon_body gives for the
 * whole. Plain memory, lives on the caller's stack: init, feed..., end. */
struct rq_dkim_body {
  rq_dkim_sink sink;
  void *arg;
  size_t empty;   /* empty lines held back: they count only if content follows */
  int has, wsp;   /* the current line has content; a WSP run is pending */
  int cr;         /* the last byte fed was a CR */
  size_t n;
  char buf[4096]; /* canonical bytes not yet given to sink */
};
void rq_dkim_body_init(struct rq_dkim_body *st, rq_dkim_sink sink, void *arg);
void rq_dkim_body_feed(struct rq_dkim_body *st, const char *p, size_t len);
void rq_dkim_body_end(struct rq_dkim_body *st);

/* Appends to h the colon-separated h= value for hdr: each name of names
 * that occurs, once per instance (at most RQ_DKIM_MAX_INSTANCES), plus
 * once more when oversign is set (even when absent). Returns the number
 * of entries. */
size_t rq_dkim_header_list(const char *hdr, size_t hdr_len, const struct rq_dkim_hname *names, size_t n_names,
                           struct rq_buf *h);

/* Appends, in the order of the colon-separated list h[0..h_len), the
 * relaxed form (with CRLF) of the field each entry selects: the lowest
 * instance of that name not yet used (RFC 6376 5.4.2); an entry with no
 * instance left adds nothing. Names compare case-insensitively and may
 * carry FWS around them, as in a verifier's input. */
void rq_dkim_canon_signed(const char *hdr, size_t hdr_len, const char *h, size_t h_len, struct rq_buf *out);

/* The tags of one signature (all borrowed; domain and selector are
 * trusted to hold no ';', CR or LF: the caller validates them). */
struct rq_dkim_tags {
  const char *algo;     /* "rsa-sha256" or "ed25519-sha256" */
  const char *domain;   /* d= */
  const char *selector; /* s= */
  int64_t time;         /* t=, seconds since the epoch */
  const char *h;        /* h=, from rq_dkim_header_list */
  const char *bh;       /* bh=, base64 */
};

/* Appends "DKIM-Signature: v=1; a=..; c=relaxed/relaxed; d=..; s=..; t=..;
 * h=..; bh=..;" folded at RQ_DKIM_FOLD (h= breaks after a colon), then
 * a folded line " b=", and returns the column after "b=". What it wrote, canonicalised without
 * CRLF, is the last input of the signature (RFC 6376 3.7). */
size_t rq_dkim_sig_begin(struct rq_buf *out, const struct rq_dkim_tags *t);

/* Appends the b= value (base64, NUL-terminated) folded at RQ_DKIM_FOLD
 * starting from column col, then the header's CRLF. */
void rq_dkim_sig_end(struct rq_buf *out, size_t col, const char *b64);

#endif
