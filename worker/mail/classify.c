/*
 * classify: delivery outcome classification (see classify.h).
 *
 * SMTP replies go through one static rule table, first match wins. Rules
 * that key on text come first because a server's words are more specific
 * than its codes (Office 365 sends blocklist rejections as 5.7.1, Gmail
 * sends "Daily sending quota exceeded" as 550); enhanced-code families come
 * next; fallbacks by stage and code end the table, so every 4xx and 5xx
 * matches some rule.
 */
#include "classify.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "json_scan.h"

/* ---- names --------------------------------------------------------------- */

static const char *const errcat_names[] = {
#define RQ_ERRCAT_NAME_(name, str, next) str,
    RQ_ERRCAT_MAP(RQ_ERRCAT_NAME_)
#undef RQ_ERRCAT_NAME_
};

static const char *const errcat_next[] = {
#define RQ_ERRCAT_NEXT_(name, str, next) next,
    RQ_ERRCAT_MAP(RQ_ERRCAT_NEXT_)
#undef RQ_ERRCAT_NEXT_
};

const char *rq_errcat_name(enum rq_errcat e) {
  if ((unsigned)e >= RQ_ERR__COUNT) return "";
  return errcat_names[e];
}

const char *rq_errcat_next_step(enum rq_errcat e) {
  if ((unsigned)e >= RQ_ERR__COUNT) return "";
  return errcat_next[e];
}

int rq_errcat_parse(const char *name, enum rq_errcat *out) {
  if (!name) return -1;
  for (unsigned i = 0; i < RQ_ERR__COUNT; i++) {
    if (strcmp(name, errcat_names[i]) == 0) {
      *out = (enum rq_errcat)i;
      return 0;
    }
  }
  return -1;
}

const char *rq_verdict_name(enum rq_verdict v) {
  switch (v) {
  case RQ_OK: return "ok";
  case RQ_TEMP: return "temp";
  case RQ_PERM: return "perm";
  }
  return "unknown";
}

static const char *const stage_names[RQ_STAGE__COUNT] = {
    "connect", "banner", "ehlo", "starttls", "tls", "auth",
    "mail",    "rcpt",   "data", "body",     "quit"};

/* The same stages as words for detail sentences. */
static const char *const stage_phrases[RQ_STAGE__COUNT] = {
    "while connecting",        "while waiting for the greeting",
    "after EHLO",              "after STARTTLS",
    "during the TLS handshake", "during login",
    "after MAIL FROM",         "after RCPT TO",
    "after DATA",              "while sending the message",
    "after QUIT"};

const char *rq_stage_name(enum rq_smtp_stage s) {
  if ((unsigned)s >= RQ_STAGE__COUNT) return "unknown";
  return stage_names[s];
}

static const char *stage_phrase(enum rq_smtp_stage s) {
  if ((unsigned)s >= RQ_STAGE__COUNT) return "during delivery";
  return stage_phrases[s];
}

/* ---- text sanitising ------------------------------------------------------ */

/* A bounded writer that collapses white space and keeps UTF-8 whole. */
struct san {
  char *dst;
  size_t cap; /* bytes available, excluding the NUL */
  size_t len;
  int pending_space;
  int full;
};

static void san_init(struct san *s, char *dst, size_t dst_size) {
  s->dst = dst;
  s->cap = dst_size - 1;
  s->len = 0;
  s->pending_space = 0;
  s->full = 0;
  dst[0] = '\0';
}

static void san_space(struct san *s) {
  if (s->len > 0) s->pending_space = 1; /* leading white space is dropped */
}

static void san_put(struct san *s, const unsigned char *p, size_t n) {
  size_t need = n + (s->pending_space ? 1 : 0);
  if (s->full) return;
  if (s->len + need > s->cap) {
    s->full = 1; /* cut here: never half a UTF-8 sequence */
    return;
  }
  if (s->pending_space) s->dst[s->len++] = ' ';
  memcpy(s->dst + s->len, p, n);
  s->len += n;
  s->pending_space = 0;
  s->dst[s->len] = '\0';
}

/* Length of the valid UTF-8 sequence at p (at most n bytes available), or 0
 * when it is not one. Rejects overlong forms, surrogates and code points
 * above U+10FFFF (RFC 3629 section 4). */
static size_t utf8_seq(const unsigned char *p, size_t n) {
  unsigned c = p[0];
  size_t len;
  unsigned lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) len = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else
    return 0;
  if (n < len) return 0;
  if (p[1] < lo || p[1] > hi) return 0;
  for (size_t i = 2; i < len; i++)
    if (p[i] < 0x80 || p[i] > 0xBF) return 0;
  return len;
}

static void san_feed(struct san *s, const char *src, size_t n) {
  const unsigned char *p = (const unsigned char *)src;
  size_t i = 0;
  while (i < n && !s->full) {
    unsigned c = p[i];
    if (c <= 0x20 || c == 0x7F) {
      san_space(s);
      i++;
    } else if (c < 0x80) {
      san_put(s, p + i, 1);
      i++;
    } else {
      size_t k = utf8_seq(p + i, n - i);
      if (k == 2 && c == 0xC2 && p[i + 1] < 0xA0) {
        san_space(s); /* C1 control characters (U+0080..U+009F) */
      } else if (k) {
        san_put(s, p + i, k);
      } else {
        static const unsigned char q = '?';
        san_put(s, &q, 1);
        k = 1;
      }
      i += k;
    }
  }
}

size_t rq_text_sanitize(char *dst, size_t dst_size, const char *src, size_t len) {
  struct san s;
  if (!dst || dst_size == 0) return 0;
  san_init(&s, dst, dst_size);
  if (src) san_feed(&s, src, len);
  return s.len;
}

/* ---- reply parsing (RFC 5321 4.2, RFC 3463) -------------------------------- */

/* A basic reply code at the start of a line: three digits, the first 1-5,
 * then end of line, space or hyphen. Returns the code or 0. */
