/* peer_rpc.h: this node's connections to the other nodes (DESIGN section 10): the transport
 * the core's links (coordinator/link.h) send their batches through.
 *
 * One gRPC channel per peer. The core decides what a batch carries and when it leaves
 * (up to KV_PEER_WINDOW in flight per peer, each in a slot of its link; an empty one is a
 * heartbeat) and judges liveness from how batches end; this module packs each message once as
 * the core queues it, makes one Batch call per slot in flight, and hands its end back, naming
 * the slot: the answers (kv_coord_on_batch_reply), or a timeout
 * (DEADLINE_EXCEEDED: silence) or an outright failure (kv_coord_on_batch_failed).
 *
 * Fault injection (DESIGN section 10). kv_peers_fault_set delays, jitters or drops the calls
 * this node makes to a peer: its batches (heartbeats too) and the writes it forwards. Never
 * its answers to the peer's own calls: a partition set on n1 for n3 stops n1 hearing from n3
 * (n1's calls go nowhere, so n1's phi for n3 grows), while n3's calls to n1 are answered and
 * n3 still sees n1 up. Set it on both sides for a two-way partition.
 *
 * Clock sanity. Every batch reply carries the answering node's wall clock; the offset of a
 * peer's clock is its clock minus ours at the midpoint of the round trip (as NTP estimates
 * it; the error is at most half the round trip). A peer whose offset passes the config's
 * max_clock_skew_ms is logged, reported by kvctl status, and marked suspect on the node
 * (kv_node_clock_suspect_set) so resolutions over its versions are journaled as suspect.
 *
 * One thread owns the completion queue: it delivers batch ends and forwarded answers, and
 * ticks the coordinator every few milliseconds (which sends heartbeats and judges silence). */
#ifndef KV_PEER_RPC_H
#define KV_PEER_RPC_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "coord.h"
#include "driver.h"
#include "kv_err.h"
#include "tls_rpc.h"

typedef struct kv_peers kv_peers_t;

/* Opens a channel to every other node of cfg (borrowed; must outlive the peers), over TLS with
 * tls's certificates when tls is not NULL (borrowed; must outlive the peers). kv_rpc_init()
 * (server_rpc.h) must have been called. The thread starts with kv_peers_run. */
kv_err kv_peers_create(const kv_config_t *cfg, uint32_t self, size_t max_message_bytes,
                       kv_tls_t *tls, kv_peers_t **out, kv_status_t *st);
/* After a good kv_tls_reload: a new channel to every peer, made with the reloaded
 * certificates, so the calls this node makes from now on present the new one; calls in
 * flight end on the channel they started on. Safe from any thread; nothing without tls. */
void kv_peers_reload_tls(kv_peers_t *p);
/* The transport table the coordinator uses to reach the peers. */
void kv_peers_transport(kv_peers_t *p, kv_coord_transport_t *tr);
/* Answers a client call with what the replica a write was forwarded to answered (gRPC
 * status code and message; the reply message's bytes when the code is 0). */
typedef void (*kv_forward_reply_fn)(void *call, int grpc_code, const char *message,
                                    const uint8_t *reply, size_t reply_bytes);
/* Where clock sanity reports suspect peers (borrowed until kv_peers_destroy). Before
 * kv_peers_run. */
void kv_peers_watch_clocks(kv_peers_t *p, kv_node_t *node);
/* Starts the thread, which delivers answers and ticks to coord under driver's lock (both
 * borrowed until kv_peers_destroy) and
 * relays forwarded writes' answers through relay. */
void kv_peers_run(kv_peers_t *p, kv_coord_t *coord, kv_driver_t *driver,
                  kv_forward_reply_fn relay);
/* Stops the thread (calls in flight are cancelled and their messages answered as failed),
 * closes the channels and frees p. */
void kv_peers_destroy(kv_peers_t *p);

/* Clock sanity's view of one peer (see above). */
typedef struct {
  bool known;                 /* an offset has been measured */
  int64_t offset_ms;          /* the peer's wall clock minus this node's */
  bool skewed;                /* |offset| > max_clock_skew_ms */
} kv_peer_clock_t;
/* Of node (self: known, 0, not skewed). Safe from any thread. */
kv_peer_clock_t kv_peers_clock(kv_peers_t *p, uint32_t node);

/* A fault on the calls this node makes to one peer: each is held back delay_ms plus a
 * uniform 0..jitter_ms plus an exponential of mean exp_delay_ms (for PBS labs), or, with
 * probability drop, lost: never sent, and failed with
 * DEADLINE_EXCEEDED when its deadline passes, as a call whose packets were lost would be.
 * Calls to one peer leave in the order they were made. All zeros: no fault. */
typedef struct {
  int64_t delay_ms, jitter_ms;  /* 0 .. KV_FAULT_DELAY_MS_MAX each */
  double drop;                  /* 0 .. 1; 1 is a partition */
  int64_t exp_delay_ms;         /* 0 .. KV_FAULT_DELAY_MS_MAX */
  bool both_ways;               /* a batch's answer is held back a delay drawn alike, as if
                                   it crossed the same link back (a round trip, for labs) */
} kv_fault_t;
/* Sets f (all zeros clears) on the calls to each of the n peers named in ids (borrowed for the
 * call), from the next call on; calls already held keep their fate. Everything is checked
 * before anything changes. Errors, KV_EINVAL with a sentence: n is 0, an id is unknown or
 * this node's own, delay_ms, jitter_ms or exp_delay_ms is outside 0..KV_FAULT_DELAY_MS_MAX, drop is outside
 * 0..1. KV_ENOMEM. Safe from any thread. */
kv_err kv_peers_fault_set(kv_peers_t *p, const char *const *ids, size_t n, const kv_fault_t *f,
                          kv_status_t *st);
/* Whether calls to node have a fault (never self's), and, in *out, which (all zeros if none). */
bool kv_peers_fault(kv_peers_t *p, uint32_t node, kv_fault_t *out);

#endif
