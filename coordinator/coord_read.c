/* coord_read.c: gets, and read repair (see coord.h).
 *
 * Read repair: a get asks every live replica and answers at R. Each ok answer's record is
 * remembered by its hash (held[]); records encode canonically (dvv.h), so a replica whose
 * hash differs from the merge's is behind, and is sent the merge (a ReplicaWrite that
 * merges: it can never lose anything there). Blocking repairs go to the replicas that had
 * answered when the quorum was met, before the answer; every other repair goes once every
 * asked replica has answered (or the deadline passed), with the final merge.
 *
 * Conflicts (conflict.h): a get's answer is its merge as the request's handler resolves it
 * (kv_node_answer_resolved). When this node is a replica of the key and the handler resolves
 * the merge to one version, get_write_back puts that version here with the merge's whole
 * context before the repairs go out (before the answer with blocking repair, after it with
 * async), so the repairs carry the resolution to the other replicas. */
#include "coord_internal.h"

/* Ends a get whose blocking repairs are done (or failed, or ran out of time). */
void coord_get_repaired(kv_coord_t *c, slot_t *s, uint64_t now_us) {
  if (!s->repair_failed) {
    coord_slot_reply(c, s, now_us);
    return;
  }
  kv_status_t st;
  kv_status_set(&st, KV_EUNAVAILABLE,
                "%s read answered, but repairing a replica that was behind failed or timed out; "
                "retry",
                kv_level_name(s->level));
  coord_reply_error(c, s->call, &st);
  s->call = NULL;
  coord_slot_move(s, SLOT_PENDING | SLOT_REPAIRING, SLOT_REPLIED);
}

static uint64_t record_hash(const uint8_t *rec, size_t rec_bytes) {
  return XXH64(rec_bytes ? rec : (const uint8_t *)"", rec_bytes, 0);
}

/* The get's merge as a record. A merge of nothing but missing keys is no record at all (0
 * bytes), as the replicas answered: encoding the empty object would make every replica of a
 * missing key look behind and be "repaired". */
static void merge_encode(const slot_t *s, uint8_t **rec, size_t *rec_bytes) {
  const kv_dvv_t *m = s->merged;
  if (m->sib_count == 0 && m->cc.vv_count == 0 && m->cc.cloud_count == 0) {
    *rec = NULL;
    *rec_bytes = 0;
    return;
  }
  KV_ASSERT(kv_dvv_encode(m, rec, rec_bytes) == KV_OK);
}

typedef enum { REPAIR_NONE, REPAIR_SENT, REPAIR_FAILED } repair_t;

/* Sends the merge to replica i when it answered with something else; this node's own
 * replica merges it at once (REPAIR_NONE when that worked). */
static repair_t get_repair(kv_coord_t *c, slot_t *s, uint32_t i, const uint8_t *rec,
                           size_t rec_bytes, uint64_t hash) {
  if (s->q.answers[i] != KV_ANSWER_OK || s->held[i] == hash) return REPAIR_NONE;
  kv_status_t st;
  const kv_target_t *t = &s->q.targets[i];
  if (i == s->self_target) {
    /* This node's replica, or, when it is the get's fallback, the hint it keeps. */
    kv_err err = t->primary ? kv_node_merge(c->node, s->keyspace, s->key, s->key_bytes, rec,
                                            rec_bytes, &st)
                            : kv_hints_merge(&c->hints, t->hint_for, s->keyspace, s->key,
                                             s->key_bytes, rec, rec_bytes, &st);
    if (err != KV_OK) {
      KV_WARN("read repair of this replica failed: %s", st.msg);
      return REPAIR_FAILED;
    }
    s->held[i] = hash;
    kv_metrics_add(c->metrics, KV_METRIC_READ_REPAIRS, 1);
    return REPAIR_NONE;
  }
  uint64_t id = coord_slot_id(c, s, i) | KV_SLOT_ID_REPAIR;
  if (coord_target_send_write(c, t, id, s, rec, rec_bytes, false, &st) != KV_OK)
    return REPAIR_FAILED;
  kv_metrics_add(c->metrics, KV_METRIC_READ_REPAIRS, 1);
  return REPAIR_SENT;
}

