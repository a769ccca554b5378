/*
 * spf: SPF record syntax, tree loading and check_host() evaluation
 * (RFC 7208). See spf.h for what it owns and what it leaves out.
 */
#include "spf.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

/* ---- small helpers ------------------------------------------------------- */

static int lower(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }
static int is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_alnum(int c) { return is_alpha(c) || is_digit(c); }

static char *dupn(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d == NULL) return NULL;
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

/* Compares two domain names ignoring case and one trailing dot. */
static int same_domain(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la && a[la - 1] == '.') la--;
  if (lb && b[lb - 1] == '.') lb--;
  return la == lb && strncasecmp(a, b, la) == 0;
}

const char *spf_result_name(enum spf_result r) {
  static const char *const names[] = {"none", "neutral", "pass", "fail", "softfail", "temperror",
                                      "permerror"};
  return (unsigned)r < sizeof names / sizeof names[0] ? names[r] : "unknown";
}

int spf_is_record(const char *text) {
  return strncasecmp(text, "v=spf1", 6) == 0 && (text[6] == '\0' || text[6] == ' ');
}

int spf_ip_parse(const char *s, struct spf_ip *out) {
  memset(out, 0, sizeof *out);
  if (inet_pton(AF_INET, s, out->addr) == 1) {
    out->family = 4;
    return 0;
  }
  if (inet_pton(AF_INET6, s, out->addr) == 1) {
    out->family = 6;
    return 0;
  }
  return -1;
}

void spf_ip_format(const struct spf_ip *ip, char *dst, size_t cap) {
  if (inet_ntop(ip->family == 4 ? AF_INET : AF_INET6, ip->addr, dst, (socklen_t)cap) == NULL && cap)
    dst[0] = '\0';
}

/* 1 when the first `bits` bits of a and b agree. */
static int prefix_match(const unsigned char *a, const unsigned char *b, int bits) {
  int full = bits / 8, rest = bits % 8;
  if (memcmp(a, b, (size_t)full) != 0) return 0;
  if (rest == 0) return 1;
  unsigned char mask = (unsigned char)(0xff << (8 - rest));
  return (a[full] & mask) == (b[full] & mask);
}

/* ---- syntax (RFC 7208 section 12) ------------------------------------------ */

/* A CIDR length: "0" or a number without leading zero, at most max.
 * Returns the value or -1. */
