/* store.c: tunekv's storage on RocksDB (see store.h for the contract).
 *
 * Notes on the design:
 *  1. One RocksDB database per data directory with four column families, opened together:
 *     "default" (RocksDB requires it; unused), "data", "hints", "meta". Opening creates the
 *     directory and any missing family, so a new and an existing directory take the same path.
 *  2. A data key is [partition: 4 bytes big-endian][keyspace][0x00][user key]. Big-endian
 *     makes RocksDB's bytewise order sort by partition first, so a partition is the
 *     contiguous range [p, p + 1) and a scan is one bounded iterator. The keyspace name
 *     cannot contain 0x00 (it is a C string), so the first 0x00 after the prefix ends it and
 *     (keyspace, key) decodes back without ambiguity.
 *  3. Every value, in every family, is a frame [magic "TKV1"][xxh64(payload) LE][payload].
 *     A frame is checked on every read; a failing one is KV_ECORRUPT naming the key, and the
 *     store keeps serving every other key.
 *  4. The incarnation id lives in meta under "incarnation" as an 8-byte little-endian
 *     payload. It is written (synced) the first time a directory is opened, before open
 *     returns, so no data can exist in a directory without one. It is never 0. It is
 *     replaced by a new one when the last process did not close the store: the node mints
 *     dots as (node, incarnation, counter), and a power loss can take back writes whose dots
 *     other replicas already hold, so counting on from the surviving records would mint
 *     those dots again for different values (the simulator found this). A clean close
 *     leaves meta "clean" (synced, after a WAL sync); open takes it away again, so its
 *     presence at open means nothing since was lost. Each unclean restart adds one actor to
 *     the version vectors of keys written afterwards (Riak's vnode epochs do the same).
 *  5. Writes always go through the WAL: a non-synced write is in the OS page cache when the
 *     call returns (it survives the process being killed, not the machine losing power); a
 *     synced write is fsynced first. RocksDB's write thread joins concurrent writers into
 *     one WAL append and one fsync, which is the group commit store.h promises.
 *  6. The "aae" family holds the anti-entropy trees (store.h). Its keys are
 *     [partition BE32][keyspace][0x00][tag][segment BE16] and, for a leaf, the user key:
 *     tag 'L' a key's leaf (a framed 8-byte LE hash), tag 'S' a segment's sum. A sum is
 *     never written whole: every change is a RocksDB merge operand (8 bytes LE) that the
 *     family's merge operator XORs in, so concurrent writes to keys of one segment need no
 *     lock between them, and the sum is changed in the same batch as the record and leaf.
 *     Sums are the one unframed value: the operator sees only operands, and a damaged sum
 *     costs an exchange that finds no differing key, never data.
 *  7. Only open, kv_store_set_tracking (before the first write) and close mutate the
 *     kv_store_t; after that every field is read-only, and RocksDB's handles and const
 *     option objects are safe to share between threads.
 *  8. A tracked write needs the key's old leaf to take it out of its segment's sum. The
 *     caller passes the one it computed from the record it read (it reads the record to
 *     merge anyway), which saves a read per write, but only a directory whose every record
 *     was written tracked has a tree that agrees with its records. So meta holds
 *     "untracked" (synced, forever) once the directory has been opened to write untracked
 *     (anti-entropy off), and only a directory without it trusts the caller's old leaf;
 *     one with it reads the leaf from the tree, as stale trees need.
 *
 * RocksDB reports errors as a malloc'd char *; each is turned into KV_EIO with a sentence
 * "<what we were doing>: rocksdb: <their message>" and freed where it was received. */
#include "store.h"

#include <errno.h>
#include <rocksdb/c.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <xxhash.h>

#include "fmt.h"
#include "kv_limits.h"
#include "log.h"

/* Ten bits per key gives about a 1% false-positive rate for point lookups of missing keys. */
#define KV_STORE_BLOOM_BITS_PER_KEY 10.0

#define KV_STORE_MAGIC "TKV1"
#define KV_STORE_MAGIC_BYTES 4
#define KV_STORE_FRAME_HEAD_BYTES (KV_STORE_MAGIC_BYTES + 8)
#define KV_STORE_PREFIX_BYTES 4
#define KV_STORE_INCARNATION_KEY "incarnation"
#define KV_STORE_CLEAN_KEY "clean"
#define KV_STORE_UNTRACKED_KEY "untracked"

#define KV_STORE_AAE_LEAF 'L'
#define KV_STORE_AAE_SUM 'S'

enum { KV_STORE_CF_DEFAULT, KV_STORE_CF_DATA, KV_STORE_CF_HINTS, KV_STORE_CF_META,
       KV_STORE_CF_AAE, KV_STORE_CF_COUNT };
static const char *const kv_store_cf_names[KV_STORE_CF_COUNT] = {"default", "data", "hints",
                                                                 "meta", "aae"};

struct kv_store {
  rocksdb_t *db;
  rocksdb_column_family_handle_t *cf[KV_STORE_CF_COUNT];
  rocksdb_readoptions_t *read;
  rocksdb_writeoptions_t *write_wal;  /* WAL written to the OS, not fsynced */
  rocksdb_writeoptions_t *write_sync; /* WAL fsynced before the write returns */
  uint64_t incarnation;
  bool leaves_known;                  /* the callers' old leaves can be trusted (note 8) */
};

/* A data key: what the caller named, and its encoding as three slices (note 2). The
 * slices point into the struct and the caller's buffers, so it must not be copied. */
typedef struct {
  const char *keyspace;
  const void *key;
  size_t key_bytes;
  uint8_t prefix[KV_STORE_PREFIX_BYTES];
  const char *parts[3];
  size_t sizes[3];
} kv_store_key_t;

/* ---------------------------------------------------------------- bytes and messages */

static void kv_store_be32_put(uint8_t out[4], uint32_t v) {
  out[0] = (uint8_t)(v >> 24);
  out[1] = (uint8_t)(v >> 16);
  out[2] = (uint8_t)(v >> 8);
  out[3] = (uint8_t)v;
}

