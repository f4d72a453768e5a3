/* raw_rpc.c: sends arbitrary bytes as the request of one unary gRPC call and prints the
 * status, for tests of what a server does with malformed messages.
 *   raw_rpc HOST:PORT METHOD HEX      e.g. raw_rpc 127.0.0.1:7001 /tunekv.KV/Put ffff01
 * Prints "<STATUS_NAME>: <message>" (or "OK") and exits 0 when the call completed, 2 on
 * usage errors. */
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_err.h"

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

int main(int argc, char **argv) {
  unsigned char bytes[4096];
  size_t len = 0;
  if (argc != 4 || hex_decode(argv[3], bytes, sizeof bytes, &len) != 0) {
    fprintf(stderr, "usage: raw_rpc HOST:PORT METHOD HEX\n");
    return 2;
  }
  grpc_init();
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  grpc_channel *ch = grpc_channel_create(argv[1], creds, NULL);
  grpc_channel_credentials_release(creds);
  grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
  grpc_slice method = grpc_slice_from_copied_string(argv[2]);
  gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                       gpr_time_from_seconds(10, GPR_TIMESPAN));
  grpc_call *call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method,
                                             NULL, deadline, NULL);
  grpc_slice payload = grpc_slice_from_copied_buffer((const char *)bytes, len);
  grpc_byte_buffer *req = grpc_raw_byte_buffer_create(&payload, 1);
  grpc_slice_unref(payload);
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
  if (status == GRPC_STATUS_OK) printf("OK\n");
  else printf("%s: %s\n", kv_grpc_code_name((int)status), msg);
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
  return 0;
}
