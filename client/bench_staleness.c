/* bench_staleness.c: `kvbench staleness`, t-visibility measured on a real cluster and
 * predicted by PBS's WARS model (client/pbs.h) from latencies measured on the same cluster.
 *
 *   kvbench staleness -a WRITER[,READER] [--replicas ADDR,ADDR,..] [-w W] [-r R]
 *           [--times 0,1,2,5,10,20,50] [--trials N] [--calibration N] [--predict-trials N]
 *           [--keyspace NAME] [--seed N] [--timeout MS] [--json FILE] [--html FILE]
 *           [--progress | --no-progress]
 *
 * Writes go through WRITER at w=W, reads through READER (default WRITER) at r=R. --replicas
 * names the key's N replicas (default: the -a addresses); each must be a node holding every
 * key of the keyspace (a cluster whose keyspace has N = its node count), and WRITER and READER
 * must be among them. Every key is new (named from the run's start time), so a read is
 * consistent exactly when it finds its key.
 *
 * Measured t-visibility. For every t of --times, --trials times (rounds over the times, so
 * drift in the machine's load hits every t alike): put a new key through WRITER, wait until t
 * ms after the acknowledgement, get it through READER; consistent when found. Then wait until
 * every replica has the write (--local probes), so no trial's replication is queued behind
 * the last one's (a node's calls to one peer leave in order).
 *
 * Measured legs (the coordinator-side timings are not exposed by the peer protocol, so they are
 * timed from the client; see the notes on the model below). --calibration writes, each put
 * through WRITER while every replica is probed with back-to-back --local gets: replica i's
 * write became visible at V_i, between the send time of its last probe that missed and of
 * its first that hit (the midpoint is taken; the probes' round trip is the resolution).
 * Then --calibration gets through READER at r=min(2, N) time the reader's calls to the
 * other replicas.
 *
 * The model, all on the client's clock, from the put's send (s0): h_i is half the median
 * probe round trip to replica i, L the put's latency.
 *   W_i = V_i - s0 + h_i              when the write was applied at replica i
 *   A_i = L - W_writer (writer's)     so the writer's W + A is the acknowledgement; the other
 *                                     replicas' acks are drawn from the same samples (the
 *                                     reply hop is loopback gRPC in both cases)
 *   R_i = S_i = h_reader              for the reader's own replica (an R=1 read through a
 *                                     replica reads it alone)
 *   R_i = S_i = h_reader + g/2        for the others, g = (an r=2 get's latency) - (the
 *                                     reader's probe round trip): the faster of the reader's
 *                                     calls to the others, so a low estimate when R >= 2
 * so W_i <= commit + t + R_i says exactly "a read sent t ms after the ack finds the write at
 * i". N, R and W are the model's; 'predict-trials' Monte Carlo trials.
 *
 * Output: a table of t, measured, predicted and their difference, the RMSE in percentage
 * points, k-staleness for k = 1..3, and the legs per replica; JSON and the HTML report
 * (bench.h: the staleness chart, the put/get latency CDF, and each replica's visibility lag
 * after the acknowledgement in the lag slot). Exit status: 0, 1 local failure, 2 usage error,
 * 3 a request failed (the run stops at the first failure, after printing it). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "kv_limits.h"
#include "pbs.h"
#include "tunekv.h"

#define TIMES_MAX 64u
#define TRIALS_MAX 1000000u
#define CALIBRATION_MAX 100000u
#define PREDICT_TRIALS_DEFAULT 200000u
#define VISIBLE_WAIT_MS 5000u    /* a write not everywhere by then stops the run */
#define KEY_BYTES_MAX 64
#define K_MAX 3u                 /* k-staleness printed for k = 1..K_MAX */

typedef struct {
  char *addrs_text, *replicas_text;   /* -a and --replicas, split in place */
  const char *writer, *reader;
  const char *replicas[KV_PBS_REPLICAS_MAX];
  uint32_t n, r, w;
  uint32_t trials, calibration, predict_trials, timeout_ms;
  double times[TIMES_MAX];
  size_t n_times;
  const char *keyspace, *json_path, *html_path, *times_text;
  uint64_t seed;
  bench_progress_mode_t progress;
} st_args_t;

typedef struct {
  st_args_t a;
  kv_client_t *clients[KV_PBS_REPLICAS_MAX]; /* one per replica */
  uint32_t writer, reader;                   /* their indexes among the replicas */
  kv_client_async_t *async;
  kv_client_opts_t put_opts, get_opts, probe_opts;
  uint64_t nonce;                            /* makes this run's keys new */
  bench_progress_t progress;
  /* calibration */
  double *w_ms[KV_PBS_REPLICAS_MAX];         /* W_i samples */
  double *a_ms, *read_g_ms;                  /* A samples (writer's); g samples */
  double *lag_ms[KV_PBS_REPLICAS_MAX];       /* V_i - ack, for the lag chart */
  size_t n_cal, n_g;
  kv_histogram_t probe_rtt[KV_PBS_REPLICAS_MAX];
  kv_histogram_t put_lat, get_lat;
  double h_ms[KV_PBS_REPLICAS_MAX];
  /* results */
  uint64_t consistent[TIMES_MAX], done[TIMES_MAX];
  double measured[TIMES_MAX], predicted[TIMES_MAX];
  double rmse_pp;
} st_bench_t;

