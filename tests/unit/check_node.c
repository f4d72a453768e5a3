/* check_node.c: request validation and local writes of kv_node, on a real store.
 * The config is built in code so these tests do not depend on the YAML loader. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aae.h"
#include "hash.h"
#include "node.h"
#include "store.h"

static kv_config_t cfg;
static kv_store_t *store;
static kv_storage_t storage;
static kv_node_t *node;
static char dir[64];

static void node_setup(void) {
  memset(&cfg, 0, sizeof cfg);
  snprintf(cfg.path, sizeof cfg.path, "test.yaml");
  snprintf(cfg.cluster_name, sizeof cfg.cluster_name, "unit");
  cfg.partitions = 16;
  cfg.node_count = 1;
  snprintf(cfg.nodes[0].id, sizeof cfg.nodes[0].id, "n1");
  snprintf(cfg.nodes[0].address, sizeof cfg.nodes[0].address, "127.0.0.1:1");
  snprintf(cfg.nodes[0].region, sizeof cfg.nodes[0].region, "local");
  cfg.keyspace_count = 1;
  kv_keyspace_conf_t *ks = &cfg.keyspaces[0];
  snprintf(ks->name, sizeof ks->name, "default");
  ks->replication_count = 1;
  snprintf(ks->replication[0].region, sizeof ks->replication[0].region, "local");
  ks->replication[0].replicas = 1;
  ks->n = 1;
  ks->read = ks->write = KV_LEVEL_ONE;
  snprintf(ks->handler, sizeof ks->handler, "siblings");
  snprintf(ks->fallback_handler, sizeof ks->fallback_handler, "lww");
  ks->siblings_max = 3;
  ks->key_bytes_max = 8;
  ks->value_bytes_max = 16;
  ks->sloppy_quorum = true;
  snprintf(dir, sizeof dir, "/tmp/tunekv-node-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_int_eq(kv_store_open(dir, &store, &st), KV_OK);
  kv_store_storage(store, &storage);
  ck_assert_int_eq(kv_node_create(&cfg, "n1", &storage, &node, &st), KV_OK);
}

static void node_teardown(void) {
  kv_node_destroy(node);
  kv_store_close(store);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  ck_assert_int_eq(system(cmd), 0);
}

static kv_node_req_t req_for(const char *key, const char *value) {
  kv_node_req_t r = {.keyspace = "default", .key = (const uint8_t *)key,
                     .key_bytes = strlen(key), .level = ""};
  if (value) {
    r.value = (const uint8_t *)value;
    r.value_bytes = strlen(value);
  }
  return r;
}

/* Plans and runs one operation on the node, like the coordinator does for this replica. */
static kv_err node_op(const kv_node_req_t *r, char op, kv_node_result_t *res, kv_status_t *st) {
  kv_node_plan_t plan;
  kv_status_clear(st);
  memset(res, 0, sizeof *res);
  kv_err err = kv_node_plan(node, r, op != 'g', &plan, st);
  if (err != KV_OK) return err;
  if (op == 'p') return kv_node_put(node, r, &plan, 1000, res, st);
  if (op == 'd') return kv_node_delete(node, r, &plan, 1000, res, st);
  return kv_node_get(node, r, &plan, 1000, res, st);
}

/* Puts and returns the kv_err, checking the message when one is expected. */
static kv_err put_expect(const kv_node_req_t *r, kv_err want, const char *msg) {
  kv_node_result_t res;
  kv_status_t st;
  kv_err err = node_op(r, 'p', &res, &st);
  ck_assert_int_eq(err, want);
  if (msg) ck_assert_str_eq(st.msg, msg);
  kv_node_result_free(&res);
  return err;
}

