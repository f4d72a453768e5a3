/* peer_codec.h: the core's messages (coordinator/msg.h) on the wire of the peer protocol
 * (proto/peer.proto), both ways. The sending side (peer_rpc.c) packs a kv_msg_t into a
 * PeerMessage and views the PeerAnswer that comes back as a kv_msg_answer_t; the receiving
 * side (server_rpc.c) views a PeerMessage as a kv_msg_t. The wire names nodes by their id,
 * the core by their index in the config: this is where one becomes the other, and where a
 * message naming a node outside the cluster is refused. Views borrow the protobuf message
 * they were made from. */
#ifndef KV_PEER_CODEC_H
#define KV_PEER_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "kv_err.h"
#include "msg.h"
#include "peer.pb-c.h"

/* Packs m as a PeerMessage into *bytes (malloc'd, *len bytes). KV_ENOMEM when out of memory. */
kv_err kv_peer_msg_pack(const kv_config_t *cfg, const kv_msg_t *m, uint8_t **bytes, size_t *len,
                        kv_status_t *st);

/* Views pm as *m, its relay targets in relay[] (KV_REPLICAS_MAX entries, the caller's).
 * KV_EINVAL with a sentence when it has no body, an unknown tree request kind, more than
 * KV_REPLICAS_MAX - 1 relay targets, or names (in hint_for or forward_to) a node that is not
 * in the cluster. */
kv_err kv_peer_msg_view(const kv_config_t *cfg, const Tunekv__Peer__PeerMessage *pm,
                        kv_msg_t *m, kv_relay_target_t *relay, kv_status_t *st);

/* What a view of an answer points into besides the PeerAnswer. */
typedef struct {
  kv_relay_outcome_t relayed[KV_REPLICAS_MAX];
  kv_aae_answer_t tree;       /* its keys malloc'd */
} kv_peer_answer_scratch_t;

/* Views the answer pa to message id as *out (pa NULL: the message failed, with code
 * KV_EUNAVAILABLE). kv_peer_answer_scratch_free after the view's last use. */
void kv_peer_answer_view(const Tunekv__Peer__PeerAnswer *pa, uint64_t id, kv_msg_answer_t *out,
                         kv_peer_answer_scratch_t *scratch);
void kv_peer_answer_scratch_free(kv_peer_answer_scratch_t *scratch);

#endif
