/* dvv.c: DVV-set objects and their causal contexts (DESIGN section 6; the rules are in dvv.h).
 *
 * Notes on the design
 *  1. Every kv_cc_t this file hands out is canonical: vv sorted by actor with counters >= 1,
 *     cloud sorted by dot with each dot above vv[actor] + 1. cc_normalize is the one place
 *     that folds contiguous cloud dots into the vv and drops covered ones, and every join and
 *     add goes through it, so equal dot sets always have equal representations.
 *  2. Siblings are sorted by dot, unique, and covered by the object's context. Put and merge
 *     build the new sibling list in sorted order, so kv_dvv_equal can compare field by field.
 *  3. Mutations are all-or-nothing: put and merge compute the new context and sibling list in
 *     scratch space, check every limit and copy every value first, and only then commit. A
 *     KV_EBUSY or KV_ENOMEM leaves the object exactly as it was.
 *  4. Decoding trusts nothing. It bounds every count and string before copying, then runs the
 *     same checks as kv_dvv_check. It rejects non-canonical input instead of repairing it: our
 *     encoder only writes canonical forms, so anything else is damage, and rejecting keeps
 *     decode(encode(x)) == x.
 *
 * Scratch space lives on the stack (a join uses about 30 KB, kv_dvv_put about 50 KB at most),
 * so nothing here allocates except to copy values and to return encodings.
 */
#include "dvv.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "record.pb-c.h"

/* ---------------------------------------------------------------- actors and dots ---- */

int kv_actor_cmp(const kv_actor_t *a, const kv_actor_t *b) {
  int c = strcmp(a->node, b->node);
  if (c != 0) return c < 0 ? -1 : 1;
  if (a->incarnation != b->incarnation) return a->incarnation < b->incarnation ? -1 : 1;
  return 0;
}

int kv_dot_cmp(const kv_dot_t *a, const kv_dot_t *b) {
  int c = kv_actor_cmp(&a->actor, &b->actor);
  if (c != 0) return c;
  if (a->counter != b->counter) return a->counter < b->counter ? -1 : 1;
  return 0;
}

/* A node id must be non-empty and NUL-terminated inside its array before strcmp may touch it. */
static bool actor_valid(const kv_actor_t *a) {
  return a->node[0] != '\0' && memchr(a->node, '\0', sizeof a->node) != NULL;
}

static int dot_actor_cmp(const kv_dot_t *a, const kv_dot_t *b) {
  return kv_actor_cmp(&a->actor, &b->actor);
}

/* bsearch adapters: the key is an actor for vv lookups and a dot for cloud lookups. */
static int bsearch_actor(const void *key, const void *elem) {
  return kv_actor_cmp(key, &((const kv_dot_t *)elem)->actor);
}

static int bsearch_dot(const void *key, const void *elem) { return kv_dot_cmp(key, elem); }

/* --------------------------------------------------------------- causal contexts ---- */

/* A context before its limits are checked: a join of two full contexts can name up to twice
 * as many actors and loose dots as a kv_cc_t holds. */
typedef struct {
  kv_dot_t vv[2 * KV_VV_ENTRIES_MAX];
  uint32_t vv_count;
  kv_dot_t cloud[2 * KV_CLOUD_DOTS_MAX];
  uint32_t cloud_count;
} cc_wide_t;

void kv_cc_init(kv_cc_t *cc) { memset(cc, 0, sizeof *cc); }

static uint64_t vv_counter(const kv_cc_t *cc, const kv_actor_t *actor) {
  const kv_dot_t *e = bsearch(actor, cc->vv, cc->vv_count, sizeof cc->vv[0], bsearch_actor);
  return e != NULL ? e->counter : 0;
}

bool kv_cc_covers(const kv_cc_t *cc, const kv_dot_t *dot) {
  return dot->counter <= vv_counter(cc, &dot->actor) ||
         bsearch(dot, cc->cloud, cc->cloud_count, sizeof cc->cloud[0], bsearch_dot) != NULL;
}

uint64_t kv_cc_max_counter(const kv_cc_t *cc, const kv_actor_t *actor) {
  uint64_t max = vv_counter(cc, actor);
  for (uint32_t i = 0; i < cc->cloud_count; i++) {
    const kv_dot_t *d = &cc->cloud[i];
    if (d->counter > max && kv_actor_cmp(&d->actor, actor) == 0) max = d->counter;
  }
  return max;
}

