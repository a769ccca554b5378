/*
 * cmd_dns: `relayq dns check DOMAIN` (CONTRACT.md "Command-line client"):
 * is the domain set up to send through the platform? Three checks, one
 * line each, every failing one with the exact TXT record to publish:
 *   spf    one valid v=spf1 record (RFC 7208) that authorises each
 *          --expect-ip and includes each --expect-include, within 10 DNS
 *          lookups and without "+all";
 *   dkim   a key record at SELECTOR._domainkey.DOMAIN (RFC 6376 3.6.1)
 *          holding the public half of --dkim-key or of the tenant's
 *          dkim_private_key;
 *   dmarc  one valid v=DMARC1 record at _dmarc.DOMAIN (RFC 7489 6.1),
 *          or the organisational domain's.
 *
 * Exit: 0 every check ran and passed; 1 a check failed or was not
 * checked (DKIM without a selector: the domain is not shown ready, so a
 * script must not read it as a pass); 2 an error: bad arguments, an
 * unreachable resolver, a lookup that got no usable answer, a key or
 * tenant that cannot be read.
 *
 * Parsing and evaluation are in spf.c and dmarc.c (pure, unit-tested);
 * lookups in dnsq.c; this file wires them and words the results.
 */
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "classify.h"
#include "cli.h"
#include "dmarc.h"
#include "dnsq.h"
#include "spf.h"
#include "tenant.h"

enum { EXIT_PASS = 0, EXIT_FAILED = 1, EXIT_ERROR = 2 };
enum { O_SELECTOR = CLI_OPT_FIRST_FREE, O_INCLUDE, O_IP, O_KEY, O_TENANT, O_JSON, O_SERVER };

#define MAX_EXPECT 16
#define MAX_KEY_FILE (64 * 1024)

static const struct option dns_opts[] = {
    CLI_GLOBAL_LONGOPTS,
    {"selector", required_argument, NULL, O_SELECTOR},
    {"expect-include", required_argument, NULL, O_INCLUDE},
    {"expect-ip", required_argument, NULL, O_IP},
    {"dkim-key", required_argument, NULL, O_KEY},
    {"tenant", required_argument, NULL, O_TENANT},
    {"json", no_argument, NULL, O_JSON},
    {"dns-server", required_argument, NULL, O_SERVER},
    {NULL, 0, NULL, 0},
};

static const char usage_text[] =
    "usage: relayq dns check DOMAIN [--selector S] [--expect-include NAME ...]\n"
    "                        [--expect-ip IP ...] [--dkim-key FILE] [--tenant T]\n"
    "                        [--json] [--dns-server IP[:PORT]]\n"
    "\n"
    "Checks that DOMAIN may send through the platform, one line per check:\n"
    "  spf    exactly one valid v=spf1 record, within 10 DNS lookups, no +all;\n"
    "         it authorises every --expect-ip and includes every --expect-include\n"
    "  dkim   a key at S._domainkey.DOMAIN (not checked without a selector); with\n"
    "         --dkim-key FILE (PEM, private or public) it must be that key\n"
    "  dmarc  a valid v=DMARC1 record at _dmarc.DOMAIN\n"
    "A failing check prints the exact TXT record to publish.\n"
    "\n"
    "  --tenant T        take the selector and key from tenant T's dkim_selector and\n"
    "                    dkim_private_key (needs Redis; RELAYQ_SECRET_KEY for sealed keys)\n"
    "  --json            one JSON object: {\"domain\", \"checks\": [{\"name\", \"pass\",\n"
    "                    \"status\", \"detail\", \"record\", \"fix\", \"fix_at\"}]}\n"
    "  --dns-server A    ask this resolver (env RELAYQ_DNS_SERVER; default the system's)\n"
    "\n"
    "Exit: 0 every check ran and passed, 1 a check failed or was not checked (UNCHECKED),\n"
    "2 error (usage, resolver unreachable, no usable answer).";

/* Everything the command line asked for. Strings borrowed from argv,
 * except pem and key_source's tenant wording (owned, freed at the end). */
struct opts {
  const char *domain_arg, *selector, *key_file, *tenant, *server;
  const char *includes[MAX_EXPECT];
  size_t n_inc;
  struct spf_ip ips[MAX_EXPECT];
  const char *ip_text[MAX_EXPECT];
  size_t n_ip;
  int json;
  char domain[256];       /* domain_arg without a trailing dot */
  char *selector_owned;   /* from the tenant */
  char *pem;              /* the key to compare, from --dkim-key or the tenant */
  size_t pem_len;
  char key_source[300];   /* "key.pem", "tenant T's dkim_private_key" */
  char dkim_domain[256];  /* the tenant's dkim_domain, when it differs */
};

