/* peer_rpc.c: the transport of the core's links (coordinator/link.h): batch calls, forwarded
 * writes, fault injection and clock sanity (see peer_rpc.h).
 *
 * Encoding: each message is packed once, when the core queues it (peer_pack), as a
 * PeerMessage. A PeerBatch is field 1 (the sender's id) followed by one field-2 entry per
 * message, and a repeated message field is just its entries one after another, so a batch is
 * built by concatenating the packed messages behind their field headers: no message is
 * decoded or copied twice.
 *
 * Per peer, under its lock: the batch calls in flight, one per slot of the core's link
 * (link.h: up to KV_PEER_WINDOW, each with its buffers and its completion tag), the clock
 * estimate, the fault and the calls it holds back. What is queued, when a batch leaves, and
 * whether the peer is up are the core's (its links). Lock order: the driver's lock (driver.h)
 * may be held when a peer's lock is taken (batches start from inside the core), never the
 * reverse: batch ends and ticks are delivered to the core under the driver's lock with no peer
 * lock held.
 *
 * Faults. Every call to a peer (its batch, a forwarded write) goes through call_send. With no
 * fault and nothing held it starts at once. Otherwise it becomes a held call: its deadline is
 * fixed as it is made, as gRPC's would be, and it gets a release time, now + delay +
 * uniform(0, jitter) + exponential(mean exp_delay) but never before the release time of the
 * call held before it (calls to
 * one peer stay in order, as on one HTTP/2 connection), or, when it is dropped (with
 * probability drop), none. Held calls leave when their release time comes (checked as each
 * call is held and on the thread's 5 ms tick, 1 ms once a fault was set); a held call whose
 * deadline comes first fails (with both_ways, a batch's answer is held too, for a delay drawn
 * alike, and the batch stays in flight until it is released)
 * with DEADLINE_EXCEEDED, which is how a dropped call ends: exactly as a call whose packets
 * were lost would. So a dropped batch still holds its slot of the window until its deadline,
 * its messages are answered as failed only then, and nothing of it reaches the peer. A peer
 * has at most KV_PEER_WINDOW batches held (one per slot); forwards held per peer are bounded
 * by KV_FAULT_HELD_MAX. At shutdown every held call fails (CANCELLED), like the calls in
 * flight. */
#include "peer_rpc.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fmt.h"
#include "kv_limits.h"
#include "log.h"
#include "peer.pb-c.h"
#include "peer_codec.h"

#define PEER_TICK_MS 5
/* Once any fault has been set, held calls are swept this often, so injected delays keep a
 * 1 ms resolution (PBS labs compare latency distributions of a few ms). */
#define FAULT_TICK_MS 1

/* What a completion on the peers' queue belongs to: each tag's struct starts with one. */
typedef enum { TAG_BATCH, TAG_FORWARD } tag_kind_t;

/* One unary call in flight: everything its six-op batch writes into, which must live until
 * its completion arrives. */
typedef struct {
  grpc_call *call;
  grpc_byte_buffer *request, *response;
  grpc_metadata_array initial_md, trailing_md;
  grpc_status_code status;
  grpc_slice details;
} unary_t;

/* The methods called on a peer, registered on its channel. */
typedef enum { METHOD_BATCH, METHOD_PUT, METHOD_DELETE, METHOD_COUNT } peer_method_t;
static const char *const method_path[METHOD_COUNT] = {
    "/tunekv.peer.Peer/Batch", "/tunekv.KV/Put", "/tunekv.KV/Delete"};

/* A call held back by a fault (see the notes at the top). */
typedef struct {
  unary_t *u;                   /* the call's state, once it starts or fails */
  void *tag;                    /* a batch_t or a forward_t */
  peer_method_t method;
  grpc_byte_buffer *request;
  gpr_timespec deadline;        /* the call's deadline, fixed when it was made */
  uint64_t deadline_us;         /* the same on mono_us's clock */
  uint64_t release_us;          /* when it leaves; UINT64_MAX: dropped, never */
} held_t;

typedef struct peer peer_t;

/* The batch call of one slot of the peer's link (link.h), its completion's tag. */
typedef struct {
  tag_kind_t kind;              /* TAG_BATCH */
  peer_t *peer;
  uint32_t slot;                /* its index in peer->batches, the link's slot */
  bool in_flight;               /* rpc, sent_wall_ms and the answer's hold are valid */
  unary_t rpc;
  uint64_t sent_wall_ms;        /* it left at this wall-clock time */
  bool answer_held;             /* both_ways: the answer waits for answer_release_us */
  uint64_t answer_release_us;
} batch_t;

