"""End-to-end tests of `relayq tenant set|get|verify|test|del` against a
private redis-server, the SMTP fixture (plain, STARTTLS, implicit TLS, with
AUTH) and the Mailgun fake. See docs/tenants.md for what is checked.
"""

import base64
import json
import logging
import secrets

import harness
import sealing
from harness import MailgunFake, RedisServer, SmtpServer, free_port, parse_message, run_relayq

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# The probes that fail a TLS handshake on purpose make aiosmtpd log a
# traceback per session; they are expected here, so keep them off stderr.
logging.getLogger("mail.log").setLevel(logging.CRITICAL)

KEY = secrets.token_bytes(32)
KEY_B64 = base64.b64encode(KEY).decode()
ENV = {"RELAYQ_SECRET_KEY": KEY_B64}


def tenant(r, name, route=None):
    """The stored hash as {str: str}."""
    key = r.key("tenant", name) if route is None else r.key("tenant", name, "route", route)
    return {k.decode(): v.decode() for k, v in r.client.hgetall(key).items()}


def open_sealed(value, field, place="tenant:acme"):
    """`tenant set` stores enc:v2: bound to the hash and field."""
    assert value.startswith("enc:v2:"), value
    return sealing.open_sealed(KEY, value, place, field)


def smtp_fields(s, user=None, password=None, verify=None, **extra):
    fields = {"gateway": "smtp", "smtp_host": "127.0.0.1", "smtp_port": s.port,
              "smtp_security": s.security}
    if user is not None:
        fields["smtp_user"] = user
        fields["smtp_password"] = password
    if verify is not None:
        fields["smtp_tls_verify"] = verify
    fields.update(extra)
    return ["%s=%s" % kv for kv in fields.items()]


def check(p, code, *, out=(), err=(), no_out=()):
    """Asserts the exit code and that each string is in stdout/stderr."""
    where = "exit %s\nstdout:\n%s\nstderr:\n%s" % (p.returncode, p.stdout, p.stderr)
    assert p.returncode == code, "expected exit %d; %s" % (code, where)
    for s in out:
        assert s in p.stdout, "%r not in stdout; %s" % (s, where)
    for s in err:
        assert s in p.stderr, "%r not in stderr; %s" % (s, where)
    for s in no_out:
        assert s not in p.stdout and s not in p.stderr, "%r was printed; %s" % (s, where)


# ---- set: validation --------------------------------------------------------------

def test_set_reports_each_bad_field_on_its_own_line():
    with RedisServer() as r:
        p = run_relayq(r, "tenant", "set", "acme", "smtp_prot=587", "smtp_port=99999",
                       "smtp_security=ssl", "gateway=smtp", "smtp_host=smtp.example.com", env=ENV)
        check(p, 2)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 3, lines
        assert "unknown tenant field 'smtp_prot'" in lines[0] and "smtp_port" in lines[0], lines
        assert "smtp_port must be a whole number from 1 to 65535" in lines[1], lines
        assert "smtp_security must be starttls, tls or none" in lines[2], lines
        assert all(l.startswith("relayq: ") for l in lines), lines
        assert r.client.keys("*") == []


def test_set_refuses_an_inconsistent_tenant_and_unknown_preset():
    with RedisServer() as r:
        p = run_relayq(r, "tenant", "set", "acme", "gateway=smtp", "--no-verify", env=ENV)
        check(p, 2, err=["gateway smtp needs smtp_host"])
        p = run_relayq(r, "tenant", "set", "acme", "smtp_preset=gmial", "--no-verify", env=ENV)
        check(p, 2, err=["smtp_preset 'gmial' is not a known provider (did you mean gmail?)"])
        p = run_relayq(r, "tenant", "set", "acme", "from_email", env=ENV)
        check(p, 2, err=["argument 2 is not FIELD=VALUE: write from_email=VALUE"])
        assert r.client.keys("*") == []


def test_set_needs_the_key_for_secrets():
    with RedisServer() as r:
        p = run_relayq(r, "tenant", "set", "acme", "gateway=smtp", "smtp_host=smtp.example.com",
                       "smtp_user=u", "smtp_password=hunter2", "--no-verify")
        check(p, 2, err=["RELAYQ_SECRET_KEY is not set"], no_out=["hunter2"])
        assert r.client.keys("*") == []


# ---- set: sealing, defaults ----------------------------------------------------------

