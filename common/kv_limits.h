/* kv_limits.h: every bound in tunekv, in one place.
 *
 * *_DEFAULT values are what a keyspace gets when the config says nothing; *_HARD_MAX values
 * are the most a config may ask for. Fixed-size arrays in structs use the *_MAX values.
 * The gRPC maximum message size is derived from these (kv_limits_grpc_message_bytes), so a
 * request the limits allow is never cut off by the transport. */
#ifndef KV_LIMITS_H
#define KV_LIMITS_H

#include <stddef.h>
#include <stdint.h>

/* Keys and values. */
#define KV_KEY_BYTES_DEFAULT (1024u)
#define KV_KEY_BYTES_HARD_MAX (64u * 1024u)
#define KV_VALUE_BYTES_DEFAULT (1024u * 1024u)
#define KV_VALUE_BYTES_HARD_MAX (16u * 1024u * 1024u)

/* Versions: siblings per key, actors per version vector, loose dots per context. */
#define KV_SIBLINGS_DEFAULT 16u
#define KV_SIBLINGS_MAX 64u
#define KV_VV_ENTRIES_MAX 64u
#define KV_CLOUD_DOTS_MAX 64u
/* An encoded causal context: at most (VV + cloud) dots of at most ~60 bytes each. */
#define KV_CONTEXT_BYTES_MAX (16u * 1024u)

/* Cluster shape. */
#define KV_NODES_MAX 64u
#define KV_NODE_ID_BYTES_MAX 32u     /* without the NUL */
#define KV_ADDRESS_BYTES_MAX 255u
#define KV_REGIONS_MAX 8u
#define KV_REGION_BYTES_MAX 32u
#define KV_RACK_BYTES_MAX 32u
#define KV_KEYSPACES_MAX 64u
#define KV_KEYSPACE_NAME_BYTES_MAX 64u
#define KV_HANDLER_NAME_BYTES_MAX 64u
/* A keyspace's handler: a name, or "plugin:" and the path of a shared object. */
#define KV_HANDLER_BYTES_MAX 255u
/* Handlers known to one process: the built-ins and every plugin its config names. */
#define KV_HANDLERS_MAX 32u
#define KV_CLUSTER_NAME_BYTES_MAX 64u
#define KV_PARTITIONS_DEFAULT 256u
#define KV_PARTITIONS_MAX 65536u
#define KV_REPLICAS_MAX 16u          /* N summed over regions */
/* A request's targets: the N primaries plus, with sloppy quorum, a fallback for each of them
 * believed dead (coordinator/coord.h). */
#define KV_TARGETS_MAX (2u * KV_REPLICAS_MAX)
/* Admin.Ring's whole-ring answer: at most this many (partition, keyspace) rows (every node of
 * every row: 16 MiB of indexes at the most nodes), so the default 256 partitions always fit
 * and a ring too large for one answer is asked about one key at a time. */
#define KV_RING_ROWS_MAX 65536u

/* Security (config tls: and tokens:, kvnode/tls.c, kvnode/auth.c). A token's secret is
 * printable ASCII without spaces (it travels in an HTTP/2 header), at least 16 bytes so that
 * it cannot be guessed. */
#define KV_TLS_PATH_BYTES_MAX 255u
#define KV_TOKENS_MAX 64u
#define KV_TOKEN_NAME_BYTES_MAX 64u
#define KV_TOKEN_SECRET_BYTES_MIN 16u
#define KV_TOKEN_SECRET_BYTES_MAX 256u

/* Clock sanity: a peer whose wall clock is off by more than the config's max_clock_skew_ms
 * is reported, and lww decisions over its writes are journaled as suspect. */
#define KV_CLOCK_SKEW_MS_DEFAULT 500u
#define KV_CLOCK_SKEW_MS_MAX 3600000u

/* The conflict journal (common/journal.h): entries, bytes of keys and values in all, and the
 * bytes of one value kept in an entry. */
#define KV_JOURNAL_ENTRIES_MAX 4096u
#define KV_JOURNAL_BYTES_MAX (16u << 20)
#define KV_JOURNAL_VALUE_BYTES_MAX (64u << 10)

