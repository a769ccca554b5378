/*
 * Unit tests for producer/cli/dmarc.c: DMARC records (RFC 7489), DKIM key
 * records (RFC 6376 3.6.1, RFC 8463) and turning PEM keys into p= values.
 */
#include "check.h"

/* Compiled in (curl's UNITTEST idea) to reach its static helpers. */
#include "dmarc.c"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

static void test_dmarc(void) {
  struct dmarc_record m;
  char err[300];
  CHECK(dmarc_is_record("v=DMARC1; p=none"));
  CHECK(dmarc_is_record("v = DMARC1 ;p=none"));
  CHECK(!dmarc_is_record("v=DMARC2; p=none"));
  CHECK(!dmarc_is_record("p=none; v=DMARC1"));
  CHECK(!dmarc_is_record("v=dmarc1; p=none")); /* the value must match exactly */

  CHECK_INT(dmarc_parse("v=DMARC1; p=reject; sp=quarantine; pct=50; adkim=s; aspf=r; "
                        "rua=mailto:a@example.com,mailto:b@example.net; ruf=mailto:f@example.com; fo=1;",
                        &m, err, sizeof err),
            ==, 0);
  CHECK_STR(m.p, "reject");
  CHECK_STR(m.sp, "quarantine");
  CHECK_INT(m.pct, ==, 50);
  CHECK_INT(m.adkim, ==, 's');
  CHECK_INT(m.aspf, ==, 'r');
  CHECK_STR(m.rua, "mailto:a@example.com,mailto:b@example.net");
  CHECK_STR(m.ruf, "mailto:f@example.com");

  CHECK_INT(dmarc_parse("v=DMARC1;p=None", &m, err, sizeof err), ==, 0);
  CHECK_STR(m.p, "none");
  CHECK_INT(m.pct, ==, 100);
  CHECK_STR(m.rua, "");

  CHECK_INT(dmarc_parse("v=DMARC1; rua=mailto:a@example.com", &m, err, sizeof err), ==, -1);
  CHECK(strstr(err, "no p=") != NULL);
  CHECK_INT(dmarc_parse("v=DMARC1; p=maybe", &m, err, sizeof err), ==, -1);
  CHECK(strstr(err, "p=maybe") != NULL);
  CHECK_INT(dmarc_parse("v=DMARC1; p=none; pct=101", &m, err, sizeof err), ==, -1);
  CHECK_INT(dmarc_parse("v=DMARC1; p=none; pct=", &m, err, sizeof err), ==, -1);
  CHECK_INT(dmarc_parse("v=DMARC1; p=none; adkim=x", &m, err, sizeof err), ==, -1);
  CHECK_INT(dmarc_parse("v=DMARC1; p=none; rua=a@example.com", &m, err, sizeof err), ==, -1);
  CHECK(strstr(err, "mailto:") != NULL);
  CHECK_INT(dmarc_parse("v=DMARC1; p=none; p=reject", &m, err, sizeof err), ==, -1);
  CHECK(strstr(err, "twice") != NULL);
  CHECK_INT(dmarc_parse("v=DMARC1; p=none; =x", &m, err, sizeof err), ==, -1);
  CHECK_INT(dmarc_parse("v=DMARC1; p=none; foo", &m, err, sizeof err), ==, -1);
  CHECK_INT(dmarc_parse("v=DMARC1; p=none; x=\x01", &m, err, sizeof err), ==, -1);
  CHECK_INT(dmarc_parse("v=DMARC1; p=none; future=tag", &m, err, sizeof err), ==, 0); /* ignored */

  /* RFC 7489 6.4 grammar: any URI scheme, an optional size limit. */
  CHECK_INT(dmarc_parse("v=DMARC1; p=none; rua=mailto:a@example.com!10m , https://r.example/dmarc", &m, err,
                        sizeof err), ==, 0);
  CHECK_INT(dmarc_parse("v=DMARC1; p=none; rua=mailto:a@example.com!10x", &m, err, sizeof err), ==, -1);
  CHECK_INT(dmarc_parse("v=DMARC1; p=none; rua=mailto:a@example.com!", &m, err, sizeof err), ==, -1);
  CHECK_INT(dmarc_parse("v=DMARC1; p=none; rua=mailto:@example.com", &m, err, sizeof err), ==, -1);
  CHECK_INT(dmarc_parse("v=DMARC1; p=none; rua=mailto:a@example.com,", &m, err, sizeof err), ==, -1);
  CHECK_INT(dmarc_parse("v=DMARC1; p=none; rua=1http://x", &m, err, sizeof err), ==, -1);
  /* fo, rf, ri */
  CHECK_INT(dmarc_parse("v=DMARC1; p=none; fo=0:1 : d:s; rf=afrf; ri=86400", &m, err, sizeof err), ==, 0);
  CHECK_INT(dmarc_parse("v=DMARC1; p=none; fo=2", &m, err, sizeof err), ==, -1);
  CHECK(strstr(err, "fo=2") != NULL);
  CHECK_INT(dmarc_parse("v=DMARC1; p=none; fo=", &m, err, sizeof err), ==, -1);
  CHECK_INT(dmarc_parse("v=DMARC1; p=none; rf=iodef", &m, err, sizeof err), ==, -1);
  CHECK_INT(dmarc_parse("v=DMARC1; p=none; ri=1h", &m, err, sizeof err), ==, -1);
  /* Tag names are case-sensitive (RFC 6376 3.2, which RFC 7489 6.3 uses):
   * "P=" is an unknown tag, so the record has no policy. */
  CHECK_INT(dmarc_parse("v=DMARC1; P=reject", &m, err, sizeof err), ==, -1);

  /* Bounded: too long, too many tags. */
  char big[DMARC_MAX_RECORD + 64] = "v=DMARC1; p=none; x=";
  while (strlen(big) < DMARC_MAX_RECORD + 10) strcat(big, "a");
  CHECK_INT(dmarc_parse(big, &m, err, sizeof err), ==, -1);
  char many[1200] = "v=DMARC1; p=none";
  for (int i = 0; i < MAX_TAGS; i++) sprintf(many + strlen(many), "; t%d=1", i);
  CHECK_INT(dmarc_parse(many, &m, err, sizeof err), ==, -1);
}

