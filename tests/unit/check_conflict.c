/* check_conflict.c: the built-in conflict handlers, their order-independence (every
 * permutation of the input gives the same result), the registry, and the driver that runs a
 * handler over a DVV state. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conflict.h"
#include "journal.h"

#define V_MAX 5

/* A version from a short description. */
static kv_conflict_version_t ver(const char *value, const char *node, uint64_t counter,
                                 uint64_t hlc, const char *region) {
  return (kv_conflict_version_t){.value = (const uint8_t *)value,
                                 .value_bytes = value ? (uint32_t)strlen(value) : 0,
                                 .tombstone = value == NULL, .node = node, .incarnation = 1,
                                 .counter = counter, .hlc = hlc, .region = region};
}

/* What a handler answered, in terms of the versions' values so permutations compare. */
typedef struct {
  kv_conflict_kind_t kind;
  char kept[256];     /* KEEP: the kept values, sorted, joined by '|' ("~" for a tombstone) */
  char value[256];    /* MERGE: the value ("~" for a tombstone) */
  char lost[256];     /* MERGE: the lost values, sorted, joined */
} answer_t;

static int str_cmp(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void join_sorted(const char **items, uint32_t n, char *out, size_t out_bytes) {
  qsort(items, n, sizeof *items, str_cmp);
  out[0] = '\0';
  for (uint32_t i = 0; i < n; i++) {
    strncat(out, items[i], out_bytes - strlen(out) - 1);
    if (i + 1 < n) strncat(out, "|", out_bytes - strlen(out) - 1);
  }
}

static const char *shown(const kv_conflict_version_t *v) {
  static char buf[V_MAX][64];
  static int next;
  char *b = buf[next++ % V_MAX];
  if (v->tombstone) return "~";
  snprintf(b, 64, "%.*s", (int)v->value_bytes, v->value);
  return b;
}

static answer_t run(kv_conflict_fn fn, const kv_conflict_env_t *env,
                    const kv_conflict_version_t *v, uint32_t n) {
  bool keep[V_MAX] = {false}, lost[V_MAX] = {false};
  kv_conflict_result_t r = {.keep = keep, .lost = lost};
  ck_assert_int_eq(fn(env, v, n, &r), 0);
  answer_t a;
  memset(&a, 0, sizeof a);
  a.kind = r.kind;
  const char *items[V_MAX];
  uint32_t k = 0;
  for (uint32_t i = 0; i < n; i++)
    if (r.kind == KV_CONFLICT_KEEP ? keep[i] : lost[i]) items[k++] = shown(&v[i]);
  join_sorted(items, k, r.kind == KV_CONFLICT_KEEP ? a.kept : a.lost, sizeof a.kept);
  if (r.kind == KV_CONFLICT_MERGE) {
    if (r.tombstone) snprintf(a.value, sizeof a.value, "~");
    else snprintf(a.value, sizeof a.value, "%.*s", (int)r.value_bytes, (const char *)r.value);
  }
  free(r.value);
  return a;
}

/* Runs fn over every permutation of v and asserts each answers like the first; returns it. */
static answer_t run_all_orders(kv_conflict_fn fn, const kv_conflict_env_t *env,
                               const kv_conflict_version_t *v, uint32_t n) {
  answer_t first = run(fn, env, v, n);
  uint32_t idx[V_MAX], c[V_MAX] = {0};
  for (uint32_t i = 0; i < n; i++) idx[i] = i;
  /* Heap's algorithm, iterative. */
  uint32_t i = 1, orders = 1;
  while (i < n) {
    if (c[i] < i) {
      uint32_t j = i % 2 == 0 ? 0 : c[i], t = idx[j];
      idx[j] = idx[i];
      idx[i] = t;
      kv_conflict_version_t p[V_MAX];
      for (uint32_t k = 0; k < n; k++) p[k] = v[idx[k]];
      answer_t a = run(fn, env, p, n);
      ck_assert_int_eq(a.kind, first.kind);
      ck_assert_str_eq(a.kept, first.kept);
      ck_assert_str_eq(a.value, first.value);
      ck_assert_str_eq(a.lost, first.lost);
      orders++;
      c[i]++;
      i = 1;
    } else {
      c[i] = 0;
      i++;
    }
  }
  uint32_t fact = 1;
  for (uint32_t k = 2; k <= n; k++) fact *= k;
  ck_assert_uint_eq(orders, fact);
  return first;
}

static const kv_conflict_env_t no_env = {.keyspace = "ks"};

START_TEST(siblings_keeps_all) {
  kv_conflict_version_t v[] = {ver("a", "n1", 1, 10, "r"), ver("b", "n2", 1, 20, "r"),
                               ver(NULL, "n3", 1, 30, "r")};
  answer_t a = run_all_orders(kv_conflict_siblings, &no_env, v, 3);
  ck_assert_int_eq(a.kind, KV_CONFLICT_KEEP);
  ck_assert_str_eq(a.kept, "a|b|~");
}
END_TEST

START_TEST(lww_keeps_the_highest_timestamp) {
  kv_conflict_version_t v[] = {ver("old", "n3", 9, 100, "r"), ver("new", "n1", 1, 300, "r"),
                               ver("mid", "n2", 4, 200, "r"), ver(NULL, "n4", 2, 150, "r")};
  ck_assert_str_eq(run_all_orders(kv_conflict_lww, &no_env, v, 4).kept, "new");
  /* A delete with the highest timestamp wins too: the key reads as deleted. */
  v[3].hlc = 400;
  ck_assert_str_eq(run_all_orders(kv_conflict_lww, &no_env, v, 4).kept, "~");
}
END_TEST

START_TEST(lww_breaks_ties_by_node_then_incarnation_then_counter) {
  kv_conflict_version_t v[] = {ver("a", "n1", 7, 500, "r"), ver("b", "n2", 1, 500, "r"),
                               ver("c", "n10", 3, 500, "r")};
  /* "n2" > "n10" > "n1" bytewise. */
  ck_assert_str_eq(run_all_orders(kv_conflict_lww, &no_env, v, 3).kept, "b");
  kv_conflict_version_t w[] = {ver("x", "n1", 9, 5, "r"), ver("y", "n1", 2, 5, "r"),
                               ver("z", "n1", 4, 5, "r")};
  w[1].incarnation = 2;
  ck_assert_str_eq(run_all_orders(kv_conflict_lww, &no_env, w, 3).kept, "y");
  w[1].incarnation = 1;
  ck_assert_str_eq(run_all_orders(kv_conflict_lww, &no_env, w, 3).kept, "x");
}
END_TEST

START_TEST(region_priority_prefers_the_first_region_then_lww) {
  const char *order[] = {"west", "east"};
  kv_conflict_env_t env = {.keyspace = "ks", .region_priority = order,
                           .region_priority_count = 2};
  kv_conflict_version_t v[] = {ver("e-new", "n1", 1, 900, "east"),
                               ver("w-old", "n4", 1, 100, "west"),
                               ver("w-new", "n5", 1, 200, "west"),
                               ver("s-newest", "n7", 1, 999, "south")};
  ck_assert_str_eq(run_all_orders(kv_conflict_region_priority, &env, v, 4).kept, "w-new");
  /* Without west, east beats the unlisted south although south is newer. */
  ck_assert_str_eq(run_all_orders(kv_conflict_region_priority, &env, (kv_conflict_version_t[]){
                                      v[0], v[3]}, 2).kept, "e-new");
  /* Unlisted regions rank equal: lww among them. */
  kv_conflict_version_t u[] = {ver("a", "n1", 1, 10, "x"), ver("b", "n2", 1, 20, "y"),
                               ver("c", "n3", 1, 15, "")};
  ck_assert_str_eq(run_all_orders(kv_conflict_region_priority, &env, u, 3).kept, "b");
  /* No priority list at all: plain lww. */
  ck_assert_str_eq(run_all_orders(kv_conflict_region_priority, &no_env, v, 4).kept, "s-newest");
}
END_TEST

START_TEST(set_union_is_the_sorted_union) {
  kv_conflict_version_t v[] = {ver("3\n1\n", "n1", 1, 1, "r"), ver("2\n1", "n2", 1, 2, "r"),
                               ver("\n4\n\n2\n", "n3", 1, 3, "r")};
  answer_t a = run_all_orders(kv_conflict_set_union, &no_env, v, 3);
  ck_assert_int_eq(a.kind, KV_CONFLICT_MERGE);
  ck_assert_str_eq(a.value, "1\n2\n3\n4\n");
  ck_assert_str_eq(a.lost, "");
}
END_TEST

START_TEST(set_union_keeps_removals_so_stale_versions_cannot_resurrect) {
  /* A client removed "b" (its version has the marker); a stale concurrent version still has
   * "b" and added "c". */
  kv_conflict_version_t v[] = {ver("a\n-b\n", "n1", 2, 50, "r"),
                               ver("a\nb\nc\n", "n2", 1, 40, "r")};
  answer_t a = run_all_orders(kv_conflict_set_union, &no_env, v, 2);
  ck_assert_str_eq(a.value, "a\nc\n-b\n");
  /* The union of the union with the stale version again is stable: b stays removed. */
  kv_conflict_version_t w[] = {ver("a\nc\n-b\n", "n1", 3, 60, "r"), v[1],
                               ver("b\n", "n3", 1, 10, "r")};
  ck_assert_str_eq(run_all_orders(kv_conflict_set_union, &no_env, w, 3).value, "a\nc\n-b\n");
  /* A lone "-" line is not a marker of anything. */
  kv_conflict_version_t x[] = {ver("-\nq\n", "n1", 1, 1, "r"), ver("p", "n2", 1, 1, "r")};
  ck_assert_str_eq(run_all_orders(kv_conflict_set_union, &no_env, x, 2).value, "p\nq\n");
}
END_TEST

START_TEST(set_union_with_deletes) {
  /* A delete of the whole key concurrent with adds loses to them, and is reported lost. */
  kv_conflict_version_t v[] = {ver(NULL, "n1", 1, 99, "r"), ver("x\n", "n2", 1, 1, "r"),
                               ver("", "n3", 1, 1, "r")};
  answer_t a = run_all_orders(kv_conflict_set_union, &no_env, v, 3);
  ck_assert_str_eq(a.value, "x\n");
  ck_assert_str_eq(a.lost, "~");
  /* Deletes only: the result is a delete. */
  kv_conflict_version_t d[] = {ver(NULL, "n1", 1, 1, "r"), ver(NULL, "n2", 1, 2, "r")};
  answer_t b = run_all_orders(kv_conflict_set_union, &no_env, d, 2);
  ck_assert_str_eq(b.value, "~");
  ck_assert_str_eq(b.lost, "");
  /* Empty sets union to the empty value. */
  kv_conflict_version_t e[] = {ver("", "n1", 1, 1, "r"), ver("\n", "n2", 1, 2, "r")};
  ck_assert_str_eq(run_all_orders(kv_conflict_set_union, &no_env, e, 2).value, "");
}
END_TEST

/* ---- the registry ---- */

static int keep_none(const kv_conflict_env_t *env, const kv_conflict_version_t *v, uint32_t n,
                     kv_conflict_result_t *out) {
  out->kind = KV_CONFLICT_KEEP;
  return 0;
}

static int fails(const kv_conflict_env_t *env, const kv_conflict_version_t *v, uint32_t n,
                 kv_conflict_result_t *out) {
  return 7;
}

START_TEST(registry_finds_builtins_and_registered_handlers) {
  kv_conflict_registry_reset();
  ck_assert_ptr_nonnull(kv_conflict_find("siblings"));
  ck_assert_ptr_nonnull(kv_conflict_find("lww"));
  ck_assert_ptr_nonnull(kv_conflict_find("region-priority"));
  ck_assert_ptr_nonnull(kv_conflict_find("set-union"));
  ck_assert_ptr_null(kv_conflict_find("plugin:/x.so"));
  ck_assert(kv_conflict_is_builtin("lww"));
  ck_assert(!kv_conflict_is_builtin("plugin:/x.so"));
  kv_status_t st;
  ck_assert_int_eq(kv_conflict_register("plugin:/x.so", keep_none, &st), KV_OK);
  ck_assert_ptr_eq(kv_conflict_find("plugin:/x.so")->resolve, keep_none);
  ck_assert_int_eq(kv_conflict_register("lww", keep_none, &st), KV_EINVAL);
  ck_assert_str_eq(st.msg, "handler 'lww' is already registered");
  char name[16];
  for (uint32_t i = 0; i < KV_HANDLERS_MAX - 5; i++) {
    snprintf(name, sizeof name, "h%u", i);
    ck_assert_int_eq(kv_conflict_register(name, fails, &st), KV_OK);
  }
  ck_assert_int_eq(kv_conflict_register("one-more", fails, &st), KV_EBUSY);
  ck_assert_str_eq(st.msg, "32 handlers are registered; the limit is 32");
  kv_conflict_registry_reset();
  ck_assert_ptr_null(kv_conflict_find("plugin:/x.so"));
  ck_assert_int_eq(kv_conflict_register("one-more", fails, &st), KV_OK);
  kv_conflict_registry_reset();
}
END_TEST

/* ---- the driver over DVV states ---- */

static kv_config_t cfg;

static void cfg_setup(void) {
  memset(&cfg, 0, sizeof cfg);
  cfg.node_count = 3;
  const char *regions[] = {"east", "east", "west"};
  for (uint32_t i = 0; i < 3; i++) {
    snprintf(cfg.nodes[i].id, sizeof cfg.nodes[i].id, "n%u", i + 1);
    snprintf(cfg.nodes[i].region, sizeof cfg.nodes[i].region, "%s", regions[i]);
  }
  cfg.keyspace_count = 1;
  kv_keyspace_conf_t *ks = &cfg.keyspaces[0];
  snprintf(ks->name, sizeof ks->name, "ks");
  ks->value_bytes_max = 64;
  ks->region_priority_count = 1;
  snprintf(ks->region_priority[0], sizeof ks->region_priority[0], "west");
}

/* A state whose siblings are the given (value or NULL for a tombstone, node, hlc). */
static void state_of(kv_dvv_t *o, uint32_t n, const char *const *values, const char *const *nodes,
                     const uint64_t *hlcs) {
  kv_dvv_init(o);
  for (uint32_t i = 0; i < n; i++) {
    kv_actor_t a = {.incarnation = 1};
    snprintf(a.node, sizeof a.node, "%s", nodes[i]);
    kv_cc_t none;
    kv_cc_init(&none);
    kv_status_t st;
    const char *v = values[i];
    ck_assert_int_eq(kv_dvv_put(o, &a, 0, &none, v, v ? (uint32_t)strlen(v) : 0, v == NULL,
                                hlcs[i], KV_SIBLINGS_MAX, &st), KV_OK);
  }
}

static const char *sib_value(const kv_sibling_t *s) {
  static char buf[128];
  snprintf(buf, sizeof buf, "%.*s", (int)s->value_bytes, s->value ? (const char *)s->value : "");
  return buf;
}

START_TEST(driver_leaves_single_versions_alone) {
  kv_dvv_t o;
  state_of(&o, 1, (const char *[]){"a"}, (const char *[]){"n1"}, (uint64_t[]){5});
  kv_conflict_ctx_t ctx = {.cfg = &cfg, .keyspace = "ks"};
  kv_conflict_outcome_t out;
  kv_conflict_resolve(kv_conflict_find("lww"), &ctx, &o, &out);
  ck_assert(!out.changed);
  ck_assert(out.single);
  ck_assert(out.keep[0]);
  kv_conflict_outcome_free(&out);
  kv_dvv_deinit(&o);
}
END_TEST

START_TEST(driver_lww_loses_all_but_the_winner_and_answers_with_the_whole_context) {
  kv_dvv_t o, ans;
  state_of(&o, 3, (const char *[]){"a", "b", "c"}, (const char *[]){"n1", "n2", "n3"},
           (uint64_t[]){30, 10, 20});
  kv_conflict_ctx_t ctx = {.cfg = &cfg, .keyspace = "ks"};
  kv_conflict_outcome_t out;
  kv_conflict_resolve(kv_conflict_find("lww"), &ctx, &o, &out);
  ck_assert(out.changed && out.single && !out.merged && !out.suspect);
  ck_assert_uint_eq(out.lost_count, 2);
  ck_assert(out.keep[0] && !out.keep[1] && !out.keep[2]);
  ck_assert(!out.lost[0] && out.lost[1] && out.lost[2]);
  ck_assert_str_eq(sib_value(&out.result), "a");
  ck_assert_uint_eq(out.result.hlc, 30);
  ck_assert_int_eq(kv_conflict_answer(&o, &out, &ans), KV_OK);
  ck_assert_uint_eq(ans.sib_count, 1);
  ck_assert_str_eq(sib_value(&ans.sib[0]), "a");
  ck_assert_int_eq(kv_cc_compare(&ans.cc, &o.cc), KV_ORDER_EQUAL);
  kv_status_t st;
  ck_assert(kv_dvv_check(&ans, &st));
  kv_dvv_deinit(&ans);
  kv_conflict_outcome_free(&out);
  kv_dvv_deinit(&o);
}
END_TEST

START_TEST(driver_does_not_count_equal_content_as_lost) {
  kv_dvv_t o;
  state_of(&o, 3, (const char *[]){"same", "same", "other"}, (const char *[]){"n1", "n2", "n3"},
           (uint64_t[]){30, 10, 20});
  kv_conflict_ctx_t ctx = {.cfg = &cfg, .keyspace = "ks"};
  kv_conflict_outcome_t out;
  kv_conflict_resolve(kv_conflict_find("lww"), &ctx, &o, &out);
  ck_assert_uint_eq(out.lost_count, 1);
  ck_assert(out.lost[2] && !out.lost[1]);
  kv_conflict_outcome_free(&out);
  kv_dvv_deinit(&o);
}
END_TEST

START_TEST(driver_gives_regions_and_suspects) {
  kv_dvv_t o;
  /* n3 is the only west node; west is first. */
  state_of(&o, 3, (const char *[]){"a", "b", "w"}, (const char *[]){"n1", "n2", "n3"},
           (uint64_t[]){30, 40, 20});
  bool suspect[3] = {false, true, false};
  kv_conflict_ctx_t ctx = {.cfg = &cfg, .keyspace = "ks", .suspect = suspect};
  kv_conflict_outcome_t out;
  kv_conflict_resolve(kv_conflict_find("region-priority"), &ctx, &o, &out);
  ck_assert_str_eq(sib_value(&out.result), "w");
  ck_assert_uint_eq(out.result.hlc, 40); /* the newest it replaces */
  ck_assert(out.suspect);
  kv_conflict_outcome_free(&out);
  /* Actors the config does not know have region "", which ranks last. */
  kv_dvv_deinit(&o);
  state_of(&o, 2, (const char *[]){"gone", "a"}, (const char *[]){"n9", "n1"},
           (uint64_t[]){90, 10});
  cfg.keyspaces[0].region_priority_count = 0;
  kv_conflict_resolve(kv_conflict_find("region-priority"), &ctx, &o, &out);
  ck_assert_str_eq(sib_value(&out.result), "gone");
  ck_assert(!out.suspect);
  kv_conflict_outcome_free(&out);
  kv_dvv_deinit(&o);
}
END_TEST

START_TEST(driver_merges_set_union) {
  kv_dvv_t o, ans;
  state_of(&o, 3, (const char *[]){"1\n", NULL, "2\n"}, (const char *[]){"n1", "n2", "n3"},
           (uint64_t[]){5, 50, 7});
  kv_conflict_ctx_t ctx = {.cfg = &cfg, .keyspace = "ks"};
  kv_conflict_outcome_t out;
  kv_conflict_resolve(kv_conflict_find("set-union"), &ctx, &o, &out);
  ck_assert(out.changed && out.single && out.merged);
  ck_assert_str_eq(sib_value(&out.result), "1\n2\n");
  ck_assert_uint_eq(out.lost_count, 1);
  ck_assert(out.lost[1]); /* the delete */
  ck_assert_uint_eq(out.result.hlc, 50);
  ck_assert_int_eq(kv_conflict_answer(&o, &out, &ans), KV_OK);
  ck_assert_uint_eq(ans.sib_count, 1);
  ck_assert_str_eq(sib_value(&ans.sib[0]), "1\n2\n");
  kv_status_t st;
  ck_assert(kv_dvv_check(&ans, &st));
  kv_dvv_deinit(&ans);
  kv_conflict_outcome_free(&out);
  kv_dvv_deinit(&o);
}
END_TEST

START_TEST(driver_keeps_everything_when_a_handler_breaks_the_contract) {
  kv_dvv_t o, ans;
  state_of(&o, 2, (const char *[]){"a", "b"}, (const char *[]){"n1", "n2"}, (uint64_t[]){1, 2});
  kv_conflict_ctx_t ctx = {.cfg = &cfg, .keyspace = "ks"};
  kv_conflict_handler_t bad[] = {{"none", keep_none}, {"fails", fails}};
  for (int i = 0; i < 2; i++) {
    kv_conflict_outcome_t out;
    kv_conflict_resolve(&bad[i], &ctx, &o, &out);
    ck_assert(!out.changed);
    ck_assert_uint_eq(out.lost_count, 0);
    ck_assert_int_eq(kv_conflict_answer(&o, &out, &ans), KV_OK);
    ck_assert(kv_dvv_equal(&ans, &o));
    kv_dvv_deinit(&ans);
    kv_conflict_outcome_free(&out);
  }
  /* A merge past the keyspace's value_bytes_max (64 here) is refused too. */
  char big[2][60];
  memset(big[0], 'x', 59);
  memset(big[1], 'y', 59);
  big[0][59] = big[1][59] = '\0';
  kv_dvv_deinit(&o);
  state_of(&o, 2, (const char *[]){big[0], big[1]}, (const char *[]){"n1", "n2"},
           (uint64_t[]){1, 2});
  kv_conflict_outcome_t out;
  kv_conflict_resolve(kv_conflict_find("set-union"), &ctx, &o, &out);
  ck_assert(!out.changed);
  kv_conflict_outcome_free(&out);
  kv_dvv_deinit(&o);
}
END_TEST

/* ---- the journal ---- */

static void journal_one(kv_journal_t *j, const char *key, uint64_t hlc_b, uint32_t value_bytes) {
  char big[KV_JOURNAL_VALUE_BYTES_MAX + 10];
  memset(big, 'x', sizeof big);
  big[value_bytes < sizeof big ? value_bytes : sizeof big - 1] = '\0';
  kv_dvv_t o;
  state_of(&o, 2, (const char *[]){big, "b"}, (const char *[]){"n1", "n2"},
           (uint64_t[]){1, hlc_b});
  kv_conflict_ctx_t ctx = {.cfg = &cfg, .keyspace = "ks"};
  kv_conflict_outcome_t out;
  kv_conflict_resolve(kv_conflict_find("lww"), &ctx, &o, &out);
  kv_journal_record(j, 77, "ks", (const uint8_t *)key, strlen(key), "lww", "read", &o, &out);
  kv_conflict_outcome_free(&out);
  kv_dvv_deinit(&o);
}

START_TEST(journal_records_once_bounds_and_pages) {
  cfg.keyspaces[0].value_bytes_max = KV_VALUE_BYTES_HARD_MAX;
  kv_journal_t j;
  ck_assert_int_eq(kv_journal_init(&j), KV_OK);
  journal_one(&j, "k1", 5, 3);
  journal_one(&j, "k1", 5, 3); /* the same loss again */
  journal_one(&j, "k2", 5, KV_JOURNAL_VALUE_BYTES_MAX + 5);
  kv_journal_entry_t *e;
  uint32_t n;
  bool more;
  ck_assert_int_eq(kv_journal_list(&j, 0, SIZE_MAX, &e, &n, &more), KV_OK);
  ck_assert_uint_eq(n, 2);
  ck_assert_uint_eq(e[0].seq, 1);
  ck_assert_uint_eq(e[1].seq, 2);
  ck_assert_uint_eq(e[0].time_ms, 77);
  ck_assert_mem_eq(e[0].key, "k1", 2);
  ck_assert_mem_eq(e[0].kept.value, "b", 1);
  ck_assert_uint_eq(e[0].discarded_count, 1);
  ck_assert_uint_eq(e[0].discarded[0].value_bytes, 3);
  ck_assert(!e[0].discarded[0].truncated);
  ck_assert_uint_eq(e[1].discarded[0].value_bytes, KV_JOURNAL_VALUE_BYTES_MAX);
  ck_assert(e[1].discarded[0].truncated);
  kv_journal_entries_free(e, n);
  /* Pages: one entry per page when the budget is tiny, and after= skips what was seen. */
  ck_assert_int_eq(kv_journal_list(&j, 0, 1, &e, &n, &more), KV_OK);
  ck_assert_uint_eq(n, 1);
  ck_assert(more);
  kv_journal_entries_free(e, n);
  ck_assert_int_eq(kv_journal_list(&j, 1, 1, &e, &n, &more), KV_OK);
  ck_assert_uint_eq(n, 1);
  ck_assert_uint_eq(e[0].seq, 2);
  ck_assert(!more);
  kv_journal_entries_free(e, n);
  /* Past KV_JOURNAL_ENTRIES_MAX the oldest go; the counter keeps counting. */
  char key[16];
  for (uint32_t i = 0; i < KV_JOURNAL_ENTRIES_MAX; i++) {
    snprintf(key, sizeof key, "m%u", i);
    journal_one(&j, key, 5, 1);
  }
  kv_journal_count_t counts[KV_HANDLERS_MAX];
  uint64_t evicted;
  ck_assert_uint_eq(kv_journal_counts(&j, counts, &evicted), 1);
  ck_assert_str_eq(counts[0].handler, "lww");
  ck_assert_uint_eq(counts[0].discarded, KV_JOURNAL_ENTRIES_MAX + 2);
  ck_assert_uint_eq(evicted, 2);
  ck_assert_int_eq(kv_journal_list(&j, 0, SIZE_MAX, &e, &n, &more), KV_OK);
  ck_assert_uint_eq(n, KV_JOURNAL_ENTRIES_MAX);
  ck_assert_uint_eq(e[0].seq, 3);
  kv_journal_entries_free(e, n);
  kv_journal_deinit(&j);
}
END_TEST

Suite *conflict_suite(void) {
  Suite *s = suite_create("conflict");
  TCase *h = tcase_create("handlers");
  tcase_add_test(h, siblings_keeps_all);
  tcase_add_test(h, lww_keeps_the_highest_timestamp);
  tcase_add_test(h, lww_breaks_ties_by_node_then_incarnation_then_counter);
  tcase_add_test(h, region_priority_prefers_the_first_region_then_lww);
  tcase_add_test(h, set_union_is_the_sorted_union);
  tcase_add_test(h, set_union_keeps_removals_so_stale_versions_cannot_resurrect);
  tcase_add_test(h, set_union_with_deletes);
  tcase_add_test(h, registry_finds_builtins_and_registered_handlers);
  suite_add_tcase(s, h);
  TCase *d = tcase_create("driver");
  tcase_add_checked_fixture(d, cfg_setup, NULL);
  tcase_add_test(d, driver_leaves_single_versions_alone);
  tcase_add_test(d, driver_lww_loses_all_but_the_winner_and_answers_with_the_whole_context);
  tcase_add_test(d, driver_does_not_count_equal_content_as_lost);
  tcase_add_test(d, driver_gives_regions_and_suspects);
  tcase_add_test(d, driver_merges_set_union);
  tcase_add_test(d, driver_keeps_everything_when_a_handler_breaks_the_contract);
  tcase_add_test(d, journal_records_once_bounds_and_pages);
  suite_add_tcase(s, d);
  return s;
}
