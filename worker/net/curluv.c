/*
 * curluv: libcurl multi-socket API driven by libuv. See curluv.h.
 */
#include "curluv.h"

#include <stdlib.h>

#include "log.h"
#include "util.h"

/* One per transfer, in CURLOPT_PRIVATE. Owned by curluv from rq_curl_add
 * until just before the completion callback runs. */
struct xfer {
  struct xfer *prev, *next; /* c->xfers: what rq_curl_close must abort */
  CURL *easy;
  rq_curl_done_cb cb;
  void *arg;
};

/* One per socket curl watches, attached with curl_multi_assign. Freed only
 * in its uv_close callback; `closing` keeps it from being closed twice. */
struct sock {
  uv_poll_t poll;
  struct rq_curl *c;
  struct sock *prev, *next; /* c->socks: closed on shutdown if curl did not */
  curl_socket_t fd;
  int closing;
};

struct rq_curl {
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  struct xfer *xfers;
  struct sock *socks;
  int active;       /* transfers added, callback not yet run */
  int open_handles; /* uv handles whose close callback has not run */
  int closing;
  void (*closed_cb)(void *arg);
  void *closed_arg;
};

static void check_info(struct rq_curl *c);

static void unlink_xfer(struct rq_curl *c, struct xfer *x) {
  if (x->prev) x->prev->next = x->next;
  else c->xfers = x->next;
  if (x->next) x->next->prev = x->prev;
  x->prev = x->next = NULL;
}

static void unlink_sock(struct rq_curl *c, struct sock *s) {
  if (s->prev) s->prev->next = s->next;
  else c->socks = s->next;
  if (s->next) s->next->prev = s->prev;
  s->prev = s->next = NULL;
}

/* The last uv handle to close frees c; the owner hears of it last, so it
 * may free whatever c's users pointed at. */
static void handle_closed(struct rq_curl *c) {
  if (--c->open_handles > 0 || !c->closing) return;
  void (*cb)(void *) = c->closed_cb;
  void *arg = c->closed_arg;
  free(c);
  if (cb) cb(arg);
}

static void on_sock_closed(uv_handle_t *h) {
  struct sock *s = h->data;
  struct rq_curl *c = s->c;
  free(s);
  handle_closed(c);
}

static void close_sock(struct rq_curl *c, struct sock *s) {
  if (s->closing) return;
  s->closing = 1;
  unlink_sock(c, s);
  uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static void on_timer_closed(uv_handle_t *h) {
  handle_closed(h->data);
}

static void on_poll(uv_poll_t *p, int status, int events) {
  struct sock *s = p->data;
  struct rq_curl *c = s->c;
  int flags = 0, running;
  /* A poll error (e.g. the peer reset the connection) is curl's to judge:
   * it fails the transfer or closes the connection. */
  if (status < 0) flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  if (c->closing) return;
  curl_multi_socket_action(c->multi, s->fd, flags, &running);
  /* s may have been closed by now; only c is used below. */
  check_info(c);
}

static void on_timeout(uv_timer_t *t) {
  struct rq_curl *c = t->data;
  int running;
  if (c->closing) return;
  curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_info(c);
}

/* CURLMOPT_SOCKETFUNCTION: mirror curl's wishes for one socket onto a
 * uv_poll. Never calls curl other than curl_multi_assign, never runs user
 * code. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  struct rq_curl *c = userp;
  struct sock *s = socketp;
  int events = 0, rc;
  (void)easy;

  if (what == CURL_POLL_REMOVE) {
    if (s) {
      /* During curl_multi_cleanup the socket hash is being torn down. */
      if (!c->closing) curl_multi_assign(c->multi, fd, NULL);
      close_sock(c, s);
    }
    return 0;
  }
  if (!s) {
    s = rq_xcalloc(1, sizeof *s);
    s->c = c;
    s->fd = fd;
    rc = uv_poll_init_socket(c->loop, &s->poll, fd);
    if (rc < 0) {
      /* Nothing to close: the handle was never initialised. curl fails the
       * transfer when the callback returns -1. */
      rq_logf(RQ_LOG_ERROR, "Cannot watch a curl socket with libuv: %s.", uv_strerror(rc));
      free(s);
      return -1;
    }
    s->poll.data = s;
    c->open_handles++;
    s->next = c->socks;
    if (c->socks) c->socks->prev = s;
    c->socks = s;
    if (!c->closing) curl_multi_assign(c->multi, fd, s);
  }
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) events |= UV_READABLE;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) events |= UV_WRITABLE;
  rc = uv_poll_start(&s->poll, events, on_poll);
  if (rc < 0) {
    rq_logf(RQ_LOG_ERROR, "Cannot poll a curl socket with libuv: %s.", uv_strerror(rc));
    return -1;
  }
  return 0;
}

