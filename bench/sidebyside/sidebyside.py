#!/usr/bin/python3
"""Side-by-side run: relayq against BullMQ + Nodemailer and a bare redis-py +
smtplib pool, on this machine, on 127.0.0.1 only (bench/README.md,
"Side by side"). bench/sidebyside/run.sh is the one command; it builds what
is missing and runs this.

One private redis-server and one postfix smtp-sink (-c: it counts what it
receives) serve every competitor. For each round, each competitor in turn
(interleaved, so drift of the machine hits them alike):

  1. FLUSHALL; its workers start and say they are ready (idle, waiting);
  2. its producer starts and enqueues N 1 KB text mails as fast as its own
     API allows, while the workers deliver them (producer and workers run
     concurrently);
  3. the run ends when the sink has counted N more messages. The rate is
     N / (time of the last message counted - time the first was counted),
     polled every 2 ms, so no one pays for the start of a process;
  4. the sink's count must settle at exactly N more: fewer (lost) or more
     (duplicates) fails the run, whoever it is;
  5. CPU per 1,000 messages of each process (workers, producer,
     redis-server, smtp-sink) over the whole step, and the machine's noise.

Prints one line per step, then the medians per competitor and the ratios
relayq/BullMQ and relayq/redis-py (per round, then their median).
"""
import argparse
import json
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import redis

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchlib import free_port  # noqa: E402
from report import proc_cpu  # noqa: E402  (bench/report.py: one reader of /proc/PID/stat)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CLK_TCK = os.sysconf("SC_CLK_TCK")
PY = "/usr/bin/python3"
NAMES = ("relayq", "bullmq", "redispy")
TITLES = {"relayq": "relayq", "bullmq": "BullMQ+Nodemailer", "redispy": "redis-py+smtplib"}


def die(msg):
    print(f"sidebyside: {msg}", file=sys.stderr)
    sys.exit(1)


def say(msg):
    print(f"sidebyside: {msg}", file=sys.stderr, flush=True)


def proc_rchar(pid):
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    return 0


def machine_cpu():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    v += [0] * (8 - len(v))
    return {"busy": (v[0] + v[1] + v[2] + v[5] + v[6]) / CLK_TCK, "steal": v[7] / CLK_TCK}


def redis_cpu(r):
    i = r.info("cpu")
    return i["used_cpu_user"] + i["used_cpu_sys"]


def body_1k():
    """The small profile's 1,024-byte text body (bench/enqueue.c make_text)."""
    words = ("Thank you for your order. Your invoice is attached and payment is due within thirty "
             "days. If you have any questions about this statement, reply to this message and our "
             "billing team will get back to you within one business day. ")
    out, w = "", 0
    while len(out) < 1024:
        out += "".join(words[(w + i) % len(words)] for i in range(72)) + "\n"
        w += 72
    return out[:1024]


