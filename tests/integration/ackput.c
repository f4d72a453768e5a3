/* ackput.c: a client for the drain test (service.sh) that writes down what the cluster owes.
 *
 *   ackput put ADDR[,ADDR..] PREFIX SECONDS CONCURRENCY OUT
 *   ackput check ADDR IN LEVEL [VIA]
 *
 * put writes new keys PREFIX-0, PREFIX-1, ... (each once; the value is the key) at QUORUM,
 * CONCURRENCY in flight on libtunekv's async API, round-robin over the addresses, for
 * SECONDS, then waits for the calls in flight. Every put a node acknowledges appends
 * "KEY ADDR" to OUT, flushed at once, so a test can wait for the file to grow; a put that
 * fails is not written down (it may or may not have landed, and is owed nothing). It ends
 * with "ackput: N acknowledged, N failed" on stdout and the first failure on stderr.
 *
 * check reads every key of IN through ADDR at LEVEL ("local": the node's own replica only,
 * kvctl get --local), or only those acknowledged through VIA when given, and expects exactly
 * one version whose value is the key. It prints "ackput: N acknowledged, N read back, N
 * missing, N wrong" and the first few keys that failed; exit 0 when none did, 3 otherwise. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tunekv.h"

#define ADDRS_MAX 16
#define SHOWN_MAX 5

typedef struct {
  char key[64];
  int addr;             /* index into the put's addresses */
} slot_t;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct {
  char *names[ADDRS_MAX];
  kv_client_t *clients[ADDRS_MAX];
  int n_addrs;
  const char *prefix;
  kv_client_async_t *async;
  kv_client_opts_t opts;
  unsigned long next;   /* the next key's number */
  double end;           /* no put starts after this */
} run_t;

/* Starts the next put in slot s; false when the time is up or it cannot start. */
static bool start_one(run_t *r, slot_t *s) {
  if (now_s() >= r->end) return false;
  snprintf(s->key, sizeof s->key, "%s-%lu", r->prefix, r->next);
  s->addr = (int)(r->next % (unsigned long)r->n_addrs);
  r->next++;
  kv_client_status_t st;
  return kv_client_async_start_put(r->async, r->clients[s->addr], "default", s->key,
                                   strlen(s->key), s->key, strlen(s->key), NULL, 0, &r->opts,
                                   s, &st) == KV_OK;
}

static int put_main(char *addrs, const char *prefix, double seconds, unsigned conc,
                    const char *out_path) {
  static run_t r;
  kv_client_status_t st;
  for (char *save, *a = strtok_r(addrs, ",", &save); a && r.n_addrs < ADDRS_MAX;
       a = strtok_r(NULL, ",", &save)) {
    r.names[r.n_addrs] = a;
    if (kv_client_open(a, &r.clients[r.n_addrs], &st) != KV_OK) {
      fprintf(stderr, "ackput: %s: %s\n", a, st.msg);
      return 2;
    }
    r.n_addrs++;
  }
  FILE *out = fopen(out_path, "w");
  slot_t *slots = calloc(conc, sizeof *slots);
  if (!out || !slots || r.n_addrs == 0 || kv_client_async_create(conc, &r.async, &st) != KV_OK) {
    fprintf(stderr, "ackput: cannot start (%s)\n", out ? "no addresses or memory" : out_path);
    return 2;
  }
  r.prefix = prefix;
  r.opts = (kv_client_opts_t)KV_CLIENT_OPTS_INIT;
  r.opts.level = "QUORUM";
  r.opts.timeout_ms = 2000;
  r.end = now_s() + seconds;
  unsigned long acked = 0, failed = 0;
  char first_failure[KV_STATUS_MSG_BYTES + 128] = "";
  for (unsigned i = 0; i < conc; i++) start_one(&r, &slots[i]);
  kv_client_completion_t done;
  while (kv_client_async_next(r.async, -1, &done) == 1) {
    slot_t *s = done.tag;
    if (done.status.code == KV_OK) {
      fprintf(out, "%s %s\n", s->key, r.names[s->addr]);
      fflush(out);
      acked++;
    } else if (!failed++) {
      snprintf(first_failure, sizeof first_failure, "%s through %s: %s: %s", s->key,
               r.names[s->addr], kv_client_status_name(&done.status), done.status.msg);
    }
    start_one(&r, s);
  }
  fclose(out);
  kv_client_async_destroy(r.async);
  for (int i = 0; i < r.n_addrs; i++) kv_client_close(r.clients[i]);
  free(slots);
  printf("ackput: %lu acknowledged, %lu failed\n", acked, failed);
  if (failed) fprintf(stderr, "ackput: first failure: %s\n", first_failure);
  return 0;
}