/* out := a union b for two sorted arrays; entries that cmp calls equal become one, at the
 * larger counter (for vv entries that is the join; for cloud dots the two are identical). */
static uint32_t dots_union(const kv_dot_t *a, uint32_t na, const kv_dot_t *b, uint32_t nb,
                           int (*cmp)(const kv_dot_t *, const kv_dot_t *), kv_dot_t *out) {
  uint32_t i = 0, j = 0, n = 0;
  while (i < na || j < nb) {
    int c = i == na ? 1 : j == nb ? -1 : cmp(&a[i], &b[j]);
    out[n] = c <= 0 ? a[i] : b[j];
    if (c == 0 && b[j].counter > out[n].counter) out[n].counter = b[j].counter;
    i += c <= 0;
    j += c >= 0;
    n++;
  }
  return n;
}

/* out := in in canonical form. The cloud is sorted by actor, then counter, so one pass over
 * an actor's cloud dots folds a whole contiguous run into its vv counter; the first gap
 * stops the run, and every dot after it stays loose. An actor may have cloud dots and no vv
 * entry (its vv counter is then 0). */
static void cc_normalize(const cc_wide_t *in, cc_wide_t *out) {
  uint32_t i = 0, j = 0;
  out->vv_count = out->cloud_count = 0;
  while (i < in->vv_count || j < in->cloud_count) {
    const kv_actor_t *actor =
        j == in->cloud_count ||
                (i < in->vv_count && dot_actor_cmp(&in->vv[i], &in->cloud[j]) <= 0)
            ? &in->vv[i].actor
            : &in->cloud[j].actor;
    uint64_t n = 0;
    if (i < in->vv_count && kv_actor_cmp(&in->vv[i].actor, actor) == 0) n = in->vv[i++].counter;
    for (; j < in->cloud_count && kv_actor_cmp(&in->cloud[j].actor, actor) == 0; j++) {
      if (in->cloud[j].counter == n + 1) {
        n++;
      } else if (in->cloud[j].counter > n) {
        out->cloud[out->cloud_count++] = in->cloud[j];
      }
    }
    if (n > 0) out->vv[out->vv_count++] = (kv_dot_t){.actor = *actor, .counter = n};
  }
}

/* dst := dst join src, or KV_EBUSY with a sentence naming `what` and dst unchanged. */
static kv_err cc_join_checked(kv_cc_t *dst, const kv_cc_t *src, const char *what,
                              kv_status_t *st) {
  cc_wide_t u, w;
  u.vv_count = dots_union(dst->vv, dst->vv_count, src->vv, src->vv_count, dot_actor_cmp, u.vv);
  u.cloud_count =
      dots_union(dst->cloud, dst->cloud_count, src->cloud, src->cloud_count, kv_dot_cmp, u.cloud);
  cc_normalize(&u, &w);
  if (w.vv_count > KV_VV_ENTRIES_MAX) {
    return kv_status_set(st, KV_EBUSY, "%s would name %u actors; the limit is %u", what,
                         w.vv_count, KV_VV_ENTRIES_MAX);
  }
  if (w.cloud_count > KV_CLOUD_DOTS_MAX) {
    return kv_status_set(st, KV_EBUSY, "%s would hold %u loose dots; the limit is %u", what,
                         w.cloud_count, KV_CLOUD_DOTS_MAX);
  }
  memcpy(dst->vv, w.vv, w.vv_count * sizeof w.vv[0]);
  dst->vv_count = w.vv_count;
  memcpy(dst->cloud, w.cloud, w.cloud_count * sizeof w.cloud[0]);
  dst->cloud_count = w.cloud_count;
  return KV_OK;
}

/* A single dot is a context whose cloud holds just that dot; the join's normalize folds it
 * into the vv when it is contiguous. */
static kv_err cc_add_checked(kv_cc_t *cc, const kv_dot_t *dot, const char *what,
                             kv_status_t *st) {
  KV_ASSERT(dot->counter >= 1 && actor_valid(&dot->actor));
  kv_cc_t one;
  one.vv_count = 0;
  one.cloud_count = 1;
  one.cloud[0] = *dot;
  return cc_join_checked(cc, &one, what, st);
}

