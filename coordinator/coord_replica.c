/* coord_replica.c: the replica's side of peer messages, kv_coord_on_peer_request (see
 * coord.h): the one dispatcher the runtime and the simulator share. */
#include "coord_internal.h"

/* A fallback keeps hints for other nodes only. */
static kv_err hint_target(kv_coord_t *c, uint32_t hint_for, kv_status_t *st) {
  KV_ASSERT(hint_for < c->ring->cfg->node_count);
  if (hint_for == kv_node_self(c->node))
    return kv_status_set(st, KV_EINVAL, "hint_for names this node (%s); hints are kept for "
                         "other nodes", c->ring->cfg->nodes[hint_for].id);
  return KV_OK;
}

/* What a write, read or reap (`what`) names must be a keyspace of this node's config and a
 * key the store can hold: a peer's message is not trusted, and the store asserts on an empty
 * key. (The fuzzer found a read of an empty key reaching the store.) */
static kv_err replica_key_check(kv_coord_t *c, const kv_msg_t *m, const char *what,
                                kv_status_t *st) {
  if (!kv_config_keyspace(c->ring->cfg, m->keyspace))
    return kv_status_set(st, KV_EINVAL, "%s names keyspace '%.*s', which this node does not "
                         "have", what, (int)KV_KEYSPACE_NAME_BYTES_MAX, m->keyspace);
  if (m->key_bytes == 0) return kv_status_set(st, KV_EINVAL, "key is empty");
  if (m->key_bytes > KV_KEY_BYTES_HARD_MAX)
    return kv_status_set(st, KV_EINVAL, "key is %zu bytes; no keyspace allows more than %u",
                         m->key_bytes, KV_KEY_BYTES_HARD_MAX);
  return KV_OK;
}

static kv_err replica_reap(kv_coord_t *c, const kv_msg_t *m, kv_status_t *st) {
  kv_err err = replica_key_check(c, m, "reap", st);
  if (err != KV_OK) return err;
  kv_dvv_t tomb;
  err = kv_dvv_decode(m->rec, m->rec_bytes, &tomb, st);
  if (err != KV_OK) return err;
  err = kv_hints_forget(&c->hints, m->keyspace, m->key, m->key_bytes, &tomb.cc, st);
  if (err == KV_OK && !m->hints_only)
    err = kv_node_reap(c->node, m->keyspace, m->key, m->key_bytes,
                       kv_hash_leaf(kv_hash_key(m->keyspace, m->key, m->key_bytes), m->rec,
                                    m->rec_bytes),
                       st);
  kv_dvv_deinit(&tomb);
  return err;
}

/* A write: merged into the replica, or into the hint a fallback keeps. A forwarder's is
 * refused whole when its relay cannot start, else relayed whatever became of the merge
 * (*relaying: done will be called). */
static kv_err replica_write(kv_coord_t *c, const kv_msg_t *m, kv_coord_relay_fn done,
                            void *arg, uint64_t mono_us, bool *relaying, kv_status_t *st) {
  kv_err err = replica_key_check(c, m, "write", st);
  if (err == KV_OK && m->hint_for != KV_NODE_NONE) err = hint_target(c, m->hint_for, st);
  if (err == KV_OK && m->relay_count > 0)
    err = coord_relay_check(c, m->relay, m->relay_count, m->relay_wait_ms, st);
  if (err != KV_OK) return err;
  err = m->hint_for != KV_NODE_NONE
            ? kv_hints_merge(&c->hints, m->hint_for, m->keyspace, m->key, m->key_bytes, m->rec,
                             m->rec_bytes, st)
            : kv_node_merge(c->node, m->keyspace, m->key, m->key_bytes, m->rec, m->rec_bytes, st);
  if (m->relay_count == 0) return err;
  *relaying = true;
  coord_relay_start(c, m->keyspace, m->key, m->key_bytes, m->rec, m->rec_bytes, m->durable,
                    m->epoch, m->relay, m->relay_count, m->relay_wait_ms, done, arg, mono_us);
  return err;
}

/* A request made under an older ring than this node's is refused with the ring (ownership.h):
 * its coordinator takes it, and plans the next one on the preference lists it gives. */
static bool stale_request(kv_coord_t *c, const kv_msg_t *m, kv_peer_result_t *out) {
  if ((m->kind != KV_MSG_WRITE && m->kind != KV_MSG_READ) || m->epoch == 0 ||
      m->epoch >= c->ring->epoch)
    return false;
  out->code = kv_status_set(&out->st, KV_ESTALE, "the request was made under ring epoch %llu; "
                            "node %s has epoch %llu", (unsigned long long)m->epoch,
                            c->ring->cfg->nodes[kv_node_self(c->node)].id,
                            (unsigned long long)c->ring->epoch);
  kv_own_encode(&c->own, &out->rec, &out->rec_bytes);
  return true;
}

void kv_coord_on_peer_request(kv_coord_t *c, const kv_msg_t *m, uint64_t mono_us,
                              uint64_t wall_ms, kv_coord_relay_fn done, void *arg,
                              kv_peer_result_t *out) {
  coord_clock(c, mono_us);
  memset(out, 0, sizeof *out);
  kv_status_clear(&out->st);
  kv_status_t *st = &out->st;
  if (stale_request(c, m, out)) return;
  switch (m->kind) {
    case KV_MSG_WRITE:
      out->code = replica_write(c, m, done, arg, mono_us, &out->relaying, st);
      out->applied_ms = wall_ms;
      out->after_sync = out->code == KV_OK && m->durable;
      break;
    case KV_MSG_READ:
      out->code = replica_key_check(c, m, "read", st);
      if (out->code == KV_OK && m->hint_for != KV_NODE_NONE)
        out->code = hint_target(c, m->hint_for, st);
      if (out->code == KV_OK)
        out->code = m->hint_for != KV_NODE_NONE
                        ? kv_hints_read(&c->hints, m->hint_for, m->keyspace, m->key,
                                        m->key_bytes, &out->rec, &out->rec_bytes, st)
                        : kv_node_read_record(c->node, m->keyspace, m->key, m->key_bytes,
                                              &out->rec, &out->rec_bytes, st);
      break;
    case KV_MSG_TREE:
      out->code = kv_aae_serve(c->node, &m->tree, &out->tree, st);
      break;
    case KV_MSG_REAP:
      out->code = replica_reap(c, m, st);
      /* A forget is answered once the hints' deletions are on disk (reaper.h). */
      out->after_sync = out->code == KV_OK && m->hints_only;
      break;
    case KV_MSG_RING:
      out->code = kv_own_take(&c->own, m->rec, m->rec_bytes, c->now_us, st);
      if (out->code == KV_OK) kv_own_encode(&c->own, &out->rec, &out->rec_bytes);
      break;
    default:
      out->code = kv_status_set(st, KV_EINVAL, "peer message %llu has no body",
                                (unsigned long long)m->id);
  }
}

void kv_peer_result_deinit(kv_peer_result_t *r) {
  free(r->rec);
  kv_aae_answer_free(&r->tree);
  memset(r, 0, sizeof *r);
}
