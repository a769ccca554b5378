/*
 * dmarc: DMARC (RFC 7489) and DKIM key (RFC 6376, RFC 8463) TXT records;
 * see dmarc.h.
 */
#include "dmarc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/core.h>
#include <openssl/decoder.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "util.h"

#define MAX_TAGS 32

static int is_ws(int c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
static int is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_digit(int c) { return c >= '0' && c <= '9'; }

/* One tag=value pair; value points into the record (not terminated). */
struct tag {
  char name[24];
  const char *v;
  size_t vl;
};

/*
 * tag-list = tag-spec *( ";" tag-spec ) [ ";" ] (RFC 6376 3.2), with
 * white space allowed around names, '=' and values. Fills up to MAX_TAGS
 * tags; a repeated tag name is an error, as RFC 6376 makes it.
 */
static int tags_parse(const char *text, struct tag *tags, size_t *n, char *err, size_t errlen) {
  *n = 0;
  size_t len = strlen(text);
  if (len > DMARC_MAX_RECORD) return rq_errf(err, errlen, "the record is longer than %d bytes", DMARC_MAX_RECORD), -1;
  for (const char *p = text; *p;) {
    while (is_ws((unsigned char)*p)) p++;
    if (*p == '\0') break;
    const char *name = p;
    if (!is_alpha((unsigned char)*p)) return rq_errf(err, errlen, "'%.40s' does not start with a tag name", p), -1;
    while (is_alpha((unsigned char)*p) || is_digit((unsigned char)*p) || *p == '_') p++;
    size_t nl = (size_t)(p - name);
    while (is_ws((unsigned char)*p)) p++;
    if (*p != '=') return rq_errf(err, errlen, "tag '%.*s' has no '='", (int)(nl > 40 ? 40 : nl), name), -1;
    p++;
    while (is_ws((unsigned char)*p)) p++;
    const char *v = p;
    while (*p && *p != ';') p++;
    const char *e = p;
    while (e > v && is_ws((unsigned char)e[-1])) e--;
    if (nl >= sizeof tags[0].name) return rq_errf(err, errlen, "tag '%.40s' is too long", name), -1;
    for (size_t i = 0; i < *n; i++)
      if (strlen(tags[i].name) == nl && memcmp(tags[i].name, name, nl) == 0)
        return rq_errf(err, errlen, "tag '%.*s' appears twice", (int)nl, name), -1;
    if (*n == MAX_TAGS) return rq_errf(err, errlen, "the record has more than %d tags", MAX_TAGS), -1;
    for (const char *c = v; c < e; c++)
      if (((unsigned char)*c < 0x20 && !is_ws((unsigned char)*c)) || (unsigned char)*c > 0x7e) /* FWS is fine */
        return rq_errf(err, errlen, "tag '%.*s' has a character that is not printable ASCII", (int)nl, name), -1;
    memcpy(tags[*n].name, name, nl);
    tags[*n].name[nl] = '\0';
    tags[*n].v = v;
    tags[*n].vl = (size_t)(e - v);
    (*n)++;
    if (*p == ';') p++;
  }
  return 0;
}

static const struct tag *tag_get(const struct tag *tags, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(tags[i].name, name) == 0) return &tags[i];
  return NULL;
}

/* 1 when the tag's colon-separated list (white space around items
 * allowed) holds a or b (b may be NULL), case-insensitively. */
static int colon_list_has(const struct tag *t, const char *a, const char *b) {
  for (const char *p = t->v, *end = t->v + t->vl; p < end;) {
    const char *c = memchr(p, ':', (size_t)(end - p));
    const char *e = c ? c : end;
    while (p < e && is_ws((unsigned char)*p)) p++;
    const char *f = e;
    while (f > p && is_ws((unsigned char)f[-1])) f--;
    size_t n = (size_t)(f - p);
    if ((n == strlen(a) && strncasecmp(p, a, n) == 0) || (b && n == strlen(b) && strncasecmp(p, b, n) == 0))
      return 1;
    p = c ? c + 1 : end;
  }
  return 0;
}

static int tag_is(const struct tag *t, const char *s) {
  return t->vl == strlen(s) && strncasecmp(t->v, s, t->vl) == 0;
}

