/* maxint.c: an example conflict handler plugin (common/conflict.h, ABI version 1).
 *
 * For counters that only grow (a high-water mark, a version number): each version's value is
 * a decimal integer, and the version with the largest one is kept. Values that are not
 * integers (and deletes) rank below every integer. Ties go to the version lww would pick
 * (higher timestamp, then the larger dot), so the choice is the same whatever the order of
 * the versions: the contract every handler keeps.
 *
 * Build: cc -std=c11 -fPIC -shared -Icommon -o maxint.so deploy/plugins/maxint.c
 * (`make` builds it as build/plugins/maxint.so). Use: `handler: plugin:/path/to/maxint.so`. */
#define KV_CONFLICT_ABI_ONLY
#include "conflict.h"

#include <string.h>

/* The value as a number: true with *out when it is 1 to 19 decimal digits (an optional
 * leading '-'), nothing else. */
static bool parse(const kv_conflict_version_t *v, long long *out) {
  if (v->tombstone || v->value_bytes == 0 || v->value_bytes > 20) return false;
  const uint8_t *p = v->value, *end = v->value + v->value_bytes;
  bool neg = *p == '-';
  p += neg;
  if (p == end || end - p > 18) return false;
  long long n = 0;
  for (; p < end; p++) {
    if (*p < '0' || *p > '9') return false;
    n = n * 10 + (*p - '0');
  }
  *out = neg ? -n : n;
  return true;
}

/* > 0 when a should be kept over b. */
static int better(const kv_conflict_version_t *a, const kv_conflict_version_t *b) {
  long long x = 0, y = 0;
  bool ax = parse(a, &x), by = parse(b, &y);
  if (ax != by) return ax ? 1 : -1;
  if (ax && x != y) return x > y ? 1 : -1;
  if (a->hlc != b->hlc) return a->hlc > b->hlc ? 1 : -1;
  int c = strcmp(a->node, b->node);
  if (c != 0) return c;
  if (a->incarnation != b->incarnation) return a->incarnation > b->incarnation ? 1 : -1;
  return a->counter > b->counter ? 1 : a->counter < b->counter ? -1 : 0;
}

static int maxint_resolve(const kv_conflict_env_t *env, const kv_conflict_version_t *v,
                          uint32_t n, kv_conflict_result_t *out) {
  (void)env;
  uint32_t best = 0;
  for (uint32_t i = 1; i < n; i++)
    if (better(&v[i], &v[best]) > 0) best = i;
  out->kind = KV_CONFLICT_KEEP;
  out->keep[best] = true;
  return 0;
}

static const kv_conflict_plugin_t plugin = {
    .abi_version = KV_CONFLICT_ABI_VERSION,
    .name = "maxint",
    .resolve = maxint_resolve,
};

const kv_conflict_plugin_t *tunekv_conflict_plugin(void) { return &plugin; }
