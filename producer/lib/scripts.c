/* scripts: Lua sources (see scripts.h for the rules they follow). */
#include "scripts.h"

#include <stdio.h>

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

/* Shared Lua helper: the tenant of a payload, read by scanning the msgpack
 * map for its "tenant" key without decoding anything else (values before
 * it are skipped by their length; bounded by the payload's size). Returns
 * nil for anything that is not a map with a valid tenant: such payloads go
 * to the "~invalid" bucket, where the worker fails them with a reason. */
#define LUA_TENANT_OF                                                                          \
  "local sbyte, ssub = string.byte, string.sub\n"                                              \
  "local function be(m, i, n)\n"                                                               \
  "  local v = 0\n"                                                                            \
  "  for k = 0, n - 1 do v = v * 256 + (sbyte(m, i + k) or 0) end\n"                           \
  "  return v\n"                                                                               \
  "end\n"                                                                                      \
  "local function str_at(m, i)\n"                                                              \
  "  local b = sbyte(m, i)\n"                                                                  \
  "  if not b then return nil end\n"                                                           \
  "  local len, h\n"                                                                           \
  "  if b >= 0xa0 and b <= 0xbf then len, h = b - 0xa0, 1\n"                                  \
  "  elseif b == 0xd9 then len, h = be(m, i + 1, 1), 2\n"                                      \
  "  elseif b == 0xda then len, h = be(m, i + 1, 2), 3\n"                                      \
  "  elseif b == 0xdb then len, h = be(m, i + 1, 4), 5\n"                                      \
  "  else return nil end\n"                                                                    \
  "  if i + h + len - 1 > #m then return nil end\n"                                            \
  "  return ssub(m, i + h, i + h + len - 1), i + h + len\n"                                    \
  "end\n"                                                                                      \
  "local FIXED = {[0xc0]=1,[0xc2]=1,[0xc3]=1,[0xcc]=2,[0xcd]=3,[0xce]=5,[0xcf]=9,[0xd0]=2,\n"  \
  "  [0xd1]=3,[0xd2]=5,[0xd3]=9,[0xca]=5,[0xcb]=9,[0xd4]=3,[0xd5]=4,[0xd6]=6,[0xd7]=10,[0xd8]=18}\n" \
  "local function skip(m, i)\n"                                                                \
  "  local pending, n = 1, #m\n"                                                               \
  "  while pending > 0 do\n"                                                                   \
  "    if i > n then return nil end\n"                                                         \
  "    pending = pending - 1\n"                                                                \
  "    local b = sbyte(m, i)\n"                                                                \
  "    if b <= 0x7f or b >= 0xe0 then i = i + 1\n"                                             \
  "    elseif FIXED[b] then i = i + FIXED[b]\n"                                                \
  "    elseif b >= 0x80 and b <= 0x8f then pending = pending + 2 * (b - 0x80); i = i + 1\n"    \
  "    elseif b >= 0x90 and b <= 0x9f then pending = pending + (b - 0x90); i = i + 1\n"        \
  "    elseif b == 0xdc then pending = pending + be(m, i + 1, 2); i = i + 3\n"                 \
  "    elseif b == 0xdd then pending = pending + be(m, i + 1, 4); i = i + 5\n"                 \
  "    elseif b == 0xde then pending = pending + 2 * be(m, i + 1, 2); i = i + 3\n"             \
  "    elseif b == 0xdf then pending = pending + 2 * be(m, i + 1, 4); i = i + 5\n"             \
  "    elseif b >= 0xa0 and b <= 0xbf then i = i + 1 + (b - 0xa0)\n"                           \
  "    elseif b == 0xd9 or b == 0xc4 then i = i + 2 + be(m, i + 1, 1)\n"                       \
  "    elseif b == 0xda or b == 0xc5 then i = i + 3 + be(m, i + 1, 2)\n"                       \
  "    elseif b == 0xdb or b == 0xc6 then i = i + 5 + be(m, i + 1, 4)\n"                       \
  "    elseif b == 0xc7 then i = i + 3 + be(m, i + 1, 1)\n"                                    \
  "    elseif b == 0xc8 then i = i + 4 + be(m, i + 1, 2)\n"                                    \
  "    elseif b == 0xc9 then i = i + 6 + be(m, i + 1, 4)\n"                                    \
  "    else return nil end\n"                                                                  \
  "    if pending > n then return nil end\n"                                                   \
  "  end\n"                                                                                    \
  "  return i\n"                                                                               \
  "end\n"                                                                                      \
  "local function tenant_of(m)\n"                                                              \
  "  local b = sbyte(m, 1)\n"                                                                  \
  "  if not b then return nil end\n"                                                           \
  "  local count, i\n"                                                                         \
  "  if b >= 0x80 and b <= 0x8f then count, i = b - 0x80, 2\n"                                 \
  "  elseif b == 0xde then count, i = be(m, 2, 2), 4\n"                                        \
  "  elseif b == 0xdf then count, i = be(m, 2, 4), 6\n"                                        \
  "  else return nil end\n"                                                                    \
  "  if count > 64 then count = 64 end\n"                                                      \
  "  for _ = 1, count do\n"                                                                    \
  "    local key\n"                                                                            \
  "    key, i = str_at(m, i)\n"                                                                \
  "    if not key then return nil end\n"                                                       \
  "    if key == 'tenant' then\n"                                                              \
  "      local t = str_at(m, i)\n"                                                             \
  "      if t and #t >= 1 and #t <= 128 and not string.find(t, '[^%w%._@%-]') then return t end\n" \
  "      return nil\n"                                                                         \
  "    end\n"                                                                                  \
  "    i = skip(m, i)\n"                                                                       \
  "    if not i then return nil end\n"                                                         \
  "  end\n"                                                                                    \
  "  return nil\n"                                                                             \
  "end\n"

