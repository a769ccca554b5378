/*
 * cert_text: what a person reads of a server's TLS certificate (its
 * subject, issuer and dates) as one sanitised line each, for the reports
 * of `tenant verify` (probe.c) and `tenant trust` (server_key.c). The
 * server chose these bytes: controls and invalid UTF-8 never reach the
 * terminal (rq_text_sanitize).
 */
#ifndef RELAYQ_CERT_TEXT_H
#define RELAYQ_CERT_TEXT_H

#include <stddef.h>

#include <openssl/x509.h>

/* "O = Acme, CN = mail.acme.example"; "" when it cannot be printed. */
void cert_name_text(const X509_NAME *n, char *out, size_t cap);
/* "Dec  6 05:08:48 2027 GMT"; "" when it cannot be printed. */
void cert_time_text(const ASN1_TIME *t, char *out, size_t cap);

#endif