struct peer {
  uint32_t node;
  grpc_channel *channel;        /* replaced by kv_peers_reload_tls, under lock */
  void *method[METHOD_COUNT];   /* registered on channel */
  pthread_mutex_t lock;
  batch_t batches[KV_PEER_WINDOW];
  bool clock_known;             /* clock sanity (see peer_rpc.h) */
  int64_t clock_offset_ms;
  bool clock_skewed;
  kv_fault_t fault;
  held_t *held;                 /* HELD_ROOM, made with the first fault; in order */
  uint32_t held_count;
  uint64_t last_release_us;     /* the latest release time handed out */
  uint64_t rng;                 /* splitmix64 state, for drops and jitter */
};

/* Held calls per peer: the forwards' bound, and a batch for each slot of the window. */
#define HELD_ROOM (KV_FAULT_HELD_MAX + KV_PEER_WINDOW)

/* A client's write forwarded to the replica that coordinates it. */
typedef struct {
  tag_kind_t kind;              /* TAG_FORWARD */
  void *client_call;
  unary_t rpc;
} forward_t;

struct kv_peers {
  kv_forward_reply_fn relay;
  const kv_config_t *cfg;
  uint32_t self;
  peer_t *peers;                /* one per node of cfg; peers[self] is unused */
  grpc_completion_queue *cq;
  pthread_t thread;
  bool running;
  atomic_bool stop;
  atomic_bool faulted;          /* a fault was set at some point: sweep every FAULT_TICK_MS */
  kv_coord_t *coord;
  kv_driver_t *driver;          /* held while answers and ticks go into coord */
  kv_node_t *clock_node;        /* told which peers' clocks are suspect; may be NULL */
  size_t max_message_bytes;     /* what channels are made with */
  kv_tls_t *tls;
};

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- unary calls -------------------------------------------------------------------- */

/* Starts a call of method on channel carrying request (taken over), completing on cq with
 * tag by deadline. */
static void unary_start(unary_t *u, grpc_channel *channel, grpc_completion_queue *cq,
                        void *method, grpc_byte_buffer *request, gpr_timespec deadline,
                        void *tag) {
  memset(u, 0, sizeof *u);
  u->request = request;
  grpc_metadata_array_init(&u->initial_md);
  grpc_metadata_array_init(&u->trailing_md);
  u->call = grpc_channel_create_registered_call(channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                                method, deadline, NULL);
  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = u->request;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &u->initial_md;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &u->response;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &u->trailing_md;
  ops[5].data.recv_status_on_client.status = &u->status;
  ops[5].data.recv_status_on_client.status_details = &u->details;
  grpc_call_error err = grpc_call_start_batch(u->call, ops, 6, tag, NULL);
  KV_ASSERT(err == GRPC_CALL_OK); /* a fresh call with one of each op cannot be refused */
}

/* Fills u as a call that ended with code and why (a static string) without ever being made:
 * a held call that failed. */
static void unary_fail(unary_t *u, grpc_byte_buffer *request, grpc_status_code code,
                       const char *why) {
  memset(u, 0, sizeof *u);
  u->request = request;
  grpc_metadata_array_init(&u->initial_md);
  grpc_metadata_array_init(&u->trailing_md);
  u->status = code;
  u->details = grpc_slice_from_static_string(why);
}

/* Releases a completed call: the call (none when it failed held), its request and metadata.
 * u->response (may be NULL) and u->details stay with the caller, to destroy and unref. */
static void unary_end(unary_t *u) {
  grpc_byte_buffer_destroy(u->request);
  grpc_metadata_array_destroy(&u->initial_md);
  grpc_metadata_array_destroy(&u->trailing_md);
  if (u->call) grpc_call_unref(u->call);
  u->call = NULL;
}

/* ---- faults ------------------------------------------------------------------------- */

