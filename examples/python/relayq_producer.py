#!/usr/bin/python3
"""relayq producer for Python: enqueue mail jobs, watch them, seal secrets.

A small, dependency-light module a Django/Flask/FastAPI backend can copy
(Debian: python3-redis, python3-msgpack, python3-cryptography; pip: redis,
msgpack, cryptography). It speaks the wire format of docs/producers.md:

    producer = Producer(redis.Redis.from_url(url), prefix="relayq")
    with producer.watch() as events:              # subscribe to P:events first
        job_id, existing = producer.enqueue(job)  # status + push, atomically
        status = events.wait_final(job_id, timeout=60)

    sealed = seal(secret_key_b64, "tenant SMTP password")   # "enc:v1:..."
    producer.save_tenant("acme", {"gateway": "smtp", ..., "smtp_password": sealed})

Run as a script, it is the worked example of examples/README: it saves a
tenant's SMTP settings with a sealed password (when RELAYQ_EXAMPLE_SMTP_HOST
is set), enqueues an invoice e-mail with a PDF attachment, waits for the
final state on P:events and prints the status hash as one JSON line.

Settings (environment):
  RELAYQ_REDIS_URL       redis://[[user]:password@]host[:port][/db]
                         (default redis://127.0.0.1:6379), rediss:// (TLS), or
                         redis+sentinel://[[user]:password@]H:P[,H:P...]/MASTER[/db]
                         (rediss+sentinel:// over TLS), as the worker reads them
  RELAYQ_REDIS_CA_FILE   CA (PEM) that signed a rediss:// server's certificate
                         (default: the system's); RELAYQ_REDIS_CERT and
                         RELAYQ_REDIS_KEY for a client certificate
  RELAYQ_PREFIX          key prefix (default relayq)
  RELAYQ_SECRET_KEY      base64 of 32 bytes, the workers' key (needed to seal)
  RELAYQ_EXAMPLE_TENANT  tenant id (default acme)
  RELAYQ_EXAMPLE_TO      recipient (required)
  RELAYQ_EXAMPLE_FROM    sender address (optional; saved as the tenant's from_email)
  RELAYQ_EXAMPLE_ID      job id (default: a new one); run twice with the same
                         id to see the idempotency rule at work
  RELAYQ_EXAMPLE_SMTP_HOST, _PORT, _SECURITY (starttls|tls|none), _USER,
  _PASSWORD              the tenant's own SMTP server (optional)
  RELAYQ_EXAMPLE_DELAY_MS   send no sooner than this many ms from now (not_before)
  RELAYQ_EXAMPLE_TIMEOUT_S  how long to wait for the final state (default 60)

Exit status: 0 sent, 1 ended partial/failed or timed out, 2 bad settings or
a job the contract refuses, 3 Redis error.
"""

import base64
import json
import os
import re
import secrets
import sys
import time

import msgpack
import redis
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["Producer", "Events", "JobError", "seal", "open_sealed", "new_id", "validate",
           "ENQUEUE_LUA", "FINAL_STATES"]

FINAL_STATES = ("sent", "partial", "failed")
NAME_RE = re.compile(r"\A[A-Za-z0-9._:@-]{1,128}\Z")
TENANT_RE = re.compile(r"\A[A-Za-z0-9._@-]{1,128}\Z")  # tenant and route names: no ':' (v1.1)

