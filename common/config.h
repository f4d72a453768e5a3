/* config.h: the cluster configuration file (YAML, DESIGN section 12), loaded with libcyaml.
 *
 * Every node runs with the same file and picks itself by id. Loading checks everything a
 * node needs to trust the file; any problem is reported as "FILE:LINE: sentence" in the
 * status, with KV_ECONFIG, and kvnode exits 2 with that line.
 *
 *   cluster:   { name: demo, partitions: 256 }          # partitions: power of two
 *              # optional: phi_threshold (default 8, 1 to 100, decimals allowed): the failure
 *              # detector's suspicion (coordinator/phi.h) above which a peer counts as down
 *              # optional: anti_entropy_interval_ms (default 30000; 0 turns anti-entropy off:
 *              # no exchanges and no tree upkeep on writes; coordinator/aae.h)
 *              # optional: tombstone_grace_ms (default 60000): how long a tombstone every
 *              # primary holds is kept before it is reaped (coordinator/reaper.h)
 *              # optional: max_clock_skew_ms (default 500): a peer whose wall clock is off by
 *              # more is reported by kvctl status, and lww decisions over its writes are
 *              # journaled as suspect
 *              # optional: block_cache_mb (default 64) and memtable_mb (default 128), 8 to
 *              # 65536: RocksDB's block cache and its unflushed writes, over all column
 *              # families, per node (kvnode/store.c)
 *   nodes:     - { id: n1, address: "127.0.0.1:7001", region: local, rack: r1 }
 *   keyspaces: - name: default
 *                replication: { local: 3 }               # replicas per region
 *                read: QUORUM                            # default levels
 *                write: QUORUM
 *                handler: siblings                       # conflict handler
 *                # optional: siblings_max, key_bytes_max, value_bytes_max, sloppy_quorum,
 *                # fallback_handler (default lww; resolves past siblings_max; not siblings),
 *                # region_priority: [east, west] (for region-priority; first is highest)
 *                # handler and fallback_handler: siblings, lww, region-priority, set-union,
 *                # or plugin:/path/to/handler.so (common/conflict.h)
 *   tls:       { cert: n1.pem, key: n1.key, ca: ca.pem, client_auth: require }   # optional
 *              # cert, key and ca are required when tls is given (paths as given, from the
 *              # working directory, "{node}" standing for the node's id, as in
 *              # certs/{node}.pem; kvnode/tls_rpc.c reads and checks them); client_auth:
 *              # require (the default: every connection presents a certificate from ca) or
 *              # optional (clients may connect without one; peer and admin calls still need
 *              # one)
 *   tokens:    - { name: app, secret_file: app.token, read: [default], write: [default] }
 *              - { name: ops, secret: "...", admin: true }                    # optional
 *              # each token: a name, exactly one of secret / secret_file (16 to 256
 *              # printable bytes), and at least one role: read and write list keyspaces
 *              # ("*" is every keyspace), admin: true allows the Admin calls. tokens need tls.
 */
#ifndef KV_CONFIG_H
#define KV_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "kv_err.h"
#include "level.h"
#include "kv_limits.h"

typedef struct {
  char id[KV_NODE_ID_BYTES_MAX + 1];
  char address[KV_ADDRESS_BYTES_MAX + 1]; /* HOST:PORT, port 1..65535 */
  char region[KV_REGION_BYTES_MAX + 1];   /* "local" when not given */
  char rack[KV_RACK_BYTES_MAX + 1];       /* "" when not given */
  uint32_t line;                          /* where the node is defined, for messages */
} kv_node_conf_t;

typedef struct {
  char region[KV_REGION_BYTES_MAX + 1];
  uint32_t replicas;                      /* 1 .. KV_REPLICAS_MAX */
} kv_replication_conf_t;

typedef struct {
  char name[KV_KEYSPACE_NAME_BYTES_MAX + 1];
  kv_replication_conf_t replication[KV_REGIONS_MAX];
  uint32_t replication_count;             /* regions listed */
  uint32_t n;                             /* replicas summed over regions: N */
  kv_level_t read;                        /* default read level; never KV_LEVEL_DEFAULT */
  kv_level_t write;                       /* default write level; never KV_LEVEL_DEFAULT */
  char handler[KV_HANDLER_BYTES_MAX + 1];  /* conflict handler; default "siblings" */
  char fallback_handler[KV_HANDLER_BYTES_MAX + 1]; /* past siblings_max; default "lww" */
  char region_priority[KV_REGIONS_MAX][KV_REGION_BYTES_MAX + 1]; /* highest first */
  uint32_t region_priority_count;
  uint32_t siblings_max;                  /* default KV_SIBLINGS_DEFAULT, <= KV_SIBLINGS_MAX */
  uint32_t key_bytes_max;                 /* default KV_KEY_BYTES_DEFAULT */
  uint32_t value_bytes_max;               /* default KV_VALUE_BYTES_DEFAULT */
  bool sloppy_quorum;                     /* default true */
  uint32_t line;
} kv_keyspace_conf_t;