static void kv_store_le64_put(uint8_t out[8], uint64_t v) {
  for (int i = 0; i < 8; i++) out[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t kv_store_le64_get(const uint8_t in[8]) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | in[i];
  return v;
}

/* Sets st to KV_EIO "<what>: rocksdb: <err>" and frees err. */
static kv_err kv_store_rocks_fail(kv_status_t *st, char *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static kv_err kv_store_rocks_fail(kv_status_t *st, char *err, const char *fmt, ...) {
  char what[KV_STATUS_MSG_BYTES];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  kv_status_set(st, KV_EIO, "%s: rocksdb: %s", what, err);
  rocksdb_free(err);
  return KV_EIO;
}

/* Sets st to `code` with "<doing> key '<key>' in keyspace '<keyspace>'<tail>", keys escaped
 * so that any bytes print safely. */
static kv_err kv_store_key_fail(kv_status_t *st, kv_err code, const kv_store_key_t *k,
                                const char *doing, const char *tail) {
  char key[KV_FMT_KEY_BYTES], keyspace[KV_FMT_KEY_BYTES];
  kv_fmt_bytes(key, sizeof key, k->key, k->key_bytes);
  kv_fmt_bytes(keyspace, sizeof keyspace, k->keyspace, strlen(k->keyspace));
  return kv_status_set(st, code, "%s key '%s' in keyspace '%s'%s", doing, key, keyspace, tail);
}

static kv_err kv_store_key_rocks_fail(kv_status_t *st, char *err, const kv_store_key_t *k,
                                      const char *doing) {
  char tail[KV_STATUS_MSG_BYTES];
  snprintf(tail, sizeof tail, ": rocksdb: %s", err);
  rocksdb_free(err);
  return kv_store_key_fail(st, KV_EIO, k, doing, tail);
}

/* "record for key '<key>' in keyspace '<keyspace>' is corrupt: <fault>". */
static kv_err kv_store_key_corrupt(kv_status_t *st, const kv_store_key_t *k,
                                   const char *fault) {
  char tail[KV_STATUS_MSG_BYTES];
  snprintf(tail, sizeof tail, " is corrupt: %s", fault);
  return kv_store_key_fail(st, KV_ECORRUPT, k, "record for", tail);
}

/* ---------------------------------------------------------------- keys and frames */

static void kv_store_key_init(kv_store_key_t *k, uint32_t partition, const char *keyspace,
                              const void *key, size_t key_bytes) {
  /* Callers validate names and sizes against the keyspace's limits before they get here. */
  KV_ASSERT(keyspace != NULL && keyspace[0] != '\0');
  KV_ASSERT(strlen(keyspace) <= KV_KEYSPACE_NAME_BYTES_MAX);
  KV_ASSERT(key != NULL && key_bytes >= 1 && key_bytes <= KV_KEY_BYTES_HARD_MAX);
  *k = (kv_store_key_t){.keyspace = keyspace, .key = key, .key_bytes = key_bytes};
  kv_store_be32_put(k->prefix, partition);
  k->parts[0] = (const char *)k->prefix;
  k->sizes[0] = sizeof k->prefix;
  k->parts[1] = keyspace;
  k->sizes[1] = strlen(keyspace) + 1; /* the terminating 0x00 is the separator */
  k->parts[2] = key;
  k->sizes[2] = key_bytes;
}

/* The encoded key as one malloc'd buffer (for point reads), or NULL when out of memory. */
static char *kv_store_key_join(const kv_store_key_t *k, size_t *bytes) {
  *bytes = k->sizes[0] + k->sizes[1] + k->sizes[2];
  char *buf = malloc(*bytes);
  if (buf == NULL) return NULL;
  size_t at = 0;
  for (int i = 0; i < 3; i++) {
    memcpy(buf + at, k->parts[i], k->sizes[i]);
    at += k->sizes[i];
  }
  return buf;
}

/* Returns NULL when frame is well formed and its checksum matches, else why not. */
static const char *kv_store_frame_fault(const char *frame, size_t frame_bytes) {
  if (frame_bytes < KV_STORE_FRAME_HEAD_BYTES)
    return "frame is shorter than its 12-byte header";
  if (memcmp(frame, KV_STORE_MAGIC, KV_STORE_MAGIC_BYTES) != 0)
    return "bad magic (not \"" KV_STORE_MAGIC "\")";
  uint64_t want = kv_store_le64_get((const uint8_t *)frame + KV_STORE_MAGIC_BYTES);
  uint64_t got = XXH64(frame + KV_STORE_FRAME_HEAD_BYTES,
                       frame_bytes - KV_STORE_FRAME_HEAD_BYTES, 0);
  return want == got ? NULL : "checksum mismatch";
}

/* Writes a frame of payload under the key made of the given slices. RocksDB joins the
 * slices itself, so the payload is never copied into a frame buffer here. */
static void kv_store_write_frame(kv_store_t *s, rocksdb_column_family_handle_t *cf,
                                 const char *const *key_parts, const size_t *key_sizes,
                                 int key_nparts, const void *payload, size_t payload_bytes,
                                 bool sync, char **err) {
  if (payload_bytes == 0) payload = ""; /* an empty record may come with a NULL pointer */
  uint8_t head[KV_STORE_FRAME_HEAD_BYTES];
  memcpy(head, KV_STORE_MAGIC, KV_STORE_MAGIC_BYTES);
  kv_store_le64_put(head + KV_STORE_MAGIC_BYTES, XXH64(payload, payload_bytes, 0));
  const char *vals[2] = {(const char *)head, payload};
  size_t val_sizes[2] = {sizeof head, payload_bytes};
  rocksdb_writebatch_t *b = rocksdb_writebatch_create();
  rocksdb_writebatch_putv_cf(b, cf, key_nparts, key_parts, key_sizes, 2, vals, val_sizes);
  rocksdb_write(s->db, sync ? s->write_sync : s->write_wal, b, err);
  rocksdb_writebatch_destroy(b);
}

/* ---------------------------------------------------------------- open and close */

/* The options of a family; cache (shared by every family) and memtable_bytes (summed over
 * them) are the DB's. */
static rocksdb_options_t *kv_store_options_create(rocksdb_cache_t *cache,
                                                  uint64_t memtable_bytes) {
  rocksdb_options_t *o = rocksdb_options_create();
  rocksdb_options_set_create_if_missing(o, 1);
  rocksdb_options_set_create_missing_column_families(o, 1);
  /* Two background threads: flushes and compactions, one each, on a 2-core machine. */
  rocksdb_options_increase_parallelism(o, 2);
  /* Level compaction keeps space and read amplification low; dynamic level sizes keep
   * that true while the database is still small. */
  rocksdb_options_set_compaction_style(o, rocksdb_level_compaction);
  rocksdb_options_set_level_compaction_dynamic_level_bytes(o, 1);
  rocksdb_options_set_db_write_buffer_size(o, memtable_bytes);
  rocksdb_options_set_max_total_wal_size(o, KV_STORE_WAL_BYTES_MAX);
  rocksdb_options_set_keep_log_file_num(o, 4);

  /* The table options, cache and filter are reference-counted inside the options, so the
   * wrappers can go as soon as they are attached. */
  rocksdb_block_based_table_options_t *t = rocksdb_block_based_options_create();
  rocksdb_block_based_options_set_block_cache(t, cache);
  rocksdb_block_based_options_set_filter_policy(
      t, rocksdb_filterpolicy_create_bloom_full(KV_STORE_BLOOM_BITS_PER_KEY));
  rocksdb_options_set_block_based_table_factory(o, t);
  rocksdb_block_based_options_destroy(t);
  return o;
}

/* The "aae" family's merge operator (note 6): XOR of 8-byte little-endian values. An operand
 * of another length cannot come from this file and is skipped. */
static uint64_t kv_store_xor_operands(const char *const *ops, const size_t *lens, int n) {
  uint64_t x = 0;
  for (int i = 0; i < n; i++)
    if (lens[i] == 8) x ^= kv_store_le64_get((const uint8_t *)ops[i]);
  return x;
}

static char *kv_store_xor_result(uint64_t x, unsigned char *success, size_t *len) {
  char *out = malloc(8);
  *success = out != NULL;
  *len = 8;
  if (out) kv_store_le64_put((uint8_t *)out, x);
  return out;
}

static char *kv_store_xor_full(void *state, const char *key, size_t key_len, const char *old,
                               size_t old_len, const char *const *ops, const size_t *lens,
                               int n, unsigned char *success, size_t *len) {
  uint64_t x = kv_store_xor_operands(ops, lens, n);
  if (old && old_len == 8) x ^= kv_store_le64_get((const uint8_t *)old);
  return kv_store_xor_result(x, success, len);
}

static char *kv_store_xor_partial(void *state, const char *key, size_t key_len,
                                  const char *const *ops, const size_t *lens, int n,
                                  unsigned char *success, size_t *len) {
  return kv_store_xor_result(kv_store_xor_operands(ops, lens, n), success, len);
}

static void kv_store_xor_free(void *state, const char *value, size_t len) {
  free((char *)value);
}

static const char *kv_store_xor_name(void *state) { return "tunekv.xor64"; }

/* RocksDB calls the destructor unconditionally; the operator has no state to free. */
static void kv_store_xor_destroy(void *state) {}

static kv_err kv_store_open_db(kv_store_t *s, const char *dir, uint64_t cache_bytes,
                               uint64_t memtable_bytes, kv_status_t *st) {
  /* One block cache for every family (each set of options holds a reference). */
  rocksdb_cache_t *cache = rocksdb_cache_create_lru(cache_bytes);
  rocksdb_options_t *o = kv_store_options_create(cache, memtable_bytes);
  rocksdb_options_t *aae = kv_store_options_create(cache, memtable_bytes);
  rocksdb_cache_destroy(cache);
  /* The options own the operator from here on. */
  rocksdb_options_set_merge_operator(
      aae, rocksdb_mergeoperator_create(NULL, kv_store_xor_destroy, kv_store_xor_full, kv_store_xor_partial,
                                        kv_store_xor_free, kv_store_xor_name));
  const rocksdb_options_t *cf_opts[KV_STORE_CF_COUNT];
  for (int i = 0; i < KV_STORE_CF_COUNT; i++) cf_opts[i] = i == KV_STORE_CF_AAE ? aae : o;
  char *err = NULL;
  /* RocksDB copies the options into the database, so they are not kept. */
  s->db = rocksdb_open_column_families(o, dir, KV_STORE_CF_COUNT, kv_store_cf_names, cf_opts,
                                       s->cf, &err);
  rocksdb_options_destroy(o);
  rocksdb_options_destroy(aae);
  if (err != NULL) return kv_store_rocks_fail(st, err, "opening the store in '%s'", dir);
  KV_ASSERT(s->db != NULL);
  return KV_OK;
}

static kv_err kv_store_create_incarnation(kv_store_t *s, kv_status_t *st) {
  uint64_t id = 0;
  while (id == 0) {
    /* Up to 256 bytes never come back short; a signal while the pool is still being
     * initialised at boot interrupts the call, and it is then simply tried again. */
    ssize_t n = getrandom(&id, sizeof id, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return kv_status_set(st, KV_EIO, "cannot make an incarnation id: getrandom: %s",
                           strerror(errno));
    KV_ASSERT(n == (ssize_t)sizeof id);
  }
  uint8_t payload[8];
  kv_store_le64_put(payload, id);
  const char *key = KV_STORE_INCARNATION_KEY;
  size_t key_bytes = strlen(key);
  char *err = NULL;
  kv_store_write_frame(s, s->cf[KV_STORE_CF_META], &key, &key_bytes, 1, payload,
                       sizeof payload, true, &err);
  if (err != NULL) return kv_store_rocks_fail(st, err, "writing the incarnation id");
  s->incarnation = id;
  return KV_OK;
}

/* Whether the last process closed the store (note 4); takes the mark away either way. */
static kv_err kv_store_take_clean_mark(kv_store_t *s, bool *clean, kv_status_t *st) {
  const char *key = KV_STORE_CLEAN_KEY;
  size_t key_bytes = strlen(key);
  char *err = NULL;
  rocksdb_pinnableslice_t *v = rocksdb_get_pinned_cf(s->db, s->read, s->cf[KV_STORE_CF_META],
                                                     key, key_bytes, &err);
  if (err != NULL) return kv_store_rocks_fail(st, err, "reading the clean-close mark");
  *clean = v != NULL;
  rocksdb_pinnableslice_destroy(v);
  if (!*clean) return KV_OK;
  rocksdb_delete_cf(s->db, s->write_sync, s->cf[KV_STORE_CF_META], key, key_bytes, &err);
  if (err != NULL) return kv_store_rocks_fail(st, err, "removing the clean-close mark");
  return KV_OK;
}

/* Reads the incarnation id, or makes one if this directory is new or was not closed
 * (note 4). */
static kv_err kv_store_load_incarnation(kv_store_t *s, const char *dir, kv_status_t *st) {
  const char *key = KV_STORE_INCARNATION_KEY;
  char *err = NULL;
  rocksdb_pinnableslice_t *v = rocksdb_get_pinned_cf(s->db, s->read, s->cf[KV_STORE_CF_META],
                                                     key, strlen(key), &err);
  if (err != NULL) return kv_store_rocks_fail(st, err, "reading the incarnation id");
  if (v == NULL) return kv_store_create_incarnation(s, st);
  size_t n;
  const char *frame = rocksdb_pinnableslice_value(v, &n);
  const char *fault = kv_store_frame_fault(frame, n);
  if (fault == NULL && n != KV_STORE_FRAME_HEAD_BYTES + 8) fault = "payload is not 8 bytes";
  if (fault == NULL) {
    s->incarnation = kv_store_le64_get((const uint8_t *)frame + KV_STORE_FRAME_HEAD_BYTES);
    if (s->incarnation == 0) fault = "the id is 0";
  }
  rocksdb_pinnableslice_destroy(v);
  if (fault != NULL)
    return kv_status_set(st, KV_ECORRUPT, "the incarnation id in '%s' is corrupt: %s", dir,
                         fault);
  bool clean = false;
  kv_err e = kv_store_take_clean_mark(s, &clean, st);
  if (e == KV_OK && !clean) e = kv_store_create_incarnation(s, st);
  return e;
}

/* Releases everything open made; safe on a partly opened store. */
static void kv_store_free(kv_store_t *s) {
  for (int i = 0; i < KV_STORE_CF_COUNT; i++) {
    if (s->cf[i] != NULL) rocksdb_column_family_handle_destroy(s->cf[i]);
  }
  if (s->db != NULL) rocksdb_close(s->db);
  rocksdb_readoptions_destroy(s->read);
  rocksdb_writeoptions_destroy(s->write_wal);
  rocksdb_writeoptions_destroy(s->write_sync);
  free(s);
}

kv_err kv_store_open(const char *dir, kv_store_t **out, kv_status_t *st) {
  return kv_store_open_sized(dir, KV_STORE_BLOCK_CACHE_BYTES, KV_STORE_MEMTABLES_BYTES, out, st);
}

kv_err kv_store_open_sized(const char *dir, uint64_t cache_bytes, uint64_t memtable_bytes,
                           kv_store_t **out, kv_status_t *st) {
  KV_ASSERT(dir != NULL && out != NULL);
  kv_store_t *s = calloc(1, sizeof *s);
  if (s == NULL) return kv_status_set(st, KV_ENOMEM, "out of memory opening '%s'", dir);
  s->read = rocksdb_readoptions_create();
  s->write_wal = rocksdb_writeoptions_create();
  s->write_sync = rocksdb_writeoptions_create();
  rocksdb_writeoptions_set_sync(s->write_sync, 1);
  kv_err e = kv_store_open_db(s, dir, cache_bytes, memtable_bytes, st);
  if (e == KV_OK) e = kv_store_load_incarnation(s, dir, st);
  if (e != KV_OK) {
    kv_store_free(s);
    return e;
  }
  *out = s;
  return KV_OK;
}

kv_err kv_store_sync(kv_store_t *s, kv_status_t *st) {
  char *err = NULL;
  rocksdb_flush_wal(s->db, 1, &err);
  if (err != NULL) return kv_store_rocks_fail(st, err, "cannot fsync the write-ahead log");
  return KV_OK;
}

void kv_store_close(kv_store_t *s) {
  if (s == NULL) return;
  /* Make every write so far durable, synced or not, before the handles go. */
  kv_status_t st;
  if (kv_store_sync(s, &st) != KV_OK) {
    KV_WARN("closing the store: %s", st.msg);
  } else {
    /* Everything is durable: the next open may keep the incarnation (note 4). */
    const char *key = KV_STORE_CLEAN_KEY;
    size_t key_bytes = strlen(key);
    char *err = NULL;
    kv_store_write_frame(s, s->cf[KV_STORE_CF_META], &key, &key_bytes, 1, "", 0, true, &err);
    if (err != NULL) {
      KV_WARN("closing the store: writing the clean-close mark: rocksdb: %s", err);
      rocksdb_free(err);
    }
  }
  kv_store_free(s);
}

uint64_t kv_store_incarnation(const kv_store_t *s) {
  KV_ASSERT(s != NULL && s->incarnation != 0);
  return s->incarnation;
}

/* ---------------------------------------------------------------- records */

/* Checks the frame and hands the caller a malloc'd copy of its payload. */
static kv_err kv_store_copy_payload(const kv_store_key_t *k, const char *frame,
                                    size_t frame_bytes, uint8_t **rec, size_t *rec_bytes,
                                    kv_status_t *st) {
  const char *fault = kv_store_frame_fault(frame, frame_bytes);
  if (fault != NULL) return kv_store_key_corrupt(st, k, fault);
  size_t n = frame_bytes - KV_STORE_FRAME_HEAD_BYTES;
  uint8_t *copy = malloc(n ? n : 1); /* malloc(0) may return NULL, which means failure here */
  if (copy == NULL) return kv_store_key_fail(st, KV_ENOMEM, k, "out of memory reading", "");
  memcpy(copy, frame + KV_STORE_FRAME_HEAD_BYTES, n);
  *rec = copy;
  *rec_bytes = n;
  return KV_OK;
}

/* The point operations below serve both families laid out by note 2: "data" (by partition)
 * and "hints" (by target node). */
static kv_err kv_store_get_cf(kv_store_t *s, int cf, uint32_t partition, const char *keyspace,
                              const void *key, size_t key_bytes, uint8_t **rec,
                              size_t *rec_bytes, bool *found, kv_status_t *st) {
  KV_ASSERT(s != NULL && rec != NULL && rec_bytes != NULL && found != NULL);
  kv_store_key_t k;
  kv_store_key_init(&k, partition, keyspace, key, key_bytes);
  *found = false;
  *rec = NULL;
  *rec_bytes = 0;
  size_t raw_bytes;
  char *raw = kv_store_key_join(&k, &raw_bytes);
  if (raw == NULL) return kv_store_key_fail(st, KV_ENOMEM, &k, "out of memory reading", "");
  char *err = NULL;
  rocksdb_pinnableslice_t *v =
      rocksdb_get_pinned_cf(s->db, s->read, s->cf[cf], raw, raw_bytes, &err);
  free(raw);
  if (err != NULL) return kv_store_key_rocks_fail(st, err, &k, "reading");
  if (v == NULL) return KV_OK;
  size_t frame_bytes;
  const char *frame = rocksdb_pinnableslice_value(v, &frame_bytes);
  kv_err e = kv_store_copy_payload(&k, frame, frame_bytes, rec, rec_bytes, st);
  rocksdb_pinnableslice_destroy(v);
  *found = e == KV_OK;
  return e;
}

static kv_err kv_store_put_cf(kv_store_t *s, int cf, uint32_t partition, const char *keyspace,
                              const void *key, size_t key_bytes, const void *rec,
                              size_t rec_bytes, bool sync, kv_status_t *st) {
  KV_ASSERT(s != NULL && (rec != NULL || rec_bytes == 0));
  kv_store_key_t k;
  kv_store_key_init(&k, partition, keyspace, key, key_bytes);
  char *err = NULL;
  kv_store_write_frame(s, s->cf[cf], k.parts, k.sizes, 3, rec, rec_bytes, sync, &err);
  if (err != NULL) return kv_store_key_rocks_fail(st, err, &k, "writing");
  return KV_OK;
}

static kv_err kv_store_delete_cf(kv_store_t *s, int cf, uint32_t partition,
                                 const char *keyspace, const void *key, size_t key_bytes,
                                 bool sync, kv_status_t *st) {
  KV_ASSERT(s != NULL);
  kv_store_key_t k;
  kv_store_key_init(&k, partition, keyspace, key, key_bytes);
  rocksdb_writebatch_t *b = rocksdb_writebatch_create();
  rocksdb_writebatch_deletev_cf(b, s->cf[cf], 3, k.parts, k.sizes);
  char *err = NULL;
  rocksdb_write(s->db, sync ? s->write_sync : s->write_wal, b, &err);
  rocksdb_writebatch_destroy(b);
  if (err != NULL) return kv_store_key_rocks_fail(st, err, &k, "deleting");
  return KV_OK;
}

kv_err kv_store_get(kv_store_t *s, uint32_t partition, const char *keyspace, const void *key,
                    size_t key_bytes, uint8_t **rec, size_t *rec_bytes, bool *found,
                    kv_status_t *st) {
  return kv_store_get_cf(s, KV_STORE_CF_DATA, partition, keyspace, key, key_bytes, rec,
                         rec_bytes, found, st);
}

kv_err kv_store_put(kv_store_t *s, uint32_t partition, const char *keyspace, const void *key,
                    size_t key_bytes, const void *rec, size_t rec_bytes, bool sync,
                    kv_status_t *st) {
  return kv_store_put_cf(s, KV_STORE_CF_DATA, partition, keyspace, key, key_bytes, rec,
                         rec_bytes, sync, st);
}

kv_err kv_store_delete(kv_store_t *s, uint32_t partition, const char *keyspace,
                       const void *key, size_t key_bytes, bool sync, kv_status_t *st) {
  return kv_store_delete_cf(s, KV_STORE_CF_DATA, partition, keyspace, key, key_bytes, sync, st);
}

kv_err kv_store_hint_get(kv_store_t *s, uint32_t target, const char *keyspace, const void *key,
                         size_t key_bytes, uint8_t **rec, size_t *rec_bytes, bool *found,
                         kv_status_t *st) {
  return kv_store_get_cf(s, KV_STORE_CF_HINTS, target, keyspace, key, key_bytes, rec,
                         rec_bytes, found, st);
}

kv_err kv_store_hint_put(kv_store_t *s, uint32_t target, const char *keyspace, const void *key,
                         size_t key_bytes, const void *rec, size_t rec_bytes, kv_status_t *st) {
  return kv_store_put_cf(s, KV_STORE_CF_HINTS, target, keyspace, key, key_bytes, rec,
                         rec_bytes, false, st);
}

kv_err kv_store_hint_delete(kv_store_t *s, uint32_t target, const char *keyspace,
                            const void *key, size_t key_bytes, kv_status_t *st) {
  return kv_store_delete_cf(s, KV_STORE_CF_HINTS, target, keyspace, key, key_bytes, false, st);
}

/* ---------------------------------------------------------------- scans */

/* Decodes one data entry of a scan and hands it to fn; *more is fn's answer. */
static kv_err kv_store_scan_visit(uint32_t partition, const char *raw, size_t raw_bytes,
                                  const char *frame, size_t frame_bytes, kv_storage_scan_fn fn,
                                  void *arg, bool *more, kv_status_t *st) {
  const char *keyspace = raw + KV_STORE_PREFIX_BYTES;
  const char *end = raw_bytes > KV_STORE_PREFIX_BYTES
                        ? memchr(keyspace, 0, raw_bytes - KV_STORE_PREFIX_BYTES)
                        : NULL;
  if (end == NULL || end == keyspace || end + 1 == raw + raw_bytes)
    return kv_status_set(st, KV_ECORRUPT,
                         "a record key in partition %u is corrupt: it does not split into "
                         "keyspace and key", partition);
  /* The keyspace is followed by its 0x00 inside RocksDB's buffer, so it is a C string. */
  kv_store_key_t k = {.keyspace = keyspace, .key = end + 1,
                      .key_bytes = (size_t)(raw + raw_bytes - (end + 1))};
  const char *fault = kv_store_frame_fault(frame, frame_bytes);
  if (fault != NULL) return kv_store_key_corrupt(st, &k, fault);
  *more = fn(arg, keyspace, k.key, k.key_bytes, frame + KV_STORE_FRAME_HEAD_BYTES,
             frame_bytes - KV_STORE_FRAME_HEAD_BYTES);
  return KV_OK;
}

static kv_err kv_store_scan_iter(rocksdb_iterator_t *it, uint32_t partition,
                                 kv_storage_scan_fn fn, void *arg, kv_status_t *st) {
  uint8_t prefix[KV_STORE_PREFIX_BYTES];
  kv_store_be32_put(prefix, partition);
  for (rocksdb_iter_seek(it, (const char *)prefix, sizeof prefix); rocksdb_iter_valid(it);
       rocksdb_iter_next(it)) {
    size_t raw_bytes, frame_bytes;
    const char *raw = rocksdb_iter_key(it, &raw_bytes);
    const char *frame = rocksdb_iter_value(it, &frame_bytes);
    bool more = true;
    kv_err e = kv_store_scan_visit(partition, raw, raw_bytes, frame, frame_bytes, fn, arg,
                                   &more, st);
    if (e != KV_OK || !more) return e;
  }
  char *err = NULL;
  rocksdb_iter_get_error(it, &err);
  if (err != NULL) return kv_store_rocks_fail(st, err, "scanning partition %u", partition);
  return KV_OK;
}

static kv_err kv_store_scan_cf(kv_store_t *s, int cf, uint32_t partition, kv_storage_scan_fn fn,
                               void *arg, kv_status_t *st) {
  KV_ASSERT(s != NULL && fn != NULL);
  rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
  /* Scans (anti-entropy, handoff) touch whole partitions once; keep them out of the block
   * cache so they do not evict the hot keys that point reads need. */
  rocksdb_readoptions_set_fill_cache(ro, 0);
  /* Every key in [p, p + 1) that the store wrote starts with p's prefix, and the last
   * partition runs to the end of the family, so the bound alone ends the scan. RocksDB keeps
   * a pointer to it, so it must outlive the iterator. */
  uint8_t upper[KV_STORE_PREFIX_BYTES];
  if (partition < UINT32_MAX) {
    kv_store_be32_put(upper, partition + 1);
    rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)upper, sizeof upper);
  }
  rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, ro, s->cf[cf]);
  kv_err e = kv_store_scan_iter(it, partition, fn, arg, st);
  rocksdb_iter_destroy(it);
  rocksdb_readoptions_destroy(ro);
  return e;
}

