#!/usr/bin/python3
"""The SaaS boundary, data side (docs/security.md): attacks by one
tenant on another, or on the platform, through the public contract only
(job payloads, tenant hashes, the CLI, worker flags), against a real
redis-server, aiosmtpd fixtures and dnsmasq.

  - From spoofing through the platform gateway: a raw job's From header, a
    local part at the platform's own domain, a verified tenant that changes
    from_email; `relayq tenant verify-domain` against dnsmasq zones.
  - Per-tenant job ids: tenant B reusing tenant A's id (LPUSH and
    `relayq send`) never touches A's status.
  - Tenant and route names without ':'; `tenant del` keeps other keys.
  - Sealed secrets bound to their place (enc:v2:): a replayed value never
    reaches a server; `tenant set` refuses sealed input; `tenant reseal`.
  - The Redis password with '@' and ':' never in the worker's log.
  - Trace and authentication headers in `headers` are invalid_job.
"""

import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dkim  # noqa: E402
import msgpack  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

import harness  # noqa: E402
import sealing  # noqa: E402
from dnsfix import DnsServer  # noqa: E402
from harness import (Events, RedisServer, SmtpServer, Worker, parse_message, push_job, set_tenant,  # noqa: E402
                     smtp_tenant, status, wait_for, wait_status)

PLATFORM_FROM = "no-reply@platform.example"
FAST = ["--retry-base-ms", "100", "--retry-max-ms", "300", "--platform-from", PLATFORM_FROM]
KEY = secrets.token_bytes(32)
KEY_B64 = base64.b64encode(KEY).decode()
ENV = {"RELAYQ_SECRET_KEY": KEY_B64}


def run_relayq(r, *args, **kw):
    """The CLI without a network allowance: none of these commands connects
    to a tenant server (DNS goes to the test's resolver)."""
    return harness.run_relayq(r, *args, allow_private_nets=None, **kw)


def job(jid, tenant="acme", **kw):
    j = {"v": 1, "id": jid, "tenant": tenant, "to": ["rcpt@dest.example"], "subject": "s " + jid,
         "text": "text of " + jid}
    j.update(kw)
    return j


def raw_job(jid, raw, tenant="acme", **kw):
    j = {"v": 1, "id": jid, "tenant": tenant, "to": ["rcpt@dest.example"], "raw": raw}
    j.update(kw)
    return j


def worker(r, platform=None, args=(), env=None):
    return Worker(r, platform_smtp=platform, args=FAST + list(args), env=env)


def message_of(smtp, marker):
    for m in smtp.messages():
        if marker in m["data"]:
            return m
    raise AssertionError("no message holding %r among %d" % (marker, smtp.messages_count()))


def dead_payloads(r):
    return [msgpack.unpackb(p, raw=False) for p in r.client.lrange(r.key("dead"), 0, -1)]


# ---- 3. From through the platform gateway --------------------------------------------------

