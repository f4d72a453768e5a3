/* world.c: events, nodes, the network and the replica side of peer messages (world.h).
 *
 * Event queue: a binary min-heap on (at_us, seq); seq is the order of scheduling, so events
 * at the same time run in the order they were made and a run never depends on anything but
 * its seed.
 *
 * A node's process: world_restart makes it (store open, kv_node, kv_coord, syncer, a tick
 * loop: the core sends its own heartbeats), world_crash ends it (the core is destroyed without replies, as a
 * killed process answers nothing; the store keeps what its crash kind keeps). Events and
 * replies carry the life they belong to and are dropped when it has ended. */
#include "world.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

world_t *sim_world;

/* ---- the generator and fault points --------------------------------------------------- */

static uint64_t rng[4];

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void sim_rng_seed(uint64_t seed) {
  for (int i = 0; i < 4; i++) { /* splitmix64 expands the seed */
    seed += 0x9e3779b97f4a7c15ull;
    uint64_t z = seed;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    rng[i] = z ^ (z >> 31);
  }
}

uint64_t sim_rand(void) { /* xoshiro256** */
  uint64_t result = rotl(rng[1] * 5, 7) * 9;
  uint64_t t = rng[1] << 17;
  rng[2] ^= rng[0];
  rng[3] ^= rng[1];
  rng[1] ^= rng[2];
  rng[0] ^= rng[3];
  rng[2] ^= t;
  rng[3] = rotl(rng[3], 45);
  return result;
}

uint64_t sim_below(uint64_t n) {
  KV_ASSERT(n > 0);
  return sim_rand() % n;
}

bool sim_chance(double p) { return (double)(sim_rand() >> 11) * 0x1.0p-53 < p; }

/* Exponential with the given mean, capped at 20 means. */
static uint64_t sim_exponential(uint64_t mean) {
  double u = (double)((sim_rand() >> 11) + 1) * 0x1.0p-53;
  double x = -log(u) * (double)mean;
  return x > 20.0 * (double)mean ? 20 * mean : (uint64_t)x;
}

#define BUGGIFY_SITES_MAX 64u

typedef struct {
  const char *file;
  int line;
  bool on;
} site_t;

static site_t sites[BUGGIFY_SITES_MAX];
static uint32_t site_count;

/* A fault point is switched on for the whole run (probability 1/4) the first time it is
 * reached, and then fires 1 time in 20. Only while faults are on. */
bool kv_sim_buggify(const char *file, int line) {
  if (!sim_world || !sim_world->faults_on) return false;
  uint32_t i = 0;
  while (i < site_count && (sites[i].line != line || strcmp(sites[i].file, file) != 0)) i++;
  if (i == site_count) {
    KV_ASSERT(site_count < BUGGIFY_SITES_MAX);
    sites[site_count++] = (site_t){.file = file, .line = line, .on = sim_chance(0.25)};
  }
  return sites[i].on && sim_chance(0.05);
}

/* ---- tracing and failures ----------------------------------------------------------- */

void world_trace(world_t *w, uint64_t v) { XXH64_update(w->trace, &v, sizeof v); }

void world_fail(world_t *w, const char *fmt, ...) {
  if (w->failure[0]) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(w->failure, sizeof w->failure, fmt, ap);
  va_end(ap);
}

const uint8_t *sim_key(uint32_t i, size_t *bytes) {
  static char keys[SIM_KEYS_MAX][8];
  KV_ASSERT(i < SIM_KEYS_MAX);
  *bytes = (size_t)snprintf(keys[i], sizeof keys[i], "k%u", i);
  return (const uint8_t *)keys[i];
}

uint32_t sim_key_index(const uint8_t *key, size_t key_bytes) {
  KV_ASSERT(key_bytes >= 2 && key[0] == 'k');
  uint32_t i = 0;
  for (size_t j = 1; j < key_bytes; j++) i = i * 10 + (uint32_t)(key[j] - '0');
  KV_ASSERT(i < SIM_KEYS_MAX);
  return i;
}

uint64_t world_wall_ms(const world_t *w, uint32_t node) {
  /* An epoch-like origin, so timestamps look like the runtime's. */
  return (uint64_t)((int64_t)(1700000000000ull + w->now_us / 1000) + w->nodes[node].skew_ms);
}

/* ---- the event queue ---------------------------------------------------------------- */

static bool ev_before(const event_t *a, const event_t *b) {
  return a->at_us < b->at_us || (a->at_us == b->at_us && a->seq < b->seq);
}

