/* tunekv.h: libtunekv, the C client of tunekv (service tunekv.KV, proto/kv.proto).
 *
 * Shape (after LMDB): opaque handles with open/close, every function returns a kv_err
 * (0 = KV_OK, negative = failure) and, when `st` is not NULL, fills a kv_client_status_t with
 * the gRPC status code and the server's sentence. Every pointer below says who owns it and
 * how long it lives. Nothing here prints, exits or reads environment variables.
 *
 * Errors. A call that reached the server returns the server's status: st->grpc_code is the
 * numeric gRPC code exactly as received (3 = INVALID_ARGUMENT, 14 = UNAVAILABLE, ...),
 * st->msg its message, and st->code / the return value the kv_err it maps to (see
 * kv_client_err_from_grpc). Transport failures come back the same way, as gRPC reports them
 * (e.g. UNAVAILABLE "failed to connect to all addresses; ..." when nothing listens).
 * Failures found before anything is sent (bad arguments, out of memory, a full async table)
 * carry the gRPC code of their kv_err (kv_err_grpc_code). kv_client_status_name() gives the
 * status name, so "<NAME>: <msg>" is how a tool shows an error.
 *
 * A missing key is not an error: a get answers KV_OK with found = false.
 *
 * Sizes. The channel's maximum send and receive message sizes are set from the hard maxima
 * of common/kv_limits.h, so the server, not the transport, judges keys, values and contexts.
 *
 * Deadlines. Every call has a real deadline: opts->timeout_ms + KV_CLIENT_DEADLINE_MARGIN_MS
 * when timeout_ms is set (the server's own deadline is timeout_ms, so its DEADLINE_EXCEEDED
 * with the number of acks arrives before ours), else KV_CLIENT_DEADLINE_DEFAULT_MS.
 *
 * Threads. A kv_client_t's blocking calls are made by one thread at a time. A kv_client_t may
 * be shared by several kv_client_async_t, and used for blocking calls at the same time as by
 * async calls. A kv_client_async_t is used by one thread at a time. */
#ifndef KV_TUNEKV_H
#define KV_TUNEKV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv_err.h"
#include "kv_limits.h"

#define KV_CLIENT_DEADLINE_MARGIN_MS 1000u
#define KV_CLIENT_DEADLINE_DEFAULT_MS 10000u
/* Most calls one kv_client_async_t keeps in flight. */
#define KV_CLIENT_ASYNC_MAX 16384u

/* A status as it came from the server (or the transport, or the library itself). Caller-owned,
 * no heap. */
typedef struct {
  kv_err code;                   /* kv_client_err_from_grpc(grpc_code) */
  int grpc_code;                 /* numeric gRPC status code, 0 = OK */
  char msg[KV_STATUS_MSG_BYTES]; /* the status message, NUL-terminated, cut to fit */
} kv_client_status_t;

/* The gRPC status name of st->grpc_code ("INVALID_ARGUMENT"); a static string. */
const char *kv_client_status_name(const kv_client_status_t *st);
/* The kv_err a gRPC code maps to: INVALID_ARGUMENT -> KV_EINVAL, NOT_FOUND -> KV_ENOTFOUND,
 * UNAVAILABLE -> KV_EUNAVAILABLE, DEADLINE_EXCEEDED -> KV_ETIMEDOUT, RESOURCE_EXHAUSTED ->
 * KV_EBUSY, FAILED_PRECONDITION -> KV_EPRECONDITION, DATA_LOSS -> KV_ECORRUPT,
 * PERMISSION_DENIED -> KV_EPERM, UNAUTHENTICATED -> KV_EUNAUTH, anything else -> KV_EINTERNAL. */
kv_err kv_client_err_from_grpc(int grpc_code);

/* Consistency and other per-request options. Zero it (or use KV_CLIENT_OPTS_INIT) and set
 * what you need; a NULL opts means all defaults. */
typedef struct {
  const char *level;   /* borrowed for the call; NULL or "" = the keyspace default. Sent
                          verbatim: the server matches it case-insensitively and rejects
                          unknown names with INVALID_ARGUMENT. */
  uint32_t r, w;       /* explicit read / write counts; 0 = from the level */
  uint32_t pr, pw;     /* replies / acks that must come from primaries; 0 = none */
  bool durable;        /* writes: acknowledged only after fsync */
  uint32_t timeout_ms; /* the server's deadline for the request; 0 = server default */
  bool local;          /* get only: read the receiving node's own replica, no coordination */
  const char *read_repair; /* get only: "blocking", "async", or NULL / "" for the level's
                              default (blocking at QUORUM and above); borrowed for the call */
  const char *handler;     /* the conflict handler that resolves the answer (a get's also
                              what read repair writes back); NULL or "" = the keyspace's;
                              borrowed for the call. Unknown names: INVALID_ARGUMENT. */
} kv_client_opts_t;

