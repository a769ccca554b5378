<?php
/*
 * relayq producer for PHP: enqueue mail jobs, watch them, seal secrets.
 *
 * Needs the phpredis and msgpack extensions (Debian: php-cli php-redis
 * php-msgpack; PECL: redis, msgpack) and ext-openssl. It speaks the wire
 * format of docs/producers.md:
 *
 *     $producer = new RelayqProducer(RelayqProducer::connect($url), 'relayq');
 *     $events = RelayqEvents::open($url, $producer->key('events')); // first
 *     [$id, $existing] = $producer->enqueue($job);
 *     $status = $events->waitFinal($producer, $id, 60.0);
 *     $sealed = relayq_seal($keyB64, 'tenant SMTP password');      // enc:v1:...
 *
 * Run as a script it is the worked example of examples/README.md: it saves a
 * tenant's SMTP settings with a sealed password (when
 * RELAYQ_EXAMPLE_SMTP_HOST is set), enqueues an invoice with a PDF
 * attachment, waits for the final state on P:events and prints the status
 * hash as one JSON line. Settings and exit codes: examples/README.md.
 *
 * PHP strings are bytes: the msgpack extension writes every string as msgpack
 * `str`, including attachment data. relayq accepts `str` for `data` and
 * `raw` (any bytes), and requires valid UTF-8 in every other text field, so
 * convert legacy ISO-8859-1/Windows-1252 text first (iconv() or
 * mb_convert_encoding()). An empty PHP array packs as a msgpack array:
 * leave out empty `headers`/`meta` rather than sending [] where a map is
 * expected.
 */

declare(strict_types=1);

const RELAYQ_FINAL_STATES = ['sent', 'partial', 'failed'];
const RELAYQ_NAME_RE = '/\A[A-Za-z0-9._:@-]{1,128}\z/';

/* The enqueue script of docs/producers.md, one job per call (librelayq's
 * producer/lib/enqueue.c runs the same steps for a batch of jobs per call).
 * KEYS: status hash, queue list (or P:delayed), events channel. ARGV:
 * payload, zset score or '' for a list push, event JSON, then the status
 * hash's field/value pairs. Returns 1, or the existing state when the id
 * already has a status: the id is the idempotency key, so a retried request
 * never resets a final status (which would send the mail twice). */
const RELAYQ_ENQUEUE_LUA = <<<'LUA'
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

LUA;

/** The job breaks a rule of the contract; the message names the field. */
final class RelayqJobError extends InvalidArgumentException {}

function relayq_now_ms(): int
{
    return (int) floor(microtime(true) * 1000);
}

/** A new id like librelayq's: 12 hex digits of the ms clock + 16 random.
 * Prefer your own business id ("invoice-42-mail-1"): a retried request then
 * cannot send twice. */
function relayq_new_id(): string
{
    return sprintf('%012x', relayq_now_ms() & 0xFFFFFFFFFFFF) . bin2hex(random_bytes(8));
}

function relayq_check_address(string $field, $value, bool $allowName): void
{
    if (!is_string($value) || $value === '') {
        throw new RelayqJobError("field '$field': an address must be a non-empty string");
    }
    if (strpbrk($value, "\r\n") !== false || strlen($value) > 998) {
        throw new RelayqJobError("field '$field': an address may not hold CR/LF or exceed 998 bytes");
    }
    $spec = $value;
    if (str_ends_with($value, '>') && str_contains($value, '<')) {
        if (!$allowName) {
            throw new RelayqJobError("field '$field' must be a bare address (no 'Name <addr>')");
        }
        $spec = substr($value, strrpos($value, '<') + 1, -1);
    }
    if (!str_contains($spec, '@') || str_starts_with($spec, '@') || str_ends_with($spec, '@')) {
        throw new RelayqJobError("field '$field': '$spec' is not an address");
    }
}

/** Throws RelayqJobError when $job breaks one of the contract's main rules
 * (docs/producers.md lists all of them); the worker is the final judge. */
