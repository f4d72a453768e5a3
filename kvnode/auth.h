/* auth.h: who may make which call (config tls: and tokens:, README "TLS and tokens").
 *
 * The gRPC edge (server_rpc.c) describes each call's caller in a kv_auth_caller_t (what its
 * verified client certificate names, the bearer token it sent) and asks here before the call
 * changes or reads anything; a refusal comes back as a status with a sentence, and the call
 * is answered with it and nothing else. The rules:
 *
 *   Peer.Batch  with tls: the client certificate must name (in its subjectAltName) the node
 *               the batch says it comes from, and that node must be in the config; else
 *               PERMISSION_DENIED. Without tls every batch is taken, as before.
 *   Admin.*     with tls: a client certificate is needed (under client_auth: optional a
 *               client may connect without one); else PERMISSION_DENIED. With tokens: a node's
 *               certificate, or a token with admin: true.
 *   KV.*        with tokens: a node's certificate (a node forwards writes it coordinates), or
 *               a token with the read (Get) or write (Put, Delete) role for the keyspace.
 *   Tokens      none sent, or one the config does not hold: UNAUTHENTICATED; one lacking the
 *               role: PERMISSION_DENIED. A keyspace the config does not define is let through
 *               to a known token, so that the coordinator answers NOT_FOUND as it always does.
 *
 * Secrets are kept only as SHA-256 digests; a presented token is hashed and compared with
 * every digest in constant time (CRYPTO_memcmp, no early exit), so neither the time taken nor
 * a log line tells anything about a secret. No sentence here quotes a token. */
#ifndef KV_AUTH_H
#define KV_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "kv_err.h"

/* Names a client certificate carries that are looked at (the rest are ignored). */
#define KV_AUTH_CERT_NAMES_MAX 16

typedef enum { KV_AUTH_READ, KV_AUTH_WRITE, KV_AUTH_ADMIN } kv_auth_role_t;

/* One call's caller, as the transport saw it. Every pointer is borrowed for one check. */
typedef struct {
  bool has_cert;                                /* a verified client certificate came */
  const char *cert_names[KV_AUTH_CERT_NAMES_MAX]; /* its subjectAltNames (or its CN) */
  size_t cert_name_count;
  const char *authorization;                    /* the "authorization" header, NUL-free bytes */
  size_t authorization_bytes;                   /* 0 when none was sent */
} kv_auth_caller_t;

typedef struct kv_auth kv_auth_t;

/* Builds the rules of cfg (borrowed; must outlive the result): hashes every token's secret.
 * KV_ENOMEM only. */
kv_err kv_auth_create(const kv_config_t *cfg, kv_auth_t **out, kv_status_t *st);
/* Wipes the digests and frees. a may be NULL. */
void kv_auth_destroy(kv_auth_t *a);

/* A Peer.Batch from the node named `from` (the batch's own field). KV_OK or KV_EPERM. */
kv_err kv_auth_check_peer(const kv_auth_t *a, const kv_auth_caller_t *who, const char *from,
                          kv_status_t *st);
/* An Admin call. KV_OK, KV_EPERM or KV_EUNAUTH. */
kv_err kv_auth_check_admin(const kv_auth_t *a, const kv_auth_caller_t *who, kv_status_t *st);
/* A KV call with role KV_AUTH_READ (Get) or KV_AUTH_WRITE (Put, Delete) on keyspace (NUL-
 * terminated). KV_OK, KV_EPERM or KV_EUNAUTH. */
kv_err kv_auth_check_data(const kv_auth_t *a, const kv_auth_caller_t *who, kv_auth_role_t role,
                          const char *keyspace, kv_status_t *st);

#endif