START_TEST(writes_keep_the_anti_entropy_tree) {
  cfg.anti_entropy_interval_ms = 1000;
  kv_node_req_t r = req_for("k", "v");
  put_expect(&r, KV_OK, NULL);
  uint8_t *rec;
  size_t rec_bytes;
  kv_status_t st;
  ck_assert(kv_node_read_record(node, "default", (const uint8_t *)"k", 1, &rec, &rec_bytes,
                                &st) == KV_OK);
  uint64_t hash = kv_hash_key("default", "k", 1);
  uint32_t p = kv_hash_partition(hash, cfg.partitions);
  /* KEYS of the key's segment: the key, with the leaf of the record it holds. */
  uint32_t segment = kv_hash_segment(hash);
  kv_aae_req_t q = {.kind = KV_AAE_ASK_KEYS, .keyspace = "default", .partitions = &p,
                    .partition_count = 1, .segments = &segment, .segment_count = 1};
  kv_aae_answer_t a;
  ck_assert_int_eq(kv_aae_serve(node, &q, &a, &st), KV_OK);
  ck_assert_uint_eq(a.key_count, 1);
  ck_assert_uint_eq(a.keys[0].len, 1);
  ck_assert_uint_eq(a.hashes[0], kv_hash_leaf(hash, rec, rec_bytes));
  kv_aae_answer_free(&a);
  /* SEGMENTS: that leaf is the segment's whole sum; ROOTS: the root of those sums. */
  q.kind = KV_AAE_ASK_SEGMENTS;
  ck_assert_int_eq(kv_aae_serve(node, &q, &a, &st), KV_OK);
  ck_assert_uint_eq(a.hash_count, KV_AAE_SEGMENTS);
  ck_assert_uint_eq(a.hashes[segment], kv_hash_leaf(hash, rec, rec_bytes));
  uint64_t root = kv_hash_root(a.hashes);
  kv_aae_answer_free(&a);
  q.kind = KV_AAE_ASK_ROOTS;
  ck_assert_int_eq(kv_aae_serve(node, &q, &a, &st), KV_OK);
  ck_assert_uint_eq(a.hash_count, 1);
  ck_assert_uint_eq(a.hashes[0], root);
  kv_aae_answer_free(&a);
  free(rec);
}
END_TEST

/* kv_node_reap removes the record only while it is the one the reaper read, and takes its
 * leaf out of the anti-entropy tree with it. */
START_TEST(reap_removes_only_the_record_read) {
  cfg.anti_entropy_interval_ms = 1000;
  kv_node_req_t r = req_for("k", "v");
  put_expect(&r, KV_OK, NULL);
  kv_node_result_t res;
  kv_status_t st;
  kv_node_req_t del = req_for("k", NULL);
  ck_assert_int_eq(node_op(&del, 'd', &res, &st), KV_OK);
  kv_node_result_free(&res);
  uint8_t *tomb;
  size_t tomb_bytes;
  ck_assert_int_eq(kv_node_read_record(node, "default", (const uint8_t *)"k", 1, &tomb,
                                       &tomb_bytes, &st), KV_OK);
  uint64_t hash = kv_hash_key("default", "k", 1);
  uint64_t leaf = kv_hash_leaf(hash, tomb, tomb_bytes);
  /* Written since the read: the record stays. */
  r.value = (const uint8_t *)"new";
  r.value_bytes = 3;
  put_expect(&r, KV_OK, NULL);
  kv_status_clear(&st);
  ck_assert_int_eq(kv_node_reap(node, "default", (const uint8_t *)"k", 1, leaf, &st),
                   KV_EPRECONDITION);
  ck_assert_str_eq(st.msg, "key 'k' in keyspace 'default' was written since the reaper read "
                           "it; its record stays");
  ck_assert_int_eq(node_op(&r, 'g', &res, &st), KV_OK);
  ck_assert_uint_eq(kv_dvv_live_count(&res.object), 2); /* "v" (deleted blind) and "new" */
  kv_node_result_free(&res);
  /* Deleted again and read again: the reap takes it, and a second reap finds nothing. */
  r = req_for("k", NULL);
  ck_assert_int_eq(node_op(&r, 'd', &res, &st), KV_OK);
  kv_node_result_free(&res);
  free(tomb);
  ck_assert_int_eq(kv_node_read_record(node, "default", (const uint8_t *)"k", 1, &tomb,
                                       &tomb_bytes, &st), KV_OK);
  leaf = kv_hash_leaf(hash, tomb, tomb_bytes);
  free(tomb);
  ck_assert_int_eq(kv_node_reap(node, "default", (const uint8_t *)"k", 1, leaf, &st), KV_OK);
  ck_assert_int_eq(kv_node_read_record(node, "default", (const uint8_t *)"k", 1, &tomb,
                                       &tomb_bytes, &st), KV_OK);
  ck_assert_ptr_null(tomb);
  ck_assert_int_eq(kv_node_reap(node, "default", (const uint8_t *)"k", 1, leaf, &st), KV_OK);
  uint32_t p = kv_hash_partition(hash, cfg.partitions), segment = kv_hash_segment(hash);
  kv_aae_req_t q = {.kind = KV_AAE_ASK_KEYS, .keyspace = "default", .partitions = &p,
                    .partition_count = 1, .segments = &segment, .segment_count = 1};
  kv_aae_answer_t a;
  ck_assert_int_eq(kv_aae_serve(node, &q, &a, &st), KV_OK);
  ck_assert_uint_eq(a.key_count, 0);
  kv_aae_answer_free(&a);
}
END_TEST

