/* check_dvv.c: DVV-set objects (put, merge laws, encoding, hostile bytes) and hybrid logical
 * clocks. Random tests draw from a fixed-seed PRNG, so a failure replays exactly. */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dvv.h"
#include "hlc.h"
#include "record.pb-c.h"

/* ------------------------------------------------------------------- helpers ---- */

static uint64_t rng_state;

/* splitmix64: small, fast, and the same sequence on every platform. */
static uint64_t rng_next(void) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint32_t rng_below(uint32_t n) { return (uint32_t)(rng_next() % n); }

static kv_actor_t actor(const char *node, uint64_t incarnation) {
  kv_actor_t a;
  memset(&a, 0, sizeof a);
  snprintf(a.node, sizeof a.node, "%s", node);
  a.incarnation = incarnation;
  return a;
}

static kv_dot_t dot(const char *node, uint64_t incarnation, uint64_t counter) {
  return (kv_dot_t){.actor = actor(node, incarnation), .counter = counter};
}

/* A context holding exactly the listed dots of actor (node, 1). */
static kv_cc_t cc_of(const char *node, const uint64_t *counters, int n) {
  kv_cc_t cc;
  kv_cc_init(&cc);
  for (int i = 0; i < n; i++) {
    kv_dot_t d = dot(node, 1, counters[i]);
    ck_assert_int_eq(kv_cc_add(&cc, &d), KV_OK);
  }
  return cc;
}

static kv_err put_str(kv_dvv_t *o, const kv_actor_t *self, const kv_cc_t *ctx, const char *v) {
  kv_status_t st;
  kv_status_clear(&st);
  kv_err err = kv_dvv_put(o, self, 0, ctx, v, v ? (uint32_t)strlen(v) : 0, v == NULL, 7,
                          KV_SIBLINGS_DEFAULT, &st);
  if (err != KV_OK) ck_assert_str_ne(st.msg, "");
  return err;
}

/* Whether o has a sibling with this value (NULL: a tombstone). */
static bool has_value(const kv_dvv_t *o, const char *v) {
  for (uint32_t i = 0; i < o->sib_count; i++) {
    const kv_sibling_t *s = &o->sib[i];
    if (v == NULL ? s->tombstone
                  : !s->tombstone && s->value_bytes == strlen(v) &&
                        memcmp(s->value, v, s->value_bytes) == 0) {
      return true;
    }
  }
  return false;
}

static void assert_valid(const kv_dvv_t *o) {
  kv_status_t st;
  kv_status_clear(&st);
  bool ok = kv_dvv_check(o, &st);
  ck_assert_msg(ok, "%s", st.msg);
}

/* ---------------------------------------------------------- causal contexts ---- */

START_TEST(cc_add_folds_contiguous_dots) {
  kv_cc_t cc;
  kv_cc_init(&cc);
  kv_dot_t d3 = dot("n1", 1, 3), d1 = dot("n1", 1, 1), d2 = dot("n1", 1, 2);
  ck_assert_int_eq(kv_cc_add(&cc, &d3), KV_OK);
  ck_assert_uint_eq(cc.vv_count, 0);
  ck_assert_uint_eq(cc.cloud_count, 1);
  ck_assert(kv_cc_covers(&cc, &d3) && !kv_cc_covers(&cc, &d1));
  ck_assert_int_eq(kv_cc_add(&cc, &d1), KV_OK);
  ck_assert_uint_eq(cc.vv_count, 1);
  ck_assert_uint_eq(cc.cloud_count, 1);
  ck_assert_int_eq(kv_cc_add(&cc, &d2), KV_OK); /* 2 closes the gap: 1..3 all in the vv */
  ck_assert_uint_eq(cc.vv_count, 1);
  ck_assert_uint_eq(cc.vv[0].counter, 3);
  ck_assert_uint_eq(cc.cloud_count, 0);
  ck_assert_int_eq(kv_cc_add(&cc, &d2), KV_OK); /* already covered: no change */
  ck_assert_uint_eq(cc.vv[0].counter, 3);
  ck_assert_uint_eq(kv_cc_max_counter(&cc, &d1.actor), 3);
  kv_actor_t other = actor("n1", 2);
  ck_assert_uint_eq(kv_cc_max_counter(&cc, &other), 0);
}
END_TEST

START_TEST(cc_limits_refuse_and_leave_context_unchanged) {
  kv_cc_t cc, before;
  kv_cc_init(&cc);
  for (uint64_t i = 0; i < KV_CLOUD_DOTS_MAX; i++) {
    kv_dot_t d = dot("n1", 1, 2 * i + 2); /* even counters: never contiguous */
    ck_assert_int_eq(kv_cc_add(&cc, &d), KV_OK);
  }
  before = cc;
  kv_dot_t extra = dot("n1", 1, 1000);
  ck_assert_int_eq(kv_cc_add(&cc, &extra), KV_EBUSY);
  ck_assert_int_eq(memcmp(&cc, &before, sizeof cc), 0);
  kv_dot_t one = dot("n1", 1, 1); /* folds 1 and 2 into the vv: fits again */
  ck_assert_int_eq(kv_cc_add(&cc, &one), KV_OK);
  ck_assert_uint_eq(cc.vv[0].counter, 2);
  ck_assert_uint_eq(cc.cloud_count, KV_CLOUD_DOTS_MAX - 1);

  kv_cc_t wide;
  kv_cc_init(&wide);
  char node[16];
  for (unsigned i = 0; i < KV_VV_ENTRIES_MAX; i++) {
    snprintf(node, sizeof node, "a%03u", i);
    kv_dot_t d = dot(node, 1, 1);
    ck_assert_int_eq(kv_cc_add(&wide, &d), KV_OK);
  }
  before = wide;
  kv_dot_t z = dot("z", 1, 1);
  ck_assert_int_eq(kv_cc_add(&wide, &z), KV_EBUSY);
  ck_assert_int_eq(kv_cc_join(&wide, &cc), KV_EBUSY);
  ck_assert_int_eq(memcmp(&wide, &before, sizeof wide), 0);
}
END_TEST

START_TEST(cc_compare_orders_dot_sets) {
  const uint64_t c1[] = {1}, c12[] = {1, 2}, c13[] = {1, 3}, c123[] = {1, 2, 3}, c3[] = {3};
  kv_cc_t empty, a1 = cc_of("x", c1, 1), a12 = cc_of("x", c12, 2), a13 = cc_of("x", c13, 2),
                 a123 = cc_of("x", c123, 3), a3 = cc_of("x", c3, 1);
  kv_cc_init(&empty);
  ck_assert_int_eq(kv_cc_compare(&empty, &empty), KV_ORDER_EQUAL);
  ck_assert_int_eq(kv_cc_compare(&empty, &a1), KV_ORDER_BEFORE);
  ck_assert_int_eq(kv_cc_compare(&a1, &empty), KV_ORDER_AFTER);
  ck_assert_int_eq(kv_cc_compare(&a1, &a12), KV_ORDER_BEFORE);
  ck_assert_int_eq(kv_cc_compare(&a12, &a13), KV_ORDER_CONCURRENT);
  ck_assert_int_eq(kv_cc_compare(&a13, &a123), KV_ORDER_BEFORE);
  ck_assert_int_eq(kv_cc_compare(&a123, &a13), KV_ORDER_AFTER);
  ck_assert_int_eq(kv_cc_compare(&a3, &a12), KV_ORDER_CONCURRENT);
  ck_assert_int_eq(kv_cc_compare(&a3, &a13), KV_ORDER_BEFORE);
  /* Built in a different order, the same set compares equal. */
  const uint64_t c321[] = {3, 2, 1};
  kv_cc_t b321 = cc_of("x", c321, 3);
  ck_assert_int_eq(kv_cc_compare(&b321, &a123), KV_ORDER_EQUAL);
  /* Another incarnation is another actor. */
  kv_cc_t y = a1;
  kv_dot_t d = dot("x", 2, 1);
  ck_assert_int_eq(kv_cc_add(&y, &d), KV_OK);
  ck_assert_int_eq(kv_cc_compare(&y, &a12), KV_ORDER_CONCURRENT);
  ck_assert_int_eq(kv_cc_compare(&a1, &y), KV_ORDER_BEFORE);
}
END_TEST

