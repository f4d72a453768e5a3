/* check_coord.c: the coordinator driven event by event, with no network. n1 coordinates on
 * the memory store (tests/sim/memstore.h); n2 and n3 (and n4, n5 in the sloppy quorum tests)
 * are reached through a fake transport that records every message (or refuses it, as a full
 * peer queue would), and the test answers those messages in the order it chooses, at the
 * (fake, monotonic) times it chooses; fsyncs happen when the test runs a group-commit round
 * (sync_round), as the driver would. No threads, no real clock. The config is built in code. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord.h"
#include "hints.h"
#include "memstore.h"

#define T0 UINT64_C(1000000) /* fake monotonic start: 1 s, in microseconds */
#define WALL_MS UINT64_C(1700000000000)
#define MSGS_MAX 64u
#define REPLIES_MAX 64u
#define VALUE_SHOWN_MAX 32u

/* Configs are ~60 KiB: kept off the test's stack. */
static kv_config_t cfg;
static sim_store_t *store;
static kv_storage_t storage;
static kv_node_t *node;
static kv_ring_t ring;
static kv_syncer_t syncer;
static kv_coord_t *coord;
static uint32_t syncs_wanted; /* the core's SYNC effects since setup */

/* ---- the fake transport ------------------------------------------------------------ */

#define QUEUE_FULL_MSG "queue to the peer is full (8192 messages); retry later"

#define NODES_MAX 6u /* the regions fixture's; the sloppy quorum one has 5, the others 3 */

typedef struct {
  char kind; /* 'w' ReplicaWrite, 'r' ReplicaRead, 'f' a forwarded client write, 'F' a
                ReplicaWrite to a forwarder (with relay), 'h' / 'x' a ReplicaReap (hints only /
                removal) */
  uint32_t node;
  uint32_t hint_for; /* a fallback's write or read: for this primary; UINT32_MAX: none */
  uint64_t id;
  char keyspace[KV_KEYSPACE_NAME_BYTES_MAX + 1];
  uint8_t key[64];
  size_t key_bytes;
  uint8_t *rec; /* malloc'd copy; NULL for reads */
  size_t rec_bytes;
  bool durable;
  void *call; /* forwards: the client call, its op and timeout */
  kv_op_t op;
  uint32_t timeout_ms; /* 'F': how long the forwarder waits for its relays */
  kv_relay_target_t relay[KV_REPLICAS_MAX]; /* 'F': the replicas to relay to */
  uint32_t relay_count;
} msg_t;

static bool alive[NODES_MAX];
static uint8_t *relayed_rec; /* the record forwarders relay (made by the first relay) */
static size_t relayed_rec_bytes;
static bool queue_full[NODES_MAX];
static msg_t msgs[MSGS_MAX];
static uint32_t msg_count;     /* messages queued (only the first MSGS_MAX are kept) */
static uint32_t refused_count; /* sends refused because the queue was full */

static bool fake_alive(void *arg, uint32_t n) {
  ck_assert_uint_lt(n, cfg.node_count);
  return alive[n];
}

static kv_err fake_record(char kind, uint32_t n, uint64_t id, const char *keyspace,
                          const uint8_t *key, size_t key_bytes, const uint8_t *rec,
                          size_t rec_bytes, bool durable, kv_status_t *st) {
  ck_assert_uint_lt(n, cfg.node_count);
  ck_assert_msg(n != kv_node_self(node), "the coordinator sent a message to itself");
  if (queue_full[n]) {
    refused_count++;
    return kv_status_set(st, KV_EBUSY, QUEUE_FULL_MSG);
  }
  if (msg_count < MSGS_MAX) {
    msg_t *m = &msgs[msg_count];
    memset(m, 0, sizeof *m);
    m->kind = kind;
    m->node = n;
    m->hint_for = UINT32_MAX;
    m->id = id;
    snprintf(m->keyspace, sizeof m->keyspace, "%s", keyspace);
    ck_assert_uint_le(key_bytes, sizeof m->key);
    if (key_bytes) memcpy(m->key, key, key_bytes);
    m->key_bytes = key_bytes;
    if (rec) {
      m->rec = malloc(rec_bytes ? rec_bytes : 1);
      ck_assert_ptr_nonnull(m->rec);
      memcpy(m->rec, rec, rec_bytes);
      m->rec_bytes = rec_bytes;
    }
    m->durable = durable;
  }
  msg_count++;
  return KV_OK;
}

/* Each message sent is recorded under its kind, a fallback's with the
 * primary it is for, a forwarder's with the replicas it relays to. */
static kv_err fake_send(void *arg, uint32_t n, const kv_msg_t *m, kv_status_t *st) {
  ck_assert_msg(m->kind != KV_MSG_TREE, "check_coord runs no anti-entropy");
  char kind = m->kind == KV_MSG_READ   ? 'r'
              : m->kind == KV_MSG_REAP ? (m->hints_only ? 'h' : 'x')
              : m->relay_count > 0     ? 'F'
                                       : 'w';
  if (m->kind == KV_MSG_WRITE) ck_assert_ptr_nonnull(m->rec);
  uint32_t before = msg_count;
  kv_err err = fake_record(kind, n, m->id, m->keyspace, m->key, m->key_bytes, m->rec,
                           m->rec_bytes, m->durable, st);
  if (msg_count == before || before >= MSGS_MAX) return err;
  if (m->hint_for != KV_NODE_NONE) {
    ck_assert_uint_lt(m->hint_for, cfg.node_count);
    msgs[before].hint_for = m->hint_for;
  }
  if (m->relay_count > 0) {
    ck_assert_uint_lt(m->relay_count, KV_REPLICAS_MAX);
    memcpy(msgs[before].relay, m->relay, m->relay_count * sizeof *m->relay);
    msgs[before].relay_count = m->relay_count;
    msgs[before].timeout_ms = m->relay_wait_ms;
  }
  return err;
}

static kv_err fake_forward(void *arg, uint32_t n, void *call, kv_op_t op,
                           const uint8_t *request, size_t request_bytes, uint32_t timeout_ms,
                           kv_status_t *st) {
  ck_assert_ptr_nonnull(request);
  uint32_t before = msg_count;
  kv_err err = fake_record('f', n, 0, "", NULL, 0, request, request_bytes, false, st);
  if (msg_count > before && before < MSGS_MAX) {
    msgs[before].call = call;
    msgs[before].op = op;
    msgs[before].timeout_ms = timeout_ms;
  }
  return err;
}

static void msgs_clear(void) {
  for (uint32_t i = 0; i < msg_count && i < MSGS_MAX; i++) free(msgs[i].rec);
  memset(msgs, 0, sizeof msgs);
  msg_count = 0;
  refused_count = 0;
}

/* The index of the latest message of that kind to node n; -1 when there is none. */
static int msg_find(char kind, uint32_t n) {
  for (uint32_t i = msg_count; i-- > 0;)
    if (i < MSGS_MAX && msgs[i].kind == kind && msgs[i].node == n) return (int)i;
  return -1;
}

/* The same, when there must be one. */
static uint32_t msg_to(char kind, uint32_t n) {
  int i = msg_find(kind, n);
  if (i < 0) ck_abort_msg("no '%c' message to node %u", kind, n);
  return (uint32_t)i;
}

/* ---- recorded replies ------------------------------------------------------------- */

typedef struct {
  void *call;
  kv_err code;
  char msg[KV_STATUS_MSG_BYTES];
  bool has_res;
  bool found;
  uint32_t sib_count;
  char values[KV_SIBLINGS_MAX][VALUE_SHOWN_MAX + 1];
  uint8_t *context; /* malloc'd copy */
  size_t context_bytes;
} reply_t;

static reply_t replies[REPLIES_MAX];
static uint32_t reply_count;

static void fake_reply(void *call, const kv_status_t *st, const kv_node_result_t *res) {
  if (st->code == KV_OK) ck_assert_ptr_nonnull(res);
  else ck_assert_ptr_null(res);
  if (reply_count >= REPLIES_MAX) { /* counted, not kept */
    reply_count++;
    return;
  }
  reply_t *r = &replies[reply_count];
  memset(r, 0, sizeof *r);
  r->call = call;
  r->code = st->code;
  snprintf(r->msg, sizeof r->msg, "%s", st->msg);
  if (res) {
    r->has_res = true;
    r->found = res->found;
    r->sib_count = res->object.sib_count;
    for (uint32_t i = 0; i < res->object.sib_count; i++) {
      const kv_sibling_t *s = &res->object.sib[i];
      ck_assert_uint_le(s->value_bytes, VALUE_SHOWN_MAX);
      memcpy(r->values[i], s->value, s->value_bytes);
      r->values[i][s->value_bytes] = '\0';
    }
    if (res->context_bytes) {
      r->context = malloc(res->context_bytes);
      ck_assert_ptr_nonnull(r->context);
      memcpy(r->context, res->context, res->context_bytes);
      r->context_bytes = res->context_bytes;
    }
  }
  reply_count++;
}


static void replies_clear(void) {
  for (uint32_t i = 0; i < reply_count && i < REPLIES_MAX; i++) free(replies[i].context);
  reply_count = 0;
}

static bool reply_has_value(const reply_t *r, const char *value) {
  for (uint32_t i = 0; i < r->sib_count; i++)
    if (strcmp(r->values[i], value) == 0) return true;
  return false;
}

/* Asserts the latest reply answers call with code and (when msg is not NULL) that text. */
static const reply_t *last_reply(void *call, kv_err code, const char *msg) {
  ck_assert_uint_gt(reply_count, 0);
  ck_assert_uint_le(reply_count, REPLIES_MAX);
  const reply_t *r = &replies[reply_count - 1];
  ck_assert_ptr_eq(r->call, call);
  ck_assert_msg(r->code == code, "reply is %s (%s), expected %s", kv_err_name(r->code), r->msg,
                kv_err_name(code));
  if (msg) ck_assert_str_eq(r->msg, msg);
  return r;
}

/* ---- fixture ------------------------------------------------------------------------ */

static void cfg_build(uint32_t nodes) {
  memset(&cfg, 0, sizeof cfg);
  snprintf(cfg.path, sizeof cfg.path, "test.yaml");
  snprintf(cfg.cluster_name, sizeof cfg.cluster_name, "unit");
  cfg.partitions = 16;
  cfg.node_count = nodes;
  for (uint32_t i = 0; i < nodes; i++) {
    kv_node_conf_t *n = &cfg.nodes[i];
    snprintf(n->id, sizeof n->id, "n%u", i + 1);
    snprintf(n->address, sizeof n->address, "127.0.0.1:%u", 7001 + i);
    snprintf(n->region, sizeof n->region, "local");
    snprintf(n->rack, sizeof n->rack, "r%u", i + 1);
  }
  cfg.keyspace_count = 1;
  kv_keyspace_conf_t *ks = &cfg.keyspaces[0];
  snprintf(ks->name, sizeof ks->name, "default");
  ks->replication_count = 1;
  snprintf(ks->replication[0].region, sizeof ks->replication[0].region, "local");
  ks->replication[0].replicas = 3;
  ks->n = 3;
  ks->read = ks->write = KV_LEVEL_QUORUM;
  snprintf(ks->handler, sizeof ks->handler, "siblings");
  snprintf(ks->fallback_handler, sizeof ks->fallback_handler, "lww");
  ks->siblings_max = 16;
  ks->key_bytes_max = KV_KEY_BYTES_DEFAULT;
  ks->value_bytes_max = KV_VALUE_BYTES_DEFAULT;
  ks->sloppy_quorum = true;
  /* "pair": N=2, so n1 is not a replica of every key (writes there are forwarded). */
  cfg.keyspaces[1] = *ks;
  ks = &cfg.keyspaces[1];
  snprintf(ks->name, sizeof ks->name, "pair");
  ks->replication[0].replicas = 2;
  ks->n = 2;
  ks->read = ks->write = KV_LEVEL_ONE;
  cfg.keyspace_count = 2;
}

/* The transport's pack: the message is recorded, and the test answers it by its id
 * (kv_coord_on_peer_reply); no batch ever starts (fake_send_batch), so the items the links
 * queue carry nothing. */
static kv_err fake_pack(void *arg, uint32_t n, const kv_msg_t *m, kv_link_item_t *out,
                        kv_status_t *st) {
  kv_err err = fake_send(arg, n, m, st);
  *out = (kv_link_item_t){.id = m->id};
  return err;
}

static bool fake_send_batch(void *arg, uint32_t n, uint32_t slot,
                            const kv_link_item_t *items, uint32_t count,
                            uint32_t deadline_ms) {
  return false;
}

static void fake_discard(void *arg, kv_link_item_t *item) { ck_assert_ptr_null(item->data); }

static kv_coord_transport_t fake_transport(void) {
  return (kv_coord_transport_t){.arg = NULL, .alive = fake_alive, .pack = fake_pack,
                                .send_batch = fake_send_batch, .discard = fake_discard,
                                .forward = fake_forward};
}

static bool with_regions; /* the next setup_nodes builds the regions fixture's config */

/* The core's SYNC effect: the test runs the round itself (sync_round). */
static void sync_wanted(void *arg) {
  (void)arg;
  syncs_wanted++;
}

/* A group-commit round, as kvnode/driver.c runs one: every waiter queued so far, after one
 * fsync of the store, at now_us. */
static void sync_round(uint64_t now_us) {
  kv_sync_waiter_t *batch = kv_syncer_take(&syncer);
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_int_eq(kv_node_sync(node, &st), KV_OK);
  kv_syncer_done(batch, &st, now_us);
}

static void setup_nodes(uint32_t nodes) {
  cfg_build(nodes);
  if (with_regions) {
    for (uint32_t i = 0; i < nodes; i++)
      snprintf(cfg.nodes[i].region, sizeof cfg.nodes[i].region, "%s", i < 3 ? "east" : "west");
    kv_keyspace_conf_t *ks = &cfg.keyspaces[0];
    ks->replication_count = 2;
    snprintf(ks->replication[0].region, sizeof ks->replication[0].region, "east");
    snprintf(ks->replication[1].region, sizeof ks->replication[1].region, "west");
    ks->replication[1].replicas = 3;
    ks->n = 6;
    cfg.keyspace_count = 1;
  }
  kv_status_t st;
  kv_status_clear(&st);
  store = sim_store_open("n1", 0x1111);
  sim_store_storage(store, &storage);
  ck_assert_int_eq(kv_node_create(&cfg, "n1", &storage, &node, &st), KV_OK);
  ck_assert_uint_eq(kv_node_self(node), 0);
  ck_assert_int_eq(kv_ring_init(&ring, &cfg, &st), KV_OK);
  kv_syncer_init(&syncer, sync_wanted, NULL);
  syncs_wanted = 0;
  for (uint32_t i = 0; i < NODES_MAX; i++) {
    alive[i] = true;
    queue_full[i] = false;
  }
  msgs_clear();
  replies_clear();
  kv_coord_transport_t tr = fake_transport();
  ck_assert_int_eq(kv_coord_create(node, &ring, &syncer, &tr, fake_reply, NULL, &coord, &st), KV_OK);
}

static void coord_setup(void) { setup_nodes(3); }

/* Two regions, east (n1..n3) and west (n4..n6); "default" keeps {east: 3, west: 3}, so every
 * node is a primary of every key (no fallbacks). */
static void regions_setup(void) {
  with_regions = true;
  setup_nodes(6);
  with_regions = false;
}

/* Five nodes, so every key has two nodes past its preference list to fall back on. */
static void sloppy_setup(void) { setup_nodes(5); }

static void coord_teardown(void) {
  sync_round(T0); /* runs queued self-acks while the coordinator still exists */
  kv_coord_destroy(coord);
  kv_node_destroy(node);
  sim_store_crash(store, false);
  sim_disks_reset();
  free(relayed_rec);
  relayed_rec = NULL;
  msgs_clear();
  replies_clear();
}

/* ---- helpers ------------------------------------------------------------------------ */

static kv_node_req_t req_for(const char *key, const char *value, const char *level) {
  kv_node_req_t r = {.keyspace = "default", .key = (const uint8_t *)key,
                     .key_bytes = strlen(key), .level = level};
  if (value) {
    r.value = (const uint8_t *)value;
    r.value_bytes = strlen(value);
  }
  return r;
}

/* Distinct call pointers, so each reply can be matched to its request. */
static int calls[REPLIES_MAX];
#define CALL(i) ((void *)&calls[i])

static void put(void *call, const char *key, const char *value, const char *level,
                uint64_t now_us) {
  kv_node_req_t r = req_for(key, value, level);
  kv_coord_on_client(coord, call, KV_OP_PUT, &r, now_us, WALL_MS);
}

/* A get whose read repair does not hold the answer back (most read tests are about asking
 * and merging; the blocking repair has tests of its own). */
static void get(void *call, const char *key, const char *level, uint64_t now_us) {
  kv_node_req_t r = req_for(key, NULL, level);
  r.read_repair = "async";
  kv_coord_on_client(coord, call, KV_OP_GET, &r, now_us, WALL_MS);
}

static void get_blocking(void *call, const char *key, const char *level, uint64_t now_us) {
  kv_node_req_t r = req_for(key, NULL, level);
  kv_coord_on_client(coord, call, KV_OP_GET, &r, now_us, WALL_MS);
}

/* ---- the core's peer events, as a driver makes them ------------------------------- */

/* Another node's answer to message id (on_peer_reply). */
static void coord_answer(kv_coord_t *c, uint64_t id, kv_err code, const uint8_t *rec,
                         size_t rec_bytes, uint64_t applied_ms, uint64_t now_us) {
  kv_msg_answer_t a = {.id = id, .code = code, .rec = rec, .rec_bytes = rec_bytes,
                       .applied_ms = applied_ms};
  kv_coord_on_peer_reply(c, &a, now_us);
}

/* A forwarder's answer, with its relays' outcomes. */
static void coord_answer_relayed(kv_coord_t *c, uint64_t id, kv_err code, uint64_t applied_ms,
                                 const kv_relay_outcome_t *relayed, uint32_t count,
                                 uint64_t now_us) {
  kv_msg_answer_t a = {.id = id, .code = code, .applied_ms = applied_ms, .relayed = relayed,
                       .relayed_count = count};
  kv_coord_on_peer_reply(c, &a, now_us);
}