/* Requests. */
#define KV_TIMEOUT_MS_DEFAULT 2000u
#define KV_TIMEOUT_MS_MAX 600000u

/* Coordination: client requests in flight on one node, and node-to-node messages queued for
 * one peer while a batch to it is in flight (past either: RESOURCE_EXHAUSTED). */
#define KV_COORD_PENDING_MAX 4096u
#define KV_HANDOFF_IN_FLIGHT_MAX 256u    /* hinted handoffs waiting for acks */
/* Forwarding to a region (coordinator/coord.h): writes a forwarder relays to its region at once. */
#define KV_RELAYS_MAX 1024u
/* Applied times of the writes a node coordinated (coordinator/applied.h; Admin.Applied): the last
 * this many finished writes are remembered. */
#define KV_APPLIED_MAX 4096u
#define KV_HINT_BYTES_DEFAULT (64ull << 20) /* per target; kvnode --hint-bytes-max */
#define KV_HINT_RATE_DEFAULT 2000u       /* hints handed off per second; kvnode --hint-rate */
#define KV_HINT_BYTES_MAX (1ull << 40)
#define KV_HINT_RATE_MAX 1000000u
/* Membership changes (coordinator/ownership.h): how often a node whose ring has changed
 * sends it to its next peer, and the records of a partition streamed to its new owners in one
 * chunk (one chunk in flight per node). */
#define KV_RING_GOSSIP_MS 100u
#define KV_OWN_CHUNK_MAX 32u
/* Anti-entropy (coordinator/aae.h). */
#define KV_AAE_SEGMENTS 1024u            /* per (partition, keyspace) tree; a power of two */
#define KV_AAE_KEYS_SEGMENTS_MAX 64u     /* segments whose keys one exchange step lists */
#define KV_AAE_REPAIRS_IN_FLIGHT 64u     /* key repairs waiting for answers */
#define KV_AAE_INTERVAL_MS_DEFAULT 30000u /* cluster: anti_entropy_interval_ms; 0 is off */
#define KV_AAE_INTERVAL_MS_MAX 86400000u
/* Tombstone reaping (coordinator/coord.h). */
#define KV_TOMBSTONE_GRACE_MS_DEFAULT 60000u /* cluster: tombstone_grace_ms */
#define KV_TOMBSTONE_GRACE_MS_MAX 864000000u /* ten days, Cassandra's gc_grace_seconds */
#define KV_REAP_QUEUE_MAX 65536u          /* deletes waiting out their grace period */
#define KV_PEER_QUEUE_MAX 8192u
#define KV_PEER_BATCH_MAX 1024u          /* messages in one batch RPC */
/* Batches in flight to one peer at once (coordinator/link.h). One left every message waiting
 * a whole round trip behind the batch before it; a few let the stages of successive batches
 * overlap (the sender packing one while the network carries another and the peer applies and
 * fsyncs a third), and let a batch leave every RTT/4 over a WAN link. More than 4 buys little
 * on the 2- to 8-core machines nodes run on (the peer's handler threads are already busy) and
 * costs batching: every free slot takes whatever is queued at once, so the wider the window
 * the smaller each batch and the more calls, fsync waits and answers for the same messages.
 * Each slot keeps up to KV_PEER_BATCH_MAX message ids. */
#define KV_PEER_WINDOW 4u
#define KV_PEER_HEARTBEAT_MS 100u        /* an idle peer hears from us this often */
/* A heartbeat's deadline. A heartbeat that times out is silence, which the failure detector
 * judges; it does not by itself mark the peer down (unless the peer was never heard from). */
#define KV_PEER_HEARTBEAT_TIMEOUT_MS 500u

