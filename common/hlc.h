/* hlc.h: hybrid logical clocks (Kulkarni et al.), packed in 64 bits: the high 48 bits are
 * milliseconds since the Unix epoch, the low 16 a logical counter. Timestamps from one
 * clock strictly increase, and a clock that observes a remote timestamp moves past it, so
 * "happened before" implies a smaller timestamp while staying close to wall time.
 *
 * The caller supplies wall time (the sans-IO rule: no clock reads here) and serializes
 * calls on one kv_hlc_t. */
#ifndef KV_HLC_H
#define KV_HLC_H

#include <stdint.h>

typedef struct {
  uint64_t last; /* the last timestamp issued or observed */
} kv_hlc_t;

#define KV_HLC_LOGICAL_BITS 16
static inline uint64_t kv_hlc_ms(uint64_t ts) { return ts >> KV_HLC_LOGICAL_BITS; }

void kv_hlc_init(kv_hlc_t *c);
/* A new timestamp for a local event, strictly greater than every earlier one. */
uint64_t kv_hlc_now(kv_hlc_t *c, uint64_t wall_ms);
/* Moves the clock past a timestamp received from elsewhere. */
void kv_hlc_observe(kv_hlc_t *c, uint64_t remote, uint64_t wall_ms);

#endif
