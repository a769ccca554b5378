/*
 * codec: a job's msgpack wire form (CONTRACT.md "A job"; the msgpack spec,
 * github.com/msgpack/msgpack/blob/master/spec.md), both directions.
 *
 * Decoding runs in four steps, each bounding the next:
 *   1. size: a payload over max_bytes is refused before any parsing;
 *   2. prescan: one pass over the bytes checks the structure (complete,
 *      nothing trailing, nesting and element counts bounded) and picks up
 *      the top-level id and tenant for the error report;
 *   3. msgpack-c's msgpack_unpack_next() builds the object tree in a zone
 *      (strings point into the caller's buffer);
 *   4. two walks over the tree: the first checks types and sizes the
 *      arena, the second copies into it. relayq_job_validate() then applies
 *      the content rules (job.c), the same ones a producer's encode meets.
 *
 * Why the hand-written prescan: msgpack-c allocates n * sizeof(object) as
 * soon as it reads an array or map header, before any element, so a
 * 5-byte payload declaring 2^28 elements would reserve gigabytes. The
 * prescan refuses counts larger than the bytes left and caps the total
 * number of values, which bounds the zone to a few MB for any payload.
 *
 * Ownership: the decoded job is one malloc'd block (the struct first, then
 * every string and array), released by relayq_job_free(). With
 * relayq_job_decode() nothing in it points into the caller's buffer or the
 * msgpack zone. With relayq_job_decode_ref() the bulk bytes (attachment
 * data and raw, which are most of a large payload) are not copied: they
 * point into the caller's buffer, which must stay unchanged and alive
 * until relayq_job_free(); every string (NUL-terminated) is still copied.
 * Those bytes have no NUL after them, and the job never writes to them.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "internal.h"

#define PRESCAN_MAX_DEPTH 16        /* a job needs 3: map, array, map */
#define PRESCAN_MAX_VALUES 100000u  /* ~2 x RELAYQ_MAX_RECIPIENTS and more */
#define DEFAULT_CONTENT_TYPE "application/octet-stream"

/* ---- step 2: prescan ------------------------------------------------------ */

enum mp_kind { MP_SCALAR, MP_STR, MP_BIN, MP_ARRAY, MP_MAP };

struct mp_head {
  size_t hdr;        /* bytes of the header */
  uint64_t payload;  /* bytes of inline payload after it (str/bin/ext/num) */
  uint64_t children; /* values nested directly (array n, map 2n) */
  enum mp_kind kind;
};

static uint64_t be(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v = (v << 8) | p[i];
  return v;
}

/* Reads the header of the value at p (avail bytes). Returns 0, -1 when the
 * bytes end inside the header, -2 for the unused byte 0xc1. */
static int read_head(const unsigned char *p, size_t avail, struct mp_head *h) {
  unsigned char b = p[0];
  int w = 0;  /* width of a length or count field */
  int fixed = 0; /* fixed payload bytes (numbers, fixext incl. type byte) */
  memset(h, 0, sizeof *h);
  h->kind = MP_SCALAR;
  if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
    /* fixint, nil, bool: the byte is the value */
  } else if (b <= 0x8f) {
    h->kind = MP_MAP, h->children = 2u * (b & 0x0fu);
  } else if (b <= 0x9f) {
    h->kind = MP_ARRAY, h->children = b & 0x0fu;
  } else if (b <= 0xbf) {
    h->kind = MP_STR, h->payload = b & 0x1fu;
  } else if (b == 0xc1) {
    return -2;
  } else if (b >= 0xc4 && b <= 0xc6) {
    h->kind = MP_BIN, w = 1 << (b - 0xc4);
  } else if (b >= 0xc7 && b <= 0xc9) {
    w = 1 << (b - 0xc7), fixed = 1; /* ext: length, then a type byte */
  } else if (b == 0xca || b == 0xcb) {
    fixed = b == 0xca ? 4 : 8;
  } else if (b >= 0xcc && b <= 0xd3) {
    fixed = 1 << ((b - 0xcc) & 3);
  } else if (b >= 0xd4 && b <= 0xd8) {
    fixed = 1 + (1 << (b - 0xd4));
  } else if (b >= 0xd9 && b <= 0xdb) {
    h->kind = MP_STR, w = 1 << (b - 0xd9);
  } else if (b == 0xdc || b == 0xdd) {
    h->kind = MP_ARRAY, w = b == 0xdc ? 2 : 4;
  } else { /* 0xde, 0xdf */
    h->kind = MP_MAP, w = b == 0xde ? 2 : 4;
  }
  if (avail < 1 + (size_t)w) return -1;
  uint64_t n = be(p + 1, w);
  h->hdr = 1 + (size_t)w;
  if (h->kind == MP_ARRAY && w) h->children = n;
  else if (h->kind == MP_MAP && w) h->children = 2 * n;
  else if (w) h->payload = n;
  h->payload += (uint64_t)fixed;
  return 0;
}

