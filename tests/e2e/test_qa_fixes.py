"""Contract gaps QA found in v1.1 (/work/coord/QA.md), each checked through
the public contract: P:breaker:*, status details, the `relayq` CLI, tenant
hashes and job outcomes.

- An open breaker's ROUTE.failures shows the count that tripped it.
- A job waiting on an open breaker says what to fix and when sending
  resumes (in words and UTC); a Mailgun route's advice names its API key
  and domain, not smtp_user/smtp_password nor a "mailgun:0" host.
- `relayq tenant pause`/`resume` without a tenant: one line on stderr;
  `relayq tenant --help` lists them.
- One extra route whose secret does not open fails only the jobs that use
  that route.
- smtp_host as a bare IPv6 address is accepted (tenant set and worker), and
  the network boundary judges it (policy), not the tenant's validity.
"""

import base64
import os
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import (MailgunFake, RedisServer, SmtpServer, Worker, push_job, run_relayq,  # noqa: E402
                     set_tenant, smtp_tenant, status, wait_for, wait_status)
import sealing  # noqa: E402
from raw_server import RawServer  # noqa: E402

FAST = ["--retry-base-ms", "100", "--retry-max-ms", "200", "--platform-from", "no-reply@platform.example",
        "--tenant-cache-ms", "100", "--max-attempts", "50"]
UTC_TIME = re.compile(r"in \d+ (s|min) \(\d\d:\d\d:\d\d UTC\)")


def job(jid, tenant, **kw):
    j = {"v": 1, "id": jid, "tenant": tenant, "to": ["%s@dest.example" % jid], "subject": "s", "text": "hi"}
    j.update(kw)
    return j





