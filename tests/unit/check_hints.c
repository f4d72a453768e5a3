/* check_hints.c: hinted handoff (coordinator/hints.h) on the memory store. n1 keeps hints
 * for n2 and n3 in a kv_hints_t of its own (the fixture is bare: no coordinators), hands them
 * over through the fixture's transport, and the test answers the handoffs itself. A restart
 * is a crash of n1's process and an open on the same memory disk. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture_cluster.h"
#include "hints.h"

#define T0 UINT64_C(1000000) /* fake monotonic start: 1 s, in microseconds */
#define TARGET 2u            /* n3: the node most tests keep hints for */

static fx_cluster_t cl; /* ~60 KiB of config: off the stack */
static kv_hints_t hints;

static void hints_open(uint64_t bytes_max, uint32_t rate_per_s) {
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_int_eq(kv_hints_init(&hints, cl.nodes[0].node, cl.cfg.node_count, bytes_max,
                                 rate_per_s, &st), KV_OK);
}

static void setup(void) {
  fx_config(&cl, 3);
  fx_start(&cl, true, NULL);
}

static void teardown(void) {
  kv_hints_deinit(&hints);
  fx_stop(&cl);
}

/* ---- helpers ------------------------------------------------------------------------ */

static const uint8_t *u8(const char *key) { return (const uint8_t *)key; }

/* A write n1 took whose copy for target did not arrive: n1's record, kept as a hint. */
static void hint_for(uint32_t target, const char *key, const char *value) {
  fx_local_put(&cl, 0, key, value, NULL, NULL);
  kv_hints_add(&hints, target, FX_KEYSPACE, u8(key), strlen(key));
}

static kv_hint_stats_t stats(uint32_t target) {
  kv_hint_stats_t s;
  kv_hints_stats(&hints, target, &s);
  return s;
}

/* The hint of key kept for target (malloc'd; NULL when none). */
static uint8_t *hint_of(uint32_t target, const char *key, size_t *bytes) {
  uint8_t *rec;
  kv_status_t st;
  ck_assert_int_eq(kv_hints_read(&hints, target, FX_KEYSPACE, u8(key), strlen(key), &rec, bytes,
                                 &st), KV_OK);
  return rec;
}

static bool has_hint(uint32_t target, const char *key) {
  size_t bytes;
  uint8_t *rec = hint_of(target, key, &bytes);
  free(rec);
  return rec != NULL;
}

/* Whether the hint of key for target is n1's record of it, byte for byte. */
static bool hint_is_record(uint32_t target, const char *key) {
  size_t hb, rb;
  uint8_t *h = hint_of(target, key, &hb), *r = fx_record(&cl, 0, key, &rb);
  bool same = h && r && hb == rb && memcmp(h, r, hb) == 0;
  free(h);
  free(r);
  return same;
}

static size_t record_bytes(uint32_t node, const char *key) {
  size_t bytes;
  free(fx_record(&cl, node, key, &bytes));
  return bytes;
}

static void tick(uint64_t now_us) { kv_hints_tick(&hints, &cl.nodes[0].out, now_us); }

/* The handoffs sent since the last call: their ids into ids[] (up to max), checked to be
 * durable replica writes to target of the hint as it is stored. */
static uint32_t handoffs(uint32_t target, uint64_t *ids, uint32_t max) {
  uint32_t n = 0;
  fx_msg_t *q;
  while ((q = fx_take(&cl)) != NULL) {
    ck_assert_uint_eq(q->from, 0);
    ck_assert_uint_eq(q->to, target);
    ck_assert_int_eq(q->m.kind, KV_MSG_WRITE);
    ck_assert(q->m.durable);
    ck_assert_uint_eq(q->m.hint_for, KV_NODE_NONE);
    ck_assert(q->m.id & KV_HINT_ID_BIT);
    char key[64];
    ck_assert_uint_lt(q->m.key_bytes, sizeof key);
    memcpy(key, q->m.key, q->m.key_bytes);
    key[q->m.key_bytes] = '\0';
    size_t bytes;
    uint8_t *h = hint_of(target, key, &bytes);
    ck_assert_ptr_nonnull(h);
    ck_assert_uint_eq(bytes, q->m.rec_bytes);
    ck_assert_mem_eq(h, q->m.rec, bytes);
    free(h);
    if (n < max) ids[n] = q->m.id;
    n++;
    fx_msg_free(q);
  }
  return n;
}