def rsa_pem():
    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()).decode()
    der = k.public_key().public_bytes(serialization.Encoding.DER,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def test_raw_job_spoofed_from_is_rewritten_and_dkim_still_verifies():
    pem, txt = rsa_pem()
    with RedisServer() as r, SmtpServer() as smtp, worker(r, smtp):
        set_tenant(r, "acme", verified_domains="acme.example", from_name="Acme", dkim_domain="acme.example",
                   dkim_selector="s1", dkim_private_key=pem)
        spoof = (b"From: CEO <ceo@bank.example>\r\nTo: rcpt@dest.example\r\nSubject: wire\r\n"
                 b"Message-ID: <x1@bank.example>\r\n\r\nraw-spoof body\r\n")
        own = b"From: news@mail.acme.example\r\nTo: rcpt@dest.example\r\nSubject: n\r\n\r\nraw-own body\r\n"
        push_job(r, raw_job("raw-spoof", spoof))
        push_job(r, raw_job("raw-own", own))
        assert wait_status(r, "raw-spoof")["state"] == "sent"
        assert wait_status(r, "raw-own")["state"] == "sent"
        m = message_of(smtp, b"raw-spoof body")
        msg = parse_message(m["data"])
        assert msg.get_all("From") and len(msg.get_all("From")) == 1, msg.get_all("From")
        assert msg["From"].addresses[0].addr_spec == PLATFORM_FROM, str(msg["From"])
        assert str(msg["Reply-To"]) == "ceo@bank.example", str(msg["Reply-To"])
        assert m["mail_from"] == PLATFORM_FROM
        # The platform's DKIM signature covers the rewritten From.
        def dns(name, timeout=5):
            return txt.encode() if name == b"s1._domainkey.acme.example." else None
        assert b"DKIM-Signature:" in m["data"]
        assert dkim.verify(m["data"], dnsfunc=dns), "the DKIM signature of the rewritten raw message"
        # A subdomain of a verified domain goes out as it is.
        m2 = message_of(smtp, b"raw-own body")
        assert parse_message(m2["data"])["From"].addresses[0].addr_spec == "news@mail.acme.example"


def test_platform_domain_local_part_is_never_a_tenants_from():
    with RedisServer() as r, SmtpServer() as smtp, worker(r, smtp):
        # Even a tenant that (somehow) lists the platform's domain as verified.
        set_tenant(r, "acme", verified_domains="platform.example,acme.example", reply_to="help@acme.example")
        push_job(r, job("pd-1", **{"from": "billing@platform.example"}))
        push_job(r, job("pd-2", **{"from": "Security@PLATFORM.example"}))
        push_job(r, raw_job("pd-3", b"From: security@platform.example\r\nSubject: r\r\n\r\npd-3 body\r\n"))
        push_job(r, job("pd-4", **{"from": PLATFORM_FROM}))
        push_job(r, job("pd-5", **{"from": "billing@mail.platform.example"}))
        for jid in ("pd-1", "pd-2", "pd-3", "pd-4", "pd-5"):
            assert wait_status(r, jid)["state"] == "sent", jid
        for marker in (b"text of pd-1", b"text of pd-2", b"pd-3 body", b"text of pd-4", b"text of pd-5"):
            m = message_of(smtp, marker)
            msg = parse_message(m["data"])
            assert msg["From"].addresses[0].addr_spec == PLATFORM_FROM, (marker, str(msg["From"]))
            assert m["mail_from"] == PLATFORM_FROM, marker
        assert str(parse_message(message_of(smtp, b"text of pd-1")["data"])["Reply-To"]) == "help@acme.example"


def test_verified_tenant_changing_from_email_is_not_vouched_for():
    with RedisServer() as r, SmtpServer() as smtp:
        p = run_relayq(r, "tenant", "set", "acme", "from_email=billing@old.example", "domain_verified=1",
                       "--no-verify")
        assert p.returncode == 0, p.stderr
        with worker(r, smtp):
            push_job(r, job("fv-1"))
            assert wait_status(r, "fv-1")["state"] == "sent"
        assert parse_message(message_of(smtp, b"text of fv-1")["data"])["From"].addresses[0].addr_spec \
            == "billing@old.example"
        # The tenant moves to a domain nobody verified.
        p = run_relayq(r, "tenant", "set", "acme", "from_email=billing@new.example", "--no-verify")
        assert p.returncode == 0, p.stderr
        assert "domain_verified cleared" in p.stdout, p.stdout
        assert r.client.hget(r.key("tenant", "acme"), "domain_verified") is None
        # Even a hash written by hand with both: domain_verified=1 stands for
        # the domain of dkim_domain when there is one.
        set_tenant(r, "acme2", from_email="billing@new.example", domain_verified="1", dkim_domain="old.example",
                   dkim_selector="s1", dkim_private_key=rsa_pem()[0])
        with worker(r, smtp):
            push_job(r, job("fv-2"))
            push_job(r, job("fv-3", tenant="acme2"))
            push_job(r, job("fv-4", tenant="acme2", **{"from": "ceo@bank.example"}))
            for jid in ("fv-2", "fv-3", "fv-4"):
                assert wait_status(r, jid)["state"] == "sent", jid
        for marker in (b"text of fv-2", b"text of fv-3", b"text of fv-4"):
            m = message_of(smtp, marker)
            assert parse_message(m["data"])["From"].addresses[0].addr_spec == PLATFORM_FROM, marker
            assert m["mail_from"] == PLATFORM_FROM, marker
        assert str(parse_message(message_of(smtp, b"text of fv-2")["data"])["Reply-To"]) == "billing@new.example"


PLATFORM_INCLUDE = "_spf.platform.test"


def test_verify_domain_runs_the_dns_checks_then_adds_the_domain():
    pem, txt = rsa_pem()
    recs = [
        ("TXT", "acme.test", "v=spf1 include:%s ~all" % PLATFORM_INCLUDE),
        ("TXT", PLATFORM_INCLUDE, "v=spf1 ip4:198.51.100.0/24 -all"),
        ("TXT", "s1._domainkey.acme.test", txt),
        ("TXT", "_dmarc.acme.test", "v=DMARC1; p=reject"),
        ("TXT", "bad.test", "v=spf1 ip4:192.0.2.1 -all"),
        ("TXT", "_dmarc.bad.test", "v=DMARC1; p=none"),
    ]
    with RedisServer() as r, DnsServer(recs) as dns, SmtpServer() as smtp:
        set_tenant(r, "acme", from_email="info@acme.test", dkim_domain="acme.test", dkim_selector="s1",
                   dkim_private_key=pem)
        p = run_relayq(r, "tenant", "verify-domain", "acme", "bad.test", "--expect-include", PLATFORM_INCLUDE,
                       "--dns-server", dns.address)
        assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
        assert "FAIL spf" in p.stdout, p.stdout
        assert r.client.hget(r.key("tenant", "acme"), "verified_domains") is None
        p = run_relayq(r, "tenant", "verify-domain", "acme", "acme.test", "--dns-server", dns.address)
        assert p.returncode == 2 and "--expect-include" in p.stderr, (p.returncode, p.stderr)
        p = run_relayq(r, "tenant", "verify-domain", "acme", "mail.platform.example", "--expect-include",
                       PLATFORM_INCLUDE, "--dns-server", dns.address, env={"RELAYQ_PLATFORM_FROM": PLATFORM_FROM})
        assert p.returncode == 2 and "platform's own domain" in p.stderr, (p.returncode, p.stderr)
        p = run_relayq(r, "tenant", "verify-domain", "acme", "ACME.test.", "--expect-include", PLATFORM_INCLUDE,
                       "--dns-server", dns.address)
        assert p.returncode == 0, (p.stdout, p.stderr)
        assert "PASS spf" in p.stdout and "PASS dkim" in p.stdout and "PASS dmarc" in p.stdout, p.stdout
        h = {k.decode(): v.decode() for k, v in r.client.hgetall(r.key("tenant", "acme")).items()}
        assert h["verified_domains"] == "acme.test", h
        assert abs(int(h["verified_at.acme.test"]) - time.time() * 1000) < 60000, h
        # `tenant get` and `tenant set` accept the new fields.
        p = run_relayq(r, "tenant", "set", "acme", "from_name=Acme", "--no-verify", env=ENV)
        assert p.returncode == 0, p.stderr
        with worker(r, smtp, env=ENV):
            push_job(r, job("vd-1", **{"from": "news@acme.test"}))
            assert wait_status(r, "vd-1")["state"] == "sent"
            assert parse_message(message_of(smtp, b"text of vd-1")["data"])["From"].addresses[0].addr_spec \
                == "news@acme.test"


# ---- 4. per-tenant job ids ------------------------------------------------------------------

def test_tenant_reusing_another_tenants_id_never_touches_its_status():
    with RedisServer() as r, SmtpServer() as smtp, worker(r, smtp):
        ev = Events(r)
        push_job(r, job("inv-1", tenant="tenant-a"))
        a = wait_status(r, "inv-1")
        assert a["state"] == "sent" and a["tenant"] == "tenant-a", a
        # B's job with A's id, by LPUSH: not A's duplicate, A's status untouched.
        push_job(r, job("inv-1", tenant="tenant-b"))
        e = ev.wait(lambda e: e["id"] == "inv-1" and e["tenant"] == "tenant-b" and e["state"] == "failed")
        assert e["error"] == "invalid_job" and "tenant-a" not in json.dumps(e), e
        wait_for(lambda: any(d.get("tenant") == "tenant-b" for d in dead_payloads(r)), what="B in P:dead")
        assert status(r, "inv-1") == a, status(r, "inv-1")
        # A's job still on its way (queued by a producer): B must not take it over either.
        r.client.hset(r.key("status", "inv-2"), mapping={"state": "queued", "tenant": "tenant-a",
                                                           "created_at": "1"})
        before = status(r, "inv-2")
        push_job(r, job("inv-2", tenant="tenant-b", not_before=int(time.time() * 1000) + 60000))
        ev.wait(lambda e: e["id"] == "inv-2" and e["tenant"] == "tenant-b" and e["state"] == "failed")
        assert status(r, "inv-2") == before, status(r, "inv-2")
        # Through librelayq (`relayq send`): refused, dead-lettered, A untouched.
        p = run_relayq(r, "send", "--tenant", "tenant-b", "--id", "inv-1", "--to", "x@dest.example",
                       "--text", "b-cli")
        assert p.returncode != 0, p.stdout
        assert "another job" in p.stderr and "tenant-a" not in p.stderr, p.stderr
        assert status(r, "inv-1") == a
        ev.wait(lambda e: e["id"] == "inv-1" and e["tenant"] == "tenant-b" and e.get("detail", "").find("new id") >= 0)
        assert sum(1 for d in dead_payloads(r) if d.get("id") == "inv-1") == 2, dead_payloads(r)
        # The enqueue script every example carries (docs/producers.md), run as a producer would.
        doc = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs",
                                "producers.md")).read()
        lua = doc.split("### The enqueue script", 1)[1].split("```lua\n", 1)[1].split("```", 1)[0]
        payload = msgpack.packb(job("inv-1", tenant="tenant-c"), use_bin_type=True)
        ev_json = json.dumps({"id": "inv-1", "tenant": "tenant-c", "state": "queued", "attempts": 0, "ts": 1})
        try:
            r.client.eval(lua, 3, r.key("status", "inv-1"), r.key("queue", "default"), r.key("events"),
                          payload, "", ev_json, "state", "queued", "tenant", "tenant-c", "created_at", "1")
            raise AssertionError("the documented enqueue script accepted another tenant's id")
        except Exception as e:  # redis.ResponseError
            assert "FOREIGN_ID" in str(e), e
        assert status(r, "inv-1") == a
        assert r.client.lindex(r.key("dead"), 0) == payload
        ev.wait(lambda e: e["id"] == "inv-1" and e["tenant"] == "tenant-c" and e["error"] == "invalid_job")
        # The same tenant's own duplicate is still the plain idempotent case.
        p = run_relayq(r, "send", "--tenant", "tenant-a", "--id", "inv-1", "--to", "x@dest.example",
                       "--text", "a-again")
        assert p.returncode == 0, p.stderr
        assert smtp.messages_count() == 1, smtp.messages_count()
        assert status(r, "inv-1") == a


