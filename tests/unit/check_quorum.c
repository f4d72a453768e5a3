/* check_quorum.c: the quorum counter driven event by event. Every order of replies from 3
 * and 5 targets, with every ok/error mix and every point where replies stop, is checked
 * against a brute-force oracle that reads the need the way DESIGN section 7 states it. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "quorum.h"

#define START_MS 1000u
#define TIMEOUT_MS 2000u
#define DEADLINE_MS (START_MS + TIMEOUT_MS)

static kv_target_t target(uint8_t node, uint8_t region, bool primary, bool local) {
  kv_target_t t = {.node = node, .region = region, .primary = primary, .local = local};
  return t;
}

/* Three targets: two local primaries in region 0, one remote replica in region 1. */
static const kv_target_t *three_targets(void) {
  static kv_target_t t[3];
  t[0] = target(0, 0, true, true);
  t[1] = target(1, 0, true, true);
  t[2] = target(2, 1, false, false);
  return t;
}

/* Five targets: east (region 0) n0 n1 n2, west (region 1, the coordinator's) n3 n4;
 * primaries n0 n1 n3. */
static const kv_target_t *five_targets(void) {
  static kv_target_t t[5];
  t[0] = target(0, 0, true, false);
  t[1] = target(1, 0, true, false);
  t[2] = target(2, 0, false, false);
  t[3] = target(3, 1, true, true);
  t[4] = target(4, 1, false, true);
  return t;
}

static kv_need_t need_of(uint32_t total, uint32_t local, uint32_t r0, uint32_t r1,
                         uint32_t primaries) {
  kv_need_t n;
  memset(&n, 0, sizeof n);
  n.total = total;
  n.local = local;
  n.per_region[0] = r0;
  n.per_region[1] = r1;
  n.primaries = primaries;
  return n;
}

typedef struct {
  const char *name;
  kv_need_t need;
} named_need_t;

/* ---- The oracle: the need read literally, with no shared code. ---- */

static bool oracle_met(const kv_need_t *need, const kv_target_t *t, uint32_t n,
                       const kv_answer_t *ans) {
  uint32_t total = 0, local = 0, primaries = 0, region[KV_REGIONS_MAX] = {0};
  for (uint32_t i = 0; i < n; i++) {
    if (ans[i] != KV_ANSWER_OK) continue;
    total++;
    if (t[i].local) local++;
    if (t[i].primary) primaries++;
    if (t[i].region < KV_REGIONS_MAX) region[t[i].region]++;
  }
  if (total < need->total || local < need->local || primaries < need->primaries) return false;
  for (uint32_t r = 0; r < KV_REGIONS_MAX; r++)
    if (need->per_region[r] > 0 && region[r] < need->per_region[r]) return false;
  return true;
}

/* Unreachable: not met even if every target that has not answered answered ok. */
static bool oracle_unreachable(const kv_need_t *need, const kv_target_t *t, uint32_t n,
                               const kv_answer_t *ans) {
  kv_answer_t best[KV_REPLICAS_MAX];
  for (uint32_t i = 0; i < n; i++) best[i] = ans[i] == KV_ANSWER_NONE ? KV_ANSWER_OK : ans[i];
  return !oracle_met(need, t, n, best);
}

typedef struct {
  int step; /* index into the order of the deciding answer; -1 when never decided */
  kv_quorum_outcome_t outcome;
} oracle_t;

static oracle_t oracle_run(const kv_need_t *need, const kv_target_t *t, uint32_t n,
                           const uint32_t *order, uint32_t ok_mask) {
  kv_answer_t ans[KV_REPLICAS_MAX] = {KV_ANSWER_NONE};
  for (uint32_t k = 0; k < n; k++) {
    uint32_t i = order[k];
    ans[i] = (ok_mask >> i) & 1u ? KV_ANSWER_OK : KV_ANSWER_ERROR;
    if (oracle_met(need, t, n, ans)) return (oracle_t){(int)k, KV_QUORUM_OK};
    if (oracle_unreachable(need, t, n, ans)) return (oracle_t){(int)k, KV_QUORUM_FAILED};
  }
  return (oracle_t){-1, KV_QUORUM_PENDING};
}

/* ---- Driving the counter through one case. ---- */

static uint64_t answer_ms(uint32_t k) { return START_MS + 10u * (k + 1u); }

