/* kvbench.c: closed-loop load for tunekv over libtunekv's async API, and the dispatcher to
 * kvbench's other modes (bench_<mode>.c; `kvbench MODE -h` for each).
 *
 *   kvbench [load] -a ADDR[,ADDR..] (--ops N | --duration S) [--concurrency C]
 *           [--value-bytes B] [--keys K] [--mix put=50,get=50] [-c LEVEL[,LEVEL..]]
 *           [--warmup S] [--json FILE] [--html FILE] [--keyspace NAME] [--seed N]
 *           [--timeout MS] [--blind] [--durable] [--sequential] [--local] [--preload]
 *           [--progress | --no-progress]
 *
 * --preload first writes every key once (k00000000 .. K-1, in order, at the first level),
 * so gets find values and puts replace them; only what runs after it is measured.
 * With several levels (-c ONE,QUORUM,ALL) the whole run (warmup, measurement) is made once per
 * level, in the order given, each from the same seed, so the levels see the same requests.
 *
 * Exactly C requests are in flight at all times on one completion queue: when one finishes,
 * the next starts in its place. Requests go round-robin over one client per address. Each
 * request picks its operation from the mix and its key uniformly from K keys ("k%08d") with
 * a PRNG seeded by --seed, so the sequence of requests is the same on every run. Puts write
 * B bytes; gets of missing keys count as ok. Like a read-modify-write client, a put carries
 * the last context this run received for its key (from a put, get or delete reply), so a
 * key's siblings stay bounded by the writers racing on it instead of piling up to the
 * keyspace's sibling cap (after which blind puts fail with RESOURCE_EXHAUSTED); a delete
 * carries it too, so it removes what the run last saw (and the tombstone can be reaped). --blind sends puts
 * without a context, to measure exactly that path. --durable asks for every put to be
 * fsynced before it is acknowledged (the server groups them behind shared fsyncs).
 * --sequential takes keys in order instead (k00000000, k00000001, ..., wrapping at K), so
 * --ops K --mix put=100 --sequential writes every key exactly once. --local sends gets that
 * read only the receiving node's replica; with --sequential --mix get=100 that checks one
 * node holds every key (the results count the gets that found nothing).
 *
 * Measurement: the first --warmup seconds run but are not counted. A request is measured
 * when it starts after the warmup and (with --ops) is one of the first N such starts, or
 * (with --duration) starts within S seconds of the end of the warmup. The window runs from
 * the end of the warmup to the completion of the last measured request. Per operation:
 * ops/s = successful measured requests / window; latency percentiles are over successful
 * requests, kept in a log-linear histogram (common/histogram.h, < 1% error); errors counts
 * failed measured requests. The first failure of the run (warmup included) is printed once
 * on stderr as "kvbench: first error (<op> to <addr>): <GRPC_STATUS_NAME>: <message>".
 *
 * Output: a line per node with its resident memory and threads after the run (from its
 * status), then a table on stdout with a row per operation in the mix (per level and
 * operation, with a level column, when there are several levels). --json FILE writes
 *   {"put": {"ops_per_sec": .., "p50_ms": .., "p99_ms": .., "p999_ms": .., "errors": ..},
 *    "get": {..}, "delete": {..}, "levels": [{"level": "ONE", "put": {..}, ..}, ..],
 *    "nodes": [{"address": .., "node": .., "rss_bytes": .., "threads": ..}, ..]}
 * on one line, always with every operation (zeros for one not in the mix); the top-level
 * ones are the first level's. --html FILE writes the report of bench.h: the table
 * and the latency CDF of every (operation, level). While it runs, a progress line is drawn
 * on stderr when stderr is a terminal (--progress forces it, --no-progress stops it).
 *
 * Exit status: 0 every measured request succeeded, 3 some failed (results still printed),
 * 2 usage error, 1 a local failure (cannot write the JSON file, cannot start a call). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "histogram.h"
#include "kv_limits.h"
#include "cli_auth.h"
#include "tunekv.h"

enum {
  EXIT_OK = BENCH_EXIT_OK,
  EXIT_LOCAL = BENCH_EXIT_LOCAL,
  EXIT_USAGE = BENCH_EXIT_USAGE,
  EXIT_ERRORS = BENCH_EXIT_ERRORS
};

#define CONCURRENCY_MAX 4096u
#define DURATION_S_MAX 86400.0
#define KEYS_MAX 100000000u /* the context table holds 16 bytes per key */
#define OPS_MAX 1000000000000ull
#define LEVELS_MAX 12u /* levels one run measures (-c A,B,..) */

enum { OP_PUT, OP_GET, OP_DELETE, OP_COUNT };
static const char *const op_names[OP_COUNT] = {"put", "get", "delete"};

