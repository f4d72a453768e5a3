/* ring.c: the deterministic claim and preference lists (DESIGN section 5). Sans-IO.
 *
 * Claim order. It depends only on node ids, regions and racks, never on the order of nodes
 * in the file, so a reordered file gives the same ring. Nodes are sorted by (region, rack,
 * id); a rack is a (region, rack name) pair, so "r1" in two regions is two racks.
 *   1. Within a region, nodes are dealt from the rack with the most nodes left that is not
 *      the rack dealt just before (ties: the rack dealt first, then the one that sorts first).
 *      Equal racks come out round-robin (each run of R nodes covers all R racks); unequal
 *      ones still avoid rack neighbours, around the cycle too, wherever the largest rack
 *      holds at most half the region (checked exhaustively for regions of up to 11 nodes).
 *   2. Regions are merged by smooth weighted round-robin (weight = nodes in the region), so
 *      each region's nodes are spread evenly around the ring rather than bunched at its end.
 *      Even spacing is what keeps a region's primaries and coordinators balanced.
 *
 * Invariants: claim is a permutation of the node indexes; node_rack numbers racks 0..racks-1
 * in sorted order; partition p is owned by claim[p mod S]. A preference list holds every node
 * exactly once, its first primary_count entries are the keyspace's N primaries, grouped by the
 * keyspace's region order, each region's in walk order. */
#include "ring.h"

#include <string.h>

#include "log.h"

/* ---------------------------------------------------------------- claim order */

static int node_cmp(const kv_config_t *cfg, uint32_t a, uint32_t b) {
  const kv_node_conf_t *x = &cfg->nodes[a], *y = &cfg->nodes[b];
  int c = strcmp(x->region, y->region);
  if (c == 0) c = strcmp(x->rack, y->rack);
  if (c == 0) c = strcmp(x->id, y->id);
  return c;
}

static bool same_rack(const kv_config_t *cfg, uint32_t a, uint32_t b) {
  return strcmp(cfg->nodes[a].region, cfg->nodes[b].region) == 0 &&
         strcmp(cfg->nodes[a].rack, cfg->nodes[b].rack) == 0;
}

/* Node indexes sorted by (region, rack, id). Insertion sort: at most KV_NODES_MAX nodes. */
static void sort_nodes(const kv_config_t *cfg, uint8_t *order) {
  for (uint32_t i = 0; i < cfg->node_count; i++) {
    uint32_t j = i;
    for (; j > 0 && node_cmp(cfg, order[j - 1], i) > 0; j--) order[j] = order[j - 1];
    order[j] = (uint8_t)i;
  }
}

static void number_racks(kv_ring_t *ring, const uint8_t *order) {
  uint8_t rack = 0;
  for (uint32_t i = 0; i < ring->node_count; i++) {
    if (i > 0 && !same_rack(ring->cfg, order[i - 1], order[i])) rack++;
    ring->node_rack[order[i]] = rack;
  }
}

/* The rack (a run of order[]) to deal from next: most nodes left, not prev unless it is the
 * only one left. Ties go to the first rack dealt, so that it is used up early and does not
 * end the cycle next to itself, then to the rack that sorts first. */
static uint32_t pick_rack(const uint32_t *left, uint32_t racks, uint32_t prev, uint32_t first) {
  uint32_t best = racks;
  for (uint32_t k = 0; k < racks; k++) {
    if (left[k] == 0 || k == prev) continue;
    if (best == racks || left[k] > left[best] ||
        (left[k] == left[best] && k == first))
      best = k;
  }
  return best == racks ? prev : best;
}

/* Deals the sorted nodes order[from, to) (one region) into out[from, to), rack-interleaved.
 * Rack k is the run order[start[k], start[k] + left[k]); start is its next node to deal. */
static void deal_region(const kv_ring_t *ring, const uint8_t *order, uint32_t from, uint32_t to,
                        uint8_t *out) {
  uint32_t start[KV_NODES_MAX], left[KV_NODES_MAX], racks = 0;
  for (uint32_t i = from; i < to; i++) {
    if (i == from || ring->node_rack[order[i]] != ring->node_rack[order[i - 1]]) {
      start[racks] = i;
      left[racks++] = 0;
    }
    left[racks - 1]++;
  }
  uint32_t prev = racks, first = racks;
  for (uint32_t i = from; i < to; i++) {
    uint32_t k = pick_rack(left, racks, prev, first);
    if (i == from) first = k;
    KV_ASSERT(k < racks && left[k] > 0);
    out[i] = order[start[k]++];
    left[k]--;
    prev = k;
  }
}

