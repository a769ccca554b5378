"""Shared machinery for relayq's end-to-end tests (no pytest).

Owns: private redis-server instances, the relayq-worker and relayq
processes a test starts, polling helpers and the tiny test runner. The SMTP
and Mailgun fakes live in tests/fixtures/ and are re-exported here.

A test file:

    import harness
    from harness import RedisServer, SmtpServer, Worker, push_job, wait_status

    def test_sends_one():
        with RedisServer() as r, SmtpServer() as smtp, Worker(r, platform_smtp=smtp):
            push_job(r, {"v": 1, "id": "j1", "tenant": "t", "to": ["a@b.example"],
                         "text": "hi"})
            assert wait_status(r, "j1")["state"] == "sent"

    if __name__ == "__main__":
        harness.main(globals())

Skipping: a test never returns early in silence. harness.skip_unless(cond,
reason) skips the rest of the test, harness.skip_part(reason) records a part
that did not run; both are listed with their reason at the end of the run.
Under CI=true a skip of something scripts/deps.sh installs (the default,
required_in_ci=True) fails the run; pass required_in_ci=False only for what a
fresh machine cannot provide (a port a local service holds where no private
network namespace is available, a sanitizer build). A test that needs a fixed
well-known port reruns itself in a private network namespace
(rerun_in_private_netns). The SMTP and Mailgun fakes fail the test at the end
of their with-block when a scripted reply raised (take_errors() for a test
that expects it).

Rules the helpers keep: everything binds 127.0.0.1 on a free port, lives in a
temp dir removed afterwards, and every wait has a deadline. Child processes
get SIGKILL if the test process dies (setpriv --pdeathsig; Linux ties that
to the thread that started them, so start them from the test's own thread),
and are killed at exit if a test forgot to stop them. Inherited RELAYQ_*
variables (other than RELAYQ_BUILD_DIR) are dropped from the children's
environment, so a developer's shell cannot change what a test sees; pass
env= to set them.
"""

import atexit
import email
import email.policy
import faulthandler
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))

import msgpack  # noqa: E402
import redis as redis_py  # noqa: E402

import certs  # noqa: E402,F401  (re-exported for tests that need TLS contexts)
from mailgun_fake import MailgunFake, split_addresses  # noqa: E402,F401
from smtp_server import SmtpServer  # noqa: E402,F401

__all__ = [
    "RedisServer", "SmtpServer", "MailgunFake", "Worker", "run_relayq", "wait_for",
    "push_job", "status", "wait_status", "parse_message", "free_port", "build_dir",
    "skip_unless", "skip_part", "in_ci", "in_private_netns", "rerun_in_private_netns",
    "main", "certs", "split_addresses", "ROOT", "set_tenant", "smtp_tenant",
]

FINAL_STATES = ("sent", "partial", "failed")
SANITIZER_SIGNS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
LOG_TAIL = 1 << 20  # characters of a closed worker's log kept for failure reports

# The fixtures listen on 127.0.0.1, which the saas network boundary refuses:
# every worker and CLI a test starts gets this allowance unless the test
# passes allow_private_nets=None (the boundary tests do, to run without it).
TEST_ALLOW_PRIVATE_NETS = "127.0.0.0/8"

_children = []          # every Popen we started, for the exit-time sweep
_test_workers = []      # Workers started during the current test (for logs)


# ---- small helpers --------------------------------------------------------------

def free_port():
    """A port on 127.0.0.1 that was free a moment ago (prefer binding port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_dir():
    """$RELAYQ_BUILD_DIR (set by ctest), else ROOT/build; absolute."""
    return os.path.abspath(os.environ.get("RELAYQ_BUILD_DIR") or os.path.join(ROOT, "build"))


def binary(name):
    """Path of a built binary; AssertionError naming the target when it is missing."""
    path = os.path.join(build_dir(), name)
    if not os.access(path, os.X_OK):
        raise AssertionError("%s not found or not executable: build the '%s' target "
                             "(RELAYQ_BUILD_DIR=%s)" % (path, name, build_dir()))
    return path


def wait_for(predicate, timeout=10.0, interval=0.02, what="condition"):
    """Polls predicate() until it returns something truthy, and returns that.

    Raises AssertionError("timed out waiting for: WHAT") after TIMEOUT seconds.
    An exception from predicate propagates at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out waiting for: %s" % what)
        time.sleep(interval)


