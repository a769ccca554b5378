"""Resilience: worker death and reclaim, Redis restarts, oversized and
hostile input, misbehaving SMTP servers. Fault injection with real parts."""

import collections
import os
import signal
import socket
import threading
import time

import msgpack

import harness
from harness import (RedisServer, SmtpServer, Worker, free_port, push_job, status, wait_for,
                     wait_status)

ARGS = ["--retry-base-ms", "200", "--retry-max-ms", "500", "--platform-from", "no-reply@platform.example",
        "--heartbeat-ttl-s", "3"]


def job(i, **kw):
    j = {"v": 1, "id": "r%d" % i, "tenant": "acme", "to": ["u%d@dest.example" % i],
         "subject": "s%d" % i, "text": "t"}
    j.update(kw)
    return j


def all_sent(r, n):
    return all(status(r, "r%d" % i).get("state") == "sent" for i in range(n))


def test_kill9_with_jobs_in_flight_then_another_worker_reclaims():
    n, conc = 100, 20
    with RedisServer() as r, SmtpServer(delay=0.5) as smtp:
        for i in range(n):
            push_job(r, job(i))
        w1 = Worker(r, platform_smtp=smtp, args=ARGS + ["--concurrency", str(conc)])
        wait_for(lambda: r.client.llen(r.key("inflight", w1.id)) >= conc // 2, timeout=10,
                 what="jobs in flight")
        w1.kill()
        w1.wait_exit(5)
        held = r.client.llen(r.key("inflight", w1.id))
        assert held > 0
        with Worker(r, platform_smtp=smtp, args=ARGS + ["--concurrency", "50"]):
            wait_for(lambda: all_sent(r, n), timeout=90, what="every job sent")
        w1.close()
        counts = collections.Counter(m["rcpt_tos"][0] for m in smtp.messages())
        assert set(counts) == {"u%d@dest.example" % i for i in range(n)}
        dups = sum(c - 1 for c in counts.values())
        assert dups <= conc, "duplicates %d exceed the in-flight bound %d" % (dups, conc)
        assert r.client.llen(r.key("inflight", w1.id)) == 0
        assert r.client.hget(r.key("workers"), w1.id) is None


def test_restart_with_same_id_reclaims_own_list():
    n = 30
    with RedisServer() as r, SmtpServer(delay=0.3) as smtp:
        for i in range(n):
            push_job(r, job(i))
        w1 = Worker(r, platform_smtp=smtp, args=ARGS + ["--concurrency", "10"], worker_id="same-id")
        wait_for(lambda: r.client.llen(r.key("inflight", "same-id")) >= 5, what="in flight")
        w1.kill()
        w1.wait_exit(5)
        w1.close()
        with Worker(r, platform_smtp=smtp, args=ARGS, worker_id="same-id"):
            wait_for(lambda: all_sent(r, n), timeout=60, what="every job sent")


def test_reclaim_race_exactly_once():
    """A dead worker's inflight list, three live workers racing to reclaim it."""
    n = 60
    with RedisServer() as r, SmtpServer() as smtp:
        dead_list = r.key("inflight", "ghost")
        for i in range(n):
            r.client.lpush(dead_list, msgpack.packb(job(i), use_bin_type=True))
        r.client.hset(r.key("workers"), "ghost", "default")
        ws = [Worker(r, platform_smtp=smtp, args=ARGS) for _ in range(3)]
        try:
            wait_for(lambda: all_sent(r, n), timeout=30, what="every reclaimed job sent")
        finally:
            for w in ws:
                w.close()
        counts = collections.Counter(m["rcpt_tos"][0] for m in smtp.messages())
        assert len(counts) == n and max(counts.values()) == 1, counts.most_common(3)
        assert r.client.exists(dead_list) == 0


def test_redis_restart_while_jobs_flow():
    """Redis stops mid-flow and comes back (appendonly): the same worker
    process reconnects and sends every job; a job is sent twice at most when
    it was in flight at the outage, so duplicates stay within --concurrency."""
    n, conc = 200, 16
    with RedisServer(appendonly=True) as r, SmtpServer(delay=0.01) as smtp:
        w = Worker(r, platform_smtp=smtp, args=ARGS + ["--concurrency", str(conc)])
        for i in range(n):
            push_job(r, job(i))
        wait_for(lambda: smtp.messages_count() >= 20, timeout=20, what="flowing")
        r.stop()
        # The outage lasts until the worker has noticed it.
        wait_for(lambda: "connection" in w.log_text() and "lost" in w.log_text(), timeout=10,
                 what="the worker noticing Redis is gone")
        assert w.running(), "the worker must survive a Redis outage"
        r.start()
        wait_for(lambda: all_sent(r, n), timeout=60, what="every job sent after the restart")
        assert w.running(), "the same worker process must have reconnected"
        assert "reconnected" in w.log_text() or "resuming" in w.log_text()
        counts = collections.Counter(m["rcpt_tos"][0] for m in smtp.messages())
        assert set(counts) == {"u%d@dest.example" % i for i in range(n)}, "lost: %s" % sorted(
            {"u%d@dest.example" % i for i in range(n)} - set(counts))[:5]
        dups = sum(c - 1 for c in counts.values())
        assert dups <= conc, "%d duplicates, more than the %d jobs in flight at the outage: %s" % (
            dups, conc, counts.most_common(5))
        assert max(counts.values()) <= 2, counts.most_common(3)
        w.close()


