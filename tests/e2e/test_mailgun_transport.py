"""End-to-end tests of the Mailgun transport (worker/net/mailgun.c over
worker/net/curluv.c): runs $RELAYQ_BUILD_DIR/tests/test_mailgun_live against the
MailgunFake fixture and checks both what the transport reported (its RESULT
lines) and what the fake received, byte for byte.

Needs the test_mailgun_live target built.
"""

import json
import re
import os
import socket
import subprocess
import tempfile

import harness
from harness import MailgunFake, certs, free_port

KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
DOMAIN = "mg.example.com"


def run_live(fake_or_url, scenario="send", key=KEY, domain=DOMAIN, rcpts=("rcpt@example.org",),
             msg=None, count=1, concurrent=False, timeout=60, **extra):
    """Runs test_mailgun_live; returns its RESULT dicts ordered by send
    number. Fails unless it exits 0 with "0 failed", and if the API key shows
    up anywhere in its output."""
    url = fake_or_url if isinstance(fake_or_url, str) else fake_or_url.base_url
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYQ_TEST_")}
    env.update({
        "RELAYQ_TEST_MAILGUN_URL": url,
        "RELAYQ_TEST_MAILGUN_SCENARIO": scenario,
        "RELAYQ_TEST_MAILGUN_KEY": key,
        "RELAYQ_TEST_MAILGUN_DOMAIN": domain,
        "RELAYQ_TEST_MAILGUN_RCPTS": ",".join(rcpts),
        "RELAYQ_TEST_MAILGUN_COUNT": str(count),
        "RELAYQ_TEST_MAILGUN_CONCURRENT": "1" if concurrent else "0",
    })
    env.update({"RELAYQ_TEST_MAILGUN_" + k.upper(): str(v) for k, v in extra.items()})
    with tempfile.TemporaryDirectory(prefix="relayq-mg-") as d:
        if msg is not None:
            path = os.path.join(d, "message.eml")
            with open(path, "wb") as f:
                f.write(msg)
            env["RELAYQ_TEST_MAILGUN_MSG_FILE"] = path
        p = subprocess.run([harness.binary("tests/test_mailgun_live")], env=env,
                           capture_output=True, timeout=timeout)
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    summary = out.rstrip("\n").rsplit("\n", 1)[-1]
    assert p.returncode == 0 and re.fullmatch(r"\d+ passed, 0 failed", summary), \
        "test_mailgun_live failed (rc %d)\nstdout:\n%s\nstderr:\n%s" % (p.returncode, out[-4000:],
                                                                        err[-4000:])
    assert key not in out and key not in err, "the API key leaked into the output"
    results = [json.loads(line[len("RESULT "):]) for line in out.splitlines()
               if line.startswith("RESULT ")]
    return sorted(results, key=lambda r: r["i"])


def one(results):
    assert len(results) == 1, results
    return results[0]


def mime_msg(body=b"Hello.\r\n"):
    return (b"From: sender@mg.example.com\r\nTo: rcpt@example.org\r\n"
            b"Subject: relayq mailgun e2e\r\nMessage-ID: <e2e@relayq.test>\r\n"
            b"MIME-Version: 1.0\r\n\r\n" + body)


# ---- requests and the happy path ------------------------------------------------------

def test_argument_checks():
    # Invalid domains, base URLs and recipients are refused before any I/O
    # and never call back (the binary's own checks); the fake sees nothing.
    with MailgunFake(api_key=KEY, domain=DOMAIN) as f:
        assert run_live(f, scenario="unit") == []
        assert f.requests() == []


def test_send_200_with_id():
    msg = mime_msg()
    with MailgunFake(api_key=KEY, domain=DOMAIN) as f:
        r = one(run_live(f, rcpts=("a@x.example", "B <b@y.example>"), msg=msg))
        [req] = f.sends()
    assert r["curl_code"] == 0 and r["curl_error"] == "", r
    assert r["status"] == 200
    assert r["id"] == req["provider_id"] and r["id"].endswith("@%s>" % DOMAIN), r
    assert r["message"] == "Queued. Thank you."
    assert r["retry_after"] == "" and r["body_len"] == len(r["body"].encode("utf-8"))
    assert json.loads(r["body"])["id"] == r["id"]
    assert req["method"] == "POST"
    assert req["path"] == "/v3/%s/messages.mime" % DOMAIN
    assert req["auth_ok"] is True
    assert req["content_type"].startswith("multipart/form-data; boundary=")
    assert req["fields"] == {"to": ["a@x.example", "B <b@y.example>"]}, req["fields"]
    assert req["files"] == {"message": [("message.mime", "application/octet-stream", msg)]}
    assert req["headers"]["User-Agent"].startswith("relayq/")