/* ---- keeping hints ---------------------------------------------------------------------- */

START_TEST(a_hint_is_the_record_as_the_node_holds_it) {
  hints_open(KV_HINT_BYTES_DEFAULT, KV_HINT_RATE_DEFAULT);
  hint_for(TARGET, "k", "v1");
  ck_assert(hint_is_record(TARGET, "k"));
  kv_hint_stats_t s = stats(TARGET);
  ck_assert_uint_eq(s.pending, 1);
  ck_assert_uint_eq(s.bytes, 1 + record_bytes(0, "k"));
  ck_assert_uint_eq(s.dropped, 0);
  /* Kept for that target only. */
  ck_assert(!has_hint(1, "k"));
  ck_assert_uint_eq(stats(1).pending, 0);
  /* The same hint again replaces itself: still one. */
  kv_hints_add(&hints, TARGET, FX_KEYSPACE, u8("k"), 1);
  ck_assert_uint_eq(stats(TARGET).pending, 1);
  ck_assert_uint_eq(stats(TARGET).bytes, s.bytes);
  /* A key this node holds no record of leaves nothing to hand over: counted as dropped. */
  kv_hints_add(&hints, TARGET, FX_KEYSPACE, u8("nothing"), 7);
  ck_assert(!has_hint(TARGET, "nothing"));
  ck_assert_uint_eq(stats(TARGET).pending, 1);
  ck_assert_uint_eq(stats(TARGET).dropped, 1);
}
END_TEST

START_TEST(a_newer_write_supersedes_the_hint) {
  hints_open(KV_HINT_BYTES_DEFAULT, KV_HINT_RATE_DEFAULT);
  hint_for(TARGET, "k", "v1");
  size_t first = record_bytes(0, "k");
  /* A second version of the key (concurrent with the first: no context): the record grows,
   * and the hint is the whole record now, not the second write alone. */
  hint_for(TARGET, "k", "second");
  ck_assert(hint_is_record(TARGET, "k"));
  ck_assert_uint_eq(fx_siblings(&cl, 0, "k", NULL), 2);
  ck_assert_uint_gt(record_bytes(0, "k"), first);
  kv_hint_stats_t s = stats(TARGET);
  ck_assert_uint_eq(s.pending, 1);
  ck_assert_uint_eq(s.bytes, 1 + record_bytes(0, "k"));
}
END_TEST

