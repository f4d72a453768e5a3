/* check_store.c: kvnode/store on a real RocksDB in temporary directories under /tmp.
 *
 * Each test case gets a base directory from an unchecked fixture. Unchecked fixtures run in
 * the runner process, not in the forked test, so the directory is removed even when a test
 * fails. Tests that need records the store would never write (corrupt frames) or need to
 * see the bytes it wrote open the database with RocksDB's C API directly, after the store is
 * closed; that is the only reason this file includes rocksdb/c.h. */
#include <check.h>
#include <ftw.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "fmt.h"
#include "kv_limits.h"
#include "store.h"

/* Room for a test directory path: /tmp/<base>/<test name>. */
#define DIR_BYTES 256

static char base_dir[DIR_BYTES];

static void base_setup(void) {
  snprintf(base_dir, sizeof base_dir, "/tmp/tunekv-check-store-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(base_dir));
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *info) {
  return remove(path);
}

static void base_teardown(void) { nftw(base_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* dir := <base>/<name>; the store creates it. */
static void test_dir(char *dir, size_t dir_bytes, const char *name) {
  snprintf(dir, dir_bytes, "%s/%s", base_dir, name);
}

static kv_store_t *open_ok(const char *dir) {
  kv_store_t *s = NULL;
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_msg(kv_store_open(dir, &s, &st) == KV_OK, "open: %s", st.msg);
  ck_assert_ptr_nonnull(s);
  return s;
}

static void put_ok(kv_store_t *s, uint32_t p, const char *ks, const void *key, size_t key_bytes,
                   const char *val, bool sync) {
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_msg(kv_store_put(s, p, ks, key, key_bytes, val, strlen(val), sync, &st) == KV_OK,
                "put: %s", st.msg);
}

/* Asserts that the record is want (a string), or absent when want is NULL. */
static void expect(kv_store_t *s, uint32_t p, const char *ks, const void *key,
                   size_t key_bytes, const char *want) {
  uint8_t *rec = NULL;
  size_t rec_bytes = 0;
  bool found = true;
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_msg(kv_store_get(s, p, ks, key, key_bytes, &rec, &rec_bytes, &found, &st) == KV_OK,
                "get: %s", st.msg);
  if (want == NULL) {
    ck_assert(!found);
    return;
  }
  ck_assert(found);
  ck_assert_uint_eq(rec_bytes, strlen(want));
  ck_assert_mem_eq(rec, want, rec_bytes);
  free(rec);
}

/* Asserts that reading the key fails with code and exactly msg. */
static void expect_error(kv_store_t *s, uint32_t p, const char *ks, const void *key,
                         size_t key_bytes, kv_err code, const char *msg) {
  uint8_t *rec = NULL;
  size_t rec_bytes = 0;
  bool found = true;
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_int_eq(kv_store_get(s, p, ks, key, key_bytes, &rec, &rec_bytes, &found, &st), code);
  ck_assert_int_eq(st.code, code);
  ck_assert_str_eq(st.msg, msg);
  ck_assert(!found);
  ck_assert_ptr_null(rec);
}

/* ---------------------------------------------------------------- RocksDB directly */

/* Every family the store opens (the "aae" one is never read here: its merge operator is the
 * store's). */
static const char *const cf_names[5] = {"default", "data", "hints", "meta", "aae"};

typedef struct {
  rocksdb_t *db;
  rocksdb_column_family_handle_t *cf[5];
  rocksdb_options_t *opts;
} raw_db_t;

static void raw_open(raw_db_t *r, const char *dir) {
  r->opts = rocksdb_options_create();
  const rocksdb_options_t *cf_opts[5] = {r->opts, r->opts, r->opts, r->opts, r->opts};
  char *err = NULL;
  r->db = rocksdb_open_column_families(r->opts, dir, 5, cf_names, cf_opts, r->cf, &err);
  ck_assert_msg(err == NULL, "raw open: %s", err);
}

static void raw_close(raw_db_t *r) {
  for (int i = 0; i < 5; i++) rocksdb_column_family_handle_destroy(r->cf[i]);
  rocksdb_close(r->db);
  rocksdb_options_destroy(r->opts);
}

/* The data key of store.h's layout, built by hand: [partition BE][keyspace][0][key]. */
static size_t raw_key(char *out, uint32_t p, const char *ks, const void *key, size_t key_bytes) {
  out[0] = (char)(p >> 24);
  out[1] = (char)(p >> 16);
  out[2] = (char)(p >> 8);
  out[3] = (char)p;
  size_t ks_bytes = strlen(ks) + 1;
  memcpy(out + 4, ks, ks_bytes);
  memcpy(out + 4 + ks_bytes, key, key_bytes);
  return 4 + ks_bytes + key_bytes;
}

/* A good frame by hand: "TKV1", xxh64 of the payload little-endian, the payload. */
static size_t raw_frame(char *out, const char *payload) {
  size_t n = strlen(payload);
  uint64_t h = XXH64(payload, n, 0);
  memcpy(out, "TKV1", 4);
  for (int i = 0; i < 8; i++) out[4 + i] = (char)(h >> (8 * i));
  memcpy(out + 12, payload, n);
  return 12 + n;
}

/* Writes (key, val) as is into column family cf (an index into cf_names), the store being
 * closed. */
static void raw_put_cf(const char *dir, int cf, const char *key, size_t key_bytes,
                       const void *val, size_t val_bytes) {
  raw_db_t r;
  raw_open(&r, dir);
  rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
  char *err = NULL;
  rocksdb_put_cf(r.db, wo, r.cf[cf], key, key_bytes, val, val_bytes, &err);
  ck_assert_msg(err == NULL, "raw put: %s", err);
  rocksdb_writeoptions_destroy(wo);
  raw_close(&r);
}

/* Writes val (val_bytes of it, as is) under a data key. */
static void raw_put(const char *dir, uint32_t p, const char *ks, const void *key,
                    size_t key_bytes, const void *val, size_t val_bytes) {
  char k[1024];
  size_t k_bytes = raw_key(k, p, ks, key, key_bytes);
  raw_put_cf(dir, 1, k, k_bytes, val, val_bytes);
}

/* ---------------------------------------------------------------- basics */

START_TEST(put_get_round_trip) {
  char dir[DIR_BYTES];
  test_dir(dir, sizeof dir, "rt");
  kv_store_t *s = open_ok(dir);
  put_ok(s, 7, "default", "k", 1, "hello", false);
  expect(s, 7, "default", "k", 1, "hello");
  /* Binary payloads and empty ones come back byte for byte. */
  const uint8_t bin[5] = {0, 0xff, 'x', 0, 1};
  kv_status_t st;
  ck_assert_int_eq(kv_store_put(s, 7, "default", "b", 1, bin, sizeof bin, true, &st), KV_OK);
  ck_assert_int_eq(kv_store_put(s, 7, "default", "e", 1, NULL, 0, false, &st), KV_OK);
  uint8_t *rec = NULL;
  size_t rec_bytes = 0;
  bool found = false;
  ck_assert_int_eq(kv_store_get(s, 7, "default", "b", 1, &rec, &rec_bytes, &found, &st), KV_OK);
  ck_assert(found);
  ck_assert_uint_eq(rec_bytes, sizeof bin);
  ck_assert_mem_eq(rec, bin, sizeof bin);
  free(rec);
  ck_assert_int_eq(kv_store_get(s, 7, "default", "e", 1, &rec, &rec_bytes, &found, &st), KV_OK);
  ck_assert(found);
  ck_assert_uint_eq(rec_bytes, 0);
  ck_assert_ptr_nonnull(rec);
  free(rec);
  kv_store_close(s);
}
END_TEST

START_TEST(missing_key_is_not_found) {
  char dir[DIR_BYTES];
  test_dir(dir, sizeof dir, "missing");
  kv_store_t *s = open_ok(dir);
  expect(s, 0, "default", "nope", 4, NULL);
  put_ok(s, 0, "default", "nope2", 5, "v", false);
  expect(s, 0, "default", "nope", 4, NULL); /* a longer neighbour is not a match */
  kv_store_close(s);
}
END_TEST

START_TEST(overwrite_replaces_record) {
  char dir[DIR_BYTES];
  test_dir(dir, sizeof dir, "overwrite");
  kv_store_t *s = open_ok(dir);
  put_ok(s, 3, "default", "k", 1, "first, and longer", false);
  put_ok(s, 3, "default", "k", 1, "second", true);
  expect(s, 3, "default", "k", 1, "second");
  kv_store_close(s);
}
END_TEST

START_TEST(keyspaces_and_partitions_stay_separate) {
  char dir[DIR_BYTES];
  test_dir(dir, sizeof dir, "separate");
  kv_store_t *s = open_ok(dir);
  put_ok(s, 1, "a", "k", 1, "a/1", false);
  put_ok(s, 1, "b", "k", 1, "b/1", false);
  put_ok(s, 2, "a", "k", 1, "a/2", false);
  /* The 0x00 separator keeps ("ab", "c") apart from ("a", "bc"). */
  put_ok(s, 1, "ab", "c", 1, "ab+c", false);
  put_ok(s, 1, "a", "bc", 2, "a+bc", false);
  expect(s, 1, "a", "k", 1, "a/1");
  expect(s, 1, "b", "k", 1, "b/1");
  expect(s, 2, "a", "k", 1, "a/2");
  expect(s, 2, "b", "k", 1, NULL);
  expect(s, 1, "ab", "c", 1, "ab+c");
  expect(s, 1, "a", "bc", 2, "a+bc");
  kv_status_t st;
  ck_assert_int_eq(kv_store_delete(s, 1, "a", "k", 1, false, &st), KV_OK);
  expect(s, 1, "a", "k", 1, NULL);
  expect(s, 1, "b", "k", 1, "b/1");
  expect(s, 2, "a", "k", 1, "a/2");
  kv_store_close(s);
}
END_TEST

START_TEST(delete_removes_record) {
  char dir[DIR_BYTES];
  test_dir(dir, sizeof dir, "delete");
  kv_store_t *s = open_ok(dir);
  put_ok(s, 5, "default", "k", 1, "v", false);
  kv_status_t st;
  ck_assert_int_eq(kv_store_delete(s, 5, "default", "k", 1, true, &st), KV_OK);
  expect(s, 5, "default", "k", 1, NULL);
  /* Deleting what is not there is not an error: reaping may run twice. */
  ck_assert_int_eq(kv_store_delete(s, 5, "default", "k", 1, false, &st), KV_OK);
  kv_store_close(s);
  s = open_ok(dir);
  expect(s, 5, "default", "k", 1, NULL);
  kv_store_close(s);
}
END_TEST

/* ---------------------------------------------------------------- scans */

#define SCAN_MAX 16

typedef struct {
  int n;
  int stop_after; /* 0: never stop */
  char got[SCAN_MAX][2 * KV_FMT_KEY_BYTES + 64];
} scan_log_t;

/* Records "keyspace|key|record", keyspace and key escaped, one line per call. */
static bool scan_collect(void *arg, const char *ks, const void *key, size_t key_bytes,
                         const void *rec, size_t rec_bytes) {
  scan_log_t *seen = arg;
  ck_assert_int_lt(seen->n, SCAN_MAX);
  char ks_text[KV_FMT_KEY_BYTES], key_text[KV_FMT_KEY_BYTES];
  kv_fmt_bytes(ks_text, sizeof ks_text, ks, strlen(ks));
  kv_fmt_bytes(key_text, sizeof key_text, key, key_bytes);
  snprintf(seen->got[seen->n++], sizeof seen->got[0], "%s|%s|%.*s", ks_text, key_text,
           (int)rec_bytes, (const char *)rec);
  return seen->stop_after == 0 || seen->n < seen->stop_after;
}

static void expect_scan(kv_store_t *s, uint32_t p, const char *const *want, int want_n) {
  scan_log_t seen = {0};
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_msg(kv_store_scan_partition(s, p, scan_collect, &seen, &st) == KV_OK, "scan: %s",
                st.msg);
  ck_assert_int_eq(seen.n, want_n);
  for (int i = 0; i < want_n; i++) ck_assert_str_eq(seen.got[i], want[i]);
}

typedef struct {
  uint32_t p;
  const char *ks;
  const char *key;
  size_t key_bytes;
  const char *val;
} rec_t;

/* Neighbouring partitions at both ends of the range, keyspaces that prefix each other, and
 * bytes 0x00 and 0xff in keys and keyspaces. */
static const rec_t scan_recs[] = {
    {0, "a", "\x00", 1, "p0-1"},        {0, "a", "k", 1, "p0-2"},
    {0, "a", "k\x00z", 3, "p0-3"},      {0, "a", "\xff\xff", 2, "p0-4"},
    {0, "ab", "k", 1, "p0-5"},          {0, "\xff", "\xff", 1, "p0-6"},
    {1, "a", "k", 1, "p1-1"},           {1, "\xff", "\x00", 1, "p1-2"},
    {0xFFFFFFFEu, "a", "k", 1, "pe-1"}, {0xFFFFFFFFu, "a", "\x00", 1, "pf-1"},
    {0xFFFFFFFFu, "a", "k", 1, "pf-2"}, {0xFFFFFFFFu, "\xff", "\xff\xff", 2, "pf-3"},
};

START_TEST(scan_returns_one_partition_in_key_order) {
  char dir[DIR_BYTES];
  test_dir(dir, sizeof dir, "scan");
  kv_store_t *s = open_ok(dir);
  int n = (int)(sizeof scan_recs / sizeof scan_recs[0]);
  for (int i = n - 1; i >= 0; i--) { /* written backwards: order comes from the store */
    const rec_t *r = &scan_recs[i];
    put_ok(s, r->p, r->ks, r->key, r->key_bytes, r->val, false);
  }
  static const char *const p0[] = {"a|\\x00|p0-1", "a|k|p0-2", "a|k\\x00z|p0-3",
                                   "a|\\xff\\xff|p0-4", "ab|k|p0-5", "\\xff|\\xff|p0-6"};
  static const char *const p1[] = {"a|k|p1-1", "\\xff|\\x00|p1-2"};
  static const char *const pe[] = {"a|k|pe-1"};
  static const char *const pf[] = {"a|\\x00|pf-1", "a|k|pf-2", "\\xff|\\xff\\xff|pf-3"};
  expect_scan(s, 0, p0, 6);
  expect_scan(s, 1, p1, 2);
  expect_scan(s, 2, NULL, 0);
  expect_scan(s, 0x80000000u, NULL, 0);
  expect_scan(s, 0xFFFFFFFEu, pe, 1);
  expect_scan(s, 0xFFFFFFFFu, pf, 3);
  /* Deleted records drop out of scans. */
  kv_status_t st;
  ck_assert_int_eq(kv_store_delete(s, 1, "a", "k", 1, false, &st), KV_OK);
  expect_scan(s, 1, p1 + 1, 1);
  kv_store_close(s);
}
END_TEST

START_TEST(scan_stops_when_callback_says_so) {
  char dir[DIR_BYTES];
  test_dir(dir, sizeof dir, "scanstop");
  kv_store_t *s = open_ok(dir);
  put_ok(s, 9, "default", "a", 1, "1", false);
  put_ok(s, 9, "default", "b", 1, "2", false);
  put_ok(s, 9, "default", "c", 1, "3", false);
  scan_log_t seen = {.stop_after = 2};
  kv_status_t st;
  ck_assert_int_eq(kv_store_scan_partition(s, 9, scan_collect, &seen, &st), KV_OK);
  ck_assert_int_eq(seen.n, 2);
  ck_assert_str_eq(seen.got[1], "default|b|2");
  kv_store_close(s);
}
END_TEST

/* ---------------------------------------------------------------- durability */

START_TEST(incarnation_is_stable_and_new_per_directory) {
  char dir1[DIR_BYTES], dir2[DIR_BYTES];
  test_dir(dir1, sizeof dir1, "inc1");
  test_dir(dir2, sizeof dir2, "inc2");
  kv_store_t *s = open_ok(dir1);
  uint64_t first = kv_store_incarnation(s);
  ck_assert_uint_ne(first, 0);
  kv_store_close(s);
  s = open_ok(dir1);
  ck_assert_uint_eq(kv_store_incarnation(s), first);
  kv_store_close(s);
  s = open_ok(dir2);
  ck_assert_uint_ne(kv_store_incarnation(s), 0);
  ck_assert_uint_ne(kv_store_incarnation(s), first);
  kv_store_close(s);
}
END_TEST

/* A process that ends without closing (here: a child that _exits) leaves no clean mark, so
 * the next open takes a new incarnation: dots minted before a power loss may have reached
 * other replicas and must never be minted again. What it wrote is still there. */
START_TEST(incarnation_is_new_after_an_unclean_end) {
  char dir[DIR_BYTES];
  test_dir(dir, sizeof dir, "inc-crash");
  kv_store_t *s = open_ok(dir);
  uint64_t first = kv_store_incarnation(s);
  kv_store_close(s);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    kv_status_t st;
    kv_store_t *child;
    if (kv_store_open(dir, &child, &st) != KV_OK || kv_store_incarnation(child) != first ||
        kv_store_put(child, 1, "default", "k", 1, "v", 1, true, &st) != KV_OK)
      _exit(1);
    _exit(0); /* no kv_store_close: a killed process */
  }
  int status;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  s = open_ok(dir);
  uint64_t second = kv_store_incarnation(s);
  ck_assert_uint_ne(second, first);
  ck_assert_uint_ne(second, 0);
  kv_status_t st;
  uint8_t *rec;
  size_t rec_bytes;
  bool found;
  ck_assert_int_eq(kv_store_get(s, 1, "default", "k", 1, &rec, &rec_bytes, &found, &st), KV_OK);
  ck_assert(found);
  free(rec);
  kv_store_close(s);
  s = open_ok(dir); /* and a clean close keeps the new one */
  ck_assert_uint_eq(kv_store_incarnation(s), second);
  kv_store_close(s);
}
END_TEST

START_TEST(records_survive_close_and_reopen) {
  char dir[DIR_BYTES];
  test_dir(dir, sizeof dir, "reopen");
  kv_store_t *s = open_ok(dir);
  put_ok(s, 4, "default", "synced", 6, "s", true);
  put_ok(s, 4, "default", "unsynced", 8, "u", false);
  kv_store_close(s);
  s = open_ok(dir);
  expect(s, 4, "default", "synced", 6, "s");
  expect(s, 4, "default", "unsynced", 8, "u");
  kv_store_close(s);
}
END_TEST

START_TEST(records_survive_sigkill) {
  char dir[DIR_BYTES];
  test_dir(dir, sizeof dir, "sigkill");
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    /* No close: the process dies with the database open, as in a crash. */
    kv_store_t *s = NULL;
    if (kv_store_open(dir, &s, NULL) != KV_OK) _exit(2);
    if (kv_store_put(s, 4, "default", "synced", 6, "s", 1, true, NULL) != KV_OK) _exit(3);
    if (kv_store_put(s, 4, "default", "unsynced", 8, "u", 1, false, NULL) != KV_OK) _exit(4);
    raise(SIGKILL);
    _exit(5);
  }
  int status = 0;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %d", status);
  kv_store_t *s = open_ok(dir);
  expect(s, 4, "default", "synced", 6, "s");
  expect(s, 4, "default", "unsynced", 8, "u");
  kv_store_close(s);
}
END_TEST

/* ---------------------------------------------------------------- layout and corruption */

START_TEST(on_disk_layout_matches_header) {
  char dir[DIR_BYTES];
  test_dir(dir, sizeof dir, "layout");
  kv_store_t *s = open_ok(dir);
  put_ok(s, 0x01020304u, "ks", "key", 3, "payload", false);
  kv_store_close(s);

  /* What the store wrote is exactly the hand-made key and frame... */
  raw_db_t r;
  raw_open(&r, dir);
  char k[64], want[64];
  size_t k_bytes = raw_key(k, 0x01020304u, "ks", "key", 3);
  ck_assert_mem_eq(k, "\x01\x02\x03\x04ks\0key", k_bytes);
  size_t want_bytes = raw_frame(want, "payload");
  rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
  size_t got_bytes = 0;
  char *err = NULL;
  char *got = rocksdb_get_cf(r.db, ro, r.cf[1], k, k_bytes, &got_bytes, &err);
  ck_assert_ptr_null(err);
  ck_assert_ptr_nonnull(got);
  ck_assert_uint_eq(got_bytes, want_bytes);
  ck_assert_mem_eq(got, want, want_bytes);
  rocksdb_free(got);
  rocksdb_readoptions_destroy(ro);
  raw_close(&r);

  /* ...and a hand-made record reads back through the store. */
  size_t frame_bytes = raw_frame(want, "by hand");
  raw_put(dir, 0xFFFFFFFFu, "ks", "other", 5, want, frame_bytes);
  s = open_ok(dir);
  expect(s, 0xFFFFFFFFu, "ks", "other", 5, "by hand");
  kv_store_close(s);
}
END_TEST

START_TEST(corrupt_record_names_its_key_and_others_still_serve) {
  char dir[DIR_BYTES];
  test_dir(dir, sizeof dir, "corrupt");
  kv_store_t *s = open_ok(dir);
  put_ok(s, 6, "default", "aaa", 3, "b", false);
  put_ok(s, 6, "default", "abc", 3, "original", false);
  put_ok(s, 6, "default", "good", 4, "g", false);
  kv_store_close(s);

  char frame[64];
  size_t frame_bytes = raw_frame(frame, "original");
  frame[frame_bytes - 1] ^= 0x01; /* one flipped bit in the payload */
  raw_put(dir, 6, "default", "abc", 3, frame, frame_bytes);

  s = open_ok(dir);
  expect_error(s, 6, "default", "abc", 3, KV_ECORRUPT,
               "record for key 'abc' in keyspace 'default' is corrupt: checksum mismatch");
  expect(s, 6, "default", "good", 4, "g");
  put_ok(s, 6, "default", "new", 3, "n", false);
  expect(s, 6, "default", "new", 3, "n");

  /* A scan hands over what precedes the bad record, then stops and names it. */
  scan_log_t seen = {0};
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_int_eq(kv_store_scan_partition(s, 6, scan_collect, &seen, &st), KV_ECORRUPT);
  ck_assert_str_eq(st.msg,
                   "record for key 'abc' in keyspace 'default' is corrupt: checksum mismatch");
  ck_assert_int_eq(seen.n, 1);
  ck_assert_str_eq(seen.got[0], "default|aaa|b");

  /* Rewriting the key repairs it. */
  put_ok(s, 6, "default", "abc", 3, "fixed", true);
  expect(s, 6, "default", "abc", 3, "fixed");
  static const char *const all[] = {"default|aaa|b", "default|abc|fixed",
                                    "default|good|g", "default|new|n"};
  expect_scan(s, 6, all, 4);
  kv_store_close(s);
}
END_TEST

START_TEST(short_frames_and_bad_magic_are_corrupt) {
  char dir[DIR_BYTES];
  test_dir(dir, sizeof dir, "badframes");
  kv_store_t *s = open_ok(dir);
  kv_store_close(s);

  raw_put(dir, 0, "default", "k\x01\xff'", 4, "TKV1", 4);
  char frame[64];
  size_t frame_bytes = raw_frame(frame, "v");
  frame[0] = 'X';
  raw_put(dir, 0, "default", "magic", 5, frame, frame_bytes);
  char long_key[400];
  memset(long_key, 'a', sizeof long_key);
  raw_put(dir, 0, "default", long_key, sizeof long_key, "", 0);

  s = open_ok(dir);
  expect_error(s, 0, "default", "k\x01\xff'", 4, KV_ECORRUPT,
               "record for key 'k\\x01\\xff\\'' in keyspace 'default' is corrupt: "
               "frame is shorter than its 12-byte header");
  expect_error(s, 0, "default", "magic", 5, KV_ECORRUPT,
               "record for key 'magic' in keyspace 'default' is corrupt: "
               "bad magic (not \"TKV1\")");

  uint8_t *rec = NULL;
  size_t rec_bytes = 0;
  bool found = true;
  kv_status_t st;
  ck_assert_int_eq(kv_store_get(s, 0, "default", long_key, sizeof long_key, &rec, &rec_bytes,
                                &found, &st),
                   KV_ECORRUPT);
  ck_assert_msg(strncmp(st.msg, "record for key 'aaaa", 20) == 0, "%s", st.msg);
  ck_assert_msg(strstr(st.msg, "...' in keyspace 'default' is corrupt: frame is shorter") !=
                    NULL, "%s", st.msg);
  ck_assert_uint_lt(strlen(st.msg), sizeof long_key);
  kv_store_close(s);
}
END_TEST

START_TEST(scan_reports_keys_it_cannot_split) {
  char dir[DIR_BYTES];
  test_dir(dir, sizeof dir, "badkeys");
  kv_store_t *s = open_ok(dir);
  put_ok(s, 7, "default", "k", 1, "v", false);
  kv_store_close(s);
  /* Keys no put makes: in partition 7 one with no 0x00 after the keyspace (it sorts after
   * "default"), in 8 an empty keyspace, in 9 an empty key, and one cut short inside the
   * prefix, which sorts after every key of partition 0x6ff. */
  static const struct {
    const char *key;
    size_t key_bytes;
    uint32_t p;
  } bad[] = {{"\0\0\0\7zzz", 7, 7}, {"\0\0\0\10\0k", 6, 8}, {"\0\0\0\11ks\0", 7, 9},
             {"\0\0\7", 3, 0x6ff}};
  char frame[64];
  size_t frame_bytes = raw_frame(frame, "v");
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    raw_put_cf(dir, 1, bad[i].key, bad[i].key_bytes, frame, frame_bytes);

  s = open_ok(dir);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    scan_log_t seen = {0};
    kv_status_t st;
    kv_status_clear(&st);
    ck_assert_int_eq(kv_store_scan_partition(s, bad[i].p, scan_collect, &seen, &st),
                     KV_ECORRUPT);
    char want[128];
    snprintf(want, sizeof want,
             "a record key in partition %u is corrupt: it does not split into keyspace and "
             "key", bad[i].p);
    ck_assert_str_eq(st.msg, want);
    ck_assert_int_eq(seen.n, bad[i].p == 7 ? 1 : 0); /* ("default", "k") came first */
  }
  expect(s, 7, "default", "k", 1, "v");
  kv_store_close(s);
}
END_TEST

