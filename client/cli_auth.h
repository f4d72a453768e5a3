/* cli_auth.h: the TLS and token options kvctl and kvbench share (README "TLS and tokens").
 *
 *   --tls-ca FILE           the CA the node's certificate must chain to; turns TLS on
 *   --tls-cert FILE         client certificate, with --tls-key FILE (its key)
 *   --tls-server-name NAME  the name the node's certificate must carry (default: the host of
 *                           -a, which an IP subjectAltName matches)
 *   --token TOKEN           bearer token sent with every call
 *
 * Each one not given is taken from the environment: TUNEKV_TLS_CA, TUNEKV_TLS_CERT,
 * TUNEKV_TLS_KEY, TUNEKV_TLS_SERVER_NAME, TUNEKV_TOKEN (a token on the command line is seen
 * by every user of the machine in ps; the environment is not). */
#ifndef KV_CLI_AUTH_H
#define KV_CLI_AUTH_H

#include <stdbool.h>

#include "tunekv.h"

#define KV_CLI_AUTH_USAGE                                                                   \
  "  --tls-ca FILE   speak TLS; the node's certificate must chain to FILE (PEM)\n"          \
  "                  (default $TUNEKV_TLS_CA)\n"                                            \
  "  --tls-cert FILE, --tls-key FILE\n"                                                     \
  "                  client certificate and its key, PEM (default $TUNEKV_TLS_CERT,\n"      \
  "                  $TUNEKV_TLS_KEY); admin commands need one on a TLS cluster\n"          \
  "  --tls-server-name NAME\n"                                                              \
  "                  the name the node's certificate must carry (default: the host of\n"    \
  "                  -a; $TUNEKV_TLS_SERVER_NAME)\n"                                        \
  "  --token TOKEN   bearer token for a cluster with tokens (default $TUNEKV_TOKEN)\n"

/* True when name is one of the options above (each takes a value). */
bool kv_cli_auth_is_option(const char *name);
/* Records option name's value (borrowed: it must outlive *a, as argv does). */
void kv_cli_auth_set(kv_client_auth_t *a, const char *name, const char *value);
/* Fills what the options left unset from the environment (an empty variable counts as
 * unset). */
void kv_cli_auth_env(kv_client_auth_t *a);

#endif
