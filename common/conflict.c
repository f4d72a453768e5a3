/* conflict.c: the built-in conflict handlers, the registry, and the driver that runs a handler
 * over a DVV state (the contract and the soundness argument are in conflict.h).
 *
 * Notes on the design
 *  1. The registry is a fixed table: the four built-ins, then plugins registered at start-up
 *     (KV_HANDLERS_MAX in all). It is written before any request thread runs and only read
 *     after, so lookups take no lock.
 *  2. The driver hands a handler the state's siblings in dot order (the state keeps them
 *     sorted), with the origin region of each from the config, and checks the answer: a KEEP
 *     of nothing, or a MERGE larger than the keyspace allows, is refused and everything is
 *     kept (with a warning), so a bad plugin can hide versions from nobody.
 *  3. Determinism of the built-ins comes from total orders: lww orders by (hlc, node id,
 *     incarnation, counter), which no two distinct versions share; set-union sorts its lines.
 */
#include "conflict.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

/* ---------------------------------------------------------------------- built-ins ---- */

int kv_conflict_siblings(const kv_conflict_env_t *env, const kv_conflict_version_t *v,
                         uint32_t n, kv_conflict_result_t *out) {
  out->kind = KV_CONFLICT_KEEP;
  for (uint32_t i = 0; i < n; i++) out->keep[i] = true;
  return 0;
}

/* > 0 when a is newer than b under lww's total order (hlc, then the dot). */
static int lww_cmp(const kv_conflict_version_t *a, const kv_conflict_version_t *b) {
  if (a->hlc != b->hlc) return a->hlc > b->hlc ? 1 : -1;
  int c = strcmp(a->node, b->node);
  if (c != 0) return c > 0 ? 1 : -1;
  if (a->incarnation != b->incarnation) return a->incarnation > b->incarnation ? 1 : -1;
  if (a->counter != b->counter) return a->counter > b->counter ? 1 : -1;
  return 0;
}

int kv_conflict_lww(const kv_conflict_env_t *env, const kv_conflict_version_t *v, uint32_t n,
                    kv_conflict_result_t *out) {
  uint32_t best = 0;
  for (uint32_t i = 1; i < n; i++)
    if (lww_cmp(&v[i], &v[best]) > 0) best = i;
  out->kind = KV_CONFLICT_KEEP;
  out->keep[best] = true;
  return 0;
}

/* A region's rank: its place in the priority list, or the list's length when unlisted. */
static uint32_t region_rank(const kv_conflict_env_t *env, const char *region) {
  for (uint32_t i = 0; i < env->region_priority_count; i++)
    if (strcmp(env->region_priority[i], region) == 0) return i;
  return env->region_priority_count;
}

int kv_conflict_region_priority(const kv_conflict_env_t *env, const kv_conflict_version_t *v,
                                uint32_t n, kv_conflict_result_t *out) {
  uint32_t best = 0, best_rank = region_rank(env, v[0].region);
  for (uint32_t i = 1; i < n; i++) {
    uint32_t rank = region_rank(env, v[i].region);
    if (rank < best_rank || (rank == best_rank && lww_cmp(&v[i], &v[best]) > 0)) {
      best = i;
      best_rank = rank;
    }
  }
  out->kind = KV_CONFLICT_KEEP;
  out->keep[best] = true;
  return 0;
}

/* ---- set-union ---- */

typedef struct {
  const uint8_t *p;
  uint32_t len;
} line_t;

static int line_cmp(const void *a, const void *b) {
  const line_t *x = a, *y = b;
  uint32_t n = x->len < y->len ? x->len : y->len;
  int c = n ? memcmp(x->p, y->p, n) : 0;
  if (c != 0) return c;
  return x->len < y->len ? -1 : x->len > y->len;
}

/* Sorts lines and drops repeats; returns the new count. */
static uint32_t lines_sort_unique(line_t *l, uint32_t n) {
  if (n == 0) return 0;
  qsort(l, n, sizeof *l, line_cmp);
  uint32_t u = 1;
  for (uint32_t i = 1; i < n; i++)
    if (line_cmp(&l[u - 1], &l[i]) != 0) l[u++] = l[i];
  return u;
}

