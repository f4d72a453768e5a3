/* node.c: validation and local execution of client requests on one node.
 *
 * A write is: validate -> read the record -> decode -> DVV put (mint a dot as actor (node
 * id, incarnation), its counter at least the write's hybrid logical timestamp: dvv.h) ->
 * encode -> write. Durable requests are fsynced afterwards, in groups, by the driver (sync.h).
 * The core is single-threaded (kvnode/driver.h), so a read-modify-write is atomic per key
 * without a lock of its own.
 *
 * Invariant: every record this node writes passed kv_dvv_put or decode, so it satisfies
 * kv_dvv_check; a record that fails to decode is reported as DATA_LOSS naming the key.
 *
 * Conflicts (node.h): answers are resolved by the plan's handler on their way out
 * (node_resolve_answer); the sibling cap (node_cap) runs in the same step as the
 * write or merge that passed it, so the record stored never holds more than siblings_max.
 * Writes observe the timestamps of the versions they read (kv_hlc_observe), so a write that
 * replaces a version is stamped after it even when that version came from a faster clock:
 * lww then never prefers what a client replaced over its replacement. */
#include "node.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buggify.h"
#include "consistency.h"
#include "fmt.h"
#include "hash.h"
#include "hlc.h"
#include "journal.h"
#include "log.h"


struct kv_node {
  const kv_config_t *cfg;
  kv_storage_t storage;         /* copied; its handle borrowed */
  kv_actor_t self;
  const kv_node_conf_t *self_conf;
  uint32_t self_index;
  kv_hlc_t hlc;
  kv_journal_t journal;
  _Atomic bool clock_suspect[KV_NODES_MAX];
  kv_metrics_t *metrics;        /* conflicts resolved, per handler; may be NULL */
};

kv_err kv_node_create(const kv_config_t *cfg, const char *self_id, const kv_storage_t *storage,
                      kv_node_t **out, kv_status_t *st) {
  const kv_node_conf_t *self = kv_config_node(cfg, self_id);
  if (!self) return kv_status_set(st, KV_ECONFIG, "node '%s' is not in %s", self_id, cfg->path);
  kv_node_t *node = calloc(1, sizeof *node);
  if (!node) return kv_status_set(st, KV_ENOMEM, "out of memory creating the node");
  node->cfg = cfg;
  node->storage = *storage;
  node->self_conf = self;
  node->self_index = (uint32_t)kv_config_node_index(cfg, self_id);
  snprintf(node->self.node, sizeof node->self.node, "%s", self_id);
  node->self.incarnation = kv_storage_incarnation(storage);
  kv_hlc_init(&node->hlc);
  if (kv_journal_init(&node->journal) != KV_OK) {
    free(node);
    return kv_status_set(st, KV_ENOMEM, "out of memory creating the conflict journal");
  }
  *out = node;
  return KV_OK;
}

void kv_node_destroy(kv_node_t *node) {
  if (!node) return;
  kv_journal_deinit(&node->journal);
  free(node);
}

uint32_t kv_node_self(const kv_node_t *node) { return node->self_index; }

const kv_storage_t *kv_node_storage(const kv_node_t *node) { return &node->storage; }

const kv_config_t *kv_node_config(const kv_node_t *node) { return node->cfg; }

uint64_t kv_node_incarnation(const kv_node_t *node) { return node->self.incarnation; }

kv_journal_t *kv_node_journal(kv_node_t *node) { return &node->journal; }

void kv_node_set_metrics(kv_node_t *node, kv_metrics_t *metrics) { node->metrics = metrics; }

void kv_node_clock_suspect_set(kv_node_t *node, uint32_t peer, bool suspect) {
  KV_ASSERT(peer < KV_NODES_MAX);
  node->clock_suspect[peer] = suspect;
}

bool kv_node_clock_suspect(const kv_node_t *node, uint32_t peer) {
  KV_ASSERT(peer < KV_NODES_MAX);
  return node->clock_suspect[peer];
}

size_t kv_node_max_message_bytes(const kv_node_t *node) {
  uint32_t key_max, value_max, siblings_max;
  kv_config_limits(node->cfg, &key_max, &value_max, &siblings_max);
  return kv_limits_grpc_message_bytes(key_max, value_max, siblings_max);
}

