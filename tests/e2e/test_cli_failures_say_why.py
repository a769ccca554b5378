"""Every failing `relayq` command says why on stderr (docs/cli.md: a
non-zero exit comes with a `relayq: ...` sentence), even when its normal
output (a job's outcome, check lines) is on stdout.

Each case runs the CLI directly (no extra global flags) and asserts: the
expected non-zero exit, and a stderr line starting `relayq: ` that carries
the case's key words.
"""

import subprocess

import harness
from dnsfix import DnsServer
from harness import RedisServer, SmtpServer, Worker, free_port, push_job, wait_status


def cli(redis_url, prefix, *args, timeout=60):
    cmd = [harness.binary("relayq"), "--redis", redis_url, "--prefix", prefix] + [str(a) for a in args]
    try:
        return subprocess.run(cmd, env=harness._child_env(None), stdin=subprocess.DEVNULL, text=True,
                              capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("relayq %s did not finish in %s s" % (" ".join(map(str, args)), timeout)) from None


def says_why(p, rc, *words):
    assert p.returncode == rc, "exit %d, want %d; stdout %r stderr %r" % (p.returncode, rc, p.stdout, p.stderr)
    lines = [l for l in p.stderr.splitlines() if l.startswith("relayq: ")]
    assert lines, "exit %d with no 'relayq: ' reason on stderr; stdout %r stderr %r" % (rc, p.stdout, p.stderr)
    text = " ".join(lines)
    for w in words:
        assert w in text, "%r not in the reason %r" % (w, text)


def test_send_wait_failed_job_says_why_on_stderr():
    reject = lambda address, state: "550 5.1.1 No such user here"  # noqa: E731
    with RedisServer() as r, SmtpServer(rcpt_reply=reject) as smtp, \
            Worker(r, platform_smtp=smtp, args=["--platform-from", "no-reply@platform.example"]):
        p = cli(r.url, r.prefix, "send", "--tenant", "t", "--to", "nobody@dest.example", "--text", "x",
                "--id", "fails-1", "--wait", "20")
        says_why(p, 1, "fails-1", "failed", "recipient_rejected")
        # The outcome stays on stdout for scripts.
        assert "state=failed" in p.stdout and "code=550" in p.stdout, p.stdout


def test_redis_side_failures_say_why():
    with RedisServer() as r:
        says_why(cli(r.url, r.prefix, "status", "no-such-job"), 1, "no-such-job")
        says_why(cli(r.url, r.prefix, "tenant", "get", "no-such-tenant"), 1, "no-such-tenant")
        says_why(cli(r.url, r.prefix, "dead", "requeue", "no-such-job"), 1, "no-such-job")
    dead = "redis://127.0.0.1:%d" % free_port()
    for args in (["queue", "stats"], ["status", "x"], ["dead", "list"],
                 ["send", "--tenant", "t", "--to", "a@b.example", "--text", "x"]):
        says_why(cli(dead, "p", *args), 1)


def test_usage_errors_say_why():
    url = "redis://127.0.0.1:%d" % free_port()
    says_why(cli(url, "p", "send", "--to", "a@b.example"), 2, "--tenant")
    says_why(cli(url, "p", "nosuchcommand"), 2)
    says_why(cli(url, "p", "send", "--tenant", "t", "--to", "a@b.example", "--bogus"), 2, "--bogus")
    says_why(cli(url, "p", "dns", "check"), 2)
    says_why(cli(url, "p", "dnsbl", "check", "not-an-ip"), 2, "not-an-ip")


def test_failed_checks_say_why():
    recs = [("TXT", "bad.test", "v=spf1 -all"),
            ("A", "2.0.0.127.bl.test", "127.0.0.2"),
            ("A", "5.113.0.203.bl.test", "127.0.0.2")]
    url = "redis://127.0.0.1:%d" % free_port()
    with DnsServer(recs) as dns:
        p = cli(url, "p", "dns", "check", "bad.test", "--expect-ip", "192.0.2.1", "--dns-server", dns.address)
        says_why(p, 1, "bad.test", "failed: spf, dmarc", "not checked: dkim")
        assert p.stdout.startswith("FAIL spf:"), p.stdout
        p = cli(url, "p", "dnsbl", "check", "203.0.113.5", "--zone", "bl.test", "--dns-server", dns.address)
        says_why(p, 1, "203.0.113.5 is listed on bl.test")
        p = cli(url, "p", "dnsbl", "check", "203.0.113.5", "--zone", "empty.test", "--dns-server", dns.address)
        says_why(p, 2, "could not be checked on empty.test")


if __name__ == "__main__":
    harness.main(globals())
