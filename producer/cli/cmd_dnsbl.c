/*
 * cmd_dnsbl: `relayq dnsbl check IP [--zone ZONE ...]` (CONTRACT.md
 * "Command-line client"): is a sending address on a DNS blocklist?
 *
 * For each zone it looks up the A record of the reversed address under
 * the zone (RFC 5782 section 2.1: octets for IPv4, nibbles for IPv6,
 * section 2.4): NXDOMAIN means not listed; an answer in 127.0.0.0/8 means
 * listed, with the code and the zone's TXT reason. These answers are
 * errors, not listings:
 *   - 127.255.255.0/24, Spamhaus's "your query was refused" codes
 *     (252 typo in the zone name, 254 query through a public or open
 *     resolver, 255 too many queries; spamhaus.org/news/article/788);
 *   - 127.0.0.1, which RFC 5782 section 5 says no list may contain;
 *   - anything outside 127.0.0.0/8 (a resolver that rewrites NXDOMAIN).
 *
 * "Not listed" also needs the zone's test entry 127.0.0.2 (RFC 5782
 * section 5) to be listed; otherwise the zone is reported as an error,
 * since a closed list or an NXDOMAIN-for-everything resolver would make
 * every address look clean.
 *
 * Exit: 0 not listed on any zone and every zone checked, 1 listed on at
 * least one zone, 2 error (usage, unreachable resolver, or a zone that gave
 * no usable answer or was not checked, and no listing elsewhere). A zone
 * that cannot vouch for "not listed" prints UNCHECKED ("not_checked" in
 * JSON), never PASS.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "classify.h"
#include "cli.h"
#include "dnsq.h"
#include "spf.h"

enum { EXIT_CLEAN = 0, EXIT_LISTED = 1, EXIT_ERROR = 2 };
enum { O_ZONE = CLI_OPT_FIRST_FREE, O_JSON, O_SERVER };

#define MAX_ZONES 32

/* The default zones (docs/dns.md lists them) and where a listed sender
 * reads why and asks for removal. */
static const struct zone_info {
  const char *zone;
  const char *lookup;
} default_zones[] = {
    {"zen.spamhaus.org", "https://check.spamhaus.org/"},
    {"bl.spamcop.net", "https://www.spamcop.net/bl.shtml"},
    {"b.barracudacentral.org", "https://www.barracudacentral.org/lookups"},
    {"dnsbl.sorbs.net", "http://www.sorbs.net/lookup.shtml"},
    {"psbl.surriel.com", "https://psbl.org/"},
    {"dnsbl-1.uceprotect.net", "https://www.uceprotect.net/en/rblcheck.php"},
};
#define N_DEFAULT_ZONES (sizeof default_zones / sizeof default_zones[0])

static const struct option dnsbl_opts[] = {
    CLI_GLOBAL_LONGOPTS,
    {"zone", required_argument, NULL, O_ZONE},
    {"json", no_argument, NULL, O_JSON},
    {"dns-server", required_argument, NULL, O_SERVER},
    {NULL, 0, NULL, 0},
};

/* Z_UNCHECKED: the zone answered, but cannot vouch for "not listed" (its
 * RFC 5782 test entry is missing): neither clean nor an answer error. */
enum zstate { Z_CLEAN, Z_LISTED, Z_ERROR, Z_UNCHECKED };

/* One zone's outcome. Plain value. */
struct zone_result {
  const char *zone; /* borrowed: argv or default_zones */
  enum zstate state;
  char codes[256];  /* "127.0.0.2, 127.0.0.4" */
  char reason[512]; /* the TXT record(s), sanitised, "" when none */
  char detail[768];
};

/* The reversed query name (RFC 5782 2.1 and 2.4) under zone. */
static void query_name(const struct spf_ip *ip, const char *zone, char *out, size_t cap) {
  static const char hex[] = "0123456789abcdef";
  char rev[128];
  size_t k = 0;
  if (ip->family == 4) {
    k = (size_t)snprintf(rev, sizeof rev, "%u.%u.%u.%u", ip->addr[3], ip->addr[2], ip->addr[1], ip->addr[0]);
  } else {
    for (int i = 15; i >= 0; i--) {
      rev[k++] = hex[ip->addr[i] & 0xf];
      rev[k++] = '.';
      rev[k++] = hex[ip->addr[i] >> 4];
      if (i) rev[k++] = '.';
    }
    rev[k] = '\0';
  }
  snprintf(out, cap, "%s.%s", rev, zone);
}

