/* coord_slots.c: the request table (see coord_internal.h): starting, moving, answering,
 * finishing and freeing slots, planning their targets and sending to them.
 *
 * Replication lag is measured here in microseconds (the quorum counter works in ms, too
 * coarse for a loopback cluster): decided_us is when the W-th ack arrived, last_ok_us the
 * last ack; a write whose every target acked records last_ok_us - decided_us. */
#include "coord_internal.h"

/* The invariants of s's state: what it holds, and whether its client is still waiting. */
static void slot_check(const slot_t *s) {
  switch (s->state) {
    case SLOT_FREE:
      KV_ASSERT(!s->result && !s->merged && !s->answer && !s->delete_plan && !s->keyspace);
      break;
    case SLOT_READING:
      KV_ASSERT(s->op == KV_OP_DELETE && s->delete_plan && s->merged);
      break;
    case SLOT_PENDING:
      KV_ASSERT(!s->delete_plan && s->repairs_pending == 0);
      break;
    case SLOT_REPAIRING:
      KV_ASSERT(s->op == KV_OP_GET && s->call && s->repairs_pending > 0);
      break;
    case SLOT_REPLIED:
      KV_ASSERT(!s->call && !s->delete_plan);
      break;
  }
}

/* Moves s to state `to` from one of the states `from` (a mask) allows. */
void coord_slot_move(slot_t *s, unsigned from, slot_state_t to) {
  KV_ASSERT((s->state & from) != 0);
  s->state = to;
  slot_check(s);
}

void coord_slot_release(kv_coord_t *c, slot_t *s) {
  if (s->result) {
    kv_node_result_free(s->result);
    free(s->result);
  }
  if (s->merged) {
    kv_dvv_deinit(s->merged);
    free(s->merged);
  }
  if (s->answer) {
    kv_dvv_deinit(s->answer);
    free(s->answer);
  }
  free(s->delete_plan);
  free(s->keyspace);
  free(s->key);
  s->result = NULL;
  s->merged = NULL;
  s->answer = NULL;
  s->delete_plan = NULL;
  s->keyspace = NULL;
  s->key = NULL;
  s->call = NULL;
  s->repairs_pending = 0;
  coord_slot_move(s, SLOT_READING | SLOT_PENDING | SLOT_REPAIRING | SLOT_REPLIED, SLOT_FREE);
  s->gen++;
  uint32_t index = (uint32_t)(s - c->slots);
  uint32_t last = c->active[--c->active_count];
  c->active[s->active_pos] = last;
  c->slots[last].active_pos = s->active_pos;
  c->free_list[c->free_count++] = index;
}

uint64_t coord_slot_id(const kv_coord_t *c, const slot_t *s, uint32_t target) {
  uint64_t index = (uint64_t)(s - c->slots);
  return index << (KV_SLOT_ID_GEN_BITS + KV_SLOT_ID_TARGET_BITS) |
         (uint64_t)s->gen << KV_SLOT_ID_TARGET_BITS | target;
}

/* The slot and target an id names, or NULL when it is stale or malformed; *repair tells a
 * read repair's ack from a read answer. */
slot_t *coord_slot_of(kv_coord_t *c, uint64_t id, uint32_t *target, bool *repair) {
  uint64_t index = id >> (KV_SLOT_ID_GEN_BITS + KV_SLOT_ID_TARGET_BITS);
  if (index >= KV_COORD_PENDING_MAX) return NULL;
  slot_t *s = &c->slots[index];
  uint16_t gen = (uint16_t)(id >> KV_SLOT_ID_TARGET_BITS);
  uint32_t bits = (uint32_t)(id & ((1u << KV_SLOT_ID_TARGET_BITS) - 1));
  *repair = (bits & KV_SLOT_ID_REPAIR) != 0;
  *target = bits & ~KV_SLOT_ID_REPAIR;
  if (!slot_live(s, gen) || *target >= s->q.target_count) return NULL;
  return s;
}

