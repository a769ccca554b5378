#!/usr/bin/python3
"""End-to-end tests of the worker's SMTP transport (worker/smtp.c over
worker/smtp_conn.c and worker/tlsio.c), in isolation from Redis and the
engine.

Each test starts the fixture SMTP server (tests/fixtures/smtp_server.py via
harness) on 127.0.0.1, runs $RELAYQ_BUILD_DIR/tests/test_smtp_live with the
scenario in RELAYQ_TEST_SMTP_* variables, and asserts on the "RESULT {json}"
lines it prints (one per transaction) and on what the server saw.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import SmtpServer  # noqa: E402

USER, PASSWORD = "tenant-user", "s3cret-Pa55word"
# relayq's own transaction outcomes (smtp.h RQ_SMTP_ERR_MAP), by name.
TLS_ERRORS = {"tls", "tls_cert", "tls_mismatch"}


class Run:
    """One run of the driver: .results (dicts, in completion order),
    .stall_ms (longest loop stall), .elapsed, .output (all of stdout+stderr)."""

    def __init__(self, proc, elapsed):
        self.output = proc.stdout + proc.stderr
        self.elapsed = elapsed
        self.results = [json.loads(line[len("RESULT "):]) for line in proc.stdout.splitlines()
                        if line.startswith("RESULT ")]
        stall = [json.loads(line[len("STALL "):]) for line in proc.stdout.splitlines()
                 if line.startswith("STALL ")]
        self.stall_ms = stall[0]["max_ms"] if stall else None
        if proc.returncode != 0:
            raise AssertionError("test_smtp_live failed (exit %d):\n%s" % (proc.returncode, self.output))

    @property
    def one(self):
        assert len(self.results) == 1, self.results
        return self.results[0]


def live(url, timeout=60, **settings):
    """Runs the driver against url; settings become RELAYQ_TEST_SMTP_<NAME>."""
    exe = harness.binary(os.path.join("tests", "test_smtp_live"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYQ_TEST_SMTP_")}
    env["RELAYQ_TEST_SMTP_URL"] = url
    for k, v in settings.items():
        if v is not None:
            env["RELAYQ_TEST_SMTP_" + k.upper()] = str(v)
    t0 = time.monotonic()
    proc = subprocess.run([exe], env=env, capture_output=True, text=True, timeout=timeout)
    return Run(proc, time.monotonic() - t0)


class SilentServer:
    """Accepts TCP connections and never says a word (a black-holed MTA)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        # close() does not wake a thread blocked in accept(): poll a flag.
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self):
        while not self.stopping.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns.append(c)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()
        for c in self.conns:
            c.close()


def rcpt_codes(result):
    return [r["code"] for r in result["rcpts"]]


# ---- the dialogue reader and argument checks (no network) -------------------------

def test_unit_checks():
    r = live("smtp://127.0.0.1:9", scenario="unit")
    assert " 0 failed" in r.output, r.output


# ---- delivery -------------------------------------------------------------------------

def test_plain_delivery_exact_bytes():
    body = (b"From: a@example.org\r\nTo: b@example.org, c@example.org\r\n"
            b"Subject: exact bytes\r\nMessage-ID: <exact@relayq.test>\r\n\r\n"
            b"line one\r\n.line with a leading dot\r\n.\r\n..two dots\r\n"
            b"caf\xc3\xa9 utf-8\r\nlast line\r\n")
    with tempfile.NamedTemporaryFile(suffix=".eml") as f, SmtpServer() as s:
        f.write(body)
        f.flush()
        r = live(s.url, security="plain", msg_file=f.name, helo="client.relayq.test",
                 rcpts="b@example.org,c@example.org", **{"from": "a@example.org"}).one
        assert r["err"] == 0 and r["stage"] == "body", r
        assert r["data_code"] == 250 and r["code"] == 250 and r["enhanced"] == "2.0.0", r
        assert r["accepted"] == 2 and rcpt_codes(r) == [250, 250], r
        assert r["rcpts"][0]["enhanced"] == "2.1.5", r
        msgs = s.messages()
        assert len(msgs) == 1, msgs
        assert msgs[0]["mail_from"] == "a@example.org"
        assert msgs[0]["rcpt_tos"] == ["b@example.org", "c@example.org"]
        assert msgs[0]["data"] == body, msgs[0]["data"]
        assert msgs[0]["tls"] is False


def test_starttls_auth_self_signed_without_verification():
    with SmtpServer(security="starttls", auth=(USER, PASSWORD), require_auth=True) as s:
        run = live(s.url, security="required", user=USER, password=PASSWORD, verify=0)
        r = run.one
        assert r["err"] == 0 and r["data_code"] == 250, r
        m = s.messages()[0]
        assert m["tls"] is True and m["auth_user"] == USER, m
        assert PASSWORD not in run.output