/* Plain checks: ck_assert records a mark point per call, far too slow for ~10^6 checks. */
#define EXPECT(cond, what)                                                                    \
  do {                                                                                      \
    if (!(cond))                                                                            \
      ck_abort_msg("%s: need %s, order %s, ok mask 0x%x, %u answers", what, nn->name, ord, \
                   ok_mask, cut);                                                           \
  } while (0)

/* Delivers the first cut answers of order, then ticks at the deadline, checking every step
 * against the oracle. */
static void run_case(const named_need_t *nn, const kv_target_t *t, uint32_t n,
                     const uint32_t *order, uint32_t ok_mask, uint32_t cut) {
  char ord[KV_REPLICAS_MAX * 2 + 1] = "";
  for (uint32_t k = 0; k < n; k++) ord[k] = (char)('0' + order[k]);
  oracle_t want = oracle_run(&nn->need, t, n, order, ok_mask);
  EXPECT(want.step >= 0, "the oracle left a fully answered request undecided");
  kv_quorum_t q;
  kv_quorum_init(&q, &nn->need, t, n, START_MS, DEADLINE_MS);
  uint64_t last_ok = 0;
  for (uint32_t k = 0; k < cut; k++) {
    bool ok = (ok_mask >> order[k]) & 1u;
    if (ok) last_ok = answer_ms(k);
    bool decided = kv_quorum_answer(&q, order[k], ok, answer_ms(k));
    EXPECT(decided == ((int)k == want.step), "decided at the wrong answer");
    bool should_be_decided = (int)k >= want.step;
    EXPECT(q.outcome == (should_be_decided ? want.outcome : KV_QUORUM_PENDING), "outcome");
    EXPECT(kv_quorum_finished(&q, answer_ms(k)) == (k + 1 == n), "finished before deadline");
  }
  bool decided_early = want.step >= 0 && (uint32_t)want.step < cut;
  EXPECT(!kv_quorum_tick(&q, DEADLINE_MS - 1), "tick before the deadline decided");
  EXPECT(kv_quorum_tick(&q, DEADLINE_MS) == !decided_early, "tick at the deadline");
  EXPECT(!kv_quorum_tick(&q, DEADLINE_MS + 1), "a second timeout");
  EXPECT(kv_quorum_finished(&q, DEADLINE_MS), "not finished at the deadline");
  kv_quorum_outcome_t final = decided_early ? want.outcome : KV_QUORUM_TIMED_OUT;
  EXPECT(q.outcome == final, "final outcome");
  uint64_t decided_ms = decided_early ? answer_ms((uint32_t)want.step) : DEADLINE_MS;
  EXPECT(q.decided_ms == decided_ms, "decided_ms");
  EXPECT(q.ok_count + q.error_count == cut, "answers counted");
  int64_t lag = final == KV_QUORUM_OK ? (int64_t)(last_ok - decided_ms) : -1;
  EXPECT(kv_quorum_lag_ms(&q) == lag, "lag");
  if (final == KV_QUORUM_OK) return;
  kv_status_t st;
  kv_err want_err = final == KV_QUORUM_TIMED_OUT ? KV_ETIMEDOUT : KV_EUNAVAILABLE;
  EXPECT(kv_quorum_failure(&q, nn->name, "acknowledged", &st) == want_err, "failure code");
  EXPECT(st.code == want_err, "failure status");
}

static bool next_permutation(uint32_t *a, uint32_t n) {
  int i = (int)n - 2;
  while (i >= 0 && a[i] >= a[i + 1]) i--;
  if (i < 0) return false;
  int j = (int)n - 1;
  while (a[j] <= a[i]) j--;
  uint32_t tmp = a[i];
  a[i] = a[j];
  a[j] = tmp;
  for (uint32_t l = (uint32_t)i + 1, r = n - 1; l < r; l++, r--) {
    tmp = a[l];
    a[l] = a[r];
    a[r] = tmp;
  }
  return true;
}

/* Every order, every ok/error mix, every number of answers before the deadline. Returns
 * how many cases ran so the caller can check the enumeration itself. */
