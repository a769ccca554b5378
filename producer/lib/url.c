/*
 * url: parses redis://[[user]:password@]host[:port][/db] (the Redis URI
 * scheme as redis-cli and redis-py read it; RFC 3986 for the generic
 * syntax and percent-encoding), rediss:// (the same over TLS, as
 * redis-cli --tls and redis-py read it), and
 * redis+sentinel://[[user]:password@]H[:P][,H[:P]...]/MASTER[/db] with
 * rediss+sentinel:// (a list of sentinels and the master's name, the
 * shape Lettuce and go-redis use; sentinel port 26379 by default).
 *
 * Messages name what is wrong and never repeat the URL or any part of the
 * userinfo: the URL carries the password.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-decodes p[0..n) into dst (cap bytes with the NUL). Returns 0,
 * -1 on a bad escape or a %00, -2 when it does not fit. */
static int pct_decode(const char *p, size_t n, char *dst, size_t cap) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    char c = p[i];
    if (c == '%') {
      if (i + 2 >= n) return -1;
      int hi = hexval(p[i + 1]), lo = hexval(p[i + 2]);
      if (hi < 0 || lo < 0) return -1;
      c = (char)(hi * 16 + lo);
      if (c == '\0') return -1;
      i += 2;
    }
    if (k + 1 >= cap) return -2;
    dst[k++] = c;
  }
  dst[k] = '\0';
  return 0;
}

/* Parses a decimal in [lo, hi] from p[0..n). Returns 0 or -1. */
static int parse_uint(const char *p, size_t n, long lo, long hi, int *out) {
  if (n == 0 || n > 9) return -1;
  long v = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9') return -1;
    v = v * 10 + (p[i] - '0');
  }
  if (v < lo || v > hi) return -1;
  *out = (int)v;
  return 0;
}

static int parse_userinfo(const char *p, size_t n, struct relayq_redis_url *out,
                          struct relayq_error *err) {
  const char *colon = memchr(p, ':', n);
  if (colon == NULL)
    return relayq__fail(err, RELAYQ_EURL,
                        "The Redis URL has credentials without a colon; "
                        "write redis://:PASSWORD@host or "
                        "redis://USER:PASSWORD@host.");
  size_t ulen = (size_t)(colon - p);
  int r = pct_decode(p, ulen, out->user, sizeof out->user);
  if (r != 0)
    return relayq__fail(err, RELAYQ_EURL,
                        r == -2 ? "The Redis URL's user name is too long."
                                : "The Redis URL's user name has a bad "
                                  "percent-escape.");
  r = pct_decode(colon + 1, n - ulen - 1, out->password, sizeof out->password);
  if (r != 0)
    return relayq__fail(err, RELAYQ_EURL,
                        r == -2 ? "The Redis URL's password is too long "
                                  "(at most 255 bytes)."
                                : "The Redis URL's password has a bad "
                                  "percent-escape (write %% as %%25).");
  return 0;
}

static int parse_hostport(const char *p, size_t n, struct relayq_redis_url *out,
                          struct relayq_error *err) {
  const char *port = NULL;
  size_t hlen;
  const char *host = p;
  if (n > 0 && p[0] == '[') { /* IPv6 literal, RFC 3986 section 3.2.2 */
    const char *close = memchr(p, ']', n);
    if (close == NULL)
      return relayq__fail(err, RELAYQ_EURL,
                          "The Redis URL has an IPv6 address without its "
                          "closing ']'.");
    host = p + 1;
    hlen = (size_t)(close - host);
    size_t rest = n - (size_t)(close + 1 - p);
    if (rest > 0) {
      if (close[1] != ':')
        return relayq__fail(err, RELAYQ_EURL,
                            "The Redis URL has text after the IPv6 address "
                            "that is not a :port.");
      port = close + 2;
    }
  } else {
    const char *colon = memchr(p, ':', n);
    hlen = colon ? (size_t)(colon - p) : n;
    if (colon) port = colon + 1;
  }
  if (hlen == 0)
    return relayq__fail(err, RELAYQ_EURL, "The Redis URL has no host name.");
  if (hlen >= sizeof out->host)
    return relayq__fail(err, RELAYQ_EURL, "The Redis URL's host name is too long.");
  for (size_t i = 0; i < hlen; i++) {
    unsigned char c = (unsigned char)host[i];
    if (c <= ' ' || c >= 127 || c == '/' || c == '?' || c == '#' || c == '@' ||
        c == '[' || c == ']')
      return relayq__fail(err, RELAYQ_EURL,
                          "The Redis URL's host name has a character that "
                          "is not allowed in a host name.");
  }
  memcpy(out->host, host, hlen);
  out->host[hlen] = '\0';
  if (port != NULL) {
    size_t plen = n - (size_t)(port - p);
    if (parse_uint(port, plen, 1, 65535, &out->port) != 0)
      return relayq__fail(err, RELAYQ_EURL,
                          "The Redis URL's port must be a number from 1 to "
                          "65535.");
  }
  return 0;
}

/* The '@' that ends the userinfo of the URL text after "scheme://", or
 * NULL. The last '@' ends it, so a password with an unescaped '@' or '/'
 * still parses the way its author meant. relayq_url_redact uses the same
 * rule, so what it hides is exactly what the parser reads as userinfo. */
static const char *userinfo_end(const char *p) { return strrchr(p, '@'); }

