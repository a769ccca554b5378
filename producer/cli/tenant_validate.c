/* tenant_validate: validating tenant and route fields as `tenant set`
 * takes them (see tenant_cmd.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "tenant.h"
#include "tenant_cmd.h"
#include "util.h"

/* ---- validation ---------------------------------------------------------------------------- */

/* Parses the hash with sealed secrets replaced by stand-ins, so its shape
 * can be judged without RELAYQ_SECRET_KEY (sealed values were checked when
 * they were given). */
int tenant_parse_shape(const char *tenant, const struct kvs *k, int strict, struct rq_tenant **out, char *err,
                       size_t errlen) {
  const char **f = rq_xcalloc(k->n + 1, sizeof *f), **v = rq_xcalloc(k->n + 1, sizeof *v);
  for (size_t i = 0; i < k->n; i++) {
    f[i] = k->f[i];
    v[i] = k->v[i];
    if (rq_tenant_field_is_secret(k->f[i]) && relayq_secret_is_sealed(k->v[i]))
      v[i] = strcmp(k->f[i], "dkim_private_key") == 0 ? PEM_PLACEHOLDER : "sealed";
  }
  int rc = rq_tenant_parse(tenant, f, v, k->n, NULL, 0, strict, out, err, errlen);
  free(f);
  free(v);
  return rc;
}

/* Judges one FIELD=VALUE on its own. Fields that only make sense with
 * others (gateway, the DKIM trio) get neutral companions, so the message
 * is about this value, not about what else is missing. */
static int tenant_check_one(const char *tenant, const char *field, const char *value, const unsigned char *key, char *err,
                     size_t errlen) {
  const char *f[8] = {field}, *v[8] = {value};
  size_t n = 1;
  if (strcmp(field, "smtp_auth") == 0) { /* xoauth2 needs the sign-in fields */
    f[n] = "smtp_user", v[n++] = "user@example.com";
    f[n] = "oauth_token_url", v[n++] = "https://idp.example.com/token";
    f[n] = "oauth_client_id", v[n++] = "app";
    f[n] = "oauth_refresh_token", v[n++] = "token";
    f[n] = "oauth_scope", v[n++] = "scope";
  } else if (strcmp(field, "gateway") == 0) {
    f[n] = "smtp_host", v[n++] = "smtp.example.com";
    f[n] = "mailgun_domain", v[n++] = "mg.example.com";
    f[n] = "mailgun_api_key", v[n++] = "key";
  } else if (strncmp(field, "dkim_", 5) == 0) {
    if (strcmp(field, "dkim_domain") != 0) f[n] = "dkim_domain", v[n++] = "example.com";
    if (strcmp(field, "dkim_selector") != 0) f[n] = "dkim_selector", v[n++] = "s1";
    if (strcmp(field, "dkim_private_key") != 0) f[n] = "dkim_private_key", v[n++] = PEM_PLACEHOLDER;
  }
  struct rq_tenant *t = NULL;
  int rc = rq_tenant_parse(tenant, f, v, n, key, 0, 1, &t, err, errlen);
  rq_tenant_free(t);
  return rc;
}


/* Reads FIELD's value from stdin: the whole input, one trailing line end
 * removed (a PEM key keeps its inner line breaks). Caller frees. */
char *tenant_read_stdin_value(void) {
  unsigned char *buf = NULL;
  size_t len = 0;
  if (cli_read_file("/dev/stdin", STDIN_MAX, &buf, &len) != CLI_OK) return NULL;
  if (len > 0 && buf[len - 1] == '\n') buf[--len] = '\0';
  if (len > 0 && buf[len - 1] == '\r') buf[--len] = '\0';
  if (strlen((char *)buf) != len) {
    OPENSSL_cleanse(buf, len);
    free(buf);
    cli_fail(CLI_USAGE, "the value on standard input contains a NUL byte.");
    return NULL;
  }
  return (char *)buf;
}

/*
 * Splits and checks the FIELD=VALUE arguments: each problem is one line on
 * stderr. route_mode: only smtp_* fields. Returns the number of pairs, or
 * -1 when any was wrong.
 */
