/* phi.c: the phi-accrual failure detector (see phi.h).
 *
 * Model. The interval X between heartbeats is normal with the window's mean m and standard
 * deviation s (population), s raised to KV_PHI_STD_DEV_MIN_MS; with t the time since the
 * latest heartbeat and y = (t - m) / s,
 *     phi = -log10(P(X > t)) = -log10(erfc(y / sqrt 2) / 2).
 * Akka approximates the normal tail with a logistic curve; erfc is exact and as cheap.
 * Far in the tail erfc underflows (to 0 near y = 38, which would make phi infinite), so past
 * y = TAIL_Y the tail comes from its asymptotic series (Abramowitz and Stegun 26.2.12):
 *     P(X > t) ~ exp(-y^2 / 2) / (y sqrt(2 pi)) * (1 - 1/y^2),
 * which at y = 30 is within a relative 4e-6 of the exact value and, cut after a negative
 * term, never above it: phi stays finite and non-decreasing across the switch.
 *
 * Invariants:
 *   - count <= KV_PHI_WINDOW_MAX; the ring holds interval_ms[(head + i) % KV_PHI_WINDOW_MAX]
 *     for i < count, oldest first.
 *   - sum_ms and sum_sq_ms2 are the exact sums of the ring's intervals and their squares
 *     (at most 1000 x 2000^2 = 4e9: no overflow), so the mean and variance are computed
 *     fresh from integers and cannot drift as samples come and go.
 *   - count > 0 implies heard. */
#include "phi.h"

#include <math.h>
#include <string.h>

#include "log.h"

/* Where the tail switches from erfc to its asymptotic series. */
#define TAIL_Y 30.0

void kv_phi_init(kv_phi_t *d) {
  KV_ASSERT(d != NULL);
  memset(d, 0, sizeof *d);
}

void kv_phi_restart(kv_phi_t *d, uint64_t now_ms) {
  KV_ASSERT(!d->heard || now_ms >= d->last_ms);
  d->heard = true;
  d->last_ms = now_ms;
}

void kv_phi_heartbeat(kv_phi_t *d, uint64_t now_ms) {
  KV_ASSERT(!d->heard || now_ms >= d->last_ms);
  if (d->heard && now_ms - d->last_ms <= KV_PHI_INTERVAL_MS_MAX) {
    uint32_t interval = (uint32_t)(now_ms - d->last_ms);
    if (d->count == KV_PHI_WINDOW_MAX) {
      uint32_t oldest = d->interval_ms[d->head];
      d->sum_ms -= oldest;
      d->sum_sq_ms2 -= (uint64_t)oldest * oldest;
      d->head = (d->head + 1) % KV_PHI_WINDOW_MAX;
      d->count--;
    }
    d->interval_ms[(d->head + d->count) % KV_PHI_WINDOW_MAX] = interval;
    d->count++;
    d->sum_ms += interval;
    d->sum_sq_ms2 += (uint64_t)interval * interval;
  }
  KV_ASSERT(d->count <= KV_PHI_WINDOW_MAX);
  kv_phi_restart(d, now_ms);
}

double kv_phi_mean_ms(const kv_phi_t *d) {
  if (d->count == 0) return KV_PHI_FIRST_INTERVAL_MS;
  return (double)d->sum_ms / d->count;
}

double kv_phi_std_dev_ms(const kv_phi_t *d) {
  double s = 0;
  if (d->count > 0) {
    double mean = kv_phi_mean_ms(d);
    double variance = (double)d->sum_sq_ms2 / d->count - mean * mean;
    s = variance > 0 ? sqrt(variance) : 0; /* rounding can leave a tiny negative */
  }
  return s > KV_PHI_STD_DEV_MIN_MS ? s : KV_PHI_STD_DEV_MIN_MS;
}

double kv_phi(const kv_phi_t *d, uint64_t now_ms) {
  if (!d->heard) return 0;
  double t = now_ms > d->last_ms ? (double)(now_ms - d->last_ms) : 0;
  double y = (t - kv_phi_mean_ms(d)) / kv_phi_std_dev_ms(d);
  if (y < TAIL_Y) {
    double phi = -log10(0.5 * erfc(y / M_SQRT2));
    return phi > 0 ? phi : 0; /* long before the mean P is 1, and -log10(1) is -0 */
  }
  return (y * y / 2 + log(y * sqrt(2 * M_PI)) - log1p(-1 / (y * y))) / M_LN10;
}
