/* sim.h: what the simulator's stand-ins for the runtime share with its world (kvsim.c).
 *
 * The simulator links the real core (coordinator/ and common/, nothing of kvnode/) with one
 * stand-in for the runtime's storage:
 *   memstore.c  the core's storage table (coordinator/storage.h) in memory, in place of
 *               kvnode/store.c, with the crash semantics of store.c note 5: a
 *               process crash keeps every write, a power loss keeps only synced ones.
 * The world (world.c) drives each node's core as kvnode/driver.c does: one event at a time,
 * and the core's SYNC effect (sync.h) answered by a "synced" event after a simulated disk
 * delay.
 * Everything random comes from one generator seeded per run (sim_rand), so a run replays
 * exactly from its seed. */
#ifndef KV_SIM_H
#define KV_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "storage.h"
#include "sync.h"

/* The run's generator (xoshiro256**): every random decision of the run draws from it. */
void sim_rng_seed(uint64_t seed);
uint64_t sim_rand(void);
/* Uniform in [0, n); n > 0. */
uint64_t sim_below(uint64_t n);
/* True with probability p (0..1). */
bool sim_chance(double p);

/* ---- memstore.c ---- */

typedef struct sim_store sim_store_t;

/* A store is opened on a named disk ("n3"); the disk outlives the handle, like a data
 * directory outlives its process. */
sim_store_t *sim_store_open(const char *disk);
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
/* Called when a record is removed (only tombstone reaping removes records): the world
 * notes when, for the checkers. */
void sim_record_reaped(const void *key, size_t key_bytes);
/* Frees every disk (between runs). */
void sim_disks_reset(void);

#endif