/* Does text start with tag v whose value is exactly want? */
static int starts_with_version(const char *text, const char *want) {
  const char *p = text;
  while (is_ws((unsigned char)*p)) p++;
  if (*p++ != 'v') return 0;
  while (is_ws((unsigned char)*p)) p++;
  if (*p++ != '=') return 0;
  while (is_ws((unsigned char)*p)) p++;
  size_t wl = strlen(want);
  if (strncmp(p, want, wl) != 0) return 0;
  p += wl;
  while (is_ws((unsigned char)*p)) p++;
  return *p == '\0' || *p == ';';
}

/* ---- DMARC --------------------------------------------------------------- */

int dmarc_is_record(const char *text) { return starts_with_version(text, "DMARC1"); }

static int policy(const struct tag *t, char *dst, size_t cap, char *err, size_t errlen) {
  if (!tag_is(t, "none") && !tag_is(t, "quarantine") && !tag_is(t, "reject"))
    return rq_errf(err, errlen, "%s=%.*s is not a policy (none, quarantine or reject)", t->name,
                   (int)(t->vl > 40 ? 40 : t->vl), t->v),
           -1;
  snprintf(dst, cap, "%.*s", (int)t->vl, t->v);
  for (char *c = dst; *c; c++) *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
  return 0;
}

/* One dmarc-uri (RFC 7489 6.4): URI [ "!" 1*DIGIT [ "k" / "m" / "g" / "t" ] ].
 * The URI needs a scheme (RFC 3986: ALPHA *( ALPHA / DIGIT / "+" / "-" /
 * "." ) ":") and something after it; a mailto: one needs an address with
 * '@' (mailto: is what every receiver supports, 6.2). A literal '!' or ','
 * inside the URI must be %-encoded, so the first '!' starts the size. */
static int dmarc_uri(const char *p, const char *e) {
  const char *bang = memchr(p, '!', (size_t)(e - p));
  if (bang) {
    const char *d = bang + 1, *f = e;
    if (f > d && strchr("kmgtKMGT", f[-1])) f--;
    if (f == d) return 0;
    for (; d < f; d++)
      if (!is_digit((unsigned char)*d)) return 0;
    e = bang;
  }
  const char *c = p;
  if (c == e || !is_alpha((unsigned char)*c)) return 0;
  while (c < e && (is_alpha((unsigned char)*c) || is_digit((unsigned char)*c) || strchr("+-.", *c))) c++;
  if (c == e || *c != ':' || c + 1 == e) return 0;
  for (const char *q = p; q < e; q++)
    if ((unsigned char)*q <= 0x20 || (unsigned char)*q > 0x7e) return 0;
  if (c - p == 6 && strncasecmp(p, "mailto", 6) == 0) {
    const char *at = memchr(c + 1, '@', (size_t)(e - c - 1));
    if (at == NULL || at == c + 1 || at + 1 == e) return 0;
  }
  return 1;
}

/* rua/ruf: dmarc-urilist = dmarc-uri *( *WSP "," *WSP dmarc-uri ). */
static int uri_list(const struct tag *t, char *dst, size_t cap, char *err, size_t errlen) {
  const char *p = t->v, *end = t->v + t->vl;
  while (p <= end) {
    const char *c = memchr(p, ',', (size_t)(end - p));
    const char *e = c ? c : end;
    while (p < e && is_ws((unsigned char)*p)) p++;
    while (e > p && is_ws((unsigned char)e[-1])) e--;
    if (!dmarc_uri(p, e))
      return rq_errf(err, errlen, "%s=%.*s: '%.*s' is not a report URI (mailto:ADDRESS, optionally !SIZE like !10m)",
                     t->name, (int)(t->vl > 80 ? 80 : t->vl), t->v, (int)(e - p > 80 ? 80 : e - p), p),
             -1;
    if (c == NULL) break;
    p = c + 1;
  }
  if (t->vl >= cap) return rq_errf(err, errlen, "%s is longer than %zu bytes", t->name, cap - 1), -1;
  snprintf(dst, cap, "%.*s", (int)t->vl, t->v);
  return 0;
}

/* fo / rf: values separated by ':' with optional white space around each,
 * every value one the tag allows. */
static int colon_list(const struct tag *t, const char *which) {
  const char *p = t->v, *end = t->v + t->vl;
  if (p == end) return 0;
  for (;;) {
    const char *c = memchr(p, ':', (size_t)(end - p));
    const char *e = c ? c : end;
    while (p < e && is_ws((unsigned char)*p)) p++;
    while (e > p && is_ws((unsigned char)e[-1])) e--;
    int ok = strcmp(which, "fo") == 0 ? e - p == 1 && strchr("01dsDS", *p)
                                      : e - p == 4 && strncasecmp(p, "afrf", 4) == 0;
    if (!ok) return 0;
    if (c == NULL) return 1;
    p = c + 1;
  }
}