/* ----------------------------------------------------------------------- put ---- */

START_TEST(put_with_get_context_replaces_exactly_what_was_seen) {
  kv_actor_t x = actor("n1", 1);
  kv_cc_t empty, got;
  kv_cc_init(&empty);
  kv_dvv_t o;
  kv_dvv_init(&o);
  ck_assert_int_eq(put_str(&o, &x, &empty, "a"), KV_OK);
  ck_assert_int_eq(put_str(&o, &x, &empty, "b"), KV_OK);
  got = o.cc; /* a get: sees a and b */
  ck_assert_int_eq(put_str(&o, &x, &empty, "c"), KV_OK); /* unseen by the reader */
  ck_assert_uint_eq(o.sib_count, 3);
  ck_assert_int_eq(put_str(&o, &x, &got, "d"), KV_OK);
  ck_assert_uint_eq(o.sib_count, 2);
  ck_assert(has_value(&o, "c") && has_value(&o, "d"));
  ck_assert(!has_value(&o, "a") && !has_value(&o, "b"));
  ck_assert_uint_eq(o.sib[1].dot.counter, 4);
  /* The put is answered with c and d and a context covering both; writing back with it
   * leaves only the new write. */
  kv_cc_t answered = o.cc;
  ck_assert_int_eq(put_str(&o, &x, &answered, "e"), KV_OK);
  ck_assert_uint_eq(o.sib_count, 1);
  ck_assert(has_value(&o, "e"));
  assert_valid(&o);
  kv_dvv_deinit(&o);
}
END_TEST

START_TEST(put_without_context_adds_a_sibling) {
  kv_actor_t x = actor("n1", 1), y = actor("n2", 1);
  kv_cc_t empty;
  kv_cc_init(&empty);
  kv_dvv_t o;
  kv_dvv_init(&o);
  const char *vals[] = {"a", "b", "c", "d"};
  for (uint32_t i = 0; i < 4; i++) {
    ck_assert_int_eq(put_str(&o, i % 2 ? &y : &x, &empty, vals[i]), KV_OK);
    ck_assert_uint_eq(o.sib_count, i + 1);
    assert_valid(&o);
  }
  ck_assert_uint_eq(kv_dvv_live_count(&o), 4);
  kv_dvv_deinit(&o);
}
END_TEST

START_TEST(tombstone_with_old_context_keeps_the_concurrent_sibling) {
  kv_actor_t x = actor("n1", 1);
  kv_cc_t empty, ctx1;
  kv_cc_init(&empty);
  kv_dvv_t o;
  kv_dvv_init(&o);
  ck_assert_int_eq(put_str(&o, &x, &empty, "a"), KV_OK);
  ctx1 = o.cc; /* what the put answered */
  ck_assert_int_eq(put_str(&o, &x, &ctx1, "b"), KV_OK); /* client 2 overwrote a */
  ck_assert_int_eq(put_str(&o, &x, &ctx1, NULL), KV_OK); /* client 1 deletes a */
  ck_assert_uint_eq(o.sib_count, 2);
  ck_assert_uint_eq(kv_dvv_live_count(&o), 1);
  ck_assert(has_value(&o, "b") && has_value(&o, NULL) && !has_value(&o, "a"));
  ck_assert_ptr_null(o.sib[1].value);
  assert_valid(&o);
  /* A delete that saw everything leaves just its tombstone. */
  kv_cc_t all = o.cc;
  ck_assert_int_eq(put_str(&o, &x, &all, NULL), KV_OK);
  ck_assert_uint_eq(o.sib_count, 1);
  ck_assert_uint_eq(kv_dvv_live_count(&o), 0);
  kv_dvv_deinit(&o);
}
END_TEST

START_TEST(sibling_cap_refuses_and_leaves_object_unchanged) {
  kv_actor_t x = actor("n1", 1);
  kv_cc_t empty;
  kv_cc_init(&empty);
  kv_dvv_t o, before;
  kv_dvv_init(&o);
  for (int i = 0; i < 16; i++) ck_assert_int_eq(put_str(&o, &x, &empty, "v"), KV_OK);
  ck_assert_int_eq(kv_dvv_copy(&before, &o), KV_OK);
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_int_eq(kv_dvv_put(&o, &x, 0, &empty, "w", 1, false, 1, 16, &st), KV_EBUSY);
  ck_assert_int_eq(st.code, KV_EBUSY);
  ck_assert_str_eq(st.msg, "key would have 17 siblings; the keyspace allows 16");
  ck_assert(kv_dvv_equal(&o, &before));
  /* A put that replaces one sibling still fits. */
  kv_cc_t one = cc_of("n1", (const uint64_t[]){5}, 1);
  ck_assert_int_eq(kv_dvv_put(&o, &x, 0, &one, "w", 1, false, 1, 16, &st), KV_OK);
  ck_assert_uint_eq(o.sib_count, 16);
  kv_dvv_deinit(&o);
  kv_dvv_deinit(&before);
}
END_TEST

START_TEST(context_limit_refuses_put_and_leaves_object_unchanged) {
  kv_cc_t ctx, empty;
  kv_cc_init(&ctx);
  kv_cc_init(&empty);
  char node[16];
  for (unsigned i = 0; i < KV_VV_ENTRIES_MAX; i++) {
    snprintf(node, sizeof node, "a%03u", i);
    kv_dot_t d = dot(node, 1, 1);
    ck_assert_int_eq(kv_cc_add(&ctx, &d), KV_OK);
  }
  kv_actor_t z = actor("z", 1);
  kv_dvv_t o, before;
  kv_dvv_init(&o);
  ck_assert_int_eq(put_str(&o, &z, &empty, "v"), KV_OK);
  ck_assert_int_eq(kv_dvv_copy(&before, &o), KV_OK);
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_int_eq(kv_dvv_put(&o, &z, 0, &ctx, "w", 1, false, 1, 16, &st), KV_EBUSY);
  ck_assert_str_eq(st.msg, "the key's causal context would name 65 actors; the limit is 64");
  ck_assert(kv_dvv_equal(&o, &before));

  kv_dvv_deinit(&o);
  kv_dvv_deinit(&before);
}
END_TEST

