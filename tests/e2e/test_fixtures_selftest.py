"""Self-test of the end-to-end fixtures, with stdlib clients (smtplib,
urllib) and curl standing in for relayq. If these fail, no e2e result means
anything. Needs no relayq binary: the Worker and run_relayq wrappers are
exercised with stand-in scripts.
"""

import base64
import json
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

import harness
from harness import (MailgunFake, RedisServer, SmtpServer, Worker, certs, free_port,
                     parse_message, push_job, run_relayq, status, wait_for, wait_status)

import msgpack

FIXTURES = os.path.join(harness.ROOT, "tests", "fixtures")


def _msg(subject="hello", body="body\r\n"):
    return ("From: a@sender.example\r\nTo: b@rcpt.example\r\nSubject: %s\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n%s" % (subject, body)).encode("utf-8")


def _fast_start(fixture):
    t0 = time.monotonic()
    fixture.start()
    took = time.monotonic() - t0
    assert took < 0.9, "fixture took %.3f s to start" % took
    return fixture


# ---- SMTP -------------------------------------------------------------------------

def test_smtp_plain_records_exact_bytes():
    # Leading dots are transparency-stuffed by smtplib and must come back
    # unstuffed; 8-bit UTF-8 must come back byte for byte.
    body = ".starts with a dot\r\n..two dots\r\nGrüße 🚀\r\n.\r\nend\r\n"
    data = _msg("plain", body)
    with _fast_start(SmtpServer()) as s:
        assert s.url == "smtp://127.0.0.1:%d" % s.port and s.cafile is None
        with smtplib.SMTP(s.host, s.port, timeout=5) as c:
            c.ehlo("client.example")
            assert "auth" not in c.esmtp_features, c.esmtp_features
            refused = c.sendmail("a@sender.example", ["b@rcpt.example", "c@rcpt.example"], data)
            assert refused == {}
        msgs = s.messages()
        assert len(msgs) == 1 and s.messages_count() == 1
        m = msgs[0]
        assert m["data"] == data, (m["data"], data)
        assert m["mail_from"] == "a@sender.example"
        assert m["rcpt_tos"] == ["b@rcpt.example", "c@rcpt.example"]
        assert m["tls"] is False and m["auth_user"] is None
        assert abs(m["received_at"] - time.time()) < 5
        assert parse_message(m["data"])["subject"] == "plain"
        assert s.connections() == 1, s.connections()  # the readiness probe is not counted
        [t] = s.transactions()
        assert t["data_reply"].startswith("250 ") and len(t["rcpts"]) == 2
        assert t["session_id"] == m["session_id"]


def test_smtp_plain_auth():
    with SmtpServer(auth=("user", "pw"), require_auth=True) as s:
        with smtplib.SMTP(s.host, s.port, timeout=5) as c:
            c.ehlo()
            assert "auth" in c.esmtp_features
            code, _ = c.mail("a@sender.example")
            assert code == 530, code  # MAIL before AUTH
            c.rset()
            c.login("user", "pw")
            c.sendmail("a@sender.example", ["b@rcpt.example"], _msg())
        assert s.messages()[0]["auth_user"] == "user"
        assert s.auth_attempts[-1][1:] == ("user", True)


def test_smtp_starttls_auth():
    with _fast_start(SmtpServer(security="starttls", auth=("user", "s3cret"),
                                require_auth=True)) as s:
        assert os.path.exists(s.cafile) and s.url.startswith("smtp://")
        ctx = certs.client_context(s.cafile)  # verifies the chain and 127.0.0.1
        with smtplib.SMTP(s.host, s.port, timeout=5) as c:
            c.ehlo()
            assert "starttls" in c.esmtp_features and "auth" not in c.esmtp_features
            code, _ = c.mail("a@sender.example")
            assert code == 530, code  # STARTTLS required first (RFC 3207)
            c.starttls(context=ctx)
            c.ehlo()
            assert "auth" in c.esmtp_features and "PLAIN" in c.esmtp_features["auth"]
            try:
                c.login("user", "wrong")
                raise AssertionError("a wrong password was accepted")
            except smtplib.SMTPAuthenticationError as e:
                assert e.smtp_code == 535
            c.login("user", "s3cret")
            c.sendmail("a@sender.example", ["b@rcpt.example"], _msg("tls"))
        m = s.messages()[0]
        assert m["tls"] is True and m["auth_user"] == "user"
        # AUTH LOGIN works as well (libcurl may pick either).
        with smtplib.SMTP(s.host, s.port, timeout=5) as c:
            c.starttls(context=ctx)
            c.ehlo()
            c.user, c.password = "user", "s3cret"
            code, _ = c.auth("LOGIN", c.auth_login)
            assert code == 235, code
        # smtplib tried every mechanism with the wrong password, then PLAIN, then LOGIN.
        assert ("PLAIN", "user", False) in s.auth_attempts, s.auth_attempts
        assert s.auth_attempts[-2:] == [("PLAIN", "user", True), ("LOGIN", "user", True)], \
            s.auth_attempts


