"""End-to-end tests of tenant isolation (CONTRACT.md "Tenant isolation (v1.1)"):
one tenant's slow, silent or refusing server, wrong key or pause never
keeps another tenant's job waiting, and the circuit breaker per tenant route
is shared by every worker.

Real parts: redis-server, the aiosmtpd fixture (the platform gateway and a
slow tenant server), plain TCP servers that accept and never greet or
accept and close, the Mailgun fake, relayq-worker and the relayq CLI.
"""

import time

import msgpack

import harness
from raw_server import RawServer  # noqa: E402 (tests/fixtures, on the path through harness)
from harness import MailgunFake, RedisServer, SmtpServer, Worker, run_relayq, set_tenant, status, wait_for, \
    wait_status

WORKER_ARGS = ("--mode", "onprem", "--retry-base-ms", "200", "--retry-max-ms", "400")
# A silent server's connections end within this (the greeting counts as
# connecting), so the workers stop quickly at the end of a test.
SILENT_ARGS = WORKER_ARGS + ("--smtp-connect-timeout-ms", "3000")





def job(jid, tenant, to="rcpt@example.org"):
    return {"v": 1, "id": jid, "tenant": tenant, "to": [to], "from": "sender@%s.example" % tenant,
            "subject": "isolation", "text": "hello"}


def push_many(r, jobs, queue="default"):
    """LPUSHes every payload in one call (oldest first in line)."""
    payloads = [msgpack.packb(j, use_bin_type=True) for j in jobs]
    for i in range(0, len(payloads), 1000):
        r.client.lpush(r.key("queue", queue), *payloads[i:i + 1000])


def raw_tenant(r, tenant, port, **extra):
    fields = {"gateway": "smtp", "smtp_host": "127.0.0.1", "smtp_port": port, "smtp_security": "none"}
    fields.update(extra)
    set_tenant(r, tenant, **fields)


def b_latency(r, jid, pushed_ms, timeout=10):
    st = wait_status(r, jid, timeout=timeout)
    assert st["state"] == "sent", st
    return int(st["sent_at"]) - pushed_ms


def backlog_then_b(r, workers, n_backlog, tenant_port, limit_ms):
    """n_backlog jobs of tenant A first, then B's platform job: B is sent
    within limit_ms of its push."""
    raw_tenant(r, "ten-a", tenant_port)
    push_many(r, [job("a-%d" % i, "ten-a") for i in range(n_backlog)])
    # Let the workers take up A's backlog first.
    wait_for(lambda: any(status(r, "a-%d" % i).get("state") for i in range(n_backlog)), timeout=10,
             what="A's jobs being taken")
    time.sleep(0.3)
    worst = 0
    for k in range(3):
        pushed = int(time.time() * 1000)
        harness.push_job(r, job("b-%d" % k, "ten-b"))
        worst = max(worst, b_latency(r, "b-%d" % k, pushed))
    assert worst <= limit_ms, "B's job waited %d ms behind A's backlog (limit %d ms)" % (worst, limit_ms)
    return worst


def test_silent_server_backlog_one_worker():
    with RedisServer() as r, SmtpServer(keep_messages=False) as platform, RawServer("silent") as silent, \
            Worker(r, platform_smtp=platform, args=SILENT_ARGS + ("--concurrency", "8")):
        worst = backlog_then_b(r, None, 500, silent.port, 2000)
        print("silent server, 500 jobs, 1 worker: B sent within %d ms" % worst)
        # A holds at most its two connections, not the worker's slots.
        assert silent.connections() <= 2 + 2, silent.connections()