/* A replica that lost a key (its tombstone was reaped) while a client still holds a context
 * with that replica's dots must mint above them, or the new write would look already seen. */
START_TEST(put_mints_above_dots_the_context_has_seen) {
  kv_actor_t x = actor("n1", 1);
  kv_cc_t empty, got;
  kv_cc_init(&empty);
  kv_dvv_t kept, reaped;
  kv_dvv_init(&kept);
  kv_dvv_init(&reaped);
  for (int i = 0; i < 3; i++) ck_assert_int_eq(put_str(&kept, &x, &empty, "old"), KV_OK);
  got = kept.cc;
  ck_assert_int_eq(put_str(&reaped, &x, &got, "new"), KV_OK);
  ck_assert_uint_eq(reaped.sib[0].dot.counter, 4);
  ck_assert_int_eq(kv_dvv_merge(&kept, &reaped, NULL), KV_OK);
  ck_assert_uint_eq(kept.sib_count, 1);
  ck_assert(has_value(&kept, "new"));
  kv_dvv_deinit(&kept);
  kv_dvv_deinit(&reaped);
}
END_TEST

/* A key reaped here and written again: the floor (the node's clock) puts the new dot above
 * every dot a stale context or a stale replica may still hold, and the context claims the
 * counters it skipped, so it stays one vv entry. */
START_TEST(put_mints_at_least_the_floor_after_a_reap) {
  kv_actor_t x = actor("n1", 1);
  kv_cc_t empty;
  kv_cc_init(&empty);
  kv_dvv_t stale, fresh;
  kv_dvv_init(&stale);
  kv_dvv_init(&fresh);
  kv_status_t st;
  kv_status_clear(&st);
  for (uint64_t floor = 100; floor < 103; floor++)
    ck_assert_int_eq(kv_dvv_put(&stale, &x, floor, &empty, "old", 3, false, 1, 16, &st), KV_OK);
  ck_assert_uint_eq(stale.sib_count, 3);
  ck_assert_uint_eq(stale.sib[2].dot.counter, 102);
  /* The tombstone replaces all three; the record is then reaped (fresh starts empty), and a
   * client that read "old" before the delete writes back with that context. */
  kv_cc_t seen = stale.cc;
  ck_assert_int_eq(kv_dvv_put(&stale, &x, 103, &seen, NULL, 0, true, 1, 16, &st), KV_OK);
  ck_assert_int_eq(kv_dvv_put(&fresh, &x, 200, &empty, "new", 3, false, 1, 16, &st), KV_OK);
  ck_assert_uint_eq(fresh.sib[0].dot.counter, 200);
  ck_assert_uint_eq(fresh.cc.vv_count, 1);
  ck_assert_uint_eq(fresh.cc.vv[0].counter, 200);
  ck_assert_uint_eq(fresh.cc.cloud_count, 0);
  assert_valid(&fresh);
  ck_assert(!kv_cc_covers(&seen, &fresh.sib[0].dot));
  ck_assert(!kv_cc_covers(&stale.cc, &fresh.sib[0].dot));
  ck_assert_int_eq(kv_dvv_put(&fresh, &x, 201, &seen, "late", 4, false, 1, 16, &st), KV_OK);
  ck_assert(has_value(&fresh, "new") && has_value(&fresh, "late"));
  /* The stale tombstone merged in (a straggling repair) takes nothing away either. */
  ck_assert_int_eq(kv_dvv_merge(&fresh, &stale, NULL), KV_OK);
  ck_assert(has_value(&fresh, "new") && has_value(&fresh, "late") && !has_value(&fresh, NULL));
  /* Below the counters already minted, the floor changes nothing. */
  ck_assert_int_eq(kv_dvv_put(&fresh, &x, 5, &fresh.cc, "last", 4, false, 1, 16, &st), KV_OK);
  ck_assert_uint_eq(fresh.sib[0].dot.counter, 202);
  kv_dvv_deinit(&stale);
  kv_dvv_deinit(&fresh);
}
END_TEST

/* Two different writes under one dot should never happen; if a bug makes them, replicas must
 * still agree on one of them whichever way they merge. */
START_TEST(put_refuses_a_context_covering_every_counter) {
  /* tests/fuzz/corpus/token/crash-last-counter: a client's context claiming (n1, 2^64 - 1).
   * The next counter wrapped to 0, and the put minted the floor, a dot the context covered. */
  kv_actor_t x = actor("n1", 1);
  const uint64_t last[] = {UINT64_MAX}, before_last[] = {UINT64_MAX - 1};
  kv_cc_t ctx = cc_of("n1", last, 1);
  kv_dvv_t o;
  kv_dvv_init(&o);
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_int_eq(kv_dvv_put(&o, &x, 5, &ctx, "v", 1, false, 1, 16, &st), KV_EINVAL);
  ck_assert_str_eq(st.msg, "context covers every counter of n1/1; no version can be minted "
                           "past it");
  ck_assert_uint_eq(o.sib_count, 0);
  ck_assert_uint_eq(o.cc.vv_count, 0);
  /* One below the last still mints the last. */
  ctx = cc_of("n1", before_last, 1);
  ck_assert_int_eq(kv_dvv_put(&o, &x, 5, &ctx, "v", 1, false, 1, 16, &st), KV_OK);
  ck_assert_uint_eq(o.sib[0].dot.counter, UINT64_MAX);
  assert_valid(&o);
  kv_cc_t empty;
  kv_cc_init(&empty);
  ck_assert_int_eq(kv_dvv_put(&o, &x, 5, &empty, "w", 1, false, 1, 16, &st), KV_EINVAL);
  ck_assert_uint_eq(o.sib_count, 1);
  kv_dvv_deinit(&o);
}
END_TEST

START_TEST(merge_of_a_reused_dot_converges) {
  kv_actor_t x = actor("n1", 1);
  kv_cc_t empty;
  kv_cc_init(&empty);
  kv_dvv_t a, b, ab, ba;
  kv_dvv_init(&a);
  kv_dvv_init(&b);
  ck_assert_int_eq(put_str(&a, &x, &empty, "a"), KV_OK);
  ck_assert_int_eq(put_str(&b, &x, &empty, "b"), KV_OK);
  ck_assert(!kv_dvv_equal(&a, &b));
  ck_assert_int_eq(kv_dvv_copy(&ab, &a), KV_OK);
  ck_assert_int_eq(kv_dvv_copy(&ba, &b), KV_OK);
  ck_assert_int_eq(kv_dvv_merge(&ab, &b, NULL), KV_OK);
  ck_assert_int_eq(kv_dvv_merge(&ba, &a, NULL), KV_OK);
  ck_assert(kv_dvv_equal(&ab, &ba));
  ck_assert_uint_eq(ab.sib_count, 1);
  kv_dvv_deinit(&a);
  kv_dvv_deinit(&b);
  kv_dvv_deinit(&ab);
  kv_dvv_deinit(&ba);
}
END_TEST

/* Riak's sibling explosion: two clients write through one coordinator, each passing back the
 * context its own previous put returned. With DVV each write replaces only its writer's
 * previous value, so there are never more than two siblings. */
