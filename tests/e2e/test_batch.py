"""Batched CLAIM and FINISH (worker/batch.c): the script calls of one loop
turn go to Redis as one BATCH call. What batching could break, end to end:
each job of a batch ends exactly as it would alone (an idempotent
duplicate, another tenant's id, an over-quota job, a job whose own part
fails, normal jobs side by side), and a worker killed with batches in
flight loses nothing, with duplicates bounded by what it held."""

import collections
import re

import msgpack

import harness
from harness import RedisServer, SmtpServer, Worker, push_job, status, wait_for, wait_status

ARGS = ["--retry-base-ms", "200", "--retry-max-ms", "500", "--platform-from", "no-reply@platform.example",
        "--heartbeat-ttl-s", "3"]


def job(jid, tenant, to=None, **kw):
    j = {"v": 1, "id": jid, "tenant": tenant, "to": [to or jid + "@dest.example"], "subject": jid,
         "text": "text of " + jid}
    j.update(kw)
    return j


def largest_batch_args(r):
    """The most arguments one EVALSHA carried, from SLOWLOG (which shows 32
    and says how many more)."""
    most = 0
    for e in r.client.slowlog_get(100000):
        cmd = e["command"]
        cmd = cmd.decode("utf-8", "replace") if isinstance(cmd, bytes) else cmd
        if not cmd.upper().startswith("EVALSHA"):
            continue
        m = re.search(r"\.\.\. \((\d+) more arguments\)", cmd)
        most = max(most, 31 + int(m.group(1)) if m else len(cmd.split(" ")))
    return most


def test_mixed_batch_each_job_ends_as_it_would_alone():
    with RedisServer() as r, SmtpServer() as smtp:
        r.client.config_set("slowlog-log-slower-than", 0)
        r.client.config_set("slowlog-max-len", 100000)
        r.client.hset(r.key("tenant", "limited"), mapping={"hourly_quota": "2"})
        # An idempotent duplicate: tenant-a's job already sent.
        sent_before = {"state": "sent", "tenant": "tenant-a", "created_at": "1", "attempts": "1"}
        r.client.hset(r.key("status", "dup-1"), mapping=sent_before)
        # Another tenant's id: tenant-b's job reusing tenant-a's "owned-1".
        owned = {"state": "sent", "tenant": "tenant-a", "created_at": "2", "attempts": "1"}
        r.client.hset(r.key("status", "owned-1"), mapping=owned)
        # A job whose own part of the batch fails: its status key is not a hash.
        r.client.set(r.key("status", "broken-1"), "not a hash")
        jobs = [job("dup-1", "tenant-a"), job("owned-1", "tenant-b"), job("broken-1", "tenant-c")]
        jobs += [job("lim-%d" % i, "limited") for i in range(4)]
        jobs += [job("ok-%d" % i, "tenant-c") for i in range(20)]
        for j in jobs:
            push_job(r, j)
        with Worker(r, platform_smtp=smtp, args=ARGS + ["--concurrency", "64", "--fetch-batch", "64"]) as w:
            for i in range(20):
                assert wait_status(r, "ok-%d" % i)["state"] == "sent"
            lim = [wait_status(r, "lim-%d" % i, states=("sent", "deferred")) for i in range(4)]
            assert sorted(s["state"] for s in lim) == ["deferred", "deferred", "sent", "sent"], lim
            assert all(s["error"] == "quota" for s in lim if s["state"] == "deferred"), lim
            dead = lambda: [msgpack.unpackb(p, raw=False) for p in r.client.lrange(r.key("dead"), 0, -1)]
            wait_for(lambda: any(d.get("id") == "owned-1" and d.get("tenant") == "tenant-b" for d in dead()),
                     what="tenant-b's job in P:dead")
            wait_for(lambda: "claim script failed" in w.log_text(), what="broken-1's own error in the log")
            wait_for(lambda: r.client.llen(r.key("inflight", w.id)) <= 1, what="inflight down to broken-1")
            # The failing job's error stayed its own: it is still held (in
            # inflight or handed back), never finished, and nothing else failed.
            assert r.client.type(r.key("status", "broken-1")) == b"string"
        assert status(r, "dup-1") == sent_before
        assert status(r, "owned-1") == owned
        rcpts = collections.Counter(m["rcpt_tos"][0] for m in smtp.messages())
        assert "dup-1@dest.example" not in rcpts and "owned-1@dest.example" not in rcpts, rcpts
        assert "broken-1@dest.example" not in rcpts, rcpts
        assert all(rcpts["ok-%d@dest.example" % i] == 1 for i in range(20)), rcpts
        assert sum(rcpts["lim-%d@dest.example" % i] for i in range(4)) == 2, rcpts
        # They did share script calls: one carried several jobs' CLAIMs
        # (a single CLAIM is under 50 arguments).
        assert largest_batch_args(r) > 200, largest_batch_args(r)


