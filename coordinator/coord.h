/* coord.h: coordination of client requests over the replicas of a key (DESIGN section 7).
 *
 * The coordinator turns a client request into replica operations and counts their answers
 * with kv_quorum (sans-IO); this module is the glue that holds the requests in flight, talks
 * to the local replica (kv_node), to other nodes (a transport table: kvnode/peer_rpc.c), to
 * the group-commit syncer, and answers the client through a reply callback. It includes no
 * gRPC, so it can be driven by tests and, later, the simulator.
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
 * callback and the transport, which run inside those calls, only queue work. Bounded: at most KV_COORD_PENDING_MAX requests in flight; past that,
 * RESOURCE_EXHAUSTED. A request that fails because a peer's queue was full is answered with
 * the transport's RESOURCE_EXHAUSTED too, not as a replica failure.
 *
 * Sloppy quorum (DESIGN section 8; the keyspace's sloppy_quorum, on by default): for each
 * primary believed dead, the request also goes to a fallback, the next live node on the ring
 * past the preference list in that primary's region (kv_preflist_fallback), not already
 * standing in for another primary of the request. Targets are then the N primaries followed
 * by the fallbacks (at most KV_TARGETS_MAX), and the UNAVAILABLE check counts the fallbacks
 * as live replicas. A fallback is sent the write as a hint for its primary (the transport's
 * send_hint_write) and its ack counts toward W, R and the level's regions (it is in its
 * primary's region), never toward pw / pr. A read asks it for its hint (send_hint_read), and
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
 * Forwarding to a region (DESIGN section 7, as Cassandra does): a write is sent once to each
 * other region, to a forwarder there (the region's first target, in preference-list order),
 * with the ids of the region's other targets; the forwarder takes the write itself, relays it
 * to them (kv_coord_relay) and answers once all of them answered or half the request's
 * timeout passed (leaving the other half for the trips between regions), with each one's
 * outcome (kv_coord_answer_relayed), so acks still count per replica toward W,
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
#include "metrics.h"
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

/* One replica a forwarder relays a write to: its node index and the id of the coordinator's
 * message for it (echoed in the outcome). */
typedef struct {
  uint32_t node;
  uint64_t id;
} kv_relay_target_t;

/* A relayed replica's outcome: KV_OK when it acknowledged (after its fsync when durable). */
typedef struct {
  uint64_t id;                /* the kv_relay_target_t's */
  uint32_t node;
  kv_err code;                /* KV_ETIMEDOUT when it did not answer in the relay's wait */
  uint64_t applied_ms;        /* with KV_OK: its wall clock when it applied the write; 0 unknown */
} kv_relay_outcome_t;

/* How the coordinator reaches other nodes. Messages are queued; each answer comes back
 * through kv_coord_answer with the id given here. A send that fails (a full queue) has no
 * answer. */
