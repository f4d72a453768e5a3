/* fixture_cluster.c: real cores on memory disks, their messages carried by the test (see
 * fixture_cluster.h). */
#include "fixture_cluster.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aae.h"
#include "dvv.h"

#define FX_RUN_STEPS_MAX 100000u /* fx_run's bound: a loop of messages is a bug */

static fx_cluster_t *fx_current; /* for the reply callback */

static void *dup_or_null(const void *p, size_t bytes) {
  if (!p) return NULL;
  void *d = malloc(bytes ? bytes : 1);
  ck_assert_ptr_nonnull(d);
  if (bytes) memcpy(d, p, bytes);
  return d;
}

/* ---- the transport -------------------------------------------------------------------- */

static bool fx_alive(void *arg, uint32_t node) {
  fx_node_t *n = arg;
  ck_assert_uint_lt(node, n->cluster->cfg.node_count);
  return !n->cluster->down[node];
}

static kv_err fx_send(void *arg, uint32_t node, const kv_msg_t *m, kv_status_t *st) {
  fx_node_t *n = arg;
  fx_cluster_t *c = n->cluster;
  ck_assert_uint_lt(node, c->cfg.node_count);
  ck_assert_msg(node != n->index, "node %u sent a message to itself", n->index);
  ck_assert_msg(m->relay_count == 0, "the fixture has one region: no forwarders");
  if (c->full[node])
    return kv_status_set(st, KV_EBUSY, "queue to the peer is full; retry later");
  ck_assert_uint_lt(c->count, FX_MSGS_MAX);
  fx_msg_t *q = &c->queue[(c->head + c->count++) % FX_MSGS_MAX];
  *q = (fx_msg_t){.from = n->index, .to = node, .from_life = n->life, .m = *m};
  q->m.keyspace = m->keyspace ? strdup(m->keyspace) : NULL;
  q->m.key = dup_or_null(m->key, m->key_bytes);
  q->m.rec = dup_or_null(m->rec, m->rec_bytes);
  q->m.relay = NULL;
  q->m.tree.keyspace = m->tree.keyspace ? strdup(m->tree.keyspace) : NULL;
  q->m.tree.partitions =
      dup_or_null(m->tree.partitions, m->tree.partition_count * sizeof *m->tree.partitions);
  q->m.tree.segments =
      dup_or_null(m->tree.segments, m->tree.segment_count * sizeof *m->tree.segments);
  c->sent[m->kind]++;
  if (m->kind == KV_MSG_TREE) c->trees[m->tree.kind]++;
  return KV_OK;
}

/* The transport's pack: the message goes in the queue at once, and the item carries
 * nothing; no batch ever starts (fx_send_batch), as messages move one by one when the test
 * says. */
static kv_err fx_pack(void *arg, uint32_t node, const kv_msg_t *m, kv_link_item_t *out,
                      kv_status_t *st) {
  *out = (kv_link_item_t){.id = m->id};
  return fx_send(arg, node, m, st);
}

static bool fx_send_batch(void *arg, uint32_t node, uint32_t slot, const kv_link_item_t *items,
                          uint32_t count, uint32_t deadline_ms) {
  return false;
}

static void fx_discard(void *arg, kv_link_item_t *item) { ck_assert_ptr_null(item->data); }

static kv_err fx_forward(void *arg, uint32_t node, void *call, kv_op_t op,
                         const uint8_t *request, size_t request_bytes, uint32_t timeout_ms,
                         kv_status_t *st) {
  ck_abort_msg("every node replicates every key here: nothing is forwarded");
  return KV_EINVAL;
}

static void fx_no_relay(void *arg, const kv_relay_outcome_t *outcomes, uint32_t count) {
  ck_abort_msg("a relay ended that no message asked for");
}

void fx_msg_free(fx_msg_t *q) {
  if (!q) return;
  free((void *)q->m.keyspace);
  free((void *)q->m.key);
  free((void *)q->m.rec);
  free((void *)q->m.tree.keyspace);
  free((void *)q->m.tree.partitions);
  free((void *)q->m.tree.segments);
  free(q);
}

fx_msg_t *fx_take(fx_cluster_t *c) {
  if (c->count == 0) return NULL;
  fx_msg_t *q = malloc(sizeof *q);
  ck_assert_ptr_nonnull(q);
  *q = c->queue[c->head];
  c->head = (c->head + 1) % FX_MSGS_MAX;
  c->count--;
  return q;
}

