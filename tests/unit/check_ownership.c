/* check_ownership.c: membership changes in the core (coordinator/ownership.h) across four
 * real cores on memory stores: n4 joins n1..n3. The test carries the messages
 * (fixture_cluster.h) and ticks every core, so the ring goes through handoff, flip and
 * settling by the cores' own gossip and streams; it checks what each step leaves on the nodes:
 * the new owner holds every record it is a new primary of, a request under an older epoch is
 * refused with the ring, and a node's ring outlives its process. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture_cluster.h"
#include "hash.h"

#define T0 UINT64_C(1000000)
#define STEP_US UINT64_C(50000)
#define KEYS 24u

static fx_cluster_t cl;
static int calls[KEYS];

static void setup(void) {
  fx_config(&cl, 4);
  cl.members = 0x7; /* n4 is a spare */
  fx_start(&cl, false, NULL);
}

static void teardown(void) { fx_stop(&cl); }

static const kv_ring_t *ring_of(uint32_t i) { return kv_coord_ring(cl.nodes[i].coord); }

static const char *key_of(uint32_t k) {
  static char keys[KEYS][8];
  snprintf(keys[k], sizeof keys[k], "k%u", k);
  return keys[k];
}

/* Ticks every node and carries the messages, STEP_US at a time, until every ring is STABLE at
 * epoch `epoch` or `steps` steps have gone by; returns the time reached. */
static uint64_t run_until_epoch(uint64_t now_us, uint64_t epoch, uint32_t steps) {
  for (uint32_t s = 0; s < steps; s++) {
    bool settled = true;
    for (uint32_t i = 0; i < 4; i++)
      settled = settled && ring_of(i)->epoch == epoch && ring_of(i)->phase == KV_RING_STABLE;
    if (settled) return now_us;
    now_us += STEP_US;
    for (uint32_t i = 0; i < 4; i++) kv_coord_on_tick(cl.nodes[i].coord, now_us);
    fx_run(&cl, now_us);
  }
  return now_us;
}

/* Whether node i is a primary of key under its ring. */
static bool primary_of(uint32_t i, const char *key) {
  const kv_ring_t *r = ring_of(i);
  kv_preflist_t pl;
  uint32_t p = kv_hash_partition(kv_hash_key(FX_KEYSPACE, (const uint8_t *)key, strlen(key)),
                                 r->partitions);
  kv_ring_preflist(r, &cl.cfg.keyspaces[0], p, &pl);
  return kv_preflist_is_primary(&pl, i);
}

START_TEST(a_join_streams_flips_and_settles) {
  for (uint32_t k = 0; k < KEYS; k++) {
    fx_client(&cl, 0, &calls[k], KV_OP_PUT, key_of(k), "v", NULL, 0, T0);
    fx_run(&cl, T0);
    ck_assert_int_eq(fx_reply(&cl, &calls[k])->code, KV_OK);
  }
  size_t bytes;
  for (uint32_t k = 0; k < KEYS; k++) ck_assert_ptr_null(fx_record(&cl, 3, key_of(k), &bytes));
  kv_status_t st;
  ck_assert_int_eq(kv_coord_ring_change(cl.nodes[0].coord, 0xF, T0, &st), KV_OK);
  ck_assert_uint_eq(ring_of(0)->epoch, 2);
  ck_assert_int_eq(ring_of(0)->phase, KV_RING_HANDOFF);
  ck_assert_int_eq(kv_coord_ring_change(cl.nodes[0].coord, 0x7, T0, &st), KV_EBUSY);
  ck_assert_str_eq(st.msg, "ring epoch 2 is still moving partitions; one membership change at a "
                   "time");
  uint64_t now = run_until_epoch(T0, 4, 400);
  for (uint32_t i = 0; i < 4; i++) {
    ck_assert_uint_eq(ring_of(i)->epoch, 4);
    ck_assert_int_eq(ring_of(i)->phase, KV_RING_STABLE);
    ck_assert_uint_eq(ring_of(i)->to.members, 0xF);
  }
  ck_assert_uint_gt(cl.sent[KV_MSG_RING], 0);
  uint32_t moved = 0;
  for (uint32_t k = 0; k < KEYS; k++) {
    uint8_t *rec = fx_record(&cl, 3, key_of(k), &bytes);
    if (primary_of(3, key_of(k))) {
      ck_assert_ptr_nonnull(rec); /* streamed before the flip */
      moved++;
    }
    free(rec);
  }
  ck_assert_uint_gt(moved, 0);
  /* Every key still reads back at QUORUM from the new owners, through the new node too. */
  for (uint32_t k = 0; k < KEYS; k++) {
    fx_client(&cl, 3, &calls[k], KV_OP_GET, key_of(k), NULL, NULL, 0, now);
    fx_run(&cl, now);
    const fx_reply_t *r = fx_reply(&cl, &calls[k]);
    ck_assert_int_eq(r->code, KV_OK);
    ck_assert(r->found);
  }
}
END_TEST

