"""Routing end to end through the worker: tenant gateways (platform, tenant
SMTP in each security mode, named routes, Mailgun), TLS trust per tenant,
login failures, the saas/onprem policy, the sender identity rule
(domain_verified), signatures and logo, sealed secrets (and that they never
show in logs, status hashes or events), RELAYQ_REQUIRE_ENCRYPTED, the
per-server connection cap, and tenant settings picked up while running.

Real redis-server, real aiosmtpd (plain, STARTTLS and implicit TLS with a
self-signed certificate, AUTH), the Mailgun fake, and relayq-worker.
Tenant hashes are written directly (as a platform's backend would), so the
worker's own parsing is what is tested, not `relayq tenant set`.
"""

import base64
import json
import logging
import secrets
import time

import harness
from harness import (Events, MailgunFake, RedisServer, SmtpServer, Worker, parse_message, push_job, wait_for,
                     wait_status)

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# Sessions that fail the TLS handshake on purpose make aiosmtpd log a
# traceback each; they are expected here.
logging.getLogger("mail.log").setLevel(logging.CRITICAL)

PLATFORM_FROM = "no-reply@platform.example"
USER = "tenant-user"
PASSWORD = "Pw-" + secrets.token_hex(8)       # unique, so a leak is unambiguous
API_KEY = "key-" + secrets.token_hex(12)
KEY = secrets.token_bytes(32)
KEY_B64 = base64.b64encode(KEY).decode()
FAST = ["--retry-base-ms", "200", "--retry-max-ms", "1000", "--platform-from", PLATFORM_FROM]


def seal(plaintext, key=KEY):
    """enc:v1: + base64(12-byte nonce | ciphertext | 16-byte tag), AES-256-GCM, no AAD."""
    nonce = secrets.token_bytes(12)
    return "enc:v1:" + base64.b64encode(nonce + AESGCM(key).encrypt(nonce, plaintext.encode(), None)).decode()


set_tenant = harness.set_tenant


def smtp_tenant(r, tenant, server, user=USER, password=PASSWORD, route=None, **extra):
    harness.smtp_tenant(r, tenant, server, user, password, route=route, **extra)


def job(jid, tenant, to=("rcpt@dest.example",), **kw):
    j = {"v": 1, "id": jid, "tenant": tenant, "to": list(to), "subject": "subject of %s" % jid,
         "text": "text of %s" % jid}
    j.update(kw)
    return j


def secret_forms(*values):
    """Each secret as written and in the encodings a transport would put on
    the wire (AUTH PLAIN/LOGIN base64, HTTP Basic), so a dialogue dump in a
    log counts as a leak too."""
    out = set()
    for v in values:
        out.add(v)
        out.add(base64.b64encode(v.encode()).decode())
        out.add(base64.b64encode(("\0%s\0%s" % (USER, v)).encode()).decode())
        out.add(base64.b64encode(("api:%s" % v).encode()).decode())
    return out


def assert_no_secret(r, where, texts, values):
    forms = secret_forms(*values)
    for name, text in texts:
        for f in forms:
            assert f not in text, "a secret appeared in %s %s" % (where, name)


def all_statuses(r):
    out = []
    for key in r.client.scan_iter(match=r.key("status", "*"), count=1000):
        h = r.client.hgetall(key)
        out.append((key.decode(), " ".join(k.decode("utf-8", "replace") + "=" + v.decode("utf-8", "replace")
                                           for k, v in h.items())))
    return out


# ---- tenant SMTP in each security mode, and the other gateways ------------------------

