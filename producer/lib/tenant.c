/*
 * tenant: parsing and validation of tenant hashes (see tenant.h).
 *
 * Two passes: the field/value pairs are first sorted into one slot per
 * known field (unknown and repeated names are handled there), then the
 * slots are interpreted in a fixed order so that defaults compose the same
 * way whatever order HGETALL returned: explicit value > preset > default.
 *
 * Everything kept is copied; secrets are opened into fresh buffers that
 * rq_tenant_free wipes. Error messages name fields and quote only names
 * (field, preset and route names, sanitised since they can be any bytes),
 * never a value: values can be secrets, or long.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "internal.h"
#include "keys.h"
#include "tenant.h"

enum fid {
  F_GATEWAY,
  F_SMTP_HOST,
  F_SMTP_PORT,
  F_SMTP_SECURITY,
  F_SMTP_USER,
  F_SMTP_PASSWORD,
  F_SMTP_TLS_VERIFY,
  F_SMTP_PRESET,
  F_SMTP_MAX_CONNECTIONS,
  F_SMTP_TLS_PIN,
  F_MAILGUN_DOMAIN,
  F_MAILGUN_API_KEY,
  F_MAILGUN_REGION,
  F_MAILGUN_BASE_URL,
  F_FROM_EMAIL,
  F_FROM_NAME,
  F_REPLY_TO,
  F_DOMAIN_VERIFIED,
  F_SIGNATURE_TEXT,
  F_SIGNATURE_HTML,
  F_LOGO_URL,
  F_HOURLY_QUOTA,
  F_MAX_RECIPIENTS,
  F_BULK_MAX_RECIPIENTS,
  F_DKIM_DOMAIN,
  F_DKIM_SELECTOR,
  F_DKIM_PRIVATE_KEY,
  F_ROUTES,
  F_VERIFIED_DOMAINS,
  F_SMTP_AUTH,
  F_OAUTH_TOKEN_URL,
  F_OAUTH_CLIENT_ID,
  F_OAUTH_CLIENT_SECRET,
  F_OAUTH_REFRESH_TOKEN,
  F_OAUTH_SCOPE,
  F_OAUTH_GRANT,
  F_RATE_LIMITS,
  F__COUNT
};

/* Indexed by enum fid; NULL-terminated for rq_tenant_fields(). */
static const char *const field_names[F__COUNT + 1] = {
    "gateway",         "smtp_host",           "smtp_port",
    "smtp_security",   "smtp_user",           "smtp_password",
    "smtp_tls_verify", "smtp_preset",         "smtp_max_connections",
    "smtp_tls_pin",
    "mailgun_domain",  "mailgun_api_key",     "mailgun_region",
    "mailgun_base_url", "from_email",         "from_name",
    "reply_to",        "domain_verified",     "signature_text",
    "signature_html",  "logo_url",            "hourly_quota",
    "max_recipients",  "bulk_max_recipients", "dkim_domain",
    "dkim_selector",   "dkim_private_key",    "routes",
    "verified_domains",
    "smtp_auth",       "oauth_token_url",     "oauth_client_id",
    "oauth_client_secret", "oauth_refresh_token", "oauth_scope",
    "oauth_grant",     "rate_limits",
    NULL,
};

#define MAX_URL 2048
#define MAX_HOURLY_QUOTA 1000000000L
#define NAME_SHOW 64 /* bytes of a field name or preset name in messages */

/* What every step needs: where errors go and how secrets open. place is
 * the hash key without its prefix ("tenant:acme", "tenant:acme:route:b"),
 * the AAD of its enc:v2: values; sealed_elsewhere is set when one did not
 * open there. */
struct ctx {
  char *err;
  size_t errlen;
  const unsigned char *key;
  int require_encrypted;
  char place[300];
  int sealed_elsewhere;
};

/* ---- small helpers -------------------------------------------------------- */

__attribute__((format(printf, 2, 3))) static int fail(struct ctx *c,
                                                      const char *fmt, ...) {
  if (c->err != NULL && c->errlen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

static int oom(struct ctx *c) {
  return fail(c, "Out of memory while reading the tenant configuration.");
}

/* Copies a name chosen by whoever wrote the hash into buf for a message:
 * printable ASCII only (others become '?'), cut at NAME_SHOW bytes. */
static const char *show(const char *s, char buf[NAME_SHOW + 4]) {
  size_t i = 0;
  for (; s[i] != '\0' && i < NAME_SHOW; i++) {
    unsigned char ch = (unsigned char)s[i];
    buf[i] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
  }
  buf[i] = '\0';
  if (s[i] != '\0') memcpy(buf + i, "...", 4);
  return buf;
}

static void wipe_free(char *s) {
  if (s == NULL) return;
  OPENSSL_cleanse(s, strlen(s));
  free(s);
}

static int lower_eq(const char *a, const char *b) {
  return strcasecmp(a, b) == 0;
}

/* Levenshtein distance, case-insensitive, for "did you mean". Callers
 * bound both lengths to NAME_SHOW so the table stays on the stack. */
static size_t distance(const char *a, const char *b) {
  size_t la = strnlen(a, NAME_SHOW), lb = strnlen(b, NAME_SHOW);
  size_t prev[NAME_SHOW + 1], cur[NAME_SHOW + 1];
  for (size_t j = 0; j <= lb; j++) prev[j] = j;
  for (size_t i = 1; i <= la; i++) {
    cur[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      unsigned char x = (unsigned char)a[i - 1], y = (unsigned char)b[j - 1];
      if (x >= 'A' && x <= 'Z') x = (unsigned char)(x + 32);
      if (y >= 'A' && y <= 'Z') y = (unsigned char)(y + 32);
      size_t best = prev[j - 1] + (x != y);
      if (prev[j] + 1 < best) best = prev[j] + 1;
      if (cur[j - 1] + 1 < best) best = cur[j - 1] + 1;
      cur[j] = best;
    }
    memcpy(prev, cur, (lb + 1) * sizeof prev[0]);
  }
  return prev[lb];
}

/* The closest candidate when close enough to be a typo, else NULL. */
static const char *suggest(const char *word, const char *const *cands,
                           size_t n) {
  if (strnlen(word, NAME_SHOW + 1) > NAME_SHOW) return NULL;
  const char *best = NULL;
  size_t best_d = (size_t)-1;
  for (size_t i = 0; i < n; i++) {
    size_t d = distance(word, cands[i]);
    if (d < best_d) best_d = d, best = cands[i];
  }
  size_t len = strlen(word);
  /* Two edits, or a quarter of a long name: more is a different word. */
  if (best_d > 2 && best_d * 4 > len) return NULL;
  return best;
}

static int field_id(const char *name) {
  for (int i = 0; i < F__COUNT; i++)
    if (strcmp(field_names[i], name) == 0) return i;
  return -1;
}

/* 1 when a byte below 0x20 (other than tab, and CR/LF when allowed) or DEL
 * is in s. */
static int has_ctl(const char *s, int allow_newlines) {
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '\t') continue;
    if (allow_newlines && (ch == '\r' || ch == '\n')) continue;
    if (ch < 0x20 || ch == 0x7f) return 1;
  }
  return 0;
}

