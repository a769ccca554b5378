// Command producer is relayq's producer example for Go: enqueue a mail job,
// watch it on P:events, seal a tenant secret.
//
// Modules: github.com/gomodule/redigo (Redis), github.com/vmihailenco/msgpack/v5
// (msgpack; []byte is written as bin); sealing uses crypto/aes + crypto/cipher.
// It speaks the wire format of docs/producers.md. The types and functions
// above main() are meant to be copied into a service:
//
//	conn, _ := redis.DialURL(url)
//	p := &Producer{Conn: conn, Prefix: "relayq"}
//	ev, _ := OpenEvents(url, p.Key("events"))   // subscribe first
//	id, existing, _ := p.Enqueue(&job, "default")
//	status, _ := ev.WaitFinal(p, id, time.Minute, nil)
//	sealed, _ := Seal(keyB64, "tenant SMTP password") // "enc:v1:..."
//
// Run, it is the worked example of examples/README.md: it saves a tenant's
// SMTP settings with a sealed password (when RELAYQ_EXAMPLE_SMTP_HOST is set),
// enqueues an invoice with a PDF attachment, waits for the final state and
// prints the status hash as one JSON line. Settings and exit codes:
// examples/README.md.
package main

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/vmihailenco/msgpack/v5"
)

// The enqueue script of docs/producers.md, one job per call (librelayq's
// producer/lib/enqueue.c runs the same steps for a batch of jobs per call).
// KEYS: status hash, queue list (or P:delayed), events channel. ARGV: payload,
// zset score or "" for a list push, event JSON, then the status hash's
// field/value pairs. Returns 1, or the existing state when the id already has
// a status: the id is the idempotency key, so a retried request never resets
// a final status (which would send the mail twice).
const enqueueLua = `local cur = redis.call('HMGET', KEYS[1], 'state', 'tenant')
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
`

// Script.Do runs EVALSHA and falls back to EVAL on NOSCRIPT.
var enqueueScript = redis.NewScript(3, enqueueLua)

var nameRE = regexp.MustCompile(`\A[A-Za-z0-9._:@-]{1,128}\z`)

// Attachment is one file; Data is written as msgpack bin (any bytes).
type Attachment struct {
	Filename    string `msgpack:"filename"`
	ContentType string `msgpack:"content_type"`
	Data        []byte `msgpack:"data"`
}

// Job is the contract's job map. Fields are encoded in this order; Queue
// ("_queue") must stay first: the worker's Lua reads it from the raw bytes of
// a delayed job. Empty optional fields are left out.
type Job struct {
	Queue       string            `msgpack:"_queue,omitempty"` // set by Enqueue for delayed jobs
	V           int               `msgpack:"v"`
	ID          string            `msgpack:"id"`
	Tenant      string            `msgpack:"tenant"`
	To          []string          `msgpack:"to,omitempty"`
	Cc          []string          `msgpack:"cc,omitempty"`
	Bcc         []string          `msgpack:"bcc,omitempty"`
	From        string            `msgpack:"from,omitempty"`
	FromName    string            `msgpack:"from_name,omitempty"`
	ReplyTo     string            `msgpack:"reply_to,omitempty"`
	Subject     string            `msgpack:"subject,omitempty"`
	Text        string            `msgpack:"text,omitempty"`
	HTML        string            `msgpack:"html,omitempty"`
	Headers     map[string]string `msgpack:"headers,omitempty"`
	Attachments []Attachment      `msgpack:"attachments,omitempty"`
	Raw         []byte            `msgpack:"raw,omitempty"`
	Route       string            `msgpack:"route,omitempty"`
	Kind        string            `msgpack:"kind,omitempty"`
	NotBefore   int64             `msgpack:"not_before,omitempty"`
	ExpiresAt   int64             `msgpack:"expires_at,omitempty"`
	MaxAttempts int               `msgpack:"max_attempts,omitempty"`
	Meta        map[string]string `msgpack:"meta,omitempty"`
}

