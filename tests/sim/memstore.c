/* memstore.c: the core's storage (coordinator/storage.h) in memory, for the simulator and
 * the unit tests of the core (see memstore.h).
 *
 * A disk holds two images of the data: `live` (what reads see, every write so far) and
 * `durable` (as of the last sync). A sync copies live into durable; a power loss
 * copies durable back into live; a process crash changes neither, as a RocksDB write that
 * returned is in the OS page cache (store.c note 5). Each image is an array of records
 * sorted by a family byte ('d' data, 'h' hints, 'l' anti-entropy leaves, 's' segment sums)
 * and then the composite key store.c uses ([partition or target BE32][keyspace][0][key];
 * for the trees the key is [segment BE16] and, for a leaf, the user key), so scans see the
 * same order as on RocksDB. A tracked write changes record, leaf and sum at once, as
 * store.c's one batch does.
 *
 * The incarnation id follows store.c note 4: the simulator's processes only ever end in a
 * crash, so every open of a disk makes a new one (the opener's, from the run's generator in
 * the simulator). Sizes are small (a simulated run touches tens of keys), so the images are
 * plain arrays copied whole on sync. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_limits.h"
#include "log.h"
#include "memstore.h"

#define DISKS_MAX 16u

typedef struct {
  uint8_t *key;  /* composite key */
  size_t key_bytes;
  uint8_t *rec;
  size_t rec_bytes;
} entry_t;

typedef struct {
  entry_t *e;
  size_t count, cap;
} image_t;

typedef struct {
  char name[64];
  uint64_t incarnation;
  image_t live, durable;
  uint32_t opens;                /* handles open on it */
} disk_t;

struct sim_store {
  disk_t *disk;
  sim_store_removed_fn removed;  /* NULL: nobody asked */
  void *removed_arg;
};

static disk_t *disks[DISKS_MAX];
static uint32_t disk_count;

static void image_clear(image_t *im) {
  for (size_t i = 0; i < im->count; i++) {
    free(im->e[i].key);
    free(im->e[i].rec);
  }
  free(im->e);
  memset(im, 0, sizeof *im);
}

static uint8_t *dup_bytes(const void *p, size_t n) {
  uint8_t *d = malloc(n ? n : 1);
  KV_ASSERT(d != NULL);
  if (n) memcpy(d, p, n);
  return d;
}

static void image_copy(image_t *dst, const image_t *src) {
  image_clear(dst);
  dst->cap = dst->count = src->count;
  dst->e = calloc(src->count ? src->count : 1, sizeof *dst->e);
  KV_ASSERT(dst->e != NULL);
  for (size_t i = 0; i < src->count; i++) {
    dst->e[i].key = dup_bytes(src->e[i].key, src->e[i].key_bytes);
    dst->e[i].key_bytes = src->e[i].key_bytes;
    dst->e[i].rec = dup_bytes(src->e[i].rec, src->e[i].rec_bytes);
    dst->e[i].rec_bytes = src->e[i].rec_bytes;
  }
}

static int key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
  int c = memcmp(a, b, an < bn ? an : bn);
  if (c != 0) return c;
  return an < bn ? -1 : an > bn;
}

/* Index of the first entry >= key; *hit when it equals key. */
static size_t image_find(const image_t *im, const uint8_t *key, size_t key_bytes, bool *hit) {
  size_t lo = 0, hi = im->count;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (key_cmp(im->e[mid].key, im->e[mid].key_bytes, key, key_bytes) < 0) lo = mid + 1;
    else hi = mid;
  }
  *hit = lo < im->count && key_cmp(im->e[lo].key, im->e[lo].key_bytes, key, key_bytes) == 0;
  return lo;
}

#define PREFIX_BYTES 5u /* family, then partition or target */

static void prefix_put(uint8_t *k, char family, uint32_t partition) {
  k[0] = (uint8_t)family;
  k[1] = (uint8_t)(partition >> 24);
  k[2] = (uint8_t)(partition >> 16);
  k[3] = (uint8_t)(partition >> 8);
  k[4] = (uint8_t)partition;
}

