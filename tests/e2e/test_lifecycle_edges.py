"""End-to-end coverage of lifecycle edges (docs/delivery.md, docs/cli.md,
docs/metrics.md) that no other test reached:

- a job split into several transactions that runs out of quota mid-job;
- a Redis outage while a transaction is in flight: the status write is held
  and replayed after the reconnect, and the message is not sent twice;
- SIGTERM with a job that outlasts the grace period: it is handed back and
  another worker sends it;
- idempotency ends with the status hash (RELAYQ_STATUS_TTL_S);
- `relayq tenant set` refusing to save when the tenant changed meanwhile
  (its WATCH);
- the invalid and duplicate job counters of /metrics.
"""

import base64
import subprocess
import threading
import time

import msgpack

import harness
from harness import RedisServer, SmtpServer, Worker, free_port, push_job, status, wait_for, wait_status
from test_metrics import scrape, status_of

ARGS = ["--retry-base-ms", "200", "--retry-max-ms", "400", "--platform-from", "no-reply@platform.example"]


def job(jid, tenant="acme", to=("x@dest.example",), **kw):
    j = {"v": 1, "id": jid, "tenant": tenant, "to": list(to), "subject": jid, "text": "t"}
    j.update(kw)
    return j


def test_quota_runs_out_mid_job_with_split_transactions():
    """5 recipients, at most 2 per transaction (3 transactions), quota 2 per
    3 s: two transactions go at once, the third waits for the window and
    goes then; each recipient gets the message exactly once."""
    window_s = 3
    rcpts = ["r%d@dest.example" % i for i in range(5)]
    with RedisServer() as r, SmtpServer() as smtp, \
            Worker(r, platform_smtp=smtp, args=ARGS + ["--platform-max-recipients", "2"],
                   env={"RELAYQ_QUOTA_WINDOW_S": str(window_s)}):
        r.client.hset(r.key("tenant", "acme"), mapping={"hourly_quota": "2"})
        push_job(r, job("split", to=rcpts))
        st = wait_for(lambda: (lambda s: s if s.get("state") == "deferred" else None)(status(r, "split")),
                      timeout=10, what="split deferred by the quota")
        assert st["error"] == "quota", st
        assert smtp.messages_count() == 2, smtp.messages()
        st = wait_status(r, "split", timeout=20)
        assert st["state"] == "sent" and st["accepted"] == "5", st
        msgs = smtp.messages()
        got = sorted(a for m in msgs for a in m["rcpt_tos"])
        assert got == sorted(rcpts), got  # every recipient once: none resent after the pause
        assert len(msgs) == 3 and all(len(m["rcpt_tos"]) <= 2 for m in msgs), msgs
        times = sorted(m["received_at"] for m in msgs)
        assert times[2] - times[0] >= window_s - 0.05, times


def test_redis_outage_holds_the_status_write_and_replays_it():
    """Redis stops while the SMTP server holds DATA; the transaction
    completes during the outage; after Redis is back the held FINISH is
    replayed: status sent, delivered once, queue and inflight empty."""
    with RedisServer(appendonly=True) as r, SmtpServer(delay=3.0) as smtp, \
            Worker(r, platform_smtp=smtp, args=ARGS) as w:
        push_job(r, job("held"))
        wait_for(lambda: smtp.data_attempts() >= 1, timeout=10, what="DATA under way")
        r.stop()
        assert smtp.messages_count() == 0, "the transaction ended before the outage began"
        # The transaction ends while Redis is away.
        smtp.wait_messages(1, timeout=10)
        wait_for(lambda: "lost" in w.log_text(), timeout=10, what="the worker noticing the outage")
        assert w.running()
        r.start()
        st = wait_status(r, "held", timeout=30)
        assert st["state"] == "sent", st
        assert smtp.messages_count() == 1
        wait_for(lambda: r.client.llen(r.key("inflight", w.id)) == 0, timeout=10, what="inflight empty")
        assert r.client.llen(r.key("queue", "default")) == 0
        # Nothing is sent again later either.
        assert smtp.messages_count() == 1 and w.running()


def test_sigterm_grace_period_hands_back_unfinished_jobs():
    """--grace-period-s 1 and a server that holds DATA for 30 s: on SIGTERM
    the worker stops within the grace period (plus shutdown), the job is
    back in its queue, not final and not failed, and the next worker sends
    it."""
    with RedisServer() as r, SmtpServer(delay=30.0) as slow, SmtpServer() as fast:
        w1 = Worker(r, platform_smtp=slow, args=ARGS + ["--grace-period-s", "1"])
        try:
            push_job(r, job("graced"))
            wait_for(lambda: slow.data_attempts() >= 1, timeout=10, what="DATA under way")
            t0 = time.monotonic()
            w1.stop(timeout=15)
            took = time.monotonic() - t0
            assert took < 6, "stopped after %.1f s with a 1 s grace period" % took
            wait_for(lambda: "handing them back" in w1.log_text(), timeout=5,
                     what="the worker saying it handed the job back")
        finally:
            w1.close()
        assert r.client.llen(r.key("queue", "default")) == 1, "the unfinished job is back in its queue"
        assert r.client.llen(r.key("inflight", w1.id)) == 0
        st = status(r, "graced")
        assert st.get("state") not in ("sent", "partial", "failed"), st
        with Worker(r, platform_smtp=fast, args=ARGS):
            assert wait_status(r, "graced", timeout=15)["state"] == "sent"
        assert fast.messages_count() == 1


