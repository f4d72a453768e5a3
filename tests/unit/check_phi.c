/* check_phi.c: the phi-accrual failure detector fed heartbeat streams with known intervals.
 * Crossing times are checked against the closed form: phi passes p when the silence exceeds
 * mean + z(p) * deviation, z being the normal quantile with tail 10^-p. */
#include <check.h>
#include <math.h>

#include "phi.h"

#define T0 1000000u       /* the clock does not start at 0 */
#define Z8 5.612001244    /* P(X > mean + Z8 * deviation) = 1e-8 for a normal X */
#define Z5 4.264890794    /* ... = 1e-5 */

/* Feeds n heartbeats every interval_ms after the latest one; returns the time of the last. */
static uint64_t beat(kv_phi_t *d, uint64_t from_ms, uint32_t interval_ms, uint32_t n) {
  uint64_t t = from_ms;
  for (uint32_t i = 0; i < n; i++) {
    t += interval_ms;
    kv_phi_heartbeat(d, t);
  }
  return t;
}

/* The first whole ms after the latest heartbeat at which phi exceeds threshold. */
static uint64_t first_ms_over(const kv_phi_t *d, double threshold) {
  uint64_t ms = 0;
  while (kv_phi(d, d->last_ms + ms) <= threshold) {
    ms++;
    ck_assert_uint_lt(ms, 1000000);
  }
  return ms;
}

/* floor(mean + z * deviation) + 1: the first whole ms past the closed-form crossing. */
static uint64_t crossing(double mean, double deviation, double z) {
  return (uint64_t)floor(mean + z * deviation) + 1;
}

START_TEST(no_heartbeat_no_suspicion) {
  static kv_phi_t d;
  kv_phi_init(&d);
  ck_assert(!d.heard);
  ck_assert_double_eq(kv_phi(&d, 0), 0);
  ck_assert_double_eq(kv_phi(&d, T0 * 1000ull), 0);
}
END_TEST

/* One heartbeat gives no interval yet: the heartbeat interval is assumed, with the
 * minimum deviation. */
START_TEST(first_heartbeat_assumes_the_heartbeat_interval) {
  static kv_phi_t d;
  kv_phi_init(&d);
  kv_phi_heartbeat(&d, T0);
  ck_assert(d.heard);
  ck_assert_uint_eq(d.last_ms, T0);
  ck_assert_uint_eq(d.count, 0);
  ck_assert_double_eq(kv_phi_mean_ms(&d), KV_PHI_FIRST_INTERVAL_MS);
  ck_assert_double_eq(kv_phi_std_dev_ms(&d), KV_PHI_STD_DEV_MIN_MS);
  ck_assert_double_lt(kv_phi(&d, T0), 0.1);
  ck_assert_uint_eq(first_ms_over(&d, 8),
                    crossing(KV_PHI_FIRST_INTERVAL_MS, KV_PHI_STD_DEV_MIN_MS, Z8));
  /* The second heartbeat brings the first interval. */
  kv_phi_heartbeat(&d, T0 + 250);
  ck_assert_uint_eq(d.count, 1);
  ck_assert_double_eq(kv_phi_mean_ms(&d), 250);
}
END_TEST

/* A heartbeat every 100 ms, each on time: phi is at most -log10(1/2) when each arrives. */
START_TEST(regular_stream_stays_low) {
  static kv_phi_t d;
  kv_phi_init(&d);
  uint64_t t = T0;
  kv_phi_heartbeat(&d, t);
  double worst = 0;
  for (int i = 0; i < 3000; i++) {
    for (uint64_t ms = 0; ms <= 100; ms += 10) worst = fmax(worst, kv_phi(&d, t + ms));
    t += 100;
    kv_phi_heartbeat(&d, t);
  }
  ck_assert_double_lt(worst, 0.302);
  ck_assert_double_eq(kv_phi_mean_ms(&d), 100);
  /* A perfectly regular stream has deviation 0: the minimum keeps phi finite and calm for
   * a heartbeat that is a little late. */
  ck_assert_double_eq(kv_phi_std_dev_ms(&d), KV_PHI_STD_DEV_MIN_MS);
  ck_assert_double_lt(kv_phi(&d, t + 101), 0.31);
  ck_assert_double_lt(kv_phi(&d, t + 200), 1);
}
END_TEST