static int line_code(const char *p, size_t n) {
  if (n < 3) return 0;
  if (p[0] < '1' || p[0] > '5' || p[1] < '0' || p[1] > '9' || p[2] < '0' || p[2] > '9')
    return 0;
  if (n > 3 && p[3] != ' ' && p[3] != '-' && p[3] != '\r') return 0;
  return (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
}

/* Length of an RFC 3463 code ("5.1.1", "4.7.500") at p, or 0. The class is
 * 2, 4 or 5; subject and detail have 1-3 digits; it ends the text or is
 * followed by white space. */
static size_t enhanced_len(const char *p, size_t n) {
  size_t i = 0;
  if (n < 5 || (p[0] != '2' && p[0] != '4' && p[0] != '5') || p[1] != '.') return 0;
  i = 2;
  for (int part = 0; part < 2; part++) {
    size_t start = i;
    while (i < n && i - start < 4 && p[i] >= '0' && p[i] <= '9') i++;
    if (i == start || i - start > 3) return 0;
    if (part == 0) {
      if (i >= n || p[i] != '.') return 0;
      i++;
    }
  }
  if (i < n && p[i] != ' ' && p[i] != '\t' && p[i] != '\r') return 0;
  return i;
}

int rq_reply_parse(const char *raw, size_t len, struct rq_reply *out) {
  struct san s;
  size_t pos = 0;
  int have_code = 0;

  memset(out, 0, sizeof *out);
  san_init(&s, out->text, sizeof out->text);
  if (!raw) len = 0;

  while (pos < len) {
    const char *line = raw + pos;
    const char *nl = memchr(line, '\n', len - pos);
    size_t ll = nl ? (size_t)(nl - line) : len - pos;
    size_t body = 0, end = ll;
    int code = line_code(line, ll);

    pos += ll + (nl ? 1 : 0);
    if (code) {
      if (!have_code) {
        out->code = code;
        have_code = 1;
      }
      body = (ll > 3 && (line[3] == ' ' || line[3] == '-')) ? 4 : 3;
    }
    if (end > body && line[end - 1] == '\r') end--;
    if (s.full) continue; /* keep reading only for the first code */

    const char *t = line + body;
    size_t tl = end - body;
    while (tl > 0 && (*t == ' ' || *t == '\t')) t++, tl--;
    size_t el = enhanced_len(t, tl);
    if (el) {
      /* Gmail repeats the code on every line: keep the first, strip all. */
      if (!out->enhanced[0]) memcpy(out->enhanced, t, el);
      t += el;
      tl -= el;
    }
    san_space(&s);
    san_feed(&s, t, tl);
  }
  return have_code ? 0 : -1;
}

/* ---- helpers ---------------------------------------------------------------- */

static int lower(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }
static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_alnum(int c) { return is_digit(c) || is_alpha(c); }

/* 1 when the NUL-terminated s starts with needle[0..nl), ignoring case.
 * Used instead of ci_find(...) == s, which would scan the whole rest of s
 * at every position (quadratic in the reply length). */
static int ci_prefix(const char *s, const char *needle, size_t nl) {
  size_t i = 0;
  while (i < nl && s[i] && lower((unsigned char)s[i]) == lower((unsigned char)needle[i])) i++;
  return i == nl;
}

/* Case-insensitive search for needle[0..nl) in the NUL-terminated hay. */
static const char *ci_find(const char *hay, const char *needle, size_t nl) {
  if (nl == 0) return hay;
  /* The rule tables run hundreds of searches per reply: let libc's
   * strpbrk skip to candidate first characters, then compare the rest. */
  char first[3] = {(char)lower((unsigned char)needle[0]), '\0', '\0'};
  if (is_alpha((unsigned char)first[0])) first[1] = (char)(first[0] - 32);
  while ((hay = strpbrk(hay, first)) != NULL) {
    if (ci_prefix(hay + 1, needle + 1, nl - 1)) return hay;
    hay++;
  }
  return NULL;
}

/* Does text contain any of the '|'-separated needles? */
static int has_any(const char *text, const char *needles) {
  const char *p = needles;
  while (*p) {
    const char *bar = strchr(p, '|');
    size_t n = bar ? (size_t)(bar - p) : strlen(p);
    if (n && ci_find(text, p, n)) return 1;
    if (!bar) break;
    p = bar + 1;
  }
  return 0;
}

/* Appends src to dst (capacity cap including the NUL) without splitting a
 * UTF-8 sequence; every source here is already sanitised. */
static void append(char *dst, size_t cap, size_t *len, const char *src) {
  size_t n = strlen(src);
  if (*len + n >= cap) {
    n = cap - 1 - *len;
    while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80) n--;
  }
  memcpy(dst + *len, src, n);
  *len += n;
  dst[*len] = '\0';
}

/* Expands a detail template: {code} becomes "550 5.1.1" (or "550"),
 * {list} the blocklist name, {stage} a phrase for the stage. */
static void expand(char *dst, size_t cap, const char *tpl, const char *code,
                   const char *list, const char *stage) {
  size_t len = 0;
  dst[0] = '\0';
  while (*tpl && len + 1 < cap) {
    const char *sub = NULL;
    size_t skip = 0;
    if (strncmp(tpl, "{code}", 6) == 0) sub = code, skip = 6;
    else if (strncmp(tpl, "{list}", 6) == 0) sub = list, skip = 6;
    else if (strncmp(tpl, "{stage}", 7) == 0) sub = stage, skip = 7;
    if (skip) {
      append(dst, cap, &len, sub ? sub : "");
      tpl += skip;
    } else {
      dst[len++] = *tpl++;
      dst[len] = '\0';
    }
  }
}

/* ---- retry hints ----------------------------------------------------------- */

struct unit {
  const char *word;
  int64_t ms;
};

static const struct unit units[] = {
    {"seconds", 1000},   {"second", 1000},    {"secs", 1000},
    {"sec", 1000},       {"s", 1000},         {"minutes", 60000},
    {"minute", 60000},   {"mins", 60000},     {"min", 60000},
    {"m", 60000},        {"hours", 3600000},  {"hour", 3600000},
    {"hrs", 3600000},    {"hr", 3600000},     {"h", 3600000},
};

