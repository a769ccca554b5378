"""Helpers the Python benchmarks share: a free loopback port and a private
redis-server (no persistence, 127.0.0.1 only) that answers PING."""
import socket
import subprocess
import sys
import time

import redis


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(workdir, *extra, port=None, timeout=10):
    """Starts redis-server in workdir (extra: more of its options) and
    waits until it answers PING. Returns (process, port); exits with a
    message when it does not come up."""
    port = port or free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", workdir, *extra], stdout=subprocess.DEVNULL)
    r = redis.Redis(port=port)
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            sys.exit("bench: redis-server exited at start (code %s)" % proc.returncode)
        try:
            r.ping()
            return proc, port
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("bench: redis-server did not answer on port %d within %d s" % (port, timeout))
