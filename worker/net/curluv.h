/*
 * curluv: the one place where libcurl's multi-socket API meets libuv
 * (the shape of curl's docs/examples/multi-uv.c, made shutdown-safe).
 *
 * Owns: one CURLM per worker, one uv_timer_t for curl's timeouts, and one
 * uv_poll_t per socket curl asks us to watch. Each transfer handed in with
 * rq_curl_add gets a small record (in CURLOPT_PRIVATE, so callers must not
 * use that option) holding its completion callback.
 *
 * Rules this module keeps (curl's CURLMOPT_TIMERFUNCTION and
 * CURLMOPT_SOCKETFUNCTION pages):
 *   - curl's timer callback only arms the uv timer; it never calls curl;
 *   - the socket callback creates, updates or stops a uv_poll per socket
 *     (its context is attached with curl_multi_assign) and never runs user
 *     code; poll errors are reported to curl as CURL_CSELECT_ERR;
 *   - curl_multi_info_read runs after every curl_multi_socket_action, and
 *     completion callbacks run from there, outside any curl callback;
 *   - memory of a uv handle is freed only in its uv_close callback.
 *
 * Callback contract (libuv style): rq_curl_add returns 0 and the callback
 * runs exactly once, or returns -1 and it never runs. On rq_curl_close the
 * callback runs with CURLE_ABORTED_BY_CALLBACK.
 */
#ifndef RQ_CURLUV_H
#define RQ_CURLUV_H

#include <curl/curl.h>
#include <uv.h>

struct rq_curl;

/* Runs once per transfer, from the loop, after curl_multi_remove_handle:
 * the easy handle belongs to the caller again (it may reset, reuse or
 * clean it up inside the callback). */
typedef void (*rq_curl_done_cb)(CURL *easy, CURLcode result, void *arg);

/* Creates the multi handle on loop. max_host_connections and
 * max_total_connections map to CURLMOPT_MAX_HOST_CONNECTIONS and
 * CURLMOPT_MAX_TOTAL_CONNECTIONS (0: no limit); the idle-connection cache
 * (CURLMOPT_MAXCONNECTS) is sized so that connections survive between
 * messages. Returns NULL when curl cannot create a multi handle.
 * curl_global_init must have run (the daemon's main, or the test). */
struct rq_curl *rq_curl_new(uv_loop_t *loop, long max_host_connections, long max_total_connections);

/* Starts easy on the multi handle. The easy handle and whatever its
 * options point to (upload data, CURLOPT_MAIL_RCPT lists) must stay valid
 * until cb runs. Fails (-1) after rq_curl_close or when curl refuses. */
int rq_curl_add(struct rq_curl *c, CURL *easy, rq_curl_done_cb cb, void *arg);

/* Transfers added and not yet completed. */
int rq_curl_active(const struct rq_curl *c);

/* The loop c runs on (smtp.c's rq_smtp_new, for callers of the libcurl
 * era that hand it a struct rq_curl). */
uv_loop_t *rq_curl_loop(const struct rq_curl *c);

/* Aborts every transfer (each callback runs before this returns, with
 * CURLE_ABORTED_BY_CALLBACK), closes idle connections (curl sends QUIT to
 * SMTP servers, bounded by each connection's response timeout), closes
 * every uv handle and frees c after the last close callback, then calls
 * closed_cb(arg) (may be NULL). Safe to call from a completion callback.
 * Until closed_cb runs, c stays valid but refuses new transfers (so code
 * reacting to an aborted transfer may still call rq_curl_add); after it,
 * c is gone. */
void rq_curl_close(struct rq_curl *c, void (*closed_cb)(void *arg), void *arg);

#endif