START_TEST(hints_past_the_byte_limit_are_dropped_and_counted) {
  fx_local_put(&cl, 0, "k1", "aaaa", NULL, NULL);
  fx_local_put(&cl, 0, "k2", "bbbb", NULL, NULL);
  fx_local_put(&cl, 0, "k3", "cccc", NULL, NULL);
  uint64_t room = 2 + record_bytes(0, "k1") + 2 + record_bytes(0, "k2");
  hints_open(room, KV_HINT_RATE_DEFAULT);
  kv_hints_add(&hints, TARGET, FX_KEYSPACE, u8("k1"), 2);
  kv_hints_add(&hints, TARGET, FX_KEYSPACE, u8("k2"), 2);
  kv_hint_stats_t s = stats(TARGET);
  ck_assert_uint_eq(s.pending, 2);
  ck_assert_uint_eq(s.bytes, room);
  ck_assert_uint_eq(s.dropped, 0);
  /* Full: a third key is not stored, only counted. */
  kv_hints_add(&hints, TARGET, FX_KEYSPACE, u8("k3"), 2);
  ck_assert(!has_hint(TARGET, "k3"));
  s = stats(TARGET);
  ck_assert_uint_eq(s.pending, 2);
  ck_assert_uint_eq(s.bytes, room);
  ck_assert_uint_eq(s.dropped, 1);
  /* The room is per target: n2 has all of its own. */
  kv_hints_add(&hints, 1, FX_KEYSPACE, u8("k3"), 2);
  ck_assert(has_hint(1, "k3"));
  ck_assert_uint_eq(stats(1).pending, 1);
  ck_assert_uint_eq(stats(1).dropped, 0);
  /* Replacing a hint counts only the difference: the same record again fits... */
  kv_hints_add(&hints, TARGET, FX_KEYSPACE, u8("k1"), 2);
  ck_assert_uint_eq(stats(TARGET).dropped, 1);
  /* ... a grown one does not, and the older hint stays as it was. */
  size_t was;
  uint8_t *old = hint_of(TARGET, "k1", &was);
  fx_local_put(&cl, 0, "k1", "a longer value", NULL, NULL);
  kv_hints_add(&hints, TARGET, FX_KEYSPACE, u8("k1"), 2);
  s = stats(TARGET);
  ck_assert_uint_eq(s.dropped, 2);
  ck_assert_uint_eq(s.bytes, room);
  size_t now_bytes;
  uint8_t *now = hint_of(TARGET, "k1", &now_bytes);
  ck_assert_uint_eq(now_bytes, was);
  ck_assert_mem_eq(now, old, was);
  free(old);
  free(now);
  /* A fallback's merge past the room is refused with the sentence, and counted. */
  uint8_t *rec;
  size_t rec_bytes;
  fx_local_put(&cl, 1, "k4", "dddd", &rec, &rec_bytes);
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_int_eq(kv_hints_merge(&hints, TARGET, FX_KEYSPACE, u8("k4"), 2, rec, rec_bytes, &st),
                   KV_EBUSY);
  char want[256];
  snprintf(want, sizeof want,
           "no room for the hint: hints for the node would take %llu bytes, past their room of "
           "%llu; the key is left to anti-entropy",
           (unsigned long long)(room + 2 + rec_bytes), (unsigned long long)room);
  ck_assert_str_eq(st.msg, want);
  ck_assert_uint_eq(stats(TARGET).dropped, 3);
  ck_assert(!has_hint(TARGET, "k4"));
  free(rec);
}
END_TEST

START_TEST(a_fallback_merges_what_it_is_sent_into_one_hint) {
  hints_open(KV_HINT_BYTES_DEFAULT, KV_HINT_RATE_DEFAULT);
  /* Two versions minted on two other nodes: concurrent, so both are kept. */
  uint8_t *a, *b;
  size_t a_bytes, b_bytes;
  fx_local_put(&cl, 1, "k", "from-n2", &a, &a_bytes);
  fx_local_put(&cl, 2, "k", "from-n3", &b, &b_bytes);
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_int_eq(kv_hints_merge(&hints, 1, FX_KEYSPACE, u8("k"), 1, a, a_bytes, &st), KV_OK);
  ck_assert_int_eq(kv_hints_merge(&hints, 1, FX_KEYSPACE, u8("k"), 1, b, b_bytes, &st), KV_OK);
  ck_assert_int_eq(kv_hints_merge(&hints, 1, FX_KEYSPACE, u8("k"), 1, a, a_bytes, &st), KV_OK);
  size_t bytes;
  uint8_t *h = hint_of(1, "k", &bytes);
  kv_dvv_t obj;
  ck_assert_int_eq(kv_dvv_decode(h, bytes, &obj, &st), KV_OK);
  ck_assert_uint_eq(obj.sib_count, 2);
  kv_dvv_deinit(&obj);
  ck_assert_uint_eq(stats(1).pending, 1);
  ck_assert_uint_eq(stats(1).bytes, 1 + bytes);
  /* A local read shows it, whatever its target. */
  kv_dvv_t held;
  kv_dvv_init(&held);
  bool found;
  ck_assert_int_eq(kv_hints_merge_held(&hints, FX_KEYSPACE, u8("k"), 1, &held, &found, &st),
                   KV_OK);
  ck_assert(found);
  ck_assert_uint_eq(held.sib_count, 2);
  kv_dvv_deinit(&held);
  /* A record that does not decode is refused and changes nothing. */
  const uint8_t junk[] = {0xff, 0xff, 0xff};
  ck_assert_int_eq(kv_hints_merge(&hints, 1, FX_KEYSPACE, u8("k"), 1, junk, sizeof junk, &st),
                   KV_ECORRUPT);
  ck_assert_uint_eq(stats(1).pending, 1);
  ck_assert_uint_eq(stats(1).bytes, 1 + bytes);
  free(h);
  free(a);
  free(b);
}
END_TEST

