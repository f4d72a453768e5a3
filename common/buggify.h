/* buggify.h: fault points (FoundationDB's BUGGIFY), compiled into the simulator only.
 *
 * KV_BUGGIFY() marks a place where the core may, in simulation, take a rarely-taken but legal
 * path: a replica write that fails as if the disk had, a peer answer that arrives twice. In
 * the simulator (built with -DKV_SIM) each point is switched on for a whole run with some
 * probability the first time it is reached, and then fires at random, all from the run's
 * seed (tests/sim/). Everywhere else it is the constant false and compiles away. */
#ifndef KV_BUGGIFY_H
#define KV_BUGGIFY_H

#include <stdbool.h>

#ifdef KV_SIM
bool kv_sim_buggify(const char *file, int line);
#define KV_BUGGIFY() kv_sim_buggify(__FILE__, __LINE__)
#else
#define KV_BUGGIFY() false
#endif

#endif
