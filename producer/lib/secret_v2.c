/*
 * secret_v2: enc:v2: sealing with the place as AAD (see secret_v2.h).
 * Same construction as secret.c's enc:v1: (AES-256-GCM, 96-bit random
 * nonce, RFC 4648 base64) plus NIST SP 800-38D additional authenticated
 * data. Plaintext buffers are wiped before they are freed.
 */
#include "secret_v2.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "internal.h"

#define NONCE_LEN 12
#define TAG_LEN 16
#define PREFIX_LEN (sizeof RELAYQ_SECRET_V2_PREFIX - 1)
#define SECRET_MAX 65536
#define AAD_MAX 1024

int relayq_secret_is_v2(const char *value) {
  return value != NULL && strncmp(value, RELAYQ_SECRET_V2_PREFIX, PREFIX_LEN) == 0;
}

/* place "\0" field into buf; its length, or 0 when it does not fit. */
static size_t make_aad(const char *place, const char *field, unsigned char *buf) {
  size_t a = strlen(place), b = strlen(field);
  if (a + 1 + b > AAD_MAX) return 0;
  memcpy(buf, place, a);
  buf[a] = '\0';
  memcpy(buf + a + 1, field, b);
  return a + 1 + b;
}

int relayq_secret_seal_v2(const unsigned char key[32], const char *plaintext, const char *place,
                          const char *field, char **out, struct relayq_error *err) {
  unsigned char aad[AAD_MAX];
  size_t aad_len;
  if (out) *out = NULL;
  if (!key || !plaintext || !place || !field || !out || !(aad_len = make_aad(place, field, aad)))
    return relayq__fail(err, RELAYQ_EINVAL, "sealing needs a key, a plaintext, a place and a field.");
  size_t pt_len = strnlen(plaintext, SECRET_MAX + 1);
  if (pt_len > SECRET_MAX) return relayq__fail(err, RELAYQ_ETOO_LARGE, "the secret is too long to seal.");
  int rc = 0;
  size_t raw_len = NONCE_LEN + pt_len + TAG_LEN;
  unsigned char *raw = malloc(raw_len);
  char *sealed = malloc(PREFIX_LEN + (raw_len + 2) / 3 * 4 + 1);
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  int len = 0;
  if (!raw || !sealed || !ctx) {
    rc = relayq__fail(err, RELAYQ_ENOMEM, "out of memory while sealing.");
    goto out;
  }
  unsigned char *nonce = raw, *ct = raw + NONCE_LEN, *tag = raw + NONCE_LEN + pt_len;
  if (RAND_bytes(nonce, NONCE_LEN) != 1 ||
      EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
      EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) != 1 ||
      EVP_EncryptUpdate(ctx, NULL, &len, aad, (int)aad_len) != 1 ||
      EVP_EncryptUpdate(ctx, ct, &len, (const unsigned char *)plaintext, (int)pt_len) != 1 ||
      EVP_EncryptFinal_ex(ctx, ct + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1) {
    rc = relayq__fail(err, RELAYQ_ECRYPTO, "AES-256-GCM encryption failed.");
    goto out;
  }
  memcpy(sealed, RELAYQ_SECRET_V2_PREFIX, PREFIX_LEN);
  EVP_EncodeBlock((unsigned char *)sealed + PREFIX_LEN, raw, (int)raw_len);
  *out = sealed;
  sealed = NULL;
out:
  EVP_CIPHER_CTX_free(ctx);
  if (raw) OPENSSL_cleanse(raw, raw_len);
  free(raw);
  free(sealed);
  return rc;
}

int relayq_secret_open_v2(const unsigned char key[32], const char *sealed, const char *place,
                          const char *field, char **out, struct relayq_error *err) {
  unsigned char aad[AAD_MAX];
  size_t aad_len;
  if (out) *out = NULL;
  if (!key || !sealed || !place || !field || !out || !(aad_len = make_aad(place, field, aad)))
    return relayq__fail(err, RELAYQ_EINVAL, "opening needs a key, a sealed value, a place and a field.");
  if (!relayq_secret_is_v2(sealed))
    return relayq__fail(err, RELAYQ_EINVAL, "the value does not start with \"" RELAYQ_SECRET_V2_PREFIX "\".");
  const char *b64 = sealed + PREFIX_LEN;
  size_t max_b64 = (NONCE_LEN + SECRET_MAX + TAG_LEN + 2) / 3 * 4;
  size_t b64_len = strnlen(b64, max_b64 + 1);
  if (b64_len > max_b64 || b64_len % 4 != 0 || b64_len == 0)
    return relayq__fail(err, RELAYQ_EINVAL, "the sealed value is damaged or cut.");
  int rc = 0;
  size_t cap = b64_len / 4 * 3;
  unsigned char *raw = malloc(cap + 1);
  char *pt = NULL;
  size_t pt_len = 0, raw_len = 0;
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (!raw || !ctx) {
    rc = relayq__fail(err, RELAYQ_ENOMEM, "out of memory while opening a secret.");
    goto out;
  }
  int n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)b64_len);
  if (n < 0) {
    rc = relayq__fail(err, RELAYQ_EINVAL, "the sealed value is not valid base64; it was damaged or cut.");
    goto out;
  }
  raw_len = (size_t)n;
  if (b64[b64_len - 1] == '=') raw_len--;
  if (b64_len > 1 && b64[b64_len - 2] == '=') raw_len--;
  if (raw_len < NONCE_LEN + TAG_LEN) {
    rc = relayq__fail(err, RELAYQ_EINVAL, "the sealed value is too short; it was cut.");
    goto out;
  }
  pt_len = raw_len - NONCE_LEN - TAG_LEN;
  pt = malloc(pt_len + 1);
  if (!pt) {
    rc = relayq__fail(err, RELAYQ_ENOMEM, "out of memory while opening a secret.");
    goto out;
  }
  int len = 0;
  if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
      EVP_DecryptInit_ex(ctx, NULL, NULL, key, raw) != 1 ||
      EVP_DecryptUpdate(ctx, NULL, &len, aad, (int)aad_len) != 1 ||
      EVP_DecryptUpdate(ctx, (unsigned char *)pt, &len, raw + NONCE_LEN, (int)pt_len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, raw + NONCE_LEN + pt_len) != 1 ||
      EVP_DecryptFinal_ex(ctx, (unsigned char *)pt + len, &len) != 1) {
    rc = relayq__fail(err, RELAYQ_ECRYPTO,
                      "the sealed value does not open here: it was sealed for another tenant, route or "
                      "field, with another RELAYQ_SECRET_KEY, or altered.");
    goto out;
  }
  pt[pt_len] = '\0';
  if (memchr(pt, '\0', pt_len)) {
    rc = relayq__fail(err, RELAYQ_EINVAL, "the sealed secret contains a NUL byte.");
    goto out;
  }
  *out = pt;
  pt = NULL;
out:
  EVP_CIPHER_CTX_free(ctx);
  if (pt) OPENSSL_cleanse(pt, pt_len + 1);
  free(pt);
  if (raw) OPENSSL_cleanse(raw, cap + 1);
  free(raw);
  return rc;
}