def test_base_url_trailing_v3_and_slash():
    # The contract's base URL has no /v3; a stray one is not doubled.
    with MailgunFake(api_key=KEY, domain=DOMAIN) as f:
        r = one(run_live(f.base_url + "/v3/"))
        [req] = f.sends()
    assert r["status"] == 200 and req["path"] == "/v3/%s/messages.mime" % DOMAIN


def test_wrong_key_401():
    with MailgunFake(api_key=KEY, domain=DOMAIN) as f:
        r = one(run_live(f, key="key-wrong"))
        [req] = f.sends()
    assert req["auth_ok"] is False
    assert r["curl_code"] == 0 and r["status"] == 401
    assert r["message"] == "Forbidden" and r["id"] == "", r


def test_unknown_domain_404():
    with MailgunFake(api_key=KEY, domain=DOMAIN) as f:
        r = one(run_live(f, domain="other.example"))
        [req] = f.sends()
    assert req["path"] == "/v3/other.example/messages.mime"
    assert r["status"] == 404 and r["message"] == "Domain not found: other.example", r
    assert r["id"] == ""


def test_domain_is_percent_encoded():
    # Characters with a meaning in URLs stay inside the path segment.
    with MailgunFake(api_key=KEY, domain=DOMAIN) as f:
        r = one(run_live(f, domain="a@b+c%d&e=f;g"))
        [req] = f.sends()
    assert req["path"].lower() == "/v3/a%40b%2bc%25d%26e%3df%3bg/messages.mime", req["path"]
    assert r["status"] == 404 and r["message"] == "Domain not found: a@b+c%d&e=f;g", r


def test_429_with_retry_after():
    script = lambda n: (429, {"Retry-After": "  120 "}, {"message": "Too many requests"})
    with MailgunFake(api_key=KEY, domain=DOMAIN, script=script) as f:
        r = one(run_live(f))
        assert len(f.sends()) == 1
    assert r["status"] == 429 and r["retry_after"] == "120", r
    assert r["message"] == "Too many requests" and r["id"] == ""


def test_retry_after_does_not_leak_into_the_next_send():
    # Sequential sends reuse the pooled easy handle: nothing of one answer
    # may show in the next.
    def script(n):
        if n == 1:
            return 429, {"Retry-After": "Wed, 21 Oct 2037 07:28:00 GMT"}, {"message": "slow down"}
        return None
    with MailgunFake(api_key=KEY, domain=DOMAIN, script=script) as f:
        r1, r2 = run_live(f, count=2)
        assert len(f.sends()) == 2
    assert r1["status"] == 429 and r1["retry_after"] == "Wed, 21 Oct 2037 07:28:00 GMT"
    assert r2["status"] == 200 and r2["retry_after"] == "" and r2["message"] == "Queued. Thank you."
    assert r2["id"].startswith("<")


def test_500_plain_text():
    with MailgunFake(api_key=KEY, domain=DOMAIN, script=lambda n: (500, {}, "oops")) as f:
        r = one(run_live(f))
    assert r["curl_code"] == 0 and r["status"] == 500
    assert r["body"] == "oops" and r["body_len"] == 4 and r["message"] == "oops" and r["id"] == ""


def test_400_with_message():
    text = "'to' parameter is not a valid address. please check documentation"
    with MailgunFake(api_key=KEY, domain=DOMAIN,
                     script=lambda n: (400, {}, {"message": text})) as f:
        r = one(run_live(f))
    assert r["status"] == 400 and r["message"] == text and r["id"] == "", r


def test_connection_refused():
    port = free_port()  # nothing listens there any more
    r = one(run_live("http://127.0.0.1:%d" % port))
    assert r["curl_code"] == 7, r  # CURLE_COULDNT_CONNECT
    assert r["status"] == 0 and r["curl_error"] and r["id"] == "" and r["body_len"] == 0