static uint32_t run_all_orders(const named_need_t *needs, uint32_t need_count,
                               const kv_target_t *t, uint32_t n) {
  uint32_t cases = 0;
  for (uint32_t w = 0; w < need_count; w++) {
    uint32_t order[KV_REPLICAS_MAX];
    for (uint32_t i = 0; i < n; i++) order[i] = i;
    do {
      for (uint32_t mask = 0; mask < (1u << n); mask++)
        for (uint32_t cut = 0; cut <= n; cut++, cases++)
          run_case(&needs[w], t, n, order, mask, cut);
    } while (next_permutation(order, n));
  }
  return cases;
}

START_TEST(every_order_of_3_matches_oracle) {
  const named_need_t needs[] = {
      {"ONE", need_of(1, 0, 0, 0, 0)},          {"QUORUM", need_of(2, 0, 0, 0, 0)},
      {"ALL", need_of(3, 0, 0, 0, 0)},          {"LOCAL_ONE", need_of(1, 1, 0, 0, 0)},
      {"LOCAL_QUORUM", need_of(2, 2, 0, 0, 0)}, {"EACH_QUORUM", need_of(3, 0, 2, 1, 0)},
      {"QUORUM pw=2", need_of(2, 0, 0, 0, 2)},
  };
  uint32_t count = sizeof needs / sizeof needs[0];
  ck_assert_uint_eq(run_all_orders(needs, count, three_targets(), 3), count * 6 * 8 * 4);
}
END_TEST

START_TEST(every_order_of_5_matches_oracle) {
  const named_need_t needs[] = {
      {"ONE", need_of(1, 0, 0, 0, 0)},          {"QUORUM", need_of(3, 0, 0, 0, 0)},
      {"ALL", need_of(5, 0, 0, 0, 0)},          {"LOCAL_ONE", need_of(1, 1, 0, 0, 0)},
      {"LOCAL_QUORUM", need_of(2, 2, 0, 0, 0)}, {"EACH_QUORUM", need_of(4, 0, 2, 2, 0)},
      {"QUORUM pw=2", need_of(3, 0, 0, 0, 2)},  {"ONE pw=3", need_of(3, 0, 0, 0, 3)},
  };
  uint32_t count = sizeof needs / sizeof needs[0];
  ck_assert_uint_eq(run_all_orders(needs, count, five_targets(), 5), count * 120 * 32 * 6);
}
END_TEST

/* ---- Single scenarios, spelled out. ---- */

static void start(kv_quorum_t *q, kv_need_t need, const kv_target_t *t, uint32_t n) {
  kv_quorum_init(q, &need, t, n, START_MS, DEADLINE_MS);
}

START_TEST(lost_replies_time_out_exactly_once) {
  kv_quorum_t q;
  start(&q, need_of(2, 0, 0, 0, 0), three_targets(), 3);
  ck_assert(!kv_quorum_answer(&q, 0, true, START_MS + 5));
  ck_assert(!kv_quorum_tick(&q, START_MS + 100));
  ck_assert(!kv_quorum_tick(&q, DEADLINE_MS - 1));
  ck_assert_int_eq(q.outcome, KV_QUORUM_PENDING);
  ck_assert(!kv_quorum_finished(&q, DEADLINE_MS - 1));
  ck_assert(kv_quorum_tick(&q, DEADLINE_MS));
  ck_assert_int_eq(q.outcome, KV_QUORUM_TIMED_OUT);
  ck_assert_uint_eq(q.decided_ms, DEADLINE_MS);
  ck_assert(!kv_quorum_tick(&q, DEADLINE_MS));
  ck_assert(!kv_quorum_tick(&q, DEADLINE_MS + 500));
  ck_assert(kv_quorum_finished(&q, DEADLINE_MS));
  /* The reply that would have made the quorum arrives too late to count. */
  ck_assert(!kv_quorum_answer(&q, 1, true, DEADLINE_MS + 1));
  ck_assert_uint_eq(q.ok_count, 1);
  ck_assert_int_eq(q.outcome, KV_QUORUM_TIMED_OUT);
  ck_assert_int_eq(kv_quorum_lag_ms(&q), -1);
}
END_TEST

