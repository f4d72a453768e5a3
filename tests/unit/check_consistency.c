/* check_consistency.c: level arithmetic against replica shapes, and its refusals. */
#include <check.h>
#include <string.h>

#include "consistency.h"

/* One region "local" with n replicas, coordinator inside it. */
static kv_replica_shape_t shape_one_region(uint32_t n) {
  kv_replica_shape_t s;
  memset(&s, 0, sizeof s);
  s.keyspace = "default";
  s.region_count = 1;
  s.replicas[0] = n;
  s.region_names[0] = "local";
  s.local_region = 0;
  return s;
}

/* east 3 + west 2, coordinator in west. */
static kv_replica_shape_t shape_two_regions(void) {
  kv_replica_shape_t s = shape_one_region(3);
  s.region_count = 2;
  s.region_names[0] = "east";
  s.replicas[1] = 2;
  s.region_names[1] = "west";
  s.local_region = 1;
  return s;
}

static kv_need_t resolve_ok(kv_level_t level, uint32_t count, uint32_t prim, bool write,
                            const kv_replica_shape_t *s) {
  kv_consistency_t c = {.level = level, .count = count, .primaries = prim};
  kv_need_t need;
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_int_eq(kv_consistency_resolve(&c, write, s, &need, &st), KV_OK);
  return need;
}

static void resolve_fails(kv_level_t level, uint32_t count, uint32_t prim, bool write,
                          const kv_replica_shape_t *s, kv_err want, const char *msg) {
  kv_consistency_t c = {.level = level, .count = count, .primaries = prim};
  kv_need_t need;
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_int_eq(kv_consistency_resolve(&c, write, s, &need, &st), want);
  ck_assert_str_eq(st.msg, msg);
}

START_TEST(levels_count_over_one_region) {
  kv_replica_shape_t s = shape_one_region(3);
  ck_assert_uint_eq(resolve_ok(KV_LEVEL_ONE, 0, 0, true, &s).total, 1);
  ck_assert_uint_eq(resolve_ok(KV_LEVEL_TWO, 0, 0, true, &s).total, 2);
  ck_assert_uint_eq(resolve_ok(KV_LEVEL_THREE, 0, 0, false, &s).total, 3);
  ck_assert_uint_eq(resolve_ok(KV_LEVEL_QUORUM, 0, 0, true, &s).total, 2);
  ck_assert_uint_eq(resolve_ok(KV_LEVEL_ALL, 0, 0, false, &s).total, 3);
  kv_need_t any = resolve_ok(KV_LEVEL_ANY, 0, 0, true, &s);
  ck_assert(any.total == 1 && any.hint_counts);
  kv_need_t lq = resolve_ok(KV_LEVEL_LOCAL_QUORUM, 0, 0, true, &s);
  ck_assert(lq.total == 2 && lq.local == 2);
  s = shape_one_region(5);
  ck_assert_uint_eq(resolve_ok(KV_LEVEL_QUORUM, 0, 0, true, &s).total, 3);
  s = shape_one_region(4);
  ck_assert_uint_eq(resolve_ok(KV_LEVEL_QUORUM, 0, 0, true, &s).total, 3);
}
END_TEST

START_TEST(levels_count_over_regions) {
  kv_replica_shape_t s = shape_two_regions();
  ck_assert_uint_eq(resolve_ok(KV_LEVEL_QUORUM, 0, 0, true, &s).total, 3);
  kv_need_t lo = resolve_ok(KV_LEVEL_LOCAL_ONE, 0, 0, false, &s);
  ck_assert(lo.total == 1 && lo.local == 1);
  kv_need_t lq = resolve_ok(KV_LEVEL_LOCAL_QUORUM, 0, 0, false, &s);
  ck_assert(lq.total == 2 && lq.local == 2);
  kv_need_t each = resolve_ok(KV_LEVEL_EACH_QUORUM, 0, 0, true, &s);
  ck_assert(each.per_region[0] == 2 && each.per_region[1] == 2 && each.total == 4);
}
END_TEST

START_TEST(explicit_counts_override_and_primaries_raise) {
  kv_replica_shape_t s = shape_one_region(3);
  ck_assert_uint_eq(resolve_ok(KV_LEVEL_ONE, 3, 0, true, &s).total, 3);
  kv_need_t n = resolve_ok(KV_LEVEL_ONE, 0, 2, false, &s);
  ck_assert(n.total == 2 && n.primaries == 2);
}
END_TEST

START_TEST(impossible_requests_are_refused) {
  kv_replica_shape_t s = shape_one_region(1);
  resolve_fails(KV_LEVEL_ONE, 2, 0, false, &s, KV_EINVAL,
                "r is 2 but keyspace 'default' has only N=1 replicas");
  resolve_fails(KV_LEVEL_ONE, 4, 0, true, &s, KV_EINVAL,
                "w is 4 but keyspace 'default' has only N=1 replicas");
  resolve_fails(KV_LEVEL_ONE, 0, 2, true, &s, KV_EINVAL,
                "pw is 2 but keyspace 'default' has only N=1 replicas");
  resolve_fails(KV_LEVEL_ONE, 0, 3, false, &s, KV_EINVAL,
                "pr is 3 but keyspace 'default' has only N=1 replicas");
  resolve_fails(KV_LEVEL_THREE, 0, 0, true, &s, KV_EINVAL,
                "level THREE needs 3 replicas but keyspace 'default' has N=1");
  resolve_fails(KV_LEVEL_ANY, 0, 0, false, &s, KV_EINVAL,
                "ANY is a write level; reads need at least ONE");
  s.local_region = -1;
  resolve_fails(KV_LEVEL_LOCAL_QUORUM, 0, 0, true, &s, KV_EUNAVAILABLE,
                "LOCAL_QUORUM needs replicas in the coordinator's region, and keyspace "
                "'default' has none there");
}
END_TEST

Suite *consistency_suite(void) {
  Suite *s = suite_create("consistency");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, levels_count_over_one_region);
  tcase_add_test(tc, levels_count_over_regions);
  tcase_add_test(tc, explicit_counts_override_and_primaries_raise);
  tcase_add_test(tc, impossible_requests_are_refused);
  suite_add_tcase(s, tc);
  return s;
}
