#!/usr/bin/python3
"""The fair-service lists with many tenants in a backlog: Redis memory and
FETCH's cost per message (docs/performance.md, "Many tenants").

Starts a private redis-server, pushes N 1 KB jobs spread over T tenants
onto P:queue:default (as producers do), then runs the worker's own FETCH
script (read from producer/lib/scripts.c, so it is exactly what a worker runs)
the way a worker does: calls that sort the backlog into P:tq:default:T and
the ring P:tring:default, then calls that take 32 jobs each until every
job is out. The inflight list is emptied after each call (a worker would
send and acknowledge them). Prints, for each T given:

  used_memory of the raw queue and of the sorted backlog, bytes per job;
  FETCH calls, Redis time per taken message (INFO commandstats usec of
  EVALSHA / messages), and the wall time.

Usage: bench/fetch_cost.py [-n 200000] [-t 1 -t 100000] [--batch 32]
"""
import argparse
import os
import re
import shutil
import sys
import tempfile
import time

import msgpack
import redis

from benchlib import start_redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def c_string(expr, macros):
    """Concatenates the C string literals (and macros) of an initializer."""
    out = []
    for tok in re.finditer(r'"((?:[^"\\]|\\.)*)"|([A-Z_][A-Z0-9_]+)', expr):
        if tok.group(1) is not None:
            out.append(tok.group(1).encode("latin-1").decode("unicode_escape"))
        elif tok.group(2) in macros:
            out.append(macros[tok.group(2)])
    return "".join(out)


def fetch_source():
    src = open(os.path.join(ROOT, "producer", "lib", "scripts.c")).read()
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    macros = {}
    for m in re.finditer(r"#define (LUA_[A-Z_]+)\s*((?:.*\\\n)*.*)", src):
        macros[m.group(1)] = c_string(m.group(2).replace("\\\n", "\n"), macros)
    m = re.search(r"static const char FETCH\[\] =(.*?);\n", src, re.S)
    return c_string(m.group(1), macros)


def run(n, tenants, batch, tmp):
    proc, port = start_redis(tmp)
    try:
        r = redis.Redis(port=port)
        sha = r.script_load(fetch_source())
        base = r.info("memory")["used_memory"]
        text = "x" * 1024
        p = r.pipeline(transaction=False)
        for i in range(n):
            job = {"v": 1, "id": "j%d" % i, "tenant": "t%d" % (i % tenants), "to": ["u%d@example.com" % i],
                   "subject": "s", "text": text}
            p.lpush("relayq:queue:default", msgpack.packb(job, use_bin_type=True))
            if i % 5000 == 4999:
                p.execute()
        p.execute()
        raw = r.info("memory")["used_memory"] - base
        keys = ["relayq:inflight:bench", "relayq:delayed", "relayq:queue:default"]

        # The memory budget (FETCH's ARGV[9..13]) large enough never to
        # hold a job back: this measures the sorting and the ring, not it.
        budget = ["%d" % (1 << 40), "0", "", "%d" % (1 << 39), "0"]

        def fetch(k):
            now = str(int(time.time() * 1000))
            return r.evalsha(sha, len(keys), *keys, str(k), now, "relayq", "default", "0", "1000",
                             str(4 * batch), str(4 << 20), *budget)

        r.config_resetstat()
        t0 = time.monotonic()
        sort_calls = 0
        while r.llen("relayq:queue:default") > 4 * batch:
            fetch(0)
            sort_calls += 1
        sort_s = time.monotonic() - t0
        sort_usec = r.info("commandstats").get("cmdstat_evalsha", {}).get("usec", 0)
        sorted_mem = r.info("memory")["used_memory"] - base
        r.config_resetstat()
        t0 = time.monotonic()
        taken = calls = 0
        while taken < n:
            got = fetch(batch)[0]
            calls += 1
            taken += len(got)
            r.delete("relayq:inflight:bench")
            if not got and calls > n:
                break
        take_s = time.monotonic() - t0
        usec = r.info("commandstats").get("cmdstat_evalsha", {}).get("usec", 0)
        return {"tenants": tenants, "jobs": n, "raw_bytes": raw, "sorted_bytes": sorted_mem,
                "sort_calls": sort_calls, "sort_s": sort_s, "sort_usec_per_job": sort_usec / n,
                "take_calls": calls, "taken": taken, "take_s": take_s, "take_usec_per_job": usec / max(taken, 1)}
    finally:
        proc.terminate()
        proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200000)
    ap.add_argument("-t", type=int, action="append")
    ap.add_argument("--batch", type=int, default=32)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="relayq-fetchcost-")
    try:
        print("command: bench/fetch_cost.py %s" % " ".join(sys.argv[1:]))
        print("%9s %9s %12s %12s %9s %14s %14s %9s" % ("tenants", "jobs", "raw MB", "sorted MB", "B/job+",
                                                      "sort us/job", "take us/job", "take s"))
        for t in a.t or [1, 100000]:
            x = run(a.n, t, a.batch, tmp)
            print("%9d %9d %12.1f %12.1f %9.0f %14.2f %14.2f %9.1f" % (
                t, x["jobs"], x["raw_bytes"] / 1e6, x["sorted_bytes"] / 1e6,
                (x["sorted_bytes"] - x["raw_bytes"]) / x["jobs"], x["sort_usec_per_job"],
                x["take_usec_per_job"], x["take_s"]))
            assert x["taken"] == x["jobs"], x
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