static uint64_t rng_next(peer_t *p) {
  uint64_t z = (p->rng += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static bool fault_on(const kv_fault_t *f) {
  return f->delay_ms > 0 || f->jitter_ms > 0 || f->drop > 0 || f->exp_delay_ms > 0 ||
         f->both_ways;
}

/* An exponential of mean mean_ms, in whole ms (rounded down), by the inverse CDF of a
 * uniform in (0, 1]. */
static uint64_t exp_delay(peer_t *p, int64_t mean_ms) {
  if (mean_ms <= 0) return 0;
  double u = (double)((rng_next(p) >> 11) + 1) * 0x1.0p-53;
  return (uint64_t)(-(double)mean_ms * log(u));
}

/* A delay as the fault draws it: delay + uniform(0, jitter) + exponential(mean exp_delay). */
static uint64_t fault_delay(peer_t *p) {
  return (uint64_t)p->fault.delay_ms + rng_next(p) % ((uint64_t)p->fault.jitter_ms + 1) +
         exp_delay(p, p->fault.exp_delay_ms);
}

/* Starts the held calls of p whose release time has come by now, in order, and, when done is
 * not NULL, takes out those whose deadline has passed, filled in as failed (CANCELLED once
 * stopping), putting their tags in done for the caller to finish with no lock held. Returns
 * how many it took out. Peer lock held. */
static uint32_t held_sweep(kv_peers_t *ps, peer_t *p, uint64_t now_us, void **done) {
  bool stop = atomic_load(&ps->stop);
  uint32_t kept = 0, n = 0;
  for (uint32_t i = 0; i < p->held_count; i++) {
    held_t *h = &p->held[i];
    if (done && now_us >= h->deadline_us) {
      unary_fail(h->u, h->request, stop ? GRPC_STATUS_CANCELLED : GRPC_STATUS_DEADLINE_EXCEEDED,
                 stop ? "Cancelled" : "Deadline Exceeded");
      done[n++] = h->tag;
    } else if (now_us >= h->release_us && now_us < h->deadline_us) {
      unary_start(h->u, p->channel, ps->cq, p->method[h->method], h->request, h->deadline,
                  h->tag);
    } else {
      p->held[kept++] = *h;
    }
  }
  p->held_count = kept;
  return n;
}

/* Starts a call of method to p carrying request (taken over), or, under a fault, holds it
 * back or drops it (see the notes at the top); either way one completion comes for tag, on
 * the queue or from faults_tick. KV_EBUSY (and nothing comes) when a forward finds
 * KV_FAULT_HELD_MAX calls held. Peer lock held. */
static kv_err call_send(kv_peers_t *ps, peer_t *p, unary_t *u, peer_method_t method,
                        grpc_byte_buffer *request, uint32_t deadline_ms, void *tag,
                        kv_status_t *st) {
  gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                       gpr_time_from_millis(deadline_ms, GPR_TIMESPAN));
  if (!fault_on(&p->fault) && p->held_count == 0) {
    unary_start(u, p->channel, ps->cq, p->method[method], request, deadline, tag);
    return KV_OK;
  }
  if (*(tag_kind_t *)tag == TAG_FORWARD && p->held_count >= KV_FAULT_HELD_MAX) {
    grpc_byte_buffer_destroy(request);
    return kv_status_set(st, KV_EBUSY, "%u calls to node %s are held back by fault injection",
                         p->held_count, ps->cfg->nodes[p->node].id);
  }
  KV_ASSERT(p->held_count < HELD_ROOM); /* room for a batch per slot */
  /* Microseconds: in whole milliseconds a call made late in one would leave up to 1 ms short
   * of its delay. */
  uint64_t now = mono_us();
  held_t h = {.u = u, .tag = tag, .method = method, .request = request, .deadline = deadline,
              .deadline_us = now + deadline_ms * 1000ull, .release_us = UINT64_MAX};
  /* 53 random bits as a fraction in [0, 1): drop 0 never drops, drop 1 always does. */
  if ((double)(rng_next(p) >> 11) * 0x1.0p-53 >= p->fault.drop) {
    uint64_t release = now + fault_delay(p) * 1000;
    if (release < p->last_release_us) release = p->last_release_us;
    h.release_us = p->last_release_us = release;
  }
  p->held[p->held_count++] = h;
  held_sweep(ps, p, now, NULL);
  return KV_OK;
}

/* ---- batches ------------------------------------------------------------------------ */

static size_t varint_put(uint8_t *out, uint64_t v) {
  size_t n = 0;
  do {
    uint8_t b = v & 0x7f;
    v >>= 7;
    out[n++] = b | (v ? 0x80 : 0);
  } while (v);
  return n;
}

/* Builds the batch request from items[0..count) (packed PeerMessages, freed here). */
static grpc_byte_buffer *batch_build(const char *from, const kv_link_item_t *items,
                                     uint32_t count) {
  size_t from_len = strlen(from);
  size_t total = 1 + 10 + from_len;
  for (uint32_t i = 0; i < count; i++) total += 1 + 10 + items[i].bytes;
  grpc_slice slice = grpc_slice_malloc(total);
  uint8_t *out = GRPC_SLICE_START_PTR(slice), *at = out;
  *at++ = 0x0a; /* field 1, length-delimited: from */
  at += varint_put(at, from_len);
  memcpy(at, from, from_len);
  at += from_len;
  for (uint32_t i = 0; i < count; i++) {
    *at++ = 0x12; /* field 2, length-delimited: one PeerMessage */
    at += varint_put(at, items[i].bytes);
    memcpy(at, items[i].data, items[i].bytes);
    at += items[i].bytes;
    free(items[i].data);
  }
  grpc_slice sent = grpc_slice_sub(slice, 0, (size_t)(at - out));
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sent, 1);
  grpc_slice_unref(sent);
  grpc_slice_unref(slice);
  return bb;
}

/* The transport's send_batch (coord.h): one Batch call carrying items, in slot's call,
 * unless stopping. */