START_TEST(answer_at_the_deadline_times_out_uncounted) {
  kv_quorum_t q;
  start(&q, need_of(1, 0, 0, 0, 0), three_targets(), 3);
  ck_assert(kv_quorum_answer(&q, 0, true, DEADLINE_MS));
  ck_assert_int_eq(q.outcome, KV_QUORUM_TIMED_OUT);
  ck_assert_uint_eq(q.ok_count, 0);
  ck_assert_int_eq(q.answers[0], KV_ANSWER_NONE);
  ck_assert(!kv_quorum_tick(&q, DEADLINE_MS));
}
END_TEST

START_TEST(late_replies_are_recorded_for_lag) {
  kv_quorum_t q;
  start(&q, need_of(2, 0, 0, 0, 0), three_targets(), 3);
  ck_assert(!kv_quorum_answer(&q, 2, true, START_MS + 10));
  ck_assert(kv_quorum_answer(&q, 0, true, START_MS + 20));
  ck_assert_int_eq(q.outcome, KV_QUORUM_OK);
  ck_assert_int_eq(kv_quorum_lag_ms(&q), 0);
  ck_assert(!kv_quorum_finished(&q, START_MS + 20));
  ck_assert(!kv_quorum_answer(&q, 1, true, START_MS + 75));
  ck_assert_int_eq(q.outcome, KV_QUORUM_OK);
  ck_assert_uint_eq(q.ok_count, 3);
  ck_assert_uint_eq(q.decided_ms, START_MS + 20);
  ck_assert_uint_eq(q.last_ok_ms, START_MS + 75);
  ck_assert_int_eq(kv_quorum_lag_ms(&q), 55);
  ck_assert(kv_quorum_finished(&q, START_MS + 75));
  ck_assert(!kv_quorum_tick(&q, DEADLINE_MS));
  ck_assert_int_eq(q.outcome, KV_QUORUM_OK);
}
END_TEST

START_TEST(late_error_after_ok_changes_nothing) {
  kv_quorum_t q;
  start(&q, need_of(1, 0, 0, 0, 0), three_targets(), 3);
  ck_assert(kv_quorum_answer(&q, 1, true, START_MS + 10));
  ck_assert(!kv_quorum_answer(&q, 0, false, START_MS + 20));
  ck_assert(!kv_quorum_answer(&q, 2, false, START_MS + 30));
  ck_assert_int_eq(q.outcome, KV_QUORUM_OK);
  ck_assert_uint_eq(q.error_count, 2);
  ck_assert_int_eq(kv_quorum_lag_ms(&q), 0);
}
END_TEST

START_TEST(late_oks_after_failure_change_nothing) {
  kv_quorum_t q;
  start(&q, need_of(3, 0, 0, 0, 0), three_targets(), 3);
  ck_assert(kv_quorum_answer(&q, 1, false, START_MS + 10));
  ck_assert_int_eq(q.outcome, KV_QUORUM_FAILED);
  ck_assert(!kv_quorum_answer(&q, 0, true, START_MS + 20));
  ck_assert(!kv_quorum_answer(&q, 2, true, START_MS + 30));
  ck_assert_int_eq(q.outcome, KV_QUORUM_FAILED);
  ck_assert_uint_eq(q.ok_count, 2);
  ck_assert_uint_eq(q.last_ok_ms, START_MS + 30);
  ck_assert_int_eq(kv_quorum_lag_ms(&q), -1);
}
END_TEST

START_TEST(duplicate_replies_are_ignored) {
  kv_quorum_t q;
  start(&q, need_of(2, 0, 0, 0, 0), three_targets(), 3);
  ck_assert(!kv_quorum_answer(&q, 0, true, START_MS + 10));
  ck_assert(!kv_quorum_answer(&q, 0, true, START_MS + 11));
  ck_assert(!kv_quorum_answer(&q, 0, true, START_MS + 12));
  ck_assert_int_eq(q.outcome, KV_QUORUM_PENDING);
  ck_assert_uint_eq(q.ok_count, 1);
  ck_assert_uint_eq(q.last_ok_ms, START_MS + 10);
  /* The same target contradicting itself is a duplicate too, not an error. */
  ck_assert(!kv_quorum_answer(&q, 0, false, START_MS + 13));
  ck_assert_uint_eq(q.error_count, 0);
  ck_assert_int_eq(q.answers[0], KV_ANSWER_OK);
  ck_assert(!kv_quorum_finished(&q, START_MS + 13));
  ck_assert(kv_quorum_answer(&q, 2, true, START_MS + 20));
  ck_assert_int_eq(q.outcome, KV_QUORUM_OK);
}
END_TEST