def parse_message(data):
    """bytes -> email.message.EmailMessage (policy=email.policy.default)."""
    return email.message_from_bytes(data, policy=email.policy.default)


def _child_env(env):
    out = {k: v for k, v in os.environ.items()
           if not k.startswith("RELAYQ_") or k == "RELAYQ_BUILD_DIR"}
    out.update({k: str(v) for k, v in (env or {}).items()})
    return out


def _popen(cmd, **kwargs):
    # setpriv makes the child get SIGKILL when we die, even by SIGKILL (a
    # ctest timeout), so no redis-server or worker outlives its test.
    if shutil.which("setpriv"):
        cmd = ["setpriv", "--pdeathsig", "KILL", "--"] + list(cmd)
    proc = subprocess.Popen(cmd, **kwargs)
    _children.append(proc)
    return proc


def stop_process(proc, timeout=10.0):
    """SIGTERM, then SIGKILL after timeout seconds; waits for the exit."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@atexit.register
def _sweep():
    for p in _children:
        if p.poll() is None:
            p.kill()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass


# ---- redis-server ---------------------------------------------------------------

def _conf_quote(value):
    """A redis.conf double-quoted string (the config parser unescapes \\ and \\")."""
    return '"%s"' % str(value).replace("\\", "\\\\").replace('"', '\\"')


class RedisServer:
    """A private redis-server on 127.0.0.1, started by the constructor.

    Attributes: port, url, password, client (redis.Redis, bytes replies),
    prefix (unique per instance, for run_relayq/Worker/push_job), dir.
    stop() shuts it down (SHUTDOWN NOSAVE; the AOF, if on, is kept); start()
    brings it back on the same port and data dir; kill() is a crash
    (SIGKILL). Leaving the with-block stops it and removes the temp dir.
    With appendonly=True every write is fsynced (appendfsync always) so a
    restart, even after kill(), finds what was acknowledged.
    """

    def __init__(self, password=None, appendonly=False, start_timeout=10.0):
        if not shutil.which("redis-server"):
            raise AssertionError("redis-server not found: run scripts/deps.sh")
        self.password = password
        self.appendonly = appendonly
        self.start_timeout = start_timeout
        self.prefix = "rqt" + secrets.token_hex(4)
        self.dir = tempfile.mkdtemp(prefix="relayq-redis-")
        self.port = None
        self.proc = None
        self.client = None
        self.start()

    @property
    def url(self):
        if self.password:
            return "redis://:%s@127.0.0.1:%d" % (urllib.parse.quote(self.password, safe=""),
                                                 self.port)
        return "redis://127.0.0.1:%d" % self.port

    def key(self, *parts):
        """prefix:part:part... (e.g. r.key("status", "j1"))."""
        return ":".join((self.prefix,) + tuple(str(p) for p in parts))

    def _write_conf(self):
        lines = [
            "port %d" % self.port,
            "bind 127.0.0.1",
            'save ""',
            "dir %s" % _conf_quote(self.dir),
            "daemonize no",
            "logfile %s" % _conf_quote(os.path.join(self.dir, "redis.log")),
            "appendonly %s" % ("yes" if self.appendonly else "no"),
            "appendfsync always",
        ]
        if self.password:
            # In a 0600 file rather than on the command line, where ps shows it.
            lines.append("requirepass %s" % _conf_quote(self.password))
        path = os.path.join(self.dir, "redis.conf")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def log_text(self):
        try:
            with open(os.path.join(self.dir, "redis.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def start(self):
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("redis-server already running on port %d" % self.port)
        # A port picked by free_port() can be taken before redis binds it:
        # retry with another one, but only on the first start (a restart must
        # keep its port).
        attempts = 5 if self.port is None else 1
        fixed = self.port
        for attempt in range(attempts):
            self.port = fixed or free_port()
            conf = self._write_conf()
            self.proc = _popen(["redis-server", conf], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, cwd=self.dir)
            if self._wait_ready():
                break
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            if attempt == attempts - 1:
                raise AssertionError("redis-server did not start on port %d:\n%s"
                                     % (self.port, self.log_text()[-2000:]))
        if self.client is None:
            self.client = redis_py.Redis(host="127.0.0.1", port=self.port,
                                         password=self.password, decode_responses=False,
                                         socket_timeout=10)
        else:
            self.client.connection_pool.disconnect()
        return self

    def _wait_ready(self):
        deadline = time.monotonic() + self.start_timeout
        probe = redis_py.Redis(host="127.0.0.1", port=self.port, password=self.password,
                               socket_timeout=1, socket_connect_timeout=1)
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    return False
                try:
                    if probe.ping():
                        # Loading an AOF answers LOADING to PING; ping()
                        # raises then, so True means ready for commands.
                        return True
                except (redis_py.ConnectionError, redis_py.BusyLoadingError,
                        redis_py.TimeoutError):
                    pass
                time.sleep(0.01)
            return False
        finally:
            probe.connection_pool.disconnect()

    def stop(self, timeout=10.0):
        """SHUTDOWN NOSAVE (kill after TIMEOUT); returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        try:
            self.client.shutdown(nosave=True)
        except redis_py.RedisError:
            self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.client.connection_pool.disconnect()
        return self.proc.returncode

    def kill(self):
        """SIGKILL: a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.client is not None:
            self.client.connection_pool.disconnect()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# ---- the relayq CLI ---------------------------------------------------------------

def run_relayq(redis, *args, env=None, input=None, timeout=30, allow_private_nets=TEST_ALLOW_PRIVATE_NETS):
    """Runs `relayq --redis URL --prefix P [--allow-private-nets NETS] ARGS...`;
    a CompletedProcess (text).

    Does not check the exit code: assert on returncode/stdout/stderr.
    """
    cmd = [binary("relayq"), "--redis", redis.url, "--prefix", redis.prefix]
    if allow_private_nets is not None:
        cmd += ["--allow-private-nets", allow_private_nets]
    cmd += [str(a) for a in args]
    # Without input, stdin is /dev/null: a CLI waiting on stdin must not hang
    # on the test runner's terminal.
    stdin = subprocess.DEVNULL if input is None else None
    try:
        return subprocess.run(cmd, env=_child_env(env), input=input, stdin=stdin, text=True,
                              capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("relayq %s did not finish within %s s; stderr: %s"
                             % (" ".join(map(str, args)), timeout, e.stderr)) from None


# ---- the worker -----------------------------------------------------------------

class Worker:
    """relayq-worker running against REDIS, started by the constructor.

    platform_smtp: None, a URL, or an SmtpServer (its url, with credentials
    when it has auth). args: extra flags. env: extra environment.
    allow_private_nets: --allow-private-nets (TEST_ALLOW_PRIVATE_NETS by
    default, so saas workers reach the loopback fixtures; None: without).
    Attributes: proc, id, log_path. log_text() reads what it printed so far.
    Leaving the with-block: SIGTERM, SIGKILL after 10 s; the log goes to
    stderr when the block raised (a failed assertion).
    """

    def __init__(self, redis, platform_smtp=None, args=(), env=None, worker_id=None, wrapper=(),
                 allow_private_nets=TEST_ALLOW_PRIVATE_NETS):
        self.redis = redis
        self.id = worker_id or "w-" + secrets.token_hex(4)
        cmd = list(wrapper) + [binary("relayq-worker"), "--redis", redis.url, "--prefix", redis.prefix,
               "--id", self.id]
        if allow_private_nets is not None:
            cmd += ["--allow-private-nets", allow_private_nets]
        if platform_smtp is not None:
            if isinstance(platform_smtp, SmtpServer):
                platform_smtp = platform_smtp.url_with_auth()
            cmd += ["--platform-smtp", platform_smtp]
        cmd += [str(a) for a in args]
        self.cmd = cmd
        self._dir = tempfile.mkdtemp(prefix="relayq-worker-")
        self.log_path = os.path.join(self._dir, "worker.log")
        self._log_printed = False
        self._final_log = None  # the log's tail, kept once the temp dir is gone
        self._log = open(self.log_path, "wb")
        self.proc = _popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, env=_child_env(env), cwd=self._dir)
        _test_workers.append(self)

    def log_text(self):
        if self._final_log is not None:
            return self._final_log
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def running(self):
        return self.proc.poll() is None

    def wait_exit(self, timeout=10.0):
        """Waits for the process to exit; its return code. AssertionError on timeout."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("worker %s still running after %s s" % (self.id, timeout)) \
                from None

    def stop(self, sig=signal.SIGTERM, timeout=35):
        """Sends SIG and waits; the return code. A worker that does not exit
        within TIMEOUT is killed and the call raises AssertionError."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("worker %s did not exit within %s s of signal %s"
                                     % (self.id, timeout, signal.Signals(sig).name)) from None
        return self.proc.returncode

    def kill(self):
        """SIGKILL: a crash. Returns the return code."""
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait()

    def wait_heartbeat(self, timeout=10.0):
        """Waits until the worker's heartbeat hash P:worker:ID exists."""
        key = self.redis.key("worker", self.id)
        return wait_for(lambda: self.redis.client.exists(key) or self._dead(), timeout,
                        what="heartbeat of worker %s" % self.id)

    def _dead(self):
        if self.proc.poll() is not None:
            raise AssertionError("worker %s exited with %s:\n%s"
                                 % (self.id, self.proc.returncode, self.log_text()[-4000:]))
        return False

    def print_log(self, why="log"):
        if self._log_printed:
            return
        self._log_printed = True
        sys.stderr.write("---- worker %s %s (%s) ----\n%s\n---- end of worker %s ----\n"
                         % (self.id, why, " ".join(self.cmd), self.log_text(), self.id))
        sys.stderr.flush()

    def close(self, failed=False):
        stop_process(self.proc)
        if failed:
            self.print_log("log after a failure")
        self._log.close()
        if self._final_log is None:
            # Keep the tail for main(), which prints it if the test fails later.
            self._final_log = self.log_text()[-LOG_TAIL:]
            shutil.rmtree(self._dir, ignore_errors=True)
        # Under the sanitizer build a worker's memory error or leak is a test
        # failure even when the test's own assertions passed.
        if not failed and any(sig in self._final_log for sig in SANITIZER_SIGNS):
            self.print_log("log with a sanitizer report")
            raise AssertionError("worker %s: sanitizer report in its log" % self.id)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        # Read the log before close() removes it, if it is wanted.
        self.close(failed=exc_type is not None)
        return False


# ---- jobs and status -----------------------------------------------------------

class Events:
    """Every P:events message from construction on (subscribe before the
    worker starts so none is missed): raw (drain), parsed (all, for_job,
    states) or waited for (wait, wait_state)."""

    def __init__(self, redis):
        self.ps = redis.client.pubsub()
        self.ps.subscribe(redis.key("events"))
        wait_for(lambda: self.ps.get_message(timeout=0.1), what="subscribe confirmation")
        self.raw = []

    def drain(self):
        """Every message so far, as the bytes published."""
        while True:
            m = self.ps.get_message(timeout=0.01)
            if not m:
                return self.raw
            if m["type"] == "message":
                self.raw.append(m["data"])

    def all(self):
        out = []
        for d in self.drain():
            try:
                out.append(json.loads(d))
            except ValueError:
                raise AssertionError("an event is not JSON: %r" % d[:300])
        return out

    def for_job(self, jid):
        return [e for e in self.all() if e.get("id") == jid]

    def states(self, jid):
        return [e["state"] for e in self.for_job(jid)]

    def wait(self, pred, timeout=10):
        """The first event pred accepts, waiting up to timeout seconds."""
        return wait_for(lambda: next((e for e in self.all() if pred(e)), None), timeout, what="an event")

    def wait_state(self, jid, state, timeout=10):
        return wait_for(lambda: [e for e in self.for_job(jid) if e.get("state") == state],
                        timeout, what="an event %s for %s" % (state, jid))

    def close(self):
        self.ps.close()


def set_tenant(redis, tenant, route=None, **fields):
    """Writes P:tenant:TENANT (or its route hash P:tenant:TENANT:route:ROUTE)."""
    key = redis.key("tenant", tenant) if route is None else redis.key("tenant", tenant, "route", route)
    redis.client.hset(key, mapping={k: str(v) for k, v in fields.items()})


def smtp_tenant(redis, tenant, server, user, password, route=None, **extra):
    """gateway=smtp (or a route's fields) pointing at SERVER (an SmtpServer)
    with its security, and AUTH when user is set; extra fields win."""
    fields = {"smtp_host": "127.0.0.1", "smtp_port": server.port, "smtp_security": server.security}
    if route is None:
        fields["gateway"] = "smtp"
    if user:
        fields["smtp_user"] = user
        fields["smtp_password"] = password
    fields.update(extra)
    set_tenant(redis, tenant, route=route, **fields)


def push_job(redis, job, queue="default"):
    """msgpack-encodes JOB (bin type for bytes) and LPUSHes it to P:queue:QUEUE.

    Returns the payload bytes.
    """
    payload = msgpack.packb(job, use_bin_type=True)
    redis.client.lpush(redis.key("queue", queue), payload)
    return payload


def status(redis, job_id):
    """The status hash P:status:ID as {str: str} ({} when absent)."""
    raw = redis.client.hgetall(redis.key("status", job_id))
    return {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in raw.items()}


def wait_status(redis, job_id, states=FINAL_STATES, timeout=15):
    """Polls the status of JOB_ID until its state is one of STATES; returns it."""
    if isinstance(states, str):
        states = (states,)
    last = {}

    def check():
        nonlocal last
        last = status(redis, job_id)
        return last if last.get("state") in states else None

    try:
        return wait_for(check, timeout=timeout, interval=0.02,
                        what="job %s to reach %s" % (job_id, "/".join(states)))
    except AssertionError as e:
        raise AssertionError("%s; last status: %r" % (e, last)) from None


# ---- skips -------------------------------------------------------------------------

class Skip(Exception):
    """Raised by skip_unless: the rest of the test cannot run here."""

    def __init__(self, reason, required_in_ci):
        super().__init__(reason)
        self.reason = reason
        self.required_in_ci = required_in_ci


_skips = []  # (test name, reason, required_in_ci) for the summary
_current_test = [None]


def in_ci():
    """True under CI (CI=true or CI=1), where a fresh machine has run
    scripts/deps.sh and so has everything the suite needs."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_unless(cond, reason, required_in_ci=True):
    """Skips the rest of the current test when cond is false.

    required_in_ci=True (the default) marks something scripts/deps.sh
    installs, so under CI the skip fails the run; pass False only for what a
    fresh machine cannot provide (a port another service holds, a sanitizer
    build). Every skip is listed with its reason at the end of the run."""
    if not cond:
        raise Skip(reason, required_in_ci)


def skip_part(reason, required_in_ci=True):
    """Records that part of the current test did not run (the test goes on):
    listed at the end like skip_unless, and failing the run under CI when
    required_in_ci."""
    _skips.append((_current_test[0], reason, required_in_ci))
    print("  skipped part: %s%s" % (reason, "" if required_in_ci else " (allowed in CI)"))


# ---- a private network namespace ---------------------------------------------------

def in_private_netns():
    """True inside rerun_in_private_netns."""
    return os.environ.get("RELAYQ_IN_NETNS") == "1"


def rerun_in_private_netns(module_file, test_name, timeout=240):
    """Runs test_name of module_file again in a fresh network namespace of
    its own (unshare -rn, loopback up), where every port of 127.0.0.1 is
    free: for tests that need a fixed well-known port (6379, 25, 465, 587)
    that a service of this machine may hold. Returns True when it ran there
    (raises AssertionError with its output when it failed), False when
    unprivileged user namespaces are unavailable here."""
    if in_private_netns():
        return False
    probe = subprocess.run(["unshare", "-rn", "ip", "link", "set", "lo", "up"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    if probe.returncode != 0:
        return False
    env = dict(os.environ, RELAYQ_IN_NETNS="1")
    cmd = ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", sys.executable,
           os.path.abspath(module_file), test_name]
    try:
        p = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("%s in a private network namespace did not finish within %s s: %s"
                             % (test_name, timeout, e.stdout)) from None
    print("  (ran in a private network namespace:)")
    for line in p.stdout.splitlines():
        print("  | " + line)
        if line.startswith("  skipped part: "):  # keep the inner run's skips in this run's list
            reason = line[len("  skipped part: "):]
            allowed = reason.endswith(" (allowed in CI)")
            _skips.append((test_name, reason[:-len(" (allowed in CI)")] if allowed else reason, not allowed))
        elif line.startswith("skip %s " % test_name):
            _skips.append((test_name, line.split(": ", 1)[-1], True))
    assert p.returncode == 0, "%s failed in a private network namespace:\n%s\n%s" % (test_name, p.stdout, p.stderr)
    return True


# ---- the runner -----------------------------------------------------------------

def main(tests, argv=None):
    """Runs every callable named test_* in TESTS (a module's globals()), in order.

    Names given on the command line select a subset. Prints "ok NAME (s)" or
    "FAIL NAME (s)" with the traceback, then "N passed, N failed"; exits 1
    when any failed or none ran. A test still running after
    $RELAYQ_TEST_HANG_S (default 150) seconds gets every thread's stack dumped
    to stderr, so a hang shows where it is before ctest's timeout kills it.
    """
    argv = sys.argv[1:] if argv is None else argv
    names = [n for n, f in tests.items() if n.startswith("test_") and callable(f)]
    if argv:
        unknown = [a for a in argv if a not in names]
        if unknown:
            print("no such test: %s" % ", ".join(unknown))
            sys.exit(2)
        names = [n for n in names if n in argv]
    hang = float(os.environ.get("RELAYQ_TEST_HANG_S", "150"))
    passed = failed = 0
    for name in names:
        del _test_workers[:]
        t0 = time.monotonic()
        faulthandler.dump_traceback_later(hang, repeat=False, file=sys.stderr)
        _current_test[0] = name
        try:
            tests[name]()
        except Skip as sk:
            _skips.append((name, sk.reason, sk.required_in_ci))
            print("skip %s (%.2fs): %s" % (name, time.monotonic() - t0, sk.reason))
        except KeyboardInterrupt:
            raise
        except BaseException:
            failed += 1
            print("FAIL %s (%.2fs)" % (name, time.monotonic() - t0))
            traceback.print_exc(file=sys.stdout)
            for w in _test_workers:
                w.print_log("log of a failed test")
        else:
            passed += 1
            print("ok %s (%.2fs)" % (name, time.monotonic() - t0))
        finally:
            faulthandler.cancel_dump_traceback_later()
        sys.stdout.flush()
    print("%d passed, %d failed" % (passed, failed))
    ci_fail = _report_skips()
    sys.stdout.flush()
    sys.exit(1 if failed or ci_fail or not names else 0)


def _report_skips():
    """Lists every skip with its reason; returns True when CI must fail
    because something the fresh-machine install provides was skipped."""
    if not _skips:
        return False
    print("skipped (%d):" % len(_skips))
    for name, reason, required in _skips:
        print("  %s: %s%s" % (name, reason, "" if required else " (allowed in CI)"))
    bad = [s for s in _skips if s[2]]
    if bad and in_ci():
        print("FAIL: under CI=%s these skips are not allowed (scripts/deps.sh installs what they need): %s"
              % (os.environ.get("CI"), ", ".join(n for n, _, _ in bad)))
        return True
    return False