kv_err kv_cc_add(kv_cc_t *cc, const kv_dot_t *dot) {
  return cc_add_checked(cc, dot, "causal context", NULL);
}

kv_err kv_cc_join(kv_cc_t *dst, const kv_cc_t *src) {
  return cc_join_checked(dst, src, "causal context", NULL);
}

/* Every dot of a is in b. b is canonical, so it holds a's whole run (x, 1..n) exactly when
 * b.vv[x] >= n: had b held the dot b.vv[x] + 1 in its cloud, it would have been folded. */
static bool cc_subset(const kv_cc_t *a, const kv_cc_t *b) {
  for (uint32_t i = 0; i < a->vv_count; i++) {
    if (a->vv[i].counter > vv_counter(b, &a->vv[i].actor)) return false;
  }
  for (uint32_t i = 0; i < a->cloud_count; i++) {
    if (!kv_cc_covers(b, &a->cloud[i])) return false;
  }
  return true;
}

kv_order_t kv_cc_compare(const kv_cc_t *a, const kv_cc_t *b) {
  bool a_in_b = cc_subset(a, b), b_in_a = cc_subset(b, a);
  if (a_in_b && b_in_a) return KV_ORDER_EQUAL;
  if (a_in_b) return KV_ORDER_BEFORE;
  if (b_in_a) return KV_ORDER_AFTER;
  return KV_ORDER_CONCURRENT;
}

static bool cc_equal(const kv_cc_t *a, const kv_cc_t *b) {
  if (a->vv_count != b->vv_count || a->cloud_count != b->cloud_count) return false;
  for (uint32_t i = 0; i < a->vv_count; i++) {
    if (kv_dot_cmp(&a->vv[i], &b->vv[i]) != 0) return false;
  }
  for (uint32_t i = 0; i < a->cloud_count; i++) {
    if (kv_dot_cmp(&a->cloud[i], &b->cloud[i]) != 0) return false;
  }
  return true;
}

/* ------------------------------------------------------------------ invariants ---- */

/* Each check below returns false with the broken invariant as a sentence fragment in why;
 * the public callers prefix it with what was being checked. */

static bool cc_valid(const kv_cc_t *cc, kv_status_t *why) {
  if (cc->vv_count > KV_VV_ENTRIES_MAX || cc->cloud_count > KV_CLOUD_DOTS_MAX) {
    kv_status_set(why, KV_ECORRUPT,
                  "it has %u vv entries and %u loose dots; the limits are %u and %u",
                  cc->vv_count, cc->cloud_count, KV_VV_ENTRIES_MAX, KV_CLOUD_DOTS_MAX);
    return false;
  }
  for (uint32_t i = 0; i < cc->vv_count; i++) {
    const kv_dot_t *d = &cc->vv[i];
    if (!actor_valid(&d->actor) || d->counter == 0) {
      kv_status_set(why, KV_ECORRUPT, "vv entry %u has an empty node id or a zero counter", i);
      return false;
    }
    if (i > 0 && dot_actor_cmp(&cc->vv[i - 1], d) >= 0) {
      kv_status_set(why, KV_ECORRUPT, "vv entry %u (%s/%" PRIu64 ") is out of order or repeated",
                    i, d->actor.node, d->actor.incarnation);
      return false;
    }
  }
  /* The vv is now known sorted, so vv_counter's binary search is sound. */
  for (uint32_t i = 0; i < cc->cloud_count; i++) {
    const kv_dot_t *d = &cc->cloud[i];
    if (!actor_valid(&d->actor)) {
      kv_status_set(why, KV_ECORRUPT, "loose dot %u has an empty node id", i);
      return false;
    }
    if (i > 0 && kv_dot_cmp(&cc->cloud[i - 1], d) >= 0) {
      kv_status_set(why, KV_ECORRUPT, "loose dot %u (%s/%" PRIu64 ":%" PRIu64
                    ") is out of order or repeated", i, d->actor.node, d->actor.incarnation,
                    d->counter);
      return false;
    }
    uint64_t n = vv_counter(cc, &d->actor);
    if (d->counter <= n + 1) {
      kv_status_set(why, KV_ECORRUPT, "loose dot %u (%s/%" PRIu64 ":%" PRIu64
                    ") is not above its vv counter %" PRIu64 " + 1", i, d->actor.node,
                    d->actor.incarnation, d->counter, n);
      return false;
    }
  }
  return true;
}

