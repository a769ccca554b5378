/*
 * classify: turns what a delivery attempt produced (an SMTP reply, a
 * transport failure of any transport, or a Mailgun HTTP response) into a verdict (accepted,
 * temporary, permanent), one of the contract's `error` categories, and a
 * detail sentence a person can act on. Pure: no I/O, no allocation, no
 * global state; the worker engine and the SMTP/Mailgun transports call it.
 *
 * Implements the reading of replies from RFC 5321 section 4.2 (reply
 * codes, multi-line replies), RFC 2034 and RFC 3463 (enhanced status codes
 * "class.subject.detail"), RFC 5321 4.5.3.1.10 (too many recipients is
 * temporary, even as 552), and RFC 9110 10.2.3 (Retry-After).
 *
 * What the categories mean here (the contract names them, this module fixes
 * their scope):
 *   connect   no SMTP session: DNS failure, refused, unreachable, timeout,
 *             connection dropped, or the server ended the session with 421
 *             or a connection limit. Always temporary.
 *   tls       TLS handshake, certificate, or a server that requires or
 *             refuses STARTTLS.
 *   auth      the login was refused, or the server requires one.
 *   policy    the server refused on policy grounds: relay denied, sender
 *             address not allowed, SPF/DKIM/DMARC, reverse DNS, spam or
 *             reputation, greylisting (temporary).
 *   quota     a sending limit of the account or IP at the server (hourly or
 *             daily limits, rate limits). Always temporary, even as 5xx: the
 *             provider takes mail again once the window passes.
 *   recipient_rejected   one recipient: unknown, disabled, mailbox full.
 *   too_many_recipients  fewer recipients per transaction wanted. Always
 *             temporary: the engine splits the envelope and retries, it
 *             never fails the message for it.
 *   blocklisted  the sending IP is on a DNS blocklist; permanent; detail
 *             names the list.
 *   provider  anything else the server (or Mailgun) reported: message too
 *             big, server-side failures, unknown Mailgun domain.
 *   invalid_job, expired, max_attempts: set by the engine, never here.
 */
#ifndef RQ_CLASSIFY_H
#define RQ_CLASSIFY_H

#include <stddef.h>
#include <stdint.h>

/* The error categories of the contract's status `error` field: their
 * exact contract strings, and what a person does next about a job that
 * ended (or waits) with one (the console shows it beside the detail,
 * which says what happened to this job).
 * XX(name, contract string, what to do next) */
#define RQ_ERRCAT_MAP(XX)                                                                                     \
  XX(NONE, "", "")                                                                                            \
  XX(CONNECT, "connect",                                                                                      \
     "The tenant's server could not be reached. Check smtp_host and smtp_port with `relayq tenant verify "     \
     "TENANT`; relayq retries by itself.")                                                                    \
  XX(TLS, "tls",                                                                                              \
     "The TLS handshake or certificate check failed. Check smtp_security; for a server with a self-signed "    \
     "certificate pin its key with `relayq tenant trust TENANT`.")                                            \
  XX(AUTH, "auth",                                                                                            \
     "The server refused the login. The tenant must update smtp_user/smtp_password (or sign in again for "     \
     "OAuth2), then `relayq tenant verify TENANT`.")                                                          \
  XX(POLICY, "policy",                                                                                        \
     "relayq's own policy stopped this job (see the detail). Fix the tenant's settings or the job; a paused "  \
     "tenant resumes on the tenant page.")                                                                    \
  XX(QUOTA, "quota",                                                                                          \
     "The tenant is over a sending limit. Nothing to do: the job waits until the limit clears (next attempt "  \
     "below).")                                                                                               \
  XX(RECIPIENT_REJECTED, "recipient_rejected",                                                                \
     "The receiving server refused the address for good. Check it for typos with the recipient; do not "       \
     "resend it as is.")                                                                                      \
  XX(TOO_MANY_RECIPIENTS, "too_many_recipients",                                                              \
     "The server refused the number of recipients. Lower max_recipients for the tenant; relayq splits jobs "   \
     "by it.")                                                                                                \
  XX(BLOCKLISTED, "blocklisted",                                                                              \
     "The sending address is on the blocklist named in the detail. Ask for delisting (see `relayq dnsbl "      \
     "check`), then requeue from Dead letters.")                                                              \
  XX(INVALID_JOB, "invalid_job",                                                                              \
     "The producer sent a job relayq cannot read (see the detail). Fix the producer; the payload is kept in "  \
     "Dead letters.")                                                                                         \
  XX(EXPIRED, "expired",                                                                                      \
     "The job's expires_at passed before it could be delivered. Send a new job if the message still matters.") \
  XX(MAX_ATTEMPTS, "max_attempts",                                                                            \
     "relayq gave up after the last attempt. Fix the cause in the detail, then requeue the job from Dead "     \
     "letters.")                                                                                              \
  XX(PROVIDER, "provider",                                                                                    \
     "The provider (e.g. Mailgun) refused the message: see the detail and the tenant's provider account.")

