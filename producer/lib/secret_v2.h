/*
 * secret_v2: sealed secrets bound to their place, the `enc:v2:` format of
 * CONTRACT.md v1.1: "enc:v2:" base64(nonce[12] | ciphertext | tag[16]),
 * AES-256-GCM under RELAYQ_SECRET_KEY with AAD = place "\0" field, where
 * place is the hash key after "P:" ("tenant:acme",
 * "tenant:acme:route:billing", "oauth:acme"). A value copied to another
 * tenant, route or field does not open.
 *
 * Minimal version written for the OAuth work (issue 18) so that rotated
 * refresh tokens and shared access tokens are sealed as the contract says;
 * the enc:v2 work of issue 16 (producer/lib/secret.c) supersedes it when
 * merged: callers go through these two names only.
 */
#ifndef RELAYQ_SECRET_V2_H
#define RELAYQ_SECRET_V2_H

#include "relayq/relayq.h"

#define RELAYQ_SECRET_V2_PREFIX "enc:v2:"

/* 1 when value starts with "enc:v2:". */
int relayq_secret_is_v2(const char *value);

/* Seals plaintext for (place, field). *out malloc'd, caller frees. */
int relayq_secret_seal_v2(const unsigned char key[32], const char *plaintext, const char *place,
                          const char *field, char **out, struct relayq_error *err);

/* Opens an enc:v2: value sealed for (place, field); RELAYQ_ECRYPTO when it
 * was sealed for another place or field, with another key, or altered.
 * *out malloc'd, caller wipes and frees. */
int relayq_secret_open_v2(const unsigned char key[32], const char *sealed, const char *place,
                          const char *field, char **out, struct relayq_error *err);

#endif