def test_many_silent_tenants_do_not_take_every_concurrency_slot():
    # Two silent tenants x smtp_max_connections 2 = 4 connections stuck
    # before the greeting (implicit TLS: not even a handshake) on a worker
    # with --concurrency 4: the ratio of 32 silent tenants on the default
    # 64. Connections still proving themselves hold no send slot, so a
    # third tenant's platform job goes at once.
    args = WORKER_ARGS + ("--concurrency", "4", "--smtp-connect-timeout-ms", "10000", "--grace-period-s", "2")
    with RedisServer() as r, RawServer("silent") as s1, RawServer("silent") as s2, \
            SmtpServer(keep_messages=False) as platform, Worker(r, platform_smtp=platform, args=args) as w:
        for name, srv in (("silent1", s1), ("silent2", s2)):
            raw_tenant(r, name, srv.port, smtp_security="tls", smtp_user="u", smtp_password="pw",
                       smtp_max_connections="2")
        w.wait_heartbeat()
        push_many(r, [job("m%d-%d" % (k, i), "silent%d" % k) for i in range(50) for k in (1, 2)])
        wait_for(lambda: s1.connections() >= 2 and s2.connections() >= 2, timeout=8, what="4 connections held")
        pushed = int(time.time() * 1000)
        harness.push_job(r, job("healthy1", "healthyco"))
        waited = b_latency(r, "healthy1", pushed, timeout=8)
        print("2 silent tenants x 2 connections on --concurrency 4: another tenant sent within %d ms" % waited)
        assert waited <= 2000, "a healthy tenant's job waited %d ms behind silent servers" % waited
        # Unproven connects stay bounded by each route's smtp_max_connections.
        assert s1.connections() <= 2 and s2.connections() <= 2, (s1.connections(), s2.connections())


def test_slow_server_2000_backlog_one_worker():
    with RedisServer() as r, SmtpServer(keep_messages=False) as platform, \
            SmtpServer(delay=0.3, keep_messages=False) as slow, \
            Worker(r, platform_smtp=platform, args=WORKER_ARGS) as w:
        worst = backlog_then_b(r, None, 2000, slow.port, 2000)
        print("0.3 s/DATA server, 2000 jobs, 1 worker: B sent within %d ms" % worst)
        assert slow.peak_connections() <= 2, slow.peak_connections()
        # The worker holds a bounded part of A's backlog, not all of it: at
        # most --concurrency jobs on their way to the line (64) plus the line
        # itself; the rest stays in Redis.
        held = r.client.llen(r.key("inflight", w.id))
        assert held <= 64 + 16 + 2, held
        assert r.client.llen(r.key("tq", "default", "ten-a")) > 1500


def test_slow_server_2000_backlog_two_workers():
    with RedisServer() as r, SmtpServer(keep_messages=False) as platform, \
            SmtpServer(delay=0.3, keep_messages=False) as slow, \
            Worker(r, platform_smtp=platform, args=WORKER_ARGS), \
            Worker(r, platform_smtp=platform, args=WORKER_ARGS):
        worst = backlog_then_b(r, None, 2000, slow.port, 2000)
        print("0.3 s/DATA server, 2000 jobs, 2 workers: B sent within %d ms" % worst)
        # A's slow server keeps being served meanwhile: not starved.
        wait_for(lambda: slow.messages_count() >= 4, timeout=10, what="A's server getting messages")


def test_silent_server_two_workers():
    with RedisServer() as r, SmtpServer(keep_messages=False) as platform, RawServer("silent") as silent, \
            Worker(r, platform_smtp=platform, args=SILENT_ARGS), \
            Worker(r, platform_smtp=platform, args=SILENT_ARGS):
        worst = backlog_then_b(r, None, 500, silent.port, 2000)
        print("silent server, 500 jobs, 2 workers: B sent within %d ms" % worst)


def breaker(r, tenant):
    raw = r.client.hgetall(r.key("breaker", tenant))
    return {k.decode(): v.decode() for k, v in raw.items()}


def test_breaker_trips_and_is_shared_by_two_workers():
    with RedisServer() as r, SmtpServer(keep_messages=False) as platform, RawServer("close") as closing, \
            Worker(r, platform_smtp=platform, args=WORKER_ARGS) as w1, \
            Worker(r, platform_smtp=platform, args=WORKER_ARGS) as w2:
        raw_tenant(r, "ten-a", closing.port)
        n = 20
        push_many(r, [job("c-%d" % i, "ten-a") for i in range(n)])
        wait_for(lambda: breaker(r, "ten-a").get("smtp.state") == "open", timeout=20,
                 what="the breaker of ten-a's smtp route to open")
        b = breaker(r, "ten-a")
        assert b["smtp.reason"] == "connect", b
        until = int(b["smtp.until"])
        assert until - int(time.time() * 1000) > 30000, b  # a 60 s cool-down
        # Every job comes to wait for the breaker: retry, connect, not an attempt more.
        def all_waiting():
            sts = [status(r, "c-%d" % i) for i in range(n)]
            return all(s.get("state") == "retry" and "circuit breaker" in s.get("detail", "") for s in sts) \
                and sts
        sts = wait_for(all_waiting, timeout=10, what="every job waiting for the breaker")
        for s in sts:
            assert s["error"] == "connect", s
            assert "cool-down" in s["detail"] and "smtp_host" in s["detail"], s
            assert int(s["next_attempt_at"]) >= until - 1000, (s, until)
        # No worker connects during the cool-down (each learns of the trip
        # within a second: RQ_SHARED_TTL_MS).
        time.sleep(1.2)
        seen = closing.connections()
        time.sleep(3)
        assert closing.connections() == seen, (seen, closing.connections())
        assert seen <= 5 + 2 * 4, seen  # the trip, and at most what was in flight then
        # Attempts before the trip: at most a handful per job, none failed.
        assert not [s for s in sts if s["state"] == "failed"]
        # Another tenant is untouched.
        harness.push_job(r, job("other", "ten-b"))
        assert wait_status(r, "other", timeout=5)["state"] == "sent"
        assert "circuit breaker" in w1.log_text() + w2.log_text()


