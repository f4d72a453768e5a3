/* hint.c: hint payloads (coordinator/hints.c): records a fallback is sent to keep for a dead
 * primary, and hints a previous process left on disk, on node n1 of a memory store.
 *
 * The input is a list of chunks, each a head byte, a 16-bit little-endian length and that
 * many bytes of record. The head says where it goes: bits 0-1 the key ("a" to "d"), bits 2-3
 * the primary it is kept for (n2, n3, n4), bit 4 the keyspace ("default" or "small"), bit 7
 * on disk before the node starts (stored as is: what a torn or foreign disk may hold) or, when
 * clear, a fallback's write once it runs (kv_hints_merge). Then every key's hints are merged
 * as a local read does, those of keys "b" and "d" forgotten as a reap would with the merged
 * context, and a handoff round hands the rest over, every one acknowledged. Afterwards the
 * counts kept must be those a restart would count from the disk. */
#include <string.h>

#include "fuzz_node.h"
#include "hints.h"
#include "log.h"

#define KEYS 4u
static const char *const keys[KEYS] = {"a", "b", "c", "d"};
static const char *const keyspaces[2] = {"default", "small"};

typedef struct {
  uint64_t ids[KV_HANDOFF_IN_FLIGHT_MAX];
  uint32_t count;
} sent_t;

static bool alive(void *arg, uint32_t node) { return true; }

static kv_err send(void *arg, uint32_t node, const kv_msg_t *m, kv_status_t *st) {
  sent_t *s = arg;
  KV_ASSERT(m->kind == KV_MSG_WRITE && m->durable && s->count < KV_HANDOFF_IN_FLIGHT_MAX);
  s->ids[s->count++] = m->id;
  return KV_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_node_t n1;
  fz_node_open(&n1, "n1");
  kv_status_t st;
  kv_status_clear(&st);
  kv_hints_t hints;
  bool started = false;
  for (size_t at = 0; at + 3 <= size;) {
    uint8_t head = data[at];
    size_t len = data[at + 1] | (size_t)data[at + 2] << 8;
    at += 3;
    if (len > size - at) len = size - at;
    const uint8_t *rec = data + at;
    at += len;
    const char *ks = keyspaces[head >> 4 & 1], *key = keys[head & 3];
    uint32_t target = 1 + (head >> 2 & 3) % 3;
    if (head & 0x80) {
      if (!started)
        KV_ASSERT(kv_storage_hint_put(&n1.storage, target, ks, key, 1, rec, len, &st) == KV_OK);
      continue;
    }
    if (!started) {
      KV_ASSERT(kv_hints_init(&hints, n1.node, fz_cluster()->node_count, 1u << 20, 1000, &st) ==
                KV_OK);
      started = true;
    }
    kv_err err = kv_hints_merge(&hints, target, ks, (const uint8_t *)key, 1, rec, len, &st);
    KV_ASSERT(err == KV_OK || err == KV_ECORRUPT || err == KV_EBUSY);
  }
  if (!started)
    KV_ASSERT(kv_hints_init(&hints, n1.node, fz_cluster()->node_count, 1u << 20, 1000, &st) ==
              KV_OK);

  for (uint32_t k = 0; k < 2 * KEYS; k++) {
    const char *ks = keyspaces[k / KEYS];
    const uint8_t *key = (const uint8_t *)keys[k % KEYS];
    kv_dvv_t obj;
    bool found;
    kv_dvv_init(&obj);
    kv_err err = kv_hints_merge_held(&hints, ks, key, 1, &obj, &found, &st);
    KV_ASSERT(err == KV_OK || err == KV_ECORRUPT || err == KV_EBUSY);
    if (err == KV_OK && k % 2 == 1)
      KV_ASSERT(kv_hints_forget(&hints, ks, key, 1, &obj.cc, &st) == KV_OK);
    kv_dvv_deinit(&obj);
  }

  sent_t sent = {.count = 0};
  const kv_msg_out_t out = {.arg = &sent, .alive = alive, .send = send};
  kv_hints_tick(&hints, &out, 1000000);
  for (uint32_t i = 0; i < sent.count; i++) kv_hints_answer(&hints, sent.ids[i], KV_OK);

  kv_hints_t counted;
  KV_ASSERT(kv_hints_init(&counted, n1.node, fz_cluster()->node_count, 1u << 20, 1000, &st) ==
            KV_OK);
  for (uint32_t t = 0; t < fz_cluster()->node_count; t++) {
    kv_hint_stats_t live, disk;
    kv_hints_stats(&hints, t, &live);
    kv_hints_stats(&counted, t, &disk);
    KV_ASSERT(live.pending == disk.pending && live.bytes == disk.bytes);
  }
  kv_hints_deinit(&counted);
  kv_hints_deinit(&hints);
  fz_node_close(&n1);
  sim_disks_reset();
  return 0;
}
