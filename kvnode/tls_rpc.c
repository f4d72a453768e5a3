/* tls_rpc.c: loading and checking a node's certificates, and gRPC's SSL credentials made
 * from them (see tls_rpc.h).
 *
 * State: `current` holds the PEM text of the files last loaded and checked; `fresh` says
 * gRPC has not been handed it yet. Start-up loads (fresh), the fetcher hands it over at the
 * first handshake (gRPC calls it once as the server starts, then on every new connection) and
 * clears fresh; a good reload replaces current and sets fresh again. The lock guards both:
 * the fetcher runs on gRPC's threads, reloads on the main thread. */
#include "tls_rpc.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* A PEM file far larger than this is not a certificate, key or CA bundle. */
#define TLS_FILE_BYTES_MAX (1024u * 1024u)

typedef struct {
  char *cert, *key, *ca;  /* each file's text, NUL-terminated; owned */
  char describe[160];     /* serial and expiry of cert */
} tls_files_t;

/* A path of the tls section with each "{node}" replaced by the node's id. */
#define TLS_PATH_BYTES (KV_TLS_PATH_BYTES_MAX * (KV_NODE_ID_BYTES_MAX + 1) + 1)

struct kv_tls {
  const kv_config_t *cfg;
  char self[KV_NODE_ID_BYTES_MAX + 1];
  char cert[TLS_PATH_BYTES], key[TLS_PATH_BYTES], ca[TLS_PATH_BYTES]; /* expanded */
  pthread_mutex_t lock;
  tls_files_t current;
  bool fresh;
};

static void files_free(tls_files_t *f) {
  free(f->cert);
  if (f->key) OPENSSL_cleanse(f->key, strlen(f->key));
  free(f->key);
  free(f->ca);
  memset(f, 0, sizeof *f);
}

__attribute__((format(printf, 4, 5)))
static kv_err tls_fail(const kv_tls_t *t, uint32_t line, kv_status_t *st, const char *fmt, ...) {
  char sentence[KV_STATUS_MSG_BYTES];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sentence, sizeof sentence, fmt, ap);
  va_end(ap);
  return kv_status_set(st, KV_ECONFIG, "%s:%u: %s", t->cfg->path, line, sentence);
}

/* The whole file at path as a NUL-terminated string in *out (malloc'd). */
static kv_err tls_read(const kv_tls_t *t, const char *what, const char *path, uint32_t line,
                       char **out, kv_status_t *st) {
  FILE *f = fopen(path, "rb");
  if (!f) return tls_fail(t, line, st, "%s '%s' cannot be read: %s", what, path, strerror(errno));
  char *text = malloc(TLS_FILE_BYTES_MAX + 1);
  if (!text) {
    fclose(f);
    return kv_status_set(st, KV_ENOMEM, "out of memory reading %s", path);
  }
  size_t n = fread(text, 1, TLS_FILE_BYTES_MAX + 1, f);
  int read_errno = ferror(f) ? errno : 0;
  fclose(f);
  if (read_errno || n > TLS_FILE_BYTES_MAX) {
    free(text);
    return read_errno ? tls_fail(t, line, st, "%s '%s' cannot be read: %s", what, path,
                                 strerror(read_errno))
                      : tls_fail(t, line, st, "%s '%s' is larger than %u bytes; it is not a PEM "
                                 "file", what, path, TLS_FILE_BYTES_MAX);
  }
  text[n] = '\0';
  *out = text;
  return KV_OK;
}

/* Never asks for a passphrase: an encrypted key is refused instead of blocking the start. */
static int tls_no_passphrase(char *buf, int size, int rwflag, void *u) {
  (void)buf, (void)size, (void)rwflag, (void)u;
  return -1;
}

/* Every certificate in pem, in order (a chain or a CA bundle); NULL when there is none. */
static STACK_OF(X509) *tls_certs(const char *pem) {
  BIO *bio = BIO_new_mem_buf(pem, -1);
  STACK_OF(X509) *certs = sk_X509_new_null();
  X509 *x;
  while (bio && certs && (x = PEM_read_bio_X509(bio, NULL, tls_no_passphrase, NULL)))
    sk_X509_push(certs, x);
  BIO_free(bio);
  ERR_clear_error(); /* the read that found no more */
  if (certs && sk_X509_num(certs) == 0) {
    sk_X509_free(certs);
    certs = NULL;
  }
  return certs;
}

