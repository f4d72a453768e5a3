/* hlc.c: hybrid logical clocks (Kulkarni et al.), packed as 48 bits of ms + 16 logical.
 *
 * Invariant: c->last never decreases, and every timestamp kv_hlc_now returns is strictly
 * greater than c->last before the call.
 *
 * In the packed form the paper's rules collapse to one line each, because comparing packed
 * values compares (ms, logical) lexicographically:
 *   local event    last := max(wall << 16, last + 1)
 *   receive        last := max(wall << 16, max(last, remote) + 1)
 * When the logical half overflows, the carry moves the ms half one step ahead of wall time;
 * that keeps timestamps strictly increasing, and wall time catches up within a millisecond.
 */
#include "hlc.h"

#include "log.h"

/* Wall time as a timestamp with logical part 0. 48 bits of ms last until the year 10889, so
 * a larger value is a caller bug (for example microseconds passed as ms). */
static uint64_t hlc_from_wall(uint64_t wall_ms) {
  KV_ASSERT(wall_ms >> (64 - KV_HLC_LOGICAL_BITS) == 0);
  return wall_ms << KV_HLC_LOGICAL_BITS;
}

static uint64_t hlc_max(uint64_t a, uint64_t b) { return a > b ? a : b; }

void kv_hlc_init(kv_hlc_t *c) { c->last = 0; }

uint64_t kv_hlc_now(kv_hlc_t *c, uint64_t wall_ms) {
  c->last = hlc_max(hlc_from_wall(wall_ms), c->last + 1);
  return c->last;
}

void kv_hlc_observe(kv_hlc_t *c, uint64_t remote, uint64_t wall_ms) {
  c->last = hlc_max(hlc_from_wall(wall_ms), hlc_max(c->last, remote) + 1);
}