def test_tenant_counters_summed_per_batch():
    """BATCH sums the tenant counters (P:stats:T and the day's hash) over
    its FINISH calls: the totals are what one count per job gives, the
    day's hash gets its 40-day TTL, and when a tenant's counters cannot be
    written the calls counted in that write answer the error (the job's
    status is written; the worker retries it until the write goes through,
    and then counts it once)."""
    import time
    with RedisServer() as r, SmtpServer() as smtp:
        broken = r.key("stats", "tenant-z")
        r.client.set(broken, "not a hash")
        jobs = [job("a-%d" % i, "tenant-a") for i in range(40)] + [job("b-%d" % i, "tenant-b") for i in range(25)]
        jobs.insert(30, job("z-1", "tenant-z"))
        for j in jobs:
            push_job(r, j)
        with Worker(r, platform_smtp=smtp, args=ARGS + ["--concurrency", "64", "--fetch-batch", "64"]) as w:
            for j in jobs:
                assert wait_status(r, j["id"])["state"] == "sent"
            wait_for(lambda: "status write failed; will retry" in w.log_text(), what="tenant-z's counter error")
            assert r.client.type(broken) == b"string"
            r.client.delete(broken)
            wait_for(lambda: r.client.hget(broken, "sent") == b"1", timeout=15, what="tenant-z counted after the fix")
            wait_for(lambda: r.client.llen(r.key("inflight", w.id)) == 0, what="inflight empty")
        day = time.strftime("%Y%m%d", time.gmtime())
        for t, n in (("tenant-a", 40), ("tenant-b", 25), ("tenant-z", 1)):
            assert r.client.hget(r.key("stats", t), "sent") == str(n).encode(), (t, r.client.hgetall(r.key("stats", t)))
            daily = r.key("stats", t) + ":" + day
            assert r.client.hget(daily, "sent") == str(n).encode(), (t, r.client.hgetall(daily))
            assert 39 * 86400 * 1000 < r.client.pttl(daily) <= 40 * 86400 * 1000, r.client.pttl(daily)
        # Sending once each: the retried FINISH of tenant-z's job sent nothing again.
        assert smtp.messages_count() == len(jobs), smtp.messages_count()


def test_job_whose_lrem_was_lost_is_not_sent_again():
    """A job still in an inflight list with its final status written (an
    LREM lost, a copy of a job sent before): the worker that reclaims the
    list acknowledges it ('dup') without sending it again, and the list
    ends empty."""
    with RedisServer() as r, SmtpServer() as smtp:
        j = job("lost-1", "tenant-a")
        r.client.hset(r.key("status", "lost-1"), mapping={"state": "sent", "tenant": "tenant-a", "created_at": "1",
                                                         "attempts": "1", "accepted": "1"})
        r.client.lpush(r.key("inflight", "w-lost"), msgpack.packb(j, use_bin_type=True))
        push_job(r, job("fresh-1", "tenant-a"))
        with Worker(r, platform_smtp=smtp, args=ARGS, worker_id="w-lost") as w:
            assert wait_status(r, "fresh-1")["state"] == "sent"
            wait_for(lambda: "duplicate job acknowledged without sending" in w.log_text(), what="lost-1 acknowledged")
            wait_for(lambda: r.client.llen(r.key("inflight", "w-lost")) == 0, what="inflight empty")
        assert status(r, "lost-1")["state"] == "sent"
        rcpts = [m["rcpt_tos"][0] for m in smtp.messages()]
        assert rcpts == ["fresh-1@dest.example"], rcpts


def test_kill9_mid_batch_loses_nothing_duplicates_bounded():
    n, conc = 1500, 64
    with RedisServer() as r, SmtpServer(keep_messages=True) as smtp:
        pipe = r.client.pipeline(transaction=False)
        for i in range(n):
            pipe.lpush(r.key("queue", "default"), msgpack.packb(job("k%d" % i, "t%d" % (i % 5)), use_bin_type=True))
        pipe.execute()
        w1 = Worker(r, platform_smtp=smtp, args=ARGS + ["--concurrency", str(conc)])
        wait_for(lambda: smtp.messages_count() >= 300, timeout=30, what="batches flowing")
        w1.kill()
        w1.wait_exit(5)
        with Worker(r, platform_smtp=smtp, args=ARGS + ["--concurrency", str(conc)]):
            wait_for(lambda: all(status(r, "k%d" % i).get("state") == "sent" for i in range(n)), timeout=60,
                     interval=0.2, what="every job sent")
            wait_for(lambda: r.client.llen(r.key("inflight", w1.id)) == 0, timeout=10, what="w1's list reclaimed")
        w1.close()
        counts = collections.Counter(m["rcpt_tos"][0] for m in smtp.messages())
        assert set(counts) == {"k%d@dest.example" % i for i in range(n)}
        dups = sum(c - 1 for c in counts.values())
        assert dups <= conc, "duplicates %d exceed the in-flight bound %d" % (dups, conc)
        assert r.client.llen(r.key("queue", "default")) == 0
        # Every job's status is final and its own: nothing was left `sending`.
        some = [status(r, "k%d" % i) for i in range(0, n, 97)]
        assert all(s["state"] == "sent" and s["tenant"] == "t%d" % (i * 97 % 5) for i, s in enumerate(some)), some


if __name__ == "__main__":
    harness.main(globals())
