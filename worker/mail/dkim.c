/* dkim: key loading and DKIM signing with OpenSSL EVP (see dkim.h). */
#include "dkim.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dkim_canon.h"
#include "msg.h"

/* RFC 8301 3.2: signers MUST use at least 1024 bits; verifiers need only
 * handle up to 4096, and a bigger key would also stall the event loop on
 * every signature. */
#define RSA_MIN_BITS 1024
#define RSA_MAX_BITS 4096
#define DNS_NAME_MAX 253

/* ---- keys -------------------------------------------------------------------------- */

/* Refuses to prompt: without it OpenSSL would ask for a passphrase on the
 * daemon's terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u) {
  (void)buf, (void)size, (void)rwflag, (void)u;
  return -1;
}

void *rq_dkim_key_load(const char *pem, char *err, size_t errlen) {
  if (pem == NULL || pem[0] == '\0') {
    snprintf(err, errlen, "The tenant's dkim_private_key is empty; set a PEM private key or remove the dkim_* fields.");
    return NULL;
  }
  /* PKCS#8 and PKCS#1 (RFC 1421 Proc-Type) ways of saying so. */
  if (strstr(pem, "-----BEGIN ENCRYPTED PRIVATE KEY-----") != NULL || strstr(pem, "Proc-Type: 4,ENCRYPTED") != NULL) {
    snprintf(err, errlen,
             "The tenant's dkim_private_key is protected by a passphrase; store it unencrypted "
             "(`relayq tenant set` seals it with RELAYQ_SECRET_KEY).");
    return NULL;
  }
  EVP_PKEY *k = NULL;
  BIO *bio = BIO_new_mem_buf(pem, -1);
  if (bio != NULL) {
    k = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
  }
  /* OpenSSL's decoders may queue errors even on success; leave nothing
   * behind for the next TLS handshake on this thread to misreport. */
  unsigned long e = ERR_peek_last_error();
  const char *why = e ? ERR_reason_error_string(e) : NULL;
  char reason[128];
  snprintf(reason, sizeof reason, "%s", why ? why : "no key found");
  ERR_clear_error();
  if (k == NULL) {
    int escaped = strchr(pem, '\n') == NULL && strstr(pem, "\\n") != NULL;
    snprintf(err, errlen,
             "The tenant's dkim_private_key could not be read (OpenSSL: %s); it must be an unencrypted PEM "
             "key, PKCS#1 \"RSA PRIVATE KEY\" or PKCS#8 \"PRIVATE KEY\", RSA or Ed25519%s.",
             reason, escaped ? ", with real line breaks where it now has the two characters \\n" : "");
    return NULL;
  }
  int id = EVP_PKEY_get_base_id(k);
  if (id == EVP_PKEY_RSA) {
    int bits = EVP_PKEY_get_bits(k);
    if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
      snprintf(err, errlen,
               "The tenant's dkim_private_key is a %d-bit RSA key; DKIM needs %d to %d bits (RFC 8301; 2048 is "
               "the usual choice).",
               bits, RSA_MIN_BITS, RSA_MAX_BITS);
      EVP_PKEY_free(k);
      return NULL;
    }
  } else if (id != EVP_PKEY_ED25519) {
    const char *type = EVP_PKEY_get0_type_name(k);
    snprintf(err, errlen,
             "The tenant's dkim_private_key is a%s %s key; DKIM signs with RSA (rsa-sha256) or Ed25519 "
             "(ed25519-sha256) keys only.",
             type && strchr("AEIOUaeiou", type[0]) ? "n" : "", type ? type : "unsupported");
    EVP_PKEY_free(k);
    return NULL;
  }
  return k;
}

void rq_dkim_key_free(void *key) { EVP_PKEY_free(key); }

/* ---- signing ----------------------------------------------------------------------- */

/* A d= or s= value goes into the header as is: letters, digits, '-', '_'
 * and '.', so it can hold neither ';' nor CR/LF. */
static int dns_name_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > DNS_NAME_MAX) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
          c == '.'))
      return 0;
  }
  return 1;
}

