/* bench.h: what kvbench's modes share (kvbench.c is the load mode and the dispatcher,
 * bench_<mode>.c the others): argument parsing helpers, the clock and PRNG, the one-line
 * progress display, and the report every mode writes (terminal table, JSON, HTML).
 *
 * Every mode's report has the same three chart slots, so reports from different runs line up:
 * latency CDF per level (load, and the probes of the other modes), replication lag CDF per
 * region (lag), and t-visibility measured vs predicted (staleness). A mode fills the ones it
 * measures; the others are drawn empty with a note naming the mode that fills them. */
#ifndef KV_BENCH_H
#define KV_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "report.h"
#include "tunekv.h"

enum { BENCH_EXIT_OK = 0, BENCH_EXIT_LOCAL = 1, BENCH_EXIT_USAGE = 2, BENCH_EXIT_ERRORS = 3 };

/* Prints "kvbench: <sentence>; see kvbench -h" on stderr and returns BENCH_EXIT_USAGE. */
int bench_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

bool bench_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
bool bench_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out);
/* A finite decimal number in [min, max] (seconds, milliseconds, probabilities). */
bool bench_parse_double(const char *s, double min, double max, double *out);

/* TLS and token options for every connection a mode opens (cli_auth.h): the load mode's
 * --tls-* and --token flags, else the environment. Every mode opens its clients with
 * bench_open. */
extern kv_client_auth_t bench_auth;
int bench_open(const char *addr, kv_client_t **out, kv_client_status_t *st);

/* Monotonic nanoseconds. */
uint64_t bench_now_ns(void);
/* splitmix64: every seed (0 included) gives a good sequence. */
uint64_t bench_rng_next(uint64_t *state);

/* The progress line: one line on stderr, rewritten in place at most every 250 ms, erased by
 * bench_progress_done, so it never mixes with what the run prints. It is drawn when stderr is
 * a terminal, or when forced on (--progress); --no-progress turns it off. Tests run with
 * stderr redirected, so their output stays clean. */
typedef enum { BENCH_PROGRESS_AUTO, BENCH_PROGRESS_ON, BENCH_PROGRESS_OFF } bench_progress_mode_t;

typedef struct {
  bool on;
  bool drawn;        /* a line is on screen */
  uint64_t next_ns;  /* earliest time of the next redraw */
} bench_progress_t;

void bench_progress_init(bench_progress_t *p, bench_progress_mode_t mode);
/* Redraws the line with the formatted text when it is time (and on); cheap otherwise. */
void bench_progress_show(bench_progress_t *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Erases the line. */
void bench_progress_done(bench_progress_t *p);

/* The HTML report of one run. Pointers are borrowed for bench_write_html. */
typedef struct {
  const char *title, *subtitle;
  const char *const *head;     /* the results table: cols header cells */
  const char *const *cells;    /* rows x cols cells */
  size_t cols, rows;
  const char *note;            /* a paragraph under the table (method, caveats); may be NULL */
  kv_report_chart_t latency;   /* the three slots (see the top of this file) */
  kv_report_chart_t lag;
  kv_report_chart_t staleness;
} bench_html_t;

/* Fills the three slots' titles, axes and empty notes, with no series. */
void bench_html_init(bench_html_t *h);
/* Writes the report to path. BENCH_EXIT_LOCAL (after "kvbench: cannot write PATH: why" on
 * stderr) when the file cannot be written. */
int bench_write_html(const char *path, const bench_html_t *h);

/* The modes other than load: argc/argv start at the mode's name. */
int bench_staleness_main(int argc, char **argv);
int bench_lag_main(int argc, char **argv);

#endif