/* Whether the slot's answers are reads: a get's, or a READING delete's. */
bool coord_slot_reads(const slot_t *s) { return s->op == KV_OP_GET || s->state == SLOT_READING; }

void coord_reply_error(kv_coord_t *c, void *call, const kv_status_t *st) {
  KV_ASSERT(st->code != KV_OK);
  c->reply(call, st, NULL);
}

void coord_slot_reply(kv_coord_t *c, slot_t *s, uint64_t now_us) {
  kv_status_t st;
  kv_status_clear(&st);
  s->decided_us = now_us;
  if (s->q.outcome != KV_QUORUM_OK && s->refused.code != KV_OK) {
    /* Overload, not failure: say so (RESOURCE_EXHAUSTED), so the client backs off. */
    coord_reply_error(c, s->call, &s->refused);
  } else if (s->q.outcome != KV_QUORUM_OK) {
    kv_quorum_failure(&s->q, kv_level_name(s->level), s->op == KV_OP_GET ? "answered"
                                                                          : "acknowledged",
                      &st);
    coord_reply_error(c, s->call, &st);
  } else if (s->op == KV_OP_GET) {
    /* The answer takes a copy: the merge goes on gathering late answers for repair. */
    kv_dvv_t copy;
    kv_node_result_t res;
    KV_ASSERT(kv_dvv_copy(&copy, s->answer ? s->answer : s->merged) == KV_OK);
    if (kv_node_answer_resolved(c->node, s->keyspace, s->key, s->key_bytes, s->handler,
                                s->wall_ms, &copy, &res, &st) == KV_OK)
      c->reply(s->call, &st, &res);
    else coord_reply_error(c, s->call, &st);
    kv_node_result_free(&res);
    kv_dvv_deinit(&copy);
  } else {
    c->reply(s->call, &st, s->result);
  }
  s->call = NULL;
  coord_slot_move(s, SLOT_PENDING | SLOT_REPAIRING, SLOT_REPLIED);
}

/* A primary is sent a replica write; a fallback (sloppy quorum) the same record as a hint
 * for the primary it stands in for. */
kv_err coord_target_send_write(kv_coord_t *c, const kv_target_t *t, uint64_t id,
                               const slot_t *s, const uint8_t *rec, size_t rec_bytes,
                               bool durable, kv_status_t *st) {
  kv_msg_t m = kv_msg_write(id, s->keyspace, s->key, s->key_bytes, rec, rec_bytes, durable);
  if (!t->primary) m.hint_for = t->hint_for;
  m.epoch = c->ring->epoch;
  return coord_send(c, t->node, &m, st);
}

kv_err coord_target_send_read(kv_coord_t *c, const kv_target_t *t, uint64_t id,
                              const slot_t *s, kv_status_t *st) {
  kv_msg_t m = kv_msg_read(id, s->keyspace, s->key, s->key_bytes);
  if (!t->primary) m.hint_for = t->hint_for;
  m.epoch = c->ring->epoch;
  return coord_send(c, t->node, &m, st);
}

/* The index of the fallback standing in for primary `node` among s's targets, or -1. */
static int stand_in(const slot_t *s, uint32_t node) {
  for (uint32_t j = 0; j < s->q.target_count; j++)
    if (!s->q.targets[j].primary && s->q.targets[j].hint_for == node) return (int)j;
  return -1;
}

bool coord_stood_in_for(const slot_t *s, uint32_t node) { return stand_in(s, node) >= 0; }

/* Whether a fallback standing in for primary `node` acknowledged the write. */
static bool stand_in_acked(const slot_t *s, uint32_t node) {
  int j = stand_in(s, node);
  return j >= 0 && s->q.answers[j] == KV_ANSWER_OK;
}

/* Remembers an acknowledged write's applied times (applied.h): its primaries that acked
 * with a known time, and W's time on this node's wall clock. */
