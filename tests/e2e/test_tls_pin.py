"""smtp_tls_pin and `relayq tenant trust` (issue 24): a tenant's self-signed
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
from harness import (RedisServer, SmtpServer, Worker, certs, push_job, run_relayq, smtp_tenant,
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
            assert len(srv.messages()) == 2
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


if __name__ == "__main__":
    harness.main(globals())