/* The keyspace's replicas as seen from this node's region. */
static void node_shape(const kv_node_t *node, const kv_keyspace_conf_t *ks,
                       kv_replica_shape_t *shape) {
  memset(shape, 0, sizeof *shape);
  shape->keyspace = ks->name;
  shape->region_count = ks->replication_count;
  shape->local_region = -1;
  for (uint32_t i = 0; i < ks->replication_count; i++) {
    shape->replicas[i] = ks->replication[i].replicas;
    shape->region_names[i] = ks->replication[i].region;
    if (strcmp(ks->replication[i].region, node->self_conf->region) == 0)
      shape->local_region = (int)i;
  }
}

static kv_err node_check_sizes(const kv_node_req_t *req, const kv_keyspace_conf_t *ks,
                               kv_status_t *st) {
  if (req->key_bytes == 0) return kv_status_set(st, KV_EINVAL, "key is empty");
  if (req->key_bytes > ks->key_bytes_max)
    return kv_status_set(st, KV_EINVAL, "key is %zu bytes; keyspace '%s' allows at most %u",
                         req->key_bytes, ks->name, ks->key_bytes_max);
  if (req->value_bytes > ks->value_bytes_max)
    return kv_status_set(st, KV_EINVAL, "value is %zu bytes; keyspace '%s' allows at most %u",
                         req->value_bytes, ks->name, ks->value_bytes_max);
  return KV_OK;
}

static kv_err node_resolve_level(const kv_node_t *node, const kv_node_req_t *req,
                                 bool is_write, kv_node_plan_t *plan, kv_status_t *st) {
  kv_consistency_t c = {.count = req->count, .primaries = req->primaries};
  if (!kv_level_parse(req->level, &c.level))
    return kv_status_set(st, KV_EINVAL, "unknown consistency level '%.32s'; use one of %s",
                         req->level, kv_level_names_list());
  if (c.level == KV_LEVEL_DEFAULT) c.level = is_write ? plan->ks->write : plan->ks->read;
  plan->level = c.level;
  kv_replica_shape_t shape;
  node_shape(node, plan->ks, &shape);
  return kv_consistency_resolve(&c, is_write, &shape, &plan->need, st);
}

/* Whether a read asks for a quorum or more (of all replicas, or of a region's): such reads
 * repair before answering unless told otherwise, so two of them in a row never go back. */
static bool node_level_at_least_quorum(const kv_node_plan_t *plan) {
  return plan->need.total * 2 > plan->ks->n || plan->level == KV_LEVEL_LOCAL_QUORUM ||
         plan->level == KV_LEVEL_EACH_QUORUM;
}

/* The request's handler, or the keyspace's. A keyspace's plugin is registered at start-up
 * (plugin.h), so not finding it is a bug in how the node was started. */
static kv_err node_resolve_handler(kv_node_plan_t *plan, const kv_node_req_t *req,
                                   kv_status_t *st) {
  char shown[KV_FMT_KEY_BYTES];
  if (req->handler && req->handler[0]) {
    plan->handler = kv_conflict_find(req->handler);
    if (!plan->handler)
      return kv_status_set(st, KV_EINVAL, "handler '%s' is unknown; use one of %s, or a "
                           "plugin:PATH the config names",
                           kv_fmt_bytes(shown, sizeof shown, req->handler, strlen(req->handler)),
                           kv_conflict_builtin_names());
    return KV_OK;
  }
  plan->handler = kv_conflict_find(plan->ks->handler);
  if (!plan->handler)
    return kv_status_set(st, KV_EINTERNAL, "keyspace '%s' has handler '%s', which is not loaded",
                         plan->ks->name, plan->ks->handler);
  return KV_OK;
}

