#!/usr/bin/env node
// relayq producer for Node.js: enqueue mail jobs, watch them, seal secrets.
//
// Dependencies (npm): ioredis, @msgpack/msgpack; sealing uses node:crypto.
// It speaks the wire format of docs/producers.md:
//
//   import { Producer, seal } from "./producer.mjs";
//   const producer = new Producer(new Redis(url), "relayq");
//   const watch = await producer.watch();          // subscribe to P:events first
//   const { id, existing } = await producer.enqueue(job);
//   const status = await watch.waitFinal(id, 60_000);
//   await watch.close();
//
// Run as a script it is the worked example of examples/README.md: it saves a
// tenant's SMTP settings with a sealed password (when RELAYQ_EXAMPLE_SMTP_HOST
// is set), enqueues an invoice with a PDF attachment, waits for the final
// state on P:events and prints the status hash as one JSON line.
// Settings and exit codes: see examples/README.md (the same for every language).

import { Buffer } from "node:buffer";
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import process from "node:process";
import { fileURLToPath } from "node:url";

import { encode } from "@msgpack/msgpack";
import { Redis } from "ioredis";

export const FINAL_STATES = new Set(["sent", "partial", "failed"]);
const NAME_RE = /^[A-Za-z0-9._:@-]{1,128}$/;
const TENANT_RE = /^[A-Za-z0-9._@-]{1,128}$/; // tenant and route names: no ':' (v1.1)

// The enqueue script of docs/producers.md, one job per call (librelayq's
// producer/lib/enqueue.c runs the same steps for a batch of jobs per call).
// KEYS: status hash, queue list (or P:delayed), events channel. ARGV: payload,
// zset score or "" for a list push, event JSON, then the status hash's
// field/value pairs. Returns 1, or the existing state when the id already has
// a status: the id is the idempotency key, so a retried request never resets
// a final status (which would send the mail twice).
export const ENQUEUE_LUA = `local cur = redis.call('HMGET', KEYS[1], 'state', 'tenant')
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
`;

/** The job breaks a rule of the contract; the message names the field. */
export class JobError extends Error {}

/** A new id like librelayq's: 12 hex digits of the ms clock + 16 random. Prefer
 * your own business id ("invoice-42-mail-1"): a retried request then cannot
 * send twice. */
export function newId() {
  const ms = (Date.now() % 2 ** 48).toString(16).padStart(12, "0");
  return ms + randomBytes(8).toString("hex");
}

function checkAddress(field, value, allowName) {
  if (typeof value !== "string" || value === "")
    throw new JobError(`field '${field}': an address must be a non-empty string`);
  if (/[\r\n]/.test(value) || Buffer.byteLength(value) > 998)
    throw new JobError(`field '${field}': an address may not hold CR/LF or exceed 998 bytes`);
  let spec = value;
  if (value.endsWith(">") && value.includes("<")) {
    if (!allowName) throw new JobError(`field '${field}' must be a bare address (no 'Name <addr>')`);
    spec = value.slice(value.lastIndexOf("<") + 1, -1);
  }
  if (!spec.includes("@") || spec.startsWith("@") || spec.endsWith("@"))
    throw new JobError(`field '${field}': '${spec}' is not an address`);
}

/** Throws JobError when job breaks one of the contract's main rules
 * (docs/producers.md lists all of them); the worker is the final judge. */
