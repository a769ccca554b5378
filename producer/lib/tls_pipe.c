/* tls_pipe: TLS under hiredis's blocking context (see tls_pipe.h). */
#include "tls_pipe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define BUF 65536

struct relayq__tls_pipe {
  SSL_CTX *ctx;
  SSL *ssl;
  int net;  /* the TCP socket to Redis */
  int pair; /* our end of the socketpair */
  pthread_t thread;
  int started;
  char up[BUF], down[BUF]; /* up: hiredis -> Redis; down: Redis -> hiredis */
};

static int tcp_connect(const char *host, int port, int timeout_s, struct relayq_error *err) {
  char ps[16];
  snprintf(ps, sizeof ps, "%d", port);
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
  int g = getaddrinfo(host, ps, &hints, &ai);
  if (g != 0)
    return relayq__fail(err, RELAYQ_ECONNECT, "Cannot resolve Redis host %s: %s.", host, gai_strerror(g));
  int fd = -1, last = 0;
  for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
      last = errno;
      close(fd), fd = -1;
      continue;
    }
    struct pollfd pf = {fd, POLLOUT, 0};
    int so = 0;
    socklen_t sl = sizeof so;
    if (poll(&pf, 1, timeout_s * 1000) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &sl) || so) {
      last = so ? so : ETIMEDOUT;
      close(fd), fd = -1;
    }
  }
  freeaddrinfo(ai);
  if (fd < 0)
    return relayq__fail(err, RELAYQ_ECONNECT, "Cannot connect to Redis at %s:%d: %s.", host, port,
                        strerror(last ? last : ECONNREFUSED));
  return fd;
}

static const char *env_or(const char *v, const char *name) {
  if (v && *v) return v;
  const char *e = getenv(name);
  return e && *e ? e : NULL;
}

static int make_ctx(struct relayq__tls_pipe *p, const struct relayq_tls_options *o, struct relayq_error *err) {
  const char *ca = env_or(o ? o->ca_file : NULL, "RELAYQ_REDIS_CA_FILE");
  const char *cert = env_or(o ? o->cert_file : NULL, "RELAYQ_REDIS_CERT");
  const char *key = env_or(o ? o->key_file : NULL, "RELAYQ_REDIS_KEY");
  p->ctx = SSL_CTX_new(TLS_client_method());
  if (!p->ctx) return relayq__fail(err, RELAYQ_ENOMEM, "OpenSSL could not create a TLS context.");
  SSL_CTX_set_min_proto_version(p->ctx, TLS1_2_VERSION);
  if ((ca ? SSL_CTX_load_verify_locations(p->ctx, ca, NULL) : SSL_CTX_set_default_verify_paths(p->ctx)) != 1) {
    unsigned long e = ERR_peek_last_error();
    return relayq__fail(err, RELAYQ_ETLS, "The CA certificates %s%s could not be loaded: %s.", ca ? "in " : "",
                        ca ? ca : "of the system", e ? ERR_reason_error_string(e) : "unknown error");
  }
  if ((cert != NULL) != (key != NULL))
    return relayq__fail(err, RELAYQ_EINVAL, "A Redis client certificate needs its key too (RELAYQ_REDIS_CERT "
                                            "and RELAYQ_REDIS_KEY, or --redis-cert and --redis-key).");
  if (cert && (SSL_CTX_use_certificate_chain_file(p->ctx, cert) != 1 ||
               SSL_CTX_use_PrivateKey_file(p->ctx, key, SSL_FILETYPE_PEM) != 1 ||
               SSL_CTX_check_private_key(p->ctx) != 1)) {
    unsigned long e = ERR_peek_last_error();
    return relayq__fail(err, RELAYQ_ETLS, "The client certificate %s or its key could not be used: %s.", cert,
                        e ? ERR_reason_error_string(e) : "unknown error");
  }
  return 0;
}

static int handshake(struct relayq__tls_pipe *p, const char *host, int timeout_s, struct relayq_error *err) {
  p->ssl = SSL_new(p->ctx);
  if (!p->ssl) return relayq__fail(err, RELAYQ_ENOMEM, "OpenSSL could not create a TLS session.");
  unsigned char addr[16];
  int is_ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
  X509_VERIFY_PARAM *param = SSL_get0_param(p->ssl);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if ((is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host) : X509_VERIFY_PARAM_set1_host(param, host, 0)) != 1 ||
      (!is_ip && SSL_set_tlsext_host_name(p->ssl, host) != 1))
    return relayq__fail(err, RELAYQ_ETLS, "The Redis host name %s cannot be checked in TLS.", host);
  SSL_set_verify(p->ssl, SSL_VERIFY_PEER, NULL);
  SSL_set_fd(p->ssl, p->net);
  for (;;) {
    ERR_clear_error();
    int r = SSL_connect(p->ssl);
    if (r == 1) return 0;
    int e = SSL_get_error(p->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      struct pollfd pf = {p->net, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, 0};
      if (poll(&pf, 1, timeout_s * 1000) == 1) continue;
      return relayq__fail(err, RELAYQ_ETIMEOUT, "The TLS handshake with Redis at %s timed out.", host);
    }
    long vr = SSL_get_verify_result(p->ssl);
    if (vr != X509_V_OK)
      return relayq__fail(err, RELAYQ_ETLS,
                          "Redis at %s failed TLS verification (%s): nothing was sent; give the CA that "
                          "signed its certificate with --redis-ca-file or RELAYQ_REDIS_CA_FILE.",
                          host, X509_verify_cert_error_string(vr));
    unsigned long el = ERR_peek_last_error();
    return relayq__fail(err, RELAYQ_ETLS, "The TLS handshake with Redis at %s failed: %s (is it a TLS port?).",
                        host, el ? ERR_reason_error_string(el) : "the connection closed");
  }
}

