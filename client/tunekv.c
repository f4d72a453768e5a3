/* tunekv.c: libtunekv over the gRPC C core (1.51) and protobuf-c.
 *
 * Every call, blocking or async, is one unary RPC made of one batch of six ops
 * (SEND_INITIAL_METADATA, SEND_MESSAGE, SEND_CLOSE_FROM_CLIENT, RECV_INITIAL_METADATA,
 * RECV_MESSAGE, RECV_STATUS_ON_CLIENT) on a registered method, with a real deadline. The
 * state one call needs lives in a call_t that outlives the batch:
 *
 *   call_start   encodes nothing; creates the call, zeroes and fills the six ops, starts the
 *                batch. If start_batch fails, no completion will come: the call is undone
 *                on the spot and the caller learns it from the return value.
 *   call_finish  after the one completion: copies status and message, unrefs the details
 *                slice, destroys metadata arrays and both byte buffers, unrefs the call, and
 *                hands back the reply bytes as one slice (to be unref'd by the caller).
 *
 * Blocking calls use the client's own pluck queue and wait for their own tag only. Async
 * calls use the kv_client_async_t's next queue and a fixed slot table: a slot is on the free
 * list or in flight, never both, and `inflight` counts the slots not on the free list.
 * Replies of async calls are decoded into the slot's arena (a fixed buffer with malloc
 * fallback for big values), reset when the slot is reused.
 *
 * grpc_init is called once per open client and per async context, and grpc_shutdown once
 * when each is closed, so the library stays initialised while anything needs it. */
#include "tunekv.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv.pb-c.h"
#include "peer.pb-c.h"
#include "kv_limits.h"
#include "log.h"

/* ---- status ------------------------------------------------------------------------ */

kv_err kv_client_err_from_grpc(int grpc_code) {
  switch (grpc_code) {
    case GRPC_STATUS_OK: return KV_OK;
    case GRPC_STATUS_INVALID_ARGUMENT: return KV_EINVAL;
    case GRPC_STATUS_NOT_FOUND: return KV_ENOTFOUND;
    case GRPC_STATUS_UNAVAILABLE: return KV_EUNAVAILABLE;
    case GRPC_STATUS_DEADLINE_EXCEEDED: return KV_ETIMEDOUT;
    case GRPC_STATUS_RESOURCE_EXHAUSTED: return KV_EBUSY;
    case GRPC_STATUS_FAILED_PRECONDITION: return KV_EPRECONDITION;
    case GRPC_STATUS_DATA_LOSS: return KV_ECORRUPT;
    case GRPC_STATUS_PERMISSION_DENIED: return KV_EPERM;
    case GRPC_STATUS_UNAUTHENTICATED: return KV_EUNAUTH;
    default: return KV_EINTERNAL;
  }
}

const char *kv_client_status_name(const kv_client_status_t *st) {
  return kv_grpc_code_name(st->grpc_code);
}

static void status_ok(kv_client_status_t *st) {
  if (!st) return;
  st->code = KV_OK;
  st->grpc_code = GRPC_STATUS_OK;
  st->msg[0] = '\0';
}

/* A failure found on this side of the wire: the gRPC code is the kv_err's own. */
__attribute__((format(printf, 3, 4)))
static kv_err status_local(kv_client_status_t *st, kv_err code, const char *fmt, ...) {
  if (st) {
    st->code = code;
    st->grpc_code = kv_err_grpc_code(code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->msg, sizeof st->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}

/* A status as received; an empty message becomes a placeholder so "<NAME>: <msg>" reads. */
static kv_err status_grpc(kv_client_status_t *st, grpc_status_code code, grpc_slice details) {
  kv_err err = kv_client_err_from_grpc((int)code);
  if (st) {
    st->code = err;
    st->grpc_code = (int)code;
    size_t n = GRPC_SLICE_LENGTH(details);
    if (n >= sizeof st->msg) n = sizeof st->msg - 1;
    memcpy(st->msg, GRPC_SLICE_START_PTR(details), n);
    st->msg[n] = '\0';
    if (n == 0 && code != GRPC_STATUS_OK) snprintf(st->msg, sizeof st->msg, "(no message)");
  }
  return err;
}

/* ---- client ------------------------------------------------------------------------ */

static const char *const method_names[] = {
    [KV_CLIENT_OP_PUT] = "/tunekv.KV/Put",
    [KV_CLIENT_OP_GET] = "/tunekv.KV/Get",
    [KV_CLIENT_OP_DELETE] = "/tunekv.KV/Delete",
};

struct kv_client {
  grpc_channel *channel;
  grpc_completion_queue *cq; /* pluck queue for blocking calls */
  void *method[3];           /* registered call handles, by kv_client_op_t */
  void *status_method;       /* /tunekv.peer.Admin/Status */
  void *fault_method;        /* /tunekv.peer.Admin/Fault */
  void *conflicts_method;    /* /tunekv.peer.Admin/Conflicts */
  void *applied_method;      /* /tunekv.peer.Admin/Applied */
  void *ring_method;         /* /tunekv.peer.Admin/Ring */
  grpc_metadata auth_md;     /* "authorization: Bearer TOKEN", sent with every call */
  bool has_token;
};

/* The whole of a small file (a PEM) as a NUL-terminated string the caller frees; NULL with
 * the reason in st. */
static char *read_pem(const char *what, const char *path, kv_client_status_t *st) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    status_local(st, KV_EINVAL, "the %s '%s' cannot be read: %s", what, path, strerror(errno));
    return NULL;
  }
  enum { PEM_BYTES_MAX = 1 << 20 };
  char *text = malloc(PEM_BYTES_MAX + 1);
  size_t n = text ? fread(text, 1, PEM_BYTES_MAX + 1, f) : 0;
  bool bad = !text || ferror(f) || n > PEM_BYTES_MAX;
  fclose(f);
  if (bad) {
    free(text);
    status_local(st, KV_EINVAL, "the %s '%s' cannot be read (or is over 1 MiB)", what, path);
    return NULL;
  }
  text[n] = '\0';
  return text;
}