export function validate(job) {
  if (!NAME_RE.test(String(job.id ?? "")))
    throw new JobError("field 'id' must be 1-128 characters of A-Z a-z 0-9 . _ : @ -");
  if (!TENANT_RE.test(String(job.tenant ?? "")))
    throw new JobError("field 'tenant' must be 1-128 characters of A-Z a-z 0-9 . _ @ - (no ':')");
  let total = 0;
  for (const [field, allowName] of [["to", true], ["cc", true], ["bcc", false]]) {
    const list = job[field] ?? [];
    if (!Array.isArray(list)) throw new JobError(`field '${field}' must be an array of strings`);
    for (const a of list) checkAddress(field, a, allowName);
    total += list.length;
  }
  if (total === 0) throw new JobError("the job has no recipient: give 'to', 'cc' or 'bcc'");
  if (total > 10000) throw new JobError("more than 10000 recipients: split the job");
  for (const field of ["from", "reply_to"]) if (job[field] != null) checkAddress(field, job[field], false);
  for (const field of ["subject", "from_name"])
    if (/[\r\n]/.test(job[field] ?? "")) throw new JobError(`field '${field}' must be one line`);
  if (job.raw == null && job.text == null && job.html == null)
    throw new JobError("the job has no body: give 'text' or 'html' (or 'raw')");
  for (const [name, value] of Object.entries(job.headers ?? {}))
    if (/[\r\n]/.test(value)) throw new JobError(`header '${name}': the value must be one line`);
  (job.attachments ?? []).forEach((a, i) => {
    if (!a.filename || !(a.data instanceof Uint8Array))
      throw new JobError(`attachment ${i + 1} needs a 'filename' and 'data' as a Buffer/Uint8Array`);
  });
}

function parseKey(keyB64) {
  const key = Buffer.from(String(keyB64).trim(), "base64");
  if (key.length !== 32)
    throw new Error(`RELAYQ_SECRET_KEY must be 32 bytes in base64 (openssl rand -base64 32), not ${key.length}`);
  return key;
}

/** "enc:v1:" + base64(nonce12 | ciphertext | tag16), AES-256-GCM, no AAD. */
export function seal(keyB64, plaintext) {
  const nonce = randomBytes(12);
  const c = createCipheriv("aes-256-gcm", parseKey(keyB64), nonce);
  const ct = Buffer.concat([c.update(plaintext, "utf8"), c.final()]);
  return "enc:v1:" + Buffer.concat([nonce, ct, c.getAuthTag()]).toString("base64");
}

/** The inverse of seal(); throws on a wrong key or a tampered value. */
export function openSealed(keyB64, sealed) {
  if (!sealed.startsWith("enc:v1:")) throw new Error("not a sealed value (enc:v1:...)");
  const blob = Buffer.from(sealed.slice(7), "base64");
  const d = createDecipheriv("aes-256-gcm", parseKey(keyB64), blob.subarray(0, 12));
  d.setAuthTag(blob.subarray(blob.length - 16));
  return Buffer.concat([d.update(blob.subarray(12, blob.length - 16)), d.final()]).toString("utf8");
}

/** Enqueues jobs and saves tenants through one ioredis client. */
export class Producer {
  constructor(redis, prefix = "relayq") {
    this.redis = redis;
    this.prefix = prefix;
    // defineCommand runs EVALSHA and falls back to EVAL on NOSCRIPT.
    redis.defineCommand("relayqEnqueue", { numberOfKeys: 3, lua: ENQUEUE_LUA });
  }

  key(...parts) {
    return [this.prefix, ...parts].join(":");
  }

  /** Validates job (Buffers/Uint8Arrays become msgpack bin), gives it an id if
   * it has none, and in one atomic step writes its status `queued` (or
   * `deferred` when not_before is in the future), pushes it and publishes
   * the event. Resolves to {id, existing}: existing is null, or the state the
   * id already had (then nothing was pushed: the job is or was on its way). */
  async enqueue(job, queue = "default") {
    job = { v: 1, ...job };
    job.id ??= newId();
    validate(job);
    if (!NAME_RE.test(queue)) throw new JobError("queue name must be 1-128 characters of A-Z a-z 0-9 . _ : @ -");
    const now = Date.now();
    const delayed = Number(job.not_before ?? 0) > now;
    // A delayed job names its queue in "_queue", as its first key: the
    // worker's Lua reads it from the raw bytes when the time comes.
    if (delayed) job = { _queue: queue, ...job };
    const payload = Buffer.from(encode(job, { ignoreUndefined: true }));
    const state = delayed ? "deferred" : "queued";
    const recipients = ["to", "cc", "bcc"].reduce((n, f) => n + (job[f]?.length ?? 0), 0);
    const event = JSON.stringify({ id: job.id, tenant: job.tenant, state, attempts: 0, ts: now });
    const fields = ["state", state, "tenant", job.tenant, "created_at", now, "updated_at", now,
                    "attempts", 0, "recipients", recipients];
    if (delayed) fields.push("next_attempt_at", job.not_before);
    for (const [k, v] of Object.entries(job.meta ?? {})) fields.push("meta." + k, v);
    const target = delayed ? this.key("delayed") : this.key("queue", queue);
    const res = await this.redis.relayqEnqueue(this.key("status", job.id), target, this.key("events"),
                                               payload, delayed ? String(job.not_before) : "", event, ...fields);
    return { id: job.id, existing: typeof res === "string" ? res : null };
  }