function relayq_validate(array $job): void
{
    foreach (['id', 'tenant'] as $f) {
        if (!is_string($job[$f] ?? null) || !preg_match(RELAYQ_NAME_RE, $job[$f])) {
            throw new RelayqJobError("field '$f' must be 1-128 characters of A-Z a-z 0-9 . _ : @ -");
        }
    }
    $total = 0;
    foreach (['to' => true, 'cc' => true, 'bcc' => false] as $f => $allowName) {
        $list = $job[$f] ?? [];
        if (!is_array($list) || !array_is_list($list)) {
            throw new RelayqJobError("field '$f' must be a list of strings");
        }
        foreach ($list as $a) {
            relayq_check_address($f, $a, $allowName);
        }
        $total += count($list);
    }
    if ($total === 0) {
        throw new RelayqJobError("the job has no recipient: give 'to', 'cc' or 'bcc'");
    }
    if ($total > 10000) {
        throw new RelayqJobError('more than 10000 recipients: split the job');
    }
    foreach (['from', 'reply_to'] as $f) {
        if (isset($job[$f])) {
            relayq_check_address($f, $job[$f], false);
        }
    }
    foreach (['subject', 'from_name', 'text', 'html'] as $f) {
        // preg_match with /u fails on invalid UTF-8 (no ext-mbstring needed).
        if (isset($job[$f]) && preg_match('//u', (string) $job[$f]) !== 1) {
            throw new RelayqJobError("field '$f' is not valid UTF-8 (convert it with iconv or mb_convert_encoding)");
        }
    }
    foreach (['subject', 'from_name'] as $f) {
        if (strpbrk($job[$f] ?? '', "\r\n") !== false) {
            throw new RelayqJobError("field '$f' must be one line");
        }
    }
    if (!isset($job['raw']) && !isset($job['text']) && !isset($job['html'])) {
        throw new RelayqJobError("the job has no body: give 'text' or 'html' (or 'raw')");
    }
    foreach (['headers', 'meta'] as $f) {
        if (isset($job[$f]) && ($job[$f] === [] || array_is_list($job[$f]))) {
            throw new RelayqJobError("field '$f' must be a non-empty map (leave it out when empty)");
        }
    }
    foreach ($job['headers'] ?? [] as $name => $value) {
        if (strpbrk((string) $value, "\r\n") !== false) {
            throw new RelayqJobError("header '$name': the value must be one line");
        }
    }
    foreach ($job['attachments'] ?? [] as $i => $a) {
        if (empty($a['filename']) || !is_string($a['data'] ?? null)) {
            throw new RelayqJobError('attachment ' . ($i + 1) . " needs a 'filename' and 'data'");
        }
    }
}

function relayq_key_bytes(string $keyB64): string
{
    $key = base64_decode(trim($keyB64), true);
    if ($key === false || strlen($key) !== 32) {
        throw new InvalidArgumentException(
            'RELAYQ_SECRET_KEY must be 32 bytes in base64 (openssl rand -base64 32)');
    }
    return $key;
}

/** 'enc:v1:' . base64(nonce12 | ciphertext | tag16), AES-256-GCM, no AAD. */
function relayq_seal(string $keyB64, string $plaintext): string
{
    $nonce = random_bytes(12);
    $tag = '';
    $ct = openssl_encrypt($plaintext, 'aes-256-gcm', relayq_key_bytes($keyB64),
                          OPENSSL_RAW_DATA, $nonce, $tag, '', 16);
    if ($ct === false) {
        throw new RuntimeException('openssl_encrypt failed: ' . openssl_error_string());
    }
    return 'enc:v1:' . base64_encode($nonce . $ct . $tag);
}

/** The inverse of relayq_seal(); throws on a wrong key or a tampered value. */
function relayq_open(string $keyB64, string $sealed): string
{
    $blob = str_starts_with($sealed, 'enc:v1:') ? base64_decode(substr($sealed, 7), true) : false;
    if ($blob === false || strlen($blob) < 28) {
        throw new InvalidArgumentException('not a sealed value (enc:v1:...)');
    }
    $pt = openssl_decrypt(substr($blob, 12, -16), 'aes-256-gcm', relayq_key_bytes($keyB64),
                          OPENSSL_RAW_DATA, substr($blob, 0, 12), substr($blob, -16));
    if ($pt === false) {
        throw new RuntimeException('the sealed value does not open with this key');
    }
    return $pt;
}

