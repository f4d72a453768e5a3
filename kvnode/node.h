/* node.h: one kvnode's replica: request validation, and the key operations on its own store.
 *
 * The RPC layer turns protobuf messages into kv_node_req_t (plain structs, borrowed
 * pointers); kv_node_plan checks the request once and resolves what it asks for, and every
 * rule about what a request may ask for lives there, so each error a user can reach is one
 * place and one unit test. Validation order (the first failure is the answer):
 *   keyspace known (NOT_FOUND) -> key 1..key_bytes_max -> value <= value_bytes_max ->
 *   level name known -> r/w/pr/pw and the level satisfiable by N -> timeout <= max ->
 *   read_repair mode known -> context well-formed.
 *
 * Operations on this replica: a coordinated write (kv_node_put / kv_node_delete: mint a dot
 * here), a replica write (kv_node_merge: merge a state another replica sent), and reads.
 * Writes are read-modify-write of the key's DVV object under a per-key stripe lock, so no
 * two writes to one key on this node lose each other; reads take no lock (a RocksDB get sees
 * one whole record). No operation fsyncs: see kv_node_sync. Thread-safe. */
#ifndef KV_NODE_H
#define KV_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "consistency.h"
#include "dvv.h"
#include "kv_err.h"
#include "store.h"

/* One client request. All pointers are borrowed for the duration of the call. */
typedef struct {
  const char *keyspace;
  const uint8_t *key;
  size_t key_bytes;
  const uint8_t *value;       /* put only */
  size_t value_bytes;
  const uint8_t *context;     /* put/delete; may be empty */
  size_t context_bytes;
  const char *level;          /* "" = keyspace default */
  uint32_t count;             /* explicit r (get) or w (put/delete); 0 = level */
  uint32_t primaries;         /* pr (get) or pw (put/delete) */
  bool durable;               /* answered only after a kv_node_sync */
  uint32_t timeout_ms;        /* 0 = KV_TIMEOUT_MS_DEFAULT */
  bool local;                 /* get only: this node's replica, no coordination */
  const char *read_repair;    /* get only: "blocking", "async" or "" (the level's default) */
  const uint8_t *raw;         /* the request message as received, for forwarding */
  size_t raw_bytes;
} kv_node_req_t;

/* A checked request: what it touches and what it needs. */
typedef struct {
  const kv_keyspace_conf_t *ks;
  uint32_t partition;
  uint64_t hash;
  kv_level_t level;           /* resolved (never DEFAULT); for messages */
  kv_need_t need;
  uint32_t timeout_ms;        /* resolved */
  kv_cc_t ctx;                /* writes: the decoded client context */
  bool repair_blocking;       /* gets: repair stale replicas before answering */
} kv_node_plan_t;

/* What an operation answers: the key's live siblings and a context covering everything the
 * replica holds for the key (tombstones too). A put or delete is answered like a get of the
 * object it left (Riak's return_body), so a client that writes back with that context has
 * been shown every version it replaces. For writes, record is the full encoded state that
 * was stored (tombstones included), for sending to the other replicas. Free with
 * kv_node_result_free. */
typedef struct {
  bool found;                 /* at least one live sibling */
  kv_dvv_t object;            /* live siblings only */
  uint8_t *context;           /* malloc'd */
  size_t context_bytes;
  uint8_t *record;            /* writes: malloc'd; NULL for reads */
  size_t record_bytes;
} kv_node_result_t;

typedef struct kv_node kv_node_t;

/* cfg and store are borrowed and must outlive the node. self_id must be in cfg. */
kv_err kv_node_create(const kv_config_t *cfg, const char *self_id, kv_store_t *store,
                      kv_node_t **out, kv_status_t *st);
void kv_node_destroy(kv_node_t *node);
/* This node's index in cfg->nodes, and the incarnation of its data directory. */
uint32_t kv_node_self(const kv_node_t *node);
uint64_t kv_node_incarnation(const kv_node_t *node);

/* Checks req and resolves it into *plan. */
kv_err kv_node_plan(const kv_node_t *node, const kv_node_req_t *req, bool is_write,
                    kv_node_plan_t *plan, kv_status_t *st);

/* Coordinated writes on this replica. now_ms: wall-clock ms for the write's hybrid logical
 * timestamp. Each fills *res (also on failure, so kv_node_result_free is always safe). */
kv_err kv_node_put(kv_node_t *node, const kv_node_req_t *req, const kv_node_plan_t *plan,
                   uint64_t now_ms, kv_node_result_t *res, kv_status_t *st);
kv_err kv_node_delete(kv_node_t *node, const kv_node_req_t *req, const kv_node_plan_t *plan,
                      uint64_t now_ms, kv_node_result_t *res, kv_status_t *st);
/* This replica's view of the key. */
kv_err kv_node_get(kv_node_t *node, const kv_node_req_t *req, const kv_node_plan_t *plan,
                   kv_node_result_t *res, kv_status_t *st);
/* The answer for a state gathered elsewhere (a coordinated read's merge): takes obj (its
 * values move into res; obj is left empty). */
kv_err kv_node_answer(kv_dvv_t *obj, kv_node_result_t *res, kv_status_t *st);
void kv_node_result_free(kv_node_result_t *res);

/* Replica operations, for other nodes. kv_node_merge merges an encoded record into this
 * replica's state of the key (KV_ECORRUPT when the record does not decode).
 * kv_node_read_record gives this replica's encoded record (malloc'd; NULL, 0 when none). */
kv_err kv_node_merge(kv_node_t *node, const char *keyspace, const uint8_t *key,
                     size_t key_bytes, const uint8_t *rec, size_t rec_bytes, kv_status_t *st);
kv_err kv_node_read_record(kv_node_t *node, const char *keyspace, const uint8_t *key,
                           size_t key_bytes, uint8_t **rec, size_t *rec_bytes,
                           kv_status_t *st);

/* Writes are made durable apart from their requests: no operation above fsyncs, and a
 * durable request is answered only after a kv_node_sync that began after it returned. One
 * sync covers every write before it, so the caller can group many durable requests behind
 * one fsync (group commit). */
kv_err kv_node_sync(kv_node_t *node, kv_status_t *st);

/* This node's store (borrowed; lives as long as the node), for hinted handoff and
 * anti-entropy, and the config it runs with. */
kv_store_t *kv_node_store(kv_node_t *node);
const kv_config_t *kv_node_config(const kv_node_t *node);

/* The largest message this node's keyspaces can produce or accept (gRPC limits). */
size_t kv_node_max_message_bytes(const kv_node_t *node);

#endif