START_TEST(phi_grows_with_silence) {
  static kv_phi_t d;
  kv_phi_init(&d);
  uint64_t last = beat(&d, T0, 100, 50);
  double before = kv_phi(&d, last);
  for (uint64_t ms = 1; ms <= 3600u * 1000u; ms += ms < 10000 ? 1 : 997) {
    double phi = kv_phi(&d, last + ms);
    ck_assert(isfinite(phi));
    if (ms > 100) ck_assert_double_gt(phi, before); /* strictly, once past the mean */
    else ck_assert_double_ge(phi, before);
    before = phi;
  }
  ck_assert_double_gt(before, 1e6); /* an hour of silence at 100 ms intervals */
  /* Where the tail switches to its series (30 deviations past the mean) phi is continuous. */
  double below = kv_phi(&d, last + 100 + 3000 - 1), at = kv_phi(&d, last + 100 + 3000);
  ck_assert_double_lt(at - below, 0.7);
  ck_assert_double_gt(at, below);
  ck_assert_double_eq_tol(at, 197.309209, 1e-5);
}
END_TEST

START_TEST(threshold_crossing_for_known_intervals) {
  static kv_phi_t d;
  /* Regular 100 ms: the minimum deviation applies. */
  kv_phi_init(&d);
  beat(&d, T0, 100, 100);
  ck_assert_uint_eq(first_ms_over(&d, 8), crossing(100, KV_PHI_STD_DEV_MIN_MS, Z8));
  ck_assert_uint_eq(first_ms_over(&d, 5), crossing(100, KV_PHI_STD_DEV_MIN_MS, Z5));
  ck_assert_uint_eq(first_ms_over(&d, 8), 662);

  /* Alternating 100 and 500 ms: mean 300, deviation 200 (above the minimum). */
  kv_phi_init(&d);
  uint64_t t = T0;
  kv_phi_heartbeat(&d, t);
  for (int i = 0; i < 50; i++) {
    t = beat(&d, t, 100, 1);
    t = beat(&d, t, 500, 1);
  }
  ck_assert_double_eq(kv_phi_mean_ms(&d), 300);
  ck_assert_double_eq_tol(kv_phi_std_dev_ms(&d), 200, 1e-9);
  ck_assert_uint_eq(first_ms_over(&d, 8), crossing(300, 200, Z8));
  ck_assert_uint_eq(first_ms_over(&d, 8), 1423);
}
END_TEST

/* After a burst of answers every 2 ms, the idle heartbeat 100 ms later is no alarm. */
START_TEST(a_busy_peer_may_pause_for_a_heartbeat_interval) {
  static kv_phi_t d;
  kv_phi_init(&d);
  uint64_t last = beat(&d, T0, 2, KV_PHI_WINDOW_MAX);
  ck_assert_double_eq(kv_phi_mean_ms(&d), 2);
  ck_assert_double_lt(kv_phi(&d, last + KV_PEER_HEARTBEAT_MS + 5), 1);
}
END_TEST

START_TEST(window_keeps_the_latest_intervals) {
  static kv_phi_t d;
  kv_phi_init(&d);
  uint64_t t = beat(&d, T0, 1000, KV_PHI_WINDOW_MAX + 1);
  ck_assert_uint_eq(d.count, KV_PHI_WINDOW_MAX);
  ck_assert_double_eq(kv_phi_mean_ms(&d), 1000);
  t = beat(&d, t, 50, KV_PHI_WINDOW_MAX - 1);
  ck_assert_uint_eq(d.count, KV_PHI_WINDOW_MAX);
  ck_assert_double_eq(kv_phi_mean_ms(&d), (1000.0 + (KV_PHI_WINDOW_MAX - 1) * 50.0) /
                                              KV_PHI_WINDOW_MAX);
  /* One more evicts the last 1000 ms interval: the window holds 50s only. */
  t = beat(&d, t, 50, 1);
  ck_assert_uint_eq(d.count, KV_PHI_WINDOW_MAX);
  ck_assert_double_eq(kv_phi_mean_ms(&d), 50);
  ck_assert_double_eq(kv_phi_std_dev_ms(&d), KV_PHI_STD_DEV_MIN_MS);
  ck_assert_uint_eq(first_ms_over(&d, 8), crossing(50, KV_PHI_STD_DEV_MIN_MS, Z8));
}
END_TEST