static void applied_record(kv_coord_t *c, const slot_t *s) {
  kv_applied_write_t w = {.acked_ms = s->wall_ms + (s->decided_us - s->start_us) / 1000};
  for (uint32_t i = 0; i < s->q.target_count && w.count < KV_REPLICAS_MAX; i++)
    if (s->q.targets[i].primary && s->q.answers[i] == KV_ANSWER_OK && s->applied_ms[i])
      w.replicas[w.count++] =
          (kv_applied_replica_t){.node = s->q.targets[i].node, .applied_ms = s->applied_ms[i]};
  kv_applied_add(&c->applied, s->keyspace, s->key, s->key_bytes, &w);
}

/* Frees the slot once nothing more can arrive for it, recording a write's lag and applied
 * times or sending a get's remaining repairs. */
void coord_slot_maybe_finish(kv_coord_t *c, slot_t *s, uint64_t now_us) {
  uint64_t now_ms = now_us / 1000;
  if (s->state == SLOT_READING) return; /* it ends in coord_delete_read_decided */
  if (s->op == KV_OP_GET) {
    if (s->q.outcome == KV_QUORUM_PENDING || s->call) return;
    if (!coord_get_all_answered(s) && now_ms < s->q.deadline_ms) return;
    coord_get_repair_async(c, s);
    coord_slot_release(c, s);
    return;
  }
  if (s->sync_pending || !kv_quorum_finished(&s->q, now_ms)) return;
  bool all_ok = s->q.ok_count == s->q.target_count;
  if (s->q.outcome == KV_QUORUM_OK) applied_record(c, s);
  if (s->q.outcome == KV_QUORUM_OK && all_ok) {
    kv_histogram_record(&c->lag_us, s->last_ok_us - s->decided_us);
    uint32_t nodes[KV_TARGETS_MAX];
    for (uint32_t i = 0; i < s->q.target_count; i++) nodes[i] = s->q.targets[i].node;
    kv_metrics_write_lag(c->metrics, nodes, s->ack_us, s->q.target_count, s->decided_us);
  }
  /* Every primary that did not acknowledge gets a hint of the record written here, unless
   * a fallback acknowledged the write for it and so keeps one. */
  for (uint32_t i = 0; i < s->q.target_count; i++) {
    if (i == s->self_target || !s->q.targets[i].primary || s->q.answers[i] == KV_ANSWER_OK ||
        stand_in_acked(s, s->q.targets[i].node))
      continue;
    kv_hints_add(&c->hints, s->q.targets[i].node, s->keyspace, s->key, s->key_bytes);
  }
  /* A delete every primary acknowledged waits out its grace period to be reaped (with a
   * fallback among the targets, some primary was not sent it: all_ok is then false). */
  if (s->op == KV_OP_DELETE && all_ok)
    kv_reaper_add(&c->reaper, s->keyspace, s->key, s->key_bytes, now_us);
  coord_slot_release(c, s);
}

void coord_slot_answer(kv_coord_t *c, slot_t *s, uint32_t target, bool ok, uint64_t now_us) {
  bool was_answered = s->q.answers[target] != KV_ANSWER_NONE;
  bool decided = kv_quorum_answer(&s->q, target, ok, now_us / 1000);
  if (ok && !was_answered) s->last_ok_us = s->ack_us[target] = now_us;
  if (decided && s->state == SLOT_READING) {
    coord_delete_read_decided(c, s, now_us); /* the slot went on to the write, or was freed */
    return;
  }
  if (decided && s->op == KV_OP_GET) coord_get_decided(c, s, now_us);
  else if (decided) coord_slot_reply(c, s, now_us);
  if (!decided && !ok && coord_slot_reads(s) && s->q.outcome == KV_QUORUM_PENDING)
    coord_get_ask_more(c, s, now_us);
  else
    coord_slot_maybe_finish(c, s, now_us);
}

/* Targets forwarded through target f (its message failed, or its answer gave no outcome
 * for them) have failed: unanswered, they are never counted. */
