/* consistency.h: what a consistency level asks for, as counts (DESIGN section 7).
 *
 * A request's level (or explicit r/w) and pr/pw are turned into a kv_need_t once, when the
 * request arrives, against the keyspace's replica shape and the coordinator's region. The
 * quorum state machines then only count acks against these numbers.
 *
 *   ONE/TWO/THREE  1/2/3 replies from any replica       QUORUM     floor(N/2)+1 of all
 *   ALL            N                                    ANY        1, and a hint counts (writes)
 *   LOCAL_ONE      1 from the coordinator's region      LOCAL_QUORUM floor(n_local/2)+1 there
 *   EACH_QUORUM    floor(n_r/2)+1 in every region r
 *   r / w          explicit count, overrides the level  pr / pw    replies from primaries
 *
 * Requests no cluster state could satisfy (r > N, THREE with N=2, ANY on a read) are
 * KV_EINVAL; a LOCAL level at a coordinator whose region holds no replica is
 * KV_EUNAVAILABLE, as in Cassandra. */
#ifndef KV_CONSISTENCY_H
#define KV_CONSISTENCY_H

#include <stdbool.h>
#include <stdint.h>

#include "kv_err.h"
#include "level.h"
#include "kv_limits.h"

/* Replicas of one keyspace, per region, and which region the coordinator is in. */
typedef struct {
  const char *keyspace;                  /* for messages; borrowed */
  uint32_t region_count;
  uint32_t replicas[KV_REGIONS_MAX];     /* n_r per region */
  const char *region_names[KV_REGIONS_MAX]; /* borrowed */
  int local_region;                      /* index into replicas, or -1 if none there */
} kv_replica_shape_t;

typedef struct {
  kv_level_t level;   /* never KV_LEVEL_DEFAULT after resolution */
  uint32_t count;     /* explicit r (reads) or w (writes); 0 = use level */
  uint32_t primaries; /* pr / pw; 0 = none */
} kv_consistency_t;

typedef struct {
  uint32_t total;                    /* replies needed from any replicas */
  uint32_t local;                    /* of which from the coordinator's region */
  uint32_t per_region[KV_REGIONS_MAX]; /* EACH_QUORUM: needed in each region */
  uint32_t primaries;                /* of which from primaries (pr / pw) */
  bool hint_counts;                  /* ANY: a stored hint is an ack */
} kv_need_t;

/* Total replicas N of a shape. */
uint32_t kv_shape_replicas(const kv_replica_shape_t *shape);

/* Resolves c for a read (is_write false) or write against shape. c->level must not be
 * KV_LEVEL_DEFAULT (the caller substitutes the keyspace default first). */
kv_err kv_consistency_resolve(const kv_consistency_t *c, bool is_write,
                              const kv_replica_shape_t *shape, kv_need_t *out,
                              kv_status_t *st);

#endif
