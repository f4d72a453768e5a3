/* coord.c: the coordinator's events (see coord.h): creating it, the client's requests, the
 * answers from other nodes routed by their ids (ids.h), the tick, and what it reports.
 *
 * The coordinator is split by concern, sharing coord_internal.h: the request slots and their
 * states (coord_slots.c), writes and deletes (coord_write.c), reads and read repair
 * (coord_read.c), a forwarder's relays (coord_relay.c) and the replica's side of peer
 * messages (coord_replica.c). */
#include "coord_internal.h"

/* The fsync after this node's part of a reaper's forget step (reaper.h). */
static void reap_synced(kv_sync_waiter_t *w, const kv_status_t *st, uint64_t mono_us) {
  kv_reap_job_t *j = (kv_reap_job_t *)((char *)w - offsetof(kv_reap_job_t, waiter));
  kv_coord_t *c = j->reaper->owner;
  kv_reaper_synced(&c->reaper, &c->out, w, st->code == KV_OK, mono_us);
}

kv_err kv_coord_create(kv_node_t *node, const kv_ring_t *ring, kv_syncer_t *syncer,
                       const kv_coord_transport_t *transport, kv_coord_reply_fn reply,
                       const kv_coord_opts_t *opts, kv_coord_t **out, kv_status_t *st) {
  kv_coord_opts_t defaults = KV_COORD_OPTS_DEFAULT;
  if (!opts) opts = &defaults;
  kv_coord_t *c = calloc(1, sizeof *c);
  if (!c) return kv_status_set(st, KV_ENOMEM, "out of memory creating the coordinator");
  kv_err err = kv_own_init(&c->own, node, ring, opts->hint_rate_per_s, st);
  if (err != KV_OK) {
    free(c);
    return err;
  }
  ring = c->ring = c->own.ring;
  if ((err = kv_hints_init(&c->hints, node, ring->cfg->node_count, opts->hint_bytes_max,
                           opts->hint_rate_per_s, st)) != KV_OK) {
    kv_own_deinit(&c->own);
    free(c);
    return err;
  }
  if ((err = kv_reaper_init(&c->reaper, node, ring, &c->hints, syncer, reap_synced, c, st)) !=
      KV_OK) {
    kv_hints_deinit(&c->hints);
    kv_own_deinit(&c->own);
    free(c);
    return err;
  }
  c->node = node;
  c->syncer = syncer;
  c->tr = *transport;
  c->reply = reply;
  if ((err = coord_links_init(c, st)) != KV_OK) {
    kv_reaper_deinit(&c->reaper);
    kv_hints_deinit(&c->hints);
    kv_own_deinit(&c->own);
    free(c);
    return err;
  }
  kv_xch_init(&c->xch, node, ring);
  c->metrics = c->xch.metrics = opts->metrics;
  for (uint32_t i = 0; i < KV_COORD_PENDING_MAX; i++) {
    c->slots[i].coord = c;
    c->slots[i].state = SLOT_FREE;
    c->free_list[i] = KV_COORD_PENDING_MAX - 1 - i;
  }
  c->free_count = KV_COORD_PENDING_MAX;
  kv_histogram_init(&c->lag_us);
  kv_applied_init(&c->applied);
  *out = c;
  return KV_OK;
}

void kv_coord_destroy(kv_coord_t *c) {
  if (!c) return;
  while (c->active_count > 0) coord_slot_release(c, &c->slots[c->active[c->active_count - 1]]);
  kv_hints_deinit(&c->hints);
  kv_xch_deinit(&c->xch);
  kv_reaper_deinit(&c->reaper);
  coord_links_deinit(c);
  kv_own_deinit(&c->own);
  free(c);
}

void kv_coord_on_client(kv_coord_t *c, void *call, kv_op_t op, const kv_node_req_t *req,
                      uint64_t mono_us, uint64_t wall_ms) {
  coord_clock(c, mono_us);
  kv_node_plan_t plan;
  kv_status_t st;
  kv_status_clear(&st);
  if (kv_node_plan(c->node, req, op != KV_OP_GET, &plan, &st) != KV_OK) {
    coord_reply_error(c, call, &st);
    return;
  }
  if (op == KV_OP_GET && req->local) coord_get_local(c, call, req, &plan, wall_ms);
  else if (op == KV_OP_GET) coord_get(c, call, req, &plan, mono_us, wall_ms);
  else coord_write(c, call, op, req, &plan, mono_us, wall_ms);
}