kv_err kv_store_scan_partition(kv_store_t *s, uint32_t partition, kv_storage_scan_fn fn,
                               void *arg, kv_status_t *st) {
  return kv_store_scan_cf(s, KV_STORE_CF_DATA, partition, fn, arg, st);
}

kv_err kv_store_hint_scan(kv_store_t *s, uint32_t target, kv_storage_scan_fn fn, void *arg,
                          kv_status_t *st) {
  return kv_store_scan_cf(s, KV_STORE_CF_HINTS, target, fn, arg, st);
}

/* ---------------------------------------------------------------- anti-entropy trees */

#define KV_STORE_AAE_HEAD_BYTES (KV_STORE_PREFIX_BYTES + KV_KEYSPACE_NAME_BYTES_MAX + 1 + 1 + 2)

/* [partition][keyspace][0x00][tag][segment] into head (note 6); returns its length. */
static size_t kv_store_aae_head(uint8_t *head, uint32_t partition, const char *keyspace,
                                char tag, uint32_t segment) {
  size_t ks = strlen(keyspace);
  KV_ASSERT(ks >= 1 && ks <= KV_KEYSPACE_NAME_BYTES_MAX && segment < KV_AAE_SEGMENTS);
  kv_store_be32_put(head, partition);
  memcpy(head + KV_STORE_PREFIX_BYTES, keyspace, ks + 1);
  size_t at = KV_STORE_PREFIX_BYTES + ks + 1;
  head[at++] = (uint8_t)tag;
  head[at++] = (uint8_t)(segment >> 8);
  head[at++] = (uint8_t)segment;
  return at;
}