START_TEST(bad_tree_requests_get_exact_errors) {
  uint32_t p = 3, big = 16, seg = 1024, many[KV_AAE_KEYS_SEGMENTS_MAX + 1] = {0};
  kv_aae_answer_t a;
  kv_status_t st;
  kv_aae_req_t q = {.kind = KV_AAE_ASK_ROOTS, .keyspace = "nope", .partitions = &p,
                    .partition_count = 1};
  ck_assert_int_eq(kv_aae_serve(node, &q, &a, &st), KV_EINVAL);
  ck_assert_str_eq(st.msg, "anti-entropy request for keyspace 'nope', which does not exist here");
  q.keyspace = "default";
  q.partitions = &big;
  ck_assert_int_eq(kv_aae_serve(node, &q, &a, &st), KV_EINVAL);
  ck_assert_str_eq(st.msg, "anti-entropy request for partition 16; the cluster has 16");
  q.partitions = &p;
  q.kind = KV_AAE_ASK_SEGMENTS;
  q.partition_count = 0;
  ck_assert_int_eq(kv_aae_serve(node, &q, &a, &st), KV_EINVAL);
  ck_assert_str_eq(st.msg, "anti-entropy request names 0 partitions; it must name one");
  q.partition_count = 1;
  q.kind = KV_AAE_ASK_KEYS;
  q.segments = &seg;
  q.segment_count = 1;
  ck_assert_int_eq(kv_aae_serve(node, &q, &a, &st), KV_EINVAL);
  ck_assert_str_eq(st.msg, "anti-entropy request for segment 1024; trees have 1024");
  q.segments = many;
  q.segment_count = KV_AAE_KEYS_SEGMENTS_MAX + 1;
  ck_assert_int_eq(kv_aae_serve(node, &q, &a, &st), KV_EINVAL);
  ck_assert_str_eq(st.msg, "anti-entropy request lists 65 segments; at most 64");
}
END_TEST