static bool sibling_valid(const kv_dvv_t *o, uint32_t i, kv_status_t *why) {
  const kv_sibling_t *s = &o->sib[i];
  const char *broken = NULL;
  if (!actor_valid(&s->dot.actor) || s->dot.counter == 0) {
    broken = "has an empty node id or a zero counter";
  } else if (i > 0 && kv_dot_cmp(&o->sib[i - 1].dot, &s->dot) >= 0) {
    broken = "is out of order or repeated";
  } else if (!kv_cc_covers(&o->cc, &s->dot)) {
    broken = "is not covered by the context";
  } else if ((s->value == NULL) != (s->value_bytes == 0)) {
    broken = "has a value pointer that disagrees with its length";
  } else if (s->tombstone && s->value_bytes > 0) {
    broken = "is a tombstone with a value";
  }
  if (broken == NULL) return true;
  kv_status_set(why, KV_ECORRUPT, "sibling %u %s", i, broken);
  return false;
}

static bool dvv_valid(const kv_dvv_t *o, kv_status_t *why) {
  if (!cc_valid(&o->cc, why)) return false;
  if (o->sib_count > KV_SIBLINGS_MAX) {
    kv_status_set(why, KV_ECORRUPT, "it has %u siblings; the limit is %u", o->sib_count,
                  KV_SIBLINGS_MAX);
    return false;
  }
  for (uint32_t i = 0; i < o->sib_count; i++) {
    if (!sibling_valid(o, i, why)) return false;
  }
  return true;
}

bool kv_dvv_check(const kv_dvv_t *o, kv_status_t *st) {
  kv_status_t why;
  if (dvv_valid(o, &why)) return true;
  kv_status_set(st, KV_ECORRUPT, "object breaks its invariants: %s", why.msg);
  return false;
}

/* -------------------------------------------------------------------- objects ---- */

void kv_dvv_init(kv_dvv_t *o) { memset(o, 0, sizeof *o); }

void kv_dvv_deinit(kv_dvv_t *o) {
  for (uint32_t i = 0; i < o->sib_count; i++) free(o->sib[i].value);
  o->sib_count = 0;
}

/* *out := a malloc'd copy of n bytes, or NULL when n is 0 (the kv_sibling_t convention). */
static kv_err value_dup(const void *v, uint32_t n, uint8_t **out) {
  *out = NULL;
  if (n == 0) return KV_OK;
  *out = malloc(n);
  if (*out == NULL) return KV_ENOMEM;
  memcpy(*out, v, n);
  return KV_OK;
}

kv_err kv_dvv_copy(kv_dvv_t *dst, const kv_dvv_t *src) {
  dst->cc = src->cc;
  dst->sib_count = 0;
  for (uint32_t i = 0; i < src->sib_count; i++) {
    dst->sib[i] = src->sib[i];
    if (value_dup(src->sib[i].value, src->sib[i].value_bytes, &dst->sib[i].value) != KV_OK) {
      kv_dvv_deinit(dst);
      return KV_ENOMEM;
    }
    dst->sib_count++;
  }
  return KV_OK;
}

/* Orders two siblings by everything but their dot. Two replicas should never hold different
 * writes under one dot; if a bug elsewhere makes them, merge keeps the smaller so replicas
 * still converge instead of flapping. */
static int sibling_content_cmp(const kv_sibling_t *a, const kv_sibling_t *b) {
  if (a->tombstone != b->tombstone) return a->tombstone ? -1 : 1;
  if (a->hlc != b->hlc) return a->hlc < b->hlc ? -1 : 1;
  if (a->value_bytes != b->value_bytes) return a->value_bytes < b->value_bytes ? -1 : 1;
  return a->value_bytes == 0 ? 0 : memcmp(a->value, b->value, a->value_bytes);
}

uint32_t kv_dvv_live_count(const kv_dvv_t *o) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < o->sib_count; i++) n += !o->sib[i].tombstone;
  return n;
}

bool kv_dvv_equal(const kv_dvv_t *a, const kv_dvv_t *b) {
  if (!cc_equal(&a->cc, &b->cc) || a->sib_count != b->sib_count) return false;
  for (uint32_t i = 0; i < a->sib_count; i++) {
    if (kv_dot_cmp(&a->sib[i].dot, &b->sib[i].dot) != 0) return false;
    if (sibling_content_cmp(&a->sib[i], &b->sib[i]) != 0) return false;
  }
  return true;
}

