/* check_reaper.c: tombstone reaping (coordinator/reaper.h) across three real cores on memory
 * stores. n1 coordinates every write and delete and runs the reaper from its ticks; n2 and
 * n3 answer as replicas; the test carries the messages (fixture_cluster.h) and so chooses
 * when each replica acknowledges. A record is reaped when it is gone from a replica's store
 * (the memory store's removal hook counts each removal). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture_cluster.h"
#include "hash.h"

#define T0 UINT64_C(1000000)
#define GRACE_MS 1000u
#define GRACE_US (GRACE_MS * 1000ull)
#define TIMEOUT_US (KV_TIMEOUT_MS_DEFAULT * 1000ull) /* a write's deadline */

static fx_cluster_t cl;
static int calls[8];
#define CALL(i) ((void *)&calls[i])

static void setup(void) {
  fx_config(&cl, 3);
  cl.cfg.tombstone_grace_ms = GRACE_MS;
  fx_start(&cl, false, NULL);
}

static void teardown(void) { fx_stop(&cl); }

/* ---- helpers ------------------------------------------------------------------------ */

static void tick(uint64_t now_us) { kv_coord_on_tick(cl.nodes[0].coord, now_us); }

static kv_reap_stats_t stats(void) {
  kv_reap_stats_t s;
  kv_coord_reap_stats(cl.nodes[0].coord, &s);
  return s;
}

/* A put of key through n1 that every replica acknowledged at now_us. */
static void put_everywhere(void *call, const char *key, const char *value, const uint8_t *ctx,
                           size_t ctx_bytes, uint64_t now_us) {
  fx_client(&cl, 0, call, KV_OP_PUT, key, value, ctx, ctx_bytes, now_us);
  fx_run(&cl, now_us);
  ck_assert_int_eq(fx_reply(&cl, call)->code, KV_OK);
}

/* Starts a delete of key through n1 with the context of reply `seen`; nothing is delivered. */
static void delete_start(void *call, const fx_reply_t *seen, const char *key, uint64_t now_us) {
  fx_client(&cl, 0, call, KV_OP_DELETE, key, NULL, seen->context, seen->context_bytes, now_us);
}

/* Whether every node holds key as a tombstone alone. */
static bool tombstone_everywhere(const char *key) {
  for (uint32_t i = 0; i < 3; i++) {
    uint32_t live;
    if (fx_siblings(&cl, i, key, &live) != 1 || live != 0) return false;
  }
  return true;
}

/* Whether node's disk holds key as of its last sync (what a power loss would leave) as its
 * record now. */
static bool durable(uint32_t node, const char *key) {
  char disk[8];
  snprintf(disk, sizeof disk, "n%u", node + 1);
  uint32_t partition =
      kv_hash_partition(kv_hash_key(FX_KEYSPACE, key, strlen(key)), cl.cfg.partitions);
  uint8_t *on_disk;
  size_t disk_bytes, live_bytes;
  sim_disk_durable_get(disk, partition, FX_KEYSPACE, key, strlen(key), &on_disk, &disk_bytes);
  uint8_t *live = fx_record(&cl, node, key, &live_bytes);
  bool same = on_disk && live && disk_bytes == live_bytes &&
              memcmp(on_disk, live, disk_bytes) == 0;
  free(on_disk);
  free(live);
  return same;
}

static bool gone_from(uint32_t node, const char *key) {
  size_t bytes;
  uint8_t *rec = fx_record(&cl, node, key, &bytes);
  free(rec);
  return rec == NULL;
}

/* A value put and deleted through n1, every replica acknowledging both at now_us. */
static void put_and_delete(const char *key, uint64_t now_us) {
  put_everywhere(CALL(0), key, "v", NULL, 0, now_us);
  delete_start(CALL(1), fx_reply(&cl, CALL(0)), key, now_us);
  fx_run(&cl, now_us);
  ck_assert_int_eq(fx_reply(&cl, CALL(1))->code, KV_OK);
  ck_assert(tombstone_everywhere(key));
}

