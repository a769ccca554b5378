/* netpolicy: the SaaS network boundary's address arithmetic. See netpolicy.h. */
#include "netpolicy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

void rq_netpolicy_init(struct rq_netpolicy *p, int enforce) {
  memset(p, 0, sizeof *p);
  p->enforce = enforce ? 1 : 0;
}

/* ---- CIDRs --------------------------------------------------------------------- */

static void mask_host_bits(unsigned char *a, size_t len, int prefix) {
  for (size_t i = 0; i < len; i++) {
    int bits = prefix - (int)(i * 8);
    if (bits >= 8) continue;
    a[i] = bits <= 0 ? 0 : (unsigned char)(a[i] & (0xff << (8 - bits)));
  }
}

int rq_cidr_parse(const char *s, size_t len, struct rq_cidr *out) {
  char buf[80];
  while (len && (*s == ' ' || *s == '\t')) s++, len--;
  while (len && (s[len - 1] == ' ' || s[len - 1] == '\t')) len--;
  if (len == 0 || len >= sizeof buf) return -1;
  memcpy(buf, s, len);
  buf[len] = '\0';
  char *slash = strchr(buf, '/');
  int prefix = -1;
  if (slash) {
    *slash = '\0';
    const char *d = slash + 1;
    if (!*d || strlen(d) > 3) return -1;
    prefix = 0;
    for (; *d; d++) {
      if (*d < '0' || *d > '9') return -1;
      prefix = prefix * 10 + (*d - '0');
    }
  }
  memset(out, 0, sizeof *out);
  if (inet_pton(AF_INET, buf, out->addr) == 1) {
    out->family = AF_INET;
    if (prefix < 0) prefix = 32;
    if (prefix > 32) return -1;
    out->prefix = prefix;
    mask_host_bits(out->addr, 4, prefix);
    return 0;
  }
  if (inet_pton(AF_INET6, buf, out->addr) == 1) {
    out->family = AF_INET6;
    if (prefix < 0) prefix = 128;
    if (prefix > 128) return -1;
    out->prefix = prefix;
    mask_host_bits(out->addr, 16, prefix);
    return 0;
  }
  return -1;
}

int rq_netpolicy_allow(struct rq_netpolicy *p, const char *list, char *err, size_t errlen) {
  struct rq_netpolicy tmp = *p;
  const char *q = list ? list : "";
  while (*q) {
    const char *comma = strchr(q, ',');
    size_t n = comma ? (size_t)(comma - q) : strlen(q);
    size_t k = 0;
    while (k < n && (q[k] == ' ' || q[k] == '\t')) k++;
    if (k < n) {
      if (tmp.n_allow == RQ_NETPOLICY_MAX_NETS) {
        snprintf(err, errlen, "at most %d networks may be allowed", RQ_NETPOLICY_MAX_NETS);
        return -1;
      }
      if (rq_cidr_parse(q, n, &tmp.allow[tmp.n_allow]) != 0) {
        snprintf(err, errlen,
                 "'%.*s' is not a network: write CIDRs such as 10.8.0.0/16 or fd00:1::/48, separated by commas",
                 (int)(n > 60 ? 60 : n), q);
        return -1;
      }
      tmp.n_allow++;
    }
    if (!comma) break;
    q = comma + 1;
  }
  *p = tmp;
  return 0;
}

/* ---- classification ---------------------------------------------------------------- */

static int in4(uint32_t a, uint32_t net, int prefix) {
  uint32_t mask = prefix == 0 ? 0 : 0xffffffffu << (32 - prefix);
  return (a & mask) == net;
}

#define V4(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (uint32_t)(d))

static enum rq_net_class classify4(const unsigned char *b) {
  uint32_t a = ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
  if (a == 0xffffffffu) return RQ_NET_BROADCAST;
  if (in4(a, V4(0, 0, 0, 0), 8)) return RQ_NET_UNSPECIFIED; /* "this network" (RFC 1122) */
  if (in4(a, V4(127, 0, 0, 0), 8)) return RQ_NET_LOOPBACK;
  if (in4(a, V4(10, 0, 0, 0), 8) || in4(a, V4(172, 16, 0, 0), 12) || in4(a, V4(192, 168, 0, 0), 16) ||
      in4(a, V4(100, 64, 0, 0), 10))
    return RQ_NET_PRIVATE;
  if (in4(a, V4(169, 254, 0, 0), 16)) return RQ_NET_LINK_LOCAL;
  if (in4(a, V4(224, 0, 0, 0), 4)) return RQ_NET_MULTICAST;
  if (in4(a, V4(240, 0, 0, 0), 4) ||      /* future use, RFC 1112 */
      in4(a, V4(192, 0, 0, 0), 24) ||     /* IETF protocol assignments */
      in4(a, V4(192, 0, 2, 0), 24) ||     /* TEST-NET-1 */
      in4(a, V4(198, 51, 100, 0), 24) ||  /* TEST-NET-2 */
      in4(a, V4(203, 0, 113, 0), 24) ||   /* TEST-NET-3 */
      in4(a, V4(198, 18, 0, 0), 15) ||    /* benchmarking */
      in4(a, V4(192, 88, 99, 0), 24))     /* 6to4 relay anycast, deprecated */
    return RQ_NET_RESERVED;
  return RQ_NET_PUBLIC;
}

