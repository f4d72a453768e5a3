/* exchange.c: anti-entropy exchanges started by this node (see exchange.h).
 *
 * A message id is KV_AAE_ID_BIT | generation << 32 | kind << 28 | index. The generation
 * names the exchange; for the tree requests (ROOTS, SEGMENTS, KEYS) the index is the step
 * number within it, so a duplicated or late answer to an earlier step is told apart; for
 * repairs it is the key's place in x->keys. */
#include "exchange.h"

#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "log.h"

enum { KIND_ROOTS = 1, KIND_SEGMENTS, KIND_KEYS, KIND_READ, KIND_WRITE };

/* The message kind that asks for each phase's step. */
static const uint32_t phase_kind[] = {[KV_XCH_ROOTS] = KIND_ROOTS,
                                      [KV_XCH_SEGMENTS] = KIND_SEGMENTS,
                                      [KV_XCH_KEYS] = KIND_KEYS};

static uint64_t xch_id(const kv_xch_t *x, uint32_t kind, uint32_t index) {
  return KV_AAE_ID_BIT | (uint64_t)(x->gen & KV_AAE_ID_GEN_MASK) << KV_AAE_ID_GEN_SHIFT |
         (uint64_t)kind << KV_AAE_ID_KIND_SHIFT | (index & KV_AAE_ID_INDEX_MASK);
}

void kv_xch_init(kv_xch_t *x, kv_node_t *node, const kv_ring_t *ring) {
  memset(x, 0, sizeof *x);
  x->node = node;
  x->ring = ring;
  x->interval_ms = ring->cfg->anti_entropy_interval_ms;
}

static void keys_free(kv_xch_t *x) {
  for (uint32_t i = 0; i < x->key_count; i++) free(x->keys[i].key);
  free(x->keys);
  x->keys = NULL;
  x->key_count = x->key_next = x->in_flight = 0;
}

void kv_xch_deinit(kv_xch_t *x) {
  keys_free(x);
  free(x->parts);
  x->parts = NULL;
}

/* Ends the exchange under way; answers still travelling for it will be ignored. */
static void xch_end(kv_xch_t *x, bool ok, uint64_t now_us) {
  kv_aae_stats_t *s = &x->stats[x->peer];
  if (ok) {
    s->exchanges++;
    s->last_us = now_us;
    s->last_repaired = x->repaired;
  } else {
    s->failed++;
  }
  kv_xch_deinit(x);
  x->phase = KV_XCH_IDLE;
  x->gen++;
}

/* Sends a tree request as the exchange's next step; one that cannot be queued ends the
 * exchange as failed. */
static void xch_ask(kv_xch_t *x, const kv_msg_out_t *tr, kv_xch_phase_t phase,
                    const kv_aae_req_t *req, uint64_t now_us) {
  x->phase = phase;
  x->step++;
  x->deadline_us = now_us + KV_TIMEOUT_MS_DEFAULT * 1000ull;
  kv_status_t st;
  kv_msg_t m = KV_MSG_INIT(KV_MSG_TREE, xch_id(x, phase_kind[phase], x->step));
  m.tree = *req;
  if (tr->send(tr->arg, x->peer, &m, &st) != KV_OK)
    xch_end(x, false, now_us);
}

/* Starts an exchange with peer over the partitions of ks both replicate; false when they
 * share none. */
static bool xch_start(kv_xch_t *x, const kv_msg_out_t *tr, uint32_t peer,
                      const kv_keyspace_conf_t *ks, uint64_t now_us) {
  uint32_t self = kv_node_self(x->node), partitions = x->ring->partitions;
  x->parts = malloc(partitions * sizeof *x->parts);
  KV_ASSERT(x->parts);
  x->part_count = 0;
  for (uint32_t p = 0; p < partitions; p++) {
    kv_preflist_t pl;
    kv_ring_preflist(x->ring, ks, p, &pl);
    if (kv_preflist_is_primary(&pl, self) && kv_preflist_is_primary(&pl, peer))
      x->parts[x->part_count++] = p;
  }
  if (x->part_count == 0) {
    free(x->parts);
    x->parts = NULL;
    return false;
  }
  x->peer = peer;
  x->ks = ks;
  x->repaired = 0;
  x->step = 0;
  kv_aae_req_t req = {.kind = KV_AAE_ASK_ROOTS, .keyspace = ks->name, .partitions = x->parts,
                      .partition_count = x->part_count};
  xch_ask(x, tr, KV_XCH_ROOTS, &req, now_us);
  return true;
}