/* FETCH
 * Fairness between tenants: producers LPUSH onto P:queue:Q; when a backlog
 * builds up there, this script sorts it into per-tenant lists P:tq:Q:T (order kept)
 * and a ring of tenants with work, P:tring:Q, then takes jobs round-robin
 * over the ring, an equal share per turn (one call's room divided by the
 * tenants with work, the shared queue counting as one while it has jobs):
 * one tenant's backlog of 100,000 never delays another's job by more than
 * one turn. A tenant paused by its quota (P:tpause:T,
 * set by CLAIM) is skipped until the pause expires, so its backlog waits
 * in its list instead of cycling through P:delayed.
 *
 * KEYS[1] inflight list, KEYS[2] delayed zset, KEYS[3..] queue lists.
 * ARGV[1] most jobs to move, ARGV[2] now (ms), ARGV[3] key prefix,
 * ARGV[4] default queue for promoted payloads without _queue,
 * ARGV[5] index (0-based) of the queue to start with (round robin),
 * ARGV[6] most payloads to sort per queue in this call, ARGV[7] queue depth
 * below which nothing is sorted (small queues stay plain FIFO lists; the
 * shared queue is itself one turn of the round robin), ARGV[8] most payload
 * bytes to sort per queue in this call (taken 32 at a time): 1000 jobs of
 * 150 KB each kept Redis busy in one call for over 5 s.
 * The worker's memory budget (--max-inflight-bytes): ARGV[9] payload bytes
 * it may still take (<= 0: none), ARGV[10] "1" when it holds nothing (then
 * the first job is taken whatever its size: one job larger than the whole
 * budget goes alone), ARGV[11] a tenant whose list is served first when
 * alone ("" none; the one a too-large job waits in; "~shared" for the
 * shared queue). A job that does not fit is pushed back where it was
 * (same end, same order) and its list is not served further in this
 * call: its tenant's order holds, and other tenants' smaller jobs still
 * go. Near the budget jobs are popped one at a time, so at most one big
 * job per list is copied out and back.
 * ARGV[12] a tenant's share of the budget (half of it), ARGV[13] F,
 * ARGV[14..13+2F] tenant, bytes it holds in the worker (the tenants that
 * hold much). While another tenant has work, a tenant's job that would
 * take it past its share is not taken: met in the shared queue it moves
 * to the tenant's own list, in the ring the tenant's turn ends. So one
 * tenant's large jobs cannot take the whole budget from the others
 * (alone, a tenant may use all of it; a tenant holding nothing may
 * always take one job that fits the budget).
 * ARGV[14+2F..] tenants the calling worker cannot take now (their line in
 * that worker is full, or their breaker is open or they are paused):
 * skipped in the ring like a paused tenant, and their jobs met in the
 * shared queue are moved to their own list (each job once), so a worker
 * never pulls a backlog it cannot send. A tenant paused by the operator
 * (P:thold:T) is skipped by every worker.
 * Promotes up to 1000 due delayed jobs to the FRONT of their tenant's list
 * (they were due already; a quota-deferred backlog keeps its order).
 * Returns { {payload...}, {queue index (1-based)...}, next due score or
 * false, jobs moved aside for skipped tenants, jobs left for the budget,
 * the size of the largest of them, its tenant ("~shared": the shared
 * queue), its queue index (0-based; the worker passes it as ARGV[5] with
 * ARGV[11]), the size of the smallest left }. */
