/* fmt.h: printing user bytes (keys, values) safely inside messages. */
#ifndef KV_FMT_H
#define KV_FMT_H

#include <stddef.h>

/* Writes bytes into buf (always NUL-terminated) as printable text: printable ASCII as is,
 * backslash and quote escaped, other bytes as \xNN; when it does not fit, the text ends in
 * "...". Returns buf, so it can be used as a printf argument. */
const char *kv_fmt_bytes(char *buf, size_t buf_bytes, const void *bytes, size_t len);

/* Enough room for a key shown in a message: 64 source bytes escaped, plus "...". */
#define KV_FMT_KEY_BYTES 272

#endif
