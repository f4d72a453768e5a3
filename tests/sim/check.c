/* check.c: the checkers over a simulated run (the list is in workload.h). Each failure is
 * one sentence in w->failure naming what broke; the run's seed replays it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "log.h"
#include "workload.h"

static void dot_show(const kv_dot_t *d, char *buf, size_t bytes) {
  snprintf(buf, bytes, "(%s/%016llx, %llu)", d->actor.node,
           (unsigned long long)d->actor.incarnation, (unsigned long long)d->counter);
}

/* A put's acknowledgement may be undone by a power loss after it unless it was durable. */
static bool op_exempt(const world_t *w, const op_t *put) {
  return !put->durable && w->power_losses > 0 && w->last_power_loss_us >= put->start_us;
}

/* Whether two operations' quorums must overlap in a replica: r + w > N, and when either
 * was sloppy (fallbacks may have counted) their primaries alone, pr + pw > N. */
static bool quorums_overlap(const op_t *a, const op_t *b) {
  if (a->needed + b->needed <= SIM_N) return false;
  return !(a->sloppy || b->sloppy) || a->primaries + b->primaries > SIM_N;
}

/* ---- read_sees_acked ---------------------------------------------------------------- */

static void check_monotonic(world_t *w, const op_t *read);

void check_read(world_t *w, const op_t *read) {
  const struct workload *wl = w->wl;
  check_monotonic(w, read);
  for (uint32_t i = 0; i < wl->op_count; i++) {
    const op_t *p = &wl->ops[i];
    if (p->op != KV_OP_PUT || p->outcome != OUT_OK || p->key != read->key) continue;
    if (p->end_us >= read->start_us || !quorums_overlap(p, read) || op_exempt(w, p)) continue;
    /* A reap since the put forgot a delete's context along with the put (see below). */
    if (w->reaped_us[read->key] > p->start_us) continue;
    if (kv_cc_covers(read->seen, &p->dot)) continue;
    if (w->failure[0]) return;
    char dot[128];
    dot_show(&p->dot, dot, sizeof dot);
    world_fail(w,
               "a read of k%u (r=%u, at %llu us) missed put %s (w=%u, dot %s) acknowledged at "
               "%llu us",
               read->key, read->needed, (unsigned long long)read->start_us, p->value, p->needed,
               dot, (unsigned long long)p->end_us);
    return;
  }
}

/* ---- monotonic_reads ---------------------------------------------------------------- */

static void check_monotonic(world_t *w, const op_t *read) {
  const struct workload *wl = w->wl;
  for (uint32_t i = 0; i < wl->op_count; i++) {
    const op_t *g = &wl->ops[i];
    if (g->op != KV_OP_GET || g->outcome != OUT_OK || !g->repair_blocking || g == read ||
        g->key != read->key || g->end_us >= read->start_us || !quorums_overlap(g, read))
      continue;
    if (w->power_losses > 0 && w->last_power_loss_us >= g->start_us) continue;
    /* A key reaped since g began (checked as the read ends) has no context left: a read
     * can then only see what was written after. That nothing the reaped tombstone covered
     * comes back is no_lost_write's check at the end. */
    if (w->reaped_us[read->key] > g->start_us) continue;
    kv_order_t order = kv_cc_compare(g->seen, read->seen);
    if (order == KV_ORDER_EQUAL || order == KV_ORDER_BEFORE) continue;
    world_fail(w,
               "a read of k%u (r=%u, at %llu us) went back on a read with blocking repair "
               "(r=%u) answered at %llu us",
               read->key, read->needed, (unsigned long long)read->start_us, g->needed,
               (unsigned long long)g->end_us);
    return;
  }
}

/* ---- durable_acked ------------------------------------------------------------------ */

