/* reaper.c: tombstone reaping (see reaper.h).
 *
 * An id is KV_REAP_ID_BIT | step << 32 | gen << 16 | job << 8 | index, the index being the
 * primary's position (read, remove) or the node's (forget): the job's generation changes
 * whenever the job slot is released, so a late answer about an earlier key or step is
 * ignored. This node's own
 * part of a step runs at once, on the caller's thread, and is never sent. */
#include "reaper.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "dvv.h"
#include "hash.h"
#include "log.h"

kv_err kv_reaper_init(kv_reaper_t *r, kv_node_t *node, const kv_ring_t *ring, kv_hints_t *hints,
                      kv_syncer_t *syncer, kv_sync_fn synced, void *owner, kv_status_t *st) {
  memset(r, 0, sizeof *r);
  r->node = node;
  r->ring = ring;
  r->hints = hints;
  r->syncer = syncer;
  r->synced = synced;
  r->owner = owner;
  for (uint32_t i = 0; i < KV_REAP_IN_FLIGHT; i++) r->jobs[i].reaper = r;
  r->grace_ms = kv_node_config(node)->tombstone_grace_ms;
  r->queue = calloc(KV_REAP_QUEUE_MAX, sizeof *r->queue);
  if (!r->queue) return kv_status_set(st, KV_ENOMEM, "out of memory for the reap queue");
  return KV_OK;
}

void kv_reaper_deinit(kv_reaper_t *r) {
  for (uint32_t i = 0; i < r->count; i++) free(r->queue[(r->head + i) % KV_REAP_QUEUE_MAX].key);
  for (uint32_t i = 0; i < KV_REAP_IN_FLIGHT; i++) {
    free(r->jobs[i].key.key);
    free(r->jobs[i].rec);
  }
  free(r->queue);
  r->queue = NULL;
}

void kv_reaper_add(kv_reaper_t *r, const char *keyspace, const uint8_t *key, size_t key_bytes,
                   uint64_t now_us) {
  const kv_keyspace_conf_t *ks = kv_config_keyspace(kv_node_config(r->node), keyspace);
  KV_ASSERT(ks != NULL); /* the delete was planned */
  uint8_t *copy = r->count < KV_REAP_QUEUE_MAX ? malloc(key_bytes) : NULL;
  if (!copy) {
    r->stats.dropped++;
    return;
  }
  memcpy(copy, key, key_bytes);
  r->queue[(r->head + r->count++) % KV_REAP_QUEUE_MAX] =
      (kv_reap_wait_t){.ks = ks, .key = copy, .key_bytes = key_bytes,
                       .due_us = now_us + (uint64_t)r->grace_ms * 1000};
}

static uint64_t job_id(const kv_reaper_t *r, const kv_reap_job_t *j, uint32_t index) {
  return KV_REAP_ID_BIT | (uint64_t)j->step << KV_REAP_ID_STEP_SHIFT |
         (uint64_t)j->gen << KV_REAP_ID_GEN_SHIFT |
         (uint64_t)(j - r->jobs) << KV_REAP_ID_JOB_SHIFT | index;
}

/* Counts the job's outcome and frees it, or with an fsync of its still pending (the syncer
 * holds the waiter), leaves the freeing to kv_reaper_synced. */
static void job_end(kv_reaper_t *r, kv_reap_job_t *j, bool reaped) {
  if (!j->ending) {
    if (reaped) r->stats.reaped++;
    else r->stats.kept++;
  }
  j->ending = j->sync_pending;
  if (j->ending) return;
  free(j->key.key);
  free(j->rec);
  j->key.key = NULL;
  j->rec = NULL;
  j->busy = false;
  j->gen++;
}

/* One primary's record, from the read step: the reap goes on only while every primary holds
 * the same record and it is all tombstones. */
