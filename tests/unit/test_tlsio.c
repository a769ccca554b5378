/*
 * test_tlsio: the TLS client filter (worker/tlsio.h) against an in-memory
 * OpenSSL server: handshake, data both ways, close_notify, SNI, and the
 * failures that classification depends on (certificate name, unknown CA,
 * a peer that does not speak TLS, a CA file that cannot be read). The
 * server's certificate is made here, for mail.test and 127.0.0.1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "check.h"
#include "tlsio.h"

static EVP_PKEY *key;
static X509 *cert;
static char ca_path[64];
static char sni_seen[256];

static void make_cert(void) {
  key = EVP_EC_gen("P-256");
  cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  X509_NAME *name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"mail.test", -1, -1, 0);
  X509_set_issuer_name(cert, name);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, cert, cert, NULL, NULL, 0);
  X509_EXTENSION *san = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "DNS:mail.test,IP:127.0.0.1");
  X509_add_ext(cert, san, -1);
  X509_EXTENSION_free(san);
  X509_EXTENSION *bc = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
  X509_add_ext(cert, bc, -1);
  X509_EXTENSION_free(bc);
  X509_sign(cert, key, EVP_sha256());
  snprintf(ca_path, sizeof ca_path, "/tmp/relayq-tlsio-XXXXXX");
  int fd = mkstemp(ca_path);
  FILE *f = fdopen(fd, "w");
  PEM_write_X509(f, cert);
  fclose(f);
}

static int on_servername(SSL *ssl, int *al, void *arg) {
  (void)al;
  (void)arg;
  const char *n = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  snprintf(sni_seen, sizeof sni_seen, "%s", n ? n : "");
  return SSL_TLSEXT_ERR_OK;
}

struct server {
  SSL_CTX *ctx;
  SSL *ssl;
  BIO *rbio, *wbio;
};

static void server_new(struct server *s) {
  s->ctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX_use_certificate(s->ctx, cert);
  SSL_CTX_use_PrivateKey(s->ctx, key);
  SSL_CTX_set_tlsext_servername_callback(s->ctx, on_servername);
  s->ssl = SSL_new(s->ctx);
  s->rbio = BIO_new(BIO_s_mem());
  s->wbio = BIO_new(BIO_s_mem());
  BIO_set_mem_eof_return(s->rbio, -1);
  SSL_set_bio(s->ssl, s->rbio, s->wbio);
  SSL_set_accept_state(s->ssl);
  sni_seen[0] = 0;
}

static void server_free(struct server *s) {
  SSL_free(s->ssl);
  SSL_CTX_free(s->ctx);
}

/* Moves bytes both ways until the client's handshake ends; returns its
 * last result. */
static int handshake(struct rq_tlsio *c, struct server *s) {
  char buf[32768];
  int rc = RQ_TLSIO_AGAIN;
  for (int round = 0; round < 20 && rc == RQ_TLSIO_AGAIN; round++) {
    rc = rq_tlsio_handshake(c);
    size_t n;
    while ((n = rq_tlsio_out_take(c, buf, sizeof buf)) > 0) BIO_write(s->rbio, buf, (int)n);
    if (rc != RQ_TLSIO_AGAIN) break;
    SSL_do_handshake(s->ssl);
    int k;
    while ((k = BIO_read(s->wbio, buf, sizeof buf)) > 0) CHECK_INT(rq_tlsio_feed(c, buf, (size_t)k), ==, 0);
  }
  /* Let the server finish reading the client's last flight. */
  SSL_do_handshake(s->ssl);
  ERR_clear_error();
  return rc;
}

static struct rq_tlsio *client(const char *ca, const char *host, int verify, SSL_CTX **ctx_out) {
  char err[256] = "";
  SSL_CTX *ctx = rq_tlsio_ctx_new(ca, err, sizeof err);
  CHECK(ctx != NULL);
  struct rq_tlsio *t = rq_tlsio_new(ctx, host, verify, err, sizeof err);
  CHECK(t != NULL);
  *ctx_out = ctx;
  return t;
}

