/* ownership.c: the node's ring, gossip and ownership handoff (see ownership.h).
 *
 * Ids: KV_RING_ID_BIT | kind << 56 | gen << 24 | index, kind GOSSIP (index 0) or RECORD
 * (index: the record's place in its chunk << 6 | the target node). gen changes with every
 * chunk, so a late answer to an earlier one is ignored (a gossip answer is always taken:
 * taking a ring only moves it on).
 *
 * Handoff states, for the ring epoch o->epoch (0: no handoff):
 *   IDLE (no chunk) --tick, paced, the partition's targets up (chunk_send)--> SENT
 *   SENT --every answer ok (chunk_done)--> IDLE, the cursor past the chunk (the partition
 *        finished when the chunk held its last records: the next one starts)
 *   SENT --a failure, or the deadline (chunk_done / kv_own_tick)--> IDLE, the cursor unmoved
 *   IDLE, every partition finished --> this node in ring->done (gossip spreads it)
 *   any --the ring's epoch changes (ring_moved)--> IDLE of the new epoch, or no handoff
 * Progress is stored at each move of the cursor (not synced: progress lost to a power loss
 * only makes a chunk go again). */
#include "ownership.h"

#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "log.h"

#define KIND_GOSSIP 0u
#define KIND_RECORD 1u
#define META_RING "ring"
#define META_HANDOFF "handoff"
#define RETRY_US 100000u

static uint64_t own_id(const kv_own_t *o, uint32_t kind, uint32_t index) {
  return KV_RING_ID_BIT | (uint64_t)kind << KV_RING_ID_KIND_SHIFT |
         (uint64_t)(o->gen & 0xFFFFFFFFu) << KV_RING_ID_GEN_SHIFT | index;
}

/* ---------------------------------------------------------------- storing */

static kv_err ring_store(kv_own_t *o, kv_status_t *st) {
  uint8_t *bytes;
  size_t len;
  kv_own_encode(o, &bytes, &len);
  kv_err err = kv_storage_meta_put(kv_node_storage(o->node), META_RING, bytes, len, true, st);
  free(bytes);
  return err;
}

/* Layout: epoch (u64), partition (u32), the cursor's keyspace length (u8) and bytes, its key
 * length (u32) and bytes, then a byte per partition (finished). Host order: it never leaves
 * the node. */
static void progress_store(kv_own_t *o) {
  size_t ks = strlen(o->cursor_ks);
  size_t len = 8 + 4 + 1 + ks + 4 + o->cursor_key_bytes + o->ring->partitions;
  uint8_t *b = malloc(len), *p = b;
  KV_ASSERT(b);
  uint32_t key_bytes = (uint32_t)o->cursor_key_bytes;
  memcpy(p, &o->epoch, 8);
  memcpy(p + 8, &o->partition, 4);
  p[12] = (uint8_t)ks;
  memcpy(p + 13, o->cursor_ks, ks);
  p += 13 + ks;
  memcpy(p, &key_bytes, 4);
  if (key_bytes) memcpy(p + 4, o->cursor_key, key_bytes);
  memcpy(p + 4 + key_bytes, o->finished, o->ring->partitions);
  kv_status_t st;
  if (kv_storage_meta_put(kv_node_storage(o->node), META_HANDOFF, b, len, false, &st) != KV_OK)
    KV_WARN("storing the handoff's progress failed (it starts over after a restart): %s",
            st.msg);
  free(b);
}