/* The channel credentials auth asks for (plaintext when it names no CA). */
static grpc_channel_credentials *open_credentials(const kv_client_auth_t *auth,
                                                  kv_client_status_t *st) {
  bool cert = auth && auth->cert_file, key = auth && auth->key_file;
  if (cert != key) {
    status_local(st, KV_EINVAL, "a client certificate needs its key, and a key its certificate");
    return NULL;
  }
  if (!auth || !auth->ca_file) {
    if (cert) status_local(st, KV_EINVAL, "a client certificate needs a CA file too (TLS)");
    return cert ? NULL : grpc_insecure_credentials_create();
  }
  char *ca = read_pem("CA file", auth->ca_file, st);
  char *chain = ca && cert ? read_pem("certificate file", auth->cert_file, st) : NULL;
  char *pkey = chain ? read_pem("key file", auth->key_file, st) : NULL;
  grpc_channel_credentials *creds = NULL;
  if (ca && cert == (pkey != NULL)) {
    grpc_ssl_pem_key_cert_pair pair = {.private_key = pkey, .cert_chain = chain};
    creds = grpc_ssl_credentials_create_ex(ca, cert ? &pair : NULL, NULL, NULL);
    if (!creds) status_local(st, KV_EINVAL, "gRPC refused the TLS files");
  }
  free(ca);
  free(chain);
  if (pkey) memset(pkey, 0, strlen(pkey));
  free(pkey);
  return creds;
}

/* "Bearer TOKEN" as the metadata every call sends; false (st set) for a token that cannot be
 * sent as a header. */
static bool open_token(kv_client_t *c, const char *token, kv_client_status_t *st) {
  if (!token || !token[0]) return true;
  for (const char *p = token; *p; p++)
    if (*p < 0x21 || *p > 0x7e) {
      status_local(st, KV_EINVAL, "the token has a space or a byte that is not printable ASCII");
      return false;
    }
  size_t n = strlen(token);
  char *value = malloc(n + 8);
  if (!value) {
    status_local(st, KV_ENOMEM, "out of memory opening a client");
    return false;
  }
  memcpy(value, "Bearer ", 7);
  memcpy(value + 7, token, n + 1);
  c->auth_md.key = grpc_slice_from_static_string("authorization");
  c->auth_md.value = grpc_slice_from_copied_string(value);
  memset(value, 0, n + 7);
  free(value);
  c->has_token = true;
  return true;
}

int kv_client_open(const char *addr, kv_client_t **out, kv_client_status_t *st) {
  return kv_client_open_auth(addr, NULL, out, st);
}

int kv_client_open_auth(const char *addr, const kv_client_auth_t *auth, kv_client_t **out,
                        kv_client_status_t *st) {
  KV_ASSERT(addr != NULL && out != NULL);
  kv_client_status_t local;
  if (!st) st = &local;
  *out = NULL;
  if (addr[0] == '\0') return status_local(st, KV_EINVAL, "the address is empty");
  if (strlen(addr) > KV_ADDRESS_BYTES_MAX)
    return status_local(st, KV_EINVAL, "the address is too long");
  kv_client_t *c = calloc(1, sizeof *c);
  if (!c) return status_local(st, KV_ENOMEM, "out of memory opening a client");
  if (!open_token(c, auth ? auth->token : NULL, st)) {
    free(c);
    return st->code;
  }
  grpc_init();
  grpc_channel_credentials *creds = open_credentials(auth, st);
  if (!creds) {
    if (c->has_token) grpc_slice_unref(c->auth_md.value);
    free(c);
    grpc_shutdown();
    return st->code;
  }

  size_t max = kv_limits_grpc_message_bytes(KV_KEY_BYTES_HARD_MAX, KV_VALUE_BYTES_HARD_MAX,
                                            KV_SIBLINGS_MAX);
  int max_int = max > (size_t)INT_MAX ? INT_MAX : (int)max;
  /* Message sizes from the hard limits; reconnects retried within a second (gRPC's default
   * backoff grows to 120 s), so a long-lived client finds a restarted node quickly. */
  grpc_arg args[5];
  memset(args, 0, sizeof args);
  static const char *const keys[4] = {
      GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
      GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, GRPC_ARG_MAX_RECONNECT_BACKOFF_MS};
  const int values[4] = {max_int, max_int, 100, 1000};
  for (int i = 0; i < 4; i++) {
    args[i].type = GRPC_ARG_INTEGER;
    args[i].key = (char *)keys[i];
    args[i].value.integer = values[i];
  }
  size_t n_args = 4;
  if (auth && auth->ca_file && auth->server_name) {
    args[n_args].type = GRPC_ARG_STRING;
    args[n_args].key = (char *)GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
    args[n_args++].value.string = (char *)auth->server_name;
  }
  grpc_channel_args chargs = {.num_args = n_args, .args = args};

  c->channel = grpc_channel_create(addr, creds, &chargs);
  grpc_channel_credentials_release(creds);
  c->cq = grpc_completion_queue_create_for_pluck(NULL);
  for (int i = 0; i < 3; i++)
    c->method[i] = grpc_channel_register_call(c->channel, method_names[i], NULL, NULL);
  c->status_method =
      grpc_channel_register_call(c->channel, "/tunekv.peer.Admin/Status", NULL, NULL);
  c->fault_method = grpc_channel_register_call(c->channel, "/tunekv.peer.Admin/Fault", NULL, NULL);
  c->applied_method =
      grpc_channel_register_call(c->channel, "/tunekv.peer.Admin/Applied", NULL, NULL);
  c->conflicts_method =
      grpc_channel_register_call(c->channel, "/tunekv.peer.Admin/Conflicts", NULL, NULL);
  c->ring_method = grpc_channel_register_call(c->channel, "/tunekv.peer.Admin/Ring", NULL, NULL);
  *out = c;
  status_ok(st);
  return KV_OK;
}

void kv_client_close(kv_client_t *c) {
  if (!c) return;
  grpc_completion_queue_shutdown(c->cq);
  grpc_event ev = grpc_completion_queue_pluck(c->cq, NULL, gpr_inf_past(GPR_CLOCK_REALTIME),
                                              NULL);
  KV_ASSERT(ev.type == GRPC_QUEUE_SHUTDOWN);
  grpc_completion_queue_destroy(c->cq);
  grpc_channel_destroy(c->channel);
  if (c->has_token) grpc_slice_unref(c->auth_md.value);
  free(c);
  grpc_shutdown();
}