def test_smtp_starttls_optional():
    with SmtpServer(security="starttls", require_starttls=False) as s:
        with smtplib.SMTP(s.host, s.port, timeout=5) as c:
            c.sendmail("a@sender.example", ["b@rcpt.example"], _msg())
        assert s.messages()[0]["tls"] is False


def test_smtp_implicit_tls():
    with _fast_start(SmtpServer(security="tls", auth=("u", "p"))) as s:
        assert s.url == "smtps://127.0.0.1:%d" % s.port
        assert s.url_with_auth() == "smtps://u:p@127.0.0.1:%d" % s.port
        with smtplib.SMTP_SSL(s.host, s.port, context=certs.client_context(s.cafile),
                              timeout=5) as c:
            c.login("u", "p")
            c.sendmail("a@sender.example", ["b@rcpt.example"], _msg("smtps"))
        m = s.messages()[0]
        assert m["tls"] is True and m["auth_user"] == "u"
        # A client speaking plain SMTP to the TLS port gets no greeting.
        with socket.create_connection((s.host, s.port), timeout=2) as raw:
            raw.sendall(b"EHLO x\r\n")
            try:
                got = raw.recv(100)
            except (socket.timeout, ConnectionError):
                got = b""
            assert not got.startswith(b"220"), got


def test_smtp_scripted_replies():
    def rcpt(addr, st):
        assert st["rcpt_number"] >= 1 and "session_id" in st
        return "550 5.1.1 No such user" if addr.startswith("bad") else None

    def data(envelope, count):
        return "451 4.3.0 Try later" if count == 1 else None

    def mail(addr, st):
        return "553 5.7.1 Sender rejected" if addr == "spam@sender.example" else None

    with SmtpServer(rcpt_reply=rcpt, data_reply=data, mail_reply=mail) as s:
        with smtplib.SMTP(s.host, s.port, timeout=5) as c:
            c.ehlo()
            assert c.mail("spam@sender.example")[0] == 553
            c.rset()
            # bad rcpt refused, good accepted, DATA deferred once
            try:
                c.sendmail("a@sender.example", ["good@rcpt.example", "bad@rcpt.example"], _msg())
                raise AssertionError("first DATA should have been deferred")
            except smtplib.SMTPDataError as e:
                assert e.smtp_code == 451 and b"Try later" in e.smtp_error
            refused = c.sendmail("a@sender.example", ["good@rcpt.example", "bad@rcpt.example"],
                                 _msg())
            assert refused == {"bad@rcpt.example": (550, b"5.1.1 No such user")}, refused
        msgs = s.messages()
        assert len(msgs) == 1 and msgs[0]["rcpt_tos"] == ["good@rcpt.example"]
        txns = s.transactions()
        assert [t["mail_reply"][:3] for t in txns] == ["553", "250", "250"]
        assert txns[1]["data_reply"] == "451 4.3.0 Try later" and txns[1]["data_attempt"] == 1
        assert txns[2]["data_reply"].startswith("250") and txns[2]["data_attempt"] == 2
        assert txns[2]["rcpts"] == [
            {"address": "good@rcpt.example", "reply": "250 2.1.5 OK"},
            {"address": "bad@rcpt.example", "reply": "550 5.1.1 No such user"}]
        assert not s.errors