def test_each_security_mode_and_gateway_delivers():
    """saas mode: STARTTLS+AUTH, implicit TLS+AUTH, plain+AUTH, each verified
    against the fixture's certificate through --ca-file; and the platform
    gateway for a tenant with no hash."""
    with RedisServer() as r, \
            SmtpServer(security="starttls", auth=(USER, PASSWORD), require_auth=True) as st, \
            SmtpServer(security="tls", auth=(USER, PASSWORD), require_auth=True) as tl, \
            SmtpServer(security="none", auth=(USER, PASSWORD), require_auth=True) as pl, \
            SmtpServer() as platform:
        smtp_tenant(r, "t-starttls", st, from_email="billing@starttls.example")
        smtp_tenant(r, "t-tls", tl, from_email="billing@tls.example")
        smtp_tenant(r, "t-plain", pl, from_email="billing@plain.example")
        with Worker(r, platform_smtp=platform, args=FAST + ["--ca-file", st.cafile]):
            for t in ("t-starttls", "t-tls", "t-plain", "t-none"):
                push_job(r, job("j-" + t, t))
            for t, server, tls in (("t-starttls", st, True), ("t-tls", tl, True), ("t-plain", pl, False)):
                s = wait_status(r, "j-" + t)
                assert s["state"] == "sent" and s["route"] == "smtp" and s["attempts"] == "1", (t, s)
                (m,) = server.messages()
                assert m["tls"] is tls and m["auth_user"] == USER, (t, m)
                assert m["rcpt_tos"] == ["rcpt@dest.example"]
                assert m["mail_from"] == "billing@%s.example" % t[2:], m["mail_from"]
                msg = parse_message(m["data"])
                assert str(msg["Subject"]) == "subject of j-" + t
                # Not the platform: the tenant's own From, no DMARC rewrite.
                assert msg["From"].addresses[0].addr_spec == m["mail_from"]
            s = wait_status(r, "j-t-none")
            assert s["state"] == "sent" and s["route"] == "platform", s
            (m,) = platform.messages()
            assert m["mail_from"] == PLATFORM_FROM


def test_tls_verify_is_per_tenant():
    """No --ca-file: smtp_tls_verify=1 (the default) against the self-signed
    certificate fails with error tls, for STARTTLS and implicit TLS alike;
    smtp_tls_verify=0 trusts it for that tenant alone, on the same servers."""
    with RedisServer() as r, \
            SmtpServer(security="starttls", auth=(USER, PASSWORD), require_auth=True) as st, \
            SmtpServer(security="tls", auth=(USER, PASSWORD), require_auth=True) as tl:
        smtp_tenant(r, "trusting-st", st, smtp_tls_verify=0)
        smtp_tenant(r, "strict-st", st)  # default verify
        smtp_tenant(r, "trusting-tl", tl, smtp_tls_verify=0)
        smtp_tenant(r, "strict-tl", tl, smtp_tls_verify=1)
        with Worker(r, args=FAST):
            # Interleaved, so a connection the trusting tenant opened cannot
            # be handed to the strict one.
            for t in ("trusting-st", "strict-st", "trusting-tl", "strict-tl"):
                push_job(r, job("j-" + t, t))
            for t in ("trusting-st", "trusting-tl"):
                s = wait_status(r, "j-" + t)
                assert s["state"] == "sent", (t, s)
            for t in ("strict-st", "strict-tl"):
                s = wait_status(r, "j-" + t)
                assert s["state"] == "failed" and s["error"] == "tls", (t, s)
                assert s["attempts"] == "1", s  # permanent: not retried
                assert "certificate" in s["detail"].lower(), s["detail"]
            assert len(st.messages()) == 1 and len(tl.messages()) == 1
            # The strict tenants never logged in: their TLS session never began.
            assert all(ok for _, _, ok in st.auth_attempts + tl.auth_attempts)


def test_wrong_password_fails_with_auth():
    with RedisServer() as r, \
            SmtpServer(security="starttls", auth=(USER, PASSWORD), require_auth=True) as st:
        wrong = "Wrong-" + secrets.token_hex(6)
        smtp_tenant(r, "badpass", st, password=wrong, smtp_tls_verify=0)
        with Worker(r, args=FAST + ["--log-level", "debug"]) as w:
            push_job(r, job("bad", "badpass"))
            s = wait_status(r, "bad")
            assert s["state"] == "failed" and s["error"] == "auth", s
            assert s["attempts"] == "1", s
            assert s["detail"], s
            assert st.messages_count() == 0
            assert st.auth_attempts and not any(ok for _, _, ok in st.auth_attempts)
            assert_no_secret(r, "status", [("bad", " ".join(s.values()))], [wrong])
            assert_no_secret(r, "log", [("worker", w.log_text())], [wrong])


# ---- policy -----------------------------------------------------------------------------

