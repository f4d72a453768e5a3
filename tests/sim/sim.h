/* sim.h: what the simulator's stand-ins for the runtime share with its world (kvsim.c).
 *
 * The simulator links the real core (coordinator/ and common/, nothing of kvnode/) with one
 * stand-in for the runtime's storage:
 *   memstore.c  the core's storage table (coordinator/storage.h) in memory, in place of
 *               kvnode/store.c, with the crash semantics of store.c note 5: a
 *               process crash keeps every write, a power loss keeps only synced ones
 *               (memstore.h; the unit tests of the core use it too). The world draws each
 *               open's incarnation id and notes reaped keys through its removal hook.
 * The world (world.c) drives each node's core as kvnode/driver.c does: one event at a time,
 * and the core's SYNC effect (sync.h) answered by a "synced" event after a simulated disk
 * delay.
 * Everything random comes from one generator seeded per run (sim_rand), so a run replays
 * exactly from its seed. */
#ifndef KV_SIM_H
#define KV_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "memstore.h"
#include "storage.h"
#include "sync.h"

/* The run's generator (xoshiro256**): every random decision of the run draws from it. */
void sim_rng_seed(uint64_t seed);
uint64_t sim_rand(void);
/* Uniform in [0, n); n > 0. */
uint64_t sim_below(uint64_t n);
/* True with probability p (0..1). */
bool sim_chance(double p);

#endif
