"""The worker's memory budget (--max-inflight-bytes, CONTRACT.md v1.1;
docs/configuration.md "Memory budget") end to end: a small budget, big jobs
of one tenant and small jobs of another: everything is sent, the big ones
never exceed the budget together, the small ones are not stuck behind
them; a job larger than the whole budget goes alone and nothing else waits
longer than its send; the worker's resident memory follows the budget.
Real redis-server, aiosmtpd (slow DATA, so jobs overlap) and worker."""

import os

import msgpack

import harness
from harness import (MailgunFake, RedisServer, SmtpServer, parse_message, push_job, set_tenant, status,
                     wait_status)
from test_metrics import metrics_worker, scrape

MB = 1 << 20


def job(jid, tenant, attach=0):
    j = {"v": 1, "id": jid, "tenant": tenant, "to": ["%s@dest.example" % jid], "subject": jid,
         "text": "see attached" if attach else "hello"}
    if attach:
        # Incompressible-looking but cheap to make: the id repeated.
        data = (jid.encode() * (attach // len(jid) + 1))[:attach]
        j["attachments"] = [{"filename": "report.pdf", "content_type": "application/pdf", "data": data}]
    return j


def txn_of(smtp, jid):
    rcpt = "%s@dest.example" % jid
    for t in smtp.transactions():
        if any(r["address"] == rcpt for r in t["rcpts"]) and t["ended_at"]:
            return t
    raise AssertionError("no transaction for %s" % jid)


def overlapping(txns):
    """Most transactions open at one instant."""
    edges = sorted([(t["started_at"], 1) for t in txns] + [(t["ended_at"], -1) for t in txns],
                   key=lambda e: (e[0], e[1]))
    cur = best = 0
    for _, d in edges:
        cur += d
        best = max(best, cur)
    return best


def peak_rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def sanitized():
    return "asan" in os.environ.get("RELAYQ_BUILD_DIR", "") or "san" in harness.build_dir().lower()


def test_big_jobs_within_budget_small_ones_not_stuck():
    budget = 16 * MB
    with RedisServer() as r, SmtpServer(delay=0.3) as smtp, \
            metrics_worker(r, smtp, args=["--max-inflight-bytes", budget, "--concurrency", "64",
                                          "--platform-from", "no-reply@platform.example"]) as w:
        bigs = ["big-%d" % i for i in range(8)]
        smalls = ["small-%d" % i for i in range(30)]
        for jid in bigs:
            push_job(r, job(jid, "reports", attach=6 * MB))
        for jid in smalls:
            push_job(r, job(jid, "alerts"))
        for jid in bigs + smalls:
            assert wait_status(r, jid, timeout=60)["state"] == "sent", jid
        big_txns = [txn_of(smtp, j) for j in bigs]
        # 6 MB jobs in a 16 MB budget, one tenant at most half of it: never
        # more than two of them at once (64 without the budget).
        assert overlapping(big_txns) <= 2, overlapping(big_txns)
        # The small jobs of the other tenant went while big ones waited in
        # Redis: all of them were done before the last big one.
        last_big = max(t["ended_at"] for t in big_txns)
        last_small = max(txn_of(smtp, j)["ended_at"] for j in smalls)
        assert last_small < last_big, (last_small, last_big)
        e = scrape(w.metrics_port)
        assert e.value("relayq_budget_waits_total") > 0
        assert e.value("relayq_inflight_bytes_limit") == budget
        assert e.value("relayq_inflight_bytes") == 0
        # A job left for the budget is not an attempt.
        for jid in bigs:
            assert status(r, jid)["attempts"] == "1", status(r, jid)
        if not sanitized():
            rss = peak_rss_mb(w.proc.pid)
            # Measured: 47 MB (12 MB of payload held at most, the base, and
            # transient copies: the fetch reply being read, a finishing
            # job's FINISH command); 74 MB without the budget.
            assert rss < 60, "peak RSS %.1f MB with a 16 MB budget" % rss


def test_one_tenant_cannot_take_the_whole_budget():
    """A 16 MB budget, tenant A's 3 MB jobs first in the queue and tenant
    B's behind them: A holds at most half the budget (3 jobs) while B has
    work, so B's jobs go beside A's instead of after them."""
    with RedisServer() as r, SmtpServer(delay=0.5) as smtp, \
            metrics_worker(r, smtp, args=["--max-inflight-bytes", 16 * MB,
                                          "--platform-from", "no-reply@platform.example"]):
        a = ["a-%d" % i for i in range(8)]
        b = ["b-%d" % i for i in range(3)]
        # All at once (one MULTI), so both tenants have work from the start:
        # alone, a tenant may use the whole budget.
        p = r.client.pipeline(transaction=True)
        for jid, t in [(j, "tenant-a") for j in a] + [(j, "tenant-b") for j in b]:
            p.lpush(r.key("queue", "default"), msgpack.packb(job(jid, t, attach=3 * MB), use_bin_type=True))
        p.execute()
        for jid in a + b:
            assert wait_status(r, jid, timeout=60)["state"] == "sent", jid
        a_txns = [txn_of(smtp, j) for j in a]
        b_txns = [txn_of(smtp, j) for j in b]
        # While B has work A holds at most its share, 8 MB: two of its 3 MB
        # jobs (without the share it would hold five, 15 MB). Once B is done
        # A may use the whole budget.
        last_b = max(t["started_at"] for t in b_txns)
        while_b = [dict(t, ended_at=min(t["ended_at"], last_b)) for t in a_txns if t["started_at"] < last_b]
        assert overlapping(while_b) <= 2, overlapping(while_b)
        # So B's jobs went beside A's, not after them.
        first_b = min(t["started_at"] for t in b_txns)
        third_a_done = sorted(t["ended_at"] for t in a_txns)[2]
        assert first_b < third_a_done, (first_b, third_a_done)


def test_job_larger_than_budget_goes_alone():
    budget = 16 * MB
    with RedisServer() as r, SmtpServer(delay=0.3) as smtp, \
            metrics_worker(r, smtp, args=["--max-inflight-bytes", budget,
                                          "--platform-from", "no-reply@platform.example"]) as w:
        # Some small jobs already in flight when the big one arrives, more
        # behind it.
        before = ["pre-%d" % i for i in range(10)]
        after = ["post-%d" % i for i in range(20)]
        for jid in before:
            push_job(r, job(jid, "alerts"))
        push_job(r, job("huge", "reports", attach=24 * MB))
        for jid in after:
            push_job(r, job(jid, "alerts"))
        for jid in before + ["huge"] + after:
            assert wait_status(r, jid, timeout=60)["state"] == "sent", jid
        huge = txn_of(smtp, "huge")
        others = [txn_of(smtp, j) for j in before + after]
        # Alone: no other transaction overlaps the big one's.
        for t in others:
            assert t["ended_at"] <= huge["started_at"] or t["started_at"] >= huge["ended_at"], (t, huge)
        # Nothing waited behind it longer than its own send (plus the
        # worker's own turn-around).
        send = huge["ended_at"] - huge["started_at"]
        for jid in after:
            st = status(r, jid)
            waited = int(st["sent_at"]) / 1000.0 - int(st["created_at"]) / 1000.0
            assert waited <= send + 3.0, (jid, waited, send)
        e = scrape(w.metrics_port)
        assert e.value("relayq_oversize_jobs_total") == 1
        assert "larger than this worker's --max-inflight-bytes" in w.log_text()


def test_streamed_messages_arrive_intact_over_smtp_and_mailgun():
    """The message is produced while it is sent (base64 of an attachment
    that stays in the payload, a raw job's body read from the payload):
    what the SMTP server and Mailgun receive carries exactly the bytes."""
    data = bytes((i * 7919 + (i >> 11)) & 0xFF for i in range(3 * MB + 12345))
    body = b"".join(b"line %d with a bare LF\n.dot first\r\n" % i for i in range(20000))
    raw = (b"From: Someone <s@platform.example>\nTo: r@dest.example\nSubject: raw stream\n\n" + body)
    with RedisServer() as r, SmtpServer() as smtp, MailgunFake(api_key="key-mg") as mg, \
            metrics_worker(r, smtp, args=["--platform-from", "no-reply@platform.example"]):
        set_tenant(r, "mgt", gateway="mailgun", mailgun_domain=mg.domain, mailgun_api_key="key-mg",
                   mailgun_base_url=mg.base_url)
        for tenant in ("plat", "mgt"):
            j = job("att-" + tenant, tenant)
            j["attachments"] = [{"filename": "data.bin", "content_type": "application/octet-stream",
                                 "data": data}]
            push_job(r, j)
            push_job(r, {"v": 1, "id": "raw-" + tenant, "tenant": tenant, "to": ["r@dest.example"],
                         "raw": raw})
        for jid in ("att-plat", "raw-plat", "att-mgt", "raw-mgt"):
            assert wait_status(r, jid, timeout=60)["state"] == "sent", status(r, jid)
        got = {}
        for m in smtp.messages():
            got["raw-plat" if b"raw stream" in m["data"] else "att-plat"] = m["data"]
        for req in mg.sends():
            d = req["files"]["message"][0][2]
            got["raw-mgt" if b"raw stream" in d else "att-mgt"] = d
        for k in ("att-plat", "att-mgt"):
            atts = list(parse_message(got[k]).iter_attachments())
            assert len(atts) == 1 and atts[0].get_content() == data, k
        want_body = body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        for k in ("raw-plat", "raw-mgt"):
            assert got[k].endswith(b"\r\n\r\n" + want_body), (k, got[k][:300])


if __name__ == "__main__":
    harness.main(globals())
