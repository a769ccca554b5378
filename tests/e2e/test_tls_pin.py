"""smtp_tls_pin and `relayq tenant trust` (docs/tenants.md): a tenant's self-signed
server trusted by its key, with verification on; a different key fails
`tls` before anything (AUTH included) is sent; `tenant trust --yes` stores
the pin that openssl computes. Implicit TLS and STARTTLS, tenant routes and
extra routes.
"""

import os
import shutil
import subprocess
import tempfile

import harness
from harness import (RedisServer, SmtpServer, Worker, certs, push_job, run_relayq, set_tenant, smtp_tenant,
                     wait_status)

FAST = ["--retry-base-ms", "200", "--retry-max-ms", "400", "--max-attempts", "2", "--tenant-cache-ms", "0"]
USER, PASSWORD = "pin-user", "pin-secret-pw"
KEY_B64 = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
ENV = {"RELAYQ_SECRET_KEY": KEY_B64}


def openssl_pin(certfile):
    """openssl x509 -pubkey | openssl pkey -pubin -outform der | sha256 | base64."""
    pub = subprocess.run(["openssl", "x509", "-in", certfile, "-pubkey", "-noout"],
                         capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub,
                         capture_output=True, check=True).stdout
    dgst = subprocess.run(["openssl", "dgst", "-sha256", "-binary"], input=der,
                          capture_output=True, check=True).stdout
    b64 = subprocess.run(["base64"], input=dgst, capture_output=True, check=True).stdout
    return "sha256//" + b64.decode().strip()


class OtherCert:
    """A second self-signed certificate (another key) in a temp dir."""

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="relayq-pin-")
        self.pair = certs.make_cert(self.dir)
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.dir, True)


def job(job_id, tenant, **extra):
    j = {"v": 1, "id": job_id, "tenant": tenant, "to": ["rcpt@example.com"],
         "from": "a@tenant.example", "subject": "s", "text": "hello"}
    j.update(extra)
    return j


def check_pinning(security):
    with RedisServer() as r, OtherCert() as other, \
            SmtpServer(security=security, auth=(USER, PASSWORD), require_auth=True) as srv:
        right = openssl_pin(srv.cafile)
        wrong = openssl_pin(other.pair[0])
        assert right != wrong
        smtp_tenant(r, "good", srv, USER, PASSWORD, smtp_tls_pin=right)               # verify stays 1
        smtp_tenant(r, "two", srv, USER, PASSWORD, smtp_tls_pin=wrong + "," + right)  # a pin set
        smtp_tenant(r, "bad", srv, USER, PASSWORD, smtp_tls_pin=wrong)
        smtp_tenant(r, "rt", srv, USER, PASSWORD, routes="backup")
        r.client.hset(r.key("tenant", "rt"), "gateway", "platform")
        smtp_tenant(r, "rt", srv, USER, PASSWORD, route="backup", smtp_tls_pin=wrong)
        with Worker(r, args=FAST) as w:
            push_job(r, job("g1", "good"))
            push_job(r, job("t1", "two"))
            assert wait_status(r, "g1")["state"] == "sent"
            assert wait_status(r, "t1")["state"] == "sent"
            assert srv.messages()[0]["auth_user"] == USER and srv.messages()[0]["tls"]
            before = len(srv.auth_attempts)
            push_job(r, job("b1", "bad"))
            push_job(r, job("r1", "rt", route="backup"))
            for jid in ("b1", "r1"):
                st = wait_status(r, jid)
                assert st["state"] == "failed" and st["error"] == "tls", st
                assert "changed" in st["detail"] and "relayq tenant trust" in st["detail"], st
            assert len(srv.auth_attempts) == before, "a login was sent before the key was checked"
            # A key change trips the route's breaker like any tls failure (3 in a row).
            for i in range(2):
                push_job(r, job("b%d" % (i + 2), "bad"))
                wait_status(r, "b%d" % (i + 2))
            breaker = r.key("breaker", "bad")
            harness.wait_for(lambda: r.client.hget(breaker, "smtp.state") == b"open", 5,
                             what="the breaker of a changed key to open")
            assert r.client.hget(breaker, "smtp.reason") == b"tls"
            assert len(srv.messages()) == 2
            assert len(srv.auth_attempts) == before
            harness.wait_for(lambda: right in w.log_text(), 5, what="the presented pin in the log")
            assert PASSWORD not in w.log_text()
    # The pinned tenant's server moves to another key: tls, nothing sent.
    with RedisServer() as r, OtherCert() as other:
        with SmtpServer(security=security, auth=(USER, PASSWORD), require_auth=True) as srv:
            pin = openssl_pin(srv.cafile)
        with SmtpServer(security=security, auth=(USER, PASSWORD), require_auth=True, cert=other.pair) as moved:
            smtp_tenant(r, "mv", moved, USER, PASSWORD, smtp_tls_pin=pin)
            with Worker(r, args=FAST):
                push_job(r, job("m1", "mv"))
                st = wait_status(r, "m1")
                assert st["state"] == "failed" and st["error"] == "tls", st
            assert moved.auth_attempts == [] and moved.messages() == []


