/* cli_auth.c: the shared TLS and token options (cli_auth.h). */
#include "cli_auth.h"

#include <stdlib.h>
#include <string.h>

/* Each option, the environment variable it defaults to, and its field. */
static const struct {
  const char *option, *env;
  size_t offset;
} cli_auth_options[] = {
    {"--tls-ca", "TUNEKV_TLS_CA", offsetof(kv_client_auth_t, ca_file)},
    {"--tls-cert", "TUNEKV_TLS_CERT", offsetof(kv_client_auth_t, cert_file)},
    {"--tls-key", "TUNEKV_TLS_KEY", offsetof(kv_client_auth_t, key_file)},
    {"--tls-server-name", "TUNEKV_TLS_SERVER_NAME", offsetof(kv_client_auth_t, server_name)},
    {"--token", "TUNEKV_TOKEN", offsetof(kv_client_auth_t, token)},
};
#define CLI_AUTH_OPTIONS (sizeof cli_auth_options / sizeof cli_auth_options[0])

static const char **cli_auth_field(kv_client_auth_t *a, size_t i) {
  return (const char **)((char *)a + cli_auth_options[i].offset);
}

bool kv_cli_auth_is_option(const char *name) {
  for (size_t i = 0; i < CLI_AUTH_OPTIONS; i++)
    if (strcmp(name, cli_auth_options[i].option) == 0) return true;
  return false;
}

void kv_cli_auth_set(kv_client_auth_t *a, const char *name, const char *value) {
  for (size_t i = 0; i < CLI_AUTH_OPTIONS; i++)
    if (strcmp(name, cli_auth_options[i].option) == 0) *cli_auth_field(a, i) = value;
}

void kv_cli_auth_env(kv_client_auth_t *a) {
  for (size_t i = 0; i < CLI_AUTH_OPTIONS; i++) {
    const char **field = cli_auth_field(a, i);
    const char *env = getenv(cli_auth_options[i].env);
    if (!*field && env && *env) *field = env;
  }
}
