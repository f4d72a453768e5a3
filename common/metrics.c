/* metrics.c: the metrics registry and its Prometheus text (see metrics.h).
 *
 * A histogram keeps one atomic count per bucket (not cumulative: a value goes in the first
 * bucket whose bound it does not exceed, or in the last, +Inf, one) and an atomic sum; render
 * makes the counts cumulative, as the text format wants. A render taken while requests are
 * recorded may see a count and a sum from slightly different moments; Prometheus tolerates
 * that, and nothing here ever goes backwards. Series of requests and durations that never saw
 * a request are left out; every region's lag and every counter are always written. */
#include "metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Bounds in microseconds: 0.1 ms .. 10 s, for request durations and replication lag. */
static const uint64_t time_bounds_us[] = {100,    250,    500,     1000,    2500,   5000,
                                          10000,  25000,  50000,   100000,  250000, 500000,
                                          1000000, 2500000, 5000000, 10000000};
#define TIME_BUCKETS (sizeof time_bounds_us / sizeof time_bounds_us[0])
static const uint64_t sibling_bounds[] = {1, 2, 3, 4, 8, 16, 32, 64};
#define SIBLING_BUCKETS (sizeof sibling_bounds / sizeof sibling_bounds[0])
#define BUCKETS_MAX TIME_BUCKETS
#define LEVELS (KV_LEVEL_COUNT + 1u) /* and one for names the server did not know */

static const char *const op_names[KV_METRICS_OPS] = {"put", "get", "delete"};
static const char *const counter_names[KV_METRIC_COUNTERS][2] = {
    {"read_repairs_total", "Read repairs sent to replicas behind the merge (own replica included)."},
    {"anti_entropy_repairs_total", "Keys repaired by anti-entropy."},
    {"remote_region_writes_total",
     "Replica writes of puts and deletes this node coordinated that it sent to nodes of other "
     "regions (a write forwarded to a region counts once)."},
    {"relayed_writes_total",
     "Writes forwarded to this node by a coordinator in another region that it relayed to the "
     "other replicas of its region."}};

typedef struct {
  atomic_uint_fast64_t counts[BUCKETS_MAX + 1]; /* the last one is +Inf */
  atomic_uint_fast64_t sum;                      /* in the unit recorded */
} hist_t;

struct kv_metrics {
  const kv_config_t *cfg;
  uint32_t region_of[KV_NODES_MAX];
  const char *regions[KV_REGIONS_MAX];
  uint32_t region_count;
  atomic_uint_fast64_t counters[KV_METRIC_COUNTERS];
  atomic_uint_fast64_t requests[KV_METRICS_OPS][LEVELS][2]; /* [..][..][ok] */
  hist_t duration[KV_METRICS_OPS][LEVELS];
  hist_t lag[KV_REGIONS_MAX];
  hist_t siblings;
  pthread_mutex_t handler_lock;                  /* taken only to add a handler name */
  char handlers[KV_METRICS_HANDLERS_MAX][KV_HANDLER_NAME_BYTES_MAX + 1];
  atomic_uint handler_count;
  atomic_uint_fast64_t conflicts[KV_METRICS_HANDLERS_MAX + 1]; /* the last one is "other" */
};

kv_metrics_t *kv_metrics_create(const kv_config_t *cfg) {
  kv_metrics_t *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->cfg = cfg;
  pthread_mutex_init(&m->handler_lock, NULL);
  for (uint32_t i = 0; i < cfg->node_count; i++) {
    uint32_t r = 0;
    while (r < m->region_count && strcmp(m->regions[r], cfg->nodes[i].region) != 0) r++;
    if (r == m->region_count && r < KV_REGIONS_MAX) m->regions[m->region_count++] = cfg->nodes[i].region;
    m->region_of[i] = r < KV_REGIONS_MAX ? r : KV_REGIONS_MAX - 1;
  }
  return m;
}

void kv_metrics_destroy(kv_metrics_t *m) {
  if (!m) return;
  pthread_mutex_destroy(&m->handler_lock);
  free(m);
}

/* ---- recording --------------------------------------------------------------------- */

