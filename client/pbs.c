/* pbs.c: the WARS Monte Carlo of PBS (see pbs.h).
 *
 * One trial: draw W_i, A_i, R_i, S_i for every replica; commit = the w-th smallest W_i + A_i;
 * order the replicas by R_i + S_i (ties by index: the draws are continuous in practice, and a
 * tie between equal constant legs is symmetric anyway); for the first r of them compute
 * tau_i = W_i - commit - R_i, the smallest t at which replica i's response carries the write;
 * the read is consistent at t exactly when t >= tau = min over those r of tau_i. So a trial is
 * one number, tau, and the curve is the fraction of trials with tau <= t, counted for every t
 * from the same trials. Work: trials x (n log n + n_t). */
#include "pbs.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>

#include "log.h"

/* splitmix64 on the caller's state. */
static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* A uniform pick among the samples. The modulo bias is below n / 2^64: nothing. */
static double draw(const kv_pbs_dist_t *d, uint64_t *rng) { return d->ms[rng_next(rng) % d->n]; }

static kv_err check_dist(const kv_pbs_dist_t *d, const char *leg, size_t replica, bool per_replica,
                         kv_status_t *st) {
  char who[48];
  if (per_replica) snprintf(who, sizeof who, "the %s samples of replica %zu", leg, replica);
  else snprintf(who, sizeof who, "the %s samples", leg);
  if (d->n == 0 || !d->ms) return kv_status_set(st, KV_EINVAL, "%s are empty", who);
  for (size_t i = 0; i < d->n; i++)
    if (!isfinite(d->ms[i]) || d->ms[i] < 0)
      return kv_status_set(st, KV_EINVAL, "%s hold %g at %zu; samples are milliseconds, 0 or more",
                           who, d->ms[i], i);
  return KV_OK;
}

kv_err kv_pbs_check(const kv_pbs_model_t *m, kv_status_t *st) {
  if (m->n == 0 || m->n > KV_PBS_REPLICAS_MAX)
    return kv_status_set(st, KV_EINVAL, "n is %u; it must be 1 to %u", m->n, KV_PBS_REPLICAS_MAX);
  if (m->r == 0 || m->r > m->n)
    return kv_status_set(st, KV_EINVAL, "r is %u; it must be 1 to n (%u)", m->r, m->n);
  if (m->w == 0 || m->w > m->n)
    return kv_status_set(st, KV_EINVAL, "w is %u; it must be 1 to n (%u)", m->w, m->n);
  if (m->n_legs != 1 && m->n_legs != m->n)
    return kv_status_set(st, KV_EINVAL, "%zu sets of legs for %u replicas; give 1 (every replica "
                         "alike) or one per replica", m->n_legs, m->n);
  for (size_t i = 0; i < m->n_legs; i++) {
    const kv_pbs_legs_t *l = &m->legs[i];
    bool per = m->n_legs > 1;
    kv_err err;
    if ((err = check_dist(&l->w, "W", i, per, st)) != KV_OK ||
        (err = check_dist(&l->a, "A", i, per, st)) != KV_OK ||
        (err = check_dist(&l->r, "R", i, per, st)) != KV_OK ||
        (err = check_dist(&l->s, "S", i, per, st)) != KV_OK)
      return err;
  }
  return KV_OK;
}

/* Sorts v[0..n) ascending (n is at most KV_PBS_REPLICAS_MAX: insertion sort). */
static void sort_small(double *v, uint32_t n) {
  for (uint32_t i = 1; i < n; i++) {
    double x = v[i];
    uint32_t j = i;
    for (; j > 0 && v[j - 1] > x; j--) v[j] = v[j - 1];
    v[j] = x;
  }
}

/* One trial's tau: the smallest t at which the read is consistent (may be negative). */
static double trial_tau(const kv_pbs_model_t *m, uint64_t *rng) {
  double w[KV_PBS_REPLICAS_MAX] = {0}, r[KV_PBS_REPLICAS_MAX] = {0};
  double acked[KV_PBS_REPLICAS_MAX] = {0};
  double rs[KV_PBS_REPLICAS_MAX] = {0};
  uint32_t order[KV_PBS_REPLICAS_MAX];
  for (uint32_t i = 0; i < m->n; i++) {
    const kv_pbs_legs_t *l = &m->legs[m->n_legs == 1 ? 0 : i];
    w[i] = draw(&l->w, rng);
    acked[i] = w[i] + draw(&l->a, rng);
    r[i] = draw(&l->r, rng);
    rs[i] = r[i] + draw(&l->s, rng);
    order[i] = i;
  }
  sort_small(acked, m->n);
  double commit = acked[m->w - 1];
  /* The r replicas that answer the read first: a stable insertion sort of indexes by R+S. */
  for (uint32_t i = 1; i < m->n; i++) {
    uint32_t x = order[i], j = i;
    for (; j > 0 && rs[order[j - 1]] > rs[x]; j--) order[j] = order[j - 1];
    order[j] = x;
  }
  double tau = INFINITY;
  for (uint32_t k = 0; k < m->r; k++) {
    uint32_t i = order[k];
    double t = w[i] - commit - r[i];
    if (t < tau) tau = t;
  }
  return tau;
}

kv_err kv_pbs_t_visibility(const kv_pbs_model_t *m, const double *t_ms, size_t n_t,
                           uint32_t trials, uint64_t *rng, double *p_out, kv_status_t *st) {
  kv_err err = kv_pbs_check(m, st);
  if (err != KV_OK) return err;
  if (trials == 0 || trials > KV_PBS_TRIALS_MAX)
    return kv_status_set(st, KV_EINVAL, "trials is %u; it must be 1 to %u", trials,
                         KV_PBS_TRIALS_MAX);
  if (n_t == 0 || n_t > KV_PBS_TIMES_MAX)
    return kv_status_set(st, KV_EINVAL, "%zu times given; give 1 to %u", n_t, KV_PBS_TIMES_MAX);
  for (size_t j = 0; j < n_t; j++)
    if (!isfinite(t_ms[j]) || t_ms[j] < 0)
      return kv_status_set(st, KV_EINVAL, "time %g ms is not 0 or more", t_ms[j]);
  for (size_t j = 0; j < n_t; j++) p_out[j] = 0;
  for (uint32_t k = 0; k < trials; k++) {
    double tau = trial_tau(m, rng);
    for (size_t j = 0; j < n_t; j++)
      if (t_ms[j] >= tau) p_out[j] += 1;
  }
  for (size_t j = 0; j < n_t; j++) p_out[j] /= trials;
  return KV_OK;
}

/* C(n, k) as a double (n <= KV_PBS_REPLICAS_MAX: exact). */
static double choose(uint32_t n, uint32_t k) {
  if (k > n) return 0;
  double c = 1;
  for (uint32_t i = 1; i <= k; i++) c = c * (n - k + i) / i;
  return c;
}

double kv_pbs_k_staleness(uint32_t n, uint32_t r, uint32_t w, uint32_t k) {
  KV_ASSERT(n >= 1 && r >= 1 && r <= n && w >= 1 && w <= n && k >= 1);
  double miss = choose(n - w, r) / choose(n, r);
  return 1 - pow(miss, k);
}

double kv_pbs_kt_staleness(double p_t, uint32_t k) {
  KV_ASSERT(k >= 1);
  return 1 - pow(1 - p_t, k);
}

double kv_pbs_rmse(const double *a, const double *b, size_t n) {
  if (n == 0) return 0;
  double sum = 0;
  for (size_t i = 0; i < n; i++) sum += (a[i] - b[i]) * (a[i] - b[i]);
  return sqrt(sum / (double)n);
}
