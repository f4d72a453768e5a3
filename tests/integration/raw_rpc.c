/* raw_rpc.c: one unary gRPC call with a request the test chooses, for tests of what a server
 * does with malformed messages and with callers it should refuse.
 *   raw_rpc [TLS] HOST:PORT METHOD HEX       the request is HEX's bytes, e.g.
 *                                            raw_rpc 127.0.0.1:7001 /tunekv.KV/Put ffff01
 *   raw_rpc [TLS] HOST:PORT --peer-write FROM KEYSPACE KEY VALUE [HINT_FOR]
 *                                            a Peer.Batch from node FROM carrying one replica
 *                                            write of KEY = VALUE (a record with one sibling
 *                                            whose dot is FROM's), a hint for HINT_FOR if given
 *   TLS: --tls-ca FILE [--tls-cert FILE --tls-key FILE] [--server-name NAME]
 *        speak TLS, presenting that client certificate (the test's stand-in for a node, an
 *        outsider or a client); NAME is what the server's certificate must name (default: the
 *        host)
 * Prints "<STATUS_NAME>: <message>" (or "OK"; for --peer-write "OK; answer <STATUS_NAME>" and
 * the answer's message when it has one) and exits 0 when the call completed, 2 on usage
 * errors, 1 when a file cannot be read. */
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv_err.h"
#include "peer.pb-c.h"
#include "record.pb-c.h"

static int hex_decode(const char *hex, unsigned char *out, size_t cap, size_t *len) {
  size_t n = strlen(hex);
  if (n % 2 || n / 2 > cap) return -1;
  for (size_t i = 0; i < n / 2; i++) {
    unsigned v;
    if (sscanf(hex + 2 * i, "%2x", &v) != 1) return -1;
    out[i] = (unsigned char)v;
  }
  *len = n / 2;
  return 0;
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    exit(1);
  }
  static const size_t max = 1 << 20;
  char *text = calloc(1, max + 1);
  if (!text) exit(1);
  if (fread(text, 1, max, f) == 0) {
    fprintf(stderr, "raw_rpc: %s is empty\n", path);
    exit(1);
  }
  fclose(f);
  return text;
}

/* Packs msg into a new byte buffer. */
static grpc_byte_buffer *pack(const ProtobufCMessage *msg) {
  size_t n = protobuf_c_message_get_packed_size(msg);
  grpc_slice s = grpc_slice_malloc(n);
  protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return bb;
}

/* A Peer.Batch from `from` with one ReplicaWrite of key = value (argv: FROM KEYSPACE KEY VALUE
 * [HINT_FOR]). The dot's counter is the wall clock in ms, so each run writes a new version. */
static grpc_byte_buffer *peer_write(char **argv, int argc) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  uint64_t ms = (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
  Tunekv__Record__Dot dot = TUNEKV__RECORD__DOT__INIT;
  dot.node = argv[0];
  dot.incarnation = 1;
  dot.counter = ms;
  Tunekv__Record__Dot *vv[1] = {&dot};
  Tunekv__Record__CausalContext ctx = TUNEKV__RECORD__CAUSAL_CONTEXT__INIT;
  ctx.n_vv = 1;
  ctx.vv = vv;
  Tunekv__Record__StoredSibling sib = TUNEKV__RECORD__STORED_SIBLING__INIT;
  sib.dot = &dot;
  sib.value.data = (uint8_t *)argv[3];
  sib.value.len = strlen(argv[3]);
  sib.hlc = ms << 16;
  Tunekv__Record__StoredSibling *sibs[1] = {&sib};
  Tunekv__Record__Record rec = TUNEKV__RECORD__RECORD__INIT;
  rec.context = &ctx;
  rec.n_siblings = 1;
  rec.siblings = sibs;
  uint8_t record[4096];
  size_t record_bytes = protobuf_c_message_pack(&rec.base, record);
  Tunekv__Peer__ReplicaWrite w = TUNEKV__PEER__REPLICA_WRITE__INIT;
  w.keyspace = argv[1];
  w.key.data = (uint8_t *)argv[2];
  w.key.len = strlen(argv[2]);
  w.record.data = record;
  w.record.len = record_bytes;
  if (argc > 4) w.hint_for = argv[4];
  Tunekv__Peer__PeerMessage m = TUNEKV__PEER__PEER_MESSAGE__INIT;
  m.id = 1;
  m.body_case = TUNEKV__PEER__PEER_MESSAGE__BODY_WRITE;
  m.write = &w;
  Tunekv__Peer__PeerMessage *ms_[1] = {&m};
  Tunekv__Peer__PeerBatch b = TUNEKV__PEER__PEER_BATCH__INIT;
  b.from = argv[0];
  b.n_messages = 1;
  b.messages = ms_;
  return pack(&b.base);
}

