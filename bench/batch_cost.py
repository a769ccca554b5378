#!/usr/bin/python3
"""Redis's cost of CLAIM + FINISH per message, one job per script call
against several per BATCH call (docs/performance.md, "Cost per message").

Starts a private redis-server and runs the worker's own scripts (read from
producer/lib/scripts.c, BATCH built as scripts.c builds it) with the
arguments a worker sends for a small job that is sent (1 KB payload, one
recipient, no quota): the status hash a producer wrote, the payload in the
inflight list, then CLAIM and FINISH (mode ack: the script removes the
payload from inflight, as for a job over 1 MB). Prints per message the
Redis time (INFO commandstats usec of EVALSHA) and redis-server CPU (INFO
cpu), for each batch size given (1 = the single-job scripts).

With --plain, the FINISH of each batch is what the worker sends for a
claimed job's acknowledgement up to 1 MB: plain commands in one MULTI/EXEC.

Usage: bench/batch_cost.py [-n 20000] [-b 1 -b 16 -b 64] [--plain]
"""
import argparse
import os
import re
import shutil
import tempfile
import time

import redis

from benchlib import start_redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def c_string(expr):
    out = []
    for tok in re.finditer(r'"((?:[^"\\]|\\.)*)"', expr):
        out.append(tok.group(1).encode("latin-1").decode("unicode_escape"))
    return "".join(out)


def sources():
    src = open(os.path.join(ROOT, "producer", "lib", "scripts.c")).read()
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    s = {}
    num = c_string(re.search(r"#define LUA_NUM(.*?\"\n)", src, re.S).group(1))
    for name in ("CLAIM_BODY", "FINISH_COUNT", "FINISH_BODY", "BATCH_COUNT", "BATCH_RUN"):
        m = re.search(r"static const char %s\[\] =(.*?);\n" % name, src, re.S)
        s[name] = c_string(m.group(1).replace("LUA_NUM", '"%s"' % num.replace("\n", "\\n")))
    # FN_HEAD and FN_CALL of scripts.c
    head = "local function %s(KEYS, ko, nkeys, ARGV, ao, nargs)\n"
    call = "end\nreturn %s(KEYS, 0, #KEYS, ARGV, 0, #ARGV)\n"
    s["CLAIM"] = num + head % "claim" + s["CLAIM_BODY"] + call % "claim"
    s["FINISH"] = num + s["FINISH_COUNT"] + head % "finish" + s["FINISH_BODY"] + call % "finish"
    s["BATCH"] = (s["BATCH_COUNT"] + head % "claim" + s["CLAIM_BODY"] + "end\n" + head % "finish" +
                  s["FINISH_BODY"] + "end\n" + s["BATCH_RUN"])
    return s


P = "relayq"


def claim_call(i, now):
    jid = "j%d" % i
    ev = '{"id":"%s","tenant":"acme","state":"sending","attempts":1,"ts":%d,"route":"platform","worker":"w1"}' % (
        jid, now)
    keys = ["%s:status:%s" % (P, jid), P + ":events", "", ""]
    args = [str(now), "0", "3600000", "1", "%s:1:%d" % (jid, now), ev, "3600000", "0", "",
            "acme", "1", "w1", "platform", "1", "<%s@platform.example>" % jid]
    return keys, args


def finish_call(i, now, payload):
    jid = "j%d" % i
    ev = '{"id":"%s","tenant":"acme","state":"sent","attempts":1,"ts":%d,"route":"platform","code":250,' \
         '"worker":"w1"}' % (jid, now)
    keys = ["%s:status:%s" % (P, jid), P + ":events", P + ":inflight:w1", "", P + ":stats:acme",
            P + ":stats:acme:20261206", P + ":dead"]
    args = ["ack", payload, "", str(now), "604800000", ev, "sent", "",
            "state", "sent", "updated_at", str(now), "accepted", "1", "rejected", "0", "next_attempt_at", "",
            "sent_at", str(now),
            "last_code", "250", "last_reply", "250 2.0.0 Ok: queued as 1234", "error", "", "detail", ""]
    return keys, args