void coord_relayed_fail_rest(kv_coord_t *c, slot_t *s, uint32_t f, uint64_t now_us) {
  uint16_t gen = s->gen;
  for (uint32_t j = 0; j < s->q.target_count; j++) {
    if (s->via[j] != f || s->q.answers[j] != KV_ANSWER_NONE) continue;
    coord_slot_answer(c, s, j, false, now_us);
    if (!slot_live(s, gen)) return;
  }
}

/* Target i failed, and with it the targets forwarded through it. */
void coord_slot_failed_with_relayed(kv_coord_t *c, slot_t *s, uint32_t i, uint64_t now_us) {
  uint16_t gen = s->gen;
  coord_relayed_fail_rest(c, s, i, now_us);
  if (slot_live(s, gen)) coord_slot_answer(c, s, i, false, now_us);
}

static bool node_alive(kv_coord_t *c, uint32_t node) {
  return node == kv_node_self(c->node) || coord_alive(c, node);
}

void kv_coord_placement(kv_coord_t *c, const kv_keyspace_conf_t *ks, uint32_t partition,
                        kv_preflist_t *pl, int *stand_in) {
  kv_ring_preflist(c->ring, ks, partition, pl);
  KV_ASSERT(pl->primary_count <= KV_REPLICAS_MAX);
  bool alive[KV_NODES_MAX];
  for (uint32_t k = 0; k < pl->count; k++) alive[k] = node_alive(c, pl->node[k]);
  if (ks->sloppy_quorum) {
    kv_preflist_stand_ins(pl, alive, stand_in);
    return;
  }
  for (uint32_t i = 0; i < pl->primary_count; i++) stand_in[i] = -1;
}

/* The index of node among the first count targets; count when it is not one. */
static uint32_t target_index(const kv_target_t *targets, uint32_t count, uint32_t node) {
  uint32_t i = 0;
  while (i < count && targets[i].node != node) i++;
  return i;
}

static kv_target_t target_of(const kv_config_t *cfg, const kv_preflist_t *pl, uint32_t k,
                             const char *self_region) {
  return (kv_target_t){.node = pl->node[k], .region = pl->region[k], .primary = true,
                       .local = strcmp(cfg->nodes[pl->node[k]].region, self_region) == 0};
}

/* A moving ring's request also goes to the primaries of the claim reads do not use (ring.h):
 * each target is marked with the claims it is a primary of, and those of the other claim not
 * among them are added (after count targets); returns the new count. Reads go to both claims
 * too, and need R of each: their read repairs and write-backs are writes, which must reach
 * both claims as any write does, or a read after the flip could go back on a repaired one. */
static uint32_t add_other_claim(kv_coord_t *c, const kv_node_plan_t *plan, kv_target_t *targets,
                                uint32_t count, uint32_t *self_target) {
  const kv_ring_t *ring = c->ring;
  bool reads_from = kv_ring_read_claim(ring) == &ring->from;
  uint8_t read_set = reads_from ? KV_SET_FROM : KV_SET_TO;
  uint8_t other_set = reads_from ? KV_SET_TO : KV_SET_FROM;
  kv_preflist_t other;
  kv_ring_claim_preflist(ring, reads_from ? &ring->to : &ring->from, plan->ks, plan->partition,
                         &other);
  for (uint32_t i = 0; i < count; i++) targets[i].sets = read_set;
  const char *self_region = ring->cfg->nodes[kv_node_self(c->node)].region;
  for (uint32_t k = 0; k < other.primary_count; k++) {
    uint32_t i = target_index(targets, count, other.node[k]);
    if (i == count) {
      KV_ASSERT(count < KV_TARGETS_MAX);
      if (other.node[k] == kv_node_self(c->node)) *self_target = count;
      targets[count++] = target_of(ring->cfg, &other, k, self_region);
    }
    targets[i].sets |= other_set;
  }
  return count;
}

/* The targets of a request: the key's primaries (while the ring moves, those of both
 * claims), then (sloppy quorum) the stand-ins for those of the read claim believed dead (see
 * coord.h); each stand-in counts in its primary's sets. *self_target is this node's index
 * among them, or UINT32_MAX when it is not one of them. */