START_TEST(duplicate_errors_cannot_fail_a_request) {
  kv_quorum_t q;
  start(&q, need_of(2, 0, 0, 0, 0), three_targets(), 3);
  ck_assert(!kv_quorum_answer(&q, 1, false, START_MS + 10));
  ck_assert(!kv_quorum_answer(&q, 1, false, START_MS + 11));
  ck_assert(!kv_quorum_answer(&q, 1, true, START_MS + 12));
  ck_assert_int_eq(q.outcome, KV_QUORUM_PENDING);
  ck_assert_uint_eq(q.error_count, 1);
  ck_assert_uint_eq(q.ok_count, 0);
}
END_TEST

START_TEST(all_fails_on_the_first_error) {
  kv_quorum_t q;
  start(&q, need_of(5, 0, 0, 0, 0), five_targets(), 5);
  ck_assert(!kv_quorum_answer(&q, 0, true, START_MS + 10));
  ck_assert(!kv_quorum_answer(&q, 3, true, START_MS + 20));
  ck_assert(kv_quorum_answer(&q, 4, false, START_MS + 30));
  ck_assert_int_eq(q.outcome, KV_QUORUM_FAILED);
  ck_assert_uint_eq(q.decided_ms, START_MS + 30);
}
END_TEST

START_TEST(one_is_decided_by_the_first_ok) {
  kv_quorum_t q;
  start(&q, need_of(1, 0, 0, 0, 0), five_targets(), 5);
  for (uint32_t i = 0; i < 4; i++) ck_assert(!kv_quorum_answer(&q, i, false, START_MS + i));
  ck_assert_int_eq(q.outcome, KV_QUORUM_PENDING);
  ck_assert(kv_quorum_answer(&q, 4, true, START_MS + 9));
  ck_assert_int_eq(q.outcome, KV_QUORUM_OK);
  start(&q, need_of(1, 0, 0, 0, 0), five_targets(), 5);
  ck_assert(kv_quorum_answer(&q, 2, true, START_MS + 1));
  ck_assert_int_eq(q.outcome, KV_QUORUM_OK);
}
END_TEST

START_TEST(each_quorum_needs_every_region) {
  kv_quorum_t q;
  /* east 3 + west 2: two in each, four in all. */
  start(&q, need_of(4, 0, 2, 2, 0), five_targets(), 5);
  ck_assert(!kv_quorum_answer(&q, 0, true, START_MS + 1));
  ck_assert(!kv_quorum_answer(&q, 1, true, START_MS + 2));
  ck_assert(!kv_quorum_answer(&q, 2, true, START_MS + 3));
  ck_assert(!kv_quorum_answer(&q, 3, true, START_MS + 4));
  /* Four oks meet the total, but west has only one. */
  ck_assert_int_eq(q.outcome, KV_QUORUM_PENDING);
  ck_assert(kv_quorum_answer(&q, 4, true, START_MS + 5));
  ck_assert_int_eq(q.outcome, KV_QUORUM_OK);
  /* One west error leaves west one short, however east answers. */
  start(&q, need_of(4, 0, 2, 2, 0), five_targets(), 5);
  ck_assert(kv_quorum_answer(&q, 4, false, START_MS + 1));
  ck_assert_int_eq(q.outcome, KV_QUORUM_FAILED);
  /* One east error still leaves two east replicas. */
  start(&q, need_of(4, 0, 2, 2, 0), five_targets(), 5);
  ck_assert(!kv_quorum_answer(&q, 0, false, START_MS + 1));
  ck_assert(kv_quorum_answer(&q, 1, false, START_MS + 2));
  ck_assert_int_eq(q.outcome, KV_QUORUM_FAILED);
}
END_TEST

