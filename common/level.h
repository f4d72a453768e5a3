/* level.h: the consistency level names of DESIGN section 7, shared by config, coordinator,
 * server and CLI. Names are matched case-insensitively. */
#ifndef KV_LEVEL_H
#define KV_LEVEL_H

#include <stdbool.h>

#define KV_LEVEL_TABLE(X) \
  X(ONE) X(TWO) X(THREE) X(QUORUM) X(ALL) X(ANY) X(LOCAL_ONE) X(LOCAL_QUORUM) X(EACH_QUORUM)

typedef enum {
  KV_LEVEL_DEFAULT = 0, /* "": use the keyspace's default */
#define KV_LEVEL_ENUM(name) KV_LEVEL_##name,
  KV_LEVEL_TABLE(KV_LEVEL_ENUM)
#undef KV_LEVEL_ENUM
  KV_LEVEL_COUNT
} kv_level_t;

/* Parses a level name ("quorum", "LOCAL_ONE"); "" gives KV_LEVEL_DEFAULT. False when the
 * name is unknown. */
bool kv_level_parse(const char *name, kv_level_t *out);
/* The canonical upper-case name; "DEFAULT" for KV_LEVEL_DEFAULT. A static string. */
const char *kv_level_name(kv_level_t level);
/* "ONE, TWO, ..., EACH_QUORUM": for error messages. A static string. */
const char *kv_level_names_list(void);

#endif
