/* scripts: Lua sources (see scripts.h for the rules they follow). */
#include "scripts.h"

/* Shared Lua helper: the queue a payload belongs to, from a leading
 * "_queue" key (fixmap/map16/map32 header, fixstr/str8 key, str value). */
#define LUA_FIRST_QUEUE                                                               \
  "local function first_queue(m, dflt)\n"                                             \
  "  local b = string.byte(m, 1)\n"                                                   \
  "  if not b then return dflt end\n"                                                 \
  "  local i\n"                                                                       \
  "  if b >= 0x81 and b <= 0x8f then i = 2\n"                                         \
  "  elseif b == 0xde then i = 4 elseif b == 0xdf then i = 6 else return dflt end\n"   \
  "  if string.sub(m, i, i + 6) ~= '\\166_queue' then return dflt end\n"              \
  "  i = i + 7\n"                                                                     \
  "  local t = string.byte(m, i)\n"                                                   \
  "  if not t then return dflt end\n"                                                 \
  "  local len\n"                                                                     \
  "  if t >= 0xa1 and t <= 0xbf then len = t - 0xa0; i = i + 1\n"                    \
  "  elseif t == 0xd9 then len = string.byte(m, i + 1) or 0; i = i + 2\n"             \
  "  else return dflt end\n"                                                          \
  "  local q = string.sub(m, i, i + len - 1)\n"                                       \
  "  if #q ~= len or len == 0 or string.find(q, '[^%w%._:@%-]') then return dflt end\n" \
  "  return q\n"                                                                      \
  "end\n"

/* FETCH
 * KEYS[1] inflight list, KEYS[2] delayed zset, KEYS[3..] queue lists.
 * ARGV[1] most jobs to move, ARGV[2] now (ms), ARGV[3] key prefix,
 * ARGV[4] default queue for promoted payloads without _queue,
 * ARGV[5] index (0-based) of the queue to start with (round robin).
 * Promotes up to 1000 due delayed jobs to the FRONT of their queue (they
 * were due already, and a quota-deferred backlog keeps its order), then
 * moves up to ARGV[1] jobs from the queues into inflight.
 * Returns { {payload...}, {queue index (1-based)...}, next due score or false }. */
static const char FETCH[] =
  LUA_FIRST_QUEUE
  "local k = tonumber(ARGV[1])\n"
  "local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2], 'LIMIT', 0, 1000)\n"
  "for j = #due, 1, -1 do\n"
  "  local m = due[j]\n"
  "  redis.call('ZREM', KEYS[2], m)\n"
  "  redis.call('RPUSH', ARGV[3] .. ':queue:' .. first_queue(m, ARGV[4]), m)\n"
  "end\n"
  "local out, qidx = {}, {}\n"
  "local nq = #KEYS - 2\n"
  "local start = tonumber(ARGV[5]) % nq\n"
  "for n = 0, nq - 1 do\n"
  "  local need = k - #out\n"
  "  if need <= 0 then break end\n"
  "  local qi = (start + n) % nq\n"
  "  local got = redis.call('RPOP', KEYS[3 + qi], need)\n"
  "  if got then\n"
  "    for _, p in ipairs(got) do out[#out + 1] = p; qidx[#qidx + 1] = qi + 1 end\n"
  "  end\n"
  "end\n"
  "if #out > 0 then\n"
  "  for s = 1, #out, 1000 do\n"
  "    redis.call('LPUSH', KEYS[1], unpack(out, s, math.min(s + 999, #out)))\n"
  "  end\n"
  "end\n"
  "local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')\n"
  "return {out, qidx, nxt[2] or false}\n";

/* CLAIM: one job, before sending.
 * KEYS[1] status hash, KEYS[2] events channel, KEYS[3] quota zset (or ""),
 *   KEYS[4] auto-reply marker prefix (or "").
 * ARGV[1] now ms, ARGV[2] quota limit (0 = none), ARGV[3] window ms,
 * ARGV[4] slots wanted (transactions), ARGV[5] unique member base,
 * ARGV[6] event JSON for `sending`, ARGV[7] auto-reply window ms,
 * ARGV[8] number of auto-reply recipients R, ARGV[9..8+R] recipients,
 * then field/value pairs for the `sending` status.
 * Returns {"dup", state} when the job already reached a final state;
 * {"quota", next_free_ms} when no slot is free; {"suppressed", rcpt} when an
 * auto-reply went to that recipient within the window; else {"ok", slots}. */
