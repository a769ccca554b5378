/*
 * message: the message the worker sends for a job, built once: the
 * sender rule (route.h), then RFC 5322 + MIME (mime.h), or a raw message
 * with the same From rule (raw_from.h), then the DKIM signature (dkim.h)
 * where the route signs. The daemon (delivery.c) and `relayq tenant test`
 * both build through here, so a test message is what the worker would
 * send.
 *
 * Pure: the DKIM key comes from the caller (the daemon caches one per
 * tenant-settings version; the CLI loads it once), through dkim_key, which
 * is asked only when the route signs and the message was built.
 */
#ifndef RQ_MESSAGE_H
#define RQ_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#include <relayq/relayq.h>

#include "msg.h"
#include "route.h"
#include "tenant.h"

/* Gives the tenant's parsed DKIM key (rq_dkim_key_load): 0 with *key
 * set, or -1 with a sentence in err (the key is unusable). */
typedef int (*rq_message_key_fn)(void *arg, void **key, char *err, size_t errlen);

/* Everything borrowed for the call. */
struct rq_message_input {
  const struct rq_route_settings *settings;
  const struct rq_tenant *tenant; /* NULL: the tenant has no hash */
  const struct relayq_job *job;
  const struct rq_route *route;   /* resolved (rq_route_resolve) */
  const char *message_id;         /* "<...>" */
  int64_t date_ms;                /* the Date: header */
  int64_t now_s;                  /* DKIM t= */
  rq_message_key_fn dkim_key;
  void *dkim_arg;
};

/* 1 when messages for tenant t on route r carry a DKIM signature: the
 * platform gateway and dkim_domain, dkim_selector and dkim_private_key
 * set (a tenant's own server or Mailgun signs for itself; docs/dkim.md). */
int rq_message_signs(const struct rq_route *r, const struct rq_tenant *t);

/* Builds the job's message into m (reset first). Returns 0; -1 when the
 * job cannot be built (err: the job is invalid); -2 when it cannot be
 * signed (err: the tenant's DKIM key). */
int rq_message_build(const struct rq_message_input *in, struct rq_msg *m, char *err, size_t errlen);

#endif