def test_oversized_payload_fails_cleanly():
    with RedisServer() as r, SmtpServer() as smtp, \
            Worker(r, platform_smtp=smtp, args=ARGS, env={"RELAYQ_MAX_JOB_BYTES": "4096"}):
        push_job(r, job(1, attachments=[{"filename": "big.bin", "content_type": "application/octet-stream",
                                          "data": os.urandom(8192)}]))
        push_job(r, job(2))
        st = wait_status(r, "r1")
        assert st["state"] == "failed" and st["error"] == "invalid_job", st
        assert "4096" in st["detail"], st
        assert wait_status(r, "r2")["state"] == "sent"


class RawServer:
    """A TCP server that plays a script of raw bytes, for misbehaving SMTP."""

    def __init__(self, script):
        self.script = script
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        self.sessions = 0
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.sessions += 1
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        c.settimeout(10)
        try:
            self.script(c)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.stop = True
        self.t.join(2)
        self.sock.close()


def readline(c):
    buf = b""
    while not buf.endswith(b"\n"):
        b = c.recv(1)
        if not b:
            raise OSError("closed")
        buf += b
    return buf


def hostile_case(script, expect_state, expect_error, expect_detail, extra=()):
    """Tenant "bad" delivers to a RawServer playing SCRIPT (onprem mode, so a
    server without AUTH is allowed); tenant "acme" goes through a healthy
    platform server. The bad job must end with exactly EXPECT_STATE /
    EXPECT_ERROR, its detail naming the real cause (EXPECT_DETAIL, a
    substring), while jobs pushed during and after it are all sent by the
    same worker process."""
    srv = RawServer(script)
    try:
        with RedisServer() as r, SmtpServer() as good, \
                Worker(r, platform_smtp=good, args=ARGS + ["--mode", "onprem", "--max-attempts", "2",
                                                           "--smtp-reply-timeout-ms", "1000",
                                                           "--smtp-connect-timeout-ms", "1000"] + list(extra)) as w:
            harness.set_tenant(r, "bad", gateway="smtp", smtp_host="127.0.0.1", smtp_port=srv.port,
                               smtp_security="none")
            push_job(r, job(1, tenant="bad"))
            for i in range(10, 15):  # while the hostile delivery is under way
                push_job(r, job(i))
            st = wait_status(r, "r1", timeout=30)
            for i in range(15, 20):  # and after it
                push_job(r, job(i))
            assert st["state"] == expect_state, st
            assert st.get("error", "") == expect_error, st
            assert expect_detail in st.get("detail", ""), st
            for i in range(10, 20):
                assert wait_status(r, "r%d" % i)["state"] == "sent", i
            assert good.messages_count() == 10
            assert w.running()
            return st
    finally:
        srv.close()


def test_server_garbage_banner():
    def script(c):
        c.sendall(b"\x00\xff\xfegarbage without a code\r\n" + os.urandom(200) + b"\r\n")
        time.sleep(2)
    hostile_case(script, "failed", "max_attempts", "not an SMTP reply")


def test_server_never_answers():
    def script(c):
        time.sleep(5)
    t0 = time.time()
    hostile_case(script, "failed", "max_attempts", "did not answer in time")
    assert time.time() - t0 < 25


def talk(c, first=b"220 ready\r\n", ehlo=b"250 ok\r\n", on_data=None):
    """A plain SMTP dialogue: FIRST as the greeting, EHLO's reply, then
    250/354 to everything; on_data(c) after 354, else read the message."""
    c.sendall(first)
    while True:
        line = readline(c).upper()
        if line.startswith(b"EHLO") or line.startswith(b"HELO"):
            c.sendall(ehlo)
        elif line.startswith(b"DATA"):
            c.sendall(b"354 go\r\n")
            if on_data:
                return on_data(c)
            while readline(c) != b".\r\n":
                pass
            c.sendall(b"250 queued\r\n")
        elif line.startswith(b"QUIT"):
            c.sendall(b"221 bye\r\n")
            return
        else:
            c.sendall(b"250 ok\r\n")


def test_server_overlong_reply_lines_are_bounded():
    """Reply lines of 100 KB and 50 KB (RFC 5321 allows 512 bytes): the
    client keeps a bounded part of each and the dialogue goes on; the mail
    is delivered."""
    def script(c):
        talk(c, first=b"220 " + b"x" * 100000 + b"\r\n", ehlo=b"250-" + b"y" * 50000 + b"\r\n250 OK\r\n")
    hostile_case(script, "sent", "", "")


def test_server_closes_mid_data():
    st = hostile_case(lambda c: talk(c, on_data=lambda c: c.recv(10)), "failed", "max_attempts",
                      "The connection dropped")
    assert st["attempts"] == "2", st


if __name__ == "__main__":
    harness.main(globals())
