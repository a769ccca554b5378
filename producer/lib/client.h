/*
 * client.h: the client struct, shared by client.c (connection, status
 * reads) and enqueue.c (the enqueue script and its batching). Private to
 * librelayq, not installed.
 *
 * Ownership: struct relayq_client owns the hiredis context, the enqueue
 * state (script SHA, batch slots, the encode buffer) and everything they
 * point to; relayq_close frees it all.
 */
#ifndef RELAYQ_CLIENT_H
#define RELAYQ_CLIENT_H

#include <hiredis/hiredis.h>

#include "internal.h"

#define RELAYQ__KEY_MAX 512

struct relayq__enqueue; /* enqueue.c */

struct relayq__tls_pipe; /* tls_pipe.c */

struct relayq_client {
  redisContext *rc;
  struct relayq__tls_pipe *tls; /* rediss://: the TLS session under rc, NULL otherwise */
  char prefix[RELAYQ_ID_MAX + 1];
  struct relayq__enqueue *enq; /* NULL until the first enqueue */
};

/* Maps a failed hiredis call on c to our codes and fills err; the
 * context's errstr names the socket problem, never a credential. */
int relayq__io_fail(struct relayq_client *c, struct relayq_error *err, const char *what);

/* Writes prefix:kind[:name] into dst (RELAYQ__KEY_MAX), or fails. */
int relayq__key_into(char *dst, const struct relayq_client *c, enum relayq_key_kind k,
                     const char *name, struct relayq_error *err);

/* Frees c->enq (relayq_close). */
void relayq__enqueue_free(struct relayq__enqueue *e);

#endif