/* ------------------------------------------------------------------------ put ---- */

#define KEY_CC "the key's causal context"

/* Drops (and frees) the siblings ctx covers, then inserts fresh at its sorted place. The
 * caller has checked that the result fits. */
static void put_commit_siblings(kv_dvv_t *o, const kv_cc_t *ctx, const kv_sibling_t *fresh) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < o->sib_count; i++) {
    if (kv_cc_covers(ctx, &o->sib[i].dot)) {
      free(o->sib[i].value);
    } else {
      o->sib[n++] = o->sib[i];
    }
  }
  uint32_t at = n;
  while (at > 0 && kv_dot_cmp(&o->sib[at - 1].dot, &fresh->dot) > 0) at--;
  memmove(&o->sib[at + 1], &o->sib[at], (n - at) * sizeof o->sib[0]);
  o->sib[at] = *fresh;
  o->sib_count = n + 1;
}

static uint32_t put_kept_count(const kv_dvv_t *o, const kv_cc_t *ctx) {
  uint32_t kept = 0;
  for (uint32_t i = 0; i < o->sib_count; i++) kept += !kv_cc_covers(ctx, &o->sib[i].dot);
  return kept;
}

kv_err kv_dvv_put(kv_dvv_t *o, const kv_actor_t *self, uint64_t floor, const kv_cc_t *ctx,
                  const void *value, uint32_t value_bytes, bool tombstone, uint64_t hlc, uint32_t siblings_max,
                  kv_status_t *st) {
  KV_ASSERT(actor_valid(self) && ctx != NULL);
  KV_ASSERT(value != NULL || value_bytes == 0);
  KV_ASSERT(!tombstone || value_bytes == 0);
  KV_ASSERT(siblings_max >= 1 && siblings_max <= KV_SIBLINGS_MAX);

  uint32_t kept = put_kept_count(o, ctx);
  if (kept + 1 > siblings_max) {
    return kv_status_set(st, KV_EBUSY, "key would have %u siblings; the keyspace allows %u",
                         kept + 1, siblings_max);
  }
  /* The dot is minted after the join so it is above every dot of self the client has seen,
   * even ones this replica has not. */
  kv_cc_t cc = o->cc;
  kv_err err = cc_join_checked(&cc, ctx, KEY_CC, st);
  if (err != KV_OK) return err;
  /* A context may claim self's last counter (a forged or corrupt one; the token harness's put
   * check found it). Its successor wrapped to 0, and the floor then minted a dot the context
   * already covered, a version every replica holding that context would drop. */
  uint64_t seen = kv_cc_max_counter(&cc, self);
  if (seen == UINT64_MAX)
    return kv_status_set(st, KV_EINVAL, "context covers every counter of %s/%" PRIu64 "; no "
                         "version can be minted past it", self->node, self->incarnation);
  uint64_t counter = seen + 1;
  if (counter < floor) counter = floor;
  kv_sibling_t fresh = {.dot = {.actor = *self, .counter = counter},
                        .hlc = hlc, .tombstone = tombstone, .value_bytes = value_bytes};
  /* (self, 1..counter): the dot and every one below it (see dvv.h). */
  kv_cc_t upto;
  upto.vv_count = 1;
  upto.vv[0] = fresh.dot;
  upto.cloud_count = 0;
  if ((err = cc_join_checked(&cc, &upto, KEY_CC, st)) != KV_OK) return err;
  if (value_dup(value, value_bytes, &fresh.value) != KV_OK) {
    return kv_status_set(st, KV_ENOMEM, "out of memory copying a %u-byte value", value_bytes);
  }
  /* ctx may be &o->cc, so the siblings are filtered before the context is replaced. */
  put_commit_siblings(o, ctx, &fresh);
  o->cc = cc;
  return KV_OK;
}

/* ---------------------------------------------------------------------- merge ---- */

/* A sibling chosen for a merge result; values taken from src must be copied. */
typedef struct {
  const kv_sibling_t *s;
  bool from_src;
} merge_pick_t;

/* Walks both sorted sibling lists once, applying the merge rule of dvv.h; the picks come
 * out sorted by dot. Returns how many were picked (up to twice KV_SIBLINGS_MAX). */