/* Splits every live version into member lines (adds) and removal markers (without the '-'). */
static void union_split(const kv_conflict_version_t *v, uint32_t n, line_t *adds,
                        uint32_t *n_adds, line_t *removes, uint32_t *n_removes) {
  *n_adds = *n_removes = 0;
  for (uint32_t i = 0; i < n; i++) {
    const uint8_t *p = v[i].value, *end = v[i].value + v[i].value_bytes;
    while (p && p < end) {
      const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
      const uint8_t *stop = nl ? nl : end;
      uint32_t len = (uint32_t)(stop - p);
      if (len > 0 && p[0] == '-') {
        if (len > 1) removes[(*n_removes)++] = (line_t){p + 1, len - 1};
      } else if (len > 0) {
        adds[(*n_adds)++] = (line_t){p, len};
      }
      p = stop + 1;
    }
  }
}

/* At most one line per byte of input (plus one per version without a final newline). */
static size_t union_lines_max(const kv_conflict_version_t *v, uint32_t n) {
  size_t lines = 1;
  for (uint32_t i = 0; i < n; i++) lines += v[i].value_bytes + 1;
  return lines;
}

int kv_conflict_set_union(const kv_conflict_env_t *env, const kv_conflict_version_t *v,
                          uint32_t n, kv_conflict_result_t *out) {
  out->kind = KV_CONFLICT_MERGE;
  bool any_live = false;
  for (uint32_t i = 0; i < n; i++) any_live |= !v[i].tombstone;
  if (!any_live) {
    out->tombstone = true; /* deletes only: the result is a delete */
    return 0;
  }
  for (uint32_t i = 0; i < n; i++) out->lost[i] = v[i].tombstone; /* a delete lost to adds */
  size_t max = union_lines_max(v, n);
  line_t *adds = malloc(max * sizeof *adds), *removes = malloc(max * sizeof *removes);
  if (!adds || !removes) {
    free(adds);
    free(removes);
    return -1;
  }
  uint32_t n_adds, n_removes;
  union_split(v, n, adds, &n_adds, removes, &n_removes);
  n_adds = lines_sort_unique(adds, n_adds);
  n_removes = lines_sort_unique(removes, n_removes);
  size_t bytes = 0;
  uint32_t kept = 0;
  for (uint32_t i = 0; i < n_adds; i++) {
    if (bsearch(&adds[i], removes, n_removes, sizeof *removes, line_cmp)) continue;
    adds[kept++] = adds[i];
    bytes += adds[i].len + 1;
  }
  for (uint32_t i = 0; i < n_removes; i++) bytes += removes[i].len + 2;
  uint8_t *value = bytes ? malloc(bytes) : NULL;
  if (bytes && !value) {
    free(adds);
    free(removes);
    return -1;
  }
  uint8_t *at = value;
  for (uint32_t i = 0; i < kept; i++) {
    memcpy(at, adds[i].p, adds[i].len);
    at += adds[i].len;
    *at++ = '\n';
  }
  for (uint32_t i = 0; i < n_removes; i++) {
    *at++ = '-';
    memcpy(at, removes[i].p, removes[i].len);
    at += removes[i].len;
    *at++ = '\n';
  }
  free(adds);
  free(removes);
  out->value = value;
  out->value_bytes = (uint32_t)bytes;
  return 0;
}

/* ----------------------------------------------------------------------- registry ---- */

#define BUILTINS 4u

static kv_conflict_handler_t registry[KV_HANDLERS_MAX] = {
    {"siblings", kv_conflict_siblings},
    {"lww", kv_conflict_lww},
    {"region-priority", kv_conflict_region_priority},
    {"set-union", kv_conflict_set_union},
};
static uint32_t registry_count = BUILTINS;

const char *kv_conflict_builtin_names(void) {
  return "siblings, lww, region-priority, set-union";
}

bool kv_conflict_is_builtin(const char *name) {
  for (uint32_t i = 0; i < BUILTINS; i++)
    if (strcmp(registry[i].name, name) == 0) return true;
  return false;
}

const kv_conflict_handler_t *kv_conflict_find(const char *name) {
  for (uint32_t i = 0; i < registry_count; i++)
    if (strcmp(registry[i].name, name) == 0) return &registry[i];
  return NULL;
}