void world_schedule(world_t *w, uint64_t at_us, ev_type_t type, uint32_t node, uint64_t a,
                    uint64_t b, msg_t *msg) {
  if (w->heap_count == w->heap_cap) {
    w->heap_cap = w->heap_cap ? w->heap_cap * 2 : 1024;
    w->heap = realloc(w->heap, w->heap_cap * sizeof *w->heap);
    KV_ASSERT(w->heap != NULL);
  }
  event_t ev = {.at_us = at_us < w->now_us ? w->now_us : at_us, .seq = w->seq++, .type = type,
                .node = node, .a = a, .b = b, .msg = msg};
  size_t i = w->heap_count++;
  while (i > 0 && ev_before(&ev, &w->heap[(i - 1) / 2])) {
    w->heap[i] = w->heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  w->heap[i] = ev;
}

static event_t heap_pop(world_t *w) {
  event_t top = w->heap[0];
  event_t last = w->heap[--w->heap_count];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    const event_t *mv = &last;
    if (l < w->heap_count && ev_before(&w->heap[l], mv)) m = l, mv = &w->heap[l];
    if (r < w->heap_count && ev_before(&w->heap[r], mv)) m = r;
    if (m == i) break;
    w->heap[i] = w->heap[m];
    i = m;
  }
  if (w->heap_count > 0) w->heap[i] = last;
  return top;
}

/* ---- messages and the network ------------------------------------------------------- */

msg_t *msg_new(msg_type_t type, uint32_t from, uint32_t to) {
  msg_t *m = calloc(1, sizeof *m);
  KV_ASSERT(m != NULL);
  m->type = type;
  m->from = from;
  m->to = to;
  m->hint_for = UINT32_MAX;
  return m;
}

void sim_result_free(sim_result_t *r) {
  if (r->code == KV_OK) kv_dvv_deinit(&r->object);
  free(r->context);
  r->context = NULL;
  r->code = KV_EINTERNAL;
}

void msg_free(msg_t *m) {
  if (!m) return;
  for (uint32_t i = 0; i < m->sub_count; i++) msg_free(m->sub[i]);
  free(m->sub);
  free(m->rec);
  free(m->parts);
  free(m->segs);
  free(m->relay);
  free(m->relayed);
  kv_aae_answer_free(&m->tree);
  if (m->type == MSG_FORWARD_REPLY) sim_result_free(&m->result);
  free(m);
}

static void *dup_array(const void *p, size_t bytes) {
  if (!p) return NULL;
  void *c = malloc(bytes ? bytes : 1);
  KV_ASSERT(c != NULL);
  memcpy(c, p, bytes);
  return c;
}

static msg_t *msg_copy(const msg_t *m) {
  msg_t *c = msg_new(m->type, m->from, m->to);
  *c = *m;
  c->rec = dup_array(m->rec, m->rec_bytes);
  c->parts = dup_array(m->parts, m->part_count * sizeof *m->parts);
  c->segs = dup_array(m->segs, m->seg_count * sizeof *m->segs);
  c->relay = dup_array(m->relay, m->relay_count * sizeof *m->relay);
  c->relayed = dup_array(m->relayed, m->relayed_count * sizeof *m->relayed);
  c->tree.hashes = dup_array(m->tree.hashes, m->tree.hash_count * sizeof *m->tree.hashes);
  c->tree.keys = dup_array(m->tree.keys, m->tree.key_count * sizeof *m->tree.keys);
  for (uint32_t i = 0; i < m->tree.key_count; i++)
    c->tree.keys[i].data = dup_array(m->tree.keys[i].data, m->tree.keys[i].len);
  if (m->type == MSG_FORWARD_REPLY && m->result.code == KV_OK) {
    const sim_result_t *r = &m->result;
    KV_ASSERT(kv_dvv_copy(&c->result.object, &r->object) == KV_OK);
    c->result.context = malloc(r->context_bytes ? r->context_bytes : 1);
    KV_ASSERT(c->result.context != NULL);
    if (r->context_bytes) memcpy(c->result.context, r->context, r->context_bytes);
  }
  if (m->sub) {
    c->sub = calloc(m->sub_count ? m->sub_count : 1, sizeof *c->sub);
    KV_ASSERT(c->sub != NULL);
    for (uint32_t i = 0; i < m->sub_count; i++) c->sub[i] = msg_copy(m->sub[i]);
  }
  return c;
}

static void net_put(world_t *w, msg_t *m) {
  uint64_t delay = w->net.delay_us + sim_exponential(w->net.tail_us) + w->clog_us[m->from][m->to];
  w->link_in_flight[m->from][m->to]++;
  if (w->link_in_flight[m->from][m->to] > w->link_in_flight_max)
    w->link_in_flight_max = w->link_in_flight[m->from][m->to];
  world_schedule(w, w->now_us + delay, EV_DELIVER, m->to, 0, 0, m);
}

bool world_send(world_t *w, msg_t *m) {
  KV_ASSERT(m->from < w->node_count && m->to < w->node_count && m->from != m->to);
  m->from_life = w->nodes[m->from].life;
  if (w->link_in_flight[m->from][m->to] >= KV_PEER_QUEUE_MAX) {
    msg_free(m);
    return false;
  }
  bool lost = w->cut[m->from][m->to] || (w->faults_on && sim_chance(w->net.drop));
  if (lost) {
    msg_free(m);
    return true;
  }
  if (w->faults_on && sim_chance(w->net.dup)) net_put(w, msg_copy(m));
  net_put(w, m);
  return true;
}