static bool peer_send_batch(void *arg, uint32_t node, uint32_t slot, const kv_link_item_t *items,
                            uint32_t count, uint32_t deadline_ms) {
  kv_peers_t *ps = arg;
  KV_ASSERT(node < ps->cfg->node_count && node != ps->self && slot < KV_PEER_WINDOW);
  peer_t *p = &ps->peers[node];
  batch_t *b = &p->batches[slot];
  pthread_mutex_lock(&p->lock);
  bool start = !atomic_load(&ps->stop);
  if (start) {
    KV_ASSERT(!b->in_flight); /* the core's link fills a slot only once its batch ended */
    grpc_byte_buffer *request = batch_build(ps->cfg->nodes[ps->self].id, items, count);
    b->in_flight = true;
    b->sent_wall_ms = wall_ms();
    kv_err err = call_send(ps, p, &b->rpc, METHOD_BATCH, request, deadline_ms, b, NULL);
    KV_ASSERT(err == KV_OK); /* a batch always finds room among the held calls */
  }
  pthread_mutex_unlock(&p->lock);
  return start;
}

/* The transport's pack (coord.h): m becomes a PeerMessage, once. */
static kv_err peer_pack(void *arg, uint32_t node, const kv_msg_t *m, kv_link_item_t *out,
                        kv_status_t *st) {
  kv_peers_t *ps = arg;
  uint8_t *bytes;
  size_t len;
  kv_err err = kv_peer_msg_pack(ps->cfg, m, &bytes, &len, st);
  if (err == KV_OK) *out = (kv_link_item_t){.id = m->id, .data = bytes, .bytes = len};
  return err;
}

static void peer_discard(void *arg, kv_link_item_t *item) { free(item->data); }

/* Clock sanity: the peer's clock at the midpoint of the round trip of a batch sent at
 * sent_wall_ms against ours. Peer lock held; true when the peer's skewed state changed. */
static bool clock_measure(kv_peers_t *ps, peer_t *p, uint64_t sent_wall_ms,
                          uint64_t peer_wall_ms) {
  uint64_t now = wall_ms();
  int64_t mid = (int64_t)(sent_wall_ms + (now > sent_wall_ms ? now : sent_wall_ms)) / 2;
  p->clock_offset_ms = (int64_t)peer_wall_ms - mid;
  p->clock_known = true;
  int64_t bound = (int64_t)ps->cfg->max_clock_skew_ms;
  bool skewed = p->clock_offset_ms > bound || p->clock_offset_ms < -bound;
  bool changed = skewed != p->clock_skewed;
  p->clock_skewed = skewed;
  return changed;
}

/* Views reply's answers for the core (scratch: one per answer, freed by the caller). */
static kv_msg_answer_t *answers_view(const Tunekv__Peer__PeerBatchReply *reply,
                                     kv_peer_answer_scratch_t **scratch) {
  size_t n = reply->n_answers;
  kv_msg_answer_t *answers = calloc(n ? n : 1, sizeof *answers);
  *scratch = calloc(n ? n : 1, sizeof **scratch);
  KV_ASSERT(answers && *scratch);
  for (size_t i = 0; i < n; i++)
    kv_peer_answer_view(reply->answers[i], reply->answers[i]->id, &answers[i], &(*scratch)[i]);
  return answers;
}

/* Measures the peer's clock from its reply to a batch sent at sent_wall_ms, and reports a
 * change of its skewed state. */
static void clock_check(kv_peers_t *ps, peer_t *p, uint64_t sent_wall_ms,
                        uint64_t peer_wall_ms) {
  pthread_mutex_lock(&p->lock);
  bool changed = clock_measure(ps, p, sent_wall_ms, peer_wall_ms);
  bool skewed = p->clock_skewed;
  int64_t offset = p->clock_offset_ms;
  pthread_mutex_unlock(&p->lock);
  if (!changed) return;
  if (ps->clock_node) kv_node_clock_suspect_set(ps->clock_node, p->node, skewed);
  if (skewed)
    KV_WARN("node %s's clock is %+lld ms off this node's, past max_clock_skew_ms %u: lww "
            "decisions over its writes are journaled as suspect", ps->cfg->nodes[p->node].id,
            (long long)offset, ps->cfg->max_clock_skew_ms);
  else
    KV_INFO("node %s's clock is back within max_clock_skew_ms (%+lld ms)",
            ps->cfg->nodes[p->node].id, (long long)offset);
}

/* Delivers the end of slot's batch call, sent at sent_wall_ms, to the core: its answers, or
 * its failure. No lock held. */