START_TEST(corrupt_incarnation_fails_open) {
  char dir[DIR_BYTES];
  test_dir(dir, sizeof dir, "badinc");
  kv_store_t *s = open_ok(dir);
  kv_store_close(s);

  raw_put_cf(dir, 3, "incarnation", 11, "TKV1", 4);

  kv_status_t st;
  kv_status_clear(&st);
  s = NULL;
  ck_assert_int_eq(kv_store_open(dir, &s, &st), KV_ECORRUPT);
  ck_assert_ptr_null(s);
  char want[DIR_BYTES + 128];
  snprintf(want, sizeof want,
           "the incarnation id in '%s' is corrupt: frame is shorter than its 12-byte header",
           dir);
  ck_assert_str_eq(st.msg, want);
}
END_TEST

START_TEST(unusable_directory_fails_with_sentence) {
  /* A regular file where the store's parent directory should be. */
  char file[DIR_BYTES], dir[DIR_BYTES + 8];
  test_dir(file, sizeof file, "a-file");
  FILE *f = fopen(file, "w");
  ck_assert_ptr_nonnull(f);
  fclose(f);
  snprintf(dir, sizeof dir, "%s/db", file);

  kv_store_t *s = NULL;
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_int_eq(kv_store_open(dir, &s, &st), KV_EIO);
  ck_assert_int_eq(st.code, KV_EIO);
  ck_assert_ptr_null(s);
  char want[DIR_BYTES + 64];
  snprintf(want, sizeof want, "opening the store in '%s': rocksdb: ", dir);
  ck_assert_msg(strncmp(st.msg, want, strlen(want)) == 0, "%s", st.msg);
  ck_assert_msg(strlen(st.msg) > strlen(want) + 5, "no reason given: %s", st.msg);
  kv_store_close(NULL); /* a no-op */
}
END_TEST

