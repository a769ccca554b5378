/*
 * test_json_scan: the bounded JSON member reader (worker/json_scan.c) that
 * the Mailgun transport (id, message) and rq_classify_http (message) share.
 * Bodies are copied into heap buffers of their exact length, so the
 * sanitizer build catches any read past len.
 *
 * The sixteen odd and hostile bodies of tests/e2e/test_mailgun_transport.py
 * are repeated here against the scanner itself, with the transport's bounds
 * (64 KB body, 256-byte id, 2048 decoded message bytes, 512 sanitised).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "classify.h"
#include "json_scan.h"

#define BODY_MAX (64 * 1024) /* what the Mailgun transport keeps of a body */

/* rq_json_top_string on an exact-length heap copy of s[0..n). */
static int top(const char *s, size_t n, const char *key, char *dst, size_t cap, int *cut) {
  char *b = malloc(n ? n : 1);
  memcpy(b, s, n);
  int r = rq_json_top_string(n ? b : NULL, n, key, dst, cap, cut);
  free(b);
  return r;
}

static int top_str(const char *s, const char *key, char *dst, size_t cap) {
  return top(s, strlen(s), key, dst, cap, NULL);
}

/* Sanitised like the transport does: "" when absent or cut. */
static void mg_field(const char *body, size_t n, const char *key, char *out, size_t out_size,
                     size_t raw_cap) {
  char *raw = malloc(raw_cap);
  int len = top(body, n, key, raw, raw_cap, NULL);
  out[0] = '\0';
  if (len > 0) rq_text_sanitize(out, out_size, raw, (size_t)len);
  free(raw);
}

static char *repeat(const char *head, const char *unit, size_t times, const char *tail) {
  size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
  char *s = malloc(hl + ul * times + tl + 1), *p = s;
  memcpy(p, head, hl);
  p += hl;
  for (size_t i = 0; i < times; i++, p += ul) memcpy(p, unit, ul);
  memcpy(p, tail, tl + 1);
  return s;
}

/* ---- the transport's sixteen bodies ----------------------------------------------- */

struct odd {
  const char *body;  /* NULL: built in test_hostile_bodies */
  const char *id;    /* sanitised id as read on a 2xx ("" absent) */
  const char *msg;   /* sanitised message; NULL: checked separately */
};

static void check_odd(int n, const char *body, size_t len, const char *want_id, const char *want_msg) {
  char id[256], msg[513];
  if (len > BODY_MAX) len = BODY_MAX; /* the transport's cap */
  mg_field(body, len, "id", id, sizeof id, 256);
  mg_field(body, len, "message", msg, sizeof msg, 2048 + 1);
  if (strcmp(id, want_id) != 0) fprintf(stderr, "body %d: id \"%s\"\n", n, id);
  CHECK_STR(id, want_id);
  if (want_msg) {
    if (strcmp(msg, want_msg) != 0) fprintf(stderr, "body %d: message \"%s\"\n", n, msg);
    CHECK_STR(msg, want_msg);
  }
  CHECK_INT(strlen(msg), <=, 512);
  for (const unsigned char *p = (const unsigned char *)msg; *p; p++) CHECK(*p >= 0x20 && *p != 0x7f);
}

