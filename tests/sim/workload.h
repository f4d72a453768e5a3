/* workload.h: the simulated clients, the history they leave, and the checkers over it.
 *
 * Clients run one operation at a time: a put, get or delete of one of a few keys, at a
 * random level (ONE, TWO, QUORUM, ALL, the keyspace default, or an explicit r/w, sometimes
 * with pr/pw), sometimes durable, gets with a random read repair mode, through a random
 * node. A put either writes back the
 * context the client last saw for that key (read-modify-write) or writes blind; so does a
 * delete (three in ten blind: the coordinator reads, then deletes what it read). Every
 * operation is kept in the history with what was sent, when, and how it ended; an
 * operation whose node never answered (it crashed, or the answer was lost) ends UNKNOWN
 * at its timeout, as a real client would see it.
 *
 * Checkers (check.c), each failing the run with a sentence naming keys, values and times:
 *   read_sees_acked   a read with r + w > N that started after a put was acknowledged sees
 *                     it (the read's context covers the put's dot); when either was sloppy
 *                     (a fallback may have counted), only if pr + pw > N: a sloppy quorum
 *                     promises no overlap of R and W, as in Dynamo;
 *   monotonic_reads   a read with blocking read repair that answered, followed by a read with
 *                     r + r' > N, is not gone back on: the second's context covers the
 *                     first's (repairs are not durable, so a power loss exempts the pair;
 *                     sloppy pairs as above);
 *   durable_acked     when a durable put is acknowledged at w, at least w nodes hold it (its
 *                     dot) in what they have synced, in their replica or in a hint (a
 *                     fallback's counts toward w): a power loss cannot take it back;
 *   dots_unique       a dot of a key never names two different values, on any node or in
 *                     any answer;
 *   records_valid     every stored record decodes and passes kv_dvv_check, and the
 *                     replicas' states of a key merge commutatively, idempotently and
 *                     associatively;
 *   no_lost_write     after faults stop and the cluster settles, an ALL read of each key
 *                     holds every acknowledged put, unless a write whose context covered it
 *                     (what its client had read) replaced it, or a delete without a context
 *                     may have read it: the put began before the delete ended (any time, when
 *                     how it ended is unknown) and, if the delete answered, its answer's
 *                     context covers the put and does not show it live (a version written
 *                     concurrently survives); no value an acknowledged delete covered is
 *                     back, and none an acknowledged delete without a context must have read
 *                     (a put acknowledged before it began, with r + w > N as above);
 *   replicas_converge once settled and every hint handed over, every replica of a key holds
 *                     every acknowledged put (its dot). Without anti-entropy, unless a hint
 *                     was dropped for lack of room, a power loss happened, or the put's
 *                     coordinator crashed before its replicas could ack or be hinted. With it
 *                     (three seeds in four), after two more exchange intervals the replicas
 *                     of every key hold byte-identical records, and only a power loss
 *                     exempts a put;
 *   bounded           once settled, no coordinator holds a request or a hint, and no fsync
 *                     waits;
 *   accurate          once settled (every node up, the network healed, past SETTLE_US), no
 *                     node's failure detector judges a peer down, and at the end every node
 *                     believes every peer up: phi and the links run here as in kvnode, and a
 *                     detector that accuses live peers, or a link that stalls, shows.
 *   ring_settled      a run with a membership change (kvsim.c) ends, once the faults stop,
 *                     with every node holding the same STABLE ring whose members are the
 *                     change's; the settled checkers above read its primaries. Every other
 *                     checker holds through the change (its handoff, flip and settling) as
 *                     at any other time.
 * A write not made durable may be lost by a power loss (memstore keeps only synced writes,
 * as the OS keeps only fsynced ones); such writes are exempt once a power loss followed
 * them. Tombstone reaping (grace 0-3 s in four seeds of five) forgets a deleted key's
 * context: once a node has reaped the key, read_sees_acked, monotonic_reads and
 * durable_acked no longer hold the earlier operations against it, and replicas_converge
 * excuses a put a delete replaced (or a handler discarded); no_lost_write and dots_unique
 * still hold the whole run, so a reaped key never brings back a value a delete removed and
 * never reuses a dot. */
#ifndef KV_SIM_WORKLOAD_H
#define KV_SIM_WORKLOAD_H

#include "world.h"

typedef enum { OUT_PENDING, OUT_OK, OUT_FAIL, OUT_UNKNOWN } outcome_t;