/* The stored progress, when it is for this HANDOFF epoch. */
static bool progress_load(kv_own_t *o) {
  uint8_t *b;
  size_t len;
  bool found;
  kv_status_t st;
  if (kv_storage_meta_get(kv_node_storage(o->node), META_HANDOFF, &b, &len, &found, &st) !=
          KV_OK ||
      !found)
    return false;
  bool ok = len >= 13;
  uint64_t epoch = 0;
  uint32_t key_bytes = 0;
  size_t ks = ok ? b[12] : 0;
  if (ok) memcpy(&epoch, b, 8);
  ok = ok && epoch == o->ring->epoch && ks <= KV_KEYSPACE_NAME_BYTES_MAX && len >= 17 + ks;
  if (ok) memcpy(&key_bytes, b + 13 + ks, 4);
  ok = ok && len == 17 + ks + key_bytes + o->ring->partitions;
  if (ok) {
    o->epoch = epoch;
    memcpy(&o->partition, b + 8, 4);
    memcpy(o->cursor_ks, b + 13, ks);
    o->cursor_ks[ks] = '\0';
    free(o->cursor_key);
    o->cursor_key = key_bytes ? malloc(key_bytes) : NULL;
    KV_ASSERT(!key_bytes || o->cursor_key);
    if (key_bytes) memcpy(o->cursor_key, b + 17 + ks, key_bytes);
    o->cursor_key_bytes = key_bytes;
    memcpy(o->finished, b + 17 + ks + key_bytes, o->ring->partitions);
  }
  free(b);
  return ok;
}

/* ---------------------------------------------------------------- the ring's moves */

static void cursor_clear(kv_own_t *o) {
  o->cursor_ks[0] = '\0';
  free(o->cursor_key);
  o->cursor_key = NULL;
  o->cursor_key_bytes = 0;
}

/* The first partition from `from` not finished; partitions when none is left. */
static uint32_t next_unfinished(const kv_own_t *o, uint32_t from) {
  while (from < o->ring->partitions && o->finished[from]) from++;
  return from;
}

/* The handoff of the ring's epoch starts over: what this node must stream, from the start. */
static void progress_reset(kv_own_t *o) {
  cursor_clear(o);
  o->epoch = 0;
  o->chunk_pending = 0;
  o->chunk_failed = false;
  o->gen++;
  if (o->ring->phase != KV_RING_HANDOFF) return;
  o->epoch = o->ring->epoch;
  for (uint32_t p = 0; p < o->ring->partitions; p++) {
    uint64_t sources;
    kv_ring_moving_to(o->ring, p, &sources);
    o->finished[p] = !(sources >> o->self & 1);
  }
  o->partition = next_unfinished(o, 0);
  progress_store(o);
}

/* The ring's epoch changed: store it and start its handoff. A ring that cannot be stored
 * is a failing disk; the node goes on with it in memory (and warns), as it would have to
 * with any other write failing. */
static void ring_moved(kv_own_t *o) {
  kv_status_t st;
  if (ring_store(o, &st) != KV_OK) KV_WARN("storing ring epoch %llu failed: %s",
                                            (unsigned long long)o->ring->epoch, st.msg);
  KV_INFO("ring epoch %llu (%s)", (unsigned long long)o->ring->epoch,
          o->ring->phase == KV_RING_HANDOFF   ? "handoff: writes to both claims, reads old"
          : o->ring->phase == KV_RING_FLIPPED ? "flipped: writes to both claims, reads new"
                                              : "stable");
  progress_reset(o);
}

/* Every partition streamed: this node is done, which may flip the ring. */
static void maybe_done(kv_own_t *o) {
  if (o->epoch == 0 || o->partition < o->ring->partitions || (o->ring->done >> o->self & 1))
    return;
  uint64_t was = o->ring->epoch;
  o->ring->done |= 1ull << o->self;
  while (kv_ring_advance(o->ring)) o->ring->seen |= 1ull << o->self;
  if (o->ring->epoch != was) {
    ring_moved(o);
    return;
  }
  kv_status_t st;
  if (ring_store(o, &st) != KV_OK) KV_WARN("storing the ring's handoff mark failed: %s", st.msg);
}

/* ---------------------------------------------------------------- init */