static void batch_deliver(kv_peers_t *ps, peer_t *p, uint32_t slot, uint64_t sent_wall_ms,
                          grpc_status_code status, grpc_slice details,
                          grpc_byte_buffer *response) {
  Tunekv__Peer__PeerBatchReply *reply = NULL;
  if (status == GRPC_STATUS_OK && response) {
    grpc_byte_buffer_reader reader;
    if (grpc_byte_buffer_reader_init(&reader, response)) {
      grpc_slice s = grpc_byte_buffer_reader_readall(&reader);
      grpc_byte_buffer_reader_destroy(&reader);
      reply = tunekv__peer__peer_batch_reply__unpack(NULL, GRPC_SLICE_LENGTH(s),
                                                     GRPC_SLICE_START_PTR(s));
      grpc_slice_unref(s);
    }
  }
  if (reply && reply->wall_ms) clock_check(ps, p, sent_wall_ms, reply->wall_ms);
  kv_driver_lock(ps->driver);
  if (reply) {
    kv_peer_answer_scratch_t *scratch;
    kv_msg_answer_t *answers = answers_view(reply, &scratch);
    kv_coord_on_batch_reply(ps->coord, p->node, slot, answers, (uint32_t)reply->n_answers,
                            mono_us());
    for (size_t i = 0; i < reply->n_answers; i++) kv_peer_answer_scratch_free(&scratch[i]);
    free(scratch);
    free(answers);
  } else {
    char *text = grpc_slice_to_c_string(details);
    char why[KV_STATUS_MSG_BYTES];
    snprintf(why, sizeof why, "%s: %s", kv_grpc_code_name((int)status),
             status == GRPC_STATUS_OK ? "the reply does not decode" : text);
    gpr_free(text);
    kv_coord_on_batch_failed(ps->coord, p->node, slot,
                             status == GRPC_STATUS_DEADLINE_EXCEEDED ? KV_LINK_TIMED_OUT
                                                                     : KV_LINK_FAILED,
                             why, mono_us());
  }
  kv_driver_unlock(ps->driver);
  if (reply) tunekv__peer__peer_batch_reply__free_unpacked(reply, NULL);
}

/* Ends b's call and frees its slot before the core hears of it: the core may start the
 * slot's next batch from inside the delivery. No lock held. */
static void batch_complete(kv_peers_t *ps, batch_t *b) {
  peer_t *p = b->peer;
  pthread_mutex_lock(&p->lock);
  grpc_status_code status = b->rpc.status;
  grpc_slice details = b->rpc.details;
  grpc_byte_buffer *response = b->rpc.response;
  uint64_t sent_wall_ms = b->sent_wall_ms;
  unary_end(&b->rpc);
  b->in_flight = false;
  pthread_mutex_unlock(&p->lock);

  batch_deliver(ps, p, b->slot, sent_wall_ms, status, details, response);
  grpc_slice_unref(details);
  if (response) grpc_byte_buffer_destroy(response);
}

/* ---- sending ------------------------------------------------------------------------ */

kv_peer_clock_t kv_peers_clock(kv_peers_t *ps, uint32_t node) {
  kv_peer_clock_t c = {.known = true, .offset_ms = 0, .skewed = false};
  if (node == ps->self) return c;
  peer_t *p = &ps->peers[node];
  pthread_mutex_lock(&p->lock);
  c = (kv_peer_clock_t){.known = p->clock_known, .offset_ms = p->clock_offset_ms,
                        .skewed = p->clock_skewed};
  pthread_mutex_unlock(&p->lock);
  return c;
}

/* Checks a fault and the peers it names; on KV_OK nodes[0..n) are their indexes. */
static kv_err fault_check(const kv_peers_t *ps, const char *const *ids, size_t n,
                          const kv_fault_t *f, uint32_t *nodes, kv_status_t *st) {
  char shown[KV_FMT_KEY_BYTES];
  if (n == 0) return kv_status_set(st, KV_EINVAL, "the fault names no peer");
  for (size_t i = 0; i < n; i++) {
    int node = kv_config_node_index(ps->cfg, ids[i]);
    if (node < 0)
      return kv_status_set(st, KV_EINVAL, "unknown peer '%s'; the cluster has no node with that "
                           "id", kv_fmt_bytes(shown, sizeof shown, ids[i], strlen(ids[i])));
    if ((uint32_t)node == ps->self)
      return kv_status_set(st, KV_EINVAL, "'%s' is this node; faults apply to the calls it makes "
                           "to its peers", ids[i]);
    nodes[i] = (uint32_t)node;
  }
  const char *const names[3] = {"delay_ms", "jitter_ms", "exp_delay_ms"};
  const int64_t values[3] = {f->delay_ms, f->jitter_ms, f->exp_delay_ms};
  for (int i = 0; i < 3; i++)
    if (values[i] < 0 || values[i] > KV_FAULT_DELAY_MS_MAX)
      return kv_status_set(st, KV_EINVAL, "%s is %lld; it must be between 0 and %u", names[i],
                           (long long)values[i], KV_FAULT_DELAY_MS_MAX);
  if (!(f->drop >= 0 && f->drop <= 1)) /* NaN too */
    return kv_status_set(st, KV_EINVAL, "drop is %g; it must be between 0 and 1", f->drop);
  return KV_OK;
}