void kv_xch_tick(kv_xch_t *x, const kv_msg_out_t *tr, uint64_t now_us) {
  if (x->interval_ms == 0) return;
  if (x->phase != KV_XCH_IDLE) {
    if (now_us < x->deadline_us) return;
    xch_end(x, false, now_us);
  }
  if (!x->round_active) {
    /* The first round waits one interval: peers are still being heard from at start. */
    if (x->next_round_us == 0) x->next_round_us = now_us + x->interval_ms * 1000ull;
    if (now_us < x->next_round_us) return;
    x->round_active = true;
    x->pair_next = 0;
    x->next_round_us = now_us + x->interval_ms * 1000ull;
  }
  const kv_config_t *cfg = x->ring->cfg;
  uint32_t self = kv_node_self(x->node);
  while (x->pair_next < cfg->node_count * cfg->keyspace_count) {
    uint32_t peer = x->pair_next / cfg->keyspace_count;
    const kv_keyspace_conf_t *ks = &cfg->keyspaces[x->pair_next % cfg->keyspace_count];
    x->pair_next++;
    if (peer == self || !tr->alive(tr->arg, peer)) continue;
    if (xch_start(x, tr, peer, ks, now_us)) return;
  }
  x->round_active = false;
}

/* ---- steps ---------------------------------------------------------------------------- */

static void next_segments(kv_xch_t *x, const kv_msg_out_t *tr, uint64_t now_us);

/* Asks for the segment sums of the next differing partition, or ends the exchange. */
static void next_partition(kv_xch_t *x, const kv_msg_out_t *tr, uint64_t now_us) {
  if (x->part_at == x->part_count) {
    xch_end(x, true, now_us);
    return;
  }
  kv_aae_req_t req = {.kind = KV_AAE_ASK_SEGMENTS, .keyspace = x->ks->name,
                      .partitions = &x->parts[x->part_at], .partition_count = 1};
  xch_ask(x, tr, KV_XCH_SEGMENTS, &req, now_us);
}

/* ROOTS answered: keeps the partitions whose roots differ. */
static void took_roots(kv_xch_t *x, const kv_msg_out_t *tr, const kv_aae_answer_t *ans,
                       uint64_t now_us) {
  if (ans->hash_count != x->part_count) {
    KV_WARN("anti-entropy: node %s answered %u roots for %u partitions",
            x->ring->cfg->nodes[x->peer].id, ans->hash_count, x->part_count);
    xch_end(x, false, now_us);
    return;
  }
  uint32_t kept = 0;
  for (uint32_t i = 0; i < x->part_count; i++) {
    uint64_t root;
    kv_status_t st;
    if (kv_aae_root(x->node, x->ks->name, x->parts[i], &root, NULL, &st) != KV_OK) {
      KV_WARN("anti-entropy: %s", st.msg);
      xch_end(x, false, now_us);
      return;
    }
    if (root != ans->hashes[i]) x->parts[kept++] = x->parts[i];
  }
  x->part_count = kept;
  x->part_at = 0;
  next_partition(x, tr, now_us);
}

/* SEGMENTS answered: keeps the segments whose sums differ. */
static void took_segments(kv_xch_t *x, const kv_msg_out_t *tr,
                          const kv_aae_answer_t *ans, uint64_t now_us) {
  uint64_t sums[KV_AAE_SEGMENTS], root;
  kv_status_t st;
  if (ans->hash_count != KV_AAE_SEGMENTS ||
      kv_aae_root(x->node, x->ks->name, x->parts[x->part_at], &root, sums, &st) != KV_OK) {
    if (ans->hash_count == KV_AAE_SEGMENTS) KV_WARN("anti-entropy: %s", st.msg);
    xch_end(x, false, now_us);
    return;
  }
  x->seg_count = 0;
  for (uint32_t i = 0; i < KV_AAE_SEGMENTS; i++)
    if (sums[i] != ans->hashes[i]) x->segs[x->seg_count++] = i;
  x->seg_at = 0;
  next_segments(x, tr, now_us);
}