static const char *spamhaus_meaning(const unsigned char *a) {
  if (a[0] != 127 || a[1] != 0 || a[2] != 0) return NULL;
  switch (a[3]) {
  case 2: return "SBL, Spamhaus Blocklist";
  case 3: return "SBL CSS, low-reputation sender";
  case 4:
  case 5:
  case 6:
  case 7: return "XBL, exploited or infected host";
  case 9: return "SBL DROP";
  case 10:
  case 11: return "PBL, address not meant to send mail directly";
  default: return NULL;
  }
}

static const char *lookup_url(const char *zone) {
  for (size_t i = 0; i < N_DEFAULT_ZONES; i++)
    if (strcasecmp(default_zones[i].zone, zone) == 0) return default_zones[i].lookup;
  return NULL;
}

static int is_spamhaus(const char *zone) {
  size_t n = strlen(zone);
  return n >= 12 && strcasecmp(zone + n - 12, "spamhaus.org") == 0;
}

/*
 * "Not listed" is only worth saying when the zone answers at all: RFC 5782
 * section 5 has every IPv4 list carry 127.0.0.2 as a test entry. A zone
 * that does not list it is closed, or the resolver cannot reach it, or it
 * answers NXDOMAIN for everything; any of those would make every address
 * look clean. Returns as check_zone.
 */
static int check_test_entry(struct dnsq *q, const char *ip_text, struct zone_result *z, char *fatal,
                            size_t fatal_len) {
  char name[300], err[400] = "";
  struct dnsq_addr *a = NULL;
  size_t n = 0;
  snprintf(name, sizeof name, "2.0.0.127.%s", z->zone);
  /* Checking 127.0.0.2 itself: its "no such name" answer already says
   * the test entry is missing. */
  int rc = strcmp(ip_text, "127.0.0.2") == 0 ? DNSQ_NONE : dnsq_addr(q, name, 4, &a, &n, err, sizeof err);
  int works = rc == DNSQ_OK && a[0].addr[0] == 127 && !(a[0].addr[1] == 255 && a[0].addr[2] == 255);
  free(a);
  if (rc == DNSQ_EUNREACHABLE) {
    snprintf(fatal, fatal_len, "%s", err);
    return -1;
  }
  if (works) {
    z->state = Z_CLEAN;
    snprintf(z->detail, sizeof z->detail, "%s is not listed", ip_text);
    return 0;
  }
  z->state = Z_UNCHECKED;
  if (rc == DNSQ_OK)
    snprintf(z->detail, sizeof z->detail,
             "not checked: %s is not listed, but the zone refuses this resolver (its test entry 127.0.0.2 answers with an "
             "error code), so that says nothing: ask through a resolver of your own",
             ip_text);
  else
    snprintf(z->detail, sizeof z->detail,
             "not checked: the zone does not list its test entry 127.0.0.2 (RFC 5782 section 5), so the list is "
             "closed or this resolver does not reach it%s%s",
             rc == DNSQ_NONE ? "" : ": ", rc == DNSQ_NONE ? "" : err);
  return 0;
}

/* Looks one zone up. Returns 0, or -1 when the resolver is unreachable
 * (err set; the command stops). */
