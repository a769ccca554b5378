"""The tenant-isolation paths under valgrind (lines, shared breakers,
pause): a breaker that trips, a silent server whose line fills, a paused
and resumed tenant, jobs still waiting in lines at SIGTERM; no invalid
reads or writes, no leaks, exit 0."""

import time

import harness
from harness import RedisServer, SmtpServer, push_job, run_relayq, wait_for, wait_status
import test_isolation as ti
from test_valgrind import assert_valgrind_clean, require_valgrind, valgrind_worker


def test_isolation_paths_under_valgrind():
    require_valgrind()
    with RedisServer() as r, SmtpServer() as smtp, ti.RawServer("close") as closing, \
            ti.RawServer("silent") as silent:
        vglog = "%s/valgrind-%s.log" % (r.dir if hasattr(r, "dir") else "/tmp", r.prefix)
        w = valgrind_worker(r, smtp, ["--mode", "onprem", "--retry-base-ms", "100", "--retry-max-ms", "200",
                                      "--smtp-connect-timeout-ms", "2000", "--concurrency", "8"], vglog)
        try:
            ti.raw_tenant(r, "ten-c", closing.port)
            ti.raw_tenant(r, "ten-s", silent.port)
            ti.push_many(r, [ti.job("c-%d" % i, "ten-c") for i in range(12)])
            ti.push_many(r, [ti.job("s-%d" % i, "ten-s") for i in range(40)])
            assert run_relayq(r, "tenant", "pause", "ten-p", "--reason", "x").returncode == 0
            ti.push_many(r, [ti.job("p-%d" % i, "ten-p") for i in range(3)])
            push_job(r, ti.job("ok-1", "ten-ok"))
            assert wait_status(r, "ok-1", timeout=60)["state"] == "sent"
            wait_for(lambda: ti.breaker(r, "ten-c").get("smtp.state") == "open", timeout=60, what="the trip")
            wait_status(r, "p-0", states=("deferred",), timeout=60)
            assert run_relayq(r, "tenant", "resume", "ten-p").returncode == 0
            assert wait_status(r, "p-0", timeout=60)["state"] == "sent"
            time.sleep(1)
            rc = w.stop(timeout=90)
        finally:
            w.close()
        assert_valgrind_clean(vglog, rc)


if __name__ == "__main__":
    harness.main(globals())
