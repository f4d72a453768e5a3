/* report.c: the HTML report's writer (see report.h).
 *
 * Geometry of a chart, in SVG user units: the whole is CHART_W x CHART_H; the plot area is
 * the rectangle [PLOT_X0, PLOT_X1] x [PLOT_Y0, PLOT_Y1] (y grows downwards, as SVG's does);
 * the legend sits to the right of it. Values map to the plot linearly, or by log10 for a
 * log x axis. Ticks are "nice" numbers (1, 2 or 5 times a power of ten) for linear axes and
 * decades (with 2 and 5 inside when the axis spans less than two decades) for log axes.
 * Each series is one <path>; markers are <circle>s. Nothing is computed from the data that
 * could fail: an axis whose data are all equal is widened around the value. */
#include "report.h"

#include <math.h>
#include <string.h>

#include "log.h"

#define CHART_W 760
#define CHART_H 370
#define PLOT_X0 70.0
#define PLOT_X1 580.0
#define PLOT_Y0 24.0
#define PLOT_Y1 310.0
#define LEGEND_X 596.0
#define TICKS_MAX 24

static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                      "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                                      "#bcbd22", "#17becf", "#393b79", "#637939"};

/* ---- text -------------------------------------------------------------------------- */

static void put_escaped(FILE *f, const char *s) {
  for (; s && *s; s++) {
    switch (*s) {
      case '&': fputs("&amp;", f); break;
      case '<': fputs("&lt;", f); break;
      case '>': fputs("&gt;", f); break;
      case '"': fputs("&quot;", f); break;
      case '\'': fputs("&#39;", f); break;
      default: fputc(*s, f);
    }
  }
}

void kv_report_begin(FILE *f, const char *title, const char *subtitle) {
  fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>", f);
  put_escaped(f, title);
  fputs("</title>\n<style>\n"
        "body{font-family:sans-serif;margin:24px;color:#222;max-width:800px}\n"
        "h1{font-size:20px}h2{font-size:16px;margin-top:28px}\n"
        "table{border-collapse:collapse;margin:8px 0;font-size:13px}\n"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}\n"
        "th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}\n"
        "caption{text-align:left;font-weight:bold;padding:4px 0}\n"
        "svg{display:block;margin:8px 0}svg text{font-size:12px;fill:#333}\n"
        ".sub{color:#666;font-size:13px}\n"
        "</style></head><body>\n<h1>",
        f);
  put_escaped(f, title);
  fputs("</h1>\n", f);
  if (subtitle) {
    fputs("<p class=\"sub\">", f);
    put_escaped(f, subtitle);
    fputs("</p>\n", f);
  }
}

void kv_report_note(FILE *f, const char *text) {
  fputs("<p>", f);
  put_escaped(f, text);
  fputs("</p>\n", f);
}

void kv_report_table(FILE *f, const char *caption, const char *const *head, size_t cols,
                     const char *const *cells, size_t rows) {
  fputs("<table>", f);
  if (caption) {
    fputs("<caption>", f);
    put_escaped(f, caption);
    fputs("</caption>", f);
  }
  fputs("\n<tr>", f);
  for (size_t c = 0; c < cols; c++) {
    fputs("<th>", f);
    put_escaped(f, head[c]);
    fputs("</th>", f);
  }
  fputs("</tr>\n", f);
  for (size_t r = 0; r < rows; r++) {
    fputs("<tr>", f);
    for (size_t c = 0; c < cols; c++) {
      fputs("<td>", f);
      put_escaped(f, cells[r * cols + c]);
      fputs("</td>", f);
    }
    fputs("</tr>\n", f);
  }
  fputs("</table>\n", f);
}

void kv_report_end(FILE *f) { fputs("</body></html>\n", f); }

/* ---- axes -------------------------------------------------------------------------- */

typedef struct {
  double lo, hi;   /* data range shown (for a log axis: log10 of it) */
  bool log;
  double ticks[TICKS_MAX];
  size_t n_ticks;  /* tick values, in data units */
} axis_t;

