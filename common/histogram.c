/* histogram.c: log-linear buckets (see histogram.h).
 *
 * Bucket layout, with S = KV_HISTOGRAM_SUB_BITS:
 *   value < 2^(S+1)            bucket = value                      (width 1, exact)
 *   2^k <= value < 2^(k+1)     bucket = 2^(S+1) + (k-S-1)*2^S + ((value >> (k-S)) - 2^S)
 * for S+1 <= k < KV_HISTOGRAM_TOP_BITS, so a bucket spans 2^(k-S) values, at most 1/2^S of
 * the smallest value in it. Both maps are monotonic and inverse on bucket boundaries, which
 * the unit test checks over the whole range. */
#include "histogram.h"

#include <string.h>

#include "log.h"

#define SUB_COUNT (1u << KV_HISTOGRAM_SUB_BITS)
#define LINEAR_COUNT (2u * SUB_COUNT)

void kv_histogram_init(kv_histogram_t *h) {
  memset(h, 0, sizeof *h);
  h->min = UINT64_MAX;
}

uint32_t kv_histogram_bucket(uint64_t value) {
  if (value > KV_HISTOGRAM_VALUE_MAX) value = KV_HISTOGRAM_VALUE_MAX;
  if (value < LINEAR_COUNT) return (uint32_t)value;
  uint32_t k = 63u - (uint32_t)__builtin_clzll(value); /* 2^k <= value < 2^(k+1) */
  uint32_t shift = k - KV_HISTOGRAM_SUB_BITS;
  uint32_t sub = (uint32_t)(value >> shift) - SUB_COUNT;
  uint32_t b = LINEAR_COUNT + (k - KV_HISTOGRAM_SUB_BITS - 1) * SUB_COUNT + sub;
  KV_ASSERT(b < KV_HISTOGRAM_BUCKETS);
  return b;
}

uint64_t kv_histogram_bucket_low(uint32_t bucket) {
  KV_ASSERT(bucket < KV_HISTOGRAM_BUCKETS);
  if (bucket < LINEAR_COUNT) return bucket;
  uint32_t j = bucket - LINEAR_COUNT;
  uint32_t k = j / SUB_COUNT + KV_HISTOGRAM_SUB_BITS + 1;
  uint64_t sub = j % SUB_COUNT;
  return (SUB_COUNT + sub) << (k - KV_HISTOGRAM_SUB_BITS);
}

uint64_t kv_histogram_bucket_high(uint32_t bucket) {
  if (bucket + 1 == KV_HISTOGRAM_BUCKETS) return KV_HISTOGRAM_VALUE_MAX;
  return kv_histogram_bucket_low(bucket + 1) - 1;
}

void kv_histogram_record(kv_histogram_t *h, uint64_t value) {
  h->counts[kv_histogram_bucket(value)]++;
  h->total++;
  if (value < h->min) h->min = value;
  if (value > h->max) h->max = value;
  if (value > KV_HISTOGRAM_VALUE_MAX) h->clamped++;
  h->sum += (double)value;
}

void kv_histogram_merge(kv_histogram_t *dst, const kv_histogram_t *src) {
  for (uint32_t i = 0; i < KV_HISTOGRAM_BUCKETS; i++) dst->counts[i] += src->counts[i];
  dst->total += src->total;
  if (src->min < dst->min) dst->min = src->min;
  if (src->max > dst->max) dst->max = src->max;
  dst->clamped += src->clamped;
  dst->sum += src->sum;
}

uint64_t kv_histogram_percentile(const kv_histogram_t *h, double p) {
  if (h->total == 0) return 0;
  if (p <= 0) return h->min;
  if (p >= 100) return h->max;
  /* rank = ceil(p% of total), at least 1: the rank-th smallest value. */
  double exact = p / 100.0 * (double)h->total;
  uint64_t rank = (uint64_t)exact;
  if ((double)rank < exact) rank++;
  if (rank < 1) rank = 1;
  if (rank > h->total) rank = h->total;
  uint64_t seen = 0;
  for (uint32_t i = 0; i < KV_HISTOGRAM_BUCKETS; i++) {
    seen += h->counts[i];
    if (seen >= rank) {
      uint64_t low = kv_histogram_bucket_low(i), high = kv_histogram_bucket_high(i);
      uint64_t mid = low + (high - low) / 2;
      if (mid < h->min) mid = h->min;
      if (mid > h->max) mid = h->max;
      return mid;
    }
  }
  KV_ASSERT(!"histogram counts do not add up to total");
  return h->max;
}

double kv_histogram_mean(const kv_histogram_t *h) {
  return h->total ? h->sum / (double)h->total : 0.0;
}