/* C_UNCHECKED: the check could not run for want of input (no DKIM
 * selector); it is not a pass. */
enum cstate { C_PASS, C_FAIL, C_UNCHECKED, C_ERROR };

/* One check's outcome. Owns record and fix. */
struct check {
  const char *name;
  enum cstate state;
  char detail[2048];
  char *record;       /* what was found (sanitised), or NULL */
  char *fix;          /* the record to publish, or NULL */
  char fix_at[300];   /* the name to publish it at */
  const char *fix_how;/* "add this TXT record at", ... */
  /* spf: the RFC 7208 check_host() result for each --expect-ip (static
   * names from spf_result_name; the address text borrowed from argv). */
  const char *results[MAX_EXPECT];
  const char *result_ip[MAX_EXPECT];
  size_t n_results;
};

/* The resolver and whether it became unreachable: then every later lookup
 * would wait out its timeout too, so the command stops. */
struct dnsctx {
  struct dnsq *q;
  int unreachable;
  char fatal[400];
};

/* ---- small helpers ------------------------------------------------------------ */

static void add(struct check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct check *c, const char *fmt, ...) {
  size_t n = strlen(c->detail);
  if (n + 3 >= sizeof c->detail) return;
  if (n) {
    memcpy(c->detail + n, "; ", 3);
    n += 2;
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->detail + n, sizeof c->detail - n, fmt, ap);
  va_end(ap);
  /* Details quote record values, which may hold folding white space:
   * keep each check on one line. */
  for (char *p = c->detail + n; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = ' ';
}

static void fail(struct check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct check *c, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (c->state != C_ERROR) c->state = C_FAIL;
  add(c, "%s", buf);
}

/* A copy of text from DNS that is safe to print: control characters and
 * bytes that are not UTF-8 replaced (classify.h's sanitiser), bounded. */
static char *clean_copy(const char *s) {
  char buf[SPF_MAX_RECORD + 64];
  rq_text_sanitize(buf, sizeof buf, s, strlen(s));
  return strdup(buf);
}

static int same_domain(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la && a[la - 1] == '.') la--;
  if (lb && b[lb - 1] == '.') lb--;
  return la == lb && strncasecmp(a, b, la) == 0;
}

/* ---- lookups for spf.c ----------------------------------------------------------- */

static int map(struct dnsctx *d, int rc, const char *err) {
  if (rc == DNSQ_OK) return SPF_DNS_OK;
  if (rc == DNSQ_NONE) return SPF_DNS_NONE;
  if (rc == DNSQ_EUNREACHABLE && !d->unreachable) {
    d->unreachable = 1;
    snprintf(d->fatal, sizeof d->fatal, "%s", err);
  }
  return SPF_DNS_ERROR;
}

static int r_txt(void *ctx, const char *name, char ***recs, size_t *n, char *err, size_t errlen) {
  struct dnsctx *d = ctx;
  if (d->unreachable) return snprintf(err, errlen, "%s", d->fatal), SPF_DNS_ERROR;
  return map(d, dnsq_txt(d->q, name, recs, n, err, errlen), err);
}

static int r_addr(void *ctx, const char *name, int family, struct spf_ip **ips, size_t *n, char *err,
                  size_t errlen) {
  struct dnsctx *d = ctx;
  struct dnsq_addr *a = NULL;
  if (d->unreachable) return snprintf(err, errlen, "%s", d->fatal), SPF_DNS_ERROR;
  int rc = dnsq_addr(d->q, name, family, &a, n, err, errlen);
  *ips = NULL;
  if (rc == DNSQ_OK) {
    /* Same layout, separate types: the modules do not know each other. */
    *ips = calloc(*n, sizeof **ips);
    if (*ips == NULL) {
      free(a);
      *n = 0;
      return snprintf(err, errlen, "out of memory"), SPF_DNS_ERROR;
    }
    for (size_t i = 0; i < *n; i++) {
      (*ips)[i].family = a[i].family;
      memcpy((*ips)[i].addr, a[i].addr, sizeof a[i].addr);
    }
  }
  free(a);
  return map(d, rc, err);
}

static int r_mx(void *ctx, const char *name, char ***hosts, size_t *n, char *err, size_t errlen) {
  struct dnsctx *d = ctx;
  if (d->unreachable) return snprintf(err, errlen, "%s", d->fatal), SPF_DNS_ERROR;
  return map(d, dnsq_mx(d->q, name, hosts, n, err, errlen), err);
}

/* ---- spf --------------------------------------------------------------------------- */

