/* fuzz_node.c: the config and replicas the harnesses share (see fuzz_node.h). */
#include "fuzz_node.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dvv.h"
#include "log.h"

const char FZ_CLUSTER_YAML[] =
    "cluster:\n"
    "  name: fuzz\n"
    "  partitions: 16\n"
    "  anti_entropy_interval_ms: 1000\n"
    "  tombstone_grace_ms: 0\n"
    "nodes:\n"
    "  - { id: n1, address: \"127.0.0.1:7001\", region: east, rack: r1 }\n"
    "  - { id: n2, address: \"127.0.0.1:7002\", region: east, rack: r2 }\n"
    "  - { id: n3, address: \"127.0.0.1:7003\", region: west, rack: r1 }\n"
    "  - { id: n4, address: \"127.0.0.1:7004\", region: west, rack: r2 }\n"
    "keyspaces:\n"
    "  - name: default\n"
    "    replication: { east: 2, west: 2 }\n"
    "  - name: small\n"
    "    replication: { east: 1, west: 1 }\n"
    "    handler: lww\n"
    "    siblings_max: 2\n"
    "    key_bytes_max: 16\n";

static char temp_path[64];

static void temp_remove(void) { unlink(temp_path); }

kv_err fz_config_text(const uint8_t *text, size_t bytes, kv_config_t *out, kv_status_t *st) {
  if (!temp_path[0]) {
    snprintf(temp_path, sizeof temp_path, "/tmp/tunekv-fuzz-XXXXXX");
    int fd = mkstemp(temp_path);
    KV_ASSERT(fd >= 0);
    close(fd);
    atexit(temp_remove);
  }
  FILE *f = fopen(temp_path, "wb");
  KV_ASSERT(f != NULL);
  KV_ASSERT(fwrite(text, 1, bytes, f) == bytes);
  KV_ASSERT(fclose(f) == 0);
  return kv_config_load(temp_path, out, st);
}

static kv_config_t cluster;
static kv_ring_t ring;

const kv_config_t *fz_cluster(void) {
  if (cluster.node_count == 0) {
    kv_status_t st;
    kv_status_clear(&st);
    /* Warnings (a peer's bad answer) are expected by the thousand; errors still show. */
    kv_log_set_level(KV_LOG_ERROR);
    KV_ASSERT(fz_config_text((const uint8_t *)FZ_CLUSTER_YAML, strlen(FZ_CLUSTER_YAML), &cluster,
                             &st) == KV_OK);
    KV_ASSERT(kv_ring_init(&ring, &cluster, &st) == KV_OK);
  }
  return &cluster;
}

const kv_ring_t *fz_ring(void) {
  fz_cluster();
  return &ring;
}

void fz_node_open(fz_node_t *f, const char *id) {
  const kv_config_t *cfg = fz_cluster();
  int index = kv_config_node_index(cfg, id);
  KV_ASSERT(index >= 0);
  f->store = sim_store_open(id, (uint64_t)(index + 1) << 32 | 1);
  sim_store_storage(f->store, &f->storage);
  kv_status_t st;
  kv_status_clear(&st);
  KV_ASSERT(kv_node_create(cfg, id, &f->storage, &f->node, &st) == KV_OK);
}

void fz_node_put(fz_node_t *f, const char *keyspace, const char *key, const char *value,
                 uint64_t now_ms) {
  kv_node_req_t req = {.keyspace = keyspace, .key = (const uint8_t *)key,
                       .key_bytes = strlen(key), .value = (const uint8_t *)value,
                       .value_bytes = strlen(value), .level = ""};
  kv_node_plan_t plan;
  kv_node_result_t res;
  kv_status_t st;
  kv_status_clear(&st);
  KV_ASSERT(kv_node_plan(f->node, &req, true, &plan, &st) == KV_OK);
  KV_ASSERT(kv_node_put(f->node, &req, &plan, now_ms, &res, &st) == KV_OK);
  kv_node_result_free(&res);
}

void fz_node_fill(fz_node_t *f) {
  fz_node_put(f, "default", "a", "apple", FZ_WALL_MS);
  fz_node_put(f, "default", "b", "banana", FZ_WALL_MS);
  fz_node_put(f, "small", "s", "sloe", FZ_WALL_MS);
}

static bool record_decodes(void *arg, const char *keyspace, const void *key, size_t key_bytes,
                           const void *rec, size_t rec_bytes) {
  kv_dvv_t obj;
  kv_status_t st;
  KV_ASSERT(kv_dvv_decode(rec, rec_bytes, &obj, &st) == KV_OK);
  kv_dvv_deinit(&obj);
  return true;
}

void fz_node_check(fz_node_t *f) {
  const kv_config_t *cfg = fz_cluster();
  kv_status_t st;
  for (uint32_t p = 0; p < cfg->partitions; p++)
    KV_ASSERT(kv_storage_scan_partition(&f->storage, p, record_decodes, NULL, &st) == KV_OK);
  for (uint32_t t = 0; t < cfg->node_count; t++)
    KV_ASSERT(kv_storage_hint_scan(&f->storage, t, record_decodes, NULL, &st) == KV_OK);
}

void fz_node_close(fz_node_t *f) {
  kv_node_destroy(f->node);
  sim_store_crash(f->store, false);
  memset(f, 0, sizeof *f);
}
