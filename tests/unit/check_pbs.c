/* check_pbs.c: the PBS WARS model against cases worked by hand, its k-staleness formula, its
 * determinism, and every error with its sentence. No timing: latencies are made-up samples. */
#include <check.h>
#include <math.h>
#include <stdlib.h>

#include "pbs.h"

#define SAMPLES 100000
#define TRIALS 200000

static double mean10[SAMPLES], mean1[SAMPLES], one[1] = {1.0}, zero[1] = {0.0};

/* Samples of an exponential distribution of the given mean, by the inverse CDF over evenly
 * spaced quantiles (no randomness needed: the bootstrap draws among them). */
static void fill_exponential(double *v, size_t n, double mean) {
  for (size_t i = 0; i < n; i++) v[i] = -mean * log(1 - ((double)i + 0.5) / (double)n);
}

static void setup(void) {
  fill_exponential(mean10, SAMPLES, 10);
  fill_exponential(mean1, SAMPLES, 1);
}

static kv_pbs_dist_t dist(const double *v, size_t n) { return (kv_pbs_dist_t){v, n}; }

static const double times[] = {0, 1, 2, 5, 10, 20, 50, 100};
#define N_TIMES (sizeof times / sizeof times[0])

START_TEST(strict_quorums_are_always_consistent) {
  /* R + W > N: the read's quorum meets the write's, whatever the latencies. */
  kv_pbs_legs_t legs = {dist(mean10, SAMPLES), dist(mean1, SAMPLES), dist(mean1, SAMPLES),
                        dist(mean1, SAMPLES)};
  static const uint32_t rw[][3] = {{3, 2, 2}, {3, 1, 3}, {3, 3, 1}, {5, 3, 3}, {1, 1, 1}};
  for (size_t c = 0; c < sizeof rw / sizeof rw[0]; c++) {
    kv_pbs_model_t m = {.n = rw[c][0], .r = rw[c][1], .w = rw[c][2], .legs = &legs, .n_legs = 1};
    double p[N_TIMES];
    uint64_t rng = 7;
    kv_status_t st;
    ck_assert_int_eq(kv_pbs_t_visibility(&m, times, N_TIMES, 20000, &rng, p, &st), KV_OK);
    for (size_t j = 0; j < N_TIMES; j++) ck_assert_double_eq(p[j], 1.0);
  }
}
END_TEST

START_TEST(exponential_writes_match_the_closed_form) {
  /* N=3, R=W=1, W ~ Exp(mean 10 ms), A = R = S = 1 ms exactly. The commit is at min W_i + 1;
   * the read reaches the replica that answers it at commit + t + 1, so it is consistent when
   * W_0 - min W_i <= t + 2. W_0 is the minimum with probability 1/3; otherwise, by the
   * exponential's memorylessness, W_0 - min is again Exp(mean 10). So
   * P(t) = 1 - (2/3) exp(-(t + 2) / 10). */
  kv_pbs_legs_t legs = {dist(mean10, SAMPLES), dist(one, 1), dist(one, 1), dist(one, 1)};
  kv_pbs_model_t m = {.n = 3, .r = 1, .w = 1, .legs = &legs, .n_legs = 1};
  double p[N_TIMES];
  uint64_t rng = 42;
  kv_status_t st;
  ck_assert_int_eq(kv_pbs_t_visibility(&m, times, N_TIMES, TRIALS, &rng, p, &st), KV_OK);
  for (size_t j = 0; j < N_TIMES; j++) {
    double want = 1 - 2.0 / 3.0 * exp(-(times[j] + 2) / 10);
    ck_assert_msg(fabs(p[j] - want) < 0.01, "t=%g: %.4f, closed form %.4f", times[j], p[j], want);
  }
}
END_TEST

START_TEST(paper_setting_rises_with_t) {
  /* The setting: W ~ Exp(10), A, R, S ~ Exp(1), N=3, R=W=1. No closed form, but the
   * curve lies between the constant-leg case's shape bounds: at t=0 at least 1/3 (the replica
   * that acked first may answer), rising, and within 1% of 1 by t=50. */
  kv_pbs_legs_t legs = {dist(mean10, SAMPLES), dist(mean1, SAMPLES), dist(mean1, SAMPLES),
                        dist(mean1, SAMPLES)};
  kv_pbs_model_t m = {.n = 3, .r = 1, .w = 1, .legs = &legs, .n_legs = 1};
  double p[N_TIMES];
  uint64_t rng = 1;
  kv_status_t st;
  ck_assert_int_eq(kv_pbs_t_visibility(&m, times, N_TIMES, TRIALS, &rng, p, &st), KV_OK);
  ck_assert(p[0] > 1.0 / 3 && p[0] < 0.6);
  for (size_t j = 1; j < N_TIMES; j++) ck_assert(p[j] >= p[j - 1]);
  ck_assert(p[6] > 0.99);
  ck_assert(p[2] < p[4]); /* 2 ms vs 10 ms: a real rise, not a flat line */
}
END_TEST