static void usage(FILE *f) {
  fputs("usage: kvbench staleness -a WRITER[,READER] [--replicas ADDR,ADDR,..] [-w W] [-r R]\n"
        "           [--times 0,1,2,5,10,20,50] [--trials N] [--calibration N]\n"
        "           [--predict-trials N] [--keyspace NAME] [--seed N] [--timeout MS]\n"
        "           [--json FILE] [--html FILE] [--progress | --no-progress]\n"
        "\n"
        "Measures t-visibility (PBS): the chance that a read at R through READER, started t ms\n"
        "after a write at W through WRITER was acknowledged, sees it; and predicts the same\n"
        "curve with the WARS model from latencies measured on the cluster.\n"
        "\n"
        "  -a WRITER[,READER]  coordinators of the writes and of the reads (default: the same)\n"
        "  --replicas A,B,..   the key's N replicas, probed with --local gets (default: -a);\n"
        "                      every one must hold every key, and WRITER and READER be among them\n"
        "  -w W, -r R          write and read quorums (default 1 and 1)\n"
        "  --times T,T,..      ms after the acknowledgement (default 0,1,2,5,10,20,50)\n"
        "  --trials N          reads per t (default 200)\n"
        "  --calibration N     writes timed at every replica, and gets through READER (default 300)\n"
        "  --predict-trials N  Monte Carlo trials of the model (default 200000)\n"
        "  --keyspace NAME     keyspace (default \"default\")\n"
        "  --seed N            seed of the model's Monte Carlo (default 1)\n"
        "  --timeout MS        the server's deadline per request (default: the server's)\n"
        "  --json FILE, --html FILE   also write the results as JSON / an HTML report\n"
        "  --progress, --no-progress  the progress line on stderr (default: when a terminal)\n",
        f);
}

/* ---- arguments --------------------------------------------------------------------- */

