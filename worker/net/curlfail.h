/*
 * curlfail: libcurl's CURLcodes in the transport-neutral failure
 * vocabulary of the mail core (classify.h, enum rq_fail). The mapping
 * lives here, beside the only code that runs libcurl, so the mail core
 * never includes curl.h.
 */
#ifndef RQ_CURLFAIL_H
#define RQ_CURLFAIL_H

#include "classify.h"

/* The failure kind of a CURLcode (as an int); errbuf (CURLOPT_ERRORBUFFER,
 * may be NULL) refines TLS handshake errors: "wrong version number" (TLS
 * spoken to a plain-text port) and no shared version or cipher are
 * TLS_MISMATCH, PERM. CURLE_OK is RQ_FAIL_NONE. */
enum rq_fail rq_curl_fail(int curl_code, const char *errbuf);

/* Classifies a libcurl failure for which no reply was captured: the kind
 * from rq_curl_fail through rq_classify_failure, with curl's message in
 * the detail. When curl's message ends in the server's code ("RCPT failed:
 * 550", "Authentication failed: 535", "STARTTLS denied, code 454") that
 * code is classified as a reply without text. */
void rq_curl_classify(int curl_code, const char *errbuf, enum rq_smtp_stage stage, struct rq_class *out);

#endif