kv_err kv_conflict_register(const char *name, kv_conflict_fn resolve, kv_status_t *st) {
  KV_ASSERT(name && resolve);
  if (strlen(name) > KV_HANDLER_BYTES_MAX)
    return kv_status_set(st, KV_EINVAL, "handler name is %zu bytes; the limit is %u",
                         strlen(name), KV_HANDLER_BYTES_MAX);
  if (kv_conflict_find(name))
    return kv_status_set(st, KV_EINVAL, "handler '%s' is already registered", name);
  if (registry_count == KV_HANDLERS_MAX)
    return kv_status_set(st, KV_EBUSY, "%u handlers are registered; the limit is %u",
                         registry_count, KV_HANDLERS_MAX);
  kv_conflict_handler_t *h = &registry[registry_count++];
  memcpy(h->name, name, strlen(name) + 1);
  h->resolve = resolve;
  return KV_OK;
}

void kv_conflict_registry_reset(void) {
  memset(&registry[BUILTINS], 0, sizeof registry - BUILTINS * sizeof registry[0]);
  registry_count = BUILTINS;
}

/* ------------------------------------------------------------------------- driver ---- */

static bool same_content(const kv_sibling_t *a, const kv_sibling_t *b) {
  return a->tombstone == b->tombstone && a->value_bytes == b->value_bytes &&
         (a->value_bytes == 0 || memcmp(a->value, b->value, a->value_bytes) == 0);
}

/* The versions of state's siblings, and the keyspace's part of the environment. */
static void resolve_inputs(const kv_conflict_ctx_t *ctx, const kv_dvv_t *state,
                           kv_conflict_version_t *v, kv_conflict_env_t *env,
                           const char **priority) {
  memset(env, 0, sizeof *env);
  env->keyspace = ctx->keyspace;
  const kv_keyspace_conf_t *ks = ctx->cfg ? kv_config_keyspace(ctx->cfg, ctx->keyspace) : NULL;
  if (ks) {
    for (uint32_t i = 0; i < ks->region_priority_count; i++) priority[i] = ks->region_priority[i];
    env->region_priority = priority;
    env->region_priority_count = ks->region_priority_count;
  }
  for (uint32_t i = 0; i < state->sib_count; i++) {
    const kv_sibling_t *s = &state->sib[i];
    int node = ctx->cfg ? kv_config_node_index(ctx->cfg, s->dot.actor.node) : -1;
    v[i] = (kv_conflict_version_t){
        .value = s->value, .value_bytes = s->value_bytes, .tombstone = s->tombstone,
        .node = s->dot.actor.node, .incarnation = s->dot.actor.incarnation,
        .counter = s->dot.counter, .hlc = s->hlc,
        .region = node >= 0 ? ctx->cfg->nodes[node].region : "",
        .suspect = node >= 0 && ctx->suspect && ctx->suspect[node]};
  }
}

/* Keeps everything: the outcome of a state that needs no resolving, or of a refused answer. */
static void outcome_keep_all(const kv_dvv_t *state, kv_conflict_outcome_t *out) {
  memset(out, 0, sizeof *out);
  for (uint32_t i = 0; i < state->sib_count; i++) out->keep[i] = true;
  if (state->sib_count == 1) {
    out->single = true;
    out->result = state->sib[0];
    out->result.value = NULL; /* not owned: a single sibling is never written back */
    out->result.value_bytes = 0;
  }
}

static void outcome_from_keep(const kv_dvv_t *state, const bool *keep, kv_conflict_outcome_t *out) {
  uint32_t n = state->sib_count, kept = 0, last = 0;
  for (uint32_t i = 0; i < n; i++) {
    out->keep[i] = keep[i];
    if (keep[i]) kept++, last = i;
  }
  for (uint32_t i = 0; i < n; i++) {
    if (keep[i]) continue;
    bool carried = false;
    for (uint32_t j = 0; j < n && !carried; j++) carried = keep[j] && same_content(&state->sib[i], &state->sib[j]);
    out->lost[i] = !carried;
    out->lost_count += !carried;
  }
  out->changed = kept < n;
  out->single = kept == 1;
  if (out->single) {
    out->result = state->sib[last];
    out->result.value = NULL;
    if (state->sib[last].value_bytes) {
      out->result.value = malloc(state->sib[last].value_bytes);
      KV_ASSERT(out->result.value != NULL);
      memcpy(out->result.value, state->sib[last].value, state->sib[last].value_bytes);
    }
  }
}