/* Asks for the keys of the next differing segments, or moves to the next partition. */
static void next_segments(kv_xch_t *x, const kv_msg_out_t *tr, uint64_t now_us) {
  if (x->seg_at == x->seg_count) {
    x->part_at++;
    next_partition(x, tr, now_us);
    return;
  }
  x->seg_batch = x->seg_count - x->seg_at;
  if (x->seg_batch > KV_AAE_KEYS_SEGMENTS_MAX) x->seg_batch = KV_AAE_KEYS_SEGMENTS_MAX;
  kv_aae_req_t req = {.kind = KV_AAE_ASK_KEYS, .keyspace = x->ks->name,
                      .partitions = &x->parts[x->part_at], .partition_count = 1,
                      .segments = &x->segs[x->seg_at], .segment_count = x->seg_batch};
  xch_ask(x, tr, KV_XCH_KEYS, &req, now_us);
}

/* ---- comparing keys ------------------------------------------------------------------- */

static int key_cmp(const kv_aae_key_t *a, const kv_aae_key_t *b) {
  int c = memcmp(a->data, b->data, a->len < b->len ? a->len : b->len);
  if (c != 0) return c;
  return a->len < b->len ? -1 : a->len > b->len;
}

/* A list's entries in key order, as indexes (both sides list the same segments, but each
 * in its own store's order). */
static int index_cmp(const void *a, const void *b, void *list) {
  const kv_aae_key_t *keys = ((const kv_aae_answer_t *)list)->keys;
  return key_cmp(&keys[*(const uint32_t *)a], &keys[*(const uint32_t *)b]);
}

static uint32_t *sorted(const kv_aae_answer_t *list) {
  uint32_t *order = malloc((list->key_count ? list->key_count : 1) * sizeof *order);
  KV_ASSERT(order);
  for (uint32_t i = 0; i < list->key_count; i++) order[i] = i;
  qsort_r(order, list->key_count, sizeof *order, index_cmp, (void *)list);
  return order;
}

static void key_add(kv_xch_t *x, const kv_aae_key_t *key, uint64_t local, uint64_t remote) {
  kv_xch_key_t *k = &x->keys[x->key_count++];
  memset(k, 0, sizeof *k);
  k->key = malloc(key->len ? key->len : 1);
  KV_ASSERT(k->key);
  memcpy(k->key, key->data, key->len);
  k->key_bytes = key->len;
  k->hash = kv_hash_key(x->ks->name, key->data, key->len);
  k->local_leaf = local;
  k->remote_leaf = remote;
}

/* The keys whose leaves differ between ours and theirs (a merge of the two sorted lists). */
static void diff_keys(kv_xch_t *x, const kv_aae_answer_t *ours, const kv_aae_answer_t *theirs) {
  uint32_t *a = sorted(ours), *b = sorted(theirs);
  x->keys = calloc(ours->key_count + theirs->key_count + 1, sizeof *x->keys);
  KV_ASSERT(x->keys);
  uint32_t i = 0, j = 0;
  while (i < ours->key_count || j < theirs->key_count) {
    int c = i == ours->key_count     ? 1
            : j == theirs->key_count ? -1
                                     : key_cmp(&ours->keys[a[i]], &theirs->keys[b[j]]);
    if (c < 0) {
      key_add(x, &ours->keys[a[i]], ours->hashes[a[i]], 0);
      i++;
    } else if (c > 0) {
      key_add(x, &theirs->keys[b[j]], 0, theirs->hashes[b[j]]);
      j++;
    } else {
      if (ours->hashes[a[i]] != theirs->hashes[b[j]])
        key_add(x, &ours->keys[a[i]], ours->hashes[a[i]], theirs->hashes[b[j]]);
      i++;
      j++;
    }
  }
  free(a);
  free(b);
}

