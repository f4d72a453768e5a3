/* coord_write.c: puts and deletes: forwarding a write to a replica, applying it here and
 * sending it to the other targets (forwarded to other regions as coord.h describes), and
 * deletes without a context, which read first (the READING state: coord_internal.h). */
#include "coord_internal.h"

/* A write reaching a node that is not one of the key's replicas goes, as received, to the
 * first live replica, which coordinates it: dots are only minted by replicas (primaries; a
 * fallback never coordinates). Its answer goes straight back to the client (the transport
 * relays it). */
static void coord_forward(kv_coord_t *c, void *call, kv_op_t op, const kv_node_req_t *req,
                          const kv_node_plan_t *plan, const kv_target_t *targets,
                          uint32_t count) {
  kv_status_t st;
  kv_status_clear(&st);
  for (uint32_t i = 0; i < count; i++) {
    if (!targets[i].primary || !coord_alive(c, targets[i].node)) continue;
    if (c->tr.forward(c->tr.arg, targets[i].node, call, op, req->raw, req->raw_bytes,
                      plan->timeout_ms, &st) != KV_OK)
      coord_reply_error(c, call, &st);
    return;
  }
  /* Fallbacks alone may meet the level, but none of them may coordinate. */
  kv_status_set(&st, KV_EUNAVAILABLE,
                "%s write needs a live primary replica to coordinate it; all %u are down",
                kv_level_name(plan->level), plan->ks->n);
  coord_reply_error(c, call, &st);
}

/* Forwarding (coord.h): when target f is the first target of another region, every target
 * of that region is a primary believed alive, and there is another, fills relay with the
 * others (marking them via f) and returns how many; else 0: f's region is sent directly. */
static uint32_t region_relay(kv_coord_t *c, slot_t *s, uint32_t f, kv_relay_target_t *relay) {
  const kv_target_t *t = &s->q.targets[f];
  if (t->local || !t->primary) return 0;
  uint32_t n = 0;
  for (uint32_t j = 0; j < s->q.target_count; j++) {
    const kv_target_t *u = &s->q.targets[j];
    if (u->region != t->region) continue;
    if (j < f || !u->primary || !coord_alive(c, u->node)) return 0;
    if (j != f) relay[n++] = (kv_relay_target_t){.node = u->node, .id = coord_slot_id(c, s, j)};
  }
  for (uint32_t j = f + 1; j < s->q.target_count && n > 0; j++)
    if (s->q.targets[j].region == t->region) s->via[j] = (uint8_t)f;
  return n;
}

/* Sends a put's record to target i: directly, or, when it forwards to its region, with the
 * others of its region to relay to. */
static kv_err write_send(kv_coord_t *c, slot_t *s, uint32_t i, const kv_node_result_t *res,
                         bool durable, uint32_t timeout_ms) {
  const kv_target_t *t = &s->q.targets[i];
  kv_relay_target_t relay[KV_REPLICAS_MAX];
  uint32_t n = region_relay(c, s, i, relay);
  kv_err err;
  if (n) {
    kv_msg_t m = kv_msg_write(coord_slot_id(c, s, i), s->keyspace, s->key, s->key_bytes,
                              res->record, res->record_bytes, durable);
    m.relay = relay;
    m.relay_count = n;
    m.epoch = c->ring->epoch;
    m.relay_wait_ms = timeout_ms / 2 ? timeout_ms / 2 : 1;
    err = coord_send(c, t->node, &m, &s->refused);
  } else {
    err = coord_target_send_write(c, t, coord_slot_id(c, s, i), s, res->record,
                                  res->record_bytes, durable, &s->refused);
  }
  if (err == KV_OK && !t->local) kv_metrics_add(c->metrics, KV_METRIC_REMOTE_WRITES, 1);
  return err;
}

