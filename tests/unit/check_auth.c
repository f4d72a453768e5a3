/* check_auth.c: the call rules of kvnode/auth.h on a config of two nodes, two keyspaces and
 * three tokens (one per role): who gets in, and each refusal's code and exact sentence. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"

#define READER "Bearer reader-0123456789abcdef"
#define WRITER "Bearer writer-0123456789abcdef"
#define ADMIN "Bearer admin-0123456789abcdef"

static const char *const auth_yaml =
    "cluster: { name: au }\n"
    "nodes:\n"
    "  - { id: n1, address: \"127.0.0.1:7001\" }\n"
    "  - { id: n2, address: \"127.0.0.1:7002\" }\n"
    "keyspaces:\n"
    "  - { name: default, replication: { local: 2 } }\n"
    "  - { name: carts, replication: { local: 2 } }\n"
    "tls: { cert: n1.pem, key: n1.key, ca: ca.pem }\n"
    "tokens:\n"
    "  - { name: reader, secret: reader-0123456789abcdef, read: [default] }\n"
    "  - { name: writer, secret: writer-0123456789abcdef, read: [\"*\"], write: [carts] }\n"
    "  - { name: ops, secret: admin-0123456789abcdef, admin: true }\n";

static kv_config_t auth_cfg;
static kv_auth_t *auth;

static void load(const char *yaml) {
  char path[96];
  const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(path, sizeof path, "%s/tunekv-auth-%d.yaml", base, (int)getpid());
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs(yaml, f);
  ck_assert_int_eq(fclose(f), 0);
  kv_status_t st;
  ck_assert_int_eq(kv_config_load(path, &auth_cfg, &st), KV_OK);
  unlink(path);
  ck_assert_int_eq(kv_auth_create(&auth_cfg, &auth, &st), KV_OK);
}

static void setup(void) { load(auth_yaml); }
static void teardown(void) {
  kv_auth_destroy(auth);
  auth = NULL;
}

/* A caller with a verified certificate naming `name` (none when NULL) and a header. */
static kv_auth_caller_t caller(const char *name, const char *authorization) {
  kv_auth_caller_t who = {.has_cert = name != NULL};
  if (name) who.cert_names[who.cert_name_count++] = name;
  who.authorization = authorization;
  who.authorization_bytes = authorization ? strlen(authorization) : 0;
  return who;
}

static void expect(kv_err got, const kv_status_t *st, kv_err want, const char *sentence) {
  ck_assert_int_eq(got, want);
  if (want != KV_OK) ck_assert_str_eq(st->msg, sentence);
}

START_TEST(peer_calls_need_a_node_certificate) {
  kv_status_t st;
  kv_auth_caller_t who = caller("n2", NULL);
  expect(kv_auth_check_peer(auth, &who, "n2", &st), &st, KV_OK, NULL);
  who = caller(NULL, NULL);
  expect(kv_auth_check_peer(auth, &who, "n2", &st), &st, KV_EPERM,
         "peer calls need a client certificate naming a node of cluster 'au'; none was "
         "presented");
  who = caller("kvctl", NULL);
  expect(kv_auth_check_peer(auth, &who, "n2", &st), &st, KV_EPERM,
         "peer calls need a client certificate naming a node of cluster 'au'; this one names "
         "'kvctl'");
  /* A node's certificate may not speak for another node. */
  who = caller("n2", NULL);
  expect(kv_auth_check_peer(auth, &who, "n1", &st), &st, KV_EPERM,
         "the batch says it comes from 'n1', but its client certificate names node 'n2'");
  /* A name that is not a node, even if the batch claims it. */
  who = caller("n9", NULL);
  expect(kv_auth_check_peer(auth, &who, "n9", &st), &st, KV_EPERM,
         "peer calls need a client certificate naming a node of cluster 'au'; this one names "
         "'n9'");
  /* Any of several names will do (a certificate names its node and its address). */
  who = caller("127.0.0.1", NULL);
  who.cert_names[who.cert_name_count++] = "n1";
  expect(kv_auth_check_peer(auth, &who, "n1", &st), &st, KV_OK, NULL);
}
END_TEST

