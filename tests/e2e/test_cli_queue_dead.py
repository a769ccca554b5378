"""End-to-end: `relayq dead list|requeue` and `relayq queue stats`.

Against a real redis-server, the SMTP fixture and the worker: a job a
server refuses for good lands in P:dead and shows in `dead list`; after the
cause is fixed, `dead requeue ID` (and `--all`) sends it again and empties
the list; a requeue is atomic (two at once requeue once) and resends only
to recipients that have not accepted the message. `queue stats --json` is
checked number for number against a state built by hand, and against a
live worker.
"""

import json
import subprocess
import time

import msgpack

import harness
from harness import (RedisServer, SmtpServer, Worker, binary, push_job, run_relayq, status,
                     wait_for, wait_status)

FAST = ["--retry-base-ms", "200", "--retry-max-ms", "400",
        "--platform-from", "no-reply@platform.example"]


def reject_all(address, state):
    return "550 5.1.1 no such user"


def job(jid, to=("a@dest.example",), tenant="acme", **kw):
    j = {"v": 1, "id": jid, "tenant": tenant, "to": list(to), "subject": "s", "text": "t"}
    j.update(kw)
    return j


def dead_list(r, *args):
    p = run_relayq(r, "dead", "list", "--json", *args)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def one_error_line(p):
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("relayq: "), p.stderr
    return lines[0]


def queue_jobs(r, queue):
    return [msgpack.unpackb(p, raw=False) for p in r.client.lrange(r.key("queue", queue), 0, -1)]


def events(r):
    ps = r.client.pubsub()
    ps.subscribe(r.key("events"))
    wait_for(lambda: ps.get_message(timeout=0.1), what="subscribed")
    return ps


def drain(ps):
    out = []
    while True:
        m = ps.get_message(timeout=0.05)
        if not m:
            return out
        if m["type"] == "message":
            out.append(json.loads(m["data"]))


# ---- dead list / requeue with a worker ---------------------------------------------

def test_failed_job_listed_then_requeued_and_delivered():
    with RedisServer() as r, SmtpServer(rcpt_reply=reject_all) as smtp, \
            Worker(r, platform_smtp=smtp, args=FAST):
        push_job(r, job("d1", to=["gone@dest.example"]))
        st = wait_status(r, "d1")
        assert st["state"] == "failed" and st["error"] == "recipient_rejected", st
        wait_for(lambda: r.client.llen(r.key("dead")) == 1, what="payload in P:dead")
        payload = r.client.lindex(r.key("dead"), 0)

        listed = dead_list(r)
        assert listed["total"] == 1 and listed["shown"] == 1, listed
        (entry,) = listed["jobs"]
        assert entry["index"] == 0 and entry["id"] == "d1" and entry["tenant"] == "acme", entry
        assert entry["queue"] == "default" and entry["attempts"] == 1, entry
        assert entry["size"] == len(payload), entry
        assert entry["state"] == "failed" and entry["error"] == "recipient_rejected", entry
        assert entry["detail"] == st["detail"] and entry["detail"], entry

        text = run_relayq(r, "dead", "list")
        assert text.returncode == 0, text.stderr
        assert "d1" in text.stdout and "recipient_rejected: " + st["detail"] in text.stdout, \
            text.stdout

        # The cause is fixed: the same job goes again and is delivered.
        smtp.rcpt_reply = None
        ps = events(r)
        p = run_relayq(r, "dead", "requeue", "d1")
        assert p.returncode == 0, p.stderr
        assert p.stdout == "requeued d1 (tenant acme) to queue default\n", p.stdout
        st = wait_status(r, "d1")
        assert st["state"] == "sent", st
        assert st["attempts"] == "1" and st["error"] == "" and "requeued_at" in st, st
        assert int(st["requeued_at"]) <= int(st["sent_at"]), st
        msgs = smtp.wait_messages(1)
        assert msgs[0]["rcpt_tos"] == ["gone@dest.example"], msgs[0]
        assert r.client.llen(r.key("dead")) == 0
        assert dead_list(r) == {"total": 0, "shown": 0, "jobs": []}

        seen = wait_for(lambda: [e for e in drain(ps) if e["id"] == "d1"], what="events")
        queued = seen[0]
        assert queued["state"] == "queued" and queued["attempts"] == 0, seen
        assert queued["tenant"] == "acme" and isinstance(queued["ts"], int), seen

        # Nothing left to requeue: exit 1, one line.
        p = run_relayq(r, "dead", "requeue", "d1")
        assert p.returncode == 1 and "d1 is not in P:dead" in one_error_line(p), p.stderr
        assert smtp.messages_count() == 1