kv_err kv_node_plan(const kv_node_t *node, const kv_node_req_t *req, bool is_write,
                    kv_node_plan_t *plan, kv_status_t *st) {
  memset(plan, 0, sizeof *plan);
  plan->ks = kv_config_keyspace(node->cfg, req->keyspace);
  if (!plan->ks) {
    if (req->keyspace[0] == '\0') return kv_status_set(st, KV_EINVAL, "keyspace is empty");
    return kv_status_set(st, KV_ENOTFOUND, "keyspace '%.*s' does not exist",
                         (int)KV_KEYSPACE_NAME_BYTES_MAX, req->keyspace);
  }
  kv_err err = node_check_sizes(req, plan->ks, st);
  if (err == KV_OK) err = node_resolve_level(node, req, is_write, plan, st);
  if (err != KV_OK) return err;
  if (req->timeout_ms > KV_TIMEOUT_MS_MAX)
    return kv_status_set(st, KV_EINVAL, "timeout_ms is %u; the limit is %u", req->timeout_ms,
                         KV_TIMEOUT_MS_MAX);
  plan->timeout_ms = req->timeout_ms ? req->timeout_ms : KV_TIMEOUT_MS_DEFAULT;
  const char *repair = req->read_repair && !is_write ? req->read_repair : "";
  if (strcmp(repair, "blocking") == 0) plan->repair_blocking = true;
  else if (strcmp(repair, "async") == 0) plan->repair_blocking = false;
  else if (repair[0] == '\0') plan->repair_blocking = node_level_at_least_quorum(plan);
  else
    return kv_status_set(st, KV_EINVAL, "read_repair is '%.64s'; use blocking or async",
                         repair);
  kv_err herr = node_resolve_handler(plan, req, st);
  if (herr != KV_OK) return herr;
  plan->hash = kv_hash_key(req->keyspace, req->key, req->key_bytes);
  plan->partition = kv_hash_partition(plan->hash, node->cfg->partitions);
  kv_cc_init(&plan->ctx);
  if (is_write) return kv_cc_decode(req->context, req->context_bytes, &plan->ctx, st);
  return KV_OK;
}

/* Reads and decodes the key's object into *obj (uninitialized on entry, initialized on
 * return whatever happens); a missing key is the empty object. *leaf (when not NULL) gets the
 * anti-entropy leaf of what was read (0: nothing), for the tracked write that replaces it. */
static kv_err node_load(kv_node_t *node, uint32_t partition, uint64_t hash,
                        const char *keyspace, const uint8_t *key, size_t key_bytes,
                        kv_dvv_t *obj, uint64_t *leaf, kv_status_t *st) {
  uint8_t *rec = NULL;
  size_t rec_bytes = 0;
  bool found = false;
  kv_dvv_init(obj);
  if (leaf) *leaf = 0;
  kv_err err = kv_storage_get(&node->storage, partition, keyspace, key, key_bytes, &rec,
                              &rec_bytes, &found, st);
  if (err != KV_OK || !found) return err;
  if (leaf) *leaf = kv_hash_leaf(hash, rec, rec_bytes);
  err = kv_dvv_decode(rec, rec_bytes, obj, st);
  free(rec);
  if (err != KV_OK) {
    kv_dvv_init(obj);
    char shown[KV_FMT_KEY_BYTES], why[KV_STATUS_MSG_BYTES];
    kv_fmt_bytes(shown, sizeof shown, key, key_bytes);
    snprintf(why, sizeof why, "%s", st->msg);
    kv_status_set(st, err, "record for key '%s' in keyspace '%s' is corrupt: %s", shown,
                  keyspace, why);
  }
  return err;
}

static uint64_t node_hlc_now(kv_node_t *node, uint64_t now_ms) {
  uint64_t ts = kv_hlc_now(&node->hlc, now_ms);
  return ts;
}

/* Moves the clock past every version of obj (see the notes at the top). */
static void node_hlc_observe(kv_node_t *node, const kv_dvv_t *obj, uint64_t now_ms) {
  uint64_t max = 0;
  for (uint32_t i = 0; i < obj->sib_count; i++)
    if (obj->sib[i].hlc > max) max = obj->sib[i].hlc;
  if (max == 0) return;
  kv_hlc_observe(&node->hlc, max, now_ms);
}

/* Wall-clock ms as this node's clock last knew it, for paths that are given no time. */
static uint64_t node_hlc_ms(kv_node_t *node) {
  uint64_t ms = kv_hlc_ms(node->hlc.last);
  return ms;
}

/* ---- conflicts ---------------------------------------------------------------------- */

/* What resolving needs from this node: the config, and a snapshot of the suspect clocks. */
static void node_conflict_ctx(kv_node_t *node, const char *keyspace, bool *suspect,
                              kv_conflict_ctx_t *ctx) {
  for (uint32_t i = 0; i < node->cfg->node_count; i++) suspect[i] = node->clock_suspect[i];
  *ctx = (kv_conflict_ctx_t){.cfg = node->cfg, .keyspace = keyspace, .suspect = suspect};
}

