/* ring.h: partitions to nodes, and preference lists (DESIGN section 5). Sans-IO.
 *
 * The ring is a versioned object: an epoch, a member set and a claim (the owner of each of
 * the Q partitions, Q a power of two). Every node that may ever be a member is in the config
 * (its id, address, region and rack), and the ring names nodes by their index there; the
 * member set says which of them hold data now. A node of the config that is not a member is
 * known to every node (so the ring can name it, and a later join can make it a member) but is
 * in no preference list, not even as a fallback. kvnode starts every ring with all of the
 * config's nodes as members at epoch 1 (a config field naming the first members comes with the
 * kvctl join/leave step); the simulator starts with a subset (kv_ring_init_members).
 *
 * The first claim is computed from the config alone, so every node computes the same ring: the
 * members are put in a claim order that interleaves racks and regions, and partition p belongs
 * to claim[p mod S]. Walking the ring from any partition therefore meets every member once in
 * S steps, with neighbours on different racks wherever the cluster has them, and each member
 * owns Q/S partitions (+-1). A new member set gets a claim of its own (kv_ring_plan) that moves
 * as few partitions as balance allows: every member ends with Q/S or Q/S + 1 partitions, the
 * extra ones going to the members that hold most now, and a partition moves only when its
 * owner leaves or holds more than its share; each moved partition goes to the member short of
 * its share that owns none of its neighbours (within the largest N of the keyspaces), most
 * short first.
 *
 * The preference list of a key in a keyspace under a claim: walk the partitions from the
 * key's, meeting each member at its first partition, and for each region r of the keyspace's
 * replication take the first n_r distinct members of region r, preferring members whose rack
 * is not yet used (a second pass fills up with repeated racks). Those are the primaries,
 * grouped by the keyspace's region order. Walking on, every other member follows as a fallback
 * (for sloppy quorum), in walk order. The first claim walks round the claim order instead
 * (claim[(p + k) mod S]), as rings did before they had epochs: the same but at the wrap from
 * partition Q - 1 to 0 when S does not divide Q, where it keeps today's preference lists.
 *
 * A membership change (issue 19) runs in three epochs, each one a deterministic function of the
 * one before, so every node that takes the same steps holds the same ring:
 *
 *   phase    claims          requests go to                   read claim    ends when
 *   STABLE   from == to      the primaries                    both          kv_ring_plan
 *   HANDOFF  from -> to      from's and to's primaries, the   from          every source
 *                            level met within each (W of the                has streamed
 *   FLIPPED  from -> to      old and W of the new)            to            every node has
 *                                                                           seen the epoch
 *
 * The read claim is the one kv_ring_preflist and kv_ring_owner answer for: where a moving
 * ring's stand-ins (sloppy quorum) come from, and what Admin.Ring shows. Reads go to both
 * claims like writes (coordinator/coord_slots.c says why: their repairs are writes).
 *
 * kv_ring_plan makes the HANDOFF ring (epoch + 1) of a STABLE one; kv_ring_advance makes the
 * FLIPPED ring once `done` holds every source (the nodes that are a primary under `from` of a
 * partition whose primaries change: each streams that partition's records to the new ones,
 * coordinator/handoff.h) and the STABLE ring, from = to, once `seen` holds every node of the
 * config. Why W of each set: after the flip reads meet only to's primaries, so every write
 * acknowledged during the handoff must already be on W of them; a write acknowledged before
 * it reached from's primaries before they began to stream (a replica whose ring is newer than
 * a request's refuses it), so every source's stream carries it. Why the second step: a node
 * that has not yet seen the flip still reads from's primaries, so writes keep going there
 * until every node has seen it, and a replica refuses a request made under an older epoch.
 * `seen` and `done` only grow within an epoch and are merged by
 * union (kv_ring_merge), so nodes spread them by gossip in any order.
 *
 * Invariants: the claim order is a permutation of the first members; node_rack numbers racks
 * 0..racks-1 in sorted order over every node of the config; every owner of a claim is one of
 * its members, and every member owns at least one partition (Q >= members); a preference list
 * holds every member exactly once, its first primary_count entries are the keyspace's N
 * primaries, grouped by the keyspace's region order, each region's in walk order. */
#ifndef KV_RING_H
#define KV_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "kv_err.h"
#include "kv_limits.h"

#define KV_RING_NO_REGION 0xFFu

/* One claim: who is a member and who owns each partition. */
typedef struct {
  uint64_t members;              /* bit i: node i of the config is a member */
  uint32_t member_count;
  bool cyclic;                   /* the first claim: walks go round the claim order (below) */
  uint8_t owner[KV_PARTITIONS_MAX]; /* the first `partitions` entries: node indexes */
} kv_claim_t;

typedef enum { KV_RING_STABLE, KV_RING_HANDOFF, KV_RING_FLIPPED } kv_ring_phase_t;