static void no_relay(void *arg, const kv_relay_outcome_t *outcomes, uint32_t count) {
  ck_abort_msg("a relay ended that no message asked for");
}

/* The replica's side of m (on_peer_request) at T0: its code, with the sentence in *st and
 * a read's record in *rec (malloc'd; NULL when there is none) when rec is given. */
static kv_err peer_request(kv_coord_t *c, const kv_msg_t *m, uint8_t **rec, size_t *rec_bytes,
                           kv_status_t *st) {
  kv_peer_result_t r;
  kv_coord_on_peer_request(c, m, T0, WALL_MS, no_relay, NULL, &r);
  ck_assert(!r.relaying);
  *st = r.st;
  if (rec) {
    *rec = r.rec;
    *rec_bytes = r.rec_bytes;
    r.rec = NULL;
  }
  kv_err code = r.code;
  kv_peer_result_deinit(&r);
  return code;
}

static uint32_t node_named(const char *id) {
  int n = kv_config_node_index(&cfg, id);
  ck_assert_int_ge(n, 0);
  return (uint32_t)n;
}

/* A fallback's write and read of the hint it keeps for the node named hint_for. */
static kv_err coord_hint_write(kv_coord_t *c, const char *hint_for, const char *keyspace,
                               const uint8_t *key, size_t key_bytes, const uint8_t *rec,
                               size_t rec_bytes, kv_status_t *st) {
  kv_msg_t m = kv_msg_write(1, keyspace, key, key_bytes, rec, rec_bytes, false);
  m.hint_for = node_named(hint_for);
  return peer_request(c, &m, NULL, NULL, st);
}

static kv_err coord_hint_read(kv_coord_t *c, const char *hint_for, const char *keyspace,
                              const uint8_t *key, size_t key_bytes, uint8_t **rec,
                              size_t *rec_bytes, kv_status_t *st) {
  kv_msg_t m = kv_msg_read(1, keyspace, key, key_bytes);
  m.hint_for = node_named(hint_for);
  return peer_request(c, &m, rec, rec_bytes, st);
}

/* A reaper's ReplicaReap, on this node's side. */
static kv_err coord_reap(kv_coord_t *c, const char *keyspace, const uint8_t *key,
                         size_t key_bytes, const uint8_t *rec, size_t rec_bytes, bool hints_only,
                         kv_status_t *st) {
  kv_msg_t m = KV_MSG_INIT(KV_MSG_REAP, 1);
  m.keyspace = keyspace;
  m.key = key;
  m.key_bytes = key_bytes;
  m.rec = rec;
  m.rec_bytes = rec_bytes;
  m.hints_only = hints_only;
  return peer_request(c, &m, NULL, NULL, st);
}

static void ack(uint32_t msg, uint64_t now_us) {
  ck_assert_uint_lt(msg, msg_count);
  coord_answer(coord, msgs[msg].id, KV_OK, NULL, 0, 0, now_us);
}

static bool local_has(const char *key) {
  uint8_t *rec;
  size_t rec_bytes;
  kv_status_t st;
  ck_assert_int_eq(
      kv_node_read_record(node, "default", (const uint8_t *)key, strlen(key), &rec, &rec_bytes,
                          &st),
      KV_OK);
  free(rec);
  return rec_bytes > 0;
}

/* ---- writes ------------------------------------------------------------------------- */

START_TEST(put_quorum_replies_at_first_ack_and_records_lag) {
  put(CALL(0), "k", "v1", "quorum", T0);
  ck_assert_uint_eq(msg_count, 2);
  ck_assert_uint_eq(reply_count, 0);
  uint32_t to2 = msg_to('w', 1), to3 = msg_to('w', 2);
  for (uint32_t m = 0; m < 2; m++) {
    ck_assert_str_eq(msgs[m].keyspace, "default");
    ck_assert_uint_eq(msgs[m].key_bytes, 1);
    ck_assert_mem_eq(msgs[m].key, "k", 1);
    ck_assert(!msgs[m].durable);
    kv_dvv_t obj;
    kv_status_t st;
    ck_assert_int_eq(kv_dvv_decode(msgs[m].rec, msgs[m].rec_bytes, &obj, &st), KV_OK);
    ck_assert_uint_eq(obj.sib_count, 1);
    ck_assert_uint_eq(obj.sib[0].value_bytes, 2);
    ck_assert_mem_eq(obj.sib[0].value, "v1", 2);
    ck_assert_str_eq(obj.sib[0].dot.actor.node, "n1");
    kv_dvv_deinit(&obj);
  }
  ck_assert_uint_ne(msgs[0].id, msgs[1].id);
  /* The write landed here before it was sent. */
  ck_assert(local_has("k"));

  ack(to3, T0 + 10000);
  ck_assert_uint_eq(reply_count, 1);
  const reply_t *r = last_reply(CALL(0), KV_OK, NULL);
  ck_assert(r->found);
  ck_assert_uint_eq(r->sib_count, 1);
  ck_assert_str_eq(r->values[0], "v1");
  ck_assert_uint_gt(r->context_bytes, 0);

  static kv_histogram_t lag;
  kv_coord_lag(coord, &lag);
  ck_assert_uint_eq(lag.total, 0);
  ack(to2, T0 + 35000); /* the late ack: 25 ms after the deciding one */
  ck_assert_uint_eq(reply_count, 1);
  kv_coord_lag(coord, &lag);
  ck_assert_uint_eq(lag.total, 1);
  uint64_t p50 = kv_histogram_percentile(&lag, 50);
  ck_assert_msg(p50 >= 24750 && p50 <= 25250, "lag %llu us, expected 25000",
                (unsigned long long)p50);
  /* The slot is finished: answering again changes nothing. */
  ack(to2, T0 + 40000);
  ack(to3, T0 + 40000);
  kv_coord_lag(coord, &lag);
  ck_assert_uint_eq(lag.total, 1);
  ck_assert_uint_eq(reply_count, 1);
}
END_TEST

START_TEST(put_all_waits_for_every_replica) {
  put(CALL(0), "k", "v", "all", T0);
  ck_assert_uint_eq(msg_count, 2);
  ack(msg_to('w', 1), T0 + 1000);
  ck_assert_uint_eq(reply_count, 0);
  ack(msg_to('w', 2), T0 + 2000);
  ck_assert_uint_eq(reply_count, 1);
  const reply_t *r = last_reply(CALL(0), KV_OK, NULL);
  ck_assert(r->found);
  ck_assert_str_eq(r->values[0], "v");
  /* Every replica acked at once: a lag of 0 is recorded (decided by the last ack). */
  static kv_histogram_t lag;
  kv_coord_lag(coord, &lag);
  ck_assert_uint_eq(lag.total, 1);
  ck_assert_uint_eq(lag.max, 0);
}
END_TEST

START_TEST(put_all_with_a_failed_replica_is_unavailable) {
  put(CALL(0), "k", "v", "all", T0);
  ack(msg_to('w', 1), T0 + 1000);
  ck_assert_uint_eq(reply_count, 0);
  coord_answer(coord, msgs[msg_to('w', 2)].id, KV_EIO, NULL, 0, 0, T0 + 2000);
  ck_assert_uint_eq(reply_count, 1);
  last_reply(CALL(0), KV_EUNAVAILABLE, "2 of 3 replicas acknowledged, 1 failed; ALL needs 3");
  /* A failed write records no lag. */
  static kv_histogram_t lag;
  kv_coord_lag(coord, &lag);
  ck_assert_uint_eq(lag.total, 0);
}
END_TEST

START_TEST(put_all_fails_as_soon_as_one_replica_fails) {
  put(CALL(0), "k", "v", "all", T0);
  coord_answer(coord, msgs[msg_to('w', 1)].id, KV_ETIMEDOUT, NULL, 0, 0, T0 + 1000);
  ck_assert_uint_eq(reply_count, 1);
  last_reply(CALL(0), KV_EUNAVAILABLE, "1 of 3 replicas acknowledged, 1 failed; ALL needs 3");
  ack(msg_to('w', 2), T0 + 2000); /* late, after the decision: recorded, no second reply */
  ck_assert_uint_eq(reply_count, 1);
}
END_TEST

START_TEST(put_one_replies_before_any_peer) {
  put(CALL(0), "k", "v", "one", T0);
  ck_assert_uint_eq(msg_count, 2);
  msg_to('w', 1);
  msg_to('w', 2);
  ck_assert_uint_eq(reply_count, 1);
  const reply_t *r = last_reply(CALL(0), KV_OK, NULL);
  ck_assert(r->found);
  ck_assert_str_eq(r->values[0], "v");
  /* Lag of a ONE write: from this replica's ack (the deciding one) to the last peer's. */
  ack(msg_to('w', 1), T0 + 3000);
  ack(msg_to('w', 2), T0 + 7000);
  ck_assert_uint_eq(reply_count, 1);
  static kv_histogram_t lag;
  kv_coord_lag(coord, &lag);
  ck_assert_uint_eq(lag.total, 1);
  ck_assert_uint_eq(lag.max, 7000);
}
END_TEST

START_TEST(put_refused_before_anything_is_written) {
  alive[1] = alive[2] = false;
  put(CALL(0), "k", "v", "quorum", T0);
  ck_assert_uint_eq(reply_count, 1);
  last_reply(CALL(0), KV_EUNAVAILABLE, "QUORUM needs 2 of 3 replicas; 1 is alive");
  ck_assert_uint_eq(msg_count, 0);
  ck_assert_uint_eq(refused_count, 0);
  ck_assert(!local_has("k"));
  /* ALL with one peer down; a get at QUORUM with both down. */
  alive[1] = true;
  put(CALL(1), "k", "v", "all", T0);
  last_reply(CALL(1), KV_EUNAVAILABLE, "ALL needs 3 of 3 replicas; 2 are alive");
  alive[1] = false;
  get(CALL(2), "k", "quorum", T0);
  last_reply(CALL(2), KV_EUNAVAILABLE, "QUORUM needs 2 of 3 replicas; 1 is alive");
  ck_assert_uint_eq(reply_count, 3);
  ck_assert_uint_eq(msg_count, 0);
  ck_assert(!local_has("k"));
  /* ONE needs only this replica. */
  put(CALL(3), "k", "v", "one", T0);
  last_reply(CALL(3), KV_OK, NULL);
  ck_assert(local_has("k"));
}
END_TEST

START_TEST(put_times_out_at_its_deadline) {
  kv_node_req_t r = req_for("k", "v", "quorum");
  r.timeout_ms = 200;
  kv_coord_on_client(coord, CALL(0), KV_OP_PUT, &r, T0, WALL_MS);
  ck_assert_uint_eq(msg_count, 2);
  kv_coord_on_tick(coord, T0 + 100000);
  kv_coord_on_tick(coord, T0 + 199999);
  ck_assert_uint_eq(reply_count, 0);
  kv_coord_on_tick(coord, T0 + 200000);
  ck_assert_uint_eq(reply_count, 1);
  last_reply(CALL(0), KV_ETIMEDOUT, "1 of 3 replicas acknowledged within 200 ms; QUORUM needs 2");
  /* Finished: a later ack and tick change nothing. */
  ack(msg_to('w', 1), T0 + 250000);
  kv_coord_on_tick(coord, T0 + 300000);
  ck_assert_uint_eq(reply_count, 1);
  static kv_histogram_t lag;
  kv_coord_lag(coord, &lag);
  ck_assert_uint_eq(lag.total, 0);
}
END_TEST

START_TEST(an_answer_after_the_deadline_times_out_without_a_tick) {
  kv_node_req_t r = req_for("k", "v", "quorum");
  r.timeout_ms = 200;
  kv_coord_on_client(coord, CALL(0), KV_OP_PUT, &r, T0, WALL_MS);
  ack(msg_to('w', 1), T0 + 200000);
  ck_assert_uint_eq(reply_count, 1);
  last_reply(CALL(0), KV_ETIMEDOUT, "1 of 3 replicas acknowledged within 200 ms; QUORUM needs 2");
}
END_TEST

START_TEST(duplicate_acks_count_once) {
  put(CALL(0), "k", "v", "all", T0);
  uint32_t to2 = msg_to('w', 1);
  ack(to2, T0 + 1000);
  ack(to2, T0 + 2000);
  ack(to2, T0 + 3000);
  ck_assert_uint_eq(reply_count, 0);
  /* A contradicting second answer from the same peer is noise too. */
  coord_answer(coord, msgs[to2].id, KV_EIO, NULL, 0, 0, T0 + 3500);
  ck_assert_uint_eq(reply_count, 0);
  ack(msg_to('w', 2), T0 + 4000);
  ck_assert_uint_eq(reply_count, 1);
  last_reply(CALL(0), KV_OK, NULL);
}
END_TEST

START_TEST(stale_and_unknown_ids_are_ignored) {
  put(CALL(0), "k", "v", "quorum", T0);
  uint64_t old2 = msgs[msg_to('w', 1)].id, old3 = msgs[msg_to('w', 2)].id;
  ack(msg_to('w', 1), T0 + 1000);
  ack(msg_to('w', 2), T0 + 2000);
  ck_assert_uint_eq(reply_count, 1);
  /* Answers for the finished request, and ids no request ever had. */
  coord_answer(coord, old2, KV_OK, NULL, 0, 0, T0 + 3000);
  coord_answer(coord, old3, KV_EIO, NULL, 0, 0, T0 + 3000);
  coord_answer(coord, UINT64_C(0xdeadbeefcafef00d), KV_OK, NULL, 0, 0, T0 + 3000);
  coord_answer(coord, UINT64_MAX, KV_OK, NULL, 0, 0, T0 + 3000);
  coord_answer(coord, old2 | 0xffu, KV_OK, NULL, 0, 0, T0 + 3000); /* no such target */
  ck_assert_uint_eq(reply_count, 1);
  /* A new request on the same key (same targets, and here the same slot) is not moved by
   * the old request's ids. */
  msgs_clear();
  put(CALL(1), "k", "v", "all", T0 + 4000);
  ck_assert_uint_eq(msg_count, 2);
  ck_assert_uint_ne(msgs[msg_to('w', 1)].id, old2);
  coord_answer(coord, old2, KV_OK, NULL, 0, 0, T0 + 5000);
  coord_answer(coord, old3, KV_EIO, NULL, 0, 0, T0 + 5000);
  ack(msg_to('w', 2), T0 + 6000);
  ck_assert_uint_eq(reply_count, 1); /* still waiting for n2 */
  ack(msg_to('w', 1), T0 + 7000);
  ck_assert_uint_eq(reply_count, 2);
  last_reply(CALL(1), KV_OK, NULL);
}
END_TEST

START_TEST(delete_goes_through_the_quorum) {
  put(CALL(0), "k", "v", "one", T0);
  const reply_t *p = last_reply(CALL(0), KV_OK, NULL);
  msgs_clear();
  kv_node_req_t d = req_for("k", NULL, "quorum");
  d.context = p->context;
  d.context_bytes = p->context_bytes;
  kv_coord_on_client(coord, CALL(1), KV_OP_DELETE, &d, T0 + 1000, WALL_MS);
  ck_assert_uint_eq(msg_count, 2);
  ck_assert_uint_eq(reply_count, 1);
  /* The tombstone travels: the record sent has a tombstone sibling. */
  kv_dvv_t obj;
  kv_status_t st;
  ck_assert_int_eq(kv_dvv_decode(msgs[0].rec, msgs[0].rec_bytes, &obj, &st), KV_OK);
  ck_assert_uint_eq(obj.sib_count, 1);
  ck_assert(obj.sib[0].tombstone);
  kv_dvv_deinit(&obj);
  ack(msg_to('w', 2), T0 + 2000);
  ck_assert_uint_eq(reply_count, 2);
  const reply_t *r = last_reply(CALL(1), KV_OK, NULL);
  ck_assert(!r->found);
  ck_assert_uint_eq(r->sib_count, 0);
  get(CALL(2), "k", "one", T0 + 3000);
  r = last_reply(CALL(2), KV_OK, NULL);
  ck_assert(!r->found);
}
END_TEST

/* ---- deletes without a context: the coordinator reads, then deletes what it read ------ */

static void blind_delete(void *call, const char *key, const char *level, uint64_t now_us) {
  kv_node_req_t d = req_for(key, NULL, level);
  kv_coord_on_client(coord, call, KV_OP_DELETE, &d, now_us, WALL_MS);
}

/* A version of key that another replica coordinated (n2's first put): what n1 has not got. */
static void remote_version(kv_dvv_t *obj, const char *value) {
  kv_dvv_init(obj);
  kv_actor_t n2 = {.node = "n2", .incarnation = 1};
  kv_cc_t none;
  kv_cc_init(&none);
  kv_status_t st;
  ck_assert_int_eq(kv_dvv_put(obj, &n2, 0, &none, value, (uint32_t)strlen(value), false, 1, 16,
                              &st), KV_OK);
}

/* Answers message m (a read) with obj's record. */
static void answer_with(uint32_t m, const kv_dvv_t *obj, uint64_t now_us) {
  uint8_t *rec;
  size_t rec_bytes;
  ck_assert_int_eq(kv_dvv_encode(obj, &rec, &rec_bytes), KV_OK);
  coord_answer(coord, msgs[m].id, KV_OK, rec, rec_bytes, 0, now_us);
  free(rec);
}

/* The record of message m (a write), decoded into *obj. */
static void sent_record(uint32_t m, kv_dvv_t *obj) {
  kv_status_t st;
  ck_assert_int_eq(kv_dvv_decode(msgs[m].rec, msgs[m].rec_bytes, obj, &st), KV_OK);
}

/* This node's record of key, decoded (the empty object when it has none). */
static void local_record(const char *key, kv_dvv_t *obj) {
  uint8_t *rec;
  size_t rec_bytes;
  kv_status_t st;
  ck_assert_int_eq(kv_node_read_record(node, "default", (const uint8_t *)key, strlen(key), &rec,
                                       &rec_bytes, &st), KV_OK);
  kv_dvv_init(obj);
  if (rec_bytes) ck_assert_int_eq(kv_dvv_decode(rec, rec_bytes, obj, &st), KV_OK);
  free(rec);
}

static uint32_t msgs_of_kind(char kind) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < msg_count && i < MSGS_MAX; i++) n += msgs[i].kind == kind;
  return n;
}

