/* kvsim: whole tunekv clusters in one thread, from one seed (DESIGN section 3).
 *
 *   kvsim --seed S [--nodes K] [--steps N] [--membership]
 *                                             one run; the last line is "trace <hex>"
 *   kvsim --seeds A-B [--nodes K] [--steps N] [--membership] [--stop-at-first-fail]
 *                                             many runs; ends "N passed, N failed"
 *
 * --stop-at-first-fail ends a seed range at its first failing seed: that seed's FAIL line
 * and the summary of the seeds run so far are printed as usual, and the exit status is 1.
 * It is for asking whether any seed fails (tests/sim/mutants.sh), not how many; with --seed
 * it changes nothing.
 *
 * A run: K nodes (3..7; drawn from the seed unless --nodes) and a few clients doing N
 * operations in all while the nemesis partitions, clogs, crashes (some crashes are power
 * losses) and restarts nodes, and the network loses and duplicates messages. Then the
 * faults stop, every node comes back, the cluster settles, and the checkers of workload.h
 * run. The trace hash covers every event in order, so the same seed gives the same hash.
 * Membership changes (issue 19): one seed in two with four nodes or more (every one with
 * --membership, which also draws four to seven nodes) makes one change while the clients run
 * and the nemesis strikes: a join of the spare last node, a leave of a member, or a replace of
 * a member by the spare, committed at a random live node (its claimant, kv_coord_ring_change)
 * a random time into the run. The ring then goes through handoff, flip and settling by the
 * cores' own gossip and streams, and every checker holds throughout; after the faults stop the
 * run waits for every node to hold the same STABLE ring (ring_settled) before the settled
 * checks, which then read the new owners. One change per run: a second could hand a partition
 * back to a node holding an old copy of it (ownership.h's limits).
 * Each seed runs one conflict handler (siblings, lww, region-priority or set-union: world.c),
 * and the checkers hold it to its promise: nothing lost, or every loss journaled.
 *
 * Exit status: 0 every run passed, 1 a run failed a check, 2 usage. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "workload.h"

#define STEPS_DEFAULT 1000u
#define NEMESIS_GAP_US_MAX 1000000u
#define SETTLE_US 3000000u
#define RECORD_CHECK_US 2000000u
#define HINT_DRAIN_S_MAX 120u
#define RUN_US_MAX 600000000u       /* ten virtual minutes: a stuck run is a failure */

#define CHANGE_AT_US_MAX 4000000u
#define CHANGE_RETRY_US 200000u
#define RING_SETTLE_S_MAX 120u

typedef struct {
  uint32_t crashes, power_losses, partitions, clogs;
} faults_t;

static faults_t faults;

static void nemesis_partition(world_t *w) {
  bool side[SIM_NODES_MAX];
  uint32_t a = 0;
  while (a == 0 || a == w->node_count) {
    a = 0;
    for (uint32_t i = 0; i < w->node_count; i++) a += side[i] = sim_chance(0.5);
  }
  bool one_way = sim_chance(0.3);
  for (uint32_t i = 0; i < w->node_count; i++)
    for (uint32_t j = 0; j < w->node_count; j++)
      if (side[i] && !side[j]) {
        w->cut[i][j] = true;
        if (!one_way) w->cut[j][i] = true;
      }
  faults.partitions++;
}

static void nemesis_crash(world_t *w) {
  uint32_t up[SIM_NODES_MAX], n = 0;
  for (uint32_t i = 0; i < w->node_count; i++)
    if (w->nodes[i].up) up[n++] = i;
  if (n <= 1) return;
  uint32_t victim = up[sim_below(n)];
  /* Half the time, a node with an fsync under way if there is one: the moment a power loss
   * tells a write made durable from one only said to be. */
  for (uint32_t i = 0; i < n; i++)
    if (w->nodes[up[i]].syncer.head && sim_chance(0.5)) victim = up[i];
  bool power = sim_chance(w->net.power_loss);
  world_crash(w, victim, power);
  faults.crashes++;
  faults.power_losses += power;
  world_schedule(w, w->now_us + 50000 + sim_below(2000000), EV_RESTART, victim, 0, 0, NULL);
}

