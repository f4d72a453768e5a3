/* syncer.h: group commit. Callers that need "everything I wrote so far is durable" push a
 * callback; a syncer thread takes every callback queued so far, makes the writes durable
 * with one kv_node_sync (one WAL fsync), then runs the callbacks with its status. Callbacks
 * pushed meanwhile wait for the next round, whose fsync began after their writes.
 *
 * The queue is intrusive (callers embed a kv_sync_waiter_t), so it needs no bound of its own:
 * it never holds more than the requests in flight. Callbacks run on the syncer thread with
 * no syncer lock held. */
#ifndef KV_SYNCER_H
#define KV_SYNCER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "kv_err.h"
#include "node.h"

typedef struct kv_sync_waiter kv_sync_waiter_t;
/* mono_us: the monotonic clock when the fsync ended (the driver's clock, so the coordinator
 * reads none itself). */
typedef void (*kv_sync_fn)(kv_sync_waiter_t *w, const kv_status_t *st, uint64_t mono_us);

/* Embedded in the caller's own request state; must live until fn has run. */
struct kv_sync_waiter {
  kv_sync_fn fn;
  kv_sync_waiter_t *next;
};

typedef struct {
  kv_node_t *node;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  kv_sync_waiter_t *head, *tail;
  bool stop;
} kv_syncer_t;

/* Starts the thread; node is borrowed and must outlive the syncer. */
void kv_syncer_start(kv_syncer_t *sy, kv_node_t *node);
/* Queues w; w->fn runs after an fsync that began after this call. */
void kv_syncer_push(kv_syncer_t *sy, kv_sync_waiter_t *w, kv_sync_fn fn);
/* Runs what is queued, then ends the thread. */
void kv_syncer_stop(kv_syncer_t *sy);

#endif
