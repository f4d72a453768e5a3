/* server_rpc.c: async gRPC server for tunekv.KV, tunekv.peer.Peer and tunekv.peer.Admin.
 *
 * Threads and queues: each worker thread owns one completion queue and drains only it.
 * Whatever a call asks of the core (coord and node: a client request, a peer batch's
 * messages, the figures of Status, Ring and Applied) runs under the driver's lock
 * (driver.h), one step per call; decoding and packing happen outside it.
 * Every method is registered with GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, so a call
 * arrives together with its request message, and each queue keeps ARMED_PER_METHOD
 * requests armed per method.
 *
 * A call's life (the tag of every operation is its call_t):
 *   ARMED     request_registered_call is pending. On completion: arm a replacement first
 *             (unless stopping), decode, and hand the request on: client calls to the
 *             coordinator (kv_coord_on_client), which answers through kv_server_reply
 *             (now, or later from the peer thread when the replicas have answered); peer
 *             batches, each message viewed by peer_codec.c and run by the core's replica
 *             side (kv_coord_on_peer_request), answered at once or, when they carry durable
 *             writes, after the syncer's fsync and the relays of the writes it forwards to
 *             this node's region, whichever come last; admin calls (status, faults,
 *             conflicts, applied, ring) at once (fault calls are refused unless the node was
 *             started with fault injection allowed).
 *             Before any of this, the caller is checked (auth.h): a refused call is answered
 *             with the refusal and reaches neither the coordinator nor the replica.
 *   REPLYING  the reply batch (SEND_INITIAL_METADATA, SEND_MESSAGE when ok, SEND_STATUS,
 *             RECV_CLOSE) is pending. On completion: free everything.
 * An ARMED completion with success == 0 means the server is shutting down: free it.
 * Everything an operation writes into lives in call_t until its completion arrives.
 *
 * Shutdown: stop re-arming, shutdown_and_notify, wait for the notification (cancelling all
 * calls after the grace period), destroy the server, shut the queues down and let each
 * worker drain its queue to GRPC_QUEUE_SHUTDOWN, join, destroy the queues. */
#include "server_rpc.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kv.pb-c.h"
#include "kv_limits.h"
#include "log.h"
#include "peer.pb-c.h"
#include "peer_codec.h"

#define ARMED_PER_METHOD 64

typedef enum {
  METHOD_PUT,
  METHOD_GET,
  METHOD_DELETE,
  METHOD_PEER_BATCH,
  METHOD_STATUS,
  METHOD_FAULT,
  METHOD_CONFLICTS,
  METHOD_APPLIED,
  METHOD_RING,
  METHOD_COUNT
} method_t;

static const char *const method_paths[METHOD_COUNT] = {
    "/tunekv.KV/Put", "/tunekv.KV/Get", "/tunekv.KV/Delete", "/tunekv.peer.Peer/Batch",
    "/tunekv.peer.Admin/Status", "/tunekv.peer.Admin/Fault", "/tunekv.peer.Admin/Conflicts",
    "/tunekv.peer.Admin/Applied", "/tunekv.peer.Admin/Ring"};

typedef enum { CALL_ARMED, CALL_REPLYING } call_state_t;

typedef struct worker worker_t;

typedef struct call call_t;
typedef struct batch batch_t;

struct call {
  call_state_t state;
  method_t method;
  worker_t *worker;
  grpc_call *call;
  gpr_timespec deadline;
  grpc_metadata_array md;
  grpc_byte_buffer *payload;  /* the request, received with the call */
  grpc_byte_buffer *reply;    /* NULL when the status is not OK */
  grpc_slice details;         /* status message; empty slice when OK */
  int cancelled;
  kv_sync_waiter_t waiter;    /* a peer batch with durable writes waits on the syncer */
  batch_t *batch;             /* a peer batch's answers, while it waits */
  uint64_t start_us;          /* client calls, for metrics: arrival, operation, level */
  kv_op_t op;
  kv_level_t level;
};

struct worker {
  kv_server_t *srv;
  grpc_completion_queue *cq;
  pthread_t thread;
};

struct kv_server {
  grpc_server *server;
  kv_server_deps_t deps;
  bool allow_faults;
  size_t max_message_bytes;
  void *methods[METHOD_COUNT];
  worker_t workers[KV_SERVER_THREADS_MAX];
  uint32_t worker_count;
  atomic_bool stopping;
  pthread_mutex_t lock;
  pthread_cond_t shutdown_cond;
  bool shutdown_done;         /* the shutdown_and_notify tag came back */
  char shutdown_tag;          /* its address is the tag */
};

static void call_free(call_t *c) {
  if (c->payload) grpc_byte_buffer_destroy(c->payload);
  if (c->reply) grpc_byte_buffer_destroy(c->reply);
  grpc_slice_unref(c->details);
  grpc_metadata_array_destroy(&c->md);
  if (c->call) grpc_call_unref(c->call);
  free(c);
}

static void call_arm(worker_t *w, method_t method) {
  call_t *c = calloc(1, sizeof *c);
  KV_ASSERT(c != NULL);
  c->state = CALL_ARMED;
  c->method = method;
  c->worker = w;
  c->details = grpc_empty_slice();
  grpc_metadata_array_init(&c->md);
  grpc_call_error err = grpc_server_request_registered_call(
      w->srv->server, w->srv->methods[method], &c->call, &c->deadline, &c->md, &c->payload,
      w->cq, w->cq, c);
  if (err != GRPC_CALL_OK) {
    KV_ERROR("cannot arm a %s call: grpc error %d", method_paths[method], (int)err);
    call_free(c);
  }
}

/* ---- Messages: protobuf-c <-> byte buffers ---------------------------------------- */

/* Unpacks the call's payload, handing back its bytes too (*raw, for the caller to unref);
 * NULL with a status when it is absent or malformed. */
static ProtobufCMessage *payload_unpack_kept(call_t *c, const ProtobufCMessageDescriptor *desc,
                                             grpc_slice *raw, kv_status_t *st) {
  *raw = grpc_empty_slice();
  if (!c->payload) {
    kv_status_set(st, KV_EINVAL, "request carried no %s message", desc->name);
    return NULL;
  }
  grpc_byte_buffer_reader reader;
  if (!grpc_byte_buffer_reader_init(&reader, c->payload)) {
    kv_status_set(st, KV_EINVAL, "request payload could not be read");
    return NULL;
  }
  *raw = grpc_byte_buffer_reader_readall(&reader);
  grpc_byte_buffer_reader_destroy(&reader);
  ProtobufCMessage *msg = protobuf_c_message_unpack(desc, NULL, GRPC_SLICE_LENGTH(*raw),
                                                    GRPC_SLICE_START_PTR(*raw));
  if (!msg) kv_status_set(st, KV_EINVAL, "request is not a valid %s message", desc->name);
  return msg;
}

/* Unpacks the call's payload; NULL with a status when it is absent or malformed. */
static ProtobufCMessage *payload_unpack(call_t *c, const ProtobufCMessageDescriptor *desc,
                                        kv_status_t *st) {
  grpc_slice raw;
  ProtobufCMessage *msg = payload_unpack_kept(c, desc, &raw, st);
  grpc_slice_unref(raw);
  return msg;
}