static double nice_step(double span) {
  double raw = span / 5.0;
  double p = pow(10.0, floor(log10(raw)));
  double m = raw / p;
  return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

static void axis_linear(axis_t *a, double lo, double hi) {
  if (!(hi > lo)) {
    double pad = lo == 0 ? 1 : fabs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  double step = nice_step(hi - lo);
  a->log = false;
  a->lo = floor(lo / step) * step;
  a->hi = ceil(hi / step) * step;
  a->n_ticks = 0;
  for (double v = a->lo; v <= a->hi + step * 0.5 && a->n_ticks < TICKS_MAX; v += step)
    a->ticks[a->n_ticks++] = fabs(v) < step * 1e-9 ? 0 : v;
}

static void axis_log(axis_t *a, double lo, double hi) {
  if (!(lo > 0)) lo = hi > 0 ? hi / 10 : 1;
  if (!(hi > lo)) hi = lo * 10;
  int d0 = (int)floor(log10(lo)), d1 = (int)ceil(log10(hi));
  if (d1 <= d0) d1 = d0 + 1;
  a->log = true;
  a->lo = d0;
  a->hi = d1;
  a->n_ticks = 0;
  static const double inside[] = {1, 2, 5};
  size_t per = d1 - d0 < 2 ? 3 : 1;
  for (int d = d0; d <= d1 && a->n_ticks < TICKS_MAX; d++)
    for (size_t i = 0; i < per && a->n_ticks < TICKS_MAX; i++)
      if (d < d1 || i == 0) a->ticks[a->n_ticks++] = inside[i] * pow(10.0, d);
}

/* Where value v sits along an axis, as a fraction 0..1 (clamped). */
static double axis_frac(const axis_t *a, double v) {
  double u = v;
  if (a->log) u = v > 0 ? log10(v) : a->lo;
  double t = (u - a->lo) / (a->hi - a->lo);
  return t < 0 ? 0 : t > 1 ? 1 : t;
}

static double to_x(const axis_t *a, double v) { return PLOT_X0 + axis_frac(a, v) * (PLOT_X1 - PLOT_X0); }
static double to_y(const axis_t *a, double v) { return PLOT_Y1 - axis_frac(a, v) * (PLOT_Y1 - PLOT_Y0); }

/* ---- chart ------------------------------------------------------------------------- */

static size_t points_in(const kv_report_chart_t *c) {
  size_t n = 0;
  for (size_t i = 0; i < c->n_series; i++) n += c->series[i].n;
  return n;
}

/* The axes from the data (x only over positive values when log) and the fixed y range. */
static void chart_axes(const kv_report_chart_t *c, axis_t *ax, axis_t *ay) {
  double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
  for (size_t i = 0; i < c->n_series; i++) {
    const kv_report_series_t *s = &c->series[i];
    for (size_t k = 0; k < s->n; k++) {
      if (!isfinite(s->x[k]) || !isfinite(s->y[k])) continue;
      if (!c->x_log || s->x[k] > 0) {
        if (s->x[k] < x_lo) x_lo = s->x[k];
        if (s->x[k] > x_hi) x_hi = s->x[k];
      }
      if (s->y[k] < y_lo) y_lo = s->y[k];
      if (s->y[k] > y_hi) y_hi = s->y[k];
    }
  }
  if (!isfinite(x_lo)) x_lo = c->x_log ? 0.1 : 0, x_hi = c->x_log ? 100 : 1;
  if (!isfinite(y_lo)) y_lo = 0, y_hi = 1;
  if (c->y_max > c->y_min) y_lo = c->y_min, y_hi = c->y_max;
  if (c->x_log) axis_log(ax, x_lo, x_hi);
  else axis_linear(ax, x_lo, x_hi);
  axis_linear(ay, y_lo, y_hi);
  if (c->y_max > c->y_min) ay->lo = c->y_min, ay->hi = c->y_max;
}

static void draw_axes(FILE *f, const kv_report_chart_t *c, const axis_t *ax, const axis_t *ay) {
  fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"#fff\" "
          "stroke=\"#999\"/>\n", PLOT_X0, PLOT_Y0, PLOT_X1 - PLOT_X0, PLOT_Y1 - PLOT_Y0);
  for (size_t i = 0; i < ax->n_ticks; i++) {
    double x = to_x(ax, ax->ticks[i]);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#eee\"/>"
            "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%g</text>\n",
            x, PLOT_Y0, x, PLOT_Y1, x, PLOT_Y1 + 16, ax->ticks[i]);
  }
  for (size_t i = 0; i < ay->n_ticks; i++) {
    double y = to_y(ay, ay->ticks[i]);
    fprintf(f, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#eee\"/>"
            "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
            PLOT_X0, y, PLOT_X1, y, PLOT_X0 - 6, y + 4, ay->ticks[i]);
  }
  fprintf(f, "<text x=\"%.0f\" y=\"%d\" text-anchor=\"middle\">", (PLOT_X0 + PLOT_X1) / 2,
          CHART_H - 22);
  put_escaped(f, c->x_label);
  fprintf(f, "</text>\n<text transform=\"translate(16,%.0f) rotate(-90)\" "
          "text-anchor=\"middle\">", (PLOT_Y0 + PLOT_Y1) / 2);
  put_escaped(f, c->y_label);
  fputs("</text>\n", f);
}