static int cidr_len(const char *s, size_t n, int max) {
  if (n == 0 || n > 3 || (n > 1 && s[0] == '0')) return -1;
  int v = 0;
  for (size_t i = 0; i < n; i++) {
    if (!is_digit((unsigned char)s[i])) return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v <= max ? v : -1;
}

/* Checks one macro-expand starting at s[0] == '%'; returns its length or
 * 0. allow_crt: the c, r, t letters are only for exp= (RFC 7208 7.2). */
static size_t macro_len(const char *s, size_t n, int allow_crt) {
  if (n < 2) return 0;
  if (s[1] == '%' || s[1] == '_' || s[1] == '-') return 2;
  if (s[1] != '{' || n < 4) return 0;
  int letter = lower((unsigned char)s[2]);
  if (letter == 0 || (!strchr("slodiphv", letter) && !(allow_crt && strchr("crt", letter)))) return 0;
  size_t i = 3;
  while (i < n && is_digit((unsigned char)s[i])) i++;
  if (i < n && lower((unsigned char)s[i]) == 'r') i++;
  while (i < n && s[i] != '\0' && strchr(".-+,/_=", s[i])) i++;
  return i < n && s[i] == '}' ? i + 1 : 0;
}

/* toplabel = ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum
 * / "-" ) alphanum ): letters, digits and inner hyphens, not all digits. */
static int is_toplabel(const char *s, size_t n) {
  if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-') return 0;
  int alpha = 0;
  for (size_t i = 0; i < n; i++) {
    if (!is_alnum((unsigned char)s[i]) && s[i] != '-') return 0;
    if (!is_digit((unsigned char)s[i])) alpha = 1;
  }
  return alpha;
}

/* domain-spec = macro-string domain-end. Returns 0 (with *macro set) or
 * -1 with a reason in err. */
static int check_domain_spec(const char *s, size_t n, int allow_crt, int *macro, char *err,
                             size_t errlen) {
  *macro = 0;
  if (n == 0) return rq_errf(err, errlen, "the domain is missing"), -1;
  if (n > 253) return rq_errf(err, errlen, "the domain is longer than 253 characters"), -1;
  int ends_in_macro = 0;
  for (size_t i = 0; i < n;) {
    if (s[i] == '%') {
      size_t ml = macro_len(s + i, n - i, allow_crt);
      if (ml == 0) return rq_errf(err, errlen, "'%.*s' is not a valid macro", (int)(n - i), s + i), -1;
      /* %%, %_ and %- are literal characters, not expanded from the message. */
      if (s[i + 1] == '{') *macro = 1;
      ends_in_macro = s[i + 1] == '{' && i + ml == n;
      i += ml;
      continue;
    }
    if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
      return rq_errf(err, errlen, "the domain contains a character that is not printable ASCII"), -1;
    ends_in_macro = 0;
    i++;
  }
  if (ends_in_macro) return 0;
  /* domain-end = "." toplabel [ "." ] */
  size_t end = n;
  if (s[end - 1] == '.') end--;
  size_t dot = end;
  while (dot > 0 && s[dot - 1] != '.') dot--;
  if (dot == 0 || dot == 1 || !is_toplabel(s + dot, end - dot))
    return rq_errf(err, errlen, "'%.*s' is not a domain name", (int)n, s), -1;
  if (*macro) return 0; /* labels are only known once expanded */
  /* Without macros the name is looked up as written: a label that DNS
   * cannot carry (empty, over 63 bytes) makes the term unusable, which
   * receivers answer with permerror (or treat as no match, RFC 7208 leaves
   * it open); either way the record needs fixing. */
  for (size_t i = 0, start = 0; i <= end; i++) {
    if (i < end && s[i] != '.') continue;
    if (i == start) return rq_errf(err, errlen, "'%.*s' has an empty label (two dots in a row)", (int)n, s), -1;
    if (i - start > 63)
      return rq_errf(err, errlen, "'%.*s' has a label longer than 63 characters", (int)n, s), -1;
    start = i + 1;
  }
  return 0;
}

/* macro-string = *( macro-expand / macro-literal ): every '%' starts a
 * valid macro (RFC 7208 7.1; the value of an unknown modifier). */
static int check_macro_string(const char *s, size_t n, char *err, size_t errlen) {
  for (size_t i = 0; i < n; i++) {
    if (s[i] != '%') continue;
    size_t ml = macro_len(s + i, n - i, 0);
    if (ml == 0) return rq_errf(err, errlen, "'%.*s' is not a valid macro", (int)(n - i), s + i), -1;
    i += ml - 1;
  }
  return 0;
}

/* A modifier name: ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ). */
static int is_mod_name(const char *s, size_t n) {
  if (n == 0 || !is_alpha((unsigned char)s[0])) return 0;
  for (size_t i = 1; i < n; i++)
    if (!is_alnum((unsigned char)s[i]) && !strchr("-_.", s[i])) return 0;
  return 1;
}

/* Where the dual-cidr-length at the end of s[0..n) starts: a trailing
 * "//digits", then before it a "/digits" (n when there is none). A
 * domain-spec may itself hold '/' and ':' ("a:foo:bar/baz.example.com",
 * RFC 7208 section 12), so only the end is read as a prefix length. */
static size_t digits_back(const char *s, size_t end) {
  size_t i = end;
  while (i > 0 && is_digit((unsigned char)s[i - 1])) i--;
  return i;
}
static size_t cidr_start(const char *s, size_t n) {
  size_t at = n, d = digits_back(s, n);
  if (d < n && d >= 2 && s[d - 1] == '/' && s[d - 2] == '/') at = n = d - 2;
  d = digits_back(s, n);
  if (d < n && d >= 1 && s[d - 1] == '/') at = d - 1;
  return at;
}

/* dual-cidr-length = [ ip4-cidr-length ] [ "/" ip6-cidr-length ]:
 * "/24", "//64", "/24//64". */
static int dual_cidr(const char *s, size_t n, int *c4, int *c6) {
  *c4 = 32, *c6 = 128;
  if (n == 0) return 0;
  if (s[0] != '/') return -1;
  const char *v6 = NULL;
  for (size_t i = 0; i + 1 < n; i++)
    if (s[i] == '/' && s[i + 1] == '/') {
      v6 = s + i + 2;
      break;
    }
  size_t l4 = v6 ? (size_t)(v6 - 2 - s) : n;
  if (l4 > 0) {
    if ((*c4 = cidr_len(s + 1, l4 - 1, 32)) < 0) return -1;
  }
  if (v6 && (*c6 = cidr_len(v6, (size_t)(s + n - v6), 128)) < 0) return -1;
  return 0;
}

static int kind_of(const char *name, size_t n, enum spf_kind *k) {
  static const struct {
    const char *name;
    enum spf_kind kind;
  } mechs[] = {{"all", SPF_ALL}, {"include", SPF_INCLUDE}, {"a", SPF_A},       {"mx", SPF_MX},
               {"ptr", SPF_PTR}, {"ip4", SPF_IP4},         {"ip6", SPF_IP6}, {"exists", SPF_EXISTS}};
  for (size_t i = 0; i < sizeof mechs / sizeof mechs[0]; i++)
    if (strlen(mechs[i].name) == n && strncasecmp(mechs[i].name, name, n) == 0) {
      *k = mechs[i].kind;
      return 0;
    }
  return -1;
}

/* Parses the term s[0..n) into t (t->text already set). */
static int parse_term(const char *s, size_t n, struct spf_term *t, char *err, size_t errlen) {
  char why[200] = "";
  t->qual = '+';
  t->cidr4 = 32, t->cidr6 = 128;
  /* A modifier is name=value with no ':' or '/' before the '='. */
  size_t eq = strcspn(s, "=:/");
  if (eq < n && s[eq] == '=') {
    if (!is_mod_name(s, eq)) return rq_errf(err, errlen, "'%s' is not a valid modifier", t->text), -1;
    const char *v = s + eq + 1;
    size_t vl = n - eq - 1;
    if (eq == 8 && strncasecmp(s, "redirect", 8) == 0) t->kind = SPF_REDIRECT;
    else if (eq == 3 && strncasecmp(s, "exp", 3) == 0) t->kind = SPF_EXP;
    else {
      t->kind = SPF_UNKNOWN_MOD; /* ignored (RFC 7208 6), but its value must be a macro-string */
      if (check_macro_string(v, vl, why, sizeof why) != 0)
        return rq_errf(err, errlen, "'%s': %s", t->text, why), -1;
      return 0;
    }
    /* exp= names a domain-spec like redirect=: the c, r and t macros are
     * only for the explanation text found there (RFC 7208 7.1). */
    if (check_domain_spec(v, vl, 0, &t->has_macro, why, sizeof why) != 0)
      return rq_errf(err, errlen, "'%s': %s", t->text, why), -1;
    return (t->domain = dupn(v, vl)) ? 0 : (rq_errf(err, errlen, "out of memory"), -1);
  }
  size_t i = 0;
  if (strchr("+-~?", s[0])) t->qual = s[i++];
  size_t name_end = i + strcspn(s + i, ":/");
  if (name_end > n) name_end = n;
  if (kind_of(s + i, name_end - i, &t->kind) != 0)
    return rq_errf(err, errlen, "'%s' is not an SPF mechanism (all, include, a, mx, ptr, ip4, ip6, exists)",
                   t->text),
           -1;
  const char *arg = s + name_end;
  size_t al = n - name_end;
  switch (t->kind) {
  case SPF_ALL:
    if (al) return rq_errf(err, errlen, "'%s': all takes no argument", t->text), -1;
    return 0;
  case SPF_INCLUDE:
  case SPF_EXISTS:
  case SPF_PTR:
    if (al == 0 && t->kind == SPF_PTR) return 0;
    if (al < 2 || arg[0] != ':') return rq_errf(err, errlen, "'%s' needs ':domain'", t->text), -1;
    if (check_domain_spec(arg + 1, al - 1, 0, &t->has_macro, why, sizeof why) != 0)
      return rq_errf(err, errlen, "'%s': %s", t->text, why), -1;
    return (t->domain = dupn(arg + 1, al - 1)) ? 0 : (rq_errf(err, errlen, "out of memory"), -1);
  case SPF_A:
  case SPF_MX: {
    size_t c = cidr_start(arg, al);
    if (dual_cidr(arg + c, al - c, &t->cidr4, &t->cidr6) != 0)
      return rq_errf(err, errlen, "'%s': the prefix length is not valid (/0-32 for IPv4, //0-128 for IPv6)",
                     t->text),
             -1;
    if (c == 0) return 0;
    if (arg[0] != ':' || c < 2) return rq_errf(err, errlen, "'%s' is not valid", t->text), -1;
    if (check_domain_spec(arg + 1, c - 1, 0, &t->has_macro, why, sizeof why) != 0)
      return rq_errf(err, errlen, "'%s': %s", t->text, why), -1;
    return (t->domain = dupn(arg + 1, c - 1)) ? 0 : (rq_errf(err, errlen, "out of memory"), -1);
  }
  case SPF_IP4:
  case SPF_IP6: {
    int fam = t->kind == SPF_IP4 ? 4 : 6, max = fam == 4 ? 32 : 128;
    if (al < 2 || arg[0] != ':') return rq_errf(err, errlen, "'%s' needs ':address'", t->text), -1;
    const char *slash = memchr(arg, '/', al);
    size_t alen = slash ? (size_t)(slash - arg - 1) : al - 1;
    char buf[64];
    if (alen == 0 || alen >= sizeof buf) return rq_errf(err, errlen, "'%s': the address is not valid", t->text), -1;
    memcpy(buf, arg + 1, alen);
    buf[alen] = '\0';
    if (inet_pton(fam == 4 ? AF_INET : AF_INET6, buf, t->ip.addr) != 1)
      return rq_errf(err, errlen, "'%s': '%s' is not an IPv%d address", t->text, buf, fam), -1;
    t->ip.family = fam;
    int len = max;
    if (slash && (len = cidr_len(slash + 1, (size_t)(arg + al - slash - 1), max)) < 0)
      return rq_errf(err, errlen, "'%s': the prefix length is not valid (0-%d)", t->text, max), -1;
    if (fam == 4) t->cidr4 = len;
    else t->cidr6 = len;
    return 0;
  }
  default: return -1;
  }
}

void spf_record_free(struct spf_record *r) {
  if (r == NULL) return;
  for (size_t i = 0; i < r->n; i++) {
    struct spf_term *t = &r->terms[i];
    free(t->text);
    free(t->domain);
    free(t->addrs[0]);
    free(t->addrs[1]);
    spf_record_free(t->child);
  }
  free(r->terms);
  free(r->domain);
  free(r->text);
  free(r);
}

int spf_parse(const char *domain, const char *text, struct spf_record **out, char *err,
              size_t errlen) {
  *out = NULL;
  size_t len = strlen(text);
  if (len > SPF_MAX_RECORD)
    return rq_errf(err, errlen, "the record is longer than %d bytes", SPF_MAX_RECORD), -1;
  if (!spf_is_record(text)) return rq_errf(err, errlen, "the record does not start with 'v=spf1'"), -1;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)text[i] < 0x20 || (unsigned char)text[i] > 0x7e)
      return rq_errf(err, errlen, "the record contains a character that is not printable ASCII"), -1;
  struct spf_record *r = calloc(1, sizeof *r);
  if (r == NULL) return rq_errf(err, errlen, "out of memory"), -1;
  r->redirect = -1;
  int exp_seen = 0;
  if ((r->domain = strdup(domain)) == NULL || (r->text = strdup(text)) == NULL) goto nomem;
  for (const char *p = text + 6; *p;) {
    while (*p == ' ') p++;
    if (*p == '\0') break;
    size_t n = strcspn(p, " ");
    if (r->n == SPF_MAX_TERMS) {
      rq_errf(err, errlen, "the record has more than %d terms", SPF_MAX_TERMS);
      goto fail;
    }
    if (r->n % 16 == 0) {
      struct spf_term *nt = realloc(r->terms, (r->n + 16) * sizeof *nt);
      if (nt == NULL) goto nomem;
      r->terms = nt;
    }
    struct spf_term *t = &r->terms[r->n];
    memset(t, 0, sizeof *t);
    r->n++;
    if ((t->text = dupn(p, n)) == NULL) goto nomem;
    if (parse_term(t->text, n, t, err, errlen) != 0) goto fail;
    if (t->kind == SPF_ALL) r->has_all = 1;
    if (t->kind == SPF_REDIRECT) {
      if (r->redirect >= 0) {
        rq_errf(err, errlen, "the record has more than one redirect= modifier");
        goto fail;
      }
      r->redirect = (int)(r->n - 1);
    }
    if (t->kind == SPF_EXP) {
      if (exp_seen++) {
        rq_errf(err, errlen, "the record has more than one exp= modifier");
        goto fail;
      }
    }
    p += n;
  }
  *out = r;
  return 0;