/* Copies a top-level id or tenant into err when it is a valid name, so a
 * payload that fails later (or is cut short) can still get a status. */
static void capture(struct relayq_error *err, int which, const unsigned char *p,
                    uint64_t n) {
  if (err == NULL || !relayq__valid_name((const char *)p, (size_t)n)) return;
  /* A tenant with ':' is not one (v1.1): its status names no tenant. */
  if (which != 1 && !relayq__valid_tenant_name((const char *)p, (size_t)n)) return;
  char *dst = which == 1 ? err->id : err->tenant;
  memcpy(dst, p, (size_t)n);
  dst[n] = '\0';
}

static int prescan(const unsigned char *p, size_t len, struct relayq_error *err) {
  uint64_t need[PRESCAN_MAX_DEPTH + 1]; /* values still to read per level */
  int sp = 0, root_map = 0, key_turn = 1, want = 0;
  uint64_t values = 1;
  size_t off = 0;
  need[0] = 1;
  while (sp >= 0) {
    if (need[sp] == 0) {
      sp--;
      continue;
    }
    need[sp]--;
    struct mp_head h;
    int r = off < len ? read_head(p + off, len - off, &h) : -1;
    if (r == -2)
      return relayq__fail(err, RELAYQ_EINVALID_JOB,
                          "The payload is not msgpack: byte %zu is 0xc1, which "
                          "the format never uses.", off);
    if (r == -1 || h.payload > len - off - h.hdr)
      return relayq__fail(err, RELAYQ_EINVALID_JOB,
                          "The payload is not a complete msgpack value: it ends "
                          "early (%zu bytes).", len);
    if (sp == 1 && root_map) { /* a key or value of the job map itself */
      const unsigned char *body = p + off + h.hdr;
      if (key_turn) {
        want = 0;
        if (h.kind == MP_STR && h.payload == 2 && memcmp(body, "id", 2) == 0) want = 1;
        if (h.kind == MP_STR && h.payload == 6 && memcmp(body, "tenant", 6) == 0) want = 2;
      } else if (want && h.kind == MP_STR) {
        capture(err, want, body, h.payload);
      }
      key_turn = !key_turn;
    }
    off += h.hdr + (size_t)h.payload;
    if (h.kind == MP_ARRAY || h.kind == MP_MAP) {
      if (sp == 0) root_map = h.kind == MP_MAP;
      if (h.children > len - off)
        return relayq__fail(err, RELAYQ_EINVALID_JOB,
                            "The payload is not a complete msgpack value: a "
                            "container declares %llu elements but only %zu "
                            "bytes follow.",
                            (unsigned long long)h.children, len - off);
      values += h.children;
      if (values > PRESCAN_MAX_VALUES)
        return relayq__fail(err, RELAYQ_EINVALID_JOB,
                            "The payload holds more than %u msgpack values.",
                            PRESCAN_MAX_VALUES);
      if (h.children > 0) {
        if (sp + 1 > PRESCAN_MAX_DEPTH)
          return relayq__fail(err, RELAYQ_EINVALID_JOB,
                              "The payload nests arrays and maps deeper than "
                              "%d levels.", PRESCAN_MAX_DEPTH);
        need[++sp] = h.children;
      }
    }
  }
  if (off < len && !root_map) /* say what is wrong first: the start */
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "The payload does not start with a msgpack map; a job is "
                        "exactly one msgpack map.");
  if (off < len)
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "The payload has %zu bytes after the job map; a job is "
                        "exactly one msgpack map.", len - off);
  return 0;
}

/* ---- step 4: the arena walk --------------------------------------------------- */

/* A bump allocator over one block. base == NULL is the sizing pass: take()
 * only counts, so both passes run the same code and agree on the size. */
struct arena {
  unsigned char *base;
  size_t used;
  int ref; /* bin/raw bytes point into the payload instead of a copy */
};

