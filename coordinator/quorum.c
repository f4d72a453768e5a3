/* quorum.c: counting replica answers against a consistency level (see quorum.h).
 *
 * A need is several counts that must all be met: the total, the coordinator's region, each
 * region (EACH_QUORUM) and the primaries (pr / pw). Each count is a "group": the targets
 * that belong to it and how many ok answers it needs. Every check below is the same loop
 * over groups, so a level shape never needs code of its own.
 *
 * States and moves (the function that makes each):
 *   PENDING --answer ok, every group met (kv_quorum_answer)---------------> OK
 *   PENDING --answer error, some group unreachable (kv_quorum_answer)-----> FAILED
 *   PENDING --now >= deadline (kv_quorum_tick, or kv_quorum_answer then)--> TIMED_OUT
 *   OK / FAILED / TIMED_OUT are final; later answers before the deadline are recorded.
 *
 * Invariants:
 *   - answers[i] moves from NONE at most once; ok_count and error_count count those moves.
 *   - Counting is recomputed from answers[] on each event. That is at most 11 groups times
 *     KV_TARGETS_MAX targets, cheaper than keeping per-group counters correct.
 *   - At init every target, answering ok, could meet the need (callers refuse with
 *     kv_quorum_possible first), so a PENDING request always has a way to reach OK.
 *   - With two sets (targets naming KV_SET_FROM / KV_SET_TO), each group is counted over the
 *     targets of each set in turn, and must be met in both; a target in both counts in both.
 *   - Once a group is unreachable it stays so: answers only turn pending into ok or error.
 *     That is why a FAILED request's message still names the right group after late oks. */
#include "quorum.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

#define REGION_NONE 0xFFu

/* Group order is the order messages report shortfalls in: the total first, since it is
 * what most levels are made of. */
enum {
  GROUP_TOTAL = 0,
  GROUP_LOCAL = 1,
  GROUP_REGION0 = 2,
  GROUP_PRIMARY = GROUP_REGION0 + KV_REGIONS_MAX,
  GROUP_COUNT
};

typedef struct {
  uint32_t members, ok, error, pending;
} tally_t;

static uint32_t group_need(const kv_need_t *need, int g) {
  if (g == GROUP_TOTAL) return need->total;
  if (g == GROUP_LOCAL) return need->local;
  if (g == GROUP_PRIMARY) return need->primaries;
  return need->per_region[g - GROUP_REGION0];
}

static bool group_has(const kv_target_t *t, int g) {
  if (g == GROUP_TOTAL) return true;
  if (g == GROUP_LOCAL) return t->local;
  if (g == GROUP_PRIMARY) return t->primary;
  return t->region == (uint32_t)(g - GROUP_REGION0);
}

/* The group's name in a sentence: "replicas", "replicas in region 1". */
static void group_noun(int g, char *buf, size_t n) {
  if (g == GROUP_TOTAL)
    snprintf(buf, n, "replicas");
  else if (g == GROUP_LOCAL)
    snprintf(buf, n, "local replicas");
  else if (g == GROUP_PRIMARY)
    snprintf(buf, n, "primary replicas");
  else
    snprintf(buf, n, "replicas in region %d", g - GROUP_REGION0);
}

/* The sets to count over: one (0, every target) unless some target names a set. */
static uint32_t set_count(const kv_target_t *targets, uint32_t count) {
  for (uint32_t i = 0; i < count; i++)
    if (targets[i].sets) return 2;
  return 1;
}

/* Set k of set_count: 0 is every target, else KV_SET_FROM (k = 0) or KV_SET_TO (k = 1). */
static uint8_t set_bit(uint32_t sets, uint32_t k) {
  return sets == 1 ? 0 : k == 0 ? KV_SET_FROM : KV_SET_TO;
}

static bool in_set(const kv_target_t *t, uint8_t set) { return set == 0 || (t->sets & set); }

/* The group's name in a sentence with its set: "replicas of the old owners". */
static void set_noun(int g, uint8_t set, char *buf, size_t n) {
  char noun[48];
  group_noun(g, noun, sizeof noun);
  snprintf(buf, n, "%s%s", noun, set == KV_SET_FROM ? " of the old owners"
                                 : set == KV_SET_TO ? " of the new owners" : "");
}

static tally_t tally(const kv_quorum_t *q, int g, uint8_t set) {
  tally_t t = {0, 0, 0, 0};
  for (uint32_t i = 0; i < q->target_count; i++) {
    if (!group_has(&q->targets[i], g) || !in_set(&q->targets[i], set)) continue;
    t.members++;
    if (q->answers[i] == KV_ANSWER_OK)
      t.ok++;
    else if (q->answers[i] == KV_ANSWER_ERROR)
      t.error++;
    else
      t.pending++;
  }
  return t;
}

/* The first group whose ok answers (plus, when counting_pending, every unanswered target)
 * fall short of its need, in the first set where one does (*set); -1 when none does. */
static int first_short_group(const kv_quorum_t *q, bool counting_pending, uint8_t *set) {
  uint32_t sets = set_count(q->targets, q->target_count);
  for (uint32_t k = 0; k < sets; k++)
    for (int g = 0; g < GROUP_COUNT; g++) {
      *set = set_bit(sets, k);
      tally_t t = tally(q, g, *set);
      uint32_t could = t.ok + (counting_pending ? t.pending : 0);
      if (could < group_need(&q->need, g)) return g;
    }
  return -1;
}

static bool need_met(const kv_quorum_t *q) {
  uint8_t set;
  return first_short_group(q, false, &set) < 0;
}

