/*
 * librelayq: the relayq contract in code (../shared/CONTRACT.md, docs/).
 *
 * What this header owns:
 *   - the job model (struct relayq_job) and its msgpack codec, with the
 *     validation every producer and worker applies;
 *   - Redis key names, built from the prefix in one place;
 *   - sealing of tenant secrets (enc:v1:, AES-256-GCM);
 *   - redis:// URL parsing;
 *   - a small blocking client: connect, enqueue (job + `queued` status in
 *     one MULTI), read a status hash.
 *
 * Errors: every fallible function returns 0 or a negative RELAYQ_E* code
 * and, when given a struct relayq_error, fills it with the code and a
 * sentence a person can act on. relayq_strerror() names a code.
 *
 * Ownership: stated at each function. "Caller frees with X" means the
 * returned pointer is the caller's and X releases it; nothing returned is
 * ever borrowed from the library unless it says "borrowed".
 *
 * Thread safety: functions without a client are reentrant; one
 * struct relayq_client must not be used by two threads at once.
 */
#ifndef RELAYQ_RELAYQ_H
#define RELAYQ_RELAYQ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with hidden visibility; what this header declares
 * is its whole exported API. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

#define RELAYQ_JOB_VERSION 1
#define RELAYQ_ID_MAX 128            /* id and tenant: 1-128 chars */
#define RELAYQ_DEFAULT_PREFIX "relayq"
#define RELAYQ_DEFAULT_QUEUE "default"
#define RELAYQ_DEFAULT_MAX_JOB_BYTES (25u * 1024u * 1024u)

/* ---- errors ----------------------------------------------------------- */

/* XX(name, code, message) */
#define RELAYQ_ERRNO_MAP(XX)                                                  \
  XX(OK, 0, "success")                                                        \
  XX(NOMEM, -1, "out of memory")                                              \
  XX(INVAL, -2, "invalid argument")                                           \
  XX(INVALID_JOB, -3, "invalid job")                                          \
  XX(TOO_LARGE, -4, "payload too large")                                      \
  XX(REDIS, -5, "redis error")                                                \
  XX(CONNECT, -6, "cannot connect")                                           \
  XX(AUTH, -7, "authentication failed")                                       \
  XX(NOT_FOUND, -8, "not found")                                              \
  XX(CRYPTO, -9, "cryptographic failure")                                     \
  XX(URL, -10, "invalid URL")                                                 \
  XX(TIMEOUT, -11, "timed out")                                               \
  XX(IO, -12, "input/output error")                                           \
  XX(REFUSED, -13, "Redis refuses writes")                                    \
  XX(TLS, -14, "TLS verification failed")

enum relayq_errno {
#define RELAYQ_ERR_ENUM(name, code, msg) RELAYQ_E##name = (code),
  RELAYQ_ERRNO_MAP(RELAYQ_ERR_ENUM)
#undef RELAYQ_ERR_ENUM
};

/* Filled by fallible calls. `message` is a full sentence without secrets.
 * For job decoding, `id` and `tenant` hold what could be read before the
 * error (empty when unreadable), so the caller can write an invalid_job
 * status for that id. */
struct relayq_error {
  int code;
  char message[256];
  char id[RELAYQ_ID_MAX + 1];
  char tenant[RELAYQ_ID_MAX + 1];
};

/* Static string naming a code ("invalid job"). Borrowed, never NULL. */
const char *relayq_strerror(int code);

/* Redis refusing writes for the whole server rather than for one command
 * (RELAYQ_EREFUSED): full at maxmemory with noeviction (OOM), a replica
 * or demoted primary (READONLY), persistence failing (MISCONF), a script
 * running too long (BUSY), the script cache emptied (NOSCRIPT), too few
 * replicas acknowledging (NOREPLICAS, with min-replicas-to-write). */