/* One node's links slow down one after another, then recover together. */
static void nemesis_clog(world_t *w) {
  uint32_t x = (uint32_t)sim_below(w->node_count);
  uint64_t t = w->now_us;
  for (uint32_t j = 0; j < w->node_count; j++) {
    if (j == x) continue;
    t += 50000;
    world_schedule(w, t, EV_CLOG, x, j, 50000 + sim_below(300000), NULL);
  }
  uint64_t end = t + 500000 + sim_below(1500000);
  for (uint32_t j = 0; j < w->node_count; j++)
    if (j != x) world_schedule(w, end, EV_CLOG, x, j, 0, NULL);
  faults.clogs++;
}

void kvsim_nemesis(world_t *w) {
  if (!w->faults_on) return;
  uint64_t roll = sim_below(100);
  if (roll < 25) nemesis_partition(w);
  else if (roll < 45) world_heal(w);
  else if (roll < 70) nemesis_crash(w);
  else if (roll < 85) nemesis_clog(w);
  world_schedule(w, w->now_us + 100000 + sim_below(NEMESIS_GAP_US_MAX), EV_NEMESIS, 0, 0, 0,
                 NULL);
}

/* The members after the run's change of the current ones: a join adds the spare, a leave
 * takes a random member away, a replace does both. */
static uint64_t change_members(world_t *w, uint64_t members) {
  uint64_t spare = 1ull << (w->node_count - 1);
  uint32_t in[SIM_NODES_MAX], n = 0;
  for (uint32_t i = 0; i < w->node_count; i++)
    if (members >> i & 1) in[n++] = i;
  uint64_t leaver = 1ull << in[sim_below(n)];
  if (w->change == CHANGE_JOIN) return members | spare;
  if (w->change == CHANGE_LEAVE) return members & ~leaver;
  return (members & ~leaver) | spare;
}

/* EV_MEMBERSHIP: a random live node commits the run's change; a node that is down, or a
 * member set its ring refuses (a leave that would leave a region short), tries again later. */
void kvsim_membership(world_t *w) {
  uint32_t node = (uint32_t)sim_below(w->node_count);
  kv_status_t st;
  if (w->nodes[node].up) {
    uint64_t to = change_members(w, world_ring(w, node)->to.members);
    if (kv_coord_ring_change(w->nodes[node].coord, to, w->now_us, &st) == KV_OK) {
      w->change_us = w->now_us;
      w->change_members = to;
      return;
    }
  }
  world_schedule(w, w->now_us + CHANGE_RETRY_US, EV_MEMBERSHIP, 0, 0, 0, NULL);
}

/* The membership change of a seed: drawn apart from the run's generator, one seed in two
 * (always when forced) with more than N nodes. */
static sim_change_t change_for(uint64_t seed, uint32_t nodes, bool forced) {
  uint64_t z = (seed + 0x6a09e667f3bcc909ull) * 0xbf58476d1ce4e5b9ull;
  z ^= z >> 31;
  if (nodes <= SIM_N || (!forced && z % 2 == 0)) return CHANGE_NONE;
  return (sim_change_t)(CHANGE_JOIN + (z >> 8) % 3);
}

/* Node count for a seed when not given: drawn apart from the run's generator. */
static uint32_t nodes_for(uint64_t seed, bool membership) {
  uint64_t z = seed * 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 31)) * 0xbf58476d1ce4e5b9ull;
  if (membership) return 4 + (uint32_t)((z >> 33) % (SIM_NODES_MAX - 3));
  return 3 + (uint32_t)((z >> 33) % (SIM_NODES_MAX - 2));
}

typedef struct {
  uint64_t trace;
  bool ok;
} run_result_t;

/* Faults stop, every node comes back, and the cluster is given time to settle: the ring
 * too, once the run's change is made (ring_settled). */