START_TEST(a_delete_without_context_removes_what_its_read_found) {
  /* n2 holds a version n1 never got; n1 holds nothing. */
  kv_dvv_t theirs;
  remote_version(&theirs, "v");
  blind_delete(CALL(0), "k", "quorum", T0);
  /* READING: n1 read itself; n2 and n3 are asked; nothing is written yet. */
  ck_assert_uint_eq(msg_count, 2);
  ck_assert_uint_eq(msgs_of_kind('r'), 2);
  ck_assert(!local_has("k"));
  uint32_t r3 = msg_to('r', 2);
  answer_with(msg_to('r', 1), &theirs, T0 + 1000);
  /* The read met QUORUM: the tombstone is written here, then sent to n2 and n3. */
  ck_assert_uint_eq(msgs_of_kind('w'), 2);
  ck_assert_uint_eq(reply_count, 0);
  kv_dvv_t tomb;
  sent_record(msg_to('w', 1), &tomb);
  ck_assert_uint_eq(tomb.sib_count, 1);
  ck_assert(tomb.sib[0].tombstone);
  ck_assert(kv_cc_covers(&tomb.cc, &theirs.sib[0].dot));
  /* Merged into n2's state it leaves nothing live. */
  kv_status_t st;
  ck_assert_int_eq(kv_dvv_merge(&theirs, &tomb, &st), KV_OK);
  ck_assert_uint_eq(kv_dvv_live_count(&theirs), 0);
  ack(msg_to('w', 2), T0 + 2000);
  const reply_t *r = last_reply(CALL(0), KV_OK, NULL);
  ck_assert(!r->found);
  ck_assert_uint_eq(r->sib_count, 0);
  /* n3's late read answer belongs to a finished read: nothing moves. */
  coord_answer(coord, msgs[r3].id, KV_OK, NULL, 0, 0, T0 + 2500);
  ck_assert_uint_eq(reply_count, 1);
  ck_assert_uint_eq(msg_count, 4);
  get(CALL(1), "k", "one", T0 + 3000);
  ck_assert(!last_reply(CALL(1), KV_OK, NULL)->found);
  kv_dvv_deinit(&tomb);
  kv_dvv_deinit(&theirs);
}
END_TEST

START_TEST(a_delete_without_context_removes_every_sibling) {
  /* Two-sided: n1 holds "a", n2 holds "b" (written concurrently through n2). */
  put(CALL(0), "k", "a", "one", T0);
  kv_dvv_t theirs;
  remote_version(&theirs, "b");
  msgs_clear();
  blind_delete(CALL(1), "k", "all", T0 + 1000);
  answer_with(msg_to('r', 1), &theirs, T0 + 1100);
  ck_assert_uint_eq(msgs_of_kind('w'), 0); /* ALL reads every replica */
  coord_answer(coord, msgs[msg_to('r', 2)].id, KV_OK, NULL, 0, 0, T0 + 1200);
  ck_assert_uint_eq(msgs_of_kind('w'), 2);
  kv_dvv_t tomb;
  sent_record(msg_to('w', 1), &tomb);
  kv_status_t st;
  ck_assert_int_eq(kv_dvv_merge(&theirs, &tomb, &st), KV_OK);
  ck_assert_uint_eq(kv_dvv_live_count(&theirs), 0);
  ack(msg_to('w', 1), T0 + 1300);
  ck_assert_uint_eq(reply_count, 1); /* the write is at ALL too */
  ack(msg_to('w', 2), T0 + 1300);
  const reply_t *r = last_reply(CALL(1), KV_OK, NULL);
  ck_assert(!r->found);
  ck_assert_uint_eq(r->sib_count, 0);
  kv_dvv_deinit(&tomb);
  kv_dvv_deinit(&theirs);
  /* Siblings on this replica, deleted at ONE: it reads only itself, so no read goes out and
   * the answer comes at once. ANY reads at ONE too. */
  const char *levels[] = {"one", "any"};
  for (uint32_t i = 0; i < 2; i++) {
    const char *key = i == 0 ? "k1" : "k2";
    put(CALL(2), key, "a", "one", T0 + 2000);
    put(CALL(3), key, "b", "one", T0 + 2000);
    ck_assert_uint_eq(last_reply(CALL(3), KV_OK, NULL)->sib_count, 2);
    msgs_clear();
    blind_delete(CALL(4), key, levels[i], T0 + 3000);
    ck_assert_uint_eq(msgs_of_kind('r'), 0);
    ck_assert_uint_eq(msgs_of_kind('w'), 2);
    r = last_reply(CALL(4), KV_OK, NULL);
    ck_assert(!r->found);
    ck_assert_uint_eq(r->sib_count, 0);
    get(CALL(5), key, "one", T0 + 4000);
    ck_assert(!last_reply(CALL(5), KV_OK, NULL)->found);
  }
}
END_TEST

START_TEST(a_put_the_delete_did_not_read_survives_it) {
  put(CALL(0), "k", "old", "one", T0);
  uint8_t *old_rec = malloc(msgs[msg_to('w', 1)].rec_bytes);
  size_t old_bytes = msgs[msg_to('w', 1)].rec_bytes;
  ck_assert_ptr_nonnull(old_rec);
  memcpy(old_rec, msgs[msg_to('w', 1)].rec, old_bytes);
  msgs_clear();
  blind_delete(CALL(1), "k", "quorum", T0 + 1000);
  /* While the read is out, a put lands here (after this replica answered the read). */
  put(CALL(2), "k", "new", "one", T0 + 1100);
  ck_assert_uint_eq(last_reply(CALL(2), KV_OK, NULL)->sib_count, 2);
  coord_answer(coord, msgs[msg_to('r', 1)].id, KV_OK, old_rec, old_bytes, 0, T0 + 1200);
  /* The tombstone covers "old" only: "new" stays beside it, here and in what is sent. */
  kv_dvv_t tomb;
  sent_record(msg_to('w', 2), &tomb);
  ck_assert_uint_eq(tomb.sib_count, 2);
  ck_assert_uint_eq(kv_dvv_live_count(&tomb), 1);
  ack(msg_to('w', 2), T0 + 1300);
  const reply_t *r = last_reply(CALL(1), KV_OK, NULL);
  ck_assert(r->found);
  ck_assert_uint_eq(r->sib_count, 1);
  ck_assert_str_eq(r->values[0], "new");
  get(CALL(3), "k", "one", T0 + 2000);
  r = last_reply(CALL(3), KV_OK, NULL);
  ck_assert_uint_eq(r->sib_count, 1);
  ck_assert_str_eq(r->values[0], "new");
  kv_dvv_deinit(&tomb);
  free(old_rec);
}
END_TEST

#define READ_FAILED "a delete without a context reads the key first, and that read failed, so " \
                    "nothing was deleted: "

/* Asserts that this replica's record of k is still *before (and no write went out). */
static void nothing_deleted(const kv_dvv_t *before) {
  kv_dvv_t now;
  local_record("k", &now);
  ck_assert(kv_dvv_equal(&now, before));
  kv_dvv_deinit(&now);
  ck_assert_uint_eq(msgs_of_kind('w'), 0);
}

START_TEST(a_delete_whose_read_fails_writes_nothing) {
  put(CALL(0), "k", "v", "all", T0); /* every replica acks: no hint is handed over later */
  ack(msg_to('w', 1), T0 + 100);
  ack(msg_to('w', 2), T0 + 100);
  kv_dvv_t before;
  local_record("k", &before);
  ck_assert_uint_eq(before.sib_count, 1);
  msgs_clear();
  /* Both other replicas fail the read. */
  blind_delete(CALL(1), "k", "quorum", T0 + 1000);
  coord_answer(coord, msgs[msg_to('r', 1)].id, KV_EIO, NULL, 0, 0, T0 + 1100);
  ck_assert_uint_eq(reply_count, 1);
  coord_answer(coord, msgs[msg_to('r', 2)].id, KV_EIO, NULL, 0, 0, T0 + 1200);
  last_reply(CALL(1), KV_EUNAVAILABLE,
             READ_FAILED "1 of 3 replicas answered, 2 failed; QUORUM needs 2");
  nothing_deleted(&before);
  /* The read times out. */
  msgs_clear();
  kv_node_req_t d = req_for("k", NULL, "all");
  d.timeout_ms = 200;
  kv_coord_on_client(coord, CALL(2), KV_OP_DELETE, &d, T0 + 2000000, WALL_MS);
  ack(msg_to('r', 1), T0 + 2100000);
  kv_coord_on_tick(coord, T0 + 2199999);
  ck_assert_uint_eq(reply_count, 2);
  kv_coord_on_tick(coord, T0 + 2200000);
  last_reply(CALL(2), KV_ETIMEDOUT,
             READ_FAILED "2 of 3 replicas answered within 200 ms; ALL needs 3");
  ack(msg_to('r', 2), T0 + 2300000); /* late: nothing moves */
  ck_assert_uint_eq(reply_count, 3);
  nothing_deleted(&before);
  /* Full peer queues: the transport's RESOURCE_EXHAUSTED, as a get's. */
  msgs_clear();
  queue_full[1] = queue_full[2] = true;
  blind_delete(CALL(3), "k", "quorum", T0 + 3000000);
  last_reply(CALL(3), KV_EBUSY, READ_FAILED QUEUE_FULL_MSG);
  nothing_deleted(&before);
  queue_full[1] = queue_full[2] = false;
  /* Replicas seen dead before anything is read: refused as any write is. */
  alive[1] = alive[2] = false;
  blind_delete(CALL(4), "k", "quorum", T0 + 4000000);
  last_reply(CALL(4), KV_EUNAVAILABLE, "QUORUM needs 2 of 3 replicas; 1 is alive");
  ck_assert_uint_eq(msg_count, 0);
  /* ... or seen dead once the read is done: the write is refused, nothing lands. */
  alive[1] = alive[2] = true;
  blind_delete(CALL(5), "k", "quorum", T0 + 5000000);
  alive[1] = alive[2] = false;
  ack(msg_to('r', 1), T0 + 5000100);
  last_reply(CALL(5), KV_EUNAVAILABLE, "QUORUM needs 2 of 3 replicas; 1 is alive");
  nothing_deleted(&before);
  ck_assert_uint_eq(kv_coord_in_flight(coord), 0);
  kv_dvv_deinit(&before);
}
END_TEST

START_TEST(a_delete_with_context_removes_only_what_it_covers) {
  put(CALL(0), "k", "a", "one", T0);
  const reply_t *p = last_reply(CALL(0), KV_OK, NULL);
  uint8_t ctx[512];
  size_t ctx_bytes = p->context_bytes;
  ck_assert_uint_le(ctx_bytes, sizeof ctx);
  memcpy(ctx, p->context, ctx_bytes);
  put(CALL(1), "k", "b", "one", T0 + 1000); /* blind: a sibling the context has not seen */
  msgs_clear();
  kv_node_req_t d = req_for("k", NULL, "quorum");
  d.context = ctx;
  d.context_bytes = ctx_bytes;
  kv_coord_on_client(coord, CALL(2), KV_OP_DELETE, &d, T0 + 2000, WALL_MS);
  ck_assert_uint_eq(msgs_of_kind('r'), 0); /* no read: the context says what goes */
  ck_assert_uint_eq(msgs_of_kind('w'), 2);
  ack(msg_to('w', 1), T0 + 2100);
  const reply_t *r = last_reply(CALL(2), KV_OK, NULL);
  ck_assert(r->found);
  ck_assert_uint_eq(r->sib_count, 1);
  ck_assert_str_eq(r->values[0], "b");
}
END_TEST

/* ---- tombstone reaping (reaper.h; the config's grace period is 0 here) ------------------ */

/* Puts "v" to k at ALL, then deletes it with the put's context at ALL, every replica acking;
 * returns n1's tombstone record (malloc'd). */
static uint8_t *delete_everywhere(const char *key, size_t *tomb_bytes) {
  put(CALL(0), key, "v", "all", T0);
  ack(msg_to('w', 1), T0 + 100);
  ack(msg_to('w', 2), T0 + 100);
  const reply_t *p = last_reply(CALL(0), KV_OK, NULL);
  msgs_clear();
  kv_node_req_t d = req_for(key, NULL, "all");
  d.context = p->context;
  d.context_bytes = p->context_bytes;
  kv_coord_on_client(coord, CALL(1), KV_OP_DELETE, &d, T0 + 1000, WALL_MS);
  ack(msg_to('w', 1), T0 + 1100);
  ack(msg_to('w', 2), T0 + 1100);
  last_reply(CALL(1), KV_OK, NULL);
  msgs_clear();
  uint8_t *tomb;
  kv_status_t st;
  ck_assert_int_eq(kv_node_read_record(node, "default", (const uint8_t *)key, strlen(key), &tomb,
                                       tomb_bytes, &st), KV_OK);
  ck_assert_ptr_nonnull(tomb);
  return tomb;
}


START_TEST(a_delete_every_replica_acked_is_read_forgotten_and_reaped) {
  size_t tomb_bytes;
  uint8_t *tomb = delete_everywhere("k", &tomb_bytes);
  kv_reap_stats_t rs;
  kv_coord_reap_stats(coord, &rs);
  ck_assert_uint_eq(rs.waiting, 0); /* counted at the next tick */
  kv_coord_on_tick(coord, T0 + 2000);
  /* Read: every other primary is asked for its record; they hold the same tombstone. */
  coord_answer(coord, msgs[msg_to('r', 1)].id, KV_OK, tomb, tomb_bytes, 0, T0 + 2100);
  ck_assert_uint_eq(msg_count, 2);
  coord_answer(coord, msgs[msg_to('r', 2)].id, KV_OK, tomb, tomb_bytes, 0, T0 + 2100);
  /* Forget: every other node is sent the tombstone to drop the hints it covers. */
  uint32_t h2 = msg_to('h', 1), h3 = msg_to('h', 2);
  ck_assert_uint_eq(msgs[h2].rec_bytes, tomb_bytes);
  ck_assert_mem_eq(msgs[h2].rec, tomb, tomb_bytes);
  ck_assert(local_has("k"));
  ack(h2, T0 + 2200);
  ack(h3, T0 + 2200);
  /* Remove, once this node's own forget is fsynced too. */
  ck_assert_int_lt(msg_find('x', 1), 0);
  sync_round(T0 + 2250);
  uint32_t x2 = msg_to('x', 1), x3 = msg_to('x', 2);
  ck_assert(!local_has("k"));
  ack(x2, T0 + 2300);
  kv_coord_reap_stats(coord, &rs);
  ck_assert_uint_eq(rs.reaped, 0);
  ack(x3, T0 + 2300);
  ack(x3, T0 + 2300); /* a duplicate counts once */
  kv_coord_reap_stats(coord, &rs);
  ck_assert_uint_eq(rs.reaped, 1);
  ck_assert_uint_eq(rs.kept, 0);
  free(tomb);
}
END_TEST

START_TEST(a_reap_stops_where_a_replica_differs_or_a_node_is_down) {
  size_t tomb_bytes;
  uint8_t *tomb = delete_everywhere("k", &tomb_bytes);
  kv_coord_on_tick(coord, T0 + 2000);
  coord_answer(coord, msgs[msg_to('r', 1)].id, KV_OK, tomb, tomb_bytes, 0, T0 + 2100);
  /* n3 holds something else (a write that landed since): no forget, no removal. */
  coord_answer(coord, msgs[msg_to('r', 2)].id, KV_OK, tomb, tomb_bytes - 1, 0, T0 + 2100);
  ck_assert_uint_eq(msg_count, 2);
  kv_reap_stats_t rs;
  kv_coord_reap_stats(coord, &rs);
  ck_assert_uint_eq(rs.kept, 1);
  ck_assert(local_has("k"));
  /* A node believed down could keep a hint of the key: nothing is even read. */
  msgs_clear();
  free(tomb);
  tomb = delete_everywhere("k2", &tomb_bytes);
  alive[2] = false;
  kv_coord_on_tick(coord, T0 + 2000);
  ck_assert_uint_eq(msg_count, 0);
  kv_coord_reap_stats(coord, &rs);
  ck_assert_uint_eq(rs.kept, 2);
  ck_assert(local_has("k2"));
  free(tomb);
}
END_TEST

/* The forget step: a hint the tombstone has wholly seen is dropped; one it has not stays. */
START_TEST(a_reap_forgets_the_hints_its_tombstone_covers) {
  alive[1] = alive[2] = false; /* n1 keeps a hint for each, and hands none over */
  put(CALL(0), "k", "v", "one", T0);
  kv_coord_on_tick(coord, T0 + 10000000);
  kv_hint_stats_t hs;
  kv_coord_hint_stats(coord, 1, &hs);
  ck_assert_uint_eq(hs.pending, 1);
  uint8_t *rec;
  size_t rec_bytes;
  kv_status_t st;
  ck_assert_int_eq(kv_node_read_record(node, "default", (const uint8_t *)"k", 1, &rec, &rec_bytes,
                                       &st), KV_OK);
  kv_dvv_t covering, unrelated;
  ck_assert_int_eq(kv_dvv_decode(rec, rec_bytes, &covering, &st), KV_OK);
  kv_dvv_init(&unrelated);
  kv_actor_t other = {.node = "n2", .incarnation = 7};
  ck_assert_int_eq(kv_dvv_put(&covering, &other, 0, &covering.cc, NULL, 0, true, 1, 16, &st), KV_OK);
  ck_assert_int_eq(kv_dvv_put(&unrelated, &other, 0, &unrelated.cc, NULL, 0, true, 1, 16, &st),
                   KV_OK);
  uint8_t *enc;
  size_t enc_bytes;
  ck_assert_int_eq(kv_dvv_encode(&unrelated, &enc, &enc_bytes), KV_OK);
  ck_assert_int_eq(coord_reap(coord, "default", (const uint8_t *)"k", 1, enc, enc_bytes, true,
                                 &st), KV_OK);
  kv_coord_hint_stats(coord, 1, &hs);
  ck_assert_uint_eq(hs.pending, 1);
  free(enc);
  ck_assert_int_eq(kv_dvv_encode(&covering, &enc, &enc_bytes), KV_OK);
  ck_assert_int_eq(coord_reap(coord, "default", (const uint8_t *)"k", 1, enc, enc_bytes, true,
                                 &st), KV_OK);
  for (uint32_t t = 1; t <= 2; t++) {
    kv_coord_hint_stats(coord, t, &hs);
    ck_assert_uint_eq(hs.pending, 0);
    ck_assert_uint_eq(hs.bytes, 0);
  }
  ck_assert(local_has("k")); /* hints only: the record is n1's own business */
  free(enc);
  free(rec);
  kv_dvv_deinit(&covering);
  kv_dvv_deinit(&unrelated);
}
END_TEST