static char *join_records(char **v, size_t n) {
  size_t len = 1;
  for (size_t i = 0; i < n; i++) len += strlen(v[i]) + 1;
  char *out = malloc(len);
  if (out == NULL) return NULL;
  out[0] = '\0';
  for (size_t i = 0; i < n; i++) {
    if (i) strcat(out, "\n");
    strcat(out, v[i]);
  }
  char *clean = clean_copy(out);
  free(out);
  return clean;
}

/* With several records there is no parsed tree: does one of them name
 * include:NAME at its top level? (The merged fix keeps it.) */
static int records_name(const struct spf_tree *t, const char *name) {
  if (t->n_records < 2) return 0;
  for (size_t r = 0; r < t->n_records; r++) {
    const char *p = t->records[r];
    while ((p = strcasestr(p, "include:")) != NULL) {
      p += 8;
      size_t n = strcspn(p, " ");
      if (n == strlen(name) && strncasecmp(p, name, n) == 0 && (p[-9] == ' ' || strchr("+-~?", p[-9])))
        return 1;
    }
  }
  return 0;
}

static void check_spf(struct dnsctx *d, const struct opts *o, struct check *c) {
  struct spf_resolver res = {d, r_txt, r_addr, r_mx};
  struct spf_tree *t = NULL, *inc_trees[MAX_EXPECT] = {NULL};
  char *adds[2 * MAX_EXPECT];
  size_t n_add = 0;
  int fixable = 0, before = -1, extra_lookups = 0;
  char passed[1024] = "";

  c->name = "spf";
  snprintf(c->fix_at, sizeof c->fix_at, "%s", o->domain);
  if (spf_load(o->domain, &res, &t) != 0) {
    c->state = C_ERROR;
    add(c, "out of memory");
    return;
  }
  if (d->unreachable) goto out;
  if (t->n_records) c->record = join_records(t->records, t->n_records);
  if (t->temp[0]) {
    c->state = C_ERROR;
    add(c, "cannot read the SPF record: %s", t->temp);
    for (size_t i = 0; i < o->n_ip; i++) {
      c->result_ip[c->n_results] = o->ip_text[i];
      c->results[c->n_results++] = spf_result_name(SPF_TEMPERROR);
    }
    goto out;
  }

  if (t->n_records == 0) {
    fail(c, "%s has no SPF record, so receivers cannot tell which servers may send its mail", o->domain);
    fixable = 1;
  } else if (t->problem[0]) {
    fail(c, "%s", t->problem);
    fixable = t->n_records > 1;
  }
  /* A record that does not parse needs a person: any record we built
   * from it would carry the same error. */
  int broken = t->n_records == 1 && t->root == NULL;
  if (broken)
    add(c, "receivers answer permerror for the whole record: correct that term (or remove it) and publish the "
           "record at %s again",
        o->domain);
  if (t->plus_all) {
    int at_top = 0;
    for (size_t i = 0; t->root && i < t->root->n; i++)
      at_top |= t->root->terms[i].kind == SPF_ALL && t->root->terms[i].qual == '+';
    fail(c, "'+all' (or a bare 'all')%s lets every server on the internet send as %s",
         at_top ? "" : " in an included record", o->domain);
    fixable |= at_top;
  }

  for (size_t i = 0; i < o->n_inc; i++) {
    if ((t->root && spf_has_include(t, o->includes[i])) || records_name(t, o->includes[i])) {
      snprintf(passed + strlen(passed), sizeof passed - strlen(passed), "; includes %s", o->includes[i]);
      continue;
    }
    fail(c, "include:%s is missing", o->includes[i]);
    char term[300];
    snprintf(term, sizeof term, "include:%s", o->includes[i]);
    if ((adds[n_add] = strdup(term)) != NULL) n_add++;
    fixable = 1;
    /* Load it to see which expected addresses it covers and what it will
     * cost in lookups. */
    if (spf_load(o->includes[i], &res, &inc_trees[i]) == 0) extra_lookups += 1 + inc_trees[i]->lookups;
    if (d->unreachable) goto out;
  }

  for (size_t i = 0; i < o->n_ip; i++) {
    char err[600] = "";
    int dec = -1;
    enum spf_result r = spf_eval(t, &o->ips[i], &dec, err, sizeof err);
    if (d->unreachable) goto out;
    c->result_ip[c->n_results] = o->ip_text[i];
    c->results[c->n_results++] = spf_result_name(r);
    if (r == SPF_PASS) {
      snprintf(passed + strlen(passed), sizeof passed - strlen(passed), "; authorises %s (SPF result pass)",
               o->ip_text[i]);
      continue;
    }
    if (r == SPF_TEMPERROR) {
      c->state = C_ERROR;
      add(c, "cannot tell whether %s is authorised: %s", o->ip_text[i], err);
      continue;
    }
    const char *via = NULL;
    for (size_t k = 0; k < o->n_inc && !via; k++) {
      int dk;
      if (inc_trees[k] && spf_eval(inc_trees[k], &o->ips[i], &dk, NULL, 0) == SPF_PASS) via = o->includes[k];
    }
    if (via) {
      fail(c, "%s is not authorised (SPF result %s) until include:%s is added", o->ip_text[i],
           spf_result_name(r), via);
      continue;
    }
    fail(c, "%s is not authorised (SPF result %s)", o->ip_text[i], spf_result_name(r));
    char term[80];
    snprintf(term, sizeof term, "%s:%s", o->ips[i].family == 4 ? "ip4" : "ip6", o->ip_text[i]);
    if ((adds[n_add] = strdup(term)) != NULL) n_add++;
    if (dec >= 0 && (before < 0 || dec < before)) before = dec;
    fixable = 1;
  }

  if (c->state == C_PASS) {
    add(c, "one valid record, %d of %d DNS lookups%s", t->lookups, SPF_MAX_LOOKUPS, passed);
  } else if (c->state == C_FAIL && fixable && !broken) {
    c->fix = spf_suggest(t, (const char *const *)adds, n_add, before);
    c->fix_how = t->n_records == 0 ? "add this TXT record at"
                 : t->n_records == 1 ? "replace it with this TXT record at"
                                     : "replace them with this one TXT record at";
    if (extra_lookups && t->lookups + extra_lookups > SPF_MAX_LOOKUPS)
      add(c, "note: with the added include the record needs about %d DNS lookups, over the limit of %d: "
             "replace some include:, a or mx terms by ip4:/ip6: ranges",
          t->lookups + extra_lookups, SPF_MAX_LOOKUPS);
  }
out:
  for (size_t i = 0; i < n_add; i++) free(adds[i]);
  for (size_t i = 0; i < MAX_EXPECT; i++) spf_free(inc_trees[i]);
  spf_free(t);
}

