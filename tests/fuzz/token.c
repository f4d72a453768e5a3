/* token.c: the causal-context token a client sends back with a put or a delete (kv.proto's
 * `context`, base64 on kvctl's command line), fed as raw bytes to kv_cc_decode, as
 * kv_node_plan decodes every write's. A context that decodes must encode to bytes that
 * decode to the same dots, and a put with it must leave a well-formed object whose context
 * covers it. */
#include <stdlib.h>

#include "dvv.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  kv_cc_t cc, again;
  kv_status_t st;
  kv_status_clear(&st);
  if (kv_cc_decode(data, size, &cc, &st) != KV_OK) {
    KV_ASSERT(st.code == KV_EINVAL && st.msg[0]);
    return 0;
  }
  uint8_t *bytes;
  size_t n;
  KV_ASSERT(kv_cc_encode(&cc, &bytes, &n) == KV_OK);
  KV_ASSERT(kv_cc_decode(bytes, n, &again, &st) == KV_OK);
  KV_ASSERT(kv_cc_compare(&cc, &again) == KV_ORDER_EQUAL);
  free(bytes);

  kv_dvv_t obj;
  kv_dvv_init(&obj);
  const kv_actor_t self = {.node = "n1", .incarnation = 1};
  if (kv_dvv_put(&obj, &self, 1, &cc, "v", 1, false, 1, KV_SIBLINGS_DEFAULT, &st) == KV_OK) {
    KV_ASSERT(kv_dvv_check(&obj, &st));
    KV_ASSERT(kv_cc_compare(&cc, &obj.cc) == KV_ORDER_BEFORE);
  }
  kv_dvv_deinit(&obj);
  return 0;
}
