/* aae.h: active anti-entropy trees, and what a replica answers about them (DESIGN section 8).
 *
 * Every replica keeps, per (partition, keyspace), a hash tree of what it holds:
 *   leaf of a key     kv_hash_leaf(key hash, encoded record): the record's hash, keyed
 *   segment of a key  kv_hash_segment(key hash): one of KV_AAE_SEGMENTS
 *   segment sum       XOR of the leaves of its keys
 *   root              kv_hash_root(the segment sums)
 * Records encode canonically (dvv.h), so two replicas hold the same state of a key exactly
 * when its leaves are equal. The store changes a key's record, leaf and segment sum in one
 * atomic batch on every write (store.h: the tracked writes), so the tree is never rebuilt
 * from a scan and a crash never leaves it out of step with the data.
 *
 * Two replicas of a partition compare trees top-down (coordinator/exchange.h is the asking side):
 *   ROOTS     the roots of the partitions both hold       -> partitions whose roots differ
 *   SEGMENTS  one partition's KV_AAE_SEGMENTS sums         -> segments whose sums differ
 *   KEYS      the keys and leaves of up to
 *             KV_AAE_KEYS_SEGMENTS_MAX segments            -> keys whose leaves differ
 * and the keys that differ are repaired by normal replica reads and merges (ReplicaRead,
 * ReplicaWrite): a DVV merge never loses a write, so a repair can only add.
 *
 * The functions here answer those requests from this node's store, inside the core's step
 * like the rest of the core. Anti-entropy is off when the config's anti_entropy_interval_ms
 * is 0: no tree upkeep on writes, no exchanges; the trees then answer with what they last
 * held. */
#ifndef KV_AAE_H
#define KV_AAE_H

#include <stddef.h>
#include <stdint.h>

#include "kv_err.h"

typedef struct kv_node kv_node_t;

typedef enum { KV_AAE_ASK_ROOTS, KV_AAE_ASK_SEGMENTS, KV_AAE_ASK_KEYS } kv_aae_kind_t;

/* An exchange request. Pointers are borrowed for the call that carries it. */
typedef struct {
  kv_aae_kind_t kind;
  const char *keyspace;
  const uint32_t *partitions;   /* ROOTS: every partition asked about; else the one */
  uint32_t partition_count;
  const uint32_t *segments;     /* KEYS: the segments whose keys to list */
  uint32_t segment_count;
} kv_aae_req_t;

typedef struct {
  uint8_t *data;
  size_t len;
} kv_aae_key_t;

/* An answer: ROOTS one root per partition asked, in order; SEGMENTS the KV_AAE_SEGMENTS
 * sums; KEYS each key of the segments (segment by segment, in key order) with its leaf in
 * hashes[i]. Filled by kv_aae_serve (owned: kv_aae_answer_free), or a borrowed view built by
 * a transport from a message. */
typedef struct {
  uint64_t *hashes;
  uint32_t hash_count;
  kv_aae_key_t *keys;
  uint32_t key_count;
} kv_aae_answer_t;

/* Answers req from node's trees. KV_EINVAL with a sentence for a request this node cannot
 * answer (unknown keyspace, a partition or segment out of range, KEYS over
 * KV_AAE_KEYS_SEGMENTS_MAX segments); store errors as the store reports them. */
kv_err kv_aae_serve(kv_node_t *node, const kv_aae_req_t *req, kv_aae_answer_t *out,
                    kv_status_t *st);
void kv_aae_answer_free(kv_aae_answer_t *a);

/* The keys and leaves of one segment of this node's tree, appended to *out (owned). */
kv_err kv_aae_segment_keys(kv_node_t *node, const char *keyspace, uint32_t partition,
                           uint32_t segment, kv_aae_answer_t *out, kv_status_t *st);
/* The root of this node's tree of (partition, keyspace), and its segment sums into sums
 * (KV_AAE_SEGMENTS of them) when sums is not NULL. */
kv_err kv_aae_root(kv_node_t *node, const char *keyspace, uint32_t partition, uint64_t *root,
                   uint64_t *sums, kv_status_t *st);

#endif
