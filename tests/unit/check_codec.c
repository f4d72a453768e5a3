/* check_codec.c: the core's messages on the peer wire (kvnode/peer_codec.h): each kind packs
 * and views back as it was, node indexes become ids and back, and a message naming a node
 * outside the cluster, or too many, or no body, is refused with its sentence. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peer_codec.h"

static kv_config_t cfg;

static void codec_setup(void) {
  memset(&cfg, 0, sizeof cfg);
  cfg.node_count = 3;
  for (uint32_t i = 0; i < cfg.node_count; i++)
    snprintf(cfg.nodes[i].id, sizeof cfg.nodes[i].id, "n%u", i + 1);
}

/* Packs m, unpacks the bytes and views them: what a receiving node would see. The caller
 * frees *pm (tunekv__peer__peer_message__free_unpacked). */
static kv_err round_trip(const kv_msg_t *m, Tunekv__Peer__PeerMessage **pm, kv_msg_t *out,
                         kv_relay_target_t *relay, kv_status_t *st) {
  uint8_t *bytes;
  size_t len;
  ck_assert_int_eq(kv_peer_msg_pack(&cfg, m, &bytes, &len, st), KV_OK);
  *pm = tunekv__peer__peer_message__unpack(NULL, len, bytes);
  free(bytes);
  ck_assert_ptr_nonnull(*pm);
  return kv_peer_msg_view(&cfg, *pm, out, relay, st);
}

START_TEST(a_forwarders_write_comes_back_as_it_left) {
  kv_relay_target_t targets[2] = {{.node = 1, .id = 11}, {.node = 2, .id = 12}};
  kv_msg_t m = kv_msg_write(7, "default", (const uint8_t *)"k", 1, (const uint8_t *)"rec", 3,
                            true);
  m.relay = targets;
  m.relay_count = 2;
  m.relay_wait_ms = 250;
  Tunekv__Peer__PeerMessage *pm;
  kv_msg_t v;
  kv_relay_target_t relay[KV_REPLICAS_MAX];
  kv_status_t st;
  ck_assert_int_eq(round_trip(&m, &pm, &v, relay, &st), KV_OK);
  ck_assert_int_eq(v.kind, KV_MSG_WRITE);
  ck_assert_uint_eq(v.id, 7);
  ck_assert_str_eq(v.keyspace, "default");
  ck_assert_uint_eq(v.key_bytes, 1);
  ck_assert_mem_eq(v.rec, "rec", 3);
  ck_assert(v.durable);
  ck_assert_uint_eq(v.hint_for, KV_NODE_NONE);
  ck_assert_uint_eq(v.relay_count, 2);
  ck_assert_uint_eq(v.relay[1].node, 2);
  ck_assert_uint_eq(v.relay[1].id, 12);
  ck_assert_uint_eq(v.relay_wait_ms, 250);
  tunekv__peer__peer_message__free_unpacked(pm, NULL);
}
END_TEST

START_TEST(a_fallbacks_read_a_tree_request_and_a_reap_come_back) {
  Tunekv__Peer__PeerMessage *pm;
  kv_msg_t v;
  kv_relay_target_t relay[KV_REPLICAS_MAX];
  kv_status_t st;
  kv_msg_t r = kv_msg_read(8, "default", (const uint8_t *)"k", 1);
  r.hint_for = 2;
  ck_assert_int_eq(round_trip(&r, &pm, &v, relay, &st), KV_OK);
  ck_assert_int_eq(v.kind, KV_MSG_READ);
  ck_assert_uint_eq(v.hint_for, 2);
  tunekv__peer__peer_message__free_unpacked(pm, NULL);

  uint32_t parts[] = {3, 5};
  kv_msg_t t = KV_MSG_INIT(KV_MSG_TREE, 9);
  t.tree = (kv_aae_req_t){.kind = KV_AAE_ASK_SEGMENTS, .keyspace = "default",
                          .partitions = parts, .partition_count = 2};
  ck_assert_int_eq(round_trip(&t, &pm, &v, relay, &st), KV_OK);
  ck_assert_int_eq(v.kind, KV_MSG_TREE);
  ck_assert_int_eq(v.tree.kind, KV_AAE_ASK_SEGMENTS);
  ck_assert_uint_eq(v.tree.partition_count, 2);
  ck_assert_uint_eq(v.tree.partitions[1], 5);
  tunekv__peer__peer_message__free_unpacked(pm, NULL);

  kv_msg_t p = kv_msg_read(10, "default", (const uint8_t *)"k", 1);
  p.kind = KV_MSG_REAP;
  p.rec = (const uint8_t *)"tomb";
  p.rec_bytes = 4;
  p.hints_only = true;
  ck_assert_int_eq(round_trip(&p, &pm, &v, relay, &st), KV_OK);
  ck_assert_int_eq(v.kind, KV_MSG_REAP);
  ck_assert(v.hints_only);
  ck_assert_mem_eq(v.rec, "tomb", 4);
  tunekv__peer__peer_message__free_unpacked(pm, NULL);
}
END_TEST