def test_smtp_max_rcpt():
    with SmtpServer(max_rcpt=2) as s:
        with smtplib.SMTP(s.host, s.port, timeout=5) as c:
            c.ehlo()
            c.mail("a@sender.example")
            replies = [c.rcpt("r%d@rcpt.example" % i)[0] for i in range(4)]
            assert replies == [250, 250, 452, 452], replies
            assert c.data(_msg())[0] == 250
            c.mail("a@sender.example")  # a new transaction starts counting again
            assert c.rcpt("r9@rcpt.example")[0] == 250
        assert s.messages()[0]["rcpt_tos"] == ["r0@rcpt.example", "r1@rcpt.example"]
        assert s.transactions()[0]["rcpts"][2]["reply"] == "452 4.5.3 Too many recipients"


def test_smtp_script_error_is_reported():
    with SmtpServer(rcpt_reply=lambda a, st: 1 / 0) as s:
        with smtplib.SMTP(s.host, s.port, timeout=5) as c:
            c.ehlo()
            c.mail("a@sender.example")
            assert c.rcpt("x@rcpt.example")[0] == 451
        errors = s.take_errors()
        assert len(errors) == 1 and isinstance(errors[0], ZeroDivisionError)
    # Not taken: leaving the block fails the test with the traceback.
    try:
        with SmtpServer(rcpt_reply=lambda a, st: 1 / 0) as s:
            with smtplib.SMTP(s.host, s.port, timeout=5) as c:
                c.ehlo()
                c.mail("a@sender.example")
                assert c.rcpt("x@rcpt.example")[0] == 451
    except AssertionError as e:
        assert "ZeroDivisionError" in str(e) and "scripted callable" in str(e), e
    else:
        raise AssertionError("an exception in a scripted reply passed unnoticed")


def test_smtp_delay_is_per_connection():
    delay = 0.5
    with SmtpServer(delay=delay) as s:
        barrier = threading.Barrier(3)
        errors = []

        def send(i):
            try:
                with smtplib.SMTP(s.host, s.port, timeout=5) as c:
                    c.ehlo()
                    barrier.wait(5)
                    t0 = time.monotonic()
                    c.sendmail("a@sender.example", ["b%d@rcpt.example" % i], _msg())
                    assert time.monotonic() - t0 >= delay * 0.9
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=send, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert not errors and s.messages_count() == 3, errors
        # Every transaction began before the first one ended: the DATA waits
        # overlapped instead of queueing behind each other.
        txns = s.transactions()
        assert max(t["started_at"] for t in txns) < min(t["ended_at"] for t in txns), txns


def test_smtp_500_messages_20_connections():
    n_conn, per_conn = 20, 25
    errors = []
    barrier = threading.Barrier(n_conn)
    with SmtpServer() as s:
        def client(i):
            try:
                with smtplib.SMTP(s.host, s.port, timeout=10) as c:
                    c.ehlo()
                    barrier.wait(10)  # all 20 sessions open at once
                    for j in range(per_conn):
                        c.sendmail("a@sender.example", ["c%d@rcpt.example" % i],
                                   _msg("m-%d-%d" % (i, j)))
            except Exception as e:  # reported below; a thread cannot fail the test itself
                errors.append(e)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(n_conn)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        assert s.messages_count() == n_conn * per_conn
        subjects = {parse_message(m["data"])["subject"] for m in s.messages()}
        assert len(subjects) == n_conn * per_conn
        assert s.connections() == n_conn
        assert s.peak_connections() == n_conn, s.peak_connections()
        wait_for(lambda: s.active_connections() == 0, 5, what="sessions to close")