/* Replaces obj by its answer as h resolves it (same context), journaling what is lost. */
static kv_err node_resolve_answer(kv_node_t *node, const char *keyspace, const uint8_t *key,
                                  size_t key_bytes, const kv_conflict_handler_t *h,
                                  uint64_t now_ms, kv_dvv_t *obj, kv_status_t *st) {
  if (obj->sib_count < 2) return KV_OK;
  bool suspect[KV_NODES_MAX];
  kv_conflict_ctx_t ctx;
  node_conflict_ctx(node, keyspace, suspect, &ctx);
  kv_conflict_outcome_t o;
  kv_conflict_resolve(h, &ctx, obj, &o);
  if (!o.changed) return KV_OK;
  kv_metrics_conflict(node->metrics, h->name, 1);
  kv_journal_record(&node->journal, now_ms, keyspace, key, key_bytes, h->name, "read", obj, &o);
  kv_dvv_t answer;
  kv_err err = kv_conflict_answer(obj, &o, &answer);
  kv_conflict_outcome_free(&o);
  if (err != KV_OK) return kv_status_set(st, KV_ENOMEM, "out of memory resolving a conflict");
  kv_dvv_deinit(obj);
  *obj = answer;
  return KV_OK;
}

/* Puts the one version o resolved obj to, with obj's whole context: every version it replaces
 * is covered, so none comes back by merge. The put keeps the highest timestamp it replaces. */
static kv_err node_put_resolution(kv_node_t *node, kv_dvv_t *obj, const kv_conflict_outcome_t *o,
                                  uint64_t now_ms, kv_status_t *st) {
  KV_ASSERT(o->changed && o->single);
  return kv_dvv_put(obj, &node->self, node_hlc_now(node, now_ms), &obj->cc, o->result.value,
                    o->result.value_bytes, o->result.tombstone, o->result.hlc, KV_SIBLINGS_MAX,
                    st);
}

/* The sibling cap: when obj holds more than limit siblings, the keyspace's fallback handler
 * (lww when it does not come to one version) resolves them and the result is put. */
static kv_err node_cap(kv_node_t *node, const kv_keyspace_conf_t *ks, const uint8_t *key,
                       size_t key_bytes, uint32_t limit, uint64_t now_ms, kv_dvv_t *obj,
                       kv_status_t *st) {
  if (obj->sib_count <= limit) return KV_OK;
  bool suspect[KV_NODES_MAX];
  kv_conflict_ctx_t ctx;
  node_conflict_ctx(node, ks->name, suspect, &ctx);
  const kv_conflict_handler_t *h = kv_conflict_find(ks->fallback_handler);
  kv_conflict_outcome_t o;
  if (h) kv_conflict_resolve(h, &ctx, obj, &o);
  if (!h || !o.changed || !o.single) {
    if (h) kv_conflict_outcome_free(&o);
    h = kv_conflict_find("lww");
    kv_conflict_resolve(h, &ctx, obj, &o);
  }
  KV_ASSERT(o.changed && o.single); /* lww keeps one of two or more */
  kv_metrics_conflict(node->metrics, h->name, 1);
  kv_journal_record(&node->journal, now_ms, ks->name, key, key_bytes, h->name, "sibling cap",
                    obj, &o);
  kv_err err = node_put_resolution(node, obj, &o, now_ms, st);
  kv_conflict_outcome_free(&o);
  return err;
}

/* Drops tombstone siblings, keeping the order (and so the canonical form) of the rest. */
static void node_keep_live(kv_dvv_t *obj) {
  uint32_t kept = 0;
  for (uint32_t i = 0; i < obj->sib_count; i++) {
    if (obj->sib[i].tombstone) {
      free(obj->sib[i].value);
      continue;
    }
    obj->sib[kept++] = obj->sib[i];
  }
  obj->sib_count = kept;
}

static void node_result_init(kv_node_result_t *res) {
  memset(res, 0, sizeof *res);
  kv_dvv_init(&res->object);
}