/* The leaf of (head, key) as the tree holds it now; 0 when it holds none. */
static kv_err kv_store_leaf_get(kv_store_t *s, const kv_store_key_t *k, const uint8_t *head,
                                size_t head_bytes, uint64_t *leaf, kv_status_t *st) {
  size_t n = head_bytes + k->key_bytes;
  char *raw = malloc(n);
  if (raw == NULL) return kv_store_key_fail(st, KV_ENOMEM, k, "out of memory reading", "");
  memcpy(raw, head, head_bytes);
  memcpy(raw + head_bytes, k->key, k->key_bytes);
  char *err = NULL;
  rocksdb_pinnableslice_t *v =
      rocksdb_get_pinned_cf(s->db, s->read, s->cf[KV_STORE_CF_AAE], raw, n, &err);
  free(raw);
  if (err != NULL) return kv_store_key_rocks_fail(st, err, k, "reading the tree leaf of");
  *leaf = 0;
  if (v == NULL) return KV_OK;
  size_t frame_bytes;
  const char *frame = rocksdb_pinnableslice_value(v, &frame_bytes);
  const char *fault = kv_store_frame_fault(frame, frame_bytes);
  if (fault == NULL && frame_bytes != KV_STORE_FRAME_HEAD_BYTES + 8) fault = "leaf is not 8 bytes";
  if (fault == NULL) *leaf = kv_store_le64_get((const uint8_t *)frame + KV_STORE_FRAME_HEAD_BYTES);
  rocksdb_pinnableslice_destroy(v);
  if (fault != NULL) return kv_store_key_corrupt(st, k, fault);
  return KV_OK;
}

