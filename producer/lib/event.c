/* event: the status event's JSON (see event.h). */
#include "event.h"

#include <string.h>

#include "json.h"
#include "resp.h"

static size_t slen(const char *s) { return s ? strlen(s) : 0; }

size_t relayq__event_max(const struct relayq__event *e) {
  /* Member names and punctuation, three numbers, and each string escaped. */
  return 96 + 3 * 21 + RELAYQ__JSON_STR_MAX(slen(e->id)) + RELAYQ__JSON_STR_MAX(slen(e->tenant)) +
         RELAYQ__JSON_STR_MAX(slen(e->state)) + RELAYQ__JSON_STR_MAX(slen(e->route)) +
         RELAYQ__JSON_STR_MAX(slen(e->error)) + RELAYQ__JSON_STR_MAX(slen(e->worker));
}

static char *put(char *o, const char *lit) {
  size_t n = strlen(lit);
  memcpy(o, lit, n);
  return o + n;
}

static char *put_str(char *o, const char *s) { return o + relayq__json_str(o, s ? s : "", slen(s)); }

static char *put_int(char *o, int64_t v) {
  if (v < 0) *o++ = '-';
  return o + relayq__u64_dec(o, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
}

size_t relayq__event_json(char *dst, const struct relayq__event *e) {
  char *o = put(dst, "{\"id\":");
  o = put_str(o, e->id);
  o = put_str(put(o, ",\"tenant\":"), e->tenant);
  o = put_str(put(o, ",\"state\":"), e->state);
  o = put_int(put(o, ",\"attempts\":"), e->attempts);
  o = put_int(put(o, ",\"ts\":"), e->ts);
  if (e->route && *e->route) o = put_str(put(o, ",\"route\":"), e->route);
  if (e->code) o = put_int(put(o, ",\"code\":"), e->code);
  if (e->error && *e->error) o = put_str(put(o, ",\"error\":"), e->error);
  if (e->worker) o = put_str(put(o, ",\"worker\":"), e->worker);
  *o++ = '}';
  return (size_t)(o - dst);
}