/* ---- the transport the coordinator is given ------------------------------------------ */

static uint32_t node_index(const world_t *w, const sim_node_t *n) {
  return (uint32_t)(n - w->nodes);
}

const kv_ring_t *world_ring(const world_t *w, uint32_t node) {
  KV_ASSERT(w->nodes[node].up);
  return kv_coord_ring(w->nodes[node].coord);
}

bool world_ring_settled(const world_t *w) {
  for (uint32_t i = 0; i < w->node_count; i++) {
    if (!w->nodes[i].up) return false;
    const kv_ring_t *r = world_ring(w, i), *first = world_ring(w, 0);
    if (r->phase != KV_RING_STABLE || r->epoch != first->epoch ||
        memcmp(r->to.owner, first->to.owner, r->partitions) != 0)
      return false;
  }
  return true;
}

bool world_believes_alive(const world_t *w, uint32_t node, uint32_t peer) {
  kv_peer_liveness_t lv;
  kv_coord_liveness(w->nodes[node].coord, peer, w->now_us, &lv);
  return lv.up;
}

/* The transport's pack: m is copied into a message of the simulated network. */
static kv_err tr_pack(void *arg, uint32_t peer, const kv_msg_t *m, kv_link_item_t *out,
                      kv_status_t *st) {
  static const msg_type_t types[] = {[KV_MSG_WRITE] = MSG_WRITE, [KV_MSG_READ] = MSG_READ,
                                     [KV_MSG_TREE] = MSG_TREE, [KV_MSG_REAP] = MSG_REAP,
                                     [KV_MSG_RING] = MSG_RING};
  world_t *w = sim_world;
  KV_ASSERT(m->hint_for == KV_NODE_NONE || (m->hint_for < w->node_count && m->hint_for != peer));
  msg_t *c = msg_new(types[m->kind], node_index(w, arg), peer);
  c->id = m->id;
  c->hint_for = m->hint_for;
  c->epoch = m->epoch;
  if (m->kind == KV_MSG_RING) {
    c->rec = dup_array(m->rec, m->rec_bytes);
    c->rec_bytes = m->rec_bytes;
  } else if (m->kind == KV_MSG_TREE) {
    c->tree_kind = m->tree.kind;
    c->part_count = m->tree.partition_count;
    c->parts = dup_array(m->tree.partitions, m->tree.partition_count * sizeof *m->tree.partitions);
    c->seg_count = m->tree.segment_count;
    c->segs = dup_array(m->tree.segments, m->tree.segment_count * sizeof *m->tree.segments);
  } else {
    c->key = sim_key_index(m->key, m->key_bytes);
    c->rec = dup_array(m->rec, m->rec_bytes);
    c->rec_bytes = m->rec_bytes;
  }
  c->durable = m->durable;
  c->relay = dup_array(m->relay, m->relay_count * sizeof *m->relay);
  c->relay_count = m->relay_count;
  c->relay_wait_ms = m->relay_wait_ms;
  c->hints_only = m->hints_only;
  *out = (kv_link_item_t){.id = m->id, .data = c};
  return KV_OK;
}

static void tr_discard(void *arg, kv_link_item_t *item) { msg_free(item->data); }

/* The transport's send_batch: one network message carrying the batch's messages, as
 * peer_rpc.c's one Batch call, with its deadline (EV_BATCH_DEADLINE). The network delays each
 * batch alike, so batches in flight together to one peer may arrive in any order. */
static bool tr_send_batch(void *arg, uint32_t peer, uint32_t slot, const kv_link_item_t *items,
                          uint32_t count, uint32_t deadline_ms) {
  world_t *w = sim_world;
  sim_node_t *n = arg;
  uint32_t from = node_index(w, n);
  KV_ASSERT(slot < KV_PEER_WINDOW && n->batch_seq[peer][slot] == 0);
  msg_t *b = msg_new(MSG_BATCH, from, peer);
  b->id = ++w->batch_seq;
  b->sub = calloc(count ? count : 1, sizeof *b->sub);
  KV_ASSERT(b->sub != NULL);
  for (uint32_t i = 0; i < count; i++) b->sub[i] = items[i].data;
  b->sub_count = count;
  n->batch_seq[peer][slot] = b->id;
  world_schedule(w, w->now_us + deadline_ms * 1000ull, EV_BATCH_DEADLINE, from, n->life,
                 (uint64_t)peer << 56 | b->id, NULL);
  KV_ASSERT(world_send(w, b)); /* a window per link, and forwards: never near the bound */
  return true;
}

static kv_err tr_forward(void *arg, uint32_t peer, void *call, kv_op_t op,
                         const uint8_t *request, size_t request_bytes, uint32_t timeout_ms,
                         kv_status_t *st) {
  world_t *w = sim_world;
  msg_t *m = msg_new(MSG_FORWARD, node_index(w, arg), peer);
  m->id = (uint64_t)(uintptr_t)call;
  if (world_send(w, m)) return KV_OK;
  return kv_status_set(st, KV_EBUSY, "the queue to peer %u is full", peer);
}

