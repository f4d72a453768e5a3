/* histogram.h: a fixed-size log-linear histogram of non-negative integers (HDR-style), for
 * latencies: record in nanoseconds, read back percentiles within 1% of the true value.
 *
 * Values below 2^KV_HISTOGRAM_SUB_BITS+1 (256) have a bucket each (exact). Above, every
 * power-of-two range [2^k, 2^(k+1)) is split into 2^KV_HISTOGRAM_SUB_BITS (128) equal
 * buckets, so a bucket is at most 1/128 of its values wide: the bucket's middle is within
 * 0.4% of anything recorded in it. The top of the range is KV_HISTOGRAM_VALUE_MAX (about
 * 68.7 s in ns); larger values are counted in the last bucket and in `clamped`.
 *
 * A kv_histogram_t is caller-owned (about 31 KiB, no heap): _init it, record, merge, read. */
#ifndef KV_HISTOGRAM_H
#define KV_HISTOGRAM_H

#include <stdint.h>

#define KV_HISTOGRAM_SUB_BITS 7u
#define KV_HISTOGRAM_TOP_BITS 36u /* values below 2^36 ns = 68.7 s are kept apart */
#define KV_HISTOGRAM_VALUE_MAX ((UINT64_C(1) << KV_HISTOGRAM_TOP_BITS) - 1)
#define KV_HISTOGRAM_BUCKETS                                           \
  ((1u << (KV_HISTOGRAM_SUB_BITS + 1)) +                              \
   (KV_HISTOGRAM_TOP_BITS - KV_HISTOGRAM_SUB_BITS - 1) * (1u << KV_HISTOGRAM_SUB_BITS))

typedef struct {
  uint64_t counts[KV_HISTOGRAM_BUCKETS];
  uint64_t total;   /* values recorded */
  uint64_t min;     /* exact smallest value recorded (UINT64_MAX when empty) */
  uint64_t max;     /* exact largest value recorded (0 when empty) */
  uint64_t clamped; /* values above KV_HISTOGRAM_VALUE_MAX, counted in the last bucket */
  double sum;       /* for the mean */
} kv_histogram_t;

void kv_histogram_init(kv_histogram_t *h);
void kv_histogram_record(kv_histogram_t *h, uint64_t value);
/* Adds src's counts to dst. */
void kv_histogram_merge(kv_histogram_t *dst, const kv_histogram_t *src);

/* The bucket index of value, and the lowest and highest values of a bucket. */
uint32_t kv_histogram_bucket(uint64_t value);
uint64_t kv_histogram_bucket_low(uint32_t bucket);
uint64_t kv_histogram_bucket_high(uint32_t bucket);

/* The value at percentile p (0..100): the smallest recorded value v such that at least p%
 * of the values are <= v, given as the middle of v's bucket clamped to [min, max]. p = 0
 * gives min, p = 100 gives max; an empty histogram gives 0. */
uint64_t kv_histogram_percentile(const kv_histogram_t *h, double p);
/* The mean of the recorded values; 0 when empty. */
double kv_histogram_mean(const kv_histogram_t *h);

#endif