static void settle(world_t *w) {
  w->faults_on = false;
  world_heal(w);
  for (uint32_t i = 0; i < w->node_count; i++)
    if (!w->nodes[i].up) world_restart(w, i);
  world_run_until(w, w->now_us + SETTLE_US);
  if (w->change == CHANGE_NONE) return;
  for (uint32_t s = 0; s < RING_SETTLE_S_MAX && (!w->change_us || !world_ring_settled(w)); s++)
    world_run_until(w, w->now_us + 1000000);
  if (!w->change_us)
    world_fail(w, "the membership change was never committed");
  else if (!world_ring_settled(w))
    world_fail(w, "the ring did not settle within %u s of the faults' end: n1 holds epoch %llu "
               "in phase %d", RING_SETTLE_S_MAX, (unsigned long long)world_ring(w, 0)->epoch,
               (int)world_ring(w, 0)->phase);
  else if (world_ring(w, 0)->to.members != w->change_members)
    world_fail(w, "the ring settled on members %llx, not the change's %llx",
               (unsigned long long)world_ring(w, 0)->to.members,
               (unsigned long long)w->change_members);
}

/* What the run's membership change did. */
static void print_change(world_t *w) {
  static const char *const names[] = {"none", "join", "leave", "replace"};
  if (w->change == CHANGE_NONE) {
    printf("membership: no change\n");
    return;
  }
  const kv_ring_t *r = world_ring(w, 0);
  printf("membership: %s from members %llx to %llx at %.2f s; ring epoch %llu %s\n",
         names[w->change], (unsigned long long)w->members0,
         (unsigned long long)w->change_members, (double)w->change_us / 1e6,
         (unsigned long long)r->epoch, r->phase == KV_RING_STABLE ? "stable" : "moving");
}

/* What the anti-entropy exchanges did, summed over the nodes and their peers. */
static void print_aae(world_t *w) {
  if (w->aae_interval_ms == 0) {
    printf("anti-entropy off\n");
    return;
  }
  kv_aae_stats_t sum = {0};
  for (uint32_t i = 0; i < w->node_count; i++)
    for (uint32_t j = 0; j < w->node_count; j++) {
      kv_aae_stats_t s;
      kv_coord_aae_stats(w->nodes[i].coord, j, &s);
      sum.exchanges += s.exchanges;
      sum.failed += s.failed;
      sum.keys_repaired += s.keys_repaired;
    }
  printf("anti-entropy every %u ms: %" PRIu64 " exchanges, %" PRIu64 " failed, %" PRIu64
         " keys repaired (counts restart with a node)\n",
         w->aae_interval_ms, sum.exchanges, sum.failed, sum.keys_repaired);
}

/* What tombstone reaping did, summed over the nodes. */
static void print_reaps(world_t *w) {
  kv_reap_stats_t sum = {0};
  for (uint32_t i = 0; i < w->node_count; i++) {
    kv_reap_stats_t s;
    kv_coord_reap_stats(w->nodes[i].coord, &s);
    sum.waiting += s.waiting;
    sum.reaped += s.reaped;
    sum.kept += s.kept;
    sum.dropped += s.dropped;
  }
  printf("tombstones reaped after %u ms: %" PRIu64 " reaped, %" PRIu64 " kept, %" PRIu64
         " waiting, %" PRIu64 " dropped (counts restart with a node)\n",
         w->grace_ms, sum.reaped, sum.kept, sum.waiting, sum.dropped);
}