static grpc_byte_buffer *message_pack(const ProtobufCMessage *msg) {
  size_t n = protobuf_c_message_get_packed_size(msg);
  grpc_slice slice = grpc_slice_malloc(n);
  protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(slice));
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
  grpc_slice_unref(slice);
  return bb;
}

/* Copies the consistency fields every request carries; absent means all defaults. */
static void req_consistency(kv_node_req_t *req, const Tunekv__Consistency *c, bool is_write) {
  req->level = "";
  if (!c) return;
  req->level = c->level;
  req->count = is_write ? c->w : c->r;
  req->primaries = is_write ? c->pw : c->pr;
  req->durable = c->durable;
  req->timeout_ms = c->timeout_ms;
}

/* The node's wall clock: the system's, shifted by --clock-offset-ms (fault injection, for
 * clock sanity tests). Set once at start. */
static int64_t clock_offset_ms;

static uint64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)((int64_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u) +
                    clock_offset_ms);
}

/* ---- Methods ------------------------------------------------------------------------ */

/* The reply borrows the sibling values and context from res; nothing is copied. */
static grpc_byte_buffer *key_reply(const kv_node_result_t *res) {
  Tunekv__Sibling sibs[KV_SIBLINGS_MAX];
  Tunekv__Sibling *ptrs[KV_SIBLINGS_MAX];
  uint32_t n = res->object.sib_count;
  for (uint32_t i = 0; i < n; i++) {
    tunekv__sibling__init(&sibs[i]);
    sibs[i].value.data = res->object.sib[i].value;
    sibs[i].value.len = res->object.sib[i].value_bytes;
    sibs[i].hlc = res->object.sib[i].hlc;
    ptrs[i] = &sibs[i];
  }
  Tunekv__KeyResponse r = TUNEKV__KEY_RESPONSE__INIT;
  r.found = res->found;
  r.n_siblings = n;
  r.siblings = ptrs;
  r.context.data = res->context;
  r.context.len = res->context_bytes;
  return message_pack(&r.base);
}

static uint64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- Replies ------------------------------------------------------------------------ */

static void call_reply_code(call_t *c, grpc_status_code code, const char *message) {
  grpc_op ops[4];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
  if (c->reply) {
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = c->reply;
  }
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.status = code;
  if (code != GRPC_STATUS_OK) {
    c->details = grpc_slice_from_copied_string(message);
    ops[n].data.send_status_from_server.status_details = &c->details;
  }
  n++;
  ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
  c->state = CALL_REPLYING;
  grpc_call_error err = grpc_call_start_batch(c->call, ops, n, c, NULL);
  if (err != GRPC_CALL_OK) {
    /* No completion will come for this tag, so the call ends here. */
    KV_ERROR("cannot reply on %s: grpc error %d", method_paths[c->method], (int)err);
    call_free(c);
  }
}

static void call_reply(call_t *c, const kv_status_t *st) {
  call_reply_code(c, (grpc_status_code)kv_err_grpc_code(st->code), st->msg);
}

/* Counts a client call's reply in the metrics (n_siblings: a get's answer). */
static void call_metrics(const call_t *c, bool ok, const kv_node_result_t *res) {
  kv_metrics_t *m = c->worker->srv->deps.metrics;
  kv_metrics_request(m, (uint32_t)c->op, c->level, ok, mono_us() - c->start_us);
  if (ok && res && c->op == KV_OP_GET) kv_metrics_siblings(m, res->object.sib_count);
}

void kv_server_relay(void *call, int grpc_code, const char *message, const uint8_t *reply,
                     size_t reply_bytes) {
  call_t *c = call;
  call_metrics(c, grpc_code == GRPC_STATUS_OK, NULL);
  c->reply = NULL;
  if (grpc_code == GRPC_STATUS_OK) {
    grpc_slice slice = grpc_slice_from_copied_buffer((const char *)reply, reply_bytes);
    c->reply = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
  }
  call_reply_code(c, (grpc_status_code)grpc_code, message);
}

void kv_server_reply(void *call, const kv_status_t *st, const kv_node_result_t *res) {
  call_t *c = call;
  KV_ASSERT((st->code == KV_OK) == (res != NULL));
  call_metrics(c, st->code == KV_OK, res);
  c->reply = res ? key_reply(res) : NULL;
  call_reply(c, st);
}

/* ---- Who is calling ---------------------------------------------------------------- */

/* The caller of c as auth.h wants it: the names of its verified client certificate (its
 * subjectAltNames, else its common name) and its authorization header. The names point into
 * *ctx, which the caller releases with grpc_auth_context_release (when not NULL) after the
 * check; the header points into c's metadata. */
static void call_caller(call_t *c, kv_auth_caller_t *who, grpc_auth_context **ctx) {
  memset(who, 0, sizeof *who);
  *ctx = grpc_call_auth_context(c->call);
  if (*ctx && grpc_auth_context_peer_is_authenticated(*ctx)) {
    who->has_cert = true;
    static const char *const names[] = {GRPC_X509_SAN_PROPERTY_NAME, GRPC_X509_CN_PROPERTY_NAME};
    for (int n = 0; n < 2 && who->cert_name_count == 0; n++) {
      grpc_auth_property_iterator it = grpc_auth_context_find_properties_by_name(*ctx, names[n]);
      const grpc_auth_property *p;
      while ((p = grpc_auth_property_iterator_next(&it)) &&
             who->cert_name_count < KV_AUTH_CERT_NAMES_MAX)
        who->cert_names[who->cert_name_count++] = p->value;
    }
  }
  for (size_t i = 0; i < c->md.count; i++) {
    if (grpc_slice_str_cmp(c->md.metadata[i].key, "authorization") != 0) continue;
    who->authorization = (const char *)GRPC_SLICE_START_PTR(c->md.metadata[i].value);
    who->authorization_bytes = GRPC_SLICE_LENGTH(c->md.metadata[i].value);
  }
}

/* The three checks of auth.h on c's caller: KV_OK, or the refusal in st. */
typedef enum { CHECK_PEER, CHECK_ADMIN, CHECK_DATA } check_kind_t;

static kv_err call_check(kv_server_t *srv, call_t *c, check_kind_t kind, kv_auth_role_t role,
                         const char *name, kv_status_t *st) {
  kv_auth_caller_t who;
  grpc_auth_context *ctx;
  call_caller(c, &who, &ctx);
  kv_err err = kind == CHECK_PEER    ? kv_auth_check_peer(srv->deps.auth, &who, name, st)
               : kind == CHECK_ADMIN ? kv_auth_check_admin(srv->deps.auth, &who, st)
                                     : kv_auth_check_data(srv->deps.auth, &who, role, name, st);
  if (ctx) grpc_auth_context_release(ctx);
  return err;
}

/* ---- Client calls ------------------------------------------------------------------- */

/* Decodes a client call into a request and hands it to the coordinator, which answers
 * through kv_server_reply. The request points into m, which lives until the coordinator
 * returns: it copies what it keeps. */
