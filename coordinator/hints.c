/* hints.c: the hints a node keeps, as a coordinator or as a fallback, and their handoff (see
 * hints.h).
 *
 * A handoff's id is KV_HINT_ID_BIT | gen << 16 | index into h->handoffs, so an ack that
 * arrives after its handoff was given up (and the entry reused) is ignored.
 *
 * Per target: IDLE (nothing in flight) -> (tick, target alive, tokens) ROUND (handoffs in
 * flight) -> (each answered or given up) IDLE. A round scans the target's hints from the
 * start; delivered hints are gone from the store, so the next round meets the rest. */
#include "hints.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "buggify.h"
#include "fmt.h"
#include "log.h"


typedef struct {
  kv_hints_t *h;
  uint32_t target;
} count_t;

static bool count_one(void *arg, const char *keyspace, const void *key, size_t key_bytes,
                      const void *rec, size_t rec_bytes) {
  count_t *c = arg;
  c->h->stats[c->target].pending++;
  c->h->stats[c->target].bytes += key_bytes + rec_bytes;
  return true;
}

kv_err kv_hints_init(kv_hints_t *h, kv_node_t *node, uint32_t node_count, uint64_t bytes_max,
                     uint32_t rate_per_s, kv_status_t *st) {
  KV_ASSERT(node_count <= KV_NODES_MAX && rate_per_s > 0);
  memset(h, 0, sizeof *h);
  h->node = node;
  h->node_count = node_count;
  h->bytes_max = bytes_max;
  h->rate_per_s = rate_per_s;
  for (uint32_t t = 0; t < node_count; t++) {
    count_t c = {.h = h, .target = t};
    kv_err err = kv_storage_hint_scan(kv_node_storage(node), t, count_one, &c, st);
    if (err != KV_OK) return err;
  }
  return KV_OK;
}

void kv_hints_deinit(kv_hints_t *h) {
  for (uint32_t i = 0; i < KV_HANDOFF_IN_FLIGHT_MAX; i++) free(h->handoffs[i].key);
}

/* Stores rec as the hint of (keyspace, key) for target in place of the one there (was_bytes
 * of record; found: there was one), within the target's room. KV_EBUSY when it would not
 * fit; either way a failure is counted as dropped. */
static kv_err hint_store(kv_hints_t *h, uint32_t target, const char *keyspace,
                         const uint8_t *key, size_t key_bytes, bool found, size_t was_bytes,
                         const uint8_t *rec, size_t rec_bytes, kv_status_t *st) {
  kv_hint_stats_t *s = &h->stats[target];
  uint64_t was = found ? key_bytes + was_bytes : 0;
  uint64_t now = key_bytes + rec_bytes;
  kv_err err;
  if (s->bytes - was + now > h->bytes_max)
    err = kv_status_set(st, KV_EBUSY, "no room for the hint: hints for the node would take %llu "
                        "bytes, past their room of %llu; the key is left to anti-entropy",
                        (unsigned long long)(s->bytes - was + now),
                        (unsigned long long)h->bytes_max);
  else
    err = kv_storage_hint_put(kv_node_storage(h->node), target, keyspace, key, key_bytes, rec,
                              rec_bytes, st);
  if (err != KV_OK) {
    s->dropped++;
    return err;
  }
  s->bytes = s->bytes - was + now;
  if (!found) s->pending++;
  return KV_OK;
}

