/*
 * sentinel_watch: follows Sentinel's +switch-master announcements for the
 * worker's primary (redis+sentinel:// only).
 *
 * Why: during a failover the old primary stays a master, accepting
 * writes, until Sentinel reconfigures it (seconds later); a worker still
 * connected to it would keep fetching there while producers, asking
 * Sentinel, already push to the new one. Sentinel publishes
 * "+switch-master NAME OLD-IP OLD-PORT NEW-IP NEW-PORT" on its pub/sub the
 * moment it switches; on that message for our master the owner's callback
 * runs (the worker drops its connections; the reconnect asks Sentinel).
 * rconn's own re-ask on disconnect and on READONLY stays the fallback.
 *
 * One subscription connection to one sentinel at a time (plain hiredis
 * async, or redis_tls for rediss+sentinel://); lost, it moves to the next
 * sentinel after a second.
 *
 * Ownership: the owner creates and closes it; it frees itself after its
 * timer's close callback. The SSL_CTX is borrowed.
 */
#ifndef RQ_SENTINEL_WATCH_H
#define RQ_SENTINEL_WATCH_H

#include <openssl/ssl.h>
#include <relayq/relayq.h>
#include <uv.h>

struct rq_sentinel_watch;

typedef void (*rq_sentinel_switch_cb)(void *arg, const char *new_host, int new_port);

struct rq_sentinel_watch *rq_sentinel_watch_new(uv_loop_t *loop, const struct relayq_redis_url *url, SSL_CTX *tls,
                                                rq_sentinel_switch_cb cb, void *arg);
void rq_sentinel_watch_close(struct rq_sentinel_watch *w);

#endif