enum relayq_refusal {
  RELAYQ_REFUSAL_NONE = 0,
  RELAYQ_REFUSAL_OOM,
  RELAYQ_REFUSAL_READONLY,
  RELAYQ_REFUSAL_MISCONF,
  RELAYQ_REFUSAL_BUSY,
  RELAYQ_REFUSAL_NOSCRIPT,
  RELAYQ_REFUSAL_NOREPLICAS, /* min-replicas-to-write not met (a failover under way, replicas lagging) */
};
/* Classifies a Redis error reply by its first word. */
enum relayq_refusal relayq_redis_refusal(const char *redis_error);
/* "Redis is full (maxmemory)"; "" for NONE. Static, never NULL. */
const char *relayq_refusal_summary(enum relayq_refusal kind);
/* What an operator does about it, one sentence. Static, never NULL. */
const char *relayq_refusal_advice(enum relayq_refusal kind);

/* ---- the job model ------------------------------------------------------ */

enum relayq_kind {
  RELAYQ_KIND_TRANSACTIONAL = 0,
  RELAYQ_KIND_BULK = 1,
  RELAYQ_KIND_AUTO_REPLY = 2,
};

struct relayq_kv {
  char *key;
  char *value;
};

struct relayq_attachment {
  char *filename;
  char *content_type;
  unsigned char *data; /* may contain any bytes */
  size_t size;
};

struct relayq_strv {
  char **v;
  size_t n;
};

/*
 * One send job: the msgpack map of the contract, field for field.
 *
 * Strings are NUL-terminated UTF-8; absent optional strings are NULL.
 * Absent integers are 0. A job returned by relayq_job_decode() owns all its
 * memory (freed by relayq_job_free()). A job the caller fills in for
 * relayq_job_encode() or relayq_enqueue() stays the caller's: the library
 * only reads it.
 *
 * Fields starting with an underscore on the wire ("_queue", "_attempts",
 * "_rcpt", "_accepted", "_rejected", "_created") are the worker's
 * bookkeeping, carried when it reschedules a job; producers leave them
 * unset. Unknown keys are ignored (forward compatibility).
 */
struct relayq_job {
  int v; /* RELAYQ_JOB_VERSION; 0 when encoding means "current" */
  char *id;
  char *tenant;
  struct relayq_strv to, cc, bcc;
  char *from;
  char *from_name;
  char *reply_to;
  char *subject;
  char *text;
  char *html;
  struct relayq_kv *headers;
  size_t n_headers;
  struct relayq_attachment *attachments;
  size_t n_attachments;
  unsigned char *raw;
  size_t raw_len;
  char *route;
  enum relayq_kind kind;
  int64_t not_before; /* ms since epoch, 0 = unset */
  int64_t expires_at; /* ms since epoch, 0 = unset */
  int max_attempts;   /* 0 = worker default */
  struct relayq_kv *meta;
  size_t n_meta;

  /* Worker bookkeeping (wire names in the comment above). */
  char *queue_;                /* "_queue": queue to return to */
  int attempts_;               /* "_attempts": attempts made so far */
  struct relayq_strv pending_; /* "_rcpt": envelope recipients still to do;
                                  n == 0 means all of to/cc/bcc */
  int accepted_;               /* "_accepted": recipients accepted so far */
  int rejected_;               /* "_rejected": rejected for good so far */
  int64_t created_;            /* "_created": first seen, ms */
};

/* Limits applied by validation (documented in docs/producers.md). */
#define RELAYQ_MAX_RECIPIENTS 10000
#define RELAYQ_MAX_ADDRESS_LEN 998
#define RELAYQ_MAX_HEADERS 100
#define RELAYQ_MAX_HEADER_NAME 76
#define RELAYQ_MAX_HEADER_VALUE 8192
#define RELAYQ_MAX_ATTACHMENTS 100
#define RELAYQ_MAX_META 64
#define RELAYQ_MAX_META_LEN 1024