typedef struct {
  char *addrs;          /* the -a argument, split in place */
  uint64_t ops;         /* --ops, 0 = use duration */
  double duration_s;    /* --duration, 0 = use ops */
  uint32_t concurrency, value_bytes, keys, timeout_ms;
  uint32_t mix[OP_COUNT];
  const char *mix_text, *json_path, *html_path, *keyspace;
  char *levels_text;              /* the -c argument, split in place into levels[] */
  const char *levels[LEVELS_MAX]; /* "" = the keyspace default */
  uint32_t n_levels;
  bench_progress_mode_t progress;
  double warmup_s;
  uint64_t seed;
  bool blind;
  bool sequential;
  bool local;
  bool durable;
  bool preload;
} bench_args_t;

typedef struct {
  kv_histogram_t hist;
  uint64_t ok, errors;
  uint64_t not_found;  /* gets answered ok that found no live version */
} op_stats_t;

/* One in-flight request: its operation and whether it is measured. The tag of the call. */
typedef struct {
  int op;
  uint32_t client; /* index into bench_t.clients */
  uint32_t key;
  bool measured;
} req_t;

/* The last context received for a key, malloc'd and reused (grown, never shrunk). */
typedef struct {
  uint8_t *bytes;
  uint32_t len, cap;
} key_ctx_t;

typedef struct {
  bench_args_t args;
  kv_client_t *clients[KV_NODES_MAX];
  const char *client_addrs[KV_NODES_MAX];
  uint32_t n_clients, next_client;
  uint64_t next_key;   /* --sequential */
  kv_client_async_t *async;
  kv_client_opts_t opts;
  uint8_t *value;
  key_ctx_t *contexts; /* args.keys entries; NULL with --blind or no puts */
  uint64_t rng;
  uint64_t t_measure_ns, t_end_ns, started_measured, last_done_ns;
  bool first_error_printed;
  uint32_t level;                      /* index into args.levels of the run going on */
  op_stats_t stats[LEVELS_MAX][OP_COUNT];
  double window_s[LEVELS_MAX];
  bench_progress_t progress;
  /* Each node after the run (its status; rss 0 when it did not answer). */
  char node_ids[KV_NODES_MAX][KV_NODE_ID_BYTES_MAX + 1];
  uint64_t node_rss_bytes[KV_NODES_MAX];
  uint32_t node_threads[KV_NODES_MAX];
} bench_t;

static void usage(FILE *f) {
  fputs("usage: kvbench [load] -a ADDR[,ADDR..] (--ops N | --duration S) [--concurrency C]\n"
        "               [--value-bytes B] [--keys K] [--mix put=50,get=50] [-c LEVEL[,LEVEL..]]\n"
        "               [--warmup S] [--json FILE] [--html FILE] [--keyspace NAME] [--seed N]\n"
        "               [--timeout MS] [--blind] [--durable] [--sequential] [--local]\n"
        "               [--preload] [--progress | --no-progress]\n"
        "               [--tls-ca FILE [--tls-cert FILE --tls-key FILE]] [--token TOKEN]\n"
        "       kvbench staleness -h     t-visibility measured and predicted (PBS)\n"
        "       kvbench lag -h           replication lag per replica and region\n"
        "\n"
        "  -a ADDR[,ADDR..]   nodes; requests go round-robin over them\n"
        "  --ops N            measure N requests, or\n"
        "  --duration S       measure for S seconds\n"
        "  --concurrency C    requests in flight (default 64, at most 4096)\n"
        "  --value-bytes B    bytes per put (default 100)\n"
        "  --keys K           keys k00000000.. chosen uniformly (default 10000)\n"
        "  --mix OP=W,..      weights of put, get and delete (default put=50,get=50)\n"
        "  -c LEVEL[,LEVEL..] consistency level of every request (default: the keyspace's);\n"
        "                     several levels: the run is made once per level, in order\n"
        "  --warmup S         seconds run first and not counted (default 0)\n"
        "  --json FILE        also write the results as JSON\n"
        "  --html FILE        also write an HTML report (tables, latency CDF per level)\n"
        "  --progress         draw a progress line on stderr even when it is not a terminal\n"
        "  --no-progress      never draw it\n"
        "  --keyspace NAME    keyspace (default \"default\")\n"
        "  --seed N           PRNG seed for keys and operations (default 1)\n"
        "  --timeout MS       the server's deadline per request (default: the server's)\n"
        "  --blind            put without the key's last context (siblings pile up)\n"
        "  --durable          acknowledge puts only after fsync\n"
        "  --sequential       keys in order (k00000000, k00000001, ...) instead of at random\n"
        "  --local            gets read only the receiving node's own replica\n"
        "  --preload          first write every key once (in order, at the first level);\n"
        "                     only what runs after it is measured\n"
        KV_CLI_AUTH_USAGE
        "\n"
        "exit status: 0 no errors, 1 local failure, 2 usage error, 3 some requests failed\n",
        f);
}

