"""Delivery outcomes end to end: per-recipient results, classification,
retry with backoff, server retry hints, max_attempts, expiry, not_before,
recipient caps and 452 splitting, dead letters. Scripted aiosmtpd replies."""

import json
import time

import msgpack

import harness
from harness import (Events, RedisServer, SmtpServer, Worker, free_port, push_job, run_relayq, status,
                     wait_for, wait_status)

FAST = ["--retry-base-ms", "200", "--retry-max-ms", "400", "--platform-from", "no-reply@platform.example"]


def job(jid, to=("a@dest.example",), tenant="acme", **kw):
    j = {"v": 1, "id": jid, "tenant": tenant, "to": list(to), "subject": "s", "text": "t"}
    j.update(kw)
    return j


def test_temporary_twice_then_sent():
    def data_reply(envelope, count):
        return "451 4.3.0 Temporary local problem, try later" if count <= 2 else None
    with RedisServer() as r, SmtpServer(data_reply=data_reply) as smtp:
        ev = Events(r)
        with Worker(r, platform_smtp=smtp, args=FAST):
            push_job(r, job("t2"))
            st = wait_status(r, "t2", timeout=20)
            assert st["state"] == "sent", st
            assert st["attempts"] == "3", st
            assert smtp.messages_count() == 1
            wait_for(lambda: ev.states("t2").count("sent") == 1, what="sent event")
            states = ev.states("t2")
            assert states.count("retry") == 2, states
            assert states == ["sending", "retry", "sending", "retry", "sending", "sent"], states


def test_partial_one_rejected_one_accepted():
    def rcpt_reply(address, state):
        if address.startswith("nobody"):
            return "550 5.1.1 The email account that you tried to reach does not exist."
        return None
    with RedisServer() as r, SmtpServer(rcpt_reply=rcpt_reply) as smtp, \
            Worker(r, platform_smtp=smtp, args=FAST):
        push_job(r, job("p1", to=["ok@dest.example", "nobody@dest.example"]))
        st = wait_status(r, "p1")
        assert st["state"] == "partial", st
        assert st["accepted"] == "1" and st["rejected"] == "1", st
        assert st["last_code"] == "550" and st["last_enhanced"] == "5.1.1", st
        assert "does not exist" in st["last_reply"]
        assert st["error"] == "recipient_rejected", st
        assert st.get("rcpt.nobody@dest.example", "").startswith("550"), st
        (m,) = smtp.messages()
        assert m["rcpt_tos"] == ["ok@dest.example"]


def test_blocklisted_fails_at_once():
    reply = ("554 5.7.1 Service unavailable; Client host [192.0.2.7] blocked using bl.spamcop.net; "
             "Blocked - see https://www.spamcop.net/bl.shtml?192.0.2.7")
    with RedisServer() as r, SmtpServer(rcpt_reply=lambda a, s: reply) as smtp, \
            Worker(r, platform_smtp=smtp, args=FAST):
        push_job(r, job("bl"))
        st = wait_status(r, "bl")
        assert st["state"] == "failed" and st["error"] == "blocklisted", st
        assert "bl.spamcop.net" in st["detail"], st
        assert st["attempts"] == "1" and st["last_code"] == "554", st
        assert r.client.llen(r.key("dead")) == 1


def test_closed_port_retries_then_max_attempts():
    port = free_port()
    with RedisServer() as r, Worker(r, platform_smtp="smtp://127.0.0.1:%d" % port,
                                    args=FAST + ["--max-attempts", "3"]):
        push_job(r, job("cp"))
        st = wait_status(r, "cp", timeout=30)
        assert st["state"] == "failed" and st["error"] == "max_attempts", st
        assert st["attempts"] == "3", st
        assert st["detail"], st
        dead = r.client.lrange(r.key("dead"), 0, -1)
        assert len(dead) == 1 and msgpack.unpackb(dead[0], raw=False)["id"] == "cp"


def test_retry_hint_honoured():
    def data_reply(envelope, count):
        return "451 4.7.1 Greylisted, please try again in 3 seconds" if count == 1 else None
    with RedisServer() as r, SmtpServer(data_reply=data_reply) as smtp, \
            Worker(r, platform_smtp=smtp, args=FAST):
        push_job(r, job("gl"))
        st = wait_for(lambda: status(r, "gl").get("state") == "retry" and status(r, "gl"), what="retry")
        due = int(st["next_attempt_at"]) - int(st["updated_at"])
        assert due >= 2900, st
        st = wait_status(r, "gl", timeout=20)
        assert st["state"] == "sent" and st["attempts"] == "2", st


def test_expired_and_not_before():
    now = int(time.time() * 1000)
    with RedisServer() as r, SmtpServer() as smtp, Worker(r, platform_smtp=smtp, args=FAST):
        push_job(r, job("old", expires_at=now - 1000))
        st = wait_status(r, "old")
        assert st["state"] == "failed" and st["error"] == "expired", st
        push_job(r, job("later", not_before=now + 2000))
        wait_for(lambda: status(r, "later").get("state") == "deferred", what="deferred")
        assert smtp.messages_count() == 0
        st = wait_status(r, "later", timeout=15)
        assert st["state"] == "sent", st
        assert int(st["sent_at"]) >= now + 2000, st