START_TEST(messages_naming_nodes_outside_the_cluster_are_refused) {
  kv_msg_t v;
  kv_relay_target_t relay[KV_REPLICAS_MAX];
  kv_status_t st;
  Tunekv__Peer__ReplicaWrite w = TUNEKV__PEER__REPLICA_WRITE__INIT;
  Tunekv__Peer__PeerMessage pm = TUNEKV__PEER__PEER_MESSAGE__INIT;
  pm.body_case = TUNEKV__PEER__PEER_MESSAGE__BODY_WRITE;
  pm.write = &w;
  w.hint_for = "n9";
  ck_assert_int_eq(kv_peer_msg_view(&cfg, &pm, &v, relay, &st), KV_EINVAL);
  ck_assert_str_eq(st.msg, "hint_for names node 'n9', which is not in the cluster");

  w.hint_for = "";
  Tunekv__Peer__Relay r1 = TUNEKV__PEER__RELAY__INIT, r2 = TUNEKV__PEER__RELAY__INIT;
  r1.node = "n2";
  r2.node = "n9";
  Tunekv__Peer__Relay *rs[KV_REPLICAS_MAX];
  rs[0] = &r1;
  rs[1] = &r2;
  w.forward_to = rs;
  w.n_forward_to = 2;
  ck_assert_int_eq(kv_peer_msg_view(&cfg, &pm, &v, relay, &st), KV_EINVAL);
  ck_assert_str_eq(st.msg, "forward_to names node 'n9', which is not in the cluster");
  for (uint32_t k = 0; k < KV_REPLICAS_MAX; k++) rs[k] = &r1;
  w.n_forward_to = KV_REPLICAS_MAX;
  ck_assert_int_eq(kv_peer_msg_view(&cfg, &pm, &v, relay, &st), KV_EINVAL);
  ck_assert_str_eq(st.msg, "forward_to names 16 nodes; a region has at most 15 others");

  Tunekv__Peer__PeerMessage empty = TUNEKV__PEER__PEER_MESSAGE__INIT;
  empty.id = 42;
  ck_assert_int_eq(kv_peer_msg_view(&cfg, &empty, &v, relay, &st), KV_EINVAL);
  ck_assert_str_eq(st.msg, "peer message 42 has no body");
}
END_TEST

START_TEST(an_answer_views_its_relays_and_tree_and_a_lost_one_fails) {
  kv_msg_answer_t a;
  kv_peer_answer_scratch_t scratch;
  kv_peer_answer_view(NULL, 5, &a, &scratch);
  ck_assert_uint_eq(a.id, 5);
  ck_assert_int_eq(a.code, KV_EUNAVAILABLE);
  kv_peer_answer_scratch_free(&scratch);

  Tunekv__Peer__PeerAnswer pa = TUNEKV__PEER__PEER_ANSWER__INIT;
  Tunekv__Peer__PeerAnswer out = TUNEKV__PEER__PEER_ANSWER__INIT;
  Tunekv__Peer__PeerAnswer *relayed[] = {&out};
  out.id = 11;
  out.code = 4; /* DEADLINE_EXCEEDED */
  pa.relayed = relayed;
  pa.n_relayed = 1;
  pa.applied_ms = 77;
  uint64_t hashes[] = {1, 2};
  ProtobufCBinaryData keys[] = {{1, (uint8_t *)"a"}, {1, (uint8_t *)"b"}};
  pa.hashes = hashes;
  pa.n_hashes = 2;
  pa.keys = keys;
  pa.n_keys = 2;
  kv_peer_answer_view(&pa, 6, &a, &scratch);
  ck_assert_int_eq(a.code, KV_OK);
  ck_assert_uint_eq(a.applied_ms, 77);
  ck_assert_uint_eq(a.relayed_count, 1);
  ck_assert_uint_eq(a.relayed[0].id, 11);
  ck_assert_int_ne(a.relayed[0].code, KV_OK);
  ck_assert_ptr_nonnull(a.tree);
  ck_assert_uint_eq(a.tree->key_count, 2);
  ck_assert_mem_eq(a.tree->keys[1].data, "b", 1);
  kv_peer_answer_scratch_free(&scratch);
}
END_TEST

Suite *codec_suite(void) {
  Suite *s = suite_create("codec");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, codec_setup, NULL);
  tcase_add_test(tc, a_forwarders_write_comes_back_as_it_left);
  tcase_add_test(tc, a_fallbacks_read_a_tree_request_and_a_reap_come_back);
  tcase_add_test(tc, messages_naming_nodes_outside_the_cluster_are_refused);
  tcase_add_test(tc, an_answer_views_its_relays_and_tree_and_a_lost_one_fails);
  suite_add_tcase(s, tc);
  return s;
}
