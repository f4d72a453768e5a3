/* bench_lag.c: `kvbench lag`, how long after a write is acknowledged each replica, and each
 * region, has it, under a steady write rate.
 *
 *   kvbench lag --config FILE -a ADDR[,ADDR..] (--writes N | --duration S) [--rate R]
 *           [-w W | -c LEVEL] [--probe-ms P] [--max-inflight M] [--keyspace NAME]
 *           [--timeout MS] [--json FILE] [--html FILE] [--progress | --no-progress]
 *
 * Writes (open loop): write i starts at i / R seconds, through the -a addresses in turn, each
 * to a new key, at the level asked (-w W or -c LEVEL; default the keyspace's). The cluster's
 * config (the same file the nodes run with) gives each key's replicas (the ring of
 * coordinator/ring.h computes the preference list here as the nodes do), their ids and their
 * regions. When a write is acknowledged, each of its replicas is probed with --local gets
 * every P ms (default 1) until it has the write; its lag is the midpoint between the send of
 * its last probe that missed (the acknowledgement, before any) and of its first that hit,
 * minus the acknowledgement: 0 for a replica that had it already (the coordinator's own).
 * A region's lag is that of its last replica to get the write. The probes' resolution is P
 * plus a probe's round trip.
 *
 * The replicas' applied_ms (wall-clock time of applying, carried in late acks of the peer
 * protocol) is not passed on to clients by the coordinator, so it is not used here; probes
 * measure the same thing from outside, on one clock, at the cost of their load (per write,
 * about lag / P probes per replica: keep R x N x lag / P within a few thousand a second).
 *
 * At most M writes (default 256) are followed at once; a write due while M are followed starts
 * late, and the number of late starts is printed. A write whose replicas do not all have it
 * within 10 s counts as unfinished. Output: a table per replica and per region (writes, p50,
 * p99, p99.9, max), the put latency; JSON; the HTML report of bench.h with the lag CDF per
 * region and per replica and the put latency CDF. Exit status: 0, 1 local failure, 2 usage
 * error, 3 some writes failed or never reached every replica. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "config.h"
#include "hash.h"
#include "histogram.h"
#include "kv_limits.h"
#include "ring.h"
#include "tunekv.h"

#define RATE_MAX 100000.0
#define WRITES_MAX 100000000u
#define INFLIGHT_MAX 4096u
#define PROBE_MS_MAX 1000.0
#define VISIBLE_WAIT_NS 10000000000ull
#define ADDRS_MAX KV_NODES_MAX
#define KEY_BYTES_MAX 64

typedef enum { TAG_PUT, TAG_PROBE } tag_kind_t;

typedef struct slot slot_t;

typedef struct {
  tag_kind_t kind;             /* first: a completion's tag points at one of these */
  slot_t *slot;
  uint32_t node;               /* config index of the replica */
  bool in_flight, visible;
  uint64_t sent_ns, last_miss_ns, due_ns, lag_ns;
} probe_t;

struct slot {
  tag_kind_t kind;             /* TAG_PUT */
  bool used, acked;
  uint64_t start_ns, ack_ns;
  uint32_t replicas, visible;
  char key[KEY_BYTES_MAX];
  probe_t probes[KV_REPLICAS_MAX];
};

typedef struct {
  const char *config_path, *keyspace, *level, *json_path, *html_path;
  char *addrs_text;
  const char *addrs[ADDRS_MAX];
  uint32_t n_addrs, w, inflight, timeout_ms;
  uint64_t writes;
  double duration_s, rate, probe_ms;
  bench_progress_mode_t progress;
} lag_args_t;

typedef struct {
  lag_args_t a;
  kv_config_t cfg;
  kv_ring_t ring;
  const kv_keyspace_conf_t *ks;
  kv_client_t *coords[ADDRS_MAX];
  kv_client_t *nodes[KV_NODES_MAX];  /* probes, one per node of the config */
  kv_client_async_t *async;
  kv_client_opts_t put_opts, probe_opts;
  slot_t *slots;
  uint64_t nonce, t0_ns, started, done, failed, unfinished, late;
  uint32_t in_use;
  bool first_error_printed;
  bool waiting;                      /* a due write waits for a free slot */
  kv_histogram_t put_lat;
  kv_histogram_t node_lag[KV_NODES_MAX];
  uint64_t node_writes[KV_NODES_MAX];
  const char *regions[KV_REGIONS_MAX];
  uint32_t region_of[KV_NODES_MAX], n_regions;
  kv_histogram_t region_lag[KV_REGIONS_MAX];
  bench_progress_t progress;
} lag_bench_t;

