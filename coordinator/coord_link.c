/* coord_link.c: the coordinator's links to its peers (link.h): every message the core sends
 * is packed by the transport and queued on its peer's link; a batch leaves whenever one of
 * the link's KV_PEER_WINDOW slots is free (at once, from inside the event that sent it, or
 * when a batch in flight ends) and an empty one every KV_PEER_HEARTBEAT_MS to an idle peer
 * (on_tick). A batch's
 * end answers each of its messages and feeds the failure detector, whose verdict is what
 * alive() tells the rest of the core.
 *
 * Times: links count in milliseconds of the latest event's monotonic clock (c->now_us), as
 * sends happen deep inside events that were given it. */
#include "coord_internal.h"

static uint64_t now_ms(const kv_coord_t *c) { return c->now_us / 1000; }

static const char *node_id(const kv_coord_t *c, uint32_t node) {
  return c->ring->cfg->nodes[node].id;
}

static bool out_alive(void *arg, uint32_t node) { return coord_alive(arg, node); }

static kv_err out_send(void *arg, uint32_t node, const kv_msg_t *m, kv_status_t *st) {
  return coord_send(arg, node, m, st);
}

kv_err coord_links_init(kv_coord_t *c, kv_status_t *st) {
  c->out = (kv_msg_out_t){.arg = c, .alive = out_alive, .send = out_send};
  uint32_t self = kv_node_self(c->node);
  for (uint32_t i = 0; i < c->ring->cfg->node_count; i++) {
    if (i == self) continue;
    kv_err err = kv_link_init(&c->links[i], st);
    if (err != KV_OK) {
      coord_links_deinit(c);
      return err;
    }
  }
  return KV_OK;
}

void coord_links_deinit(kv_coord_t *c) {
  for (uint32_t i = 0; i < c->ring->cfg->node_count; i++)
    if (c->links[i].queue) kv_link_deinit(&c->links[i], c->tr.discard, c->tr.arg);
}

/* Starts node's next batches while its link says one should leave now: as many as there
 * are free slots and queued messages (a heartbeat only on an idle link). */
static void link_pump(kv_coord_t *c, uint32_t node) {
  kv_link_t *l = &c->links[node];
  uint32_t slot, count, deadline_ms;
  while (kv_link_next(l, now_ms(c), &slot, &count, &deadline_ms)) {
    if (!c->tr.send_batch(c->tr.arg, node, slot, l->slots[slot].items, count, deadline_ms))
      return;
    kv_link_sent(l, slot, count, now_ms(c));
  }
}

bool coord_alive(kv_coord_t *c, uint32_t node) {
  if (node == kv_node_self(c->node)) return true;
  return c->tr.alive ? c->tr.alive(c->tr.arg, node) : c->links[node].up;
}

kv_err coord_send(kv_coord_t *c, uint32_t node, const kv_msg_t *m, kv_status_t *st) {
  KV_ASSERT(node < c->ring->cfg->node_count && node != kv_node_self(c->node));
  kv_link_item_t item;
  kv_err err = c->tr.pack(c->tr.arg, node, m, &item, st);
  if (err != KV_OK) return err;
  KV_ASSERT(item.id == m->id);
  if ((err = kv_link_push(&c->links[node], &item)) != KV_OK) {
    c->tr.discard(c->tr.arg, &item);
    if (err == KV_ENOMEM)
      return kv_status_set(st, err, "out of memory queueing a message to node %s",
                           node_id(c, node));
    return kv_status_set(st, err, "the queue to node %s is full (%u messages)",
                         node_id(c, node), KV_PEER_QUEUE_MAX);
  }
  link_pump(c, node);
  return KV_OK;
}

/* The batch in flight to node in slot ended with these answers (NULL: every message
 * failed). The ids are copied first: a message sent while the answers are taken may start a
 * batch in the slot just freed, which reuses its items. */
static void batch_end(kv_coord_t *c, uint32_t node, uint32_t slot, kv_link_outcome_t outcome,
                      const kv_msg_answer_t *answers, uint32_t count, const char *why) {
  kv_link_t *l = &c->links[node];
  KV_ASSERT(slot < KV_PEER_WINDOW);
  uint64_t ids[KV_PEER_BATCH_MAX];
  uint32_t n = l->slots[slot].count;
  for (uint32_t i = 0; i < n; i++) ids[i] = l->slots[slot].items[i].id;
  kv_link_change_t change = kv_link_done(l, slot, outcome, now_ms(c));
  if (change == KV_LINK_WENT_DOWN)
    KV_WARN("node %s is down: a batch of %u message(s) failed: %s", node_id(c, node), n, why);
  else if (change == KV_LINK_WENT_UP)
    KV_INFO("node %s is up: it answered again", node_id(c, node));
  for (uint32_t i = 0; i < n; i++) {
    kv_msg_answer_t failed = {.id = ids[i], .code = KV_EUNAVAILABLE};
    const kv_msg_answer_t *a = answers && i < count && answers[i].id == ids[i] ? &answers[i]
                                                                              : &failed;
    kv_coord_on_peer_reply(c, a, c->now_us);
  }
  link_pump(c, node);
}

void kv_coord_on_batch_reply(kv_coord_t *c, uint32_t node, uint32_t slot,
                             const kv_msg_answer_t *answers, uint32_t count, uint64_t mono_us) {
  coord_clock(c, mono_us);
  batch_end(c, node, slot, KV_LINK_ANSWERED, answers, count, "");
}

void kv_coord_on_batch_failed(kv_coord_t *c, uint32_t node, uint32_t slot,
                              kv_link_outcome_t outcome, const char *why, uint64_t mono_us) {
  KV_ASSERT(outcome != KV_LINK_ANSWERED);
  coord_clock(c, mono_us);
  batch_end(c, node, slot, outcome, NULL, 0, why);
}

/* Each peer's verdict (a stopped process keeps its connections open and a lost call is
 * never refused, so only silence gives them away), then its heartbeat if it is idle. */
void coord_links_tick(kv_coord_t *c) {
  const kv_config_t *cfg = c->ring->cfg;
  for (uint32_t i = 0; i < cfg->node_count; i++) {
    kv_link_t *l = &c->links[i];
    if (!l->queue) continue;
    double phi = kv_phi(&l->phi, now_ms(c));
    if (kv_link_tick(l, now_ms(c), cfg->phi_threshold) == KV_LINK_WENT_DOWN)
      KV_WARN("node %s is down: phi %.1f after %llu ms of silence (answers every %.0f ms, "
              "deviation %.0f ms)", node_id(c, i), phi,
              (unsigned long long)(now_ms(c) - l->phi.last_ms), kv_phi_mean_ms(&l->phi),
              kv_phi_std_dev_ms(&l->phi));
    link_pump(c, i);
  }
}

void kv_coord_liveness(kv_coord_t *c, uint32_t node, uint64_t mono_us, kv_peer_liveness_t *out) {
  *out = (kv_peer_liveness_t){.up = true, .phi = 0, .last_heard_ms_ago = 0};
  if (node == kv_node_self(c->node)) return;
  const kv_link_t *l = &c->links[node];
  uint64_t now = mono_us / 1000;
  out->up = l->up;
  out->phi = kv_phi(&l->phi, now);
  out->last_heard_ms_ago = -1;
  /* The clock read for this question may be behind the latest event's. */
  if (l->phi.heard)
    out->last_heard_ms_ago = now > l->phi.last_ms ? (int64_t)(now - l->phi.last_ms) : 0;
  out->queued = l->count;
  out->downs = l->downs;
}