static const char FETCH[] =
  LUA_FIRST_QUEUE
  LUA_TENANT_OF
  "local prefix = ARGV[3]\n"
  "local function tq(q, t) return prefix .. ':tq:' .. q .. ':' .. t end\n"
  "local function ring(q) return prefix .. ':tring:' .. q end\n"
  "local function place_front(q, m)\n"
  "  local t = tenant_of(m) or '~invalid'\n"
  "  if redis.call('RPUSH', tq(q, t), m) == 1 then redis.call('LPUSH', ring(q), t) end\n"
  "end\n"
  /* Sorting a chunk: one LPUSH per tenant, not per job (same order as
   * pushing them one by one; a backlog is usually a few tenants). */
  "local function place_all(q, got)\n"
  "  local by, order = {}, {}\n"
  "  for _, m in ipairs(got) do\n"
  "    local t = tenant_of(m) or '~invalid'\n"
  "    if not by[t] then by[t] = {}; order[#order + 1] = t end\n"
  "    local l = by[t]\n"
  "    l[#l + 1] = m\n"
  "  end\n"
  "  for _, t in ipairs(order) do\n"
  "    local l = by[t]\n"
  "    if redis.call('LPUSH', tq(q, t), unpack(l)) == #l then redis.call('LPUSH', ring(q), t) end\n"
  "  end\n"
  "end\n"
  "local k = tonumber(ARGV[1])\n"
  "local now = tonumber(ARGV[2])\n"
  "local out, qidx = {}, {}\n"
  "local skip, nskip, aside = {}, 0, 0\n"
  "local cap, tb, nheavy = tonumber(ARGV[12]), {}, tonumber(ARGV[13])\n"
  "for i = 14, 13 + 2 * nheavy, 2 do tb[ARGV[i]] = tonumber(ARGV[i + 1]) end\n"
  "for i = 14 + 2 * nheavy, #ARGV do skip[ARGV[i]] = true; nskip = nskip + 1 end\n"
  /* Would job size n take tenant x past its share? */
  "local function over(x, n)\n"
  "  local h = tb[x] or 0\n"
  "  return h > 0 and h + n > cap\n"
  "end\n"
  "local free, alone = tonumber(ARGV[9]), ARGV[10] == '1'\n"
  "local left, left_size, left_t, left_q, left_min = 0, 0, '', 0, 0\n"
  "local est = 0\n"
  "local function held(t)\n"
  "  return skip[t] or redis.call('EXISTS', prefix .. ':tpause:' .. t, prefix .. ':thold:' .. t) > 0\n"
  "end\n"
  /* RPOP up to n from key (t: the list's tenant, "~shared" for the
   * shared queue, whose jobs of skipped tenants go to the newest end of
   * their own list: they are younger than what is there). Keeps what fits
   * the budget; a job that does not fit goes back to the same end with
   * any popped after it, in order, and ends the list's turn. Pops one at a
   * time until the largest job seen so far shows that n fit twice over.
   * Returns whether anything was popped, and whether a job was left. */
  "local function take(key, n, qi, q, t, others)\n"
  "  local any = false\n"
  "  while n > 0 do\n"
  "    local got\n"
  "    if n > 1 and est > 0 and est * 2 * n <= free then\n"
  "      got = redis.call('RPOP', key, n)\n"
  "    else\n"
  "      local one = redis.call('RPOP', key)\n"
  "      got = one and {one} or nil\n"
  "    end\n"
  "    if not got then return any, false end\n"
  "    any = true\n"
  "    for i, m in ipairs(got) do\n"
  "      local mt = t\n"
  /* The tenant of a shared-queue job is read only when it can matter. */
  "      if t == '~shared' then mt = (nskip > 0 or #m >= 65536) and tenant_of(m) end\n"
  "      local shared_over = t == '~shared' and mt and over(mt, #m)\n"
  "      if t == '~shared' and mt and (skip[mt] or shared_over) then\n"
  "        aside = aside + 1\n"
  "        if redis.call('LPUSH', tq(q, mt), m) == 1 then redis.call('LPUSH', ring(q), mt) end\n"
  "      elseif (#m > free and not (alone and #out == 0)) or (others and t ~= '~shared' and over(t, #m)) then\n"
  "        left = left + 1\n"
  "        if #m > left_size then left_size, left_t, left_q = #m, t, qi end\n"
  "        if left_min == 0 or #m < left_min then left_min = #m end\n"
  "        for j = #got, i, -1 do redis.call('RPUSH', key, got[j]) end\n"
  "        return true, true\n"
  "      else\n"
  "        free = free - #m\n"
  "        if mt then tb[mt] = (tb[mt] or 0) + #m end\n"
  "        if #m > est then est = #m end\n"
  "        out[#out + 1] = m; qidx[#qidx + 1] = qi + 1\n"
  "      end\n"
  "    end\n"
  "    n = n - #got\n"
  "  end\n"
  "  return any, false\n"
  "end\n"
  "local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)\n"
  "for j = #due, 1, -1 do\n"
  "  local m = due[j]\n"
  "  redis.call('ZREM', KEYS[2], m)\n"
  "  place_front(first_queue(m, ARGV[4]), m)\n"
  "end\n"
  "local nq = #KEYS - 2\n"
  "local qname = {}\n"
  "local plen = #prefix + 8\n"
  "for qi = 0, nq - 1 do\n"
  "  local qk = KEYS[3 + qi]\n"
  "  qname[qi] = ssub(qk, plen)\n"
  "  local backlog = redis.call('LLEN', qk) - tonumber(ARGV[7])\n"
  "  local todo, bytes = math.min(backlog, tonumber(ARGV[6])), 0\n"
  "  while todo > 0 and bytes < tonumber(ARGV[8]) do\n"
  "    local got = redis.call('RPOP', qk, math.min(todo, 32))\n"
  "    if not got then break end\n"
  "    todo = todo - #got\n"
  "    for _, m in ipairs(got) do bytes = bytes + #m end\n"
  "    place_all(qname[qi], got)\n"
  "  end\n"
  "end\n"
  "local start = tonumber(ARGV[5]) % nq\n"
  /* Alone, serve the list a too-large job waits in first, so a stream of
   * small jobs cannot keep it waiting for ever. */
  "if alone and ARGV[11] ~= '' then\n"
  "  local t = ARGV[11]\n"
  "  local key = t == '~shared' and KEYS[3 + start] or tq(qname[start], t)\n"
  "  take(key, 1, start, qname[start], t, false)\n"
  "end\n"
  "for n = 0, nq - 1 do\n"
  "  local qi = (start + n) % nq\n"
  "  local qk, rk = KEYS[3 + qi], ring(qname[qi])\n"
  "  local shared_empty = false\n"
  "  local turns = 2 * k + redis.call('LLEN', rk)\n"
  "  local skipped = 0\n"
  "  while #out < k and turns > 0 and (free > 0 or (alone and #out == 0)) do\n"
  "    turns = turns - 1\n"
  "    local rlen = redis.call('LLEN', rk)\n"
  "    local share = math.max(1, math.floor((k - #out) / (rlen + 1)))\n"
  "    if not shared_empty then\n"
  "      local got, short = take(qk, share, qi, qname[qi], '~shared', true)\n"
  "      if not got or short then shared_empty = true end\n"
  "    end\n"
  /* An empty shared queue is no longer a turn: the room left goes to the
   * tenants alone (one tenant's backlog: one turn per call, not six of
   * halving shares, each an RPOPLPUSH, EXISTS, RPOP and two LLEN). */
  "    if shared_empty and rlen > 0 then share = math.max(1, math.floor((k - #out) / rlen)) end\n"
  "    if #out >= k then break end\n"
  "    if rlen == 0 or skipped >= rlen then\n"
  "      if shared_empty then break end\n"
  "    else\n"
  "      local t = redis.call('RPOPLPUSH', rk, rk)\n"
  "      local others = rlen > 1 or not shared_empty\n"
  "      if held(t) or (others and (tb[t] or 0) >= cap) then\n"
  "        skipped = skipped + 1\n"
  "      else\n"
  "        local got, short = take(tq(qname[qi], t), math.min(share, k - #out), qi, qname[qi], t, others)\n"
  "        if short then skipped = skipped + 1 else skipped = 0 end\n"
  "        if not got or redis.call('LLEN', tq(qname[qi], t)) == 0 then redis.call('LREM', rk, 1, t) end\n"
  "      end\n"
  "    end\n"
  "  end\n"
  "end\n"
  "if #out > 0 then\n"
  "  for s = 1, #out, 1000 do\n"
  "    redis.call('LPUSH', KEYS[1], unpack(out, s, math.min(s + 999, #out)))\n"
  "  end\n"
  "end\n"
  "local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')\n"
  "return {out, qidx, nxt[2] or false, aside, left, left_size, left_t, left_q, left_min}\n";

/* The single-job scripts CLAIM and FINISH are written as functions of
 * (KEYS, ko, nkeys, ARGV, ao, nargs): their KEYS[i] is KEYS[ko + i] and
 * their ARGV[i] is ARGV[ao + i], so BATCH runs every job's part on its
 * own ARGV in place, without copying each part into tables of its own
 * (that copy cost Redis more than a command per job). Alone they run with
 * ko = ao = 0 (single()).
 *
 * CLAIM: one job, before sending.
 * KEYS[1] status hash, KEYS[2] events channel, KEYS[3] quota zset (or ""),
 *   KEYS[4] auto-reply marker prefix (or ""), KEYS[5..] the route's
 *   rate_limits windows, one per limit, named P:rate:T[:route:R]:PERIOD_MS:m
 *   (messages) or :r (recipients): a zset of time buckets with their counts
 *   in the hash KEY:c (field per bucket, and `sum`).
 * ARGV[1] now ms, ARGV[2] quota limit (0 = none), then, when KEYS[5..]
 * exist, "|todo|cap|count5|count6..." (the recipients still to send, the
 * recipients per transaction, each window's limit), ARGV[3] window ms,
 * ARGV[4] slots wanted (transactions), ARGV[5] unique member base,
 * ARGV[6] event JSON for `sending`, ARGV[7] auto-reply window ms,
 * ARGV[8] number of auto-reply recipients R, ARGV[9..8+R] recipients,
 * ARGV[9+R] the tenant's pause key (P:tpause:T, set until a slot frees so
 * FETCH leaves the tenant's backlog alone meanwhile), then the `sending`
 * status's values: ARGV[10+R] tenant, ARGV[11+R] attempts, ARGV[12+R]
 * worker, ARGV[13+R] route, ARGV[14+R] recipients, ARGV[15+R] message_id
 * (the field names live here, and the fields CLAIM always writes the same
 * value: only values cross, each argument a Lua string Redis makes).
 * hourly_quota and rate_limits hold together: every limit is checked
 * before any is charged. A window of PERIOD counts in buckets of
 * PERIOD/1000 (at least 1 ms), each kept until its end plus PERIOD, so a
 * window never lets more through than its limit (at most 0.1% stricter).
 * Returns {"foreign", ""} when the status belongs to another tenant's job
 * (its `tenant` differs from this job's, read from the status fields);
 * {"dup", state} when the job already reached a final state;
 * {"quota", next_free_ms, which} when no slot is free (which: "" for
 * hourly_quota, else the 1-based rate limit); {"suppressed", rcpt} when an
 * auto-reply went to that recipient within the window; else {"ok", slots}. */
