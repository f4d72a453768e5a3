/* check_exchange.c: anti-entropy exchanges (coordinator/exchange.h, with the trees and the
 * replica's side of aae.h) between two real cores on memory stores. n1 starts the exchanges
 * from its ticks; n2 answers them through kv_coord_on_peer_request; the test carries every
 * message and answer between them (fixture_cluster.h). n3 is down all along, so n1's only
 * exchange partner is n2, and with N=3 of 3 they share every partition. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture_cluster.h"
#include "hash.h"

#define T0 UINT64_C(1000000)
#define INTERVAL_MS 1000u
#define INTERVAL_US (INTERVAL_MS * 1000ull)

static fx_cluster_t cl;

static void setup(void) {
  fx_config(&cl, 3);
  cl.cfg.anti_entropy_interval_ms = INTERVAL_MS;
  fx_start(&cl, false, NULL);
  cl.down[2] = true;
}

static void teardown(void) { fx_stop(&cl); }

/* ---- helpers ------------------------------------------------------------------------ */

static void tick(uint64_t now_us) { kv_coord_on_tick(cl.nodes[0].coord, now_us); }

/* n1's first tick only starts the clock: the first round comes an interval later. Returns
 * the time of that round's tick (nothing is delivered). */
static uint64_t first_round(void) {
  tick(T0);
  ck_assert_uint_eq(cl.count, 0);
  tick(T0 + INTERVAL_US - 1);
  ck_assert_uint_eq(cl.count, 0);
  tick(T0 + INTERVAL_US);
  return T0 + INTERVAL_US;
}

/* The same record on n1 and n2 (written on n1, merged on n2 as a replica write would). */
/* Ends the round under way: the tick after its last exchange moves past n3 (down) and ends
 * it, so the tick after that can start the next one. */
static void end_round(uint64_t now_us) { tick(now_us); }

static void put_both(const char *key, const char *value) {
  uint8_t *rec;
  size_t bytes;
  fx_local_put(&cl, 0, key, value, &rec, &bytes);
  kv_status_t st;
  ck_assert_int_eq(kv_node_merge(cl.nodes[1].node, FX_KEYSPACE, (const uint8_t *)key,
                                 strlen(key), rec, bytes, &st), KV_OK);
  free(rec);
  ck_assert(fx_same_record(&cl, 0, 1, key));
}

static kv_aae_stats_t stats(void) {
  kv_aae_stats_t s;
  kv_coord_aae_stats(cl.nodes[0].coord, 1, &s);
  return s;
}

static uint64_t key_hash(const char *key) {
  return kv_hash_key(FX_KEYSPACE, key, strlen(key));
}

static uint32_t partition_of(const char *key) {
  return kv_hash_partition(key_hash(key), cl.cfg.partitions);
}

/* ---- tests -------------------------------------------------------------------------- */

START_TEST(identical_replicas_exchange_nothing_past_the_roots) {
  put_both("a", "1");
  put_both("b", "2");
  put_both("c", "3");
  ck_assert(fx_roots_equal(&cl, 0, 1));
  uint64_t now = first_round();
  ck_assert_uint_eq(fx_run(&cl, now), 1);
  ck_assert_uint_eq(cl.trees[KV_AAE_ASK_ROOTS], 1);
  ck_assert_uint_eq(cl.trees[KV_AAE_ASK_SEGMENTS], 0);
  ck_assert_uint_eq(cl.trees[KV_AAE_ASK_KEYS], 0);
  ck_assert_uint_eq(cl.sent[KV_MSG_READ], 0);
  ck_assert_uint_eq(cl.sent[KV_MSG_WRITE], 0);
  kv_aae_stats_t s = stats();
  ck_assert_uint_eq(s.exchanges, 1);
  ck_assert_uint_eq(s.failed, 0);
  ck_assert_uint_eq(s.keys_repaired, 0);
  ck_assert_uint_eq(s.last_us, now);
  /* n3, believed down, was asked nothing. */
  kv_aae_stats_t n3;
  kv_coord_aae_stats(cl.nodes[0].coord, 2, &n3);
  ck_assert_uint_eq(n3.exchanges + n3.failed, 0);
}
END_TEST