/* The family byte and the composite key of store.c note 2; malloc'd. */
static uint8_t *compose(char family, uint32_t partition, const char *keyspace, const void *key,
                        size_t key_bytes, size_t *out_bytes) {
  size_t ks = strlen(keyspace);
  *out_bytes = PREFIX_BYTES + ks + 1 + key_bytes;
  uint8_t *k = malloc(*out_bytes);
  KV_ASSERT(k != NULL);
  prefix_put(k, family, partition);
  memcpy(k + PREFIX_BYTES, keyspace, ks + 1);
  memcpy(k + PREFIX_BYTES + ks + 1, key, key_bytes);
  return k;
}

sim_store_t *sim_store_open(const char *dir, uint64_t incarnation) {
  KV_ASSERT(incarnation != 0);
  disk_t *d = NULL;
  for (uint32_t i = 0; i < disk_count; i++)
    if (strcmp(disks[i]->name, dir) == 0) d = disks[i];
  if (!d) {
    KV_ASSERT(disk_count < DISKS_MAX);
    d = calloc(1, sizeof *d);
    KV_ASSERT(d != NULL);
    snprintf(d->name, sizeof d->name, "%s", dir);
    disks[disk_count++] = d;
  }
  d->incarnation = incarnation;
  d->opens++;
  sim_store_t *s = calloc(1, sizeof *s);
  KV_ASSERT(s != NULL);
  s->disk = d;
  return s;
}

void sim_store_on_remove(sim_store_t *s, sim_store_removed_fn fn, void *arg) {
  s->removed = fn;
  s->removed_arg = arg;
}

void sim_store_crash(sim_store_t *s, bool power_loss) {
  if (power_loss) image_copy(&s->disk->live, &s->disk->durable);
  s->disk->opens--;
  free(s);
}

void sim_disks_reset(void) {
  for (uint32_t i = 0; i < disk_count; i++) {
    KV_ASSERT(disks[i]->opens == 0);
    image_clear(&disks[i]->live);
    image_clear(&disks[i]->durable);
    free(disks[i]);
  }
  disk_count = 0;
}

static uint64_t mem_incarnation(void *impl) { return ((sim_store_t *)impl)->disk->incarnation; }

static kv_err mem_sync(void *impl, kv_status_t *st) {
  sim_store_t *s = impl;
  image_copy(&s->disk->durable, &s->disk->live);
  return KV_OK;
}

static kv_err get_in(sim_store_t *s, char family, uint32_t partition, const char *keyspace,
                     const void *key, size_t key_bytes, uint8_t **rec, size_t *rec_bytes,
                     bool *found) {
  size_t kb;
  uint8_t *k = compose(family, partition, keyspace, key, key_bytes, &kb);
  const image_t *im = &s->disk->live;
  size_t i = image_find(im, k, kb, found);
  free(k);
  *rec = NULL;
  *rec_bytes = 0;
  if (*found) {
    *rec = dup_bytes(im->e[i].rec, im->e[i].rec_bytes);
    *rec_bytes = im->e[i].rec_bytes;
  }
  return KV_OK;
}

static void put_in(sim_store_t *s, char family, uint32_t partition, const char *keyspace,
                   const void *key, size_t key_bytes, const void *rec, size_t rec_bytes) {
  size_t kb;
  uint8_t *k = compose(family, partition, keyspace, key, key_bytes, &kb);
  image_t *im = &s->disk->live;
  bool hit;
  size_t i = image_find(im, k, kb, &hit);
  if (hit) {
    free(k);
    free(im->e[i].rec);
  } else {
    if (im->count == im->cap) {
      im->cap = im->cap ? im->cap * 2 : 16;
      im->e = realloc(im->e, im->cap * sizeof *im->e);
      KV_ASSERT(im->e != NULL);
    }
    memmove(&im->e[i + 1], &im->e[i], (im->count - i) * sizeof *im->e);
    im->count++;
    im->e[i].key = k;
    im->e[i].key_bytes = kb;
  }
  im->e[i].rec = dup_bytes(rec, rec_bytes);
  im->e[i].rec_bytes = rec_bytes;
}