/* One answer from replica `target` of slot s (see kv_coord_on_peer_reply). */
static void coord_took(kv_coord_t *c, slot_t *s, uint32_t target, bool repair, kv_err code,
                       const uint8_t *rec, size_t rec_bytes, uint64_t applied_ms,
                       uint64_t now_us) {
  bool ok = code == KV_OK;
  if (repair) {
    coord_get_repair_acked(c, s, target, ok, now_us);
    coord_slot_maybe_finish(c, s, now_us);
    return;
  }
  /* A duplicate is merged again (merging is idempotent) and left to the counter to ignore. */
  if (ok && coord_slot_reads(s)) ok = coord_get_took(s, target, rec, rec_bytes);
  /* The first ack's time stands, as the first ack is the one counted. */
  if (ok && !coord_slot_reads(s) && s->q.answers[target] == KV_ANSWER_NONE)
    s->applied_ms[target] = applied_ms;
  coord_slot_answer(c, s, target, ok, now_us);
}

/* The forwarder target f of slot s answered with these outcomes: each counts for a target
 * forwarded through f (others are ignored), and those it gave none for have failed. */
static void coord_took_relayed(kv_coord_t *c, slot_t *s, uint32_t f,
                               const kv_relay_outcome_t *relayed, uint32_t count,
                               uint64_t now_us) {
  uint16_t gen = s->gen;
  for (uint32_t k = 0; k < count; k++) {
    uint32_t j;
    bool repair;
    if (coord_slot_of(c, relayed[k].id, &j, &repair) != s || repair || s->via[j] != f) continue;
    coord_took(c, s, j, false, relayed[k].code, NULL, 0, relayed[k].applied_ms, now_us);
    if (!slot_live(s, gen)) return;
  }
  coord_relayed_fail_rest(c, s, f, now_us);
}

/* An answer, to whichever part of the core its id names (ids.h). */
static void coord_answer_one(kv_coord_t *c, const kv_msg_answer_t *a, uint64_t now_us) {
  uint64_t id = a->id;
  kv_err code = a->code;
  kv_status_t st;
  /* A replica with a newer ring refused the request, and says what the ring is now. */
  if (code == KV_ESTALE && a->rec_bytes > 0 &&
      kv_own_take(&c->own, a->rec, a->rec_bytes, now_us, &st) != KV_OK)
    KV_WARN("a replica refused a request for a stale ring with one this node cannot take: %s",
            st.msg);
  if (id & KV_HINT_ID_BIT) {
    kv_hints_answer(&c->hints, id, code);
    return;
  }
  if (id & KV_AAE_ID_BIT) {
    kv_xch_answer(&c->xch, &c->out, id, code, a->tree, a->rec, a->rec_bytes, now_us);
    return;
  }
  if (id & KV_REAP_ID_BIT) {
    kv_reaper_answer(&c->reaper, &c->out, id, code, a->rec, a->rec_bytes, now_us);
    return;
  }
  if (id & KV_RELAY_ID_BIT) {
    coord_relay_answer(c, id, code, a->applied_ms);
    return;
  }
  if (id & KV_RING_ID_BIT) {
    kv_own_answer(&c->own, id, code, a->rec, a->rec_bytes, now_us);
    return;
  }
  /* Fault point: the same answer again, as a network that duplicates would deliver it. */
  for (int copy = 0; copy == 0 || (copy == 1 && KV_BUGGIFY()); copy++) {
    uint32_t target;
    bool repair;
    slot_t *s = coord_slot_of(c, id, &target, &repair);
    /* This node's own answers never come over the wire. */
    if (!s || target == s->self_target) return;
    if (code == KV_ESTALE && !repair && coord_slot_retry(c, s, now_us)) return;
    if (!repair) coord_took_relayed(c, s, target, a->relayed, a->relayed_count, now_us);
    if ((s = coord_slot_of(c, id, &target, &repair)) != NULL)
      coord_took(c, s, target, repair, code, a->rec, a->rec_bytes, a->applied_ms, now_us);
  }
}