/* ---- dkim ----------------------------------------------------------------------------- */

static void check_dkim(struct dnsctx *d, const struct opts *o, struct check *c) {
  char **recs = NULL, err[400] = "", *want = NULL, k[16] = "rsa";
  size_t n = 0, found = 0, which = 0;
  struct dkim_record rec = {0};
  const char *selector = o->selector ? o->selector : o->selector_owned;

  c->name = "dkim";
  if (selector == NULL) {
    c->state = C_UNCHECKED;
    add(c, "not checked: no selector given: pass --selector S (or --tenant T with a dkim_selector) to check the "
           "DKIM key");
    return;
  }
  snprintf(c->fix_at, sizeof c->fix_at, "%s._domainkey.%s", selector, o->domain);
  if (o->pem && dkimrec_p_from_pem(o->pem, o->pem_len, &want, k, err, sizeof err) != 0) {
    c->state = C_ERROR;
    add(c, "cannot use %s: %s", o->key_source, err);
    return;
  }
  char expected[1200] = "";
  if (want) snprintf(expected, sizeof expected, "v=DKIM1; k=%s; p=%s", k, want);

  int rc = dnsq_txt(d->q, c->fix_at, &recs, &n, err, sizeof err);
  if (rc == DNSQ_EUNREACHABLE) {
    d->unreachable = 1;
    snprintf(d->fatal, sizeof d->fatal, "%s", err);
    goto out;
  }
  if (rc < 0) {
    c->state = C_ERROR;
    add(c, "cannot read the DKIM record: %s", err);
    goto out;
  }
  for (size_t i = 0; i < n; i++)
    if (dkimrec_is_record(recs[i])) found++, which = i;
  if (found == 0) {
    fail(c, "no DKIM key record at %s", c->fix_at);
    if (!want) add(c, "publish the public half of the selector's signing key as \"v=DKIM1; k=rsa; p=<base64>\"");
  } else if (found > 1) {
    fail(c, "%zu DKIM key records at %s; verifiers pick one at random: keep exactly one", found, c->fix_at);
  } else {
    c->record = clean_copy(recs[which]);
    int bits = 0;
    if (dkimrec_parse(recs[which], &rec, err, sizeof err) != 0) {
      fail(c, "the DKIM record at %s is not valid: %s", c->fix_at, err);
    } else if (dkimrec_key_check(&rec, &bits, err, sizeof err) != 0) {
      fail(c, "the DKIM record at %s: %s", c->fix_at, err);
    } else if (strcmp(rec.k, "rsa") == 0 && bits < 1024) {
      fail(c, "the key at %s is RSA %d bits; verifiers ignore keys under 1024 bits (RFC 8301): use 2048",
           c->fix_at, bits);
    } else if (want && !dkimrec_key_equal(&rec, want, k)) {
      fail(c, "the key published at %s is not the public half of %s, so every signature fails", c->fix_at,
           o->key_source);
    } else {
      add(c, "%s has an %s %d-bit key%s%s%s", c->fix_at, strcmp(rec.k, "rsa") == 0 ? "RSA" : "Ed25519", bits,
          want ? " matching " : "",
          want ? o->key_source : "", rec.testing ? " (t=y: testing mode, verifiers may ignore failures)" : "");
    }
  }
  if (c->state == C_FAIL && want) {
    c->fix = strdup(expected);
    c->fix_how = found == 0   ? "add this TXT record at"
                 : found == 1 ? "replace it with this TXT record at"
                              : "replace them with this one TXT record at";
  }
  if (o->dkim_domain[0] && c->state != C_ERROR)
    add(c, "note: the tenant signs with d=%s, not %s, so DKIM does not align with %s for DMARC", o->dkim_domain,
        o->domain, o->domain);
out:
  dkimrec_free(&rec);
  dnsq_strs_free(recs, n);
  free(want);
}