static void pump(kv_xch_t *x, const kv_msg_out_t *tr, uint64_t now_us);

/* Whether every key the peer listed is one a store can hold (1 to KV_KEY_BYTES_HARD_MAX bytes),
 * as a repair reads and merges it here. (The exchange fuzzer's empty key reached the store.) */
static bool keys_in_bounds(const kv_xch_t *x, const kv_aae_answer_t *ans) {
  for (uint32_t i = 0; i < ans->key_count; i++) {
    if (ans->keys[i].len >= 1 && ans->keys[i].len <= KV_KEY_BYTES_HARD_MAX) continue;
    KV_WARN("anti-entropy: node %s listed a key of %zu bytes; keys are 1 to %u bytes",
            x->ring->cfg->nodes[x->peer].id, ans->keys[i].len, KV_KEY_BYTES_HARD_MAX);
    return false;
  }
  return true;
}

/* KEYS answered: lists ours for the same segments and repairs the keys that differ. */
static void took_keys(kv_xch_t *x, const kv_msg_out_t *tr, const kv_aae_answer_t *ans,
                      uint64_t now_us) {
  kv_aae_answer_t ours = {0};
  kv_status_t st;
  for (uint32_t i = 0; i < x->seg_batch; i++) {
    if (kv_aae_segment_keys(x->node, x->ks->name, x->parts[x->part_at], x->segs[x->seg_at + i],
                            &ours, &st) != KV_OK) {
      KV_WARN("anti-entropy: %s", st.msg);
      kv_aae_answer_free(&ours);
      xch_end(x, false, now_us);
      return;
    }
  }
  if (ans->hash_count != ans->key_count || !keys_in_bounds(x, ans)) {
    kv_aae_answer_free(&ours);
    xch_end(x, false, now_us);
    return;
  }
  diff_keys(x, &ours, ans);
  kv_aae_answer_free(&ours);
  pump(x, tr, now_us);
}

/* ---- repairs -------------------------------------------------------------------------- */

/* This node's record of key k (NULL, 0 when none or unreadable). */
static uint8_t *local_record(kv_xch_t *x, const kv_xch_key_t *k, size_t *bytes) {
  uint8_t *rec;
  kv_status_t st;
  if (kv_node_read_record(x->node, x->ks->name, k->key, k->key_bytes, &rec, bytes, &st) !=
      KV_OK) {
    KV_WARN("anti-entropy: %s", st.msg);
    *bytes = 0;
    return NULL;
  }
  return rec;
}

/* Sends the peer our record of key i (it merges it); false when there is nothing to send
 * or it could not be queued. */
static bool repair_write(kv_xch_t *x, const kv_msg_out_t *tr, uint32_t i) {
  kv_xch_key_t *k = &x->keys[i];
  size_t bytes;
  uint8_t *rec = local_record(x, k, &bytes);
  kv_status_t st;
  kv_msg_t m = kv_msg_write(xch_id(x, KIND_WRITE, i), x->ks->name, k->key, k->key_bytes, rec,
                            bytes, false);
  bool sent = bytes > 0 && tr->send(tr->arg, x->peer, &m, &st) == KV_OK;
  free(rec);
  return sent;
}

static void repair_start(kv_xch_t *x, const kv_msg_out_t *tr, uint32_t i) {
  kv_xch_key_t *k = &x->keys[i];
  if (k->remote_leaf == 0) {
    if (repair_write(x, tr, i)) k->waiting = KIND_WRITE;
  } else {
    kv_status_t st;
    kv_msg_t m = kv_msg_read(xch_id(x, KIND_READ, i), x->ks->name, k->key, k->key_bytes);
    if (tr->send(tr->arg, x->peer, &m, &st) == KV_OK) k->waiting = KIND_READ;
  }
  if (k->waiting) x->in_flight++;
}