static void handle_client(kv_server_t *srv, call_t *c) {
  static const ProtobufCMessageDescriptor *const descs[] = {
      [METHOD_PUT] = &tunekv__put_request__descriptor,
      [METHOD_GET] = &tunekv__get_request__descriptor,
      [METHOD_DELETE] = &tunekv__delete_request__descriptor};
  kv_status_t st;
  kv_status_clear(&st);
  c->start_us = mono_us();
  grpc_slice raw;
  ProtobufCMessage *m = payload_unpack_kept(c, descs[c->method], &raw, &st);
  if (!m) {
    grpc_slice_unref(raw);
    call_reply(c, &st);
    return;
  }
  kv_node_req_t req = {.level = ""};
  kv_op_t op;
  if (c->method == METHOD_PUT) {
    Tunekv__PutRequest *r = (Tunekv__PutRequest *)m;
    req = (kv_node_req_t){.keyspace = r->keyspace, .key = r->key.data,
                          .key_bytes = r->key.len, .value = r->value.data,
                          .value_bytes = r->value.len, .context = r->context.data,
                          .context_bytes = r->context.len, .handler = r->handler};
    req_consistency(&req, r->consistency, true);
    op = KV_OP_PUT;
  } else if (c->method == METHOD_DELETE) {
    Tunekv__DeleteRequest *r = (Tunekv__DeleteRequest *)m;
    req = (kv_node_req_t){.keyspace = r->keyspace, .key = r->key.data,
                          .key_bytes = r->key.len, .context = r->context.data,
                          .context_bytes = r->context.len, .handler = r->handler};
    req_consistency(&req, r->consistency, true);
    op = KV_OP_DELETE;
  } else {
    Tunekv__GetRequest *r = (Tunekv__GetRequest *)m;
    req = (kv_node_req_t){.keyspace = r->keyspace, .key = r->key.data,
                          .key_bytes = r->key.len, .local = r->local,
                          .read_repair = r->read_repair, .handler = r->handler};
    req_consistency(&req, r->consistency, false);
    op = KV_OP_GET;
  }
  if (call_check(srv, c, CHECK_DATA, op == KV_OP_GET ? KV_AUTH_READ : KV_AUTH_WRITE,
                 req.keyspace ? req.keyspace : "", &st) != KV_OK) {
    protobuf_c_message_free_unpacked(m, NULL);
    grpc_slice_unref(raw);
    call_reply(c, &st);
    return;
  }
  req.raw = GRPC_SLICE_START_PTR(raw);
  req.raw_bytes = GRPC_SLICE_LENGTH(raw);
  c->op = op;
  if (!kv_level_parse(req.level ? req.level : "", &c->level)) c->level = KV_LEVEL_COUNT;
  kv_driver_lock(srv->deps.driver);
  kv_coord_on_client(srv->deps.coord, c, op, &req, mono_us(), wall_ms());
  kv_driver_unlock(srv->deps.driver);
  protobuf_c_message_free_unpacked(m, NULL);
  grpc_slice_unref(raw);
}

/* ---- Peer batches ------------------------------------------------------------------- */

/* A peer batch being answered: its answers wait for the fsync of its durable writes and for
 * the relays of the writes it forwards (coordinator/coord.h), and leave together once `waiting`
 * (those, and a hold of the handler's own while it runs the messages) is back to 0. */
typedef struct {
  batch_t *batch;
  Tunekv__Peer__PeerAnswer *answer;     /* the forwarded write's */
} relay_ctx_t;

struct batch {
  call_t *call;
  pthread_mutex_t lock;
  uint32_t waiting;
  kv_status_t failed;                   /* the fsync failed: so does the whole batch */
  size_t n;
  Tunekv__Peer__PeerAnswer *answers;
  Tunekv__Peer__PeerAnswer **ptrs;
  relay_ctx_t *relays;                  /* one per message */
};

/* Frees what peer_message_run and the relay put in an answer. */
static void answer_free(Tunekv__Peer__PeerAnswer *a) {
  free(a->record.data);
  if (a->message != protobuf_c_empty_string) free(a->message);
  for (size_t i = 0; i < a->n_keys; i++) free(a->keys[i].data);
  free(a->keys);
  free(a->hashes);
  for (size_t k = 0; k < a->n_relayed; k++)
    if (a->relayed[k]->message != protobuf_c_empty_string) free(a->relayed[k]->message);
  if (a->n_relayed) free(a->relayed[0]); /* the outcomes, one array */
  free(a->relayed);
}

/* Sends the batch's answers (or the fsync's failure) and frees it. */
static void batch_answer(batch_t *b) {
  call_t *c = b->call;
  if (b->failed.code == KV_OK) {
    Tunekv__Peer__PeerBatchReply r = TUNEKV__PEER__PEER_BATCH_REPLY__INIT;
    r.n_answers = b->n;
    r.answers = b->ptrs;
    r.wall_ms = wall_ms();
    c->reply = message_pack(&r.base);
  }
  kv_status_t st = b->failed;
  for (size_t i = 0; i < b->n; i++) answer_free(&b->answers[i]);
  free(b->answers);
  free(b->ptrs);
  free(b->relays);
  pthread_mutex_destroy(&b->lock);
  free(b);
  c->batch = NULL;
  call_reply(c, &st);
}

/* One of what the batch waits for came (failed: the fsync's failure, or NULL). */
static void batch_release(batch_t *b, const kv_status_t *failed) {
  pthread_mutex_lock(&b->lock);
  if (failed && failed->code != KV_OK) b->failed = *failed;
  bool last = --b->waiting == 0;
  pthread_mutex_unlock(&b->lock);
  if (last) batch_answer(b);
}

static void peer_batch_synced(kv_sync_waiter_t *w, const kv_status_t *st, uint64_t mono_us) {
  call_t *c = (call_t *)((char *)w - offsetof(call_t, waiter));
  batch_release(c->batch, st);
}

/* The relay of a forwarded write is over (the driver's lock is held): its answer gets one
 * outcome per replica, with a sentence naming the node when it did not acknowledge. */
static void relay_done(void *arg, const kv_relay_outcome_t *outcomes, uint32_t count) {
  relay_ctx_t *ctx = arg;
  const kv_config_t *cfg = ctx->batch->call->worker->srv->deps.cfg;
  Tunekv__Peer__PeerAnswer *a = ctx->answer;
  Tunekv__Peer__PeerAnswer *outs = calloc(count ? count : 1, sizeof *outs);
  a->relayed = calloc(count ? count : 1, sizeof *a->relayed);
  KV_ASSERT(outs && a->relayed);
  a->n_relayed = count;
  for (uint32_t k = 0; k < count; k++) {
    const kv_relay_outcome_t *o = &outcomes[k];
    tunekv__peer__peer_answer__init(&outs[k]);
    outs[k].id = o->id;
    outs[k].code = (uint32_t)kv_err_grpc_code(o->code);
    if (o->code == KV_OK) {
      outs[k].applied_ms = o->applied_ms;
    } else {
      char msg[KV_STATUS_MSG_BYTES];
      snprintf(msg, sizeof msg, "node %s did not acknowledge the relayed write: %s",
               cfg->nodes[o->node].id, kv_err_name(o->code));
      outs[k].message = strdup(msg);
      KV_ASSERT(outs[k].message);
    }
    a->relayed[k] = &outs[k];
  }
  batch_release(ctx->batch, NULL);
}