void check_durable(world_t *w, const op_t *put) {
  /* Deleted and reaped while the put waited for its fsyncs (a grace period can be 0). */
  if (w->reaped_us[put->key] > put->start_us) return;
  size_t key_bytes;
  const uint8_t *key = sim_key(put->key, &key_bytes);
  uint32_t partition = kv_hash_partition(kv_hash_key(SIM_KEYSPACE, key, key_bytes),
                                         w->cfg.partitions);
  uint32_t holders = 0;
  for (uint32_t i = 0; i < w->node_count; i++) {
    char disk[16];
    snprintf(disk, sizeof disk, "n%u", i + 1);
    /* Its replica, else a hint it keeps for any node (as a fallback, or a coordinator). */
    bool holds = false;
    for (uint32_t t = 0; t <= w->node_count && !holds; t++) {
      uint8_t *rec;
      size_t rec_bytes;
      if (t == w->node_count)
        sim_disk_durable_get(disk, partition, SIM_KEYSPACE, key, key_bytes, &rec, &rec_bytes);
      else
        sim_disk_durable_hint_get(disk, t, SIM_KEYSPACE, key, key_bytes, &rec, &rec_bytes);
      kv_dvv_t o;
      kv_status_t st;
      if (rec && kv_dvv_decode(rec, rec_bytes, &o, &st) == KV_OK) {
        holds = kv_cc_covers(&o.cc, &put->dot);
        kv_dvv_deinit(&o);
      }
      free(rec);
    }
    holders += holds;
  }
  if (holders < put->needed)
    world_fail(w, "durable put %s of k%u was acknowledged at w=%u with %u synced copies",
               put->value, put->key, put->needed, holders);
}

/* ---- dots_unique -------------------------------------------------------------------- */

static int dot_seen_cmp(const dot_seen_t *a, uint32_t key, const kv_dot_t *dot) {
  if (a->key != key) return a->key < key ? -1 : 1;
  return kv_dot_cmp(&a->dot, dot);
}

void check_dot(world_t *w, uint32_t key, const kv_dot_t *dot, const uint8_t *value,
               uint32_t value_bytes, bool tombstone) {
  struct workload *wl = w->wl;
  uint64_t h = tombstone ? 0 : XXH64(value, value_bytes, 1);
  uint32_t lo = 0, hi = wl->dot_count;
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    if (dot_seen_cmp(&wl->dots[mid], key, dot) < 0) lo = mid + 1;
    else hi = mid;
  }
  if (lo < wl->dot_count && dot_seen_cmp(&wl->dots[lo], key, dot) == 0) {
    if (wl->dots[lo].value_hash != h) {
      char d[128];
      dot_show(dot, d, sizeof d);
      world_fail(w, "dot %s of k%u names two different values (now '%.*s')", d, key,
                 (int)value_bytes, tombstone ? "" : (const char *)value);
    }
    return;
  }
  if (wl->dot_count == wl->dot_cap) {
    wl->dot_cap = wl->dot_cap ? wl->dot_cap * 2 : 256;
    wl->dots = realloc(wl->dots, wl->dot_cap * sizeof *wl->dots);
    KV_ASSERT(wl->dots != NULL);
  }
  memmove(&wl->dots[lo + 1], &wl->dots[lo], (wl->dot_count - lo) * sizeof *wl->dots);
  wl->dots[lo] = (dot_seen_t){.key = key, .dot = *dot, .value_hash = h};
  wl->dot_count++;
}

void check_answer_dots(world_t *w, uint32_t key, const kv_dvv_t *o) {
  for (uint32_t i = 0; i < o->sib_count; i++)
    check_dot(w, key, &o->sib[i].dot, o->sib[i].value, o->sib[i].value_bytes, o->sib[i].tombstone);
}

/* ---- records_valid ------------------------------------------------------------------ */

typedef struct {
  world_t *w;
  uint32_t node;
  kv_dvv_t *states;              /* [key]: this node's state, when has[key] */
  bool *has;
} scan_t;

