/* main.c: the kvnode daemon.
 *
 *   kvnode --config FILE --node ID [--data-dir DIR] [--threads N]
 *
 * Start-up: block SIGINT/SIGTERM in every thread (so only sigwait sees them), load the
 * config, open the store, start the gRPC server, log one "serving" line. Shutdown on
 * SIGINT/SIGTERM: stop accepting calls, finish in-flight ones, close RocksDB, exit 0.
 * Exit codes: 0 clean shutdown, 1 runtime failure (store, bind), 2 usage or config error. */
#include <errno.h>
#include <getopt.h>
#include <grpc/grpc.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "log.h"
#include "node.h"
#include "server_rpc.h"
#include "store.h"

#define SHUTDOWN_GRACE_MS 5000u

typedef struct {
  const char *config_path;
  const char *node_id;
  const char *data_dir;
  uint32_t threads;
} args_t;

static void usage(FILE *out) {
  fprintf(out,
          "usage: kvnode --config FILE --node ID [--data-dir DIR] [--threads N]\n"
          "  --config FILE    cluster config (YAML); every node uses the same file\n"
          "  --node ID        which node of the file this process is\n"
          "  --data-dir DIR   where RocksDB keeps data (default data/ID)\n"
          "  --threads N      gRPC worker threads (default %u)\n",
          KV_SERVER_THREADS_DEFAULT);
}

/* Returns 0 on success, or the exit code to leave with. */
static int parse_args(int argc, char **argv, args_t *a) {
  static const struct option opts[] = {
      {"config", required_argument, NULL, 'c'}, {"node", required_argument, NULL, 'n'},
      {"data-dir", required_argument, NULL, 'd'}, {"threads", required_argument, NULL, 't'},
      {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
  *a = (args_t){.threads = KV_SERVER_THREADS_DEFAULT};
  int ch;
  while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (ch) {
      case 'c': a->config_path = optarg; break;
      case 'n': a->node_id = optarg; break;
      case 'd': a->data_dir = optarg; break;
      case 't': {
        char *end;
        unsigned long t = strtoul(optarg, &end, 10);
        if (*end || t < 1 || t > KV_SERVER_THREADS_MAX) {
          fprintf(stderr, "kvnode: --threads must be 1..%u, not '%s'\n", KV_SERVER_THREADS_MAX,
                  optarg);
          return 2;
        }
        a->threads = (uint32_t)t;
        break;
      }
      case 'h': usage(stdout); return -1;
      default: usage(stderr); return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "kvnode: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  if (!a->config_path || !a->node_id) {
    fprintf(stderr, "kvnode: --config and --node are required\n");
    usage(stderr);
    return 2;
  }
  return 0;
}

/* mkdir -p: creates dir and its parents. */
static int make_dirs(const char *dir) {
  char path[4096];
  if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) return ENAMETOOLONG;
  for (char *p = path + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(path, 0755) != 0 && errno != EEXIST) return errno;
    *p = '/';
  }
  if (mkdir(path, 0755) != 0 && errno != EEXIST) return errno;
  return 0;
}

static int wait_for_signal(void) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

static void block_signals(void) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* Runs the node until a signal; returns the exit code. */
static int run(const args_t *a, const kv_config_t *cfg, const kv_node_conf_t *self) {
  char default_dir[128];
  const char *dir = a->data_dir;
  if (!dir) {
    snprintf(default_dir, sizeof default_dir, "data/%s", self->id);
    dir = default_dir;
  }
  int rc = make_dirs(dir);
  if (rc != 0) {
    KV_ERROR("cannot create data directory %s: %s", dir, strerror(rc));
    return 1;
  }
  kv_status_t st;
  kv_status_clear(&st);
  kv_store_t *store = NULL;
  kv_node_t *node = NULL;
  kv_server_t *server = NULL;
  int exit_code = 1;
  if (kv_store_open(dir, &store, &st) != KV_OK) {
    KV_ERROR("cannot open the store in %s: %s", dir, st.msg);
    return 1;
  }
  if (kv_node_create(cfg, self->id, store, &node, &st) != KV_OK) {
    KV_ERROR("%s", st.msg);
    goto out;
  }
  grpc_init();
  kv_server_opts_t opts = {.address = self->address, .threads = a->threads,
                           .max_message_bytes = kv_node_max_message_bytes(node)};
  if (kv_server_start(node, &opts, &server, &st) != KV_OK) {
    KV_ERROR("%s", st.msg);
    grpc_shutdown();
    goto out;
  }
  KV_INFO("serving on %s (cluster %s, data %s, incarnation %016" PRIx64 ", %u threads)",
          self->address, cfg->cluster_name, dir, kv_store_incarnation(store), a->threads);
  int sig = wait_for_signal();
  KV_INFO("%s: stopping (finishing in-flight calls)", strsignal(sig));
  kv_server_stop(server, SHUTDOWN_GRACE_MS);
  grpc_shutdown();
  exit_code = 0;
out:
  kv_node_destroy(node);
  kv_store_close(store);
  if (exit_code == 0) KV_INFO("stopped cleanly");
  return exit_code;
}

int main(int argc, char **argv) {
  block_signals();
  args_t a;
  int rc = parse_args(argc, argv, &a);
  if (rc != 0) return rc < 0 ? 0 : rc;
  static kv_config_t cfg; /* large; lives for the whole process */
  kv_status_t st;
  kv_status_clear(&st);
  if (kv_config_load(a.config_path, &cfg, &st) != KV_OK) {
    fprintf(stderr, "kvnode: %s\n", st.msg);
    return 2;
  }
  const kv_node_conf_t *self = kv_config_node(&cfg, a.node_id);
  if (!self) {
    fprintf(stderr, "kvnode: %s:%u: node '%s' is not in the nodes list of this file\n",
            cfg.path, cfg.nodes_line, a.node_id);
    return 2;
  }
  kv_log_set_prefix(self->id);
  return run(&a, &cfg, self);
}
