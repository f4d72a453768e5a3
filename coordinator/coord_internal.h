/* coord_internal.h: what the coordinator's files share (coord.c, coord_slots.c,
 * coord_read.c, coord_write.c, coord_relay.c, coord_replica.c, coord_link.c); nothing outside them includes
 * it.
 *
 * Request table: KV_COORD_PENDING_MAX slots. A slot's id in messages is
 *   slot << 24 | generation << 8 | repair flag << 7 | target index (ids.h),
 * so an answer for a finished request (whose slot moved on to a new generation) is ignored,
 * and a read repair's ack is told from the same replica's read answer. via[i] is the target
 * whose forwarder message carries target i's write (VIA_NONE: sent directly).
 *
 * A slot's life (slot_state_t; every move is coord_slot_move, which checks the state it leaves
 * and the invariants of the one it enters, as SQLite's assert_pager_state does):
 *   FREE -> (request, coord_slot_start) PENDING -> (quorum decided, coord_slot_reply) REPLIED ->
 *   (quorum finished, no fsync outstanding, coord_slot_release) FREE; a request that fails before
 *   any message leaves goes PENDING -> (coord_slot_abort) FREE, answered with why.
 * A get whose read repair blocks goes PENDING -> (quorum decided, coord_get_decided) REPAIRING ->
 * (every repair acked, coord_get_repaired) REPLIED; a failed or late repair fails the read (as
 * Cassandra's blocking read repair times out the read), because answering would let the
 * next quorum read go back in time.
 * A delete without a context (Riak's delete without a vclock) deletes what it reads first:
 *   FREE -> (request, delete_read_start) READING -> (read quorum met, coord_delete_read_decided)
 *   PENDING, as its write, under a new generation -> as a put;
 *   READING -> (read failed or timed out, coord_delete_read_failed) FREE, answered with the
 *   read's status and a sentence saying so; nothing is written.
 * A PENDING request that a replica refuses for a stale ring (KV_ESTALE: its ring is newer, and
 * this node has taken it) starts over on the new ring's targets while undecided, under a new
 * generation, keeping what it has (coord_slot_retry): a get its merge, a write its record and
 * this replica's ack, sent again to every other target. A request the new ring cannot serve
 * from here (this node no longer a replica of a write, too few live targets) counts the
 * refusal as the replica's failure instead, as does a READING delete.
 * A READING slot keeps the write's plan in delete_plan for when the read decides. The read
 * is asked and merged as a get's (ONE on this replica reads only it), with no read repair
 * and no write-back: the tombstone, written with the merge's context, covers every version
 * the merge holds and goes to every replica. Its level is the delete's, as kv_node_plan
 * resolved it for the write (the keyspace's write level when none is given), counted as a
 * read: r = w, pr = pw, and ANY, a write level, reads at ONE. The write is planned afresh
 * (targets, the UNAVAILABLE check) when the read decides, and has what the read left of the
 * request's timeout: one deadline covers the whole delete. A version written after the
 * replicas answered is not covered, so it stays beside the tombstone. The new generation
 * drops the read's late answers, as a finished request's are dropped. */
#ifndef KV_COORD_INTERNAL_H
#define KV_COORD_INTERNAL_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "buggify.h"
#include "coord.h"
#include "exchange.h"
#include "hash.h"
#include "hints.h"
#include "log.h"
#include "ownership.h"
#include "quorum.h"
#include "reaper.h"

#define VIA_NONE 0xFFu

/* A slot's state (the life above); a bit each, so a move can name the states it may leave. */
typedef enum {
  SLOT_FREE = 1u << 0,
  SLOT_READING = 1u << 1,   /* a delete without a context, reading what it will delete */
  SLOT_PENDING = 1u << 2,   /* counting answers toward the quorum */
  SLOT_REPAIRING = 1u << 3, /* a get decided; its answer waits for its blocking repairs */
  SLOT_REPLIED = 1u << 4,   /* answered; late answers, async repairs or an fsync to come */
} slot_state_t;