/* A batch to peer ended at node: answered (reply, its code KV_OK), refused (reply with an
 * error: the peer's process is gone), or past its deadline (reply NULL). Stale ends (a
 * duplicate's reply, a deadline after the reply) are no batch in flight on this link and
 * change nothing. */
static void batch_ended(world_t *w, sim_node_t *n, uint32_t peer, uint64_t seq,
                        const msg_t *reply) {
  uint32_t slot = 0;
  while (slot < KV_PEER_WINDOW && n->batch_seq[peer][slot] != seq) slot++;
  if (slot == KV_PEER_WINDOW) return;
  n->batch_seq[peer][slot] = 0;
  if (!reply) {
    kv_coord_on_batch_failed(n->coord, peer, slot, KV_LINK_TIMED_OUT, "DEADLINE_EXCEEDED",
                             w->now_us);
    return;
  }
  if (reply->code != KV_OK) {
    kv_coord_on_batch_failed(n->coord, peer, slot, KV_LINK_FAILED,
                             "UNAVAILABLE: connection refused", w->now_us);
    return;
  }
  kv_msg_answer_t *answers = calloc(reply->sub_count ? reply->sub_count : 1, sizeof *answers);
  KV_ASSERT(answers != NULL);
  for (uint32_t i = 0; i < reply->sub_count; i++) {
    const msg_t *m = reply->sub[i];
    bool tree = m->type == MSG_TREE_ANSWER && m->code == KV_OK &&
                (m->tree.hash_count > 0 || m->tree.key_count > 0);
    answers[i] = (kv_msg_answer_t){.id = m->id, .code = m->code, .rec = m->rec,
                                   .rec_bytes = m->rec_bytes, .applied_ms = m->applied_ms,
                                   .relayed = m->relayed, .relayed_count = m->relayed_count,
                                   .tree = tree ? &m->tree : NULL};
  }
  kv_coord_on_batch_reply(n->coord, peer, slot, answers, reply->sub_count, w->now_us);
  free(answers);
}

/* The memory store's removal hook: only tombstone reaping removes records; the checkers
 * note when. */
static void world_reaped(void *arg, const void *key, size_t key_bytes) {
  world_t *w = arg;
  w->reaped_us[sim_key_index(key, key_bytes)] = w->now_us;
}

/* ---- the replica side of peer batches (server_rpc.c's handle_peer_batch) --------------- */

/* A batch being answered (server_rpc.c's batch_t): its answers wait for the fsync of its
 * durable writes and for the relays of the writes it forwards, and leave together, in one
 * reply, once `waiting` (those, and a hold of the handler's own while it runs the messages)
 * is back to 0. A failed fsync fails the whole batch. Kept in its node's list, which a crash
 * frees. */
typedef struct rbatch rbatch_t;

typedef struct {
  rbatch_t *batch;
  uint32_t index;               /* the answer its relay's outcomes go in */
} relay_ctx_t;

struct rbatch {
  kv_sync_waiter_t waiter;       /* first: the waiter is the allocation */
  msg_t *reply;                  /* MSG_BATCH_REPLY, its answers in sub[] */
  relay_ctx_t *relays;           /* one per message */
  uint32_t waiting;
  uint32_t node;
  rbatch_t *next;
};

static void rbatch_release(rbatch_t *b) {
  if (--b->waiting > 0) return;
  rbatch_t **at = &sim_world->nodes[b->node].rbatches;
  while (*at != b) at = &(*at)->next;
  *at = b->next;
  world_send(sim_world, b->reply);
  free(b->relays);
  free(b);
}

static void rbatch_free(rbatch_t *b) {
  msg_free(b->reply);
  free(b->relays);
  free(b);
}

static void rbatch_synced(kv_sync_waiter_t *wt, const kv_status_t *st, uint64_t mono_us) {
  rbatch_t *b = (rbatch_t *)wt;
  if (st->code != KV_OK) b->reply->code = st->code;
  rbatch_release(b);
}

static void rbatch_relayed(void *arg, const kv_relay_outcome_t *outcomes, uint32_t count) {
  relay_ctx_t *ctx = arg;
  msg_t *a = ctx->batch->reply->sub[ctx->index];
  a->relayed = dup_array(outcomes, count * sizeof *outcomes);
  a->relayed_count = count;
  rbatch_release(ctx->batch);
}

/* A node's SYNC effect (sync.h): its fsync is done after a drawn disk time (EV_SYNC). */
static void sync_wanted(void *arg) {
  world_t *w = sim_world;
  sim_node_t *n = arg;
  uint32_t i = node_index(w, n);
  uint64_t delay = w->net.sync_us + sim_exponential(w->net.sync_us / 4 + 1);
  /* A slow disk: now and then an fsync takes a long time (a busy device, a full queue). */
  if (w->faults_on && sim_chance(w->net.slow_sync)) delay += 20000 + sim_below(300000);
  world_schedule(w, w->now_us + delay, EV_SYNC, i, n->life, 0, NULL);
}