def test_idempotency_lasts_as_long_as_the_status_and_counters():
    """While P:status:ID exists a job pushed again is acknowledged without
    sending (relayq_duplicate_jobs_total); once the status expired
    (--status-ttl-s 2) the same id is a new job. Undecodable payloads count
    in relayq_invalid_jobs_total."""
    port = free_port()
    with RedisServer() as r, SmtpServer() as smtp, \
            Worker(r, platform_smtp=smtp, args=ARGS + ["--status-ttl-s", "2", "--metrics", "127.0.0.1:%d" % port]):
        wait_for(lambda: status_of(port, "/readyz") == 200, timeout=15, what="/readyz")
        m0 = scrape(port)
        assert m0.value("relayq_duplicate_jobs_total") == 0 and m0.value("relayq_invalid_jobs_total") == 0
        push_job(r, job("once"))
        assert wait_status(r, "once")["state"] == "sent"
        for i in range(3):
            push_job(r, job("once"))
        r.client.lpush(r.key("queue", "default"), b"\xc1not msgpack")
        r.client.lpush(r.key("queue", "default"), msgpack.packb([1, 2]))
        push_job(r, job("marker"))
        assert wait_status(r, "marker")["state"] == "sent"
        wait_for(lambda: r.client.llen(r.key("queue", "default")) == 0, timeout=10, what="queue drained")
        m1 = wait_for(lambda: (lambda m: m if m.value("relayq_duplicate_jobs_total") == 3 else None)(scrape(port)),
                      timeout=5, what="3 duplicates counted")
        assert m1.value("relayq_invalid_jobs_total") == 2, m1.value("relayq_invalid_jobs_total")
        assert smtp.messages_count() == 2  # once + marker
        # The status expires with its TTL; then the id is a new job.
        wait_for(lambda: not r.client.exists(r.key("status", "once")), timeout=10, what="status of 'once' expired")
        push_job(r, job("once"))
        assert wait_status(r, "once")["state"] == "sent"
        assert smtp.messages_count() == 3
        assert scrape(port).value("relayq_duplicate_jobs_total") == 3


def test_tenant_set_refuses_when_the_tenant_changed_meanwhile():
    """`relayq tenant set` reads the tenant under WATCH, verifies the
    connection (slow here: the server waits before its greeting), and saves
    with MULTI/EXEC. A write to the tenant in between makes it save nothing
    and say so."""
    gate = threading.Event()

    class SlowGreeting:
        """A TCP server that greets only after `gate` is set, then speaks
        just enough SMTP for the probe (EHLO, QUIT)."""

        def __init__(self):
            import socket
            self.sock = socket.socket()
            self.sock.bind(("127.0.0.1", 0))
            self.sock.listen(4)
            self.port = self.sock.getsockname()[1]
            self.accepted = threading.Event()
            self.t = threading.Thread(target=self.run, daemon=True)
            self.t.start()

        def run(self):
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.set()
            with c:
                gate.wait(20)
                try:
                    c.sendall(b"220 slow.example ESMTP\r\n")
                    f = c.makefile("rb")
                    for line in f:
                        u = line.upper()
                        if u.startswith(b"EHLO") or u.startswith(b"HELO"):
                            c.sendall(b"250-slow.example\r\n250 AUTH PLAIN\r\n")
                        elif u.startswith(b"AUTH"):
                            c.sendall(b"235 2.7.0 ok\r\n")
                        elif u.startswith(b"QUIT"):
                            c.sendall(b"221 bye\r\n")
                            return
                        else:
                            c.sendall(b"250 ok\r\n")
                except OSError:
                    return

        def close(self):
            self.sock.close()

    srv = SlowGreeting()
    try:
        with RedisServer() as r:
            key = r.key("tenant", "acme")
            r.client.hset(key, mapping={"from_name": "Acme"})
            cmd = [harness.binary("relayq"), "--redis", r.url, "--prefix", r.prefix, "tenant", "set", "acme",
                   "gateway=smtp", "smtp_host=127.0.0.1", "smtp_port=%d" % srv.port, "smtp_security=none",
                   "smtp_user=u", "smtp_password=p", "--timeout", "20"]
            env = harness._child_env({"RELAYQ_MODE": "onprem",
                                      "RELAYQ_SECRET_KEY": base64.b64encode(b"k" * 32).decode()})
            p = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            try:
                assert srv.accepted.wait(15), "tenant set never connected to verify"
                r.client.hset(key, "from_name", "Someone else")  # the concurrent write
                gate.set()
                out, err = p.communicate(timeout=30)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            print("  tenant set said: %s" % err.strip())
            assert p.returncode != 0, (p.returncode, out, err)
            assert err.startswith("relayq: ") and "changed" in err, err
            saved = {k.decode(): v.decode() for k, v in r.client.hgetall(key).items()}
            assert saved == {"from_name": "Someone else"}, saved  # nothing of the refused set
    finally:
        gate.set()
        srv.close()


if __name__ == "__main__":
    harness.main(globals())