/** Enqueues jobs and saves tenants through one phpredis connection. */
final class RelayqProducer
{
    private ?string $sha = null;

    public function __construct(private Redis $redis, private string $prefix = 'relayq') {}

    /** redis://[[user]:password@]host[:port][/db] -> a connected Redis. */
    public static function connect(string $url): Redis
    {
        $u = relayq_parse_url($url);
        $r = new Redis();
        // TLS: connect('tls://' . host, port, 5.0, null, 0, 30.0, ['stream' =>
        // ['cafile' => getenv('RELAYQ_REDIS_CA_FILE')]]); Sentinel: ask
        // (new RedisSentinel(h, p))->getMasterAddrByName(name) first
        // (docs/producers.md, "Connecting: TLS and Sentinel").
        $r->connect($u['host'], $u['port'], 5.0, null, 0, 30.0);
        if ($u['pass'] !== null) {
            $ok = $u['user'] !== null ? $r->auth([$u['user'], $u['pass']]) : $r->auth($u['pass']);
            if (!$ok) {
                throw new RedisException('Redis refused the password: check RELAYQ_REDIS_URL');
            }
        }
        if ($u['db'] !== 0) {
            $r->select($u['db']);
        }
        return $r;
    }

    public function key(string ...$parts): string
    {
        return implode(':', [$this->prefix, ...$parts]);
    }

    /** EVALSHA, loading the script on NOSCRIPT (after a Redis restart). */
    private function enqueueScript(array $args): mixed
    {
        $this->sha ??= sha1(RELAYQ_ENQUEUE_LUA);
        $this->redis->clearLastError();
        $res = $this->redis->evalSha($this->sha, $args, 3);
        if ($res === false && str_starts_with((string) $this->redis->getLastError(), 'NOSCRIPT')) {
            $this->redis->clearLastError();
            $res = $this->redis->eval(RELAYQ_ENQUEUE_LUA, $args, 3);
        }
        if ($res === false) {
            throw new RedisException('Redis refused the enqueue: ' . $this->redis->getLastError());
        }
        return $res;
    }

    /**
     * Validates $job, gives it an id if it has none, and in one atomic step
     * writes its status `queued` (or `deferred` when not_before is in the
     * future), pushes it and publishes the event. Returns [id, null], or
     * [id, existing state] when the id was taken: then nothing was pushed
     * and the job is (or was) on its way.
     */
    public function enqueue(array $job, string $queue = 'default'): array
    {
        $job = ['v' => 1] + $job;
        $job['id'] ??= relayq_new_id();
        relayq_validate($job);
        if (!preg_match(RELAYQ_NAME_RE, $queue)) {
            throw new RelayqJobError('queue name must be 1-128 characters of A-Z a-z 0-9 . _ : @ -');
        }
        $now = relayq_now_ms();
        $delayed = (int) ($job['not_before'] ?? 0) > $now;
        if ($delayed) {
            // A delayed job names its queue in "_queue", as its first key:
            // the worker's Lua reads it from the raw bytes when it is due.
            unset($job['_queue']);
            $job = ['_queue' => $queue] + $job;
        }
        $payload = msgpack_pack($job);
        $state = $delayed ? 'deferred' : 'queued';
        $recipients = count($job['to'] ?? []) + count($job['cc'] ?? []) + count($job['bcc'] ?? []);
        $event = json_encode(['id' => $job['id'], 'tenant' => $job['tenant'], 'state' => $state,
                              'attempts' => 0, 'ts' => $now], JSON_THROW_ON_ERROR);
        $fields = ['state', $state, 'tenant', $job['tenant'], 'created_at', $now,
                   'updated_at', $now, 'attempts', 0, 'recipients', $recipients];
        if ($delayed) {
            array_push($fields, 'next_attempt_at', $job['not_before']);
        }
        foreach ($job['meta'] ?? [] as $k => $v) {
            array_push($fields, "meta.$k", $v);
        }
        $target = $delayed ? $this->key('delayed') : $this->key('queue', $queue);
        $args = [$this->key('status', $job['id']), $target, $this->key('events'),
                 $payload, $delayed ? (string) $job['not_before'] : '', $event];
        $res = $this->enqueueScript(array_map('strval', array_merge($args, $fields)));
        return [$job['id'], is_string($res) ? $res : null];
    }