typedef struct {
  slot_state_t state;
  uint16_t gen;
  kv_op_t op;
  void *call;                   /* the client call; NULL once replied */
  kv_level_t level;
  kv_quorum_t q;
  uint32_t self_target;         /* this node's index among the targets; UINT32_MAX when it
                                   is not one (a get coordinated from elsewhere); a get's
                                   fallback target when this node is that fallback */
  kv_node_result_t *result;     /* put/delete: the answer to give when the quorum is met */
  kv_dvv_t *merged;             /* get, READING delete: the merge of the answers so far */
  kv_node_plan_t *delete_plan;  /* READING (a delete without a context): its write's plan */
  bool durable;                 /* writes (READING too): whether the write is durable */
  uint64_t epoch;               /* the ring epoch its targets were planned under */
  bool asked[KV_TARGETS_MAX];   /* get: the replicas asked so far */
  uint64_t held[KV_TARGETS_MAX]; /* get: hash of each ok answer's record */
  bool repair_blocking;         /* get: repair before answering */
  uint32_t repairs_pending;     /* get: blocking repairs not yet acked */
  bool repair_failed;
  uint64_t repair_hash;         /* get: the merge the blocking repairs carry */
  bool repair_wait[KV_TARGETS_MAX]; /* get: a blocking repair to this replica is unacked */
  kv_dvv_t *answer;             /* get: the merge as of the decision, while repairing */
  const kv_conflict_handler_t *handler; /* get: resolves the answer and the write-back */
  uint64_t wall_ms;             /* when it started (wall clock): a get's for the journal, a
                                   write's as this replica's applied time (applied.h) */
  uint64_t start_us;            /* when it started (monotonic), to put the ack on wall_ms */
  uint64_t applied_ms[KV_TARGETS_MAX]; /* put/delete: each target's applied_ms; 0 unknown */
  char *keyspace;               /* get: copies, for asking more replicas later */
  uint8_t *key;
  size_t key_bytes;
  bool sync_pending;            /* a durable self-ack waits on the syncer */
  kv_status_t refused;          /* why a message could not be queued (KV_OK: none was) */
  kv_sync_waiter_t waiter;
  uint64_t decided_us, last_ok_us;
  uint64_t ack_us[KV_TARGETS_MAX]; /* when each target acked (metrics: lag per region) */
  uint8_t via[KV_TARGETS_MAX];  /* put/delete: the forwarder target carrying it, or VIA_NONE */
  uint32_t active_pos;          /* where this slot sits in coord->active */
  struct kv_coord *coord;
} slot_t;

/* Whether s still holds the request it held as generation gen. */
static inline bool slot_live(const slot_t *s, uint16_t gen) {
  return s->state != SLOT_FREE && s->gen == gen;
}

/* A write this node relays to replicas of its region for a coordinator elsewhere. */
typedef struct {
  bool in_use;
  uint16_t gen;
  uint32_t count, pending;
  kv_relay_outcome_t out[KV_REPLICAS_MAX]; /* with each replica's applied_ms */
  bool answered[KV_REPLICAS_MAX];
  uint64_t deadline_us;
  kv_coord_relay_fn done;
  void *arg;
} relay_t;

struct kv_coord {
  kv_node_t *node;
  const kv_ring_t *ring;        /* own.ring: this node's, which only own changes */
  kv_own_t own;                 /* the ring, its gossip and ownership handoff (ownership.h) */
  kv_syncer_t *syncer;
  kv_coord_transport_t tr;      /* the driver's: batches and forwards */
  kv_msg_out_t out;             /* the core's parts send through the links (coord_link.c) */
  kv_link_t links[KV_NODES_MAX]; /* one per peer (links[self] unused) */
  uint64_t now_us;              /* the latest event's monotonic time */
  kv_coord_reply_fn reply;
  slot_t slots[KV_COORD_PENDING_MAX];
  uint32_t free_list[KV_COORD_PENDING_MAX];
  uint32_t free_count;
  uint32_t active[KV_COORD_PENDING_MAX]; /* slots in use, so ticks visit only those */
  uint32_t active_count;
  kv_histogram_t lag_us;
  kv_hints_t hints;
  kv_xch_t xch;
  kv_reaper_t reaper;
  kv_metrics_t *metrics;        /* may be NULL */
  relay_t relays[KV_RELAYS_MAX];
  uint32_t relay_count;         /* entries in use */
  uint32_t relay_next;          /* where the search for a free entry starts */
  kv_applied_t applied;         /* applied times of recent writes (applied.h) */
};

/* Every event starts by noting its time (monotonic, never going back). */
static inline void coord_clock(kv_coord_t *c, uint64_t mono_us) {
  if (mono_us > c->now_us) c->now_us = mono_us;
}

/* ---- coord_link.c ------------------------------------------------------------------------ */

kv_err coord_links_init(kv_coord_t *c, kv_status_t *st);
void coord_links_deinit(kv_coord_t *c);
void coord_links_tick(kv_coord_t *c);
bool coord_alive(kv_coord_t *c, uint32_t node);
kv_err coord_send(kv_coord_t *c, uint32_t node, const kv_msg_t *m, kv_status_t *st);

/* ---- coord_slots.c ----------------------------------------------------------------------- */

void coord_slot_move(slot_t *s, unsigned from, slot_state_t to);
void coord_slot_release(kv_coord_t *c, slot_t *s);
uint64_t coord_slot_id(const kv_coord_t *c, const slot_t *s, uint32_t target);
slot_t *coord_slot_of(kv_coord_t *c, uint64_t id, uint32_t *target, bool *repair);
bool coord_slot_reads(const slot_t *s);
void coord_reply_error(kv_coord_t *c, void *call, const kv_status_t *st);
void coord_slot_reply(kv_coord_t *c, slot_t *s, uint64_t now_us);
kv_err coord_target_send_write(kv_coord_t *c, const kv_target_t *t, uint64_t id,
                               const slot_t *s, const uint8_t *rec, size_t rec_bytes,
                               bool durable, kv_status_t *st);
