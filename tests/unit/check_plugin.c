/* check_plugin.c: loading conflict handler plugins (kvnode/plugin.c) and the example plugin
 * deploy/plugins/maxint.c, built by make into build/plugins/ (the runner starts in the repo
 * root, as `make unit` does). Each error a config can cause has its exact sentence. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conflict.h"
#include "plugin.h"

static kv_config_t cfg;

static void plugin_setup(void) {
  kv_conflict_registry_reset();
  memset(&cfg, 0, sizeof cfg);
  snprintf(cfg.path, sizeof cfg.path, "test.yaml");
  cfg.node_count = 1;
  snprintf(cfg.nodes[0].id, sizeof cfg.nodes[0].id, "n1");
  cfg.keyspace_count = 2;
  for (uint32_t i = 0; i < 2; i++) {
    kv_keyspace_conf_t *ks = &cfg.keyspaces[i];
    snprintf(ks->name, sizeof ks->name, "ks%u", i);
    snprintf(ks->handler, sizeof ks->handler, "siblings");
    snprintf(ks->fallback_handler, sizeof ks->fallback_handler, "lww");
    ks->value_bytes_max = 100;
    ks->line = 10 + i;
  }
}

static void plugin_teardown(void) { kv_conflict_registry_reset(); }

static void expect_load_error(const char *handler, const char *sentence) {
  snprintf(cfg.keyspaces[1].handler, sizeof cfg.keyspaces[1].handler, "%s", handler);
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_int_eq(kv_plugins_load(&cfg, &st), KV_ECONFIG);
  ck_assert_str_eq(st.msg, sentence);
  ck_assert_ptr_null(kv_conflict_find(handler));
}

START_TEST(loads_and_registers_the_example_plugin_once) {
  const char *name = "plugin:build/plugins/maxint.so";
  snprintf(cfg.keyspaces[0].handler, sizeof cfg.keyspaces[0].handler, "%s", name);
  snprintf(cfg.keyspaces[1].fallback_handler, sizeof cfg.keyspaces[1].fallback_handler, "%s",
           name);
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_int_eq(kv_plugins_load(&cfg, &st), KV_OK);
  ck_assert_ptr_nonnull(kv_conflict_find(name));
  /* Loading again finds it registered. */
  ck_assert_int_eq(kv_plugins_load(&cfg, &st), KV_OK);
}
END_TEST

/* The example keeps the largest integer, whatever the order; non-integers rank lowest. */
START_TEST(the_example_plugin_keeps_the_largest_integer_in_any_order) {
  snprintf(cfg.keyspaces[0].handler, sizeof cfg.keyspaces[0].handler,
           "plugin:build/plugins/maxint.so");
  kv_status_t st;
  ck_assert_int_eq(kv_plugins_load(&cfg, &st), KV_OK);
  const kv_conflict_handler_t *h = kv_conflict_find(cfg.keyspaces[0].handler);
  const char *values[4] = {"17", "-3", "250", "many"};
  const char *nodes[4] = {"n1", "n2", "n3", "n4"};
  /* Every rotation of the write order gives one state (DVV sorts siblings); the handler is
   * also called directly on every rotation of the versions. */
  for (uint32_t r = 0; r < 4; r++) {
    kv_dvv_t o;
    kv_dvv_init(&o);
    kv_conflict_version_t v[4];
    bool keep[4] = {false};
    for (uint32_t k = 0; k < 4; k++) {
      uint32_t i = (k + r) % 4;
      kv_actor_t a = {.incarnation = 1};
      snprintf(a.node, sizeof a.node, "%s", nodes[i]);
      kv_cc_t none;
      kv_cc_init(&none);
      ck_assert_int_eq(kv_dvv_put(&o, &a, 0, &none, values[i], (uint32_t)strlen(values[i]), false,
                                  100 - i, 16, &st), KV_OK);
      v[k] = (kv_conflict_version_t){.value = (const uint8_t *)values[i],
                                     .value_bytes = (uint32_t)strlen(values[i]),
                                     .node = nodes[i], .incarnation = 1, .counter = 1,
                                     .hlc = 100 - i, .region = ""};
    }
    kv_conflict_result_t res = {.keep = keep, .lost = (bool[4]){false}};
    ck_assert_int_eq(h->resolve(NULL, v, 4, &res), 0);
    for (uint32_t k = 0; k < 4; k++) ck_assert(keep[k] == (v[k].value[0] == '2'));
    kv_conflict_ctx_t ctx = {.cfg = &cfg, .keyspace = "ks0"};
    kv_conflict_outcome_t out;
    kv_conflict_resolve(h, &ctx, &o, &out);
    ck_assert(out.changed && out.single);
    ck_assert_uint_eq(out.lost_count, 3);
    ck_assert_int_eq(memcmp(out.result.value, "250", 3), 0);
    kv_conflict_outcome_free(&out);
    kv_dvv_deinit(&o);
  }
}
END_TEST

START_TEST(a_plugin_that_does_not_load_is_a_config_error) {
  expect_load_error("plugin:build/plugins/nothing-here.so",
                    "test.yaml:11: handler 'plugin:build/plugins/nothing-here.so' cannot be "
                    "loaded: build/plugins/nothing-here.so: cannot open shared object file: No "
                    "such file or directory");
  expect_load_error("plugin:build/plugins/no_entry.so",
                    "test.yaml:11: handler 'plugin:build/plugins/no_entry.so' exports no "
                    "tunekv_conflict_plugin function");
  expect_load_error("plugin:build/plugins/bad_abi.so",
                    "test.yaml:11: handler 'plugin:build/plugins/bad_abi.so' answers ABI "
                    "version 99; this kvnode speaks version 1");
  snprintf(cfg.keyspaces[1].handler, sizeof cfg.keyspaces[1].handler, "lww");
  snprintf(cfg.keyspaces[1].fallback_handler, sizeof cfg.keyspaces[1].fallback_handler,
           "plugin:build/plugins/bad_abi.so");
  kv_status_t st;
  ck_assert_int_eq(kv_plugins_load(&cfg, &st), KV_ECONFIG);
  ck_assert_str_eq(st.msg, "test.yaml:11: fallback_handler 'plugin:build/plugins/bad_abi.so' "
                           "answers ABI version 99; this kvnode speaks version 1");
}
END_TEST

Suite *plugin_suite(void) {
  Suite *s = suite_create("plugin");
  TCase *t = tcase_create("load");
  tcase_add_checked_fixture(t, plugin_setup, plugin_teardown);
  tcase_add_test(t, loads_and_registers_the_example_plugin_once);
  tcase_add_test(t, the_example_plugin_keeps_the_largest_integer_in_any_order);
  tcase_add_test(t, a_plugin_that_does_not_load_is_a_config_error);
  suite_add_tcase(s, t);
  return s;
}
