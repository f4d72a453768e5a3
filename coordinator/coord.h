/* coord.h: coordination of client requests over the replicas of a key (DESIGN section 7).
 *
 * The coordinator turns a client request into replica operations and counts their answers
 * with kv_quorum; this module holds the requests in flight, talks to the local replica
 * (kv_node), to other nodes (messages, msg.h, queued on a link per peer, link.h, which also
 * judges the peer's liveness, and carried in batches by a transport: kvnode/peer_rpc.c in the
 * runtime, the simulator's network in tests/sim), to the group-commit queue (sync.h), and
 * answers the client through a reply callback. It is part of the sans-IO core: no threads,
 * sockets, storage engine or clock (times come in with each event), so the same code runs
 * in kvnode, in the unit tests and in the simulator. It lives in coord.c (events),
 * coord_slots.c, coord_write.c, coord_read.c, coord_relay.c, coord_replica.c and
 * coord_link.c (the links: batches, heartbeats, liveness).
 *
 * A put (or delete) at QUORUM on N=3:
 *   plan (validate) -> preference list -> enough live replicas? else UNAVAILABLE at once ->
 *   apply on this replica (mints the dot) -> send the resulting record to the other two ->
 *   count acks (this replica's after its fsync when durable) -> reply at W -> keep
 *   counting late acks; when all have acked, record replication lag (W-th ack to last).
 * A get: ask R replicas (this one first, when it is one), merge (DVV) as answers come,
 * reply at R with the merge; a failed answer makes it ask the next replica. A get with
 * local=true reads this replica only, with the hints this node keeps for the key merged in.
 * A write reaching a node that is not a replica of the key is forwarded, as received, to the
 * first live replica, which coordinates it.
 * A delete without a context (Riak's without a vclock) deletes what it sees: the replica
 * coordinating it reads the key as a get at the delete's level would (ANY reads at ONE; r =
 * w, pr = pw), then writes the tombstone with the context of that merge at the delete's
 * level, and answers the same call. A failed read fails the delete with the read's status and
 * nothing is written (coord.c: the READING state).
 *
 * Threads: none. The coordinator is part of the single-threaded core: its driver
 * (kvnode/driver.h; the simulator's world) makes every call one at a time, and the reply
 * callback and the transport, which run inside those calls, only queue work. Bounded: at
 * most KV_COORD_PENDING_MAX requests in flight; past that, RESOURCE_EXHAUSTED. A request that fails because a peer's queue was full is answered with
 * RESOURCE_EXHAUSTED too, not as a replica failure.
 *
 * Sloppy quorum (DESIGN section 8; the keyspace's sloppy_quorum, on by default): for each
 * primary believed dead, the request also goes to a fallback, the next live node on the ring
 * past the preference list in that primary's region (kv_preflist_fallback), not already
 * standing in for another primary of the request. Targets are then the N primaries followed
 * by the fallbacks (at most KV_TARGETS_MAX), and the UNAVAILABLE check counts the fallbacks
 * as live replicas. A fallback is sent the write as a hint for its primary (the transport's
 * (a WRITE with hint_for) and its ack counts toward W, R and the level's regions (it is in its
 * primary's region), never toward pw / pr. A read asks it for its hint (a READ with hint_for), and
 * a read repair merges into that hint. The dead primary is not sent the write (it counts as
 * failed at once): were it alive after all, its ack and its fallback's would count one
 * replica twice. A fallback never coordinates a write, so a write whose primaries are all
 * dead is refused with UNAVAILABLE even when fallbacks could meet its level. A node that is
 * not a replica and coordinates a get may be a fallback of it: it reads its own hint. With no
 * fallback to be had (a 3-node cluster at N=3, every spare node of the region dead, or sloppy
 * quorum off) only primaries count. While fallbacks stand in, R + W > N no longer promises
 * that a read meets the last acknowledged write (they may have met different nodes);
 * PR + PW > N does.
 *
 * Membership changes (ring.h, ownership.h): while this node's ring moves partitions, every
 * request goes to the primaries of both claims (stand-ins only for those of the read claim,
 * and never a node that is already a target) and needs its level within each claim (quorum.h's
 * sets): W of the old owners and W of the new, R of each. Requests carry this node's ring
 * epoch; a replica with a newer ring refuses (KV_ESTALE) with it, this node takes it, and an
 * undecided request starts over on the new ring's targets (coord_internal.h).
 *
 * Forwarding to a region (DESIGN section 7, as Cassandra does): a write is sent once to each
 * other region, to a forwarder there (the region's first target, in preference-list order),
 * with the ids of the region's other targets; the forwarder takes the write itself, relays it
 * to them (kv_coord_on_peer_request) and answers once all of them answered or half the request's
 * timeout passed (leaving the other half for the trips between regions), with each one's
 * outcome (kv_msg_answer_t's relayed), so acks still count per replica toward W,
 * LOCAL_* and EACH_QUORUM, and durable still means fsynced on each replica counted (each
 * relayed replica answers after its own fsync). An outcome counts only for a target that was
 * forwarded through the node answering. When the forwarder's answer comes (or its message
 * fails), every target forwarded through it that it gave no outcome for has failed, so a
 * forwarder that dies or is cut off never has its region's acks counted: they fail with it or
 * at the deadline. A region is only forwarded to when every one of its targets is a primary
 * believed alive and there are at least two: with a fallback standing in there, or a primary
 * believed dead, its targets are sent the write directly, as are read repairs. Lag is
 * measured as the outcomes arrive, so a forwarded region's replicas all count as acking when
 * the forwarder's answer comes.
 *
 * Hinted handoff: a primary that did not acknowledge a write (down, lost message, deadline)
 * gets a hint kept here and handed over when it is back (hints.h), unless a fallback
 * acknowledged the write for it: the fallback's hint is handed over instead. A hint kept here
 * never counts toward W.
 *
 * Applied times (applied.h): for the last KV_APPLIED_MAX acknowledged writes it finished, the
 * coordinator remembers when W was met and when each primary that acked applied the write
 * (kv_coord_applied, Admin.Applied). Its wall clock at W is the request's wall_ms plus the
 * monotonic time from the request to the W-th ack, so no clock is read here; a forwarded
 * region's replicas report theirs through the forwarder's outcomes.
 *
 * Anti-entropy: the exchanges this node starts run here too (exchange.h), on the same
 * transport. So does tombstone reaping (reaper.h): a delete every primary
 * acknowledged is queued for it.
 *
 * What a failed write leaves: the UNAVAILABLE check runs before anything is written, so a
 * write refused for dead replicas lands nowhere. A write that fails later (deadline, replica
 * errors, full queues) may have landed on some replicas, as in Dynamo and Cassandra; a
 * client retrying it blind may see both as siblings, and should retry with its context. */