/* Splits text (modified) at commas into out[0..max); false when a name is empty or too many. */
static bool split_list(char *text, const char **out, uint32_t max, uint32_t *n) {
  *n = 0;
  if (!*text || text[0] == ',' || text[strlen(text) - 1] == ',' || strstr(text, ",,"))
    return false;
  char *save = NULL;
  for (char *p = strtok_r(text, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
    if (*n == max) return false;
    out[(*n)++] = p;
  }
  return true;
}

static bool parse_times(const char *text, double *times, size_t *n) {
  char buf[1024];
  if (strlen(text) >= sizeof buf) return false;
  strcpy(buf, text);
  const char *parts[TIMES_MAX];
  uint32_t count;
  if (!split_list(buf, parts, TIMES_MAX, &count)) return false;
  for (uint32_t i = 0; i < count; i++) {
    if (!bench_parse_double(parts[i], 0, KV_TIMEOUT_MS_MAX, &times[i])) return false;
    if (i > 0 && times[i] <= times[i - 1]) return false;
  }
  *n = count;
  return true;
}

static int index_of(const st_args_t *a, const char *addr) {
  for (uint32_t i = 0; i < a->n; i++)
    if (!strcmp(a->replicas[i], addr)) return (int)i;
  return -1;
}

/* The checks that need every option: who is a replica, and the quorums against N. */
static int check_args(st_args_t *a) {
  if (!a->addrs_text) return bench_usage_error("staleness: -a WRITER[,READER] is required");
  const char *coord[2];
  uint32_t n_coord;
  char shown[256];
  snprintf(shown, sizeof shown, "%s", a->addrs_text);
  if (!split_list(a->addrs_text, coord, 2, &n_coord))
    return bench_usage_error("staleness: -a needs WRITER or WRITER,READER, not '%s'", shown);
  a->writer = coord[0];
  a->reader = n_coord > 1 ? coord[1] : coord[0];
  if (a->replicas_text) {
    if (!split_list(a->replicas_text, a->replicas, KV_PBS_REPLICAS_MAX, &a->n))
      return bench_usage_error("staleness: --replicas needs 1 to %u addresses ADDR,ADDR,..",
                               KV_PBS_REPLICAS_MAX);
  } else {
    a->replicas[a->n++] = a->writer;
    if (strcmp(a->reader, a->writer)) a->replicas[a->n++] = a->reader;
  }
  if (index_of(a, a->writer) < 0 || index_of(a, a->reader) < 0)
    return bench_usage_error("staleness: the writer and the reader must be among --replicas "
                             "(a tunekv write is coordinated by a replica)");
  if (a->w > a->n || a->r > a->n)
    return bench_usage_error("staleness: -w %u and -r %u must be at most N, the %u replicas",
                             a->w, a->r, a->n);
  return BENCH_EXIT_OK;
}

static const char *const with_value[] = {"-a", "--replicas", "-w", "-r", "--times", "--trials",
                                         "--calibration", "--predict-trials", "--timeout",
                                         "--seed", "--keyspace", "--json", "--html"};

static bool takes_value(const char *k) {
  for (size_t i = 0; i < sizeof with_value / sizeof with_value[0]; i++)
    if (!strcmp(k, with_value[i])) return true;
  return false;
}

/* Sets option k (one of with_value) to v; *rc is the usage error when v is bad. */
static bool set_option(st_args_t *a, const char *k, const char *v, int *rc) {
  *rc = BENCH_EXIT_OK;
  if (!strcmp(k, "-a") || !strcmp(k, "--replicas")) {
    char **dst = k[1] == 'a' ? &a->addrs_text : &a->replicas_text;
    free(*dst);
    *dst = strdup(v);
    if (!*dst) *rc = bench_usage_error("out of memory");
  } else if (!strcmp(k, "-w") || !strcmp(k, "-r")) {
    if (!bench_parse_u32(v, 1, KV_PBS_REPLICAS_MAX, k[1] == 'w' ? &a->w : &a->r))
      *rc = bench_usage_error("%s needs a whole number from 1 to %u, not '%s'", k,
                              KV_PBS_REPLICAS_MAX, v);
  } else if (!strcmp(k, "--times")) {
    a->times_text = v;
    if (!parse_times(v, a->times, &a->n_times))
      *rc = bench_usage_error("--times needs up to %u increasing milliseconds T,T,.. from 0, "
                              "not '%s'", TIMES_MAX, v);
  } else if (!strcmp(k, "--trials")) {
    if (!bench_parse_u32(v, 1, TRIALS_MAX, &a->trials))
      *rc = bench_usage_error("--trials needs a whole number from 1 to %u, not '%s'",
                              TRIALS_MAX, v);
  } else if (!strcmp(k, "--calibration")) {
    if (!bench_parse_u32(v, 1, CALIBRATION_MAX, &a->calibration))
      *rc = bench_usage_error("--calibration needs a whole number from 1 to %u, not '%s'",
                              CALIBRATION_MAX, v);
  } else if (!strcmp(k, "--predict-trials")) {
    if (!bench_parse_u32(v, 1, KV_PBS_TRIALS_MAX, &a->predict_trials))
      *rc = bench_usage_error("--predict-trials needs a whole number from 1 to %u, not '%s'",
                              KV_PBS_TRIALS_MAX, v);
  } else if (!strcmp(k, "--timeout")) {
    if (!bench_parse_u32(v, 1, KV_TIMEOUT_MS_MAX, &a->timeout_ms))
      *rc = bench_usage_error("--timeout needs milliseconds from 1 to %u, not '%s'",
                              KV_TIMEOUT_MS_MAX, v);
  } else if (!strcmp(k, "--seed")) {
    if (!bench_parse_u64(v, 0, UINT64_MAX, &a->seed))
      *rc = bench_usage_error("--seed needs a whole number, not '%s'", v);
  } else if (!strcmp(k, "--keyspace")) a->keyspace = v;
  else if (!strcmp(k, "--json")) a->json_path = v;
  else if (!strcmp(k, "--html")) a->html_path = v;
  else return false;
  return true;
}

static int parse_args(int argc, char **argv, st_args_t *a) {
  *a = (st_args_t){.r = 1, .w = 1, .trials = 200, .calibration = 300,
                   .predict_trials = PREDICT_TRIALS_DEFAULT, .keyspace = "default", .seed = 1,
                   .times_text = "0,1,2,5,10,20,50"};
  parse_times(a->times_text, a->times, &a->n_times);
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
    if (k[0] != '-') return bench_usage_error("staleness: unexpected argument '%s'", k);
    if (!takes_value(k)) return bench_usage_error("staleness: unknown option '%s'", k);
    if (i + 1 >= argc) return bench_usage_error("option '%s' needs a value", k);
    int rc;
    set_option(a, k, argv[++i], &rc);
    if (rc != BENCH_EXIT_OK) return rc;
  }
  return check_args(a);
}

/* ---- probes ------------------------------------------------------------------------ */

static double ms_between(uint64_t from_ns, uint64_t to_ns) {
  return ((double)to_ns - (double)from_ns) / 1e6;
}