// JobError: the job breaks a rule of the contract; the message names the field.
type JobError struct{ msg string }

func (e *JobError) Error() string { return e.msg }

func jobErr(format string, a ...interface{}) error { return &JobError{fmt.Sprintf(format, a...)} }

func nowMs() int64 { return time.Now().UnixMilli() }

// NewID returns an id like librelayq's: 12 hex digits of the ms clock + 16
// random hex digits. Prefer your own business id ("invoice-42-mail-1"): a
// retried request then cannot send twice.
func NewID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return fmt.Sprintf("%012x%s", nowMs()&0xFFFFFFFFFFFF, hex.EncodeToString(b[:]))
}

func checkAddress(field, v string, allowName bool) error {
	if v == "" || strings.ContainsAny(v, "\r\n") || len(v) > 998 {
		return jobErr("field '%s': an address must be 1-998 bytes without CR/LF", field)
	}
	spec := v
	if strings.HasSuffix(v, ">") && strings.Contains(v, "<") {
		if !allowName {
			return jobErr("field '%s' must be a bare address (no 'Name <addr>')", field)
		}
		spec = v[strings.LastIndex(v, "<")+1 : len(v)-1]
	}
	if !strings.Contains(spec, "@") || strings.HasPrefix(spec, "@") || strings.HasSuffix(spec, "@") {
		return jobErr("field '%s': '%s' is not an address", field, spec)
	}
	return nil
}

// Validate checks the contract's main rules (docs/producers.md lists all of
// them); the worker is the final judge.
func Validate(j *Job) error {
	if !nameRE.MatchString(j.ID) {
		return jobErr("field 'id' must be 1-128 characters of A-Z a-z 0-9 . _ : @ -")
	}
	if !nameRE.MatchString(j.Tenant) {
		return jobErr("field 'tenant' must be 1-128 characters of A-Z a-z 0-9 . _ : @ -")
	}
	lists := []struct {
		name      string
		list      []string
		allowName bool
	}{{"to", j.To, true}, {"cc", j.Cc, true}, {"bcc", j.Bcc, false}}
	total := 0
	for _, l := range lists {
		for _, a := range l.list {
			if err := checkAddress(l.name, a, l.allowName); err != nil {
				return err
			}
		}
		total += len(l.list)
	}
	if total == 0 {
		return jobErr("the job has no recipient: give 'to', 'cc' or 'bcc'")
	}
	if total > 10000 {
		return jobErr("more than 10000 recipients: split the job")
	}
	for _, f := range []struct{ name, v string }{{"from", j.From}, {"reply_to", j.ReplyTo}} {
		if f.v != "" {
			if err := checkAddress(f.name, f.v, false); err != nil {
				return err
			}
		}
	}
	if strings.ContainsAny(j.Subject+j.FromName, "\r\n") {
		return jobErr("fields 'subject' and 'from_name' must be one line")
	}
	if j.Raw == nil && j.Text == "" && j.HTML == "" {
		return jobErr("the job has no body: give 'text' or 'html' (or 'raw')")
	}
	for name, v := range j.Headers {
		if strings.ContainsAny(v, "\r\n") {
			return jobErr("header '%s': the value must be one line", name)
		}
	}
	for i, a := range j.Attachments {
		if a.Filename == "" || a.Data == nil {
			return jobErr("attachment %d needs a 'filename' and 'data'", i+1)
		}
	}
	return nil
}

func secretKey(keyB64 string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(keyB64))
	if err != nil || len(key) != 32 {
		return nil, errors.New("RELAYQ_SECRET_KEY must be 32 bytes in base64 (openssl rand -base64 32)")
	}
	return key, nil
}