#define usage_error bench_usage_error
#define parse_u64 bench_parse_u64
#define parse_u32 bench_parse_u32
#define parse_seconds bench_parse_double

/* ---- arguments --------------------------------------------------------------------- */

/* "put=70,get=30": weights 0..1000000 per operation, at least one above 0. */
static bool parse_mix(const char *text, uint32_t mix[OP_COUNT]) {
  char buf[256];
  if (strlen(text) >= sizeof buf) return false;
  strcpy(buf, text);
  memset(mix, 0, sizeof(uint32_t) * OP_COUNT);
  bool seen[OP_COUNT] = {false};
  uint64_t total = 0;
  char *save = NULL;
  for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(tok, '=');
    if (!eq) return false;
    *eq = '\0';
    int op = -1;
    for (int i = 0; i < OP_COUNT; i++)
      if (strcmp(tok, op_names[i]) == 0) op = i;
    if (op < 0 || seen[op] || !parse_u32(eq + 1, 0, 1000000, &mix[op])) return false;
    seen[op] = true;
    total += mix[op];
  }
  return total > 0;
}

/* -c A,B,..: at most LEVELS_MAX names, none empty; no -c is one run at the keyspace's default.
 * The server judges the names. */
static int split_levels(bench_args_t *a) {
  if (!a->levels_text) {
    a->levels[a->n_levels++] = "";
    return EXIT_OK;
  }
  const char *text = a->levels_text;
  if (!*text || text[0] == ',' || text[strlen(text) - 1] == ',' || strstr(text, ",,"))
    return usage_error("-c needs LEVEL[,LEVEL..] with no empty name, not '%s'", text);
  char *save = NULL;
  for (char *l = strtok_r(a->levels_text, ",", &save); l; l = strtok_r(NULL, ",", &save)) {
    if (a->n_levels == LEVELS_MAX) return usage_error("-c names more than %u levels", LEVELS_MAX);
    a->levels[a->n_levels++] = l;
  }
  return EXIT_OK;
}

