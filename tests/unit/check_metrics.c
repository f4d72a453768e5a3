/* check_metrics.c: the metrics registry: counts and histograms in the Prometheus text, lag
 * per region from per-replica ack times, conflict handlers bounded with an "other", and a NULL
 * registry that records nothing. The config is built in code. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static kv_config_t cfg;

static void two_regions(void) {
  memset(&cfg, 0, sizeof cfg);
  static const char *const ids[] = {"e1", "e2", "w1", "w2"};
  for (uint32_t i = 0; i < 4; i++) {
    snprintf(cfg.nodes[i].id, sizeof cfg.nodes[i].id, "%s", ids[i]);
    snprintf(cfg.nodes[i].region, sizeof cfg.nodes[i].region, "%s", i < 2 ? "east" : "west");
  }
  cfg.node_count = 4;
}

/* The registry's text, malloc'd. */
static char *render(kv_metrics_t *m, kv_metrics_hints_fn hints) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  ck_assert_ptr_nonnull(f);
  kv_metrics_render(m, f, hints, NULL);
  fclose(f);
  return text;
}

static void has_line(const char *text, const char *line) {
  char want[512];
  snprintf(want, sizeof want, "\n%s\n", line);
  ck_assert_msg(strstr(text, want) != NULL, "missing line '%s' in:\n%s", line, text);
}

START_TEST(requests_count_per_operation_level_and_outcome) {
  two_regions();
  kv_metrics_t *m = kv_metrics_create(&cfg);
  ck_assert_ptr_nonnull(m);
  kv_metrics_request(m, 0, KV_LEVEL_QUORUM, true, 800);   /* put, 0.8 ms */
  kv_metrics_request(m, 0, KV_LEVEL_QUORUM, true, 3000);  /* put, 3 ms */
  kv_metrics_request(m, 1, KV_LEVEL_DEFAULT, false, 50);  /* get */
  kv_metrics_request(m, 2, KV_LEVEL_COUNT, false, 50);    /* delete at an unknown level */
  char *t = render(m, NULL);
  has_line(t, "# TYPE tunekv_requests_total counter");
  has_line(t, "tunekv_requests_total{op=\"put\",level=\"QUORUM\",outcome=\"ok\"} 2");
  has_line(t, "tunekv_requests_total{op=\"get\",level=\"DEFAULT\",outcome=\"error\"} 1");
  has_line(t, "tunekv_requests_total{op=\"delete\",level=\"UNKNOWN\",outcome=\"error\"} 1");
  ck_assert_ptr_null(strstr(t, "op=\"put\",level=\"ONE\""));
  /* Cumulative buckets: 0.8 ms is at or below 1 ms, 3 ms only from 5 ms on. */
  has_line(t, "tunekv_request_duration_seconds_bucket{op=\"put\",level=\"QUORUM\",le=\"0.0005\"} 0");
  has_line(t, "tunekv_request_duration_seconds_bucket{op=\"put\",level=\"QUORUM\",le=\"0.001\"} 1");
  has_line(t, "tunekv_request_duration_seconds_bucket{op=\"put\",level=\"QUORUM\",le=\"0.0025\"} 1");
  has_line(t, "tunekv_request_duration_seconds_bucket{op=\"put\",level=\"QUORUM\",le=\"0.005\"} 2");
  has_line(t, "tunekv_request_duration_seconds_bucket{op=\"put\",level=\"QUORUM\",le=\"+Inf\"} 2");
  has_line(t, "tunekv_request_duration_seconds_sum{op=\"put\",level=\"QUORUM\"} 0.003800");
  has_line(t, "tunekv_request_duration_seconds_count{op=\"put\",level=\"QUORUM\"} 2");
  free(t);
  kv_metrics_destroy(m);
}
END_TEST

START_TEST(lag_is_per_region_from_the_wth_ack) {
  two_regions();
  kv_metrics_t *m = kv_metrics_create(&cfg);
  /* W-th ack at 1000 us; east's last ack came before it (lag 0), west's at 41000 (40 ms). */
  const uint32_t nodes[] = {0, 1, 2, 3};
  const uint64_t acks[] = {900, 1000, 30000, 41000};
  kv_metrics_write_lag(m, nodes, acks, 4, 1000);
  char *t = render(m, NULL);
  has_line(t, "tunekv_replication_lag_seconds_bucket{region=\"east\",le=\"0.0001\"} 1");
  has_line(t, "tunekv_replication_lag_seconds_sum{region=\"east\"} 0.000000");
  has_line(t, "tunekv_replication_lag_seconds_bucket{region=\"west\",le=\"0.025\"} 0");
  has_line(t, "tunekv_replication_lag_seconds_bucket{region=\"west\",le=\"0.05\"} 1");
  has_line(t, "tunekv_replication_lag_seconds_sum{region=\"west\"} 0.040000");
  has_line(t, "tunekv_replication_lag_seconds_count{region=\"west\"} 1");
  free(t);
  kv_metrics_destroy(m);
}
END_TEST

