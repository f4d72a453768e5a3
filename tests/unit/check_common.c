/* check_common.c: kv_err's table, consistency level names, and partition hashing. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "hash.h"
#include "kv_err.h"
#include "level.h"

START_TEST(err_table_is_consistent) {
  ck_assert_str_eq(kv_err_name(KV_EINVAL), "KV_EINVAL");
  ck_assert_str_eq(kv_strerror(KV_EUNAVAILABLE), "not enough live replicas");
  ck_assert_int_eq(kv_err_grpc_code(KV_OK), 0);
  ck_assert_str_eq(kv_grpc_code_name(kv_err_grpc_code(KV_EINVAL)), "INVALID_ARGUMENT");
  ck_assert_str_eq(kv_grpc_code_name(kv_err_grpc_code(KV_ENOTFOUND)), "NOT_FOUND");
  ck_assert_str_eq(kv_grpc_code_name(kv_err_grpc_code(KV_EUNAVAILABLE)), "UNAVAILABLE");
  ck_assert_str_eq(kv_grpc_code_name(kv_err_grpc_code(KV_ETIMEDOUT)), "DEADLINE_EXCEEDED");
  ck_assert_str_eq(kv_grpc_code_name(kv_err_grpc_code(KV_EBUSY)), "RESOURCE_EXHAUSTED");
  ck_assert_str_eq(kv_grpc_code_name(kv_err_grpc_code(KV_ECORRUPT)), "DATA_LOSS");
  ck_assert_str_eq(kv_grpc_code_name(99), "UNKNOWN");
}
END_TEST

START_TEST(status_set_formats_and_returns_code) {
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_int_eq(kv_status_set(&st, KV_EINVAL, "key is %d bytes", 7), KV_EINVAL);
  ck_assert_int_eq(st.code, KV_EINVAL);
  ck_assert_str_eq(st.msg, "key is 7 bytes");
  ck_assert_int_eq(kv_status_set(NULL, KV_EBUSY, "ignored"), KV_EBUSY);
}
END_TEST

START_TEST(level_names_parse_case_insensitively) {
  kv_level_t l;
  ck_assert(kv_level_parse("quorum", &l) && l == KV_LEVEL_QUORUM);
  ck_assert(kv_level_parse("Local_Quorum", &l) && l == KV_LEVEL_LOCAL_QUORUM);
  ck_assert(kv_level_parse("EACH_QUORUM", &l) && l == KV_LEVEL_EACH_QUORUM);
  ck_assert(kv_level_parse("", &l) && l == KV_LEVEL_DEFAULT);
  ck_assert(!kv_level_parse("QUORM", &l));
  ck_assert(!kv_level_parse("ONE ", &l));
  for (int i = 1; i < KV_LEVEL_COUNT; i++) {
    ck_assert(kv_level_parse(kv_level_name((kv_level_t)i), &l));
    ck_assert_int_eq(l, i);
    ck_assert_ptr_nonnull(strstr(kv_level_names_list(), kv_level_name((kv_level_t)i)));
  }
}
END_TEST

START_TEST(partitions_take_top_bits_and_spread) {
  ck_assert_uint_eq(kv_hash_partition(UINT64_MAX, 256), 255);
  ck_assert_uint_eq(kv_hash_partition(0, 256), 0);
  ck_assert_uint_eq(kv_hash_partition(0x8000000000000000ull, 2), 1);
  ck_assert_uint_eq(kv_hash_partition(12345, 1), 0);
  /* Same key in another keyspace hashes elsewhere; same inputs hash the same. */
  ck_assert(kv_hash_key("a", "k", 1) != kv_hash_key("b", "k", 1));
  ck_assert(kv_hash_key("a", "k", 1) == kv_hash_key("a", "k", 1));
  ck_assert(kv_hash_key("ab", "c", 1) != kv_hash_key("a", "bc", 2));
  /* 64k keys over 256 partitions: every partition within 25% of the mean. */
  unsigned counts[256] = {0};
  char key[16];
  for (int i = 0; i < 65536; i++) {
    int n = snprintf(key, sizeof key, "k%d", i);
    counts[kv_hash_partition(kv_hash_key("default", key, (size_t)n), 256)]++;
  }
  for (int p = 0; p < 256; p++) ck_assert(counts[p] > 192 && counts[p] < 320);
}
END_TEST

Suite *common_suite(void) {
  Suite *s = suite_create("common");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, err_table_is_consistent);
  tcase_add_test(tc, status_set_formats_and_returns_code);
  tcase_add_test(tc, level_names_parse_case_insensitively);
  tcase_add_test(tc, partitions_take_top_bits_and_spread);
  suite_add_tcase(s, tc);
  return s;
}