START_TEST(interleaved_clients_do_not_explode_siblings) {
  kv_actor_t coord = actor("n1", 1);
  kv_cc_t ctx[2];
  kv_cc_init(&ctx[0]);
  kv_cc_init(&ctx[1]);
  kv_dvv_t o;
  kv_dvv_init(&o);
  char v[32];
  for (int round = 0; round < 200; round++) { /* 100 rounds of both clients */
    int c = round % 2;
    snprintf(v, sizeof v, "client%d-round%d", c, round);
    kv_cc_t in = ctx[c];
    ck_assert_int_eq(put_str(&o, &coord, &in, v), KV_OK);
    ctx[c] = o.cc; /* what the put answered */
    ck_assert_uint_le(o.sib_count, 2);
    if (round >= 1) ck_assert_uint_eq(o.sib_count, 2);
    ck_assert(has_value(&o, v));
    if (round >= 1) {
      snprintf(v, sizeof v, "client%d-round%d", 1 - c, round - 1);
      ck_assert(has_value(&o, v));
    }
    assert_valid(&o);
  }
  kv_dvv_deinit(&o);
}
END_TEST

/* kv679: n1 loses its data and comes back as a new incarnation, counting from 1 again. Its
 * new writes must not be taken for the old ones a replica already has. */
START_TEST(wiped_node_new_writes_survive) {
  kv_actor_t old_n1 = actor("n1", 1), new_n1 = actor("n1", 2);
  kv_cc_t empty;
  kv_cc_init(&empty);
  kv_dvv_t n2, wiped, reused;
  kv_dvv_init(&n2);
  kv_dvv_init(&wiped);
  kv_dvv_init(&reused);
  for (int i = 0; i < 3; i++) {
    kv_cc_t all = n2.cc;
    ck_assert_int_eq(put_str(&n2, &old_n1, &all, "old"), KV_OK);
  }
  ck_assert_int_eq(put_str(&wiped, &new_n1, &empty, "new"), KV_OK);
  ck_assert_uint_eq(wiped.sib[0].dot.counter, 1);
  ck_assert_int_eq(kv_dvv_merge(&n2, &wiped, NULL), KV_OK);
  ck_assert(has_value(&n2, "new") && has_value(&n2, "old"));
  ck_assert_uint_eq(n2.sib_count, 2);
  assert_valid(&n2);
  /* The same write under the reused actor would be swallowed: this is what incarnations
   * prevent. */
  kv_dvv_t n2_again;
  kv_dvv_init(&n2_again);
  for (int i = 0; i < 3; i++) {
    kv_cc_t all = n2_again.cc;
    ck_assert_int_eq(put_str(&n2_again, &old_n1, &all, "old"), KV_OK);
  }
  ck_assert_int_eq(put_str(&reused, &old_n1, &empty, "new"), KV_OK);
  ck_assert_int_eq(kv_dvv_merge(&n2_again, &reused, NULL), KV_OK);
  ck_assert(!has_value(&n2_again, "new"));
  kv_dvv_deinit(&n2);
  kv_dvv_deinit(&n2_again);
  kv_dvv_deinit(&wiped);
  kv_dvv_deinit(&reused);
}
END_TEST

/* ------------------------------------------------------------------ merge laws ---- */

/* A small cluster history: four nodes, two of which get wiped (new incarnation, empty state)
 * partway through. Clients put through random coordinators with contexts from earlier gets
 * and puts; replicas merge with each other at random. */
#define SIM_NODES 4
#define SIM_CTX_POOL 24
#define SIM_SNAPSHOTS 16

typedef struct {
  kv_dvv_t rep[SIM_NODES];
  kv_actor_t self[SIM_NODES];
  kv_cc_t ctx[SIM_CTX_POOL]; /* contexts clients hold, from gets and put replies */
  uint32_t ctx_count;
  kv_dvv_t snap[SIM_SNAPSHOTS]; /* earlier replica states */
  uint32_t snap_count;
} sim_t;

static void sim_init(sim_t *s) {
  static const char *const nodes[SIM_NODES] = {"n1", "n2", "n3", "n4"};
  memset(s, 0, sizeof *s);
  for (int i = 0; i < SIM_NODES; i++) {
    kv_dvv_init(&s->rep[i]);
    s->self[i] = actor(nodes[i], 1);
  }
  kv_cc_init(&s->ctx[0]);
  s->ctx_count = 1;
}

static void sim_deinit(sim_t *s) {
  for (int i = 0; i < SIM_NODES; i++) kv_dvv_deinit(&s->rep[i]);
  for (uint32_t i = 0; i < s->snap_count; i++) kv_dvv_deinit(&s->snap[i]);
}

static void sim_keep_ctx(sim_t *s, const kv_cc_t *cc) {
  uint32_t at = s->ctx_count < SIM_CTX_POOL ? s->ctx_count++ : rng_below(SIM_CTX_POOL);
  s->ctx[at] = *cc;
}

static void sim_snapshot(sim_t *s, const kv_dvv_t *o) {
  uint32_t at;
  if (s->snap_count < SIM_SNAPSHOTS) {
    at = s->snap_count++;
  } else {
    at = rng_below(SIM_SNAPSHOTS);
    kv_dvv_deinit(&s->snap[at]);
  }
  ck_assert_int_eq(kv_dvv_copy(&s->snap[at], o), KV_OK);
}

static void sim_put(sim_t *s, int r) {
  char v[24];
  snprintf(v, sizeof v, "v%" PRIu64, rng_next() % 1000);
  bool tomb = rng_below(6) == 0;
  kv_cc_t ctx = s->ctx[rng_below(s->ctx_count)];
  if (rng_below(8) == 0) kv_cc_init(&ctx);
  kv_err err = kv_dvv_put(&s->rep[r], &s->self[r], 0, &ctx, tomb ? NULL : v,
                          tomb ? 0 : (uint32_t)strlen(v), tomb, rng_next(), KV_SIBLINGS_DEFAULT,
                          NULL);
  ck_assert(err == KV_OK || err == KV_EBUSY);
  if (err != KV_OK) return;
  kv_cc_t answered = s->rep[r].cc; /* what the put answered */
  /* Clients may also send contexts no replica produced, such as one naming a single write
   * it was told about: the decoder accepts loose dots, so the laws must hold with them. */
  if (rng_below(3) == 0) {
    kv_cc_init(&answered);
    kv_sibling_t *newest = &s->rep[r].sib[rng_below(s->rep[r].sib_count)];
    ck_assert_int_eq(kv_cc_add(&answered, &newest->dot), KV_OK);
  }
  sim_keep_ctx(s, &answered);
}

static void sim_step(sim_t *s) {
  int r = (int)rng_below(SIM_NODES);
  uint32_t op = rng_below(20);
  if (op < 9) {
    sim_put(s, r);
  } else if (op < 12) {
    sim_keep_ctx(s, &s->rep[r].cc); /* a get */
  } else if (op < 19) {
    kv_err err = kv_dvv_merge(&s->rep[r], &s->rep[rng_below(SIM_NODES)], NULL);
    ck_assert(err == KV_OK || err == KV_EBUSY);
  } else if (r % 2 == 1 && s->self[r].incarnation == 1 && rng_below(10) == 0) {
    kv_dvv_deinit(&s->rep[r]); /* n2 and n4 lose their data once */
    kv_dvv_init(&s->rep[r]);
    s->self[r].incarnation = 2;
  }
  assert_valid(&s->rep[r]);
  if (rng_below(4) == 0) sim_snapshot(s, &s->rep[r]);
}