static bool scan_record(void *arg, const char *keyspace, const void *key, size_t key_bytes,
                        const void *rec, size_t rec_bytes) {
  scan_t *sc = arg;
  uint32_t k = sim_key_index(key, key_bytes);
  kv_dvv_t o;
  kv_status_t st;
  if (kv_dvv_decode(rec, rec_bytes, &o, &st) != KV_OK) {
    world_fail(sc->w, "n%u holds a record of k%u that does not decode: %s", sc->node + 1, k,
               st.msg);
    return true;
  }
  if (!kv_dvv_check(&o, &st))
    world_fail(sc->w, "n%u holds a malformed record of k%u: %s", sc->node + 1, k, st.msg);
  check_answer_dots(sc->w, k, &o);
  sc->states[k] = o;
  sc->has[k] = true;
  return true;
}

static bool merged(const kv_dvv_t *a, const kv_dvv_t *b, kv_dvv_t *out) {
  kv_status_t st;
  KV_ASSERT(kv_dvv_copy(out, a) == KV_OK);
  if (kv_dvv_merge(out, b, &st) == KV_OK) return true;
  kv_dvv_deinit(out);
  return false; /* over a limit: the laws are checked where merges succeed */
}

/* merge(a, b) == merge(b, a), merge(a, a) == a, and with c, associativity. */
static void check_laws(world_t *w, uint32_t key, const kv_dvv_t *a, const kv_dvv_t *b,
                       const kv_dvv_t *c) {
  kv_dvv_t ab, ba, aa, ab_c, bc, a_bc;
  if (merged(a, a, &aa)) {
    if (!kv_dvv_equal(&aa, a)) world_fail(w, "merging k%u's state with itself changed it", key);
    kv_dvv_deinit(&aa);
  }
  if (!merged(a, b, &ab)) return;
  if (merged(b, a, &ba)) {
    if (!kv_dvv_equal(&ab, &ba))
      world_fail(w, "merging two replicas of k%u is not commutative", key);
    kv_dvv_deinit(&ba);
  }
  if (c && merged(&ab, c, &ab_c)) {
    if (merged(b, c, &bc)) {
      if (merged(a, &bc, &a_bc)) {
        if (!kv_dvv_equal(&ab_c, &a_bc))
          world_fail(w, "merging three replicas of k%u is not associative", key);
        kv_dvv_deinit(&a_bc);
      }
      kv_dvv_deinit(&bc);
    }
    kv_dvv_deinit(&ab_c);
  }
  kv_dvv_deinit(&ab);
}

void check_records(world_t *w) {
  static kv_dvv_t states[SIM_NODES_MAX][SIM_KEYS_MAX];
  bool has[SIM_NODES_MAX][SIM_KEYS_MAX];
  memset(has, 0, sizeof has);
  for (uint32_t i = 0; i < w->node_count; i++) {
    if (!w->nodes[i].up) continue;
    scan_t sc = {.w = w, .node = i, .states = states[i], .has = has[i]};
    kv_status_t st;
    for (uint32_t p = 0; p < w->cfg.partitions; p++)
      KV_ASSERT(kv_storage_scan_partition(&w->nodes[i].storage, p, scan_record, &sc, &st) ==
                KV_OK);
  }
  for (uint32_t k = 0; k < SIM_KEYS_MAX; k++) {
    const kv_dvv_t *held[SIM_NODES_MAX];
    uint32_t n = 0;
    for (uint32_t i = 0; i < w->node_count; i++)
      if (has[i][k]) held[n++] = &states[i][k];
    for (uint32_t a = 0; a < n; a++)
      for (uint32_t b = a + 1; b < n; b++)
        check_laws(w, k, held[a], held[b], b + 1 < n ? held[b + 1] : NULL);
  }
  for (uint32_t i = 0; i < w->node_count; i++)
    for (uint32_t k = 0; k < SIM_KEYS_MAX; k++)
      if (has[i][k]) kv_dvv_deinit(&states[i][k]);
}

/* ---- no_lost_write ------------------------------------------------------------------ */