def test_saas_refuses_port_25_and_no_auth_onprem_allows():
    with RedisServer() as r, SmtpServer() as relay:  # plain, no AUTH offered
        set_tenant(r, "port25", gateway="smtp", smtp_host="127.0.0.1", smtp_port=25,
                   smtp_security="none", smtp_user=USER, smtp_password=PASSWORD)
        smtp_tenant(r, "noauth", relay, user=None)
        with Worker(r, args=FAST):
            push_job(r, job("p25", "port25"))
            push_job(r, job("na", "noauth"))
            s = wait_status(r, "p25")
            assert s["state"] == "failed" and s["error"] == "policy", s
            assert "port 25" in s["detail"] and "onprem" in s["detail"], s["detail"]
            s = wait_status(r, "na")
            assert s["state"] == "failed" and s["error"] == "policy", s
            assert "AUTH" in s["detail"] and "onprem" in s["detail"], s["detail"]
        assert relay.connections() == 0  # refused before connecting
        with Worker(r, args=FAST + ["--mode", "onprem"]):
            push_job(r, job("na2", "noauth"))
            s = wait_status(r, "na2")
            assert s["state"] == "sent" and s["route"] == "smtp", s
            (m,) = relay.messages()
            assert m["auth_user"] is None and m["rcpt_tos"] == ["rcpt@dest.example"]


def test_domain_verified_from_and_reply_to_rule():
    """Platform gateway: an unverified tenant's mail goes out From the
    platform sender with the tenant's name and Reply-To the tenant; a
    verified one keeps its own From; the tenant's own server is never
    rewritten."""
    with RedisServer() as r, SmtpServer() as platform, \
            SmtpServer(security="none", auth=(USER, PASSWORD)) as own:
        set_tenant(r, "unverified", from_email="billing@acme.example", from_name="Acme Billing")
        set_tenant(r, "unverified-rt", from_email="billing@acme.example", from_name="Acme Billing",
                   reply_to="help@acme.example")
        set_tenant(r, "verified", from_email="billing@acme.example", from_name="Acme Billing",
                   domain_verified=1, reply_to="help@acme.example")
        smtp_tenant(r, "own", own, from_email="billing@acme.example", from_name="Acme Billing")
        with Worker(r, platform_smtp=platform, args=FAST):
            for t in ("unverified", "unverified-rt", "verified", "own"):
                push_job(r, job("d-" + t, t))
            # A job's own from on an unverified tenant is rewritten too.
            push_job(r, job("d-jobfrom", "unverified", **{"from": "ceo@other.example",
                                                          "from_name": "The CEO"}))
            # Verification covers the tenant's domain (and its subdomains),
            # not any domain a job names.
            push_job(r, job("d-verified-sub", "verified", **{"from": "news@mail.acme.example"}))
            push_job(r, job("d-verified-other", "verified", **{"from": "ceo@bank.example"}))
            for jid in ("d-unverified", "d-unverified-rt", "d-verified", "d-own", "d-jobfrom",
                        "d-verified-sub", "d-verified-other"):
                assert wait_status(r, jid)["state"] == "sent", jid
            by_subject = {}
            for m in platform.messages() + own.messages():
                by_subject[str(parse_message(m["data"])["Subject"])] = m

            def headers(jid):
                m = by_subject["subject of " + jid]
                msg = parse_message(m["data"])
                rt = msg["Reply-To"]
                return (m["mail_from"], msg["From"].addresses[0].display_name,
                        msg["From"].addresses[0].addr_spec,
                        rt.addresses[0].addr_spec if rt is not None else None)

            assert headers("d-unverified") == (PLATFORM_FROM, "Acme Billing", PLATFORM_FROM,
                                               "billing@acme.example"), headers("d-unverified")
            assert headers("d-unverified-rt") == (PLATFORM_FROM, "Acme Billing", PLATFORM_FROM,
                                                  "help@acme.example"), headers("d-unverified-rt")
            assert headers("d-verified") == ("billing@acme.example", "Acme Billing",
                                              "billing@acme.example", "help@acme.example"), \
                headers("d-verified")
            assert headers("d-jobfrom") == (PLATFORM_FROM, "The CEO", PLATFORM_FROM,
                                            "ceo@other.example"), headers("d-jobfrom")
            assert headers("d-verified-sub") == ("news@mail.acme.example", "Acme Billing",
                                                  "news@mail.acme.example", "help@acme.example"), \
                headers("d-verified-sub")
            assert headers("d-verified-other") == (PLATFORM_FROM, "Acme Billing", PLATFORM_FROM,
                                                   "help@acme.example"), headers("d-verified-other")
            assert headers("d-own") == ("billing@acme.example", "Acme Billing",
                                        "billing@acme.example", None), headers("d-own")
            assert wait_status(r, "d-own")["route"] == "smtp"