/* One batch: the record (put, or delete when rec is NULL), the key's leaf and its segment's
 * sum (note 6). */
static kv_err kv_store_write_tracked(kv_store_t *s, uint32_t partition, const char *keyspace,
                                     const void *key, size_t key_bytes, const void *rec,
                                     size_t rec_bytes, uint32_t segment, uint64_t old_leaf,
                                     uint64_t leaf, bool sync, kv_status_t *st) {
  KV_ASSERT(s != NULL);
  kv_store_key_t k;
  kv_store_key_init(&k, partition, keyspace, key, key_bytes);
  uint8_t leaf_head[KV_STORE_AAE_HEAD_BYTES], sum_key[KV_STORE_AAE_HEAD_BYTES];
  size_t leaf_head_bytes = kv_store_aae_head(leaf_head, partition, keyspace, KV_STORE_AAE_LEAF,
                                             segment);
  size_t sum_key_bytes = kv_store_aae_head(sum_key, partition, keyspace, KV_STORE_AAE_SUM,
                                           segment);
  uint64_t old = old_leaf;
  if (!s->leaves_known) {
    kv_err e = kv_store_leaf_get(s, &k, leaf_head, leaf_head_bytes, &old, st);
    if (e != KV_OK) return e;
  }

  rocksdb_writebatch_t *b = rocksdb_writebatch_create();
  uint8_t head[KV_STORE_FRAME_HEAD_BYTES];
  if (rec != NULL || rec_bytes > 0) {
    if (rec_bytes == 0) rec = "";
    memcpy(head, KV_STORE_MAGIC, KV_STORE_MAGIC_BYTES);
    kv_store_le64_put(head + KV_STORE_MAGIC_BYTES, XXH64(rec, rec_bytes, 0));
    const char *vals[2] = {(const char *)head, rec};
    size_t val_sizes[2] = {sizeof head, rec_bytes};
    rocksdb_writebatch_putv_cf(b, s->cf[KV_STORE_CF_DATA], 3, k.parts, k.sizes, 2, vals,
                               val_sizes);
  } else {
    rocksdb_writebatch_deletev_cf(b, s->cf[KV_STORE_CF_DATA], 3, k.parts, k.sizes);
  }
  if (leaf != old) {
    const char *leaf_parts[2] = {(const char *)leaf_head, key};
    size_t leaf_sizes[2] = {leaf_head_bytes, key_bytes};
    uint8_t leaf_frame[KV_STORE_FRAME_HEAD_BYTES + 8], payload[8];
    kv_store_le64_put(payload, leaf);
    memcpy(leaf_frame, KV_STORE_MAGIC, KV_STORE_MAGIC_BYTES);
    kv_store_le64_put(leaf_frame + KV_STORE_MAGIC_BYTES, XXH64(payload, sizeof payload, 0));
    memcpy(leaf_frame + KV_STORE_FRAME_HEAD_BYTES, payload, sizeof payload);
    const char *leaf_val = (const char *)leaf_frame;
    size_t leaf_val_size = sizeof leaf_frame;
    if (leaf != 0)
      rocksdb_writebatch_putv_cf(b, s->cf[KV_STORE_CF_AAE], 2, leaf_parts, leaf_sizes, 1,
                                 &leaf_val, &leaf_val_size);
    else
      rocksdb_writebatch_deletev_cf(b, s->cf[KV_STORE_CF_AAE], 2, leaf_parts, leaf_sizes);
    uint8_t delta[8];
    kv_store_le64_put(delta, old ^ leaf);
    rocksdb_writebatch_merge_cf(b, s->cf[KV_STORE_CF_AAE], (const char *)sum_key, sum_key_bytes,
                                (const char *)delta, sizeof delta);
  }
  char *err = NULL;
  rocksdb_write(s->db, sync ? s->write_sync : s->write_wal, b, &err);
  rocksdb_writebatch_destroy(b);
  if (err != NULL) return kv_store_key_rocks_fail(st, err, &k, "writing");
  return KV_OK;
}