/* One message of batch b, the core's one dispatcher (kv_coord_on_peer_request) as
 * server_rpc.c's peer_message_run runs it, into answer `index` of b's reply. True when the
 * answer waits for the next fsync. */
static bool replica_handle(world_t *w, sim_node_t *n, rbatch_t *b, uint32_t index,
                           const msg_t *m) {
  static const kv_msg_kind_t kinds[] = {[MSG_WRITE] = KV_MSG_WRITE, [MSG_READ] = KV_MSG_READ,
                                        [MSG_TREE] = KV_MSG_TREE, [MSG_REAP] = KV_MSG_REAP,
                                        [MSG_RING] = KV_MSG_RING};
  kv_msg_t v = KV_MSG_INIT(kinds[m->type], m->id);
  v.epoch = m->epoch;
  if (m->type == MSG_TREE) {
    v.tree = (kv_aae_req_t){.kind = m->tree_kind, .keyspace = SIM_KEYSPACE,
                            .partitions = m->parts, .partition_count = m->part_count,
                            .segments = m->segs, .segment_count = m->seg_count};
  } else if (m->type != MSG_RING) { /* a ring is only rec */
    v.keyspace = SIM_KEYSPACE;
    v.key = sim_key(m->key, &v.key_bytes);
  }
  v.rec = m->rec;
  v.rec_bytes = m->rec_bytes;
  v.hint_for = m->hint_for;
  v.durable = m->durable;
  v.relay = m->relay;
  v.relay_count = m->relay_count;
  v.relay_wait_ms = m->relay_wait_ms;
  v.hints_only = m->hints_only;

  msg_t *a = msg_new(m->type == MSG_TREE ? MSG_TREE_ANSWER : MSG_ANSWER, m->to, m->from);
  a->id = m->id;
  a->key = m->key;
  b->reply->sub[index] = a;
  relay_ctx_t *ctx = &b->relays[index];
  *ctx = (relay_ctx_t){.batch = b, .index = index};
  if (m->relay_count > 0) {
    b->waiting++; /* the relay, unless it is refused */
    w->relays++;
  }
  kv_peer_result_t r;
  kv_coord_on_peer_request(n->coord, &v, w->now_us, world_wall_ms(w, m->to), rbatch_relayed,
                           ctx, &r);
  if (m->relay_count > 0 && !r.relaying) b->waiting--; /* refused whole: no relay to wait for */
  a->code = r.code;
  a->applied_ms = r.applied_ms;
  a->rec = r.rec;
  a->rec_bytes = r.rec_bytes;
  a->tree = r.tree;
  r.rec = NULL;
  memset(&r.tree, 0, sizeof r.tree);
  if (m->hint_for != KV_NODE_NONE && r.code == KV_OK) {
    w->fallback_writes += m->type == MSG_WRITE;
    w->fallback_reads += m->type == MSG_READ;
  }
  bool after_sync = r.after_sync;
  kv_peer_result_deinit(&r);
  return after_sync;
}

/* A batch arrives at node n: each message is run, and the one reply leaves once every answer
 * is ready. */
static void replica_batch(world_t *w, sim_node_t *n, const msg_t *m) {
  rbatch_t *b = calloc(1, sizeof *b);
  KV_ASSERT(b != NULL);
  b->reply = msg_new(MSG_BATCH_REPLY, m->to, m->from);
  b->reply->id = m->id;
  b->reply->to_life = m->from_life; /* answered on the call the asker made */
  b->reply->sub = calloc(m->sub_count ? m->sub_count : 1, sizeof *b->reply->sub);
  b->relays = calloc(m->sub_count ? m->sub_count : 1, sizeof *b->relays);
  KV_ASSERT(b->reply->sub && b->relays);
  b->reply->sub_count = m->sub_count;
  b->node = node_index(w, n);
  b->waiting = 1; /* this function's hold */
  b->next = n->rbatches;
  n->rbatches = b;
  bool sync = false;
  for (uint32_t i = 0; i < m->sub_count; i++) sync |= replica_handle(w, n, b, i, m->sub[i]);
  if (sync) {
    b->waiting++;
    kv_syncer_push(&n->syncer, &b->waiter, rbatch_synced);
  }
  rbatch_release(b);
}

/* ---- nodes -------------------------------------------------------------------------- */

static void world_journal_sink(void *arg, const kv_journal_entry_t *e);