def test_smtp_standalone_maildir():
    tmp = tempfile.mkdtemp(prefix="relayq-selftest-")
    try:
        maildir = os.path.join(tmp, "mail")
        proc = subprocess.Popen([sys.executable, os.path.join(FIXTURES, "smtp_server.py"),
                                 "--port", "0", "--maildir", maildir, "--security", "starttls",
                                 "--auth", "u:p"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            port, cafile = _read_banner(proc)
            with smtplib.SMTP("127.0.0.1", port, timeout=5) as c:
                c.starttls(context=certs.client_context(cafile))
                c.login("u", "p")
                c.sendmail("a@sender.example", ["b@rcpt.example"], _msg("standalone"))
            eml = os.path.join(maildir, "0001.eml")
            meta_path = os.path.join(maildir, "0001.json")
            wait_for(lambda: os.path.exists(meta_path), 5, what="0001.json")
            with open(eml, "rb") as f:
                assert f.read() == _msg("standalone")
            with open(meta_path) as f:
                meta = json.load(f)
            assert meta["mail_from"] == "a@sender.example" and meta["rcpt_tos"] == ["b@rcpt.example"]
            assert meta["tls"] is True and meta["size"] == len(_msg("standalone"))
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=5)
            assert proc.returncode == 0 and "stopped after 1 messages" in out, out
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_banner(proc, timeout=5.0):
    """Reads the standalone server's first lines: (port, cafile or None)."""
    lines = []
    done = threading.Event()

    def reader():
        for line in proc.stdout:
            lines.append(line.strip())
            if line.startswith("listening on"):
                break
        done.set()

    threading.Thread(target=reader, daemon=True).start()
    if not done.wait(timeout):
        raise AssertionError("standalone SMTP server printed no 'listening on' line")
    cafile = next((ln.split(" ", 1)[1] for ln in lines if ln.startswith("cafile ")), None)
    assert lines and lines[-1].startswith("listening on 127.0.0.1:"), (lines, proc.stderr)
    return int(lines[-1].rsplit(":", 1)[1]), cafile


def test_curl_trusts_fixture_cert():
    # relayq sends through libcurl: prove curl verifies the fixture's
    # certificate with --cacert (CURLOPT_CAINFO) on both TLS modes.
    harness.skip_unless(shutil.which("curl"), "curl is not installed (scripts/deps.sh installs it)")
    tmp = tempfile.mkdtemp(prefix="relayq-selftest-")
    try:
        path = os.path.join(tmp, "msg.eml")
        with open(path, "wb") as f:
            f.write(_msg("curl"))
        for security, extra in (("tls", []), ("starttls", ["--ssl-reqd"])):
            with SmtpServer(security=security, auth=("u", "p")) as s:
                r = subprocess.run(["curl", "-sS", "--max-time", "10", "--url", s.url,
                                    "--cacert", s.cafile, "--user", "u:p",
                                    "--mail-from", "a@sender.example",
                                    "--mail-rcpt", "b@rcpt.example", "-T", path] + extra,
                                   capture_output=True, text=True, timeout=20)
                assert r.returncode == 0, (security, r.stderr)
                assert s.messages()[0]["data"] == _msg("curl")
                assert s.messages()[0]["auth_user"] == "u"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---- Mailgun ---------------------------------------------------------------------

def _basic(key, user="api"):
    return "Basic " + base64.b64encode(("%s:%s" % (user, key)).encode()).decode()


def _multipart(fields, files):
    boundary = "----relayq" + uuid.uuid4().hex
    out = []
    for name, value in fields:
        out.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n"
                    % (boundary, name)).encode() + value.encode("utf-8") + b"\r\n")
    for name, filename, ctype, data in files:
        out.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                    "Content-Type: %s\r\n\r\n" % (boundary, name, filename, ctype))
                   .encode("utf-8") + data + b"\r\n")
    out.append(("--%s--\r\n" % boundary).encode())
    return b"".join(out), "multipart/form-data; boundary=" + boundary