/* Whether a live sibling holds value as one of its lines (a set-union value holds many). */
static bool present(const kv_dvv_t *o, const char *value) {
  size_t len = strlen(value);
  for (uint32_t i = 0; i < o->sib_count; i++) {
    if (o->sib[i].tombstone) continue;
    const uint8_t *p = o->sib[i].value, *end = p + o->sib[i].value_bytes;
    while (p && p < end) {
      const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
      const uint8_t *stop = nl ? nl : end;
      if ((size_t)(stop - p) == len && memcmp(p, value, len) == 0) return true;
      p = stop + 1;
    }
  }
  return false;
}

/* Whether delete q, sent without a context, may have removed put p: only a version some
 * replica held when q's read asked it, so one minted before q ended (one whose end is unknown
 * may have been read at any time). An answered q says more: its tombstone covers no version
 * its answer shows live, and nothing its answer's context does not cover. */
static bool blind_delete_removed(const op_t *q, const op_t *p) {
  if (q->outcome == OUT_UNKNOWN) return true;
  if (p->start_us >= q->end_us) return false;
  if (q->outcome != OUT_OK) return true;
  for (uint32_t i = 0; i < q->live_count; i++)
    if (kv_dot_cmp(&q->live[i], &p->dot) == 0) return false;
  return kv_cc_covers(q->seen, &p->dot);
}

/* Whether a write (acknowledged or not: a failed write may still have landed) may have
 * replaced put p: one sent with a context covering its dot, or a delete without a context
 * that may have read it. */
static bool replaced(const struct workload *wl, const op_t *p) {
  for (uint32_t i = 0; i < wl->op_count; i++) {
    const op_t *q = &wl->ops[i];
    if (q->op == KV_OP_GET || q->key != p->key) continue;
    if (q->ctx ? kv_cc_covers(q->ctx, &p->dot) : q->op == KV_OP_DELETE && blind_delete_removed(q, p))
      return true;
  }
  return false;
}

/* An acknowledged delete without a context read at its level (r = w, pr = pw): every put
 * acknowledged before it began whose quorum its read's must meet was read, so covered by its
 * tombstone, and must not be back. */
static void check_blind_delete(world_t *w, const op_t *q, const kv_dvv_t *final) {
  const struct workload *wl = w->wl;
  for (uint32_t i = 0; i < wl->op_count && !w->failure[0]; i++) {
    const op_t *p = &wl->ops[i];
    if (p->op != KV_OP_PUT || p->outcome != OUT_OK || p->key != q->key || op_exempt(w, p) ||
        p->end_us >= q->start_us || !quorums_overlap(p, q))
      continue;
    for (uint32_t s = 0; s < final->sib_count; s++) {
      if (final->sib[s].tombstone || kv_dot_cmp(&final->sib[s].dot, &p->dot) != 0) continue;
      world_fail(w, "put %s of k%u (w=%u), acknowledged at %llu us, is back after a delete "
                 "without a context (w=%u) that began at %llu us", p->value, p->key, p->needed,
                 (unsigned long long)p->end_us, q->needed, (unsigned long long)q->start_us);
    }
  }
}

void check_final(world_t *w) {
  const struct workload *wl = w->wl;
  for (uint32_t i = 0; i < wl->op_count && !w->failure[0]; i++) {
    const op_t *p = &wl->ops[i];
    if (p->outcome != OUT_OK || op_exempt(w, p) || p->final) continue;
    const kv_dvv_t *final = &wl->final[p->key];
    /* With lww (or region-priority), a handler may discard a put: never silently, so a
     * missing put must be in some node's journal. With siblings and set-union (whose
     * fallback here is set-union), nothing is discarded at all. */
    if (p->op == KV_OP_PUT && !present(final, p->value) && !replaced(wl, p) &&
        !(w->lossy && world_discarded(w, p->key, &p->dot, p->value))) {
      char dot[128];
      dot_show(&p->dot, dot, sizeof dot);
      world_fail(w, "put %s of k%u (dot %s, w=%u, acknowledged at %llu us) is lost", p->value,
                 p->key, dot, p->needed, (unsigned long long)p->end_us);
    }
    if (p->op == KV_OP_DELETE && p->ctx) {
      for (uint32_t s = 0; s < final->sib_count; s++) {
        if (final->sib[s].tombstone || !kv_cc_covers(p->ctx, &final->sib[s].dot)) continue;
        world_fail(w, "a value of k%u that an acknowledged delete removed is back", p->key);
      }
    }
    if (p->op == KV_OP_DELETE && !p->ctx) check_blind_delete(w, p, final);
  }
}