static uint32_t merge_pick(const kv_dvv_t *a, const kv_dvv_t *b, merge_pick_t *out) {
  uint32_t i = 0, j = 0, n = 0;
  while (i < a->sib_count || j < b->sib_count) {
    int c = i == a->sib_count ? 1
            : j == b->sib_count ? -1
                                : kv_dot_cmp(&a->sib[i].dot, &b->sib[j].dot);
    if (c == 0) {
      bool b_smaller = sibling_content_cmp(&b->sib[j], &a->sib[i]) < 0;
      out[n++] = b_smaller ? (merge_pick_t){&b->sib[j], true} : (merge_pick_t){&a->sib[i], false};
      i++, j++;
    } else if (c < 0) {
      if (!kv_cc_covers(&b->cc, &a->sib[i].dot)) out[n++] = (merge_pick_t){&a->sib[i], false};
      i++;
    } else {
      if (!kv_cc_covers(&a->cc, &b->sib[j].dot)) out[n++] = (merge_pick_t){&b->sib[j], true};
      j++;
    }
  }
  return n;
}

/* next[k] := picks[k], copying the values that come from src. On KV_ENOMEM nothing is left
 * allocated. */
static kv_err merge_copy_picks(const merge_pick_t *picks, uint32_t n, kv_sibling_t *next) {
  for (uint32_t k = 0; k < n; k++) {
    next[k] = *picks[k].s;
    if (picks[k].from_src &&
        value_dup(picks[k].s->value, picks[k].s->value_bytes, &next[k].value) != KV_OK) {
      for (uint32_t m = 0; m < k; m++) {
        if (picks[m].from_src) free(next[m].value);
      }
      return KV_ENOMEM;
    }
  }
  return KV_OK;
}

kv_err kv_dvv_merge(kv_dvv_t *dst, const kv_dvv_t *src, kv_status_t *st) {
  merge_pick_t picks[2 * KV_SIBLINGS_MAX];
  uint32_t n = merge_pick(dst, src, picks);
  if (n > KV_SIBLINGS_MAX) {
    return kv_status_set(st, KV_EBUSY, "merge would leave %u siblings; the limit is %u", n,
                         KV_SIBLINGS_MAX);
  }
  kv_cc_t cc = dst->cc;
  kv_err err = cc_join_checked(&cc, &src->cc, KEY_CC, st);
  if (err != KV_OK) return err;
  kv_sibling_t next[KV_SIBLINGS_MAX];
  if (merge_copy_picks(picks, n, next) != KV_OK) {
    return kv_status_set(st, KV_ENOMEM, "out of memory copying sibling values in a merge");
  }
  /* dst's own values move into next; free those of the siblings that were dropped. */
  bool carried[KV_SIBLINGS_MAX] = {false};
  for (uint32_t k = 0; k < n; k++) {
    if (!picks[k].from_src) carried[picks[k].s - dst->sib] = true;
  }
  for (uint32_t i = 0; i < dst->sib_count; i++) {
    if (!carried[i]) free(dst->sib[i].value);
  }
  memcpy(dst->sib, next, n * sizeof next[0]);
  dst->sib_count = n;
  dst->cc = cc;
  return KV_OK;
}

/* ------------------------------------------------------------------- encoding ---- */

/* Protobuf views of a context. They borrow the node strings of the kv_cc_t they were made
 * from and live no longer than it. */
typedef struct {
  Tunekv__Record__Dot vv[KV_VV_ENTRIES_MAX], cloud[KV_CLOUD_DOTS_MAX];
  Tunekv__Record__Dot *vv_ptr[KV_VV_ENTRIES_MAX], *cloud_ptr[KV_CLOUD_DOTS_MAX];
  Tunekv__Record__CausalContext msg;
} cc_pb_t;

static void dot_to_pb(const kv_dot_t *d, Tunekv__Record__Dot *pb) {
  tunekv__record__dot__init(pb);
  pb->node = (char *)d->actor.node; /* protobuf-c only reads it while packing */
  pb->incarnation = d->actor.incarnation;
  pb->counter = d->counter;
}