/* Some state of the history: a current replica or an earlier snapshot. */
static const kv_dvv_t *sim_pick(const sim_t *s) {
  uint32_t i = rng_below(SIM_NODES + s->snap_count);
  return i < SIM_NODES ? &s->rep[i] : &s->snap[i - SIM_NODES];
}

/* Whether o holds s: same dot, same contents. */
static bool sibling_in(const kv_sibling_t *s, const kv_dvv_t *o) {
  for (uint32_t i = 0; i < o->sib_count; i++) {
    const kv_sibling_t *t = &o->sib[i];
    if (kv_dot_cmp(&s->dot, &t->dot) == 0 && s->tombstone == t->tombstone && s->hlc == t->hlc &&
        s->value_bytes == t->value_bytes &&
        (s->value_bytes == 0 || memcmp(s->value, t->value, s->value_bytes) == 0)) {
      return true;
    }
  }
  return false;
}

/* r := a merge b, checked against the rule stated in dvv.h, dot by dot. */
static kv_err merged(const kv_dvv_t *a, const kv_dvv_t *b, kv_dvv_t *r) {
  ck_assert_int_eq(kv_dvv_copy(r, a), KV_OK);
  kv_err err = kv_dvv_merge(r, b, NULL);
  if (err != KV_OK) {
    ck_assert(kv_dvv_equal(r, a));
    kv_dvv_deinit(r);
    return err;
  }
  assert_valid(r);
  const kv_dvv_t *in[2] = {a, b};
  for (int k = 0; k < 2; k++) {
    const kv_dvv_t *x = in[k], *y = in[1 - k];
    for (uint32_t i = 0; i < x->sib_count; i++) {
      const kv_dot_t *d = &x->sib[i].dot;
      bool in_y = false;
      for (uint32_t j = 0; j < y->sib_count; j++) in_y |= kv_dot_cmp(d, &y->sib[j].dot) == 0;
      bool want = in_y || !kv_cc_covers(&y->cc, d), got = false;
      for (uint32_t j = 0; j < r->sib_count; j++) got |= kv_dot_cmp(d, &r->sib[j].dot) == 0;
      ck_assert_int_eq(got, want);
    }
    kv_order_t ord = kv_cc_compare(&x->cc, &r->cc);
    ck_assert(ord == KV_ORDER_EQUAL || ord == KV_ORDER_BEFORE);
  }
  for (uint32_t j = 0; j < r->sib_count; j++) {
    ck_assert(sibling_in(&r->sib[j], a) || sibling_in(&r->sib[j], b));
  }
  return KV_OK;
}

/* Every dot of r's context is a dot of a or b: the join adds nothing of its own. */
static void assert_join_is_union(const kv_dvv_t *a, const kv_dvv_t *b, const kv_dvv_t *r) {
  for (uint32_t i = 0; i < r->cc.vv_count; i++) {
    for (uint64_t c = 1; c <= r->cc.vv[i].counter; c++) {
      kv_dot_t d = {.actor = r->cc.vv[i].actor, .counter = c};
      ck_assert(kv_cc_covers(&a->cc, &d) || kv_cc_covers(&b->cc, &d));
    }
  }
  for (uint32_t i = 0; i < r->cc.cloud_count; i++) {
    ck_assert(kv_cc_covers(&a->cc, &r->cc.cloud[i]) || kv_cc_covers(&b->cc, &r->cc.cloud[i]));
  }
}

typedef struct {
  uint32_t checked, with_cloud, with_siblings, with_tombstone, with_incarnation2, dropped;
} law_stats_t;

static void check_laws(const kv_dvv_t *a, const kv_dvv_t *b, const kv_dvv_t *c,
                       law_stats_t *stats) {
  kv_dvv_t ab, ba, bc, ab_c, a_bc, aa;
  if (merged(a, b, &ab) != KV_OK) return;
  ck_assert_int_eq(merged(b, a, &ba), KV_OK);
  ck_assert(kv_dvv_equal(&ab, &ba));
  assert_join_is_union(a, b, &ab);
  ck_assert_int_eq(merged(a, a, &aa), KV_OK);
  ck_assert(kv_dvv_equal(&aa, a));
  if (merged(b, c, &bc) == KV_OK) {
    kv_err e1 = merged(&ab, c, &ab_c), e2 = merged(a, &bc, &a_bc);
    ck_assert_int_eq(e1, e2);
    if (e1 == KV_OK) {
      ck_assert(kv_dvv_equal(&ab_c, &a_bc));
      kv_dvv_deinit(&ab_c);
      kv_dvv_deinit(&a_bc);
      stats->checked++;
    }
    kv_dvv_deinit(&bc);
  }
  stats->with_cloud += ab.cc.cloud_count > 0;
  stats->with_siblings += ab.sib_count >= 3;
  stats->with_tombstone += ab.sib_count > kv_dvv_live_count(&ab);
  for (uint32_t i = 0; i < ab.cc.vv_count; i++) {
    stats->with_incarnation2 += ab.cc.vv[i].actor.incarnation == 2;
  }
  stats->dropped += ab.sib_count < a->sib_count + b->sib_count;
  kv_dvv_deinit(&ab);
  kv_dvv_deinit(&ba);
  kv_dvv_deinit(&aa);
}

START_TEST(merge_is_commutative_associative_idempotent) {
  rng_state = 20260101;
  sim_t *s = malloc(sizeof *s);
  ck_assert_ptr_nonnull(s);
  sim_init(s);
  law_stats_t stats = {0};
  for (int iter = 0; iter < 2000; iter++) {
    for (int k = 0; k < 3; k++) sim_step(s);
    /* Keep the history from drifting into a steady state: restart it now and then. */
    if (iter % 400 == 399) {
      sim_deinit(s);
      sim_init(s);
    }
    check_laws(sim_pick(s), sim_pick(s), sim_pick(s), &stats);
  }
  sim_deinit(s);
  free(s);
  /* The laws must have been checked on interesting states, not just empty ones. */
  ck_assert_uint_ge(stats.checked, 1900);
  ck_assert_uint_ge(stats.with_cloud, 50);
  ck_assert_uint_ge(stats.with_siblings, 1500);
  ck_assert_uint_ge(stats.with_tombstone, 1000);
  ck_assert_uint_ge(stats.with_incarnation2, 800);
  ck_assert_uint_ge(stats.dropped, 1500);
}
END_TEST

