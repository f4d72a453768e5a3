/* check_link.c: one peer's link (coordinator/link.h): the bounded queue, the window of
 * batches in flight, heartbeats when idle, and liveness from how batches end and from phi.
 * Times are made up: the link reads no clock. */
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

/* The next batch leaves at now_ms, carrying want messages; its slot. */
static uint32_t send(uint64_t now_ms, uint32_t want) {
  uint32_t slot, count, deadline_ms;
  ck_assert(kv_link_next(&link, now_ms, &slot, &count, &deadline_ms));
  ck_assert_uint_eq(count, want);
  kv_link_sent(&link, slot, count, now_ms);
  return slot;
}

/* A batch leaves at now_ms and is answered at done_ms. */
static void round_trip(uint64_t now_ms, uint64_t done_ms) {
  uint32_t slot = send(now_ms, link.count);
  ck_assert_int_eq(kv_link_done(&link, slot, KV_LINK_ANSWERED, done_ms), KV_LINK_SAME);
}

static bool leaves(uint64_t now_ms) {
  uint32_t slot, count, deadline_ms;
  return kv_link_next(&link, now_ms, &slot, &count, &deadline_ms);
}

START_TEST(test_heartbeat_only_when_idle) {
  uint32_t slot = 99, count = 99, deadline_ms = 0;
  ck_assert(link.up);
  ck_assert(!leaves(KV_PEER_HEARTBEAT_MS - 1));
  ck_assert(kv_link_next(&link, KV_PEER_HEARTBEAT_MS, &slot, &count, &deadline_ms));
  ck_assert_uint_eq(slot, 0);
  ck_assert_uint_eq(count, 0);
  ck_assert_uint_eq(deadline_ms, KV_PEER_HEARTBEAT_TIMEOUT_MS);
  kv_link_sent(&link, slot, 0, KV_PEER_HEARTBEAT_MS);
  /* One heartbeat in flight at most, however long it takes, though slots are free. */
  ck_assert(!leaves(10 * KV_PEER_HEARTBEAT_MS));
  ck_assert_int_eq(kv_link_done(&link, slot, KV_LINK_ANSWERED, 120), KV_LINK_SAME);
  /* The next heartbeat is timed from the last batch sent. */
  ck_assert(!leaves(2 * KV_PEER_HEARTBEAT_MS - 1));
  ck_assert(leaves(2 * KV_PEER_HEARTBEAT_MS));
}
END_TEST

START_TEST(test_no_heartbeat_while_a_batch_is_out) {
  push(1);
  uint32_t slot = send(0, 1);
  /* Long past the heartbeat interval, with slots free: the batch out is the link's sign of
   * life to come, so no heartbeat joins it. */
  ck_assert(!leaves(10 * KV_PEER_HEARTBEAT_MS));
  ck_assert_int_eq(kv_link_done(&link, slot, KV_LINK_ANSWERED, 10 * KV_PEER_HEARTBEAT_MS),
                   KV_LINK_SAME);
  ck_assert(leaves(10 * KV_PEER_HEARTBEAT_MS));
}
END_TEST

START_TEST(test_messages_leave_at_once_then_batch) {
  uint32_t slot, count, deadline_ms;
  push(1);
  ck_assert(kv_link_next(&link, 5, &slot, &count, &deadline_ms));
  ck_assert_uint_eq(count, 1);
  ck_assert_uint_eq(deadline_ms, KV_TIMEOUT_MS_DEFAULT);
  ck_assert_uint_eq(link.slots[slot].items[0].id, 1);
  /* Not taken yet: nothing changes until kv_link_sent. */
  ck_assert_uint_eq(link.count, 1);
  ck_assert_uint_eq(link.busy, 0);
  kv_link_sent(&link, slot, count, 5);
  ck_assert_uint_eq(link.count, 0);
  ck_assert_uint_eq(link.busy, 1);
  /* Every slot out: what is queued waits for one to end. */
  for (uint64_t id = 2; id <= KV_PEER_WINDOW; id++) {
    push(id);
    send(5, 1);
  }
  for (uint64_t id = 100; id < 103; id++) push(id);
  ck_assert(!leaves(6));
  ck_assert_int_eq(kv_link_done(&link, slot, KV_LINK_ANSWERED, 7), KV_LINK_SAME);
  /* The done batch's ids stay readable until its slot is filled again. */
  ck_assert_uint_eq(link.slots[slot].count, 1);
  ck_assert_uint_eq(link.slots[slot].items[0].id, 1);
  /* Everything queued meanwhile leaves together, in order, in the slot that ended. */
  uint32_t again;
  ck_assert(kv_link_next(&link, 7, &again, &count, &deadline_ms));
  ck_assert_uint_eq(again, slot);
  ck_assert_uint_eq(count, 3);
  for (uint32_t i = 0; i < 3; i++) ck_assert_uint_eq(link.slots[slot].items[i].id, 100 + i);
}
END_TEST