/* "; answer <STATUS>[: message]" of a PeerBatchReply's first answer. */
static void print_answer(grpc_byte_buffer *resp) {
  grpc_byte_buffer_reader r;
  if (!resp || !grpc_byte_buffer_reader_init(&r, resp)) {
    printf("; no reply message\n");
    return;
  }
  grpc_slice s = grpc_byte_buffer_reader_readall(&r);
  grpc_byte_buffer_reader_destroy(&r);
  Tunekv__Peer__PeerBatchReply *reply = tunekv__peer__peer_batch_reply__unpack(
      NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
  grpc_slice_unref(s);
  if (!reply || reply->n_answers != 1) {
    printf("; a reply without one answer\n");
  } else {
    const Tunekv__Peer__PeerAnswer *a = reply->answers[0];
    printf("; answer %s%s%s\n", kv_grpc_code_name((int)a->code), a->message[0] ? ": " : "",
           a->message);
  }
  if (reply) tunekv__peer__peer_batch_reply__free_unpacked(reply, NULL);
}

static int usage(void) {
  fprintf(stderr, "usage: raw_rpc [--tls-ca FILE [--tls-cert FILE --tls-key FILE] "
                  "[--server-name NAME]] HOST:PORT (METHOD HEX | --peer-write FROM KEYSPACE "
                  "KEY VALUE [HINT_FOR])\n");
  return 2;
}

int main(int argc, char **argv) {
  const char *ca = NULL, *cert = NULL, *key = NULL, *server_name = NULL;
  int i = 1;
  for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
    if (!strcmp(argv[i], "--tls-ca")) ca = argv[i + 1];
    else if (!strcmp(argv[i], "--tls-cert")) cert = argv[i + 1];
    else if (!strcmp(argv[i], "--tls-key")) key = argv[i + 1];
    else if (!strcmp(argv[i], "--server-name")) server_name = argv[i + 1];
    else return usage();
  }
  if (argc - i < 3 || (!cert) != (!key) || (cert && !ca)) return usage();
  const char *target = argv[i], *method_name = argv[i + 1];
  bool peer = strcmp(method_name, "--peer-write") == 0;
  unsigned char bytes[4096];
  size_t len = 0;
  if (peer ? argc - i < 6 || argc - i > 7
           : argc - i != 3 || hex_decode(argv[i + 2], bytes, sizeof bytes, &len) != 0)
    return usage();
  grpc_init();
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  char *pem_ca = NULL, *pem_cert = NULL, *pem_key = NULL;
  if (ca) {
    grpc_channel_credentials_release(creds);
    pem_ca = read_file(ca);
    grpc_ssl_pem_key_cert_pair pair = {0};
    if (cert) {
      pem_cert = read_file(cert);
      pem_key = read_file(key);
      pair = (grpc_ssl_pem_key_cert_pair){.private_key = pem_key, .cert_chain = pem_cert};
    }
    creds = grpc_ssl_credentials_create_ex(pem_ca, cert ? &pair : NULL, NULL, NULL);
  }
  grpc_arg arg = {.type = GRPC_ARG_STRING, .key = (char *)GRPC_SSL_TARGET_NAME_OVERRIDE_ARG,
                  .value.string = (char *)server_name};
  grpc_channel_args args = {server_name ? 1 : 0, &arg};
  grpc_channel *ch = grpc_channel_create(target, creds, &args);
  grpc_channel_credentials_release(creds);
  grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
  grpc_slice method =
      grpc_slice_from_copied_string(peer ? "/tunekv.peer.Peer/Batch" : method_name);
  gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                       gpr_time_from_seconds(10, GPR_TIMESPAN));
  grpc_call *call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method,
                                             NULL, deadline, NULL);
  grpc_byte_buffer *req;
  if (peer) {
    req = peer_write(argv + i + 2, argc - i - 2);
  } else {
    grpc_slice payload = grpc_slice_from_copied_buffer((const char *)bytes, len);
    req = grpc_raw_byte_buffer_create(&payload, 1);
    grpc_slice_unref(payload);
  }
  grpc_metadata_array im, tm;
  grpc_metadata_array_init(&im);
  grpc_metadata_array_init(&tm);
  grpc_byte_buffer *resp = NULL;
  grpc_status_code status;
  grpc_slice details;
  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = req;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &im;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &resp;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &tm;
  ops[5].data.recv_status_on_client.status = &status;
  ops[5].data.recv_status_on_client.status_details = &details;
  if (grpc_call_start_batch(call, ops, 6, call, NULL) != GRPC_CALL_OK) {
    fprintf(stderr, "raw_rpc: start_batch failed\n");
    return 1;
  }
  grpc_completion_queue_pluck(cq, call, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
  char *msg = grpc_slice_to_c_string(details);
  if (status != GRPC_STATUS_OK) printf("%s: %s\n", kv_grpc_code_name((int)status), msg);
  else if (peer) printf("OK"), print_answer(resp);
  else printf("OK\n");
  gpr_free(msg);
  grpc_slice_unref(details);
  grpc_slice_unref(method);
  if (resp) grpc_byte_buffer_destroy(resp);
  grpc_byte_buffer_destroy(req);
  grpc_metadata_array_destroy(&im);
  grpc_metadata_array_destroy(&tm);
  grpc_call_unref(call);
  grpc_completion_queue_shutdown(cq);
  grpc_completion_queue_destroy(cq);
  grpc_channel_destroy(ch);
  grpc_shutdown();
  free(pem_ca);
  free(pem_cert);
  free(pem_key);
  return 0;
}