/* Merges the regions' dealt runs into the claim by smooth weighted round-robin: every step
 * each region gains its weight, the richest region gives the next node and pays the total. */
static void merge_regions(kv_ring_t *ring, const uint8_t *dealt, const uint32_t *start,
                          const uint32_t *size, uint32_t regions) {
  int32_t credit[KV_REGIONS_MAX] = {0};
  uint32_t taken[KV_REGIONS_MAX] = {0};
  for (uint32_t i = 0; i < ring->node_count; i++) {
    uint32_t best = 0;
    for (uint32_t r = 0; r < regions; r++) {
      credit[r] += (int32_t)size[r];
      if (credit[r] > credit[best]) best = r;
    }
    credit[best] -= (int32_t)ring->node_count;
    KV_ASSERT(taken[best] < size[best]);
    ring->claim[i] = dealt[start[best] + taken[best]++];
  }
}

static void build_claim(kv_ring_t *ring) {
  uint8_t order[KV_NODES_MAX], dealt[KV_NODES_MAX];
  uint32_t start[KV_REGIONS_MAX], size[KV_REGIONS_MAX], regions = 0;
  sort_nodes(ring->cfg, order);
  number_racks(ring, order);
  for (uint32_t i = 0; i < ring->node_count; i++) {
    const char *region = ring->cfg->nodes[order[i]].region;
    if (i == 0 || strcmp(region, ring->cfg->nodes[order[i - 1]].region) != 0) {
      KV_ASSERT(regions < KV_REGIONS_MAX);
      start[regions] = i;
      size[regions++] = 0;
    }
    size[regions - 1]++;
  }
  for (uint32_t r = 0; r < regions; r++)
    deal_region(ring, order, start[r], start[r] + size[r], dealt);
  merge_regions(ring, dealt, start, size, regions);
}

/* ---------------------------------------------------------------- init and owner */

static uint32_t region_nodes(const kv_config_t *cfg, const char *region) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < cfg->node_count; i++) n += strcmp(cfg->nodes[i].region, region) == 0;
  return n;
}

/* The loader refuses these too; the ring checks again because preference lists rely on it. */
static kv_err check_keyspaces(const kv_config_t *cfg, kv_status_t *st) {
  for (uint32_t k = 0; k < cfg->keyspace_count; k++) {
    const kv_keyspace_conf_t *ks = &cfg->keyspaces[k];
    for (uint32_t r = 0; r < ks->replication_count; r++) {
      const kv_replication_conf_t *rep = &ks->replication[r];
      uint32_t nodes = region_nodes(cfg, rep->region);
      if (rep->replicas > nodes)
        return kv_status_set(st, KV_ECONFIG,
                             "keyspace '%s': replication for region '%s' is %u, but the region "
                             "has %u nodes",
                             ks->name, rep->region, rep->replicas, nodes);
    }
  }
  return KV_OK;
}

kv_err kv_ring_init(kv_ring_t *ring, const kv_config_t *cfg, kv_status_t *st) {
  KV_ASSERT(cfg->node_count >= 1 && cfg->node_count <= KV_NODES_MAX);
  KV_ASSERT(cfg->partitions >= 1 && cfg->partitions <= KV_PARTITIONS_MAX);
  KV_ASSERT((cfg->partitions & (cfg->partitions - 1)) == 0);
  memset(ring, 0, sizeof *ring);
  kv_err err = check_keyspaces(cfg, st);
  if (err) return err;
  ring->partitions = cfg->partitions;
  ring->node_count = cfg->node_count;
  ring->cfg = cfg;
  build_claim(ring);
  return KV_OK;
}

uint32_t kv_ring_owner(const kv_ring_t *ring, uint32_t partition) {
  KV_ASSERT(partition < ring->partitions);
  return ring->claim[partition % ring->node_count];
}

/* ---------------------------------------------------------------- preference lists */