# ---- named routes ---------------------------------------------------------------------------

def test_named_route_and_unknown_route():
    with RedisServer() as r, \
            SmtpServer(security="none", auth=(USER, PASSWORD), require_auth=True) as main_srv, \
            SmtpServer(security="starttls", auth=("route-user", "route-pass"),
                       require_auth=True) as billing:
        smtp_tenant(r, "acme", main_srv, routes="billing,marketing")
        smtp_tenant(r, "acme", billing, route="billing", user="route-user",
                    password="route-pass", smtp_tls_verify=0)
        smtp_tenant(r, "acme", main_srv, route="marketing")
        with Worker(r, args=FAST):
            push_job(r, job("default-route", "acme"))
            push_job(r, job("billing-route", "acme", route="billing"))
            push_job(r, job("unknown-route", "acme", route="nosuchroute"))
            s = wait_status(r, "billing-route")
            assert s["state"] == "sent" and s["route"] == "billing", s
            (m,) = billing.messages()
            assert m["tls"] and m["auth_user"] == "route-user"
            assert str(parse_message(m["data"])["Subject"]) == "subject of billing-route"
            s = wait_status(r, "default-route")
            assert s["state"] == "sent" and s["route"] == "smtp", s
            (m,) = main_srv.messages()
            assert str(parse_message(m["data"])["Subject"]) == "subject of default-route"
            s = wait_status(r, "unknown-route")
            assert s["state"] == "failed" and s["error"] == "policy", s
            assert "nosuchroute" in s["detail"], s["detail"]
            # A tenant without routes at all, asked for one.
            push_job(r, job("no-routes", "plain-tenant", route="billing"))
            s = wait_status(r, "no-routes")
            assert s["state"] == "failed" and s["error"] == "policy" and "billing" in s["detail"], s


def test_broken_route_hash_fails_the_tenant_promptly():
    """A route hash of the wrong type, or one `routes` names that does not
    exist, fails the jobs that name that route with error policy naming the
    route instead of leaving them waiting; the tenant's other jobs and other
    tenants go on, and the fix is picked up."""
    with RedisServer() as r, SmtpServer(security="none", auth=(USER, PASSWORD)) as srv:
        smtp_tenant(r, "wrongtype", srv, routes="alt")
        r.client.set(r.key("tenant", "wrongtype", "route", "alt"), "not a hash")
        smtp_tenant(r, "missing", srv, routes="gone")
        smtp_tenant(r, "fine", srv)
        with Worker(r, args=FAST):
            push_job(r, job("wt", "wrongtype", route="alt"))
            push_job(r, job("ms", "missing", route="gone"))
            push_job(r, job("ok", "fine"))
            push_job(r, job("wt-default", "wrongtype"))
            for jid, name in (("wt", "alt"), ("ms", "gone")):
                s = wait_status(r, jid)
                assert s["state"] == "failed" and s["error"] == "policy", s
                assert "'%s'" % name in s["detail"], s["detail"]
            assert wait_status(r, "ok")["state"] == "sent"
            assert wait_status(r, "wt-default")["state"] == "sent", "a bad route stopped the tenant's other jobs"
            r.client.delete(r.key("tenant", "wrongtype", "route", "alt"))
            smtp_tenant(r, "wrongtype", srv, route="alt")
            t0 = time.monotonic()
            while True:  # bounded by the 5 s assertion below
                jid = "wt-%d" % int((time.monotonic() - t0) * 1000)
                push_job(r, job(jid, "wrongtype", route="alt"))
                if wait_status(r, jid)["state"] == "sent":
                    break
                assert time.monotonic() - t0 < 5.0, "the fixed route was not picked up in 5 s"


# ---- signature and logo ------------------------------------------------------------------------

