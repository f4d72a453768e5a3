/* bad_abi.c: a test plugin that answers an ABI version kvnode does not speak. */
#define KV_CONFLICT_ABI_ONLY
#include "conflict.h"

static const kv_conflict_plugin_t plugin = {.abi_version = 99, .name = "from the future"};

const kv_conflict_plugin_t *tunekv_conflict_plugin(void) { return &plugin; }