/* ---------------------------------------------------------------- threads */

#define THREADS 4
#define KEYS_PER_THREAD 200
#define THREAD_PARTITIONS 16

typedef struct {
  kv_store_t *s;
  int id;
  int failures;
} worker_t;

static void *worker_run(void *arg) {
  worker_t *w = arg;
  for (int i = 0; i < KEYS_PER_THREAD; i++) {
    char key[32], val[32];
    int key_bytes = snprintf(key, sizeof key, "t%d-k%d", w->id, i);
    snprintf(val, sizeof val, "v%d-%d", w->id, i);
    uint32_t p = (uint32_t)i % THREAD_PARTITIONS;
    /* Every eighth write is synced, so synced writes from several threads meet. */
    if (kv_store_put(w->s, p, "default", key, (size_t)key_bytes, val, strlen(val), i % 8 == 0,
                     NULL) != KV_OK)
      w->failures++;
    uint8_t *rec = NULL;
    size_t rec_bytes = 0;
    bool found = false;
    if (kv_store_get(w->s, p, "default", key, (size_t)key_bytes, &rec, &rec_bytes, &found,
                     NULL) != KV_OK || !found || rec_bytes != strlen(val) ||
        memcmp(rec, val, rec_bytes) != 0)
      w->failures++;
    free(rec);
  }
  return NULL;
}

