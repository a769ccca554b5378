#!/usr/bin/python3
"""bench/report.py: the measuring half of the relayq benchmark (bench/run.sh
runs the processes, this reads the numbers). Debian's /usr/bin/python3 with
python3-redis.

Subcommands (each prints or writes one JSON object):

  port                  a free 127.0.0.1 TCP port
  watch                 one drain: waits for the first fetch, then until the
                        queue, tenant ring and every inflight list are empty;
                        samples the workers' RSS on the way; at the end reads
                        CPU (utime+stime) and peak RSS (VmHWM) from /proc,
                        INFO commandstats and INFO cpu before/after, and a
                        SLOWLOG sample of top-level commands mid-drain
  statuses              reads every status of a run (ids PREFIX + 9 digits)
                        with pipelined HMGETs: states, enqueue-to-accepted
                        latency percentiles, first created_at, last final
                        updated_at
  callgrind             instructions per message from two callgrind runs
  summarize             one run's figures table (text and JSON)
  table                 the figures of several runs side by side (--suite)

Clocks: status timestamps are the producer's and the worker's wall clocks
(ms since epoch); on one machine they are the same clock as time.time()
here, which is what the drain window needs.
"""
import argparse
import json
import statistics
import os
import socket
import sys
import time

try:
    import redis
except ImportError:  # pragma: no cover - depends on the machine
    redis = None

CLK_TCK = os.sysconf("SC_CLK_TCK")

# Commands a relayq worker or producer sends at top level that never run
# inside its Lua scripts. Everything else in INFO commandstats (HSET, LPUSH,
# RPOP, PUBLISH, ...) is counted as run inside a script: the heartbeat's
# own HSET/PEXPIRE (three commands every 5 s per worker) is the only
# top-level exception, and it is noise against thousands of messages.
# LREM is counted at top level: the worker sends one for every job it
# acknowledges (up to 1 MB, worker/status.c); only FINISH's retries, dead
# letters, hand-backs and larger jobs still LREM inside the script.
TOP_LEVEL_ONLY = {
    "evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "blmove", "brpoplpush",
    "hgetall", "lrange", "ping", "script|load", "del", "hdel", "select", "auth",
    "hello", "client|setname", "client|setinfo", "multi", "exec", "quit", "lrem",
}


def die(msg):
    print("report.py: " + msg, file=sys.stderr)
    sys.exit(1)


def connect(url):
    if redis is None:
        die("python3-redis is missing: run scripts/deps.sh (and use /usr/bin/python3)")
    return redis.Redis.from_url(url, socket_timeout=30)


# ---- /proc -------------------------------------------------------------------

def proc_cpu(pid):
    """utime+stime of pid in seconds, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces.
    fields = data[data.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status(pid, key):
    """A kB field of /proc/PID/status (VmRSS, VmHWM) in bytes, or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def proc_rchar(pid):
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                if line.startswith("rchar:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def machine_cpu():
    """Whole-machine CPU seconds from /proc/stat: busy (user, nice, system,
    irq, softirq), idle (idle, iowait) and steal (taken by the hypervisor:
    on a shared VM it is why figures wander from run to run)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    v += [0] * (8 - len(v))
    return {"busy": (v[0] + v[1] + v[2] + v[5] + v[6]) / CLK_TCK,
            "idle": (v[3] + v[4]) / CLK_TCK, "steal": v[7] / CLK_TCK}


def read_pids(path, deadline):
    """Waits for run.sh to write the workers' pids (one per line)."""
    while time.time() < deadline:
        try:
            with open(path) as f:
                text = f.read()
            if text.endswith("\n"):
                return [int(x) for x in text.split()]
        except FileNotFoundError:
            pass
        time.sleep(0.005)
    die(f"no worker pids in {path} before the deadline")


# ---- Redis stats ----------------------------------------------------------------

def commandstats(r):
    info = r.info("commandstats")
    out = {}
    for k, v in info.items():
        name = k[len("cmdstat_"):] if k.startswith("cmdstat_") else k
        out[name] = {"calls": int(v["calls"]), "usec": int(v["usec"])}
    return out


def redis_cpu(r):
    c = r.info("cpu")
    return float(c["used_cpu_user"]) + float(c["used_cpu_sys"])


def stats_delta(before, after, own):
    """Per-command calls/usec between two snapshots, minus our own calls."""
    out = {}
    for name, a in after.items():
        b = before.get(name, {"calls": 0, "usec": 0})
        calls = a["calls"] - b["calls"] - own.get(name, 0)
        if calls > 0:
            out[name] = {"calls": calls, "usec": a["usec"] - b["usec"]}
    return out


def classify_script(args):
    """Names the worker script an EVALSHA in SLOWLOG ran, from its keys:
    FETCH's first key is the inflight list, FINISH's third, CLAIM's second
    is the events channel with a status key first."""
    a = [x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x) for x in args]
    if len(a) < 4 or a[0].lower() != "evalsha":
        return a[0].lower() if a else "?"
    if ":inflight:" in a[3]:
        return "evalsha FETCH"
    if len(a) > 5 and ":inflight:" in a[5]:
        return "evalsha FINISH"
    if ":status:" in a[3]:
        return "evalsha CLAIM"
    if ":worker:" in a[3]:
        return "evalsha RECLAIM"
    return "evalsha ?"