START_TEST(bad_requests_get_exact_errors) {
  kv_node_req_t r = req_for("k", "v");
  r.keyspace = "nope";
  put_expect(&r, KV_ENOTFOUND, "keyspace 'nope' does not exist");
  r.keyspace = "";
  put_expect(&r, KV_EINVAL, "keyspace is empty");
  r = req_for("", "v");
  put_expect(&r, KV_EINVAL, "key is empty");
  r = req_for("123456789", "v");
  put_expect(&r, KV_EINVAL, "key is 9 bytes; keyspace 'default' allows at most 8");
  r = req_for("k", "12345678901234567");
  put_expect(&r, KV_EINVAL, "value is 17 bytes; keyspace 'default' allows at most 16");
  r = req_for("k", "v");
  r.level = "most";
  put_expect(&r, KV_EINVAL,
             "unknown consistency level 'most'; use one of ONE, TWO, THREE, QUORUM, ALL, ANY, "
             "LOCAL_ONE, LOCAL_QUORUM, EACH_QUORUM");
  r.level = "";
  r.count = 2;
  put_expect(&r, KV_EINVAL, "w is 2 but keyspace 'default' has only N=1 replicas");
  r.count = 0;
  r.timeout_ms = 600001;
  put_expect(&r, KV_EINVAL, "timeout_ms is 600001; the limit is 600000");
  r.timeout_ms = 0;
  r.read_repair = "sometimes";
  kv_node_result_t got;
  kv_status_t got_st;
  ck_assert_int_eq(node_op(&r, 'g', &got, &got_st), KV_EINVAL);
  ck_assert_str_eq(got_st.msg, "read_repair is 'sometimes'; use blocking or async");
  kv_node_result_free(&got);
  r.read_repair = "async";
  ck_assert_int_eq(node_op(&r, 'g', &got, &got_st), KV_OK);
  kv_node_result_free(&got);
  r.read_repair = NULL;
  r.handler = "newest";
  ck_assert_int_eq(node_op(&r, 'g', &got, &got_st), KV_EINVAL);
  ck_assert_str_eq(got_st.msg, "handler 'newest' is unknown; use one of siblings, lww, "
                               "region-priority, set-union, or a plugin:PATH the config names");
  kv_node_result_free(&got);
  put_expect(&r, KV_EINVAL, "handler 'newest' is unknown; use one of siblings, lww, "
                            "region-priority, set-union, or a plugin:PATH the config names");
  r.handler = "lww";
  ck_assert_int_eq(node_op(&r, 'g', &got, &got_st), KV_OK);
  kv_node_result_free(&got);
  r.handler = NULL;
  r.timeout_ms = 0;
  r.context = (const uint8_t *)"\xff\xff\xff";
  r.context_bytes = 3;
  kv_node_result_t res;
  kv_status_t st;
  ck_assert_int_eq(node_op(&r, 'p', &res, &st), KV_EINVAL);
  ck_assert_msg(strncmp(st.msg, "context is malformed", 20) == 0, "%s", st.msg);
  kv_node_result_free(&res);
}
END_TEST

START_TEST(reads_refuse_any_and_big_r) {
  kv_node_req_t r = req_for("k", NULL);
  r.level = "any";
  kv_node_result_t res;
  kv_status_t st;
  ck_assert_int_eq(node_op(&r, 'g', &res, &st), KV_EINVAL);
  ck_assert_str_eq(st.msg, "ANY is a write level; reads need at least ONE");
  kv_node_result_free(&res);
  r.level = "";
  r.count = 3;
  ck_assert_int_eq(node_op(&r, 'g', &res, &st), KV_EINVAL);
  ck_assert_str_eq(st.msg, "r is 3 but keyspace 'default' has only N=1 replicas");
  kv_node_result_free(&res);
}
END_TEST

static uint32_t live_siblings(const char *key, kv_node_result_t *res) {
  kv_node_req_t r = req_for(key, NULL);
  kv_status_t st;
  ck_assert_int_eq(node_op(&r, 'g', res, &st), KV_OK);
  return res->object.sib_count;
}

START_TEST(siblings_context_and_tombstones) {
  kv_node_req_t a = req_for("k", "a"), b = req_for("k", "b");
  put_expect(&a, KV_OK, NULL);
  put_expect(&b, KV_OK, NULL);
  kv_node_result_t got;
  ck_assert_uint_eq(live_siblings("k", &got), 2);
  ck_assert(got.found);
  /* Writing back with the read context replaces both. */
  kv_node_req_t c = req_for("k", "c");
  c.context = got.context;
  c.context_bytes = got.context_bytes;
  put_expect(&c, KV_OK, NULL);
  kv_node_result_free(&got);
  ck_assert_uint_eq(live_siblings("k", &got), 1);
  ck_assert_mem_eq(got.object.sib[0].value, "c", 1);
  /* A delete with that context leaves nothing live, but a context that covers it. */
  kv_node_req_t d = req_for("k", NULL);
  d.context = got.context;
  d.context_bytes = got.context_bytes;
  kv_node_result_t wres;
  kv_status_t st;
  ck_assert_int_eq(node_op(&d, 'd', &wres, &st), KV_OK);
  kv_node_result_free(&wres);
  kv_node_result_free(&got);
  ck_assert_uint_eq(live_siblings("k", &got), 0);
  ck_assert(!got.found);
  ck_assert_uint_gt(got.context_bytes, 0);
  kv_node_result_free(&got);
}
END_TEST