kv_err coord_target_send_read(kv_coord_t *c, const kv_target_t *t, uint64_t id,
                              const slot_t *s, kv_status_t *st);
bool coord_stood_in_for(const slot_t *s, uint32_t node);
void coord_slot_maybe_finish(kv_coord_t *c, slot_t *s, uint64_t now_us);
void coord_slot_answer(kv_coord_t *c, slot_t *s, uint32_t target, bool ok, uint64_t now_us);
void coord_relayed_fail_rest(kv_coord_t *c, slot_t *s, uint32_t f, uint64_t now_us);
void coord_slot_failed_with_relayed(kv_coord_t *c, slot_t *s, uint32_t i, uint64_t now_us);
uint32_t coord_plan_targets(kv_coord_t *c, const kv_node_plan_t *plan, kv_target_t *targets,
                            uint32_t *self_target);
bool coord_targets_possible(kv_coord_t *c, void *call, const kv_node_plan_t *plan,
                            const kv_target_t *targets, uint32_t count, uint32_t self_target);
void coord_slot_begin(slot_t *s, const kv_node_plan_t *plan, const kv_target_t *targets,
                      uint32_t count, uint32_t self_target, uint64_t start_ms,
                      uint64_t deadline_ms);
slot_t *coord_slot_start(kv_coord_t *c, void *call, kv_op_t op, slot_state_t state,
                         const kv_node_plan_t *plan, const kv_target_t *targets,
                         uint32_t count, uint32_t self_target, uint64_t now_us);
void coord_slot_keep_key(slot_t *s, const kv_node_req_t *req, uint64_t wall_ms);
void coord_self_synced(kv_sync_waiter_t *w, const kv_status_t *st, uint64_t mono_us);
void coord_slot_abort(kv_coord_t *c, slot_t *s, const kv_status_t *st);
bool coord_slot_retry(kv_coord_t *c, slot_t *s, uint64_t now_us);

/* ---- coord_read.c ------------------------------------------------------------------------ */

void coord_get_repaired(kv_coord_t *c, slot_t *s, uint64_t now_us);
void coord_get_decided(kv_coord_t *c, slot_t *s, uint64_t now_us);
void coord_get_repair_acked(kv_coord_t *c, slot_t *s, uint32_t i, bool ok, uint64_t now_us);
void coord_get_repair_async(kv_coord_t *c, slot_t *s);
bool coord_get_all_answered(const slot_t *s);
bool coord_get_took(slot_t *s, uint32_t i, const uint8_t *rec, size_t rec_bytes);
void coord_get_ask(kv_coord_t *c, slot_t *s, uint32_t i, uint64_t now_us);
void coord_get_ask_live(kv_coord_t *c, slot_t *s, uint64_t now_us);
void coord_get_ask_more(kv_coord_t *c, slot_t *s, uint64_t now_us);
void coord_get_local(kv_coord_t *c, void *call, const kv_node_req_t *req,
                     const kv_node_plan_t *plan, uint64_t wall_ms);
bool coord_self_suffices(const kv_node_plan_t *plan, const kv_target_t *targets,
                         uint32_t count, uint32_t self_target);
void coord_get(kv_coord_t *c, void *call, const kv_node_req_t *req,
               const kv_node_plan_t *plan, uint64_t now_us, uint64_t wall_ms);

/* ---- coord_write.c ----------------------------------------------------------------------- */

void coord_write(kv_coord_t *c, void *call, kv_op_t op, const kv_node_req_t *req,
                 const kv_node_plan_t *plan, uint64_t now_us, uint64_t wall_ms);
void coord_delete_read_failed(kv_coord_t *c, slot_t *s);
/* Sends a PENDING write's record to every target but this node (a failed send fails the
 * target), forwarding to other regions as coord.h describes; timeout_ms is what is left. */
void coord_write_send_all(kv_coord_t *c, slot_t *s, uint32_t timeout_ms, uint64_t now_us);
void coord_delete_read_decided(kv_coord_t *c, slot_t *s, uint64_t now_us);

/* ---- coord_relay.c ----------------------------------------------------------------------- */

void coord_relay_answer(kv_coord_t *c, uint64_t id, kv_err code, uint64_t applied_ms);
void coord_relay_tick(kv_coord_t *c, uint64_t now_us);
kv_err coord_relay_check(kv_coord_t *c, const kv_relay_target_t *targets, uint32_t count,
                         uint32_t wait_ms, kv_status_t *st);
void coord_relay_start(kv_coord_t *c, const char *keyspace, const uint8_t *key,
                       size_t key_bytes, const uint8_t *rec, size_t rec_bytes, bool durable,
                       uint64_t epoch, const kv_relay_target_t *targets, uint32_t count,
                       uint32_t wait_ms, kv_coord_relay_fn done, void *arg, uint64_t mono_us);

#endif