/* Moves a tree answer (kv_aae_serve's, owned) into a PeerAnswer; answer_free releases it. */
static void tree_move(kv_aae_answer_t *t, Tunekv__Peer__PeerAnswer *a) {
  a->n_hashes = t->hash_count;
  a->hashes = t->hashes;
  a->n_keys = t->key_count;
  a->keys = calloc(t->key_count ? t->key_count : 1, sizeof *a->keys);
  KV_ASSERT(a->keys);
  for (uint32_t i = 0; i < t->key_count; i++)
    a->keys[i] = (ProtobufCBinaryData){t->keys[i].len, t->keys[i].data};
  free(t->keys);
  memset(t, 0, sizeof *t);
}

/* Runs one peer message through the core's replica side (kv_coord_on_peer_request) into its
 * answer a, the driver's lock held; true when the answer waits for the next fsync. A
 * forwarder's write holds the batch until its relay is done (relay_done). */
static bool peer_message_run(kv_server_t *srv, batch_t *b, relay_ctx_t *ctx,
                             const Tunekv__Peer__PeerMessage *pm, Tunekv__Peer__PeerAnswer *a) {
  kv_msg_t m;
  kv_relay_target_t relay[KV_REPLICAS_MAX];
  kv_peer_result_t r;
  a->id = pm->id;
  if (kv_peer_msg_view(srv->deps.cfg, pm, &m, relay, &r.st) != KV_OK) {
    a->code = (uint32_t)kv_err_grpc_code(r.st.code);
    a->message = strdup(r.st.msg);
    return false;
  }
  if (m.kind == KV_MSG_WRITE && m.relay_count > 0) {
    *ctx = (relay_ctx_t){.batch = b, .answer = a};
    pthread_mutex_lock(&b->lock);
    b->waiting++;
    pthread_mutex_unlock(&b->lock);
  }
  kv_coord_on_peer_request(srv->deps.coord, &m, mono_us(), wall_ms(), relay_done, ctx, &r);
  if (m.kind == KV_MSG_WRITE && m.relay_count > 0 && !r.relaying) {
    pthread_mutex_lock(&b->lock);
    b->waiting--; /* refused whole: no relay to wait for */
    pthread_mutex_unlock(&b->lock);
  }
  if (m.kind == KV_MSG_WRITE) a->applied_ms = r.applied_ms;
  if (r.code == KV_OK) {
    a->record = (ProtobufCBinaryData){r.rec_bytes, r.rec};
    r.rec = NULL;
    if (m.kind == KV_MSG_TREE) tree_move(&r.tree, a);
  } else {
    a->message = strdup(r.st.msg);
  }
  a->code = (uint32_t)kv_err_grpc_code(r.code);
  bool after_sync = r.after_sync;
  kv_peer_result_deinit(&r);
  return after_sync;
}

static void handle_peer_batch(kv_server_t *srv, call_t *c) {
  kv_status_t st;
  kv_status_clear(&st);
  Tunekv__Peer__PeerBatch *m =
      (Tunekv__Peer__PeerBatch *)payload_unpack(c, &tunekv__peer__peer_batch__descriptor, &st);
  if (!m) {
    call_reply(c, &st);
    return;
  }
  if (call_check(srv, c, CHECK_PEER, KV_AUTH_ADMIN, m->from ? m->from : "", &st) != KV_OK) {
    tunekv__peer__peer_batch__free_unpacked(m, NULL);
    call_reply(c, &st);
    return;
  }
  size_t n = m->n_messages;
  batch_t *b = calloc(1, sizeof *b);
  KV_ASSERT(b);
  b->call = c;
  pthread_mutex_init(&b->lock, NULL);
  b->waiting = 1; /* this handler's hold, released below */
  b->n = n;
  b->answers = calloc(n ? n : 1, sizeof *b->answers);
  b->ptrs = calloc(n ? n : 1, sizeof *b->ptrs);
  b->relays = calloc(n ? n : 1, sizeof *b->relays);
  KV_ASSERT(b->answers && b->ptrs && b->relays);
  c->batch = b;
  bool durable = false;
  kv_driver_lock(srv->deps.driver);
  for (size_t i = 0; i < n; i++) {
    tunekv__peer__peer_answer__init(&b->answers[i]);
    durable |= peer_message_run(srv, b, &b->relays[i], m->messages[i], &b->answers[i]);
    b->ptrs[i] = &b->answers[i];
  }
  if (durable) {
    pthread_mutex_lock(&b->lock);
    b->waiting++;
    pthread_mutex_unlock(&b->lock);
    kv_syncer_push(&srv->deps.driver->sync, &c->waiter, peer_batch_synced);
  }
  kv_driver_unlock(srv->deps.driver);
  tunekv__peer__peer_batch__free_unpacked(m, NULL);
  batch_release(b, NULL);
}

/* ---- Status ------------------------------------------------------------------------- */

/* This process's resident memory and thread count, from /proc (0 when unreadable). */
static void process_usage(uint64_t *rss_bytes, uint32_t *threads) {
  *rss_bytes = 0;
  *threads = 0;
  unsigned long long pages_total, pages_resident;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f && fscanf(f, "%llu %llu", &pages_total, &pages_resident) == 2)
    *rss_bytes = pages_resident * (uint64_t)sysconf(_SC_PAGESIZE);
  if (f) fclose(f);
  char line[256];
  f = fopen("/proc/self/status", "r");
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "Threads: %u", threads) == 1) break;
  if (f) fclose(f);
}

