/* store.h: tunekv's storage on RocksDB. The only module that includes rocksdb/c.h.
 * The core reaches it through the operations table of coordinator/storage.h
 * (kv_store_storage); the functions below are that table's operations by name, for the
 * runtime and the store's own tests.
 *
 * Column families: "default" (unused), "data" (key records), "hints" (hinted handoff, below),
 * "meta" (node facts such as the incarnation id), "aae" (anti-entropy trees, below).
 * Data keys are laid out partition-first so one partition is one contiguous range:
 *   [partition: 4 bytes big-endian][keyspace name][0x00][user key]
 * Every stored record is framed as [magic "TKV1": 4][xxh64 of payload: 8 LE][payload];
 * a frame that fails its check is KV_ECORRUPT with a sentence naming the keyspace and key,
 * never a crash.
 * The incarnation id is a random 64-bit number written to meta when the data directory is
 * created, and read back on every later open.
 *
 * Thread-safety: all functions may be called from several threads at once. Writes with
 * sync=true are fsynced before the call returns; RocksDB groups concurrent synced writes
 * into one fsync (group commit). */
#ifndef KV_STORE_H
#define KV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv_err.h"
#include "storage.h"

typedef struct kv_store kv_store_t;

/* Opens (creating if needed) the database in dir. KV_EIO with a sentence on failure;
 * KV_ECORRUPT when the stored incarnation id fails its check. */
kv_err kv_store_open(const char *dir, kv_store_t **out, kv_status_t *st);
/* The same with RocksDB's memory sized: one block cache of cache_bytes shared by every
 * family, and memtable_bytes of unflushed writes summed over them (kv_store_open: the
 * kv_limits.h defaults; kvnode: the config's block_cache_mb and memtable_mb). */
kv_err kv_store_open_sized(const char *dir, uint64_t cache_bytes, uint64_t memtable_bytes,
                           kv_store_t **out, kv_status_t *st);
/* Flushes and closes; s is freed. NULL is a no-op. */
void kv_store_close(kv_store_t *s);
/* The incarnation id of this data directory (never 0). */
uint64_t kv_store_incarnation(const kv_store_t *s);
/* Fills *out with s and the table of the functions below; s is borrowed. */
void kv_store_storage(kv_store_t *s, kv_storage_t *out);

/* Makes every write so far durable (one fsync of the write-ahead log covers all of them):
 * the group commit of durable writes. KV_EIO with a sentence on failure. */
kv_err kv_store_sync(kv_store_t *s, kv_status_t *st);

/* Reads the record of (partition, keyspace, key). On success *found tells whether it exists;
 * when found, *rec is a malloc'd copy of the payload (checksum verified) that the caller
 * frees, and *rec_bytes its length. KV_ECORRUPT / KV_EIO with a sentence on failure. */
kv_err kv_store_get(kv_store_t *s, uint32_t partition, const char *keyspace, const void *key,
                    size_t key_bytes, uint8_t **rec, size_t *rec_bytes, bool *found,
                    kv_status_t *st);
/* Writes the record (framed with its checksum). sync: fsync before returning. */
kv_err kv_store_put(kv_store_t *s, uint32_t partition, const char *keyspace, const void *key,
                    size_t key_bytes, const void *rec, size_t rec_bytes, bool sync,
                    kv_status_t *st);
/* Removes the record (for reaping). */
kv_err kv_store_delete(kv_store_t *s, uint32_t partition, const char *keyspace,
                       const void *key, size_t key_bytes, bool sync, kv_status_t *st);

/* Anti-entropy trees (coordinator/aae.h), one per (partition, keyspace): a leaf hash per key,
 * kept in segments, and per segment the XOR of its leaves. The tracked writes below change
 * the record, the key's leaf and its segment's sum in one atomic batch: a crash never leaves
 * a tree that disagrees with its leaves, and nothing is ever rebuilt from a scan of the data.
 * old_leaf is the leaf of the record being replaced as the caller computed it (0: there was
 * none). It is used only when kv_store_set_tracking(true) found that this directory was
 * never written untracked; otherwise the old leaf comes from the tree itself, so a tree
 * stays the XOR of its leaves even when tracking was off for a while (keys written
 * meanwhile are simply stale in it until written again or repaired). leaf 0 means "no
 * record": kv_store_delete_tracked takes the leaf out. */
kv_err kv_store_put_tracked(kv_store_t *s, uint32_t partition, const char *keyspace,
                            const void *key, size_t key_bytes, const void *rec,
                            size_t rec_bytes, uint32_t segment, uint64_t old_leaf,
                            uint64_t leaf, bool sync, kv_status_t *st);
kv_err kv_store_delete_tracked(kv_store_t *s, uint32_t partition, const char *keyspace,
                               const void *key, size_t key_bytes, uint32_t segment,
                               uint64_t old_leaf, bool sync, kv_status_t *st);
/* Says, before the first write, whether this process writes tracked (anti-entropy on). false
 * marks the directory, for good, as one whose trees may be stale; true on an unmarked one
 * lets tracked writes trust their callers' old leaves and skip a read (store.c note 8).
 * Without the call nothing is trusted. KV_EIO from RocksDB. */
kv_err kv_store_set_tracking(kv_store_t *s, bool tracked, kv_status_t *st);
/* The segment sums of a tree into sums[0..KV_AAE_SEGMENTS) (0 where no key ever was). */
kv_err kv_store_aae_sums(kv_store_t *s, uint32_t partition, const char *keyspace,
                         uint64_t *sums, kv_status_t *st);
/* Called for each leaf of a segment, in key order (kv_storage_leaf_fn). */
kv_err kv_store_aae_leaves(kv_store_t *s, uint32_t partition, const char *keyspace,
                           uint32_t segment, kv_storage_leaf_fn fn, void *arg, kv_status_t *st);

/* Calls fn for each record of a partition in key order (kv_storage_scan_fn). A corrupt
 * record stops the scan with KV_ECORRUPT naming its key. */
kv_err kv_store_scan_partition(kv_store_t *s, uint32_t partition, kv_storage_scan_fn fn,
                               void *arg, kv_status_t *st);

/* Hints (hinted handoff): records this node keeps for another node until it can hand them
 * over, in the "hints" family under the same layout as data, with the target node's index
 * in place of the partition. Writes are not synced: a hint lost in a power loss leaves the
 * key to read repair and anti-entropy, as an overflowing hint does. Same errors as above. */
kv_err kv_store_hint_get(kv_store_t *s, uint32_t target, const char *keyspace, const void *key,
                         size_t key_bytes, uint8_t **rec, size_t *rec_bytes, bool *found,
                         kv_status_t *st);
kv_err kv_store_hint_put(kv_store_t *s, uint32_t target, const char *keyspace, const void *key,
                         size_t key_bytes, const void *rec, size_t rec_bytes, kv_status_t *st);
kv_err kv_store_hint_delete(kv_store_t *s, uint32_t target, const char *keyspace,
                            const void *key, size_t key_bytes, kv_status_t *st);
/* Every hint for target, in key order, as kv_store_scan_partition. */
kv_err kv_store_hint_scan(kv_store_t *s, uint32_t target, kv_storage_scan_fn fn, void *arg,
                          kv_status_t *st);

#endif
