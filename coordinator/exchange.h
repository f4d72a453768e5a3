/* exchange.h: this node's side of anti-entropy exchanges (DESIGN section 8; aae.h has the
 * trees and the replica's side).
 *
 * Every anti_entropy_interval_ms a round starts: for each live peer and each keyspace, one
 * exchange over the partitions this node and the peer both replicate, one exchange at a
 * time:
 *   ROOTS     ask the peer's roots of those partitions; keep the ones that differ from ours
 *   SEGMENTS  per differing partition, ask its segment sums; keep the differing segments
 *   KEYS      per KV_AAE_KEYS_SEGMENTS_MAX of those, ask the peer's keys and leaves, and
 *             list ours; a key whose leaves differ (or that one side lacks) is repaired:
 *   repair    the peer lacks it: send it our record (a replica write, merged there);
 *             otherwise read the peer's record, merge it here, and send the merge back
 *             when the peer's differs from it.
 * At most KV_AAE_REPAIRS_IN_FLIGHT repairs wait for answers; the next segments are asked
 * for once the keys of these are repaired. A step that goes unanswered for
 * KV_TIMEOUT_MS_DEFAULT ends the exchange as failed (the next round tries again); a key
 * whose repair fails is left for the next round.
 *
 * Message ids have KV_AAE_ID_BIT set; an answer that belongs to an exchange already ended is
 * ignored (each exchange has a generation in its ids).
 *
 * Reads of this node's trees happen on the caller's thread: a ROOTS answer reads the segment
 * sums of every shared partition (KV_AAE_SEGMENTS entries at most each), once per exchange.
 * Part of the single-threaded core: the coordinator calls every function inside its step. */
#ifndef KV_EXCHANGE_H
#define KV_EXCHANGE_H

#include <stdbool.h>
#include <stdint.h>

#include "aae.h"
#include "coord.h"
#include "kv_limits.h"
#include "node.h"
#include "ring.h"

typedef enum { KV_XCH_IDLE, KV_XCH_ROOTS, KV_XCH_SEGMENTS, KV_XCH_KEYS } kv_xch_phase_t;

/* One key found different, and how far its repair has come. */
typedef struct {
  uint8_t *key;                  /* malloc'd */
  size_t key_bytes;
  uint64_t hash;                 /* kv_hash_key */
  uint64_t local_leaf, remote_leaf; /* 0: that side has no leaf */
  uint8_t waiting;               /* the kind of message whose answer is awaited; 0: none */
} kv_xch_key_t;

typedef struct {
  kv_node_t *node;
  const kv_ring_t *ring;
  uint32_t interval_ms;          /* 0: off */
  kv_aae_stats_t stats[KV_NODES_MAX];
  /* rounds */
  bool round_active;
  uint64_t next_round_us;        /* 0 until the first tick */
  uint32_t pair_next;            /* the next (peer, keyspace) of the round */
  /* the exchange under way */
  kv_xch_phase_t phase;
  uint32_t gen;
  uint32_t peer;
  const kv_keyspace_conf_t *ks;
  uint64_t deadline_us;          /* of the step awaited */
  uint64_t repaired;             /* keys repaired in this exchange */
  uint32_t step;                 /* tree requests sent in this exchange */
  uint32_t *parts;               /* shared, then differing, partitions; malloc'd */
  uint32_t part_count, part_at;
  uint32_t segs[KV_AAE_SEGMENTS]; /* differing segments of parts[part_at] */
  uint32_t seg_count, seg_at, seg_batch;
  kv_xch_key_t *keys;            /* differing keys of segs[seg_at .. seg_at + seg_batch) */
  uint32_t key_count, key_next, in_flight;
  kv_metrics_t *metrics;         /* repairs are counted here too; NULL: nowhere (borrowed) */
} kv_xch_t;

void kv_xch_init(kv_xch_t *x, kv_node_t *node, const kv_ring_t *ring);
/* Starts rounds and exchanges as their time comes; ends a step past its deadline. */
void kv_xch_tick(kv_xch_t *x, const kv_msg_out_t *tr, uint64_t now_us);
/* An answer (id has KV_AAE_ID_BIT): tree answers carry ans (NULL: it lists nothing), repair
 * reads rec. */
void kv_xch_answer(kv_xch_t *x, const kv_msg_out_t *tr, uint64_t id, kv_err code,
                   const kv_aae_answer_t *ans, const uint8_t *rec, size_t rec_bytes,
                   uint64_t now_us);
void kv_xch_stats(const kv_xch_t *x, uint32_t peer, kv_aae_stats_t *out);
void kv_xch_deinit(kv_xch_t *x);

#endif