uint32_t fx_drop_to(fx_cluster_t *c, uint32_t to) {
  uint32_t dropped = 0, kept = c->count;
  for (uint32_t k = 0; k < kept; k++) {
    fx_msg_t *q = fx_take(c);
    if (q->to == to) {
      dropped++;
      fx_msg_free(q);
      continue;
    }
    c->queue[(c->head + c->count++) % FX_MSGS_MAX] = *q;
    free(q);
  }
  return dropped;
}

/* The answer to q, to its sender's process if that is still the one that asked. */
static void fx_answer(fx_cluster_t *c, const fx_msg_t *q, const kv_msg_answer_t *a,
                      uint64_t now_us) {
  fx_node_t *from = &c->nodes[q->from];
  if (!from->up || from->life != q->from_life) return;
  ck_assert_ptr_nonnull(from->coord);
  kv_coord_on_peer_reply(from->coord, a, now_us);
}

void fx_deliver(fx_cluster_t *c, fx_msg_t *q, uint64_t now_us) {
  fx_node_t *to = &c->nodes[q->to];
  if (!to->up || c->down[q->to]) {
    kv_msg_answer_t a = {.id = q->m.id, .code = KV_EUNAVAILABLE};
    fx_answer(c, q, &a, now_us);
    fx_msg_free(q);
    return;
  }
  ck_assert_msg(to->coord != NULL, "a bare node cannot answer messages: take them by hand");
  kv_peer_result_t r;
  kv_coord_on_peer_request(to->coord, &q->m, now_us, FX_WALL_MS + now_us / 1000, fx_no_relay,
                           NULL, &r);
  ck_assert(!r.relaying);
  if (r.after_sync) fx_sync(c, q->to, now_us);
  kv_msg_answer_t a = {.id = q->m.id, .code = r.code, .rec = r.rec, .rec_bytes = r.rec_bytes,
                       .applied_ms = r.applied_ms,
                       .tree = r.code == KV_OK && q->m.kind == KV_MSG_TREE ? &r.tree : NULL};
  fx_answer(c, q, &a, now_us);
  kv_peer_result_deinit(&r);
  fx_msg_free(q);
}

bool fx_step(fx_cluster_t *c, uint64_t now_us) {
  fx_msg_t *q = fx_take(c);
  if (!q) return false;
  fx_deliver(c, q, now_us);
  return true;
}

uint32_t fx_run(fx_cluster_t *c, uint64_t now_us) {
  uint32_t delivered = 0;
  for (uint32_t steps = 0;; steps++) {
    ck_assert_uint_lt(steps, FX_RUN_STEPS_MAX);
    if (fx_step(c, now_us)) {
      delivered++;
      continue;
    }
    bool synced = false;
    for (uint32_t i = 0; i < c->cfg.node_count; i++) {
      if (c->nodes[i].up && c->nodes[i].sync_wanted) {
        fx_sync(c, i, now_us);
        synced = true;
      }
    }
    if (!synced) return delivered;
  }
}

/* ---- group commit ----------------------------------------------------------------------- */

static void fx_sync_wanted(void *arg) {
  fx_node_t *n = arg;
  n->sync_wanted = true;
}

void fx_sync(fx_cluster_t *c, uint32_t i, uint64_t now_us) {
  fx_node_t *n = &c->nodes[i];
  ck_assert(n->up);
  n->sync_wanted = false;
  kv_sync_waiter_t *batch = kv_syncer_take(&n->syncer);
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_int_eq(kv_node_sync(n->node, &st), KV_OK);
  kv_syncer_done(batch, &st, now_us);
}

/* ---- nodes ------------------------------------------------------------------------------ */

void fx_config(fx_cluster_t *c, uint32_t nodes) {
  ck_assert_uint_le(nodes, FX_NODES_MAX);
  memset(c, 0, sizeof *c);
  kv_config_t *cfg = &c->cfg;
  snprintf(cfg->path, sizeof cfg->path, "test.yaml");
  snprintf(cfg->cluster_name, sizeof cfg->cluster_name, "unit");
  cfg->partitions = 16;
  cfg->node_count = nodes;
  for (uint32_t i = 0; i < nodes; i++) {
    kv_node_conf_t *n = &cfg->nodes[i];
    snprintf(n->id, sizeof n->id, "n%u", i + 1);
    snprintf(n->address, sizeof n->address, "127.0.0.1:%u", 7001 + i);
    snprintf(n->region, sizeof n->region, "local");
    snprintf(n->rack, sizeof n->rack, "r%u", i + 1);
  }
  cfg->keyspace_count = 1;
  kv_keyspace_conf_t *ks = &cfg->keyspaces[0];
  snprintf(ks->name, sizeof ks->name, FX_KEYSPACE);
  ks->replication_count = 1;
  snprintf(ks->replication[0].region, sizeof ks->replication[0].region, "local");
  ks->replication[0].replicas = 3;
  ks->n = 3;
  ks->read = ks->write = KV_LEVEL_QUORUM;
  snprintf(ks->handler, sizeof ks->handler, "siblings");
  snprintf(ks->fallback_handler, sizeof ks->fallback_handler, "lww");
  ks->siblings_max = 16;
  ks->key_bytes_max = KV_KEY_BYTES_DEFAULT;
  ks->value_bytes_max = KV_VALUE_BYTES_DEFAULT;
}

