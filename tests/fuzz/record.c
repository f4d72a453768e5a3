/* record.c: a stored record (record.proto's Record: what a RocksDB value holds inside its
 * checksummed frame, and what replicas send each other in writes, reads and repairs), fed as
 * raw bytes to kv_dvv_decode. A record that decodes must be well formed (kv_dvv_check),
 * encode canonically (decode(encode(r)) == r, and encoding that again gives the same bytes),
 * and merge lawfully: with itself it is unchanged (idempotence), and merged into the empty
 * object it is itself. */
#include <stdlib.h>
#include <string.h>

#include "dvv.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  kv_dvv_t rec, again, merged;
  kv_status_t st;
  kv_status_clear(&st);
  if (kv_dvv_decode(data, size, &rec, &st) != KV_OK) {
    KV_ASSERT(st.code == KV_ECORRUPT && st.msg[0]);
    return 0;
  }
  KV_ASSERT(kv_dvv_check(&rec, &st));
  uint8_t *bytes, *bytes2;
  size_t n, n2;
  KV_ASSERT(kv_dvv_encode(&rec, &bytes, &n) == KV_OK);
  KV_ASSERT(kv_dvv_decode(bytes, n, &again, &st) == KV_OK);
  KV_ASSERT(kv_dvv_equal(&rec, &again));
  KV_ASSERT(kv_dvv_encode(&again, &bytes2, &n2) == KV_OK);
  KV_ASSERT(n == n2 && memcmp(bytes, bytes2, n) == 0);
  free(bytes);
  free(bytes2);

  KV_ASSERT(kv_dvv_merge(&again, &rec, &st) == KV_OK);
  KV_ASSERT(kv_dvv_equal(&rec, &again));
  kv_dvv_init(&merged);
  KV_ASSERT(kv_dvv_merge(&merged, &rec, &st) == KV_OK);
  KV_ASSERT(kv_dvv_equal(&rec, &merged));
  kv_dvv_deinit(&merged);
  kv_dvv_deinit(&again);
  kv_dvv_deinit(&rec);
  return 0;
}
