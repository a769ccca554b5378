/* Unit tests for worker/address.c: the parse table (accepted forms and the
 * refusals that protect the envelope), and mailbox rendering. */
#include "address.h"
#include "check.h"

struct parse_case {
  const char *in;
  int rc;
  const char *addr;
  const char *name;
};

static const struct parse_case cases[] = {
    {"user@example.com", 0, "user@example.com", ""},
    {"  user@example.com\t", 0, "user@example.com", ""},
    {"<user@example.com>", 0, "user@example.com", ""},
    {"John Smith <john@example.com>", 0, "john@example.com", "John Smith"},
    {"\"Smith, John\" <j@example.com>", 0, "j@example.com", "Smith, John"},
    {"\"A \\\"quoted\\\" \\\\ name\" <a@example.com>", 0, "a@example.com",
     "A \"quoted\" \\ name"},
    {"\"Jo <x>\" <a@example.com>", 0, "a@example.com", "Jo <x>"},
    {"Smith, John <j@example.com>", 0, "j@example.com", "Smith, John"},
    {"J\xc3\xbcrgen M\xc3\xbcller <jm@example.de>", 0, "jm@example.de",
     "J\xc3\xbcrgen M\xc3\xbcller"},
    {"Name <  spaced@example.com  >", 0, "spaced@example.com", "Name"},
    {"first.last+tag@sub.example.co.uk", 0, "first.last+tag@sub.example.co.uk", ""},
    {"\"with space\"@example.com", 0, "\"with space\"@example.com", ""},
    {"user@[192.0.2.1]", 0, "user@[192.0.2.1]", ""},
    {"user@[IPv6:2001:db8::1]", 0, "user@[IPv6:2001:db8::1]", ""},
    {"\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\x85\xac\xe5\x8f\xb8", 0,
     "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\x85\xac\xe5\x8f\xb8", ""},
    /* refusals */
    {"", -1, NULL, NULL},
    {"   ", -1, NULL, NULL},
    {"userexample.com", -1, NULL, NULL},           /* no @ */
    {"@example.com", -1, NULL, NULL},              /* empty local */
    {"user@", -1, NULL, NULL},                     /* empty domain */
    {"user@exa@mple.com", -1, NULL, NULL},         /* @ in domain */
    {"a@b@c.com", -1, NULL, NULL},
    {"user name@example.com", -1, NULL, NULL},     /* space in bare address */
    {"user@example.com\r\nRCPT TO:<x@y>", -1, NULL, NULL},
    {"user@example.com\n", -1, NULL, NULL},
    {"Name\r <a@example.com>", -1, NULL, NULL},
    {"Name <a@example.com\r>", -1, NULL, NULL},
    {"user\x01@example.com", -1, NULL, NULL},
    {"user@exa mple.com", -1, NULL, NULL},
    {"user@example..com", -1, NULL, NULL},
    {"user@.example.com", -1, NULL, NULL},
    {"user@example.com.", -1, NULL, NULL},
    {"Name <a@example.com", -1, NULL, NULL},       /* unclosed angle */
    {"Name <a@example.com> trailing", -1, NULL, NULL},
    {"Name <a@b.com> <c@d.com>", -1, NULL, NULL},
    {"a@example.com>", -1, NULL, NULL},
    {"Na>me <a@example.com>", -1, NULL, NULL},
    {"<>", -1, NULL, NULL},
    {"us(er)@example.com", -1, NULL, NULL},
    {"a,b@example.com", -1, NULL, NULL},
    {"\"unclosed@example.com", -1, NULL, NULL},
    {"\"\"@example.com", -1, NULL, NULL},
    {"user@exa_mple\xff.com", -1, NULL, NULL},     /* not UTF-8 */
    {"user@[1.2.3.4", -1, NULL, NULL},
};

static void test_parse_table(void) {
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    const struct parse_case *c = &cases[i];
    char addr[RQ_ADDR_MAX + 1], name[RQ_NAME_MAX + 1];
    int rc = rq_addr_parse(c->in, addr, sizeof addr, name, sizeof name);
    if (rc != c->rc) fprintf(stderr, "case %zu: \"%s\"\n", i, c->in);
    CHECK_INT(rc, ==, c->rc);
    if (rc == 0 && c->rc == 0) {
      CHECK_STR(addr, c->addr);
      CHECK_STR(name, c->name);
    }
  }
}