/* The journal's entries, oldest first (malloc'd; free with kv_journal_entries_free). */
static kv_journal_entry_t *journal(uint32_t *n) {
  kv_journal_entry_t *e;
  bool more;
  ck_assert_int_eq(kv_journal_list(kv_node_journal(node), 0, SIZE_MAX, &e, n, &more), KV_OK);
  ck_assert(!more);
  return e;
}

START_TEST(sibling_cap_resolves_with_the_fallback_and_journals) {
  const char *values[] = {"v1", "v2", "v3", "v4"};
  for (int i = 0; i < 4; i++) {
    kv_node_req_t r = req_for("k", values[i]);
    put_expect(&r, KV_OK, NULL);
  }
  /* The fourth put passed siblings_max (3): lww kept the newest, the fourth. */
  kv_node_result_t got;
  ck_assert_uint_eq(live_siblings("k", &got), 1);
  ck_assert_mem_eq(got.object.sib[0].value, "v4", 2);
  kv_node_result_free(&got);
  uint32_t n;
  kv_journal_entry_t *e = journal(&n);
  ck_assert_uint_eq(n, 1);
  ck_assert_str_eq(e[0].handler, "lww");
  ck_assert_str_eq(e[0].reason, "sibling cap");
  ck_assert_uint_eq(e[0].discarded_count, 3);
  for (int i = 0; i < 3; i++) ck_assert_mem_eq(e[0].discarded[i].value, values[i], 2);
  ck_assert_mem_eq(e[0].kept.value, "v4", 2);
  ck_assert(e[0].kept.has_dot);
  kv_journal_entries_free(e, n);
  /* Growing again needs three more concurrent writes; the record never holds four. */
  for (int i = 0; i < 2; i++) {
    kv_node_req_t r = req_for("k", values[i]);
    put_expect(&r, KV_OK, NULL);
  }
  ck_assert_uint_eq(live_siblings("k", &got), 3);
  kv_node_result_free(&got);
}
END_TEST

START_TEST(answers_are_resolved_by_the_request_handler_and_journaled_once) {
  kv_node_req_t a = req_for("k", "a"), b = req_for("k", "b");
  put_expect(&a, KV_OK, NULL);
  put_expect(&b, KV_OK, NULL);
  kv_node_req_t r = req_for("k", NULL);
  r.handler = "lww";
  kv_node_result_t got;
  kv_status_t st;
  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq(node_op(&r, 'g', &got, &st), KV_OK);
    ck_assert_uint_eq(got.object.sib_count, 1);
    ck_assert_mem_eq(got.object.sib[0].value, "b", 1);
    kv_node_result_free(&got);
  }
  uint32_t n;
  kv_journal_entry_t *e = journal(&n);
  ck_assert_uint_eq(n, 1); /* the second read saw the same loss */
  ck_assert_str_eq(e[0].reason, "read");
  ck_assert_uint_eq(e[0].discarded_count, 1);
  ck_assert_mem_eq(e[0].discarded[0].value, "a", 1);
  kv_journal_entries_free(e, n);
  /* The stored state is untouched: the keyspace's handler (siblings) still shows both. */
  ck_assert_uint_eq(live_siblings("k", &got), 2);
  kv_node_result_free(&got);
  /* The answer's context covers the discarded version: writing back replaces both. */
  kv_node_req_t c = req_for("k", "c");
  ck_assert_int_eq(node_op(&r, 'g', &got, &st), KV_OK);
  c.context = got.context;
  c.context_bytes = got.context_bytes;
  put_expect(&c, KV_OK, NULL);
  kv_node_result_free(&got);
  ck_assert_uint_eq(live_siblings("k", &got), 1);
  kv_node_result_free(&got);
}
END_TEST

/* The stored state of key k, decoded. */
static void stored(kv_dvv_t *o) {
  uint8_t *rec;
  size_t rec_bytes;
  kv_status_t st;
  ck_assert_int_eq(kv_node_read_record(node, "default", (const uint8_t *)"k", 1, &rec, &rec_bytes,
                                       &st), KV_OK);
  ck_assert_int_eq(kv_dvv_decode(rec, rec_bytes, o, &st), KV_OK);
  free(rec);
}

