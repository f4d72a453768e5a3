/* dvv.h: dotted version vectors in DVV-set form (Almeida et al.; DESIGN section 6).
 *
 * A key's state (kv_dvv_t) is a causal context -- the set of every write (dot) it has seen
 * -- plus the siblings: the concurrent versions not yet superseded, each with the dot of the
 * write that made it. A causal context (kv_cc_t) is a version vector (every dot (a, 1..n))
 * plus a "cloud" of loose dots that are not yet contiguous with it.
 *
 * Rules (S = siblings, C = context):
 *   covers(C, d)       d.counter <= C.vv[d.actor] or d in C.cloud
 *   put(S, C; ctx, v)  keep the siblings ctx does not cover, C := C join ctx, mint the dot
 *                      (self, n) with n = max(max counter of self in C + 1, floor), add
 *                      (self, 1..n) to C and the dot as a sibling. Claiming the counters
 *                      skipped below a floor is sound because only self mints self's dots,
 *                      and self's record of a key holds every dot self minted for it,
 *                      except those of a reaped tombstone (deleted: covering them is right).
 *                      A floor that grows with every mint on the node (its hybrid logical
 *                      clock) makes a dot minted after a reap new to every stale context
 *                      and stale replica, where counting on from 1 would mint old dots
 *                      again for new values.
 *                      The put is answered like a get of the result (Riak's return_body):
 *                      the live siblings and C. The client has then seen every version C
 *                      covers, so writing back with C drops nothing it was not shown, and
 *                      contexts stay as compact as the key's own. (Answering ctx + the new
 *                      dot instead grows a loose dot per write while another client writes
 *                      the key concurrently.)
 *   merge(A, B)        siblings in both, plus those of A that B's context does not cover,
 *                      plus those of B that A's context does not cover; contexts joined.
 *                      Commutative, associative and idempotent.
 *
 * Invariants (kv_dvv_check): vv sorted by actor, no duplicate actors, counters >= 1; cloud
 * sorted, every cloud dot above vv[actor] + 1 (contiguous dots are folded into vv);
 * siblings sorted by dot, unique, each covered by the context. Equal states have equal
 * representations, so kv_dvv_equal is a field-by-field compare.
 *
 * Memory: a kv_dvv_t owns the value bytes of its siblings (malloc'd); kv_dvv_deinit frees
 * them. kv_cc_t holds no heap. */
#ifndef KV_DVV_H
#define KV_DVV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv_err.h"
#include "kv_limits.h"

typedef struct {
  char node[KV_NODE_ID_BYTES_MAX + 1];
  uint64_t incarnation;
} kv_actor_t;

typedef struct {
  kv_actor_t actor;
  uint64_t counter; /* >= 1 */
} kv_dot_t;

typedef struct {
  kv_dot_t vv[KV_VV_ENTRIES_MAX];   /* (actor, n): every dot (actor, 1..n) */
  uint32_t vv_count;
  kv_dot_t cloud[KV_CLOUD_DOTS_MAX];
  uint32_t cloud_count;
} kv_cc_t;

typedef struct {
  kv_dot_t dot;
  uint64_t hlc;
  bool tombstone;
  uint8_t *value;                   /* owned; NULL when value_bytes is 0 */
  uint32_t value_bytes;
} kv_sibling_t;

typedef struct {
  kv_cc_t cc;
  kv_sibling_t sib[KV_SIBLINGS_MAX]; /* sorted by dot */
  uint32_t sib_count;
} kv_dvv_t;

typedef enum { KV_ORDER_EQUAL, KV_ORDER_BEFORE, KV_ORDER_AFTER, KV_ORDER_CONCURRENT } kv_order_t;

/* Actors and dots: total orders (node id, then incarnation, then counter). */
int kv_actor_cmp(const kv_actor_t *a, const kv_actor_t *b);
int kv_dot_cmp(const kv_dot_t *a, const kv_dot_t *b);

/* Causal contexts. */
void kv_cc_init(kv_cc_t *cc);
bool kv_cc_covers(const kv_cc_t *cc, const kv_dot_t *dot);
/* Adds one dot. KV_EBUSY when the vv or cloud is full (cc unchanged). */
kv_err kv_cc_add(kv_cc_t *cc, const kv_dot_t *dot);
/* dst := dst join src. KV_EBUSY when a limit would be passed (dst unchanged). */
kv_err kv_cc_join(kv_cc_t *dst, const kv_cc_t *src);
/* Compares the dot sets: EQUAL, BEFORE (a is a strict subset of b), AFTER, CONCURRENT. */
kv_order_t kv_cc_compare(const kv_cc_t *a, const kv_cc_t *b);
/* The largest counter of actor in cc (vv or cloud), 0 if none. */
uint64_t kv_cc_max_counter(const kv_cc_t *cc, const kv_actor_t *actor);

/* Encodes as a record.proto CausalContext. *out is malloc'd, the caller frees it. */
kv_err kv_cc_encode(const kv_cc_t *cc, uint8_t **out, size_t *out_bytes);
/* Decodes client-supplied bytes; 0 bytes is the empty context. KV_EINVAL with a sentence
 * ("context is malformed ...") on bad bytes, out-of-order or over-limit contents. */
kv_err kv_cc_decode(const uint8_t *buf, size_t bytes, kv_cc_t *out, kv_status_t *st);

/* Objects. */
void kv_dvv_init(kv_dvv_t *o);
void kv_dvv_deinit(kv_dvv_t *o);
/* dst (uninitialized) := deep copy of src. KV_ENOMEM on allocation failure. */
kv_err kv_dvv_copy(kv_dvv_t *dst, const kv_dvv_t *src);

/* Put with context at a replica acting as `self` (see the rules above), minting a counter of
 * at least floor (kvnode passes its hybrid logical clock: DESIGN section 6, "counters").
 * value is copied; tombstone puts pass value NULL, 0 bytes. On success the client is answered with o's
 * live siblings and o->cc. KV_EBUSY with a sentence when the object would have more than
 * siblings_max siblings or a context limit would be passed, KV_EINVAL when ctx or the object
 * covers self's last counter (UINT64_MAX: no dot is left to mint); the object is then
 * unchanged. */
kv_err kv_dvv_put(kv_dvv_t *o, const kv_actor_t *self, uint64_t floor, const kv_cc_t *ctx,
                  const void *value, uint32_t value_bytes, bool tombstone, uint64_t hlc, uint32_t siblings_max,
                  kv_status_t *st);
/* dst := dst merge src (src unchanged, values copied). KV_EBUSY when a limit would be
 * passed (dst unchanged). */
kv_err kv_dvv_merge(kv_dvv_t *dst, const kv_dvv_t *src, kv_status_t *st);
/* Siblings that are not tombstones. */
uint32_t kv_dvv_live_count(const kv_dvv_t *o);
bool kv_dvv_equal(const kv_dvv_t *a, const kv_dvv_t *b);
/* Checks the invariants above; false with a sentence in st when one is broken. */
bool kv_dvv_check(const kv_dvv_t *o, kv_status_t *st);

/* Encodes as a record.proto Record. *out is malloc'd, the caller frees it. */
kv_err kv_dvv_encode(const kv_dvv_t *o, uint8_t **out, size_t *out_bytes);
/* Decodes a Record into *out (uninitialized on entry; initialized on success).
 * KV_ECORRUPT with a sentence when the bytes are not a well-formed Record. */
kv_err kv_dvv_decode(const uint8_t *buf, size_t bytes, kv_dvv_t *out, kv_status_t *st);

#endif