static int parse_args(int argc, char **argv, bench_args_t *a) {
  memset(a, 0, sizeof *a);
  a->concurrency = 64;
  a->value_bytes = 100;
  a->keys = 10000;
  a->mix_text = "put=50,get=50";
  a->keyspace = "default";
  a->seed = 1;
  bool have_ops = false, have_duration = false;
  for (int i = 1; i < argc; i++) {
    const char *k = argv[i];
    if (!strcmp(k, "-h") || !strcmp(k, "--help")) {
      usage(stdout);
      exit(EXIT_OK);
    }
    if (k[0] != '-') return usage_error("unexpected argument '%s'", k);
    if (!strcmp(k, "--blind")) {
      a->blind = true;
      continue;
    }
    if (!strcmp(k, "--durable")) {
      a->durable = true;
      continue;
    }
    if (!strcmp(k, "--sequential")) {
      a->sequential = true;
      continue;
    }
    if (!strcmp(k, "--local")) {
      a->local = true;
      continue;
    }
    if (!strcmp(k, "--preload")) {
      a->preload = true;
      continue;
    }
    if (!strcmp(k, "--progress") || !strcmp(k, "--no-progress")) {
      a->progress = k[2] == 'p' ? BENCH_PROGRESS_ON : BENCH_PROGRESS_OFF;
      continue;
    }
    if (i + 1 >= argc) {
      static const char *const known[] = {"-a", "--ops", "--duration", "--concurrency",
                                          "--value-bytes", "--keys", "--mix", "-c",
                                          "--warmup", "--json", "--html", "--keyspace",
                                          "--seed", "--timeout", "--tls-ca", "--tls-cert",
                                          "--tls-key", "--tls-server-name", "--token"};
      for (size_t j = 0; j < sizeof known / sizeof known[0]; j++)
        if (!strcmp(k, known[j])) return usage_error("option '%s' needs a value", k);
      return usage_error("unknown option '%s'", k);
    }
    const char *v = argv[++i];
    if (kv_cli_auth_is_option(k)) {
      kv_cli_auth_set(&bench_auth, k, v);
      continue;
    }
    if (!strcmp(k, "-a")) {
      free(a->addrs);
      a->addrs = strdup(v);
      if (!a->addrs) return usage_error("out of memory");
    } else if (!strcmp(k, "--ops")) {
      if (!parse_u64(v, 1, OPS_MAX, &a->ops))
        return usage_error("--ops needs a whole number from 1 to %llu, not '%s'",
                           (unsigned long long)OPS_MAX, v);
      have_ops = true;
    } else if (!strcmp(k, "--duration")) {
      if (!parse_seconds(v, 0.001, DURATION_S_MAX, &a->duration_s))
        return usage_error("--duration needs seconds from 0.001 to %.0f, not '%s'",
                           DURATION_S_MAX, v);
      have_duration = true;
    } else if (!strcmp(k, "--warmup")) {
      if (!parse_seconds(v, 0, DURATION_S_MAX, &a->warmup_s))
        return usage_error("--warmup needs seconds from 0 to %.0f, not '%s'", DURATION_S_MAX,
                           v);
    } else if (!strcmp(k, "--concurrency")) {
      if (!parse_u32(v, 1, CONCURRENCY_MAX, &a->concurrency))
        return usage_error("--concurrency needs a whole number from 1 to %u, not '%s'",
                           CONCURRENCY_MAX, v);
    } else if (!strcmp(k, "--value-bytes")) {
      if (!parse_u32(v, 0, KV_VALUE_BYTES_HARD_MAX, &a->value_bytes))
        return usage_error("--value-bytes needs a whole number from 0 to %u, not '%s'",
                           KV_VALUE_BYTES_HARD_MAX, v);
    } else if (!strcmp(k, "--keys")) {
      if (!parse_u32(v, 1, KEYS_MAX, &a->keys))
        return usage_error("--keys needs a whole number from 1 to %u, not '%s'", KEYS_MAX, v);
    } else if (!strcmp(k, "--mix")) {
      if (!parse_mix(v, a->mix))
        return usage_error("--mix needs OP=WEIGHT[,OP=WEIGHT] with OP put, get or delete, "
                           "weights 0 to 1000000 and at least one above 0, not '%s'", v);
      a->mix_text = v;
    } else if (!strcmp(k, "-c")) {
      free(a->levels_text);
      a->levels_text = strdup(v);
      if (!a->levels_text) return usage_error("out of memory");
    } else if (!strcmp(k, "--json")) {
      a->json_path = v;
    } else if (!strcmp(k, "--html")) {
      a->html_path = v;
    } else if (!strcmp(k, "--keyspace")) {
      a->keyspace = v;
    } else if (!strcmp(k, "--seed")) {
      if (!parse_u64(v, 0, UINT64_MAX, &a->seed))
        return usage_error("--seed needs a whole number, not '%s'", v);
    } else if (!strcmp(k, "--timeout")) {
      if (!parse_u32(v, 1, KV_TIMEOUT_MS_MAX, &a->timeout_ms))
        return usage_error("--timeout needs milliseconds from 1 to %u, not '%s'",
                           KV_TIMEOUT_MS_MAX, v);
    } else {
      return usage_error("unknown option '%s'", k);
    }
  }
  if (!a->addrs) return usage_error("-a ADDR[,ADDR..] is required");
  if (have_ops == have_duration) return usage_error("give exactly one of --ops and --duration");
  if (a->mix[OP_PUT] == 0 && a->mix[OP_GET] == 0 && a->mix[OP_DELETE] == 0)
    parse_mix(a->mix_text, a->mix);
  return split_levels(a);
}

/* ---- the loop ---------------------------------------------------------------------- */

#define now_ns bench_now_ns
#define rng_next bench_rng_next

static bool still_starting(const bench_t *b, uint64_t t) {
  if (t < b->t_measure_ns) return true;
  if (b->args.ops) return b->started_measured < b->args.ops;
  return t < b->t_end_ns;
}

/* Starts one request in slot r. False (after printing why) when gRPC refuses. */
static bool start_one(bench_t *b, req_t *r) {
  uint64_t t = now_ns();
  r->measured = t >= b->t_measure_ns;
  if (r->measured) b->started_measured++;
  uint32_t total = b->args.mix[OP_PUT] + b->args.mix[OP_GET] + b->args.mix[OP_DELETE];
  uint32_t roll = (uint32_t)(rng_next(&b->rng) % total);
  r->op = roll < b->args.mix[OP_PUT]                        ? OP_PUT
          : roll < b->args.mix[OP_PUT] + b->args.mix[OP_GET] ? OP_GET
                                                              : OP_DELETE;
  uint64_t pick = rng_next(&b->rng);
  r->key = (uint32_t)((b->args.sequential ? b->next_key++ : pick) % b->args.keys);
  char key[32];
  int key_bytes = snprintf(key, sizeof key, "k%08u", (unsigned)r->key);
  const key_ctx_t *ctx = b->contexts ? &b->contexts[r->key] : NULL;
  r->client = b->next_client++ % b->n_clients;
  kv_client_t *c = b->clients[r->client];
  kv_client_status_t st;
  int err;
  if (r->op == OP_PUT)
    err = kv_client_async_start_put(b->async, c, b->args.keyspace, key, (size_t)key_bytes,
                                    b->value, b->args.value_bytes, ctx ? ctx->bytes : NULL,
                                    ctx ? ctx->len : 0, &b->opts, r, &st);
  else if (r->op == OP_GET)
    err = kv_client_async_start_get(b->async, c, b->args.keyspace, key, (size_t)key_bytes,
                                    &b->opts, r, &st);
  else
    err = kv_client_async_start_delete(b->async, c, b->args.keyspace, key, (size_t)key_bytes,
                                       ctx ? ctx->bytes : NULL, ctx ? ctx->len : 0, &b->opts,
                                       r, &st);
  if (err != KV_OK) {
    fprintf(stderr, "kvbench: cannot start a request: %s: %s\n", kv_client_status_name(&st),
            st.msg);
    return false;
  }
  return true;
}

