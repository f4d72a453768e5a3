/* check_ring.c: the claim (shares, rack and region interleaving, determinism) and preference
 * lists (primaries per region, distinct racks, fallbacks, stand-ins, region indexes). */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "ring.h"

/* Configs are ~60 KiB each: kept off the test's stack. */
static kv_config_t cfg, cfg2;
static kv_ring_t ring, ring2;

static void cfg_reset(kv_config_t *c, uint32_t partitions) {
  memset(c, 0, sizeof *c);
  c->partitions = partitions;
}

static void add_node(kv_config_t *c, const char *id, const char *region, const char *rack) {
  kv_node_conf_t *n = &c->nodes[c->node_count++];
  snprintf(n->id, sizeof n->id, "%s", id);
  snprintf(n->address, sizeof n->address, "127.0.0.1:%u", 7000 + c->node_count);
  snprintf(n->region, sizeof n->region, "%s", region);
  snprintf(n->rack, sizeof n->rack, "%s", rack);
}

/* count nodes named n00.., dealt over the regions in turn; within its region, node i goes
 * to rack "r<i mod racks>". */
static void add_cluster(kv_config_t *c, uint32_t count, const char *const *regions,
                        uint32_t region_count, uint32_t racks) {
  for (uint32_t i = 0; i < count; i++) {
    char id[16], rack[16];
    snprintf(id, sizeof id, "n%02u", i);
    snprintf(rack, sizeof rack, "r%u", (i / region_count) % racks);
    add_node(c, id, regions[i % region_count], rack);
  }
}

/* One region "local" with nodes n0.. on the given racks. */
static void add_racked_nodes(const char *const *racks, uint32_t count) {
  for (uint32_t i = 0; i < count; i++) {
    char id[16];
    snprintf(id, sizeof id, "n%u", i);
    add_node(&cfg, id, "local", racks[i]);
  }
}

/* A keyspace with replicas in region r0, and in r1 unless r1 is NULL. */
static const kv_keyspace_conf_t *add_keyspace(kv_config_t *c, const char *name,
                                              const char *r0, uint32_t n0, const char *r1,
                                              uint32_t n1) {
  kv_keyspace_conf_t *ks = &c->keyspaces[c->keyspace_count++];
  snprintf(ks->name, sizeof ks->name, "%s", name);
  const char *regions[2] = {r0, r1};
  uint32_t replicas[2] = {n0, n1};
  for (uint32_t r = 0; r < 2 && regions[r]; r++) {
    snprintf(ks->replication[r].region, sizeof ks->replication[r].region, "%s", regions[r]);
    ks->replication[r].replicas = replicas[r];
    ks->replication_count++;
    ks->n += replicas[r];
  }
  return ks;
}

static void ring_ok(kv_ring_t *r, const kv_config_t *c) {
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_int_eq(kv_ring_init(r, c, &st), KV_OK);
}

static const char *const LOCAL[] = {"local"};
static const char *const EAST_WEST[] = {"east", "west"};

static const char *rack_of(uint32_t node) { return cfg.nodes[node].rack; }
static const char *region_of(uint32_t node) { return cfg.nodes[node].region; }

/* Checks the shape every preference list has: every node once, N primaries first. */
static void check_preflist_shape(const kv_preflist_t *pl, const kv_keyspace_conf_t *ks) {
  bool seen[KV_NODES_MAX] = {false};
  ck_assert_uint_eq(pl->count, cfg.node_count);
  ck_assert_uint_eq(pl->primary_count, ks->n);
  for (uint32_t i = 0; i < pl->count; i++) {
    ck_assert_uint_lt(pl->node[i], cfg.node_count);
    ck_assert(!seen[pl->node[i]]);
    seen[pl->node[i]] = true;
    ck_assert(kv_preflist_is_primary(pl, pl->node[i]) == (i < pl->primary_count));
  }
}

START_TEST(same_config_gives_same_ring) {
  cfg_reset(&cfg, 256);
  cfg_reset(&cfg2, 256);
  add_cluster(&cfg, 7, EAST_WEST, 2, 3);
  add_cluster(&cfg2, 7, EAST_WEST, 2, 3);
  const kv_keyspace_conf_t *ks = add_keyspace(&cfg, "ks", "east", 2, "west", 2);
  const kv_keyspace_conf_t *ks2 = add_keyspace(&cfg2, "ks", "east", 2, "west", 2);
  ring_ok(&ring, &cfg);
  ring_ok(&ring2, &cfg2);
  ck_assert_mem_eq(ring.claim, ring2.claim, sizeof ring.claim);
  ck_assert_mem_eq(ring.node_rack, ring2.node_rack, sizeof ring.node_rack);
  for (uint32_t p = 0; p < 256; p++) {
    kv_preflist_t a, b;
    kv_ring_preflist(&ring, ks, p, &a);
    kv_ring_preflist(&ring2, ks2, p, &b);
    ck_assert_mem_eq(&a, &b, sizeof a);
  }
}
END_TEST