static void handle_status(kv_server_t *srv, call_t *c) {
  const kv_config_t *cfg = srv->deps.cfg;
  uint32_t self = kv_node_self(srv->deps.node);
  Tunekv__Peer__PeerStatus peers[KV_NODES_MAX];
  Tunekv__Peer__PeerStatus *ptrs[KV_NODES_MAX];
  size_t n = 0;
  kv_driver_lock(srv->deps.driver);
  for (uint32_t i = 0; i < cfg->node_count; i++) {
    if (i == self) continue;
    kv_peer_liveness_t lv;
    kv_coord_liveness(srv->deps.coord, i, mono_us(), &lv);
    kv_peer_clock_t clock = kv_peers_clock(srv->deps.peers, i);
    tunekv__peer__peer_status__init(&peers[n]);
    peers[n].id = (char *)cfg->nodes[i].id;
    peers[n].address = (char *)cfg->nodes[i].address;
    peers[n].up = lv.up;
    peers[n].last_heard_ms_ago = lv.last_heard_ms_ago;
    peers[n].phi = lv.phi;
    kv_hint_stats_t hs;
    kv_coord_hint_stats(srv->deps.coord, i, &hs);
    peers[n].hints_pending = hs.pending;
    peers[n].hint_bytes = hs.bytes;
    peers[n].hints_delivered = hs.delivered;
    peers[n].hints_dropped = hs.dropped;
    kv_aae_stats_t as;
    kv_coord_aae_stats(srv->deps.coord, i, &as);
    peers[n].aae_exchanges = as.exchanges;
    peers[n].aae_failed = as.failed;
    peers[n].aae_keys_repaired = as.keys_repaired;
    peers[n].aae_last_ms_ago = as.last_us ? (int64_t)(mono_us() - as.last_us) / 1000 : -1;
    peers[n].aae_last_repaired = as.last_repaired;
    peers[n].clock_known = clock.known;
    peers[n].clock_offset_ms = clock.offset_ms;
    peers[n].clock_skewed = clock.skewed;
    ptrs[n] = &peers[n];
    n++;
  }
  /* 31 KiB: not on a worker's stack; status calls are rare, and the driver's lock covers it */
  static kv_histogram_t lag;
  kv_coord_lag(srv->deps.coord, &lag);
  Tunekv__Peer__Lag l = TUNEKV__PEER__LAG__INIT;
  l.writes = lag.total;
  l.p50_ms = (double)kv_histogram_percentile(&lag, 50) / 1000.0;
  l.p99_ms = (double)kv_histogram_percentile(&lag, 99) / 1000.0;
  l.max_ms = (double)lag.max / 1000.0;
  Tunekv__Peer__StatusReply r = TUNEKV__PEER__STATUS_REPLY__INIT;
  r.node = (char *)cfg->nodes[self].id;
  r.cluster = (char *)cfg->cluster_name;
  r.incarnation = kv_node_incarnation(srv->deps.node);
  r.n_peers = n;
  r.peers = ptrs;
  r.lag = &l;
  r.aae_interval_ms = cfg->anti_entropy_interval_ms;
  kv_reap_stats_t rs;
  kv_coord_reap_stats(srv->deps.coord, &rs);
  kv_driver_unlock(srv->deps.driver);
  Tunekv__Peer__Reaping reaping = TUNEKV__PEER__REAPING__INIT;
  reaping.grace_ms = cfg->tombstone_grace_ms;
  reaping.waiting = rs.waiting;
  reaping.reaped = rs.reaped;
  reaping.kept = rs.kept;
  reaping.dropped = rs.dropped;
  r.reaping = &reaping;
  r.max_clock_skew_ms = cfg->max_clock_skew_ms;
  process_usage(&r.rss_bytes, &r.threads);
  c->reply = message_pack(&r.base);
  kv_status_t st;
  kv_status_clear(&st);
  call_reply(c, &st);
}

/* ---- Faults ------------------------------------------------------------------------- */

/* Does what a FaultRequest asks (a LIST asks nothing). */
static kv_err fault_apply(kv_server_t *srv, const Tunekv__Peer__FaultRequest *m,
                          kv_status_t *st) {
  const kv_config_t *cfg = srv->deps.cfg;
  const kv_fault_t none = {0, 0, 0, 0, false};
  const char *const *named = (const char *const *)m->peers;
  switch (m->action) {
    case TUNEKV__PEER__FAULT_REQUEST__ACTION__LIST:
      return KV_OK;
    case TUNEKV__PEER__FAULT_REQUEST__ACTION__SET: {
      kv_fault_t f = {.delay_ms = m->delay_ms, .jitter_ms = m->jitter_ms, .drop = m->drop,
                      .exp_delay_ms = m->exp_delay_ms, .both_ways = m->both_ways};
      return kv_peers_fault_set(srv->deps.peers, named, m->n_peers, &f, st);
    }
    case TUNEKV__PEER__FAULT_REQUEST__ACTION__CLEAR: {
      if (m->n_peers > 0) return kv_peers_fault_set(srv->deps.peers, named, m->n_peers, &none, st);
      const char *every[KV_NODES_MAX];
      size_t n = 0;
      uint32_t self = kv_node_self(srv->deps.node);
      for (uint32_t i = 0; i < cfg->node_count; i++)
        if (i != self) every[n++] = cfg->nodes[i].id;
      return n == 0 ? KV_OK : kv_peers_fault_set(srv->deps.peers, every, n, &none, st);
    }
    default:
      return kv_status_set(st, KV_EINVAL, "fault action %d is unknown; use LIST, SET or CLEAR",
                           (int)m->action);
  }
}

/* Answers with every fault in force. The peer ids are borrowed from the config. */
static grpc_byte_buffer *fault_reply(kv_server_t *srv) {
  const kv_config_t *cfg = srv->deps.cfg;
  Tunekv__Peer__Fault faults[KV_NODES_MAX];
  Tunekv__Peer__Fault *ptrs[KV_NODES_MAX];
  size_t n = 0;
  for (uint32_t i = 0; i < cfg->node_count; i++) {
    kv_fault_t f;
    if (!kv_peers_fault(srv->deps.peers, i, &f)) continue;
    tunekv__peer__fault__init(&faults[n]);
    faults[n].peer = (char *)cfg->nodes[i].id;
    faults[n].delay_ms = f.delay_ms;
    faults[n].jitter_ms = f.jitter_ms;
    faults[n].drop = f.drop;
    faults[n].exp_delay_ms = f.exp_delay_ms;
    faults[n].both_ways = f.both_ways;
    ptrs[n] = &faults[n];
    n++;
  }
  Tunekv__Peer__FaultReply r = TUNEKV__PEER__FAULT_REPLY__INIT;
  r.n_faults = n;
  r.faults = ptrs;
  return message_pack(&r.base);
}

static void handle_fault(kv_server_t *srv, call_t *c) {
  kv_status_t st;
  kv_status_clear(&st);
  if (!srv->allow_faults) {
    kv_status_set(&st, KV_EPERM, "fault injection is off; start kvnode with "
                  "--allow-fault-injection");
    call_reply(c, &st);
    return;
  }
  Tunekv__Peer__FaultRequest *m = (Tunekv__Peer__FaultRequest *)payload_unpack(
      c, &tunekv__peer__fault_request__descriptor, &st);
  if (m && fault_apply(srv, m, &st) == KV_OK) c->reply = fault_reply(srv);
  if (m) tunekv__peer__fault_request__free_unpacked(m, NULL);
  call_reply(c, &st);
}

/* ---- Applied ------------------------------------------------------------------------ */

/* When each replica applied a write this node coordinated (kv_coord_applied). */
static void handle_applied(kv_server_t *srv, call_t *c) {
  kv_status_t st;
  kv_status_clear(&st);
  Tunekv__Peer__AppliedRequest *m = (Tunekv__Peer__AppliedRequest *)payload_unpack(
      c, &tunekv__peer__applied_request__descriptor, &st);
  kv_applied_write_t w;
  kv_err err = KV_EINVAL;
  if (m) {
    kv_driver_lock(srv->deps.driver);
    err = kv_coord_applied(srv->deps.coord, m->keyspace, m->key.data, m->key.len, &w, &st);
    kv_driver_unlock(srv->deps.driver);
  }
  if (err == KV_OK) {
    Tunekv__Peer__ReplicaApplied ra[KV_REPLICAS_MAX], *rp[KV_REPLICAS_MAX];
    for (uint32_t i = 0; i < w.count; i++) {
      tunekv__peer__replica_applied__init(&ra[i]);
      ra[i].node = (char *)srv->deps.cfg->nodes[w.replicas[i].node].id;
      ra[i].applied_ms = w.replicas[i].applied_ms;
      rp[i] = &ra[i];
    }
    Tunekv__Peer__AppliedReply r = TUNEKV__PEER__APPLIED_REPLY__INIT;
    r.acked_ms = w.acked_ms;
    r.n_replicas = w.count;
    r.replicas = rp;
    c->reply = message_pack(&r.base);
  }
  if (m) tunekv__peer__applied_request__free_unpacked(m, NULL);
  call_reply(c, &st);
}