static run_result_t run(uint64_t seed, uint32_t nodes, uint32_t steps, bool membership,
                        bool verbose) {
  world_t *w = calloc(1, sizeof *w);
  KV_ASSERT(w != NULL);
  memset(&faults, 0, sizeof faults);
  w->seed = seed;
  if (!nodes) nodes = nodes_for(seed, membership);
  world_init(w, nodes, change_for(seed, nodes, membership));
  workload_init(w, steps);
  w->faults_on = true;
  world_schedule(w, sim_below(NEMESIS_GAP_US_MAX), EV_NEMESIS, 0, 0, 0, NULL);
  if (w->change != CHANGE_NONE)
    world_schedule(w, 500000 + sim_below(CHANGE_AT_US_MAX), EV_MEMBERSHIP, 0, 0, 0, NULL);
  uint64_t next_check = RECORD_CHECK_US;
  while (!workload_finished(w) && !w->failure[0]) {
    if (w->now_us > RUN_US_MAX) {
      world_fail(w, "the clients did not finish in %u virtual seconds", RUN_US_MAX / 1000000);
      break;
    }
    world_run_until(w, w->now_us + 100000);
    if (w->now_us >= next_check) {
      check_records(w);
      next_check += RECORD_CHECK_US;
    }
  }
  uint64_t faults_end_us = w->now_us;
  if (!w->failure[0]) settle(w);
  if (!w->failure[0]) check_records(w);
  check_accurate_start(w);
  if (!w->failure[0]) {
    /* Hints go at their paced rate: give them time (each round is a few seconds at most). */
    for (uint32_t s = 0; s < HINT_DRAIN_S_MAX && check_hints_pending(w) > 0; s++)
      world_run_until(w, w->now_us + 1000000);
    /* Anti-entropy: two rounds, each exchange a few round trips. */
    if (w->aae_interval_ms > 0) world_run_until(w, w->now_us + 2ull * w->aae_interval_ms * 1000 +
                                                       SETTLE_US);
    check_converged(w);
  }
  if (!w->failure[0] && workload_final_reads(w, (uint32_t)sim_below(w->node_count)))
    check_final(w);
  if (!w->failure[0]) {
    world_run_until(w, w->now_us + SETTLE_US);
    check_bounded(w);
    check_accurate(w);
  }
  run_result_t r = {.trace = XXH64_digest(w->trace), .ok = !w->failure[0]};
  if (verbose) {
    uint32_t outcomes[4] = {0};
    for (uint32_t i = 0; i < w->wl->op_count; i++) outcomes[w->wl->ops[i].outcome]++;
    printf("seed %" PRIu64 ": %u nodes, %u clients, %u keys, %u ops (ok %u, failed %u, "
           "unknown %u)\n",
           seed, w->node_count, w->wl->client_count, w->wl->key_count, w->wl->op_count,
           outcomes[OUT_OK], outcomes[OUT_FAIL], outcomes[OUT_UNKNOWN]);
    printf("handler %s: %u versions journaled as discarded\n", w->handler,
           w->discarded_count);
    /* Why operations failed: the codes, most frequent first among those seen. */
    uint32_t by_code[64] = {0};
    for (uint32_t i = 0; i < w->wl->op_count; i++)
      if (w->wl->ops[i].outcome == OUT_FAIL) by_code[(uint32_t)-w->wl->ops[i].code % 64]++;
    printf("failures by code:");
    for (uint32_t c = 0; c < 64; c++)
      if (by_code[c]) printf(" %s %u", kv_err_name((kv_err)-(int)c), by_code[c]);
    printf("\n");
    printf("faults until %.2f s: %u crashes (%u power losses), %u partitions, %u clogs; "
           "loss %.1f%%, duplication %.1f%%\n",
           (double)faults_end_us / 1e6, faults.crashes, faults.power_losses, faults.partitions,
           faults.clogs, w->net.drop * 100, w->net.dup * 100);
    printf("%" PRIu64 " events, %.2f virtual s, most in flight at a coordinator %u, most on a "
           "link %u\n",
           w->events, (double)w->now_us / 1e6, w->wl->max_in_flight, w->link_in_flight_max);
    const kv_keyspace_conf_t *ks = kv_config_keyspace(&w->cfg, SIM_KEYSPACE);
    printf("sloppy quorum %s: fallbacks stored %" PRIu64 " writes as hints and answered %" PRIu64
           " reads\n",
           ks->sloppy_quorum ? "on" : "off", w->fallback_writes, w->fallback_reads);
    if (w->regions)
      printf("two regions (a: 1, b: 2 replicas): %" PRIu64 " writes forwarded to b and relayed\n",
             w->relays);
    print_aae(w);
    print_reaps(w);
    if (w->nodes[0].up) print_change(w);
  }
  if (!r.ok) printf("seed %" PRIu64 ": FAIL %s\n", seed, w->failure);
  workload_deinit(w);
  world_deinit(w);
  free(w);
  return r;
}

static int usage(const char *why) {
  fprintf(stderr, "kvsim: %s\nusage: kvsim --seed S [--nodes K] [--steps N] [--membership]\n"
                  "       kvsim --seeds A-B [--nodes K] [--steps N] [--membership] "
                  "[--stop-at-first-fail]\n",
          why);
  return 2;
}