    /** The status hash ([] when there is none). */
    public function status(string $id): array
    {
        return $this->redis->hGetAll($this->key('status', $id)) ?: [];
    }

    /** HSETs the tenant's settings (docs/tenants.md); seal secret fields
     * first. Workers cache tenants for a few seconds (RELAYQ_TENANT_CACHE_MS). */
    public function saveTenant(string $tenant, array $fields): void
    {
        if (!preg_match(RELAYQ_NAME_RE, $tenant)) {
            throw new RelayqJobError('tenant must be 1-128 characters of A-Z a-z 0-9 . _ : @ -');
        }
        foreach (['smtp_password', 'mailgun_api_key', 'dkim_private_key'] as $name) {
            if (($fields[$name] ?? '') !== '' && !str_starts_with((string) $fields[$name], 'enc:v1:')) {
                throw new InvalidArgumentException("$name must be sealed with relayq_seal() before it is stored");
            }
        }
        $this->redis->hMSet($this->key('tenant', $tenant), array_map('strval', $fields));
    }
}

/** @return array{host:string,port:int,user:?string,pass:?string,db:int} */
function relayq_parse_url(string $url): array
{
    $p = parse_url($url);
    if ($p === false || ($p['scheme'] ?? '') !== 'redis' || empty($p['host'])) {
        throw new InvalidArgumentException('RELAYQ_REDIS_URL must look like redis://[:password@]host[:port][/db]');
    }
    $user = isset($p['user']) && $p['user'] !== '' ? rawurldecode($p['user']) : null;
    return ['host' => $p['host'], 'port' => $p['port'] ?? 6379, 'user' => $user,
            'pass' => isset($p['pass']) ? rawurldecode($p['pass']) : null,
            'db' => (int) ltrim($p['path'] ?? '/0', '/')];
}

/**
 * A subscription to P:events over its own socket.
 *
 * Why not phpredis's subscribe(): it blocks inside the call until a message
 * arrives, so the job could only be enqueued before subscribing, and its
 * `queued` and even final events could be missed. Speaking RESP (the Redis
 * protocol: arrays of length-prefixed strings) directly takes 40 lines and
 * lets us subscribe, see the confirmation, then enqueue, then read with a
 * deadline.
 */
final class RelayqEvents
{
    /** @var resource */
    private $sock;

    private function __construct($sock)
    {
        $this->sock = $sock;
    }

    public static function open(string $url, string $channel): self
    {
        $u = relayq_parse_url($url);
        $sock = @stream_socket_client("tcp://{$u['host']}:{$u['port']}", $errno, $errstr, 5.0);
        if ($sock === false) {
            throw new RedisException("cannot connect to Redis at {$u['host']}:{$u['port']}: $errstr");
        }
        $ev = new self($sock);
        $deadline = microtime(true) + 10.0;
        if ($u['pass'] !== null) { // pub/sub ignores the db number: no SELECT
            $ev->send($u['user'] !== null ? ['AUTH', $u['user'], $u['pass']] : ['AUTH', $u['pass']]);
            if ($ev->read($deadline) !== 'OK') {
                throw new RedisException('Redis refused the password: check RELAYQ_REDIS_URL');
            }
        }
        $ev->send(['SUBSCRIBE', $channel]);
        $reply = $ev->read($deadline);
        if (!is_array($reply) || $reply[0] !== 'subscribe') {
            throw new RedisException("Redis did not confirm SUBSCRIBE $channel");
        }
        return $ev;
    }