static void *take(struct arena *a, size_t n) {
  size_t off = (a->used + 7) & ~(size_t)7; /* pointers and size_t inside */
  a->used = off + n;
  return a->base ? a->base + off : NULL;
}

static char *copy_bytes(struct arena *a, const char *p, size_t n) {
  char *s = take(a, n + 1); /* NUL even after binary data: safe to print */
  if (s) {
    if (n) memcpy(s, p, n);
    s[n] = '\0';
  }
  return s;
}

enum ftype { F_VERSION, F_INT, F_STR, F_STRV, F_KV, F_ATTACH, F_BYTES, F_KIND };

struct field {
  const char *name;
  enum ftype type;
  size_t off;   /* the member in struct relayq_job */
  size_t off_n; /* F_KV, F_ATTACH: the count member; F_BYTES: the length */
  int width;    /* F_INT: sizeof the member (int or int64_t) */
  int64_t lo, hi; /* F_INT: bounds; F_STRV, F_KV, F_ATTACH: hi = most entries */
};

#define OFF(m) offsetof(struct relayq_job, m)
static const struct field fields[] = {
    {"v", F_VERSION, OFF(v), 0, sizeof(int), 0, 0},
    {"id", F_STR, OFF(id), 0, 0, 0, 0},
    {"tenant", F_STR, OFF(tenant), 0, 0, 0, 0},
    {"to", F_STRV, OFF(to), 0, 0, 0, RELAYQ_MAX_RECIPIENTS},
    {"cc", F_STRV, OFF(cc), 0, 0, 0, RELAYQ_MAX_RECIPIENTS},
    {"bcc", F_STRV, OFF(bcc), 0, 0, 0, RELAYQ_MAX_RECIPIENTS},
    {"from", F_STR, OFF(from), 0, 0, 0, 0},
    {"from_name", F_STR, OFF(from_name), 0, 0, 0, 0},
    {"reply_to", F_STR, OFF(reply_to), 0, 0, 0, 0},
    {"subject", F_STR, OFF(subject), 0, 0, 0, 0},
    {"text", F_STR, OFF(text), 0, 0, 0, 0},
    {"html", F_STR, OFF(html), 0, 0, 0, 0},
    {"headers", F_KV, OFF(headers), OFF(n_headers), 0, 0, RELAYQ_MAX_HEADERS},
    {"attachments", F_ATTACH, OFF(attachments), OFF(n_attachments), 0, 0,
     RELAYQ_MAX_ATTACHMENTS},
    {"raw", F_BYTES, OFF(raw), OFF(raw_len), 0, 0, 0},
    {"route", F_STR, OFF(route), 0, 0, 0, 0},
    {"kind", F_KIND, OFF(kind), 0, 0, 0, 0},
    {"not_before", F_INT, OFF(not_before), 0, sizeof(int64_t), 0, INT64_MAX},
    {"expires_at", F_INT, OFF(expires_at), 0, sizeof(int64_t), 0, INT64_MAX},
    {"max_attempts", F_INT, OFF(max_attempts), 0, sizeof(int), 1, RELAYQ__MAX_ATTEMPTS},
    {"meta", F_KV, OFF(meta), OFF(n_meta), 0, 0, RELAYQ_MAX_META},
    {"_queue", F_STR, OFF(queue_), 0, 0, 0, 0},
    {"_attempts", F_INT, OFF(attempts_), 0, sizeof(int), 0, RELAYQ__MAX_ATTEMPTS_DONE},
    {"_rcpt", F_STRV, OFF(pending_), 0, 0, 0, RELAYQ_MAX_RECIPIENTS},
    {"_accepted", F_INT, OFF(accepted_), 0, sizeof(int), 0, RELAYQ_MAX_RECIPIENTS},
    {"_rejected", F_INT, OFF(rejected_), 0, sizeof(int), 0, RELAYQ_MAX_RECIPIENTS},
    {"_created", F_INT, OFF(created_), 0, sizeof(int64_t), 0, INT64_MAX},
};
#undef OFF
#define N_FIELDS (sizeof fields / sizeof *fields)

static const char *tname(const msgpack_object *o) {
  switch (o->type) {
  case MSGPACK_OBJECT_NIL: return "nil";
  case MSGPACK_OBJECT_BOOLEAN: return "bool";
  case MSGPACK_OBJECT_POSITIVE_INTEGER:
  case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "int";
  case MSGPACK_OBJECT_FLOAT32:
  case MSGPACK_OBJECT_FLOAT64: return "float";
  case MSGPACK_OBJECT_STR: return "str";
  case MSGPACK_OBJECT_ARRAY: return "array";
  case MSGPACK_OBJECT_MAP: return "map";
  case MSGPACK_OBJECT_BIN: return "bin";
  case MSGPACK_OBJECT_EXT: return "ext";
  }
  return "unknown";
}

