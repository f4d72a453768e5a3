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
 * Claims after the first (kv_ring_plan, see ring.h): the shares are fixed first (Q/S each,
 * the Q mod S extra ones to the members that own most now, ties to the lower index), then the
 * partitions of leaving nodes and each member's partitions past its share (those next to a
 * partition of the same owner first, then from the top) are freed, and each freed partition,
 * in order, goes to the member furthest below its share among those owning no partition
 * within `window` of it (any member below its share when none is clear). Only freed
 * partitions move, and every freed partition fills a place below a share, so no claim with
 * these shares moves fewer.
 *
 * Invariants: the first claim is owner[p] = claim[p mod S]; node_rack numbers racks
 * 0..racks-1 in sorted order over the config's nodes; every owner is a member and every
 * member owns a partition. A preference list holds every member exactly once, its first
 * primary_count entries are the keyspace's N primaries, grouped by the keyspace's region
 * order, each region's in walk order. */
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
  for (uint32_t i = 0; i < ring->cfg->node_count; i++) {
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
                          const uint32_t *size, uint32_t regions, uint32_t count) {
  int32_t credit[KV_REGIONS_MAX] = {0};
  uint32_t taken[KV_REGIONS_MAX] = {0};
  for (uint32_t i = 0; i < count; i++) {
    uint32_t best = 0;
    for (uint32_t r = 0; r < regions; r++) {
      credit[r] += (int32_t)size[r];
      if (credit[r] > credit[best]) best = r;
    }
    credit[best] -= (int32_t)count;
    KV_ASSERT(taken[best] < size[best]);
    ring->claim[i] = dealt[start[best] + taken[best]++];
  }
}

/* The claim order of the members (sorted, rack-dealt per region, regions merged). */
static void build_claim(kv_ring_t *ring, uint64_t members) {
  uint8_t all[KV_NODES_MAX], order[KV_NODES_MAX], dealt[KV_NODES_MAX];
  uint32_t start[KV_REGIONS_MAX], size[KV_REGIONS_MAX], regions = 0, count = 0;
  sort_nodes(ring->cfg, all);
  number_racks(ring, all);
  for (uint32_t i = 0; i < ring->cfg->node_count; i++)
    if (members >> all[i] & 1) order[count++] = all[i];
  for (uint32_t i = 0; i < count; i++) {
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
  merge_regions(ring, dealt, start, size, regions, count);
}

/* ---------------------------------------------------------------- init and owner */

static uint32_t region_members(const kv_config_t *cfg, uint64_t members, const char *region) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < cfg->node_count; i++)
    n += (members >> i & 1) && strcmp(cfg->nodes[i].region, region) == 0;
  return n;
}

static uint64_t all_nodes(uint32_t count) { return count == 64 ? ~0ull : (1ull << count) - 1; }

/* The loader refuses these for the whole config; the ring checks each member set because
 * preference lists rely on it. */
static kv_err check_members(const kv_config_t *cfg, uint64_t members, kv_err code,
                            kv_status_t *st) {
  if (members == 0 || (members & ~all_nodes(cfg->node_count)) != 0)
    return kv_status_set(st, code, "a ring's members must be some of the config's %u nodes",
                         cfg->node_count);
  if ((uint32_t)__builtin_popcountll(members) > cfg->partitions)
    return kv_status_set(st, code, "%u members cannot share %u partitions",
                         (uint32_t)__builtin_popcountll(members), cfg->partitions);
  for (uint32_t k = 0; k < cfg->keyspace_count; k++) {
    const kv_keyspace_conf_t *ks = &cfg->keyspaces[k];
    for (uint32_t r = 0; r < ks->replication_count; r++) {
      const kv_replication_conf_t *rep = &ks->replication[r];
      uint32_t nodes = region_members(cfg, members, rep->region);
      if (rep->replicas > nodes)
        return kv_status_set(st, code,
                             "keyspace '%s': replication for region '%s' is %u, but the region "
                             "has %u nodes",
                             ks->name, rep->region, rep->replicas, nodes);
    }
  }
  return KV_OK;
}

static void claim_count(const kv_ring_t *ring, const kv_claim_t *c, uint32_t *owned) {
  memset(owned, 0, KV_NODES_MAX * sizeof *owned);
  for (uint32_t p = 0; p < ring->partitions; p++) owned[c->owner[p]]++;
}