START_TEST(file_order_does_not_change_the_ring) {
  /* cfg2 lists cfg's nodes in reverse; owners and preference lists must match by id. */
  cfg_reset(&cfg, 64);
  cfg_reset(&cfg2, 64);
  add_cluster(&cfg, 9, EAST_WEST, 2, 2);
  for (uint32_t i = cfg.node_count; i-- > 0;)
    add_node(&cfg2, cfg.nodes[i].id, cfg.nodes[i].region, cfg.nodes[i].rack);
  const kv_keyspace_conf_t *ks = add_keyspace(&cfg, "ks", "west", 2, "east", 1);
  const kv_keyspace_conf_t *ks2 = add_keyspace(&cfg2, "ks", "west", 2, "east", 1);
  ring_ok(&ring, &cfg);
  ring_ok(&ring2, &cfg2);
  for (uint32_t p = 0; p < 64; p++) {
    kv_preflist_t a, b;
    kv_ring_preflist(&ring, ks, p, &a);
    kv_ring_preflist(&ring2, ks2, p, &b);
    ck_assert_str_eq(cfg.nodes[kv_ring_owner(&ring, p)].id, cfg2.nodes[kv_ring_owner(&ring2, p)].id);
    ck_assert_uint_eq(a.count, b.count);
    for (uint32_t i = 0; i < a.count; i++)
      ck_assert_str_eq(cfg.nodes[a.node[i]].id, cfg2.nodes[b.node[i]].id);
  }
}
END_TEST

START_TEST(each_node_owns_its_share) {
  static const uint32_t shapes[][2] = {{256, 1}, {256, 3}, {256, 5}, {256, 7}, {64, 6}};
  for (uint32_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    uint32_t q = shapes[s][0], nodes = shapes[s][1];
    uint32_t owned[KV_NODES_MAX] = {0};
    cfg_reset(&cfg, q);
    add_cluster(&cfg, nodes, EAST_WEST, nodes > 1 ? 2 : 1, 2);
    ring_ok(&ring, &cfg);
    for (uint32_t p = 0; p < q; p++) owned[kv_ring_owner(&ring, p)]++;
    for (uint32_t i = 0; i < nodes; i++) {
      ck_assert_uint_ge(owned[i], q / nodes);
      ck_assert_uint_le(owned[i], q / nodes + 1);
    }
  }
}
END_TEST

START_TEST(first_ring_walks_round_the_claim_order_at_the_wrap) {
  /* 256 mod 6 = 4: past partition 255 the walk goes on round the claim order. */
  cfg_reset(&cfg, 256);
  add_cluster(&cfg, 6, LOCAL, 1, 3);
  const kv_keyspace_conf_t *ks = add_keyspace(&cfg, "ks", "local", 3, NULL, 0);
  ring_ok(&ring, &cfg);
  for (uint32_t p = 0; p < 256; p++) {
    kv_preflist_t pl;
    kv_ring_preflist(&ring, ks, p, &pl);
    for (uint32_t k = 0; k < 6; k++) ck_assert_uint_eq(pl.node[k], ring.claim[(p + k) % 6]);
  }
}
END_TEST

START_TEST(owner_is_the_claim_and_walks_meet_every_node) {
  cfg_reset(&cfg, 256);
  add_cluster(&cfg, 5, LOCAL, 1, 3);
  const kv_keyspace_conf_t *ks = add_keyspace(&cfg, "ks", "local", 3, NULL, 0);
  ring_ok(&ring, &cfg);
  for (uint32_t p = 0; p < 256; p++) {
    ck_assert_uint_eq(kv_ring_owner(&ring, p), ring.claim[p % 5]);
    kv_preflist_t pl;
    kv_ring_preflist(&ring, ks, p, &pl);
    ck_assert_uint_eq(pl.node[0], kv_ring_owner(&ring, p));
  }
  bool seen[5] = {false};
  for (uint32_t p = 17; p < 17 + 5; p++) {
    uint32_t owner = kv_ring_owner(&ring, p);
    ck_assert(!seen[owner]);
    seen[owner] = true;
  }
}
END_TEST

START_TEST(preflist_holds_every_node_once) {
  cfg_reset(&cfg, 256);
  add_cluster(&cfg, 7, LOCAL, 1, 3);
  const kv_keyspace_conf_t *ks = add_keyspace(&cfg, "ks", "local", 3, NULL, 0);
  ring_ok(&ring, &cfg);
  for (uint32_t p = 0; p < 256; p++) {
    kv_preflist_t pl;
    kv_ring_preflist(&ring, ks, p, &pl);
    check_preflist_shape(&pl, ks);
    for (uint32_t i = 0; i < pl.count; i++) ck_assert_uint_eq(pl.region[i], 0);
  }
}
END_TEST

