/* storage.h: the storage the core runs on, as a table of operations (DESIGN section 3).
 *
 * The core (kv_node, hints, anti-entropy, reaping) reads and writes through a kv_storage_t:
 * an implementation's handle and its table. kvnode/store.c fills one over RocksDB
 * (kv_store_storage); the memory store (tests/sim/memstore.h), which the simulator and the
 * unit tests of the core run on, fills another, whose power loss drops unsynced writes.
 * Nothing here includes RocksDB, so the core links without it, and both implementations can
 * live in one program.
 *
 * The meaning of each operation, its layout and its errors are store.h's (kv_store_get and
 * the rest): every implementation must behave as store.c does, which tests/unit/check_store.c
 * checks for RocksDB and the simulator's checkers for the memory store. In short:
 *   - records live under (partition, keyspace, key); hints under (target node, keyspace,
 *     key); the core's own facts (the ring, an ownership handoff's progress) under a name in
 *     meta; a read of a missing record is KV_OK with *found false;
 *   - a returned *rec is malloc'd and the caller's to free;
 *   - the tracked writes change a record, its anti-entropy leaf and its segment's sum
 *     together (leaf 0: no record), so a tree is always the XOR of its leaves; the caller
 *     passes the old leaf it computed from the record it read (0: none), which an
 *     implementation may use instead of reading its own (store.c note 8);
 *   - writes are not durable until sync returns KV_OK (group commit: one sync covers every
 *     write before it); sync=true on a write syncs it before the call returns;
 *   - scans run in key order; their callbacks borrow the pointers for the call and return
 *     false to stop.
 * Lifetime: the handle is borrowed by whoever holds the kv_storage_t and must outlive it. */
#ifndef KV_STORAGE_H
#define KV_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv_err.h"

/* Called for each record of a scan in key order; false stops it. Pointers borrowed. */
typedef bool (*kv_storage_scan_fn)(void *arg, const char *keyspace, const void *key,
                                   size_t key_bytes, const void *rec, size_t rec_bytes);
/* Called for each leaf of an anti-entropy segment in key order; false stops it. */
typedef bool (*kv_storage_leaf_fn)(void *arg, const void *key, size_t key_bytes, uint64_t leaf);

typedef struct {
  uint64_t (*incarnation)(void *impl);
  kv_err (*sync)(void *impl, kv_status_t *st);
  kv_err (*get)(void *impl, uint32_t partition, const char *keyspace, const void *key,
                size_t key_bytes, uint8_t **rec, size_t *rec_bytes, bool *found, kv_status_t *st);
  kv_err (*put)(void *impl, uint32_t partition, const char *keyspace, const void *key,
                size_t key_bytes, const void *rec, size_t rec_bytes, bool sync, kv_status_t *st);
  kv_err (*remove)(void *impl, uint32_t partition, const char *keyspace, const void *key,
                   size_t key_bytes, bool sync, kv_status_t *st);
  kv_err (*put_tracked)(void *impl, uint32_t partition, const char *keyspace, const void *key,
                        size_t key_bytes, const void *rec, size_t rec_bytes, uint32_t segment,
                        uint64_t old_leaf, uint64_t leaf, bool sync, kv_status_t *st);
  kv_err (*remove_tracked)(void *impl, uint32_t partition, const char *keyspace, const void *key,
                           size_t key_bytes, uint32_t segment, uint64_t old_leaf, bool sync,
                           kv_status_t *st);
  kv_err (*scan_partition)(void *impl, uint32_t partition, kv_storage_scan_fn fn, void *arg,
                           kv_status_t *st);
  kv_err (*aae_sums)(void *impl, uint32_t partition, const char *keyspace, uint64_t *sums,
                     kv_status_t *st);
  kv_err (*aae_leaves)(void *impl, uint32_t partition, const char *keyspace, uint32_t segment,
                       kv_storage_leaf_fn fn, void *arg, kv_status_t *st);
  kv_err (*hint_get)(void *impl, uint32_t target, const char *keyspace, const void *key,
                     size_t key_bytes, uint8_t **rec, size_t *rec_bytes, bool *found,
                     kv_status_t *st);
  kv_err (*hint_put)(void *impl, uint32_t target, const char *keyspace, const void *key,
                     size_t key_bytes, const void *rec, size_t rec_bytes, kv_status_t *st);
  kv_err (*hint_remove)(void *impl, uint32_t target, const char *keyspace, const void *key,
                        size_t key_bytes, kv_status_t *st);
  kv_err (*hint_scan)(void *impl, uint32_t target, kv_storage_scan_fn fn, void *arg,
                      kv_status_t *st);
  kv_err (*meta_get)(void *impl, const char *name, uint8_t **val, size_t *val_bytes, bool *found,
                     kv_status_t *st);
  kv_err (*meta_put)(void *impl, const char *name, const void *val, size_t val_bytes, bool sync,
                     kv_status_t *st);
} kv_storage_ops_t;

/* An implementation's handle and its table (both borrowed). */
typedef struct {
  const kv_storage_ops_t *ops;
  void *impl;
} kv_storage_t;