void kv_coord_on_peer_reply(kv_coord_t *c, const kv_msg_answer_t *a, uint64_t mono_us) {
  coord_clock(c, mono_us);
  coord_answer_one(c, a, mono_us);
}

void kv_coord_on_tick(kv_coord_t *c, uint64_t mono_us) {
  coord_clock(c, mono_us);
  /* Backwards: finishing a slot moves the last active one into its place. */
  for (uint32_t i = c->active_count; i-- > 0;) {
    slot_t *s = &c->slots[c->active[i]];
    uint64_t now_ms = mono_us / 1000;
    if (kv_quorum_tick(&s->q, now_ms)) {
      if (s->state == SLOT_READING) {
        coord_delete_read_failed(c, s); /* its read timed out: answered and freed */
        continue;
      }
      coord_slot_reply(c, s, mono_us);
    } else if (s->state == SLOT_REPAIRING && now_ms >= s->q.deadline_ms) {
      s->repair_failed = true;
      coord_get_repaired(c, s, mono_us);
    }
    coord_slot_maybe_finish(c, s, mono_us);
  }
  coord_relay_tick(c, mono_us);
  kv_hints_tick(&c->hints, &c->out, mono_us);
  kv_xch_tick(&c->xch, &c->out, mono_us);
  kv_reaper_tick(&c->reaper, &c->out, mono_us);
  kv_own_tick(&c->own, &c->out, mono_us);
  coord_links_tick(c);
}

const kv_ring_t *kv_coord_ring(const kv_coord_t *c) { return c->ring; }

kv_err kv_coord_ring_change(kv_coord_t *c, uint64_t members, uint64_t mono_us,
                            kv_status_t *st) {
  coord_clock(c, mono_us);
  return kv_own_change(&c->own, members, c->now_us, st);
}

void kv_coord_aae_stats(kv_coord_t *c, uint32_t peer, kv_aae_stats_t *out) {
  kv_xch_stats(&c->xch, peer, out);
}

void kv_coord_reap_stats(kv_coord_t *c, kv_reap_stats_t *out) {
  *out = c->reaper.stats;
}

void kv_coord_hint_stats(kv_coord_t *c, uint32_t target, kv_hint_stats_t *out) {
  kv_hints_stats(&c->hints, target, out);
}

/* Whether a write of (keyspace, key) is in flight here (answered or not). */
static bool write_in_flight(const kv_coord_t *c, const char *keyspace, const uint8_t *key,
                            size_t key_bytes) {
  for (uint32_t i = 0; i < c->active_count; i++) {
    const slot_t *s = &c->slots[c->active[i]];
    if (s->op != KV_OP_GET && s->key_bytes == key_bytes && !strcmp(s->keyspace, keyspace) &&
        (key_bytes == 0 || !memcmp(s->key, key, key_bytes)))
      return true;
  }
  return false;
}

kv_err kv_coord_applied(kv_coord_t *c, const char *keyspace, const uint8_t *key,
                        size_t key_bytes, kv_applied_write_t *out, kv_status_t *st) {
  if (!kv_config_keyspace(c->ring->cfg, keyspace))
    return kv_status_set(st, KV_EINVAL, "keyspace '%.*s' is not in this node's config",
                         (int)KV_KEYSPACE_NAME_BYTES_MAX, keyspace);
  const char *self = c->ring->cfg->nodes[kv_node_self(c->node)].id;
  kv_err err = KV_OK;
  if (write_in_flight(c, keyspace, key, key_bytes))
    err = kv_status_set(st, KV_EUNAVAILABLE, "node %s is still waiting for replicas to "
                        "acknowledge a write of that key; ask again shortly", self);
  else if (!kv_applied_find(&c->applied, keyspace, key, key_bytes, out))
    err = kv_status_set(st, KV_ENOTFOUND, "node %s remembers no acknowledged write of that key "
                        "in keyspace '%s': it keeps the last %u writes it coordinated, and a "
                        "write sent to a node that is not a replica is coordinated by the first "
                        "live primary", self, keyspace, KV_APPLIED_MAX);
  return err;
}

uint32_t kv_coord_in_flight(kv_coord_t *c) {
  uint32_t n = c->active_count;
  return n;
}

void kv_coord_lag(kv_coord_t *c, kv_histogram_t *out) {
  *out = c->lag_us;
}