static void test_hostile_bodies(void) {
  static const struct odd odd[] = {
      {"{\"meta\": {\"id\": \"nested\", \"message\": \"nested\"}, \"list\": [1, {\"id\": \"x\"}, \"]}\"],"
       " \"n\": -1.5e3, \"t\": true, \"z\": null, \"identity\": \"no\", \"ids\": \"no\","
       " \"id\": \"<a\\\"b\\\\c@mg>\", \"message\": \"Queued \\u00e9 \\ud83d\\ude80\\nnext\\tline \\/\"}",
       "<a\"b\\c@mg>", "Queued \xc3\xa9 \xf0\x9f\x9a\x80 next line /"},
      {" \r\n {\r\n \"id\" : \"<spaced@mg>\" ,\n \"message\" : \"ok\" } ", "<spaced@mg>", "ok"},
      {"{\"ID\": \"<upper@mg>\", \"Message\": \"no\"}", "", ""},
      {"not json at all", "", ""}, /* the transport keeps plain text itself */
      {"{\"id\": \"<cut@mg", "", ""},
      {NULL, "", "x"},             /* 6: a 70 KB pad cuts the late id off */
      {NULL, "", ""},              /* 7: 100000 '[' */
      {NULL, "<deep@mg>", ""},     /* 8: 20000 levels before the id */
      {"{\"id\": \"\\ud800 lone\", \"message\": \"bad \\x escape \\u12\"}", "? lone", "bad ? escape ?12"},
      {"{\"id\": 12345, \"message\": [\"list\"]}", "", ""},
      {"{\"message\": 42}", "", ""},
      {NULL, "", NULL},            /* 12: 3000 escaped e-acutes */
      {"{\"id\": \"<not-for-errors@mg>\", \"message\": \"Invalid private key\"}", "<not-for-errors@mg>",
       "Invalid private key"},     /* the transport drops an id outside 2xx */
      {"<html><body>Bad gateway</body></html>", "", ""},
      {"", "", ""},
      {"{\"message\": \"ctl \\u0000\\u0007\\u001b[31m red\", \"id\": \"<ok@mg>\"}", "<ok@mg>",
       "ctl [31m red"},
  };
  CHECK_INT(sizeof odd / sizeof *odd, ==, 16);
  for (size_t i = 0; i < sizeof odd / sizeof *odd; i++) {
    char *built = NULL;
    const char *body = odd[i].body;
    switch (i + 1) {
    case 6: built = repeat("{\"message\": \"x\", \"pad\": \"", "p", 70000, "\", \"id\": \"<late@mg>\"}"); break;
    case 7: built = repeat("", "[", 100000, ""); break;
    case 8: {
      char *open = repeat("{\"a\": ", "[", 20000, "");
      built = repeat(open, "]", 20000, ", \"id\": \"<deep@mg>\"}");
      free(open);
      break;
    }
    case 12: built = repeat("{\"message\": \"", "\\u00e9", 3000, "\"}"); break;
    default: break;
    }
    if (built) body = built;
    check_odd((int)i + 1, body, strlen(body), odd[i].id, odd[i].msg);
    free(built);
  }

  /* 12: 2048 decoded bytes are 1024 whole e-acutes; sanitised, 256. */
  char *big = repeat("{\"message\": \"", "\\u00e9", 3000, "\"}");
  char raw[2049], msg[513];
  CHECK_INT(top_str(big, "message", raw, sizeof raw), ==, 2048);
  CHECK_INT(rq_text_sanitize(msg, sizeof msg, raw, 2048), ==, 512);
  char *want = repeat("", "\xc3\xa9", 256, "");
  CHECK_STR(msg, want);
  free(want);
  free(big);

  /* 16: the control characters decode as themselves (NUL included). */
  const char *ctl = "{\"message\": \"ctl \\u0000\\u0007\\u001b[31m red\"}";
  CHECK_INT(top_str(ctl, "message", raw, sizeof raw), ==, 15);
  CHECK_MEM(raw, "ctl \0\a\x1b[31m red", 15);
}

/* ---- the member rules ------------------------------------------------------------------ */