void coord_write_send_all(kv_coord_t *c, slot_t *s, uint32_t timeout_ms, uint64_t now_us) {
  for (uint32_t i = 0; i < s->q.target_count; i++) {
    if (i == s->self_target || s->via[i] != VIA_NONE) continue;
    /* A primary a fallback stands in for is not sent the write: were it alive after all,
     * its ack and the fallback's would count one replica twice (the hint becomes its copy),
     * so a durable write could be acknowledged at w with w - 1 copies. It counts as failed
     * at once, as a refused connection would. */
    const kv_target_t *t = &s->q.targets[i];
    if ((t->primary && coord_stood_in_for(s, t->node)) ||
        write_send(c, s, i, s->result, s->durable, timeout_ms) != KV_OK)
      coord_slot_failed_with_relayed(c, s, i, now_us);
  }
}

/* A PENDING put's or delete's work: applies it on this replica (minting the dot) at wall_ms,
 * then sends the record to the other targets; a write the replica refuses ends the slot. */
static void write_apply(kv_coord_t *c, slot_t *s, const kv_node_req_t *req,
                        const kv_node_plan_t *plan, uint64_t now_us, uint64_t wall_ms) {
  kv_status_t st;
  kv_status_clear(&st);
  s->result = calloc(1, sizeof *s->result);
  KV_ASSERT(s->result);
  s->applied_ms[s->self_target] = wall_ms; /* applied just below, before anything is sent */
  kv_node_result_t *res = s->result;
  kv_err err = s->op == KV_OP_PUT ? kv_node_put(c->node, req, plan, wall_ms, res, &st)
                                  : kv_node_delete(c->node, req, plan, wall_ms, res, &st);
  if (err != KV_OK) {
    coord_slot_abort(c, s, &st);
    return;
  }
  s->durable = req->durable;
  /* The self-ack comes last, so the slot outlives this loop. */
  coord_write_send_all(c, s, plan->timeout_ms, now_us);
  if (req->durable) {
    s->sync_pending = true;
    kv_syncer_push(c->syncer, &s->waiter, coord_self_synced);
  } else {
    coord_slot_answer(c, s, s->self_target, true, now_us);
  }
}

/* The plan of the read: a get of the key at the delete's level (ANY, a write level, reads at
 * ONE), its r the delete's w and its pr the delete's pw. kv_node_plan checked the delete
 * against every rule this plan has, so it cannot fail. */
static void delete_read_plan(kv_coord_t *c, const kv_node_req_t *req,
                             const kv_node_plan_t *plan, kv_node_plan_t *out) {
  kv_node_req_t read = *req;
  read.level = kv_level_name(plan->level == KV_LEVEL_ANY ? KV_LEVEL_ONE : plan->level);
  kv_status_t st;
  KV_ASSERT(kv_node_plan(c->node, &read, false, out, &st) == KV_OK);
}

/* FREE -> READING: a slot for the delete that asks the replicas as a get at the read's level
 * would; the tombstone waits for the read to decide. */
static void delete_read_start(kv_coord_t *c, void *call, const kv_node_req_t *req,
                              const kv_node_plan_t *plan, const kv_target_t *targets,
                              uint32_t count, uint32_t self_target, uint64_t now_us,
                              uint64_t wall_ms) {
  kv_node_plan_t read;
  delete_read_plan(c, req, plan, &read);
  slot_t *s = coord_slot_start(c, call, KV_OP_DELETE, SLOT_READING, &read, targets, count,
                               self_target, now_us);
  if (!s) return;
  coord_slot_keep_key(s, req, wall_ms);
  *s->delete_plan = *plan;
  s->durable = req->durable;
  memset(s->asked, 0, sizeof s->asked);
  uint16_t gen = s->gen;
  if (coord_self_suffices(&read, targets, count, self_target)) {
    s->asked[self_target] = true;
    coord_get_ask(c, s, self_target, now_us);
  } else {
    coord_get_ask_live(c, s, now_us);
  }
  if (slot_live(s, gen) && s->q.outcome == KV_QUORUM_PENDING) coord_get_ask_more(c, s, now_us);
}

