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
 * Probes cost load (per write, about lag / P probes per replica: keep R x N x lag / P within a
 * few thousand a second).
 *
 * Applied times, checked against the probes: once every replica has the write, its
 * coordinator is asked (Admin.Applied, coordinator/applied.h) when W was met (acked_ms, its wall
 * clock) and when each replica applied it (applied_ms, each replica's wall clock, carried to
 * the coordinator in the replicas' acks, late ones included, and through a forwarder's
 * outcomes). The node the write was sent to is asked first; when it is not a replica it
 * forwarded the write to the first live primary, so the primaries are asked next, in
 * preference-list order, until one answers (NOT_FOUND: the next; UNAVAILABLE, the write still
 * waiting for acks there: the same again 2 ms later, for up to the write's timeout plus a
 * second). The call is blocking, in the loop: a loopback round trip per write, by which the
 * probes due meanwhile start late. A replica's applied-time lag is applied_ms - acked_ms (0
 * when it applied the write before W was met, as for the probes); a region's, its last
 * replica's. The nodes' wall clocks are compared with each other, which holds on one machine
 * (or with clocks in sync; `kvctl status` shows their offsets). The check: a replica agrees
 * when its applied-time lag lies in its probe interval, from the send of its last probe that
 * missed (the acknowledgement, before any) to the answer of its first that hit (it had the
 * write by then), widened by APPLIED_TOLERANCE_MS = 1 ms on each side, because applied_ms and
 * acked_ms are whole milliseconds, each up to 1 ms early (the coordinator's W time is its
 * request's wall_ms plus the monotonic time to W). The agreement is the fraction of replica
 * writes with applied times that agree; a region agrees when its applied-time lag lies in
 * [the latest start, the latest end] of its replicas' intervals.
 *
 * At most M writes (default 256) are followed at once; a write due while M are followed starts
 * late, and the number of late starts is printed. A write whose replicas do not all have it
 * within 10 s counts as unfinished. Output: a table per replica and per region (writes, p50,
 * p99, p99.9, max), the put latency, then the same for the applied-time lag with each row's
 * agreement and the overall one; JSON; the HTML report of bench.h with both lags and the
 * agreement in its table, the probe lag CDF per region and per replica and the put latency
 * CDF. Exit status: 0, 1 local failure, 2 usage
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
#define APPLIED_TOLERANCE_MS 1.0
#define ASK_RETRY_NS 2000000ull

typedef enum { TAG_PUT, TAG_PROBE } tag_kind_t;

typedef struct slot slot_t;

typedef struct {
  tag_kind_t kind;             /* first: a completion's tag points at one of these */
  slot_t *slot;
  uint32_t node;               /* config index of the replica */
  bool in_flight, visible;
  uint64_t sent_ns, last_miss_ns, due_ns, lag_ns;
  uint64_t hit_ns;             /* when the first probe that hit was answered */
} probe_t;

struct slot {
  tag_kind_t kind;             /* TAG_PUT */
  bool used, acked;
  uint64_t start_ns, ack_ns;
  uint32_t replicas, visible;
  kv_client_t *coord;          /* the node the put was sent to */
  bool asking;                 /* every replica has it: its applied times are asked for */
  uint32_t ask_step;           /* 0: coord; k: the k-th primary */
  uint64_t ask_due_ns;
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
  /* applied times (see the top) */
  kv_histogram_t node_applied[KV_NODES_MAX], region_applied[KV_REGIONS_MAX];
  uint64_t node_checked[KV_NODES_MAX], node_agreed[KV_NODES_MAX];
  uint64_t region_checked[KV_REGIONS_MAX], region_agreed[KV_REGIONS_MAX];
  uint64_t applied_unknown;          /* writes no node gave applied times for */
  bench_progress_t progress;
} lag_bench_t;

static void usage(FILE *f) {
  fputs("usage: kvbench lag --config FILE -a ADDR[,ADDR..] (--writes N | --duration S)\n"
        "           [--rate R] [-w W | -c LEVEL] [--probe-ms P] [--max-inflight M]\n"
        "           [--keyspace NAME] [--timeout MS] [--json FILE] [--html FILE]\n"
        "           [--progress | --no-progress]\n"
        "\n"
        "Measures, for every replica and every region, how long after its acknowledgement a\n"
        "write is there (--local probes), under a steady write rate, and checks it against\n"
        "the replicas' own applied times, which it asks the writes' coordinators for.\n"
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
    if (bench_open(b->a.addrs[i], &b->coords[i], &st) != KV_OK)
      return bench_usage_error("-a: '%s': %s", b->a.addrs[i], st.msg);
  for (uint32_t i = 0; i < b->cfg.node_count; i++)
    if (bench_open(b->cfg.nodes[i].address, &b->nodes[i], &st) != KV_OK)
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
  s->coord = c;
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

/* A region's applied times so far in one write: its lag, the latest start and end of its
 * replicas' probe intervals, and whether every replica had an applied time. */
typedef struct {
  double lag_ms, lo_ms, hi_ms;
  bool seen, all_known;
} region_applied_t;

static bool within(double lag_ms, double lo_ms, double hi_ms) {
  return lag_ms >= lo_ms - APPLIED_TOLERANCE_MS && lag_ms <= hi_ms + APPLIED_TOLERANCE_MS;
}

/* Records the applied times w gives for s's replicas (see the top), checking each against its
 * probe interval. */
static void applied_record(lag_bench_t *b, const slot_t *s, const kv_client_applied_t *w) {
  region_applied_t reg[KV_REGIONS_MAX] = {{0}};
  for (uint32_t i = 0; i < s->replicas; i++) {
    const probe_t *p = &s->probes[i];
    region_applied_t *g = &reg[b->region_of[p->node]];
    double lo = (double)(p->last_miss_ns - s->ack_ns) / 1e6, hi = (double)(p->hit_ns - s->ack_ns) / 1e6;
    if (!g->seen) *g = (region_applied_t){.seen = true, .all_known = true, .lo_ms = lo, .hi_ms = hi};
    if (lo > g->lo_ms) g->lo_ms = lo;
    if (hi > g->hi_ms) g->hi_ms = hi;
    const kv_client_replica_applied_t *a = NULL;
    for (size_t k = 0; k < w->n_replicas && !a; k++)
      if (!strcmp(w->replicas[k].node, b->cfg.nodes[p->node].id)) a = &w->replicas[k];
    if (!a) {
      g->all_known = false;
      continue;
    }
    double lag = a->applied_ms > w->acked_ms ? (double)(a->applied_ms - w->acked_ms) : 0;
    kv_histogram_record(&b->node_applied[p->node], (uint64_t)(lag * 1e6));
    b->node_checked[p->node]++;
    b->node_agreed[p->node] += within(lag, lo, hi);
    if (lag > g->lag_ms) g->lag_ms = lag;
  }
  for (uint32_t r = 0; r < b->n_regions; r++) {
    if (!reg[r].seen || !reg[r].all_known) continue;
    kv_histogram_record(&b->region_applied[r], (uint64_t)(reg[r].lag_ms * 1e6));
    b->region_checked[r]++;
    b->region_agreed[r] += within(reg[r].lag_ms, reg[r].lo_ms, reg[r].hi_ms);
  }
}

/* Records a write whose every replica has it (with its applied times, or NULL when no node
 * gave them), and frees its slot. */
static void write_done(lag_bench_t *b, slot_t *s, const kv_client_applied_t *w) {
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
  if (w) applied_record(b, s, w);
  else b->applied_unknown++;
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
    p->hit_ns = now;
    p->visible = true;
    if (++s->visible == s->replicas) {
      s->asking = true;
      s->ask_due_ns = now;
    }
    return;
  }
  if (done->status.code != KV_OK) first_error(b, "a --local probe", &done->status);
  else p->last_miss_ns = p->sent_ns;
  p->due_ns = p->sent_ns + (uint64_t)(b->a.probe_ms * 1e6);
  if (p->due_ns < now) p->due_ns = now;
}

/* Asks for a write's applied times (see the top): the node it was sent to, then its
 * primaries in order; the write is done when one answers or none will. */
static void ask_applied(lag_bench_t *b, slot_t *s, uint64_t now) {
  uint64_t wait_ns = ((uint64_t)(b->a.timeout_ms ? b->a.timeout_ms : KV_TIMEOUT_MS_DEFAULT) + 1000) *
                     1000000ull;
  for (; s->ask_step <= s->replicas; s->ask_step++) {
    kv_client_t *c = s->ask_step == 0 ? s->coord : b->nodes[s->probes[s->ask_step - 1].node];
    kv_client_applied_t w;
    kv_client_status_t st;
    kv_err err = kv_client_applied(c, b->a.keyspace, s->key, strlen(s->key), &w, &st);
    if (err == KV_OK) {
      write_done(b, s, &w);
      return;
    }
    if (err == KV_EUNAVAILABLE && now - s->ack_ns < wait_ns) {
      s->ask_due_ns = now + ASK_RETRY_NS; /* still waiting for acks there, or down: again */
      return;
    }
    if (err != KV_ENOTFOUND) first_error(b, "asking for applied times", &st);
  }
  write_done(b, s, NULL);
}

/* Starts the probes that are due and asks for the applied times that are, gives up on writes
 * past VISIBLE_WAIT_NS; returns the time of the next due probe or question (UINT64_MAX:
 * none). */
static uint64_t sweep(lag_bench_t *b, uint64_t now) {
  uint64_t next = UINT64_MAX;
  for (uint32_t i = 0; i < b->a.inflight; i++) {
    slot_t *s = &b->slots[i];
    if (!s->used || !s->acked) continue;
    if (s->asking) {
      if (s->ask_due_ns <= now) ask_applied(b, s, now);
      else if (s->ask_due_ns < next) next = s->ask_due_ns;
      continue;
    }
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

/* Agreement of n checked lags of which agreed agreed, as text: "0.967", or "-" for none. */
static const char *agreement(uint64_t agreed, uint64_t n, char *buf, size_t len) {
  if (n) snprintf(buf, len, "%.3f", (double)agreed / (double)n);
  else snprintf(buf, len, "-");
  return buf;
}

static void applied_totals(const lag_bench_t *b, uint64_t *agreed, uint64_t *checked) {
  *agreed = *checked = 0;
  for (uint32_t i = 0; i < b->cfg.node_count; i++) {
    *agreed += b->node_agreed[i];
    *checked += b->node_checked[i];
  }
}

static void applied_row(const char *name, const char *region, const kv_histogram_t *h,
                        uint64_t agreed, uint64_t checked) {
  char buf[16];
  printf("%-14s %-10s %8llu %9.3f %9.3f %9.3f %9.3f %7s\n", name, region,
         (unsigned long long)h->total, (double)kv_histogram_percentile(h, 50) / 1e6,
         (double)kv_histogram_percentile(h, 99) / 1e6,
         (double)kv_histogram_percentile(h, 99.9) / 1e6, (double)h->max / 1e6,
         agreement(agreed, checked, buf, sizeof buf));
}

static void print_applied(lag_bench_t *b) {
  printf("\n%-14s %-10s %8s %9s %9s %9s %9s %7s\n", "applied lag", "region", "writes", "p50 ms",
         "p99 ms", "p99.9 ms", "max ms", "agree");
  for (uint32_t i = 0; i < b->cfg.node_count; i++)
    if (b->node_writes[i])
      applied_row(b->cfg.nodes[i].id, b->regions[b->region_of[i]], &b->node_applied[i],
                  b->node_agreed[i], b->node_checked[i]);
  for (uint32_t r = 0; r < b->n_regions; r++)
    if (b->region_lag[r].total)
      applied_row("region", b->regions[r], &b->region_applied[r], b->region_agreed[r],
                  b->region_checked[r]);
  uint64_t agreed, checked;
  char buf[16];
  applied_totals(b, &agreed, &checked);
  printf("agreement %s: %llu of %llu replica writes had their applied-time lag (applied_ms - "
         "acked_ms, on the nodes' wall clocks) within their probe interval +- %g ms; %llu writes "
         "without applied times\n", agreement(agreed, checked, buf, sizeof buf),
         (unsigned long long)agreed, (unsigned long long)checked, APPLIED_TOLERANCE_MS,
         (unsigned long long)b->applied_unknown);
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
  print_applied(b);
}

static void json_hist(FILE *f, const kv_histogram_t *h) {
  fprintf(f, "{\"writes\": %llu, \"p50_ms\": %.4f, \"p99_ms\": %.4f, \"p999_ms\": %.4f, "
          "\"max_ms\": %.4f}", (unsigned long long)h->total,
          (double)kv_histogram_percentile(h, 50) / 1e6, (double)kv_histogram_percentile(h, 99) / 1e6,
          (double)kv_histogram_percentile(h, 99.9) / 1e6, (double)h->max / 1e6);
}

/* The applied-time lag of one replica or region, with its agreement. */
static void json_applied(FILE *f, const char *name, const kv_histogram_t *h, uint64_t agreed,
                         uint64_t checked, bool first) {
  fprintf(f, "%s\"%s\": {\"writes\": %llu, \"p50_ms\": %.4f, \"p99_ms\": %.4f, \"p999_ms\": %.4f, "
          "\"max_ms\": %.4f, \"checked\": %llu, \"agreed\": %llu}", first ? "" : ", ", name,
          (unsigned long long)h->total, (double)kv_histogram_percentile(h, 50) / 1e6,
          (double)kv_histogram_percentile(h, 99) / 1e6,
          (double)kv_histogram_percentile(h, 99.9) / 1e6, (double)h->max / 1e6,
          (unsigned long long)checked, (unsigned long long)agreed);
}

/* "applied": {"replicas": {..}, "regions": {..}, "checked", "agreed", "agreement",
 * "tolerance_ms", "unknown"}. */
static void write_json_applied(FILE *f, const lag_bench_t *b) {
  fputs(", \"applied\": {\"replicas\": {", f);
  bool first = true;
  for (uint32_t i = 0; i < b->cfg.node_count; i++) {
    if (!b->node_writes[i]) continue;
    json_applied(f, b->cfg.nodes[i].id, &b->node_applied[i], b->node_agreed[i],
                 b->node_checked[i], first);
    first = false;
  }
  fputs("}, \"regions\": {", f);
  first = true;
  for (uint32_t r = 0; r < b->n_regions; r++) {
    if (!b->region_lag[r].total) continue;
    json_applied(f, b->regions[r], &b->region_applied[r], b->region_agreed[r],
                 b->region_checked[r], first);
    first = false;
  }
  uint64_t agreed, checked;
  applied_totals(b, &agreed, &checked);
  fprintf(f, "}, \"checked\": %llu, \"agreed\": %llu, \"agreement\": %.4f, "
          "\"tolerance_ms\": %g, \"unknown\": %llu}", (unsigned long long)checked,
          (unsigned long long)agreed, checked ? (double)agreed / (double)checked : 0.0,
          APPLIED_TOLERANCE_MS, (unsigned long long)b->applied_unknown);
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
  write_json_applied(f, b);
  fputs("}\n", f);
  if (fclose(f) != 0) {
    fprintf(stderr, "kvbench: cannot write %s: %s\n", b->a.json_path, strerror(errno));
    return BENCH_EXIT_LOCAL;
  }
  return BENCH_EXIT_OK;
}

#define HTML_COLS 8
#define HTML_ROWS_MAX (KV_NODES_MAX + KV_REGIONS_MAX)

/* One row of the HTML table: both lags of a replica or region, and its agreement. */
static void html_row(char (*t)[32], const char *name, const char *region,
                     const kv_histogram_t *probe, const kv_histogram_t *applied, uint64_t agreed,
                     uint64_t checked) {
  snprintf(t[0], 32, "%s", name);
  snprintf(t[1], 32, "%s", region);
  snprintf(t[2], 32, "%llu", (unsigned long long)probe->total);
  snprintf(t[3], 32, "%.3f", (double)kv_histogram_percentile(probe, 50) / 1e6);
  snprintf(t[4], 32, "%.3f", (double)kv_histogram_percentile(probe, 99) / 1e6);
  snprintf(t[5], 32, "%.3f", (double)kv_histogram_percentile(applied, 50) / 1e6);
  snprintf(t[6], 32, "%.3f", (double)kv_histogram_percentile(applied, 99) / 1e6);
  agreement(agreed, checked, t[7], 32);
}

static int write_html(lag_bench_t *b) {
  static const char *const head[HTML_COLS] = {"replica", "region", "writes", "probe p50 ms",
                                              "probe p99 ms", "applied p50 ms",
                                              "applied p99 ms", "agree"};
  static char text[HTML_ROWS_MAX][HTML_COLS][32];
  static const char *cells[HTML_ROWS_MAX * HTML_COLS];
  size_t rows = 0;
  for (uint32_t i = 0; i < b->cfg.node_count; i++)
    if (b->node_writes[i])
      html_row(text[rows++], b->cfg.nodes[i].id, b->regions[b->region_of[i]], &b->node_lag[i],
               &b->node_applied[i], b->node_agreed[i], b->node_checked[i]);
  for (uint32_t r = 0; r < b->n_regions; r++)
    if (b->region_lag[r].total)
      html_row(text[rows++], "region", b->regions[r], &b->region_lag[r], &b->region_applied[r],
               b->region_agreed[r], b->region_checked[r]);
  for (size_t r = 0; r < rows; r++)
    for (size_t c = 0; c < HTML_COLS; c++) cells[r * HTML_COLS + c] = text[r][c];
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
  uint64_t agreed, checked;
  char note[640], buf[16];
  applied_totals(b, &agreed, &checked);
  snprintf(note, sizeof note,
           "Probe lag is measured from the write's acknowledgement to the replica's first --local "
           "probe that found it; applied lag is the replica's applied_ms minus the coordinator's "
           "acked_ms (Admin.Applied, on the nodes' wall clocks); a region's is its last "
           "replica's. Agreement %s: %llu of %llu replica writes had their applied lag within "
           "their probe interval (last miss sent to first hit answered) +- %g ms.",
           agreement(agreed, checked, buf, sizeof buf), (unsigned long long)agreed,
           (unsigned long long)checked, APPLIED_TOLERANCE_MS);
  h.note = note;
  h.head = head;
  h.cols = HTML_COLS;
  h.cells = cells;
  h.rows = rows;
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
    for (uint32_t i = 0; i < KV_NODES_MAX; i++) kv_histogram_init(&b->node_applied[i]);
    for (uint32_t r = 0; r < KV_REGIONS_MAX; r++) kv_histogram_init(&b->region_applied[r]);
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
