/*
 * secret: sealing of tenant secrets, the `enc:v1:` and `enc:v2:` formats of
 * CONTRACT.md.
 *
 *   sealed = "enc:v1:" base64(nonce[12] | ciphertext | tag[16])   no AAD
 *   sealed = "enc:v2:" base64(nonce[12] | ciphertext | tag[16])   AAD = place
 *
 * AES-256-GCM (NIST SP 800-38D) through OpenSSL's EVP interface, a fresh
 * random 96-bit nonce per value, key = the 32 bytes of base64
 * RELAYQ_SECRET_KEY. v2 binds a value to where it is stored: the
 * additional authenticated data is the hash key without its prefix, a NUL,
 * and the field name ("tenant:acme\0smtp_password"), so a value copied to
 * another tenant, route or field fails its tag check instead of opening. Base64 is RFC 4648 section 4
 * (standard alphabet, '=' padding), as Python's base64.b64encode writes it,
 * so producers in any language can read and write the same values.
 *
 * Every buffer that held plaintext is wiped (OPENSSL_cleanse) before it is
 * freed, on success and error paths alike. Messages never quote a value.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "internal.h"

#define NONCE_LEN 12
#define TAG_LEN 16
#define PREFIX_LEN (sizeof RELAYQ_SECRET_PREFIX - 1)

/* Largest plaintext we seal or open: a 4096-bit RSA PEM key is ~3.3 kB, so
 * 64 KiB leaves room while bounding what a hostile hash field can make us
 * allocate. */
#define SECRET_MAX 65536

/* 1 when s[0..n) is canonical padded base64: length a multiple of 4, only
 * the standard alphabet, and '=' only as one or two final characters.
 * EVP_DecodeBlock alone is too lenient for an integrity check (it skips
 * leading and trailing whitespace), so the shape is checked first. */
static int b64_shape_ok(const char *s, size_t n) {
  if (n == 0 || n % 4 != 0) return 0;
  size_t pad = 0;
  if (s[n - 1] == '=') pad++;
  if (pad && s[n - 2] == '=') pad++;
  for (size_t i = 0; i < n - pad; i++) {
    unsigned char c = (unsigned char)s[i];
    int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
             (c >= '0' && c <= '9') || c == '+' || c == '/';
    if (!ok) return 0;
  }
  return 1;
}

/* Decodes canonical base64 into a new buffer; *out_len is the real length.
 * EVP_DecodeBlock returns 3 bytes per 4 input characters, counting the
 * padding as zero bytes, so the '=' count is subtracted here. Returns 0,
 * RELAYQ_EINVAL (bad shape) or RELAYQ_ENOMEM. */
static int b64_decode(const char *s, size_t n, unsigned char **out,
                      size_t *out_len) {
  *out = NULL;
  *out_len = 0;
  if (!b64_shape_ok(s, n) || n > (size_t)INT32_MAX) return RELAYQ_EINVAL;
  unsigned char *buf = malloc(n / 4 * 3 + 1);
  if (buf == NULL) return RELAYQ_ENOMEM;
  int got = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)n);
  if (got < 0) {
    free(buf);
    return RELAYQ_EINVAL;
  }
  size_t pad = (s[n - 1] == '=') + (s[n - 2] == '=');
  *out = buf;
  *out_len = (size_t)got - pad;
  return 0;
}

