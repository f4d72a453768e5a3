/* quorum.h: counting replica answers against a consistency level. Sans-IO: driven by events
 * (an answer from a target, the passing of time), it says when a request is decided.
 *
 * A request goes to a fixed set of targets (replicas). Each target answers at most once;
 * a second answer from it (a duplicated message) changes nothing. The request is decided
 *   OK      as soon as the ok answers meet every count in the need (total, local region,
 *           each region, primaries);
 *   FAILED  as soon as the targets still able to answer can no longer meet it (each error
 *           answer removes one), or when the deadline passes first (TIMED_OUT).
 * While the ring moves partitions (ring.h), a write goes to the primaries of two claims, and
 * each target says which it belongs to (sets: KV_SET_FROM, KV_SET_TO, or both): then every
 * count of the need must be met within each set, so W of the old owners and W of the new ones
 * acknowledge. Targets whose sets are all 0 are one set, as when the ring is stable.
 * After the decision the counter keeps recording answers (late acks), so the runtime can
 * measure replication lag: the time from the answer that decided OK to the last ok answer.
 * The request is finished when every target has answered or the deadline has passed.
 *
 * States and moves (the function that makes each):
 *   PENDING --answer ok, need met (kv_quorum_answer)------------> OK
 *   PENDING --answer error, need unreachable (kv_quorum_answer)--> FAILED
 *   PENDING --now >= deadline (kv_quorum_tick, kv_quorum_answer)-> TIMED_OUT
 *   any     --answers after the decision, before the deadline, are recorded, never change
 *               the outcome. */
#ifndef KV_QUORUM_H
#define KV_QUORUM_H

#include <stdbool.h>
#include <stdint.h>

#include "consistency.h"
#include "kv_err.h"
#include "kv_limits.h"

typedef struct {
  uint8_t node;      /* node index (for the runtime; the counter does not interpret it) */
  uint8_t region;    /* index into the keyspace's regions (kv_need_t.per_region), or 0xFF */
  bool primary;
  bool local;        /* in the coordinator's region */
  /* A fallback of a sloppy quorum (primary false): the node index of the primary it keeps
   * the key for. For the runtime; the counter does not interpret it. */
  uint8_t hint_for;
  /* Which claims of a moving ring it is a primary of (a fallback: its primary's); 0 for
   * every target when the request counts one set. */
  uint8_t sets;
} kv_target_t;

#define KV_SET_FROM 1u
#define KV_SET_TO 2u

typedef enum {
  KV_QUORUM_PENDING,
  KV_QUORUM_OK,
  KV_QUORUM_FAILED,
  KV_QUORUM_TIMED_OUT
} kv_quorum_outcome_t;

typedef enum { KV_ANSWER_NONE, KV_ANSWER_OK, KV_ANSWER_ERROR } kv_answer_t;

typedef struct {
  kv_need_t need;
  uint32_t target_count;
  kv_target_t targets[KV_TARGETS_MAX];
  kv_answer_t answers[KV_TARGETS_MAX];
  uint32_t ok_count, error_count;
  uint64_t start_ms, deadline_ms;
  kv_quorum_outcome_t outcome;
  uint64_t decided_ms;          /* when the outcome was set */
  uint64_t last_ok_ms;          /* when the latest ok answer arrived */
} kv_quorum_t;

/* Starts counting. targets are copied; target_count 1..KV_TARGETS_MAX. Every target
 * answering ok must meet need (kv_quorum_possible with all alive), else it asserts. */
void kv_quorum_init(kv_quorum_t *q, const kv_need_t *need, const kv_target_t *targets,
                    uint32_t target_count, uint64_t now_ms, uint64_t deadline_ms);
/* Whether the targets marked alive could meet the need if all of them answered ok. When
 * not, st says how many are needed and how many are alive ("QUORUM needs 2 of 3 replicas;
 * 1 is alive"), for an immediate UNAVAILABLE. alive has target_count entries. */
bool kv_quorum_possible(const kv_need_t *need, const kv_target_t *targets,
                        uint32_t target_count, const bool *alive, const char *level_name,
                        kv_status_t *st);
/* Records target i's answer at now_ms. True when this call decided the request. An answer
 * at or after the deadline is not counted; a request still pending then is decided
 * TIMED_OUT by this call, as kv_quorum_tick would. */
bool kv_quorum_answer(kv_quorum_t *q, uint32_t i, bool ok, uint64_t now_ms);
/* Applies the passing of time. True when the deadline decided the request (TIMED_OUT). */
bool kv_quorum_tick(kv_quorum_t *q, uint64_t now_ms);
/* Every target answered, or the deadline passed: nothing more will be counted. */
bool kv_quorum_finished(const kv_quorum_t *q, uint64_t now_ms);
/* For a decided FAILED/TIMED_OUT request: KV_EUNAVAILABLE / KV_ETIMEDOUT with a sentence
 * saying how many answered ok and how many were needed ("2 of 3 replicas acknowledged
 * within 2000 ms; ALL needs 3"). When the shortfall is in the local region, one region or
 * the primaries, the sentence counts that group ("1 of 2 replicas in region 1 ...").
 * verb: "acknowledged" (writes) or "answered" (reads). */
kv_err kv_quorum_failure(const kv_quorum_t *q, const char *level_name, const char *verb,
                         kv_status_t *st);
/* Replication lag of a finished OK request: last ok answer minus the deciding one, in ms;
 * -1 when the request was not OK. */
int64_t kv_quorum_lag_ms(const kv_quorum_t *q);

#endif