static int utf8_ok(const char *s) { return relayq__utf8_valid(s, strlen(s)); }

/* RFC 1123 host name (letters, digits, hyphens in dot-separated labels of
 * 1-63, at most 253 in all; IPv4 dotted quads pass), or an IPv6 literal in
 * brackets (RFC 3986 IP-literal, checked with inet_pton; take_host also
 * takes it bare). */
static int host_ok(const char *s, size_t n) {
  if (n == 0 || n > 253) return 0;
  if (s[0] == '[') {
    char inner[INET6_ADDRSTRLEN + 1];
    struct in6_addr a;
    if (n < 4 || s[n - 1] != ']' || n - 2 > INET6_ADDRSTRLEN) return 0;
    memcpy(inner, s + 1, n - 2);
    inner[n - 2] = '\0';
    return inet_pton(AF_INET6, inner, &a) == 1;
  }
  size_t label = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '.') {
      if (label == 0 || s[i - 1] == '-') return 0;
      label = 0;
      continue;
    }
    int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
             (ch >= '0' && ch <= '9') || ch == '-';
    if (!ok || (ch == '-' && label == 0) || ++label > 63) return 0;
  }
  return label > 0 && s[n - 1] != '-';
}

/* An envelope address we are willing to put in MAIL FROM or a header:
 * local@domain, no whitespace or control bytes (CR/LF would smuggle SMTP
 * commands or headers), none of the header specials that would change how
 * a From/Reply-To line parses, a host-name domain. */
static int email_ok(const char *s) {
  size_t n = strlen(s);
  if (n < 3 || n > 254 || !utf8_ok(s)) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch <= 0x20 || ch == 0x7f || strchr("<>(),;:\"\\[]", ch) != NULL)
      return 0;
  }
  const char *at = strrchr(s, '@');
  if (at == NULL || at == s || at - s > 64) return 0;
  return host_ok(at + 1, strlen(at + 1));
}

/* http(s) URL for an <img src>: no whitespace, control bytes or characters
 * that would end an HTML attribute. */
static int web_url_ok(const char *s) {
  size_t n = strlen(s);
  if (n > MAX_URL) return 0;
  size_t skip;
  if (strncasecmp(s, "https://", 8) == 0) skip = 8;
  else if (strncasecmp(s, "http://", 7) == 0) skip = 7;
  else return 0;
  if (n == skip) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch <= 0x20 || ch >= 0x7f || strchr("\"'<>\\`", ch) != NULL) return 0;
  }
  return 1;
}

/* Whole decimal number in [min, max]; no sign, no spaces. */
static int parse_num(const char *s, long min, long max, long *out) {
  size_t n = strlen(s);
  if (n == 0 || n > 18) return 0;
  long v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return 0;
    v = v * 10 + (s[i] - '0');
  }
  if (v < min || v > max) return 0;
  *out = v;
  return 1;
}

/* ---- one value at a time ---------------------------------------------------- */

/* A plain string field: length bound, no control bytes (newlines only when
 * multi-line), valid UTF-8; copied into *out. */
static int take_text(struct ctx *c, const char *field, const char *v,
                     size_t max, int multiline, char **out) {
  if (strnlen(v, max + 1) > max)
    return fail(c, "%s is longer than %zu bytes; shorten it.", field, max);
  if (has_ctl(v, multiline))
    return fail(c,
                multiline ? "%s contains control characters; only text, "
                            "tabs and line breaks are allowed."
                          : "%s contains a line break or control "
                            "character; it must be one line of text.",
                field);
  if (!utf8_ok(v)) return fail(c, "%s is not valid UTF-8.", field);
  if ((*out = strdup(v)) == NULL) return oom(c);
  return 0;
}

/* A secret field: a sealed value is opened with the key; plaintext is
 * accepted unless RELAYQ_REQUIRE_ENCRYPTED. The plaintext lands in *out. */
static int take_secret(struct ctx *c, const char *field, const char *v,
                       size_t max, char **out) {
  if (relayq_secret_is_sealed(v)) {
    if (c->key == NULL)
      return fail(c,
                  "RELAYQ_SECRET_KEY is not set but %s is sealed: set the "
                  "key the secrets were sealed with.",
                  field);
    struct relayq_error e;
    relayq__error_clear(&e);
    char *pt = NULL;
    int rc = relayq_secret_open_for(c->key, c->place, field, v, &pt, &e);
    if (rc == RELAYQ_ENOMEM) return oom(c);
    if (rc == RELAYQ_ECRYPTO && relayq_secret_is_v2(v)) {
      c->sealed_elsewhere = 1;
      return fail(c,
                  "%s was sealed for another place (another tenant, route or "
                  "field) or with another RELAYQ_SECRET_KEY, so it does not "
                  "open for %s: set it again with `relayq tenant set`.",
                  field, c->place);
    }
    if (rc != 0)
      return fail(c, "%s cannot be opened with RELAYQ_SECRET_KEY: %s", field,
                  e.message);
    if (strlen(pt) > max) {
      wipe_free(pt);
      return fail(c, "%s is longer than %zu bytes once opened.", field, max);
    }
    *out = pt;
    return 0;
  }
  if (c->require_encrypted)
    return fail(c,
                "%s is stored in plaintext but RELAYQ_REQUIRE_ENCRYPTED=1: "
                "store it sealed (`relayq tenant set` seals secrets).",
                field);
  if (strnlen(v, max + 1) > max)
    return fail(c, "%s is longer than %zu bytes.", field, max);
  if ((*out = strdup(v)) == NULL) return oom(c);
  return 0;
}

