/*
 * spf: parse and evaluate SPF records (RFC 7208) for `relayq dns check`:
 * does a domain's record authorise the platform's addresses, does it
 * include the platform's SPF name, and is it valid at all.
 *
 * What this module owns:
 *   - the record syntax of RFC 7208 section 4.6.1 and 12 (mechanisms all,
 *     include, a, mx, ptr, ip4, ip6, exists with qualifiers + - ~ ?;
 *     modifiers redirect, exp and unknown ones; dual CIDR lengths; macro
 *     strings are checked for syntax but never expanded);
 *   - record selection (4.5: exactly one "v=spf1" record, else permerror);
 *   - the include/redirect tree with the 10-DNS-lookup limit (4.6.4),
 *     counted over the whole tree: every include, a, mx, ptr, exists and
 *     followed redirect costs one, as it does for some sender address;
 *   - evaluation of check_host() (section 4) for one address at a time,
 *     except that exists, ptr and terms with macros never match (their
 *     result depends on the message, not on the address alone);
 *   - the corrected record suggested when a check fails.
 *
 * Pure: every DNS answer comes from the struct spf_resolver callbacks,
 * so unit tests (tests/unit/test_spf.c) give a fake table. Not reentrant
 * per tree (evaluation caches answers inside it); separate trees are
 * independent. Every input is bounded (SPF_MAX_*), so a hostile record
 * cannot make it loop or allocate without limit.
 */
#ifndef RELAYQ_SPF_H
#define RELAYQ_SPF_H

#include <stddef.h>

#define SPF_MAX_LOOKUPS 10    /* RFC 7208 4.6.4 */
#define SPF_MAX_VOID 2        /* RFC 7208 4.6.4: more lookups that find nothing is permerror */
#define SPF_MAX_MX_NAMES 10   /* RFC 7208 4.6.4: more MX names is permerror */
#define SPF_MAX_RECORD 4096   /* longest record we read, bytes */
#define SPF_MAX_TERMS 128     /* most terms in one record */

/* What a lookup callback answers. */
enum spf_dns {
  SPF_DNS_OK = 0,    /* records found */
  SPF_DNS_NONE = 1,  /* NXDOMAIN or no record of that type */
  SPF_DNS_ERROR = -1 /* no usable answer (timeout, SERVFAIL); err says why */
};

/* One address: family 4 or 6; addr holds 4 or 16 bytes, network order. */
struct spf_ip {
  int family;
  unsigned char addr[16];
};

/*
 * The lookups evaluation needs. Each returns enum spf_dns; on SPF_DNS_OK
 * it sets a malloc'd array the spf module takes over and frees with
 * free() (for strings: each string, then the array). *n may be 0 only
 * together with SPF_DNS_NONE. On SPF_DNS_ERROR it writes a sentence to
 * err (errlen bytes). Names are given without a trailing dot.
 *   txt:  the TXT records at name, each record's strings concatenated
 *         (RFC 7208 3.3).
 *   addr: the A (family 4) or AAAA (family 6) records of name.
 *   mx:   the MX exchange names of name (any order).
 */
struct spf_resolver {
  void *ctx;
  int (*txt)(void *ctx, const char *name, char ***recs, size_t *n, char *err, size_t errlen);
  int (*addr)(void *ctx, const char *name, int family, struct spf_ip **ips, size_t *n, char *err,
              size_t errlen);
  int (*mx)(void *ctx, const char *name, char ***hosts, size_t *n, char *err, size_t errlen);
};

enum spf_kind {
  SPF_ALL, SPF_INCLUDE, SPF_A, SPF_MX, SPF_PTR, SPF_IP4, SPF_IP6, SPF_EXISTS,
  SPF_REDIRECT, SPF_EXP, SPF_UNKNOWN_MOD
};

/* RFC 7208 2.6 results. */
enum spf_result {
  SPF_NONE, SPF_NEUTRAL, SPF_PASS, SPF_FAIL, SPF_SOFTFAIL, SPF_TEMPERROR, SPF_PERMERROR
};
/* "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror". */
const char *spf_result_name(enum spf_result r);

struct spf_record;

/*
 * One term of a record. Owned by its record (freed with it); the answer
 * caches are filled during evaluation.
 */