START_TEST(differing_replicas_converge) {
  put_both("same", "s");
  fx_local_put(&cl, 0, "only-n1", "x", NULL, NULL);
  fx_local_put(&cl, 1, "only-n2", "y", NULL, NULL);
  fx_local_put(&cl, 0, "both", "from-n1", NULL, NULL);
  fx_local_put(&cl, 1, "both", "from-n2", NULL, NULL);
  ck_assert(!fx_roots_equal(&cl, 0, 1));
  uint64_t now = first_round();
  fx_run(&cl, now);
  const char *keys[] = {"same", "only-n1", "only-n2", "both"};
  for (uint32_t i = 0; i < 4; i++)
    ck_assert_msg(fx_same_record(&cl, 0, 1, keys[i]), "%s differs after the exchange", keys[i]);
  ck_assert(fx_roots_equal(&cl, 0, 1));
  /* The concurrent versions of "both" were merged, not one chosen. */
  uint32_t live;
  ck_assert_uint_eq(fx_siblings(&cl, 0, "both", &live), 2);
  ck_assert_uint_eq(live, 2);
  ck_assert_uint_eq(fx_siblings(&cl, 1, "only-n1", NULL), 1);
  ck_assert_uint_eq(fx_siblings(&cl, 0, "only-n2", NULL), 1);
  /* Only the partitions that differ are looked into: the segments of each, then its keys.
   * n2 lacks only-n1 (sent our record); n1 lacks only-n2 (read theirs); both differ on
   * "both" (read theirs, merged, and the merge sent back). */
  uint32_t parts[3] = {partition_of("only-n1"), partition_of("only-n2"), partition_of("both")};
  uint32_t distinct = 1 + (parts[1] != parts[0]) + (parts[2] != parts[0] && parts[2] != parts[1]);
  ck_assert_uint_eq(cl.trees[KV_AAE_ASK_ROOTS], 1);
  ck_assert_uint_eq(cl.trees[KV_AAE_ASK_SEGMENTS], distinct);
  ck_assert_uint_eq(cl.trees[KV_AAE_ASK_KEYS], distinct);
  ck_assert_uint_eq(cl.sent[KV_MSG_READ], 2);
  ck_assert_uint_eq(cl.sent[KV_MSG_WRITE], 2);
  kv_aae_stats_t s = stats();
  ck_assert_uint_eq(s.exchanges, 1);
  ck_assert_uint_eq(s.failed, 0);
  ck_assert_uint_eq(s.keys_repaired, 3);
  ck_assert_uint_eq(s.last_repaired, 3);
  /* The next round finds nothing to do past the roots. */
  end_round(now);
  tick(now + INTERVAL_US);
  fx_run(&cl, now + INTERVAL_US);
  ck_assert_uint_eq(cl.trees[KV_AAE_ASK_ROOTS], 2);
  ck_assert_uint_eq(cl.trees[KV_AAE_ASK_SEGMENTS], distinct);
  s = stats();
  ck_assert_uint_eq(s.exchanges, 2);
  ck_assert_uint_eq(s.keys_repaired, 3);
  ck_assert_uint_eq(s.last_repaired, 0);
}
END_TEST

/* Puts KEYS keys of partition 0 on n1 alone, each in one of the first seg_limit segments;
 * returns how many segments they fall in. */
enum { KEYS = 100 };
static char keys[KEYS][16];

static uint32_t keys_only_on_n1(uint32_t seg_limit) {
  static bool seg_used[KV_AAE_SEGMENTS];
  memset(seg_used, 0, sizeof seg_used);
  uint32_t segs = 0;
  for (uint32_t i = 0, n = 0; n < KEYS; i++) {
    ck_assert_uint_lt(i, 10000000);
    char key[16];
    snprintf(key, sizeof key, "key%u", i);
    uint32_t seg = kv_hash_segment(key_hash(key));
    if (partition_of(key) != 0 || seg >= seg_limit) continue;
    snprintf(keys[n++], sizeof keys[0], "%s", key);
    fx_local_put(&cl, 0, key, "v", NULL, NULL);
    if (!seg_used[seg]) segs++;
    seg_used[seg] = true;
  }
  return segs;
}

/* Delivers everything, one message at a time; returns the most messages queued at once. */
static uint32_t run_counting(uint64_t now) {
  uint32_t queued_max = cl.count;
  while (fx_step(&cl, now))
    if (cl.count > queued_max) queued_max = cl.count;
  return queued_max;
}