/* ---- tests -------------------------------------------------------------------------- */

START_TEST(a_tombstone_is_reaped_after_the_grace_period) {
  put_and_delete("k", T0);
  tick(T0 + 1);
  ck_assert_uint_eq(stats().waiting, 1);
  /* Within the grace period nothing is even read. */
  tick(T0 + GRACE_US - 1);
  ck_assert_uint_eq(cl.count, 0);
  ck_assert(tombstone_everywhere("k"));
  ck_assert_uint_eq(stats().waiting, 1);
  /* Past it: read on every primary, hints forgotten everywhere, removed from every primary. */
  uint32_t reads = cl.sent[KV_MSG_READ];
  tick(T0 + GRACE_US);
  ck_assert_uint_eq(cl.sent[KV_MSG_READ], reads + 2);
  fx_run(&cl, T0 + GRACE_US);
  ck_assert_uint_eq(cl.sent[KV_MSG_REAP], 4); /* a forget and a remove to each other node */
  kv_reap_stats_t s = stats();
  ck_assert_uint_eq(s.reaped, 1);
  ck_assert_uint_eq(s.kept, 0);
  for (uint32_t i = 0; i < 3; i++) {
    ck_assert_msg(gone_from(i, "k"), "n%u still holds the tombstone", i + 1);
    ck_assert_uint_eq(cl.nodes[i].removed, 1);
  }
  tick(T0 + GRACE_US + 1);
  ck_assert_uint_eq(stats().waiting, 0);
  /* A put after the reap starts the key afresh. */
  put_everywhere(CALL(2), "k", "again", NULL, 0, T0 + GRACE_US + 2);
  ck_assert_uint_eq(fx_siblings(&cl, 1, "k", NULL), 1);
}
END_TEST

/* The grace period runs from the last replica's acknowledgement, not from the delete. */
START_TEST(a_tombstone_waits_for_every_replica_to_acknowledge_it) {
  put_everywhere(CALL(0), "k", "v", NULL, 0, T0);
  delete_start(CALL(1), fx_reply(&cl, CALL(0)), "k", T0);
  /* n3's copy of the delete is held back; n2's makes the quorum. */
  fx_msg_t *held = NULL, *q;
  uint32_t pending = cl.count;
  for (uint32_t k = 0; k < pending; k++) {
    q = fx_take(&cl);
    if (q->to == 2) held = q;
    else fx_deliver(&cl, q, T0);
  }
  ck_assert_ptr_nonnull(held);
  ck_assert_int_eq(fx_reply(&cl, CALL(1))->code, KV_OK);
  /* Past the grace period counted from the delete, but n3 has not acknowledged it. */
  uint32_t reads = cl.sent[KV_MSG_READ];
  tick(T0 + GRACE_US + 1000);
  ck_assert_uint_eq(stats().waiting, 0);
  ck_assert_uint_eq(cl.count, 0);
  ck_assert_uint_eq(cl.sent[KV_MSG_READ], reads);
  /* n3 acknowledges, before the write's deadline: the grace period starts now. */
  uint64_t acked = T0 + TIMEOUT_US - 1000;
  fx_deliver(&cl, held, acked);
  ck_assert(tombstone_everywhere("k"));
  tick(acked + GRACE_US - 1);
  ck_assert_uint_eq(stats().waiting, 1);
  ck_assert_uint_eq(cl.count, 0);
  tick(acked + GRACE_US);
  fx_run(&cl, acked + GRACE_US);
  ck_assert_uint_eq(stats().reaped, 1);
  for (uint32_t i = 0; i < 3; i++) ck_assert(gone_from(i, "k"));
}
END_TEST