static const char CLAIM_BODY[] =
  "local cur = redis.call('HMGET', KEYS[ko + 1], 'state', 'created_at', 'tenant')\n"
  /* (v1.1) Ids are per tenant: a status another tenant's job wrote is not
   * this job's duplicate and is never touched (FINISH keeps it too). */
  "local nr = num[ARGV[ao + 8]]\n"
  "local v = ao + 9 + nr\n"
  "if cur[3] and cur[3] ~= ARGV[v + 1] then return {'foreign', ''} end\n"
  "local st = cur[1]\n"
  "if st == 'sent' or st == 'partial' or st == 'failed' then return {'dup', st} end\n"
  /* Without a quota, rate limits or an auto-reply rule, all the slots
   * asked for are granted: nothing below needs a number. */
  "local slots_s = ARGV[ao + 4]\n"
  "if KEYS[ko + 3] ~= '' or KEYS[ko + 4] ~= '' or nkeys > 4 then\n"
  "  local now = tonumber(ARGV[ao + 1])\n"
  "  if KEYS[ko + 4] ~= '' then\n"
  "    for i = 1, nr do\n"
  "      local rcpt = ARGV[ao + 8 + i]\n"
  "      if redis.call('EXISTS', KEYS[ko + 4] .. rcpt) == 1 then return {'suppressed', rcpt} end\n"
  "    end\n"
  "  end\n"
  "  local slots = tonumber(ARGV[ao + 4])\n"
  "  local lim = {}\n"
  "  for x in string.gmatch(ARGV[ao + 2], '[^|]+') do lim[#lim + 1] = tonumber(x) end\n"
  "  local limit = lim[1]\n"
  "  local win = tonumber(ARGV[ao + 3])\n"
  "  local free_at, which, pause = nil, '', false\n"
  "  if limit > 0 and KEYS[ko + 3] ~= '' then\n"
  "    redis.call('ZREMRANGEBYSCORE', KEYS[ko + 3], '-inf', now - win)\n"
  "    local free = limit - redis.call('ZCARD', KEYS[ko + 3])\n"
  "    if free <= 0 then\n"
  "      local oldest = redis.call('ZRANGE', KEYS[ko + 3], 0, 0, 'WITHSCORES')\n"
  "      free_at, pause = tonumber(oldest[2]) + win, true\n"
  "    elseif slots > free then slots = free end\n"
  "  end\n"
  "  local todo, cap = lim[2] or 0, lim[3] or 1\n"
  "  local function rcpts_of(k) return math.min(k * cap, todo) end\n"
  "  local rate = {}\n"
  "  for i = 5, nkeys do\n"
  "    if free_at then break end\n"
  "    local per, unit = string.match(KEYS[ko + i], ':(%d+):([mr])$')\n"
  "    per = tonumber(per)\n"
  "    local count, g, ck = lim[i - 1], math.max(1, math.floor(per / 1000)), KEYS[ko + i] .. ':c'\n"
  "    local old = redis.call('ZRANGEBYSCORE', KEYS[ko + i], '-inf', now - per - g)\n"
  "    if #old > 0 then\n"
  "      local gone = 0\n"
  "      for _, b in ipairs(old) do\n"
  "        gone = gone + tonumber(redis.call('HGET', ck, b) or '0'); redis.call('HDEL', ck, b)\n"
  "      end\n"
  "      redis.call('ZREMRANGEBYSCORE', KEYS[ko + i], '-inf', now - per - g)\n"
  "      redis.call('HINCRBY', ck, 'sum', -gone)\n"
  "    end\n"
  "    local used = tonumber(redis.call('HGET', ck, 'sum') or '0')\n"
  "    local fit\n"
  "    if unit == 'm' then fit = count - used\n"
  "    else\n"
  "      fit = 0\n"
  "      while fit < slots and used + rcpts_of(fit + 1) <= count do fit = fit + 1 end\n"
  /* One transaction larger than the whole limit goes alone in an empty
   * window rather than never. */
  "      if fit == 0 and used == 0 then fit = 1 end\n"
  "    end\n"
  "    if fit < slots then slots = fit end\n"
  "    if slots <= 0 then\n"
  "      local want = used + (unit == 'm' and 1 or rcpts_of(1)) - count\n"
  "      local got, at = 0, now + per\n"
  "      for _, b in ipairs(redis.call('ZRANGE', KEYS[ko + i], 0, -1)) do\n"
  "        got = got + tonumber(redis.call('HGET', ck, b) or '0')\n"
  "        at = tonumber(b) + g + per\n"
  "        if got >= want then break end\n"
  "      end\n"
  "      free_at, which = at, tostring(i - 4)\n"
  "      pause = not string.find(KEYS[ko + i], ':route:', 1, true)\n"
  "    end\n"
  "    rate[#rate + 1] = {KEYS[ko + i], ck, per + g, g, unit}\n"
  "  end\n"
  "  if free_at then\n"
  "    if pause and ARGV[ao + 9 + nr] ~= '' and free_at > now then\n"
  "      redis.call('SET', ARGV[ao + 9 + nr], free_at, 'PX', free_at - now)\n"
  "    end\n"
  "    return {'quota', tostring(free_at), which}\n"
  "  end\n"
  "  if limit > 0 and KEYS[ko + 3] ~= '' then\n"
  "    for i = 1, slots do redis.call('ZADD', KEYS[ko + 3], now, ARGV[ao + 5] .. ':' .. i) end\n"
  "    redis.call('PEXPIRE', KEYS[ko + 3], win + 1000)\n"
  "  end\n"
  "  for _, r in ipairs(rate) do\n"
  "    local b = now - now % r[4]\n"
  "    local n = r[5] == 'm' and slots or rcpts_of(slots)\n"
  "    redis.call('ZADD', r[1], b, b)\n"
  "    redis.call('HINCRBY', r[2], b, n)\n"
  "    redis.call('HINCRBY', r[2], 'sum', n)\n"
  "    redis.call('PEXPIRE', r[1], r[3] + 1000)\n"
  "    redis.call('PEXPIRE', r[2], r[3] + 1000)\n"
  "  end\n"
  "  if KEYS[ko + 4] ~= '' then\n"
  "    for i = 1, nr do redis.call('SET', KEYS[ko + 4] .. ARGV[ao + 8 + i], now, 'PX', ARGV[ao + 7]) end\n"
  "  end\n"
  "  slots_s = tostring(slots)\n"
  "end\n"
  /* A job as the producer queued it has its tenant and created_at, and
   * no next_attempt_at, error or detail but empty ones (the enqueue writes
   * none, `relayq dead requeue` empties them): only what changes is
   * written. Any other status gets them all (created_at with its own
   * value when it has one: one HSET either way). */
  "if st == 'queued' and cur[2] and cur[3] then\n"
  "  redis.call('HSET', KEYS[ko + 1], 'state', 'sending', 'attempts', ARGV[v + 2], 'worker', ARGV[v + 3],\n"
  "    'updated_at', ARGV[ao + 1], 'route', ARGV[v + 4], 'recipients', ARGV[v + 5], 'message_id', ARGV[v + 6])\n"
  "else\n"
  "  redis.call('HSET', KEYS[ko + 1], 'state', 'sending', 'tenant', ARGV[v + 1], 'attempts', ARGV[v + 2],\n"
  "    'worker', ARGV[v + 3], 'updated_at', ARGV[ao + 1], 'route', ARGV[v + 4], 'recipients', ARGV[v + 5],\n"
  "    'message_id', ARGV[v + 6], 'next_attempt_at', '', 'error', '', 'detail', '',\n"
  "    'created_at', cur[2] or ARGV[ao + 1])\n"
  "end\n"
  /* Only a final status carries a TTL (CONTRACT.md; FINISH persists every
   * other state, the enqueue and `relayq dead requeue` write none), and a
   * final one answered 'dup' above: a TTL can only be on a status in a
   * state relayq does not write. */
  "if (st or cur[2] or cur[3]) and st ~= 'queued' and st ~= 'sending' and st ~= 'retry' and st ~= 'deferred' then\n"
  "  redis.call('PERSIST', KEYS[ko + 1])\n"
  "end\n"
  "redis.call('PUBLISH', KEYS[ko + 2], ARGV[ao + 6])\n"
  "return {'ok', slots_s}\n";