static void usage(FILE *f) {
  fputs("usage: kvbench lag --config FILE -a ADDR[,ADDR..] (--writes N | --duration S)\n"
        "           [--rate R] [-w W | -c LEVEL] [--probe-ms P] [--max-inflight M]\n"
        "           [--keyspace NAME] [--timeout MS] [--json FILE] [--html FILE]\n"
        "           [--progress | --no-progress]\n"
        "\n"
        "Measures, for every replica and every region, how long after its acknowledgement a\n"
        "write is there (--local probes), under a steady write rate.\n"
        "\n"
        "  --config FILE      the cluster's config (the nodes' own file): replicas and regions\n"
        "  -a ADDR[,ADDR..]   coordinators; writes go to them in turn\n"
        "  --writes N         writes to measure, or\n"
        "  --duration S       seconds of writes\n"
        "  --rate R           writes per second (default 50)\n"
        "  -w W, -c LEVEL     the writes' quorum or level (default: the keyspace's)\n"
        "  --probe-ms P       ms between probes of one replica (default 1)\n"
        "  --max-inflight M   writes followed at once (default 256)\n"
        "  --keyspace NAME    keyspace (default \"default\")\n"
        "  --timeout MS       the server's deadline per request (default: the server's)\n"
        "  --json FILE, --html FILE   also write the results as JSON / an HTML report\n"
        "  --progress, --no-progress  the progress line on stderr (default: when a terminal)\n",
        f);
}

/* ---- arguments --------------------------------------------------------------------- */

static const char *const with_value[] = {"--config", "-a", "--writes", "--duration", "--rate",
                                         "-w", "-c", "--probe-ms", "--max-inflight",
                                         "--keyspace", "--timeout", "--json", "--html"};

static bool takes_value(const char *k) {
  for (size_t i = 0; i < sizeof with_value / sizeof with_value[0]; i++)
    if (!strcmp(k, with_value[i])) return true;
  return false;
}

/* Sets option k (one of with_value) to v; the usage error's status when v is bad. */
static int set_option(lag_args_t *a, const char *k, const char *v) {
  if (!strcmp(k, "--config")) a->config_path = v;
  else if (!strcmp(k, "-a")) {
    free(a->addrs_text);
    a->addrs_text = strdup(v);
    if (!a->addrs_text) return bench_usage_error("out of memory");
  } else if (!strcmp(k, "--writes")) {
    if (!bench_parse_u64(v, 1, WRITES_MAX, &a->writes))
      return bench_usage_error("--writes needs a whole number from 1 to %u, not '%s'",
                               WRITES_MAX, v);
  } else if (!strcmp(k, "--duration")) {
    if (!bench_parse_double(v, 0.001, 86400, &a->duration_s))
      return bench_usage_error("--duration needs seconds from 0.001 to 86400, not '%s'", v);
  } else if (!strcmp(k, "--rate")) {
    if (!bench_parse_double(v, 0.001, RATE_MAX, &a->rate))
      return bench_usage_error("--rate needs writes per second from 0.001 to %.0f, not '%s'",
                               RATE_MAX, v);
  } else if (!strcmp(k, "-w")) {
    if (!bench_parse_u32(v, 1, KV_REPLICAS_MAX, &a->w))
      return bench_usage_error("-w needs a whole number from 1 to %u, not '%s'", KV_REPLICAS_MAX,
                               v);
  } else if (!strcmp(k, "--probe-ms")) {
    if (!bench_parse_double(v, 0, PROBE_MS_MAX, &a->probe_ms))
      return bench_usage_error("--probe-ms needs milliseconds from 0 to %.0f, not '%s'",
                               PROBE_MS_MAX, v);
  } else if (!strcmp(k, "--max-inflight")) {
    if (!bench_parse_u32(v, 1, INFLIGHT_MAX, &a->inflight))
      return bench_usage_error("--max-inflight needs a whole number from 1 to %u, not '%s'",
                               INFLIGHT_MAX, v);
  } else if (!strcmp(k, "--timeout")) {
    if (!bench_parse_u32(v, 1, KV_TIMEOUT_MS_MAX, &a->timeout_ms))
      return bench_usage_error("--timeout needs milliseconds from 1 to %u, not '%s'",
                               KV_TIMEOUT_MS_MAX, v);
  } else if (!strcmp(k, "-c")) a->level = v;
  else if (!strcmp(k, "--keyspace")) a->keyspace = v;
  else if (!strcmp(k, "--json")) a->json_path = v;
  else if (!strcmp(k, "--html")) a->html_path = v;
  return BENCH_EXIT_OK;
}