kv_err kv_peers_fault_set(kv_peers_t *ps, const char *const *ids, size_t n, const kv_fault_t *f,
                          kv_status_t *st) {
  uint32_t *nodes = malloc((n ? n : 1) * sizeof *nodes);
  if (!nodes) return kv_status_set(st, KV_ENOMEM, "out of memory setting a fault");
  kv_err err = fault_check(ps, ids, n, f, nodes, st);
  /* Room for held calls first, so that a failure leaves every fault as it was. */
  for (size_t i = 0; i < n && err == KV_OK && fault_on(f); i++) {
    peer_t *p = &ps->peers[nodes[i]];
    pthread_mutex_lock(&p->lock);
    if (!p->held) p->held = calloc(HELD_ROOM, sizeof *p->held);
    if (!p->held) err = kv_status_set(st, KV_ENOMEM, "out of memory setting a fault");
    pthread_mutex_unlock(&p->lock);
  }
  for (size_t i = 0; i < n && err == KV_OK; i++) {
    peer_t *p = &ps->peers[nodes[i]];
    pthread_mutex_lock(&p->lock);
    bool changed = memcmp(&p->fault, f, sizeof *f) != 0;
    p->fault = *f;
    if (fault_on(f)) atomic_store(&ps->faulted, true);
    pthread_mutex_unlock(&p->lock);
    const char *id = ps->cfg->nodes[nodes[i]].id;
    if (changed && fault_on(f))
      KV_INFO("fault injection on calls to %s: delay %lld ms, jitter %lld ms, exponential "
              "%lld ms, drop %g%s", id, (long long)f->delay_ms, (long long)f->jitter_ms,
              (long long)f->exp_delay_ms, f->drop, f->both_ways ? ", both ways" : "");
    else if (changed)
      KV_INFO("fault injection on calls to %s cleared", id);
  }
  free(nodes);
  return err;
}

bool kv_peers_fault(kv_peers_t *ps, uint32_t node, kv_fault_t *out) {
  *out = (kv_fault_t){0, 0, 0, 0, false};
  if (node == ps->self) return false;
  peer_t *p = &ps->peers[node];
  pthread_mutex_lock(&p->lock);
  *out = p->fault;
  pthread_mutex_unlock(&p->lock);
  return fault_on(out);
}

/* ---- forwarded writes ------------------------------------------------------------------ */

static kv_err peer_forward(void *arg, uint32_t node, void *client_call, kv_op_t op,
                           const uint8_t *request, size_t request_bytes, uint32_t timeout_ms,
                           kv_status_t *st) {
  kv_peers_t *ps = arg;
  KV_ASSERT(node < ps->cfg->node_count && node != ps->self && op != KV_OP_GET);
  peer_t *p = &ps->peers[node];
  forward_t *f = calloc(1, sizeof *f);
  if (!f) return kv_status_set(st, KV_ENOMEM, "out of memory forwarding a request");
  f->kind = TAG_FORWARD;
  f->client_call = client_call;
  grpc_slice slice = grpc_slice_from_copied_buffer((const char *)request, request_bytes);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
  grpc_slice_unref(slice);
  /* The replica applies the request's own deadline; this one only bounds the relay. */
  pthread_mutex_lock(&p->lock);
  kv_err err = call_send(ps, p, &f->rpc, op == KV_OP_DELETE ? METHOD_DELETE : METHOD_PUT, bb,
                         timeout_ms + 1000, f, st);
  pthread_mutex_unlock(&p->lock);
  if (err != KV_OK) free(f);
  return err;
}

/* Relays the replica's answer, whatever it was, to the client. No lock held. */
static void forward_complete(kv_peers_t *ps, forward_t *f) {
  grpc_slice reply = grpc_empty_slice();
  grpc_byte_buffer_reader reader;
  unary_t *u = &f->rpc;
  if (u->status == GRPC_STATUS_OK && u->response &&
      grpc_byte_buffer_reader_init(&reader, u->response)) {
    reply = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
  }
  char *message = grpc_slice_to_c_string(u->details);
  ps->relay(f->client_call, (int)u->status, message, GRPC_SLICE_START_PTR(reply),
            GRPC_SLICE_LENGTH(reply));
  gpr_free(message);
  grpc_slice_unref(reply);
  grpc_slice_unref(u->details);
  if (u->response) grpc_byte_buffer_destroy(u->response);
  unary_end(u);
  free(f);
}

void kv_peers_transport(kv_peers_t *p, kv_coord_transport_t *tr) {
  *tr = (kv_coord_transport_t){.arg = p, .pack = peer_pack, .send_batch = peer_send_batch,
                               .discard = peer_discard, .forward = peer_forward};
}

/* ---- the thread --------------------------------------------------------------------- */

/* Under a both_ways fault, holds back the answer of batch b that just came, as if it
 * crossed the link back; faults_tick completes it. True when held. No lock held. */