/* CURLMOPT_TIMERFUNCTION: arm or stop our one timer; calling curl from here
 * would recurse into the multi handle (the option's documentation forbids
 * it). A 0 ms timeout fires on the next loop iteration. */
static int on_timer_set(CURLM *multi, long timeout_ms, void *userp) {
  struct rq_curl *c = userp;
  (void)multi;
  if (c->closing) return 0;
  if (timeout_ms < 0) uv_timer_stop(&c->timer);
  else uv_timer_start(&c->timer, on_timeout, (uint64_t)timeout_ms, 0);
  return 0;
}

/* Hands finished transfers back. A callback may add transfers or close c;
 * after a close the multi handle is gone, so stop reading. */
static void check_info(struct rq_curl *c) {
  CURLMsg *msg;
  int pending;
  while (!c->closing && (msg = curl_multi_info_read(c->multi, &pending)) != NULL) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL *easy = msg->easy_handle;
    CURLcode result = msg->data.result; /* msg dies with remove_handle */
    struct xfer *x = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
    curl_multi_remove_handle(c->multi, easy);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
    if (!x) continue; /* cannot happen: every handle comes through rq_curl_add */
    unlink_xfer(c, x);
    c->active--;
    rq_curl_done_cb cb = x->cb;
    void *arg = x->arg;
    free(x);
    cb(easy, result, arg);
  }
}

struct rq_curl *rq_curl_new(uv_loop_t *loop, long max_host_connections, long max_total_connections) {
  struct rq_curl *c = rq_xcalloc(1, sizeof *c);
  c->loop = loop;
  c->multi = curl_multi_init();
  if (!c->multi) {
    free(c);
    return NULL;
  }
  uv_timer_init(loop, &c->timer);
  c->timer.data = c;
  c->open_handles = 1;
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timer_set);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
  if (max_host_connections > 0)
    curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_host_connections);
  if (max_total_connections > 0)
    curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, max_total_connections);
  /* curl's default cache is 4 x the handles added, which with one message
   * at a time per server would keep too few idle connections; closing a
   * cached SMTP connection also costs a QUIT exchange. */
  long cache = max_total_connections > 0 ? max_total_connections : 512;
  curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, cache);
  return c;
}

int rq_curl_add(struct rq_curl *c, CURL *easy, rq_curl_done_cb cb, void *arg) {
  if (c->closing || !easy || !cb) return -1;
  struct xfer *x = rq_xcalloc(1, sizeof *x);
  x->easy = easy;
  x->cb = cb;
  x->arg = arg;
  curl_easy_setopt(easy, CURLOPT_PRIVATE, (char *)x);
  /* curl calls on_timer_set from here to kick the transfer off. */
  CURLMcode mc = curl_multi_add_handle(c->multi, easy);
  if (mc != CURLM_OK) {
    rq_logf(RQ_LOG_ERROR, "Cannot start a transfer: %s.", curl_multi_strerror(mc));
    curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
    free(x);
    return -1;
  }
  x->next = c->xfers;
  if (c->xfers) c->xfers->prev = x;
  c->xfers = x;
  c->active++;
  return 0;
}

uv_loop_t *rq_curl_loop(const struct rq_curl *c) {
  return c->loop;
}

int rq_curl_active(const struct rq_curl *c) {
  return c->active;
}

void rq_curl_close(struct rq_curl *c, void (*closed_cb)(void *arg), void *arg) {
  if (c->closing) return;
  c->closing = 1;
  c->closed_cb = closed_cb;
  c->closed_arg = arg;
  uv_timer_stop(&c->timer);
  /* Abort what is in flight. A callback may try to add a transfer (it is
   * refused) or react otherwise; always restart from the head since the
   * list can change under us. */
  struct xfer *x;
  while ((x = c->xfers) != NULL) {
    CURL *easy = x->easy;
    curl_multi_remove_handle(c->multi, easy);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
    unlink_xfer(c, x);
    c->active--;
    rq_curl_done_cb cb = x->cb;
    void *cb_arg = x->arg;
    free(x);
    cb(easy, CURLE_ABORTED_BY_CALLBACK, cb_arg);
  }
  /* Idle connections close here (SMTP ones with QUIT); curl may still call
   * on_socket with CURL_POLL_REMOVE meanwhile. */
  curl_multi_cleanup(c->multi);
  c->multi = NULL;
  while (c->socks) close_sock(c, c->socks);
  uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}