/* FINISH: one job's status change and where its payload goes next.
 * KEYS[1] status hash (or "" when no id could be read), KEYS[2] events
 * channel, KEYS[3] inflight list, KEYS[4] destination: the delayed zset
 * ("delay"), the dead list ("dead"), a queue list ("requeue") or "" ("ack"),
 * KEYS[5] the tenant's counters hash P:stats:TENANT (or ""), KEYS[6] its
 * daily counters P:stats:TENANT:YYYYMMDD (or ""), KEYS[7] the dead list
 * (where a job whose id another tenant's status holds goes).
 * ARGV[1] mode: ack | delay | dead | requeue (an acknowledgement that
 * needs no script, a claimed job's up to 1 MB, is plain commands in one
 * MULTI/EXEC instead: worker/status.c finish_plain)
 * ARGV[2] payload as held in inflight (removed from there)
 * ARGV[3] payload to park (delay) or dead-letter (dead); "" = ARGV[2]
 * ARGV[4] delay score (ms), ARGV[5] status TTL ms (0 = keep),
 * ARGV[6] event JSON ("" = none), ARGV[7] state to count in the tenant's
 * counters ("" = none), ARGV[8] "1" when created_at may be missing (the
 * job was not claimed: CLAIM sets it otherwise), ARGV[9..] status
 * field/value pairs.
 * The daily counters' 40-day TTL is set when a state's count for the day
 * starts (HINCRBY answers 1), not on every call: every command a script
 * runs costs Redis about a microsecond of call overhead. The counters go
 * through count(): the single-job script counts at once (FINISH_COUNT),
 * BATCH sums them per tenant and state and counts once per call.
 * ARGV[8] "" also says that this worker's CLAIM answered ok for the job:
 * it proved the status is this tenant's, and no other tenant's job can
 * take a status whose tenant is set (CLAIM, FINISH, the enqueue and the
 * dead requeue all leave it alone), so the owner check is skipped.
 * A number given to redis.call is printed with sprintf ("%.14g") first:
 * LREM's count is the string '-1'.
 * Returns LREM's count, or {"foreign", count} when the
 * status belonged to another tenant's job and was left alone.
 * The status is written and published before the job leaves inflight, so
 * a crash between the two leaves a job that is resent, never a lost one. */
static const char FINISH_BODY[] =
  /* (v1.1) A status that belongs to another tenant's job is never touched:
   * this job fails (invalid_job) into the dead list, reported by its event
   * alone. The job's tenant is the `tenant` status field ("" when the
   * payload's could not be read). */
  "if KEYS[ko + 1] ~= '' and nargs >= 9 and ARGV[ao + 8] ~= '' then\n"
  "  local owner = redis.call('HGET', KEYS[ko + 1], 'tenant')\n"
  "  local mine = ''\n"
  "  for i = 9, nargs - 1, 2 do\n"
  "    if ARGV[ao + i] == 'tenant' then mine = ARGV[ao + i + 1]; break end\n"
  "  end\n"
  "  if owner and owner ~= mine then\n"
  "    if ARGV[ao + 6] ~= '' then\n"
  "      local ok, ev = pcall(cjson.decode, ARGV[ao + 6])\n"
  "      if ok and type(ev) == 'table' then\n"
  "        ev.state, ev.error, ev.code = 'failed', 'invalid_job', nil\n"
  "        ev.detail = 'This job id is already used by another job (ids are the idempotency key): "
  "the job was not sent and is in the dead list; send it again with a new id.'\n"
  "        redis.call('PUBLISH', KEYS[ko + 2], cjson.encode(ev))\n"
  "      end\n"
  "    end\n"
  "    if KEYS[ko + 5] ~= '' then redis.call('HINCRBY', KEYS[ko + 5], 'failed', 1) end\n"
  "    redis.call('LPUSH', KEYS[ko + 7], ARGV[ao + 3] ~= '' and ARGV[ao + 3] or ARGV[ao + 2])\n"
  "    return {'foreign', redis.call('LREM', KEYS[ko + 3], '-1', ARGV[ao + 2])}\n"
  "  end\n"
  "end\n"
  "if KEYS[ko + 1] ~= '' and nargs >= 9 then\n"
  "  redis.call('HSET', KEYS[ko + 1], unpack(ARGV, ao + 9, ao + nargs))\n"
  "  if ARGV[ao + 8] ~= '' then redis.call('HSETNX', KEYS[ko + 1], 'created_at', ARGV[ao + 4]) end\n"
  "  if ARGV[ao + 5] ~= '0' then redis.call('PEXPIRE', KEYS[ko + 1], ARGV[ao + 5])\n"
  "  else redis.call('PERSIST', KEYS[ko + 1]) end\n"
  "end\n"
  "if ARGV[ao + 6] ~= '' then redis.call('PUBLISH', KEYS[ko + 2], ARGV[ao + 6]) end\n"
  "if ARGV[ao + 7] ~= '' and KEYS[ko + 5] ~= '' then count(KEYS[ko + 5], KEYS[ko + 6], ARGV[ao + 7]) end\n"
  "local park = ARGV[ao + 3] ~= '' and ARGV[ao + 3] or ARGV[ao + 2]\n"
  "local mode = ARGV[ao + 1]\n"
  "if mode == 'delay' then redis.call('ZADD', KEYS[ko + 4], ARGV[ao + 4], park)\n"
  "elseif mode == 'dead' then redis.call('LPUSH', KEYS[ko + 4], park)\n"
  "elseif mode == 'requeue' then redis.call('RPUSH', KEYS[ko + 4], ARGV[ao + 2]) end\n"
  "return redis.call('LREM', KEYS[ko + 3], '-1', ARGV[ao + 2])\n";