static bool count_records(void *arg, const char *ks, const void *key, size_t key_bytes,
                          const void *rec, size_t rec_bytes) {
  (*(int *)arg)++;
  return true;
}

/* ---- anti-entropy trees ---------------------------------------------------------------- */

static void tracked_ok(kv_store_t *s, uint32_t p, const char *key, const char *val,
                       uint32_t segment, uint64_t leaf) {
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_msg(kv_store_put_tracked(s, p, "default", key, strlen(key), val, strlen(val), segment,
                                     0, leaf, false, &st) == KV_OK,
                "tracked put: %s", st.msg);
}

typedef struct {
  char keys[8][16];
  uint64_t leaves[8];
  uint32_t count;
} leaves_t;

static bool leaf_seen(void *arg, const void *key, size_t key_bytes, uint64_t leaf) {
  leaves_t *l = arg;
  ck_assert_uint_lt(l->count, 8);
  snprintf(l->keys[l->count], sizeof l->keys[0], "%.*s", (int)key_bytes, (const char *)key);
  l->leaves[l->count++] = leaf;
  return true;
}

static void expect_sums(kv_store_t *s, uint32_t p, uint32_t segment, uint64_t want) {
  static uint64_t sums[KV_AAE_SEGMENTS];
  kv_status_t st;
  ck_assert(kv_store_aae_sums(s, p, "default", sums, &st) == KV_OK);
  for (uint32_t i = 0; i < KV_AAE_SEGMENTS; i++)
    ck_assert_uint_eq(sums[i], i == segment ? want : 0);
}