# ---- 5. names without ':' -------------------------------------------------------------------

def test_tenant_names_with_colon_are_refused_and_del_keeps_other_keys():
    with RedisServer() as r, SmtpServer() as smtp, worker(r, smtp):
        push_job(r, job("colon-1", tenant="acme:route:billing"))
        st = wait_status(r, "colon-1")
        assert st["state"] == "failed" and st["error"] == "invalid_job", st
        p = run_relayq(r, "tenant", "set", "a:b", "from_email=x@a.example", "--no-verify")
        assert p.returncode == 2 and "no ':'" in p.stderr, (p.returncode, p.stderr)
        assert not r.client.exists(r.key("tenant", "a:b"))
        p = run_relayq(r, "tenant", "set", "acme", "smtp_host=mail.acme.example", "--route", "b:x",
                       "--no-verify")
        assert p.returncode == 2, p.stderr
        # acme's own route, and a hash a legacy tenant "acme:route:x" owns.
        set_tenant(r, "acme", routes="billing", from_email="a@acme.example")
        set_tenant(r, "acme", route="billing", smtp_host="mail.acme.example")
        other = r.key("tenant", "acme", "route", "x", "route", "y")
        r.client.hset(other, mapping={"smtp_host": "mail.other.example"})
        p = run_relayq(r, "tenant", "del", "acme")
        assert p.returncode == 0, p.stderr
        assert not r.client.exists(r.key("tenant", "acme"))
        assert not r.client.exists(r.key("tenant", "acme", "route", "billing"))
        assert r.client.exists(other), "tenant del acme deleted another hash"