static void delete_in(sim_store_t *s, char family, uint32_t partition, const char *keyspace,
                      const void *key, size_t key_bytes) {
  size_t kb;
  uint8_t *k = compose(family, partition, keyspace, key, key_bytes, &kb);
  image_t *im = &s->disk->live;
  bool hit;
  size_t i = image_find(im, k, kb, &hit);
  free(k);
  if (!hit) return;
  free(im->e[i].key);
  free(im->e[i].rec);
  memmove(&im->e[i], &im->e[i + 1], (im->count - i - 1) * sizeof *im->e);
  im->count--;
}

static void scan_in(sim_store_t *s, char family, uint32_t partition, kv_storage_scan_fn fn,
                    void *arg) {
  const image_t *im = &s->disk->live;
  uint8_t prefix[PREFIX_BYTES];
  prefix_put(prefix, family, partition);
  bool hit;
  size_t i = image_find(im, prefix, sizeof prefix, &hit);
  for (; i < im->count && memcmp(im->e[i].key, prefix, PREFIX_BYTES) == 0; i++) {
    const entry_t *e = &im->e[i];
    const char *ks = (const char *)e->key + PREFIX_BYTES;
    size_t ks_len = strlen(ks);
    const uint8_t *key = e->key + PREFIX_BYTES + ks_len + 1;
    if (!fn(arg, ks, key, e->key_bytes - PREFIX_BYTES - ks_len - 1, e->rec, e->rec_bytes)) break;
  }
}

static kv_err mem_get(void *impl, uint32_t partition, const char *keyspace, const void *key,
                      size_t key_bytes, uint8_t **rec, size_t *rec_bytes, bool *found,
                      kv_status_t *st) {
  sim_store_t *s = impl;
  return get_in(s, 'd', partition, keyspace, key, key_bytes, rec, rec_bytes, found);
}

static kv_err mem_put(void *impl, uint32_t partition, const char *keyspace, const void *key,
                      size_t key_bytes, const void *rec, size_t rec_bytes, bool sync,
                      kv_status_t *st) {
  sim_store_t *s = impl;
  put_in(s, 'd', partition, keyspace, key, key_bytes, rec, rec_bytes);
  if (sync) return mem_sync(s, st);
  return KV_OK;
}

static void durable_get(const char *disk, char family, uint32_t partition, const char *keyspace,
                        const void *key, size_t key_bytes, uint8_t **rec, size_t *rec_bytes) {
  *rec = NULL;
  *rec_bytes = 0;
  for (uint32_t d = 0; d < disk_count; d++) {
    if (strcmp(disks[d]->name, disk) != 0) continue;
    size_t kb;
    bool hit;
    uint8_t *k = compose(family, partition, keyspace, key, key_bytes, &kb);
    const image_t *im = &disks[d]->durable;
    size_t i = image_find(im, k, kb, &hit);
    free(k);
    if (hit) {
      *rec = dup_bytes(im->e[i].rec, im->e[i].rec_bytes);
      *rec_bytes = im->e[i].rec_bytes;
    }
  }
}

void sim_disk_durable_get(const char *disk, uint32_t partition, const char *keyspace,
                          const void *key, size_t key_bytes, uint8_t **rec, size_t *rec_bytes) {
  durable_get(disk, 'd', partition, keyspace, key, key_bytes, rec, rec_bytes);
}

void sim_disk_durable_hint_get(const char *disk, uint32_t target, const char *keyspace,
                               const void *key, size_t key_bytes, uint8_t **rec,
                               size_t *rec_bytes) {
  durable_get(disk, 'h', target, keyspace, key, key_bytes, rec, rec_bytes);
}

static kv_err mem_remove(void *impl, uint32_t partition, const char *keyspace, const void *key,
                         size_t key_bytes, bool sync, kv_status_t *st) {
  sim_store_t *s = impl;
  delete_in(s, 'd', partition, keyspace, key, key_bytes);
  if (s->removed) s->removed(s->removed_arg, key, key_bytes);
  if (sync) return mem_sync(s, st);
  return KV_OK;
}

static kv_err mem_scan_partition(void *impl, uint32_t partition, kv_storage_scan_fn fn, void *arg,
                                 kv_status_t *st) {
  sim_store_t *s = impl;
  scan_in(s, 'd', partition, fn, arg);
  return KV_OK;
}

static kv_err mem_hint_get(void *impl, uint32_t target, const char *keyspace, const void *key,
                           size_t key_bytes, uint8_t **rec, size_t *rec_bytes, bool *found,
                           kv_status_t *st) {
  sim_store_t *s = impl;
  return get_in(s, 'h', target, keyspace, key, key_bytes, rec, rec_bytes, found);
}