enum rq_errcat {
#define RQ_ERRCAT_ENUM_(name, str, next) RQ_ERR_##name,
  RQ_ERRCAT_MAP(RQ_ERRCAT_ENUM_)
#undef RQ_ERRCAT_ENUM_
  RQ_ERR__COUNT
};

/* The contract string ("connect", ...); "" for NONE and out-of-range. */
const char *rq_errcat_name(enum rq_errcat e);
/* What to do next about a job with this category; "" for NONE and
 * out-of-range. */
const char *rq_errcat_next_step(enum rq_errcat e);
/* The reverse: 0 and *out set, or -1 when name is not a category. "" parses
 * as NONE. */
int rq_errcat_parse(const char *name, enum rq_errcat *out);

enum rq_verdict { RQ_OK, RQ_TEMP, RQ_PERM };
/* "ok", "temp", "perm". */
const char *rq_verdict_name(enum rq_verdict v);

/* Stages of an SMTP transaction: which command a reply answers. The
 * classification depends on it (a 5xx to RCPT concerns one recipient, a
 * 5xx to AUTH the login) and log lines carry it as context. */
enum rq_smtp_stage {
  RQ_STAGE_CONNECT,  /* TCP connect, DNS */
  RQ_STAGE_BANNER,   /* the 220 greeting */
  RQ_STAGE_EHLO,
  RQ_STAGE_STARTTLS, /* the reply to STARTTLS */
  RQ_STAGE_TLS,      /* the TLS handshake itself */
  RQ_STAGE_AUTH,
  RQ_STAGE_MAIL,
  RQ_STAGE_RCPT,
  RQ_STAGE_DATA,     /* the reply to DATA (354 expected) */
  RQ_STAGE_BODY,     /* the reply after the final dot */
  RQ_STAGE_QUIT,
  RQ_STAGE__COUNT
};
/* "connect", "banner", "ehlo", "starttls", "tls", "auth", "mail", "rcpt",
 * "data", "body", "quit"; "unknown" when out of range. */
const char *rq_stage_name(enum rq_smtp_stage s);

/* One parsed (possibly multi-line) SMTP reply. Plain value: copy freely.
 * code: the basic code of the first line that had one (0 when none).
 * enhanced: the first RFC 3463 code seen at the start of a line's text,
 *   "" when none; stripped from every line's text.
 * text: the lines' texts joined by one space, runs of white space collapsed,
 *   at most 512 bytes and cut on a UTF-8 boundary; control characters
 *   become spaces and bytes that are not valid UTF-8 become '?', so it is
 *   safe to store (status last_reply) and log as is. */
#define RQ_REPLY_TEXT_MAX 512
struct rq_reply {
  int code;
  char enhanced[16];
  char text[RQ_REPLY_TEXT_MAX + 1];
};

/* Parses one complete reply given its raw lines ("250-first\r\n250 last\r\n";
 * bare LF and a missing final line end are accepted). Tolerates lines
 * without a code (their text is kept), garbage, NUL bytes and lines of any
 * length (input is read once; output stays bounded). raw may be NULL when
 * len is 0. Returns 0, or -1 when no line started with a reply code (then
 * code is 0 and text still holds the sanitised input). */
int rq_reply_parse(const char *raw, size_t len, struct rq_reply *out);

/* Copies at most dst_size - 1 bytes of src[0..len) into dst with the same
 * sanitising as rq_reply_parse's text (controls to spaces, runs of spaces
 * collapsed, invalid UTF-8 to '?', cut on a UTF-8 boundary) and
 * NUL-terminates. Returns the length written. For other untrusted text that
 * goes into a status hash or a log line. dst_size must be >= 1. */
size_t rq_text_sanitize(char *dst, size_t dst_size, const char *src, size_t len);

