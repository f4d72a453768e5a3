/* peer_codec.c: the core's messages on the peer protocol's wire (see peer_codec.h). */
#include "peer_codec.h"

#include <stdlib.h>
#include <string.h>

#include "kv_limits.h"
#include "log.h"

static const Tunekv__Peer__TreeRequest__Kind wire_kinds[] = {
    [KV_AAE_ASK_ROOTS] = TUNEKV__PEER__TREE_REQUEST__KIND__ROOTS,
    [KV_AAE_ASK_SEGMENTS] = TUNEKV__PEER__TREE_REQUEST__KIND__SEGMENTS,
    [KV_AAE_ASK_KEYS] = TUNEKV__PEER__TREE_REQUEST__KIND__KEYS};

static const kv_aae_kind_t core_kinds[] = {
    [TUNEKV__PEER__TREE_REQUEST__KIND__ROOTS] = KV_AAE_ASK_ROOTS,
    [TUNEKV__PEER__TREE_REQUEST__KIND__SEGMENTS] = KV_AAE_ASK_SEGMENTS,
    [TUNEKV__PEER__TREE_REQUEST__KIND__KEYS] = KV_AAE_ASK_KEYS};

static char *node_id(const kv_config_t *cfg, uint32_t node) {
  KV_ASSERT(node < cfg->node_count);
  return (char *)cfg->nodes[node].id;
}

kv_err kv_peer_msg_pack(const kv_config_t *cfg, const kv_msg_t *m, uint8_t **bytes, size_t *len,
                        kv_status_t *st) {
  Tunekv__Peer__PeerMessage pm = TUNEKV__PEER__PEER_MESSAGE__INIT;
  Tunekv__Peer__ReplicaWrite w = TUNEKV__PEER__REPLICA_WRITE__INIT;
  Tunekv__Peer__ReplicaRead r = TUNEKV__PEER__REPLICA_READ__INIT;
  Tunekv__Peer__TreeRequest t = TUNEKV__PEER__TREE_REQUEST__INIT;
  Tunekv__Peer__ReplicaReap p = TUNEKV__PEER__REPLICA_REAP__INIT;
  Tunekv__Peer__Relay relays[KV_REPLICAS_MAX], *relay_ptrs[KV_REPLICAS_MAX];
  ProtobufCBinaryData key = {m->key_bytes, (uint8_t *)m->key};
  ProtobufCBinaryData rec = {m->rec_bytes, (uint8_t *)m->rec};
  pm.id = m->id;
  switch (m->kind) {
    case KV_MSG_WRITE:
      KV_ASSERT(m->relay_count <= KV_REPLICAS_MAX);
      for (uint32_t k = 0; k < m->relay_count; k++) {
        tunekv__peer__relay__init(&relays[k]);
        relays[k].node = node_id(cfg, m->relay[k].node);
        relays[k].id = m->relay[k].id;
        relay_ptrs[k] = &relays[k];
      }
      w.n_forward_to = m->relay_count;
      w.forward_to = relay_ptrs;
      w.forward_wait_ms = m->relay_wait_ms;
      w.keyspace = (char *)m->keyspace;
      w.key = key;
      w.record = rec;
      w.durable = m->durable;
      if (m->hint_for != KV_NODE_NONE) w.hint_for = node_id(cfg, m->hint_for);
      pm.body_case = TUNEKV__PEER__PEER_MESSAGE__BODY_WRITE;
      pm.write = &w;
      break;
    case KV_MSG_READ:
      r.keyspace = (char *)m->keyspace;
      r.key = key;
      if (m->hint_for != KV_NODE_NONE) r.hint_for = node_id(cfg, m->hint_for);
      pm.body_case = TUNEKV__PEER__PEER_MESSAGE__BODY_READ;
      pm.read = &r;
      break;
    case KV_MSG_TREE:
      t.kind = wire_kinds[m->tree.kind];
      t.keyspace = (char *)m->tree.keyspace;
      t.n_partitions = m->tree.partition_count;
      t.partitions = (uint32_t *)m->tree.partitions;
      t.n_segments = m->tree.segment_count;
      t.segments = (uint32_t *)m->tree.segments;
      pm.body_case = TUNEKV__PEER__PEER_MESSAGE__BODY_TREE;
      pm.tree = &t;
      break;
    case KV_MSG_REAP:
      p.keyspace = (char *)m->keyspace;
      p.key = key;
      p.record = rec;
      p.hints_only = m->hints_only;
      pm.body_case = TUNEKV__PEER__PEER_MESSAGE__BODY_REAP;
      pm.reap = &p;
      break;
    case KV_MSG_RING:
      /* The core sends rings only after a membership change, which kvnode cannot make yet
       * (issue 19's gRPC step brings both). */
      return kv_status_set(st, KV_EINVAL, "ring messages are not carried between kvnodes yet");
  }
  *len = tunekv__peer__peer_message__get_packed_size(&pm);
  *bytes = malloc(*len ? *len : 1);
  if (!*bytes) return kv_status_set(st, KV_ENOMEM, "out of memory queueing a message");
  tunekv__peer__peer_message__pack(&pm, *bytes);
  return KV_OK;
}