static int take_bool(struct ctx *c, const char *field, const char *v,
                     int *out) {
  if (strcmp(v, "1") == 0) *out = 1;
  else if (strcmp(v, "0") == 0) *out = 0;
  else return fail(c, "%s must be 1 or 0.", field);
  return 0;
}

static int take_int(struct ctx *c, const char *field, const char *v, long min,
                    long max, long *out) {
  if (!parse_num(v, min, max, out))
    return fail(c, "%s must be a whole number from %ld to %ld.", field, min,
                max);
  return 0;
}

/* A bare IPv6 address (no brackets): 1 when v is one. */
static int bare_ipv6(const char *v, size_t n) {
  struct in6_addr a;
  return n > 0 && n < INET6_ADDRSTRLEN && strchr(v, ':') != NULL && v[0] != '[' &&
         inet_pton(AF_INET6, v, &a) == 1;
}

static int take_host(struct ctx *c, const char *field, const char *v,
                     char **out) {
  size_t n = strnlen(v, 256);
  if (!host_ok(v, n))
    return fail(c,
                "%s is not a valid host name: use letters, digits, '-' and "
                "'.', an IPv4 address, or an IPv6 address bare or in "
                "brackets (e.g. 2001:db8::1), without a scheme or port.",
                field);
  if ((*out = strdup(v)) == NULL) return oom(c);
  return 0;
}

/* A server's host (smtp_host): also an IPv6 address given bare
 * (CONTRACT.md), kept in brackets, the one form every user of conf->host
 * (connect, network boundary, TLS, logs) reads. */
static int take_server_host(struct ctx *c, const char *field, const char *v, char **out) {
  size_t n = strnlen(v, 256);
  if (!bare_ipv6(v, n)) return take_host(c, field, v, out);
  if ((*out = malloc(n + 3)) == NULL) return oom(c);
  snprintf(*out, n + 3, "[%s]", v);
  return 0;
}

static int take_email(struct ctx *c, const char *field, const char *v,
                      char **out) {
  if (!email_ok(v))
    return fail(c,
                "%s is not a usable e-mail address: write it as "
                "name@example.com, without a display name, spaces or line "
                "breaks.",
                field);
  if ((*out = strdup(v)) == NULL) return oom(c);
  return 0;
}

/* scheme://host[:port][/] with no path: the Mailgun client appends /v3. */
static int take_base_url(struct ctx *c, const char *v, char **out) {
  const char *f = "mailgun_base_url";
  size_t skip;
  if (strncasecmp(v, "https://", 8) == 0) skip = 8;
  else if (strncasecmp(v, "http://", 7) == 0) skip = 7;
  else
    return fail(c, "%s must start with https:// (or http:// for a local "
                   "test server).", f);
  size_t n = strnlen(v, MAX_URL + 1);
  if (n > MAX_URL) return fail(c, "%s is too long.", f);
  if (n > skip && v[n - 1] == '/') n--; /* one trailing slash is harmless */
  const char *auth = v + skip;
  size_t alen = n - skip;
  if (memchr(auth, '/', alen) != NULL)
    return fail(c,
                "%s must be scheme, host and optional port only, without a "
                "path such as /v3 (e.g. https://api.eu.mailgun.net).",
                f);
  /* The port is after the last ':' unless that ':' is inside [IPv6]. */
  const char *colon = NULL;
  for (size_t i = 0; i < alen; i++)
    if (auth[i] == ':') colon = auth + i;
    else if (auth[i] == ']') colon = NULL;
  size_t hlen = colon ? (size_t)(colon - auth) : alen;
  if (!host_ok(auth, hlen))
    return fail(c, "%s does not have a valid host name.", f);
  if (colon != NULL) {
    char port[8];
    size_t plen = alen - hlen - 1;
    long p = 0;
    if (plen == 0 || plen >= sizeof port)
      return fail(c, "%s has an invalid port.", f);
    memcpy(port, colon + 1, plen);
    port[plen] = '\0';
    if (!parse_num(port, 1, 65535, &p))
      return fail(c, "%s has a port outside 1-65535.", f);
  }
  if ((*out = strndup(v, n)) == NULL) return oom(c);
  return 0;
}

/* smtp_tls_pin: one or more comma-separated "sha256//" + base64 of 32
 * bytes (curl's --pinnedpubkey form), at most RQ_TENANT_MAX_PINS. */
static int take_pins(struct ctx *c, const char *v, char **out) {
  const char *q = v;
  int n = 0;
  for (;;) {
    const char *comma = strchr(q, ',');
    size_t len = comma ? (size_t)(comma - q) : strlen(q);
    while (len && *q == ' ') q++, len--;
    while (len && q[len - 1] == ' ') len--;
    unsigned char raw[40];
    if (len != 52 || strncmp(q, "sha256//", 8) != 0 || q[51] != '=' ||
        EVP_DecodeBlock(raw, (const unsigned char *)q + 8, 44) != 33 || ++n > RQ_TENANT_MAX_PINS)
      return fail(c, "smtp_tls_pin must be one or more comma-separated sha256//BASE64 pins of the server's "
                     "public key (at most %d; `relayq tenant trust` writes it).", RQ_TENANT_MAX_PINS);
    if (!comma) break;
    q = comma + 1;
  }
  if ((*out = strdup(v)) == NULL) return oom(c);
  return 0;
}

static int take_security(struct ctx *c, const char *v, enum rq_security *out) {
  if (lower_eq(v, "starttls")) *out = RQ_SEC_STARTTLS;
  else if (lower_eq(v, "tls")) *out = RQ_SEC_TLS;
  else if (lower_eq(v, "none")) *out = RQ_SEC_NONE;
  else if (lower_eq(v, "ssl") || lower_eq(v, "smtps"))
    return fail(c, "smtp_security must be starttls, tls or none; for "
                   "implicit TLS (\"SSL\", SMTPS, port 465) use tls.");
  else return fail(c, "smtp_security must be starttls, tls or none.");
  return 0;
}

/* ---- the SMTP block, shared by the tenant and its routes ------------------ */

/* Nearest preset name for a typo, or NULL. */
static const char *suggest_preset(const char *word) {
  size_t n = 0;
  const struct rq_preset *p = rq_presets(&n);
  const char *names[128]; /* the table has fewer rows; see presets.c */
  if (n > sizeof names / sizeof names[0]) n = sizeof names / sizeof names[0];
  for (size_t i = 0; i < n; i++) names[i] = p[i].name;
  return suggest(word, names, n);
}