void kv_conflict_resolve(const kv_conflict_handler_t *h, const kv_conflict_ctx_t *ctx,
                         const kv_dvv_t *state, kv_conflict_outcome_t *out) {
  uint32_t n = state->sib_count;
  outcome_keep_all(state, out);
  if (n < 2) return;
  kv_conflict_version_t v[KV_SIBLINGS_MAX];
  const char *priority[KV_REGIONS_MAX];
  kv_conflict_env_t env;
  resolve_inputs(ctx, state, v, &env, priority);
  bool keep[KV_SIBLINGS_MAX] = {false}, lost[KV_SIBLINGS_MAX] = {false};
  kv_conflict_result_t r = {.kind = KV_CONFLICT_KEEP, .keep = keep, .lost = lost};
  int rc = h->resolve(&env, v, n, &r);
  uint32_t kept = 0;
  for (uint32_t i = 0; i < n; i++) kept += keep[i];
  const kv_keyspace_conf_t *ks = ctx->cfg ? kv_config_keyspace(ctx->cfg, ctx->keyspace) : NULL;
  uint32_t value_max = ks ? ks->value_bytes_max : KV_VALUE_BYTES_HARD_MAX;
  const char *refused = rc != 0                                          ? "it failed"
                        : r.kind == KV_CONFLICT_KEEP && kept == 0        ? "it kept no version"
                        : r.kind == KV_CONFLICT_MERGE && r.value_bytes > value_max
                            ? "its merged value is over the keyspace's value_bytes_max"
                        : r.kind == KV_CONFLICT_MERGE && r.tombstone && r.value_bytes > 0
                            ? "it merged into a delete with a value"
                        : r.kind != KV_CONFLICT_KEEP && r.kind != KV_CONFLICT_MERGE
                            ? "it answered an unknown kind"
                            : NULL;
  if (refused) {
    KV_WARN("conflict handler '%s' on keyspace '%s': %s; keeping all %u versions", h->name,
            ctx->keyspace, refused, n);
    free(r.value);
    return;
  }
  bool any_suspect = false;
  for (uint32_t i = 0; i < n; i++) any_suspect |= v[i].suspect;
  if (r.kind == KV_CONFLICT_KEEP) {
    free(r.value);
    outcome_from_keep(state, keep, out);
  } else {
    out->changed = out->single = out->merged = true;
    memset(out->keep, 0, sizeof out->keep);
    for (uint32_t i = 0; i < n; i++) {
      out->lost[i] = lost[i];
      out->lost_count += lost[i];
    }
    out->result = (kv_sibling_t){.dot = state->sib[n - 1].dot, .tombstone = r.tombstone,
                                 .value = r.value_bytes ? r.value : NULL,
                                 .value_bytes = r.value_bytes};
    if (!r.value_bytes) free(r.value);
  }
  /* The written-back version orders against later writes as the newest it replaces. */
  for (uint32_t i = 0; i < n; i++)
    if (state->sib[i].hlc > out->result.hlc) out->result.hlc = state->sib[i].hlc;
  out->suspect = any_suspect && out->lost_count > 0;
}

void kv_conflict_outcome_free(kv_conflict_outcome_t *out) {
  if (out->changed) free(out->result.value);
  out->result.value = NULL;
}

kv_err kv_conflict_answer(const kv_dvv_t *state, const kv_conflict_outcome_t *o,
                          kv_dvv_t *answer) {
  kv_dvv_init(answer);
  answer->cc = state->cc;
  if (!o->changed) return kv_dvv_copy(answer, state);
  if (o->merged) {
    kv_sibling_t *s = &answer->sib[0];
    *s = o->result;
    s->value = NULL;
    if (o->result.value_bytes) {
      s->value = malloc(o->result.value_bytes);
      if (!s->value) return KV_ENOMEM;
      memcpy(s->value, o->result.value, o->result.value_bytes);
    }
    answer->sib_count = 1;
    return KV_OK;
  }
  for (uint32_t i = 0; i < state->sib_count; i++) {
    if (!o->keep[i]) continue;
    kv_sibling_t *s = &answer->sib[answer->sib_count];
    *s = state->sib[i];
    s->value = NULL;
    if (state->sib[i].value_bytes) {
      s->value = malloc(state->sib[i].value_bytes);
      if (!s->value) {
        kv_dvv_deinit(answer);
        return KV_ENOMEM;
      }
      memcpy(s->value, state->sib[i].value, state->sib[i].value_bytes);
    }
    answer->sib_count++;
  }
  return KV_OK;
}