START_TEST(merge_over_limit_refuses_and_leaves_object_unchanged) {
  kv_cc_t empty;
  kv_cc_init(&empty);
  kv_dvv_t a, b, before;
  kv_dvv_init(&a);
  kv_dvv_init(&b);
  kv_actor_t x = actor("n1", 1), y = actor("n2", 1);
  for (unsigned i = 0; i < KV_SIBLINGS_MAX; i++) {
    ck_assert_int_eq(kv_dvv_put(&a, &x, 0, &empty, "a", 1, false, 1, KV_SIBLINGS_MAX, NULL),
                     KV_OK);
    ck_assert_int_eq(kv_dvv_put(&b, &y, 0, &empty, "b", 1, false, 1, KV_SIBLINGS_MAX, NULL),
                     KV_OK);
  }
  ck_assert_int_eq(kv_dvv_copy(&before, &a), KV_OK);
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_int_eq(kv_dvv_merge(&a, &b, &st), KV_EBUSY);
  ck_assert_str_eq(st.msg, "merge would leave 128 siblings; the limit is 64");
  ck_assert(kv_dvv_equal(&a, &before));
  kv_dvv_deinit(&a);
  kv_dvv_deinit(&b);
  kv_dvv_deinit(&before);
}
END_TEST

/* ------------------------------------------------------------------ encoding ---- */

/* An object with several actors, cloud dots, a tombstone and an empty value. */
static void build_sample(kv_dvv_t *o) {
  kv_actor_t x = actor("n1", 1), y = actor("n2", 7), z = actor("n3", 1);
  kv_cc_t empty, cx;
  kv_cc_init(&empty);
  kv_dvv_init(o);
  ck_assert_int_eq(put_str(o, &x, &empty, "first"), KV_OK);
  cx = o->cc;
  ck_assert_int_eq(put_str(o, &x, &empty, ""), KV_OK);
  ck_assert_int_eq(put_str(o, &y, &cx, NULL), KV_OK);
  kv_dvv_t other;
  kv_dvv_init(&other);
  kv_cc_t far = cc_of("n9", (const uint64_t[]){4}, 1);
  ck_assert_int_eq(put_str(&other, &z, &far, "remote"), KV_OK);
  ck_assert_int_eq(kv_dvv_merge(o, &other, NULL), KV_OK);
  kv_dvv_deinit(&other);
  ck_assert_uint_eq(o->sib_count, 3);
  ck_assert_uint_ge(o->cc.cloud_count, 1);
  assert_valid(o);
}

START_TEST(encode_decode_round_trip) {
  kv_dvv_t o, back;
  build_sample(&o);
  uint8_t *buf;
  size_t n;
  ck_assert_int_eq(kv_dvv_encode(&o, &buf, &n), KV_OK);
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_int_eq(kv_dvv_decode(buf, n, &back, &st), KV_OK);
  ck_assert(kv_dvv_equal(&o, &back));
  uint8_t *buf2;
  size_t n2;
  ck_assert_int_eq(kv_dvv_encode(&back, &buf2, &n2), KV_OK);
  ck_assert(n == n2 && memcmp(buf, buf2, n) == 0);
  /* Equality looks at every field, values included. */
  back.sib[2].value[0] ^= 1;
  ck_assert(!kv_dvv_equal(&o, &back));
  back.sib[2].value[0] ^= 1;
  back.sib[2].hlc++;
  ck_assert(!kv_dvv_equal(&o, &back));
  back.sib[2].hlc--;
  ck_assert(kv_dvv_equal(&o, &back));
  free(buf);
  free(buf2);
  kv_dvv_deinit(&back);

  ck_assert_int_eq(kv_cc_encode(&o.cc, &buf, &n), KV_OK);
  kv_cc_t cc;
  ck_assert_int_eq(kv_cc_decode(buf, n, &cc, &st), KV_OK);
  ck_assert_int_eq(kv_cc_compare(&cc, &o.cc), KV_ORDER_EQUAL);
  ck_assert_int_eq(memcmp(cc.cloud, o.cc.cloud, o.cc.cloud_count * sizeof cc.cloud[0]), 0);
  free(buf);

  kv_dvv_t empty;
  kv_dvv_init(&empty);
  ck_assert_int_eq(kv_dvv_encode(&empty, &buf, &n), KV_OK);
  ck_assert_int_eq(kv_dvv_decode(buf, n, &back, &st), KV_OK);
  ck_assert(kv_dvv_equal(&empty, &back));
  kv_dvv_deinit(&back);
  free(buf);
  ck_assert_int_eq(kv_cc_decode(NULL, 0, &cc, &st), KV_OK);
  ck_assert_uint_eq(cc.vv_count + cc.cloud_count, 0);
  kv_dvv_deinit(&o);
}
END_TEST

/* Offsets where a top-level field of an encoded Record starts; a cut exactly there is a
 * shorter but well-formed Record, a cut anywhere else is not. */
static bool at_field_boundary(const uint8_t *buf, size_t n, size_t cut) {
  size_t i = 0;
  while (i < n) {
    if (i == cut) return true;
    i++; /* the tag: fields 1 and 2 with wire type 2 fit in one byte */
    uint64_t len = 0;
    uint8_t byte;
    int shift = 0;
    do {
      byte = buf[i++];
      len |= (uint64_t)(byte & 0x7f) << shift;
      shift += 7;
    } while (byte & 0x80);
    i += len;
  }
  return false;
}

START_TEST(decode_truncated_record_is_corrupt) {
  kv_dvv_t o, back;
  build_sample(&o);
  uint8_t *buf;
  size_t n;
  ck_assert_int_eq(kv_dvv_encode(&o, &buf, &n), KV_OK);
  uint32_t corrupt = 0;
  for (size_t cut = 0; cut < n; cut++) {
    uint8_t *part = malloc(cut + 1); /* exact size, so ASan sees any overread */
    memcpy(part, buf, cut);
    kv_status_t st;
    kv_status_clear(&st);
    kv_err err = kv_dvv_decode(part, cut, &back, &st);
    if (at_field_boundary(buf, n, cut)) {
      ck_assert_int_eq(err, KV_OK);
      assert_valid(&back);
      kv_dvv_deinit(&back);
    } else {
      ck_assert_int_eq(err, KV_ECORRUPT);
      ck_assert_str_eq(st.msg, "record is malformed: it does not parse");
      corrupt++;
    }
    free(part);
  }
  ck_assert_uint_eq(corrupt, n - 4); /* cuts at 0, after the context and after siblings 0, 1 */
  free(buf);
  kv_dvv_deinit(&o);
}
END_TEST

START_TEST(decode_garbage_never_crashes) {
  rng_state = 42;
  kv_dvv_t o, back;
  build_sample(&o);
  uint8_t *good;
  size_t good_bytes;
  ck_assert_int_eq(kv_dvv_encode(&o, &good, &good_bytes), KV_OK);
  uint32_t rejected = 0;
  for (int iter = 0; iter < 20000; iter++) {
    size_t n = iter % 2 ? rng_below(96) : good_bytes;
    uint8_t *buf = malloc(n + 1);
    if (iter % 2) {
      for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)rng_next();
    } else { /* a valid record with a few bytes changed gets past the parser more often */
      memcpy(buf, good, n);
      int changes = 1 + (int)rng_below(3);
      for (int k = 0; k < changes; k++) buf[rng_below((uint32_t)n)] = (uint8_t)rng_next();
    }
    kv_status_t st;
    kv_status_clear(&st);
    kv_err err = kv_dvv_decode(buf, n, &back, &st);
    if (err == KV_OK) {
      assert_valid(&back);
      kv_dvv_deinit(&back);
    } else {
      ck_assert_int_eq(err, KV_ECORRUPT);
      ck_assert_int_eq(strncmp(st.msg, "record is malformed: ", 21), 0);
      rejected++;
    }
    kv_cc_t cc;
    err = kv_cc_decode(buf, n, &cc, &st);
    ck_assert(err == KV_OK ||
              (err == KV_EINVAL && strncmp(st.msg, "context is malformed: ", 22) == 0));
    free(buf);
  }
  ck_assert_uint_ge(rejected, 15000);
  free(good);
  kv_dvv_deinit(&o);
}
END_TEST