/* ---- Ring --------------------------------------------------------------------------- */

/* A RingReply being built. The strings are borrowed from the config; the arrays (rows of every
 * keyspace, each row's node indexes and stand-ins) are allocated once and freed together by
 * ring_msg_free. */
typedef struct {
  Tunekv__Peer__RingReply reply;
  Tunekv__Peer__RingNode nodes[KV_NODES_MAX], *node_ptrs[KV_NODES_MAX];
  Tunekv__Peer__RingKeyspace *ks, **ks_ptrs;
  Tunekv__Peer__RingReplication *rep, **rep_ptrs;  /* KV_REGIONS_MAX per keyspace */
  Tunekv__Peer__RingPartition *rows, **row_ptrs;
  uint32_t *indexes;          /* node_count per row: its primaries, then its fallbacks */
  int32_t *stand_ins;         /* KV_REPLICAS_MAX per row */
} ring_msg_t;

static void ring_msg_free(ring_msg_t *r) {
  free(r->ks);
  free(r->ks_ptrs);
  free(r->rep);
  free(r->rep_ptrs);
  free(r->rows);
  free(r->row_ptrs);
  free(r->indexes);
  free(r->stand_ins);
}

static kv_err ring_msg_alloc(ring_msg_t *r, size_t keyspaces, size_t rows, uint32_t nodes,
                             kv_status_t *st) {
  r->ks = calloc(keyspaces, sizeof *r->ks);
  r->ks_ptrs = calloc(keyspaces, sizeof *r->ks_ptrs);
  r->rep = calloc(keyspaces * KV_REGIONS_MAX, sizeof *r->rep);
  r->rep_ptrs = calloc(keyspaces * KV_REGIONS_MAX, sizeof *r->rep_ptrs);
  r->rows = calloc(rows, sizeof *r->rows);
  r->row_ptrs = calloc(rows, sizeof *r->row_ptrs);
  r->indexes = calloc(rows * nodes, sizeof *r->indexes);
  r->stand_ins = calloc(rows * KV_REPLICAS_MAX, sizeof *r->stand_ins);
  if (r->ks && r->ks_ptrs && r->rep && r->rep_ptrs && r->rows && r->row_ptrs && r->indexes &&
      r->stand_ins)
    return KV_OK;
  return kv_status_set(st, KV_ENOMEM, "out of memory describing the ring");
}

/* Every node with its place and, as this node believes, whether it is up. */
static void ring_nodes(kv_server_t *srv, ring_msg_t *r) {
  const kv_config_t *cfg = srv->deps.cfg;
  kv_driver_lock(srv->deps.driver);
  for (uint32_t i = 0; i < cfg->node_count; i++) {
    Tunekv__Peer__RingNode *n = &r->nodes[i];
    tunekv__peer__ring_node__init(n);
    n->id = (char *)cfg->nodes[i].id;
    n->address = (char *)cfg->nodes[i].address;
    n->region = (char *)cfg->nodes[i].region;
    n->rack = (char *)cfg->nodes[i].rack;
    kv_peer_liveness_t lv;
    kv_coord_liveness(srv->deps.coord, i, mono_us(), &lv);
    n->up = lv.up;
    r->node_ptrs[i] = n;
  }
  kv_driver_unlock(srv->deps.driver);
  r->reply.n_nodes = cfg->node_count;
  r->reply.nodes = r->node_ptrs;
}

/* Row `row` of r: partition p of ks, placed as the coordinator would place a request now. */
static void ring_row(kv_server_t *srv, ring_msg_t *r, size_t row, const kv_keyspace_conf_t *ks,
                     uint32_t p) {
  kv_preflist_t pl;
  int stand_in[KV_REPLICAS_MAX];
  kv_driver_lock(srv->deps.driver);
  kv_coord_placement(srv->deps.coord, ks, p, &pl, stand_in);
  kv_driver_unlock(srv->deps.driver);
  Tunekv__Peer__RingPartition *x = &r->rows[row];
  tunekv__peer__ring_partition__init(x);
  x->partition = p;
  uint32_t *idx = &r->indexes[row * srv->deps.cfg->node_count];
  x->primaries = idx;
  x->n_primaries = pl.primary_count;
  for (uint32_t i = 0; i < pl.primary_count; i++) idx[i] = pl.node[i];
  x->fallbacks = idx + pl.primary_count;
  for (uint32_t k = pl.primary_count; k < pl.count; k++)
    if (pl.region[k] != KV_RING_NO_REGION) x->fallbacks[x->n_fallbacks++] = pl.node[k];
  x->stand_ins = &r->stand_ins[row * KV_REPLICAS_MAX];
  x->n_stand_ins = pl.primary_count;
  for (uint32_t i = 0; i < pl.primary_count; i++)
    x->stand_ins[i] = stand_in[i] < 0 ? -1 : (int32_t)pl.node[stand_in[i]];
  r->row_ptrs[row] = x;
}

/* Keyspace k of r: ks, with its rows from *row on: partition `only`, or all when only is
 * UINT32_MAX. */
static void ring_keyspace(kv_server_t *srv, ring_msg_t *r, size_t k,
                          const kv_keyspace_conf_t *ks, uint32_t only, size_t *row) {
  Tunekv__Peer__RingKeyspace *x = &r->ks[k];
  tunekv__peer__ring_keyspace__init(x);
  x->name = (char *)ks->name;
  x->sloppy_quorum = ks->sloppy_quorum;
  x->replication = &r->rep_ptrs[k * KV_REGIONS_MAX];
  x->n_replication = ks->replication_count;
  for (uint32_t i = 0; i < ks->replication_count; i++) {
    Tunekv__Peer__RingReplication *rep = &r->rep[k * KV_REGIONS_MAX + i];
    tunekv__peer__ring_replication__init(rep);
    rep->region = (char *)ks->replication[i].region;
    rep->replicas = ks->replication[i].replicas;
    x->replication[i] = rep;
  }
  x->partitions = &r->row_ptrs[*row];
  uint32_t from = only == UINT32_MAX ? 0 : only;
  uint32_t to = only == UINT32_MAX ? srv->deps.cfg->partitions : only + 1;
  for (uint32_t p = from; p < to; p++, x->n_partitions++) ring_row(srv, r, (*row)++, ks, p);
  r->ks_ptrs[k] = x;
}

