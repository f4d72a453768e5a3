/* fmt.c: escaping of user bytes for messages and logs. */
#include "fmt.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

const char *kv_fmt_bytes(char *buf, size_t buf_bytes, const void *bytes, size_t len) {
  KV_ASSERT(buf_bytes >= 8);
  const unsigned char *p = bytes;
  size_t out = 0;
  for (size_t i = 0; i < len; i++) {
    char piece[5];
    int n;
    if (p[i] == '\\' || p[i] == '\'' || p[i] == '"')
      n = snprintf(piece, sizeof piece, "\\%c", p[i]);
    else if (p[i] >= 0x20 && p[i] < 0x7f)
      n = snprintf(piece, sizeof piece, "%c", p[i]);
    else
      n = snprintf(piece, sizeof piece, "\\x%02x", p[i]);
    /* Keep room for "..." and the NUL in case more follows. */
    if (out + (size_t)n + 4 > buf_bytes) {
      memcpy(buf + out, "...", 4);
      return buf;
    }
    memcpy(buf + out, piece, (size_t)n);
    out += (size_t)n;
  }
  buf[out] = '\0';
  return buf;
}
