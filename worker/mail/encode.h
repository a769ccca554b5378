/*
 * encode: the byte-level encodings of Internet mail, pure (no I/O).
 *
 * What this module owns:
 *   - base64 bodies in 76-character lines (RFC 2045 section 6.8), on top of
 *     OpenSSL's EVP_EncodeBlock;
 *   - quoted-printable bodies (RFC 2045 section 6.7);
 *   - header folding (RFC 5322 sections 2.1.1, 2.2.3 and 3.2.2): lines of at
 *     most 78 characters where the content allows, and never more than 998;
 *   - RFC 2047 encoded-words for non-ASCII header text, B or Q, each at
 *     most 75 characters and never splitting a UTF-8 character;
 *   - RFC 2231 (with the RFC 5987 attr-char set) MIME parameter values, with
 *     continuations for long values;
 *   - UTF-8 and ASCII checks.
 *
 * Every function appends to a caller's struct rq_buf (util.h) and never
 * fails: the buffer aborts the daemon on out-of-memory, by policy. Nothing
 * here allocates per line; sizes are reserved ahead.
 */
#ifndef RQ_ENCODE_H
#define RQ_ENCODE_H

#include <stddef.h>

#include "util.h"

#define RQ_FOLD_WIDTH 78   /* RFC 5322 2.1.1: SHOULD NOT exceed 78 + CRLF */
#define RQ_LINE_MAX 998    /* RFC 5322 2.1.1: MUST NOT exceed 998 + CRLF */
#define RQ_EW_MAX 75       /* RFC 2047 section 2: one encoded-word */
#define RQ_B64_LINE 76     /* RFC 2045 6.8: at most 76 characters a line */

/* 1 when all n bytes are below 0x80. */
int rq_is_ascii(const char *s, size_t n);

/* 1 when the n bytes are well-formed UTF-8 (RFC 3629: no overlong forms,
 * no surrogates, nothing above U+10FFFF). */
int rq_utf8_valid(const char *s, size_t n);

/* Length of the UTF-8 character starting at s (at most n bytes): 1-4, or 1
 * for a byte that does not start a well-formed sequence, so a caller
 * walking characters always advances and never splits a valid one. */
size_t rq_utf8_char_len(const char *s, size_t n);

/* Appends base64 of p[0..n) in lines of exactly 76 characters (the last
 * may be shorter), each ending in CRLF. Nothing for n == 0. */
void rq_b64_lines(const void *p, size_t n, struct rq_buf *out);

/* Appends s[0..n) quoted-printable encoded as text: CRLF, bare LF and bare
 * CR in the input are hard line breaks and come out as CRLF; '=' and every
 * byte outside printable ASCII are =XX; a space or tab before a line break
 * or at the end is encoded so transports cannot strip it; soft line breaks
 * keep every encoded line at most 76 characters. No CRLF is added at the
 * end beyond those in the input. */
void rq_qp_encode(const char *s, size_t n, struct rq_buf *out);

/*
 * A header field body being written with folding. The caller writes
 * "Name: " itself, then calls rq_fold_init with the name's length, so the
 * writer knows the column. Lives on the caller's stack; borrows out.
 */
struct rq_fold {
  struct rq_buf *out; /* borrowed */
  size_t col;         /* octets on the current line so far */
  int started;        /* 0 until something of the value has been written */
};

void rq_fold_init(struct rq_fold *f, struct rq_buf *out, size_t header_name_len);

/* Writes the whitespace ws[0..ws_len) that separates the next token (of
 * `need` octets) from what precedes it, first breaking the line (CRLF)
 * when the token would pass column 78 and a break helps. ws_len == 0 means
 * "no separator"; a break then uses one space. At the start of the value a
 * break is made only when ws is given. */
void rq_fold_space(struct rq_fold *f, const char *ws, size_t ws_len, size_t need);

/* Appends token bytes (no CR or LF) to the current line. */
void rq_fold_put(struct rq_fold *f, const char *p, size_t n);

/* rq_fold_space(f, ws, ws_len, n) then rq_fold_put(f, p, n). */
void rq_fold_token(struct rq_fold *f, const char *ws, size_t ws_len,
                   const char *p, size_t n);

/* Appends text[0..n) as one or more RFC 2047 encoded-words ("=?UTF-8?B?" or
 * "?Q?", whichever is shorter for this text; Q uses the RFC 2047 5(3)
 * "phrase" alphabet so the words are valid in display names too). The
 * first word is preceded by ws as in rq_fold_space, the others by a space
 * or a line break. Decoders join adjacent encoded-words without the
 * whitespace between them, so text (spaces included) comes back exact. */
void rq_fold_words(struct rq_fold *f, const char *ws, size_t ws_len,
                   const char *text, size_t n);

/* Appends an unstructured header value (RFC 5322 3.2.5, e.g. Subject):
 * words of printable ASCII are written as they are; runs of words holding
 * non-ASCII or control bytes become encoded-words; the value is folded at
 * its own whitespace. A word too long to fold (over 900 octets) is encoded
 * too, so no line passes 998, and so is one holding "=?" then "?=", which
 * a decoder could take for an encoded-word; a whitespace run over 64 octets becomes one
 * space (it could only be folded into a line of nothing but whitespace). */
void rq_fold_text(struct rq_fold *f, const char *text, size_t n);

/* Appends a display name (RFC 5322 3.2.5 phrase) that cannot go as plain
 * atoms or one quoted-string: words that are atoms stay as they are, runs
 * of the other words become encoded-words (valid in a phrase, RFC 2047
 * 5(3)). sep replaces the whitespace before the first word. */
void rq_fold_phrase(struct rq_fold *f, const char *sep, size_t sep_len,
                    const char *text, size_t n);

/* The header value of text for a field named with header_name_len octets:
 * rq_fold_init + rq_fold_text. Pure printable ASCII comes back unchanged
 * apart from folding (which unfolds back to the same text). The caller has
 * written "Name: " and writes the final CRLF. */
void rq_rfc2047_encode(const char *text, size_t header_name_len, struct rq_buf *out);

/* Appends one MIME parameter, each piece on its own folded line:
 * ";" CRLF " " name="value" for short printable ASCII (quoted-string,
 * '"' and '\' escaped); RFC 2231 continuations name*0="..." ... for long
 * ASCII; and name*=UTF-8''%XX... (or name*0*=, name*1*= ... when long) for
 * anything else, never splitting a UTF-8 character between sections. */
void rq_rfc2231_param(const char *name, const char *value, struct rq_buf *out);

#endif