/* READING -> FREE: the read failed (or timed out); so does the delete, with the read's status,
 * and nothing is written. */
void coord_delete_read_failed(kv_coord_t *c, slot_t *s) {
  kv_status_t why, st;
  kv_status_clear(&why);
  if (s->refused.code != KV_OK) why = s->refused;
  else kv_quorum_failure(&s->q, kv_level_name(s->level), "answered", &why);
  kv_status_set(&st, why.code, "a delete without a context reads the key first, and that read "
                "failed, so nothing was deleted: %s", why.msg);
  coord_slot_abort(c, s, &st);
}

/* READING -> PENDING: the read met its level, so the tombstone is written with the context of
 * the merge, at the delete's level, as a delete with that context would be, by the time the
 * request started with (its wall clock moved on by the read's monotonic time). */
void coord_delete_read_decided(kv_coord_t *c, slot_t *s, uint64_t now_us) {
  if (s->q.outcome != KV_QUORUM_OK) {
    coord_delete_read_failed(c, s);
    return;
  }
  kv_node_plan_t *plan = s->delete_plan;
  s->delete_plan = NULL;
  plan->ctx = s->merged->cc;
  kv_dvv_deinit(s->merged);
  free(s->merged);
  s->merged = NULL;
  s->gen++; /* the read's late answers are for a finished request now */
  kv_target_t targets[KV_TARGETS_MAX];
  uint32_t self_target, count = coord_plan_targets(c, plan, targets, &self_target);
  /* The ring may have moved while the read ran, and this node with it. */
  if (self_target == UINT32_MAX || !targets[self_target].primary) {
    kv_status_t st;
    kv_status_set(&st, KV_EUNAVAILABLE, "a delete without a context read the key, but the ring "
                  "moved meanwhile and node %s is no longer one of its replicas; nothing was "
                  "deleted", c->ring->cfg->nodes[kv_node_self(c->node)].id);
    coord_slot_abort(c, s, &st);
    free(plan);
    return;
  }
  if (!coord_targets_possible(c, s->call, plan, targets, count, self_target)) {
    s->call = NULL;
    coord_slot_release(c, s);
  } else {
    coord_slot_move(s, SLOT_READING, SLOT_PENDING);
    coord_slot_begin(s, plan, targets, count, self_target, s->q.start_ms, s->q.deadline_ms);
    kv_node_req_t req = {.keyspace = s->keyspace, .key = s->key, .key_bytes = s->key_bytes,
                         .durable = s->durable};
    write_apply(c, s, &req, plan, now_us, s->wall_ms + (now_us - s->start_us) / 1000);
  }
  free(plan);
}

void coord_write(kv_coord_t *c, void *call, kv_op_t op, const kv_node_req_t *req,
                 const kv_node_plan_t *plan, uint64_t now_us, uint64_t wall_ms) {
  kv_target_t targets[KV_TARGETS_MAX];
  uint32_t self_target, count = coord_plan_targets(c, plan, targets, &self_target);
  /* Refuse before writing anything: a write that known-dead replicas cannot acknowledge
   * must not land. */
  if (!coord_targets_possible(c, call, plan, targets, count, self_target)) return;
  if (self_target == UINT32_MAX || !targets[self_target].primary) {
    coord_forward(c, call, op, req, plan, targets, count);
    return;
  }
  if (op == KV_OP_DELETE && req->context_bytes == 0) {
    delete_read_start(c, call, req, plan, targets, count, self_target, now_us, wall_ms);
    return;
  }
  slot_t *s =
      coord_slot_start(c, call, op, SLOT_PENDING, plan, targets, count, self_target, now_us);
  if (!s) return;
  coord_slot_keep_key(s, req, wall_ms);
  write_apply(c, s, req, plan, now_us, wall_ms);
}