nomem:
  rq_errf(err, errlen, "out of memory");
fail:
  spf_record_free(r);
  return -1;
}

/* ---- loading the tree -------------------------------------------------------- */

static void free_strs(char **v, size_t n) {
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

static void problem(struct spf_tree *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct spf_tree *t, const char *fmt, ...) {
  if (t->problem[0]) return; /* the first one is what receivers hit */
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t->problem, sizeof t->problem, fmt, ap);
  va_end(ap);
}

/* The name to look up for a domain-spec without %{...} macros: one
 * trailing dot stripped (lookups take names without) and the literal
 * macros expanded: "%%" is '%', "%_" a space, "%-" "%20" (RFC 7208 7.1).
 * A fresh copy, or NULL on out of memory. */
static char *lookup_name(const char *d) {
  size_t n = strlen(d);
  if (n && d[n - 1] == '.') n--;
  char *out = malloc(3 * n + 1);
  if (out == NULL) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (d[i] == '%' && i + 1 < n && strchr("%_-", d[i + 1])) {
      char c = d[++i];
      if (c == '-') memcpy(out + k, "%20", 3), k += 3;
      else out[k++] = c == '_' ? ' ' : '%';
      continue;
    }
    out[k++] = d[i];
  }
  out[k] = '\0';
  return out;
}