START_TEST(each_region_gets_its_primaries) {
  /* east 4 nodes, west 3 nodes; the keyspace lists west first. */
  cfg_reset(&cfg, 128);
  add_cluster(&cfg, 7, EAST_WEST, 2, 2);
  const kv_keyspace_conf_t *ks = add_keyspace(&cfg, "ks", "west", 1, "east", 2);
  ring_ok(&ring, &cfg);
  for (uint32_t p = 0; p < 128; p++) {
    kv_preflist_t pl;
    kv_ring_preflist(&ring, ks, p, &pl);
    check_preflist_shape(&pl, ks);
    ck_assert_str_eq(region_of(pl.node[0]), "west");
    ck_assert_str_eq(region_of(pl.node[1]), "east");
    ck_assert_str_eq(region_of(pl.node[2]), "east");
    for (uint32_t i = 0; i < pl.count; i++)
      ck_assert_str_eq(region_of(pl.node[i]), ks->replication[pl.region[i]].region);
  }
}
END_TEST

START_TEST(two_regions_of_three_give_three_and_three) {
  cfg_reset(&cfg, 256);
  add_cluster(&cfg, 6, EAST_WEST, 2, 3);
  const kv_keyspace_conf_t *ks = add_keyspace(&cfg, "ks", "east", 3, "west", 3);
  ring_ok(&ring, &cfg);
  for (uint32_t p = 0; p < 256; p++) {
    kv_preflist_t pl;
    kv_ring_preflist(&ring, ks, p, &pl);
    check_preflist_shape(&pl, ks);
    ck_assert_uint_eq(pl.count, 6);
    for (uint32_t i = 0; i < 6; i++) {
      ck_assert_str_eq(region_of(pl.node[i]), i < 3 ? "east" : "west");
      ck_assert_uint_eq(pl.region[i], i < 3 ? 0 : 1);
    }
  }
}
END_TEST

START_TEST(other_regions_are_fallbacks_without_a_region) {
  cfg_reset(&cfg, 64);
  add_cluster(&cfg, 6, EAST_WEST, 2, 3);
  const kv_keyspace_conf_t *ks = add_keyspace(&cfg, "ks", "east", 2, NULL, 0);
  ring_ok(&ring, &cfg);
  for (uint32_t p = 0; p < 64; p++) {
    kv_preflist_t pl;
    kv_ring_preflist(&ring, ks, p, &pl);
    check_preflist_shape(&pl, ks);
    uint32_t east = 0, none = 0;
    for (uint32_t i = 0; i < pl.count; i++) {
      bool in_east = strcmp(region_of(pl.node[i]), "east") == 0;
      ck_assert_uint_eq(pl.region[i], in_east ? 0 : KV_RING_NO_REGION);
      if (i < pl.primary_count) ck_assert(in_east);
      east += in_east;
      none += !in_east;
    }
    ck_assert_uint_eq(east, 3);
    ck_assert_uint_eq(none, 3);
  }
}
END_TEST

/* Primaries of ks over every partition of a single-region cfg have distinct racks. */
static void check_distinct_racks(const kv_keyspace_conf_t *ks) {
  for (uint32_t p = 0; p < cfg.partitions; p++) {
    kv_preflist_t pl;
    kv_ring_preflist(&ring, ks, p, &pl);
    check_preflist_shape(&pl, ks);
    for (uint32_t i = 0; i < pl.primary_count; i++)
      for (uint32_t j = i + 1; j < pl.primary_count; j++)
        ck_assert_str_ne(rack_of(pl.node[i]), rack_of(pl.node[j]));
  }
}

START_TEST(three_racks_give_three_distinct_racks) {
  /* Even racks (3 x 2), then uneven ones (a: 3 nodes, b: 2, c: 1). */
  cfg_reset(&cfg, 256);
  add_cluster(&cfg, 6, LOCAL, 1, 3);
  const kv_keyspace_conf_t *ks = add_keyspace(&cfg, "ks", "local", 3, NULL, 0);
  ring_ok(&ring, &cfg);
  check_distinct_racks(ks);

  cfg_reset(&cfg, 256);
  static const char *const racks[] = {"a", "a", "a", "b", "b", "c"};
  add_racked_nodes(racks, 6);
  ks = add_keyspace(&cfg, "ks", "local", 3, NULL, 0);
  ring_ok(&ring, &cfg);
  check_distinct_racks(ks);
}
END_TEST

START_TEST(two_racks_both_hold_primaries) {
  /* Racks of 2 and 2, then of 4 and 1: with N=3 both racks hold a primary everywhere. */
  static const char *const layouts[][5] = {{"a", "b", "a", "b"}, {"a", "a", "a", "a", "b"}};
  static const uint32_t sizes[] = {4, 5};
  for (uint32_t l = 0; l < 2; l++) {
    cfg_reset(&cfg, 256);
    add_racked_nodes(layouts[l], sizes[l]);
    const kv_keyspace_conf_t *ks = add_keyspace(&cfg, "ks", "local", 3, NULL, 0);
    ring_ok(&ring, &cfg);
    for (uint32_t p = 0; p < 256; p++) {
      kv_preflist_t pl;
      kv_ring_preflist(&ring, ks, p, &pl);
      check_preflist_shape(&pl, ks);
      bool on_a = false, on_b = false;
      for (uint32_t i = 0; i < pl.primary_count; i++) {
        on_a |= strcmp(rack_of(pl.node[i]), "a") == 0;
        on_b |= strcmp(rack_of(pl.node[i]), "b") == 0;
      }
      ck_assert(on_a && on_b);
    }
  }
}
END_TEST

