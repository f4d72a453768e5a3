/* check_link.c: one peer's link (coordinator/link.h): the bounded queue, the one batch in
 * flight, heartbeats when idle, and liveness from how batches end and from phi. Times are
 * made up: the link reads no clock. */
#include <check.h>
#include <stdint.h>

#include "link.h"

static kv_link_t link;
static uint32_t discarded;

static void discard(void *arg, kv_link_item_t *item) {
  ck_assert_ptr_eq(item->data, arg);
  discarded++;
}

static void setup(void) {
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_int_eq(kv_link_init(&link, &st), KV_OK);
  discarded = 0;
}

static void teardown(void) { kv_link_deinit(&link, discard, &link); }

static void push(uint64_t id) {
  kv_link_item_t item = {.id = id, .data = &link, .bytes = 1};
  ck_assert_int_eq(kv_link_push(&link, &item), KV_OK);
}

/* A batch leaves at now_ms and is answered at done_ms. */
static void round_trip(uint64_t now_ms, uint64_t done_ms) {
  uint32_t count, deadline_ms;
  ck_assert(kv_link_next(&link, now_ms, &count, &deadline_ms));
  kv_link_sent(&link, count, now_ms);
  ck_assert_int_eq(kv_link_done(&link, KV_LINK_ANSWERED, done_ms), KV_LINK_SAME);
}

START_TEST(test_heartbeat_only_when_idle) {
  uint32_t count = 99, deadline_ms = 0;
  ck_assert(link.up);
  ck_assert(!kv_link_next(&link, KV_PEER_HEARTBEAT_MS - 1, &count, &deadline_ms));
  ck_assert(kv_link_next(&link, KV_PEER_HEARTBEAT_MS, &count, &deadline_ms));
  ck_assert_uint_eq(count, 0);
  ck_assert_uint_eq(deadline_ms, KV_PEER_HEARTBEAT_TIMEOUT_MS);
  kv_link_sent(&link, 0, KV_PEER_HEARTBEAT_MS);
  /* One batch in flight at most, however long it takes. */
  ck_assert(!kv_link_next(&link, 10 * KV_PEER_HEARTBEAT_MS, &count, &deadline_ms));
  ck_assert_int_eq(kv_link_done(&link, KV_LINK_ANSWERED, 120), KV_LINK_SAME);
  /* The next heartbeat is timed from the last batch sent. */
  ck_assert(!kv_link_next(&link, 2 * KV_PEER_HEARTBEAT_MS - 1, &count, &deadline_ms));
  ck_assert(kv_link_next(&link, 2 * KV_PEER_HEARTBEAT_MS, &count, &deadline_ms));
}
END_TEST

START_TEST(test_messages_leave_at_once_then_batch) {
  uint32_t count, deadline_ms;
  push(1);
  ck_assert(kv_link_next(&link, 5, &count, &deadline_ms));
  ck_assert_uint_eq(count, 1);
  ck_assert_uint_eq(deadline_ms, KV_TIMEOUT_MS_DEFAULT);
  ck_assert_uint_eq(link.batch[0].id, 1);
  /* Not taken yet: nothing changes until kv_link_sent. */
  ck_assert_uint_eq(link.count, 1);
  kv_link_sent(&link, count, 5);
  ck_assert_uint_eq(link.count, 0);
  for (uint64_t id = 2; id <= 4; id++) push(id);
  ck_assert(!kv_link_next(&link, 6, &count, &deadline_ms));
  ck_assert_int_eq(kv_link_done(&link, KV_LINK_ANSWERED, 7), KV_LINK_SAME);
  /* The done batch's ids stay readable until the next leaves. */
  ck_assert_uint_eq(link.batch_count, 1);
  ck_assert_uint_eq(link.batch[0].id, 1);
  /* Everything queued meanwhile leaves together, in order. */
  ck_assert(kv_link_next(&link, 7, &count, &deadline_ms));
  ck_assert_uint_eq(count, 3);
  for (uint32_t i = 0; i < 3; i++) ck_assert_uint_eq(link.batch[i].id, i + 2);
}
END_TEST

START_TEST(test_batch_is_bounded_and_order_kept_past_growth) {
  uint32_t count, deadline_ms;
  /* Wrap the ring first, so growing it must unwrap it. */
  push(0);
  round_trip(0, 1);
  uint32_t total = KV_PEER_BATCH_MAX + 5;
  for (uint32_t id = 1; id <= total; id++) push(id);
  ck_assert(kv_link_next(&link, 2, &count, &deadline_ms));
  ck_assert_uint_eq(count, KV_PEER_BATCH_MAX);
  for (uint32_t i = 0; i < count; i++) ck_assert_uint_eq(link.batch[i].id, i + 1);
  kv_link_sent(&link, count, 2);
  ck_assert_int_eq(kv_link_done(&link, KV_LINK_ANSWERED, 3), KV_LINK_SAME);
  ck_assert(kv_link_next(&link, 3, &count, &deadline_ms));
  ck_assert_uint_eq(count, 5);
  for (uint32_t i = 0; i < 5; i++) ck_assert_uint_eq(link.batch[i].id, KV_PEER_BATCH_MAX + 1 + i);
}
END_TEST

