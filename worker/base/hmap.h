/*
 * hmap: the worker's one hash table, for entries found by a key the
 * caller owns (tenants by id, breakers by route key, the SMTP transport's
 * pools and per-key limiters).
 *
 * Intrusive, like libuv's queues: an entry embeds a struct rq_hent with
 * the key's hash, and the caller walks the chain of that hash comparing
 * its own keys. Buckets are a power of two, allocated on the first add
 * and doubled when there are more than two entries per bucket, so a
 * zeroed struct rq_hmap is an empty table. Hashes are FNV-1a: keys come
 * from the worker's configuration and tenants, not from a peer choosing
 * them in bulk to collide.
 *
 * Ownership: the table owns its bucket array only; entries are the
 * caller's (rq_hmap_free can free them for it).
 */
#ifndef RQ_HMAP_H
#define RQ_HMAP_H

#include <stddef.h>
#include <stdint.h>

#define RQ_HASH_SEED 2166136261u

struct rq_hent {
  struct rq_hent *next;
  uint32_t hash;
};

struct rq_hmap {
  struct rq_hent **b;
  size_t nb, n;
};

/* FNV-1a of p[0..n), continuing from h (RQ_HASH_SEED to start). */
uint32_t rq_hash(uint32_t h, const void *p, size_t n);
/* s with its length first, so ("ab","c") and ("a","bc") differ when
 * chained; NULL differs from "". */
uint32_t rq_hash_str(uint32_t h, const char *s);

/* The first entry of the chain that holds hash (NULL: none); walk ->next
 * and compare e->hash, then the key. */
struct rq_hent *rq_hmap_chain(const struct rq_hmap *m, uint32_t hash);
/* Adds e, whose hash is set; the caller has checked its key is new. */
void rq_hmap_add(struct rq_hmap *m, struct rq_hent *e);
/* Removes e, which is in m. */
void rq_hmap_del(struct rq_hmap *m, struct rq_hent *e);
/* Frees the buckets and, when free_entry is not NULL, calls it on every
 * entry first; m is then empty again. */
void rq_hmap_free(struct rq_hmap *m, void (*free_entry)(struct rq_hent *e));

#endif