/* ---- replicas_converge ------------------------------------------------------------- */

uint64_t check_hints_pending(world_t *w) {
  uint64_t pending = 0;
  for (uint32_t i = 0; i < w->node_count; i++) {
    if (!w->nodes[i].up) continue;
    for (uint32_t t = 0; t < w->node_count; t++) {
      kv_hint_stats_t hs;
      kv_coord_hint_stats(w->nodes[i].coord, t, &hs);
      pending += hs.pending;
    }
  }
  return pending;
}

/* Whether any hint was dropped in the run, by a process still running or one that ended. */
static bool hints_dropped(world_t *w) {
  if (w->hints_dropped > 0) return true;
  for (uint32_t i = 0; i < w->node_count; i++)
    for (uint32_t t = 0; t < w->node_count; t++) {
      kv_hint_stats_t hs;
      kv_coord_hint_stats(w->nodes[i].coord, t, &hs);
      if (hs.dropped > 0) return true;
    }
  return false;
}

/* Whether node's record of key covers dot. */
static bool replica_covers(world_t *w, uint32_t node, uint32_t key, const kv_dot_t *dot) {
  size_t key_bytes;
  const uint8_t *k = sim_key(key, &key_bytes);
  uint8_t *rec;
  size_t rec_bytes;
  kv_status_t st;
  KV_ASSERT(kv_node_read_record(w->nodes[node].node, SIM_KEYSPACE, k, key_bytes, &rec,
                                &rec_bytes, &st) == KV_OK);
  bool covers = false;
  kv_dvv_t o;
  if (rec && kv_dvv_decode(rec, rec_bytes, &o, &st) == KV_OK) {
    covers = kv_cc_covers(&o.cc, dot);
    kv_dvv_deinit(&o);
  }
  free(rec);
  return covers;
}

/* Anti-entropy's promise: once it has had its rounds, the replicas of a key hold the same
 * record, whatever hints were dropped or lost. */
static void check_identical(world_t *w) {
  const kv_keyspace_conf_t *ks = kv_config_keyspace(&w->cfg, SIM_KEYSPACE);
  for (uint32_t key = 0; key < w->wl->key_count && !w->failure[0]; key++) {
    size_t key_bytes;
    const uint8_t *k = sim_key(key, &key_bytes);
    uint32_t partition = kv_hash_partition(kv_hash_key(SIM_KEYSPACE, k, key_bytes),
                                           w->cfg.partitions);
    kv_preflist_t pl;
    kv_ring_preflist(world_ring(w, 0), ks, partition, &pl); /* settled: every node's */
    uint8_t *first = NULL;
    size_t first_bytes = 0;
    for (uint32_t r = 0; r < pl.primary_count; r++) {
      uint8_t *rec;
      size_t rec_bytes;
      kv_status_t st;
      KV_ASSERT(kv_node_read_record(w->nodes[pl.node[r]].node, SIM_KEYSPACE, k, key_bytes, &rec,
                                    &rec_bytes, &st) == KV_OK);
      if (r == 0) {
        first = rec;
        first_bytes = rec_bytes;
        continue;
      }
      if (rec_bytes != first_bytes || (rec_bytes && memcmp(rec, first, rec_bytes) != 0))
        world_fail(w, "anti-entropy (every %u ms) left replicas n%u and n%u of k%u different",
                   w->aae_interval_ms, pl.node[0] + 1, pl.node[r] + 1, key);
      free(rec);
      if (w->failure[0]) break;
    }
    free(first);
  }
}

