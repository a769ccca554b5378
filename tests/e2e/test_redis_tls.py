"""Redis over TLS (rediss://) end to end: a redis-server with --tls-port
and --port 0 (nothing in clear), a throwaway CA, the worker (both of its
connections), the CLI (send, status), and the C example built against the
build tree's librelayq. A wrong CA is refused at start-up with a clear
error, and nothing in Redis is touched."""

import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import ROOT, SmtpServer, Worker, certs, free_port, wait_for  # noqa: E402
import redis as redis_py  # noqa: E402

FAST = ["--retry-base-ms", "200", "--retry-max-ms", "400", "--platform-from", "no-reply@platform.example"]


class TlsRedis:
    """redis-server reachable only over TLS on 127.0.0.1 (certificate for
    localhost and 127.0.0.1, its own CA). Quacks like harness.RedisServer
    for run_relayq, Worker and push_job: url, prefix, key(), client."""

    def __init__(self, client_certs=False):
        self.dir = tempfile.mkdtemp(prefix="relayq-redis-tls-")
        self.cert, self.keyfile = certs.make_cert(self.dir)
        wrong = os.path.join(self.dir, "wrong")
        os.mkdir(wrong)
        self.wrong_ca, _ = certs.make_cert(wrong)
        self.prefix = "rqt" + os.urandom(4).hex()
        ca_bundle = self.cert
        if client_certs:
            # A client certificate (clientAuth) that Redis trusts next to its own.
            self.client_cert = os.path.join(self.dir, "client.pem")
            self.client_key = os.path.join(self.dir, "client-key.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-subj", "/CN=relayq-client", "-addext", "extendedKeyUsage=clientAuth",
                            "-days", "2", "-keyout", self.client_key, "-out", self.client_cert],
                           check=True, capture_output=True)
            ca_bundle = os.path.join(self.dir, "trusted.pem")
            with open(ca_bundle, "w") as f:
                f.write(open(self.cert).read() + open(self.client_cert).read())
        for _ in range(5):
            self.port = free_port()
            cmd = ["redis-server", "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1",
                   "--tls-cert-file", self.cert, "--tls-key-file", self.keyfile, "--tls-ca-cert-file", ca_bundle,
                   "--tls-auth-clients", "yes" if client_certs else "no", "--save", "", "--appendonly", "no",
                   "--dir", self.dir, "--logfile", os.path.join(self.dir, "redis.log")]
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            kw = dict(ssl_certfile=self.client_cert, ssl_keyfile=self.client_key) if client_certs else {}
            self.client = redis_py.Redis(host="localhost", port=self.port, ssl=True, ssl_ca_certs=self.cert,
                                         socket_timeout=10, **kw)
            try:
                wait_for(self._ping, timeout=5, what="redis-server over TLS")
                return
            except AssertionError:
                self.proc.kill()
                self.proc.wait()
        raise AssertionError("redis-server with TLS did not start")

    def _ping(self):
        if self.proc.poll() is not None:
            raise AssertionError("redis-server exited: %s" % open(os.path.join(self.dir, "redis.log")).read())
        try:
            return self.client.ping()
        except redis_py.ConnectionError:
            return False

    @property
    def url(self):
        return "rediss://localhost:%d" % self.port

    def key(self, *parts):
        return ":".join((self.prefix,) + tuple(str(p) for p in parts))

    def close(self):
        harness.stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def send(r, i, ca):
    return run_relayq(r, "--redis-ca-file", ca, "send", "--id", "tls%d" % i, "--tenant", "acme",
                      "--to", "u%d@dest.example" % i, "--subject", "s%d" % i, "--text", "over TLS")


def test_worker_and_cli_over_tls():
    n = 20
    with TlsRedis() as r, SmtpServer() as smtp:
        for i in range(n):
            p = send(r, i, r.cert)
            assert p.returncode == 0, p.stderr
        assert r.client.llen(r.key("queue", "default")) == n
        with Worker(r, platform_smtp=smtp, args=FAST + ["--redis-ca-file", r.cert]) as w:
            wait_for(lambda: len(smtp.messages()) >= n, timeout=20, what="every job sent over TLS")
            assert "connected to Redis" in w.log_text()
        # status over TLS, CA from the environment this time
        wait_for(lambda: r.client.hget(r.key("status", "tls%d" % (n - 1)), "state") == b"sent", timeout=10)
        st = run_relayq(r, "status", "tls%d" % (n - 1), env={"RELAYQ_REDIS_CA_FILE": r.cert})
        assert st.returncode == 0 and "sent" in st.stdout, (st.returncode, st.stdout, st.stderr)
        assert sorted(m["rcpt_tos"][0] for m in smtp.messages()) == sorted("u%d@dest.example" % i for i in range(n))