/* Checks that cert chains to the CA bundle (with the rest of its own file as intermediates)
 * and is in its validity period; on failure OpenSSL's reason ("certificate has expired"). */
static const char *tls_verify(X509 *cert, STACK_OF(X509) *chain, STACK_OF(X509) *cas) {
  X509_STORE *store = X509_STORE_new();
  X509_STORE_CTX *ctx = X509_STORE_CTX_new();
  const char *why = "out of memory";
  if (store && ctx) {
    for (int i = 0; i < sk_X509_num(cas); i++) X509_STORE_add_cert(store, sk_X509_value(cas, i));
    if (X509_STORE_CTX_init(ctx, store, cert, chain) == 1)
      why = X509_verify_cert(ctx) == 1
                ? NULL
                : X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx));
  }
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  return why;
}

/* "serial 1A2B, valid until Jun  1 12:00:00 2026 GMT". */
static void tls_describe_cert(X509 *cert, char *buf, size_t buf_bytes) {
  BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
  char *serial = bn ? BN_bn2hex(bn) : NULL;
  char until[64] = "?";
  BIO *bio = BIO_new(BIO_s_mem());
  if (bio && ASN1_TIME_print(bio, X509_get0_notAfter(cert))) {
    int n = BIO_read(bio, until, sizeof until - 1);
    until[n > 0 ? n : 0] = '\0';
  }
  snprintf(buf, buf_bytes, "serial %s, valid until %s", serial ? serial : "?", until);
  BIO_free(bio);
  OPENSSL_free(serial);
  BN_free(bn);
}

/* Checks the three files' text in f as a peer would see them (see tls_rpc.h). */
static kv_err tls_check(const kv_tls_t *t, tls_files_t *f, kv_status_t *st) {
  const kv_tls_conf_t *c = &t->cfg->tls;
  const char *cert_path = t->cert, *key_path = t->key, *ca_path = t->ca;
  STACK_OF(X509) *chain = tls_certs(f->cert);
  STACK_OF(X509) *cas = tls_certs(f->ca);
  BIO *bio = BIO_new_mem_buf(f->key, -1);
  EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, tls_no_passphrase, NULL) : NULL;
  BIO_free(bio);
  ERR_clear_error();
  X509 *cert = chain ? sk_X509_value(chain, 0) : NULL;
  const char *why;
  kv_err err = KV_OK;
  if (!cert)
    err = tls_fail(t, c->cert_line, st, "tls.cert '%s' holds no PEM certificate", cert_path);
  else if (!key)
    err = tls_fail(t, c->key_line, st, "tls.key '%s' holds no PEM private key (an encrypted "
                   "key cannot be used)", key_path);
  else if (!cas)
    err = tls_fail(t, c->ca_line, st, "tls.ca '%s' holds no PEM certificate", ca_path);
  else if (X509_check_private_key(cert, key) != 1)
    err = tls_fail(t, c->key_line, st, "tls.key '%s' does not match the certificate in tls.cert "
                   "'%s'", key_path, cert_path);
  else if ((why = tls_verify(cert, chain, cas)) != NULL)
    err = tls_fail(t, c->cert_line, st, "tls.cert '%s' is not trusted by tls.ca '%s': %s",
                   cert_path, ca_path, why);
  else if (t->self[0] && X509_check_host(cert, t->self, 0, X509_CHECK_FLAG_NO_WILDCARDS, NULL) != 1)
    err = tls_fail(t, c->cert_line, st, "tls.cert '%s' does not name node '%s' in its "
                   "subjectAltName; its peers would refuse it", cert_path, t->self);
  else
    tls_describe_cert(cert, f->describe, sizeof f->describe);
  ERR_clear_error();
  EVP_PKEY_free(key);
  sk_X509_pop_free(chain, X509_free);
  sk_X509_pop_free(cas, X509_free);
  return err;
}

