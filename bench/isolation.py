#!/usr/bin/python3
"""Tenant isolation under a silent tenant (docs/performance.md, "Tenant
isolation").

Starts a private redis-server, postfix's smtp-sink as the platform gateway,
a TCP server that accepts and never greets, and relayq-worker(s). Then:

  1. calibration: CAL jobs spread over the healthy tenants, drained as fast
     as possible: the drain rate;
  2. baseline: jobs of the T-1 healthy tenants pushed at half the drain
     rate for S seconds; every job's enqueue-to-accepted latency (the
     status sent_at minus the moment it was pushed);
  3. silent: the same, after a backlog of B jobs of one more tenant whose
     server accepts TCP and never answers was pushed first.
With --rounds R each paced phase runs R times and the median p99s are
compared (on a loaded host one round is noisy).

Prints p50/p99/max latency of both runs, their ratio, and Redis commands
and Redis CPU per healthy message (INFO commandstats, INFO cpu), so the
Redis work a backlog costs is visible. Exit 0 when the silent run's p99 is
within --target times the baseline's (default 2).

Usage: bench/isolation.py [--tenants 20] [--backlog 10000] [--seconds 10]
         [--workers 1] [--concurrency 64] [--cal 5000] [--target 2] [--rounds 1]
Environment: BUILD_DIR (default ./build) holds relayq-worker.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import msgpack
import redis

from benchlib import free_port, start_redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
from raw_server import RawServer  # noqa: E402  (the tests' silent server)

PREFIX = "iso"


def wait_port(port, proc, what, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            sys.exit("bench: %s exited at start" % what)
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("bench: %s did not listen on %d" % (what, port))


def job(jid, tenant):
    return msgpack.packb({"v": 1, "id": jid, "tenant": tenant, "to": ["user@example.com"],
                          "from": "news@%s.example" % tenant, "subject": "isolation bench",
                          "text": "hello from the isolation bench\r\n" * 8}, use_bin_type=True)


def commandstats(r):
    info = r.info("commandstats")
    return sum(v["calls"] for v in info.values())


def redis_cpu(r):
    c = r.info("cpu")
    return c["used_cpu_sys"] + c["used_cpu_user"]


def wait_final(r, ids, timeout):
    """Waits until every id has sent_at (or a final state); returns {id: status}."""
    end = time.time() + timeout
    pending = list(ids)
    out = {}
    while pending and time.time() < end:
        pipe = r.pipeline(transaction=False)
        for i in pending[:2000]:
            pipe.hmget("%s:status:%s" % (PREFIX, i), "state", "sent_at")
        got = pipe.execute()
        still = []
        for i, (st, sent) in zip(pending[:2000], got):
            if st in (b"sent", b"partial", b"failed"):
                out[i] = (st.decode(), int(sent) if sent else None)
            else:
                still.append(i)
        pending = still + pending[2000:]
        if pending:
            time.sleep(0.05)
    if pending:
        sys.exit("bench: %d jobs not final within %d s (e.g. %s)" % (len(pending), timeout, pending[0]))
    return out


def paced(r, tag, tenants, rate, seconds):
    """Pushes rate jobs/s round-robin over tenants for seconds; {id: pushed_ms}."""
    pushed = {}
    n = int(rate * seconds)
    t0 = time.time()
    i = 0
    while i < n:
        due = int((time.time() - t0) * rate) + 1
        batch = []
        while i < min(due, n):
            jid = "%s-%d" % (tag, i)
            batch.append((jid, job(jid, tenants[i % len(tenants)])))
            i += 1
        if batch:
            now = int(time.time() * 1000)
            r.lpush("%s:queue:default" % PREFIX, *[p for _, p in batch])
            for jid, _ in batch:
                pushed[jid] = now
        time.sleep(0.005)
    return pushed


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p / 100.0))]


def run_phase(r, tag, tenants, rate, seconds):
    c0, u0 = commandstats(r), redis_cpu(r)
    pushed = paced(r, tag, tenants, rate, seconds)
    done = wait_final(r, pushed, 120)
    c1, u1 = commandstats(r), redis_cpu(r)
    lat = [done[j][1] - pushed[j] for j in pushed if done[j][0] == "sent" and done[j][1]]
    n = len(pushed)
    return {"jobs": n, "sent": len(lat), "rate": rate, "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99),
            "max_ms": max(lat), "redis_cmds_per_msg": round((c1 - c0) / n, 2),
            "redis_cpu_us_per_msg": round((u1 - u0) * 1e6 / n, 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tenants", type=int, default=20)
    ap.add_argument("--backlog", type=int, default=10000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--cal", type=int, default=5000)
    ap.add_argument("--target", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=1,
                    help="paced phases per run; the median p99 of each run is compared (a loaded host is noisy)")
    ap.add_argument("--json", help="also write the figures here")
    a = ap.parse_args()
    build = os.environ.get("BUILD_DIR", os.path.join(ROOT, "build"))
    worker_bin = os.path.join(build, "relayq-worker")
    if not os.access(worker_bin, os.X_OK):
        sys.exit("bench: %s not found: build first" % worker_bin)
    tmp = tempfile.mkdtemp(prefix="relayq-iso-")
    procs, silent = [], None
    try:
        sport = free_port()
        rp, rport = start_redis(tmp, "--logfile", os.path.join(tmp, "redis.log"))
        procs.append(rp)
        user = ["-u", "nobody"] if os.getuid() == 0 else []
        sp = subprocess.Popen(["smtp-sink"] + user + ["-m", "2048", "127.0.0.1:%d" % sport, "2048"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(sp)
        wait_port(sport, sp, "smtp-sink")
        silent = RawServer("silent", backlog=1024)
        r = redis.Redis(port=rport)
        healthy = ["t%02d" % i for i in range(1, a.tenants)]
        r.hset("%s:tenant:silent" % PREFIX, mapping={"gateway": "smtp", "smtp_host": "127.0.0.1",
                                                       "smtp_port": silent.port, "smtp_security": "none"})
        for k in range(a.workers):
            log = open(os.path.join(tmp, "worker-%d.log" % k), "wb")
            w = subprocess.Popen([worker_bin, "--redis", "redis://127.0.0.1:%d" % rport, "--prefix", PREFIX,
                                  "--platform-smtp", "smtp://127.0.0.1:%d" % sport,
                                  "--platform-from", "bench@platform.example", "--mode", "onprem",
                                  "--concurrency", str(a.concurrency), "--id", "iso-w%d" % k,
                                  "--log-level", "warn"], stdout=log, stderr=subprocess.STDOUT)
            procs.append(w)
        # 1. calibration
        t0 = time.time()
        ids = []
        for i in range(0, a.cal, 1000):
            chunk = [("cal-%d" % j, job("cal-%d" % j, healthy[j % len(healthy)])) for j in range(i, min(a.cal, i + 1000))]
            r.lpush("%s:queue:default" % PREFIX, *[p for _, p in chunk])
            ids += [j for j, _ in chunk]
        wait_final(r, ids, 300)
        drain = a.cal / (time.time() - t0)
        rate = max(1, int(drain / 2))
        print("drain rate %.0f msg/s with %d worker(s), --concurrency %d: paced phases at %d msg/s for %d s"
              % (drain, a.workers, a.concurrency, rate, a.seconds), flush=True)
        # 2. baseline
        bases = []
        for k in range(a.rounds):
            bases.append(run_phase(r, "base%d" % k, healthy, rate, a.seconds))
            print("baseline: %s" % json.dumps(bases[-1]), flush=True)
        base = sorted(bases, key=lambda x: x["p99_ms"])[len(bases) // 2]
        # 3. with the silent tenant's backlog first
        for i in range(0, a.backlog, 1000):
            r.lpush("%s:queue:default" % PREFIX,
                    *[job("s-%d" % j, "silent") for j in range(i, min(a.backlog, i + 1000))])
        time.sleep(1.0)
        sils = []
        for k in range(a.rounds):
            sils.append(run_phase(r, "sil%d" % k, healthy, rate, a.seconds))
            if k + 1 < a.rounds:
                print("silent:   %s" % json.dumps(sils[-1]), flush=True)
        with_silent = sils[-1]
        held = sum(r.llen("%s:inflight:iso-w%d" % (PREFIX, k)) for k in range(a.workers))
        left = r.llen("%s:tq:default:silent" % PREFIX) + r.llen("%s:queue:default" % PREFIX)
        with_silent.update({"silent_backlog": a.backlog, "silent_jobs_held_by_workers": held,
                            "silent_jobs_left_in_redis": left, "silent_connections": silent.connections()})
        print("silent:   %s" % json.dumps(with_silent), flush=True)
        med = sorted(x["p99_ms"] for x in sils)[len(sils) // 2]
        ratio = med / max(1, base["p99_ms"])
        print("p99 ratio silent/baseline: %.2f (target <= %.1f)" % (ratio, a.target), flush=True)
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"drain_rate": drain, "rate": rate, "baseline": bases, "silent": sils,
                           "ratio": ratio, "args": vars(a)}, f, indent=1)
        return 0 if ratio <= a.target else 1
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        if silent:
            silent.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
