/* metrics.h: the node's metrics registry, rendered as Prometheus text (DESIGN section 11) by
 * metrics_http.c for `kvnode --metrics-addr`.
 *
 * Every metric is a fixed array of atomic counters made at create time: recording is a few
 * relaxed atomic adds, never a lock or an allocation, so any thread (gRPC workers, the peer
 * thread, the coordinator under its lock) may record. Labels are bounded by construction:
 * operations, level names, the config's regions, and at most KV_METRICS_HANDLERS_MAX conflict
 * handler names. Histograms have the fixed buckets of KV_METRICS_*_BUCKETS.
 *
 * Every recording function takes a NULL registry and does nothing, so the coordinator and
 * replica code can record unconditionally, and unit tests and the simulator pass none.
 *
 * Hooks for other modules (bump them where the event happens):
 *   kv_metrics_add(m, KV_METRIC_AE_REPAIRS, n)        anti-entropy repaired n keys
 *   kv_metrics_add(m, KV_METRIC_READ_REPAIRS, 1)      a read repair was sent (coord.c does)
 *   kv_metrics_add(m, KV_METRIC_REMOTE_WRITES, 1)     a write left for another region (coord.c)
 *   kv_metrics_add(m, KV_METRIC_RELAYED_WRITES, 1)    a forwarded write was relayed (coord.c)
 *   kv_metrics_conflict(m, handler, n)                a handler resolved n conflicts (node.c)
 *   kv_metrics_siblings(m, n)                         a get answered with n siblings */
#ifndef KV_METRICS_H
#define KV_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "level.h"

#define KV_METRICS_HANDLERS_MAX 16u

/* Plain counters. */
typedef enum {
  KV_METRIC_READ_REPAIRS,   /* replicas sent a read repair (this node's own included) */
  KV_METRIC_AE_REPAIRS,     /* keys repaired by anti-entropy */
  KV_METRIC_REMOTE_WRITES,  /* replica writes of puts and deletes this node coordinated,
                               sent to nodes of other regions (coord.c) */
  KV_METRIC_RELAYED_WRITES, /* writes forwarded to this node that it relayed to the other
                               replicas of its region (coord.c) */
  KV_METRIC_COUNTERS
} kv_metric_counter_t;

/* Client operations, as kv_op_t numbers them (node.h): put, get, delete. */
#define KV_METRICS_OPS 3u

typedef struct kv_metrics kv_metrics_t;

/* A registry for the nodes and regions of cfg (borrowed: it must outlive the registry).
 * NULL when out of memory. */
kv_metrics_t *kv_metrics_create(const kv_config_t *cfg);
void kv_metrics_destroy(kv_metrics_t *m);

void kv_metrics_add(kv_metrics_t *m, kv_metric_counter_t counter, uint64_t n);
/* A client request finished: op (kv_op_t), the level it asked for (KV_LEVEL_DEFAULT when it
 * named none; KV_LEVEL_COUNT when it named an unknown one), whether it succeeded, and its
 * time in the node from arrival to reply. */
void kv_metrics_request(kv_metrics_t *m, uint32_t op, kv_level_t level, bool ok,
                        uint64_t duration_us);
/* A get answered with n siblings. */
void kv_metrics_siblings(kv_metrics_t *m, uint32_t n);
/* handler (a handler's name, borrowed for the call) resolved n conflicts. Names after the
 * first KV_METRICS_HANDLERS_MAX distinct ones are counted under "other". */
void kv_metrics_conflict(kv_metrics_t *m, const char *handler, uint64_t n);
/* A write every replica acknowledged: nodes[i] (config indexes) acknowledged at ack_us[i];
 * the W-th ack came at decided_us. Records, for each region of those nodes, the time from
 * the W-th ack to that region's last ack (0 when it had acked by then). */
void kv_metrics_write_lag(kv_metrics_t *m, const uint32_t *nodes, const uint64_t *ack_us,
                          uint32_t n, uint64_t decided_us);

/* Gauges read at render time from elsewhere (the hints of hints.h), per peer. */
typedef struct {
  uint64_t pending, bytes, delivered, dropped;
} kv_metrics_hints_t;
/* Fills *out for config node `node`; false for this node itself (no line is written). */
typedef bool (*kv_metrics_hints_fn)(void *arg, uint32_t node, kv_metrics_hints_t *out);

/* Writes every metric in the Prometheus text format (version 0.0.4), names prefixed
 * "tunekv_". hints may be NULL (no hint lines). */
void kv_metrics_render(kv_metrics_t *m, FILE *out, kv_metrics_hints_fn hints, void *arg);

#endif
