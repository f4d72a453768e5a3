/* phi.h: the phi-accrual failure detector (Hayashibara, Defago, Yared and Katayama, "The phi
 * accrual failure detector", 2004), as Cassandra and Akka use it (DESIGN section 8).
 *
 * Instead of a yes/no verdict after a fixed timeout, the detector gives a suspicion level that
 * grows with silence: phi(now) = -log10(P(the next heartbeat arrives later than now)), where
 * the interval between heartbeats is taken to be normally distributed with the mean and
 * standard deviation of the recent intervals. phi 1 means a 10% chance that a live peer is
 * this late, phi 8 a chance of 1e-8. The caller picks the threshold (kv_config_t's
 * phi_threshold); this module only measures.
 *
 * Sans-IO: no clock, no threads, no allocation. Times are milliseconds on any monotonic clock,
 * passed in. A kv_phi_t is caller-owned (about 4 KiB); one per peer. */
#ifndef KV_PHI_H
#define KV_PHI_H

#include <stdbool.h>
#include <stdint.h>

#include "kv_limits.h"

/* Callers may read heard and last_ms; the rest is the module's. */
typedef struct {
  bool heard;                                /* a heartbeat has arrived */
  uint64_t last_ms;                          /* when the latest one arrived (if heard) */
  uint32_t interval_ms[KV_PHI_WINDOW_MAX];   /* a ring of the latest intervals */
  uint32_t head, count;                      /* the oldest interval, and how many there are */
  uint64_t sum_ms, sum_sq_ms2;               /* over the ring: exact, so nothing drifts */
} kv_phi_t;

/* Starts with no heartbeat: phi is 0 until the first arrives. */
void kv_phi_init(kv_phi_t *d);
/* A heartbeat arrived at now_ms (never earlier than the one before). The interval since the
 * previous one becomes a sample, evicting the oldest when KV_PHI_WINDOW_MAX are kept, unless it
 * is longer than KV_PHI_INTERVAL_MS_MAX (an outage, not a heartbeat interval). */
void kv_phi_heartbeat(kv_phi_t *d, uint64_t now_ms);
/* A heartbeat arrived at now_ms that ends an outage (the caller had judged the peer down):
 * the silence before it is no heartbeat interval, so it is not a sample, whatever its length;
 * silence is timed from now_ms. Learning from it would make the next failure slower to see. */
void kv_phi_restart(kv_phi_t *d, uint64_t now_ms);
/* The suspicion at now_ms: 0 before the first heartbeat, then growing with the time since the
 * latest one (a time before it counts as none). Finite and non-decreasing in now_ms. */
double kv_phi(const kv_phi_t *d, uint64_t now_ms);
/* The mean and standard deviation phi assumes (the deviation is at least
 * KV_PHI_STD_DEV_MIN_MS; before any interval the mean is KV_PHI_FIRST_INTERVAL_MS). */
double kv_phi_mean_ms(const kv_phi_t *d);
double kv_phi_std_dev_ms(const kv_phi_t *d);

#endif