def test_set_no_verify_seals_secrets_and_fills_defaults():
    with RedisServer() as r:
        p = run_relayq(r, "tenant", "set", "acme", "gateway=smtp", "smtp_preset=aruba",
                       "smtp_user=info@acme.example", "smtp_password=s3cret pass",
                       "from_email=info@acme.example", "--no-verify", env=ENV)
        check(p, 0, out=["Not verified", "smtp_password", "enc:v2:"], no_out=["s3cret"])
        h = tenant(r, "acme")
        assert h["smtp_host"] == "smtps.aruba.it" and h["smtp_port"] == "465", h
        assert h["smtp_security"] == "tls" and h["smtp_preset"] == "aruba", h
        assert open_sealed(h["smtp_password"], "smtp_password") == "s3cret pass"
        # A new security without a port: the port follows it.
        p = run_relayq(r, "tenant", "set", "acme", "smtp_preset=", "smtp_host=mail.acme.example",
                       "smtp_security=starttls", "--no-verify", env=ENV)
        check(p, 0)
        h = tenant(r, "acme")
        assert h["smtp_port"] == "587" and "smtp_preset" not in h, h
        assert open_sealed(h["smtp_password"], "smtp_password") == "s3cret pass"  # untouched
        # FIELD= deletes; the Mailgun key read from stdin is sealed too.
        p = run_relayq(r, "tenant", "set", "acme", "from_email=", "mailgun_domain=mg.acme.example",
                       "--stdin", "mailgun_api_key", "--no-verify", env=ENV, input="key-abc\n")
        check(p, 0, no_out=["key-abc"])
        h = tenant(r, "acme")
        assert "from_email" not in h, h
        assert open_sealed(h["mailgun_api_key"], "mailgun_api_key") == "key-abc"


# ---- set and verify: SMTP probes ---------------------------------------------------------

def test_set_verifies_starttls_and_auth_first():
    with RedisServer() as r, SmtpServer(security="starttls", auth=("alice", "pw-1")) as s:
        p = run_relayq(r, "tenant", "set", "acme", *smtp_fields(s, "alice", "pw-1", verify=0),
                       env=ENV)
        check(p, 0, out=["DNS", "TCP connect", "banner", "220 ", "EHLO", "STARTTLS", "AUTH",
                         "235", "certificate: subject", "relayq tests", "expires",
                         "Result: ok", "Saved tenant acme"], no_out=["pw-1"])
        assert [a for a in s.auth_attempts if a[2]] != [], s.auth_attempts
        assert s.transactions() == [] and s.messages_count() == 0  # nothing sent
        h = tenant(r, "acme")
        assert open_sealed(h["smtp_password"], "smtp_password") == "pw-1"
        assert h["smtp_port"] == str(s.port) and h["smtp_tls_verify"] == "0", h


def test_wrong_password_saves_nothing():
    with RedisServer() as r, SmtpServer(security="starttls", auth=("alice", "pw-1")) as s:
        p = run_relayq(r, "tenant", "set", "acme", *smtp_fields(s, "alice", "nope", verify=0),
                       env=ENV)
        check(p, 1, out=["FAIL", "535"], err=["refused the login (535 5.7.8)",
                                              "check smtp_user and smtp_password"],
              no_out=["nope"])
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert r.client.keys("*") == []
        # An existing, working tenant is left as it was.
        check(run_relayq(r, "tenant", "set", "acme", *smtp_fields(s, "alice", "pw-1", verify=0),
                         env=ENV), 0)
        before = tenant(r, "acme")
        check(run_relayq(r, "tenant", "set", "acme", "smtp_password=wrong", env=ENV), 1,
              err=["refused the login"])
        assert tenant(r, "acme") == before


def test_self_signed_certificate_needs_trust():
    with RedisServer() as r, SmtpServer(security="starttls", auth=("alice", "pw-1")) as s:
        fields = smtp_fields(s, "alice", "pw-1", verify=1, smtp_host="localhost")
        p = run_relayq(r, "tenant", "set", "acme", *fields, env=ENV)
        check(p, 1, err=["TLS certificate failed verification", "self-signed certificate",
                         "relayq tenant trust"])
        assert r.client.keys("*") == []
        env = dict(ENV, RELAYQ_CA_FILE=s.cafile)
        p = run_relayq(r, "tenant", "set", "acme", *fields, env=env)
        check(p, 0, out=["(verified)", "Result: ok"])
        # verify: the same both ways, and --ca-file works like the variable.
        check(run_relayq(r, "tenant", "verify", "acme", env=ENV), 1, err=["self-signed"])
        check(run_relayq(r, "tenant", "verify", "acme", "--ca-file", s.cafile, env=ENV), 0,
              out=["AUTH", "235"])


