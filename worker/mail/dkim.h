/*
 * dkim: DKIM signing (RFC 6376, rsa-sha256; RFC 8463 ed25519-sha256) of
 * messages sent through the platform gateway for tenants with dkim_domain,
 * dkim_selector and dkim_private_key. Signs a message (flat, or segmented:
 * msg.h) in place, prepending the DKIM-Signature header, after every
 * header and body change, over the exact bytes the transport sends (SMTP
 * dot-stuffing is undone by the receiver before it verifies, so it is not
 * part of the signed content).
 *
 * Canonicalisation is relaxed/relaxed (dkim_canon.h); the signed header
 * set is rq_dkim_sign_headers, with From over-signed. Keys are RSA (1024
 * to 4096 bits, RFC 8301) or Ed25519, PEM PKCS#1 or PKCS#8, unencrypted;
 * the daemon parses a tenant's key once per tenant-settings version and
 * caches it (dkim_job.h), so a bad key costs one parse and fails only that
 * tenant's jobs.
 *
 * Routes: only RQ_GW_PLATFORM is signed. A tenant's own SMTP server signs
 * for its domain itself, and Mailgun signs with the keys configured for
 * mailgun_domain (docs/dkim.md explains the choice).
 */
#ifndef RQ_DKIM_H
#define RQ_DKIM_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Parses a PEM private key (PKCS#1 "RSA PRIVATE KEY" or PKCS#8 "PRIVATE
 * KEY") and checks it can sign DKIM: RSA of 1024-4096 bits or Ed25519.
 * Returns an EVP_PKEY * (free with rq_dkim_key_free), or NULL with a
 * sentence in err that names dkim_private_key and never quotes it. */
void *rq_dkim_key_load(const char *pem, char *err, size_t errlen);
void rq_dkim_key_free(void *key);

/* Prepends a DKIM-Signature for key (from rq_dkim_key_load) to msg, a
 * complete message with CRLF line ends; t= is now_s. domain and selector
 * must be DNS names (letters, digits, '-', '_', '.'). Returns 0, or -1
 * with err (msg unchanged). */
int rq_dkim_sign(struct rq_buf *msg, void *key, const char *domain, const char *selector, int64_t now_s,
                 char *err, size_t errlen);

struct rq_msg;

/* rq_dkim_sign for a segmented message (msg.h): the body hash is computed
 * in one streaming pass that encodes the base64 segments once more and
 * keeps nothing (a 10 MB attachment costs ~25 ms of CPU twice rather than
 * 13.5 MB held for the whole send); the signature becomes a new first
 * segment. Same bytes as rq_dkim_sign on the flattened message. */
int rq_dkim_sign_msg(struct rq_msg *m, void *key, const char *domain, const char *selector, int64_t now_s,
                     char *err, size_t errlen);

#endif