static void digest_sink(void *arg, const void *p, size_t n) { EVP_DigestUpdate(arg, p, n); }

/* base64 of data (EVP_EncodeBlock: no line breaks), malloc'd. */
static char *base64(const unsigned char *data, size_t n) {
  char *out = rq_xmalloc(4 * ((n + 2) / 3) + 1);
  EVP_EncodeBlock((unsigned char *)out, data, (int)n);
  return out;
}

/* Signs data (the canonical headers, RFC 6376 3.7) with key. rsa-sha256 is
 * RSASSA-PKCS1-v1_5 over SHA-256 of the data; ed25519-sha256 (RFC 8463 3)
 * is PureEdDSA over the 32-byte SHA-256 of the data, hence the digest
 * first and a NULL md. Returns the malloc'd signature or NULL. */
static unsigned char *sign_data(EVP_PKEY *key, int ed25519, const struct rq_buf *data, size_t *sig_len) {
  unsigned char *sig = NULL;
  size_t len = (size_t)EVP_PKEY_get_size(key);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (ctx == NULL) goto fail;
  sig = rq_xmalloc(len ? len : 1);
  if (ed25519) {
    unsigned char hash[32];
    if (!EVP_Digest(data->data, data->len, hash, NULL, EVP_sha256(), NULL)) goto fail;
    if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) != 1) goto fail;
    if (EVP_DigestSign(ctx, sig, &len, hash, sizeof hash) != 1) goto fail;
  } else {
    if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1) goto fail;
    if (EVP_DigestSign(ctx, sig, &len, (const unsigned char *)data->data, data->len) != 1) goto fail;
  }
  EVP_MD_CTX_free(ctx);
  *sig_len = len;
  return sig;
fail:
  EVP_MD_CTX_free(ctx);
  free(sig);
  return NULL;
}

/* The body hash source: a flat body, or a segmented message read from
 * body_off on (encoded a second time while hashing: nothing is kept). */
struct body_src {
  const char *flat;
  size_t flat_len;
  const struct rq_msg *m;
  size_t body_off;
};

static int body_hash(EVP_MD_CTX *md, const struct body_src *b) {
  if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) return -1;
  if (b->m == NULL) {
    rq_dkim_canon_body(b->flat, b->flat_len, digest_sink, md);
    return 0;
  }
  struct rq_dkim_body st;
  rq_dkim_body_init(&st, digest_sink, md);
  struct rq_msg_cursor c;
  rq_msg_cursor_init(&c, b->m);
  if (rq_msg_seek(&c, b->body_off) != 0) return -1;
  char chunk[16384];
  size_t n;
  while ((n = rq_msg_read(&c, chunk, sizeof chunk)) > 0) rq_dkim_body_feed(&st, chunk, n);
  rq_dkim_body_end(&st);
  return 0;
}

/* Writes the complete DKIM-Signature header for the header block
 * hdr[0..hdr_len) and the body in b into sig. Returns 0 or -1 with err. */
