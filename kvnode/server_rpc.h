/* server_rpc.h: the gRPC edge of kvnode: an async server on completion queues that turns
 * tunekv.KV calls into kv_node requests and their results back into replies. */
#ifndef KV_SERVER_RPC_H
#define KV_SERVER_RPC_H

#include <stddef.h>
#include <stdint.h>

#include "kv_err.h"
#include "node.h"

typedef struct {
  const char *address;        /* HOST:PORT to listen on; borrowed for the call */
  uint32_t threads;           /* worker threads, one completion queue each */
  size_t max_message_bytes;   /* gRPC send and receive limit */
} kv_server_opts_t;

typedef struct kv_server kv_server_t;

/* Starts serving. node is borrowed and must outlive the server. grpc_init() must have been
 * called. KV_EIO with a sentence when the address cannot be bound. */
kv_err kv_server_start(kv_node_t *node, const kv_server_opts_t *opts, kv_server_t **out,
                       kv_status_t *st);
/* Stops accepting calls, lets in-flight calls finish (cancelling what is still running after
 * grace_ms), joins the workers and frees the server. */
void kv_server_stop(kv_server_t *srv, uint32_t grace_ms);

#endif