/* One acknowledged key read back: 0 right, 1 missing, 2 wrong (a sentence in why). */
static int check_one(kv_client_t *c, const char *key, const kv_client_opts_t *o, char *why,
                     size_t why_bytes) {
  kv_client_result_t r;
  kv_client_status_t st;
  if (kv_client_get(c, "default", key, strlen(key), o, &r, &st) != KV_OK) {
    snprintf(why, why_bytes, "%s: %s: %s", key, kv_client_status_name(&st), st.msg);
    return 2;
  }
  int rc = 0;
  if (!r.found) {
    snprintf(why, why_bytes, "%s: not found", key);
    rc = 1;
  } else if (r.n_siblings != 1 || r.siblings[0].value_bytes != strlen(key) ||
             memcmp(r.siblings[0].value, key, strlen(key)) != 0) {
    snprintf(why, why_bytes, "%s: %zu version(s), the first %zu bytes", key, r.n_siblings,
             r.siblings[0].value_bytes);
    rc = 2;
  }
  kv_client_result_free(&r);
  return rc;
}

static int check_main(const char *addr, const char *in_path, const char *level,
                      const char *via) {
  kv_client_t *c;
  kv_client_status_t st;
  FILE *in = fopen(in_path, "r");
  if (!in || kv_client_open(addr, &c, &st) != KV_OK) {
    fprintf(stderr, "ackput: cannot check (%s)\n", in ? st.msg : in_path);
    return 2;
  }
  kv_client_opts_t o = KV_CLIENT_OPTS_INIT;
  o.timeout_ms = 2000;
  if (strcmp(level, "local") == 0) o.local = true;
  else o.level = level;
  unsigned long n = 0, counts[3] = {0};
  char key[64], from[256], why[KV_STATUS_MSG_BYTES + 128];
  while (fscanf(in, "%63s %255s", key, from) == 2) {
    if (via && strcmp(from, via) != 0) continue;
    n++;
    int rc = check_one(c, key, &o, why, sizeof why);
    if (rc && counts[1] + counts[2] < SHOWN_MAX) fprintf(stderr, "ackput: %s\n", why);
    counts[rc]++;
  }
  fclose(in);
  kv_client_close(c);
  printf("ackput: %lu acknowledged, %lu read back, %lu missing, %lu wrong\n", n, counts[0],
         counts[1], counts[2]);
  return counts[1] + counts[2] == 0 ? 0 : 3;
}

int main(int argc, char **argv) {
  if (argc == 7 && strcmp(argv[1], "put") == 0) {
    unsigned conc = (unsigned)atoi(argv[5]);
    if (conc < 1 || conc > KV_CLIENT_ASYNC_MAX) conc = 1;
    return put_main(argv[2], argv[3], atof(argv[4]), conc, argv[6]);
  }
  if ((argc == 5 || argc == 6) && strcmp(argv[1], "check") == 0)
    return check_main(argv[2], argv[3], argv[4], argc == 6 ? argv[5] : NULL);
  fprintf(stderr, "usage: ackput put ADDR[,ADDR..] PREFIX SECONDS CONCURRENCY OUT\n"
                  "       ackput check ADDR IN LEVEL [VIA]\n");
  return 2;
}
