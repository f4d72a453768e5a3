/* check_report.c: the HTML report writer: CDF points from a histogram, escaping, empty
 * slots, and a document that is whole (every chart one <svg>, every series one <path>). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

static kv_histogram_t hist; /* 30 KiB: kept off the test's stack */

static size_t occurrences(const char *text, const char *what) {
  size_t n = 0;
  for (const char *p = strstr(text, what); p; p = strstr(p + 1, what)) n++;
  return n;
}

START_TEST(cdf_of_empty_histogram_has_no_points) {
  double x[KV_REPORT_CDF_POINTS], y[KV_REPORT_CDF_POINTS];
  kv_histogram_init(&hist);
  ck_assert_uint_eq(kv_report_cdf(&hist, 1e-6, x, y), 0);
}
END_TEST

START_TEST(cdf_rises_from_min_to_max) {
  double x[KV_REPORT_CDF_POINTS], y[KV_REPORT_CDF_POINTS];
  kv_histogram_init(&hist);
  for (uint64_t v = 1; v <= 1000; v++) kv_histogram_record(&hist, v * 1000000); /* 1..1000 ms */
  size_t n = kv_report_cdf(&hist, 1e-6, x, y);
  ck_assert_uint_eq(n, KV_REPORT_CDF_POINTS);
  ck_assert_double_eq(x[0], 1.0);
  ck_assert_double_eq(y[0], 0.0);
  ck_assert_double_eq(x[n - 1], 1000.0);
  ck_assert_double_eq(y[n - 1], 1.0);
  for (size_t i = 1; i < n; i++) {
    ck_assert(x[i] >= x[i - 1]);
    ck_assert(y[i] > y[i - 1]);
  }
}
END_TEST

START_TEST(document_has_one_svg_per_chart_and_escapes_text) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  ck_assert_ptr_nonnull(f);
  double x[] = {0.5, 1, 2}, y[] = {0, 0.5, 1};
  kv_report_series_t s[2] = {{.name = "put <ONE>", .x = x, .y = y, .n = 3},
                             {.name = "get & co", .x = x, .y = y, .n = 3, .dashed = true}};
  kv_report_chart_t full = {.title = "a \"chart\"", .x_label = "ms", .y_label = "p",
                            .x_log = true, .y_min = 0, .y_max = 1, .series = s, .n_series = 2};
  kv_report_chart_t empty = {.title = "empty", .x_label = "ms", .y_label = "p",
                             .empty_note = "filled by kvbench lag"};
  const char *head[] = {"op", "p50"}, *cells[] = {"put", "1.0", "get", NULL};
  kv_report_begin(f, "t<1>", NULL);
  kv_report_table(f, "Results", head, 2, cells, 2);
  kv_report_chart(f, &full);
  kv_report_chart(f, &empty);
  kv_report_end(f);
  fclose(f);
  ck_assert_uint_eq(occurrences(text, "<svg"), 2);
  ck_assert_uint_eq(occurrences(text, "</svg>"), 2);
  ck_assert_uint_eq(occurrences(text, "<path"), 2);
  ck_assert_uint_eq(occurrences(text, "stroke-dasharray"), 2); /* the line and its legend */
  ck_assert_ptr_nonnull(strstr(text, "put &lt;ONE&gt;"));
  ck_assert_ptr_nonnull(strstr(text, "get &amp; co"));
  ck_assert_ptr_nonnull(strstr(text, "a &quot;chart&quot;"));
  ck_assert_ptr_nonnull(strstr(text, "<title>t&lt;1&gt;</title>"));
  ck_assert_ptr_nonnull(strstr(text, ">filled by kvbench lag</text>"));
  ck_assert_ptr_null(strstr(text, "<script"));
  ck_assert_ptr_nonnull(strstr(text, "</body></html>\n"));
  free(text);
}
END_TEST

Suite *report_suite(void) {
  Suite *s = suite_create("report");
  TCase *tc = tcase_create("report");
  tcase_add_test(tc, cdf_of_empty_histogram_has_no_points);
  tcase_add_test(tc, cdf_rises_from_min_to_max);
  tcase_add_test(tc, document_has_one_svg_per_chart_and_escapes_text);
  suite_add_tcase(s, tc);
  return s;
}