/* Prints a request's failure once and gives the exit status for it. */
static int request_failed(const char *what, const char *addr, const kv_client_status_t *st) {
  fprintf(stderr, "kvbench: %s to %s failed: %s: %s\n", what, addr, kv_client_status_name(st),
          st->msg);
  return BENCH_EXIT_ERRORS;
}

static int start_probe(st_bench_t *b, uint32_t i, const char *key, uint64_t *sent) {
  kv_client_status_t st;
  *sent = bench_now_ns();
  if (kv_client_async_start_get(b->async, b->clients[i], b->a.keyspace, key, strlen(key),
                                &b->probe_opts, (void *)(uintptr_t)(i + 1), &st) != KV_OK) {
    fprintf(stderr, "kvbench: cannot start a request: %s: %s\n", kv_client_status_name(&st),
            st.msg);
    return BENCH_EXIT_LOCAL;
  }
  return BENCH_EXIT_OK;
}

/* Probes every replica with back-to-back --local gets of key until each has it. With
 * put_first, the put of key through the writer is started first (tag 0), from s0, and
 * *put_ms is its latency. visible_ns[i]: the midpoint between replica i's last missing
 * probe's send (s0 before any) and its first hit's send. */
static int probe_until_visible(st_bench_t *b, const char *key, bool put_first, uint64_t s0,
                               double *put_ms, uint64_t *visible_ns) {
  uint64_t sent[KV_PBS_REPLICAS_MAX], last_miss[KV_PBS_REPLICAS_MAX];
  bool seen[KV_PBS_REPLICAS_MAX] = {false};
  uint32_t left = b->a.n;
  kv_client_status_t st;
  if (put_first &&
      kv_client_async_start_put(b->async, b->clients[b->writer], b->a.keyspace, key,
                                strlen(key), "v", 1, NULL, 0, &b->put_opts, NULL, &st) != KV_OK)
    return request_failed("a put", b->a.writer, &st);
  int rc = BENCH_EXIT_OK;
  for (uint32_t i = 0; i < b->a.n && rc == BENCH_EXIT_OK; i++) {
    last_miss[i] = s0;
    rc = start_probe(b, i, key, &sent[i]);
  }
  uint64_t deadline = bench_now_ns() + VISIBLE_WAIT_MS * 1000000ull;
  kv_client_completion_t done;
  while (kv_client_async_inflight(b->async) > 0) {
    if (kv_client_async_next(b->async, -1, &done) != 1) continue;
    if (done.status.code != KV_OK) {
      if (rc == BENCH_EXIT_OK)
        rc = request_failed(done.tag ? "a --local probe" : "a put",
                            done.tag ? b->a.replicas[(uintptr_t)done.tag - 1] : b->a.writer,
                            &done.status);
      continue;
    }
    if (!done.tag) {
      *put_ms = (double)done.latency_ns / 1e6;
      kv_histogram_record(&b->put_lat, done.latency_ns);
      continue;
    }
    uint32_t i = (uint32_t)((uintptr_t)done.tag - 1);
    kv_histogram_record(&b->probe_rtt[i], done.latency_ns);
    if (done.found) {
      visible_ns[i] = last_miss[i] + (sent[i] - last_miss[i]) / 2;
      seen[i] = true;
      left--;
    } else if (rc == BENCH_EXIT_OK) {
      last_miss[i] = sent[i];
      if (bench_now_ns() < deadline) rc = start_probe(b, i, key, &sent[i]);
    }
  }
  if (rc == BENCH_EXIT_OK && left > 0) {
    for (uint32_t i = 0; i < b->a.n; i++)
      if (!seen[i])
        fprintf(stderr, "kvbench: the write of %s was not at %s after %u ms\n", key,
                b->a.replicas[i], VISIBLE_WAIT_MS);
    rc = BENCH_EXIT_ERRORS;
  }
  return rc;
}

/* ---- calibration ------------------------------------------------------------------- */

static void key_name(const st_bench_t *b, char *key, const char *phase, uint64_t i) {
  snprintf(key, KEY_BYTES_MAX, "pbs-%016llx-%s%llu", (unsigned long long)b->nonce, phase,
           (unsigned long long)i);
}

/* One write probed everywhere and one get through the reader, not counted: the first call
 * on each channel connects, which would show as a put of a second or more. */
static int warm_up(st_bench_t *b) {
  char key[KEY_BYTES_MAX];
  key_name(b, key, "warm", 0);
  uint64_t visible[KV_PBS_REPLICAS_MAX];
  double put_ms;
  int rc = probe_until_visible(b, key, true, bench_now_ns(), &put_ms, visible);
  kv_client_result_t res = {0};
  kv_client_status_t st;
  if (rc == BENCH_EXIT_OK &&
      kv_client_get(b->clients[b->reader], b->a.keyspace, key, strlen(key), &b->get_opts, &res,
                    &st) != KV_OK)
    rc = request_failed("a get", b->a.reader, &st);
  kv_client_result_free(&res);
  kv_histogram_init(&b->put_lat);
  for (uint32_t i = 0; i < KV_PBS_REPLICAS_MAX; i++) kv_histogram_init(&b->probe_rtt[i]);
  return rc;
}

