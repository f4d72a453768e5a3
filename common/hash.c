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
