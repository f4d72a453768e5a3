/* main.c: the kvnode daemon.
 *
 *   kvnode --config FILE --node ID [--data-dir DIR] [--listen HOST:PORT] [--threads N]
 *          [--hint-bytes-max BYTES] [--hint-rate N] [--metrics-addr HOST:PORT]
 *          [--allow-fault-injection [--clock-offset-ms MS]]
 *   kvnode --check-config FILE [--node ID]
 *
 * --check-config loads FILE as a start would (the YAML, then the conflict handler plugins it
 * names, then with --node that the node is in it), prints one line saying what it holds and
 * exits 0, or exits 2 with the same sentence a start would give; it opens no store, binds
 * nothing and creates no directory. --listen binds the gRPC server to another address than
 * the node's own in the file (which peers and clients use): in a container the file names the
 * node by its DNS name, and the node listens on 0.0.0.0 so that a health check on 127.0.0.1
 * reaches it too.
 * --metrics-addr serves Prometheus text at http://HOST:PORT/metrics (metrics_http.h); a
 * malformed address is a usage error (exit 2), one that cannot be bound a runtime one (1).
 *
 * Start-up: block SIGINT/SIGTERM/SIGHUP in every thread (so only sigwait sees them), load the
 * config and, with a tls section, the certificates (tls_rpc.h; a bad one is a config error),
 * open the store, start the gRPC server, log one "serving" line and tell a service
 * manager READY=1 (notify.h; systemd's Type=notify). SIGHUP reloads the certificates: new
 * handshakes and calls to peers get them, and one log line says which were loaded or why
 * none were. Shutdown on SIGINT/SIGTERM: tell it STOPPING=1, stop accepting calls, finish
 * in-flight ones, close RocksDB, exit 0.
 * Logs go to stderr, with journal priorities when stderr is systemd's journal (log.h).
 * Exit codes: 0 clean shutdown, 1 runtime failure (store, bind), 2 usage or config error (a
 * conflict handler plugin that does not load is a config error). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "auth.h"
#include "config.h"
#include "coord.h"
#include "fmt.h"
#include "journal.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "node.h"
#include "notify.h"
#include "peer_rpc.h"
#include "plugin.h"
#include "ring.h"
#include "server_rpc.h"
#include "tls_rpc.h"
#include "store.h"
#include "driver.h"

/* How long in-flight calls may run on after SIGTERM before they are cancelled. The whole stop
 * (this, then the peers' and the store's close) must end well inside the service manager's
 * own limit: deploy/tunekv.service's TimeoutStopSec=30 and the pods' grace period of 30 s. */
#define SHUTDOWN_GRACE_MS 5000u

typedef struct {
  const char *config_path;
  const char *node_id;
  const char *data_dir;
  const char *listen;               /* --listen; NULL: the node's address in the file */
  bool check_only;                  /* --check-config: load config_path, report, exit */
  uint32_t threads;
  kv_coord_opts_t coord;
  bool allow_faults;
  int64_t clock_offset_ms;
  const char *metrics_text;         /* --metrics-addr as given; NULL: no endpoint */
  struct sockaddr_in metrics_addr;
} args_t;

static void usage(FILE *out) {
  fprintf(out,
          "usage: kvnode --config FILE --node ID [--data-dir DIR] [--listen HOST:PORT]\n"
          "              [--threads N] [--hint-bytes-max BYTES] [--hint-rate N]\n"
          "              [--metrics-addr HOST:PORT] [--allow-fault-injection]\n"
          "       kvnode --check-config FILE [--node ID]\n"
          "  --config FILE    cluster config (YAML); every node uses the same file\n"
          "  --node ID        which node of the file this process is\n"
          "  --check-config FILE\n"
          "                   load FILE as a start would (and its plugins, and with --node\n"
          "                   that node), print what it holds and exit: 0 when it is good,\n"
          "                   2 with the reason when not; starts nothing\n"
          "  --data-dir DIR   where RocksDB keeps data (default data/ID)\n"
          "  --listen HOST:PORT\n"
          "                   listen there instead of at the node's address in the file\n"
          "                   (e.g. 0.0.0.0:7000 in a container; peers still use the file's)\n"
          "  --threads N      gRPC worker threads (default %u)\n"
          "  --hint-bytes-max BYTES  hinted handoff: hints kept per peer (default %llu)\n"
          "  --hint-rate N    hinted handoff: hints handed over per second (default %u)\n"
          "  --metrics-addr HOST:PORT\n"
          "                   serve Prometheus metrics at http://HOST:PORT/metrics\n"
          "  --allow-fault-injection\n"
          "                   let `kvctl fault` delay, drop or cut this node's calls to its\n"
          "                   peers (for tests and labs; refused without it)\n"
          "  --clock-offset-ms MS  with --allow-fault-injection: run this node's wall clock\n"
          "                   MS ahead (or behind, when negative), for clock sanity tests\n",
          KV_SERVER_THREADS_DEFAULT, (unsigned long long)KV_HINT_BYTES_DEFAULT,
          KV_HINT_RATE_DEFAULT);
}

