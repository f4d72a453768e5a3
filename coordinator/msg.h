/* msg.h: what one node's core says to another's (DESIGN section 3).
 *
 * Every request between cores is one tagged kv_msg_t, and every answer one kv_msg_answer_t; the
 * parts of the core send them through a kv_msg_out_t (below: the coordinator's links to its
 * peers, link.h, which batch them for the driver's transport, coord.h) and take answers in
 * kv_coord_on_peer_reply, and the replica's side takes requests in kv_coord_on_peer_request.
 * What carries them is the driver's business: kvnode/peer_codec.c maps them to and from the
 * peer protocol (proto/peer.proto) for gRPC, and the simulator copies them into its network.
 * So the core never sees a wire format, and one dispatcher serves the runtime and the
 * simulator alike.
 *
 * Nodes are named by their index in the config. Pointers are borrowed for the call that
 * carries the message. */
#ifndef KV_MSG_H
#define KV_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aae.h"
#include "ids.h"
#include "kv_err.h"

/* No node: a message's hint_for when it is not a fallback's. */
#define KV_NODE_NONE UINT32_MAX

typedef enum {
  KV_MSG_WRITE, /* merge rec into the replica (or the hint for hint_for); answer after the
                   fsync when durable; a forwarder also relays it to relay[] */
  KV_MSG_READ,  /* the replica's record of the key (or the hint kept for hint_for) */
  KV_MSG_TREE,  /* an anti-entropy tree request (aae.h) */
  KV_MSG_REAP,  /* drop what the tombstone rec has wholly seen (reaper.h) */
  KV_MSG_RING,  /* rec is the sender's ring (ring.h, kv_ring_encode): take what it knows, and
                   answer with this node's ring (ownership.h). Only sent once a ring has
                   changed, so a fixed cluster never sends one; kvnode's transport does not
                   carry it yet (the gRPC step of issue 19) */
} kv_msg_kind_t;

/* One replica a forwarder relays a write to: its node and the id of the coordinator's
 * message for it (echoed in the outcome). */
typedef struct {
  uint32_t node;
  uint64_t id;
} kv_relay_target_t;

/* A relayed replica's outcome: KV_OK when it acknowledged (after its fsync when durable). */
typedef struct {
  uint64_t id;                /* the kv_relay_target_t's */
  uint32_t node;              /* KV_NODE_NONE when the answer did not say */
  kv_err code;                /* KV_ETIMEDOUT when it did not answer in the relay's wait */
  uint64_t applied_ms;        /* with KV_OK: its wall clock when it applied the write; 0 unknown */
} kv_relay_outcome_t;

typedef struct {
  kv_msg_kind_t kind;
  uint64_t id;                /* echoed by the answer (ids.h) */
  const char *keyspace;       /* WRITE, READ, REAP (a TREE's is tree.keyspace) */
  const uint8_t *key;         /* WRITE, READ, REAP */
  size_t key_bytes;
  const uint8_t *rec;         /* WRITE: the record to merge; REAP: the tombstone */
  size_t rec_bytes;
  uint32_t hint_for;          /* WRITE, READ: a fallback's, for this primary; else KV_NODE_NONE */
  bool durable;               /* WRITE: answered only once it is fsynced */
  const kv_relay_target_t *relay; /* WRITE to a forwarder: the region's other replicas */
  uint32_t relay_count;
  uint32_t relay_wait_ms;     /* ... and how long it waits for them */
  bool hints_only;            /* REAP: the hints only (a forget), not the record */
  uint64_t epoch;             /* WRITE, READ of a request: the coordinator's ring epoch, which a
                                 replica with a newer ring refuses (KV_ESTALE, answering with
                                 its ring); 0: not checked (hints, handoff, repairs of others) */
  kv_aae_req_t tree;          /* TREE */
} kv_msg_t;

/* The answer to a kv_msg_t (or its failure to arrive: a code and nothing else). */
typedef struct {
  uint64_t id;                /* the message's */
  kv_err code;
  const uint8_t *rec;         /* READ: the record (may be empty: none); RING, and KV_ESTALE:
                                 the answerer's ring */
  size_t rec_bytes;
  uint64_t applied_ms;        /* WRITE: the replica's wall clock when it applied it; 0 unknown */
  const kv_relay_outcome_t *relayed; /* a forwarder's WRITE: its relays' outcomes */
  uint32_t relayed_count;
  const kv_aae_answer_t *tree; /* TREE with KV_OK: the answer; NULL when it lists nothing */
} kv_msg_answer_t;

/* Where a part of the core (coordination, hints, exchanges, reaping) sends its messages, and
 * asks whether a node is believed alive. The coordinator's own (coord_link.c) queues each
 * message on its peer's link, to leave in the next batch; a send that fails (the peer's
 * queue is full: KV_EBUSY with a sentence) has no answer. */
typedef struct {
  void *arg;
  bool (*alive)(void *arg, uint32_t node);
  kv_err (*send)(void *arg, uint32_t node, const kv_msg_t *m, kv_status_t *st);
} kv_msg_out_t;

/* A message that names only its kind and id, for filling in. */
#define KV_MSG_INIT(k, i) ((kv_msg_t){.kind = (k), .id = (i), .hint_for = KV_NODE_NONE})

/* The two messages most parts of the core send: a replica write and a replica read. */
static inline kv_msg_t kv_msg_write(uint64_t id, const char *keyspace, const uint8_t *key,
                                    size_t key_bytes, const uint8_t *rec, size_t rec_bytes,
                                    bool durable) {
  kv_msg_t m = KV_MSG_INIT(KV_MSG_WRITE, id);
  m.keyspace = keyspace;
  m.key = key;
  m.key_bytes = key_bytes;
  m.rec = rec;
  m.rec_bytes = rec_bytes;
  m.durable = durable;
  return m;
}

static inline kv_msg_t kv_msg_read(uint64_t id, const char *keyspace, const uint8_t *key,
                                   size_t key_bytes) {
  kv_msg_t m = KV_MSG_INIT(KV_MSG_READ, id);
  m.keyspace = keyspace;
  m.key = key;
  m.key_bytes = key_bytes;
  return m;
}

#endif