START_TEST(neighbours_in_a_region_are_on_other_racks) {
  /* Racks of 1, 2 and 3 nodes: the largest holds half, so a 6-node cycle has no rack
   * neighbours; dealing naively ends with the largest rack next to its own start. */
  static const char *const racks[] = {"a", "b", "c", "b", "c", "c"};
  cfg_reset(&cfg, 64);
  add_racked_nodes(racks, 6);
  ring_ok(&ring, &cfg);
  for (uint32_t i = 0; i < 6; i++)
    ck_assert_uint_ne(ring.node_rack[ring.claim[i]], ring.node_rack[ring.claim[(i + 1) % 6]]);
  ck_assert_uint_eq(ring.node_rack[2], ring.node_rack[5]);
  ck_assert_uint_ne(ring.node_rack[0], ring.node_rack[1]);
}
END_TEST

START_TEST(equal_racks_are_dealt_round_robin) {
  /* 3 racks of 3: every 3 consecutive nodes (around the cycle) are on 3 racks. */
  static const char *const racks[] = {"a", "a", "a", "b", "b", "b", "c", "c", "c"};
  cfg_reset(&cfg, 64);
  add_racked_nodes(racks, 9);
  ring_ok(&ring, &cfg);
  for (uint32_t i = 0; i < 9; i++) {
    uint8_t x = ring.node_rack[ring.claim[i]], y = ring.node_rack[ring.claim[(i + 1) % 9]];
    uint8_t z = ring.node_rack[ring.claim[(i + 2) % 9]];
    ck_assert(x != y && y != z && x != z);
  }
}
END_TEST

START_TEST(same_rack_name_in_two_regions_is_two_racks) {
  cfg_reset(&cfg, 64);
  add_node(&cfg, "e1", "east", "r1");
  add_node(&cfg, "w1", "west", "r1");
  ring_ok(&ring, &cfg);
  ck_assert_uint_ne(ring.node_rack[0], ring.node_rack[1]);
}
END_TEST

START_TEST(regions_alternate_around_the_ring) {
  /* Two equal regions alternate, so every walk meets east and west in turn. */
  cfg_reset(&cfg, 64);
  add_cluster(&cfg, 6, EAST_WEST, 2, 3);
  ring_ok(&ring, &cfg);
  for (uint32_t i = 0; i < 6; i++)
    ck_assert_str_ne(region_of(ring.claim[i]), region_of(ring.claim[(i + 1) % 6]));
}
END_TEST

START_TEST(first_primaries_spread_over_all_nodes) {
  /* One region: every node coordinates Q/S partitions (+-1). */
  uint32_t first[KV_NODES_MAX] = {0};
  cfg_reset(&cfg, 256);
  add_cluster(&cfg, 5, LOCAL, 1, 3);
  const kv_keyspace_conf_t *ks = add_keyspace(&cfg, "ks", "local", 3, NULL, 0);
  ring_ok(&ring, &cfg);
  for (uint32_t p = 0; p < 256; p++) {
    kv_preflist_t pl;
    kv_ring_preflist(&ring, ks, p, &pl);
    first[pl.node[0]]++;
  }
  for (uint32_t i = 0; i < 5; i++) ck_assert(first[i] == 51 || first[i] == 52);

  /* Two regions: the first primary is in the keyspace's first region, spread over its nodes;
   * one keyspace per region order covers every node. */
  memset(first, 0, sizeof first);
  cfg_reset(&cfg, 256);
  add_cluster(&cfg, 6, EAST_WEST, 2, 3);
  const kv_keyspace_conf_t *east = add_keyspace(&cfg, "e", "east", 3, "west", 3);
  const kv_keyspace_conf_t *west = add_keyspace(&cfg, "w", "west", 3, "east", 3);
  ring_ok(&ring, &cfg);
  for (uint32_t p = 0; p < 256; p++) {
    kv_preflist_t pl;
    kv_ring_preflist(&ring, east, p, &pl);
    first[pl.node[0]]++;
    kv_ring_preflist(&ring, west, p, &pl);
    first[pl.node[0]]++;
  }
  /* The regions alternate, so each node is first for 2 of every 6 walk starts, and each
   * start serves 256 / 6 partitions rounded down or up: 84 .. 86. */
  for (uint32_t i = 0; i < 6; i++) ck_assert(first[i] >= 2 * 42 && first[i] <= 2 * 43);
}
END_TEST

