/* memstore.h: the core's storage (coordinator/storage.h) in memory, for the simulator and the
 * unit tests of the core.
 *
 * It stands in for kvnode/store.c with the crash semantics of store.c note 5: a process
 * crash keeps every write, a power loss keeps only the synced ones. Stores are opened on
 * named disks ("n3"), which outlive their handles as a data directory outlives its process,
 * so a "restart" is a crash and an open on the same disk. It depends on coordinator/ and
 * common/ only: what its owner wants to know (which records are removed) comes through a
 * hook the owner sets, and the incarnation id of each open is the owner's to choose (the
 * simulator draws it from its run's generator, a unit test names one). The names keep the
 * sim_ prefix of the simulator, where it was born.
 *
 * Not thread-safe: the disks are one table of the process (at most 16), used from one
 * thread, as the core is. */
#ifndef KV_MEMSTORE_H
#define KV_MEMSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage.h"

typedef struct sim_store sim_store_t;

/* Called when a record (not a hint) is removed from a store: only tombstone reaping removes
 * records. key is borrowed for the call. */
typedef void (*sim_store_removed_fn)(void *arg, const void *key, size_t key_bytes);

/* Opens a store on the named disk (made empty on first use), as a new process would:
 * incarnation (not 0) is this process's incarnation id (store.c note 4: the simulator's
 * processes only ever end in a crash, so every open makes a new one). Never fails. */
sim_store_t *sim_store_open(const char *disk, uint64_t incarnation);
/* Has fn(arg, ...) called after each record removed through s (none by default); arg is
 * borrowed and must outlive s. */
void sim_store_on_remove(sim_store_t *s, sim_store_removed_fn fn, void *arg);
/* Fills *out with s and the memory store's table (coordinator/storage.h); s is borrowed. */
void sim_store_storage(sim_store_t *s, kv_storage_t *out);
/* Ends the process that had s open without closing it: a power loss also drops every write
 * since the last sync. s is freed. */
void sim_store_crash(sim_store_t *s, bool power_loss);
/* The record of (partition, keyspace, key) as of the disk's last sync: what a power loss
 * would leave. *rec is malloc'd (NULL, 0 when there is none). */
void sim_disk_durable_get(const char *disk, uint32_t partition, const char *keyspace,
                          const void *key, size_t key_bytes, uint8_t **rec, size_t *rec_bytes);
/* The same for the hint of (keyspace, key) kept for node target. */
void sim_disk_durable_hint_get(const char *disk, uint32_t target, const char *keyspace,
                               const void *key, size_t key_bytes, uint8_t **rec,
                               size_t *rec_bytes);
/* Frees every disk (between runs, or at a test's end); no store may be open. */
void sim_disks_reset(void);

#endif
