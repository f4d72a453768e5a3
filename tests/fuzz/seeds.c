/* seeds.c: writes the generated seed corpus of every harness (`make fuzz-seeds`):
 *   seeds DIR   writes DIR/TARGET/NAME for each seed below (overwriting a file of that name).
 * Seeds are small valid inputs made with the code that makes such bytes in tunekv (records by
 * real puts and merges, peer messages by kvnode/peer_codec.c, an exchange's answers by a real
 * peer serving it), so each harness starts deep in its decoder. They are data, committed in
 * git; the crash-* files beside them are the inputs of crashes found, written by hand from a
 * fuzzer's artifact, and this program leaves them alone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dvv.h"
#include "exchange.h"
#include "fuzz_node.h"
#include "hash.h"
#include "log.h"
#include "peer.pb-c.h"
#include "peer_codec.h"

static const char *out_dir;

static void seed(const char *target, const char *name, const void *bytes, size_t n) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s/%s", out_dir, target, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(bytes, 1, n, f) != n || fclose(f) != 0) {
    fprintf(stderr, "seeds: cannot write %s\n", path);
    exit(1);
  }
}

/* The record node f holds for (keyspace, key); malloc'd. */
static uint8_t *record_of(fz_node_t *f, const char *keyspace, const char *key, size_t *n) {
  uint8_t *rec;
  kv_status_t st;
  KV_ASSERT(kv_node_read_record(f->node, keyspace, (const uint8_t *)key, strlen(key), &rec, n,
                                &st) == KV_OK && rec);
  return rec;
}

/* n1 as every harness starts it, and n2 with a version of "a" concurrent with n1's and a "c". */
static fz_node_t n1, n2;

static void nodes_open(void) {
  fz_node_open(&n1, "n1");
  fz_node_fill(&n1);
  fz_node_open(&n2, "n2");
  fz_node_put(&n2, "default", "a", "apricot", FZ_WALL_MS + 1);
  fz_node_put(&n2, "default", "c", "cherry", FZ_WALL_MS + 1);
}

static void nodes_close(void) {
  fz_node_close(&n1);
  fz_node_close(&n2);
  sim_disks_reset();
}

/* ---- token and record --------------------------------------------------------------- */

static void token_seeds(void) {
  seed("token", "empty", "", 0);
  kv_dvv_t obj;
  kv_status_t st;
  size_t n;
  uint8_t *rec = record_of(&n1, "default", "a", &n), *bytes;
  KV_ASSERT(kv_dvv_decode(rec, n, &obj, &st) == KV_OK);
  KV_ASSERT(kv_cc_encode(&obj.cc, &bytes, &n) == KV_OK);
  seed("token", "one-actor", bytes, n);
  free(bytes);
  free(rec);
  /* A loose dot past n2's contiguous ones: a cloud entry. */
  const kv_dot_t loose = {.actor = {.node = "n2", .incarnation = 2ull << 32 | 1}, .counter = 9};
  KV_ASSERT(kv_cc_add(&obj.cc, &loose) == KV_OK);
  KV_ASSERT(kv_cc_encode(&obj.cc, &bytes, &n) == KV_OK);
  seed("token", "cloud", bytes, n);
  free(bytes);
  kv_dvv_deinit(&obj);
}

static void record_seeds(void) {
  kv_dvv_t empty, merged, other;
  kv_status_t st;
  size_t n, n_other;
  uint8_t *bytes;
  kv_dvv_init(&empty);
  KV_ASSERT(kv_dvv_encode(&empty, &bytes, &n) == KV_OK);
  seed("record", "empty", bytes, n);
  free(bytes);
  uint8_t *rec = record_of(&n1, "default", "a", &n);
  seed("record", "one-sibling", rec, n);
  uint8_t *rec2 = record_of(&n2, "default", "a", &n_other);
  KV_ASSERT(kv_dvv_decode(rec, n, &merged, &st) == KV_OK);
  KV_ASSERT(kv_dvv_decode(rec2, n_other, &other, &st) == KV_OK);
  KV_ASSERT(kv_dvv_merge(&merged, &other, &st) == KV_OK);
  KV_ASSERT(kv_dvv_encode(&merged, &bytes, &n) == KV_OK);
  seed("record", "two-siblings", bytes, n);
  free(bytes);
  /* A delete of both: one tombstone covering them. */
  const kv_actor_t self = {.node = "n1", .incarnation = 1ull << 32 | 1};
  kv_cc_t ctx = merged.cc;
  KV_ASSERT(kv_dvv_put(&merged, &self, 1, &ctx, NULL, 0, true, 1, KV_SIBLINGS_DEFAULT, &st) ==
            KV_OK);
  KV_ASSERT(kv_dvv_encode(&merged, &bytes, &n) == KV_OK);
  seed("record", "tombstone", bytes, n);
  free(bytes);
  kv_dvv_deinit(&merged);
  kv_dvv_deinit(&other);
  free(rec);
  free(rec2);
}