/* Failure detection: phi accrual (coordinator/phi.h). Per peer, the last KV_PHI_WINDOW_MAX
 * heartbeat inter-arrival times (1000, as in Akka and Cassandra); an interval longer than
 * KV_PHI_INTERVAL_MS_MAX is an outage, not a sample (Cassandra's fd_max_interval_ms).
 * Until two heartbeats have arrived the mean is taken to be the heartbeat interval.
 * The standard deviation is at least KV_PHI_STD_DEV_MIN_MS (Akka's min-std-deviation):
 * on loopback an idle peer's heartbeats arrive every 100-106 ms, a deviation of about 2 ms,
 * and a normal distribution that narrow would condemn a peer for one heartbeat 15 ms late.
 * With 100 ms, phi passes 8 at 5.61 deviations past the mean: an idle peer that falls silent
 * is down about 660 ms after its last heartbeat, while a busy one (answers every few ms) may
 * pause for one whole heartbeat interval with phi still under 1. */
#define KV_PHI_WINDOW_MAX 1000u
#define KV_PHI_INTERVAL_MS_MAX 2000u
#define KV_PHI_FIRST_INTERVAL_MS KV_PEER_HEARTBEAT_MS
#define KV_PHI_STD_DEV_MIN_MS 100u
/* The phi above which a peer is down (config: cluster.phi_threshold). 8 (Cassandra's and
 * Akka's default) means a chance of about 1e-8 that a live peer's heartbeat is this late. */
#define KV_PHI_THRESHOLD_DEFAULT 8.0
#define KV_PHI_THRESHOLD_MIN 1.0
#define KV_PHI_THRESHOLD_MAX 100.0

/* Fault injection (kvctl fault; kvnode/peer_rpc.c): the most a call may be delayed, by delay
 * and by jitter each, and the calls held back per peer (delayed, or dropped and waiting out
 * their deadline), past which a write forwarded to that peer is answered RESOURCE_EXHAUSTED. */
#define KV_FAULT_DELAY_MS_MAX 10000u
#define KV_FAULT_HELD_MAX 1024u

/* gRPC server runtime. */
/* One worker by default: on a 2-core machine shared with its clients, one thread served
 * 18.6k gets/s against 14.0k with two (kvbench, 64 in flight). fsyncs never block it: durable
 * writes are synced by a separate group-commit thread. */
#define KV_SERVER_THREADS_DEFAULT 1u
#define KV_SERVER_THREADS_MAX 64u
#define KV_SERVER_ARMED_CALLS 256u   /* requests kept armed per completion queue */

/* Storage memory (kvnode/store.c). One block cache shared by all column families, sized for
 * a small (2-core, few GiB) node; without it each family would get a private cache of
 * RocksDB's choosing. */
#define KV_STORE_BLOCK_CACHE_BYTES (64u << 20)
/* The config may size both (cluster: block_cache_mb, memtable_mb) within these. */
#define KV_STORE_MB_MIN 8u
#define KV_STORE_MB_MAX 65536u
/* Memtables summed over all column families, so four families cannot hold 4 x 2 x 64 MiB of
 * unflushed writes on a small machine. */
#define KV_STORE_MEMTABLES_BYTES (128u << 20)
/* A WAL file is kept until every family with writes in it has flushed. Meta and hints see
 * few writes, so their memtables would pin old WAL files up to RocksDB's default cap
 * (4 x all memtables); past this smaller cap RocksDB flushes them instead. */
#define KV_STORE_WAL_BYTES_MAX (256u << 20)

/* Room in a message for everything that is not a key, value or context. */
#define KV_MESSAGE_OVERHEAD_BYTES (64u * 1024u)

/* The largest gRPC message any tunekv endpoint accepts or sends: a get reply with every
 * sibling at the largest value, or a put with the largest key, value and context. */
static inline size_t kv_limits_grpc_message_bytes(uint32_t key_bytes_max,
                                                  uint32_t value_bytes_max,
                                                  uint32_t siblings_max) {
  size_t put = (size_t)key_bytes_max + value_bytes_max + KV_CONTEXT_BYTES_MAX;
  size_t get = (size_t)siblings_max * value_bytes_max + KV_CONTEXT_BYTES_MAX;
  return (put > get ? put : get) + KV_MESSAGE_OVERHEAD_BYTES;
}

#endif
