/* peer.c: a PeerBatch (proto/peer.proto) as node n1's Peer.Batch handler receives it from
 * another node: unpacked, each message viewed by kvnode/peer_codec.c (kv_peer_msg_view) and
 * run through the core's replica side (kv_coord_on_peer_request) on a memory store holding a
 * few keys, as kvnode/server_rpc.c does, so writes, reads, tree requests and reaps are
 * applied, not only decoded. What the core sends in turn (a forwarder's relays) is packed by
 * peer_codec.c and never leaves. Afterwards every relay must have ended exactly once and
 * every record and hint the node holds must decode. */
#include <stdlib.h>

#include "coord.h"
#include "fuzz_node.h"
#include "log.h"
#include "peer.pb-c.h"
#include "peer_codec.h"

static kv_err pack(void *arg, uint32_t node, const kv_msg_t *m, kv_link_item_t *out,
                   kv_status_t *st) {
  *out = (kv_link_item_t){.id = m->id};
  return kv_peer_msg_pack(fz_cluster(), m, (uint8_t **)&out->data, &out->bytes, st);
}

/* No batch ever leaves: the queued messages are discarded when the coordinator goes. */
static bool send_batch(void *arg, uint32_t node, uint32_t slot, const kv_link_item_t *items,
                       uint32_t count, uint32_t deadline_ms) {
  return false;
}

static void discard(void *arg, kv_link_item_t *item) { free(item->data); }

static kv_err forward(void *arg, uint32_t node, void *call, kv_op_t op, const uint8_t *request,
                      size_t request_bytes, uint32_t timeout_ms, kv_status_t *st) {
  KV_ASSERT(!"a peer message is never forwarded as a client request");
  return KV_EINTERNAL;
}

static void reply(void *call, const kv_status_t *st, const kv_node_result_t *res) {
  KV_ASSERT(!"no client request was made");
}

static void sync_wanted(void *arg) {}

static void relay_done(void *arg, const kv_relay_outcome_t *outcomes, uint32_t count) {
  (*(uint32_t *)arg)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  Tunekv__Peer__PeerBatch *batch = tunekv__peer__peer_batch__unpack(NULL, size, data);
  if (!batch) return 0;
  const kv_config_t *cfg = fz_cluster();
  fz_node_t n1;
  fz_node_open(&n1, "n1");
  fz_node_fill(&n1);
  kv_syncer_t syncer;
  kv_syncer_init(&syncer, sync_wanted, NULL);
  const kv_coord_transport_t tr = {.pack = pack, .send_batch = send_batch, .discard = discard,
                                   .forward = forward};
  const kv_coord_opts_t opts = KV_COORD_OPTS_DEFAULT;
  kv_coord_t *coord;
  kv_status_t st;
  kv_status_clear(&st);
  KV_ASSERT(kv_coord_create(n1.node, fz_ring(), &syncer, &tr, reply, &opts, &coord, &st) ==
            KV_OK);

  uint64_t now_us = 1000000;
  uint32_t relaying = 0, relays_done = 0;
  for (size_t i = 0; i < batch->n_messages; i++, now_us += 1000) {
    kv_msg_t m;
    kv_relay_target_t relay[KV_REPLICAS_MAX];
    kv_peer_result_t r;
    if (kv_peer_msg_view(cfg, batch->messages[i], &m, relay, &r.st) != KV_OK) {
      KV_ASSERT(r.st.code == KV_EINVAL && r.st.msg[0]);
      continue;
    }
    kv_coord_on_peer_request(coord, &m, now_us, FZ_WALL_MS + now_us / 1000, relay_done,
                             &relays_done, &r);
    KV_ASSERT(r.code == KV_OK || r.st.msg[0]);
    if (r.after_sync) KV_ASSERT(kv_node_sync(n1.node, &st) == KV_OK);
    relaying += r.relaying;
    kv_peer_result_deinit(&r);
  }
  /* Past every relay's wait: each one still open ends now. */
  kv_coord_on_tick(coord, now_us + (KV_TIMEOUT_MS_MAX + 1) * 1000ull);
  KV_ASSERT(relays_done == relaying);

  fz_node_check(&n1);

  (void)kv_syncer_take(&syncer);
  kv_coord_destroy(coord);
  fz_node_close(&n1);
  sim_disks_reset();
  tunekv__peer__peer_batch__free_unpacked(batch, NULL);
  return 0;
}