class V6SmtpServer:
    """A minimal SMTP server on [::1] (the fixture binds 127.0.0.1 only): greets, offers AUTH PLAIN,
    accepts every command and message; keeps the messages' recipients."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET6)
        self.sock.bind(("::1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.rcpts = []
        self.auth = []
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _session(self, c):
        c.settimeout(5)
        f = c.makefile("rb")
        c.sendall(b"220 v6.example ESMTP\r\n")
        rcpts = []
        while True:
            line = f.readline()
            if not line:
                return
            cmd = line.strip().upper()
            if cmd.startswith(b"EHLO"):
                c.sendall(b"250-v6.example\r\n250 AUTH PLAIN\r\n")
            elif cmd.startswith(b"AUTH"):
                self.auth.append(line.strip().split()[-1])
                c.sendall(b"235 2.7.0 ok\r\n")
            elif cmd.startswith(b"RCPT"):
                rcpts.append(line.strip().decode().split(":", 1)[1].strip("<> "))
                c.sendall(b"250 ok\r\n")
            elif cmd == b"DATA":
                c.sendall(b"354 go\r\n")
                while f.readline() not in (b".\r\n", b""):
                    pass
                self.rcpts += rcpts
                rcpts = []
                c.sendall(b"250 2.0.0 queued\r\n")
            elif cmd == b"QUIT":
                c.sendall(b"221 bye\r\n")
                return
            else:
                c.sendall(b"250 ok\r\n")

    def _run(self):
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            try:
                self._session(c)
            except OSError:
                pass
            finally:
                c.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._stop = True
        self._t.join(2)
        self.sock.close()


def breaker(r, tenant):
    return {k.decode(): v.decode() for k, v in r.client.hgetall(r.key("breaker", tenant)).items()}


def test_open_breaker_shows_the_failures_that_tripped_it_and_when_sending_resumes():
    with RedisServer() as r, RawServer("close") as down, SmtpServer() as plat, \
            Worker(r, platform_smtp=plat, args=FAST):
        set_tenant(r, "flaky", gateway="smtp", smtp_host="127.0.0.1", smtp_port=down.port,
                   smtp_security="tls", smtp_user="u", smtp_password="pw")
        for i in range(4):
            push_job(r, job("br%d" % i, "flaky"))
        h = wait_for(lambda: (lambda b: b if b.get("smtp.state") == "open" else None)(breaker(r, "flaky")),
                     timeout=15, what="the breaker open")
        # Contract: ROUTE.failures; docs/delivery.md: an open breaker keeps the count that tripped it.
        assert int(h.get("smtp.failures", "0")) >= 5, h
        assert h.get("smtp.reason") == "connect", h
        # While open the jobs wait as retry with what to fix and when sending resumes.
        st = wait_for(lambda: (lambda s: s if s.get("detail", "").startswith("The circuit breaker") else None)(
            status(r, "br0")), timeout=10, what="br0 parked by the open breaker")
        assert st["state"] == "retry" and st.get("error") == "connect", st
        assert UTC_TIME.search(st["detail"]), st["detail"]
        assert "smtp_host" in st["detail"] and "mailgun" not in st["detail"], st["detail"]
        # still open a moment later: the count is still there
        time.sleep(0.3)
        h = breaker(r, "flaky")
        assert h.get("smtp.state") == "open" and int(h.get("smtp.failures", "0")) >= 5, h


def test_mailgun_breaker_detail_names_the_api_key_and_domain():
    with RedisServer() as r, MailgunFake() as mg, SmtpServer() as plat, Worker(r, platform_smtp=plat, args=FAST):
        set_tenant(r, "x", gateway="mailgun", mailgun_domain=mg.domain, mailgun_api_key="key-WRONG-1",
                   mailgun_base_url=mg.base_url)
        for i in range(5):
            push_job(r, job("mx%d" % i, "x"))
        wait_for(lambda: breaker(r, "x").get("mailgun.state") == "open", timeout=15, what="x's breaker open")
        assert int(breaker(r, "x").get("mailgun.failures", "0")) >= 3, breaker(r, "x")
        push_job(r, job("mx-late", "x"))
        st = wait_status(r, "mx-late", states="retry", timeout=10)
        d = st.get("detail", "")
        assert st.get("error") == "auth", st
        assert "mailgun_api_key" in d and "mailgun_domain" in d, d
        assert "smtp_user" not in d and "smtp_password" not in d and "mailgun:0" not in d, d
        assert UTC_TIME.search(d), d
        assert "key-WRONG-1" not in d


def test_pause_and_resume_cli_failures_are_one_line_and_listed_in_help():
    # Contract (CLI): non-zero with one clear line on stderr.
    with RedisServer() as r:
        for args in (("tenant", "pause"), ("tenant", "resume"), ("tenant", "pause", "a", "b"),
                     ("tenant", "pause", "evil:route:x"), ("tenant", "resume", "--reason", "x", "acme")):
            p = run_relayq(r, *args)
            lines = p.stderr.strip().splitlines()
            assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("relayq: "), (args, p.stderr)
        assert not r.client.exists(r.key("thold", "evil:route:x")), "a tenant id with ':' was paused"
        p = run_relayq(r, "tenant", "--help")
        assert p.returncode == 0 and re.search(r"^  pause TENANT", p.stdout, re.M), p.stdout
        assert "resume TENANT" in p.stdout, p.stdout
        p = run_relayq(r, "tenant", "pause", "acme", "--for", "600")
        assert p.returncode == 0 and re.search(r"until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", p.stdout), p.stdout


def test_one_bad_route_fails_only_the_jobs_that_use_it():
    # Contract: a sealed value copied to another route does not open: "the job's attempt ends auth".
    # Only the attempts that use that secret: the tenant's other jobs are sent.
    key = os.urandom(32)
    env = {"RELAYQ_SECRET_KEY": base64.b64encode(key).decode()}
    with RedisServer() as r, SmtpServer() as plat, SmtpServer(security="starttls", auth=("u", "good-pw-5")) as own, \
            Worker(r, platform_smtp=plat, args=FAST, env=env):
        copied = sealing.seal_v2(key, "tenant:other", "smtp_password", "good-pw-5")
        set_tenant(r, "acme", gateway="platform", routes="billing,backup,ghost")
        smtp_tenant(r, "acme", own, "u", copied, route="billing", smtp_tls_verify="0")
        smtp_tenant(r, "acme", own, "u", sealing.seal_v2(key, "tenant:acme:route:backup", "smtp_password",
                                                         "good-pw-5"), route="backup", smtp_tls_verify="0")
        # route "ghost" is listed but has no hash
        push_job(r, job("plain-1", "acme"))
        push_job(r, job("billing-1", "acme", route="billing"))
        push_job(r, job("backup-1", "acme", route="backup"))
        push_job(r, job("ghost-1", "acme", route="ghost"))
        assert wait_status(r, "plain-1")["state"] == "sent", status(r, "plain-1")
        assert wait_status(r, "backup-1")["state"] == "sent", status(r, "backup-1")
        st = wait_status(r, "billing-1")
        assert st["state"] == "failed" and st.get("error") == "auth", st
        assert "sealed for another place" in st.get("detail", "") and "billing" in st["detail"], st
        st = wait_status(r, "ghost-1")
        assert st["state"] == "failed" and st.get("error") == "policy" and "ghost" in st.get("detail", ""), st
        assert len(plat.messages()) == 1 and own.messages_count() == 1, (plat.messages(), own.messages_count())
        assert [a[1:] for a in own.auth_attempts] == [("u", True)], own.auth_attempts


def test_smtp_host_bare_ipv6_is_accepted_connected_to_and_judged_by_the_boundary():
    # Contract: smtp_host is "a DNS name, an IPv4 address, or an IPv6 address bare or in brackets".
    env = {"RELAYQ_SECRET_KEY": base64.b64encode(os.urandom(32)).decode()}
    with RedisServer() as r:
        for host in ("2606:4700:4700::1111", "[2606:4700:4700::1111]"):
            p = run_relayq(r, "tenant", "set", "v6", "gateway=smtp", "smtp_host=" + host, "smtp_security=tls",
                           "smtp_user=u", "smtp_password=p", "--no-verify", env=env)
            assert p.returncode == 0, (host, p.stderr)
            assert r.client.hget(r.key("tenant", "v6"), "smtp_host") == b"[2606:4700:4700::1111]"
        # In saas `tenant set` refuses an internal address given bare, like the bracketed one.
        p = run_relayq(r, "tenant", "set", "v6b", "gateway=smtp", "smtp_host=::1", "smtp_security=tls",
                       "smtp_user=u", "smtp_password=p", "--no-verify", env=env, allow_private_nets=None)
        assert p.returncode != 0 and "valid host name" not in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    one = FAST + ["--max-attempts", "1"]
    with RedisServer() as r, V6SmtpServer() as v6, SmtpServer() as plat:
        set_tenant(r, "bare", gateway="smtp", smtp_host="::1", smtp_port=v6.port, smtp_security="none",
                   smtp_user="u", smtp_password="pw")
        set_tenant(r, "mapped", gateway="smtp", smtp_host="::ffff:127.0.0.1", smtp_port=v6.port,
                   smtp_security="none", smtp_user="u", smtp_password="pw")
        # saas, no network opened: the boundary refuses them (policy), not the tenant's validity
        with Worker(r, platform_smtp=plat, args=one, allow_private_nets=None):
            for jid, t in (("v6-bare", "bare"), ("v6-mapped", "mapped")):
                push_job(r, job(jid, t))
                st = wait_status(r, jid)
                assert st["state"] == "failed" and st.get("error") == "policy", st
                assert "settings are invalid" not in st.get("detail", ""), st
        assert v6.rcpts == [] and v6.auth == [], "connected to a loopback address in saas"
        # saas with ::1/128 opened: the bare address is connected to and the mail goes out
        with Worker(r, platform_smtp=plat, args=one, allow_private_nets="::1/128"):
            push_job(r, job("v6-send", "bare"))
            st = wait_status(r, "v6-send")
            assert st["state"] == "sent", st
        assert v6.rcpts == ["v6-send@dest.example"] and len(v6.auth) == 1, (v6.rcpts, v6.auth)

def test_verify_domain_failure_is_one_line_and_timeout_is_refused_clearly():
    # Contract (CLI): non-zero with one clear line on stderr.
    from dnsfix import DnsServer
    recs = [("TXT", "nospf.test", "hello"), ("TXT", "_dmarc.nospf.test", "v=DMARC1; p=reject")]
    with RedisServer() as r, DnsServer(recs) as dns:
        set_tenant(r, "acme", gateway="platform")
        p = run_relayq(r, "tenant", "verify-domain", "acme", "nospf.test", "--expect-include", "_spf.platform.test",
                       "--dns-server", dns.address, timeout=30)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 1 and len(lines) == 1, (p.returncode, p.stderr)
        assert "not verified for tenant acme" in lines[0] and "spf" in lines[0], lines
        assert r.client.hget(r.key("tenant", "acme"), "verified_domains") is None
        p = run_relayq(r, "tenant", "verify-domain", "acme", "nospf.test", "--expect-include", "x.test",
                       "--timeout", "2")
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 2 and len(lines) == 1 and "--timeout" in lines[0], p.stderr
        p = run_relayq(r, "tenant", "--help")
        assert re.search(r"--timeout S +set, verify, test", p.stdout), p.stdout


def test_platform_without_starttls_advice_names_platform_smtp_not_tenant_settings():
    # The platform gateway's login never goes in clear text; the detail says what the operator can set.
    with RedisServer() as r, SmtpServer(security="none", auth=("plat", "PlatPw-1")) as plat:
        url = "smtp://plat:PlatPw-1@127.0.0.1:%d" % plat.port
        with Worker(r, platform_smtp=url, args=FAST + ["--max-attempts", "1"]):
            push_job(r, job("pl1", "acme"))
            st = wait_status(r, "pl1")
        assert st["state"] == "failed" and st.get("error") == "tls", st
        d = st.get("detail", "")
        assert "--platform-smtp" in d and "smtps://" in d and "smtp+insecure://" in d, d
        assert "smtp_security" not in d and "route that asks" not in d, d
        assert plat.auth_attempts == [], plat.auth_attempts


def test_boundary_detail_uses_an_before_a_vowel():
    with RedisServer() as r:
        p = run_relayq(r, "tenant", "set", "z", "gateway=smtp", "smtp_host=0.0.0.0", "smtp_security=tls",
                       "smtp_user=u", "smtp_password=p", "--no-verify", allow_private_nets=None,
                       env={"RELAYQ_SECRET_KEY": base64.b64encode(os.urandom(32)).decode()})
        assert p.returncode != 0 and "is an unspecified address" in p.stderr, p.stderr


if __name__ == "__main__":
    harness.main(globals())
