/*
 * Unit tests for secret.c: the enc:v1: sealing of CONTRACT.md.
 *
 * The interop vector below was produced once by python3-cryptography
 * (AESGCM(key).encrypt(nonce, plaintext, None), then base64 of
 * nonce | ciphertext | tag) with key = bytes(range(32)) and nonce =
 * bytes(range(0xa0, 0xac)); opening it here proves that a producer in
 * another language and librelayq agree on the format.
 */
#include <string.h>

#include <openssl/crypto.h>

#include "check.h"
#include "relayq/relayq.h"

static const char KEY_B64[] = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
static const char PY_PLAIN[] =
    "correct horse battery staple \xc3\xa8\xc3\xa9 \xe2\x9c\x93";
static const char PY_SEALED[] =
    "enc:v1:oKGio6SlpqeoqaqrhXcOXyCodp8KCvWgYlqivwTYPGLrlzEY/X5K419o3cJ7VqVj"
    "PP3ab1z+quzW3fHEtZQUG1w=";
static const char PY_SEALED_EMPTY[] = "enc:v1:oKGio6SlpqeoqaqrXGmWJa9Lk6D4IgoqYRnF0A==";

static void key_of(unsigned char key[32]) {
  struct relayq_error e;
  CHECK_INT(relayq_secret_key_parse(KEY_B64, key, &e), ==, 0);
}

static void test_key_parse(void) {
  unsigned char key[32];
  struct relayq_error e;
  key_of(key);
  for (int i = 0; i < 32; i++) CHECK_INT(key[i], ==, i);

  /* A trailing newline (key read from a file) is tolerated. */
  char withnl[sizeof KEY_B64 + 1];
  snprintf(withnl, sizeof withnl, "%s\n", KEY_B64);
  memset(key, 0, sizeof key);
  CHECK_INT(relayq_secret_key_parse(withnl, key, &e), ==, 0);
  CHECK_INT(key[31], ==, 31);

  /* 16 bytes: wrong length, and the message says how many and what to do. */
  CHECK_INT(relayq_secret_key_parse("AAECAwQFBgcICQoLDA0ODw==", key, &e), ==,
            RELAYQ_EINVAL);
  CHECK(strstr(e.message, "16 bytes") != NULL);
  CHECK(strstr(e.message, "32") != NULL);
  CHECK(strstr(e.message, "openssl rand -base64 32") != NULL);
  /* 33 bytes. */
  CHECK_INT(relayq_secret_key_parse(
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g", key, &e),
            ==, RELAYQ_EINVAL);
  CHECK(strstr(e.message, "33 bytes") != NULL);
  /* Not base64 at all, empty, missing. */
  CHECK_INT(relayq_secret_key_parse("not base64!", key, &e), ==,
            RELAYQ_EINVAL);
  CHECK(strstr(e.message, "not valid base64") != NULL);
  CHECK_INT(relayq_secret_key_parse("", key, &e), ==, RELAYQ_EINVAL);
  CHECK_INT(relayq_secret_key_parse(NULL, key, &e), ==, RELAYQ_EINVAL);
  CHECK(strstr(e.message, "RELAYQ_SECRET_KEY is not set") != NULL);
}

static void test_round_trip(void) {
  unsigned char key[32];
  struct relayq_error e;
  key_of(key);
  const char *inputs[] = {"", "p", "hunter2", PY_PLAIN,
                          "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END "
                          "PRIVATE KEY-----\n"};
  for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
    char *sealed = NULL, *opened = NULL;
    CHECK_INT(relayq_secret_seal(key, inputs[i], &sealed, &e), ==, 0);
    CHECK(relayq_secret_is_sealed(sealed));
    /* Base64 of 12 + len + 16 bytes after the prefix. */
    size_t raw = 12 + strlen(inputs[i]) + 16;
    CHECK_INT(strlen(sealed), ==, 7 + (raw + 2) / 3 * 4);
    CHECK_INT(relayq_secret_open(key, sealed, &opened, &e), ==, 0);
    CHECK_STR(opened, inputs[i]);
    OPENSSL_cleanse(opened, strlen(opened));
    free(opened);
    free(sealed);
  }
  /* Fresh nonce each time: sealing twice gives two different values. */
  char *a = NULL, *b = NULL;
  CHECK_INT(relayq_secret_seal(key, "same", &a, &e), ==, 0);
  CHECK_INT(relayq_secret_seal(key, "same", &b, &e), ==, 0);
  CHECK(strcmp(a, b) != 0);
  free(a);
  free(b);
}

static void test_python_vector(void) {
  unsigned char key[32];
  struct relayq_error e;
  char *opened = NULL;
  key_of(key);
  CHECK_INT(relayq_secret_open(key, PY_SEALED, &opened, &e), ==, 0);
  CHECK_STR(opened, PY_PLAIN);
  free(opened);
  opened = NULL;
  CHECK_INT(relayq_secret_open(key, PY_SEALED_EMPTY, &opened, &e), ==, 0);
  CHECK_STR(opened, "");
  free(opened);
}

