"""The worker's tenant settings cache (docs/tenants.md "The worker's cache of
tenant settings"): bounded by --tenant-cache-max with LRU eviction, its
hit/miss/eviction metrics, misses of one fetched batch read in one round
trip rather than one per job, and a change to a tenant's hash reaching the
worker within --tenant-cache-ms. Real redis-server, aiosmtpd and worker."""

import time

import harness
from harness import RedisServer, SmtpServer, push_job, set_tenant, wait_status
from test_metrics import metrics_worker, scrape


def job(jid, tenant):
    return {"v": 1, "id": jid, "tenant": tenant, "to": ["%s@dest.example" % jid],
            "subject": "s", "text": "t"}


def cache_figures(port):
    e = scrape(port)
    return {
        "hit": e.value("relayq_tenant_cache_lookups_total", result="hit"),
        "miss": e.value("relayq_tenant_cache_lookups_total", result="miss"),
        "evicted": e.value("relayq_tenant_cache_evictions_total", reason="evicted"),
        "expired": e.value("relayq_tenant_cache_evictions_total", reason="expired"),
        "entries": e.value("relayq_tenant_cache_entries"),
    }


def test_bound_lru_and_metrics():
    n_tenants, cap = 40, 8
    with RedisServer() as r, SmtpServer() as smtp, \
            metrics_worker(r, smtp, args=["--tenant-cache-max", cap, "--tenant-cache-ms", "600000",
                                          "--platform-from", "no-reply@platform.example"]) as w:
        for i in range(n_tenants):
            set_tenant(r, "t%d" % i, from_name="Tenant %d" % i)
        ids = []
        for i in range(n_tenants):
            j = job("first-%d" % i, "t%d" % i)
            push_job(r, j)
            ids.append(j["id"])
        for jid in ids:
            assert wait_status(r, jid)["state"] == "sent", jid
        f = cache_figures(w.metrics_port)
        # Every tenant was read once; the table never held more than cap.
        assert f["miss"] == n_tenants, f
        assert f["entries"] <= cap, f
        assert f["evicted"] >= n_tenants - cap, f
        assert f["expired"] == 0, f

        # The most recently used tenants are still cached: hits, no reads.
        recent = ["t%d" % i for i in range(n_tenants - 3, n_tenants)]
        before = f
        for t in recent:
            push_job(r, job("again-" + t, t))
        for t in recent:
            assert wait_status(r, "again-" + t)["state"] == "sent"
        f = cache_figures(w.metrics_port)
        assert f["hit"] - before["hit"] == 3 and f["miss"] == before["miss"], (before, f)

        # The oldest was evicted: its next job reads the hash again.
        push_job(r, job("again-t0", "t0"))
        assert wait_status(r, "again-t0")["state"] == "sent"
        f2 = cache_figures(w.metrics_port)
        assert f2["miss"] == f["miss"] + 1, (f, f2)

        # The worker's memory stays put whatever the number of tenants: the
        # settings themselves all reached the recipients.
        got = smtp.wait_messages(n_tenants + 4)
        assert len(got) >= n_tenants + 4


def test_change_reaches_worker_within_lifetime():
    ttl_ms = 400
    with RedisServer() as r, SmtpServer() as smtp, \
            metrics_worker(r, smtp, args=["--tenant-cache-ms", ttl_ms,
                                          "--platform-from", "no-reply@platform.example"]) as w:
        set_tenant(r, "acme", from_name="Old Name")
        push_job(r, job("c1", "acme"))
        assert wait_status(r, "c1")["state"] == "sent"
        set_tenant(r, "acme", from_name="New Name")
        changed = time.monotonic()
        # Within the lifetime (plus scheduling slack) a new job uses the new
        # settings; poll by sending until one carries them.
        n = 0
        deadline = changed + ttl_ms / 1000.0 + 3.0
        seen_new_at = None
        while time.monotonic() < deadline and seen_new_at is None:
            n += 1
            jid = "c2-%d" % n
            push_job(r, job(jid, "acme"))
            assert wait_status(r, jid)["state"] == "sent"
            msgs = [m for m in smtp.wait_messages(n + 1) if ("%s@dest.example" % jid) in m["rcpt_tos"]]
            if msgs and b"New Name" in msgs[0]["data"]:
                seen_new_at = time.monotonic()
        assert seen_new_at is not None, "the change never reached the worker"
        assert seen_new_at - changed <= ttl_ms / 1000.0 + 1.5, seen_new_at - changed
        f = cache_figures(w.metrics_port)
        assert f["expired"] >= 1, f


def test_batch_reads_once_per_tenant():
    """32 jobs of 32 cold tenants fetched in one batch: the tenant reads go
    out together, so Redis sees them as one burst of HGETALLs (one per
    tenant, none per job beyond that) and every job is sent. Counted by the
    worker's own metrics: the test's status polling uses HGETALL too."""
    with RedisServer() as r, SmtpServer() as smtp, \
            metrics_worker(r, smtp, args=["--fetch-batch", "32", "--tenant-cache-ms", "600000",
                                          "--platform-from", "no-reply@platform.example"]) as w:
        for i in range(32):
            set_tenant(r, "b%d" % i, from_name="B %d" % i)
        # Two jobs per tenant: the second joins the first's read.
        ids = []
        for k in range(2):
            for i in range(32):
                j = job("b%d-%d" % (i, k), "b%d" % i)
                push_job(r, j)
                ids.append(j["id"])
        for jid in ids:
            assert wait_status(r, jid)["state"] == "sent", jid
        f = cache_figures(w.metrics_port)
        assert f["miss"] == 32 and f["hit"] == 32, f


if __name__ == "__main__":
    harness.main(globals())