static kv_err mem_hint_put(void *impl, uint32_t target, const char *keyspace, const void *key,
                           size_t key_bytes, const void *rec, size_t rec_bytes, kv_status_t *st) {
  sim_store_t *s = impl;
  put_in(s, 'h', target, keyspace, key, key_bytes, rec, rec_bytes);
  return KV_OK;
}

static kv_err mem_hint_remove(void *impl, uint32_t target, const char *keyspace, const void *key,
                              size_t key_bytes, kv_status_t *st) {
  sim_store_t *s = impl;
  delete_in(s, 'h', target, keyspace, key, key_bytes);
  return KV_OK;
}

static kv_err mem_hint_scan(void *impl, uint32_t target, kv_storage_scan_fn fn, void *arg,
                            kv_status_t *st) {
  sim_store_t *s = impl;
  scan_in(s, 'h', target, fn, arg);
  return KV_OK;
}

static uint64_t le64_get(const uint8_t *in) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | in[i];
  return v;
}

static void le64_put(uint8_t *out, uint64_t v) {
  for (int i = 0; i < 8; i++) out[i] = (uint8_t)(v >> (8 * i));
}

/* [segment BE16][key] into a malloc'd buffer. */
static uint8_t *tree_key(uint32_t segment, const void *key, size_t key_bytes, size_t *out) {
  *out = 2 + key_bytes;
  uint8_t *k = malloc(*out);
  KV_ASSERT(k != NULL);
  k[0] = (uint8_t)(segment >> 8);
  k[1] = (uint8_t)segment;
  if (key_bytes) memcpy(k + 2, key, key_bytes);
  return k;
}

/* The memory store's trees are tracked from a disk's first write (its owner never turns
 * anti-entropy on for a disk written without it), so the caller's old leaf must be the
 * tree's own: a caller that got it wrong would corrupt store.c's sums, and is stopped here. */
static void tracked(sim_store_t *s, uint32_t partition, const char *keyspace, const void *key,
                    size_t key_bytes, uint32_t segment, uint64_t old_leaf, uint64_t leaf) {
  size_t lk_bytes, sk_bytes, old_bytes;
  uint8_t *lk = tree_key(segment, key, key_bytes, &lk_bytes);
  uint8_t *sk = tree_key(segment, NULL, 0, &sk_bytes);
  uint8_t *old;
  bool found;
  get_in(s, 'l', partition, keyspace, lk, lk_bytes, &old, &old_bytes, &found);
  uint64_t was = found ? le64_get(old) : 0;
  free(old);
  KV_ASSERT(old_leaf == was);
  uint8_t *sum;
  size_t sum_bytes;
  get_in(s, 's', partition, keyspace, sk, sk_bytes, &sum, &sum_bytes, &found);
  uint8_t v[8];
  le64_put(v, (found ? le64_get(sum) : 0) ^ was ^ leaf);
  free(sum);
  put_in(s, 's', partition, keyspace, sk, sk_bytes, v, sizeof v);
  le64_put(v, leaf);
  if (leaf) put_in(s, 'l', partition, keyspace, lk, lk_bytes, v, sizeof v);
  else delete_in(s, 'l', partition, keyspace, lk, lk_bytes);
  free(lk);
  free(sk);
}

static kv_err mem_put_tracked(void *impl, uint32_t partition, const char *keyspace,
                              const void *key, size_t key_bytes, const void *rec, size_t rec_bytes,
                              uint32_t segment, uint64_t old_leaf, uint64_t leaf, bool sync,
                              kv_status_t *st) {
  sim_store_t *s = impl;
  put_in(s, 'd', partition, keyspace, key, key_bytes, rec, rec_bytes);
  tracked(s, partition, keyspace, key, key_bytes, segment, old_leaf, leaf);
  if (sync) return mem_sync(s, st);
  return KV_OK;
}