    private function send(array $args): void
    {
        $out = '*' . count($args) . "\r\n";
        foreach ($args as $a) {
            $out .= '$' . strlen($a) . "\r\n" . $a . "\r\n";
        }
        fwrite($this->sock, $out);
    }

    private function wait(float $deadline): bool
    {
        $left = $deadline - microtime(true);
        if ($left <= 0) {
            return false;
        }
        stream_set_timeout($this->sock, (int) $left, (int) (fmod($left, 1.0) * 1e6));
        return true;
    }

    /** One RESP value, or null when the deadline passed first. */
    private function read(float $deadline): mixed
    {
        if (!$this->wait($deadline) || ($line = fgets($this->sock)) === false) {
            if (feof($this->sock)) {
                throw new RedisException('Redis closed the events connection');
            }
            return null;
        }
        $type = $line[0];
        $rest = rtrim(substr($line, 1), "\r\n");
        switch ($type) {
            case '+': return $rest;
            case '-': throw new RedisException($rest);
            case ':': return (int) $rest;
            case '$':
                $n = (int) $rest;
                if ($n < 0) {
                    return null;
                }
                $data = '';
                while (strlen($data) < $n + 2) {
                    if (!$this->wait($deadline + 5.0) || ($chunk = fread($this->sock, $n + 2 - strlen($data))) === false || $chunk === '') {
                        throw new RedisException('the events connection broke inside a reply');
                    }
                    $data .= $chunk;
                }
                return substr($data, 0, $n);
            case '*':
                $items = [];
                for ($i = 0, $n = (int) $rest; $i < $n; $i++) {
                    $items[] = $this->read($deadline + 5.0); // the rest of a started reply
                }
                return $items;
        }
        throw new RedisException('unexpected reply from Redis');
    }

    /**
     * Returns the status hash once $id is sent, partial or failed; $onEvent
     * sees each of its events. Throws RuntimeException after $timeout s.
     */
    public function waitFinal(RelayqProducer $p, string $id, float $timeout, ?callable $onEvent = null): array
    {
        $st = $p->status($id);
        if (in_array($st['state'] ?? '', RELAYQ_FINAL_STATES, true)) {
            return $st; // e.g. a duplicate of a finished job: no event comes
        }
        $deadline = microtime(true) + $timeout;
        while (true) {
            $msg = $this->read($deadline);
            if ($msg === null) {
                throw new RuntimeException("job $id not final after {$timeout}s");
            }
            if (!is_array($msg) || $msg[0] !== 'message') {
                continue;
            }
            $ev = json_decode($msg[2], true);
            if (!is_array($ev) || ($ev['id'] ?? null) !== $id) {
                continue; // other jobs' events: a dashboard would show them
            }
            if ($onEvent) {
                $onEvent($ev);
            }
            if (in_array($ev['state'] ?? '', RELAYQ_FINAL_STATES, true)) {
                return $p->status($id);
            }
        }
    }

    public function close(): void
    {
        fclose($this->sock);
    }
}

/** A stand-in invoice PDF: every byte value, to show binary safety. */
function relayq_example_attachment(): string
{
    return "%PDF-1.4\n" . implode('', array_map('chr', range(0, 255))) . "\n%%EOF\n";
}

