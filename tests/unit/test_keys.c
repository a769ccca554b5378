/* Unit tests for librelayq's key builder beyond relayq.h (keys.h): every
 * kind's spelling, optional parts, the default prefix, truncation, the
 * rate_limits windows and the places of sealed secrets. */
#include <string.h>

#include "check.h"
#include "keys.h"
#include "relayq/relayq.h"

static const char *k(const char *prefix, int kind, const char *name, const char *sub) {
  static char buf[256];
  relayq__key(buf, sizeof buf, prefix, kind, name, sub);
  return buf;
}

static char *small_rate(void) {
  static char buf[4];
  return buf;
}

int main(void) {
  CHECK_STR(k("p", RELAYQ__KEY_TQ, "default", "acme"), "p:tq:default:acme");
  CHECK_STR(k("p", RELAYQ__KEY_TRING, "default", NULL), "p:tring:default");
  CHECK_STR(k("p", RELAYQ__KEY_BREAKER, "acme", NULL), "p:breaker:acme");
  CHECK_STR(k("p", RELAYQ__KEY_ROUTE, "acme", "billing"), "p:tenant:acme:route:billing");
  CHECK_STR(k("p", RELAYQ__KEY_OAUTH, "acme", NULL), "p:oauth:acme");
  CHECK_STR(k("p", RELAYQ__KEY_OAUTH, "acme", "billing"), "p:oauth:acme:route:billing");
  CHECK_STR(k("p", RELAYQ__KEY_TPAUSE, "acme", NULL), "p:tpause:acme");
  CHECK_STR(k("p", RELAYQ__KEY_THOLD, "acme", NULL), "p:thold:acme");
  CHECK_STR(k("p", RELAYQ__KEY_AUTOREPLY, "acme", NULL), "p:autoreply:acme:");
  CHECK_STR(k("p", RELAYQ__KEY_STATS, "acme", NULL), "p:stats:acme");
  CHECK_STR(k("p", RELAYQ__KEY_STATS, "acme", "20261206"), "p:stats:acme:20261206");
  CHECK_STR(k("p", RELAYQ__KEY_OAUTH_LOCK, "acme", NULL), "p:oauth:acme:lock");
  CHECK_STR(k("p", RELAYQ__KEY_OAUTH_LOCK, "acme", "billing"), "p:oauth:acme:route:billing:lock");
  /* rate_limits windows: the CLAIM script reads the period and unit back. */
  char rate[128];
  relayq__rate_key(rate, sizeof rate, "p", "acme", NULL, 3600000, 0);
  CHECK_STR(rate, "p:rate:acme:3600000:m");
  relayq__rate_key(rate, sizeof rate, "p", "acme", "billing", 1000, 1);
  CHECK_STR(rate, "p:rate:acme:route:billing:1000:r");
  CHECK_INT(relayq__rate_key(small_rate(), 4, NULL, "acme", NULL, 60000, 0), ==, strlen("relayq:rate:acme:60000:m"));
  /* Places (a sealed secret's AAD): the key without its prefix. */
  char place[128];
  relayq__key_place(place, sizeof place, RELAYQ_KEY_TENANT, "acme", NULL);
  CHECK_STR(place, "tenant:acme");
  relayq__key_place(place, sizeof place, RELAYQ__KEY_ROUTE, "acme", "billing");
  CHECK_STR(place, "tenant:acme:route:billing");
  relayq__key_place(place, sizeof place, RELAYQ__KEY_OAUTH, "acme", NULL);
  CHECK_STR(place, "oauth:acme");
  /* The public kinds through the same builder, as relayq_key spells them. */
  char pub[64];
  relayq_key(pub, sizeof pub, "p", RELAYQ_KEY_STATUS, "j1");
  CHECK_STR(k("p", RELAYQ_KEY_STATUS, "j1", NULL), pub);
  CHECK_STR(k("p", RELAYQ_KEY_STATUS, "j1", "ignored"), "p:status:j1");
  CHECK_STR(k(NULL, RELAYQ__KEY_TPAUSE, "acme", NULL), "relayq:tpause:acme");
  CHECK_STR(k("", RELAYQ_KEY_QUEUE, NULL, NULL), "relayq:queue:default");
  CHECK_STR(k("p", RELAYQ_KEY_DEAD, "x", NULL), "p:dead");
  /* The length it needs, even when cut. */
  char small[8];
  CHECK_INT(relayq__key(small, sizeof small, "p", RELAYQ__KEY_ROUTE, "acme", "billing"), ==,
            strlen("p:tenant:acme:route:billing"));
  CHECK_STR(small, "p:tenan");
  return CHECK_DONE();
}
