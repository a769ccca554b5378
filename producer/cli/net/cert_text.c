/* cert_text: a certificate's names and dates as text (see cert_text.h). */
#include "cert_text.h"

#include <openssl/bio.h>

#include "classify.h"

/* What b holds, sanitised into out. */
static void take(BIO *b, char *out, size_t cap) {
  char buf[512];
  int n = BIO_read(b, buf, sizeof buf - 1);
  rq_text_sanitize(out, cap, buf, n > 0 ? (size_t)n : 0);
}

void cert_name_text(const X509_NAME *n, char *out, size_t cap) {
  BIO *b = BIO_new(BIO_s_mem());
  out[0] = '\0';
  if (b == NULL) return;
  if (X509_NAME_print_ex(b, n, 0, XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB) >= 0) take(b, out, cap);
  BIO_free(b);
}

void cert_time_text(const ASN1_TIME *t, char *out, size_t cap) {
  BIO *b = BIO_new(BIO_s_mem());
  out[0] = '\0';
  if (b == NULL) return;
  if (ASN1_TIME_print(b, t) == 1) take(b, out, cap);
  BIO_free(b);
}
