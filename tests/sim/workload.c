/* workload.c: simulated clients, their calls into the coordinators, and the history
 * (workload.h).
 *
 * A call id (1-based index into wl->calls) is what the coordinator is given as its opaque
 * `call`; it outlives the call, so an answer for a call that already ended (timed out, or
 * the forwarding node crashed) is recognised and dropped. A write sent to a node that is
 * not its replica is forwarded by the coordinator through the transport (MSG_FORWARD); the
 * node it reaches coordinates it under a relay call whose answer travels back
 * (MSG_FORWARD_REPLY) to the node the client is waiting on. */
#include "workload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "log.h"

#define CLIENT_TIMEOUT_SLACK_US 500000u /* past the request's own timeout */
#define THINK_US_MAX 20000u
#define BACKOFF_US_MIN 50000u
#define REQUEST_TIMEOUT_MS 1000u

static void *grow(void *p, uint32_t *cap, size_t size) {
  *cap = *cap ? *cap * 2 : 256;
  p = realloc(p, *cap * size);
  KV_ASSERT(p != NULL);
  return p;
}

static uint8_t *dup_bytes(const void *p, size_t n) {
  uint8_t *d = malloc(n ? n : 1);
  KV_ASSERT(d != NULL);
  if (n) memcpy(d, p, n);
  return d;
}

static uint64_t call_new(struct workload *wl, call_t c) {
  if (wl->call_count == wl->call_cap) wl->calls = grow(wl->calls, &wl->call_cap, sizeof *wl->calls);
  wl->calls[wl->call_count++] = c;
  return wl->call_count;
}

static call_t *call_get(struct workload *wl, uint64_t id) {
  KV_ASSERT(id >= 1 && id <= wl->call_count);
  return &wl->calls[id - 1];
}

/* The request the coordinator is handed for an operation; pointers into op. */
static kv_node_req_t op_request(const op_t *op) {
  size_t key_bytes;
  const uint8_t *key = sim_key(op->key, &key_bytes);
  return (kv_node_req_t){.keyspace = SIM_KEYSPACE, .key = key, .key_bytes = key_bytes,
                         .value = (const uint8_t *)op->value,
                         .value_bytes = op->op == KV_OP_PUT ? strlen(op->value) : 0,
                         .context = op->ctx_bytes, .context_bytes = op->ctx_len,
                         .level = op->level, .count = op->count, .primaries = op->primaries,
                         .durable = op->durable, .timeout_ms = REQUEST_TIMEOUT_MS,
                         .read_repair = op->read_repair};
}

static sim_result_t result_from(const kv_status_t *st, const kv_node_result_t *res) {
  sim_result_t r = {.code = st->code};
  if (st->code != KV_OK) return r;
  r.found = res->found;
  KV_ASSERT(kv_dvv_copy(&r.object, &res->object) == KV_OK);
  r.context = dup_bytes(res->context, res->context_bytes);
  r.context_bytes = res->context_bytes;
  return r;
}

/* ---- how an operation ends ---------------------------------------------------------- */

/* The next operation after a think time; after an UNAVAILABLE the client backs off, as a
 * real one would, so an outage does not burn through its operations in a few milliseconds. */
static void client_next(world_t *w, uint32_t client, bool back_off) {
  uint64_t wait =
      back_off ? BACKOFF_US_MIN + sim_below(BACKOFF_US_MIN * 4) : sim_below(THINK_US_MAX);
  world_schedule(w, w->now_us + wait, EV_CLIENT, client, 0, 0, NULL);
}

/* Whether a sibling's value holds member (a line of it): set-union answers are unions. */
static bool holds_member(const kv_sibling_t *s, const char *member) {
  size_t len = strlen(member);
  const uint8_t *p = s->value, *end = s->value + s->value_bytes;
  while (p && p < end) {
    const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
    const uint8_t *stop = nl ? nl : end;
    if ((size_t)(stop - p) == len && memcmp(p, member, len) == 0) return true;
    p = stop + 1;
  }
  return false;
}

/* A delete without a context: the dots its answer shows (live siblings only), which its
 * tombstone does not cover (check.c). */
static void op_keep_live_dots(op_t *op, const kv_dvv_t *answer) {
  op->live = malloc((answer->sib_count ? answer->sib_count : 1) * sizeof *op->live);
  KV_ASSERT(op->live != NULL);
  for (uint32_t i = 0; i < answer->sib_count; i++) op->live[op->live_count++] = answer->sib[i].dot;
}