static int default_port(enum rq_security s) {
  return s == RQ_SEC_TLS ? 465 : s == RQ_SEC_NONE ? 25 : 587;
}

/* An OAuth token endpoint: https:// (or http:// for a test server the
 * worker's network rules decide about), no credentials, query or fragment
 * (the client id and secret travel in the form or the Authorization
 * header, never in a URL a log could show). */
static int token_url_ok(const char *s) {
  if (!web_url_ok(s)) return 0;
  const char *host = s + (strncasecmp(s, "https://", 8) == 0 ? 8 : 7);
  size_t hl = strcspn(host, "/?#");
  if (memchr(host, '@', hl) != NULL || strpbrk(s, "?#") != NULL) return 0;
  return hl > 0;
}

/*
 * smtp_auth, oauth_* and rate_limits of one SMTP conf (tenant or route).
 * explicit value > preset. With smtp_auth=xoauth2 every part the token
 * request needs must be there, so a tenant learns at `tenant set` what is
 * missing rather than from a failed job.
 */
static int parse_oauth(struct ctx *c, const char *const v[F__COUNT],
                       const struct rq_preset *preset, const char *what,
                       struct rq_smtp_conf *conf) {
  struct rq_oauth_conf *o = &conf->oauth;
  char rerr[300];
  const struct rq_preset_extra *px =
      preset != NULL ? rq_preset_extra(preset->name) : NULL;
  const char *rl = v[F_RATE_LIMITS] != NULL
                       ? v[F_RATE_LIMITS]
                       : (px != NULL ? px->rate_limits : NULL);
  if (rl != NULL && lower_eq(rl, "none")) rl = NULL; /* no limit, not the preset's */
  if (rq_rates_parse(rl, &conf->rates, rerr, sizeof rerr) != 0)
    return fail(c, "%s%s", rerr,
                v[F_RATE_LIMITS] == NULL ? " (from the preset)" : "");
  if (v[F_SMTP_AUTH] == NULL || lower_eq(v[F_SMTP_AUTH], "password"))
    conf->xoauth2 = 0;
  else if (lower_eq(v[F_SMTP_AUTH], "xoauth2"))
    conf->xoauth2 = 1;
  else
    return fail(c, "smtp_auth must be password or xoauth2.");
  o->grant = RQ_GRANT_REFRESH_TOKEN;
  if (v[F_OAUTH_GRANT] != NULL) {
    if (lower_eq(v[F_OAUTH_GRANT], "refresh_token"))
      o->grant = RQ_GRANT_REFRESH_TOKEN;
    else if (lower_eq(v[F_OAUTH_GRANT], "client_credentials"))
      o->grant = RQ_GRANT_CLIENT_CREDENTIALS;
    else
      return fail(c, "oauth_grant must be refresh_token or client_credentials.");
  }
  /* Microsoft's /common/ endpoint serves delegated refreshes only: app-only
   * tokens come from the directory's own endpoint, which the tenant names. */
  const char *url = v[F_OAUTH_TOKEN_URL];
  if (url == NULL && px != NULL && px->oauth_token_url != NULL &&
      (o->grant == RQ_GRANT_REFRESH_TOKEN ||
       strstr(px->oauth_token_url, "/common/") == NULL))
    url = px->oauth_token_url;
  if (url != NULL) {
    if (!token_url_ok(url))
      return fail(c, "oauth_token_url must be an https:// URL without "
                     "credentials, query or fragment, e.g. "
                     "https://oauth2.googleapis.com/token.");
    if ((o->token_url = strdup(url)) == NULL) return oom(c);
  }
  const char *scope = v[F_OAUTH_SCOPE];
  if (scope == NULL && px != NULL)
    scope = o->grant == RQ_GRANT_CLIENT_CREDENTIALS ? px->oauth_scope_app
                                                    : px->oauth_scope;
  if (scope != NULL &&
      take_text(c, "oauth_scope", scope, RQ_TENANT_MAX_VALUE, 0, &o->scope))
    return -1;
  if (v[F_OAUTH_CLIENT_ID] != NULL &&
      take_text(c, "oauth_client_id", v[F_OAUTH_CLIENT_ID],
                RQ_TENANT_MAX_VALUE, 0, &o->client_id))
    return -1;
  if (v[F_OAUTH_CLIENT_SECRET] != NULL &&
      take_secret(c, "oauth_client_secret", v[F_OAUTH_CLIENT_SECRET],
                  RQ_TENANT_MAX_VALUE, &o->client_secret))
    return -1;
  if (v[F_OAUTH_REFRESH_TOKEN] != NULL &&
      take_secret(c, "oauth_refresh_token", v[F_OAUTH_REFRESH_TOKEN],
                  RQ_TENANT_MAX_LONG_VALUE, &o->refresh_token))
    return -1;
  if (!conf->xoauth2) return 0;
  if (conf->user == NULL)
    return fail(c, "%s: smtp_auth=xoauth2 needs smtp_user, the mailbox the "
                   "token signs in as.", what);
  if (o->token_url == NULL)
    return fail(c, "%s: smtp_auth=xoauth2 needs oauth_token_url%s.", what,
                o->grant == RQ_GRANT_CLIENT_CREDENTIALS
                    ? " (for client_credentials your directory's own, e.g. "
                      "https://login.microsoftonline.com/TENANT-ID/oauth2/"
                      "v2.0/token)"
                    : " (or smtp_preset=office365 or gmail)");
  if (o->scope == NULL)
    return fail(c, "%s: smtp_auth=xoauth2 needs oauth_scope (or "
                   "smtp_preset=office365 or gmail).", what);
  if (o->client_id == NULL)
    return fail(c, "%s: smtp_auth=xoauth2 needs oauth_client_id, the "
                   "platform app's id at the provider.", what);
  if (o->grant == RQ_GRANT_REFRESH_TOKEN && o->refresh_token == NULL)
    return fail(c, "%s: smtp_auth=xoauth2 needs oauth_refresh_token, which "
                   "the platform gets when the tenant signs in (docs/oauth.md).",
                what);
  if (o->grant == RQ_GRANT_CLIENT_CREDENTIALS && o->client_secret == NULL)
    return fail(c, "%s: oauth_grant=client_credentials needs "
                   "oauth_client_secret.", what);
  return 0;
}

