/* server_rpc.c: async gRPC server for tunekv.KV.
 *
 * Threads and queues: each worker thread owns one completion queue and drains only it.
 * Every method is registered with GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, so a call
 * arrives together with its request message, and each queue keeps ARMED_PER_METHOD
 * requests armed per method.
 *
 * A call's life (the tag of every operation is its call_t):
 *   ARMED     request_registered_call is pending. On completion: arm a replacement first
 *             (unless stopping), decode, run the node operation, start the reply batch
 *             (SEND_INITIAL_METADATA, SEND_MESSAGE when ok, SEND_STATUS, RECV_CLOSE).
 *   REPLYING  the reply batch is pending. On completion: free everything.
 * An ARMED completion with success == 0 means the server is shutting down: free it.
 * Everything an operation writes into lives in call_t until its completion arrives.
 *
 * Durable writes (group commit): the worker applies the write without fsync and hands the
 * call, reply built, to the syncer thread instead of replying. The syncer takes every call
 * queued so far, makes them durable with one kv_node_sync, and replies to all of them; calls
 * queued meanwhile wait for the next round. The queue needs no bound of its own: each call
 * in it is one of the armed calls.
 *
 * Shutdown: stop re-arming, shutdown_and_notify, wait for the notification (cancelling all
 * calls after the grace period; the syncer keeps answering until then), stop the syncer,
 * destroy the server, shut the queues down and let each worker drain its queue to
 * GRPC_QUEUE_SHUTDOWN, join, destroy the queues. */
#include "server_rpc.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv.pb-c.h"
#include "kv_limits.h"
#include "log.h"

#define ARMED_PER_METHOD 64

typedef enum { METHOD_PUT, METHOD_GET, METHOD_DELETE, METHOD_COUNT } method_t;

static const char *const method_paths[METHOD_COUNT] = {
    "/tunekv.KV/Put", "/tunekv.KV/Get", "/tunekv.KV/Delete"};

typedef enum { CALL_ARMED, CALL_REPLYING } call_state_t;

typedef struct worker worker_t;

typedef struct call call_t;

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
  bool durable;               /* reply only after a sync (see the syncer) */
  call_t *next_sync;          /* the syncer's queue */
};

struct worker {
  kv_server_t *srv;
  grpc_completion_queue *cq;
  pthread_t thread;
};

typedef struct {
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  call_t *head, *tail;        /* durable calls waiting for the next sync */
  bool stop;
} syncer_t;

