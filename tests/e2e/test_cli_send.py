"""End-to-end: `relayq send` and `relayq status` against a real redis-server.

Checks what a producer and a worker rely on: the queue holds exactly the
msgpack job (attachment bytes intact, UTF-8 intact), the status hash and the
event are written with the push, bad arguments fail with one stderr line and
write nothing, and `status` prints text and JSON.
"""

import json
import os
import subprocess
import tempfile
import threading
import time

import msgpack

import harness
from harness import RedisServer, run_relayq, wait_for

SUBJECT = "Grüße aus Köln – Rechnung € 12,50 📄"
PDF = b"%PDF-1.4\n\x00\xff\xfe\x00" + bytes(range(256)) + b"\n%%EOF\n"


def one_error_line(proc):
    """stderr is exactly one line starting 'relayq: '; returns it."""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("relayq: "), \
        "stderr should be one 'relayq: ...' line, got %r" % proc.stderr
    return lines[0]


def queue_payloads(r, queue="default"):
    return r.client.lrange(r.key("queue", queue), 0, -1)


def decode(payload):
    return msgpack.unpackb(payload, raw=False)


def write(tmp, name, data):
    path = os.path.join(tmp, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def test_send_enqueues_the_job_and_its_status():
    with RedisServer() as r, tempfile.TemporaryDirectory() as tmp:
        pdf = write(tmp, "Rechnung 2024-01.pdf", PDF)
        sheet = write(tmp, "report.XLSX", b"PK\x03\x04\x00\x00binary")
        blob = write(tmp, "data.unknownext", b"\x00\x01")
        text = write(tmp, "body.txt", "Hallo Jürgen,\nanbei die Rechnung.\n".encode())
        html = write(tmp, "body.html", "<p>Hallo <b>Jürgen</b></p>".encode())
        events = r.client.pubsub()
        events.subscribe(r.key("events"))
        wait_for(lambda: events.get_message(timeout=0.1), what="subscription")

        t0 = int(time.time() * 1000)
        p = run_relayq(r, "send", "--tenant", "acme",
                       "--to", "Alice Ä <alice@example.com>", "--to", "bob@example.org",
                       "--cc", "carol@example.net", "--bcc", "audit@example.com",
                       "--from", "billing@acme.example", "--from-name", "ACME Billing",
                       "--reply-to", "help@acme.example", "--subject", SUBJECT,
                       "--text-file", text, "--html-file", html,
                       "--attach", pdf, "--attach", sheet, "--attach", blob,
                       "--header", "List-Unsubscribe: <mailto:unsub@acme.example>",
                       "--meta", "order=A-1001", "--meta", "user=42",
                       "--kind", "bulk", "--max-attempts", "5", "--route", "eu",
                       "--expires-at", "4102444800000")
        t1 = int(time.time() * 1000)
        assert p.returncode == 0, p.stderr
        assert p.stderr == ""
        job_id = p.stdout.strip()
        assert p.stdout == job_id + "\n"
        assert len(job_id) == 28 and all(c in "0123456789abcdef" for c in job_id)

        payloads = queue_payloads(r)
        assert len(payloads) == 1
        job = decode(payloads[0])
        assert job["v"] == 1 and job["id"] == job_id and job["tenant"] == "acme"
        assert job["to"] == ["Alice Ä <alice@example.com>", "bob@example.org"]
        assert job["cc"] == ["carol@example.net"] and job["bcc"] == ["audit@example.com"]
        assert job["from"] == "billing@acme.example" and job["from_name"] == "ACME Billing"
        assert job["reply_to"] == "help@acme.example"
        assert job["subject"] == SUBJECT
        assert job["text"] == "Hallo Jürgen,\nanbei die Rechnung.\n"
        assert job["html"] == "<p>Hallo <b>Jürgen</b></p>"
        assert job["headers"] == {"List-Unsubscribe": "<mailto:unsub@acme.example>"}
        assert job["meta"] == {"order": "A-1001", "user": "42"}
        assert job["kind"] == "bulk" and job["max_attempts"] == 5 and job["route"] == "eu"
        assert job["expires_at"] == 4102444800000
        assert "_queue" not in job and "not_before" not in job
        att = job["attachments"]
        assert [a["filename"] for a in att] == ["Rechnung 2024-01.pdf", "report.XLSX",
                                                "data.unknownext"]
        assert [a["content_type"] for a in att] == [
            "application/pdf",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "application/octet-stream"]
        # bin on the wire (bytes in Python), byte for byte.
        assert isinstance(att[0]["data"], bytes) and att[0]["data"] == PDF
        assert att[1]["data"] == b"PK\x03\x04\x00\x00binary"

        st = harness.status(r, job_id)
        assert st["state"] == "queued" and st["tenant"] == "acme"
        assert t0 <= int(st["created_at"]) <= t1
        assert st["updated_at"] == st["created_at"]
        assert st["attempts"] == "0" and st["recipients"] == "4"
        assert st["meta.order"] == "A-1001" and st["meta.user"] == "42"

        msg = wait_for(lambda: events.get_message(timeout=0.1), what="the queued event")
        ev = json.loads(msg["data"])
        assert ev["id"] == job_id and ev["tenant"] == "acme"
        assert ev["state"] == "queued" and ev["attempts"] == 0
        assert t0 <= ev["ts"] <= t1
        events.close()


def test_send_queue_id_and_delay():
    with RedisServer() as r:
        p = run_relayq(r, "send", "--tenant", "t1", "--to", "a@example.com", "--text", "hi",
                       "--id", "order-77:invoice@v2", "--queue", "urgent")
        assert p.returncode == 0, p.stderr
        assert p.stdout == "order-77:invoice@v2\n"
        assert queue_payloads(r) == []
        [payload] = queue_payloads(r, "urgent")
        assert decode(payload)["id"] == "order-77:invoice@v2"

        # A future not_before goes to P:delayed, carrying _queue as its
        # first key (the worker's Lua reads it without a msgpack decoder).
        due = int(time.time() * 1000) + 3600 * 1000
        p = run_relayq(r, "send", "--tenant", "t1", "--to", "a@example.com", "--text", "later",
                       "--id", "later-1", "--queue", "urgent", "--not-before", due)
        assert p.returncode == 0, p.stderr
        delayed = r.client.zrange(r.key("delayed"), 0, -1, withscores=True)
        assert len(delayed) == 1
        payload, score = delayed[0]
        assert int(score) == due
        assert payload[1:8] == b"\xa6_queue"
        job = decode(payload)
        assert job["_queue"] == "urgent" and job["not_before"] == due
        st = harness.status(r, "later-1")
        assert st["state"] == "deferred" and st["next_attempt_at"] == str(due)
        assert len(queue_payloads(r, "urgent")) == 1


def test_same_id_is_not_enqueued_twice():
    with RedisServer() as r:
        args = ("send", "--tenant", "t1", "--to", "a@example.com", "--text", "hi", "--id", "dup-1")
        assert run_relayq(r, *args).returncode == 0
        r.client.hset(r.key("status", "dup-1"), "state", "sent")
        p = run_relayq(r, *args)
        assert p.returncode == 0 and p.stdout == "dup-1\n"
        assert "already exists (state sent)" in one_error_line(p)
        assert len(queue_payloads(r)) == 1
        assert harness.status(r, "dup-1")["state"] == "sent"


def test_bad_arguments_fail_with_one_line_and_write_nothing():
    with RedisServer() as r, tempfile.TemporaryDirectory() as tmp:
        text = write(tmp, "t.txt", b"hi")
        binary = write(tmp, "b.txt", b"a\x00b")
        base = ["--tenant", "t1", "--to", "a@example.com", "--text", "hi"]
        cases = [
            (2, ["send", "--to", "a@example.com", "--text", "hi"], "--tenant"),
            (2, ["send", "--tenant", "t1", "--text", "hi"], "--to"),
            (2, ["send", "--tenant", "t1", "--to", "a@example.com"], "body"),
            (2, ["send", "--tenant", "t 1", "--to", "a@example.com", "--text", "x"], "tenant"),
            (2, ["send", "--tenant", "t1", "--to", "a@example.com\r\nRCPT TO:<x@y.z>",
                 "--text", "x"], "'to'"),
            (2, ["send", "--tenant", "t1", "--to", "not-an-address", "--text", "x"], "'to'"),
            (2, ["send", "--tenant", "t1", "--bcc", "Bob <b@example.com>", "--text", "x"],
             "'bcc'"),
            (2, ["send", "--subject", "a\nBcc: x@y.z"] + base, "'subject'"),
            (2, ["send", "--header", "Subject: hijack"] + base, "Subject"),
            (2, ["send", "--header", "no colon here"] + base, "--header"),
            (2, ["send", "--meta", "novalue"] + base, "--meta"),
            (2, ["send", "--kind", "spam"] + base, "--kind"),
            (2, ["send", "--max-attempts", "0"] + base, "--max-attempts"),
            (2, ["send", "--not-before", "soon"] + base, "--not-before"),
            (2, ["send", "--wait", "-1"] + base, "--wait"),
            (2, ["send", "--id", "bad id"] + base, "--id"),
            (2, ["send", "--queue", "a/b"] + base, "--queue"),
            (2, ["send", "--bogus"] + base, "--bogus"),
            (2, ["send", "stray"] + base, "stray"),
            (2, ["send", "--to"], "--to"),
            (2, ["send", "--text-file", text] + base, "not both"),
            (2, ["send", "--tenant", "t1", "--to", "a@example.com", "--text-file", binary],
             "NUL"),
            (1, ["send", "--attach", os.path.join(tmp, "missing.pdf")] + base, "missing.pdf"),
            (1, ["send", "--attach", tmp] + base, "directory"),
            (2, ["frobnicate"], "unknown command"),
            (2, ["status"], "job id"),
            (2, ["status", "a", "b"], "job id"),
            (2, ["status", "bad/id"], "not a job id"),
            (1, ["--redis", "rediss://:pw@127.0.0.1:1", "status", "x"], "Cannot connect"),
            (1, ["status", "x", "--redis", "redis://127.0.0.1:1"], "Cannot connect"),
        ]
        for code, args, needle in cases:
            p = run_relayq(r, *args)
            line = one_error_line(p)
            assert p.returncode == code, (args, p.returncode, p.stderr)
            assert needle in line, (args, line)
            assert p.stdout == "", (args, p.stdout)
        # Nothing reached Redis.
        assert r.client.keys("*") == []


def test_status_text_and_json():
    with RedisServer() as r:
        p = run_relayq(r, "send", "--tenant", "acme", "--to", "a@example.com", "--text", "x",
                       "--id", "s-1")
        assert p.returncode == 0, p.stderr
        tricky = 'say "hi" \\ then\r\nnext: Grüße\t\x01 end'
        r.client.hset(r.key("status", "s-1"), mapping={"detail": tricky.encode(),
                                                       "last_reply": b"bad \xff byte"})
        hash_ = harness.status(r, "s-1")

        p = run_relayq(r, "status", "s-1")
        assert p.returncode == 0 and p.stderr == ""
        lines = p.stdout.splitlines()
        assert len(lines) == len(hash_)
        fields = [line.split(": ", 1)[0] for line in lines]
        assert fields == sorted(hash_)
        assert "state: queued" in lines and "tenant: acme" in lines
        assert 'detail: say "hi" \\ then\\r\\nnext: Grüße\t\x01 end' in lines

        p = run_relayq(r, "status", "--json", "s-1")
        assert p.returncode == 0 and p.stderr == ""
        obj = json.loads(p.stdout)
        assert list(obj) == sorted(obj)
        assert obj["detail"] == tricky
        assert obj["last_reply"] == "bad \ufffd byte"
        assert {k: v for k, v in obj.items() if k != "last_reply"} == \
            {k: v for k, v in hash_.items() if k != "last_reply"}

        p = run_relayq(r, "status", "nope-1", "--json")
        assert p.returncode == 1
        assert one_error_line(p) == "relayq: no status for job nope-1"
        assert p.stdout == ""


def test_wait_for_final_state():
    with RedisServer() as r:
        # No worker: --wait gives up after its deadline with exit 3.
        t0 = time.monotonic()
        p = run_relayq(r, "send", "--tenant", "t", "--to", "a@example.com", "--text", "x",
                       "--id", "w-0", "--wait", "0.4")
        assert p.returncode == 3, p.stderr
        assert 0.35 <= time.monotonic() - t0 < 10
        assert p.stdout == "w-0\n"
        assert "still queued" in one_error_line(p)

        for job_id, final, code in (("w-1", "sent", 0), ("w-2", "failed", 1)):
            result = []
            t = threading.Thread(target=lambda: result.append(
                run_relayq(r, "send", "--tenant", "t", "--to", "a@example.com", "--text", "x",
                           "--id", job_id, "--wait", "20")))
            t.start()
            key = r.key("status", job_id)
            wait_for(lambda: r.client.hget(key, "state") == b"queued", what="queued")
            r.client.hset(key, "state", "sending")
            fields = {"state": final}
            if final == "failed":
                fields.update(last_code="550", error="recipient_rejected",
                              detail="The server said the mailbox does not exist.")
            r.client.hset(key, mapping=fields)
            t.join(30)
            assert not t.is_alive()
            p = result[0]
            assert p.returncode == code, p.stderr
            out = p.stdout.splitlines()
            assert out[0] == job_id
            assert out[1].startswith("state=" + final)
            if final == "failed":
                assert out[1] == ("state=failed code=550 error=recipient_rejected "
                                  "detail=The server said the mailbox does not exist.")
                # The outcome on stdout for scripts, and why it failed on
                # stderr like every failing command (docs/cli.md).
                assert p.stderr == ("relayq: job %s failed (recipient_rejected): The server said the "
                                    "mailbox does not exist.\n" % job_id), p.stderr
            else:
                assert p.stderr == "", p.stderr


def test_auth_env_and_option_placement():
    with RedisServer(password="s3cr3t pw/@") as r:
        # The harness's URL carries the right password: it works.
        p = run_relayq(r, "send", "--tenant", "t", "--to", "a@example.com", "--text", "x",
                       "--id", "a-1")
        assert p.returncode == 0, p.stderr
        # A wrong one: EAUTH's sentence, without echoing the password.
        bad = "redis://:wr0ngpass@127.0.0.1:%d" % r.port
        p = run_relayq(r, "status", "a-1", "--redis", bad)
        assert p.returncode == 1
        line = one_error_line(p)
        assert "Redis refused the password" in line and "check the URL" in line
        assert "wr0ngpass" not in line
        p = run_relayq(r, "status", "a-1", "--redis", "redis://127.0.0.1:%d" % r.port)
        assert p.returncode == 1 and "NOAUTH" in one_error_line(p)

        # Environment variables instead of flags, options after the command.
        env = dict(os.environ, RELAYQ_REDIS_URL=r.url, RELAYQ_PREFIX=r.prefix)
        p = subprocess.run([harness.binary("relayq"), "status", "a-1", "--json"], env=env,
                           capture_output=True, text=True, stdin=subprocess.DEVNULL,
                           timeout=30)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["state"] == "queued"


if __name__ == "__main__":
    harness.main(globals())
