/*
 * tls_pipe: Redis over TLS for librelayq's blocking hiredis client.
 *
 * Why a pipe: hiredis 0.14 (Debian 12) has no TLS, and its blocking
 * context reads and writes its file descriptor itself, with no hook for a
 * TLS layer (redisContextFuncs came in 1.0). The CLI and producers use
 * that context directly (relayq_client_redis), so replacing it is not an
 * option. Instead the TLS session runs on a socket this module owns, and
 * hiredis gets one end of a socketpair (redisConnectFd); a small thread
 * moves bytes between the pair and the TLS session, both directions,
 * buffered, so neither side can block the other. hiredis's timeouts keep
 * working on its end of the pair.
 *
 * Verification: TLS 1.2 or newer, the peer's certificate chain against
 * ca_file (or the system's store), its name or IP against the host
 * (X509_VERIFY_PARAM), SNI for names. Nothing is sent before the
 * handshake succeeded; a failure is RELAYQ_ETLS with OpenSSL's reason.
 *
 * Ownership: relayq__tls_open returns the hiredis end (the caller hands
 * it to redisConnectFd, which closes it in redisFree) and a pipe the
 * caller frees with relayq__tls_close after redisFree: that joins the
 * thread (it sees the pair close) and frees the session.
 */
#ifndef RELAYQ_TLS_PIPE_H
#define RELAYQ_TLS_PIPE_H

#include "internal.h"

struct relayq__tls_pipe;

int relayq__tls_open(const char *host, int port, const struct relayq_tls_options *o, int timeout_s,
                     int *fd_out, struct relayq__tls_pipe **out, struct relayq_error *err);
void relayq__tls_close(struct relayq__tls_pipe *p);

#endif
