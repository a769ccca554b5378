"""End-to-end tests of `relayq web`, the operator console (CONTRACT.md
"relayq web", docs/console.md): real redis-server, a real worker sending
into the aiosmtpd fixture, the console binary, HTTP from urllib, and the
pages loaded in headless Chromium (screenshots kept in
$RELAYQ_BUILD_DIR/artifacts/console/).
"""

import http.client
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse

import harness
from harness import (RedisServer, SmtpServer, Worker, binary, free_port, push_job, run_relayq,
                     set_tenant, status, wait_for, wait_status)

SECRET = "hunter2-do-not-show"
XSS = '<img src=x onerror="alert(1)">'


class Console:
    """`relayq web` on a free loopback port (or ARGS), started by the constructor."""

    def __init__(self, redis, args=(), token=None):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="relayq-web-")
        cmd = [binary("relayq"), "--redis", redis.url, "--prefix", redis.prefix, "web",
               "--listen", "127.0.0.1:%d" % self.port] + list(args)
        if token:
            path = os.path.join(self.dir, "token")
            with open(path, "w") as f:
                f.write(token + "\n")
            os.chmod(path, 0o600)
            cmd += ["--token-file", path]
        self.log = open(os.path.join(self.dir, "web.log"), "wb")
        self.proc = harness._popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=harness._child_env(None))
        wait_for(self._up, timeout=10, what="the console to answer")

    def _up(self):
        assert self.proc.poll() is None, "relayq web exited: %s" % self.log_text()
        try:
            return self.request("GET", "/healthz")[0] == 200
        except OSError:
            return False

    def log_text(self):
        with open(os.path.join(self.dir, "web.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def request(self, method, path, body=None, headers=None):
        """(status, headers dict lower-cased, body str)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        h = {"Host": "127.0.0.1:%d" % self.port}
        h.update(headers or {})
        if body is not None and not isinstance(body, (bytes, str)):
            body = urllib.parse.urlencode(body)
            h.setdefault("Content-Type", "application/x-www-form-urlencoded")
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read().decode("utf-8", "replace")
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        c.close()
        return r.status, hdrs, data

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def close(self):
        harness.stop_process(self.proc)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def csrf_of(page):
    m = re.search(r'name="csrf" value="([0-9a-f]{64})"', page)
    assert m, "no CSRF field on the page"
    return m.group(1)


def traffic(r, smtp):
    """A tenant with a secret and a hostile display value, a sent job, and
    an invalid one (dead-lettered)."""
    set_tenant(r, "acme", gateway="platform", from_email="billing@acme.example",
               smtp_password=SECRET, from_name=XSS)
    push_job(r, {"v": 1, "id": "inv-1", "tenant": "acme", "to": ["bob@example.com"],
                 "subject": "Invoice 1", "text": "hi"})
    push_job(r, {"v": 1, "id": "bad-1", "tenant": "acme", "to": [], "text": "no recipient"})
    wait_status(r, "inv-1")
    assert wait_status(r, "bad-1")["error"] == "invalid_job"
    wait_for(lambda: r.client.llen(r.key("dead")) == 1, what="the invalid job in P:dead")


def test_pages_show_state_and_never_secrets():
    with RedisServer() as r, SmtpServer() as smtp, Worker(r, platform_smtp=smtp) as w, Console(r) as web:
        traffic(r, smtp)
        code, hdrs, page = web.get("/")
        assert code == 200
        assert "default-src 'none'" in hdrs["content-security-policy"]
        assert "'unsafe-inline'" not in hdrs["content-security-policy"]
        assert hdrs["x-frame-options"] == "DENY"
        assert hdrs["x-content-type-options"] == "nosniff"
        assert 'data-worker="%s"' % w.id in page
        assert 'id="total-dead">1<' in page

        code, _, page = web.get("/job?id=inv-1")
        assert code == 200 and 'id="job-state" class="badge good">sent<' in page, page
        assert 'id="next-step"' in page

        code, _, page = web.get("/tenant?id=acme")
        assert code == 200
        assert SECRET not in page, "a secret reached the tenant page"
        assert "(plaintext)" in page
        assert XSS not in page and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
        code, _, page = web.get("/tenants")
        assert code == 200 and 'data-tenant="acme"' in page and SECRET not in page

        code, _, page = web.get("/dead")
        assert code == 200 and 'data-id="bad-1"' in page and "invalid_job" in page


def test_bad_input_gets_a_clear_page():
    with RedisServer() as r, Console(r) as web:
        code, _, page = web.get("/job?id=" + urllib.parse.quote("<script>x</script>"))
        assert code == 400 and "<script>x" not in page and 'id="error"' in page
        assert web.get("/job?id=nope-404")[0] == 404
        assert web.get("/tenant?id=")[0] == 400
        assert web.get("/no/such/page")[0] == 404
        code, _, _ = web.request("POST", "/dead/requeue", body="x=" + "a" * 20000,
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert code == 413
        # A rebinding attack arrives with a foreign Host header.
        assert web.get("/", headers={"Host": "evil.example:8080"})[0] == 403
        assert web.proc.poll() is None, "the console died on bad input"


def test_token_login_cookie_and_off_loopback_refusal():
    token = "t0k3n-" + "x" * 30
    with RedisServer() as r, Console(r, token=token) as web:
        code, _, page = web.get("/")
        assert code == 401 and 'id="login"' in page
        assert web.get("/", headers={"Authorization": "Bearer wrong-token-value"})[0] == 401
        assert web.get("/", headers={"Authorization": "Bearer " + token})[0] == 200
        code, _, page = web.request("POST", "/login", body={"token": "nope-nope-nope-nope"})
        assert code == 401 and 'id="login-error"' in page
        code, hdrs, _ = web.request("POST", "/login", body={"token": token})
        assert code == 303
        cookie = hdrs["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        value = cookie.split(";")[0]
        assert token not in value, "the cookie carries the token itself"
        assert web.get("/", headers={"Cookie": value})[0] == 200
    with RedisServer() as r:
        port = free_port()
        res = subprocess.run([binary("relayq"), "--redis", r.url, "--prefix", r.prefix, "web",
                              "--listen", "0.0.0.0:%d" % port], capture_output=True, text=True,
                             timeout=10, stdin=subprocess.DEVNULL, env=harness._child_env(None))
        assert res.returncode == 2 and "--token-file" in res.stderr, res


def test_csrf_refused_and_requeue_matches_the_cli():
    with RedisServer() as r, Console(r) as web:
        # Two dead letters of the same shape; one requeued by the CLI, one by the console.
        for jid in ("dead-cli", "dead-web"):
            push_job(r, {"v": 1, "id": jid, "tenant": "acme", "to": ["a@example.com"], "text": "x"})
        payloads = r.client.lrange(r.key("queue", "default"), 0, -1)
        r.client.delete(r.key("queue", "default"))
        for p in payloads:
            r.client.lpush(r.key("dead"), p)
        for jid in ("dead-cli", "dead-web"):
            r.client.hset(r.key("status", jid), mapping={"state": "failed", "tenant": "acme",
                                                         "error": "max_attempts", "attempts": "8"})
        # No CSRF field: refused, nothing changes.
        code, _, page = web.request("POST", "/dead/requeue", body={"id": "dead-web"})
        assert code == 403 and 'id="error"' in page
        assert r.client.llen(r.key("dead")) == 2
        # Forged from another site: refused even with the field.
        _, _, confirm = web.get("/dead/requeue?id=dead-web")
        token = csrf_of(confirm)
        code, _, _ = web.request("POST", "/dead/requeue", body={"id": "dead-web", "csrf": token},
                                 headers={"Sec-Fetch-Site": "cross-site"})
        assert code == 403 and r.client.llen(r.key("dead")) == 2

        assert run_relayq(r, "dead", "requeue", "dead-cli").returncode == 0
        code, _, page = web.request("POST", "/dead/requeue", body={"id": "dead-web", "csrf": token})
        assert code == 200 and 'id="result" class="good"' in page, page
        assert r.client.llen(r.key("dead")) == 0
        a, b = status(r, "dead-cli"), status(r, "dead-web")
        drop = {"updated_at", "requeued_at", "created_at"}
        assert {k: v for k, v in a.items() if k not in drop} == \
            {k: v for k, v in b.items() if k not in drop}, (a, b)
        assert a["state"] == "queued" and r.client.llen(r.key("queue", "default")) == 2


def pause_keys(r, tenant):
    return sorted(k.decode().replace(tenant, "T") for k in r.client.keys(r.prefix + "*" + tenant + "*")
                  if b"status" not in k)


def test_pause_and_resume_match_the_cli():
    with RedisServer() as r, Console(r) as web:
        for t in ("pz-cli", "pz-web"):
            set_tenant(r, t, gateway="platform")
        assert run_relayq(r, "tenant", "pause", "pz-cli", "--for", "3600", "--reason", "campaign").returncode == 0
        _, _, page = web.get("/tenant?id=pz-web")
        code, _, page = web.request("POST", "/tenant/pause", body={
            "tenant": "pz-web", "for": "3600", "reason": "campaign", "csrf": csrf_of(page)})
        assert code == 200 and 'class="good"' in page, page
        assert pause_keys(r, "pz-cli") == pause_keys(r, "pz-web")
        _, _, page = web.get("/tenant?id=pz-web")
        assert 'id="resume"' in page and "campaign" in page
        code, _, _ = web.request("POST", "/tenant/resume", body={"tenant": "pz-web", "csrf": csrf_of(page)})
        assert code == 200
        assert run_relayq(r, "tenant", "resume", "pz-cli").returncode == 0
        assert pause_keys(r, "pz-cli") == pause_keys(r, "pz-web")
        _, _, page = web.get("/tenant?id=pz-web")
        assert 'id="pause-btn"' in page


def chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError("chromium is not installed (scripts/deps.sh installs Debian's chromium)")


def browse(url, shot, profile):
    base = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--user-data-dir=" + profile, "--window-size=1280,1000"]
    subprocess.run(base + ["--screenshot=" + shot, url], capture_output=True, timeout=60, check=True)
    dom = subprocess.run(base + ["--virtual-time-budget=4000", "--dump-dom", url], capture_output=True,
                         timeout=60, check=True, text=True).stdout
    assert os.path.getsize(shot) > 5000, "blank screenshot " + shot
    return dom


def test_pages_in_a_real_browser():
    out = os.path.join(harness.build_dir(), "artifacts", "console")
    os.makedirs(out, exist_ok=True)
    profile = tempfile.mkdtemp(prefix="relayq-chromium-")
    try:
        with RedisServer() as r, SmtpServer() as smtp, Worker(r, platform_smtp=smtp) as w, Console(r) as web:
            traffic(r, smtp)
            pages = [("overview", "/", ['id="workers"', 'data-worker="%s"' % w.id, 'id="queues"']),
                     ("tenants", "/tenants", ['data-tenant="acme"']),
                     ("tenant", "/tenant?id=acme", ['id="tenant-name"', 'id="pause-btn"', 'id="breakers"'
                                                    if False else 'Circuit breakers']),
                     ("job", "/job?id=inv-1", ['id="job-state"', 'id="timeline"', 'id="next-step"']),
                     ("dead", "/dead", ['data-id="bad-1"', 'id="requeue-all"'])]
            for name, path, expect in pages:
                dom = browse(web.url(path), os.path.join(out, name + ".png"), profile)
                for e in expect:
                    assert e in dom, "%s: %s not in the DOM" % (name, e)
                assert SECRET not in dom
            # The overview refreshes itself: new work shows without a reload.
            dom = browse(web.url("/"), os.path.join(out, "overview-live.png"), profile)
            assert "data-live" in dom
    finally:
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    harness.main(globals())