uint32_t coord_plan_targets(kv_coord_t *c, const kv_node_plan_t *plan, kv_target_t *targets,
                            uint32_t *self_target) {
  kv_preflist_t pl;
  int stand_in[KV_REPLICAS_MAX];
  kv_coord_placement(c, plan->ks, plan->partition, &pl, stand_in);
  uint32_t self = kv_node_self(c->node);
  const kv_config_t *cfg = c->ring->cfg;
  const char *self_region = cfg->nodes[self].region;
  *self_target = UINT32_MAX;
  uint32_t count = pl.primary_count;
  for (uint32_t i = 0; i < pl.primary_count; i++) {
    targets[i] = target_of(cfg, &pl, i, self_region);
    if (pl.node[i] == self) *self_target = i;
  }
  if (kv_ring_moving(c->ring))
    count = add_other_claim(c, plan, targets, count, self_target);
  uint32_t primaries = count;
  for (uint32_t i = 0; i < pl.primary_count; i++) {
    int f = stand_in[i];
    /* A primary of the other claim is no stand-in: one ack would count for two replicas. */
    if (f < 0 || target_index(targets, primaries, pl.node[f]) < primaries) continue;
    KV_ASSERT(count < KV_TARGETS_MAX);
    if (pl.node[f] == self) *self_target = count;
    targets[count] = target_of(cfg, &pl, (uint32_t)f, self_region);
    targets[count].primary = false;
    targets[count].hint_for = pl.node[i];
    targets[count++].sets = targets[i].sets;
  }
  return count;
}

/* Whether the live targets could meet the request's need; answers UNAVAILABLE when not. */
bool coord_targets_possible(kv_coord_t *c, void *call, const kv_node_plan_t *plan,
                            const kv_target_t *targets, uint32_t count, uint32_t self_target) {
  bool alive[KV_TARGETS_MAX];
  for (uint32_t i = 0; i < count; i++) alive[i] = node_alive(c, targets[i].node);
  kv_status_t st;
  kv_status_clear(&st);
  if (kv_quorum_possible(&plan->need, targets, count, alive, kv_level_name(plan->level), &st))
    return true;
  coord_reply_error(c, call, &st);
  return false;
}

/* Sets slot s up to count the plan's need over targets, from start_ms to deadline_ms. */
void coord_slot_begin(slot_t *s, const kv_node_plan_t *plan, const kv_target_t *targets,
                      uint32_t count, uint32_t self_target, uint64_t start_ms,
                      uint64_t deadline_ms) {
  s->level = plan->level;
  s->self_target = self_target;
  s->epoch = s->coord->ring->epoch;
  s->sync_pending = false;
  kv_status_clear(&s->refused);
  s->decided_us = s->last_ok_us = 0;
  memset(s->applied_ms, 0, sizeof s->applied_ms);
  memset(s->via, VIA_NONE, sizeof s->via);
  kv_quorum_init(&s->q, &plan->need, targets, count, start_ms, deadline_ms);
}

/* Starts a slot for the request over targets, or answers RESOURCE_EXHAUSTED and returns
 * NULL when the table is full. */
slot_t *coord_slot_start(kv_coord_t *c, void *call, kv_op_t op, slot_state_t state,
                         const kv_node_plan_t *plan, const kv_target_t *targets,
                         uint32_t count, uint32_t self_target, uint64_t now_us) {
  if (c->free_count == 0) {
    kv_status_t st;
    kv_status_set(&st, KV_EBUSY, "node has %u requests in flight; retry later",
                  KV_COORD_PENDING_MAX);
    coord_reply_error(c, call, &st);
    return NULL;
  }
  uint32_t index = c->free_list[--c->free_count];
  slot_t *s = &c->slots[index];
  s->active_pos = c->active_count;
  c->active[c->active_count++] = index;
  s->op = op;
  s->call = call;
  s->start_us = now_us;
  coord_slot_begin(s, plan, targets, count, self_target, now_us / 1000,
                   now_us / 1000 + plan->timeout_ms);
  if (state == SLOT_READING) {
    s->merged = malloc(sizeof *s->merged);
    s->delete_plan = malloc(sizeof *s->delete_plan);
    KV_ASSERT(s->merged && s->delete_plan);
    kv_dvv_init(s->merged);
  }
  coord_slot_move(s, SLOT_FREE, state);
  return s;
}