static int check_zone(struct dnsq *q, const struct spf_ip *ip, const char *ip_text, struct zone_result *z,
                      char *fatal, size_t fatal_len) {
  char name[400], err[400] = "";
  struct dnsq_addr *a = NULL;
  size_t n = 0;
  query_name(ip, z->zone, name, sizeof name);
  int rc = dnsq_addr(q, name, 4, &a, &n, err, sizeof err);
  if (rc == DNSQ_EUNREACHABLE) {
    snprintf(fatal, fatal_len, "%s", err);
    return -1;
  }
  if (rc == DNSQ_NONE) return check_test_entry(q, ip_text, z, fatal, fatal_len);
  if (rc != DNSQ_OK) {
    z->state = Z_ERROR;
    snprintf(z->detail, sizeof z->detail, "no usable answer: %s", err);
    return 0;
  }
  z->state = Z_LISTED;
  const char *meaning = NULL;
  for (size_t i = 0; i < n; i++) {
    const unsigned char *b = a[i].addr;
    char code[16];
    snprintf(code, sizeof code, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
    size_t cl = strlen(z->codes);
    snprintf(z->codes + cl, sizeof z->codes - cl, "%s%s", cl ? ", " : "", code);
    if (z->state == Z_ERROR) continue;
    if (b[0] != 127) {
      z->state = Z_ERROR;
      snprintf(z->detail, sizeof z->detail,
               "the answer %s is not a blocklist code (127.0.0.0/8): the resolver probably rewrites "
               "\"no such name\" answers; use one that does not",
               code);
    } else if (b[1] == 255 && b[2] == 255) {
      const char *why = b[3] == 252   ? "the zone name is misspelt"
                        : b[3] == 254 ? "queries through public or open resolvers are refused"
                        : b[3] == 255 ? "too many queries from this resolver"
                                      : "the query was refused";
      z->state = Z_ERROR;
      snprintf(z->detail, sizeof z->detail, "the list refused the query (%s: %s); this says nothing about %s: "
               "ask through a resolver of your own%s",
               code, why, ip_text, is_spamhaus(z->zone) ? " or Spamhaus's Data Query Service" : "");
    } else if (b[1] == 0 && b[2] == 0 && b[3] == 1) {
      z->state = Z_ERROR;
      snprintf(z->detail, sizeof z->detail,
               "the list answered 127.0.0.1, which no list may contain (RFC 5782): it refuses this resolver");
    } else if (meaning == NULL && is_spamhaus(z->zone)) {
      meaning = spamhaus_meaning(b);
    }
  }
  free(a);
  if (z->state == Z_ERROR) return 0;

  /* The reason is a courtesy: a missing TXT record changes nothing. */
  char **txt = NULL;
  size_t nt = 0;
  rc = dnsq_txt(q, name, &txt, &nt, err, sizeof err);
  if (rc == DNSQ_EUNREACHABLE) {
    snprintf(fatal, fatal_len, "%s", err);
    return -1;
  }
  for (size_t i = 0; rc == DNSQ_OK && i < nt; i++) {
    size_t rl = strlen(z->reason);
    if (rl + 4 >= sizeof z->reason) break;
    if (rl) memcpy(z->reason + rl, " | ", 4), rl += 3;
    rq_text_sanitize(z->reason + rl, sizeof z->reason - rl, txt[i], strlen(txt[i]));
  }
  dnsq_strs_free(txt, nt);
  const char *url = lookup_url(z->zone);
  snprintf(z->detail, sizeof z->detail, "%s is listed (%s%s%s)%s%s%s%s", ip_text, z->codes, meaning ? ": " : "",
           meaning ? meaning : "", z->reason[0] ? ": " : "", z->reason, url ? "; details and removal: " : "",
           url ? url : "");
  return 0;
}

static void print_json(const char *ip, const struct zone_result *zs, size_t n, int listed) {
  static const char *const status[] = {"clean", "listed", "error", "not_checked"};
  fputs("{\"ip\":", stdout);
  cli_json_string(stdout, ip);
  printf(",\"listed\":%s,\"zones\":[", listed ? "true" : "false");
  for (size_t i = 0; i < n; i++) {
    const struct zone_result *z = &zs[i];
    if (i) putchar(',');
    fputs("{\"zone\":", stdout);
    cli_json_string(stdout, z->zone);
    printf(",\"status\":\"%s\",\"listed\":%s,\"codes\":[", status[z->state],
           z->state == Z_LISTED ? "true" : z->state == Z_CLEAN ? "false" : "null");
    /* codes is "a, b": split it back into a JSON array. */
    char codes[sizeof z->codes];
    snprintf(codes, sizeof codes, "%s", z->codes);
    int first = 1;
    for (char *save = NULL, *c = strtok_r(codes, ", ", &save); c; c = strtok_r(NULL, ", ", &save)) {
      if (!first) putchar(',');
      first = 0;
      cli_json_string(stdout, c);
    }
    fputs("],\"reason\":", stdout);
    if (z->reason[0]) cli_json_string(stdout, z->reason);
    else fputs("null", stdout);
    fputs(",\"detail\":", stdout);
    cli_json_string(stdout, z->detail);
    putchar('}');
  }
  puts("]}");
}

int cmd_dnsbl(int argc, char **argv, struct cli_ctx *ctx) {
  const char *zones[MAX_ZONES], *server = NULL;
  size_t n_zones = 0;
  int opt, json = 0;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, ":h", dnsbl_opts, NULL)) != -1) {
    if (cli_global_opt(opt, optarg, ctx)) continue;
    switch (opt) {
    case 'h':
      puts("usage: relayq dnsbl check IP [--zone ZONE ...] [--json] [--dns-server IP[:PORT]]\n"
           "\n"
           "Looks IP (IPv4 or IPv6) up on DNS blocklists, one line per zone:\n"
           "PASS (not listed), FAIL (listed, with the code and the list's reason)\n"
           "ERROR (the list refused the query or gave no usable answer) or UNCHECKED\n"
           "(the zone cannot vouch for \"not listed\": its test entry is missing).\n"
           "Default zones: zen.spamhaus.org, bl.spamcop.net, b.barracudacentral.org,\n"
           "dnsbl.sorbs.net, psbl.surriel.com, dnsbl-1.uceprotect.net.\n"
           "\n"
           "  --zone ZONE       check this zone instead (repeatable)\n"
           "  --json            one JSON object: {\"ip\", \"listed\", \"zones\": [{\"zone\",\n"
           "                    \"status\", \"listed\", \"codes\", \"reason\", \"detail\"}]}\n"
           "  --dns-server A    ask this resolver (env RELAYQ_DNS_SERVER; default the system's)\n"
           "\n"
           "Exit: 0 not listed (every zone checked), 1 listed on a zone, 2 error or a zone\n"
           "not checked (UNCHECKED: it does not list its test entry 127.0.0.2).");
      return EXIT_CLEAN;
    case O_ZONE:
      if (n_zones == MAX_ZONES) return cli_fail(EXIT_ERROR, "at most %d --zone.", MAX_ZONES);
      if (!dnsq_valid_name(optarg) || strchr(optarg, '.') == NULL)
        return cli_fail(EXIT_ERROR, "--zone '%.80s' is not a DNS zone name.", optarg);
      zones[n_zones++] = optarg;
      break;
    case O_JSON: json = 1; break;
    case O_SERVER: server = optarg; break;
    default: cli_bad_option("dnsbl", opt, argv); return EXIT_ERROR;
    }
  }
  if (optind >= argc || strcmp(argv[optind], "check") != 0)
    return cli_fail(EXIT_ERROR, "usage: relayq dnsbl check IP [--zone ZONE ...] (see 'relayq dnsbl --help').");
  if (argc - optind != 2) return cli_fail(EXIT_ERROR, "dnsbl check needs exactly one IP address.");
  const char *ip_text = argv[optind + 1];
  struct spf_ip ip;
  if (spf_ip_parse(ip_text, &ip) != 0)
    return cli_fail(EXIT_ERROR, "'%.80s' is not an IPv4 or IPv6 address.", ip_text);
  if (n_zones == 0)
    for (size_t i = 0; i < N_DEFAULT_ZONES; i++) zones[n_zones++] = default_zones[i].zone;

  struct dnsq *q = NULL;
  char err[400];
  if (dnsq_open(server, &q, err, sizeof err) != 0) return cli_fail(EXIT_ERROR, "%s", err);
  struct zone_result zs[MAX_ZONES];
  memset(zs, 0, sizeof zs);
  char text[64];
  spf_ip_format(&ip, text, sizeof text);
  int listed = 0, errors = 0;
  for (size_t i = 0; i < n_zones; i++) {
    zs[i].zone = zones[i];
    if (check_zone(q, &ip, text, &zs[i], err, sizeof err) != 0) {
      dnsq_close(q);
      return cli_fail(EXIT_ERROR, "%s Check --dns-server (or RELAYQ_DNS_SERVER) and the network.", err);
    }
    listed |= zs[i].state == Z_LISTED;
    errors |= zs[i].state == Z_ERROR || zs[i].state == Z_UNCHECKED;
  }
  dnsq_close(q);
  if (json) {
    print_json(text, zs, n_zones, listed);
  } else {
    static const char *const word[] = {"PASS", "FAIL", "ERROR", "UNCHECKED"};
    for (size_t i = 0; i < n_zones; i++) printf("%s %s: %s\n", word[zs[i].state], zs[i].zone, zs[i].detail);
  }
  if (listed || errors) {
    char which[512] = "";
    for (size_t i = 0; i < n_zones; i++)
      /* Listed: name the lists; else the zones that gave no answer. */
      if (listed ? zs[i].state == Z_LISTED : zs[i].state != Z_CLEAN)
        snprintf(which + strlen(which), sizeof which - strlen(which), "%s%s", which[0] ? ", " : "", zs[i].zone);
    return cli_fail(listed ? EXIT_LISTED : EXIT_ERROR, "%s %s %s (details %s).", text,
                    listed ? "is listed on" : "could not be checked on", which,
                    json ? "in the JSON on stdout" : "on stdout");
  }
  return EXIT_CLEAN;
}