# The enqueue script of docs/producers.md, one job per call (librelayq's
# producer/lib/enqueue.c runs the same steps for a batch of jobs per call).
# KEYS: status hash, queue list (or P:delayed), events channel.
# ARGV: payload, zset score or "" for a list push, event JSON, then the status
# hash's field/value pairs. Returns 1, or the existing state when the id
# already has a status: the id is the idempotency key, so a retried request
# never resets a final status (that would send the mail twice).
ENQUEUE_LUA = """local cur = redis.call('HMGET', KEYS[1], 'state', 'tenant')
local mine = ''
for i = 4, #ARGV - 1, 2 do
  if ARGV[i] == 'tenant' then mine = ARGV[i + 1]; break end
end
if cur[2] and cur[2] ~= mine then
  redis.call('LPUSH', string.sub(KEYS[3], 1, -8) .. ':dead', ARGV[1])
  local ev = cjson.decode(ARGV[3])
  ev.state, ev.error = 'failed', 'invalid_job'
  redis.call('PUBLISH', KEYS[3], cjson.encode(ev))
  return redis.error_reply('FOREIGN_ID this job id is used by another job: the job was dead-lettered (failed, invalid_job); send it with a new id')
end
if cur[1] then return cur[1] end
if ARGV[2] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
else
  redis.call('LPUSH', KEYS[2], ARGV[1])
end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('PUBLISH', KEYS[3], ARGV[3])
return 1
"""


class JobError(ValueError):
    """The job breaks a rule of the contract; the message names the field."""


def now_ms():
    return int(time.time() * 1000)


def new_id():
    """A new job id like librelayq's: 12 hex digits of the ms clock + 16
    random hex digits. Prefer your own business id when you have one
    (e.g. "invoice-42-mail-1"): a retried request then cannot send twice."""
    return "%012x%s" % (now_ms() & 0xFFFFFFFFFFFF, secrets.token_hex(8))


# ---- validation (the main rules; the worker is the final judge) ---------------

def _check_address(field, value, allow_name):
    if not isinstance(value, str) or not value:
        raise JobError("field %r: an address must be a non-empty string" % field)
    if "\r" in value or "\n" in value or len(value.encode()) > 998:
        raise JobError("field %r: an address may not hold CR/LF or exceed 998 bytes" % field)
    spec = value
    if value.endswith(">") and "<" in value:
        if not allow_name:
            raise JobError("field %r must be a bare address (no 'Name <addr>')" % field)
        spec = value[value.rindex("<") + 1:-1]
    if "@" not in spec or spec.startswith("@") or spec.endswith("@"):
        raise JobError("field %r: %r is not an address" % (field, spec))


def validate(job):
    """Raises JobError when JOB breaks one of the contract's main rules
    (docs/producers.md lists all of them). Catching mistakes here gives the
    user an error on the spot instead of a `failed`/`invalid_job` status."""
    if not NAME_RE.match(str(job.get("id", ""))):
        raise JobError("field 'id' must be 1-128 characters of A-Z a-z 0-9 . _ : @ -")
    if not TENANT_RE.match(str(job.get("tenant", ""))):
        raise JobError("field 'tenant' must be 1-128 characters of A-Z a-z 0-9 . _ @ - (no ':')")
    total = 0
    for field, allow_name in (("to", True), ("cc", True), ("bcc", False)):
        addrs = job.get(field) or []
        if not isinstance(addrs, list):
            raise JobError("field %r must be a list of strings" % field)
        for a in addrs:
            _check_address(field, a, allow_name)
        total += len(addrs)
    if total == 0:
        raise JobError("the job has no recipient: give 'to', 'cc' or 'bcc'")
    if total > 10000:
        raise JobError("more than 10000 recipients: split the job")
    for field in ("from", "reply_to"):
        if job.get(field) is not None:
            _check_address(field, job[field], False)
    for field in ("subject", "from_name"):
        if any(c in (job.get(field) or "") for c in "\r\n"):
            raise JobError("field %r must be one line" % field)
    if job.get("raw") is None and job.get("text") is None and job.get("html") is None:
        raise JobError("the job has no body: give 'text' or 'html' (or 'raw')")
    for name, value in (job.get("headers") or {}).items():
        if "\r" in value or "\n" in value:
            raise JobError("header %r: the value must be one line" % name)
    for i, a in enumerate(job.get("attachments") or [], 1):
        if not a.get("filename") or not isinstance(a.get("data"), (bytes, bytearray)):
            raise JobError("attachment %d needs a 'filename' and 'data' as bytes" % i)


# ---- secrets --------------------------------------------------------------------

