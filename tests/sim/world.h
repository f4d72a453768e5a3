/* world.h: one simulated cluster, driven from one thread by a virtual clock.
 *
 * The world holds K node cores (the real kv_node + kv_coord, on memstore and simsyncer),
 * a seeded network between them, and an event queue ordered by (time, sequence). Nothing
 * happens except by an event: a message delivered, a tick, a heartbeat, an fsync, a client
 * starting its next operation, a fault. The trace hash folds in every event as it runs, so
 * two runs of one seed can be compared by one number.
 *
 * The network models what a peer channel can do to a message: delay (a base plus an
 * exponential tail, so messages reorder), loss, duplication, one-way and two-way cuts
 * (partitions) and clogging (one node's links slowed one after another). A reply is only
 * delivered to the process life that sent the request, as a gRPC call dies with its
 * process. Messages between cores travel as the runtime's do: in batches (one in flight per
 * link, the core's links decide when, coordinator/link.h), each answered by one reply once
 * all its answers are ready, or failed at its deadline (silence) or at once when the peer's
 * process is gone (refused). So the real failure detector (phi accrual, fed by the core's
 * own heartbeats) and the real batching run here.
 *
 * Files: world.c (events, nodes, network, the replica side of peer messages), workload.c
 * (clients and their history), check.c (the checkers), kvsim.c (runs, faults, the CLI). */
#ifndef KV_SIM_WORLD_H
#define KV_SIM_WORLD_H

#include <stdbool.h>
#include <stdint.h>
#include <xxhash.h>

#include "config.h"
#include "coord.h"
#include "dvv.h"
#include "ring.h"
#include "sim.h"

#define SIM_NODES_MAX 7u
#define SIM_CLIENTS_MAX 8u
#define SIM_KEYS_MAX 16u
#define SIM_KEYSPACE "sim"
#define SIM_N 3u                     /* replicas per key */
#define SIM_TICK_US 5000u            /* kv_coord_tick, as peer_rpc.c's thread does */

typedef enum {
  EV_DELIVER,    /* ptr: msg_t */
  EV_TICK,       /* node; a: life */
  EV_BATCH_DEADLINE, /* node; a: life; b: peer << 56 | batch id */
  EV_SYNC,       /* node; a: life */
  EV_CLIENT,     /* node: client index: start its next operation */
  EV_CLIENT_TIMEOUT, /* node: client index; a: call id */
  EV_NEMESIS,    /* the next fault */
  EV_RESTART,    /* node */
  EV_CLOG,       /* node: the clogged node; a: peer; b: extra delay us (0: unclog) */
  EV_MEMBERSHIP, /* the run's membership change (kvsim.c) */
} ev_type_t;

typedef enum {
  MSG_BATCH,     /* a batch of messages (sub[]; none: a heartbeat); id: the batch's */
  MSG_BATCH_REPLY, /* its answers (sub[], in order), or code: refused; id: the batch's */
  MSG_WRITE,     /* in a batch: ReplicaWrite: merge rec */
  MSG_READ,      /* in a batch: ReplicaRead */
  MSG_ANSWER,    /* in a reply: id, code, rec */
  MSG_FORWARD,   /* a client write to coordinate: call id */
  MSG_FORWARD_REPLY, /* its answer: call id, code, result */
  MSG_TREE,      /* in a batch: an anti-entropy tree request: tree_kind, parts, segs */
  MSG_TREE_ANSWER, /* in a reply: its answer: id, code, tree */
  MSG_REAP,      /* in a batch: ReplicaReap: key, rec, hints_only */
  MSG_RING,      /* in a batch: a node's ring (rec) */
} msg_type_t;

/* What a client is told: the status and, on success, the key's state as answered. */
typedef struct {
  kv_err code;
  bool found;
  kv_dvv_t object;               /* live siblings; initialized only when code is KV_OK */
  uint8_t *context;              /* malloc'd encoded context */
  size_t context_bytes;
} sim_result_t;

