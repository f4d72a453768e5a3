/* config.c: the cluster config (common/config.c), fed as YAML text to kv_config_load through
 * a temporary file, as kvnode and `kvnode --check-config` load theirs. A refusal must be a
 * KV_ECONFIG sentence naming the file; a config that loads must make a ring (kv_ring_init
 * checks again what the loader promises) whose every preference list holds each keyspace's
 * replicas. */
#include <string.h>

#include "fuzz_node.h"
#include "log.h"
#include "ring.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static kv_config_t cfg;
  static kv_ring_t ring;
  kv_status_t st;
  kv_status_clear(&st);
  if (fz_config_text(data, size, &cfg, &st) != KV_OK) {
    KV_ASSERT((st.code == KV_ECONFIG || st.code == KV_ENOMEM) && st.msg[0]);
    return 0;
  }
  KV_ASSERT(kv_ring_init(&ring, &cfg, &st) == KV_OK);
  for (uint32_t k = 0; k < cfg.keyspace_count; k++) {
    const kv_keyspace_conf_t *ks = &cfg.keyspaces[k];
    kv_preflist_t pl;
    kv_ring_preflist(&ring, ks, 0, &pl);
    KV_ASSERT(pl.primary_count == ks->n);
  }
  return 0;
}
