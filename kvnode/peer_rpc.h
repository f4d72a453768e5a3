/* peer_rpc.h: this node's connections to the other nodes (DESIGN section 10).
 *
 * One gRPC channel per peer. Messages to a peer queue (bounded: KV_PEER_QUEUE_MAX); while
 * no Batch call to that peer is in flight, the next message starts one carrying everything
 * queued (up to KV_PEER_BATCH_MAX); when it completes, whatever queued meanwhile leaves in
 * the next. No timers: batching comes from the round trip itself.
 *
 * Liveness (a simple view; the phi-accrual detector comes later): a peer is up until a batch
 * to it fails, down until one succeeds. An idle peer gets an empty batch (a heartbeat)
 * every KV_PEER_HEARTBEAT_MS, so a dead peer is noticed within about that time.
 *
 * One thread owns the completion queue: it delivers answers to the coordinator, sends the
 * next batches and heartbeats, and ticks the coordinator every few milliseconds. */
#ifndef KV_PEER_RPC_H
#define KV_PEER_RPC_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "coord.h"
#include "kv_err.h"

typedef struct kv_peers kv_peers_t;

/* Opens a channel to every other node of cfg (borrowed; must outlive the peers). kv_rpc_init()
 * (server_rpc.h) must have been called. The thread starts with kv_peers_run. */
kv_err kv_peers_create(const kv_config_t *cfg, uint32_t self, size_t max_message_bytes,
                       kv_peers_t **out, kv_status_t *st);
/* The transport table the coordinator uses to reach the peers. */
void kv_peers_transport(kv_peers_t *p, kv_coord_transport_t *tr);
/* Answers a client call with what the replica a write was forwarded to answered (gRPC
 * status code and message; the reply message's bytes when the code is 0). */
typedef void (*kv_forward_reply_fn)(void *call, int grpc_code, const char *message,
                                    const uint8_t *reply, size_t reply_bytes);
/* Starts the thread, which delivers answers to coord (borrowed until kv_peers_destroy) and
 * relays forwarded writes' answers through relay. */
void kv_peers_run(kv_peers_t *p, kv_coord_t *coord, kv_forward_reply_fn relay);
/* Stops the thread (calls in flight are cancelled and their messages answered as failed),
 * closes the channels and frees p. */
void kv_peers_destroy(kv_peers_t *p);

typedef struct {
  bool up;
  int64_t last_heard_ms_ago;  /* -1: never */
} kv_peer_state_t;
/* The liveness view of one node (self is always up, heard 0 ms ago). */
kv_peer_state_t kv_peers_state(kv_peers_t *p, uint32_t node);

#endif
