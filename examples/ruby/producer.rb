#!/usr/bin/env ruby
# frozen_string_literal: true

# relayq producer for Ruby: enqueue mail jobs, watch them, seal secrets.
#
# Gems: redis (4.x or 5.x), msgpack; sealing uses the standard openssl.
# (Debian: ruby-redis ruby-msgpack.) It speaks the wire format of
# docs/producers.md:
#
#   connect = -> { Redis.new(url: url) }
#   producer = Relayq::Producer.new(connect.call, prefix: "relayq", connect: connect)
#   status = producer.enqueue_and_wait(job, timeout: 60)  # subscribes first
#   sealed = Relayq.seal(key_b64, "tenant SMTP password") # "enc:v1:..."
#
# Run as a script it is the worked example of examples/README.md: it saves a
# tenant's SMTP settings with a sealed password (when RELAYQ_EXAMPLE_SMTP_HOST
# is set), enqueues an invoice with a PDF attachment, waits for the final
# state on P:events and prints the status hash as one JSON line.
# Settings and exit codes: examples/README.md.
#
# Strings: msgpack-ruby writes a String as msgpack `str` unless its encoding
# is BINARY (ASCII-8BIT), which it writes as `bin`: give attachment data as
# File.binread(...) or str.b. Every other text must be valid UTF-8.

require "base64"
require "digest"
require "json"
require "openssl"
require "securerandom"

require "msgpack"
require "redis"