/* Each node's region as an index into ks->replication, or KV_RING_NO_REGION. */
static void keyspace_regions(const kv_ring_t *ring, const kv_keyspace_conf_t *ks,
                             uint8_t *region_of) {
  for (uint32_t i = 0; i < ring->node_count; i++) {
    region_of[i] = KV_RING_NO_REGION;
    for (uint32_t r = 0; r < ks->replication_count; r++)
      if (strcmp(ring->cfg->nodes[i].region, ks->replication[r].region) == 0) {
        region_of[i] = (uint8_t)r;
        break;
      }
  }
}

/* Marks the n primaries of region r along walk: first one node per unused rack, then (second
 * pass) any node of the region still free. */
static void choose_primaries(const kv_ring_t *ring, const uint8_t *walk, const uint8_t *region_of,
                             uint8_t r, uint32_t n, bool *chosen) {
  bool rack_used[KV_NODES_MAX] = {false};
  uint32_t picked = 0;
  for (int pass = 0; pass < 2; pass++)
    for (uint32_t k = 0; k < ring->node_count && picked < n; k++) {
      uint8_t node = walk[k];
      if (region_of[node] != r || chosen[node]) continue;
      if (pass == 0 && rack_used[ring->node_rack[node]]) continue;
      chosen[node] = true;
      rack_used[ring->node_rack[node]] = true;
      picked++;
    }
  /* A keyspace from the ring's own config was checked by kv_ring_init. */
  KV_ASSERT(picked == n);
}

static void preflist_add(kv_preflist_t *out, uint8_t node, const uint8_t *region_of) {
  KV_ASSERT(out->count < KV_NODES_MAX);
  out->node[out->count] = node;
  out->region[out->count++] = region_of[node];
}

void kv_ring_preflist(const kv_ring_t *ring, const kv_keyspace_conf_t *ks, uint32_t partition,
                      kv_preflist_t *out) {
  KV_ASSERT(partition < ring->partitions);
  KV_ASSERT(ks->replication_count >= 1 && ks->replication_count <= KV_REGIONS_MAX);
  uint8_t walk[KV_NODES_MAX], region_of[KV_NODES_MAX];
  bool chosen[KV_NODES_MAX] = {false};
  for (uint32_t k = 0; k < ring->node_count; k++)
    walk[k] = ring->claim[(partition + k) % ring->node_count];
  keyspace_regions(ring, ks, region_of);
  memset(out, 0, sizeof *out);
  for (uint8_t r = 0; r < ks->replication_count; r++) {
    choose_primaries(ring, walk, region_of, r, ks->replication[r].replicas, chosen);
    for (uint32_t k = 0; k < ring->node_count; k++)
      if (chosen[walk[k]] && region_of[walk[k]] == r) preflist_add(out, walk[k], region_of);
  }
  out->primary_count = out->count;
  KV_ASSERT(out->primary_count == ks->n);
  for (uint32_t k = 0; k < ring->node_count; k++)
    if (!chosen[walk[k]]) preflist_add(out, walk[k], region_of);
  KV_ASSERT(out->count == ring->node_count);
}

bool kv_preflist_is_primary(const kv_preflist_t *pl, uint32_t node) {
  for (uint32_t i = 0; i < pl->primary_count; i++)
    if (pl->node[i] == node) return true;
  return false;
}

int kv_preflist_fallback(const kv_preflist_t *pl, uint32_t i, const bool *usable) {
  KV_ASSERT(i < pl->primary_count && pl->region[i] != KV_RING_NO_REGION);
  for (uint32_t k = pl->primary_count; k < pl->count; k++)
    if (usable[k] && pl->region[k] == pl->region[i]) return (int)k;
  return -1;
}

uint32_t kv_preflist_stand_ins(const kv_preflist_t *pl, const bool *alive, int *stand_in) {
  bool usable[KV_NODES_MAX] = {false};
  for (uint32_t k = pl->primary_count; k < pl->count; k++) usable[k] = alive[k];
  uint32_t n = 0;
  for (uint32_t i = 0; i < pl->primary_count; i++) {
    stand_in[i] = alive[i] ? -1 : kv_preflist_fallback(pl, i, usable);
    if (stand_in[i] < 0) continue;
    usable[stand_in[i]] = false;
    n++;
  }
  return n;
}