def slowlog_sample(r, own, seconds=0.25, size=4096):
    """Logs every top-level command for a moment and returns the mean time
    per command kind. SLOWLOG records top-level commands only (a script's
    own calls are inside its EVALSHA's time)."""
    old = r.config_get("slowlog-log-slower-than")["slowlog-log-slower-than"]
    old_len = r.config_get("slowlog-max-len")["slowlog-max-len"]
    r.config_set("slowlog-max-len", size)
    r.slowlog_reset()
    r.config_set("slowlog-log-slower-than", 0)
    time.sleep(seconds)
    r.config_set("slowlog-log-slower-than", old)
    entries = r.execute_command("SLOWLOG", "GET", size)
    r.config_set("slowlog-max-len", old_len)
    r.slowlog_reset()
    for name in ("config|get", "config|get", "config|set", "config|set", "config|set", "config|set",
                 "slowlog|reset", "slowlog|reset", "slowlog|get"):
        own[name] = own.get(name, 0) + 1
    kinds = {}
    for e in entries:
        # [id, timestamp, duration_us, [args...], client addr, client name]
        kind = classify_script(e[3])
        if kind.startswith("config") or kind.startswith("slowlog"):
            continue
        k = kinds.setdefault(kind, {"n": 0, "usec": 0})
        k["n"] += 1
        k["usec"] += int(e[2])
    for k in kinds.values():
        k["usec_mean"] = round(k["usec"] / k["n"], 1)
    return {"seconds": seconds, "entries": len(entries), "by_kind": kinds}


# ---- subcommands -------------------------------------------------------------------

def cmd_rcpu(a):
    """redis-server's CPU seconds so far (INFO cpu), for run.sh's deltas."""
    print(redis_cpu(connect(a.redis)))


def cmd_port(a):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
    s.close()


def cmd_watch(a):
    """See the module docstring. Our own commands are counted by name so
    they can be taken out of the commands-per-message figure."""
    r = connect(a.redis)
    own = {}

    def note(name, n=1):
        own[name] = own.get(name, 0) + n

    deadline = time.time() + a.timeout
    queue_key = f"{a.prefix}:queue:{a.queue}"
    ring_key = f"{a.prefix}:tring:{a.queue}"
    # Redis's latency monitor records the slowest command (event
    # "command": one call that kept every other client waiting).
    # (Both run before the baseline, so they are not in the delta.)
    r.config_set("latency-monitor-threshold", 10)
    r.execute_command("LATENCY", "RESET")
    before = commandstats(r)
    note("info")
    redis_pid = int(r.info("server")["process_id"])
    note("info")
    rcpu0 = redis_cpu(r)
    note("info")
    with open(a.ready, "w") as f:
        f.write("ready\n")
    pids = read_pids(a.pids, deadline)
    ids = [x for x in a.workers.split(",") if x]
    keys = [queue_key, ring_key] + [f"{a.prefix}:inflight:{w}" for w in ids]
    cpu0 = {p: proc_cpu(p) or 0.0 for p in pids}
    m0, t_m0 = machine_cpu(), time.time()
    self0 = proc_cpu(os.getpid())
    with open("/proc/loadavg") as f:
        loadavg = f.read().split()[0]
    sink_cpu0 = proc_cpu(a.sink_pid) if a.sink_pid else None
    sink_rchar0 = proc_rchar(a.sink_pid) if a.sink_pid else None

    # 1. The first fetch: the queue gets shorter than what was enqueued.
    t_first = None
    if a.expect > 0:
        while time.time() < deadline:
            n = r.llen(queue_key)
            note("llen")
            if n < a.expect:
                t_first = time.time()
                break
            time.sleep(0.002)
        if t_first is None:
            die("no worker fetched anything before the deadline")
    else:
        t_first = time.time()

    # 2. Until everything is final (or --duration), sampling RSS.
    rss = []
    held = []
    sample = None
    t_end = None
    last_rss = 0.0
    stop_at = t_first + a.duration if a.duration > 0 else None
    while time.time() < deadline:
        now = time.time()
        if now - last_rss >= a.rss_interval:
            last_rss = now
            rss.append([round(now - t_first, 3)] + [proc_status(p, "VmRSS") for p in pids])
        if a.slowlog and sample is None and now - t_first >= a.slowlog_after:
            sample = slowlog_sample(r, own)
        if stop_at is not None and now >= stop_at:
            t_end = now
            break
        pipe = r.pipeline(transaction=False)
        pipe.exists(*keys)
        for k in keys[2:]:
            pipe.llen(k)
        got = pipe.execute()
        left = got[0]
        note("exists")
        note("llen", len(keys) - 2)
        # Jobs the workers hold (fetched, not finished): near K x
        # --concurrency means fetching kept up and the workers were never
        # short of work.
        held.append(sum(got[1:]))
        # With --wait-file (the paced phase) the queue is empty between
        # jobs; the phase ends only after the producer has finished.
        if left == 0 and (not a.wait_file or os.path.exists(a.wait_file)):
            t_end = time.time()
            break
        if any(proc_cpu(p) is None for p in pids):
            die("a worker exited during the drain; see its log")
        time.sleep(a.poll)
    if t_end is None:
        die(f"the drain did not finish within {a.timeout:.0f} s")

    cpu = {p: (proc_cpu(p) or 0.0) - cpu0[p] for p in pids}
    m1 = machine_cpu()
    busy = m1["busy"] - m0["busy"]
    hwm = {p: proc_status(p, "VmHWM") for p in pids}
    rss_end = {p: proc_status(p, "VmRSS") for p in pids}
    after = commandstats(r)
    stalls = {}
    for ev in r.execute_command("LATENCY", "LATEST"):
        # [event, timestamp, latest ms, all-time max ms]
        name = ev[0].decode() if isinstance(ev[0], bytes) else str(ev[0])
        stalls[name] = int(ev[3])
    rcpu1 = redis_cpu(r)  # after the snapshot: not in it (nor is the snapshot's own INFO)
    sink_cpu = proc_cpu(a.sink_pid) - sink_cpu0 if sink_cpu0 is not None else 0.0
    ours = sum(cpu.values()) + (rcpu1 - rcpu0) + sink_cpu + (proc_cpu(os.getpid()) - self0)
    wall = t_end - t_m0
    out = {
        "machine": {"loadavg_before": float(loadavg), "wall_s": round(wall, 3),
                    "busy_s": round(busy, 2), "steal_s": round(m1["steal"] - m0["steal"], 2),
                    "idle_s": round(m1["idle"] - m0["idle"], 2),
                    "other_processes_s": round(max(0.0, busy - ours), 2)},
        "t_first_fetch": t_first,
        "t_end_seen": t_end,
        "workers": ids,
        "pids": pids,
        "worker_cpu_s": {str(p): round(c, 3) for p, c in cpu.items()},
        "worker_vmhwm": {str(p): v for p, v in hwm.items()},
        "worker_vmrss_end": {str(p): v for p, v in rss_end.items()},
        "rss_samples": rss,
        "held_samples": held,
        "redis_pid": redis_pid,
        "redis_cpu_s": round(rcpu1 - rcpu0, 3),
        "sink_cpu_s": round(sink_cpu, 3) if sink_cpu0 is not None else None,
        "sink_rchar": (proc_rchar(a.sink_pid) - sink_rchar0) if sink_rchar0 is not None else None,
        "commandstats": stats_delta(before, after, own),
        "own_commands": own,
        "slowlog": sample,
        "redis_stall_max_ms": stalls,
    }
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)