def test_signature_and_logo():
    with RedisServer() as r, SmtpServer() as platform:
        set_tenant(r, "sig", from_email="x@platform.example",
                   signature_text="Acme S.p.A. - via Roma 1", signature_html="<p class=sig>Acme S.p.A.</p>",
                   logo_url="https://cdn.acme.example/logo.png")
        with Worker(r, platform_smtp=platform, args=FAST):
            push_job(r, job("sig1", "sig", text="Dear customer,\nyour invoice.",
                            html="<html><body><p>Dear customer, your invoice.</p></body></html>"))
            push_job(r, job("sig2", "sig", text="only text"))
            assert wait_status(r, "sig1")["state"] == "sent"
            assert wait_status(r, "sig2")["state"] == "sent"
            msgs = {str(parse_message(m["data"])["Subject"]): parse_message(m["data"])
                    for m in platform.messages()}
            msg = msgs["subject of sig1"]
            # get_content() keeps the wire's CRLF; compare lines.
            text = msg.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")
            assert text.index("your invoice.") < text.index("\n-- \n") < text.index("Acme S.p.A. - via Roma 1"), text
            html = msg.get_body(preferencelist=("html",)).get_content()
            logo = html.find("https://cdn.acme.example/logo.png")
            assert logo >= 0 and "<img" in html[:logo], html
            assert logo < html.index("Dear customer") < html.index("<p class=sig>Acme S.p.A.</p>"), html
            text2 = msgs["subject of sig2"].get_body(preferencelist=("plain",)).get_content()
            assert text2.rstrip().endswith("Acme S.p.A. - via Roma 1"), text2


# ---- secrets ------------------------------------------------------------------------------------

def test_sealed_secrets_deliver_and_never_leak():
    with RedisServer() as r, \
            SmtpServer(security="starttls", auth=(USER, PASSWORD), require_auth=True) as st, \
            SmtpServer(security="tls", auth=("route-user", PASSWORD + "r"), require_auth=True) as rt, \
            MailgunFake(api_key=API_KEY) as mg:
        ev = Events(r)
        smtp_tenant(r, "sealed", st, password=seal(PASSWORD), smtp_tls_verify=0, routes="alt")
        smtp_tenant(r, "sealed", rt, route="alt", user="route-user", password=seal(PASSWORD + "r"),
                    smtp_tls_verify=0)
        set_tenant(r, "sealed-mg", gateway="mailgun", mailgun_domain=mg.domain,
                   mailgun_api_key=seal(API_KEY), mailgun_base_url=mg.base_url)
        # A wrong password as well: a failure's detail must not carry it either.
        smtp_tenant(r, "sealed-bad", st, password=seal(PASSWORD + "x"), smtp_tls_verify=0)
        with Worker(r, args=FAST + ["--log-level", "debug"], env={"RELAYQ_SECRET_KEY": KEY_B64}) as w:
            push_job(r, job("s-smtp", "sealed"))
            push_job(r, job("s-route", "sealed", route="alt"))
            push_job(r, job("s-mg", "sealed-mg"))
            push_job(r, job("s-bad", "sealed-bad"))
            for jid in ("s-smtp", "s-route", "s-mg"):
                s = wait_status(r, jid)
                assert s["state"] == "sent", (jid, s)
            s = wait_status(r, "s-bad")
            assert s["state"] == "failed" and s["error"] == "auth", s
            assert st.messages_count() == 1 and rt.messages_count() == 1
            (req,) = mg.sends()
            assert req["auth_ok"]
            wait_for(lambda: sum(1 for e in ev.for_job("s-bad") if e["state"] == "failed") or None,
                     what="the failed event of s-bad")
            log = w.log_text()
        assert " debug " in log, "the worker logged nothing at debug level:\n" + log[-2000:]
        values = [PASSWORD, PASSWORD + "r", PASSWORD + "x", API_KEY]
        assert_no_secret(r, "log", [("worker", log)], values)
        assert_no_secret(r, "status", all_statuses(r), values)
        assert_no_secret(r, "event", [("P:events", b"\n".join(ev.drain()).decode("utf-8", "replace"))],
                         values)
        ev.close()


def test_worker_without_key_fails_sealed_tenant_only():
    with RedisServer() as r, \
            SmtpServer(security="none", auth=(USER, PASSWORD), require_auth=True) as srv:
        smtp_tenant(r, "sealed", srv, password=seal(PASSWORD))
        smtp_tenant(r, "plain", srv)
        with Worker(r, args=FAST + ["--log-level", "debug"]) as w:
            push_job(r, job("k-sealed", "sealed"))
            push_job(r, job("k-plain", "plain"))
            s = wait_status(r, "k-sealed")
            assert s["state"] == "failed" and s["error"] == "policy", s
            assert "RELAYQ_SECRET_KEY" in s["detail"] and "smtp_password" in s["detail"], s["detail"]
            s = wait_status(r, "k-plain")
            assert s["state"] == "sent", s
            assert w.running()
            (m,) = srv.messages()
            assert str(parse_message(m["data"])["Subject"]) == "subject of k-plain"
            assert_no_secret(r, "log", [("worker", w.log_text())], [PASSWORD])