/* The single-job FINISH counts a status change in the tenant's counters
 * at once (BATCH sums them over the call: BATCH_COUNT). */
static const char FINISH_COUNT[] =
  "local function count(s, d, st)\n"
  "  redis.call('HINCRBY', s, st, 1)\n"
  "  if redis.call('HINCRBY', d, st, 1) == 1 then redis.call('PEXPIRE', d, 3456000000) end\n"
  "end\n";
/* Numbers in the arguments, each string parsed once per call: Lua's
 * tonumber is strtod, about a microsecond of Redis's time each, and a
 * batch repeats the same few counts for every job. */
#define LUA_NUM \
  "local num = setmetatable({}, {__index = function(t, s) local v = tonumber(s); t[s] = v; return v end})\n"
#define FN_HEAD(name) "local function " name "(KEYS, ko, nkeys, ARGV, ao, nargs)\n"
#define FN_CALL(name) "end\nreturn " name "(KEYS, 0, #KEYS, ARGV, 0, #ARGV)\n"
static char claim_source[sizeof LUA_NUM + sizeof FN_HEAD("claim") + sizeof CLAIM_BODY + sizeof FN_CALL("claim")];
static char finish_source[sizeof LUA_NUM + sizeof FINISH_COUNT + sizeof FN_HEAD("finish") + sizeof FINISH_BODY +
                          sizeof FN_CALL("finish")];

/* The single-job scripts: the body as a function, called on the script's
 * own KEYS and ARGV. Built on first use (the worker is one thread). */
static const char *single(enum rq_script s) {
  char *src = s == RQ_SCRIPT_CLAIM ? claim_source : finish_source;
  if (!src[0]) {
    if (s == RQ_SCRIPT_CLAIM)
      snprintf(claim_source, sizeof claim_source, "%s%s%s%s", LUA_NUM, FN_HEAD("claim"), CLAIM_BODY,
               FN_CALL("claim"));
    else
      snprintf(finish_source, sizeof finish_source, "%s%s%s%s%s", LUA_NUM, FINISH_COUNT, FN_HEAD("finish"),
               FINISH_BODY, FN_CALL("finish"));
  }
  return src;
}

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

/* BREAKER_FAIL: one failure of a tenant route, counted for every worker.
 * KEYS[1] P:breaker:TENANT, ARGV[1] the route. Returns what the workers
 * decided so far: {failures, state, until, trips, reason}; the worker
 * decides the trip (worker/mail/breaker.c) and writes it. */
static const char BREAKER_FAIL[] =
    "local f = redis.call('HINCRBY', KEYS[1], ARGV[1] .. '.failures', 1)\n"
    "local v = redis.call('HMGET', KEYS[1], ARGV[1] .. '.state', ARGV[1] .. '.until', ARGV[1] .. '.trips',\n"
    "  ARGV[1] .. '.reason')\n"
    "return {f, v[1] or 'closed', v[2] or '0', v[3] or '0', v[4] or ''}\n";

/* BREAKER_PROBE: after the cool-down exactly one worker may probe: the
 * first to ask sets half_open with a deadline. KEYS[1] P:breaker:TENANT,
 * ARGV[1] the route, ARGV[2] now (ms), ARGV[3] the probe's deadline (ms).
 * Returns {1, ...} granted, {0, state, until} wait until then, or {2, ...}
 * the breaker is closed already. */
static const char BREAKER_PROBE[] =
    "local st = redis.call('HGET', KEYS[1], ARGV[1] .. '.state')\n"
    "local u = tonumber(redis.call('HGET', KEYS[1], ARGV[1] .. '.until') or '0') or 0\n"
    "local pu = tonumber(redis.call('HGET', KEYS[1], ARGV[1] .. '.probe_until') or '0') or 0\n"
    "local now = tonumber(ARGV[2])\n"
    "if st == 'open' and u > now then return {0, st, tostring(u)} end\n"
    "if st == 'half_open' and pu > now then return {0, st, tostring(pu)} end\n"
    "if st ~= 'open' and st ~= 'half_open' then return {2, st or 'closed', '0'} end\n"
    "redis.call('HSET', KEYS[1], ARGV[1] .. '.state', 'half_open', ARGV[1] .. '.probe_until', ARGV[3],\n"
    "  ARGV[1] .. '.until', ARGV[3], 'updated_at', ARGV[2])\n"
    "return {1, 'half_open', ARGV[3]}\n";


/* BATCH: CLAIM and FINISH calls of several jobs in one script call
 * (worker/batch.c): Redis spends more on a script call itself than on the
 * commands of one job's CLAIM or FINISH, so one call per loop turn instead
 * of one per job and step is most of Redis's cost per message.
 * ARGV: per call its head, "c" (CLAIM) or "f" (FINISH), its number of
 * keys, ":" and its number of arguments in one string ("c4:15"), then its
 * keys and arguments as the single-job script takes them. Each call runs the single-job script's own text, as
 * a function of its place in ARGV, in order, in its own pcall: a call that
 * fails (a refused write, an error) answers its own error and the others
 * run as they would alone. The tenant counters of the FINISH calls
 * (count(), BATCH_COUNT) are summed per tenant and state and written after
 * the last call, one HINCRBY pair per tenant and state instead of one per
 * job; when that write fails, the calls counted in it answer its error (a
 * single FINISH whose HINCRBY failed answers it too, its status written).
 * Returns one reply per call, in order. */