/* ---- handing hints over ------------------------------------------------------------------ */

START_TEST(delivery_is_paced_at_the_rate) {
  /* 100 a second: at most a tenth of a second's worth (10) banked. */
  hints_open(KV_HINT_BYTES_DEFAULT, 100);
  char key[8];
  for (uint32_t i = 0; i < 25; i++) {
    snprintf(key, sizeof key, "k%02u", i);
    hint_for(TARGET, key, "v");
  }
  uint64_t ids[16];
  /* A target believed down is sent nothing, whatever the tokens. */
  cl.down[TARGET] = true;
  tick(T0);
  ck_assert_uint_eq(handoffs(TARGET, ids, 16), 0);
  cl.down[TARGET] = false;
  tick(T0 + 1);
  ck_assert_uint_eq(handoffs(TARGET, ids, 16), 10);
  /* A target's next round waits for this one's answers. */
  tick(T0 + 100001);
  ck_assert_uint_eq(handoffs(TARGET, NULL, 0), 0);
  for (uint32_t i = 0; i < 10; i++) kv_hints_answer(&hints, ids[i], KV_OK);
  ck_assert_uint_eq(stats(TARGET).pending, 15);
  ck_assert_uint_eq(stats(TARGET).delivered, 10);
  /* The tokens banked while waiting (capped at 10) are spent now. */
  tick(T0 + 100001);
  uint32_t n = handoffs(TARGET, ids, 16);
  ck_assert_uint_eq(n, 10);
  for (uint32_t i = 0; i < n; i++) kv_hints_answer(&hints, ids[i], KV_OK);
  /* 30 ms at 100 a second: 3. */
  tick(T0 + 130001);
  n = handoffs(TARGET, ids, 16);
  ck_assert_uint_eq(n, 3);
  for (uint32_t i = 0; i < n; i++) kv_hints_answer(&hints, ids[i], KV_OK);
  /* 5 ms: half a token, nothing. */
  tick(T0 + 135001);
  ck_assert_uint_eq(handoffs(TARGET, NULL, 0), 0);
  /* Enough for the last two. */
  tick(T0 + 200001);
  n = handoffs(TARGET, ids, 16);
  ck_assert_uint_eq(n, 2);
  for (uint32_t i = 0; i < n; i++) kv_hints_answer(&hints, ids[i], KV_OK);
  kv_hint_stats_t s = stats(TARGET);
  ck_assert_uint_eq(s.pending, 0);
  ck_assert_uint_eq(s.bytes, 0);
  ck_assert_uint_eq(s.delivered, 25);
}
END_TEST

