/*
 * redis_uv: attaches a hiredis async context to a libuv loop.
 *
 * Why not hiredis's own adapters/libuv.h: in hiredis 0.14 its poll
 * callback returns early when libuv reports an error (a reset connection
 * arrives as status < 0, POLLERR/POLLHUP), so hiredis never learns the
 * connection is gone and pending commands hang until some timeout. Here
 * an error is handed to hiredis as a read event: its read fails and it
 * runs the disconnect path (callbacks get NULL replies) at once.
 * Otherwise the same shape as the upstream adapter.
 */
#ifndef RQ_REDIS_UV_H
#define RQ_REDIS_UV_H

#include <hiredis/async.h>
#include <uv.h>

/* Returns REDIS_OK or REDIS_ERR. The poll handle is freed by hiredis's
 * cleanup hook (uv_close + free in the close callback). */
int rq_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop);

#endif
