/* Unit tests for librelayq's JSON string writer (json.h) and status event
 * writer (event.h), shared by the producer, the worker and the CLI. */
#include <string.h>

#include "check.h"
#include "event.h"
#include "json.h"

static const char *js(const char *s, size_t n) {
  static char out[RELAYQ__JSON_STR_MAX(64) + 1];
  out[relayq__json_str(out, s, n)] = '\0';
  return out;
}

static const char *ev(const struct relayq__event *e) {
  static char out[4096];
  size_t max = relayq__event_max(e);
  size_t n = relayq__event_json(out, e);
  CHECK(n <= max);
  out[n] = '\0';
  return out;
}

int main(void) {
  CHECK_STR(js("", 0), "\"\"");
  CHECK_STR(js("plain", 5), "\"plain\"");
  CHECK_STR(js("a\"b\\c", 5), "\"a\\\"b\\\\c\"");
  CHECK_STR(js("l1\nl2\r\t", 7), "\"l1\\nl2\\r\\t\"");
  CHECK_STR(js("\x01\x1f\x7f", 3), "\"\\u0001\\u001f\\u007f\"");
  CHECK_STR(js("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7", 14), "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7\"");
  /* Bytes that start no valid UTF-8 sequence become U+FFFD, one each. */
  CHECK_STR(js("a\xff" "b", 3), "\"a\\ufffdb\"");
  CHECK_STR(js("\xc3", 1), "\"\\ufffd\"");            /* cut short */
  CHECK_STR(js("\xc0\xaf", 2), "\"\\ufffd\\ufffd\"");  /* overlong */
  CHECK_STR(js("\xed\xa0\x80", 3), "\"\\ufffd\\ufffd\\ufffd\""); /* surrogate */
  /* A NUL inside the given length is a control character like the others. */
  CHECK_STR(js("a\0b", 3), "\"a\\u0000b\"");
  /* The bound holds for the worst input. */
  char worst[64];
  memset(worst, 0x01, sizeof worst);
  CHECK_INT(strlen(js(worst, sizeof worst)), ==, RELAYQ__JSON_STR_MAX(sizeof worst));

  struct relayq__event e = {.id = "j1", .tenant = "acme", .state = "queued", .ts = 1700000000000};
  CHECK_STR(ev(&e), "{\"id\":\"j1\",\"tenant\":\"acme\",\"state\":\"queued\",\"attempts\":0,\"ts\":1700000000000}");
  e = (struct relayq__event){"j2", "acme", "failed", 3, 5, "platform", 550, "rejected", "w-1"};
  CHECK_STR(ev(&e), "{\"id\":\"j2\",\"tenant\":\"acme\",\"state\":\"failed\",\"attempts\":3,\"ts\":5,"
                    "\"route\":\"platform\",\"code\":550,\"error\":\"rejected\",\"worker\":\"w-1\"}");
  /* Empty optional members are left out; NULL id and tenant are "". */
  e = (struct relayq__event){NULL, NULL, "sending", 1, -1, "", 0, "", NULL};
  CHECK_STR(ev(&e), "{\"id\":\"\",\"tenant\":\"\",\"state\":\"sending\",\"attempts\":1,\"ts\":-1}");
  /* Text from elsewhere (a worker id, an error) is escaped. */
  e = (struct relayq__event){"j3", "t", "failed", 1, 2, "r\"1", 0, NULL, "w\n"};
  CHECK_STR(ev(&e), "{\"id\":\"j3\",\"tenant\":\"t\",\"state\":\"failed\",\"attempts\":1,\"ts\":2,"
                    "\"route\":\"r\\\"1\",\"worker\":\"w\\n\"}");
  return CHECK_DONE();
}
