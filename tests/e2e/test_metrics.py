"""Operations endpoints end to end: /metrics (parsed by a strict Prometheus
text-format 0.0.4 parser below, since there is no prometheus_client here),
/healthz, /readyz while Redis goes away and comes back, the HTTP server's
bounds (methods, sizes, timeouts, connection cap), docs/metrics.md against
what is really exposed, and JSON log lines. Real redis-server, aiosmtpd and
worker."""

import json
import math
import os
import random
import re
import socket
import time

import msgpack

import harness
from harness import (ROOT, RedisServer, SmtpServer, Worker, free_port, push_job, wait_for,
                     wait_status)

FAST = ["--retry-base-ms", "200", "--retry-max-ms", "400", "--platform-from", "no-reply@platform.example"]
EXPOSITION_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def job(jid, tenant="acme", to=("a@dest.example",), **kw):
    j = {"v": 1, "id": jid, "tenant": tenant, "to": list(to), "subject": "s", "text": "t"}
    j.update(kw)
    return j


# ---- a raw HTTP/1.1 client: one request, read to EOF -------------------------------

def http(port, path="/metrics", method="GET", raw=None, timeout=10.0):
    """Sends one request (or RAW bytes) and reads until the server closes.

    Returns (status, {lower-case header: value}, body bytes). The server
    must close the connection itself (Connection: close); a hang is an
    AssertionError via the socket timeout.
    """
    if raw is None:
        raw = ("%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: relayq-test\r\n\r\n"
               % (method, path, port)).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, "no end of head in response: %r" % data[:200]
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.1 (\d{3}) [^\r\n]+$", lines[0])
    assert m, "bad status line %r" % lines[0]
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    assert headers.get("connection") == "close", headers
    if method != "HEAD":
        assert int(headers["content-length"]) == len(body), (headers, len(body))
    return int(m.group(1)), headers, body


def status_of(port, path):
    try:
        return http(port, path, timeout=3)[0]
    except OSError:
        return None


# ---- a strict parser for the Prometheus text format 0.0.4 --------------------------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
SAMPLE_RE = re.compile(r"^(%s)(?:\{(.*)\})? (\S+)$" % NAME)
LABEL_RE = re.compile(r'(%s)="((?:[^"\\\n]|\\\\|\\"|\\n)*)"(,|$)' % LABEL)
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def parse_value(s):
    if s in ("+Inf", "-Inf", "NaN"):
        return float(s.replace("Inf", "inf").replace("NaN", "nan"))
    assert re.match(r"^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$", s), "bad sample value %r" % s
    return float(s)


def parse_labels(text):
    labels, pos = {}, 0
    while pos < len(text):
        m = LABEL_RE.match(text, pos)
        assert m, "bad label set at %r" % text[pos:]
        name, value = m.group(1), m.group(2)
        value = re.sub(r"\\(.)", lambda e: {"n": "\n"}.get(e.group(1), e.group(1)), value)
        assert name not in labels, "label %s twice in {%s}" % (name, text)
        labels[name] = value
        pos = m.end()
        # A comma must be followed by another label; no trailing comma.
        assert (m.group(3) == ",") == (pos < len(text)), "bad label set {%s}" % text
    return labels