struct kv_server {
  grpc_server *server;
  syncer_t syncer;
  kv_node_t *node;
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

/* Unpacks the call's payload; NULL with a status when it is absent or malformed. */
static ProtobufCMessage *payload_unpack(call_t *c, const ProtobufCMessageDescriptor *desc,
                                        kv_status_t *st) {
  if (!c->payload) {
    kv_status_set(st, KV_EINVAL, "request carried no %s message", desc->name);
    return NULL;
  }
  grpc_byte_buffer_reader reader;
  if (!grpc_byte_buffer_reader_init(&reader, c->payload)) {
    kv_status_set(st, KV_EINVAL, "request payload could not be read");
    return NULL;
  }
  grpc_slice slice = grpc_byte_buffer_reader_readall(&reader);
  grpc_byte_buffer_reader_destroy(&reader);
  ProtobufCMessage *msg = protobuf_c_message_unpack(desc, NULL, GRPC_SLICE_LENGTH(slice),
                                                    GRPC_SLICE_START_PTR(slice));
  grpc_slice_unref(slice);
  if (!msg) kv_status_set(st, KV_EINVAL, "request is not a valid %s message", desc->name);
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

static uint64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
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

/* Runs a decoded request on the node and packs the answer; NULL (with st set) on failure. */
static grpc_byte_buffer *node_call(kv_node_t *node, method_t method, const kv_node_req_t *req,
                                   kv_status_t *st) {
  kv_node_result_t res;
  kv_err err;
  switch (method) {
    case METHOD_PUT: err = kv_node_put(node, req, wall_ms(), &res, st); break;
    case METHOD_DELETE: err = kv_node_delete(node, req, wall_ms(), &res, st); break;
    default: err = kv_node_get(node, req, &res, st); break;
  }
  grpc_byte_buffer *reply = err == KV_OK ? key_reply(&res) : NULL;
  kv_node_result_free(&res);
  return reply;
}

static grpc_byte_buffer *handle_put(kv_node_t *node, call_t *c, kv_status_t *st) {
  Tunekv__PutRequest *m =
      (Tunekv__PutRequest *)payload_unpack(c, &tunekv__put_request__descriptor, st);
  if (!m) return NULL;
  kv_node_req_t req = {.keyspace = m->keyspace, .key = m->key.data,
                       .key_bytes = m->key.len, .value = m->value.data,
                       .value_bytes = m->value.len, .context = m->context.data,
                       .context_bytes = m->context.len};
  req_consistency(&req, m->consistency, true);
  c->durable = req.durable;
  grpc_byte_buffer *reply = node_call(node, METHOD_PUT, &req, st);
  tunekv__put_request__free_unpacked(m, NULL);
  return reply;
}

static grpc_byte_buffer *handle_delete(kv_node_t *node, call_t *c, kv_status_t *st) {
  Tunekv__DeleteRequest *m =
      (Tunekv__DeleteRequest *)payload_unpack(c, &tunekv__delete_request__descriptor, st);
  if (!m) return NULL;
  kv_node_req_t req = {.keyspace = m->keyspace, .key = m->key.data,
                       .key_bytes = m->key.len, .context = m->context.data,
                       .context_bytes = m->context.len};
  req_consistency(&req, m->consistency, true);
  c->durable = req.durable;
  grpc_byte_buffer *reply = node_call(node, METHOD_DELETE, &req, st);
  tunekv__delete_request__free_unpacked(m, NULL);
  return reply;
}

static grpc_byte_buffer *handle_get(kv_node_t *node, call_t *c, kv_status_t *st) {
  Tunekv__GetRequest *m =
      (Tunekv__GetRequest *)payload_unpack(c, &tunekv__get_request__descriptor, st);
  if (!m) return NULL;
  kv_node_req_t req = {.keyspace = m->keyspace, .key = m->key.data,
                       .key_bytes = m->key.len, .local = m->local};
  req_consistency(&req, m->consistency, false);
  grpc_byte_buffer *reply = node_call(node, METHOD_GET, &req, st);
  tunekv__get_request__free_unpacked(m, NULL);
  return reply;
}

/* ---- Call handling ------------------------------------------------------------------ */

static void call_reply(call_t *c, const kv_status_t *st) {
  grpc_op ops[4];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
  if (c->reply) {
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = c->reply;
  }
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.status = (grpc_status_code)kv_err_grpc_code(st->code);
  if (st->code != KV_OK) {
    c->details = grpc_slice_from_copied_string(st->msg);
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

/* ---- Group commit ------------------------------------------------------------------ */

static void syncer_push(syncer_t *sy, call_t *c) {
  c->next_sync = NULL;
  pthread_mutex_lock(&sy->lock);
  if (sy->tail) sy->tail->next_sync = c;
  else sy->head = c;
  sy->tail = c;
  pthread_cond_signal(&sy->cond);
  pthread_mutex_unlock(&sy->lock);
}

/* Takes the whole queue; NULL once stopped and empty. */
static call_t *syncer_take(syncer_t *sy) {
  pthread_mutex_lock(&sy->lock);
  while (!sy->head && !sy->stop) pthread_cond_wait(&sy->cond, &sy->lock);
  call_t *batch = sy->head;
  sy->head = sy->tail = NULL;
  pthread_mutex_unlock(&sy->lock);
  return batch;
}

static void *syncer_main(void *arg) {
  kv_server_t *srv = arg;
  call_t *batch;
  while ((batch = syncer_take(&srv->syncer)) != NULL) {
    kv_status_t st;
    kv_status_clear(&st);
    kv_err err = kv_node_sync(srv->node, &st);
    if (err != KV_OK) KV_ERROR("durable writes not acknowledged: %s", st.msg);
    while (batch) {
      call_t *c = batch;
      batch = c->next_sync;
      if (err != KV_OK) {
        grpc_byte_buffer_destroy(c->reply);
        c->reply = NULL;
      }
      call_reply(c, &st);
    }
  }
  return NULL;
}

static void syncer_start(kv_server_t *srv) {
  syncer_t *sy = &srv->syncer;
  pthread_mutex_init(&sy->lock, NULL);
  pthread_cond_init(&sy->cond, NULL);
  pthread_create(&sy->thread, NULL, syncer_main, srv);
}

/* Answers what is queued, then ends the thread. */
static void syncer_stop(syncer_t *sy) {
  pthread_mutex_lock(&sy->lock);
  sy->stop = true;
  pthread_cond_signal(&sy->cond);
  pthread_mutex_unlock(&sy->lock);
  pthread_join(sy->thread, NULL);
  pthread_cond_destroy(&sy->cond);
  pthread_mutex_destroy(&sy->lock);
}

static void call_handle(call_t *c) {
  kv_node_t *node = c->worker->srv->node;
  kv_status_t st;
  kv_status_clear(&st);
  switch (c->method) {
    case METHOD_PUT: c->reply = handle_put(node, c, &st); break;
    case METHOD_GET: c->reply = handle_get(node, c, &st); break;
    case METHOD_DELETE: c->reply = handle_delete(node, c, &st); break;
    case METHOD_COUNT: KV_ASSERT(!"no such method");
  }
  KV_ASSERT((st.code == KV_OK) == (c->reply != NULL));
  if (st.code == KV_OK && c->durable) syncer_push(&c->worker->srv->syncer, c);
  else call_reply(c, &st);
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

kv_err kv_server_start(kv_node_t *node, const kv_server_opts_t *opts, kv_server_t **out,
                       kv_status_t *st) {
  KV_ASSERT(opts->threads >= 1 && opts->threads <= KV_SERVER_THREADS_MAX);
  kv_server_t *srv = calloc(1, sizeof *srv);
  if (!srv) return kv_status_set(st, KV_ENOMEM, "out of memory starting the server");
  srv->node = node;
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
  grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
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
  syncer_start(srv);
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
  syncer_stop(&srv->syncer);
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