static kv_err mem_remove_tracked(void *impl, uint32_t partition, const char *keyspace,
                                 const void *key, size_t key_bytes, uint32_t segment,
                                 uint64_t old_leaf, bool sync, kv_status_t *st) {
  sim_store_t *s = impl;
  delete_in(s, 'd', partition, keyspace, key, key_bytes);
  if (s->removed) s->removed(s->removed_arg, key, key_bytes);
  tracked(s, partition, keyspace, key, key_bytes, segment, old_leaf, 0);
  if (sync) return mem_sync(s, st);
  return KV_OK;
}

/* Walks the tree entries of one family of (partition, keyspace) whose key starts with
 * [segment] (any segment when segment is UINT32_MAX). */
static void tree_walk(sim_store_t *s, char family, uint32_t partition, const char *keyspace,
                      uint32_t segment, bool (*fn)(void *, uint32_t, const uint8_t *, size_t,
                                                   uint64_t),
                      void *arg) {
  size_t pb;
  uint8_t *prefix = compose(family, partition, keyspace, "", 0, &pb);
  const image_t *im = &s->disk->live;
  bool hit;
  for (size_t i = image_find(im, prefix, pb, &hit); i < im->count; i++) {
    const entry_t *e = &im->e[i];
    if (e->key_bytes < pb + 2 || memcmp(e->key, prefix, pb) != 0) break;
    uint32_t seg = (uint32_t)e->key[pb] << 8 | e->key[pb + 1];
    if (segment != UINT32_MAX && seg != segment) {
      if (seg > segment) break;
      continue;
    }
    if (!fn(arg, seg, e->key + pb + 2, e->key_bytes - pb - 2, le64_get(e->rec))) break;
  }
  free(prefix);
}

static bool sum_into(void *arg, uint32_t segment, const uint8_t *key, size_t key_bytes,
                     uint64_t v) {
  ((uint64_t *)arg)[segment] = v;
  return true;
}

static kv_err mem_aae_sums(void *impl, uint32_t partition, const char *keyspace, uint64_t *sums,
                           kv_status_t *st) {
  sim_store_t *s = impl;
  memset(sums, 0, KV_AAE_SEGMENTS * sizeof sums[0]);
  tree_walk(s, 's', partition, keyspace, UINT32_MAX, sum_into, sums);
  return KV_OK;
}

typedef struct {
  kv_storage_leaf_fn fn;
  void *arg;
} leaf_walk_t;

static bool leaf_to(void *arg, uint32_t segment, const uint8_t *key, size_t key_bytes,
                    uint64_t v) {
  leaf_walk_t *w = arg;
  return w->fn(w->arg, key, key_bytes, v);
}

static kv_err mem_aae_leaves(void *impl, uint32_t partition, const char *keyspace,
                             uint32_t segment, kv_storage_leaf_fn fn, void *arg, kv_status_t *st) {
  sim_store_t *s = impl;
  leaf_walk_t w = {fn, arg};
  tree_walk(s, 'l', partition, keyspace, segment, leaf_to, &w);
  return KV_OK;
}

/* The core's facts: family 'm', under their name as the key. */
static kv_err mem_meta_get(void *impl, const char *name, uint8_t **val, size_t *val_bytes,
                           bool *found, kv_status_t *st) {
  return get_in(impl, 'm', 0, "", name, strlen(name), val, val_bytes, found);
}

static kv_err mem_meta_put(void *impl, const char *name, const void *val, size_t val_bytes,
                           bool sync, kv_status_t *st) {
  put_in(impl, 'm', 0, "", name, strlen(name), val, val_bytes);
  if (sync) return mem_sync(impl, st);
  return KV_OK;
}

static const kv_storage_ops_t mem_ops = {
    .incarnation = mem_incarnation, .sync = mem_sync, .get = mem_get, .put = mem_put,
    .remove = mem_remove, .put_tracked = mem_put_tracked, .remove_tracked = mem_remove_tracked,
    .scan_partition = mem_scan_partition, .aae_sums = mem_aae_sums,
    .aae_leaves = mem_aae_leaves, .hint_get = mem_hint_get, .hint_put = mem_hint_put,
    .hint_remove = mem_hint_remove, .hint_scan = mem_hint_scan, .meta_get = mem_meta_get,
    .meta_put = mem_meta_put};

void sim_store_storage(sim_store_t *s, kv_storage_t *out) {
  *out = (kv_storage_t){.ops = &mem_ops, .impl = s};
}