/* ---- peer ----------------------------------------------------------------------------- */

#define BATCH_MAX 16u

typedef struct {
  Tunekv__Peer__PeerMessage *messages[BATCH_MAX];
  size_t count;
} batch_t;

/* Adds m to b as peer_codec.c puts it on the wire. */
static void batch_add(batch_t *b, const kv_msg_t *m) {
  uint8_t *bytes;
  size_t n;
  kv_status_t st;
  KV_ASSERT(b->count < BATCH_MAX && kv_peer_msg_pack(fz_cluster(), m, &bytes, &n, &st) == KV_OK);
  b->messages[b->count++] = tunekv__peer__peer_message__unpack(NULL, n, bytes);
  KV_ASSERT(b->messages[b->count - 1]);
  free(bytes);
}

/* Writes b as a PeerBatch from n2 and empties it. */
static void batch_seed(batch_t *b, const char *name) {
  Tunekv__Peer__PeerBatch pb = TUNEKV__PEER__PEER_BATCH__INIT;
  pb.from = "n2";
  pb.n_messages = b->count;
  pb.messages = b->messages;
  size_t n = tunekv__peer__peer_batch__get_packed_size(&pb);
  uint8_t *bytes = malloc(n ? n : 1);
  KV_ASSERT(bytes);
  tunekv__peer__peer_batch__pack(&pb, bytes);
  seed("peer", name, bytes, n);
  free(bytes);
  for (size_t i = 0; i < b->count; i++) tunekv__peer__peer_message__free_unpacked(b->messages[i], NULL);
  b->count = 0;
}

static void peer_seeds(void) {
  const kv_config_t *cfg = fz_cluster();
  size_t n_a, n_b;
  uint8_t *a = record_of(&n2, "default", "a", &n_a), *b_rec = record_of(&n1, "default", "b", &n_b);
  const uint8_t *ka = (const uint8_t *)"a", *kb = (const uint8_t *)"b";
  batch_t b = {.count = 0};

  kv_msg_t m = kv_msg_write(1, "default", ka, 1, a, n_a, false);
  batch_add(&b, &m);
  m.id = 2;
  m.durable = true;
  m.hint_for = (uint32_t)kv_config_node_index(cfg, "n3");
  batch_add(&b, &m);
  batch_seed(&b, "write");

  const kv_relay_target_t relay[1] = {{.node = (uint32_t)kv_config_node_index(cfg, "n2"), .id = 7}};
  m = kv_msg_write(3, "default", ka, 1, a, n_a, true);
  m.relay = relay;
  m.relay_count = 1;
  m.relay_wait_ms = 100;
  batch_add(&b, &m);
  batch_seed(&b, "write-forward");

  m = kv_msg_read(4, "default", ka, 1);
  batch_add(&b, &m);
  m = kv_msg_read(5, "small", (const uint8_t *)"s", 1);
  m.hint_for = (uint32_t)kv_config_node_index(cfg, "n3");
  batch_add(&b, &m);
  batch_seed(&b, "read");

  uint32_t parts[16], segment = kv_hash_segment(kv_hash_key("default", ka, 1));
  for (uint32_t p = 0; p < 16; p++) parts[p] = p;
  uint32_t part_a = kv_hash_partition(kv_hash_key("default", ka, 1), cfg->partitions);
  m = KV_MSG_INIT(KV_MSG_TREE, 6);
  m.tree = (kv_aae_req_t){.kind = KV_AAE_ASK_ROOTS, .keyspace = "default", .partitions = parts,
                          .partition_count = 16};
  batch_add(&b, &m);
  m.tree = (kv_aae_req_t){.kind = KV_AAE_ASK_SEGMENTS, .keyspace = "default",
                          .partitions = &part_a, .partition_count = 1};
  batch_add(&b, &m);
  m.tree = (kv_aae_req_t){.kind = KV_AAE_ASK_KEYS, .keyspace = "default", .partitions = &part_a,
                          .partition_count = 1, .segments = &segment, .segment_count = 1};
  batch_add(&b, &m);
  batch_seed(&b, "tree");

  m = kv_msg_read(8, "default", kb, 1);
  m.kind = KV_MSG_REAP;
  m.rec = b_rec;
  m.rec_bytes = n_b;
  m.hints_only = true;
  batch_add(&b, &m);
  m.hints_only = false;
  batch_add(&b, &m);
  batch_seed(&b, "reap");
  free(a);
  free(b_rec);
}

/* ---- hint ----------------------------------------------------------------------------- */