void world_restart(world_t *w, uint32_t i) {
  sim_node_t *n = &w->nodes[i];
  KV_ASSERT(!n->up);
  kv_status_t st;
  kv_status_clear(&st);
  char disk[16];
  snprintf(disk, sizeof disk, "n%u", i + 1);
  uint64_t incarnation = 0;
  while (incarnation == 0) incarnation = sim_rand();
  n->store = sim_store_open(disk, incarnation);
  sim_store_on_remove(n->store, world_reaped, w);
  sim_store_storage(n->store, &n->storage);
  KV_ASSERT(kv_node_create(&w->cfg, w->cfg.nodes[i].id, &n->storage, &n->node, &st) == KV_OK);
  kv_journal_set_sink(kv_node_journal(n->node), world_journal_sink, w);
  kv_syncer_init(&n->syncer, sync_wanted, n);
  n->tr = (kv_coord_transport_t){.arg = n, .pack = tr_pack, .send_batch = tr_send_batch,
                                 .discard = tr_discard, .forward = tr_forward};
  KV_ASSERT(kv_coord_create(n->node, &w->ring, &n->syncer, &n->tr, workload_reply,
                            &w->coord_opts, &n->coord, &st) == KV_OK);
  n->up = true;
  n->life++;
  memset(n->batch_seq, 0, sizeof n->batch_seq);
  world_schedule(w, w->now_us + sim_below(SIM_TICK_US), EV_TICK, i, n->life, 0, NULL);
}

bool world_crashed_between(const world_t *w, uint32_t node, uint64_t from_us, uint64_t to_us) {
  const sim_node_t *n = &w->nodes[node];
  for (uint32_t k = 0; k < n->crash_count; k++)
    if (n->crashes_us[k] >= from_us && n->crashes_us[k] <= to_us) return true;
  return false;
}

void world_crash(world_t *w, uint32_t i, bool power_loss) {
  sim_node_t *n = &w->nodes[i];
  KV_ASSERT(n->up);
  /* The syncer's waiters live in coordinator slots and in replica batches; both die here. */
  (void)kv_syncer_take(&n->syncer);
  for (uint32_t t = 0; t < w->node_count; t++) {
    kv_hint_stats_t hs;
    kv_coord_hint_stats(n->coord, t, &hs);
    w->hints_dropped += hs.dropped;
  }
  kv_coord_destroy(n->coord);
  while (n->rbatches) {
    rbatch_t *next = n->rbatches->next;
    rbatch_free(n->rbatches);
    n->rbatches = next;
  }
  kv_node_destroy(n->node);
  sim_store_crash(n->store, power_loss);
  n->coord = NULL;
  n->node = NULL;
  n->store = NULL;
  n->up = false;
  n->crashes_us = realloc(n->crashes_us, (n->crash_count + 1) * sizeof *n->crashes_us);
  KV_ASSERT(n->crashes_us != NULL);
  n->crashes_us[n->crash_count++] = w->now_us;
  if (power_loss) {
    w->power_losses++;
    w->last_power_loss_us = w->now_us;
  }
}

void world_heal(world_t *w) {
  memset(w->cut, 0, sizeof w->cut);
  memset(w->clog_us, 0, sizeof w->clog_us);
}

/* A message arrives at its node. A batch for a process that is gone is refused, as a
 * closed port refuses a connection. */
static void deliver(world_t *w, msg_t *m) {
  sim_node_t *n = &w->nodes[m->to];
  KV_ASSERT(w->link_in_flight[m->from][m->to] > 0);
  w->link_in_flight[m->from][m->to]--;
  world_trace(w, (uint64_t)m->type << 48 | (uint64_t)m->from << 40 | (uint64_t)m->to << 32 |
                     (uint32_t)m->code);
  world_trace(w, m->id);
  if (!n->up && m->type == MSG_BATCH) {
    msg_t *refused = msg_new(MSG_BATCH_REPLY, m->to, m->from);
    refused->id = m->id;
    refused->code = KV_EUNAVAILABLE;
    refused->to_life = m->from_life;
    world_send(w, refused);
  }
  if (!n->up || (m->to_life != 0 && m->to_life != n->life)) {
    msg_free(m);
    return;
  }
  switch (m->type) {
  case MSG_BATCH: replica_batch(w, n, m); break;
  case MSG_BATCH_REPLY: batch_ended(w, n, m->from, m->id, m); break;
  case MSG_FORWARD: workload_forwarded(w, m->from, m->to, m->id); break;
  case MSG_FORWARD_REPLY: workload_forward_reply(w, m->id, &m->result); break;
  default: KV_ASSERT(!"a message that only travels inside a batch");
  }
  msg_free(m);
}

static void node_event(world_t *w, const event_t *ev) {
  sim_node_t *n = &w->nodes[ev->node];
  if (!n->up || ev->a != n->life) return; /* for a process that has ended */
  if (ev->type == EV_TICK) {
    kv_coord_on_tick(n->coord, w->now_us);
    world_schedule(w, w->now_us + SIM_TICK_US, EV_TICK, ev->node, n->life, 0, NULL);
  } else if (ev->type == EV_BATCH_DEADLINE) {
    batch_ended(w, n, (uint32_t)(ev->b >> 56), ev->b & ((1ull << 56) - 1), NULL);
  } else { /* EV_SYNC: the fsync the core asked for ends, covering every write so far */
    kv_sync_waiter_t *batch = kv_syncer_take(&n->syncer);
    kv_status_t st;
    kv_status_clear(&st);
    KV_ASSERT(kv_node_sync(n->node, &st) == KV_OK);
    kv_syncer_done(batch, &st, w->now_us);
  }
}