static void test_dkim_record(void) {
  struct dkim_record r;
  char err[300];
  CHECK(dkimrec_is_record("v=DKIM1; k=rsa; p=AAAA"));
  CHECK(dkimrec_is_record("k=rsa; p=AAAA"));
  CHECK(!dkimrec_is_record("v=spf1 -all"));
  CHECK(!dkimrec_is_record("hello"));

  CHECK_INT(dkimrec_parse("v=DKIM1; k=rsa; h=sha1:sha256; s=email; t=y:s; p=MIIB IjAN\tBgkq", &r, err, sizeof err),
            ==, 0);
  CHECK_STR(r.k, "rsa");
  CHECK_STR(r.p, "MIIBIjANBgkq");
  CHECK_INT(r.testing, ==, 1);
  dkimrec_free(&r);
  /* t= flags are whole words: "yes" is an unknown flag, not "y" (RFC 6376 3.6.1). */
  CHECK_INT(dkimrec_parse("v=DKIM1; t=yes; p=MIIB", &r, err, sizeof err), ==, 0);
  CHECK_INT(r.testing, ==, 0);
  dkimrec_free(&r);
  CHECK_INT(dkimrec_parse("v=DKIM1; t=s : y; p=MIIB", &r, err, sizeof err), ==, 0);
  CHECK_INT(r.testing, ==, 1);
  dkimrec_free(&r);
  CHECK_INT(dkimrec_parse("p=", &r, err, sizeof err), ==, 0);
  CHECK_STR(r.k, "rsa");
  CHECK_STR(r.p, "");
  int bits;
  CHECK_INT(dkimrec_key_check(&r, &bits, err, sizeof err), ==, -1);
  CHECK(strstr(err, "revoked") != NULL);
  dkimrec_free(&r);

  CHECK_INT(dkimrec_parse("k=rsa; v=DKIM1; p=AAAA", &r, err, sizeof err), ==, -1); /* v= not first */
  CHECK_INT(dkimrec_parse("v=DKIM2; p=AAAA", &r, err, sizeof err), ==, -1);
  CHECK_INT(dkimrec_parse("v=DKIM1; k=dsa; p=AAAA", &r, err, sizeof err), ==, -1);
  CHECK_INT(dkimrec_parse("v=DKIM1; h=sha1; p=AAAA", &r, err, sizeof err), ==, -1);
  CHECK_INT(dkimrec_parse("v=DKIM1; s=tls; p=AAAA", &r, err, sizeof err), ==, -1);
  CHECK_INT(dkimrec_parse("v=DKIM1; k=rsa", &r, err, sizeof err), ==, -1);
  CHECK_INT(dkimrec_parse("v=DKIM1; p=AA$A", &r, err, sizeof err), ==, -1);

  /* Not a key. */
  CHECK_INT(dkimrec_parse("v=DKIM1; p=AAAA", &r, err, sizeof err), ==, 0);
  CHECK_INT(dkimrec_key_check(&r, &bits, err, sizeof err), ==, -1);
  dkimrec_free(&r);
  CHECK_INT(dkimrec_parse("v=DKIM1; k=ed25519; p=AAAA", &r, err, sizeof err), ==, 0);
  CHECK_INT(dkimrec_key_check(&r, &bits, err, sizeof err), ==, -1);
  dkimrec_free(&r);
}