/* Keeps the context of a reply for the next put of its key. */
static void remember_context(bench_t *b, uint32_t key, const kv_client_completion_t *done) {
  key_ctx_t *c = &b->contexts[key];
  if (done->context_bytes > UINT32_MAX) return;
  if (done->context_bytes > c->cap) {
    uint8_t *bigger = realloc(c->bytes, done->context_bytes);
    if (!bigger) return; /* the next put goes without; the server sorts it out */
    c->bytes = bigger;
    c->cap = (uint32_t)done->context_bytes;
  }
  memcpy(c->bytes, done->context, done->context_bytes);
  c->len = (uint32_t)done->context_bytes;
}

static void account(bench_t *b, const kv_client_completion_t *done, uint64_t t) {
  const req_t *r = done->tag;
  bool ok = done->status.code == KV_OK;
  if (ok && b->contexts && done->context_bytes > 0) remember_context(b, r->key, done);
  if (!ok && !b->first_error_printed) {
    fprintf(stderr, "kvbench: first error (%s to %s): %s: %s\n", op_names[r->op],
            b->client_addrs[r->client], kv_client_status_name(&done->status), done->status.msg);
    b->first_error_printed = true;
  }
  if (!r->measured) return;
  op_stats_t *s = &b->stats[b->level][r->op];
  if (ok) {
    s->ok++;
    if (r->op == OP_GET && !done->found) s->not_found++;
    kv_histogram_record(&s->hist, done->latency_ns);
  } else {
    s->errors++;
  }
  b->last_done_ns = t;
}

static const char *level_name(const bench_t *b, uint32_t level) {
  const char *l = b->args.levels[level];
  return *l ? l : "(keyspace default)";
}

/* "kvbench: QUORUM 3.2 s, 12345 done, 0 errors" (or "123/1000 measured" with --ops). */
static void show_progress(bench_t *b, uint64_t t) {
  if (!b->progress.on) return;
  uint64_t done = 0, errors = 0;
  for (int op = 0; op < OP_COUNT; op++) {
    done += b->stats[b->level][op].ok + b->stats[b->level][op].errors;
    errors += b->stats[b->level][op].errors;
  }
  double at_s = t >= b->t_measure_ns ? (double)(t - b->t_measure_ns) / 1e9 : 0;
  const char *phase = t < b->t_measure_ns ? "warming up, " : "";
  if (b->args.ops)
    bench_progress_show(&b->progress, "kvbench: %s: %s%llu/%llu measured, %llu errors",
                        level_name(b, b->level), phase, (unsigned long long)done,
                        (unsigned long long)b->args.ops, (unsigned long long)errors);
  else
    bench_progress_show(&b->progress, "kvbench: %s: %s%.1f/%.1f s, %llu done, %llu errors",
                        level_name(b, b->level), phase, at_s, b->args.duration_s,
                        (unsigned long long)done, (unsigned long long)errors);
}

static int run(bench_t *b) {
  uint32_t conc = b->args.concurrency;
  req_t *reqs = calloc(conc, sizeof *reqs);
  if (!reqs) {
    fprintf(stderr, "kvbench: out of memory\n");
    return EXIT_LOCAL;
  }
  uint64_t t0 = now_ns();
  b->t_measure_ns = t0 + (uint64_t)(b->args.warmup_s * 1e9);
  b->t_end_ns = b->t_measure_ns + (uint64_t)(b->args.duration_s * 1e9);
  b->last_done_ns = b->t_measure_ns;
  int rc = EXIT_OK;
  for (uint32_t i = 0; i < conc && still_starting(b, now_ns()); i++) {
    if (!start_one(b, &reqs[i])) {
      rc = EXIT_LOCAL;
      break;
    }
  }
  kv_client_completion_t done;
  while (kv_client_async_inflight(b->async) > 0) {
    if (kv_client_async_next(b->async, -1, &done) != 1) continue;
    uint64_t t = now_ns();
    account(b, &done, t);
    if (rc == EXIT_OK && still_starting(b, t) && !start_one(b, done.tag)) rc = EXIT_LOCAL;
    show_progress(b, t);
  }
  bench_progress_done(&b->progress);
  free(reqs);
  return rc;
}

/* --preload: every key written once, in order, at the first level (a local failure stops
 * the run; failed puts do not); then the statistics are cleared, so the measured run starts as if nothing had run (but every key has a value, and
 * its context). */
