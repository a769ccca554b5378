"""A short worker run under valgrind: no leaks, no invalid reads/writes,
and a clean exit 0 on SIGTERM."""

import os
import re
import shutil

import harness
from harness import RedisServer, SmtpServer, Worker, push_job, wait_status


def sanitized_build():
    try:
        return "RELAYQ_SANITIZE:BOOL=ON" in open(os.path.join(harness.build_dir(), "CMakeCache.txt")).read()
    except OSError:
        return False


def require_valgrind():
    # ASan and valgrind cannot run together; the plain build runs these
    # tests, and the sanitizer build has its own leak checker.
    harness.skip_unless(not sanitized_build(), "sanitizer build (valgrind runs on the plain build)",
                        required_in_ci=False)
    if not shutil.which("valgrind"):
        raise AssertionError("valgrind is not installed (scripts/deps.sh installs it)")


def valgrind_worker(r, smtp, args, vglog):
    """A worker under valgrind's leak and memory checks, its report in vglog."""
    return Worker(r, platform_smtp=smtp, args=args,
                  wrapper=["valgrind", "--leak-check=full", "--show-leak-kinds=definite,indirect",
                           "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99",
                           "--log-file=" + vglog])


def assert_valgrind_clean(vglog, rc):
    """No errors, no definite or indirect leak, exit 0 (rc: the worker's)."""
    report = open(vglog).read()
    summary = re.search(r"ERROR SUMMARY: (\d+) errors", report)
    assert summary and summary.group(1) == "0", report[-4000:]
    assert "definitely lost: 0 bytes" in report or "All heap blocks were freed" in report, report[-4000:]
    assert rc == 0, (rc, report[-4000:])


def test_worker_under_valgrind_has_no_leaks():
    require_valgrind()
    with RedisServer() as r, SmtpServer() as smtp:
        logdir = os.path.join(r.dir if hasattr(r, "dir") else "/tmp", "vg-%s" % r.prefix)
        os.makedirs(logdir, exist_ok=True)
        vglog = os.path.join(logdir, "valgrind.log")
        w = valgrind_worker(r, smtp, ["--platform-from", "no-reply@platform.example",
                                      "--retry-base-ms", "100", "--retry-max-ms", "200"], vglog)
        try:
            jobs = [
                {"v": 1, "id": "vg-ok", "tenant": "acme", "to": ["a@dest.example"], "subject": "ü",
                 "text": "t", "html": "<p>h</p>",
                 "attachments": [{"filename": "a.pdf", "content_type": "application/pdf", "data": b"%PDF" * 100}]},
                {"v": 1, "id": "vg-bad", "tenant": "acme", "text": "no recipient"},
                {"v": 1, "id": "vg-route", "tenant": "acme", "to": ["a@dest.example"], "text": "t",
                 "route": "missing"},
            ]
            for j in jobs:
                push_job(r, j)
            r.client.lpush(r.key("queue", "default"), b"\xc1not msgpack")
            assert wait_status(r, "vg-ok", timeout=60)["state"] == "sent"
            assert wait_status(r, "vg-bad", timeout=60)["state"] == "failed"
            assert wait_status(r, "vg-route", timeout=60)["state"] == "failed"
            rc = w.stop(timeout=60)
        finally:
            w.close()
        assert_valgrind_clean(vglog, rc)


if __name__ == "__main__":
    harness.main(globals())