  /** The status hash ({} when there is none). */
  async status(id) {
    return this.redis.hgetall(this.key("status", id));
  }

  /** HSETs the tenant's settings (docs/tenants.md); seal secret fields first.
   * Workers cache tenants for a few seconds (RELAYQ_TENANT_CACHE_MS). */
  async saveTenant(tenant, fields) {
    if (!TENANT_RE.test(tenant)) throw new JobError("tenant must be 1-128 characters of A-Z a-z 0-9 . _ @ - (no ':')");
    for (const name of ["smtp_password", "mailgun_api_key", "dkim_private_key"])
      if (fields[name] && !String(fields[name]).startsWith("enc:v1:"))
        throw new Error(`${name} must be sealed with seal() before it is stored`);
    await this.redis.hset(this.key("tenant", tenant), fields);
  }

  /** Subscribes to P:events on a second connection; resolves once Redis has
   * confirmed, so call it BEFORE enqueue() and no event can be missed. */
  async watch() {
    const w = new Watch(this);
    await w.sub.subscribe(this.key("events"));
    return w;
  }
}

/** A live subscription to P:events (a dashboard reads the same stream). */
export class Watch {
  constructor(producer) {
    this.producer = producer;
    this.sub = producer.redis.duplicate();
    this.waiters = new Map(); // id -> {onEvent, done}
    // Events that came before waitFinal() was called for their job (the
    // `queued` event arrives while enqueue() is still resolving); bounded,
    // since other jobs' events arrive here too.
    this.backlog = [];
    this.sub.on("message", (_channel, message) => {
      let ev;
      try { ev = JSON.parse(message); } catch { return; }
      const w = this.waiters.get(ev.id);
      if (!w) {
        this.backlog.push(ev);
        if (this.backlog.length > 1000) this.backlog.shift();
        return;
      }
      this.deliver(w, ev);
    });
  }

  deliver(w, ev) {
    w.onEvent?.(ev);
    if (FINAL_STATES.has(ev.state)) w.done();
  }

  /** Resolves to the status hash once id is sent, partial or failed.
   * onEvent(ev) sees each of the job's events. Rejects after timeoutMs. */
  async waitFinal(id, timeoutMs = 60_000, onEvent) {
    let timer;
    const final = new Promise((resolve, reject) => {
      const w = { onEvent, done: resolve };
      this.waiters.set(id, w);
      timer = setTimeout(() => reject(new Error(`job ${id} not final after ${timeoutMs} ms`)), timeoutMs);
      const early = this.backlog.filter((ev) => ev.id === id);
      this.backlog = this.backlog.filter((ev) => ev.id !== id);
      for (const ev of early) this.deliver(w, ev);
    });
    try {
      // A duplicate of a finished job publishes nothing: look first.
      const st = await this.producer.status(id);
      if (!FINAL_STATES.has(st.state)) await final;
      return await this.producer.status(id);
    } finally {
      clearTimeout(timer);
      this.waiters.delete(id);
      final.catch(() => {}); // settled later by the timer or an event: not an error
    }
  }

  async close() {
    this.sub.disconnect();
  }
}

// ---- the worked example -------------------------------------------------------

/** A stand-in invoice PDF: every byte value, to show binary safety. */
export function exampleAttachment() {
  const all = Buffer.alloc(256);
  for (let i = 0; i < 256; i++) all[i] = i;
  return Buffer.concat([Buffer.from("%PDF-1.4\n"), all, Buffer.from("\n%%EOF\n")]);
}