#ifndef KV_COORD_H
#define KV_COORD_H

#include <stdbool.h>
#include <stdint.h>

#include "aae.h"
#include "applied.h"
#include "histogram.h"
#include "kv_limits.h"
#include "kv_err.h"
#include "link.h"
#include "metrics.h"
#include "msg.h"
#include "node.h"
#include "ring.h"
#include "sync.h"

typedef enum { KV_OP_PUT, KV_OP_GET, KV_OP_DELETE } kv_op_t;

typedef struct {
  uint64_t pending;           /* hints stored for the target */
  uint64_t bytes;             /* their keys and records */
  uint64_t delivered;         /* acked and deleted, since start */
  uint64_t dropped;           /* not stored for lack of room, since start */
} kv_hint_stats_t;

/* Anti-entropy exchanges this node started with one peer (exchange.h). */
typedef struct {
  uint64_t exchanges;         /* finished, since start */
  uint64_t failed;            /* given up: the peer went silent or answered an error */
  uint64_t keys_repaired;     /* since start */
  uint64_t last_us;           /* monotonic time the last one finished; 0: never */
  uint64_t last_repaired;     /* keys the last one repaired */
} kv_aae_stats_t;

/* Tombstone reaping on this node (reaper.h), since start. */
typedef struct {
  uint64_t waiting;           /* deletes waiting out their grace period (now) */
  uint64_t reaped;            /* keys removed from every primary */
  uint64_t kept;              /* keys left as they were: a primary was down, held another
                                 record, was written meanwhile, or did not answer */
  uint64_t dropped;           /* deletes not queued: the queue was full */
} kv_reap_stats_t;