static int str_is(const msgpack_object *o, const char *s) {
  size_t n = strlen(s);
  return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
         memcmp(o->via.str.ptr, s, n) == 0;
}

/* A msgpack str as a C string: refuses NUL bytes, which would silently cut
 * the value short for every C consumer after us. */
static int take_str(const char *field, const msgpack_object *o, struct arena *a,
                    char **dst, struct relayq_error *err) {
  if (memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL)
    return relayq__fail(err, RELAYQ_EINVALID_JOB, "field '%s' contains a NUL byte.",
                        field);
  *dst = copy_bytes(a, o->via.str.ptr, o->via.str.size);
  return 0;
}

static int dec_int(const struct field *f, const msgpack_object *o, void *dst,
                   struct relayq_error *err) {
  int64_t v;
  int huge = 0; /* above INT64_MAX: out of every range below */
  if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
    huge = o->via.u64 > (uint64_t)INT64_MAX;
    v = huge ? INT64_MAX : (int64_t)o->via.u64;
  } else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
    v = o->via.i64;
  } else {
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "field '%s' must be an integer, got %s.", f->name, tname(o));
  }
  if (f->type == F_VERSION) {
    if (huge || v != RELAYQ_JOB_VERSION)
      return relayq__fail(err, RELAYQ_EINVALID_JOB,
                          "Unsupported job version v=%s%lld; this build reads v=%d.",
                          huge ? ">" : "", (long long)v, RELAYQ_JOB_VERSION);
  } else if (huge || v < f->lo || v > f->hi) {
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "field '%s' must be an integer from %lld to %lld.", f->name,
                        (long long)f->lo, (long long)f->hi);
  }
  if (f->width == (int)sizeof(int)) *(int *)dst = (int)v;
  else *(int64_t *)dst = v;
  return 0;
}

static int dec_strv(const struct field *f, const msgpack_object *o,
                    struct relayq_strv *sv, struct arena *a, struct relayq_error *err) {
  if (o->type != MSGPACK_OBJECT_ARRAY)
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "field '%s' must be an array of strings, got %s.", f->name,
                        tname(o));
  size_t n = o->via.array.size;
  if (n > (size_t)f->hi)
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "field '%s' has %zu items, more than the limit of %lld.",
                        f->name, n, (long long)f->hi);
  char **v = take(a, n * sizeof *v);
  for (size_t i = 0; i < n; i++) {
    const msgpack_object *it = &o->via.array.ptr[i];
    if (it->type != MSGPACK_OBJECT_STR)
      return relayq__fail(err, RELAYQ_EINVALID_JOB,
                          "field '%s' must be an array of strings, got %s at item %zu.",
                          f->name, tname(it), i + 1);
    char *s = NULL;
    int r = take_str(f->name, it, a, &s, err);
    if (r != 0) return r;
    if (v) v[i] = s;
  }
  sv->v = n ? v : NULL;
  sv->n = n;
  return 0;
}

static int dec_kv(const struct field *f, const msgpack_object *o,
                  struct relayq_kv **dst, size_t *dst_n, struct arena *a,
                  struct relayq_error *err) {
  if (o->type != MSGPACK_OBJECT_MAP)
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "field '%s' must be a map of strings to strings, got %s.",
                        f->name, tname(o));
  size_t n = o->via.map.size;
  if (n > (size_t)f->hi)
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "field '%s' has %zu entries, more than the limit of %lld.",
                        f->name, n, (long long)f->hi);
  struct relayq_kv *kv = take(a, n * sizeof *kv);
  for (size_t i = 0; i < n; i++) {
    const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
    if (k->type != MSGPACK_OBJECT_STR || v->type != MSGPACK_OBJECT_STR)
      return relayq__fail(err, RELAYQ_EINVALID_JOB,
                          "field '%s' must be a map of strings to strings, got "
                          "%s -> %s at entry %zu.", f->name, tname(k), tname(v), i + 1);
    char *ks = NULL, *vs = NULL;
    int r = take_str(f->name, k, a, &ks, err);
    if (r == 0) r = take_str(f->name, v, a, &vs, err);
    if (r != 0) return r;
    if (kv) kv[i].key = ks, kv[i].value = vs;
  }
  *dst = n ? kv : NULL;
  *dst_n = n;
  return 0;
}