def _post(url, body, ctype, auth):
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": ctype, "Authorization": auth})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_mailgun_multipart_send():
    pdf = b"%PDF-1.4\r\n" + bytes(range(256)) * 8 + b"\r\n--not-a-boundary\r\n%%EOF"
    with _fast_start(MailgunFake()) as mg:
        body, ctype = _multipart(
            [("from", "Shop <shop@mg.example.com>"), ("to", "a@x.example, \"Doe, J\" <j@x.example>"),
             ("to", "b@x.example"), ("cc", "c@x.example"), ("bcc", "d@x.example"),
             ("subject", "Fattura n. 42 — Grüße 🚀"), ("text", "hi"), ("html", "<p>hi</p>"),
             ("h:X-Job-Id", "j1"), ("v:tenant", "t1"), ("o:tag", "invoice")],
            [("attachment", "fattura-42.pdf", "application/pdf", pdf),
             ("attachment", "Grüße.txt", "text/plain", b"x\r\n")])
        st, headers, resp = _post(mg.base_url + "/v3/mg.example.com/messages", body, ctype,
                                  _basic("key-test"))
        assert st == 200, (st, resp)
        j = json.loads(resp)
        assert j["message"] == "Queued. Thank you."
        assert j["id"].startswith("<") and j["id"].endswith("@mg.example.com>"), j
        [r] = mg.requests()
        assert r["auth_ok"] and r["path"] == "/v3/mg.example.com/messages" and r["status"] == 200
        assert r["provider_id"] == j["id"]
        f = r["fields"]
        assert f["subject"] == ["Fattura n. 42 — Grüße 🚀"], f["subject"]
        assert harness.split_addresses(f["to"]) == ["a@x.example", "\"Doe, J\" <j@x.example>",
                                                    "b@x.example"]
        assert f["h:X-Job-Id"] == ["j1"] and f["v:tenant"] == ["t1"] and f["o:tag"] == ["invoice"]
        assert r["files"]["attachment"] == [("fattura-42.pdf", "application/pdf", pdf),
                                            ("Grüße.txt", "text/plain", b"x\r\n")]
        assert "Authorization" not in r["headers"]  # the key is never recorded


def test_mailgun_urlencoded_and_mime():
    import urllib.parse
    with MailgunFake(api_key="key-abc", domain="mg.t.example") as mg:
        body = urllib.parse.urlencode([("from", "a@mg.t.example"), ("to", "x@y.example"),
                                       ("to", "z@y.example"), ("text", "ü")]).encode()
        st, _, resp = _post(mg.base_url + "/v3/mg.t.example/messages", body,
                            "application/x-www-form-urlencoded", _basic("key-abc"))
        assert st == 200, resp
        assert mg.requests()[0]["fields"]["to"] == ["x@y.example", "z@y.example"]
        assert mg.requests()[0]["fields"]["text"] == ["ü"]
        raw = _msg("mime")
        body, ctype = _multipart([("to", "x@y.example")],
                                 [("message", "message.mime", "message/rfc822", raw)])
        st, _, resp = _post(mg.base_url + "/v3/mg.t.example/messages.mime", body, ctype,
                            _basic("key-abc"))
        assert st == 200, resp
        r = mg.sends()[1]
        assert r["files"]["message"][0][2] == raw
        # Missing parameters get 400 with a message.
        body, ctype = _multipart([("to", "x@y.example"), ("text", "t")], [])
        st, _, resp = _post(mg.base_url + "/v3/mg.t.example/messages", body, ctype,
                            _basic("key-abc"))
        assert st == 400 and "from" in json.loads(resp)["message"], resp


def test_mailgun_auth_domain_and_probe():
    with MailgunFake() as mg:
        body, ctype = _multipart([("from", "a@mg.example.com"), ("to", "b@x.example"),
                                  ("text", "t")], [])
        url = mg.base_url + "/v3/mg.example.com/messages"
        st, _, resp = _post(url, body, ctype, _basic("wrong"))
        assert (st, resp) == (401, b"Forbidden"), (st, resp)
        st, _, resp = _post(url, body, ctype, _basic("key-test", user="notapi"))
        assert st == 401
        st, _, resp = _post(mg.base_url + "/v3/other.example/messages", body, ctype,
                            _basic("key-test"))
        assert st == 404 and json.loads(resp) == {"message": "Domain not found: other.example"}
        req = urllib.request.Request(mg.base_url + "/v3/domains/mg.example.com",
                                     headers={"Authorization": _basic("key-test")})
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 200
            assert json.loads(resp.read())["domain"]["name"] == "mg.example.com"
        req = urllib.request.Request(mg.base_url + "/v3/domains/mg.example.com")
        try:
            urllib.request.urlopen(req, timeout=5)
            raise AssertionError("unauthenticated probe succeeded")
        except urllib.error.HTTPError as e:
            assert e.code == 401
        assert [r["auth_ok"] for r in mg.requests()] == [False, False, True, True, False]


