/* fuzz_node.h: what the harnesses of tests/fuzz (and seeds.c, which writes their corpus) share.
 *
 *   fz_config_text  YAML text loaded as a config. kv_config_load reads a path, so the text
 *                   goes through one temporary file per process (removed at exit).
 *   fz_node_*       a real replica on the memory store of tests/sim (memstore.h): node n1 or
 *                   n2 of FZ_CLUSTER_YAML, four nodes in two regions, with two keyspaces,
 *                   "default" (two replicas per region, siblings) and "small" (one per
 *                   region, lww, at most 2 siblings and 16-byte keys), anti-entropy on. Every
 *                   input opens its nodes on empty disks and closes them, so no input sees
 *                   another's state.
 * Everything aborts (KV_ASSERT) on what should not fail: a harness crash is a finding. */
#ifndef KV_FUZZ_NODE_H
#define KV_FUZZ_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "kv_err.h"
#include "memstore.h"
#include "node.h"
#include "ring.h"

extern const char FZ_CLUSTER_YAML[];
/* The wall clock every harness runs at, and its anti-entropy interval. */
#define FZ_WALL_MS UINT64_C(1700000000000)
#define FZ_AAE_INTERVAL_MS 1000u

kv_err fz_config_text(const uint8_t *text, size_t bytes, kv_config_t *out, kv_status_t *st);

typedef struct {
  sim_store_t *store;
  kv_storage_t storage;
  kv_node_t *node;
} fz_node_t;

/* The config and ring of FZ_CLUSTER_YAML (loaded once; borrowed, live for the process). */
const kv_config_t *fz_cluster(void);
const kv_ring_t *fz_ring(void);
/* Opens node `id` of fz_cluster() on its own empty disk. */
void fz_node_open(fz_node_t *f, const char *id);
/* A put of value under (keyspace, key) on f's replica alone, at wall time now_ms. */
void fz_node_put(fz_node_t *f, const char *keyspace, const char *key, const char *value,
                 uint64_t now_ms);
/* The keys every harness's n1 starts with, put at FZ_WALL_MS: "a" and "b" in "default", "s"
 * in "small" (seeds.c makes its inputs against the same). */
void fz_node_fill(fz_node_t *f);
/* Asserts that every record and every hint f holds decodes. */
void fz_node_check(fz_node_t *f);
/* Closes f, keeping its disk; once every node of an input is closed, sim_disks_reset
 * empties them all. */
void fz_node_close(fz_node_t *f);

#endif