kv_err kv_own_init(kv_own_t *o, kv_node_t *node, const kv_ring_t *initial, uint32_t rate_per_s,
                   kv_status_t *st) {
  memset(o, 0, sizeof *o);
  o->node = node;
  o->self = kv_node_self(node);
  o->rate_per_s = rate_per_s;
  o->ring = malloc(sizeof *o->ring);
  o->scratch = malloc(sizeof *o->scratch);
  o->finished = calloc(initial->partitions, 1);
  if (!o->ring || !o->scratch || !o->finished) {
    kv_own_deinit(o);
    return kv_status_set(st, KV_ENOMEM, "out of memory for the ring");
  }
  *o->ring = *initial;
  uint8_t *b;
  size_t len;
  bool found;
  kv_err err = kv_storage_meta_get(kv_node_storage(node), META_RING, &b, &len, &found, st);
  if (err == KV_OK && found) {
    err = kv_ring_decode(initial, b, len, o->scratch, st);
    free(b);
    if (err == KV_OK && o->scratch->epoch > o->ring->epoch) *o->ring = *o->scratch;
  }
  if (err != KV_OK) {
    kv_own_deinit(o);
    return err;
  }
  o->ring->seen |= 1ull << o->self;
  while (kv_ring_advance(o->ring)) o->ring->seen |= 1ull << o->self;
  if (o->ring->phase == KV_RING_HANDOFF && progress_load(o)) o->gen++;
  else progress_reset(o);
  maybe_done(o);
  return KV_OK;
}

void kv_own_deinit(kv_own_t *o) {
  free(o->ring);
  free(o->scratch);
  free(o->finished);
  free(o->cursor_key);
  free(o->chunk_key);
  memset(o, 0, sizeof *o);
}

kv_err kv_own_change(kv_own_t *o, uint64_t members, uint64_t now_us, kv_status_t *st) {
  kv_err err = kv_ring_plan(o->ring, members, o->scratch, st);
  if (err != KV_OK) return err;
  KV_ASSERT(kv_ring_merge(o->ring, o->scratch, o->self));
  ring_moved(o);
  o->gossip_at_us = now_us;
  maybe_done(o);
  return KV_OK;
}

kv_err kv_own_take(kv_own_t *o, const uint8_t *bytes, size_t len, uint64_t now_us,
                   kv_status_t *st) {
  kv_err err = kv_ring_decode(o->ring, bytes, len, o->scratch, st);
  if (err != KV_OK) return err;
  if (kv_ring_merge(o->ring, o->scratch, o->self)) {
    ring_moved(o);
    maybe_done(o);
  }
  return KV_OK;
}

void kv_own_encode(const kv_own_t *o, uint8_t **bytes, size_t *len) {
  *bytes = malloc(KV_RING_ENCODED_BYTES_MAX);
  KV_ASSERT(*bytes);
  *len = kv_ring_encode(o->ring, *bytes);
}

/* ---------------------------------------------------------------- gossip */

static void gossip(kv_own_t *o, const kv_msg_out_t *out, uint64_t now_us) {
  if (o->ring->epoch <= 1 || now_us < o->gossip_at_us) return;
  o->gossip_at_us = now_us + KV_RING_GOSSIP_MS * 1000ull;
  for (uint32_t k = 0; k < o->ring->node_count; k++) {
    uint32_t peer = (o->gossip_next + k) % o->ring->node_count;
    if (peer == o->self || !out->alive(out->arg, peer)) continue;
    o->gossip_next = peer + 1;
    uint8_t *bytes;
    size_t len;
    kv_own_encode(o, &bytes, &len);
    kv_msg_t m = KV_MSG_INIT(KV_MSG_RING, own_id(o, KIND_GOSSIP, 0));
    m.rec = bytes;
    m.rec_bytes = len;
    kv_status_t st;
    (void)out->send(out->arg, peer, &m, &st); /* a full queue: the next round goes again */
    free(bytes);
    return;
  }
}

/* ---------------------------------------------------------------- handoff chunks */