/* Hand-built messages, each breaking one rule, with the exact sentence expected. */
typedef struct {
  Tunekv__Record__Dot dots[80];
  Tunekv__Record__Dot *vv[80], *cloud[80];
  Tunekv__Record__CausalContext cc;
  Tunekv__Record__StoredSibling sib[80], *sib_ptr[80];
  Tunekv__Record__Record rec;
  uint32_t used;
} pb_build_t;

static Tunekv__Record__Dot *pb_dot(pb_build_t *b, const char *node, uint64_t counter) {
  Tunekv__Record__Dot *d = &b->dots[b->used++];
  tunekv__record__dot__init(d);
  d->node = (char *)node;
  d->incarnation = 1;
  d->counter = counter;
  return d;
}

static void pb_init(pb_build_t *b) {
  memset(b, 0, sizeof *b);
  tunekv__record__causal_context__init(&b->cc);
  tunekv__record__record__init(&b->rec);
  b->cc.vv = b->vv;
  b->cc.cloud = b->cloud;
  b->rec.context = &b->cc;
  b->rec.siblings = b->sib_ptr;
}

static void pb_vv(pb_build_t *b, const char *node, uint64_t counter) {
  b->vv[b->cc.n_vv++] = pb_dot(b, node, counter);
}

static void pb_cloud(pb_build_t *b, const char *node, uint64_t counter) {
  b->cloud[b->cc.n_cloud++] = pb_dot(b, node, counter);
}

static Tunekv__Record__StoredSibling *pb_sib(pb_build_t *b, const char *node, uint64_t counter) {
  Tunekv__Record__StoredSibling *s = &b->sib[b->rec.n_siblings];
  tunekv__record__stored_sibling__init(s);
  s->dot = node ? pb_dot(b, node, counter) : NULL;
  b->sib_ptr[b->rec.n_siblings++] = s;
  return s;
}

static void expect_record(const pb_build_t *b, kv_err want, const char *msg) {
  uint8_t buf[8192];
  size_t n = tunekv__record__record__pack(&b->rec, buf);
  ck_assert_uint_lt(n, sizeof buf);
  kv_dvv_t o;
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_int_eq(kv_dvv_decode(buf, n, &o, &st), want);
  if (want == KV_OK) {
    assert_valid(&o);
    kv_dvv_deinit(&o);
    return;
  }
  ck_assert_str_eq(st.msg, msg);
  /* The same context, sent by a client, is refused as a bad argument. */
  if (strstr(msg, "sibling") != NULL) return;
  n = tunekv__record__causal_context__pack(&b->cc, buf);
  kv_cc_t cc;
  ck_assert_int_eq(kv_cc_decode(buf, n, &cc, &st), KV_EINVAL);
  char want_cc[KV_STATUS_MSG_BYTES];
  snprintf(want_cc, sizeof want_cc, "context is malformed: %s",
           msg + strlen("record is malformed: "));
  ck_assert_str_eq(st.msg, want_cc);
}

START_TEST(decode_rejects_each_broken_rule) {
  pb_build_t *b = malloc(sizeof *b);
  ck_assert_ptr_nonnull(b);

  pb_init(b);
  pb_vv(b, "n1", 2);
  pb_cloud(b, "n1", 4);
  pb_sib(b, "n1", 4)->value = (ProtobufCBinaryData){.len = 1, .data = (uint8_t *)"v"};
  expect_record(b, KV_OK, NULL);

  pb_init(b);
  pb_vv(b, "", 1);
  expect_record(b, KV_ECORRUPT,
                "record is malformed: vv entry 0 has a node id of 0 bytes; it must be 1 to 32");
  pb_init(b);
  pb_vv(b, "n1", 1);
  pb_cloud(b, "n23456789012345678901234567890123", 5);
  expect_record(b, KV_ECORRUPT,
                "record is malformed: cloud entry 0 has a node id of 33 bytes; it must be 1 to 32");
  pb_init(b);
  pb_vv(b, "n1", 0);
  expect_record(b, KV_ECORRUPT, "record is malformed: vv entry 0 has counter 0");
  pb_init(b);
  pb_vv(b, "n2", 1);
  pb_vv(b, "n1", 1);
  expect_record(b, KV_ECORRUPT,
                "record is malformed: vv entry 1 (n1/1) is out of order or repeated");
  pb_init(b);
  pb_vv(b, "n1", 1);
  pb_vv(b, "n1", 3);
  expect_record(b, KV_ECORRUPT,
                "record is malformed: vv entry 1 (n1/1) is out of order or repeated");
  pb_init(b);
  pb_cloud(b, "n1", 5);
  pb_cloud(b, "n1", 5);
  expect_record(b, KV_ECORRUPT,
                "record is malformed: loose dot 1 (n1/1:5) is out of order or repeated");
  pb_init(b);
  pb_vv(b, "n1", 2);
  pb_cloud(b, "n1", 3);
  expect_record(b, KV_ECORRUPT,
                "record is malformed: loose dot 0 (n1/1:3) is not above its vv counter 2 + 1");
  pb_init(b);
  pb_cloud(b, "n1", 1);
  expect_record(b, KV_ECORRUPT,
                "record is malformed: loose dot 0 (n1/1:1) is not above its vv counter 0 + 1");
  pb_init(b);
  for (int i = 0; i < 65; i++) pb_cloud(b, "n1", 10 + (uint64_t)i);
  expect_record(b, KV_ECORRUPT, "record is malformed: it has 65 cloud entries; the limit is 64");

  pb_init(b);
  pb_vv(b, "n1", 1);
  pb_sib(b, NULL, 0);
  expect_record(b, KV_ECORRUPT, "record is malformed: sibling 0 has no dot");
  pb_init(b);
  pb_vv(b, "n1", 1);
  pb_sib(b, "n1", 2);
  expect_record(b, KV_ECORRUPT, "record is malformed: sibling 0 is not covered by the context");
  pb_init(b);
  pb_vv(b, "n1", 2);
  pb_sib(b, "n1", 2);
  pb_sib(b, "n1", 1);
  expect_record(b, KV_ECORRUPT, "record is malformed: sibling 1 is out of order or repeated");
  pb_init(b);
  pb_vv(b, "n1", 1);
  Tunekv__Record__StoredSibling *t = pb_sib(b, "n1", 1);
  t->tombstone = true;
  t->value = (ProtobufCBinaryData){.len = 1, .data = (uint8_t *)"v"};
  expect_record(b, KV_ECORRUPT, "record is malformed: sibling 0 is a tombstone with a value");
  pb_init(b);
  pb_vv(b, "n1", 70);
  for (int i = 0; i < 65; i++) pb_sib(b, "n1", 1 + (uint64_t)i);
  expect_record(b, KV_ECORRUPT, "record is malformed: it has 65 siblings; the limit is 64");
  free(b);
}
END_TEST