static void all_repaired(void) {
  ck_assert_uint_eq(cl.sent[KV_MSG_WRITE], KEYS);
  ck_assert_uint_eq(cl.sent[KV_MSG_READ], 0);
  for (uint32_t i = 0; i < KEYS; i++) ck_assert(fx_same_record(&cl, 0, 1, keys[i]));
  ck_assert(fx_roots_equal(&cl, 0, 1));
  ck_assert_uint_eq(stats().keys_repaired, KEYS);
  ck_assert_uint_eq(stats().failed, 0);
}

/* Differing keys in more than KV_AAE_KEYS_SEGMENTS_MAX segments of one partition are asked
 * for in batches of that many segments. */
START_TEST(keys_are_asked_for_in_batches_of_segments) {
  uint32_t segs = keys_only_on_n1(KV_AAE_SEGMENTS);
  ck_assert_uint_gt(segs, KV_AAE_KEYS_SEGMENTS_MAX);
  run_counting(first_round());
  ck_assert_uint_eq(cl.trees[KV_AAE_ASK_SEGMENTS], 1);
  ck_assert_uint_eq(cl.trees[KV_AAE_ASK_KEYS],
                    (segs + KV_AAE_KEYS_SEGMENTS_MAX - 1) / KV_AAE_KEYS_SEGMENTS_MAX);
  all_repaired();
}
END_TEST

/* More differing keys in one batch than KV_AAE_REPAIRS_IN_FLIGHT: that many wait at once. */
START_TEST(repairs_in_flight_are_bounded) {
  uint32_t segs = keys_only_on_n1(KV_AAE_KEYS_SEGMENTS_MAX / 2);
  ck_assert_uint_le(segs, KV_AAE_KEYS_SEGMENTS_MAX);
  ck_assert_uint_eq(run_counting(first_round()), KV_AAE_REPAIRS_IN_FLIGHT);
  ck_assert_uint_eq(cl.trees[KV_AAE_ASK_KEYS], 1);
  all_repaired();
}
END_TEST

START_TEST(a_silent_or_failing_peer_fails_the_exchange_until_a_later_round) {
  fx_local_put(&cl, 0, "k", "v", NULL, NULL);
  uint64_t now = first_round();
  /* The ROOTS request is lost: the exchange waits out its deadline, then fails. */
  ck_assert_uint_eq(fx_drop_to(&cl, 1), 1);
  tick(now + KV_TIMEOUT_MS_DEFAULT * 1000ull - 1);
  ck_assert_uint_eq(stats().failed, 0);
  now += KV_TIMEOUT_MS_DEFAULT * 1000ull;
  tick(now);
  ck_assert_uint_eq(stats().failed, 1);
  ck_assert_uint_eq(stats().exchanges, 0);
  /* The peer answers with an error (it is down by the time the request arrives): failed. */
  now += INTERVAL_US;
  tick(now);
  ck_assert_uint_eq(cl.count, 1);
  cl.down[1] = true;
  fx_run(&cl, now);
  cl.down[1] = false;
  ck_assert_uint_eq(stats().failed, 2);
  ck_assert(!fx_same_record(&cl, 0, 1, "k"));
  end_round(now);
  /* A later round goes through. */
  now += INTERVAL_US;
  tick(now);
  fx_run(&cl, now);
  kv_aae_stats_t s = stats();
  ck_assert_uint_eq(s.exchanges, 1);
  ck_assert_uint_eq(s.failed, 2);
  ck_assert_uint_eq(s.keys_repaired, 1);
  ck_assert(fx_same_record(&cl, 0, 1, "k"));
}
END_TEST

/* Every answer delivered twice, as a network that duplicates would: each step and each
 * repair is taken once. */