/* One record of a chunk being gathered. */
typedef struct {
  char keyspace[KV_KEYSPACE_NAME_BYTES_MAX + 1];
  uint8_t *key, *rec;
  size_t key_bytes, rec_bytes;
} item_t;

typedef struct {
  const kv_own_t *o;
  item_t items[KV_OWN_CHUNK_MAX];
  uint32_t count;
  bool more;                     /* some record after the cursor did not fit */
} gather_t;

static int key_cmp(const char *ks_a, const uint8_t *a, size_t a_bytes, const char *ks_b,
                   const uint8_t *b, size_t b_bytes) {
  int c = strcmp(ks_a, ks_b);
  if (c) return c;
  size_t n = a_bytes < b_bytes ? a_bytes : b_bytes;
  c = n ? memcmp(a, b, n) : 0;
  return c ? c : (a_bytes > b_bytes) - (a_bytes < b_bytes);
}

static void item_free(item_t *it) {
  free(it->key);
  free(it->rec);
}

/* Keeps the KV_OWN_CHUNK_MAX smallest records after the cursor, in order. */
static bool gather_one(void *arg, const char *keyspace, const void *key, size_t key_bytes,
                       const void *rec, size_t rec_bytes) {
  gather_t *g = arg;
  const kv_own_t *o = g->o;
  if (o->cursor_ks[0] &&
      key_cmp(keyspace, key, key_bytes, o->cursor_ks, o->cursor_key, o->cursor_key_bytes) <= 0)
    return true;
  uint32_t at = g->count;
  while (at > 0 && key_cmp(keyspace, key, key_bytes, g->items[at - 1].keyspace,
                           g->items[at - 1].key, g->items[at - 1].key_bytes) < 0)
    at--;
  if (at == KV_OWN_CHUNK_MAX) {
    g->more = true;
    return true;
  }
  if (g->count == KV_OWN_CHUNK_MAX) {
    item_free(&g->items[--g->count]);
    g->more = true;
  }
  memmove(&g->items[at + 1], &g->items[at], (g->count - at) * sizeof g->items[0]);
  item_t *it = &g->items[at];
  snprintf(it->keyspace, sizeof it->keyspace, "%s", keyspace);
  it->key = malloc(key_bytes ? key_bytes : 1);
  it->rec = malloc(rec_bytes ? rec_bytes : 1);
  KV_ASSERT(it->key && it->rec);
  memcpy(it->key, key, key_bytes);
  memcpy(it->rec, rec, rec_bytes);
  it->key_bytes = key_bytes;
  it->rec_bytes = rec_bytes;
  g->count++;
  return true;
}

/* Sends the next chunk of o->partition to its targets: every record to every target. */
static void chunk_send(kv_own_t *o, const kv_msg_out_t *out, uint64_t targets,
                       uint64_t now_us) {
  gather_t g;
  memset(&g, 0, sizeof g);
  g.o = o;
  kv_status_t st;
  if (kv_storage_scan_partition(kv_node_storage(o->node), o->partition, gather_one, &g, &st) !=
      KV_OK) {
    KV_WARN("handoff of partition %u could not read it: %s", o->partition, st.msg);
    g.more = true;
    o->chunk_failed = true;
  }
  o->gen++;
  memset(o->chunk_answered, 0, sizeof o->chunk_answered);
  o->chunk_last = !g.more;
  o->chunk_deadline_us = now_us + KV_TIMEOUT_MS_DEFAULT * 1000ull;
  o->next_chunk_us = now_us + (uint64_t)g.count * 1000000u / o->rate_per_s;
  if (g.count > 0) {
    const item_t *last = &g.items[g.count - 1];
    snprintf(o->chunk_ks, sizeof o->chunk_ks, "%s", last->keyspace);
    free(o->chunk_key);
    o->chunk_key = malloc(last->key_bytes ? last->key_bytes : 1);
    KV_ASSERT(o->chunk_key);
    memcpy(o->chunk_key, last->key, last->key_bytes);
    o->chunk_key_bytes = last->key_bytes;
  }
  for (uint32_t i = 0; i < g.count; i++) {
    for (uint32_t t = 0; t < o->ring->node_count; t++) {
      if (!(targets >> t & 1)) continue;
      const item_t *it = &g.items[i];
      kv_msg_t m = kv_msg_write(own_id(o, KIND_RECORD, i << 6 | t), it->keyspace, it->key,
                                it->key_bytes, it->rec, it->rec_bytes, true);
      if (out->send(out->arg, t, &m, &st) == KV_OK) o->chunk_pending++;
      else o->chunk_failed = true;
    }
    item_free(&g.items[i]);
  }
}