def test_server_that_never_answers_times_out():
    # A listening socket nobody accepts from: the connection completes in
    # the backlog and the request is never answered.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        url = "http://127.0.0.1:%d" % s.getsockname()[1]
        r = one(run_live(url, timeout_ms=800, timeout=30))
    assert r["curl_code"] == 28 and r["status"] == 0, r  # CURLE_OPERATION_TIMEDOUT


def test_many_recipients():
    rcpts = ["user%04d@rcpt%d.example" % (i, i % 7) for i in range(1000)]
    with MailgunFake(api_key=KEY, domain=DOMAIN) as f:
        r = one(run_live(f, rcpts=rcpts))
        [req] = f.sends()
    assert r["status"] == 200
    assert req["fields"]["to"] == rcpts  # one part each, in order


def test_binary_message_bytes_identical():
    # Every byte value, bare LF and CR, NUL, lines that look like multipart
    # boundaries and headers, and > 1 MB so libcurl uses Expect: 100-continue.
    body = bytes(range(256)) * 16 + b"\r\n--------------------------boundary\r\n" \
        b"Content-Disposition: form-data; name=\"to\"\r\n\r\nevil@x.example\r\n" \
        b"\n\r\r\n\x00\x00--\r\n"
    msg = mime_msg(body * 300)
    assert len(msg) > 1024 * 1024
    with MailgunFake(api_key=KEY, domain=DOMAIN) as f:
        r = one(run_live(f, msg=msg))
        [req] = f.sends()
    assert r["status"] == 200, r
    assert req["headers"].get("Expect") == "100-continue", req["headers"]
    assert req["fields"] == {"to": ["rcpt@example.org"]}
    [(name, ctype, data)] = req["files"]["message"]
    assert name == "message.mime" and ctype == "application/octet-stream"
    assert data == msg, "message bytes differ at the fake (%d vs %d bytes)" % (len(data), len(msg))


def test_empty_message_is_sent_as_an_empty_file():
    with MailgunFake(api_key=KEY, domain=DOMAIN) as f:
        r = one(run_live(f, msg=b""))
        [req] = f.sends()
    assert r["status"] == 200
    assert req["files"]["message"] == [("message.mime", "application/octet-stream", b"")]


def test_20_concurrent_sends():
    msg = mime_msg(b"concurrent\r\n")
    with MailgunFake(api_key=KEY, domain=DOMAIN) as f:
        # socketserver listens with a backlog of 5: a burst of 20 connects
        # overflows it, the kernel answers with SYN cookies and drops some
        # handshakes, and those transfers fail before the fake sees them
        # (curl 55 after about 1 s). Real API endpoints have deep backlogs;
        # widen the fake's (listen() again on Linux just updates it).
        f._server.socket.listen(128)
        results = run_live(f, rcpts=("a@x.example", "b@x.example"), msg=msg, count=20,
                           concurrent=True)
        sends = f.sends()
    assert [r["i"] for r in results] == list(range(20))
    assert all(r["curl_code"] == 0 and r["status"] == 200 for r in results), results
    assert len(sends) == 20
    assert all(s["auth_ok"] and s["files"]["message"][0][2] == msg and
               s["fields"]["to"] == ["a@x.example", "b@x.example"] for s in sends)
    assert sorted(r["id"] for r in results) == sorted(s["provider_id"] for s in sends)
    assert len({r["id"] for r in results}) == 20


def test_abort_before_any_io():
    # rq_curl_close before the loop runs: every callback, once, aborted.
    with MailgunFake(api_key=KEY, domain=DOMAIN) as f:
        results = run_live(f, scenario="abort", count=5)
    assert len(results) == 5
    assert all(r["curl_code"] == 42 and r["status"] == 0 for r in results), results


def test_abort_from_a_callback():
    # The first completion closes curluv; the others end aborted, once each
    # (the binary checks the counts).
    with MailgunFake(api_key=KEY, domain=DOMAIN) as f:
        results = run_live(f, scenario="abort_in_cb", count=4)
    assert len(results) == 4
    assert sum(r["curl_code"] == 42 for r in results) >= 3, results