/* Turns the object in res into the answer: live siblings and the object's whole context. */
static kv_err node_finish_answer(kv_node_result_t *res, kv_status_t *st) {
  node_keep_live(&res->object);
  res->found = res->object.sib_count > 0;
  if (kv_cc_encode(&res->object.cc, &res->context, &res->context_bytes) != KV_OK)
    return kv_status_set(st, KV_ENOMEM, "cannot encode the context");
  return KV_OK;
}

kv_err kv_node_answer(kv_dvv_t *obj, kv_node_result_t *res, kv_status_t *st) {
  node_result_init(res);
  res->object = *obj;
  kv_dvv_init(obj);
  return node_finish_answer(res, st);
}

kv_err kv_node_answer_resolved(kv_node_t *node, const char *keyspace, const uint8_t *key,
                               size_t key_bytes, const kv_conflict_handler_t *h,
                               uint64_t now_ms, kv_dvv_t *obj, kv_node_result_t *res,
                               kv_status_t *st) {
  kv_err err = node_resolve_answer(node, keyspace, key, key_bytes, h, now_ms, obj, st);
  if (err != KV_OK) {
    node_result_init(res);
    return err;
  }
  return kv_node_answer(obj, res, st);
}

/* Encodes obj and writes it as the key's record, to the OS but not fsynced (see
 * kv_node_sync), with the key's anti-entropy leaf when anti-entropy is on (old_leaf: the one
 * of the record it replaces, node_load's). The encoding is handed back in *rec (malloc'd)
 * when rec is not NULL. */
static kv_err node_store(kv_node_t *node, uint32_t partition, uint64_t hash, uint64_t old_leaf,
                         const char *keyspace, const uint8_t *key, size_t key_bytes,
                         const kv_dvv_t *obj, uint8_t **rec, size_t *rec_bytes,
                         kv_status_t *st) {
  uint8_t *buf;
  size_t n;
  if (kv_dvv_encode(obj, &buf, &n) != KV_OK)
    return kv_status_set(st, KV_ENOMEM, "cannot encode the record");
  const kv_storage_t *sto = &node->storage;
  kv_err err =
      node->cfg->anti_entropy_interval_ms > 0
          ? kv_storage_put_tracked(sto, partition, keyspace, key, key_bytes, buf, n,
                                  kv_hash_segment(hash), old_leaf, kv_hash_leaf(hash, buf, n),
                                  false, st)
          : kv_storage_put(sto, partition, keyspace, key, key_bytes, buf, n, false, st);
  if (err == KV_OK && rec) {
    *rec = buf;
    *rec_bytes = n;
  } else {
    free(buf);
  }
  return err;
}

/* The siblings of obj a put with context ctx keeps. */
static uint32_t node_kept_count(const kv_dvv_t *obj, const kv_cc_t *ctx) {
  uint32_t kept = 0;
  for (uint32_t i = 0; i < obj->sib_count; i++) kept += !kv_cc_covers(ctx, &obj->sib[i].dot);
  return kept;
}

/* Applies one put of value (or a tombstone) with the request's context, atomically. */
static kv_err node_write(kv_node_t *node, const kv_node_req_t *req, const kv_node_plan_t *plan,
                         bool tombstone, uint64_t now_ms, kv_node_result_t *res,
                         kv_status_t *st) {
  node_result_init(res);
  kv_dvv_t *obj = &res->object;
  uint64_t old_leaf;
  kv_err err = node_load(node, plan->partition, plan->hash, req->keyspace, req->key,
                         req->key_bytes, obj, &old_leaf, st);
  if (err == KV_OK) node_hlc_observe(node, obj, now_ms);
  /* A put needs room for its own sibling first; the cap below brings it back to the
   * keyspace's bound. */
  if (err == KV_OK && node_kept_count(obj, &plan->ctx) + 1 > KV_SIBLINGS_MAX)
    err = node_cap(node, plan->ks, req->key, req->key_bytes, 0, now_ms, obj, st);
  if (err == KV_OK) {
    /* The timestamp is the dot's counter floor too (dvv.h): a dot minted after a reap. */
    uint64_t ts = node_hlc_now(node, now_ms);
    err = kv_dvv_put(obj, &node->self, ts, &plan->ctx, tombstone ? NULL : req->value,
                     tombstone ? 0 : (uint32_t)req->value_bytes, tombstone, ts,
                     KV_SIBLINGS_MAX, st);
  }
  if (err == KV_OK)
    err = node_cap(node, plan->ks, req->key, req->key_bytes, plan->ks->siblings_max, now_ms,
                   obj, st);
  if (err == KV_OK)
    err = node_store(node, plan->partition, plan->hash, old_leaf, req->keyspace, req->key,
                     req->key_bytes, obj, &res->record, &res->record_bytes, st);
  if (err == KV_OK)
    err = node_resolve_answer(node, req->keyspace, req->key, req->key_bytes, plan->handler,
                              now_ms, obj, st);
  return err == KV_OK ? node_finish_answer(res, st) : err;
}