/* Appends one chunk (hint.c's format) to buf at *at. */
static void chunk(uint8_t *buf, size_t room, size_t *at, uint8_t head, const uint8_t *rec,
                  size_t n) {
  KV_ASSERT(*at + 3 + n <= room);
  buf[(*at)++] = head;
  buf[(*at)++] = (uint8_t)n;
  buf[(*at)++] = (uint8_t)(n >> 8);
  memcpy(buf + *at, rec, n);
  *at += n;
}

static void hint_seeds(void) {
  size_t n1_a, n2_a, at = 0;
  uint8_t *a1 = record_of(&n1, "default", "a", &n1_a), *a2 = record_of(&n2, "default", "a", &n2_a);
  uint8_t buf[1024];
  /* Key "a" for n3 (head 0x04) twice, merged; key "b" for n2 (0x01); one on disk before. */
  chunk(buf, sizeof buf, &at, 0x84, a1, n1_a);
  chunk(buf, sizeof buf, &at, 0x04, a2, n2_a);
  chunk(buf, sizeof buf, &at, 0x01, a1, n1_a);
  seed("hint", "merges", buf, at);
  at = 0;
  /* "small" key "c" for n4 (0x1a), and a hint on disk that is not a record. */
  chunk(buf, sizeof buf, &at, 0x80, (const uint8_t *)"not a record", 12);
  chunk(buf, sizeof buf, &at, 0x1a, a2, n2_a);
  chunk(buf, sizeof buf, &at, 0x00, a2, n2_a);
  seed("hint", "disk", buf, at);
  free(a1);
  free(a2);
}

/* ---- exchange ----------------------------------------------------------------------------
 * n1's first exchange, with n2 as nodes_open makes it (one is enough, and small: segment sums
 * are 8 KiB an answer), or with every peer when its tree requests fail (n3 and n4 empty). Each
 * message n1 sends is served at once by its peer and the answer kept, in the order sent,
 * which is the order the harness hands answers back in; the run follows the harness's loop. */

#define ANSWERS_MAX 512u

static Tunekv__Peer__PeerAnswer *answers[ANSWERS_MAX];
static size_t answer_count, answer_next;
static fz_node_t *peers[4];
static bool fail_trees;       /* answer every tree request with an error */

static Tunekv__Peer__PeerAnswer *answer_new(uint64_t id) {
  KV_ASSERT(answer_count < ANSWERS_MAX);
  Tunekv__Peer__PeerAnswer *a = calloc(1, sizeof *a);
  KV_ASSERT(a);
  tunekv__peer__peer_answer__init(a);
  a->id = id;
  answers[answer_count++] = a;
  return a;
}

static bool alive(void *arg, uint32_t node) { return true; }

static kv_err serve(void *arg, uint32_t node, const kv_msg_t *m, kv_status_t *st) {
  fz_node_t *peer = peers[node];
  Tunekv__Peer__PeerAnswer *a = answer_new(m->id);
  kv_err err = KV_OK;
  if (m->kind == KV_MSG_TREE && fail_trees) {
    err = KV_EUNAVAILABLE;
  } else if (m->kind == KV_MSG_TREE) {
    kv_aae_answer_t t;
    err = kv_aae_serve(peer->node, &m->tree, &t, st);
    KV_ASSERT(err == KV_OK);
    a->n_hashes = t.hash_count;
    a->hashes = t.hashes;
    a->n_keys = t.key_count;
    a->keys = calloc(t.key_count + 1, sizeof *a->keys);
    KV_ASSERT(a->keys);
    for (uint32_t i = 0; i < t.key_count; i++)
      a->keys[i] = (ProtobufCBinaryData){t.keys[i].len, t.keys[i].data};
    free(t.keys);
  } else if (m->kind == KV_MSG_READ) {
    err = kv_node_read_record(peer->node, m->keyspace, m->key, m->key_bytes, &a->record.data,
                              &a->record.len, st);
  } else {
    err = kv_node_merge(peer->node, m->keyspace, m->key, m->key_bytes, m->rec, m->rec_bytes, st);
  }
  a->code = (uint32_t)kv_err_grpc_code(err);
  return KV_OK;
}