/*
 * Fills conf from the smtp_* slots of v. Precedence: explicit value >
 * preset > default (security starttls; port from security). A preset's
 * port applies only when the security in force is the preset's own, so
 * "gmail" with smtp_security=tls gets 465, not 587. need_host: 1 when a
 * host (explicit or from a preset) is required.
 */
static int parse_smtp(struct ctx *c, const char *const v[F__COUNT],
                      int need_host, const char *what,
                      struct rq_smtp_conf *conf) {
  const struct rq_preset *preset = NULL;
  char shown[NAME_SHOW + 4];
  conf->tls_verify = 1;
  conf->max_connections = RQ_TENANT_DEFAULT_MAX_CONNECTIONS;
  conf->security = RQ_SEC_STARTTLS;

  if (v[F_SMTP_PRESET] != NULL) {
    preset = rq_preset_find(v[F_SMTP_PRESET]);
    if (preset == NULL) {
      const char *alt = suggest_preset(v[F_SMTP_PRESET]);
      return fail(c,
                  "smtp_preset '%s' is not a known provider%s%s%s; "
                  "docs/presets.md lists them.",
                  show(v[F_SMTP_PRESET], shown), alt ? " (did you mean " : "",
                  alt ? alt : "", alt ? "?)" : "");
    }
    if ((conf->preset = strdup(preset->name)) == NULL) return oom(c);
  }
  if (v[F_SMTP_HOST] != NULL) {
    if (take_server_host(c, "smtp_host", v[F_SMTP_HOST], &conf->host) != 0) return -1;
  } else if (preset != NULL) {
    if ((conf->host = strdup(preset->host)) == NULL) return oom(c);
  }
  int explicit_security = v[F_SMTP_SECURITY] != NULL;
  if (explicit_security) {
    if (take_security(c, v[F_SMTP_SECURITY], &conf->security) != 0) return -1;
  } else if (preset != NULL) {
    conf->security = preset->security;
  }
  if (v[F_SMTP_PORT] != NULL) {
    long p = 0;
    if (take_int(c, "smtp_port", v[F_SMTP_PORT], 1, 65535, &p) != 0) return -1;
    conf->port = (int)p;
  } else if (conf->host != NULL) {
    conf->port = (preset != NULL && conf->security == preset->security)
                     ? preset->port
                     : default_port(conf->security);
  }
  if (v[F_SMTP_USER] != NULL &&
      take_text(c, "smtp_user", v[F_SMTP_USER], RQ_TENANT_MAX_VALUE, 0,
                &conf->user) != 0)
    return -1;
  if (v[F_SMTP_PASSWORD] != NULL &&
      take_secret(c, "smtp_password", v[F_SMTP_PASSWORD], RQ_TENANT_MAX_VALUE,
                  &conf->password) != 0)
    return -1;
  if (v[F_SMTP_TLS_VERIFY] != NULL &&
      take_bool(c, "smtp_tls_verify", v[F_SMTP_TLS_VERIFY],
                &conf->tls_verify) != 0)
    return -1;
  if (v[F_SMTP_TLS_PIN] != NULL && take_pins(c, v[F_SMTP_TLS_PIN], &conf->tls_pin) != 0) return -1;
  if (v[F_SMTP_MAX_CONNECTIONS] != NULL) {
    long m = 0;
    if (take_int(c, "smtp_max_connections", v[F_SMTP_MAX_CONNECTIONS], 1,
                 RQ_TENANT_MAX_CONNECTIONS, &m) != 0)
      return -1;
    conf->max_connections = (int)m;
  }
  if (need_host && conf->host == NULL)
    return fail(c, "%s needs smtp_host (or an smtp_preset such as gmail).",
                what);
  return parse_oauth(c, v, preset, what, conf);
}

static void free_smtp(struct rq_smtp_conf *conf) {
  free(conf->oauth.token_url);
  free(conf->oauth.client_id);
  wipe_free(conf->oauth.client_secret);
  wipe_free(conf->oauth.refresh_token);
  free(conf->oauth.scope);
  free(conf->host);
  free(conf->user);
  wipe_free(conf->password);
  free(conf->preset);
  free(conf->tls_pin);
  free(conf->unusable);
  memset(conf, 0, sizeof *conf);
}

/* ---- the tenant-only fields ------------------------------------------------- */

static int parse_gateway(struct ctx *c, const char *v, enum rq_gateway *out) {
  *out = RQ_GW_PLATFORM;
  if (v == NULL || lower_eq(v, "platform")) return 0;
  if (lower_eq(v, "smtp")) *out = RQ_GW_SMTP;
  else if (lower_eq(v, "mailgun")) *out = RQ_GW_MAILGUN;
  else return fail(c, "gateway must be platform, smtp or mailgun.");
  return 0;
}

static int parse_mailgun(struct ctx *c, const char *const v[F__COUNT],
                         struct rq_tenant *t) {
  if (v[F_MAILGUN_DOMAIN] != NULL &&
      take_host(c, "mailgun_domain", v[F_MAILGUN_DOMAIN], &t->mailgun_domain))
    return -1;
  if (v[F_MAILGUN_API_KEY] != NULL &&
      take_secret(c, "mailgun_api_key", v[F_MAILGUN_API_KEY],
                  RQ_TENANT_MAX_VALUE, &t->mailgun_api_key))
    return -1;
  const char *region = v[F_MAILGUN_REGION];
  if (region != NULL) {
    if (!lower_eq(region, "us") && !lower_eq(region, "eu"))
      return fail(c, "mailgun_region must be us or eu.");
    if ((t->mailgun_region = strdup(lower_eq(region, "eu") ? "eu" : "us")) ==
        NULL)
      return oom(c);
  }
  if (v[F_MAILGUN_BASE_URL] != NULL) {
    if (take_base_url(c, v[F_MAILGUN_BASE_URL], &t->mailgun_base_url) != 0)
      return -1;
  } else {
    const char *url = (region != NULL && lower_eq(region, "eu"))
                          ? RQ_MAILGUN_EU_URL
                          : RQ_MAILGUN_US_URL;
    if ((t->mailgun_base_url = strdup(url)) == NULL) return oom(c);
  }
  if (t->gateway == RQ_GW_MAILGUN) {
    if (t->mailgun_domain == NULL)
      return fail(c, "gateway is mailgun but mailgun_domain is missing: set "
                     "the sending domain registered with Mailgun.");
    if (t->mailgun_api_key == NULL)
      return fail(c, "gateway is mailgun but mailgun_api_key is missing.");
  }
  return 0;
}