# ---- 6. sealed secrets bound to their place ----------------------------------------------------

def test_sealed_secret_replayed_elsewhere_never_reaches_a_server():
    with RedisServer() as r, SmtpServer(security="starttls", auth=("victim", "victim-pw-77")) as victim, \
            SmtpServer(security="starttls", auth=("victim", "anything")) as evil, \
            worker(r, env=ENV):
        p = run_relayq(r, "tenant", "set", "victim", "gateway=smtp", "smtp_host=mail.victim.example",
                       "smtp_port=%d" % victim.port, "smtp_security=starttls", "smtp_tls_verify=0",
                       "smtp_user=victim", "smtp_password=victim-pw-77", "--no-verify", env=ENV)
        assert p.returncode == 0, p.stderr
        # The fixture listens on loopback (the platform's backend may write hashes directly).
        r.client.hset(r.key("tenant", "victim"), "smtp_host", "127.0.0.1")
        sealed = r.client.hget(r.key("tenant", "victim"), "smtp_password").decode()
        assert sealed.startswith("enc:v2:"), sealed[:10]
        # The victim sends with it.
        push_job(r, job("sv-1", tenant="victim"))
        assert wait_status(r, "sv-1")["state"] == "sent"
        # The attacker copies the sealed value into its own hash, pointing at its server.
        smtp_tenant(r, "attacker", evil, "victim", sealed, smtp_tls_verify="0")
        # ... or into another field / a route of the victim.
        smtp_tenant(r, "victim2", victim, "victim", "x", smtp_tls_verify="0", mailgun_api_key=sealed)
        set_tenant(r, "victim3", routes="r1")
        smtp_tenant(r, "victim3", evil, "victim", sealed, route="r1", smtp_tls_verify="0")
        push_job(r, job("sv-2", tenant="attacker"))
        push_job(r, job("sv-3", tenant="victim2"))
        push_job(r, job("sv-4", tenant="victim3", route="r1"))
        for jid in ("sv-2", "sv-3", "sv-4"):
            st = wait_status(r, jid)
            assert st["state"] == "failed" and st["error"] == "auth", (jid, st)
            assert "sealed for another place" in st["detail"], st["detail"]
            assert "victim-pw-77" not in json.dumps(st)
        assert evil.auth_attempts == [] and evil.messages_count() == 0, evil.auth_attempts
        assert len(victim.auth_attempts) == 1, victim.auth_attempts
        # tenant set refuses a value that is already sealed (v1 or v2).
        for v in (sealed, sealing.seal_v1(KEY, "pw")):
            p = run_relayq(r, "tenant", "set", "attacker", "smtp_password=" + v, "--no-verify", env=ENV)
            assert p.returncode == 2 and "already sealed" in p.stderr, (p.returncode, p.stderr)
        assert r.client.hget(r.key("tenant", "attacker"), "smtp_password").decode() == sealed


