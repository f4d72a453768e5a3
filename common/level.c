/* level.c: consistency level names, from the one KV_LEVEL_TABLE. */
#include "level.h"

#include <strings.h>

static const char *const level_names[KV_LEVEL_COUNT] = {
    "DEFAULT",
#define KV_LEVEL_NAME(name) #name,
    KV_LEVEL_TABLE(KV_LEVEL_NAME)
#undef KV_LEVEL_NAME
};

bool kv_level_parse(const char *name, kv_level_t *out) {
  if (name[0] == '\0') {
    *out = KV_LEVEL_DEFAULT;
    return true;
  }
  for (int i = 1; i < KV_LEVEL_COUNT; i++) {
    if (strcasecmp(name, level_names[i]) == 0) {
      *out = (kv_level_t)i;
      return true;
    }
  }
  return false;
}

const char *kv_level_name(kv_level_t level) {
  if ((int)level < 0 || level >= KV_LEVEL_COUNT) return "?";
  return level_names[level];
}

const char *kv_level_names_list(void) {
  return "ONE, TWO, THREE, QUORUM, ALL, ANY, LOCAL_ONE, LOCAL_QUORUM, EACH_QUORUM";
}