/* A delay at p ("5 minutes", "300s", "an hour"); 0 when there is none. */
static int64_t delay_at(const char *p) {
  int64_t n = 0;
  size_t i = 0, digits = 0;
  while (p[i] == ' ') i++;
  if (lower(p[i]) == 'a' && lower(p[i + 1]) == 'n' && p[i + 2] == ' ') n = 1, i += 3;
  else if (lower(p[i]) == 'a' && p[i + 1] == ' ') n = 1, i += 2;
  else {
    while (is_digit((unsigned char)p[i]) && digits < 10) n = n * 10 + (p[i++] - '0'), digits++;
    if (digits == 0 || digits == 10 || n == 0) return 0;
  }
  while (p[i] == ' ') i++;
  size_t w = 0;
  while (is_alpha((unsigned char)p[i + w])) w++;
  for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
    if (strlen(units[u].word) != w) continue;
    size_t k = 0;
    while (k < w && lower((unsigned char)p[i + k]) == units[u].word[k]) k++;
    if (k == w) {
      int64_t ms = n * units[u].ms; /* n < 10^9, unit <= 3.6e6: no overflow */
      return ms > RQ_RETRY_HINT_MAX_MS ? RQ_RETRY_HINT_MAX_MS : ms;
    }
  }
  return 0;
}

int64_t rq_retry_hint_parse(const char *text) {
  static const char *const preps[] = {"in ", "after ", "for ", "within ", "wait "};
  if (!text) return 0;
  for (size_t i = 0; text[i]; i++) {
    if (i > 0 && is_alnum((unsigned char)text[i - 1])) continue;
    for (size_t k = 0; k < sizeof preps / sizeof preps[0]; k++) {
      size_t pl = strlen(preps[k]);
      if (!ci_prefix(text + i, preps[k], pl)) continue;
      int64_t ms = delay_at(text + i + pl);
      if (ms > 0) return ms;
    }
  }
  return 0;
}

/* ---- blocklists -------------------------------------------------------------- */

/* Phrases after which receivers name the list ("blocked using
 * zen.spamhaus.org", exim's "is in a black list at bl.spamcop.net"). */
static const char *const bl_phrases[] = {
    "blocked using ", "listed on ",      "listed at ",      "listed in ",
    "listed by ",     "black list at ",  "blacklist at ",   "blacklisted at ",
    "blacklisted by ", "blocklisted by ", "blocklist at ",
};

/* Well-known lists: the text to look for and the name to report. */
struct known_list {
  const char *needle;
  const char *name;
};

static const struct known_list known_lists[] = {
    {"zen.spamhaus.org", "zen.spamhaus.org"},
    {"spamhaus.org/query", "Spamhaus"},
    {"check.spamhaus.org", "Spamhaus"},
    {"spamhaus's list", "Spamhaus"},
    {"bl.spamcop.net", "bl.spamcop.net"},
    {"spamcop.net/bl", "SpamCop"},
    {"spamcop black list", "SpamCop"},
    {"b.barracudacentral.org", "b.barracudacentral.org"},
    {"barracuda reputation", "Barracuda Reputation"},
    {"barracudacentral.org/", "Barracuda Reputation"},
    {"dnsbl.sorbs.net", "dnsbl.sorbs.net"},
    {"sorbs.net/lookup", "SORBS"},
    {"uceprotect.net", "UCEPROTECT"},
    {"sender.office.com", "sender.office.com"},
};

/* Bare words that name a list when a phrase above precedes them. */
static const struct known_list list_words[] = {
    {"spamhaus", "Spamhaus"},   {"spamcop", "SpamCop"},
    {"barracuda", "Barracuda Reputation"}, {"sorbs", "SORBS"},
    {"uceprotect", "UCEPROTECT"}, {"spamrats", "SpamRATS"},
    {"mailspike", "Mailspike"}, {"psbl", "PSBL"},
};

static int zone_char(int c) { return is_alnum(c) || c == '.' || c == '-' || c == '_'; }

/* Finds the blocklist a reply names. Returns 1 and the name in `name`, or 0.
 * A phrase must be followed by a DNS zone (has a dot and a letter) or a
 * known list word, so "User not listed in public Name & Address Book"
 * (Lotus Domino: an unknown recipient) is not a listing. */
static int find_blocklist(const char *text, char *name, size_t cap) {
  for (size_t k = 0; k < sizeof bl_phrases / sizeof bl_phrases[0]; k++) {
    const char *p = text;
    size_t pl = strlen(bl_phrases[k]);
    while ((p = ci_find(p, bl_phrases[k], pl)) != NULL) {
      const char *t = p + pl;
      size_t n = 0;
      int alpha = 0;
      p += pl;
      while (t[n] && zone_char((unsigned char)t[n]) && n < 64) {
        alpha |= is_alpha((unsigned char)t[n]);
        n++;
      }
      while (n > 0 && (t[n - 1] == '.' || t[n - 1] == '-')) n--;
      if (n == 0) continue;
      if (memchr(t, '.', n) && alpha && n >= 4 && n < cap) {
        memcpy(name, t, n);
        name[n] = '\0';
        return 1;
      }
      for (size_t w = 0; w < sizeof list_words / sizeof list_words[0]; w++) {
        size_t wl = strlen(list_words[w].needle);
        if (n >= wl && ci_prefix(t, list_words[w].needle, wl)) {
          snprintf(name, cap, "%s", list_words[w].name);
          return 1;
        }
      }
    }
  }
  for (size_t k = 0; k < sizeof known_lists / sizeof known_lists[0]; k++) {
    if (ci_find(text, known_lists[k].needle, strlen(known_lists[k].needle))) {
      snprintf(name, cap, "%s", known_lists[k].name);
      return 1;
    }
  }
  return 0;
}

/* ---- the rule table -------------------------------------------------------- */

#define ST(s) (1u << (s))
#define ANY 0u
#define V_CODE (-1) /* verdict from the code: 4xx temporary, 5xx permanent */
#define F_BLOCKLIST 1u