START_TEST(duplicated_answers_are_ignored) {
  fx_local_put(&cl, 0, "only-n1", "x", NULL, NULL);
  fx_local_put(&cl, 0, "both", "from-n1", NULL, NULL);
  fx_local_put(&cl, 1, "both", "from-n2", NULL, NULL);
  uint64_t now = first_round();
  fx_msg_t *q;
  while ((q = fx_take(&cl)) != NULL) {
    ck_assert_uint_eq(q->to, 1);
    kv_peer_result_t r;
    kv_coord_on_peer_request(cl.nodes[1].coord, &q->m, now, FX_WALL_MS, NULL, NULL, &r);
    ck_assert_int_eq(r.code, KV_OK);
    kv_msg_answer_t a = {.id = q->m.id, .code = KV_OK, .rec = r.rec, .rec_bytes = r.rec_bytes,
                         .tree = q->m.kind == KV_MSG_TREE ? &r.tree : NULL};
    kv_coord_on_peer_reply(cl.nodes[0].coord, &a, now);
    kv_coord_on_peer_reply(cl.nodes[0].coord, &a, now);
    kv_peer_result_deinit(&r);
    fx_msg_free(q);
  }
  ck_assert(fx_same_record(&cl, 0, 1, "only-n1"));
  ck_assert(fx_same_record(&cl, 0, 1, "both"));
  uint32_t distinct = 1 + (partition_of("only-n1") != partition_of("both"));
  ck_assert_uint_eq(cl.trees[KV_AAE_ASK_ROOTS], 1);
  ck_assert_uint_eq(cl.trees[KV_AAE_ASK_SEGMENTS], distinct);
  ck_assert_uint_eq(cl.trees[KV_AAE_ASK_KEYS], distinct);
  ck_assert_uint_eq(cl.sent[KV_MSG_READ], 1);
  ck_assert_uint_eq(cl.sent[KV_MSG_WRITE], 2);
  kv_aae_stats_t s = stats();
  ck_assert_uint_eq(s.exchanges, 1);
  ck_assert_uint_eq(s.failed, 0);
  ck_assert_uint_eq(s.keys_repaired, 2);
}
END_TEST

/* Delivers every message to n2 and its answers back, with the first key of each KEYS answer
 * replaced by bad. */
static void run_listing(kv_aae_key_t bad, uint64_t now) {
  fx_msg_t *q;
  while ((q = fx_take(&cl)) != NULL) {
    kv_peer_result_t r;
    kv_coord_on_peer_request(cl.nodes[1].coord, &q->m, now, FX_WALL_MS, NULL, NULL, &r);
    ck_assert_int_eq(r.code, KV_OK);
    kv_aae_answer_t tree = r.tree;
    if (q->m.kind == KV_MSG_TREE && q->m.tree.kind == KV_AAE_ASK_KEYS) {
      ck_assert_uint_eq(tree.key_count, 1);
      tree.keys = &bad;
    }
    kv_msg_answer_t a = {.id = q->m.id, .code = KV_OK, .rec = r.rec, .rec_bytes = r.rec_bytes,
                         .tree = q->m.kind == KV_MSG_TREE ? &tree : NULL};
    kv_coord_on_peer_reply(cl.nodes[0].coord, &a, now);
    kv_peer_result_deinit(&r);
    fx_msg_free(q);
  }
}

/* A peer listing a key no store can hold (tests/fuzz/corpus/exchange/crash-keys-empty-key:
 * an empty one was read and merged here) fails the exchange before any repair. */
START_TEST(a_key_out_of_bounds_in_a_keys_answer_fails_the_exchange) {
  fx_local_put(&cl, 1, "k", "v", NULL, NULL);
  uint64_t now = first_round();
  run_listing((kv_aae_key_t){NULL, 0}, now);
  ck_assert_uint_eq(stats().failed, 1);
  ck_assert_uint_eq(cl.sent[KV_MSG_READ], 0);
  end_round(now);
  now += INTERVAL_US;
  tick(now);
  uint8_t *long_key = calloc(KV_KEY_BYTES_HARD_MAX + 1, 1);
  ck_assert_ptr_nonnull(long_key);
  run_listing((kv_aae_key_t){long_key, KV_KEY_BYTES_HARD_MAX + 1}, now);
  free(long_key);
  ck_assert_uint_eq(stats().failed, 2);
  ck_assert_uint_eq(cl.sent[KV_MSG_READ], 0);
  ck_assert_uint_eq(stats().exchanges, 0);
  ck_assert(!fx_same_record(&cl, 0, 1, "k"));
}
END_TEST

Suite *exchange_suite(void) {
  Suite *s = suite_create("exchange");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, identical_replicas_exchange_nothing_past_the_roots);
  tcase_add_test(tc, differing_replicas_converge);
  tcase_add_test(tc, keys_are_asked_for_in_batches_of_segments);
  tcase_add_test(tc, repairs_in_flight_are_bounded);
  tcase_add_test(tc, a_silent_or_failing_peer_fails_the_exchange_until_a_later_round);
  tcase_add_test(tc, duplicated_answers_are_ignored);
  tcase_add_test(tc, a_key_out_of_bounds_in_a_keys_answer_fails_the_exchange);
  suite_add_tcase(s, tc);
  return s;
}
