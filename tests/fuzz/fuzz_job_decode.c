/*
 * libFuzzer target for the job decoder (producer/lib/codec.c): any bytes
 * must decode or fail cleanly; a payload that decodes must re-encode, and
 * the re-encoding must decode to the same job (id, tenant, recipients,
 * bodies, attachments) and re-encode to identical bytes.
 *
 * Build: CC=clang cmake -DRELAYQ_FUZZ=ON -DRELAYQ_SANITIZE=ON ...;
 * run: ./fuzz_job_decode tests/fuzz/corpus/job_decode
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relayq/relayq.h"

#define FUZZ_MAX_BYTES (1u << 20)

static int same_str(const char *a, const char *b) {
  return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static void same_job(const struct relayq_job *a, const struct relayq_job *b) {
  if (!same_str(a->id, b->id) || !same_str(a->tenant, b->tenant) || a->to.n != b->to.n ||
      a->cc.n != b->cc.n || a->bcc.n != b->bcc.n || !same_str(a->text, b->text) ||
      !same_str(a->html, b->html) || !same_str(a->subject, b->subject) ||
      a->raw_len != b->raw_len || a->n_attachments != b->n_attachments ||
      a->n_headers != b->n_headers || a->n_meta != b->n_meta || a->kind != b->kind ||
      a->not_before != b->not_before || !same_str(a->queue_, b->queue_))
    abort();
  for (size_t i = 0; i < a->n_attachments; i++)
    if (a->attachments[i].size != b->attachments[i].size ||
        memcmp(a->attachments[i].data, b->attachments[i].data, a->attachments[i].size) != 0)
      abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct relayq_job *job = NULL, *again = NULL;
  struct relayq_error err;
  int rc = relayq_job_decode(data, size, FUZZ_MAX_BYTES, &job, &err);
  if (rc != 0) {
    if (job != NULL || err.code != rc || err.message[0] == '\0') abort();
    return 0;
  }
  unsigned char *buf = NULL, *buf2 = NULL;
  size_t len = 0, len2 = 0;
  if (relayq_job_encode(job, &buf, &len, &err) != 0) abort(); /* decode's rules = encode's */
  if (relayq_job_decode(buf, len, 0, &again, &err) != 0) abort();
  same_job(job, again);
  if (relayq_job_encode(again, &buf2, &len2, &err) != 0) abort();
  if (len2 != len || memcmp(buf, buf2, len) != 0) abort();
  free(buf);
  free(buf2);
  relayq_job_free(job);
  relayq_job_free(again);
  return 0;
}
