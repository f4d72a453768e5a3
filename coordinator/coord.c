/* coord.c: requests in flight and the quorum counting behind them (see coord.h).
 *
 * Request table: KV_COORD_PENDING_MAX slots. A slot's id in messages is
 *   slot << 24 | generation << 8 | repair flag << 7 | target index,
 * so an answer for a finished request (whose slot moved on to a new generation) is ignored,
 * and a read repair's ack is told from the same replica's read answer.
 *
 * Forwarding (coord.h): via[i] is the target whose forwarder message carries target i's write
 * (VIA_NONE: sent directly). The forwarder's side is the relay table: KV_RELAYS_MAX entries,
 * a relayed message's id is KV_RELAY_ID_BIT | generation << 24 | entry << 8 | index in the
 * relay (ids.h), and an entry lives from a forwarded write (kv_coord_on_peer_request) until
 * every replica answered or its deadline (checked by the tick) passed, when done is called
 * and it is free again.
 *
 * A slot's life (slot_state_t; every move is slot_move, which checks the state it leaves
 * and the invariants of the one it enters, as SQLite's assert_pager_state does):
 *   FREE -> (request, slot_start) PENDING -> (quorum decided, slot_reply) REPLIED ->
 *   (quorum finished, no fsync outstanding, slot_release) FREE; a request that fails before
 *   any message leaves goes PENDING -> (slot_abort) FREE, answered with why.
 * A get whose read repair blocks goes PENDING -> (quorum decided, get_decided) REPAIRING ->
 * (every repair acked, get_repaired) REPLIED; a failed or late repair fails the read (as
 * Cassandra's blocking read repair times out the read), because answering would let the
 * next quorum read go back in time.
 * A delete without a context (Riak's delete without a vclock) deletes what it reads first:
 *   FREE -> (request, delete_read_start) READING -> (read quorum met, delete_read_decided)
 *   PENDING, as its write, under a new generation -> as a put;
 *   READING -> (read failed or timed out, delete_read_failed) FREE, answered with the
 *   read's status and a sentence saying so; nothing is written.
 * A READING slot keeps the write's plan in delete_plan for when the read decides. The read
 * is asked and merged as a get's (ONE on this replica reads only it), with no read repair
 * and no write-back: the tombstone, written with the merge's context, covers every version
 * the merge holds and goes to every replica. Its level is the delete's, as kv_node_plan
 * resolved it for the write (the keyspace's write level when none is given), counted as a
 * read: r = w, pr = pw, and ANY, a write level, reads at ONE. The write is planned afresh
 * (targets, the UNAVAILABLE check) when the read decides, and has what the read left of the
 * request's timeout: one deadline covers the whole delete. A version written after the
 * replicas answered is not covered, so it stays beside the tombstone. The new generation
 * drops the read's late answers, as a finished request's are dropped.
 *
 * Read repair: a get asks every live replica and answers at R. Each ok answer's record is
 * remembered by its hash (held[]); records encode canonically (dvv.h), so a replica whose
 * hash differs from the merge's is behind, and is sent the merge (a ReplicaWrite that
 * merges: it can never lose anything there). Blocking repairs go to the replicas that had
 * answered when the quorum was met, before the answer; every other repair goes once every
 * asked replica has answered (or the deadline passed), with the final merge.
 * Replication lag is measured here in microseconds (the quorum counter works in ms, too
 * coarse for a loopback cluster): decided_us is when the W-th ack arrived, last_ok_us the
 * last ack; a write whose every target acked records last_ok_us - decided_us.
 *
 * Conflicts (conflict.h): a get's answer is its merge as the request's handler resolves it
 * (kv_node_answer_resolved). When this node is a replica of the key and the handler resolves
 * the merge to one version, get_write_back puts that version here with the merge's whole
 * context before the repairs go out (before the answer with blocking repair, after it with
 * async), so the repairs carry the resolution to the other replicas. */
#include "coord.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "buggify.h"
#include "exchange.h"
#include "hash.h"
#include "hints.h"
#include "log.h"
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
  bool durable;                 /* READING: whether its write is durable */
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
static void slot_move(slot_t *s, unsigned from, slot_state_t to) {
  KV_ASSERT((s->state & from) != 0);
  s->state = to;
  slot_check(s);
}

