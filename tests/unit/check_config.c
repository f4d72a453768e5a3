/* check_config.c: loading the cluster config: the repo's configs, defaults, lookups, and
 * every error a user can reach, each with its exact "FILE:LINE: sentence".
 *
 * Each test writes its YAML to a fresh temporary directory, so the YAML sits next to the
 * assertion that is about it; one string literal is one line of the file. The repo's own
 * configs are loaded by relative path, so the runner must start in the repo root (as
 * `make unit` does). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

typedef struct {
  char dir[64];
  char path[96];
} tmp_file_t;

static void tmp_write(tmp_file_t *t, const char *yaml) {
  const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(t->dir, sizeof t->dir, "%s/tunekv-config-XXXXXX", base);
  ck_assert_ptr_nonnull(mkdtemp(t->dir));
  snprintf(t->path, sizeof t->path, "%s/c.yaml", t->dir);
  FILE *f = fopen(t->path, "w");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(yaml, 1, strlen(yaml), f), strlen(yaml));
  ck_assert_int_eq(fclose(f), 0);
}

static void tmp_remove(tmp_file_t *t) {
  unlink(t->path);
  rmdir(t->dir);
}

static kv_err load_text(const char *yaml, kv_config_t *cfg, kv_status_t *st) {
  tmp_file_t t;
  tmp_write(&t, yaml);
  kv_err err = kv_config_load(t.path, cfg, st);
  tmp_remove(&t);
  return err;
}

/* Loads yaml and asserts KV_ECONFIG with exactly "PATH:line: sentence". */
static void expect_error(const char *yaml, unsigned line, const char *sentence) {
  static kv_config_t cfg;
  kv_status_t st;
  tmp_file_t t;
  tmp_write(&t, yaml);
  kv_err err = kv_config_load(t.path, &cfg, &st);
  tmp_remove(&t);
  char want[KV_STATUS_MSG_BYTES];
  snprintf(want, sizeof want, "%s:%u: %s", t.path, line, sentence);
  ck_assert_str_eq(st.msg, want);
  ck_assert_int_eq(err, KV_ECONFIG);
  ck_assert_int_eq(st.code, KV_ECONFIG);
  ck_assert_uint_eq(cfg.node_count, 0);
}

/* Lines 1-4 of most error tests: one node in region local. */
#define ONE_NODE                                     \
  "nodes:\n"                                         \
  "  - { id: n1, address: \"127.0.0.1:7001\" }\n"    \
  "keyspaces:\n"                                     \
  "  - name: default\n"

/* Lines 1-5: one node and a keyspace with valid replication; options follow on line 6. */
#define ONE_KEYSPACE ONE_NODE "    replication: { local: 1 }\n"

/* ---------------------------------------------------------------------------------------- */

START_TEST(repo_configs_load) {
  static kv_config_t cfg;
  kv_status_t st;
  ck_assert_int_eq(kv_config_load("config/single.yaml", &cfg, &st), KV_OK);
  ck_assert_str_eq(st.msg, "");
  ck_assert_str_eq(cfg.path, "config/single.yaml");
  ck_assert_uint_eq(cfg.node_count, 1);
  ck_assert_uint_eq(cfg.keyspaces[0].n, 1);
  ck_assert_int_eq(cfg.keyspaces[0].read, KV_LEVEL_ONE);

  ck_assert_int_eq(kv_config_load("config/cluster3.yaml", &cfg, &st), KV_OK);
  ck_assert_uint_eq(cfg.node_count, 3);
  ck_assert_double_eq(cfg.phi_threshold, 8);
  ck_assert_str_eq(cfg.nodes[2].id, "n3");
  ck_assert_str_eq(cfg.nodes[2].address, "127.0.0.1:7003");
  ck_assert_str_eq(cfg.nodes[2].rack, "r3");
  ck_assert_uint_eq(cfg.keyspaces[0].n, 3);
  ck_assert_int_eq(cfg.keyspaces[0].write, KV_LEVEL_QUORUM);

  ck_assert_int_eq(kv_config_load("config/multiregion.yaml", &cfg, &st), KV_OK);
  ck_assert_uint_eq(cfg.node_count, 6);
  ck_assert_str_eq(cfg.nodes[5].region, "west");
  ck_assert_uint_eq(cfg.keyspaces[0].replication_count, 2);
  ck_assert_str_eq(cfg.keyspaces[0].replication[1].region, "west");
  ck_assert_uint_eq(cfg.keyspaces[0].n, 6);
  ck_assert_int_eq(cfg.keyspaces[0].read, KV_LEVEL_LOCAL_QUORUM);
}
END_TEST

