/* redis_uv: hiredis <-> libuv glue that does not swallow poll errors. */
#include "redis_uv.h"

#include <stdlib.h>

/* Owned by the redisAsyncContext (ac->ev.data); freed after uv_close. */
struct rq_redis_uv {
  redisAsyncContext *context;
  uv_poll_t handle;
  int events;
};

static void on_poll(uv_poll_t *handle, int status, int events) {
  struct rq_redis_uv *p = handle->data;
  if (status < 0) {
    /* The socket failed: let hiredis read, fail, and disconnect. */
    if (p->context) redisAsyncHandleRead(p->context);
    return;
  }
  if (p->context && (events & UV_READABLE)) redisAsyncHandleRead(p->context);
  if (p->context && (events & UV_WRITABLE)) redisAsyncHandleWrite(p->context);
}

/* hiredis asks for write interest on every command it queues. libuv's
 * uv_poll_start stops the watcher first (an epoll_ctl DEL syscall) and
 * re-adds it at the next poll, so calling it when nothing changes cost two
 * syscalls per Redis command (strace of a busy worker). */
static void update(struct rq_redis_uv *p, int add, int remove) {
  int events = (p->events | add) & ~remove;
  if (events == p->events) return;
  p->events = events;
  if (events) uv_poll_start(&p->handle, events, on_poll);
  else uv_poll_stop(&p->handle);
}

static void add_read(void *privdata) { update(privdata, UV_READABLE, 0); }
static void del_read(void *privdata) { update(privdata, 0, UV_READABLE); }
static void add_write(void *privdata) { update(privdata, UV_WRITABLE, 0); }
static void del_write(void *privdata) { update(privdata, 0, UV_WRITABLE); }

static void on_close(uv_handle_t *handle) { free(handle->data); }

static void cleanup(void *privdata) {
  struct rq_redis_uv *p = privdata;
  p->context = NULL; /* hiredis is freeing it: no more calls into it */
  uv_close((uv_handle_t *)&p->handle, on_close);
}

int rq_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop) {
  if (ac->ev.data) return REDIS_ERR;
  struct rq_redis_uv *p = calloc(1, sizeof *p);
  if (!p) return REDIS_ERR;
  if (uv_poll_init_socket(loop, &p->handle, ac->c.fd) != 0) {
    free(p);
    return REDIS_ERR;
  }
  p->context = ac;
  p->handle.data = p;
  ac->ev.addRead = add_read;
  ac->ev.delRead = del_read;
  ac->ev.addWrite = add_write;
  ac->ev.delWrite = del_write;
  ac->ev.cleanup = cleanup;
  ac->ev.data = p;
  return REDIS_OK;
}