kv_err kv_node_put(kv_node_t *node, const kv_node_req_t *req, const kv_node_plan_t *plan,
                   uint64_t now_ms, kv_node_result_t *res, kv_status_t *st) {
  return node_write(node, req, plan, false, now_ms, res, st);
}

kv_err kv_node_delete(kv_node_t *node, const kv_node_req_t *req, const kv_node_plan_t *plan,
                      uint64_t now_ms, kv_node_result_t *res, kv_status_t *st) {
  KV_ASSERT(req->value_bytes == 0);
  return node_write(node, req, plan, true, now_ms, res, st);
}

kv_err kv_node_get(kv_node_t *node, const kv_node_req_t *req, const kv_node_plan_t *plan,
                   uint64_t now_ms, kv_node_result_t *res, kv_status_t *st) {
  node_result_init(res);
  kv_err err = node_load(node, plan->partition, plan->hash, req->keyspace, req->key,
                         req->key_bytes, &res->object, NULL, st);
  if (err == KV_OK)
    err = node_resolve_answer(node, req->keyspace, req->key, req->key_bytes, plan->handler,
                              now_ms, &res->object, st);
  return err == KV_OK ? node_finish_answer(res, st) : err;
}

/* obj := obj merge incoming, then the sibling cap (when the keyspace is known here). A merge
 * that would pass the hard limit resolves this replica's side first, once. */
static kv_err node_merge_capped(kv_node_t *node, const kv_keyspace_conf_t *ks,
                                const uint8_t *key, size_t key_bytes, kv_dvv_t *obj,
                                const kv_dvv_t *incoming, kv_status_t *st) {
  node_hlc_observe(node, incoming, 0);
  uint64_t now_ms = node_hlc_ms(node);
  kv_err err = kv_dvv_merge(obj, incoming, st);
  if (err == KV_EBUSY && ks && obj->sib_count > 1 &&
      node_cap(node, ks, key, key_bytes, 1, now_ms, obj, st) == KV_OK)
    err = kv_dvv_merge(obj, incoming, st);
  if (err == KV_OK && ks) err = node_cap(node, ks, key, key_bytes, ks->siblings_max, now_ms, obj, st);
  return err;
}

kv_err kv_node_merge(kv_node_t *node, const char *keyspace, const uint8_t *key,
                     size_t key_bytes, const uint8_t *rec, size_t rec_bytes, kv_status_t *st) {
  /* Fault point: the disk refuses a replica write. */
  if (KV_BUGGIFY()) return kv_status_set(st, KV_EIO, "simulated disk error merging a record");
  kv_dvv_t incoming, obj;
  kv_err err = kv_dvv_decode(rec, rec_bytes, &incoming, st);
  if (err != KV_OK) return err;
  uint64_t hash = kv_hash_key(keyspace, key, key_bytes);
  uint32_t partition = kv_hash_partition(hash, node->cfg->partitions);
  const kv_keyspace_conf_t *ks = kv_config_keyspace(node->cfg, keyspace);
  uint64_t old_leaf;
  err = node_load(node, partition, hash, keyspace, key, key_bytes, &obj, &old_leaf, st);
  if (err == KV_OK) err = node_merge_capped(node, ks, key, key_bytes, &obj, &incoming, st);
  if (err == KV_OK)
    err = node_store(node, partition, hash, old_leaf, keyspace, key, key_bytes, &obj, NULL,
                     NULL, st);
  kv_dvv_deinit(&obj);
  kv_dvv_deinit(&incoming);
  return err;
}