static int parse_identity(struct ctx *c, const char *const v[F__COUNT],
                          struct rq_tenant *t) {
  if (v[F_FROM_EMAIL] != NULL &&
      take_email(c, "from_email", v[F_FROM_EMAIL], &t->from_email))
    return -1;
  if (v[F_REPLY_TO] != NULL &&
      take_email(c, "reply_to", v[F_REPLY_TO], &t->reply_to))
    return -1;
  if (v[F_FROM_NAME] != NULL &&
      take_text(c, "from_name", v[F_FROM_NAME], RQ_TENANT_MAX_VALUE, 0,
                &t->from_name))
    return -1;
  if (v[F_DOMAIN_VERIFIED] != NULL &&
      take_bool(c, "domain_verified", v[F_DOMAIN_VERIFIED],
                &t->domain_verified))
    return -1;
  if (v[F_SIGNATURE_TEXT] != NULL &&
      take_text(c, "signature_text", v[F_SIGNATURE_TEXT],
                RQ_TENANT_MAX_LONG_VALUE, 1, &t->signature_text))
    return -1;
  if (v[F_SIGNATURE_HTML] != NULL &&
      take_text(c, "signature_html", v[F_SIGNATURE_HTML],
                RQ_TENANT_MAX_LONG_VALUE, 1, &t->signature_html))
    return -1;
  if (v[F_LOGO_URL] != NULL) {
    if (!web_url_ok(v[F_LOGO_URL]))
      return fail(c, "logo_url must be an http:// or https:// URL of at most "
                     "%d bytes without spaces, quotes or angle brackets.",
                  MAX_URL);
    if ((t->logo_url = strdup(v[F_LOGO_URL])) == NULL) return oom(c);
  }
  return 0;
}

static int parse_limits(struct ctx *c, const char *const v[F__COUNT],
                        struct rq_tenant *t) {
  long x = 0;
  if (v[F_HOURLY_QUOTA] != NULL) {
    if (take_int(c, "hourly_quota", v[F_HOURLY_QUOTA], 0, MAX_HOURLY_QUOTA,
                 &x))
      return -1;
    t->hourly_quota = x;
  }
  if (v[F_MAX_RECIPIENTS] != NULL) {
    if (take_int(c, "max_recipients", v[F_MAX_RECIPIENTS], 0,
                 RELAYQ_MAX_RECIPIENTS, &x))
      return -1;
    t->max_recipients = (int)x;
  }
  if (v[F_BULK_MAX_RECIPIENTS] != NULL) {
    if (take_int(c, "bulk_max_recipients", v[F_BULK_MAX_RECIPIENTS], 0,
                 RELAYQ_MAX_RECIPIENTS, &x))
      return -1;
    t->bulk_max_recipients = (int)x;
  }
  return 0;
}

/* A DKIM selector is one or more DNS labels (RFC 6376 section 3.1). */
static int selector_ok(const char *s) {
  size_t n = strlen(s);
  return n <= 63 && host_ok(s, n);
}

static int parse_dkim(struct ctx *c, const char *const v[F__COUNT],
                      struct rq_tenant *t) {
  if (v[F_DKIM_DOMAIN] != NULL &&
      take_host(c, "dkim_domain", v[F_DKIM_DOMAIN], &t->dkim_domain))
    return -1;
  if (v[F_DKIM_SELECTOR] != NULL) {
    if (!selector_ok(v[F_DKIM_SELECTOR]))
      return fail(c, "dkim_selector must be DNS labels of letters, digits "
                     "and '-' (e.g. s1 or mail.2024).");
    if ((t->dkim_selector = strdup(v[F_DKIM_SELECTOR])) == NULL) return oom(c);
  }
  if (v[F_DKIM_PRIVATE_KEY] != NULL) {
    if (take_secret(c, "dkim_private_key", v[F_DKIM_PRIVATE_KEY],
                    RQ_TENANT_MAX_LONG_VALUE, &t->dkim_private_key))
      return -1;
    /* Only the shape: the DKIM module parses the key itself. */
    if (strstr(t->dkim_private_key, "-----BEGIN ") == NULL ||
        strstr(t->dkim_private_key, "PRIVATE KEY-----") == NULL)
      return fail(c, "dkim_private_key must be a PEM private key (-----BEGIN "
                     "PRIVATE KEY----- or -----BEGIN RSA PRIVATE "
                     "KEY-----).");
  }
  /* Signing needs all three; a partial set is a mistake worth reporting
   * rather than silently sending unsigned mail. */
  int have = (t->dkim_domain != NULL) + (t->dkim_selector != NULL) +
             (t->dkim_private_key != NULL);
  if (have != 0 && have != 3)
    return fail(c, "DKIM needs dkim_domain, dkim_selector and "
                   "dkim_private_key together; %s is missing.",
                t->dkim_domain == NULL     ? "dkim_domain"
                : t->dkim_selector == NULL ? "dkim_selector"
                                           : "dkim_private_key");
  return 0;
}

/* `routes`: comma-separated names; spaces around names are ignored. */
static int parse_routes(struct ctx *c, const char *v, struct rq_tenant *t) {
  char shown[NAME_SHOW + 4];
  if (strnlen(v, RQ_TENANT_MAX_VALUE + 1) > RQ_TENANT_MAX_VALUE)
    return fail(c, "routes is longer than %d bytes.", RQ_TENANT_MAX_VALUE);
  t->route_names = calloc(RQ_TENANT_MAX_ROUTES, sizeof *t->route_names);
  if (t->route_names == NULL) return oom(c);
  const char *p = v;
  while (*p != '\0') {
    while (*p == ' ' || *p == '\t') p++;
    const char *end = p;
    while (*end != '\0' && *end != ',') end++;
    const char *next = *end == ',' ? end + 1 : end;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t')) end--;
    size_t len = (size_t)(end - p);
    if (len > 0) {
      char *name = strndup(p, len);
      if (name == NULL) return oom(c);
      if (!relayq__valid_tenant_name(name, len)) {
        int rc = fail(c, "routes has an invalid name '%s': use 1-128 of "
                         "A-Z a-z 0-9 . _ @ - (no ':').", show(name, shown));
        free(name);
        return rc;
      }
      if (lower_eq(name, "platform") || lower_eq(name, "smtp") ||
          lower_eq(name, "mailgun")) {
        int rc = fail(c, "routes cannot use the name '%s': platform, smtp "
                         "and mailgun name the gateways.", name);
        free(name);
        return rc;
      }
      for (size_t i = 0; i < t->n_routes; i++)
        if (strcmp(t->route_names[i], name) == 0) {
          int rc = fail(c, "routes names '%s' twice.", show(name, shown));
          free(name);
          return rc;
        }
      if (t->n_routes == RQ_TENANT_MAX_ROUTES) {
        free(name);
        return fail(c, "routes names more than %d routes.",
                    RQ_TENANT_MAX_ROUTES);
      }
      t->route_names[t->n_routes++] = name;
    }
    p = next;
  }
  if (t->n_routes > 0) {
    t->routes = calloc(t->n_routes, sizeof *t->routes);
    if (t->routes == NULL) return oom(c);
  }
  return 0;
}