def percentile(sorted_vals, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, int(-(-p * len(sorted_vals) // 100)) - 1))
    return sorted_vals[k]


FINAL = ("sent", "partial", "failed")


def count_final(r, a):
    """How many of the run's n statuses are final (a missing one is not)."""
    final = 0
    for s in range(a.start, a.start + a.n, 5000):
        p = r.pipeline(transaction=False)
        for i in range(s, min(s + 5000, a.start + a.n)):
            p.hget(f"{a.prefix}:status:{a.id_prefix}{i:09d}", "state")
        final += sum(1 for st in p.execute() if st is not None and st.decode() in FINAL)
    return final


def cmd_statuses(a):
    r = connect(a.redis)
    if a.require_final:
        # Every job final before anything is read: a status read while the
        # slowest jobs are in flight would drop the tail of the latencies.
        deadline = time.time() + a.require_final
        while True:
            final = count_final(r, a)
            if final == a.n:
                break
            if time.time() >= deadline:
                die(f"{a.n - final} of {a.n} jobs ({a.id_prefix}*) are not final after {a.require_final:.0f} s")
            time.sleep(0.2)
    fields = ["state", "created_at", "sent_at", "updated_at", "accepted", "error"]
    states = {}
    lat = []
    first_created = None
    last_final = None
    missing = 0
    errors = {}
    batch = 2000
    for s in range(a.start, a.start + a.n, batch):
        p = r.pipeline(transaction=False)
        for i in range(s, min(s + batch, a.start + a.n)):
            p.hmget(f"{a.prefix}:status:{a.id_prefix}{i:09d}", fields)
        for row in p.execute():
            st, created, sent, updated, _acc, err = [x.decode() if x is not None else None for x in row]
            if st is None:
                missing += 1
                continue
            states[st] = states.get(st, 0) + 1
            if err:
                errors[err] = errors.get(err, 0) + 1
            if created:
                c = int(created)
                first_created = c if first_created is None else min(first_created, c)
            if st in ("sent", "partial", "failed") and updated:
                u = int(updated)
                last_final = u if last_final is None else max(last_final, u)
            if sent and created:
                lat.append(int(sent) - int(created))
    lat.sort()
    out = {
        "n": a.n, "missing": missing, "states": states, "errors": errors,
        "first_created_ms": first_created, "last_final_ms": last_final,
        "latency_ms": {
            "n": len(lat),
            "p50": percentile(lat, 50), "p90": percentile(lat, 90),
            "p99": percentile(lat, 99), "max": lat[-1] if lat else None,
        },
    }
    text = json.dumps(out, indent=1)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    else:
        print(text)


def callgrind_total(path):
    """Total instructions (Ir) in a callgrind output file."""
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("totals:") or line.startswith("summary:"):
                return int(line.split()[1])
    die(f"no totals line in {path}")


def annotate(path, inclusive):
    """function -> Ir from callgrind_annotate (every function, no threshold)."""
    import re
    import subprocess
    text = subprocess.run(["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}",
                           "--threshold=100", path], capture_output=True, text=True).stdout
    out = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)$", line)
        if m and "PROGRAM TOTALS" not in line:
            name = m.group(2)
            # "file:function [object]" -> "function [object basename]"
            fm = re.match(r"(?:.*?:)?([^:\s]+) \[(.*)\]$", name)
            if fm:
                name = f"{fm.group(1)} [{os.path.basename(fm.group(2))}]"
            out[name] = out.get(name, 0) + int(m.group(1).replace(",", ""))
    return out


def cmd_callgrind(a):
    i1, i2 = callgrind_total(a.file1), callgrind_total(a.file2)
    per = (i2 - i1) / (a.n2 - a.n1)
    out = {"n1": a.n1, "ir1": i1, "n2": a.n2, "ir2": i2, "ir_per_message": round(per),
           "ir_fixed": round(i1 - per * a.n1)}
    print(json.dumps(out))
    if a.per_function:
        # The same difference per function: what one message costs in each,
        # inclusive (with callees) and self.
        with open(a.per_function, "w") as f:
            for inclusive in (True, False):
                f1, f2 = annotate(a.file1, inclusive), annotate(a.file2, inclusive)
                rows = sorted(((f2.get(k, 0) - f1.get(k, 0)) / (a.n2 - a.n1), k) for k in f2)
                rows.reverse()
                f.write(f"# instructions per message by function, {'inclusive' if inclusive else 'self'} "
                        f"(Ir({a.n2}) - Ir({a.n1})) / {a.n2 - a.n1}; total {round(per):,}\n")
                for v, k in rows[:60 if inclusive else 40]:
                    if v > 0:
                        f.write(f"{v:>12,.0f} {100 * v / per:5.1f}%  {k}\n")
                f.write("\n")


def load(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def mb(b):
    return None if b is None else round(b / 1048576, 1)


def figures(d):
    """One run's figures from the JSON files run.sh left in directory d."""
    cfg = load(os.path.join(d, "config.json"), {})
    enq = load(os.path.join(d, "enqueue.json"))
    w = load(os.path.join(d, "watch.json"))
    st = load(os.path.join(d, "statuses.json"))
    lw = load(os.path.join(d, "watch-latency.json"))
    lst = load(os.path.join(d, "statuses-latency.json"))
    lenq = load(os.path.join(d, "enqueue-latency.json"))
    ceil = load(os.path.join(d, "ceiling.json"))
    cg = load(os.path.join(d, "callgrind.json"))
    f = {"command": cfg.get("command"), "profile": cfg.get("profile"), "k": cfg.get("k"),
         "concurrency": cfg.get("concurrency"), "n": cfg.get("n"), "commit": cfg.get("commit")}
    if enq:
        f["enqueue_rate"] = round(enq["rate"])
        if "cpu_s" in enq and enq["n"]:
            f["enqueue_cpu_per_1000"] = {"producer": round(enq["cpu_s"] / enq["n"] * 1000, 3)}
            if enq.get("redis_cpu_s") is not None:
                f["enqueue_cpu_per_1000"]["redis"] = round(enq["redis_cpu_s"] / enq["n"] * 1000, 3)
        f["payload_bytes"] = enq["payload_bytes"]
        f["recipients"] = enq["recipients"]
    if w and st:
        delivered = sum(st["states"].get(s, 0) for s in ("sent", "partial"))
        f["delivered"] = delivered
        f["states"] = st["states"]
        if st["last_final_ms"]:
            window = st["last_final_ms"] / 1000 - w["t_first_fetch"]
            f["drain_seconds"] = round(window, 3)
            f["drain_rate"] = round(delivered / window) if window > 0 else None
        cpu = sum(w["worker_cpu_s"].values())
        f["worker_cpu_s"] = round(cpu, 2)
        f["cpu_s_per_1000"] = round(cpu / delivered * 1000, 3) if delivered else None
        f["redis_cpu_s_per_1000"] = round(w["redis_cpu_s"] / delivered * 1000, 3) if delivered else None
        if w.get("sink_cpu_s") is not None and delivered:
            f["sink_cpu_s_per_1000"] = round(w["sink_cpu_s"] / delivered * 1000, 3)
        if w.get("sink_rchar") and delivered:
            f["smtp_bytes_per_message"] = round(w["sink_rchar"] / delivered)
        f["peak_rss_mb"] = {w_id: mb(w["worker_vmhwm"][str(p)]) for w_id, p in zip(w["workers"], w["pids"])}
        cs = w["commandstats"]
        total = sum(v["calls"] for v in cs.values())
        top = sum(v["calls"] for k, v in cs.items() if k in TOP_LEVEL_ONLY)
        if delivered:
            f["redis_cmds_per_msg_top"] = round(top / delivered, 3)
            f["redis_cmds_per_msg_total"] = round(total / delivered, 3)
            f["redis_top_level"] = {k: round(v["calls"] / delivered, 3) for k, v in sorted(cs.items())
                                    if k in TOP_LEVEL_ONLY}
            f["redis_in_scripts"] = {k: round(v["calls"] / delivered, 3) for k, v in sorted(cs.items())
                                     if k not in TOP_LEVEL_ONLY}
            # A script's time includes the commands it runs: sum the top level only.
            f["redis_usec_per_msg"] = round(
                sum(v["usec"] for k, v in cs.items() if k in TOP_LEVEL_ONLY) / delivered, 1)
            # Commands inside scripts have their own usec; what EVALSHA took
            # beyond them is the Lua VM and argument handling.
            inner = sum(v["usec"] for k, v in cs.items() if k not in TOP_LEVEL_ONLY)
            ev = sum(v["usec"] for k, v in cs.items() if k in ("evalsha", "eval"))
            f["redis_usec_split"] = {"inside_scripts": round(inner / delivered, 1),
                                     "script_overhead": round((ev - inner) / delivered, 1)}
        if w.get("redis_stall_max_ms") is not None:
            f["redis_longest_command_ms"] = w["redis_stall_max_ms"].get("command", "< 10")
        if w.get("slowlog"):
            f["redis_usec_by_script"] = {k[len("evalsha "):]: v["usec_mean"]
                                         for k, v in sorted(w["slowlog"]["by_kind"].items())
                                         if k.startswith("evalsha ")}
        if w.get("machine"):
            m = dict(w["machine"])
            cpus = cfg.get("host_cpus") or os.cpu_count()
            # Share of the machine's CPU time that was not ours to use: the
            # hypervisor's steal plus other processes. Above ~15% the run's
            # rates say more about the neighbours than about relayq.
            if m.get("wall_s"):
                m["noise"] = round((m["steal_s"] + m["other_processes_s"]) / (cpus * m["wall_s"]), 2)
                f["noise"] = m["noise"]
            f["machine"] = m
        f["backlog_latency_ms"] = st["latency_ms"]
        if w.get("rss_samples"):
            f["rss_samples"] = w["rss_samples"]
        held = w.get("held_samples") or []
        if len(held) >= 5:
            # the middle 80% of the drain in time (not the start or the tail)
            mid = sorted(held[len(held) // 10: len(held) - len(held) // 10] or held)
            f["jobs_held"] = {"p10": percentile(mid, 10), "median": percentile(mid, 50),
                              "samples": len(held)}
    if lst and lw is not None:
        f["latency_rate"] = round(lenq["target_rate"]) if lenq else None
        f["latency_achieved_rate"] = round(lenq["rate"]) if lenq else None
        f["latency_ms"] = lst["latency_ms"]
        f["latency_states"] = lst["states"]
    if ceil:
        f["smtp_ceiling"] = round(ceil["rate"])
        f["smtp_ceiling_cmd"] = ceil["command"]
        if f.get("drain_rate"):
            f["drain_fraction_of_ceiling"] = round(f["drain_rate"] / ceil["rate"], 3)
    rounds(d, f)
    ab_costs(d, f)
    one = load(os.path.join(d, "enqueue-one.json"))
    if one:
        f["enqueue_one_rate"] = round(one["rate"])
        f["enqueue_one_n"] = one["n"]
    if cg:
        f["callgrind"] = cg
    bl = load(os.path.join(d, "backlog.json"))
    if bl:
        f["backlog"] = bl
    return f


def spread(vals, digits=0):
    """"median (min-max) over N" of a list, as a dict for the JSON."""
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    r = (lambda x: round(x, digits)) if digits else round
    return {"median": r(statistics.median(vals)), "min": r(min(vals)), "max": r(max(vals)), "n": len(vals),
            "values": [r(v) for v in vals]}


def rounds(d, f):
    """The interleaved rounds (drain A, SMTP ceiling B, A, B, ...): round 1
    is watch.json / statuses.json / ceiling.json, round k watch-rK.json and
    so on. Sets the headline drain_rate, smtp_ceiling and their ratio to the
    medians, with every round's value and the range."""
    drains, ceilings, ratios, sink, noise = [], [], [], [], []
    cpus = (load(os.path.join(d, "config.json"), {}) or {}).get("host_cpus") or os.cpu_count()
    for k in range(1, 100):
        sfx = "" if k == 1 else f"-r{k}"
        w = load(os.path.join(d, f"watch{sfx}.json"))
        st = load(os.path.join(d, f"statuses{sfx}.json"))
        if not (w and st and st.get("last_final_ms")):
            break
        delivered = sum(st["states"].get(x, 0) for x in ("sent", "partial"))
        window = st["last_final_ms"] / 1000 - w["t_first_fetch"]
        drain = delivered / window if window > 0 else None
        m = w.get("machine") or {}
        if m.get("wall_s"):
            noise.append((m["steal_s"] + m["other_processes_s"]) / (cpus * m["wall_s"]))
        drains.append(drain)
        ceil = load(os.path.join(d, f"ceiling{sfx}.json"))
        ceilings.append(ceil["rate"] if ceil else None)
        ratios.append(drain / ceil["rate"] if ceil and drain else None)
        chk = load(os.path.join(d, f"sink{sfx}.json"))
        if chk:
            sink.append(chk)
    if sink:
        f["sink_check"] = "; ".join(f"round {i + 1}: {c['sent']} sent statuses, sink counted "
                                    f"{c['sink_messages']} (N {c['n']})" for i, c in enumerate(sink))
    if len(drains) < 2:
        return
    f["rounds"] = len(drains)
    if noise:
        f["noise_rounds"] = spread(noise, 2)
    f["drain_rate_rounds"] = spread(drains)
    f["drain_rate"] = f["drain_rate_rounds"]["median"]
    if any(c is not None for c in ceilings):
        f["smtp_ceiling_rounds"] = spread(ceilings)
        f["smtp_ceiling"] = f["smtp_ceiling_rounds"]["median"]
        f["drain_ceiling_ratio_rounds"] = spread(ratios, 3)
        f["drain_fraction_of_ceiling"] = f["drain_ceiling_ratio_rounds"]["median"]


def ab_costs(d, f):
    """What the drain (A) and the ceiling (B) each cost the machine per
    1,000 messages, medians over the rounds: A's workers + redis-server +
    smtp-sink against B's smtp-source + smtp-sink, and the SMTP sessions
    each opened. With everything CPU-bound on the same cores, the ratio of
    the two CPU sums is the drain/ceiling fraction those cores allow."""
    a_cpu, b_src, b_sink, a_sess, b_sess, a_busy, b_busy, b_bytes = [], [], [], [], [], [], [], []
    cpus = (load(os.path.join(d, "config.json"), {}) or {}).get("host_cpus") or os.cpu_count()
    for k in range(1, 100):
        sfx = "" if k == 1 else f"-r{k}"
        w = load(os.path.join(d, f"watch{sfx}.json"))
        chk = load(os.path.join(d, f"sink{sfx}.json"))
        ceil = load(os.path.join(d, f"ceiling{sfx}.json"))
        if not (w and chk):
            break
        n = chk["n"] / 1000
        a_cpu.append((sum(w["worker_cpu_s"].values()) + w["redis_cpu_s"] + (w.get("sink_cpu_s") or 0)) / n)
        m = w.get("machine") or {}
        if m.get("wall_s"):
            # our three processes' share of all the cores during the drain
            a_busy.append(a_cpu[-1] * n / (cpus * m["wall_s"]))
        if chk.get("sink_sessions") is not None:
            a_sess.append(chk["sink_sessions"] / n)
        if ceil and ceil.get("source_cpu_s") is not None:
            m = ceil["messages"] / 1000
            b_src.append(ceil["source_cpu_s"] / m)
            b_sink.append(ceil["sink_cpu_s"] / m)
            b_sess.append(ceil["sink_sessions"] / m)
            b_busy.append((ceil["source_cpu_s"] + ceil["sink_cpu_s"]) / (cpus * ceil["seconds"]))
            if ceil.get("sink_bytes_per_msg"):
                b_bytes.append(ceil["sink_bytes_per_msg"])
    if a_sess:
        f["smtp_sessions_per_1000"] = {"drain": round(statistics.median(a_sess), 1)}
        if b_sess:
            f["smtp_sessions_per_1000"]["ceiling"] = round(statistics.median(b_sess), 1)
    if b_src:
        src, sink, a = statistics.median(b_src), statistics.median(b_sink), statistics.median(a_cpu)
        f["ceiling_cpu_s_per_1000"] = {"smtp_source": round(src, 3), "smtp_sink": round(sink, 3),
                                       "sum": round(src + sink, 3)}
        f["cpu_sum_ratio"] = {"ceiling_sum_over_drain_sum": round((src + sink) / a, 3),
                              "drain_sum": round(a, 3)}
    if b_bytes:
        # against smtp_bytes_per_message (A): the two phases move the same bytes
        f["ceiling_bytes_per_message"] = round(statistics.median(b_bytes))
    if a_busy and b_busy:
        # 1.0: the phase's own processes kept every core busy (CPU-bound);
        # less: they waited on each other (round trips) or on neighbours.
        f["cores_used_share"] = {"drain": round(statistics.median(a_busy), 2),
                                 "ceiling": round(statistics.median(b_busy), 2)}


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.3f}".rstrip("0").rstrip(".")
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, dict) and set(v) == {"median", "min", "max", "n", "values"}:
        return f"median {fmt(v['median'])} (range {fmt(v['min'])} to {fmt(v['max'])}; " \
               f"{' / '.join(fmt(x) for x in v['values'])})"
    if isinstance(v, dict):
        return ", ".join(f"{k} {fmt(x)}" for k, x in v.items())
    return str(v)


ROWS = [
    ("enqueue_rate", "enqueue rate, jobs/s (relayq_enqueue_many, batched: up to 1,000 jobs per call)"),
    ("enqueue_one_rate", "enqueue rate, jobs/s (relayq_enqueue, one job and one round trip per call)"),
    ("enqueue_cpu_per_1000", "enqueue CPU s per 1,000 jobs"),
    ("payload_bytes", "payload per job, bytes (msgpack)"),
    ("delivered", "messages delivered (sent)"),
    ("states", "final states"),
    ("drain_seconds", "drain time, s (first fetch -> last final status)"),
    ("drain_rate", "drain rate, msg/s (median of the rounds)"),
    ("smtp_ceiling", "SMTP ceiling, msg/s (smtp-source -d -s 20 into the same sink; median)"),
    ("drain_fraction_of_ceiling", "drain rate / SMTP ceiling (median of the per-round ratios)"),
    ("drain_rate_rounds", "drain rate per round (A), msg/s"),
    ("smtp_ceiling_rounds", "SMTP ceiling per round (B, right after each A), msg/s"),
    ("drain_ceiling_ratio_rounds", "drain / ceiling per round"),
    ("noise_rounds", "machine noise per drain round (share of CPU others took)"),
    ("sink_check", "delivered = sink's own count = N"),
    ("smtp_bytes_per_message", "bytes the sink read per message (SMTP dialogue + message)"),
    ("cpu_s_per_1000", "worker CPU s per 1,000 messages (utime+stime, all workers)"),
    ("redis_cpu_s_per_1000", "redis-server CPU s per 1,000 messages"),
    ("sink_cpu_s_per_1000", "smtp-sink CPU s per 1,000 messages"),
    ("ceiling_bytes_per_message", "bytes the sink read per message in the ceiling (B)"),
    ("ceiling_cpu_s_per_1000", "SMTP ceiling (B) CPU s per 1,000 messages (median)"),
    ("cpu_sum_ratio", "CPU per message, B's sum / A's sum (workers+redis+sink)"),
    ("cores_used_share", "share of all cores the phase's own processes used (A: workers+redis+sink)"),
    ("smtp_sessions_per_1000", "SMTP sessions ended during the phase, per 1,000 messages"),
    ("jobs_held", "jobs the workers held during the drain (LLEN inflight every 20 ms)"),
    ("peak_rss_mb", "peak RSS per worker, MB (VmHWM)"),
    ("redis_cmds_per_msg_top", "Redis commands per message, top-level calls"),
    ("redis_cmds_per_msg_total", "Redis commands per message, incl. those inside scripts"),
    ("redis_top_level", "  top-level, per message"),
    ("redis_in_scripts", "  inside scripts (and heartbeat), per message"),
    ("redis_usec_per_msg", "Redis time per message, us (commandstats, top-level)"),
    ("redis_usec_split", "  of which: commands run by scripts / Lua + call overhead, us"),
    ("redis_usec_by_script", "Redis time per script call, us (SLOWLOG sample; inflated, see README)"),
    ("redis_longest_command_ms", "longest single Redis command during the drain, ms (LATENCY LATEST)"),
    ("backlog_latency_ms", "enqueue-to-accepted of the backlog run, ms (queue wait included)"),
    ("latency_rate", "paced phase: target enqueue rate, jobs/s"),
    ("latency_achieved_rate", "paced phase: achieved enqueue rate, jobs/s"),
    ("latency_ms", "paced phase: enqueue-to-accepted latency, ms"),
    ("latency_states", "paced phase: final states"),
    ("machine", "machine during the drain (CPU s; steal = hypervisor)"),
]


def print_figures(f, out=sys.stdout):
    print(f"relayq benchmark: profile {f.get('profile')}, {f.get('k')} worker(s), "
          f"--concurrency {f.get('concurrency')}, N {fmt(f.get('n'))}, commit {f.get('commit')}", file=out)
    print(f"command: {f.get('command')}", file=out)
    width = max(len(t) for _, t in ROWS)
    for key, title in ROWS:
        if key in f:
            print(f"  {title:<{width}}  {fmt(f[key])}", file=out)
    if f.get("smtp_ceiling_cmd"):
        print(f"  ceiling command: {f['smtp_ceiling_cmd']}", file=out)
    if f.get("callgrind"):
        cg = f["callgrind"]
        print(f"  callgrind: {fmt(cg['ir_per_message'])} instructions per message "
              f"(({fmt(cg['ir2'])} - {fmt(cg['ir1'])}) / ({cg['n2']} - {cg['n1']}) messages; "
              f"fixed cost {fmt(cg['ir_fixed'])})", file=out)
    if f.get("backlog"):
        b = f["backlog"]
        print(f"  backlog: {fmt(b.get('backlog'))} jobs in Redis, --concurrency {b.get('concurrency')}, "
              f"{b.get('seconds')} s: RSS MB first {b.get('rss_first_mb')}, after warm-up "
              f"{b.get('rss_after_warmup_mb')}, max {b.get('rss_max_mb')}, "
              f"last {b.get('rss_last_mb')} (growth after warm-up {b.get('rss_growth_after_warmup_mb')}); "
              f"VmHWM {b.get('vmhwm_mb')}; "
              f"delivered {fmt(b.get('delivered'))} ({fmt(b.get('rate'))} msg/s)", file=out)


def cmd_summarize(a):
    f = figures(a.dir)
    with open(os.path.join(a.dir, "figures.json"), "w") as fh:
        json.dump(f, fh, indent=1)
    print_figures(f)


def cmd_backlog(a):
    """RSS flatness from a watch.json taken with --duration."""
    w = load(a.watch)
    samples = [s[1] for s in w["rss_samples"] if s[1]]
    # After a warm-up (a tenth of the run, at least 5 s) every buffer the
    # worker needs at this concurrency exists; growth after it is the leak
    # or backlog-dependence the check is after.
    warm = [s[1] for s in w["rss_samples"] if s[1] and s[0] >= max(5.0, a.seconds / 10)]
    out = {"backlog": a.backlog, "concurrency": a.concurrency, "seconds": a.seconds,
           "rss_first_mb": mb(samples[0]) if samples else None,
           "rss_after_warmup_mb": mb(warm[0]) if warm else None,
           "rss_growth_after_warmup_mb": mb(warm[-1] - warm[0]) if warm else None,
           "rss_max_mb": mb(max(samples)) if samples else None,
           "rss_last_mb": mb(samples[-1]) if samples else None,
           "vmhwm_mb": mb(list(w["worker_vmhwm"].values())[0]),
           "delivered": a.delivered, "rate": round(a.delivered / a.seconds) if a.seconds else None,
           "rss_series_mb": [[s[0], mb(s[1])] for s in w["rss_samples"]]}
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)


def cmd_table(a):
    """Runs side by side: one column per run directory."""
    runs = [figures(d) for d in a.dirs]
    for f, d in zip(runs, a.dirs):
        print(f"# {os.path.basename(d)}: {f.get('command')}")
        print_figures(f)
        print()
    # A compact cross-run view of the headline numbers.
    head = ["profile", "k", "enqueue_rate", "enqueue_one_rate", "drain_rate", "smtp_ceiling",
            "drain_fraction_of_ceiling", "cpu_s_per_1000", "peak_rss_mb", "redis_cmds_per_msg_top",
            "redis_cmds_per_msg_total", "noise"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for f in runs:
        print("| " + " | ".join(fmt(f.get(k)) for k in head) + " |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("port")
    rc = sub.add_parser("rcpu")
    rc.add_argument("--redis", required=True)
    w = sub.add_parser("watch")
    w.add_argument("--redis", required=True)
    w.add_argument("--prefix", default="relayq")
    w.add_argument("--queue", default="default")
    w.add_argument("--workers", required=True, help="comma list of worker ids")
    w.add_argument("--pids", required=True, help="file run.sh writes the worker pids to")
    w.add_argument("--ready", required=True, help="file written once the baseline is taken")
    w.add_argument("--sink-pid", type=int, default=0)
    w.add_argument("--expect", type=int, default=0, help="jobs in the queue before the workers start")
    w.add_argument("--timeout", type=float, default=600)
    w.add_argument("--duration", type=float, default=0, help="stop after this long (backlog mode)")
    w.add_argument("--poll", type=float, default=0.02)
    w.add_argument("--rss-interval", type=float, default=0.5)
    w.add_argument("--slowlog", action="store_true")
    w.add_argument("--slowlog-after", type=float, default=1.0)
    w.add_argument("--out", required=True)
    w.add_argument("--wait-file", help="do not end before this file exists (the paced producer is done)")
    s = sub.add_parser("statuses")
    s.add_argument("--redis", required=True)
    s.add_argument("--prefix", default="relayq")
    s.add_argument("--id-prefix", required=True)
    s.add_argument("--start", type=int, default=0)
    s.add_argument("-n", type=int, required=True)
    s.add_argument("--out")
    s.add_argument("--require-final", type=float, default=0,
                   help="first wait up to this many seconds for every status to be final (else exit 1)")
    c = sub.add_parser("callgrind")
    c.add_argument("--file1", required=True)
    c.add_argument("--n1", type=int, required=True)
    c.add_argument("--file2", required=True)
    c.add_argument("--n2", type=int, required=True)
    c.add_argument("--per-function", help="write instructions per message by function here")
    m = sub.add_parser("summarize")
    m.add_argument("--dir", required=True)
    b = sub.add_parser("backlog")
    b.add_argument("--watch", required=True)
    b.add_argument("--backlog", type=int, required=True)
    b.add_argument("--concurrency", type=int, required=True)
    b.add_argument("--seconds", type=float, required=True)
    b.add_argument("--delivered", type=int, required=True)
    b.add_argument("--out", required=True)
    t = sub.add_parser("table")
    t.add_argument("dirs", nargs="+")
    a = p.parse_args()
    {"port": cmd_port, "watch": cmd_watch, "statuses": cmd_statuses, "callgrind": cmd_callgrind,
     "summarize": cmd_summarize, "rcpu": cmd_rcpu, "backlog": cmd_backlog, "table": cmd_table}[a.cmd](a)


if __name__ == "__main__":
    main()
