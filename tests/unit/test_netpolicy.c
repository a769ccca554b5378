/* Unit tests for the SaaS network boundary's address arithmetic
 * (worker/mail/netpolicy.c, pure). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "check.h"
#include "netpolicy.h"

/* The class of a textual address through a sockaddr, as transports see it. */
static int check(const struct rq_netpolicy *p, const char *text) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, text, &s4->sin_addr) == 1) s4->sin_family = AF_INET;
  else if (inet_pton(AF_INET6, text, &s6->sin6_addr) == 1) s6->sin6_family = AF_INET6;
  else return -99;
  return rq_netpolicy_check_addr(p, (struct sockaddr *)&ss);
}

int main(void) {
  struct rq_netpolicy p;
  char err[200];
  rq_netpolicy_init(&p, 1);

  /* Forbidden classes. */
  CHECK_INT(check(&p, "127.0.0.1"), ==, RQ_NET_LOOPBACK);
  CHECK_INT(check(&p, "127.255.3.4"), ==, RQ_NET_LOOPBACK);
  CHECK_INT(check(&p, "10.1.2.3"), ==, RQ_NET_PRIVATE);
  CHECK_INT(check(&p, "172.16.0.1"), ==, RQ_NET_PRIVATE);
  CHECK_INT(check(&p, "172.31.255.255"), ==, RQ_NET_PRIVATE);
  CHECK_INT(check(&p, "172.32.0.1"), ==, 0);
  CHECK_INT(check(&p, "192.168.1.1"), ==, RQ_NET_PRIVATE);
  CHECK_INT(check(&p, "100.64.0.1"), ==, RQ_NET_PRIVATE);
  CHECK_INT(check(&p, "100.127.255.254"), ==, RQ_NET_PRIVATE);
  CHECK_INT(check(&p, "100.128.0.1"), ==, 0);
  CHECK_INT(check(&p, "169.254.169.254"), ==, RQ_NET_LINK_LOCAL);
  CHECK_INT(check(&p, "0.0.0.0"), ==, RQ_NET_UNSPECIFIED);
  CHECK_INT(check(&p, "255.255.255.255"), ==, RQ_NET_BROADCAST);
  CHECK_INT(check(&p, "224.0.0.1"), ==, RQ_NET_MULTICAST);
  CHECK_INT(check(&p, "240.0.0.1"), ==, RQ_NET_RESERVED);
  CHECK_INT(check(&p, "192.0.2.1"), ==, RQ_NET_RESERVED);
  CHECK_INT(check(&p, "198.18.0.1"), ==, RQ_NET_RESERVED);
  CHECK_INT(check(&p, "8.8.8.8"), ==, 0);
  CHECK_INT(check(&p, "::1"), ==, RQ_NET_LOOPBACK);
  CHECK_INT(check(&p, "::"), ==, RQ_NET_UNSPECIFIED);
  CHECK_INT(check(&p, "fc00::1"), ==, RQ_NET_PRIVATE);
  CHECK_INT(check(&p, "fd12:3456::1"), ==, RQ_NET_PRIVATE);
  CHECK_INT(check(&p, "fe80::1"), ==, RQ_NET_LINK_LOCAL);
  CHECK_INT(check(&p, "fec0::1"), ==, RQ_NET_PRIVATE);
  CHECK_INT(check(&p, "ff02::1"), ==, RQ_NET_MULTICAST);
  CHECK_INT(check(&p, "2001:db8::1"), ==, RQ_NET_RESERVED);
  CHECK_INT(check(&p, "100::1"), ==, RQ_NET_RESERVED);
  CHECK_INT(check(&p, "2606:4700::1111"), ==, 0);
  /* IPv4 inside IPv6 is judged by the IPv4 address. */
  CHECK_INT(check(&p, "::ffff:127.0.0.1"), ==, RQ_NET_LOOPBACK);
  CHECK_INT(check(&p, "::ffff:169.254.169.254"), ==, RQ_NET_LINK_LOCAL);
  CHECK_INT(check(&p, "::ffff:8.8.8.8"), ==, 0);
  CHECK_INT(check(&p, "::127.0.0.1"), ==, RQ_NET_LOOPBACK);
  CHECK_INT(check(&p, "::8.8.8.8"), ==, RQ_NET_RESERVED);
  CHECK_INT(check(&p, "64:ff9b::10.0.0.1"), ==, RQ_NET_PRIVATE);
  CHECK_INT(check(&p, "2002:7f00:1::1"), ==, RQ_NET_LOOPBACK);
  CHECK_INT(check(&p, "2002:0808:0808::1"), ==, 0);

  /* Not enforcing, or no policy: everything goes. */
  struct rq_netpolicy open;
  rq_netpolicy_init(&open, 0);
  CHECK_INT(check(&open, "127.0.0.1"), ==, 0);
  CHECK_INT(check(NULL, "169.254.169.254"), ==, 0);

  /* Allowances. */
  CHECK_INT(rq_netpolicy_allow(&p, "127.0.0.0/8, 10.8.0.0/16,fd00:1::/48", err, sizeof err), ==, 0);
  CHECK_INT(p.n_allow, ==, 3);
  CHECK_INT(check(&p, "127.0.0.1"), ==, 0);
  CHECK_INT(check(&p, "::ffff:127.0.0.2"), ==, 0);
  CHECK_INT(check(&p, "10.8.200.1"), ==, 0);
  CHECK_INT(check(&p, "10.9.0.1"), ==, RQ_NET_PRIVATE);
  CHECK_INT(check(&p, "fd00:1::5"), ==, 0);
  CHECK_INT(check(&p, "fd00:2::5"), ==, RQ_NET_PRIVATE);
  CHECK_INT(check(&p, "::1"), ==, RQ_NET_LOOPBACK); /* 127/8 does not open ::1 */
  CHECK_INT(rq_netpolicy_allow(&p, "10.0.0.0/33", err, sizeof err), ==, -1);
  CHECK(strstr(err, "10.0.0.0/33") != NULL);
  CHECK_INT(rq_netpolicy_allow(&p, "bogus", err, sizeof err), ==, -1);
  CHECK_INT(p.n_allow, ==, 3); /* unchanged on error */
  CHECK_INT(rq_netpolicy_allow(&p, "", err, sizeof err), ==, 0);
  struct rq_cidr c;
  CHECK_INT(rq_cidr_parse("192.168.77.9/20", 15, &c), ==, 0);
  CHECK_INT(c.prefix, ==, 20);
  CHECK_INT(c.addr[2], ==, 64); /* host bits cleared */
  CHECK_INT(rq_cidr_parse("1.2.3.4", 7, &c), ==, 0);
  CHECK_INT(c.prefix, ==, 32);
  CHECK_INT(rq_cidr_parse("1.2.3.4/", 8, &c), ==, -1);

  /* Numeric shorthand. */
  CHECK_INT(rq_net_numeric_shorthand("127.1"), ==, 1);
  CHECK_INT(rq_net_numeric_shorthand("2130706433"), ==, 1);
  CHECK_INT(rq_net_numeric_shorthand("0x7f.1"), ==, 1);
  CHECK_INT(rq_net_numeric_shorthand("0x7f000001"), ==, 1);
  CHECK_INT(rq_net_numeric_shorthand("017700000001"), ==, 1);
  CHECK_INT(rq_net_numeric_shorthand("1.2.3.4.5"), ==, 1);
  CHECK_INT(rq_net_numeric_shorthand("127.1."), ==, 1);
  CHECK_INT(rq_net_numeric_shorthand("127.0.0.1"), ==, 0);
  CHECK_INT(rq_net_numeric_shorthand("[::1]"), ==, 0);
  CHECK_INT(rq_net_numeric_shorthand("smtp.example.com"), ==, 0);
  CHECK_INT(rq_net_numeric_shorthand("1e100.net"), ==, 0);
  CHECK_INT(rq_net_numeric_shorthand("123.example"), ==, 0);

  /* Host strings before any lookup. */
  struct rq_netpolicy strict;
  rq_netpolicy_init(&strict, 1);
  CHECK_INT(rq_netpolicy_check_host(&strict, "127.1", err, sizeof err), ==, -1);
  CHECK(strstr(err, "numeric shorthand") != NULL);
  CHECK_INT(rq_netpolicy_check_host(&strict, "169.254.169.254", err, sizeof err), ==, -1);
  CHECK(strstr(err, "link-local") != NULL);
  CHECK_INT(rq_netpolicy_check_host(&strict, "[::1]", err, sizeof err), ==, -1);
  CHECK(strstr(err, "is a loopback address") != NULL);
  CHECK_INT(rq_netpolicy_check_host(&strict, "0.0.0.0", err, sizeof err), ==, -1);
  CHECK(strstr(err, "is an unspecified address") != NULL); /* a/an */
  CHECK_INT(rq_netpolicy_check_host(&strict, "smtp.example.com", err, sizeof err), ==, 0);
  CHECK_INT(rq_netpolicy_check_host(&strict, "8.8.8.8", err, sizeof err), ==, 0);
  CHECK_INT(rq_netpolicy_check_host(&p, "127.0.0.1", err, sizeof err), ==, 0);
  CHECK_INT(rq_netpolicy_check_host(&p, "127.1", err, sizeof err), ==, -1); /* shorthand even when allowed */
  CHECK_INT(rq_netpolicy_check_host(&open, "127.1", err, sizeof err), ==, 0);
  CHECK_STR(rq_net_class_name(RQ_NET_LINK_LOCAL), "link-local");
  return CHECK_DONE();
}
