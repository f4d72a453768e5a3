/* consistency.c: level arithmetic. Pure functions of the level and the replica shape. */
#include "consistency.h"

#include <string.h>

#include "log.h"

uint32_t kv_shape_replicas(const kv_replica_shape_t *shape) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < shape->region_count; i++) n += shape->replicas[i];
  return n;
}

static uint32_t quorum_of(uint32_t n) { return n / 2 + 1; }

/* Sets the counts a named level asks for; fails when the shape can never satisfy it. */
static kv_err resolve_level(kv_level_t level, bool is_write, const kv_replica_shape_t *shape,
                            kv_need_t *out, kv_status_t *st) {
  uint32_t n = kv_shape_replicas(shape);
  uint32_t fixed = 0;
  switch (level) {
    case KV_LEVEL_ONE: fixed = 1; break;
    case KV_LEVEL_TWO: fixed = 2; break;
    case KV_LEVEL_THREE: fixed = 3; break;
    case KV_LEVEL_QUORUM: out->total = quorum_of(n); return KV_OK;
    case KV_LEVEL_ALL: out->total = n; return KV_OK;
    case KV_LEVEL_ANY:
      if (!is_write)
        return kv_status_set(st, KV_EINVAL, "ANY is a write level; reads need at least ONE");
      out->total = 1;
      out->hint_counts = true;
      return KV_OK;
    case KV_LEVEL_LOCAL_ONE:
    case KV_LEVEL_LOCAL_QUORUM: {
      uint32_t local = shape->local_region < 0 ? 0 : shape->replicas[shape->local_region];
      if (local == 0)
        return kv_status_set(st, KV_EUNAVAILABLE,
                             "%s needs replicas in the coordinator's region, and keyspace "
                             "'%s' has none there",
                             kv_level_name(level), shape->keyspace);
      out->local = level == KV_LEVEL_LOCAL_ONE ? 1 : quorum_of(local);
      out->total = out->local;
      return KV_OK;
    }
    case KV_LEVEL_EACH_QUORUM:
      for (uint32_t i = 0; i < shape->region_count; i++) {
        out->per_region[i] = quorum_of(shape->replicas[i]);
        out->total += out->per_region[i];
      }
      return KV_OK;
    case KV_LEVEL_DEFAULT:
    case KV_LEVEL_COUNT:
      break;
  }
  KV_ASSERT(fixed > 0);
  if (fixed > n)
    return kv_status_set(st, KV_EINVAL, "level %s needs %u replicas but keyspace '%s' has N=%u",
                         kv_level_name(level), fixed, shape->keyspace, n);
  out->total = fixed;
  return KV_OK;
}

kv_err kv_consistency_resolve(const kv_consistency_t *c, bool is_write,
                              const kv_replica_shape_t *shape, kv_need_t *out,
                              kv_status_t *st) {
  KV_ASSERT(c->level > KV_LEVEL_DEFAULT && c->level < KV_LEVEL_COUNT);
  KV_ASSERT(shape->region_count >= 1 && shape->region_count <= KV_REGIONS_MAX);
  memset(out, 0, sizeof *out);
  uint32_t n = kv_shape_replicas(shape);
  const char *count_name = is_write ? "w" : "r";
  const char *prim_name = is_write ? "pw" : "pr";
  if (c->count > n)
    return kv_status_set(st, KV_EINVAL, "%s is %u but keyspace '%s' has only N=%u replicas",
                         count_name, c->count, shape->keyspace, n);
  if (c->primaries > n)
    return kv_status_set(st, KV_EINVAL, "%s is %u but keyspace '%s' has only N=%u replicas",
                         prim_name, c->primaries, shape->keyspace, n);
  if (c->count > 0) {
    out->total = c->count;
  } else {
    kv_err err = resolve_level(c->level, is_write, shape, out, st);
    if (err != KV_OK) return err;
  }
  /* Like Riak, a request asking for pr primaries waits for at least pr replies. */
  out->primaries = c->primaries;
  if (out->total < out->primaries) out->total = out->primaries;
  return KV_OK;
}
