/* pbs.h: Probabilistically Bounded Staleness (Bailis, Venkataraman, Franklin, Hellerstein,
 * Stoica, "Probabilistically Bounded Staleness for Practical Partial Quorums", VLDB 2012):
 * how likely a read at R is to see a write at W, t ms after that write was acknowledged.
 *
 * The WARS model. A write goes from the coordinator to each of the N replicas (W_i ms), and
 * each replica's acknowledgement comes back (A_i); the write commits when the W-th
 * acknowledgement arrives: at the W-th smallest W_i + A_i. A read starts t ms after the commit:
 * its request reaches replica i after R_i, and the response comes back after S_i; the read
 * takes the first R responses (smallest R_i + S_i). Replica i's response carries the write when
 * the write reached it before the read did: W_i <= commit + t + R_i. The read is consistent when
 * one of its R responses carries the write. Monte Carlo: draw every W_i, A_i, R_i, S_i from the
 * measured distributions, many times, and count.
 *
 * Distributions are empirical: arrays of measured samples, drawn uniformly (a bootstrap). The
 * paper draws every replica from the same four distributions; here a model may also give each
 * replica its own, because a tunekv coordinator is itself a replica (its own W and A are close
 * to 0) and a read's coordinator reads its own replica first (its R and S are close to 0).
 *
 * Pure C: no IO, no clock, no global state. Randomness comes from the caller's seeded state,
 * so the same seed and inputs give the same numbers. Every trial draws once and is judged at
 * every t (common random numbers), so a predicted curve never goes down as t grows. */
#ifndef KV_PBS_H
#define KV_PBS_H

#include <stddef.h>
#include <stdint.h>

#include "kv_err.h"
#include "kv_limits.h"

#define KV_PBS_REPLICAS_MAX KV_REPLICAS_MAX
#define KV_PBS_TRIALS_MAX 100000000u
#define KV_PBS_TIMES_MAX 1024u

/* Samples of one latency in ms, each finite and >= 0. Borrowed for the call. */
typedef struct {
  const double *ms;
  size_t n;
} kv_pbs_dist_t;

/* The four legs for one replica (or for every replica alike). */
typedef struct {
  kv_pbs_dist_t w, a, r, s;
} kv_pbs_legs_t;

typedef struct {
  uint32_t n, r, w;            /* replicas, read and write quorum sizes: 1 <= r, w <= n */
  const kv_pbs_legs_t *legs;   /* n_legs entries, borrowed for the call */
  size_t n_legs;               /* 1: every replica draws from legs[0] (the paper's model);
                                  n: replica i draws from legs[i] */
} kv_pbs_model_t;

/* Checks a model. KV_EINVAL with a sentence when n is 0 or above KV_PBS_REPLICAS_MAX, r or w
 * is outside 1..n, n_legs is neither 1 nor n, a distribution has no sample, or a sample is
 * negative or not finite. */
kv_err kv_pbs_check(const kv_pbs_model_t *m, kv_status_t *st);

/* t-visibility: p_out[j] = P(a read started t_ms[j] after the commit is consistent), from
 * `trials` Monte Carlo draws, for n_t times (1..KV_PBS_TIMES_MAX, each finite and >= 0).
 * rng: the caller's generator state (any value is a good seed), advanced. Errors: those of
 * kv_pbs_check, and KV_EINVAL when trials is outside 1..KV_PBS_TRIALS_MAX or a time is bad. */
kv_err kv_pbs_t_visibility(const kv_pbs_model_t *m, const double *t_ms, size_t n_t,
                           uint32_t trials, uint64_t *rng, double *p_out, kv_status_t *st);

/* k-staleness (the paper's section 3.2): the probability that a read at R returns one of the
 * last k versions when each write reached a random W of the N replicas and nothing more:
 * 1 - (C(N-W, R) / C(N, R))^k. 1 when R + W > N. Needs 1 <= r, w <= n and k >= 1. */
double kv_pbs_k_staleness(uint32_t n, uint32_t r, uint32_t w, uint32_t k);

/* <k, t>-staleness from a t-visibility p_t, with versions independent (the paper's section
 * 4.2): the chance that a read t ms after the commit of the newest of k versions returns one of
 * them: 1 - (1 - p_t)^k. */
double kv_pbs_kt_staleness(double p_t, uint32_t k);

/* The root mean square difference of two curves of n points (0 when n is 0). */
double kv_pbs_rmse(const double *a, const double *b, size_t n);

#endif