static void clog_event(world_t *w, const event_t *ev) {
  w->clog_us[ev->node][ev->a] = ev->b;
  w->clog_us[ev->a][ev->node] = ev->b;
}

extern void kvsim_nemesis(world_t *w);
extern void kvsim_membership(world_t *w);

void world_run_until(world_t *w, uint64_t until_us) {
  while (w->heap_count > 0 && w->heap[0].at_us <= until_us) {
    event_t ev = heap_pop(w);
    KV_ASSERT(ev.at_us >= w->now_us);
    w->now_us = ev.at_us;
    w->events++;
    world_trace(w, ev.at_us);
    world_trace(w, (uint64_t)ev.type << 32 | ev.node);
    switch (ev.type) {
    case EV_DELIVER: deliver(w, ev.msg); break;
    case EV_TICK:
    case EV_BATCH_DEADLINE:
    case EV_SYNC: node_event(w, &ev); break;
    case EV_CLIENT:
    case EV_CLIENT_TIMEOUT: workload_event(w, &ev); break;
    case EV_NEMESIS: kvsim_nemesis(w); break;
    case EV_RESTART:
      if (!w->nodes[ev.node].up) world_restart(w, ev.node);
      break;
    case EV_CLOG: clog_event(w, &ev); break;
    case EV_MEMBERSHIP: kvsim_membership(w); break;
    }
  }
  if (w->now_us < until_us) w->now_us = until_us;
}

/* ---- set-up ------------------------------------------------------------------------- */

/* Whether a seed's keyspace uses sloppy quorum: three runs in four. Drawn apart from the
 * run's generator, like the node count (kvsim.c). */
static bool sloppy_for(uint64_t seed) {
  uint64_t z = (seed + 0x5851f42d4c957f2dull) * 0xbf58476d1ce4e5b9ull;
  z ^= z >> 29;
  return (z >> 40) % 4 != 0;
}

/* The conflict handler of a seed, drawn apart from the run's generator (like the node count),
 * and its fallback: set-union where nothing may be lost, lww where losses are journaled. The
 * keyspace lists no region_priority, so region-priority orders as lww does (even with two
 * regions: a put's answer must hold its own version, which a region above it could beat). */
static void world_pick_handler(world_t *w) {
  static const char *const handlers[] = {"siblings", "lww", "region-priority", "set-union"};
  uint64_t z = (w->seed + 0x51ed) * 0xbf58476d1ce4e5b9ull;
  w->handler = handlers[(z >> 29) % 4];
  w->lossy = strcmp(w->handler, "lww") == 0 || strcmp(w->handler, "region-priority") == 0;
}

/* The journal's sink: keeps each discarded (key, dot) in the world. */
static void world_journal_sink(void *arg, const kv_journal_entry_t *e) {
  world_t *w = arg;
  uint32_t key = sim_key_index(e->key, e->key_bytes);
  for (uint32_t i = 0; i < e->discarded_count; i++) {
    if (w->discarded_count == w->discarded_cap) {
      w->discarded_cap = w->discarded_cap ? w->discarded_cap * 2 : 64;
      w->discarded = realloc(w->discarded, w->discarded_cap * sizeof *w->discarded);
      w->discarded_key = realloc(w->discarded_key, w->discarded_cap * sizeof *w->discarded_key);
      w->discarded_hash =
          realloc(w->discarded_hash, w->discarded_cap * sizeof *w->discarded_hash);
      KV_ASSERT(w->discarded && w->discarded_key && w->discarded_hash);
    }
    w->discarded[w->discarded_count] = e->discarded[i].dot;
    w->discarded_hash[w->discarded_count] =
        XXH64(e->discarded[i].value ? (const void *)e->discarded[i].value : "",
              e->discarded[i].value_bytes, 1);
    w->discarded_key[w->discarded_count++] = key;
  }
}

bool world_discarded(const world_t *w, uint32_t key, const kv_dot_t *dot, const char *value) {
  uint64_t h = XXH64(value, strlen(value), 1);
  for (uint32_t i = 0; i < w->discarded_count; i++)
    if (w->discarded_key[i] == key &&
        (kv_dot_cmp(&w->discarded[i], dot) == 0 || w->discarded_hash[i] == h))
      return true;
  return false;
}

/* Whether a seed's cluster has two regions: one run in three, drawn apart from the run's
 * generator. Nodes n1, n4, n7 are region a, the others b, and the keyspace keeps
 * {a: 1, b: 2}: N stays 3, and a write coordinated in a goes to b once, to a forwarder that
 * relays it to b's other replica. */
static bool regions_for(uint64_t seed) {
  uint64_t z = (seed + 0x2545f4914f6cdd1dull) * 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z ^= z >> 31;
  return z % 3 == 0;
}

