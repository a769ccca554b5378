/*
 * cli_common: the helpers every `relayq` subcommand shares: global
 * options, error lines, the lazily connected client, file reading, number
 * parsing, JSON string output (RFC 8259 section 7) and aligned text
 * tables.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "json.h"
#include "util.h"

int cli_fail(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("relayq: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return code;
}

int cli_global_opt(int opt, const char *arg, struct cli_ctx *ctx) {
  if (opt == CLI_OPT_REDIS) {
    ctx->redis_url = arg;
    return 1;
  }
  if (opt == CLI_OPT_PREFIX) {
    ctx->prefix = arg;
    return 1;
  }
  if (opt == CLI_OPT_MODE) {
    ctx->mode = arg;
    return 1;
  }
  if (opt == CLI_OPT_ALLOW_NETS) {
    ctx->allow_nets = arg;
    return 1;
  }
  if (opt == CLI_OPT_REDIS_CA_FILE || opt == CLI_OPT_REDIS_CERT || opt == CLI_OPT_REDIS_KEY) {
    const char **f = opt == CLI_OPT_REDIS_CA_FILE ? &ctx->tls.ca_file
                     : opt == CLI_OPT_REDIS_CERT  ? &ctx->tls.cert_file
                                                  : &ctx->tls.key_file;
    *f = arg;
    return 1;
  }
  return 0;
}

int cli_bad_option(const char *cmd, int opt, char **argv) {
  const char *word = optind > 0 ? argv[optind - 1] : "?";
  char shortopt[3] = {'-', (char)optopt, '\0'};
  /* For an unknown short option inside a cluster (-xq), argv[optind-1]
   * is the whole cluster: name the letter instead. */
  if (optopt != 0 && (word[0] != '-' || word[1] != '-')) word = shortopt;
  const char *sp = cmd ? " " : "";
  if (cmd == NULL) cmd = "";
  if (opt == ':')
    return cli_fail(CLI_USAGE, "option '%s' needs a value (see 'relayq%s%s --help').", word, sp,
                    cmd);
  return cli_fail(CLI_USAGE, "unknown option '%s' (see 'relayq%s%s --help').", word, sp, cmd);
}

struct relayq_client *cli_client(struct cli_ctx *ctx) {
  if (ctx->client != NULL) return ctx->client;
  struct relayq_error err;
  int rc = relayq_connect_tls(ctx->redis_url, ctx->prefix, &ctx->tls, &ctx->client, &err);
  if (rc != 0) {
    cli_fail(CLI_FAIL, "%s", err.message);
    ctx->client = NULL;
  }
  return ctx->client;
}

int cli_read_file(const char *path, size_t max, unsigned char **out, size_t *len) {
  *out = NULL;
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (f == NULL) return cli_fail(CLI_FAIL, "cannot open %s: %s.", path, strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
    fclose(f);
    return cli_fail(CLI_FAIL, "%s is a directory, not a file.", path);
  }
  /* Read in growing chunks rather than trusting st_size, so pipes and
   * /dev/stdin work too; stop one byte past max to detect "too large". */
  size_t cap = 64 * 1024, n = 0;
  unsigned char *buf = malloc(cap + 1);
  int rc = CLI_OK;
  while (buf != NULL) {
    if (n == cap) {
      if (cap > max) break;
      size_t ncap = cap * 2;
      unsigned char *nb = realloc(buf, ncap + 1);
      if (nb == NULL) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = nb, cap = ncap;
    }
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (got == 0) break;
  }
  if (buf == NULL) {
    rc = cli_fail(CLI_FAIL, "out of memory reading %s.", path);
  } else if (ferror(f)) {
    rc = cli_fail(CLI_FAIL, "cannot read %s: %s.", path, strerror(errno));
  } else if (n > max) {
    rc = cli_fail(CLI_FAIL, "%s is larger than %zu bytes.", path, max);
  }
  fclose(f);
  if (rc != CLI_OK) {
    free(buf);
    return rc;
  }
  buf[n] = '\0';
  *out = buf;
  *len = n;
  return CLI_OK;
}

int cli_parse_int(const char *s, long long lo, long long hi, long long *out) {
  if (s == NULL || *s == '\0') return -1;
  errno = 0;
  char *end = NULL;
  long long v = strtoll(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

size_t cli_max_job_bytes(void) {
  const char *env = getenv("RELAYQ_MAX_JOB_BYTES");
  long long v;
  if (env && cli_parse_int(env, 1, (long long)(SIZE_MAX / 2), &v) == 0) return (size_t)v;
  return RELAYQ_DEFAULT_MAX_JOB_BYTES;
}

void cli_json_string(FILE *f, const char *s) {
  size_t n = strlen(s);
  char small[1024];
  char *buf = RELAYQ__JSON_STR_MAX(n) <= sizeof small ? small : malloc(RELAYQ__JSON_STR_MAX(n));
  if (buf == NULL) {
    fputs("\"\"", f); /* out of memory: an empty string keeps the JSON valid */
    return;
  }
  fwrite(buf, 1, relayq__json_str(buf, s, n), f);
  if (buf != small) free(buf);
}

/* ---- tables ------------------------------------------------------------------ */

void cli_table_row(struct cli_table *t, ...) {
  if (t->ncol == 0 || t->ncol > CLI_TABLE_MAX_COLS) return;
  if (t->nrows == t->cap) {
    t->cap = t->cap ? 2 * t->cap : 8;
    t->cells = rq_xrealloc(t->cells, t->cap * t->ncol * sizeof *t->cells);
  }
  va_list ap;
  va_start(ap, t);
  for (size_t c = 0; c < t->ncol; c++) {
    const char *v = va_arg(ap, const char *);
    char *cell = rq_xstrdup(v ? v : "-");
    for (char *p = cell; *p; p++)
      if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    t->cells[t->nrows * t->ncol + c] = cell;
  }
  va_end(ap);
  t->nrows++;
}

static size_t display_width(const char *s) {
  size_t w = 0;
  for (; *s; s++) w += ((unsigned char)*s & 0xc0) != 0x80;
  return w;
}

void cli_table_print(struct cli_table *t, FILE *f, const char *indent) {
  size_t wd[CLI_TABLE_MAX_COLS] = {0};
  for (size_t r = 0; r < t->nrows; r++)
    for (size_t c = 0; c < t->ncol; c++) {
      size_t w = display_width(t->cells[r * t->ncol + c]);
      if (w > wd[c]) wd[c] = w;
    }
  for (size_t r = 0; r < t->nrows; r++) {
    fputs(indent, f);
    for (size_t c = 0; c < t->ncol; c++) {
      const char *cell = t->cells[r * t->ncol + c];
      int pad = (int)(wd[c] - display_width(cell)), last = c + 1 == t->ncol;
      if (t->align && t->align[c] == 'r') fprintf(f, "%*s%s", pad, "", cell);
      else fprintf(f, "%s%*s", cell, last ? 0 : pad, "");
      if (!last) fputs("  ", f);
    }
    fputc('\n', f);
  }
  for (size_t i = 0; i < t->nrows * t->ncol; i++) free(t->cells[i]);
  free(t->cells);
  t->cells = NULL;
  t->nrows = t->cap = 0;
}