def test_requeue_all_to_another_queue():
    with RedisServer() as r, SmtpServer(rcpt_reply=reject_all) as smtp:
        with Worker(r, platform_smtp=smtp, args=FAST):
            push_job(r, job("a1"))
            push_job(r, job("a2", tenant="beta", cc=["c@dest.example"]))
            r.client.lpush(r.key("queue", "default"), b"\xc1")  # not msgpack at all
            for jid in ("a1", "a2"):
                assert wait_status(r, jid)["state"] == "failed"
            wait_for(lambda: r.client.llen(r.key("dead")) == 3, what="3 dead payloads")

        listed = dead_list(r)
        undecodable = [e for e in listed["jobs"] if e.get("undecodable")]
        assert len(undecodable) == 1 and undecodable[0]["size"] == 1, listed
        assert undecodable[0]["id"] is None and undecodable[0]["reason"], listed
        text = run_relayq(r, "dead", "list").stdout
        assert "(undecodable, 1 bytes)" in text, text

        # --all --queue: both decodable jobs to `other`, the raw one stays.
        p = run_relayq(r, "dead", "requeue", "--all", "--queue", "other")
        assert p.returncode == 0, p.stderr
        assert "requeued a1 (tenant acme) to queue other" in p.stdout, p.stdout
        assert "requeued a2 (tenant beta) to queue other" in p.stdout, p.stdout
        assert "requeued 2 of 3 dead job(s)" in p.stdout, p.stdout
        assert "(undecodable, 1 bytes)" in p.stderr and "cannot be requeued" in p.stderr, p.stderr
        jobs = queue_jobs(r, "other")
        assert sorted(j["id"] for j in jobs) == ["a1", "a2"], jobs
        for j in jobs:
            assert j["_queue"] == "other" and "_attempts" not in j and "_rcpt" not in j, j
            assert status(r, j["id"])["state"] == "queued"
            assert status(r, j["id"])["attempts"] == "0"
        assert r.client.llen(r.key("dead")) == 1
        assert r.client.ttl(r.key("status", "a1")) == -1  # no longer expiring

        smtp.rcpt_reply = None
        with Worker(r, platform_smtp=smtp, args=FAST + ["--queue", "other"]):
            for jid in ("a1", "a2"):
                assert wait_status(r, jid)["state"] == "sent"
        rcpts = sorted(a for m in smtp.messages() for a in m["rcpt_tos"])
        assert rcpts == ["a@dest.example", "a@dest.example", "c@dest.example"], rcpts

        # Only the undecodable payload is left: nothing can be requeued.
        p = run_relayq(r, "dead", "requeue", "--all")
        assert p.returncode == 1 and "requeued 0 of 1" in p.stdout, (p.stdout, p.stderr)


def test_requeue_resends_only_to_recipients_not_accepted():
    """A dead payload whose _accepted says some recipients have it: only the
    _rcpt ones go again. One nobody accepted: every recipient goes again."""
    with RedisServer() as r, SmtpServer() as smtp:
        half = job("p1", to=["x@dest.example", "y@dest.example", "z@dest.example"],
                   _queue="default", _attempts=4, _rcpt=["z@dest.example"], _accepted=1,
                   _rejected=1)
        none = job("p2", to=["x@dest.example", "y@dest.example"], _queue="default",
                   _attempts=4, _rcpt=["y@dest.example"], _accepted=0, _rejected=1)
        for j in (half, none):
            r.client.lpush(r.key("dead"), msgpack.packb(j, use_bin_type=True))
        p = run_relayq(r, "dead", "requeue", "--all")
        assert p.returncode == 0, p.stderr
        by_id = {j["id"]: j for j in queue_jobs(r, "default")}
        assert by_id["p1"]["_rcpt"] == ["z@dest.example"] and by_id["p1"]["_accepted"] == 1
        assert "_rcpt" not in by_id["p2"] and "_accepted" not in by_id["p2"], by_id["p2"]
        with Worker(r, platform_smtp=smtp, args=FAST):
            st1, st2 = wait_status(r, "p1"), wait_status(r, "p2")
        # p1: y was rejected for good before and is not tried again (it
        # cannot be told apart from x, which has the message): partial.
        assert st1["state"] == "partial" and st1["recipients"] == "3", st1
        assert st1["accepted"] == "2" and st1["rejected"] == "1", st1
        assert st2["state"] == "sent" and st2["accepted"] == "2", st2
        assert r.client.llen(r.key("queue", "default")) == 0
        sent = sorted(sorted(m["rcpt_tos"]) for m in smtp.messages())
        assert sent == [["x@dest.example", "y@dest.example"], ["z@dest.example"]], sent