static int prefix_eq(const unsigned char *a, const unsigned char *p, size_t n) {
  return memcmp(a, p, n) == 0;
}

static enum rq_net_class classify6(const unsigned char *b) {
  static const unsigned char zero[16] = {0};
  static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  if (prefix_eq(b, zero, 16)) return RQ_NET_UNSPECIFIED;
  if (prefix_eq(b, zero, 15) && b[15] == 1) return RQ_NET_LOOPBACK;
  /* IPv4 carried inside IPv6: judged by the IPv4 address. */
  if (prefix_eq(b, mapped, 12) || prefix_eq(b, nat64, 12)) return classify4(b + 12);
  if (prefix_eq(b, zero, 12)) { /* IPv4-compatible, deprecated (RFC 4291 2.5.5.1) */
    enum rq_net_class c = classify4(b + 12);
    return c == RQ_NET_PUBLIC ? RQ_NET_RESERVED : c;
  }
  if (b[0] == 0x20 && b[1] == 0x02) { /* 6to4: 2002:AABB:CCDD::/48 */
    enum rq_net_class c = classify4(b + 2);
    if (c != RQ_NET_PUBLIC) return c;
  }
  if (b[0] == 0xff) return RQ_NET_MULTICAST;
  if ((b[0] & 0xfe) == 0xfc) return RQ_NET_PRIVATE;                      /* fc00::/7 */
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return RQ_NET_LINK_LOCAL;   /* fe80::/10 */
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return RQ_NET_PRIVATE;      /* fec0::/10 site-local */
  if (b[0] == 0 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && b[4] == 0 && b[5] == 1)
    return RQ_NET_PRIVATE; /* 64:ff9b:1::/48, local-use NAT64 */
  if ((b[0] & 0xe0) != 0x20) return RQ_NET_RESERVED; /* outside global unicast 2000::/3 */
  if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) return RQ_NET_RESERVED; /* documentation */
  if (b[0] == 0x20 && b[1] == 0x01 && b[2] < 0x02) return RQ_NET_RESERVED; /* 2001::/23 IETF, Teredo */
  return RQ_NET_PUBLIC;
}

enum rq_net_class rq_net_classify(const unsigned char *addr, size_t len) {
  if (len == 4) return classify4(addr);
  if (len == 16) return classify6(addr);
  return RQ_NET_RESERVED;
}

const char *rq_net_class_name(enum rq_net_class c) {
  switch (c) {
  case RQ_NET_PUBLIC: return "public";
  case RQ_NET_LOOPBACK: return "loopback";
  case RQ_NET_PRIVATE: return "private";
  case RQ_NET_LINK_LOCAL: return "link-local";
  case RQ_NET_UNSPECIFIED: return "unspecified";
  case RQ_NET_BROADCAST: return "broadcast";
  case RQ_NET_MULTICAST: return "multicast";
  case RQ_NET_RESERVED: return "reserved";
  }
  return "reserved";
}

/* ---- checks ------------------------------------------------------------------------ */

static int cidr_contains(const struct rq_cidr *c, const unsigned char *a, size_t len) {
  if ((c->family == AF_INET && len != 4) || (c->family == AF_INET6 && len != 16)) return 0;
  int full = c->prefix / 8, rest = c->prefix % 8;
  if (memcmp(c->addr, a, (size_t)full) != 0) return 0;
  if (rest == 0) return 1;
  unsigned char m = (unsigned char)(0xff << (8 - rest));
  return (a[full] & m) == c->addr[full];
}

/* The address bytes of sa; for IPv4-mapped IPv6 also the IPv4 form, so an
 * allowance written as 10.0.0.0/8 covers ::ffff:10.0.0.1. Returns the
 * length (4 or 16), 0 for other families. */