START_TEST(bad_reaps_get_exact_errors) {
  size_t tomb_bytes;
  uint8_t *tomb = delete_everywhere("k", &tomb_bytes);
  kv_status_t st;
  kv_status_clear(&st);
  const uint8_t *key = (const uint8_t *)"k";
  ck_assert_int_eq(coord_reap(coord, "nope", key, 1, tomb, tomb_bytes, false, &st), KV_EINVAL);
  ck_assert_str_eq(st.msg, "reap names keyspace 'nope', which this node does not have");
  ck_assert_int_eq(coord_reap(coord, "default", key, 1, (const uint8_t *)"\xff", 1, false, &st),
                   KV_ECORRUPT);
  /* A record that is not the one stored: it stays. */
  kv_dvv_t other;
  kv_dvv_init(&other);
  uint8_t *enc;
  size_t enc_bytes;
  ck_assert_int_eq(kv_dvv_encode(&other, &enc, &enc_bytes), KV_OK);
  ck_assert_int_eq(coord_reap(coord, "default", key, 1, enc, enc_bytes, false, &st),
                   KV_EPRECONDITION);
  ck_assert_str_eq(st.msg, "key 'k' in keyspace 'default' was written since the reaper read it; "
                           "its record stays");
  ck_assert(local_has("k"));
  ck_assert_int_eq(coord_reap(coord, "default", key, 1, tomb, tomb_bytes, true, &st), KV_OK);
  ck_assert(local_has("k")); /* hints only */
  ck_assert_int_eq(coord_reap(coord, "default", key, 1, tomb, tomb_bytes, false, &st), KV_OK);
  ck_assert(!local_has("k"));
  free(enc);
  free(tomb);
}
END_TEST

START_TEST(siblings_through_the_coordinator) {
  put(CALL(0), "k", "a", "one", T0);
  put(CALL(1), "k", "b", "one", T0 + 1000);
  const reply_t *r = last_reply(CALL(1), KV_OK, NULL);
  ck_assert_uint_eq(r->sib_count, 2);
  ck_assert(reply_has_value(r, "a") && reply_has_value(r, "b"));
  get(CALL(2), "k", "one", T0 + 2000);
  const reply_t *g = last_reply(CALL(2), KV_OK, NULL);
  ck_assert_uint_eq(g->sib_count, 2);
  kv_node_req_t w = req_for("k", "c", "one");
  w.context = g->context;
  w.context_bytes = g->context_bytes;
  kv_coord_on_client(coord, CALL(3), KV_OP_PUT, &w, T0 + 3000, WALL_MS);
  r = last_reply(CALL(3), KV_OK, NULL);
  ck_assert_uint_eq(r->sib_count, 1);
  ck_assert_str_eq(r->values[0], "c");
  ck_assert_uint_eq(reply_count, 4);
}
END_TEST

START_TEST(a_write_the_replica_refuses_sends_nothing) {
  /* A context naming 64 other actors: with this replica's own dot the key's context would
   * name 65, past the limit, so the replica refuses the write. */
  kv_cc_t ctx;
  kv_cc_init(&ctx);
  for (uint32_t i = 0; i < KV_VV_ENTRIES_MAX; i++) {
    kv_dot_t d = {.actor = {.incarnation = 1}, .counter = 1};
    snprintf(d.actor.node, sizeof d.actor.node, "x%02u", i);
    ck_assert_int_eq(kv_cc_add(&ctx, &d), KV_OK);
  }
  uint8_t *bytes;
  size_t n;
  ck_assert_int_eq(kv_cc_encode(&ctx, &bytes, &n), KV_OK);
  kv_node_req_t r = req_for("k", "v", "quorum");
  r.context = bytes;
  r.context_bytes = n;
  kv_coord_on_client(coord, CALL(1), KV_OP_PUT, &r, T0 + 100, WALL_MS);
  free(bytes);
  ck_assert_uint_eq(reply_count, 1);
  last_reply(CALL(1), KV_EBUSY, "the key's causal context would name 65 actors; the limit is 64");
  ck_assert_uint_eq(msg_count, 0);
}
END_TEST

START_TEST(full_peer_queues_are_resource_exhausted) {
  queue_full[1] = queue_full[2] = true;
  put(CALL(0), "k", "v", "quorum", T0);
  ck_assert_uint_eq(refused_count, 2);
  ck_assert_uint_eq(msg_count, 0);
  ck_assert_uint_eq(reply_count, 1);
  last_reply(CALL(0), KV_EBUSY, QUEUE_FULL_MSG);
  /* A get that cannot ask anyone is refused the same way. */
  get(CALL(1), "k", "quorum", T0 + 1000);
  ck_assert_uint_eq(reply_count, 2);
  last_reply(CALL(1), KV_EBUSY, QUEUE_FULL_MSG);
  ck_assert_uint_eq(msg_count, 0);
  /* With only n3 full, QUORUM is met by n2. */
  queue_full[1] = false;
  refused_count = 0;
  put(CALL(2), "k2", "v", "quorum", T0 + 2000);
  ck_assert_uint_eq(refused_count, 1);
  ck_assert_uint_eq(msg_count, 1);
  ck_assert_uint_eq(reply_count, 2);
  ack(msg_to('w', 1), T0 + 3000);
  ck_assert_uint_eq(reply_count, 3);
  const reply_t *r = last_reply(CALL(2), KV_OK, NULL);
  ck_assert_str_eq(r->values[0], "v");
  /* A get whose first choice is full asks the other peer. */
  queue_full[1] = true;
  queue_full[2] = false;
  msgs_clear();
  get(CALL(3), "k2", "quorum", T0 + 4000);
  ck_assert_uint_eq(msg_count, 1);
  ck_assert_uint_eq(msgs[0].node, 2);
  coord_answer(coord, msgs[0].id, KV_OK, NULL, 0, 0, T0 + 5000);
  ck_assert_uint_eq(reply_count, 4);
  r = last_reply(CALL(3), KV_OK, NULL);
  ck_assert(r->found);
}
END_TEST

START_TEST(too_many_requests_in_flight_is_resource_exhausted) {
  char key[32];
  for (uint32_t i = 0; i < KV_COORD_PENDING_MAX; i++) {
    snprintf(key, sizeof key, "k%u", i);
    put(CALL(0), key, "v", "all", T0);
  }
  ck_assert_uint_eq(reply_count, 0);
  ck_assert_uint_eq(msg_count, 2 * KV_COORD_PENDING_MAX);
  put(CALL(1), "one-more", "v", "quorum", T0);
  ck_assert_uint_eq(reply_count, 1);
  last_reply(CALL(1), KV_EBUSY, "node has 4096 requests in flight; retry later");
  ck_assert_uint_eq(msg_count, 2 * KV_COORD_PENDING_MAX);
  ck_assert(!local_has("one-more"));
  /* Their deadline answers the waiting calls and frees the slots. */
  kv_coord_on_tick(coord, T0 + 2000000);
  ck_assert_uint_eq(reply_count, 1 + KV_COORD_PENDING_MAX);
  ck_assert_int_eq(replies[1].code, KV_ETIMEDOUT);
  replies_clear();
  put(CALL(2), "one-more", "v", "one", T0 + 2000001);
  last_reply(CALL(2), KV_OK, NULL);
}
END_TEST

/* ---- reads -------------------------------------------------------------------------- */

/* A second real replica (n2) on its own store, for records n1 does not have. */
static sim_store_t *store2;
static kv_storage_t storage2;
static kv_node_t *node2;

static void node2_open(void) {
  kv_status_t st;
  store2 = sim_store_open("n2", 0x2222);
  sim_store_storage(store2, &storage2);
  ck_assert_int_eq(kv_node_create(&cfg, "n2", &storage2, &node2, &st), KV_OK);
}

static void node2_close(void) {
  kv_node_destroy(node2);
  sim_store_crash(store2, false);
}

/* Puts on n2 directly; *rec gets the record it stored (malloc'd). */
static void node2_put(const char *key, const char *value, uint8_t **rec, size_t *rec_bytes) {
  kv_node_req_t r = req_for(key, value, "");
  kv_node_plan_t plan;
  kv_node_result_t res;
  kv_status_t st;
  ck_assert_int_eq(kv_node_plan(node2, &r, true, &plan, &st), KV_OK);
  ck_assert_int_eq(kv_node_put(node2, &r, &plan, WALL_MS, &res, &st), KV_OK);
  *rec = res.record;
  *rec_bytes = res.record_bytes;
  res.record = NULL;
  kv_node_result_free(&res);
}

START_TEST(get_one_reads_only_this_replica) {
  put(CALL(0), "k", "v1", "one", T0);
  msgs_clear();
  get(CALL(1), "k", "one", T0 + 1000);
  ck_assert_uint_eq(msg_count, 0);
  ck_assert_uint_eq(reply_count, 2);
  const reply_t *r = last_reply(CALL(1), KV_OK, NULL);
  ck_assert(r->found);
  ck_assert_uint_eq(r->sib_count, 1);
  ck_assert_str_eq(r->values[0], "v1");
  /* A key nobody has: not found, still OK. */
  get(CALL(2), "absent", "one", T0 + 2000);
  r = last_reply(CALL(2), KV_OK, NULL);
  ck_assert(!r->found);
  ck_assert_uint_eq(msg_count, 0);
}
END_TEST

START_TEST(get_quorum_asks_every_live_peer_and_merges) {
  put(CALL(0), "k", "v1", "one", T0);
  msgs_clear();
  get(CALL(1), "k", "quorum", T0 + 1000);
  ck_assert_uint_eq(msg_count, 2);
  ck_assert_int_eq(msgs[0].kind, 'r');
  ck_assert_int_eq(msgs[1].kind, 'r');
  ck_assert_str_eq(msgs[0].keyspace, "default");
  ck_assert_mem_eq(msgs[0].key, "k", 1);
  ck_assert_uint_eq(reply_count, 1);
  coord_answer(coord, msgs[0].id, KV_OK, NULL, 0, 0, T0 + 2000); /* the peer has nothing */
  ck_assert_uint_eq(reply_count, 2);
  const reply_t *r = last_reply(CALL(1), KV_OK, NULL);
  ck_assert(r->found);
  ck_assert_uint_eq(r->sib_count, 1);
  ck_assert_str_eq(r->values[0], "v1");

  /* A key written only on n2, and one with a concurrent version on each. */
  node2_open();
  uint8_t *rec_r, *rec_m;
  size_t rec_r_bytes, rec_m_bytes;
  node2_put("remote", "r", &rec_r, &rec_r_bytes);
  put(CALL(2), "mixed", "a", "one", T0 + 3000);
  node2_put("mixed", "b", &rec_m, &rec_m_bytes);
  node2_close();
  msgs_clear();
  get(CALL(3), "remote", "quorum", T0 + 4000);
  ck_assert_uint_eq(msg_count, 2);
  coord_answer(coord, msgs[0].id, KV_OK, rec_r, rec_r_bytes, 0, T0 + 5000);
  r = last_reply(CALL(3), KV_OK, NULL);
  ck_assert(r->found);
  ck_assert_uint_eq(r->sib_count, 1);
  ck_assert_str_eq(r->values[0], "r");
  /* Async read repair: once the last asked replica answers, every replica behind the merge
   * gets it: this one at once, the empty peer by a replica write of the merged record. */
  ck_assert(!local_has("remote"));
  coord_answer(coord, msgs[1].id, KV_OK, NULL, 0, 0, T0 + 5500);
  ck_assert(local_has("remote"));
  ck_assert_uint_eq(msg_count, 3);
  ck_assert_int_eq(msgs[2].kind, 'w');
  ck_assert_uint_eq(msgs[2].node, msgs[1].node);
  ck_assert_uint_eq(msgs[2].rec_bytes, rec_r_bytes);
  ck_assert_mem_eq(msgs[2].rec, rec_r, rec_r_bytes);
  msgs_clear();
  get(CALL(4), "mixed", "quorum", T0 + 6000);
  ck_assert_uint_eq(msg_count, 2);
  coord_answer(coord, msgs[0].id, KV_OK, rec_m, rec_m_bytes, 0, T0 + 7000);
  r = last_reply(CALL(4), KV_OK, NULL);
  ck_assert_uint_eq(r->sib_count, 2);
  ck_assert(reply_has_value(r, "a") && reply_has_value(r, "b"));
  free(rec_r);
  free(rec_m);
}
END_TEST

START_TEST(get_quorum_survives_a_failed_peer) {
  put(CALL(0), "k", "v1", "one", T0);
  msgs_clear();
  get(CALL(1), "k", "quorum", T0 + 1000);
  ck_assert_uint_eq(msg_count, 2);
  coord_answer(coord, msgs[0].id, KV_EIO, NULL, 0, 0, T0 + 2000);
  ck_assert_uint_eq(reply_count, 1);
  ck_assert_uint_eq(msg_count, 2);
  coord_answer(coord, msgs[1].id, KV_OK, NULL, 0, 0, T0 + 3000);
  ck_assert_uint_eq(reply_count, 2);
  const reply_t *r = last_reply(CALL(1), KV_OK, NULL);
  ck_assert_str_eq(r->values[0], "v1");

  /* A peer believed dead is not asked until the live one fails; then it is. */
  alive[2] = false;
  msgs_clear();
  get(CALL(5), "k", "quorum", T0 + 3500);
  ck_assert_uint_eq(msg_count, 1);
  ck_assert_uint_eq(msgs[0].node, 1);
  coord_answer(coord, msgs[0].id, KV_EIO, NULL, 0, 0, T0 + 3600);
  ck_assert_uint_eq(msg_count, 2);
  ck_assert_int_eq(msgs[1].kind, 'r');
  ck_assert_uint_eq(msgs[1].node, 2);
  coord_answer(coord, msgs[1].id, KV_OK, NULL, 0, 0, T0 + 3700);
  last_reply(CALL(5), KV_OK, NULL);
  alive[2] = true;

  /* Both peers fail: UNAVAILABLE, counted as answers. */
  msgs_clear();
  replies_clear();
  get(CALL(2), "k", "quorum", T0 + 4000);
  coord_answer(coord, msgs[0].id, KV_EIO, NULL, 0, 0, T0 + 5000);
  ck_assert_uint_eq(msg_count, 2);
  coord_answer(coord, msgs[1].id, KV_ETIMEDOUT, NULL, 0, 0, T0 + 6000);
  ck_assert_uint_eq(reply_count, 1);
  last_reply(CALL(2), KV_EUNAVAILABLE, "1 of 3 replicas answered, 2 failed; QUORUM needs 2");
  ck_assert_uint_eq(msg_count, 2);

  /* A record that does not decode is a failed answer; the other peer decides. */
  msgs_clear();
  get(CALL(3), "k", "quorum", T0 + 7000);
  static const uint8_t junk[] = {0xff, 0xff, 0xff, 0x01};
  coord_answer(coord, msgs[0].id, KV_OK, junk, sizeof junk, 0, T0 + 8000);
  ck_assert_uint_eq(reply_count, 1);
  ck_assert_uint_eq(msg_count, 2);
  coord_answer(coord, msgs[1].id, KV_OK, NULL, 0, 0, T0 + 9000);
  r = last_reply(CALL(3), KV_OK, NULL);
  ck_assert(r->found);
}
END_TEST

START_TEST(get_quorum_skips_a_dead_peer) {
  put(CALL(0), "k", "v1", "one", T0);
  for (uint32_t dead = 1; dead <= 2; dead++) {
    msgs_clear();
    alive[1] = alive[2] = true;
    alive[dead] = false;
    get(CALL(1), "k", "quorum", T0 + 1000);
    ck_assert_uint_eq(msg_count, 1);
    ck_assert_uint_eq(msgs[0].node, 3 - dead);
    coord_answer(coord, msgs[0].id, KV_OK, NULL, 0, 0, T0 + 2000);
    last_reply(CALL(1), KV_OK, NULL);
  }
}
END_TEST

START_TEST(get_all_asks_both_peers) {
  put(CALL(0), "k", "v1", "one", T0);
  msgs_clear();
  get(CALL(1), "k", "all", T0 + 1000);
  ck_assert_uint_eq(msg_count, 2);
  uint32_t to2 = msg_to('r', 1), to3 = msg_to('r', 2);
  coord_answer(coord, msgs[to3].id, KV_OK, NULL, 0, 0, T0 + 2000);
  ck_assert_uint_eq(reply_count, 1);
  coord_answer(coord, msgs[to2].id, KV_OK, NULL, 0, 0, T0 + 3000);
  ck_assert_uint_eq(reply_count, 2);
  last_reply(CALL(1), KV_OK, NULL);
}
END_TEST

/* Blocking read repair (the default at QUORUM): a replica that answered with less than the
 * merge is sent the merge, and the answer waits for its ack. */