static int calibrate_writes(st_bench_t *b, char *last_key) {
  for (uint32_t k = 0; k < b->a.calibration; k++) {
    char key[KEY_BYTES_MAX];
    key_name(b, key, "c", k);
    uint64_t s0 = bench_now_ns(), visible[KV_PBS_REPLICAS_MAX];
    double put_ms = 0;
    int rc = probe_until_visible(b, key, true, s0, &put_ms, visible);
    if (rc != BENCH_EXIT_OK) return rc;
    for (uint32_t i = 0; i < b->a.n; i++) {
      b->w_ms[i][k] = ms_between(s0, visible[i]); /* + h_i once the RTTs are known */
      b->lag_ms[i][k] = ms_between(s0, visible[i]) - put_ms;
    }
    b->a_ms[k] = put_ms; /* minus W_writer once h is known */
    b->n_cal++;
    strcpy(last_key, key);
    bench_progress_show(&b->progress, "kvbench: staleness: calibration %u/%u writes", k + 1,
                        b->a.calibration);
  }
  return BENCH_EXIT_OK;
}

/* Gets of key through the reader at r = min(2, N): the reader's calls to the others. */
static int calibrate_reads(st_bench_t *b, const char *key) {
  kv_client_opts_t opts = b->get_opts;
  opts.r = b->a.n >= 2 ? 2 : 1;
  double rtt_ms = (double)kv_histogram_percentile(&b->probe_rtt[b->reader], 50) / 1e6;
  for (uint32_t k = 0; k < b->a.calibration; k++) {
    kv_client_result_t res = {0};
    kv_client_status_t st;
    uint64_t t0 = bench_now_ns();
    int err = kv_client_get(b->clients[b->reader], b->a.keyspace, key, strlen(key), &opts,
                            &res, &st);
    double ms = ms_between(t0, bench_now_ns());
    kv_client_result_free(&res);
    if (err != KV_OK) return request_failed("a get", b->a.reader, &st);
    double g = ms - rtt_ms;
    b->read_g_ms[b->n_g++] = g > 0.01 ? g : 0.01;
  }
  return BENCH_EXIT_OK;
}

/* Turns the calibration's times into the model's legs (see the top of this file). */
static void finish_legs(st_bench_t *b) {
  for (uint32_t i = 0; i < b->a.n; i++) {
    b->h_ms[i] = (double)kv_histogram_percentile(&b->probe_rtt[i], 50) / 2e6;
    for (size_t k = 0; k < b->n_cal; k++) b->w_ms[i][k] += b->h_ms[i];
  }
  for (size_t k = 0; k < b->n_cal; k++) {
    double a = b->a_ms[k] - b->w_ms[b->writer][k];
    b->a_ms[k] = a > 0 ? a : 0;
  }
}

/* ---- trials ------------------------------------------------------------------------ */

