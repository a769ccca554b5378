/*
 * event: the JSON of one status event (CONTRACT.md "Events"), published
 * on P:events by the producer's enqueue (`queued`, `deferred`), the
 * worker's status writer and the CLI's dead-letter requeue. One writer,
 * so every event has the same fields in the same form. librelayq's house
 * API (producer/lib/CMakeLists.txt); not installed.
 */
#ifndef RELAYQ_EVENT_H
#define RELAYQ_EVENT_H

#include <stddef.h>
#include <stdint.h>

/* Strings are borrowed; NULL counts as "". */
struct relayq__event {
  const char *id, *tenant, *state;
  int attempts;
  int64_t ts;          /* ms since the epoch */
  const char *route;   /* NULL or "": no "route" member */
  int code;            /* 0: no "code" member */
  const char *error;   /* NULL or "": no "error" member */
  const char *worker;  /* NULL: no "worker" member */
};

/* Bytes relayq__event_json may write for e. */
size_t relayq__event_max(const struct relayq__event *e);

/* e as one JSON object at dst (room for relayq__event_max(e)), not
 * terminated; returns the length. */
size_t relayq__event_json(char *dst, const struct relayq__event *e);

#endif