/* A read's write-back (see the notes at the top): true when this replica put the handler's
 * resolution of the merge, which is then the merge. */
static bool get_write_back(kv_coord_t *c, slot_t *s) {
  if (s->self_target == UINT32_MAX || s->merged->sib_count < 2) return false;
  uint8_t *rec;
  size_t rec_bytes;
  kv_status_t st;
  if (kv_node_resolve_write(c->node, s->keyspace, s->key, s->key_bytes, s->handler, s->merged,
                            s->wall_ms, &rec, &rec_bytes, &st) != KV_OK) {
    KV_WARN("writing back a resolved conflict failed: %s", st.msg);
    return false;
  }
  if (!rec) return false;
  kv_dvv_t resolved;
  bool ok = kv_dvv_decode(rec, rec_bytes, &resolved, &st) == KV_OK;
  if (ok) {
    kv_dvv_deinit(s->merged);
    *s->merged = resolved;
    s->held[s->self_target] = record_hash(rec, rec_bytes);
  }
  free(rec);
  return ok;
}

/* The quorum is met: blocking repairs go out to the replicas that answered with less than
 * the merge, and the answer waits for them; without any, it goes at once. */
void coord_get_decided(kv_coord_t *c, slot_t *s, uint64_t now_us) {
  if (s->q.outcome != KV_QUORUM_OK || !s->repair_blocking) {
    coord_slot_reply(c, s, now_us);
    return;
  }
  get_write_back(c, s);
  uint8_t *rec;
  size_t rec_bytes;
  merge_encode(s, &rec, &rec_bytes);
  s->repair_hash = record_hash(rec, rec_bytes);
  for (uint32_t i = 0; i < s->q.target_count; i++) {
    repair_t r = get_repair(c, s, i, rec, rec_bytes, s->repair_hash);
    if (r == REPAIR_FAILED) s->repair_failed = true;
    if (r != REPAIR_SENT) continue;
    s->repair_wait[i] = true;
    s->repairs_pending++;
  }
  free(rec);
  if (s->repairs_pending == 0) {
    coord_get_repaired(c, s, now_us);
    return;
  }
  s->answer = malloc(sizeof *s->answer);
  KV_ASSERT(s->answer && kv_dvv_copy(s->answer, s->merged) == KV_OK);
  coord_slot_move(s, SLOT_PENDING, SLOT_REPAIRING);
}

/* A blocking repair's ack (or its failure to be sent). */
void coord_get_repair_acked(kv_coord_t *c, slot_t *s, uint32_t i, bool ok, uint64_t now_us) {
  if (!s->repair_wait[i]) return; /* a duplicate, or an async repair's ack */
  s->repair_wait[i] = false;
  s->repairs_pending--;
  if (ok) s->held[i] = s->repair_hash;
  else s->repair_failed = true;
  if (s->repairs_pending == 0 && s->state == SLOT_REPAIRING) coord_get_repaired(c, s, now_us);
}

/* Every asked replica has answered (or the deadline passed): replicas still behind the
 * final merge are sent it, and no answer is waited for. */
void coord_get_repair_async(kv_coord_t *c, slot_t *s) {
  bool differ = get_write_back(c, s);
  int first = -1;
  for (uint32_t i = 0; i < s->q.target_count; i++) {
    if (s->q.answers[i] != KV_ANSWER_OK) continue;
    if (first < 0) first = (int)i;
    else if (s->held[i] != s->held[first]) differ = true;
  }
  if (!differ) return; /* all answered the same state, which is then the merge */
  uint8_t *rec;
  size_t rec_bytes;
  merge_encode(s, &rec, &rec_bytes);
  uint64_t hash = record_hash(rec, rec_bytes);
  for (uint32_t i = 0; i < s->q.target_count; i++) (void)get_repair(c, s, i, rec, rec_bytes, hash);
  free(rec);
}

/* Whether every replica a get asked has answered. */
bool coord_get_all_answered(const slot_t *s) {
  for (uint32_t i = 0; i < s->q.target_count; i++)
    if (s->asked[i] && s->q.answers[i] == KV_ANSWER_NONE) return false;
  return true;
}