START_TEST(per_replica_legs_model_a_reading_coordinator) {
  /* A tunekv shape: replica 0 coordinates the write (W = A = 0), replica 1 coordinates the read
   * (R = S = 0, so it answers an R=1 read by itself), replica 2 is remote for both. The read is
   * consistent when the write reached replica 1 by t: P(t) = P(Exp(10) <= t) = 1 - exp(-t/10). */
  kv_pbs_legs_t legs[3] = {
      {dist(zero, 1), dist(zero, 1), dist(one, 1), dist(one, 1)},
      {dist(mean10, SAMPLES), dist(one, 1), dist(zero, 1), dist(zero, 1)},
      {dist(mean10, SAMPLES), dist(one, 1), dist(one, 1), dist(one, 1)}};
  kv_pbs_model_t m = {.n = 3, .r = 1, .w = 1, .legs = legs, .n_legs = 3};
  double p[N_TIMES];
  uint64_t rng = 3;
  kv_status_t st;
  ck_assert_int_eq(kv_pbs_t_visibility(&m, times, N_TIMES, TRIALS, &rng, p, &st), KV_OK);
  for (size_t j = 0; j < N_TIMES; j++) {
    double want = 1 - exp(-times[j] / 10);
    ck_assert_msg(fabs(p[j] - want) < 0.01, "t=%g: %.4f, want %.4f", times[j], p[j], want);
  }
  /* R=2 adds replica 0 (R+S = 2 beats replica 2's 2 only by index order; both are 2): the
   * coordinator of the write always has it, so every read is consistent. */
  m.r = 2;
  ck_assert_int_eq(kv_pbs_t_visibility(&m, times, N_TIMES, 1000, &rng, p, &st), KV_OK);
  for (size_t j = 0; j < N_TIMES; j++) ck_assert_double_eq(p[j], 1.0);
}
END_TEST

START_TEST(same_seed_same_curve) {
  kv_pbs_legs_t legs = {dist(mean10, SAMPLES), dist(mean1, SAMPLES), dist(mean1, SAMPLES),
                        dist(mean1, SAMPLES)};
  kv_pbs_model_t m = {.n = 3, .r = 1, .w = 1, .legs = &legs, .n_legs = 1};
  double a[N_TIMES], b[N_TIMES];
  uint64_t r1 = 99, r2 = 99;
  kv_status_t st;
  ck_assert_int_eq(kv_pbs_t_visibility(&m, times, N_TIMES, 5000, &r1, a, &st), KV_OK);
  ck_assert_int_eq(kv_pbs_t_visibility(&m, times, N_TIMES, 5000, &r2, b, &st), KV_OK);
  for (size_t j = 0; j < N_TIMES; j++) ck_assert_double_eq(a[j], b[j]);
  ck_assert_uint_eq(r1, r2);
}
END_TEST

START_TEST(k_staleness_by_formula) {
  /* N=3, R=W=1: a read misses one write with probability C(2,1)/C(3,1) = 2/3. */
  ck_assert_double_eq_tol(kv_pbs_k_staleness(3, 1, 1, 1), 1.0 / 3, 1e-12);
  ck_assert_double_eq_tol(kv_pbs_k_staleness(3, 1, 1, 2), 5.0 / 9, 1e-12);
  /* N=5, R=W=2: C(3,2)/C(5,2) = 3/10. */
  ck_assert_double_eq_tol(kv_pbs_k_staleness(5, 2, 2, 1), 0.7, 1e-12);
  ck_assert_double_eq(kv_pbs_k_staleness(3, 2, 2, 1), 1.0);
  ck_assert_double_eq(kv_pbs_k_staleness(3, 1, 3, 1), 1.0);
  for (uint32_t n = 1; n <= 7; n++)
    for (uint32_t r = 1; r <= n; r++)
      for (uint32_t w = 1; w <= n; w++)
        for (uint32_t k = 1; k < 10; k++) {
          double p = kv_pbs_k_staleness(n, r, w, k);
          ck_assert(p >= 0 && p <= 1);
          ck_assert(kv_pbs_k_staleness(n, r, w, k + 1) >= p);
          if (r + w > n) ck_assert_double_eq(p, 1.0);
        }
  ck_assert_double_eq_tol(kv_pbs_kt_staleness(0.5, 3), 0.875, 1e-12);
  ck_assert_double_eq(kv_pbs_kt_staleness(1.0, 1), 1.0);
  ck_assert(kv_pbs_kt_staleness(0.3, 2) > kv_pbs_kt_staleness(0.3, 1));
}
END_TEST