/* Moves bytes both ways until either side ends. Non-blocking on both
 * descriptors, one buffer per direction: a direction stops reading only
 * while its buffer is full, so neither can stall the other. */
static void *pump(void *arg) {
  struct relayq__tls_pipe *p = arg;
  char *up = p->up, *down = p->down;
  size_t up_len = 0, down_len = 0, down_off = 0;
  int want_net_write = 0, pair_eof = 0;
  for (;;) {
    /* hiredis -> TLS */
    if (!pair_eof && up_len < BUF) {
      ssize_t n = read(p->pair, up + up_len, BUF - up_len);
      if (n > 0) up_len += (size_t)n;
      else if (n == 0) pair_eof = 1;
      else if (errno != EAGAIN && errno != EINTR) break;
    }
    want_net_write = 0;
    int net_wants_read = 0;
    if (up_len > 0) {
      size_t done = 0;
      ERR_clear_error();
      if (SSL_write_ex(p->ssl, up, up_len, &done) == 1) {
        memmove(up, up + done, up_len - done);
        up_len -= done;
      } else {
        int e = SSL_get_error(p->ssl, 0);
        if (e == SSL_ERROR_WANT_WRITE) want_net_write = 1;
        else if (e == SSL_ERROR_WANT_READ) net_wants_read = 1;
        else break;
      }
    }
    if (pair_eof && up_len == 0) break; /* hiredis closed its end: we are done */
    /* TLS -> hiredis */
    while (down_len < BUF) {
      size_t got = 0;
      ERR_clear_error();
      if (SSL_read_ex(p->ssl, down + down_len, BUF - down_len, &got) == 1) {
        down_len += got;
        continue;
      }
      int e = SSL_get_error(p->ssl, 0);
      if (e == SSL_ERROR_WANT_READ) net_wants_read = 1;
      else if (e == SSL_ERROR_WANT_WRITE) want_net_write = 1;
      else goto out; /* close_notify, reset: hiredis sees EOF */
      break;
    }
    if (down_len > down_off) {
      ssize_t n = write(p->pair, down + down_off, down_len - down_off);
      if (n > 0) down_off += (size_t)n;
      else if (n < 0 && errno != EAGAIN && errno != EINTR) break;
      if (down_off == down_len) down_off = down_len = 0;
    }
    struct pollfd pf[2] = {{p->pair, 0, 0}, {p->net, 0, 0}};
    if (!pair_eof && up_len < BUF) pf[0].events |= POLLIN;
    if (down_len > down_off) pf[0].events |= POLLOUT;
    if (net_wants_read && down_len < BUF) pf[1].events |= POLLIN;
    if (want_net_write) pf[1].events |= POLLOUT;
    if (SSL_pending(p->ssl) > 0 && down_len < BUF) continue;
    if (poll(pf, 2, 1000) < 0 && errno != EINTR) break;
    if ((pf[0].revents | pf[1].revents) & POLLNVAL) break;
  }
out:
  SSL_shutdown(p->ssl);
  shutdown(p->pair, SHUT_RDWR); /* hiredis reads EOF */
  return NULL;
}

static void free_pipe(struct relayq__tls_pipe *p) {
  if (p->ssl) SSL_free(p->ssl);
  if (p->ctx) SSL_CTX_free(p->ctx);
  if (p->net >= 0) close(p->net);
  if (p->pair >= 0) close(p->pair);
  free(p);
}

int relayq__tls_open(const char *host, int port, const struct relayq_tls_options *o, int timeout_s, int *fd_out,
                     struct relayq__tls_pipe **out, struct relayq_error *err) {
  *out = NULL;
  *fd_out = -1;
  struct relayq__tls_pipe *p = calloc(1, sizeof *p);
  if (!p) return relayq__fail(err, RELAYQ_ENOMEM, "Out of memory connecting to Redis.");
  p->net = p->pair = -1;
  int rc = make_ctx(p, o, err);
  if (rc == 0) {
    p->net = tcp_connect(host, port, timeout_s, err);
    if (p->net < 0) rc = p->net;
  }
  if (rc == 0) rc = handshake(p, host, timeout_s, err);
  int sv[2] = {-1, -1};
  if (rc == 0 && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    rc = relayq__fail(err, RELAYQ_EIO, "Cannot create a socket pair: %s.", strerror(errno));
  if (rc == 0) {
    p->pair = sv[1];
    fcntl(p->pair, F_SETFL, fcntl(p->pair, F_GETFL) | O_NONBLOCK);
    if (pthread_create(&p->thread, NULL, pump, p) != 0) {
      close(sv[0]);
      rc = relayq__fail(err, RELAYQ_ENOMEM, "Cannot start the TLS thread.");
    } else {
      p->started = 1;
    }
  }
  ERR_clear_error();
  if (rc != 0) {
    free_pipe(p);
    return rc;
  }
  *fd_out = sv[0];
  *out = p;
  return 0;
}

void relayq__tls_close(struct relayq__tls_pipe *p) {
  if (!p) return;
  /* The hiredis end is closed by now (redisFree): the thread reads EOF. */
  if (p->started) pthread_join(p->thread, NULL);
  free_pipe(p);
}