class Run:
    """Every process this run starts; stop() ends them all, whatever happened."""

    def __init__(self, a):
        self.a = a
        self.tmp = tempfile.mkdtemp(prefix="relayq-sidebyside.")
        self.procs = []  # (Popen, seconds to wait after TERM)

    def spawn(self, cmd, log, wait_s=10, **kw):
        f = open(os.path.join(self.tmp, log), "ab")
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kw)
        f.close()
        self.procs.append((p, wait_s))
        return p

    def log(self, name):
        try:
            with open(os.path.join(self.tmp, name), "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def end(self, p, wait_s=10):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(wait_s)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = [(q, w) for q, w in self.procs if q is not p]

    def stop(self):
        for p, w in reversed(list(self.procs)):
            self.end(p, w)
        if self.a.out:
            os.makedirs(self.a.out, exist_ok=True)
            for n in os.listdir(self.tmp):
                if n.endswith(".log"):
                    with open(os.path.join(self.tmp, n), "rb") as src, \
                            open(os.path.join(self.a.out, n), "wb") as dst:
                        dst.write(src.read())
        subprocess.run(["rm", "-rf", self.tmp], check=False)

    def wait_for(self, what, check, p, seconds=20):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if check():
                return
            if p is not None and p.poll() is not None:
                die(f"{what} exited at start (exit {p.returncode})")
            time.sleep(0.02)
        die(f"{what} not ready within {seconds} s")

    # ---- the shared servers ----------------------------------------------------------
    def start_servers(self):
        self.rport = free_port()
        self.redis_url = f"redis://127.0.0.1:{self.rport}"
        self.redis_p = self.spawn(["redis-server", "--port", str(self.rport), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no", "--dir", self.tmp,
                                   "--protected-mode", "yes"], "redis.log", 5)
        self.r = redis.Redis.from_url(self.redis_url, socket_timeout=30)

        def redis_up():
            try:
                return self.r.ping()
            except redis.ConnectionError:
                return False
        self.wait_for("redis-server", redis_up, self.redis_p)
        self.sport = free_port()
        # The same sink settings as bench/run.sh. As root it must drop privileges.
        user = ["-u", "nobody"] if os.getuid() == 0 else []
        try:
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
        self.sink_p = self.spawn(["smtp-sink", *user, "-c", "-m", "2048", f"127.0.0.1:{self.sport}", "2048"],
                                 "sink.log", 5)

        def sink_up():
            try:
                socket.create_connection(("127.0.0.1", self.sport), 0.2).close()
                return True
            except OSError:
                return False
        self.wait_for("smtp-sink", sink_up, self.sink_p)
        self.body = os.path.join(self.tmp, "body.txt")
        with open(self.body, "w") as f:
            f.write(body_1k())

    def sink_count(self):
        """smtp-sink's own running count of messages (-c prints mesg=N)."""
        try:
            with open(os.path.join(self.tmp, "sink.log"), "rb") as f:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - 400))
                tail = f.read().decode(errors="replace")
        except OSError:
            return 0
        found = re.findall(r"mesg=(\d+)", tail)
        return int(found[-1]) if found else 0

    # ---- the competitors ----------------------------------------------------------------
    def workers(self, name, step):
        """Starts a competitor's workers, waits until each says it is ready;
        returns the Popen objects."""
        a, ps = self.a, []
        smtp = f"smtp://127.0.0.1:{self.sport}"
        for i in range(self.settings(name)["processes"]):
            log = f"{name}-{step}-w{i + 1}.log"
            if name == "relayq":
                cmd = [a.worker, "--redis", self.redis_url, "--platform-smtp", smtp,
                       "--platform-from", "bench@platform.example", "--concurrency", str(a.relayq_concurrency),
                       "--id", f"side-w{i + 1}", "--log-level", a.relayq_log_level]
                ready = "connected to Redis"
            elif name == "bullmq":
                cmd = ["node", os.path.join(HERE, "bullmq_worker.js"), "--redis", self.redis_url,
                       "--queue", "mail", "--smtp", smtp, "--concurrency", str(a.bullmq_concurrency),
                       "--connections", str(a.bullmq_connections)]
                ready = "ready"
            else:
                cmd = [PY, os.path.join(HERE, "pool_worker.py"), self.redis_url, "mail", "127.0.0.1",
                       str(self.sport)]
                ready = "ready"
            p = self.spawn(cmd, log, 35)
            ps.append(p)
            self.wait_for(f"{TITLES[name]} worker {i + 1}", lambda: ready in self.log(log), p)
        return ps

    def producer(self, name, step):
        a = self.a
        if name == "relayq":
            cmd = [a.enqueue, "--redis", self.redis_url, "--profile", "small", "-n", str(a.n),
                   "--id-prefix", f"s{step}-", "--timeout", str(a.timeout)]
        elif name == "bullmq":
            cmd = ["node", os.path.join(HERE, "bullmq_producer.js"), "--redis", self.redis_url,
                   "--queue", "mail", "--n", str(a.n), "--body", self.body,
                   "--remove-on-complete", "true" if a.bullmq_remove_on_complete else "false"]
        else:
            cmd = [PY, os.path.join(HERE, "pool_producer.py"), self.redis_url, "mail", str(a.n), self.body]
        out = open(os.path.join(self.tmp, f"{name}-{step}-producer.json"), "wb")
        err = open(os.path.join(self.tmp, f"{name}-{step}-producer.log"), "ab")
        p = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        out.close()
        err.close()
        self.procs.append((p, 5))
        return p

    def settings(self, name):
        a = self.a
        if name == "relayq":
            return {"processes": a.relayq_workers, "concurrency": a.relayq_concurrency,
                    "log_level": a.relayq_log_level}
        if name == "bullmq":
            return {"processes": a.bullmq_workers, "concurrency": a.bullmq_concurrency,
                    "smtp_connections_per_process": a.bullmq_connections,
                    "remove_on_complete": a.bullmq_remove_on_complete}
        return {"processes": a.pool, "smtp_connections_per_process": 1}

    def step(self, name, rnd):
        a = self.a
        tag = f"r{rnd}"
        self.r.flushall()
        ws = self.workers(name, tag)
        pids = [p.pid for p in ws]
        c0 = self.sink_count()
        cpu0 = {p: proc_cpu(p) for p in pids}
        r0, s0 = redis_cpu(self.r), proc_cpu(self.sink_p.pid)
        rchar0 = proc_rchar(self.sink_p.pid)
        m0, t0 = machine_cpu(), time.time()
        with open("/proc/loadavg") as f:
            load = float(f.read().split()[0])
        self_cpu0 = time.process_time()
        prod = self.producer(name, tag)
        t_first = t_last = prod_done = None
        deadline = t0 + a.timeout
        got, moved = 0, t0
        while True:
            now = time.time()
            n = self.sink_count() - c0
            if n != got:
                got, moved = n, now
            if got > 0 and t_first is None:
                t_first = now
            if got >= a.n:
                t_last = now
                break
            if prod_done is None:
                prod_done = reap(prod, os.WNOHANG)
                if prod_done and prod.returncode != 0:
                    die(f"{TITLES[name]}: the producer failed (exit {prod.returncode}): "
                        f"{self.log(f'{name}-{tag}-producer.log')[-600:]}")
            for p in ws:
                if p.poll() is not None:
                    die(f"{TITLES[name]}: a worker exited (exit {p.returncode}) after {got} of {a.n} messages; "
                        f"its log ends: {self.log(f'{name}-{tag}-w{ws.index(p) + 1}.log')[-600:]}")
            if now > deadline or (prod_done and now - moved > a.stall):
                die(f"{TITLES[name]} delivered {got} of {a.n} messages (smtp-sink's count), none for "
                    f"{now - moved:.0f} s: fewer than were sent")
            time.sleep(0.002)
        cpu = sum((proc_cpu(p) or 0.0) - cpu0[p] for p in pids)
        rc, sc = redis_cpu(self.r) - r0, proc_cpu(self.sink_p.pid) - s0
        rchar = proc_rchar(self.sink_p.pid) - rchar0
        m1 = machine_cpu()
        # The producer finished long before (else the sink could not have N).
        ru = prod_done or reap(prod, 0)
        self.procs = [(q, w) for q, w in self.procs if q is not prod]
        if prod.returncode != 0:
            die(f"{TITLES[name]}: the producer failed (exit {prod.returncode})")
        pcpu = ru.ru_utime + ru.ru_stime
        # Exactly N: wait for the count to stop moving (the sink prints it
        # as it goes), then compare; fewer is a lost message, more a duplicate.
        settle_end, last = time.time() + 1.0, got
        while time.time() < settle_end:
            time.sleep(0.1)
            got = self.sink_count() - c0
            if got != last:
                settle_end, last = time.time() + 1.0, got
        for p in ws:
            self.end(p, 35)
        if got != a.n:
            die(f"{TITLES[name]}: smtp-sink counted {got} messages for {a.n} sent "
                f"({'lost' if got < a.n else 'duplicated'} {abs(a.n - got)}): the comparison is void")
        with open(os.path.join(self.tmp, f"{name}-{tag}-producer.json")) as f:
            pj = json.loads(f.read().strip().splitlines()[-1])
        busy = m1["busy"] - m0["busy"]
        wall = t_last - t0
        ours = cpu + rc + sc + pcpu + (time.process_time() - self_cpu0)
        noise = (m1["steal"] - m0["steal"] + max(0.0, busy - ours)) / (os.cpu_count() * wall)
        k = a.n / 1000
        return {"name": name, "round": rnd, "n": a.n, "rate": a.n / (t_last - t_first),
                "seconds": round(t_last - t_first, 3), "enqueue_rate": round(pj["rate"]),
                "cpu_per_1000": {"workers": round(cpu / k, 4), "producer": round(pcpu / k, 4),
                                 "redis": round(rc / k, 4), "sink": round(sc / k, 4)},
                "sink_bytes_per_msg": round(rchar / a.n), "noise": round(noise, 2), "loadavg_before": load,
                "settings": self.settings(name)}