def test_recipient_cap_and_452_split():
    rcpts = ["r%02d@dest.example" % i for i in range(60)]
    with RedisServer() as r, SmtpServer(max_rcpt=10) as smtp, Worker(r, platform_smtp=smtp, args=FAST):
        r.client.hset(r.key("tenant", "acme"), mapping={"max_recipients": "25"})
        push_job(r, job("big", to=rcpts[:5], cc=rcpts[5:10], bcc=rcpts[10:]))
        st = wait_status(r, "big", timeout=30)
        assert st["state"] == "sent", st
        assert st["accepted"] == "60" and st["recipients"] == "60", st
        got = sorted(a for m in smtp.messages() for a in m["rcpt_tos"])
        assert got == sorted(rcpts), got
        assert all(len(m["rcpt_tos"]) <= 10 for m in smtp.messages())


def test_recipient_cap_transactions():
    rcpts = ["r%02d@dest.example" % i for i in range(60)]
    with RedisServer() as r, SmtpServer() as smtp, Worker(r, platform_smtp=smtp, args=FAST):
        r.client.hset(r.key("tenant", "acme"), mapping={"max_recipients": "25"})
        push_job(r, job("cap", to=rcpts))
        assert wait_status(r, "cap")["state"] == "sent"
        sizes = sorted(len(m["rcpt_tos"]) for m in smtp.messages())
        assert sizes == [10, 25, 25], sizes


def test_temp_recipient_retried_alone():
    tries = {}

    def rcpt_reply(address, state):
        if address == "busy@dest.example":
            tries[address] = tries.get(address, 0) + 1
            if tries[address] == 1:
                return "450 4.2.1 Mailbox busy, try again later"
        return None
    with RedisServer() as r, SmtpServer(rcpt_reply=rcpt_reply) as smtp, \
            Worker(r, platform_smtp=smtp, args=FAST):
        push_job(r, job("tr", to=["ok@dest.example", "busy@dest.example"]))
        st = wait_status(r, "tr", timeout=20)
        assert st["state"] == "sent" and st["accepted"] == "2", st
        got = [m["rcpt_tos"] for m in smtp.messages()]
        assert got == [["ok@dest.example"], ["busy@dest.example"]], got


def test_dead_requeue():
    with RedisServer() as r, SmtpServer(rcpt_reply=lambda a, s: "550 5.1.1 no such user") as smtp, \
            Worker(r, platform_smtp=smtp, args=FAST):
        push_job(r, job("dq"))
        assert wait_status(r, "dq")["state"] == "failed"
        out = run_relayq(r, "dead", "list")
        assert out.returncode == 0 and "dq" in out.stdout, out
        smtp.rcpt_reply = None
        out = run_relayq(r, "dead", "requeue", "dq")
        assert out.returncode == 0, out
        st = wait_status(r, "dq", states=("sent",), timeout=20)
        assert st["state"] == "sent"
        assert r.client.llen(r.key("dead")) == 0


def test_circuit_breaker_opens_on_repeated_auth_failures():
    with RedisServer() as r, SmtpServer(auth=("user", "right"), require_auth=True) as smtp, \
            SmtpServer() as platform, Worker(r, platform_smtp=platform, args=FAST + ["--mode", "onprem"]):
        r.client.hset(r.key("tenant", "locked"), mapping={
            "gateway": "smtp", "smtp_host": "127.0.0.1", "smtp_port": str(smtp.port),
            "smtp_security": "none", "smtp_user": "user", "smtp_password": "wrong"})
        for i in range(3):
            push_job(r, job("cb%d" % i, tenant="locked"))
        for i in range(3):
            st = wait_status(r, "cb%d" % i)
            assert st["state"] == "failed" and st["error"] == "auth", st
        key = r.key("breaker", "locked")
        wait_for(lambda: r.client.hget(key, "smtp.state") == b"open", timeout=20, what="breaker open")
        assert r.client.hget(key, "smtp.reason") == b"auth"
        assert int(r.client.hget(key, "smtp.until")) > int(time.time() * 1000)
        # Later jobs wait as retry with a detail saying why, without new logins.
        logins = len(smtp.auth_attempts)
        push_job(r, job("cb-wait", tenant="locked"))
        st = wait_for(lambda: "cool-down" in status(r, "cb-wait").get("detail", "") and status(r, "cb-wait"),
                      timeout=10, what="a job waiting on the breaker")
        assert st["state"] == "retry" and st["error"] == "auth", st
        assert st["attempts"] == "0", st
        assert len(smtp.auth_attempts) == logins
        # Other tenants are not affected.
        push_job(r, job("cb-other"))
        assert wait_status(r, "cb-other")["state"] == "sent"


if __name__ == "__main__":
    harness.main(globals())