/* The chunk is over (every answer in, or given up): the cursor moves past it when all went
 * well, and the partition is finished when it held the last records. */
static void chunk_done(kv_own_t *o, uint64_t now_us) {
  o->gen++;
  if (o->chunk_failed) {
    o->chunk_failed = false;
    o->next_chunk_us = now_us + RETRY_US;
    return;
  }
  if (o->chunk_last) {
    o->finished[o->partition] = 1;
    o->partition = next_unfinished(o, o->partition);
    cursor_clear(o);
  } else {
    snprintf(o->cursor_ks, sizeof o->cursor_ks, "%s", o->chunk_ks);
    free(o->cursor_key);
    o->cursor_key = o->chunk_key;
    o->cursor_key_bytes = o->chunk_key_bytes;
    o->chunk_key = NULL;
  }
  progress_store(o);
  maybe_done(o);
}

static void handoff_tick(kv_own_t *o, const kv_msg_out_t *out, uint64_t now_us) {
  if (o->epoch == 0) return;
  if (o->chunk_pending > 0) {
    if (now_us < o->chunk_deadline_us) return;
    o->chunk_pending = 0;
    o->chunk_failed = true;
    chunk_done(o, now_us);
    return;
  }
  if (o->partition >= o->ring->partitions || now_us < o->next_chunk_us) return;
  uint64_t sources, targets = kv_ring_moving_to(o->ring, o->partition, &sources);
  for (uint32_t t = 0; t < o->ring->node_count; t++)
    if ((targets >> t & 1) && !out->alive(out->arg, t)) return; /* waits for it */
  chunk_send(o, out, targets, now_us);
  if (o->chunk_pending == 0) chunk_done(o, now_us);
}

void kv_own_tick(kv_own_t *o, const kv_msg_out_t *out, uint64_t now_us) {
  gossip(o, out, now_us);
  handoff_tick(o, out, now_us);
}

void kv_own_answer(kv_own_t *o, uint64_t id, kv_err code, const uint8_t *rec, size_t rec_bytes,
                   uint64_t now_us) {
  uint32_t kind = (uint32_t)(id >> KV_RING_ID_KIND_SHIFT) & 0x7u;
  /* Any ring a peer answers with is worth taking, however late: merging only moves on. */
  if (kind == KIND_GOSSIP) {
    kv_status_t st;
    if (code == KV_OK && rec_bytes > 0 && kv_own_take(o, rec, rec_bytes, now_us, &st) != KV_OK)
      KV_WARN("a peer answered gossip with a ring this node cannot take: %s", st.msg);
    return;
  }
  uint32_t index = (uint32_t)(id & ((1u << KV_RING_ID_GEN_SHIFT) - 1));
  uint32_t item = index >> 6, target = index & 63u;
  if (kind != KIND_RECORD || (uint32_t)(id >> KV_RING_ID_GEN_SHIFT) != o->gen ||
      o->chunk_pending == 0 || item >= KV_OWN_CHUNK_MAX ||
      (o->chunk_answered[item] >> target & 1))
    return;
  o->chunk_answered[item] |= 1ull << target; /* a duplicate is counted once */
  if (code != KV_OK) o->chunk_failed = true;
  if (--o->chunk_pending == 0) chunk_done(o, now_us);
}