#define KV_CLIENT_OPTS_INIT {NULL, 0, 0, 0, 0, false, 0, false, NULL, NULL}

/* One connection (one gRPC channel) to one node. Opaque. */
typedef struct kv_client kv_client_t;

/* How a client proves who it is to a node run with a tls section and tokens (README "TLS and
 * tokens"). Zero it and set what you need; every pointer is borrowed for kv_client_open_auth
 * (the files are read and the token copied there). */
typedef struct {
  const char *ca_file;     /* PEM CA the node's certificate must chain to; NULL: plaintext */
  const char *cert_file;   /* PEM client certificate (chain), with key_file; NULL: none */
  const char *key_file;    /* its private key, PEM, not encrypted */
  const char *server_name; /* the name the node's certificate must carry; NULL: the host of
                              the address (an IP address matches an IP subjectAltName) */
  const char *token;       /* bearer token sent with every call; NULL or "": none */
} kv_client_auth_t;

/* Opens a client for `addr` ("HOST:PORT", borrowed for the call). No connection is made
 * here: an unreachable node shows up as UNAVAILABLE on the first call. *out is owned by the
 * caller until kv_client_close. Errors: KV_EINVAL (empty or over-long address), KV_ENOMEM. */
int kv_client_open(const char *addr, kv_client_t **out, kv_client_status_t *st);
/* Closes the channel and frees c. Blocking calls on c must have returned; async calls
 * started on c should have been harvested (or their kv_client_async_t destroyed). c may be
 * NULL. */
void kv_client_close(kv_client_t *c);
/* kv_client_open, with auth (NULL: plaintext and no token, as kv_client_open). Errors also:
 * KV_EINVAL with a sentence for a file that cannot be read, a certificate without its key (or
 * a key without its certificate), a certificate or key without ca_file, a token with a byte
 * that is not printable ASCII or a space. A certificate the node does not trust, or a node
 * whose certificate does not name server_name, shows up as UNAVAILABLE on the first call. */
int kv_client_open_auth(const char *addr, const kv_client_auth_t *auth, kv_client_t **out,
                        kv_client_status_t *st);

typedef struct {
  const uint8_t *value; /* owned by the result; never NULL (points at "" when empty) */
  size_t value_bytes;
  uint64_t hlc;         /* hybrid logical clock timestamp of the write */
} kv_client_sibling_t;

/* What every call answers: the key's live versions and a context covering them. A put or
 * delete answers like a get of the object it left (Riak's return_body): the write plus any
 * concurrent versions, so writing back with this context replaces only versions you were
 * shown. Owned by the caller and released with kv_client_result_free; every pointer inside
 * lives until then. */
typedef struct {
  bool found;                     /* at least one live version */
  size_t n_siblings;              /* 0 when not found */
  kv_client_sibling_t *siblings;  /* n_siblings concurrent versions, in the server's order */
  const uint8_t *context;         /* covers every version returned; never NULL */
  size_t context_bytes;
  void *priv_;                    /* the decoded reply the pointers above point into */
} kv_client_result_t;

/* Writes `value` under `key` in `keyspace`.
 *   keyspace: NUL-terminated, borrowed for the call.
 *   key, value, context: borrowed for the call; may be NULL when their length is 0.
 *   context: the causal context of an earlier call's result (empty = none).
 *   res: filled on KV_OK; on failure it is empty (freeing it is harmless).
 * Errors: the server's (see the top of this file). */
int kv_client_put(kv_client_t *c, const char *keyspace, const void *key, size_t key_bytes,
                  const void *value, size_t value_bytes, const void *context,
                  size_t context_bytes, const kv_client_opts_t *opts, kv_client_result_t *res,
                  kv_client_status_t *st);

/* Deletes `key` (writes a tombstone over the versions `context` covers). Arguments as for
 * kv_client_put; res holds any concurrent versions the delete did not cover. */
int kv_client_delete(kv_client_t *c, const char *keyspace, const void *key, size_t key_bytes,
                     const void *context, size_t context_bytes, const kv_client_opts_t *opts,
                     kv_client_result_t *res, kv_client_status_t *st);

/* Reads `key`. keyspace, key and opts are borrowed for the call (opts->local asks for the
 * node's own replica only). found may be false on KV_OK. */
