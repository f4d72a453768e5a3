/* journal.h: the conflict journal: every version a conflict handler discards, so nothing is
 * lost silently (DESIGN section 9; kvctl conflicts lists it).
 *
 * An entry is one resolution that lost something: when, which key, which handler, why it ran
 * ("read": a read's answer resolved; "write-back": a coordinator wrote a read's resolution
 * back; "sibling cap": a write or merge passed the keyspace's siblings_max and its
 * fallback_handler resolved), the version kept (for a merge: the merged value, with no dot),
 * and every version discarded, with its dot, timestamp and value. `suspect` says a version
 * involved came from a node whose clock was off by more than max_clock_skew_ms, so a
 * timestamp decision may have gone the wrong way.
 *
 * Bounds: at most KV_JOURNAL_ENTRIES_MAX entries and KV_JOURNAL_BYTES_MAX bytes of values and
 * keys; past either the oldest entries go (counted in `evicted`). Each value is kept up to
 * KV_JOURNAL_VALUE_BYTES_MAX bytes (`truncated` past that). One resolution seen again (the
 * same key and the same discarded dots, as every read of an unresolved key sees it) is
 * recorded once. Per handler, a counter of discarded versions (for metrics) survives
 * eviction. Every new entry is also handed to an optional sink (kvnode logs it; the
 * simulator keeps it past crashes, since the journal lives in memory).
 *
 * Thread-safe (one mutex). Times are given by the caller (no clock reads here). */
#ifndef KV_JOURNAL_H
#define KV_JOURNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conflict.h"
#include "dvv.h"
#include "kv_limits.h"

typedef struct {
  bool has_dot;                 /* false for a merged value */
  kv_dot_t dot;
  uint64_t hlc;
  bool tombstone;
  uint8_t *value;               /* owned; NULL when value_bytes is 0 */
  uint32_t value_bytes;         /* kept bytes (at most KV_JOURNAL_VALUE_BYTES_MAX) */
  bool truncated;               /* the value was longer */
} kv_journal_version_t;

typedef struct {
  uint64_t seq;                 /* 1, 2, ... in the order recorded */
  uint64_t time_ms;             /* wall clock */
  char keyspace[KV_KEYSPACE_NAME_BYTES_MAX + 1];
  uint8_t *key;                 /* owned */
  size_t key_bytes;
  char handler[KV_HANDLER_BYTES_MAX + 1];
  char reason[16];              /* "read", "write-back", "sibling cap" */
  bool suspect;
  kv_journal_version_t kept;
  kv_journal_version_t *discarded; /* owned, discarded_count of them */
  uint32_t discarded_count;
  size_t bytes;                 /* what it counts against KV_JOURNAL_BYTES_MAX */
} kv_journal_entry_t;

typedef struct {
  char handler[KV_HANDLER_BYTES_MAX + 1];
  uint64_t discarded;           /* versions discarded by this handler since start */
} kv_journal_count_t;

/* Called with every new entry (borrowed for the call), under the journal's lock. */
typedef void (*kv_journal_sink_fn)(void *arg, const kv_journal_entry_t *e);

typedef struct {
  pthread_mutex_t lock;
  kv_journal_entry_t *ring;     /* KV_JOURNAL_ENTRIES_MAX slots */
  uint32_t head, count;
  size_t bytes;
  uint64_t next_seq;
  uint64_t evicted;
  kv_journal_count_t counts[KV_HANDLERS_MAX];
  uint32_t count_n;
  kv_journal_sink_fn sink;
  void *sink_arg;
} kv_journal_t;

kv_err kv_journal_init(kv_journal_t *j);
void kv_journal_deinit(kv_journal_t *j);
/* Sets the sink (NULL: none). Before the journal is shared between threads. */
void kv_journal_set_sink(kv_journal_t *j, kv_journal_sink_fn sink, void *arg);

/* Records what resolving state with handler `handler` lost, per outcome o (nothing when
 * o->lost_count is 0). kept: the version kept (o->result when o->single, else NULL: the
 * entry then names none). True when a new entry was made (false for nothing lost or a
 * repeat). All arguments are borrowed for the call. */
bool kv_journal_record(kv_journal_t *j, uint64_t now_ms, const char *keyspace,
                       const uint8_t *key, size_t key_bytes, const char *handler,
                       const char *reason, const kv_dvv_t *state,
                       const kv_conflict_outcome_t *o);

/* Copies the entries with seq > after, oldest first, until their bytes pass max_bytes (at
 * least one is copied when any is there), into *out (malloc'd; free with
 * kv_journal_entries_free). *more: entries remain after the last copied. */
kv_err kv_journal_list(kv_journal_t *j, uint64_t after, size_t max_bytes,
                       kv_journal_entry_t **out, uint32_t *n, bool *more);
void kv_journal_entries_free(kv_journal_entry_t *e, uint32_t n);
/* The per-handler counters (copied; up to KV_HANDLERS_MAX) and the evicted count. */
uint32_t kv_journal_counts(kv_journal_t *j, kv_journal_count_t *out, uint64_t *evicted);

#endif
