/* node.c: validation and local execution of client requests on one node.
 *
 * A write is: validate -> lock the key's stripe -> read the record -> decode -> DVV put
 * (mint a dot as actor (node id, incarnation)) -> encode -> write -> unlock. Durable
 * requests are fsynced afterwards, in groups, by kv_node_sync. The stripe lock is what makes the read-modify-write atomic per key; stripes are
 * chosen by the key hash, so unrelated keys rarely wait on each other.
 *
 * Invariant: every record this node writes passed kv_dvv_put or decode, so it satisfies
 * kv_dvv_check; a record that fails to decode is reported as DATA_LOSS naming the key. */
#include "node.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buggify.h"
#include "consistency.h"
#include "fmt.h"
#include "hash.h"
#include "hlc.h"
#include "log.h"

#define NODE_LOCK_STRIPES 1024u

struct kv_node {
  const kv_config_t *cfg;
  kv_store_t *store;
  kv_actor_t self;
  const kv_node_conf_t *self_conf;
  uint32_t self_index;
  pthread_mutex_t hlc_lock;
  kv_hlc_t hlc;
  pthread_mutex_t stripes[NODE_LOCK_STRIPES];
};

kv_err kv_node_create(const kv_config_t *cfg, const char *self_id, kv_store_t *store,
                      kv_node_t **out, kv_status_t *st) {
  const kv_node_conf_t *self = kv_config_node(cfg, self_id);
  if (!self) return kv_status_set(st, KV_ECONFIG, "node '%s' is not in %s", self_id, cfg->path);
  kv_node_t *node = calloc(1, sizeof *node);
  if (!node) return kv_status_set(st, KV_ENOMEM, "out of memory creating the node");
  node->cfg = cfg;
  node->store = store;
  node->self_conf = self;
  node->self_index = (uint32_t)kv_config_node_index(cfg, self_id);
  snprintf(node->self.node, sizeof node->self.node, "%s", self_id);
  node->self.incarnation = kv_store_incarnation(store);
  kv_hlc_init(&node->hlc);
  pthread_mutex_init(&node->hlc_lock, NULL);
  for (uint32_t i = 0; i < NODE_LOCK_STRIPES; i++) pthread_mutex_init(&node->stripes[i], NULL);
  *out = node;
  return KV_OK;
}

void kv_node_destroy(kv_node_t *node) {
  if (!node) return;
  for (uint32_t i = 0; i < NODE_LOCK_STRIPES; i++) pthread_mutex_destroy(&node->stripes[i]);
  pthread_mutex_destroy(&node->hlc_lock);
  free(node);
}

uint32_t kv_node_self(const kv_node_t *node) { return node->self_index; }

kv_store_t *kv_node_store(kv_node_t *node) { return node->store; }

const kv_config_t *kv_node_config(const kv_node_t *node) { return node->cfg; }

uint64_t kv_node_incarnation(const kv_node_t *node) { return node->self.incarnation; }

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
  plan->hash = kv_hash_key(req->keyspace, req->key, req->key_bytes);
  plan->partition = kv_hash_partition(plan->hash, node->cfg->partitions);
  kv_cc_init(&plan->ctx);
  if (is_write) return kv_cc_decode(req->context, req->context_bytes, &plan->ctx, st);
  return KV_OK;
}

/* Reads and decodes the key's object into *obj (uninitialized on entry, initialized on
 * return whatever happens); a missing key is the empty object. */
