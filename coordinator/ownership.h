/* ownership.h: the ring a node holds, how nodes spread it, and ownership handoff: streaming a
 * partition's records to its new owners while the ring moves (ring.h, issue 19). Sans-IO:
 * part of the coordinator's single-threaded step; its messages leave through the links.
 *
 * The ring. The coordinator holds one ring (kv_own_t.ring); it starts as the config's (epoch
 * 1) or, when the node's storage holds a newer one (meta "ring"), as that one. Every change
 * of epoch is stored, synced, before anything acts on it: a node that came back with an older
 * ring could accept requests its ring no longer allows.
 *
 * Spreading it. Once the epoch is past 1 (a fixed cluster never gets there, so it never sends
 * one), every KV_RING_GOSSIP_MS the node sends its ring to its next peer in turn that it
 * believes up (a RING message); the peer takes what it knows (kv_ring_merge) and answers with
 * its own, which the sender takes. A replica that refuses a request made under an older epoch
 * (KV_ESTALE) answers with its ring too, and the coordinator takes it (kv_own_take) before
 * counting the refusal as that replica's failure.
 *
 * Handoff. While the ring is HANDOFF, each node that is a source of a partition (ring.h:
 * kv_ring_moving_to) streams its records of that partition to the partition's new owners,
 * partition by partition in order, in chunks of at most KV_OWN_CHUNK_MAX records taken in
 * (keyspace, key) order after the cursor: each record goes to each new owner as a durable
 * replica write (a merge; answered after the target's fsync), one chunk in flight, paced at
 * the coordinator's hint rate (records a second). A chunk every target acknowledged moves
 * the cursor past its last key, and the progress (epoch, partitions finished, the cursor) is
 * stored in meta "handoff", so a node that crashes resumes from its last stored chunk (one
 * sent again is merged again: merges are idempotent). A chunk with a failure, or not answered
 * within KV_TIMEOUT_MS_DEFAULT, is sent again. A chunk waits while a target is believed
 * down. When every partition is finished the node adds itself to the ring's `done` (stored
 * with the ring), and gossip carries it to the node that finds every source done and flips.
 * The flip never waits for a write: writes made meanwhile already went to both claims.
 *
 * Limits: one chunk in flight per node; a node down for good keeps the ring from flipping (and
 * from settling, which waits for every node of the config to see the flip): replacing a dead
 * node needs it to be marked gone first, which comes with the kvctl step of issue 19. Records a
 * node holds for partitions it no longer owns stay where they are (no deletion after handoff
 * yet), so a partition must not come back to a node that gave it away. */
#ifndef KV_OWNERSHIP_H
#define KV_OWNERSHIP_H

#include <stdbool.h>
#include <stdint.h>

#include "msg.h"
#include "node.h"
#include "ring.h"

typedef struct {
  kv_node_t *node;
  uint32_t self;
  kv_ring_t *ring;               /* the node's ring (owned, malloc'd) */
  kv_ring_t *scratch;            /* for decoding others' rings (owned, malloc'd) */
  uint32_t rate_per_s;           /* records streamed a second */
  uint64_t gossip_at_us;
  uint32_t gossip_next;          /* the peer the next gossip goes to */
  uint32_t gen;                  /* of ids: answers to an earlier chunk or gossip are ignored */
  /* Handoff progress for ring epoch `epoch` (0: none). */
  uint64_t epoch;
  uint8_t *finished;             /* per partition: 1 once streamed (or nothing to stream) */
  uint32_t partition;            /* the partition being streamed */
  char cursor_ks[KV_KEYSPACE_NAME_BYTES_MAX + 1]; /* its cursor: every (keyspace, key) up to */
  uint8_t *cursor_key;           /* and including it is streamed; malloc'd; none when */
  size_t cursor_key_bytes;       /* cursor_ks is "" */
  /* The chunk in flight (chunk_pending > 0 or chunk_failed), and where it ends. */
  uint32_t chunk_pending;
  uint64_t chunk_answered[KV_OWN_CHUNK_MAX]; /* per record: the targets that answered */
  bool chunk_failed;
  bool chunk_last;               /* it held the partition's last records */
  uint64_t chunk_deadline_us;
  uint64_t next_chunk_us;        /* pacing */
  char chunk_ks[KV_KEYSPACE_NAME_BYTES_MAX + 1];
  uint8_t *chunk_key;            /* malloc'd */
  size_t chunk_key_bytes;
  uint64_t streamed;             /* records acknowledged by a new owner, since start */
} kv_own_t;

/* Starts with a copy of `initial` (the config's ring, borrowed for the call), or the ring and
 * handoff progress the node's storage holds when newer. KV_ENOMEM, or the store's error. */
kv_err kv_own_init(kv_own_t *o, kv_node_t *node, const kv_ring_t *initial, uint32_t rate_per_s,
                   kv_status_t *st);
void kv_own_deinit(kv_own_t *o);
/* Commits a membership change made here (the claimant's kv_ring_plan over this node's ring):
 * the node moves to the HANDOFF ring, stores it and starts spreading it. Errors as
 * kv_ring_plan's, or the store's. */
kv_err kv_own_change(kv_own_t *o, uint64_t members, uint64_t now_us, kv_status_t *st);
/* Takes a ring another node sent (kv_ring_encode's bytes). KV_ECORRUPT with a sentence when
 * they are not a ring of this config. */
kv_err kv_own_take(kv_own_t *o, const uint8_t *bytes, size_t len, uint64_t now_us,
                   kv_status_t *st);
/* This node's ring as bytes (malloc'd, for an answer). */
void kv_own_encode(const kv_own_t *o, uint8_t **bytes, size_t *len);
/* Gossip and the next chunk of handoff, as time and the links allow. */
void kv_own_tick(kv_own_t *o, const kv_msg_out_t *out, uint64_t now_us);
/* An answer to one of its messages (ids with KV_RING_ID_BIT). */
void kv_own_answer(kv_own_t *o, uint64_t id, kv_err code, const uint8_t *rec, size_t rec_bytes,
                   uint64_t now_us);

#endif