static bool answer_hold(kv_peers_t *ps, batch_t *b) {
  peer_t *p = b->peer;
  pthread_mutex_lock(&p->lock);
  bool hold = p->fault.both_ways && b->rpc.status == GRPC_STATUS_OK && !atomic_load(&ps->stop);
  if (hold) {
    b->answer_held = true;
    b->answer_release_us = mono_us() + fault_delay(p) * 1000;
  }
  pthread_mutex_unlock(&p->lock);
  return hold;
}

/* Ends a call: its completion came on the queue, or it failed held. No lock held. */
static void call_done(kv_peers_t *ps, void *tag) {
  if (*(tag_kind_t *)tag == TAG_FORWARD) forward_complete(ps, tag);
  else if (!answer_hold(ps, tag)) batch_complete(ps, tag);
}

/* Starts held calls that are due at now_us and fails those past their deadline, every held
 * call once stopping (kv_peers_destroy makes them all overdue). */
static void faults_tick(kv_peers_t *ps, uint64_t now_us) {
  void *done[HELD_ROOM];
  for (uint32_t i = 0; i < ps->cfg->node_count; i++) {
    if (i == ps->self) continue;
    peer_t *p = &ps->peers[i];
    batch_t *answers[KV_PEER_WINDOW];
    uint32_t answer_count = 0;
    pthread_mutex_lock(&p->lock);
    uint32_t n = p->held_count ? held_sweep(ps, p, now_us, done) : 0;
    for (uint32_t k = 0; k < KV_PEER_WINDOW; k++) {
      batch_t *b = &p->batches[k];
      if (!b->answer_held || (now_us < b->answer_release_us && !atomic_load(&ps->stop)))
        continue;
      b->answer_held = false;
      answers[answer_count++] = b;
    }
    pthread_mutex_unlock(&p->lock);
    for (uint32_t k = 0; k < n; k++) call_done(ps, done[k]);
    for (uint32_t k = 0; k < answer_count; k++) batch_complete(ps, answers[k]);
  }
}

static void *peers_main(void *arg) {
  kv_peers_t *ps = arg;
  uint64_t next_tick = 0;
  gpr_timespec wait = gpr_time_from_millis(PEER_TICK_MS, GPR_TIMESPAN);
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(
        ps->cq, gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), wait), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) return NULL;
    if (ev.type == GRPC_OP_COMPLETE) {
      call_done(ps, ev.tag);
      /* Drain what has already arrived before judging anyone's silence: after this thread
       * was kept off the CPU, answers can be waiting that a heartbeat check would miss. */
      wait = gpr_time_0(GPR_TIMESPAN);
      continue;
    }
    bool faulted = atomic_load(&ps->faulted);
    wait = gpr_time_from_millis(faulted ? FAULT_TICK_MS : PEER_TICK_MS, GPR_TIMESPAN);
    uint64_t now = mono_ms();
    if (faulted && now < next_tick) faults_tick(ps, mono_us());
    if (now >= next_tick) {
      if (!atomic_load(&ps->stop)) {
        kv_driver_lock(ps->driver);
        kv_coord_on_tick(ps->coord, mono_us());
        kv_driver_unlock(ps->driver);
      }
      faults_tick(ps, mono_us());
      next_tick = now + PEER_TICK_MS;
    }
  }
}

/* ---- set-up --------------------------------------------------------------------------- */

/* A channel to peer i, with its methods registered on it. With tls, the peer's server
 * certificate must name its node id (the target name checked is the id, not the address),
 * and this node's certificate goes along as the client certificate that the peer's auth
 * checks (auth.h). */
static grpc_channel *peer_channel(kv_peers_t *ps, uint32_t i, void *method[METHOD_COUNT]) {
  const kv_node_conf_t *node = &ps->cfg->nodes[i];
  int max = ps->max_message_bytes > INT32_MAX ? INT32_MAX : (int)ps->max_message_bytes;
  /* Reconnect quickly (gRPC's default backoff grows to 2 minutes), so a restarted peer is
   * back in service within about a second. */
  grpc_arg args[6];
  memset(args, 0, sizeof args);
  const char *keys[5] = {GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
                         GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
                         GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, GRPC_ARG_MAX_RECONNECT_BACKOFF_MS};
  int values[5] = {max, max, 100, 100, 1000};
  for (int k = 0; k < 5; k++) {
    args[k].type = GRPC_ARG_INTEGER;
    args[k].key = (char *)keys[k];
    args[k].value.integer = values[k];
  }
  args[5].type = GRPC_ARG_STRING;
  args[5].key = (char *)GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
  args[5].value.string = (char *)node->id;
  grpc_channel_args channel_args = {ps->tls ? 6 : 5, args};
  grpc_channel_credentials *creds = ps->tls ? kv_tls_channel_credentials(ps->tls)
                                            : grpc_insecure_credentials_create();
  grpc_channel *ch = grpc_channel_create(node->address, creds, &channel_args);
  grpc_channel_credentials_release(creds);
  for (int m = 0; m < METHOD_COUNT; m++)
    method[m] = grpc_channel_register_call(ch, method_path[m], NULL, NULL);
  return ch;
}

