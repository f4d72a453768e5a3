/* hash.c: xxHash64-based key hashing and partition selection. */
#include "hash.h"

#include <string.h>
#include <xxhash.h>

#include "kv_limits.h"
#include "log.h"

uint64_t kv_hash_key(const char *keyspace, const void *key, size_t key_bytes) {
  /* The keyspace's hash seeds the key's, so equal keys in two keyspaces land apart. */
  uint64_t seed = XXH64(keyspace, strlen(keyspace), 0);
  return XXH64(key, key_bytes, seed);
}

uint32_t kv_hash_partition(uint64_t hash, uint32_t partitions) {
  KV_ASSERT(kv_is_pow2(partitions) && partitions <= KV_PARTITIONS_MAX);
  if (partitions == 1) return 0;
  int bits = __builtin_ctz(partitions);
  return (uint32_t)(hash >> (64 - bits));
}

uint32_t kv_hash_segment(uint64_t hash) {
  _Static_assert((KV_AAE_SEGMENTS & (KV_AAE_SEGMENTS - 1)) == 0, "segments: a power of two");
  return (uint32_t)(hash & (KV_AAE_SEGMENTS - 1));
}

uint64_t kv_hash_leaf(uint64_t hash, const void *rec, size_t rec_bytes) {
  uint64_t leaf = XXH64(rec_bytes ? rec : "", rec_bytes, hash);
  return leaf ? leaf : 1;
}

uint64_t kv_hash_root(const uint64_t *sums) {
  uint8_t bytes[KV_AAE_SEGMENTS * 8];
  for (uint32_t i = 0; i < KV_AAE_SEGMENTS; i++)
    for (int b = 0; b < 8; b++) bytes[i * 8 + b] = (uint8_t)(sums[i] >> (8 * b));
  return XXH64(bytes, sizeof bytes, 0);
}