def test_mailgun_script_and_keepalive():
    def script(n):
        if n == 1:
            return 429, {"Retry-After": "3"}, {"message": "Too many requests"}
        if n == 2:
            return 500, {}, "Internal Server Error"
        return None

    with MailgunFake(script=script) as mg:
        body, ctype = _multipart([("from", "a@mg.example.com"), ("to", "b@x.example"),
                                  ("text", "t")], [])
        url = mg.base_url + "/v3/mg.example.com/messages"
        st, headers, resp = _post(url, body, ctype, _basic("key-test"))
        assert st == 429 and headers.get("Retry-After") == "3", (st, headers)
        st, _, _ = _post(url, body, ctype, _basic("key-test"))
        assert st == 500
        st, _, _ = _post(url, body, ctype, _basic("key-test"))
        assert st == 200
        assert [r["status"] for r in mg.requests()] == [429, 500, 200]
        # HTTP/1.1 keep-alive and Expect: 100-continue, as libcurl uses them.
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", mg.port, timeout=5)
        for _ in range(2):
            conn.request("POST", "/v3/mg.example.com/messages", body=body,
                         headers={"Content-Type": ctype, "Authorization": _basic("key-test"),
                                  "Expect": "100-continue"})
            resp = conn.getresponse()
            assert resp.status == 200
            resp.read()
        conn.close()
        assert len(mg.sends()) == 5


def test_curl_mailgun_multipart():
    # libcurl's own multipart encoding (what the worker's curl_mime sends),
    # with a 2 MB attachment so curl uses Expect: 100-continue.
    harness.skip_unless(shutil.which("curl"), "curl is not installed (scripts/deps.sh installs it)")
    tmp = tempfile.mkdtemp(prefix="relayq-selftest-")
    try:
        big = os.urandom(2 * 1024 * 1024)
        pdf, eml = os.path.join(tmp, "report.pdf"), os.path.join(tmp, "msg.eml")
        with open(pdf, "wb") as f:
            f.write(big)
        with open(eml, "wb") as f:
            f.write(_msg("mime via curl"))
        with MailgunFake() as mg:
            r = subprocess.run(
                ["curl", "-sS", "--max-time", "10", "-u", "api:key-test",
                 mg.base_url + "/v3/mg.example.com/messages",
                 "-F", "from=Shop <shop@mg.example.com>", "-F", "to=a@x.example",
                 "-F", "subject=Grüße", "-F", "text=hello",
                 "-F", "attachment=@%s;type=application/pdf" % pdf],
                capture_output=True, text=True, timeout=20)
            assert r.returncode == 0 and json.loads(r.stdout)["message"] == "Queued. Thank you.", r
            r = subprocess.run(
                ["curl", "-sS", "--max-time", "10", "-u", "api:key-test",
                 mg.base_url + "/v3/mg.example.com/messages.mime",
                 "-F", "to=a@x.example", "-F", "message=@%s;type=message/rfc822" % eml],
                capture_output=True, text=True, timeout=20)
            assert r.returncode == 0 and "Queued" in r.stdout, r
            first, second = mg.sends()
            assert first["fields"]["subject"] == ["Grüße"]
            assert first["files"]["attachment"] == [("report.pdf", "application/pdf", big)]
            assert second["files"]["message"] == [("msg.eml", "message/rfc822",
                                                   _msg("mime via curl"))]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---- Redis, CLI and worker wrappers ------------------------------------------------