static int make_signature(const char *hdr, size_t hdr_len, const struct body_src *b, EVP_PKEY *pk,
                          const char *domain, const char *selector, int64_t now_s, struct rq_buf *sig,
                          char *err, size_t errlen) {
  int rc = -1;
  struct rq_buf h, data;
  rq_buf_init(&h);
  rq_buf_init(&data);
  EVP_MD_CTX *md = NULL;
  unsigned char *raw = NULL;
  char *b64 = NULL;

  if (!dns_name_ok(domain) || !dns_name_ok(selector)) {
    snprintf(err, errlen, "The tenant's dkim_domain or dkim_selector is not a DNS name; DKIM cannot sign with it.");
    goto out;
  }
  int ed25519 = EVP_PKEY_get_base_id(pk) == EVP_PKEY_ED25519;

  /* bh=: one pass over the body, canonical bytes straight into SHA-256. */
  unsigned char bh[EVP_MAX_MD_SIZE];
  unsigned bh_len = 0;
  md = EVP_MD_CTX_new();
  if (md == NULL || body_hash(md, b) != 0) goto crypto;
  if (EVP_DigestFinal_ex(md, bh, &bh_len) != 1) goto crypto;
  char bh64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
  EVP_EncodeBlock((unsigned char *)bh64, bh, (int)bh_len);

  rq_dkim_header_list(hdr, hdr_len, rq_dkim_sign_headers, rq_dkim_n_sign_headers, &h);
  struct rq_dkim_tags tags = {
      .algo = ed25519 ? "ed25519-sha256" : "rsa-sha256",
      .domain = domain,
      .selector = selector,
      .time = now_s,
      .h = h.data,
      .bh = bh64,
  };
  size_t col = rq_dkim_sig_begin(sig, &tags);

  /* The signed data: the selected fields, then this header with an empty
   * b= and no final CRLF (RFC 6376 3.7). */
  rq_dkim_canon_signed(hdr, hdr_len, h.data, h.len, &data);
  struct rq_dkim_field self = {.p = sig->data, .len = sig->len, .name_len = strlen("DKIM-Signature")};
  rq_dkim_canon_header(&data, &self, 0);

  size_t raw_len = 0;
  raw = sign_data(pk, ed25519, &data, &raw_len);
  if (raw == NULL) goto crypto;
  b64 = base64(raw, raw_len);
  rq_dkim_sig_end(sig, col, b64);
  rc = 0;
  goto out;

crypto: {
  unsigned long e = ERR_peek_last_error();
  const char *why = e ? ERR_reason_error_string(e) : NULL;
  snprintf(err, errlen, "DKIM signing failed (OpenSSL: %s); check the tenant's dkim_private_key.",
           why ? why : "unknown error");
  ERR_clear_error();
}
out:
  EVP_MD_CTX_free(md);
  free(raw);
  free(b64);
  rq_buf_free(&h);
  rq_buf_free(&data);
  return rc;
}

int rq_dkim_sign(struct rq_buf *msg, void *key, const char *domain, const char *selector, int64_t now_s,
                 char *err, size_t errlen) {
  size_t hdr_len, body_off;
  rq_dkim_split(msg->data, msg->len, &hdr_len, &body_off);
  struct body_src b = {.flat = msg->data + body_off, .flat_len = msg->len - body_off};
  struct rq_buf sig;
  rq_buf_init(&sig);
  int rc = make_signature(msg->data, hdr_len, &b, key, domain, selector, now_s, &sig, err, errlen);
  if (rc == 0) {
    /* Prepend in place: one move instead of a second copy of the message. */
    rq_buf_reserve(msg, sig.len);
    memmove(msg->data + sig.len, msg->data, msg->len + 1);
    memcpy(msg->data, sig.data, sig.len);
    msg->len += sig.len;
  }
  rq_buf_free(&sig);
  return rc;
}

int rq_dkim_sign_msg(struct rq_msg *m, void *key, const char *domain, const char *selector, int64_t now_s,
                     char *err, size_t errlen) {
  size_t first_len, hdr_len, body_off;
  const char *first = rq_msg_first_lit(m, &first_len);
  if (first != NULL) rq_dkim_split(first, first_len, &hdr_len, &body_off);
  if (first == NULL || (hdr_len == first_len && m->n_seg > 1)) {
    /* The header block is not whole in the first segment (the builder
     * never makes such a message): sign a flat copy, then hold that. */
    struct rq_buf flat;
    rq_buf_init(&flat);
    rq_msg_flatten(m, &flat);
    int rc = rq_dkim_sign(&flat, key, domain, selector, now_s, err, errlen);
    if (rc == 0) {
      rq_msg_reset(m);
      rq_buf_append(&m->lit, flat.data, flat.len);
      rq_msg_finish(m);
    }
    rq_buf_free(&flat);
    return rc;
  }
  struct body_src b = {.m = m, .body_off = body_off};
  struct rq_buf sig;
  rq_buf_init(&sig);
  int rc = make_signature(first, hdr_len, &b, key, domain, selector, now_s, &sig, err, errlen);
  if (rc == 0) rq_msg_prepend(m, sig.data, sig.len);
  rq_buf_free(&sig);
  return rc;
}
