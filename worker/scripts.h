/*
 * scripts: the worker's Redis Lua scripts, the only places where several
 * keys change together. Each is loaded with SCRIPT LOAD on every
 * (re)connection, before any EVALSHA is queued on that connection, so a
 * restarted Redis (which forgets scripts) never answers NOSCRIPT.
 *
 * Payloads are never decoded in Lua (Redis's cmsgpack cannot read msgpack
 * `bin`): where a script must know a job's queue it reads only the first
 * map key, which librelayq writes as "_queue" when a worker re-encodes a
 * job (see relayq_job_encode). A payload without it goes to the default
 * queue passed in.
 *
 * Requires a non-cluster Redis (scripts touch keys derived at run time).
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
  RQ_SCRIPT_BATCH,   /* several jobs' CLAIM and FINISH calls in one call (batch.h) */
  RQ_SCRIPT_COUNT
};

const char *rq_script_source(enum rq_script s);
const char *rq_script_name(enum rq_script s);

#endif