static void test_wrong_key(void) {
  unsigned char key[32];
  struct relayq_error e;
  char *opened = NULL;
  key_of(key);
  key[0] ^= 1;
  CHECK_INT(relayq_secret_open(key, PY_SEALED, &opened, &e), ==,
            RELAYQ_ECRYPTO);
  CHECK(opened == NULL);
  CHECK_INT(e.code, ==, RELAYQ_ECRYPTO);
  CHECK(strstr(e.message, "RELAYQ_SECRET_KEY") != NULL);
  /* The message never repeats the value. */
  CHECK(strstr(e.message, "oKGio6") == NULL);
}

/* Flips one base64 character inside the value (keeps it valid base64). */
static char *flip_at(const char *s, size_t pos) {
  char *c = strdup(s);
  c[pos] = c[pos] == 'A' ? 'B' : 'A';
  return c;
}

static void test_tampered(void) {
  unsigned char key[32];
  struct relayq_error e;
  char *opened = NULL;
  key_of(key);
  size_t n = strlen(PY_SEALED);
  /* In the tag (last full base64 group before the padding). */
  char *bad = flip_at(PY_SEALED, n - 3);
  CHECK_INT(relayq_secret_open(key, bad, &opened, &e), ==, RELAYQ_ECRYPTO);
  CHECK(opened == NULL);
  free(bad);
  /* In the ciphertext. */
  bad = flip_at(PY_SEALED, 7 + 20);
  CHECK_INT(relayq_secret_open(key, bad, &opened, &e), ==, RELAYQ_ECRYPTO);
  free(bad);
  /* In the nonce. */
  bad = flip_at(PY_SEALED, 7 + 2);
  CHECK_INT(relayq_secret_open(key, bad, &opened, &e), ==, RELAYQ_ECRYPTO);
  free(bad);
}

static void test_truncated(void) {
  unsigned char key[32];
  struct relayq_error e;
  char *opened = NULL;
  key_of(key);
  /* Cut to a whole number of base64 groups: valid base64, tag wrong. */
  char cut[64];
  snprintf(cut, sizeof cut, "%.*s", 7 + 48, PY_SEALED);
  CHECK_INT(relayq_secret_open(key, cut, &opened, &e), ==, RELAYQ_ECRYPTO);
  /* Shorter than nonce + tag: refused before any decryption. */
  CHECK_INT(relayq_secret_open(key, "enc:v1:oKGio6Slpqeo", &opened, &e), ==,
            RELAYQ_EINVAL);
  CHECK(strstr(e.message, "shorter than") != NULL);
  /* Cut mid-group: not base64 any more. */
  snprintf(cut, sizeof cut, "%.*s", 7 + 50, PY_SEALED);
  CHECK_INT(relayq_secret_open(key, cut, &opened, &e), ==, RELAYQ_EINVAL);
  /* Nothing after the prefix. */
  CHECK_INT(relayq_secret_open(key, "enc:v1:", &opened, &e), ==,
            RELAYQ_EINVAL);
  CHECK(opened == NULL);
}

static void test_bad_base64(void) {
  unsigned char key[32];
  struct relayq_error e;
  char *opened = NULL;
  key_of(key);
  CHECK_INT(relayq_secret_open(key, "enc:v1:!!!!####$$$$%%%%^^^^&&&&****((((",
                               &opened, &e),
            ==, RELAYQ_EINVAL);
  CHECK(strstr(e.message, "base64") != NULL);
  /* Whitespace inside is not canonical base64. */
  char *sp = strdup(PY_SEALED);
  sp[20] = ' ';
  CHECK_INT(relayq_secret_open(key, sp, &opened, &e), ==, RELAYQ_EINVAL);
  free(sp);
  /* '=' in the middle. */
  CHECK_INT(relayq_secret_open(key, "enc:v1:oKGi=6SlpqeoqaqrXGmWJa9Lk6D4IgoqYRnF0A==",
                               &opened, &e),
            ==, RELAYQ_EINVAL);
  CHECK(opened == NULL);
}

static void test_not_prefixed(void) {
  unsigned char key[32];
  struct relayq_error e;
  char *opened = NULL;
  key_of(key);
  CHECK(!relayq_secret_is_sealed("hunter2"));
  CHECK(relayq_secret_is_sealed("enc:v2:abcd"));
  CHECK(!relayq_secret_is_sealed("enc:v3:abcd"));
  CHECK(!relayq_secret_is_sealed("ENC:V1:abcd"));
  CHECK(!relayq_secret_is_sealed(NULL));
  CHECK_INT(relayq_secret_open(key, PY_SEALED + 7, &opened, &e), ==,
            RELAYQ_EINVAL);
  CHECK(strstr(e.message, "not sealed") != NULL);
  CHECK_INT(relayq_secret_open(key, "enc:v2:oKGio6SlpqeoqaqrXGmWJa9Lk6D4IgoqYRnF0A==",
                               &opened, &e),
            ==, RELAYQ_EINVAL);
  CHECK(opened == NULL);
}