kv_err kv_store_put_tracked(kv_store_t *s, uint32_t partition, const char *keyspace,
                            const void *key, size_t key_bytes, const void *rec,
                            size_t rec_bytes, uint32_t segment, uint64_t old_leaf,
                            uint64_t leaf, bool sync, kv_status_t *st) {
  KV_ASSERT(rec != NULL || rec_bytes == 0);
  if (rec == NULL) rec = "";
  return kv_store_write_tracked(s, partition, keyspace, key, key_bytes, rec, rec_bytes,
                                segment, old_leaf, leaf, sync, st);
}

kv_err kv_store_delete_tracked(kv_store_t *s, uint32_t partition, const char *keyspace,
                               const void *key, size_t key_bytes, uint32_t segment,
                               uint64_t old_leaf, bool sync, kv_status_t *st) {
  return kv_store_write_tracked(s, partition, keyspace, key, key_bytes, NULL, 0, segment,
                                old_leaf, 0, sync, st);
}

kv_err kv_store_set_tracking(kv_store_t *s, bool tracked, kv_status_t *st) {
  const char *key = KV_STORE_UNTRACKED_KEY;
  size_t key_bytes = strlen(key);
  char *err = NULL;
  rocksdb_pinnableslice_t *v = rocksdb_get_pinned_cf(s->db, s->read, s->cf[KV_STORE_CF_META],
                                                     key, key_bytes, &err);
  if (err != NULL) return kv_store_rocks_fail(st, err, "reading the untracked mark");
  bool marked = v != NULL;
  rocksdb_pinnableslice_destroy(v);
  if (!tracked && !marked) {
    kv_store_write_frame(s, s->cf[KV_STORE_CF_META], &key, &key_bytes, 1, "", 0, true, &err);
    if (err != NULL) return kv_store_rocks_fail(st, err, "writing the untracked mark");
    marked = true;
  }
  s->leaves_known = tracked && !marked;
  return KV_OK;
}