def reap(p, flags):
    """wait4 on a Popen child: its rusage once it has exited, else None
    (Popen.poll would reap it without the rusage)."""
    pid, status, ru = os.wait4(p.pid, flags)
    if pid == 0:
        return None
    p.returncode = os.waitstatus_to_exitcode(status)
    return ru


def median_of(rows, f):
    return statistics.median(f(x) for x in rows)


def report(results, a, out):
    by = {n: [x for x in results if x["name"] == n] for n in a.only}
    lines = []
    lines.append(f"side by side: N {a.n:,} 1 KB mails per step, {a.rounds} round(s), interleaved; "
                 f"commit {a.commit}; {os.cpu_count()} CPUs")
    lines.append("median per competitor: msg/s (range), CPU s per 1,000 messages "
                 "(workers, producer, redis-server, smtp-sink), sink bytes/msg, noise")
    for n, rows in by.items():
        if not rows:
            continue
        rates = [x["rate"] for x in rows]
        c = {k: median_of(rows, lambda x: x["cpu_per_1000"][k]) for k in ("workers", "producer", "redis", "sink")}
        lines.append(f"  {TITLES[n]:<18} {statistics.median(rates):>8,.0f} msg/s ({min(rates):,.0f}-{max(rates):,.0f})"
                     f"  workers {c['workers']:.3f}  producer {c['producer']:.3f}  redis {c['redis']:.3f}"
                     f"  sink {c['sink']:.3f}  bytes {rows[0]['sink_bytes_per_msg']:,}"
                     f"  noise {median_of(rows, lambda x: x['noise']):.2f}")
        lines.append(f"  {'':<18} settings: " + ", ".join(f"{k} {v}" for k, v in rows[0]["settings"].items()))
    ratios = {}
    for other in ("bullmq", "redispy"):
        if "relayq" in by and other in by and by["relayq"] and by[other]:
            per = [x["rate"] / y["rate"] for x, y in zip(by["relayq"], by[other])]
            ratios[other] = per
            target = 10 if other == "bullmq" else 4
            lines.append(f"  ratio relayq/{TITLES[other]}: {statistics.median(per):.2f} "
                         f"(per round {' / '.join(f'{v:.2f}' for v in per)}; target >= {target})")
    text = "\n".join(lines)
    print(text)
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "sidebyside.json"), "w") as f:
            json.dump({"results": results, "ratios": ratios, "n": a.n, "commit": a.commit}, f, indent=1)
        with open(os.path.join(out, "sidebyside.txt"), "w") as f:
            f.write(text + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=60000, help="mails per step (default 60,000)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds, each running every competitor once")
    ap.add_argument("--only", default=",".join(NAMES), help="comma-separated subset of " + ",".join(NAMES))
    ap.add_argument("--worker", required=True, help="relayq-worker binary")
    ap.add_argument("--enqueue", required=True, help="relayq-bench-enqueue binary (bench/enqueue.c)")
    ap.add_argument("--relayq-workers", type=int, default=1)
    ap.add_argument("--relayq-concurrency", type=int, default=256)
    ap.add_argument("--relayq-log-level", default="info")
    # The competitors' defaults are their best settings on this machine
    # (bench/README.md, "Side by side": the sweep and its figures).
    ap.add_argument("--bullmq-workers", type=int, default=1, help="node processes")
    ap.add_argument("--bullmq-concurrency", type=int, default=50, help="BullMQ Worker concurrency per process")
    ap.add_argument("--bullmq-connections", type=int, default=32, help="Nodemailer pool maxConnections per process")
    ap.add_argument("--bullmq-keep-completed", dest="bullmq_remove_on_complete", action="store_false",
                    help="keep completed jobs in Redis (BullMQ's default); the default here removes them")
    ap.add_argument("--pool", type=int, default=4, help="redis-py worker processes")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per step before giving up")
    ap.add_argument("--stall", type=int, default=20,
                    help="seconds without a new message, once the producer is done, before a step fails")
    ap.add_argument("--commit", default="unknown")
    ap.add_argument("--out", help="keep the logs and sidebyside.json there")
    a = ap.parse_args()
    a.only = [x for x in a.only.split(",") if x]
    for x in a.only:
        if x not in NAMES:
            die(f"--only: unknown competitor {x} (one of {', '.join(NAMES)})")
    if not 1 <= a.rounds <= 9 or a.n < 1:
        die("--rounds is 1-9 and -n at least 1")
    run = Run(a)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = []
    try:
        run.start_servers()
        for rnd in range(1, a.rounds + 1):
            for name in a.only:
                say(f"round {rnd}: {TITLES[name]} ({json.dumps(run.settings(name))})")
                x = run.step(name, rnd)
                results.append(x)
                c = x["cpu_per_1000"]
                say(f"round {rnd}: {TITLES[name]}: {x['rate']:,.0f} msg/s; CPU s per 1,000: workers {c['workers']:.3f}"
                    f" producer {c['producer']:.3f} redis {c['redis']:.3f} sink {c['sink']:.3f};"
                    f" sink {x['sink_bytes_per_msg']} bytes/msg; noise {x['noise']:.2f}; load {x['loadavg_before']}")
    except KeyboardInterrupt:
        die("interrupted")
    finally:
        run.stop()
    report(results, a, a.out)


if __name__ == "__main__":
    main()