/* data and raw: bin on the wire; str accepted too, for producers whose
 * msgpack library cannot write bin (msgpack's own spec allows both). */
static int dec_bytes(const char *field, const msgpack_object *o, unsigned char **dst,
                     size_t *dst_n, struct arena *a, struct relayq_error *err) {
  const char *p;
  size_t n;
  if (o->type == MSGPACK_OBJECT_BIN) p = o->via.bin.ptr, n = o->via.bin.size;
  else if (o->type == MSGPACK_OBJECT_STR) p = o->via.str.ptr, n = o->via.str.size;
  else
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "field '%s' must be bin (or str), got %s.", field, tname(o));
  /* By reference: msgpack_unpack_next leaves bin/str pointing into the
   * payload (see the ownership rule at the top). */
  if (a->ref) *dst = n ? (unsigned char *)(uintptr_t)p : (unsigned char *)(uintptr_t)"";
  else *dst = (unsigned char *)copy_bytes(a, p, n);
  *dst_n = n;
  return 0;
}

static int dec_attachment(size_t idx, const msgpack_object *o,
                          struct relayq_attachment *out, struct arena *a,
                          struct relayq_error *err) {
  if (o->type != MSGPACK_OBJECT_MAP)
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "field 'attachments' must be an array of maps, got %s at "
                        "item %zu.", tname(o), idx);
  int have_data = 0, r = 0;
  memset(out, 0, sizeof *out);
  for (size_t i = 0; i < o->via.map.size && r == 0; i++) {
    const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
    if (k->type != MSGPACK_OBJECT_STR)
      return relayq__fail(err, RELAYQ_EINVALID_JOB,
                          "field 'attachments' item %zu: keys must be strings, "
                          "got %s.", idx, tname(k));
    if (v->type == MSGPACK_OBJECT_NIL) continue;
    int is_name = str_is(k, "filename"), is_type = str_is(k, "content_type");
    if ((is_name || is_type) && v->type != MSGPACK_OBJECT_STR)
      return relayq__fail(err, RELAYQ_EINVALID_JOB,
                          "field 'attachments' item %zu: '%s' must be a string, "
                          "got %s.", idx, is_name ? "filename" : "content_type",
                          tname(v));
    if (is_name) r = take_str("attachments.filename", v, a, &out->filename, err);
    else if (is_type) r = take_str("attachments.content_type", v, a, &out->content_type, err);
    else if (str_is(k, "data")) {
      r = dec_bytes("attachments.data", v, &out->data, &out->size, a, err);
      have_data = 1;
    }
  }
  if (r != 0) return r;
  if (!have_data)
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "field 'attachments' item %zu has no 'data'.", idx);
  if (out->content_type == NULL)
    out->content_type = copy_bytes(a, DEFAULT_CONTENT_TYPE, strlen(DEFAULT_CONTENT_TYPE));
  return 0;
}

static int dec_attachments(const struct field *f, const msgpack_object *o,
                           struct relayq_job *job, struct arena *a,
                           struct relayq_error *err) {
  if (o->type != MSGPACK_OBJECT_ARRAY)
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "field 'attachments' must be an array of maps, got %s.",
                        tname(o));
  size_t n = o->via.array.size;
  if (n > (size_t)f->hi)
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "field 'attachments' has %zu items, more than the limit "
                        "of %lld.", n, (long long)f->hi);
  struct relayq_attachment *arr = take(a, n * sizeof *arr);
  for (size_t i = 0; i < n; i++) {
    struct relayq_attachment tmp;
    int r = dec_attachment(i + 1, &o->via.array.ptr[i], &tmp, a, err);
    if (r != 0) return r;
    if (arr) arr[i] = tmp;
  }
  job->attachments = n ? arr : NULL;
  job->n_attachments = n;
  return 0;
}

static int dec_kind(const msgpack_object *o, enum relayq_kind *dst,
                    struct relayq_error *err) {
  if (str_is(o, "transactional")) *dst = RELAYQ_KIND_TRANSACTIONAL;
  else if (str_is(o, "bulk")) *dst = RELAYQ_KIND_BULK;
  else if (str_is(o, "auto_reply")) *dst = RELAYQ_KIND_AUTO_REPLY;
  else if (o->type != MSGPACK_OBJECT_STR)
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "field 'kind' must be a string, got %s.", tname(o));
  else
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "field 'kind' must be transactional, bulk or auto_reply.");
  return 0;
}