START_TEST(tokens_are_checked_per_role) {
  kv_status_t st;
  kv_auth_caller_t who = caller("kvctl", READER);
  expect(kv_auth_check_data(auth, &who, KV_AUTH_READ, "default", &st), &st, KV_OK, NULL);
  expect(kv_auth_check_data(auth, &who, KV_AUTH_READ, "carts", &st), &st, KV_EPERM,
         "token 'reader' may not read keyspace 'carts'");
  expect(kv_auth_check_data(auth, &who, KV_AUTH_WRITE, "default", &st), &st, KV_EPERM,
         "token 'reader' may not write keyspace 'default'");
  expect(kv_auth_check_admin(auth, &who, &st), &st, KV_EPERM,
         "token 'reader' may not make admin calls");
  who = caller("kvctl", WRITER);
  expect(kv_auth_check_data(auth, &who, KV_AUTH_READ, "carts", &st), &st, KV_OK, NULL);
  expect(kv_auth_check_data(auth, &who, KV_AUTH_WRITE, "carts", &st), &st, KV_OK, NULL);
  expect(kv_auth_check_data(auth, &who, KV_AUTH_WRITE, "default", &st), &st, KV_EPERM,
         "token 'writer' may not write keyspace 'default'");
  /* An unknown keyspace is left to the coordinator's NOT_FOUND. */
  expect(kv_auth_check_data(auth, &who, KV_AUTH_WRITE, "nope", &st), &st, KV_OK, NULL);
  who = caller("kvctl", ADMIN);
  expect(kv_auth_check_admin(auth, &who, &st), &st, KV_OK, NULL);
  expect(kv_auth_check_data(auth, &who, KV_AUTH_READ, "default", &st), &st, KV_EPERM,
         "token 'ops' may not read keyspace 'default'");
  /* The scheme is matched without regard to case, as HTTP's are. */
  who = caller("kvctl", "bearer admin-0123456789abcdef");
  expect(kv_auth_check_admin(auth, &who, &st), &st, KV_OK, NULL);
}
END_TEST

START_TEST(missing_and_unknown_tokens_are_unauthenticated) {
  kv_status_t st;
  kv_auth_caller_t who = caller("kvctl", NULL);
  expect(kv_auth_check_data(auth, &who, KV_AUTH_READ, "default", &st), &st, KV_EUNAUTH,
         "this cluster asks for a bearer token (kvctl --token or TUNEKV_TOKEN); none was sent");
  expect(kv_auth_check_admin(auth, &who, &st), &st, KV_EUNAUTH,
         "this cluster asks for a bearer token (kvctl --token or TUNEKV_TOKEN); none was sent");
  who = caller("kvctl", "Bearer reader-0123456789abcdeF");
  expect(kv_auth_check_data(auth, &who, KV_AUTH_READ, "default", &st), &st, KV_EUNAUTH,
         "the bearer token is not one this cluster knows");
  /* A prefix of a real secret, and a longer guess, are just as unknown. */
  who = caller("kvctl", "Bearer reader-0123");
  expect(kv_auth_check_data(auth, &who, KV_AUTH_READ, "default", &st), &st, KV_EUNAUTH,
         "the bearer token is not one this cluster knows");
  who = caller("kvctl", READER "0");
  expect(kv_auth_check_data(auth, &who, KV_AUTH_READ, "default", &st), &st, KV_EUNAUTH,
         "the bearer token is not one this cluster knows");
  who = caller("kvctl", "Basic cmVhZGVyOnB3");
  expect(kv_auth_check_data(auth, &who, KV_AUTH_READ, "default", &st), &st, KV_EUNAUTH,
         "the authorization header must be 'Bearer TOKEN'");
  who = caller("kvctl", "Bearer ");
  expect(kv_auth_check_data(auth, &who, KV_AUTH_READ, "default", &st), &st, KV_EUNAUTH,
         "the authorization header must be 'Bearer TOKEN'");
}
END_TEST

START_TEST(nodes_and_certificates) {
  kv_status_t st;
  /* A node needs no token: it forwards writes its clients' tokens allowed. */
  kv_auth_caller_t who = caller("n1", NULL);
  expect(kv_auth_check_data(auth, &who, KV_AUTH_WRITE, "default", &st), &st, KV_OK, NULL);
  expect(kv_auth_check_admin(auth, &who, &st), &st, KV_OK, NULL);
  /* Admin calls need a certificate even with the admin token (client_auth: optional). */
  who = caller(NULL, ADMIN);
  expect(kv_auth_check_admin(auth, &who, &st), &st, KV_EPERM,
         "admin calls need a client certificate from the cluster's CA; none was presented");
  /* Data calls do not: a client of an optional-auth cluster brings only its token. */
  who = caller(NULL, READER);
  expect(kv_auth_check_data(auth, &who, KV_AUTH_READ, "default", &st), &st, KV_OK, NULL);
}
END_TEST

START_TEST(without_tls_or_tokens_everything_is_let_in) {
  teardown();
  load("nodes:\n"
       "  - { id: n1, address: \"127.0.0.1:7001\" }\n"
       "keyspaces:\n"
       "  - { name: default, replication: { local: 1 } }\n");
  kv_status_t st;
  kv_auth_caller_t who = caller(NULL, NULL);
  expect(kv_auth_check_peer(auth, &who, "n7", &st), &st, KV_OK, NULL);
  expect(kv_auth_check_admin(auth, &who, &st), &st, KV_OK, NULL);
  expect(kv_auth_check_data(auth, &who, KV_AUTH_WRITE, "default", &st), &st, KV_OK, NULL);
}
END_TEST

Suite *auth_suite(void) {
  Suite *s = suite_create("auth");
  TCase *tc = tcase_create("rules");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, peer_calls_need_a_node_certificate);
  tcase_add_test(tc, tokens_are_checked_per_role);
  tcase_add_test(tc, missing_and_unknown_tokens_are_unauthenticated);
  tcase_add_test(tc, nodes_and_certificates);
  tcase_add_test(tc, without_tls_or_tokens_everything_is_let_in);
  suite_add_tcase(s, tc);
  return s;
}