def test_one_probe_after_the_cool_down():
    """After the cool-down exactly one worker sends one job: a failed probe
    reopens the breaker for twice as long; a good one closes it. The
    cool-down's end is brought forward through the shared hash."""
    args = WORKER_ARGS + ("--tenant-cache-ms", "200")
    with RedisServer() as r, SmtpServer(keep_messages=False) as platform, RawServer("close") as closing, \
            SmtpServer() as good, Worker(r, platform_smtp=platform, args=args), \
            Worker(r, platform_smtp=platform, args=args):
        raw_tenant(r, "ten-a", closing.port)
        push_many(r, [job("c-%d" % i, "ten-a") for i in range(8)])
        wait_for(lambda: breaker(r, "ten-a").get("smtp.state") == "open", timeout=20, what="the trip")
        time.sleep(1.2)
        seen = closing.connections()
        key = r.key("breaker", "ten-a")
        r.client.hset(key, "smtp.until", int(time.time() * 1000) - 1)
        time.sleep(1.1)  # the workers' view of the shared hash is at most 1 s old
        push_many(r, [job("p-%d" % i, "ten-a") for i in range(4)])
        wait_for(lambda: breaker(r, "ten-a").get("smtp.trips") == "2", timeout=10, what="the failed probe")
        b = breaker(r, "ten-a")
        assert b["smtp.state"] == "open", b
        assert int(b["smtp.until"]) - int(time.time() * 1000) > 100000, b  # 120 s now
        time.sleep(1.5)
        assert closing.connections() == seen + 1, (seen, closing.connections())
        # The server is fixed (here: the tenant moves to a good one).
        raw_tenant(r, "ten-a", good.port)
        time.sleep(0.5)
        r.client.hset(key, "smtp.until", int(time.time() * 1000) - 1)
        time.sleep(1.1)
        harness.push_job(r, job("fixed", "ten-a"))
        assert wait_status(r, "fixed", timeout=10)["state"] == "sent"
        wait_for(lambda: breaker(r, "ten-a").get("smtp.state") == "closed", timeout=5, what="closed")


def test_mailgun_breaker_is_per_tenant_key():
    with RedisServer() as r, SmtpServer(keep_messages=False) as platform, \
            MailgunFake(api_key="key-good", domain="mg.example.com") as mg, \
            Worker(r, platform_smtp=platform, args=WORKER_ARGS):
        for t, key in (("ten-x", "key-wrong"), ("ten-y", "key-good")):
            set_tenant(r, t, gateway="mailgun", mailgun_domain="mg.example.com", mailgun_api_key=key,
                       mailgun_base_url=mg.base_url)
        push_many(r, [job("x-%d" % i, "ten-x") for i in range(4)])
        wait_for(lambda: breaker(r, "ten-x").get("mailgun.state") == "open", timeout=15,
                 what="ten-x's mailgun breaker to open")
        assert breaker(r, "ten-x")["mailgun.reason"] == "auth"
        requests_before = len(mg.requests())
        pushed = int(time.time() * 1000)
        harness.push_job(r, job("y-1", "ten-y"))
        assert b_latency(r, "y-1", pushed, timeout=5) < 2000
        assert not breaker(r, "ten-y").get("mailgun.state") in ("open", "half_open")
        # X's next job waits for its breaker, without calling the API.
        harness.push_job(r, job("x-late", "ten-x"))
        st = wait_status(r, "x-late", states=("retry",), timeout=5)
        assert st["error"] == "auth" and "mailgun_api_key" in st["detail"], st
        assert len(mg.requests()) == requests_before + 1  # y-1 only