static void op_record_answer(world_t *w, op_t *op, const sim_result_t *r) {
  client_t *cl = &w->wl->clients[op->client];
  /* A merged answer (set-union) is no stored version: its dot names another value. Stored
   * records are checked for dots_unique when scanned. */
  if (strcmp(w->handler, "set-union") != 0) check_answer_dots(w, op->key, &r->object);
  op->siblings = kv_dvv_live_count(&r->object);
  op->seen = malloc(sizeof *op->seen);
  KV_ASSERT(op->seen != NULL);
  kv_status_t st;
  if (kv_cc_decode(r->context, r->context_bytes, op->seen, &st) != KV_OK)
    world_fail(w, "an answer's context does not decode: %s", st.msg);
  free(cl->ctx[op->key]);
  cl->ctx[op->key] = dup_bytes(r->context, r->context_bytes);
  cl->ctx_len[op->key] = r->context_bytes;
  if (op->op == KV_OP_PUT) {
    for (uint32_t i = 0; i < r->object.sib_count; i++) {
      const kv_sibling_t *s = &r->object.sib[i];
      if (!s->tombstone && holds_member(s, op->value)) {
        op->has_dot = true;
        op->dot = s->dot;
      }
    }
    if (!op->has_dot)
      world_fail(w, "put %s of k%u was acknowledged without its version in the answer",
                 op->value, op->key);
    else if (op->durable)
      check_durable(w, op);
  }
  if (op->op == KV_OP_DELETE && !op->ctx) op_keep_live_dots(op, &r->object);
  if (op->op == KV_OP_GET) check_read(w, op);
}

/* The client learns how its call ended (r NULL: it gave up waiting). */
static void client_done(world_t *w, uint64_t call_id, const sim_result_t *r) {
  struct workload *wl = w->wl;
  call_t *c = call_get(wl, call_id);
  if (c->done) return;
  c->done = true;
  op_t *op = &wl->ops[c->op];
  op->end_us = w->now_us;
  if (!r) op->outcome = OUT_UNKNOWN;
  else if (r->code == KV_OK) op->outcome = OUT_OK;
  else op->outcome = OUT_FAIL;
  op->code = r ? r->code : KV_ETIMEDOUT;
  world_trace(w, (uint64_t)op->outcome << 32 | (uint32_t)op->code);
  if (op->outcome == OUT_OK) {
    op_record_answer(w, op, r);
    world_trace(w, op->siblings);
  }
  if (op->final) {
    if (op->outcome == OUT_OK) {
      KV_ASSERT(kv_dvv_copy(&wl->final[op->key], &r->object) == KV_OK);
      wl->final_read[op->key] = true;
    }
    return;
  }
  client_next(w, op->client, op->code == KV_EUNAVAILABLE);
}

/* A relay's answer (taken over) goes back to the node that forwarded the request. */
static void relay_back(world_t *w, call_t *c, sim_result_t r) {
  c->done = true;
  msg_t *m = msg_new(MSG_FORWARD_REPLY, c->at, c->origin);
  m->id = c->origin_call;
  m->to_life = c->origin_life;
  m->result = r;
  world_send(w, m);
}

void workload_reply(void *call, const kv_status_t *st, const kv_node_result_t *res) {
  world_t *w = sim_world;
  uint64_t id = (uint64_t)(uintptr_t)call;
  call_t *c = call_get(w->wl, id);
  sim_result_t r = result_from(st, res);
  if (c->kind == CALL_CLIENT) {
    client_done(w, id, &r);
    sim_result_free(&r);
    return;
  }
  relay_back(w, c, r);
}

/* Whether node, coordinating op now, may put fallbacks in its targets: sloppy quorum is on
 * and node believes a primary of the key dead (coordinator/coord.c plans the same way). */
static bool op_sloppy_at(const world_t *w, const op_t *op, uint32_t node) {
  const kv_keyspace_conf_t *ks = kv_config_keyspace(&w->cfg, SIM_KEYSPACE);
  if (!ks->sloppy_quorum) return false;
  size_t key_bytes;
  const uint8_t *key = sim_key(op->key, &key_bytes);
  kv_preflist_t pl;
  kv_ring_preflist(world_ring(w, node), ks, kv_hash_partition(kv_hash_key(SIM_KEYSPACE, key, key_bytes),
                                                   w->cfg.partitions), &pl);
  for (uint32_t i = 0; i < pl.primary_count; i++)
    if (!world_believes_alive(w, node, pl.node[i])) return true;
  return false;
}

