/* Unit tests for the worker's hash table (worker/base/hmap.c): lookups
 * through growth, removal, freeing, and the string hash. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "hmap.h"

struct item {
  struct rq_hent h;
  int value;
  char key[16];
};

static struct item *find(const struct rq_hmap *m, const char *key) {
  uint32_t h = rq_hash_str(RQ_HASH_SEED, key);
  for (struct rq_hent *e = rq_hmap_chain(m, h); e; e = e->next)
    if (e->hash == h && !strcmp(((struct item *)e)->key, key)) return (struct item *)e;
  return NULL;
}

static int freed;
static void free_item(struct rq_hent *e) {
  freed++;
  free(e);
}

int main(void) {
  struct rq_hmap m = {0};
  CHECK(find(&m, "none") == NULL); /* a zeroed table is empty */
  enum { N = 1000 };
  for (int i = 0; i < N; i++) {
    struct item *it = calloc(1, sizeof *it);
    snprintf(it->key, sizeof it->key, "k%d", i);
    it->value = i;
    it->h.hash = rq_hash_str(RQ_HASH_SEED, it->key);
    rq_hmap_add(&m, &it->h);
  }
  CHECK_INT(m.n, ==, N);
  CHECK(m.nb >= N / 2); /* doubled past two per bucket */
  int all = 1;
  for (int i = 0; i < N; i++) {
    char k[16];
    snprintf(k, sizeof k, "k%d", i);
    struct item *it = find(&m, k);
    all = all && it != NULL && it->value == i;
  }
  CHECK(all);
  struct item *gone = find(&m, "k500");
  rq_hmap_del(&m, &gone->h);
  free(gone);
  CHECK(find(&m, "k500") == NULL);
  CHECK(find(&m, "k501") != NULL);
  CHECK_INT(m.n, ==, N - 1);
  rq_hmap_free(&m, free_item);
  CHECK_INT(freed, ==, N - 1);
  CHECK_INT(m.n, ==, 0);
  CHECK(find(&m, "k1") == NULL);

  /* Lengths are hashed too: chained pieces do not collide by moving a
   * boundary, and NULL is not "". */
  uint32_t ab_c = rq_hash_str(rq_hash_str(RQ_HASH_SEED, "ab"), "c");
  uint32_t a_bc = rq_hash_str(rq_hash_str(RQ_HASH_SEED, "a"), "bc");
  CHECK(ab_c != a_bc);
  CHECK(rq_hash_str(RQ_HASH_SEED, NULL) != rq_hash_str(RQ_HASH_SEED, ""));
  /* FNV-1a of "a" (the published test vector 0xe40c292c). */
  CHECK_INT(rq_hash(RQ_HASH_SEED, "a", 1), ==, 0xe40c292cu);
  return CHECK_DONE();
}
