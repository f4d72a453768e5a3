/* conflict.h: conflict handlers, what a key's concurrent versions resolve to (DESIGN section 9).
 *
 * A handler is one function: it is given the key's concurrent versions (siblings) and says
 * either which of them to keep (KEEP) or the one value that replaces them all (MERGE).
 *
 * Contract (every handler, built-in or plugin):
 *   - deterministic: the same set of versions, in any order, gives the same result on any
 *     node, whatever the node's clock or state. It may look only at what it is given.
 *   - non-blocking: no I/O, no locks that another thread may hold for long, no sleeping;
 *     it runs on request paths with the coordinator's lock held.
 *   - total: it always answers. A KEEP keeps at least one version. A handler that returns
 *     non-zero (or keeps nothing) is treated as `siblings` (keep all) and logged.
 *   - honest: a MERGE marks in `lost` every version whose content its value does not carry,
 *     so the journal can record it; a KEEP loses every version it does not keep, except
 *     those whose content equals a kept one.
 * tunekv sorts the versions by dot before calling, so even a handler that depends on order
 * sees one order; the built-ins do not depend on it (their tests permute the input).
 *
 * Built-ins:
 *   siblings         keep all (the client resolves and writes back with the context).
 *   lww              keep the one with the highest hybrid logical clock timestamp; ties go to
 *                    the larger dot (node id, then incarnation, then counter).
 *   region-priority  keep the one from the highest-priority region (the keyspace's
 *                    region_priority list, first = highest; regions not listed rank below all
 *                    listed ones, equal among themselves); among those, lww.
 *   set-union        values are sets: newline-separated members. The result is a MERGE whose
 *                    value is the union, so no version's content is lost.
 *
 * set-union and removals. A member is removed by writing the line "-x" (a removal marker)
 * in place of the line "x"; clients keep the markers they read and write them back. The
 * union of versions is: members = every "x" line of any live version, minus every x that
 * has a "-x" line in any live version; the result's value lists those members, sorted
 * bytewise, then every removal marker, sorted, each line ending in '\n'. So a stale
 * version that still holds x, concurrent with the version that removed it, cannot bring x
 * back: the marker travels with the union. Concurrent add and remove of one member: the
 * remove wins. A member may be added again after its removal by a write whose context
 * covers every version holding the marker and which drops the marker (read-modify-write
 * from a resolved read does exactly that). Markers are never collected by tunekv. Empty
 * lines are ignored; a member cannot begin with '-'. Tombstones (deletes of the whole key)
 * carry no members: concurrent with adds they lose to them, alone they stay a delete.
 *
 * How a resolution becomes state (the causal soundness argument; see also node.h, coord.h):
 * stored records only ever change by DVV put and DVV merge (dvv.h), so the merge laws hold
 * whatever the handlers do. A handler's result is
 *   - on a read, only the answer: the kept (or merged) version with the whole merged
 *     context. A client that writes back with that context supersedes every version the
 *     answer discarded, exactly as it would had it seen them.
 *   - made durable by a write: when the result is a single version and the coordinator is a
 *     replica of the key, it writes the result back as an ordinary put whose context is the
 *     merged context (covering every discarded dot, so no discarded version can come back by
 *     merge), minting one dot on itself, and read repair spreads that record. The written
 *     version keeps the highest timestamp of the versions it resolves, so it orders against
 *     later concurrent writes as the winner did.
 * Two coordinators resolving the same set at once each mint a dot for the same value (the
 * handler is deterministic): two equal siblings, which the next resolution collapses.
 * Nothing is ever dropped by a replica merge itself: it is a pure DVV merge; only the
 * sibling cap (kv_node) resolves there, and again by a put of the result.
 *
 * Plugins: a shared object exporting
 *     const kv_conflict_plugin_t *tunekv_conflict_plugin(void);
 * whose abi_version is KV_CONFLICT_ABI_VERSION. The types below up to kv_conflict_plugin_t
 * are that ABI: plain C, no tunekv internals. kvnode/plugin.c loads them.
 *
 * Memory: everything a handler is given is borrowed for the call. A MERGE value is malloc'd
 * by the handler and freed by tunekv with free(). */
#ifndef KV_CONFLICT_H
#define KV_CONFLICT_H

#include <stdbool.h>
#include <stdint.h>

/* ---- the handler ABI (version 1) ------------------------------------------------------ */

#define KV_CONFLICT_ABI_VERSION 1u
#define KV_CONFLICT_PLUGIN_SYMBOL "tunekv_conflict_plugin"
#define KV_CONFLICT_PLUGIN_PREFIX "plugin:"

/* One concurrent version of a key. */
typedef struct {
  const uint8_t *value;     /* NULL when value_bytes is 0 */
  uint32_t value_bytes;
  bool tombstone;           /* a delete (value_bytes is 0) */
  const char *node;         /* the dot: the node id of the actor that minted it, ... */
  uint64_t incarnation;     /* ... its incarnation, ... */
  uint64_t counter;         /* ... and the counter */
  uint64_t hlc;             /* hybrid logical clock timestamp of the write (hlc.h) */
  const char *region;       /* origin region: the config's region of `node` ("" if unknown) */
  bool suspect;             /* `node`'s clock was off by more than max_clock_skew_ms */
} kv_conflict_version_t;

