#!/usr/bin/python3
"""DKIM signing end to end: the worker signs mail through the platform
gateway for tenants with dkim_domain, dkim_selector and dkim_private_key,
and python3-dkim (dkimpy, an independent implementation) verifies what the
SMTP server received, with a dnsfunc serving each tenant's public key.

Covered: RSA keys in PKCS#1 and PKCS#8 and Ed25519 (RFC 8463) keys; plain
text with lines the transport dot-stuffs, a UTF-8 subject with HTML and an
attachment, a 300-character folded subject, List-Unsubscribe; changing a
byte or adding a From breaks the signature; a tenant with an unusable key
fails its own jobs with a detail naming dkim_private_key while other
tenants' mail goes out, and a fixed key is picked up; tenants without DKIM
settings and the Mailgun gateway are not signed; the key never reaches a
status hash or the log.
"""

import base64
import os
import random
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dkim  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa  # noqa: E402

import harness  # noqa: E402
from harness import (MailgunFake, RedisServer, SmtpServer, Worker, parse_message,  # noqa: E402
                     push_job, status, wait_for, wait_status)

PLATFORM_FROM = "no-reply@platform.example"
PEM = serialization.Encoding.PEM
NOENC = serialization.NoEncryption()


# ---- keys and DNS -------------------------------------------------------------------------

class Key:
    """A tenant's DKIM key: .pem (str, the hash value), .txt (the DNS TXT
    record), .algo (the a= tag the worker must write)."""

    def __init__(self, kind):
        if kind == "ed25519":
            k = ed25519.Ed25519PrivateKey.generate()
            self.pem = k.private_bytes(PEM, serialization.PrivateFormat.PKCS8, NOENC).decode()
            raw = k.public_key().public_bytes(serialization.Encoding.Raw,
                                              serialization.PublicFormat.Raw)
            self.txt = "v=DKIM1; k=ed25519; p=" + base64.b64encode(raw).decode()
            self.algo = "ed25519-sha256"
            return
        k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        fmt = (serialization.PrivateFormat.TraditionalOpenSSL if kind == "rsa-pkcs1"
               else serialization.PrivateFormat.PKCS8)
        self.pem = k.private_bytes(PEM, fmt, NOENC).decode()
        der = k.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
        self.txt = "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()
        self.algo = "rsa-sha256"


class Dns:
    """dkimpy's dnsfunc: TXT records by name, None for anything else."""

    def __init__(self):
        self.records = {}

    def publish(self, selector, domain, txt):
        self.records[("%s._domainkey.%s." % (selector, domain)).encode()] = txt.encode()

    def __call__(self, name, timeout=5):
        return self.records.get(name)


def set_tenant(r, tenant, **fields):
    r.client.hset(r.key("tenant", tenant), mapping=fields)


def dkim_tenant(r, dns, tenant, key, selector="s2024"):
    domain = tenant + ".example"
    set_tenant(r, tenant, from_email="news@" + domain, from_name=tenant.title(), domain_verified="1",
               dkim_domain=domain, dkim_selector=selector, dkim_private_key=key.pem)
    dns.publish(selector, domain, key.txt)
    return domain


def worker(r, smtp, *args, **kw):
    return Worker(r, platform_smtp=smtp, args=["--platform-from", PLATFORM_FROM] + list(args), **kw)


# ---- messages -----------------------------------------------------------------------------

PDF = bytes(range(256)) * 40 + b"%%EOF\n"
LONG_SUBJECT = ("Quarterly statement for account 0042 " + "with a very long explanation " * 10)[:300]
UNSUB = "<mailto:unsubscribe@%s?subject=unsubscribe>, <https://%s/u/opaque-token-1234567890>"


