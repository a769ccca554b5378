/* hmap: intrusive hash table (see hmap.h). */
#include "hmap.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

#define FIRST_BUCKETS 64

uint32_t rq_hash(uint32_t h, const void *p, size_t n) {
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 16777619u;
  return h;
}

uint32_t rq_hash_str(uint32_t h, const char *s) {
  size_t n = s ? strlen(s) + 1 : 0;
  h = rq_hash(h, &n, sizeof n);
  return s ? rq_hash(h, s, n) : h;
}

struct rq_hent *rq_hmap_chain(const struct rq_hmap *m, uint32_t hash) {
  return m->nb ? m->b[hash & (m->nb - 1)] : NULL;
}

static void grow(struct rq_hmap *m) {
  size_t nb = m->nb ? m->nb * 2 : FIRST_BUCKETS;
  struct rq_hent **b = rq_xcalloc(nb, sizeof *b);
  for (size_t i = 0; i < m->nb; i++) {
    struct rq_hent *x = m->b[i], *next;
    for (; x; x = next) {
      next = x->next;
      x->next = b[x->hash & (nb - 1)];
      b[x->hash & (nb - 1)] = x;
    }
  }
  free(m->b);
  m->b = b;
  m->nb = nb;
}

void rq_hmap_add(struct rq_hmap *m, struct rq_hent *e) {
  if (m->n + 1 > 2 * m->nb) grow(m);
  e->next = m->b[e->hash & (m->nb - 1)];
  m->b[e->hash & (m->nb - 1)] = e;
  m->n++;
}

void rq_hmap_del(struct rq_hmap *m, struct rq_hent *e) {
  struct rq_hent **pp = &m->b[e->hash & (m->nb - 1)];
  while (*pp != e) pp = &(*pp)->next;
  *pp = e->next;
  e->next = NULL;
  m->n--;
}

void rq_hmap_free(struct rq_hmap *m, void (*free_entry)(struct rq_hent *e)) {
  for (size_t i = 0; free_entry && i < m->nb; i++) {
    struct rq_hent *x = m->b[i], *next;
    for (; x; x = next) {
      next = x->next;
      free_entry(x);
    }
  }
  free(m->b);
  memset(m, 0, sizeof *m);
}