/* Adds dom (lower-cased) to t->verified_domains unless it is there. */
static int add_verified(struct ctx *c, struct rq_tenant *t, const char *dom, size_t len) {
  for (size_t i = 0; i < t->n_verified_domains; i++)
    if (strlen(t->verified_domains[i]) == len && strncasecmp(t->verified_domains[i], dom, len) == 0) return 0;
  if (t->n_verified_domains == RQ_TENANT_MAX_DOMAINS)
    return fail(c, "verified_domains names more than %d domains.", RQ_TENANT_MAX_DOMAINS);
  char *d = strndup(dom, len);
  if (d == NULL) return oom(c);
  for (char *p = d; *p; p++)
    if (*p >= 'A' && *p <= 'Z') *p = (char)(*p + 32);
  t->verified_domains[t->n_verified_domains++] = d;
  return 0;
}

/* `verified_domains`: comma-separated domain names (spaces ignored); and
 * v1's domain_verified=1, read as the domain of dkim_domain, else of
 * from_email. A domain is a host name with at least one dot, not an
 * address literal. */
static int parse_verified(struct ctx *c, const char *v, struct rq_tenant *t) {
  t->verified_domains = calloc(RQ_TENANT_MAX_DOMAINS, sizeof *t->verified_domains);
  if (t->verified_domains == NULL) return oom(c);
  if (v != NULL) {
    if (strnlen(v, RQ_TENANT_MAX_VALUE + 1) > RQ_TENANT_MAX_VALUE)
      return fail(c, "verified_domains is longer than %d bytes.", RQ_TENANT_MAX_VALUE);
    const char *p = v;
    while (*p != '\0') {
      while (*p == ' ' || *p == '\t') p++;
      const char *end = p;
      while (*end != '\0' && *end != ',') end++;
      const char *next = *end == ',' ? end + 1 : end;
      while (end > p && (end[-1] == ' ' || end[-1] == '\t')) end--;
      size_t len = (size_t)(end - p);
      if (len > 0) {
        if (!host_ok(p, len) || p[0] == '[' || memchr(p, '.', len) == NULL)
          return fail(c, "verified_domains must be domain names separated by commas "
                         "(e.g. example.com,mail.example.org).");
        if (add_verified(c, t, p, len) != 0) return -1;
      }
      p = next;
    }
  }
  if (t->domain_verified) {
    const char *dom = t->dkim_domain;
    if (dom == NULL && t->from_email != NULL) dom = strrchr(t->from_email, '@') + 1;
    if (dom != NULL && add_verified(c, t, dom, strlen(dom)) != 0) return -1;
  }
  return 0;
}

int rq_tenant_domain_verified(const struct rq_tenant *t, const char *domain) {
  if (t == NULL || domain == NULL) return 0;
  size_t ld = strlen(domain);
  for (size_t i = 0; i < t->n_verified_domains; i++) {
    const char *v = t->verified_domains[i];
    size_t lv = strlen(v);
    if (ld < lv || strcasecmp(domain + (ld - lv), v) != 0) continue;
    if (ld == lv || domain[ld - lv - 1] == '.') return 1;
  }
  return 0;
}

/* The fields a route hash may set: smtp_*, and in v1.1 oauth_* and
 * rate_limits. */
static int route_field(const char *f) {
  return strncmp(f, "smtp_", 5) == 0 || strncmp(f, "oauth_", 6) == 0 ||
         strcmp(f, "rate_limits") == 0;
}

/* ---- pass one: pairs into slots ----------------------------------------------- */

/*
 * Sorts the pairs into v[] (borrowed pointers, NULL = absent; an empty
 * value is absent). strict: unknown and repeated fields are errors; else
 * unknown are skipped and the last repeat wins. smtp_only: fields other
 * than smtp_* are skipped (route hashes).
 */
static int collect(struct ctx *c, const char *const *fields,
                   const char *const *values, size_t n, int strict,
                   int smtp_only, const char *v[F__COUNT]) {
  char shown[NAME_SHOW + 4];
  int seen[F__COUNT] = {0};
  if (n > RQ_TENANT_MAX_FIELDS)
    return fail(c, "the hash has %zu fields; at most %d are read.", n,
                RQ_TENANT_MAX_FIELDS);
  if (n > 0 && (fields == NULL || values == NULL))
    return fail(c, "the field and value lists are missing.");
  for (size_t i = 0; i < n; i++) {
    const char *f = fields[i];
    if (f == NULL) return fail(c, "field %zu has no name.", i + 1);
    int id = field_id(f);
    /* verified_at.DOMAIN: when `tenant verify-domain` passed (kept for
     * people, not read). */
    if (id < 0 && strncmp(f, "verified_at.", 12) == 0) continue;
    if (id < 0 || (smtp_only && !route_field(f))) {
      if (!strict || smtp_only) continue;
      const char *alt = suggest(f, field_names, F__COUNT);
      return fail(c, "unknown tenant field '%s'%s%s%s.", show(f, shown),
                  alt ? " (did you mean " : "", alt ? alt : "",
                  alt ? "?)" : "");
    }
    if (seen[id]++ && strict)
      return fail(c, "tenant field '%s' is given twice.", field_names[id]);
    const char *val = values[i];
    v[id] = (val != NULL && val[0] != '\0') ? val : NULL;
  }
  return 0;
}

