/* node.h: one kvnode's request handling, below the gRPC edge.
 *
 * The RPC layer turns protobuf messages into kv_node_req_t (plain structs, borrowed
 * pointers) and calls kv_node_put / get / delete; every rule about what a request may ask
 * for lives here, so each error a user can reach is one place and one unit test.
 *
 * Validation order (the first failure is the answer):
 *   keyspace known (NOT_FOUND) -> key 1..key_bytes_max -> value <= value_bytes_max ->
 *   level name known -> r/w/pr/pw and the level satisfiable by N -> timeout <= max ->
 *   context well-formed.
 *
 * Writes are read-modify-write of the key's DVV object under a per-key stripe lock, so two
 * puts to one key on this node never lose each other; reads take no lock (a RocksDB get sees
 * one whole record). Thread-safe. */
#ifndef KV_NODE_H
#define KV_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
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
  bool durable;               /* the caller must kv_node_sync before answering */
  uint32_t timeout_ms;        /* 0 = default */
  bool local;                 /* get only: this node's replica, no coordination */
} kv_node_req_t;

/* What every operation answers: the key's live siblings and a context covering everything
 * the replica holds for the key (tombstones too). A put or delete is answered like a get of
 * the object it left (Riak's return_body), so a client that writes back with that context
 * has been shown every version it replaces. Free with kv_node_result_free. */
typedef struct {
  bool found;                 /* at least one live sibling */
  kv_dvv_t object;            /* live siblings only */
  uint8_t *context;           /* malloc'd */
  size_t context_bytes;
} kv_node_result_t;

typedef struct kv_node kv_node_t;

/* cfg and store are borrowed and must outlive the node. self_id must be in cfg. */
kv_err kv_node_create(const kv_config_t *cfg, const char *self_id, kv_store_t *store,
                      kv_node_t **out, kv_status_t *st);
void kv_node_destroy(kv_node_t *node);

/* now_ms: wall-clock milliseconds, for the write's hybrid logical timestamp. */
/* Each fills *res (also on failure, so kv_node_result_free is always safe). */
kv_err kv_node_put(kv_node_t *node, const kv_node_req_t *req, uint64_t now_ms,
                   kv_node_result_t *res, kv_status_t *st);
kv_err kv_node_delete(kv_node_t *node, const kv_node_req_t *req, uint64_t now_ms,
                      kv_node_result_t *res, kv_status_t *st);
kv_err kv_node_get(kv_node_t *node, const kv_node_req_t *req, kv_node_result_t *res,
                   kv_status_t *st);

void kv_node_result_free(kv_node_result_t *res);

/* Writes are made durable apart from their requests: kv_node_put/delete never fsync, and a
 * durable request is answered only after a kv_node_sync that began after it returned. One
 * sync covers every write before it, so the caller can group many durable requests behind
 * one fsync (group commit). */
kv_err kv_node_sync(kv_node_t *node, kv_status_t *st);

/* The largest message this node's keyspaces can produce or accept (gRPC limits). */
size_t kv_node_max_message_bytes(const kv_node_t *node);

#endif