/* A tracked write with the caller's old leaf (wrong on purpose here, to see which one the
 * store took): trusted in a directory only ever written tracked, ignored for the tree's own
 * once the directory was opened untracked, for good. */
START_TEST(old_leaves_trusted_only_where_never_untracked) {
  char dir[DIR_BYTES];
  test_dir(dir, sizeof dir, "aae-trust");
  kv_status_t st;
  kv_store_t *s = open_ok(dir);
  ck_assert_int_eq(kv_store_set_tracking(s, true, &st), KV_OK);
  tracked_ok(s, 3, "a", "va", 7, 0x11);
  ck_assert_int_eq(kv_store_put_tracked(s, 3, "default", "a", 1, "vb", 2, 7, 0x10, 0x22, false,
                                        &st), KV_OK);
  expect_sums(s, 3, 7, 0x11 ^ 0x10 ^ 0x22); /* the caller's 0x10 went out, not the tree's */
  kv_store_close(s);
  s = open_ok(dir);
  ck_assert_int_eq(kv_store_set_tracking(s, false, &st), KV_OK);
  kv_store_close(s);
  s = open_ok(dir);
  ck_assert_int_eq(kv_store_set_tracking(s, true, &st), KV_OK);
  uint64_t before = 0x11 ^ 0x10 ^ 0x22;
  ck_assert_int_eq(kv_store_put_tracked(s, 3, "default", "a", 1, "vc", 2, 7, 0x99, 0x44, false,
                                        &st), KV_OK);
  expect_sums(s, 3, 7, before ^ 0x22 ^ 0x44); /* the tree's own leaf 0x22 went out */
  kv_store_close(s);
}
END_TEST

