/* link.h: what one node's core knows of its connection to one peer (DESIGN sections 8 and
 * 10): the messages waiting to be sent, the batches in flight, and whether the peer is up.
 *
 * Batching. Messages to a peer queue (bounded: KV_PEER_QUEUE_MAX, packed by the driver as
 * they are sent, so each is encoded once). Up to KV_PEER_WINDOW batches are in flight at once,
 * each in a slot of its own; whenever a slot is free and something is queued, the next batch
 * starts in it carrying everything queued (up to KV_PEER_BATCH_MAX), and whatever queues while
 * every slot is out leaves in the next batch a slot's end frees. No timers: batching comes
 * from the round trip itself, a window of them now rather than one. The items are opaque to
 * the link (the runtime's are packed PeerMessages, the simulator's copies of kv_msg_t); the
 * link only keeps their ids, to answer them when their batch ends.
 *
 * Order. Batches to a peer may overtake one another (separate calls, handled by the peer's
 * threads as they come; the simulator's network delays each alike), so the peer may apply
 * messages out of the order they were sent in, within the window. Nothing in the core relies
 * on per-peer FIFO: replica writes, hints handed over and repairs are DVV merges (commutative,
 * associative, idempotent: dvv.h), and every sequence of steps (exchange rounds, reaping's
 * read, forget and remove, a hint's handoff then its deletion, a handoff round then the next)
 * waits for the answer to one step before sending the next, so each step reaches the peer
 * after the one before it whatever the window. Messages of one batch are still applied in
 * their order.
 *
 * Liveness (phi.h). A peer with no batch in flight is sent an empty batch (a heartbeat) once
 * KV_PEER_HEARTBEAT_MS have passed since the latest batch left, and every batch that is
 * answered is an arrival for the phi-accrual detector, at the time its answer comes. Answers
 * of concurrent batches can come close together, but they are still the times the peer was
 * heard from, which is what phi measures: counting only some of them would time silence from
 * an older answer than the latest and overstate it. Their short intervals pull the mean down
 * and so bring suspicion on a little sooner, by at most that mean (about a heartbeat interval)
 * since the deviation never drops below KV_PHI_STD_DEV_MIN_MS: no sooner than for a busy link
 * with one batch out on loopback, whose answers also came every millisecond or so. A peer is
 * down
 *   - once phi passes the threshold (kv_link_tick): silence, a stopped process, a lost call;
 *   - at once when a batch in any slot fails outright (KV_LINK_FAILED: connection refused or
 *     reset), or times out before the peer was ever heard from (no history to judge silence
 *     by);
 * and up again as soon as a batch to it is answered. A timeout otherwise is silence, which
 * phi judges. The silence before a peer judged down answers again is an outage, not an
 * interval to learn (kv_phi_restart), or the next failure would be slower to see.
 *
 * States of each slot (slots[i].busy): free -> kv_link_sent(i) -> in flight ->
 * kv_link_done(i) -> free. kv_link_next chooses the slot (the lowest free one) and fills its
 * items, kv_link_sent commits it, and the driver makes exactly one kv_link_done per
 * kv_link_sent, naming the slot it was sent in.
 *
 * Sans-IO, like phi.h: no clock, no threads; times are milliseconds passed in. */
#ifndef KV_LINK_H
#define KV_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv_err.h"
#include "kv_limits.h"
#include "phi.h"

/* One packed message: id is the kv_msg_t's (ids.h); data and bytes are the driver's. */
typedef struct {
  uint64_t id;
  void *data;
  size_t bytes;
} kv_link_item_t;

/* How a batch ended. */
typedef enum {
  KV_LINK_ANSWERED,   /* the peer answered (each message's own answer may still be an error) */
  KV_LINK_TIMED_OUT,  /* no answer by the batch's deadline: silence */
  KV_LINK_FAILED,     /* the call failed outright: refused, reset, cancelled */
} kv_link_outcome_t;

/* What an event did to the peer's liveness. */
typedef enum { KV_LINK_SAME, KV_LINK_WENT_UP, KV_LINK_WENT_DOWN } kv_link_change_t;

/* One batch's place in the window. */
typedef struct {
  bool busy;                  /* in flight: between kv_link_sent and kv_link_done */
  kv_link_item_t *items;      /* items[0..count): its messages (their data handed to the
                                 driver); scratch for kv_link_next while free */
  uint32_t count;
} kv_link_slot_t;

/* Callers may read every field; only this module writes them. */
typedef struct {
  kv_link_item_t *queue;      /* a ring of room entries: queue[(head + i) % room] */
  uint32_t head, count, room; /* room grows as needed, up to KV_PEER_QUEUE_MAX */
  kv_link_slot_t slots[KV_PEER_WINDOW];
  uint32_t busy;              /* slots in flight */
  uint64_t last_sent_ms;      /* when the latest batch left */
  bool up;
  uint64_t downs;             /* times up went to false */
  kv_phi_t phi;
} kv_link_t;

/* Up, with nothing heard yet (phi 0) and nothing queued. KV_ENOMEM. */
kv_err kv_link_init(kv_link_t *l, kv_status_t *st);
/* Hands every item still queued to discard (batches in flight are the driver's). */
void kv_link_deinit(kv_link_t *l, void (*discard)(void *arg, kv_link_item_t *item), void *arg);

/* Queues item (copied; its data is the link's until sent or discarded). KV_EBUSY when
 * KV_PEER_QUEUE_MAX are queued, KV_ENOMEM when there is no memory for more room; then the
 * item is still the caller's. */
kv_err kv_link_push(kv_link_t *l, const kv_link_item_t *item);

/* Whether a batch should leave at now_ms: a slot is free and something is queued, or no
 * batch is in flight and none has left for KV_PEER_HEARTBEAT_MS (then an empty one, a
 * heartbeat). If so, *slot is the slot it goes in, slots[*slot].items[0..*count) are the first
 * queued items and *deadline_ms is the batch's deadline (a heartbeat's is
 * KV_PEER_HEARTBEAT_TIMEOUT_MS). Changes nothing else: kv_link_sent commits, once the driver
 * has taken the batch. */
bool kv_link_next(kv_link_t *l, uint64_t now_ms, uint32_t *slot, uint32_t *count,
                  uint32_t *deadline_ms);
/* The driver took the batch kv_link_next put in slot (its first count items) at now_ms: they
 * leave the queue, and the slot is in flight. */
void kv_link_sent(kv_link_t *l, uint32_t slot, uint32_t count, uint64_t now_ms);
/* The batch in flight in slot ended at now_ms, which frees that slot alone; its ids stay in
 * slots[slot].items until the slot is next filled (by kv_link_next). */
kv_link_change_t kv_link_done(kv_link_t *l, uint32_t slot, kv_link_outcome_t outcome,
                              uint64_t now_ms);
/* Judges the silence at now_ms: down once phi passes threshold. */
kv_link_change_t kv_link_tick(kv_link_t *l, uint64_t now_ms, double threshold);

#endif