START_TEST(test_a_second_batch_leaves_while_the_first_is_out) {
  push(1);
  uint32_t first = send(0, 1);
  push(2);
  push(3);
  uint32_t second = send(1, 2);
  ck_assert_uint_ne(first, second);
  ck_assert_uint_eq(link.busy, 2);
  ck_assert(link.slots[first].busy && link.slots[second].busy);
  ck_assert_uint_eq(link.slots[first].items[0].id, 1);
  ck_assert_uint_eq(link.slots[second].items[0].id, 2);
  ck_assert_uint_eq(link.slots[second].items[1].id, 3);
  /* They may end in either order; the second's answer frees only its own slot. */
  ck_assert_int_eq(kv_link_done(&link, second, KV_LINK_ANSWERED, 2), KV_LINK_SAME);
  ck_assert(link.slots[first].busy && !link.slots[second].busy);
  ck_assert_uint_eq(link.busy, 1);
  ck_assert_int_eq(kv_link_done(&link, first, KV_LINK_ANSWERED, 3), KV_LINK_SAME);
  ck_assert_uint_eq(link.busy, 0);
}
END_TEST

START_TEST(test_no_more_than_the_window_is_out) {
  bool used[KV_PEER_WINDOW] = {false};
  for (uint32_t i = 0; i < KV_PEER_WINDOW; i++) {
    push(i);
    uint32_t slot = send(i, 1);
    ck_assert(!used[slot]);
    used[slot] = true;
  }
  ck_assert_uint_eq(link.busy, KV_PEER_WINDOW);
  push(99);
  ck_assert(!leaves(KV_PEER_WINDOW));
  ck_assert(!leaves(100 * KV_PEER_HEARTBEAT_MS));
  ck_assert_uint_eq(link.count, 1);
}
END_TEST

START_TEST(test_done_frees_exactly_its_slot) {
  for (uint32_t i = 0; i < KV_PEER_WINDOW; i++) {
    push(i);
    ck_assert_uint_eq(send(0, 1), i); /* the lowest free slot first */
  }
  uint32_t mid = KV_PEER_WINDOW / 2;
  ck_assert_int_eq(kv_link_done(&link, mid, KV_LINK_TIMED_OUT, 1), KV_LINK_SAME);
  for (uint32_t i = 0; i < KV_PEER_WINDOW; i++) ck_assert(link.slots[i].busy == (i != mid));
  ck_assert_uint_eq(link.busy, KV_PEER_WINDOW - 1);
  /* The next batch takes that slot, and then the window is full again. */
  push(100);
  push(101);
  ck_assert_uint_eq(send(2, 2), mid);
  ck_assert(!leaves(3));
}
END_TEST

START_TEST(test_a_failure_on_any_slot_marks_the_peer_down) {
  _Static_assert(KV_PEER_WINDOW >= 3, "the test fills three slots");
  for (uint64_t t = 100; t <= 1000; t += 100) round_trip(t, t);
  for (uint32_t i = 0; i < 3; i++) {
    push(i);
    ck_assert_uint_eq(send(1000, 1), i);
  }
  /* Whichever slot it is in, and with another just answered, a refused call is news. */
  ck_assert_int_eq(kv_link_done(&link, 0, KV_LINK_ANSWERED, 1001), KV_LINK_SAME);
  ck_assert_int_eq(kv_link_done(&link, 2, KV_LINK_FAILED, 1002), KV_LINK_WENT_DOWN);
  ck_assert(!link.up);
  ck_assert_uint_eq(link.downs, 1);
  /* A batch still out that is answered brings the peer back. */
  ck_assert_int_eq(kv_link_done(&link, 1, KV_LINK_ANSWERED, 1003), KV_LINK_WENT_UP);
  ck_assert(link.up);
}
END_TEST

