"""The saas boundary, attacked through the public contract (docs/security.md): a
tenant's SMTP host or Mailgun URL pointing into the platform's own network,
a login the server cannot take, the platform gateway's login without
STARTTLS. The worker runs WITHOUT the harness' loopback allowance here
unless a test says otherwise, so the fixtures on 127.0.0.1 are exactly the
"internal services" a tenant must not reach.
"""

import harness
from harness import (MailgunFake, RedisServer, SmtpServer, Worker, push_job, run_relayq, set_tenant,
                     smtp_tenant, wait_status)

FAST = ["--retry-base-ms", "200", "--retry-max-ms", "400", "--max-attempts", "2",
        "--smtp-connect-timeout-ms", "2000", "--tenant-cache-ms", "0"]
USER, PASSWORD = "tenant-user", "s3cret-pw"


def job(job_id, tenant, **extra):
    j = {"v": 1, "id": job_id, "tenant": tenant, "to": ["rcpt@example.com"],
         "from": "a@tenant.example", "subject": "s", "text": "hello"}
    j.update(extra)
    return j


def boundary_worker(r, **kw):
    """A saas worker without any --allow-private-nets."""
    return Worker(r, args=FAST, allow_private_nets=None, **kw)


def test_tenant_hosts_in_internal_networks_are_never_connected():
    """127.0.0.1, numeric shorthand (127.1, 2130706433, 0x7f.1), a DNS name
    resolving to loopback (localhost), a private address and the cloud
    metadata address: failed/policy at once, the listening socket never sees
    a connection, and no banner text reaches the status."""
    hosts = {"lit": "127.0.0.1", "short": "127.1", "dec": "2130706433", "hex": "0x7f.1",
             "name": "localhost", "mapped": "[::ffff:127.0.0.1]"}
    with RedisServer() as r, SmtpServer(auth=(USER, PASSWORD)) as internal:
        for tid, host in hosts.items():
            smtp_tenant(r, tid, internal, USER, PASSWORD, smtp_host=host)
        set_tenant(r, "priv", gateway="smtp", smtp_host="10.0.0.1", smtp_port="587", smtp_user=USER,
                   smtp_password=PASSWORD)
        set_tenant(r, "meta", gateway="smtp", smtp_host="169.254.169.254", smtp_port="587",
                   smtp_user=USER, smtp_password=PASSWORD)
        with boundary_worker(r) as w:
            for tid in list(hosts) + ["priv", "meta"]:
                push_job(r, job("j-" + tid, tid))
            for tid in list(hosts) + ["priv", "meta"]:
                st = wait_status(r, "j-" + tid, timeout=10)
                assert st["state"] == "failed" and st["error"] == "policy", (tid, st)
                assert "nothing was connected" in st["detail"], (tid, st["detail"])
                assert st["attempts"] == "1", st
                assert "ESMTP" not in st["detail"] and not st.get("last_reply"), st
            assert internal.connections() == 0, "a forbidden address was connected to"
            log = w.log_text()
            assert PASSWORD not in log
            assert "network boundary" in log
        s = wait_status(r, "j-meta")
        assert "link-local" in s["detail"], s
        s = wait_status(r, "j-name")
        assert "127.0.0.1" not in s["detail"], "the resolved address must not be shown to the tenant"


def test_allow_private_nets_opens_only_the_named_network():
    """--allow-private-nets 127.0.0.0/8 lets the same tenant through; the
    variable works too; a bad CIDR stops the worker with one clear line."""
    with RedisServer() as r, SmtpServer(auth=(USER, PASSWORD)) as internal:
        smtp_tenant(r, "vpn", internal, USER, PASSWORD)
        smtp_tenant(r, "short", internal, USER, PASSWORD, smtp_host="127.1")
        with Worker(r, args=FAST, allow_private_nets="10.8.0.0/16,127.0.0.0/8"):
            push_job(r, job("ok1", "vpn"))
            assert wait_status(r, "ok1")["state"] == "sent"
            # Numeric shorthand is no host name, inside an allowed network too.
            push_job(r, job("sh1", "short"))
            st = wait_status(r, "sh1")
            assert st["error"] == "policy" and "numeric shorthand" in st["detail"], st
        with Worker(r, args=FAST, allow_private_nets=None, env={"RELAYQ_ALLOW_PRIVATE_NETS": "127.0.0.1/32"}):
            push_job(r, job("ok2", "vpn"))
            assert wait_status(r, "ok2")["state"] == "sent"
        with Worker(r, args=FAST, allow_private_nets="10.8.0.0/16"):
            push_job(r, job("no1", "vpn"))
            assert wait_status(r, "no1")["error"] == "policy"
        # onprem: every address.
        with Worker(r, args=FAST + ["--mode", "onprem"], allow_private_nets=None):
            push_job(r, job("ok3", "vpn"))
            assert wait_status(r, "ok3")["state"] == "sent"
        w = Worker(r, args=FAST, allow_private_nets="10.0.0.0/99")
        assert w.wait_exit(10) != 0
        assert "--allow-private-nets" in w.log_text() and "10.0.0.0/99" in w.log_text()
        w.close()
    assert internal.messages_count() == 3