static void fx_reply_fn(void *call, const kv_status_t *st, const kv_node_result_t *res);

static void fx_removed(void *arg, const void *key, size_t key_bytes) {
  ((fx_node_t *)arg)->removed++;
}

void fx_open(fx_cluster_t *c, uint32_t i) {
  fx_node_t *n = &c->nodes[i];
  ck_assert(!n->up);
  n->cluster = c;
  n->index = i;
  n->life++;
  char disk[16];
  snprintf(disk, sizeof disk, "n%u", i + 1);
  /* A new incarnation per process, as store.c makes after an unclean end. */
  n->store = sim_store_open(disk, (uint64_t)(i + 1) << 32 | n->life);
  sim_store_on_remove(n->store, fx_removed, n);
  sim_store_storage(n->store, &n->storage);
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_int_eq(kv_node_create(&c->cfg, c->cfg.nodes[i].id, &n->storage, &n->node, &st),
                   KV_OK);
  kv_syncer_init(&n->syncer, fx_sync_wanted, n);
  n->sync_wanted = false;
  n->out = (kv_msg_out_t){.arg = n, .alive = fx_alive, .send = fx_send};
  n->tr = (kv_coord_transport_t){.arg = n, .alive = fx_alive, .pack = fx_pack,
                                 .send_batch = fx_send_batch, .discard = fx_discard,
                                 .forward = fx_forward};
  n->coord = NULL;
  if (!c->bare)
    ck_assert_int_eq(kv_coord_create(n->node, &c->ring, &n->syncer, &n->tr, fx_reply_fn, &c->opts,
                                     &n->coord, &st), KV_OK);
  n->up = true;
}

void fx_start(fx_cluster_t *c, bool bare, const kv_coord_opts_t *opts) {
  kv_coord_opts_t defaults = KV_COORD_OPTS_DEFAULT;
  c->bare = bare;
  c->opts = opts ? *opts : defaults;
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_int_eq(c->members ? kv_ring_init_members(&c->ring, &c->cfg, c->members, &st)
                              : kv_ring_init(&c->ring, &c->cfg, &st), KV_OK);
  fx_current = c;
  for (uint32_t i = 0; i < c->cfg.node_count; i++) fx_open(c, i);
}

void fx_crash(fx_cluster_t *c, uint32_t i, bool power_loss) {
  fx_node_t *n = &c->nodes[i];
  ck_assert(n->up);
  /* The waiters live in the coordinator's requests, which die with the process. */
  (void)kv_syncer_take(&n->syncer);
  kv_coord_destroy(n->coord);
  kv_node_destroy(n->node);
  sim_store_crash(n->store, power_loss);
  n->coord = NULL;
  n->node = NULL;
  n->store = NULL;
  n->up = false;
}

void fx_stop(fx_cluster_t *c) {
  for (uint32_t i = 0; i < c->cfg.node_count; i++)
    if (c->nodes[i].up) fx_crash(c, i, false);
  fx_msg_t *q;
  while ((q = fx_take(c)) != NULL) fx_msg_free(q);
  for (uint32_t i = 0; i < c->reply_count && i < FX_REPLIES_MAX; i++)
    free(c->replies[i].context);
  c->reply_count = 0;
  sim_disks_reset();
  fx_current = NULL;
}

/* ---- clients ---------------------------------------------------------------------------- */