static int say_bad(const struct tag *t, const char *want, char *err, size_t errlen) {
  rq_errf(err, errlen, "%s=%.*s is not valid (RFC 7489 6.3: %s); receivers ignore it and use the default", t->name,
          (int)(t->vl > 40 ? 40 : t->vl), t->v, want);
  return -1;
}

int dmarc_parse(const char *text, struct dmarc_record *out, char *err, size_t errlen) {
  struct tag tags[MAX_TAGS];
  size_t n;
  memset(out, 0, sizeof *out);
  out->pct = 100, out->adkim = 'r', out->aspf = 'r';
  if (!dmarc_is_record(text)) return rq_errf(err, errlen, "the record does not start with v=DMARC1"), -1;
  if (tags_parse(text, tags, &n, err, errlen) != 0) return -1;
  const struct tag *t;
  if ((t = tag_get(tags, n, "p")) == NULL) return rq_errf(err, errlen, "the record has no p= policy"), -1;
  if (policy(t, out->p, sizeof out->p, err, errlen) != 0) return -1;
  if ((t = tag_get(tags, n, "sp")) && policy(t, out->sp, sizeof out->sp, err, errlen) != 0) return -1;
  if ((t = tag_get(tags, n, "pct"))) {
    int v = 0;
    if (t->vl == 0 || t->vl > 3) v = -1;
    for (size_t i = 0; v >= 0 && i < t->vl; i++) v = is_digit((unsigned char)t->v[i]) ? v * 10 + t->v[i] - '0' : -1;
    if (v < 0 || v > 100) return rq_errf(err, errlen, "pct=%.*s is not a number from 0 to 100", (int)(t->vl > 20 ? 20 : t->vl), t->v), -1;
    out->pct = v;
  }
  static const char *const align[] = {"adkim", "aspf"};
  for (int i = 0; i < 2; i++) {
    if ((t = tag_get(tags, n, align[i])) == NULL) continue;
    if (!tag_is(t, "r") && !tag_is(t, "s"))
      return rq_errf(err, errlen, "%s=%.*s must be r (relaxed) or s (strict)", align[i], (int)(t->vl > 20 ? 20 : t->vl), t->v), -1;
    *(i == 0 ? &out->adkim : &out->aspf) = (char)(t->v[0] | 0x20);
  }
  if ((t = tag_get(tags, n, "rua")) && uri_list(t, out->rua, sizeof out->rua, err, errlen) != 0) return -1;
  if ((t = tag_get(tags, n, "ruf")) && uri_list(t, out->ruf, sizeof out->ruf, err, errlen) != 0) return -1;
  /* fo = one of 0 1 d s, ':'-separated; rf = "afrf" entries; ri = digits. */
  if ((t = tag_get(tags, n, "fo")) && !colon_list(t, "fo")) return say_bad(t, "0, 1, d or s separated by ':'", err, errlen);
  if ((t = tag_get(tags, n, "rf")) && !colon_list(t, "rf")) return say_bad(t, "afrf", err, errlen);
  if ((t = tag_get(tags, n, "ri"))) {
    int ok = t->vl > 0 && t->vl <= 10;
    for (size_t i = 0; ok && i < t->vl; i++) ok = is_digit((unsigned char)t->v[i]);
    if (!ok) return say_bad(t, "a number of seconds", err, errlen);
  }
  return 0;
}

/* ---- DKIM key records ----------------------------------------------------- */

int dkimrec_is_record(const char *text) {
  if (starts_with_version(text, "DKIM1")) return 1;
  struct tag tags[MAX_TAGS];
  size_t n;
  return tags_parse(text, tags, &n, NULL, 0) == 0 && tag_get(tags, n, "p") != NULL;
}

void dkimrec_free(struct dkim_record *r) {
  if (r == NULL) return;
  free(r->p);
  r->p = NULL;
}