START_TEST(a_write_back_is_a_put_whose_context_keeps_the_discarded_out) {
  kv_node_req_t a = req_for("k", "1\n"), b = req_for("k", "2\n");
  put_expect(&a, KV_OK, NULL);
  put_expect(&b, KV_OK, NULL);
  kv_dvv_t before, after;
  stored(&before);
  ck_assert_uint_eq(before.sib_count, 2);
  uint8_t *rec;
  size_t rec_bytes;
  kv_status_t st;
  ck_assert_int_eq(kv_node_resolve_write(node, "default", (const uint8_t *)"k", 1,
                                         kv_conflict_find("set-union"), &before, 2000, &rec,
                                         &rec_bytes, &st), KV_OK);
  ck_assert_ptr_nonnull(rec);
  stored(&after);
  ck_assert_uint_eq(after.sib_count, 1);
  ck_assert_uint_eq(after.sib[0].value_bytes, 4);
  ck_assert_mem_eq(after.sib[0].value, "1\n2\n", 4);
  ck_assert_int_eq(kv_cc_compare(&before.cc, &after.cc), KV_ORDER_BEFORE);
  /* Nothing was lost (a union), so nothing is journaled. */
  uint32_t n;
  kv_journal_entries_free(journal(&n), n);
  ck_assert_uint_eq(n, 0);
  /* The old state merged in again (a stale replica's repair) brings nothing back. */
  free(rec);
  ck_assert_int_eq(kv_dvv_encode(&before, &rec, &rec_bytes), KV_OK);
  ck_assert_int_eq(kv_node_merge(node, "default", (const uint8_t *)"k", 1, rec, rec_bytes, &st),
                   KV_OK);
  free(rec);
  kv_dvv_t again;
  stored(&again);
  ck_assert(kv_dvv_equal(&again, &after));
  /* A second write-back of the resolved state writes nothing. */
  ck_assert_int_eq(kv_node_resolve_write(node, "default", (const uint8_t *)"k", 1,
                                         kv_conflict_find("set-union"), &again, 3000, &rec,
                                         &rec_bytes, &st), KV_OK);
  ck_assert_ptr_null(rec);
  kv_dvv_deinit(&again);
  kv_dvv_deinit(&after);
  kv_dvv_deinit(&before);
}
END_TEST

START_TEST(a_lww_write_back_journals_and_keeps_the_winners_timestamp) {
  kv_node_req_t a = req_for("k", "old"), b = req_for("k", "new");
  put_expect(&a, KV_OK, NULL);
  put_expect(&b, KV_OK, NULL);
  kv_dvv_t before, after;
  stored(&before);
  uint8_t *rec;
  size_t rec_bytes;
  kv_status_t st;
  ck_assert_int_eq(kv_node_resolve_write(node, "default", (const uint8_t *)"k", 1,
                                         kv_conflict_find("lww"), &before, 2000, &rec,
                                         &rec_bytes, &st), KV_OK);
  free(rec);
  stored(&after);
  ck_assert_uint_eq(after.sib_count, 1);
  ck_assert_mem_eq(after.sib[0].value, "new", 3);
  ck_assert_uint_eq(after.sib[0].hlc, before.sib[1].hlc);
  uint32_t n;
  kv_journal_entry_t *e = journal(&n);
  ck_assert_uint_eq(n, 1);
  ck_assert_str_eq(e[0].reason, "write-back");
  ck_assert_uint_eq(e[0].time_ms, 2000);
  ck_assert_mem_eq(e[0].discarded[0].value, "old", 3);
  ck_assert(kv_cc_covers(&after.cc, &e[0].discarded[0].dot));
  kv_journal_entries_free(e, n);
  kv_dvv_deinit(&after);
  kv_dvv_deinit(&before);
}
END_TEST