static bool need_unreachable(const kv_quorum_t *q) {
  uint8_t set;
  return first_short_group(q, true, &set) >= 0;
}

static void decide(kv_quorum_t *q, kv_quorum_outcome_t outcome, uint64_t now_ms) {
  KV_ASSERT(q->outcome == KV_QUORUM_PENDING);
  q->outcome = outcome;
  q->decided_ms = now_ms;
}

void kv_quorum_init(kv_quorum_t *q, const kv_need_t *need, const kv_target_t *targets,
                    uint32_t target_count, uint64_t now_ms, uint64_t deadline_ms) {
  KV_ASSERT(target_count >= 1 && target_count <= KV_TARGETS_MAX);
  KV_ASSERT(deadline_ms >= now_ms);
  /* A need of zero would be met before any event, and no move covers that. */
  KV_ASSERT(need->total >= 1);
  memset(q, 0, sizeof *q);
  q->need = *need;
  q->target_count = target_count;
  for (uint32_t i = 0; i < target_count; i++) {
    KV_ASSERT(targets[i].region < KV_REGIONS_MAX || targets[i].region == REGION_NONE);
    q->targets[i] = targets[i];
    q->answers[i] = KV_ANSWER_NONE;
  }
  q->start_ms = now_ms;
  q->deadline_ms = deadline_ms;
  q->outcome = KV_QUORUM_PENDING;
  KV_ASSERT(!need_unreachable(q));
}

bool kv_quorum_possible(const kv_need_t *need, const kv_target_t *targets,
                        uint32_t target_count, const bool *alive, const char *level_name,
                        kv_status_t *st) {
  KV_ASSERT(target_count <= KV_TARGETS_MAX);
  uint32_t sets = set_count(targets, target_count);
  for (uint32_t k = 0; k < sets; k++)
    for (int g = 0; g < GROUP_COUNT; g++) {
      uint8_t set = set_bit(sets, k);
      uint32_t members = 0, live = 0;
      for (uint32_t i = 0; i < target_count; i++) {
        if (!group_has(&targets[i], g) || !in_set(&targets[i], set)) continue;
        members++;
        if (alive[i]) live++;
      }
      uint32_t want = group_need(need, g);
      if (live >= want) continue;
      char noun[80];
      set_noun(g, set, noun, sizeof noun);
      kv_status_set(st, KV_EUNAVAILABLE, "%s needs %u of %u %s; %u %s alive", level_name, want,
                    members, noun, live, live == 1 ? "is" : "are");
      return false;
    }
  return true;
}

bool kv_quorum_answer(kv_quorum_t *q, uint32_t i, bool ok, uint64_t now_ms) {
  KV_ASSERT(i < q->target_count);
  /* Past the deadline nothing is counted (kv_quorum_finished); a request still waiting is
   * decided here rather than left for a tick the driver may deliver later. */
  if (now_ms >= q->deadline_ms) return kv_quorum_tick(q, now_ms);
  /* A target answers once; a duplicated or contradicting second message is noise. */
  if (q->answers[i] != KV_ANSWER_NONE) return false;
  q->answers[i] = ok ? KV_ANSWER_OK : KV_ANSWER_ERROR;
  if (ok) {
    q->ok_count++;
    q->last_ok_ms = now_ms;
  } else {
    q->error_count++;
  }
  if (q->outcome != KV_QUORUM_PENDING) return false;
  if (ok && need_met(q)) {
    decide(q, KV_QUORUM_OK, now_ms);
    return true;
  }
  if (!ok && need_unreachable(q)) {
    decide(q, KV_QUORUM_FAILED, now_ms);
    return true;
  }
  return false;
}

bool kv_quorum_tick(kv_quorum_t *q, uint64_t now_ms) {
  if (q->outcome != KV_QUORUM_PENDING || now_ms < q->deadline_ms) return false;
  decide(q, KV_QUORUM_TIMED_OUT, now_ms);
  return true;
}

bool kv_quorum_finished(const kv_quorum_t *q, uint64_t now_ms) {
  return q->ok_count + q->error_count == q->target_count || now_ms >= q->deadline_ms;
}

kv_err kv_quorum_failure(const kv_quorum_t *q, const char *level_name, const char *verb,
                         kv_status_t *st) {
  KV_ASSERT(q->outcome == KV_QUORUM_FAILED || q->outcome == KV_QUORUM_TIMED_OUT);
  bool timed_out = q->outcome == KV_QUORUM_TIMED_OUT;
  /* A timed-out request fell short on ok answers; a failed one on what could still come. */
  uint8_t set;
  int g = first_short_group(q, !timed_out, &set);
  KV_ASSERT(g >= 0);
  tally_t t = tally(q, g, set);
  char noun[80];
  set_noun(g, set, noun, sizeof noun);
  uint32_t want = group_need(&q->need, g);
  if (timed_out)
    return kv_status_set(st, KV_ETIMEDOUT, "%u of %u %s %s within %" PRIu64 " ms; %s needs %u",
                         t.ok, t.members, noun, verb, q->deadline_ms - q->start_ms, level_name,
                         want);
  return kv_status_set(st, KV_EUNAVAILABLE, "%u of %u %s %s, %u failed; %s needs %u", t.ok,
                       t.members, noun, verb, t.error, level_name, want);
}

int64_t kv_quorum_lag_ms(const kv_quorum_t *q) {
  if (q->outcome != KV_QUORUM_OK) return -1;
  return (int64_t)(q->last_ok_ms - q->decided_ms);
}