/* ---- dmarc ----------------------------------------------------------------------------- */

/* The DMARC records at _dmarc.name: returns 0 with *found and *rec set, or an error
 * (reported into c). */
static int dmarc_at(struct dnsctx *d, const char *name, struct check *c, size_t *found, char **rec) {
  char qname[300], **recs = NULL, err[400] = "";
  size_t n = 0;
  *found = 0, *rec = NULL;
  snprintf(qname, sizeof qname, "_dmarc.%s", name);
  int rc = dnsq_txt(d->q, qname, &recs, &n, err, sizeof err);
  if (rc == DNSQ_EUNREACHABLE) {
    d->unreachable = 1;
    snprintf(d->fatal, sizeof d->fatal, "%s", err);
    return -1;
  }
  if (rc < 0) {
    c->state = C_ERROR;
    add(c, "cannot read the DMARC record: %s", err);
    return -1;
  }
  for (size_t i = 0; i < n; i++)
    if (dmarc_is_record(recs[i])) {
      if (*found == 0) *rec = strdup(recs[i]);
      (*found)++;
    }
  dnsq_strs_free(recs, n);
  return 0;
}

static void dmarc_describe(struct check *c, const struct dmarc_record *m, const char *where) {
  char pct[32] = "";
  if (m->pct != 100) snprintf(pct, sizeof pct, " pct=%d", m->pct);
  add(c, "%s: p=%s%s%s%s", where, m->p, m->sp[0] ? " sp=" : "", m->sp, pct);
  if (strcmp(m->p, "none") == 0)
    add(c, "note: p=none only asks for reports; receivers still deliver spoofed mail. Move to p=quarantine "
           "or p=reject once the reports show only your own servers");
  if (!m->rua[0]) add(c, "note: no rua= address, so nobody receives the aggregate reports");
}

static void check_dmarc(struct dnsctx *d, const struct opts *o, struct check *c) {
  char *rec = NULL, err[400] = "";
  size_t found = 0;
  struct dmarc_record m;

  c->name = "dmarc";
  snprintf(c->fix_at, sizeof c->fix_at, "_dmarc.%s", o->domain);
  char suggested[600];
  snprintf(suggested, sizeof suggested, "v=DMARC1; p=none; rua=mailto:dmarc@%s", o->domain);
  if (dmarc_at(d, o->domain, c, &found, &rec) != 0) goto out;
  if (found == 0) {
    /* RFC 7489 6.6.3: fall back to the organisational domain. Without
     * the public suffix list, take the last two labels. */
    const char *org = o->domain + strlen(o->domain);
    int dots = 0;
    while (org > o->domain && dots < 2)
      if (*--org == '.') dots++;
    if (dots == 2) {
      org++;
      char *orec = NULL;
      size_t ofound = 0;
      if (dmarc_at(d, org, c, &ofound, &orec) != 0) goto out;
      if (ofound == 1 && dmarc_parse(orec, &m, err, sizeof err) == 0) {
        c->record = clean_copy(orec);
        char where[300];
        snprintf(where, sizeof where, "no record at _dmarc.%s, so the organisational domain's applies (_dmarc.%s)",
                 o->domain, org);
        dmarc_describe(c, &m, where);
        free(orec);
        goto out;
      }
      free(orec);
    }
    fail(c, "no DMARC record at _dmarc.%s, so receivers have no policy for mail that fails SPF and DKIM",
         o->domain);
    c->fix = strdup(suggested);
    c->fix_how = "add this TXT record at";
    goto out;
  }
  c->record = clean_copy(rec);
  if (found > 1) {
    fail(c, "%zu DMARC records at _dmarc.%s; receivers then apply none of them (RFC 7489 6.6.3): keep one",
         found, o->domain);
    c->fix = strdup(dmarc_parse(rec, &m, err, sizeof err) == 0 ? rec : suggested);
    c->fix_how = "replace them with this one TXT record at";
  } else if (dmarc_parse(rec, &m, err, sizeof err) != 0) {
    fail(c, "the DMARC record at _dmarc.%s is not valid: %s", o->domain, err);
    c->fix = strdup(suggested);
    c->fix_how = "replace it with this TXT record at";
  } else {
    char where[300];
    snprintf(where, sizeof where, "_dmarc.%s", o->domain);
    dmarc_describe(c, &m, where);
  }
out:
  free(rec);
}