START_TEST(is_primary_answers_for_primaries_only) {
  kv_preflist_t pl;
  memset(&pl, 0, sizeof pl);
  pl.count = 4;
  pl.primary_count = 2;
  pl.node[0] = 3;
  pl.node[1] = 1;
  pl.node[2] = 0;
  pl.node[3] = 2;
  ck_assert(kv_preflist_is_primary(&pl, 3));
  ck_assert(kv_preflist_is_primary(&pl, 1));
  ck_assert(!kv_preflist_is_primary(&pl, 0));
  ck_assert(!kv_preflist_is_primary(&pl, 2));
  ck_assert(!kv_preflist_is_primary(&pl, 7));
}
END_TEST

/* Sloppy quorum: a dead primary's stand-in is the next usable node of its own region past the
 * primaries, in walk order; none once the region's spare nodes are used up or dead. */
START_TEST(fallbacks_come_from_the_primarys_region_in_walk_order) {
  cfg_reset(&cfg, 64);
  add_cluster(&cfg, 5, LOCAL, 1, 5);
  const kv_keyspace_conf_t *ks = add_keyspace(&cfg, "ks", "local", 3, NULL, 0);
  ring_ok(&ring, &cfg);
  for (uint32_t p = 0; p < 64; p++) {
    kv_preflist_t pl;
    kv_ring_preflist(&ring, ks, p, &pl);
    bool usable[KV_NODES_MAX];
    for (uint32_t k = 0; k < pl.count; k++) usable[k] = true;
    for (uint32_t i = 0; i < 3; i++) ck_assert_int_eq(kv_preflist_fallback(&pl, i, usable), 3);
    usable[3] = false;
    ck_assert_int_eq(kv_preflist_fallback(&pl, 1, usable), 4);
    usable[4] = false;
    ck_assert_int_eq(kv_preflist_fallback(&pl, 1, usable), -1);
  }

  cfg_reset(&cfg, 64);
  add_cluster(&cfg, 8, EAST_WEST, 2, 2);
  ks = add_keyspace(&cfg, "ks", "east", 2, "west", 2);
  ring_ok(&ring, &cfg);
  for (uint32_t p = 0; p < 64; p++) {
    kv_preflist_t pl;
    kv_ring_preflist(&ring, ks, p, &pl);
    bool usable[KV_NODES_MAX];
    for (uint32_t k = 0; k < pl.count; k++) usable[k] = true;
    for (uint32_t i = 0; i < 4; i++) {
      int f = kv_preflist_fallback(&pl, i, usable);
      ck_assert_int_ge(f, 4);
      ck_assert_str_eq(region_of(pl.node[f]), region_of(pl.node[i]));
      ck_assert_uint_eq(pl.region[f], pl.region[i]);
      /* The first of its region past the primaries. */
      for (int k = 4; k < f; k++) ck_assert_str_ne(region_of(pl.node[k]), region_of(pl.node[i]));
    }
    /* Two spare nodes per region: a third dead primary's stand-in would have none. */
    int f = kv_preflist_fallback(&pl, 0, usable);
    usable[f] = false;
    int g = kv_preflist_fallback(&pl, 1, usable);
    ck_assert_int_gt(g, f);
    usable[g] = false;
    ck_assert_int_eq(kv_preflist_fallback(&pl, 0, usable), -1);
    ck_assert_int_ge(kv_preflist_fallback(&pl, 2, usable), 4); /* the other region's remain */
  }
}
END_TEST

/* Stand-ins: each dead primary, in order, takes the first live fallback of its region not yet
 * taken; live primaries and those left without one get -1. */
START_TEST(stand_ins_take_each_live_fallback_once) {
  cfg_reset(&cfg, 64);
  add_cluster(&cfg, 5, LOCAL, 1, 5);
  const kv_keyspace_conf_t *ks = add_keyspace(&cfg, "ks", "local", 3, NULL, 0);
  ring_ok(&ring, &cfg);
  for (uint32_t p = 0; p < 64; p++) {
    kv_preflist_t pl;
    kv_ring_preflist(&ring, ks, p, &pl);
    bool alive[KV_NODES_MAX];
    int in[KV_REPLICAS_MAX];
    for (uint32_t k = 0; k < pl.count; k++) alive[k] = true;
    ck_assert_uint_eq(kv_preflist_stand_ins(&pl, alive, in), 0);
    for (uint32_t i = 0; i < 3; i++) ck_assert_int_eq(in[i], -1);
    alive[0] = alive[2] = false;
    ck_assert_uint_eq(kv_preflist_stand_ins(&pl, alive, in), 2);
    ck_assert_int_eq(in[0], 3);
    ck_assert_int_eq(in[1], -1);
    ck_assert_int_eq(in[2], 4);
    alive[3] = false;
    ck_assert_uint_eq(kv_preflist_stand_ins(&pl, alive, in), 1);
    ck_assert_int_eq(in[0], 4);
    ck_assert_int_eq(in[2], -1);
    alive[1] = false;
    alive[3] = true;
    ck_assert_uint_eq(kv_preflist_stand_ins(&pl, alive, in), 2);
    ck_assert_int_eq(in[0], 3);
    ck_assert_int_eq(in[1], 4);
    ck_assert_int_eq(in[2], -1);
  }

  cfg_reset(&cfg, 64);
  add_cluster(&cfg, 8, EAST_WEST, 2, 2);
  ks = add_keyspace(&cfg, "ks", "east", 2, "west", 2);
  ring_ok(&ring, &cfg);
  for (uint32_t p = 0; p < 64; p++) {
    kv_preflist_t pl;
    kv_ring_preflist(&ring, ks, p, &pl);
    bool alive[KV_NODES_MAX];
    int in[KV_REPLICAS_MAX];
    for (uint32_t k = 0; k < pl.count; k++) alive[k] = true;
    alive[0] = alive[3] = false;
    ck_assert_uint_eq(kv_preflist_stand_ins(&pl, alive, in), 2);
    bool none[KV_NODES_MAX];
    for (uint32_t k = 0; k < pl.count; k++) none[k] = k >= pl.primary_count;
    ck_assert_int_eq(in[0], kv_preflist_fallback(&pl, 0, none));
    ck_assert_int_eq(in[3], kv_preflist_fallback(&pl, 3, none));
    ck_assert_str_eq(region_of(pl.node[in[0]]), "east");
    ck_assert_str_eq(region_of(pl.node[in[3]]), "west");
  }
}
END_TEST