static int preload(bench_t *b) {
  bench_args_t saved = b->args;
  memset(b->args.mix, 0, sizeof b->args.mix);
  b->args.mix[OP_PUT] = 1;
  b->args.sequential = true;
  b->args.ops = b->args.keys;
  b->args.duration_s = 0;
  b->args.warmup_s = 0;
  b->level = 0;
  b->opts.level = b->args.levels[0];
  b->rng = b->args.seed;
  b->next_key = 0;
  b->started_measured = 0;
  uint64_t t0 = now_ns();
  int rc = run(b);
  double s = (double)(now_ns() - t0) / 1e9;
  uint64_t errors = b->stats[0][OP_PUT].errors;
  b->args = saved;
  memset(b->stats, 0, sizeof b->stats);
  for (uint32_t l = 0; l < LEVELS_MAX; l++)
    for (int op = 0; op < OP_COUNT; op++) kv_histogram_init(&b->stats[l][op].hist);
  /* Failed puts leave their keys empty, which the measured run copes with: they are shown,
   * not counted against it. */
  printf("kvbench: preloaded %u keys in %.1f s (%.0f puts/s), %llu failed\n", b->args.keys, s,
         s > 0 ? b->args.keys / s : 0, (unsigned long long)errors);
  return rc;
}

/* Each node's resident memory and threads, from its status (after the run). */
static void nodes_measure(bench_t *b) {
  kv_client_node_status_t *s = malloc(sizeof *s);
  for (uint32_t i = 0; i < b->n_clients; i++) {
    kv_client_status_t st;
    snprintf(st.msg, sizeof st.msg, "out of memory");
    b->node_rss_bytes[i] = 0;
    snprintf(b->node_ids[i], sizeof b->node_ids[i], "?");
    if (s && kv_client_node_status(b->clients[i], s, &st) == KV_OK) {
      snprintf(b->node_ids[i], sizeof b->node_ids[i], "%s", s->node);
      b->node_rss_bytes[i] = s->rss_bytes;
      b->node_threads[i] = s->threads;
      printf("kvbench: node %s (%s): rss %.1f MiB, %u threads\n", s->node, b->client_addrs[i],
             (double)s->rss_bytes / (1 << 20), s->threads);
    } else {
      printf("kvbench: node at %s: no status: %s\n", b->client_addrs[i], st.msg);
    }
  }
  free(s);
}

/* Runs the measurement once per level, each from the seed. */
static int run_levels(bench_t *b) {
  int rc = EXIT_OK;
  for (b->level = 0; b->level < b->args.n_levels && rc == EXIT_OK; b->level++) {
    b->opts.level = b->args.levels[b->level];
    b->rng = b->args.seed;
    b->next_key = 0;
    b->started_measured = 0;
    rc = run(b);
    b->window_s[b->level] = (double)(b->last_done_ns - b->t_measure_ns) / 1e9;
  }
  return rc;
}

/* ---- results ----------------------------------------------------------------------- */

typedef struct {
  double ops_per_sec, p50_ms, p99_ms, p999_ms;
  uint64_t errors, not_found;
} op_result_t;

static op_result_t result_of(const bench_t *b, uint32_t level, int op) {
  const op_stats_t *s = &b->stats[level][op];
  double window_s = b->window_s[level];
  op_result_t r = {0};
  r.ops_per_sec = window_s > 0 ? (double)s->ok / window_s : 0;
  r.p50_ms = (double)kv_histogram_percentile(&s->hist, 50) / 1e6;
  r.p99_ms = (double)kv_histogram_percentile(&s->hist, 99) / 1e6;
  r.p999_ms = (double)kv_histogram_percentile(&s->hist, 99.9) / 1e6;
  r.errors = s->errors;
  r.not_found = s->not_found;
  return r;
}

static void print_table(const bench_t *b) {
  const bench_args_t *a = &b->args;
  bool many = a->n_levels > 1;
  printf("kvbench: %u node(s), concurrency %u, %u-byte values, %u keys, mix %s, level %s, "
         "seed %llu%s%s\n",
         b->n_clients, a->concurrency, a->value_bytes, a->keys, a->mix_text,
         many ? "per row" : level_name(b, 0), (unsigned long long)a->seed,
         a->blind ? ", blind puts" : "", a->durable ? ", durable puts" : "");
  for (uint32_t l = 0; l < a->n_levels; l++) {
    if (many) printf("%s: ", level_name(b, l));
    printf("measured %.3f s after %.3f s of warmup", b->window_s[l], a->warmup_s);
    if (a->mix[OP_GET])
      printf("; %llu gets found no value", (unsigned long long)b->stats[l][OP_GET].not_found);
    printf("\n");
  }
  printf("\n");
  if (many) printf("%-14s ", "level");
  printf("%-6s %12s %10s %10s %10s %10s\n", "op", "ops/s", "p50 ms", "p99 ms", "p99.9 ms",
         "errors");
  for (uint32_t l = 0; l < a->n_levels; l++) {
    for (int op = 0; op < OP_COUNT; op++) {
      if (a->mix[op] == 0) continue;
      op_result_t r = result_of(b, l, op);
      if (many) printf("%-14s ", level_name(b, l));
      printf("%-6s %12.1f %10.3f %10.3f %10.3f %10llu\n", op_names[op], r.ops_per_sec,
             r.p50_ms, r.p99_ms, r.p999_ms, (unsigned long long)r.errors);
    }
  }
}