def test_https_with_ca_file():
    certfile, _ = certs.default_cert()
    with MailgunFake(api_key=KEY, domain=DOMAIN) as f:
        # The fake speaks plain HTTP; wrap its listening socket in TLS. The
        # serving thread reads self.socket on every accept, and the file
        # descriptor it selects on is the same.
        srv = f._server
        srv.socket = certs.server_context().wrap_socket(srv.socket, server_side=True)
        https = "https://127.0.0.1:%d" % f.port
        r = one(run_live(https, cafile=certfile))
        assert r["curl_code"] == 0 and r["status"] == 200 and r["id"], r
        assert len(f.sends()) == 1 and f.sends()[0]["auth_ok"]
        # Without the CA the certificate is not trusted: no request is made.
        r = one(run_live(https, cafile="/dev/null"))
        assert r["curl_code"] in (60, 77, 35), r  # PEER_FAILED_VERIFICATION / CACERT / SSL
        assert r["status"] == 0
        assert len(f.sends()) == 1


# ---- reading answers: the JSON scanner on hostile and odd bodies -----------------------

ODD_BODIES = [
    # (status, body, expected id, expected message)
    (200, '{"meta": {"id": "nested", "message": "nested"}, "list": [1, {"id": "x"}, "]}"],'
          ' "n": -1.5e3, "t": true, "z": null, "identity": "no", "ids": "no",'
          ' "id": "<a\\"b\\\\c@mg>", "message": "Queued \\u00e9 \\ud83d\\ude80\\nnext\\tline \\/"}',
     '<a"b\\c@mg>', "Queued \u00e9 \U0001F680 next line /"),
    (200, ' \r\n {\r\n "id" : "<spaced@mg>" ,\n "message" : "ok" } ', "<spaced@mg>", "ok"),
    (200, '{"ID": "<upper@mg>", "Message": "no"}', "", ""),
    (200, 'not json at all', "", "not json at all"),
    (200, '{"id": "<cut@mg', "", ""),
    (200, '{"message": "x", "pad": "' + "p" * 70000 + '", "id": "<late@mg>"}', "", "x"),
    (200, "[" * 100000, "", ""),
    (200, '{"a": ' + "[" * 20000 + "]" * 20000 + ', "id": "<deep@mg>"}', "<deep@mg>", ""),
    (200, '{"id": "\\ud800 lone", "message": "bad \\x escape \\u12"}', "? lone", None),
    (200, '{"id": 12345, "message": ["list"]}', "", ""),
    (400, '{"message": 42}', "", ""),
    (400, '{"message": "' + "\\u00e9" * 3000 + '"}', "", None),
    (401, '{"id": "<not-for-errors@mg>", "message": "Invalid private key"}', "",
     "Invalid private key"),
    (502, "<html><body>Bad gateway</body></html>", "", ""),
    (503, "", "", ""),
    (200, '{"message": "ctl \\u0000\\u0007\\u001b[31m red", "id": "<ok@mg>"}', "<ok@mg>",
     None),
]


def test_odd_and_hostile_bodies():
    def script(n):
        status, body, _, _ = ODD_BODIES[n - 1]
        return status, {"Content-Type": "application/json"}, body.encode("utf-8")
    with MailgunFake(api_key=KEY, domain=DOMAIN, script=script) as f:
        results = run_live(f, count=len(ODD_BODIES))
        assert len(f.sends()) == len(ODD_BODIES)
    for (status, body, want_id, want_msg), r in zip(ODD_BODIES, results):
        what = "body %r..." % body[:60]
        assert r["curl_code"] == 0 and r["status"] == status, (what, r)
        assert r["body_len"] == min(len(body.encode("utf-8")), 65536), (what, r["body_len"])
        assert r["id"] == want_id, (what, r["id"])
        if want_msg is not None:
            assert r["message"] == want_msg, (what, r["message"])
        m = r["message"].encode("utf-8")
        assert len(m) <= 512 and not any(c < 0x20 or c == 0x7f for c in m), (what, r["message"])
    # The ones checked only for bounds and sanitising:
    assert results[8]["message"].startswith("bad ? escape"), results[8]["message"]
    assert results[11]["message"] == "\u00e9" * 256, len(results[11]["message"])
    assert results[15]["message"].startswith("ctl") and results[15]["message"].endswith("red")


if __name__ == "__main__":
    harness.main(globals())