START_TEST(too_many_replicas_in_a_region_are_refused) {
  cfg_reset(&cfg, 64);
  add_cluster(&cfg, 5, EAST_WEST, 2, 2);
  add_keyspace(&cfg, "fine", "east", 3, "west", 2);
  add_keyspace(&cfg, "big", "east", 1, "west", 3);
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_int_eq(kv_ring_init(&ring, &cfg, &st), KV_ECONFIG);
  ck_assert_str_eq(st.msg, "keyspace 'big': replication for region 'west' is 3, but the region has 2 nodes");

  cfg_reset(&cfg, 64);
  add_cluster(&cfg, 3, LOCAL, 1, 1);
  add_keyspace(&cfg, "elsewhere", "mars", 1, NULL, 0);
  kv_status_clear(&st);
  ck_assert_int_eq(kv_ring_init(&ring, &cfg, &st), KV_ECONFIG);
  ck_assert_str_eq(st.msg, "keyspace 'elsewhere': replication for region 'mars' is 1, but the region has 0 "
                   "nodes");
}
END_TEST


/* ---- membership changes (issue 19) ---------------------------------------------------- */

static kv_ring_t planned;

/* Plans ring -> members and checks the result's claim: owned only by members, each member's
 * count Q/S or Q/S + 1 (within 10% of the mean at Q = 256), and the moves the fewest those
 * counts allow (only partitions of leaving nodes or past a share move, and no member both
 * gains and loses). Returns how many partitions moved. */
static uint32_t plan_checked(const kv_ring_t *from, uint64_t members) {
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_int_eq(kv_ring_plan(from, members, &planned, &st), KV_OK);
  ck_assert_uint_eq(planned.epoch, from->epoch + 1);
  ck_assert_int_eq(planned.phase, KV_RING_HANDOFF);
  uint32_t q = from->partitions, s = (uint32_t)__builtin_popcountll(members);
  uint32_t before[KV_NODES_MAX] = {0}, after[KV_NODES_MAX] = {0}, moved = 0, gained = 0;
  for (uint32_t p = 0; p < q; p++) {
    before[from->to.owner[p]]++;
    after[planned.to.owner[p]]++;
    ck_assert(members >> planned.to.owner[p] & 1);
    moved += planned.to.owner[p] != from->to.owner[p];
  }
  for (uint32_t i = 0; i < from->node_count; i++) {
    if (!(members >> i & 1)) {
      ck_assert_uint_eq(after[i], 0);
      continue;
    }
    ck_assert_uint_ge(after[i], q / s);
    ck_assert_uint_le(after[i], q / s + 1);
    ck_assert_double_le(after[i] * (double)s, 1.1 * q);
    ck_assert_double_ge(after[i] * (double)s, 0.9 * q);
    if (after[i] > before[i]) gained += after[i] - before[i];
  }
  ck_assert_uint_eq(moved, gained);
  for (uint32_t p = 0; p < q; p++)
    if (planned.to.owner[p] != from->to.owner[p]) {
      uint32_t o = from->to.owner[p];
      ck_assert(!(members >> o & 1) || after[o] < before[o]);
    }
  return moved;
}

static void ring_members(uint32_t nodes, uint64_t members) {
  cfg_reset(&cfg, 256);
  add_cluster(&cfg, nodes, LOCAL, 1, 3);
  add_keyspace(&cfg, "ks", "local", 2, NULL, 0);
  kv_status_t st;
  ck_assert_int_eq(kv_ring_init_members(&ring, &cfg, members, &st), KV_OK);
}

START_TEST(join_two_to_three_moves_a_third) {
  ring_members(3, 0x3);
  ck_assert_uint_eq(plan_checked(&ring, 0x7), 85); /* 128, 128 -> 86, 85, 85 */
}
END_TEST