static void json_ops(FILE *f, const bench_t *b, uint32_t level) {
  for (int op = 0; op < OP_COUNT; op++) {
    op_result_t r = result_of(b, level, op);
    fprintf(f,
            "%s\"%s\": {\"ops_per_sec\": %.1f, \"p50_ms\": %.4f, \"p99_ms\": %.4f, "
            "\"p999_ms\": %.4f, \"errors\": %llu, \"not_found\": %llu}",
            op ? ", " : "", op_names[op], r.ops_per_sec, r.p50_ms, r.p99_ms, r.p999_ms,
            (unsigned long long)r.errors, (unsigned long long)r.not_found);
  }
}

/* Level names come from the command line: quotes and backslashes are escaped. */
static void json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fputc('\\', f);
    if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", *s);
    else fputc(*s, f);
  }
  fputc('"', f);
}

static int write_json(const bench_t *b) {
  FILE *f = fopen(b->args.json_path, "w");
  if (!f) {
    fprintf(stderr, "kvbench: cannot write %s: %s\n", b->args.json_path, strerror(errno));
    return EXIT_LOCAL;
  }
  fputc('{', f);
  json_ops(f, b, 0);
  fputs(", \"levels\": [", f);
  for (uint32_t l = 0; l < b->args.n_levels; l++) {
    fputs(l ? ", {\"level\": " : "{\"level\": ", f);
    json_string(f, b->args.levels[l]);
    fputs(", ", f);
    json_ops(f, b, l);
    fputc('}', f);
  }
  fputs("], \"nodes\": [", f);
  for (uint32_t i = 0; i < b->n_clients; i++) {
    fputs(i ? ", {\"address\": " : "{\"address\": ", f);
    json_string(f, b->client_addrs[i]);
    fputs(", \"node\": ", f);
    json_string(f, b->node_ids[i]);
    fprintf(f, ", \"rss_bytes\": %llu, \"threads\": %u}",
            (unsigned long long)b->node_rss_bytes[i], b->node_threads[i]);
  }
  fputs("]}\n", f);
  if (fclose(f) != 0) {
    fprintf(stderr, "kvbench: cannot write %s: %s\n", b->args.json_path, strerror(errno));
    return EXIT_LOCAL;
  }
  return EXIT_OK;
}

/* The HTML report: the table again, and a latency CDF per (operation, level). */
#define HTML_COLS 7u
#define HTML_SERIES_MAX (LEVELS_MAX * OP_COUNT)
static int write_html(const bench_t *b) {
  static char text[HTML_SERIES_MAX][HTML_COLS][48];
  static const char *cells[HTML_SERIES_MAX * HTML_COLS];
  static double xs[HTML_SERIES_MAX][KV_REPORT_CDF_POINTS], ys[HTML_SERIES_MAX][KV_REPORT_CDF_POINTS];
  static char names[HTML_SERIES_MAX][64];
  kv_report_series_t series[HTML_SERIES_MAX];
  static const char *const head[HTML_COLS] = {"level", "op", "ops/s", "p50 ms", "p99 ms",
                                              "p99.9 ms", "errors"};
  size_t rows = 0;
  for (uint32_t l = 0; l < b->args.n_levels; l++) {
    for (int op = 0; op < OP_COUNT; op++) {
      if (b->args.mix[op] == 0) continue;
      op_result_t r = result_of(b, l, op);
      char(*t)[48] = text[rows];
      snprintf(t[0], 48, "%s", level_name(b, l));
      snprintf(t[1], 48, "%s", op_names[op]);
      snprintf(t[2], 48, "%.1f", r.ops_per_sec);
      snprintf(t[3], 48, "%.3f", r.p50_ms);
      snprintf(t[4], 48, "%.3f", r.p99_ms);
      snprintf(t[5], 48, "%.3f", r.p999_ms);
      snprintf(t[6], 48, "%llu", (unsigned long long)r.errors);
      for (size_t c = 0; c < HTML_COLS; c++) cells[rows * HTML_COLS + c] = t[c];
      snprintf(names[rows], sizeof names[rows], "%s %s", op_names[op], level_name(b, l));
      series[rows] = (kv_report_series_t){.name = names[rows], .x = xs[rows], .y = ys[rows]};
      series[rows].n = kv_report_cdf(&b->stats[l][op].hist, 1e-6, xs[rows], ys[rows]);
      rows++;
    }
  }
  char subtitle[256];
  snprintf(subtitle, sizeof subtitle,
           "%u node(s), concurrency %u, %u-byte values, %u keys, mix %s, seed %llu",
           b->n_clients, b->args.concurrency, b->args.value_bytes, b->args.keys,
           b->args.mix_text, (unsigned long long)b->args.seed);
  bench_html_t h;
  bench_html_init(&h);
  h.title = "kvbench load";
  h.subtitle = subtitle;
  h.head = head;
  h.cols = HTML_COLS;
  h.cells = cells;
  h.rows = rows;
  h.latency.series = series;
  h.latency.n_series = rows;
  return bench_write_html(b->args.html_path, &h);
}

