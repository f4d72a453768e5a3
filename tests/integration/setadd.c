/* setadd.c: a client for the split-brain test (splitbrain.sh), after Jepsen's Riak test: it
 * adds unique members to one key's set by read-modify-write with the context, in a loop.
 *   setadd HOST:PORT KEY SECONDS PACE_MS PREFIX OUT KEYSPACE...
 * Each round, for each keyspace in turn: get the key at ONE, take the union of the members of
 * every sibling the answer shows (the server's handler may already have resolved them to
 * one), add "PREFIX-N" (N counts up), and put the new set with the answer's context at ONE.
 * A put that the node acknowledges appends the member to OUT.KEYSPACE (one per line): the
 * adds the cluster owes. Removal markers ("-x", common/conflict.h) are kept. Runs SECONDS,
 * sleeping PACE_MS between rounds; prints "PREFIX: N acknowledged, N failed" at the end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tunekv.h"

#define KEYSPACES_MAX 8

typedef struct {
  char **lines;
  size_t n, cap;
} set_t;

static void set_add(set_t *s, const char *p, size_t len) {
  for (size_t i = 0; i < s->n; i++)
    if (strlen(s->lines[i]) == len && memcmp(s->lines[i], p, len) == 0) return;
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 256;
    s->lines = realloc(s->lines, s->cap * sizeof *s->lines);
  }
  s->lines[s->n] = strndup(p, len);
  s->n++;
}

static void set_free(set_t *s) {
  for (size_t i = 0; i < s->n; i++) free(s->lines[i]);
  free(s->lines);
  memset(s, 0, sizeof *s);
}

/* Every line of every sibling: the client-side union. */
static void set_from(const kv_client_result_t *r, set_t *s) {
  for (size_t i = 0; i < r->n_siblings; i++) {
    const char *p = (const char *)r->siblings[i].value, *end = p + r->siblings[i].value_bytes;
    while (p < end) {
      const char *nl = memchr(p, '\n', (size_t)(end - p));
      const char *stop = nl ? nl : end;
      if (stop > p) set_add(s, p, (size_t)(stop - p));
      p = stop + 1;
    }
  }
}

static char *set_join(const set_t *s, size_t *bytes) {
  size_t n = 0;
  for (size_t i = 0; i < s->n; i++) n += strlen(s->lines[i]) + 1;
  char *out = malloc(n + 1), *at = out;
  for (size_t i = 0; i < s->n; i++) at += sprintf(at, "%s\n", s->lines[i]);
  *bytes = n;
  return out;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One read-modify-write adding member; true when the put was acknowledged. */
static bool add_one(kv_client_t *c, const char *keyspace, const char *key, const char *member) {
  kv_client_opts_t o = KV_CLIENT_OPTS_INIT;
  o.level = "ONE";
  o.timeout_ms = 1000;
  kv_client_result_t r;
  kv_client_status_t st;
  if (kv_client_get(c, keyspace, key, strlen(key), &o, &r, &st) != KV_OK) return false;
  set_t s = {0};
  set_from(&r, &s);
  set_add(&s, member, strlen(member));
  size_t bytes;
  char *value = set_join(&s, &bytes);
  kv_client_result_t w;
  bool ok = kv_client_put(c, keyspace, key, strlen(key), value, bytes, r.context,
                          r.context_bytes, &o, &w, &st) == KV_OK;
  kv_client_result_free(&w);
  kv_client_result_free(&r);
  free(value);
  set_free(&s);
  return ok;
}

int main(int argc, char **argv) {
  if (argc < 8 || argc - 7 > KEYSPACES_MAX) {
    fprintf(stderr, "usage: setadd HOST:PORT KEY SECONDS PACE_MS PREFIX OUT KEYSPACE...\n");
    return 2;
  }
  const char *addr = argv[1], *key = argv[2], *prefix = argv[5], *out = argv[6];
  double seconds = atof(argv[3]);
  long pace_ms = atol(argv[4]);
  int nks = argc - 7;
  FILE *acked[KEYSPACES_MAX];
  for (int k = 0; k < nks; k++) {
    char path[512];
    snprintf(path, sizeof path, "%s.%s", out, argv[7 + k]);
    acked[k] = fopen(path, "w");
    if (!acked[k]) {
      perror(path);
      return 2;
    }
  }
  kv_client_t *c;
  kv_client_status_t st;
  if (kv_client_open(addr, &c, &st) != KV_OK) {
    fprintf(stderr, "setadd: %s: %s\n", addr, st.msg);
    return 2;
  }
  unsigned long n = 0, ok = 0, failed = 0;
  double end = now_s() + seconds;
  while (now_s() < end) {
    for (int k = 0; k < nks; k++) {
      char member[64];
      snprintf(member, sizeof member, "%s-%lu", prefix, n++);
      if (add_one(c, argv[7 + k], key, member)) {
        fprintf(acked[k], "%s\n", member);
        fflush(acked[k]);
        ok++;
      } else {
        failed++;
      }
    }
    struct timespec pause = {pace_ms / 1000, (pace_ms % 1000) * 1000000L};
    nanosleep(&pause, NULL);
  }
  for (int k = 0; k < nks; k++) fclose(acked[k]);
  kv_client_close(c);
  printf("%s: %lu acknowledged, %lu failed\n", prefix, ok, failed);
  return 0;
}
