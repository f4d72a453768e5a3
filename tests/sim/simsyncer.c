/* simsyncer.c: the syncer.h API for the simulator: no thread; a push asks the world to run
 * the group commit later (sim_sync_wanted), and sim_syncer_run is that commit: one
 * kv_node_sync covering every write so far, then the callbacks queued before it began.
 * kv_syncer_stop is not provided: simulated processes only crash (sim_syncer_drop). */
#include "sim.h"

#include "log.h"

void kv_syncer_start(kv_syncer_t *sy, kv_node_t *node) {
  sy->node = node;
  sy->head = sy->tail = NULL;
  sy->stop = false;
}

void kv_syncer_push(kv_syncer_t *sy, kv_sync_waiter_t *w, kv_sync_fn fn) {
  w->fn = fn;
  w->next = NULL;
  if (sy->tail) sy->tail->next = w;
  else sy->head = w;
  sy->tail = w;
  sim_sync_wanted(sy);
}

void sim_syncer_run(kv_syncer_t *sy, uint64_t mono_us) {
  kv_sync_waiter_t *batch = sy->head;
  sy->head = sy->tail = NULL;
  kv_status_t st;
  kv_status_clear(&st);
  kv_err err = kv_node_sync(sy->node, &st);
  KV_ASSERT(err == KV_OK);
  while (batch) {
    kv_sync_waiter_t *w = batch;
    batch = w->next; /* read before fn: fn may free the memory w lives in */
    w->fn(w, &st, mono_us);
  }
}

void sim_syncer_drop(kv_syncer_t *sy) { sy->head = sy->tail = NULL; }