/* ---- main -------------------------------------------------------------------------- */

static int open_clients(bench_t *b) {
  char *save = NULL;
  for (char *addr = strtok_r(b->args.addrs, ",", &save); addr;
       addr = strtok_r(NULL, ",", &save)) {
    if (b->n_clients == KV_NODES_MAX)
      return usage_error("-a names more than %u addresses", KV_NODES_MAX);
    kv_client_status_t st;
    if (bench_open(addr, &b->clients[b->n_clients], &st) != KV_OK)
      return usage_error("-a: '%s': %s", addr, st.msg);
    b->client_addrs[b->n_clients++] = addr;
  }
  if (b->n_clients == 0) return usage_error("-a names no address");
  return EXIT_OK;
}

static int load_main(int argc, char **argv) {
  static bench_t bench; /* histograms are large: keep them off the stack */
  bench_t *b = &bench;
  int rc = parse_args(argc, argv, &b->args);
  if (rc != EXIT_OK) return rc;
  const bench_args_t *a = &b->args;
  for (uint32_t l = 0; l < LEVELS_MAX; l++)
    for (int op = 0; op < OP_COUNT; op++) kv_histogram_init(&b->stats[l][op].hist);
  bench_progress_init(&b->progress, a->progress);
  kv_client_opts_t init = KV_CLIENT_OPTS_INIT;
  b->opts = init;
  b->opts.durable = a->durable;
  b->opts.local = a->local;
  b->opts.timeout_ms = a->timeout_ms;
  b->value = malloc(a->value_bytes ? a->value_bytes : 1);
  if (!b->value) {
    fprintf(stderr, "kvbench: out of memory for a %u-byte value\n", a->value_bytes);
    return EXIT_LOCAL;
  }
  uint64_t vrng = a->seed ^ 0x5bd1e995u;
  for (uint32_t i = 0; i < a->value_bytes; i++)
    b->value[i] = (uint8_t)('a' + rng_next(&vrng) % 26);

  if (!a->blind && (a->mix[OP_PUT] > 0 || a->mix[OP_DELETE] > 0)) {
    b->contexts = calloc(a->keys, sizeof *b->contexts);
    if (!b->contexts) {
      fprintf(stderr, "kvbench: out of memory for the contexts of %u keys\n", a->keys);
      return EXIT_LOCAL;
    }
  }

  rc = open_clients(b);
  kv_client_status_t st;
  if (rc == EXIT_OK && kv_client_async_create(a->concurrency, &b->async, &st) != KV_OK) {
    fprintf(stderr, "kvbench: %s\n", st.msg);
    rc = EXIT_LOCAL;
  }
  if (rc == EXIT_OK && a->preload) rc = preload(b);
  if (rc == EXIT_OK) rc = run_levels(b);
  if (rc == EXIT_OK) {
    nodes_measure(b);
    print_table(b);
    if (a->json_path) rc = write_json(b);
    if (rc == EXIT_OK && a->html_path) rc = write_html(b);
    for (uint32_t l = 0; l < a->n_levels && rc == EXIT_OK; l++)
      for (int op = 0; op < OP_COUNT; op++)
        if (b->stats[l][op].errors) rc = EXIT_ERRORS;
  }
  kv_client_async_destroy(b->async);
  for (uint32_t i = 0; i < b->n_clients; i++) kv_client_close(b->clients[i]);
  if (b->contexts)
    for (uint32_t i = 0; i < a->keys; i++) free(b->contexts[i].bytes);
  free(b->contexts);
  free(b->value);
  free(b->args.addrs);
  free(b->args.levels_text);
  return rc;
}

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "load")) return load_main(argc - 1, argv + 1);
  if (argc > 1 && !strcmp(argv[1], "staleness")) return bench_staleness_main(argc - 1, argv + 1);
  if (argc > 1 && !strcmp(argv[1], "lag")) return bench_lag_main(argc - 1, argv + 1);
  return load_main(argc, argv);
}
