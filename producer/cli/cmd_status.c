/*
 * cmd_status: `relayq status ID [--json]` prints the status hash
 * P:status:ID (CONTRACT.md "Status hash"), fields sorted by name, as
 * "field: value" lines or as one JSON object.
 *
 * Exit: 0 printed; 1 no status for that id (or Redis failed); 2 bad
 * arguments.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "text.h"

enum { O_JSON = CLI_OPT_FIRST_FREE };

static const struct option status_opts[] = {
    CLI_GLOBAL_LONGOPTS,
    {"json", no_argument, NULL, O_JSON},
    {NULL, 0, NULL, 0},
};

static int by_key(const void *a, const void *b) {
  return strcmp(((const struct relayq_kv *)a)->key, ((const struct relayq_kv *)b)->key);
}

/* Prints s with its line breaks escaped, so every field stays on its own
 * line, and bytes that are not UTF-8 shown as U+FFFD, so the output is
 * always text. */
static void put_line_value(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  size_t n = strlen(s);
  for (size_t i = 0; i < n;) {
    if (p[i] == '\n') fputs("\\n", stdout);
    else if (p[i] == '\r') fputs("\\r", stdout);
    else if (p[i] < 0x80) putchar(p[i]);
    else {
      size_t l = p[i] >= 0xf0 ? 4 : p[i] >= 0xe0 ? 3 : p[i] >= 0xc0 ? 2 : 0;
      if (l == 0 || l > n - i || !relayq__utf8_valid(s + i, l)) {
        fputs("\xef\xbf\xbd", stdout);
        i++;
        continue;
      }
      fwrite(p + i, 1, l, stdout);
      i += l;
      continue;
    }
    i++;
  }
}

static void print_text(const struct relayq_status *st) {
  for (size_t i = 0; i < st->n; i++) {
    put_line_value(st->fields[i].key);
    fputs(": ", stdout);
    put_line_value(st->fields[i].value);
    putchar('\n');
  }
}

static void print_json(const struct relayq_status *st) {
  putchar('{');
  for (size_t i = 0; i < st->n; i++) {
    if (i) putchar(',');
    cli_json_string(stdout, st->fields[i].key);
    putchar(':');
    cli_json_string(stdout, st->fields[i].value);
  }
  puts("}");
}

int cmd_status(int argc, char **argv, struct cli_ctx *ctx) {
  int opt, json = 0;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, ":h", status_opts, NULL)) != -1) {
    if (cli_global_opt(opt, optarg, ctx)) continue;
    switch (opt) {
    case 'h':
      puts("usage: relayq status ID [--json]\n"
           "\n"
           "Prints job ID's delivery status, one 'field: value' line per field\n"
           "(sorted), or one JSON object with --json. Exit 1 when there is none.");
      return CLI_OK;
    case O_JSON: json = 1; break;
    default: return cli_bad_option("status", opt, argv);
    }
  }
  if (argc - optind != 1)
    return cli_fail(CLI_USAGE, "status needs exactly one job id (see 'relayq status --help').");
  const char *id = argv[optind];
  if (!relayq_valid_id(id))
    return cli_fail(CLI_USAGE, "'%.140s' is not a job id (1-128 characters of A-Z a-z 0-9 . _ : @ -).",
                    id);
  struct relayq_client *c = cli_client(ctx);
  if (c == NULL) return CLI_FAIL;
  struct relayq_status *st = NULL;
  struct relayq_error err;
  int rc = relayq_status_get(c, id, &st, &err);
  if (rc == RELAYQ_ENOT_FOUND) return cli_fail(CLI_FAIL, "no status for job %s", id);
  if (rc != 0) return cli_fail(CLI_FAIL, "%s", err.message);
  qsort(st->fields, st->n, sizeof *st->fields, by_key);
  if (json) print_json(st);
  else print_text(st);
  relayq_status_free(st);
  return CLI_OK;
}