def jobs_for(tenant, domain):
    """The four kinds of message, as jobs; each recipient is JOBID@dest.example."""
    def job(kind, **kw):
        jid = "%s-%s" % (tenant, kind)
        j = {"v": 1, "id": jid, "tenant": tenant, "to": ["%s@dest.example" % jid],
             "subject": "hello from %s" % tenant, "text": "Plain body for %s." % jid}
        j.update(kw)
        return j
    return [
        job("plain", text="Plain body.\n.\n..starts with dots\n. and more\nTrailing spaces   \n\n\n"),
        job("rich", subject="Fattura n° 42 — Grüße aus Köln ✓ €1.234,56",
            text="Ciao — testo in UTF-8 ✓", html="<p>Ciao — <b>html</b> ✓</p>",
            attachments=[{"filename": "fattura_42 — €.pdf", "content_type": "application/pdf",
                          "data": PDF}],
            cc=["Ünïcode Name <cc-%s@dest.example>" % tenant]),
        job("long", subject=LONG_SUBJECT, reply_to="help@" + domain),
        job("unsub", headers={"List-Unsubscribe": UNSUB % (domain, domain),
                              "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}),
    ]


def by_job(messages):
    """{job id: message bytes} from the recipients JOBID@dest.example."""
    out = {}
    for m in messages:
        for rcpt in m["rcpt_tos"]:
            if rcpt.endswith("@dest.example") and not rcpt.startswith("cc-"):
                out[rcpt[:-len("@dest.example")]] = m["data"]
    return out


def sig_header(data):
    """The DKIM-Signature field (unfolded str) and its raw lines."""
    head = data.split(b"\r\n\r\n", 1)[0]
    m = re.match(rb"DKIM-Signature:(.*?)\r\n(?=\S)", head, re.S)
    assert m, "the first header is not DKIM-Signature:\n%r" % head[:300]
    raw = m.group(0)
    return raw.decode().replace("\r\n", ""), raw.split(b"\r\n")[:-1]


def tags(value):
    out = {}
    for part in value.split(":", 1)[1].split(";"):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k.strip()] = re.sub(r"\s+", "", v)
    return out


def verifies(data, dns):
    return dkim.verify(data, dnsfunc=dns)


# ---- tests --------------------------------------------------------------------------------

def test_signed_messages_verify():
    dns = Dns()
    keys = {"rsa1": Key("rsa-pkcs1"), "rsa8": Key("rsa-pkcs8"), "edkey": Key("ed25519")}
    with RedisServer() as r, SmtpServer() as smtp, worker(r, smtp) as w:
        domains = {t: dkim_tenant(r, dns, t, k) for t, k in keys.items()}
        jobs = [j for t in keys for j in jobs_for(t, domains[t])]
        for j in jobs:
            push_job(r, j)
        for j in jobs:
            st = wait_status(r, j["id"])
            assert st["state"] == "sent", st
        got = by_job(smtp.wait_messages(len(jobs)))
        assert sorted(got) == sorted(j["id"] for j in jobs), sorted(got)

        for j in jobs:
            data = got[j["id"]]
            tenant, kind = j["id"].split("-", 1)
            key = keys[tenant]
            assert verifies(data, dns), "%s does not verify:\n%s" % (j["id"], data[:3000])
            value, lines = sig_header(data)
            t = tags(value)
            assert t["v"] == "1" and t["a"] == key.algo and t["c"] == "relaxed/relaxed", t
            assert t["d"] == domains[tenant] and t["s"] == "s2024", t
            assert abs(int(t["t"]) - int(status(r, j["id"])["sent_at"]) / 1000) < 120, t
            h = t["h"].split(":")
            assert h.count("from") == 2, h  # over-signed
            for name in ("to", "subject", "date", "message-id", "mime-version", "content-type"):
                assert name in h, (name, h)
            if kind == "rich":
                assert "cc" in h, h
            if kind == "long":
                assert "reply-to" in h, h
            if kind == "unsub":
                assert "list-unsubscribe" in h and "list-unsubscribe-post" in h, h
            for line in lines:
                assert len(line) <= 78, line
            # What the recipient reads is intact.
            msg = parse_message(data)
            if kind == "rich":
                assert str(msg["Subject"]) == j["subject"]
                att = [p for p in msg.iter_attachments()]
                assert att and att[0].get_content() == PDF
            if kind == "long":
                assert str(msg["Subject"]) == LONG_SUBJECT
                assert all(len(x) <= 998 for x in data.split(b"\r\n"))
            if kind == "plain":
                assert b"\r\n..starts with dots\r\n" in data and b"\r\n.\r\n" in data
        assert not any(k.pem.splitlines()[1] in w.log_text() for k in keys.values())

        # Any changed byte in what was signed breaks the signature.
        rng = random.Random(8463)
        for tenant in keys:
            data = got[tenant + "-rich"]
            head, body = data.split(b"\r\n\r\n", 1)
            start = len(head) + 4
            spots = [i for i in range(start, len(data)) if chr(data[i]).isalnum()]
            for i in rng.sample(spots, 12):
                bad = bytearray(data)
                bad[i] ^= 0x01
                assert not verifies(bytes(bad), dns), "body byte %d changed, still verifies" % i
            for field in (b"Subject:", b"From:", b"To:", b"Date:", b"Message-ID:"):
                pos = data.index(b"\r\n" + field) + len(field) + 4
                bad = bytearray(data)
                bad[pos] ^= 0x01
                assert not verifies(bytes(bad), dns), "%s changed, still verifies" % field
            # A second From on top is refused thanks to over-signing; an
            # unsigned header (as relays add) is fine.
            sig_end = data.index(b"\r\nFrom:") + 2
            forged = data[:sig_end] + b"From: ceo@" + domains[tenant].encode() + b"\r\n" + data[sig_end:]
            assert not verifies(forged, dns)
            assert verifies(b"Received: from relay.example by mx.example\r\n" + data, dns)
            # The published key is the one that matters.
            other = Dns()
            other.publish("s2024", domains[tenant], Key("rsa-pkcs8" if "rsa" in tenant else "ed25519").txt)
            assert not verifies(data, other)


def test_bad_key_fails_only_its_tenant():
    dns = Dns()
    good = Key("ed25519")
    garbage = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5IGF0IGFsbA==\n-----END PRIVATE KEY-----\n"
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        PEM, serialization.PrivateFormat.PKCS8, NOENC).decode()
    with RedisServer() as r, SmtpServer() as smtp, MailgunFake() as mg, \
            worker(r, smtp, "--tenant-cache-ms", "300") as w:
        dkim_tenant(r, dns, "good", good)
        set_tenant(r, "broken", from_email="a@broken.example", dkim_domain="broken.example",
                   dkim_selector="s1", dkim_private_key=garbage)
        set_tenant(r, "eckey", from_email="a@eckey.example", dkim_domain="eckey.example",
                   dkim_selector="s1", dkim_private_key=ec_pem)
        set_tenant(r, "nodkim", from_email="a@nodkim.example")
        set_tenant(r, "mg", gateway="mailgun", mailgun_domain=mg.domain, mailgun_api_key=mg.api_key,
                   mailgun_base_url=mg.base_url, dkim_domain="mg.example", dkim_selector="s1",
                   dkim_private_key=good.pem)

        def job(jid, tenant):
            return {"v": 1, "id": jid, "tenant": tenant, "to": ["%s@dest.example" % jid],
                    "subject": "s", "text": "t"}
        for jid, tenant in (("broken-1", "broken"), ("broken-2", "broken"), ("ec-1", "eckey"),
                            ("good-1", "good"), ("nodkim-1", "nodkim"), ("mg-1", "mg")):
            push_job(r, job(jid, tenant))

        for jid in ("broken-1", "broken-2"):
            st = wait_status(r, jid)
            assert st["state"] == "failed" and st["error"] == "policy", st
            assert "dkim_private_key" in st["detail"] and "PEM" in st["detail"], st["detail"]
        st = wait_status(r, "ec-1")
        assert st["state"] == "failed", st
        assert "dkim_private_key" in st["detail"] and "EC" in st["detail"] \
            and "Ed25519" in st["detail"], st["detail"]
        for jid in ("good-1", "nodkim-1", "mg-1"):
            assert wait_status(r, jid)["state"] == "sent", jid

        got = by_job(smtp.wait_messages(2))
        assert sorted(got) == ["good-1", "nodkim-1"], sorted(got)
        assert verifies(got["good-1"], dns)
        assert not got["nodkim-1"].startswith(b"DKIM-Signature")
        assert b"\r\nDKIM-Signature:" not in got["nodkim-1"].split(b"\r\n\r\n")[0]
        # Mailgun signs with the keys set up for mailgun_domain; relayq does not.
        (send,) = mg.sends()
        mime = send["files"]["message"][0][2]
        assert b"DKIM-Signature" not in mime.split(b"\r\n\r\n")[0], mime[:500]

        # A fixed key is picked up once the tenant settings change.
        fixed = Key("rsa-pkcs8")
        set_tenant(r, "broken", dkim_private_key=fixed.pem)
        dns.publish("s1", "broken.example", fixed.txt)
        n = [0]

        def sent_after_fix():
            n[0] += 1
            jid = "broken-fix-%d" % n[0]
            push_job(r, job(jid, "broken"))
            st = wait_status(r, jid)
            return st if st["state"] == "sent" else None
        wait_for(sent_after_fix, timeout=15, interval=0.1, what="the fixed key to be used")
        data = by_job(smtp.wait_messages(3))["broken-fix-%d" % n[0]]
        assert verifies(data, dns)
        assert "a=rsa-sha256" in sig_header(data)[0]

        # The key never shows up in a status hash or the log.
        secrets_ = [good.pem.splitlines()[1], fixed.pem.splitlines()[1], "bm90IGEga2V5",
                    ec_pem.splitlines()[1]]
        log = w.log_text()
        for s in secrets_:
            assert s not in log
            for jid in ("broken-1", "ec-1", "good-1"):
                assert s not in " ".join(status(r, jid).values())


if __name__ == "__main__":
    harness.main(globals())