def plain_finishes(r, b_ids, now):
    """What the worker sends for a claimed job's acknowledgement (worker/
    batch.c rq_batch_plain): per job HSET, PEXPIRE, PUBLISH and LREM, the
    counters summed, all in one MULTI/EXEC per loop turn."""
    pipe = r.pipeline(transaction=True)
    for i, payload in b_ids:
        keys, args = finish_call(i, now, payload)
        pipe.hset(keys[0], mapping=dict(zip(args[8::2], args[9::2])))
        pipe.pexpire(keys[0], int(args[4]))
        pipe.publish(keys[1], args[5])
        pipe.lrem(keys[2], -1, payload)
    pipe.hincrby(P + ":stats:acme", "sent", len(b_ids))
    pipe.hincrby(P + ":stats:acme:20261206", "sent", len(b_ids))
    pipe.pexpire(P + ":stats:acme:20261206", 3456000000)
    pipe.execute()


def run(r, shas, n, b, check=True, plain=False):
    payload = os.urandom(1100)
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        pipe.hset("%s:status:j%d" % (P, i), mapping={"state": "queued", "tenant": "acme", "created_at": "1",
                                                     "attempts": "0", "updated_at": "1", "worker": ""})
        pipe.lpush(P + ":inflight:w1", payload + b"%d" % i)
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()
    r.config_resetstat()
    cpu0 = r.info("cpu")
    now = int(time.time() * 1000)
    for phase in ("claim", "finish"):
        for s in range(0, n, b):
            if phase == "finish" and plain:
                plain_finishes(r, [(i, payload + b"%d" % i) for i in range(s, min(n, s + b))], now)
                continue
            calls = []
            for i in range(s, min(n, s + b)):
                calls.append(claim_call(i, now) if phase == "claim" else finish_call(i, now, payload + b"%d" % i))
            if b == 1:
                keys, args = calls[0]
                replies = [r.evalsha(shas[phase.upper()], len(keys), *keys, *args)]
            else:
                flat = []
                for keys, args in calls:
                    flat += ["%s%d:%d" % (phase[0], len(keys), len(args))] + keys + args
                replies = r.evalsha(shas["BATCH"], 0, *flat)
            if check and phase == "claim":
                assert all(isinstance(x, list) and x[0] == b"ok" for x in replies), replies
    cpu1 = r.info("cpu")
    stats = r.info("commandstats")
    st = stats["cmdstat_evalsha"]
    # --plain: the transaction's own time is EXEC's (Redis 7 counts the
    # commands inside it there).
    tx = stats.get("cmdstat_exec", {"usec": 0}) if plain else {"usec": 0}
    if check:
        assert r.llen(P + ":inflight:w1") == 0
        assert r.hget("%s:status:j0" % P, "state") == b"sent"
    cpu = (cpu1["used_cpu_user"] + cpu1["used_cpu_sys"]) - (cpu0["used_cpu_user"] + cpu0["used_cpu_sys"])
    r.flushall()
    return (st["usec"] + tx["usec"]) / n, st["calls"], cpu / n * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=20000)
    ap.add_argument("-b", type=int, action="append")
    ap.add_argument("--plain", action="store_true", help="FINISH as the worker sends it now: plain commands "
                    "in one MULTI/EXEC per batch (default: the FINISH script, mode ack)")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    proc, port = start_redis(tmp)
    try:
        r = redis.Redis(port=port)
        src = sources()
        shas = {k: r.script_load(src[k]) for k in ("CLAIM", "FINISH", "BATCH")}
        print("%-8s %12s %8s %22s" % ("batch", "usec/msg", "calls", "redis CPU us/msg (noisy)"))
        for b in a.b or [1, 16, 64]:
            us, calls, cpu = run(r, shas, a.n, b, plain=a.plain)
            print("%-8d %12.1f %8d %22.1f" % (b, us, calls, cpu))
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