/* The v=spf1 records at name. Returns the spf_dns code; *recs owned by
 * the caller (free_strs). */
static int fetch(struct spf_tree *t, const char *name, char ***recs, size_t *n) {
  char **all = NULL, err[200] = "";
  size_t na = 0;
  *recs = NULL, *n = 0;
  int rc = t->res->txt(t->res->ctx, name, &all, &na, err, sizeof err);
  if (rc == SPF_DNS_ERROR) {
    if (!t->temp[0]) snprintf(t->temp, sizeof t->temp, "%s", err[0] ? err : "DNS lookup failed");
    return rc;
  }
  if (rc != SPF_DNS_OK) {
    free_strs(all, na); /* a lenient callback may have set them anyway */
    return SPF_DNS_NONE;
  }
  size_t k = 0;
  for (size_t i = 0; i < na; i++) {
    if (spf_is_record(all[i])) all[k++] = all[i];
    else free(all[i]);
  }
  if (k == 0) {
    free(all);
    return SPF_DNS_NONE;
  }
  *recs = all, *n = k;
  return SPF_DNS_OK;
}

static int follow(struct spf_tree *t, struct spf_record *r);

/* Loads the record that include:/redirect= term x of r points to. */
static int load_child(struct spf_tree *t, struct spf_term *x) {
  const char *what = x->kind == SPF_INCLUDE ? "include:" : "redirect=";
  char **recs = NULL, err[300];
  size_t n = 0;
  char *name = lookup_name(x->domain);
  if (name == NULL) return -1;
  int rc = fetch(t, name, &recs, &n);
  if (rc == SPF_DNS_NONE)
    problem(t, "%s%s: %s has no SPF record (receivers answer permerror)", what, x->domain, name);
  else if (rc == SPF_DNS_OK && n > 1)
    problem(t, "%s%s: %s has %zu SPF records, which receivers treat as permerror", what, x->domain,
            name, n);
  else if (rc == SPF_DNS_OK && spf_parse(name, recs[0], &x->child, err, sizeof err) != 0)
    problem(t, "the SPF record of %s (reached by %s%s): %s", name, what, x->domain, err);
  free_strs(recs, n);
  free(name);
  if (x->child == NULL) return 0;
  return follow(t, x->child);
}