static void job_took_record(kv_reap_job_t *j, const uint8_t *rec, size_t rec_bytes) {
  if (rec_bytes == 0) {
    j->kept = true;
  } else if (j->rec) {
    j->kept = rec_bytes != j->rec_bytes || memcmp(rec, j->rec, rec_bytes) != 0;
  } else {
    kv_dvv_t obj;
    kv_status_t st;
    kv_status_clear(&st);
    j->kept = kv_dvv_decode(rec, rec_bytes, &obj, &st) != KV_OK;
    if (j->kept) return;
    j->kept = obj.sib_count == 0 || kv_dvv_live_count(&obj) > 0;
    kv_dvv_deinit(&obj);
    j->rec = malloc(rec_bytes);
    j->kept = j->kept || !j->rec;
    if (j->rec) memcpy(j->rec, rec, rec_bytes);
    j->rec_bytes = rec_bytes;
  }
}

/* This node's part of the forget step (kv_coord_reap with hints_only, from the inside). */
static bool forget_here(kv_reaper_t *r, const kv_reap_job_t *j, kv_status_t *st) {
  kv_dvv_t tomb;
  if (kv_dvv_decode(j->rec, j->rec_bytes, &tomb, st) != KV_OK) return false;
  kv_err err = kv_hints_forget(r->hints, j->key.ks->name, j->key.key, j->key.key_bytes,
                               &tomb.cc, st);
  kv_dvv_deinit(&tomb);
  return err == KV_OK;
}

/* This node's part of the step, or the step's message to another node. */
static void job_ask(kv_reaper_t *r, const kv_msg_out_t *tr, kv_reap_job_t *j,
                    uint32_t index, uint32_t node) {
  const char *ks = j->key.ks->name;
  kv_status_t st;
  kv_status_clear(&st);
  j->answered[index] = node == kv_node_self(r->node);
  if (j->answered[index] && j->step == KV_REAP_READ) {
    uint8_t *rec = NULL;
    size_t rec_bytes = 0;
    j->kept = kv_node_read_record(r->node, ks, j->key.key, j->key.key_bytes, &rec, &rec_bytes,
                                  &st) != KV_OK;
    if (!j->kept) job_took_record(j, rec, rec_bytes);
    free(rec);
  } else if (j->answered[index] && j->step == KV_REAP_FORGET) {
    j->kept = !forget_here(r, j, &st);
    if (!j->kept) {
      /* Answered when the fsync is in, like the other nodes' parts. */
      j->answered[index] = false;
      j->waiting++;
      j->sync_pending = true;
      kv_syncer_push(r->syncer, &j->waiter, r->synced);
    }
  } else if (j->answered[index]) {
    /* A record written meanwhile stays here; the other primaries' reaps still go. */
    kv_node_reap(r->node, ks, j->key.key, j->key.key_bytes,
                 kv_hash_leaf(j->hash, j->rec, j->rec_bytes), &st);
  } else {
    uint64_t id = job_id(r, j, index);
    kv_msg_t m = kv_msg_read(id, ks, j->key.key, j->key.key_bytes);
    if (j->step != KV_REAP_READ) {
      m.kind = KV_MSG_REAP;
      m.rec = j->rec;
      m.rec_bytes = j->rec_bytes;
      m.hints_only = j->step == KV_REAP_FORGET;
    }
    kv_err err = tr->send(tr->arg, node, &m, &st);
    j->kept = err != KV_OK;
    j->waiting++;
  }
}

/* Starts the job's current step: the primaries are asked, or for the forget every node. */
static void job_step(kv_reaper_t *r, const kv_msg_out_t *tr, kv_reap_job_t *j,
                     uint64_t now_us) {
  j->waiting = 0;
  j->deadline_us = now_us + KV_TIMEOUT_MS_DEFAULT * 1000ull;
  uint32_t count = j->step == KV_REAP_FORGET ? r->ring->node_count : j->primary_count;
  for (uint32_t i = 0; i < count && !j->kept; i++)
    job_ask(r, tr, j, i, j->step == KV_REAP_FORGET ? i : j->primaries[i]);
}

/* A step is over when every answer is in: the next starts, or after the last the job ends. */
static void job_advance(kv_reaper_t *r, const kv_msg_out_t *tr, kv_reap_job_t *j,
                        uint64_t now_us) {
  while (!j->kept && j->waiting == 0 && j->step != KV_REAP_REMOVE) {
    j->step++;
    job_step(r, tr, j, now_us);
  }
  if (j->kept) job_end(r, j, false);
  else if (j->waiting == 0) job_end(r, j, true);
}

