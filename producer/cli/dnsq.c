/*
 * dnsq: blocking lookups through libresolv with a private res_state; see
 * dnsq.h.
 */
#include "dnsq.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

#define ANSWER_MAX 65535 /* the largest DNS message (TCP) */

/* Owns the resolver state and its answer buffer. */
struct dnsq {
  struct __res_state rs;
  int custom;            /* one server from --dns-server / RELAYQ_DNS_SERVER */
  char server[80];       /* for messages */
  unsigned char buf[ANSWER_MAX];
};

int dnsq_valid_name(const char *name) {
  size_t n = strlen(name), label = 0;
  if (n == 0 || n > 253) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (c == '.') {
      if (label == 0) return 0;
      label = 0;
      continue;
    }
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '_'))
      return 0;
    if (++label > 63) return 0;
  }
  return label > 0;
}

int dnsq_valid_qname(const char *name) {
  size_t n = strlen(name), label = 0;
  if (n == 0 || n > 253) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)name[i];
    if (c == '.') {
      if (label == 0) return 0;
      label = 0;
      continue;
    }
    /* A backslash would be read as an escape by dn_comp. */
    if (c < 0x20 || c > 0x7e || c == '\\') return 0;
    if (++label > 63) return 0;
  }
  return label > 0;
}

/* Parses IP, IP:PORT, [IPv6]:PORT or a bare IPv6 into a socket address. */
static int parse_server(const char *s, struct sockaddr_in *v4, struct sockaddr_in6 *v6, int *family) {
  char host[64];
  const char *port = NULL;
  if (s[0] == '[') {
    const char *close = strchr(s, ']');
    if (close == NULL || (size_t)(close - s - 1) >= sizeof host) return -1;
    memcpy(host, s + 1, (size_t)(close - s - 1));
    host[close - s - 1] = '\0';
    if (close[1] == ':') port = close + 2;
    else if (close[1] != '\0') return -1;
  } else {
    const char *colon = strchr(s, ':');
    /* More than one colon: a bare IPv6 address without a port. */
    if (colon && strchr(colon + 1, ':') == NULL) port = colon + 1;
    size_t hl = port ? (size_t)(colon - s) : strlen(s);
    if (hl >= sizeof host) return -1;
    memcpy(host, s, hl);
    host[hl] = '\0';
  }
  long p = 53;
  if (port) {
    char *end = NULL;
    errno = 0;
    p = strtol(port, &end, 10);
    if (errno || end == port || *end != '\0' || p < 1 || p > 65535) return -1;
  }
  memset(v4, 0, sizeof *v4);
  memset(v6, 0, sizeof *v6);
  if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)p);
    *family = 4;
    return 0;
  }
  if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)p);
    *family = 6;
    return 0;
  }
  return -1;
}

/* Names the first configured server for messages, "10.0.0.2:53 (from
 * /etc/resolv.conf)". */
static void describe_system(struct dnsq *q) {
  char a[INET6_ADDRSTRLEN] = "";
  int port = 53;
  if (q->rs.nscount > 0 && q->rs.nsaddr_list[0].sin_family == AF_INET) {
    inet_ntop(AF_INET, &q->rs.nsaddr_list[0].sin_addr, a, sizeof a);
    port = ntohs(q->rs.nsaddr_list[0].sin_port);
  } else if (q->rs.nscount > 0 && q->rs._u._ext.nsaddrs[0] != NULL) {
    inet_ntop(AF_INET6, &q->rs._u._ext.nsaddrs[0]->sin6_addr, a, sizeof a);
    port = ntohs(q->rs._u._ext.nsaddrs[0]->sin6_port);
  }
  if (a[0] == '\0') snprintf(q->server, sizeof q->server, "of the system (/etc/resolv.conf)");
  else if (strchr(a, ':')) snprintf(q->server, sizeof q->server, "[%s]:%d (from /etc/resolv.conf)", a, port);
  else snprintf(q->server, sizeof q->server, "%s:%d (from /etc/resolv.conf)", a, port);
}