/* A silence longer than KV_PHI_INTERVAL_MS_MAX ends in a heartbeat but is not an interval:
 * one stopped process must not teach the detector to wait seconds. */
START_TEST(outages_are_not_samples) {
  static kv_phi_t d;
  kv_phi_init(&d);
  uint64_t t = beat(&d, T0, 100, 10);
  ck_assert_uint_eq(d.count, 9);
  t = beat(&d, t, KV_PHI_INTERVAL_MS_MAX + 1, 1);
  ck_assert_uint_eq(d.count, 9);
  ck_assert_uint_eq(d.last_ms, t);
  ck_assert_double_eq(kv_phi_mean_ms(&d), 100);
  ck_assert_double_lt(kv_phi(&d, t + 100), 0.31);
  beat(&d, t, KV_PHI_INTERVAL_MS_MAX, 1);
  ck_assert_uint_eq(d.count, 10);
  ck_assert_double_eq(kv_phi_mean_ms(&d), (9 * 100.0 + KV_PHI_INTERVAL_MS_MAX) / 10);
}
END_TEST

/* A heartbeat that ends an outage restarts the timing and teaches nothing, even when the
 * outage was short enough to count as an interval. */
START_TEST(restart_after_an_outage_is_not_a_sample) {
  static kv_phi_t d;
  kv_phi_init(&d);
  uint64_t t = beat(&d, T0, 100, 20);
  ck_assert_uint_eq(d.count, 19);
  t += 1100;
  kv_phi_restart(&d, t);
  ck_assert_uint_eq(d.count, 19);
  ck_assert_uint_eq(d.last_ms, t);
  ck_assert_double_eq(kv_phi_mean_ms(&d), 100);
  ck_assert_uint_eq(first_ms_over(&d, 8), crossing(100, KV_PHI_STD_DEV_MIN_MS, Z8));
  /* The next heartbeat is an interval again. */
  beat(&d, t, 200, 1);
  ck_assert_uint_eq(d.count, 20);
  ck_assert_double_eq(kv_phi_mean_ms(&d), 105);
  /* A restart may also come first: it is then just the first heartbeat. */
  kv_phi_init(&d);
  kv_phi_restart(&d, T0);
  ck_assert(d.heard);
  ck_assert_uint_eq(d.count, 0);
}
END_TEST

/* A status read can take its clock just before a heartbeat is recorded. */
START_TEST(time_before_the_latest_heartbeat_is_no_silence) {
  static kv_phi_t d;
  kv_phi_init(&d);
  uint64_t t = beat(&d, T0, 100, 10);
  ck_assert_double_eq(kv_phi(&d, t - 50), kv_phi(&d, t));
  ck_assert_double_lt(kv_phi(&d, t - 50), 0.1);
}
END_TEST

Suite *phi_suite(void) {
  Suite *s = suite_create("phi");
  TCase *tc = tcase_create("detector");
  tcase_add_test(tc, no_heartbeat_no_suspicion);
  tcase_add_test(tc, first_heartbeat_assumes_the_heartbeat_interval);
  tcase_add_test(tc, regular_stream_stays_low);
  tcase_add_test(tc, phi_grows_with_silence);
  tcase_add_test(tc, threshold_crossing_for_known_intervals);
  tcase_add_test(tc, a_busy_peer_may_pause_for_a_heartbeat_interval);
  tcase_add_test(tc, window_keeps_the_latest_intervals);
  tcase_add_test(tc, outages_are_not_samples);
  tcase_add_test(tc, restart_after_an_outage_is_not_a_sample);
  tcase_add_test(tc, time_before_the_latest_heartbeat_is_no_silence);
  suite_add_tcase(s, tc);
  return s;
}