START_TEST(a_hint_is_removed_only_after_its_ack) {
  hints_open(KV_HINT_BYTES_DEFAULT, KV_HINT_RATE_DEFAULT);
  hint_for(TARGET, "k", "v");
  tick(T0);
  /* Sent, with the record, and still kept while the ack is awaited. */
  fx_msg_t *q = fx_take(&cl);
  ck_assert_ptr_nonnull(q);
  ck_assert_uint_eq(q->to, TARGET);
  uint64_t first = q->m.id;
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_int_eq(kv_node_merge(cl.nodes[TARGET].node, FX_KEYSPACE, q->m.key, q->m.key_bytes,
                                 q->m.rec, q->m.rec_bytes, &st), KV_OK);
  ck_assert(fx_same_record(&cl, 0, TARGET, "k"));
  fx_msg_free(q);
  ck_assert(has_hint(TARGET, "k"));
  ck_assert_uint_eq(stats(TARGET).pending, 1);
  /* A failed handoff keeps the hint for a later round. */
  kv_hints_answer(&hints, first, KV_EUNAVAILABLE);
  ck_assert(has_hint(TARGET, "k"));
  ck_assert_uint_eq(stats(TARGET).pending, 1);
  ck_assert_uint_eq(stats(TARGET).delivered, 0);
  uint64_t ids[2];
  tick(T0 + 1000000);
  ck_assert_uint_eq(handoffs(TARGET, ids, 2), 1);
  ck_assert_uint_ne(ids[0], first);
  /* An ack for the handoff that failed is stale: it removes nothing. */
  kv_hints_answer(&hints, first, KV_OK);
  ck_assert(has_hint(TARGET, "k"));
  ck_assert_uint_eq(stats(TARGET).delivered, 0);
  /* The ack of the handoff in flight removes it. */
  kv_hints_answer(&hints, ids[0], KV_OK);
  ck_assert(!has_hint(TARGET, "k"));
  kv_hint_stats_t s = stats(TARGET);
  ck_assert_uint_eq(s.pending, 0);
  ck_assert_uint_eq(s.bytes, 0);
  ck_assert_uint_eq(s.delivered, 1);
  /* A duplicate of it changes nothing. */
  kv_hints_answer(&hints, ids[0], KV_OK);
  ck_assert_uint_eq(stats(TARGET).delivered, 1);
  tick(T0 + 2000000);
  ck_assert_uint_eq(handoffs(TARGET, NULL, 0), 0);
}
END_TEST

START_TEST(an_unanswered_handoff_is_given_up_and_sent_again) {
  hints_open(KV_HINT_BYTES_DEFAULT, KV_HINT_RATE_DEFAULT);
  hint_for(TARGET, "k", "v");
  uint64_t ids[2];
  tick(T0);
  ck_assert_uint_eq(handoffs(TARGET, ids, 2), 1);
  uint64_t late = ids[0];
  /* Unanswered just short of the deadline: still waiting, nothing resent. */
  tick(T0 + KV_TIMEOUT_MS_DEFAULT * 1000ull - 1);
  ck_assert_uint_eq(handoffs(TARGET, NULL, 0), 0);
  /* Past it: given up, and the next round sends the hint again. */
  tick(T0 + KV_TIMEOUT_MS_DEFAULT * 1000ull);
  ck_assert_uint_eq(handoffs(TARGET, ids, 2), 1);
  kv_hints_answer(&hints, late, KV_OK); /* the given-up one's ack comes at last: ignored */
  ck_assert(has_hint(TARGET, "k"));
  ck_assert_uint_eq(stats(TARGET).delivered, 0);
  kv_hints_answer(&hints, ids[0], KV_OK);
  ck_assert(!has_hint(TARGET, "k"));
  ck_assert_uint_eq(stats(TARGET).delivered, 1);
}
END_TEST

START_TEST(an_ack_for_a_replaced_hint_keeps_the_newer_one) {
  hints_open(KV_HINT_BYTES_DEFAULT, KV_HINT_RATE_DEFAULT);
  hint_for(TARGET, "k", "v1");
  uint64_t ids[2];
  tick(T0);
  ck_assert_uint_eq(handoffs(TARGET, ids, 2), 1);
  /* A newer write while the older hint is in flight replaces it... */
  hint_for(TARGET, "k", "v2");
  ck_assert(hint_is_record(TARGET, "k"));
  /* ... and the older hint's ack does not remove the newer one. */
  kv_hints_answer(&hints, ids[0], KV_OK);
  ck_assert(hint_is_record(TARGET, "k"));
  kv_hint_stats_t s = stats(TARGET);
  ck_assert_uint_eq(s.pending, 1);
  ck_assert_uint_eq(s.bytes, 1 + record_bytes(0, "k"));
  ck_assert_uint_eq(s.delivered, 0);
  /* The newer one goes in the next round (handoffs checks it carries the newer record). */
  tick(T0 + 1000);
  ck_assert_uint_eq(handoffs(TARGET, ids, 2), 1);
  kv_hints_answer(&hints, ids[0], KV_OK);
  ck_assert(!has_hint(TARGET, "k"));
  ck_assert_uint_eq(stats(TARGET).delivered, 1);
}
END_TEST

