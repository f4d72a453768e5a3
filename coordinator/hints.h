/* hints.h: hinted handoff (DESIGN section 8): the hints a node keeps for other nodes, and
 * handing them over.
 *
 * A node keeps hints in two roles, in the same store family ("hints", by target) and counted
 * alike (kv_hints_stats, `kvctl hints`):
 *   coordinator  a replica of a write that did not acknowledge it (it was down, the message
 *                was lost, the deadline passed) gets a hint here, the key's record as this
 *                node holds it (kv_hints_add). Such a hint never counts toward W.
 *   fallback     with sloppy quorum a coordinator sends the write meant for a primary it
 *                believes dead to a fallback node instead (coordinator/coord.h); the fallback
 *                merges the record into the hint it keeps for that primary (kv_hints_merge)
 *                and acknowledges, and that ack counts toward W. It answers reads for the
 *                primary from the hint (kv_hints_read).
 *
 * A coordinator's hint is the whole record of the key as this node holds it when the hint is
 * stored (not as the hinted write left it: writes to one key can finish out of order), so a
 * newer hint for the same key replaces the older one: the node's own record only grows. (The
 * simulator's convergence checker found the out-of-order case.) A fallback holds no record
 * of the key, so its hint is the DVV merge of every record sent to it for that primary.
 * Handoff sends a hint as a durable replica write (a merge on the target, so nothing there is
 * lost; durable, so a hint that counted toward a durable write's W is on the target's disk
 * before it leaves this one); the hint is deleted after the target's ack, and only if it was
 * not replaced or merged into meanwhile (its hash is compared), so a newer hint is never
 * dropped by the ack of an older one.
 *
 * Bounds: per target at most bytes_max of hints (keys + records); a hint past it is not
 * stored, only counted as dropped, and the key is left to read repair and anti-entropy (a
 * fallback answers that write with an error, so it does not count toward W). At most
 * KV_HANDOFF_IN_FLIGHT_MAX handoffs wait for acks; delivery is paced at rate_per_s hints a
 * second over all targets, so a returning node is not flooded; one target's round starts
 * when its previous round is answered. A handoff unanswered after KV_TIMEOUT_MS_DEFAULT is
 * given up and tried again in a later round.
 *
 * Part of the single-threaded core: the coordinator calls every function inside its step. */
#ifndef KV_HINTS_H
#define KV_HINTS_H

#include <stdbool.h>
#include <stdint.h>

#include "coord.h"
#include "kv_err.h"
#include "kv_limits.h"
#include "node.h"

typedef struct {
  bool used;
  uint16_t gen;
  uint32_t target;
  uint64_t hash;                 /* of the record sent */
  uint64_t deadline_us;
  char keyspace[KV_KEYSPACE_NAME_BYTES_MAX + 1];
  uint8_t *key;                  /* malloc'd */
  size_t key_bytes;
} kv_handoff_t;

typedef struct {
  kv_node_t *node;
  uint32_t node_count;
  uint64_t bytes_max;
  uint32_t rate_per_s;
  kv_hint_stats_t stats[KV_NODES_MAX];
  uint32_t in_flight[KV_NODES_MAX];
  kv_handoff_t handoffs[KV_HANDOFF_IN_FLIGHT_MAX];
  double tokens;                 /* handoffs that may start now (pacing) */
  uint64_t last_tick_us;
} kv_hints_t;

/* Counts the hints already in the store (a restart keeps them). node is borrowed. */
kv_err kv_hints_init(kv_hints_t *h, kv_node_t *node, uint32_t node_count, uint64_t bytes_max,
                     uint32_t rate_per_s, kv_status_t *st);
/* Stores (or replaces) the hint of (keyspace, key) for target: the key's record as this
 * node holds it now. */
void kv_hints_add(kv_hints_t *h, uint32_t target, const char *keyspace, const uint8_t *key,
                  size_t key_bytes);
/* A fallback's side of sloppy quorum: merges rec (an encoded record) into the hint of
 * (keyspace, key) for target. KV_EBUSY (counted as dropped) when the merged hint would pass
 * the target's room; KV_ECORRUPT when rec or the stored hint does not decode; a merge over a
 * limit or a store error as they come. Not fsynced: a durable write is acknowledged after a
 * kv_node_sync, which covers hints too. */
kv_err kv_hints_merge(kv_hints_t *h, uint32_t target, const char *keyspace, const uint8_t *key,
                      size_t key_bytes, const uint8_t *rec, size_t rec_bytes, kv_status_t *st);
/* The hint of (keyspace, key) for target: *rec malloc'd (NULL, 0 when there is none). */
kv_err kv_hints_read(kv_hints_t *h, uint32_t target, const char *keyspace, const uint8_t *key,
                     size_t key_bytes, uint8_t **rec, size_t *rec_bytes, kv_status_t *st);
/* Merges into *obj every hint this node keeps for (keyspace, key), whatever its target
 * (a local read shows them); *found tells whether there was any. */
kv_err kv_hints_merge_held(kv_hints_t *h, const char *keyspace, const uint8_t *key,
                           size_t key_bytes, kv_dvv_t *obj, bool *found, kv_status_t *st);
/* Tombstone reaping (reaper.h): deletes every hint this node keeps for (keyspace, key),
 * whatever its target, that cc (the reaped tombstone's context) has wholly seen, so that no
 * version the tombstone replaced is handed back to a replica that has forgotten it. KV_EBUSY
 * with a sentence while a hint of the key is being handed over (its message could land after
 * the reap). */
kv_err kv_hints_forget(kv_hints_t *h, const char *keyspace, const uint8_t *key,
                       size_t key_bytes, const kv_cc_t *cc, kv_status_t *st);
/* Starts the handoffs that pacing allows to targets alive() says are up. */
void kv_hints_tick(kv_hints_t *h, const kv_msg_out_t *tr, uint64_t now_us);
/* A handoff's answer (id has KV_HINT_ID_BIT). Stale and duplicate ids are ignored. */
void kv_hints_answer(kv_hints_t *h, uint64_t id, kv_err code);
void kv_hints_stats(const kv_hints_t *h, uint32_t target, kv_hint_stats_t *out);
/* Frees the handoffs' key copies. */
void kv_hints_deinit(kv_hints_t *h);

#endif