/* How the coordinator reaches other nodes: the driver's side of the links (link.h). The
 * core decides what leaves and when (batches, heartbeats); the transport carries it. */
typedef struct {
  void *arg;
  /* NULL in the runtime and the simulator: the links' failure detector judges who is alive.
   * A unit test of coordination alone may judge instead (then heartbeats and batch ends
   * still run, but only this answers whether node is alive). */
  bool (*alive)(void *arg, uint32_t node);
  /* Encodes m for node into *out (out->id is m->id; data and bytes are the transport's), to
   * be queued on node's link until a batch takes it. KV_ENOMEM. */
  kv_err (*pack)(void *arg, uint32_t node, const kv_msg_t *m, kv_link_item_t *out,
                 kv_status_t *st);
  /* Starts one batch call to node in the link's slot (< KV_PEER_WINDOW; other slots' calls
   * may be in flight meanwhile) carrying items[0..count) in order (their data is taken over;
   * count 0 is a heartbeat) with a deadline of deadline_ms. False when no call can start now
   * (the runtime is stopping), and then nothing is taken. After true, exactly one
   * kv_coord_on_batch_reply or kv_coord_on_batch_failed for node and slot comes, in a later
   * event. */
  bool (*send_batch)(void *arg, uint32_t node, uint32_t slot, const kv_link_item_t *items,
                     uint32_t count, uint32_t deadline_ms);
  /* Frees the data of an item that was never sent (queued when the coordinator is
   * destroyed). Must not need the transport to be alive. */
  void (*discard)(void *arg, kv_link_item_t *item);
  /* Sends a client's write request (as received) to node, which coordinates it; the
   * transport relays node's answer to the client call itself. */
  kv_err (*forward)(void *arg, uint32_t node, void *call, kv_op_t op, const uint8_t *request,
                    size_t request_bytes, uint32_t timeout_ms, kv_status_t *st);
} kv_coord_transport_t;

/* Answers a client call: res is NULL unless st->code is KV_OK. Called once per request. */
typedef void (*kv_coord_reply_fn)(void *call, const kv_status_t *st,
                                  const kv_node_result_t *res);

typedef struct kv_coord kv_coord_t;

/* Tunables; KV_COORD_OPTS_DEFAULT for the defaults. */
typedef struct {
  uint64_t hint_bytes_max;    /* hinted handoff: per target (hints.h) */
  uint32_t hint_rate_per_s;   /* hinted handoff: hints handed over per second */
  kv_metrics_t *metrics;      /* read repairs and lag per region go here; NULL: nowhere.
                                 Borrowed: it must outlive the coordinator. */
} kv_coord_opts_t;

#define KV_COORD_OPTS_DEFAULT {KV_HINT_BYTES_DEFAULT, KV_HINT_RATE_DEFAULT, NULL}

/* Everything is borrowed and must outlive the coordinator, but ring, which is copied (the
 * coordinator keeps its own, ownership.h). Fails when the hints already stored cannot be
 * counted or the stored ring read (a store error), or the stored ring is not one of this
 * config's (KV_ECORRUPT). */
kv_err kv_coord_create(kv_node_t *node, const kv_ring_t *ring, kv_syncer_t *syncer,
                       const kv_coord_transport_t *transport, kv_coord_reply_fn reply,
                       const kv_coord_opts_t *opts, kv_coord_t **out, kv_status_t *st);
/* Requests still in flight are dropped without a reply. Stop the syncer and the transport
 * first: both hold pointers into requests in flight. */
void kv_coord_destroy(kv_coord_t *c);

/* The core's events (DESIGN section 3). Each runs to completion; what it causes leaves
 * through the transport (SEND), the reply callback (REPLY) and the syncer (SYNC, sync.h),
 * and every clock reading comes in as an argument: mono_us monotonic (deadlines, lag),
 * wall_ms the wall clock (write timestamps). */