/* Walks r's terms: counts lookups, follows include and redirect targets,
 * notes +all. Returns -1 only on out of memory. */
static int follow(struct spf_tree *t, struct spf_record *r) {
  for (size_t i = 0; i < r->n; i++) {
    struct spf_term *x = &r->terms[i];
    if (x->kind == SPF_ALL && x->qual == '+') t->plus_all = 1;
    int costs = x->kind == SPF_INCLUDE || x->kind == SPF_A || x->kind == SPF_MX ||
                x->kind == SPF_PTR || x->kind == SPF_EXISTS ||
                (x->kind == SPF_REDIRECT && !r->has_all);
    if (!costs) continue;
    if (t->lookups > SPF_MAX_LOOKUPS) return 0; /* already over: stop following */
    if (++t->lookups > SPF_MAX_LOOKUPS) {
      problem(t, "the SPF record needs more than %d DNS lookups (include, a, mx, ptr, exists, "
                 "redirect, counted through every include); receivers answer permerror",
              SPF_MAX_LOOKUPS);
      return 0;
    }
    if ((x->kind == SPF_INCLUDE || x->kind == SPF_REDIRECT) && !x->has_macro && load_child(t, x) != 0)
      return -1;
  }
  return 0;
}

int spf_load(const char *domain, const struct spf_resolver *res, struct spf_tree **out) {
  struct spf_tree *t = calloc(1, sizeof *t);
  *out = NULL;
  if (t == NULL) return -1;
  t->res = res;
  if ((t->domain = lookup_name(domain)) == NULL) goto nomem;
  int rc = fetch(t, t->domain, &t->records, &t->n_records);
  if (rc == SPF_DNS_OK && t->n_records > 1) {
    problem(t, "%s has %zu SPF records; receivers treat that as permerror: publish one record", t->domain,
            t->n_records);
  } else if (rc == SPF_DNS_OK) {
    char err[300];
    if (spf_parse(t->domain, t->records[0], &t->root, err, sizeof err) != 0) problem(t, "%s", err);
    else if (follow(t, t->root) != 0) goto nomem;
  }
  *out = t;
  return 0;
nomem:
  spf_free(t);
  return -1;
}

void spf_free(struct spf_tree *t) {
  if (t == NULL) return;
  free_strs(t->records, t->n_records);
  spf_record_free(t->root);
  free(t->domain);
  free(t);
}

/* ---- check_host() --------------------------------------------------------------- */

static enum spf_result qual_result(char q) {
  switch (q) {
  case '-': return SPF_FAIL;
  case '~': return SPF_SOFTFAIL;
  case '?': return SPF_NEUTRAL;
  default: return SPF_PASS;
  }
}