START_TEST(omitted_fields_get_defaults) {
  static kv_config_t cfg;
  kv_status_t st;
  ck_assert_int_eq(load_text("# nothing but what is required\n"
                             "nodes:\n"
                             "  - id: n1\n"
                             "    address: \"127.0.0.1:7001\"\n"
                             "keyspaces:\n"
                             "  - name: default\n"
                             "    replication: { local: 1 }\n",
                             &cfg, &st),
                   KV_OK);
  ck_assert_str_eq(cfg.cluster_name, "tunekv");
  ck_assert_uint_eq(cfg.partitions, KV_PARTITIONS_DEFAULT);
  ck_assert_double_eq(cfg.phi_threshold, KV_PHI_THRESHOLD_DEFAULT);
  ck_assert_uint_eq(cfg.anti_entropy_interval_ms, KV_AAE_INTERVAL_MS_DEFAULT);
  ck_assert_uint_eq(cfg.tombstone_grace_ms, KV_TOMBSTONE_GRACE_MS_DEFAULT);
  ck_assert_uint_eq(cfg.nodes_line, 2);
  ck_assert_uint_eq(cfg.nodes[0].line, 3);
  ck_assert_str_eq(cfg.nodes[0].region, "local");
  ck_assert_str_eq(cfg.nodes[0].rack, "");
  const kv_keyspace_conf_t *k = &cfg.keyspaces[0];
  ck_assert_uint_eq(k->line, 6);
  ck_assert_int_eq(k->read, KV_LEVEL_QUORUM);
  ck_assert_int_eq(k->write, KV_LEVEL_QUORUM);
  ck_assert_str_eq(k->handler, "siblings");
  ck_assert_uint_eq(k->siblings_max, KV_SIBLINGS_DEFAULT);
  ck_assert_uint_eq(k->key_bytes_max, KV_KEY_BYTES_DEFAULT);
  ck_assert_uint_eq(k->value_bytes_max, KV_VALUE_BYTES_DEFAULT);
  ck_assert(k->sloppy_quorum);
}
END_TEST

START_TEST(every_option_is_read) {
  static kv_config_t cfg;
  kv_status_t st;
  ck_assert_int_eq(load_text("cluster: { name: lab, partitions: 1024, phi_threshold: 12.5 }\n"
                             "nodes:\n"
                             "  - { id: a.1, address: \"[::1]:7001\", region: eu, rack: r-1 }\n"
                             "  - { id: b_2, address: \"db-2.example.com:65535\", region: eu }\n"
                             "  - { id: c3, address: \"10.0.0.3:1\", region: us }\n"
                             "keyspaces:\n"
                             "  - name: carts\n"
                             "    replication: { eu: 2, us: 1 }\n"
                             "    read: local_quorum\n"
                             "    write: Two\n"
                             "    handler: lww\n"
                             "    siblings_max: 64\n"
                             "    key_bytes_max: 65536\n"
                             "    value_bytes_max: 16777216\n"
                             "    sloppy_quorum: off\n",
                             &cfg, &st),
                   KV_OK);
  ck_assert_str_eq(cfg.cluster_name, "lab");
  ck_assert_uint_eq(cfg.partitions, 1024);
  ck_assert_double_eq(cfg.phi_threshold, 12.5);
  ck_assert_str_eq(cfg.nodes[0].address, "[::1]:7001");
  ck_assert_str_eq(cfg.nodes[0].rack, "r-1");
  ck_assert_uint_eq(cfg.nodes[2].line, 5);
  const kv_keyspace_conf_t *k = &cfg.keyspaces[0];
  ck_assert_uint_eq(k->replication_count, 2);
  ck_assert_str_eq(k->replication[0].region, "eu");
  ck_assert_uint_eq(k->replication[0].replicas, 2);
  ck_assert_uint_eq(k->n, 3);
  ck_assert_int_eq(k->read, KV_LEVEL_LOCAL_QUORUM);
  ck_assert_int_eq(k->write, KV_LEVEL_TWO);
  ck_assert_str_eq(k->handler, "lww");
  ck_assert_uint_eq(k->siblings_max, KV_SIBLINGS_MAX);
  ck_assert_uint_eq(k->key_bytes_max, KV_KEY_BYTES_HARD_MAX);
  ck_assert_uint_eq(k->value_bytes_max, KV_VALUE_BYTES_HARD_MAX);
  ck_assert(!k->sloppy_quorum);
}
END_TEST