/* PEM text of key: private (PKCS#8), public SPKI, or PKCS#1 public. */
static char *to_pem(EVP_PKEY *key, int form) {
  BIO *b = BIO_new(BIO_s_mem());
  if (form == 0) PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
  else PEM_write_bio_PUBKEY(b, key);
  char *data;
  long n = BIO_get_mem_data(b, &data);
  char *out = malloc((size_t)n + 1);
  memcpy(out, data, (size_t)n);
  out[n] = '\0';
  BIO_free(b);
  return out;
}

static void test_keys(void) {
  char err[300], k[16], *p1 = NULL, *p2 = NULL, *p3 = NULL;
  EVP_PKEY *rsa = EVP_RSA_gen(1024), *rsa2 = EVP_RSA_gen(1024);
  EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
  CHECK(rsa && rsa2 && ed);

  char *priv = to_pem(rsa, 0), *pub = to_pem(rsa, 1);
  CHECK_INT(dkimrec_p_from_pem(priv, strlen(priv), &p1, k, err, sizeof err), ==, 0);
  CHECK_STR(k, "rsa");
  CHECK_INT(dkimrec_p_from_pem(pub, strlen(pub), &p2, k, err, sizeof err), ==, 0);
  CHECK_STR(p1, p2); /* private and public files give the same p= */
  CHECK(strncmp(p1, "MIGfMA0GCSqGSIb3DQEBAQUAA4GNAD", 30) == 0); /* SPKI of RSA-1024 */

  struct dkim_record r;
  char rec[1200];
  snprintf(rec, sizeof rec, "v=DKIM1; k=rsa; p=%s", p1);
  CHECK_INT(dkimrec_parse(rec, &r, err, sizeof err), ==, 0);
  int bits = 0;
  CHECK_INT(dkimrec_key_check(&r, &bits, err, sizeof err), ==, 0);
  CHECK_INT(bits, ==, 1024);
  CHECK(dkimrec_key_equal(&r, p1, "rsa"));
  CHECK(!dkimrec_key_equal(&r, p1, "ed25519"));
  char *other = to_pem(rsa2, 0);
  CHECK_INT(dkimrec_p_from_pem(other, strlen(other), &p3, k, err, sizeof err), ==, 0);
  CHECK(!dkimrec_key_equal(&r, p3, "rsa"));
  dkimrec_free(&r);

  /* A record publishing the bare PKCS#1 RSAPublicKey matches too. */
  unsigned char *der = NULL;
  int dl = i2d_PublicKey(rsa, &der);
  CHECK(dl > 0);
  char *b64 = b64_encode(der, (size_t)dl);
  OPENSSL_free(der);
  snprintf(rec, sizeof rec, "k=rsa; p=%s", b64);
  CHECK_INT(dkimrec_parse(rec, &r, err, sizeof err), ==, 0);
  CHECK_INT(dkimrec_key_check(&r, &bits, err, sizeof err), ==, 0);
  CHECK(dkimrec_key_equal(&r, p1, "rsa"));
  dkimrec_free(&r);
  free(b64);

  /* Ed25519: p= is the raw 32-byte key. */
  char *edpem = to_pem(ed, 0), *pe = NULL;
  CHECK_INT(dkimrec_p_from_pem(edpem, strlen(edpem), &pe, k, err, sizeof err), ==, 0);
  CHECK_STR(k, "ed25519");
  CHECK_INT(strlen(pe), ==, 44);
  snprintf(rec, sizeof rec, "v=DKIM1; k=ed25519; p=%s", pe);
  CHECK_INT(dkimrec_parse(rec, &r, err, sizeof err), ==, 0);
  CHECK_INT(dkimrec_key_check(&r, &bits, err, sizeof err), ==, 0);
  CHECK(dkimrec_key_equal(&r, pe, "ed25519"));
  CHECK(!dkimrec_key_equal(&r, p1, "rsa"));
  dkimrec_free(&r);

  /* Not keys. */
  char *bad = NULL;
  CHECK_INT(dkimrec_p_from_pem("hello", 5, &bad, k, err, sizeof err), ==, -1);
  CHECK(bad == NULL);
  const char *cert_like = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
  CHECK_INT(dkimrec_p_from_pem(cert_like, strlen(cert_like), &bad, k, err, sizeof err), ==, -1);

  free(priv), free(pub), free(other), free(edpem);
  free(p1), free(p2), free(p3), free(pe);
  EVP_PKEY_free(rsa), EVP_PKEY_free(rsa2), EVP_PKEY_free(ed);
}

int main(void) {
  test_dmarc();
  test_dkim_record();
  test_keys();
  return CHECK_DONE();
}