START_TEST(a_stale_request_is_refused_with_the_ring) {
  kv_status_t st;
  ck_assert_int_eq(kv_coord_ring_change(cl.nodes[0].coord, 0xF, T0, &st), KV_OK);
  kv_msg_t m = kv_msg_read(42, FX_KEYSPACE, (const uint8_t *)"k1", 2);
  m.epoch = 1;
  kv_peer_result_t r;
  kv_coord_on_peer_request(cl.nodes[0].coord, &m, T0, FX_WALL_MS, NULL, NULL, &r);
  ck_assert_int_eq(r.code, KV_ESTALE);
  ck_assert_str_eq(r.st.msg, "the request was made under ring epoch 1; node n1 has epoch 2");
  ck_assert_uint_gt(r.rec_bytes, 0);
  /* n2 still at epoch 1 takes the ring from the refusal's answer, as a coordinator does. */
  kv_msg_t ring = KV_MSG_INIT(KV_MSG_RING, 43);
  ring.rec = r.rec;
  ring.rec_bytes = r.rec_bytes;
  kv_peer_result_t r2;
  kv_coord_on_peer_request(cl.nodes[1].coord, &ring, T0, FX_WALL_MS, NULL, NULL, &r2);
  ck_assert_int_eq(r2.code, KV_OK);
  ck_assert_uint_eq(ring_of(1)->epoch, 2);
  ck_assert_uint_gt(r2.rec_bytes, 0); /* answered with its own */
  kv_peer_result_deinit(&r2);
  /* A ring of garbage is refused with a sentence. */
  ring.rec_bytes = 3;
  kv_coord_on_peer_request(cl.nodes[1].coord, &ring, T0, FX_WALL_MS, NULL, NULL, &r2);
  ck_assert_int_eq(r2.code, KV_ECORRUPT);
  ck_assert_str_eq(r2.st.msg, "a ring of 3 bytes is not one of this config's (16 partitions)");
  kv_peer_result_deinit(&r2);
  kv_peer_result_deinit(&r);
  /* A request with the same epoch, or none (hints, handoff), is served. */
  m.epoch = 2;
  kv_coord_on_peer_request(cl.nodes[0].coord, &m, T0, FX_WALL_MS, NULL, NULL, &r);
  ck_assert_int_eq(r.code, KV_OK);
  kv_peer_result_deinit(&r);
}
END_TEST

START_TEST(the_ring_outlives_a_power_loss) {
  kv_status_t st;
  ck_assert_int_eq(kv_coord_ring_change(cl.nodes[0].coord, 0xF, T0, &st), KV_OK);
  fx_crash(&cl, 0, true);
  fx_open(&cl, 0);
  ck_assert_uint_eq(ring_of(0)->epoch, 2);
  ck_assert_int_eq(ring_of(0)->phase, KV_RING_HANDOFF);
  ck_assert_uint_eq(ring_of(0)->to.members, 0xF);
  run_until_epoch(T0, 4, 400);
  ck_assert_uint_eq(ring_of(3)->epoch, 4);
}
END_TEST

Suite *ownership_suite(void) {
  Suite *s = suite_create("ownership");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, a_join_streams_flips_and_settles);
  tcase_add_test(tc, a_stale_request_is_refused_with_the_ring);
  tcase_add_test(tc, the_ring_outlives_a_power_loss);
  suite_add_tcase(s, tc);
  return s;
}