class Exposition:
    """families: {name: {"type", "help", "samples": [(name, labels, value)]}}."""

    def __init__(self, text):
        assert text.endswith("\n"), "exposition must end with a newline"
        self.families = {}
        seen_series = set()
        current = None          # family whose samples are being read
        closed = set()          # families whose samples ended (must not come back)
        for n, line in enumerate(text[:-1].split("\n"), 1):
            assert line, "empty line %d" % n
            if line.startswith("#"):
                parts = line.split(" ", 3)
                if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                    assert re.match("^%s$" % NAME, parts[2]), line
                    fam = self.families.setdefault(parts[2], {"type": None, "help": None,
                                                              "samples": []})
                    key = parts[1].lower()
                    assert fam[key] is None, "second %s for %s" % (parts[1], parts[2])
                    assert not fam["samples"], "%s after samples of %s" % (parts[1], parts[2])
                    if key == "type":
                        assert len(parts) == 4 and parts[3] in TYPES, line
                        fam["type"] = parts[3]
                    else:
                        assert len(parts) == 4 and parts[3], "empty HELP: %s" % line
                        fam["help"] = parts[3]
                continue
            m = SAMPLE_RE.match(line)
            assert m, "bad sample line %d: %r" % (n, line)
            name, labels, value = m.group(1), parse_labels(m.group(2) or ""), parse_value(m.group(3))
            fam_name = self._family_of(name)
            assert fam_name, "sample %s has no # TYPE" % name
            if current != fam_name:
                assert fam_name not in closed, "samples of %s are not contiguous" % fam_name
                if current:
                    closed.add(current)
                current = fam_name
            series = (name, tuple(sorted(labels.items())))
            assert series not in seen_series, "duplicate series %r" % (series,)
            seen_series.add(series)
            self.families[fam_name]["samples"].append((name, labels, value))
        for fam_name, fam in self.families.items():
            assert fam["type"] and fam["help"], "%s lacks TYPE or HELP" % fam_name
            if fam["type"] == "counter":
                for name, labels, value in fam["samples"]:
                    assert value >= 0 and not math.isnan(value), (name, labels, value)
            if fam["type"] == "histogram":
                self._check_histogram(fam_name, fam["samples"])

    def _family_of(self, name):
        if name in self.families:
            return name
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[:-len(suffix)] if name.endswith(suffix) else None
            if base and self.families.get(base, {}).get("type") == "histogram":
                return base
        return None

    @staticmethod
    def _check_histogram(fam_name, samples):
        groups = {}
        for name, labels, value in samples:
            rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
            g = groups.setdefault(rest, {"buckets": [], "sum": None, "count": None})
            if name == fam_name + "_bucket":
                g["buckets"].append((parse_value(labels["le"]), value))
            elif name == fam_name + "_sum":
                g["sum"] = value
            elif name == fam_name + "_count":
                g["count"] = value
            else:
                raise AssertionError("%s in histogram %s" % (name, fam_name))
        for rest, g in groups.items():
            les = [le for le, _ in g["buckets"]]
            assert les == sorted(les) and len(set(les)) == len(les), (fam_name, rest, les)
            assert les and les[-1] == math.inf, "%s%r lacks le=+Inf" % (fam_name, rest)
            counts = [c for _, c in g["buckets"]]
            assert counts == sorted(counts), "%s%r buckets not cumulative: %r" % (fam_name, rest, counts)
            assert g["count"] is not None and g["sum"] is not None, (fam_name, rest)
            assert counts[-1] == g["count"], "%s%r +Inf %s != _count %s" % (
                fam_name, rest, counts[-1], g["count"])

    def value(self, name, **labels):
        """The value of the sample NAME with exactly LABELS; None when absent."""
        want = {k: str(x) for k, x in labels.items()}
        found = [v for fam in self.families.values() for n, l, v in fam["samples"]
                 if n == name and l == want]
        assert len(found) <= 1, "%s%r matches %d samples" % (name, labels, len(found))
        return found[0] if found else None


def scrape(port):
    code, headers, body = http(port, "/metrics")
    assert code == 200, (code, body[:200])
    assert headers["content-type"] == EXPOSITION_TYPE, headers
    return Exposition(body.decode("utf-8"))


def metrics_worker(r, smtp=None, args=(), **kw):
    port = free_port()
    w = Worker(r, platform_smtp=smtp, args=FAST + ["--metrics", "127.0.0.1:%d" % port] + list(args), **kw)
    w.metrics_port = port
    wait_for(lambda: status_of(port, "/readyz") == 200 or w._dead(), 15, what="/readyz 200")
    return w


# ---- tests ----------------------------------------------------------------------

def test_parser_rejects_broken_expositions():
    # The checker must be able to fail: feed it what a broken server could send.
    good = ("# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 2\n"
            "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
            "h_sum 3.5\nh_count 2\n")
    e = Exposition(good)
    assert e.value("a_total", x=1) == 2 and e.value("h_count") == 2
    broken = [
        good.replace("h_count 2", "h_count 3"),                       # +Inf != count
        good.replace('h_bucket{le="1"} 1', 'h_bucket{le="1"} 3'),     # not cumulative
        good.replace("# TYPE a_total counter\n", ""),                 # no TYPE
        good + "a_total{x=\"1\"} 2\n",                                # duplicate / not contiguous
        good.replace('{x="1"}', '{x="1",}'),                          # trailing comma
        good.replace('{x="1"}', '{x=1}'),                             # unquoted value
        good.replace(" 2\n", " two\n", 1),                            # bad value
        good[:-1],                                                    # no final newline
        good.replace("a_total{x=\"1\"} 2", "a_total{x=\"1\"} -1"),    # negative counter
    ]
    for text in broken:
        try:
            Exposition(text)
        except AssertionError:
            continue
        raise AssertionError("parser accepted:\n%s" % text)


