/* fixture_cluster.h: a few real cores on the memory store (tests/sim/memstore.h), whose
 * messages the test carries by hand, for the unit tests of the core's modules (check_hints,
 * check_exchange, check_reaper).
 *
 * Every node has its own memory disk ("n1", "n2", ...), kv_node, group-commit queue and, unless
 * the fixture is bare, a kv_coord. Their transports put every message (msg.h) in one FIFO
 * queue; nothing moves until the test says so: fx_step delivers the oldest message to its
 * node's kv_coord_on_peer_request and hands the answer to the sender's
 * kv_coord_on_peer_reply (a message to a node that is down is answered KV_EUNAVAILABLE, as a
 * failed peer call is; a durable answer waits for a group-commit round on the replica, run
 * at once); fx_run does that, and the rounds the cores asked for (their SYNC effects), until
 * nothing is left. Liveness is one view shared by every node (fx_cluster_t.down). No
 * threads, no clock: every time is the test's.
 *
 * The transport is all in fixture_cluster.c, so a change of kv_coord_transport_t is one
 * place to follow. It judges liveness itself (its alive), so the links' batches, which
 * never start here, and their failure detector stay out of these tests (check_link has
 * them). One cluster per test at a time (the reply callback has no argument). */
#ifndef KV_FIXTURE_CLUSTER_H
#define KV_FIXTURE_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coord.h"
#include "memstore.h"
#include "node.h"
#include "ring.h"
#include "sync.h"

#define FX_NODES_MAX 5u
#define FX_MSGS_MAX 1024u   /* messages queued at once */
#define FX_REPLIES_MAX 64u
#define FX_WALL_MS UINT64_C(1700000000000) /* every node's wall clock at mono time 0 */
#define FX_KEYSPACE "default"

/* One message in the queue; its pointers are the fixture's copies (malloc'd). */
typedef struct {
  uint32_t from, to;
  uint32_t from_life;         /* the sender's process: an answer to an earlier one is lost */
  kv_msg_t m;
} fx_msg_t;

/* A client call's answer. */
typedef struct {
  void *call;
  kv_err code;
  bool found;
  uint32_t sib_count;
  uint8_t *context;           /* malloc'd copy */
  size_t context_bytes;
} fx_reply_t;

typedef struct {
  struct fx_cluster *cluster;
  uint32_t index;
  bool up;
  uint32_t life;              /* 1 for the first process, +1 per restart */
  sim_store_t *store;
  kv_storage_t storage;
  kv_node_t *node;
  kv_coord_t *coord;          /* NULL in a bare fixture */
  kv_syncer_t syncer;
  bool sync_wanted;           /* the core's SYNC effect, not yet answered */
  kv_msg_out_t out;           /* what a bare node's modules send through */
  kv_coord_transport_t tr;    /* a coordinator's: messages leave one by one, as fx_step says */
  uint32_t removed;           /* records the memory store removed (its removal hook) */
} fx_node_t;

typedef struct fx_cluster {
  kv_config_t cfg;            /* filled by fx_config; the test may change it before fx_start */
  kv_ring_t ring;
  uint64_t members;           /* the first ring's members (bit i: node i); 0: every node */
  bool bare;                  /* nodes without a kv_coord */
  kv_coord_opts_t opts;
  fx_node_t nodes[FX_NODES_MAX];
  bool down[FX_NODES_MAX];    /* believed down by every node (and so it is) */
  bool full[FX_NODES_MAX];    /* sends to the node are refused, as by a full peer queue */
  fx_msg_t queue[FX_MSGS_MAX]; /* a ring: head, count */
  uint32_t head, count;
  uint32_t sent[KV_MSG_RING + 1]; /* messages sent, by kv_msg_kind_t */
  uint32_t trees[3];          /* TREE messages sent, by kv_aae_kind_t */
  fx_reply_t replies[FX_REPLIES_MAX];
  uint32_t reply_count;
} fx_cluster_t;

/* A cluster of `nodes` nodes n1.. in one region, with one keyspace, FX_KEYSPACE: N=3 at
 * QUORUM, siblings. Anti-entropy off and a grace of 0 unless the test sets them. */
void fx_config(fx_cluster_t *c, uint32_t nodes);
/* Opens every node of c->cfg (bare: without coordinators). opts NULL: the defaults. */
void fx_start(fx_cluster_t *c, bool bare, const kv_coord_opts_t *opts);
/* Crashes every node that is up and frees every disk and message. */
void fx_stop(fx_cluster_t *c);
/* Ends node i's process (a power loss also drops its unsynced writes); its group-commit
 * waiters die with it. */
void fx_crash(fx_cluster_t *c, uint32_t i, bool power_loss);
/* Starts node i's next process on its disk. */
void fx_open(fx_cluster_t *c, uint32_t i);

/* Delivers the oldest message and its answer; false when the queue is empty. */
bool fx_step(fx_cluster_t *c, uint64_t now_us);
/* Delivers messages and runs the group-commit rounds asked for until neither is left;
 * returns how many messages were delivered. */
uint32_t fx_run(fx_cluster_t *c, uint64_t now_us);
/* Runs one group-commit round on node i, as kvnode/driver.c does. */
void fx_sync(fx_cluster_t *c, uint32_t i, uint64_t now_us);
/* Takes the oldest message out of the queue without delivering it (NULL when empty); the
 * caller frees it with fx_msg_free. */
fx_msg_t *fx_take(fx_cluster_t *c);
void fx_msg_free(fx_msg_t *m);
/* Delivers a message taken with fx_take, as fx_step would, and frees it. */
void fx_deliver(fx_cluster_t *c, fx_msg_t *m, uint64_t now_us);
/* Drops every queued message to node `to` unanswered (lost); returns how many. */
uint32_t fx_drop_to(fx_cluster_t *c, uint32_t to);

/* A client request at node i's coordinator (level "" is the keyspace's); its answer is
 * recorded in c->replies. ctx may be NULL. */
void fx_client(fx_cluster_t *c, uint32_t i, void *call, kv_op_t op, const char *key,
               const char *value, const uint8_t *ctx, size_t ctx_bytes, uint64_t now_us);
/* The latest reply, which must answer call. */
const fx_reply_t *fx_reply(fx_cluster_t *c, void *call);

/* A put on node i's replica alone (a version only it holds), not coordinated; *rec (may be
 * NULL) gets the record it stored (malloc'd). */
void fx_local_put(fx_cluster_t *c, uint32_t i, const char *key, const char *value,
                  uint8_t **rec, size_t *rec_bytes);
/* Node i's record of key (malloc'd; NULL, 0 when none). */
uint8_t *fx_record(fx_cluster_t *c, uint32_t i, const char *key, size_t *rec_bytes);
/* Whether nodes a and b hold the same bytes for key (both none counts). */
bool fx_same_record(fx_cluster_t *c, uint32_t a, uint32_t b, const char *key);
/* The number of siblings (live and tombstones) in node i's record of key; 0 when none. */
uint32_t fx_siblings(fx_cluster_t *c, uint32_t i, const char *key, uint32_t *live);
/* Whether nodes a and b have the same anti-entropy root for every partition of FX_KEYSPACE. */
bool fx_roots_equal(fx_cluster_t *c, uint32_t a, uint32_t b);

#endif