def test_implicit_tls_and_security_mismatches():
    with RedisServer() as r, SmtpServer(security="tls", auth=("alice", "pw-1")) as s:
        p = run_relayq(r, "tenant", "set", "acme", *smtp_fields(s, "alice", "pw-1", verify=0),
                       "--json", env=ENV)
        check(p, 0)
        doc = json.loads(p.stdout)
        names = [st["name"] for st in doc["verify"]["stages"]]
        assert names == ["DNS", "TCP connect", "TLS", "banner", "EHLO", "AUTH"], names
        assert all(st["ok"] and st["ms"] is not None for st in doc["verify"]["stages"]), doc
        assert "self-signed" in doc["verify"]["certificate"]["verify"], doc
        assert doc["saved"]["smtp_password"].startswith("enc:v2:"), doc
        # STARTTLS spoken to an implicit-TLS port: no greeting ever comes.
        p = run_relayq(r, "tenant", "verify", "acme", "--timeout", "2", env=ENV)
        check(p, 0)
        check(run_relayq(r, "tenant", "set", "acme", "smtp_security=starttls",
                         "smtp_port=%d" % s.port, "--timeout", "2", env=ENV), 1,
              err=["did not answer in time"], out=["set smtp_security=tls"])
    with RedisServer() as r, SmtpServer(security="none", auth=("alice", "pw-1")) as s:
        # Implicit TLS spoken to a plain port, then STARTTLS to a server without it.
        fields = smtp_fields(s, "alice", "pw-1", smtp_security="tls")
        check(run_relayq(r, "tenant", "set", "acme", *fields, env=ENV), 1,
              err=["TLS is not possible with this server on this port", "use smtp_security=starttls"])
        fields = smtp_fields(s, "alice", "pw-1", smtp_security="starttls")
        check(run_relayq(r, "tenant", "set", "acme", *fields, env=ENV), 1,
              err=["does not offer STARTTLS"])
        fields = smtp_fields(s, "alice", "pw-1")
        check(run_relayq(r, "tenant", "set", "acme", *fields, env=ENV), 0,
              out=["sends the password unencrypted"])


def test_login_offered_only_after_starttls():
    with RedisServer() as r, SmtpServer(security="starttls", auth=("alice", "pw-1"),
                                        require_starttls=False) as s:
        fields = smtp_fields(s, "alice", "pw-1", smtp_security="none")
        check(run_relayq(r, "tenant", "set", "acme", *fields, env=ENV), 1,
              out=["FAIL  AUTH"], err=["no login method", "offers AUTH only after STARTTLS: set smtp_security=starttls"])
        assert r.client.keys("*") == []


def test_connection_refused_and_dns_in_plain_words():
    with RedisServer() as r:
        port = free_port()
        p = run_relayq(r, "tenant", "set", "acme", "gateway=smtp", "smtp_host=127.0.0.1",
                       "smtp_port=%d" % port, "smtp_user=u", "smtp_password=p", env=ENV)
        check(p, 1, err=["Could not connect to the server", "127.0.0.1 port %d: connection refused" % port])
        p = run_relayq(r, "tenant", "set", "acme", "gateway=smtp", "smtp_host=smtp.relayq.invalid",
                       "smtp_user=u", "smtp_password=p", "--timeout", "5", env=ENV)
        check(p, 1, err=["name could not be resolved", "smtp.relayq.invalid"])
        assert r.client.keys("*") == []


def test_verify_probe_rcpt_stops_before_data():
    def rcpt(address, state):
        return "550 5.1.1 No such user" if address.startswith("nobody@") else None

    with RedisServer() as r, SmtpServer(security="none", auth=("alice", "pw-1"),
                                        rcpt_reply=rcpt) as s:
        check(run_relayq(r, "tenant", "set", "acme", *smtp_fields(s, "alice", "pw-1"),
                         "from_email=info@acme.example", env=ENV), 0)
        p = run_relayq(r, "tenant", "verify", "acme", "--probe-rcpt", "bob@example.com", env=ENV)
        check(p, 0, out=["MAIL FROM", "RCPT TO", "250 2.1.5"])
        p = run_relayq(r, "tenant", "verify", "acme", "--probe-rcpt", "nobody@example.com",
                       "--json", env=ENV)
        check(p, 1, err=["rejected the recipient address (550 5.1.1)"])
        doc = json.loads(p.stdout)
        assert doc["ok"] is False and doc["category"] == "recipient_rejected", doc
        assert doc["verdict"] == "perm", doc
        assert doc["stages"][-1]["name"] == "RCPT TO" and not doc["stages"][-1]["ok"], doc
        txns = s.transactions()
        assert [t["mail_from"] for t in txns] == ["info@acme.example"] * 2, txns
        assert all(t["data_reply"] is None for t in txns), txns
        assert s.messages_count() == 0