static int dec_field(const struct field *f, const msgpack_object *o,
                     struct relayq_job *job, struct arena *a, struct relayq_error *err) {
  char *base = (char *)job;
  switch (f->type) {
  case F_VERSION:
  case F_INT:
    return dec_int(f, o, base + f->off, err);
  case F_STR:
    if (o->type != MSGPACK_OBJECT_STR)
      return relayq__fail(err, RELAYQ_EINVALID_JOB, "field '%s' must be a string, got %s.",
                          f->name, tname(o));
    return take_str(f->name, o, a, (char **)(void *)(base + f->off), err);
  case F_STRV:
    return dec_strv(f, o, (struct relayq_strv *)(void *)(base + f->off), a, err);
  case F_KV:
    return dec_kv(f, o, (struct relayq_kv **)(void *)(base + f->off),
                  (size_t *)(void *)(base + f->off_n), a, err);
  case F_ATTACH:
    return dec_attachments(f, o, job, a, err);
  case F_BYTES:
    return dec_bytes(f->name, o, (unsigned char **)(void *)(base + f->off),
                     (size_t *)(void *)(base + f->off_n), a, err);
  case F_KIND:
    return dec_kind(o, &job->kind, err);
  }
  return 0;
}

static const struct field *lookup(const msgpack_object *key) {
  for (size_t i = 0; i < N_FIELDS; i++)
    if (str_is(key, fields[i].name)) return &fields[i];
  return NULL;
}

/* One walk over the job map into job, allocating from a. */
static int dec_map(const msgpack_object_map *m, struct relayq_job *job,
                   struct arena *a, struct relayq_error *err) {
  uint64_t seen = 0; /* one bit per entry of fields[] */
  for (size_t i = 0; i < m->size; i++) {
    const msgpack_object *k = &m->ptr[i].key, *v = &m->ptr[i].val;
    if (k->type != MSGPACK_OBJECT_STR)
      return relayq__fail(err, RELAYQ_EINVALID_JOB,
                          "Job keys must be strings, got %s.", tname(k));
    const struct field *f = lookup(k);
    if (f == NULL) continue; /* unknown keys: forward compatibility */
    uint64_t bit = (uint64_t)1 << (f - fields);
    if (seen & bit)
      return relayq__fail(err, RELAYQ_EINVALID_JOB,
                          "field '%s' appears twice in the job.", f->name);
    seen |= bit;
    if (v->type == MSGPACK_OBJECT_NIL) continue; /* nil reads as absent */
    int r = dec_field(f, v, job, a, err);
    if (r != 0) return r;
  }
  if (job->v == 0)
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "field 'v' is required (the job format version, %d).",
                        RELAYQ_JOB_VERSION);
  return 0;
}

/* ---- public: decode ------------------------------------------------------------ */

static int decode_tree(const msgpack_object *root, int ref, struct relayq_job **out,
                       struct relayq_error *err) {
  if (root->type != MSGPACK_OBJECT_MAP)
    return relayq__fail(err, RELAYQ_EINVALID_JOB, "A job must be a msgpack map, got %s.",
                        tname(root));
  struct relayq_job scratch;
  memset(&scratch, 0, sizeof scratch);
  struct arena sizing = {NULL, 0, ref};
  take(&sizing, sizeof scratch);
  int r = dec_map(&root->via.map, &scratch, &sizing, err);
  if (r != 0) return r;

  unsigned char *block = malloc(sizing.used);
  if (block == NULL)
    return relayq__fail(err, RELAYQ_ENOMEM, "Out of memory decoding a job of %zu bytes.",
                        sizing.used);
  struct arena fill = {block, 0, ref};
  struct relayq_job *job = take(&fill, sizeof *job);
  memset(job, 0, sizeof *job);
  r = dec_map(&root->via.map, job, &fill, err);
  if (r == 0) r = relayq_job_validate(job, err);
  if (r != 0) {
    free(block);
    return r;
  }
  *out = job;
  return 0;
}

