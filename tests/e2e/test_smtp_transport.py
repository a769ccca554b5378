#!/usr/bin/python3
"""End-to-end tests of the worker's SMTP transport (worker/net/smtp.c over
worker/net/smtp.conn.c and worker/tlsio.c), in isolation from Redis and the
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
from harness import SmtpServer, wait_for  # noqa: E402
from raw_server import RawServer  # noqa: E402

USER, PASSWORD = "tenant-user", "s3cret-Pa55word"
# relayq's own transaction outcomes (smtp.h RQ_SMTP_ERR_MAP), by name.
TLS_ERRORS = {"tls", "tls_cert", "tls_mismatch"}


class Run:
    """One run of the driver: .results (dicts, in completion order),
    .stall_ms (longest loop stall), .stats (the transport's counters),
    .rate, .elapsed, .output (all of stdout+stderr)."""

    def __init__(self, proc, elapsed):
        self.output = proc.stdout + proc.stderr
        self.elapsed = elapsed
        self.results = [json.loads(line[len("RESULT "):]) for line in proc.stdout.splitlines()
                        if line.startswith("RESULT ")]
        stall = [json.loads(line[len("STALL "):]) for line in proc.stdout.splitlines()
                 if line.startswith("STALL ")]
        self.stall_ms = stall[0]["max_ms"] if stall else None
        stats = [json.loads(line[len("STATS "):]) for line in proc.stdout.splitlines()
                 if line.startswith("STATS ")]
        self.stats = stats[0] if stats else {}
        rate = [json.loads(line[len("RATE "):]) for line in proc.stdout.splitlines()
                if line.startswith("RATE ")]
        self.rate = rate[0] if rate else {}
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


class ScriptedServer:
    """A small SMTP server for what aiosmtpd cannot be made to do: advertise
    PIPELINING (and record how commands arrived, one recv() at a time),
    offer AUTH LOGIN only, stay silent after the final dot, drop the
    connection in the middle of the message, or close a session after its
    transaction (at once, or with 421 to the next command, as a server
    whose idle timer ran out does). One thread per connection.

    rcpt_reply(address) -> None (250) or a reply line. data_reply: the final
    dot's reply. banner: the greeting line.
    Records: .chunks [(session, bytes)], .commands [(session, line)],
    .messages [(session, mail_from, rcpts, data)], .sessions (count),
    .auth [(user, password)].
    """

    def __init__(self, pipelining=False, silent_dot=False, drop_after=None, close_after=None,
                 rcpt_reply=None, data_reply="250 2.0.0 OK queued", banner="220 scripted ESMTP",
                 auth_login=None, starttls=False):
        self.pipelining, self.silent_dot, self.drop_after = pipelining, silent_dot, drop_after
        self.close_after, self.rcpt_reply, self.data_reply = close_after, rcpt_reply, data_reply
        self.banner, self.auth_login, self.starttls = banner, auth_login, starttls
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.url = "smtp://127.0.0.1:%d" % self.port
        self.lock = threading.Lock()
        self.chunks, self.commands, self.messages, self.auth = [], [], [], []
        self.sessions = 0
        self.conns = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.close()
            except OSError:
                pass

    def _accept(self):
        while not self.stopping.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.sessions += 1
                sid = self.sessions
                self.conns.append(c)
            threading.Thread(target=self._serve, args=(c, sid), daemon=True).start()

    def commands_of(self, sid=None):
        with self.lock:
            return [line for s, line in self.commands if sid is None or s == sid]

    def _serve(self, c, sid):
        try:
            self._session(c, sid)
        except OSError:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def _session(self, c, sid):
        c.settimeout(30)
        c.sendall(self.banner.encode() + b"\r\n")
        buf, data, in_data, rcpts, mail_from, done_txn = b"", b"", False, [], None, False
        login = None
        while True:
            chunk = c.recv(65536)
            if not chunk:
                return
            with self.lock:
                self.chunks.append((sid, chunk))
            buf += chunk
            out = []
            while True:
                if in_data:
                    data += buf
                    buf = b""
                    if self.drop_after is not None and len(data) >= self.drop_after:
                        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                        return  # closed (RST) in the middle of the message
                    end = data.find(b"\r\n.\r\n")
                    if data.startswith(b".\r\n"):
                        end, body = 0, b""
                    elif end >= 0:
                        body = data[:end + 2]
                    else:
                        break
                    buf = data[end + (3 if end == 0 and data.startswith(b".\r\n") else 5):]
                    data, in_data = b"", False
                    lines = body.split(b"\r\n")
                    body = b"\r\n".join(l[1:] if l.startswith(b".") else l for l in lines)
                    with self.lock:
                        self.messages.append((sid, mail_from, list(rcpts), body))
                    if self.silent_dot:
                        continue  # never answers: the client must give up on its own
                    out.append(self.data_reply)
                    done_txn = True
                    if self.close_after == "eof":
                        c.sendall("".join(l + "\r\n" for l in out).encode())
                        return
                    continue
                if b"\r\n" not in buf:
                    break
                raw, buf = buf.split(b"\r\n", 1)
                line = raw.decode("utf-8", "replace")
                with self.lock:
                    self.commands.append((sid, line))
                if login is not None:
                    import base64
                    login.append(base64.b64decode(raw).decode())
                    if len(login) == 1:
                        out.append("334 UGFzc3dvcmQ6")
                    else:
                        with self.lock:
                            self.auth.append(tuple(login))
                        ok = tuple(login) == tuple(self.auth_login)
                        out.append("235 2.7.0 OK" if ok else "535 5.7.8 Bad credentials")
                        login = None
                    continue
                verb = line.split(" ", 1)[0].upper()
                if done_txn and self.close_after == "421":
                    out.append("421 4.4.2 Idle too long, closing")
                    c.sendall("".join(l + "\r\n" for l in out).encode())
                    return
                if verb == "EHLO":
                    caps = ["250-scripted", "250-8BITMIME", "250-ENHANCEDSTATUSCODES"]
                    if self.pipelining:
                        caps.append("250-PIPELINING")
                    if self.auth_login:
                        caps.append("250-AUTH LOGIN")
                    caps.append("250 SIZE 50000000")
                    out.extend(caps)
                elif verb == "HELO" or verb == "NOOP":
                    out.append("250 OK")
                elif verb == "MAIL":
                    mail_from, rcpts = line, []
                    out.append("250 2.1.0 OK")
                elif verb == "RCPT":
                    addr = line[line.find("<") + 1:line.rfind(">")]
                    reply = self.rcpt_reply(addr) if self.rcpt_reply else None
                    if reply is None:
                        rcpts.append(addr)
                        reply = "250 2.1.5 OK"
                    out.append(reply)
                elif verb == "DATA":
                    if not rcpts:
                        out.append("554 5.5.1 No valid recipients")
                    else:
                        out.append("354 End data with <CR><LF>.<CR><LF>")
                        in_data, data = True, b""
                elif verb == "RSET":
                    mail_from, rcpts = None, []
                    out.append("250 2.0.0 OK")
                elif verb == "AUTH" and self.auth_login and line.upper() == "AUTH LOGIN":
                    login = []
                    out.append("334 VXNlcm5hbWU6")
                elif verb == "QUIT":
                    out.append("221 2.0.0 Bye")
                    c.sendall("".join(l + "\r\n" for l in out).encode())
                    return
                else:
                    out.append("500 5.5.2 Unknown command")
            if out:
                # One write for every reply of the batch, as servers that
                # offer PIPELINING do.
                c.sendall("".join(l + "\r\n" for l in out).encode())


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


def test_global_connection_cap():
    with SmtpServer(delay=0.1) as s:
        run = live(s.url, count=12, concurrent=1, max_total=3)
        assert [r["err"] for r in run.results] == [0] * 12, run.results
        assert s.peak_connections() <= 3 and s.connections() == 3, (s.peak_connections(), s.connections())


def test_waiting_for_a_connection_counts_against_the_timeout():
    # One connection for the key, a server that takes 1 s per message, and
    # 1.5 s per transaction: the first is sent, the second times out at its
    # final dot, the third while still waiting in the queue.
    with SmtpServer(delay=1) as s:
        run = live(s.url, count=3, concurrent=1, max_conn=1, key="k", timeout_ms=1500,
                   response_timeout_ms=5000)
        by_i = {r["i"]: r for r in run.results}
        assert by_i[0]["err"] == 0, run.results
        assert by_i[1]["err_name"] == "timeout" and by_i[1]["stage"] == "body", run.results
        assert by_i[2]["err_name"] == "timeout" and by_i[2]["stage"] == "connect", run.results
        assert "free connection" in by_i[2]["errmsg"], by_i[2]
        assert 1400 <= by_i[2]["t_ms"] < 2500, by_i[2]
        assert s.peak_connections() == 1


def test_silent_server_is_bounded():
    with RawServer("silent") as srv:  # a black-holed MTA: accepts, never says a word
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
    # The final-dot reply is awaited without blocking the loop (libcurl's
    # SMTP blocks there, curl issue #8555: why smtp.h is our own), and no
    # longer than the response timeout.
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


# ---- non-blocking: one slow server never holds up another ----------------------------

def test_slow_server_does_not_hold_up_a_fast_one():
    with SmtpServer(delay=2) as slow, SmtpServer() as fast:
        run = live(slow.url, scenario="two", url2=fast.url, count_a=1, count=20)
        slow_r = [r for r in run.results if r["target"] == "a"]
        fast_r = [r for r in run.results if r["target"] == "b"]
        assert len(slow_r) == 1 and len(fast_r) == 20, run.results
        assert all(r["err"] == 0 for r in run.results), run.results
        assert slow_r[0]["t_ms"] >= 1900, slow_r
        # Every send to the fast server completed while the slow one was
        # still waiting for its final reply.
        assert max(r["t_ms"] for r in fast_r) < slow_r[0]["t_ms"] - 1000, run.results
        assert run.results[-1]["target"] == "a", run.results
        assert run.stall_ms < 250, run.stall_ms
        assert fast.messages_count() == 20 and slow.messages_count() == 1


def test_silent_final_dot_times_out_without_delaying_others():
    with ScriptedServer(silent_dot=True) as mute, SmtpServer() as fast:
        run = live(mute.url, scenario="two", url2=fast.url, count_a=2, count=30,
                   response_timeout_ms=1000, timeout_ms=20000)
        mute_r = [r for r in run.results if r["target"] == "a"]
        fast_r = [r for r in run.results if r["target"] == "b"]
        assert len(mute_r) == 2 and len(fast_r) == 30, run.results
        for r in mute_r:
            assert r["err_name"] == "timeout" and r["stage"] == "body", r
            assert r["data_code"] == 0 and r["accepted"] == 1, r
            assert r["verdict"] == "temp" and r["error"] == "connect", r
            assert 900 <= r["t_ms"] < 3000, r
        assert all(r["err"] == 0 for r in fast_r), fast_r
        assert max(r["t_ms"] for r in fast_r) < min(r["t_ms"] for r in mute_r), run.results
        assert run.stall_ms < 250, run.stall_ms
        assert len(mute.messages) == 2  # it got the whole message, then said nothing


# ---- PIPELINING --------------------------------------------------------------------------

def test_pipelining_sends_the_envelope_in_one_write():
    rcpts = ["a@example.org", "bad@example.org", "c@example.org"]
    with ScriptedServer(pipelining=True,
                        rcpt_reply=lambda a: "550 5.1.1 no such user" if a.startswith("bad") else None) as s:
        run = live(s.url, security="plain", rcpts=",".join(rcpts), count=5)
        assert [r["err"] for r in run.results] == [0] * 5, run.results
        r = run.results[0]
        assert rcpt_codes(r) == [250, 550, 250] and r["accepted"] == 2, r
        assert r["rcpts"][1]["enhanced"] == "5.1.1", r
        # MAIL, every RCPT and DATA arrived in one piece, every time.
        with s.lock:
            envelopes = [c for _, c in s.chunks if c.startswith(b"MAIL FROM:")]
        assert len(envelopes) == 5, envelopes
        for c in envelopes:
            assert c.count(b"RCPT TO:") == 3 and c.endswith(b"DATA\r\n"), c
        assert s.sessions == 1 and run.stats["connections_opened"] == 1, run.stats
        assert sum(r["reused"] for r in run.results) == 4
        assert [m[2] for m in s.messages] == [["a@example.org", "c@example.org"]] * 5


def test_pipelining_all_rejected_keeps_the_connection():
    with ScriptedServer(pipelining=True, rcpt_reply=lambda a: "550 5.1.1 unknown") as s:
        run = live(s.url, security="plain", rcpts="x@example.org,y@example.org", count=3)
        for r in run.results:
            assert r["err_name"] == "rejected" and r["stage"] == "rcpt", r
            assert rcpt_codes(r) == [550, 550] and r["accepted"] == 0 and r["data_code"] == 0, r
        # The pipelined DATA got 554, the client reset, and the connection
        # served the next transaction.
        # (The last transaction's connection closes at shutdown, before or
        # after its RSET.)
        wait_for(lambda: s.commands_of().count("RSET") >= 2, 5, what="RSET")
        cmds = s.commands_of()
        assert cmds.count("DATA") == 3 and sum(c.startswith("EHLO") for c in cmds) == 1, cmds
        assert s.sessions == 1 and s.messages == [] and run.stats["connections_opened"] == 1, run.stats


def test_without_pipelining_one_command_at_a_time():
    with ScriptedServer(pipelining=False) as s:
        r = live(s.url, security="plain", rcpts="a@example.org,b@example.org").one
        assert r["err"] == 0 and r["data_code"] == 250, r
        with s.lock:
            chunks = [c for _, c in s.chunks]
        mail = [c for c in chunks if c.startswith(b"MAIL FROM:")]
        assert mail and b"RCPT" not in mail[0], chunks


# ---- broken connections -------------------------------------------------------------------

def test_connection_dropped_mid_data_is_temporary():
    body = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 300
    with tempfile.NamedTemporaryFile(suffix=".eml") as f, ScriptedServer(drop_after=20000) as s:
        f.write(body)
        f.flush()
        r = live(s.url, security="plain", msg_file=f.name).one
        assert r["err_name"] == "closed" and r["stage"] == "body", r
        assert r["data_code"] == 0 and r["accepted"] == 1, r
        assert r["verdict"] == "temp" and r["error"] == "connect", r
        assert s.messages == []


def test_large_message_streams_exact_bytes_over_tls():
    lines = [b".starts with a dot %d" % i if i % 7 == 0 else b"line %d " % i + b"y" * 900
             for i in range(3000)]
    body = b"Subject: large\r\n\r\n" + b"\r\n".join(lines)  # no final CRLF: one is added
    with tempfile.NamedTemporaryFile(suffix=".eml") as f, \
            SmtpServer(security="starttls", auth=(USER, PASSWORD)) as s:
        f.write(body)
        f.flush()
        r = live(s.url, security="required", user=USER, password=PASSWORD, verify=1,
                 cafile=s.cafile, msg_file=f.name).one
        assert r["err"] == 0 and r["data_code"] == 250, r
        assert s.messages()[0]["data"] == body + b"\r\n"


def test_idle_connection_closed_by_the_server_with_421():
    # The server closes a session at the command after each transaction
    # (its idle timer ran out): the transaction moves to a fresh connection.
    with ScriptedServer(close_after="421") as s:
        run = live(s.url, security="plain", count=5)
        assert [r["err"] for r in run.results] == [0] * 5, run.results
        assert run.stats["retried_dead"] == 4, run.stats
        assert s.sessions == 5 and len(s.messages) == 5


def test_idle_connection_closed_by_the_server_with_eof():
    # Closed right after the final reply: the next send either finds the
    # connection gone from the pool or retries once on a fresh one.
    with ScriptedServer(close_after="eof") as s:
        run = live(s.url, security="plain", count=5)
        assert [r["err"] for r in run.results] == [0] * 5, run.results
        assert s.sessions == 5 and len(s.messages) == 5
    with ScriptedServer(close_after="eof") as s:
        run = live(s.url, security="plain", count=3, gap_ms=300)
        assert [r["err"] for r in run.results] == [0] * 3, run.results
        assert run.stats["retried_dead"] == 0, run.stats  # the pool had already dropped it
        assert [r["reused"] for r in run.results] == [0, 0, 0], run.results
        assert s.sessions == 3


def test_idle_timeout_closes_pooled_connections():
    with SmtpServer() as s:
        run = live(s.url, count=3, gap_ms=500, idle_ms=150)
        assert [r["err"] for r in run.results] == [0] * 3, run.results
        assert s.connections() == 3 and [r["reused"] for r in run.results] == [0, 0, 0]
        wait_for(lambda: s.active_connections() == 0, 5, what="QUIT of idle connections")
    with SmtpServer() as s:
        run = live(s.url, count=3, gap_ms=100, idle_ms=5000)
        assert s.connections() == 1 and [r["reused"] for r in run.results] == [0, 1, 1]


# ---- servers that are not what the route says -----------------------------------------

def test_tls_to_a_plain_text_port_is_a_permanent_mismatch():
    with SmtpServer() as s:
        r = live("smtps://127.0.0.1:%d" % s.port).one
        assert r["err_name"] == "tls_mismatch" and r["stage"] == "tls", r
        assert r["verdict"] == "perm" and r["error"] == "tls", r


def test_a_server_that_does_not_speak_smtp():
    with ScriptedServer(banner="HTTP/1.1 400 Bad Request") as s:
        r = live(s.url, security="plain").one
        assert r["err_name"] == "protocol", r
        assert r["verdict"] == "temp" and r["error"] == "provider", r


def test_auth_login_when_plain_is_not_offered():
    with ScriptedServer(auth_login=(USER, PASSWORD)) as s:
        run = live(s.url, security="plain", user=USER, password=PASSWORD)
        assert run.one["err"] == 0, run.one
        assert s.auth == [(USER, PASSWORD)]
        assert PASSWORD not in run.output
        run = live(s.url, security="plain", user=USER, password="nope")
        assert run.one["err_name"] == "auth" and run.one["code"] == 535, run.one


def test_no_password_in_clear_text_unless_the_operator_chose_it():
    # Required STARTTLS (a tenant's `starttls`) never falls back to clear text.
    with ScriptedServer(auth_login=(USER, PASSWORD)) as s:
        r = live(s.url, security="required", user=USER, password=PASSWORD).one
        assert r["err_name"] != "ok", r
        assert not any(c.upper().startswith("AUTH") for c in s.commands_of()), s.commands_of()
        assert s.auth == []
    # The platform's smtp:// ("STARTTLS when offered") never sends its login
    # in clear text either: no STARTTLS, no session (CONTRACT.md v1.1).
    with ScriptedServer(auth_login=(USER, PASSWORD)) as s:
        r = live(s.url, security="try", user=USER, password=PASSWORD).one
        assert r["err_name"] == "no_starttls" and r["error"] == "tls", r
        assert not any(c.upper().startswith("AUTH") for c in s.commands_of()), s.commands_of()
        assert s.auth == []
    # smtp+insecure:// is the operator's choice: then it goes on in clear text.
    with ScriptedServer(auth_login=(USER, PASSWORD)) as s:
        r = live(s.url, security="insecure", user=USER, password=PASSWORD).one
        assert r["err_name"] == "ok", r
        assert any(c.upper().startswith("AUTH") for c in s.commands_of()), s.commands_of()


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