struct rule {
  unsigned stages;     /* ST() mask; ANY matches every stage */
  short lo, hi;        /* basic code range, inclusive */
  const char *enh;     /* enhanced code: "5.1." prefix, "5.7.26" exact, '?'
                        * as class matches 4 or 5, "-" means none given,
                        * NULL matches anything */
  const char *needles; /* '|'-separated substrings, any one must occur
                        * (case-insensitive); NULL: no text condition */
  unsigned flags;      /* F_BLOCKLIST: a list must be found in the text */
  signed char verdict; /* RQ_TEMP, RQ_PERM or V_CODE */
  unsigned char error; /* enum rq_errcat */
  const char *detail;  /* template, see expand() */
};

/* Details reused by several rules. */
#define D_RCPT "The receiving server rejected the recipient address ({code}): check that it is spelled correctly."
#define D_BASIC_OFF "The server refused the password login ({code}): basic authentication is disabled for this mailbox: switch to smtp_auth=xoauth2 (docs/oauth.md)."
#define D_LOGIN "The tenant's server refused the login ({code}): check smtp_user and smtp_password."
#define D_NEED_LOGIN "The server requires a login before sending ({code}): set smtp_user and smtp_password for this route."
#define D_NEED_TLS "The server requires an encrypted connection ({code}): set smtp_security to starttls (port 587) or tls (port 465)."
#define D_TOO_MANY "The server takes fewer recipients per message ({code}): the relay sends the rest in further transactions; set max_recipients to save the extra round trips."
#define D_QUOTA "The mail provider refused more mail for now because a sending limit was reached ({code}): the relay retries later; a lower hourly_quota keeps the tenant under the provider's limit."
#define D_SIZE "The message is larger than the server accepts ({code}): send smaller attachments, or links to the files."
#define D_SENDER "The server does not let this account send from this From address ({code}): use a from_email the tenant's mailbox owns, or authorise that address at the provider."
#define D_MAILBOX "The recipient's mailbox is full or cannot take mail now ({code}): the recipient must free space; temporary refusals are retried."
#define D_SPF "The receiving server refused mail that failed SPF/DKIM/DMARC checks for the sender's domain ({code}): authorise the platform in the domain's SPF record and set up DKIM (`relayq dns check DOMAIN` shows what is missing)."