static int check_args(lag_args_t *a) {
  if (!a->config_path) return bench_usage_error("lag: --config FILE is required");
  if (!a->addrs_text) return bench_usage_error("lag: -a ADDR[,ADDR..] is required");
  if (!a->writes == !a->duration_s)
    return bench_usage_error("lag: give exactly one of --writes and --duration");
  if (a->w && a->level) return bench_usage_error("lag: give -w or -c, not both");
  const char *t = a->addrs_text;
  if (!*t || t[0] == ',' || t[strlen(t) - 1] == ',' || strstr(t, ",,"))
    return bench_usage_error("lag: -a needs ADDR[,ADDR..] with no empty address, not '%s'", t);
  char *save = NULL;
  for (char *p = strtok_r(a->addrs_text, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
    if (a->n_addrs == ADDRS_MAX) return bench_usage_error("-a names more than %u addresses", ADDRS_MAX);
    a->addrs[a->n_addrs++] = p;
  }
  return BENCH_EXIT_OK;
}

static int parse_args(int argc, char **argv, lag_args_t *a) {
  *a = (lag_args_t){.keyspace = "default", .rate = 50, .probe_ms = 1, .inflight = 256};
  for (int i = 1; i < argc; i++) {
    const char *k = argv[i];
    if (!strcmp(k, "-h") || !strcmp(k, "--help")) {
      usage(stdout);
      exit(BENCH_EXIT_OK);
    }
    if (!strcmp(k, "--progress") || !strcmp(k, "--no-progress")) {
      a->progress = k[2] == 'p' ? BENCH_PROGRESS_ON : BENCH_PROGRESS_OFF;
      continue;
    }
    if (k[0] != '-') return bench_usage_error("lag: unexpected argument '%s'", k);
    if (!takes_value(k)) return bench_usage_error("lag: unknown option '%s'", k);
    if (i + 1 >= argc) return bench_usage_error("option '%s' needs a value", k);
    int rc = set_option(a, k, argv[++i]);
    if (rc != BENCH_EXIT_OK) return rc;
  }
  return check_args(a);
}

/* ---- set-up ------------------------------------------------------------------------ */

static int load_cluster(lag_bench_t *b) {
  kv_status_t st;
  if (kv_config_load(b->a.config_path, &b->cfg, &st) != KV_OK ||
      kv_ring_init(&b->ring, &b->cfg, &st) != KV_OK) {
    fprintf(stderr, "kvbench: %s\n", st.msg);
    return BENCH_EXIT_USAGE;
  }
  b->ks = kv_config_keyspace(&b->cfg, b->a.keyspace);
  if (!b->ks)
    return bench_usage_error("lag: keyspace '%s' is not in %s", b->a.keyspace, b->a.config_path);
  if (b->a.w > b->ks->n)
    return bench_usage_error("lag: -w %u is more than keyspace '%s''s N=%u", b->a.w,
                             b->a.keyspace, b->ks->n);
  for (uint32_t i = 0; i < b->cfg.node_count; i++) {
    uint32_t r = 0;
    while (r < b->n_regions && strcmp(b->regions[r], b->cfg.nodes[i].region) != 0) r++;
    if (r == b->n_regions && r < KV_REGIONS_MAX) b->regions[b->n_regions++] = b->cfg.nodes[i].region;
    b->region_of[i] = r < KV_REGIONS_MAX ? r : KV_REGIONS_MAX - 1;
  }
  return BENCH_EXIT_OK;
}

static int open_clients(lag_bench_t *b) {
  kv_client_status_t st;
  for (uint32_t i = 0; i < b->a.n_addrs; i++)
    if (kv_client_open(b->a.addrs[i], &b->coords[i], &st) != KV_OK)
      return bench_usage_error("-a: '%s': %s", b->a.addrs[i], st.msg);
  for (uint32_t i = 0; i < b->cfg.node_count; i++)
    if (kv_client_open(b->cfg.nodes[i].address, &b->nodes[i], &st) != KV_OK)
      return bench_usage_error("%s: node %s: '%s': %s", b->a.config_path, b->cfg.nodes[i].id,
                               b->cfg.nodes[i].address, st.msg);
  uint32_t cap = b->a.inflight * (1 + KV_REPLICAS_MAX);
  if (cap > KV_CLIENT_ASYNC_MAX) cap = KV_CLIENT_ASYNC_MAX;
  b->slots = calloc(b->a.inflight, sizeof *b->slots);
  if (!b->slots || kv_client_async_create(cap, &b->async, &st) != KV_OK) {
    fprintf(stderr, "kvbench: out of memory for %u writes in flight\n", b->a.inflight);
    return BENCH_EXIT_LOCAL;
  }
  return BENCH_EXIT_OK;
}

/* ---- the loop ---------------------------------------------------------------------- */

static void first_error(lag_bench_t *b, const char *what, const kv_client_status_t *st) {
  if (b->first_error_printed) return;
  fprintf(stderr, "kvbench: first error (%s): %s: %s\n", what, kv_client_status_name(st), st->msg);
  b->first_error_printed = true;
}

/* Starts write number b->started in a free slot; false when none is free. */
static bool start_write(lag_bench_t *b, uint64_t now) {
  slot_t *s = NULL;
  for (uint32_t i = 0; i < b->a.inflight && !s; i++)
    if (!b->slots[i].used) s = &b->slots[i];
  if (!s) return false;
  *s = (slot_t){.kind = TAG_PUT, .used = true, .start_ns = now};
  snprintf(s->key, sizeof s->key, "lag-%016llx-%llu", (unsigned long long)b->nonce,
           (unsigned long long)b->started);
  kv_preflist_t pl;
  uint64_t hash = kv_hash_key(b->a.keyspace, s->key, strlen(s->key));
  kv_ring_preflist(&b->ring, b->ks, kv_hash_partition(hash, b->cfg.partitions), &pl);
  s->replicas = pl.primary_count;
  for (uint32_t i = 0; i < s->replicas; i++)
    s->probes[i] = (probe_t){.kind = TAG_PROBE, .slot = s, .node = pl.node[i]};
  kv_client_t *c = b->coords[b->started % b->a.n_addrs];
  kv_client_status_t st;
  b->started++;
  b->in_use++;
  if (kv_client_async_start_put(b->async, c, b->a.keyspace, s->key, strlen(s->key), "v", 1, NULL,
                                0, &b->put_opts, s, &st) != KV_OK) {
    first_error(b, "starting a put", &st);
    b->failed++;
    s->used = false;
    b->in_use--;
  }
  return true;
}

static void start_probe(lag_bench_t *b, probe_t *p, uint64_t now) {
  kv_client_status_t st;
  p->sent_ns = now;
  p->in_flight = true;
  slot_t *s = p->slot;
  if (kv_client_async_start_get(b->async, b->nodes[p->node], b->a.keyspace, s->key,
                                strlen(s->key), &b->probe_opts, p, &st) != KV_OK) {
    p->in_flight = false;
    p->due_ns = now + 1000000; /* the table is full: try again in a millisecond */
  }
}

/* Records a write whose every replica has it, and frees its slot. */
static void write_done(lag_bench_t *b, slot_t *s) {
  uint64_t region_lag[KV_REGIONS_MAX] = {0};
  bool seen[KV_REGIONS_MAX] = {false};
  for (uint32_t i = 0; i < s->replicas; i++) {
    const probe_t *p = &s->probes[i];
    kv_histogram_record(&b->node_lag[p->node], p->lag_ns);
    b->node_writes[p->node]++;
    uint32_t r = b->region_of[p->node];
    if (p->lag_ns > region_lag[r]) region_lag[r] = p->lag_ns;
    seen[r] = true;
  }
  for (uint32_t r = 0; r < b->n_regions; r++)
    if (seen[r]) kv_histogram_record(&b->region_lag[r], region_lag[r]);
  b->done++;
  s->used = false;
  b->in_use--;
}

static void on_put(lag_bench_t *b, slot_t *s, const kv_client_completion_t *done, uint64_t now) {
  if (done->status.code != KV_OK) {
    first_error(b, "put", &done->status);
    b->failed++;
    s->used = false;
    b->in_use--;
    return;
  }
  kv_histogram_record(&b->put_lat, done->latency_ns);
  s->acked = true;
  s->ack_ns = now;
  for (uint32_t i = 0; i < s->replicas; i++) {
    s->probes[i].last_miss_ns = now;
    start_probe(b, &s->probes[i], now);
  }
}

static void on_probe(lag_bench_t *b, probe_t *p, const kv_client_completion_t *done,
                     uint64_t now) {
  p->in_flight = false;
  slot_t *s = p->slot;
  if (done->status.code == KV_OK && done->found) {
    uint64_t at = p->last_miss_ns + (p->sent_ns - p->last_miss_ns) / 2;
    p->lag_ns = at > s->ack_ns ? at - s->ack_ns : 0;
    p->visible = true;
    if (++s->visible == s->replicas) write_done(b, s);
    return;
  }
  if (done->status.code != KV_OK) first_error(b, "a --local probe", &done->status);
  else p->last_miss_ns = p->sent_ns;
  p->due_ns = p->sent_ns + (uint64_t)(b->a.probe_ms * 1e6);
  if (p->due_ns < now) p->due_ns = now;
}

/* Starts the probes that are due, gives up on writes past VISIBLE_WAIT_NS; returns the time
 * of the next due probe (UINT64_MAX: none). */
static uint64_t sweep(lag_bench_t *b, uint64_t now) {
  uint64_t next = UINT64_MAX;
  for (uint32_t i = 0; i < b->a.inflight; i++) {
    slot_t *s = &b->slots[i];
    if (!s->used || !s->acked) continue;
    bool busy = false;
    for (uint32_t k = 0; k < s->replicas; k++) {
      probe_t *p = &s->probes[k];
      busy |= p->in_flight;
      if (p->visible || p->in_flight) continue;
      if (p->due_ns <= now) start_probe(b, p, now);
      else if (p->due_ns < next) next = p->due_ns;
    }
    if (!busy && now - s->ack_ns > VISIBLE_WAIT_NS) {
      b->unfinished++;
      s->used = false;
      b->in_use--;
    }
  }
  return next;
}

static bool more_to_start(const lag_bench_t *b, uint64_t now) {
  if (b->a.writes) return b->started < b->a.writes;
  return now < b->t0_ns + (uint64_t)(b->a.duration_s * 1e9);
}

static void run(lag_bench_t *b) {
  b->t0_ns = bench_now_ns();
  uint64_t interval_ns = (uint64_t)(1e9 / b->a.rate);
  kv_client_completion_t done;
  for (;;) {
    uint64_t now = bench_now_ns();
    bool starting = more_to_start(b, now);
    if (!starting && b->in_use == 0) break;
    uint64_t due = b->t0_ns + b->started * interval_ns;
    while (starting && due <= now) {
      if (!start_write(b, now)) {
        if (!b->waiting) b->late++; /* it starts, late, when a slot frees */
        b->waiting = true;
        break;
      }
      b->waiting = false;
      due = b->t0_ns + b->started * interval_ns;
      starting = more_to_start(b, now);
    }
    uint64_t next = sweep(b, now);
    if (starting && due < next) next = due;
    int wait_ms = next == UINT64_MAX ? 5 : next <= now ? 0 : (int)((next - now) / 1000000);
    if (wait_ms > 5) wait_ms = 5;
    if (kv_client_async_next(b->async, wait_ms, &done) == 1) {
      uint64_t t = bench_now_ns();
      if (*(const tag_kind_t *)done.tag == TAG_PUT) on_put(b, done.tag, &done, t);
      else on_probe(b, done.tag, &done, t);
    }
    bench_progress_show(&b->progress, "kvbench: lag: %llu writes done, %u followed, %llu failed",
                        (unsigned long long)b->done, b->in_use,
                        (unsigned long long)(b->failed + b->unfinished));
  }
  bench_progress_done(&b->progress);
}

/* ---- output ------------------------------------------------------------------------ */

static void row(FILE *f, const char *name, const char *region, const kv_histogram_t *h) {
  fprintf(f, "%-14s %-10s %8llu %9.3f %9.3f %9.3f %9.3f\n", name, region,
          (unsigned long long)h->total, (double)kv_histogram_percentile(h, 50) / 1e6,
          (double)kv_histogram_percentile(h, 99) / 1e6,
          (double)kv_histogram_percentile(h, 99.9) / 1e6, (double)h->max / 1e6);
}

/* "w=2", "LOCAL_QUORUM" or "the keyspace's level". */
static const char *write_level(const lag_bench_t *b, char *buf, size_t len) {
  if (b->a.w) snprintf(buf, len, "w=%u", b->a.w);
  else snprintf(buf, len, "%s", b->a.level ? b->a.level : "the keyspace's level");
  return buf;
}

static void print_results(lag_bench_t *b) {
  char level[48];
  printf("kvbench lag: %llu writes at %s through %u node(s), %g writes/s, keyspace %s (N=%u), "
         "probes every %g ms\n", (unsigned long long)b->done, write_level(b, level, sizeof level),
         b->a.n_addrs, b->a.rate, b->a.keyspace, b->ks->n, b->a.probe_ms);
  printf("%llu failed, %llu never reached every replica in 10 s, %llu late starts\n\n",
         (unsigned long long)b->failed, (unsigned long long)b->unfinished,
         (unsigned long long)b->late);
  printf("%-14s %-10s %8s %9s %9s %9s %9s\n", "lag after ack", "region", "writes", "p50 ms",
         "p99 ms", "p99.9 ms", "max ms");
  for (uint32_t i = 0; i < b->cfg.node_count; i++)
    if (b->node_writes[i]) row(stdout, b->cfg.nodes[i].id, b->regions[b->region_of[i]], &b->node_lag[i]);
  for (uint32_t r = 0; r < b->n_regions; r++)
    if (b->region_lag[r].total) row(stdout, "region", b->regions[r], &b->region_lag[r]);
  row(stdout, "put latency", "", &b->put_lat);
}

static void json_hist(FILE *f, const kv_histogram_t *h) {
  fprintf(f, "{\"writes\": %llu, \"p50_ms\": %.4f, \"p99_ms\": %.4f, \"p999_ms\": %.4f, "
          "\"max_ms\": %.4f}", (unsigned long long)h->total,
          (double)kv_histogram_percentile(h, 50) / 1e6, (double)kv_histogram_percentile(h, 99) / 1e6,
          (double)kv_histogram_percentile(h, 99.9) / 1e6, (double)h->max / 1e6);
}

static int write_json(lag_bench_t *b) {
  FILE *f = fopen(b->a.json_path, "w");
  if (!f) {
    fprintf(stderr, "kvbench: cannot write %s: %s\n", b->a.json_path, strerror(errno));
    return BENCH_EXIT_LOCAL;
  }
  fprintf(f, "{\"writes\": %llu, \"failed\": %llu, \"unfinished\": %llu, \"replicas\": {",
          (unsigned long long)b->done, (unsigned long long)b->failed,
          (unsigned long long)b->unfinished);
  bool first = true;
  for (uint32_t i = 0; i < b->cfg.node_count; i++) {
    if (!b->node_writes[i]) continue;
    fprintf(f, "%s\"%s\": ", first ? "" : ", ", b->cfg.nodes[i].id); /* ids: [A-Za-z0-9_.-] */
    json_hist(f, &b->node_lag[i]);
    first = false;
  }
  fputs("}, \"regions\": {", f);
  first = true;
  for (uint32_t r = 0; r < b->n_regions; r++) {
    if (!b->region_lag[r].total) continue;
    fprintf(f, "%s\"%s\": ", first ? "" : ", ", b->regions[r]);
    json_hist(f, &b->region_lag[r]);
    first = false;
  }
  fputs("}, \"put\": ", f);
  json_hist(f, &b->put_lat);
  fputs("}\n", f);
  if (fclose(f) != 0) {
    fprintf(stderr, "kvbench: cannot write %s: %s\n", b->a.json_path, strerror(errno));
    return BENCH_EXIT_LOCAL;
  }
  return BENCH_EXIT_OK;
}

static int write_html(lag_bench_t *b) {
  static double xs[KV_REPORT_SERIES_MAX + 1][KV_REPORT_CDF_POINTS];
  static double ys[KV_REPORT_SERIES_MAX + 1][KV_REPORT_CDF_POINTS];
  static char names[KV_REPORT_SERIES_MAX][64];
  kv_report_series_t lag[KV_REPORT_SERIES_MAX], put;
  size_t n = 0;
  for (uint32_t r = 0; r < b->n_regions && n < KV_REPORT_SERIES_MAX; r++) {
    if (!b->region_lag[r].total) continue;
    snprintf(names[n], sizeof names[n], "region %s", b->regions[r]);
    lag[n] = (kv_report_series_t){.name = names[n], .x = xs[n], .y = ys[n],
                                  .n = kv_report_cdf(&b->region_lag[r], 1e-6, xs[n], ys[n])};
    n++;
  }
  for (uint32_t i = 0; i < b->cfg.node_count && n < KV_REPORT_SERIES_MAX; i++) {
    if (!b->node_writes[i]) continue;
    snprintf(names[n], sizeof names[n], "%s (%s)", b->cfg.nodes[i].id, b->regions[b->region_of[i]]);
    lag[n] = (kv_report_series_t){.name = names[n], .x = xs[n], .y = ys[n], .dashed = true,
                                  .n = kv_report_cdf(&b->node_lag[i], 1e-6, xs[n], ys[n])};
    n++;
  }
  char level[48], put_name[64];
  snprintf(put_name, sizeof put_name, "put %s", write_level(b, level, sizeof level));
  put = (kv_report_series_t){.name = put_name, .x = xs[KV_REPORT_SERIES_MAX],
                             .y = ys[KV_REPORT_SERIES_MAX]};
  put.n = kv_report_cdf(&b->put_lat, 1e-6, xs[KV_REPORT_SERIES_MAX], ys[KV_REPORT_SERIES_MAX]);
  char subtitle[256];
  snprintf(subtitle, sizeof subtitle, "%llu writes, %g writes/s, keyspace %s (N=%u), probes every %g ms",
           (unsigned long long)b->done, b->a.rate, b->a.keyspace, b->ks->n, b->a.probe_ms);
  bench_html_t h;
  bench_html_init(&h);
  h.title = "kvbench lag";
  h.subtitle = subtitle;
  h.note = "Lag is measured from the write's acknowledgement to the replica's first --local "
           "probe that found it; a region's is its last replica's.";
  h.latency.series = &put;
  h.latency.n_series = 1;
  h.lag.series = lag;
  h.lag.n_series = n;
  return bench_write_html(b->a.html_path, &h);
}

/* ---- main -------------------------------------------------------------------------- */

int bench_lag_main(int argc, char **argv) {
  static lag_bench_t bench; /* histograms are large: keep them off the stack */
  lag_bench_t *b = &bench;
  int rc = parse_args(argc, argv, &b->a);
  if (rc == BENCH_EXIT_OK) rc = load_cluster(b);
  if (rc == BENCH_EXIT_OK) rc = open_clients(b);
  if (rc == BENCH_EXIT_OK) {
    kv_histogram_init(&b->put_lat);
    for (uint32_t i = 0; i < KV_NODES_MAX; i++) kv_histogram_init(&b->node_lag[i]);
    for (uint32_t r = 0; r < KV_REGIONS_MAX; r++) kv_histogram_init(&b->region_lag[r]);
    kv_client_opts_t init = KV_CLIENT_OPTS_INIT;
    b->put_opts = b->probe_opts = init;
    b->put_opts.level = b->a.level;
    b->put_opts.w = b->a.w;
    b->put_opts.timeout_ms = b->a.timeout_ms;
    b->probe_opts.local = true;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    b->nonce = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    bench_progress_init(&b->progress, b->a.progress);
    run(b);
    print_results(b);
    if (b->a.json_path) rc = write_json(b);
    if (rc == BENCH_EXIT_OK && b->a.html_path) rc = write_html(b);
    if (rc == BENCH_EXIT_OK && (b->failed || b->unfinished)) rc = BENCH_EXIT_ERRORS;
  }
  kv_client_async_destroy(b->async);
  for (uint32_t i = 0; i < b->a.n_addrs; i++) kv_client_close(b->coords[i]);
  for (uint32_t i = 0; i < b->cfg.node_count; i++) kv_client_close(b->nodes[i]);
  free(b->slots);
  free(b->a.addrs_text);
  return rc;
}