static void job_start(kv_reaper_t *r, const kv_msg_out_t *tr, kv_reap_job_t *j,
                      uint64_t now_us) {
  j->key = r->queue[r->head];
  r->head = (r->head + 1) % KV_REAP_QUEUE_MAX;
  r->count--;
  j->busy = true;
  j->kept = false;
  j->step = KV_REAP_READ;
  j->hash = kv_hash_key(j->key.ks->name, j->key.key, j->key.key_bytes);
  kv_preflist_t pl;
  kv_ring_preflist(r->ring, j->key.ks, kv_hash_partition(j->hash, r->ring->partitions), &pl);
  j->primary_count = pl.primary_count;
  for (uint32_t i = 0; i < pl.primary_count; i++) j->primaries[i] = pl.node[i];
  /* Every node takes part in the forget: one believed down could not, and its hints could
   * bring the key back. The key then waits for another delete. While the ring moves, the key's
   * records are on their way to new owners, which this job would not ask: kept too. */
  for (uint32_t n = 0; n < r->ring->node_count; n++)
    if (n != kv_node_self(r->node) && !tr->alive(tr->arg, n)) j->kept = true;
  if (kv_ring_moving(r->ring)) j->kept = true;
  if (!j->kept) job_step(r, tr, j, now_us);
  job_advance(r, tr, j, now_us);
}

void kv_reaper_synced(kv_reaper_t *r, const kv_msg_out_t *tr, kv_sync_waiter_t *w,
                      bool ok, uint64_t now_us) {
  kv_reap_job_t *j = (kv_reap_job_t *)((char *)w - offsetof(kv_reap_job_t, waiter));
  KV_ASSERT(j->busy && j->sync_pending);
  j->sync_pending = false;
  if (j->ending) {
    job_end(r, j, false);
    return;
  }
  uint32_t self = kv_node_self(r->node);
  j->answered[self] = true;
  j->waiting--;
  j->kept = j->kept || !ok;
  job_advance(r, tr, j, now_us);
}

void kv_reaper_tick(kv_reaper_t *r, const kv_msg_out_t *tr, uint64_t now_us) {
  for (uint32_t i = 0; i < KV_REAP_IN_FLIGHT; i++) {
    kv_reap_job_t *j = &r->jobs[i];
    if (j->busy && !j->ending && now_us >= j->deadline_us) {
      j->kept = true;
      job_advance(r, tr, j, now_us);
    }
  }
  for (uint32_t i = 0; i < KV_REAP_IN_FLIGHT && r->count > 0; i++) {
    if (r->jobs[i].busy) continue;
    if (r->queue[r->head].due_us > now_us) break;
    job_start(r, tr, &r->jobs[i], now_us);
  }
  r->stats.waiting = r->count;
}

void kv_reaper_answer(kv_reaper_t *r, const kv_msg_out_t *tr, uint64_t id, kv_err code,
                      const uint8_t *rec, size_t rec_bytes, uint64_t now_us) {
  uint32_t job = (uint32_t)(id >> KV_REAP_ID_JOB_SHIFT) & 0xFFu, index = (uint32_t)id & 0xFFu;
  if (job >= KV_REAP_IN_FLIGHT) return;
  kv_reap_job_t *j = &r->jobs[job];
  if (!j->busy || j->ending || (uint16_t)(id >> KV_REAP_ID_GEN_SHIFT) != j->gen ||
      ((id >> KV_REAP_ID_STEP_SHIFT) & 0x3u) != (uint64_t)j->step || index >= KV_NODES_MAX ||
      j->answered[index])
    return;
  j->answered[index] = true;
  j->waiting--;
  /* A remove refused because the record changed is the write that landed: kept. */
  if (code != KV_OK) j->kept = true;
  else if (j->step == KV_REAP_READ) job_took_record(j, rec, rec_bytes);
  job_advance(r, tr, j, now_us);
}
