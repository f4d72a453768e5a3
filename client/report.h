/* report.h: kvbench's HTML report, one self-contained file: inline CSS and inline SVG charts,
 * no scripts, no fonts, no links to anything outside the file, so it opens the same from a
 * mail attachment, a CI artifact or a laptop with no network.
 *
 * A report is written in order to a FILE* the caller opened: kv_report_begin, then any
 * number of tables and charts, then kv_report_end. The module does no other IO and keeps no
 * state between calls; write errors are left in the FILE (the caller checks ferror/fclose).
 *
 * Charts are line charts of (x, y) series: a CDF, or a probability against a time. A chart
 * whose series hold no point is still drawn, as a slot with its `empty_note`, so a report
 * always has the same sections and says which mode fills the ones that are empty.
 * Every string is HTML-escaped on the way out. */
#ifndef KV_REPORT_H
#define KV_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "histogram.h"

/* Most points a series is drawn with (more are thinned evenly) and most series per chart. */
#define KV_REPORT_POINTS_MAX 2000u
#define KV_REPORT_SERIES_MAX 12u
/* The points kv_report_cdf makes: enough quantiles that the tail (p99.99) has its own. */
#define KV_REPORT_CDF_POINTS 140u

typedef struct {
  const char *name;      /* legend label; borrowed for the call */
  const double *x, *y;   /* n points, borrowed for the call; x ascending */
  size_t n;
  bool dashed;           /* drawn dashed (e.g. a prediction next to a measurement) */
  bool markers;          /* a dot on every point (sparse measured points) */
} kv_report_series_t;

typedef struct {
  const char *title;       /* borrowed for the call, like every pointer here */
  const char *x_label, *y_label;
  bool x_log;              /* logarithmic x axis (latencies); x <= 0 is drawn at the left edge */
  double y_min, y_max;     /* the y range; y_min == y_max means from the data */
  const kv_report_series_t *series;
  size_t n_series;         /* at most KV_REPORT_SERIES_MAX */
  const char *empty_note;  /* shown in the plot area when no series has a point */
} kv_report_chart_t;

/* Opens the document: title (also the heading) and an optional subtitle line (NULL: none). */
void kv_report_begin(FILE *f, const char *title, const char *subtitle);
/* A table: `cols` header cells, then rows x cols cells, row by row. A NULL cell is empty. */
void kv_report_table(FILE *f, const char *caption, const char *const *head, size_t cols,
                     const char *const *cells, size_t rows);
/* A paragraph of text (escaped). */
void kv_report_note(FILE *f, const char *text);
/* One chart as an inline <svg>. */
void kv_report_chart(FILE *f, const kv_report_chart_t *c);
/* Closes the document. */
void kv_report_end(FILE *f);

/* The CDF of a histogram as points: x = the value at each of KV_REPORT_CDF_POINTS quantiles
 * (0 to 100%, denser in the tail) times `scale` (1e-6 turns ns into ms), y = the quantile as a
 * fraction. x and y must hold KV_REPORT_CDF_POINTS. Returns the number of points: 0 for an
 * empty histogram. */
size_t kv_report_cdf(const kv_histogram_t *h, double scale, double *x, double *y);

#endif