// Seal returns "enc:v1:" + base64(nonce12 | ciphertext | tag16), AES-256-GCM,
// no AAD.
func Seal(keyB64, plaintext string) (string, error) {
	key, err := secretKey(keyB64)
	if err != nil {
		return "", err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return "", err
	}
	gcm, err := cipher.NewGCM(block) // 12-byte nonce, 16-byte tag
	if err != nil {
		return "", err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	sealed := gcm.Seal(nonce, nonce, []byte(plaintext), nil) // nonce | ct | tag
	return "enc:v1:" + base64.StdEncoding.EncodeToString(sealed), nil
}

// Open is the inverse of Seal; it fails on a wrong key or a tampered value.
func Open(keyB64, sealed string) (string, error) {
	key, err := secretKey(keyB64)
	if err != nil {
		return "", err
	}
	blob, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sealed, "enc:v1:"))
	if err != nil || !strings.HasPrefix(sealed, "enc:v1:") || len(blob) < 28 {
		return "", errors.New("not a sealed value (enc:v1:...)")
	}
	block, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(block)
	pt, err := gcm.Open(nil, blob[:12], blob[12:], nil)
	return string(pt), err
}

// Producer enqueues jobs and saves tenants over one redigo connection (take
// it from a redis.Pool in a server; a Conn is not safe for concurrent use).
type Producer struct {
	Conn   redis.Conn
	Prefix string
}

// Key joins the prefix and parts with ':'.
func (p *Producer) Key(parts ...string) string {
	return strings.Join(append([]string{p.Prefix}, parts...), ":")
}

// Enqueue validates j, gives it an id if it has none, and in one atomic step
// writes its status `queued` (or `deferred` when NotBefore is in the future),
// pushes it and publishes the event. existing is "", or the state the id
// already had: then nothing was pushed and the job is (or was) on its way.
func (p *Producer) Enqueue(j *Job, queue string) (id, existing string, err error) {
	job := *j
	if job.V == 0 {
		job.V = 1
	}
	if job.ID == "" {
		job.ID = NewID()
	}
	if err := Validate(&job); err != nil {
		return "", "", err
	}
	if !nameRE.MatchString(queue) {
		return "", "", jobErr("queue name must be 1-128 characters of A-Z a-z 0-9 . _ : @ -")
	}
	now := nowMs()
	delayed := job.NotBefore > now
	job.Queue = ""
	if delayed {
		job.Queue = queue
	}
	payload, err := msgpack.Marshal(&job)
	if err != nil {
		return "", "", err
	}
	state := "queued"
	if delayed {
		state = "deferred"
	}
	event, _ := json.Marshal(map[string]interface{}{"id": job.ID, "tenant": job.Tenant,
		"state": state, "attempts": 0, "ts": now})
	target, score := p.Key("queue", queue), ""
	if delayed {
		target, score = p.Key("delayed"), strconv.FormatInt(job.NotBefore, 10)
	}
	args := []interface{}{p.Key("status", job.ID), target, p.Key("events"), payload, score, event,
		"state", state, "tenant", job.Tenant, "created_at", now, "updated_at", now, "attempts", 0,
		"recipients", len(job.To) + len(job.Cc) + len(job.Bcc)}
	if delayed {
		args = append(args, "next_attempt_at", job.NotBefore)
	}
	for k, v := range job.Meta {
		args = append(args, "meta."+k, v)
	}
	res, err := enqueueScript.Do(p.Conn, args...)
	if err != nil {
		return "", "", err
	}
	if b, ok := res.([]byte); ok {
		existing = string(b)
	}
	return job.ID, existing, nil
}

// Status returns the status hash (empty when there is none).
func (p *Producer) Status(id string) (map[string]string, error) {
	return redis.StringMap(p.Conn.Do("HGETALL", p.Key("status", id)))
}

// SaveTenant HSETs the tenant's settings (docs/tenants.md); seal secret
// fields first. Workers cache tenants for a few seconds (RELAYQ_TENANT_CACHE_MS).
func (p *Producer) SaveTenant(tenant string, fields map[string]string) error {
	if !nameRE.MatchString(tenant) {
		return jobErr("tenant must be 1-128 characters of A-Z a-z 0-9 . _ : @ -")
	}
	args := redis.Args{}.Add(p.Key("tenant", tenant))
	for k, v := range fields {
		if (k == "smtp_password" || k == "mailgun_api_key" || k == "dkim_private_key") &&
			v != "" && !strings.HasPrefix(v, "enc:v1:") {
			return fmt.Errorf("%s must be sealed with Seal before it is stored", k)
		}
		args = args.Add(k, v)
	}
	_, err := p.Conn.Do("HSET", args...)
	return err
}