/* A whole number in [min, max] for option `name`; false (with a sentence) otherwise. */
static bool parse_number(const char *name, const char *text, uint64_t min, uint64_t max,
                         uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(text, &end, 10);
  if (errno || end == text || *end || text[0] == '-' || v < min || v > max) {
    fprintf(stderr, "kvnode: --%s must be %llu..%llu, not '%s'\n", name,
            (unsigned long long)min, (unsigned long long)max, text);
    return false;
  }
  *out = v;
  return true;
}

/* "HOST:PORT" with a host and a port of 1..65535 ("[::]:7000" too); gRPC resolves the host
 * when it binds, and a host it cannot bind is a runtime failure then. */
static bool listen_ok(const char *text) {
  const char *colon = strrchr(text, ':');
  if (!colon || colon == text || !colon[1]) return false;
  uint64_t port;
  char *end;
  errno = 0;
  port = strtoull(colon + 1, &end, 10);
  return !errno && !*end && colon[1] != '-' && colon[1] != '+' && port >= 1 && port <= 65535;
}

/* Returns 0 on success, or the exit code to leave with. */
static int parse_args(int argc, char **argv, args_t *a) {
  static const struct option opts[] = {
      {"config", required_argument, NULL, 'c'}, {"node", required_argument, NULL, 'n'},
      {"data-dir", required_argument, NULL, 'd'}, {"threads", required_argument, NULL, 't'},
      {"hint-bytes-max", required_argument, NULL, 'b'}, {"hint-rate", required_argument, NULL, 'r'},
      {"allow-fault-injection", no_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'},
      {"clock-offset-ms", required_argument, NULL, 'o'},
      {"metrics-addr", required_argument, NULL, 'm'},
      {"check-config", required_argument, NULL, 'k'}, {"listen", required_argument, NULL, 'l'},
      {NULL, 0, NULL, 0}};
  *a = (args_t){.threads = KV_SERVER_THREADS_DEFAULT, .coord = KV_COORD_OPTS_DEFAULT};
  uint64_t v;
  int ch;
  while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (ch) {
      case 'c':
      case 'k':
        if (a->config_path && (ch == 'k') != a->check_only) {
          fprintf(stderr, "kvnode: --check-config takes the file to check; leave out --config\n");
          return 2;
        }
        a->config_path = optarg;
        a->check_only = ch == 'k';
        break;
      case 'l':
        if (!listen_ok(optarg)) {
          fprintf(stderr, "kvnode: --listen must be HOST:PORT with a port of 1 to 65535, not "
                          "'%s'\n", optarg);
          return 2;
        }
        a->listen = optarg;
        break;
      case 'n': a->node_id = optarg; break;
      case 'd': a->data_dir = optarg; break;
      case 'f': a->allow_faults = true; break;
      case 'o': {
        const char *digits = optarg + (optarg[0] == '-');
        if (!parse_number("clock-offset-ms", digits, 0, KV_CLOCK_SKEW_MS_MAX, &v)) return 2;
        a->clock_offset_ms = optarg[0] == '-' ? -(int64_t)v : (int64_t)v;
        break;
      }
      case 'm': {
        kv_status_t st;
        if (kv_metrics_http_parse(optarg, &a->metrics_addr, &st) != KV_OK) {
          fprintf(stderr, "kvnode: %s\n", st.msg);
          return 2;
        }
        a->metrics_text = optarg;
        break;
      }
      case 't':
        if (!parse_number("threads", optarg, 1, KV_SERVER_THREADS_MAX, &v)) return 2;
        a->threads = (uint32_t)v;
        break;
      case 'b':
        if (!parse_number("hint-bytes-max", optarg, 0, KV_HINT_BYTES_MAX, &v)) return 2;
        a->coord.hint_bytes_max = v;
        break;
      case 'r':
        if (!parse_number("hint-rate", optarg, 1, KV_HINT_RATE_MAX, &v)) return 2;
        a->coord.hint_rate_per_s = (uint32_t)v;
        break;
      case 'h': usage(stdout); return -1;
      default: usage(stderr); return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "kvnode: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  if (a->clock_offset_ms != 0 && !a->allow_faults) {
    fprintf(stderr, "kvnode: --clock-offset-ms is fault injection; it needs "
                    "--allow-fault-injection\n");
    return 2;
  }
  if (a->check_only) return 0;
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

static void stop_signals(sigset_t *set) {
  sigemptyset(set);
  sigaddset(set, SIGINT);
  sigaddset(set, SIGTERM);
  sigaddset(set, SIGHUP);
}

/* SIGHUP: the certificates again (tls_rpc.h), for the server's new handshakes and, on new
 * channels, for the calls to peers (peer_rpc.h); the log says what came of it. */
static void reload(kv_tls_t *tls, kv_peers_t *peers) {
  if (!tls) {
    KV_INFO("SIGHUP: nothing to reload (the config has no tls section)");
    return;
  }
  kv_status_t st;
  kv_status_clear(&st);
  if (kv_tls_reload(tls, &st) == KV_OK) {
    kv_peers_reload_tls(peers);
    KV_INFO("SIGHUP: reloaded the certificate (%s); new connections and calls to peers get it",
            kv_tls_describe(tls));
  } else {
    KV_WARN("SIGHUP: kept the certificate in use (%s): %s", kv_tls_describe(tls), st.msg);
  }
}

/* Waits for SIGINT or SIGTERM, reloading on each SIGHUP meanwhile. */
static int wait_for_signal(kv_tls_t *tls, kv_peers_t *peers) {
  sigset_t set;
  stop_signals(&set);
  int sig = 0;
  while (sigwait(&set, &sig) == 0 && sig == SIGHUP) reload(tls, peers);
  return sig;
}

static void block_signals(void) {
  sigset_t set;
  stop_signals(&set);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* Everything a running node owns, torn down in the reverse order of set-up. */
typedef struct {
  kv_store_t *store;
  kv_storage_t storage;         /* store, as the core reaches it */
  kv_node_t *node;
  kv_ring_t ring;
  kv_driver_t driver;          /* the core's lock and group commit */
  bool driver_started;
  kv_peers_t *peers;
  kv_coord_t *coord;
  kv_server_t *server;
  kv_metrics_t *metrics;
  kv_metrics_http_t *metrics_http;
  kv_tls_t *tls;                /* the certificates, with a tls section; NULL without */
  kv_auth_t *auth;
} daemon_t;

/* Every conflict journal entry is also logged: the journal lives in memory and is bounded,
 * the log is neither. */
static void journal_log(void *arg, const kv_journal_entry_t *e) {
  (void)arg;
  char key[KV_FMT_KEY_BYTES];
  kv_fmt_bytes(key, sizeof key, e->key, e->key_bytes);
  KV_INFO("conflict #%llu: %s/%s by %s on %s discarded %u version(s)%s",
          (unsigned long long)e->seq, e->keyspace, key, e->handler, e->reason,
          e->discarded_count, e->suspect ? " (suspect clock)" : "");
}

static kv_err daemon_start(daemon_t *d, const args_t *a, const kv_config_t *cfg,
                           const kv_node_conf_t *self, const char *dir, kv_status_t *st) {
  if (kv_auth_create(cfg, &d->auth, st) != KV_OK) return st->code;
  if (kv_store_open_sized(dir, cfg->block_cache_bytes, cfg->memtable_bytes, &d->store, st) !=
          KV_OK ||
      kv_store_set_tracking(d->store, cfg->anti_entropy_interval_ms > 0, st) != KV_OK)
    return st->code;
  kv_store_storage(d->store, &d->storage);
  if (kv_node_create(cfg, self->id, &d->storage, &d->node, st) != KV_OK ||
      kv_ring_init(&d->ring, cfg, st) != KV_OK)
    return st->code;
  kv_driver_init(&d->driver, &d->storage);
  kv_driver_start(&d->driver);
  d->driver_started = true;
  size_t max_message = kv_node_max_message_bytes(d->node);
  if (kv_peers_create(cfg, kv_node_self(d->node), max_message, d->tls, &d->peers, st) != KV_OK)
    return st->code;
  kv_coord_transport_t tr;
  kv_peers_transport(d->peers, &tr);
  d->metrics = kv_metrics_create(cfg);
  if (!d->metrics) return kv_status_set(st, KV_ENOMEM, "out of memory creating the metrics");
  kv_node_set_metrics(d->node, d->metrics);
  kv_coord_opts_t copts = a->coord;
  copts.metrics = d->metrics;
  if (kv_coord_create(d->node, &d->ring, &d->driver.sync, &tr, kv_server_reply, &copts, &d->coord,
                      st) != KV_OK)
    return st->code;
  kv_peers_watch_clocks(d->peers, d->node);
  kv_journal_set_sink(kv_node_journal(d->node), journal_log, NULL);
  kv_peers_run(d->peers, d->coord, &d->driver, kv_server_relay);
  kv_server_deps_t deps = {.cfg = cfg, .node = d->node, .coord = d->coord,
                           .driver = &d->driver, .peers = d->peers, .metrics = d->metrics,
                           .auth = d->auth};
  kv_server_opts_t opts = {.address = a->listen ? a->listen : self->address,
                           .threads = a->threads,
                           .max_message_bytes = max_message,
                           .allow_fault_injection = a->allow_faults,
                           .clock_offset_ms = a->clock_offset_ms,
                           .tls = d->tls};
  if (kv_server_start(&deps, &opts, &d->server, st) != KV_OK) return st->code;
  if (!a->metrics_text) return KV_OK;
  return kv_metrics_http_start(a->metrics_text, &a->metrics_addr, d->metrics, d->coord,
                               &d->driver, kv_node_self(d->node), &d->metrics_http, st);
}

/* Stops in the order that lets in-flight work finish: the server first (its calls may wait
 * on replica answers, which the peer thread delivers, and on the syncer), then the driver's
 * syncer (a durable write answered by its peers may still wait on its own fsync, in a
 * coordinator slot), the peers, the coordinator, the driver's lock, and the store last. */
static void daemon_stop(daemon_t *d) {
  kv_metrics_http_stop(d->metrics_http); /* it reads the coordinator */
  if (d->server) kv_server_stop(d->server, SHUTDOWN_GRACE_MS);
  if (d->driver_started) kv_driver_stop(&d->driver);
  kv_peers_destroy(d->peers);
  kv_coord_destroy(d->coord);
  kv_metrics_destroy(d->metrics);
  kv_node_destroy(d->node);
  if (d->driver_started) kv_driver_deinit(&d->driver);
  kv_store_close(d->store);
  kv_auth_destroy(d->auth);
  kv_tls_destroy(d->tls); /* after the server and the peers' channels */
}

/* Tells the service manager, if there is one; a failure costs only a warning (systemd would
 * then time the start out, which says more than a node refusing to run). */
static void notify(const char *state) {
  kv_status_t st;
  kv_status_clear(&st);
  if (kv_notify(state, &st) != KV_OK) KV_WARN("%s", st.msg);
}

/* Runs the node until a signal; returns the exit code. tls (the loaded certificates, or NULL)
 * is the node's from here on. */
static int run(const args_t *a, const kv_config_t *cfg, const kv_node_conf_t *self,
               kv_tls_t *tls) {
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
  static daemon_t d; /* large (the ring); lives for the whole process */
  d.tls = tls;
  kv_rpc_init();
  int exit_code = 0;
  if (daemon_start(&d, a, cfg, self, dir, &st) != KV_OK) {
    KV_ERROR("%s", st.msg);
    exit_code = 1;
  } else {
    KV_INFO("serving on %s (%s%s%scluster %s, data %s, incarnation %016" PRIx64
            ", %u threads)", self->address, a->listen ? "listening on " : "",
            a->listen ? a->listen : "", a->listen ? ", " : "", cfg->cluster_name, dir,
            kv_store_incarnation(d.store), a->threads);
    if (a->metrics_text) KV_INFO("metrics at http://%s/metrics", a->metrics_text);
    if (tls)
      KV_INFO("tls: certificate %s (client_auth %s); %u token(s)", kv_tls_describe(tls),
              cfg->tls.client_auth_required ? "require" : "optional", cfg->token_count);
    if (a->allow_faults)
      KV_WARN("fault injection is allowed: kvctl fault can delay, drop and cut this node's "
              "calls to its peers");
    notify("READY=1\nSTATUS=serving");
    int sig = wait_for_signal(tls, d.peers);
    KV_INFO("%s: stopping (finishing in-flight calls)", strsignal(sig));
    notify("STOPPING=1\nSTATUS=stopping: finishing in-flight calls");
  }
  daemon_stop(&d);
  kv_rpc_shutdown();
  if (exit_code == 0) KV_INFO("stopped cleanly");
  return exit_code;
}

/* Under systemd, stderr is the journal when JOURNAL_STREAM holds the device and inode of the
 * stream stderr is (systemd.exec(5)); a stderr redirected elsewhere keeps plain lines. */
static bool stderr_is_journal(void) {
  const char *stream = getenv("JOURNAL_STREAM");
  unsigned long long dev, ino;
  struct stat sb;
  return stream && sscanf(stream, "%llu:%llu", &dev, &ino) == 2 && fstat(2, &sb) == 0 &&
         (unsigned long long)sb.st_dev == dev && (unsigned long long)sb.st_ino == ino;
}

/* --check-config's one line: what the file holds, as the node would run it. */
static void print_summary(const kv_config_t *cfg, const kv_node_conf_t *self,
                          bool tls_unchecked) {
  uint32_t regions = 0;
  for (uint32_t i = 0; i < cfg->node_count; i++) {
    uint32_t j = 0;
    while (j < i && strcmp(cfg->nodes[j].region, cfg->nodes[i].region) != 0) j++;
    regions += j == i;
  }
  printf("kvnode: %s: ok: cluster %s, %u node(s) in %u region(s), %u keyspace(s), %u "
         "partitions", cfg->path, cfg->cluster_name, cfg->node_count, regions,
         cfg->keyspace_count, cfg->partitions);
  if (self) printf("; node %s at %s", self->id, self->address);
  if (cfg->tls.enabled)
    printf("; tls (client_auth %s%s), %u token(s)",
           cfg->tls.client_auth_required ? "require" : "optional",
           tls_unchecked ? "; its files name {node}: give --node to check them" : "",
           cfg->token_count);
  printf("\n");
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
  const kv_node_conf_t *self = a.node_id ? kv_config_node(&cfg, a.node_id) : NULL;
  if (a.node_id && !self) {
    fprintf(stderr, "kvnode: %s:%u: node '%s' is not in the nodes list of this file\n",
            cfg.path, cfg.nodes_line, a.node_id);
    return 2;
  }
  /* A plugin that does not load is a config error: the keyspace cannot run as configured. */
  if (kv_plugins_load(&cfg, &st) != KV_OK) {
    fprintf(stderr, "kvnode: %s\n", st.msg);
    return 2;
  }
  /* Certificates that do not load are config errors too: the node cannot serve as configured. */
  kv_tls_t *tls = NULL;
  bool per_node_files = strstr(cfg.tls.cert, "{node}") || strstr(cfg.tls.key, "{node}") ||
                        strstr(cfg.tls.ca, "{node}");
  bool check_tls = cfg.tls.enabled && (a.node_id || !per_node_files);
  if (check_tls && kv_tls_load(&cfg, a.node_id, &tls, &st) != KV_OK) {
    fprintf(stderr, "kvnode: %s\n", st.msg);
    return 2;
  }
  if (a.check_only) {
    print_summary(&cfg, self, cfg.tls.enabled && !check_tls);
    kv_tls_destroy(tls);
    return 0;
  }
  kv_log_set_prefix(self->id);
  kv_log_set_journal(stderr_is_journal());
  return run(&a, &cfg, self, tls);
}
