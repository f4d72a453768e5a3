/* sync.h: group commit, as the core asks for it (DESIGN section 3).
 *
 * The core never fsyncs. What needs "everything written so far is durable" (a durable
 * write's self-ack, a replica's durable answer, a reaper's step) pushes a waiter on the
 * node's queue. The first push onto an empty queue calls wanted(arg): that is the core's SYNC
 * effect, and the driver answers it with a round: it takes the whole queue (kv_syncer_take),
 * makes the writes durable with one storage sync outside the core, and hands the outcome back
 * (kv_syncer_done), which runs the waiters' callbacks. Waiters pushed meanwhile wait for the
 * next round, whose sync began after their writes. The runtime's driver is kvnode/driver.c (a
 * thread); the simulator's is world.c (an event after a drawn fsync time).
 *
 * The queue is intrusive (callers embed a kv_sync_waiter_t), so it needs no bound of its own:
 * it never holds more than the requests in flight. Everything here runs with the core's
 * serialization held (kvnode/driver.h), callbacks included. */
#ifndef KV_SYNC_H
#define KV_SYNC_H

#include <stdint.h>

#include "kv_err.h"

typedef struct kv_sync_waiter kv_sync_waiter_t;
/* mono_us: the monotonic clock when the sync ended (the driver's clock, so the core reads
 * none itself). */
typedef void (*kv_sync_fn)(kv_sync_waiter_t *w, const kv_status_t *st, uint64_t mono_us);

/* Embedded in the caller's own request state; must live until fn has run. */
struct kv_sync_waiter {
  kv_sync_fn fn;
  kv_sync_waiter_t *next;
};

typedef struct {
  kv_sync_waiter_t *head, *tail;
  void (*wanted)(void *arg);     /* the SYNC effect: a round is needed */
  void *arg;
} kv_syncer_t;

void kv_syncer_init(kv_syncer_t *sy, void (*wanted)(void *arg), void *arg);
/* Queues w; w->fn runs after a sync that began after this call. */
void kv_syncer_push(kv_syncer_t *sy, kv_sync_waiter_t *w, kv_sync_fn fn);
/* The driver, before its sync: takes every waiter queued so far (a list through next; NULL
 * when none). */
kv_sync_waiter_t *kv_syncer_take(kv_syncer_t *sy);
/* The driver, after its sync: runs the callbacks of a list from kv_syncer_take with the
 * sync's status, in the order they were pushed. */
void kv_syncer_done(kv_sync_waiter_t *batch, const kv_status_t *st, uint64_t mono_us);

#endif