static void test_limits(void) {
  unsigned char key[32];
  struct relayq_error e;
  char *out = NULL;
  key_of(key);
  /* Larger than any secret: refused before allocating for it. */
  size_t big = 100000; /* > 64 KiB plaintext, > its 87 kB of base64 */
  char *s = malloc(big + 1);
  memset(s, 'a', big);
  s[big] = '\0';
  CHECK_INT(relayq_secret_seal(key, s, &out, &e), ==, RELAYQ_ETOO_LARGE);
  CHECK(out == NULL);
  memcpy(s, "enc:v1:", 7);
  CHECK_INT(relayq_secret_open(key, s, &out, &e), ==, RELAYQ_ETOO_LARGE);
  free(s);
  CHECK_INT(relayq_secret_seal(NULL, "x", &out, &e), ==, RELAYQ_EINVAL);
  CHECK_INT(relayq_secret_open(key, NULL, &out, &e), ==, RELAYQ_EINVAL);
  /* A NULL error pointer is allowed. */
  CHECK_INT(relayq_secret_open(key, "nope", &out, NULL), ==, RELAYQ_EINVAL);
}

/* enc:v2: bound to place + NUL + field. The vector was made by
 * python3-cryptography: AESGCM(bytes(range(32))).encrypt(nonce =
 * bytes(range(0xa0, 0xac)), b"hunter2", b"tenant:acme\0smtp_password"). */
static const char PY_SEALED_V2[] = "enc:v2:oKGio6Slpqeoqaqrjm0SWSC5MK8Ywh1OkjA4/fsR4gS1E30=";

static void test_v2_place(void) {
  unsigned char key[32];
  struct relayq_error e;
  char *out = NULL, *sealed = NULL;
  key_of(key);
  /* Interop: opens for its place only. */
  CHECK_INT(relayq_secret_open_for(key, "tenant:acme", "smtp_password", PY_SEALED_V2, &out, &e), ==, 0);
  CHECK(out != NULL && strcmp(out, "hunter2") == 0);
  free(out);
  out = NULL;
  const char *places[][2] = {{"tenant:acme2", "smtp_password"},
                             {"tenant:acme", "mailgun_api_key"},
                             {"tenant:acme:route:billing", "smtp_password"},
                             {"oauth:acme", "access_token"},
                             {"tenant:acm", "e\0smtp_password"}};
  for (size_t i = 0; i < sizeof places / sizeof places[0]; i++) {
    CHECK_INT(relayq_secret_open_for(key, places[i][0], places[i][1], PY_SEALED_V2, &out, &e), ==,
              RELAYQ_ECRYPTO);
    CHECK(out == NULL);
    CHECK(strstr(e.message, "sealed for another place") != NULL);
    CHECK(strstr(e.message, "hunter2") == NULL);
  }
  /* The raw AAD form is the same thing. */
  CHECK_INT(relayq_secret_open_aad(key, "tenant:acme\0smtp_password", 25, PY_SEALED_V2, &out, &e), ==, 0);
  CHECK(out != NULL && strcmp(out, "hunter2") == 0);
  free(out);
  out = NULL;
  /* Round trip through seal_for; v2 needs its place, relayq_secret_open refuses it. */
  CHECK_INT(relayq_secret_seal_for(key, "oauth:acme", "access_token", "tok-1", &sealed, &e), ==, 0);
  CHECK(relayq_secret_is_v2(sealed) && relayq_secret_is_sealed(sealed));
  CHECK_INT(relayq_secret_open(key, sealed, &out, &e), ==, RELAYQ_EINVAL);
  CHECK_INT(relayq_secret_open_for(key, "oauth:acme", "access_token", sealed, &out, &e), ==, 0);
  CHECK(out != NULL && strcmp(out, "tok-1") == 0);
  free(out);
  out = NULL;
  free(sealed);
  /* v1 opens wherever it is (the contract keeps reading it). */
  CHECK_INT(relayq_secret_open_for(key, "tenant:x", "smtp_password", PY_SEALED, &out, &e), ==, 0);
  CHECK(out != NULL && strcmp(out, PY_PLAIN) == 0);
  free(out);
  /* No place: refused. */
  CHECK_INT(relayq_secret_seal_for(key, "", "f", "x", &sealed, &e), ==, RELAYQ_EINVAL);
  CHECK(sealed == NULL);
}

int main(void) {
  test_key_parse();
  test_round_trip();
  test_python_vector();
  test_wrong_key();
  test_tampered();
  test_truncated();
  test_bad_base64();
  test_not_prefixed();
  test_limits();
  test_v2_place();
  return CHECK_DONE();
}
