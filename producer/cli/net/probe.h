/*
 * probe: the connection verifier behind `relayq tenant set` and `relayq
 * tenant verify` (CONTRACT.md "Command-line client"; docs/tenants.md shows
 * its output).
 *
 * What this module owns:
 *   - the SMTP probe: DNS, TCP connect, implicit TLS or banner, EHLO,
 *     STARTTLS (RFC 3207) with the certificate's subject, issuer and
 *     expiry, EHLO again, AUTH (RFC 4954), and optionally MAIL FROM and
 *     RCPT TO (RFC 5321) without DATA, so nothing is ever delivered;
 *   - the Mailgun probe: an authenticated GET {base}/v3/domains/{domain};
 *   - the saas network boundary, as the worker holds it: a refused server
 *     is never connected, and the report says "policy";
 *   - the report: one line per stage with its timing, and the failure in
 *     the worker's own words: the mail core's classification (classify.h:
 *     the verdict, the contract's error category and the detail a status
 *     would carry, "The tenant's server refused the login (535 5.7.8):
 *     check smtp_user and smtp_password"), as text or JSON.
 *
 * How: the SMTP probe is the worker's own session (worker/net/smtp.h,
 * rq_smtp_check) on a private loop, stopped after AUTH or after RCPT TO,
 * so it tests what a worker would do (TLS, login methods, XOAUTH2, the
 * network boundary). The Mailgun probe is one libcurl request, its
 * boundary held by curlguard.h.
 *
 * Secrets: the password, token and API key go to the transports only; the
 * session reports our commands by verb, and no line we send is ever kept
 * or printed.
 *
 * Blocking (each probe runs its own loop to the end) and single-threaded:
 * the CLI's own process, never the worker.
 */
#ifndef RELAYQ_PROBE_H
#define RELAYQ_PROBE_H

#include <stddef.h>
#include <stdio.h>

#include "classify.h"
#include "tenant.h"

struct rq_netpolicy;

#define RQ_PROBE_MAX_STAGES 16
#define RQ_PROBE_MAX_NOTES 4
#define RQ_PROBE_DEFAULT_TIMEOUT_MS 15000L

/* One step of the conversation. Plain value. */
struct rq_probe_stage {
  const char *name;  /* static: "DNS", "TCP connect", "TLS", "banner", ... */
  int ok;            /* 1 passed, 0 failed (the last stage of a failed probe) */
  double ms;         /* how long the step took; < 0 when unknown */
  char detail[400];  /* address, reply, TLS version...; sanitised, never a secret */
};

/* What a probe found. Plain value, filled by the probe functions. */
struct rq_probe_report {
  char target[320];  /* "smtp 127.0.0.1:2525 starttls, user alice" */
  struct rq_probe_stage stages[RQ_PROBE_MAX_STAGES];
  size_t n_stages;
  int have_cert;     /* the server's certificate was seen */
  char cert_subject[256], cert_issuer[256], cert_expire[64];
  char cert_verify[160]; /* "verified", or why not ("self-signed certificate, not
                            checked: smtp_tls_verify=0") */
  double total_ms;
  int ok;            /* 1: every stage passed */
  struct rq_class cls; /* when !ok: how a worker would read the failure (verdict,
                          contract error category, detail) */
  char error[512];   /* when !ok: cls.detail without its final stop */
  char notes[RQ_PROBE_MAX_NOTES][256]; /* advice that does not fail the probe */
  size_t n_notes;
};

/* An SMTP server to check. Everything borrowed for the call only. */
struct rq_probe_smtp {
  const char *host;      /* name, IPv4 or [IPv6] (as smtp_host holds it) */
  int port;
  enum rq_security security;
  const char *user;      /* NULL or "": no AUTH attempted */
  const char *password;
  const char *bearer;    /* smtp_auth=xoauth2: an OAuth2 access token, sent with AUTH XOAUTH2 */
  int tls_verify;        /* smtp_tls_verify */
  const char *ca_file;   /* NULL: the system's CA bundle */
  const char *mail_from; /* envelope sender for the RCPT check */
  const char *rcpt;      /* NULL: stop after AUTH; else MAIL FROM + RCPT TO this */
  long timeout_ms;       /* whole probe; 0: RQ_PROBE_DEFAULT_TIMEOUT_MS */
  const struct rq_netpolicy *netpolicy; /* the saas boundary (netpolicy.h); NULL: any address */
  const char *tls_pin;   /* smtp_tls_pin: trust by key instead of tls_verify; NULL: none */
};

/* Runs the SMTP probe and fills r. Returns 0 when it passed, -1 when it
 * failed (r->error says why); r is filled either way. */
int rq_probe_smtp_run(const struct rq_probe_smtp *o, struct rq_probe_report *r);

/* A Mailgun account and domain to check. Borrowed for the call only. */
struct rq_probe_mailgun {
  const char *base_url;  /* "https://api.mailgun.net", no /v3 */
  const char *domain;
  const char *api_key;
  const char *ca_file;
  long timeout_ms;
  const struct rq_netpolicy *netpolicy; /* as for SMTP, plus https:// unless the network is allowed */
};

/* GET {base}/v3/domains/{domain} with basic auth api:KEY: 200 passes;
 * any other answer is read as the worker reads Mailgun's (rq_classify_http:
 * 401 the API key, 404 the domain or region). Returns 0 or -1 like
 * rq_probe_smtp_run. */
int rq_probe_mailgun_run(const struct rq_probe_mailgun *o, struct rq_probe_report *r);

/* Marks r failed with c (the mail core's classification). */
void rq_probe_fail(struct rq_probe_report *r, const struct rq_class *c);

/* Appends an advisory note (printed after the stages; does not fail). */
void rq_probe_note(struct rq_probe_report *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The report as text, one stage a line, then the certificate, notes and
 * the result line; or as one JSON object (RFC 8259) with the same facts
 * (its "category" and "verdict" are the contract's status words). */
void rq_probe_print(FILE *f, const struct rq_probe_report *r);
void rq_probe_print_json(FILE *f, const struct rq_probe_report *r);

#endif