def test_starttls_verification_fails_without_ca_file():
    with SmtpServer(security="starttls", auth=(USER, PASSWORD)) as s:
        r = live(s.url, security="required", user=USER, password=PASSWORD, verify=1).one
        assert r["err_name"] == "tls_cert", r
        assert r["stage"] == "tls", r
        assert r["verdict"] == "perm" and r["error"] == "tls", r
        assert r["code"] == 0 and r["data_code"] == 0, r
        assert s.messages_count() == 0
        # Opportunistic STARTTLS does not fall back to plain text either.
        r = live(s.url, security="try", user=USER, password=PASSWORD, verify=1).one
        assert r["err_name"] in TLS_ERRORS and r["stage"] == "tls", r


def test_required_starttls_not_offered():
    with SmtpServer() as s:  # plain server: no STARTTLS in its EHLO reply
        r = live(s.url, security="required").one
        assert r["err_name"] == "no_starttls", r
        assert r["stage"] == "ehlo" and r["code"] == 250, r
        assert r["verdict"] == "perm" and r["error"] == "tls", r
        assert s.messages_count() == 0
        r = live(s.url, security="try").one  # opportunistic: goes on in clear text
        assert r["err"] == 0 and s.messages()[0]["tls"] is False, r


def test_starttls_verified_with_ca_file():
    with SmtpServer(security="starttls", auth=(USER, PASSWORD)) as s:
        r = live(s.url, security="required", user=USER, password=PASSWORD, verify=1,
                 cafile=s.cafile).one
        assert r["err"] == 0 and r["data_code"] == 250, r
        assert s.messages()[0]["tls"] is True


def test_implicit_tls():
    with SmtpServer(security="tls", auth=(USER, PASSWORD)) as s:
        assert s.url.startswith("smtps://")
        r = live(s.url, user=USER, password=PASSWORD, verify=1, cafile=s.cafile).one
        assert r["err"] == 0 and r["data_code"] == 250, r
        assert s.messages()[0]["tls"] is True and s.messages()[0]["auth_user"] == USER
        r = live(s.url, user=USER, password=PASSWORD, verify=1).one
        assert r["err_name"] == "tls_cert" and r["stage"] == "tls", r
        r = live(s.url, user=USER, password=PASSWORD, verify=0).one
        assert r["err"] == 0, r


def test_wrong_password():
    with SmtpServer(security="starttls", auth=(USER, PASSWORD), require_auth=True) as s:
        run = live(s.url, security="required", user=USER, password="wrong-" + PASSWORD, verify=0)
        r = run.one
        assert r["err_name"] == "auth", r
        assert r["verdict"] == "perm" and r["error"] == "auth", r
        assert r["stage"] == "auth" and r["code"] == 535, r
        assert r["enhanced"].startswith("5.7."), r
        assert s.messages_count() == 0
        assert PASSWORD not in run.output


# ---- recipients and replies ------------------------------------------------------------

def test_one_recipient_rejected():
    def rcpt(addr, state):
        return "550 5.1.1 <%s>: no such user" % addr if addr.startswith("bad") else None
    with SmtpServer(rcpt_reply=rcpt) as s:
        r = live(s.url, rcpts="bad@example.org,good@example.org").one
        assert r["err"] == 0 and r["data_code"] == 250, r
        assert r["accepted"] == 1 and rcpt_codes(r) == [550, 250], r
        assert r["rcpts"][0]["enhanced"] == "5.1.1", r
        assert r["rcpts"][0]["text"] == "<bad@example.org>: no such user", r
        assert s.messages()[0]["rcpt_tos"] == ["good@example.org"]


def test_all_recipients_rejected():
    def rcpt(addr, state):
        return "550 5.1.1 unknown" if addr.startswith("x") else "553 5.1.3 bad address"
    with SmtpServer(rcpt_reply=rcpt) as s:
        r = live(s.url, rcpts="x@example.org,y@example.org").one
        # Ends without DATA (and the connection gets RSET).
        assert r["err_name"] == "rejected", r
        assert r["stage"] == "rcpt" and r["code"] == 553, r
        assert r["accepted"] == 0 and rcpt_codes(r) == [550, 553], r
        assert r["data_code"] == 0
        txns = s.transactions()
        assert len(txns) == 1 and txns[0]["data_reply"] is None, txns


def test_final_dot_rejected():
    with SmtpServer(data_reply=lambda env, n: "451 4.3.0 Try again later") as s:
        r = live(s.url, rcpts="a@example.org,b@example.org").one
        assert r["err_name"] == "rejected", r
        assert r["stage"] == "body" and r["data_code"] == 451, r
        assert r["verdict"] == "temp", r
        assert r["code"] == 451 and r["enhanced"] == "4.3.0", r
        assert r["reply"] == "Try again later", r
        assert r["accepted"] == 2, r
        assert s.messages_count() == 0


