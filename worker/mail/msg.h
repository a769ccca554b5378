/*
 * msg: an outgoing message held as segments and produced in chunks, pure
 * (no I/O), so a 10 MB attachment is never held a second time as base64.
 *
 * What this module owns:
 *   - struct rq_msg: the message as a list of segments, in order:
 *     literal bytes (headers, text and HTML parts, MIME boundaries; all in
 *     one owned buffer) and base64 segments, whose input bytes are borrowed
 *     (the attachment data of the decoded job, which points into the job's
 *     payload: relayq_job_decode_ref), and line-end-normalised segments
 *     (the body of a raw message, read with bare CR/LF as CRLF);
 *   - struct rq_msg_cursor: reading the message from any offset in chunks
 *     of any size; a base64 segment is encoded a line at a time while it is
 *     read, into the caller's buffer (or one 80-byte line when the caller's
 *     room ends inside a line);
 *   - the message's length and whether it has 8-bit bytes, known before
 *     the first byte is read (SMTP's SIZE= and BODY=8BITMIME need them).
 *
 * Byte-identical to the whole-message builder: a base64 segment reads as
 * rq_b64_lines(data, n) without its last CRLF (the MIME delimiter that
 * follows brings its own), which is what rq_mime_build writes.
 *
 * Ownership: the rq_msg owns its literal buffer and segment array (it
 * points into the struct itself for up to 3 segments: never copy an
 * rq_msg, only pointers to it); a
 * base64 segment's input is borrowed and must stay unchanged until the
 * message is freed or reset (for the worker: the job context owns both
 * the payload and the message and frees the message first). A cursor
 * borrows its message and is plain memory (embed it, no free).
 */
#ifndef RQ_MSG_H
#define RQ_MSG_H

#include <stddef.h>

#include "util.h"

enum rq_msg_kind { RQ_MSG_LIT, RQ_MSG_B64, RQ_MSG_CRLF };

struct rq_msg_seg {
  enum rq_msg_kind kind;
  size_t off;               /* RQ_MSG_LIT: start in lit */
  const unsigned char *src; /* RQ_MSG_B64, RQ_MSG_CRLF: input (borrowed) */
  size_t n;                 /* input bytes (LIT: the bytes themselves) */
  size_t out_len;           /* bytes this segment reads as */
};

struct rq_msg {
  struct rq_buf lit;        /* every literal byte, segments in any order */
  struct rq_msg_seg *seg;   /* inline_seg, or owned when more are needed */
  struct rq_msg_seg inline_seg[3]; /* a text message needs 1, one attachment 3: no malloc */
  size_t n_seg, cap_seg;
  size_t open;              /* start in lit of the literal run not yet a segment */
  size_t len;               /* total bytes, valid after rq_msg_finish */
  int has_8bit;             /* any byte >= 0x80, valid after rq_msg_finish */
};

void rq_msg_init(struct rq_msg *m);
void rq_msg_free(struct rq_msg *m);
/* Empties m (keeps memory): the builder starts again. */
void rq_msg_reset(struct rq_msg *m);

/* While building: literal bytes are appended to m->lit directly (every
 * rq_buf writer works); this closes the literal run so far and adds n
 * input bytes at p (borrowed) as base64 lines without the last CRLF.
 * Nothing for n == 0. */
void rq_msg_add_b64(struct rq_msg *m, const void *p, size_t n);

/* Adds n bytes at p (borrowed) as they are, except that bare CR and bare
 * LF read as CRLF (rq_mime_raw's rule: the body of a raw message). */
void rq_msg_add_crlf(struct rq_msg *m, const void *p, size_t n);

/* Closes the last literal run and computes len and has_8bit. */
void rq_msg_finish(struct rq_msg *m);

/* Puts p[0..n) in front of everything (the DKIM-Signature header). Call
 * after rq_msg_finish; len and has_8bit are updated. */
void rq_msg_prepend(struct rq_msg *m, const void *p, size_t n);

/* The bytes of the first segment when it is literal (NULL, 0 otherwise):
 * the header block lives there for every message the builder makes. */
const char *rq_msg_first_lit(const struct rq_msg *m, size_t *n);

/* Appends the whole message to out: tests, and consumers without a
 * streaming interface. */
void rq_msg_flatten(const struct rq_msg *m, struct rq_buf *out);

/* Output bytes of rq_b64_lines(n bytes) minus its last CRLF; 0 for 0. */
size_t rq_msg_b64_len(size_t n);

struct rq_msg_cursor {
  const struct rq_msg *m; /* borrowed */
  size_t seg;             /* current segment */
  size_t pos;             /* bytes of it already read */
  size_t in;              /* B64: input bytes encoded so far */
  unsigned char line[80]; /* B64: one encoded line the caller had no room for;
                             CRLF: line_len 1 when the LF of a CRLF is owed */
  size_t line_len, line_off;
  size_t total;           /* bytes read from the start */
};

/* A cursor at offset 0 of m (finished). */
void rq_msg_cursor_init(struct rq_msg_cursor *c, const struct rq_msg *m);

/* Copies the next bytes into out, at most cap; returns how many, 0 only
 * at the end. */
size_t rq_msg_read(struct rq_msg_cursor *c, char *out, size_t cap);

/* The next bytes without copying literal ones: a pointer into m's
 * literal buffer (the rest of a literal segment), or into buf (up to cap
 * bytes of an encoded segment), with their count in *len; NULL at the
 * end. The pointer is valid until the next call. */
const char *rq_msg_next(struct rq_msg_cursor *c, char *buf, size_t cap, size_t *len);

/* Moves to offset off (0..len). Returns 0, or -1 when off is past the
 * end. Costs the bytes skipped inside one segment at most (a base64
 * segment seeks by whole lines). */
int rq_msg_seek(struct rq_msg_cursor *c, size_t off);

#endif