int kv_client_get(kv_client_t *c, const char *keyspace, const void *key, size_t key_bytes,
                  const kv_client_opts_t *opts, kv_client_result_t *res,
                  kv_client_status_t *st);
/* Frees what *res holds and zeroes it. res may be NULL; a zeroed result is fine. */
void kv_client_result_free(kv_client_result_t *res);

/* One other node as the node asked sees it. */
typedef struct {
  char id[KV_NODE_ID_BYTES_MAX + 1];
  char address[KV_ADDRESS_BYTES_MAX + 1];
  bool up;
  double phi;                     /* the failure detector's suspicion; 0 until heard from */
  int64_t last_heard_ms_ago;      /* -1: never heard from */
  uint64_t hints_pending, hint_bytes; /* hinted handoff kept for this peer */
  uint64_t hints_delivered, hints_dropped; /* since the node started */
  /* anti-entropy exchanges the node started with this peer, since it started */
  uint64_t aae_exchanges, aae_failed, aae_keys_repaired;
  int64_t aae_last_ms_ago;        /* -1: none finished */
  uint64_t aae_last_repaired;     /* keys the last exchange repaired */
  bool clock_known;               /* clock sanity: an offset has been measured */
  int64_t clock_offset_ms;        /* the peer's wall clock minus the node's */
  bool clock_skewed;              /* past the config's max_clock_skew_ms */
} kv_client_peer_t;

/* A node's view of itself and the cluster (kvctl status). Caller-owned, no heap. */
typedef struct {
  char node[KV_NODE_ID_BYTES_MAX + 1];
  char cluster[KV_CLUSTER_NAME_BYTES_MAX + 1];
  uint64_t incarnation;
  size_t n_peers;
  kv_client_peer_t peers[KV_NODES_MAX];
  uint64_t lag_writes;            /* writes whose every replica acknowledged */
  double lag_p50_ms, lag_p99_ms, lag_max_ms; /* W-th ack to last ack */
  uint32_t aae_interval_ms;       /* anti-entropy's exchange interval; 0: off */
  uint32_t reap_grace_ms;         /* tombstone reaping: the grace period ... */
  uint64_t reap_waiting, reap_reaped, reap_kept, reap_dropped; /* ... and coordinator/reaper.h's counts */
  uint32_t max_clock_skew_ms;     /* the config's bound */
  uint64_t rss_bytes;             /* the node process's resident memory; 0: unknown */
  uint32_t threads;               /* and its threads */
} kv_client_node_status_t;

/* Asks the node c talks to for its status. */
int kv_client_node_status(kv_client_t *c, kv_client_node_status_t *out,
                          kv_client_status_t *st);

/* The conflict journal of a node (kvctl conflicts; common/journal.h): the versions its
 * conflict handlers discarded. Every pointer below points into the decoded reply and lives
 * until kv_client_conflicts_free. */
typedef struct {
  const char *node;               /* the dot; "" for a merged value, which has none */
  uint64_t incarnation, counter;
  uint64_t hlc;
  bool tombstone;
  bool truncated;                 /* value holds only the first bytes */
  const uint8_t *value;
  size_t value_bytes;
} kv_client_conflict_version_t;

typedef struct {
  uint64_t seq, time_ms;
  const char *keyspace;
  const uint8_t *key;
  size_t key_bytes;
  const char *handler;
  const char *reason;             /* "read", "write-back" or "sibling cap" */
  bool suspect;                   /* a version came from a node with a skewed clock */
  kv_client_conflict_version_t kept;
  size_t n_discarded;
  kv_client_conflict_version_t *discarded;
} kv_client_conflict_t;

typedef struct {
  const char *handler;
  uint64_t discarded;             /* versions discarded since the node started */
} kv_client_handler_count_t;

typedef struct {
  size_t n_conflicts;
  kv_client_conflict_t *conflicts; /* oldest first */
  bool more;                      /* ask again with after = the last seq */
  uint64_t evicted;               /* entries the bounded journal dropped */
  size_t n_counts;
  kv_client_handler_count_t *counts;
  void *priv_;
} kv_client_conflicts_t;

/* One page of the journal of the node c talks to: the entries with seq > after. *out is
 * owned by the caller until kv_client_conflicts_free (also after a failure). */
int kv_client_conflicts(kv_client_t *c, uint64_t after, kv_client_conflicts_t *out,
                        kv_client_status_t *st);
void kv_client_conflicts_free(kv_client_conflicts_t *out);

/* When each replica applied a write (kvctl applied, kvbench lag; proto/peer.proto's
 * Admin.Applied). Caller-owned, no heap. */
