/* applied.h: when each replica applied the writes this node coordinated, for the last
 * KV_APPLIED_MAX finished writes (Admin.Applied; kvbench lag checks its probes against it).
 *
 * The coordinator (coord.c) adds a write when it finishes (every target answered or the
 * deadline passed) and was acknowledged: the wall-clock ms at which W was met and, for each
 * primary that acknowledged, the wall-clock ms at which it applied the write (this node's
 * own: the request's wall clock, when it applied it before sending it on; another's: the
 * applied_ms of its ack, taken when it merged the write, before any fsync). Times are
 * visibility times, so they compare with what --local reads see; durable writes are fsynced
 * later still. Fallbacks' acks are left out: a hint is not the primary's copy.
 *
 * Bounds: a fixed ring of KV_APPLIED_MAX entries of fixed size (no key is stored: an entry is
 * keyed by two independent 64-bit hashes of keyspace and key, so a false match needs a
 * 128-bit collision), about 1.2 MiB in all, plus a chained index of 2 x KV_APPLIED_MAX
 * buckets. The oldest entry makes room for the newest; a key written again is found as its
 * newest write (newest wins), its older entries ageing out in turn.
 *
 * Sans-IO, part of the single-threaded core. */
#ifndef KV_APPLIED_H
#define KV_APPLIED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv_limits.h"

typedef struct {
  uint32_t node;              /* config index of the replica */
  uint64_t applied_ms;        /* its wall clock when it applied the write */
} kv_applied_replica_t;

typedef struct {
  uint64_t acked_ms;          /* the coordinator's wall clock when W was met */
  uint32_t count;             /* replicas known to have applied it, in preference order */
  kv_applied_replica_t replicas[KV_REPLICAS_MAX];
} kv_applied_write_t;

#define KV_APPLIED_BUCKETS (2u * KV_APPLIED_MAX)

typedef struct {
  uint64_t h1, h2;            /* the key's two hashes; both 0: a free entry */
  uint32_t next;              /* the next entry of its bucket, UINT32_MAX at the end */
  kv_applied_write_t write;
} kv_applied_entry_t;

/* Caller-owned (the coordinator embeds it); no heap. */
typedef struct {
  kv_applied_entry_t entries[KV_APPLIED_MAX];
  uint32_t buckets[KV_APPLIED_BUCKETS];  /* first entry of each chain, UINT32_MAX: none */
  uint32_t next;              /* the ring position the next write takes */
} kv_applied_t;

void kv_applied_init(kv_applied_t *t);
/* Remembers w (copied) as the newest write of (keyspace, key), dropping the oldest entry
 * when the table is full. */
void kv_applied_add(kv_applied_t *t, const char *keyspace, const uint8_t *key, size_t key_bytes,
                    const kv_applied_write_t *w);
/* The newest write of (keyspace, key) remembered, copied into *out; false when none is. */
bool kv_applied_find(const kv_applied_t *t, const char *keyspace, const uint8_t *key,
                     size_t key_bytes, kv_applied_write_t *out);

#endif