int tenant_collect_pairs(const struct topts *o, const unsigned char *key, const char *stdin_value,
                         struct pair *pairs) {
  int n = 0, bad = 0;
  char err[400];
  for (int i = 0; i < o->npos; i++) {
    char *arg = o->pos[i];
    char *eq = strchr(arg, '=');
    if (eq == NULL || eq == arg) {
      /* Not echoed: a mistyped pair may be a password. */
      if (rq_tenant_field_known(arg))
        cli_fail(CLI_USAGE, "argument %d is not FIELD=VALUE: write %s=VALUE (%s= deletes it).", i + 2, arg, arg);
      else
        cli_fail(CLI_USAGE, "argument %d is not FIELD=VALUE (FIELD= deletes a field).", i + 2);
      bad++;
      continue;
    }
    if (n == MAX_PAIRS) {
      cli_fail(CLI_USAGE, "at most %d fields in one command.", MAX_PAIRS);
      return -1;
    }
    *eq = '\0';
    pairs[n].field = arg;
    pairs[n].value = eq + 1;
    n++;
  }
  if (o->stdin_field != NULL) {
    if (n == MAX_PAIRS) return cli_fail(-1, "at most %d fields in one command.", MAX_PAIRS);
    pairs[n].field = o->stdin_field;
    pairs[n].value = stdin_value;
    n++;
  }
  for (int i = 0; i < n; i++) {
    const char *f = pairs[i].field, *v = pairs[i].value;
    int dup = 0;
    for (int j = 0; j < i; j++) dup |= strcmp(pairs[j].field, f) == 0;
    if (dup) {
      cli_fail(CLI_USAGE, "tenant field '%.60s' is given twice.", f);
      bad++;
      continue;
    }
    if (!rq_tenant_field_known(f)) {
      /* The parser words it, with a "did you mean". */
      tenant_check_one(o->tenant, f, "x", NULL, err, sizeof err);
      cli_fail(CLI_USAGE, "%s", err);
      bad++;
      continue;
    }
    if (o->route != NULL && strncmp(f, "smtp_", 5) != 0) {
      cli_fail(CLI_USAGE, "a route holds only smtp_* fields; %s belongs to the tenant (relayq tenant set %s %s=...).",
               f, o->tenant, f);
      bad++;
      continue;
    }
    if (v[0] == '\0') continue; /* deletion */
    if (rq_tenant_field_is_secret(f) && strncmp(v, "enc:", 4) == 0) {
      /* A sealed value copied from another hash would be replayed there
       * (v1) or fail to open here (v2): only plaintext is sealed here. */
      cli_fail(CLI_USAGE, "%s is given already sealed (enc:...): give the plaintext; `relayq tenant set` seals it "
                          "for this tenant and field itself.",
               f);
      bad++;
      continue;
    }
    if (tenant_check_one(o->tenant, f, v, key, err, sizeof err) != 0) {
      cli_fail(CLI_USAGE, "%s", err);
      bad++;
    }
  }
  return bad ? -1 : n;
}

/* When a command changes the preset or the security without the values
 * they imply, the stored ones (written canonically by an earlier `set`)
 * would pin the old choice: drop them so the new one fills them in. */
void tenant_forget_derived(struct kvs *m, const struct pair *pairs, int n) {
  int preset = 0, sec = 0, host = 0, port = 0;
  for (int i = 0; i < n; i++) {
    const char *f = pairs[i].field;
    int given = pairs[i].value[0] != '\0';
    if (strcmp(f, "smtp_preset") == 0 && given) preset = 1;
    if (strcmp(f, "smtp_security") == 0) sec = 1;
    if (strcmp(f, "smtp_host") == 0) host = 1;
    if (strcmp(f, "smtp_port") == 0) port = 1;
  }
  if (preset && !host) kvs_del(m, "smtp_host");
  if (preset && !sec) kvs_del(m, "smtp_security");
  if ((preset || sec) && !port) kvs_del(m, "smtp_port");
  /* A host that is not the preset's makes the preset name a lie. */
  const struct rq_preset *p = !preset && host ? rq_preset_find(kvs_get(m, "smtp_preset") ? kvs_get(m, "smtp_preset") : "")
                                               : NULL;
  for (int i = 0; p && i < n; i++)
    if (strcmp(pairs[i].field, "smtp_host") == 0 && strcasecmp(pairs[i].value, p->host) != 0)
      kvs_del(m, "smtp_preset");
}

/* v1's domain_verified=1 stands for the domain of dkim_domain, else of
 * from_email (CONTRACT.md v1.1): a command that changes either, without
 * setting domain_verified itself, clears it, so the mark never carries
 * over to a domain nobody verified. */
int tenant_forget_verified(struct kvs *m, const struct pair *pairs, int n) {
  int changed = 0;
  for (int i = 0; i < n; i++) {
    const char *f = pairs[i].field, *old;
    if (strcmp(f, "domain_verified") == 0) return 0;
    if (strcmp(f, "from_email") != 0 && strcmp(f, "dkim_domain") != 0) continue;
    old = kvs_get(m, f);
    if (old == NULL || strcasecmp(old, pairs[i].value) != 0) changed = 1;
  }
  if (!changed || kvs_get(m, "domain_verified") == NULL) return 0;
  kvs_del(m, "domain_verified");
  return 1;
}

/* Replaces the SMTP values in m by the canonical ones conf resolved to
 * (preset and port defaults filled in). */
void tenant_canonical_smtp(struct kvs *m, const struct rq_smtp_conf *conf) {
  char port[16];
  if (conf->host == NULL) return;
  kvs_set(m, "smtp_host", conf->host);
  snprintf(port, sizeof port, "%d", conf->port);
  kvs_set(m, "smtp_port", port);
  kvs_set(m, "smtp_security", rq_security_name(conf->security));
  if (conf->preset != NULL) kvs_set(m, "smtp_preset", conf->preset);
}

void tenant_canonical_tenant(struct kvs *m, const struct rq_tenant *t) {
  if (kvs_get(m, "gateway") != NULL) kvs_set(m, "gateway", rq_gateway_name(t->gateway));
  tenant_canonical_smtp(m, &t->smtp);
  if (kvs_get(m, "mailgun_region") != NULL && t->mailgun_region) kvs_set(m, "mailgun_region", t->mailgun_region);
  if (kvs_get(m, "mailgun_base_url") != NULL) kvs_set(m, "mailgun_base_url", t->mailgun_base_url);
}

int tenant_route_index(const struct rq_tenant *t, const char *name) {
  for (size_t i = 0; t && i < t->n_routes; i++)
    if (strcmp(t->route_names[i], name) == 0) return (int)i;
  return -1;
}
