/* server_key: a look at an SMTP server's TLS certificate for `relayq
 * tenant trust` (cli_net.h), through the worker's connection code
 * (smtp_peek.h: the same STARTTLS or implicit TLS, inside the saas
 * network boundary) on a private loop. */
#include <stdio.h>
#include <string.h>

#include <openssl/x509.h>
#include <uv.h>

#include "cert_text.h"
#include "cli_net.h"
#include "netpolicy.h"
#include "smtp.h"
#include "smtp_peek.h"
#include "tenant.h"
#include "tenant_probe.h"
#include "tlsio.h"

/* One look, filled by the callback. */
struct seen {
  int done, err;
  struct cli_server_key *key;
};

static void on_peek(int err, const char *msg, X509 *cert, void *arg) {
  struct seen *s = arg;
  struct cli_server_key *k = s->key;
  s->done = 1;
  s->err = err;
  snprintf(k->msg, sizeof k->msg, "%s", msg ? msg : "");
  if (err || !cert) return;
  if (rq_tlsio_cert_pin(cert, k->pin, sizeof k->pin) != 0) {
    s->err = RQ_SMTP_ERR_TLS;
    snprintf(k->msg, sizeof k->msg, "The certificate's public key could not be read.");
    return;
  }
  cert_name_text(X509_get_subject_name(cert), k->subject, sizeof k->subject);
  cert_name_text(X509_get_issuer_name(cert), k->issuer, sizeof k->issuer);
  cert_time_text(X509_get0_notBefore(cert), k->not_before, sizeof k->not_before);
  cert_time_text(X509_get0_notAfter(cert), k->not_after, sizeof k->not_after);
}

int cli_server_key(const struct rq_smtp_conf *conf, const struct rq_netpolicy *policy, long timeout_ms,
                   struct cli_server_key *out) {
  memset(out, 0, sizeof *out);
  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0) {
    snprintf(out->msg, sizeof out->msg, "cannot start an event loop");
    return -1;
  }
  struct seen s = {.key = out};
  struct rq_smtp_peek_opts po = {.host = conf->host, .port = conf->port, .implicit_tls = conf->security == RQ_SEC_TLS,
                                 .netpolicy = policy, .timeout_ms = timeout_ms};
  if (rq_smtp_peek(&loop, &po, on_peek, &s) != 0) {
    uv_loop_close(&loop);
    snprintf(out->msg, sizeof out->msg, "cannot start the TLS check");
    return -1;
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return s.done && s.err == 0 ? 0 : -1;
}
