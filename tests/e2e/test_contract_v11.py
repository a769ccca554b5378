"""The v1.1 contract checked from outside, the way a reviewer would.

Every test drives the built binaries through the public contract only:
job payloads in P:queue:*, tenant hashes, worker flags and environment,
`relayq` commands and exit codes, P:status:*, P:events, P:breaker:*,
P:dead, /metrics and /readyz, and the console's HTTP. Each assertion
cites what CONTRACT.md (v1.1) or the issue text promises. Where the code
disagrees, the test fails on purpose: see /work/coord/QA.md.

Secrets used in the scenarios are recorded, and every status hash, event,
worker log and /metrics page seen is checked not to contain them.
"""

import base64
import hashlib
import json
import os
import shutil
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import (ROOT, MailgunFake, RedisServer, SmtpServer, Worker, binary, free_port,  # noqa: E402
                     parse_message, push_job, run_relayq, set_tenant, smtp_tenant, status, wait_for,
                     wait_status)
import sealing  # noqa: E402
from raw_server import RawServer  # noqa: E402

PLATFORM_FROM = "no-reply@platform.example"
FAST = ["--retry-base-ms", "100", "--retry-max-ms", "200", "--platform-from", PLATFORM_FROM,
        "--tenant-cache-ms", "100"]
ONE_TRY = FAST + ["--max-attempts", "1", "--smtp-connect-timeout-ms", "3000"]


def _slow_factor():
    """Latency bounds (the contract's "about a second") are checked as 2 s on a normal build and
    three times that on a sanitizer or Debug build, where everything runs several times slower."""
    try:
        cache = open(os.path.join(harness.build_dir(), "CMakeCache.txt")).read()
    except OSError:
        return 1.0
    if re.search(r"^RELAYQ_SANITIZE:BOOL=ON", cache, re.M) or re.search(r"^CMAKE_BUILD_TYPE:STRING=Debug", cache, re.M):
        return 3.0
    return 1.0


PROMPT = 2.0 * _slow_factor()  # "within about a second" of the contract, with margin for a shared CI machine


# ---- helpers --------------------------------------------------------------------------

def job(jid, tenant, **kw):
    j = {"v": 1, "id": jid, "tenant": tenant, "to": ["%s@dest.example" % jid], "subject": "s " + jid,
         "text": "hello " + jid}
    j.update(kw)
    return j


class EventTap:
    """Subscribes to P:events before the scenario starts; keeps every event."""

    def __init__(self, r):
        self.r = r
        self.events = []
        self._ps = r.client.pubsub(ignore_subscribe_messages=True)
        self._ps.subscribe(r.key("events"))
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop:
            m = self._ps.get_message(timeout=0.1)
            if m and m.get("type") == "message":
                self.events.append(m["data"].decode("utf-8", "replace"))

    def parsed(self):
        return [json.loads(e) for e in list(self.events)]

    def close(self):
        self._stop = True
        self._t.join(2)
        self._ps.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def all_statuses(r):
    out = []
    for k in r.client.scan_iter(match=r.key("status", "*"), count=1000):
        out.append({a.decode(): b.decode("utf-8", "replace") for a, b in r.client.hgetall(k).items()})
    return out


def assert_no_secret(secrets_, r, tap=None, workers=(), extra_texts=()):
    """Contract: secrets never appear in a status hash, an event, a log line, /metrics."""
    places = [("status", json.dumps(all_statuses(r)))]
    if tap is not None:
        places.append(("events", "\n".join(tap.events)))
    places += [("log of %s" % w.id, w.log_text()) for w in workers]
    places += [("output %d" % i, t) for i, t in enumerate(extra_texts)]
    for what, text in places:
        # also inside base64 (AUTH PLAIN/LOGIN, HTTP Basic) anywhere in the text
        decoded = []
        for tok in re.findall(r"[A-Za-z0-9+/]{8,}={0,2}", text):
            try:
                decoded.append(base64.b64decode(tok + "=" * (-len(tok) % 4)).decode("utf-8", "replace"))
            except ValueError:
                pass
        blob = text + "\n" + "\n".join(decoded)
        for s in secrets_:
            assert s not in blob, "secret %r found in %s" % (s[:4] + "...", what)


