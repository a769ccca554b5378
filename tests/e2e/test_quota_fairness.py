"""Quotas, fairness and auto-reply limits across several workers.

Rolling quota: no more than hourly_quota messages in ANY window, checked
from the SMTP server's own receive times, with several worker processes.
Fairness: one tenant's big backlog does not delay another tenant's job."""

import time

import msgpack

import harness
from harness import RedisServer, SmtpServer, Worker, push_job, status, wait_for, wait_status

ARGS = ["--retry-base-ms", "200", "--retry-max-ms", "400", "--platform-from", "no-reply@platform.example"]


def job(jid, tenant, to="x@dest.example", **kw):
    j = {"v": 1, "id": jid, "tenant": tenant, "to": [to], "subject": jid, "text": "t"}
    j.update(kw)
    return j


def test_rolling_quota_across_workers():
    window_s, quota, n = 4, 3, 8
    env = {"RELAYQ_QUOTA_WINDOW_S": str(window_s)}
    with RedisServer() as r, SmtpServer() as smtp:
        r.client.hset(r.key("tenant", "limited"), mapping={"hourly_quota": str(quota)})
        workers = [Worker(r, platform_smtp=smtp, args=ARGS, env=env) for _ in range(3)]
        try:
            for i in range(n):
                push_job(r, job("q%d" % i, "limited", to="q%d@dest.example" % i))
            wait_for(lambda: any(status(r, "q%d" % i).get("state") == "deferred" for i in range(n)),
                     timeout=10, what="a deferred job")
            deferred = [status(r, "q%d" % i) for i in range(n)]
            d = next(s for s in deferred if s.get("state") == "deferred")
            assert d["error"] == "quota" and int(d["next_attempt_at"]) > int(d["updated_at"]), d
            # Another tenant is not held up meanwhile.
            t0 = time.time()
            push_job(r, job("free", "other"))
            assert wait_status(r, "free", timeout=5)["state"] == "sent"
            assert time.time() - t0 < 2.0
            for i in range(n):
                st = wait_status(r, "q%d" % i, timeout=30)
                assert st["state"] == "sent", st
        finally:
            for w in workers:
                w.close()
        times = sorted(m["received_at"] for m in smtp.messages() if m["rcpt_tos"][0].startswith("q"))
        assert len(times) == n
        for i in range(len(times) - quota):
            # quota+1 sends must span more than the window (tiny slack for clock reads).
            assert times[i + quota] - times[i] >= window_s - 0.05, (i, times)


def test_fairness_backlog_does_not_delay_other_tenant():
    backlog = 20000
    with RedisServer() as r, SmtpServer(keep_messages=False) as smtp:
        q = r.key("queue", "default")
        pipe = r.client.pipeline(transaction=False)
        for i in range(backlog):
            pipe.lpush(q, msgpack.packb(job("a%d" % i, "bulk-a", kind="bulk"), use_bin_type=True))
            if i % 2000 == 1999:
                pipe.execute()
        pipe.execute()
        with Worker(r, platform_smtp=smtp, args=ARGS):
            wait_for(lambda: smtp.messages_count() > 100, timeout=20, what="backlog flowing")
            t0 = time.time()
            push_job(r, job("b1", "tenant-b"))
            st = wait_status(r, "b1", timeout=10)
            took = time.time() - t0
            assert st["state"] == "sent", st
            assert took < 2.0, "tenant B waited %.2fs behind tenant A's backlog" % took
            assert smtp.messages_count() < backlog  # A's backlog was still draining


def test_auto_reply_once_per_window():
    env = {"RELAYQ_AUTO_REPLY_WINDOW_S": "3"}
    with RedisServer() as r, SmtpServer() as smtp, Worker(r, platform_smtp=smtp, args=ARGS, env=env):
        push_job(r, job("ar1", "acme", to="cust@dest.example", kind="auto_reply"))
        assert wait_status(r, "ar1")["state"] == "sent"
        push_job(r, job("ar2", "acme", to="cust@dest.example", kind="auto_reply"))
        st = wait_status(r, "ar2")
        assert st["state"] == "failed" and st["error"] == "policy", st
        assert "auto-reply" in st["detail"], st
        # Another tenant, or another recipient, is not affected.
        push_job(r, job("ar3", "other", to="cust@dest.example", kind="auto_reply"))
        push_job(r, job("ar4", "acme", to="cust2@dest.example", kind="auto_reply"))
        assert wait_status(r, "ar3")["state"] == "sent"
        assert wait_status(r, "ar4")["state"] == "sent"
        time.sleep(0)  # (no sleeping as synchronisation: the window is polled below)
        deadline = time.time() + 10
        while True:
            push_job(r, job("ar5-%d" % int(time.time() * 1000), "acme", to="cust@dest.example",
                            kind="auto_reply"))
            ids = [k.decode().rsplit(":", 1)[1] for k in r.client.keys(r.key("status", "ar5-*"))]
            sts = [wait_status(r, i) for i in ids]
            if any(s["state"] == "sent" for s in sts):
                break
            assert time.time() < deadline, "auto-reply still suppressed after its window"
            wait_for(lambda: False, timeout=0.5, what="") if False else time.sleep(0.5)


if __name__ == "__main__":
    harness.main(globals())
