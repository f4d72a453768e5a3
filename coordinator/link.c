/* link.c: one peer's queue, window of batch slots and liveness (see link.h).
 *
 * Invariants:
 *   - count <= room <= KV_PEER_QUEUE_MAX; every slot's items[] has at least min(room,
 *     KV_PEER_BATCH_MAX) entries, so a batch of everything queued always fits in any slot;
 *     each slot's count <= KV_PEER_BATCH_MAX.
 *   - a slot is busy only between its kv_link_sent and its kv_link_done; busy is the number
 *     of busy slots, <= KV_PEER_WINDOW.
 *   - up changes only in kv_link_done (either way) and kv_link_tick (to down); downs counts
 *     its moves to down.
 *   - phi's arrivals are answered batches only, so phi.last_ms is never after the latest
 *     kv_link_done's now_ms. */
#include "link.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

/* A new link's room, doubled as the queue fills, up to KV_PEER_QUEUE_MAX: most links never
 * hold more than a few messages, and a node has a link per peer. */
#define LINK_ROOM_FIRST 64u

/* Doubles the ring (unwrapping it) and every slot's items with it. */
static bool link_grow(kv_link_t *l) {
  uint32_t room = l->room * 2 < KV_PEER_QUEUE_MAX ? l->room * 2 : KV_PEER_QUEUE_MAX;
  uint32_t batch_room = room < KV_PEER_BATCH_MAX ? room : KV_PEER_BATCH_MAX;
  for (uint32_t i = 0; i < KV_PEER_WINDOW; i++) {
    kv_link_item_t *items = realloc(l->slots[i].items, batch_room * sizeof *items);
    if (!items) return false; /* the slots grown so far keep their room: harmless */
    l->slots[i].items = items;
  }
  kv_link_item_t *queue = malloc(room * sizeof *queue);
  if (!queue) return false;
  for (uint32_t i = 0; i < l->count; i++) queue[i] = l->queue[(l->head + i) % l->room];
  free(l->queue);
  l->queue = queue;
  l->head = 0;
  l->room = room;
  return true;
}

static void link_free(kv_link_t *l) {
  free(l->queue);
  for (uint32_t i = 0; i < KV_PEER_WINDOW; i++) free(l->slots[i].items);
  memset(l, 0, sizeof *l);
}

kv_err kv_link_init(kv_link_t *l, kv_status_t *st) {
  memset(l, 0, sizeof *l);
  bool ok = (l->queue = calloc(LINK_ROOM_FIRST, sizeof *l->queue)) != NULL;
  for (uint32_t i = 0; i < KV_PEER_WINDOW; i++)
    ok &= (l->slots[i].items = calloc(LINK_ROOM_FIRST, sizeof *l->slots[i].items)) != NULL;
  if (!ok) {
    link_free(l);
    return kv_status_set(st, KV_ENOMEM, "out of memory for a peer's queue");
  }
  l->room = LINK_ROOM_FIRST;
  l->up = true; /* until a batch says otherwise */
  kv_phi_init(&l->phi);
  return KV_OK;
}

void kv_link_deinit(kv_link_t *l, void (*discard)(void *arg, kv_link_item_t *item), void *arg) {
  for (uint32_t i = 0; i < l->count; i++)
    discard(arg, &l->queue[(l->head + i) % l->room]);
  link_free(l);
}

kv_err kv_link_push(kv_link_t *l, const kv_link_item_t *item) {
  if (l->count == KV_PEER_QUEUE_MAX) return KV_EBUSY;
  if (l->count == l->room && !link_grow(l)) return KV_ENOMEM;
  l->queue[(l->head + l->count) % l->room] = *item;
  l->count++;
  return KV_OK;
}

bool kv_link_next(kv_link_t *l, uint64_t now_ms, uint32_t *slot, uint32_t *count,
                  uint32_t *deadline_ms) {
  if (l->busy == KV_PEER_WINDOW) return false;
  /* Compared without subtracting: a batch may have been sent at a later reading of the
   * driver's clock than now_ms. */
  if (l->count == 0 && (l->busy > 0 || now_ms < l->last_sent_ms + KV_PEER_HEARTBEAT_MS))
    return false;
  uint32_t free_slot = 0;
  while (l->slots[free_slot].busy) free_slot++;
  KV_ASSERT(free_slot < KV_PEER_WINDOW);
  kv_link_slot_t *s = &l->slots[free_slot];
  uint32_t n = l->count < KV_PEER_BATCH_MAX ? l->count : KV_PEER_BATCH_MAX;
  for (uint32_t i = 0; i < n; i++) s->items[i] = l->queue[(l->head + i) % l->room];
  *slot = free_slot;
  *count = n;
  *deadline_ms = n > 0 ? KV_TIMEOUT_MS_DEFAULT : KV_PEER_HEARTBEAT_TIMEOUT_MS;
  return true;
}

void kv_link_sent(kv_link_t *l, uint32_t slot, uint32_t count, uint64_t now_ms) {
  KV_ASSERT(slot < KV_PEER_WINDOW && !l->slots[slot].busy);
  KV_ASSERT(count <= l->count && count <= KV_PEER_BATCH_MAX);
  l->head = (l->head + count) % l->room;
  l->count -= count;
  l->slots[slot].count = count;
  l->slots[slot].busy = true;
  l->busy++;
  if (now_ms > l->last_sent_ms) l->last_sent_ms = now_ms;
}

kv_link_change_t kv_link_done(kv_link_t *l, uint32_t slot, kv_link_outcome_t outcome,
                              uint64_t now_ms) {
  KV_ASSERT(slot < KV_PEER_WINDOW && l->slots[slot].busy && l->busy > 0);
  l->slots[slot].busy = false;
  l->busy--;
  bool ever_heard = l->phi.heard;
  if (outcome == KV_LINK_ANSWERED) {
    /* Answers of batches in flight together are arrivals as they come (see link.h). */
    if (l->up) kv_phi_heartbeat(&l->phi, now_ms);
    else kv_phi_restart(&l->phi, now_ms);
    bool was_up = l->up;
    l->up = true;
    return was_up ? KV_LINK_SAME : KV_LINK_WENT_UP;
  }
  /* A timeout is silence, which phi judges, unless there is no history to judge it by. */
  if (outcome == KV_LINK_TIMED_OUT && ever_heard) return KV_LINK_SAME;
  bool was_up = l->up;
  l->up = false;
  l->downs += was_up;
  /* A peer never heard from is still starting; only losing a live one is news. */
  return was_up && ever_heard ? KV_LINK_WENT_DOWN : KV_LINK_SAME;
}

kv_link_change_t kv_link_tick(kv_link_t *l, uint64_t now_ms, double threshold) {
  if (!l->up || kv_phi(&l->phi, now_ms) <= threshold) return KV_LINK_SAME;
  l->up = false;
  l->downs++;
  return KV_LINK_WENT_DOWN;
}