START_TEST(a_merge_past_the_cap_is_resolved) {
  /* Another replica's state with three siblings, merged into this one's two. */
  kv_dvv_t theirs;
  kv_dvv_init(&theirs);
  kv_cc_t none;
  kv_cc_init(&none);
  kv_status_t st;
  for (int i = 0; i < 3; i++) {
    kv_actor_t x = {.incarnation = 7};
    snprintf(x.node, sizeof x.node, "n%d", i + 2);
    ck_assert_int_eq(kv_dvv_put(&theirs, &x, 0, &none, "t", 1, false, 10 + (uint64_t)i, 16, &st),
                     KV_OK);
  }
  kv_node_req_t a = req_for("k", "a"), b = req_for("k", "b");
  put_expect(&a, KV_OK, NULL);
  put_expect(&b, KV_OK, NULL);
  uint8_t *rec;
  size_t rec_bytes;
  ck_assert_int_eq(kv_dvv_encode(&theirs, &rec, &rec_bytes), KV_OK);
  ck_assert_int_eq(kv_node_merge(node, "default", (const uint8_t *)"k", 1, rec, rec_bytes, &st),
                   KV_OK);
  free(rec);
  kv_dvv_t after;
  stored(&after);
  ck_assert_uint_eq(after.sib_count, 1);
  for (uint32_t i = 0; i < theirs.sib_count; i++) ck_assert(kv_cc_covers(&after.cc, &theirs.sib[i].dot));
  uint32_t n;
  kv_journal_entry_t *e = journal(&n);
  ck_assert_uint_eq(n, 1);
  ck_assert_str_eq(e[0].reason, "sibling cap");
  /* lww kept "b", the newest (the others' timestamps are tiny): "a" and the three "t"s go. */
  ck_assert_mem_eq(e[0].kept.value, "b", 1);
  ck_assert_uint_eq(e[0].discarded_count, 4);
  kv_journal_entries_free(e, n);
  kv_dvv_deinit(&after);
  kv_dvv_deinit(&theirs);
}
END_TEST

START_TEST(values_survive_reopen) {
  kv_node_req_t r = req_for("persist", "yes");
  r.durable = true;
  put_expect(&r, KV_OK, NULL);
  kv_status_t st;
  ck_assert_int_eq(kv_node_sync(node, &st), KV_OK);
  kv_node_destroy(node);
  kv_store_close(store);
  ck_assert_int_eq(kv_store_open(dir, &store, &st), KV_OK);
  kv_store_storage(store, &storage);
  ck_assert_int_eq(kv_node_create(&cfg, "n1", &storage, &node, &st), KV_OK);
  kv_node_result_t got;
  ck_assert_uint_eq(live_siblings("persist", &got), 1);
  ck_assert_mem_eq(got.object.sib[0].value, "yes", 3);
  kv_node_result_free(&got);
}
END_TEST

START_TEST(unknown_node_is_a_config_error) {
  kv_node_t *other;
  kv_status_t st;
  ck_assert_int_eq(kv_node_create(&cfg, "n9", &storage, &other, &st), KV_ECONFIG);
  ck_assert_str_eq(st.msg, "node 'n9' is not in test.yaml");
}
END_TEST

Suite *node_suite(void) {
  Suite *s = suite_create("node");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, node_setup, node_teardown);
  tcase_add_test(tc, bad_requests_get_exact_errors);
  tcase_add_test(tc, reads_refuse_any_and_big_r);
  tcase_add_test(tc, siblings_context_and_tombstones);
  tcase_add_test(tc, sibling_cap_resolves_with_the_fallback_and_journals);
  tcase_add_test(tc, answers_are_resolved_by_the_request_handler_and_journaled_once);
  tcase_add_test(tc, a_write_back_is_a_put_whose_context_keeps_the_discarded_out);
  tcase_add_test(tc, a_lww_write_back_journals_and_keeps_the_winners_timestamp);
  tcase_add_test(tc, a_merge_past_the_cap_is_resolved);
  tcase_add_test(tc, values_survive_reopen);
  tcase_add_test(tc, writes_keep_the_anti_entropy_tree);
  tcase_add_test(tc, bad_tree_requests_get_exact_errors);
  tcase_add_test(tc, reap_removes_only_the_record_read);
  tcase_add_test(tc, unknown_node_is_a_config_error);
  suite_add_tcase(s, tc);
  return s;
}
