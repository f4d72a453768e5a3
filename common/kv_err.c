/* kv_err.c: names, messages and gRPC codes of kv_err, all from the one KV_ERR_TABLE. */
#include "kv_err.h"

#include <stdio.h>
#include <string.h>

const char *kv_err_name(kv_err err) {
  switch (err) {
#define KV_ERR_NAME(name, value, grpc, msg) case name: return #name;
    KV_ERR_TABLE(KV_ERR_NAME)
#undef KV_ERR_NAME
  }
  return "KV_E?";
}

const char *kv_strerror(kv_err err) {
  switch (err) {
#define KV_ERR_MSG(name, value, grpc, msg) case name: return msg;
    KV_ERR_TABLE(KV_ERR_MSG)
#undef KV_ERR_MSG
  }
  return "unknown error";
}

int kv_err_grpc_code(kv_err err) {
  switch (err) {
#define KV_ERR_GRPC(name, value, grpc, msg) case name: return grpc;
    KV_ERR_TABLE(KV_ERR_GRPC)
#undef KV_ERR_GRPC
  }
  return 2; /* UNKNOWN */
}

const char *kv_grpc_code_name(int code) {
  static const char *const names[] = {
      "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
      "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
      "UNAUTHENTICATED"};
  if (code < 0 || code >= (int)(sizeof names / sizeof names[0])) return "UNKNOWN";
  return names[code];
}

kv_err kv_status_set(kv_status_t *st, kv_err code, const char *fmt, ...) {
  if (st) {
    st->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->msg, sizeof st->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}

void kv_status_clear(kv_status_t *st) {
  st->code = KV_OK;
  st->msg[0] = '\0';
}