/* ---- encoding ---------------------------------------------------------------------- */

/* Fills cons from opts; returns NULL (no Consistency message) when opts is NULL. */
static Tunekv__Consistency *consistency_from(const kv_client_opts_t *opts,
                                             Tunekv__Consistency *cons) {
  if (!opts) return NULL;
  tunekv__consistency__init(cons);
  cons->level = (char *)(opts->level ? opts->level : "");
  cons->r = opts->r;
  cons->w = opts->w;
  cons->pr = opts->pr;
  cons->pw = opts->pw;
  cons->durable = opts->durable;
  cons->timeout_ms = opts->timeout_ms;
  return cons;
}

static ProtobufCBinaryData bin(const void *p, size_t n) {
  KV_ASSERT(p != NULL || n == 0);
  ProtobufCBinaryData b = {.len = n, .data = (uint8_t *)p};
  return b;
}

/* Packs msg into a new byte buffer the caller destroys. */
static grpc_byte_buffer *pack(const ProtobufCMessage *msg) {
  size_t n = protobuf_c_message_get_packed_size(msg);
  grpc_slice s = grpc_slice_malloc(n);
  size_t packed = protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
  KV_ASSERT(packed == n);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return bb;
}

/* The request arguments of any of the three calls, gathered so encoding is in one place. */
typedef struct {
  kv_client_op_t op;
  const char *keyspace;
  const void *key, *value, *context;
  size_t key_bytes, value_bytes, context_bytes;
  const kv_client_opts_t *opts;
} request_t;

static grpc_byte_buffer *request_pack(const request_t *rq) {
  KV_ASSERT(rq->keyspace != NULL);
  Tunekv__Consistency cons;
  char *keyspace = (char *)rq->keyspace;
  switch (rq->op) {
    case KV_CLIENT_OP_PUT: {
      Tunekv__PutRequest m = TUNEKV__PUT_REQUEST__INIT;
      m.keyspace = keyspace;
      m.key = bin(rq->key, rq->key_bytes);
      m.value = bin(rq->value, rq->value_bytes);
      m.context = bin(rq->context, rq->context_bytes);
      m.consistency = consistency_from(rq->opts, &cons);
      if (rq->opts && rq->opts->handler) m.handler = (char *)rq->opts->handler;
      return pack(&m.base);
    }
    case KV_CLIENT_OP_GET: {
      Tunekv__GetRequest m = TUNEKV__GET_REQUEST__INIT;
      m.keyspace = keyspace;
      m.key = bin(rq->key, rq->key_bytes);
      m.consistency = consistency_from(rq->opts, &cons);
      m.local = rq->opts ? rq->opts->local : false;
      if (rq->opts && rq->opts->read_repair) m.read_repair = (char *)rq->opts->read_repair;
      if (rq->opts && rq->opts->handler) m.handler = (char *)rq->opts->handler;
      return pack(&m.base);
    }
    case KV_CLIENT_OP_DELETE: {
      Tunekv__DeleteRequest m = TUNEKV__DELETE_REQUEST__INIT;
      m.keyspace = keyspace;
      m.key = bin(rq->key, rq->key_bytes);
      m.context = bin(rq->context, rq->context_bytes);
      m.consistency = consistency_from(rq->opts, &cons);
      if (rq->opts && rq->opts->handler) m.handler = (char *)rq->opts->handler;
      return pack(&m.base);
    }
  }
  KV_ASSERT(!"unknown op");
  return NULL;
}

/* ---- one call ---------------------------------------------------------------------- */

typedef struct {
  grpc_call *call;
  grpc_metadata_array initial_md, trailing_md;
  grpc_byte_buffer *request, *reply;
  grpc_status_code status;
  grpc_slice details;
} call_t;

static gpr_timespec call_deadline(const kv_client_opts_t *opts) {
  int64_t ms = (opts && opts->timeout_ms)
                   ? (int64_t)opts->timeout_ms + KV_CLIENT_DEADLINE_MARGIN_MS
                   : (int64_t)KV_CLIENT_DEADLINE_DEFAULT_MS;
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

/* Starts the six-op batch of a call to method carrying request (taken over) on cq with tag.
 * On failure everything is undone and no completion will come. */
static kv_err call_start_raw(kv_client_t *c, grpc_completion_queue *cq, void *method,
                             grpc_byte_buffer *request, gpr_timespec deadline, call_t *k,
                             void *tag, kv_client_status_t *st) {
  KV_ASSERT(c != NULL);
  memset(k, 0, sizeof *k);
  k->request = request;
  k->call = grpc_channel_create_registered_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                                method, deadline, NULL);
  if (!k->call) {
    grpc_byte_buffer_destroy(k->request);
    return status_local(st, KV_EINTERNAL, "gRPC could not create the call");
  }
  grpc_metadata_array_init(&k->initial_md);
  grpc_metadata_array_init(&k->trailing_md);
  k->details = grpc_empty_slice();

  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  if (c->has_token) {
    ops[0].data.send_initial_metadata.count = 1;
    ops[0].data.send_initial_metadata.metadata = &c->auth_md;
  }
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = k->request;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &k->initial_md;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &k->reply;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &k->trailing_md;
  ops[5].data.recv_status_on_client.status = &k->status;
  ops[5].data.recv_status_on_client.status_details = &k->details;
  if (grpc_call_start_batch(k->call, ops, 6, tag, NULL) != GRPC_CALL_OK) {
    grpc_metadata_array_destroy(&k->initial_md);
    grpc_metadata_array_destroy(&k->trailing_md);
    grpc_byte_buffer_destroy(k->request);
    grpc_call_unref(k->call);
    memset(k, 0, sizeof *k);
    return status_local(st, KV_EINTERNAL, "gRPC refused to start the call");
  }
  return KV_OK;
}

/* Starts the call of rq on cq with tag (see call_start_raw). */
static kv_err call_start(kv_client_t *c, grpc_completion_queue *cq, const request_t *rq,
                         call_t *k, void *tag, kv_client_status_t *st) {
  return call_start_raw(c, cq, c->method[rq->op], request_pack(rq), call_deadline(rq->opts), k,
                        tag, st);
}

