/* auth.c: the call rules of auth.h: certificates' node names, bearer tokens and their roles.
 *
 * Token lookup hashes the presented token once (SHA-256) and compares the digest with every
 * configured token's, all of them, with CRYPTO_memcmp: the time taken depends on the number
 * of tokens only, never on how much of a secret a guess got right. Hashing first also makes
 * every comparison the same length, whatever the length of the guess. */
#include "auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

#define AUTH_BEARER "Bearer "

struct kv_auth {
  const kv_config_t *cfg;
  uint8_t digests[KV_TOKENS_MAX][SHA256_DIGEST_LENGTH]; /* tokens[i]'s secret, hashed */
};

kv_err kv_auth_create(const kv_config_t *cfg, kv_auth_t **out, kv_status_t *st) {
  KV_ASSERT(cfg && out);
  kv_auth_t *a = calloc(1, sizeof *a);
  if (!a) return kv_status_set(st, KV_ENOMEM, "out of memory loading the tokens");
  a->cfg = cfg;
  for (uint32_t i = 0; i < cfg->token_count; i++)
    SHA256(cfg->tokens[i].secret, cfg->tokens[i].secret_bytes, a->digests[i]);
  *out = a;
  return KV_OK;
}

void kv_auth_destroy(kv_auth_t *a) {
  if (!a) return;
  OPENSSL_cleanse(a->digests, sizeof a->digests);
  free(a);
}

static bool auth_is_node(const kv_auth_t *a, const char *name) {
  return kv_config_node_index(a->cfg, name) >= 0;
}

/* The first name of the certificate that is a node of the config, or NULL. */
static const char *auth_cert_node(const kv_auth_t *a, const kv_auth_caller_t *who) {
  if (!who->has_cert) return NULL;
  for (size_t i = 0; i < who->cert_name_count; i++)
    if (auth_is_node(a, who->cert_names[i])) return who->cert_names[i];
  return NULL;
}

kv_err kv_auth_check_peer(const kv_auth_t *a, const kv_auth_caller_t *who, const char *from,
                          kv_status_t *st) {
  if (!a->cfg->tls.enabled) return KV_OK;
  const char *cluster = a->cfg->cluster_name;
  if (!who->has_cert)
    return kv_status_set(st, KV_EPERM, "peer calls need a client certificate naming a node of "
                         "cluster '%s'; none was presented", cluster);
  for (size_t i = 0; i < who->cert_name_count; i++)
    if (strcmp(who->cert_names[i], from) == 0 && auth_is_node(a, from)) return KV_OK;
  const char *node = auth_cert_node(a, who);
  if (node)
    return kv_status_set(st, KV_EPERM, "the batch says it comes from '%.*s', but its client "
                         "certificate names node '%s'", KV_NODE_ID_BYTES_MAX, from, node);
  return kv_status_set(st, KV_EPERM, "peer calls need a client certificate naming a node of "
                       "cluster '%s'; this one names '%.64s'", cluster,
                       who->cert_name_count ? who->cert_names[0] : "");
}

/* The index of the configured token the caller sent, or -1 with the reason in st. */
static int auth_token(const kv_auth_t *a, const kv_auth_caller_t *who, kv_status_t *st) {
  size_t prefix = strlen(AUTH_BEARER);
  if (who->authorization_bytes == 0) {
    kv_status_set(st, KV_EUNAUTH, "this cluster asks for a bearer token (kvctl --token or "
                  "TUNEKV_TOKEN); none was sent");
    return -1;
  }
  if (who->authorization_bytes <= prefix ||
      strncasecmp(who->authorization, AUTH_BEARER, prefix) != 0) {
    kv_status_set(st, KV_EUNAUTH, "the authorization header must be 'Bearer TOKEN'");
    return -1;
  }
  uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256((const uint8_t *)who->authorization + prefix, who->authorization_bytes - prefix, digest);
  int found = -1;
  for (uint32_t i = 0; i < a->cfg->token_count; i++) {
    /* No early exit: every digest is compared, whichever matches. */
    bool same = CRYPTO_memcmp(digest, a->digests[i], sizeof digest) == 0;
    found = same ? (int)i : found;
  }
  OPENSSL_cleanse(digest, sizeof digest);
  if (found < 0) kv_status_set(st, KV_EUNAUTH, "the bearer token is not one this cluster knows");
  return found;
}

kv_err kv_auth_check_admin(const kv_auth_t *a, const kv_auth_caller_t *who, kv_status_t *st) {
  if (a->cfg->tls.enabled && !who->has_cert)
    return kv_status_set(st, KV_EPERM, "admin calls need a client certificate from the "
                         "cluster's CA; none was presented");
  if (a->cfg->token_count == 0 || auth_cert_node(a, who)) return KV_OK;
  int t = auth_token(a, who, st);
  if (t < 0) return st->code;
  if (a->cfg->tokens[t].admin) return KV_OK;
  return kv_status_set(st, KV_EPERM, "token '%s' may not make admin calls",
                       a->cfg->tokens[t].name);
}

kv_err kv_auth_check_data(const kv_auth_t *a, const kv_auth_caller_t *who, kv_auth_role_t role,
                          const char *keyspace, kv_status_t *st) {
  KV_ASSERT(role == KV_AUTH_READ || role == KV_AUTH_WRITE);
  if (a->cfg->token_count == 0 || auth_cert_node(a, who)) return KV_OK;
  int t = auth_token(a, who, st);
  if (t < 0) return st->code;
  const kv_token_conf_t *tok = &a->cfg->tokens[t];
  int k = -1;
  for (uint32_t i = 0; i < a->cfg->keyspace_count && k < 0; i++)
    if (strcmp(a->cfg->keyspaces[i].name, keyspace) == 0) k = (int)i;
  if (k < 0) return KV_OK; /* the coordinator says NOT_FOUND */
  uint64_t allowed = role == KV_AUTH_READ ? tok->read_keyspaces : tok->write_keyspaces;
  if (allowed & (1ull << k)) return KV_OK;
  return kv_status_set(st, KV_EPERM, "token '%s' may not %s keyspace '%s'", tok->name,
                       role == KV_AUTH_READ ? "read" : "write", keyspace);
}