/* HOST[:PORT][,HOST[:PORT]...]/MASTER[/DB] after the userinfo. */
static int parse_sentinel(const char *p, struct relayq_redis_url *out,
                          struct relayq_error *err) {
  const char *slash = strchr(p, '/');
  if (slash == NULL || slash[1] == '\0' || slash[1] == '/')
    return relayq__fail(err, RELAYQ_EURL,
                        "A redis+sentinel:// URL needs the master's name after the "
                        "sentinels: redis+sentinel://HOST:26379,HOST:26379/mymaster.");
  const char *item = p;
  while (item < slash) {
    const char *comma = memchr(item, ',', (size_t)(slash - item));
    const char *end = comma ? comma : slash;
    if (out->n_sentinels == RELAYQ_MAX_SENTINELS)
      return relayq__fail(err, RELAYQ_EURL, "A redis+sentinel:// URL names at most 8 sentinels.");
    out->port = 26379;
    int r = parse_hostport(item, (size_t)(end - item), out, err);
    if (r != 0) return r;
    struct relayq_redis_hostport *s = &out->sentinels[out->n_sentinels++];
    memcpy(s->host, out->host, sizeof s->host);
    s->port = out->port;
    item = comma ? comma + 1 : slash;
  }
  memcpy(out->host, out->sentinels[0].host, sizeof out->host);
  out->port = out->sentinels[0].port;
  const char *name = slash + 1, *db = strchr(name, '/');
  size_t nlen = db ? (size_t)(db - name) : strlen(name);
  if (nlen >= sizeof out->master)
    return relayq__fail(err, RELAYQ_EURL, "The sentinel master name is too long.");
  for (size_t i = 0; i < nlen; i++) {
    unsigned char c = (unsigned char)name[i];
    if (c <= ' ' || c >= 127)
      return relayq__fail(err, RELAYQ_EURL,
                          "The sentinel master name has a character that is not allowed.");
  }
  memcpy(out->master, name, nlen);
  out->master[nlen] = '\0';
  if (db != NULL && db[1] != '\0' &&
      parse_uint(db + 1, strlen(db + 1), 0, 1000000, &out->db) != 0)
    return relayq__fail(err, RELAYQ_EURL,
                        "The Redis URL's database (after the master name) must be a "
                        "number such as 0.");
  return 0;
}

static int parse(const char *url, struct relayq_redis_url *out,
                 struct relayq_error *err) {
  if (url == NULL || out == NULL)
    return relayq__fail(err, RELAYQ_EINVAL, "No Redis URL was given.");
  memset(out, 0, sizeof *out);
  out->port = 6379;
  out->db = 0;
  static const struct {
    const char *scheme;
    int tls, sentinel;
  } schemes[] = {{"redis://", 0, 0},
                 {"rediss://", 1, 0},
                 {"redis+sentinel://", 0, 1},
                 {"rediss+sentinel://", 1, 1}};
  const char *p = NULL;
  int sentinel = 0;
  for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
    if (strncmp(url, schemes[i].scheme, strlen(schemes[i].scheme)) == 0) {
      p = url + strlen(schemes[i].scheme);
      out->tls = schemes[i].tls;
      sentinel = schemes[i].sentinel;
    }
  if (p == NULL)
    return relayq__fail(err, RELAYQ_EURL,
                        "The Redis URL must start with redis://, rediss:// (TLS), "
                        "redis+sentinel:// or rediss+sentinel:// "
                        "(e.g. redis://127.0.0.1:6379/0).");
  size_t len = strlen(p);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c < 0x21 || c == 0x7f)
      return relayq__fail(err, RELAYQ_EURL,
                          "The Redis URL contains a space or control "
                          "character; percent-encode it.");
  }
  const char *at = userinfo_end(p);
  if (at != NULL) {
    int r = parse_userinfo(p, (size_t)(at - p), out, err);
    if (r != 0) return r;
    p = at + 1;
  }
  if (strpbrk(p, "?#") != NULL)
    return relayq__fail(err, RELAYQ_EURL,
                        "The Redis URL has a query or fragment, which relayq "
                        "does not read; give the database as /N.");
  if (sentinel) return parse_sentinel(p, out, err);
  const char *slash = strchr(p, '/');
  size_t hplen = slash ? (size_t)(slash - p) : strlen(p);
  int r = parse_hostport(p, hplen, out, err);
  if (r != 0) return r;
  if (slash != NULL && slash[1] != '\0' &&
      parse_uint(slash + 1, strlen(slash + 1), 0, 1000000, &out->db) != 0)
    return relayq__fail(err, RELAYQ_EURL,
                        "The Redis URL's database (after the '/') must be "
                        "a number such as 0.");
  return 0;
}

int relayq_redis_url_parse(const char *url, struct relayq_redis_url *out,
                           struct relayq_error *err) {
  int r = parse(url, out, err);
  /* A half-parsed URL must not leave a password behind in the caller's
   * struct. */
  if (r != 0 && out != NULL) memset(out, 0, sizeof *out);
  return r;
}

void relayq_url_redact(const char *url, char *out, size_t cap) {
  if (out == NULL || cap == 0) return;
  if (url == NULL) {
    snprintf(out, cap, "(none)");
    return;
  }
  const char *scheme = strstr(url, "://");
  const char *p = scheme ? scheme + 3 : NULL;
  const char *at = p ? userinfo_end(p) : NULL;
  /* The user name ends at the first ':' of the userinfo (parse_userinfo);
   * everything from there to the '@' is the password. */
  const char *colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
  if (colon == NULL) {
    snprintf(out, cap, "%s", url);
    return;
  }
  snprintf(out, cap, "%.*s:***%s", (int)(colon - url), url, at);
}