/* Releases everything of a completed call. On KV_OK *reply holds the reply bytes (one
 * slice the caller unrefs); otherwise *reply is empty and st says why. */
static kv_err call_finish(call_t *k, grpc_slice *reply, kv_client_status_t *st) {
  *reply = grpc_empty_slice();
  kv_err err = status_grpc(st, k->status, k->details);
  if (err == KV_OK) {
    grpc_byte_buffer_reader reader;
    if (!k->reply) {
      err = status_local(st, KV_EINTERNAL, "the server sent no reply message");
    } else if (!grpc_byte_buffer_reader_init(&reader, k->reply)) {
      err = status_local(st, KV_EINTERNAL, "the server's reply could not be read");
    } else {
      *reply = grpc_byte_buffer_reader_readall(&reader);
      grpc_byte_buffer_reader_destroy(&reader);
    }
  }
  grpc_slice_unref(k->details);
  grpc_metadata_array_destroy(&k->initial_md);
  grpc_metadata_array_destroy(&k->trailing_md);
  grpc_byte_buffer_destroy(k->request);
  if (k->reply) grpc_byte_buffer_destroy(k->reply);
  grpc_call_unref(k->call);
  memset(k, 0, sizeof *k);
  return err;
}

/* Decodes a reply with allocator (NULL = malloc). NULL with st set when malformed. */
static ProtobufCMessage *reply_unpack(const ProtobufCMessageDescriptor *desc, grpc_slice reply,
                                      ProtobufCAllocator *allocator, kv_client_status_t *st) {
  ProtobufCMessage *m = protobuf_c_message_unpack(desc, allocator, GRPC_SLICE_LENGTH(reply),
                                                  GRPC_SLICE_START_PTR(reply));
  if (!m) status_local(st, KV_EINTERNAL, "the server's reply could not be decoded");
  return m;
}

/* Waits for the blocking call k started on c->cq; on KV_OK *out is the reply decoded as desc
 * (malloc'd by protobuf-c). */
static kv_err call_wait(kv_client_t *c, call_t *k, const ProtobufCMessageDescriptor *desc,
                        ProtobufCMessage **out, kv_client_status_t *st) {
  /* The call's deadline bounds the wait: exactly one completion comes for k. */
  grpc_event ev = grpc_completion_queue_pluck(c->cq, k, gpr_inf_future(GPR_CLOCK_REALTIME),
                                              NULL);
  KV_ASSERT(ev.type == GRPC_OP_COMPLETE && ev.tag == k);
  grpc_slice reply;
  kv_err err = call_finish(k, &reply, st);
  if (err == KV_OK) {
    *out = reply_unpack(desc, reply, NULL, st);
    if (!*out) err = KV_EINTERNAL;
  }
  grpc_slice_unref(reply);
  return err;
}

/* Runs one blocking call; on KV_OK *out is the decoded reply (malloc'd by protobuf-c). */
static kv_err call_blocking(kv_client_t *c, const request_t *rq, ProtobufCMessage **out,
                            kv_client_status_t *st) {
  *out = NULL;
  call_t k;
  kv_err err = call_start(c, c->cq, rq, &k, &k, st);
  if (err != KV_OK) return err;
  return call_wait(c, &k, &tunekv__key_response__descriptor, out, st);
}

/* One admin call (status, faults, conflicts, applied, ring): sends req to method and waits,
 * with the library's deadline, for a reply of desc, unpacked into *out (the caller frees it
 * with protobuf_c_message_free_unpacked). */
static kv_err admin_call(kv_client_t *c, void *method, const ProtobufCMessage *req,
                         const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out,
                         kv_client_status_t *st) {
  call_t k;
  kv_err err = call_start_raw(c, c->cq, method, pack(req), call_deadline(NULL), &k, &k, st);
  return err == KV_OK ? call_wait(c, &k, desc, out, st) : err;
}

int kv_client_node_status(kv_client_t *c, kv_client_node_status_t *out,
                          kv_client_status_t *st) {
  memset(out, 0, sizeof *out);
  Tunekv__Peer__StatusRequest req = TUNEKV__PEER__STATUS_REQUEST__INIT;
  ProtobufCMessage *m = NULL;
  kv_err err = admin_call(c, c->status_method, &req.base,
                          &tunekv__peer__status_reply__descriptor, &m, st);
  if (err != KV_OK) return err;
  const Tunekv__Peer__StatusReply *r = (const Tunekv__Peer__StatusReply *)m;
  snprintf(out->node, sizeof out->node, "%s", r->node);
  snprintf(out->cluster, sizeof out->cluster, "%s", r->cluster);
  out->incarnation = r->incarnation;
  for (size_t i = 0; i < r->n_peers && i < KV_NODES_MAX; i++) {
    kv_client_peer_t *p = &out->peers[out->n_peers++];
    snprintf(p->id, sizeof p->id, "%s", r->peers[i]->id);
    snprintf(p->address, sizeof p->address, "%s", r->peers[i]->address);
    p->up = r->peers[i]->up;
    p->phi = r->peers[i]->phi;
    p->last_heard_ms_ago = r->peers[i]->last_heard_ms_ago;
    p->hints_pending = r->peers[i]->hints_pending;
    p->hint_bytes = r->peers[i]->hint_bytes;
    p->hints_delivered = r->peers[i]->hints_delivered;
    p->hints_dropped = r->peers[i]->hints_dropped;
    p->aae_exchanges = r->peers[i]->aae_exchanges;
    p->aae_failed = r->peers[i]->aae_failed;
    p->aae_keys_repaired = r->peers[i]->aae_keys_repaired;
    p->aae_last_ms_ago = r->peers[i]->aae_last_ms_ago;
    p->aae_last_repaired = r->peers[i]->aae_last_repaired;
    p->clock_known = r->peers[i]->clock_known;
    p->clock_offset_ms = r->peers[i]->clock_offset_ms;
    p->clock_skewed = r->peers[i]->clock_skewed;
  }
  out->aae_interval_ms = r->aae_interval_ms;
  if (r->reaping) {
    out->reap_grace_ms = r->reaping->grace_ms;
    out->reap_waiting = r->reaping->waiting;
    out->reap_reaped = r->reaping->reaped;
    out->reap_kept = r->reaping->kept;
    out->reap_dropped = r->reaping->dropped;
  }
  out->max_clock_skew_ms = r->max_clock_skew_ms;
  out->rss_bytes = r->rss_bytes;
  out->threads = r->threads;
  if (r->lag) {
    out->lag_writes = r->lag->writes;
    out->lag_p50_ms = r->lag->p50_ms;
    out->lag_p99_ms = r->lag->p99_ms;
    out->lag_max_ms = r->lag->max_ms;
  }
  protobuf_c_message_free_unpacked(m, NULL);
  return KV_OK;
}