START_TEST(join_three_to_five_moves_two_fifths) {
  cfg_reset(&cfg, 256);
  add_cluster(&cfg, 5, LOCAL, 1, 3);
  add_keyspace(&cfg, "ks", "local", 3, NULL, 0);
  kv_status_t st;
  ck_assert_int_eq(kv_ring_init_members(&ring, &cfg, 0x7, &st), KV_OK);
  ck_assert_uint_eq(plan_checked(&ring, 0x1F), 102); /* 86, 85, 85 -> 52, 51, 51, 51, 51 */
}
END_TEST

START_TEST(leave_five_to_four_moves_the_leavers_share) {
  ring_members(5, 0x1F);
  ck_assert_uint_eq(plan_checked(&ring, 0x1F & ~0x4ull), 51); /* n02's 51 are spread */
}
END_TEST

START_TEST(replace_moves_exactly_the_replaced_nodes_share) {
  ring_members(4, 0x7);
  uint32_t n1 = 0;
  for (uint32_t p = 0; p < 256; p++) n1 += ring.to.owner[p] == 1;
  ck_assert_uint_eq(plan_checked(&ring, 0xD), n1); /* n01 out, n03 in */
  for (uint32_t p = 0; p < 256; p++)
    ck_assert_uint_eq(planned.to.owner[p], ring.to.owner[p] == 1 ? 3 : ring.to.owner[p]);
}
END_TEST

START_TEST(a_change_runs_handoff_then_flip_then_stable) {
  ring_members(3, 0x3);
  kv_ring_t *r = &ring2;
  *r = ring;
  kv_status_t st;
  ck_assert_int_eq(kv_ring_plan(&ring, 0x7, r, &st), KV_OK);
  ck_assert(kv_ring_moving(r));
  ck_assert(kv_ring_read_claim(r) == &r->from);
  ck_assert_uint_eq(r->sources, 0x3); /* n02 takes partitions from both */
  uint32_t moving = 0;
  for (uint32_t p = 0; p < 256; p++) {
    uint64_t sources, to = kv_ring_moving_to(r, p, &sources);
    if (!to) continue;
    moving++;
    ck_assert_uint_eq(to, 0x4);
    ck_assert_uint_eq(sources & 0x4, 0);
  }
  ck_assert_uint_gt(moving, 85); /* a moved partition changes the preflists of its neighbours */
  ck_assert(!kv_ring_advance(r));
  kv_ring_t other = *r;
  other.done = 0x1;
  ck_assert(!kv_ring_merge(r, &other, 2)); /* n01 done, n00 not yet */
  ck_assert_uint_eq(r->seen, 0x4);
  other.done = 0x2;
  ck_assert(kv_ring_merge(r, &other, 2));
  ck_assert_int_eq(r->phase, KV_RING_FLIPPED);
  ck_assert_uint_eq(r->epoch, 3);
  ck_assert(kv_ring_read_claim(r) == &r->to);
  ck_assert(kv_ring_moving(r));
  ck_assert_uint_eq(r->seen, 0x4);
  other = *r;
  other.seen = 0x3;
  ck_assert(kv_ring_merge(r, &other, 2));
  ck_assert_int_eq(r->phase, KV_RING_STABLE);
  ck_assert_uint_eq(r->epoch, 4);
  ck_assert_uint_eq(r->from.members, 0x7);
  ck_assert(!memcmp(r->from.owner, r->to.owner, 256));
  kv_ring_t old = ring;
  ck_assert(!kv_ring_merge(r, &old, 2)); /* an older ring changes nothing */
  ck_assert_uint_eq(r->epoch, 4);
}
END_TEST

START_TEST(encoded_rings_decode_to_the_same_ring) {
  ring_members(4, 0x7);
  kv_status_t st;
  ck_assert_int_eq(kv_ring_plan(&ring, 0xE, &planned, &st), KV_OK);
  planned.done = 0x2;
  planned.seen = 0x9;
  static uint8_t buf[KV_RING_ENCODED_BYTES_MAX];
  size_t len = kv_ring_encode(&planned, buf);
  ck_assert_uint_eq(len, 59 + 512);
  ck_assert_int_eq(kv_ring_decode(&ring, buf, len, &ring2, &st), KV_OK);
  ck_assert_uint_eq(ring2.epoch, planned.epoch);
  ck_assert_int_eq(ring2.phase, planned.phase);
  ck_assert_uint_eq(ring2.sources, planned.sources);
  ck_assert_uint_eq(ring2.done, 0x2);
  ck_assert_uint_eq(ring2.seen, 0x9);
  ck_assert_uint_eq(ring2.to.member_count, 3);
  ck_assert(!memcmp(ring2.from.owner, planned.from.owner, 256));
  ck_assert(!memcmp(ring2.to.owner, planned.to.owner, 256));

  ck_assert_int_eq(kv_ring_decode(&ring, buf, len - 1, &ring2, &st), KV_ECORRUPT);
  ck_assert_str_eq(st.msg, "a ring of 570 bytes is not one of this config's (256 partitions)");
  buf[59 + 256 + 7] = 0; /* a partition of `to` owned by n00, no member of it */
  ck_assert_int_eq(kv_ring_decode(&ring, buf, len, &ring2, &st), KV_ECORRUPT);
  ck_assert_str_eq(st.msg, "ring epoch 2 does not fit this config: a claim names a node that is "
                   "not one of its members");
}
END_TEST