static void test_verified_session(const char *host, const char *want_sni) {
  struct server s;
  SSL_CTX *ctx;
  server_new(&s);
  struct rq_tlsio *c = client(ca_path, host, 1, &ctx);
  CHECK_INT(handshake(c, &s), ==, 0);
  CHECK_STR(sni_seen, want_sni);
  CHECK(strncmp(rq_tlsio_version(c), "TLSv1.", 6) == 0);
  /* Client to server. */
  CHECK_INT(rq_tlsio_write(c, "EHLO client\r\n", 13), ==, 0);
  char buf[32768];
  size_t n;
  while ((n = rq_tlsio_out_take(c, buf, sizeof buf)) > 0) BIO_write(s.rbio, buf, (int)n);
  char got[64] = "";
  int k = SSL_read(s.ssl, got, sizeof got - 1);
  CHECK_INT(k, ==, 13);
  CHECK(k == 13 && memcmp(got, "EHLO client\r\n", 13) == 0);
  /* Server to client, fed a byte at a time. */
  SSL_write(s.ssl, "250 hello\r\n", 11);
  int m;
  char out[64];
  size_t have = 0;
  while ((m = BIO_read(s.wbio, buf, sizeof buf)) > 0) {
    for (int i = 0; i < m; i++) {
      CHECK_INT(rq_tlsio_feed(c, buf + i, 1), ==, 0);
      ssize_t r;
      while ((r = rq_tlsio_read(c, out + have, sizeof out - 1 - have)) > 0) have += (size_t)r;
      CHECK(r == 0);
    }
  }
  out[have] = 0;
  CHECK_STR(out, "250 hello\r\n");
  /* Our close_notify reaches the server; the server's ends our reads. */
  rq_tlsio_shutdown(c);
  while ((n = rq_tlsio_out_take(c, buf, sizeof buf)) > 0) BIO_write(s.rbio, buf, (int)n);
  CHECK_INT(SSL_read(s.ssl, got, sizeof got), <=, 0);
  CHECK_INT(SSL_get_error(s.ssl, 0), ==, SSL_ERROR_ZERO_RETURN);
  SSL_shutdown(s.ssl);
  while ((m = BIO_read(s.wbio, buf, sizeof buf)) > 0) rq_tlsio_feed(c, buf, (size_t)m);
  CHECK_INT(rq_tlsio_read(c, out, sizeof out), ==, RQ_TLSIO_EOF);
  ERR_clear_error();
  rq_tlsio_free(c);
  SSL_CTX_free(ctx);
  server_free(&s);
}

static void expect_failure(const char *ca, const char *host, int verify, int want, const char *needle) {
  struct server s;
  SSL_CTX *ctx;
  server_new(&s);
  struct rq_tlsio *c = client(ca, host, verify, &ctx);
  int rc = handshake(c, &s);
  CHECK_INT(rc, ==, want);
  if (needle && !strstr(rq_tlsio_errmsg(c), needle)) {
    fprintf(stderr, "error message \"%s\" lacks \"%s\"\n", rq_tlsio_errmsg(c), needle);
    CHECK(0);
  }
  rq_tlsio_free(c);
  SSL_CTX_free(ctx);
  server_free(&s);
}

static void test_failures(void) {
  expect_failure(ca_path, "other.test", 1, RQ_TLSIO_ECERT, "hostname mismatch");
  expect_failure(ca_path, "127.0.0.2", 1, RQ_TLSIO_ECERT, "IP address mismatch");
  expect_failure(NULL, "mail.test", 1, RQ_TLSIO_ECERT, "self-signed");
  /* Without verification, any name will do. */
  struct server s;
  SSL_CTX *ctx;
  server_new(&s);
  struct rq_tlsio *c = client(NULL, "other.test", 0, &ctx);
  CHECK_INT(handshake(c, &s), ==, 0);
  rq_tlsio_free(c);
  SSL_CTX_free(ctx);
  server_free(&s);
}