static const struct rule rules[] = {
    /* Spamhaus refuses queries from big public resolvers and answers with
     * an error code that naive receivers report as a listing: the fault is
     * the receiver's, and no delisting helps. */
    {ANY, 400, 599, NULL, "open resolver|spamhaus.org/returnc", 0, V_CODE, RQ_ERR_PROVIDER,
     "The receiving server's blocklist lookups are failing ({code}, Spamhaus refuses its DNS resolver): this is not a listing; the recipient's postmaster must fix their resolver."},
    /* Yahoo's [TS03] comes as 421 but says it for good. */
    {ANY, 400, 599, NULL, "retrying will not succeed", 0, RQ_PERM, RQ_ERR_POLICY,
     "The receiving server refuses mail from the sending IP for good ({code}): review the sending reputation and complaint rates before sending there again."},
    {ANY, 400, 599, NULL, "banned sending ip", 0, RQ_PERM, RQ_ERR_BLOCKLISTED,
     "The sending IP is listed on sender.office.com ({code}): the operator of the sending IP must request delisting at https://sender.office.com."},
    {ANY, 400, 599, NULL, NULL, F_BLOCKLIST, RQ_PERM, RQ_ERR_BLOCKLISTED,
     "The sending IP is listed on {list} ({code}): the operator of the sending IP must request delisting (`relayq dnsbl check IP` shows the listing)."},

    /* Replies to AUTH. */
    {ST(RQ_STAGE_AUTH), 400, 499, NULL, NULL, 0, RQ_TEMP, RQ_ERR_AUTH,
     "The server could not check the login right now ({code}): the relay retries later."},
    {ANY, 500, 599, NULL, "smtpclientauthentication is disabled", 0, RQ_PERM, RQ_ERR_AUTH,
     "The server has SMTP AUTH turned off for this account ({code}): a Microsoft 365 admin must enable Authenticated SMTP for the mailbox or the tenant."},
    /* Microsoft 365 with Basic authentication off (the Exchange Online
     * default from the end of 2026): 535 5.7.139 "basic authentication is
     * disabled", 550 5.7.30 "Basic authentication is not supported for
     * Client Submission"; its plain 535 5.7.3 is also what a wrong
     * password gets. On an xoauth2 route smtp.c words these for tokens. */
    {ANY, 500, 599, NULL, "basic authentication is disabled|basic authentication is not supported|basic auth is disabled",
     0, RQ_PERM, RQ_ERR_AUTH, D_BASIC_OFF},
    {ANY, 500, 599, "5.7.139", NULL, 0, RQ_PERM, RQ_ERR_AUTH, D_BASIC_OFF},
    {ANY, 500, 599, "5.7.30", NULL, 0, RQ_PERM, RQ_ERR_AUTH, D_BASIC_OFF},
    {ST(RQ_STAGE_AUTH), 535, 535, "5.7.3", NULL, 0, RQ_PERM, RQ_ERR_AUTH,
     "The server refused the login ({code}): check smtp_user and smtp_password; on Microsoft 365, basic authentication is disabled for this mailbox: switch to smtp_auth=xoauth2 (docs/oauth.md)."},
    {ST(RQ_STAGE_AUTH), 534, 534, NULL, NULL, 0, RQ_PERM, RQ_ERR_AUTH,
     "The server wants a stronger kind of login ({code}): use an app password as smtp_password, or allow SMTP access in the mailbox's security settings."},
    {ST(RQ_STAGE_AUTH), 504, 504, NULL, NULL, 0, RQ_PERM, RQ_ERR_AUTH,
     "The server does not support the offered login method ({code}): check smtp_security, since many servers offer AUTH only after STARTTLS."},
    {ST(RQ_STAGE_AUTH), 500, 599, NULL, NULL, 0, RQ_PERM, RQ_ERR_AUTH, D_LOGIN},
    {ANY, 535, 535, NULL, NULL, 0, RQ_PERM, RQ_ERR_AUTH, D_LOGIN},

    /* TLS. */
    {ST(RQ_STAGE_STARTTLS) | ST(RQ_STAGE_TLS), 400, 599, NULL, NULL, 0, V_CODE, RQ_ERR_TLS,
     "The server refused STARTTLS ({code}): ask its admin, or set smtp_security to tls if it offers implicit TLS on port 465."},
    {ANY, 400, 599, NULL, "starttls|tls required|requires tls|must use tls|encryption required", 0, V_CODE,
     RQ_ERR_TLS, D_NEED_TLS},

    /* Sender authentication of the domain (before the login rules: Gmail's
     * 5.7.26 text says "must authenticate with at least one of SPF or
     * DKIM"). Gmail's 4.7.26 "rate limited because it is unauthenticated"
     * must not read as a quota either. */
    {ANY, 400, 599, "?.7.26", NULL, 0, V_CODE, RQ_ERR_POLICY, D_SPF},
    {ANY, 400, 599, NULL, "dmarc|spf|dkim|unauthenticated|sender policy framework|authentication level", 0,
     V_CODE, RQ_ERR_POLICY, D_SPF},
    {ANY, 400, 599, "?.7.25", NULL, 0, V_CODE, RQ_ERR_POLICY,
     "The receiving server wants reverse DNS for the sending IP ({code}): the operator of the sending IP must set a PTR record that matches its forward DNS."},
    {ANY, 400, 599, NULL, "ptr record|reverse dns|reverse lookup|cannot find your hostname", 0, V_CODE,
     RQ_ERR_POLICY,
     "The receiving server wants reverse DNS for the sending IP ({code}): the operator of the sending IP must set a PTR record that matches its forward DNS."},

    /* The server wants a login (Gmail 530 5.7.0, Office 365 5.7.57,
     * Postfix "Sender address rejected: not logged in"). */
    {ANY, 400, 599, "?.7.57", NULL, 0, V_CODE, RQ_ERR_AUTH, D_NEED_LOGIN},
    {ANY, 400, 599, NULL,
     "authentication required|authentication is required|not authenticated|must authenticate|not logged in|login required|smtp authentication",
     0, V_CODE, RQ_ERR_AUTH, D_NEED_LOGIN},

    /* Reputation and spam verdicts. Before the quota rules: Gmail's
     * "unsolicited mail ... temporarily rate limited" is about reputation. */
    {ANY, 400, 599, NULL, "unsolicited|spam detected|detected as spam|user complaints|spam abuse|reputation", 0,
     V_CODE, RQ_ERR_POLICY,
     "The receiving server refused the message as likely spam ({code}): review the content and the sending reputation; temporary refusals are retried."},

    /* Aruba, Forpsi (same platform): "5.1.0 <id> policy violation" is, in
     * Aruba's words, a temporary block for sending too much too fast. */
    {ANY, 400, 599, "?.1.0", "policy violation", 0, RQ_TEMP, RQ_ERR_QUOTA,
     "The mail provider paused sending for this account after too many messages or failures ({code}): the relay retries later; spread large sends over time."},

    /* Rate limits that mention recipients (Postfix anvil "too many
     * recipients from IP") come before the per-transaction limit. */
    {ANY, 400, 599, NULL,
     "too many recipients from|too much mail from|recipients per hour|messages per hour|emails per hour|per hour exceeded",
     0, RQ_TEMP, RQ_ERR_QUOTA, D_QUOTA},
    /* Too many recipients in one transaction: always temporary, RFC 5321
     * 4.5.3.1.10 says so even for 552. The engine splits and retries. */
    {ANY, 400, 599, "?.5.3", NULL, 0, RQ_TEMP, RQ_ERR_TOO_MANY_RECIPIENTS, D_TOO_MANY},
    {ANY, 400, 599, NULL, "too many recipients|recipient limit|reciplimit|separate transaction", 0, RQ_TEMP,
     RQ_ERR_TOO_MANY_RECIPIENTS, D_TOO_MANY},

    /* The recipient's mailbox is full (before the size rules: "mailbox
     * size limit exceeded" is the recipient's, not the message's). */
    {ANY, 400, 599, "?.2.2", NULL, 0, V_CODE, RQ_ERR_RECIPIENT_REJECTED, D_MAILBOX},
    {ANY, 400, 599, NULL, "over quota|overquota|mailbox full|mailbox is full|mailbox quota|user quota|mailbox size", 0,
     V_CODE, RQ_ERR_RECIPIENT_REJECTED, D_MAILBOX},

    /* The message is too big. */
    {ANY, 500, 599, "5.3.4", NULL, 0, RQ_PERM, RQ_ERR_PROVIDER, D_SIZE},
    {ANY, 500, 599, NULL, "message size|too large|too big|maximum message size|exceeds maximum permitted|size exceeds",
     0, RQ_PERM, RQ_ERR_PROVIDER, D_SIZE},

    /* Connection limits: the server ends or refuses the session. */
    {ANY, 400, 599, NULL, "too many connections|concurrent connections|too many concurrent|connection limit|connection rate",
     0, RQ_TEMP, RQ_ERR_CONNECT,
     "The server limits concurrent connections from this client ({code}): the relay retries later; lower smtp_max_connections for this server."},

    /* Sending limits of the account or IP: temporary even as 5xx (Gmail
     * "550 5.4.5 Daily user sending limit exceeded", cPanel's "max emails
     * per hour", Office 365 SubmissionQuotaExceeded). */
    {ANY, 400, 599, NULL,
     "sending quota|sending limit|send limit|rate limit|limit exceeded|quotaexceeded|max emails|max defers|daily limit|too many messages|sending rate|message quota",
     0, RQ_TEMP, RQ_ERR_QUOTA, D_QUOTA},

    /* Relay refused: the account may not send to outside domains. */
    {ANY, 400, 599, NULL,
     "relay access denied|relay not permitted|relaying denied|unable to relay|relay denied|not permitted to relay|relaying not allowed|relay disabled",
     0, V_CODE, RQ_ERR_POLICY,
     "The server refused to relay to this recipient ({code}): the route must log in (smtp_user) with an account allowed to send to outside domains."},

    /* The sender's domain does not resolve (RFC 3463 X.1.7, X.1.8). */
    {ANY, 400, 599, "?.1.8", NULL, 0, V_CODE, RQ_ERR_POLICY,
     "The server refused the sender's domain ({code}): the From domain must exist in DNS with an MX or A record."},
    {ANY, 400, 599, "?.1.7", NULL, 0, V_CODE, RQ_ERR_POLICY,
     "The server refused the sender address ({code}): check from_email and the job's from."},
    /* The sender address is not the account's. */
    {ANY, 400, 599, NULL,
     "sender address rejected|sender rejected|not owned by user|sendasdenied|permission to send|permissions to send|not allowed to send as|send on behalf",
     0, V_CODE, RQ_ERR_POLICY, D_SENDER},

    /* Greylisting: normal on a first delivery. */
    {ANY, 400, 499, NULL, "greylist|graylist|grey-list|gray-list", 0, RQ_TEMP, RQ_ERR_POLICY,
     "The receiving server greylisted the message ({code}): this is normal on a first delivery and the relay retries automatically."},

    {ANY, 500, 599, NULL, "is disabled|account disabled|mailbox disabled|mailbox is inactive|account is inactive", 0,
     RQ_PERM, RQ_ERR_RECIPIENT_REJECTED,
     "The recipient's account is disabled ({code}): remove the address or ask the recipient for a current one."},
    /* The recipient, in words (Yahoo rejects unknown users after the data;
     * exim says "Unrouteable address"; Office 365 "RecipientNotFound"). */
    {ANY, 400, 599, NULL,
     "user unknown|unknown user|no such user|does not exist|doesn't exist|doesn't have a|recipient not found|recipientnotfound|mailbox not found|mailbox unavailable|unrouteable address|invalid recipient|recipient address rejected|no mailbox",
     0, V_CODE, RQ_ERR_RECIPIENT_REJECTED, D_RCPT},

    /* 421 that only says "not now": the session is over, nothing is wrong
     * with the message. */
    {ANY, 421, 421, NULL, "closing connection|try again later|not available|shutting down|busy|temporary system problem", 0,
     RQ_TEMP, RQ_ERR_CONNECT,
     "The server closed the session ({code}): it is busy or limiting connections; the relay retries later."},

    /* Enhanced-code families (RFC 3463 section 3). */
    {ST(RQ_STAGE_RCPT) | ST(RQ_STAGE_DATA) | ST(RQ_STAGE_BODY), 400, 599, "?.1.", NULL, 0, V_CODE,
     RQ_ERR_RECIPIENT_REJECTED, D_RCPT},
    {ST(RQ_STAGE_MAIL), 400, 599, "?.1.", NULL, 0, V_CODE, RQ_ERR_POLICY,
     "The server refused the sender address ({code}): check from_email and the job's from."},
    {ST(RQ_STAGE_RCPT), 400, 599, "?.2.", NULL, 0, V_CODE, RQ_ERR_RECIPIENT_REJECTED,
     "The recipient's mailbox cannot take mail ({code}): check the address with the recipient; temporary refusals are retried."},
    {ANY, 400, 499, "4.7.", NULL, 0, RQ_TEMP, RQ_ERR_POLICY,
     "The receiving server deferred the message on policy grounds ({code}): the relay retries later; if it persists, check the sending IP's reputation."},
    {ANY, 500, 599, "5.7.", NULL, 0, RQ_PERM, RQ_ERR_POLICY,
     "The receiving server refused the message on policy grounds ({code}): last_reply has its reason."},
    {ANY, 400, 599, "?.6.", NULL, 0, V_CODE, RQ_ERR_PROVIDER,
     "The server refused the message's content or encoding ({code}): last_reply has its reason."},

    /* A bare 452 to RCPT is RFC 5321's "too many recipients" reply. */
    {ST(RQ_STAGE_RCPT), 452, 452, "-", NULL, 0, RQ_TEMP, RQ_ERR_TOO_MANY_RECIPIENTS, D_TOO_MANY},

    /* Fallbacks by stage, then by code. */
    {ST(RQ_STAGE_RCPT), 500, 599, NULL, NULL, 0, RQ_PERM, RQ_ERR_RECIPIENT_REJECTED, D_RCPT},
    {ST(RQ_STAGE_MAIL), 500, 599, NULL, NULL, 0, RQ_PERM, RQ_ERR_POLICY,
     "The server refused the sender ({code}): check from_email; last_reply has the server's reason."},
    {ST(RQ_STAGE_CONNECT) | ST(RQ_STAGE_BANNER), 500, 599, NULL, NULL, 0, RQ_PERM, RQ_ERR_PROVIDER,
     "The server refused the connection in its greeting ({code}): it may not take mail from the sending IP; last_reply has its reason."},
    {ANY, 421, 421, NULL, NULL, 0, RQ_TEMP, RQ_ERR_CONNECT,
     "The server closed the session ({code}): the relay retries later."},
    {ANY, 400, 499, NULL, NULL, 0, RQ_TEMP, RQ_ERR_PROVIDER,
     "The server reported a temporary failure ({code}) {stage}: the relay retries later."},
    {ANY, 500, 599, NULL, NULL, 0, RQ_PERM, RQ_ERR_PROVIDER,
     "The server rejected the message ({code}) {stage}: last_reply has its reason."},
};