def test_two_requeues_at_once_requeue_once():
    with RedisServer() as r:
        r.client.hset(r.key("status", "twice"), mapping={"state": "failed", "tenant": "acme"})
        r.client.lpush(r.key("dead"), msgpack.packb(job("twice", _queue="default", _attempts=8),
                                                    use_bin_type=True))
        cmd = [binary("relayq"), "--redis", r.url, "--prefix", r.prefix, "dead", "requeue", "twice"]
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        codes = sorted(p.wait(30) for p in procs)
        for p in procs:
            p.stdout.close()
            p.stderr.close()
        assert codes == [0, 1], codes
        assert r.client.llen(r.key("queue", "default")) == 1
        assert r.client.llen(r.key("dead")) == 0

        # A second dead copy of a job that is already queued is refused.
        r.client.lpush(r.key("dead"), msgpack.packb(job("twice", _queue="default"),
                                                    use_bin_type=True))
        p = run_relayq(r, "dead", "requeue", "twice")
        assert p.returncode == 1 and "already on its way (state queued)" in one_error_line(p)
        assert r.client.llen(r.key("queue", "default")) == 1
        assert r.client.llen(r.key("dead")) == 1


def test_dead_arguments():
    with RedisServer() as r:
        for args in (["dead"], ["dead", "requeue"], ["dead", "requeue", "x", "--all"],
                     ["dead", "requeue", "bad id"], ["dead", "list", "--limit", "0"],
                     ["dead", "requeue", "--all", "--queue", "no spaces"], ["dead", "purge"]):
            p = run_relayq(r, *args)
            assert p.returncode == 2, (args, p.returncode, p.stderr)
            one_error_line(p)
        p = run_relayq(r, "dead", "requeue", "--all")
        assert p.returncode == 0 and p.stdout == "P:dead is empty; nothing to requeue.\n"
        p = run_relayq(r, "dead", "list")
        assert p.returncode == 0 and p.stdout == "P:dead is empty.\n"
        p = run_relayq(r, "dead", "--help")
        assert p.returncode == 0 and "requeue" in p.stdout


# ---- queue stats ----------------------------------------------------------------------

def test_stats_match_a_state_built_by_hand():
    with RedisServer() as r:
        c, k = r.client, r.key
        now = int(time.time() * 1000)
        c.lpush(k("queue", "default"), b"j1", b"j2", b"j3")
        depths = {"acme": 6, "beta": 5, "gamma": 4, "delta": 3, "eps": 2, "zeta": 1}
        for t, n in depths.items():
            c.rpush(k("tq", "bulk", t), *[b"p"] * n)
            c.lpush(k("tring", "bulk"), t)
        c.lpush(k("tring", "default"), "solo")
        c.rpush(k("tq", "default", "solo"), b"p", b"p")
        pause_until = now + 60000
        c.set(k("tpause", "acme"), pause_until, px=60000)
        c.set(k("tpause", "nobacklog"), pause_until, px=60000)  # not in a ring: not shown
        c.zadd(k("delayed"), {b"due1": now - 1000, b"due2": 1, b"l1": now + 3600000,
                               b"l2": now + 7200000, b"l3": now + 9999999})
        c.hset(k("workers"), mapping={"w-live": "default,bulk", "w-dead": "default,reports"})
        c.hset(k("worker", "w-live"), mapping={
            "host": "h1", "pid": "4242", "started_at": str(now - 100000), "inflight": "2",
            "sent": "17", "failed": "3", "version": "0.1.0", "queues": "default,bulk",
            "updated_at": str(now - 1500)})
        c.pexpire(k("worker", "w-live"), 60000)
        c.rpush(k("inflight", "w-live"), b"x", b"y")
        c.rpush(k("inflight", "w-dead"), b"x", b"y", b"z")
        c.rpush(k("inflight", "w-orphan"), b"x")
        c.lpush(k("dead"), b"d1", b"d2", b"d3", b"d4")
        # Someone else's keys under another prefix that shares the start.
        c.lpush(r.prefix + "x:queue:default", b"no")
        c.hset(r.prefix + "x:workers", "w-other", "other")

        t0 = int(time.time() * 1000)
        p = run_relayq(r, "queue", "stats", "--json")
        t1 = int(time.time() * 1000)
        assert p.returncode == 0, p.stderr
        assert p.stderr == "", p.stderr
        got = json.loads(p.stdout)
        assert t0 <= got.pop("now") <= t1
        live = got["workers"][0]
        age = live.pop("heartbeat_age_ms")
        assert 1500 <= age <= 1500 + (t1 - now), age
        top = [{"tenant": t, "depth": n} for t, n in list(depths.items())[:5]]
        expected = {
            "queues": [
                {"name": "bulk", "ready": 21, "shared": 0, "sorted": 21,
                 "tenants_with_backlog": 6, "top_tenants": top,
                 "paused_tenants": [{"tenant": "acme", "depth": 6, "why": "quota", "until": pause_until}]},
                {"name": "default", "ready": 5, "shared": 3, "sorted": 2,
                 "tenants_with_backlog": 1, "top_tenants": [{"tenant": "solo", "depth": 2}],
                 "paused_tenants": []},
                {"name": "reports", "ready": 0, "shared": 0, "sorted": 0,
                 "tenants_with_backlog": 0, "top_tenants": [], "paused_tenants": []},
            ],
            "delayed": {"due": 2, "later": 3},
            "dead": 4,
            "inflight": [
                {"worker": "w-dead", "jobs": 3, "worker_state": "dead"},
                {"worker": "w-live", "jobs": 2, "worker_state": "live"},
                {"worker": "w-orphan", "jobs": 1, "worker_state": "unregistered"},
            ],
            "inflight_total": 6,
            "workers": [
                {"id": "w-live", "host": "h1", "pid": 4242, "version": "0.1.0",
                 "queues": ["default", "bulk"], "inflight": 2, "sent": 17, "failed": 3,
                 "started_at": now - 100000, "updated_at": now - 1500, "inflight_list": 2},
            ],
            "dead_workers": [{"id": "w-dead", "queues": ["default", "reports"],
                              "awaiting_reclaim": 3}],
        }
        assert got == expected, json.dumps(got, indent=1)

        text = run_relayq(r, "queue", "stats")
        assert text.returncode == 0, text.stderr
        out = text.stdout
        assert "bulk top tenants: acme 6, beta 5, gamma 4, delta 3, eps 2, +1 more" in out, out
        assert "bulk paused: acme (quota, " in out, out
        assert "delayed: 2 due now, 3 later" in out and "dead: 4" in out, out
        assert "in flight: 6" in out, out
        assert "w-dead  dead, jobs awaiting reclaim: 3  queues: default,reports" in out, out
        row = [l.split() for l in out.splitlines() if l.split()[:1] == ["w-live"]
               and "h1" in l]
        assert row and row[0][:3] == ["w-live", "h1", "4242"] and row[0][-4:] == \
            ["17", "3", "0.1.0", "default,bulk"], out

        # An empty keyspace is a valid answer, not an error.
        empty = run_relayq(r, "queue", "stats", "--json", "--prefix", "nothing-here")
        assert empty.returncode == 0, empty.stderr
        assert json.loads(empty.stdout)["queues"] == []