void kv_hints_add(kv_hints_t *h, uint32_t target, const char *keyspace, const uint8_t *key,
                  size_t key_bytes) {
  KV_ASSERT(target < h->node_count);
  kv_status_t st;
  /* The record as it is now, not as the write left it: writes to one key can finish out of
   * order (a durable one waits for its fsync), and an older record must never replace a
   * newer hint. */
  uint8_t *rec;
  size_t rec_bytes;
  if (kv_node_read_record(h->node, keyspace, key, key_bytes, &rec, &rec_bytes, &st) != KV_OK ||
      rec_bytes == 0) {
    if (rec_bytes == 0) kv_status_set(&st, KV_ENOTFOUND, "the key has no record here");
    KV_WARN("hint for node %u not stored: %s", target, st.msg);
    free(rec);
    h->stats[target].dropped++;
    return;
  }
  uint8_t *old;
  size_t old_bytes;
  bool found;
  kv_err err = kv_storage_hint_get(kv_node_storage(h->node), target, keyspace, key, key_bytes,
                                   &old, &old_bytes, &found, &st);
  free(old);
  if (err != KV_OK) h->stats[target].dropped++;
  else err = hint_store(h, target, keyspace, key, key_bytes, found, old_bytes, rec, rec_bytes, &st);
  /* Running out of room is routine under a long outage; store errors are not. */
  if (err != KV_OK && err != KV_EBUSY) KV_WARN("hint for node %u not stored: %s", target, st.msg);
  free(rec);
}

/* ---- a fallback's hints ------------------------------------------------------------- */

kv_err kv_hints_merge(kv_hints_t *h, uint32_t target, const char *keyspace, const uint8_t *key,
                      size_t key_bytes, const uint8_t *rec, size_t rec_bytes, kv_status_t *st) {
  KV_ASSERT(target < h->node_count);
  /* Fault point: the disk refuses a hint, as it may a replica write. The write's
   * coordinator then keeps a hint of its own (this node did not acknowledge). */
  if (KV_BUGGIFY()) return kv_status_set(st, KV_EIO, "simulated disk error storing a hint");
  kv_dvv_t obj, incoming;
  kv_err err = kv_dvv_decode(rec, rec_bytes, &incoming, st);
  if (err != KV_OK) return err;
  uint8_t *old;
  size_t old_bytes;
  bool found;
  err = kv_storage_hint_get(kv_node_storage(h->node), target, keyspace, key, key_bytes, &old,
                            &old_bytes, &found, st);
  kv_dvv_init(&obj);
  if (err == KV_OK && found) err = kv_dvv_decode(old, old_bytes, &obj, st);
  free(old);
  if (err == KV_OK) err = kv_dvv_merge(&obj, &incoming, st);
  uint8_t *merged = NULL;
  size_t merged_bytes = 0;
  if (err == KV_OK && kv_dvv_encode(&obj, &merged, &merged_bytes) != KV_OK)
    err = kv_status_set(st, KV_ENOMEM, "cannot encode the hint");
  if (err == KV_OK)
    err = hint_store(h, target, keyspace, key, key_bytes, found, old_bytes, merged, merged_bytes,
                     st);
  free(merged);
  kv_dvv_deinit(&obj);
  kv_dvv_deinit(&incoming);
  return err;
}

kv_err kv_hints_read(kv_hints_t *h, uint32_t target, const char *keyspace, const uint8_t *key,
                     size_t key_bytes, uint8_t **rec, size_t *rec_bytes, kv_status_t *st) {
  KV_ASSERT(target < h->node_count);
  bool found;
  return kv_storage_hint_get(kv_node_storage(h->node), target, keyspace, key, key_bytes, rec,
                             rec_bytes, &found, st);
}

/* Calls fn with each hint this node keeps for (keyspace, key), whatever its target, decoded,
 * and its encoded size; stops at the first error (a read, a decode or fn's). */
typedef kv_err (*hint_visit_fn)(kv_hints_t *h, uint32_t target, const kv_dvv_t *hint,
                                size_t rec_bytes, void *arg, kv_status_t *st);

static kv_err hints_visit(kv_hints_t *h, const char *keyspace, const uint8_t *key,
                          size_t key_bytes, hint_visit_fn fn, void *arg, kv_status_t *st) {
  for (uint32_t t = 0; t < h->node_count; t++) {
    if (h->stats[t].pending == 0) continue;
    uint8_t *rec;
    size_t rec_bytes;
    kv_err err = kv_hints_read(h, t, keyspace, key, key_bytes, &rec, &rec_bytes, st);
    kv_dvv_t hint;
    if (err == KV_OK && rec) err = kv_dvv_decode(rec, rec_bytes, &hint, st);
    if (err == KV_OK && rec) {
      err = fn(h, t, &hint, rec_bytes, arg, st);
      kv_dvv_deinit(&hint);
    }
    free(rec);
    if (err != KV_OK) return err;
  }
  return KV_OK;
}