START_TEST(local_quorum_counts_the_local_region) {
  kv_quorum_t q;
  start(&q, need_of(2, 2, 0, 0, 0), five_targets(), 5);
  ck_assert(!kv_quorum_answer(&q, 0, true, START_MS + 1));
  ck_assert(!kv_quorum_answer(&q, 1, true, START_MS + 2));
  ck_assert(!kv_quorum_answer(&q, 3, true, START_MS + 3));
  ck_assert_int_eq(q.outcome, KV_QUORUM_PENDING);
  ck_assert(kv_quorum_answer(&q, 4, true, START_MS + 4));
  ck_assert_int_eq(q.outcome, KV_QUORUM_OK);
  start(&q, need_of(2, 2, 0, 0, 0), five_targets(), 5);
  ck_assert(kv_quorum_answer(&q, 3, false, START_MS + 1));
  ck_assert_int_eq(q.outcome, KV_QUORUM_FAILED);
}
END_TEST

START_TEST(primaries_are_counted) {
  kv_quorum_t q;
  /* QUORUM with pw=2: three oks, two of them from n0, n1 or n3. */
  start(&q, need_of(3, 0, 0, 0, 2), five_targets(), 5);
  ck_assert(!kv_quorum_answer(&q, 2, true, START_MS + 1));
  ck_assert(!kv_quorum_answer(&q, 4, true, START_MS + 2));
  ck_assert(!kv_quorum_answer(&q, 0, true, START_MS + 3));
  ck_assert_int_eq(q.outcome, KV_QUORUM_PENDING);
  ck_assert(kv_quorum_answer(&q, 3, true, START_MS + 4));
  ck_assert_int_eq(q.outcome, KV_QUORUM_OK);
  start(&q, need_of(3, 0, 0, 0, 2), five_targets(), 5);
  ck_assert(!kv_quorum_answer(&q, 0, false, START_MS + 1));
  ck_assert(kv_quorum_answer(&q, 1, false, START_MS + 2));
  ck_assert_int_eq(q.outcome, KV_QUORUM_FAILED);
}
END_TEST

START_TEST(finished_when_all_answered_or_deadline) {
  kv_quorum_t q;
  start(&q, need_of(1, 0, 0, 0, 0), three_targets(), 3);
  ck_assert(!kv_quorum_finished(&q, START_MS));
  kv_quorum_answer(&q, 0, true, START_MS + 1);
  kv_quorum_answer(&q, 1, false, START_MS + 2);
  ck_assert(!kv_quorum_finished(&q, START_MS + 2));
  kv_quorum_answer(&q, 2, true, START_MS + 3);
  ck_assert(kv_quorum_finished(&q, START_MS + 3));
  start(&q, need_of(1, 0, 0, 0, 0), three_targets(), 3);
  ck_assert(!kv_quorum_finished(&q, DEADLINE_MS - 1));
  ck_assert(kv_quorum_finished(&q, DEADLINE_MS));
}
END_TEST

/* ---- Refusing before anything is sent. ---- */

static void possible_fails(kv_need_t need, const kv_target_t *t, uint32_t n, const bool *alive,
                           const char *level, const char *msg) {
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert(!kv_quorum_possible(&need, t, n, alive, level, &st));
  ck_assert_int_eq(st.code, KV_EUNAVAILABLE);
  ck_assert_str_eq(st.msg, msg);
}

static void possible_ok(kv_need_t need, const kv_target_t *t, uint32_t n, const bool *alive) {
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert(kv_quorum_possible(&need, t, n, alive, "X", &st));
  ck_assert_int_eq(st.code, KV_OK);
}