/* Takes replica i's answer into the get: merges the record into the running merge and
 * remembers its hash (for read repair). False when it does not decode or the merge would
 * pass a limit. */
bool coord_get_took(slot_t *s, uint32_t i, const uint8_t *rec, size_t rec_bytes) {
  s->held[i] = record_hash(rec, rec_bytes);
  if (rec_bytes == 0) return true;
  kv_dvv_t incoming;
  kv_status_t st;
  if (kv_dvv_decode(rec, rec_bytes, &incoming, &st) != KV_OK) {
    KV_WARN("a replica sent a record that does not decode: %s", st.msg);
    return false;
  }
  kv_err err = kv_dvv_merge(s->merged, &incoming, &st);
  kv_dvv_deinit(&incoming);
  return err == KV_OK;
}

/* Asks replica i of a get (the caller marked it asked): this node's own record (or, as the
 * get's fallback, its hint) is read at once. */
void coord_get_ask(kv_coord_t *c, slot_t *s, uint32_t i, uint64_t now_us) {
  KV_ASSERT(s->asked[i]);
  const kv_target_t *t = &s->q.targets[i];
  if (i == s->self_target) {
    uint8_t *rec;
    size_t rec_bytes;
    kv_status_t st;
    kv_err err = t->primary ? kv_node_read_record(c->node, s->keyspace, s->key, s->key_bytes,
                                                  &rec, &rec_bytes, &st)
                            : kv_hints_read(&c->hints, t->hint_for, s->keyspace, s->key,
                                            s->key_bytes, &rec, &rec_bytes, &st);
    bool ok = err == KV_OK && coord_get_took(s, i, rec, rec_bytes);
    free(rec);
    coord_slot_answer(c, s, i, ok, now_us);
    return;
  }
  if (coord_target_send_read(c, t, coord_slot_id(c, s, i), s, &s->refused) != KV_OK)
    coord_slot_answer(c, s, i, false, now_us);
}

/* Asks every replica believed alive, this node first (no network). All are marked asked
 * before any is asked, so the slot stays until each has answered even when the first
 * answer already decides. */
void coord_get_ask_live(kv_coord_t *c, slot_t *s, uint64_t now_us) {
  uint32_t order[KV_TARGETS_MAX], n = 0;
  if (s->self_target != UINT32_MAX) order[n++] = s->self_target;
  for (uint32_t i = 0; i < s->q.target_count; i++)
    if (i != s->self_target && coord_alive(c, s->q.targets[i].node)) order[n++] = i;
  for (uint32_t k = 0; k < n; k++) s->asked[order[k]] = true;
  uint16_t gen = s->gen;
  for (uint32_t k = 0; k < n; k++) {
    coord_get_ask(c, s, order[k], now_us);
    if (!slot_live(s, gen)) return;
  }
}

/* After failed answers: asks replicas not asked yet (those believed dead) until, were every
 * replica asked and not yet failed to answer ok, the read's need could be met. */
void coord_get_ask_more(kv_coord_t *c, slot_t *s, uint64_t now_us) {
  uint16_t gen = s->gen;
  for (;;) {
    bool hopeful[KV_TARGETS_MAX];
    for (uint32_t i = 0; i < s->q.target_count; i++)
      hopeful[i] = s->asked[i] && s->q.answers[i] != KV_ANSWER_ERROR;
    if (kv_quorum_possible(&s->q.need, s->q.targets, s->q.target_count, hopeful, "", NULL))
      return;
    uint32_t next = 0;
    while (next < s->q.target_count && s->asked[next]) next++;
    KV_ASSERT(next < s->q.target_count); /* unasked replicas remain while the need is reachable */
    s->asked[next] = true;
    coord_get_ask(c, s, next, now_us);
    if (!slot_live(s, gen) || s->q.outcome != KV_QUORUM_PENDING) return;
  }
}

/* This replica's record of the key with every hint this node keeps for it merged in (a
 * fallback holds a key only as hints); just the record when it keeps none. */
