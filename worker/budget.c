/* budget: see budget.h. */
#include "budget.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

#define BUDGET_BUCKETS 256 /* tenants with jobs in flight: at most --concurrency */

struct rq_budget_tenant {
  struct rq_budget_tenant *next;
  size_t bytes;
  char id[];
};

void rq_budget_init(struct rq_budget *b, size_t max) {
  memset(b, 0, sizeof *b);
  b->max = max;
  b->n_tab = BUDGET_BUCKETS;
  b->tab = rq_xcalloc(b->n_tab, sizeof *b->tab);
}

void rq_budget_free(struct rq_budget *b) {
  for (size_t i = 0; b->tab && i < b->n_tab; i++) {
    for (struct rq_budget_tenant *t = b->tab[i], *next; t; t = next) {
      next = t->next;
      free(t);
    }
  }
  free(b->tab);
  b->tab = NULL;
}

int64_t rq_budget_room(const struct rq_budget *b) {
  return (int64_t)b->max - (int64_t)b->held;
}

void rq_budget_hold(struct rq_budget *b, size_t len) {
  b->held += len;
}

static size_t bucket(const char *id) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *)id; *p; p++) h = (h ^ *p) * 16777619u;
  return h % BUDGET_BUCKETS;
}

void rq_budget_release(struct rq_budget *b, struct rq_budget_tenant *t, size_t len) {
  b->held = b->held > len ? b->held - len : 0;
  if (t == NULL) return;
  t->bytes = t->bytes > len ? t->bytes - len : 0;
  if (t->bytes > 0) return;
  struct rq_budget_tenant **pp = &b->tab[bucket(t->id)];
  while (*pp && *pp != t) pp = &(*pp)->next;
  if (*pp) *pp = t->next;
  free(t);
}

struct rq_budget_tenant *rq_budget_attach(struct rq_budget *b, const char *tenant, size_t len) {
  if (tenant == NULL || len == 0) return NULL;
  size_t k = bucket(tenant);
  struct rq_budget_tenant *t = b->tab[k];
  while (t && strcmp(t->id, tenant)) t = t->next;
  if (!t) {
    size_t n = strlen(tenant);
    t = rq_xmalloc(sizeof *t + n + 1);
    memcpy(t->id, tenant, n + 1);
    t->bytes = 0;
    t->next = b->tab[k];
    b->tab[k] = t;
  }
  t->bytes += len;
  return t;
}

size_t rq_budget_heavy_tenants(const struct rq_budget *b, const char **ids, size_t *bytes, size_t cap) {
  size_t n = 0, min = b->max / 16;
  if (b->held < min) return 0;
  for (size_t i = 0; i < b->n_tab && n < cap; i++)
    for (const struct rq_budget_tenant *t = b->tab[i]; t && n < cap; t = t->next)
      if (t->bytes >= min) {
        ids[n] = t->id;
        bytes[n++] = t->bytes;
      }
  return n;
}
