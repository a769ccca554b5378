/*
 * refusal: recognises the Redis errors that refuse every write, not one
 * command, so the worker, the CLI and librelayq treat them as one
 * condition of the server with one explanation (see relayq.h).
 *
 * Matching is on the error's first word, as Redis sends it (server.c's
 * shared error objects): "OOM command not allowed when used memory >
 * 'maxmemory'", "READONLY You can't write against a read only replica",
 * "MISCONF Redis is configured to save RDB snapshots, but it's currently
 * unable to persist to disk", "BUSY Redis is busy running a script",
 * "NOSCRIPT No matching script", "NOREPLICAS Not enough good replicas to
 * write". Inside a script the error reaches us
 * wrapped ("ERR Error running script ...: @user_script:..: OOM ..."), so
 * the words are also looked for after the last ": ".
 */
#include <string.h>

#include "internal.h"

static const struct {
  const char *word;
  enum relayq_refusal kind;
  const char *summary;
  const char *advice;
} KINDS[] = {
    {"OOM", RELAYQ_REFUSAL_OOM, "Redis is full (maxmemory)",
     "raise maxmemory or free memory (a smaller dead-letter list, shorter status TTL); keep "
     "maxmemory-policy noeviction"},
    {"READONLY", RELAYQ_REFUSAL_READONLY, "Redis is a read-only replica",
     "point --redis at the primary, or use redis+sentinel:// so a failover is followed"},
    {"MISCONF", RELAYQ_REFUSAL_MISCONF, "Redis cannot persist to disk (MISCONF)",
     "check the Redis log and its disk (space, permissions) so saves succeed"},
    {"BUSY", RELAYQ_REFUSAL_BUSY, "Redis is busy running a script",
     "wait for the script to end or run SCRIPT KILL"},
    {"NOREPLICAS", RELAYQ_REFUSAL_NOREPLICAS, "Redis has too few replicas to accept writes (NOREPLICAS)",
     "check the replicas (INFO replication); during a failover this passes once Sentinel names the new primary"},
    {"NOSCRIPT", RELAYQ_REFUSAL_NOSCRIPT, "Redis lost its script cache (NOSCRIPT)",
     "scripts are loaded again; if it lasts, look for SCRIPT FLUSH or restarts"},
};

#define N_KINDS (sizeof KINDS / sizeof KINDS[0])

static enum relayq_refusal match_word(const char *s) {
  for (size_t i = 0; i < N_KINDS; i++) {
    size_t n = strlen(KINDS[i].word);
    if (strncmp(s, KINDS[i].word, n) == 0 && (s[n] == ' ' || s[n] == '\0')) return KINDS[i].kind;
  }
  return RELAYQ_REFUSAL_NONE;
}

enum relayq_refusal relayq_redis_refusal(const char *e) {
  if (e == NULL) return RELAYQ_REFUSAL_NONE;
  enum relayq_refusal k = match_word(e);
  if (k != RELAYQ_REFUSAL_NONE) return k;
  /* A write refused inside a script: "... @user_script:12: OOM command ..." */
  for (const char *p = strstr(e, ": "); p != NULL; p = strstr(p + 2, ": "))
    if ((k = match_word(p + 2)) != RELAYQ_REFUSAL_NONE && k != RELAYQ_REFUSAL_NOSCRIPT) return k;
  return RELAYQ_REFUSAL_NONE;
}

const char *relayq_refusal_summary(enum relayq_refusal kind) {
  for (size_t i = 0; i < N_KINDS; i++)
    if (KINDS[i].kind == kind) return KINDS[i].summary;
  return "";
}

const char *relayq_refusal_advice(enum relayq_refusal kind) {
  for (size_t i = 0; i < N_KINDS; i++)
    if (KINDS[i].kind == kind) return KINDS[i].advice;
  return "";
}

int relayq__refused(struct relayq_error *err, const char *redis_error) {
  enum relayq_refusal k = relayq_redis_refusal(redis_error);
  if (k == RELAYQ_REFUSAL_NONE || k == RELAYQ_REFUSAL_NOSCRIPT) return 0;
  return relayq__fail(err, RELAYQ_EREFUSED, "%s: nothing was enqueued; %s (Redis: %.60s).",
                      relayq_refusal_summary(k), relayq_refusal_advice(k), redis_error);
}