static int enh_match(const char *pat, const char *enh) {
  size_t n, i;
  if (!pat) return 1;
  if (pat[0] == '-' && pat[1] == '\0') return enh[0] == '\0';
  if (!enh[0]) return 0;
  n = strlen(pat);
  for (i = 0; i < n; i++) {
    if (!enh[i]) return 0;
    if (i == 0 && pat[0] == '?') {
      if (enh[0] != '4' && enh[0] != '5') return 0;
    } else if (pat[i] != enh[i])
      return 0;
  }
  return pat[n - 1] == '.' || enh[n] == '\0';
}

static void set_class(struct rq_class *out, enum rq_verdict v, enum rq_errcat e) {
  out->verdict = v;
  out->error = e;
}

void rq_classify_smtp(enum rq_smtp_stage stage, const struct rq_reply *r, struct rq_class *out) {
  char text[RQ_REPLY_TEXT_MAX + 1], enh[16] = "", code_s[32], list[72] = "";
  int code = r ? r->code : 0;
  size_t el;

  memset(out, 0, sizeof *out);
  if (code >= 200 && code < 400) {
    set_class(out, RQ_OK, RQ_ERR_NONE);
    return;
  }
  /* Callers may fill a struct rq_reply by hand: bound and re-check it. */
  if (r) {
    rq_text_sanitize(text, sizeof text, r->text, strnlen(r->text, RQ_REPLY_TEXT_MAX));
    el = strnlen(r->enhanced, sizeof r->enhanced - 1);
    if (el && enhanced_len(r->enhanced, el) == el) memcpy(enh, r->enhanced, el + 1);
  } else {
    text[0] = '\0';
  }
  if (code < 400 || code > 599) {
    set_class(out, RQ_TEMP, RQ_ERR_PROVIDER);
    snprintf(out->detail, sizeof out->detail,
             "The server sent a reply without a valid status code %s: the relay retries later.",
             stage_phrase(stage));
    return;
  }
  if (enh[0]) snprintf(code_s, sizeof code_s, "%d %s", code, enh);
  else snprintf(code_s, sizeof code_s, "%d", code);

  for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
    const struct rule *ru = &rules[i];
    if (ru->stages && !(ru->stages & ST(stage))) continue;
    if (code < ru->lo || code > ru->hi) continue;
    if (!enh_match(ru->enh, enh)) continue;
    if (ru->needles && !has_any(text, ru->needles)) continue;
    if ((ru->flags & F_BLOCKLIST) && !find_blocklist(text, list, sizeof list)) continue;
    enum rq_verdict v = ru->verdict == V_CODE ? (code < 500 ? RQ_TEMP : RQ_PERM)
                                              : (enum rq_verdict)ru->verdict;
    set_class(out, v, (enum rq_errcat)ru->error);
    expand(out->detail, sizeof out->detail, ru->detail, code_s, list, stage_phrase(stage));
    if (v == RQ_TEMP) out->retry_after_ms = rq_retry_hint_parse(text);
    return;
  }
  /* Unreachable: the last rules cover every 4xx and 5xx. */
  set_class(out, code < 500 ? RQ_TEMP : RQ_PERM, RQ_ERR_PROVIDER);
}