static void test_members(void) {
  char d[64];
  /* classify's cases: the top-level member only, whatever is nested. */
  const char *nested = "{\"a\":{\"message\":\"inner\"},\"b\":[1,\"x\\\"]\",{\"c\":2}],"
                       "\"message\":\"outer \\u00e9\\ud83d\\ude00 \\\"q\\\"\\n\"}";
  CHECK_INT(top_str(nested, "message", d, sizeof d), ==, 17);
  CHECK_STR(d, "outer \xc3\xa9\xf0\x9f\x98\x80 \"q\"\n");
  CHECK_INT(top_str(nested, "c", d, sizeof d), ==, RQ_JSON_ABSENT);

  /* Names compare whole and decoded; the first string value wins. */
  CHECK_INT(top_str("{\"identity\":\"a\",\"ids\":\"b\",\"i\":\"c\",\"id\":\"d\"}", "id", d, sizeof d), ==, 1);
  CHECK_STR(d, "d");
  CHECK_INT(top_str("{\"m\\u0065ssage\":\"esc\"}", "message", d, sizeof d), ==, 3);
  CHECK_STR(d, "esc");
  CHECK_INT(top_str("{\"id\":\"one\",\"id\":\"two\"}", "id", d, sizeof d), ==, 3);
  CHECK_STR(d, "one");
  CHECK_INT(top_str("{\"id\":null,\"id\":\"two\"}", "id", d, sizeof d), ==, 3);
  CHECK_STR(d, "two");
  CHECK_INT(top_str("{\"id\":\"\"}", "id", d, sizeof d), ==, 0);
  CHECK_STR(d, "");

  /* Keys: up to RQ_JSON_KEY_MAX bytes; a longer one is never found. */
  char key[RQ_JSON_KEY_MAX + 2], body[256];
  memset(key, 'k', sizeof key - 1);
  key[RQ_JSON_KEY_MAX] = '\0';
  snprintf(body, sizeof body, "{\"%s\":\"v\"}", key);
  CHECK_INT(top_str(body, key, d, sizeof d), ==, 1);
  key[RQ_JSON_KEY_MAX] = 'k';
  key[RQ_JSON_KEY_MAX + 1] = '\0';
  snprintf(body, sizeof body, "{\"%s\":\"v\"}", key);
  CHECK_INT(top_str(body, key, d, sizeof d), ==, RQ_JSON_ABSENT);
  /* A long name that starts like the key is not the key. */
  snprintf(body, sizeof body, "{\"%s\":\"v\",\"k\":\"w\"}", key);
  CHECK_INT(top_str(body, "k", d, sizeof d), ==, 1);
  CHECK_STR(d, "w");

  /* Not an object, or not well-formed before the member: absent. */
  const char *absent[] = {"", "   ", "[\"message\",\"x\"]", "\"message\"", "{}", "{ }", "{,\"id\":\"x\"}",
                          "{\"a\":,\"id\":\"x\"}", "{\"a\":1 2,\"id\":\"x\"}", "{\"a\"::\"b\",\"id\":\"x\"}",
                          "{\"a\":}", "{\"a\":1,}", "{\"a\" \"id\":\"x\"}", "{\"a\":1 \"id\":\"x\"}",
                          "{id:\"x\"}", "{'id':'x'}", "{\"id\"", "{\"id\":", "{\"id\":  ", "{\"i"};
  for (size_t i = 0; i < sizeof absent / sizeof *absent; i++) {
    strcpy(d, "junk");
    int r = top_str(absent[i], "id", d, sizeof d);
    if (r != RQ_JSON_ABSENT) fprintf(stderr, "found in: %s\n", absent[i]);
    CHECK_INT(r, ==, RQ_JSON_ABSENT);
    CHECK_STR(d, "");
  }
  /* Scalars, nesting and strings with brackets are stepped over. */
  CHECK_INT(top_str("{\"a\":-1.5e3,\"b\":true,\"c\":null,\"d\":[{\"id\":\"no\"},\"]}\"],\"id\":\"yes\"}", "id",
                    d, sizeof d), ==, 3);
  CHECK_STR(d, "yes");
  CHECK_INT(top_str("\t{\"a\" :\n[ ] ,\r\"id\" : \"s\" }\n", "id", d, sizeof d), ==, 1);
  CHECK_STR(d, "s");
  /* The scan stops at the member: what follows it is not checked. */
  CHECK_INT(top_str("{\"id\":\"x\" garbage", "id", d, sizeof d), ==, 1);

  /* NULL body or key, and presence only (dst NULL, cap 0). */
  CHECK_INT(rq_json_top_string(NULL, 0, "id", d, sizeof d, NULL), ==, RQ_JSON_ABSENT);
  CHECK_INT(rq_json_top_string("{\"id\":\"x\"}", 10, NULL, d, sizeof d, NULL), ==, RQ_JSON_ABSENT);
  CHECK_INT(top_str("{\"id\":\"xyz\"}", "id", NULL, 0), ==, 0);
  CHECK_INT(top_str("{\"id\":1}", "id", NULL, 0), ==, RQ_JSON_ABSENT);
}