def test_must_authenticate_server_without_auth():
    """smtp_user set, the server offers no AUTH: failed/policy, and the
    server received no transaction at all (no MAIL, no DATA)."""
    with RedisServer() as r, SmtpServer() as noauth:
        smtp_tenant(r, "na", noauth, USER, PASSWORD)
        with Worker(r, args=FAST):
            push_job(r, job("na1", "na"))
            st = wait_status(r, "na1")
            assert st["state"] == "failed" and st["error"] == "policy", st
            assert "login" in st["detail"], st
        assert noauth.connections() >= 1, "the server was reached (the allowance is on here)"
        assert noauth.transactions() == [] and noauth.messages() == []
        # onprem keeps the relay-by-IP behaviour.
        with Worker(r, args=FAST + ["--mode", "onprem"]):
            push_job(r, job("na2", "na"))
            assert wait_status(r, "na2")["state"] == "sent"


def test_must_authenticate_auth_hidden_past_the_reply_limit():
    """The server lists AUTH after 8 KB of EHLO filler: relayq cannot read
    the reply whole, so with smtp_user set it sends nothing (policy)."""
    with RedisServer() as r, SmtpServer(auth=(USER, PASSWORD), ehlo_padding=150) as padded:
        smtp_tenant(r, "pad", padded, USER, PASSWORD)
        with Worker(r, args=FAST):
            push_job(r, job("pad1", "pad"))
            st = wait_status(r, "pad1")
            assert st["state"] == "failed" and st["error"] == "policy", st
            assert "too long" in st["detail"], st
        assert padded.transactions() == [] and padded.messages() == [] and padded.auth_attempts == []


def test_mailgun_base_url_boundary():
    """mailgun_base_url http:// to a public-or-internal host is refused in
    saas without connecting; a loopback https-less fake is reachable only
    inside an allowed network."""
    with RedisServer() as r, MailgunFake(api_key="key-1") as mg:
        set_tenant(r, "mg", gateway="mailgun", mailgun_domain="mg.example.com", mailgun_api_key="key-1",
                   mailgun_base_url=mg.base_url)
        with boundary_worker(r):
            push_job(r, job("mg1", "mg"))
            st = wait_status(r, "mg1")
            assert st["state"] == "failed" and st["error"] == "policy", st
            assert "nothing was connected" in st["detail"].lower(), st
        assert mg.requests() == []
        with Worker(r, args=FAST):
            push_job(r, job("mg2", "mg"))
            assert wait_status(r, "mg2")["state"] == "sent"


def test_platform_login_never_in_clear():
    """smtp:// platform gateway with a login and no STARTTLS: tls, the sink
    saw no AUTH, and the log says why; smtp+insecure:// opts in."""
    with RedisServer() as r, SmtpServer(auth=("plat", "plat-pw")) as sink:
        url = "smtp://plat:plat-pw@127.0.0.1:%d" % sink.port
        with Worker(r, platform_smtp=url, args=FAST) as w:
            push_job(r, job("p1", "anyone"))
            st = wait_status(r, "p1")
            assert st["state"] == "failed" and st["error"] == "tls", st
            assert "STARTTLS" in st["detail"] and "smtp+insecure" in st["detail"], st
            assert sink.auth_attempts == [] and sink.messages() == []
            harness.wait_for(lambda: "offers no STARTTLS" in w.log_text(), 5, what="the start-up error line")
            assert "plat-pw" not in w.log_text()
        with Worker(r, platform_smtp=url.replace("smtp://", "smtp+insecure://"), args=FAST):
            push_job(r, job("p2", "anyone"))
            assert wait_status(r, "p2")["state"] == "sent"
            assert sink.messages()[0]["auth_user"] == "plat"


KEY_B64 = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
ENV = {"RELAYQ_SECRET_KEY": KEY_B64}


def cli(r, *args, allow=None):
    return run_relayq(r, *args, env=ENV, allow_private_nets=allow)