/* ---- the tenant -------------------------------------------------------------------------- */

static int env_flag(const char *name) {
  const char *v = getenv(name);
  return v != NULL && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0);
}

/* Reads dkim_domain, dkim_selector and dkim_private_key from P:tenant:T.
 * Only those fields go to rq_tenant_parse, so another sealed secret
 * (smtp_password) does not need the key here. Prints and returns
 * EXIT_ERROR on failure. */
static int load_tenant(struct cli_ctx *ctx, struct opts *o) {
  static const char *const wanted[] = {"dkim_domain", "dkim_selector", "dkim_private_key"};
  if (!relayq_valid_id(o->tenant))
    return cli_fail(EXIT_ERROR, "'%.140s' is not a tenant id (1-128 characters of A-Z a-z 0-9 . _ : @ -).",
                    o->tenant);
  struct relayq_client *c = cli_client(ctx);
  if (c == NULL) return EXIT_ERROR;
  char key[600];
  relayq_key(key, sizeof key, relayq_client_prefix(c), RELAYQ_KEY_TENANT, o->tenant);
  redisReply *r = redisCommand(relayq_client_redis(c), "HGETALL %s", key);
  if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
    int rc = cli_fail(EXIT_ERROR, "cannot read tenant %s from Redis: %s", o->tenant,
                      r && r->type == REDIS_REPLY_ERROR ? r->str : "the connection failed.");
    if (r) freeReplyObject(r);
    return rc;
  }
  if (r->elements == 0) {
    freeReplyObject(r);
    return cli_fail(EXIT_ERROR, "tenant '%s' has no settings (no %s hash).", o->tenant, key);
  }
  const char *f[3], *v[3];
  size_t n = 0;
  for (size_t i = 0; i + 1 < r->elements; i += 2)
    for (size_t w = 0; w < 3 && n < 3; w++)
      if (r->element[i]->type == REDIS_REPLY_STRING && r->element[i + 1]->type == REDIS_REPLY_STRING &&
          strcmp(r->element[i]->str, wanted[w]) == 0) {
        f[n] = r->element[i]->str;
        v[n++] = r->element[i + 1]->str;
      }
  unsigned char sk[RELAYQ_SECRET_KEY_LEN];
  const unsigned char *skp = NULL;
  const char *b64 = getenv("RELAYQ_SECRET_KEY");
  struct relayq_error e;
  if (b64 && b64[0]) {
    if (relayq_secret_key_parse(b64, sk, &e) != 0) {
      freeReplyObject(r);
      return cli_fail(EXIT_ERROR, "RELAYQ_SECRET_KEY: %s", e.message);
    }
    skp = sk;
  }
  struct rq_tenant *t = NULL;
  char err[400];
  int prc = rq_tenant_parse(o->tenant, f, v, n, skp, env_flag("RELAYQ_REQUIRE_ENCRYPTED"), 0, &t, err, sizeof err);
  freeReplyObject(r);
  memset(sk, 0, sizeof sk);
  if (prc != 0) return cli_fail(EXIT_ERROR, "tenant %s: %s", o->tenant, err);
  if (t->dkim_selector && (o->selector_owned = strdup(t->dkim_selector)) == NULL) goto nomem;
  if (t->dkim_domain && !same_domain(t->dkim_domain, o->domain))
    snprintf(o->dkim_domain, sizeof o->dkim_domain, "%s", t->dkim_domain);
  if (t->dkim_private_key && o->pem == NULL) {
    o->pem_len = strlen(t->dkim_private_key);
    if ((o->pem = strdup(t->dkim_private_key)) == NULL) goto nomem;
    snprintf(o->key_source, sizeof o->key_source, "tenant %s's dkim_private_key", o->tenant);
  }
  rq_tenant_free(t);
  return 0;