/* ---- restarts ---------------------------------------------------------------------------- */

/* n1's process ends and a new one starts on the same disk, with its own kv_hints_t. */
static void restart(bool power_loss) {
  kv_hints_deinit(&hints);
  fx_crash(&cl, 0, power_loss);
  fx_open(&cl, 0);
}

START_TEST(hints_survive_a_restart) {
  hints_open(KV_HINT_BYTES_DEFAULT, KV_HINT_RATE_DEFAULT);
  hint_for(TARGET, "a", "1");
  hint_for(TARGET, "b", "2");
  hint_for(TARGET, "c", "3");
  hint_for(1, "c", "3");
  hint_for(TARGET, "d", "4");
  kv_hints_answer(&hints, KV_HINT_ID_BIT, KV_OK); /* nothing in flight: ignored */
  kv_hint_stats_t n3 = stats(TARGET), n2 = stats(1);
  ck_assert_uint_eq(n3.pending, 4);
  restart(false); /* a crash keeps every write (store.c note 5) */
  hints_open(KV_HINT_BYTES_DEFAULT, KV_HINT_RATE_DEFAULT);
  kv_hint_stats_t s = stats(TARGET);
  ck_assert_uint_eq(s.pending, n3.pending);
  ck_assert_uint_eq(s.bytes, n3.bytes);
  ck_assert_uint_eq(stats(1).pending, n2.pending);
  ck_assert_uint_eq(stats(1).bytes, n2.bytes);
  ck_assert_uint_eq(stats(0).pending, 0);
  /* The new process hands them over. */
  uint64_t ids[8];
  cl.down[1] = true; /* n2's stay for later */
  tick(T0);
  ck_assert_uint_eq(handoffs(TARGET, ids, 8), 4);
  for (uint32_t i = 0; i < 4; i++) kv_hints_answer(&hints, ids[i], KV_OK);
  ck_assert_uint_eq(stats(TARGET).pending, 0);
  ck_assert_uint_eq(stats(TARGET).delivered, 4);
  ck_assert_uint_eq(stats(1).pending, 1);
}
END_TEST

START_TEST(a_power_loss_keeps_only_the_synced_hints) {
  hints_open(KV_HINT_BYTES_DEFAULT, KV_HINT_RATE_DEFAULT);
  hint_for(TARGET, "synced", "1");
  fx_sync(&cl, 0, T0);
  hint_for(TARGET, "unsynced", "2");
  ck_assert_uint_eq(stats(TARGET).pending, 2);
  size_t synced_bytes = 6 + record_bytes(0, "synced");
  restart(true);
  hints_open(KV_HINT_BYTES_DEFAULT, KV_HINT_RATE_DEFAULT);
  ck_assert(has_hint(TARGET, "synced"));
  ck_assert(!has_hint(TARGET, "unsynced"));
  kv_hint_stats_t s = stats(TARGET);
  ck_assert_uint_eq(s.pending, 1);
  ck_assert_uint_eq(s.bytes, synced_bytes);
  /* The write it stood for went with it. */
  ck_assert_uint_eq(record_bytes(0, "unsynced"), 0);
}
END_TEST

Suite *hints_suite(void) {
  Suite *s = suite_create("hints");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, a_hint_is_the_record_as_the_node_holds_it);
  tcase_add_test(tc, a_newer_write_supersedes_the_hint);
  tcase_add_test(tc, hints_past_the_byte_limit_are_dropped_and_counted);
  tcase_add_test(tc, a_fallback_merges_what_it_is_sent_into_one_hint);
  tcase_add_test(tc, delivery_is_paced_at_the_rate);
  tcase_add_test(tc, a_hint_is_removed_only_after_its_ack);
  tcase_add_test(tc, an_unanswered_handoff_is_given_up_and_sent_again);
  tcase_add_test(tc, an_ack_for_a_replaced_hint_keeps_the_newer_one);
  tcase_add_test(tc, hints_survive_a_restart);
  tcase_add_test(tc, a_power_loss_keeps_only_the_synced_hints);
  suite_add_tcase(s, tc);
  return s;
}
