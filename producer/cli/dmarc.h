/*
 * dmarc: the tag=value TXT records `relayq dns check` reads besides SPF:
 *   - DMARC policy records at _dmarc.DOMAIN (RFC 7489 section 6.3 and
 *     6.4: v=DMARC1 first, p required, sp, pct, adkim, aspf, rua, ruf,
 *     fo, rf, ri; unknown tags ignored);
 *   - DKIM key records at SELECTOR._domainkey.DOMAIN (RFC 6376 section
 *     3.6.1: v=DKIM1 first when present, k rsa or ed25519 (RFC 8463), p
 *     the public key, empty when revoked, h, s, t);
 *   - the tag-list syntax both share (RFC 6376 section 3.2);
 *   - turning a PEM key (private or public, the form a tenant's
 *     dkim_private_key or an operator's file has) into the p= value to
 *     publish, and comparing a published key with it.
 *
 * Pure: no I/O; OpenSSL only decodes and compares keys. Reentrant.
 * Input is bounded (DMARC_MAX_RECORD); errors are sentences naming the
 * tag.
 */
#ifndef RELAYQ_DMARC_H
#define RELAYQ_DMARC_H

#include <stddef.h>

#define DMARC_MAX_RECORD 4096 /* longest record read, bytes */

/* A parsed DMARC record. Plain value. */
struct dmarc_record {
  char p[16];    /* none, quarantine, reject */
  char sp[16];   /* "" when absent (p applies to subdomains) */
  int pct;       /* 0-100, default 100 */
  char adkim;    /* 'r' (default) or 's' */
  char aspf;     /* 'r' (default) or 's' */
  char rua[512]; /* "" when absent */
  char ruf[512];
};

/* 1 when text starts like a DMARC record ("v=DMARC1", RFC 7489 6.6.3:
 * records that do not are ignored). */
int dmarc_is_record(const char *text);

/* Parses a DMARC record. Returns 0, or -1 with a sentence in err. */
int dmarc_parse(const char *text, struct dmarc_record *out, char *err, size_t errlen);

/* A parsed DKIM key record. Owns p (free with dkimrec_free). */
struct dkim_record {
  char k[16];  /* "rsa" (default) or "ed25519" */
  char *p;     /* base64 as published, white space removed; "" = revoked */
  int testing; /* t=y */
};

/* 1 when text looks like a DKIM key record (v=DKIM1 first, or a p= tag). */
int dkimrec_is_record(const char *text);

/* Parses a DKIM key record. Returns 0 (out->p set, caller frees with
 * dkimrec_free), or -1 with a sentence in err. Does not decode p. */
int dkimrec_parse(const char *text, struct dkim_record *out, char *err, size_t errlen);
void dkimrec_free(struct dkim_record *r);

/*
 * Checks that the record's p= decodes to a public key of type k.
 * Returns 0 with *bits (RSA modulus size; 256 for Ed25519), or -1 with
 * err.
 */
int dkimrec_key_check(const struct dkim_record *r, int *bits, char *err, size_t errlen);

/*
 * The p= value (and k=) to publish for a PEM key: a private key (PKCS#1
 * or PKCS#8) or a public key (SubjectPublicKeyInfo or PKCS#1), RSA or
 * Ed25519. RSA gives base64 SubjectPublicKeyInfo DER, Ed25519 base64 of
 * the raw 32 bytes (RFC 8463 section 4.2). *p_b64 malloc'd, caller frees.
 * Returns 0 or -1 with err (never quoting the key).
 */
int dkimrec_p_from_pem(const char *pem, size_t len, char **p_b64, char k[16], char *err,
                       size_t errlen);

/* 1 when the record's key is the same public key as p_b64 of type k (as
 * dkimrec_p_from_pem gives), 0 when not or when either does not decode.
 * An RSA record in PKCS#1 form matches the same key as SPKI. */
int dkimrec_key_equal(const struct dkim_record *r, const char *p_b64, const char *k);

#endif