START_TEST(rmse_of_curves) {
  double a[] = {0.1, 0.5, 0.9}, b[] = {0.1, 0.5, 0.9}, c[] = {0.2, 0.4, 0.9};
  ck_assert_double_eq(kv_pbs_rmse(a, b, 3), 0);
  ck_assert_double_eq_tol(kv_pbs_rmse(a, c, 3), sqrt(0.02 / 3), 1e-12);
  ck_assert_double_eq(kv_pbs_rmse(a, c, 0), 0);
}
END_TEST

/* The sentence of a model that fails kv_pbs_t_visibility. */
static const char *refusal(const kv_pbs_model_t *m, const double *t, size_t n_t,
                           uint32_t trials) {
  static kv_status_t st;
  double p[4];
  uint64_t rng = 1;
  ck_assert_int_eq(kv_pbs_t_visibility(m, t, n_t, trials, &rng, p, &st), KV_EINVAL);
  return st.msg;
}

START_TEST(bad_models_are_refused_with_a_sentence) {
  double bad[] = {1, -2}, nan_v[] = {NAN};
  kv_pbs_legs_t ok = {dist(one, 1), dist(one, 1), dist(one, 1), dist(one, 1)};
  kv_pbs_legs_t three[3] = {ok, ok, ok};
  kv_pbs_model_t m = {.n = 3, .r = 1, .w = 1, .legs = &ok, .n_legs = 1};
  double t[] = {0, 1};
  m.n = 0;
  ck_assert_str_eq(refusal(&m, t, 2, 10), "n is 0; it must be 1 to 16");
  m.n = 17;
  ck_assert_str_eq(refusal(&m, t, 2, 10), "n is 17; it must be 1 to 16");
  m.n = 3, m.r = 4;
  ck_assert_str_eq(refusal(&m, t, 2, 10), "r is 4; it must be 1 to n (3)");
  m.r = 1, m.w = 0;
  ck_assert_str_eq(refusal(&m, t, 2, 10), "w is 0; it must be 1 to n (3)");
  m.w = 1, m.n_legs = 2, m.legs = three;
  ck_assert_str_eq(refusal(&m, t, 2, 10),
                   "2 sets of legs for 3 replicas; give 1 (every replica alike) or one per replica");
  m.n_legs = 3;
  three[2].s = dist(one, 0);
  ck_assert_str_eq(refusal(&m, t, 2, 10), "the S samples of replica 2 are empty");
  three[2].s = dist(one, 1);
  three[1].w = dist(bad, 2);
  ck_assert_str_eq(refusal(&m, t, 2, 10),
                   "the W samples of replica 1 hold -2 at 1; samples are milliseconds, 0 or more");
  three[1].w = dist(one, 1);
  ok.a = dist(nan_v, 1);
  m.legs = &ok, m.n_legs = 1;
  ck_assert_str_eq(refusal(&m, t, 2, 10),
                   "the A samples hold nan at 0; samples are milliseconds, 0 or more");
  ok.a = dist(one, 1);
  ck_assert_str_eq(refusal(&m, t, 2, 0), "trials is 0; it must be 1 to 100000000");
  ck_assert_str_eq(refusal(&m, t, 0, 10), "0 times given; give 1 to 1024");
  double neg[] = {0, -1};
  ck_assert_str_eq(refusal(&m, neg, 2, 10), "time -1 ms is not 0 or more");
  kv_status_t st;
  ck_assert_int_eq(kv_pbs_check(&m, &st), KV_OK);
}
END_TEST

Suite *pbs_suite(void) {
  Suite *s = suite_create("pbs");
  TCase *tc = tcase_create("pbs");
  tcase_add_unchecked_fixture(tc, setup, NULL);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, strict_quorums_are_always_consistent);
  tcase_add_test(tc, exponential_writes_match_the_closed_form);
  tcase_add_test(tc, paper_setting_rises_with_t);
  tcase_add_test(tc, per_replica_legs_model_a_reading_coordinator);
  tcase_add_test(tc, same_seed_same_curve);
  tcase_add_test(tc, k_staleness_by_formula);
  tcase_add_test(tc, rmse_of_curves);
  tcase_add_test(tc, bad_models_are_refused_with_a_sentence);
  suite_add_tcase(s, tc);
  return s;
}