def _key(key_b64):
    key = base64.b64decode(key_b64.strip(), validate=True)
    if len(key) != 32:
        raise ValueError("RELAYQ_SECRET_KEY must be 32 bytes in base64 "
                         "(openssl rand -base64 32), not %d bytes" % len(key))
    return key


def seal(key_b64, plaintext):
    """'enc:v1:' + base64(nonce12 | ciphertext | tag16), AES-256-GCM, no AAD."""
    nonce = os.urandom(12)
    ct_and_tag = AESGCM(_key(key_b64)).encrypt(nonce, plaintext.encode("utf-8"), None)
    return "enc:v1:" + base64.b64encode(nonce + ct_and_tag).decode("ascii")


def open_sealed(key_b64, sealed):
    """The inverse of seal(); raises cryptography's InvalidTag on a wrong key."""
    if not sealed.startswith("enc:v1:"):
        raise ValueError("not a sealed value (enc:v1:...)")
    blob = base64.b64decode(sealed[len("enc:v1:"):], validate=True)
    return AESGCM(_key(key_b64)).decrypt(blob[:12], blob[12:], None).decode("utf-8")


# ---- the producer -----------------------------------------------------------------

class Producer:
    """Enqueues jobs and saves tenants through one redis.Redis client.

    The client must return bytes (decode_responses=False, the default):
    payloads are binary.
    """

    def __init__(self, client, prefix="relayq"):
        self.r = client
        self.prefix = prefix
        self._enqueue = client.register_script(ENQUEUE_LUA)  # EVALSHA, EVAL on NOSCRIPT

    def key(self, *parts):
        return ":".join((self.prefix,) + parts)

    def enqueue(self, job, queue="default"):
        """Validates JOB (a dict; bytes become msgpack bin), gives it an id if
        it has none, and in one atomic step writes its status `queued` (or
        `deferred` when not_before is in the future), pushes it and publishes
        the event. Returns (id, None), or (id, existing_state) when the id was
        taken: then nothing was pushed and the job is (or was) on its way."""
        job = dict(job)
        job.setdefault("v", 1)
        job.setdefault("id", new_id())
        validate(job)
        if not NAME_RE.match(queue):
            raise JobError("queue name must be 1-128 characters of A-Z a-z 0-9 . _ : @ -")
        now = now_ms()
        delayed = int(job.get("not_before") or 0) > now
        if delayed:
            # A delayed job names its queue in "_queue", as the first key: the
            # worker's Lua reads it from the raw bytes when the time comes.
            job = {"_queue": queue, **{k: v for k, v in job.items() if k != "_queue"}}
        payload = msgpack.packb(job, use_bin_type=True)
        state = "deferred" if delayed else "queued"
        recipients = sum(len(job.get(f) or []) for f in ("to", "cc", "bcc"))
        event = json.dumps({"id": job["id"], "tenant": job["tenant"], "state": state,
                            "attempts": 0, "ts": now}, separators=(",", ":"))
        fields = ["state", state, "tenant", job["tenant"], "created_at", now,
                  "updated_at", now, "attempts", 0, "recipients", recipients]
        if delayed:
            fields += ["next_attempt_at", job["not_before"]]
        for k, v in (job.get("meta") or {}).items():
            fields += ["meta." + k, v]
        target = self.key("delayed") if delayed else self.key("queue", queue)
        res = self._enqueue(
            keys=[self.key("status", job["id"]), target, self.key("events")],
            args=[payload, job["not_before"] if delayed else "", event] + fields)
        existing = res.decode() if isinstance(res, bytes) else None
        return job["id"], existing

    def status(self, job_id):
        """The status hash as {str: str} ({} when there is none)."""
        raw = self.r.hgetall(self.key("status", job_id))
        return {k.decode(): v.decode("utf-8", "replace") for k, v in raw.items()}

    def save_tenant(self, tenant, fields):
        """HSETs the tenant's settings (docs/tenants.md). Seal secret fields
        first with seal(). Workers cache tenants for a few seconds
        (RELAYQ_TENANT_CACHE_MS), so a change applies to later jobs."""
        if not TENANT_RE.match(tenant):
            raise JobError("tenant must be 1-128 characters of A-Z a-z 0-9 . _ @ - (no ':')")
        for name in ("smtp_password", "mailgun_api_key", "dkim_private_key"):
            if fields.get(name) and not str(fields[name]).startswith("enc:v1:"):
                raise ValueError("%s must be sealed with seal() before it is stored" % name)
        self.r.hset(self.key("tenant", tenant), mapping={k: str(v) for k, v in fields.items()})

    def watch(self):
        """An Events subscription to P:events; use it as a context manager and
        enter it BEFORE enqueueing, so no event can be missed."""
        return Events(self)


