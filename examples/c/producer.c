/*
 * producer: relayq's C producer example, on librelayq (include/relayq/relayq.h).
 *
 * What it shows: connecting, sealing a tenant secret (enc:v1:, AES-256-GCM),
 * saving the tenant's SMTP settings through the library's hiredis context,
 * enqueueing an invoice mail with a binary attachment (the `queued` status
 * is written atomically with the push), and waiting for the final state.
 *
 * Waiting: librelayq has no subscription API, so this example polls the
 * status hash with a deadline (relayq_status_get), which is the simple and
 * robust choice for a CLI or a batch job. A long-running service that wants
 * every change as it happens subscribes to P:events on its own hiredis
 * connection, as the other languages' examples do.
 *
 * Settings and exit codes are those of every example (examples/README.md):
 * RELAYQ_REDIS_URL, RELAYQ_PREFIX, RELAYQ_SECRET_KEY, RELAYQ_EXAMPLE_TENANT,
 * RELAYQ_EXAMPLE_TO, RELAYQ_EXAMPLE_FROM, RELAYQ_EXAMPLE_ID,
 * RELAYQ_EXAMPLE_SMTP_{HOST,PORT,SECURITY,USER,PASSWORD},
 * RELAYQ_EXAMPLE_DELAY_MS, RELAYQ_EXAMPLE_TIMEOUT_S. Prints the final status hash as one JSON line.
 *
 * Build: make (uses `pkg-config --cflags --libs relayq hiredis`).
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <relayq/relayq.h>

#define EXIT_SENT 0
#define EXIT_NOT_SENT 1
#define EXIT_USAGE 2
#define EXIT_REDIS 3
#define POLL_MS 100

static const char *env(const char *name, const char *dflt) {
  const char *v = getenv(name);
  return v && *v ? v : dflt;
}

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Writes s as a JSON string (status values are UTF-8 text from the worker;
 * control characters are escaped, everything else is copied). */
static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
    else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
    else fputc(*p, f);
  }
  fputc('"', f);
}

static void print_status(const struct relayq_status *st) {
  fputc('{', stdout);
  for (size_t i = 0; i < st->n; i++) {
    if (i) fputc(',', stdout);
    json_str(stdout, st->fields[i].key);
    fputc(':', stdout);
    json_str(stdout, st->fields[i].value);
  }
  fputs("}\n", stdout);
}

/*
 * Saves the tenant's own SMTP server with its password sealed under the
 * workers' key. Uses the client's hiredis context (borrowed: never freed
 * here). Returns an exit code, EXIT_SENT (0) on success.
 */
static int save_tenant(struct relayq_client *c, const char *tenant) {
  const char *host = env("RELAYQ_EXAMPLE_SMTP_HOST", NULL);
  const char *user = env("RELAYQ_EXAMPLE_SMTP_USER", NULL);
  const char *port = env("RELAYQ_EXAMPLE_SMTP_PORT", NULL);
  const char *from = env("RELAYQ_EXAMPLE_FROM", NULL);
  const char *key_b64 = env("RELAYQ_SECRET_KEY", NULL);
  struct relayq_error err;
  unsigned char key[RELAYQ_SECRET_KEY_LEN];
  char *sealed = NULL;
  int rc = EXIT_SENT;

  if (user != NULL) {
    if (relayq_secret_key_parse(key_b64, key, &err) != 0 ||
        relayq_secret_seal(key, env("RELAYQ_EXAMPLE_SMTP_PASSWORD", ""), &sealed, &err) != 0) {
      fprintf(stderr, "bad setting: %s\n", err.message);
      rc = EXIT_USAGE;
      goto out;
    }
  }
  char hkey[512];
  if (relayq_key(hkey, sizeof hkey, relayq_client_prefix(c), RELAYQ_KEY_TENANT, tenant) >=
      sizeof hkey) {
    fprintf(stderr, "bad setting: the tenant name is too long.\n");
    rc = EXIT_USAGE;
    goto out;
  }
  const char *argv[16];
  int argc = 0;
#define PAIR(k, v) (argv[argc++] = (k), argv[argc++] = (v))
  argv[argc++] = "HSET";
  argv[argc++] = hkey;
  PAIR("gateway", "smtp");
  PAIR("smtp_host", host);
  PAIR("smtp_security", env("RELAYQ_EXAMPLE_SMTP_SECURITY", "starttls"));
  if (port) PAIR("smtp_port", port);
  if (user) PAIR("smtp_user", user), PAIR("smtp_password", sealed);
  if (from) PAIR("from_email", from);
#undef PAIR
  redisReply *r = redisCommandArgv(relayq_client_redis(c), argc, argv, NULL);
  if (r == NULL || r->type == REDIS_REPLY_ERROR) {
    fprintf(stderr, "Redis error: could not save tenant %s%s%s.\n", tenant, r ? ": " : "",
            r ? r->str : "");
    rc = EXIT_REDIS;
  }
  if (r) freeReplyObject(r);
out:
  memset(key, 0, sizeof key); /* the key stays in memory no longer than needed */
  free(sealed);
  return rc;
}

