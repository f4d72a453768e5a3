/* server_rpc.h: the gRPC edge of kvnode: an async server on completion queues for the client
 * API (tunekv.KV), node-to-node batches (tunekv.peer.Peer) and administration
 * (tunekv.peer.Admin). Client calls go to the coordinator; peer batches to the replica. */
#ifndef KV_SERVER_RPC_H
#define KV_SERVER_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "coord.h"
#include "kv_err.h"
#include "node.h"
#include "peer_rpc.h"
#include "driver.h"
#include "tls_rpc.h"

typedef struct {
  const char *address;        /* HOST:PORT to listen on; borrowed for the call */
  uint32_t threads;           /* worker threads, one completion queue each */
  size_t max_message_bytes;   /* gRPC send and receive limit */
  bool allow_fault_injection; /* serve tunekv.peer.Admin/Fault; else PERMISSION_DENIED */
  int64_t clock_offset_ms;    /* added to the wall clock this node stamps writes and answers
                                 peers with (fault injection; 0 normally) */
  kv_tls_t *tls;              /* serve TLS with these certificates; NULL: plaintext. Borrowed;
                                 must outlive the server */
} kv_server_opts_t;

/* What the server serves with; all borrowed, all must outlive the server. */
typedef struct {
  const kv_config_t *cfg;
  kv_node_t *node;
  kv_coord_t *coord;
  kv_driver_t *driver;        /* every call into node and coord holds its lock */
  kv_peers_t *peers;
  kv_metrics_t *metrics;      /* client requests are counted here; may be NULL */
  const kv_auth_t *auth;      /* who may make which call (auth.h), asked before each call */
} kv_server_deps_t;

typedef struct kv_server kv_server_t;

/* gRPC's process-wide start and end (grpc_init / grpc_shutdown): before any server or peer
 * channel is made, and after every one is gone. */
void kv_rpc_init(void);
void kv_rpc_shutdown(void);

/* Starts serving. kv_rpc_init() must have been called. KV_EIO with a sentence when the address
 * cannot be bound. */
kv_err kv_server_start(const kv_server_deps_t *deps, const kv_server_opts_t *opts,
                       kv_server_t **out, kv_status_t *st);
/* The coordinator's reply callback (kv_coord_reply_fn) for client calls this server handed
 * it: packs the answer and replies. Runs inside the core's step (the driver's lock held). */
void kv_server_reply(void *call, const kv_status_t *st, const kv_node_result_t *res);
/* Answers a client call with another node's answer, as it came (a forwarded write): the
 * gRPC status code and message, and when the code is OK the reply message's bytes. */
void kv_server_relay(void *call, int grpc_code, const char *message, const uint8_t *reply,
                     size_t reply_bytes);
/* Stops accepting calls, lets in-flight calls finish (cancelling what is still running after
 * grace_ms), joins the workers and frees the server. */
void kv_server_stop(kv_server_t *srv, uint32_t grace_ms);

#endif