static void test_limits(void) {
  char in[600], addr[RQ_ADDR_MAX + 1];
  /* Local part of 64 is fine, 65 is not. */
  memset(in, 'a', 64);
  strcpy(in + 64, "@example.com");
  CHECK_INT(rq_addr_envelope(in, addr, sizeof addr), ==, 0);
  memset(in, 'a', 65);
  strcpy(in + 65, "@example.com");
  CHECK_INT(rq_addr_envelope(in, addr, sizeof addr), ==, -1);
  /* Whole address over 254 octets. */
  strcpy(in, "a@");
  for (int i = 0; i < 5; i++) strcat(in, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.");
  strcat(in, "com");
  CHECK_INT(rq_addr_envelope(in, addr, sizeof addr), ==, -1);
  /* A label over 63 octets. */
  strcpy(in, "a@");
  memset(in + 2, 'c', 64);
  strcpy(in + 66, ".com");
  CHECK_INT(rq_addr_envelope(in, addr, sizeof addr), ==, -1);
  /* Buffers too small are an error, not a truncation. */
  char small[8];
  CHECK_INT(rq_addr_envelope("user@example.com", small, sizeof small), ==, -1);
  char nm[4];
  CHECK_INT(rq_addr_parse("Long Name <a@b.com>", addr, sizeof addr, nm, sizeof nm), ==, -1);
  CHECK_INT(rq_addr_parse(NULL, addr, sizeof addr, NULL, 0), ==, -1);
  CHECK_INT(rq_addr_spec_valid("a@b.c", 5), ==, 1);
  CHECK_INT(rq_addr_spec_valid("a b@c", 5), ==, 0);
}

static void render_case(const char *name, const char *addr, const char *expect) {
  struct rq_buf b;
  rq_buf_init(&b);
  rq_addr_render(name, addr, 4, &b);
  CHECK_STR(b.data ? b.data : "", expect);
  rq_buf_free(&b);
}

static void test_render(void) {
  render_case(NULL, "a@example.com", "a@example.com");
  render_case("", "a@example.com", "a@example.com");
  render_case("   ", "a@example.com", "a@example.com");
  render_case("John Smith", "j@example.com", "John Smith <j@example.com>");
  render_case("Smith, John", "j@example.com", "\"Smith, John\" <j@example.com>");
  render_case("John Q. Public", "j@example.com", "\"John Q. Public\" <j@example.com>");
  render_case("A \"q\" \\b", "j@example.com", "\"A \\\"q\\\" \\\\b\" <j@example.com>");
  render_case("J\xc3\xbcrgen", "j@example.de", "=?UTF-8?Q?J=C3=BCrgen?= <j@example.de>");
  render_case("\xe6\x97\xa5\xe6\x9c\xac", "j@example.jp", "=?UTF-8?B?5pel5pys?= <j@example.jp>");
  render_case("Ren\xc3\xa9 Pr\xc3\xa4sentationsleiter", "r@example.fr",
              "=?UTF-8?Q?Ren=C3=A9_Pr=C3=A4sentationsleiter?= <r@example.fr>");
  /* Atoms between non-ASCII words stay plain; each encoded run is its own
   * word, so no decoder has whitespace between encoded-words to judge. */
  render_case("J\xc3\xbcrgen von M\xc3\xbcller", "j@example.de",
              "=?UTF-8?Q?J=C3=BCrgen?= von =?UTF-8?Q?M=C3=BCller?= <j@example.de>");
  /* Text a decoder could take for an encoded-word is encoded itself. */
  render_case("=?UTF-8?Q?x?=", "j@example.com", "=?UTF-8?B?PT9VVEYtOD9RP3g/PQ==?= <j@example.com>");
  /* A control character in a name is encoded, never written raw. */
  struct rq_buf b;
  rq_buf_init(&b);
  rq_addr_render("Evil\r\nBcc: x@y", "a@example.com", 4, &b);
  CHECK(strchr(b.data, '\r') == NULL && strchr(b.data, '\n') == NULL);
  CHECK(strncmp(b.data, "=?UTF-8?", 8) == 0);
  rq_buf_free(&b);
}

static size_t longest_line(const char *s) {
  size_t best = 0, cur = 0;
  for (; *s; s++) {
    if (*s == '\r' || *s == '\n') cur = 0;
    else if (++cur > best) best = cur;
  }
  return best;
}

static void test_list(void) {
  char *list[] = {"a@example.com", "Bob <b@example.com>", "\"Smith, J\" <j@example.com>"};
  struct rq_buf b;
  rq_buf_init(&b);
  size_t bad = 99;
  CHECK_INT(rq_addr_render_list(list, 3, 2, &b, &bad), ==, 0);
  CHECK_STR(b.data, "a@example.com, Bob <b@example.com>, \"Smith, J\" <j@example.com>");
  CHECK_INT(bad, ==, 99);

  /* Many recipients fold at 78. */
  char *many[40];
  char store[40][32];
  for (int i = 0; i < 40; i++) {
    snprintf(store[i], sizeof store[i], "User %d <user%d@example.com>", i, i);
    many[i] = store[i];
  }
  rq_buf_reset(&b);
  rq_buf_puts(&b, "To: ");
  CHECK_INT(rq_addr_render_list(many, 40, 2, &b, NULL), ==, 0);
  CHECK_INT(longest_line(b.data), <=, RQ_FOLD_WIDTH);
  CHECK(strstr(b.data, ",\r\n User") != NULL);
  CHECK(strstr(b.data, "User 39 <user39@example.com>") != NULL);

  /* A non-ASCII name that does not fit the rest of a line moves to the
   * next line whole rather than being split into two encoded-words. */
  char *mixed[] = {"Alice Example-Person <alice.example@example.com>",
                   "Bj\xc3\xb6rn \xc3\x85ngstr\xc3\xb6m <bjorn@example.se>",
                   "Carol Example-Person <carol.example@example.com>",
                   "Fran\xc3\xa7oise M\xc3\xbcller-L\xc3\xbc <fm@example.fr>"};
  for (size_t col = 2; col < 40; col += 7) {
    char hdr[64];
    memset(hdr, 'X', col), hdr[col] = '\0';
    rq_buf_reset(&b);
    rq_buf_printf(&b, "%s: ", hdr);
    CHECK_INT(rq_addr_render_list(mixed, 4, col, &b, NULL), ==, 0);
    int words = 0;
    for (const char *p = b.data; (p = strstr(p, "=?UTF-8?")) != NULL; p++) words++;
    CHECK_INT(words, ==, 2);
    CHECK_INT(longest_line(b.data), <=, RQ_FOLD_WIDTH);
  }

  /* A bad entry is reported by index. */
  char *broken[] = {"ok@example.com", "not an address"};
  rq_buf_reset(&b);
  CHECK_INT(rq_addr_render_list(broken, 2, 2, &b, &bad), ==, -1);
  CHECK_INT(bad, ==, 1);

  /* A very long non-ASCII name folds into short lines. */
  struct rq_buf name;
  rq_buf_init(&name);
  for (int i = 0; i < 100; i++) rq_buf_puts(&name, "\xc3\xa9t\xc3\xa9 ");
  rq_buf_reset(&b);
  rq_addr_render(name.data, "x@example.com", 4, &b);
  CHECK_INT(longest_line(b.data), <=, RQ_FOLD_WIDTH);
  /* A very long quoted ASCII name folds at its own spaces. */
  rq_buf_reset(&name);
  for (int i = 0; i < 100; i++) rq_buf_puts(&name, "Dr. Who ");
  rq_buf_reset(&b);
  rq_addr_render(name.data, "x@example.com", 4, &b);
  CHECK_INT(longest_line(b.data), <=, RQ_FOLD_WIDTH);
  CHECK(b.data[0] == '"');
  rq_buf_free(&name);
  rq_buf_free(&b);
}

int main(void) {
  test_parse_table();
  test_limits();
  test_render();
  test_list();
  return CHECK_DONE();
}