module Relayq
  FINAL_STATES = %w[sent partial failed].freeze
  NAME_RE = /\A[A-Za-z0-9._:@-]{1,128}\z/.freeze
  SECRET_FIELDS = %w[smtp_password mailgun_api_key dkim_private_key].freeze

  # The enqueue script of docs/producers.md, one job per call (librelayq's
  # producer/lib/enqueue.c runs the same steps for a batch of jobs per call).
  # KEYS: status hash, queue list (or P:delayed), events channel. ARGV:
  # payload, zset score or "" for a list push, event JSON, then the status
  # hash's field/value pairs. Returns 1, or the existing state when the id
  # already has a status: the id is the idempotency key, so a retried request
  # never resets a final status (which would send the mail twice).
  ENQUEUE_LUA = <<~LUA
    local cur = redis.call('HMGET', KEYS[1], 'state', 'tenant')
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
  LUA
  ENQUEUE_SHA = Digest::SHA1.hexdigest(ENQUEUE_LUA)

  # The job breaks a rule of the contract; the message names the field.
  class JobError < ArgumentError; end

  module_function

  def now_ms
    Process.clock_gettime(Process::CLOCK_REALTIME, :millisecond)
  end

  # A new id like librelayq's: 12 hex digits of the ms clock + 16 random.
  # Prefer your own business id ("invoice-42-mail-1"): a retried request then
  # cannot send twice.
  def new_id
    format("%012x", now_ms & 0xFFFFFFFFFFFF) + SecureRandom.hex(8)
  end

  def check_address(field, value, allow_name)
    raise JobError, "field '#{field}': an address must be a non-empty string" unless value.is_a?(String) && !value.empty?
    raise JobError, "field '#{field}': an address may not hold CR/LF or exceed 998 bytes" if value.match?(/[\r\n]/) || value.bytesize > 998

    spec = value
    if value.end_with?(">") && value.include?("<")
      raise JobError, "field '#{field}' must be a bare address (no 'Name <addr>')" unless allow_name

      spec = value[(value.rindex("<") + 1)...-1]
    end
    raise JobError, "field '#{field}': '#{spec}' is not an address" if !spec.include?("@") || spec.start_with?("@") || spec.end_with?("@")
  end

  # Raises JobError when job breaks one of the contract's main rules
  # (docs/producers.md lists all of them); the worker is the final judge.
  def validate(job)
    %w[id tenant].each do |f|
      raise JobError, "field '#{f}' must be 1-128 characters of A-Z a-z 0-9 . _ : @ -" unless job[f].is_a?(String) && NAME_RE.match?(job[f])
    end
    total = 0
    { "to" => true, "cc" => true, "bcc" => false }.each do |f, allow_name|
      list = job[f] || []
      raise JobError, "field '#{f}' must be an array of strings" unless list.is_a?(Array)

      list.each { |a| check_address(f, a, allow_name) }
      total += list.size
    end
    raise JobError, "the job has no recipient: give 'to', 'cc' or 'bcc'" if total.zero?
    raise JobError, "more than 10000 recipients: split the job" if total > 10_000

    %w[from reply_to].each { |f| check_address(f, job[f], false) unless job[f].nil? }
    %w[subject from_name text html].each do |f|
      raise JobError, "field '#{f}' is not valid UTF-8" if job[f] && !job[f].dup.force_encoding(Encoding::UTF_8).valid_encoding?
    end
    %w[subject from_name].each { |f| raise JobError, "field '#{f}' must be one line" if job[f]&.match?(/[\r\n]/) }
    raise JobError, "the job has no body: give 'text' or 'html' (or 'raw')" if job["raw"].nil? && job["text"].nil? && job["html"].nil?

    (job["headers"] || {}).each do |name, value|
      raise JobError, "header '#{name}': the value must be one line" if value.to_s.match?(/[\r\n]/)
    end
    (job["attachments"] || []).each_with_index do |a, i|
      raise JobError, "attachment #{i + 1} needs a 'filename' and 'data' (a binary String)" unless a["filename"] && a["data"].is_a?(String)
    end
  end

  def secret_key(key_b64)
    key = Base64.strict_decode64(key_b64.to_s.strip)
    raise ArgumentError, "RELAYQ_SECRET_KEY must be 32 bytes in base64 (openssl rand -base64 32)" unless key.bytesize == 32

    key
  rescue ArgumentError
    raise ArgumentError, "RELAYQ_SECRET_KEY must be 32 bytes in base64 (openssl rand -base64 32)"
  end

  # "enc:v1:" + base64(nonce12 | ciphertext | tag16), AES-256-GCM, no AAD.
  def seal(key_b64, plaintext)
    c = OpenSSL::Cipher.new("aes-256-gcm").encrypt
    c.key = secret_key(key_b64)
    nonce = SecureRandom.random_bytes(12)
    c.iv = nonce
    c.auth_data = ""
    data = plaintext.to_s.b
    ct = (data.empty? ? "".b : c.update(data)) + c.final # update refuses ""
    "enc:v1:" + Base64.strict_encode64(nonce + ct + c.auth_tag(16))
  end

  # The inverse of seal; raises OpenSSL::Cipher::CipherError on a wrong key.
  def open_sealed(key_b64, sealed)
    raise ArgumentError, "not a sealed value (enc:v1:...)" unless sealed.start_with?("enc:v1:")

    blob = Base64.strict_decode64(sealed.delete_prefix("enc:v1:"))
    d = OpenSSL::Cipher.new("aes-256-gcm").decrypt
    d.key = secret_key(key_b64)
    d.iv = blob[0, 12]
    d.auth_tag = blob[-16..]
    d.auth_data = ""
    body = blob[12...-16]
    ((body.empty? ? "".b : d.update(body)) + d.final).force_encoding(Encoding::UTF_8)
  end

  # Enqueues jobs and saves tenants through one Redis client.
  class Producer
    attr_reader :redis, :prefix

    # connect: a lambda returning a new Redis connection (same URL), used
    # for the subscription of enqueue_and_wait: a subscribed connection can
    # run no other command.
    def initialize(redis, prefix: "relayq", connect: nil)
      @redis = redis
      @prefix = prefix
      @connect = connect
    end

    def key(*parts)
      [prefix, *parts].join(":")
    end

    # Validates job (a Hash with String keys), gives it an id if it has
    # none, and in one atomic step writes its status `queued` (or `deferred`
    # when not_before is in the future), pushes it and publishes the event.
    # Returns [id, nil], or [id, existing_state] when the id was taken: then
    # nothing was pushed and the job is (or was) on its way.
    def enqueue(job, queue: "default")
      job = { "v" => 1 }.merge(job.transform_keys(&:to_s))
      job["id"] ||= Relayq.new_id
      Relayq.validate(job)
      raise JobError, "queue name must be 1-128 characters of A-Z a-z 0-9 . _ : @ -" unless NAME_RE.match?(queue)

      now = Relayq.now_ms
      delayed = job["not_before"].to_i > now
      # A delayed job names its queue in "_queue", as its first key: the
      # worker's Lua reads it from the raw bytes when it is due.
      job = { "_queue" => queue }.merge(job.reject { |k, _| k == "_queue" }) if delayed
      payload = MessagePack.pack(job)
      state = delayed ? "deferred" : "queued"
      recipients = %w[to cc bcc].sum { |f| (job[f] || []).size }
      event = JSON.generate("id" => job["id"], "tenant" => job["tenant"], "state" => state,
                            "attempts" => 0, "ts" => now)
      fields = ["state", state, "tenant", job["tenant"], "created_at", now, "updated_at", now,
                "attempts", 0, "recipients", recipients]
      fields += ["next_attempt_at", job["not_before"]] if delayed
      (job["meta"] || {}).each { |k, v| fields += ["meta.#{k}", v] }
      target = delayed ? key("delayed") : key("queue", queue)
      keys = [key("status", job["id"]), target, key("events")]
      argv = [payload, delayed ? job["not_before"].to_s : "", event, *fields].map(&:to_s)
      res = begin
        redis.evalsha(ENQUEUE_SHA, keys: keys, argv: argv)
      rescue Redis::CommandError => e
        raise unless e.message.start_with?("NOSCRIPT")

        redis.eval(ENQUEUE_LUA, keys: keys, argv: argv)
      end
      [job["id"], res.is_a?(String) ? res : nil]
    end

    # The status hash ({} when there is none).
    def status(id)
      redis.hgetall(key("status", id))
    end

    # HSETs the tenant's settings (docs/tenants.md); seal secret fields
    # first. Workers cache tenants for a few seconds (RELAYQ_TENANT_CACHE_MS).
    def save_tenant(tenant, fields)
      raise JobError, "tenant must be 1-128 characters of A-Z a-z 0-9 . _ : @ -" unless NAME_RE.match?(tenant)

      fields = fields.transform_keys(&:to_s).transform_values(&:to_s)
      SECRET_FIELDS.each do |name|
        v = fields[name]
        raise ArgumentError, "#{name} must be sealed with Relayq.seal before it is stored" if v && !v.empty? && !v.start_with?("enc:v1:")
      end
      redis.mapped_hmset(key("tenant", tenant), fields)
    end

    # Subscribes to P:events on a second connection, enqueues the job once
    # Redis has confirmed the subscription (so no event can be missed), and
    # returns [id, existing_state, status hash] when the job is final.
    # on_event sees each of the job's events. Raises Redis::TimeoutError
    # after timeout seconds.
    def enqueue_and_wait(job, queue: "default", timeout: 60, &on_event)
      raise ArgumentError, "enqueue_and_wait needs Producer.new(..., connect: -> { Redis.new(url: url) })" unless @connect

      sub = @connect.call
      id = existing = nil
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
      # The timeout bounds each read; the deadline bounds the whole wait
      # while other jobs' events keep the channel busy.
      sub.subscribe_with_timeout(timeout, key("events")) do |on|
        on.subscribe do
          id, existing = enqueue(job, queue: queue)
          # A duplicate of a finished job publishes nothing: look first.
          sub.unsubscribe if FINAL_STATES.include?(status(id)["state"])
        end
        on.message do |_channel, message|
          raise Redis::TimeoutError, "job #{id} not final after #{timeout}s" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

          ev = begin
            JSON.parse(message)
          rescue JSON::ParserError
            next
          end
          next unless ev["id"] == id # other jobs' events: a dashboard would show them

          on_event&.call(ev)
          sub.unsubscribe if FINAL_STATES.include?(ev["state"])
        end
      end
      [id, existing, status(id)]
    ensure
      sub&.close
    end
  end

  # A stand-in invoice PDF: every byte value, to show binary safety.
  def example_attachment
    "%PDF-1.4\n".b + (0..255).to_a.pack("C*") + "\n%%EOF\n".b
  end

  def example_main
    env = ->(k, d = nil) { v = ENV[k]; v.nil? || v.empty? ? d : v }
    url = env.("RELAYQ_REDIS_URL", "redis://127.0.0.1:6379")
    tenant = env.("RELAYQ_EXAMPLE_TENANT", "acme")
    to = env.("RELAYQ_EXAMPLE_TO")
    if to.nil?
      warn "set RELAYQ_EXAMPLE_TO to the recipient's address"
      return 2
    end
    # rediss:// works as is (ssl_params: { ca_file: ENV["RELAYQ_REDIS_CA_FILE"] } for
    # a private CA); Sentinel: Redis.new(name: "mymaster", sentinels: [{ host:, port: }])
    # (docs/producers.md, "Connecting: TLS and Sentinel").
    connect = -> { Redis.new(url: url, connect_timeout: 5, timeout: 30) }
    producer = Producer.new(connect.call, prefix: env.("RELAYQ_PREFIX", "relayq"), connect: connect)
    if env.("RELAYQ_EXAMPLE_SMTP_HOST")
      key = env.("RELAYQ_SECRET_KEY")
      if key.nil?
        warn "set RELAYQ_SECRET_KEY (the workers' key) to seal the password"
        return 2
      end
      fields = { "gateway" => "smtp", "smtp_host" => env.("RELAYQ_EXAMPLE_SMTP_HOST"),
                 "smtp_security" => env.("RELAYQ_EXAMPLE_SMTP_SECURITY", "starttls") }
      fields["smtp_port"] = env.("RELAYQ_EXAMPLE_SMTP_PORT") if env.("RELAYQ_EXAMPLE_SMTP_PORT")
      if env.("RELAYQ_EXAMPLE_SMTP_USER")
        fields["smtp_user"] = env.("RELAYQ_EXAMPLE_SMTP_USER")
        fields["smtp_password"] = seal(key, env.("RELAYQ_EXAMPLE_SMTP_PASSWORD", ""))
      end
      fields["from_email"] = env.("RELAYQ_EXAMPLE_FROM") if env.("RELAYQ_EXAMPLE_FROM")
      producer.save_tenant(tenant, fields)
    end
    job = {
      "v" => 1,
      "id" => env.("RELAYQ_EXAMPLE_ID") || new_id,
      "tenant" => tenant,
      "to" => [to],
      "subject" => "Fattura n. 42 — €1.234,56",
      "text" => "Gentile cliente,\nin allegato la fattura n. 42.\nGrazie — Acme S.r.l. ✓\n",
      "html" => "<p>Gentile cliente,<br>in allegato la fattura n. 42.</p>",
      "headers" => { "X-Invoice" => "INV-42" },
      "attachments" => [{ "filename" => "fattura-42.pdf", "content_type" => "application/pdf",
                          "data" => example_attachment }],
      "meta" => { "invoice" => "INV-42", "producer" => "ruby" }
    }
    job["from"] = env.("RELAYQ_EXAMPLE_FROM") if env.("RELAYQ_EXAMPLE_FROM")
    job["not_before"] = now_ms + env.("RELAYQ_EXAMPLE_DELAY_MS").to_i if env.("RELAYQ_EXAMPLE_DELAY_MS")
    timeout = env.("RELAYQ_EXAMPLE_TIMEOUT_S", "60").to_f
    id = job["id"]
    _, existing, st = producer.enqueue_and_wait(job, timeout: timeout) do |ev|
      warn "event #{JSON.generate(ev)}"
    end
    warn(existing ? "job #{id} already exists (state #{existing}): not enqueued again" : "enqueued #{id}")
    puts JSON.generate(st.sort.to_h)
    st["state"] == "sent" ? 0 : 1
  rescue JobError => e
    warn "invalid job: #{e.message}"
    2
  rescue ArgumentError => e
    warn "bad setting: #{e.message}"
    2
  rescue Redis::TimeoutError
    warn "job #{id} not final after #{timeout}s"
    1
  rescue Redis::BaseError => e
    warn "Redis error: #{e.message}"
    3
  end
end

exit(Relayq.example_main) if $PROGRAM_NAME == __FILE__
