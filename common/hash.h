/* hash.h: partition hashing (DESIGN section 5).
 *
 * A key's 64-bit hash is xxHash64 of the key seeded with the xxHash64 of the keyspace name,
 * so the same key in two keyspaces lands on unrelated partitions. With Q partitions (a power of
 * two) the partition is the top log2(Q) bits of the hash, so partitions are contiguous
 * ranges of the hash space. */
#ifndef KV_HASH_H
#define KV_HASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t kv_hash_key(const char *keyspace, const void *key, size_t key_bytes);
/* partitions must be a power of two, 1 .. KV_PARTITIONS_MAX. */
uint32_t kv_hash_partition(uint64_t hash, uint32_t partitions);
/* Anti-entropy trees (coordinator/aae.h). A key's segment in its partition's tree: the low bits
 * of its hash (the partition took the top ones). */
uint32_t kv_hash_segment(uint64_t hash);
/* A key's leaf: xxHash64 of its encoded record seeded with the key's hash, so equal records
 * of two keys differ and cannot cancel out in a segment's XOR. Never 0 (0 is "no record"). */
uint64_t kv_hash_leaf(uint64_t hash, const void *rec, size_t rec_bytes);
/* A tree's root: xxHash64 of its KV_AAE_SEGMENTS segment sums, little-endian. */
uint64_t kv_hash_root(const uint64_t *sums);
/* True when n is a power of two (and not 0). */
static inline int kv_is_pow2(uint64_t n) { return n && !(n & (n - 1)); }

#endif