static const char CLAIM[] =
  "local st = redis.call('HGET', KEYS[1], 'state')\n"
  "if st == 'sent' or st == 'partial' or st == 'failed' then return {'dup', st} end\n"
  "local now = tonumber(ARGV[1])\n"
  "local nr = tonumber(ARGV[8])\n"
  "if KEYS[4] ~= '' then\n"
  "  for i = 1, nr do\n"
  "    if redis.call('EXISTS', KEYS[4] .. ARGV[8 + i]) == 1 then return {'suppressed', ARGV[8 + i]} end\n"
  "  end\n"
  "end\n"
  "local slots = tonumber(ARGV[4])\n"
  "local limit = tonumber(ARGV[2])\n"
  "if limit > 0 and KEYS[3] ~= '' then\n"
  "  local win = tonumber(ARGV[3])\n"
  "  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - win)\n"
  "  local used = redis.call('ZCARD', KEYS[3])\n"
  "  local free = limit - used\n"
  "  if free <= 0 then\n"
  "    local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')\n"
  "    return {'quota', tostring(tonumber(oldest[2]) + win)}\n"
  "  end\n"
  "  if slots > free then slots = free end\n"
  "  for i = 1, slots do redis.call('ZADD', KEYS[3], now, ARGV[5] .. ':' .. i) end\n"
  "  redis.call('PEXPIRE', KEYS[3], win + 1000)\n"
  "end\n"
  "if KEYS[4] ~= '' then\n"
  "  for i = 1, nr do redis.call('SET', KEYS[4] .. ARGV[8 + i], now, 'PX', ARGV[7]) end\n"
  "end\n"
  "local first = 9 + nr\n"
  "if #ARGV >= first then redis.call('HSET', KEYS[1], unpack(ARGV, first)) end\n"
  "redis.call('HSETNX', KEYS[1], 'created_at', ARGV[1])\n"
  "redis.call('PERSIST', KEYS[1])\n"
  "redis.call('PUBLISH', KEYS[2], ARGV[6])\n"
  "return {'ok', tostring(slots)}\n";

/* FINISH: one job's status change and where its payload goes next.
 * KEYS[1] status hash (or "" when no id could be read), KEYS[2] events
 * channel, KEYS[3] inflight list, KEYS[4] destination: the delayed zset
 * ("delay"), the dead list ("dead"), a queue list ("requeue") or "" ("ack").
 * ARGV[1] mode: ack | delay | dead | requeue
 * ARGV[2] payload as held in inflight (removed from there)
 * ARGV[3] payload to park (delay) or dead-letter (dead); "" = ARGV[2]
 * ARGV[4] delay score (ms), ARGV[5] status TTL ms (0 = keep),
 * ARGV[6] event JSON ("" = none), ARGV[7..] status field/value pairs.
 * The status is written and published before the job leaves inflight, so
 * a crash between the two leaves a job that is resent, never a lost one. */
static const char FINISH[] =
  "if KEYS[1] ~= '' and #ARGV >= 7 then\n"
  "  redis.call('HSET', KEYS[1], unpack(ARGV, 7))\n"
  "  redis.call('HSETNX', KEYS[1], 'created_at', ARGV[4])\n"
  "  if tonumber(ARGV[5]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[5])\n"
  "  else redis.call('PERSIST', KEYS[1]) end\n"
  "end\n"
  "if ARGV[6] ~= '' then redis.call('PUBLISH', KEYS[2], ARGV[6]) end\n"
  "local park = ARGV[3] ~= '' and ARGV[3] or ARGV[2]\n"
  "local mode = ARGV[1]\n"
  "if mode == 'delay' then redis.call('ZADD', KEYS[4], ARGV[4], park)\n"
  "elseif mode == 'dead' then redis.call('LPUSH', KEYS[4], park)\n"
  "elseif mode == 'requeue' then redis.call('RPUSH', KEYS[4], ARGV[2]) end\n"
  "return redis.call('LREM', KEYS[3], -1, ARGV[2])\n";

/* RECLAIM: move a dead worker's inflight jobs back to their queues.
 * KEYS[1] the dead worker's heartbeat hash, KEYS[2] its inflight list,
 * KEYS[3] the worker registry hash. ARGV[1] key prefix, ARGV[2] the dead
 * worker's id, ARGV[3] its first queue (fallback for raw payloads),
 * ARGV[4] "force" to reclaim even with a live heartbeat (a restarted
 * worker reclaiming its own list at start).
 * Atomic, so when several workers race exactly one moves the jobs.
 * Jobs go to the front of their queue, oldest first in line.
 * Returns the number of jobs moved, or -1 when the worker is alive. */
static const char RECLAIM[] =
  LUA_FIRST_QUEUE
  "if ARGV[4] ~= 'force' and redis.call('EXISTS', KEYS[1]) == 1 then return -1 end\n"
  "local n = 0\n"
  "while n < 100000 do\n"
  "  local m = redis.call('LPOP', KEYS[2])\n"
  "  if not m then break end\n"
  "  redis.call('RPUSH', ARGV[1] .. ':queue:' .. first_queue(m, ARGV[3]), m)\n"
  "  n = n + 1\n"
  "end\n"
  "if redis.call('LLEN', KEYS[2]) == 0 and ARGV[4] ~= 'force' then redis.call('HDEL', KEYS[3], ARGV[2]) end\n"
  "return n\n";

static const char *const SOURCES[RQ_SCRIPT_COUNT] = {FETCH, CLAIM, FINISH, RECLAIM};
static const char *const NAMES[RQ_SCRIPT_COUNT] = {"fetch", "claim", "finish", "reclaim"};

const char *rq_script_source(enum rq_script s) { return SOURCES[s]; }
const char *rq_script_name(enum rq_script s) { return NAMES[s]; }
