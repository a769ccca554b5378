/*
 * libFuzzer target for the reply classifier (worker/classify.h): SMTP
 * replies, curl error texts, Mailgun bodies and Retry-After values all come
 * from servers we do not control, so no byte sequence may crash, read out
 * of bounds, or yield an outcome outside the documented ranges.
 *
 * Input: byte 0 low nibble picks the curl code for rq_curl_classify,
 * bytes 1-2 an HTTP status (big-endian, mod 700); the rest is the raw
 * reply, also used as the HTTP body, as the curl error text, and (its first
 * line) as the Retry-After value. Every SMTP stage classifies the same
 * reply. Build with -DRELAYQ_FUZZ=ON (clang); seeds in
 * tests/fuzz/corpus/reply/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "classify.h"
#include "curlfail.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Any invariant the header promises that does not hold is a bug: abort so
 * libFuzzer keeps the input. */
static void check_class(const struct rq_class *c) {
  if (c->verdict != RQ_OK && c->verdict != RQ_TEMP && c->verdict != RQ_PERM) abort();
  if ((int)c->error < 0 || c->error >= RQ_ERR__COUNT) abort();
  if (strnlen(c->detail, sizeof c->detail) == sizeof c->detail) abort();
  if (c->retry_after_ms < 0 || c->retry_after_ms > RQ_RETRY_HINT_MAX_MS) abort();
  if (c->retry_after_ms > 0 && c->verdict != RQ_TEMP) abort();
  if (c->verdict == RQ_OK && c->error != RQ_ERR_NONE) abort();
}

/* Sanitised text: terminated, bounded, no control characters. */
static void check_text(const char *s, size_t cap) {
  size_t n = strnlen(s, cap);
  if (n == cap) abort();
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3) return 0;
  int curl_code = data[0] & 0x0f ? (int)(data[0] & 0x7f) : 0;
  long status = (long)(((unsigned)data[1] << 8 | data[2]) % 700);
  const char *raw = (const char *)data + 3;
  size_t len = size - 3;

  struct rq_reply r;
  int prc = rq_reply_parse(len ? raw : NULL, len, &r);
  if (prc != 0 && r.code != 0) abort();
  if (prc == 0 && (r.code < 100 || r.code > 599)) abort();
  check_text(r.text, sizeof r.text);
  if (strnlen(r.enhanced, sizeof r.enhanced) == sizeof r.enhanced) abort();

  struct rq_class c;
  for (int s = 0; s < RQ_STAGE__COUNT; s++) {
    rq_classify_smtp((enum rq_smtp_stage)s, &r, &c);
    check_class(&c);
  }
  rq_classify_smtp(RQ_STAGE_RCPT, NULL, &c);
  check_class(&c);

  /* The other entry points take NUL-terminated text: one copy. */
  char *text = malloc(len + 1);
  if (text == NULL) return 0;
  memcpy(text, raw, len);
  text[len] = '\0';

  rq_curl_classify(curl_code, text, (enum rq_smtp_stage)(data[0] % RQ_STAGE__COUNT), &c);
  check_class(&c);

  /* Retry-After is one header line: cut at the first line end. */
  char *retry_after = strdup(text);
  if (retry_after != NULL) retry_after[strcspn(retry_after, "\r\n")] = '\0';
  rq_classify_http(status, raw, len, retry_after, 1700000000000LL, &c);
  check_class(&c);
  rq_classify_http(status, NULL, 0, NULL, 0, &c);
  check_class(&c);

  int64_t hint = rq_retry_hint_parse(text);
  if (hint < 0 || hint > RQ_RETRY_HINT_MAX_MS) abort();

  char small[17];
  size_t w = rq_text_sanitize(small, sizeof small, raw, len);
  if (w >= sizeof small || strlen(small) != w) abort();
  check_text(small, sizeof small);

  free(retry_after);
  free(text);
  return 0;
}
