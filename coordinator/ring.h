/* ring.h: partitions to nodes, and preference lists (DESIGN section 5). Sans-IO.
 *
 * Q partitions (a power of two) are claimed deterministically from the config alone, so every
 * node computes the same ring: the nodes are put in a claim order that interleaves racks and
 * regions, and partition p belongs to claim[p mod S]. Walking the ring from any partition
 * therefore meets every node once in S steps, with neighbours on different racks wherever
 * the cluster has them, and each node owns Q/S partitions (+-1).
 *
 * The preference list of a key in a keyspace: for each region r of the keyspace's
 * replication, walk the ring from the key's partition and take the first n_r distinct nodes
 * of region r, preferring nodes whose rack is not yet used (a second pass fills up with
 * repeated racks). Those are the primaries, grouped by the keyspace's region order. Walking
 * on, every other node follows as a fallback (for sloppy quorum), in walk order. */
#ifndef KV_RING_H
#define KV_RING_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "kv_err.h"
#include "kv_limits.h"

#define KV_RING_NO_REGION 0xFFu

typedef struct {
  uint32_t partitions;
  uint32_t node_count;
  uint8_t claim[KV_NODES_MAX];   /* claim order: node indexes into cfg->nodes */
  uint8_t node_rack[KV_NODES_MAX]; /* rack number per node (equal racks, equal numbers) */
  const kv_config_t *cfg;        /* borrowed; must outlive the ring */
} kv_ring_t;

typedef struct {
  uint32_t count;                /* entries used: every node of the cluster */
  uint32_t primary_count;        /* the first primary_count entries are primaries: N */
  uint8_t node[KV_NODES_MAX];    /* node indexes: primaries, then fallbacks */
  /* For each entry, its node's region as an index into the keyspace's replication list,
   * or KV_RING_NO_REGION when the keyspace keeps no replicas in that node's region. */
  uint8_t region[KV_NODES_MAX];
} kv_preflist_t;

/* Builds the ring of a loaded config (cfg is borrowed for the ring's life). Fails with
 * KV_ECONFIG when a keyspace asks for more replicas in a region than it has nodes (the
 * loader already refuses that; this is the ring's own check). */
kv_err kv_ring_init(kv_ring_t *ring, const kv_config_t *cfg, kv_status_t *st);
/* The node index that claims partition p (the first node of every walk from p). */
uint32_t kv_ring_owner(const kv_ring_t *ring, uint32_t partition);
/* The preference list of partition p for keyspace ks. */
void kv_ring_preflist(const kv_ring_t *ring, const kv_keyspace_conf_t *ks, uint32_t partition,
                      kv_preflist_t *out);
/* True when node is one of the primaries of pl. */
bool kv_preflist_is_primary(const kv_preflist_t *pl, uint32_t node);
/* The fallback to stand in for primary i of pl (sloppy quorum, DESIGN section 8): the first
 * entry past the primaries, in walk order, that is in primary i's region and has usable[k]
 * set (usable is indexed like pl->node: the caller clears dead nodes and fallbacks already
 * taken). Its index in pl, or -1 when there is none. Keeping a fallback in its primary's
 * region keeps LOCAL_* and EACH_QUORUM counting the same regions as without it. */
int kv_preflist_fallback(const kv_preflist_t *pl, uint32_t i, const bool *usable);
/* Sloppy quorum's stand-ins: which fallback takes the place of each primary believed dead.
 * alive is indexed like pl->node (alive[k]: node pl->node[k] is believed up). Primaries are
 * taken in order; each gets kv_preflist_fallback over the live fallbacks not yet taken.
 * stand_in (primary_count entries, caller-owned) gets, for primary i, its stand-in's index
 * in pl, or -1 when the primary is alive or no live fallback of its region is left. Returns
 * how many primaries have one. The coordinator plans requests with this (coordinator/coord.c),
 * and Admin.Ring reports it, so both name the same nodes. */
uint32_t kv_preflist_stand_ins(const kv_preflist_t *pl, const bool *alive, int *stand_in);

#endif
