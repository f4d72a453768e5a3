/* tls_rpc.h: a node's certificates (the config's tls section) and the gRPC credentials made
 * from them.
 *
 * Each "{node}" in a path stands for the node's id, so that every node can run with the same
 * file: cert: certs/{node}.pem.
 *
 * kv_tls_load reads tls.cert, tls.key and tls.ca and checks them the way a peer will: the key
 * matches the certificate, the certificate chains to the CA and has not expired, and its
 * subjectAltName names the node. Every problem is a config error, "CONFIG:LINE: sentence"
 * with the line of the key in the tls section (kvnode exits 2).
 *
 * Reload (SIGHUP): kv_tls_reload reads and checks the three files again. When they are good,
 * the server's certificate fetcher hands them to gRPC at the next handshake, so every new
 * connection sees the new certificate while connections already open go on; when they are
 * not, nothing changes and the sentence says why. gRPC 1.51's channel credentials cannot be
 * swapped under a channel, so the peers' channels are made again from the reloaded files
 * (kv_peers_reload_tls): the calls this node makes from then on present the new certificate. */
#ifndef KV_TLS_RPC_H
#define KV_TLS_RPC_H

#include <grpc/grpc_security.h>

#include "config.h"
#include "kv_err.h"

typedef struct kv_tls kv_tls_t;

/* Loads cfg->tls (cfg borrowed; must outlive *out; cfg->tls.enabled must be set) for the node
 * self_id (NULL: any node; its name is then not checked, as in --check-config without --node).
 * KV_ECONFIG with "CONFIG:LINE: sentence"; KV_ENOMEM. */
kv_err kv_tls_load(const kv_config_t *cfg, const char *self_id, kv_tls_t **out,
                   kv_status_t *st);
/* Frees t (wiping the key); the server and channels made from it must be gone. NULL is fine. */
void kv_tls_destroy(kv_tls_t *t);
/* Reads and checks the files again (see above). On KV_OK new handshakes get them. */
kv_err kv_tls_reload(kv_tls_t *t, kv_status_t *st);
/* "serial 1A2B, valid until Jun  1 12:00:00 2026 GMT": the certificate loaded last, for the
 * log. Valid until the next reload. */
const char *kv_tls_describe(const kv_tls_t *t);

/* Server credentials that ask for a client certificate (and insist on one when
 * tls.client_auth is require), verify it against tls.ca, and fetch the node's certificate from
 * t at each handshake. The caller releases them; t must outlive the server. */
grpc_server_credentials *kv_tls_server_credentials(kv_tls_t *t);
/* Channel credentials for calls to peers: the node's certificate as client certificate, the CA
 * to verify the peer's. The caller releases them. */
grpc_channel_credentials *kv_tls_channel_credentials(kv_tls_t *t);

#endif
