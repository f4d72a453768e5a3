/* applied.c: the table of applied times (see applied.h).
 *
 * Invariants: an entry is in use iff its hashes are not both 0 (a key hashing to 0, 0 is
 * stored as 0, 1); every entry in use is on exactly the chain of bucket h1 % buckets, and
 * chains are newest first (an entry is pushed at the head), so a find meets a key's newest
 * write first. */
#include "applied.h"

#include <string.h>

#include <xxhash.h>

#include "hash.h"
#include "log.h"

#define NONE UINT32_MAX

static void key_hashes(const char *keyspace, const uint8_t *key, size_t key_bytes, uint64_t *h1,
                       uint64_t *h2) {
  *h1 = kv_hash_key(keyspace, key, key_bytes);
  /* A second, independent hash: other seeds, keyspace after the key. */
  uint64_t seed = XXH64(key_bytes ? key : (const uint8_t *)"", key_bytes, 0x9e3779b97f4a7c15ull);
  *h2 = XXH64(keyspace, strlen(keyspace), seed);
  if (*h1 == 0 && *h2 == 0) *h2 = 1;
}

void kv_applied_init(kv_applied_t *t) {
  memset(t->entries, 0, sizeof t->entries);
  for (uint32_t b = 0; b < KV_APPLIED_BUCKETS; b++) t->buckets[b] = NONE;
  t->next = 0;
}

/* Takes entry i off its chain. */
static void unlink_entry(kv_applied_t *t, uint32_t i) {
  kv_applied_entry_t *e = &t->entries[i];
  uint32_t *link = &t->buckets[e->h1 % KV_APPLIED_BUCKETS];
  while (*link != i) {
    KV_ASSERT(*link != NONE);
    link = &t->entries[*link].next;
  }
  *link = e->next;
  e->h1 = e->h2 = 0;
}

void kv_applied_add(kv_applied_t *t, const char *keyspace, const uint8_t *key, size_t key_bytes,
                    const kv_applied_write_t *w) {
  KV_ASSERT(w->count <= KV_REPLICAS_MAX);
  uint32_t i = t->next;
  t->next = (t->next + 1) % KV_APPLIED_MAX;
  kv_applied_entry_t *e = &t->entries[i];
  if (e->h1 || e->h2) unlink_entry(t, i);
  key_hashes(keyspace, key, key_bytes, &e->h1, &e->h2);
  e->write = *w;
  uint32_t *head = &t->buckets[e->h1 % KV_APPLIED_BUCKETS];
  e->next = *head;
  *head = i;
}

bool kv_applied_find(const kv_applied_t *t, const char *keyspace, const uint8_t *key,
                     size_t key_bytes, kv_applied_write_t *out) {
  uint64_t h1, h2;
  key_hashes(keyspace, key, key_bytes, &h1, &h2);
  for (uint32_t i = t->buckets[h1 % KV_APPLIED_BUCKETS]; i != NONE; i = t->entries[i].next) {
    const kv_applied_entry_t *e = &t->entries[i];
    if (e->h1 == h1 && e->h2 == h2) {
      *out = e->write;
      return true;
    }
  }
  return false;
}