START_TEST(get_quorum_repairs_a_stale_peer_before_answering) {
  put(CALL(0), "k", "v1", "one", T0);
  msgs_clear();
  get_blocking(CALL(1), "k", "quorum", T0 + 1000);
  ck_assert_uint_eq(msg_count, 2);
  uint32_t stale = msgs[0].node;
  coord_answer(coord, msgs[0].id, KV_OK, NULL, 0, 0, T0 + 2000); /* it has nothing */
  ck_assert_uint_eq(reply_count, 1);
  ck_assert_uint_eq(msg_count, 3);
  ck_assert_int_eq(msgs[2].kind, 'w');
  ck_assert_uint_eq(msgs[2].node, stale);
  ck_assert(!msgs[2].durable);
  uint64_t repair = msgs[2].id;
  /* The late answer of the other peer does not release the read. */
  coord_answer(coord, msgs[1].id, KV_OK, NULL, 0, 0, T0 + 2500);
  ck_assert_uint_eq(reply_count, 1);
  coord_answer(coord, repair, KV_OK, NULL, 0, 0, T0 + 3000);
  ck_assert_uint_eq(reply_count, 2);
  const reply_t *r = last_reply(CALL(1), KV_OK, NULL);
  ck_assert_str_eq(r->values[0], "v1");
  /* A duplicated ack changes nothing. */
  coord_answer(coord, repair, KV_OK, NULL, 0, 0, T0 + 3100);
  ck_assert_uint_eq(reply_count, 2);

  /* A failed repair fails the read: answering would let the next quorum read go back. */
  msgs_clear();
  get_blocking(CALL(2), "k", "quorum", T0 + 4000);
  coord_answer(coord, msgs[0].id, KV_OK, NULL, 0, 0, T0 + 5000);
  ck_assert_uint_eq(msg_count, 3);
  coord_answer(coord, msgs[2].id, KV_EIO, NULL, 0, 0, T0 + 6000);
  last_reply(CALL(2), KV_EUNAVAILABLE,
             "QUORUM read answered, but repairing a replica that was behind failed or timed "
             "out; retry");
  /* So does a repair not acked by the deadline. */
  msgs_clear();
  get_blocking(CALL(3), "k", "quorum", T0 + 7000);
  coord_answer(coord, msgs[0].id, KV_OK, NULL, 0, 0, T0 + 8000);
  kv_coord_on_tick(coord, T0 + 7000 + KV_TIMEOUT_MS_DEFAULT * 1000 - 1);
  ck_assert_uint_eq(reply_count, 3);
  kv_coord_on_tick(coord, T0 + 7000 + KV_TIMEOUT_MS_DEFAULT * 1000);
  last_reply(CALL(3), KV_EUNAVAILABLE, NULL);
  ck_assert_uint_eq(kv_coord_in_flight(coord), 0);
}
END_TEST

/* A read whose handler resolves the merge to one version writes it back here (a put with
 * the merge's whole context) and the repairs carry that record: every replica ends with the
 * resolution, and the discarded version is journaled. */
START_TEST(get_writes_a_resolution_back_through_read_repair) {
  node2_open();
  uint8_t *rec;
  size_t rec_bytes;
  node2_put("c", "from-n2", &rec, &rec_bytes);
  node2_close();
  put(CALL(0), "c", "from-n1", "one", T0);
  msgs_clear();
  kv_node_req_t r = req_for("c", NULL, "quorum");
  r.handler = "lww";
  kv_coord_on_client(coord, CALL(1), KV_OP_GET, &r, T0 + 1000, WALL_MS);
  ck_assert_uint_eq(msg_count, 2);
  uint32_t from = msgs[0].node;
  coord_answer(coord, msgs[0].id, KV_OK, rec, rec_bytes, 0, T0 + 2000);
  free(rec);
  /* The quorum is met: this replica wrote the resolution back, and the repair to the peer
   * that answered carries it. */
  ck_assert_uint_eq(msg_count, 3);
  ck_assert_int_eq(msgs[2].kind, 'w');
  ck_assert_uint_eq(msgs[2].node, from);
  kv_dvv_t sent;
  kv_status_t st;
  ck_assert_int_eq(kv_dvv_decode(msgs[2].rec, msgs[2].rec_bytes, &sent, &st), KV_OK);
  ck_assert_uint_eq(sent.sib_count, 1);
  ck_assert_str_eq(sent.sib[0].dot.actor.node, "n1"); /* minted here */
  /* Equal timestamps (one wall clock): the larger node id, n2, wins. */
  ck_assert_mem_eq(sent.sib[0].value, "from-n2", 7);
  kv_dvv_deinit(&sent);
  coord_answer(coord, msgs[2].id, KV_OK, NULL, 0, 0, T0 + 3000);
  const reply_t *a = last_reply(CALL(1), KV_OK, NULL);
  ck_assert_uint_eq(a->sib_count, 1);
  ck_assert_str_eq(a->values[0], "from-n2");
  /* This replica's own record is the resolution too. */
  uint8_t *mine;
  size_t mine_bytes;
  ck_assert_int_eq(kv_node_read_record(node, "default", (const uint8_t *)"c", 1, &mine,
                                       &mine_bytes, &st), KV_OK);
  ck_assert_uint_eq(mine_bytes, msgs[2].rec_bytes);
  ck_assert_mem_eq(mine, msgs[2].rec, mine_bytes);
  free(mine);
  kv_journal_entry_t *e;
  uint32_t n;
  bool more;
  ck_assert_int_eq(kv_journal_list(kv_node_journal(node), 0, SIZE_MAX, &e, &n, &more), KV_OK);
  ck_assert_uint_eq(n, 1);
  ck_assert_str_eq(e[0].reason, "write-back");
  ck_assert_str_eq(e[0].handler, "lww");
  ck_assert_mem_eq(e[0].discarded[0].value, "from-n1", 7);
  kv_journal_entries_free(e, n);
}
END_TEST

/* This replica behind the peer: it merges the peer's state at once, and the peer, current,
 * gets nothing; the answer goes without waiting. */
START_TEST(get_quorum_repairs_this_replica_at_once) {
  node2_open();
  uint8_t *rec;
  size_t rec_bytes;
  node2_put("far", "x", &rec, &rec_bytes);
  node2_close();
  msgs_clear();
  get_blocking(CALL(0), "far", "quorum", T0);
  coord_answer(coord, msgs[0].id, KV_OK, rec, rec_bytes, 0, T0 + 1000);
  const reply_t *r = last_reply(CALL(0), KV_OK, NULL);
  ck_assert_str_eq(r->values[0], "x");
  ck_assert(local_has("far"));
  ck_assert_uint_eq(msg_count, 2);
  free(rec);
}
END_TEST

START_TEST(get_times_out_at_its_deadline) {
  kv_node_req_t r = req_for("k", NULL, "quorum");
  r.timeout_ms = 100;
  r.read_repair = "async";
  kv_coord_on_client(coord, CALL(0), KV_OP_GET, &r, T0, WALL_MS);
  ck_assert_uint_eq(msg_count, 2);
  kv_coord_on_tick(coord, T0 + 99999);
  ck_assert_uint_eq(reply_count, 0);
  kv_coord_on_tick(coord, T0 + 100000);
  ck_assert_uint_eq(reply_count, 1);
  last_reply(CALL(0), KV_ETIMEDOUT, "1 of 3 replicas answered within 100 ms; QUORUM needs 2");
  coord_answer(coord, msgs[0].id, KV_OK, NULL, 0, 0, T0 + 150000);
  ck_assert_uint_eq(reply_count, 1);
}
END_TEST

START_TEST(get_local_reads_this_replica_only) {
  put(CALL(0), "k", "v1", "one", T0);
  msgs_clear();
  alive[1] = alive[2] = false; /* local reads need no peer */
  kv_node_req_t r = req_for("k", NULL, "all");
  r.local = true;
  kv_coord_on_client(coord, CALL(1), KV_OP_GET, &r, T0 + 1000, WALL_MS);
  ck_assert_uint_eq(msg_count, 0);
  ck_assert_uint_eq(reply_count, 2);
  const reply_t *g = last_reply(CALL(1), KV_OK, NULL);
  ck_assert(g->found);
  ck_assert_str_eq(g->values[0], "v1");
}
END_TEST

START_TEST(invalid_requests_are_answered_before_anything_happens) {
  kv_node_req_t r = req_for("k", "v", "quorum");
  r.keyspace = "nope";
  kv_coord_on_client(coord, CALL(0), KV_OP_PUT, &r, T0, WALL_MS);
  last_reply(CALL(0), KV_ENOTFOUND, "keyspace 'nope' does not exist");
  kv_coord_on_client(coord, CALL(1), KV_OP_GET, &r, T0, WALL_MS);
  last_reply(CALL(1), KV_ENOTFOUND, "keyspace 'nope' does not exist");
  r = req_for("k", NULL, "");
  r.count = 4;
  kv_coord_on_client(coord, CALL(2), KV_OP_GET, &r, T0, WALL_MS);
  last_reply(CALL(2), KV_EINVAL, "r is 4 but keyspace 'default' has only N=3 replicas");
  r = req_for("k", "v", "");
  r.count = 4;
  kv_coord_on_client(coord, CALL(3), KV_OP_PUT, &r, T0, WALL_MS);
  last_reply(CALL(3), KV_EINVAL, "w is 4 but keyspace 'default' has only N=3 replicas");
  r = req_for("k", "v", "most");
  kv_coord_on_client(coord, CALL(4), KV_OP_PUT, &r, T0, WALL_MS);
  last_reply(CALL(4), KV_EINVAL,
             "unknown consistency level 'most'; use one of ONE, TWO, THREE, QUORUM, ALL, ANY, "
             "LOCAL_ONE, LOCAL_QUORUM, EACH_QUORUM");
  r = req_for("k", NULL, "any");
  kv_coord_on_client(coord, CALL(5), KV_OP_GET, &r, T0, WALL_MS);
  last_reply(CALL(5), KV_EINVAL, "ANY is a write level; reads need at least ONE");
  r = req_for("", "v", "");
  kv_coord_on_client(coord, CALL(6), KV_OP_PUT, &r, T0, WALL_MS);
  last_reply(CALL(6), KV_EINVAL, "key is empty");
  ck_assert_uint_eq(reply_count, 7);
  ck_assert_uint_eq(msg_count, 0);
  ck_assert_uint_eq(refused_count, 0);
  ck_assert(!local_has("k"));
}
END_TEST

/* ---- keys this node is not a replica of (keyspace "pair", N=2) ---------------------- */

/* A key of "pair" whose replicas (in preference order) are pl->node[0..1], without n1. */
static void key_outside_n1(char *key, size_t key_size, kv_preflist_t *pl) {
  for (uint32_t i = 0; i < 1000; i++) {
    snprintf(key, key_size, "p%u", i);
    kv_node_req_t r = req_for(key, NULL, "");
    r.keyspace = "pair";
    kv_node_plan_t plan;
    kv_status_t st;
    ck_assert_int_eq(kv_node_plan(node, &r, false, &plan, &st), KV_OK);
    kv_ring_preflist(&ring, plan.ks, plan.partition, pl);
    ck_assert_uint_eq(pl->primary_count, 2);
    if (!kv_preflist_is_primary(pl, 0)) return;
  }
  ck_abort_msg("no key of keyspace 'pair' lives outside n1");
}

static const char raw_request[] = "the request as received";

static void pair_write(void *call, kv_op_t op, const char *key, uint64_t now_us) {
  kv_node_req_t r = req_for(key, op == KV_OP_PUT ? "v" : NULL, "one");
  r.keyspace = "pair";
  r.timeout_ms = 300;
  r.raw = (const uint8_t *)raw_request;
  r.raw_bytes = sizeof raw_request;
  kv_coord_on_client(coord, call, op, &r, now_us, WALL_MS);
}

START_TEST(writes_at_a_non_replica_are_forwarded) {
  char key[16];
  kv_preflist_t pl;
  key_outside_n1(key, sizeof key, &pl);
  pair_write(CALL(0), KV_OP_PUT, key, T0);
  ck_assert_uint_eq(msg_count, 1);
  ck_assert_int_eq(msgs[0].kind, 'f');
  ck_assert_uint_eq(msgs[0].node, pl.node[0]);
  ck_assert_ptr_eq(msgs[0].call, CALL(0));
  ck_assert_int_eq(msgs[0].op, KV_OP_PUT);
  ck_assert_uint_eq(msgs[0].timeout_ms, 300);
  ck_assert_uint_eq(msgs[0].rec_bytes, sizeof raw_request);
  ck_assert_mem_eq(msgs[0].rec, raw_request, sizeof raw_request);
  ck_assert_uint_eq(reply_count, 0); /* the transport relays the replica's answer */
  uint8_t *rec;
  size_t rec_bytes;
  kv_status_t st;
  ck_assert_int_eq(kv_node_read_record(node, "pair", (const uint8_t *)key, strlen(key), &rec,
                                       &rec_bytes, &st),
                   KV_OK);
  ck_assert_uint_eq(rec_bytes, 0); /* no dot minted here */
  free(rec);
  /* The first replica down: the next live one; a delete is forwarded as a delete. */
  alive[pl.node[0]] = false;
  pair_write(CALL(1), KV_OP_DELETE, key, T0 + 1000);
  ck_assert_uint_eq(msg_count, 2);
  ck_assert_uint_eq(msgs[1].node, pl.node[1]);
  ck_assert_int_eq(msgs[1].op, KV_OP_DELETE);
  ck_assert_ptr_eq(msgs[1].call, CALL(1));
  ck_assert_uint_eq(reply_count, 0);
  /* Its queue full: the transport's RESOURCE_EXHAUSTED. */
  queue_full[pl.node[1]] = true;
  pair_write(CALL(2), KV_OP_PUT, key, T0 + 2000);
  ck_assert_uint_eq(reply_count, 1);
  last_reply(CALL(2), KV_EBUSY, QUEUE_FULL_MSG);
  /* No replica alive: refused here. n1 itself could stand in for one (it is the key's
   * fallback), which meets ONE, but a fallback never coordinates. */
  queue_full[pl.node[1]] = false;
  alive[pl.node[1]] = false;
  pair_write(CALL(3), KV_OP_PUT, key, T0 + 3000);
  ck_assert_uint_eq(reply_count, 2);
  last_reply(CALL(3), KV_EUNAVAILABLE,
             "ONE write needs a live primary replica to coordinate it; all 2 are down");
  ck_assert_uint_eq(msg_count, 2);
  /* Without sloppy quorum there is no stand-in: the level itself cannot be met. */
  cfg.keyspaces[1].sloppy_quorum = false;
  pair_write(CALL(4), KV_OP_PUT, key, T0 + 4000);
  ck_assert_uint_eq(reply_count, 3);
  last_reply(CALL(4), KV_EUNAVAILABLE, "ONE needs 1 of 2 replicas; 0 are alive");
  ck_assert_uint_eq(msg_count, 2);
}
END_TEST

START_TEST(gets_at_a_non_replica_are_coordinated_here) {
  char key[16];
  kv_preflist_t pl;
  key_outside_n1(key, sizeof key, &pl);
  kv_node_req_t r = req_for(key, NULL, "one");
  r.keyspace = "pair";
  kv_coord_on_client(coord, CALL(0), KV_OP_GET, &r, T0, WALL_MS);
  ck_assert_uint_eq(msg_count, 2);
  ck_assert_int_eq(msgs[0].kind, 'r');
  ck_assert_uint_eq(msgs[0].node, pl.node[0]);
  ck_assert_uint_eq(msgs[1].node, pl.node[1]);
  ck_assert_str_eq(msgs[0].keyspace, "pair");
  ck_assert_uint_eq(reply_count, 0);
  /* Answered with a record from a replica (a value this node never stored). */
  kv_dvv_t obj;
  kv_dvv_init(&obj);
  kv_actor_t who;
  memset(&who, 0, sizeof who);
  snprintf(who.node, sizeof who.node, "%s", cfg.nodes[pl.node[0]].id);
  who.incarnation = 7;
  kv_cc_t ctx;
  kv_cc_init(&ctx);
  kv_status_t st;
  ck_assert_int_eq(kv_dvv_put(&obj, &who, 0, &ctx, "far", 3, false, 1, 16, &st), KV_OK);
  uint8_t *rec;
  size_t rec_bytes;
  ck_assert_int_eq(kv_dvv_encode(&obj, &rec, &rec_bytes), KV_OK);
  kv_dvv_deinit(&obj);
  coord_answer(coord, msgs[0].id, KV_OK, rec, rec_bytes, 0, T0 + 1000);
  free(rec);
  ck_assert_uint_eq(reply_count, 1);
  const reply_t *g = last_reply(CALL(0), KV_OK, NULL);
  ck_assert(g->found);
  ck_assert_str_eq(g->values[0], "far");
  /* A failed answer: the other replica is asked; ALL (2 of 2) asks both at once. */
  msgs_clear();
  kv_coord_on_client(coord, CALL(1), KV_OP_GET, &r, T0 + 2000, WALL_MS);
  coord_answer(coord, msgs[0].id, KV_EIO, NULL, 0, 0, T0 + 3000);
  ck_assert_uint_eq(msg_count, 2);
  ck_assert_uint_eq(msgs[1].node, pl.node[1]);
  coord_answer(coord, msgs[1].id, KV_OK, NULL, 0, 0, T0 + 4000);
  last_reply(CALL(1), KV_OK, NULL);
  msgs_clear();
  r.level = "all";
  kv_coord_on_client(coord, CALL(2), KV_OP_GET, &r, T0 + 5000, WALL_MS);
  ck_assert_uint_eq(msg_count, 2);
  coord_answer(coord, msgs[0].id, KV_OK, NULL, 0, 0, T0 + 6000);
  ck_assert_uint_eq(reply_count, 2);
  coord_answer(coord, msgs[1].id, KV_EIO, NULL, 0, 0, T0 + 7000);
  ck_assert_uint_eq(reply_count, 3);
  last_reply(CALL(2), KV_EUNAVAILABLE, "1 of 2 replicas answered, 1 failed; ALL needs 2");
}
END_TEST

/* ---- durable writes (the self-ack is the group commit's: sync_round) ------------------ */

START_TEST(durable_put_all_waits_for_the_sync) {
  kv_node_req_t r = req_for("k", "v", "all");
  r.durable = true;
  kv_coord_on_client(coord, CALL(0), KV_OP_PUT, &r, T0, WALL_MS);
  ck_assert_uint_eq(msg_count, 2);
  ck_assert(msgs[0].durable && msgs[1].durable);
  ck_assert_uint_eq(syncs_wanted, 1);
  ack(msg_to('w', 1), T0 + 1000);
  ack(msg_to('w', 2), T0 + 1000);
  /* ALL needs this replica's ack too, which only the sync gives. */
  ck_assert_uint_eq(reply_count, 0);
  sync_round(T0 + 2000);
  ck_assert_uint_eq(reply_count, 1);
  const reply_t *rep = last_reply(CALL(0), KV_OK, NULL);
  ck_assert(rep->found);
  ck_assert_str_eq(rep->values[0], "v");
}
END_TEST