kv_err kv_node_resolve_write(kv_node_t *node, const char *keyspace, const uint8_t *key,
                             size_t key_bytes, const kv_conflict_handler_t *h,
                             const kv_dvv_t *merged, uint64_t now_ms, uint8_t **rec,
                             size_t *rec_bytes, kv_status_t *st) {
  *rec = NULL;
  *rec_bytes = 0;
  const kv_keyspace_conf_t *ks = kv_config_keyspace(node->cfg, keyspace);
  KV_ASSERT(ks != NULL); /* the request was planned */
  uint64_t hash = kv_hash_key(keyspace, key, key_bytes);
  uint32_t partition = kv_hash_partition(hash, node->cfg->partitions);
  kv_dvv_t obj;
  uint64_t old_leaf;
  kv_err err = node_load(node, partition, hash, keyspace, key, key_bytes, &obj, &old_leaf, st);
  if (err == KV_OK) err = node_merge_capped(node, ks, key, key_bytes, &obj, merged, st);
  bool suspect[KV_NODES_MAX];
  kv_conflict_ctx_t ctx;
  node_conflict_ctx(node, keyspace, suspect, &ctx);
  kv_conflict_outcome_t o = {.changed = false};
  if (err == KV_OK) kv_conflict_resolve(h, &ctx, &obj, &o);
  if (err == KV_OK && o.changed && o.single) {
    kv_metrics_conflict(node->metrics, h->name, 1);
    kv_journal_record(&node->journal, now_ms, keyspace, key, key_bytes, h->name, "write-back",
                      &obj, &o);
    err = node_put_resolution(node, &obj, &o, now_ms, st);
    if (err == KV_OK)
      err = node_store(node, partition, hash, old_leaf, keyspace, key, key_bytes, &obj, rec,
                       rec_bytes, st);
  }
  kv_conflict_outcome_free(&o);
  kv_dvv_deinit(&obj);
  return err;
}

kv_err kv_node_read_record(kv_node_t *node, const char *keyspace, const uint8_t *key,
                           size_t key_bytes, uint8_t **rec, size_t *rec_bytes,
                           kv_status_t *st) {
  uint64_t hash = kv_hash_key(keyspace, key, key_bytes);
  uint32_t partition = kv_hash_partition(hash, node->cfg->partitions);
  bool found = false;
  *rec = NULL;
  *rec_bytes = 0;
  /* Fault point: the disk fails a read; the coordinator asks another replica. */
  if (KV_BUGGIFY()) return kv_status_set(st, KV_EIO, "simulated disk error reading a record");
  return kv_storage_get(&node->storage, partition, keyspace, key, key_bytes, rec, rec_bytes,
                        &found, st);
}

kv_err kv_node_reap(kv_node_t *node, const char *keyspace, const uint8_t *key, size_t key_bytes,
                    uint64_t leaf, kv_status_t *st) {
  uint64_t hash = kv_hash_key(keyspace, key, key_bytes);
  uint32_t partition = kv_hash_partition(hash, node->cfg->partitions);
  uint8_t *rec = NULL;
  size_t rec_bytes = 0;
  bool found = false;
  const kv_storage_t *sto = &node->storage;
  kv_err err = kv_storage_get(sto, partition, keyspace, key, key_bytes, &rec, &rec_bytes,
                             &found, st);
  if (err == KV_OK && found && kv_hash_leaf(hash, rec, rec_bytes) != leaf) {
    char shown[KV_FMT_KEY_BYTES];
    kv_fmt_bytes(shown, sizeof shown, key, key_bytes);
    err = kv_status_set(st, KV_EPRECONDITION,
                        "key '%s' in keyspace '%s' was written since the reaper read it; its "
                        "record stays", shown, keyspace);
  } else if (err == KV_OK && found) {
    err = node->cfg->anti_entropy_interval_ms > 0
              ? kv_storage_remove_tracked(sto, partition, keyspace, key, key_bytes,
                                         kv_hash_segment(hash), leaf, false, st)
              : kv_storage_remove(sto, partition, keyspace, key, key_bytes, false, st);
  }
  free(rec);
  return err;
}

kv_err kv_node_sync(kv_node_t *node, kv_status_t *st) {
  return kv_storage_sync(&node->storage, st);
}

void kv_node_result_free(kv_node_result_t *res) {
  kv_dvv_deinit(&res->object);
  free(res->context);
  free(res->record);
  res->context = NULL;
  res->record = NULL;
}