static void exchange_seed(const char *name) {
  fz_node_t n3, n4;
  fz_node_open(&n3, "n3");
  fz_node_open(&n4, "n4");
  peers[1] = &n2;
  peers[2] = &n3;
  peers[3] = &n4;
  kv_xch_t x;
  kv_xch_init(&x, n1.node, fz_ring());
  const kv_msg_out_t out = {.arg = NULL, .alive = alive, .send = serve};
  uint64_t now_us = 1000000;
  kv_xch_tick(&x, &out, now_us);
  /* One round (the first exchange only, unless tree requests fail): until it has begun and
   * ended with nothing left to answer. */
  bool began = false;
  for (;;) {
    for (int idle = 0; answer_next == answer_count && idle < 2; idle++) {
      if (began && !x.round_active) break;
      now_us += FZ_AAE_INTERVAL_MS * 1000ull;
      kv_xch_tick(&x, &out, now_us);
      began |= x.round_active;
    }
    if (answer_next == answer_count) break;
    kv_msg_answer_t a;
    kv_peer_answer_scratch_t scratch;
    const Tunekv__Peer__PeerAnswer *pa = answers[answer_next++];
    kv_peer_answer_view(pa, pa->id, &a, &scratch);
    kv_xch_answer(&x, &out, pa->id, a.code, a.tree, a.rec, a.rec_bytes, now_us);
    kv_peer_answer_scratch_free(&scratch);
    if (!fail_trees && x.phase == KV_XCH_IDLE && answer_next == answer_count) break;
  }
  kv_aae_stats_t stats;
  kv_xch_stats(&x, 1, &stats);
  fprintf(stderr, "seeds: exchange %s: %zu answers, %llu repaired with n2\n", name, answer_next,
          (unsigned long long)stats.keys_repaired);
  kv_xch_deinit(&x);
  Tunekv__Peer__PeerBatchReply r = TUNEKV__PEER__PEER_BATCH_REPLY__INIT;
  r.n_answers = answer_next;
  r.answers = answers;
  size_t n = tunekv__peer__peer_batch_reply__get_packed_size(&r);
  uint8_t *bytes = malloc(n ? n : 1);
  KV_ASSERT(bytes);
  tunekv__peer__peer_batch_reply__pack(&r, bytes);
  seed("exchange", name, bytes, n);
  free(bytes);
  for (size_t i = 0; i < answer_count; i++) {
    free(answers[i]->hashes);
    for (size_t k = 0; k < answers[i]->n_keys; k++) free(answers[i]->keys[k].data);
    free(answers[i]->keys);
    free(answers[i]->record.data);
    free(answers[i]);
  }
  answer_count = answer_next = 0;
  fz_node_close(&n3);
  fz_node_close(&n4);
}

/* ---- config --------------------------------------------------------------------------- */

static const char single_yaml[] =
    "nodes:\n"
    "  - { id: n1, address: \"127.0.0.1:7001\" }\n"
    "keyspaces:\n"
    "  - name: default\n"
    "    replication: { local: 1 }\n"
    "    read: ONE\n"
    "    write: ONE\n";

static const char secure_yaml[] =
    "cluster:\n"
    "  name: secure\n"
    "  partitions: 64\n"
    "  phi_threshold: 10.5\n"
    "  max_clock_skew_ms: 250\n"
    "  block_cache_mb: 16\n"
    "nodes:\n"
    "  - { id: e1, address: \"east-1:7001\", region: east, rack: a }\n"
    "  - { id: e2, address: \"east-2:7001\", region: east, rack: b }\n"
    "  - { id: w1, address: \"[::1]:7001\", region: west, rack: a }\n"
    "keyspaces:\n"
    "  - name: carts\n"
    "    replication: { east: 2, west: 1 }\n"
    "    read: LOCAL_QUORUM\n"
    "    write: EACH_QUORUM\n"
    "    handler: region-priority\n"
    "    region_priority: [east, west]\n"
    "    sloppy_quorum: false\n"
    "  - name: tags\n"
    "    replication: { east: 1, west: 1 }\n"
    "    handler: set-union\n"
    "    value_bytes_max: 4096\n"
    "tls:\n"
    "  cert: /etc/tunekv/{node}.crt\n"
    "  key: /etc/tunekv/{node}.key\n"
    "  ca: /etc/tunekv/ca.crt\n"
    "  client_auth: require\n"
    "tokens:\n"
    "  - { name: app, secret: \"0123456789abcdef0123\", read: [carts, tags], write: [carts] }\n"
    "  - { name: ops, secret: \"fedcba9876543210fedc\", read: \"*\", admin: true }\n";

static void config_seeds(void) {
  seed("config", "fuzz-cluster.yaml", FZ_CLUSTER_YAML, strlen(FZ_CLUSTER_YAML));
  seed("config", "single.yaml", single_yaml, strlen(single_yaml));
  seed("config", "secure.yaml", secure_yaml, strlen(secure_yaml));
}

/* Every seed must load (config) or pass its harness's checks; `make fuzz-replay` runs them. */
int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: seeds DIR\n");
    return 2;
  }
  out_dir = argv[1];
  nodes_open();
  token_seeds();
  record_seeds();
  peer_seeds();
  hint_seeds();
  exchange_seed("round");
  fail_trees = true;
  exchange_seed("trees-fail");
  nodes_close();
  config_seeds();
  return 0;
}
