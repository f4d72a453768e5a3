/* log.c: timestamped one-line logs on stderr; one fputs per line so that lines from
 * different threads never interleave. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char log_prefix[33] = "tunekv";
static kv_log_level_t log_level = KV_LOG_INFO;
static bool log_journal;

void kv_log_set_prefix(const char *prefix) {
  snprintf(log_prefix, sizeof log_prefix, "%s", prefix);
}

void kv_log_set_level(kv_log_level_t level) { log_level = level; }

void kv_log_set_journal(bool on) { log_journal = on; }

void kv_log(kv_log_level_t level, const char *fmt, ...) {
  static const char *const names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
  static const int priorities[] = {7, 6, 4, 3}; /* syslog's debug, info, warning, err */
  if (level < log_level) return;
  char line[1024];
  int n;
  if (log_journal) {
    n = snprintf(line, sizeof line, "<%d>%s %s ", priorities[level], log_prefix, names[level]);
  } else {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                 tm.tm_sec, ts.tv_nsec / 1000000, log_prefix, names[level]);
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  va_end(ap);
  strcat(line, "\n");
  fputs(line, stderr);
}

void kv_assert_fail(const char *file, int line, const char *expr) {
  kv_log(KV_LOG_ERROR, "assertion failed at %s:%d: %s", file, line, expr);
  abort();
}