/* on_client: starts a request; the reply callback runs (maybe before this returns) exactly
 * once. */
void kv_coord_on_client(kv_coord_t *c, void *call, kv_op_t op, const kv_node_req_t *req,
                        uint64_t mono_us, uint64_t wall_ms);
/* on_peer_reply: the answer to a message this node sent (msg.h), or its failure (a code
 * alone). A write's applied_ms is kept for kv_coord_applied; a forwarder's relayed outcomes
 * count for the targets forwarded through it. Unknown or stale ids (a request already
 * finished) are ignored. */
void kv_coord_on_peer_reply(kv_coord_t *c, const kv_msg_answer_t *a, uint64_t mono_us);

/* on_batch_reply: node answered the batch in flight to it in slot (send_batch's);
 * answers[i] is the answer to its i-th message (borrowed for the call). A message whose
 * answer is missing or names another id has failed. The answer is a heartbeat arrival for
 * the failure detector (link.h). */
void kv_coord_on_batch_reply(kv_coord_t *c, uint32_t node, uint32_t slot,
                             const kv_msg_answer_t *answers, uint32_t count, uint64_t mono_us);
/* on_batch_failed: the batch in flight to node in slot got no answer: outcome
 * KV_LINK_TIMED_OUT (silence, for phi to judge) or KV_LINK_FAILED (the peer is down at once);
 * why is the transport's sentence, for the log. Every message of the batch has failed. */
void kv_coord_on_batch_failed(kv_coord_t *c, uint32_t node, uint32_t slot,
                              kv_link_outcome_t outcome, const char *why, uint64_t mono_us);

/* A forwarder's relay is over: every replica it relayed to answered or the wait passed
 * (outcomes borrowed for the call, in the order of the message's relay[]). Called inside the
 * core's event, so it must only queue work. */
typedef void (*kv_coord_relay_fn)(void *arg, const kv_relay_outcome_t *outcomes,
                                  uint32_t count);

/* What the replica's side made of a peer's message, for the driver to answer with. */
typedef struct {
  kv_err code;
  kv_status_t st;             /* the sentence when code is not KV_OK */
  uint64_t applied_ms;        /* WRITE: wall_ms, when it was applied */
  uint8_t *rec;               /* READ: the record, malloc'd (NULL, 0: none); RING and
                                 KV_ESTALE: this node's ring */
  size_t rec_bytes;
  kv_aae_answer_t tree;       /* TREE: owned */
  bool after_sync;            /* answer only once this node's next sync is done (push a
                                 waiter on the syncer; a failed sync fails the answer) */
  bool relaying;              /* a forwarder's write: answer only once done is called */
} kv_peer_result_t;

/* on_peer_request: the replica's side of a message from another node, the one dispatcher
 * the runtime (kvnode/server_rpc.c) and the simulator share. WRITE merges rec into this
 * replica (kv_node_merge) or, with hint_for, into the hint it keeps for that primary
 * (kv_hints_merge); with relay_count > 0 it is a forwarder's: refused whole when the relay
 * cannot start, else it also relays rec to relay[], whatever became of the merge, and
 * out->relaying says done(arg, ...) will be called exactly once (maybe before this returns:
 * the caller must be ready for it before the call); the answer waits for it. READ gives
 * the replica's record or the hint's. TREE answers from this node's trees (kv_aae_serve). REAP drops the hints the tombstone rec has
 * wholly seen and, unless hints_only, the replica's record while it is still rec
 * (kv_node_reap). Errors, in out->code with a sentence: KV_EINVAL for hint_for naming this
 * node, relay naming this node or past KV_REPLICAS_MAX - 1 replicas, a relay wait not 1 ..
 * KV_TIMEOUT_MS_MAX, an unknown keyspace, an empty key ("key is empty") or one over
 * KV_KEY_BYTES_HARD_MAX; KV_EBUSY when a hint has no room or KV_RELAYS_MAX
 * relays wait; KV_ECORRUPT for a record that does not
 * decode; KV_EPRECONDITION when a reaped record changed; else the store's. out is the
 * caller's: kv_peer_result_deinit. */