kv_err kv_peers_create(const kv_config_t *cfg, uint32_t self, size_t max_message_bytes,
                       kv_tls_t *tls, kv_peers_t **out, kv_status_t *st) {
  kv_peers_t *ps = calloc(1, sizeof *ps);
  if (ps) ps->peers = calloc(cfg->node_count, sizeof *ps->peers);
  if (!ps || !ps->peers) {
    free(ps);
    return kv_status_set(st, KV_ENOMEM, "out of memory creating the peer connections");
  }
  ps->cfg = cfg;
  ps->self = self;
  ps->max_message_bytes = max_message_bytes;
  ps->tls = tls;
  ps->cq = grpc_completion_queue_create_for_next(NULL);
  for (uint32_t i = 0; i < cfg->node_count; i++) {
    if (i == self) continue;
    peer_t *p = &ps->peers[i];
    p->node = i;
    for (uint32_t k = 0; k < KV_PEER_WINDOW; k++)
      p->batches[k] = (batch_t){.kind = TAG_BATCH, .peer = p, .slot = k};
    pthread_mutex_init(&p->lock, NULL);
    p->channel = peer_channel(ps, i, p->method);
    p->rng = mono_us() * 0x9e3779b97f4a7c15ull + i;
  }
  *out = ps;
  return KV_OK;
}

void kv_peers_reload_tls(kv_peers_t *ps) {
  if (!ps->tls) return;
  for (uint32_t i = 0; i < ps->cfg->node_count; i++) {
    if (i == ps->self) continue;
    peer_t *p = &ps->peers[i];
    void *method[METHOD_COUNT];
    grpc_channel *fresh = peer_channel(ps, i, method);
    pthread_mutex_lock(&p->lock);
    grpc_channel *old = p->channel;
    p->channel = fresh;
    memcpy(p->method, method, sizeof method);
    pthread_mutex_unlock(&p->lock);
    /* Not a cancel: the calls already on old hold it until they end (gRPC core's destroy
     * drops this module's reference only). */
    grpc_channel_destroy(old);
  }
}

void kv_peers_watch_clocks(kv_peers_t *ps, kv_node_t *node) { ps->clock_node = node; }

void kv_peers_run(kv_peers_t *ps, kv_coord_t *coord, kv_driver_t *driver,
                  kv_forward_reply_fn relay) {
  ps->coord = coord;
  ps->driver = driver;
  ps->relay = relay;
  ps->running = true;
  pthread_create(&ps->thread, NULL, peers_main, ps);
}

void kv_peers_destroy(kv_peers_t *ps) {
  if (!ps) return;
  atomic_store(&ps->stop, true);
  for (uint32_t i = 0; i < ps->cfg->node_count; i++) {
    if (i == ps->self) continue;
    peer_t *p = &ps->peers[i];
    pthread_mutex_lock(&p->lock);
    for (uint32_t k = 0; k < KV_PEER_WINDOW; k++)
      if (p->batches[k].in_flight && p->batches[k].rpc.call)
        grpc_call_cancel(p->batches[k].rpc.call, NULL);
    for (uint32_t k = 0; k < p->held_count; k++) p->held[k].deadline_us = 0;
    pthread_mutex_unlock(&p->lock);
  }
  /* The thread finishes the cancelled batches and fails the held calls (answering their
   * messages as failed), then sees the queue shut down. */
  bool busy = true;
  while (busy && ps->running) {
    busy = false;
    for (uint32_t i = 0; i < ps->cfg->node_count; i++) {
      if (i == ps->self) continue;
      peer_t *p = &ps->peers[i];
      pthread_mutex_lock(&p->lock);
      busy |= p->held_count > 0;
      for (uint32_t k = 0; k < KV_PEER_WINDOW; k++) busy |= p->batches[k].in_flight;
      pthread_mutex_unlock(&p->lock);
    }
    if (busy) {
      struct timespec pause = {0, 1000000};
      nanosleep(&pause, NULL);
    }
  }
  grpc_completion_queue_shutdown(ps->cq);
  if (ps->running) pthread_join(ps->thread, NULL);
  grpc_completion_queue_destroy(ps->cq);
  for (uint32_t i = 0; i < ps->cfg->node_count; i++) {
    if (i == ps->self) continue;
    peer_t *p = &ps->peers[i];
    free(p->held);
    grpc_channel_destroy(p->channel);
    pthread_mutex_destroy(&p->lock);
  }
  free(ps->peers);
  free(ps);
}