def test_slow_api_tenant_leaves_a_slot_for_others():
    """A tenant whose (Mailgun) API takes 4 s a call, with no connection cap
    of its own, fills at most all but the reserved slots: another tenant's
    first job is sent at once."""
    with RedisServer() as r, SmtpServer(keep_messages=False) as platform, \
            MailgunFake(api_key="key-x", domain="mg.example.com", script=lambda n: time.sleep(4)) as slow, \
            MailgunFake(api_key="key-y", domain="mg.example.com") as fast, \
            Worker(r, platform_smtp=platform, args=WORKER_ARGS + ("--concurrency", "16")):
        set_tenant(r, "ten-x", gateway="mailgun", mailgun_domain="mg.example.com", mailgun_api_key="key-x",
                   mailgun_base_url=slow.base_url)
        set_tenant(r, "ten-y", gateway="mailgun", mailgun_domain="mg.example.com", mailgun_api_key="key-y",
                   mailgun_base_url=fast.base_url)
        push_many(r, [job("x-%d" % i, "ten-x") for i in range(100)])
        wait_for(lambda: len(slow.requests()) >= 15 or None, timeout=10, what="ten-x filling the worker")
        pushed = int(time.time() * 1000)
        harness.push_job(r, job("y-1", "ten-y"))
        waited = b_latency(r, "y-1", pushed, timeout=10)
        assert waited < 1000, "ten-y waited %d ms behind ten-x's slow API" % waited
        harness.push_job(r, job("p-1", "ten-p"))  # and the platform too
        assert wait_status(r, "p-1", timeout=3)["state"] == "sent"


def test_pause_and_resume():
    with RedisServer() as r, SmtpServer() as platform, Worker(r, platform_smtp=platform, args=WORKER_ARGS):
        p = run_relayq(r, "tenant", "pause", "ten-p", "--reason", "billing hold")
        assert p.returncode == 0, p.stderr
        assert "paused" in p.stdout
        held = r.client.hgetall(r.key("thold", "ten-p"))
        assert held[b"reason"] == b"billing hold" and held[b"until"] == b"0", held
        push_many(r, [job("p-%d" % i, "ten-p") for i in range(5)])
        harness.push_job(r, job("q-1", "ten-q"))
        assert wait_status(r, "q-1", timeout=5)["state"] == "sent"
        for i in range(5):
            st = wait_status(r, "p-%d" % i, states=("deferred",), timeout=5)
            assert st["error"] == "policy" and "billing hold" in st["detail"], st
            assert "relayq tenant resume" in st["detail"], st
        time.sleep(3)  # paused jobs stay paused
        assert all(status(r, "p-%d" % i)["state"] == "deferred" for i in range(5))
        assert platform.messages_count() == 1
        resumed = time.time()
        p = run_relayq(r, "tenant", "resume", "ten-p")
        assert p.returncode == 0 and "resumed" in p.stdout, (p.stdout, p.stderr)
        for i in range(5):
            assert wait_status(r, "p-%d" % i, timeout=10)["state"] == "sent"
        assert time.time() - resumed < 6
        assert int(status(r, "p-0")["attempts"]) == 1


def test_pause_for_expires_and_cli_checks():
    with RedisServer() as r, SmtpServer() as platform, Worker(r, platform_smtp=platform, args=WORKER_ARGS):
        assert run_relayq(r, "tenant", "pause", "bad tenant!").returncode == 2
        assert run_relayq(r, "tenant", "pause", "t", "--for", "0").returncode == 2
        assert run_relayq(r, "tenant", "pause", "t", "--reason", "a\nb").returncode == 2
        assert run_relayq(r, "tenant", "resume", "t", "--for", "3").returncode == 2
        p = run_relayq(r, "tenant", "resume", "never-paused")
        assert p.returncode == 0 and "was not paused" in p.stdout
        p = run_relayq(r, "tenant", "pause", "ten-f", "--for", "2")
        assert p.returncode == 0, p.stderr
        assert 0 < r.client.pttl(r.key("thold", "ten-f")) <= 2000
        harness.push_job(r, job("f-1", "ten-f"))
        assert wait_status(r, "f-1", states=("deferred",), timeout=5)["error"] == "policy"
        assert wait_status(r, "f-1", timeout=10)["state"] == "sent"


if __name__ == "__main__":
    harness.main(globals())