void workload_forwarded(world_t *w, uint32_t from, uint32_t node, uint64_t call_id) {
  struct workload *wl = w->wl;
  call_t *origin = call_get(wl, call_id);
  op_t *op = &wl->ops[origin->op];
  op->coordinator = node;
  op->sloppy |= op_sloppy_at(w, op, node);
  uint64_t relay = call_new(wl, (call_t){.kind = CALL_RELAY, .op = origin->op, .at = node,
                                         .origin = from, .origin_life = w->nodes[from].life,
                                         .origin_call = call_id});
  kv_node_req_t req = op_request(op);
  kv_coord_on_client(w->nodes[node].coord, (void *)(uintptr_t)relay, op->op, &req, w->now_us,
                   world_wall_ms(w, node));
}

void workload_forward_reply(world_t *w, uint64_t call_id, sim_result_t *res) {
  call_t *c = call_get(w->wl, call_id);
  if (c->kind == CALL_CLIENT) {
    client_done(w, call_id, res);
    return;
  }
  /* A relay that was forwarded again (while the ring moves, the node it reached may hold a
   * newer ring in which it is no primary): the answer goes on back, once. */
  if (c->done) return;
  sim_result_t r = *res;
  res->code = KV_EINTERNAL; /* moved out: the message frees nothing of it */
  res->context = NULL;
  relay_back(w, c, r);
}

/* ---- starting operations ------------------------------------------------------------ */

/* The acks (answers) each level needs of N = 3 ("" is QUORUM). With two regions (a: 1, b: 2
 * replicas), LOCAL_QUORUM needs 1 or 2 by the coordinator's region, which forwarding may
 * change: the checkers take 1, the fewer; EACH_QUORUM needs all three. */
static const char *const levels[] = {"", "ONE", "TWO", "QUORUM", "ALL", "LOCAL_QUORUM",
                                     "EACH_QUORUM"};
static const uint32_t level_needs[] = {2, 1, 2, 2, 3, 1, 3};
#define LEVELS_ONE_REGION 5u

static void op_choose_level(const world_t *w, op_t *op) {
  uint32_t l = (uint32_t)sim_below(w->regions ? sizeof levels / sizeof levels[0]
                                              : LEVELS_ONE_REGION);
  snprintf(op->level, sizeof op->level, "%s", levels[l]);
  op->needed = level_needs[l];
  if (sim_chance(0.2)) op->needed = op->count = 1 + (uint32_t)sim_below(SIM_N);
  if (sim_chance(0.2)) op->primaries = 1 + (uint32_t)sim_below(op->needed);
}

static void client_start(world_t *w, uint32_t ci) {
  struct workload *wl = w->wl;
  client_t *cl = &wl->clients[ci];
  if (cl->ops_left == 0) {
    wl->clients_done++;
    return;
  }
  cl->ops_left--;
  if (wl->op_count == wl->op_cap) wl->ops = grow(wl->ops, &wl->op_cap, sizeof *wl->ops);
  uint32_t index = wl->op_count++;
  op_t *op = &wl->ops[index];
  memset(op, 0, sizeof *op);
  uint64_t roll = sim_below(100);
  op->op = roll < 45 ? KV_OP_PUT : roll < 85 ? KV_OP_GET : KV_OP_DELETE;
  op->client = ci;
  op->key = (uint32_t)sim_below(wl->key_count);
  op->node = op->coordinator = (uint32_t)sim_below(w->node_count);
  op->start_us = w->now_us;
  op->durable = op->op != KV_OP_GET && sim_chance(0.3);
  op_choose_level(w, op);
  static const char *const repairs[] = {"", "blocking", "async"};
  op->read_repair = repairs[sim_below(3)];
  op->repair_blocking = op->read_repair[0] ? op->read_repair[1] == 'l' : op->needed * 2 > SIM_N;
  if (op->op == KV_OP_PUT) snprintf(op->value, sizeof op->value, "c%u.%u", ci, index);
  /* Three deletes in ten go without a context (the coordinator reads, then deletes what it
   * read); the rest, and seven puts in ten, carry the last context the client saw. An empty
   * one (a read that found nothing) is no context: the coordinator tells them apart by
   * length, so the checkers must see such a delete as one without a context too. */
  bool with_ctx = op->op == KV_OP_DELETE ? !sim_chance(0.3) : op->op == KV_OP_PUT && sim_chance(0.7);
  if (with_ctx && cl->ctx[op->key] && cl->ctx_len[op->key] > 0) {
    op->ctx_bytes = dup_bytes(cl->ctx[op->key], cl->ctx_len[op->key]);
    op->ctx_len = cl->ctx_len[op->key];
    op->ctx = malloc(sizeof *op->ctx);
    kv_status_t st;
    KV_ASSERT(op->ctx && kv_cc_decode(op->ctx_bytes, op->ctx_len, op->ctx, &st) == KV_OK);
  }
  world_trace(w, (uint64_t)op->op << 48 | (uint64_t)op->key << 32 | op->node);
  uint64_t id = call_new(wl, (call_t){.kind = CALL_CLIENT, .op = index});
  sim_node_t *n = &w->nodes[op->node];
  if (!n->up) { /* connection refused */
    sim_result_t r = {.code = KV_EUNAVAILABLE};
    client_done(w, id, &r);
    return;
  }
  for (uint32_t i = 0; i < w->node_count; i++) {
    if (!w->nodes[i].up) continue;
    uint32_t in_flight = kv_coord_in_flight(w->nodes[i].coord);
    if (in_flight > wl->max_in_flight) wl->max_in_flight = in_flight;
  }
  world_schedule(w, w->now_us + REQUEST_TIMEOUT_MS * 1000ull + CLIENT_TIMEOUT_SLACK_US,
                 EV_CLIENT_TIMEOUT, ci, id, 0, NULL);
  op->sloppy = op_sloppy_at(w, op, op->node);
  kv_node_req_t req = op_request(op);
  kv_coord_on_client(n->coord, (void *)(uintptr_t)id, op->op, &req, w->now_us,
                   world_wall_ms(w, op->node));
}