class Events:
    """A live subscription to P:events (a dashboard reads the same stream)."""

    def __init__(self, producer):
        self.producer = producer
        self.pubsub = producer.r.pubsub()
        self.channel = producer.key("events")

    def __enter__(self):
        self.pubsub.subscribe(self.channel)
        # Wait for Redis to confirm: only then is no later PUBLISH missed.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            m = self.pubsub.get_message(timeout=1.0)
            if m and m["type"] == "subscribe":
                return self
        raise TimeoutError("Redis did not confirm SUBSCRIBE %s" % self.channel)

    def __exit__(self, *exc):
        self.pubsub.close()
        return False

    def wait_final(self, job_id, timeout=60.0, on_event=None):
        """Returns the status hash once JOB_ID is sent, partial or failed.
        on_event(dict) sees each of the job's events. Raises TimeoutError."""
        st = self.producer.status(job_id)
        if st.get("state") in FINAL_STATES:  # e.g. a duplicate of a finished job
            return st
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("job %s not final after %ss (state %s)"
                                   % (job_id, timeout, st.get("state")))
            m = self.pubsub.get_message(timeout=min(left, 1.0))
            if not m or m["type"] != "message":
                continue
            try:
                ev = json.loads(m["data"])
            except ValueError:
                continue
            if ev.get("id") != job_id:
                continue  # other jobs' events: a dashboard would show them
            if on_event:
                on_event(ev)
            if ev.get("state") in FINAL_STATES:
                return self.producer.status(job_id)


# ---- the worked example -----------------------------------------------------------

def example_attachment():
    """A stand-in invoice PDF: every byte value, to show binary safety."""
    return b"%PDF-1.4\n" + bytes(range(256)) + b"\n%%EOF\n"


def connect(url, env):
    """A redis-py client for the worker's URL forms. rediss:// verifies the
    certificate and host name (redis-py's defaults, ssl_cert_reqs=required);
    redis+sentinel:// asks the sentinels for the primary and follows
    failovers (redis-py's Sentinel re-asks on every new connection)."""
    tls = {}
    if url.startswith(("rediss://", "rediss+sentinel://")):
        tls = {"ssl_ca_certs": env("RELAYQ_REDIS_CA_FILE"), "ssl_certfile": env("RELAYQ_REDIS_CERT"),
               "ssl_keyfile": env("RELAYQ_REDIS_KEY")}
        tls = {k: v for k, v in tls.items() if v}
    if not url.startswith(("redis+sentinel://", "rediss+sentinel://")):
        return redis.Redis.from_url(url, socket_timeout=30, **tls)
    import urllib.parse
    from redis.sentinel import Sentinel
    u = urllib.parse.urlsplit(url)
    hosts = u.netloc.rpartition("@")[2]
    path = [p for p in u.path.split("/") if p]
    sentinels = [(h.rpartition(":")[0] or h, int(h.rpartition(":")[2] or 26379) if ":" in h else 26379)
                 for h in hosts.split(",")]
    sentinels = [(h.strip("[]"), p) for h, p in sentinels]
    ssl = {"ssl": True, **tls} if tls or u.scheme.startswith("rediss") else {}
    s = Sentinel(sentinels, socket_timeout=5, sentinel_kwargs=ssl, **ssl)
    return s.master_for(path[0], socket_timeout=30, db=int(path[1]) if len(path) > 1 else 0,
                        username=urllib.parse.unquote(u.username) if u.username else None,
                        password=urllib.parse.unquote(u.password) if u.password else None)