static int decode(const void *buf, size_t len, size_t max_bytes, int ref,
                  struct relayq_job **out, struct relayq_error *err) {
  relayq__error_clear(err);
  if (out == NULL || (buf == NULL && len > 0))
    return relayq__fail(err, RELAYQ_EINVAL, "relayq_job_decode needs a buffer and an output.");
  *out = NULL;
  if (max_bytes == 0) max_bytes = RELAYQ_DEFAULT_MAX_JOB_BYTES;
  if (len > max_bytes)
    return relayq__fail(err, RELAYQ_ETOO_LARGE,
                        "The job payload is %zu bytes, over the limit of %zu bytes.",
                        len, max_bytes);
  if (len == 0)
    return relayq__fail(err, RELAYQ_EINVALID_JOB,
                        "The payload is empty; a job is one msgpack map.");
  int r = prescan(buf, len, err);
  if (r != 0) return r;

  msgpack_unpacked res;
  msgpack_unpacked_init(&res);
  size_t off = 0;
  msgpack_unpack_return ur = msgpack_unpack_next(&res, buf, len, &off);
  if (ur == MSGPACK_UNPACK_NOMEM_ERROR)
    r = relayq__fail(err, RELAYQ_ENOMEM, "Out of memory parsing a job payload.");
  else if (ur != MSGPACK_UNPACK_SUCCESS || off != len)
    r = relayq__fail(err, RELAYQ_EINVALID_JOB, "The payload is not valid msgpack.");
  else
    r = decode_tree(&res.data, ref, out, err);
  msgpack_unpacked_destroy(&res);
  return r;
}

int relayq_job_decode(const void *buf, size_t len, size_t max_bytes,
                      struct relayq_job **out, struct relayq_error *err) {
  return decode(buf, len, max_bytes, 0, out, err);
}

int relayq_job_decode_ref(const void *buf, size_t len, size_t max_bytes,
                          struct relayq_job **out, struct relayq_error *err) {
  return decode(buf, len, max_bytes, 1, out, err);
}

/* ---- public: encode ---------------------------------------------------------------- */

/* Runs twice: with pk == NULL it only counts the map's keys (the map
 * header comes first on the wire), then it packs them. `fail` collects
 * write errors, which msgpack_sbuffer_write reports only for OOM. */
struct enc {
  msgpack_packer *pk;
  size_t keys;
  int fail;
};

static void put_raw_str(struct enc *e, const char *s, size_t n) {
  if (msgpack_pack_str(e->pk, n) != 0 || msgpack_pack_str_body(e->pk, s, n) != 0)
    e->fail = 1;
}

static int put_key(struct enc *e, const char *k) {
  e->keys++;
  if (e->pk) put_raw_str(e, k, strlen(k));
  return e->pk != NULL;
}

static void put_str(struct enc *e, const char *k, const char *v) {
  if (v != NULL && put_key(e, k)) put_raw_str(e, v, strlen(v));
}

static void put_bin(struct enc *e, const unsigned char *p, size_t n) {
  if (msgpack_pack_bin(e->pk, n) != 0 ||
      msgpack_pack_bin_body(e->pk, n ? (const void *)p : "", n) != 0)
    e->fail = 1;
}

static void put_int(struct enc *e, const char *k, int64_t v) {
  if (v != 0 && put_key(e, k) && msgpack_pack_int64(e->pk, v) != 0) e->fail = 1;
}

static void put_strv(struct enc *e, const char *k, const struct relayq_strv *sv) {
  if (sv->n == 0 || !put_key(e, k)) return;
  if (msgpack_pack_array(e->pk, sv->n) != 0) e->fail = 1;
  for (size_t i = 0; i < sv->n; i++) put_raw_str(e, sv->v[i], strlen(sv->v[i]));
}

static void put_kv(struct enc *e, const char *k, const struct relayq_kv *kv, size_t n) {
  if (n == 0 || !put_key(e, k)) return;
  if (msgpack_pack_map(e->pk, n) != 0) e->fail = 1;
  for (size_t i = 0; i < n; i++) {
    put_raw_str(e, kv[i].key, strlen(kv[i].key));
    put_raw_str(e, kv[i].value, strlen(kv[i].value));
  }
}

static void put_attachments(struct enc *e, const struct relayq_job *job) {
  if (job->n_attachments == 0 || !put_key(e, "attachments")) return;
  if (msgpack_pack_array(e->pk, job->n_attachments) != 0) e->fail = 1;
  for (size_t i = 0; i < job->n_attachments; i++) {
    const struct relayq_attachment *at = &job->attachments[i];
    const char *ct = at->content_type ? at->content_type : DEFAULT_CONTENT_TYPE;
    if (msgpack_pack_map(e->pk, 3) != 0) e->fail = 1;
    put_raw_str(e, "filename", 8);
    put_raw_str(e, at->filename, strlen(at->filename));
    put_raw_str(e, "content_type", 12);
    put_raw_str(e, ct, strlen(ct));
    put_raw_str(e, "data", 4);
    put_bin(e, at->data, at->size);
  }
}