void kv_coord_on_peer_request(kv_coord_t *c, const kv_msg_t *m, uint64_t mono_us,
                              uint64_t wall_ms, kv_coord_relay_fn done, void *arg,
                              kv_peer_result_t *out);
void kv_peer_result_deinit(kv_peer_result_t *r);

/* on_tick: the passing of time (deadlines, handoff, exchanges, reaping, heartbeats to idle
 * peers, and the failure detector's verdicts). Call every few milliseconds. */
void kv_coord_on_tick(kv_coord_t *c, uint64_t mono_us);

/* This node's ring (ring.h; borrowed, changed by the coordinator's events: read it between
 * them). It starts as `ring` of kv_coord_create, or the newer one the node stored. */
const kv_ring_t *kv_coord_ring(const kv_coord_t *c);
/* A membership change made at this node, its claimant (ownership.h): the ring moves to the
 * member set `members` (bit i: node i of the config) through handoff, flip and settling, each
 * step spread by gossip. One change at a time, planned from a STABLE ring: KV_EBUSY with a
 * sentence while one runs; KV_EINVAL for a member set the ring cannot take (kv_ring_plan).
 * Nothing calls it in kvnode yet (kvctl join/leave/replace come with the gRPC step); the
 * simulator's nemesis does. */
kv_err kv_coord_ring_change(kv_coord_t *c, uint64_t members, uint64_t mono_us,
                            kv_status_t *st);

/* What this node believes of a peer (link.h). */
typedef struct {
  bool up;
  double phi;                 /* suspicion now; 0 until heard from */
  int64_t last_heard_ms_ago;  /* -1: never */
  uint32_t queued;            /* messages waiting for the next batch */
  uint64_t downs;             /* times it was judged down, since this coordinator started */
} kv_peer_liveness_t;
/* Of node at mono_us (this node itself: always up, phi 0, heard 0 ms ago). */
void kv_coord_liveness(kv_coord_t *c, uint32_t node, uint64_t mono_us, kv_peer_liveness_t *out);
/* Anti-entropy exchanges this node started with peer (see exchange.h). */
void kv_coord_aae_stats(kv_coord_t *c, uint32_t peer, kv_aae_stats_t *out);
/* Tombstone reaping on this node (see reaper.h). */
void kv_coord_reap_stats(kv_coord_t *c, kv_reap_stats_t *out);
/* Hinted handoff for one target node (see hints.h). */
void kv_coord_hint_stats(kv_coord_t *c, uint32_t target, kv_hint_stats_t *out);
/* Where a request for partition of ks would go now, as this node believes (the coordinator
 * plans every request with it; Admin.Ring reports it): *pl, the preference list, and, with
 * sloppy quorum, each dead primary's stand-in (kv_preflist_stand_ins over this node's liveness
 * view); stand_in (pl->primary_count entries) is all -1 when the keyspace has sloppy_quorum
 * off. ks must be from the ring's config; both outputs are caller-owned. */
void kv_coord_placement(kv_coord_t *c, const kv_keyspace_conf_t *ks, uint32_t partition,
                        kv_preflist_t *pl, int *stand_in);
/* When each replica applied the newest acknowledged write of (keyspace, key) this node
 * coordinated, among the last KV_APPLIED_MAX it finished (applied.h), copied into *out.
 * Errors, with a sentence: KV_EINVAL when the keyspace is unknown; KV_EUNAVAILABLE while a
 * write of the key is still in flight here (waiting for acks: ask again); KV_ENOTFOUND when
 * no such write is remembered (too old, failed, or coordinated elsewhere). */
kv_err kv_coord_applied(kv_coord_t *c, const char *keyspace, const uint8_t *key,
                        size_t key_bytes, kv_applied_write_t *out, kv_status_t *st);
/* Requests in the table: answered or not, still waiting for acks or an fsync. */
uint32_t kv_coord_in_flight(kv_coord_t *c);
/* Replication lag so far (microseconds from the W-th ack to the last ack, per write whose
 * every replica acked), copied into *out. */
void kv_coord_lag(kv_coord_t *c, kv_histogram_t *out);

#endif