static void conflict_version_from(const Tunekv__Peer__ConflictVersion *pb,
                                  kv_client_conflict_version_t *v) {
  memset(v, 0, sizeof *v);
  v->node = "";
  v->value = (const uint8_t *)"";
  if (!pb) return;
  v->node = pb->node;
  v->incarnation = pb->incarnation;
  v->counter = pb->counter;
  v->hlc = pb->hlc;
  v->tombstone = pb->tombstone;
  v->truncated = pb->truncated;
  if (pb->value.len) v->value = pb->value.data;
  v->value_bytes = pb->value.len;
}

/* Fills out from a decoded reply, which out then owns. */
static kv_err conflicts_from(Tunekv__Peer__ConflictsReply *r, kv_client_conflicts_t *out) {
  out->priv_ = r;
  out->more = r->more;
  out->evicted = r->evicted;
  size_t discarded = 0;
  for (size_t i = 0; i < r->n_conflicts; i++) discarded += r->conflicts[i]->n_discarded;
  out->conflicts = calloc(r->n_conflicts ? r->n_conflicts : 1, sizeof *out->conflicts);
  /* One array for every entry's discarded versions; conflicts[0].discarded is its start. */
  kv_client_conflict_version_t *dv =
      r->n_conflicts ? calloc(discarded ? discarded : 1, sizeof *dv) : NULL;
  out->counts = calloc(r->n_counts ? r->n_counts : 1, sizeof *out->counts);
  if (!out->conflicts || (r->n_conflicts && !dv) || !out->counts) {
    free(dv);
    return KV_ENOMEM;
  }
  for (size_t i = 0; i < r->n_conflicts; i++) {
    const Tunekv__Peer__Conflict *x = r->conflicts[i];
    kv_client_conflict_t *e = &out->conflicts[i];
    *e = (kv_client_conflict_t){.seq = x->seq, .time_ms = x->time_ms, .keyspace = x->keyspace,
                                .key = x->key.data, .key_bytes = x->key.len,
                                .handler = x->handler, .reason = x->reason,
                                .suspect = x->suspect, .n_discarded = x->n_discarded,
                                .discarded = dv};
    conflict_version_from(x->kept, &e->kept);
    for (size_t k = 0; k < x->n_discarded; k++) conflict_version_from(x->discarded[k], dv++);
  }
  out->n_conflicts = r->n_conflicts;
  for (size_t i = 0; i < r->n_counts; i++)
    out->counts[i] = (kv_client_handler_count_t){r->counts[i]->handler, r->counts[i]->discarded};
  out->n_counts = r->n_counts;
  return KV_OK;
}

int kv_client_conflicts(kv_client_t *c, uint64_t after, kv_client_conflicts_t *out,
                        kv_client_status_t *st) {
  memset(out, 0, sizeof *out);
  Tunekv__Peer__ConflictsRequest req = TUNEKV__PEER__CONFLICTS_REQUEST__INIT;
  req.after = after;
  ProtobufCMessage *m = NULL;
  kv_err err = admin_call(c, c->conflicts_method, &req.base,
                          &tunekv__peer__conflicts_reply__descriptor, &m, st);
  if (err != KV_OK) return err;
  if (conflicts_from((Tunekv__Peer__ConflictsReply *)m, out) != KV_OK)
    return status_local(st, KV_ENOMEM, "out of memory reading the conflict journal");
  return KV_OK;
}

int kv_client_applied(kv_client_t *c, const char *keyspace, const void *key, size_t key_bytes,
                      kv_client_applied_t *out, kv_client_status_t *st) {
  memset(out, 0, sizeof *out);
  Tunekv__Peer__AppliedRequest req = TUNEKV__PEER__APPLIED_REQUEST__INIT;
  req.keyspace = (char *)keyspace;
  req.key = bin(key, key_bytes);
  ProtobufCMessage *m = NULL;
  kv_err err = admin_call(c, c->applied_method, &req.base,
                          &tunekv__peer__applied_reply__descriptor, &m, st);
  if (err != KV_OK) return err;
  const Tunekv__Peer__AppliedReply *r = (const Tunekv__Peer__AppliedReply *)m;
  out->acked_ms = r->acked_ms;
  for (size_t i = 0; i < r->n_replicas && i < KV_REPLICAS_MAX; i++) {
    kv_client_replica_applied_t *a = &out->replicas[out->n_replicas++];
    snprintf(a->node, sizeof a->node, "%s", r->replicas[i]->node);
    a->applied_ms = r->replicas[i]->applied_ms;
  }
  protobuf_c_message_free_unpacked(m, NULL);
  return KV_OK;
}

/* Whether every node index of x is one of the reply's n nodes. */
static bool ring_row_valid(const Tunekv__Peer__RingPartition *x, size_t n) {
  if (x->n_stand_ins != x->n_primaries) return false;
  for (size_t i = 0; i < x->n_primaries; i++)
    if (x->primaries[i] >= n || x->stand_ins[i] < -1 || x->stand_ins[i] >= (int32_t)n)
      return false;
  for (size_t i = 0; i < x->n_fallbacks; i++)
    if (x->fallbacks[i] >= n) return false;
  return true;
}