/* The config of a K-node cluster with one keyspace of N=3 (in one region, or two: see
 * regions_for), loaded like any other (from a temporary file, so the real loader checks it). */
static void world_config(world_t *w, uint32_t k) {
  char path[] = "/tmp/kvsim-config-XXXXXX";
  int fd = mkstemp(path);
  KV_ASSERT(fd >= 0);
  FILE *f = fdopen(fd, "w");
  KV_ASSERT(f != NULL);
  fprintf(f, "cluster: { name: sim, partitions: 16, anti_entropy_interval_ms: %u, "
             "tombstone_grace_ms: %u }\nnodes:\n",
          w->aae_interval_ms, w->grace_ms);
  for (uint32_t i = 0; i < k; i++)
    fprintf(f, "  - { id: n%u, address: \"127.0.0.1:%u\", rack: r%u%s }\n", i + 1, 7001 + i,
            i % 3, !w->regions ? "" : i % 3 == 0 ? ", region: a" : ", region: b");
  fprintf(f, "keyspaces:\n  - name: %s\n", SIM_KEYSPACE);
  if (w->regions) fprintf(f, "    replication: { a: 1, b: 2 }\n");
  else fprintf(f, "    replication: { local: %u }\n", SIM_N);
  if (!sloppy_for(w->seed)) fprintf(f, "    sloppy_quorum: false\n");
  fprintf(f, "    handler: %s\n    fallback_handler: %s\n", w->handler,
          w->lossy ? "lww" : "set-union");
  fclose(f);
  kv_status_t st;
  kv_err err = kv_config_load(path, &w->cfg, &st);
  unlink(path);
  if (err != KV_OK) {
    fprintf(stderr, "kvsim: %s\n", st.msg);
    exit(2);
  }
  KV_ASSERT(kv_ring_init_members(&w->ring, &w->cfg, w->members0, &st) == KV_OK);
}

void world_init(world_t *w, uint32_t node_count, sim_change_t change) {
  KV_ASSERT(node_count >= SIM_N && node_count <= SIM_NODES_MAX);
  KV_ASSERT(change == CHANGE_NONE || node_count > SIM_N);
  uint64_t seed = w->seed;
  memset(w, 0, sizeof *w);
  w->seed = seed;
  sim_world = w;
  site_count = 0;
  sim_rng_seed(seed);
  w->trace = XXH64_createState();
  XXH64_reset(w->trace, 0);
  w->node_count = node_count;
  /* Anti-entropy off in a quarter of the seeds; else an interval from 0.2 to 3 s. */
  w->aae_interval_ms = sim_chance(0.25) ? 0 : 200 + (uint32_t)sim_below(2800);
  /* Tombstones reaped after up to 3 s in most seeds; kept through the run in the rest. */
  w->grace_ms = sim_chance(0.2) ? KV_TOMBSTONE_GRACE_MS_DEFAULT : (uint32_t)sim_below(3000);
  world_pick_handler(w);
  w->regions = regions_for(seed);
  w->change = change;
  /* A join or a replace needs a spare node: the last one. */
  w->members0 = (1ull << node_count) - 1;
  if (change == CHANGE_JOIN || change == CHANGE_REPLACE) w->members0 >>= 1;
  world_config(w, node_count);
  w->net = (net_params_t){
      .delay_us = 50 + sim_below(500),
      .tail_us = 100 + sim_below(3000),
      .drop = sim_chance(0.5) ? (double)sim_below(60) / 1000.0 : 0.0,
      .dup = sim_chance(0.5) ? (double)sim_below(60) / 1000.0 : 0.0,
      .sync_us = 200 + sim_below(3000),
      .power_loss = sim_chance(0.5) ? 0.5 : 0.0,
      .slow_sync = sim_chance(0.5) ? 0.1 : 0.0,
  };
  /* Hint room: plenty, or small enough that hints overflow and are dropped. */
  w->coord_opts = (kv_coord_opts_t){
      .hint_bytes_max = sim_chance(0.3) ? 500 + sim_below(3000) : KV_HINT_BYTES_DEFAULT,
      .hint_rate_per_s = 50 + (uint32_t)sim_below(5000)};
  for (uint32_t i = 0; i < node_count; i++) {
    w->nodes[i].skew_ms = (int64_t)sim_below(101) - 50;
    world_restart(w, i);
  }
}

void world_deinit(world_t *w) {
  for (uint32_t i = 0; i < w->node_count; i++)
    if (w->nodes[i].up) world_crash(w, i, false);
  while (w->heap_count > 0) {
    event_t ev = heap_pop(w);
    if (ev.type == EV_DELIVER) msg_free(ev.msg);
  }
  free(w->heap);
  for (uint32_t i = 0; i < w->node_count; i++) free(w->nodes[i].crashes_us);
  free(w->discarded);
  free(w->discarded_key);
  free(w->discarded_hash);
  XXH64_freeState(w->trace);
  sim_disks_reset();
  sim_world = NULL;
}