START_TEST(a_tombstone_a_replica_never_acknowledged_is_not_reaped) {
  put_everywhere(CALL(0), "k", "v", NULL, 0, T0);
  delete_start(CALL(1), fx_reply(&cl, CALL(0)), "k", T0);
  /* n3 is down: its copy of the delete fails. */
  cl.down[2] = true;
  fx_run(&cl, T0);
  ck_assert_int_eq(fx_reply(&cl, CALL(1))->code, KV_OK);
  /* The write ends at its deadline with a hint for n3 and nothing queued for reaping. */
  tick(T0 + TIMEOUT_US);
  kv_hint_stats_t hs;
  kv_coord_hint_stats(cl.nodes[0].coord, 2, &hs);
  ck_assert_uint_eq(hs.pending, 1);
  ck_assert_uint_eq(stats().waiting, 0);
  /* n3 comes back and gets the tombstone by handoff; long past the grace period, the
   * tombstone is still everywhere: no delete of it was acknowledged by every replica. */
  cl.down[2] = false;
  uint32_t reads = cl.sent[KV_MSG_READ];
  for (uint64_t t = T0 + TIMEOUT_US + 1; t < T0 + TIMEOUT_US + 3 * GRACE_US; t += 100000) {
    tick(t);
    fx_run(&cl, t);
  }
  kv_coord_hint_stats(cl.nodes[0].coord, 2, &hs);
  ck_assert_uint_eq(hs.delivered, 1);
  ck_assert(tombstone_everywhere("k"));
  ck_assert_uint_eq(cl.sent[KV_MSG_READ], reads);
  ck_assert_uint_eq(cl.sent[KV_MSG_REAP], 0);
  kv_reap_stats_t s = stats();
  ck_assert_uint_eq(s.reaped + s.kept + s.waiting, 0);
  for (uint32_t i = 0; i < 3; i++) ck_assert_uint_eq(cl.nodes[i].removed, 0);
}
END_TEST

START_TEST(a_tombstone_covered_by_a_newer_write_is_not_reaped) {
  put_and_delete("k", T0);
  /* A put with the delete's context: it replaces the tombstone on every replica. */
  put_everywhere(CALL(2), "k", "newer", fx_reply(&cl, CALL(1))->context,
                 fx_reply(&cl, CALL(1))->context_bytes, T0 + 1000);
  for (uint32_t i = 0; i < 3; i++) {
    uint32_t live;
    ck_assert_uint_eq(fx_siblings(&cl, i, "k", &live), 1);
    ck_assert_uint_eq(live, 1);
  }
  tick(T0 + GRACE_US);
  fx_run(&cl, T0 + GRACE_US);
  kv_reap_stats_t s = stats();
  ck_assert_uint_eq(s.reaped, 0);
  ck_assert_uint_eq(s.kept, 1);
  ck_assert_uint_eq(cl.sent[KV_MSG_REAP], 0);
  for (uint32_t i = 0; i < 3; i++) {
    uint32_t live;
    ck_assert_uint_eq(fx_siblings(&cl, i, "k", &live), 1);
    ck_assert_uint_eq(live, 1);
    ck_assert_uint_eq(cl.nodes[i].removed, 0);
  }
}
END_TEST

/* A write that lands on one replica after the reaper read it: that replica keeps it, the
 * others reap (read repair or anti-entropy spread it back). */
START_TEST(a_write_landing_during_the_reap_survives_it) {
  put_and_delete("k", T0);
  tick(T0 + GRACE_US);
  ck_assert(fx_step(&cl, T0 + GRACE_US)); /* the reads */
  ck_assert(fx_step(&cl, T0 + GRACE_US));
  fx_local_put(&cl, 1, "k", "landed", NULL, NULL);
  fx_run(&cl, T0 + GRACE_US);
  kv_reap_stats_t s = stats();
  ck_assert_uint_eq(s.reaped, 0);
  ck_assert_uint_eq(s.kept, 1);
  ck_assert(gone_from(0, "k"));
  ck_assert(gone_from(2, "k"));
  uint32_t live;
  ck_assert_uint_eq(fx_siblings(&cl, 1, "k", &live), 2);
  ck_assert_uint_eq(live, 1);
  ck_assert_uint_eq(cl.nodes[1].removed, 0);
}
END_TEST