def test_mailgun_verify_200_401_404():
    with RedisServer() as r, MailgunFake(api_key="key-good", domain="mg.acme.example") as mg:
        base = ["gateway=mailgun", "mailgun_domain=mg.acme.example",
                "mailgun_base_url=" + mg.base_url]
        p = run_relayq(r, "tenant", "set", "acme", *base, "mailgun_api_key=key-good", env=ENV)
        check(p, 0, out=["HTTP", "GET /v3/domains/mg.acme.example: 200", "Result: ok"],
              no_out=["key-good"])
        req = mg.requests()[-1]
        assert req["method"] == "GET" and req["path"] == "/v3/domains/mg.acme.example", req
        assert req["auth_ok"], req
        assert open_sealed(tenant(r, "acme")["mailgun_api_key"], "mailgun_api_key") == "key-good"
        check(run_relayq(r, "tenant", "set", "acme", "mailgun_api_key=key-bad", env=ENV), 1,
              err=["Mailgun rejected the API key (HTTP 401"], no_out=["key-bad"])
        check(run_relayq(r, "tenant", "set", "acme", "mailgun_domain=other.example", env=ENV), 1,
              err=["Mailgun does not know this domain (HTTP 404", "check mailgun_domain and mailgun_region"])
        assert open_sealed(tenant(r, "acme")["mailgun_api_key"], "mailgun_api_key") == "key-good"
        check(run_relayq(r, "tenant", "verify", "acme", env=ENV), 0, out=["200"])


# ---- get, test, del, routes -----------------------------------------------------------------

def test_get_masks_secrets():
    with RedisServer() as r:
        check(run_relayq(r, "tenant", "set", "acme", "gateway=smtp", "smtp_host=smtp.example.com",
                         "smtp_user=u", "smtp_password=topsecret", "--no-verify", env=ENV), 0)
        # A platform backend may write plaintext secrets itself.
        r.client.hset(r.key("tenant", "acme"), "mailgun_api_key", "plain-key-123")
        p = run_relayq(r, "tenant", "get", "acme")
        check(p, 0, out=["smtp_password", "enc:v2:\u2026(sealed)", "(plaintext)", "smtp_port",
                         "587"], no_out=["topsecret", "plain-key-123"])
        sealed = tenant(r, "acme")["smtp_password"]
        assert sealed[10:30] not in p.stdout
        lines = [l.split()[0] for l in p.stdout.splitlines()[1:]]
        assert lines == sorted(lines), lines
        doc = json.loads(run_relayq(r, "tenant", "get", "acme", "--json").stdout)
        assert doc["fields"]["smtp_password"] == "enc:v2:\u2026(sealed)", doc
        assert doc["fields"]["mailgun_api_key"] == "****(plaintext)", doc
        check(run_relayq(r, "tenant", "get", "nobody"), 1, err=["has no settings"])