typedef struct {
  void *arg;
  bool (*alive)(void *arg, uint32_t node);
  kv_err (*send_write)(void *arg, uint32_t node, uint64_t id, const char *keyspace,
                       const uint8_t *key, size_t key_bytes, const uint8_t *rec,
                       size_t rec_bytes, bool durable, kv_status_t *st);
  kv_err (*send_read)(void *arg, uint32_t node, uint64_t id, const char *keyspace,
                      const uint8_t *key, size_t key_bytes, kv_status_t *st);
  /* Sloppy quorum: as send_write and send_read, to a fallback, for the hint it keeps for
   * primary hint_for (a node index; the message names it by node id). */
  kv_err (*send_hint_write)(void *arg, uint32_t node, uint32_t hint_for, uint64_t id,
                            const char *keyspace, const uint8_t *key, size_t key_bytes,
                            const uint8_t *rec, size_t rec_bytes, bool durable,
                            kv_status_t *st);
  kv_err (*send_hint_read)(void *arg, uint32_t node, uint32_t hint_for, uint64_t id,
                           const char *keyspace, const uint8_t *key, size_t key_bytes,
                           kv_status_t *st);
  /* Forwarding to a region: as send_write, to a forwarder, which also relays the write to
   * the relay_count replicas of relay (borrowed for the call) and answers with their
   * outcomes (kv_coord_answer_relayed) within wait_ms. */
  kv_err (*send_relay_write)(void *arg, uint32_t node, uint64_t id, const char *keyspace,
                             const uint8_t *key, size_t key_bytes, const uint8_t *rec,
                             size_t rec_bytes, bool durable, const kv_relay_target_t *relay,
                             uint32_t relay_count, uint32_t wait_ms, kv_status_t *st);
  /* Sends a client's write request (as received) to node, which coordinates it; the
   * transport relays node's answer to the client call itself. */
  kv_err (*forward)(void *arg, uint32_t node, void *call, kv_op_t op, const uint8_t *request,
                    size_t request_bytes, uint32_t timeout_ms, kv_status_t *st);
  /* Sends an anti-entropy request (aae.h); its answer comes back through
   * kv_coord_aae_answer. */
  kv_err (*send_aae)(void *arg, uint32_t node, uint64_t id, const kv_aae_req_t *req,
                     kv_status_t *st);
  /* Tombstone reaping (reaper.h): asks node to run kv_coord_reap; the answer comes back
   * through kv_coord_answer. */
  kv_err (*send_reap)(void *arg, uint32_t node, uint64_t id, const char *keyspace,
                      const uint8_t *key, size_t key_bytes, const uint8_t *rec,
                      size_t rec_bytes, bool hints_only, kv_status_t *st);
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

/* Everything is borrowed and must outlive the coordinator. Fails when the hints already
 * stored cannot be counted (a store error). */
kv_err kv_coord_create(kv_node_t *node, const kv_ring_t *ring, kv_syncer_t *syncer,
                       const kv_coord_transport_t *transport, kv_coord_reply_fn reply,
                       const kv_coord_opts_t *opts, kv_coord_t **out, kv_status_t *st);
/* Requests still in flight are dropped without a reply. Stop the syncer and the transport
 * first: both hold pointers into requests in flight. */
void kv_coord_destroy(kv_coord_t *c);

/* Starts a request; the reply callback runs (maybe before this returns) exactly once.
 * mono_us: monotonic clock (deadlines, lag); wall_ms: wall clock (write timestamps). */
void kv_coord_request(kv_coord_t *c, void *call, kv_op_t op, const kv_node_req_t *req,
                      uint64_t mono_us, uint64_t wall_ms);
/* An answer from another node: code KV_OK with rec (a read's record; may be empty) or an
 * error. applied_ms: a write's ack's wall-clock ms of applying it on that node (PeerAnswer's
 * applied_ms; 0 when unknown or not a write), kept for kv_coord_applied. Unknown or stale ids
 * (a request already finished) are ignored. */
void kv_coord_answer(kv_coord_t *c, uint64_t id, kv_err code, const uint8_t *rec,
                     size_t rec_bytes, uint64_t applied_ms, uint64_t mono_us);
/* A forwarder's answer (see kv_coord_answer; applied_ms is its own) with the outcomes of the
 * replicas it relayed the write to (borrowed for the call; count may be 0), each with its
 * own applied_ms. */
void kv_coord_answer_relayed(kv_coord_t *c, uint64_t id, kv_err code, uint64_t applied_ms,
                             const kv_relay_outcome_t *relayed, uint32_t count,
                             uint64_t mono_us);
/* The forwarder's side: relays a write (rec, for keyspace and key) to the count replicas of
 * targets (node indexes resolved from the node ids in nodes[], each the coordinator's id in
 * ids[]; both borrowed for the call), and calls done(arg, outcomes, count) once, when each
 * has answered or wait_ms has passed (maybe before this returns; with inside the
 * core's step, so it must only queue work; outcomes borrowed for the call, in
 * the order of nodes). Errors, with a sentence, and done is never called: KV_EINVAL when count
 * is past KV_REPLICAS_MAX - 1, a node id is not another node of the cluster or wait_ms is not
 * 1 .. KV_TIMEOUT_MS_MAX, KV_EBUSY when
 * KV_RELAYS_MAX relays are waiting. */
typedef void (*kv_coord_relay_fn)(void *arg, const kv_relay_outcome_t *outcomes,
                                  uint32_t count);
kv_err kv_coord_relay(kv_coord_t *c, const char *keyspace, const uint8_t *key,
                      size_t key_bytes, const uint8_t *rec, size_t rec_bytes, bool durable,
                      const char *const *nodes, const uint64_t *ids, uint32_t count,
                      uint32_t wait_ms, kv_coord_relay_fn done, void *arg, uint64_t mono_us,
                      kv_status_t *st);
/* The answer to an anti-entropy request (ans borrowed for the call; NULL unless code is
 * KV_OK). Replica reads and writes of exchanges answer through kv_coord_answer. */
void kv_coord_aae_answer(kv_coord_t *c, uint64_t id, kv_err code, const kv_aae_answer_t *ans,
                         uint64_t mono_us);
/* The passing of time: deadlines. Call every few milliseconds. */
void kv_coord_tick(kv_coord_t *c, uint64_t mono_us);
/* Anti-entropy exchanges this node started with peer (see exchange.h). */
void kv_coord_aae_stats(kv_coord_t *c, uint32_t peer, kv_aae_stats_t *out);
/* Tombstone reaping on this node (see reaper.h). */
void kv_coord_reap_stats(kv_coord_t *c, kv_reap_stats_t *out);
/* Hinted handoff for one target node (see hints.h). */
void kv_coord_hint_stats(kv_coord_t *c, uint32_t target, kv_hint_stats_t *out);
/* The replica side of a fallback's messages (a ReplicaWrite or ReplicaRead naming hint_for,
 * the node id of the primary the hint is kept for), shared by the runtime and the
 * simulator: kv_coord_hint_write merges rec into the hint (kv_hints_merge), to be
 * acknowledged (after a kv_node_sync when durable); kv_coord_hint_read gives the hint's
 * record (*rec malloc'd; NULL, 0 when there is none). KV_EINVAL when hint_for is not another
 * node of the cluster; KV_EBUSY when the hint has no room; else as kv_hints_merge. */
kv_err kv_coord_hint_write(kv_coord_t *c, const char *hint_for, const char *keyspace,
                           const uint8_t *key, size_t key_bytes, const uint8_t *rec,
                           size_t rec_bytes, kv_status_t *st);
kv_err kv_coord_hint_read(kv_coord_t *c, const char *hint_for, const char *keyspace,
                          const uint8_t *key, size_t key_bytes, uint8_t **rec,
                          size_t *rec_bytes, kv_status_t *st);
/* The replica side of a reap (reaper.h; a ReplicaReap), shared by the runtime and the
 * simulator: drops the hints this node keeps for the key that the tombstone rec has wholly
 * seen and, unless hints_only, removes this replica's record of the key while it is still
 * rec (kv_node_reap). KV_EINVAL when the keyspace is unknown, KV_ECORRUPT when rec does not
 * decode, KV_EPRECONDITION when the record changed; else as the store. */
kv_err kv_coord_reap(kv_coord_t *c, const char *keyspace, const uint8_t *key, size_t key_bytes,
                     const uint8_t *rec, size_t rec_bytes, bool hints_only, kv_status_t *st);
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
