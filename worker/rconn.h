/*
 * rconn: one Redis connection on the worker's loop that keeps itself
 * connected (hiredis 0.14 async + its libuv adapter for redis://, or
 * redis_tls.c for rediss://; hiredis has no reconnect, no command timeout
 * and no TLS of its own, so they live here).
 *
 * Life of a connection: connect -> AUTH (when the URL has a password) ->
 * SELECT -> ready. With redis+sentinel:// (url.n_sentinels) the link goes
 * first to a sentinel (SENTINEL get-master-addr-by-name, trying each in
 * turn), then to the primary it names, whose ROLE must say master; every
 * reconnect asks again, so a failover is followed by the next connect. On loss: every pending callback gets a
 * NULL reply (hiredis), the state callback reports not-ready, and a timer
 * reconnects with backoff (100 ms doubling to 5 s). A watchdog drops a
 * connection that leaves a command unanswered for `stall_ms` (a Redis that
 * was SIGSTOPped, a dead peer whose poll error the adapter swallows).
 *
 * Callback contract (libuv/hiredis): rq_rconn_cmd returns 0 and the
 * callback runs exactly once (with NULL on disconnect or shutdown), or
 * returns -1 and the callback never runs.
 *
 * Ownership: the owner creates and closes the rq_rconn; rq_rconn owns the
 * redisAsyncContext and its timers and frees itself after the last close
 * callback. A reply passed to a callback lives only during that callback.
 */
#ifndef RQ_RCONN_H
#define RQ_RCONN_H

#include <stdint.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/ssl.h>
#include <relayq/relayq.h>
#include <uv.h>

struct rq_rconn;

enum rq_rconn_event {
  RQ_RCONN_READY,     /* connected, authenticated, db selected */
  RQ_RCONN_LOST,      /* was ready, connection lost; reconnecting */
  RQ_RCONN_FAILED,    /* an attempt failed (detail in rq_rconn_error) */
  RQ_RCONN_AUTH_FAILED, /* Redis refused the credentials, or its certificate failed verification */
};

typedef void (*rq_rconn_event_cb)(struct rq_rconn *rc, enum rq_rconn_event ev, void *arg);

/* tls_ctx: for rediss:// (borrowed; must outlive the connection), NULL
 * for redis://. name: for log lines ("commands", "fetch"). stall_ms: 0 disables the
 * watchdog (the blocking-fetch connection sets its own bound per call). */
struct rq_rconn *rq_rconn_new(uv_loop_t *loop, const struct relayq_redis_url *url, SSL_CTX *tls_ctx,
                              const char *name, int64_t stall_ms, rq_rconn_event_cb cb, void *arg);
int rq_rconn_ready(const struct rq_rconn *rc);
const char *rq_rconn_error(const struct rq_rconn *rc);
uint64_t rq_rconn_reconnects(const struct rq_rconn *rc);
/* Commands pending a reply. */
int rq_rconn_pending(const struct rq_rconn *rc);

int rq_rconn_cmd(struct rq_rconn *rc, redisCallbackFn *cb, void *privdata, int argc, const char **argv,
                 const size_t *argvlen);
/* Sends one command already written as RESP (resp: len bytes, copied). */
int rq_rconn_send(struct rq_rconn *rc, redisCallbackFn *cb, void *privdata, const char *resp, size_t len);
int rq_rconn_cmdf(struct rq_rconn *rc, redisCallbackFn *cb, void *privdata, const char *fmt, ...);
/* Expect the next reply to take up to ms longer (blocking commands). */
void rq_rconn_expect_block(struct rq_rconn *rc, int64_t ms);

/* Drops the current connection now (pending callbacks get NULL) and
 * reconnects. */
void rq_rconn_drop(struct rq_rconn *rc);
/* Closes for good: pending callbacks get NULL, no reconnect, memory freed
 * once every handle closed; closed_cb (may be NULL) runs then. */
void rq_rconn_close(struct rq_rconn *rc, void (*closed_cb)(void *), void *arg);

#endif