START_TEST(possible_for_every_level_shape) {
  const kv_target_t *t3 = three_targets();
  const kv_target_t *t5 = five_targets();
  const bool one_of_3[3] = {true, false, false};
  const bool none_of_3[3] = {false, false, false};
  const bool all_of_3[3] = {true, true, true};
  possible_fails(need_of(2, 0, 0, 0, 0), t3, 3, one_of_3, "QUORUM",
                 "QUORUM needs 2 of 3 replicas; 1 is alive");
  possible_fails(need_of(1, 0, 0, 0, 0), t3, 3, none_of_3, "ONE",
                 "ONE needs 1 of 3 replicas; 0 are alive");
  possible_ok(need_of(1, 0, 0, 0, 0), t3, 3, one_of_3);
  possible_ok(need_of(3, 0, 0, 0, 0), t3, 3, all_of_3);
  const bool four_of_5[5] = {true, true, false, true, true};
  possible_fails(need_of(5, 0, 0, 0, 0), t5, 5, four_of_5, "ALL",
                 "ALL needs 5 of 5 replicas; 4 are alive");
  possible_ok(need_of(3, 0, 0, 0, 0), t5, 5, four_of_5);
  const bool east_only[5] = {true, true, true, false, false};
  possible_fails(need_of(1, 1, 0, 0, 0), t5, 5, east_only, "LOCAL_ONE",
                 "LOCAL_ONE needs 1 of 2 local replicas; 0 are alive");
  const bool one_west[5] = {true, true, true, true, false};
  possible_fails(need_of(2, 2, 0, 0, 0), t5, 5, one_west, "LOCAL_QUORUM",
                 "LOCAL_QUORUM needs 2 of 2 local replicas; 1 is alive");
  possible_fails(need_of(4, 0, 2, 2, 0), t5, 5, one_west, "EACH_QUORUM",
                 "EACH_QUORUM needs 2 of 2 replicas in region 1; 1 is alive");
  const bool one_east[5] = {false, false, true, true, true};
  possible_fails(need_of(4, 0, 2, 2, 0), t5, 5, one_east, "EACH_QUORUM",
                 "EACH_QUORUM needs 4 of 5 replicas; 3 are alive");
  const bool two_east[5] = {false, true, true, true, true};
  possible_ok(need_of(4, 0, 2, 2, 0), t5, 5, two_east);
  const bool secondaries[5] = {false, true, true, false, true};
  possible_fails(need_of(3, 0, 0, 0, 2), t5, 5, secondaries, "QUORUM",
                 "QUORUM needs 2 of 3 primary replicas; 1 is alive");
  possible_ok(need_of(3, 0, 0, 0, 2), t5, 5, two_east);
}
END_TEST

/* ---- What the user reads when a request fails. ---- */

static void failure_is(const kv_quorum_t *q, const char *level, const char *verb, kv_err code,
                       const char *msg) {
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_int_eq(kv_quorum_failure(q, level, verb, &st), code);
  ck_assert_int_eq(st.code, code);
  ck_assert_str_eq(st.msg, msg);
}

START_TEST(failure_messages_are_exact) {
  kv_quorum_t q;
  start(&q, need_of(3, 0, 0, 0, 0), three_targets(), 3);
  kv_quorum_answer(&q, 0, true, START_MS + 1);
  kv_quorum_answer(&q, 2, true, START_MS + 2);
  kv_quorum_tick(&q, DEADLINE_MS);
  failure_is(&q, "ALL", "acknowledged", KV_ETIMEDOUT,
             "2 of 3 replicas acknowledged within 2000 ms; ALL needs 3");

  start(&q, need_of(2, 0, 0, 0, 0), three_targets(), 3);
  kv_quorum_answer(&q, 1, false, START_MS + 1);
  kv_quorum_answer(&q, 0, true, START_MS + 2);
  kv_quorum_answer(&q, 2, false, START_MS + 3);
  ck_assert_int_eq(q.outcome, KV_QUORUM_FAILED);
  failure_is(&q, "QUORUM", "answered", KV_EUNAVAILABLE,
             "1 of 3 replicas answered, 2 failed; QUORUM needs 2");

  /* The sentence names the group that fell short, not a total that was met. */
  start(&q, need_of(4, 0, 2, 2, 0), five_targets(), 5);
  for (uint32_t i = 0; i < 4; i++) kv_quorum_answer(&q, i, true, START_MS + i);
  kv_quorum_tick(&q, DEADLINE_MS);
  failure_is(&q, "EACH_QUORUM", "acknowledged", KV_ETIMEDOUT,
             "1 of 2 replicas in region 1 acknowledged within 2000 ms; EACH_QUORUM needs 2");

  start(&q, need_of(2, 2, 0, 0, 0), five_targets(), 5);
  kv_quorum_answer(&q, 0, true, START_MS + 1);
  kv_quorum_answer(&q, 4, false, START_MS + 2);
  failure_is(&q, "LOCAL_QUORUM", "answered", KV_EUNAVAILABLE,
             "0 of 2 local replicas answered, 1 failed; LOCAL_QUORUM needs 2");

  start(&q, need_of(3, 0, 0, 0, 2), five_targets(), 5);
  kv_quorum_answer(&q, 1, false, START_MS + 1);
  kv_quorum_answer(&q, 3, false, START_MS + 2);
  failure_is(&q, "QUORUM", "acknowledged", KV_EUNAVAILABLE,
             "0 of 3 primary replicas acknowledged, 2 failed; QUORUM needs 2");
}
END_TEST