/* Fills r for the request: the whole ring, or the key's partition (checked as a get's key). */
static kv_err ring_fill(kv_server_t *srv, const Tunekv__Peer__RingRequest *m, ring_msg_t *r,
                        kv_status_t *st) {
  const kv_config_t *cfg = srv->deps.cfg;
  bool whole = m->keyspace[0] == '\0' && m->key.len == 0;
  kv_node_plan_t plan;
  if (!whole) {
    kv_node_req_t req = {.keyspace = m->keyspace, .key = m->key.data, .key_bytes = m->key.len,
                         .level = ""};
    kv_err err = kv_node_plan(srv->deps.node, &req, false, &plan, st);
    if (err != KV_OK) return err;
  }
  size_t keyspaces = whole ? cfg->keyspace_count : 1;
  size_t rows = whole ? (size_t)cfg->keyspace_count * cfg->partitions : 1;
  if (rows > KV_RING_ROWS_MAX)
    return kv_status_set(st, KV_EBUSY, "the ring has %u partitions in each of %u keyspaces, "
                         "more than the %u rows one answer holds; ask about one key",
                         cfg->partitions, cfg->keyspace_count, KV_RING_ROWS_MAX);
  kv_err err = ring_msg_alloc(r, keyspaces ? keyspaces : 1, rows ? rows : 1, cfg->node_count, st);
  if (err != KV_OK) return err;
  tunekv__peer__ring_reply__init(&r->reply);
  r->reply.node = (char *)cfg->nodes[kv_node_self(srv->deps.node)].id;
  r->reply.partitions = cfg->partitions;
  ring_nodes(srv, r);
  size_t row = 0;
  if (whole)
    for (uint32_t k = 0; k < cfg->keyspace_count; k++)
      ring_keyspace(srv, r, k, &cfg->keyspaces[k], UINT32_MAX, &row);
  else
    ring_keyspace(srv, r, 0, plan.ks, plan.partition, &row);
  r->reply.n_keyspaces = keyspaces;
  r->reply.keyspaces = r->ks_ptrs;
  size_t bytes = protobuf_c_message_get_packed_size(&r->reply.base);
  if (bytes > srv->max_message_bytes)
    return kv_status_set(st, KV_EBUSY, "the ring's answer would be %zu bytes, more than the %zu "
                         "a message may have; ask about one key", bytes, srv->max_message_bytes);
  return KV_OK;
}

/* The ring, its nodes' liveness as this node sees it, and where requests go (kvctl ring). */
static void handle_ring(kv_server_t *srv, call_t *c) {
  kv_status_t st;
  kv_status_clear(&st);
  Tunekv__Peer__RingRequest *m = (Tunekv__Peer__RingRequest *)payload_unpack(
      c, &tunekv__peer__ring_request__descriptor, &st);
  ring_msg_t r;
  memset(&r, 0, sizeof r);
  if (m && ring_fill(srv, m, &r, &st) == KV_OK) c->reply = message_pack(&r.reply.base);
  ring_msg_free(&r);
  if (m) tunekv__peer__ring_request__free_unpacked(m, NULL);
  call_reply(c, &st);
}

/* ---- Conflicts ---------------------------------------------------------------------- */

/* A journal version as a message; it borrows from v. */
static void conflict_version_pb(const kv_journal_version_t *v, Tunekv__Peer__ConflictVersion *pb) {
  tunekv__peer__conflict_version__init(pb);
  pb->node = v->has_dot ? (char *)v->dot.actor.node : (char *)"";
  pb->incarnation = v->has_dot ? v->dot.actor.incarnation : 0;
  pb->counter = v->has_dot ? v->dot.counter : 0;
  pb->hlc = v->hlc;
  pb->tombstone = v->tombstone;
  pb->value = (ProtobufCBinaryData){v->value_bytes, v->value};
  pb->truncated = v->truncated;
}

/* One page of the journal: entries after the request's seq, up to half the message limit. */
static void handle_conflicts(kv_server_t *srv, call_t *c) {
  kv_status_t st;
  kv_status_clear(&st);
  Tunekv__Peer__ConflictsRequest *m = (Tunekv__Peer__ConflictsRequest *)payload_unpack(
      c, &tunekv__peer__conflicts_request__descriptor, &st);
  if (!m) {
    call_reply(c, &st);
    return;
  }
  kv_journal_t *j = kv_node_journal(srv->deps.node);
  kv_journal_entry_t *e;
  uint32_t n;
  bool more;
  if (kv_journal_list(j, m->after, srv->max_message_bytes / 2, &e, &n, &more) != KV_OK) {
    tunekv__peer__conflicts_request__free_unpacked(m, NULL);
    kv_status_set(&st, KV_ENOMEM, "out of memory listing the conflict journal");
    call_reply(c, &st);
    return;
  }
  Tunekv__Peer__Conflict *cs = calloc(n ? n : 1, sizeof *cs), **cp = calloc(n ? n : 1, sizeof *cp);
  Tunekv__Peer__ConflictVersion *kept = calloc(n ? n : 1, sizeof *kept);
  size_t total = 0;
  for (uint32_t i = 0; i < n; i++) total += e[i].discarded_count;
  Tunekv__Peer__ConflictVersion *dv = calloc(total ? total : 1, sizeof *dv);
  Tunekv__Peer__ConflictVersion **dp = calloc(total ? total : 1, sizeof *dp);
  KV_ASSERT(cs && cp && kept && dv && dp);
  size_t at = 0;
  for (uint32_t i = 0; i < n; i++) {
    Tunekv__Peer__Conflict *x = &cs[i];
    tunekv__peer__conflict__init(x);
    x->seq = e[i].seq;
    x->time_ms = e[i].time_ms;
    x->keyspace = e[i].keyspace;
    x->key = (ProtobufCBinaryData){e[i].key_bytes, e[i].key};
    x->handler = e[i].handler;
    x->reason = e[i].reason;
    x->suspect = e[i].suspect;
    conflict_version_pb(&e[i].kept, &kept[i]);
    x->kept = &kept[i];
    x->discarded = &dp[at];
    x->n_discarded = e[i].discarded_count;
    for (uint32_t k = 0; k < e[i].discarded_count; k++, at++) {
      conflict_version_pb(&e[i].discarded[k], &dv[at]);
      dp[at] = &dv[at];
    }
    cp[i] = x;
  }
  kv_journal_count_t counts[KV_HANDLERS_MAX];
  Tunekv__Peer__HandlerCount hc[KV_HANDLERS_MAX], *hp[KV_HANDLERS_MAX];
  uint64_t evicted;
  uint32_t nc = kv_journal_counts(j, counts, &evicted);
  for (uint32_t i = 0; i < nc; i++) {
    tunekv__peer__handler_count__init(&hc[i]);
    hc[i].handler = counts[i].handler;
    hc[i].discarded = counts[i].discarded;
    hp[i] = &hc[i];
  }
  Tunekv__Peer__ConflictsReply r = TUNEKV__PEER__CONFLICTS_REPLY__INIT;
  r.n_conflicts = n;
  r.conflicts = cp;
  r.more = more;
  r.evicted = evicted;
  r.n_counts = nc;
  r.counts = hp;
  c->reply = message_pack(&r.base);
  free(cs);
  free(cp);
  free(kept);
  free(dv);
  free(dp);
  kv_journal_entries_free(e, n);
  tunekv__peer__conflicts_request__free_unpacked(m, NULL);
  call_reply(c, &st);
}