def test_pin_implicit_tls():
    check_pinning("tls")


def test_pin_starttls():
    check_pinning("starttls")


def check_trust(security):
    with RedisServer() as r, SmtpServer(security=security, auth=(USER, PASSWORD), require_auth=True) as srv:
        expected = openssl_pin(srv.cafile)
        smtp_tenant(r, "tr", srv, USER, PASSWORD)
        # Asked, and not confirmed: nothing stored, exit 1.
        p = run_relayq(r, "tenant", "trust", "tr", input="n\n", env=ENV)
        assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
        assert expected in p.stdout and "subject:" in p.stdout and "valid to:" in p.stdout, p.stdout
        assert "issuer:" in p.stdout and "valid from:" in p.stdout, p.stdout
        assert r.client.hget(r.key("tenant", "tr"), "smtp_tls_pin") is None
        # Without the pin, verification fails on the self-signed certificate.
        with Worker(r, args=FAST):
            push_job(r, job("tr0", "tr"))
            assert wait_status(r, "tr0")["error"] == "tls"
        p = run_relayq(r, "tenant", "trust", "tr", "--yes", env=ENV)
        assert p.returncode == 0, (p.stdout, p.stderr)
        assert r.client.hget(r.key("tenant", "tr"), "smtp_tls_pin").decode() == expected
        assert srv.auth_attempts == [] and srv.messages() == [], "trust must not log in or send"
        p = run_relayq(r, "tenant", "trust", "tr", "--yes", env=ENV)
        assert p.returncode == 0 and "Already trusted" in p.stdout, p.stdout
        # tenant verify trusts the pinned key as the workers do (no CA, verification on).
        p = run_relayq(r, "tenant", "verify", "tr", env=ENV)
        assert p.returncode == 0 and "smtp_tls_pin" in p.stdout, (p.stdout, p.stderr)
        p = run_relayq(r, "tenant", "set", "tr", "smtp_tls_pin=sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                       env=ENV)
        assert p.returncode == 1 and "smtp_tls_pin" in p.stderr, (p.stdout, p.stderr)
        assert r.client.hget(r.key("tenant", "tr"), "smtp_tls_pin").decode() == expected, "a failed verify saved"
        # A route of another tenant, by --route.
        set_tenant(r, "rt", routes="backup")
        smtp_tenant(r, "rt", srv, USER, PASSWORD, route="backup")
        p = run_relayq(r, "tenant", "trust", "rt", "--route", "backup", "--yes", env=ENV)
        assert p.returncode == 0, (p.stdout, p.stderr)
        assert r.client.hget(r.key("tenant", "rt", "route", "backup"), "smtp_tls_pin").decode() == expected
        with Worker(r, args=FAST):
            push_job(r, job("tr1", "tr"))
            push_job(r, job("rt1", "rt", route="backup"))
            assert wait_status(r, "tr1")["state"] == "sent"
            assert wait_status(r, "rt1")["state"] == "sent"
        # Without the allowance, trust does not connect to loopback either.
        p = run_relayq(r, "tenant", "trust", "tr", "--yes", env=ENV, allow_private_nets=None)
        assert p.returncode == 1 and "loopback" in p.stderr, (p.stdout, p.stderr)


def test_trust_implicit_tls():
    check_trust("tls")


def test_trust_starttls():
    check_trust("starttls")


def test_tenant_set_verify_off_points_at_trust():
    with RedisServer() as r, SmtpServer(security="starttls", auth=(USER, PASSWORD)) as srv:
        p = run_relayq(r, "tenant", "set", "v0", "gateway=smtp", "smtp_host=127.0.0.1", "smtp_port=%d" % srv.port,
                       "smtp_user=" + USER, "smtp_password=" + PASSWORD, "smtp_tls_verify=0", env=ENV)
        assert p.returncode == 0, (p.stdout, p.stderr)
        assert "relayq tenant trust v0" in p.stdout and "safer" in p.stdout, p.stdout
        p = run_relayq(r, "tenant", "set", "v0", "smtp_tls_pin=sha256//not-a-pin", "--no-verify", env=ENV)
        assert p.returncode == 2 and "smtp_tls_pin" in p.stderr, (p.stdout, p.stderr)


if __name__ == "__main__":
    harness.main(globals())