def test_redis_server_restart_and_helpers():
    t0 = time.monotonic()
    with RedisServer(password="p@ss:w/rd", appendonly=True) as r:
        assert time.monotonic() - t0 < 1.0
        assert r.url == "redis://:p%40ss%3Aw%2Frd@127.0.0.1:" + str(r.port)
        assert r.prefix.startswith("rqt") and r.key("status", "j1") == r.prefix + ":status:j1"
        job = {"v": 1, "id": "j1", "tenant": "t", "to": ["a@b.example"], "text": "hi",
               "attachments": [{"filename": "a.bin", "content_type": "application/octet-stream",
                                "data": b"\x00\xff"}]}
        payload = push_job(r, job)
        assert r.client.lrange(r.key("queue", "default"), 0, -1) == [payload]
        assert msgpack.unpackb(payload, raw=False) == job
        push_job(r, job, queue="bulk")
        assert r.client.llen(r.key("queue", "bulk")) == 1
        r.client.hset(r.key("status", "j1"), mapping={"state": "queued", "tenant": "t"})
        assert status(r, "j1") == {"state": "queued", "tenant": "t"}
        assert status(r, "nope") == {}
        threading.Timer(0.1, lambda: r.client.hset(r.key("status", "j1"), "state", "sent")).start()
        assert wait_status(r, "j1", timeout=5)["state"] == "sent"
        try:
            wait_status(r, "j1", states=("failed",), timeout=0.1)
            raise AssertionError("wait_status did not time out")
        except AssertionError as e:
            assert "last status" in str(e) and "'sent'" in str(e), e
        # Restart keeps the port and the data (AOF).
        port = r.port
        r.stop()
        r.start()
        assert r.port == port and status(r, "j1")["state"] == "sent"
        # A crash (SIGKILL) loses nothing acknowledged either: appendfsync always.
        r.client.set(r.key("x"), b"1")
        r.kill()
        r.start()
        assert r.client.get(r.key("x")) == b"1"
        other = redis_without_password_fails(r)
        assert other
    assert not os.path.exists(r.dir)


def redis_without_password_fails(r):
    import redis as redis_py
    try:
        redis_py.Redis(host="127.0.0.1", port=r.port).ping()
        return False
    except redis_py.AuthenticationError:
        return True
    except redis_py.ResponseError:
        return True


def test_wait_for_and_misc():
    assert wait_for(lambda: 42, timeout=1) == 42
    t0 = time.monotonic()
    try:
        wait_for(lambda: None, timeout=0.2, what="nothing")
        raise AssertionError("wait_for did not time out")
    except AssertionError as e:
        assert str(e) == "timed out waiting for: nothing"
    assert time.monotonic() - t0 < 1.0
    p = free_port()
    assert 0 < p < 65536
    m = parse_message(_msg("Grüße".encode("utf-8").decode("latin-1")))
    assert m["to"] == "b@rcpt.example"
    assert os.path.isabs(harness.build_dir())


FAKE_WORKER = """#!/bin/sh
trap 'echo got TERM; kill $pid 2>/dev/null; exit 0' TERM
sleep 20 &
pid=$!
echo "fake worker $*"
echo "to stderr" >&2
wait $pid
"""

FAKE_CLI = """#!/bin/sh
echo "args: $*"
echo "secret key set: ${RELAYQ_SECRET_KEY:+yes}"
echo "leaked: ${RELAYQ_PREFIX:-none}"
cat
exit 3
"""


def test_worker_and_cli_wrappers():
    tmp = tempfile.mkdtemp(prefix="relayq-selftest-")
    saved = os.environ.get("RELAYQ_BUILD_DIR")
    os.environ["RELAYQ_BUILD_DIR"] = tmp
    os.environ["RELAYQ_PREFIX"] = "from-the-shell"  # must not reach children
    try:
        for name, text in (("relayq-worker", FAKE_WORKER), ("relayq", FAKE_CLI)):
            path = os.path.join(tmp, name)
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, 0o755)
        with RedisServer() as r, SmtpServer(auth=("u", "p")) as smtp:
            cp = run_relayq(r, "status", "j1", env={"RELAYQ_SECRET_KEY": "x"}, input="stdin!",
                            allow_private_nets=None)
            assert cp.returncode == 3
            assert cp.stdout.splitlines() == [
                "args: --redis %s --prefix %s status j1" % (r.url, r.prefix),
                "secret key set: yes", "leaked: none", "stdin!"], cp.stdout
            with Worker(r, platform_smtp=smtp, args=["--concurrency", "4"], allow_private_nets=None) as w:
                assert w.id.startswith("w-")
                wait_for(lambda: "fake worker" in w.log_text(), 5, what="worker output")
                assert ("--redis %s --prefix %s --id %s --platform-smtp smtp://u:p@127.0.0.1:%d "
                        "--concurrency 4" % (r.url, r.prefix, w.id, smtp.port)) in w.log_text()
                assert "to stderr" in w.log_text()
                assert w.stop(timeout=5) == 0
                assert "got TERM" in w.log_text()
            with Worker(r, worker_id="w-kill") as w:
                assert w.id == "w-kill"
                assert w.kill() == -signal.SIGKILL
                assert w.wait_exit(1) == -signal.SIGKILL
            w = Worker(r)
            try:
                with w:
                    wait_for(lambda: "fake worker" in w.log_text(), 5, what="worker output")
                    raise KeyError("simulated failure")
            except KeyError:
                pass
            assert not w.running() and "fake worker" in w.log_text()  # kept after close
        os.remove(os.path.join(tmp, "relayq-worker"))
        with RedisServer() as r:
            try:
                Worker(r)
                raise AssertionError("missing binary not reported")
            except AssertionError as e:
                assert "build the 'relayq-worker' target" in str(e), e
    finally:
        del os.environ["RELAYQ_PREFIX"]
        if saved is None:
            del os.environ["RELAYQ_BUILD_DIR"]
        else:
            os.environ["RELAYQ_BUILD_DIR"] = saved
        shutil.rmtree(tmp, ignore_errors=True)