def test_counters_move_with_sends():
    def rcpt_reply(address, state):
        return "550 5.1.1 No such user here" if address.startswith("nobody") else None

    with RedisServer() as r, SmtpServer(rcpt_reply=rcpt_reply) as smtp, \
            metrics_worker(r, smtp, args=["--metrics-tenants", "2"]) as w:
        port = w.metrics_port
        before = scrape(port)
        for fam in ("relayq_jobs_total", "relayq_attempts_total", "relayq_parked_total",
                    "relayq_transaction_seconds", "relayq_enqueue_to_final_seconds",
                    "relayq_inflight", "relayq_fetch_batch_size", "relayq_redis_connected",
                    "relayq_redis_reconnects_total", "relayq_tenant_jobs_total",
                    "relayq_build_info", "process_resident_memory_bytes",
                    "process_cpu_seconds_total", "process_start_time_seconds"):
            assert fam in before.families, fam
        assert before.value("relayq_jobs_total", state="sent", route="platform") == 0
        assert before.value("relayq_redis_connected") == 1
        assert before.value("relayq_inflight") == 0
        version = [l["version"] for _, l, _ in before.families["relayq_build_info"]["samples"]]
        assert version and re.match(r"^\d+\.\d+\.\d+", version[0]), version
        assert before.value("process_resident_memory_bytes") > 1 << 20
        assert abs(before.value("process_start_time_seconds") - time.time()) < 120
        cpu0 = before.value("process_cpu_seconds_total")

        # Three tenants with --metrics-tenants 2: the third counts as _other.
        jobs = [job("m1", "acme"), job("m2", "acme"), job("m3", "globex"), job("m4", "initech"),
                job("m5", "acme", to=["nobody@dest.example"])]
        # The first two tenants to finish a job get their own series, and
        # the scheduler serves tenants round-robin, not in push order: push
        # one tenant at a time so acme and globex are those two.
        states = {}
        for tenant in ("acme", "globex", "initech"):
            mine = [j for j in jobs if j["tenant"] == tenant]
            for j in mine:
                push_job(r, j)
            states.update({j["id"]: wait_status(r, j["id"])["state"] for j in mine})
        assert states == {"m1": "sent", "m2": "sent", "m3": "sent", "m4": "sent", "m5": "failed"}, states

        # Counters are updated before the FINISH write, so they are final now.
        after = scrape(port)
        assert after.value("relayq_jobs_total", state="sent", route="platform") == 4
        assert after.value("relayq_jobs_total", state="failed", route="platform") == 1
        assert after.value("relayq_job_errors_total", state="failed", error="recipient_rejected") == 1
        # m5's only recipient is refused at RCPT, so its transaction never
        # reaches the final dot: an error (docs/metrics.md), the other four ok.
        ok = after.value("relayq_attempts_total", route="platform", result="ok")
        err = after.value("relayq_attempts_total", route="platform", result="error")
        assert (ok, err) == (4, 1), (ok, err)
        assert after.value("relayq_transaction_seconds_count", route="platform") == 5
        assert 0 < after.value("relayq_transaction_seconds_sum", route="platform") < 60
        assert after.value("relayq_transaction_seconds_bucket", route="platform", le="+Inf") == 5
        assert after.value("relayq_enqueue_to_final_seconds_count", state="sent") == 4
        assert after.value("relayq_enqueue_to_final_seconds_count", state="failed") == 1
        # Every fetch is observed with the jobs it returned: a batch FETCH call
        # (0 to --fetch-batch jobs) or an idle worker's BLMOVE (1), so the five
        # jobs sum to exactly 5 however they were taken.
        assert after.value("relayq_fetch_batch_size_count") >= 1
        assert after.value("relayq_fetch_batch_size_sum") == 5
        assert after.value("relayq_tenant_jobs_total", tenant="acme", state="sent") == 2
        assert after.value("relayq_tenant_jobs_total", tenant="acme", state="failed") == 1
        tenants = {l["tenant"] for _, l, _ in after.families["relayq_tenant_jobs_total"]["samples"]}
        assert len(tenants - {"_other"}) == 2 and "_other" in tenants, tenants
        other = after.value("relayq_tenant_jobs_total", tenant="_other", state="sent")
        assert other == 1, other
        total_sent = sum(v for _, l, v in after.families["relayq_tenant_jobs_total"]["samples"]
                         if l["state"] == "sent")
        assert total_sent == 4
        assert after.value("relayq_inflight") == 0
        assert after.value("process_cpu_seconds_total") >= cpu0
        # Every counter only went up.
        for fam_name, fam in before.families.items():
            if fam["type"] not in ("counter", "histogram"):
                continue
            for name, labels, v in fam["samples"]:
                v2 = after.value(name, **labels)
                assert v2 is not None and v2 >= v, (name, labels, v, v2)