START_TEST(lookups_find_nodes_keyspaces_and_limits) {
  static kv_config_t cfg;
  kv_status_t st;
  ck_assert_int_eq(load_text(ONE_KEYSPACE
                             "    value_bytes_max: 100\n"
                             "  - name: big\n"
                             "    replication: { local: 1 }\n"
                             "    key_bytes_max: 2048\n"
                             "    siblings_max: 3\n",
                             &cfg, &st),
                   KV_OK);
  ck_assert_int_eq(kv_config_node_index(&cfg, "n1"), 0);
  ck_assert_int_eq(kv_config_node_index(&cfg, "n9"), -1);
  ck_assert_ptr_eq(kv_config_node(&cfg, "n1"), &cfg.nodes[0]);
  ck_assert_ptr_null(kv_config_node(&cfg, "n9"));
  ck_assert_ptr_eq(kv_config_keyspace(&cfg, "big"), &cfg.keyspaces[1]);
  ck_assert_ptr_null(kv_config_keyspace(&cfg, "small"));
  uint32_t key_max, value_max, siblings_max;
  kv_config_limits(&cfg, &key_max, &value_max, &siblings_max);
  ck_assert_uint_eq(key_max, 2048);
  ck_assert_uint_eq(value_max, KV_VALUE_BYTES_DEFAULT);
  ck_assert_uint_eq(siblings_max, KV_SIBLINGS_DEFAULT);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */

START_TEST(unreadable_files_are_reported) {
  static kv_config_t cfg;
  kv_status_t st;
  ck_assert_int_eq(kv_config_load("/nonexistent-tunekv/c.yaml", &cfg, &st), KV_ECONFIG);
  ck_assert_str_eq(st.msg, "/nonexistent-tunekv/c.yaml:0: cannot open the file: No such file "
                           "or directory");
  ck_assert_int_eq(kv_config_load("/", &cfg, &st), KV_ECONFIG);
  ck_assert_str_eq(st.msg, "/:0: cannot read the file: Is a directory");
  char *big = malloc(1024 * 1024 + 2);
  ck_assert_ptr_nonnull(big);
  memset(big, '#', 1024 * 1024 + 1);
  big[1024 * 1024 + 1] = '\0';
  expect_error(big, 0, "the file is larger than 1048576 bytes; it is not a tunekv config");
  free(big);
  char long_path[300];
  memset(long_path, 'a', sizeof long_path - 1);
  long_path[sizeof long_path - 1] = '\0';
  ck_assert_int_eq(kv_config_load(long_path, &cfg, &st), KV_ECONFIG);
  ck_assert_ptr_nonnull(strstr(st.msg, ":0: the path is 299 bytes; the limit is 255"));
}
END_TEST

START_TEST(yaml_errors_have_lines) {
  expect_error("nodes:\n"
               "  - { id: n1, address: \"127.0.0.1:7001\"\n"
               "keyspaces:\n",
               3, "YAML syntax error: did not find expected ',' or '}' (while parsing a flow "
                  "mapping at line 2)");
  expect_error("nodes:\n"
               "\t- { id: n1 }\n",
               2, "YAML syntax error: found character that cannot start any token (while "
                  "scanning for the next token at line 2)");
  expect_error(ONE_NODE
               "    replication: { local: 1 }\n"
               "    name: other\n",
               6, "field 'name' is given twice (first at line 4)");
  expect_error(ONE_KEYSPACE
               "---\n"
               "nodes: []\n",
               6, "the file holds more than one YAML document");
  expect_error("base: &b { id: n1, address: \"127.0.0.1:7001\" }\n"
               "nodes:\n"
               "  - *b\n",
               3, "YAML aliases such as '*b' are not supported in the config");
  expect_error("nodes:\n"
               "  - { ? [a, b] : c }\n",
               2, "a key must be a plain word, not a mapping or a list");
  expect_error("nodes: [[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]\n",
               1, "the document nests deeper than 16 levels");
  char *yaml = malloc(2 * 8192 + 64);
  ck_assert_ptr_nonnull(yaml);
  size_t used = (size_t)sprintf(yaml, "nodes: [0");
  for (int i = 0; i < 8192; i++) used += (size_t)sprintf(yaml + used, ",0");
  sprintf(yaml + used, "]\n");
  expect_error(yaml, 1, "the file has more than 8192 entries; it is not a tunekv config");
  free(yaml);
}
END_TEST

START_TEST(unknown_fields_are_rejected) {
  expect_error(ONE_KEYSPACE
               "colour: red\n",
               6, "unknown field 'colour' at the top level");
  expect_error("nodes:\n"
               "  - { id: n1, address: \"127.0.0.1:7001\" }\n"
               "  - id: n2\n"
               "    address: \"127.0.0.1:7002\"\n"
               "\n"
               "    colour: red\n",
               6, "unknown field 'colour' in a node");
  expect_error(ONE_KEYSPACE
               "    replicas: 3\n",
               6, "unknown field 'replicas' in a keyspace");
  expect_error("cluster: { name: x, partition: 8 }\n"
               ONE_KEYSPACE,
               1, "unknown field 'partition' in the cluster section");
}
END_TEST

START_TEST(wrong_shapes_and_numbers_are_rejected) {
  expect_error("nodes: n1\n", 1, "'nodes' must be a list, not a single value");
  expect_error("nodes:\n"
               "  - { id: n1, address: \"127.0.0.1:7001\" }\n"
               "  - n2\n",
               3, "entry 2 of 'nodes' must be a mapping, not a single value");
  expect_error("- n1\n", 1, "the file must be a mapping, not a list");
  expect_error(ONE_NODE
               "    replication: { local: 1 }\n"
               "    read: [ONE]\n",
               6, "'read' must be a single value, not a list");
  expect_error("cluster:\n"
               "  partitions: many\n"
               ONE_KEYSPACE,
               2, "partitions is 'many'; it must be a power of two between 1 and 65536");
  expect_error(ONE_KEYSPACE
               "    siblings_max: -1\n",
               6, "siblings_max is '-1'; it must be between 1 and 64");
  expect_error(ONE_KEYSPACE
               "    key_bytes_max: 99999999999999999999999\n",
               6, "key_bytes_max is '99999999999999999999999'; it must be between 1 and 65536");
}
END_TEST

START_TEST(missing_required_fields_are_rejected) {
  expect_error("", 1, "the file is missing the required field 'nodes'");
  expect_error("# only a comment\n", 1, "the file is missing the required field 'nodes'");
  expect_error("cluster: { name: x }\n", 1, "the file is missing the required field 'nodes'");
  expect_error("nodes:\n"
               "  - { id: n1, address: \"127.0.0.1:7001\" }\n",
               1, "the file is missing the required field 'keyspaces'");
  expect_error("nodes:\n"
               "  - { id: n1, address: \"127.0.0.1:7001\" }\n"
               "  - { address: \"127.0.0.1:7002\" }\n",
               3, "a node is missing the required field 'id'");
  expect_error("nodes:\n"
               "  - id: n1\n"
               "    region: local\n",
               2, "a node is missing the required field 'address'");
  expect_error(ONE_KEYSPACE
               "  - replication: { local: 1 }\n",
               6, "a keyspace is missing the required field 'name'");
  expect_error(ONE_NODE
               "    read: ONE\n",
               4, "a keyspace is missing the required field 'replication'");
  expect_error("nodes: []\n", 1, "the nodes list is empty; a cluster needs at least one node");
  expect_error("nodes:\n"
               "  - { id: n1, address: \"127.0.0.1:7001\" }\n"
               "keyspaces: []\n",
               3, "the keyspaces list is empty; define at least one keyspace");
}
END_TEST

START_TEST(duplicates_are_rejected) {
  expect_error("nodes:\n"
               "  - { id: n1, address: \"127.0.0.1:7001\" }\n"
               "  - { id: n2, address: \"127.0.0.1:7002\" }\n"
               "  - { id: n1, address: \"127.0.0.1:7003\" }\n",
               4, "node id 'n1' is used twice (first at line 2)");
  expect_error("nodes:\n"
               "  - { id: n1, address: \"127.0.0.1:7001\" }\n"
               "  - id: n2\n"
               "    address: \"127.0.0.1:7001\"\n",
               4, "address '127.0.0.1:7001' is used twice (first at line 2)");
  expect_error(ONE_KEYSPACE
               "  - name: default\n"
               "    replication: { local: 1 }\n",
               6, "keyspace 'default' is defined twice (first at line 4)");
}
END_TEST

/* Lines 1-2 of the address tests; the address is on line 2. */
static void expect_bad_address(const char *address, const char *sentence) {
  char yaml[512];
  snprintf(yaml, sizeof yaml, "nodes:\n  - { id: n1, address: \"%s\" }\n", address);
  expect_error(yaml, 2, sentence);
}

START_TEST(bad_addresses_are_rejected) {
  expect_bad_address("127.0.0.1", "address '127.0.0.1' has no port; write it as HOST:PORT");
  expect_bad_address("127.0.0.1:", "address '127.0.0.1:' has no port; write it as HOST:PORT");
  expect_bad_address(":7001", "address ':7001' has no host; write it as HOST:PORT");
  expect_bad_address("127.0.0.1:0", "address '127.0.0.1:0' has port 0; the port must be between "
                                    "1 and 65535");
  expect_bad_address("127.0.0.1:65536", "address '127.0.0.1:65536' has port 65536; the port "
                                        "must be between 1 and 65535");
  expect_bad_address("localhost:http", "address 'localhost:http' has port 'http'; the port "
                                       "must be a number between 1 and 65535");
  expect_bad_address("local host:1", "address 'local host:1' has a bad host; use a host name, "
                                     "an IPv4 address or an IPv6 address in brackets");
  expect_bad_address("::1:7001", "address '::1:7001' has a bad host; use a host name, an IPv4 "
                                 "address or an IPv6 address in brackets");
  expect_bad_address("[]:7001", "address '[]:7001' has a bad host; use a host name, an IPv4 "
                                "address or an IPv6 address in brackets");
  /* A long value is cut short in the message. */
  char yaml[512], host[300], want[200];
  memset(host, 'h', 260);
  host[260] = '\0';
  snprintf(yaml, sizeof yaml, "nodes:\n  - { id: n1, address: \"%s:1\" }\n", host);
  snprintf(want, sizeof want, "address '%.68s...' is 262 bytes; the limit is 255", host);
  expect_error(yaml, 2, want);
}
END_TEST

START_TEST(partitions_must_be_a_power_of_two) {
  expect_error("cluster:\n"
               "  name: demo\n"
               "  partitions: 100\n"
               ONE_KEYSPACE,
               3, "partitions is 100; it must be a power of two between 1 and 65536");
  expect_error("cluster: { partitions: 0 }\n"
               ONE_KEYSPACE,
               1, "partitions is 0; it must be a power of two between 1 and 65536");
  expect_error("cluster: { partitions: 131072 }\n"
               ONE_KEYSPACE,
               1, "partitions is 131072; it must be a power of two between 1 and 65536");
}
END_TEST

START_TEST(durations_must_be_whole_milliseconds_in_range) {
  expect_error("cluster: { anti_entropy_interval_ms: 86400001 }\n" ONE_KEYSPACE, 1,
               "anti_entropy_interval_ms is 86400001; it must be a whole number of milliseconds "
               "between 0 and 86400000");
  expect_error("cluster: { tombstone_grace_ms: soon }\n" ONE_KEYSPACE, 1,
               "tombstone_grace_ms is 'soon'; it must be a whole number of milliseconds between "
               "0 and 864000000");
}
END_TEST

START_TEST(phi_threshold_must_be_a_number_in_range) {
  expect_error("cluster:\n"
               "  phi_threshold: 0.5\n"
               ONE_KEYSPACE,
               2, "phi_threshold is 0.5; it must be a number between 1 and 100");
  expect_error("cluster: { phi_threshold: 100.01 }\n"
               ONE_KEYSPACE,
               1, "phi_threshold is 100.01; it must be a number between 1 and 100");
  expect_error("cluster: { phi_threshold: high }\n"
               ONE_KEYSPACE,
               1, "phi_threshold is 'high'; it must be a number between 1 and 100");
  expect_error("cluster: { phi_threshold: -8 }\n"
               ONE_KEYSPACE,
               1, "phi_threshold is '-8'; it must be a number between 1 and 100");
  expect_error("cluster: { phi_threshold: 8. }\n"
               ONE_KEYSPACE,
               1, "phi_threshold is '8.'; it must be a number between 1 and 100");
  expect_error("cluster: { phi_threshold: 1e1 }\n"
               ONE_KEYSPACE,
               1, "phi_threshold is '1e1'; it must be a number between 1 and 100");
  expect_error("cluster: { phi_threshold: \"\" }\n"
               ONE_KEYSPACE,
               1, "phi_threshold is ''; it must be a number between 1 and 100");
  /* The bounds themselves are allowed. */
  static kv_config_t cfg;
  kv_status_t st;
  ck_assert_int_eq(load_text("cluster: { phi_threshold: 1 }\n" ONE_KEYSPACE, &cfg, &st), KV_OK);
  ck_assert_double_eq(cfg.phi_threshold, 1);
  ck_assert_int_eq(load_text("cluster: { phi_threshold: 100.0 }\n" ONE_KEYSPACE, &cfg, &st),
                   KV_OK);
  ck_assert_double_eq(cfg.phi_threshold, 100);
}
END_TEST

START_TEST(bad_names_are_rejected) {
  expect_error("nodes:\n"
               "  - { id: \"\", address: \"127.0.0.1:7001\" }\n",
               2, "node id is empty");
  expect_error("nodes:\n"
               "  - { id: n123456789012345678901234567890123, address: \"127.0.0.1:7001\" }\n",
               2, "node id 'n123456789012345678901234567890123' is 34 bytes; the limit is 32");
  expect_error("nodes:\n"
               "  - { id: \"n 1\", address: \"127.0.0.1:7001\" }\n",
               2, "node id 'n 1' has the character ' '; use letters, digits, '-', '_' and '.'");
  expect_error("nodes:\n"
               "  - { id: n1, address: \"127.0.0.1:7001\", region: \"eu/west\" }\n",
               2, "region 'eu/west' has the character '/'; use letters, digits, '-', '_' and '.'");
  expect_error("nodes:\n"
               "  - { id: n1, address: \"127.0.0.1:7001\", rack: \"r\\t1\" }\n",
               2, "rack 'r\\x091' has the character '\\x09'; use letters, digits, '-', '_' and "
                  "'.'");
  expect_error("cluster: { name: \"my cluster\" }\n"
               ONE_KEYSPACE,
               1, "cluster name 'my cluster' has the character ' '; use letters, digits, '-', "
                  "'_' and '.'");
  expect_error(ONE_KEYSPACE
               "  - name: \"users:v2\"\n",
               6, "keyspace name 'users:v2' has the character ':'; use letters, digits, '-', "
                  "'_' and '.'");
  expect_error(ONE_KEYSPACE
               "    handler: \"\"\n",
               6, "handler is empty");
}
END_TEST

/* A file with count nodes n1.. on ports 7001.., in region "r<i % regions>". */
static char *many_nodes(unsigned count, unsigned regions) {
  size_t cap = 128 + count * 80;
  char *yaml = malloc(cap);
  ck_assert_ptr_nonnull(yaml);
  size_t used = (size_t)snprintf(yaml, cap, "nodes:\n");
  for (unsigned i = 0; i < count; i++)
    used += (size_t)snprintf(yaml + used, cap - used,
                             "  - { id: n%u, address: \"127.0.0.1:%u\", region: r%u }\n", i + 1,
                             7001 + i, i % regions);
  return yaml;
}

START_TEST(too_many_of_anything_is_rejected) {
  char *yaml = many_nodes(KV_NODES_MAX + 1, 1);
  expect_error(yaml, KV_NODES_MAX + 2, "there are 65 nodes; the limit is 64");
  free(yaml);
  yaml = many_nodes(KV_REGIONS_MAX + 1, KV_REGIONS_MAX + 1);
  expect_error(yaml, KV_REGIONS_MAX + 2, "region 'r8' is one region too many; the limit is 8 "
                                         "regions");
  free(yaml);

  size_t cap = 64 * 1024, used;
  yaml = malloc(cap);
  ck_assert_ptr_nonnull(yaml);
  used = (size_t)snprintf(yaml, cap, ONE_NODE "    replication: { local: 1 }\n");
  for (unsigned i = 1; i <= KV_KEYSPACES_MAX; i++)
    used += (size_t)snprintf(yaml + used, cap - used,
                             "  - { name: k%u, replication: { local: 1 } }\n", i);
  expect_error(yaml, 5 + KV_KEYSPACES_MAX, "there are 65 keyspaces; the limit is 64");
  free(yaml);
}
END_TEST

START_TEST(replication_must_fit_the_nodes) {
  expect_error(ONE_NODE
               "    replication: { local: 1, west: 1 }\n",
               5, "replication region 'west' has no nodes (the nodes are in: local)");
  expect_error(ONE_NODE
               "    replication: { local: 0 }\n",
               5, "replication for region 'local' is 0; it must be at least 1");
  expect_error(ONE_NODE
               "    replication:\n"
               "      local: 2\n",
               6, "replication for region 'local' is 2, but the region has 1 node");
  expect_error(ONE_NODE
               "    replication: { local: three }\n",
               5, "replication for region 'local' must be a whole number of replicas");
  expect_error(ONE_NODE
               "    replication: 3\n",
               5, "replication must be a mapping of region to replicas, like { local: 3 }");
  expect_error(ONE_NODE
               "    replication: {}\n",
               5, "replication is empty; name at least one region, like { local: 3 }");
  /* 17 nodes in one region allow 17 replicas there, but N has a hard limit. */
  char *nodes = many_nodes(KV_REPLICAS_MAX + 1, 1);
  char yaml[4096];
  snprintf(yaml, sizeof yaml, "%skeyspaces:\n  - name: default\n    replication: { r0: 17 }\n",
           nodes);
  free(nodes);
  expect_error(yaml, KV_REPLICAS_MAX + 5, "replication adds up to 17 replicas; the limit is 16");
}
END_TEST

START_TEST(levels_must_be_known_and_possible) {
  expect_error(ONE_KEYSPACE
               "    read: QUORM\n",
               6, "read level 'QUORM' is unknown; use one of ONE, TWO, THREE, QUORUM, ALL, ANY, "
                  "LOCAL_ONE, LOCAL_QUORUM, EACH_QUORUM");
  expect_error(ONE_KEYSPACE
               "    write: \"\"\n",
               6, "write level '' is unknown; use one of ONE, TWO, THREE, QUORUM, ALL, ANY, "
                  "LOCAL_ONE, LOCAL_QUORUM, EACH_QUORUM");
  expect_error(ONE_KEYSPACE
               "    read: ANY\n",
               6, "read level ANY is only for writes");
  expect_error(ONE_KEYSPACE
               "    write: two\n",
               6, "write level TWO needs 2 replicas, but keyspace 'default' has 1");
}
END_TEST

START_TEST(keyspace_limits_are_enforced) {
  expect_error(ONE_KEYSPACE
               "    siblings_max: 0\n",
               6, "siblings_max is 0; it must be between 1 and 64");
  expect_error(ONE_KEYSPACE
               "    siblings_max: 65\n",
               6, "siblings_max is 65; it must be between 1 and 64");
  expect_error(ONE_KEYSPACE
               "    key_bytes_max: 65537\n",
               6, "key_bytes_max is 65537; it must be between 1 and 65536");
  expect_error(ONE_KEYSPACE
               "    value_bytes_max: 16777217\n",
               6, "value_bytes_max is 16777217; it must be between 1 and 16777216");
  expect_error(ONE_KEYSPACE
               "    sloppy_quorum: maybe\n",
               6, "sloppy_quorum is 'maybe'; it must be true or false");
  expect_error(ONE_KEYSPACE
               "    handler: h1234567890123456789012345678901234567890123456789012345678901234\n",
               6, "handler 'h1234567890123456789012345678901234567890123456789012345678901234' "
                  "is unknown; use one of siblings, lww, region-priority, set-union, or "
                  "plugin:/path/to/handler.so");
}
END_TEST

START_TEST(conflict_options_are_read) {
  static kv_config_t cfg;
  kv_status_t st;
  ck_assert_int_eq(load_text("cluster: { max_clock_skew_ms: 250, block_cache_mb: 16, "
                             "memtable_mb: 32 }\n"
                             "nodes:\n"
                             "  - { id: n1, address: \"127.0.0.1:7001\", region: east }\n"
                             "  - { id: n2, address: \"127.0.0.1:7002\", region: west }\n"
                             "keyspaces:\n"
                             "  - name: carts\n"
                             "    replication: { east: 1, west: 1 }\n"
                             "    read: ONE\n"
                             "    write: ONE\n"
                             "    handler: region-priority\n"
                             "    region_priority: [west, east]\n"
                             "    fallback_handler: set-union\n"
                             "  - name: plugged\n"
                             "    replication: { east: 1 }\n"
                             "    handler: \"plugin:/opt/tunekv/my handler.so\"\n",
                             &cfg, &st),
                   KV_OK);
  ck_assert_uint_eq(cfg.max_clock_skew_ms, 250);
  ck_assert_uint_eq(cfg.block_cache_bytes, 16u << 20);
  ck_assert_uint_eq(cfg.memtable_bytes, 32u << 20);
  const kv_keyspace_conf_t *k = &cfg.keyspaces[0];
  ck_assert_str_eq(k->handler, "region-priority");
  ck_assert_str_eq(k->fallback_handler, "set-union");
  ck_assert_uint_eq(k->region_priority_count, 2);
  ck_assert_str_eq(k->region_priority[0], "west");
  ck_assert_str_eq(k->region_priority[1], "east");
  k = &cfg.keyspaces[1];
  ck_assert_str_eq(k->handler, "plugin:/opt/tunekv/my handler.so");
  ck_assert_str_eq(k->fallback_handler, "lww");
  ck_assert_uint_eq(k->region_priority_count, 0);
  ck_assert_int_eq(load_text(ONE_KEYSPACE, &cfg, &st), KV_OK);
  ck_assert_uint_eq(cfg.max_clock_skew_ms, KV_CLOCK_SKEW_MS_DEFAULT);
  ck_assert_uint_eq(cfg.block_cache_bytes, KV_STORE_BLOCK_CACHE_BYTES);
  ck_assert_uint_eq(cfg.memtable_bytes, KV_STORE_MEMTABLES_BYTES);
}
END_TEST

START_TEST(conflict_options_are_checked) {
  expect_error(ONE_KEYSPACE
               "    handler: newest\n",
               6, "handler 'newest' is unknown; use one of siblings, lww, region-priority, "
                  "set-union, or plugin:/path/to/handler.so");
  expect_error(ONE_KEYSPACE
               "    handler: \"plugin:\"\n",
               6, "handler 'plugin:' names no file; use plugin:/path/to/handler.so");
  expect_error(ONE_KEYSPACE
               "    handler: \"plugin:/a\\tb.so\"\n",
               6, "handler 'plugin:/a\\x09b.so' has a control character");
  expect_error(ONE_KEYSPACE
               "    fallback_handler: siblings\n",
               6, "fallback_handler cannot be siblings: past siblings_max the versions must be "
                  "resolved to one");
  expect_error(ONE_KEYSPACE
               "    fallback_handler: oldest\n",
               6, "fallback_handler 'oldest' is unknown; use one of siblings, lww, "
                  "region-priority, set-union, or plugin:/path/to/handler.so");
  expect_error(ONE_KEYSPACE
               "    region_priority: [local, north]\n",
               6, "region_priority names region 'north', which has no nodes (the nodes are in: "
                  "local)");
  expect_error(ONE_KEYSPACE
               "    region_priority: [local, local]\n",
               6, "region_priority names region 'local' twice");
  expect_error(ONE_KEYSPACE
               "    region_priority: local\n",
               6, "region_priority must be a list of regions, like [east, west]");
  expect_error("cluster: { max_clock_skew_ms: 0 }\n"
               ONE_KEYSPACE,
               1, "max_clock_skew_ms is 0; it must be between 1 and 3600000");
  expect_error("cluster: { max_clock_skew_ms: soon }\n"
               ONE_KEYSPACE,
               1, "max_clock_skew_ms is 'soon'; it must be between 1 and 3600000");
  expect_error("cluster: { block_cache_mb: 4 }\n"
               ONE_KEYSPACE,
               1, "block_cache_mb is 4; it must be a whole number of MiB between 8 and 65536");
  expect_error("cluster: { memtable_mb: lots }\n"
               ONE_KEYSPACE,
               1, "memtable_mb is 'lots'; it must be a whole number of MiB between 8 and 65536");
}
END_TEST

/* ---- tls and tokens ------------------------------------------------------------------- */

/* Lines 1-6: one node, keyspaces default and carts (line 5), then a tls section on line 6. */
#define TWO_KEYSPACES_TLS                                      \
  ONE_KEYSPACE                                                 \
  "  - { name: carts, replication: { local: 1 } }\n"           \
  "tls: { cert: n1.pem, key: n1.key, ca: ca.pem }\n"

START_TEST(tls_and_tokens_are_read) {
  static kv_config_t cfg;
  kv_status_t st;
  /* secret_file: read here, its newline dropped. */
  const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  char secret_path[96];
  snprintf(secret_path, sizeof secret_path, "%s/tunekv-secret-%d", base, (int)getpid());
  FILE *f = fopen(secret_path, "w");
  ck_assert_ptr_nonnull(f);
  fputs("0123456789abcdef-file\n", f);
  ck_assert_int_eq(fclose(f), 0);
  char yaml[1024];
  snprintf(yaml, sizeof yaml,
           ONE_KEYSPACE
           "  - { name: carts, replication: { local: 1 } }\n"
           "tls: { cert: n1.pem, key: n1.key, ca: ca.pem, client_auth: optional }\n"
           "tokens:\n"
           "  - { name: app, secret: 0123456789abcdef-app, read: [default], write: [\"*\"] }\n"
           "  - { name: ops, secret_file: %s, admin: true }\n", secret_path);
  ck_assert_int_eq(load_text(yaml, &cfg, &st), KV_OK);
  unlink(secret_path);
  ck_assert(cfg.tls.enabled);
  ck_assert_str_eq(cfg.tls.cert, "n1.pem");
  ck_assert_str_eq(cfg.tls.key, "n1.key");
  ck_assert_str_eq(cfg.tls.ca, "ca.pem");
  ck_assert_uint_eq(cfg.tls.cert_line, 7);
  ck_assert(!cfg.tls.client_auth_required);
  ck_assert_uint_eq(cfg.token_count, 2);
  ck_assert_uint_eq(cfg.tokens_line, 8);
  const kv_token_conf_t *app = &cfg.tokens[0], *ops = &cfg.tokens[1];
  ck_assert_str_eq(app->name, "app");
  ck_assert_uint_eq(app->secret_bytes, 20);
  ck_assert_mem_eq(app->secret, "0123456789abcdef-app", 20);
  ck_assert_uint_eq(app->read_keyspaces, 1);
  ck_assert_uint_eq(app->write_keyspaces, 3);
  ck_assert(!app->admin);
  ck_assert_uint_eq(ops->secret_bytes, 21);
  ck_assert_mem_eq(ops->secret, "0123456789abcdef-file", 21);
  ck_assert(ops->admin);
  ck_assert_uint_eq(ops->read_keyspaces | ops->write_keyspaces, 0);
  /* Without the sections: no tls, no token; client_auth defaults to require. */
  ck_assert_int_eq(load_text(TWO_KEYSPACES_TLS, &cfg, &st), KV_OK);
  ck_assert(cfg.tls.client_auth_required);
  ck_assert_uint_eq(cfg.token_count, 0);
  ck_assert_int_eq(load_text(ONE_KEYSPACE, &cfg, &st), KV_OK);
  ck_assert(!cfg.tls.enabled);
}
END_TEST

START_TEST(tls_section_is_checked) {
  expect_error(ONE_KEYSPACE
               "tls: { key: n1.key, ca: ca.pem }\n",
               6, "tls is missing the required field 'cert'");
  expect_error(ONE_KEYSPACE
               "tls: { cert: n1.pem, ca: ca.pem }\n",
               6, "tls is missing the required field 'key'");
  expect_error(ONE_KEYSPACE
               "tls:\n",
               6, "'tls' must be a mapping, not a single value");
  expect_error(ONE_KEYSPACE
               "tls:\n"
               "  cert: n1.pem\n"
               "  key: n1.key\n",
               6, "tls is missing the required field 'ca'");
  expect_error(ONE_KEYSPACE
               "tls:\n"
               "  cert: \"\"\n"
               "  key: n1.key\n"
               "  ca: ca.pem\n",
               7, "tls.cert is empty; give the path of a PEM file");
  expect_error(ONE_KEYSPACE
               "tls:\n"
               "  cert: n1.pem\n"
               "  key: n1.key\n"
               "  ca: ca.pem\n"
               "  client_auth: maybe\n",
               10, "tls.client_auth is 'maybe'; use require or optional");
  expect_error(ONE_KEYSPACE
               "tls: { cert: n1.pem, key: n1.key, ca: ca.pem, crl: x.pem }\n",
               6, "unknown field 'crl' in the tls section");
}
END_TEST

START_TEST(tokens_are_checked) {
  expect_error(ONE_KEYSPACE
               "tokens:\n"
               "  - { name: app, secret: 0123456789abcdef, read: [default] }\n",
               6, "tokens need tls: without it bearer tokens would cross the network in the "
                  "clear; add a tls section");
  expect_error(TWO_KEYSPACES_TLS
               "tokens: []\n",
               8, "the tokens list is empty; define a token, or remove the list to ask for "
                  "none");
  expect_error(TWO_KEYSPACES_TLS
               "tokens:\n"
               "  - { secret: 0123456789abcdef, read: [default] }\n",
               9, "a token is missing the required field 'name'");
  expect_error(TWO_KEYSPACES_TLS
               "tokens:\n"
               "  - { name: app, read: [default] }\n",
               9, "token 'app' has no secret; give secret or secret_file");
  expect_error(TWO_KEYSPACES_TLS
               "tokens:\n"
               "  - name: app\n"
               "    secret: 0123456789abcdef\n"
               "    secret_file: app.token\n"
               "    read: [default]\n",
               11, "token 'app' has both secret and secret_file; give one");
  expect_error(TWO_KEYSPACES_TLS
               "tokens:\n"
               "  - { name: app, secret: short, read: [default] }\n",
               9, "token 'app' secret is 5 bytes; use at least 16 (openssl rand -hex 16 makes "
                  "one)");
  expect_error(TWO_KEYSPACES_TLS
               "tokens:\n"
               "  - { name: app, secret: \"0123456789 abcdef\", read: [default] }\n",
               9, "token 'app' secret has a space or a byte that is not printable ASCII; it "
                  "travels in an HTTP header");
  expect_error(TWO_KEYSPACES_TLS
               "tokens:\n"
               "  - { name: app, secret_file: /nonexistent/app.token, read: [default] }\n",
               9, "token 'app' secret_file '/nonexistent/app.token' cannot be read: No such "
                  "file or directory");
  expect_error(TWO_KEYSPACES_TLS
               "tokens:\n"
               "  - { name: app, secret: 0123456789abcdef, read: [default, orders] }\n",
               9, "token 'app' read names keyspace 'orders', which is not defined");
  expect_error(TWO_KEYSPACES_TLS
               "tokens:\n"
               "  - { name: app, secret: 0123456789abcdef, write: default }\n",
               9, "token 'app' write must be a list of keyspaces, like [default], or [\"*\"] "
                  "for every keyspace");
  expect_error(TWO_KEYSPACES_TLS
               "tokens:\n"
               "  - { name: app, secret: 0123456789abcdef, admin: sometimes }\n",
               9, "admin is 'sometimes'; it must be true or false");
  expect_error(TWO_KEYSPACES_TLS
               "tokens:\n"
               "  - { name: app, secret: 0123456789abcdef, read: [], admin: false }\n",
               9, "token 'app' has no role; give it read or write keyspaces, or admin: true");
  expect_error(TWO_KEYSPACES_TLS
               "tokens:\n"
               "  - { name: app, secret: 0123456789abcdef, read: [default] }\n"
               "  - { name: app, secret: 0123456789abcdefg, read: [default] }\n",
               10, "token name 'app' is used twice (first at line 9)");
  expect_error(TWO_KEYSPACES_TLS
               "tokens:\n"
               "  - { name: app, secret: 0123456789abcdef, read: [default] }\n"
               "  - { name: ops, secret: 0123456789abcdef, admin: true }\n",
               10, "token 'ops' has the same secret as token 'app' (line 9); each token needs "
                  "its own");
  expect_error(TWO_KEYSPACES_TLS
               "tokens:\n"
               "  - { name: app, secret: 0123456789abcdef, roles: [read] }\n",
               9, "unknown field 'roles' in a token");
}
END_TEST

Suite *config_suite(void) {
  Suite *s = suite_create("config");
  TCase *good = tcase_create("good");
  tcase_add_test(good, repo_configs_load);
  tcase_add_test(good, omitted_fields_get_defaults);
  tcase_add_test(good, every_option_is_read);
  tcase_add_test(good, lookups_find_nodes_keyspaces_and_limits);
  tcase_add_test(good, conflict_options_are_read);
  tcase_add_test(good, tls_and_tokens_are_read);
  suite_add_tcase(s, good);
  TCase *bad = tcase_create("errors");
  tcase_add_test(bad, unreadable_files_are_reported);
  tcase_add_test(bad, yaml_errors_have_lines);
  tcase_add_test(bad, unknown_fields_are_rejected);
  tcase_add_test(bad, wrong_shapes_and_numbers_are_rejected);
  tcase_add_test(bad, missing_required_fields_are_rejected);
  tcase_add_test(bad, duplicates_are_rejected);
  tcase_add_test(bad, bad_addresses_are_rejected);
  tcase_add_test(bad, partitions_must_be_a_power_of_two);
  tcase_add_test(bad, phi_threshold_must_be_a_number_in_range);
  tcase_add_test(bad, durations_must_be_whole_milliseconds_in_range);
  tcase_add_test(bad, bad_names_are_rejected);
  tcase_add_test(bad, too_many_of_anything_is_rejected);
  tcase_add_test(bad, replication_must_fit_the_nodes);
  tcase_add_test(bad, levels_must_be_known_and_possible);
  tcase_add_test(bad, keyspace_limits_are_enforced);
  tcase_add_test(bad, conflict_options_are_checked);
  tcase_add_test(bad, tls_section_is_checked);
  tcase_add_test(bad, tokens_are_checked);
  suite_add_tcase(s, bad);
  return s;
}