static kv_err node_load(kv_node_t *node, uint32_t partition, const char *keyspace,
                        const uint8_t *key, size_t key_bytes, kv_dvv_t *obj, kv_status_t *st) {
  uint8_t *rec = NULL;
  size_t rec_bytes = 0;
  bool found = false;
  kv_dvv_init(obj);
  kv_err err = kv_store_get(node->store, partition, keyspace, key, key_bytes, &rec,
                            &rec_bytes, &found, st);
  if (err != KV_OK || !found) return err;
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
  pthread_mutex_lock(&node->hlc_lock);
  uint64_t ts = kv_hlc_now(&node->hlc, now_ms);
  pthread_mutex_unlock(&node->hlc_lock);
  return ts;
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

/* Encodes obj and writes it as the key's record, to the OS but not fsynced (see
 * kv_node_sync), with the key's anti-entropy leaf when anti-entropy is on. The encoding is
 * handed back in *rec (malloc'd) when rec is not NULL. */
static kv_err node_store(kv_node_t *node, uint32_t partition, uint64_t hash,
                         const char *keyspace, const uint8_t *key, size_t key_bytes,
                         const kv_dvv_t *obj, uint8_t **rec, size_t *rec_bytes,
                         kv_status_t *st) {
  uint8_t *buf;
  size_t n;
  if (kv_dvv_encode(obj, &buf, &n) != KV_OK)
    return kv_status_set(st, KV_ENOMEM, "cannot encode the record");
  kv_err err =
      node->cfg->anti_entropy_interval_ms > 0
          ? kv_store_put_tracked(node->store, partition, keyspace, key, key_bytes, buf, n,
                                 kv_hash_segment(hash), kv_hash_leaf(hash, buf, n), false, st)
          : kv_store_put(node->store, partition, keyspace, key, key_bytes, buf, n, false, st);
  if (err == KV_OK && rec) {
    *rec = buf;
    *rec_bytes = n;
  } else {
    free(buf);
  }
  return err;
}

/* Applies one put of value (or a tombstone) with the request's context, atomically. */
static kv_err node_write(kv_node_t *node, const kv_node_req_t *req, const kv_node_plan_t *plan,
                         bool tombstone, uint64_t now_ms, kv_node_result_t *res,
                         kv_status_t *st) {
  node_result_init(res);
  pthread_mutex_t *stripe = &node->stripes[plan->hash % NODE_LOCK_STRIPES];
  pthread_mutex_lock(stripe);
  kv_err err = node_load(node, plan->partition, req->keyspace, req->key, req->key_bytes,
                         &res->object, st);
  if (err == KV_OK)
    err = kv_dvv_put(&res->object, &node->self, &plan->ctx, tombstone ? NULL : req->value,
                     tombstone ? 0 : (uint32_t)req->value_bytes, tombstone,
                     node_hlc_now(node, now_ms), plan->ks->siblings_max, st);
  if (err == KV_OK)
    err = node_store(node, plan->partition, plan->hash, req->keyspace, req->key,
                     req->key_bytes, &res->object, &res->record, &res->record_bytes, st);
  pthread_mutex_unlock(stripe);
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
                   kv_node_result_t *res, kv_status_t *st) {
  node_result_init(res);
  kv_err err = node_load(node, plan->partition, req->keyspace, req->key, req->key_bytes,
                         &res->object, st);
  return err == KV_OK ? node_finish_answer(res, st) : err;
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
  pthread_mutex_t *stripe = &node->stripes[hash % NODE_LOCK_STRIPES];
  pthread_mutex_lock(stripe);
  err = node_load(node, partition, keyspace, key, key_bytes, &obj, st);
  if (err == KV_OK) err = kv_dvv_merge(&obj, &incoming, st);
  if (err == KV_OK)
    err = node_store(node, partition, hash, keyspace, key, key_bytes, &obj, NULL, NULL, st);
  pthread_mutex_unlock(stripe);
  kv_dvv_deinit(&obj);
  kv_dvv_deinit(&incoming);
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
  return kv_store_get(node->store, partition, keyspace, key, key_bytes, rec, rec_bytes, &found,
                      st);
}

kv_err kv_node_sync(kv_node_t *node, kv_status_t *st) { return kv_store_sync(node->store, st); }

void kv_node_result_free(kv_node_result_t *res) {
  kv_dvv_deinit(&res->object);
  free(res->context);
  free(res->record);
  res->context = NULL;
  res->record = NULL;
}