/* ---- public ------------------------------------------------------------------- */

int rq_tenant_parse(const char *tenant_id, const char *const *fields,
                    const char *const *values, size_t n,
                    const unsigned char *secret_key, int require_encrypted,
                    int strict, struct rq_tenant **out, char *err,
                    size_t errlen) {
  struct ctx c = {err, errlen, secret_key, require_encrypted, "", 0};
  const char *v[F__COUNT] = {0};
  struct rq_tenant *t = NULL;
  if (err != NULL && errlen > 0) err[0] = '\0';
  if (out == NULL) return fail(&c, "rq_tenant_parse needs an output.");
  *out = NULL;
  if (!relayq_valid_tenant(tenant_id))
    return fail(&c, "the tenant id must be 1-128 characters of A-Z a-z 0-9 "
                    ". _ @ - (no ':').");
  relayq__key_place(c.place, sizeof c.place, RELAYQ_KEY_TENANT, tenant_id, NULL);
  if (collect(&c, fields, values, n, strict, 0, v) != 0) return -1;
  if ((t = calloc(1, sizeof *t)) == NULL) return oom(&c);
  if ((t->id = strdup(tenant_id)) == NULL) goto nomem;
  if (parse_gateway(&c, v[F_GATEWAY], &t->gateway) != 0 ||
      parse_smtp(&c, v, t->gateway == RQ_GW_SMTP, "gateway smtp", &t->smtp) !=
          0 ||
      parse_mailgun(&c, v, t) != 0 || parse_identity(&c, v, t) != 0 ||
      parse_limits(&c, v, t) != 0 || parse_dkim(&c, v, t) != 0 ||
      parse_verified(&c, v[F_VERIFIED_DOMAINS], t) != 0 ||
      (v[F_ROUTES] != NULL && parse_routes(&c, v[F_ROUTES], t) != 0))
    goto fail;
  *out = t;
  return 0;
nomem:
  oom(&c);
fail:
  rq_tenant_free(t);
  return c.sealed_elsewhere ? RQ_TENANT_ESEALED : -1;
}

int rq_tenant_parse_route(struct rq_tenant *t, const char *route_name,
                          const char *const *fields, const char *const *values,
                          size_t n, const unsigned char *secret_key,
                          int require_encrypted, char *err, size_t errlen) {
  struct ctx c = {err, errlen, secret_key, require_encrypted, "", 0};
  const char *v[F__COUNT] = {0};
  char shown[NAME_SHOW + 4], what[NAME_SHOW + 16];
  if (err != NULL && errlen > 0) err[0] = '\0';
  if (t == NULL || route_name == NULL)
    return fail(&c, "rq_tenant_parse_route needs a tenant and a route name.");
  size_t i = 0;
  while (i < t->n_routes && strcmp(t->route_names[i], route_name) != 0) i++;
  if (i == t->n_routes)
    return fail(&c, "route '%s' is not listed in the tenant's routes field.",
                show(route_name, shown));
  snprintf(what, sizeof what, "route %s", show(route_name, shown));
  relayq__key_place(c.place, sizeof c.place, RELAYQ__KEY_ROUTE, t->id, route_name);
  if (collect(&c, fields, values, n, 0, 1, v) != 0) return -1;
  struct rq_smtp_conf conf = {0};
  if (parse_smtp(&c, v, 1, what, &conf) != 0) {
    free_smtp(&conf);
    return c.sealed_elsewhere ? RQ_TENANT_ESEALED : -1;
  }
  free_smtp(&t->routes[i]);
  t->routes[i] = conf;
  return 0;
}

int rq_tenant_route_unusable(struct rq_tenant *t, const char *route_name, const char *why, int auth) {
  if (t == NULL || route_name == NULL || why == NULL) return -1;
  for (size_t i = 0; i < t->n_routes; i++) {
    if (strcmp(t->route_names[i], route_name) != 0) continue;
    free_smtp(&t->routes[i]); /* nothing of a half-read route is used */
    t->routes[i].unusable = strdup(why);
    t->routes[i].unusable_auth = auth != 0;
    return t->routes[i].unusable != NULL ? 0 : -1;
  }
  return -1;
}

void rq_tenant_free(struct rq_tenant *t) {
  if (t == NULL) return;
  free(t->id);
  free_smtp(&t->smtp);
  free(t->mailgun_domain);
  wipe_free(t->mailgun_api_key);
  free(t->mailgun_region);
  free(t->mailgun_base_url);
  free(t->from_email);
  free(t->from_name);
  free(t->reply_to);
  free(t->signature_text);
  free(t->signature_html);
  free(t->logo_url);
  free(t->dkim_domain);
  free(t->dkim_selector);
  wipe_free(t->dkim_private_key);
  if (t->verified_domains != NULL)
    for (size_t i = 0; i < t->n_verified_domains; i++) free(t->verified_domains[i]);
  free(t->verified_domains);
  if (t->route_names != NULL)
    for (size_t i = 0; i < t->n_routes; i++) free(t->route_names[i]);
  free(t->route_names);
  if (t->routes != NULL)
    for (size_t i = 0; i < t->n_routes; i++) free_smtp(&t->routes[i]);
  free(t->routes);
  free(t);
}

int rq_tenant_field_is_secret(const char *field) {
  return field != NULL && (strcmp(field, "smtp_password") == 0 ||
                           strcmp(field, "mailgun_api_key") == 0 ||
                           strcmp(field, "oauth_client_secret") == 0 ||
                           strcmp(field, "oauth_refresh_token") == 0 ||
                           strcmp(field, "dkim_private_key") == 0);
}

int rq_tenant_field_known(const char *field) {
  return field != NULL && (field_id(field) >= 0 || strncmp(field, "verified_at.", 12) == 0);
}

const char *const *rq_tenant_fields(void) { return field_names; }

const char *rq_gateway_name(enum rq_gateway g) {
  switch (g) {
  case RQ_GW_SMTP: return "smtp";
  case RQ_GW_MAILGUN: return "mailgun";
  case RQ_GW_PLATFORM: break;
  }
  return "platform";
}

const char *rq_security_name(enum rq_security s) {
  switch (s) {
  case RQ_SEC_TLS: return "tls";
  case RQ_SEC_NONE: return "none";
  case RQ_SEC_STARTTLS: break;
  }
  return "starttls";
}