/* Fills out from a decoded reply, which out then owns. */
static kv_err ring_from(Tunekv__Peer__RingReply *r, kv_client_ring_t *out,
                        kv_client_status_t *st) {
  out->priv_ = r;
  out->node = r->node;
  out->partitions = r->partitions;
  if (r->n_nodes > KV_NODES_MAX)
    return status_local(st, KV_EINTERNAL, "the ring reply lists more nodes than a cluster has");
  for (size_t i = 0; i < r->n_nodes; i++)
    out->nodes[i] = (kv_client_ring_node_t){r->nodes[i]->id, r->nodes[i]->address,
                                            r->nodes[i]->region, r->nodes[i]->rack,
                                            r->nodes[i]->up};
  out->n_nodes = r->n_nodes;
  size_t rows = 0;
  for (size_t k = 0; k < r->n_keyspaces; k++) rows += r->keyspaces[k]->n_partitions;
  out->keyspaces = calloc(r->n_keyspaces ? r->n_keyspaces : 1, sizeof *out->keyspaces);
  /* One array for every keyspace's rows; keyspaces[0].partitions is its start. */
  kv_client_ring_partition_t *row = calloc(rows ? rows : 1, sizeof *row);
  if (!out->keyspaces || !row) {
    free(row);
    return status_local(st, KV_ENOMEM, "out of memory reading the ring");
  }
  out->keyspaces[0].partitions = row;
  for (size_t k = 0; k < r->n_keyspaces; k++) {
    const Tunekv__Peer__RingKeyspace *x = r->keyspaces[k];
    kv_client_ring_keyspace_t *ks = &out->keyspaces[k];
    *ks = (kv_client_ring_keyspace_t){.name = x->name, .sloppy_quorum = x->sloppy_quorum,
                                      .n_partitions = x->n_partitions, .partitions = row};
    for (size_t i = 0; i < x->n_replication && i < KV_REGIONS_MAX; i++, ks->n_regions++) {
      ks->regions[i] = x->replication[i]->region;
      ks->replicas[i] = x->replication[i]->replicas;
    }
    out->n_keyspaces++;
    for (size_t p = 0; p < x->n_partitions; p++, row++) {
      const Tunekv__Peer__RingPartition *y = x->partitions[p];
      if (!ring_row_valid(y, r->n_nodes))
        return status_local(st, KV_EINTERNAL, "the ring reply names a node it does not list");
      *row = (kv_client_ring_partition_t){
          .partition = y->partition, .n_primaries = y->n_primaries, .primaries = y->primaries,
          .n_fallbacks = y->n_fallbacks, .fallbacks = y->fallbacks, .stand_ins = y->stand_ins};
    }
  }
  return KV_OK;
}

int kv_client_ring(kv_client_t *c, const char *keyspace, const void *key, size_t key_bytes,
                   kv_client_ring_t *out, kv_client_status_t *st) {
  memset(out, 0, sizeof *out);
  Tunekv__Peer__RingRequest req = TUNEKV__PEER__RING_REQUEST__INIT;
  req.keyspace = (char *)keyspace;
  req.key = bin(key, key_bytes);
  ProtobufCMessage *m = NULL;
  kv_err err = admin_call(c, c->ring_method, &req.base,
                          &tunekv__peer__ring_reply__descriptor, &m, st);
  if (err != KV_OK) return err;
  return ring_from((Tunekv__Peer__RingReply *)m, out, st);
}

void kv_client_ring_free(kv_client_ring_t *out) {
  if (!out) return;
  if (out->keyspaces) free(out->keyspaces[0].partitions);
  free(out->keyspaces);
  if (out->priv_) protobuf_c_message_free_unpacked(out->priv_, NULL);
  memset(out, 0, sizeof *out);
}

void kv_client_conflicts_free(kv_client_conflicts_t *out) {
  if (!out) return;
  if (out->conflicts && out->n_conflicts > 0) free(out->conflicts[0].discarded);
  free(out->conflicts);
  free(out->counts);
  if (out->priv_) protobuf_c_message_free_unpacked(out->priv_, NULL);
  memset(out, 0, sizeof *out);
}

int kv_client_fault(kv_client_t *c, kv_client_fault_op_t op, const char *const *peers,
                    size_t n_peers, const kv_client_fault_t *fault, kv_client_faults_t *out,
                    kv_client_status_t *st) {
  static const Tunekv__Peer__FaultRequest__Action actions[] = {
      [KV_CLIENT_FAULT_LIST] = TUNEKV__PEER__FAULT_REQUEST__ACTION__LIST,
      [KV_CLIENT_FAULT_SET] = TUNEKV__PEER__FAULT_REQUEST__ACTION__SET,
      [KV_CLIENT_FAULT_CLEAR] = TUNEKV__PEER__FAULT_REQUEST__ACTION__CLEAR};
  KV_ASSERT((op == KV_CLIENT_FAULT_SET) == (fault != NULL) && out != NULL);
  memset(out, 0, sizeof *out);
  Tunekv__Peer__FaultRequest req = TUNEKV__PEER__FAULT_REQUEST__INIT;
  req.action = actions[op];
  req.n_peers = n_peers;
  req.peers = (char **)peers;
  if (fault) {
    req.delay_ms = fault->delay_ms;
    req.jitter_ms = fault->jitter_ms;
    req.drop = fault->drop;
    req.exp_delay_ms = fault->exp_delay_ms;
    req.both_ways = fault->both_ways;
  }
  ProtobufCMessage *m = NULL;
  kv_err err = admin_call(c, c->fault_method, &req.base,
                          &tunekv__peer__fault_reply__descriptor, &m, st);
  if (err != KV_OK) return err;
  const Tunekv__Peer__FaultReply *r = (const Tunekv__Peer__FaultReply *)m;
  for (size_t i = 0; i < r->n_faults && i < KV_NODES_MAX; i++) {
    kv_client_fault_t *f = &out->faults[out->n_faults++];
    snprintf(f->peer, sizeof f->peer, "%s", r->faults[i]->peer);
    f->delay_ms = r->faults[i]->delay_ms;
    f->jitter_ms = r->faults[i]->jitter_ms;
    f->drop = r->faults[i]->drop;
    f->exp_delay_ms = r->faults[i]->exp_delay_ms;
    f->both_ways = r->faults[i]->both_ways;
  }
  protobuf_c_message_free_unpacked(m, NULL);
  return KV_OK;
}