// Events is a subscription to P:events on its own connection (a dashboard
// reads the same stream).
type Events struct{ psc redis.PubSubConn }

// OpenEvents subscribes and returns once Redis has confirmed, so a job
// enqueued afterwards cannot have its events missed.
func OpenEvents(url, channel string) (*Events, error) {
	c, err := redis.DialURL(url, redis.DialConnectTimeout(5*time.Second))
	if err != nil {
		return nil, err
	}
	e := &Events{redis.PubSubConn{Conn: c}}
	if err := e.psc.Subscribe(channel); err != nil {
		c.Close()
		return nil, err
	}
	switch v := e.psc.ReceiveWithTimeout(10 * time.Second).(type) {
	case redis.Subscription:
		return e, nil
	case error:
		c.Close()
		return nil, v
	}
	c.Close()
	return nil, errors.New("redis did not confirm SUBSCRIBE " + channel)
}

// ErrTimeout: the job was not final in time.
var ErrTimeout = errors.New("timed out")

// WaitFinal returns the status hash once id is sent, partial or failed;
// onEvent (may be nil) sees each of its events.
func (e *Events) WaitFinal(p *Producer, id string, timeout time.Duration, onEvent func(map[string]interface{})) (map[string]string, error) {
	if st, err := p.Status(id); err != nil || isFinal(st["state"]) {
		return st, err // e.g. a duplicate of a finished job: no event comes
	}
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, fmt.Errorf("job %s not final after %v: %w", id, timeout, ErrTimeout)
		}
		switch v := e.psc.ReceiveWithTimeout(left).(type) {
		case redis.Message:
			var ev map[string]interface{}
			if json.Unmarshal(v.Data, &ev) != nil || ev["id"] != id {
				continue // other jobs' events: a dashboard would show them
			}
			if onEvent != nil {
				onEvent(ev)
			}
			if s, _ := ev["state"].(string); isFinal(s) {
				return p.Status(id)
			}
		case error:
			if ne, ok := v.(interface{ Timeout() bool }); ok && ne.Timeout() {
				return nil, fmt.Errorf("job %s not final after %v: %w", id, timeout, ErrTimeout)
			}
			return nil, v
		}
	}
}

// Close ends the subscription.
func (e *Events) Close() error { return e.psc.Close() }

func isFinal(s string) bool { return s == "sent" || s == "partial" || s == "failed" }