nomem:
  rq_tenant_free(t);
  return cli_fail(EXIT_ERROR, "out of memory.");
}

/* ---- output ----------------------------------------------------------------------------- */

static const char *state_word(enum cstate s) {
  static const char *const w[] = {"PASS", "FAIL", "UNCHECKED", "ERROR"};
  return w[s];
}

static void print_text(const struct check *cs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const struct check *c = &cs[i];
    printf("%s %s: %s", state_word(c->state), c->name, c->detail);
    if (c->fix) printf("; %s %s: \"%s\"", c->fix_how, c->fix_at, c->fix);
    putchar('\n');
  }
}

static void json_or_null(const char *s) {
  if (s) cli_json_string(stdout, s);
  else fputs("null", stdout);
}

static void print_json(const char *domain, const struct check *cs, size_t n) {
  static const char *const status[] = {"pass", "fail", "not_checked", "error"};
  fputs("{\"domain\":", stdout);
  cli_json_string(stdout, domain);
  fputs(",\"checks\":[", stdout);
  for (size_t i = 0; i < n; i++) {
    const struct check *c = &cs[i];
    if (i) putchar(',');
    fputs("{\"name\":", stdout);
    cli_json_string(stdout, c->name);
    printf(",\"pass\":%s,\"status\":\"%s\",\"detail\":",
           c->state == C_PASS ? "true" : c->state == C_FAIL ? "false" : "null", status[c->state]);
    cli_json_string(stdout, c->detail);
    fputs(",\"record\":", stdout);
    json_or_null(c->record);
    fputs(",\"fix\":", stdout);
    json_or_null(c->fix);
    fputs(",\"fix_at\":", stdout);
    json_or_null(c->fix ? c->fix_at : NULL);
    if (strcmp(c->name, "spf") == 0) {
      fputs(",\"results\":[", stdout);
      for (size_t k = 0; k < c->n_results; k++) {
        fputs(k ? ",{\"ip\":" : "{\"ip\":", stdout);
        cli_json_string(stdout, c->result_ip[k]);
        printf(",\"result\":\"%s\"}", c->results[k]);
      }
      putchar(']');
    }
    putchar('}');
  }
  puts("]}");
}

/* ---- the command --------------------------------------------------------------------------- */

static int parse_args(int argc, char **argv, struct cli_ctx *ctx, struct opts *o, int *done) {
  int opt;
  *done = 0;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, ":h", dns_opts, NULL)) != -1) {
    if (cli_global_opt(opt, optarg, ctx)) continue;
    switch (opt) {
    case 'h':
      puts(usage_text);
      *done = 1;
      return EXIT_PASS;
    case O_SELECTOR:
      if (!dnsq_valid_name(optarg))
        return cli_fail(EXIT_ERROR, "--selector '%.80s' is not a DNS label (letters, digits, '-', '_', dots).",
                        optarg);
      o->selector = optarg;
      break;
    case O_INCLUDE:
      if (o->n_inc == MAX_EXPECT) return cli_fail(EXIT_ERROR, "at most %d --expect-include.", MAX_EXPECT);
      if (!dnsq_valid_name(optarg) || strchr(optarg, '.') == NULL)
        return cli_fail(EXIT_ERROR, "--expect-include '%.80s' is not a domain name.", optarg);
      o->includes[o->n_inc++] = optarg;
      break;
    case O_IP:
      if (o->n_ip == MAX_EXPECT) return cli_fail(EXIT_ERROR, "at most %d --expect-ip.", MAX_EXPECT);
      if (spf_ip_parse(optarg, &o->ips[o->n_ip]) != 0)
        return cli_fail(EXIT_ERROR, "--expect-ip '%.80s' is not an IPv4 or IPv6 address.", optarg);
      o->ip_text[o->n_ip++] = optarg;
      break;
    case O_KEY: o->key_file = optarg; break;
    case O_TENANT: o->tenant = optarg; break;
    case O_JSON: o->json = 1; break;
    case O_SERVER: o->server = optarg; break;
    default: cli_bad_option("dns", opt, argv); return EXIT_ERROR;
    }
  }
  if (optind >= argc || strcmp(argv[optind], "check") != 0)
    return cli_fail(EXIT_ERROR, "usage: relayq dns check DOMAIN [options] (see 'relayq dns --help').");
  if (argc - optind != 2)
    return cli_fail(EXIT_ERROR, "dns check needs exactly one DOMAIN (see 'relayq dns --help').");
  o->domain_arg = argv[optind + 1];
  size_t dl = strlen(o->domain_arg);
  if (dl && o->domain_arg[dl - 1] == '.') dl--;
  if (dl == 0 || dl >= sizeof o->domain) return cli_fail(EXIT_ERROR, "'%.80s' is not a domain name.", o->domain_arg);
  memcpy(o->domain, o->domain_arg, dl);
  o->domain[dl] = '\0';
  if (!dnsq_valid_name(o->domain) || strchr(o->domain, '.') == NULL)
    return cli_fail(EXIT_ERROR, "'%.80s' is not a domain name (ASCII; use the xn-- form for international names).",
                    o->domain_arg);
  return EXIT_PASS;
}