def test_wrong_ca_is_refused_and_nothing_touched():
    with TlsRedis() as r, SmtpServer() as smtp:
        assert send(r, 0, r.cert).returncode == 0
        before = sorted(r.client.keys("*"))
        queued = r.client.lrange(r.key("queue", "default"), 0, -1)
        # CLI: refused before anything is sent
        p = send(r, 1, r.wrong_ca)
        assert p.returncode == 1, (p.returncode, p.stderr)
        assert "failed TLS verification" in p.stderr and "--redis-ca-file" in p.stderr, p.stderr
        p = run_relayq(r, "status", "tls0")  # no CA at all: the system's store does not know ours
        assert p.returncode == 1 and "failed TLS verification" in p.stderr, p.stderr
        # Worker: a start-up error, exit 1, no silent downgrade
        w = Worker(r, platform_smtp=smtp, args=FAST + ["--redis-ca-file", r.wrong_ca])
        code = w.wait_exit(10)
        assert code == 1, code
        log = w.log_text()
        assert "certificate verify failed" in log and "--redis-ca-file" in log, log
        w.close()
        assert sorted(r.client.keys("*")) == before
        assert r.client.lrange(r.key("queue", "default"), 0, -1) == queued
        assert smtp.messages() == []
        # A plain redis:// to the TLS port is not a TLS connection either.
        p = run_relayq(r, "--redis", "redis://localhost:%d" % r.port, "status", "tls0")
        assert p.returncode == 1, p.stderr


def test_client_certificate():
    with TlsRedis(client_certs=True) as r, SmtpServer() as smtp:
        p = send(r, 0, r.cert)
        assert p.returncode == 1, "a server that requires a client certificate refused none: %s" % p.stderr
        p = run_relayq(r, "--redis-ca-file", r.cert, "--redis-cert", r.client_cert, "--redis-key", r.client_key, "send",
                       "--id", "cc0", "--tenant", "acme", "--to", "cc@dest.example", "--subject", "s",
                       "--text", "t")
        assert p.returncode == 0, p.stderr
        with Worker(r, platform_smtp=smtp, env={"RELAYQ_REDIS_CERT": r.client_cert, "RELAYQ_REDIS_KEY": r.client_key},
                    args=FAST + ["--redis-ca-file", r.cert]):
            wait_for(lambda: len(smtp.messages()) == 1, timeout=20, what="the job sent")


def test_c_and_python_examples_over_tls():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from test_producers import KEY_B64, final_json, run_example  # noqa: E402
    from test_c_example import cache_value  # noqa: E402
    build = harness.build_dir()
    # An ASan/UBSan librelayq needs an ASan/UBSan executable.
    san = (["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
           if cache_value("RELAYQ_SANITIZE") == "ON" else [])
    work = tempfile.mkdtemp(prefix="relayq-c-tls-")
    try:
        exe = os.path.join(work, "producer")
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "hiredis", "msgpack", "openssl"],
                               capture_output=True, text=True, check=True).stdout.split()
        subprocess.run(["cc", "-std=c17", "-O1"] + san + ["-o", exe, os.path.join(ROOT, "examples", "c", "producer.c"),
                        "-I", os.path.join(ROOT, "include"), os.path.join(build, "librelayq.a")] + flags,
                       check=True, capture_output=True, text=True)
        with TlsRedis() as r, SmtpServer(auth=("billing@acme.example", "pässwörd: 'tenant' \"42\""),
                                          require_auth=True) as smtp, \
                Worker(r, args=["--redis-ca-file", r.cert], env={"RELAYQ_SECRET_KEY": KEY_B64}):
            t0 = time.monotonic()
            p = run_example([exe], r, "acme-c", "inv-tls-c", smtp, extra={"RELAYQ_REDIS_CA_FILE": r.cert})
            assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
            assert final_json(p)["state"] == "sent"
            assert len(smtp.messages()) == 1
            print("C example over rediss:// sent in %.2f s" % (time.monotonic() - t0))
            p = run_example(["/usr/bin/python3", os.path.join(ROOT, "examples", "python", "relayq_producer.py")],
                            r, "acme-py", "inv-tls-py", smtp, extra={"RELAYQ_REDIS_CA_FILE": r.cert})
            assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
            assert final_json(p)["state"] == "sent"
            p = run_example(["/usr/bin/python3", os.path.join(ROOT, "examples", "python", "relayq_producer.py")],
                            r, "acme-py", "inv-tls-py2", smtp, extra={"RELAYQ_REDIS_CA_FILE": r.wrong_ca})
            assert p.returncode != 0 and "certificate verify failed" in p.stderr, (p.returncode, p.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_relayq(r, *args, **kw):
    # The CLI makes no outbound connections but to Redis: no network boundary flag.
    return harness.run_relayq(r, *args, allow_private_nets=None, **kw)


if __name__ == "__main__":
    harness.main(globals())