START_TEST(replicas_holding_different_records_are_not_reaped) {
  put_and_delete("k", T0);
  /* n3 holds another version beside the tombstone (a write only it took). */
  fx_local_put(&cl, 2, "k", "other", NULL, NULL);
  tick(T0 + GRACE_US);
  fx_run(&cl, T0 + GRACE_US);
  ck_assert_uint_eq(stats().kept, 1);
  ck_assert_uint_eq(cl.sent[KV_MSG_REAP], 0);
  for (uint32_t i = 0; i < 3; i++) {
    ck_assert(!gone_from(i, "k"));
    ck_assert_uint_eq(cl.nodes[i].removed, 0);
  }
}
END_TEST

/* A node believed down could hold hints of the key and could not forget them: the key is
 * kept, without asking anyone, and waits for another delete. */
START_TEST(a_node_believed_down_keeps_the_tombstone) {
  put_and_delete("k", T0);
  cl.down[2] = true;
  uint32_t reads = cl.sent[KV_MSG_READ];
  tick(T0 + GRACE_US);
  ck_assert_uint_eq(cl.count, 0);
  ck_assert_uint_eq(cl.sent[KV_MSG_READ], reads);
  ck_assert_uint_eq(stats().kept, 1);
  cl.down[2] = false;
  tick(T0 + 2 * GRACE_US);
  ck_assert_uint_eq(cl.count, 0);
  ck_assert(tombstone_everywhere("k"));
  ck_assert_uint_eq(stats().waiting, 0);
}
END_TEST

/* No primary removes its tombstone before every node's forget is on disk, n1's own too; so
 * every primary's tombstone is durable by then (a power loss cannot take one back after
 * another primary reaped its own). */
START_TEST(the_removal_waits_for_the_forgets_to_be_synced) {
  put_and_delete("k", T0);
  uint64_t now = T0 + GRACE_US;
  tick(now);
  while (fx_step(&cl, now)) {} /* reads, then the forgets (answered after n2's, n3's fsync) */
  ck_assert_uint_eq(cl.sent[KV_MSG_REAP], 2);
  ck_assert(cl.nodes[0].sync_wanted);
  ck_assert(tombstone_everywhere("k"));
  ck_assert(!durable(0, "k")); /* the delete was not durable */
  ck_assert(durable(1, "k"));
  ck_assert(durable(2, "k"));
  ck_assert_uint_eq(stats().reaped, 0);
  fx_sync(&cl, 0, now); /* n1's forget is synced: the removals go */
  ck_assert(gone_from(0, "k"));
  ck_assert_uint_eq(cl.sent[KV_MSG_REAP], 4);
  fx_run(&cl, now);
  ck_assert_uint_eq(stats().reaped, 1);
  for (uint32_t i = 0; i < 3; i++) ck_assert(gone_from(i, "k"));
}
END_TEST

Suite *reaper_suite(void) {
  Suite *s = suite_create("reaper");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, a_tombstone_is_reaped_after_the_grace_period);
  tcase_add_test(tc, a_tombstone_waits_for_every_replica_to_acknowledge_it);
  tcase_add_test(tc, a_tombstone_a_replica_never_acknowledged_is_not_reaped);
  tcase_add_test(tc, a_tombstone_covered_by_a_newer_write_is_not_reaped);
  tcase_add_test(tc, a_write_landing_during_the_reap_survives_it);
  tcase_add_test(tc, replicas_holding_different_records_are_not_reaped);
  tcase_add_test(tc, a_node_believed_down_keeps_the_tombstone);
  tcase_add_test(tc, the_removal_waits_for_the_forgets_to_be_synced);
  suite_add_tcase(s, tc);
  return s;
}