START_TEST(test_queue_is_bounded) {
  for (uint32_t id = 0; id < KV_PEER_QUEUE_MAX; id++) push(id);
  kv_link_item_t item = {.id = 1u << 20, .data = &link};
  ck_assert_int_eq(kv_link_push(&link, &item), KV_EBUSY);
  ck_assert_uint_eq(link.count, KV_PEER_QUEUE_MAX);
  /* What is still queued at the end goes back to the driver, each item once. */
  kv_link_deinit(&link, discard, &link);
  ck_assert_uint_eq(discarded, KV_PEER_QUEUE_MAX);
  setup();
}
END_TEST

/* Heartbeats answered every 100 ms from 100 to 1000 ms. */
static void steady(void) {
  for (uint64_t t = 100; t <= 1000; t += 100) round_trip(t, t);
}

START_TEST(test_silence_is_judged_by_phi) {
  steady();
  ck_assert_uint_eq(link.phi.last_ms, 1000);
  /* A heartbeat or two late is not down ... */
  ck_assert_int_eq(kv_link_tick(&link, 1300, KV_PHI_THRESHOLD_DEFAULT), KV_LINK_SAME);
  ck_assert(link.up);
  /* ... a long silence is (about 660 ms past the last answer with these numbers), once. */
  ck_assert_int_eq(kv_link_tick(&link, 1800, KV_PHI_THRESHOLD_DEFAULT), KV_LINK_WENT_DOWN);
  ck_assert(!link.up);
  ck_assert_int_eq(kv_link_tick(&link, 1900, KV_PHI_THRESHOLD_DEFAULT), KV_LINK_SAME);
  /* An answer brings it back, and the outage is not learned as an interval. */
  uint32_t samples = link.phi.count;
  uint32_t count, deadline_ms;
  ck_assert(kv_link_next(&link, 5000, &count, &deadline_ms));
  kv_link_sent(&link, count, 5000);
  ck_assert_int_eq(kv_link_done(&link, KV_LINK_ANSWERED, 5001), KV_LINK_WENT_UP);
  ck_assert(link.up);
  ck_assert_uint_eq(link.phi.count, samples);
  ck_assert_int_eq(kv_link_tick(&link, 5100, KV_PHI_THRESHOLD_DEFAULT), KV_LINK_SAME);
}
END_TEST

START_TEST(test_failure_is_down_at_once_timeout_is_silence) {
  uint32_t count, deadline_ms;
  steady();
  ck_assert(kv_link_next(&link, 1100, &count, &deadline_ms));
  kv_link_sent(&link, count, 1100);
  /* A timeout with history behind it is left to phi. */
  ck_assert_int_eq(kv_link_done(&link, KV_LINK_TIMED_OUT, 1600), KV_LINK_SAME);
  ck_assert(link.up);
  ck_assert(kv_link_next(&link, 1600, &count, &deadline_ms));
  kv_link_sent(&link, count, 1600);
  /* A refused call is news at once. */
  ck_assert_int_eq(kv_link_done(&link, KV_LINK_FAILED, 1601), KV_LINK_WENT_DOWN);
  ck_assert(!link.up);
}
END_TEST

START_TEST(test_never_heard_is_down_quietly) {
  uint32_t count, deadline_ms;
  ck_assert(kv_link_next(&link, 100, &count, &deadline_ms));
  kv_link_sent(&link, count, 100);
  /* No history to judge silence by: a timeout counts as a failure, but a peer still
   * starting is no news. */
  ck_assert_int_eq(kv_link_done(&link, KV_LINK_TIMED_OUT, 600), KV_LINK_SAME);
  ck_assert(!link.up);
  /* Phi says nothing before the first answer. */
  ck_assert_double_eq(kv_phi(&link.phi, 100000), 0);
  ck_assert(kv_link_next(&link, 700, &count, &deadline_ms));
  kv_link_sent(&link, count, 700);
  ck_assert_int_eq(kv_link_done(&link, KV_LINK_ANSWERED, 701), KV_LINK_WENT_UP);
  ck_assert(link.phi.heard);
}
END_TEST

Suite *link_suite(void) {
  Suite *s = suite_create("link");
  TCase *tc = tcase_create("link");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_heartbeat_only_when_idle);
  tcase_add_test(tc, test_messages_leave_at_once_then_batch);
  tcase_add_test(tc, test_batch_is_bounded_and_order_kept_past_growth);
  tcase_add_test(tc, test_queue_is_bounded);
  tcase_add_test(tc, test_silence_is_judged_by_phi);
  tcase_add_test(tc, test_failure_is_down_at_once_timeout_is_silence);
  tcase_add_test(tc, test_never_heard_is_down_quietly);
  suite_add_tcase(s, tc);
  return s;
}