/* Large (two claims of KV_PARTITIONS_MAX owners): keep it off small stacks. */
typedef struct {
  uint32_t partitions;
  uint32_t node_count;           /* nodes in the config: every node that may be a member */
  uint8_t claim[KV_NODES_MAX];   /* the first members' claim order: node indexes */
  uint64_t first_members;        /* the first ring's members, whose order claim is */
  uint8_t node_rack[KV_NODES_MAX]; /* rack number per node (equal racks, equal numbers) */
  const kv_config_t *cfg;        /* borrowed; must outlive the ring */
  uint64_t epoch;                /* 1 for the first ring; + 1 per step of the table above */
  kv_ring_phase_t phase;
  kv_claim_t from, to;           /* equal when STABLE */
  uint64_t sources;              /* HANDOFF, FLIPPED: the nodes that stream (see above) */
  uint64_t done;                 /* HANDOFF: sources known to have streamed everything */
  uint64_t seen;                 /* nodes known to hold this epoch */
} kv_ring_t;

/* The largest encoding of a ring (kv_ring_encode). */
#define KV_RING_ENCODED_BYTES_MAX (64u + 2u * KV_PARTITIONS_MAX)

typedef struct {
  uint32_t count;                /* entries used: every member of the claim */
  uint32_t primary_count;        /* the first primary_count entries are primaries: N */
  uint8_t node[KV_NODES_MAX];    /* node indexes: primaries, then fallbacks */
  /* For each entry, its node's region as an index into the keyspace's replication list,
   * or KV_RING_NO_REGION when the keyspace keeps no replicas in that node's region. */
  uint8_t region[KV_NODES_MAX];
} kv_preflist_t;

/* Builds the first ring of a loaded config, every node a member, at epoch 1, STABLE (cfg is
 * borrowed for the ring's life). Fails with KV_ECONFIG when a keyspace asks for more replicas
 * in a region than it has nodes (the loader already refuses that; this is the ring's own
 * check). */
kv_err kv_ring_init(kv_ring_t *ring, const kv_config_t *cfg, kv_status_t *st);
/* The same with only the nodes of `members` (bit i: node i of cfg) as members. KV_ECONFIG as
 * above, counting members only, and when members is empty, names a node past the config, or
 * has more members than partitions. */
kv_err kv_ring_init_members(kv_ring_t *ring, const kv_config_t *cfg, uint64_t members,
                            kv_status_t *st);
/* The HANDOFF ring (epoch + 1) that moves the STABLE ring `ring` to the member set `members`,
 * with the claim described above, into *out (which may not be ring). KV_EBUSY with a sentence
 * when ring is not STABLE (one change at a time); KV_EINVAL when members is the current set
 * or breaks one of kv_ring_init_members' rules. */
kv_err kv_ring_plan(const kv_ring_t *ring, uint64_t members, kv_ring_t *out, kv_status_t *st);
/* Moves ring one phase on when its condition holds (the table above); true when it moved. */
bool kv_ring_advance(kv_ring_t *ring);
/* Takes what `theirs` (a ring of the same config) knows into `mine`: a newer epoch replaces
 * mine, the same epoch adds its seen and done; then `self` is added to seen and the ring
 * advanced as far as it goes. True when mine's epoch changed. */
bool kv_ring_merge(kv_ring_t *mine, const kv_ring_t *theirs, uint32_t self);
/* The read claim: from's while HANDOFF, else to's. */
const kv_claim_t *kv_ring_read_claim(const kv_ring_t *ring);
/* Whether requests go to two claims (HANDOFF, FLIPPED). */
bool kv_ring_moving(const kv_ring_t *ring);
/* The nodes partition p is streamed to (primaries under to, of some keyspace, that are no
 * primary of it under from), and in *sources the nodes that stream it (its primaries under
 * from, of every keyspace); both 0 when p's primaries do not change or ring is STABLE. */
uint64_t kv_ring_moving_to(const kv_ring_t *ring, uint32_t partition, uint64_t *sources);
/* The node index that owns partition p in the read claim (the first node of every walk). */
uint32_t kv_ring_owner(const kv_ring_t *ring, uint32_t partition);
/* The preference list of partition p for keyspace ks under the read claim. */
void kv_ring_preflist(const kv_ring_t *ring, const kv_keyspace_conf_t *ks, uint32_t partition,
                      kv_preflist_t *out);
/* The same under claim c (ring->from or ring->to). */
void kv_ring_claim_preflist(const kv_ring_t *ring, const kv_claim_t *c,
                            const kv_keyspace_conf_t *ks, uint32_t partition, kv_preflist_t *out);
/* The ring as bytes, for gossip and for the node's own storage: at most
 * KV_RING_ENCODED_BYTES_MAX into buf; returns the length. */
size_t kv_ring_encode(const kv_ring_t *ring, uint8_t *buf);
/* A ring of the same config as `like` from kv_ring_encode's bytes, into *out. KV_ECORRUPT
 * with a sentence when they are not one (wrong length or partition count, an owner that is
 * no member, a member past the config, an unknown phase). */
kv_err kv_ring_decode(const kv_ring_t *like, const uint8_t *bytes, size_t len, kv_ring_t *out,
                      kv_status_t *st);
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