void check_converged(world_t *w) {
  bool aae = w->aae_interval_ms > 0;
  if (aae) check_identical(w);
  /* Without anti-entropy only hints carry writes to replicas that missed them; a power loss
   * takes back unsynced writes (and hints) and is left to no_lost_write. */
  if (w->power_losses > 0 || (!aae && hints_dropped(w))) return;
  const struct workload *wl = w->wl;
  const kv_keyspace_conf_t *ks = kv_config_keyspace(&w->cfg, SIM_KEYSPACE);
  for (uint32_t i = 0; i < wl->op_count && !w->failure[0]; i++) {
    const op_t *p = &wl->ops[i];
    if (p->op != KV_OP_PUT || p->outcome != OUT_OK) continue;
    /* A coordinator that crashed before the write finished kept no hints for it. */
    if (!aae && world_crashed_between(w, p->coordinator, p->start_us, p->end_us + 2000000))
      continue;
    /* A delete replaced it (or a handler discarded it for a tombstone), and the tombstone
     * was reaped with the dots it covered. */
    if (w->reaped_us[p->key] > p->start_us &&
        (replaced(wl, p) ||
         (w->lossy && world_discarded(w, p->key, &p->dot, p->value))))
      continue;
    size_t key_bytes;
    const uint8_t *k = sim_key(p->key, &key_bytes);
    uint32_t partition = kv_hash_partition(kv_hash_key(SIM_KEYSPACE, k, key_bytes),
                                           w->cfg.partitions);
    kv_preflist_t pl;
    kv_ring_preflist(world_ring(w, 0), ks, partition, &pl); /* settled: every node's */
    for (uint32_t r = 0; r < pl.primary_count; r++) {
      if (replica_covers(w, pl.node[r], p->key, &p->dot)) continue;
      world_fail(w, "replica n%u of k%u never got put %s (acknowledged at %llu us, w=%u)",
                 pl.node[r] + 1, p->key, p->value, (unsigned long long)p->end_us, p->needed);
      break;
    }
  }
}

/* ---- bounded ------------------------------------------------------------------------ */

void check_bounded(world_t *w) {
  for (uint32_t i = 0; i < w->node_count; i++) {
    sim_node_t *n = &w->nodes[i];
    if (!n->up) continue;
    uint32_t held = kv_coord_in_flight(n->coord);
    if (held != 0)
      world_fail(w, "n%u still holds %u requests after the cluster settled", i + 1, held);
    if (n->syncer.head) world_fail(w, "n%u still has writes waiting for an fsync", i + 1);
    for (uint32_t t = 0; t < w->node_count; t++) {
      kv_hint_stats_t hs;
      kv_coord_hint_stats(n->coord, t, &hs);
      if (hs.pending > 0)
        world_fail(w, "n%u still keeps %llu hints for n%u after the cluster settled", i + 1,
                   (unsigned long long)hs.pending, t + 1);
    }
  }
}

/* ---- accurate ----------------------------------------------------------------------- */

void check_accurate_start(world_t *w) {
  for (uint32_t i = 0; i < w->node_count; i++)
    for (uint32_t j = 0; j < w->node_count; j++) {
      kv_peer_liveness_t lv;
      kv_coord_liveness(w->nodes[i].coord, j, w->now_us, &lv);
      w->settled_downs[i][j] = lv.downs;
    }
}

void check_accurate(world_t *w) {
  for (uint32_t i = 0; i < w->node_count; i++)
    for (uint32_t j = 0; j < w->node_count; j++) {
      kv_peer_liveness_t lv;
      kv_coord_liveness(w->nodes[i].coord, j, w->now_us, &lv);
      if (lv.downs > w->settled_downs[i][j])
        world_fail(w, "n%u judged n%u down %llu times after the cluster settled (every node up, "
                   "the network healed): its failure detector accuses live peers (phi %.1f)",
                   i + 1, j + 1, (unsigned long long)(lv.downs - w->settled_downs[i][j]),
                   lv.phi);
      else if (!lv.up)
        world_fail(w, "n%u still believes n%u down after the cluster settled", i + 1, j + 1);
    }
}