def test_retry_and_deferral_reasons():
    calls = {"n": 0}

    def rcpt_reply(address, state):
        calls["n"] += 1
        return "451 4.7.1 Greylisted, try again later" if calls["n"] == 1 else None

    with RedisServer() as r, SmtpServer(rcpt_reply=rcpt_reply) as smtp, metrics_worker(r, smtp) as w:
        push_job(r, job("g1"))
        push_job(r, job("nb1", not_before=int(time.time() * 1000) + 3000))
        assert wait_status(r, "g1")["state"] == "sent"
        assert wait_status(r, "nb1")["state"] == "sent"
        e = scrape(w.metrics_port)
        retries = sum(v for _, l, v in e.families["relayq_parked_total"]["samples"]
                      if l["state"] == "retry")
        assert retries == 1, e.families["relayq_parked_total"]["samples"]
        assert e.value("relayq_parked_total", state="deferred", reason="not_before") == 1
        assert e.value("relayq_jobs_total", state="sent", route="platform") == 2


def test_queue_depth_counts_tenant_lists_delayed_and_dead():
    with RedisServer() as r, SmtpServer(delay=12) as smtp:
        # Before the worker starts: 60 jobs, one far-future delayed job, two dead letters.
        n = 60
        for i in range(n):
            push_job(r, job("d%d" % i))
        later = job("later", not_before=int(time.time() * 1000) + 3600 * 1000)
        r.client.zadd(r.key("delayed"), {msgpack.packb(later, use_bin_type=True):
                                         later["not_before"]})
        r.client.lpush(r.key("dead"), b"junk-1", b"junk-2")
        # --concurrency 1, --fetch-batch 1: one job sending (its DATA takes
        # 12 s) and the tenant's line full of waiting jobs, so FETCH sorts
        # the rest of the backlog into the tenant's own list (P:tq).
        with metrics_worker(r, smtp, args=["--concurrency", "1", "--fetch-batch", "1",
                                           "--grace-period-s", "1"]) as w:
            tq = r.key("tq", "default", "acme")
            wait_for(lambda: r.client.llen(tq) > 0, timeout=8, what="FETCH sorting the backlog")

            def ready_in_redis():
                return r.client.llen(r.key("queue", "default")) + r.client.llen(tq)

            # The gauge counts the shared list and the tenant lists: it
            # settles on what Redis holds (sampled, so poll for it).
            e = wait_for(lambda: (lambda x: x if x.value("relayq_queue_depth", queue="default")
                                  == ready_in_redis() else None)(scrape(w.metrics_port)),
                         timeout=25, what="relayq_queue_depth == queue + tenant lists")
            held = r.client.llen(r.key("inflight", w.id))
            done = smtp.messages_count()  # a 12 s DATA may have ended meanwhile
            assert 0 < e.value("relayq_queue_depth", queue="default") < n
            assert e.value("relayq_queue_depth", queue="default") + held + done in (n, n - 1), \
                (e.value("relayq_queue_depth", queue="default"), held, done)
            assert e.value("relayq_delayed_jobs") == 1
            assert e.value("relayq_dead_jobs") == 2
            assert w.stop() == 0