/* An iterator over the "aae" keys in [lower, upper); both must outlive it. */
static rocksdb_iterator_t *kv_store_aae_iter(kv_store_t *s, rocksdb_readoptions_t *ro,
                                             const uint8_t *lower, size_t lower_bytes,
                                             const uint8_t *upper, size_t upper_bytes) {
  rocksdb_readoptions_set_fill_cache(ro, 0);
  rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)upper, upper_bytes);
  rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, ro, s->cf[KV_STORE_CF_AAE]);
  rocksdb_iter_seek(it, (const char *)lower, lower_bytes);
  return it;
}

static kv_err kv_store_aae_iter_end(rocksdb_iterator_t *it, rocksdb_readoptions_t *ro,
                                    uint32_t partition, kv_status_t *st) {
  char *err = NULL;
  rocksdb_iter_get_error(it, &err);
  rocksdb_iter_destroy(it);
  rocksdb_readoptions_destroy(ro);
  if (err != NULL)
    return kv_store_rocks_fail(st, err, "reading the anti-entropy tree of partition %u",
                               partition);
  return KV_OK;
}

kv_err kv_store_aae_sums(kv_store_t *s, uint32_t partition, const char *keyspace,
                         uint64_t *sums, kv_status_t *st) {
  uint8_t lower[KV_STORE_AAE_HEAD_BYTES], upper[KV_STORE_AAE_HEAD_BYTES];
  size_t n = kv_store_aae_head(lower, partition, keyspace, KV_STORE_AAE_SUM, 0);
  kv_store_aae_head(upper, partition, keyspace, KV_STORE_AAE_SUM + 1, 0);
  memset(sums, 0, KV_AAE_SEGMENTS * sizeof sums[0]);
  rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
  rocksdb_iterator_t *it = kv_store_aae_iter(s, ro, lower, n, upper, n - 2);
  for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
    size_t key_bytes, value_bytes;
    const uint8_t *key = (const uint8_t *)rocksdb_iter_key(it, &key_bytes);
    const uint8_t *value = (const uint8_t *)rocksdb_iter_value(it, &value_bytes);
    if (key_bytes != n || value_bytes != 8) continue; /* cannot be written by this file */
    uint32_t segment = (uint32_t)key[n - 2] << 8 | key[n - 1];
    if (segment < KV_AAE_SEGMENTS) sums[segment] = kv_store_le64_get(value);
  }
  return kv_store_aae_iter_end(it, ro, partition, st);
}

kv_err kv_store_aae_leaves(kv_store_t *s, uint32_t partition, const char *keyspace,
                           uint32_t segment, kv_storage_leaf_fn fn, void *arg, kv_status_t *st) {
  uint8_t lower[KV_STORE_AAE_HEAD_BYTES], upper[KV_STORE_AAE_HEAD_BYTES];
  size_t n = kv_store_aae_head(lower, partition, keyspace, KV_STORE_AAE_LEAF, segment);
  /* The next segment's head bounds this one (segments stay below 0xFFFF). */
  kv_store_aae_head(upper, partition, keyspace, KV_STORE_AAE_LEAF, 0);
  upper[n - 2] = (uint8_t)((segment + 1) >> 8);
  upper[n - 1] = (uint8_t)(segment + 1);
  rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
  rocksdb_iterator_t *it = kv_store_aae_iter(s, ro, lower, n, upper, n);
  kv_err e = KV_OK;
  for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
    size_t raw_bytes, frame_bytes;
    const char *raw = rocksdb_iter_key(it, &raw_bytes);
    const char *frame = rocksdb_iter_value(it, &frame_bytes);
    if (raw_bytes <= n) continue;
    kv_store_key_t k = {.keyspace = keyspace, .key = raw + n, .key_bytes = raw_bytes - n};
    const char *fault = kv_store_frame_fault(frame, frame_bytes);
    if (fault == NULL && frame_bytes != KV_STORE_FRAME_HEAD_BYTES + 8) fault = "leaf is not 8 bytes";
    if (fault != NULL) {
      e = kv_store_key_corrupt(st, &k, fault);
      break;
    }
    if (!fn(arg, k.key, k.key_bytes,
            kv_store_le64_get((const uint8_t *)frame + KV_STORE_FRAME_HEAD_BYTES)))
      break;
  }
  kv_err end = kv_store_aae_iter_end(it, ro, partition, st);
  return e != KV_OK ? e : end;
}

