/*
 * scripts: every Redis Lua script of relayq, in one place, the only
 * places where several keys change together. Two kinds:
 *   - the worker's (enum rq_script), loaded with SCRIPT LOAD on every
 *     (re)connection, before any EVALSHA is queued on that connection, so
 *     a restarted Redis (which forgets scripts) never answers NOSCRIPT;
 *   - the other callers' (enum rq_lua): the producer's enqueue, the CLI's
 *     dead-letter requeue, the worker's OAuth token sharing and its queue
 *     depth sampling, each sent by its caller on its own connection.
 *
 * Payloads are never decoded in Lua (Redis's cmsgpack cannot read msgpack
 * `bin`): where a script must know a job's queue it reads only the first
 * map key, which librelayq writes as "_queue" when a worker re-encodes a
 * job (see relayq_job_encode). A payload without it goes to the default
 * queue passed in.
 *
 * Requires a non-cluster Redis (scripts touch keys derived at run time).
 * librelayq's house API (producer/lib/CMakeLists.txt); not installed.
 */
#ifndef RQ_SCRIPTS_H
#define RQ_SCRIPTS_H

enum rq_script {
  RQ_SCRIPT_FETCH,   /* promote due delayed jobs; move up to K ready jobs to inflight */
  RQ_SCRIPT_CLAIM,   /* idempotency + quota + auto-reply check; mark `sending` */
  RQ_SCRIPT_FINISH,  /* write status, publish, then park/dead-letter/requeue, then ack */
  RQ_SCRIPT_RECLAIM, /* move a dead worker's inflight jobs back to their queues */
  RQ_SCRIPT_BREAKER_FAIL,  /* count one failure of a tenant route for every worker (lines.c) */
  RQ_SCRIPT_BREAKER_PROBE, /* after the cool-down, let exactly one worker probe (lines.c) */
  RQ_SCRIPT_BATCH,   /* several jobs' CLAIM and FINISH calls in one call (worker/batch.h) */
  RQ_SCRIPT_COUNT
};

const char *rq_script_source(enum rq_script s);
const char *rq_script_name(enum rq_script s);

/* The scripts other callers send (EVAL, or SCRIPT LOAD then EVALSHA on
 * their own connection); the worker does not load them at connect. */
enum rq_lua {
  RQ_LUA_ENQUEUE, /* producer/lib/enqueue.c */
  RQ_LUA_REQUEUE, /* producer/cli/cmd_dead.c */
  RQ_LUA_OAUTH_RELEASE, /* worker/oauth.c */
  RQ_LUA_OAUTH_ROTATE, /* worker/oauth.c */
  RQ_LUA_OAUTH_KEEP, /* worker/oauth.c */
  RQ_LUA_OAUTH_INVALIDATE, /* worker/oauth.c */
  RQ_LUA_DEPTH, /* worker/metrics.c */
  RQ_LUA_COUNT
};

const char *rq_lua_source(enum rq_lua s);

#endif