/*
 * Decodes and validates one msgpack payload.
 *   buf/len   the payload; not kept (everything needed is copied).
 *   max_bytes payloads larger than this fail with RELAYQ_ETOO_LARGE before
 *             any decoding; 0 means RELAYQ_DEFAULT_MAX_JOB_BYTES.
 *   *out      on success a new job; caller frees with relayq_job_free().
 * Returns 0, RELAYQ_EINVALID_JOB (err->message says which rule), 
 * RELAYQ_ETOO_LARGE or RELAYQ_ENOMEM. Never reads outside buf.
 */
int relayq_job_decode(const void *buf, size_t len, size_t max_bytes,
                      struct relayq_job **out, struct relayq_error *err);

/* As relayq_job_decode(), without copying the bulk bytes: each attachment's
 * data and raw point into buf (no NUL after them), which the caller keeps
 * unchanged and alive until relayq_job_free(job). Strings are copied as
 * usual. For a consumer that holds the payload anyway (the worker keeps
 * it for its inflight list): a 10 MB attachment then lives once, not
 * twice. */
int relayq_job_decode_ref(const void *buf, size_t len, size_t max_bytes,
                          struct relayq_job **out, struct relayq_error *err);

/* Checks a job against every rule of the contract (the same rules decode
 * applies). Returns 0 or RELAYQ_EINVALID_JOB with err->message. */
int relayq_job_validate(const struct relayq_job *job, struct relayq_error *err);

/* Encodes a job (validated first). *out is malloc'd, caller frees with
 * free(); *out_len its size. Bookkeeping fields are written only when set,
 * and "_queue" is written first when set (the worker's Lua scripts read it
 * without a msgpack decoder). */
int relayq_job_encode(const struct relayq_job *job, unsigned char **out,
                      size_t *out_len, struct relayq_error *err);

/* Frees a job from relayq_job_decode(). NULL is fine. */
void relayq_job_free(struct relayq_job *job);

/* 1 when s is 1-128 chars of [A-Za-z0-9._:@-], else 0. */
int relayq_valid_id(const char *s);

/* 1 when s is a valid tenant or route name: 1-128 chars of [A-Za-z0-9._@-]
 * (v1.1: no ':'), else 0. */
int relayq_valid_tenant(const char *s);

/* Writes a new unique job id (time-ordered, random suffix) into out,
 * which must hold at least 40 bytes. */
void relayq_id_new(char out[40]);

/* Current time, ms since epoch. */
int64_t relayq_now_ms(void);

/* ---- key names -------------------------------------------------------- */

enum relayq_key_kind {
  RELAYQ_KEY_QUEUE,    /* P:queue:NAME */
  RELAYQ_KEY_INFLIGHT, /* P:inflight:WORKER */
  RELAYQ_KEY_DELAYED,  /* P:delayed (name ignored) */
  RELAYQ_KEY_DEAD,     /* P:dead (name ignored) */
  RELAYQ_KEY_STATUS,   /* P:status:ID */
  RELAYQ_KEY_TENANT,   /* P:tenant:TENANT */
  RELAYQ_KEY_EVENTS,   /* P:events (name ignored) */
  RELAYQ_KEY_WORKER,   /* P:worker:WORKER */
  RELAYQ_KEY_WORKERS,  /* P:workers: hash WORKER -> queues (registry) */
  RELAYQ_KEY_QUOTA,    /* P:quota:TENANT */
};

/* Writes the key into dst (always NUL-terminated when cap > 0). Returns
 * the length it needs, excluding the NUL; >= cap means truncated. */
size_t relayq_key(char *dst, size_t cap, const char *prefix,
                  enum relayq_key_kind kind, const char *name);

/* ---- secrets (enc:v1:, enc:v2:) ------------------------------------------- */

#define RELAYQ_SECRET_PREFIX "enc:v1:"
#define RELAYQ_SECRET_PREFIX_V2 "enc:v2:"
#define RELAYQ_SECRET_KEY_LEN 32

/* Parses a base64 32-byte key (RELAYQ_SECRET_KEY). */
int relayq_secret_key_parse(const char *b64, unsigned char key[32],
                            struct relayq_error *err);

