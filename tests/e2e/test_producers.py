#!/usr/bin/python3
"""The producer examples in examples/ against a real worker and SMTP server.

For each language whose toolchain is here (Python and Node always: CI
installs them; PHP and Ruby when scripts/deps.sh installed php-cli and ruby
with their redis and msgpack packages), the example is run as a platform
backend would run it:

  - it saves the tenant's own SMTP server, with the password sealed by the
    example itself (enc:v1:, AES-256-GCM);
  - it enqueues an invoice mail with a binary PDF attachment and UTF-8
    subject and body, writing the `queued` status in the same atomic step;
  - it waits for the final state on P:events and prints the status hash.

The worker runs with RELAYQ_REQUIRE_ENCRYPTED=1, so it refuses a plaintext
password: a delivery through the fake server, which only accepts the
right login, proves that the worker opened the example's sealed value.
Running the example again with the same job id proves the idempotency rule:
the job is not pushed or sent again and its final status is untouched.
"""

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import RedisServer, SmtpServer, Worker, ROOT  # noqa: E402

import msgpack  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

EXAMPLES = os.path.join(ROOT, "examples")
KEY_B64 = base64.b64encode(bytes(range(32))).decode()
USER, PASSWORD = "billing@acme.example", "pässwörd: 'tenant' \"42\""
SUBJECT = "Fattura n. 42 — €1.234,56"
ATTACHMENT = b"%PDF-1.4\n" + bytes(range(256)) + b"\n%%EOF\n"
RUN_TIMEOUT = 90
DELAY_MS = 2500  # long enough to read P:delayed before the job is due


def open_sealed(value):
    assert value.startswith("enc:v1:"), value
    blob = base64.b64decode(value[len("enc:v1:"):], validate=True)
    return AESGCM(base64.b64decode(KEY_B64)).decrypt(blob[:12], blob[12:], None).decode()


def start_example(cmd, r, tenant, job_id, smtp, cwd=None, extra=None):
    """Starts the example with the settings every example reads (README)."""
    env = {
        "RELAYQ_REDIS_URL": r.url, "RELAYQ_PREFIX": r.prefix, "RELAYQ_SECRET_KEY": KEY_B64,
        "RELAYQ_EXAMPLE_TENANT": tenant, "RELAYQ_EXAMPLE_TO": "Bob Example <bob@example.com>",
        "RELAYQ_EXAMPLE_FROM": USER, "RELAYQ_EXAMPLE_ID": job_id,
        "RELAYQ_EXAMPLE_SMTP_HOST": "127.0.0.1", "RELAYQ_EXAMPLE_SMTP_PORT": str(smtp.port),
        "RELAYQ_EXAMPLE_SMTP_SECURITY": "none", "RELAYQ_EXAMPLE_SMTP_USER": USER,
        "RELAYQ_EXAMPLE_SMTP_PASSWORD": PASSWORD, "RELAYQ_EXAMPLE_TIMEOUT_S": "60",
    }
    env.update(extra or {})
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYQ_")}
    full_env.update(env)
    return subprocess.Popen(cmd, env=full_env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)


def finish(proc, cmd):
    """Waits for a started example; a CompletedProcess."""
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError("%s did not finish within %ss; stderr: %s"
                             % (cmd, RUN_TIMEOUT, err)) from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def run_example(cmd, r, tenant, job_id, smtp, cwd=None, extra=None):
    return finish(start_example(cmd, r, tenant, job_id, smtp, cwd, extra), cmd)


def event_states(p):
    return [json.loads(ln[len("event "):])["state"] for ln in p.stderr.splitlines()
            if ln.startswith("event ")]


def final_json(p):
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    assert lines, "no output; exit %d, stderr:\n%s" % (p.returncode, p.stderr)
    return json.loads(lines[-1])


