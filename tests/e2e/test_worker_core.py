"""Worker core end to end: platform gateway delivery, message format,
status hashes and events, invalid payloads, exactly-once under load, and a
SIGTERM that loses nothing. Real redis-server, real aiosmtpd, real worker."""

import email.header
import json
import threading
import time

import msgpack

import harness
from harness import (RedisServer, SmtpServer, Worker, parse_message, push_job, status,
                     wait_for, wait_status)

PLATFORM_FROM = "no-reply@platform.example"


def job(i, **kw):
    j = {"v": 1, "id": "job-%s" % i, "tenant": "acme", "to": ["rcpt%s@dest.example" % i],
         "subject": "hello %s" % i, "text": "body %s" % i}
    j.update(kw)
    return j


def worker(r, smtp, *args, **kw):
    return Worker(r, platform_smtp=smtp, args=["--platform-from", PLATFORM_FROM] + list(args), **kw)


def test_single_job_envelope_headers_status():
    with RedisServer() as r, SmtpServer() as smtp, worker(r, smtp):
        # v1.1: a From is used as is only at a domain the tenant verified.
        harness.set_tenant(r, "acme", verified_domains="acme.example")
        push_job(r, {"v": 1, "id": "one", "tenant": "acme",
                     "to": ["Bob Example <bob@dest.example>"], "cc": ["carol@dest.example"],
                     "bcc": ["hidden@dest.example"], "from": "billing@acme.example",
                     "from_name": "Acme Billing", "reply_to": "help@acme.example",
                     "subject": "Invoice 42", "text": "Please find your invoice.",
                     "headers": {"List-Unsubscribe": "<mailto:u@acme.example>"},
                     "meta": {"invoice": "42"}})
        st = wait_status(r, "one")
        assert st["state"] == "sent", st
        for field in ("tenant", "route", "attempts", "created_at", "updated_at", "sent_at", "worker",
                      "message_id", "recipients", "accepted", "rejected"):
            assert st.get(field, "") != "", (field, st)
        assert st["route"] == "platform" and st["attempts"] == "1"
        assert st["recipients"] == "3" and st["accepted"] == "3" and st["rejected"] == "0"
        assert st["meta.invoice"] == "42"
        assert r.client.hget(r.key("stats", "acme"), "sent") == b"1"
        day = time.strftime("%Y%m%d", time.gmtime())
        assert r.client.hget(r.key("stats", "acme", day), "sent") == b"1"
        daily_ttl = r.client.ttl(r.key("stats", "acme", day))  # set when the day's count starts
        assert 39 * 86400 < daily_ttl <= 40 * 86400, daily_ttl
        ttl = r.client.ttl(r.key("status", "one"))
        assert 0 < ttl <= 7 * 86400, ttl

        (m,) = smtp.messages()
        assert m["mail_from"] == "billing@acme.example"
        assert sorted(m["rcpt_tos"]) == ["bob@dest.example", "carol@dest.example",
                                         "hidden@dest.example"]
        msg = parse_message(m["data"])
        assert "Acme Billing" in str(msg["From"]) and "billing@acme.example" in str(msg["From"])
        assert "bob@dest.example" in str(msg["To"]) and "carol@dest.example" in str(msg["Cc"])
        assert msg["Bcc"] is None and b"hidden@dest.example" not in m["data"]
        assert str(msg["Reply-To"]) == "help@acme.example"
        assert str(msg["Subject"]) == "Invoice 42"
        assert msg["Date"] is not None and msg["MIME-Version"] == "1.0"
        assert str(msg["Message-ID"]) == st["message_id"]
        assert str(msg["List-Unsubscribe"]) == "<mailto:u@acme.example>"
        assert msg.get_content().strip() == "Please find your invoice."
        for line in m["data"].split(b"\r\n"):
            assert len(line) <= 998