static kv_err get_with_hints(kv_coord_t *c, const kv_node_req_t *req,
                             const kv_node_plan_t *plan, uint64_t wall_ms,
                             kv_node_result_t *res, kv_status_t *st) {
  kv_dvv_t obj, mine;
  kv_dvv_init(&obj);
  bool any;
  kv_err err = kv_hints_merge_held(&c->hints, req->keyspace, req->key, req->key_bytes, &obj,
                                   &any, st);
  if (err == KV_OK && !any) {
    kv_dvv_deinit(&obj);
    return kv_node_get(c->node, req, plan, wall_ms, res, st);
  }
  uint8_t *rec = NULL;
  size_t rec_bytes = 0;
  if (err == KV_OK)
    err = kv_node_read_record(c->node, req->keyspace, req->key, req->key_bytes, &rec,
                              &rec_bytes, st);
  if (err == KV_OK && rec_bytes > 0 && (err = kv_dvv_decode(rec, rec_bytes, &mine, st)) == KV_OK) {
    err = kv_dvv_merge(&obj, &mine, st);
    kv_dvv_deinit(&mine);
  }
  free(rec);
  if (err == KV_OK) {
    err = kv_node_answer(&obj, res, st);
  } else {
    memset(res, 0, sizeof *res);
    kv_dvv_init(&res->object);
  }
  kv_dvv_deinit(&obj);
  return err;
}

/* A get with local=true (with the hints this node keeps), or one this replica's answer
 * alone decides: this node's view, no coordination. */
void coord_get_local(kv_coord_t *c, void *call, const kv_node_req_t *req,
                     const kv_node_plan_t *plan, uint64_t wall_ms) {
  kv_node_result_t res;
  kv_status_t st;
  kv_status_clear(&st);
  kv_err err = req->local ? get_with_hints(c, req, plan, wall_ms, &res, &st)
                          : kv_node_get(c->node, req, plan, wall_ms, &res, &st);
  if (err == KV_OK) c->reply(call, &st, &res);
  else coord_reply_error(c, call, &st);
  kv_node_result_free(&res);
}

/* Whether this node's own answer alone meets the read's need (ONE, or r=1, on a replica). */
bool coord_self_suffices(const kv_node_plan_t *plan, const kv_target_t *targets,
                         uint32_t count, uint32_t self_target) {
  if (self_target == UINT32_MAX || !targets[self_target].primary) return false;
  bool only_self[KV_TARGETS_MAX] = {false};
  only_self[self_target] = true;
  return kv_quorum_possible(&plan->need, targets, count, only_self, "", NULL);
}

void coord_get(kv_coord_t *c, void *call, const kv_node_req_t *req,
               const kv_node_plan_t *plan, uint64_t now_us, uint64_t wall_ms) {
  kv_target_t targets[KV_TARGETS_MAX];
  uint32_t self_target, count = coord_plan_targets(c, plan, targets, &self_target);
  if (!coord_targets_possible(c, call, plan, targets, count, self_target)) return;
  if (coord_self_suffices(plan, targets, count, self_target)) {
    /* This replica's answer alone decides: skip the request table (and read repair). */
    coord_get_local(c, call, req, plan, wall_ms);
    return;
  }
  slot_t *s =
      coord_slot_start(c, call, KV_OP_GET, SLOT_PENDING, plan, targets, count, self_target, now_us);
  if (!s) return;
  coord_slot_keep_key(s, req, wall_ms);
  s->merged = malloc(sizeof *s->merged);
  KV_ASSERT(s->merged);
  memset(s->asked, 0, sizeof s->asked);
  memset(s->repair_wait, 0, sizeof s->repair_wait);
  s->repair_blocking = plan->repair_blocking;
  s->repairs_pending = 0;
  s->repair_failed = false;
  s->handler = plan->handler;
  kv_dvv_init(s->merged);
  uint16_t gen = s->gen;
  coord_get_ask_live(c, s, now_us);
  if (slot_live(s, gen) && s->q.outcome == KV_QUORUM_PENDING) coord_get_ask_more(c, s, now_us);
}