START_TEST(durable_put_one_is_acked_only_after_the_sync) {
  alive[1] = alive[2] = false; /* nobody else can ack */
  kv_node_req_t r = req_for("k", "v", "one");
  r.durable = true;
  kv_coord_on_client(coord, CALL(0), KV_OP_PUT, &r, T0, WALL_MS);
  ck_assert_msg(reply_count == 0, "a durable write was acknowledged before its fsync");
  sync_round(T0 + 1000);
  last_reply(CALL(0), KV_OK, NULL);
}
END_TEST

/* ---- hinted handoff ----------------------------------------------------------------- */

static kv_hint_stats_t hint_stats(uint32_t target) {
  kv_hint_stats_t hs;
  kv_coord_hint_stats(coord, target, &hs);
  return hs;
}

/* A QUORUM put acked by n2 whose message to n3 fails: n3 gets a hint. */
static void put_missing_n3(void *call, const char *key, const char *value, uint64_t now_us) {
  msgs_clear();
  put(call, key, value, "quorum", now_us);
  ack(msg_to('w', 1), now_us + 1000);
  coord_answer(coord, msgs[msg_to('w', 2)].id, KV_EIO, NULL, 0, 0, now_us + 2000);
  last_reply(call, KV_OK, NULL);
}

/* Replaces the fixture's coordinator by one with these hint settings. */
static void coord_recreate(uint64_t hint_bytes_max, uint32_t hint_rate_per_s) {
  sync_round(T0);
  kv_coord_destroy(coord);
  kv_syncer_init(&syncer, sync_wanted, NULL);
  kv_coord_opts_t opts = {.hint_bytes_max = hint_bytes_max, .hint_rate_per_s = hint_rate_per_s};
  kv_coord_transport_t tr = fake_transport();
  kv_status_t st;
  ck_assert_int_eq(kv_coord_create(node, &ring, &syncer, &tr, fake_reply, &opts, &coord, &st),
                   KV_OK);
}

START_TEST(an_unacked_replica_gets_a_hint_handed_over_when_alive) {
  put_missing_n3(CALL(0), "k", "v1", T0);
  kv_hint_stats_t hs = hint_stats(2);
  ck_assert_uint_eq(hs.pending, 1);
  ck_assert_uint_gt(hs.bytes, 1);
  ck_assert_uint_eq(hint_stats(1).pending, 0);
  /* Not while n3 is believed down. */
  alive[2] = false;
  msgs_clear();
  kv_coord_on_tick(coord, T0 + 1000000);
  ck_assert_uint_eq(msg_count, 0);
  /* Once it is up: the key's record, as a replica write, with a handoff id. */
  alive[2] = true;
  kv_coord_on_tick(coord, T0 + 2000000);
  ck_assert_uint_eq(msg_count, 1);
  ck_assert_int_eq(msgs[0].kind, 'w');
  ck_assert_uint_eq(msgs[0].node, 2);
  ck_assert(msgs[0].id & KV_HINT_ID_BIT);
  uint8_t *rec;
  size_t rec_bytes;
  kv_status_t st;
  ck_assert_int_eq(kv_node_read_record(node, "default", (const uint8_t *)"k", 1, &rec,
                                       &rec_bytes, &st), KV_OK);
  ck_assert_uint_eq(msgs[0].rec_bytes, rec_bytes);
  ck_assert_mem_eq(msgs[0].rec, rec, rec_bytes);
  free(rec);
  /* One round at a time: nothing more until it is answered. */
  kv_coord_on_tick(coord, T0 + 2100000);
  ck_assert_uint_eq(msg_count, 1);
  uint64_t id = msgs[0].id;
  coord_answer(coord, id, KV_OK, NULL, 0, 0, T0 + 2200000);
  hs = hint_stats(2);
  ck_assert_uint_eq(hs.pending, 0);
  ck_assert_uint_eq(hs.bytes, 0);
  ck_assert_uint_eq(hs.delivered, 1);
  coord_answer(coord, id, KV_OK, NULL, 0, 0, T0 + 2300000); /* a duplicate changes nothing */
  ck_assert_uint_eq(hint_stats(2).delivered, 1);
  kv_coord_on_tick(coord, T0 + 3000000);
  ck_assert_uint_eq(msg_count, 1);
}
END_TEST

/* A reap's forget refuses while a hint of the key is on its way: that message could land on a
 * primary after the reap. */
START_TEST(a_reap_refuses_while_a_hint_is_handed_over) {
  put_missing_n3(CALL(0), "k", "v1", T0);
  msgs_clear();
  kv_coord_on_tick(coord, T0 + 2000000);
  ck_assert_uint_eq(msg_count, 1);
  ck_assert(msgs[0].id & KV_HINT_ID_BIT);
  kv_dvv_t tomb;
  kv_status_t st;
  ck_assert_int_eq(kv_dvv_decode(msgs[0].rec, msgs[0].rec_bytes, &tomb, &st), KV_OK);
  kv_actor_t other = {.node = "n2", .incarnation = 7};
  ck_assert_int_eq(kv_dvv_put(&tomb, &other, 0, &tomb.cc, NULL, 0, true, 1, 16, &st), KV_OK);
  uint8_t *enc;
  size_t enc_bytes;
  ck_assert_int_eq(kv_dvv_encode(&tomb, &enc, &enc_bytes), KV_OK);
  const uint8_t *key = (const uint8_t *)"k";
  ck_assert_int_eq(coord_reap(coord, "default", key, 1, enc, enc_bytes, true, &st), KV_EBUSY);
  ck_assert_str_eq(st.msg, "a hint of key 'k' in keyspace 'default' is being handed over to n3; "
                           "the key is not reaped");
  ck_assert_uint_eq(hint_stats(2).pending, 1);
  coord_answer(coord, msgs[0].id, KV_OK, NULL, 0, 0, T0 + 2100000);
  ck_assert_int_eq(coord_reap(coord, "default", key, 1, enc, enc_bytes, true, &st), KV_OK);
  free(enc);
  kv_dvv_deinit(&tomb);
}
END_TEST

/* A hint replaced while its handoff is in flight survives that handoff's ack, and the next
 * round carries the newer record. A failed handoff leaves the hint for a later round. */
START_TEST(a_hint_replaced_in_flight_is_kept) {
  put_missing_n3(CALL(0), "k", "v1", T0);
  msgs_clear();
  kv_coord_on_tick(coord, T0 + 1000000);
  ck_assert_uint_eq(msg_count, 1);
  uint64_t first = msgs[0].id;
  size_t first_bytes = msgs[0].rec_bytes;
  put_missing_n3(CALL(1), "k", "v2", T0 + 1100000);
  ck_assert_uint_eq(hint_stats(2).pending, 1);
  coord_answer(coord, first, KV_OK, NULL, 0, 0, T0 + 1200000);
  ck_assert_uint_eq(hint_stats(2).pending, 1);
  ck_assert_uint_eq(hint_stats(2).delivered, 0);
  msgs_clear();
  kv_coord_on_tick(coord, T0 + 2000000);
  ck_assert_uint_eq(msg_count, 1);
  ck_assert_uint_gt(msgs[0].rec_bytes, first_bytes);
  coord_answer(coord, msgs[0].id, KV_EIO, NULL, 0, 0, T0 + 2100000);
  ck_assert_uint_eq(hint_stats(2).pending, 1);
  msgs_clear();
  kv_coord_on_tick(coord, T0 + 3000000);
  ck_assert_uint_eq(msg_count, 1);
  coord_answer(coord, msgs[0].id, KV_OK, NULL, 0, 0, T0 + 3100000);
  ck_assert_uint_eq(hint_stats(2).pending, 0);
}
END_TEST

START_TEST(hints_past_their_room_are_dropped_and_counted) {
  coord_recreate(1, KV_HINT_RATE_DEFAULT);
  put_missing_n3(CALL(0), "k", "v1", T0);
  kv_hint_stats_t hs = hint_stats(2);
  ck_assert_uint_eq(hs.pending, 0);
  ck_assert_uint_eq(hs.dropped, 1);
  msgs_clear();
  kv_coord_on_tick(coord, T0 + 1000000);
  ck_assert_uint_eq(msg_count, 0);
}
END_TEST

/* At 10 a second, one handoff per 100 ms; an unanswered one is given up at its deadline. */
START_TEST(handoff_is_paced_and_gives_up_at_its_deadline) {
  coord_recreate(KV_HINT_BYTES_DEFAULT, 10);
  put_missing_n3(CALL(0), "a", "v", T0);
  put_missing_n3(CALL(1), "b", "v", T0 + 10000);
  ck_assert_uint_eq(hint_stats(2).pending, 2);
  msgs_clear();
  kv_coord_on_tick(coord, T0 + 1000000);
  ck_assert_uint_eq(msg_count, 1);
  coord_answer(coord, msgs[0].id, KV_OK, NULL, 0, 0, T0 + 1001000);
  kv_coord_on_tick(coord, T0 + 1050000);
  ck_assert_uint_eq(msg_count, 1);
  kv_coord_on_tick(coord, T0 + 1101000);
  ck_assert_uint_eq(msg_count, 2);
  kv_coord_on_tick(coord, T0 + 1101000 + KV_TIMEOUT_MS_DEFAULT * 1000ull);
  ck_assert_uint_eq(msg_count, 3); /* given up, then sent again */
  ck_assert_uint_eq(hint_stats(2).pending, 1);
  coord_answer(coord, msgs[1].id, KV_OK, NULL, 0, 0, T0 + 4000000); /* too late: ignored */
  ck_assert_uint_eq(hint_stats(2).pending, 1);
  coord_answer(coord, msgs[2].id, KV_OK, NULL, 0, 0, T0 + 4000000);
  ck_assert_uint_eq(hint_stats(2).pending, 0);
}
END_TEST

/* ---- sloppy quorum: fallbacks ------------------------------------------------------- */

/* An encoded record holding one version of value, minted by actor (a node id). */
static void record_of(const char *actor, const char *value, uint8_t **rec, size_t *rec_bytes) {
  kv_dvv_t o;
  kv_dvv_init(&o);
  kv_actor_t a = {.incarnation = 7};
  snprintf(a.node, sizeof a.node, "%s", actor);
  kv_cc_t ctx;
  kv_cc_init(&ctx);
  kv_status_t st;
  ck_assert_int_eq(kv_dvv_put(&o, &a, 0, &ctx, value, (uint32_t)strlen(value), false, 1, 16, &st),
                   KV_OK);
  ck_assert_int_eq(kv_dvv_encode(&o, rec, rec_bytes), KV_OK);
  kv_dvv_deinit(&o);
}

/* The live values of an encoded record, sorted and joined by spaces ("" when rec is NULL). */
static void record_values(const uint8_t *rec, size_t rec_bytes, char *out, size_t out_size) {
  out[0] = '\0';
  if (!rec) return;
  kv_dvv_t o;
  kv_status_t st;
  ck_assert_int_eq(kv_dvv_decode(rec, rec_bytes, &o, &st), KV_OK);
  char vals[KV_SIBLINGS_MAX][VALUE_SHOWN_MAX + 1];
  uint32_t n = 0;
  for (uint32_t i = 0; i < o.sib_count; i++) {
    if (o.sib[i].tombstone) continue;
    ck_assert_uint_le(o.sib[i].value_bytes, VALUE_SHOWN_MAX);
    memcpy(vals[n], o.sib[i].value, o.sib[i].value_bytes);
    vals[n++][o.sib[i].value_bytes] = '\0';
  }
  for (uint32_t i = 1; i < n; i++)
    for (uint32_t j = i; j > 0 && strcmp(vals[j - 1], vals[j]) > 0; j--) {
      char t[VALUE_SHOWN_MAX + 1];
      memcpy(t, vals[j], sizeof t);
      memcpy(vals[j], vals[j - 1], sizeof t);
      memcpy(vals[j - 1], t, sizeof t);
    }
  for (uint32_t i = 0; i < n; i++)
    snprintf(out + strlen(out), out_size - strlen(out), "%s%s", i ? " " : "", vals[i]);
  kv_dvv_deinit(&o);
}

/* A key of "default" (N=3 of the sloppy fixture's 5 nodes) with n1 among its primaries, or,
 * when !primary, n1 the first of its fallbacks. *pl is its preference list; others[] are its
 * primaries other than n1, in preference order (primary keys only). */
static void sloppy_key(char *key, size_t key_size, bool primary, kv_preflist_t *pl,
                       uint32_t *others) {
  for (uint32_t i = 0; i < 1000; i++) {
    snprintf(key, key_size, "s%u", i);
    kv_node_req_t r = req_for(key, NULL, "");
    kv_node_plan_t plan;
    kv_status_t st;
    ck_assert_int_eq(kv_node_plan(node, &r, false, &plan, &st), KV_OK);
    kv_ring_preflist(&ring, plan.ks, plan.partition, pl);
    ck_assert_uint_eq(pl->count, 5);
    if (primary != kv_preflist_is_primary(pl, 0) || (!primary && pl->node[3] != 0)) continue;
    for (uint32_t k = 0, n = 0; primary && k < 3; k++)
      if (pl->node[k] != 0) others[n++] = pl->node[k];
    return;
  }
  ck_abort_msg("no key with n1 where it is wanted");
}

START_TEST(a_fallback_stands_in_for_a_dead_primary_and_counts_toward_w) {
  char key[16];
  kv_preflist_t pl;
  uint32_t p[2];
  sloppy_key(key, sizeof key, true, &pl, p);
  alive[p[1]] = false;
  put(CALL(0), key, "v", "quorum", T0);
  /* The live primary, and the first fallback as a hint for the dead one, with the same
   * record. The dead one gets nothing: were it alive after all, its ack and the fallback's
   * would be two acks for one replica. */
  ck_assert_uint_eq(msg_count, 2);
  uint32_t to_p0 = msg_to('w', p[0]), to_f = msg_to('w', pl.node[3]);
  ck_assert_uint_eq(msgs[to_p0].hint_for, UINT32_MAX);
  ck_assert_uint_eq(msgs[to_f].hint_for, p[1]);
  ck_assert_uint_eq(msgs[to_f].rec_bytes, msgs[to_p0].rec_bytes);
  ck_assert_mem_eq(msgs[to_f].rec, msgs[to_p0].rec, msgs[to_p0].rec_bytes);
  /* This replica and the fallback make QUORUM. */
  ack(to_f, T0 + 1000);
  ck_assert_uint_eq(reply_count, 1);
  last_reply(CALL(0), KV_OK, NULL);
  /* With the last ack the write is done with (the dead primary counted as failed), and its
   * hint is the fallback's to keep: none here. */
  ack(to_p0, T0 + 2000);
  ck_assert_uint_eq(kv_coord_in_flight(coord), 0);
  ck_assert_uint_eq(hint_stats(p[1]).pending, 0);
  ck_assert_uint_eq(hint_stats(pl.node[3]).pending, 0);
  /* A durable write asks the fallback for a durable ack too. */
  msgs_clear();
  kv_node_req_t r = req_for(key, "w", "quorum");
  r.durable = true;
  kv_coord_on_client(coord, CALL(1), KV_OP_PUT, &r, T0 + 3000, WALL_MS);
  ck_assert(msgs[msg_to('w', pl.node[3])].durable);
}
END_TEST

START_TEST(a_fallback_that_fails_leaves_the_hint_to_the_coordinator) {
  char key[16];
  kv_preflist_t pl;
  uint32_t p[2];
  sloppy_key(key, sizeof key, true, &pl, p);
  alive[p[1]] = false;
  put(CALL(0), key, "v", "quorum", T0);
  coord_answer(coord, msgs[msg_to('w', pl.node[3])].id, KV_EBUSY, NULL, 0, 0, T0 + 1000);
  ck_assert_uint_eq(reply_count, 0);
  ack(msg_to('w', p[0]), T0 + 2000);
  last_reply(CALL(0), KV_OK, NULL);
  ck_assert_uint_eq(kv_coord_in_flight(coord), 0);
  ck_assert_uint_eq(hint_stats(p[1]).pending, 1);
  ck_assert_uint_eq(hint_stats(pl.node[3]).pending, 0); /* never for a fallback */
}
END_TEST

START_TEST(fallbacks_do_not_count_toward_pw) {
  char key[16];
  kv_preflist_t pl;
  uint32_t p[2];
  sloppy_key(key, sizeof key, true, &pl, p);
  alive[p[0]] = alive[p[1]] = false;
  kv_node_req_t r = req_for(key, "v", "quorum");
  r.primaries = 2;
  kv_coord_on_client(coord, CALL(0), KV_OP_PUT, &r, T0, WALL_MS);
  last_reply(CALL(0), KV_EUNAVAILABLE, "QUORUM needs 2 of 3 primary replicas; 1 is alive");
  ck_assert_uint_eq(msg_count, 0);
  ck_assert(!local_has(key));
  /* Without pw, one fallback for each dead primary, in walk order. */
  put(CALL(1), key, "v", "quorum", T0 + 1000);
  ck_assert_uint_eq(msg_count, 2);
  ck_assert_uint_eq(msgs[msg_to('w', pl.node[3])].hint_for, p[0]);
  ck_assert_uint_eq(msgs[msg_to('w', pl.node[4])].hint_for, p[1]);
  ack(msg_to('w', pl.node[4]), T0 + 2000);
  last_reply(CALL(1), KV_OK, NULL);
  /* pw=2 with one primary dead: the fallback's ack is not the second primary's. */
  alive[p[0]] = true;
  msgs_clear();
  r.primaries = 2;
  kv_coord_on_client(coord, CALL(2), KV_OP_PUT, &r, T0 + 3000, WALL_MS);
  ck_assert_uint_eq(msg_count, 2);
  ack(msg_to('w', pl.node[3]), T0 + 4000);
  ck_assert_uint_eq(reply_count, 2);
  ack(msg_to('w', p[0]), T0 + 5000);
  ck_assert_uint_eq(reply_count, 3);
  last_reply(CALL(2), KV_OK, NULL);
}
END_TEST

