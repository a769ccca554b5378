/*
 * batch: the CLAIM and FINISH calls of one loop turn, sent to Redis as one
 * transaction of plain commands (the finishes that need no script) and one
 * BATCH call (producer/lib/scripts.c), which runs each job's part in turn with
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
 * Plain finishes (rq_batch_plain): a FINISH that needs no script (an
 * acknowledged job whose CLAIM answered ok in this worker: no owner check,
 * nothing to decide) is its status's commands themselves: HSET, PEXPIRE
 * or PERSIST, PUBLISH, LREM from inflight. The turn's plain finishes go
 * as one MULTI ... EXEC, with their tenant counters summed per tenant,
 * day and state (HINCRBY pairs and the daily key's PEXPIRE), sent before
 * the turn's BATCH: a CLAIM sees every plain FINISH of its turn written.
 * Plain commands cost Redis a fraction of the same commands run by a
 * script (docs/performance.md), and the transaction makes a job's status
 * and its leaving inflight one step. A command Redis refuses while
 * queueing (OOM, READONLY, MISCONF, ...) aborts the whole transaction
 * (EXECABORT: nothing ran), and every job of it gets that refusal as its
 * reply. A command failing inside EXEC (a key of the wrong type) does not
 * stop the others (Redis has no rollback; a script's failing call did not
 * undo the calls before it either): the job gets that error.
 *
 * Replies: each call's callback runs exactly once, never from inside
 * rq_batch_call or rq_batch_plain: with its own element of BATCH's reply,
 * or with the whole reply when Redis ran no part (NULL when the
 * connection is down or was lost, an error such as NOSCRIPT or BUSY); a
 * plain finish with the first error among its commands (and its
 * counter's), else its last command's reply.
 *
 * Ownership: the engine owns the batch (eng->batch, created on first use,
 * closed by rq_batch_close). A queued call or plain finish holds only its
 * callback and privdata (the job, alive until its callback runs) and a
 * copy of its arguments.
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
/* A plain finish: n_cmds commands back to back in argv (the c-th has
 * cmd_argc[c] arguments), and the counter to add 1 to (stats_key NULL =
 * none): HINCRBY stats_key state, HINCRBY daily_key state, summed over the
 * turn. Everything is copied. */
struct rq_batch_plain {
  size_t n_cmds;
  const size_t *cmd_argc;
  size_t argc; /* the sum of cmd_argc */
  const char **argv;
  const size_t *argvlen;
  const char *stats_key, *daily_key, *state;
};
void rq_batch_plain(struct rq_engine *eng, redisCallbackFn *cb, void *privdata, const struct rq_batch_plain *p);
/* Closes the batch's loop handles; closed_cb(arg) runs once they are
 * closed. Nothing may be queued (every job is done). */
void rq_batch_close(struct rq_engine *eng, void (*closed_cb)(void *), void *arg);

#endif
