/*
 * dnsq: the blocking DNS lookups of `relayq dns check` and `relayq dnsbl
 * check`, on libresolv with a private resolver state.
 *
 * What this module owns:
 *   - choosing the resolver: --dns-server IP[:PORT] ([IPv6]:PORT for a
 *     port with IPv6), else RELAYQ_DNS_SERVER, else the system's
 *     /etc/resolv.conf; the chosen server is the only one asked;
 *   - bounded waiting: 2 s per try, 2 tries (about 4 s per lookup at
 *     most), so an unreachable resolver costs seconds, not minutes;
 *   - TXT (each record's strings concatenated, RFC 7208 section 3.3 and
 *     RFC 6376 section 3.6.2.2), A, AAAA and MX answers, read from the
 *     wire with ns_initparse/ns_parserr and bounded (DNSQ_MAX_ANSWERS);
 *   - telling "no such record" (NXDOMAIN, NODATA) apart from "no usable
 *     answer" (SERVFAIL, REFUSED, timeout, nothing listening), with a
 *     sentence that names the server and the lookup.
 *
 * The CLI is a one-shot process, so blocking calls are right here (the
 * worker never resolves on its loop). Names are queried as given, never
 * with the search list (res_nquery, not res_nsearch): an SPF or DNSBL name
 * is already fully qualified, and a search suffix would answer for some
 * other name. One struct dnsq per thread.
 */
#ifndef RELAYQ_DNSQ_H
#define RELAYQ_DNSQ_H

#include <stddef.h>

#define DNSQ_MAX_ANSWERS 64 /* records kept from one answer */
#define DNSQ_TIMEOUT_S 2    /* per try */
#define DNSQ_TRIES 2

enum dnsq_status {
  DNSQ_OK = 0,             /* records found */
  DNSQ_NONE = 1,           /* NXDOMAIN, or no record of that type */
  DNSQ_EFAIL = -1,         /* the server answered with an error (SERVFAIL,
                            * REFUSED) or garbage */
  DNSQ_EUNREACHABLE = -2,  /* no answer at all: timeout, connection refused */
  DNSQ_ENOMEM = -3,
};

/* One address: family 4 or 6; addr holds 4 or 16 bytes, network order. */
struct dnsq_addr {
  int family;
  unsigned char addr[16];
};

struct dnsq;

/*
 * Opens a resolver. server: "IP", "IP:PORT", "IPv6", "[IPv6]:PORT", or
 * NULL/"" for RELAYQ_DNS_SERVER, else the system configuration.
 * Returns 0 and *out (caller frees with dnsq_close), or -1 with a
 * sentence in err (bad address, no resolver configuration).
 */
int dnsq_open(const char *server, struct dnsq **out, char *err, size_t errlen);
void dnsq_close(struct dnsq *q);

/* "127.0.0.1:5353", or "the system resolver". Borrowed. */
const char *dnsq_server(const struct dnsq *q);

/*
 * Lookups. Each returns enum dnsq_status; on DNSQ_OK the arrays are
 * malloc'd and the caller's (dnsq_strs_free for strings, free for
 * addresses) with *n >= 1; otherwise they are NULL and *n 0, and on an
 * error err holds a sentence. Names are given without a trailing dot.
 *   dnsq_txt:  each TXT record's strings joined without separator; bytes
 *              are kept as sent, except NUL which becomes 0x7f so the
 *              string stays whole (and is rejected by any record parser).
 *   dnsq_addr: family 4 (A) or 6 (AAAA).
 *   dnsq_mx:   the exchange names, without trailing dot ("" for the null
 *              MX of RFC 7505).
 */
int dnsq_txt(struct dnsq *q, const char *name, char ***recs, size_t *n, char *err, size_t errlen);
int dnsq_addr(struct dnsq *q, const char *name, int family, struct dnsq_addr **addrs, size_t *n,
              char *err, size_t errlen);
int dnsq_mx(struct dnsq *q, const char *name, char ***hosts, size_t *n, char *err, size_t errlen);
void dnsq_strs_free(char **v, size_t n);

/* 1 when name is a syntactically valid DNS name to query: 1-253 bytes of
 * letters, digits, '-', '_' and dots, labels of 1-63 bytes. */
int dnsq_valid_name(const char *name);

/* 1 when name can be sent in a query: 1-253 bytes of printable ASCII
 * (space included) without a backslash, labels of 1-63 bytes. Wider than
 * dnsq_valid_name because SPF domain-specs may name any such host
 * ("a:foo:bar/baz.example.com", RFC 7208 section 7.1's "%_" space). */
int dnsq_valid_qname(const char *name);

#endif