START_TEST(without_sloppy_quorum_the_coordinator_keeps_the_hint) {
  cfg.keyspaces[0].sloppy_quorum = false;
  char key[16];
  kv_preflist_t pl;
  uint32_t p[2];
  sloppy_key(key, sizeof key, true, &pl, p);
  alive[p[0]] = alive[p[1]] = false;
  put(CALL(0), key, "v", "quorum", T0);
  last_reply(CALL(0), KV_EUNAVAILABLE, "QUORUM needs 2 of 3 replicas; 1 is alive");
  ck_assert_uint_eq(msg_count, 0);
  alive[p[0]] = true;
  put(CALL(1), key, "v", "quorum", T0 + 1000);
  ck_assert_uint_eq(msg_count, 2); /* the primaries only */
  for (uint32_t i = 0; i < 2; i++) ck_assert_uint_eq(msgs[i].hint_for, UINT32_MAX);
  ack(msg_to('w', p[0]), T0 + 2000);
  last_reply(CALL(1), KV_OK, NULL);
  kv_coord_on_tick(coord, T0 + (KV_TIMEOUT_MS_DEFAULT + 2) * 1000ull);
  ck_assert_uint_eq(hint_stats(p[1]).pending, 1);
}
END_TEST

START_TEST(reads_ask_the_fallbacks_and_repair_their_hints) {
  char key[16];
  kv_preflist_t pl;
  uint32_t p[2];
  sloppy_key(key, sizeof key, true, &pl, p);
  uint8_t *rec;
  size_t rec_bytes;
  record_of("n4", "v", &rec, &rec_bytes);
  alive[p[0]] = alive[p[1]] = false;
  get(CALL(0), key, "quorum", T0);
  /* This replica answered at once (nothing); each fallback is asked for its hint. */
  ck_assert_uint_eq(msg_count, 2);
  uint32_t f1 = msg_to('r', pl.node[3]), f2 = msg_to('r', pl.node[4]);
  ck_assert_uint_eq(msgs[f1].hint_for, p[0]);
  ck_assert_uint_eq(msgs[f2].hint_for, p[1]);
  coord_answer(coord, msgs[f1].id, KV_OK, rec, rec_bytes, 0, T0 + 1000);
  const reply_t *r = last_reply(CALL(0), KV_OK, NULL);
  ck_assert(r->found);
  ck_assert_str_eq(r->values[0], "v");
  /* Once the other fallback answers (empty), the stale ones get the merge: this replica at
   * once, the fallback as a repair of its hint for the primary it stands in for. */
  coord_answer(coord, msgs[f2].id, KV_OK, NULL, 0, 0, T0 + 2000);
  ck_assert_uint_eq(msg_count, 3);
  ck_assert_int_eq(msgs[2].kind, 'w');
  ck_assert_uint_eq(msgs[2].node, pl.node[4]);
  ck_assert_uint_eq(msgs[2].hint_for, p[1]);
  ck_assert(local_has(key));
  free(rec);
}
END_TEST

/* A node outside a key's preference list coordinates a get of it, and is itself the
 * fallback for a dead primary: it reads the hint it keeps. */
START_TEST(a_get_at_its_own_fallback_reads_its_hint) {
  char key[16];
  kv_preflist_t pl;
  sloppy_key(key, sizeof key, false, &pl, NULL);
  uint8_t *rec;
  size_t rec_bytes;
  record_of("n4", "hinted", &rec, &rec_bytes);
  kv_status_t st;
  ck_assert_int_eq(coord_hint_write(coord, cfg.nodes[pl.node[0]].id, "default",
                                       (const uint8_t *)key, strlen(key), rec, rec_bytes, &st),
                   KV_OK);
  free(rec);
  alive[pl.node[0]] = false;
  get(CALL(0), key, "one", T0);
  const reply_t *r = last_reply(CALL(0), KV_OK, NULL);
  ck_assert(r->found);
  ck_assert_str_eq(r->values[0], "hinted");
  /* The live primaries are asked too (for read repair), never the dead one. */
  ck_assert_uint_eq(msg_count, 2);
  ck_assert_uint_ne(msgs[0].node, pl.node[0]);
  ck_assert_uint_ne(msgs[1].node, pl.node[0]);
  /* A local read shows the hints a node keeps. */
  kv_node_req_t lr = req_for(key, NULL, "");
  lr.local = true;
  kv_coord_on_client(coord, CALL(1), KV_OP_GET, &lr, T0 + 1000, WALL_MS);
  r = last_reply(CALL(1), KV_OK, NULL);
  ck_assert(r->found);
  ck_assert_str_eq(r->values[0], "hinted");
}
END_TEST

/* The replica side of a fallback: hints merged, answered, bounded, and handed over whole,
 * never deleted by the ack of a handoff older than the hint. */
START_TEST(a_fallback_merges_answers_and_hands_over_its_hints) {
  uint8_t *a, *b, *c, *got;
  size_t a_bytes, b_bytes, c_bytes, got_bytes;
  record_of("n2", "a", &a, &a_bytes);
  record_of("n3", "b", &b, &b_bytes);
  record_of("n4", "c", &c, &c_bytes);
  kv_status_t st;
  const uint8_t *k = (const uint8_t *)"k";
  alive[2] = false;
  ck_assert_int_eq(coord_hint_write(coord, "n3", "default", k, 1, a, a_bytes, &st), KV_OK);
  kv_hint_stats_t hs = hint_stats(2);
  ck_assert_uint_eq(hs.pending, 1);
  ck_assert_uint_eq(hs.bytes, 1 + a_bytes);
  ck_assert_int_eq(coord_hint_write(coord, "n3", "default", k, 1, b, b_bytes, &st), KV_OK);
  ck_assert_uint_eq(hint_stats(2).pending, 1);
  ck_assert_uint_gt(hint_stats(2).bytes, hs.bytes);
  char values[128];
  ck_assert_int_eq(coord_hint_read(coord, "n3", "default", k, 1, &got, &got_bytes, &st),
                   KV_OK);
  record_values(got, got_bytes, values, sizeof values);
  ck_assert_str_eq(values, "a b");
  free(got);
  ck_assert_int_eq(coord_hint_read(coord, "n2", "default", k, 1, &got, &got_bytes, &st),
                   KV_OK);
  ck_assert_ptr_null(got);
  ck_assert_uint_eq(got_bytes, 0);
  ck_assert_int_eq(coord_hint_read(coord, "n1", "default", k, 1, &got, &got_bytes, &st),
                   KV_EINVAL);
  ck_assert_str_eq(st.msg, "hint_for names this node (n1); hints are kept for other nodes");
  ck_assert_int_eq(coord_hint_write(coord, "n3", "default", k, 1, (const uint8_t *)"junk", 4,
                                       &st), KV_ECORRUPT);
  ck_assert_uint_eq(hint_stats(2).pending, 1);

  /* n3 is back: the merged hint goes as a durable replica write (no hint_for). */
  alive[2] = true;
  kv_coord_on_tick(coord, T0 + 1000000);
  ck_assert_uint_eq(msg_count, 1);
  ck_assert_uint_eq(msgs[0].node, 2);
  ck_assert_uint_eq(msgs[0].hint_for, UINT32_MAX);
  ck_assert(msgs[0].durable);
  record_values(msgs[0].rec, msgs[0].rec_bytes, values, sizeof values);
  ck_assert_str_eq(values, "a b");
  /* Merged into while in flight: the older handoff's ack leaves it. */
  ck_assert_int_eq(coord_hint_write(coord, "n3", "default", k, 1, c, c_bytes, &st), KV_OK);
  coord_answer(coord, msgs[0].id, KV_OK, NULL, 0, 0, T0 + 1100000);
  ck_assert_uint_eq(hint_stats(2).pending, 1);
  ck_assert_uint_eq(hint_stats(2).delivered, 0);
  kv_coord_on_tick(coord, T0 + 2000000);
  ck_assert_uint_eq(msg_count, 2);
  record_values(msgs[1].rec, msgs[1].rec_bytes, values, sizeof values);
  ck_assert_str_eq(values, "a b c");
  coord_answer(coord, msgs[1].id, KV_OK, NULL, 0, 0, T0 + 2100000);
  hs = hint_stats(2);
  ck_assert_uint_eq(hs.pending, 0);
  ck_assert_uint_eq(hs.bytes, 0);
  ck_assert_uint_eq(hs.delivered, 1);
  free(a);
  free(b);
  free(c);
}
END_TEST

START_TEST(a_fallback_refuses_a_hint_past_its_room) {
  coord_recreate(64, KV_HINT_RATE_DEFAULT);
  uint8_t *a;
  size_t a_bytes;
  record_of("n2", "a value that makes the record longer than the room", &a, &a_bytes);
  kv_status_t st;
  ck_assert_int_eq(coord_hint_write(coord, "n3", "default", (const uint8_t *)"k", 1, a,
                                       a_bytes, &st), KV_EBUSY);
  char want[256];
  snprintf(want, sizeof want, "no room for the hint: hints for the node would take %zu bytes, "
           "past their room of 64; the key is left to anti-entropy", 1 + a_bytes);
  ck_assert_str_eq(st.msg, want);
  kv_hint_stats_t hs = hint_stats(2);
  ck_assert_uint_eq(hs.pending, 0);
  ck_assert_uint_eq(hs.dropped, 1);
  free(a);
}
END_TEST


/* ---- forwarding to a region ------------------------------------------------------------ */

/* The put of the regions fixture's key k: its one message to the west, with the other two
 * west replicas to relay to, and the east replica other than n1 with id in *east. */
static uint32_t forwarded(uint32_t *east) {
  uint32_t f = UINT32_MAX, direct = 0;
  for (uint32_t i = 0; i < msg_count; i++) {
    if (msgs[i].kind == 'F') {
      ck_assert_uint_eq(f, UINT32_MAX);
      f = i;
      continue;
    }
    ck_assert_int_eq(msgs[i].kind, 'w');
    ck_assert_uint_lt(msgs[i].node, 3); /* never a west node directly */
    if (east) *east = i;
    direct++;
  }
  ck_assert_uint_eq(direct, 2);
  ck_assert_uint_ne(f, UINT32_MAX);
  ck_assert_uint_ge(msgs[f].node, 3);
  ck_assert_uint_eq(msgs[f].relay_count, 2);
  for (uint32_t k = 0; k < 2; k++) {
    ck_assert_uint_ge(msgs[f].relay[k].node, 3);
    ck_assert_uint_ne(msgs[f].relay[k].node, msgs[f].node);
  }
  ck_assert_uint_ne(msgs[f].relay[0].node, msgs[f].relay[1].node);
  return f;
}

static void answer_relayed(uint32_t f, kv_err code, kv_err first, kv_err second,
                           uint32_t count, uint64_t now_us) {
  kv_relay_outcome_t out[2] = {{.id = msgs[f].relay[0].id, .node = msgs[f].relay[0].node, .code = first},
                               {.id = msgs[f].relay[1].id, .node = msgs[f].relay[1].node, .code = second}};
  coord_answer_relayed(coord, msgs[f].id, code, 0, out, count, now_us);
}

START_TEST(a_write_goes_once_to_the_other_region_and_counts_per_replica) {
  put(CALL(0), "k", "v", "each_quorum", T0);
  uint32_t east = 0, f = forwarded(&east);
  ck_assert(!msgs[f].durable);
  ck_assert_uint_eq(msgs[f].timeout_ms, KV_TIMEOUT_MS_DEFAULT / 2); /* half the request's */
  ack(east, T0 + 1000);
  ck_assert_uint_eq(reply_count, 0); /* west has nothing yet */
  /* The forwarder's own ack and one relayed replica's: two of west's three. */
  answer_relayed(f, KV_OK, KV_OK, KV_EUNAVAILABLE, 2, T0 + 80000);
  last_reply(CALL(0), KV_OK, NULL);
  msgs_clear();
  replies_clear();
  /* The same for the coordinator as a first primary of west: it is not, and never a
   * forwarder itself. Durable writes are relayed durable. */
  kv_node_req_t r = req_for("k2", "v", "all");
  r.durable = true;
  kv_coord_on_client(coord, CALL(1), KV_OP_PUT, &r, T0, WALL_MS);
  f = forwarded(NULL);
  ck_assert(msgs[f].durable);
}
END_TEST

START_TEST(a_forwarder_that_fails_fails_its_region) {
  /* Its message fails (the forwarder died, or its batch did): the replicas it was to relay to
   * failed with it, so EACH_QUORUM is refused at once, never acked. */
  put(CALL(0), "k", "v", "each_quorum", T0);
  uint32_t east = 0, f = forwarded(&east);
  ack(east, T0 + 1000);
  coord_answer(coord, msgs[f].id, KV_EUNAVAILABLE, NULL, 0, 0, T0 + 2000);
  ck_assert_uint_eq(reply_count, 1);
  ck_assert_int_eq(replies[0].code, KV_EUNAVAILABLE);
  msgs_clear();
  replies_clear();
  /* Silent: the region's acks time out with it. */
  kv_node_req_t r = req_for("k", "v", "each_quorum");
  r.timeout_ms = 200;
  kv_coord_on_client(coord, CALL(1), KV_OP_PUT, &r, T0, WALL_MS);
  f = forwarded(&east);
  ck_assert_uint_eq(msgs[f].timeout_ms, 100);
  ack(east, T0 + 1000);
  kv_coord_on_tick(coord, T0 + 200000);
  ck_assert_uint_eq(reply_count, 1);
  ck_assert_int_eq(replies[0].code, KV_ETIMEDOUT);
  /* Its late answer changes nothing. */
  answer_relayed(f, KV_OK, KV_OK, KV_OK, 2, T0 + 250000);
  ck_assert_uint_eq(reply_count, 1);
}
END_TEST

START_TEST(a_forwarder_counts_only_outcomes_it_was_given) {
  put(CALL(0), "k", "v", "all", T0);
  uint32_t east = 0, f = forwarded(&east);
  ack(east, T0 + 1000);
  /* An outcome naming the east replica's id is not the forwarder's to give; the second west
   * replica it gives none for has failed, and ALL with it (decided before the forwarder's
   * own ack is taken). */
  kv_relay_outcome_t out[2] = {{.id = msgs[f].relay[0].id, .code = KV_OK},
                               {.id = msgs[east].id, .code = KV_OK}};
  coord_answer_relayed(coord, msgs[f].id, KV_OK, 0, out, 2, T0 + 80000);
  last_reply(CALL(0), KV_EUNAVAILABLE, "3 of 6 replicas acknowledged, 1 failed; ALL needs 6");
}
END_TEST

START_TEST(a_region_with_a_dead_primary_is_sent_directly) {
  alive[4] = false;
  put(CALL(0), "k", "v", "quorum", T0);
  for (uint32_t i = 0; i < msg_count; i++) ck_assert_int_eq(msgs[i].kind, 'w');
  ck_assert_uint_eq(msg_count, 5);
  alive[4] = true;
  msgs_clear();
  /* Alive again: forwarded again. */
  put(CALL(1), "k", "v", "quorum", T0);
  forwarded(NULL);
}
END_TEST

/* ---- applied times (applied.h) ---- */

static kv_err applied(const char *keyspace, const char *key, kv_applied_write_t *w,
                      kv_status_t *st) {
  kv_status_clear(st);
  return kv_coord_applied(coord, keyspace, (const uint8_t *)key, strlen(key), w, st);
}

START_TEST(applied_times_are_kept_for_finished_writes) {
  kv_applied_write_t w;
  kv_status_t st;
  put(CALL(0), "k", "v", "quorum", T0);
  uint32_t to2 = msg_to('w', 1), to3 = msg_to('w', 2);
  coord_answer(coord, msgs[to2].id, KV_OK, NULL, 0, WALL_MS + 3, T0 + 2500);
  ck_assert_uint_eq(reply_count, 1);
  /* Acknowledged, but n3 has not acked yet: ask again. */
  ck_assert_int_eq(applied("default", "k", &w, &st), KV_EUNAVAILABLE);
  ck_assert_str_eq(st.msg, "node n1 is still waiting for replicas to acknowledge a write of "
                           "that key; ask again shortly");
  coord_answer(coord, msgs[to3].id, KV_OK, NULL, 0, WALL_MS + 9, T0 + 9000);
  ck_assert_int_eq(applied("default", "k", &w, &st), KV_OK);
  /* W met 2.5 ms after the request (2 ms, in whole ms on its wall clock); this replica
   * applied it at the request's wall clock; the others at their acks' applied_ms. */
  ck_assert_uint_eq(w.acked_ms, WALL_MS + 2);
  ck_assert_uint_eq(w.count, 3);
  uint64_t want[3] = {WALL_MS, WALL_MS + 3, WALL_MS + 9};
  for (uint32_t i = 0; i < 3; i++) {
    uint32_t n = w.replicas[i].node;
    ck_assert_uint_lt(n, 3);
    ck_assert_uint_eq(w.replicas[i].applied_ms, want[n]);
  }
  /* Newest wins: a second write of the key, whose n3 never answers. */
  put(CALL(1), "k", "v2", "quorum", T0 + 10000);
  coord_answer(coord, msgs[msg_count - 2].id, KV_OK, NULL, 0, WALL_MS + 20, T0 + 11000);
  kv_coord_on_tick(coord, T0 + 10000 + KV_TIMEOUT_MS_DEFAULT * 1000ull);
  ck_assert_int_eq(applied("default", "k", &w, &st), KV_OK);
  ck_assert_uint_eq(w.acked_ms, WALL_MS + 1);
  ck_assert_uint_eq(w.count, 2);
}
END_TEST

START_TEST(applied_errors_name_the_reason) {
  kv_applied_write_t w;
  kv_status_t st;
  ck_assert_int_eq(applied("nope", "k", &w, &st), KV_EINVAL);
  ck_assert_str_eq(st.msg, "keyspace 'nope' is not in this node's config");
  ck_assert_int_eq(applied("default", "never", &w, &st), KV_ENOTFOUND);
  ck_assert_str_eq(st.msg, "node n1 remembers no acknowledged write of that key in keyspace "
                           "'default': it keeps the last 4096 writes it coordinated, and a write "
                           "sent to a node that is not a replica is coordinated by the first "
                           "live primary");
  /* A failed write is not remembered. */
  put(CALL(0), "k", "v", "all", T0);
  coord_answer(coord, msgs[msg_to('w', 1)].id, KV_EIO, NULL, 0, 0, T0 + 1000);
  ack(msg_to('w', 2), T0 + 2000);
  ck_assert_int_eq(applied("default", "k", &w, &st), KV_ENOTFOUND);
  /* A read is not a write. */
  get(CALL(1), "g", "one", T0);
  ck_assert_int_eq(applied("default", "g", &w, &st), KV_ENOTFOUND);
}
END_TEST