START_TEST(tracked_writes_keep_leaves_and_segment_sums) {
  char dir[DIR_BYTES];
  test_dir(dir, sizeof dir, "aae");
  kv_store_t *s = open_ok(dir);
  tracked_ok(s, 3, "a", "va", 7, 0x11);
  tracked_ok(s, 3, "b", "vb", 7, 0x22);
  tracked_ok(s, 3, "a", "va2", 7, 0x44); /* replaces a's leaf: 0x11 leaves the sum */
  expect(s, 3, "default", "a", 1, "va2");
  expect_sums(s, 3, 7, 0x22 ^ 0x44);
  leaves_t l = {0};
  kv_status_t st;
  ck_assert(kv_store_aae_leaves(s, 3, "default", 7, leaf_seen, &l, &st) == KV_OK);
  ck_assert_uint_eq(l.count, 2);
  ck_assert_str_eq(l.keys[0], "a");
  ck_assert_uint_eq(l.leaves[0], 0x44);
  ck_assert_str_eq(l.keys[1], "b");
  ck_assert_uint_eq(l.leaves[1], 0x22);
  /* Another partition's tree, and another segment, are separate. */
  l.count = 0;
  ck_assert(kv_store_aae_leaves(s, 4, "default", 7, leaf_seen, &l, &st) == KV_OK);
  ck_assert(kv_store_aae_leaves(s, 3, "default", 8, leaf_seen, &l, &st) == KV_OK);
  ck_assert_uint_eq(l.count, 0);
  /* A tracked delete takes the record and the leaf out. */
  ck_assert(kv_store_delete_tracked(s, 3, "default", "b", 1, 7, 0, false, &st) == KV_OK);
  expect(s, 3, "default", "b", 1, NULL);
  expect_sums(s, 3, 7, 0x44);
  /* The merged sums are durable like everything else. */
  kv_store_close(s);
  s = open_ok(dir);
  expect_sums(s, 3, 7, 0x44);
  kv_store_close(s);
}
END_TEST