/* A run that an assertion (KV_ASSERT aborts) or a sanitizer stops ends the process, and
 * with it the campaign. So that it still counts as a failure of its seed, in the report's
 * usual form, the line naming it is made before each run and written (with write(2), safe
 * in a signal handler) when the process aborts; the sanitizers are told to abort too, and
 * stdout is line-buffered, so the lines of the seeds before it are out already. */
static char dying_line[128];
static size_t dying_len;

const char *__asan_default_options(void);
const char *__ubsan_default_options(void);
const char *__asan_default_options(void) { return "abort_on_error=1"; }
const char *__ubsan_default_options(void) { return "abort_on_error=1:print_stacktrace=1"; }

static void dying_on_abort(int sig) {
  if (dying_len && write(STDOUT_FILENO, dying_line, dying_len) < 0) dying_len = 0;
  signal(sig, SIG_DFL);
  raise(sig);
}

static void dying_arm(uint64_t seed) {
  int n = snprintf(dying_line, sizeof dying_line,
                   "seed %" PRIu64 ": FAIL the run stopped on an assertion or a sanitizer "
                   "(its message is on stderr)\n", seed);
  dying_len = n > 0 && (size_t)n < sizeof dying_line ? (size_t)n : 0;
}

static bool parse_u64(const char *s, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || s[0] == '-') return false;
  *out = v;
  return true;
}

int main(int argc, char **argv) {
  /* The injected faults make the core's warnings (a failed read repair, an undecodable
   * record) routine here; errors still print. */
  kv_log_set_level(KV_LOG_ERROR);
  uint64_t first = 0, last = 0, nodes = 0, steps = STEPS_DEFAULT;
  bool one = false, many = false, stop_at_first_fail = false, membership = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--stop-at-first-fail") == 0 || strcmp(a, "--membership") == 0) {
      *(a[2] == 's' ? &stop_at_first_fail : &membership) = true;
      continue;
    }
    if (i + 1 >= argc)
      return usage("every option but --stop-at-first-fail and --membership takes a value");
    const char *v = argv[++i];
    if (strcmp(a, "--seed") == 0) {
      if (!parse_u64(v, &first)) return usage("--seed takes a number");
      last = first;
      one = true;
    } else if (strcmp(a, "--seeds") == 0) {
      const char *dash = strchr(v, '-');
      char lo[32];
      if (!dash || (size_t)(dash - v) >= sizeof lo) return usage("--seeds takes A-B");
      memcpy(lo, v, (size_t)(dash - v));
      lo[dash - v] = '\0';
      if (!parse_u64(lo, &first) || !parse_u64(dash + 1, &last) || last < first)
        return usage("--seeds takes A-B with A <= B");
      many = true;
    } else if (strcmp(a, "--nodes") == 0) {
      if (!parse_u64(v, &nodes) || nodes < SIM_N || nodes > SIM_NODES_MAX)
        return usage("--nodes takes 3 to 7");
    } else if (strcmp(a, "--steps") == 0) {
      if (!parse_u64(v, &steps) || steps == 0 || steps > 1000000)
        return usage("--steps takes 1 to 1000000");
    } else {
      return usage("unknown option");
    }
  }
  if (one == many) return usage("give --seed or --seeds");
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGABRT, dying_on_abort);
  dying_arm(first);
  if (one) {
    run_result_t r = run(first, (uint32_t)nodes, (uint32_t)steps, membership, true);
    printf("trace %016" PRIx64 "\n", r.trace);
    return r.ok ? 0 : 1;
  }
  uint64_t passed = 0, failed = 0;
  for (uint64_t s = first; s <= last; s++) {
    dying_arm(s);
    if (run(s, (uint32_t)nodes, (uint32_t)steps, membership, false).ok) passed++;
    else failed++;
    if (s == UINT64_MAX || (failed && stop_at_first_fail)) break;
  }
  printf("%" PRIu64 " passed, %" PRIu64 " failed\n", passed, failed);
  return failed ? 1 : 0;
}
