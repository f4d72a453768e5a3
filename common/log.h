/* log.h: one-line logging to stderr, and always-on assertions.
 *
 * Lines look like "2026-11-21T14:02:03.123Z n1 INFO serving on 127.0.0.1:7001". The prefix
 * (usually the node id) is set once at start-up. When stderr is systemd's journal, lines
 * are "<6>n1 INFO serving on ..." instead: the journal stamps each line itself and takes
 * the sd-daemon(3) prefix as its priority (<7> debug, <6> info, <4> warning, <3> error). KV_ASSERT is never compiled out: a failed
 * assertion logs file, line and the expression, then aborts. */
#ifndef KV_LOG_H
#define KV_LOG_H

#include <stdbool.h>

typedef enum { KV_LOG_DEBUG, KV_LOG_INFO, KV_LOG_WARN, KV_LOG_ERROR } kv_log_level_t;

/* Sets the prefix printed on every line (copied; at most 32 bytes kept). */
void kv_log_set_prefix(const char *prefix);
/* Journal lines (priority prefix, no timestamp) when on. Default off. */
void kv_log_set_journal(bool on);
/* Lines below this level are dropped. Default KV_LOG_INFO. */
void kv_log_set_level(kv_log_level_t level);
void kv_log(kv_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define KV_DEBUG(...) kv_log(KV_LOG_DEBUG, __VA_ARGS__)
#define KV_INFO(...) kv_log(KV_LOG_INFO, __VA_ARGS__)
#define KV_WARN(...) kv_log(KV_LOG_WARN, __VA_ARGS__)
#define KV_ERROR(...) kv_log(KV_LOG_ERROR, __VA_ARGS__)

_Noreturn void kv_assert_fail(const char *file, int line, const char *expr);

#define KV_ASSERT(cond) \
  ((cond) ? (void)0 : kv_assert_fail(__FILE__, __LINE__, #cond))

#endif