START_TEST(applied_keeps_only_the_last_writes) {
  kv_applied_write_t w;
  kv_status_t st;
  char key[32];
  for (uint32_t i = 0; i <= KV_APPLIED_MAX; i++) {
    snprintf(key, sizeof key, "k%u", i);
    put(CALL(0), key, "v", "one", T0 + i);
    msgs_clear();
    replies_clear();
    kv_coord_on_tick(coord, T0 + i + KV_TIMEOUT_MS_DEFAULT * 1000ull); /* the peers never ack */
  }
  ck_assert_int_eq(applied("default", "k0", &w, &st), KV_ENOTFOUND);
  ck_assert_int_eq(applied("default", "k1", &w, &st), KV_OK);
  ck_assert_uint_eq(w.count, 1);
  ck_assert_uint_eq(w.replicas[0].node, 0);
  snprintf(key, sizeof key, "k%u", KV_APPLIED_MAX);
  ck_assert_int_eq(applied("default", key, &w, &st), KV_OK);
}
END_TEST

START_TEST(applied_times_come_through_the_forwarder) {
  kv_applied_write_t w;
  kv_status_t st;
  put(CALL(0), "k", "v", "all", T0);
  uint32_t f = forwarded(NULL);
  for (uint32_t n = 1; n < 3; n++) /* east's other two, sent directly */
    coord_answer(coord, msgs[msg_to('w', n)].id, KV_OK, NULL, 0, WALL_MS + n, T0 + 1000);
  kv_relay_outcome_t out[2] = {
      {.id = msgs[f].relay[0].id, .code = KV_OK, .applied_ms = WALL_MS + 41},
      {.id = msgs[f].relay[1].id, .code = KV_OK, .applied_ms = WALL_MS + 42}};
  coord_answer_relayed(coord, msgs[f].id, KV_OK, WALL_MS + 40, out, 2, T0 + 80000);
  last_reply(CALL(0), KV_OK, NULL);
  ck_assert_int_eq(applied("default", "k", &w, &st), KV_OK);
  ck_assert_uint_eq(w.acked_ms, WALL_MS + 80);
  ck_assert_uint_eq(w.count, 6);
  for (uint32_t i = 0; i < 6; i++) {
    uint32_t n = w.replicas[i].node;
    uint64_t want = n == msgs[f].node ? 40 : n == msgs[f].relay[0].node ? 41
                  : n == msgs[f].relay[1].node ? 42 : n; /* east: n1 0, n2 1, n3 2 */
    ck_assert_uint_eq(w.replicas[i].applied_ms, WALL_MS + want);
  }
}
END_TEST

/* ---- relaying: the forwarder's side ---- */

static kv_relay_outcome_t relayed_out[KV_REPLICAS_MAX];
static uint32_t relayed_count, relayed_calls;

static void relay_done(void *arg, const kv_relay_outcome_t *outcomes, uint32_t count) {
  ck_assert_ptr_eq(arg, CALL(9));
  memcpy(relayed_out, outcomes, count * sizeof *outcomes);
  relayed_count = count;
  relayed_calls++;
}

#define WAIT_MS 300u

/* A forwarder's write of the record relayed_rec to the nodes named, as it comes from the
 * coordinator of message 100 (the replicas' ids are 101, 102, ...). */

static kv_err relay_waiting(const char *const *nodes, uint32_t count, bool durable,
                            uint32_t wait_ms, uint64_t now_us, kv_status_t *st) {
  kv_relay_target_t targets[KV_REPLICAS_MAX];
  for (uint32_t k = 0; k < count; k++)
    targets[k] = (kv_relay_target_t){node_named(nodes[k]), 101 + k};
  if (!relayed_rec) record_of("n2", "v", &relayed_rec, &relayed_rec_bytes);
  relayed_calls = relayed_count = 0;
  kv_msg_t m = kv_msg_write(100, "default", (const uint8_t *)"k", 1, relayed_rec,
                            relayed_rec_bytes, durable);
  m.relay = targets;
  m.relay_count = count;
  m.relay_wait_ms = wait_ms;
  kv_peer_result_t r;
  kv_coord_on_peer_request(coord, &m, now_us, WALL_MS, relay_done, CALL(9), &r);
  ck_assert(r.relaying == (r.code == KV_OK));
  *st = r.st;
  kv_peer_result_deinit(&r);
  return st->code;
}

static kv_err relay(const char *const *nodes, uint32_t count, bool durable, uint64_t now_us,
                    kv_status_t *st) {
  return relay_waiting(nodes, count, durable, WAIT_MS, now_us, st);
}

START_TEST(a_forwarder_relays_and_answers_with_each_outcome) {
  const char *nodes[] = {"n2", "n3"};
  kv_status_t st;
  ck_assert_int_eq(relay(nodes, 2, true, T0, &st), KV_OK);
  ck_assert_uint_eq(msg_count, 2);
  uint32_t to2 = msg_to('w', 1), to3 = msg_to('w', 2);
  ck_assert(msgs[to2].durable && msgs[to3].durable);
  ck_assert_uint_eq(msgs[to2].rec_bytes, relayed_rec_bytes);
  ck_assert_mem_eq(msgs[to2].rec, relayed_rec, relayed_rec_bytes);
  ack(to3, T0 + 1000);
  ack(to3, T0 + 1000); /* a duplicate */
  ck_assert_uint_eq(relayed_calls, 0);
  coord_answer(coord, msgs[to2].id, KV_EUNAVAILABLE, NULL, 0, 0, T0 + 2000);
  ck_assert_uint_eq(relayed_calls, 1);
  ck_assert_uint_eq(relayed_count, 2);
  ck_assert_uint_eq(relayed_out[0].id, 101);
  ck_assert_uint_eq(relayed_out[0].node, 1);
  ck_assert_int_eq(relayed_out[0].code, KV_EUNAVAILABLE);
  ck_assert_uint_eq(relayed_out[1].id, 102);
  ck_assert_int_eq(relayed_out[1].code, KV_OK);
  ck_assert_uint_eq(relayed_out[1].applied_ms, 0); /* ack() carries none */
  ck_assert_uint_eq(relayed_out[0].applied_ms, 0); /* failed */
  ack(to2, T0 + 3000); /* after the end: ignored */
  ck_assert_uint_eq(relayed_calls, 1);
  msgs_clear();
  /* A replica that does not answer within the wait has timed out; one whose queue
   * is full failed at once. */
  queue_full[2] = true;
  ck_assert_int_eq(relay(nodes, 2, false, T0, &st), KV_OK);
  ck_assert(!msgs[msg_to('w', 1)].durable);
  kv_coord_on_tick(coord, T0 + WAIT_MS * 1000ull - 1);
  ck_assert_uint_eq(relayed_calls, 0);
  kv_coord_on_tick(coord, T0 + WAIT_MS * 1000ull);
  ck_assert_uint_eq(relayed_calls, 1);
  ck_assert_int_eq(relayed_out[0].code, KV_ETIMEDOUT);
  ck_assert_int_eq(relayed_out[1].code, KV_EBUSY);
  /* Every send refused: done before kv_coord_on_peer_request returns. */
  queue_full[1] = true;
  ck_assert_int_eq(relay(nodes, 2, false, T0, &st), KV_OK);
  ck_assert_uint_eq(relayed_calls, 1);
}
END_TEST

START_TEST(a_relay_naming_bad_nodes_is_refused) {
  kv_status_t st;
  const char *self[] = {"n1"};
  ck_assert_int_eq(relay(self, 1, false, T0, &st), KV_EINVAL);
  ck_assert_str_eq(st.msg, "forward_to names this node (n1); it relays to the others");
  const char *many[KV_REPLICAS_MAX];
  for (uint32_t k = 0; k < KV_REPLICAS_MAX; k++) many[k] = "n2";
  ck_assert_int_eq(relay(many, KV_REPLICAS_MAX, false, T0, &st), KV_EINVAL);
  ck_assert_str_eq(st.msg, "forward_to names 16 nodes; a region has at most 15 others");
  const char *fine[] = {"n2"};
  ck_assert_int_eq(relay_waiting(fine, 1, false, 0, T0, &st), KV_EINVAL);
  ck_assert_str_eq(st.msg, "forward_wait_ms is 0; it must be 1 to 600000");
  ck_assert_int_eq(relay_waiting(fine, 1, false, KV_TIMEOUT_MS_MAX + 1, T0, &st), KV_EINVAL);
  ck_assert_str_eq(st.msg, "forward_wait_ms is 600001; it must be 1 to 600000");
  ck_assert_uint_eq(msg_count, 0);
  ck_assert_uint_eq(relayed_calls, 0);
  ck_assert(!local_has("k")); /* refused whole: nothing merged */
}
END_TEST

START_TEST(relays_past_the_table_are_resource_exhausted) {
  const char *nodes[] = {"n2"};
  kv_status_t st;
  for (uint32_t i = 0; i < KV_RELAYS_MAX; i++) ck_assert_int_eq(relay(nodes, 1, false, T0, &st), KV_OK);
  ck_assert_int_eq(relay(nodes, 1, false, T0, &st), KV_EBUSY);
  ck_assert_str_eq(st.msg, "node n1 is relaying 1024 writes already; retry later");
  kv_coord_on_tick(coord, T0 + WAIT_MS * 1000ull); /* all time out */
  ck_assert_int_eq(relay(nodes, 1, false, T0 + WAIT_MS * 1000ull, &st), KV_OK);
}
END_TEST

START_TEST(a_peer_key_out_of_bounds_is_refused) {
  /* A peer's message names its keyspace and key; the store must never see an empty key or an
   * unknown keyspace (tests/fuzz/corpus/peer/crash-read-empty-key: a read of an empty key
   * reached the store with a NULL key). */
  kv_status_t st;
  kv_status_clear(&st);
  kv_dvv_t empty;
  kv_dvv_init(&empty);
  uint8_t *rec, *enc;
  size_t rec_bytes, enc_bytes;
  ck_assert_int_eq(kv_dvv_encode(&empty, &enc, &enc_bytes), KV_OK);
  kv_msg_t m = kv_msg_read(1, "default", NULL, 0);
  ck_assert_int_eq(peer_request(coord, &m, &rec, &rec_bytes, &st), KV_EINVAL);
  ck_assert_str_eq(st.msg, "key is empty");
  ck_assert_ptr_null(rec);
  m.hint_for = node_named("n2");
  ck_assert_int_eq(peer_request(coord, &m, &rec, &rec_bytes, &st), KV_EINVAL);
  ck_assert_str_eq(st.msg, "key is empty");
  m = kv_msg_read(1, "nope", (const uint8_t *)"k", 1);
  ck_assert_int_eq(peer_request(coord, &m, &rec, &rec_bytes, &st), KV_EINVAL);
  ck_assert_str_eq(st.msg, "read names keyspace 'nope', which this node does not have");
  m = kv_msg_write(1, "nope", (const uint8_t *)"k", 1, enc, enc_bytes, false);
  ck_assert_int_eq(peer_request(coord, &m, NULL, NULL, &st), KV_EINVAL);
  ck_assert_str_eq(st.msg, "write names keyspace 'nope', which this node does not have");
  uint8_t *long_key = calloc(KV_KEY_BYTES_HARD_MAX + 1, 1);
  ck_assert_ptr_nonnull(long_key);
  m = kv_msg_write(1, "default", long_key, KV_KEY_BYTES_HARD_MAX + 1, enc, enc_bytes, false);
  ck_assert_int_eq(peer_request(coord, &m, NULL, NULL, &st), KV_EINVAL);
  ck_assert_str_eq(st.msg, "key is 65537 bytes; no keyspace allows more than 65536");
  m = kv_msg_write(1, "default", NULL, 0, enc, enc_bytes, false);
  m.hint_for = node_named("n2");
  ck_assert_int_eq(peer_request(coord, &m, NULL, NULL, &st), KV_EINVAL);
  ck_assert_str_eq(st.msg, "key is empty");
  ck_assert_int_eq(coord_reap(coord, "default", NULL, 0, enc, enc_bytes, false, &st), KV_EINVAL);
  ck_assert_str_eq(st.msg, "key is empty");
  /* The longest key a keyspace may allow is taken. */
  m = kv_msg_write(1, "default", long_key, KV_KEY_BYTES_HARD_MAX, enc, enc_bytes, false);
  ck_assert_int_eq(peer_request(coord, &m, NULL, NULL, &st), KV_OK);
  kv_hint_stats_t hs;
  kv_coord_hint_stats(coord, node_named("n2"), &hs);
  ck_assert_uint_eq(hs.pending, 0); /* the refused fallback write kept nothing */
  free(long_key);
  free(enc);
}
END_TEST

Suite *coord_suite(void) {
  Suite *s = suite_create("coord");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, coord_setup, coord_teardown);
  /* Filling the request table under ASan takes seconds on a busy 2-core machine; Check's
   * default of 4 s is a deadline for a hung test, not a timing assertion. */
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, put_quorum_replies_at_first_ack_and_records_lag);
  tcase_add_test(tc, put_all_waits_for_every_replica);
  tcase_add_test(tc, put_all_with_a_failed_replica_is_unavailable);
  tcase_add_test(tc, put_all_fails_as_soon_as_one_replica_fails);
  tcase_add_test(tc, applied_times_are_kept_for_finished_writes);
  tcase_add_test(tc, applied_errors_name_the_reason);
  tcase_add_test(tc, applied_keeps_only_the_last_writes);
  tcase_add_test(tc, put_one_replies_before_any_peer);
  tcase_add_test(tc, put_refused_before_anything_is_written);
  tcase_add_test(tc, put_times_out_at_its_deadline);
  tcase_add_test(tc, an_answer_after_the_deadline_times_out_without_a_tick);
  tcase_add_test(tc, duplicate_acks_count_once);
  tcase_add_test(tc, stale_and_unknown_ids_are_ignored);
  tcase_add_test(tc, delete_goes_through_the_quorum);
  tcase_add_test(tc, a_delete_without_context_removes_what_its_read_found);
  tcase_add_test(tc, a_delete_without_context_removes_every_sibling);
  tcase_add_test(tc, a_put_the_delete_did_not_read_survives_it);
  tcase_add_test(tc, a_delete_whose_read_fails_writes_nothing);
  tcase_add_test(tc, a_delete_with_context_removes_only_what_it_covers);
  tcase_add_test(tc, a_delete_every_replica_acked_is_read_forgotten_and_reaped);
  tcase_add_test(tc, a_reap_stops_where_a_replica_differs_or_a_node_is_down);
  tcase_add_test(tc, a_reap_forgets_the_hints_its_tombstone_covers);
  tcase_add_test(tc, a_reap_refuses_while_a_hint_is_handed_over);
  tcase_add_test(tc, bad_reaps_get_exact_errors);
  tcase_add_test(tc, siblings_through_the_coordinator);
  tcase_add_test(tc, a_write_the_replica_refuses_sends_nothing);
  tcase_add_test(tc, full_peer_queues_are_resource_exhausted);
  tcase_add_test(tc, too_many_requests_in_flight_is_resource_exhausted);
  tcase_add_test(tc, get_one_reads_only_this_replica);
  tcase_add_test(tc, get_quorum_asks_every_live_peer_and_merges);
  tcase_add_test(tc, get_quorum_survives_a_failed_peer);
  tcase_add_test(tc, get_quorum_repairs_a_stale_peer_before_answering);
  tcase_add_test(tc, get_quorum_repairs_this_replica_at_once);
  tcase_add_test(tc, get_writes_a_resolution_back_through_read_repair);
  tcase_add_test(tc, get_quorum_skips_a_dead_peer);
  tcase_add_test(tc, get_all_asks_both_peers);
  tcase_add_test(tc, get_times_out_at_its_deadline);
  tcase_add_test(tc, get_local_reads_this_replica_only);
  tcase_add_test(tc, an_unacked_replica_gets_a_hint_handed_over_when_alive);
  tcase_add_test(tc, a_hint_replaced_in_flight_is_kept);
  tcase_add_test(tc, hints_past_their_room_are_dropped_and_counted);
  tcase_add_test(tc, handoff_is_paced_and_gives_up_at_its_deadline);
  tcase_add_test(tc, invalid_requests_are_answered_before_anything_happens);
  tcase_add_test(tc, writes_at_a_non_replica_are_forwarded);
  tcase_add_test(tc, gets_at_a_non_replica_are_coordinated_here);
  tcase_add_test(tc, durable_put_all_waits_for_the_sync);
  tcase_add_test(tc, durable_put_one_is_acked_only_after_the_sync);
  tcase_add_test(tc, a_fallback_merges_answers_and_hands_over_its_hints);
  tcase_add_test(tc, a_fallback_refuses_a_hint_past_its_room);
  suite_add_tcase(s, tc);
  tc = tcase_create("sloppy");
  tcase_add_checked_fixture(tc, sloppy_setup, coord_teardown);
  tcase_add_test(tc, a_fallback_stands_in_for_a_dead_primary_and_counts_toward_w);
  tcase_add_test(tc, a_fallback_that_fails_leaves_the_hint_to_the_coordinator);
  tcase_add_test(tc, fallbacks_do_not_count_toward_pw);
  tcase_add_test(tc, without_sloppy_quorum_the_coordinator_keeps_the_hint);
  tcase_add_test(tc, reads_ask_the_fallbacks_and_repair_their_hints);
  tcase_add_test(tc, a_get_at_its_own_fallback_reads_its_hint);
  suite_add_tcase(s, tc);
  tc = tcase_create("regions");
  tcase_add_checked_fixture(tc, regions_setup, coord_teardown);
  tcase_add_test(tc, a_write_goes_once_to_the_other_region_and_counts_per_replica);
  tcase_add_test(tc, a_forwarder_that_fails_fails_its_region);
  tcase_add_test(tc, a_forwarder_counts_only_outcomes_it_was_given);
  tcase_add_test(tc, applied_times_come_through_the_forwarder);
  tcase_add_test(tc, a_region_with_a_dead_primary_is_sent_directly);
  tcase_add_test(tc, a_forwarder_relays_and_answers_with_each_outcome);
  tcase_add_test(tc, a_relay_naming_bad_nodes_is_refused);
  tcase_add_test(tc, relays_past_the_table_are_resource_exhausted);
  tcase_add_test(tc, a_peer_key_out_of_bounds_is_refused);
  suite_add_tcase(s, tc);
  return s;
}
