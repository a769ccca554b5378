/*
 * batch: the CLAIM and FINISH script calls of one loop turn, sent to Redis
 * as one BATCH call (producer/lib/scripts.c), which runs each job's part in turn with
 * the single-job script's own text, each in its own pcall. Redis spends
 * more on a script call itself (argument conversion, entering Lua) than
 * on the commands of one job's CLAIM or FINISH: one call per turn instead
 * of one per job and step is most of its cost per message
 * (docs/performance.md).
 *
 * When: calls made during a loop turn are sent when the loop is about to
 * wait for I/O (uv_prepare) or has just handled it (uv_check), and at once
 * when a batch holds RQ_BATCH_MAX calls or RQ_BATCH_BYTES of arguments. A
 * call never waits for another job to get somewhere: only for the end of
 * the loop turn it was made in, so a slow or blocked job never delays
 * another's status (the isolation guarantees hold as without batching).
 *
 * The rules of the single calls hold per job: its status is written before
 * it leaves inflight (FINISH's own order), its CLAIM checks (idempotency,
 * per-tenant ids, quota, rate limits, auto-reply) see everything the calls
 * before it in the batch wrote, as they would have in a pipeline, and a
 * job whose part fails (a write refused) gets its own error reply while
 * the others' parts run.
 *
 * Replies: each call's callback runs exactly once, never from inside
 * rq_batch_call: with its own element of BATCH's reply, or with the
 * whole reply when Redis ran no part (NULL when the connection is down or
 * was lost, an error such as NOSCRIPT or BUSY).
 *
 * Ownership: the engine owns the batch (eng->batch, created on first use,
 * closed by rq_batch_close). A queued call holds only its callback and
 * privdata (the job, alive until its callback runs) and a copy of its
 * arguments.
 */
#ifndef RQ_BATCH_H
#define RQ_BATCH_H

#include <stddef.h>

#include <hiredis/async.h>

#include "scripts.h"

struct rq_engine;

#define RQ_BATCH_MAX 256              /* calls per BATCH */
#define RQ_BATCH_BYTES (1u << 20)     /* argument bytes per BATCH (a larger call goes alone) */

/* Queues a CLAIM or FINISH call. argv is what the single-job call would
 * send: "EVALSHA", sha, number of keys, keys..., arguments... (copied;
 * argvlen NULL = strlen). */
void rq_batch_call(struct rq_engine *eng, enum rq_script s, redisCallbackFn *cb, void *privdata, int argc,
                   const char **argv, const size_t *argvlen);
/* Closes the batch's loop handles; closed_cb(arg) runs once they are
 * closed. Nothing may be queued (every job is done). */
void rq_batch_close(struct rq_engine *eng, void (*closed_cb)(void *), void *arg);

#endif