def test_require_encrypted_refuses_plaintext():
    with RedisServer() as r, \
            SmtpServer(security="none", auth=(USER, PASSWORD), require_auth=True) as srv, \
            MailgunFake(api_key=API_KEY) as mg:
        smtp_tenant(r, "plaintext", srv)
        set_tenant(r, "plaintext-mg", gateway="mailgun", mailgun_domain=mg.domain,
                   mailgun_api_key=API_KEY, mailgun_base_url=mg.base_url)
        smtp_tenant(r, "sealed", srv, password=seal(PASSWORD))
        env = {"RELAYQ_SECRET_KEY": KEY_B64, "RELAYQ_REQUIRE_ENCRYPTED": "1"}
        with Worker(r, args=FAST + ["--log-level", "debug"], env=env) as w:
            push_job(r, job("re-plain", "plaintext"))
            push_job(r, job("re-mg", "plaintext-mg"))
            push_job(r, job("re-sealed", "sealed"))
            for jid, field in (("re-plain", "smtp_password"), ("re-mg", "mailgun_api_key")):
                s = wait_status(r, jid)
                assert s["state"] == "failed" and s["error"] == "policy", s
                assert field in s["detail"], s["detail"]
                assert_no_secret(r, "status", [(jid, " ".join(s.values()))], [PASSWORD, API_KEY])
            s = wait_status(r, "re-sealed")
            assert s["state"] == "sent", s
            assert srv.messages_count() == 1 and mg.sends() == []
            assert_no_secret(r, "log", [("worker", w.log_text())], [PASSWORD, API_KEY])


# ---- connection cap -----------------------------------------------------------------------------

def test_max_connections_caps_sessions_per_tenant_server():
    """smtp_max_connections=1: never more than one session to that server,
    however many jobs are in flight; the default (2) and 3 open more."""
    with RedisServer() as r, \
            SmtpServer(security="none", auth=(USER, PASSWORD), delay=0.3) as capped, \
            SmtpServer(security="none", auth=(USER, PASSWORD), delay=0.3) as wide:
        smtp_tenant(r, "capped", capped, smtp_max_connections=1)
        smtp_tenant(r, "wide", wide, smtp_max_connections=3)
        with Worker(r, args=FAST):
            for i in range(6):
                push_job(r, job("cap-%d" % i, "capped"))
                push_job(r, job("wide-%d" % i, "wide"))
            for i in range(6):
                assert wait_status(r, "cap-%d" % i, timeout=30)["state"] == "sent"
                assert wait_status(r, "wide-%d" % i, timeout=30)["state"] == "sent"
        assert capped.messages_count() == 6 and wide.messages_count() == 6
        assert capped.peak_connections() == 1, capped.peak_connections()
        # The control: without the cap the same load opens several sessions,
        # so the assertion above is not true by accident.
        assert 2 <= wide.peak_connections() <= 3, wide.peak_connections()


# ---- Mailgun --------------------------------------------------------------------------------------

def mailgun_tenant(r, tenant, mg, key=API_KEY, **extra):
    set_tenant(r, tenant, gateway="mailgun", mailgun_domain=mg.domain, mailgun_api_key=key,
               mailgun_base_url=mg.base_url, **extra)