/* ---- transport failures ------------------------------------------------------ */

struct fail_row {
  const char *name;
  enum rq_verdict verdict;
  enum rq_errcat error;
  const char *what, *advice;
};

static const struct fail_row fail_rows[RQ_FAIL__COUNT] = {
#define RQ_FAIL_ROW_(name, v, e, what, advice) {#name, RQ_##v, RQ_ERR_##e, what, advice},
    RQ_FAIL_MAP(RQ_FAIL_ROW_)
#undef RQ_FAIL_ROW_
};

const char *rq_fail_name(enum rq_fail f) {
  static char lower[RQ_FAIL__COUNT][20];
  if ((unsigned)f >= RQ_FAIL__COUNT) return "unknown";
  if (!lower[f][0]) { /* "TLS_CERT" -> "tls_cert", once; the table is constant */
    const char *n = fail_rows[f].name;
    size_t i = 0;
    for (; n[i] && i + 1 < sizeof lower[f]; i++) lower[f][i] = (char)(n[i] >= 'A' && n[i] <= 'Z' ? n[i] + 32 : n[i]);
    lower[f][i] = '\0';
  }
  return lower[f];
}

void rq_classify_failure(enum rq_fail kind, enum rq_smtp_stage stage, const struct rq_reply *reply,
                         const char *msg, struct rq_class *out) {
  char eb[160], what[128];
  size_t len = 0;
  memset(out, 0, sizeof *out);
  if (kind == RQ_FAIL_NONE) {
    set_class(out, RQ_OK, RQ_ERR_NONE);
    return;
  }
  if ((unsigned)kind >= RQ_FAIL__COUNT) kind = RQ_FAIL_OTHER;
  /* The server said why: its reply is the better witness (a 421 greeting
   * is connect, a 535 auth, a 454 to STARTTLS tls). */
  if (reply && reply->code >= 400 && reply->code <= 599) {
    enum rq_smtp_stage st = stage;
    if (kind == RQ_FAIL_AUTH) st = RQ_STAGE_AUTH;
    if (kind == RQ_FAIL_NO_STARTTLS) st = RQ_STAGE_STARTTLS;
    rq_classify_smtp(st, reply, out);
    if (out->verdict == RQ_OK) set_class(out, RQ_TEMP, RQ_ERR_PROVIDER); /* never report a failure as OK */
    return;
  }
  const struct fail_row *row = &fail_rows[kind];
  set_class(out, row->verdict, row->error);
  if (row->what[0] == '\0') { /* the transport's message is the whole sentence */
    rq_text_sanitize(out->detail, sizeof out->detail, msg ? msg : "", msg ? strnlen(msg, 1024) : 0);
    return;
  }
  if (kind == RQ_FAIL_TIMEOUT || kind == RQ_FAIL_CLOSED || kind == RQ_FAIL_REJECTED)
    snprintf(what, sizeof what, "%s %s", row->what, stage_phrase(stage));
  else
    snprintf(what, sizeof what, "%s", row->what);
  size_t el = rq_text_sanitize(eb, sizeof eb, msg ? msg : "", msg ? strnlen(msg, 1024) : 0);
  if (el > 0 && eb[el - 1] == '.') eb[el - 1] = '\0'; /* a sentence inside our parentheses */
  out->detail[0] = '\0';
  append(out->detail, sizeof out->detail, &len, what);
  if (eb[0]) {
    append(out->detail, sizeof out->detail, &len, " (");
    append(out->detail, sizeof out->detail, &len, eb);
    append(out->detail, sizeof out->detail, &len, ")");
  }
  append(out->detail, sizeof out->detail, &len, ": ");
  append(out->detail, sizeof out->detail, &len, row->advice);
}