def test_utf8_subject_multipart_and_attachment_bytes():
    pdf = bytes(range(256)) * 300 + b"%%EOF\n\x00\xff"
    subject = "Fattura n. 42 — Grüße aus Köln 🚀 " + "ü" * 80
    with RedisServer() as r, SmtpServer() as smtp, worker(r, smtp):
        push_job(r, {"v": 1, "id": "mp", "tenant": "acme", "to": ["x@dest.example"],
                     "subject": subject, "text": "Ciao — testo", "html": "<p>Ciao — <b>html</b></p>",
                     "attachments": [{"filename": "fattura_42 — €.pdf",
                                      "content_type": "application/pdf", "data": pdf}]})
        assert wait_status(r, "mp")["state"] == "sent"
        (m,) = smtp.messages()
        msg = parse_message(m["data"])
        assert str(msg["Subject"]) == subject
        assert msg.get_content_type() == "multipart/mixed"
        body = msg.get_body(preferencelist=("plain",))
        assert body.get_content().strip() == "Ciao — testo"
        html = msg.get_body(preferencelist=("html",))
        assert "<b>html</b>" in html.get_content()
        atts = list(msg.iter_attachments())
        assert len(atts) == 1
        assert atts[0].get_filename() == "fattura_42 — €.pdf"
        assert atts[0].get_content_type() == "application/pdf"
        assert atts[0].get_content() == pdf
        for line in m["data"].split(b"\r\n"):
            assert len(line) <= 998


def test_raw_message_passed_as_is():
    """A raw message whose From the tenant verified goes out byte for byte."""
    raw = (b"From: Someone <s@acme.example>\r\nTo: r@dest.example\r\nSubject: raw\r\n"
           b"Message-ID: <raw-1@acme.example>\r\n\r\nraw body line\r\n.leading dot\r\n")
    with RedisServer() as r, SmtpServer() as smtp, worker(r, smtp):
        harness.set_tenant(r, "acme", verified_domains="acme.example")
        push_job(r, {"v": 1, "id": "raw", "tenant": "acme", "to": ["r@dest.example"],
                     "bcc": ["b@dest.example"], "from": "s@acme.example", "raw": raw})
        assert wait_status(r, "raw")["state"] == "sent"
        (m,) = smtp.messages()
        assert m["data"] == raw, m["data"]
        assert sorted(m["rcpt_tos"]) == ["b@dest.example", "r@dest.example"]


def test_events_published_for_every_change():
    with RedisServer() as r, SmtpServer() as smtp:
        ps = r.client.pubsub()
        ps.subscribe(r.key("events"))
        wait_for(lambda: ps.get_message(timeout=0.1), what="subscribe confirmation")
        with worker(r, smtp):
            push_job(r, job(1))
            wait_status(r, "job-1")
            events = []

            def got_sent():
                msg = ps.get_message(timeout=0.1)
                if msg and msg["type"] == "message":
                    events.append(json.loads(msg["data"]))
                return any(e["state"] == "sent" for e in events)
            wait_for(got_sent, what="sent event")
        states = [e["state"] for e in events]
        assert states == ["sending", "sent"], states
        for e in events:
            assert e["id"] == "job-1" and e["tenant"] == "acme"
            assert isinstance(e["attempts"], int) and isinstance(e["ts"], int)
        ps.close()


def test_invalid_payloads_interleaved():
    bad = [
        (b"\xc1garbage", None),
        (msgpack.packb({"v": 2, "id": "badv", "tenant": "acme", "to": ["a@b.example"], "text": "x"}), "badv"),
        (msgpack.packb({"v": 1, "id": "norcpt", "tenant": "acme", "text": "x"}), "norcpt"),
        (msgpack.packb({"v": 1, "id": "crlf", "tenant": "acme", "to": ["a@b.example"], "text": "x",
                        "subject": "hi\r\nBcc: evil@x.example"}), "crlf"),
        (msgpack.packb([1, 2, 3]), None),
        (b"", None),
    ]
    with RedisServer() as r, SmtpServer() as smtp, worker(r, smtp) as w:
        q = r.key("queue", "default")
        for i in range(10):
            r.client.lpush(q, msgpack.packb(job(i), use_bin_type=True))
            payload, _ = bad[i % len(bad)]
            r.client.lpush(q, payload)
        for i in range(10):
            assert wait_status(r, "job-%d" % i)["state"] == "sent"
        for payload, jid in bad:
            if jid:
                st = wait_status(r, jid)
                assert st["state"] == "failed" and st["error"] == "invalid_job", st
                assert st["detail"], st
        wait_for(lambda: r.client.llen(r.key("dead")) == 10, what="10 dead payloads")
        dead = r.client.lrange(r.key("dead"), 0, -1)
        assert b"\xc1garbage" in dead
        assert smtp.messages_count() == 10
        assert b"evil@x.example" not in b"".join(m["data"] for m in smtp.messages())
        # Every payload, good or bad, leaves the worker's inflight list.
        wait_for(lambda: r.client.llen(r.key("inflight", w.id)) == 0,
                 what="inflight:%s empty" % w.id)
        assert r.client.llen(q) == 0