/* Hints and detail bounds. A hint from the wire is capped so a hostile or
 * broken server cannot park a job for years. */
#define RQ_CLASS_DETAIL_MAX 511
#define RQ_RETRY_HINT_MAX_MS (24LL * 3600 * 1000)

/* The outcome. Plain value. */
struct rq_class {
  enum rq_verdict verdict;
  enum rq_errcat error;        /* NONE when OK */
  char detail[RQ_CLASS_DETAIL_MAX + 1]; /* "" when OK; names the code, and
                                         * the list for blocklisted; never
                                         * the whole reply text (the engine
                                         * stores last_reply separately) */
  int trip_now;                /* the route's breaker opens at once, not after
                                * its threshold: retrying cannot help until
                                * the tenant acts (a refused OAuth grant) */
  int64_t retry_after_ms;      /* > 0 when the server said when to come back
                                * ("try again in 5 minutes", Retry-After);
                                * only set on TEMP; capped at
                                * RQ_RETRY_HINT_MAX_MS */
};

/* Classifies a reply to the command of `stage`. 2xx and 3xx are OK. Rules
 * are one table (classify.c), first match wins, then fallbacks by code and
 * stage: 4xx temporary, 5xx permanent, refined by the enhanced code and the
 * text. r may be NULL (treated as a reply without a code: provider TEMP). */
void rq_classify_smtp(enum rq_smtp_stage stage, const struct rq_reply *r,
                      struct rq_class *out);

/* How a transfer failed without (or before) a reply that says why: one
 * transport-neutral vocabulary for every transport. The SMTP session
 * reports these kinds directly (smtp.h); the HTTP transport maps
 * libcurl's codes onto them (worker/net/curlfail.c). One table
 * (classify.c) gives each kind its verdict, category and advice, so a
 * failure means the same whoever saw it, and the circuit breaker sees
 * every transport's connection failures as `connect`.
 *
 * Certificate decision: a certificate that fails verification (expired,
 * self-signed, wrong name, unknown CA, pin mismatch) is tls PERM. It will
 * not fix itself within a retry window; retrying for hours only delays
 * telling the tenant, and after an admin fixes the certificate (or sets
 * smtp_tls_verify=0) `relayq dead requeue` resends. A handshake failure
 * is tls TEMP (resets and timeouts mid-handshake are transient), except a
 * configuration mismatch (TLS spoken to a plain-text port; no shared
 * version or cipher), which is TLS_MISMATCH, PERM.
 *
 * POLICY (the saas network boundary, a login the server cannot take) and
 * TLS_PIN (a key that is not the pinned one) carry their whole sentence in
 * the transport's message: their rows have no text of their own.
 *
 * XX(name, verdict, category, what happened, what to do) */