/* ---- the core's table (coordinator/storage.h) ------------------------------------------ */

static uint64_t ops_incarnation(void *s) { return kv_store_incarnation(s); }
static kv_err ops_sync(void *s, kv_status_t *st) { return kv_store_sync(s, st); }

static kv_err ops_get(void *s, uint32_t partition, const char *keyspace, const void *key,
                      size_t key_bytes, uint8_t **rec, size_t *rec_bytes, bool *found,
                      kv_status_t *st) {
  return kv_store_get(s, partition, keyspace, key, key_bytes, rec, rec_bytes, found, st);
}

static kv_err ops_put(void *s, uint32_t partition, const char *keyspace, const void *key,
                      size_t key_bytes, const void *rec, size_t rec_bytes, bool sync,
                      kv_status_t *st) {
  return kv_store_put(s, partition, keyspace, key, key_bytes, rec, rec_bytes, sync, st);
}

static kv_err ops_remove(void *s, uint32_t partition, const char *keyspace, const void *key,
                         size_t key_bytes, bool sync, kv_status_t *st) {
  return kv_store_delete(s, partition, keyspace, key, key_bytes, sync, st);
}

static kv_err ops_put_tracked(void *s, uint32_t partition, const char *keyspace,
                              const void *key, size_t key_bytes, const void *rec,
                              size_t rec_bytes, uint32_t segment, uint64_t old_leaf,
                              uint64_t leaf, bool sync, kv_status_t *st) {
  return kv_store_put_tracked(s, partition, keyspace, key, key_bytes, rec, rec_bytes, segment,
                              old_leaf, leaf, sync, st);
}

static kv_err ops_remove_tracked(void *s, uint32_t partition, const char *keyspace,
                                 const void *key, size_t key_bytes, uint32_t segment,
                                 uint64_t old_leaf, bool sync, kv_status_t *st) {
  return kv_store_delete_tracked(s, partition, keyspace, key, key_bytes, segment, old_leaf,
                                 sync, st);
}

static kv_err ops_scan_partition(void *s, uint32_t partition, kv_storage_scan_fn fn, void *arg,
                                 kv_status_t *st) {
  return kv_store_scan_partition(s, partition, fn, arg, st);
}

static kv_err ops_aae_sums(void *s, uint32_t partition, const char *keyspace, uint64_t *sums,
                           kv_status_t *st) {
  return kv_store_aae_sums(s, partition, keyspace, sums, st);
}

static kv_err ops_aae_leaves(void *s, uint32_t partition, const char *keyspace,
                             uint32_t segment, kv_storage_leaf_fn fn, void *arg,
                             kv_status_t *st) {
  return kv_store_aae_leaves(s, partition, keyspace, segment, fn, arg, st);
}

static kv_err ops_hint_get(void *s, uint32_t target, const char *keyspace, const void *key,
                           size_t key_bytes, uint8_t **rec, size_t *rec_bytes, bool *found,
                           kv_status_t *st) {
  return kv_store_hint_get(s, target, keyspace, key, key_bytes, rec, rec_bytes, found, st);
}

static kv_err ops_hint_put(void *s, uint32_t target, const char *keyspace, const void *key,
                           size_t key_bytes, const void *rec, size_t rec_bytes,
                           kv_status_t *st) {
  return kv_store_hint_put(s, target, keyspace, key, key_bytes, rec, rec_bytes, st);
}

static kv_err ops_hint_remove(void *s, uint32_t target, const char *keyspace, const void *key,
                              size_t key_bytes, kv_status_t *st) {
  return kv_store_hint_delete(s, target, keyspace, key, key_bytes, st);
}

static kv_err ops_hint_scan(void *s, uint32_t target, kv_storage_scan_fn fn, void *arg,
                            kv_status_t *st) {
  return kv_store_hint_scan(s, target, fn, arg, st);
}

/* The core's facts (storage.h's meta) live in the meta family under a prefix no fact of the
 * store's own ("incarnation", "clean", ...: printable ASCII) can start with. */
#define KV_STORE_CORE_META_PARTITION UINT32_MAX
#define KV_STORE_CORE_META_KEYSPACE "core"

static kv_err ops_meta_get(void *s, const char *name, uint8_t **val, size_t *val_bytes,
                           bool *found, kv_status_t *st) {
  return kv_store_get_cf(s, KV_STORE_CF_META, KV_STORE_CORE_META_PARTITION,
                         KV_STORE_CORE_META_KEYSPACE, name, strlen(name), val, val_bytes, found,
                         st);
}

static kv_err ops_meta_put(void *s, const char *name, const void *val, size_t val_bytes,
                           bool sync, kv_status_t *st) {
  return kv_store_put_cf(s, KV_STORE_CF_META, KV_STORE_CORE_META_PARTITION,
                         KV_STORE_CORE_META_KEYSPACE, name, strlen(name), val, val_bytes, sync,
                         st);
}

static const kv_storage_ops_t store_ops = {
    .incarnation = ops_incarnation, .sync = ops_sync, .get = ops_get, .put = ops_put,
    .remove = ops_remove, .put_tracked = ops_put_tracked, .remove_tracked = ops_remove_tracked,
    .scan_partition = ops_scan_partition, .aae_sums = ops_aae_sums,
    .aae_leaves = ops_aae_leaves, .hint_get = ops_hint_get, .hint_put = ops_hint_put,
    .hint_remove = ops_hint_remove, .hint_scan = ops_hint_scan,
    .meta_get = ops_meta_get, .meta_put = ops_meta_put};

void kv_store_storage(kv_store_t *s, kv_storage_t *out) {
  *out = (kv_storage_t){.ops = &store_ops, .impl = s};
}