def test_500_jobs_exactly_once():
    n = 500
    with RedisServer() as r, SmtpServer() as smtp, worker(r, smtp, "--concurrency", "32"):
        pipe = r.client.pipeline(transaction=False)
        for i in range(n):
            pipe.lpush(r.key("queue", "default"), msgpack.packb(job(i), use_bin_type=True))
        pipe.execute()
        smtp.wait_messages(n, timeout=60)
        wait_for(lambda: all(status(r, "job-%d" % i).get("state") == "sent" for i in range(0, n, 25)),
                 timeout=30, what="statuses")
        for i in range(n):
            assert status(r, "job-%d" % i)["state"] == "sent"
        rcpts = sorted(m["rcpt_tos"][0] for m in smtp.messages())
        assert rcpts == sorted("rcpt%d@dest.example" % i for i in range(n))
        assert r.client.llen(r.key("queue", "default")) == 0
        # Connections are reused across messages.
        assert smtp.connections() < n / 4, smtp.connections()


def test_duplicate_id_sent_once():
    with RedisServer() as r, SmtpServer() as smtp, worker(r, smtp):
        push_job(r, job("dup"))
        assert wait_status(r, "job-dup")["state"] == "sent"
        push_job(r, job("dup"))
        push_job(r, job("after"))
        assert wait_status(r, "job-after")["state"] == "sent"
        wait_for(lambda: r.client.llen(r.key("queue", "default")) == 0, what="queue drained")
        assert smtp.messages_count() == 2


def test_sigterm_with_jobs_in_flight_loses_none():
    n = 40
    with RedisServer() as r, SmtpServer(delay=0.3) as smtp:
        for i in range(n):
            push_job(r, job(i))
        w = worker(r, smtp, "--concurrency", "8", "--grace-period-s", "20")
        with w:
            wait_for(lambda: smtp.messages_count() >= 3, timeout=20, what="some deliveries")
            t0 = time.time()
            rc = w.stop()
            assert rc == 0, (rc, w.log_text()[-2000:])
            assert time.time() - t0 < 25
        assert r.client.llen(r.key("inflight", w.id)) == 0
        # Whatever was not delivered is back in the queue, untouched: the
        # shared list plus the tenant lists FETCH sorts a backlog into
        # (P:tq:default:TENANT; the contract counts both as ready).
        delivered = {m["rcpt_tos"][0] for m in smtp.messages()}
        left = r.client.llen(r.key("queue", "default")) + sum(
            r.client.llen(k) for k in r.client.scan_iter(match=r.key("tq", "default", "*")))
        assert len(delivered) + left == n, (len(delivered), left)
        # A second worker delivers the rest: nothing lost, nothing twice.
        with worker(r, smtp):
            smtp.wait_messages(n, timeout=60)
            for i in range(n):
                assert wait_status(r, "job-%d" % i)["state"] == "sent"
        rcpts = [m["rcpt_tos"][0] for m in smtp.messages()]
        assert len(rcpts) == len(set(rcpts)) == n


def test_wrong_redis_password_exits_nonzero():
    with RedisServer(password="s3cret") as r:
        url = r.url.replace("s3cret", "wrong")
        r_bad = type("R", (), {"url": url, "prefix": r.prefix})()
        w = Worker(r_bad)
        code = w.wait_exit(timeout=10)
        assert code not in (0, None), code
        log = w.log_text()
        assert "password" in log and "wrong" not in log.replace("--", ""), log
        w.close()


if __name__ == "__main__":
    harness.main(globals())
