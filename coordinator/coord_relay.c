/* coord_relay.c: the forwarder's side of forwarding to a region (see coord.h).
 *
 * Forwarding (coord.h): via[i] is the target whose forwarder message carries target i's write
 * (VIA_NONE: sent directly). The forwarder's side is the relay table: KV_RELAYS_MAX entries,
 * a relayed message's id is KV_RELAY_ID_BIT | generation << 24 | entry << 8 | index in the
 * relay (ids.h), and an entry lives from a forwarded write (kv_coord_on_peer_request) until
 * every replica answered or its deadline (checked by the tick) passed, when done is called
 * and it is free again. */
#include "coord_internal.h"

static uint64_t relay_id(const kv_coord_t *c, const relay_t *r, uint32_t k) {
  return KV_RELAY_ID_BIT | (uint64_t)r->gen << KV_RELAY_ID_GEN_SHIFT |
         (uint64_t)(r - c->relays) << KV_RELAY_ID_INDEX_SHIFT | k;
}

/* Every replica answered or the deadline passed: those that did not answer timed out. */
static void relay_finish(kv_coord_t *c, relay_t *r) {
  for (uint32_t k = 0; k < r->count; k++)
    if (!r->answered[k]) r->out[k].code = KV_ETIMEDOUT;
  r->in_use = false;
  r->gen++;
  c->relay_count--;
  r->done(r->arg, r->out, r->count);
}

void coord_relay_answer(kv_coord_t *c, uint64_t id, kv_err code, uint64_t applied_ms) {
  uint32_t index = (uint32_t)(id >> KV_RELAY_ID_INDEX_SHIFT) & 0xFFFFu, k = (uint32_t)id & 0xFFu;
  if (index >= KV_RELAYS_MAX) return;
  relay_t *r = &c->relays[index];
  if (!r->in_use || r->gen != (uint16_t)(id >> KV_RELAY_ID_GEN_SHIFT) || k >= r->count ||
      r->answered[k])
    return; /* a duplicate, or for a relay already finished */
  r->answered[k] = true;
  r->out[k].code = code;
  r->out[k].applied_ms = code == KV_OK ? applied_ms : 0;
  if (--r->pending == 0) relay_finish(c, r);
}

void coord_relay_tick(kv_coord_t *c, uint64_t now_us) {
  for (uint32_t i = 0; i < KV_RELAYS_MAX && c->relay_count > 0; i++)
    if (c->relays[i].in_use && now_us >= c->relays[i].deadline_us) relay_finish(c, &c->relays[i]);
}

/* Whether a relay can start: its wait, the nodes it names, and room in the table (see
 * kv_coord_on_peer_request). */
kv_err coord_relay_check(kv_coord_t *c, const kv_relay_target_t *targets, uint32_t count,
                         uint32_t wait_ms, kv_status_t *st) {
  if (wait_ms == 0 || wait_ms > KV_TIMEOUT_MS_MAX)
    return kv_status_set(st, KV_EINVAL, "forward_wait_ms is %u; it must be 1 to %u", wait_ms,
                         KV_TIMEOUT_MS_MAX);
  if (count > KV_REPLICAS_MAX - 1)
    return kv_status_set(st, KV_EINVAL, "forward_to names %u nodes; a region has at most %u "
                         "others", count, KV_REPLICAS_MAX - 1);
  for (uint32_t k = 0; k < count; k++) {
    KV_ASSERT(targets[k].node < c->ring->cfg->node_count);
    if (targets[k].node == kv_node_self(c->node))
      return kv_status_set(st, KV_EINVAL, "forward_to names this node (%s); it relays to the "
                           "others", c->ring->cfg->nodes[targets[k].node].id);
  }
  if (c->relay_count == KV_RELAYS_MAX)
    return kv_status_set(st, KV_EBUSY, "node %s is relaying %u writes already; retry later",
                         c->ring->cfg->nodes[kv_node_self(c->node)].id, KV_RELAYS_MAX);
  return KV_OK;
}

/* Starts a relay coord_relay_check admitted. */
void coord_relay_start(kv_coord_t *c, const char *keyspace, const uint8_t *key,
                       size_t key_bytes, const uint8_t *rec, size_t rec_bytes, bool durable,
                       uint64_t epoch, const kv_relay_target_t *targets, uint32_t count,
                       uint32_t wait_ms, kv_coord_relay_fn done, void *arg, uint64_t mono_us) {
  while (c->relays[c->relay_next].in_use) c->relay_next = (c->relay_next + 1) % KV_RELAYS_MAX;
  relay_t *r = &c->relays[c->relay_next];
  r->in_use = true;
  c->relay_count++;
  r->count = count;
  r->pending = count + 1; /* and one for this call, so no answer can finish it before the end */
  r->deadline_us = mono_us + wait_ms * 1000ull;
  r->done = done;
  r->arg = arg;
  for (uint32_t k = 0; k < count; k++) {
    r->out[k] = (kv_relay_outcome_t){.id = targets[k].id, .node = targets[k].node,
                                     .code = KV_OK, .applied_ms = 0};
    r->answered[k] = false;
  }
  for (uint32_t k = 0; k < count; k++) {
    kv_status_t send_st;
    kv_msg_t m = kv_msg_write(relay_id(c, r, k), keyspace, key, key_bytes, rec, rec_bytes,
                              durable);
    m.epoch = epoch; /* the coordinator's, so a replica with a newer ring refuses it too */
    kv_err send = coord_send(c, targets[k].node, &m, &send_st);
    if (send != KV_OK) coord_relay_answer(c, relay_id(c, r, k), send, 0);
  }
  kv_metrics_add(c->metrics, KV_METRIC_RELAYED_WRITES, 1);
  if (--r->pending == 0) relay_finish(c, r);
}
