/* exchange.c: anti-entropy answers (coordinator/exchange.c, the asking side): a
 * PeerBatchReply (proto/peer.proto) whose answers, in order, a peer sends back to node n1's
 * exchanges, each viewed by kvnode/peer_codec.c (kv_peer_answer_view) as the answer to the
 * oldest message n1 has sent and not yet had answered, and taken by kv_xch_answer: roots,
 * segment sums, keys and leaves, and the records of repair reads, which n1 merges into its
 * memory store. When nothing is awaited the exchange's clock moves on an interval and the
 * next exchange starts. Afterwards every record n1 holds must decode. */
#include <stdlib.h>

#include "exchange.h"
#include "fuzz_node.h"
#include "log.h"
#include "peer.pb-c.h"
#include "peer_codec.h"

#define AWAITED_MAX 256u

typedef struct {
  uint64_t ids[AWAITED_MAX];    /* a ring: head, count */
  uint32_t head, count;
} awaited_t;

static bool alive(void *arg, uint32_t node) { return true; }

static kv_err send(void *arg, uint32_t node, const kv_msg_t *m, kv_status_t *st) {
  awaited_t *a = arg;
  KV_ASSERT(a->count < AWAITED_MAX);
  a->ids[(a->head + a->count++) % AWAITED_MAX] = m->id;
  return KV_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  Tunekv__Peer__PeerBatchReply *reply = tunekv__peer__peer_batch_reply__unpack(NULL, size, data);
  if (!reply) return 0;
  fz_node_t n1;
  fz_node_open(&n1, "n1");
  fz_node_fill(&n1);
  kv_xch_t x;
  kv_xch_init(&x, n1.node, fz_ring());
  awaited_t awaited = {.count = 0};
  const kv_msg_out_t out = {.arg = &awaited, .alive = alive, .send = send};
  uint64_t now_us = 1000000;
  kv_xch_tick(&x, &out, now_us); /* the first round is an interval away */

  for (size_t i = 0; i < reply->n_answers; i++) {
    for (int idle = 0; awaited.count == 0 && idle < 2; idle++) {
      now_us += FZ_AAE_INTERVAL_MS * 1000ull;
      kv_xch_tick(&x, &out, now_us);
    }
    if (awaited.count == 0) break;
    uint64_t id = awaited.ids[awaited.head];
    awaited.head = (awaited.head + 1) % AWAITED_MAX;
    awaited.count--;
    kv_msg_answer_t a;
    kv_peer_answer_scratch_t scratch;
    kv_peer_answer_view(reply->answers[i], id, &a, &scratch);
    kv_xch_answer(&x, &out, id, a.code, a.tree, a.rec, a.rec_bytes, now_us);
    kv_peer_answer_scratch_free(&scratch);
  }
  fz_node_check(&n1);
  kv_xch_deinit(&x);
  fz_node_close(&n1);
  sim_disks_reset();
  tunekv__peer__peer_batch_reply__free_unpacked(reply, NULL);
  return 0;
}