typedef struct msg {
  msg_type_t type;
  uint32_t from, to;
  uint32_t from_life;            /* the sender's life (set by world_send) */
  uint32_t to_life;              /* replies: the life that asked; 0 = any */
  uint64_t id;                   /* coordinator message id, or a call id */
  uint32_t hint_for;             /* write, read: a fallback's, for this primary (node index);
                                    UINT32_MAX: a replica's own */
  uint32_t key;                  /* key index */
  uint8_t *rec;                  /* malloc'd record (write, answer) */
  size_t rec_bytes;
  bool durable;
  kv_err code;
  uint64_t applied_ms;           /* ANSWER to a WRITE: the replica's wall clock at merging */
  sim_result_t result;           /* FORWARD_REPLY */
  kv_aae_kind_t tree_kind;       /* TREE */
  uint32_t *parts, *segs;        /* TREE: malloc'd */
  uint32_t part_count, seg_count;
  kv_aae_answer_t tree;          /* TREE_ANSWER: owned */
  kv_relay_target_t *relay;      /* WRITE to a forwarder: malloc'd, the replicas to relay to */
  uint32_t relay_count;
  uint32_t relay_wait_ms;
  kv_relay_outcome_t *relayed;   /* its ANSWER: malloc'd, their outcomes */
  uint32_t relayed_count;
  bool hints_only;               /* REAP */
  uint64_t epoch;                /* WRITE, READ: the coordinator's ring epoch (0: unchecked) */
  struct msg **sub;              /* BATCH, BATCH_REPLY: owned */
  uint32_t sub_count;
} msg_t;

/* A batch being answered, waiting for its fsync and its relays (world.c). */
typedef struct rbatch rbatch_t;

typedef struct {
  bool up;
  uint32_t life;                 /* 1 for the first process, +1 per restart */
  sim_store_t *store;
  kv_storage_t storage;         /* store through its table, as the node sees it */
  kv_node_t *node;
  kv_coord_t *coord;
  kv_syncer_t syncer;
  uint64_t batch_seq[SIM_NODES_MAX][KV_PEER_WINDOW]; /* the batch in flight to each peer in
                                                        each slot of its link; 0: none */
  int64_t skew_ms;               /* this node's wall clock minus the true time */
  kv_coord_transport_t tr;
  rbatch_t *rbatches;            /* batches being answered here (freed by a crash) */
  uint64_t *crashes_us;          /* every crash, in order (malloc'd) */
  uint32_t crash_count;
} sim_node_t;

typedef struct {
  uint64_t at_us, seq;
  ev_type_t type;
  uint32_t node;
  uint64_t a, b;
  msg_t *msg;
} event_t;

typedef struct world world_t;

typedef enum { CHANGE_NONE, CHANGE_JOIN, CHANGE_LEAVE, CHANGE_REPLACE } sim_change_t;

/* Network and fault parameters of a run (drawn from the seed). */
typedef struct {
  uint64_t delay_us;             /* base one-way delay */
  uint64_t tail_us;              /* mean of the exponential tail added to it */
  double drop, dup;              /* per message */
  uint64_t sync_us;              /* fsync time */
  double slow_sync;              /* chance an fsync is slow (tens to hundreds of ms) */
  double power_loss;             /* of crashes */
} net_params_t;

struct world {
  uint64_t seed;
  uint64_t now_us;
  uint64_t seq;
  XXH64_state_t *trace;
  kv_config_t cfg;
  kv_ring_t ring;                /* the first ring (the nodes' own are in their cores) */
  uint32_t node_count;
  sim_node_t nodes[SIM_NODES_MAX];
  bool cut[SIM_NODES_MAX][SIM_NODES_MAX];        /* messages from i to j are lost */
  uint64_t clog_us[SIM_NODES_MAX][SIM_NODES_MAX]; /* extra delay from i to j */
  uint32_t link_in_flight[SIM_NODES_MAX][SIM_NODES_MAX];
  uint32_t link_in_flight_max;
  uint64_t batch_seq;            /* the last batch id handed out */
  uint64_t settled_downs[SIM_NODES_MAX][SIM_NODES_MAX]; /* check_accurate's snapshot */
  net_params_t net;
  kv_coord_opts_t coord_opts;
  bool faults_on;                /* nemesis active, losses on */
  uint32_t aae_interval_ms;      /* the config's anti_entropy_interval_ms; 0: off */
  uint32_t grace_ms;             /* the config's tombstone_grace_ms */
  uint64_t reaped_us[SIM_KEYS_MAX]; /* when a node last reaped the key; 0: never */
  uint64_t hints_dropped;         /* by processes that have ended (a node's count restarts) */
  uint64_t fallback_writes, fallback_reads; /* a fallback's messages answered ok */
  bool regions;                  /* two regions, a (n1, n4, n7) and b, replication {a: 1, b: 2} */
  /* A membership change (issue 19) in the run: one join, leave or replace (kvsim.c), the
   * first members (the last node is a spare unless it is a leave), when the change was made
   * (0: not yet) and the members it went to. */
  sim_change_t change;
  uint64_t members0;
  uint64_t change_us;
  uint64_t change_members;
  uint64_t relays;               /* writes forwarded to a region and relayed there */
  uint64_t power_losses;         /* count, and when the last one happened */
  uint64_t last_power_loss_us;
  uint64_t events;
  event_t *heap;
  size_t heap_count, heap_cap;
  struct workload *wl;
  char failure[512];             /* first checker failure; "" while none */
  const char *handler;           /* the keyspace's conflict handler, chosen per seed */
  bool lossy;                    /* lww or region-priority: losses must be journaled */
  kv_dot_t *discarded;           /* every (key, dot) any node's journal recorded discarded, */
  uint32_t *discarded_key;       /* kept here past crashes (the journal lives in memory) */
  uint64_t *discarded_hash;      /* and the hash of each one's value */
  uint32_t discarded_count, discarded_cap;
};