START_TEST(tree_stays_the_xor_of_its_leaves_after_untracked_writes) {
  char dir[DIR_BYTES];
  test_dir(dir, sizeof dir, "aae-off");
  kv_store_t *s = open_ok(dir);
  put_ok(s, 0, "default", "old", 3, "v", false); /* written while anti-entropy was off */
  tracked_ok(s, 0, "old", "v2", 5, 0x99);        /* first tracked write: no old leaf */
  tracked_ok(s, 0, "old", "v3", 5, 0x98);
  expect_sums(s, 0, 5, 0x98);
  kv_store_close(s);
}
END_TEST

START_TEST(concurrent_puts_and_gets_all_land) {
  char dir[DIR_BYTES];
  test_dir(dir, sizeof dir, "threads");
  kv_store_t *s = open_ok(dir);
  pthread_t threads[THREADS];
  worker_t workers[THREADS];
  for (int t = 0; t < THREADS; t++) {
    workers[t] = (worker_t){.s = s, .id = t};
    ck_assert_int_eq(pthread_create(&threads[t], NULL, worker_run, &workers[t]), 0);
  }
  for (int t = 0; t < THREADS; t++) {
    ck_assert_int_eq(pthread_join(threads[t], NULL), 0);
    ck_assert_int_eq(workers[t].failures, 0);
  }
  kv_store_close(s);

  s = open_ok(dir);
  int total = 0;
  kv_status_t st;
  for (uint32_t p = 0; p < THREAD_PARTITIONS; p++)
    ck_assert_int_eq(kv_store_scan_partition(s, p, count_records, &total, &st), KV_OK);
  ck_assert_int_eq(total, THREADS * KEYS_PER_THREAD);
  expect(s, 3, "default", "t2-k3", 5, "v2-3");
  kv_store_close(s);
}
END_TEST