/* Polls P:status:ID until a final state or the deadline; prints it. */
static int wait_final(struct relayq_client *c, const char *id, double timeout_s) {
  double deadline = mono_s() + timeout_s;
  struct relayq_error err;
  for (;;) {
    struct relayq_status *st = NULL;
    int rc = relayq_status_get(c, id, &st, &err);
    if (rc != 0 && rc != RELAYQ_ENOT_FOUND) {
      fprintf(stderr, "Redis error: %s\n", err.message);
      return EXIT_REDIS;
    }
    const char *state = st ? relayq_status_field(st, "state") : NULL;
    if (relayq_state_is_final(state)) {
      int sent = strcmp(state, "sent") == 0;
      print_status(st);
      relayq_status_free(st);
      return sent ? EXIT_SENT : EXIT_NOT_SENT;
    }
    relayq_status_free(st);
    if (mono_s() >= deadline) {
      fprintf(stderr, "job %s not final after %gs (state %s)\n", id, timeout_s,
              state ? state : "none");
      return EXIT_NOT_SENT;
    }
    struct timespec pause = {0, POLL_MS * 1000000L};
    nanosleep(&pause, NULL);
  }
}

int main(void) {
  const char *tenant = env("RELAYQ_EXAMPLE_TENANT", "acme");
  const char *to = env("RELAYQ_EXAMPLE_TO", NULL);
  double timeout_s = atof(env("RELAYQ_EXAMPLE_TIMEOUT_S", "60"));
  if (to == NULL) {
    fprintf(stderr, "set RELAYQ_EXAMPLE_TO to the recipient's address\n");
    return EXIT_USAGE;
  }

  struct relayq_error err;
  struct relayq_client *c = NULL;
  if (relayq_connect(env("RELAYQ_REDIS_URL", NULL), env("RELAYQ_PREFIX", NULL), &c, &err) != 0) {
    fprintf(stderr, "Redis error: %s\n", err.message);
    return err.code == RELAYQ_EURL || err.code == RELAYQ_EINVAL ? EXIT_USAGE : EXIT_REDIS;
  }
  int rc = EXIT_SENT;
  if (env("RELAYQ_EXAMPLE_SMTP_HOST", NULL) != NULL && (rc = save_tenant(c, tenant)) != 0)
    goto out;

  /* A stand-in invoice PDF holding every byte value: the library sends
   * attachment data as msgpack bin, so any bytes survive. */
  static const char head[] = "%PDF-1.4\n", tail[] = "\n%%EOF\n";
  unsigned char pdf[sizeof head - 1 + 256 + sizeof tail - 1];
  memcpy(pdf, head, sizeof head - 1);
  for (int i = 0; i < 256; i++) pdf[sizeof head - 1 + i] = (unsigned char)i;
  memcpy(pdf + sizeof head - 1 + 256, tail, sizeof tail - 1);

  char *to_v[] = {(char *)to};
  struct relayq_kv headers[] = {{"X-Invoice", "INV-42"}};
  struct relayq_kv meta[] = {{"invoice", "INV-42"}, {"producer", "c"}};
  struct relayq_attachment att = {"fattura-42.pdf", "application/pdf", pdf, sizeof pdf};
  /* The job stays ours: relayq_enqueue only reads it. */
  struct relayq_job job = {
      .v = RELAYQ_JOB_VERSION,
      .id = (char *)env("RELAYQ_EXAMPLE_ID", NULL), /* NULL: the library makes one */
      .tenant = (char *)tenant,
      .to = {to_v, 1},
      .from = (char *)env("RELAYQ_EXAMPLE_FROM", NULL),
      .subject = "Fattura n. 42 \xe2\x80\x94 \xe2\x82\xac" "1.234,56", /* UTF-8 */
      .text = "Gentile cliente,\nin allegato la fattura n. 42.\n"
              "Grazie \xe2\x80\x94 Acme S.r.l. \xe2\x9c\x93\n",
      .html = "<p>Gentile cliente,<br>in allegato la fattura n. 42.</p>",
      .headers = headers,
      .n_headers = 1,
      .attachments = &att,
      .n_attachments = 1,
      .meta = meta,
      .n_meta = 2,
  };
  /* not_before in the future: the library parks the job in P:delayed. */
  if (env("RELAYQ_EXAMPLE_DELAY_MS", NULL) != NULL)
    job.not_before = relayq_now_ms() + atoll(env("RELAYQ_EXAMPLE_DELAY_MS", "0"));
  char id[RELAYQ_ID_MAX + 1];
  int erc = relayq_enqueue(c, &job, NULL, id, &err);
  if (erc == RELAYQ_EINVALID_JOB || erc == RELAYQ_EINVAL) {
    fprintf(stderr, "invalid job: %s\n", err.message);
    rc = EXIT_USAGE;
    goto out;
  }
  if (erc != 0) {
    fprintf(stderr, "Redis error: %s\n", err.message);
    rc = EXIT_REDIS;
    goto out;
  }
  /* Success with a message: the id already had a status, so nothing was
   * pushed (idempotency); the message names the existing state. */
  if (err.message[0] != '\0') fprintf(stderr, "%s\n", err.message);
  else fprintf(stderr, "enqueued %s\n", id);
  rc = wait_final(c, id, timeout_s);
out:
  relayq_close(c);
  return rc;
}