START_TEST(plans_are_refused_with_a_sentence) {
  ring_members(4, 0x7);
  kv_status_t st;
  ck_assert_int_eq(kv_ring_plan(&ring, 0x7, &planned, &st), KV_EINVAL);
  ck_assert_str_eq(st.msg, "the ring already has exactly those members");
  ck_assert_int_eq(kv_ring_plan(&ring, 0x1, &planned, &st), KV_EINVAL);
  ck_assert_str_eq(st.msg, "keyspace 'ks': replication for region 'local' is 2, but the region "
                   "has 1 nodes");
  ck_assert_int_eq(kv_ring_plan(&ring, 0x17, &planned, &st), KV_EINVAL);
  ck_assert_str_eq(st.msg, "a ring's members must be some of the config's 4 nodes");
  ck_assert_int_eq(kv_ring_plan(&ring, 0xF, &planned, &st), KV_OK);
  ck_assert_int_eq(kv_ring_plan(&planned, 0x7, &ring2, &st), KV_EBUSY);
  ck_assert_str_eq(st.msg, "ring epoch 2 is still moving partitions; one membership change at a "
                   "time");
  ck_assert_int_eq(kv_ring_init_members(&ring, &cfg, 0, &st), KV_ECONFIG);
  ck_assert_str_eq(st.msg, "a ring's members must be some of the config's 4 nodes");
}
END_TEST

START_TEST(first_members_claim_as_a_config_of_only_them) {
  /* Spare nodes in the config change nothing about the members' ring. */
  ring_members(5, 0x7);
  kv_ring_t *spare = &ring2;
  *spare = ring;
  cfg_reset(&cfg2, 256);
  add_cluster(&cfg2, 3, LOCAL, 1, 3);
  const kv_keyspace_conf_t *ks = add_keyspace(&cfg2, "ks", "local", 2, NULL, 0);
  kv_status_t st;
  ck_assert_int_eq(kv_ring_init(&ring, &cfg2, &st), KV_OK);
  for (uint32_t p = 0; p < 256; p++) {
    kv_preflist_t a, b;
    kv_ring_preflist(&ring, ks, p, &a);
    kv_ring_preflist(spare, &cfg.keyspaces[0], p, &b);
    ck_assert_uint_eq(b.count, 3);
    ck_assert(!memcmp(a.node, b.node, 3));
  }
}
END_TEST

Suite *ring_suite(void) {
  Suite *s = suite_create("ring");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, same_config_gives_same_ring);
  tcase_add_test(tc, file_order_does_not_change_the_ring);
  tcase_add_test(tc, each_node_owns_its_share);
  tcase_add_test(tc, owner_is_the_claim_and_walks_meet_every_node);
  tcase_add_test(tc, first_ring_walks_round_the_claim_order_at_the_wrap);
  tcase_add_test(tc, preflist_holds_every_node_once);
  tcase_add_test(tc, each_region_gets_its_primaries);
  tcase_add_test(tc, two_regions_of_three_give_three_and_three);
  tcase_add_test(tc, other_regions_are_fallbacks_without_a_region);
  tcase_add_test(tc, three_racks_give_three_distinct_racks);
  tcase_add_test(tc, two_racks_both_hold_primaries);
  tcase_add_test(tc, neighbours_in_a_region_are_on_other_racks);
  tcase_add_test(tc, equal_racks_are_dealt_round_robin);
  tcase_add_test(tc, same_rack_name_in_two_regions_is_two_racks);
  tcase_add_test(tc, regions_alternate_around_the_ring);
  tcase_add_test(tc, first_primaries_spread_over_all_nodes);
  tcase_add_test(tc, is_primary_answers_for_primaries_only);
  tcase_add_test(tc, fallbacks_come_from_the_primarys_region_in_walk_order);
  tcase_add_test(tc, stand_ins_take_each_live_fallback_once);
  tcase_add_test(tc, too_many_replicas_in_a_region_are_refused);
  tcase_add_test(tc, join_two_to_three_moves_a_third);
  tcase_add_test(tc, join_three_to_five_moves_two_fifths);
  tcase_add_test(tc, leave_five_to_four_moves_the_leavers_share);
  tcase_add_test(tc, replace_moves_exactly_the_replaced_nodes_share);
  tcase_add_test(tc, a_change_runs_handoff_then_flip_then_stable);
  tcase_add_test(tc, encoded_rings_decode_to_the_same_ring);
  tcase_add_test(tc, plans_are_refused_with_a_sentence);
  tcase_add_test(tc, first_members_claim_as_a_config_of_only_them);
  suite_add_tcase(s, tc);
  return s;
}