int relayq_secret_key_parse(const char *b64, unsigned char key[32],
                            struct relayq_error *err) {
  if (b64 == NULL || key == NULL)
    return relayq__fail(err, RELAYQ_EINVAL,
                        "RELAYQ_SECRET_KEY is not set: set it to 32 random "
                        "bytes in base64 (e.g. `openssl rand -base64 32`).");
  /* Tolerate the newline a key read from a file or `$(cat ...)` keeps. */
  size_t start = 0, end = strnlen(b64, 4096);
  while (start < end && (b64[start] == ' ' || b64[start] == '\t')) start++;
  while (end > start && (b64[end - 1] == '\n' || b64[end - 1] == '\r' ||
                         b64[end - 1] == ' ' || b64[end - 1] == '\t'))
    end--;

  unsigned char *raw = NULL;
  size_t raw_len = 0;
  int rc = b64_decode(b64 + start, end - start, &raw, &raw_len);
  if (rc == RELAYQ_ENOMEM)
    return relayq__fail(err, rc, "out of memory while reading the key.");
  if (rc != 0)
    return relayq__fail(err, RELAYQ_EINVAL,
                        "RELAYQ_SECRET_KEY is not valid base64: it must be "
                        "32 random bytes in standard padded base64 (e.g. "
                        "`openssl rand -base64 32`).");
  if (raw_len != RELAYQ_SECRET_KEY_LEN) {
    OPENSSL_cleanse(raw, raw_len);
    free(raw);
    return relayq__fail(err, RELAYQ_EINVAL,
                        "RELAYQ_SECRET_KEY decodes to %zu bytes but AES-256 "
                        "needs exactly 32: generate one with `openssl rand "
                        "-base64 32`.",
                        raw_len);
  }
  memcpy(key, raw, RELAYQ_SECRET_KEY_LEN);
  OPENSSL_cleanse(raw, raw_len);
  free(raw);
  return 0;
}

int relayq_secret_is_sealed(const char *value) {
  return value != NULL && (strncmp(value, RELAYQ_SECRET_PREFIX, PREFIX_LEN) == 0 ||
                           strncmp(value, RELAYQ_SECRET_PREFIX_V2, PREFIX_LEN) == 0);
}

int relayq_secret_is_v2(const char *value) {
  return value != NULL && strncmp(value, RELAYQ_SECRET_PREFIX_V2, PREFIX_LEN) == 0;
}

/* The AAD of a place: place + NUL + field, into a new buffer. */
static unsigned char *place_aad(const char *place, const char *field, size_t *len) {
  size_t pl = strlen(place), fl = strlen(field);
  unsigned char *a = malloc(pl + 1 + fl);
  if (a == NULL) return NULL;
  memcpy(a, place, pl);
  a[pl] = '\0';
  memcpy(a + pl + 1, field, fl);
  *len = pl + 1 + fl;
  return a;
}

/* Seals with the given prefix and AAD (NULL, 0: none). */
static int seal(const unsigned char key[32], const char *prefix,
                const unsigned char *aad, size_t aad_len, const char *plaintext,
                char **out, struct relayq_error *err) {
  if (out != NULL) *out = NULL;
  if (key == NULL || plaintext == NULL || out == NULL)
    return relayq__fail(err, RELAYQ_EINVAL,
                        "relayq_secret_seal needs a key, a plaintext and an "
                        "output pointer.");
  size_t pt_len = strnlen(plaintext, SECRET_MAX + 1);
  if (pt_len > SECRET_MAX)
    return relayq__fail(err, RELAYQ_ETOO_LARGE,
                        "the secret is longer than %d bytes; secrets are "
                        "passwords, API keys and PEM keys, far smaller.",
                        SECRET_MAX);

  int rc = 0;
  size_t raw_len = NONCE_LEN + pt_len + TAG_LEN;
  unsigned char *raw = malloc(raw_len);
  /* EVP_EncodeBlock writes 4 chars per 3 bytes (rounded up) plus a NUL. */
  size_t b64_len = (raw_len + 2) / 3 * 4;
  char *sealed = malloc(PREFIX_LEN + b64_len + 1);
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (raw == NULL || sealed == NULL || ctx == NULL) {
    rc = relayq__fail(err, RELAYQ_ENOMEM, "out of memory while sealing.");
    goto out;
  }
  unsigned char *nonce = raw, *ct = raw + NONCE_LEN,
                *tag = raw + NONCE_LEN + pt_len;
  if (RAND_bytes(nonce, NONCE_LEN) != 1) {
    rc = relayq__fail(err, RELAYQ_ECRYPTO,
                      "the system random generator failed; cannot make a "
                      "nonce.");
    goto out;
  }
  int len = 0;
  if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
      EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) != 1 ||
      (aad_len > 0 && EVP_EncryptUpdate(ctx, NULL, &len, aad, (int)aad_len) != 1) ||
      EVP_EncryptUpdate(ctx, ct, &len, (const unsigned char *)plaintext,
                        (int)pt_len) != 1 ||
      EVP_EncryptFinal_ex(ctx, ct + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1) {
    rc = relayq__fail(err, RELAYQ_ECRYPTO, "AES-256-GCM encryption failed.");
    goto out;
  }
  memcpy(sealed, prefix, PREFIX_LEN);
  EVP_EncodeBlock((unsigned char *)sealed + PREFIX_LEN, raw, (int)raw_len);
  *out = sealed;
  sealed = NULL;