static kv_err tls_load_files(const kv_tls_t *t, tls_files_t *f, kv_status_t *st) {
  const kv_tls_conf_t *c = &t->cfg->tls;
  memset(f, 0, sizeof *f);
  kv_err err = tls_read(t, "tls.cert", t->cert, c->cert_line, &f->cert, st);
  if (!err) err = tls_read(t, "tls.key", t->key, c->key_line, &f->key, st);
  if (!err) err = tls_read(t, "tls.ca", t->ca, c->ca_line, &f->ca, st);
  if (!err) err = tls_check(t, f, st);
  if (err) files_free(f);
  return err;
}

/* Copies path into dst (TLS_PATH_BYTES), each "{node}" replaced by id. */
static void tls_expand(const char *path, const char *id, char *dst) {
  size_t used = 0, id_len = strlen(id);
  while (*path) {
    if (strncmp(path, "{node}", 6) == 0) {
      memcpy(dst + used, id, id_len);
      used += id_len;
      path += 6;
    } else {
      dst[used++] = *path++;
    }
  }
  dst[used] = '\0';
}

kv_err kv_tls_load(const kv_config_t *cfg, const char *self_id, kv_tls_t **out,
                   kv_status_t *st) {
  KV_ASSERT(cfg && cfg->tls.enabled && out);
  *out = NULL;
  kv_tls_t *t = calloc(1, sizeof *t);
  if (!t) return kv_status_set(st, KV_ENOMEM, "out of memory loading the certificates");
  t->cfg = cfg;
  snprintf(t->self, sizeof t->self, "%s", self_id ? self_id : "");
  tls_expand(cfg->tls.cert, t->self, t->cert);
  tls_expand(cfg->tls.key, t->self, t->key);
  tls_expand(cfg->tls.ca, t->self, t->ca);
  kv_err err = tls_load_files(t, &t->current, st);
  if (err) {
    free(t);
    return err;
  }
  pthread_mutex_init(&t->lock, NULL);
  t->fresh = true;
  *out = t;
  return KV_OK;
}

void kv_tls_destroy(kv_tls_t *t) {
  if (!t) return;
  files_free(&t->current);
  pthread_mutex_destroy(&t->lock);
  free(t);
}

kv_err kv_tls_reload(kv_tls_t *t, kv_status_t *st) {
  tls_files_t f;
  kv_err err = tls_load_files(t, &f, st);
  if (err) return err;
  pthread_mutex_lock(&t->lock);
  files_free(&t->current);
  t->current = f;
  t->fresh = true;
  pthread_mutex_unlock(&t->lock);
  return KV_OK;
}

const char *kv_tls_describe(const kv_tls_t *t) { return t->current.describe; }

/* gRPC's certificate fetcher: the files once after each load, "unchanged" otherwise. */
static grpc_ssl_certificate_config_reload_status tls_fetch(
    void *arg, grpc_ssl_server_certificate_config **config) {
  kv_tls_t *t = arg;
  grpc_ssl_certificate_config_reload_status status = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
  pthread_mutex_lock(&t->lock);
  if (t->fresh) {
    grpc_ssl_pem_key_cert_pair pair = {.private_key = t->current.key,
                                       .cert_chain = t->current.cert};
    /* gRPC copies the strings. */
    *config = grpc_ssl_server_certificate_config_create(t->current.ca, &pair, 1);
    t->fresh = false;
    status = *config ? GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW
                     : GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL;
  }
  pthread_mutex_unlock(&t->lock);
  return status;
}

grpc_server_credentials *kv_tls_server_credentials(kv_tls_t *t) {
  grpc_ssl_client_certificate_request_type request =
      t->cfg->tls.client_auth_required ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                       : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY;
  grpc_ssl_server_credentials_options *opts =
      grpc_ssl_server_credentials_create_options_using_config_fetcher(request, tls_fetch, t);
  return grpc_ssl_server_credentials_create_with_options(opts);
}

grpc_channel_credentials *kv_tls_channel_credentials(kv_tls_t *t) {
  pthread_mutex_lock(&t->lock);
  grpc_ssl_pem_key_cert_pair pair = {.private_key = t->current.key,
                                     .cert_chain = t->current.cert};
  grpc_channel_credentials *creds = grpc_ssl_credentials_create_ex(t->current.ca, &pair, NULL,
                                                                   NULL);
  pthread_mutex_unlock(&t->lock);
  return creds;
}