static void test_not_tls(void) {
  SSL_CTX *ctx;
  struct rq_tlsio *c = client(NULL, "mail.test", 1, &ctx);
  CHECK_INT(rq_tlsio_handshake(c), ==, RQ_TLSIO_AGAIN);
  char buf[4096];
  while (rq_tlsio_out_take(c, buf, sizeof buf) > 0) {
  }
  const char *plain = "220 mx.example ESMTP ready\r\n";
  CHECK_INT(rq_tlsio_feed(c, plain, strlen(plain)), ==, 0);
  CHECK_INT(rq_tlsio_handshake(c), ==, RQ_TLSIO_EMISMATCH);
  CHECK(rq_tlsio_errmsg(c)[0] != '\0');
  rq_tlsio_free(c);
  SSL_CTX_free(ctx);
}

/* Key pinning: the right pin passes without any CA and with another
 * name; a wrong one fails with EPIN at the end of the handshake, before
 * a byte of application data could be written; malformed pins are refused. */
static void pinned(const char *pins, int want) {
  struct server s;
  SSL_CTX *ctx;
  server_new(&s);
  struct rq_tlsio *c = client(NULL, "other.test", 1, &ctx); /* verify asked, but the pin decides */
  CHECK_INT(rq_tlsio_set_pins(c, pins), ==, 0);
  CHECK_INT(handshake(c, &s), ==, want);
  char pin[64];
  rq_tlsio_peer_pin(c, pin, sizeof pin);
  CHECK_INT(strlen(pin), ==, 52);
  if (want == RQ_TLSIO_EPIN) CHECK(strstr(rq_tlsio_errmsg(c), "smtp_tls_pin") != NULL);
  rq_tlsio_free(c);
  SSL_CTX_free(ctx);
  server_free(&s);
}

static void test_pins(void) {
  char pin[64], two[200];
  CHECK_INT(rq_tlsio_cert_pin(cert, pin, sizeof pin), ==, 0);
  CHECK(strncmp(pin, "sha256//", 8) == 0 && strlen(pin) == 52);
  CHECK(rq_tlsio_pins_valid(pin));
  pinned(pin, 0);
  const char *other = "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
  CHECK(rq_tlsio_pins_valid(other));
  pinned(other, RQ_TLSIO_EPIN);
  snprintf(two, sizeof two, "%s, %s", other, pin);
  CHECK(rq_tlsio_pins_valid(two));
  pinned(two, 0);
  CHECK(!rq_tlsio_pins_valid("sha256//short="));
  CHECK(!rq_tlsio_pins_valid("sha1//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));
  CHECK(!rq_tlsio_pins_valid(""));
  CHECK(!rq_tlsio_pins_valid("sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,"));
  SSL_CTX *ctx;
  struct rq_tlsio *c = client(NULL, "mail.test", 1, &ctx);
  CHECK_INT(rq_tlsio_set_pins(c, "sha256//nope"), ==, -1);
  CHECK_INT(rq_tlsio_set_pins(c, NULL), ==, 0);
  rq_tlsio_free(c);
  SSL_CTX_free(ctx);
}

static void test_bad_ca_file(void) {
  char err[256] = "";
  SSL_CTX *ctx = rq_tlsio_ctx_new("/nonexistent/relayq-ca.pem", err, sizeof err);
  CHECK(ctx == NULL);
  CHECK(strstr(err, "/nonexistent/relayq-ca.pem") != NULL);
}

int main(void) {
  make_cert();
  test_verified_session("mail.test", "mail.test");
  test_verified_session("127.0.0.1", ""); /* no SNI for an address */
  test_verified_session("[127.0.0.1]", "");
  test_failures();
  test_not_tls();
  test_pins();
  test_bad_ca_file();
  unlink(ca_path);
  X509_free(cert);
  EVP_PKEY_free(key);
  return CHECK_DONE();
}
