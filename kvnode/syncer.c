/* syncer.c: the group-commit thread (see syncer.h). */
#include "syncer.h"

#include <time.h>

#include "log.h"

void kv_syncer_push(kv_syncer_t *sy, kv_sync_waiter_t *w, kv_sync_fn fn) {
  w->fn = fn;
  w->next = NULL;
  pthread_mutex_lock(&sy->lock);
  if (sy->tail) sy->tail->next = w;
  else sy->head = w;
  sy->tail = w;
  pthread_cond_signal(&sy->cond);
  pthread_mutex_unlock(&sy->lock);
}

/* Takes the whole queue; NULL once stopped and empty. */
static kv_sync_waiter_t *syncer_take(kv_syncer_t *sy) {
  pthread_mutex_lock(&sy->lock);
  while (!sy->head && !sy->stop) pthread_cond_wait(&sy->cond, &sy->lock);
  kv_sync_waiter_t *batch = sy->head;
  sy->head = sy->tail = NULL;
  pthread_mutex_unlock(&sy->lock);
  return batch;
}

static void *syncer_main(void *arg) {
  kv_syncer_t *sy = arg;
  kv_sync_waiter_t *batch;
  while ((batch = syncer_take(sy)) != NULL) {
    kv_status_t st;
    kv_status_clear(&st);
    if (kv_node_sync(sy->node, &st) != KV_OK)
      KV_ERROR("durable writes not acknowledged: %s", st.msg);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t mono_us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    while (batch) {
      kv_sync_waiter_t *w = batch;
      batch = w->next; /* read before fn: fn may free the memory w lives in */
      w->fn(w, &st, mono_us);
    }
  }
  return NULL;
}

void kv_syncer_start(kv_syncer_t *sy, kv_node_t *node) {
  sy->node = node;
  sy->head = sy->tail = NULL;
  sy->stop = false;
  pthread_mutex_init(&sy->lock, NULL);
  pthread_cond_init(&sy->cond, NULL);
  pthread_create(&sy->thread, NULL, syncer_main, sy);
}

void kv_syncer_stop(kv_syncer_t *sy) {
  pthread_mutex_lock(&sy->lock);
  sy->stop = true;
  pthread_cond_signal(&sy->cond);
  pthread_mutex_unlock(&sy->lock);
  pthread_join(sy->thread, NULL);
  pthread_cond_destroy(&sy->cond);
  pthread_mutex_destroy(&sy->lock);
}