def test_readyz_follows_redis():
    with RedisServer() as r, SmtpServer() as smtp, metrics_worker(r, smtp) as w:
        port = w.metrics_port
        assert http(port, "/healthz")[0] == 200
        code, headers, body = http(port, "/readyz")
        assert code == 200 and body == b"ready\n", (code, body)
        r.stop()
        wait_for(lambda: status_of(port, "/readyz") == 503, 15, what="/readyz 503 without Redis")
        code, _, body = http(port, "/readyz")
        assert code == 503 and b"Redis" in body, body
        assert http(port, "/healthz")[0] == 200, "liveness must not depend on Redis"
        e = scrape(port)
        assert e.value("relayq_redis_connected") == 0
        assert "relayq_queue_depth" not in e.families, "stale depth served without Redis"
        r.start()
        wait_for(lambda: status_of(port, "/readyz") == 200, 20, what="/readyz 200 after Redis came back")
        e = scrape(port)
        assert e.value("relayq_redis_connected") == 1
        assert e.value("relayq_redis_reconnects_total") >= 1
        # And it works again: a job pushed now is sent and counted.
        push_job(r, job("after"))
        assert wait_status(r, "after", timeout=20)["state"] == "sent"
        assert scrape(port).value("relayq_jobs_total", state="sent", route="platform") == 1


def test_readyz_503_while_stopping():
    with RedisServer() as r, SmtpServer(delay=6) as smtp, \
            metrics_worker(r, smtp, args=["--grace-period-s", "20"]) as w:
        port = w.metrics_port
        push_job(r, job("slow"))
        wait_status(r, "slow", states="sending")
        w.proc.terminate()
        wait_for(lambda: status_of(port, "/readyz") == 503, 5, what="/readyz 503 while draining")
        assert scrape(port).value("relayq_stopping") == 1
        assert w.wait_exit(30) == 0
        assert wait_status(r, "slow")["state"] == "sent"


def test_http_methods_paths_and_bounds():
    with RedisServer() as r, metrics_worker(r) as w:
        port = w.metrics_port
        assert http(port, "/nope")[0] == 404
        assert http(port, "/healthz?probe=1")[0] == 200
        code, headers, body = http(port, "/metrics", method="POST")
        assert code == 405 and headers.get("allow") == "GET, HEAD", headers
        assert http(port, "/metrics", method="DELETE")[0] == 405
        # HEAD: the GET's headers with no body.
        code, headers, body = http(port, "/metrics", method="HEAD")
        assert code == 200 and body == b"" and int(headers["content-length"]) > 1000, headers
        assert headers["content-type"] == EXPOSITION_TYPE
        assert http(port, raw=b"garbage\r\n\r\n")[0] == 400
        assert http(port, raw=b"GET /metrics HTTP/2.0\r\n\r\n")[0] == 505
        assert http(port, raw=b"GET /metrics HTTP/1.1\r\nBad Header: x\r\n\r\n")[0] == 400
        assert http(port, raw=b"GET /" + b"a" * 300 + b" HTTP/1.1\r\n\r\n")[0] == 414
        big = b"GET /metrics HTTP/1.1\r\n" + b"X-Pad: " + b"p" * 9000 + b"\r\n\r\n"
        code, _, _ = http(port, raw=big)
        assert code == 431, code
        # HTTP/1.0 and a bare-LF client are served.
        assert http(port, raw=b"GET /healthz HTTP/1.0\n\n")[0] == 200
        # Garbage of every shape never kills the server.
        rnd = random.Random(7)
        for _ in range(200):
            blob = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 300))) + b"\r\n\r\n"
            try:
                code = http(port, raw=blob, timeout=8)[0]
                assert code in (400, 404, 405, 414, 505), code
            except (ConnectionResetError, BrokenPipeError):
                pass
        assert w.running() and http(port, "/healthz")[0] == 200


def test_idle_connection_is_closed_and_cap_holds():
    with RedisServer() as r, metrics_worker(r) as w:
        port = w.metrics_port
        # A client that never finishes its request is cut off after 5 s.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\n")
            t0 = time.monotonic()
            assert s.recv(100) == b""
            assert 3 < time.monotonic() - t0 < 9, time.monotonic() - t0
        # 64 idle connections are held; the 65th is refused at once.
        held = []
        try:
            for _ in range(64):
                held.append(socket.create_connection(("127.0.0.1", port), timeout=10))
            # Reset by the worker: at connect, at send or at the first read.
            t0 = time.monotonic()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as extra:
                    extra.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
                    got = extra.recv(100)
            except (ConnectionResetError, BrokenPipeError):
                got = b""
            assert got == b"" and time.monotonic() - t0 < 3, got
        finally:
            for s in held:
                s.close()
        wait_for(lambda: status_of(port, "/healthz") == 200, 10, what="service after the cap")