START_TEST(decode_context_rejects_bad_bytes) {
  kv_cc_t cc;
  kv_status_t st;
  kv_status_clear(&st);
  const uint8_t junk[] = {0xff, 0xff, 0xff};
  ck_assert_int_eq(kv_cc_decode(junk, sizeof junk, &cc, &st), KV_EINVAL);
  ck_assert_str_eq(st.msg, "context is malformed: it does not parse");
  ck_assert_uint_eq(cc.vv_count + cc.cloud_count, 0);
  uint8_t *big = calloc(KV_CONTEXT_BYTES_MAX + 1, 1);
  ck_assert_int_eq(kv_cc_decode(big, KV_CONTEXT_BYTES_MAX + 1, &cc, &st), KV_EINVAL);
  ck_assert_str_eq(st.msg, "context is malformed: it is 16385 bytes; the limit is 16384");
  free(big);
  kv_dvv_t o;
  ck_assert_int_eq(kv_dvv_decode(junk, sizeof junk, &o, &st), KV_ECORRUPT);
  ck_assert_str_eq(st.msg, "record is malformed: it does not parse");
}
END_TEST

START_TEST(check_reports_broken_invariants) {
  kv_dvv_t o;
  build_sample(&o);
  kv_status_t st;
  kv_status_clear(&st);
  kv_dot_t saved = o.sib[0].dot;
  o.sib[0].dot.counter = 99;
  ck_assert(!kv_dvv_check(&o, &st));
  ck_assert_int_eq(st.code, KV_ECORRUPT);
  ck_assert_str_eq(st.msg, "object breaks its invariants: sibling 0 is not covered by the context");
  o.sib[0].dot = saved;
  kv_dot_t v0 = o.cc.vv[0];
  o.cc.vv[0] = o.cc.vv[1];
  ck_assert(!kv_dvv_check(&o, &st));
  o.cc.vv[0] = v0;
  assert_valid(&o);
  kv_dvv_deinit(&o);
}
END_TEST

/* ----------------------------------------------------------------------- hlc ---- */

START_TEST(hlc_is_monotonic_when_wall_clock_goes_back) {
  kv_hlc_t c;
  kv_hlc_init(&c);
  uint64_t t1 = kv_hlc_now(&c, 1000);
  ck_assert_uint_eq(kv_hlc_ms(t1), 1000);
  ck_assert_uint_eq(t1 & 0xffff, 0);
  uint64_t t2 = kv_hlc_now(&c, 999), t3 = kv_hlc_now(&c, 500);
  ck_assert_uint_gt(t2, t1);
  ck_assert_uint_gt(t3, t2);
  ck_assert_uint_eq(kv_hlc_ms(t3), 1000);
  uint64_t t4 = kv_hlc_now(&c, 2000); /* wall time moved ahead: back to it, logical 0 */
  ck_assert_uint_eq(t4, (uint64_t)2000 << 16);
  /* More events in one ms than the logical half holds still strictly increase. */
  uint64_t prev = t4;
  for (int i = 0; i < 70000; i++) {
    uint64_t t = kv_hlc_now(&c, 2000);
    ck_assert_uint_gt(t, prev);
    prev = t;
  }
  ck_assert_uint_eq(kv_hlc_ms(prev), 2001);
}
END_TEST

START_TEST(hlc_observe_moves_past_remote) {
  kv_hlc_t c;
  kv_hlc_init(&c);
  uint64_t local = kv_hlc_now(&c, 2000);
  uint64_t remote = ((uint64_t)5000 << 16) | 7;
  kv_hlc_observe(&c, remote, 2000);
  uint64_t t = kv_hlc_now(&c, 2001);
  ck_assert_uint_gt(t, remote);
  ck_assert_uint_eq(kv_hlc_ms(t), 5000);
  /* An old remote timestamp does not move the clock back. */
  kv_hlc_observe(&c, local, 2002);
  ck_assert_uint_gt(kv_hlc_now(&c, 2002), t);
  /* Observing is itself an event: even with nothing else, the clock is past remote. */
  kv_hlc_t d;
  kv_hlc_init(&d);
  kv_hlc_observe(&d, remote, 10);
  ck_assert_uint_gt(d.last, remote);
  kv_hlc_observe(&d, 0, 9000);
  ck_assert_uint_eq(d.last, (uint64_t)9000 << 16);
}
END_TEST

Suite *dvv_suite(void) {
  Suite *s = suite_create("dvv");
  TCase *cc = tcase_create("context");
  tcase_add_test(cc, cc_add_folds_contiguous_dots);
  tcase_add_test(cc, cc_limits_refuse_and_leave_context_unchanged);
  tcase_add_test(cc, cc_compare_orders_dot_sets);
  suite_add_tcase(s, cc);

  TCase *obj = tcase_create("object");
  tcase_add_test(obj, put_with_get_context_replaces_exactly_what_was_seen);
  tcase_add_test(obj, put_without_context_adds_a_sibling);
  tcase_add_test(obj, tombstone_with_old_context_keeps_the_concurrent_sibling);
  tcase_add_test(obj, sibling_cap_refuses_and_leaves_object_unchanged);
  tcase_add_test(obj, context_limit_refuses_put_and_leaves_object_unchanged);
  tcase_add_test(obj, put_mints_above_dots_the_context_has_seen);
  tcase_add_test(obj, put_mints_at_least_the_floor_after_a_reap);
  tcase_add_test(obj, put_refuses_a_context_covering_every_counter);
  tcase_add_test(obj, merge_of_a_reused_dot_converges);
  tcase_add_test(obj, interleaved_clients_do_not_explode_siblings);
  tcase_add_test(obj, wiped_node_new_writes_survive);
  tcase_add_test(obj, merge_over_limit_refuses_and_leaves_object_unchanged);
  suite_add_tcase(s, obj);

  TCase *laws = tcase_create("merge laws");
  tcase_set_timeout(laws, 60);
  tcase_add_test(laws, merge_is_commutative_associative_idempotent);
  suite_add_tcase(s, laws);

  TCase *enc = tcase_create("encoding");
  tcase_set_timeout(enc, 30);
  tcase_add_test(enc, encode_decode_round_trip);
  tcase_add_test(enc, decode_truncated_record_is_corrupt);
  tcase_add_test(enc, decode_garbage_never_crashes);
  tcase_add_test(enc, decode_rejects_each_broken_rule);
  tcase_add_test(enc, decode_context_rejects_bad_bytes);
  tcase_add_test(enc, check_reports_broken_invariants);
  suite_add_tcase(s, enc);

  TCase *hlc = tcase_create("hlc");
  tcase_add_test(hlc, hlc_is_monotonic_when_wall_clock_goes_back);
  tcase_add_test(hlc, hlc_observe_moves_past_remote);
  suite_add_tcase(s, hlc);
  return s;
}