/* Starts repairs up to the bound; when every key of the batch is done, moves on. */
static void pump(kv_xch_t *x, const kv_msg_out_t *tr, uint64_t now_us) {
  while (x->in_flight < KV_AAE_REPAIRS_IN_FLIGHT && x->key_next < x->key_count)
    repair_start(x, tr, x->key_next++);
  if (x->in_flight > 0 || x->key_next < x->key_count) return;
  keys_free(x);
  x->seg_at += x->seg_batch;
  next_segments(x, tr, now_us);
}

static void repaired(kv_xch_t *x) {
  x->repaired++;
  x->stats[x->peer].keys_repaired++;
  kv_metrics_add(x->metrics, KV_METRIC_AE_REPAIRS, 1);
}

/* The peer's record of key i came back: merge it here, then send the merge back when the
 * peer's differs from it. */
static void took_read(kv_xch_t *x, const kv_msg_out_t *tr, uint32_t i,
                      const uint8_t *rec, size_t rec_bytes) {
  kv_xch_key_t *k = &x->keys[i];
  kv_status_t st;
  if (rec_bytes > 0 && kv_node_merge(x->node, x->ks->name, k->key, k->key_bytes, rec, rec_bytes,
                                     &st) != KV_OK) {
    KV_WARN("anti-entropy: merging a peer's record failed: %s", st.msg);
    return;
  }
  size_t bytes;
  uint8_t *ours = local_record(x, k, &bytes);
  uint64_t local = bytes ? kv_hash_leaf(k->hash, ours, bytes) : 0;
  uint64_t remote = rec_bytes ? kv_hash_leaf(k->hash, rec, rec_bytes) : 0;
  free(ours);
  if (local != remote && local != 0 && repair_write(x, tr, i)) {
    k->waiting = KIND_WRITE;
    x->in_flight++;
  } else if (local != k->local_leaf) {
    repaired(x);
  }
}

void kv_xch_answer(kv_xch_t *x, const kv_msg_out_t *tr, uint64_t id, kv_err code,
                   const kv_aae_answer_t *ans, const uint8_t *rec, size_t rec_bytes,
                   uint64_t now_us) {
  uint32_t gen = (uint32_t)(id >> KV_AAE_ID_GEN_SHIFT) & KV_AAE_ID_GEN_MASK;
  uint32_t kind = (uint32_t)(id >> KV_AAE_ID_KIND_SHIFT) & 0xFu;
  uint32_t index = (uint32_t)id & KV_AAE_ID_INDEX_MASK;
  if (x->phase == KV_XCH_IDLE || gen != (x->gen & KV_AAE_ID_GEN_MASK)) return;
  if (kind == KIND_READ || kind == KIND_WRITE) {
    if (x->phase != KV_XCH_KEYS || index >= x->key_count) return;
    kv_xch_key_t *k = &x->keys[index];
    if (k->waiting != kind) return; /* a duplicate, or late */
    k->waiting = 0;
    x->in_flight--;
    x->deadline_us = now_us + KV_TIMEOUT_MS_DEFAULT * 1000ull;
    if (code == KV_OK && kind == KIND_READ) took_read(x, tr, index, rec, rec_bytes);
    else if (code == KV_OK) repaired(x);
    pump(x, tr, now_us);
    return;
  }
  if (kind != phase_kind[x->phase] || index != (x->step & KV_AAE_ID_INDEX_MASK)) return;
  x->step++; /* the step is answered: a duplicate of this answer is stale */
  const kv_aae_answer_t empty = {0};
  if (!ans) ans = &empty; /* a transport gives none for an answer listing nothing */
  if (code != KV_OK) {
    xch_end(x, false, now_us);
    return;
  }
  x->deadline_us = now_us + KV_TIMEOUT_MS_DEFAULT * 1000ull;
  if (x->phase == KV_XCH_ROOTS) took_roots(x, tr, ans, now_us);
  else if (x->phase == KV_XCH_SEGMENTS) took_segments(x, tr, ans, now_us);
  else took_keys(x, tr, ans, now_us);
}

void kv_xch_stats(const kv_xch_t *x, uint32_t peer, kv_aae_stats_t *out) {
  *out = x->stats[peer];
}
