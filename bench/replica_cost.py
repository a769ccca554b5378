#!/usr/bin/python3
"""What one replica costs the primary (docs/scaling.md, "Replicas and failover").

Usage: bench/replica_cost.py BUILD_DIR ENQUEUE_BINARY
  BUILD_DIR holds relayq-worker; ENQUEUE_BINARY is bench/enqueue.c built
  (bench/run.sh builds it, or: cc -O2 -std=c17 -D_GNU_SOURCE -Iinclude
  $(pkg-config --cflags hiredis msgpack openssl) bench/enqueue.c
  BUILD_DIR/librelayq.a $(pkg-config --libs hiredis msgpack openssl)).

For small (20,000 jobs) and large (1,500) profiles, with no replica and with
one: a private primary (and replica) and smtp-sink on loopback, enqueue,
then one worker drains. Prints the primary's CPU (INFO cpu) and
replication bytes (master_repl_offset) per message, for the enqueue and
the delivery separately.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import redis

from benchlib import free_port


def cpu(r):
    i = r.info("cpu")
    return float(i["used_cpu_user"]) + float(i["used_cpu_sys"])


def wait(pred, timeout, what):
    t = time.time()
    while time.time() - t < timeout:
        try:
            if pred():
                return
        except (redis.ConnectionError, OSError):
            pass
        time.sleep(0.05)
    raise SystemExit("timed out waiting for " + what)


def run(build, enq, replica, prof, n):
    d = tempfile.mkdtemp(prefix="relayq-replica-")
    procs = []
    try:
        P, R, S = free_port(), free_port(), free_port()
        base = ["redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", d]
        procs.append(subprocess.Popen(base + ["--port", str(P), "--dbfilename", "a.rdb"], stdout=subprocess.DEVNULL))
        user = ["-u", "nobody"] if os.getuid() == 0 else []  # smtp-sink refuses to run as root
        procs.append(subprocess.Popen(["smtp-sink"] + user + ["-m", "512", "127.0.0.1:%d" % S, "512"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        r = redis.Redis(port=P)
        wait(r.ping, 10, "redis-server")
        wait(lambda: socket.create_connection(("127.0.0.1", S), timeout=1).close() or True, 10, "smtp-sink")
        if replica:
            procs.append(subprocess.Popen(base + ["--port", str(R), "--dbfilename", "b.rdb", "--replicaof",
                                                  "127.0.0.1", str(P)], stdout=subprocess.DEVNULL))
            rr = redis.Redis(port=R)
            wait(lambda: rr.info("replication").get("master_link_status") == "up", 10, "the replica")
        c0, o0 = cpu(r), int(r.info("replication")["master_repl_offset"])
        subprocess.run([enq, "--redis", "redis://127.0.0.1:%d" % P, "--profile", prof, "-n", str(n),
                        "--id-prefix", "m-"], check=True, capture_output=True)
        c1, o1 = cpu(r), int(r.info("replication")["master_repl_offset"])
        w = subprocess.Popen([os.path.join(build, "relayq-worker"), "--redis", "redis://127.0.0.1:%d" % P,
                              "--platform-smtp", "smtp://127.0.0.1:%d" % S, "--log-level", "warn",
                              "--allow-private-nets", "127.0.0.0/8", "--concurrency", "256", "--id", "wr"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(w)
        t = time.time()
        # P:stats:TENANT counts final states: every job sent.
        wait(lambda: int(r.hget("relayq:stats:acme", "sent") or 0) >= n, 300, "the drain")
        wall = time.time() - t
        c2, o2 = cpu(r), int(r.info("replication")["master_repl_offset"])
        print("%-5s replica=%d n=%d: primary CPU us/msg enqueue %.0f, delivery %.0f; replication bytes/msg "
              "enqueue %.0f, delivery %.0f; drain %.0f msg/s" % (prof, replica, n, (c1 - c0) / n * 1e6,
                                                                 (c2 - c1) / n * 1e6, (o1 - o0) / n, (o2 - o1) / n,
                                                                 n / wall))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    for prof, n in (("small", 20000), ("large", 1500)):
        for rep in (0, 1):
            run(sys.argv[1], sys.argv[2], rep, prof, n)