out:
  EVP_CIPHER_CTX_free(ctx);
  if (raw != NULL) OPENSSL_cleanse(raw, raw_len);
  free(raw);
  free(sealed);
  return rc;
}

/* Opens a value of either version; aad is used for v2 only. */
static int open_any(const unsigned char key[32], const char *sealed,
                    const unsigned char *aad, size_t aad_len, char **out,
                    struct relayq_error *err) {
  if (out != NULL) *out = NULL;
  if (key == NULL || sealed == NULL || out == NULL)
    return relayq__fail(err, RELAYQ_EINVAL,
                        "relayq_secret_open needs a key, a sealed value and "
                        "an output pointer.");
  if (!relayq_secret_is_sealed(sealed))
    return relayq__fail(err, RELAYQ_EINVAL,
                        "the value is not sealed: sealed values start with "
                        "\"" RELAYQ_SECRET_PREFIX "\" or \"" RELAYQ_SECRET_PREFIX_V2 "\".");
  int v2 = relayq_secret_is_v2(sealed);
  const char *b64 = sealed + PREFIX_LEN;
  /* Bound the input before decoding anything (4/3 of the largest raw). */
  size_t max_b64 = (NONCE_LEN + SECRET_MAX + TAG_LEN + 2) / 3 * 4;
  size_t b64_len = strnlen(b64, max_b64 + 1);
  if (b64_len > max_b64)
    return relayq__fail(err, RELAYQ_ETOO_LARGE,
                        "the sealed value is longer than any secret we "
                        "seal (%d bytes of plaintext at most).",
                        SECRET_MAX);

  int rc = 0;
  unsigned char *raw = NULL;
  size_t raw_len = 0;
  char *pt = NULL;
  size_t pt_len = 0;
  EVP_CIPHER_CTX *ctx = NULL;

  rc = b64_decode(b64, b64_len, &raw, &raw_len);
  if (rc == RELAYQ_ENOMEM) {
    rc = relayq__fail(err, rc, "out of memory while opening a secret.");
    goto out;
  }
  if (rc != 0) {
    rc = relayq__fail(err, RELAYQ_EINVAL,
                      "the sealed value is not valid base64 after \"" 
                      RELAYQ_SECRET_PREFIX "\"; it was damaged or cut.");
    goto out;
  }
  if (raw_len < NONCE_LEN + TAG_LEN) {
    rc = relayq__fail(err, RELAYQ_EINVAL,
                      "the sealed value is %zu bytes, shorter than the "
                      "12-byte nonce and 16-byte tag it must hold; it was "
                      "cut.",
                      raw_len);
    goto out;
  }
  pt_len = raw_len - NONCE_LEN - TAG_LEN;
  const unsigned char *nonce = raw, *ct = raw + NONCE_LEN,
                      *tag = raw + NONCE_LEN + pt_len;
  pt = malloc(pt_len + 1);
  ctx = EVP_CIPHER_CTX_new();
  if (pt == NULL || ctx == NULL) {
    rc = relayq__fail(err, RELAYQ_ENOMEM,
                      "out of memory while opening a secret.");
    goto out;
  }
  int len = 0, fin = 0;
  if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
      EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) != 1 ||
      (v2 && aad_len > 0 && EVP_DecryptUpdate(ctx, NULL, &len, aad, (int)aad_len) != 1) ||
      EVP_DecryptUpdate(ctx, (unsigned char *)pt, &len, ct, (int)pt_len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN,
                          (void *)tag) != 1) {
    rc = relayq__fail(err, RELAYQ_ECRYPTO, "AES-256-GCM decryption failed.");
    goto out;
  }
  /* The tag is checked here: nothing decrypted is trusted before this. */
  fin = EVP_DecryptFinal_ex(ctx, (unsigned char *)pt + len, &len);
  if (fin != 1) {
    rc = v2 ? relayq__fail(err, RELAYQ_ECRYPTO,
                           "the sealed value was sealed for another place (another "
                           "tenant, route or field) or with another "
                           "RELAYQ_SECRET_KEY: it does not open here; set the "
                           "secret again for this place.")
            : relayq__fail(err, RELAYQ_ECRYPTO,
                           "the sealed value does not verify: RELAYQ_SECRET_KEY "
                           "is not the key it was sealed with, or the value was "
                           "altered.");
    goto out;
  }
  pt[pt_len] = '\0';
  /* Callers get a C string; a NUL inside would silently cut the secret. */
  if (memchr(pt, '\0', pt_len) != NULL) {
    rc = relayq__fail(err, RELAYQ_EINVAL,
                      "the sealed secret contains a NUL byte, which no "
                      "password, API key or PEM key holds.");
    goto out;
  }
  *out = pt;
  pt = NULL;