def test_too_many_recipients():
    with SmtpServer(max_rcpt=2) as s:
        rcpts = ["r%d@example.org" % i for i in range(4)]
        r = live(s.url, rcpts=",".join(rcpts)).one
        assert r["err"] == 0 and r["data_code"] == 250, r
        assert rcpt_codes(r) == [250, 250, 452, 452], r
        assert r["rcpts"][2]["enhanced"] == "4.5.3", r
        assert r["accepted"] == 2
        assert s.messages()[0]["rcpt_tos"] == rcpts[:2]


# ---- connections ---------------------------------------------------------------------------

def test_connection_reuse_across_messages():
    with SmtpServer() as s:
        run = live(s.url, count=50)
        assert len(run.results) == 50
        assert all(r["err"] == 0 and r["data_code"] == 250 for r in run.results)
        assert s.messages_count() == 50
        assert s.connections() <= 2, s.connections()
        assert sum(r["reused"] for r in run.results) >= 48, [r["reused"] for r in run.results]


def test_connection_reuse_with_starttls_and_auth():
    with SmtpServer(security="starttls", auth=(USER, PASSWORD), require_auth=True) as s:
        run = live(s.url, count=10, security="required", user=USER, password=PASSWORD,
                   verify=1, cafile=s.cafile)
        assert all(r["err"] == 0 for r in run.results), run.results
        assert s.messages_count() == 10
        assert s.connections() == 1, s.connections()
        assert len(s.auth_attempts) == 1, s.auth_attempts


def test_max_connections_per_key():
    with SmtpServer(delay=0.05) as s:
        run = live(s.url, count=10, concurrent=1, max_conn=1, key="tenant-a:smtp")
        assert [r["err"] for r in run.results] == [0] * 10, run.results
        assert s.messages_count() == 10
        assert s.peak_connections() == 1, s.peak_connections()
        txns = sorted(s.transactions(), key=lambda t: t["started_at"])
        for a, b in zip(txns, txns[1:]):  # one transaction at a time, in order
            assert a["ended_at"] <= b["started_at"], (a, b)
    # Without our limit the same load opens several sessions at once, so the
    # limiter (not chance) is what kept the peak at one above.
    with SmtpServer(delay=0.2) as s:
        run = live(s.url, count=10, concurrent=1)
        assert [r["err"] for r in run.results] == [0] * 10
        assert s.peak_connections() > 1, s.peak_connections()


def test_silent_server_is_bounded():
    with SilentServer() as srv:
        url = "smtp://127.0.0.1:%d" % srv.port
        run = live(url, connect_timeout_ms=1000, response_timeout_ms=1000, timeout_ms=3000)
        r = run.one
        assert r["err_name"] == "timeout", r
        assert r["stage"] == "banner" and r["code"] == 0, r
        assert r["verdict"] == "temp" and r["error"] == "connect", r
        assert run.elapsed < 10, run.elapsed
        run = live("smtps://127.0.0.1:%d" % srv.port, connect_timeout_ms=1000, timeout_ms=3000)
        assert run.one["err_name"] == "timeout" and run.one["stage"] == "tls", run.one
        assert run.elapsed < 10, run.elapsed


def test_slow_final_reply_is_bounded():
    # The final-dot reply is awaited without blocking the loop (libcurl
    # 7.88 blocked here: curl issue #8555), and no longer than the response
    # timeout.
    with SmtpServer(delay=5) as s:
        run = live(s.url, response_timeout_ms=1000, timeout_ms=20000)
        r = run.one
        assert r["err_name"] == "timeout", r
        assert r["stage"] == "body" and r["data_code"] == 0, r
        assert run.elapsed < 5, run.elapsed
        assert run.stall_ms < 250, run.stall_ms


def test_connection_refused():
    port = harness.free_port()
    r = live("smtp://127.0.0.1:%d" % port).one
    assert r["err_name"] == "connect" and r["stage"] == "connect" and r["code"] == 0, r
    assert r["verdict"] == "temp" and r["error"] == "connect", r


# ---- shutdown ---------------------------------------------------------------------------------

def test_close_aborts_everything():
    with SmtpServer() as s:
        run = live(s.url, scenario="abort", count=5, max_conn=1)
        assert [r["err_name"] for r in run.results] == ["aborted"] * 5, run.results


def test_close_from_a_callback():
    with SmtpServer(delay=0.2) as s:
        run = live(s.url, scenario="abort_in_cb", count=6, max_conn=2)
        codes = [r["err_name"] for r in run.results]
        assert codes[0] == "ok", run.results
        assert codes[1:] == ["aborted"] * 5, run.results


if __name__ == "__main__":
    harness.main(globals())