/* The coordinators' reply callback: one cluster at a time, so fx_current. */
static void fx_reply_fn(void *call, const kv_status_t *st, const kv_node_result_t *res) {
  fx_cluster_t *c = fx_current;
  ck_assert_ptr_nonnull(c);
  ck_assert_uint_lt(c->reply_count, FX_REPLIES_MAX);
  fx_reply_t *r = &c->replies[c->reply_count++];
  memset(r, 0, sizeof *r);
  r->call = call;
  r->code = st->code;
  if (res) {
    r->found = res->found;
    r->sib_count = res->object.sib_count;
    r->context = dup_or_null(res->context, res->context_bytes);
    r->context_bytes = res->context_bytes;
  }
}

void fx_client(fx_cluster_t *c, uint32_t i, void *call, kv_op_t op, const char *key,
               const char *value, const uint8_t *ctx, size_t ctx_bytes, uint64_t now_us) {
  ck_assert(c->nodes[i].up && c->nodes[i].coord);
  kv_node_req_t r = {.keyspace = FX_KEYSPACE, .key = (const uint8_t *)key,
                     .key_bytes = strlen(key), .level = "", .context = ctx,
                     .context_bytes = ctx_bytes, .read_repair = "async"};
  if (value) {
    r.value = (const uint8_t *)value;
    r.value_bytes = strlen(value);
  }
  kv_coord_on_client(c->nodes[i].coord, call, op, &r, now_us, FX_WALL_MS + now_us / 1000);
}

const fx_reply_t *fx_reply(fx_cluster_t *c, void *call) {
  ck_assert_uint_gt(c->reply_count, 0);
  const fx_reply_t *r = &c->replies[c->reply_count - 1];
  ck_assert_ptr_eq(r->call, call);
  return r;
}

/* ---- looking at replicas ---------------------------------------------------------------- */

void fx_local_put(fx_cluster_t *c, uint32_t i, const char *key, const char *value,
                  uint8_t **rec, size_t *rec_bytes) {
  kv_node_t *node = c->nodes[i].node;
  kv_node_req_t r = {.keyspace = FX_KEYSPACE, .key = (const uint8_t *)key,
                     .key_bytes = strlen(key), .value = (const uint8_t *)value,
                     .value_bytes = strlen(value), .level = ""};
  kv_node_plan_t plan;
  kv_node_result_t res;
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_int_eq(kv_node_plan(node, &r, true, &plan, &st), KV_OK);
  ck_assert_int_eq(kv_node_put(node, &r, &plan, FX_WALL_MS, &res, &st), KV_OK);
  if (rec) {
    *rec = res.record;
    *rec_bytes = res.record_bytes;
    res.record = NULL;
  }
  kv_node_result_free(&res);
}

uint8_t *fx_record(fx_cluster_t *c, uint32_t i, const char *key, size_t *rec_bytes) {
  uint8_t *rec;
  kv_status_t st;
  kv_status_clear(&st);
  ck_assert_int_eq(kv_node_read_record(c->nodes[i].node, FX_KEYSPACE, (const uint8_t *)key,
                                       strlen(key), &rec, rec_bytes, &st), KV_OK);
  return rec;
}

bool fx_same_record(fx_cluster_t *c, uint32_t a, uint32_t b, const char *key) {
  size_t na, nb;
  uint8_t *ra = fx_record(c, a, key, &na), *rb = fx_record(c, b, key, &nb);
  bool same = na == nb && (na == 0 || memcmp(ra, rb, na) == 0);
  free(ra);
  free(rb);
  return same;
}

uint32_t fx_siblings(fx_cluster_t *c, uint32_t i, const char *key, uint32_t *live) {
  size_t bytes;
  uint8_t *rec = fx_record(c, i, key, &bytes);
  uint32_t count = 0;
  if (live) *live = 0;
  if (rec) {
    kv_dvv_t obj;
    kv_status_t st;
    ck_assert_int_eq(kv_dvv_decode(rec, bytes, &obj, &st), KV_OK);
    count = obj.sib_count;
    if (live) *live = kv_dvv_live_count(&obj);
    kv_dvv_deinit(&obj);
  }
  free(rec);
  return count;
}

bool fx_roots_equal(fx_cluster_t *c, uint32_t a, uint32_t b) {
  for (uint32_t p = 0; p < c->cfg.partitions; p++) {
    uint64_t ra, rb;
    kv_status_t st;
    ck_assert_int_eq(kv_aae_root(c->nodes[a].node, FX_KEYSPACE, p, &ra, NULL, &st), KV_OK);
    ck_assert_int_eq(kv_aae_root(c->nodes[b].node, FX_KEYSPACE, p, &rb, NULL, &st), KV_OK);
    if (ra != rb) return false;
  }
  return true;
}