static void cc_to_pb(const kv_cc_t *cc, cc_pb_t *pb) {
  tunekv__record__causal_context__init(&pb->msg);
  for (uint32_t i = 0; i < cc->vv_count; i++) {
    dot_to_pb(&cc->vv[i], &pb->vv[i]);
    pb->vv_ptr[i] = &pb->vv[i];
  }
  for (uint32_t i = 0; i < cc->cloud_count; i++) {
    dot_to_pb(&cc->cloud[i], &pb->cloud[i]);
    pb->cloud_ptr[i] = &pb->cloud[i];
  }
  pb->msg.n_vv = cc->vv_count;
  pb->msg.vv = pb->vv_ptr;
  pb->msg.n_cloud = cc->cloud_count;
  pb->msg.cloud = pb->cloud_ptr;
}

static kv_err pack_message(const ProtobufCMessage *m, uint8_t **out, size_t *out_bytes) {
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(n > 0 ? n : 1); /* malloc(0) may return NULL, which is not ENOMEM */
  if (buf == NULL) return KV_ENOMEM;
  *out_bytes = protobuf_c_message_pack(m, buf);
  KV_ASSERT(*out_bytes == n);
  *out = buf;
  return KV_OK;
}

kv_err kv_cc_encode(const kv_cc_t *cc, uint8_t **out, size_t *out_bytes) {
  cc_pb_t pb;
  cc_to_pb(cc, &pb);
  return pack_message(&pb.msg.base, out, out_bytes);
}

kv_err kv_dvv_encode(const kv_dvv_t *o, uint8_t **out, size_t *out_bytes) {
  cc_pb_t cc;
  Tunekv__Record__Dot dots[KV_SIBLINGS_MAX];
  Tunekv__Record__StoredSibling sibs[KV_SIBLINGS_MAX], *sib_ptr[KV_SIBLINGS_MAX];
  Tunekv__Record__Record rec = TUNEKV__RECORD__RECORD__INIT;
  cc_to_pb(&o->cc, &cc);
  for (uint32_t i = 0; i < o->sib_count; i++) {
    const kv_sibling_t *s = &o->sib[i];
    tunekv__record__stored_sibling__init(&sibs[i]);
    dot_to_pb(&s->dot, &dots[i]);
    sibs[i].dot = &dots[i];
    sibs[i].value = (ProtobufCBinaryData){.len = s->value_bytes, .data = s->value};
    sibs[i].tombstone = s->tombstone;
    sibs[i].hlc = s->hlc;
    sib_ptr[i] = &sibs[i];
  }
  rec.context = &cc.msg;
  rec.n_siblings = o->sib_count;
  rec.siblings = sib_ptr;
  return pack_message(&rec.base, out, out_bytes);
}

/* ------------------------------------------------------------------- decoding ---- */

/* Copies one decoded dot after bounding it; `what` names it in the sentence ("vv entry 3"). */
static bool dot_from_pb(const Tunekv__Record__Dot *pb, kv_dot_t *out, const char *what,
                        kv_status_t *why) {
  if (pb == NULL) {
    kv_status_set(why, KV_ECORRUPT, "%s has no dot", what);
    return false;
  }
  size_t len = strlen(pb->node);
  if (len == 0 || len > KV_NODE_ID_BYTES_MAX) {
    kv_status_set(why, KV_ECORRUPT, "%s has a node id of %zu bytes; it must be 1 to %u", what,
                  len, KV_NODE_ID_BYTES_MAX);
    return false;
  }
  if (pb->counter == 0) {
    kv_status_set(why, KV_ECORRUPT, "%s has counter 0", what);
    return false;
  }
  memset(out, 0, sizeof *out);
  memcpy(out->actor.node, pb->node, len);
  out->actor.incarnation = pb->incarnation;
  out->counter = pb->counter;
  return true;
}

static bool dots_from_pb(Tunekv__Record__Dot *const *pb, size_t n, uint32_t max,
                         const char *what, kv_dot_t *out, kv_status_t *why) {
  if (n > max) {
    kv_status_set(why, KV_ECORRUPT, "it has %zu %s entries; the limit is %u", n, what, max);
    return false;
  }
  char name[32];
  for (size_t i = 0; i < n; i++) {
    snprintf(name, sizeof name, "%s entry %zu", what, i);
    if (!dot_from_pb(pb[i], &out[i], name, why)) return false;
  }
  return true;
}