/* Copies what a slot keeps of its request: the keyspace and key, and its wall-clock start. */
void coord_slot_keep_key(slot_t *s, const kv_node_req_t *req, uint64_t wall_ms) {
  s->keyspace = strdup(req->keyspace);
  s->key = malloc(req->key_bytes);
  KV_ASSERT(s->keyspace && s->key);
  memcpy(s->key, req->key, req->key_bytes);
  s->key_bytes = req->key_bytes;
  s->wall_ms = wall_ms;
}

/* The syncer made this node's copy of a durable write durable: that is its self-ack. */
void coord_self_synced(kv_sync_waiter_t *w, const kv_status_t *st, uint64_t mono_us) {
  slot_t *s = (slot_t *)((char *)w - offsetof(slot_t, waiter));
  kv_coord_t *c = s->coord;
  s->sync_pending = false;
  coord_slot_answer(c, s, s->self_target, st->code == KV_OK, mono_us);
}

bool coord_slot_retry(kv_coord_t *c, slot_t *s, uint64_t now_us) {
  if (s->state != SLOT_PENDING || s->q.outcome != KV_QUORUM_PENDING ||
      s->epoch >= c->ring->epoch || now_us / 1000 >= s->q.deadline_ms)
    return false;
  const kv_config_t *cfg = c->ring->cfg;
  kv_node_plan_t plan = {.ks = kv_config_keyspace(cfg, s->keyspace), .level = s->level,
                         .need = s->q.need};
  KV_ASSERT(plan.ks);
  plan.partition = kv_hash_partition(kv_hash_key(s->keyspace, s->key, s->key_bytes),
                                     cfg->partitions);
  kv_target_t targets[KV_TARGETS_MAX];
  bool alive[KV_TARGETS_MAX];
  uint32_t self, count = coord_plan_targets(c, &plan, targets, &self);
  for (uint32_t i = 0; i < count; i++) alive[i] = node_alive(c, targets[i].node);
  bool writing = s->op != KV_OP_GET;
  if ((writing && (self == UINT32_MAX || !targets[self].primary)) ||
      !kv_quorum_possible(&plan.need, targets, count, alive, "", NULL))
    return false;
  bool self_acked = s->self_target != UINT32_MAX &&
                    s->q.answers[s->self_target] == KV_ANSWER_OK;
  bool sync_pending = s->sync_pending;
  s->gen++; /* the old targets' answers are for a finished request now */
  coord_slot_begin(s, &plan, targets, count, self, s->q.start_ms, s->q.deadline_ms);
  s->sync_pending = sync_pending;
  uint16_t gen = s->gen;
  uint32_t left_ms = (uint32_t)(s->q.deadline_ms - now_us / 1000); /* above 0: checked */
  if (!writing) {
    memset(s->asked, 0, sizeof s->asked);
    coord_get_ask_live(c, s, now_us);
    if (slot_live(s, gen) && s->q.outcome == KV_QUORUM_PENDING) coord_get_ask_more(c, s, now_us);
    return true;
  }
  s->applied_ms[self] = s->wall_ms;
  coord_write_send_all(c, s, left_ms, now_us);
  if (slot_live(s, gen) && self_acked) coord_slot_answer(c, s, self, true, now_us);
  return true;
}

/* Ends a slot whose request failed before any message left: answers and frees it. */
void coord_slot_abort(kv_coord_t *c, slot_t *s, const kv_status_t *st) {
  coord_reply_error(c, s->call, st);
  s->call = NULL;
  coord_slot_release(c, s);
}