async function main() {
  const env = process.env;
  const url = env.RELAYQ_REDIS_URL || "redis://127.0.0.1:6379";
  const prefix = env.RELAYQ_PREFIX || "relayq";
  const tenant = env.RELAYQ_EXAMPLE_TENANT || "acme";
  const to = env.RELAYQ_EXAMPLE_TO;
  const timeoutMs = Number(env.RELAYQ_EXAMPLE_TIMEOUT_S || "60") * 1000;
  if (!to) {
    console.error("set RELAYQ_EXAMPLE_TO to the recipient's address");
    return 2;
  }
  // TLS: rediss:// URLs work as is; for a private CA pass
  //   { tls: { ca: fs.readFileSync(env.RELAYQ_REDIS_CA_FILE) } }.
  // Sentinel: new Redis({ sentinels: [{ host, port }], name: "mymaster" })
  // (docs/producers.md, "Connecting: TLS and Sentinel").
  // Fail fast instead of retrying forever when Redis is down.
  const redis = new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 5000, lazyConnect: true });
  let lastError = null; // the socket's own error, more telling than "Connection is closed."
  redis.on("error", (e) => { lastError = e; });
  let watch;
  try {
    await redis.connect();
    const producer = new Producer(redis, prefix);
    if (env.RELAYQ_EXAMPLE_SMTP_HOST) {
      if (!env.RELAYQ_SECRET_KEY) {
        console.error("set RELAYQ_SECRET_KEY (the workers' key) to seal the password");
        return 2;
      }
      const fields = { gateway: "smtp", smtp_host: env.RELAYQ_EXAMPLE_SMTP_HOST,
                       smtp_security: env.RELAYQ_EXAMPLE_SMTP_SECURITY || "starttls" };
      if (env.RELAYQ_EXAMPLE_SMTP_PORT) fields.smtp_port = env.RELAYQ_EXAMPLE_SMTP_PORT;
      if (env.RELAYQ_EXAMPLE_SMTP_USER) {
        fields.smtp_user = env.RELAYQ_EXAMPLE_SMTP_USER;
        fields.smtp_password = seal(env.RELAYQ_SECRET_KEY, env.RELAYQ_EXAMPLE_SMTP_PASSWORD ?? "");
      }
      if (env.RELAYQ_EXAMPLE_FROM) fields.from_email = env.RELAYQ_EXAMPLE_FROM;
      await producer.saveTenant(tenant, fields);
    }
    const job = {
      v: 1,
      id: env.RELAYQ_EXAMPLE_ID || newId(),
      tenant,
      to: [to],
      subject: "Fattura n. 42 — €1.234,56",
      text: "Gentile cliente,\nin allegato la fattura n. 42.\nGrazie — Acme S.r.l. ✓\n",
      html: "<p>Gentile cliente,<br>in allegato la fattura n. 42.</p>",
      headers: { "X-Invoice": "INV-42" },
      attachments: [{ filename: "fattura-42.pdf", content_type: "application/pdf", data: exampleAttachment() }],
      meta: { invoice: "INV-42", producer: "node" },
    };
    if (env.RELAYQ_EXAMPLE_FROM) job.from = env.RELAYQ_EXAMPLE_FROM;
    if (env.RELAYQ_EXAMPLE_DELAY_MS) job.not_before = Date.now() + Number(env.RELAYQ_EXAMPLE_DELAY_MS);
    watch = await producer.watch();
    const { id, existing } = await producer.enqueue(job);
    console.error(existing ? `job ${id} already exists (state ${existing}): not enqueued again` : `enqueued ${id}`);
    const st = await watch.waitFinal(id, timeoutMs, (ev) => console.error("event " + JSON.stringify(ev)));
    const sorted = Object.fromEntries(Object.entries(st).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    console.log(JSON.stringify(sorted));
    return st.state === "sent" ? 0 : 1;
  } catch (e) {
    if (e instanceof JobError) {
      console.error("invalid job: " + e.message);
      return 2;
    }
    if (/not final/.test(e.message)) {
      console.error(e.message);
      return 1;
    }
    if (e.name === "ReplyError" || lastError || /connect|closed/i.test(e.message)) {
      console.error("Redis error: " + (lastError ?? e).message);
      return 3;
    }
    console.error("bad setting: " + e.message);
    return 2;
  } finally {
    await watch?.close();
    redis.disconnect();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exitCode = await main();