struct spf_term {
  char qual;              /* '+', '-', '~', '?' (mechanisms; '+' default) */
  enum spf_kind kind;
  char *text;             /* the term as written */
  char *domain;           /* domain-spec; NULL: the record's own domain */
  int has_macro;          /* domain-spec contains %{...}: never followed */
  struct spf_ip ip;       /* ip4/ip6 */
  int cidr4, cidr6;       /* prefix lengths (ip4/ip6/a/mx), default 32/128 */
  struct spf_record *child; /* include/redirect target once loaded */
  /* Answer caches for a and mx, index 0 IPv4, 1 IPv6. */
  int have[2];
  int found_none[2];      /* the lookup found nothing: a "void lookup" (4.6.4) */
  struct spf_ip *addrs[2];
  size_t n_addrs[2];
};

/* A parsed record. Owns its terms and, through them, its subtree. */
struct spf_record {
  char *domain;           /* where it was found */
  char *text;             /* the whole record */
  struct spf_term *terms;
  size_t n;
  int redirect;           /* index of redirect=, or -1 */
  int has_all;            /* an all mechanism is present (redirect ignored) */
};

/*
 * Parses one record found at domain (both copied). Returns 0 and *out
 * (caller frees with spf_record_free), or -1 with a sentence in err that
 * names the offending term (RFC 7208 permerror).
 */
int spf_parse(const char *domain, const char *text, struct spf_record **out, char *err,
              size_t errlen);
void spf_record_free(struct spf_record *r);

/* 1 when text starts a v=spf1 record (4.5: "v=spf1" then space or end,
 * case-insensitive). */
int spf_is_record(const char *text);

/* Parses "192.0.2.1" or "2001:db8::1". Returns 0 or -1. */
int spf_ip_parse(const char *s, struct spf_ip *out);
/* Writes the address in its usual text form into dst (>= 46 bytes). */
void spf_ip_format(const struct spf_ip *ip, char *dst, size_t cap);

/*
 * A domain's SPF, loaded from DNS with every include and redirect target.
 * Owned by the caller (spf_free). `problem` holds the first thing that
 * makes the record unusable (permerror: several records, syntax, lookups
 * over the limit, an include without a record) or dangerous ("+all"),
 * empty when none; `temp` a DNS failure (temperror), empty when none.
 */
struct spf_tree {
  char *domain;
  char **records;         /* every v=spf1 record at the domain */
  size_t n_records;
  struct spf_record *root;/* parsed when exactly one, else NULL */
  int lookups;            /* DNS-querying terms in the tree (capped at limit+1) */
  int plus_all;           /* some record of the tree ends in +all / all */
  char problem[512];
  char temp[256];
  const struct spf_resolver *res; /* borrowed, for evaluation */
};

/*
 * Loads domain's record and its tree through res (borrowed until
 * spf_free). Returns 0 with *out even when the domain has no or a bad
 * record (see problem/temp, n_records); -1 only on out of memory.
 */
int spf_load(const char *domain, const struct spf_resolver *res, struct spf_tree **out);
void spf_free(struct spf_tree *t);

/*
 * check_host() for ip over the loaded tree: PASS when the domain
 * authorises ip. An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is
 * evaluated as the IPv4 address (RFC 7208 section 5). Lookups are counted
 * as evaluation makes them (more than SPF_MAX_LOOKUPS, or more than
 * SPF_MAX_VOID that find nothing, is PERMERROR), so the result is the one a
 * receiver computes; the tree's own `lookups` count is stricter (every
 * branch). *decider gets the index of the top-level term that
 * decided (-1 when none did: neutral default or redirect), so a fix can
 * insert a mechanism before it. On TEMPERROR/PERMERROR err says why.
 */
enum spf_result spf_eval(struct spf_tree *t, const struct spf_ip *ip, int *decider, char *err,
                         size_t errlen);

/* 1 when include:name appears anywhere in the loaded tree (names compared
 * without case and trailing dot). */
int spf_has_include(const struct spf_tree *t, const char *name);

/*
 * The record the domain should publish: the current one (or the merge of
 * several) with "+all" turned into "~all" and each of add[0..n_add)
 * ("include:x", "ip4:y") inserted before the term at index `before` of the
 * root (-1: before the all mechanism, or at the end of the mechanisms).
 * Terms already present are not added twice. With no record at all:
 * "v=spf1 ADD... ~all", or "v=spf1 mx ~all" when nothing is to be added.
 * Returns a malloc'd string (caller frees) or NULL on out of memory.
 */
char *spf_suggest(const struct spf_tree *t, const char *const *add, size_t n_add, int before);

#endif