int dkimrec_parse(const char *text, struct dkim_record *out, char *err, size_t errlen) {
  struct tag tags[MAX_TAGS];
  size_t n;
  memset(out, 0, sizeof *out);
  if (tags_parse(text, tags, &n, err, errlen) != 0) return -1;
  const struct tag *t = tag_get(tags, n, "v");
  /* RFC 6376 3.6.1: v= is optional, but when present it comes first. */
  if (t && (t != &tags[0] || !tag_is(t, "DKIM1") || strncmp(t->v, "DKIM1", 5) != 0))
    return rq_errf(err, errlen, "v= must be the first tag and exactly DKIM1"), -1;
  snprintf(out->k, sizeof out->k, "rsa");
  if ((t = tag_get(tags, n, "k"))) {
    if (!tag_is(t, "rsa") && !tag_is(t, "ed25519"))
      return rq_errf(err, errlen, "k=%.*s is not a key type relayq signs with (rsa, ed25519)", (int)(t->vl > 20 ? 20 : t->vl), t->v), -1;
    snprintf(out->k, sizeof out->k, "%.*s", (int)t->vl, t->v);
    for (char *c = out->k; *c; c++) *c = (char)(*c | 0x20);
  }
  if ((t = tag_get(tags, n, "h"))) {
    /* A colon list of hash algorithms; our signatures use sha256. */
    if (!colon_list_has(t, "sha256", NULL)) return rq_errf(err, errlen, "h=%.*s does not allow sha256, which relayq signs with", (int)(t->vl > 40 ? 40 : t->vl), t->v), -1;
  }
  if ((t = tag_get(tags, n, "s"))) {
    if (!colon_list_has(t, "*", "email")) return rq_errf(err, errlen, "s=%.*s does not allow email", (int)(t->vl > 40 ? 40 : t->vl), t->v), -1;
  }
  if ((t = tag_get(tags, n, "t"))) {
    /* key-t-tag-flag *( [FWS] ":" [FWS] key-t-tag-flag ): the flag "y"
     * alone, not a word starting with y (unknown flags are ignored). */
    for (size_t i = 0; i < t->vl; i++)
      if ((t->v[i] | 0x20) == 'y' && (i == 0 || t->v[i - 1] == ':' || is_ws((unsigned char)t->v[i - 1])) &&
          (i + 1 == t->vl || t->v[i + 1] == ':' || is_ws((unsigned char)t->v[i + 1])))
        out->testing = 1;
  }
  if ((t = tag_get(tags, n, "p")) == NULL) return rq_errf(err, errlen, "the record has no p= public key"), -1;
  /* The value may be folded with white space; keep the base64 only. */
  if ((out->p = malloc(t->vl + 1)) == NULL) return rq_errf(err, errlen, "out of memory"), -1;
  size_t k = 0;
  for (size_t i = 0; i < t->vl; i++) {
    char c = t->v[i];
    if (is_ws((unsigned char)c)) continue;
    if (!is_alpha((unsigned char)c) && !is_digit((unsigned char)c) && c != '+' && c != '/' && c != '=') {
      dkimrec_free(out);
      return rq_errf(err, errlen, "p= has a character that is not base64"), -1;
    }
    out->p[k++] = c;
  }
  out->p[k] = '\0';
  return 0;
}

/* Base64 (no white space) to bytes with OpenSSL's decoder, which unlike
 * EVP_DecodeBlock accounts for '=' padding. *out malloc'd. */
static int b64_decode(const char *b64, unsigned char **out, size_t *len) {
  size_t n = strlen(b64);
  *out = NULL, *len = 0;
  if (n == 0 || n > DMARC_MAX_RECORD) return -1;
  unsigned char *buf = malloc(n);
  EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
  int l1 = 0, l2 = 0;
  if (buf == NULL || ctx == NULL) goto fail;
  EVP_DecodeInit(ctx);
  if (EVP_DecodeUpdate(ctx, buf, &l1, (const unsigned char *)b64, (int)n) < 0) goto fail;
  if (EVP_DecodeFinal(ctx, buf + l1, &l2) != 1) goto fail;
  EVP_ENCODE_CTX_free(ctx);
  *out = buf, *len = (size_t)(l1 + l2);
  return 0;
fail:
  EVP_ENCODE_CTX_free(ctx);
  free(buf);
  return -1;
}

static char *b64_encode(const unsigned char *der, size_t len) {
  char *out = malloc(4 * ((len + 2) / 3) + 1);
  if (out) EVP_EncodeBlock((unsigned char *)out, der, (int)len);
  return out;
}

