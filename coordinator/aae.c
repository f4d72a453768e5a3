/* aae.c: answering anti-entropy requests from this node's trees (see aae.h). */
#include "aae.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "hash.h"
#include "kv_limits.h"
#include "log.h"
#include "node.h"


void kv_aae_answer_free(kv_aae_answer_t *a) {
  for (uint32_t i = 0; i < a->key_count; i++) free(a->keys[i].data);
  free(a->keys);
  free(a->hashes);
  memset(a, 0, sizeof *a);
}

kv_err kv_aae_root(kv_node_t *node, const char *keyspace, uint32_t partition, uint64_t *root,
                   uint64_t *sums, kv_status_t *st) {
  static __thread uint64_t own[KV_AAE_SEGMENTS];
  uint64_t *into = sums ? sums : own;
  const kv_storage_t *sto = kv_node_storage(node);
  kv_err err = kv_storage_aae_sums(sto, partition, keyspace, into, st);
  if (err == KV_OK) *root = kv_hash_root(into);
  return err;
}

typedef struct {
  kv_aae_answer_t *out;
  uint32_t cap;
} keys_t;

static bool keys_add(void *arg, const void *key, size_t key_bytes, uint64_t leaf) {
  keys_t *k = arg;
  kv_aae_answer_t *a = k->out;
  if (a->key_count == k->cap) {
    k->cap = k->cap ? k->cap * 2 : 16;
    a->keys = realloc(a->keys, k->cap * sizeof *a->keys);
    a->hashes = realloc(a->hashes, k->cap * sizeof *a->hashes);
    KV_ASSERT(a->keys && a->hashes);
  }
  uint8_t *copy = malloc(key_bytes ? key_bytes : 1);
  KV_ASSERT(copy);
  memcpy(copy, key, key_bytes);
  a->keys[a->key_count] = (kv_aae_key_t){copy, key_bytes};
  a->hashes[a->key_count] = leaf;
  a->key_count++;
  a->hash_count++;
  return true;
}

kv_err kv_aae_segment_keys(kv_node_t *node, const char *keyspace, uint32_t partition,
                           uint32_t segment, kv_aae_answer_t *out, kv_status_t *st) {
  /* Growth doubles from the current count, so appending to an answer keeps its capacity
   * at least its count. */
  keys_t k = {.out = out, .cap = out->key_count};
  const kv_storage_t *sto = kv_node_storage(node);
  return kv_storage_aae_leaves(sto, partition, keyspace, segment, keys_add, &k, st);
}

/* Checks what req names against this node's config. */
static kv_err serve_check(const kv_config_t *cfg, const kv_aae_req_t *req, kv_status_t *st) {
  if (!kv_config_keyspace(cfg, req->keyspace))
    return kv_status_set(st, KV_EINVAL, "anti-entropy request for keyspace '%.64s', which does "
                         "not exist here", req->keyspace);
  if (req->kind != KV_AAE_ASK_ROOTS && req->partition_count != 1)
    return kv_status_set(st, KV_EINVAL, "anti-entropy request names %u partitions; it must "
                         "name one", req->partition_count);
  for (uint32_t i = 0; i < req->partition_count; i++)
    if (req->partitions[i] >= cfg->partitions)
      return kv_status_set(st, KV_EINVAL, "anti-entropy request for partition %u; the cluster "
                           "has %u", req->partitions[i], cfg->partitions);
  if (req->kind != KV_AAE_ASK_KEYS) return KV_OK;
  if (req->segment_count > KV_AAE_KEYS_SEGMENTS_MAX)
    return kv_status_set(st, KV_EINVAL, "anti-entropy request lists %u segments; at most %u",
                         req->segment_count, KV_AAE_KEYS_SEGMENTS_MAX);
  for (uint32_t i = 0; i < req->segment_count; i++)
    if (req->segments[i] >= KV_AAE_SEGMENTS)
      return kv_status_set(st, KV_EINVAL, "anti-entropy request for segment %u; trees have %u",
                           req->segments[i], KV_AAE_SEGMENTS);
  return KV_OK;
}

static kv_err serve_roots(kv_node_t *node, const kv_aae_req_t *req, kv_aae_answer_t *out,
                          kv_status_t *st) {
  out->hashes = calloc(req->partition_count ? req->partition_count : 1, sizeof *out->hashes);
  KV_ASSERT(out->hashes);
  for (uint32_t i = 0; i < req->partition_count; i++) {
    kv_err err = kv_aae_root(node, req->keyspace, req->partitions[i], &out->hashes[i], NULL, st);
    if (err != KV_OK) return err;
    out->hash_count++;
  }
  return KV_OK;
}

kv_err kv_aae_serve(kv_node_t *node, const kv_aae_req_t *req, kv_aae_answer_t *out,
                    kv_status_t *st) {
  memset(out, 0, sizeof *out);
  kv_err err = serve_check(kv_node_config(node), req, st);
  if (err != KV_OK) return err;
  switch (req->kind) {
    case KV_AAE_ASK_ROOTS:
      err = serve_roots(node, req, out, st);
      break;
    case KV_AAE_ASK_SEGMENTS: {
      uint64_t root;
      out->hashes = malloc(KV_AAE_SEGMENTS * sizeof *out->hashes);
      KV_ASSERT(out->hashes);
      err = kv_aae_root(node, req->keyspace, req->partitions[0], &root, out->hashes, st);
      if (err == KV_OK) out->hash_count = KV_AAE_SEGMENTS;
      break;
    }
    case KV_AAE_ASK_KEYS:
      for (uint32_t i = 0; i < req->segment_count && err == KV_OK; i++)
        err = kv_aae_segment_keys(node, req->keyspace, req->partitions[0], req->segments[i], out,
                                  st);
      break;
    default:
      err = kv_status_set(st, KV_EINVAL, "anti-entropy request kind %d is unknown",
                          (int)req->kind);
  }
  if (err != KV_OK) kv_aae_answer_free(out);
  return err;
}