static void sleep_until(uint64_t t_ns) {
  struct timespec ts = {.tv_sec = (time_t)(t_ns / 1000000000u),
                        .tv_nsec = (long)(t_ns % 1000000000u)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}

/* One trial at times[j]: put, wait t after the ack, get; then wait for every replica. */
static int trial(st_bench_t *b, uint32_t round, size_t j) {
  char key[KEY_BYTES_MAX];
  key_name(b, key, "t", (uint64_t)round * TIMES_MAX + j);
  kv_client_result_t res = {0};
  kv_client_status_t st;
  uint64_t s0 = bench_now_ns();
  int err = kv_client_put(b->clients[b->writer], b->a.keyspace, key, strlen(key), "v", 1, NULL,
                          0, &b->put_opts, &res, &st);
  uint64_t acked = bench_now_ns();
  kv_client_result_free(&res);
  if (err != KV_OK) return request_failed("a put", b->a.writer, &st);
  kv_histogram_record(&b->put_lat, acked - s0);
  sleep_until(acked + (uint64_t)(b->a.times[j] * 1e6));
  uint64_t g0 = bench_now_ns();
  err = kv_client_get(b->clients[b->reader], b->a.keyspace, key, strlen(key), &b->get_opts, &res,
                      &st);
  kv_histogram_record(&b->get_lat, bench_now_ns() - g0);
  bool found = res.found;
  kv_client_result_free(&res);
  if (err != KV_OK) return request_failed("a get", b->a.reader, &st);
  b->done[j]++;
  if (found) b->consistent[j]++;
  uint64_t visible[KV_PBS_REPLICAS_MAX];
  return probe_until_visible(b, key, false, s0, NULL, visible);
}

static int run_trials(st_bench_t *b) {
  for (uint32_t round = 0; round < b->a.trials; round++) {
    for (size_t j = 0; j < b->a.n_times; j++) {
      int rc = trial(b, round, j);
      if (rc != BENCH_EXIT_OK) return rc;
    }
    bench_progress_show(&b->progress, "kvbench: staleness: %u/%u trials per t", round + 1,
                        b->a.trials);
  }
  for (size_t j = 0; j < b->a.n_times; j++)
    b->measured[j] = (double)b->consistent[j] / (double)b->done[j];
  return BENCH_EXIT_OK;
}

/* ---- the model --------------------------------------------------------------------- */

static int predict(st_bench_t *b) {
  kv_pbs_legs_t legs[KV_PBS_REPLICAS_MAX];
  double reader_h[1] = {b->h_ms[b->reader]};
  double *other = malloc(b->n_g * sizeof *other);
  if (!other) {
    fprintf(stderr, "kvbench: out of memory\n");
    return BENCH_EXIT_LOCAL;
  }
  for (size_t k = 0; k < b->n_g; k++) other[k] = b->h_ms[b->reader] + b->read_g_ms[k] / 2;
  for (uint32_t i = 0; i < b->a.n; i++) {
    legs[i].w = (kv_pbs_dist_t){b->w_ms[i], b->n_cal};
    legs[i].a = (kv_pbs_dist_t){b->a_ms, b->n_cal};
    legs[i].r = i == b->reader ? (kv_pbs_dist_t){reader_h, 1} : (kv_pbs_dist_t){other, b->n_g};
    legs[i].s = legs[i].r;
  }
  kv_pbs_model_t m = {.n = b->a.n, .r = b->a.r, .w = b->a.w, .legs = legs, .n_legs = b->a.n};
  uint64_t rng = b->a.seed;
  kv_status_t st;
  kv_err err = kv_pbs_t_visibility(&m, b->a.times, b->a.n_times, b->a.predict_trials, &rng,
                                   b->predicted, &st);
  free(other);
  if (err != KV_OK) {
    fprintf(stderr, "kvbench: the model refused the measurements: %s\n", st.msg);
    return BENCH_EXIT_LOCAL;
  }
  b->rmse_pp = 100 * kv_pbs_rmse(b->measured, b->predicted, b->a.n_times);
  return BENCH_EXIT_OK;
}

/* ---- output ------------------------------------------------------------------------ */

/* The p-th percentile of v[0..n) (sorted in place). */
static double percentile(double *v, size_t n, double p) {
  if (n == 0) return 0;
  for (size_t i = 1; i < n; i++) {
    double x = v[i];
    size_t j = i;
    for (; j > 0 && v[j - 1] > x; j--) v[j] = v[j - 1];
    v[j] = x;
  }
  size_t at = (size_t)ceil(p / 100 * (double)n);
  return v[at ? at - 1 : 0];
}

static void print_results(st_bench_t *b) {
  const st_args_t *a = &b->a;
  printf("kvbench staleness: N=%u R=%u W=%u, writes through %s, reads through %s, %u trials "
         "per t, %zu calibration writes\n\n", a->n, a->r, a->w, a->writer, a->reader, a->trials,
         b->n_cal);
  printf("%8s %10s %10s %10s\n", "t ms", "measured", "predicted", "diff pp");
  for (size_t j = 0; j < a->n_times; j++)
    printf("%8g %10.4f %10.4f %+10.2f\n", a->times[j], b->measured[j], b->predicted[j],
           100 * (b->measured[j] - b->predicted[j]));
  printf("RMSE %.2f percentage points\n", b->rmse_pp);
  printf("k-staleness (version-quorum formula):");
  for (uint32_t k = 1; k <= K_MAX; k++)
    printf(" k=%u %.4f", k, kv_pbs_k_staleness(a->n, a->r, a->w, k));
  printf("\n\n%-24s %10s %10s %10s %10s\n", "replica (legs, ms)", "W p50", "W p99", "A p50",
         "R=S p50");
  double *tmp = malloc((b->n_cal > b->n_g ? b->n_cal : b->n_g) * sizeof *tmp + 1);
  for (uint32_t i = 0; tmp && i < a->n; i++) {
    memcpy(tmp, b->w_ms[i], b->n_cal * sizeof *tmp);
    double w50 = percentile(tmp, b->n_cal, 50), w99 = percentile(tmp, b->n_cal, 99);
    memcpy(tmp, b->a_ms, b->n_cal * sizeof *tmp);
    double a50 = percentile(tmp, b->n_cal, 50);
    double r50 = b->h_ms[b->reader];
    if (i != b->reader) {
      memcpy(tmp, b->read_g_ms, b->n_g * sizeof *tmp);
      r50 += percentile(tmp, b->n_g, 50) / 2;
    }
    printf("%-24s %10.3f %10.3f %10.3f %10.3f\n", a->replicas[i], w50, w99, a50, r50);
  }
  free(tmp);
}

static int write_json(const st_bench_t *b) {
  const st_args_t *a = &b->a;
  FILE *f = fopen(a->json_path, "w");
  if (!f) {
    fprintf(stderr, "kvbench: cannot write %s: %s\n", a->json_path, strerror(errno));
    return BENCH_EXIT_LOCAL;
  }
  fprintf(f, "{\"n\": %u, \"r\": %u, \"w\": %u, \"trials\": %u, \"calibration\": %zu, "
          "\"points\": [", a->n, a->r, a->w, a->trials, b->n_cal);
  for (size_t j = 0; j < a->n_times; j++)
    fprintf(f, "%s{\"t_ms\": %g, \"measured\": %.4f, \"predicted\": %.4f}", j ? ", " : "",
            a->times[j], b->measured[j], b->predicted[j]);
  fprintf(f, "], \"rmse_pp\": %.3f, \"k_staleness\": [", b->rmse_pp);
  for (uint32_t k = 1; k <= K_MAX; k++)
    fprintf(f, "%s%.4f", k > 1 ? ", " : "", kv_pbs_k_staleness(a->n, a->r, a->w, k));
  fputs("]}\n", f);
  if (fclose(f) != 0) {
    fprintf(stderr, "kvbench: cannot write %s: %s\n", a->json_path, strerror(errno));
    return BENCH_EXIT_LOCAL;
  }
  return BENCH_EXIT_OK;
}

/* The lag slot: each replica's visibility after the acknowledgement, as a CDF, at 0 when it
 * came before the acknowledgement (sorts the samples; y_all holds n_cal). */
static size_t lag_series(st_bench_t *b, kv_report_series_t *series, double *y_all) {
  for (size_t k = 0; k < b->n_cal; k++) y_all[k] = (double)(k + 1) / (double)b->n_cal;
  for (uint32_t i = 0; i < b->a.n; i++) {
    for (size_t k = 0; k < b->n_cal; k++)
      if (b->lag_ms[i][k] < 0) b->lag_ms[i][k] = 0;
    percentile(b->lag_ms[i], b->n_cal, 50); /* sorts */
    series[i] = (kv_report_series_t){.name = b->a.replicas[i], .x = b->lag_ms[i], .y = y_all,
                                     .n = b->n_cal};
  }
  return b->a.n;
}

static int write_html(st_bench_t *b) {
  const st_args_t *a = &b->a;
  static char text[TIMES_MAX][4][32];
  static const char *cells[TIMES_MAX * 4];
  static const char *const head[4] = {"t ms", "measured", "predicted", "diff pp"};
  for (size_t j = 0; j < a->n_times; j++) {
    snprintf(text[j][0], 32, "%g", a->times[j]);
    snprintf(text[j][1], 32, "%.4f", b->measured[j]);
    snprintf(text[j][2], 32, "%.4f", b->predicted[j]);
    snprintf(text[j][3], 32, "%+.2f", 100 * (b->measured[j] - b->predicted[j]));
    for (int c = 0; c < 4; c++) cells[j * 4 + c] = text[j][c];
  }
  char subtitle[512], note[256];
  snprintf(subtitle, sizeof subtitle,
           "N=%u R=%u W=%u, writes through %s, reads through %s, %u trials per t, %zu "
           "calibration writes", a->n, a->r, a->w, a->writer, a->reader, a->trials, b->n_cal);
  snprintf(note, sizeof note, "RMSE between measured and predicted: %.2f percentage points. "
           "k-staleness for k=1: %.4f.", b->rmse_pp, kv_pbs_k_staleness(a->n, a->r, a->w, 1));
  double xl[2][KV_REPORT_CDF_POINTS], yl[2][KV_REPORT_CDF_POINTS];
  double *y_all = malloc(b->n_cal * sizeof *y_all + 1);
  if (!y_all) {
    fprintf(stderr, "kvbench: out of memory\n");
    return BENCH_EXIT_LOCAL;
  }
  char put_name[32], get_name[32];
  snprintf(put_name, sizeof put_name, "put w=%u", a->w);
  snprintf(get_name, sizeof get_name, "get r=%u", a->r);
  kv_report_series_t lat[2] = {
      {.name = put_name, .x = xl[0], .y = yl[0], .n = kv_report_cdf(&b->put_lat, 1e-6, xl[0], yl[0])},
      {.name = get_name, .x = xl[1], .y = yl[1], .n = kv_report_cdf(&b->get_lat, 1e-6, xl[1], yl[1])}};
  kv_report_series_t lag[KV_PBS_REPLICAS_MAX];
  kv_report_series_t pbs[2] = {
      {.name = "measured", .x = a->times, .y = b->measured, .n = a->n_times, .markers = true},
      {.name = "predicted (WARS)", .x = a->times, .y = b->predicted, .n = a->n_times,
       .dashed = true}};
  bench_html_t h;
  bench_html_init(&h);
  h.title = "kvbench staleness";
  h.subtitle = subtitle;
  h.head = head;
  h.cols = 4;
  h.cells = cells;
  h.rows = a->n_times;
  h.note = note;
  h.latency.series = lat;
  h.latency.n_series = 2;
  h.lag.title = "Visibility lag CDF per replica (calibration writes)";
  h.lag.series = lag;
  h.lag.n_series = lag_series(b, lag, y_all);
  if (h.lag.n_series > KV_REPORT_SERIES_MAX) h.lag.n_series = KV_REPORT_SERIES_MAX;
  h.staleness.series = pbs;
  h.staleness.n_series = 2;
  int rc = bench_write_html(a->html_path, &h);
  free(y_all);
  return rc;
}

/* ---- main -------------------------------------------------------------------------- */

static int open_all(st_bench_t *b) {
  kv_client_status_t st;
  for (uint32_t i = 0; i < b->a.n; i++)
    if (bench_open(b->a.replicas[i], &b->clients[i], &st) != KV_OK)
      return bench_usage_error("--replicas: '%s': %s", b->a.replicas[i], st.msg);
  b->writer = (uint32_t)index_of(&b->a, b->a.writer);
  b->reader = (uint32_t)index_of(&b->a, b->a.reader);
  if (kv_client_async_create(KV_PBS_REPLICAS_MAX + 1, &b->async, &st) != KV_OK) {
    fprintf(stderr, "kvbench: %s\n", st.msg);
    return BENCH_EXIT_LOCAL;
  }
  size_t n = b->a.calibration;
  b->a_ms = calloc(n, sizeof(double));
  b->read_g_ms = calloc(n, sizeof(double));
  bool ok = b->a_ms && b->read_g_ms;
  for (uint32_t i = 0; i < b->a.n; i++) {
    b->w_ms[i] = calloc(n, sizeof(double));
    b->lag_ms[i] = calloc(n, sizeof(double));
    ok = ok && b->w_ms[i] && b->lag_ms[i];
  }
  if (!ok) {
    fprintf(stderr, "kvbench: out of memory for %zu calibration samples\n", n);
    return BENCH_EXIT_LOCAL;
  }
  return BENCH_EXIT_OK;
}

static void close_all(st_bench_t *b) {
  kv_client_async_destroy(b->async);
  for (uint32_t i = 0; i < b->a.n; i++) {
    kv_client_close(b->clients[i]);
    free(b->w_ms[i]);
    free(b->lag_ms[i]);
  }
  free(b->a_ms);
  free(b->read_g_ms);
  free(b->a.addrs_text);
  free(b->a.replicas_text);
}

static void set_opts(st_bench_t *b) {
  kv_client_opts_t init = KV_CLIENT_OPTS_INIT;
  b->put_opts = b->get_opts = b->probe_opts = init;
  b->put_opts.w = b->a.w;
  b->get_opts.r = b->a.r;
  b->put_opts.timeout_ms = b->get_opts.timeout_ms = b->a.timeout_ms;
  b->probe_opts.local = true;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  b->nonce = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
  kv_histogram_init(&b->put_lat);
  kv_histogram_init(&b->get_lat);
  for (uint32_t i = 0; i < KV_PBS_REPLICAS_MAX; i++) kv_histogram_init(&b->probe_rtt[i]);
}

int bench_staleness_main(int argc, char **argv) {
  static st_bench_t bench; /* histograms are large: keep them off the stack */
  st_bench_t *b = &bench;
  int rc = parse_args(argc, argv, &b->a);
  if (rc == BENCH_EXIT_OK) rc = open_all(b);
  if (rc == BENCH_EXIT_OK) {
    set_opts(b);
    bench_progress_init(&b->progress, b->a.progress);
    char last_key[KEY_BYTES_MAX];
    rc = warm_up(b);
    if (rc == BENCH_EXIT_OK) rc = calibrate_writes(b, last_key);
    if (rc == BENCH_EXIT_OK) rc = calibrate_reads(b, last_key);
    if (rc == BENCH_EXIT_OK) finish_legs(b);
    if (rc == BENCH_EXIT_OK) rc = run_trials(b);
    bench_progress_done(&b->progress);
  }
  if (rc == BENCH_EXIT_OK) rc = predict(b);
  if (rc == BENCH_EXIT_OK) {
    print_results(b);
    if (b->a.json_path) rc = write_json(b);
    if (rc == BENCH_EXIT_OK && b->a.html_path) rc = write_html(b);
  }
  close_all(b);
  return rc;
}