static void draw_series(FILE *f, const kv_report_series_t *s, size_t index, const axis_t *ax,
                        const axis_t *ay) {
  const char *color = palette[index % (sizeof palette / sizeof palette[0])];
  size_t step = s->n > KV_REPORT_POINTS_MAX ? (s->n + KV_REPORT_POINTS_MAX - 1) / KV_REPORT_POINTS_MAX
                                            : 1;
  fprintf(f, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s d=\"", color,
          s->dashed ? " stroke-dasharray=\"6 4\"" : "");
  bool first = true;
  for (size_t k = 0; k < s->n; k += step) {
    if (!isfinite(s->x[k]) || !isfinite(s->y[k])) continue;
    fprintf(f, "%s%.1f %.1f", first ? "M" : " L", to_x(ax, s->x[k]), to_y(ay, s->y[k]));
    first = false;
  }
  fputs("\"><title>", f);
  put_escaped(f, s->name);
  fputs("</title></path>\n", f);
  for (size_t k = 0; s->markers && k < s->n; k += step)
    if (isfinite(s->x[k]) && isfinite(s->y[k]))
      fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", to_x(ax, s->x[k]),
              to_y(ay, s->y[k]), color);
}

static void draw_legend(FILE *f, const kv_report_chart_t *c) {
  for (size_t i = 0; i < c->n_series; i++) {
    double y = PLOT_Y0 + 10 + 18.0 * (double)i;
    fprintf(f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"%s\" "
            "stroke-width=\"3\"%s/><text x=\"%.0f\" y=\"%.0f\">",
            LEGEND_X, y, LEGEND_X + 22, y, palette[i % (sizeof palette / sizeof palette[0])],
            c->series[i].dashed ? " stroke-dasharray=\"6 4\"" : "", LEGEND_X + 28, y + 4);
    put_escaped(f, c->series[i].name);
    fputs("</text>\n", f);
  }
}

void kv_report_chart(FILE *f, const kv_report_chart_t *c) {
  KV_ASSERT(c->n_series <= KV_REPORT_SERIES_MAX);
  axis_t ax, ay;
  chart_axes(c, &ax, &ay);
  fputs("<h2>", f);
  put_escaped(f, c->title);
  fprintf(f, "</h2>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
          "viewBox=\"0 0 %d %d\" role=\"img\"><title>", CHART_W, CHART_H, CHART_W, CHART_H);
  put_escaped(f, c->title);
  fputs("</title>\n", f);
  draw_axes(f, c, &ax, &ay);
  if (points_in(c) == 0) {
    fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\" font-style=\"italic\">",
            (PLOT_X0 + PLOT_X1) / 2, (PLOT_Y0 + PLOT_Y1) / 2);
    put_escaped(f, c->empty_note ? c->empty_note : "no data");
    fputs("</text>\n", f);
  } else {
    for (size_t i = 0; i < c->n_series; i++) draw_series(f, &c->series[i], i, &ax, &ay);
    draw_legend(f, c);
  }
  fputs("</svg>\n", f);
}

/* ---- CDF --------------------------------------------------------------------------- */

/* Quantile number i of KV_REPORT_CDF_POINTS, in percent: 0..90 by 1, then 90..99 by 0.25,
 * then 99..99.9 by 0.05, then 99.9..100 by 0.01 (ending at 100 exactly). */
static double cdf_quantile(size_t i) {
  static const struct { double from, step; size_t count; } runs[] = {
      {0, 1, 90}, {90, 0.25, 36}, {99, 0.1, 9}, {99.9, 0.02, 5}};
  for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
    if (i < runs[r].count) return runs[r].from + runs[r].step * (double)i;
    i -= runs[r].count;
  }
  return 100;
}

size_t kv_report_cdf(const kv_histogram_t *h, double scale, double *x, double *y) {
  if (h->total == 0) return 0;
  for (size_t i = 0; i < KV_REPORT_CDF_POINTS; i++) {
    double p = i + 1 == KV_REPORT_CDF_POINTS ? 100 : cdf_quantile(i);
    x[i] = (double)kv_histogram_percentile(h, p) * scale;
    y[i] = p / 100.0;
  }
  return KV_REPORT_CDF_POINTS;
}