static size_t addr_bytes(const struct sockaddr *sa, unsigned char out[16], unsigned char v4[4], int *has_v4) {
  *has_v4 = 0;
  if (sa->sa_family == AF_INET) {
    memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    memcpy(v4, out, 4);
    *has_v4 = 1;
    return 4;
  }
  if (sa->sa_family == AF_INET6) {
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    if (memcmp(out, mapped, 12) == 0) {
      memcpy(v4, out + 12, 4);
      *has_v4 = 1;
    }
    return 16;
  }
  return 0;
}

int rq_netpolicy_allowed_net(const struct rq_netpolicy *p, const struct sockaddr *sa) {
  unsigned char a[16], v4[4];
  int has_v4;
  size_t len = p && sa ? addr_bytes(sa, a, v4, &has_v4) : 0;
  if (!len) return 0;
  for (size_t i = 0; i < p->n_allow; i++)
    if (cidr_contains(&p->allow[i], a, len) || (has_v4 && cidr_contains(&p->allow[i], v4, 4))) return 1;
  return 0;
}

int rq_netpolicy_check_addr(const struct rq_netpolicy *p, const struct sockaddr *sa) {
  if (!p || !p->enforce) return 0;
  if (!sa) return RQ_NET_RESERVED;
  unsigned char a[16], v4[4];
  int has_v4;
  size_t len = addr_bytes(sa, a, v4, &has_v4);
  if (!len) return RQ_NET_RESERVED;
  enum rq_net_class c = rq_net_classify(a, len);
  if (c == RQ_NET_PUBLIC) return 0;
  return rq_netpolicy_allowed_net(p, sa) ? 0 : (int)c;
}

/* ---- host strings ------------------------------------------------------------------ */

static int is_number_label(const char *s, size_t n) {
  if (n == 0) return 0;
  if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    for (size_t i = 2; i < n; i++) {
      char ch = s[i];
      if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F'))) return 0;
    }
    return 1; /* "0x" alone counts: inet_aton reads it as 0 */
  }
  for (size_t i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9') return 0;
  return 1;
}

/* host without brackets into buf; 0 when it does not fit. */
static int unbracket(const char *host, char *buf, size_t cap) {
  size_t n = strlen(host);
  if (n >= 2 && host[0] == '[' && host[n - 1] == ']') host++, n -= 2;
  if (n == 0 || n >= cap) return 0;
  memcpy(buf, host, n);
  buf[n] = '\0';
  return 1;
}

int rq_net_numeric_shorthand(const char *host) {
  char buf[256];
  unsigned char a[16];
  if (!host || !unbracket(host, buf, sizeof buf)) return 0;
  if (inet_pton(AF_INET, buf, a) == 1 || inet_pton(AF_INET6, buf, a) == 1) return 0;
  size_t n = strlen(buf);
  if (n && buf[n - 1] == '.') n--; /* "127.1." is the same name */
  size_t start = n;
  while (start > 0 && buf[start - 1] != '.') start--;
  return is_number_label(buf + start, n - start);
}

int rq_netpolicy_check_host(const struct rq_netpolicy *p, const char *host, char *why, size_t whylen) {
  if (!p || !p->enforce || !host) return 0;
  char buf[256];
  if (!unbracket(host, buf, sizeof buf)) return 0; /* host syntax is the tenant model's to refuse */
  if (rq_net_numeric_shorthand(buf)) {
    snprintf(why, whylen,
             "'%.64s' is numeric shorthand for an address, not a host name: write a DNS name or a full IPv4 "
             "address (a.b.c.d) or an IPv6 address",
             buf);
    return -1;
  }
  struct sockaddr_in6 s6;
  struct sockaddr_in s4;
  const struct sockaddr *sa = NULL;
  memset(&s6, 0, sizeof s6);
  memset(&s4, 0, sizeof s4);
  if (inet_pton(AF_INET, buf, &s4.sin_addr) == 1) {
    s4.sin_family = AF_INET;
    sa = (const struct sockaddr *)&s4;
  } else if (inet_pton(AF_INET6, buf, &s6.sin6_addr) == 1) {
    s6.sin6_family = AF_INET6;
    sa = (const struct sockaddr *)&s6;
  }
  if (!sa) return 0;
  int c = rq_netpolicy_check_addr(p, sa);
  if (c == 0) return 0;
  const char *cls = rq_net_class_name((enum rq_net_class)c);
  snprintf(why, whylen,
           "%.64s is %s %s address, which tenants may not reach in --mode saas (the operator can open a network "
           "with --allow-private-nets)",
           buf, strchr("aeiou", cls[0]) ? "an" : "a", cls);
  return -1;
}
