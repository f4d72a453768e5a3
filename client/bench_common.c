/* bench_common.c: what kvbench's modes share (see bench.h). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "cli_auth.h"

#define PROGRESS_EVERY_NS 250000000ull
#define PROGRESS_COLUMNS 100

int bench_usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("kvbench: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputs("; see kvbench -h\n", stderr);
  va_end(ap);
  return BENCH_EXIT_USAGE;
}

bool bench_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out) {
  if (!*s) return false;
  uint64_t v = 0;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9') return false;
    if (v > (max - (uint64_t)(*p - '0')) / 10) return false;
    v = v * 10 + (uint64_t)(*p - '0');
  }
  if (v < min) return false;
  *out = v;
  return true;
}

bool bench_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out) {
  uint64_t v;
  if (!bench_parse_u64(s, min, max, &v)) return false;
  *out = (uint32_t)v;
  return true;
}

bool bench_parse_double(const char *s, double min, double max, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (!*s || *end || errno || !isfinite(v) || v < min || v > max) return false;
  *out = v;
  return true;
}

uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t bench_rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* ---- progress ---------------------------------------------------------------------- */

void bench_progress_init(bench_progress_t *p, bench_progress_mode_t mode) {
  *p = (bench_progress_t){0};
  p->on = mode == BENCH_PROGRESS_ON || (mode == BENCH_PROGRESS_AUTO && isatty(STDERR_FILENO));
}

void bench_progress_show(bench_progress_t *p, const char *fmt, ...) {
  if (!p->on) return;
  uint64_t now = bench_now_ns();
  if (now < p->next_ns) return;
  p->next_ns = now + PROGRESS_EVERY_NS;
  char line[PROGRESS_COLUMNS];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  /* \r back to the start, the text, then erase whatever a longer line left behind. */
  fprintf(stderr, "\r%s\033[K", line);
  fflush(stderr);
  p->drawn = true;
}

void bench_progress_done(bench_progress_t *p) {
  if (!p->drawn) return;
  fputs("\r\033[K", stderr);
  fflush(stderr);
  p->drawn = false;
}

/* ---- HTML -------------------------------------------------------------------------- */

void bench_html_init(bench_html_t *h) {
  *h = (bench_html_t){0};
  h->latency = (kv_report_chart_t){
      .title = "Latency CDF per level", .x_label = "latency (ms, log scale)",
      .y_label = "fraction of requests at or below", .x_log = true, .y_min = 0, .y_max = 1,
      .empty_note = "no requests were measured"};
  h->lag = (kv_report_chart_t){
      .title = "Replication lag CDF per region", .x_label = "ms after the write was acknowledged",
      .y_label = "fraction of writes applied", .y_min = 0, .y_max = 1,
      .empty_note = "filled by kvbench lag"};
  h->staleness = (kv_report_chart_t){
      .title = "t-visibility: P(consistent read) t ms after a write, measured vs predicted",
      .x_label = "t (ms after the write was acknowledged)", .y_label = "P(read sees the write)",
      .y_min = 0, .y_max = 1, .empty_note = "filled by kvbench staleness"};
}

int bench_write_html(const char *path, const bench_html_t *h) {
  FILE *f = fopen(path, "w");
  if (!f) {
    fprintf(stderr, "kvbench: cannot write %s: %s\n", path, strerror(errno));
    return BENCH_EXIT_LOCAL;
  }
  kv_report_begin(f, h->title, h->subtitle);
  if (h->rows) kv_report_table(f, "Results", h->head, h->cols, h->cells, h->rows);
  if (h->note) kv_report_note(f, h->note);
  kv_report_chart(f, &h->latency);
  kv_report_chart(f, &h->lag);
  kv_report_chart(f, &h->staleness);
  kv_report_end(f);
  bool bad = ferror(f);
  if (fclose(f) != 0 || bad) {
    fprintf(stderr, "kvbench: cannot write %s: %s\n", path, strerror(errno ? errno : EIO));
    return BENCH_EXIT_LOCAL;
  }
  return BENCH_EXIT_OK;
}

kv_client_auth_t bench_auth;

int bench_open(const char *addr, kv_client_t **out, kv_client_status_t *st) {
  kv_cli_auth_env(&bench_auth);
  return kv_client_open_auth(addr, &bench_auth, out, st);
}