/* Runs one blocking call and fills *res from its KeyResponse. */
static int key_call(kv_client_t *c, const request_t *rq, kv_client_result_t *res,
                    kv_client_status_t *st) {
  KV_ASSERT(res != NULL);
  memset(res, 0, sizeof *res);
  res->context = (const uint8_t *)"";
  ProtobufCMessage *m;
  kv_err err = call_blocking(c, rq, &m, st);
  if (err != KV_OK) return err;
  Tunekv__KeyResponse *r = (Tunekv__KeyResponse *)m;
  if (r->n_siblings > 0) {
    res->siblings = calloc(r->n_siblings, sizeof *res->siblings);
    if (!res->siblings) {
      protobuf_c_message_free_unpacked(m, NULL);
      return status_local(st, KV_ENOMEM, "out of memory decoding the reply");
    }
  }
  for (size_t i = 0; i < r->n_siblings; i++) {
    const Tunekv__Sibling *s = r->siblings[i];
    res->siblings[i].value = s->value.len ? s->value.data : (const uint8_t *)"";
    res->siblings[i].value_bytes = s->value.len;
    res->siblings[i].hlc = s->hlc;
  }
  res->n_siblings = r->n_siblings;
  res->found = r->found;
  if (r->context.len) res->context = r->context.data;
  res->context_bytes = r->context.len;
  res->priv_ = m;
  return KV_OK;
}

int kv_client_put(kv_client_t *c, const char *keyspace, const void *key, size_t key_bytes,
                  const void *value, size_t value_bytes, const void *context,
                  size_t context_bytes, const kv_client_opts_t *opts, kv_client_result_t *res,
                  kv_client_status_t *st) {
  request_t rq = {.op = KV_CLIENT_OP_PUT, .keyspace = keyspace, .key = key,
                  .key_bytes = key_bytes, .value = value, .value_bytes = value_bytes,
                  .context = context, .context_bytes = context_bytes, .opts = opts};
  return key_call(c, &rq, res, st);
}

int kv_client_delete(kv_client_t *c, const char *keyspace, const void *key, size_t key_bytes,
                     const void *context, size_t context_bytes, const kv_client_opts_t *opts,
                     kv_client_result_t *res, kv_client_status_t *st) {
  request_t rq = {.op = KV_CLIENT_OP_DELETE, .keyspace = keyspace, .key = key,
                  .key_bytes = key_bytes, .context = context, .context_bytes = context_bytes,
                  .opts = opts};
  return key_call(c, &rq, res, st);
}

int kv_client_get(kv_client_t *c, const char *keyspace, const void *key, size_t key_bytes,
                  const kv_client_opts_t *opts, kv_client_result_t *res,
                  kv_client_status_t *st) {
  request_t rq = {.op = KV_CLIENT_OP_GET, .keyspace = keyspace, .key = key,
                  .key_bytes = key_bytes, .opts = opts};
  return key_call(c, &rq, res, st);
}

void kv_client_result_free(kv_client_result_t *res) {
  if (!res) return;
  free(res->siblings);
  if (res->priv_) protobuf_c_message_free_unpacked(res->priv_, NULL);
  memset(res, 0, sizeof *res);
  res->context = (const uint8_t *)"";
}

/* ---- async ------------------------------------------------------------------------- */

/* A bump allocator for decoding one reply: allocations come from buf while it lasts, then
 * from malloc (chained through a header so a reset frees them). protobuf-c frees nothing
 * through it; arena_reset frees everything at once. */
#define ARENA_BYTES 4096u

typedef union big_hdr {
  union big_hdr *next;
  max_align_t align;
} big_hdr_t;

typedef struct {
  alignas(max_align_t) unsigned char buf[ARENA_BYTES];
  size_t used;
  big_hdr_t *big;
  bool failed; /* an allocation failed: the decode error is out of memory, not malformed */
} arena_t;

static void *arena_alloc(void *data, size_t size) {
  arena_t *a = data;
  size_t align = alignof(max_align_t);
  size_t need = (size + align - 1) & ~(align - 1);
  if (need >= size && need <= ARENA_BYTES - a->used) {
    void *p = a->buf + a->used;
    a->used += need;
    return p;
  }
  if (size > SIZE_MAX - sizeof(big_hdr_t)) {
    a->failed = true;
    return NULL;
  }
  big_hdr_t *h = malloc(sizeof *h + size);
  if (!h) {
    a->failed = true;
    return NULL;
  }
  h->next = a->big;
  a->big = h;
  return h + 1;
}

static void arena_free(void *data, void *p) {
  (void)data;
  (void)p;
}

static void arena_reset(arena_t *a) {
  while (a->big) {
    big_hdr_t *next = a->big->next;
    free(a->big);
    a->big = next;
  }
  a->used = 0;
  a->failed = false;
}

typedef struct slot {
  call_t k;
  kv_client_op_t op;
  void *tag;
  uint64_t t0_ns;
  bool busy;
  struct slot *next_free;
  arena_t arena;
} slot_t;

struct kv_client_async {
  grpc_completion_queue *cq; /* next queue shared by every call of this context */
  slot_t *slots;
  uint32_t n_slots;
  uint32_t inflight;
  slot_t *free_list;
  uint8_t *context;          /* the last completion's context; grows, never shrinks */
  size_t context_cap;
};

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int kv_client_async_create(uint32_t max_inflight, kv_client_async_t **out,
                           kv_client_status_t *st) {
  KV_ASSERT(out != NULL);
  *out = NULL;
  if (max_inflight < 1 || max_inflight > KV_CLIENT_ASYNC_MAX)
    return status_local(st, KV_EINVAL, "max_inflight is out of range");
  kv_client_async_t *a = calloc(1, sizeof *a);
  slot_t *slots = calloc(max_inflight, sizeof *slots);
  if (!a || !slots) {
    free(a);
    free(slots);
    return status_local(st, KV_ENOMEM, "out of memory creating an async context");
  }
  grpc_init();
  a->slots = slots;
  a->n_slots = max_inflight;
  for (uint32_t i = max_inflight; i-- > 0;) {
    slots[i].next_free = a->free_list;
    a->free_list = &slots[i];
  }
  a->cq = grpc_completion_queue_create_for_next(NULL);
  *out = a;
  status_ok(st);
  return KV_OK;
}

uint32_t kv_client_async_inflight(const kv_client_async_t *a) { return a->inflight; }