out:
  EVP_CIPHER_CTX_free(ctx);
  if (pt != NULL) OPENSSL_cleanse(pt, pt_len + 1);
  free(pt);
  if (raw != NULL) OPENSSL_cleanse(raw, raw_len);
  free(raw);
  return rc;
}

int relayq_secret_seal(const unsigned char key[32], const char *plaintext,
                       char **out, struct relayq_error *err) {
  return seal(key, RELAYQ_SECRET_PREFIX, NULL, 0, plaintext, out, err);
}

int relayq_secret_open(const unsigned char key[32], const char *sealed,
                       char **out, struct relayq_error *err) {
  /* A v2 value is bound to a place this call does not name. */
  if (relayq_secret_is_v2(sealed)) {
    if (out != NULL) *out = NULL;
    return relayq__fail(err, RELAYQ_EINVAL,
                        "an enc:v2: value opens only with its place: use "
                        "relayq_secret_open_for.");
  }
  return open_any(key, sealed, NULL, 0, out, err);
}

int relayq_secret_seal_aad(const unsigned char key[32], const void *aad,
                           size_t aad_len, const char *plaintext, char **out,
                           struct relayq_error *err) {
  if (aad == NULL || aad_len == 0 || aad_len > SECRET_MAX) {
    if (out != NULL) *out = NULL;
    return relayq__fail(err, RELAYQ_EINVAL,
                        "an enc:v2: seal needs its place (1-%d bytes of AAD).",
                        SECRET_MAX);
  }
  return seal(key, RELAYQ_SECRET_PREFIX_V2, aad, aad_len, plaintext, out, err);
}

int relayq_secret_open_aad(const unsigned char key[32], const void *aad,
                           size_t aad_len, const char *sealed, char **out,
                           struct relayq_error *err) {
  if ((aad == NULL && aad_len > 0) || aad_len > SECRET_MAX) {
    if (out != NULL) *out = NULL;
    return relayq__fail(err, RELAYQ_EINVAL, "the place (AAD) of a secret is at most %d bytes.",
                        SECRET_MAX);
  }
  return open_any(key, sealed, aad, aad_len, out, err);
}

int relayq_secret_seal_for(const unsigned char key[32], const char *place,
                           const char *field, const char *plaintext,
                           char **out, struct relayq_error *err) {
  if (out != NULL) *out = NULL;
  if (place == NULL || field == NULL || place[0] == '\0' || field[0] == '\0')
    return relayq__fail(err, RELAYQ_EINVAL, "a sealed secret needs its place and field.");
  size_t n = 0;
  unsigned char *aad = place_aad(place, field, &n);
  if (aad == NULL) return relayq__fail(err, RELAYQ_ENOMEM, "out of memory while sealing.");
  int rc = relayq_secret_seal_aad(key, aad, n, plaintext, out, err);
  free(aad);
  return rc;
}

int relayq_secret_open_for(const unsigned char key[32], const char *place,
                           const char *field, const char *sealed, char **out,
                           struct relayq_error *err) {
  if (out != NULL) *out = NULL;
  if (place == NULL || field == NULL)
    return relayq__fail(err, RELAYQ_EINVAL, "opening a secret needs its place and field.");
  size_t n = 0;
  unsigned char *aad = place_aad(place, field, &n);
  if (aad == NULL) return relayq__fail(err, RELAYQ_ENOMEM, "out of memory while opening a secret.");
  int rc = relayq_secret_open_aad(key, aad, n, sealed, out, err);
  free(aad);
  return rc;
}