/* Appends ips[0..n) to the term's cache for family index f. */
static int cache_add(struct spf_term *x, int f, const struct spf_ip *ips, size_t n) {
  if (n == 0) return 0;
  struct spf_ip *v = realloc(x->addrs[f], (x->n_addrs[f] + n) * sizeof *v);
  if (v == NULL) return -1;
  memcpy(v + x->n_addrs[f], ips, n * sizeof *v);
  x->addrs[f] = v;
  x->n_addrs[f] += n;
  return 0;
}

/* Looks up host's addresses of family fam into the term's cache (index
 * f). Returns the lookup's SPF_DNS_* result, or -1 (err set) when the
 * lookup failed or memory ran out: a temperror. */
static int add_host(struct spf_tree *t, struct spf_term *x, int f, int fam, const char *host, char *err,
                    size_t errlen) {
  struct spf_ip *ips = NULL;
  size_t n = 0;
  char e[200] = "";
  int rc = t->res->addr(t->res->ctx, host, fam, &ips, &n, e, sizeof e);
  if (rc == SPF_DNS_ERROR) rq_errf(err, errlen, "%s", e);
  else if (rc == SPF_DNS_OK && cache_add(x, f, ips, n) != 0) rq_errf(err, errlen, "out of memory"), rc = SPF_DNS_ERROR;
  free(ips);
  return rc == SPF_DNS_ERROR ? -1 : rc;
}

/* Fills the a/mx term's address cache for ip's family. Returns 0, or an
 * spf_result error with err set. */
static enum spf_result resolve(struct spf_tree *t, const struct spf_record *r, struct spf_term *x,
                               int fam, char *err, size_t errlen) {
  int f = fam == 4 ? 0 : 1;
  if (x->have[f]) return 0;
  char *name = lookup_name(x->domain ? x->domain : r->domain);
  if (name == NULL) return rq_errf(err, errlen, "out of memory"), SPF_TEMPERROR;
  enum spf_result out = 0;
  if (x->kind == SPF_A) {
    int rc = add_host(t, x, f, fam, name, err, errlen);
    x->found_none[f] = rc == SPF_DNS_NONE;
    if (rc < 0) out = SPF_TEMPERROR;
  } else {
    char **hosts = NULL, e[200] = "";
    size_t nh = 0;
    int rc = t->res->mx(t->res->ctx, name, &hosts, &nh, e, sizeof e);
    x->found_none[f] = rc == SPF_DNS_NONE;
    if (rc == SPF_DNS_ERROR) {
      rq_errf(err, errlen, "%s", e);
      out = SPF_TEMPERROR;
    } else if (rc == SPF_DNS_OK && nh > SPF_MAX_MX_NAMES) {
      rq_errf(err, errlen, "%s has %zu MX records; the mx mechanism allows at most %d (RFC 7208 4.6.4)", name,
              nh, SPF_MAX_MX_NAMES);
      out = SPF_PERMERROR;
    }
    for (size_t i = 0; out == 0 && rc == SPF_DNS_OK && i < nh; i++) {
      if (hosts[i][0] == '\0' || strcmp(hosts[i], ".") == 0) continue; /* null MX, RFC 7505 */
      if (add_host(t, x, f, fam, hosts[i], err, errlen) < 0) out = SPF_TEMPERROR;
    }
    free_strs(hosts, nh);
  }
  free(name);
  if (out == 0) x->have[f] = 1;
  return out;
}

/* The result of a subtree that could not be loaded. */
static enum spf_result unloaded(const struct spf_tree *t, const struct spf_term *x, char *err,
                                size_t errlen) {
  if (t->temp[0]) return rq_errf(err, errlen, "%s", t->temp), SPF_TEMPERROR;
  rq_errf(err, errlen, "%s", t->problem[0] ? t->problem : "an include could not be followed");
  (void)x;
  return SPF_PERMERROR;
}

/* What one check_host() run has spent (RFC 7208 4.6.4). */
struct budget {
  int lookups, voids;
};

/* Charges one DNS-querying term; PERMERROR (err set) once over the limit. */
static enum spf_result charge(struct budget *b, const struct spf_term *x, char *err, size_t errlen) {
  if (++b->lookups <= SPF_MAX_LOOKUPS) return 0;
  return rq_errf(err, errlen, "evaluation reaches '%s', DNS lookup %d of at most %d (RFC 7208 4.6.4)", x->text,
                 b->lookups, SPF_MAX_LOOKUPS),
         SPF_PERMERROR;
}