// exampleAttachment is a stand-in invoice PDF: every byte value, to show
// binary safety.
func exampleAttachment() []byte {
	b := []byte("%PDF-1.4\n")
	for i := 0; i < 256; i++ {
		b = append(b, byte(i))
	}
	return append(b, "\n%%EOF\n"...)
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func run() int {
	url := env("RELAYQ_REDIS_URL", "redis://127.0.0.1:6379")
	tenant := env("RELAYQ_EXAMPLE_TENANT", "acme")
	to := env("RELAYQ_EXAMPLE_TO", "")
	timeoutS, _ := strconv.ParseFloat(env("RELAYQ_EXAMPLE_TIMEOUT_S", "60"), 64)
	if to == "" {
		fmt.Fprintln(os.Stderr, "set RELAYQ_EXAMPLE_TO to the recipient's address")
		return 2
	}
	// rediss:// URLs dial TLS (redigo verifies the certificate); for a
	// private CA add redis.DialTLSConfig(&tls.Config{RootCAs: pool}).
	// Sentinel: redigo has none: ask a sentinel for the primary first
	// (docs/producers.md, "Connecting: TLS and Sentinel").
	conn, err := redis.DialURL(url, redis.DialConnectTimeout(5*time.Second),
		redis.DialReadTimeout(30*time.Second), redis.DialWriteTimeout(30*time.Second))
	if err != nil {
		fmt.Fprintln(os.Stderr, "Redis error:", err)
		return 3
	}
	defer conn.Close()
	p := &Producer{Conn: conn, Prefix: env("RELAYQ_PREFIX", "relayq")}
	if host := env("RELAYQ_EXAMPLE_SMTP_HOST", ""); host != "" {
		key := env("RELAYQ_SECRET_KEY", "")
		if key == "" {
			fmt.Fprintln(os.Stderr, "set RELAYQ_SECRET_KEY (the workers' key) to seal the password")
			return 2
		}
		fields := map[string]string{"gateway": "smtp", "smtp_host": host,
			"smtp_security": env("RELAYQ_EXAMPLE_SMTP_SECURITY", "starttls")}
		if port := env("RELAYQ_EXAMPLE_SMTP_PORT", ""); port != "" {
			fields["smtp_port"] = port
		}
		if user := env("RELAYQ_EXAMPLE_SMTP_USER", ""); user != "" {
			fields["smtp_user"] = user
			sealed, err := Seal(key, os.Getenv("RELAYQ_EXAMPLE_SMTP_PASSWORD"))
			if err != nil {
				fmt.Fprintln(os.Stderr, "bad setting:", err)
				return 2
			}
			fields["smtp_password"] = sealed
		}
		if from := env("RELAYQ_EXAMPLE_FROM", ""); from != "" {
			fields["from_email"] = from
		}
		if err := p.SaveTenant(tenant, fields); err != nil {
			fmt.Fprintln(os.Stderr, "Redis error:", err)
			return 3
		}
	}
	job := Job{
		V: 1, ID: env("RELAYQ_EXAMPLE_ID", NewID()), Tenant: tenant, To: []string{to},
		From:    env("RELAYQ_EXAMPLE_FROM", ""),
		Subject: "Fattura n. 42 — €1.234,56",
		Text:    "Gentile cliente,\nin allegato la fattura n. 42.\nGrazie — Acme S.r.l. ✓\n",
		HTML:    "<p>Gentile cliente,<br>in allegato la fattura n. 42.</p>",
		Headers: map[string]string{"X-Invoice": "INV-42"},
		Attachments: []Attachment{{Filename: "fattura-42.pdf", ContentType: "application/pdf",
			Data: exampleAttachment()}},
		Meta: map[string]string{"invoice": "INV-42", "producer": "go"},
	}
	if d, err := strconv.ParseInt(env("RELAYQ_EXAMPLE_DELAY_MS", "0"), 10, 64); err == nil && d > 0 {
		job.NotBefore = nowMs() + d
	}
	ev, err := OpenEvents(url, p.Key("events"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "Redis error:", err)
		return 3
	}
	defer ev.Close()
	id, existing, err := p.Enqueue(&job, "default")
	var je *JobError
	if errors.As(err, &je) {
		fmt.Fprintln(os.Stderr, "invalid job:", err)
		return 2
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "Redis error:", err)
		return 3
	}
	if existing != "" {
		fmt.Fprintf(os.Stderr, "job %s already exists (state %s): not enqueued again\n", id, existing)
	} else {
		fmt.Fprintf(os.Stderr, "enqueued %s\n", id)
	}
	st, err := ev.WaitFinal(p, id, time.Duration(timeoutS*float64(time.Second)), func(e map[string]interface{}) {
		b, _ := json.Marshal(e)
		fmt.Fprintf(os.Stderr, "event %s\n", b)
	})
	if errors.Is(err, ErrTimeout) {
		fmt.Fprintln(os.Stderr, err)
		return 1
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "Redis error:", err)
		return 3
	}
	out, _ := json.Marshal(st) // map keys come out sorted
	fmt.Println(string(out))
	if st["state"] != "sent" {
		return 1
	}
	return 0
}

func main() { os.Exit(run()) }