START_TEST(a_moving_ring_needs_w_of_each_set) {
  /* N=3 moving from {n0, n1, n2} to {n0, n1, n3}: n0 and n1 are in both sets. */
  kv_target_t t[4];
  for (uint8_t i = 0; i < 4; i++) t[i] = target(i, 0, true, true);
  t[0].sets = t[1].sets = KV_SET_FROM | KV_SET_TO;
  t[2].sets = KV_SET_FROM;
  t[3].sets = KV_SET_TO;
  kv_quorum_t q;
  start(&q, need_of(2, 0, 0, 0, 0), t, 4);
  ck_assert(!kv_quorum_answer(&q, 0, true, START_MS + 1));
  ck_assert(!kv_quorum_answer(&q, 2, true, START_MS + 2)); /* two of the old, one of the new */
  ck_assert(kv_quorum_answer(&q, 3, true, START_MS + 3));
  ck_assert_int_eq(q.outcome, KV_QUORUM_OK);

  start(&q, need_of(2, 0, 0, 0, 0), t, 4);
  ck_assert(!kv_quorum_answer(&q, 0, true, START_MS + 1));
  ck_assert(kv_quorum_answer(&q, 1, true, START_MS + 2)); /* both in both sets */

  start(&q, need_of(2, 0, 0, 0, 0), t, 4);
  kv_quorum_answer(&q, 2, true, START_MS + 1);
  kv_quorum_answer(&q, 1, false, START_MS + 2);
  ck_assert(!kv_quorum_answer(&q, 0, true, START_MS + 3));
  ck_assert(kv_quorum_answer(&q, 3, false, START_MS + 4));
  failure_is(&q, "QUORUM", "acknowledged", KV_EUNAVAILABLE,
             "1 of 3 replicas of the new owners acknowledged, 2 failed; QUORUM needs 2");

  bool alive[4] = {true, false, true, false};
  kv_status_t st;
  ck_assert(!kv_quorum_possible(&q.need, t, 4, alive, "QUORUM", &st));
  ck_assert_str_eq(st.msg, "QUORUM needs 2 of 3 replicas of the new owners; 1 is alive");
  alive[3] = true;
  ck_assert(kv_quorum_possible(&q.need, t, 4, alive, "QUORUM", &st));
}
END_TEST

START_TEST(init_refuses_a_need_the_targets_cannot_meet) {
  kv_quorum_t q;
  start(&q, need_of(4, 0, 0, 0, 0), three_targets(), 3);
}
END_TEST

Suite *quorum_suite(void) {
  Suite *s = suite_create("quorum");
  TCase *orders = tcase_create("orders");
  tcase_add_test(orders, every_order_of_3_matches_oracle);
  tcase_add_test(orders, every_order_of_5_matches_oracle);
  tcase_set_timeout(orders, 60);
  suite_add_tcase(s, orders);
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, lost_replies_time_out_exactly_once);
  tcase_add_test(tc, answer_at_the_deadline_times_out_uncounted);
  tcase_add_test(tc, late_replies_are_recorded_for_lag);
  tcase_add_test(tc, late_error_after_ok_changes_nothing);
  tcase_add_test(tc, late_oks_after_failure_change_nothing);
  tcase_add_test(tc, duplicate_replies_are_ignored);
  tcase_add_test(tc, duplicate_errors_cannot_fail_a_request);
  tcase_add_test(tc, all_fails_on_the_first_error);
  tcase_add_test(tc, one_is_decided_by_the_first_ok);
  tcase_add_test(tc, each_quorum_needs_every_region);
  tcase_add_test(tc, local_quorum_counts_the_local_region);
  tcase_add_test(tc, primaries_are_counted);
  tcase_add_test(tc, finished_when_all_answered_or_deadline);
  tcase_add_test(tc, possible_for_every_level_shape);
  tcase_add_test(tc, failure_messages_are_exact);
  tcase_add_test(tc, a_moving_ring_needs_w_of_each_set);
  tcase_add_test_raise_signal(tc, init_refuses_a_need_the_targets_cannot_meet, SIGABRT);
  suite_add_tcase(s, tc);
  return s;
}
