/* reaper.h: tombstone reaping (DESIGN section 7: "a tombstone is reaped only after every
 * primary holds it and a grace period has passed").
 *
 * A delete this node coordinated, acknowledged by every primary of the key (no fallback
 * standing in, no hint left behind), is queued. When the cluster's tombstone_grace_ms has
 * passed since, the reaper, with every node of the cluster believed alive,
 *   reads    the key's record on every primary, and goes on only when all are the same bytes
 *            and every sibling is a tombstone;
 *   forgets  has every node drop the hints it keeps for the key that the tombstone has
 *            wholly seen (kv_hints_forget; refused while a hint of the key is being handed
 *            over) and fsync, then answer: handed over later, such a hint would bring back
 *            a version the tombstone replaced to a replica that no longer remembers it, and
 *            a power loss can undo a hint's deletion (the simulator found one handed over
 *            again after a restart). The fsync also makes every primary's tombstone durable
 *            before any primary removes its own: a power loss that took a tombstone back
 *            after the others were reaped would bring the old value back;
 *   reaps    has every primary remove its record while it is still that tombstone
 *            (kv_node_reap compares its anti-entropy leaf), so a write that landed after the
 *            read survives: that replica keeps it, and read repair or anti-entropy spreads
 *            it to those that reaped.
 * A key that fails a step is left as it is (counted as kept): its tombstone stays, and with
 * it the protection against older versions coming back. The other two messages are the same
 * ReplicaReap (kv_coord_reap on the node), with hints_only for the forget.
 *
 * Why it is safe to forget a key's history: a dot minted after the reap is above every dot
 * of the key's past (kv_dvv_put's floor, dvv.h), so stale contexts and replicas cannot
 * cover it. What a reap cannot see are copies of the key's older versions still in flight:
 * a read repair or a replica write sent before the delete and delayed in the network. As
 * with Cassandra's gc_grace_seconds, the grace period must outlast them.
 *
 * Bounded: KV_REAP_QUEUE_MAX deletes wait (past that a delete is not queued: counted as
 * dropped, its tombstone stays), KV_REAP_IN_FLIGHT keys are read or reaped at once, and a
 * step unanswered for KV_TIMEOUT_MS_DEFAULT leaves its key as kept. Message ids have
 * KV_REAP_ID_BIT set. Part of the single-threaded core: the coordinator calls every function
 * inside its step. */
#ifndef KV_REAPER_H
#define KV_REAPER_H

#include <stdbool.h>
#include <stdint.h>

#include "coord.h"
#include "hints.h"
#include "kv_limits.h"
#include "node.h"
#include "ring.h"
#include "sync.h"

#define KV_REAP_IN_FLIGHT 64u

typedef struct {
  const kv_keyspace_conf_t *ks;
  uint8_t *key;                  /* malloc'd */
  size_t key_bytes;
  uint64_t due_us;               /* when the grace period is over */
} kv_reap_wait_t;

typedef enum { KV_REAP_READ, KV_REAP_FORGET, KV_REAP_REMOVE } kv_reap_step_t;

struct kv_reaper;

/* One key on its way. */
typedef struct {
  struct kv_reaper *reaper;
  bool busy;
  bool sync_pending;             /* this node's forget waits for its fsync (waiter) */
  bool ending;                   /* over, released once the fsync is in */
  kv_sync_waiter_t waiter;
  bool kept;                     /* an answer ruled the reap out */
  kv_reap_step_t step;
  uint16_t gen;                  /* in the ids, so answers to an earlier key are ignored */
  kv_reap_wait_t key;
  uint64_t hash;                 /* kv_hash_key */
  uint32_t primaries[KV_REPLICAS_MAX];
  uint32_t primary_count;
  bool answered[KV_NODES_MAX];   /* in this step, by the index the ids carry */
  uint32_t waiting;              /* answers still awaited in this step */
  uint8_t *rec;                  /* the tombstone every primary holds (malloc'd), once read */
  size_t rec_bytes;
  uint64_t deadline_us;
} kv_reap_job_t;

typedef struct kv_reaper {
  kv_node_t *node;
  const kv_ring_t *ring;
  kv_hints_t *hints;             /* this node's, for its part of the forget step */
  kv_syncer_t *syncer;           /* ... and its fsync */
  kv_sync_fn synced;             /* the coordinator's: calls kv_reaper_synced */
  void *owner;                   /* the coordinator, for synced */
  uint32_t grace_ms;
  kv_reap_wait_t *queue;         /* a ring of KV_REAP_QUEUE_MAX, in due order */
  uint32_t head, count;
  kv_reap_job_t jobs[KV_REAP_IN_FLIGHT];
  kv_reap_stats_t stats;
} kv_reaper_t;

kv_err kv_reaper_init(kv_reaper_t *r, kv_node_t *node, const kv_ring_t *ring, kv_hints_t *hints,
                      kv_syncer_t *syncer, kv_sync_fn synced, void *owner, kv_status_t *st);
void kv_reaper_deinit(kv_reaper_t *r);
/* A delete of key every primary acknowledged, at monotonic time now_us. */
void kv_reaper_add(kv_reaper_t *r, const char *keyspace, const uint8_t *key, size_t key_bytes,
                   uint64_t now_us);
/* Starts the keys whose grace is over; gives up steps past their deadline. */
void kv_reaper_tick(kv_reaper_t *r, const kv_msg_out_t *tr, uint64_t now_us);
/* This node's fsync after its part of a forget step (w is a job's waiter) ended. */
void kv_reaper_synced(kv_reaper_t *r, const kv_msg_out_t *tr, kv_sync_waiter_t *w,
                      bool ok, uint64_t now_us);
/* An answer (id has KV_REAP_ID_BIT): a read's record, or a reap's outcome. */
void kv_reaper_answer(kv_reaper_t *r, const kv_msg_out_t *tr, uint64_t id, kv_err code,
                      const uint8_t *rec, size_t rec_bytes, uint64_t now_us);

#endif