/* Whether s still holds the request it held as generation gen. */
static bool slot_live(const slot_t *s, uint16_t gen) {
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
  const kv_ring_t *ring;
  kv_syncer_t *syncer;
  kv_coord_transport_t tr;
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

/* The fsync after this node's part of a reaper's forget step (reaper.h). */
static void reap_synced(kv_sync_waiter_t *w, const kv_status_t *st, uint64_t mono_us) {
  kv_reap_job_t *j = (kv_reap_job_t *)((char *)w - offsetof(kv_reap_job_t, waiter));
  kv_coord_t *c = j->reaper->owner;
  kv_reaper_synced(&c->reaper, &c->tr, w, st->code == KV_OK, mono_us);
}

kv_err kv_coord_create(kv_node_t *node, const kv_ring_t *ring, kv_syncer_t *syncer,
                       const kv_coord_transport_t *transport, kv_coord_reply_fn reply,
                       const kv_coord_opts_t *opts, kv_coord_t **out, kv_status_t *st) {
  kv_coord_opts_t defaults = KV_COORD_OPTS_DEFAULT;
  if (!opts) opts = &defaults;
  kv_coord_t *c = calloc(1, sizeof *c);
  if (!c) return kv_status_set(st, KV_ENOMEM, "out of memory creating the coordinator");
  kv_err err = kv_hints_init(&c->hints, node, ring->cfg->node_count, opts->hint_bytes_max,
                             opts->hint_rate_per_s, st);
  if (err != KV_OK) {
    free(c);
    return err;
  }
  if ((err = kv_reaper_init(&c->reaper, node, ring, &c->hints, syncer, reap_synced, c, st)) !=
      KV_OK) {
    kv_hints_deinit(&c->hints);
    free(c);
    return err;
  }
  c->node = node;
  c->ring = ring;
  c->syncer = syncer;
  c->tr = *transport;
  c->reply = reply;
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

static void slot_release(kv_coord_t *c, slot_t *s) {
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
  slot_move(s, SLOT_READING | SLOT_PENDING | SLOT_REPAIRING | SLOT_REPLIED, SLOT_FREE);
  s->gen++;
  uint32_t index = (uint32_t)(s - c->slots);
  uint32_t last = c->active[--c->active_count];
  c->active[s->active_pos] = last;
  c->slots[last].active_pos = s->active_pos;
  c->free_list[c->free_count++] = index;
}

void kv_coord_destroy(kv_coord_t *c) {
  if (!c) return;
  while (c->active_count > 0) slot_release(c, &c->slots[c->active[c->active_count - 1]]);
  kv_hints_deinit(&c->hints);
  kv_xch_deinit(&c->xch);
  kv_reaper_deinit(&c->reaper);
  free(c);
}

static uint64_t slot_id(const kv_coord_t *c, const slot_t *s, uint32_t target) {
  uint64_t index = (uint64_t)(s - c->slots);
  return index << (KV_SLOT_ID_GEN_BITS + KV_SLOT_ID_TARGET_BITS) | (uint64_t)s->gen << KV_SLOT_ID_TARGET_BITS | target;
}

/* The slot and target an id names, or NULL when it is stale or malformed; *repair tells a
 * read repair's ack from a read answer. */
static slot_t *slot_of(kv_coord_t *c, uint64_t id, uint32_t *target, bool *repair) {
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
static bool slot_reads(const slot_t *s) { return s->op == KV_OP_GET || s->state == SLOT_READING; }

static void reply_error(kv_coord_t *c, void *call, const kv_status_t *st) {
  KV_ASSERT(st->code != KV_OK);
  c->reply(call, st, NULL);
}

/* ---- deciding and finishing ------------------------------------------------------ */

static void slot_reply(kv_coord_t *c, slot_t *s, uint64_t now_us) {
  kv_status_t st;
  kv_status_clear(&st);
  s->decided_us = now_us;
  if (s->q.outcome != KV_QUORUM_OK && s->refused.code != KV_OK) {
    /* Overload, not failure: say so (RESOURCE_EXHAUSTED), so the client backs off. */
    reply_error(c, s->call, &s->refused);
  } else if (s->q.outcome != KV_QUORUM_OK) {
    kv_quorum_failure(&s->q, kv_level_name(s->level), s->op == KV_OP_GET ? "answered"
                                                                          : "acknowledged",
                      &st);
    reply_error(c, s->call, &st);
  } else if (s->op == KV_OP_GET) {
    /* The answer takes a copy: the merge goes on gathering late answers for repair. */
    kv_dvv_t copy;
    kv_node_result_t res;
    KV_ASSERT(kv_dvv_copy(&copy, s->answer ? s->answer : s->merged) == KV_OK);
    if (kv_node_answer_resolved(c->node, s->keyspace, s->key, s->key_bytes, s->handler,
                                s->wall_ms, &copy, &res, &st) == KV_OK)
      c->reply(s->call, &st, &res);
    else reply_error(c, s->call, &st);
    kv_node_result_free(&res);
    kv_dvv_deinit(&copy);
  } else {
    c->reply(s->call, &st, s->result);
  }
  s->call = NULL;
  slot_move(s, SLOT_PENDING | SLOT_REPAIRING, SLOT_REPLIED);
}

/* Ends a get whose blocking repairs are done (or failed, or ran out of time). */
static void get_repaired(kv_coord_t *c, slot_t *s, uint64_t now_us) {
  if (!s->repair_failed) {
    slot_reply(c, s, now_us);
    return;
  }
  kv_status_t st;
  kv_status_set(&st, KV_EUNAVAILABLE,
                "%s read answered, but repairing a replica that was behind failed or timed out; "
                "retry",
                kv_level_name(s->level));
  reply_error(c, s->call, &st);
  s->call = NULL;
  slot_move(s, SLOT_PENDING | SLOT_REPAIRING, SLOT_REPLIED);
}

static uint64_t record_hash(const uint8_t *rec, size_t rec_bytes) {
  return XXH64(rec_bytes ? rec : (const uint8_t *)"", rec_bytes, 0);
}

/* ---- sending to a target ---------------------------------------------------------- */

/* A primary is sent a replica write; a fallback (sloppy quorum) the same record as a hint
 * for the primary it stands in for. */
static kv_err target_send_write(kv_coord_t *c, const kv_target_t *t, uint64_t id,
                                const slot_t *s, const uint8_t *rec, size_t rec_bytes,
                                bool durable, kv_status_t *st) {
  kv_msg_t m = kv_msg_write(id, s->keyspace, s->key, s->key_bytes, rec, rec_bytes, durable);
  if (!t->primary) m.hint_for = t->hint_for;
  return c->tr.send(c->tr.arg, t->node, &m, st);
}

static kv_err target_send_read(kv_coord_t *c, const kv_target_t *t, uint64_t id,
                               const slot_t *s, kv_status_t *st) {
  kv_msg_t m = kv_msg_read(id, s->keyspace, s->key, s->key_bytes);
  if (!t->primary) m.hint_for = t->hint_for;
  return c->tr.send(c->tr.arg, t->node, &m, st);
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
  if (target_send_write(c, t, slot_id(c, s, i) | KV_SLOT_ID_REPAIR, s, rec, rec_bytes, false, &st) !=
      KV_OK)
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
static void get_decided(kv_coord_t *c, slot_t *s, uint64_t now_us) {
  if (s->q.outcome != KV_QUORUM_OK || !s->repair_blocking) {
    slot_reply(c, s, now_us);
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
    get_repaired(c, s, now_us);
    return;
  }
  s->answer = malloc(sizeof *s->answer);
  KV_ASSERT(s->answer && kv_dvv_copy(s->answer, s->merged) == KV_OK);
  slot_move(s, SLOT_PENDING, SLOT_REPAIRING);
}

/* A blocking repair's ack (or its failure to be sent). */
static void get_repair_acked(kv_coord_t *c, slot_t *s, uint32_t i, bool ok, uint64_t now_us) {
  if (!s->repair_wait[i]) return; /* a duplicate, or an async repair's ack */
  s->repair_wait[i] = false;
  s->repairs_pending--;
  if (ok) s->held[i] = s->repair_hash;
  else s->repair_failed = true;
  if (s->repairs_pending == 0 && s->state == SLOT_REPAIRING) get_repaired(c, s, now_us);
}

/* Every asked replica has answered (or the deadline passed): replicas still behind the
 * final merge are sent it, and no answer is waited for. */
static void get_repair_async(kv_coord_t *c, slot_t *s) {
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
static bool get_all_answered(const slot_t *s) {
  for (uint32_t i = 0; i < s->q.target_count; i++)
    if (s->asked[i] && s->q.answers[i] == KV_ANSWER_NONE) return false;
  return true;
}

/* The index of the fallback standing in for primary `node` among s's targets, or -1. */
static int stand_in(const slot_t *s, uint32_t node) {
  for (uint32_t j = 0; j < s->q.target_count; j++)
    if (!s->q.targets[j].primary && s->q.targets[j].hint_for == node) return (int)j;
  return -1;
}

static bool stood_in_for(const slot_t *s, uint32_t node) { return stand_in(s, node) >= 0; }

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
static void slot_maybe_finish(kv_coord_t *c, slot_t *s, uint64_t now_us) {
  uint64_t now_ms = now_us / 1000;
  if (s->state == SLOT_READING) return; /* it ends in delete_read_decided */
  if (s->op == KV_OP_GET) {
    if (s->q.outcome == KV_QUORUM_PENDING || s->call) return;
    if (!get_all_answered(s) && now_ms < s->q.deadline_ms) return;
    get_repair_async(c, s);
    slot_release(c, s);
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
  slot_release(c, s);
}

static void get_ask_more(kv_coord_t *c, slot_t *s, uint64_t now_us);
static void delete_read_decided(kv_coord_t *c, slot_t *s, uint64_t now_us);

static void slot_answer(kv_coord_t *c, slot_t *s, uint32_t target, bool ok, uint64_t now_us) {
  bool was_answered = s->q.answers[target] != KV_ANSWER_NONE;
  bool decided = kv_quorum_answer(&s->q, target, ok, now_us / 1000);
  if (ok && !was_answered) s->last_ok_us = s->ack_us[target] = now_us;
  if (decided && s->state == SLOT_READING) {
    delete_read_decided(c, s, now_us); /* the slot went on to the write, or was freed */
    return;
  }
  if (decided && s->op == KV_OP_GET) get_decided(c, s, now_us);
  else if (decided) slot_reply(c, s, now_us);
  if (!decided && !ok && slot_reads(s) && s->q.outcome == KV_QUORUM_PENDING)
    get_ask_more(c, s, now_us);
  else
    slot_maybe_finish(c, s, now_us);
}

/* Targets forwarded through target f (its message failed, or its answer gave no outcome
 * for them) have failed: unanswered, they are never counted. */
static void relayed_fail_rest(kv_coord_t *c, slot_t *s, uint32_t f, uint64_t now_us) {
  uint16_t gen = s->gen;
  for (uint32_t j = 0; j < s->q.target_count; j++) {
    if (s->via[j] != f || s->q.answers[j] != KV_ANSWER_NONE) continue;
    slot_answer(c, s, j, false, now_us);
    if (!slot_live(s, gen)) return;
  }
}

/* Target i failed, and with it the targets forwarded through it. */
static void slot_failed_with_relayed(kv_coord_t *c, slot_t *s, uint32_t i, uint64_t now_us) {
  uint16_t gen = s->gen;
  relayed_fail_rest(c, s, i, now_us);
  if (slot_live(s, gen)) slot_answer(c, s, i, false, now_us);
}

/* ---- requests ----------------------------------------------------------------------- */

static bool node_alive(kv_coord_t *c, uint32_t node) {
  return node == kv_node_self(c->node) || c->tr.alive(c->tr.arg, node);
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

/* The targets of a request: the key's primaries, then (sloppy quorum) the stand-ins for those
 * believed dead (see coord.h). *self_target is this node's index among them, or UINT32_MAX
 * when it is not one of them. */
static uint32_t plan_targets(kv_coord_t *c, const kv_node_plan_t *plan, kv_target_t *targets,
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
    targets[i] = (kv_target_t){.node = pl.node[i], .region = pl.region[i], .primary = true,
                               .local = strcmp(cfg->nodes[pl.node[i]].region, self_region) == 0};
    if (pl.node[i] == self) *self_target = i;
  }
  for (uint32_t i = 0; i < pl.primary_count; i++) {
    int f = stand_in[i];
    if (f < 0) continue;
    KV_ASSERT(count < KV_TARGETS_MAX);
    if (pl.node[f] == self) *self_target = count;
    targets[count++] = (kv_target_t){
        .node = pl.node[f], .region = pl.region[f], .primary = false,
        .local = strcmp(cfg->nodes[pl.node[f]].region, self_region) == 0,
        .hint_for = pl.node[i]};
  }
  return count;
}

/* Whether the live targets could meet the request's need; answers UNAVAILABLE when not. */
static bool targets_possible(kv_coord_t *c, void *call, const kv_node_plan_t *plan,
                             const kv_target_t *targets, uint32_t count, uint32_t self_target) {
  bool alive[KV_TARGETS_MAX];
  for (uint32_t i = 0; i < count; i++) alive[i] = node_alive(c, targets[i].node);
  kv_status_t st;
  kv_status_clear(&st);
  if (kv_quorum_possible(&plan->need, targets, count, alive, kv_level_name(plan->level), &st))
    return true;
  reply_error(c, call, &st);
  return false;
}

/* Sets slot s up to count the plan's need over targets, from start_ms to deadline_ms. */
static void slot_begin(slot_t *s, const kv_node_plan_t *plan, const kv_target_t *targets,
                       uint32_t count, uint32_t self_target, uint64_t start_ms,
                       uint64_t deadline_ms) {
  s->level = plan->level;
  s->self_target = self_target;
  s->sync_pending = false;
  kv_status_clear(&s->refused);
  s->decided_us = s->last_ok_us = 0;
  memset(s->applied_ms, 0, sizeof s->applied_ms);
  memset(s->via, VIA_NONE, sizeof s->via);
  kv_quorum_init(&s->q, &plan->need, targets, count, start_ms, deadline_ms);
}

/* Starts a slot for the request over targets, or answers RESOURCE_EXHAUSTED and returns
 * NULL when the table is full. */
static slot_t *slot_start(kv_coord_t *c, void *call, kv_op_t op, slot_state_t state,
                          const kv_node_plan_t *plan, const kv_target_t *targets,
                          uint32_t count, uint32_t self_target, uint64_t now_us) {
  if (c->free_count == 0) {
    kv_status_t st;
    kv_status_set(&st, KV_EBUSY, "node has %u requests in flight; retry later",
                  KV_COORD_PENDING_MAX);
    reply_error(c, call, &st);
    return NULL;
  }
  uint32_t index = c->free_list[--c->free_count];
  slot_t *s = &c->slots[index];
  s->active_pos = c->active_count;
  c->active[c->active_count++] = index;
  s->op = op;
  s->call = call;
  s->start_us = now_us;
  slot_begin(s, plan, targets, count, self_target, now_us / 1000,
             now_us / 1000 + plan->timeout_ms);
  if (state == SLOT_READING) {
    s->merged = malloc(sizeof *s->merged);
    s->delete_plan = malloc(sizeof *s->delete_plan);
    KV_ASSERT(s->merged && s->delete_plan);
    kv_dvv_init(s->merged);
  }
  slot_move(s, SLOT_FREE, state);
  return s;
}

/* Copies what a slot keeps of its request: the keyspace and key, and its wall-clock start. */
static void slot_keep_key(slot_t *s, const kv_node_req_t *req, uint64_t wall_ms) {
  s->keyspace = strdup(req->keyspace);
  s->key = malloc(req->key_bytes);
  KV_ASSERT(s->keyspace && s->key);
  memcpy(s->key, req->key, req->key_bytes);
  s->key_bytes = req->key_bytes;
  s->wall_ms = wall_ms;
}

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
    if (!targets[i].primary || !c->tr.alive(c->tr.arg, targets[i].node)) continue;
    if (c->tr.forward(c->tr.arg, targets[i].node, call, op, req->raw, req->raw_bytes,
                      plan->timeout_ms, &st) != KV_OK)
      reply_error(c, call, &st);
    return;
  }
  /* Fallbacks alone may meet the level, but none of them may coordinate. */
  kv_status_set(&st, KV_EUNAVAILABLE,
                "%s write needs a live primary replica to coordinate it; all %u are down",
                kv_level_name(plan->level), plan->ks->n);
  reply_error(c, call, &st);
}

/* The syncer made this node's copy of a durable write durable: that is its self-ack. */
static void self_synced(kv_sync_waiter_t *w, const kv_status_t *st, uint64_t mono_us) {
  slot_t *s = (slot_t *)((char *)w - offsetof(slot_t, waiter));
  kv_coord_t *c = s->coord;
  s->sync_pending = false;
  slot_answer(c, s, s->self_target, st->code == KV_OK, mono_us);
}

/* Ends a slot whose request failed before any message left: answers and frees it. */
static void slot_abort(kv_coord_t *c, slot_t *s, const kv_status_t *st) {
  reply_error(c, s->call, st);
  s->call = NULL;
  slot_release(c, s);
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
    if (j < f || !u->primary || !c->tr.alive(c->tr.arg, u->node)) return 0;
    if (j != f) relay[n++] = (kv_relay_target_t){.node = u->node, .id = slot_id(c, s, j)};
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
    kv_msg_t m = kv_msg_write(slot_id(c, s, i), s->keyspace, s->key, s->key_bytes,
                              res->record, res->record_bytes, durable);
    m.relay = relay;
    m.relay_count = n;
    m.relay_wait_ms = timeout_ms / 2 ? timeout_ms / 2 : 1;
    err = c->tr.send(c->tr.arg, t->node, &m, &s->refused);
  } else {
    err = target_send_write(c, t, slot_id(c, s, i), s, res->record, res->record_bytes, durable,
                            &s->refused);
  }
  if (err == KV_OK && !t->local) kv_metrics_add(c->metrics, KV_METRIC_REMOTE_WRITES, 1);
  return err;
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
    slot_abort(c, s, &st);
    return;
  }
  /* The self-ack comes last, so the slot outlives this loop. */
  for (uint32_t i = 0; i < s->q.target_count; i++) {
    if (i == s->self_target || s->via[i] != VIA_NONE) continue;
    /* A primary a fallback stands in for is not sent the write: were it alive after all,
     * its ack and the fallback's would count one replica twice (the hint becomes its copy),
     * so a durable write could be acknowledged at w with w - 1 copies. It counts as failed
     * at once, as a refused connection would. */
    const kv_target_t *t = &s->q.targets[i];
    if ((t->primary && stood_in_for(s, t->node)) ||
        write_send(c, s, i, res, req->durable, plan->timeout_ms) != KV_OK)
      slot_failed_with_relayed(c, s, i, now_us);
  }
  if (req->durable) {
    s->sync_pending = true;
    kv_syncer_push(c->syncer, &s->waiter, self_synced);
  } else {
    slot_answer(c, s, s->self_target, true, now_us);
  }
}

static void delete_read_start(kv_coord_t *c, void *call, const kv_node_req_t *req,
                              const kv_node_plan_t *plan, const kv_target_t *targets,
                              uint32_t count, uint32_t self_target, uint64_t now_us,
                              uint64_t wall_ms);

static void coord_write(kv_coord_t *c, void *call, kv_op_t op, const kv_node_req_t *req,
                        const kv_node_plan_t *plan, uint64_t now_us, uint64_t wall_ms) {
  kv_target_t targets[KV_TARGETS_MAX];
  uint32_t self_target, count = plan_targets(c, plan, targets, &self_target);
  /* Refuse before writing anything: a write that known-dead replicas cannot acknowledge
   * must not land. */
  if (!targets_possible(c, call, plan, targets, count, self_target)) return;
  if (self_target == UINT32_MAX || !targets[self_target].primary) {
    coord_forward(c, call, op, req, plan, targets, count);
    return;
  }
  if (op == KV_OP_DELETE && req->context_bytes == 0) {
    delete_read_start(c, call, req, plan, targets, count, self_target, now_us, wall_ms);
    return;
  }
  slot_t *s = slot_start(c, call, op, SLOT_PENDING, plan, targets, count, self_target, now_us);
  if (!s) return;
  slot_keep_key(s, req, wall_ms);
  write_apply(c, s, req, plan, now_us, wall_ms);
}

/* Takes replica i's answer into the get: merges the record into the running merge and
 * remembers its hash (for read repair). False when it does not decode or the merge would
 * pass a limit. */
static bool get_took(slot_t *s, uint32_t i, const uint8_t *rec, size_t rec_bytes) {
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
static void get_ask(kv_coord_t *c, slot_t *s, uint32_t i, uint64_t now_us) {
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
    bool ok = err == KV_OK && get_took(s, i, rec, rec_bytes);
    free(rec);
    slot_answer(c, s, i, ok, now_us);
    return;
  }
  if (target_send_read(c, t, slot_id(c, s, i), s, &s->refused) != KV_OK)
    slot_answer(c, s, i, false, now_us);
}

/* Asks every replica believed alive, this node first (no network). All are marked asked
 * before any is asked, so the slot stays until each has answered even when the first
 * answer already decides. */
static void get_ask_live(kv_coord_t *c, slot_t *s, uint64_t now_us) {
  uint32_t order[KV_TARGETS_MAX], n = 0;
  if (s->self_target != UINT32_MAX) order[n++] = s->self_target;
  for (uint32_t i = 0; i < s->q.target_count; i++)
    if (i != s->self_target && c->tr.alive(c->tr.arg, s->q.targets[i].node)) order[n++] = i;
  for (uint32_t k = 0; k < n; k++) s->asked[order[k]] = true;
  uint16_t gen = s->gen;
  for (uint32_t k = 0; k < n; k++) {
    get_ask(c, s, order[k], now_us);
    if (!slot_live(s, gen)) return;
  }
}

/* After failed answers: asks replicas not asked yet (those believed dead) until, were every
 * replica asked and not yet failed to answer ok, the read's need could be met. */
static void get_ask_more(kv_coord_t *c, slot_t *s, uint64_t now_us) {
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
    get_ask(c, s, next, now_us);
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
static void coord_get_local(kv_coord_t *c, void *call, const kv_node_req_t *req,
                            const kv_node_plan_t *plan, uint64_t wall_ms) {
  kv_node_result_t res;
  kv_status_t st;
  kv_status_clear(&st);
  kv_err err = req->local ? get_with_hints(c, req, plan, wall_ms, &res, &st)
                          : kv_node_get(c->node, req, plan, wall_ms, &res, &st);
  if (err == KV_OK) c->reply(call, &st, &res);
  else reply_error(c, call, &st);
  kv_node_result_free(&res);
}

/* Whether this node's own answer alone meets the read's need (ONE, or r=1, on a replica). */
static bool self_suffices(const kv_node_plan_t *plan, const kv_target_t *targets,
                          uint32_t count, uint32_t self_target) {
  if (self_target == UINT32_MAX || !targets[self_target].primary) return false;
  bool only_self[KV_TARGETS_MAX] = {false};
  only_self[self_target] = true;
  return kv_quorum_possible(&plan->need, targets, count, only_self, "", NULL);
}

static void coord_get(kv_coord_t *c, void *call, const kv_node_req_t *req,
                      const kv_node_plan_t *plan, uint64_t now_us, uint64_t wall_ms) {
  kv_target_t targets[KV_TARGETS_MAX];
  uint32_t self_target, count = plan_targets(c, plan, targets, &self_target);
  if (!targets_possible(c, call, plan, targets, count, self_target)) return;
  if (self_suffices(plan, targets, count, self_target)) {
    /* This replica's answer alone decides: skip the request table (and read repair). */
    coord_get_local(c, call, req, plan, wall_ms);
    return;
  }
  slot_t *s =
      slot_start(c, call, KV_OP_GET, SLOT_PENDING, plan, targets, count, self_target, now_us);
  if (!s) return;
  slot_keep_key(s, req, wall_ms);
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
  get_ask_live(c, s, now_us);
  if (slot_live(s, gen) && s->q.outcome == KV_QUORUM_PENDING) get_ask_more(c, s, now_us);
}

/* ---- deletes without a context: read, then delete what was read (notes at the top) ------ */

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
  slot_t *s = slot_start(c, call, KV_OP_DELETE, SLOT_READING, &read, targets, count,
                         self_target, now_us);
  if (!s) return;
  slot_keep_key(s, req, wall_ms);
  *s->delete_plan = *plan;
  s->durable = req->durable;
  memset(s->asked, 0, sizeof s->asked);
  uint16_t gen = s->gen;
  if (self_suffices(&read, targets, count, self_target)) {
    s->asked[self_target] = true;
    get_ask(c, s, self_target, now_us);
  } else {
    get_ask_live(c, s, now_us);
  }
  if (slot_live(s, gen) && s->q.outcome == KV_QUORUM_PENDING) get_ask_more(c, s, now_us);
}

/* READING -> FREE: the read failed (or timed out); so does the delete, with the read's status,
 * and nothing is written. */
static void delete_read_failed(kv_coord_t *c, slot_t *s) {
  kv_status_t why, st;
  kv_status_clear(&why);
  if (s->refused.code != KV_OK) why = s->refused;
  else kv_quorum_failure(&s->q, kv_level_name(s->level), "answered", &why);
  kv_status_set(&st, why.code, "a delete without a context reads the key first, and that read "
                "failed, so nothing was deleted: %s", why.msg);
  slot_abort(c, s, &st);
}

/* READING -> PENDING: the read met its level, so the tombstone is written with the context of
 * the merge, at the delete's level, as a delete with that context would be, by the time the
 * request started with (its wall clock moved on by the read's monotonic time). */
static void delete_read_decided(kv_coord_t *c, slot_t *s, uint64_t now_us) {
  if (s->q.outcome != KV_QUORUM_OK) {
    delete_read_failed(c, s);
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
  uint32_t self_target, count = plan_targets(c, plan, targets, &self_target);
  KV_ASSERT(self_target != UINT32_MAX && targets[self_target].primary);
  if (!targets_possible(c, s->call, plan, targets, count, self_target)) {
    s->call = NULL;
    slot_release(c, s);
  } else {
    slot_move(s, SLOT_READING, SLOT_PENDING);
    slot_begin(s, plan, targets, count, self_target, s->q.start_ms, s->q.deadline_ms);
    kv_node_req_t req = {.keyspace = s->keyspace, .key = s->key, .key_bytes = s->key_bytes,
                         .durable = s->durable};
    write_apply(c, s, &req, plan, now_us, s->wall_ms + (now_us - s->start_us) / 1000);
  }
  free(plan);
}

void kv_coord_on_client(kv_coord_t *c, void *call, kv_op_t op, const kv_node_req_t *req,
                      uint64_t mono_us, uint64_t wall_ms) {
  kv_node_plan_t plan;
  kv_status_t st;
  kv_status_clear(&st);
  if (kv_node_plan(c->node, req, op != KV_OP_GET, &plan, &st) != KV_OK) {
    reply_error(c, call, &st);
    return;
  }
  if (op == KV_OP_GET && req->local) coord_get_local(c, call, req, &plan, wall_ms);
  else if (op == KV_OP_GET) coord_get(c, call, req, &plan, mono_us, wall_ms);
  else coord_write(c, call, op, req, &plan, mono_us, wall_ms);
}

/* ---- relaying: the forwarder's side --------------------------------------------------- */

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

static void relay_answer(kv_coord_t *c, uint64_t id, kv_err code, uint64_t applied_ms) {
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

static void relay_tick(kv_coord_t *c, uint64_t now_us) {
  for (uint32_t i = 0; i < KV_RELAYS_MAX && c->relay_count > 0; i++)
    if (c->relays[i].in_use && now_us >= c->relays[i].deadline_us) relay_finish(c, &c->relays[i]);
}

/* Whether a relay can start: its wait, the nodes it names, and room in the table (see
 * kv_coord_on_peer_request). */
static kv_err relay_check(kv_coord_t *c, const kv_relay_target_t *targets, uint32_t count,
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

/* Starts a relay relay_check admitted. */
static void relay_start(kv_coord_t *c, const char *keyspace, const uint8_t *key,
                        size_t key_bytes, const uint8_t *rec, size_t rec_bytes, bool durable,
                        const kv_relay_target_t *targets, uint32_t count, uint32_t wait_ms,
                        kv_coord_relay_fn done, void *arg, uint64_t mono_us) {
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
    kv_err send = c->tr.send(c->tr.arg, targets[k].node, &m, &send_st);
    if (send != KV_OK) relay_answer(c, relay_id(c, r, k), send, 0);
  }
  kv_metrics_add(c->metrics, KV_METRIC_RELAYED_WRITES, 1);
  if (--r->pending == 0) relay_finish(c, r);
}

/* One answer from replica `target` of slot s (see kv_coord_on_peer_reply). */
static void coord_took(kv_coord_t *c, slot_t *s, uint32_t target, bool repair, kv_err code,
                       const uint8_t *rec, size_t rec_bytes, uint64_t applied_ms,
                       uint64_t now_us) {
  bool ok = code == KV_OK;
  if (repair) {
    get_repair_acked(c, s, target, ok, now_us);
    slot_maybe_finish(c, s, now_us);
    return;
  }
  /* A duplicate is merged again (merging is idempotent) and left to the counter to ignore. */
  if (ok && slot_reads(s)) ok = get_took(s, target, rec, rec_bytes);
  /* The first ack's time stands, as the first ack is the one counted. */
  if (ok && !slot_reads(s) && s->q.answers[target] == KV_ANSWER_NONE)
    s->applied_ms[target] = applied_ms;
  slot_answer(c, s, target, ok, now_us);
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
    if (slot_of(c, relayed[k].id, &j, &repair) != s || repair || s->via[j] != f) continue;
    coord_took(c, s, j, false, relayed[k].code, NULL, 0, relayed[k].applied_ms, now_us);
    if (!slot_live(s, gen)) return;
  }
  relayed_fail_rest(c, s, f, now_us);
}

/* An answer, to whichever part of the core its id names (ids.h). */
static void coord_answer_one(kv_coord_t *c, const kv_msg_answer_t *a, uint64_t now_us) {
  uint64_t id = a->id;
  kv_err code = a->code;
  if (id & KV_HINT_ID_BIT) {
    kv_hints_answer(&c->hints, id, code);
    return;
  }
  if (id & KV_AAE_ID_BIT) {
    kv_xch_answer(&c->xch, &c->tr, id, code, a->tree, a->rec, a->rec_bytes, now_us);
    return;
  }
  if (id & KV_REAP_ID_BIT) {
    kv_reaper_answer(&c->reaper, &c->tr, id, code, a->rec, a->rec_bytes, now_us);
    return;
  }
  if (id & KV_RELAY_ID_BIT) {
    relay_answer(c, id, code, a->applied_ms);
    return;
  }
  /* Fault point: the same answer again, as a network that duplicates would deliver it. */
  for (int copy = 0; copy == 0 || (copy == 1 && KV_BUGGIFY()); copy++) {
    uint32_t target;
    bool repair;
    slot_t *s = slot_of(c, id, &target, &repair);
    /* This node's own answers never come over the wire. */
    if (!s || target == s->self_target) return;
    if (!repair) coord_took_relayed(c, s, target, a->relayed, a->relayed_count, now_us);
    if ((s = slot_of(c, id, &target, &repair)) != NULL)
      coord_took(c, s, target, repair, code, a->rec, a->rec_bytes, a->applied_ms, now_us);
  }
}

void kv_coord_on_peer_reply(kv_coord_t *c, const kv_msg_answer_t *a, uint64_t mono_us) {
  coord_answer_one(c, a, mono_us);
}

void kv_coord_on_tick(kv_coord_t *c, uint64_t mono_us) {
  /* Backwards: finishing a slot moves the last active one into its place. */
  for (uint32_t i = c->active_count; i-- > 0;) {
    slot_t *s = &c->slots[c->active[i]];
    uint64_t now_ms = mono_us / 1000;
    if (kv_quorum_tick(&s->q, now_ms)) {
      if (s->state == SLOT_READING) {
        delete_read_failed(c, s); /* its read timed out: answered and freed */
        continue;
      }
      slot_reply(c, s, mono_us);
    } else if (s->state == SLOT_REPAIRING && now_ms >= s->q.deadline_ms) {
      s->repair_failed = true;
      get_repaired(c, s, mono_us);
    }
    slot_maybe_finish(c, s, mono_us);
  }
  relay_tick(c, mono_us);
  kv_hints_tick(&c->hints, &c->tr, mono_us);
  kv_xch_tick(&c->xch, &c->tr, mono_us);
  kv_reaper_tick(&c->reaper, &c->tr, mono_us);
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

/* ---- the replica's side of peer messages --------------------------------------------- */

/* A fallback keeps hints for other nodes only. */
static kv_err hint_target(kv_coord_t *c, uint32_t hint_for, kv_status_t *st) {
  KV_ASSERT(hint_for < c->ring->cfg->node_count);
  if (hint_for == kv_node_self(c->node))
    return kv_status_set(st, KV_EINVAL, "hint_for names this node (%s); hints are kept for "
                         "other nodes", c->ring->cfg->nodes[hint_for].id);
  return KV_OK;
}

static kv_err replica_reap(kv_coord_t *c, const kv_msg_t *m, kv_status_t *st) {
  if (!kv_config_keyspace(c->ring->cfg, m->keyspace))
    return kv_status_set(st, KV_EINVAL, "reap names keyspace '%.*s', which this node does not "
                         "have", (int)KV_KEYSPACE_NAME_BYTES_MAX, m->keyspace);
  kv_dvv_t tomb;
  kv_err err = kv_dvv_decode(m->rec, m->rec_bytes, &tomb, st);
  if (err != KV_OK) return err;
  err = kv_hints_forget(&c->hints, m->keyspace, m->key, m->key_bytes, &tomb.cc, st);
  if (err == KV_OK && !m->hints_only)
    err = kv_node_reap(c->node, m->keyspace, m->key, m->key_bytes,
                       kv_hash_leaf(kv_hash_key(m->keyspace, m->key, m->key_bytes), m->rec,
                                    m->rec_bytes),
                       st);
  kv_dvv_deinit(&tomb);
  return err;
}

/* A write: merged into the replica, or into the hint a fallback keeps. A forwarder's is
 * refused whole when its relay cannot start, else relayed whatever became of the merge
 * (*relaying: done will be called). */
static kv_err replica_write(kv_coord_t *c, const kv_msg_t *m, kv_coord_relay_fn done,
                            void *arg, uint64_t mono_us, bool *relaying, kv_status_t *st) {
  kv_err err = m->hint_for != KV_NODE_NONE ? hint_target(c, m->hint_for, st) : KV_OK;
  if (err == KV_OK && m->relay_count > 0)
    err = relay_check(c, m->relay, m->relay_count, m->relay_wait_ms, st);
  if (err != KV_OK) return err;
  err = m->hint_for != KV_NODE_NONE
            ? kv_hints_merge(&c->hints, m->hint_for, m->keyspace, m->key, m->key_bytes, m->rec,
                             m->rec_bytes, st)
            : kv_node_merge(c->node, m->keyspace, m->key, m->key_bytes, m->rec, m->rec_bytes, st);
  if (m->relay_count == 0) return err;
  *relaying = true;
  relay_start(c, m->keyspace, m->key, m->key_bytes, m->rec, m->rec_bytes, m->durable, m->relay,
              m->relay_count, m->relay_wait_ms, done, arg, mono_us);
  return err;
}

void kv_coord_on_peer_request(kv_coord_t *c, const kv_msg_t *m, uint64_t mono_us,
                              uint64_t wall_ms, kv_coord_relay_fn done, void *arg,
                              kv_peer_result_t *out) {
  memset(out, 0, sizeof *out);
  kv_status_clear(&out->st);
  kv_status_t *st = &out->st;
  switch (m->kind) {
    case KV_MSG_WRITE:
      out->code = replica_write(c, m, done, arg, mono_us, &out->relaying, st);
      out->applied_ms = wall_ms;
      out->after_sync = out->code == KV_OK && m->durable;
      break;
    case KV_MSG_READ:
      out->code = m->hint_for != KV_NODE_NONE ? hint_target(c, m->hint_for, st) : KV_OK;
      if (out->code == KV_OK)
        out->code = m->hint_for != KV_NODE_NONE
                        ? kv_hints_read(&c->hints, m->hint_for, m->keyspace, m->key,
                                        m->key_bytes, &out->rec, &out->rec_bytes, st)
                        : kv_node_read_record(c->node, m->keyspace, m->key, m->key_bytes,
                                              &out->rec, &out->rec_bytes, st);
      break;
    case KV_MSG_TREE:
      out->code = kv_aae_serve(c->node, &m->tree, &out->tree, st);
      break;
    case KV_MSG_REAP:
      out->code = replica_reap(c, m, st);
      /* A forget is answered once the hints' deletions are on disk (reaper.h). */
      out->after_sync = out->code == KV_OK && m->hints_only;
      break;
    default:
      out->code = kv_status_set(st, KV_EINVAL, "peer message %llu has no body",
                                (unsigned long long)m->id);
  }
}

void kv_peer_result_deinit(kv_peer_result_t *r) {
  free(r->rec);
  kv_aae_answer_free(&r->tree);
  memset(r, 0, sizeof *r);
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