typedef struct {
  kv_op_t op;
  uint32_t client, key, node;    /* node: where it was sent */
  uint32_t coordinator;          /* where it was coordinated (node, or where node forwarded it) */
  char value[24];                /* put: unique in the run ("c<client>.<n>") */
  uint8_t *ctx_bytes;            /* writes: the context sent (malloc'd; NULL: blind) */
  size_t ctx_len;
  kv_cc_t *ctx;                  /* decoded ctx_bytes; NULL when blind */
  char level[16];                /* "" = keyspace default */
  uint32_t count;                /* explicit r / w; 0 = level */
  uint32_t primaries;
  uint32_t needed;               /* replies the level needs (r or w as a number) */
  bool sloppy;                   /* where it was coordinated (or forwarded from), a primary of
                                    the key was believed dead: fallbacks may have counted */
  bool durable;
  const char *read_repair;       /* gets: "", "blocking" or "async" */
  bool repair_blocking;          /* gets: what that resolves to */
  uint64_t start_us, end_us;
  outcome_t outcome;
  kv_err code;
  bool has_dot;                  /* ok put: its version's dot */
  kv_dot_t dot;
  kv_cc_t *seen;                 /* ok: the answer's context (malloc'd) */
  kv_dot_t *live;                /* ok delete without a context: the dots its answer shows
                                    live (malloc'd), which its tombstone did not cover */
  uint32_t live_count;
  uint32_t siblings;             /* ok: live siblings in the answer */
  bool final;                    /* one of the settled ALL reads */
} op_t;

typedef enum { CALL_CLIENT, CALL_RELAY } call_kind_t;

typedef struct {
  call_kind_t kind;
  uint32_t op;                   /* index in the history (of the request a relay carries) */
  uint32_t at;                   /* relays: the node coordinating */
  uint32_t origin, origin_life;  /* relays: the node that forwarded, and its life */
  uint64_t origin_call;          /* relays: the call it forwarded */
  bool done;
} call_t;

typedef struct {
  uint32_t ops_left;
  uint8_t *ctx[SIM_KEYS_MAX];    /* the last context answered per key (malloc'd) */
  size_t ctx_len[SIM_KEYS_MAX];
} client_t;

/* A dot of a key seen anywhere, and the hash of the value it named (0: a tombstone). */
typedef struct {
  uint32_t key;
  kv_dot_t dot;
  uint64_t value_hash;
} dot_seen_t;

struct workload {
  uint32_t client_count, key_count;
  client_t clients[SIM_CLIENTS_MAX];
  op_t *ops;
  uint32_t op_count, op_cap;
  call_t *calls;                 /* call id i + 1 is calls[i] */
  uint32_t call_count, call_cap;
  dot_seen_t *dots;              /* sorted by dot */
  uint32_t dot_count, dot_cap;
  uint32_t clients_done;
  kv_dvv_t final[SIM_KEYS_MAX];  /* the settled ALL reads (live siblings) */
  bool final_read[SIM_KEYS_MAX];
  uint32_t max_in_flight;        /* over every coordinator, sampled at each client op (shown
                                    in the summary; the table refuses past its bound) */
};

/* Sets up clients (count and keys from the run's generator) sharing `ops` operations, and
 * schedules their first operations. */
void workload_init(world_t *w, uint32_t ops);
void workload_deinit(world_t *w);
bool workload_finished(const world_t *w);
/* Reads every key at ALL through live node `node`, running the world until each answered
 * (retrying failed reads); the answers go to wl->final. False when a key never answered. */
bool workload_final_reads(world_t *w, uint32_t node);

/* check.c */
void check_read(world_t *w, const op_t *read);
void check_durable(world_t *w, const op_t *put);
void check_dot(world_t *w, uint32_t key, const kv_dot_t *dot, const uint8_t *value,
               uint32_t value_bytes, bool tombstone);
void check_answer_dots(world_t *w, uint32_t key, const kv_dvv_t *object);
void check_records(world_t *w);
void check_final(world_t *w);
void check_converged(world_t *w);
/* Hints the live nodes still keep, over all targets. */
uint64_t check_hints_pending(world_t *w);
void check_bounded(world_t *w);
/* accurate: once the cluster has settled, no node judges a peer down (start snapshots each
 * node's count of verdicts; the check compares, and wants every peer believed up). */
void check_accurate_start(world_t *w);
void check_accurate(world_t *w);

#endif