/* ---- Mailgun / HTTP ---------------------------------------------------------- */

/* Mailgun's error bodies are {"message": "..."}: that top-level member,
 * sanitised into out. A message cut off with the body still names the
 * problem, so its decoded start is kept. Returns the sanitised length, 0
 * when absent. */
static size_t json_message(const char *b, size_t n, char *out, size_t cap) {
  char raw[RQ_REPLY_TEXT_MAX];
  int cut, len = rq_json_top_string(b, n, "message", raw, sizeof raw, &cut);
  out[0] = '\0';
  if (len <= 0) return 0;
  return rq_text_sanitize(out, cap, raw, (size_t)len);
}

/* An HTTP-date in any of its three forms (RFC 9110 5.6.7): IMF-fixdate
 * "Sun, 06 Nov 1994 08:49:37 GMT", RFC 850 "Sunday, 06-Nov-94 08:49:37
 * GMT" and asctime "Sun Nov  6 08:49:37 1994". (time_t)-1 when none. */
static time_t http_date(const char *s) {
  static const char *const forms[] = {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT",
                                      "%a %b %e %H:%M:%S %Y"};
  for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(s, forms[i], &tm);
    if (end && *end == '\0') return timegm(&tm);
  }
  return (time_t)-1;
}

/* Retry-After: delta-seconds or an HTTP-date (RFC 9110 10.2.3). */
static int64_t retry_after_ms(const char *v, int64_t now_ms) {
  char buf[64];
  size_t n, i = 0;
  if (!v) return 0;
  n = strnlen(v, sizeof buf - 1);
  memcpy(buf, v, n);
  buf[n] = '\0';
  while (buf[i] == ' ' || buf[i] == '\t') i++;
  while (n > i && (buf[n - 1] == ' ' || buf[n - 1] == '\t' || buf[n - 1] == '\r' || buf[n - 1] == '\n')) buf[--n] = '\0';
  if (i == n) return 0;
  if (is_digit((unsigned char)buf[i])) {
    int64_t s = 0;
    for (size_t k = i; k < n; k++) {
      if (!is_digit((unsigned char)buf[k])) return 0;
      if (s < RQ_RETRY_HINT_MAX_MS / 1000) s = s * 10 + (buf[k] - '0');
    }
    s *= 1000;
    return s > RQ_RETRY_HINT_MAX_MS ? RQ_RETRY_HINT_MAX_MS : s;
  }
  time_t t = http_date(buf + i);
  if (t == (time_t)-1) return 0;
  int64_t ms = (int64_t)t * 1000 - now_ms;
  if (ms <= 0) return 0;
  return ms > RQ_RETRY_HINT_MAX_MS ? RQ_RETRY_HINT_MAX_MS : ms;
}

void rq_classify_http(long status, const char *body, size_t body_len, const char *retry_after,
                      int64_t now_ms, struct rq_class *out) {
  char msg[128], part[140] = "";
  const char *what, *advice;
  enum rq_verdict v = RQ_PERM;
  enum rq_errcat e = RQ_ERR_PROVIDER;

  memset(out, 0, sizeof *out);
  if (status >= 200 && status < 300) {
    set_class(out, RQ_OK, RQ_ERR_NONE);
    return;
  }
  if (status <= 0) {
    set_class(out, RQ_TEMP, RQ_ERR_CONNECT);
    snprintf(out->detail, sizeof out->detail, "No HTTP response from the Mailgun API: the relay retries.");
    return;
  }
  if (!body) body_len = 0;
  if (!json_message(body, body_len, msg, sizeof msg)) {
    /* 401 comes as plain "Forbidden": keep a short plain-text body. */
    size_t i = rq_json_skip_ws(body, body_len, 0);
    if (i < body_len && body[i] != '{' && body[i] != '<') rq_text_sanitize(msg, 100, body + i, body_len - i);
    else msg[0] = '\0';
  }
  if (msg[0]) snprintf(part, sizeof part, ": %s", msg);

  switch (status) {
  case 400:
    what = "Mailgun rejected the request";
    advice = "fix the message or its addresses; it is not retried.";
    break;
  case 401:
    e = RQ_ERR_AUTH;
    what = "Mailgun rejected the API key";
    advice = "check mailgun_api_key, and mailgun_region (EU domains need eu).";
    break;
  case 403:
    e = RQ_ERR_AUTH;
    what = "Mailgun refused the request";
    advice = "the API key may not send for this domain, or the account is restricted.";
    break;
  case 404:
    what = "Mailgun does not know this domain";
    advice = "check mailgun_domain and mailgun_region (EU domains need eu).";
    break;
  case 408:
    v = RQ_TEMP, e = RQ_ERR_CONNECT;
    what = "Mailgun timed out reading the request";
    advice = "the relay retries.";
    break;
  case 413:
    what = "The message is larger than Mailgun accepts";
    advice = "send smaller attachments, or links to the files.";
    break;
  case 429:
    v = RQ_TEMP, e = RQ_ERR_QUOTA;
    what = "Mailgun is rate-limiting this account";
    advice = "the relay retries later; a lower hourly_quota keeps the tenant under the plan's limit.";
    break;
  default:
    if (status >= 500 && status <= 599) {
      v = RQ_TEMP;
      what = "Mailgun reported a server error";
      advice = "the relay retries later.";
    } else {
      what = "Mailgun answered with an unexpected HTTP status";
      advice = "check mailgun_base_url.";
    }
    break;
  }
  set_class(out, v, e);
  snprintf(out->detail, sizeof out->detail, "%s (HTTP %ld%s): %s", what, status, part, advice);
  if (v == RQ_TEMP) out->retry_after_ms = retry_after_ms(retry_after, now_ms);
}