/* The public key a p= value of type k stands for, or NULL. */
static EVP_PKEY *key_of(const char *p_b64, const char *k) {
  unsigned char *der = NULL;
  size_t len = 0;
  EVP_PKEY *key = NULL;
  if (b64_decode(p_b64, &der, &len) != 0) return NULL;
  const unsigned char *q = der;
  if (strcmp(k, "ed25519") == 0) {
    if (len == 32) key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, der, len);
  } else {
    key = d2i_PUBKEY(NULL, &q, (long)len);
    if (key != NULL && EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
      EVP_PKEY_free(key);
      key = NULL;
    }
    if (key == NULL) { /* some publish the bare PKCS#1 RSAPublicKey */
      q = der;
      key = d2i_PublicKey(EVP_PKEY_RSA, NULL, &q, (long)len);
    }
  }
  free(der);
  return key;
}

int dkimrec_key_check(const struct dkim_record *r, int *bits, char *err, size_t errlen) {
  *bits = 0;
  if (r->p == NULL || r->p[0] == '\0') return rq_errf(err, errlen, "the key is revoked (empty p=)"), -1;
  EVP_PKEY *key = key_of(r->p, r->k);
  if (key == NULL)
    return rq_errf(err, errlen, "p= is not a valid %s public key", strcmp(r->k, "ed25519") == 0 ? "Ed25519" : "RSA"), -1;
  *bits = EVP_PKEY_get_bits(key);
  EVP_PKEY_free(key);
  return 0;
}

/* Refuses to prompt for a passphrase: an encrypted key file is an error. */
static int no_passphrase(char *pass, size_t maxlen, size_t *len, const OSSL_PARAM params[], void *arg) {
  (void)pass, (void)maxlen, (void)params, (void)arg;
  *len = 0;
  return 0;
}

int dkimrec_p_from_pem(const char *pem, size_t len, char **p_b64, char k[16], char *err, size_t errlen) {
  EVP_PKEY *key = NULL;
  unsigned char *der = NULL;
  *p_b64 = NULL;
  /* The decoder takes every PEM form: PKCS#8, PKCS#1, SPKI, and both
   * private and public keys. */
  OSSL_DECODER_CTX *dc = OSSL_DECODER_CTX_new_for_pkey(&key, "PEM", NULL, NULL, 0, NULL, NULL);
  const unsigned char *data = (const unsigned char *)pem;
  size_t left = len;
  int rc = -1;
  if (dc == NULL) {
    rq_errf(err, errlen, "OpenSSL has no PEM decoder");
    goto out;
  }
  OSSL_DECODER_CTX_set_passphrase_cb(dc, no_passphrase, NULL);
  if (!OSSL_DECODER_from_data(dc, &data, &left) || key == NULL) {
    rq_errf(err, errlen, "the key is not a PEM RSA or Ed25519 key (or it is encrypted)");
    goto out;
  }
  int id = EVP_PKEY_get_base_id(key);
  if (id == EVP_PKEY_ED25519) {
    unsigned char raw[32];
    size_t rl = sizeof raw;
    if (EVP_PKEY_get_raw_public_key(key, raw, &rl) != 1 || rl != 32) {
      rq_errf(err, errlen, "cannot read the Ed25519 public key");
      goto out;
    }
    *p_b64 = b64_encode(raw, rl);
    snprintf(k, 16, "ed25519");
  } else if (id == EVP_PKEY_RSA) {
    int dl = i2d_PUBKEY(key, &der);
    if (dl <= 0) {
      rq_errf(err, errlen, "cannot encode the RSA public key");
      goto out;
    }
    *p_b64 = b64_encode(der, (size_t)dl);
    snprintf(k, 16, "rsa");
  } else {
    rq_errf(err, errlen, "the key is neither RSA nor Ed25519, the types DKIM uses");
    goto out;
  }
  if (*p_b64 == NULL) {
    rq_errf(err, errlen, "out of memory");
    goto out;
  }
  rc = 0;
out:
  OPENSSL_free(der);
  EVP_PKEY_free(key);
  OSSL_DECODER_CTX_free(dc);
  return rc;
}

int dkimrec_key_equal(const struct dkim_record *r, const char *p_b64, const char *k) {
  if (r->p == NULL || r->p[0] == '\0' || strcmp(r->k, k) != 0) return 0;
  EVP_PKEY *a = key_of(r->p, r->k), *b = key_of(p_b64, k);
  int eq = a && b && EVP_PKEY_eq(a, b) == 1;
  EVP_PKEY_free(a);
  EVP_PKEY_free(b);
  return eq;
}