typedef struct {
  kv_dvv_t *obj;
  bool *found;
} merge_held_t;

static kv_err merge_held(kv_hints_t *h, uint32_t target, const kv_dvv_t *hint, size_t rec_bytes,
                         void *arg, kv_status_t *st) {
  merge_held_t *m = arg;
  *m->found = true;
  return kv_dvv_merge(m->obj, hint, st);
}

kv_err kv_hints_merge_held(kv_hints_t *h, const char *keyspace, const uint8_t *key,
                           size_t key_bytes, kv_dvv_t *obj, bool *found, kv_status_t *st) {
  *found = false;
  merge_held_t m = {obj, found};
  return hints_visit(h, keyspace, key, key_bytes, merge_held, &m, st);
}

typedef struct {
  const char *keyspace;
  const uint8_t *key;
  size_t key_bytes;
  const kv_cc_t *cc;
} forget_t;

static kv_err forget_covered(kv_hints_t *h, uint32_t target, const kv_dvv_t *hint,
                             size_t rec_bytes, void *arg, kv_status_t *st) {
  const forget_t *f = arg;
  kv_order_t order = kv_cc_compare(&hint->cc, f->cc);
  if (order != KV_ORDER_BEFORE && order != KV_ORDER_EQUAL) return KV_OK;
  kv_err err = kv_storage_hint_remove(kv_node_storage(h->node), target, f->keyspace, f->key,
                                      f->key_bytes, st);
  if (err != KV_OK) return err;
  h->stats[target].pending--;
  h->stats[target].bytes -= f->key_bytes + rec_bytes;
  return KV_OK;
}

kv_err kv_hints_forget(kv_hints_t *h, const char *keyspace, const uint8_t *key,
                       size_t key_bytes, const kv_cc_t *cc, kv_status_t *st) {
  for (uint32_t i = 0; i < KV_HANDOFF_IN_FLIGHT_MAX; i++) {
    const kv_handoff_t *ho = &h->handoffs[i];
    if (!ho->used || strcmp(ho->keyspace, keyspace) != 0 || ho->key_bytes != key_bytes ||
        memcmp(ho->key, key, key_bytes) != 0)
      continue;
    char shown[KV_FMT_KEY_BYTES];
    kv_fmt_bytes(shown, sizeof shown, key, key_bytes);
    return kv_status_set(st, KV_EBUSY, "a hint of key '%s' in keyspace '%s' is being handed "
                         "over to %s; the key is not reaped", shown, keyspace,
                         kv_node_config(h->node)->nodes[ho->target].id);
  }
  forget_t f = {keyspace, key, key_bytes, cc};
  return hints_visit(h, keyspace, key, key_bytes, forget_covered, &f, st);
}

/* ---- handoff rounds ----------------------------------------------------------------- */

typedef struct {
  kv_hints_t *h;
  const kv_msg_out_t *tr;
  uint32_t target;
  uint64_t now_us;
} round_t;

static kv_handoff_t *handoff_free(kv_hints_t *h, uint32_t *index) {
  for (uint32_t i = 0; i < KV_HANDOFF_IN_FLIGHT_MAX; i++) {
    if (!h->handoffs[i].used) {
      *index = i;
      return &h->handoffs[i];
    }
  }
  return NULL;
}