int cmd_dns(int argc, char **argv, struct cli_ctx *ctx) {
  struct opts o;
  struct check cs[3];
  struct dnsctx d = {0};
  int rc, done;
  char err[400];

  memset(&o, 0, sizeof o);
  memset(cs, 0, sizeof cs);
  if ((rc = parse_args(argc, argv, ctx, &o, &done)) != EXIT_PASS || done) return rc;

  if (o.key_file) {
    unsigned char *buf = NULL;
    size_t len = 0;
    if (cli_read_file(o.key_file, MAX_KEY_FILE, &buf, &len) != CLI_OK) return EXIT_ERROR;
    o.pem = (char *)buf, o.pem_len = len;
    snprintf(o.key_source, sizeof o.key_source, "%s", o.key_file);
  }
  if (o.tenant && (rc = load_tenant(ctx, &o)) != 0) goto out;

  if (dnsq_open(o.server, &d.q, err, sizeof err) != 0) {
    rc = cli_fail(EXIT_ERROR, "%s", err);
    goto out;
  }
  check_spf(&d, &o, &cs[0]);
  if (!d.unreachable) check_dkim(&d, &o, &cs[1]);
  if (!d.unreachable) check_dmarc(&d, &o, &cs[2]);
  if (d.unreachable) {
    rc = cli_fail(EXIT_ERROR, "%s Check --dns-server (or RELAYQ_DNS_SERVER) and the network.", d.fatal);
    goto out;
  }
  if (o.json) print_json(o.domain, cs, 3);
  else print_text(cs, 3);
  rc = EXIT_PASS;
  char names[3][3][8] = {{""}}; /* [failed, not checked, error][i] */
  size_t counts[3] = {0, 0, 0};
  for (size_t i = 0; i < 3; i++) {
    if (cs[i].state == C_ERROR) rc = EXIT_ERROR;
    if ((cs[i].state == C_FAIL || cs[i].state == C_UNCHECKED) && rc == EXIT_PASS) rc = EXIT_FAILED;
    int k = cs[i].state == C_FAIL ? 0 : cs[i].state == C_UNCHECKED ? 1 : cs[i].state == C_ERROR ? 2 : -1;
    if (k >= 0) snprintf(names[k][counts[k]++], sizeof names[k][0], "%s", cs[i].name);
  }
  if (rc != EXIT_PASS) {
    /* The lines above say what to fix; stderr says that something is. */
    char list[3][32];
    for (int k = 0; k < 3; k++) {
      list[k][0] = '\0';
      for (size_t i = 0; i < counts[k]; i++)
        snprintf(list[k] + strlen(list[k]), sizeof list[k] - strlen(list[k]), "%s%s", i ? ", " : "",
                 names[k][i]);
    }
    char what[300];
    if (ctx->verify_for)
      snprintf(what, sizeof what, "is not verified for tenant %s (nothing saved; fix the check and run this again)",
               ctx->verify_for);
    else
      snprintf(what, sizeof what, "is not ready to send through the platform");
    cli_fail(rc, "%s %s:%s%s%s%s%s%s (details %s).", o.domain, what, counts[0] ? " failed: " : "", list[0], counts[1] ? (counts[0] ? "; not checked: " : " not checked: ") : "",
             list[1], counts[2] ? (counts[0] || counts[1] ? "; error: " : " error: ") : "", list[2],
             o.json ? "in the JSON on stdout" : "on stdout");
  }
out:
  for (size_t i = 0; i < 3; i++) {
    free(cs[i].record);
    free(cs[i].fix);
  }
  dnsq_close(d.q);
  if (o.pem) {
    /* The tenant's key may be a private key: do not leave it in memory. */
    memset(o.pem, 0, o.pem_len);
    free(o.pem);
  }
  free(o.selector_owned);
  return rc;
}