def test_runner_reports():
    tmp = tempfile.mkdtemp(prefix="relayq-selftest-")
    try:
        path = os.path.join(tmp, "test_sample.py")
        with open(path, "w") as f:
            f.write("import sys\nsys.path.insert(0, %r)\nimport harness\n"
                    "def test_good():\n    pass\n"
                    "def test_bad():\n    assert 1 == 2, 'one is not two'\n"
                    "def helper():\n    raise SystemExit('not a test')\n"
                    "if __name__ == '__main__':\n    harness.main(globals())\n"
                    % os.path.dirname(os.path.abspath(harness.__file__)))
        r = subprocess.run([sys.executable, path], capture_output=True, text=True, timeout=60)
        assert r.returncode == 1, r
        lines = r.stdout.splitlines()
        assert lines[0].startswith("ok test_good (") and any(
            ln.startswith("FAIL test_bad (") for ln in lines), r.stdout
        assert "one is not two" in r.stdout and lines[-1] == "1 passed, 1 failed", r.stdout
        r = subprocess.run([sys.executable, path, "test_good"], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0 and r.stdout.splitlines()[-1] == "1 passed, 0 failed", r.stdout
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_runner_skips_are_listed_and_fail_ci():
    """harness.skip_unless / skip_part: every skip is listed with its reason;
    under CI=true a skip of something scripts/deps.sh installs fails the run,
    one marked required_in_ci=False does not."""
    tmp = tempfile.mkdtemp(prefix="relayq-selftest-")
    try:
        path = os.path.join(tmp, "test_sample.py")
        with open(path, "w") as f:
            f.write("import sys\nsys.path.insert(0, %r)\nimport harness\n"
                    "def test_needs_tool():\n    harness.skip_unless(False, 'tool X is missing')\n"
                    "def test_port():\n    harness.skip_part('port 25 is taken', required_in_ci=False)\n"
                    "def test_fine():\n    pass\n"
                    "if __name__ == '__main__':\n    harness.main(globals())\n"
                    % os.path.dirname(os.path.abspath(harness.__file__)))
        base = {k: v for k, v in os.environ.items() if k != "CI"}
        r = subprocess.run([sys.executable, path], capture_output=True, text=True, timeout=60, env=base)
        assert r.returncode == 0, r
        assert "skip test_needs_tool (" in r.stdout and "tool X is missing" in r.stdout, r.stdout
        assert "  test_port: port 25 is taken (allowed in CI)" in r.stdout, r.stdout
        r = subprocess.run([sys.executable, path], capture_output=True, text=True, timeout=60,
                           env=dict(base, CI="true"))
        assert r.returncode == 1 and "not allowed" in r.stdout and "test_needs_tool" in r.stdout, r.stdout
        r = subprocess.run([sys.executable, path, "test_port", "test_fine"], capture_output=True, text=True,
                           timeout=60, env=dict(base, CI="true"))
        assert r.returncode == 0, r.stdout
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    harness.main(globals())