/* Sets up K nodes (all up) from w->seed, with membership change `change` (the first members
 * follow from it); the config is built in memory. */
void world_init(world_t *w, uint32_t node_count, sim_change_t change);
void world_deinit(world_t *w);
/* Runs events until the queue is empty or the time passes until_us. */
void world_run_until(world_t *w, uint64_t until_us);

void world_schedule(world_t *w, uint64_t at_us, ev_type_t type, uint32_t node, uint64_t a,
                    uint64_t b, msg_t *msg);
/* Sends a message over the network (it may be lost, duplicated, delayed, cut). False when the
 * link's queue is full (KV_PEER_QUEUE_MAX). Takes msg. */
bool world_send(world_t *w, msg_t *msg);
msg_t *msg_new(msg_type_t type, uint32_t from, uint32_t to);
void msg_free(msg_t *m);

void world_crash(world_t *w, uint32_t node, bool power_loss);
/* Whether node crashed at a time in [from_us, to_us]. */
bool world_crashed_between(const world_t *w, uint32_t node, uint64_t from_us, uint64_t to_us);
void world_restart(world_t *w, uint32_t node);
/* Heals every cut and clog. */
void world_heal(world_t *w);

/* The ring of node (up), as its core holds it. */
const kv_ring_t *world_ring(const world_t *w, uint32_t node);
/* Whether every node is up and holds the same STABLE ring. */
bool world_ring_settled(const world_t *w);

/* Whether node believes peer alive (the coordinator's transport answers this; a node always
 * believes itself alive). */
bool world_believes_alive(const world_t *w, uint32_t node, uint32_t peer);
/* Whether some node's conflict journal recorded key's version dot, or a version with this
 * value (a resolution carries a kept value under a new dot), as discarded. */
bool world_discarded(const world_t *w, uint32_t key, const kv_dot_t *dot, const char *value);

/* The node's wall clock, for write timestamps. */
uint64_t world_wall_ms(const world_t *w, uint32_t node);
/* Folds a number into the trace hash. */
void world_trace(world_t *w, uint64_t v);
/* Records the first failure of the run (printf-style); later ones are dropped. */
void world_fail(world_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The key of index i ("k<i>"), its bytes in *bytes. */
const uint8_t *sim_key(uint32_t i, size_t *bytes);
uint32_t sim_key_index(const uint8_t *key, size_t key_bytes);

/* The world being run (the core's callbacks carry no world pointer of their own). */
extern world_t *sim_world;

/* ---- workload.c: the coordinator's reply callback and forwarded requests ---- */
void workload_reply(void *call, const kv_status_t *st, const kv_node_result_t *res);
/* A request forwarded by from (its call call_id there) arrives at node: coordinate it there. */
void workload_forwarded(world_t *w, uint32_t from, uint32_t node, uint64_t call_id);
/* A forwarded request's answer arrives back at the node that forwarded it (a client's call,
 * or a relay that node had forwarded again). */
void workload_forward_reply(world_t *w, uint64_t call_id, sim_result_t *res);
/* A client's event (next operation, or a timeout). */
void workload_event(world_t *w, const event_t *ev);

void sim_result_free(sim_result_t *r);

#endif