static void hist_record(hist_t *h, const uint64_t *bounds, size_t n, uint64_t v) {
  size_t b = 0;
  while (b < n && v > bounds[b]) b++;
  atomic_fetch_add_explicit(&h->counts[b], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
}

void kv_metrics_add(kv_metrics_t *m, kv_metric_counter_t counter, uint64_t n) {
  if (!m) return;
  KV_ASSERT(counter < KV_METRIC_COUNTERS);
  atomic_fetch_add_explicit(&m->counters[counter], n, memory_order_relaxed);
}

void kv_metrics_request(kv_metrics_t *m, uint32_t op, kv_level_t level, bool ok,
                        uint64_t duration_us) {
  if (!m) return;
  KV_ASSERT(op < KV_METRICS_OPS && (uint32_t)level < LEVELS);
  atomic_fetch_add_explicit(&m->requests[op][level][ok], 1, memory_order_relaxed);
  hist_record(&m->duration[op][level], time_bounds_us, TIME_BUCKETS, duration_us);
}

void kv_metrics_siblings(kv_metrics_t *m, uint32_t n) {
  if (!m) return;
  hist_record(&m->siblings, sibling_bounds, SIBLING_BUCKETS, n);
}

/* The index of handler's name, adding it when there is room; KV_METRICS_HANDLERS_MAX when
 * there is none. */
static uint32_t handler_index(kv_metrics_t *m, const char *handler) {
  uint32_t n = atomic_load(&m->handler_count);
  for (uint32_t i = 0; i < n; i++)
    if (!strcmp(m->handlers[i], handler)) return i;
  pthread_mutex_lock(&m->handler_lock);
  n = atomic_load(&m->handler_count);
  uint32_t i = 0;
  while (i < n && strcmp(m->handlers[i], handler) != 0) i++;
  if (i == n && n < KV_METRICS_HANDLERS_MAX) {
    snprintf(m->handlers[n], sizeof m->handlers[n], "%s", handler);
    atomic_store(&m->handler_count, n + 1); /* after the name: readers see it whole */
  }
  pthread_mutex_unlock(&m->handler_lock);
  return i;
}

void kv_metrics_conflict(kv_metrics_t *m, const char *handler, uint64_t n) {
  if (!m) return;
  atomic_fetch_add_explicit(&m->conflicts[handler_index(m, handler)], n, memory_order_relaxed);
}

void kv_metrics_write_lag(kv_metrics_t *m, const uint32_t *nodes, const uint64_t *ack_us,
                          uint32_t n, uint64_t decided_us) {
  if (!m) return;
  uint64_t lag[KV_REGIONS_MAX] = {0};
  bool seen[KV_REGIONS_MAX] = {false};
  for (uint32_t i = 0; i < n; i++) {
    KV_ASSERT(nodes[i] < m->cfg->node_count);
    uint32_t r = m->region_of[nodes[i]];
    uint64_t us = ack_us[i] > decided_us ? ack_us[i] - decided_us : 0;
    if (us > lag[r]) lag[r] = us;
    seen[r] = true;
  }
  for (uint32_t r = 0; r < KV_REGIONS_MAX; r++)
    if (seen[r]) hist_record(&m->lag[r], time_bounds_us, TIME_BUCKETS, lag[r]);
}

/* ---- rendering --------------------------------------------------------------------- */

static void head(FILE *f, const char *name, const char *type, const char *help) {
  fprintf(f, "# HELP tunekv_%s %s\n# TYPE tunekv_%s %s\n", name, help, name, type);
}

/* A label value with \, " and newlines escaped, as the text format wants. */
static void label_value(FILE *f, const char *s) {
  for (; *s; s++) {
    if (*s == '\\' || *s == '"') fputc('\\', f);
    if (*s == '\n') fputs("\\n", f);
    else fputc(*s, f);
  }
}

/* One histogram's lines: labels is "" or `key="value",` pairs ending in a comma. scale turns
 * the recorded unit into the exported one (1e-6 for microseconds to seconds). */
static void hist_lines(FILE *f, const char *name, const char *labels, const hist_t *h,
                       const uint64_t *bounds, size_t n, double scale) {
  uint64_t cumulative = 0;
  for (size_t b = 0; b <= n; b++) {
    cumulative += atomic_load_explicit(&h->counts[b], memory_order_relaxed);
    if (b < n)
      fprintf(f, "tunekv_%s_bucket{%sle=\"%g\"} %llu\n", name, labels, (double)bounds[b] * scale,
              (unsigned long long)cumulative);
    else
      fprintf(f, "tunekv_%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels,
              (unsigned long long)cumulative);
  }
  char bare[256];
  snprintf(bare, sizeof bare, "%s", labels);
  size_t len = strlen(bare);
  if (len && bare[len - 1] == ',') bare[len - 1] = '\0';
  const char *open = *bare ? "{" : "", *close = *bare ? "}" : "";
  fprintf(f, "tunekv_%s_sum%s%s%s %.6f\n", name, open, bare, close,
          (double)atomic_load_explicit(&h->sum, memory_order_relaxed) * scale);
  fprintf(f, "tunekv_%s_count%s%s%s %llu\n", name, open, bare, close,
          (unsigned long long)cumulative);
}

static const char *level_label(uint32_t level) {
  return level < KV_LEVEL_COUNT ? kv_level_name((kv_level_t)level) : "UNKNOWN";
}

static void render_requests(kv_metrics_t *m, FILE *f) {
  head(f, "requests_total", "counter",
       "Client requests by operation, requested level and outcome.");
  for (uint32_t op = 0; op < KV_METRICS_OPS; op++)
    for (uint32_t l = 0; l < LEVELS; l++)
      for (int ok = 1; ok >= 0; ok--) {
        uint64_t v = atomic_load_explicit(&m->requests[op][l][ok], memory_order_relaxed);
        if (v)
          fprintf(f, "tunekv_requests_total{op=\"%s\",level=\"%s\",outcome=\"%s\"} %llu\n",
                  op_names[op], level_label(l), ok ? "ok" : "error", (unsigned long long)v);
      }
  head(f, "request_duration_seconds", "histogram",
       "Time from a client request's arrival to its reply, by operation and level.");
  for (uint32_t op = 0; op < KV_METRICS_OPS; op++)
    for (uint32_t l = 0; l < LEVELS; l++) {
      if (!m->requests[op][l][0] && !m->requests[op][l][1]) continue;
      char labels[96];
      snprintf(labels, sizeof labels, "op=\"%s\",level=\"%s\",", op_names[op], level_label(l));
      hist_lines(f, "request_duration_seconds", labels, &m->duration[op][l], time_bounds_us,
                 TIME_BUCKETS, 1e-6);
    }
}

static void render_lag(kv_metrics_t *m, FILE *f) {
  head(f, "replication_lag_seconds", "histogram",
       "Writes this node coordinated that every replica acknowledged: time from the W-th ack "
       "to the region's last ack.");
  for (uint32_t r = 0; r < m->region_count; r++) {
    char labels[KV_REGION_BYTES_MAX * 2 + 16];
    FILE *lf = fmemopen(labels, sizeof labels, "w");
    if (!lf) continue;
    fputs("region=\"", lf);
    label_value(lf, m->regions[r]);
    fputs("\",", lf);
    fclose(lf);
    labels[sizeof labels - 1] = '\0';
    hist_lines(f, "replication_lag_seconds", labels, &m->lag[r], time_bounds_us, TIME_BUCKETS,
               1e-6);
  }
}

static void render_hints(kv_metrics_t *m, FILE *f, kv_metrics_hints_fn hints, void *arg) {
  static const char *const names[4][3] = {
      {"hints_pending", "gauge", "Hints kept for a peer, waiting to be handed over."},
      {"hint_bytes", "gauge", "Bytes of the hints kept for a peer."},
      {"hints_delivered_total", "counter", "Hints handed over to a peer since the node started."},
      {"hints_dropped_total", "counter", "Hints not kept for lack of room since the node started."}};
  kv_metrics_hints_t all[KV_NODES_MAX];
  bool have[KV_NODES_MAX];
  for (uint32_t i = 0; i < m->cfg->node_count; i++) have[i] = hints(arg, i, &all[i]);
  for (int k = 0; k < 4; k++) {
    head(f, names[k][0], names[k][1], names[k][2]);
    for (uint32_t i = 0; i < m->cfg->node_count; i++) {
      if (!have[i]) continue;
      const uint64_t v[4] = {all[i].pending, all[i].bytes, all[i].delivered, all[i].dropped};
      fprintf(f, "tunekv_%s{peer=\"", names[k][0]);
      label_value(f, m->cfg->nodes[i].id);
      fprintf(f, "\"} %llu\n", (unsigned long long)v[k]);
    }
  }
}

static void render_conflicts(kv_metrics_t *m, FILE *f) {
  head(f, "conflicts_total", "counter", "Conflicts resolved, by conflict handler.");
  uint32_t n = atomic_load(&m->handler_count);
  for (uint32_t i = 0; i <= n && i <= KV_METRICS_HANDLERS_MAX; i++) {
    uint64_t v = atomic_load_explicit(&m->conflicts[i], memory_order_relaxed);
    if (i == n && !v) break; /* "other" only once it counted something */
    fputs("tunekv_conflicts_total{handler=\"", f);
    label_value(f, i < n ? m->handlers[i] : "other");
    fprintf(f, "\"} %llu\n", (unsigned long long)v);
  }
}

void kv_metrics_render(kv_metrics_t *m, FILE *f, kv_metrics_hints_fn hints, void *arg) {
  render_requests(m, f);
  render_lag(m, f);
  head(f, "siblings_per_read", "histogram", "Siblings in the answer of each get.");
  hist_lines(f, "siblings_per_read", "", &m->siblings, sibling_bounds, SIBLING_BUCKETS, 1);
  for (int c = 0; c < KV_METRIC_COUNTERS; c++) {
    head(f, counter_names[c][0], "counter", counter_names[c][1]);
    fprintf(f, "tunekv_%s %llu\n", counter_names[c][0],
            (unsigned long long)atomic_load_explicit(&m->counters[c], memory_order_relaxed));
  }
  render_conflicts(m, f);
  if (hints) render_hints(m, f, hints, arg);
}