/* Calls through the table: kv_storage_get(s, ...) is s->ops->get(s->impl, ...). */
static inline uint64_t kv_storage_incarnation(const kv_storage_t *s) {
  return s->ops->incarnation(s->impl);
}
static inline kv_err kv_storage_sync(const kv_storage_t *s, kv_status_t *st) {
  return s->ops->sync(s->impl, st);
}
static inline kv_err kv_storage_get(const kv_storage_t *s, uint32_t partition,
                                    const char *keyspace, const void *key, size_t key_bytes,
                                    uint8_t **rec, size_t *rec_bytes, bool *found,
                                    kv_status_t *st) {
  return s->ops->get(s->impl, partition, keyspace, key, key_bytes, rec, rec_bytes, found, st);
}
static inline kv_err kv_storage_put(const kv_storage_t *s, uint32_t partition,
                                    const char *keyspace, const void *key, size_t key_bytes,
                                    const void *rec, size_t rec_bytes, bool sync,
                                    kv_status_t *st) {
  return s->ops->put(s->impl, partition, keyspace, key, key_bytes, rec, rec_bytes, sync, st);
}
static inline kv_err kv_storage_remove(const kv_storage_t *s, uint32_t partition,
                                       const char *keyspace, const void *key, size_t key_bytes,
                                       bool sync, kv_status_t *st) {
  return s->ops->remove(s->impl, partition, keyspace, key, key_bytes, sync, st);
}
static inline kv_err kv_storage_put_tracked(const kv_storage_t *s, uint32_t partition,
                                            const char *keyspace, const void *key,
                                            size_t key_bytes, const void *rec, size_t rec_bytes,
                                            uint32_t segment, uint64_t old_leaf, uint64_t leaf,
                                            bool sync, kv_status_t *st) {
  return s->ops->put_tracked(s->impl, partition, keyspace, key, key_bytes, rec, rec_bytes, segment,
                             old_leaf, leaf, sync, st);
}
static inline kv_err kv_storage_remove_tracked(const kv_storage_t *s, uint32_t partition,
                                               const char *keyspace, const void *key,
                                               size_t key_bytes, uint32_t segment,
                                               uint64_t old_leaf, bool sync, kv_status_t *st) {
  return s->ops->remove_tracked(s->impl, partition, keyspace, key, key_bytes, segment, old_leaf,
                                sync, st);
}
static inline kv_err kv_storage_scan_partition(const kv_storage_t *s, uint32_t partition,
                                               kv_storage_scan_fn fn, void *arg, kv_status_t *st) {
  return s->ops->scan_partition(s->impl, partition, fn, arg, st);
}
static inline kv_err kv_storage_aae_sums(const kv_storage_t *s, uint32_t partition,
                                         const char *keyspace, uint64_t *sums, kv_status_t *st) {
  return s->ops->aae_sums(s->impl, partition, keyspace, sums, st);
}
static inline kv_err kv_storage_aae_leaves(const kv_storage_t *s, uint32_t partition,
                                           const char *keyspace, uint32_t segment,
                                           kv_storage_leaf_fn fn, void *arg, kv_status_t *st) {
  return s->ops->aae_leaves(s->impl, partition, keyspace, segment, fn, arg, st);
}
static inline kv_err kv_storage_hint_get(const kv_storage_t *s, uint32_t target,
                                         const char *keyspace, const void *key, size_t key_bytes,
                                         uint8_t **rec, size_t *rec_bytes, bool *found,
                                         kv_status_t *st) {
  return s->ops->hint_get(s->impl, target, keyspace, key, key_bytes, rec, rec_bytes, found, st);
}
static inline kv_err kv_storage_hint_put(const kv_storage_t *s, uint32_t target,
                                         const char *keyspace, const void *key, size_t key_bytes,
                                         const void *rec, size_t rec_bytes, kv_status_t *st) {
  return s->ops->hint_put(s->impl, target, keyspace, key, key_bytes, rec, rec_bytes, st);
}
static inline kv_err kv_storage_hint_remove(const kv_storage_t *s, uint32_t target,
                                            const char *keyspace, const void *key,
                                            size_t key_bytes, kv_status_t *st) {
  return s->ops->hint_remove(s->impl, target, keyspace, key, key_bytes, st);
}
static inline kv_err kv_storage_hint_scan(const kv_storage_t *s, uint32_t target,
                                          kv_storage_scan_fn fn, void *arg, kv_status_t *st) {
  return s->ops->hint_scan(s->impl, target, fn, arg, st);
}
static inline kv_err kv_storage_meta_get(const kv_storage_t *s, const char *name, uint8_t **val,
                                         size_t *val_bytes, bool *found, kv_status_t *st) {
  return s->ops->meta_get(s->impl, name, val, val_bytes, found, st);
}
static inline kv_err kv_storage_meta_put(const kv_storage_t *s, const char *name, const void *val,
                                         size_t val_bytes, bool sync, kv_status_t *st) {
  return s->ops->meta_put(s->impl, name, val, val_bytes, sync, st);
}

#endif