static enum spf_result eval_rec(struct spf_tree *t, struct spf_record *r, const struct spf_ip *ip,
                                int depth, struct budget *b, int *decider, char *err, size_t errlen) {
  *decider = -1;
  /* follow() already bounds the tree; this guards a corrupt one. */
  if (depth > SPF_MAX_LOOKUPS + 1) return rq_errf(err, errlen, "includes nest too deep"), SPF_PERMERROR;
  for (size_t i = 0; i < r->n; i++) {
    struct spf_term *x = &r->terms[i];
    int match = 0;
    enum spf_result rc;
    int sub;
    if (x->kind == SPF_INCLUDE || x->kind == SPF_A || x->kind == SPF_MX || x->kind == SPF_PTR ||
        x->kind == SPF_EXISTS)
      if ((rc = charge(b, x, err, errlen)) != 0) return rc;
    switch (x->kind) {
    case SPF_ALL: match = 1; break;
    case SPF_IP4:
    case SPF_IP6:
      match = ip->family == x->ip.family &&
              prefix_match(ip->addr, x->ip.addr, ip->family == 4 ? x->cidr4 : x->cidr6);
      break;
    case SPF_A:
    case SPF_MX: {
      if (x->has_macro) break;
      if ((rc = resolve(t, r, x, ip->family, err, errlen)) != 0) return rc;
      int f = ip->family == 4 ? 0 : 1;
      if (x->found_none[f] && ++b->voids > SPF_MAX_VOID)
        return rq_errf(err, errlen, "'%s' is the %d%s lookup that finds nothing; at most %d may (RFC 7208 4.6.4)",
                       x->text, b->voids, b->voids == 3 ? "rd" : "th", SPF_MAX_VOID),
               SPF_PERMERROR;
      for (size_t k = 0; k < x->n_addrs[f] && !match; k++)
        match = prefix_match(ip->addr, x->addrs[f][k].addr, f == 0 ? x->cidr4 : x->cidr6);
      break;
    }
    case SPF_INCLUDE:
      if (x->has_macro) break;
      if (x->child == NULL) return unloaded(t, x, err, errlen);
      rc = eval_rec(t, x->child, ip, depth + 1, b, &sub, err, errlen);
      if (rc == SPF_TEMPERROR) return rc;
      if (rc == SPF_PERMERROR || rc == SPF_NONE) return SPF_PERMERROR;
      match = rc == SPF_PASS;
      break;
    default: break; /* ptr, exists: need the message; modifiers */
    }
    if (match) {
      *decider = (int)i;
      return qual_result(x->qual);
    }
  }
  if (r->redirect >= 0 && !r->has_all) {
    struct spf_term *x = &r->terms[r->redirect];
    enum spf_result rc;
    if ((rc = charge(b, x, err, errlen)) != 0) return rc;
    if (x->has_macro) return SPF_NEUTRAL;
    if (x->child == NULL) return unloaded(t, x, err, errlen);
    int sub;
    rc = eval_rec(t, x->child, ip, depth + 1, b, &sub, err, errlen);
    return rc == SPF_NONE ? SPF_PERMERROR : rc;
  }
  return SPF_NEUTRAL;
}

enum spf_result spf_eval(struct spf_tree *t, const struct spf_ip *ip, int *decider, char *err,
                         size_t errlen) {
  *decider = -1;
  if (err && errlen) err[0] = '\0';
  if (t->root == NULL) {
    if (t->temp[0]) return rq_errf(err, errlen, "%s", t->temp), SPF_TEMPERROR;
    if (t->n_records == 0) return rq_errf(err, errlen, "%s has no SPF record", t->domain), SPF_NONE;
    return rq_errf(err, errlen, "%s", t->problem), SPF_PERMERROR;
  }
  static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  struct spf_ip v4;
  if (ip->family == 6 && memcmp(ip->addr, mapped, sizeof mapped) == 0) {
    memset(&v4, 0, sizeof v4);
    v4.family = 4;
    memcpy(v4.addr, ip->addr + 12, 4);
    ip = &v4;
  }
  struct budget b = {0, 0};
  return eval_rec(t, t->root, ip, 0, &b, decider, err, errlen);
}

static int has_include(const struct spf_record *r, const char *name, int depth) {
  if (r == NULL || depth > SPF_MAX_LOOKUPS + 1) return 0;
  for (size_t i = 0; i < r->n; i++) {
    const struct spf_term *x = &r->terms[i];
    if (x->kind == SPF_INCLUDE && x->domain && same_domain(x->domain, name)) return 1;
    if ((x->kind == SPF_INCLUDE || x->kind == SPF_REDIRECT) && has_include(x->child, name, depth + 1))
      return 1;
  }
  return 0;
}

int spf_has_include(const struct spf_tree *t, const char *name) {
  return has_include(t->root, name, 0);
}

/* ---- the suggested record ----------------------------------------------------------- */

