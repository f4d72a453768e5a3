/* check_main.c: runs every unit suite (one per module). CK_RUN_SUITE=name runs one. */
#include <check.h>
#include <stdlib.h>

Suite *common_suite(void);
Suite *dvv_suite(void);
Suite *config_suite(void);
Suite *store_suite(void);
Suite *consistency_suite(void);
Suite *node_suite(void);
Suite *histogram_suite(void);
Suite *ring_suite(void);
Suite *quorum_suite(void);
Suite *coord_suite(void);
Suite *phi_suite(void);
Suite *link_suite(void);
Suite *conflict_suite(void);
Suite *plugin_suite(void);
Suite *report_suite(void);
Suite *pbs_suite(void);
Suite *metrics_suite(void);
Suite *codec_suite(void);
Suite *hints_suite(void);
Suite *exchange_suite(void);
Suite *reaper_suite(void);
Suite *ownership_suite(void);
Suite *notify_suite(void);
Suite *auth_suite(void);

int main(void) {
  SRunner *sr = srunner_create(common_suite());
  srunner_add_suite(sr, dvv_suite());
  srunner_add_suite(sr, config_suite());
  srunner_add_suite(sr, store_suite());
  srunner_add_suite(sr, consistency_suite());
  srunner_add_suite(sr, node_suite());
  srunner_add_suite(sr, histogram_suite());
  srunner_add_suite(sr, ring_suite());
  srunner_add_suite(sr, quorum_suite());
  srunner_add_suite(sr, coord_suite());
  srunner_add_suite(sr, phi_suite());
  srunner_add_suite(sr, link_suite());
  srunner_add_suite(sr, conflict_suite());
  srunner_add_suite(sr, plugin_suite());
  srunner_add_suite(sr, report_suite());
  srunner_add_suite(sr, pbs_suite());
  srunner_add_suite(sr, metrics_suite());
  srunner_add_suite(sr, codec_suite());
  srunner_add_suite(sr, hints_suite());
  srunner_add_suite(sr, exchange_suite());
  srunner_add_suite(sr, reaper_suite());
  srunner_add_suite(sr, ownership_suite());
  srunner_add_suite(sr, notify_suite());
  srunner_add_suite(sr, auth_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