static void test_escapes(void) {
  char d[64];
  CHECK_INT(top_str("{\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}", "s", d, sizeof d), ==, 8);
  CHECK_MEM(d, "\"\\/\b\f\n\r\t", 8);
  /* \u in both cases, 1 to 4 bytes of UTF-8, and a surrogate pair. */
  CHECK_INT(top_str("{\"s\":\"\\u0041\\u00E9\\u20aC\\uD83D\\uDE00\"}", "s", d, sizeof d), ==, 10);
  CHECK_STR(d, "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
  /* Lone or reversed surrogates, bad hex, unknown escapes: '?'. */
  CHECK_INT(top_str("{\"s\":\"\\ud800x\\udc00\\ude00\\ud83d\"}", "s", d, sizeof d), ==, 5);
  CHECK_STR(d, "?x???");
  CHECK_INT(top_str("{\"s\":\"\\uZZZZ\\x\\u12\"}", "s", d, sizeof d), ==, 9);
  CHECK_STR(d, "?ZZZZ??12");
  /* Raw bytes pass through unchanged (sanitising is the caller's). */
  CHECK_INT(top_str("{\"s\":\"\xff\x01\"}", "s", d, sizeof d), ==, 2);
  CHECK_MEM(d, "\xff\x01", 2);
}

static void test_bounds(void) {
  char d[8];
  /* Whole characters while they fit in cap - 1 bytes, then a NUL; the
   * first that does not fit ends the output (nothing after it). */
  memset(d, 'z', sizeof d);
  CHECK_INT(top_str("{\"s\":\"abcdefghij\"}", "s", d, sizeof d), ==, 7);
  CHECK_STR(d, "abcdefg");
  memset(d, 'z', sizeof d);
  CHECK_INT(top_str("{\"s\":\"abcde\\u00e9xy\"}", "s", d, 7), ==, 5);
  CHECK_STR(d, "abcde");
  CHECK_INT(top_str("{\"s\":\"abcde\\ud83d\\ude00x\"}", "s", d, 8), ==, 5);
  CHECK_STR(d, "abcde");
  memset(d, 'z', sizeof d);
  CHECK_INT(top_str("{\"s\":\"abc\"}", "s", d, 1), ==, 0);
  CHECK_INT(d[0], ==, '\0');
  CHECK_INT(d[1], ==, 'z');
  memset(d, 'z', sizeof d);
  CHECK_INT(top_str("{\"s\":\"abc\"}", "s", d, 0), ==, 0);
  CHECK_INT(d[0], ==, 'z');

  /* A cut string: absent without cut; its start with it. */
  int cut = 7;
  char m[64];
  const char body[] = "{\"message\":\"abcdef\"}";
  CHECK_INT(top(body, 15, "message", m, sizeof m, NULL), ==, RQ_JSON_ABSENT);
  CHECK_STR(m, "");
  CHECK_INT(top(body, 15, "message", m, sizeof m, &cut), ==, 3);
  CHECK_STR(m, "abc");
  CHECK_INT(cut, ==, 1);
  CHECK_INT(top(body, sizeof body - 1, "message", m, sizeof m, &cut), ==, 6);
  CHECK_INT(cut, ==, 0);
  CHECK_INT(top(body, 5, "message", m, sizeof m, &cut), ==, RQ_JSON_ABSENT);
  CHECK_INT(cut, ==, 0);
  /* Cut inside an escape: a lone backslash stays, a short \u is '?'. */
  CHECK_INT(top_str("{\"s\":\"ab\\", "s", m, sizeof m), ==, RQ_JSON_ABSENT);
  CHECK_INT(top("{\"s\":\"ab\\", 9, "s", m, sizeof m, &cut), ==, 3);
  CHECK_STR(m, "ab\\");
  CHECK_INT(top("{\"s\":\"ab\\u00", 12, "s", m, sizeof m, &cut), ==, 5);
  CHECK_STR(m, "ab?00");
  CHECK_INT(cut, ==, 1);
  /* Every prefix of a body is read within its length (the sanitizer
   * build checks the reads) and never finds a cut string without cut. */
  const char *full = "{\"a\":[1,{\"b\":\"}\"}],\"id\":\"<x\\u00e9\\ud83d\\ude00@mg>\"}";
  size_t fl = strlen(full), close = (size_t)(strrchr(full, '"') - full);
  for (size_t k = 0; k <= close; k++) { /* up to, not with, the closing quote */
    int r = top(full, k, "id", m, sizeof m, NULL);
    CHECK(r == RQ_JSON_ABSENT);
    r = top(full, k, "id", m, sizeof m, &cut);
    CHECK(r == RQ_JSON_ABSENT || (cut == 1 && (size_t)r < sizeof m));
  }
  CHECK_INT(top(full, fl, "id", m, sizeof m, NULL), ==, 12);
  CHECK_STR(m, "<x\xc3\xa9\xf0\x9f\x98\x80@mg>");
}

static void test_skip_ws(void) {
  CHECK_INT(rq_json_skip_ws(NULL, 0, 0), ==, 0);
  CHECK_INT(rq_json_skip_ws(" \t\r\n{", 5, 0), ==, 4);
  CHECK_INT(rq_json_skip_ws(" \t\r\n", 4, 1), ==, 4);
  CHECK_INT(rq_json_skip_ws(" \v x", 4, 0), ==, 1); /* \v is not JSON white space */
  CHECK_INT(rq_json_skip_ws("ab", 2, 5), ==, 5);
}

int main(void) {
  test_hostile_bodies();
  test_members();
  test_escapes();
  test_bounds();
  test_skip_ws();
  return CHECK_DONE();
}