def test_mailgun_delivers_mime_with_every_recipient():
    with RedisServer() as r, MailgunFake(api_key=API_KEY) as mg:
        mailgun_tenant(r, "mg", mg, from_email="news@mg.example.com", from_name="MG News")
        with Worker(r, args=FAST):
            push_job(r, job("mg1", "mg", to=["Ann <ann@dest.example>", "bob@dest.example"],
                            cc=["carol@dest.example"], bcc=["dave@dest.example"],
                            subject="Mailgun subject 42"))
            s = wait_status(r, "mg1")
        assert s["state"] == "sent" and s["route"] == "mailgun" and s["attempts"] == "1", s
        (req,) = mg.sends()
        assert req["path"] == "/v3/%s/messages.mime" % mg.domain, req["path"]
        assert req["auth_ok"] and req["status"] == 200
        assert s["provider_id"] == req["provider_id"], (s, req["provider_id"])
        to = harness.split_addresses(req["fields"].get("to"))
        assert sorted(to) == ["ann@dest.example", "bob@dest.example", "carol@dest.example",
                              "dave@dest.example"], to
        (filename, _ctype, data) = req["files"]["message"][0]
        assert b"Mailgun subject 42" in data
        msg = parse_message(data)
        assert str(msg["Subject"]) == "Mailgun subject 42"
        assert msg["From"].addresses[0].addr_spec == "news@mg.example.com"
        assert msg["Bcc"] is None and b"dave@dest.example" not in data


def test_mailgun_429_retry_after_then_200():
    def script(n):
        return (429, {"Retry-After": "1"}, {"message": "Too many requests"}) if n == 1 else None
    with RedisServer() as r, MailgunFake(api_key=API_KEY, script=script) as mg:
        mailgun_tenant(r, "mg", mg)
        with Worker(r, args=FAST):
            push_job(r, job("mg429", "mg"))
            s = wait_status(r, "mg429", timeout=20)
        assert s["state"] == "sent" and s["attempts"] == "2", s
        first, second = mg.sends()
        assert first["status"] == 429 and second["status"] == 200
        # The server's hint wins over the 200 ms backoff base.
        assert second["received_at"] - first["received_at"] >= 0.9, \
            second["received_at"] - first["received_at"]
        assert s["provider_id"] == second["provider_id"]


def test_mailgun_wrong_key_fails_with_auth():
    with RedisServer() as r, MailgunFake(api_key=API_KEY) as mg:
        wrong = "key-wrong-" + secrets.token_hex(6)
        mailgun_tenant(r, "mg", mg, key=wrong)
        with Worker(r, args=FAST + ["--log-level", "debug"]) as w:
            push_job(r, job("mg401", "mg"))
            s = wait_status(r, "mg401")
            assert s["state"] == "failed" and s["error"] == "auth" and s["attempts"] == "1", s
            assert s.get("last_code") == "401", s
            assert len(mg.sends()) == 1
            assert_no_secret(r, "log", [("worker", w.log_text())], [wrong])
            assert_no_secret(r, "status", [("mg401", " ".join(s.values()))], [wrong])


# ---- settings changes ------------------------------------------------------------------------------

def test_settings_change_picked_up_within_5_s():
    """from_name and then the gateway change while the worker runs; each is
    in effect within 5 s (default --tenant-cache-ms 3000)."""
    with RedisServer() as r, SmtpServer() as platform, \
            SmtpServer(security="none", auth=(USER, PASSWORD)) as own:
        set_tenant(r, "chg", from_email="x@platform.example", from_name="Old Name")
        with Worker(r, platform_smtp=platform, args=FAST):
            push_job(r, job("chg-0", "chg"))
            assert wait_status(r, "chg-0")["state"] == "sent"
            (m,) = platform.messages()
            assert parse_message(m["data"])["From"].addresses[0].display_name == "Old Name"

            def sends_until(check, prefix):
                """Sends jobs one after another until check(status) holds;
                returns the seconds since the first."""
                t0 = time.monotonic()
                i = 0
                while True:
                    jid = "%s-%d" % (prefix, i)
                    push_job(r, job(jid, "chg"))
                    s = wait_status(r, jid)
                    assert s["state"] == "sent", s
                    if check(s):
                        return time.monotonic() - t0
                    assert time.monotonic() - t0 < 5.0, "%s: the change was not picked up in 5 s" % prefix
                    i += 1

            set_tenant(r, "chg", from_name="New Name")

            def new_name(s):
                for m in platform.messages():
                    msg = parse_message(m["data"])
                    if str(msg["Message-ID"]) == s["message_id"]:
                        return msg["From"].addresses[0].display_name == "New Name"
                raise AssertionError("message %s not on the platform server" % s["message_id"])
            assert sends_until(new_name, "name") < 5.0

            smtp_tenant(r, "chg", own, smtp_security="none")
            assert sends_until(lambda s: s["route"] == "smtp", "gw") < 5.0
            assert own.messages_count() >= 1


if __name__ == "__main__":
    harness.main(globals())