def test_tenant_set_refuses_what_a_saas_worker_refuses():
    """tenant set in saas mode (the CLI's default) saves nothing a worker
    would refuse, --no-verify included, and never connects to try."""
    with RedisServer() as r, SmtpServer(auth=(USER, PASSWORD)) as internal:
        login = ["smtp_user=" + USER, "smtp_password=" + PASSWORD]
        cases = [
            (["smtp_host=127.0.0.1", "smtp_port=%d" % internal.port], None, "loopback"),
            (["smtp_host=localhost", "smtp_port=%d" % internal.port], None, "closed to tenants"),
            (["smtp_host=127.1", "smtp_port=%d" % internal.port], "127.0.0.0/8", "numeric shorthand"),
            (["smtp_host=2130706433", "smtp_port=%d" % internal.port], "127.0.0.0/8", "numeric shorthand"),
            (["smtp_host=169.254.169.254"], None, "link-local"),
            (["smtp_host=10.1.2.3"], None, "private"),
            (["smtp_host=mail.example.com", "smtp_port=25", "smtp_security=none"], None, "port 25"),
        ]
        for fields, allow, word in cases:
            for extra in ([], ["--no-verify"]):
                p = cli(r, "tenant", "set", "t1", "gateway=smtp", *(fields + login + extra), allow=allow)
                assert p.returncode == 2, (fields, extra, p.stdout, p.stderr)
                assert "not saved" in p.stderr and word in p.stderr, (fields, p.stderr)
                assert "--no-verify does not change that" in p.stderr, p.stderr
                assert PASSWORD not in p.stderr + p.stdout
        assert r.client.keys(r.key("tenant", "*")) == []
        assert internal.connections() == 0
        # An extra route is judged the same way.
        p = cli(r, "tenant", "set", "t1", "--route", "b", "smtp_host=127.0.0.1", "smtp_port=%d" % internal.port,
                *login, "--no-verify")
        assert p.returncode == 2 and "loopback" in p.stderr, p.stderr
        # Mailgun: http:// only inside an allowed network; https to a closed one is refused too.
        mg = ["gateway=mailgun", "mailgun_domain=mg.example.com", "mailgun_api_key=key-1", "--no-verify"]
        p = cli(r, "tenant", "set", "m1", "mailgun_base_url=http://127.0.0.1:9", *mg)
        assert p.returncode == 2 and "mailgun_base_url" in p.stderr, p.stderr
        p = cli(r, "tenant", "set", "m1", "mailgun_base_url=https://169.254.169.254", *mg)
        assert p.returncode == 2 and "link-local" in p.stderr, p.stderr
        p = cli(r, "tenant", "set", "m1", "mailgun_base_url=http://127.0.0.1:9", *mg, allow="127.0.0.0/8")
        assert p.returncode == 0, p.stderr
        # onprem: saved.
        p = run_relayq(r, "--mode", "onprem", "tenant", "set", "t2", "gateway=smtp", "smtp_host=127.0.0.1",
                       "smtp_port=25", "smtp_security=none", *login, "--no-verify", env=ENV,
                       allow_private_nets=None)
        assert p.returncode == 0, p.stderr


def test_verify_and_test_hold_the_boundary():
    """A stored tenant on loopback: verify and test without the allowance
    fail with policy and never connect; with it they reach the server."""
    with RedisServer() as r, SmtpServer(auth=(USER, PASSWORD)) as internal:
        smtp_tenant(r, "t", internal, USER, PASSWORD)
        p = cli(r, "tenant", "verify", "t")
        assert p.returncode == 1 and "loopback" in (p.stdout + p.stderr), (p.stdout, p.stderr)
        p = cli(r, "tenant", "test", "t", "--to", "rcpt@example.com")
        assert p.returncode != 0 and "policy" in (p.stdout + p.stderr), (p.stdout, p.stderr)
        assert internal.connections() == 0
        p = cli(r, "tenant", "verify", "t", allow="127.0.0.0/8")
        assert p.returncode == 0, (p.stdout, p.stderr)
        assert internal.connections() >= 1


def test_host_change_drops_the_contradicted_preset():
    with RedisServer() as r:
        login = ["smtp_user=" + USER, "smtp_password=" + PASSWORD, "--no-verify"]
        assert cli(r, "tenant", "set", "pr", "gateway=smtp", "smtp_preset=aruba", *login).returncode == 0
        assert r.client.hget(r.key("tenant", "pr"), "smtp_preset") == b"aruba"
        p = cli(r, "tenant", "set", "pr", "smtp_host=mail.example.com", "--no-verify")
        assert p.returncode == 0, p.stderr
        h = r.client.hgetall(r.key("tenant", "pr"))
        assert b"smtp_preset" not in h and h[b"smtp_host"] == b"mail.example.com", h


if __name__ == "__main__":
    harness.main(globals())