Suite *store_suite(void) {
  Suite *s = suite_create("store");
  TCase *tc = tcase_create("rocksdb");
  tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
  /* Opening RocksDB under the sanitizers takes a while; this only stops a hung test. */
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, put_get_round_trip);
  tcase_add_test(tc, missing_key_is_not_found);
  tcase_add_test(tc, overwrite_replaces_record);
  tcase_add_test(tc, keyspaces_and_partitions_stay_separate);
  tcase_add_test(tc, delete_removes_record);
  tcase_add_test(tc, scan_returns_one_partition_in_key_order);
  tcase_add_test(tc, scan_stops_when_callback_says_so);
  tcase_add_test(tc, incarnation_is_stable_and_new_per_directory);
  tcase_add_test(tc, incarnation_is_new_after_an_unclean_end);
  tcase_add_test(tc, records_survive_close_and_reopen);
  tcase_add_test(tc, records_survive_sigkill);
  tcase_add_test(tc, on_disk_layout_matches_header);
  tcase_add_test(tc, corrupt_record_names_its_key_and_others_still_serve);
  tcase_add_test(tc, short_frames_and_bad_magic_are_corrupt);
  tcase_add_test(tc, scan_reports_keys_it_cannot_split);
  tcase_add_test(tc, corrupt_incarnation_fails_open);
  tcase_add_test(tc, unusable_directory_fails_with_sentence);
  tcase_add_test(tc, concurrent_puts_and_gets_all_land);
  tcase_add_test(tc, tracked_writes_keep_leaves_and_segment_sums);
  tcase_add_test(tc, old_leaves_trusted_only_where_never_untracked);
  tcase_add_test(tc, tree_stays_the_xor_of_its_leaves_after_untracked_writes);
  suite_add_tcase(s, tc);
  return s;
}