def test_reseal_turns_v1_and_plaintext_into_v2_and_the_tenant_still_sends():
    with RedisServer() as r, SmtpServer(security="starttls", auth=("u1", "pw-one")) as s1, \
            SmtpServer(security="starttls", auth=("u2", "pw-two")) as s2:
        smtp_tenant(r, "acme", s1, "u1", sealing.seal_v1(KEY, "pw-one"), smtp_tls_verify="0",
                    routes="backup")
        smtp_tenant(r, "acme", s2, "u2", "pw-two", route="backup", smtp_tls_verify="0")
        smtp_tenant(r, "other", s2, "u2", sealing.seal_v1(KEY, "pw-two"), smtp_tls_verify="0")
        p = run_relayq(r, "tenant", "reseal", "acme")
        assert p.returncode == 2 and "RELAYQ_SECRET_KEY" in p.stderr, p.stderr
        p = run_relayq(r, "tenant", "reseal", "acme", env=ENV)
        assert p.returncode == 0, (p.stdout, p.stderr)
        assert "pw-one" not in p.stdout + p.stderr and "pw-two" not in p.stdout + p.stderr
        v = r.client.hget(r.key("tenant", "acme"), "smtp_password").decode()
        rv = r.client.hget(r.key("tenant", "acme", "route", "backup"), "smtp_password").decode()
        assert sealing.open_sealed(KEY, v, "tenant:acme", "smtp_password") == "pw-one"
        assert sealing.open_sealed(KEY, rv, "tenant:acme:route:backup", "smtp_password") == "pw-two"
        assert r.client.hget(r.key("tenant", "other"), "smtp_password").decode().startswith("enc:v1:")
        p = run_relayq(r, "tenant", "reseal", "--all", env=ENV)
        assert p.returncode == 0, p.stderr
        assert "Resealed 1 value" in p.stdout, p.stdout
        assert r.client.hget(r.key("tenant", "other"), "smtp_password").decode().startswith("enc:v2:")
        with worker(r, env=dict(ENV, RELAYQ_REQUIRE_ENCRYPTED="1")):
            push_job(r, job("rs-1"))
            push_job(r, job("rs-2", route="backup"))
            assert wait_status(r, "rs-1")["state"] == "sent"
            assert wait_status(r, "rs-2")["state"] == "sent"
        assert [a for a in s1.auth_attempts if a[2]] and [a for a in s2.auth_attempts if a[2]]