kv_err kv_ring_init_members(kv_ring_t *ring, const kv_config_t *cfg, uint64_t members,
                            kv_status_t *st) {
  KV_ASSERT(cfg->node_count >= 1 && cfg->node_count <= KV_NODES_MAX);
  KV_ASSERT(cfg->partitions >= 1 && cfg->partitions <= KV_PARTITIONS_MAX);
  KV_ASSERT((cfg->partitions & (cfg->partitions - 1)) == 0);
  memset(ring, 0, sizeof *ring);
  kv_err err = check_members(cfg, members, KV_ECONFIG, st);
  if (err) return err;
  ring->partitions = cfg->partitions;
  ring->node_count = cfg->node_count;
  ring->cfg = cfg;
  ring->epoch = 1;
  ring->phase = KV_RING_STABLE;
  build_claim(ring, members);
  ring->first_members = members;
  ring->from.members = members;
  ring->from.member_count = (uint32_t)__builtin_popcountll(members);
  ring->from.cyclic = true;
  for (uint32_t p = 0; p < ring->partitions; p++)
    ring->from.owner[p] = ring->claim[p % ring->from.member_count];
  ring->to = ring->from;
  return KV_OK;
}

kv_err kv_ring_init(kv_ring_t *ring, const kv_config_t *cfg, kv_status_t *st) {
  return kv_ring_init_members(ring, cfg, all_nodes(cfg->node_count), st);
}

const kv_claim_t *kv_ring_read_claim(const kv_ring_t *ring) {
  return ring->phase == KV_RING_HANDOFF ? &ring->from : &ring->to;
}

bool kv_ring_moving(const kv_ring_t *ring) { return ring->phase != KV_RING_STABLE; }

uint32_t kv_ring_owner(const kv_ring_t *ring, uint32_t partition) {
  KV_ASSERT(partition < ring->partitions);
  return kv_ring_read_claim(ring)->owner[partition];
}

/* ---------------------------------------------------------------- new claims */

/* The largest N of the config's keyspaces, less one: how far a moved partition looks for
 * neighbours of the same owner (at least 1). */
static uint32_t claim_window(const kv_config_t *cfg) {
  uint32_t n = 2;
  for (uint32_t k = 0; k < cfg->keyspace_count; k++)
    if (cfg->keyspaces[k].n > n) n = cfg->keyspaces[k].n;
  return n - 1;
}

#define NO_OWNER 0xFFu

/* Whether a partition within window of p (p itself aside) is owned by node. */
static bool near_owner(const kv_ring_t *ring, const uint8_t *owner, uint32_t p, uint32_t node,
                       uint32_t window) {
  uint32_t q = ring->partitions;
  for (uint32_t d = 1; d <= window && d < q; d++)
    if (owner[(p + d) % q] == node || owner[(p + q - d) % q] == node) return true;
  return false;
}

/* Each member's share: Q/S, and one more for the Q mod S members owning most now. */
static void claim_shares(const kv_ring_t *ring, uint64_t members, const uint32_t *owned,
                         uint32_t *share) {
  uint32_t s = (uint32_t)__builtin_popcountll(members), extra = ring->partitions % s;
  memset(share, 0, KV_NODES_MAX * sizeof *share);
  for (uint32_t i = 0; i < ring->node_count; i++)
    if (members >> i & 1) share[i] = ring->partitions / s;
  for (uint32_t e = 0; e < extra; e++) {
    uint32_t best = KV_NODES_MAX;
    for (uint32_t i = 0; i < ring->node_count; i++)
      if ((members >> i & 1) && share[i] == ring->partitions / s &&
          (best == KV_NODES_MAX || owned[i] > owned[best]))
        best = i;
    share[best]++;
  }
}

/* Frees (NO_OWNER) the partitions of non-members and each member's past its share: first
 * those next to a partition of the same owner, then from the top. */