def test_stats_prefix_with_glob_characters():
    with RedisServer() as r:
        r.client.lpush("a*b:queue:mine", b"1")
        r.client.lpush("aXb:queue:theirs", b"1")
        p = run_relayq(r, "queue", "stats", "--json", "--prefix", "a*b")
        assert p.returncode == 0, p.stderr
        assert [q["name"] for q in json.loads(p.stdout)["queues"]] == ["mine"]


def test_stats_with_a_live_worker():
    with RedisServer() as r, SmtpServer() as smtp, \
            Worker(r, platform_smtp=smtp, args=FAST) as w:
        w.wait_heartbeat()
        push_job(r, job("s1"))
        assert wait_status(r, "s1")["state"] == "sent"

        def sent_one():
            s = json.loads(run_relayq(r, "queue", "stats", "--json").stdout)
            return s if s["workers"] and s["workers"][0]["sent"] == 1 else None
        s = wait_for(sent_one, timeout=20, what="heartbeat counting the sent job")
        (wk,) = s["workers"]
        assert wk["id"] == w.id and wk["pid"] == w.proc.pid and wk["queues"] == ["default"], wk
        assert wk["failed"] == 0 and wk["version"] and 0 <= wk["heartbeat_age_ms"] < 15000, wk
        assert [q["name"] for q in s["queues"]] == ["default"], s
        assert s["queues"][0]["ready"] == 0 and s["dead"] == 0 and s["dead_workers"] == [], s


def test_queue_arguments():
    with RedisServer() as r:
        for args in (["queue"], ["queue", "depth"], ["queue", "stats", "extra"],
                     ["queue", "stats", "--bogus"]):
            p = run_relayq(r, *args)
            assert p.returncode == 2, (args, p.returncode, p.stderr)
            one_error_line(p)
        bad = harness.free_port()
        p = subprocess.run([binary("relayq"), "--redis", "redis://127.0.0.1:%d" % bad,
                            "queue", "stats"], capture_output=True, text=True, timeout=30)
        assert p.returncode == 1 and p.stdout == "", (p.stdout, p.stderr)
        one_error_line(p)


if __name__ == "__main__":
    harness.main(globals())
