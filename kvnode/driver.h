/* driver.h: how kvnode runs the core (DESIGN section 3).
 *
 * The core (coordinator/: the local replica kv_node, the coordinator kv_coord with its
 * hints, exchanges, reaper, and the sync queue of sync.h) is single-threaded, and reads no
 * clock. The runtime's threads enter it one at a time, each holding the driver's lock for one
 * event:
 *   - a gRPC worker, for a client request or a peer's batch (server_rpc.c);
 *   - the peer thread, for answers, ticks and liveness (peer_rpc.c);
 *   - the syncer thread here, for a finished fsync;
 *   - Status, Ring, Applied and the metrics page, for a snapshot.
 * The core's effects (messages to peers, replies to clients, the SYNC of sync.h) are calls
 * that only queue work, so what the lock covers is the core's own work: its state, RocksDB
 * writes without fsync, and encoding messages.
 *
 * Threading model: one core per node, serialized by this lock, run on the thread that
 * brings the event. Sharding the ring over a few cores (each with its own lock and sync
 * queue) is the way to more cores; it needs nothing of the core but a partition filter.
 *
 * Group commit: the syncer thread answers SYNC. It takes the core's queue under the lock,
 * fsyncs without it (the storage's sync: RocksDB's WAL), then runs the waiters' callbacks
 * under it again, so writes go on while the disk works. */
#ifndef KV_DRIVER_H
#define KV_DRIVER_H

#include <pthread.h>
#include <stdbool.h>

#include "storage.h"
#include "sync.h"

typedef struct {
  pthread_mutex_t lock;
  pthread_cond_t sync_wanted;    /* with lock: the core's queue is not empty, or stop */
  pthread_t sync_thread;
  bool sync_running, stop;
  kv_syncer_t sync;              /* the core's group-commit queue */
  const kv_storage_t *storage;
} kv_driver_t;

/* storage is borrowed and must outlive the driver. */
void kv_driver_init(kv_driver_t *d, const kv_storage_t *storage);
/* Starts the syncer thread. */
void kv_driver_start(kv_driver_t *d);
/* Runs what is queued for an fsync, then ends the syncer thread. */
void kv_driver_stop(kv_driver_t *d);
/* Frees the lock, once no thread can enter the core. */
void kv_driver_deinit(kv_driver_t *d);
void kv_driver_lock(kv_driver_t *d);
void kv_driver_unlock(kv_driver_t *d);

#endif