/* A missing context is the empty one. The result still needs cc_valid. */
static bool cc_from_pb(const Tunekv__Record__CausalContext *pb, kv_cc_t *cc, kv_status_t *why) {
  kv_cc_init(cc);
  if (pb == NULL) return true;
  if (!dots_from_pb(pb->vv, pb->n_vv, KV_VV_ENTRIES_MAX, "vv", cc->vv, why) ||
      !dots_from_pb(pb->cloud, pb->n_cloud, KV_CLOUD_DOTS_MAX, "cloud", cc->cloud, why)) {
    return false;
  }
  cc->vv_count = (uint32_t)pb->n_vv;
  cc->cloud_count = (uint32_t)pb->n_cloud;
  return true;
}

kv_err kv_cc_decode(const uint8_t *buf, size_t bytes, kv_cc_t *out, kv_status_t *st) {
  kv_cc_init(out);
  if (bytes == 0) return KV_OK;
  if (bytes > KV_CONTEXT_BYTES_MAX) {
    return kv_status_set(st, KV_EINVAL, "context is malformed: it is %zu bytes; the limit is %u",
                         bytes, KV_CONTEXT_BYTES_MAX);
  }
  Tunekv__Record__CausalContext *pb = tunekv__record__causal_context__unpack(NULL, bytes, buf);
  if (pb == NULL) return kv_status_set(st, KV_EINVAL, "context is malformed: it does not parse");
  kv_status_t why;
  bool ok = cc_from_pb(pb, out, &why) && cc_valid(out, &why);
  tunekv__record__causal_context__free_unpacked(pb, NULL);
  if (ok) return KV_OK;
  kv_cc_init(out);
  return kv_status_set(st, KV_EINVAL, "context is malformed: %s", why.msg);
}

/* Fills o (initialized, empty) from a decoded record: KV_ECORRUPT with why, or KV_ENOMEM.
 * Siblings are counted in o as soon as they own a value, so kv_dvv_deinit frees them. */
static kv_err dvv_from_pb(const Tunekv__Record__Record *pb, kv_dvv_t *o, kv_status_t *why) {
  if (!cc_from_pb(pb->context, &o->cc, why)) return KV_ECORRUPT;
  if (pb->n_siblings > KV_SIBLINGS_MAX) {
    kv_status_set(why, KV_ECORRUPT, "it has %zu siblings; the limit is %u", pb->n_siblings,
                  KV_SIBLINGS_MAX);
    return KV_ECORRUPT;
  }
  char name[32];
  for (size_t i = 0; i < pb->n_siblings; i++) {
    const Tunekv__Record__StoredSibling *ps = pb->siblings[i];
    kv_sibling_t *s = &o->sib[i];
    snprintf(name, sizeof name, "sibling %zu", i);
    if (!dot_from_pb(ps->dot, &s->dot, name, why)) return KV_ECORRUPT;
    if (ps->value.len > KV_VALUE_BYTES_HARD_MAX) {
      kv_status_set(why, KV_ECORRUPT, "sibling %zu is %zu bytes; the limit is %u", i,
                    ps->value.len, KV_VALUE_BYTES_HARD_MAX);
      return KV_ECORRUPT;
    }
    s->hlc = ps->hlc;
    s->tombstone = ps->tombstone;
    s->value_bytes = (uint32_t)ps->value.len;
    if (value_dup(ps->value.data, s->value_bytes, &s->value) != KV_OK) return KV_ENOMEM;
    o->sib_count++;
  }
  return KV_OK;
}

kv_err kv_dvv_decode(const uint8_t *buf, size_t bytes, kv_dvv_t *out, kv_status_t *st) {
  kv_dvv_init(out);
  Tunekv__Record__Record *pb = tunekv__record__record__unpack(NULL, bytes, buf);
  if (pb == NULL) return kv_status_set(st, KV_ECORRUPT, "record is malformed: it does not parse");
  kv_status_t why;
  kv_err err = dvv_from_pb(pb, out, &why);
  tunekv__record__record__free_unpacked(pb, NULL);
  if (err == KV_OK && !dvv_valid(out, &why)) err = KV_ECORRUPT;
  if (err == KV_OK) return KV_OK;
  kv_dvv_deinit(out);
  if (err == KV_ENOMEM) return kv_status_set(st, KV_ENOMEM, "out of memory decoding a record");
  return kv_status_set(st, KV_ECORRUPT, "record is malformed: %s", why.msg);
}