/* What the keyspace says about resolving. */
typedef struct {
  const char *keyspace;
  const char *const *region_priority; /* highest first */
  uint32_t region_priority_count;
} kv_conflict_env_t;

typedef enum { KV_CONFLICT_KEEP = 0, KV_CONFLICT_MERGE = 1 } kv_conflict_kind_t;

/* A handler's answer. The caller zeroes it and sets keep and lost to n falses each. */
typedef struct {
  kv_conflict_kind_t kind;
  bool *keep;               /* KEEP: true for each version kept (at least one) */
  bool *lost;               /* MERGE: true for each version whose content value lacks */
  uint8_t *value;           /* MERGE: malloc'd (NULL when value_bytes is 0) */
  uint32_t value_bytes;
  bool tombstone;           /* MERGE: the result is a delete */
} kv_conflict_result_t;

/* Resolves n >= 2 versions. 0 on success; anything else means "could not", and the caller
 * keeps every version. */
typedef int (*kv_conflict_fn)(const kv_conflict_env_t *env, const kv_conflict_version_t *v,
                              uint32_t n, kv_conflict_result_t *out);

typedef struct {
  uint32_t abi_version;     /* KV_CONFLICT_ABI_VERSION; first, so any version can be read */
  const char *name;         /* for logs */
  kv_conflict_fn resolve;
} kv_conflict_plugin_t;

typedef const kv_conflict_plugin_t *(*kv_conflict_plugin_entry_fn)(void);

/* ---- inside tunekv ---------------------------------------------------------------------- */

#ifndef KV_CONFLICT_ABI_ONLY

#include "config.h"
#include "dvv.h"
#include "kv_err.h"
#include "kv_limits.h"

/* A handler under its name ("lww", or "plugin:/path/x.so"). Lives as long as the process. */
typedef struct {
  char name[KV_HANDLER_BYTES_MAX + 1];
  kv_conflict_fn resolve;
} kv_conflict_handler_t;

/* "siblings, lww, region-priority, set-union": for messages. A static string. */
const char *kv_conflict_builtin_names(void);
bool kv_conflict_is_builtin(const char *name);
/* The handler with this name: a built-in or a registered plugin; NULL when unknown. */
const kv_conflict_handler_t *kv_conflict_find(const char *name);
/* Adds a handler under name (copied). At start-up only, before any other thread runs: the
 * registry is read without a lock. KV_EBUSY past KV_HANDLERS_MAX; KV_EINVAL when the name is
 * taken or too long. */
kv_err kv_conflict_register(const char *name, kv_conflict_fn resolve, kv_status_t *st);
/* Forgets every registered plugin (tests). */
void kv_conflict_registry_reset(void);

/* The built-ins, callable directly (tests). */
int kv_conflict_siblings(const kv_conflict_env_t *env, const kv_conflict_version_t *v,
                         uint32_t n, kv_conflict_result_t *out);
int kv_conflict_lww(const kv_conflict_env_t *env, const kv_conflict_version_t *v, uint32_t n,
                    kv_conflict_result_t *out);
int kv_conflict_region_priority(const kv_conflict_env_t *env, const kv_conflict_version_t *v,
                                uint32_t n, kv_conflict_result_t *out);
int kv_conflict_set_union(const kv_conflict_env_t *env, const kv_conflict_version_t *v,
                          uint32_t n, kv_conflict_result_t *out);

/* Where the versions of a state come from: the config's node regions and which nodes'
 * clocks are suspect (suspect[i] for cfg->nodes[i]; NULL: none). Borrowed. */
typedef struct {
  const kv_config_t *cfg;
  const char *keyspace;
  const bool *suspect;
} kv_conflict_ctx_t;

/* The outcome of resolving one DVV state's siblings (tombstones included). */
typedef struct {
  bool changed;                       /* the answer is not the state's siblings as they are */
  bool single;                        /* the result is one version (a write-back candidate) */
  bool suspect;                       /* a lost or kept version came from a suspect clock */
  bool keep[KV_SIBLINGS_MAX];         /* which siblings the answer keeps (not for a merge) */
  bool lost[KV_SIBLINGS_MAX];         /* which siblings' content the result does not carry */
  uint32_t lost_count;
  bool merged;                        /* the result is a new value, in result */
  kv_sibling_t result;                /* single: the resolved version (value malloc'd; dot is
                                         the largest input dot, hlc the largest input hlc) */
} kv_conflict_outcome_t;

/* Runs h over state's siblings. A state of fewer than two siblings is unchanged without
 * calling h. A handler failure (or an answer breaking the contract) keeps everything, with
 * a warning in the log. *out is to be freed with kv_conflict_outcome_free. */
void kv_conflict_resolve(const kv_conflict_handler_t *h, const kv_conflict_ctx_t *ctx,
                         const kv_dvv_t *state, kv_conflict_outcome_t *out);
void kv_conflict_outcome_free(kv_conflict_outcome_t *out);
/* *answer (uninitialized) := the state as the outcome shows it: state's context with the
 * kept siblings, or with the one merged version. KV_ENOMEM. */
kv_err kv_conflict_answer(const kv_dvv_t *state, const kv_conflict_outcome_t *o,
                          kv_dvv_t *answer);

#endif
#endif