/* 1 when value starts with "enc:v1:" or "enc:v2:". */
int relayq_secret_is_sealed(const char *value);
/* 1 when value starts with "enc:v2:". */
int relayq_secret_is_v2(const char *value);

/* Seals plaintext: "enc:v1:" + base64(nonce12 | ciphertext | tag16),
 * AES-256-GCM, random nonce, no AAD. *out malloc'd, caller frees. */
int relayq_secret_seal(const unsigned char key[32], const char *plaintext,
                       char **out, struct relayq_error *err);

/* Opens an enc:v1: value (an enc:v2: one is RELAYQ_EINVAL: it needs its
 * place, see relayq_secret_open_for). RELAYQ_ECRYPTO when the tag does not
 * verify (wrong key or tampered). *out malloc'd, caller frees (and should
 * wipe). */
int relayq_secret_open(const unsigned char key[32], const char *sealed,
                       char **out, struct relayq_error *err);

/*
 * enc:v2: secrets bound to their place (CONTRACT.md v1.1). The place is
 * the Redis key without "P:" ("tenant:acme", "tenant:acme:route:billing",
 * "oauth:acme") and the AAD is place + '\0' + field, e.g.
 * "tenant:acme\0smtp_password" or "oauth:acme\0access_token".
 *
 * relayq_secret_seal_for: "enc:v2:" + base64(nonce12 | ciphertext | tag16).
 * relayq_secret_open_for: opens enc:v2: with that AAD and enc:v1: without
 * (the place is not checked for v1). RELAYQ_ECRYPTO when a v2 value does
 * not open here (sealed for another place, or another key): err says so
 * without quoting anything. *out malloc'd, caller wipes and frees.
 * The _aad forms take the AAD bytes directly.
 */
int relayq_secret_seal_for(const unsigned char key[32], const char *place,
                           const char *field, const char *plaintext,
                           char **out, struct relayq_error *err);
int relayq_secret_open_for(const unsigned char key[32], const char *place,
                           const char *field, const char *sealed, char **out,
                           struct relayq_error *err);
int relayq_secret_seal_aad(const unsigned char key[32], const void *aad,
                           size_t aad_len, const char *plaintext, char **out,
                           struct relayq_error *err);
int relayq_secret_open_aad(const unsigned char key[32], const void *aad,
                           size_t aad_len, const char *sealed, char **out,
                           struct relayq_error *err);

/* ---- redis URL ------------------------------------------------------------ */

#define RELAYQ_MAX_SENTINELS 8

struct relayq_redis_hostport {
  char host[256];
  int port;
};

struct relayq_redis_url {
  char host[256];
  int port;          /* default 6379 */
  char user[128];    /* empty: none */
  char password[256];/* empty: none */
  int db;            /* default 0 */
  /* v1.1 */
  int tls;           /* rediss:// or rediss+sentinel:// */
  char master[256];  /* redis+sentinel://: the master's name; empty otherwise */
  int n_sentinels;   /* redis+sentinel://: sentinels[0..n) (host/port: the first) */
  struct relayq_redis_hostport sentinels[RELAYQ_MAX_SENTINELS];
};

/* Parses redis://[[user]:password@]host[:port][/db], rediss:// (TLS) and
 * redis+sentinel://[[user]:password@]HOST[:PORT][,HOST[:PORT]...]/MASTER[/db]
 * (rediss+sentinel:// over TLS; sentinel port 26379 by default; the
 * credentials are the primary's, and are offered to a sentinel only when
 * it asks for them). Percent-escapes in user and password are decoded. */
int relayq_redis_url_parse(const char *url, struct relayq_redis_url *out,
                           struct relayq_error *err);

/* Writes url with its password replaced by "***" into out (always
 * NUL-terminated), for logs: scheme://user:***@host... The userinfo ends
 * at the last '@' and the user at its first ':', exactly as
 * relayq_redis_url_parse reads them, so a password holding '@' or ':'
 * (escaped or not) is never shown. "(none)" for NULL. */
