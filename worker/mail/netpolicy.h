/*
 * netpolicy: the SaaS network boundary (CONTRACT.md "Tenant isolation",
 * docs/security.md), as pure address arithmetic: no sockets, no DNS.
 *
 * Owns:
 *   - the classification of an IPv4 or IPv6 address into public or one of
 *     the classes a tenant may not reach: loopback, private (RFC 1918,
 *     RFC 6598 shared 100.64/10, RFC 4193 fc00::/7 and the deprecated
 *     site-local fec0::/10), link-local (RFC 3927, RFC 4291), unspecified,
 *     broadcast, multicast, reserved (RFC 6890 special-purpose blocks:
 *     documentation, benchmarking, 240/4, IPv6 outside 2000::/3, ...).
 *     IPv4 inside IPv6 (mapped ::ffff:0:0/96, compatible ::/96, NAT64
 *     64:ff9b::/96, 6to4 2002::/16) is classified by the IPv4 address it
 *     carries, so no spelling of 127.0.0.1 gets through;
 *   - the operator's allowance (`--allow-private-nets CIDR[,CIDR]`): a
 *     parsed list of networks a tenant may reach anyway;
 *   - numeric shorthand detection: "127.1", "2130706433", "0x7f.1" are
 *     read as addresses by inet_aton and getaddrinfo but are not host
 *     names (a name's last label is never a number, RFC 1123 2.1 as read
 *     by the WHATWG URL standard's "ends in a number").
 *
 * Where it is enforced (not here): smtp_conn.c checks every address right
 * before uv_tcp_connect; mailgun.c (and the OAuth token client) through
 * CURLOPT_OPENSOCKETFUNCTION, i.e. on the address libcurl actually
 * connects to, so a DNS answer that changes between a check and the
 * connect cannot get around it; the CLI's probe the same way.
 *
 * Ownership: struct rq_netpolicy is plain memory (no pointers); a NULL
 * policy means "allow every address" (--mode onprem), as does enforce 0.
 */
#ifndef RQ_NETPOLICY_H
#define RQ_NETPOLICY_H

#include <stddef.h>

struct sockaddr;

#define RQ_NETPOLICY_MAX_NETS 32

/* Address classes; RQ_NET_PUBLIC is the only one a tenant may reach
 * without an allowance. */
enum rq_net_class {
  RQ_NET_PUBLIC = 0,
  RQ_NET_LOOPBACK,
  RQ_NET_PRIVATE,
  RQ_NET_LINK_LOCAL,
  RQ_NET_UNSPECIFIED,
  RQ_NET_BROADCAST,
  RQ_NET_MULTICAST,
  RQ_NET_RESERVED,
};

struct rq_cidr {
  int family;              /* AF_INET or AF_INET6 */
  unsigned char addr[16];  /* network address, host bits zero; 4 bytes used for AF_INET */
  int prefix;              /* 0-32 or 0-128 */
};

struct rq_netpolicy {
  int enforce; /* 1: saas, the boundary holds; 0: every address allowed */
  size_t n_allow;
  struct rq_cidr allow[RQ_NETPOLICY_MAX_NETS];
};

/* An enforcing policy with no allowance. */
void rq_netpolicy_init(struct rq_netpolicy *p, int enforce);

/* Adds the comma-separated CIDRs of list ("10.8.0.0/16,fd00:1::/48"; a
 * bare address is a /32 or /128; spaces around items ignored; "" adds
 * nothing). Returns 0, or -1 with a sentence in err naming the bad item;
 * p is unchanged on error. */
int rq_netpolicy_allow(struct rq_netpolicy *p, const char *list, char *err, size_t errlen);

/* Parses one CIDR. 0 or -1. */
int rq_cidr_parse(const char *s, size_t len, struct rq_cidr *out);

/* The class of an address given as 4 (IPv4) or 16 (IPv6) bytes in network
 * order. */
enum rq_net_class rq_net_classify(const unsigned char *addr, size_t len);
/* "public", "loopback", "private", "link-local", "unspecified",
 * "broadcast", "multicast", "reserved". */
const char *rq_net_class_name(enum rq_net_class c);

/* The check every transport makes right before it connects: 0 when p is
 * NULL or does not enforce, when the address is public, or when it lies in
 * an allowed network; otherwise its class (> 0): do not connect. An
 * unknown address family is RQ_NET_RESERVED. */
int rq_netpolicy_check_addr(const struct rq_netpolicy *p, const struct sockaddr *sa);

/* 1 when sa lies inside one of p's allowed networks (the https rule:
 * plain http:// is accepted only towards those). */
int rq_netpolicy_allowed_net(const struct rq_netpolicy *p, const struct sockaddr *sa);

/* 1 when host (brackets allowed) is numeric shorthand: not an IPv4 or
 * IPv6 literal in standard form, yet its last label is a number (decimal,
 * octal or 0x hex), e.g. "127.1", "2130706433", "0x7f.1", "1.2.3.4.5". */
int rq_net_numeric_shorthand(const char *host);

/* The check of a configured host before any lookup: 0 when it may be
 * tried (a name, or a literal address that check_addr allows); -1 with a
 * sentence in why for numeric shorthand or a literal address that is
 * forbidden (naming its class). Names are checked again on each address
 * they resolve to, at connect time. p NULL or not enforcing: 0. */
int rq_netpolicy_check_host(const struct rq_netpolicy *p, const char *host, char *why, size_t whylen);

#endif