typedef struct {
  char node[KV_NODE_ID_BYTES_MAX + 1];
  uint64_t applied_ms;            /* its wall clock when it applied the write */
} kv_client_replica_applied_t;

typedef struct {
  uint64_t acked_ms;              /* the coordinator's wall clock when W acks were in */
  size_t n_replicas;
  kv_client_replica_applied_t replicas[KV_REPLICAS_MAX]; /* primaries that acknowledged */
} kv_client_applied_t;

/* Asks the node c talks to when each replica applied the newest acknowledged write of
 * (keyspace, key) it coordinated (borrowed for the call). Errors: the server's:
 * INVALID_ARGUMENT for an unknown keyspace, UNAVAILABLE while the write still waits for acks
 * there (ask again), NOT_FOUND when the node remembers no such write (it keeps its last 4096;
 * a write sent to a node that is not a replica is coordinated by the first live primary). */
int kv_client_applied(kv_client_t *c, const char *keyspace, const void *key, size_t key_bytes,
                      kv_client_applied_t *out, kv_client_status_t *st);

/* The ring as a node computes it, with its view of which nodes are up (kvctl ring;
 * proto/peer.proto's Admin.Ring). Every pointer below points into the decoded reply and lives
 * until kv_client_ring_free. Nodes are named by their index in nodes[]. */
typedef struct {
  const char *id, *address, *region;
  const char *rack;               /* "" when the config gives none */
  bool up;                        /* as the node asked believes; it is always up itself */
} kv_client_ring_node_t;

typedef struct {
  uint32_t partition;
  size_t n_primaries;             /* N: the preference list, by the keyspace's region order */
  const uint32_t *primaries;      /* node indexes */
  size_t n_fallbacks;             /* the other nodes of the keyspace's regions, in walk order */
  const uint32_t *fallbacks;
  const int32_t *stand_ins;       /* n_primaries: the node standing in for each primary now,
                                     or -1 (up, no live fallback left, or sloppy quorum off) */
} kv_client_ring_partition_t;

typedef struct {
  const char *name;
  size_t n_regions;
  const char *regions[KV_REGIONS_MAX];  /* the keyspace's replication, in its order */
  uint32_t replicas[KV_REGIONS_MAX];
  bool sloppy_quorum;
  size_t n_partitions;            /* every partition in order; for a key, its partition only */
  kv_client_ring_partition_t *partitions;
} kv_client_ring_keyspace_t;

typedef struct {
  const char *node;               /* the node asked */
  uint32_t partitions;            /* the config's partition count */
  size_t n_nodes;
  kv_client_ring_node_t nodes[KV_NODES_MAX];  /* in config order */
  size_t n_keyspaces;
  kv_client_ring_keyspace_t *keyspaces;
  void *priv_;
} kv_client_ring_t;

/* Asks the node c talks to for its ring: with keyspace "" and no key (key_bytes 0), every
 * partition of every keyspace; otherwise the partition of (keyspace, key), both borrowed for
 * the call. *out is owned by the caller until kv_client_ring_free (also after a failure).
 * Errors: the server's: NOT_FOUND for an unknown keyspace, INVALID_ARGUMENT for an empty
 * keyspace or a key that is empty or too long, RESOURCE_EXHAUSTED for a whole ring too large
 * for one answer; KV_EINTERNAL when the reply names a node it does not list. */
int kv_client_ring(kv_client_t *c, const char *keyspace, const void *key, size_t key_bytes,
                   kv_client_ring_t *out, kv_client_status_t *st);
void kv_client_ring_free(kv_client_ring_t *out);

/* Fault injection on the calls a node makes to its peers (kvctl fault; proto/peer.proto's
 * FaultRequest). A fault holds each call to a peer back delay_ms plus a uniform 0..jitter_ms
 * plus an exponential of mean exp_delay_ms, or loses it with probability drop (1 is a partition). */
typedef enum {
  KV_CLIENT_FAULT_LIST,   /* change nothing */
  KV_CLIENT_FAULT_SET,    /* set *fault on the named peers (at least one) */
  KV_CLIENT_FAULT_CLEAR   /* clear the named peers' faults; every peer's when none is named */
} kv_client_fault_op_t;

typedef struct {
  char peer[KV_NODE_ID_BYTES_MAX + 1];  /* in a listing; ignored in a request */
  int64_t delay_ms, jitter_ms;
  double drop;
  int64_t exp_delay_ms;
  bool both_ways;        /* answers are held back alike (a round trip) */
} kv_client_fault_t;