int dnsq_open(const char *server, struct dnsq **out, char *err, size_t errlen) {
  *out = NULL;
  const char *from = "--dns-server";
  if (server == NULL || server[0] == '\0') {
    server = getenv("RELAYQ_DNS_SERVER");
    from = "RELAYQ_DNS_SERVER";
  }
  struct sockaddr_in v4;
  struct sockaddr_in6 v6;
  int family = 0;
  if (server && server[0] && parse_server(server, &v4, &v6, &family) != 0)
    return rq_errf(err, errlen, "%s '%.80s' is not IP[:PORT] or [IPv6]:PORT.", from, server), -1;

  struct dnsq *q = calloc(1, sizeof *q);
  if (q == NULL) return rq_errf(err, errlen, "out of memory."), -1;
  if (res_ninit(&q->rs) != 0) {
    free(q);
    return rq_errf(err, errlen, "cannot read the resolver configuration (/etc/resolv.conf)."), -1;
  }
  q->rs.retrans = DNSQ_TIMEOUT_S;
  q->rs.retry = DNSQ_TRIES;
  describe_system(q);
  if (family) {
    q->custom = 1;
    snprintf(q->server, sizeof q->server, "%s", server);
    q->rs.nscount = 1;
    if (family == 4) {
      /* glibc sends to nsaddr_list[n] whenever its family is set
       * (resolv/res-state.c __res_get_nsaddr). */
      q->rs.nsaddr_list[0] = v4;
    } else {
      /* An IPv6 server does not fit nsaddr_list: glibc reads
       * _u._ext.nsaddrs[n] when nsaddr_list[n].sin_family is 0, and
       * res_nclose frees that pointer. */
      struct sockaddr_in6 *sa = q->rs._u._ext.nsaddrs[0];
      if (sa == NULL && (sa = malloc(sizeof *sa)) == NULL) {
        res_nclose(&q->rs);
        free(q);
        return rq_errf(err, errlen, "out of memory."), -1;
      }
      *sa = v6;
      q->rs._u._ext.nsaddrs[0] = sa;
      memset(&q->rs.nsaddr_list[0], 0, sizeof q->rs.nsaddr_list[0]);
    }
    /* With one server, return its SERVFAIL or REFUSED answer instead of
     * retrying it as if it had not answered (glibc res_send.c: "don't
     * retry if called from dig"), so the message can say which. */
    q->rs.pfcode = 1;
  }
  *out = q;
  return 0;
}

void dnsq_close(struct dnsq *q) {
  if (q == NULL) return;
  res_nclose(&q->rs);
  free(q);
}

const char *dnsq_server(const struct dnsq *q) { return q->server; }

