/* link.h: what one node's core knows of its connection to one peer (DESIGN sections 8 and
 * 10): the messages waiting to be sent, the batch in flight, and whether the peer is up.
 *
 * Batching. Messages to a peer queue (bounded: KV_PEER_QUEUE_MAX, packed by the driver as
 * they are sent, so each is encoded once); while no batch to that peer is in flight, the next
 * one starts carrying everything queued (up to KV_PEER_BATCH_MAX); when it ends, whatever
 * queued meanwhile leaves in the next. No timers: batching comes from the round trip itself.
 * The items are opaque to the link (the runtime's are packed PeerMessages, the simulator's
 * copies of kv_msg_t); the link only keeps their ids, to answer them when the batch ends.
 *
 * Liveness (phi.h). An idle peer is sent an empty batch (a heartbeat) every
 * KV_PEER_HEARTBEAT_MS, and every batch that is answered is an arrival for the phi-accrual
 * detector. A peer is down
 *   - once phi passes the threshold (kv_link_tick): silence, a stopped process, a lost call;
 *   - at once when a batch to it fails outright (KV_LINK_FAILED: connection refused or reset),
 *     or times out before the peer was ever heard from (no history to judge silence by);
 * and up again as soon as a batch to it is answered. A timeout otherwise is silence, which
 * phi judges. The silence before a peer judged down answers again is an outage, not an
 * interval to learn (kv_phi_restart), or the next failure would be slower to see.
 *
 * States of the batch slot (in_flight): idle -> kv_link_sent -> in flight -> kv_link_done
 * -> idle. The driver makes exactly one kv_link_done per kv_link_sent.
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

/* Callers may read every field; only this module writes them. */
typedef struct {
  kv_link_item_t *queue;      /* a ring of room entries: queue[(head + i) % room] */
  uint32_t head, count, room; /* room grows as needed, up to KV_PEER_QUEUE_MAX */
  bool in_flight;             /* a batch is out; batch[0..batch_count) its messages */
  kv_link_item_t *batch;      /* the batch's items (their data handed to the driver) */
  uint32_t batch_count;
  uint64_t last_sent_ms;      /* when the latest batch left */
  bool up;
  uint64_t downs;             /* times up went to false */
  kv_phi_t phi;
} kv_link_t;

/* Up, with nothing heard yet (phi 0) and nothing queued. KV_ENOMEM. */
kv_err kv_link_init(kv_link_t *l, kv_status_t *st);
/* Hands every item still queued to discard (a batch in flight is the driver's). */
void kv_link_deinit(kv_link_t *l, void (*discard)(void *arg, kv_link_item_t *item), void *arg);

/* Queues item (copied; its data is the link's until sent or discarded). KV_EBUSY when
 * KV_PEER_QUEUE_MAX are queued, KV_ENOMEM when there is no memory for more room; then the
 * item is still the caller's. */
kv_err kv_link_push(kv_link_t *l, const kv_link_item_t *item);

/* Whether a batch should leave at now_ms: none is in flight, and something is queued or the
 * peer has had no batch for KV_PEER_HEARTBEAT_MS (then an empty one, a heartbeat). If so,
 * fills batch[0..*count) with the first queued items and *deadline_ms with the batch's
 * deadline (a heartbeat's is KV_PEER_HEARTBEAT_TIMEOUT_MS). Changes nothing: kv_link_sent
 * commits, once the driver has taken the batch. */
bool kv_link_next(kv_link_t *l, uint64_t now_ms, uint32_t *count, uint32_t *deadline_ms);
/* The driver took batch[0..count) at now_ms: they leave the queue, and the batch is in
 * flight. */
void kv_link_sent(kv_link_t *l, uint32_t count, uint64_t now_ms);
/* The batch in flight ended at now_ms; its ids stay in batch[] until the next kv_link_sent. */
kv_link_change_t kv_link_done(kv_link_t *l, kv_link_outcome_t outcome, uint64_t now_ms);
/* Judges the silence at now_ms: down once phi passes threshold. */
kv_link_change_t kv_link_tick(kv_link_t *l, uint64_t now_ms, double threshold);

#endif