static bool round_send(void *arg, const char *keyspace, const void *key, size_t key_bytes,
                       const void *rec, size_t rec_bytes) {
  round_t *r = arg;
  kv_hints_t *h = r->h;
  uint32_t index;
  kv_handoff_t *ho = h->tokens >= 1.0 ? handoff_free(h, &index) : NULL;
  if (!ho) return false;
  uint64_t id = KV_HINT_ID_BIT | (uint64_t)ho->gen << KV_HINT_ID_GEN_SHIFT | index;
  kv_status_t st;
  /* Durable: a fallback's hint may be one of the copies a durable write counted. */
  kv_msg_t m = kv_msg_write(id, keyspace, key, key_bytes, rec, rec_bytes, true);
  if (r->tr->send(r->tr->arg, r->target, &m, &st) != KV_OK)
    return false; /* the peer's queue is full: the next round */
  ho->used = true;
  ho->target = r->target;
  ho->hash = XXH64(rec, rec_bytes, 0);
  ho->deadline_us = r->now_us + KV_TIMEOUT_MS_DEFAULT * 1000ull;
  snprintf(ho->keyspace, sizeof ho->keyspace, "%s", keyspace);
  ho->key = malloc(key_bytes);
  KV_ASSERT(ho->key != NULL);
  memcpy(ho->key, key, key_bytes);
  ho->key_bytes = key_bytes;
  h->in_flight[r->target]++;
  h->tokens -= 1.0;
  return true;
}

static void handoff_end(kv_hints_t *h, kv_handoff_t *ho) {
  h->in_flight[ho->target]--;
  free(ho->key);
  ho->key = NULL;
  ho->used = false;
  ho->gen++;
}

void kv_hints_tick(kv_hints_t *h, const kv_msg_out_t *tr, uint64_t now_us) {
  /* Pacing: tokens accrue at rate_per_s, at most a tenth of a second's worth banked. */
  double burst = h->rate_per_s / 10.0 > 1.0 ? h->rate_per_s / 10.0 : 1.0;
  if (now_us > h->last_tick_us) h->tokens += (double)(now_us - h->last_tick_us) * h->rate_per_s / 1e6;
  if (h->tokens > burst) h->tokens = burst;
  h->last_tick_us = now_us;
  for (uint32_t i = 0; i < KV_HANDOFF_IN_FLIGHT_MAX; i++)
    if (h->handoffs[i].used && now_us >= h->handoffs[i].deadline_us)
      handoff_end(h, &h->handoffs[i]);
  for (uint32_t t = 0; t < h->node_count && h->tokens >= 1.0; t++) {
    if (h->stats[t].pending == 0 || h->in_flight[t] > 0 || !tr->alive(tr->arg, t)) continue;
    round_t r = {.h = h, .tr = tr, .target = t, .now_us = now_us};
    kv_status_t st;
    if (kv_storage_hint_scan(kv_node_storage(h->node), t, round_send, &r, &st) != KV_OK)
      KV_WARN("handing hints to node %u: %s", t, st.msg);
  }
}

void kv_hints_answer(kv_hints_t *h, uint64_t id, kv_err code) {
  KV_ASSERT(id & KV_HINT_ID_BIT);
  uint32_t index = (uint32_t)(id & 0xFFFF);
  uint16_t gen = (uint16_t)(id >> KV_HINT_ID_GEN_SHIFT);
  if (index >= KV_HANDOFF_IN_FLIGHT_MAX) return;
  kv_handoff_t *ho = &h->handoffs[index];
  if (!ho->used || ho->gen != gen) return;
  if (code == KV_OK) {
    const kv_storage_t *sto = kv_node_storage(h->node);
    kv_status_t st;
    uint8_t *rec;
    size_t rec_bytes;
    bool found;
    if (kv_storage_hint_get(sto, ho->target, ho->keyspace, ho->key, ho->key_bytes, &rec,
                          &rec_bytes, &found, &st) == KV_OK &&
        found && XXH64(rec, rec_bytes, 0) == ho->hash &&
        kv_storage_hint_remove(sto, ho->target, ho->keyspace, ho->key, ho->key_bytes, &st) ==
            KV_OK) {
      kv_hint_stats_t *s = &h->stats[ho->target];
      s->pending--;
      s->bytes -= ho->key_bytes + rec_bytes;
      s->delivered++;
    }
    free(rec);
  }
  handoff_end(h, ho);
}

void kv_hints_stats(const kv_hints_t *h, uint32_t target, kv_hint_stats_t *out) {
  KV_ASSERT(target < h->node_count);
  *out = h->stats[target];
}