void dnsq_strs_free(char **v, size_t n) {
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

static const char *type_name(int type) {
  switch (type) {
  case ns_t_txt: return "TXT";
  case ns_t_a: return "A";
  case ns_t_aaaa: return "AAAA";
  case ns_t_mx: return "MX";
  default: return "?";
  }
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Sends one query. Returns DNSQ_OK with *len bytes of answer in q->buf and
 * *msg ready to read, DNSQ_NONE, or an error with err.
 */
static int query(struct dnsq *q, const char *name, int type, ns_msg *msg, char *err, size_t errlen) {
  if (!dnsq_valid_qname(name))
    return rq_errf(err, errlen, "'%.80s' is not a DNS name that can be looked up.", name), DNSQ_EFAIL;
  /* res_nquery returns -1 both for "no answer" and for an answer with an
   * error code, leaving the latter in buf: a cleared header tells them
   * apart (QR set means a server answered). */
  memset(q->buf, 0, HFIXEDSZ);
  errno = 0;
  double t0 = now_s();
  int n = res_nquery(&q->rs, name, ns_c_in, type, q->buf, sizeof q->buf);
  int saved = errno;
  if (n < 0) {
    const HEADER *h = (const HEADER *)q->buf;
    if (h->qr) {
      switch (h->rcode) {
      case ns_r_noerror: /* NODATA */
      case ns_r_nxdomain: return DNSQ_NONE;
      case ns_r_servfail:
        return rq_errf(err, errlen, "the DNS server %s failed to look up %s %s (SERVFAIL).", q->server, name,
                       type_name(type)),
               DNSQ_EFAIL;
      case ns_r_refused:
        return rq_errf(err, errlen, "the DNS server %s refused to look up %s %s (REFUSED): is it a resolver "
                                    "that serves this client?",
                       q->server, name, type_name(type)),
               DNSQ_EFAIL;
      default:
        return rq_errf(err, errlen, "the DNS server %s answered %s %s with error code %d.", q->server, name,
                       type_name(type), h->rcode),
               DNSQ_EFAIL;
      }
    }
    int h_err = q->rs.res_h_errno;
    if (h_err == HOST_NOT_FOUND || h_err == NO_DATA) return DNSQ_NONE;
    if (saved == ECONNREFUSED && now_s() - t0 < DNSQ_TIMEOUT_S)
      return rq_errf(err, errlen, "the DNS server %s refused the connection (nothing answers DNS there).",
                     q->server),
             DNSQ_EUNREACHABLE;
    return rq_errf(err, errlen, "the DNS server %s did not answer (looked up %s %s, waited %.0f s).", q->server,
                   name, type_name(type), now_s() - t0),
           DNSQ_EUNREACHABLE;
  }
  if (n > (int)sizeof q->buf) n = (int)sizeof q->buf; /* truncated: read what fits */
  if (ns_initparse(q->buf, n, msg) < 0)
    return rq_errf(err, errlen, "the DNS server %s sent a malformed answer for %s %s.", q->server, name,
                   type_name(type)),
           DNSQ_EFAIL;
  return DNSQ_OK;
}

/* Calls fn on each answer record of `type`, at most DNSQ_MAX_ANSWERS.
 * fn returns 0, or -1 for out of memory. */
typedef int (*rr_fn)(const ns_msg *msg, const ns_rr *rr, void *arg);

static int each_rr(struct dnsq *q, const char *name, int type, rr_fn fn, void *arg, size_t *count, char *err,
                   size_t errlen) {
  ns_msg msg;
  *count = 0;
  int rc = query(q, name, type, &msg, err, errlen);
  if (rc != DNSQ_OK) return rc;
  int total = ns_msg_count(msg, ns_s_an);
  for (int i = 0; i < total && *count < DNSQ_MAX_ANSWERS; i++) {
    ns_rr rr;
    if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
      return rq_errf(err, errlen, "the DNS server %s sent a malformed answer for %s %s.", q->server, name,
                     type_name(type)),
             DNSQ_EFAIL;
    if ((int)ns_rr_type(rr) != type || ns_rr_class(rr) != ns_c_in) continue; /* CNAME chain */
    int frc = fn(&msg, &rr, arg);
    if (frc == DNSQ_ENOMEM) return rq_errf(err, errlen, "out of memory."), DNSQ_ENOMEM;
    if (frc == 0) (*count)++;
  }
  return *count ? DNSQ_OK : DNSQ_NONE;
}

struct strs {
  char **v;
  size_t n;
};

static int push_str(struct strs *s, char *str) {
  if (str == NULL) return DNSQ_ENOMEM;
  char **v = realloc(s->v, (s->n + 1) * sizeof *v);
  if (v == NULL) {
    free(str);
    return DNSQ_ENOMEM;
  }
  s->v = v;
  s->v[s->n++] = str;
  return 0;
}

/* TXT RDATA: one or more <length><bytes> strings, joined. */
static int txt_rr(const ns_msg *msg, const ns_rr *rr, void *arg) {
  (void)msg;
  const unsigned char *p = ns_rr_rdata(*rr), *end = p + ns_rr_rdlen(*rr);
  char *out = malloc((size_t)ns_rr_rdlen(*rr) + 1);
  size_t k = 0;
  if (out == NULL) return DNSQ_ENOMEM;
  while (p < end) {
    size_t l = *p++;
    if (l > (size_t)(end - p)) l = (size_t)(end - p); /* malformed: keep what is there */
    for (size_t i = 0; i < l; i++) out[k++] = p[i] ? (char)p[i] : 0x7f;
    p += l;
  }
  out[k] = '\0';
  return push_str(arg, out);
}

/* The strings fn makes of name's records of type: all of them, or none
 * (freed) when the answer is not DNSQ_OK. */
static int each_str(struct dnsq *q, const char *name, int type, rr_fn fn, char ***out, size_t *n, char *err,
                    size_t errlen) {
  struct strs s = {NULL, 0};
  size_t count;
  int rc = each_rr(q, name, type, fn, &s, &count, err, errlen);
  if (rc != DNSQ_OK) {
    dnsq_strs_free(s.v, s.n);
    s.v = NULL, s.n = 0;
  }
  *out = s.v, *n = s.n;
  return rc;
}

int dnsq_txt(struct dnsq *q, const char *name, char ***recs, size_t *n, char *err, size_t errlen) {
  return each_str(q, name, ns_t_txt, txt_rr, recs, n, err, errlen);
}

struct addrs {
  struct dnsq_addr *v;
  size_t n;
  int family;
};

static int addr_rr(const ns_msg *msg, const ns_rr *rr, void *arg) {
  (void)msg;
  struct addrs *a = arg;
  size_t want = a->family == 4 ? 4 : 16;
  if (ns_rr_rdlen(*rr) != want) return 1; /* malformed: skip */
  struct dnsq_addr *v = realloc(a->v, (a->n + 1) * sizeof *v);
  if (v == NULL) return DNSQ_ENOMEM;
  a->v = v;
  memset(&v[a->n], 0, sizeof v[a->n]);
  v[a->n].family = a->family;
  memcpy(v[a->n].addr, ns_rr_rdata(*rr), want);
  a->n++;
  return 0;
}

int dnsq_addr(struct dnsq *q, const char *name, int family, struct dnsq_addr **addrs, size_t *n, char *err,
              size_t errlen) {
  struct addrs a = {NULL, 0, family == 6 ? 6 : 4};
  size_t count;
  int rc = each_rr(q, name, a.family == 4 ? ns_t_a : ns_t_aaaa, addr_rr, &a, &count, err, errlen);
  if (rc != DNSQ_OK) {
    free(a.v);
    a.v = NULL, a.n = 0;
  }
  *addrs = a.v, *n = a.n;
  return rc;
}

/* MX RDATA: 16-bit preference, then a (possibly compressed) name. */
static int mx_rr(const ns_msg *msg, const ns_rr *rr, void *arg) {
  char host[NS_MAXDNAME];
  if (ns_rr_rdlen(*rr) < 3) return 1;
  if (dn_expand(ns_msg_base(*msg), ns_msg_end(*msg), ns_rr_rdata(*rr) + 2, host, sizeof host) < 0) return 1;
  size_t l = strlen(host);
  if (l && host[l - 1] == '.') host[--l] = '\0';
  return push_str(arg, strdup(host));
}

int dnsq_mx(struct dnsq *q, const char *name, char ***hosts, size_t *n, char *err, size_t errlen) {
  return each_str(q, name, ns_t_mx, mx_rr, hosts, n, err, errlen);
}