START_TEST(test_concurrent_answers_are_arrivals_as_they_come) {
  for (uint64_t t = 100; t <= 1000; t += 100) round_trip(t, t);
  uint32_t samples = link.phi.count;
  for (uint32_t i = 0; i < KV_PEER_WINDOW; i++) {
    push(i);
    send(1000, 1);
  }
  /* Answered in another order than sent, all within a few ms: each is heard, silence is
   * timed from the latest, and phi stays low a heartbeat interval later. */
  for (uint32_t i = KV_PEER_WINDOW; i-- > 0;)
    kv_link_done(&link, i, KV_LINK_ANSWERED, 1010 + KV_PEER_WINDOW - i);
  ck_assert_uint_eq(link.phi.count, samples + KV_PEER_WINDOW);
  ck_assert_uint_eq(link.phi.last_ms, 1010 + KV_PEER_WINDOW);
  ck_assert_double_lt(kv_phi(&link.phi, 1010 + KV_PEER_WINDOW + KV_PEER_HEARTBEAT_MS), 1.0);
  ck_assert_int_eq(kv_link_tick(&link, 1010 + 3 * KV_PEER_HEARTBEAT_MS,
                                KV_PHI_THRESHOLD_DEFAULT), KV_LINK_SAME);
}
END_TEST

START_TEST(test_batch_is_bounded_and_order_kept_past_growth) {
  /* Wrap the ring first, so growing it must unwrap it. */
  push(0);
  round_trip(0, 1);
  uint32_t total = KV_PEER_BATCH_MAX + 5;
  for (uint32_t id = 1; id <= total; id++) push(id);
  uint32_t slot = send(2, KV_PEER_BATCH_MAX);
  for (uint32_t i = 0; i < KV_PEER_BATCH_MAX; i++)
    ck_assert_uint_eq(link.slots[slot].items[i].id, i + 1);
  /* The rest goes in the next slot, while the first is still out. */
  uint32_t next = send(2, 5);
  for (uint32_t i = 0; i < 5; i++)
    ck_assert_uint_eq(link.slots[next].items[i].id, KV_PEER_BATCH_MAX + 1 + i);
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
  uint32_t slot = send(5000, 0);
  ck_assert_int_eq(kv_link_done(&link, slot, KV_LINK_ANSWERED, 5001), KV_LINK_WENT_UP);
  ck_assert(link.up);
  ck_assert_uint_eq(link.phi.count, samples);
  ck_assert_int_eq(kv_link_tick(&link, 5100, KV_PHI_THRESHOLD_DEFAULT), KV_LINK_SAME);
}
END_TEST

START_TEST(test_failure_is_down_at_once_timeout_is_silence) {
  steady();
  uint32_t slot = send(1100, 0);
  /* A timeout with history behind it is left to phi. */
  ck_assert_int_eq(kv_link_done(&link, slot, KV_LINK_TIMED_OUT, 1600), KV_LINK_SAME);
  ck_assert(link.up);
  slot = send(1600, 0);
  /* A refused call is news at once. */
  ck_assert_int_eq(kv_link_done(&link, slot, KV_LINK_FAILED, 1601), KV_LINK_WENT_DOWN);
  ck_assert(!link.up);
}
END_TEST

START_TEST(test_never_heard_is_down_quietly) {
  uint32_t slot = send(100, 0);
  /* No history to judge silence by: a timeout counts as a failure, but a peer still
   * starting is no news. */
  ck_assert_int_eq(kv_link_done(&link, slot, KV_LINK_TIMED_OUT, 600), KV_LINK_SAME);
  ck_assert(!link.up);
  /* Phi says nothing before the first answer. */
  ck_assert_double_eq(kv_phi(&link.phi, 100000), 0);
  slot = send(700, 0);
  ck_assert_int_eq(kv_link_done(&link, slot, KV_LINK_ANSWERED, 701), KV_LINK_WENT_UP);
  ck_assert(link.phi.heard);
}
END_TEST

Suite *link_suite(void) {
  Suite *s = suite_create("link");
  TCase *tc = tcase_create("link");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_heartbeat_only_when_idle);
  tcase_add_test(tc, test_no_heartbeat_while_a_batch_is_out);
  tcase_add_test(tc, test_messages_leave_at_once_then_batch);
  tcase_add_test(tc, test_a_second_batch_leaves_while_the_first_is_out);
  tcase_add_test(tc, test_no_more_than_the_window_is_out);
  tcase_add_test(tc, test_done_frees_exactly_its_slot);
  tcase_add_test(tc, test_a_failure_on_any_slot_marks_the_peer_down);
  tcase_add_test(tc, test_concurrent_answers_are_arrivals_as_they_come);
  tcase_add_test(tc, test_batch_is_bounded_and_order_kept_past_growth);
  tcase_add_test(tc, test_queue_is_bounded);
  tcase_add_test(tc, test_silence_is_judged_by_phi);
  tcase_add_test(tc, test_failure_is_down_at_once_timeout_is_silence);
  tcase_add_test(tc, test_never_heard_is_down_quietly);
  suite_add_tcase(s, tc);
  return s;
}