/* The faults in force on one node, one per peer that has one. Caller-owned, no heap. */
typedef struct {
  size_t n_faults;
  kv_client_fault_t faults[KV_NODES_MAX];
} kv_client_faults_t;

/* Sets, clears or lists the faults of the node c talks to, and fills *out with those in force
 * afterwards. peers: n_peers NUL-terminated node ids, borrowed for the call (ignored by LIST);
 * fault: SET's delay, jitter and drop (NULL otherwise). The node checks everything: values
 * are sent as given. Errors: the server's, e.g. PERMISSION_DENIED when the node was not
 * started with --allow-fault-injection, INVALID_ARGUMENT for an unknown peer or a value out
 * of range (nothing changes then). */
int kv_client_fault(kv_client_t *c, kv_client_fault_op_t op, const char *const *peers,
                    size_t n_peers, const kv_client_fault_t *fault, kv_client_faults_t *out,
                    kv_client_status_t *st);

/* ---------------------------------------------------------------------------------------
 * Async calls, for load generators. One kv_client_async_t owns one completion queue and a
 * fixed table of call slots made at create time; starting a call takes a slot, harvesting
 * its completion gives it back, so a closed loop does no allocation of its own per call
 * (gRPC allocates what it needs; replies are decoded into a per-slot arena). Calls may go
 * to any kv_client_t, so one queue can spread load over many nodes. Replies are decoded
 * and checked but their values are not handed out: a completion says whether a get found
 * the key, how many siblings and how many value bytes it saw, and gives the reply's causal
 * context so a load generator can write back with it. */

typedef enum { KV_CLIENT_OP_PUT, KV_CLIENT_OP_GET, KV_CLIENT_OP_DELETE } kv_client_op_t;

typedef struct kv_client_async kv_client_async_t;

typedef struct {
  void *tag;                 /* what the call was started with (borrowed back to you) */
  kv_client_op_t op;
  kv_client_status_t status;
  uint64_t latency_ns;       /* from start to harvest, monotonic clock */
  bool found;                /* the key has a live version */
  uint32_t n_siblings;       /* siblings returned */
  size_t value_bytes;        /* value bytes over all siblings */
  const uint8_t *context;    /* the reply's context (any op); owned by the async context,
                                valid until the next kv_client_async_* call on it; never NULL */
  size_t context_bytes;      /* 0 when the call failed or the server sent none */
} kv_client_completion_t;

/* Creates an async context with room for `max_inflight` calls (1..KV_CLIENT_ASYNC_MAX).
 * *out is owned by the caller until kv_client_async_destroy. Errors: KV_EINVAL, KV_ENOMEM. */
int kv_client_async_create(uint32_t max_inflight, kv_client_async_t **out,
                           kv_client_status_t *st);
/* Cancels calls still in flight, waits for their completions (discarding them) and frees a.
 * a may be NULL. */
void kv_client_async_destroy(kv_client_async_t *a);
/* Calls started and not yet harvested. */
uint32_t kv_client_async_inflight(const kv_client_async_t *a);

/* Start a call on c. Every buffer and string is borrowed for the duration of the start call
 * only (the request is encoded before it returns). `tag` is handed back untouched in the
 * completion. On failure nothing is in flight and no completion will come for tag.
 * Errors: KV_EBUSY when max_inflight calls are in flight; KV_ENOMEM; KV_EINTERNAL when gRPC
 * refuses to start the call. Server errors arrive in the completion, never here. */
int kv_client_async_start_put(kv_client_async_t *a, kv_client_t *c, const char *keyspace,
                              const void *key, size_t key_bytes, const void *value,
                              size_t value_bytes, const void *context, size_t context_bytes,
                              const kv_client_opts_t *opts, void *tag, kv_client_status_t *st);
int kv_client_async_start_get(kv_client_async_t *a, kv_client_t *c, const char *keyspace,
                              const void *key, size_t key_bytes, const kv_client_opts_t *opts,
                              void *tag, kv_client_status_t *st);
int kv_client_async_start_delete(kv_client_async_t *a, kv_client_t *c, const char *keyspace,
                                 const void *key, size_t key_bytes, const void *context,
                                 size_t context_bytes, const kv_client_opts_t *opts, void *tag,
                                 kv_client_status_t *st);

/* Waits up to timeout_ms (0 = just poll, negative = until one arrives or nothing is in
 * flight) for one call to finish, and fills *out. Returns 1 when *out was filled, 0 when
 * the time ran out or nothing is in flight. */
int kv_client_async_next(kv_client_async_t *a, int timeout_ms, kv_client_completion_t *out);

#endif