#define RQ_FAIL_MAP(XX)                                                                                        \
  XX(NONE, OK, NONE, "", "")                                                                                   \
  XX(DNS, TEMP, CONNECT, "The server's name could not be resolved",                                           \
     "check the host name (smtp_host, or mailgun_base_url and mailgun_region for Mailgun); the relay retries "  \
     "in case DNS is failing.")                                                                                 \
  XX(CONNECT, TEMP, CONNECT, "Could not connect to the server",                                               \
     "check the address (smtp_host and smtp_port, or mailgun_base_url for Mailgun) and that the server "        \
     "accepts connections from the worker; the relay retries.")                                                 \
  XX(TIMEOUT, TEMP, CONNECT, "The server did not answer in time", "the relay retries later.")                 \
  XX(CLOSED, TEMP, CONNECT, "The connection dropped", "the relay retries.")                                   \
  XX(ABORTED, TEMP, CONNECT, "The delivery was interrupted", "the relay retries.")                            \
  XX(PROTOCOL, TEMP, PROVIDER, "The server sent a reply the relay cannot read",                               \
     "check that smtp_host and smtp_port point at an SMTP server, and smtp_security (tls for port 465); the "   \
     "relay retries.")                                                                                          \
  XX(TLS, TEMP, TLS, "The TLS handshake failed", "the relay retries.")                                        \
  XX(TLS_CERT, PERM, TLS, "The server's TLS certificate failed verification",                                \
     "its admin must fix the certificate; for a self-signed one, pin its key with `relayq tenant trust "       \
     "TENANT`; then `relayq dead requeue` resends.")                                                                                       \
  XX(TLS_MISMATCH, PERM, TLS, "TLS is not possible with this server on this port",                            \
     "use smtp_security=starttls for ports 587 and 25 and tls only for 465; otherwise the server's admin must " \
     "enable TLS 1.2 or newer with current ciphers.")                                                           \
  XX(TLS_CLIENT_CERT, PERM, TLS, "The server requires a TLS client certificate",                              \
     "relayq does not send one; use another port or server.")                                                   \
  XX(TLS_LOCAL, TEMP, TLS, "The worker's TLS setup failed",                                                    \
     "the operator must fix the worker's CA bundle; jobs are retried meanwhile.")                              \
  XX(NO_STARTTLS, PERM, TLS, "The server does not offer STARTTLS",                                            \
     "set smtp_security to tls if the server speaks implicit TLS (port 465); plain text is not used for a "     \
     "route that asks for starttls.")                                                                           \
  XX(AUTH, PERM, AUTH, "The tenant's server refused the login", "check smtp_user and smtp_password.")         \
  XX(AUTH_NO_MECH, PERM, AUTH, "The server offers no login method relayq supports",                           \
     "check smtp_security, since many servers offer AUTH only after STARTTLS.")                                \
  XX(REFUSED_SESSION, PERM, PROVIDER, "The server refused the session",                                       \
     "it may not take mail from the sending IP; ask its admin.")                                                \
  XX(REJECTED, TEMP, PROVIDER, "The server sent an unexpected reply", "the relay retries.")                   \
  XX(CONFIG, PERM, PROVIDER, "The route's server settings are not usable",                                    \
     "check smtp_host, smtp_port and smtp_security (or mailgun_base_url).")                                    \
  XX(REDIRECTS, PERM, PROVIDER, "The HTTP API kept redirecting", "check mailgun_base_url and mailgun_region.") \
  XX(POLICY, PERM, POLICY, "", "")                                                                             \
  XX(TLS_PIN, PERM, TLS, "", "")                                                                               \
  XX(OTHER, TEMP, PROVIDER, "Delivery failed", "the relay retries.")

enum rq_fail {
#define RQ_FAIL_ENUM_(name, v, e, what, advice) RQ_FAIL_##name,
  RQ_FAIL_MAP(RQ_FAIL_ENUM_)
#undef RQ_FAIL_ENUM_
  RQ_FAIL__COUNT
};

/* "none", "dns", "connect", ... (lower-case names); "unknown" out of range. */
const char *rq_fail_name(enum rq_fail f);

/* Classifies a failed transfer. kind: what the transport saw; stage: how
 * far it got; reply (may be NULL): the server reply that ended it, if
 * any: a 4xx/5xx reply is more precise than the kind and is classified by
 * rq_classify_smtp (at the AUTH stage for AUTH, STARTTLS for NO_STARTTLS);
 * msg (may be NULL): the transport's own sentence, sanitised into the
 * detail. A TIMEOUT or CLOSED names the stage. RQ_FAIL_NONE yields OK.
 * Never yields OK for another kind. */
void rq_classify_failure(enum rq_fail kind, enum rq_smtp_stage stage, const struct rq_reply *reply,
                         const char *msg, struct rq_class *out);

/* Classifies a Mailgun (HTTP) response. status 0 means no response
 * (classify the transport error instead; this yields connect TEMP).
 * 2xx OK; 400 provider PERM with Mailgun's JSON "message"; 401/403 auth
 * PERM; 404 provider PERM (unknown domain or wrong region); 413 provider
 * PERM (too large); 408 connect TEMP; 429 quota TEMP; 5xx provider TEMP;
 * other statuses provider PERM. 429 and 5xx honour retry_after (delta
 * seconds or an HTTP-date, read with curl_getdate; now_ms is the current
 * time in ms since the epoch, for the date form). body (may be NULL) is
 * read up to body_len bytes and need not be NUL-terminated. */
void rq_classify_http(long status, const char *body, size_t body_len,
                      const char *retry_after, int64_t now_ms,
                      struct rq_class *out);

/* Reads a retry hint from free text: "try again in 5 minutes", "retry in
 * 30 seconds", "after 300 seconds", "in 1 hour", "Greylisted, try again in
 * 300s". Returns milliseconds (capped at RQ_RETRY_HINT_MAX_MS) or 0 when
 * the text names no delay. */
int64_t rq_retry_hint_parse(const char *text);

#endif