function relayq_example_main(): int
{
    $env = fn(string $k, ?string $d = null): ?string => (($v = getenv($k)) === false || $v === '') ? $d : $v;
    $url = $env('RELAYQ_REDIS_URL', 'redis://127.0.0.1:6379');
    $prefix = $env('RELAYQ_PREFIX', 'relayq');
    $tenant = $env('RELAYQ_EXAMPLE_TENANT', 'acme');
    $to = $env('RELAYQ_EXAMPLE_TO');
    $timeout = (float) $env('RELAYQ_EXAMPLE_TIMEOUT_S', '60');
    if ($to === null) {
        fwrite(STDERR, "set RELAYQ_EXAMPLE_TO to the recipient's address\n");
        return 2;
    }
    $events = null;
    try {
        $producer = new RelayqProducer(RelayqProducer::connect($url), $prefix);
        if ($env('RELAYQ_EXAMPLE_SMTP_HOST') !== null) {
            $key = $env('RELAYQ_SECRET_KEY');
            if ($key === null) {
                fwrite(STDERR, "set RELAYQ_SECRET_KEY (the workers' key) to seal the password\n");
                return 2;
            }
            $fields = ['gateway' => 'smtp', 'smtp_host' => $env('RELAYQ_EXAMPLE_SMTP_HOST'),
                       'smtp_security' => $env('RELAYQ_EXAMPLE_SMTP_SECURITY', 'starttls')];
            if ($env('RELAYQ_EXAMPLE_SMTP_PORT') !== null) {
                $fields['smtp_port'] = $env('RELAYQ_EXAMPLE_SMTP_PORT');
            }
            if ($env('RELAYQ_EXAMPLE_SMTP_USER') !== null) {
                $fields['smtp_user'] = $env('RELAYQ_EXAMPLE_SMTP_USER');
                $fields['smtp_password'] = relayq_seal($key, $env('RELAYQ_EXAMPLE_SMTP_PASSWORD', ''));
            }
            if ($env('RELAYQ_EXAMPLE_FROM') !== null) {
                $fields['from_email'] = $env('RELAYQ_EXAMPLE_FROM');
            }
            $producer->saveTenant($tenant, $fields);
        }
        $job = [
            'v' => 1,
            'id' => $env('RELAYQ_EXAMPLE_ID') ?? relayq_new_id(),
            'tenant' => $tenant,
            'to' => [$to],
            'subject' => 'Fattura n. 42 — €1.234,56',
            'text' => "Gentile cliente,\nin allegato la fattura n. 42.\nGrazie — Acme S.r.l. ✓\n",
            'html' => '<p>Gentile cliente,<br>in allegato la fattura n. 42.</p>',
            'headers' => ['X-Invoice' => 'INV-42'],
            'attachments' => [['filename' => 'fattura-42.pdf', 'content_type' => 'application/pdf',
                               'data' => relayq_example_attachment()]],
            'meta' => ['invoice' => 'INV-42', 'producer' => 'php'],
        ];
        if ($env('RELAYQ_EXAMPLE_FROM') !== null) {
            $job['from'] = $env('RELAYQ_EXAMPLE_FROM');
        }
        if ($env('RELAYQ_EXAMPLE_DELAY_MS') !== null) {
            $job['not_before'] = relayq_now_ms() + (int) $env('RELAYQ_EXAMPLE_DELAY_MS');
        }
        $events = RelayqEvents::open($url, $producer->key('events'));
        [$id, $existing] = $producer->enqueue($job);
        fwrite(STDERR, $existing !== null
            ? "job $id already exists (state $existing): not enqueued again\n" : "enqueued $id\n");
        $st = $events->waitFinal($producer, $id, $timeout, function (array $ev): void {
            fwrite(STDERR, 'event ' . json_encode($ev, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE) . "\n");
        });
        ksort($st, SORT_STRING);
        echo json_encode($st, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR), "\n";
        return ($st['state'] ?? '') === 'sent' ? 0 : 1;
    } catch (RelayqJobError $e) {
        fwrite(STDERR, 'invalid job: ' . $e->getMessage() . "\n");
        return 2;
    } catch (InvalidArgumentException $e) {
        fwrite(STDERR, 'bad setting: ' . $e->getMessage() . "\n");
        return 2;
    } catch (RedisException $e) {
        fwrite(STDERR, 'Redis error: ' . $e->getMessage() . "\n");
        return 3;
    } catch (RuntimeException $e) {
        fwrite(STDERR, $e->getMessage() . "\n");
        return 1;
    } finally {
        $events?->close();
    }
}

if (PHP_SAPI === 'cli' && realpath($_SERVER['SCRIPT_FILENAME'] ?? '') === __FILE__) {
    exit(relayq_example_main());
}