static void claim_free(const kv_ring_t *ring, uint64_t members, const uint32_t *share,
                       uint32_t *owned, uint8_t *owner) {
  for (uint32_t p = 0; p < ring->partitions; p++)
    if (!(members >> owner[p] & 1)) {
      owned[owner[p]]--;
      owner[p] = NO_OWNER;
    }
  for (int pass = 0; pass < 2; pass++)
    for (uint32_t p = ring->partitions; p-- > 0;) {
      uint32_t o = owner[p];
      if (o == NO_OWNER || owned[o] <= share[o]) continue;
      if (pass == 0 && !near_owner(ring, owner, p, o, 1)) continue;
      owned[o]--;
      owner[p] = NO_OWNER;
    }
}

/* Gives each freed partition to the member furthest below its share, preferring those with no
 * partition within window of it. */
static void claim_fill(const kv_ring_t *ring, uint64_t members, const uint32_t *share,
                       uint32_t *owned, uint8_t *owner) {
  uint32_t window = claim_window(ring->cfg);
  for (uint32_t p = 0; p < ring->partitions; p++) {
    if (owner[p] != NO_OWNER) continue;
    uint32_t best = KV_NODES_MAX;
    bool best_clear = false;
    for (uint32_t i = 0; i < ring->node_count; i++) {
      if (!(members >> i & 1) || owned[i] >= share[i]) continue;
      bool clear = !near_owner(ring, owner, p, i, window);
      if (best == KV_NODES_MAX || (clear && !best_clear) ||
          (clear == best_clear && share[i] - owned[i] > share[best] - owned[best])) {
        best = i;
        best_clear = clear;
      }
    }
    KV_ASSERT(best != KV_NODES_MAX); /* the shares add up to Q */
    owner[p] = (uint8_t)best;
    owned[best]++;
  }
}

/* Every partition that either claim gives different primaries (for some keyspace), in
 * ring->sources the nodes that are their primaries under from. */
static uint64_t plan_sources(const kv_ring_t *ring) {
  uint64_t sources = 0;
  for (uint32_t p = 0; p < ring->partitions; p++) {
    uint64_t from;
    if (kv_ring_moving_to(ring, p, &from)) sources |= from;
  }
  return sources;
}

kv_err kv_ring_plan(const kv_ring_t *ring, uint64_t members, kv_ring_t *out, kv_status_t *st) {
  KV_ASSERT(ring != out);
  if (ring->phase != KV_RING_STABLE)
    return kv_status_set(st, KV_EBUSY, "ring epoch %llu is still moving partitions; one "
                         "membership change at a time", (unsigned long long)ring->epoch);
  if (members == ring->from.members)
    return kv_status_set(st, KV_EINVAL, "the ring already has exactly those members");
  kv_err err = check_members(ring->cfg, members, KV_EINVAL, st);
  if (err) return err;
  *out = *ring;
  uint32_t owned[KV_NODES_MAX], share[KV_NODES_MAX];
  claim_count(ring, &ring->from, owned);
  claim_shares(ring, members, owned, share);
  claim_free(ring, members, share, owned, out->to.owner);
  claim_fill(ring, members, share, owned, out->to.owner);
  out->to.members = members;
  out->to.member_count = (uint32_t)__builtin_popcountll(members);
  out->to.cyclic = false;
  out->epoch = ring->epoch + 1;
  out->phase = KV_RING_HANDOFF;
  out->sources = plan_sources(out);
  out->done = out->seen = 0;
  return KV_OK;
}

bool kv_ring_advance(kv_ring_t *ring) {
  if (ring->phase == KV_RING_HANDOFF && (ring->done & ring->sources) == ring->sources) {
    ring->phase = KV_RING_FLIPPED;
  } else if (ring->phase == KV_RING_FLIPPED && ring->seen == all_nodes(ring->node_count)) {
    ring->phase = KV_RING_STABLE;
    ring->from = ring->to;
    ring->sources = 0;
  } else {
    return false;
  }
  ring->epoch++;
  ring->done = ring->seen = 0;
  return true;
}