void relayq_url_redact(const char *url, char *out, size_t cap);

/* ---- blocking client ---------------------------------------------------------- */

struct relayq_client;

/* Connects (timeout 5 s), AUTHs and SELECTs per the URL. prefix NULL means
 * "relayq". *out: caller frees with relayq_close(). rediss:// verifies
 * the server's certificate and name (RELAYQ_ETLS when it fails; nothing
 * is sent then) with the CA file in $RELAYQ_REDIS_CA_FILE or the system's
 * store, and a client certificate from $RELAYQ_REDIS_CERT and
 * $RELAYQ_REDIS_KEY when set. redis+sentinel:// asks the sentinels once,
 * in order, for the primary and checks that its ROLE is master. */
int relayq_connect(const char *url, const char *prefix,
                   struct relayq_client **out, struct relayq_error *err);

/* Files for rediss:// (PEM). A NULL field falls back to its environment
 * variable (RELAYQ_REDIS_CA_FILE, RELAYQ_REDIS_CERT, RELAYQ_REDIS_KEY). */
struct relayq_tls_options {
  const char *ca_file;
  const char *cert_file;
  const char *key_file;
};

/* relayq_connect with TLS files given (tls may be NULL). */
int relayq_connect_tls(const char *url, const char *prefix,
                       const struct relayq_tls_options *tls,
                       struct relayq_client **out, struct relayq_error *err);
void relayq_close(struct relayq_client *c);

/* The underlying hiredis context (borrowed), for callers that need more. */
void *relayq_client_redis(struct relayq_client *c);
/* The prefix (borrowed). */
const char *relayq_client_prefix(const struct relayq_client *c);

/* Enqueues one job on queue (NULL: "default"): validates, encodes, and in
 * one atomic Lua call LPUSHes the payload and writes P:status:ID (state
 * queued, tenant, created_at, updated_at, attempts 0, recipients, meta.*)
 * and publishes the `queued` event. When job->not_before is in the future
 * the job goes to P:delayed instead (state deferred). When job->id is NULL
 * a new id is made; either way the id used is copied into id_out (>= 129
 * bytes) when id_out is not NULL.
 * Idempotency: when a status for that id already exists (the job was
 * enqueued before, whatever its state), nothing is pushed or written; the
 * call returns 0 with err->code 0 and err->message saying so, so a
 * producer's retry after a timeout never sends twice. */
int relayq_enqueue(struct relayq_client *c, const struct relayq_job *job,
                   const char *queue, char *id_out, struct relayq_error *err);

/* Enqueues n jobs in batches (up to 256 jobs, or 1 MB, per script call;
 * two calls in flight, so encoding overlaps Redis' work), each with the same
 * atomic call and idempotency rule as relayq_enqueue (duplicates are
 * skipped). Jobs must have ids. Returns 0 when every job was enqueued or
 * skipped as a duplicate. When Redis refuses a job (a key of the wrong
 * type), the other jobs of its call are still enqueued, no later call is
 * sent, and err names the first job refused; calls already sent stay
 * enqueued. */
int relayq_enqueue_many(struct relayq_client *c, const struct relayq_job *jobs,
                        size_t n, const char *queue, struct relayq_error *err);

/* A status hash: n field/value pairs. */
struct relayq_status {
  struct relayq_kv *fields;
  size_t n;
};

/* Reads P:status:ID. RELAYQ_ENOT_FOUND when absent. *out: caller frees
 * with relayq_status_free(). */
int relayq_status_get(struct relayq_client *c, const char *id,
                      struct relayq_status **out, struct relayq_error *err);
/* Value of one field, or NULL (borrowed from st). */
const char *relayq_status_field(const struct relayq_status *st, const char *name);
void relayq_status_free(struct relayq_status *st);

/* 1 for sent, partial, failed. */
int relayq_state_is_final(const char *state);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif
