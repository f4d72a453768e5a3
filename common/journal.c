/* journal.c: the bounded conflict journal (see journal.h).
 *
 * The entries sit in a ring of KV_JOURNAL_ENTRIES_MAX slots, oldest at head. Adding evicts
 * from the head until both bounds hold again. An entry owns its key and values; copies handed
 * out by kv_journal_list own theirs, so a listing never points into the ring.
 *
 * Repeats: every read of a key that stays unresolved (a `siblings`-like plugin keeping some,
 * or a coordinator that is not a replica and cannot write back) resolves the same versions
 * again. An entry with the same keyspace, key and discarded dots is that same loss, so it is
 * not recorded twice (a linear scan: the ring is bounded, and losses are rare next to reads).
 */
#include "journal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

kv_err kv_journal_init(kv_journal_t *j) {
  memset(j, 0, sizeof *j);
  j->ring = calloc(KV_JOURNAL_ENTRIES_MAX, sizeof *j->ring);
  if (!j->ring) return KV_ENOMEM;
  j->next_seq = 1;
  pthread_mutex_init(&j->lock, NULL);
  return KV_OK;
}

static void version_free(kv_journal_version_t *v) {
  free(v->value);
  v->value = NULL;
}

static void entry_free(kv_journal_entry_t *e) {
  free(e->key);
  version_free(&e->kept);
  for (uint32_t i = 0; i < e->discarded_count; i++) version_free(&e->discarded[i]);
  free(e->discarded);
  memset(e, 0, sizeof *e);
}

void kv_journal_deinit(kv_journal_t *j) {
  if (!j->ring) return;
  for (uint32_t i = 0; i < j->count; i++) entry_free(&j->ring[(j->head + i) % KV_JOURNAL_ENTRIES_MAX]);
  free(j->ring);
  j->ring = NULL;
  pthread_mutex_destroy(&j->lock);
}

void kv_journal_set_sink(kv_journal_t *j, kv_journal_sink_fn sink, void *arg) {
  j->sink = sink;
  j->sink_arg = arg;
}

/* A version of a sibling, its value cut at KV_JOURNAL_VALUE_BYTES_MAX. */
static void version_of(const kv_sibling_t *s, bool has_dot, kv_journal_version_t *v) {
  *v = (kv_journal_version_t){.has_dot = has_dot, .dot = s->dot, .hlc = s->hlc,
                              .tombstone = s->tombstone};
  uint32_t n = s->value_bytes;
  if (n > KV_JOURNAL_VALUE_BYTES_MAX) n = KV_JOURNAL_VALUE_BYTES_MAX, v->truncated = true;
  if (n == 0) return;
  v->value = malloc(n);
  KV_ASSERT(v->value != NULL);
  memcpy(v->value, s->value, n);
  v->value_bytes = n;
}

static bool same_loss(const kv_journal_entry_t *e, const char *keyspace, const uint8_t *key,
                      size_t key_bytes, const kv_dvv_t *state, const kv_conflict_outcome_t *o) {
  if (e->key_bytes != key_bytes || memcmp(e->key, key, key_bytes) != 0 ||
      strcmp(e->keyspace, keyspace) != 0 || e->discarded_count != o->lost_count)
    return false;
  uint32_t k = 0;
  for (uint32_t i = 0; i < state->sib_count; i++) {
    if (!o->lost[i]) continue;
    if (kv_dot_cmp(&e->discarded[k++].dot, &state->sib[i].dot) != 0) return false;
  }
  return true;
}

static void count_discarded(kv_journal_t *j, const char *handler, uint32_t n) {
  for (uint32_t i = 0; i < j->count_n; i++) {
    if (strcmp(j->counts[i].handler, handler) != 0) continue;
    j->counts[i].discarded += n;
    return;
  }
  if (j->count_n == KV_HANDLERS_MAX) return; /* as many handlers as can be registered */
  kv_journal_count_t *c = &j->counts[j->count_n++];
  snprintf(c->handler, sizeof c->handler, "%s", handler);
  c->discarded = n;
}

static void evict_oldest(kv_journal_t *j) {
  kv_journal_entry_t *e = &j->ring[j->head];
  j->bytes -= e->bytes;
  entry_free(e);
  j->head = (j->head + 1) % KV_JOURNAL_ENTRIES_MAX;
  j->count--;
  j->evicted++;
}

/* Builds the entry for o in *e; the caller has checked something was lost. */
static void entry_build(kv_journal_entry_t *e, uint64_t now_ms, const char *keyspace,
                        const uint8_t *key, size_t key_bytes, const char *handler,
                        const char *reason, const kv_dvv_t *state,
                        const kv_conflict_outcome_t *o) {
  memset(e, 0, sizeof *e);
  e->time_ms = now_ms;
  snprintf(e->keyspace, sizeof e->keyspace, "%s", keyspace);
  e->key = malloc(key_bytes ? key_bytes : 1);
  KV_ASSERT(e->key != NULL);
  memcpy(e->key, key, key_bytes);
  e->key_bytes = key_bytes;
  snprintf(e->handler, sizeof e->handler, "%s", handler);
  snprintf(e->reason, sizeof e->reason, "%s", reason);
  e->suspect = o->suspect;
  if (o->single) version_of(&o->result, !o->merged, &e->kept);
  e->discarded = calloc(o->lost_count, sizeof *e->discarded);
  KV_ASSERT(e->discarded != NULL);
  for (uint32_t i = 0; i < state->sib_count; i++)
    if (o->lost[i]) version_of(&state->sib[i], true, &e->discarded[e->discarded_count++]);
  e->bytes = sizeof *e + key_bytes + e->kept.value_bytes;
  for (uint32_t i = 0; i < e->discarded_count; i++)
    e->bytes += sizeof e->discarded[i] + e->discarded[i].value_bytes;
}

bool kv_journal_record(kv_journal_t *j, uint64_t now_ms, const char *keyspace,
                       const uint8_t *key, size_t key_bytes, const char *handler,
                       const char *reason, const kv_dvv_t *state,
                       const kv_conflict_outcome_t *o) {
  if (o->lost_count == 0) return false;
  pthread_mutex_lock(&j->lock);
  for (uint32_t i = 0; i < j->count; i++) {
    if (!same_loss(&j->ring[(j->head + i) % KV_JOURNAL_ENTRIES_MAX], keyspace, key, key_bytes,
                   state, o))
      continue;
    pthread_mutex_unlock(&j->lock);
    return false;
  }
  kv_journal_entry_t e;
  entry_build(&e, now_ms, keyspace, key, key_bytes, handler, reason, state, o);
  e.seq = j->next_seq++;
  while (j->count > 0 &&
         (j->count == KV_JOURNAL_ENTRIES_MAX || j->bytes + e.bytes > KV_JOURNAL_BYTES_MAX))
    evict_oldest(j);
  j->ring[(j->head + j->count) % KV_JOURNAL_ENTRIES_MAX] = e;
  j->count++;
  j->bytes += e.bytes;
  count_discarded(j, handler, e.discarded_count);
  if (j->sink) j->sink(j->sink_arg, &e);
  pthread_mutex_unlock(&j->lock);
  return true;
}

static void version_copy(const kv_journal_version_t *src, kv_journal_version_t *dst) {
  *dst = *src;
  dst->value = NULL;
  if (!src->value_bytes) return;
  dst->value = malloc(src->value_bytes);
  KV_ASSERT(dst->value != NULL);
  memcpy(dst->value, src->value, src->value_bytes);
}

static void entry_copy(const kv_journal_entry_t *src, kv_journal_entry_t *dst) {
  *dst = *src;
  dst->key = malloc(src->key_bytes ? src->key_bytes : 1);
  KV_ASSERT(dst->key != NULL);
  memcpy(dst->key, src->key, src->key_bytes);
  version_copy(&src->kept, &dst->kept);
  dst->discarded = calloc(src->discarded_count ? src->discarded_count : 1, sizeof *dst->discarded);
  KV_ASSERT(dst->discarded != NULL);
  for (uint32_t i = 0; i < src->discarded_count; i++)
    version_copy(&src->discarded[i], &dst->discarded[i]);
}

kv_err kv_journal_list(kv_journal_t *j, uint64_t after, size_t max_bytes,
                       kv_journal_entry_t **out, uint32_t *n, bool *more) {
  pthread_mutex_lock(&j->lock);
  *n = 0;
  *more = false;
  *out = calloc(j->count ? j->count : 1, sizeof **out);
  if (!*out) {
    pthread_mutex_unlock(&j->lock);
    return KV_ENOMEM;
  }
  size_t bytes = 0;
  for (uint32_t i = 0; i < j->count; i++) {
    const kv_journal_entry_t *e = &j->ring[(j->head + i) % KV_JOURNAL_ENTRIES_MAX];
    if (e->seq <= after) continue;
    if (*n > 0 && bytes + e->bytes > max_bytes) {
      *more = true;
      break;
    }
    entry_copy(e, &(*out)[(*n)++]);
    bytes += e->bytes;
  }
  pthread_mutex_unlock(&j->lock);
  return KV_OK;
}

void kv_journal_entries_free(kv_journal_entry_t *e, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) entry_free(&e[i]);
  free(e);
}

uint32_t kv_journal_counts(kv_journal_t *j, kv_journal_count_t *out, uint64_t *evicted) {
  pthread_mutex_lock(&j->lock);
  uint32_t n = j->count_n;
  memcpy(out, j->counts, n * sizeof *out);
  if (evicted) *evicted = j->evicted;
  pthread_mutex_unlock(&j->lock);
  return n;
}
