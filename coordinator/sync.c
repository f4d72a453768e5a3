/* sync.c: the core's group-commit queue (see sync.h). */
#include "sync.h"

#include <stddef.h>

void kv_syncer_init(kv_syncer_t *sy, void (*wanted)(void *arg), void *arg) {
  sy->head = sy->tail = NULL;
  sy->wanted = wanted;
  sy->arg = arg;
}

void kv_syncer_push(kv_syncer_t *sy, kv_sync_waiter_t *w, kv_sync_fn fn) {
  w->fn = fn;
  w->next = NULL;
  if (sy->tail) {
    sy->tail->next = w;
  } else {
    sy->head = w;
    sy->wanted(sy->arg);
  }
  sy->tail = w;
}

kv_sync_waiter_t *kv_syncer_take(kv_syncer_t *sy) {
  kv_sync_waiter_t *batch = sy->head;
  sy->head = sy->tail = NULL;
  return batch;
}

void kv_syncer_done(kv_sync_waiter_t *batch, const kv_status_t *st, uint64_t mono_us) {
  while (batch) {
    kv_sync_waiter_t *w = batch;
    batch = w->next; /* read before fn: fn may free the memory w lives in */
    w->fn(w, st, mono_us);
  }
}