static const char *kind_name(enum relayq_kind k) {
  return k == RELAYQ_KIND_BULK ? "bulk" : k == RELAYQ_KIND_AUTO_REPLY ? "auto_reply"
                                                                     : "transactional";
}

static void put_job(struct enc *e, const struct relayq_job *job) {
  put_str(e, "_queue", job->queue_); /* first: the worker's Lua reads it raw */
  if (put_key(e, "v") && msgpack_pack_int(e->pk, RELAYQ_JOB_VERSION) != 0) e->fail = 1;
  put_str(e, "id", job->id);
  put_str(e, "tenant", job->tenant);
  put_strv(e, "to", &job->to);
  put_strv(e, "cc", &job->cc);
  put_strv(e, "bcc", &job->bcc);
  put_str(e, "from", job->from);
  put_str(e, "from_name", job->from_name);
  put_str(e, "reply_to", job->reply_to);
  put_str(e, "subject", job->subject);
  put_str(e, "text", job->text);
  put_str(e, "html", job->html);
  put_kv(e, "headers", job->headers, job->n_headers);
  put_attachments(e, job);
  if (job->raw != NULL && put_key(e, "raw")) put_bin(e, job->raw, job->raw_len);
  put_str(e, "route", job->route);
  if (job->kind != RELAYQ_KIND_TRANSACTIONAL) put_str(e, "kind", kind_name(job->kind));
  put_int(e, "not_before", job->not_before);
  put_int(e, "expires_at", job->expires_at);
  put_int(e, "max_attempts", job->max_attempts);
  put_kv(e, "meta", job->meta, job->n_meta);
  put_int(e, "_attempts", job->attempts_);
  put_strv(e, "_rcpt", &job->pending_);
  put_int(e, "_accepted", job->accepted_);
  put_int(e, "_rejected", job->rejected_);
  put_int(e, "_created", job->created_);
}

/* msgpack's str and bin lengths are 32-bit; validation bounds everything
 * else, but bodies and attachments are only bounded by the worker's job
 * size, so check the wire limit here. */
static int check_wire_sizes(const struct relayq_job *job, struct relayq_error *err) {
  const size_t lim = UINT32_MAX;
  if ((job->text && strlen(job->text) > lim) || (job->html && strlen(job->html) > lim) ||
      job->raw_len > lim)
    return relayq__fail(err, RELAYQ_EINVALID_JOB, "A body is larger than 4 GiB.");
  for (size_t i = 0; i < job->n_attachments; i++)
    if (job->attachments[i].size > lim)
      return relayq__fail(err, RELAYQ_EINVALID_JOB,
                          "Attachment %zu is larger than 4 GiB.", i + 1);
  return 0;
}

int relayq__job_encode_sb(const struct relayq_job *job, msgpack_sbuffer *sb,
                          struct relayq_error *err) {
  msgpack_sbuffer_clear(sb);
  int r = relayq_job_validate(job, err);
  if (r == 0) r = check_wire_sizes(job, err);
  if (r != 0) return r;

  struct enc count = {NULL, 0, 0};
  put_job(&count, job);

  msgpack_packer pk;
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  struct enc e = {&pk, 0, 0};
  if (msgpack_pack_map(&pk, count.keys) != 0) e.fail = 1;
  put_job(&e, job);
  if (e.fail || e.keys != count.keys)
    return relayq__fail(err, RELAYQ_ENOMEM, "Out of memory encoding a job.");
  return 0;
}

int relayq_job_encode(const struct relayq_job *job, unsigned char **out,
                      size_t *out_len, struct relayq_error *err) {
  if (out == NULL || out_len == NULL)
    return relayq__fail(err, RELAYQ_EINVAL, "relayq_job_encode needs an output buffer.");
  *out = NULL;
  *out_len = 0;
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  int r = relayq__job_encode_sb(job, &sb, err);
  if (r != 0) {
    msgpack_sbuffer_destroy(&sb);
    return r;
  }
  *out_len = sb.size;
  *out = (unsigned char *)msgpack_sbuffer_release(&sb);
  return 0;
}