# ---- 7. the Redis password in the start-up log ------------------------------------------------

def test_redis_password_with_at_and_colon_never_in_the_log():
    password = "p@ss:w0rd@x"
    with RedisServer(password=password) as r:
        q = __import__("urllib.parse").parse.quote(password, safe="")
        for url in ("redis://:%s@127.0.0.1:%d" % (q, r.port), "redis://:%s@127.0.0.1:%d" % (password, r.port),
                    "redis://default:%s@127.0.0.1:%d/0" % (password, r.port)):
            log = tempfile.NamedTemporaryFile(prefix="relayq-w-", delete=False)
            proc = harness._popen([harness.binary("relayq-worker"), "--redis", url, "--prefix", r.prefix,
                                   "--id", "wpw", "--log-level", "debug"], stdout=log, stderr=subprocess.STDOUT)
            try:
                wait_for(lambda: r.client.exists(r.key("worker", "wpw")), what="the worker's heartbeat")
            finally:
                proc.terminate()
                proc.wait(30)
            text = open(log.name, "rb").read().decode("utf-8", "replace")
            os.unlink(log.name)
            assert "starting" in text, text
            for leak in ("w0rd", "p@ss", "ss:w", q):
                assert leak not in text, (leak, url.replace(password, "PW"), text)
            r.client.delete(r.key("worker", "wpw"))


# ---- 8. trace and authentication headers ------------------------------------------------------

def test_trace_and_authentication_headers_are_invalid_jobs():
    names = ["Received", "return-path", "DKIM-Signature", "ARC-Seal", "arc-message-signature",
             "Authentication-Results", "Resent-From", "RESENT-DATE"]
    with RedisServer() as r, SmtpServer() as smtp, worker(r, smtp):
        for i, n in enumerate(names):
            push_job(r, job("hd-%d" % i, headers={n: "x"}))
        push_job(r, job("hd-ok", headers={"List-Unsubscribe": "<mailto:u@acme.example>", "X-ARC": "fine"}))
        for i, n in enumerate(names):
            st = wait_status(r, "hd-%d" % i)
            assert st["state"] == "failed" and st["error"] == "invalid_job", (n, st)
            assert n in st["detail"], (n, st["detail"])
        assert wait_status(r, "hd-ok")["state"] == "sent"
        assert smtp.messages_count() == 1
        # librelayq's encoder refuses them too (`relayq send --header`).
        p = run_relayq(r, "send", "--tenant", "acme", "--to", "x@dest.example", "--text", "t",
                       "--header", "Received: from evil")
        assert p.returncode != 0 and "Received" in p.stderr, (p.returncode, p.stderr)


if __name__ == "__main__":
    harness.main(globals())