bool kv_ring_merge(kv_ring_t *mine, const kv_ring_t *theirs, uint32_t self) {
  KV_ASSERT(mine->cfg == theirs->cfg && self < mine->node_count);
  uint64_t was = mine->epoch;
  if (theirs->epoch > mine->epoch) {
    *mine = *theirs;
  } else if (theirs->epoch == mine->epoch) {
    mine->seen |= theirs->seen;
    mine->done |= theirs->done;
  }
  do mine->seen |= 1ull << self;
  while (kv_ring_advance(mine));
  return mine->epoch != was;
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

/* Marks the n primaries of region r along walk (count members): first one node per unused
 * rack, then (second pass) any node of the region still free. */
static void choose_primaries(const kv_ring_t *ring, const uint8_t *walk, uint32_t count,
                             const uint8_t *region_of, uint8_t r, uint32_t n, bool *chosen) {
  bool rack_used[KV_NODES_MAX] = {false};
  uint32_t picked = 0;
  for (int pass = 0; pass < 2; pass++)
    for (uint32_t k = 0; k < count && picked < n; k++) {
      uint8_t node = walk[k];
      if (region_of[node] != r || chosen[node]) continue;
      if (pass == 0 && rack_used[ring->node_rack[node]]) continue;
      chosen[node] = true;
      rack_used[ring->node_rack[node]] = true;
      picked++;
    }
  /* A keyspace from the ring's own config was checked against every member set. */
  KV_ASSERT(picked == n);
}

static void preflist_add(kv_preflist_t *out, uint8_t node, const uint8_t *region_of) {
  KV_ASSERT(out->count < KV_NODES_MAX);
  out->node[out->count] = node;
  out->region[out->count++] = region_of[node];
}

/* The members of c in the order a walk from partition meets them. */
static void claim_walk(const kv_ring_t *ring, const kv_claim_t *c, uint32_t partition,
                       uint8_t *walk) {
  if (c->cyclic) {
    for (uint32_t k = 0; k < c->member_count; k++)
      walk[k] = ring->claim[(partition + k) % c->member_count];
    return;
  }
  uint64_t met = 0;
  uint32_t count = 0;
  for (uint32_t k = 0; k < ring->partitions && count < c->member_count; k++) {
    uint8_t node = c->owner[(partition + k) % ring->partitions];
    if (met >> node & 1) continue;
    met |= 1ull << node;
    walk[count++] = node;
  }
  KV_ASSERT(count == c->member_count);
}

void kv_ring_claim_preflist(const kv_ring_t *ring, const kv_claim_t *c,
                            const kv_keyspace_conf_t *ks, uint32_t partition,
                            kv_preflist_t *out) {
  KV_ASSERT(partition < ring->partitions);
  KV_ASSERT(ks->replication_count >= 1 && ks->replication_count <= KV_REGIONS_MAX);
  uint8_t walk[KV_NODES_MAX], region_of[KV_NODES_MAX];
  bool chosen[KV_NODES_MAX] = {false};
  uint32_t count = c->member_count;
  claim_walk(ring, c, partition, walk);
  keyspace_regions(ring, ks, region_of);
  memset(out, 0, sizeof *out);
  for (uint8_t r = 0; r < ks->replication_count; r++) {
    choose_primaries(ring, walk, count, region_of, r, ks->replication[r].replicas, chosen);
    for (uint32_t k = 0; k < count; k++)
      if (chosen[walk[k]] && region_of[walk[k]] == r) preflist_add(out, walk[k], region_of);
  }
  out->primary_count = out->count;
  KV_ASSERT(out->primary_count == ks->n);
  for (uint32_t k = 0; k < count; k++)
    if (!chosen[walk[k]]) preflist_add(out, walk[k], region_of);
  KV_ASSERT(out->count == count);
}

void kv_ring_preflist(const kv_ring_t *ring, const kv_keyspace_conf_t *ks, uint32_t partition,
                      kv_preflist_t *out) {
  kv_ring_claim_preflist(ring, kv_ring_read_claim(ring), ks, partition, out);
}

static uint64_t primaries_of(const kv_ring_t *ring, const kv_claim_t *c, uint32_t partition) {
  uint64_t set = 0;
  for (uint32_t k = 0; k < ring->cfg->keyspace_count; k++) {
    kv_preflist_t pl;
    kv_ring_claim_preflist(ring, c, &ring->cfg->keyspaces[k], partition, &pl);
    for (uint32_t i = 0; i < pl.primary_count; i++) set |= 1ull << pl.node[i];
  }
  return set;
}

uint64_t kv_ring_moving_to(const kv_ring_t *ring, uint32_t partition, uint64_t *sources) {
  *sources = 0;
  if (ring->phase == KV_RING_STABLE) return 0;
  uint64_t from = primaries_of(ring, &ring->from, partition);
  uint64_t to = primaries_of(ring, &ring->to, partition) & ~from;
  if (to) *sources = from;
  return to;
}

/* ---------------------------------------------------------------- encoding */

#define RING_FORMAT 1u

static uint8_t *put_u64(uint8_t *b, uint64_t v) {
  for (int i = 0; i < 8; i++) *b++ = (uint8_t)(v >> (8 * i));
  return b;
}

static const uint8_t *get_u64(const uint8_t *b, uint64_t *v) {
  *v = 0;
  for (int i = 0; i < 8; i++) *v |= (uint64_t)b[i] << (8 * i);
  return b + 8;
}

/* Layout: format, phase, which claims are cyclic (bit 0 from's, bit 1 to's; a byte each),
 * partitions, epoch, sources, done, seen, from's and to's members (u64 little-endian each),
 * then from's and to's owners (a byte per partition). */
#define RING_HEAD_BYTES (3u + 8u * 7u)

size_t kv_ring_encode(const kv_ring_t *ring, uint8_t *buf) {
  uint8_t *b = buf;
  *b++ = RING_FORMAT;
  *b++ = (uint8_t)ring->phase;
  *b++ = (uint8_t)(ring->from.cyclic | ring->to.cyclic << 1);
  b = put_u64(b, ring->partitions);
  b = put_u64(b, ring->epoch);
  b = put_u64(b, ring->sources);
  b = put_u64(b, ring->done);
  b = put_u64(b, ring->seen);
  b = put_u64(b, ring->from.members);
  b = put_u64(b, ring->to.members);
  memcpy(b, ring->from.owner, ring->partitions);
  memcpy(b + ring->partitions, ring->to.owner, ring->partitions);
  return (size_t)(b - buf) + 2u * ring->partitions;
}

/* Checks one decoded claim: members within the config, owners members, each member owning; a
 * cyclic one is the first claim of this node's own first ring. */
static bool claim_valid(const kv_ring_t *ring, kv_claim_t *c) {
  if (c->members == 0 || (c->members & ~all_nodes(ring->node_count))) return false;
  c->member_count = (uint32_t)__builtin_popcountll(c->members);
  if (c->cyclic && c->members != ring->first_members) return false;
  for (uint32_t p = 0; c->cyclic && p < ring->partitions; p++)
    if (c->owner[p] != ring->claim[p % c->member_count]) return false;
  uint64_t owning = 0;
  for (uint32_t p = 0; p < ring->partitions; p++) {
    if (c->owner[p] >= ring->node_count || !(c->members >> c->owner[p] & 1)) return false;
    owning |= 1ull << c->owner[p];
  }
  return owning == c->members;
}

kv_err kv_ring_decode(const kv_ring_t *like, const uint8_t *bytes, size_t len, kv_ring_t *out,
                      kv_status_t *st) {
  if (len != RING_HEAD_BYTES + 2u * like->partitions || bytes[0] != RING_FORMAT ||
      bytes[1] > KV_RING_FLIPPED || bytes[2] > 3)
    return kv_status_set(st, KV_ECORRUPT, "a ring of %zu bytes is not one of this config's "
                         "(%u partitions)", len, like->partitions);
  *out = *like;
  uint64_t partitions;
  const uint8_t *b = get_u64(bytes + 3, &partitions);
  b = get_u64(b, &out->epoch);
  b = get_u64(b, &out->sources);
  b = get_u64(b, &out->done);
  b = get_u64(b, &out->seen);
  b = get_u64(b, &out->from.members);
  b = get_u64(b, &out->to.members);
  out->phase = (kv_ring_phase_t)bytes[1];
  out->from.cyclic = bytes[2] & 1;
  out->to.cyclic = bytes[2] >> 1 & 1;
  memcpy(out->from.owner, b, like->partitions);
  memcpy(out->to.owner, b + like->partitions, like->partitions);
  if (partitions != like->partitions || out->epoch == 0 || !claim_valid(out, &out->from) ||
      !claim_valid(out, &out->to) ||
      (out->phase == KV_RING_STABLE && out->from.members != out->to.members))
    return kv_status_set(st, KV_ECORRUPT, "ring epoch %llu does not fit this config: a claim "
                         "names a node that is not one of its members",
                         (unsigned long long)out->epoch);
  return KV_OK;
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