def test_test_sends_a_real_message():
    with RedisServer() as r, SmtpServer(security="starttls", auth=("alice", "pw-1"),
                                        rcpt_reply=lambda a, st: "550 5.1.1 No such user"
                                        if a.startswith("nobody@") else None) as s:
        check(run_relayq(r, "tenant", "set", "acme", *smtp_fields(s, "alice", "pw-1", verify=0),
                         "from_email=info@acme.example", "from_name=Acme", env=ENV), 0)
        p = run_relayq(r, "tenant", "test", "acme", "--to", "bob@example.com", "--subject",
                       "Hello from relayq", env=ENV)
        check(p, 0, out=["RCPT bob@example.com: 250", "Result: sent"])
        [m] = s.wait_messages(1)
        assert m["mail_from"] == "info@acme.example" and m["rcpt_tos"] == ["bob@example.com"], m
        assert m["tls"] and m["auth_user"] == "alice", m
        msg = parse_message(m["data"])
        assert msg["Subject"] == "Hello from relayq", msg["Subject"]
        assert "info@acme.example" in msg["From"] and "Acme" in msg["From"], msg["From"]
        p = run_relayq(r, "tenant", "test", "acme", "--to", "nobody@example.com", env=ENV)
        check(p, 1, out=["550 5.1.1", "Result: failed"], err=["not sent"])
        assert s.messages_count() == 1
        # A tenant without a hash goes through the platform gateway, From the
        # platform sender (its domain is not verified), as a worker would.
        check(run_relayq(r, "tenant", "test", "newco", "--to", "bob@example.com", env=ENV), 1,
              err=["RELAYQ_PLATFORM_SMTP is not set"])
        env = dict(ENV, RELAYQ_PLATFORM_SMTP=s.url_with_auth(), RELAYQ_CA_FILE=s.cafile,
                   RELAYQ_PLATFORM_FROM="no-reply@platform.example")
        check(run_relayq(r, "tenant", "test", "newco", "--to", "bob@example.com", env=env), 0,
              out=["through platform", "Result: sent"])
        m = s.wait_messages(2)[1]
        assert m["mail_from"] == "no-reply@platform.example", m
        assert r.client.keys("*") == [r.key("tenant", "acme").encode()]


def test_routes_set_verify_test_and_del():
    with RedisServer() as r, SmtpServer(security="none", auth=("bob", "pw-2")) as s:
        check(run_relayq(r, "tenant", "set", "acme", "from_email=info@acme.example", env=ENV), 0)
        p = run_relayq(r, "tenant", "set", "acme", "--route", "backup", "smtp_host=127.0.0.1",
                       "smtp_port=%d" % s.port, "smtp_security=none", "smtp_user=bob",
                       "smtp_password=pw-2", env=ENV)
        check(p, 0, out=["AUTH", "Saved route backup"], no_out=["pw-2"])
        assert tenant(r, "acme")["routes"] == "backup"
        assert open_sealed(tenant(r, "acme", "backup")["smtp_password"], "smtp_password", "tenant:acme:route:backup") == "pw-2"
        check(run_relayq(r, "tenant", "set", "acme", "--route", "backup", "from_name=x", env=ENV),
              2, err=["a route holds only smtp_* fields"])
        check(run_relayq(r, "tenant", "set", "acme", "--route", "other", "smtp_preset=gmail",
                         "--no-verify", env=ENV), 0)
        assert tenant(r, "acme")["routes"] == "backup,other"
        check(run_relayq(r, "tenant", "verify", "acme", "--route", "backup", env=ENV), 0)
        check(run_relayq(r, "tenant", "test", "acme", "--route", "backup", "--to",
                         "carol@example.com", env=ENV), 0, out=["Result: sent"])
        assert s.wait_messages(1)[0]["auth_user"] == "bob"
        p = run_relayq(r, "tenant", "get", "acme")
        check(p, 0, out=["route backup", "route other", "smtp.gmail.com"])
        check(run_relayq(r, "tenant", "del", "acme", "--route", "other"), 0)
        assert tenant(r, "acme")["routes"] == "backup"
        # A route hash no longer listed is removed with its tenant too.
        r.client.hset(r.key("tenant", "acme", "route", "stale"), "smtp_host", "x.example")
        check(run_relayq(r, "tenant", "del", "acme"), 0, out=["Deleted tenant acme"])
        assert r.client.keys("*") == []
        check(run_relayq(r, "tenant", "del", "acme"), 1, err=["nothing deleted"])


def test_usage_errors_exit_2():
    with RedisServer() as r:
        check(run_relayq(r, "tenant"), 2)
        check(run_relayq(r, "tenant", "frob", "acme"), 2, err=["unknown tenant command"])
        check(run_relayq(r, "tenant", "get"), 2, err=["needs a TENANT"])
        check(run_relayq(r, "tenant", "get", "bad id"), 2, err=["tenant id"])
        check(run_relayq(r, "tenant", "get", "acme", "--to", "x@y.example"), 2,
              err=["does not take --to"])
        check(run_relayq(r, "tenant", "test", "acme"), 2, err=["needs --to"])
        check(run_relayq(r, "tenant", "verify", "acme", "--probe-rcpt", "not an address"), 2)
        p = run_relayq(r, "tenant", "--help")
        check(p, 0, out=["relayq tenant COMMAND"])


if __name__ == "__main__":
    harness.main(globals())
