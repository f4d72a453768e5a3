/* node.h: one kvnode's replica: request validation, and the key operations on its own store.
 *
 * The RPC layer turns protobuf messages into kv_node_req_t (plain structs, borrowed
 * pointers); kv_node_plan checks the request once and resolves what it asks for, and every
 * rule about what a request may ask for lives there, so each error a user can reach is one
 * place and one unit test. Validation order (the first failure is the answer):
 *   keyspace known (NOT_FOUND) -> key 1..key_bytes_max -> value <= value_bytes_max ->
 *   level name known -> r/w/pr/pw and the level satisfiable by N -> timeout <= max ->
 *   read_repair mode known -> handler known -> context well-formed.
 *
 * Operations on this replica: a coordinated write (kv_node_put / kv_node_delete: mint a dot
 * here), a replica write (kv_node_merge: merge a state another replica sent), and reads.
 * Writes are read-modify-write of the key's DVV object, one at a time (the core is
 * single-threaded: kvnode/driver.h), so no two writes to one key on this node lose each
 * other. No operation fsyncs: durability is the driver's group commit (sync.h).
 *
 * Conflicts (common/conflict.h). Every answer (a get of this replica, a coordinated read's
 * merge, a put's or delete's return_body) is the state as the request's handler resolves it
 * (the keyspace's unless the request names another), with the state's whole context; what it
 * discards goes to this node's journal (common/journal.h). Stored states change only by DVV
 * put and merge. A resolution becomes state only as a put this replica makes of the result
 * with the whole context (kv_node_resolve_write, for a coordinated read's write-back), and
 * so does the sibling cap: a write or a merge that leaves more than the keyspace's
 * siblings_max siblings has them resolved by its fallback_handler (lww when that does not
 * come down to one version) and the result put, so a record never holds more. */
#ifndef KV_NODE_H
#define KV_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "conflict.h"
#include "consistency.h"
#include "dvv.h"
#include "journal.h"
#include "kv_err.h"
#include "metrics.h"
#include "storage.h"

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
  const char *handler;        /* conflict handler; NULL or "" = the keyspace's */
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
  const kv_conflict_handler_t *handler; /* resolves the answer (never NULL) */
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

/* cfg and storage's handle are borrowed and must outlive the node (storage itself is
 * copied). self_id must be in cfg. */
kv_err kv_node_create(const kv_config_t *cfg, const char *self_id, const kv_storage_t *storage,
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
/* This replica's view of the key, resolved by the plan's handler. now_ms: wall clock, for
 * the journal. */
kv_err kv_node_get(kv_node_t *node, const kv_node_req_t *req, const kv_node_plan_t *plan,
                   uint64_t now_ms, kv_node_result_t *res, kv_status_t *st);
/* The answer for a state gathered elsewhere (a coordinated read's merge): takes obj (its
 * values move into res; obj is left empty). */
kv_err kv_node_answer(kv_dvv_t *obj, kv_node_result_t *res, kv_status_t *st);
/* The same, resolved by handler h first (journaling what it discards, at now_ms). */
kv_err kv_node_answer_resolved(kv_node_t *node, const char *keyspace, const uint8_t *key,
                               size_t key_bytes, const kv_conflict_handler_t *h,
                               uint64_t now_ms, kv_dvv_t *obj, kv_node_result_t *res,
                               kv_status_t *st);
/* A coordinated read's write-back: merges `merged` (a state gathered from the replicas) into
 * this replica's, resolves the result with h, and when it comes to one version other than
 * the state as it is, puts that version here with the state's whole context (minting a dot;
 * the version keeps the highest timestamp it replaces) and journals what was discarded.
 * *rec is then the record stored (malloc'd); NULL when nothing was written. */
kv_err kv_node_resolve_write(kv_node_t *node, const char *keyspace, const uint8_t *key,
                             size_t key_bytes, const kv_conflict_handler_t *h,
                             const kv_dvv_t *merged, uint64_t now_ms, uint8_t **rec,
                             size_t *rec_bytes, kv_status_t *st);
/* Where resolutions are counted per handler (kv_metrics_conflict: each time a handler changes
 * a sibling set, on a read, a write-back or the sibling cap); borrowed, must outlive the node;
 * NULL (the default) for nowhere. Before the node is shared between threads. */
void kv_node_set_metrics(kv_node_t *node, kv_metrics_t *metrics);
/* This node's conflict journal (borrowed; lives as long as the node). */
kv_journal_t *kv_node_journal(kv_node_t *node);
/* Whether node index `peer`'s clock is off by more than max_clock_skew_ms (clock sanity);
 * versions it minted are marked suspect in resolutions. Safe from any thread. */
void kv_node_clock_suspect_set(kv_node_t *node, uint32_t peer, bool suspect);
bool kv_node_clock_suspect(const kv_node_t *node, uint32_t peer);
void kv_node_result_free(kv_node_result_t *res);

/* Replica operations, for other nodes. kv_node_merge merges an encoded record into this
 * replica's state of the key (KV_ECORRUPT when the record does not decode), then applies the
 * sibling cap (journaled at the time of this node's hybrid logical clock).
 * kv_node_read_record gives this replica's encoded record (malloc'd; NULL, 0 when none). */
kv_err kv_node_merge(kv_node_t *node, const char *keyspace, const uint8_t *key,
                     size_t key_bytes, const uint8_t *rec, size_t rec_bytes, kv_status_t *st);
kv_err kv_node_read_record(kv_node_t *node, const char *keyspace, const uint8_t *key,
                           size_t key_bytes, uint8_t **rec, size_t *rec_bytes,
                           kv_status_t *st);

/* Tombstone reaping (reaper.h): removes this replica's record of the key (keyspace must be
 * one of the config's) while its anti-entropy leaf (kv_hash_leaf of the record) is still
 * `leaf`, under the key's lock.
 * KV_OK when it is removed or already gone; KV_EPRECONDITION with a sentence when the
 * record changed (a write landed after the reaper read it: it stays). */
kv_err kv_node_reap(kv_node_t *node, const char *keyspace, const uint8_t *key, size_t key_bytes,
                    uint64_t leaf, kv_status_t *st);

/* Writes are made durable apart from their requests: no operation above fsyncs, and a
 * durable request is answered only after a kv_node_sync that began after it returned. One
 * sync covers every write before it, so the caller can group many durable requests behind
 * one fsync (group commit). */
kv_err kv_node_sync(kv_node_t *node, kv_status_t *st);

/* This node's storage (borrowed; lives as long as the node), for hinted handoff and
 * anti-entropy, and the config it runs with. */
const kv_storage_t *kv_node_storage(const kv_node_t *node);
const kv_config_t *kv_node_config(const kv_node_t *node);

/* The largest message this node's keyspaces can produce or accept (gRPC limits). */
size_t kv_node_max_message_bytes(const kv_node_t *node);

#endif