/* The tls: section. Paths are as written in the file. */
typedef struct {
  bool enabled;                           /* the section is present */
  char cert[KV_TLS_PATH_BYTES_MAX + 1];   /* this node's certificate chain, PEM */
  char key[KV_TLS_PATH_BYTES_MAX + 1];    /* its private key, PEM */
  char ca[KV_TLS_PATH_BYTES_MAX + 1];     /* the CA(s) every certificate must chain to, PEM */
  bool client_auth_required;              /* require (default) or optional */
  uint32_t cert_line, key_line, ca_line;  /* for messages about the files */
} kv_tls_conf_t;

/* One entry of tokens:. The secret is kept here only until kvnode/auth.c hashes it. */
typedef struct {
  char name[KV_TOKEN_NAME_BYTES_MAX + 1];
  uint8_t secret[KV_TOKEN_SECRET_BYTES_MAX];
  uint32_t secret_bytes;
  bool admin;                             /* may make the Admin calls */
  uint64_t read_keyspaces;                /* bit i: may read keyspaces[i] (KV_KEYSPACES_MAX is 64) */
  uint64_t write_keyspaces;               /* bit i: may put and delete in keyspaces[i] */
  uint32_t line;
} kv_token_conf_t;

typedef struct {
  char path[256];                         /* the file it was loaded from */
  char cluster_name[KV_CLUSTER_NAME_BYTES_MAX + 1]; /* "tunekv" when not given */
  uint32_t partitions;                    /* power of two, 1 .. KV_PARTITIONS_MAX */
  double phi_threshold;                   /* KV_PHI_THRESHOLD_MIN .. _MAX; default 8 */
  uint32_t anti_entropy_interval_ms;      /* 0 (off) .. KV_AAE_INTERVAL_MS_MAX */
  uint32_t tombstone_grace_ms;            /* 0 .. KV_TOMBSTONE_GRACE_MS_MAX */
  uint32_t max_clock_skew_ms;             /* 1 .. KV_CLOCK_SKEW_MS_MAX; default 500 */
  uint64_t block_cache_bytes;             /* KV_STORE_MB_MIN .. _MAX MiB; default 64 MiB */
  uint64_t memtable_bytes;                /* the same range; default 128 MiB */
  kv_node_conf_t nodes[KV_NODES_MAX];
  uint32_t node_count;
  uint32_t nodes_line;                    /* line of the "nodes:" key */
  kv_keyspace_conf_t keyspaces[KV_KEYSPACES_MAX];
  uint32_t keyspace_count;
  kv_tls_conf_t tls;
  kv_token_conf_t tokens[KV_TOKENS_MAX];
  uint32_t token_count;                   /* 0: no token is asked for */
  uint32_t tokens_line;                   /* line of the "tokens:" key */
} kv_config_t;

/* Loads and validates path into *out (caller-owned, zeroed on failure; no heap survives).
 * Errors: KV_ECONFIG with st->msg "FILE:LINE: sentence" for an unreadable file, YAML syntax
 * error, unknown field, missing required field, bad value, duplicate node id or keyspace,
 * bad address, partitions not a power of two, a replication region with no node in it, an
 * unknown level name, a value over its hard limit, a tls section missing a file or with an
 * unknown client_auth, or a token without a usable secret or role (a secret_file is read here;
 * the tls files are not: kvnode/tls_rpc.c reads and checks them). LINE is 0 when the file itself cannot be
 * read. KV_ENOMEM ("FILE: out of memory while loading") when memory runs out. */
kv_err kv_config_load(const char *path, kv_config_t *out, kv_status_t *st);

/* The node with this id, or NULL. Borrowed; valid while cfg lives. */
const kv_node_conf_t *kv_config_node(const kv_config_t *cfg, const char *id);
/* Index of the node with this id, or -1. */
int kv_config_node_index(const kv_config_t *cfg, const char *id);
/* The keyspace with this name, or NULL. Borrowed; valid while cfg lives. */
const kv_keyspace_conf_t *kv_config_keyspace(const kv_config_t *cfg, const char *name);
/* The largest key, value and sibling limits over all keyspaces (for message sizes). */
void kv_config_limits(const kv_config_t *cfg, uint32_t *key_bytes_max,
                      uint32_t *value_bytes_max, uint32_t *siblings_max);

#endif