/* The index of the node a message names in field (empty: none). */
static kv_err node_index(const kv_config_t *cfg, const char *field, const char *id,
                         uint32_t *out, kv_status_t *st) {
  if (!id[0]) {
    *out = KV_NODE_NONE;
    return KV_OK;
  }
  int n = kv_config_node_index(cfg, id);
  if (n < 0)
    return kv_status_set(st, KV_EINVAL, "%s names node '%.*s', which is not in the cluster",
                         field, (int)KV_NODE_ID_BYTES_MAX, id);
  *out = (uint32_t)n;
  return KV_OK;
}

kv_err kv_peer_msg_view(const kv_config_t *cfg, const Tunekv__Peer__PeerMessage *pm,
                        kv_msg_t *m, kv_relay_target_t *relay, kv_status_t *st) {
  *m = KV_MSG_INIT(KV_MSG_WRITE, pm->id);
  switch (pm->body_case) {
    case TUNEKV__PEER__PEER_MESSAGE__BODY_WRITE: {
      const Tunekv__Peer__ReplicaWrite *w = pm->write;
      if (w->n_forward_to > KV_REPLICAS_MAX - 1)
        return kv_status_set(st, KV_EINVAL, "forward_to names %zu nodes; a region has at most "
                             "%u others", w->n_forward_to, KV_REPLICAS_MAX - 1);
      for (size_t k = 0; k < w->n_forward_to; k++) {
        kv_err err = node_index(cfg, "forward_to", w->forward_to[k]->node, &relay[k].node, st);
        if (err == KV_OK && relay[k].node == KV_NODE_NONE)
          err = kv_status_set(st, KV_EINVAL, "forward_to has an entry with no node");
        if (err != KV_OK) return err;
        relay[k].id = w->forward_to[k]->id;
      }
      *m = kv_msg_write(pm->id, w->keyspace, w->key.data, w->key.len, w->record.data,
                        w->record.len, w->durable);
      m->relay = relay;
      m->relay_count = (uint32_t)w->n_forward_to;
      m->relay_wait_ms = w->forward_wait_ms;
      return node_index(cfg, "hint_for", w->hint_for, &m->hint_for, st);
    }
    case TUNEKV__PEER__PEER_MESSAGE__BODY_READ: {
      const Tunekv__Peer__ReplicaRead *r = pm->read;
      *m = kv_msg_read(pm->id, r->keyspace, r->key.data, r->key.len);
      return node_index(cfg, "hint_for", r->hint_for, &m->hint_for, st);
    }
    case TUNEKV__PEER__PEER_MESSAGE__BODY_TREE: {
      const Tunekv__Peer__TreeRequest *t = pm->tree;
      if ((unsigned)t->kind >= sizeof core_kinds / sizeof core_kinds[0])
        return kv_status_set(st, KV_EINVAL, "tree request kind %d is unknown", (int)t->kind);
      m->kind = KV_MSG_TREE;
      m->tree = (kv_aae_req_t){.kind = core_kinds[t->kind], .keyspace = t->keyspace,
                               .partitions = t->partitions,
                               .partition_count = (uint32_t)t->n_partitions,
                               .segments = t->segments,
                               .segment_count = (uint32_t)t->n_segments};
      return KV_OK;
    }
    case TUNEKV__PEER__PEER_MESSAGE__BODY_REAP: {
      const Tunekv__Peer__ReplicaReap *r = pm->reap;
      *m = kv_msg_read(pm->id, r->keyspace, r->key.data, r->key.len);
      m->kind = KV_MSG_REAP;
      m->rec = r->record.data;
      m->rec_bytes = r->record.len;
      m->hints_only = r->hints_only;
      return KV_OK;
    }
    default:
      return kv_status_set(st, KV_EINVAL, "peer message %llu has no body",
                           (unsigned long long)pm->id);
  }
}

void kv_peer_answer_view(const Tunekv__Peer__PeerAnswer *pa, uint64_t id, kv_msg_answer_t *out,
                         kv_peer_answer_scratch_t *scratch) {
  memset(scratch, 0, sizeof *scratch);
  *out = (kv_msg_answer_t){.id = id, .code = KV_EUNAVAILABLE};
  if (!pa) return;
  out->code = pa->code == 0 ? KV_OK : KV_EUNAVAILABLE;
  out->rec = pa->record.data;
  out->rec_bytes = pa->record.len;
  out->applied_ms = pa->applied_ms;
  uint32_t n = 0;
  for (size_t k = 0; k < pa->n_relayed && n < KV_REPLICAS_MAX; k++)
    scratch->relayed[n++] = (kv_relay_outcome_t){
        .id = pa->relayed[k]->id, .node = KV_NODE_NONE,
        .code = pa->relayed[k]->code == 0 ? KV_OK : KV_EUNAVAILABLE,
        .applied_ms = pa->relayed[k]->applied_ms};
  out->relayed = scratch->relayed;
  out->relayed_count = n;
  if (pa->n_hashes == 0 && pa->n_keys == 0) return;
  kv_aae_answer_t *t = &scratch->tree;
  t->keys = calloc(pa->n_keys ? pa->n_keys : 1, sizeof *t->keys);
  KV_ASSERT(t->keys);
  for (size_t i = 0; i < pa->n_keys; i++)
    t->keys[i] = (kv_aae_key_t){pa->keys[i].data, pa->keys[i].len};
  t->key_count = (uint32_t)pa->n_keys;
  t->hashes = pa->hashes;
  t->hash_count = (uint32_t)pa->n_hashes;
  out->tree = t;
}

void kv_peer_answer_scratch_free(kv_peer_answer_scratch_t *scratch) {
  free(scratch->tree.keys);
  scratch->tree.keys = NULL;
}