static const char BATCH_COUNT[] =
  LUA_NUM
  "local counts, counted, calling = {}, {}, 0\n"
  /* d is s's day (s .. ':' .. YYYYMMDD): it names the pair. */
  "local function count(s, d, st)\n"
  "  local c = counts[d]\n"
  "  if not c then\n"
  "    c = {s = s, d = d, n = {}, states = {}, calls = {}}\n"
  "    counts[d] = c; counted[#counted + 1] = c\n"
  "  end\n"
  "  if not c.n[st] then c.n[st] = 0; c.states[#c.states + 1] = st end\n"
  "  c.n[st] = c.n[st] + 1\n"
  "  c.calls[#c.calls + 1] = calling\n"
  "end\n"
  "local function flush_counts(c)\n"
  "  for _, st in ipairs(c.states) do\n"
  "    local n = c.n[st]\n"
  "    redis.call('HINCRBY', c.s, st, n)\n"
  "    if redis.call('HINCRBY', c.d, st, n) == n then redis.call('PEXPIRE', c.d, 3456000000) end\n"
  "  end\n"
  "end\n";

static const char BATCH_RUN[] =
  "local run = {c = claim, f = finish}\n"
  /* Redis's own errors keep their code (OOM, READONLY, ...: the worker
   * tells a refused write from a failed script by it). */
  "local function as_error(r)\n"
  "  if type(r) == 'table' and r.err then r = r.err end\n"
  "  r = tostring(r)\n"
  "  if not string.find(r, '^%u[%u_]* ') then r = 'ERR ' .. r end\n"
  "  return {err = r}\n"
  "end\n"
  /* A call's head, "c4:15", parsed once per call of BATCH. */
  "local heads = setmetatable({}, {__index = function(t, h)\n"
  "  local kind, nk, na = string.match(h, '^(%a)(%d+):(%d+)$')\n"
  "  local v = kind and run[kind] and {run[kind], tonumber(nk), tonumber(na)} or false\n"
  "  t[h] = v\n"
  "  return v\n"
  "end})\n"
  "local out, i, n = {}, 1, #ARGV\n"
  "while i <= n do\n"
  "  local h = heads[ARGV[i]]\n"
  "  if not h or i + h[2] + h[3] > n then return redis.error_reply('ERR batch: malformed call at ' .. i) end\n"
  "  local nk, na = h[2], h[3]\n"
  "  local s = i + 1\n"
  "  i = s + nk + na\n"
  "  calling = #out + 1\n"
  "  local ok, r = pcall(h[1], ARGV, s - 1, nk, ARGV, s + nk - 1, na)\n"
  "  if not ok then r = as_error(r) end\n"
  "  out[calling] = r\n"
  "end\n"
  "for _, c in ipairs(counted) do\n"
  "  local ok, e = pcall(flush_counts, c)\n"
  "  if not ok then\n"
  "    e = as_error(e)\n"
  "    for _, k in ipairs(c.calls) do out[k] = e end\n"
  "  end\n"
  "end\n"
  "return out\n";

static const char BATCH_CLAIM_HEAD[] = FN_HEAD("claim");
static const char BATCH_FINISH_HEAD[] = "end\n" FN_HEAD("finish");
static const char BATCH_TAIL_HEAD[] = "end\n";
static char batch_source[sizeof BATCH_COUNT + sizeof BATCH_CLAIM_HEAD + sizeof CLAIM_BODY +
                         sizeof BATCH_FINISH_HEAD + sizeof FINISH_BODY + sizeof BATCH_TAIL_HEAD + sizeof BATCH_RUN];

/* The single-job scripts' text wrapped as functions, so a job's part of a
 * batch is exactly what its single call would run (only count() differs:
 * BATCH_COUNT). Built on first use (the worker is one thread). */
static const char *batch(void) {
  if (!batch_source[0])
    snprintf(batch_source, sizeof batch_source, "%s%s%s%s%s%s%s", BATCH_COUNT, BATCH_CLAIM_HEAD, CLAIM_BODY,
             BATCH_FINISH_HEAD, FINISH_BODY, BATCH_TAIL_HEAD, BATCH_RUN);
  return batch_source;
}

static const char *const SOURCES[RQ_SCRIPT_BATCH] = {FETCH, NULL, NULL, RECLAIM, BREAKER_FAIL, BREAKER_PROBE};
static const char *const NAMES[RQ_SCRIPT_COUNT] = {"fetch", "claim", "finish", "reclaim", "breaker_fail",
                                                   "breaker_probe", "batch"};

const char *rq_script_source(enum rq_script s) {
  if (s == RQ_SCRIPT_BATCH) return batch();
  return s == RQ_SCRIPT_CLAIM || s == RQ_SCRIPT_FINISH ? single(s) : SOURCES[s];
}
const char *rq_script_name(enum rq_script s) { return NAMES[s]; }

/* ---- the other callers' scripts (rq_lua_source) ---------------------------------- */

#define RING_SCAN_MAX 10000 /* tenants with work looked at per queue and depth sample */
#define STR_(x) #x
#define STR(x) STR_(x)

/*
 * KEYS[1] the events channel and KEYS[2] the dead list (listed with the
 * keys so everything the script touches is declared), then per job its
 * status hash and its queue list or delayed zset. ARGV[1] is the batch's
 * time (created_at and updated_at); then per job: payload, zset score or
 * "" for a list push, event JSON, tenant, recipient count, number of meta
 * pairs, the meta.KEY/value pairs. The fixed status field names live in
 * the script, so only values cross (each argument costs Redis a Lua
 * string).
 * Returns one element per job: 1 when enqueued, the existing state when
 * the id is taken by the same tenant (a duplicate), 2 when the id's status
 * belongs to another tenant's job, or Redis' error for that job.
 *
 * Ids are per tenant (CONTRACT.md v1.1): another tenant's status is never
 * written and the job is not its duplicate; it goes to the dead list as
 * it is, and a `failed`/`invalid_job` event reports it (its own status
 * cannot be written: the id is taken).
 *
 * Each job is checked and written on its own (redis.pcall), so one bad
 * key does not stop the jobs after it. Order matters within a job, since
 * Redis does not roll a script back: HMGET fails first if the status key
 * has the wrong type, the push next if the queue key has; only then is the
 * status written, so a refused job leaves neither behind.
 */