struct toks {
  char **v;
  size_t n;
};

static int tok_find(const struct toks *k, const char *s) {
  for (size_t i = 0; i < k->n; i++)
    if (strcasecmp(k->v[i], s) == 0) return (int)i;
  return -1;
}

static int tok_insert(struct toks *k, size_t at, const char *s, size_t len) {
  char **v = realloc(k->v, (k->n + 1) * sizeof *v);
  if (v == NULL) return -1;
  k->v = v;
  char *d = dupn(s, len);
  if (d == NULL) return -1;
  memmove(v + at + 1, v + at, (k->n - at) * sizeof *v);
  v[at] = d;
  k->n++;
  return 0;
}

/* An all mechanism with any qualifier. */
static int is_all(const char *s) {
  if (strchr("+-~?", s[0])) s++;
  return strcasecmp(s, "all") == 0;
}

static int all_rank(const char *all) { return all[0] == '~' ? 0 : all[0] == '-' ? 1 : 2; }

char *spf_suggest(const struct spf_tree *t, const char *const *add, size_t n_add, int before) {
  struct toks k = {NULL, 0};
  char *out = NULL;
  int have_all = 0, have_redirect = 0;
  char all_term[8] = "";
  /* Terms of every record, in order, without repeats: merging several
   * records keeps everything each one authorised. */
  for (size_t r = 0; r < t->n_records; r++) {
    const char *p = t->records[r] + 6;
    while (*p) {
      while (*p == ' ') p++;
      size_t n = strcspn(p, " ");
      if (n == 0) break;
      char term[SPF_MAX_RECORD + 1];
      snprintf(term, sizeof term, "%.*s", (int)n, p);
      p += n;
      if (is_all(term)) {
        /* "+all" lets anyone send: it becomes "~all". */
        const char *mine = term[0] == '+' || is_alpha((unsigned char)term[0]) ? "~all" : term;
        if (t->n_records > 1) {
          /* A merge puts one all last, after every record's terms; the
           * mildest of theirs (~ before - before ?), so the result does
           * not depend on the order DNS returned the records in and
           * rejects no mail either record let through softly. */
          if (!all_term[0] || all_rank(mine) < all_rank(all_term))
            snprintf(all_term, sizeof all_term, "%c%s", mine[0], "all");
          continue;
        }
        if (all_term[0]) continue; /* terms after the first all never run */
        snprintf(all_term, sizeof all_term, "%s", mine);
        snprintf(term, sizeof term, "%s", all_term);
      }
      if (strncasecmp(term, "redirect=", 9) == 0 && have_redirect++) continue;
      if (tok_find(&k, term) >= 0) continue;
      if (tok_insert(&k, k.n, term, strlen(term)) != 0) goto out;
    }
  }
  if (all_term[0]) {
    if (t->n_records > 1 && tok_insert(&k, k.n, all_term, strlen(all_term)) != 0) goto out;
    have_all = 1;
  }
  /* A redirect next to an all is ignored (RFC 7208 6.1): drop it. */
  for (size_t i = 0; have_all && i < k.n; i++)
    if (strncasecmp(k.v[i], "redirect=", 9) == 0) {
      free(k.v[i]);
      memmove(k.v + i, k.v + i + 1, (k.n - i - 1) * sizeof *k.v);
      k.n--;
      i--;
    }
  /* `before` indexes the parsed root's terms: find that term among the
   * tokens (an all turned into ~all is found by the loop below). */
  size_t at = k.n;
  int idx = -1;
  if (before >= 0 && t->root && (size_t)before < t->root->n)
    idx = tok_find(&k, t->root->terms[before].text);
  if (idx >= 0) at = (size_t)idx;
  else
    for (size_t i = 0; i < k.n; i++)
      if (is_all(k.v[i]) || strncasecmp(k.v[i], "redirect=", 9) == 0) {
        at = i;
        break;
      }
  for (size_t i = 0; i < n_add; i++) {
    if (tok_find(&k, add[i]) >= 0) continue;
    if (tok_insert(&k, at++, add[i], strlen(add[i])) != 0) goto out;
  }
  if (k.n == 0 && tok_insert(&k, 0, "mx", 2) != 0) goto out;
  if (t->n_records == 0 && tok_find(&k, "~all") < 0 && tok_insert(&k, k.n, "~all", 4) != 0) goto out;
  size_t len = 7;
  for (size_t i = 0; i < k.n; i++) len += strlen(k.v[i]) + 1;
  if ((out = malloc(len)) == NULL) goto out;
  strcpy(out, "v=spf1");
  for (size_t i = 0; i < k.n; i++) {
    strcat(out, " ");
    strcat(out, k.v[i]);
  }
out:
  free_strs(k.v, k.n);
  return out;
}