def check_producer(name, cmd, cwd=None, events=True):
    """Runs one example end to end and asserts on everything it should do.
    events=False for an example that polls the status instead (C)."""
    tenant = "acme-" + name
    job_id = "inv-42-" + name
    with RedisServer() as r, SmtpServer(auth=(USER, PASSWORD), require_auth=True) as smtp, \
            Worker(r, env={"RELAYQ_SECRET_KEY": KEY_B64, "RELAYQ_REQUIRE_ENCRYPTED": "1"}) as w:
        # A header-injection attempt through the recipient is refused before
        # anything reaches Redis (exit 2, the reason on stderr).
        bad = run_example(cmd, r, tenant, job_id + "-bad", smtp, cwd,
                          {"RELAYQ_EXAMPLE_TO": "bob@example.com\r\nBcc: eve@example.com"})
        assert bad.returncode == 2 and "invalid job" in bad.stderr, (bad.returncode, bad.stderr)
        assert not r.client.exists(r.key("status", job_id + "-bad"))
        assert r.client.llen(r.key("queue", "default")) == 0

        p = run_example(cmd, r, tenant, job_id, smtp, cwd)
        assert p.returncode == 0, "%s exited %d\nstdout:\n%s\nstderr:\n%s" % (
            name, p.returncode, p.stdout, p.stderr)
        st = final_json(p)
        assert st["state"] == "sent", st
        assert st["tenant"] == tenant and st["route"] == "smtp", st
        assert st["meta.invoice"] == "INV-42" and st["meta.producer"] == name, st
        assert st["recipients"] == "1" and st["accepted"] == "1", st
        assert int(st["created_at"]) <= int(st["updated_at"]), st
        # The example watched its own job go by on P:events, queued first:
        # it subscribed before enqueueing, and its script published `queued`.
        states = event_states(p)
        assert not events or (states and states[0] == "queued" and states[-1] == "sent"), p.stderr
        assert PASSWORD not in p.stdout + p.stderr + w.log_text()

        # The tenant's password is stored sealed, by the example, with our key.
        sealed = r.client.hget(r.key("tenant", tenant), "smtp_password").decode()
        assert sealed.startswith("enc:v1:") and open_sealed(sealed) == PASSWORD

        msgs = smtp.messages()
        assert len(msgs) == 1, msgs
        m = msgs[0]
        assert m["auth_user"] == USER, m  # the worker logged in with the opened secret
        assert m["rcpt_tos"] == ["bob@example.com"], m
        msg = harness.parse_message(m["data"])
        assert msg["Subject"] == SUBJECT, msg["Subject"]
        assert msg["X-Invoice"] == "INV-42"
        assert USER in msg["From"]
        body = msg.get_body(("plain",)).get_content()
        assert "fattura n. 42" in body and "✓" in body, body
        atts = list(msg.iter_attachments())
        assert len(atts) == 1, atts
        assert atts[0].get_filename() == "fattura-42.pdf"
        assert atts[0].get_content_type() == "application/pdf"
        assert atts[0].get_content() == ATTACHMENT  # every byte value survived

        # Same id again: nothing pushed, nothing sent, status unchanged.
        p2 = run_example(cmd, r, tenant, job_id, smtp, cwd)
        assert p2.returncode == 0, "%s (again) exited %d\n%s" % (name, p2.returncode, p2.stderr)
        assert "already exists" in p2.stderr, p2.stderr
        assert final_json(p2) == st, (final_json(p2), st)
        assert r.client.llen(r.key("queue", "default")) == 0
        assert smtp.messages_count() == 1

        # A delayed job (not_before): status `deferred`, parked in P:delayed
        # with "_queue" as the payload's first key (the worker's Lua reads it
        # from the raw bytes to know where to promote it), sent when due.
        delayed_id = job_id + "-later"
        proc = start_example(cmd, r, tenant, delayed_id, smtp, cwd,
                             {"RELAYQ_EXAMPLE_DELAY_MS": str(DELAY_MS)})
        try:
            parked = harness.wait_for(lambda: r.client.zrange(r.key("delayed"), 0, -1,
                                                              withscores=True),
                                      timeout=30, what="%s's delayed job in P:delayed" % name)
        finally:
            p3 = finish(proc, cmd)
        payload, due = parked[0]
        first_key, queue = next(iter(msgpack.unpackb(payload, raw=True).items()))
        assert (first_key, queue) == (b"_queue", b"default"), (first_key, queue)
        assert p3.returncode == 0, "%s (delayed) exited %d\n%s" % (name, p3.returncode, p3.stderr)
        st3 = final_json(p3)
        assert st3["state"] == "sent", st3
        # Due after its creation, and not sent before it was due.
        assert int(st3["sent_at"]) >= int(due) > int(st3["created_at"]), (st3, due)
        if events:
            assert event_states(p3)[0] == "deferred", p3.stderr
        assert smtp.messages_count() == 2


def need(tool):
    path = shutil.which(tool)
    assert path, "%s not found: run scripts/deps.sh" % tool
    return path


def test_python_producer():
    check_producer("python", ["/usr/bin/python3",
                              os.path.join(EXAMPLES, "python", "relayq_producer.py")])


def test_node_producer():
    node_dir = os.path.join(EXAMPLES, "node")
    assert os.path.isdir(os.path.join(node_dir, "node_modules", "ioredis")), \
        "examples/node/node_modules is missing: run scripts/deps.sh (it runs npm ci there)"
    check_producer("node", [need("node"), os.path.join(node_dir, "producer.mjs")], cwd=node_dir)


def test_php_producer():
    # PHP runs where scripts/deps.sh installed php-cli, php-redis and php-msgpack.
    php = need("php")
    mods = subprocess.run([php, "-m"], capture_output=True, text=True).stdout.split()
    assert "redis" in mods and "msgpack" in mods, "php-redis/php-msgpack missing: run scripts/deps.sh"
    check_producer("php", [php, os.path.join(EXAMPLES, "php", "producer.php")])


def test_ruby_producer():
    # Ruby runs where scripts/deps.sh installed ruby, ruby-redis and ruby-msgpack.
    check_producer("ruby", [need("ruby"), os.path.join(EXAMPLES, "ruby", "producer.rb")])


def test_go_producer():
    # Built against Debian's Go packages (golang-go, golang-github-gomodule-
    # redigo-dev, golang-github-vmihailenco-msgpack.v5-dev from scripts/deps.sh)
    # in GOPATH mode: no module download. Outside this test, `go mod tidy`
    # fetches the same modules go.mod names.
    go = need("go")
    gopath = "/usr/share/gocode"
    for pkg in ("github.com/gomodule/redigo/redis", "github.com/vmihailenco/msgpack/v5"):
        assert os.path.isdir(os.path.join(gopath, "src", pkg)), \
            "%s missing from %s: run scripts/deps.sh" % (pkg, gopath)
    tmp = tempfile.mkdtemp(prefix="relayq-go-")
    try:
        exe = os.path.join(tmp, "producer")
        env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
        env.update({"GO111MODULE": "off", "GOPATH": gopath, "GOCACHE": os.path.join(tmp, "cache"),
                    "GOFLAGS": "", "HOME": tmp})
        b = subprocess.run([go, "build", "-o", exe, "main.go"], cwd=os.path.join(EXAMPLES, "go"),
                           env=env, capture_output=True, text=True, timeout=240)
        assert b.returncode == 0, "go build failed:\n%s%s" % (b.stdout, b.stderr)
        check_producer("go", [exe])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    harness.main(globals())
