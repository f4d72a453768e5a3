/* check_histogram.c: log-linear histogram buckets, percentiles and their 1% error bound. */
#include <check.h>
#include <math.h>
#include <stdlib.h>

#include "histogram.h"

static kv_histogram_t hist; /* 30 KiB: kept off the test's stack */

START_TEST(buckets_are_contiguous_and_narrow) {
  /* Every bucket starts one past the previous one's end, and is at most 1/128 of its low. */
  ck_assert_uint_eq(kv_histogram_bucket_low(0), 0);
  for (uint32_t b = 0; b < KV_HISTOGRAM_BUCKETS; b++) {
    uint64_t low = kv_histogram_bucket_low(b), high = kv_histogram_bucket_high(b);
    ck_assert_uint_le(low, high);
    ck_assert_uint_eq(kv_histogram_bucket(low), b);
    ck_assert_uint_eq(kv_histogram_bucket(high), b);
    if (b + 1 < KV_HISTOGRAM_BUCKETS) ck_assert_uint_eq(kv_histogram_bucket_low(b + 1), high + 1);
    if (low >= 256) ck_assert_uint_le((high - low + 1) * 128, low);
    else ck_assert_uint_eq(high, low);
  }
  ck_assert_uint_eq(kv_histogram_bucket_high(KV_HISTOGRAM_BUCKETS - 1), KV_HISTOGRAM_VALUE_MAX);
  ck_assert_uint_eq(kv_histogram_bucket(UINT64_MAX), KV_HISTOGRAM_BUCKETS - 1);
  /* 60 s in ns is inside the range, not clamped. */
  ck_assert_uint_lt(60000000000ull, KV_HISTOGRAM_VALUE_MAX);
}
END_TEST

START_TEST(empty_histogram_reads_zero) {
  kv_histogram_init(&hist);
  ck_assert_uint_eq(hist.total, 0);
  ck_assert_uint_eq(kv_histogram_percentile(&hist, 50), 0);
  ck_assert_uint_eq(kv_histogram_percentile(&hist, 100), 0);
  ck_assert(kv_histogram_mean(&hist) == 0.0);
}
END_TEST

START_TEST(small_values_are_exact) {
  kv_histogram_init(&hist);
  for (uint64_t v = 1; v <= 100; v++) kv_histogram_record(&hist, v);
  ck_assert_uint_eq(hist.total, 100);
  ck_assert_uint_eq(kv_histogram_percentile(&hist, 0), 1);
  ck_assert_uint_eq(kv_histogram_percentile(&hist, 1), 1);
  ck_assert_uint_eq(kv_histogram_percentile(&hist, 50), 50);
  ck_assert_uint_eq(kv_histogram_percentile(&hist, 50.5), 51);
  ck_assert_uint_eq(kv_histogram_percentile(&hist, 99), 99);
  ck_assert_uint_eq(kv_histogram_percentile(&hist, 99.9), 100);
  ck_assert_uint_eq(kv_histogram_percentile(&hist, 100), 100);
  ck_assert(fabs(kv_histogram_mean(&hist) - 50.5) < 1e-9);
}
END_TEST

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

START_TEST(percentiles_within_one_percent) {
  /* Log-uniform latencies from 1 us to 60 s: every percentile is within 1% of the exact
   * one computed from the sorted samples. */
  enum { N = 100000 };
  static uint64_t samples[N];
  uint64_t x = 88172645463325252ull;
  kv_histogram_init(&hist);
  for (int i = 0; i < N; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    double u = (double)(x >> 11) / 9007199254740992.0;
    samples[i] = (uint64_t)(1000.0 * pow(6e7, u));
    kv_histogram_record(&hist, samples[i]);
  }
  qsort(samples, N, sizeof samples[0], cmp_u64);
  static const double ps[] = {0.1, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99};
  for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
    size_t rank = (size_t)ceil(ps[i] / 100.0 * N);
    double exact = (double)samples[rank - 1];
    double got = (double)kv_histogram_percentile(&hist, ps[i]);
    ck_assert_msg(fabs(got - exact) <= 0.01 * exact, "p%g: got %.0f, exact %.0f", ps[i], got,
                  exact);
  }
  ck_assert_uint_eq(kv_histogram_percentile(&hist, 100), samples[N - 1]);
  ck_assert_uint_eq(kv_histogram_percentile(&hist, 0), samples[0]);
}
END_TEST

START_TEST(huge_values_are_clamped_and_counted) {
  kv_histogram_init(&hist);
  kv_histogram_record(&hist, 5);
  kv_histogram_record(&hist, UINT64_MAX);
  ck_assert_uint_eq(hist.clamped, 1);
  ck_assert_uint_eq(hist.counts[KV_HISTOGRAM_BUCKETS - 1], 1);
  ck_assert_uint_eq(kv_histogram_percentile(&hist, 100), UINT64_MAX);
  ck_assert_uint_eq(kv_histogram_percentile(&hist, 50), 5);
}
END_TEST

START_TEST(merge_adds_counts) {
  static kv_histogram_t other;
  kv_histogram_init(&hist);
  kv_histogram_init(&other);
  for (uint64_t v = 1; v <= 50; v++) kv_histogram_record(&hist, v * 1000);
  for (uint64_t v = 51; v <= 100; v++) kv_histogram_record(&other, v * 1000);
  kv_histogram_merge(&hist, &other);
  ck_assert_uint_eq(hist.total, 100);
  ck_assert_uint_eq(hist.min, 1000);
  ck_assert_uint_eq(hist.max, 100000);
  uint64_t p50 = kv_histogram_percentile(&hist, 50);
  ck_assert_uint_ge(p50, 50000 - 500);
  ck_assert_uint_le(p50, 50000 + 500);
}
END_TEST

Suite *histogram_suite(void) {
  Suite *s = suite_create("histogram");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, buckets_are_contiguous_and_narrow);
  tcase_add_test(tc, empty_histogram_reads_zero);
  tcase_add_test(tc, small_values_are_exact);
  tcase_add_test(tc, percentiles_within_one_percent);
  tcase_add_test(tc, huge_values_are_clamped_and_counted);
  tcase_add_test(tc, merge_adds_counts);
  suite_add_tcase(s, tc);
  return s;
}
