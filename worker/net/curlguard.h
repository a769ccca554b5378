/*
 * curlguard: the saas network boundary (netpolicy.h) for libcurl
 * transfers: Mailgun's API and OAuth token endpoints.
 *
 * The check is made on the address libcurl actually connects to, in its
 * CURLOPT_OPENSOCKETFUNCTION, so a DNS answer that changes between any
 * earlier look and the connect cannot get around it (a forbidden address
 * gets no socket: curl tries the next one, or fails the transfer with
 * CURLE_COULDNT_CONNECT, and nothing was connected). Before that, the
 * URL itself is checked: numeric shorthand hosts and forbidden literal
 * addresses are refused, and plain http:// is accepted only towards an
 * --allow-private-nets network (checked again on the connected address).
 *
 * Ownership: a guard is plain memory the caller embeds in its transfer
 * and keeps until the transfer is done; the policy is borrowed.
 */
#ifndef RQ_CURLGUARD_H
#define RQ_CURLGUARD_H

#include <curl/curl.h>

struct rq_netpolicy;

struct rq_curl_guard {
  const struct rq_netpolicy *policy; /* NULL or not enforcing: nothing is checked */
  int plain_http;                    /* the URL is http://: only allowed networks */
  int refused;                       /* 1 once the boundary refused the URL or an address */
  char why[256];                     /* the tenant-facing sentence when refused */
};

/* Checks url and installs the socket check on e for g (g borrowed until
 * the transfer is done). With a NULL or non-enforcing policy it only
 * zeroes g. Returns 0, or -1 when curl refused the option. A URL refused
 * up front leaves g->refused set and every socket refused, so the
 * transfer still runs (and fails) through the caller's normal path. */
int rq_curl_guard_install(CURL *e, struct rq_curl_guard *g, const struct rq_netpolicy *policy, const char *url);

#endif
