/* driver.c: the core's lock and the group-commit thread (see driver.h). */
#include "driver.h"

#include <time.h>

#include "log.h"

static uint64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* The core's SYNC effect; called with the lock held. */
static void sync_wanted(void *arg) {
  kv_driver_t *d = arg;
  pthread_cond_signal(&d->sync_wanted);
}

static void *sync_main(void *arg) {
  kv_driver_t *d = arg;
  pthread_mutex_lock(&d->lock);
  for (;;) {
    while (!d->sync.head && !d->stop) pthread_cond_wait(&d->sync_wanted, &d->lock);
    kv_sync_waiter_t *batch = kv_syncer_take(&d->sync);
    if (!batch) break; /* stopped, and nothing is waiting */
    pthread_mutex_unlock(&d->lock);
    kv_status_t st;
    kv_status_clear(&st);
    if (kv_storage_sync(d->storage, &st) != KV_OK)
      KV_ERROR("durable writes not acknowledged: %s", st.msg);
    uint64_t now = mono_us();
    pthread_mutex_lock(&d->lock);
    kv_syncer_done(batch, &st, now);
  }
  pthread_mutex_unlock(&d->lock);
  return NULL;
}

void kv_driver_init(kv_driver_t *d, const kv_storage_t *storage) {
  pthread_mutex_init(&d->lock, NULL);
  pthread_cond_init(&d->sync_wanted, NULL);
  d->sync_running = d->stop = false;
  d->storage = storage;
  kv_syncer_init(&d->sync, sync_wanted, d);
}

void kv_driver_start(kv_driver_t *d) {
  d->sync_running = true;
  pthread_create(&d->sync_thread, NULL, sync_main, d);
}

void kv_driver_stop(kv_driver_t *d) {
  if (d->sync_running) {
    pthread_mutex_lock(&d->lock);
    d->stop = true;
    pthread_cond_signal(&d->sync_wanted);
    pthread_mutex_unlock(&d->lock);
    pthread_join(d->sync_thread, NULL);
    d->sync_running = false;
  }
}

void kv_driver_deinit(kv_driver_t *d) {
  pthread_cond_destroy(&d->sync_wanted);
  pthread_mutex_destroy(&d->lock);
}

void kv_driver_lock(kv_driver_t *d) { pthread_mutex_lock(&d->lock); }

void kv_driver_unlock(kv_driver_t *d) { pthread_mutex_unlock(&d->lock); }
