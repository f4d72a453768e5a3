/* kv_err.h: the one error enum of tunekv, and the status (code plus sentence) that carries
 * an error to the user.
 *
 * Every error is one row of KV_ERR_TABLE: its enum value, the gRPC status code it becomes
 * at the network edge, and a default message. common/ must not include gRPC, so the gRPC
 * code is the stable numeric value from grpc/status.h. */
#ifndef KV_ERR_H
#define KV_ERR_H

#include <stdarg.h>
#include <stddef.h>

/*        name            value  grpc code (name)          default message */
#define KV_ERR_TABLE(X)                                                              \
  X(KV_OK,              0,   0 /* OK */,                  "ok")                        \
  X(KV_EINVAL,         -1,   3 /* INVALID_ARGUMENT */,    "invalid argument")          \
  X(KV_ENOTFOUND,      -2,   5 /* NOT_FOUND */,           "not found")                 \
  X(KV_EUNAVAILABLE,   -3,  14 /* UNAVAILABLE */,         "not enough live replicas")  \
  X(KV_ETIMEDOUT,      -4,   4 /* DEADLINE_EXCEEDED */,   "deadline exceeded")         \
  X(KV_EBUSY,          -5,   8 /* RESOURCE_EXHAUSTED */,  "resource exhausted")        \
  X(KV_EPRECONDITION,  -6,   9 /* FAILED_PRECONDITION */, "precondition failed")       \
  X(KV_ECORRUPT,       -7,  15 /* DATA_LOSS */,           "corrupt data")              \
  X(KV_EIO,            -8,  13 /* INTERNAL */,            "storage error")             \
  X(KV_EPERM,          -9,   7 /* PERMISSION_DENIED */,   "permission denied")         \
  X(KV_ECONFIG,       -10,   3 /* INVALID_ARGUMENT */,    "bad configuration")         \
  X(KV_ENOMEM,        -11,   8 /* RESOURCE_EXHAUSTED */,  "out of memory")             \
  X(KV_EINTERNAL,     -12,  13 /* INTERNAL */,            "internal error")            \
  X(KV_EUNAUTH,       -13,  16 /* UNAUTHENTICATED */,     "unauthenticated")             \
  X(KV_ESTALE,        -14,   9 /* FAILED_PRECONDITION */, "stale ring")

typedef enum {
#define KV_ERR_ENUM(name, value, grpc, msg) name = value,
  KV_ERR_TABLE(KV_ERR_ENUM)
#undef KV_ERR_ENUM
} kv_err;

/* The symbolic name ("KV_EINVAL"); a static string. */
const char *kv_err_name(kv_err err);
/* The default message; a static string. */
const char *kv_strerror(kv_err err);
/* The numeric gRPC status code an error becomes on the wire. */
int kv_err_grpc_code(kv_err err);
/* The gRPC status name for a numeric code ("INVALID_ARGUMENT"); a static string. */
const char *kv_grpc_code_name(int code);

#define KV_STATUS_MSG_BYTES 512

/* An error plus the sentence that names the problem, e.g.
 * {KV_EINVAL, "key is 2000 bytes; the limit is 1024"}. Caller-owned, no heap. */
typedef struct {
  kv_err code;
  char msg[KV_STATUS_MSG_BYTES];
} kv_status_t;

/* Sets st (when st is not NULL) and returns code, so callers can write
 * `return kv_status_set(st, KV_EINVAL, "key is empty");`. */
kv_err kv_status_set(kv_status_t *st, kv_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Resets st to KV_OK with an empty message. */
void kv_status_clear(kv_status_t *st);

#endif