void workload_event(world_t *w, const event_t *ev) {
  if (ev->type == EV_CLIENT) client_start(w, ev->node);
  else client_done(w, ev->a, NULL);
}

/* ---- set-up and the settled reads --------------------------------------------------- */

void workload_init(world_t *w, uint32_t ops) {
  struct workload *wl = calloc(1, sizeof *wl);
  KV_ASSERT(wl != NULL);
  w->wl = wl;
  wl->client_count = 2 + (uint32_t)sim_below(SIM_CLIENTS_MAX - 1);
  wl->key_count = 1 + (uint32_t)sim_below(SIM_KEYS_MAX / 2);
  for (uint32_t i = 0; i < wl->client_count; i++) {
    wl->clients[i].ops_left = ops / wl->client_count + (i < ops % wl->client_count);
    client_next(w, i, false);
  }
}

bool workload_finished(const world_t *w) {
  return w->wl->clients_done == w->wl->client_count;
}

bool workload_final_reads(world_t *w, uint32_t node) {
  struct workload *wl = w->wl;
  for (uint32_t k = 0; k < wl->key_count; k++) {
    bool answered = false;
    for (uint32_t attempt = 0; attempt < 20 && !answered; attempt++) {
      if (wl->op_count == wl->op_cap) wl->ops = grow(wl->ops, &wl->op_cap, sizeof *wl->ops);
      uint32_t index = wl->op_count++;
      op_t *op = &wl->ops[index];
      memset(op, 0, sizeof *op);
      *op = (op_t){.op = KV_OP_GET, .key = k, .node = node, .needed = SIM_N,
                   .read_repair = "", .repair_blocking = true, .start_us = w->now_us,
                   .final = true};
      snprintf(op->level, sizeof op->level, "ALL");
      uint64_t id = call_new(wl, (call_t){.kind = CALL_CLIENT, .op = index});
      kv_node_req_t req = op_request(op);
      kv_coord_on_client(w->nodes[node].coord, (void *)(uintptr_t)id, KV_OP_GET, &req,
                       w->now_us, world_wall_ms(w, node));
      world_run_until(w, w->now_us + REQUEST_TIMEOUT_MS * 1000ull + 100000);
      answered = wl->ops[index].outcome == OUT_OK;
    }
    if (!answered) {
      world_fail(w, "the settled ALL read of k%u failed 20 times (last: %s)", k,
                 kv_err_name(wl->ops[wl->op_count - 1].code));
      return false;
    }
  }
  return true;
}

void workload_deinit(world_t *w) {
  struct workload *wl = w->wl;
  for (uint32_t i = 0; i < wl->op_count; i++) {
    free(wl->ops[i].ctx_bytes);
    free(wl->ops[i].ctx);
    free(wl->ops[i].seen);
    free(wl->ops[i].live);
  }
  for (uint32_t i = 0; i < wl->client_count; i++)
    for (uint32_t k = 0; k < SIM_KEYS_MAX; k++) free(wl->clients[i].ctx[k]);
  for (uint32_t k = 0; k < wl->key_count; k++)
    if (wl->final_read[k]) kv_dvv_deinit(&wl->final[k]);
  free(wl->ops);
  free(wl->calls);
  free(wl->dots);
  free(wl);
  w->wl = NULL;
}