def main():
    env = os.environ.get
    url = env("RELAYQ_REDIS_URL", "redis://127.0.0.1:6379")
    prefix = env("RELAYQ_PREFIX", "relayq")
    tenant = env("RELAYQ_EXAMPLE_TENANT", "acme")
    to = env("RELAYQ_EXAMPLE_TO")
    timeout = float(env("RELAYQ_EXAMPLE_TIMEOUT_S", "60"))
    if not to:
        print("set RELAYQ_EXAMPLE_TO to the recipient's address", file=sys.stderr)
        return 2
    try:
        producer = Producer(connect(url, env), prefix)
        if env("RELAYQ_EXAMPLE_SMTP_HOST"):
            key = env("RELAYQ_SECRET_KEY")
            if not key:
                print("set RELAYQ_SECRET_KEY (the workers' key) to seal the password",
                      file=sys.stderr)
                return 2
            fields = {"gateway": "smtp", "smtp_host": env("RELAYQ_EXAMPLE_SMTP_HOST"),
                      "smtp_security": env("RELAYQ_EXAMPLE_SMTP_SECURITY", "starttls")}
            if env("RELAYQ_EXAMPLE_SMTP_PORT"):
                fields["smtp_port"] = env("RELAYQ_EXAMPLE_SMTP_PORT")
            if env("RELAYQ_EXAMPLE_SMTP_USER"):
                fields["smtp_user"] = env("RELAYQ_EXAMPLE_SMTP_USER")
                fields["smtp_password"] = seal(key, env("RELAYQ_EXAMPLE_SMTP_PASSWORD", ""))
            if env("RELAYQ_EXAMPLE_FROM"):
                fields["from_email"] = env("RELAYQ_EXAMPLE_FROM")
            producer.save_tenant(tenant, fields)
        job = {
            "v": 1,
            "id": env("RELAYQ_EXAMPLE_ID") or new_id(),
            "tenant": tenant,
            "to": [to],
            "subject": "Fattura n. 42 — €1.234,56",
            "text": "Gentile cliente,\nin allegato la fattura n. 42.\nGrazie — Acme S.r.l. ✓\n",
            "html": "<p>Gentile cliente,<br>in allegato la fattura n. 42.</p>",
            "headers": {"X-Invoice": "INV-42"},
            "attachments": [{"filename": "fattura-42.pdf", "content_type": "application/pdf",
                             "data": example_attachment()}],
            "meta": {"invoice": "INV-42", "producer": "python"},
        }
        if env("RELAYQ_EXAMPLE_FROM"):
            job["from"] = env("RELAYQ_EXAMPLE_FROM")
        if env("RELAYQ_EXAMPLE_DELAY_MS"):
            job["not_before"] = now_ms() + int(env("RELAYQ_EXAMPLE_DELAY_MS"))
        with producer.watch() as events:
            job_id, existing = producer.enqueue(job)
            if existing:
                print("job %s already exists (state %s): not enqueued again"
                      % (job_id, existing), file=sys.stderr)
            else:
                print("enqueued %s" % job_id, file=sys.stderr)

            def show(ev):
                print("event %s" % json.dumps(ev, separators=(",", ":")), file=sys.stderr)

            st = events.wait_final(job_id, timeout, on_event=show)
    except JobError as e:
        print("invalid job: %s" % e, file=sys.stderr)
        return 2
    except ValueError as e:
        print("bad setting: %s" % e, file=sys.stderr)
        return 2
    except TimeoutError as e:
        print(str(e), file=sys.stderr)
        return 1
    except redis.RedisError as e:
        print("Redis error: %s" % e, file=sys.stderr)
        return 3
    print(json.dumps(st, sort_keys=True, ensure_ascii=False))
    return 0 if st.get("state") == "sent" else 1


if __name__ == "__main__":
    sys.exit(main())