static int async_start(kv_client_async_t *a, kv_client_t *c, const request_t *rq, void *tag,
                       kv_client_status_t *st) {
  KV_ASSERT(a != NULL && c != NULL);
  slot_t *s = a->free_list;
  if (!s) return status_local(st, KV_EBUSY, "every async call slot is in flight");
  s->op = rq->op;
  s->tag = tag;
  s->t0_ns = now_ns();
  kv_err err = call_start(c, a->cq, rq, &s->k, s, st);
  if (err != KV_OK) return err;
  a->free_list = s->next_free;
  s->next_free = NULL;
  s->busy = true;
  a->inflight++;
  status_ok(st);
  return KV_OK;
}

int kv_client_async_start_put(kv_client_async_t *a, kv_client_t *c, const char *keyspace,
                              const void *key, size_t key_bytes, const void *value,
                              size_t value_bytes, const void *context, size_t context_bytes,
                              const kv_client_opts_t *opts, void *tag, kv_client_status_t *st) {
  request_t rq = {.op = KV_CLIENT_OP_PUT, .keyspace = keyspace, .key = key,
                  .key_bytes = key_bytes, .value = value, .value_bytes = value_bytes,
                  .context = context, .context_bytes = context_bytes, .opts = opts};
  return async_start(a, c, &rq, tag, st);
}

int kv_client_async_start_get(kv_client_async_t *a, kv_client_t *c, const char *keyspace,
                              const void *key, size_t key_bytes, const kv_client_opts_t *opts,
                              void *tag, kv_client_status_t *st) {
  request_t rq = {.op = KV_CLIENT_OP_GET, .keyspace = keyspace, .key = key,
                  .key_bytes = key_bytes, .opts = opts};
  return async_start(a, c, &rq, tag, st);
}

int kv_client_async_start_delete(kv_client_async_t *a, kv_client_t *c, const char *keyspace,
                                 const void *key, size_t key_bytes, const void *context,
                                 size_t context_bytes, const kv_client_opts_t *opts, void *tag,
                                 kv_client_status_t *st) {
  request_t rq = {.op = KV_CLIENT_OP_DELETE, .keyspace = keyspace, .key = key,
                  .key_bytes = key_bytes, .context = context, .context_bytes = context_bytes,
                  .opts = opts};
  return async_start(a, c, &rq, tag, st);
}

/* Copies a reply's context into a's buffer (grown as needed, so a closed loop soon stops
 * allocating) and points out at it. */
static void async_keep_context(kv_client_async_t *a, ProtobufCBinaryData ctx,
                               kv_client_completion_t *out) {
  if (ctx.len == 0) return;
  if (ctx.len > a->context_cap) {
    uint8_t *bigger = realloc(a->context, ctx.len);
    if (!bigger) {
      status_local(&out->status, KV_ENOMEM, "out of memory keeping the reply's context");
      return;
    }
    a->context = bigger;
    a->context_cap = ctx.len;
  }
  memcpy(a->context, ctx.data, ctx.len);
  out->context = a->context;
  out->context_bytes = ctx.len;
}

/* Finishes slot s (its completion has arrived), fills out (when not NULL) and frees s. */
static void async_complete(kv_client_async_t *a, slot_t *s, kv_client_completion_t *out) {
  kv_client_completion_t discard;
  if (!out) out = &discard;
  memset(out, 0, sizeof *out);
  out->tag = s->tag;
  out->op = s->op;
  out->latency_ns = now_ns() - s->t0_ns;
  out->context = (const uint8_t *)"";
  grpc_slice reply;
  if (call_finish(&s->k, &reply, &out->status) == KV_OK) {
    ProtobufCAllocator alloc = {arena_alloc, arena_free, &s->arena};
    ProtobufCMessage *m = reply_unpack(&tunekv__key_response__descriptor, reply, &alloc, &out->status);
    if (!m && s->arena.failed) {
      status_local(&out->status, KV_ENOMEM, "out of memory decoding the reply");
    } else if (m) {
      const Tunekv__KeyResponse *r = (const Tunekv__KeyResponse *)m;
      out->found = r->found;
      out->n_siblings = (uint32_t)r->n_siblings;
      for (size_t i = 0; i < r->n_siblings; i++) out->value_bytes += r->siblings[i]->value.len;
      async_keep_context(a, r->context, out);
    }
    arena_reset(&s->arena);
  }
  grpc_slice_unref(reply);
  s->busy = false;
  s->tag = NULL;
  s->next_free = a->free_list;
  a->free_list = s;
  KV_ASSERT(a->inflight > 0);
  a->inflight--;
}

int kv_client_async_next(kv_client_async_t *a, int timeout_ms, kv_client_completion_t *out) {
  KV_ASSERT(a != NULL && out != NULL);
  if (a->inflight == 0) return 0;
  gpr_timespec deadline =
      timeout_ms < 0 ? gpr_inf_future(GPR_CLOCK_MONOTONIC)
                     : gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                    gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
  grpc_event ev = grpc_completion_queue_next(a->cq, deadline, NULL);
  if (ev.type == GRPC_QUEUE_TIMEOUT) return 0;
  KV_ASSERT(ev.type == GRPC_OP_COMPLETE);
  slot_t *s = ev.tag;
  KV_ASSERT(s >= a->slots && s < a->slots + a->n_slots && s->busy);
  async_complete(a, s, out);
  return 1;
}

void kv_client_async_destroy(kv_client_async_t *a) {
  if (!a) return;
  for (uint32_t i = 0; i < a->n_slots; i++)
    if (a->slots[i].busy) grpc_call_cancel(a->slots[i].k.call, NULL);
  while (a->inflight > 0) {
    grpc_event ev = grpc_completion_queue_next(a->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    KV_ASSERT(ev.type == GRPC_OP_COMPLETE);
    async_complete(a, ev.tag, NULL);
  }
  grpc_completion_queue_shutdown(a->cq);
  grpc_event ev;
  do {
    ev = grpc_completion_queue_next(a->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
  } while (ev.type != GRPC_QUEUE_SHUTDOWN);
  grpc_completion_queue_destroy(a->cq);
  free(a->context);
  free(a->slots);
  free(a);
  grpc_shutdown();
}