static void call_handle(call_t *c) {
  kv_server_t *srv = c->worker->srv;
  kv_status_t st;
  kv_status_clear(&st);
  bool admin = c->method != METHOD_PUT && c->method != METHOD_GET &&
               c->method != METHOD_DELETE && c->method != METHOD_PEER_BATCH;
  if (admin && call_check(srv, c, CHECK_ADMIN, KV_AUTH_ADMIN, NULL, &st) != KV_OK) {
    call_reply(c, &st);
    return;
  }
  switch (c->method) {
    case METHOD_PUT:
    case METHOD_GET:
    case METHOD_DELETE: handle_client(srv, c); break;
    case METHOD_PEER_BATCH: handle_peer_batch(srv, c); break;
    case METHOD_STATUS: handle_status(srv, c); break;
    case METHOD_FAULT: handle_fault(srv, c); break;
    case METHOD_CONFLICTS: handle_conflicts(srv, c); break;
    case METHOD_APPLIED: handle_applied(srv, c); break;
    case METHOD_RING: handle_ring(srv, c); break;
    case METHOD_COUNT: KV_ASSERT(!"no such method");
  }
}

static void server_note_shutdown(kv_server_t *srv) {
  pthread_mutex_lock(&srv->lock);
  srv->shutdown_done = true;
  pthread_cond_signal(&srv->shutdown_cond);
  pthread_mutex_unlock(&srv->lock);
}

static void *worker_main(void *arg) {
  worker_t *w = arg;
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) return NULL;
    KV_ASSERT(ev.type == GRPC_OP_COMPLETE);
    if (ev.tag == &w->srv->shutdown_tag) {
      server_note_shutdown(w->srv);
      continue;
    }
    call_t *c = ev.tag;
    if (c->state == CALL_REPLYING || !ev.success) {
      call_free(c);
      continue;
    }
    if (!atomic_load(&w->srv->stopping)) call_arm(w, c->method);
    call_handle(c);
  }
}

/* ---- Start and stop ----------------------------------------------------------------- */

void kv_rpc_init(void) { grpc_init(); }

void kv_rpc_shutdown(void) { grpc_shutdown(); }

kv_err kv_server_start(const kv_server_deps_t *deps, const kv_server_opts_t *opts,
                       kv_server_t **out, kv_status_t *st) {
  KV_ASSERT(opts->threads >= 1 && opts->threads <= KV_SERVER_THREADS_MAX);
  kv_server_t *srv = calloc(1, sizeof *srv);
  if (!srv) return kv_status_set(st, KV_ENOMEM, "out of memory starting the server");
  srv->deps = *deps;
  srv->allow_faults = opts->allow_fault_injection;
  srv->max_message_bytes = opts->max_message_bytes;
  clock_offset_ms = opts->clock_offset_ms;
  srv->worker_count = opts->threads;
  pthread_mutex_init(&srv->lock, NULL);
  pthread_cond_init(&srv->shutdown_cond, NULL);
  int max = opts->max_message_bytes > INT32_MAX ? INT32_MAX : (int)opts->max_message_bytes;
  /* gRPC sets SO_REUSEPORT by default, which would let a second node bind this address
   * and silently take half its calls; a busy port must be a start-up error instead. */
  grpc_arg args[3];
  memset(args, 0, sizeof args);
  args[0].type = args[1].type = args[2].type = GRPC_ARG_INTEGER;
  args[0].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
  args[1].key = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
  args[0].value.integer = args[1].value.integer = max;
  args[2].key = (char *)GRPC_ARG_ALLOW_REUSEPORT;
  args[2].value.integer = 0;
  grpc_channel_args channel_args = {3, args};
  srv->server = grpc_server_create(&channel_args, NULL);
  for (int m = 0; m < METHOD_COUNT; m++)
    srv->methods[m] = grpc_server_register_method(srv->server, method_paths[m], NULL,
                                                  GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
  for (uint32_t i = 0; i < srv->worker_count; i++) {
    srv->workers[i].srv = srv;
    srv->workers[i].cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(srv->server, srv->workers[i].cq, NULL);
  }
  grpc_server_credentials *creds = opts->tls ? kv_tls_server_credentials(opts->tls)
                                             : grpc_insecure_server_credentials_create();
  int port = grpc_server_add_http2_port(srv->server, opts->address, creds);
  grpc_server_credentials_release(creds);
  if (port == 0) {
    kv_status_set(st, KV_EIO, "cannot listen on %s (address in use or not local?)",
                  opts->address);
    grpc_server_destroy(srv->server);
    for (uint32_t i = 0; i < srv->worker_count; i++) {
      grpc_completion_queue_shutdown(srv->workers[i].cq);
      while (grpc_completion_queue_next(srv->workers[i].cq, gpr_inf_past(GPR_CLOCK_MONOTONIC),
                                        NULL).type != GRPC_QUEUE_SHUTDOWN) {
      }
      grpc_completion_queue_destroy(srv->workers[i].cq);
    }
    free(srv);
    return KV_EIO;
  }
  grpc_server_start(srv->server);
  for (uint32_t i = 0; i < srv->worker_count; i++) {
    for (int m = 0; m < METHOD_COUNT; m++)
      for (int k = 0; k < ARMED_PER_METHOD; k++) call_arm(&srv->workers[i], (method_t)m);
    pthread_create(&srv->workers[i].thread, NULL, worker_main, &srv->workers[i]);
  }
  *out = srv;
  return KV_OK;
}

/* Waits for the shutdown notification until deadline; true when it came. */
static bool server_wait_shutdown(kv_server_t *srv, const struct timespec *deadline) {
  pthread_mutex_lock(&srv->lock);
  while (!srv->shutdown_done) {
    if (pthread_cond_timedwait(&srv->shutdown_cond, &srv->lock, deadline) != 0) break;
  }
  bool done = srv->shutdown_done;
  pthread_mutex_unlock(&srv->lock);
  return done;
}

void kv_server_stop(kv_server_t *srv, uint32_t grace_ms) {
  atomic_store(&srv->stopping, true);
  grpc_server_shutdown_and_notify(srv->server, srv->workers[0].cq, &srv->shutdown_tag);
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += grace_ms / 1000;
  deadline.tv_nsec += (long)(grace_ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000L;
  }
  if (!server_wait_shutdown(srv, &deadline)) {
    KV_WARN("calls still running after %u ms; cancelling them", grace_ms);
    grpc_server_cancel_all_calls(srv->server);
    pthread_mutex_lock(&srv->lock);
    while (!srv->shutdown_done) pthread_cond_wait(&srv->shutdown_cond, &srv->lock);
    pthread_mutex_unlock(&srv->lock);
  }
  grpc_server_destroy(srv->server);
  for (uint32_t i = 0; i < srv->worker_count; i++) grpc_completion_queue_shutdown(srv->workers[i].cq);
  for (uint32_t i = 0; i < srv->worker_count; i++) {
    pthread_join(srv->workers[i].thread, NULL);
    grpc_completion_queue_destroy(srv->workers[i].cq);
  }
  pthread_cond_destroy(&srv->shutdown_cond);
  pthread_mutex_destroy(&srv->lock);
  free(srv);
}
