#!/usr/bin/python3
"""`relayq tenant test` sends what the worker sends: its message comes from
the worker's builder (worker/mail/message.c), DKIM signature included.

A tenant with DKIM settings on the platform gateway gets one test message
from the CLI and one job through a worker, both to the same SMTP fixture:
both carry a DKIM-Signature with the same d=, s=, a= and signed header
list, and dkimpy (an independent implementation) verifies both.
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dkim  # noqa: E402

import harness  # noqa: E402
from harness import RedisServer, SmtpServer, Worker, push_job, run_relayq, wait_status  # noqa: E402
from test_dkim import Dns, Key  # noqa: E402

PLATFORM_FROM = "no-reply@platform.example"


def tags(message):
    """The DKIM-Signature's tags as a dict (folding whitespace removed)."""
    m = re.search(rb"^DKIM-Signature:(.*?)\r\n(?![ \t])", message, re.S | re.M)
    assert m, message[:400]
    value = re.sub(rb"\s+", b"", m.group(1)).decode()
    return dict(part.split("=", 1) for part in value.split(";") if "=" in part)


def test_tenant_test_message_is_signed_like_the_workers():
    key, dns = Key("rsa-pkcs8"), Dns()
    with RedisServer() as r, SmtpServer(security="starttls", auth=("gw", "gw-pw")) as s:
        r.client.hset(r.key("tenant", "acme"), mapping={
            "from_email": "news@acme.example", "from_name": "Acme", "domain_verified": "1",
            "dkim_domain": "acme.example", "dkim_selector": "s1", "dkim_private_key": key.pem})
        dns.publish("s1", "acme.example", key.txt)
        env = {"RELAYQ_PLATFORM_SMTP": s.url_with_auth(), "RELAYQ_CA_FILE": s.cafile,
               "RELAYQ_PLATFORM_FROM": PLATFORM_FROM}
        p = run_relayq(r, "tenant", "test", "acme", "--to", "bob@dest.example", env=env)
        assert p.returncode == 0 and "Result: sent" in p.stdout, (p.stdout, p.stderr)
        [cli] = s.wait_messages(1)
        with Worker(r, platform_smtp=s, args=["--platform-from", PLATFORM_FROM],
                    env={"RELAYQ_CA_FILE": s.cafile}):
            push_job(r, {"v": 1, "id": "w-1", "tenant": "acme", "to": ["bob@dest.example"],
                         "subject": "from the worker", "text": "Hello."})
            st = wait_status(r, "w-1")
            assert st["state"] == "sent", st
        worker = s.wait_messages(2)[1]
        for m in (cli, worker):
            assert dkim.verify(m["data"], dnsfunc=dns), m["data"][:600]
        a, b = tags(cli["data"]), tags(worker["data"])
        for t in ("v", "a", "c", "d", "s", "h"):
            assert a[t] == b[t], (t, a, b)
        assert a["d"] == "acme.example" and a["s"] == "s1", a
        assert cli["mail_from"] == worker["mail_from"] == "news@acme.example", (cli, worker)


if __name__ == "__main__":
    harness.main(globals())