static bool fake_hints(void *arg, uint32_t node, kv_metrics_hints_t *out) {
  if (node == 0) return false; /* this node */
  *out = (kv_metrics_hints_t){.pending = node, .bytes = 100 * node, .delivered = 7, .dropped = 0};
  return true;
}

START_TEST(counters_hooks_and_hints) {
  two_regions();
  kv_metrics_t *m = kv_metrics_create(&cfg);
  kv_metrics_add(m, KV_METRIC_READ_REPAIRS, 2);
  kv_metrics_add(m, KV_METRIC_AE_REPAIRS, 5);
  kv_metrics_add(m, KV_METRIC_REMOTE_WRITES, 3);
  kv_metrics_add(m, KV_METRIC_RELAYED_WRITES, 4);
  kv_metrics_siblings(m, 1);
  kv_metrics_siblings(m, 3);
  kv_metrics_conflict(m, "lww", 2);
  kv_metrics_conflict(m, "merge", 1);
  kv_metrics_conflict(m, "lww", 1);
  char *t = render(m, fake_hints);
  has_line(t, "tunekv_read_repairs_total 2");
  has_line(t, "tunekv_anti_entropy_repairs_total 5");
  has_line(t, "tunekv_remote_region_writes_total 3");
  has_line(t, "tunekv_relayed_writes_total 4");
  has_line(t, "tunekv_siblings_per_read_bucket{le=\"2\"} 1");
  has_line(t, "tunekv_siblings_per_read_bucket{le=\"3\"} 2");
  has_line(t, "tunekv_siblings_per_read_count 2");
  has_line(t, "tunekv_conflicts_total{handler=\"lww\"} 3");
  has_line(t, "tunekv_conflicts_total{handler=\"merge\"} 1");
  ck_assert_ptr_null(strstr(t, "handler=\"other\""));
  has_line(t, "tunekv_hints_pending{peer=\"w1\"} 2");
  has_line(t, "tunekv_hint_bytes{peer=\"w2\"} 300");
  has_line(t, "tunekv_hints_delivered_total{peer=\"e2\"} 7");
  ck_assert_ptr_null(strstr(t, "peer=\"e1\""));
  free(t);
  kv_metrics_destroy(m);
}
END_TEST

START_TEST(handlers_past_the_limit_are_other) {
  two_regions();
  kv_metrics_t *m = kv_metrics_create(&cfg);
  for (uint32_t i = 0; i < KV_METRICS_HANDLERS_MAX + 3; i++) {
    char name[16];
    snprintf(name, sizeof name, "h%u", i);
    kv_metrics_conflict(m, name, 1);
  }
  char *t = render(m, NULL);
  has_line(t, "tunekv_conflicts_total{handler=\"h15\"} 1");
  ck_assert_ptr_null(strstr(t, "handler=\"h16\""));
  has_line(t, "tunekv_conflicts_total{handler=\"other\"} 3");
  free(t);
  kv_metrics_destroy(m);
}
END_TEST

START_TEST(a_null_registry_records_nothing) {
  kv_metrics_add(NULL, KV_METRIC_READ_REPAIRS, 1);
  kv_metrics_request(NULL, 0, KV_LEVEL_ONE, true, 1);
  kv_metrics_siblings(NULL, 1);
  kv_metrics_conflict(NULL, "lww", 1);
  const uint32_t nodes[] = {0};
  const uint64_t acks[] = {1};
  kv_metrics_write_lag(NULL, nodes, acks, 1, 0);
  kv_metrics_destroy(NULL);
}
END_TEST

Suite *metrics_suite(void) {
  Suite *s = suite_create("metrics");
  TCase *tc = tcase_create("metrics");
  tcase_add_test(tc, requests_count_per_operation_level_and_outcome);
  tcase_add_test(tc, lag_is_per_region_from_the_wth_ack);
  tcase_add_test(tc, counters_hooks_and_hints);
  tcase_add_test(tc, handlers_past_the_limit_are_other);
  tcase_add_test(tc, a_null_registry_records_nothing);
  suite_add_tcase(s, tc);
  return s;
}