static const char ENQUEUE_LUA[] =
    "local now, out, a = ARGV[1], {}, 2\n"
    "for i = 1, (#KEYS - 2) / 2 do\n"
    "  local sk, tk, score = KEYS[2 * i + 1], KEYS[2 * i + 2], ARGV[a + 1]\n"
    "  local nm = tonumber(ARGV[a + 5])\n"
    "  local h = redis.pcall('HMGET', sk, 'state', 'tenant')\n"
    "  local r = h\n"
    "  if not h.err then r = h[1] end\n"
    "  if not h.err and h[2] and h[2] ~= ARGV[a + 3] then\n"
    "    redis.call('LPUSH', KEYS[2], ARGV[a])\n"
    "    local ok, ev = pcall(cjson.decode, ARGV[a + 2])\n"
    "    if ok and type(ev) == 'table' then\n"
    "      ev.state, ev.error = 'failed', 'invalid_job'\n"
    "      ev.detail = 'This job id is already used by another job (ids are the idempotency key): '\n"
    "        .. 'the job was not enqueued and is in the dead list; send it again with a new id.'\n"
    "      redis.call('PUBLISH', KEYS[1], cjson.encode(ev))\n"
    "    end\n"
    "    r = 2\n"
    "  elseif not r then\n"
    "    if score ~= '' then\n"
    "      r = redis.pcall('ZADD', tk, score, ARGV[a])\n"
    "    else\n"
    "      r = redis.pcall('LPUSH', tk, ARGV[a])\n"
    "    end\n"
    "    if type(r) ~= 'table' or not r.err then\n"
    "      if score ~= '' then\n"
    "        redis.call('HSET', sk, 'state', 'deferred', 'tenant', ARGV[a + 3],\n"
    "          'created_at', now, 'updated_at', now, 'attempts', '0',\n"
    "          'recipients', ARGV[a + 4], 'next_attempt_at', score)\n"
    "      else\n"
    "        redis.call('HSET', sk, 'state', 'queued', 'tenant', ARGV[a + 3],\n"
    "          'created_at', now, 'updated_at', now, 'attempts', '0',\n"
    "          'recipients', ARGV[a + 4])\n"
    "      end\n"
    "      if nm > 0 then redis.call('HSET', sk, unpack(ARGV, a + 6, a + 5 + 2 * nm)) end\n"
    "      redis.call('PUBLISH', KEYS[1], ARGV[a + 2])\n"
    "      r = 1\n"
    "    end\n"
    "  end\n"
    "  out[i] = r\n"
    "  a = a + 6 + 2 * nm\n"
    "end\n"
    "return out\n";

/*
 * REQUEUE: one dead payload back to its queue.
 * KEYS[1] P:dead, KEYS[2] P:status:ID, KEYS[3] P:queue:Q, KEYS[4] P:events.
 * ARGV[1] the exact dead payload, ARGV[2] the payload to push, ARGV[3] now
 * (ms), ARGV[4] the event JSON, ARGV[5] the tenant.
 * Returns {'ok'}, {'busy', state} when the status says the job is already
 * on its way, {'foreign'} when the id's status belongs to another tenant's
 * job (v1.1: never touched), or {'gone'} when the payload is no longer in
 * P:dead.
 * The checks come before any write: Redis does not roll a script back.
 */
static const char REQUEUE_LUA[] =
    "local cur = redis.call('HMGET', KEYS[2], 'state', 'tenant')\n"
    "if cur[2] and cur[2] ~= ARGV[5] then return {'foreign'} end\n"
    "local st = cur[1]\n"
    "if st == 'queued' or st == 'sending' or st == 'retry' or st == 'deferred' then\n"
    "  return {'busy', st}\n"
    "end\n"
    "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return {'gone'} end\n"
    "redis.call('HSET', KEYS[2], 'state', 'queued', 'tenant', ARGV[5], 'attempts', '0',\n"
    "  'error', '', 'detail', '', 'next_attempt_at', '', 'updated_at', ARGV[3],\n"
    "  'requeued_at', ARGV[3])\n"
    "redis.call('HSETNX', KEYS[2], 'created_at', ARGV[3])\n"
    "redis.call('PERSIST', KEYS[2])\n"
    "redis.call('LPUSH', KEYS[3], ARGV[2])\n"
    "redis.call('PUBLISH', KEYS[4], ARGV[4])\n"
    "return {'ok'}\n";

/* OAuth (worker/oauth.c): releases the refresh lock KEYS[1] if this worker
 * (ARGV[1]) still holds it. */
static const char OAUTH_RELEASE_LUA[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/* The tenant may have signed in again (a new refresh token written by the
 * platform) while we refreshed: only the value we used is replaced. */
static const char OAUTH_ROTATE_LUA[] =
    "local cur = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if cur == ARGV[2] or (ARGV[2] == '' and not cur) then redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) return 1 end\n"
    "return 0";

/* The hash lives at least as long as the memo (never shortened). */
static const char OAUTH_KEEP_LUA[] =
    "local t = redis.call('PTTL', KEYS[1]) if t >= 0 and t < tonumber(ARGV[1]) or t == -1 then "
    "redis.call('PEXPIRE', KEYS[1], ARGV[1]) end return 0";

/* OAuth (worker/oauth.c): forgets the shared access token in KEYS[1] if it
 * is still the one a server refused (ARGV[1], as sealed). */
static const char OAUTH_INVALIDATE_LUA[] =
    "if redis.call('HGET', KEYS[1], 'access_token') == ARGV[1] then return redis.call('HDEL', KEYS[1], "
    "'access_token', 'expires_at', 'refresh_at') end return 0";

/* Read-only. KEYS[1] delayed zset, KEYS[2] dead list, KEYS[3..] queue
 * lists; ARGV[1] key prefix, ARGV[2..] queue names in KEYS order. A
 * queue's depth is its shared list plus the per-tenant lists the FETCH
 * script sorts a backlog into (P:tq:Q:T, tenants in the ring P:tring:Q;
 * scripts.c owns that layout). */
static const char DEPTH_LUA[] =
    "local out = {}\n"
    "for i = 3, #KEYS do\n"
    "  local q = ARGV[i - 1]\n"
    "  local n = redis.call('LLEN', KEYS[i])\n"
    "  local seen = {}\n"
    "  for _, t in ipairs(redis.call('LRANGE', ARGV[1] .. ':tring:' .. q, 0, " STR(RING_SCAN_MAX) " - 1)) do\n"
    "    if not seen[t] then\n"
    "      seen[t] = true\n"
    "      n = n + redis.call('LLEN', ARGV[1] .. ':tq:' .. q .. ':' .. t)\n"
    "    end\n"
    "  end\n"
    "  out[#out + 1] = n\n"
    "end\n"
    "out[#out + 1] = redis.call('ZCARD', KEYS[1])\n"
    "out[#out + 1] = redis.call('LLEN', KEYS[2])\n"
    "return out\n";

static const char *const LUA[RQ_LUA_COUNT] = {ENQUEUE_LUA, REQUEUE_LUA, OAUTH_RELEASE_LUA, OAUTH_ROTATE_LUA, OAUTH_KEEP_LUA, OAUTH_INVALIDATE_LUA, DEPTH_LUA};

const char *rq_lua_source(enum rq_lua s) { return LUA[s]; }