def pin_of(certfile):
    """sha256//BASE64 of the DER SubjectPublicKeyInfo (curl's --pinnedpubkey)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    cert = x509.load_pem_x509_certificate(open(certfile, "rb").read())
    der = cert.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256//" + base64.b64encode(hashlib.sha256(der).digest()).decode()


def http(url, method="GET", data=None, headers=None, timeout=5):
    """(status, headers, body str); never raises for HTTP errors."""
    req = urllib.request.Request(url, method=method, data=data, headers=headers or {})
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode("utf-8", "replace")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **kw):
        return None


def http_up(url):
    try:
        return http(url, timeout=1)
    except (urllib.error.URLError, ConnectionError, socket.timeout):
        return None


def dead_len(r):
    return r.client.llen(r.key("dead"))


def secret_key_b64():
    return base64.b64encode(os.urandom(32)).decode()





# ---- job validation: tenant ids, per-tenant ids, trace headers ----------------------------

def test_tenant_id_with_colon_is_invalid_job_and_refused_by_tenant_set():
    # Contract: tenant ids have no ':'; a job naming such a tenant is invalid_job, `tenant set` refuses it.
    with RedisServer() as r, SmtpServer() as smtp, Worker(r, platform_smtp=smtp, args=FAST):
        push_job(r, job("long1", "t" * 129))
        push_job(r, job("id:with:colons@x", "acme", to=["colons@dest.example"]))
        st = wait_status(r, "long1")
        assert st["state"] == "failed" and st.get("error") == "invalid_job", st
        assert wait_status(r, "id:with:colons@x")["state"] == "sent", "':' and '@' are valid in job ids"
        push_job(r, job("colon1", "acme:route:billing"))
        st = wait_status(r, "colon1")
        assert st["state"] == "failed" and st.get("error") == "invalid_job", st
        assert st.get("detail"), st
        wait_for(lambda: dead_len(r) == 2, what="the payloads in P:dead")
        assert len(smtp.messages()) == 1
        p = run_relayq(r, "tenant", "set", "evil:route:x", "gateway=platform", "--no-verify")
        assert p.returncode != 0, (p.returncode, p.stdout, p.stderr)
        assert p.stderr.strip() and len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert not r.client.exists(r.key("tenant", "evil:route:x")), "tenant set saved a tenant id with ':'"
        assert not r.client.exists(r.key("tenant", "evil")), "tenant set wrote another tenant's hash"
        p = run_relayq(r, "send", "--tenant", "evil:x", "--to", "a@dest.example", "--text", "x")
        assert p.returncode != 0 and len(p.stderr.strip().splitlines()) == 1, (p.returncode, p.stderr)


def test_id_reused_by_another_tenant_is_invalid_and_leaves_the_first_status_alone():
    # Contract: an id whose status belongs to another tenant is never this job's duplicate;
    # that status is never touched; the new job ends failed/invalid_job, a detail naming no
    # other tenant, and goes to P:dead.
    with RedisServer() as r, SmtpServer() as smtp, EventTap(r) as tap, \
            Worker(r, platform_smtp=smtp, args=FAST):
        push_job(r, job("shared-id", "alphacorp"))
        first = wait_status(r, "shared-id")
        assert first["state"] == "sent" and first["tenant"] == "alphacorp", first
        ttl_before = r.client.pttl(r.key("status", "shared-id"))
        push_job(r, dict(job("shared-id", "betacorp"), to=["victim@dest.example"]))
        wait_for(lambda: dead_len(r) == 1, what="betacorp's job in P:dead")
        after = status(r, "shared-id")
        assert after == first, "another tenant's job changed alphacorp's status: %r -> %r" % (first, after)
        assert r.client.pttl(r.key("status", "shared-id")) <= ttl_before
        assert len(smtp.messages()) == 1, "the second job was sent or treated as a duplicate"
        dead = r.client.lrange(r.key("dead"), 0, -1)
        assert b"betacorp" in dead[0]
        # The event of the new job: failed, invalid_job, detail without the other tenant.
        ev = wait_for(lambda: [e for e in tap.parsed() if e.get("id") == "shared-id"
                               and e.get("tenant") == "betacorp" and e.get("state") == "failed"],
                      timeout=5, what="the failed event of betacorp's job")[0]
        assert ev.get("code", ev.get("error")) == "invalid_job" or ev.get("error") == "invalid_job", ev
        assert "alphacorp" not in json.dumps(ev), ev
        # the same tenant's id again: its duplicate, never sent twice
        push_job(r, job("shared-id", "alphacorp"))

        def drained():
            lists = [k for pat in ("queue:*", "inflight:*", "tq:*") for k in r.client.scan_iter(match=r.key(pat))]
            return all(r.client.llen(k) == 0 for k in lists if r.client.type(k) == b"list") and \
                r.client.zcard(r.key("delayed")) == 0
        wait_for(drained, timeout=10, what="the duplicate acknowledged")
        assert len(smtp.messages()) == 1 and dead_len(r) == 1, "alphacorp's duplicate was sent or dead-lettered"
        assert status(r, "shared-id")["state"] == "sent"
        for e in tap.parsed():
            missing = [k for k in ("id", "tenant", "state", "attempts", "ts") if k not in e]
            assert not missing, "event without %s: %r" % (missing, e)
            assert abs(int(e["ts"]) - time.time() * 1000) < 60000, "ts is not ms since epoch: %r" % e


def test_id_reused_through_the_cli_and_dead_requeue_never_touches_the_other_tenants_status():
    # Contract (v1.1): an id whose status belongs to another tenant: that status is never touched, by any
    # path (relayq send writes `queued` atomically with the push; dead requeue resets a status).
    with RedisServer() as r, SmtpServer() as smtp, Worker(r, platform_smtp=smtp, args=FAST):
        p = run_relayq(r, "send", "--id", "inv-9", "--tenant", "alphacorp", "--to", "a@dest.example", "--text", "x")
        assert p.returncode == 0, p.stderr
        first = wait_status(r, "inv-9")
        assert first["state"] == "sent" and first["tenant"] == "alphacorp", first
        p = run_relayq(r, "send", "--id", "inv-9", "--tenant", "betacorp", "--to", "victim@dest.example",
                       "--text", "y")
        # refused by the CLI, or enqueued and failed by the worker: either way A's status stays
        if p.returncode == 0:
            wait_for(lambda: dead_len(r) == 1, what="betacorp's job in P:dead")
        else:
            assert len(p.stderr.strip().splitlines()) == 1 and "alphacorp" not in p.stderr, p.stderr
            before = dead_len(r)  # the CLI may dead-letter the refused job itself
            push_job(r, dict(job("inv-9", "betacorp"), to=["victim@dest.example"]))
            wait_for(lambda: dead_len(r) == before + 1, what="betacorp's job in P:dead")
        assert status(r, "inv-9") == first, "relayq send by another tenant touched the status: %r" % status(r, "inv-9")
        q = run_relayq(r, "dead", "requeue", "inv-9")
        wait_for(lambda: r.client.llen(r.key("queue", "default")) == 0, timeout=5, what="queue drained")
        cur = status(r, "inv-9")
        assert cur.get("tenant") == "alphacorp" and cur.get("state") == "sent", \
            "dead requeue of betacorp's job rewrote alphacorp's status: %r (requeue said %r)" \
            % (cur, q.stdout + q.stderr)
        assert [m["rcpt_tos"] for m in smtp.messages()] == [["a@dest.example"]], smtp.messages()


def test_same_id_from_two_tenants_at_once_never_mixes_statuses():
    with RedisServer() as r, SmtpServer() as smtp, Worker(r, platform_smtp=smtp, args=FAST), \
            Worker(r, platform_smtp=smtp, args=FAST):
        for i in range(20):
            pair = [dict(job("race%d" % i, "alphacorp"), to=["a%d@dest.example" % i]),
                    dict(job("race%d" % i, "betacorp"), to=["b%d@dest.example" % i])]
            push_many(r, pair if i % 2 else pair[::-1])
        wait_for(lambda: dead_len(r) == 20, timeout=15, what="one job of each pair in P:dead")
        for i in range(20):
            st = wait_status(r, "race%d" % i)
            assert st["state"] == "sent", st
            sent_to = [m["rcpt_tos"][0] for m in smtp.messages() if m["rcpt_tos"][0][1:].split("@")[0] == str(i)]
            assert len(sent_to) == 1, sent_to
            owner = "alphacorp" if sent_to[0].startswith("a") else "betacorp"
            assert st["tenant"] == owner, "status of race%d says %s but %s's mail went out" % (i, st["tenant"], owner)


def test_trace_and_authentication_headers_are_invalid_job():
    # Contract: Received, Return-Path, DKIM-Signature, ARC-*, Authentication-Results,
    # Resent-* (any case) make the job invalid_job.
    bad = {"tr1": "Received", "tr2": "return-path", "tr3": "DKIM-Signature", "tr4": "ARC-Seal",
           "tr5": "arc-message-signature", "tr6": "Authentication-Results", "tr7": "Resent-From",
           "tr8": "RESENT-MESSAGE-ID"}
    with RedisServer() as r, SmtpServer() as smtp, Worker(r, platform_smtp=smtp, args=FAST):
        for jid, name in bad.items():
            push_job(r, job(jid, "acme", headers={name: "x"}))
        push_job(r, job("tr-ok", "acme", headers={"List-Unsubscribe": "<mailto:u@acme.example>"}))
        assert wait_status(r, "tr-ok")["state"] == "sent"
        for jid, name in bad.items():
            st = wait_status(r, jid)
            assert st["state"] == "failed" and st.get("error") == "invalid_job", (name, st)
        wait_for(lambda: dead_len(r) == len(bad), what="the bad jobs in P:dead")
        assert [m["rcpt_tos"] for m in smtp.messages()] == [["tr-ok@dest.example"]]


def test_raw_and_attachment_data_as_msgpack_str():
    # Contract (v1.1): attachments' data and raw may also be msgpack str.
    with RedisServer() as r, SmtpServer() as smtp, Worker(r, platform_smtp=smtp, args=FAST):
        push_job(r, job("st1", "acme", attachments=[{"filename": "r.csv", "content_type": "text/csv",
                                                      "data": "a,b\n1,2\n"}]))
        push_job(r, dict(job("st2", "acme"), raw="From: x@platform.example\r\nTo: st2@dest.example\r\n"
                                                  "Subject: raw str\r\n\r\nraw body as str\r\n"))
        for jid in ("st1", "st2"):
            assert wait_status(r, jid)["state"] == "sent", status(r, jid)
        msgs = {m["rcpt_tos"][0]: parse_message(m["data"]) for m in smtp.messages()}
        att = [p for p in msgs["st1@dest.example"].iter_attachments()]
        assert att and att[0].get_content().replace("\r\n", "\n") == "a,b\n1,2\n", att
        assert "raw body as str" in msgs["st2@dest.example"].get_content()


def test_route_names_with_colon_refused():
    env = {"RELAYQ_SECRET_KEY": secret_key_b64()}
    with RedisServer() as r:
        p = run_relayq(r, "tenant", "set", "acme", "routes=billing:x", "--no-verify", env=env)
        assert p.returncode != 0, "routes=billing:x accepted"
        p = run_relayq(r, "tenant", "set", "acme", "smtp_host=smtp.acme.example", "smtp_user=u", "smtp_password=p",
                       "--route", "a:b", "--no-verify", env=env)
        assert p.returncode != 0, "--route a:b accepted"
        assert r.client.keys("*") == [], r.client.keys("*")


def test_smtp_host_ipv6_bare_or_in_brackets():
    # Contract (tenant hash): smtp_host is a DNS name, an IPv4 address, or an IPv6 address bare or in brackets.
    env = {"RELAYQ_SECRET_KEY": secret_key_b64()}
    with RedisServer() as r:
        for host in ("[2606:4700:4700::1111]", "2606:4700:4700::1111"):
            p = run_relayq(r, "tenant", "set", "v6", "gateway=smtp", "smtp_host=" + host, "smtp_security=tls",
                           "smtp_user=u", "smtp_password=p", "--no-verify", env=env)
            assert p.returncode == 0, "smtp_host=%s refused: %s" % (host, p.stderr)


def test_tenant_del_deletes_only_that_tenant_and_its_routes():
    with RedisServer() as r:
        set_tenant(r, "acme", gateway="platform", routes="billing")
        set_tenant(r, "acme", route="billing", smtp_host="smtp.acme.example")
        set_tenant(r, "acme2", gateway="platform")
        set_tenant(r, "acme.example", gateway="platform")
        p = run_relayq(r, "tenant", "del", "acme")
        assert p.returncode == 0, p.stderr
        assert not r.client.exists(r.key("tenant", "acme"), r.key("tenant", "acme", "route", "billing"))
        assert r.client.exists(r.key("tenant", "acme2")) and r.client.exists(r.key("tenant", "acme.example"))


def test_cli_failures_are_one_clear_line():
    with RedisServer() as r:
        cases = [
            ("tenant", "reseal", "acme"),                    # no RELAYQ_SECRET_KEY
            ("tenant", "trust", "nosuch", "--yes"),          # no such tenant
            ("tenant", "verify-domain", "acme"),             # missing DOMAIN
            ("tenant", "set", "a:b", "gateway=platform", "--no-verify"),
            ("tenant", "pause"),                             # missing TENANT
            ("tenant", "resume"),
        ]
        bad = []
        for args in cases:
            p = run_relayq(r, *args)
            lines = p.stderr.strip().splitlines()
            if p.returncode == 0 or len(lines) != 1 or not lines[0].startswith("relayq: "):
                bad.append("relayq %s -> exit %d, stderr %r" % (" ".join(args), p.returncode, p.stderr[:300]))
        assert not bad, "\n".join(bad)


# ---- the From rule through the platform gateway ----------------------------------------

def from_of(msg):
    m = parse_message(msg["data"])
    return m["From"].addresses[0].addr_spec.lower(), m


def test_verified_domains_govern_from_for_structured_and_raw_jobs():
    with RedisServer() as r, SmtpServer() as smtp, Worker(r, platform_smtp=smtp, args=FAST):
        set_tenant(r, "acme", from_email="billing@acme.example", from_name="Acme",
                   verified_domains="acme.example")
        set_tenant(r, "sneaky", from_email="ops@platform.example", verified_domains="platform.example")
        set_tenant(r, "legacy", from_email="x@legacy.example", domain_verified="1")
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
        pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
        set_tenant(r, "legacy2", from_email="x@other2.example", dkim_domain="dk.example", dkim_selector="s1",
                   dkim_private_key=pem, domain_verified="1")

        def raw(frm, jid):
            return ("From: %s\r\nTo: %s@dest.example\r\nSubject: raw %s\r\nMessage-ID: <%s@acme.example>\r\n"
                    "\r\nbody\r\n" % (frm, jid, jid, jid)).encode()

        jobs = {
            "fr1": (job("fr1", "acme", **{"from": "billing@acme.example"}), "billing@acme.example"),
            "fr2": (job("fr2", "acme", **{"from": "news@mail.acme.example"}), "news@mail.acme.example"),
            "fr3": (job("fr3", "acme", **{"from": "ceo@evil.example"}), PLATFORM_FROM),
            "fr4": (job("fr4", "acme", **{"from": "x@notacme.example"}), PLATFORM_FROM),
            "fr5": (job("fr5", "sneaky", **{"from": "admin@platform.example"}), PLATFORM_FROM),
            "fr6": (job("fr6", "nohash", **{"from": "ceo@bank.example"}), PLATFORM_FROM),
            "fr7": (dict(job("fr7", "acme", **{"from": "billing@acme.example"}),
                         raw=raw("CEO <ceo@evil.example>", "fr7")), PLATFORM_FROM),
            "fr8": (dict(job("fr8", "acme", **{"from": "billing@acme.example"}),
                         raw=raw("Billing <billing@acme.example>", "fr8")), "billing@acme.example"),
            "fr9": (dict(job("fr9", "nohash"), raw=raw("security@platform.example", "fr9")), PLATFORM_FROM),
            # v1.1: domain_verified=1 reads as verified_domains = the from_email's domain
            "fr10": (job("fr10", "legacy", **{"from": "x@legacy.example"}), "x@legacy.example"),
            "fr11": (job("fr11", "legacy", **{"from": "y@other.example"}), PLATFORM_FROM),
            # ... the domain of dkim_domain when set, else of from_email
            "fr12": (job("fr12", "legacy2", **{"from": "y@dk.example"}), "y@dk.example"),
            "fr13": (job("fr13", "legacy2", **{"from": "x@other2.example"}), PLATFORM_FROM),
            # a suffix that is not a subdomain is not the domain; case does not matter
            "fr14": (job("fr14", "acme", **{"from": "x@evilacme.example"}), PLATFORM_FROM),
            "fr15": (job("fr15", "acme", **{"from": "Billing@ACME.Example"}), "billing@acme.example"),
            "fr16": (job("fr16", "acme", **{"from": "x@acme.example.evil.example"}), PLATFORM_FROM),
        }
        # raw messages with several From addresses or headers: no unverified address may go out as From
        tricky = {
            "fr17": "From: billing@acme.example, ceo@evil.example\r\n",
            "fr18": "From: billing@acme.example\r\nFrom: ceo@evil.example\r\n",
            "fr19": "From: \"billing@acme.example\" <ceo@evil.example>\r\n",
        }
        for jid, hdr in tricky.items():
            body = (hdr + "To: %s@dest.example\r\nSubject: t\r\n\r\nbody\r\n" % jid).encode()
            push_job(r, dict(job(jid, "acme", **{"from": "billing@acme.example"}), raw=body))
        for jid, (j, _) in jobs.items():
            push_job(r, j)
        for jid in jobs:
            st = wait_status(r, jid)
            assert st["state"] == "sent", (jid, st)
        got = {}
        for m in smtp.messages():
            got[m["rcpt_tos"][0].split("@")[0]] = m
        bad = []
        for jid, (_, want) in jobs.items():
            addr, parsed = from_of(got[jid])
            if addr != want:
                bad.append("%s: From %s, contract wants %s" % (jid, addr, want))
            if want == PLATFORM_FROM and jid in ("fr3", "fr7"):
                rt = parsed["Reply-To"]
                if not rt or "platform.example" in str(rt):
                    bad.append("%s: rewritten From without the tenant's Reply-To (%r)" % (jid, rt))
                name = parsed["From"].addresses[0].display_name
                if "Acme" not in name or "@" in name:
                    bad.append("%s: rewritten From should carry the tenant's name, got %r" % (jid, name))
        for jid in tricky:
            st = wait_status(r, jid)
            if st["state"] != "sent":
                continue  # refusing such a message is fine too
            raw_hdrs = got[jid]["data"].split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
            froms = re.findall(r"(?im)^from:(.*(?:\r\n[ \t].*)*)", raw_hdrs)
            if any("evil.example" in f for f in froms):
                bad.append("%s: an unverified address went out in From: %r" % (jid, froms))
        assert not bad, "\n".join(bad)


def test_verify_domain_adds_only_when_the_checks_pass():
    # Contract: verify-domain runs the checks of `dns check`; adds DOMAIN (and verified_at.DOMAIN) only when
    # they pass; exit as `dns check` (0 pass, 1 a check failed, 2 error); one line on stderr when not 0.
    from dnsfix import DnsServer, SilentDns
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    pub = base64.b64encode(key.public_key().public_bytes(serialization.Encoding.Raw,
                                                         serialization.PublicFormat.Raw)).decode()
    recs = [("TXT", "acme.test", "v=spf1 include:_spf.platform.test -all"),
            ("TXT", "_spf.platform.test", "v=spf1 ip4:198.51.100.0/24 -all"),
            ("TXT", "s1._domainkey.acme.test", "v=DKIM1; k=ed25519; p=" + pub),
            ("TXT", "_dmarc.acme.test", "v=DMARC1; p=reject"),
            ("TXT", "nospf.test", "hello"),
            ("TXT", "s1._domainkey.nospf.test", "v=DKIM1; k=ed25519; p=" + pub),
            ("TXT", "_dmarc.nospf.test", "v=DMARC1; p=reject")]
    env = {"RELAYQ_SECRET_KEY": secret_key_b64()}
    inc = ["--expect-include", "_spf.platform.test", "--selector", "s1"]
    with RedisServer() as r, DnsServer(recs) as dns, SilentDns() as silent:
        set_tenant(r, "acme", gateway="platform", from_email="info@acme.test", dkim_domain="acme.test",
                   dkim_selector="s1", dkim_private_key=pem)
        p = run_relayq(r, "tenant", "verify-domain", "acme", "nospf.test", *inc, "--dns-server", dns.address,
                       env=env, timeout=30)
        assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
        one_line = len(p.stderr.strip().splitlines()) == 1
        p = run_relayq(r, "tenant", "verify-domain", "acme", "acme.test", *inc, "--dns-server", silent.address,
                       env=env, timeout=90)
        assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
        assert r.client.hget(r.key("tenant", "acme"), "verified_domains") in (None, b""), "added after a failure"
        p = run_relayq(r, "tenant", "verify-domain", "acme", "acme.test", *inc, "--dns-server", dns.address,
                       env=env, timeout=30)
        assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
        h = {k.decode(): v.decode() for k, v in r.client.hgetall(r.key("tenant", "acme")).items()}
        assert h.get("verified_domains") == "acme.test" and "verified_at.acme.test" in h, h
        assert one_line, "a failed verify-domain should print one line on stderr"


def test_tenant_set_changing_from_email_clears_domain_verified():
    # Contract: `relayq tenant set` changing from_email or dkim_domain clears domain_verified.
    with RedisServer() as r:
        set_tenant(r, "legacy", gateway="platform", from_email="x@legacy.example", domain_verified="1")
        p = run_relayq(r, "tenant", "set", "legacy", "from_email=boss@elsewhere.example", "--no-verify")
        assert p.returncode == 0, p.stderr
        v = r.client.hget(r.key("tenant", "legacy"), "domain_verified")
        assert v in (None, b"", b"0"), "domain_verified=%r still vouches for the new domain" % v
        set_tenant(r, "legacy3", gateway="platform", from_email="x@l3.example", dkim_domain="l3.example",
                   domain_verified="1")
        p = run_relayq(r, "tenant", "set", "legacy3", "dkim_domain=", "--no-verify")
        assert p.returncode == 0, p.stderr
        v = r.client.hget(r.key("tenant", "legacy3"), "domain_verified")
        assert v in (None, b"", b"0"), "changing dkim_domain left domain_verified=%r" % v
        # changing something else keeps it
        set_tenant(r, "legacy4", gateway="platform", from_email="x@l4.example", domain_verified="1")
        p = run_relayq(r, "tenant", "set", "legacy4", "from_name=L4", "--no-verify")
        assert p.returncode == 0, p.stderr
        assert r.client.hget(r.key("tenant", "legacy4"), "domain_verified") == b"1"


# ---- sealed secrets bound to their place ------------------------------------------------

def test_sealed_secret_copied_to_another_tenant_is_auth_and_nothing_sent():
    key = os.urandom(32)
    env = {"RELAYQ_SECRET_KEY": base64.b64encode(key).decode()}
    password = "AcmePass-77-secret"
    sealed = sealing.seal_v2(key, "tenant:acme", "smtp_password", password)
    with RedisServer() as r, SmtpServer(security="tls", auth=("acme-user", password)) as tenant_srv, \
            SmtpServer() as plat, EventTap(r) as tap, \
            Worker(r, platform_smtp=plat, args=ONE_TRY, env=env) as w:
        smtp_tenant(r, "acme", tenant_srv, "acme-user", sealed, smtp_tls_verify="0")
        smtp_tenant(r, "mallory", tenant_srv, "acme-user", sealed, smtp_tls_verify="0")
        # control: in its own place the value opens and the job is sent
        push_job(r, job("seal-ok", "acme"))
        assert wait_status(r, "seal-ok")["state"] == "sent"
        tenant_srv.reset()
        ok_logins = sum(1 for a in tenant_srv.auth_attempts if a[2])
        push_job(r, job("seal-evil", "mallory"))
        st = wait_status(r, "seal-evil")
        assert st["state"] == "failed" and st.get("error") == "auth", st
        assert "seal" in st.get("detail", "").lower(), "detail should say the secret was sealed elsewhere: %r" % st
        # the same value copied to a route of the right tenant does not open either
        smtp_tenant(r, "acme2", tenant_srv, "acme-user", sealing.seal_v2(key, "tenant:acme2", "smtp_password",
                                                                          password), smtp_tls_verify="0")
        smtp_tenant(r, "acme2", tenant_srv, "acme-user", sealing.seal_v2(key, "tenant:acme2", "smtp_password",
                                                                          password),
                    route="billing", smtp_tls_verify="0")
        set_tenant(r, "acme2", routes="billing")
        push_job(r, job("seal-route", "acme2", route="billing"))
        st = wait_status(r, "seal-route")
        assert st.get("error") == "auth", st
        assert tenant_srv.messages() == [], tenant_srv.messages()
        assert sum(1 for a in tenant_srv.auth_attempts if a[2]) == ok_logins, tenant_srv.auth_attempts
        # only the attempt that uses the misplaced secret ends auth: acme2's default route still sends
        push_job(r, job("seal-default", "acme2"))
        assert wait_status(r, "seal-default")["state"] == "sent", status(r, "seal-default")
        assert_no_secret([password, sealed], r, tap, [w])


def test_tenant_set_refuses_enc_input_and_reseal_rewrites_as_v2():
    key = os.urandom(32)
    env = {"RELAYQ_SECRET_KEY": base64.b64encode(key).decode()}
    with RedisServer() as r:
        v1 = sealing.seal_v1(key, "pw-one")
        p = run_relayq(r, "tenant", "set", "acme", "gateway=smtp", "smtp_host=smtp.acme.example",
                       "smtp_user=u", "smtp_password=" + v1, "--no-verify", env=env)
        assert p.returncode != 0, "tenant set stored a value that already starts with enc:"
        assert p.stderr.strip(), p
        assert not r.client.hget(r.key("tenant", "acme"), "smtp_password")
        # a v1 value and a plaintext in the tenant and its route: reseal makes both v2
        set_tenant(r, "acme", gateway="smtp", smtp_host="smtp.acme.example", smtp_user="u",
                   smtp_password=v1, routes="billing", mailgun_api_key="plain-key-123")
        set_tenant(r, "acme", route="billing", smtp_host="smtp2.acme.example", smtp_user="u2",
                   smtp_password=sealing.seal_v1(key, "pw-two"))
        set_tenant(r, "other", gateway="smtp", smtp_host="smtp.o.example", smtp_user="o",
                   smtp_password="pw-three", oauth_client_secret="cs-four", oauth_refresh_token="rt-five",
                   dkim_private_key=sealing.seal_v1(key, "-----BEGIN PRIVATE KEY-----x"))
        p = run_relayq(r, "tenant", "reseal", "acme", env=env)
        assert p.returncode == 0, p.stderr
        h = {k.decode(): v.decode() for k, v in r.client.hgetall(r.key("tenant", "acme")).items()}
        rt = {k.decode(): v.decode() for k, v in
              r.client.hgetall(r.key("tenant", "acme", "route", "billing")).items()}
        assert h["smtp_password"].startswith("enc:v2:"), h["smtp_password"][:8]
        assert h["mailgun_api_key"].startswith("enc:v2:"), "plaintext secret not resealed"
        assert sealing.open_sealed(key, h["smtp_password"], "tenant:acme", "smtp_password") == "pw-one"
        assert sealing.open_sealed(key, h["mailgun_api_key"], "tenant:acme", "mailgun_api_key") == "plain-key-123"
        assert rt["smtp_password"].startswith("enc:v2:")
        assert sealing.open_sealed(key, rt["smtp_password"], "tenant:acme:route:billing",
                                   "smtp_password") == "pw-two"
        assert r.client.hget(r.key("tenant", "other"), "smtp_password") == b"pw-three"
        p = run_relayq(r, "tenant", "reseal", "--all", env=env)
        assert p.returncode == 0, p.stderr
        o = r.client.hget(r.key("tenant", "other"), "smtp_password").decode()
        assert sealing.open_sealed(key, o, "tenant:other", "smtp_password") == "pw-three"
        for field, plain in (("oauth_client_secret", "cs-four"), ("oauth_refresh_token", "rt-five"),
                             ("dkim_private_key", "-----BEGIN PRIVATE KEY-----x")):
            v = r.client.hget(r.key("tenant", "other"), field).decode()
            assert v.startswith("enc:v2:") and sealing.open_sealed(key, v, "tenant:other", field) == plain, field
        assert "pw-" not in p.stdout + p.stderr and "plain-key" not in p.stdout + p.stderr


# ---- the network boundary ------------------------------------------------------------------

def test_network_boundary_refuses_internal_addresses_without_connecting():
    hosts = {"nb1": "127.0.0.1", "nb2": "127.1", "nb3": "2130706433", "nb4": "0x7f.1",
             "nb5": "169.254.169.254", "nb6": "localhost", "nb7": "::ffff:127.0.0.1", "nb8": "10.1.2.3",
             "nb9": "::1", "nb10": "[::1]", "nb11": "fc00::1", "nb12": "fe80::1", "nb13": "0.0.0.0",
             "nb14": "255.255.255.255", "nb15": "224.0.0.1", "nb16": "100.64.0.1", "nb17": "172.16.0.1",
             "nb18": "192.168.1.1", "nb19": "240.0.0.1", "nb20": "[::ffff:127.0.0.1]", "nb21": "[fe80::1]",
             "nb22": "[fc00::1]", "nb23": "0177.0.0.1", "nb24": "127.0.0.1.", "nb25": "[::ffff:7f00:1]",
             "nb26": "[::]", "nb27": "localhost."}
    with RedisServer() as r, SmtpServer(security="tls", auth=("u", "BoundaryPw1")) as srv, \
            MailgunFake() as mg, SmtpServer() as plat, EventTap(r) as tap, \
            Worker(r, platform_smtp=plat, args=ONE_TRY, allow_private_nets=None) as w:
        for jid, host in hosts.items():
            smtp_tenant(r, "t-" + jid, srv, "u", "BoundaryPw1", smtp_host=host, smtp_tls_verify="0")
            push_job(r, job(jid, "t-" + jid))
        set_tenant(r, "t-mg", gateway="mailgun", mailgun_domain=mg.domain, mailgun_api_key=mg.api_key,
                   mailgun_base_url=mg.base_url)
        push_job(r, job("nb-mg", "t-mg"))
        set_tenant(r, "t-mg2", gateway="mailgun", mailgun_domain=mg.domain, mailgun_api_key=mg.api_key,
                   mailgun_base_url="http://8.8.8.8:9")
        push_job(r, job("nb-mg2", "t-mg2"))
        set_tenant(r, "t-mg3", gateway="mailgun", mailgun_domain=mg.domain, mailgun_api_key=mg.api_key,
                   mailgun_base_url="https://api.mailgun.net@127.0.0.1:%d" % mg.port)
        push_job(r, job("nb-mg3", "t-mg3"))
        hosts["nb-mg3"] = "https://api.mailgun.net@127.0.0.1 (userinfo trick)"
        hosts["nb-mg2"] = "http://8.8.8.8:9 (plain http to a public address in saas)"
        bad = []
        for jid in list(hosts) + ["nb-mg"]:
            st = wait_status(r, jid, timeout=10)
            if st["state"] != "failed" or st.get("error") != "policy":
                bad.append("%s (%s): %s/%s %s" % (jid, hosts.get(jid, mg.base_url), st["state"],
                                                  st.get("error"), st.get("detail")))
        assert not bad, "not refused with policy:\n" + "\n".join(bad)
        assert srv.connections() == 0, "the worker connected to a loopback tenant server"
        assert mg.requests() == [], "the worker reached a loopback Mailgun URL"
        # the boundary is for tenants' servers: the operator's own platform gateway on loopback still works
        push_job(r, job("nb-plat", "plain-tenant"))
        assert wait_status(r, "nb-plat")["state"] == "sent", status(r, "nb-plat")
        assert_no_secret(["BoundaryPw1"], r, tap, [w])


def test_tenant_set_refuses_numeric_shorthand_and_internal_hosts_in_saas():
    with RedisServer() as r, SmtpServer(security="tls", auth=("u", "pw")) as srv:
        for host in ("127.1", "2130706433", "0x7f.1", "127.0.0.1", "169.254.169.254", "localhost", "[::1]",
                     "[::ffff:127.0.0.1]"):
            p = run_relayq(r, "tenant", "set", "acme", "gateway=smtp", "smtp_host=" + host,
                           "smtp_port=%d" % srv.port, "smtp_security=tls", "smtp_user=u", "smtp_password=pw",
                           "smtp_tls_verify=0", allow_private_nets=None)
            assert p.returncode != 0, "tenant set accepted smtp_host=%s in saas: %s" % (host, p.stdout)
            assert p.stderr.strip(), host
            assert not r.client.exists(r.key("tenant", "acme")), host
        for host in ("127.1", "2130706433"):
            p = run_relayq(r, "tenant", "set", "acme", "gateway=smtp", "smtp_host=" + host, "smtp_port=%d" % srv.port,
                           "smtp_security=tls", "smtp_user=u", "smtp_password=pw", "smtp_tls_verify=0", "--no-verify",
                           env={"RELAYQ_SECRET_KEY": secret_key_b64()})
            assert p.returncode != 0, "numeric shorthand %s accepted inside an allowed network" % host
        p = run_relayq(r, "--mode", "onprem", "tenant", "set", "onp", "gateway=smtp", "smtp_host=127.0.0.1",
                       "smtp_port=%d" % srv.port, "smtp_security=tls", "smtp_user=u", "smtp_password=pw",
                       "smtp_tls_verify=0", env={"RELAYQ_SECRET_KEY": secret_key_b64()}, allow_private_nets=None)
        assert p.returncode == 0, "--mode onprem allows every address: %s %s" % (p.stdout, p.stderr)
        onprem_conns = srv.connections()
        assert onprem_conns >= 1
        # a hash written by the platform's backend: verify, test and trust refuse it too
        smtp_tenant(r, "direct", srv, "u", "pw", smtp_tls_verify="0")
        for args in (("verify", "direct"), ("test", "direct", "--to", "a@dest.example"), ("trust", "direct", "--yes")):
            p = run_relayq(r, "tenant", *args, allow_private_nets=None)
            assert p.returncode != 0, "relayq tenant %s reached a loopback server in saas: %s" % (args[0], p.stdout)
        assert r.client.hget(r.key("tenant", "direct"), "smtp_tls_pin") is None
        assert srv.connections() == onprem_conns, "the CLI connected where a saas worker would not"
        # saas: Mailgun over plain http outside an allowed network is refused by tenant set
        p = run_relayq(r, "tenant", "set", "mg", "gateway=mailgun", "mailgun_domain=mg.example.com",
                       "mailgun_api_key=key-abc", "mailgun_base_url=http://api.mailgun.net", "--no-verify",
                       env={"RELAYQ_SECRET_KEY": secret_key_b64()}, allow_private_nets=None)
        assert p.returncode != 0 and "https" in p.stderr, (p.returncode, p.stderr)
        p = run_relayq(r, "tenant", "set", "oa", "gateway=smtp", "smtp_host=smtp.office365.com", "smtp_auth=xoauth2",
                       "smtp_user=u@oa.example", "oauth_token_url=http://login.example.com/token",
                       "oauth_client_id=c", "oauth_client_secret=s", "oauth_refresh_token=t", "oauth_scope=x",
                       "--no-verify", env={"RELAYQ_SECRET_KEY": secret_key_b64()}, allow_private_nets=None)
        assert p.returncode != 0 and "https" in p.stderr, (p.returncode, p.stderr)
        p = run_relayq(r, "tenant", "set", "t" * 129, "gateway=platform", "--no-verify")
        assert p.returncode != 0, "a 129-character tenant id was accepted"


def test_tenant_set_refuses_what_a_saas_worker_refuses_and_drops_a_contradicted_preset():
    # In saas, `tenant set` refuses port 25 / no security like the workers, with the
    # reason; a field that contradicts the preset drops the preset name.
    env = {"RELAYQ_SECRET_KEY": secret_key_b64()}
    with RedisServer() as r:
        p = run_relayq(r, "tenant", "set", "acme", "gateway=smtp", "smtp_host=smtp.acme.example",
                       "smtp_port=25", "smtp_security=none", "smtp_user=u", "smtp_password=pw", "--no-verify",
                       env=env)
        assert p.returncode != 0 and p.stderr.strip(), (p.returncode, p.stdout, p.stderr)
        assert "25" in p.stderr or "onprem" in p.stderr or "none" in p.stderr, p.stderr
        assert not r.client.exists(r.key("tenant", "acme"))
        p = run_relayq(r, "tenant", "set", "aru", "smtp_preset=aruba", "smtp_user=u@aru.example",
                       "smtp_password=pw", "--no-verify", env=env)
        assert p.returncode == 0, p.stderr
        p = run_relayq(r, "tenant", "set", "aru", "smtp_host=mail.other.example", "--no-verify", env=env)
        assert p.returncode == 0, p.stderr
        assert r.client.hget(r.key("tenant", "aru"), "smtp_preset") in (None, b""), \
            "smtp_preset=aruba left behind after smtp_host changed"


def test_allow_private_nets_flag_and_env_open_a_network():
    with RedisServer() as r, SmtpServer(security="tls", auth=("u", "pw")) as srv, SmtpServer() as plat:
        smtp_tenant(r, "vpn", srv, "u", "pw", smtp_tls_verify="0")
        smtp_tenant(r, "short", srv, "u", "pw", smtp_host="127.1", smtp_tls_verify="0")
        with Worker(r, platform_smtp=plat, args=ONE_TRY + ["--allow-private-nets", "127.0.0.0/8"],
                    allow_private_nets=None):
            push_job(r, job("ap1", "vpn"))
            assert wait_status(r, "ap1")["state"] == "sent"
            # numeric shorthand stays refused even inside an allowed network
            push_job(r, job("ap2", "short"))
            st = wait_status(r, "ap2")
            assert st["state"] == "failed" and st.get("error") == "policy", st
        with Worker(r, platform_smtp=plat, args=ONE_TRY, allow_private_nets=None,
                    env={"RELAYQ_ALLOW_PRIVATE_NETS": "10.0.0.0/8,127.0.0.0/8"}):
            push_job(r, job("ap3", "vpn"))
            assert wait_status(r, "ap3")["state"] == "sent"
        with Worker(r, platform_smtp=plat, args=ONE_TRY, allow_private_nets=None,
                    env={"RELAYQ_ALLOW_PRIVATE_NETS": "10.0.0.0/8"}):
            push_job(r, job("ap4", "vpn"))
            assert wait_status(r, "ap4").get("error") == "policy"


def test_bad_allow_private_nets_is_a_clear_start_up_error():
    with RedisServer() as r:
        for value in ("10.0.0.0/33", "garbage"):
            w = Worker(r, args=["--allow-private-nets", value], allow_private_nets=None)
            code = w.wait_exit(10)
            log = w.log_text()
            w.close()
            assert code != 0 and "--allow-private-nets" in log, (value, code, log[-500:])
            p = run_relayq(r, "tenant", "set", "x", "gateway=smtp", "smtp_host=10.1.1.1", "smtp_user=u",
                           "smtp_password=p", "--no-verify", allow_private_nets=value,
                           env={"RELAYQ_SECRET_KEY": secret_key_b64()})
            assert p.returncode == 2 and "--allow-private-nets" in p.stderr, (value, p.returncode, p.stderr)
        w = Worker(r, allow_private_nets=None, env={"RELAYQ_ALLOW_PRIVATE_NETS": "bogus"})
        code = w.wait_exit(10)
        log = w.log_text()
        w.close()
        assert code != 0 and "ALLOW_PRIVATE_NETS" in log.upper().replace("-", "_"), (code, log[-500:])


def test_saas_route_that_must_authenticate_sends_nothing_without_auth():
    # Contract: smtp_user set and no usable AUTH offered (or EHLO reply not read whole): failed, policy.
    with RedisServer() as r, SmtpServer(security="tls") as noauth, \
            SmtpServer(security="tls", auth=("u", "pw"), ehlo_padding=400) as hidden, SmtpServer() as plat, \
            Worker(r, platform_smtp=plat, args=ONE_TRY):
        smtp_tenant(r, "noauth", noauth, "u", "pw", smtp_tls_verify="0")
        smtp_tenant(r, "hidden", hidden, "u", "pw", smtp_tls_verify="0")
        # saas: port 25, or no smtp_user at all, is refused before connecting
        set_tenant(r, "port25", gateway="smtp", smtp_host="127.0.0.1", smtp_port="25", smtp_security="none",
                   smtp_user="u", smtp_password="pw")
        smtp_tenant(r, "nouser", noauth, None, None, smtp_tls_verify="0")
        push_job(r, job("ma1", "noauth"))
        push_job(r, job("ma2", "hidden"))
        push_job(r, job("ma3", "port25"))
        push_job(r, job("ma4", "nouser"))
        for jid in ("ma1", "ma2", "ma3", "ma4"):
            st = wait_status(r, jid)
            assert st["state"] == "failed" and st.get("error") == "policy", (jid, st)
        assert noauth.messages() == [] and hidden.messages() == []
        assert noauth.transactions() == [] and hidden.transactions() == []


def test_must_authenticate_with_the_configured_mechanism():
    # A route with smtp_user must log in with a mechanism it can use: xoauth2 against a PLAIN/LOGIN-only
    # server, or a password against an XOAUTH2-only server, sends nothing: failed, policy.
    from oauth_fake import TokenEndpoint
    key = os.urandom(32)
    env = {"RELAYQ_SECRET_KEY": base64.b64encode(key).decode()}
    with RedisServer() as r, TokenEndpoint(client_secret="cs-x", refresh_token="rt-x") as ep, \
            SmtpServer(security="starttls", auth=("boss@acme.example", "pw")) as plain_only, \
            SmtpServer(security="starttls", xoauth2=ep.token_ok) as oauth_only, SmtpServer() as plat, \
            Worker(r, platform_smtp=plat, args=ONE_TRY + ["--ca-file", plain_only.cafile], env=env):
        set_tenant(r, "wantsoauth", gateway="smtp", smtp_host="127.0.0.1", smtp_port=plain_only.port,
                   smtp_security="starttls", smtp_user="boss@acme.example", smtp_auth="xoauth2",
                   oauth_token_url=ep.url, oauth_client_id="app-1", oauth_client_secret="cs-x",
                   oauth_refresh_token="rt-x", oauth_scope="s")
        set_tenant(r, "wantspw", gateway="smtp", smtp_host="127.0.0.1", smtp_port=oauth_only.port,
                   smtp_security="starttls", smtp_user="boss@acme.example", smtp_password="pw")
        push_job(r, job("mm1", "wantsoauth"))
        push_job(r, job("mm2", "wantspw"))
        for jid in ("mm1", "mm2"):
            st = wait_status(r, jid)
            assert st["state"] == "failed" and st.get("error") == "policy", (jid, st)
        assert plain_only.messages() == [] and oauth_only.messages() == []
        assert plain_only.transactions() == [] and oauth_only.transactions() == []


def test_platform_login_never_in_clear_unless_smtp_insecure():
    pw = "PlatformPw-4242"
    with RedisServer() as r, SmtpServer(security="none", auth=("plat", pw)) as plat, EventTap(r) as tap:
        url = "smtp://plat:%s@127.0.0.1:%d" % (pw, plat.port)
        with Worker(r, platform_smtp=url, args=ONE_TRY + ["--log-level", "debug"]) as w:
            push_job(r, job("pl1", "acme"))
            st = wait_status(r, "pl1")
            assert st["state"] == "failed" and st.get("error") == "tls", st
            assert plat.auth_attempts == [] and plat.messages() == [], plat.auth_attempts
            log1 = w.log_text()
        assert "smtp+insecure" in log1, "start-up/attempt log should say how to allow it: %s" % log1[-2000:]
        with Worker(r, platform_smtp="smtp+insecure://plat:%s@127.0.0.1:%d" % (pw, plat.port),
                    args=ONE_TRY + ["--log-level", "debug", "--log-format", "json"]) as w2:
            push_job(r, job("pl2", "acme"))
            assert wait_status(r, "pl2")["state"] == "sent"
        assert_no_secret([pw], r, tap, [w, w2])


# ---- pinning -----------------------------------------------------------------------------

def test_tls_pin_right_wrong_and_tenant_trust():
    pw = "PinnedPw-31"
    env = {"RELAYQ_SECRET_KEY": secret_key_b64()}
    with RedisServer() as r, SmtpServer(security="tls", auth=("u", pw)) as srv, \
            SmtpServer(security="starttls", auth=("u", pw)) as srv2, SmtpServer() as plat, \
            EventTap(r) as tap, Worker(r, platform_smtp=plat, args=ONE_TRY) as w:
        right = pin_of(srv.cafile)
        wrong = "sha256//" + base64.b64encode(os.urandom(32)).decode()
        # smtp_tls_verify left at 1: the pin alone makes the self-signed server trusted
        smtp_tenant(r, "pinned", srv, "u", pw, smtp_tls_pin="%s,%s" % (wrong, right))
        smtp_tenant(r, "moved", srv, "u", pw, smtp_tls_pin=wrong)
        smtp_tenant(r, "moved2", srv2, "u", pw, smtp_tls_pin=wrong)
        push_job(r, job("pin1", "pinned"))
        push_job(r, job("pin2", "moved"))
        push_job(r, job("pin3", "moved2"))
        assert wait_status(r, "pin1")["state"] == "sent"
        for jid in ("pin2", "pin3"):
            st = wait_status(r, jid)
            assert st["state"] == "failed" and st.get("error") == "tls", st
            assert "key" in st.get("detail", "").lower(), st
        assert len(srv.auth_attempts) == 1 and srv2.auth_attempts == [], \
            "a login was sent before the pin check: %r %r" % (srv.auth_attempts, srv2.auth_attempts)
        # tenant trust --yes stores the server's pin; then a job goes through
        smtp_tenant(r, "trusting", srv2, "u", pw)
        pn = run_relayq(r, "tenant", "trust", "trusting", env=env, input="n\n")
        assert pn.returncode == 1, (pn.returncode, pn.stdout, pn.stderr)
        assert r.client.hget(r.key("tenant", "trusting"), "smtp_tls_pin") is None, "stored without confirmation"
        p = run_relayq(r, "tenant", "trust", "trusting", "--yes", env=env)
        assert p.returncode == 0, (p.stdout, p.stderr)
        assert r.client.hget(r.key("tenant", "trusting"), "smtp_tls_pin").decode() == pin_of(srv2.cafile)
        assert "sha256//" in p.stdout
        low = p.stdout.lower()
        assert "subject" in low and "issuer" in low and ("valid" in low or "not after" in low), p.stdout
        push_job(r, job("pin4", "trusting"))
        assert wait_status(r, "pin4")["state"] == "sent"
        smtp_tenant(r, "trusting", srv, "u", pw, route="billing")
        set_tenant(r, "trusting", routes="billing")
        p3 = run_relayq(r, "tenant", "trust", "trusting", "--route", "billing", "--yes", env=env)
        assert p3.returncode == 0, (p3.stdout, p3.stderr)
        assert r.client.hget(r.key("tenant", "trusting", "route", "billing"), "smtp_tls_pin").decode() == \
            pin_of(srv.cafile)
        assert "sha256//" in w.log_text(), "the new key's pin should be in the worker log"
        p2 = run_relayq(r, "tenant", "set", "nopin", "gateway=smtp", "smtp_host=smtp.nopin.example",
                        "smtp_security=tls", "smtp_user=u", "smtp_password=x", "smtp_tls_verify=0", "--no-verify",
                        env=env)
        assert "tenant trust" in p2.stdout + p2.stderr, "tenant set smtp_tls_verify=0 should suggest `tenant trust`"
        for bad_pin in ("md5//abc", "sha256//not-base64!", "sha256//" + base64.b64encode(b"short").decode()):
            p4 = run_relayq(r, "tenant", "set", "badpin", "gateway=smtp", "smtp_host=smtp.badpin.example",
                            "smtp_security=tls", "smtp_user=u", "smtp_password=x", "smtp_tls_pin=" + bad_pin,
                            "--no-verify", env=env)
            assert p4.returncode != 0 and "smtp_tls_pin" in p4.stderr, (bad_pin, p4.returncode, p4.stderr)
        assert_no_secret([pw], r, tap, [w], [p.stdout, p.stderr])


def test_oauth_token_shared_sealed_rotated_and_invalid_grant_is_auth():
    from oauth_fake import TokenEndpoint
    key = os.urandom(32)
    env = {"RELAYQ_SECRET_KEY": base64.b64encode(key).decode()}
    user = "boss@acme.example"
    client_secret = "ClientSecret-5150"
    with RedisServer() as r, TokenEndpoint(client_secret=client_secret, refresh_token="rt-first-0001") as ep, \
            SmtpServer(security="starttls", xoauth2=ep.token_ok, require_auth=True) as srv, \
            SmtpServer() as plat, EventTap(r) as tap:
        set_tenant(r, "acme", gateway="smtp", smtp_host="127.0.0.1", smtp_port=srv.port, smtp_security="starttls",
                   smtp_user=user, smtp_auth="xoauth2", oauth_token_url=ep.url, oauth_client_id="app-1",
                   oauth_client_secret=sealing.seal_v2(key, "tenant:acme", "oauth_client_secret", client_secret),
                   oauth_refresh_token=sealing.seal_v2(key, "tenant:acme", "oauth_refresh_token", "rt-first-0001"),
                   oauth_scope="https://outlook.office.com/SMTP.Send offline_access")
        args = FAST + ["--ca-file", srv.cafile, "--max-attempts", "20"]
        mport = free_port()
        with Worker(r, platform_smtp=plat, args=args + ["--metrics", "127.0.0.1:%d" % mport], env=env) as w1, \
                Worker(r, platform_smtp=plat, args=args + ["--log-level", "debug"], env=env) as w2:
            for i in range(10):
                push_job(r, job("oa%d" % i, "acme", **{"from": user}))
            for i in range(10):
                assert wait_status(r, "oa%d" % i)["state"] == "sent", status(r, "oa%d" % i)
            assert ep.count() == 1, "one token request for 10 jobs on two workers, got %d" % ep.count()
            form = ep.requests[0]["form"]
            assert form.get("scope") and (form.get("client_id") or ep.requests[0]["authorization"]), form.keys()
            o = {k.decode(): v.decode() for k, v in r.client.hgetall(r.key("oauth", "acme")).items()}
            assert o.get("access_token", "").startswith("enc:v2:"), o
            tok = sealing.open_sealed(key, o["access_token"], "oauth:acme", "access_token")
            assert tok.startswith("at-") and int(o["expires_at"]) > time.time() * 1000, o
            rt = r.client.hget(r.key("tenant", "acme"), "oauth_refresh_token").decode()
            assert rt.startswith("enc:v2:"), "the rotated refresh token must be written back sealed"
            assert sealing.open_sealed(key, rt, "tenant:acme", "oauth_refresh_token") == ep.current_refresh_token
            first_rotated = ep.current_refresh_token
            # the provider refuses: auth, sign in again, breaker tripped with reason auth
            # an extra route with its own OAuth settings: its token lives in P:oauth:acme:route:billing
            ep.refresh_tokens.add("rt-route-0003")
            set_tenant(r, "acme", route="billing", smtp_host="127.0.0.1", smtp_port=srv.port,
                       smtp_security="starttls", smtp_user=user, smtp_auth="xoauth2", oauth_token_url=ep.url,
                       oauth_client_id="app-1",
                       oauth_client_secret=sealing.seal_v2(key, "tenant:acme:route:billing", "oauth_client_secret",
                                                           client_secret),
                       oauth_refresh_token=sealing.seal_v2(key, "tenant:acme:route:billing", "oauth_refresh_token",
                                                           "rt-route-0003"),
                       oauth_scope="https://outlook.office.com/SMTP.Send offline_access")
            set_tenant(r, "acme", routes="billing")
            push_job(r, job("oa-route", "acme", route="billing", **{"from": user}))
            assert wait_status(r, "oa-route")["state"] == "sent", status(r, "oa-route")
            ro = {k.decode(): v.decode()
                  for k, v in r.client.hgetall(r.key("oauth", "acme", "route", "billing")).items()}
            assert ro.get("access_token", "").startswith("enc:v2:"), ro
            rtok = sealing.open_sealed(key, ro["access_token"], "oauth:acme:route:billing", "access_token")
            assert rtok != tok
            rrt = r.client.hget(r.key("tenant", "acme", "route", "billing"), "oauth_refresh_token").decode()
            assert sealing.open_sealed(key, rrt, "tenant:acme:route:billing", "oauth_refresh_token") == \
                ep.current_refresh_token, "the route's rotated refresh token was not written back"
            newest_rt = ep.current_refresh_token
            # the provider refuses a tenant's refresh: auth, sign in again, breaker tripped with reason auth
            ep.refuse = "invalid_grant"
            set_tenant(r, "beta", gateway="smtp", smtp_host="127.0.0.1", smtp_port=srv.port,
                       smtp_security="starttls", smtp_user=user, smtp_auth="xoauth2", oauth_token_url=ep.url,
                       oauth_client_id="app-1",
                       oauth_client_secret=sealing.seal_v2(key, "tenant:beta", "oauth_client_secret", client_secret),
                       oauth_refresh_token=sealing.seal_v2(key, "tenant:beta", "oauth_refresh_token", "rt-beta-0002"),
                       oauth_scope="https://outlook.office.com/SMTP.Send offline_access")
            push_job(r, job("oa-bad", "beta", **{"from": user}))
            st = wait_status(r, "oa-bad", states=("failed", "retry"))
            assert st.get("error") == "auth" and "sign in" in st.get("detail", "").lower(), st
            assert r.client.hget(r.key("breaker", "beta"), "smtp.reason") == b"auth", \
                r.client.hgetall(r.key("breaker", "beta"))
            g = run_relayq(r, "tenant", "get", "acme", env=env)
            metrics = http("http://127.0.0.1:%d/metrics" % mport)[2]
            assert "relayq_" in metrics
            secrets_ = [client_secret, "rt-first-0001", "rt-beta-0002", "rt-route-0003", newest_rt, first_rotated, tok,
                        rtok]
            oauth_hash = json.dumps({k.decode(): v.decode()
                                     for k, v in r.client.hgetall(r.key("oauth", "acme")).items()})
            assert_no_secret(secrets_, r, tap, [w1, w2], [g.stdout, g.stderr, metrics, oauth_hash])





def push_many(r, jobs, queue="default"):
    import msgpack
    pipe = r.client.pipeline(transaction=False)
    for j in jobs:
        pipe.lpush(r.key("queue", queue), msgpack.packb(j, use_bin_type=True))
    pipe.execute()


def test_silent_tenant_backlog_does_not_delay_another_tenant():
    # Contract (Tenant isolation): with any backlog of a silent tenant server, another tenant's job on
    # a healthy route is sent within about a second; a waiting job holds no --concurrency slot.
    with RedisServer() as r, RawServer("silent") as silent, SmtpServer() as plat, \
            Worker(r, platform_smtp=plat, args=FAST + ["--concurrency", "3", "--max-attempts", "20",
                                                       "--grace-period-s", "2"]) as w:
        set_tenant(r, "slowco", gateway="smtp", smtp_host="127.0.0.1", smtp_port=silent.port, smtp_security="tls",
                   smtp_user="u", smtp_password="pw")
        w.wait_heartbeat()
        push_many(r, [job("sil%d" % i, "slowco") for i in range(500)])
        wait_for(lambda: silent.held, timeout=10, what="the worker to reach the silent server")
        push_job(r, job("fast1", "fastco"))
        t0 = time.monotonic()
        st = wait_status(r, "fast1", timeout=8)
        took = time.monotonic() - t0
        assert st["state"] == "sent", st
        assert took < PROMPT, "another tenant's job waited %.1f s behind a silent tenant's backlog" % took
        assert len(silent.held) <= 4, "%d connections to a server with smtp_max_connections=2" % len(silent.held)
        # SIGTERM: hand back what is in flight, exit 0, no job lost
        assert w.stop(timeout=15) == 0
        assert {"sil%d" % i for i in range(500)} <= ids_in_redis(r), "jobs lost after SIGTERM"


def test_many_silent_tenants_do_not_take_every_concurrency_slot():
    # Contract (Tenant isolation): a silent server (accepts TCP, never answers) "never keeps another
    # tenant's job waiting". 40 tenants, each within its default smtp_max_connections (2), all on silent
    # servers, on a worker with the default --concurrency 64: together they can hold 80 connections.
    n = 40
    with RedisServer() as r, RawServer("silent") as silent, SmtpServer() as plat, \
            Worker(r, platform_smtp=plat, args=FAST + ["--max-attempts", "20", "--grace-period-s", "2"]) as w:
        for k in range(n):
            set_tenant(r, "sil%d" % k, gateway="smtp", smtp_host="127.0.0.1", smtp_port=silent.port,
                       smtp_security="tls", smtp_user="u", smtp_password="pw")
        w.wait_heartbeat()
        push_many(r, [job("m%d-%d" % (k, i), "sil%d" % k) for i in range(5) for k in range(n)])
        wait_for(lambda: len(silent.held) >= 60, timeout=15, what="the silent servers' connections held")
        push_job(r, job("healthy1", "healthyco"))
        t0 = time.monotonic()
        st = wait_status(r, "healthy1", timeout=8)
        assert st["state"] == "sent" and time.monotonic() - t0 < PROMPT, (st, time.monotonic() - t0)


def ids_in_redis(r):
    """Every job id found in a queue, a tenant list, delayed, inflight, dead, or a final status."""
    import msgpack
    ids = set()
    keys = [k for pat in ("queue:*", "tq:*", "inflight:*", "dead") for k in r.client.scan_iter(match=r.key(pat))]
    for k in keys:
        if r.client.type(k) == b"list":
            for p in r.client.lrange(k, 0, -1):
                try:
                    ids.add(msgpack.unpackb(p, raw=False).get("id"))
                except Exception:
                    pass
    for p in r.client.zrange(r.key("delayed"), 0, -1):
        try:
            ids.add(msgpack.unpackb(p, raw=False).get("id"))
        except Exception:
            pass
    for k in r.client.scan_iter(match=r.key("status", "*")):
        if r.client.hget(k, "state") in (b"sent", b"failed", b"partial"):
            ids.add(k.decode().rsplit(":", 1)[1])
    return ids


def test_saturated_tenant_backlog_does_not_delay_another_tenant_two_workers():
    with RedisServer() as r, SmtpServer(security="tls", auth=("u", "pw"), delay=0.3) as slow, \
            SmtpServer() as plat:
        smtp_tenant(r, "busyco", slow, "u", "pw", smtp_tls_verify="0")
        with Worker(r, platform_smtp=plat, args=FAST + ["--concurrency", "8"]) as w1, \
                Worker(r, platform_smtp=plat, args=FAST + ["--concurrency", "8"]) as w2:
            w1.wait_heartbeat()
            w2.wait_heartbeat()
            push_many(r, [job("bz%d" % i, "busyco") for i in range(400)])
            wait_for(lambda: slow.messages_count() >= 2, timeout=10, what="the slow server busy")
            worst = 0.0
            for k in range(3):
                push_job(r, job("quick%d" % k, "quickco"))
                t0 = time.monotonic()
                assert wait_status(r, "quick%d" % k, timeout=8)["state"] == "sent"
                worst = max(worst, time.monotonic() - t0)
            assert worst < PROMPT, "another tenant's job waited %.1f s behind a saturated tenant" % worst
            assert slow.peak_connections() <= 4, slow.peak_connections()


def test_server_banner_of_a_non_smtp_service_is_not_copied_into_status():
    # Text echoed back from a server that never spoke SMTP is not copied into statuses.
    banner = b"HTTP/1.1 400 Bad Request\r\nServer: internal-admin-7f3a\r\n\r\nINTERNAL-SECRET-BANNER\r\n"
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.1)
    port = srv.getsockname()[1]
    stop = []

    def serve():
        while not stop:
            try:
                c, _ = srv.accept()
            except (socket.timeout, OSError):
                continue
            try:
                c.sendall(banner)
            except OSError:
                pass
            c.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with RedisServer() as r, SmtpServer() as plat, EventTap(r) as tap, \
                Worker(r, platform_smtp=plat, args=ONE_TRY, env={"RELAYQ_SECRET_KEY": secret_key_b64()}):
            for sec in ("none", "starttls"):
                set_tenant(r, "scan-" + sec, gateway="smtp", smtp_host="127.0.0.1", smtp_port=port,
                           smtp_security=sec, smtp_user="u", smtp_password="pw")
                push_job(r, job("scan-" + sec, "scan-" + sec))
            for sec in ("none", "starttls"):
                st = wait_status(r, "scan-" + sec)
                assert st["state"] in ("failed", "retry"), st
                dump = json.dumps(st)
                assert "INTERNAL-SECRET-BANNER" not in dump and "internal-admin" not in dump, st
            ev = "\n".join(tap.events)
            assert "INTERNAL-SECRET-BANNER" not in ev and "internal-admin" not in ev
    finally:
        stop.append(1)
        t.join(2)
        srv.close()


def test_basic_auth_disabled_says_switch_to_xoauth2():
    # 535 5.7.139 on a password route -> auth, "switch to smtp_auth=xoauth2".
    with RedisServer() as r, SmtpServer(security="tls", auth=("u", "right"),
                                        auth_fail_reply="535 5.7.139 Authentication unsuccessful, basic "
                                                        "authentication is disabled.") as srv, \
            SmtpServer() as plat, Worker(r, platform_smtp=plat, args=ONE_TRY):
        smtp_tenant(r, "o365", srv, "u", "pw-old", smtp_tls_verify="0")
        push_job(r, job("b1", "o365"))
        st = wait_status(r, "b1")
        assert st.get("error") == "auth" or "auth" in st.get("detail", ""), st
        assert "xoauth2" in st.get("detail", "").lower(), st
        assert "pw-old" not in json.dumps(st)
    # 454 4.7.0 is temporary: retry, not a final failure
    with RedisServer() as r, SmtpServer(security="tls", auth=("u", "right"),
                                        auth_fail_reply="454 4.7.0 Temporary authentication failure") as srv, \
            SmtpServer() as plat, Worker(r, platform_smtp=plat, args=FAST + ["--max-attempts", "20"]):
        smtp_tenant(r, "tmp", srv, "u", "pw-x", smtp_tls_verify="0")
        push_job(r, job("b2", "tmp"))
        st = wait_status(r, "b2", states=("retry",) + harness.FINAL_STATES)
        assert st["state"] == "retry", st


def test_office365_preset_limits_apply_and_oauth_secrets_are_sealed():
    # Contract: presets fill provider limits (office365 30/m,10000/d:rcpt); tenant set seals
    # oauth_client_secret and oauth_refresh_token as enc:v2:, tenant get masks them.
    env = {"RELAYQ_SECRET_KEY": secret_key_b64()}
    with RedisServer() as r, SmtpServer(security="tls", auth=("u", "pw")) as srv, SmtpServer() as plat:
        p = run_relayq(r, "tenant", "set", "m365", "smtp_preset=office365", "smtp_auth=xoauth2",
                       "smtp_user=boss@m365.example", "oauth_client_id=app", "oauth_client_secret=CS-777",
                       "oauth_refresh_token=RT-888", "--no-verify", env=env)
        assert p.returncode == 0, p.stderr
        h = {k.decode(): v.decode() for k, v in r.client.hgetall(r.key("tenant", "m365")).items()}
        assert h["oauth_client_secret"].startswith("enc:v2:") and h["oauth_refresh_token"].startswith("enc:v2:"), h
        g = run_relayq(r, "tenant", "get", "m365", env=env)
        assert g.returncode == 0 and "CS-777" not in g.stdout + g.stderr and "RT-888" not in g.stdout + g.stderr
        # the preset's 30 messages a minute, through a worker (host and port overridden to the fixture)
        smtp_tenant(r, "o365pw", srv, "u", "pw", smtp_preset="office365", smtp_tls_verify="0")
        with Worker(r, platform_smtp=plat, args=FAST, env=env):
            push_many(r, [job("o%d" % i, "o365pw") for i in range(31)])
            wait_for(lambda: srv.messages_count() >= 30, timeout=20, what="30 messages within the preset's limit")

            def deferred():
                d = [status(r, "o%d" % i) for i in range(31)]
                d = [x for x in d if x.get("state") == "deferred"]
                return d[0] if d else None
            st = wait_for(deferred, timeout=10, what="the 31st job deferred by the office365 preset's 30/m")
            assert st.get("error") == "quota" and "30/m" in st.get("detail", ""), st
            assert srv.messages_count() == 30


# ---- circuit breaker, pause, rate limits -------------------------------------------------

def test_breaker_opens_after_connect_failures_jobs_wait_as_retry():
    with RedisServer() as r, RawServer("close") as down, SmtpServer() as plat, \
            Worker(r, platform_smtp=plat, args=FAST + ["--max-attempts", "50"]):
        set_tenant(r, "flaky", gateway="smtp", smtp_host="127.0.0.1", smtp_port=down.port,
                   smtp_security="tls", smtp_user="u", smtp_password="pw")
        for i in range(4):
            push_job(r, job("br%d" % i, "flaky"))
        bkey = r.key("breaker", "flaky")

        def opened():
            h = {k.decode(): v.decode() for k, v in r.client.hgetall(bkey).items()}
            return h if h.get("smtp.state") == "open" else None
        h = wait_for(opened, timeout=15, what="P:breaker:flaky smtp.state=open")
        now = int(time.time() * 1000)
        assert h.get("smtp.reason") == "connect", h
        gaps = []
        if int(h.get("smtp.failures", "0")) < 5:
            gaps.append("P:breaker smtp.failures missing or < 5: %r" % h)
        assert int(h.get("smtp.until", "0")) > now + 30000, "cool-down should be ~60 s: %r" % h
        assert abs(int(h.get("updated_at", "0")) - now) < 15000, h
        # a second worker reads the shared breaker: it does not connect either
        w2 = Worker(r, platform_smtp=plat, args=FAST + ["--max-attempts", "50"])
        w2.wait_heartbeat()
        seen = down.accepts
        before = {("br%d" % i): status(r, "br%d" % i) for i in range(4)}
        # another tenant is not held up
        push_job(r, job("br-other", "healthy"))
        t0 = time.monotonic()
        assert wait_status(r, "br-other", timeout=5)["state"] == "sent"
        assert time.monotonic() - t0 < PROMPT + 0.5
        # watch for 2 s: no new connection while open, the jobs wait as retry, attempts stop
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            assert down.accepts <= seen + 1, "connections continue while the breaker is open (two workers)"
            time.sleep(0.1)
        w2.close()
        for jid, b in before.items():
            st = status(r, jid)
            assert st["state"] == "retry" and st.get("error") == "connect", st
            assert st.get("detail"), st
            if not re.search(r"\d", st["detail"].replace(str(down.port), "").replace("127.0.0.1", "")):
                gaps.append("detail while open does not say when sending resumes: %r" % st["detail"])
            assert int(st["attempts"]) <= int(b["attempts"]) + 1, (b, st)
        assert not gaps, gaps


def test_421_greeting_is_connect_and_trips_the_breaker():
    with RedisServer() as r, RawServer("close", b"421 4.3.2 Service not available, closing channel\r\n") as busy, \
            SmtpServer() as plat, Worker(r, platform_smtp=plat, args=FAST + ["--max-attempts", "50"]):
        set_tenant(r, "busy421", gateway="smtp", smtp_host="127.0.0.1", smtp_port=busy.port,
                   smtp_security="none", smtp_user="u", smtp_password="pw")
        set_tenant(r, "nodns", gateway="smtp", smtp_host="smtp.nonexistent.invalid", smtp_security="tls",
                   smtp_user="u", smtp_password="pw")
        for i in range(3):
            push_job(r, job("g%d" % i, "busy421"))
            push_job(r, job("d%d" % i, "nodns"))
        for t in ("busy421", "nodns"):
            h = wait_for(lambda: (lambda x: x if x.get(b"smtp.state") == b"open" else None)(
                r.client.hgetall(r.key("breaker", t))), timeout=15, what="%s's breaker open" % t)
            assert h.get(b"smtp.reason") == b"connect", h
        for jid in ("g0", "d0"):
            st = status(r, jid)
            assert st["state"] == "retry" and st.get("error") == "connect", st


def test_breaker_of_an_extra_route_is_named_after_it_and_leaves_the_other_routes_alone():
    with RedisServer() as r, RawServer("close") as down, SmtpServer() as plat, \
            Worker(r, platform_smtp=plat, args=FAST + ["--max-attempts", "50"]):
        set_tenant(r, "acme", routes="billing")
        set_tenant(r, "acme", route="billing", smtp_host="127.0.0.1", smtp_port=down.port, smtp_security="tls",
                   smtp_user="u", smtp_password="pw")
        for i in range(5):
            push_job(r, job("rb%d" % i, "acme", route="billing"))
        h = wait_for(lambda: (lambda x: x if x.get(b"billing.state") == b"open" else None)(
            r.client.hgetall(r.key("breaker", "acme"))), timeout=15, what="P:breaker:acme billing.state=open")
        assert h.get(b"billing.reason") == b"connect", h
        assert b"billing.until" in h and b"updated_at" in h, h
        push_job(r, job("rb-plat", "acme"))
        st = wait_status(r, "rb-plat", timeout=5)
        assert st["state"] == "sent" and st.get("route") == "platform", st


def test_auth_and_tls_failures_trip_the_breaker_after_three():
    # Contract: consecutive auth and tls failures trip the breaker (default 3); while open, no connection.
    pw = "RightPw-66"
    with RedisServer() as r, SmtpServer(security="tls", auth=("u", pw)) as srv, SmtpServer() as plat, \
            EventTap(r) as tap, Worker(r, platform_smtp=plat, args=FAST + ["--max-attempts", "50"]) as w:
        smtp_tenant(r, "badpw", srv, "u", "WrongPw-77", smtp_tls_verify="0")
        smtp_tenant(r, "badpin", srv, "u", pw, smtp_tls_pin="sha256//" + base64.b64encode(b"\0" * 32).decode())
        for i in range(3):
            push_job(r, job("ap%d" % i, "badpw"))
            push_job(r, job("tp%d" % i, "badpin"))
            wait_status(r, "ap%d" % i, states=("failed", "retry"))
            wait_status(r, "tp%d" % i, states=("failed", "retry"))
        for t, why in (("badpw", b"auth"), ("badpin", b"tls")):
            h = wait_for(lambda: (lambda x: x if x.get(b"smtp.state") == b"open" else None)(
                r.client.hgetall(r.key("breaker", t))), timeout=5, what="%s's breaker open" % t)
            assert h.get(b"smtp.reason") == why, h
        conns = srv.connections()
        push_job(r, job("ap-late", "badpw"))
        push_job(r, job("tp-late", "badpin"))
        for jid, err in (("ap-late", "auth"), ("tp-late", "tls")):
            st = wait_status(r, jid, states="retry", timeout=5)
            assert st.get("error") == err and st.get("attempts") in ("0", ""), st
        assert srv.connections() == conns, "a worker connected while the breaker was open"
        assert_no_secret([pw, "WrongPw-77"], r, tap, [w])


def test_mailgun_breaker_is_per_tenant_key_not_per_api_host():
    with RedisServer() as r, MailgunFake() as mg, SmtpServer() as plat, EventTap(r) as tap, \
            Worker(r, platform_smtp=plat, args=FAST + ["--max-attempts", "50", "--log-level", "debug"]) as w:
        set_tenant(r, "x", gateway="mailgun", mailgun_domain=mg.domain, mailgun_api_key="key-WRONG-9911",
                   mailgun_base_url=mg.base_url)
        set_tenant(r, "y", gateway="mailgun", mailgun_domain=mg.domain, mailgun_api_key=mg.api_key,
                   mailgun_base_url=mg.base_url)
        for i in range(4):
            push_job(r, job("mx%d" % i, "x"))
        wait_for(lambda: r.client.hget(r.key("breaker", "x"), "mailgun.state") == b"open", timeout=15,
                 what="tenant x's mailgun breaker open")
        t0 = time.monotonic()
        push_job(r, job("my1", "y"))
        assert wait_status(r, "my1", timeout=5)["state"] == "sent"
        assert time.monotonic() - t0 < PROMPT + 0.5
        assert r.client.hget(r.key("breaker", "y"), "mailgun.state") in (None, b"closed")
        st = status(r, "mx0")
        assert st.get("error") == "auth", st
        assert_no_secret(["key-WRONG-9911", mg.api_key], r, tap, [w])


def test_pause_and_resume():
    with RedisServer() as r, SmtpServer() as plat, Worker(r, platform_smtp=plat, args=FAST), \
            Worker(r, platform_smtp=plat, args=FAST):
        p = run_relayq(r, "tenant", "pause", "acme", "--for", "600", "--reason", "invoice audit")
        assert p.returncode == 0, p.stderr
        push_job(r, job("pa1", "acme"))
        push_job(r, job("pa2", "acme"))
        st = wait_status(r, "pa1", states="deferred", timeout=10)
        assert st.get("error") == "policy" and "invoice audit" in st.get("detail", ""), st
        push_job(r, job("pb1", "globex"))
        t0 = time.monotonic()
        assert wait_status(r, "pb1", timeout=5)["state"] == "sent"
        assert time.monotonic() - t0 < PROMPT + 0.5
        assert wait_status(r, "pa2", states=("deferred",) + harness.FINAL_STATES)["state"] == "deferred"
        p = run_relayq(r, "tenant", "resume", "acme")
        assert p.returncode == 0, p.stderr
        t0 = time.monotonic()
        for jid in ("pa1", "pa2"):
            assert wait_status(r, jid, timeout=10)["state"] == "sent"
        assert time.monotonic() - t0 < 8, "resume should take effect within a few seconds"
        # --for: the hold ends by itself
        p = run_relayq(r, "tenant", "pause", "initech", "--for", "4", "--reason", "short hold")
        assert p.returncode == 0, p.stderr
        t0 = time.monotonic()
        push_job(r, job("pc1", "initech"))
        assert wait_status(r, "pc1", states=("deferred", "sent"), timeout=10)["state"] == "deferred"
        assert wait_status(r, "pc1", timeout=15)["state"] == "sent"
        assert time.monotonic() - t0 > 3, "sent before the hold ended"
        assert dead_len(r) == 0


def test_rate_limits_defer_with_quota_and_a_detail_naming_the_limit():
    # two workers: the window is shared ("a rolling window across every worker")
    with RedisServer() as r, SmtpServer() as plat, Worker(r, platform_smtp=plat, args=FAST), \
            Worker(r, platform_smtp=plat, args=FAST):
        set_tenant(r, "acme", rate_limits="2/m,1000/d:rcpt")
        for i in range(3):
            push_job(r, job("rl%d" % i, "acme"))
        wait_for(lambda: plat.messages_count() >= 2, what="two messages within the limit")

        def third():
            sts = [status(r, "rl%d" % i) for i in range(3)]
            d = [s for s in sts if s.get("state") == "deferred"]
            return d[0] if d else None
        st = wait_for(third, timeout=10, what="the third job deferred")
        assert st.get("error") == "quota", st
        assert "2/m" in st.get("detail", ""), "the detail should name the limit: %r" % st
        assert plat.messages_count() == 2


# ---- memory budget, Redis TLS, readiness ------------------------------------------------

def test_max_inflight_bytes_flag_and_env_accepted():
    big = os.urandom(2 * 1024 * 1024)
    with RedisServer() as r, SmtpServer() as plat:
        with Worker(r, platform_smtp=plat, args=FAST + ["--max-inflight-bytes", "1048576"]) as w:
            w.wait_heartbeat()
            push_job(r, job("mb1", "acme", attachments=[{"filename": "a.bin", "content_type":
                                                          "application/octet-stream", "data": big}]))
            push_job(r, job("mb2", "acme"))
            for jid in ("mb1", "mb2"):
                assert wait_status(r, jid, timeout=20)["state"] == "sent", w.log_text()[-2000:]
        with Worker(r, platform_smtp=plat, args=FAST, env={"RELAYQ_MAX_INFLIGHT_BYTES": "1048576"}) as w:
            w.wait_heartbeat()
            push_job(r, job("mb3", "acme"))
            assert wait_status(r, "mb3")["state"] == "sent"
            assert w.running()
        # A 24 MB job (under the default job size limit) goes through a 16 MiB budget, alone,
        # and small jobs behind it are not held for longer than its own send
        with Worker(r, platform_smtp=plat, args=FAST + ["--max-inflight-bytes", "16777216"]) as w:
            w.wait_heartbeat()
            huge = os.urandom(24 * 1024 * 1024 - 4096)
            push_job(r, job("mb-huge", "acme", attachments=[{"filename": "big.bin", "content_type":
                                                             "application/octet-stream", "data": huge}]))
            for i in range(5):
                push_job(r, job("mb-small%d" % i, "acme"))
            assert wait_status(r, "mb-huge", timeout=40)["state"] == "sent", status(r, "mb-huge")
            for i in range(5):
                assert wait_status(r, "mb-small%d" % i, timeout=20)["state"] == "sent"


def test_rediss_with_wrong_ca_is_a_clear_error():
    import test_redis_tls
    with test_redis_tls.TlsRedis() as r, SmtpServer() as plat:
        p = run_relayq(r, "--redis-ca-file", r.wrong_ca, "send", "--tenant", "acme", "--to", "a@dest.example",
                       "--text", "x")
        assert p.returncode != 0 and len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert "--redis-ca-file" in p.stderr or "certificate" in p.stderr.lower(), p.stderr
        push_job(r, job("tls-q", "acme"))
        w = Worker(r, platform_smtp=plat, args=FAST + ["--redis-ca-file", r.wrong_ca])
        assert w.wait_exit(10) != 0
        assert "certif" in w.log_text().lower(), w.log_text()
        w.close()
        assert r.client.keys("*") == [r.key("queue", "default").encode()] and plat.messages() == []


class SentinelRedis:
    """A RedisServer primary watched by one redis-sentinel; url is redis+sentinel://."""

    def __init__(self, r, extra=""):
        import tempfile
        self.r, self.prefix, self.client, self.key = r, r.prefix, r.client, r.key
        self.dir = tempfile.mkdtemp(prefix="relayq-sentinel-")
        self.port = free_port()
        conf = os.path.join(self.dir, "sentinel.conf")
        with open(conf, "w") as f:
            f.write("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor mymaster 127.0.0.1 %d 1\n%s"
                    % (self.port, self.dir, r.port, extra))
        self.proc = harness._popen(["redis-sentinel", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis as redis_py
        probe = redis_py.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)

        def ready():
            try:
                return probe.execute_command("SENTINEL", "get-master-addr-by-name", "mymaster")
            except redis_py.RedisError:
                return None
        wait_for(ready, timeout=10, what="redis-sentinel up")

    @property
    def url(self):
        return "redis+sentinel://127.0.0.1:%d/mymaster" % self.port

    def close(self):
        harness.stop_process(self.proc, 5)
        shutil.rmtree(self.dir, ignore_errors=True)


def test_sentinel_url_for_worker_and_cli():
    harness.skip_unless(os.path.exists("/usr/bin/redis-sentinel"), "redis-sentinel not installed")
    with RedisServer() as r, SmtpServer() as plat:
        sr = SentinelRedis(r)
        try:
            p = run_relayq(sr, "send", "--id", "sn1", "--tenant", "acme", "--to", "a@dest.example", "--text", "x")
            assert p.returncode == 0, p.stderr
            with Worker(sr, platform_smtp=plat, args=FAST):
                assert wait_status(r, "sn1")["state"] == "sent"
            p = run_relayq(sr, "status", "sn1")
            assert p.returncode == 0 and "sent" in p.stdout, p.stderr
        finally:
            sr.close()


def test_sentinel_failover_jobs_pushed_to_the_new_primary_are_delivered():
    # redis+sentinel:// asks Sentinel for the primary and follows failovers (CONTRACT.md).
    harness.skip_unless(os.path.exists("/usr/bin/redis-sentinel"), "redis-sentinel not installed")
    import msgpack
    with RedisServer() as r, RedisServer() as r2, SmtpServer() as plat:
        r2.client.replicaof("127.0.0.1", r.port)
        wait_for(lambda: r2.client.info("replication").get("master_link_status") == "up",
                 timeout=10, what="replica in sync")
        sr = SentinelRedis(r, extra="sentinel down-after-milliseconds mymaster 1000\n"
                                    "sentinel failover-timeout mymaster 10000\n")
        try:
            import redis as redis_py
            sc = redis_py.Redis(host="127.0.0.1", port=sr.port, socket_timeout=2)
            wait_for(lambda: sc.execute_command("SENTINEL", "replicas", "mymaster"), timeout=15,
                     what="sentinel to see the replica")
            with Worker(sr, platform_smtp=plat, args=FAST) as w:
                for i in range(10):
                    push_job(r, job("fo%d" % i, "acme"))
                for i in range(10):
                    assert wait_status(r, "fo%d" % i)["state"] == "sent"
                def failover():
                    # NOGOODSLAVE until the sentinel has fresh INFO from the replica: ask again
                    try:
                        return sc.execute_command("SENTINEL", "FAILOVER", "mymaster")
                    except redis_py.ResponseError as e:
                        if "NOGOODSLAVE" in str(e) or "INPROG" in str(e):
                            return None
                        raise
                wait_for(failover, timeout=20, interval=0.2, what="SENTINEL FAILOVER accepted")
                wait_for(lambda: int(sc.execute_command("SENTINEL", "get-master-addr-by-name", "mymaster")[1])
                         == r2.port, timeout=20, what="the replica promoted")
                wait_for(lambda: r2.client.info("replication").get("role") == "master", timeout=10,
                         what="new primary writable")
                for i in range(10):
                    r2.client.lpush(r.key("queue", "default"), msgpack.packb(job("fn%d" % i, "acme"),
                                                                             use_bin_type=True))

                def all_sent():
                    return all(r2.client.hget(r.key("status", "fn%d" % i), "state") == b"sent" for i in range(10))
                wait_for(all_sent, timeout=30, what="jobs pushed to the new primary sent")
                assert w.running()
            got = sorted(m["rcpt_tos"][0] for m in plat.messages())
            for i in range(10):
                assert "fn%d@dest.example" % i in got
        finally:
            sr.close()


def test_readyz_503_while_redis_refuses_writes():
    # Writes refused (maxmemory, noeviction) -> /readyz 503 naming the cause, a few
    # log lines, no job failed or dead; memory raised -> every job sent once, /readyz 200.
    port = free_port()
    with RedisServer() as r, SmtpServer() as plat:
        n = 20
        for i in range(n):
            push_job(r, job("rz%d" % i, "acme"))
        r.client.config_set("maxmemory-policy", "noeviction")
        r.client.config_set("maxmemory", "1")
        p = run_relayq(r, "send", "--tenant", "acme", "--to", "a@dest.example", "--text", "x")
        assert p.returncode != 0 and re.search(r"full|maxmemory", p.stderr, re.I), (p.returncode, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
        with Worker(r, platform_smtp=plat, args=FAST + ["--metrics", "127.0.0.1:%d" % port]) as w:
            base = "http://127.0.0.1:%d" % port
            s503 = wait_for(lambda: (lambda x: x if x and x[0] == 503 else None)(http_up(base + "/readyz")),
                            timeout=15, what="/readyz 503 while Redis refuses writes")
            assert re.search(r"oom|maxmemory|full|refus", s503[2], re.I), s503[2]
            t0 = time.monotonic()
            wait_for(lambda: time.monotonic() - t0 > 3, timeout=5, what="3 s of refusal")  # observation window
            lines = [ln for ln in w.log_text().splitlines() if re.search(r"oom|maxmemory", ln, re.I)]
            assert len(lines) <= 5, "%d log lines about the refusal in 3 s:\n%s" % (len(lines), "\n".join(lines[:10]))
            assert any("OOM command not allowed" in ln for ln in lines), "the start line should quote Redis's words"
            assert plat.messages_count() == 0 and dead_len(r) == 0
            r.client.config_set("maxmemory", "0")
            for i in range(n):
                assert wait_status(r, "rz%d" % i, timeout=15)["state"] == "sent"
            wait_for(lambda: (http_up(base + "/readyz") or (0,))[0] == 200, timeout=10, what="/readyz 200 again")
            assert dead_len(r) == 0
            after = w.log_text().split("OOM command not allowed", 1)[1]
            assert re.search(r"\d+(\.\d+)? ?s\b", after), "no end line saying how long it lasted"
            assert sorted(m["rcpt_tos"][0] for m in plat.messages()) == sorted("rz%d@dest.example" % i
                                                                               for i in range(n))
            metrics = http(base + "/metrics")[2]
        assert_no_secret([], r, None, [w], [metrics])


# ---- console -----------------------------------------------------------------------------

class Web:
    def __init__(self, r, *args, allow_private_nets=harness.TEST_ALLOW_PRIVATE_NETS):
        cmd = [binary("relayq"), "--redis", r.url, "--prefix", r.prefix, "web"] + list(args)
        self.proc = harness._popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env=harness._child_env({}))

    def close(self):
        harness.stop_process(self.proc, 5)


def test_console_loopback_token_and_csrf(tmpdir=None):
    import tempfile
    with RedisServer() as r, tempfile.TemporaryDirectory() as d:
        port = free_port()
        web = Web(r, "--listen", "127.0.0.1:%d" % port)
        try:
            base = "http://127.0.0.1:%d" % port
            s = wait_for(lambda: http_up(base + "/"), timeout=10, what="console up")
            assert s[0] == 200, s[0]
        finally:
            web.close()
        # off loopback without a token: refused at start
        p = subprocess.run([binary("relayq"), "--redis", r.url, "--prefix", r.prefix, "web", "--listen",
                            "0.0.0.0:%d" % free_port()], capture_output=True, text=True, timeout=10,
                           stdin=subprocess.DEVNULL, env=harness._child_env({}))
        assert p.returncode != 0 and "token" in p.stderr.lower(), (p.returncode, p.stderr)
        tok = "t0ken-" + os.urandom(12).hex()
        tf = os.path.join(d, "token")
        with open(tf, "w") as f:
            f.write(tok + "\n")
        os.chmod(tf, 0o600)
        port = free_port()
        web = Web(r, "--listen", "127.0.0.1:%d" % port, "--token-file", tf)
        try:
            base = "http://127.0.0.1:%d" % port
            wait_for(lambda: http_up(base + "/healthz") or http_up(base + "/login"), timeout=10, what="console")
            s = http(base + "/")
            assert s[0] in (401, 302, 303), "no token must not see the console: %s" % s[0]
            auth = {"Authorization": "Bearer " + tok}
            s = http(base + "/", headers=auth)
            assert s[0] == 200, s[0]
            set_tenant(r, "acme", gateway="smtp", smtp_host="smtp.acme.example", smtp_user="u",
                       smtp_password="ConsolePw-plain-1", mailgun_api_key="key-console-2")
            s = http(base + "/tenant?id=acme", headers=auth)
            assert s[0] == 200 and "ConsolePw-plain-1" not in s[2] and "key-console-2" not in s[2], s[0]
            keys_before = sorted(r.client.keys("*"))
            s = http(base + "/tenant/pause", method="POST", data=b"tenant=acme&for=600&reason=x",
                     headers=dict(auth, **{"Content-Type": "application/x-www-form-urlencoded"}))
            assert s[0] == 403, "a POST without the CSRF field must be refused: %s" % s[0]
            assert sorted(r.client.keys("*")) == keys_before, "a refused POST changed Redis"
            assert tok not in s[2]
            s = http(base + "/job?id=%3Cscript%3Ealert(1)%3C/script%3E", headers=auth)
            assert s[0] == 400 and "<script>alert" not in s[2], s[0]
            # security headers, the login form's cookie, and a POST carrying the CSRF field
            s = http(base + "/", headers=auth)
            hdr = {k.lower(): v for k, v in s[1].items()}
            assert hdr.get("x-frame-options", "").upper() == "DENY", hdr
            assert "content-security-policy" in hdr, hdr
            s = http(base + "/login", method="POST", data=("token=" + tok).encode(),
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
            cookie = {k.lower(): v for k, v in s[1].items()}.get("set-cookie", "")
            assert s[0] in (200, 302, 303) and "httponly" in cookie.lower(), (s[0], cookie)
            assert tok not in cookie, "the cookie must not hold the token itself"
            jar = {"Cookie": cookie.split(";")[0]}
            page = http(base + "/tenant?id=acme", headers=jar)
            assert page[0] == 200, page[0]
            m = re.search(r'name="csrf" value="([^"]+)"', page[2])
            assert m, "no CSRF field in the tenant page's forms"
            s = http(base + "/tenant/pause", method="POST",
                     data=("csrf=%s&tenant=acme&for=600&reason=qa" % m.group(1)).encode(),
                     headers=dict(jar, **{"Content-Type": "application/x-www-form-urlencoded"}))
            assert s[0] < 400, (s[0], s[2][-500:])
            assert sorted(r.client.keys("*")) != keys_before, "pause through the console changed nothing in Redis"
            # a job by id, and a dead letter requeued through the console as `relayq dead requeue` would
            import msgpack
            payload = msgpack.packb(job("dl1", "acme"), use_bin_type=True)
            r.client.lpush(r.key("dead"), payload)
            r.client.hset(r.key("status", "dl1"), mapping={"state": "failed", "tenant": "acme", "error": "connect",
                                                           "attempts": "8", "detail": "gave up"})
            page = http(base + "/job?id=dl1", headers=jar)
            assert page[0] == 200 and "dl1" in page[2] and "failed" in page[2], page[0]
            page = http(base + "/dead", headers=jar)
            assert page[0] == 200 and "dl1" in page[2], page[0]
            page = http(base + "/dead/requeue?id=dl1", headers=jar)  # the confirmation page
            assert page[0] == 200, page[0]
            csrf = re.search(r'name="csrf" value="([^"]+)"', page[2]).group(1)
            s = http(base + "/dead/requeue", method="POST", data=("csrf=%s&id=dl1" % csrf).encode(),
                     headers=dict(jar, **{"Content-Type": "application/x-www-form-urlencoded"}))
            assert s[0] < 400, (s[0], s[2][-400:])
            assert r.client.llen(r.key("dead")) == 0 and r.client.llen(r.key("queue", "default")) == 1
            assert r.client.hget(r.key("status", "dl1"), "state") == b"queued"
        finally:
            web.close()


def test_queue_stats_counts_tenant_sorted_backlog():
    with RedisServer() as r:
        push_job(r, job("qs0", "acme"))
        for i in range(3):
            r.client.lpush(r.key("tq", "default", "acme"), b"x%d" % i)
        r.client.rpush(r.key("tring", "default"), b"acme")
        p = run_relayq(r, "queue", "stats")
        assert p.returncode == 0, p.stderr
        row = [ln.split() for ln in p.stdout.splitlines() if ln.split()[:1] == ["default"]]
        assert row and int(row[0][1]) == 4, "ready of default should be 1 shared + 3 sorted:\n" + p.stdout


# ---- secrets: the Redis password --------------------------------------------------------

def test_redis_password_with_at_sign_not_logged():
    pw = "s3cr@t:p@ss/word"
    with RedisServer(password=pw) as r, SmtpServer() as plat, Worker(r, platform_smtp=plat, args=FAST) as w:
        w.wait_heartbeat()
        push_job(r, job("pw1", "acme"))
        assert wait_status(r, "pw1")["state"] == "sent"
        p = run_relayq(r, "status", "nosuchjob")
        q = run_relayq(r, "queue", "stats")
        assert q.returncode == 0, q.stderr
        p.stdout += q.stdout + q.stderr
        bad = run_relayq(r, "--redis", r.url.replace("127.0.0.1", "127.0.0.1:1").replace(":%d" % r.port, ""),
                         "status", "x")
        import urllib.parse
        wrong = run_relayq(r, "--redis", "redis://:%s@127.0.0.1:%d" % (urllib.parse.quote("wr0ng@pw:x", safe=""),
                                                                          r.port), "status", "x")
        assert wrong.returncode != 0 and "wr0ng" not in wrong.stderr + wrong.stdout, wrong.stderr
        assert len(wrong.stderr.strip().splitlines()) == 1, wrong.stderr
        # a platform login with '@', ':' and '/' in it, percent-encoded in the URL
        ppw = "pl@t:f/rm%pw"
        with SmtpServer(security="starttls", auth=("plat@x", ppw)) as psrv:
            url = "smtp://%s:%s@127.0.0.1:%d" % (urllib.parse.quote("plat@x", safe=""),
                                                 urllib.parse.quote(ppw, safe=""), psrv.port)
            with Worker(r, platform_smtp=url, args=FAST + ["--platform-tls-verify=0", "--log-level", "debug",
                                                           "--queue", "q2"]) as w2:
                push_job(r, job("pw2", "acme"), queue="q2")
                assert wait_status(r, "pw2")["state"] == "sent", status(r, "pw2")
            assert psrv.auth_attempts and psrv.auth_attempts[-1][2], psrv.auth_attempts
            for s in (ppw, urllib.parse.quote(ppw, safe=""), "pl@t"):
                assert s not in w2.log_text(), "platform password in the worker log"
        for s in (pw, urllib.parse.quote(pw, safe=""), "s3cr@t"):
            assert s not in w.log_text(), "Redis password in the worker log"
            assert s not in p.stdout + p.stderr + bad.stdout + bad.stderr, "Redis password in CLI output"


# ---- help and docs ---------------------------------------------------------------------------

def test_new_flags_and_commands_in_help_and_docs():
    whelp = subprocess.run([binary("relayq-worker"), "--help"], capture_output=True, text=True).stdout
    chelp = subprocess.run([binary("relayq"), "--help"], capture_output=True, text=True)
    chelp = chelp.stdout + chelp.stderr
    thelp = subprocess.run([binary("relayq"), "tenant", "--help"], capture_output=True, text=True)
    thelp = thelp.stdout + thelp.stderr
    conf = open(os.path.join(ROOT, "docs", "configuration.md")).read()
    cli = open(os.path.join(ROOT, "docs", "cli.md")).read()
    missing = []
    for flag, env in (("--allow-private-nets", "RELAYQ_ALLOW_PRIVATE_NETS"),
                      ("--max-inflight-bytes", "RELAYQ_MAX_INFLIGHT_BYTES"),
                      ("--redis-ca-file", "RELAYQ_REDIS_CA_FILE"), ("--redis-cert", None),
                      ("--redis-key", None), ("--ca-file", "RELAYQ_CA_FILE")):
        if flag not in whelp:
            missing.append("relayq-worker --help lacks " + flag)
        if flag not in conf:
            missing.append("docs/configuration.md lacks " + flag)
        if env and env not in conf:
            missing.append("docs/configuration.md lacks " + env)
        if env and env not in whelp:
            missing.append("relayq-worker --help lacks " + env)
    for flag in ("--mode", "--allow-private-nets", "--redis-ca-file"):
        if flag not in chelp:
            missing.append("relayq --help lacks " + flag)
    for sub in ("verify-domain", "trust", "reseal", "pause", "resume"):
        if sub not in thelp:
            missing.append("relayq tenant --help lacks " + sub)
        if not re.search(r"relayq tenant %s" % sub, cli):
            missing.append("docs/cli.md lacks `relayq tenant %s`" % sub)
    alldocs = "".join(open(os.path.join(ROOT, "docs", f)).read() for f in os.listdir(os.path.join(ROOT, "docs"))
                      if f.endswith(".md"))
    for word in ("smtp_auth", "oauth_token_url", "oauth_client_id", "oauth_client_secret", "oauth_refresh_token",
                 "oauth_scope", "oauth_grant", "rate_limits", "smtp_tls_pin", "verified_domains", "verified_at.",
                 "enc:v2:", "smtp+insecure://", "rediss://", "redis+sentinel://", "rediss+sentinel://",
                 ":breaker:", ":oauth:", ":tq:", ":tring:", "/readyz", "--listen", "--token-file"):
        if word not in alldocs:
            missing.append("docs/*.md never mention %s" % word)
    whelp2 = subprocess.run([binary("relayq"), "web", "--help"], capture_output=True, text=True)
    if "127.0.0.1:8080" not in whelp2.stdout + whelp2.stderr:
        missing.append("relayq web --help does not show the loopback default 127.0.0.1:8080")
    if "web" not in chelp:
        missing.append("relayq --help lacks web")
    if "relayq web" not in cli:
        missing.append("docs/cli.md lacks `relayq web`")
    assert not missing, "\n".join(missing)


if __name__ == "__main__":
    harness.main(globals())