def test_bad_metrics_address_stops_the_worker():
    with RedisServer() as r:
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        try:
            w = Worker(r, args=["--metrics", "127.0.0.1:%d" % taken.getsockname()[1]])
            with w:
                assert w.wait_exit(15) == 2
                assert "cannot listen" in w.log_text(), w.log_text()
        finally:
            taken.close()
        with Worker(r, args=["--metrics", "nonsense"]) as w:
            assert w.wait_exit(15) == 2
            assert "not an address" in w.log_text(), w.log_text()


def documented_metrics():
    """{name: type} from the table in docs/metrics.md."""
    with open(os.path.join(ROOT, "docs", "metrics.md")) as f:
        text = f.read()
    rows = re.findall(r"^\| `([a-z_:]+)` \| (counter|gauge|histogram) \|", text, re.M)
    assert rows, "no metric table in docs/metrics.md"
    return dict(rows)


def test_docs_list_exactly_what_is_exposed():
    documented = documented_metrics()
    with RedisServer() as r, metrics_worker(r) as w:
        e = wait_for(lambda: (lambda x: x if "relayq_queue_depth" in x.families else None)(
            scrape(w.metrics_port)), timeout=8, what="a queue depth sample")
        exposed = {n: f["type"] for n, f in e.families.items()}
    assert exposed == documented, ("exposed, not documented: %r; documented, not exposed: %r" % (
        sorted(set(exposed) - set(documented)), sorted(set(documented) - set(exposed))))


def test_json_logs_parse_and_carry_fields():
    password = "s3cret-%d" % random.randrange(10 ** 9)
    with RedisServer() as r, \
            SmtpServer(security="starttls", auth=("relay", password),
                       rcpt_reply=lambda a, s: "550 5.1.1 unknown" if a.startswith("x") else None) as smtp, \
            Worker(r, platform_smtp=smtp, args=FAST + ["--log-format", "json", "--ca-file", smtp.cafile]) as w:
        push_job(r, job("j-ok", tenant="acme"))
        push_job(r, job("j-bad", tenant="globex", to=["x@dest.example"]))
        r.client.lpush(r.key("queue", "default"), b"\xc1 not msgpack")
        assert wait_status(r, "j-ok")["state"] == "sent"
        assert wait_status(r, "j-bad")["state"] == "failed"
        wait_for(lambda: r.client.llen(r.key("dead")) == 2, 10, what="invalid payload dead-lettered")
        assert w.stop() == 0
        text = w.log_text()
    assert password not in text, "the platform password appeared in the log"
    lines = [l for l in text.split("\n") if l]
    assert len(lines) >= 4, text
    deliveries = {}
    for line in lines:
        obj = json.loads(line)  # every line is one JSON object
        assert isinstance(obj, dict), line
        for k in ("ts", "level", "worker", "msg"):
            assert isinstance(obj.get(k), str) and obj[k], (k, line)
        assert obj["worker"] == w.id, line
        assert obj["level"] in ("debug", "info", "warn", "error"), line
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", obj["ts"]), obj["ts"]
        assert all(isinstance(v, str) for v in obj.values()), line
        if obj["msg"] == "delivery" and obj.get("state") in ("sent", "partial", "failed"):
            for k in ("job", "tenant", "route", "state", "duration_ms"):
                assert obj.get(k), (k, line)
            assert int(obj["duration_ms"]) >= 0
            deliveries[obj["job"]] = obj
    assert deliveries["j-ok"]["state"] == "sent" and deliveries["j-ok"]["tenant"] == "acme"
    assert deliveries["j-ok"]["route"] == "platform" and deliveries["j-ok"]["level"] == "info"
    assert deliveries["j-bad"]["state"] == "failed" and deliveries["j-bad"]["tenant"] == "globex"
    assert deliveries["j-bad"].get("error") == "recipient_rejected", deliveries["j-bad"]
    assert deliveries["j-bad"].get("code") == "550", deliveries["j-bad"]


if __name__ == "__main__":
    harness.main(globals())
