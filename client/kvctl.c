/* kvctl.c: the tunekv command line (DESIGN section 12), over libtunekv.
 *
 *   kvctl [-a HOST:PORT] put KEYSPACE KEY VALUE [-c LEVEL] [-w N] [--durable] [--context CTX]
 *         [-H HANDLER]
 *   kvctl [-a HOST:PORT] get KEYSPACE KEY [-c LEVEL] [-r N] [--local] [--read-repair MODE]
 *         [-H HANDLER] [--json]
 *   kvctl [-a HOST:PORT] delete KEYSPACE KEY [-c LEVEL] [--context CTX] [-H HANDLER]
 *   (every command also takes --timeout MS)
 *   kvctl [-a HOST:PORT] status
 *   kvctl [-a HOST:PORT] conflicts [--json]
 *   kvctl [-a HOST:PORT] applied KEYSPACE KEY
 *   kvctl [-a HOST:PORT] ring [KEYSPACE KEY] [--json]
 *   kvctl [-a HOST:PORT] fault set PEER[,PEER...] [--delay-ms N] [--jitter-ms N]
 *                                  [--exp-delay-ms N] [--both-ways] [--drop P]
 *                                                  [--partition]
 *   kvctl [-a HOST:PORT] fault clear [PEER[,PEER...]]
 *   kvctl [-a HOST:PORT] fault list
 *
 * Options may come before or after the positional arguments; "--" ends the options (so a
 * value starting with '-' can be given), and "-" alone is a positional argument (as VALUE
 * it means standard input). Long options also take "--name=value".
 *
 * Exit status: 0 ok, 1 key not found (get), 2 usage error (including a bad --context, an
 * unreadable or over-long standard input), 3 an error from the cluster,
 * printed on stderr as "<GRPC_STATUS_NAME>: <message>".
 *
 * Output: put and delete print the new context in base64 and a newline. get prints each
 * sibling's value followed by a newline (raw bytes, one sibling per line); --json prints one
 * line {"found": bool, "siblings": [{"value": "...", "value_b64": "..."}], "context": "..."}
 * where value is the JSON-escaped value (bytes that are not UTF-8 become \ufffd) and
 * value_b64 and context are base64 (standard alphabet, padded). Not found prints nothing on
 * stdout (or the JSON with found false) and "kvctl: not found" on stderr (not with --json).
 * status prints one line per peer: id, address, up or down, phi, when last heard from; then
 * replication lag; then one line per peer on the anti-entropy exchanges this node started
 * with it: how many, how many failed, when the last finished, keys it and all repaired;
 * and each peer's clock offset, with a "clock of PEER is SKEWED" line per peer whose clock is
 * off by more than the config's max_clock_skew_ms.
 * fault set and fault clear print nothing; fault list prints one line per peer with a fault,
 * "PEER delay N ms, jitter N ms, drop P" (with "exponential N ms, " before the drop when one
 * is set), with " (partition)" after a drop of 1 and ", both ways" when answers are held too. Fault values
 * are checked for form here and for range by the node.
 * conflicts prints the node's conflict journal, oldest first: per entry a line
 * "#SEQ TIME KEYSPACE/KEY by HANDLER on REASON" (" (suspect clock)" when so), then "  kept ..."
 * and one "  discarded ..." line per version, each "NODE/INCARNATION:COUNTER hlc HLC VALUE"
 * (VALUE JSON-quoted; "(merged)" for a merged value, "(delete)" for a tombstone); then one
 * line of discarded-version counts per handler. With --json: one JSON object per entry and
 * line, then {"counts": {HANDLER: N, ...}, "evicted": N}; values as in get --json.
 * applied asks the node when each replica applied the newest write of the key it coordinated
 * (Admin.Applied): a line "acked ACKED_MS", then per replica "NODE APPLIED_MS LAG ms" (wall-clock
 * ms since the epoch on each node; LAG is APPLIED_MS - ACKED_MS, negative for a replica that
 * had it before W was met).
 * ring (Admin.Ring) prints the ring as the node asked sees it: a line "ring as NODE sees it: Q
 * partitions, S nodes, K keyspaces", a line per node (id, address, region, rack or "-", up or
 * down, how many partitions of each keyspace it is a primary of), then per keyspace its
 * replication and a line per (partition, region): the primaries and the fallbacks of that
 * region, each "ID/RACK" in ring order, ":down" after one the node believes down and ">ID"
 * after a primary another node stands in for now ("-": none). ring KEYSPACE KEY prints the
 * key's partition, a line per primary (id, region, rack, state, its stand-in: "-" when up,
 * "none" when down with no fallback), a line per fallback, and "uses now: ID..." (the live
 * primaries, then the stand-ins: what a request would use). With --json: one object, with the
 * same facts ("stand_in": null when none). */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "level.h"
#include "kv_limits.h"
#include "cli_auth.h"
#include "tunekv.h"

enum { EXIT_OK = 0, EXIT_NOT_FOUND = 1, EXIT_USAGE = 2, EXIT_CLUSTER = 3 };

#define DEFAULT_ADDR "127.0.0.1:7001"

/* Options, as bits, so each command can say which it takes. */
enum {
  OPT_LEVEL = 1 << 0,
  OPT_W = 1 << 1,
  OPT_R = 1 << 2,
  OPT_DURABLE = 1 << 3,
  OPT_LOCAL = 1 << 4,
  OPT_JSON = 1 << 5,
  OPT_CONTEXT = 1 << 6,
  OPT_DELAY = 1 << 7,
  OPT_JITTER = 1 << 8,
  OPT_DROP = 1 << 9,
  OPT_PARTITION = 1 << 10,
  OPT_REPAIR = 1 << 11,
  OPT_PW = 1 << 12,
  OPT_PR = 1 << 13,
  OPT_HANDLER = 1 << 14,
  OPT_EXP_DELAY = 1 << 15,
  OPT_BOTH_WAYS = 1 << 16,
};
#define OPTS_FAULT \
  (OPT_DELAY | OPT_JITTER | OPT_EXP_DELAY | OPT_BOTH_WAYS | OPT_DROP | OPT_PARTITION)

static const struct {
  int bit;
  const char *name;
} opt_names[] = {{OPT_LEVEL, "-c"},        {OPT_W, "-w"},        {OPT_R, "-r"},
                 {OPT_DURABLE, "--durable"}, {OPT_LOCAL, "--local"}, {OPT_JSON, "--json"},
                 {OPT_CONTEXT, "--context"}, {OPT_DELAY, "--delay-ms"},
                 {OPT_JITTER, "--jitter-ms"}, {OPT_DROP, "--drop"},
                 {OPT_PARTITION, "--partition"}, {OPT_REPAIR, "--read-repair"},
                 {OPT_PW, "--pw"},          {OPT_PR, "--pr"},
                 {OPT_HANDLER, "-H"},
                 {OPT_EXP_DELAY, "--exp-delay-ms"}, {OPT_BOTH_WAYS, "--both-ways"}};

#define POSITIONALS_MAX 8

typedef struct {
  const char *addr;
  kv_client_auth_t auth;            /* --tls-*, --token (cli_auth.h) */
  const char *pos[POSITIONALS_MAX]; /* pos[0] is the command */
  int n_pos;
  int used;                         /* OPT_* bits given */
  const char *level;
  uint32_t r, w, pr, pw, timeout_ms;
  bool durable, local, json, help;
  const char *context_b64;
  const char *read_repair;
  const char *handler;
  int64_t delay_ms, jitter_ms, exp_delay_ms; /* fault set */
  double drop;
  bool partition, both_ways;
} args_t;

static void usage(FILE *f) {
  fprintf(f,
          "usage: kvctl [-a HOST:PORT] [--timeout MS] COMMAND ARGS...\n"
          "\n"
          "commands:\n"
          "  put KEYSPACE KEY VALUE [-c LEVEL] [-w N] [--pw N] [--durable] [--context CTX]\n"
          "      [-H HANDLER]\n"
          "        write VALUE (\"-\" reads it from standard input); prints the new context\n"
          "  get KEYSPACE KEY [-c LEVEL] [-r N] [--pr N] [--local] [--read-repair MODE] [-H HANDLER]\n"
          "      [--json]\n"
          "        print the value, or one line per sibling\n"
          "  delete KEYSPACE KEY [-c LEVEL] [--context CTX] [-H HANDLER]\n"
          "        delete the key; prints the new context. Without --context, the node\n"
          "        reads the key at LEVEL (ANY reads at ONE) and deletes every version that\n"
          "        read found; with it, only the versions CTX covers (what you read), so\n"
          "        one written since stays\n"
          "  status\n"
          "        this node, its peers (up or down, phi, last heard) and replication lag\n"
          "  hints\n"
          "        hints this node keeps for each peer (pending, bytes, delivered, dropped)\n"
          "  fault set PEER[,PEER...] [--delay-ms N] [--jitter-ms N] [--exp-delay-ms N]\n"
          "            [--both-ways] [--drop P] [--partition]\n"
          "        hold each call this node makes to those peers N ms plus up to the jitter\n"
          "        plus an exponential delay of mean --exp-delay-ms (--both-ways: their\n"
          "        answers too, for a round trip),\n"
          "        or lose it with probability P (0..1); --partition loses every one\n"
          "  fault clear [PEER[,PEER...]]\n"
          "        remove the faults of those peers (of all, without PEER)\n"
          "  fault list\n"
          "        the faults in force, one line per peer (fault needs a node started with\n"
          "        --allow-fault-injection)\n"
          "  conflicts [--json]\n"
          "        the versions this node's conflict handlers discarded (its journal)\n"
          "  applied KEYSPACE KEY\n"
          "        when each replica applied the newest write of KEY this node coordinated\n"
          "        (it keeps its last 4096), against when the write was acknowledged\n"
          "  ring [KEYSPACE KEY] [--json]\n"
          "        the ring as this node sees it: its nodes (region, rack, up or down,\n"
          "        partitions each is a primary of) and, per keyspace, every partition's\n"
          "        primaries and fallbacks by region; with KEYSPACE KEY, the key's partition,\n"
          "        primaries, fallbacks and the nodes a request would use now\n"
          "\n"
          "options (before or after the arguments; \"--\" ends them):\n"
          "  -a HOST:PORT    node to ask (default $TUNEKV_ADDR, else " DEFAULT_ADDR ")\n"
          "  -c LEVEL        consistency: %s\n"
          "  -w N, -r N      explicit write acks / read replies\n"
          "  --pw N, --pr N  of those, how many must come from primary replicas (a fallback\n"
          "                  standing in for a dead one does not count)\n"
          "  --durable       acknowledge only after fsync\n"
          "  --context CTX   causal context (base64) from an earlier get or put\n"
          "  --local         read only that node's own replica (and the hints it keeps)\n"
          "  --read-repair MODE  blocking (repair replicas found behind, then answer; the\n"
          "                  default at QUORUM and above) or async (answer, then repair)\n"
          "  -H HANDLER      conflict handler for the answer (siblings, lww, region-priority,\n"
          "                  set-union, or a plugin:PATH the config names; default: the\n"
          "                  keyspace's); a get's read repair writes its resolution back\n"
          "  --json          print the get result (or the conflicts, or the ring) as JSON\n"
          "  --timeout MS    the server's deadline for the request\n"
          KV_CLI_AUTH_USAGE
          "  -h, --help      this text\n"
          "\n"
          "exit status: 0 ok, 1 key not found, 2 usage error, 3 error from the cluster\n",
          kv_level_names_list());
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("kvctl: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputs("\n", stderr);
  va_end(ap);
  return EXIT_USAGE;
}

/* ---- base64 ------------------------------------------------------------------------ */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void b64_print(FILE *f, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16;
    if (i + 1 < n) v |= (uint32_t)p[i + 1] << 8;
    if (i + 2 < n) v |= p[i + 2];
    char out[4] = {b64_alphabet[(v >> 18) & 63], b64_alphabet[(v >> 12) & 63],
                   i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=',
                   i + 2 < n ? b64_alphabet[v & 63] : '='};
    fwrite(out, 1, 4, f);
  }
}

static int b64_value(char c) {
  const char *p = c ? strchr(b64_alphabet, c) : NULL;
  return p ? (int)(p - b64_alphabet) : -1;
}

/* Decodes standard base64, padded or not; false on anything else (bad characters, bad
 * length, non-zero leftover bits). *out is malloc'd, NULL when empty. */
static bool b64_decode(const char *s, uint8_t **out, size_t *out_bytes) {
  size_t len = strlen(s), pad = 0;
  while (pad < 2 && pad < len && s[len - 1 - pad] == '=') pad++;
  size_t n = len - pad;
  if ((pad > 0 && len % 4 != 0) || n % 4 == 1) return false;
  *out = NULL;
  *out_bytes = 0;
  if (n == 0) return true;
  uint8_t *buf = malloc(n / 4 * 3 + 3);
  if (!buf) return false;
  size_t used = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    int v = b64_value(s[i]);
    if (v < 0) {
      free(buf);
      return false;
    }
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      buf[used++] = (uint8_t)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  if (acc != 0) {
    free(buf);
    return false;
  }
  *out = buf;
  *out_bytes = used;
  return true;
}

/* ---- JSON -------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0 when it is not one. */
static size_t utf8_len(const uint8_t *p, size_t n) {
  uint8_t c = p[0];
  size_t len;
  uint32_t cp, min;
  if (c < 0x80) return 1;
  if ((c & 0xe0) == 0xc0) len = 2, cp = c & 0x1f, min = 0x80;
  else if ((c & 0xf0) == 0xe0) len = 3, cp = c & 0x0f, min = 0x800;
  else if ((c & 0xf8) == 0xf0) len = 4, cp = c & 0x07, min = 0x10000;
  else return 0;
  if (len > n) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((p[i] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (p[i] & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return len;
}

static void json_string(FILE *f, const uint8_t *p, size_t n) {
  fputc('"', f);
  for (size_t i = 0; i < n;) {
    uint8_t c = p[i];
    size_t len = utf8_len(p + i, n - i);
    if (len == 0) {
      fputs("\\ufffd", f);
      i++;
      continue;
    }
    if (c == '"') fputs("\\\"", f);
    else if (c == '\\') fputs("\\\\", f);
    else if (c == '\n') fputs("\\n", f);
    else if (c == '\r') fputs("\\r", f);
    else if (c == '\t') fputs("\\t", f);
    else if (c == '\b') fputs("\\b", f);
    else if (c == '\f') fputs("\\f", f);
    else if (c < 0x20) fprintf(f, "\\u%04x", c);
    else fwrite(p + i, 1, len, f);
    i += len;
  }
  fputc('"', f);
}

/* ---- arguments --------------------------------------------------------------------- */

/* A whole number in [min, max], digits only. */
static bool parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out) {
  if (!*s) return false;
  uint64_t v = 0;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9') return false;
    v = v * 10 + (uint64_t)(*p - '0');
    if (v > max) return false;
  }
  if (v < min) return false;
  *out = (uint32_t)v;
  return true;
}

/* A whole number, maybe negative: the node, not kvctl, judges its range. */
static bool parse_i64(const char *s, int64_t *out) {
  const char *digits = s + (*s == '-');
  if (!*digits || strlen(digits) > 18) return false;
  int64_t v = 0;
  for (const char *p = digits; *p; p++) {
    if (*p < '0' || *p > '9') return false;
    v = v * 10 + (*p - '0');
  }
  *out = *s == '-' ? -v : v;
  return true;
}

/* A decimal number ("0.25", "1", "-0.5"), no exponent: the node judges its range. */
static bool parse_number(const char *s, double *out) {
  const char *digits = s + (*s == '-');
  size_t n = strspn(digits, "0123456789");
  if (n == 0) return false;
  if (digits[n] == '.') {
    size_t fraction = strspn(digits + n + 1, "0123456789");
    if (fraction == 0) return false;
    n += 1 + fraction;
  }
  if (digits[n] != '\0') return false;
  *out = strtod(s, NULL);
  return true;
}

/* The option's value: after '=' in "--name=value", else the next argument. */
static const char *opt_value(int argc, char **argv, int *i, const char *inline_value) {
  if (inline_value) return inline_value;
  if (*i + 1 >= argc) return NULL;
  return argv[++*i];
}

static int parse_args(int argc, char **argv, args_t *a) {
  memset(a, 0, sizeof *a);
  bool options_done = false;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (options_done || arg[0] != '-' || strcmp(arg, "-") == 0) {
      if (a->n_pos == POSITIONALS_MAX) return usage_error("too many arguments");
      a->pos[a->n_pos++] = arg;
      continue;
    }
    if (strcmp(arg, "--") == 0) {
      options_done = true;
      continue;
    }
    /* Split "--name=value" for long options. */
    char name[32];
    const char *inline_value = NULL;
    const char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
    size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
    if (name_len >= sizeof name) return usage_error("unknown option '%s'", arg);
    memcpy(name, arg, name_len);
    name[name_len] = '\0';
    if (eq) inline_value = eq + 1;

    bool takes_value = !strcmp(name, "-a") || !strcmp(name, "-c") || !strcmp(name, "-w") ||
                       !strcmp(name, "-r") || !strcmp(name, "--pw") || !strcmp(name, "--pr") ||
                       !strcmp(name, "--context") ||
                       !strcmp(name, "--timeout") || !strcmp(name, "--delay-ms") ||
                       !strcmp(name, "--jitter-ms") || !strcmp(name, "--drop") ||
                       !strcmp(name, "--exp-delay-ms") ||
                       !strcmp(name, "--read-repair") || !strcmp(name, "-H") ||
                       kv_cli_auth_is_option(name);
    bool is_flag = !strcmp(name, "--durable") || !strcmp(name, "--local") ||
                   !strcmp(name, "--json") || !strcmp(name, "--partition") ||
                   !strcmp(name, "--both-ways") ||
                   !strcmp(name, "-h") || !strcmp(name, "--help");
    if (!takes_value && !is_flag) return usage_error("unknown option '%s'", name);
    if (is_flag && inline_value) return usage_error("option '%s' takes no value", name);
    const char *v = NULL;
    if (takes_value) {
      v = opt_value(argc, argv, &i, inline_value);
      if (!v) return usage_error("option '%s' needs a value", name);
    }
    if (!strcmp(name, "-a")) {
      if (!*v) return usage_error("-a needs HOST:PORT");
      a->addr = v;
    } else if (kv_cli_auth_is_option(name)) {
      if (!*v) return usage_error("option '%s' needs a value", name);
      kv_cli_auth_set(&a->auth, name, v);
    } else if (!strcmp(name, "-c")) {
      a->level = v;
      a->used |= OPT_LEVEL;
    } else if (!strcmp(name, "-w") || !strcmp(name, "-r")) {
      uint32_t *dst = name[1] == 'w' ? &a->w : &a->r;
      if (!parse_u32(v, 1, UINT32_MAX, dst))
        return usage_error("%s needs a whole number from 1 up, not '%s'", name, v);
      a->used |= name[1] == 'w' ? OPT_W : OPT_R;
    } else if (!strcmp(name, "--pw") || !strcmp(name, "--pr")) {
      uint32_t *dst = name[3] == 'w' ? &a->pw : &a->pr;
      if (!parse_u32(v, 1, UINT32_MAX, dst))
        return usage_error("%s needs a whole number from 1 up, not '%s'", name, v);
      a->used |= name[3] == 'w' ? OPT_PW : OPT_PR;
    } else if (!strcmp(name, "--timeout")) {
      if (!parse_u32(v, 1, KV_TIMEOUT_MS_MAX, &a->timeout_ms))
        return usage_error("--timeout needs milliseconds from 1 to %u, not '%s'",
                           KV_TIMEOUT_MS_MAX, v);
    } else if (!strcmp(name, "--context")) {
      a->context_b64 = v;
      a->used |= OPT_CONTEXT;
    } else if (!strcmp(name, "--read-repair")) {
      a->read_repair = v;
      a->used |= OPT_REPAIR;
    } else if (!strcmp(name, "-H")) {
      a->handler = v;
      a->used |= OPT_HANDLER;
    } else if (!strcmp(name, "--durable")) {
      a->durable = true;
      a->used |= OPT_DURABLE;
    } else if (!strcmp(name, "--local")) {
      a->local = true;
      a->used |= OPT_LOCAL;
    } else if (!strcmp(name, "--json")) {
      a->json = true;
      a->used |= OPT_JSON;
    } else if (!strcmp(name, "--delay-ms") || !strcmp(name, "--jitter-ms")) {
      bool delay = name[2] == 'd';
      if (!parse_i64(v, delay ? &a->delay_ms : &a->jitter_ms))
        return usage_error("%s needs a whole number of milliseconds, not '%s'", name, v);
      a->used |= delay ? OPT_DELAY : OPT_JITTER;
    } else if (!strcmp(name, "--exp-delay-ms")) {
      if (!parse_i64(v, &a->exp_delay_ms))
        return usage_error("%s needs a whole number of milliseconds, not '%s'", name, v);
      a->used |= OPT_EXP_DELAY;
    } else if (!strcmp(name, "--drop")) {
      if (!parse_number(v, &a->drop))
        return usage_error("--drop needs a number such as 0.25, not '%s'", v);
      a->used |= OPT_DROP;
    } else if (!strcmp(name, "--both-ways")) {
      a->both_ways = true;
      a->used |= OPT_BOTH_WAYS;
    } else if (!strcmp(name, "--partition")) {
      a->partition = true;
      a->used |= OPT_PARTITION;
    } else {
      a->help = true;
    }
  }
  return EXIT_OK;
}

/* Usage error when an option not in `allowed` was given to the command called name. */
static int check_options(const args_t *a, const char *name, int allowed) {
  for (size_t i = 0; i < sizeof opt_names / sizeof opt_names[0]; i++)
    if ((a->used & opt_names[i].bit) && !(allowed & opt_names[i].bit))
      return usage_error("%s does not take %s", name, opt_names[i].name);
  return EXIT_OK;
}

/* Usage error unless the command got exactly `want` arguments and only options in `allowed`. */
static int check_command(const args_t *a, int want, const char *synopsis, int allowed) {
  const char *cmd = a->pos[0];
  if (a->n_pos - 1 != want)
    return usage_error("%s: %s arguments; usage: kvctl %s%s%s", cmd,
                       a->n_pos - 1 < want ? "missing" : "too many", cmd, synopsis[0] ? " " : "",
                       synopsis);
  return check_options(a, cmd, allowed);
}

/* Usage error unless `ring` has no arguments or KEYSPACE KEY, with KEYSPACE not empty ("" ""
 * would ask for the whole ring). */
static int check_ring(const args_t *a) {
  int rc = check_command(a, a->n_pos == 1 ? 0 : 2, "[KEYSPACE KEY] [--json]", OPT_JSON);
  if (rc == EXIT_OK && a->n_pos == 3 && a->pos[1][0] == '\0')
    return usage_error("ring: KEYSPACE is empty; 'kvctl ring' alone shows every keyspace");
  return rc;
}

/* Usage error unless `fault ACTION ...` is well formed; sets *op from ACTION. */
static int check_fault(const args_t *a, kv_client_fault_op_t *op) {
  static const struct {
    const char *action;
    kv_client_fault_op_t op;
    int min, max; /* arguments after the action */
    const char *synopsis;
    int allowed;
  } forms[] = {
      {"set", KV_CLIENT_FAULT_SET, 1, 1,
       " PEER[,PEER...] [--delay-ms N] [--jitter-ms N] [--exp-delay-ms N] [--both-ways]"
       " [--drop P] [--partition]", OPTS_FAULT},
      {"clear", KV_CLIENT_FAULT_CLEAR, 0, 1, " [PEER[,PEER...]]", 0},
      {"list", KV_CLIENT_FAULT_LIST, 0, 0, "", 0}};
  if (a->n_pos < 2)
    return usage_error("fault: missing arguments; usage: kvctl fault set|clear|list ...");
  const char *action = a->pos[1];
  for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
    if (strcmp(action, forms[i].action) != 0) continue;
    int got = a->n_pos - 2;
    if (got < forms[i].min || got > forms[i].max)
      return usage_error("fault %s: %s arguments; usage: kvctl fault %s%s", action,
                         got < forms[i].min ? "missing" : "too many", action, forms[i].synopsis);
    char name[16];
    snprintf(name, sizeof name, "fault %s", action);
    int rc = check_options(a, name, forms[i].allowed);
    if (rc != EXIT_OK) return rc;
    *op = forms[i].op;
    if (*op == KV_CLIENT_FAULT_SET && !(a->used & OPTS_FAULT))
      return usage_error("fault set needs at least one of --delay-ms, --jitter-ms, "
                         "--exp-delay-ms, --both-ways, --drop and --partition");
    if ((a->used & OPT_DROP) && (a->used & OPT_PARTITION))
      return usage_error("fault set takes --drop or --partition, not both");
    return EXIT_OK;
  }
  return usage_error("fault: unknown action '%s'; use set, clear or list", action);
}

/* Reads all of standard input, up to the hard value limit. */
static int read_stdin(uint8_t **out, size_t *out_bytes) {
  size_t cap = 64 * 1024, len = 0;
  uint8_t *buf = malloc(cap);
  if (!buf) return usage_error("out of memory reading standard input");
  for (;;) {
    if (len == cap) {
      if (cap > KV_VALUE_BYTES_HARD_MAX) {
        free(buf);
        return usage_error("the value on standard input is over %u bytes",
                           KV_VALUE_BYTES_HARD_MAX);
      }
      cap *= 2;
      uint8_t *bigger = realloc(buf, cap);
      if (!bigger) {
        free(buf);
        return usage_error("out of memory reading standard input");
      }
      buf = bigger;
    }
    ssize_t n = read(STDIN_FILENO, buf + len, cap - len);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      free(buf);
      return usage_error("cannot read standard input: %s", strerror(e));
    }
    len += (size_t)n;
  }
  if (len > KV_VALUE_BYTES_HARD_MAX) {
    free(buf);
    return usage_error("the value on standard input is over %u bytes", KV_VALUE_BYTES_HARD_MAX);
  }
  *out = buf;
  *out_bytes = len;
  return EXIT_OK;
}

/* ---- commands ---------------------------------------------------------------------- */

static int cluster_error(const kv_client_status_t *st) {
  fprintf(stderr, "%s: %s\n", kv_client_status_name(st), st->msg);
  return EXIT_CLUSTER;
}

static void opts_from(const args_t *a, kv_client_opts_t *o) {
  kv_client_opts_t init = KV_CLIENT_OPTS_INIT;
  *o = init;
  o->level = a->level;
  o->r = a->r;
  o->w = a->w;
  o->pr = a->pr;
  o->pw = a->pw;
  o->durable = a->durable;
  o->local = a->local;
  o->read_repair = a->read_repair;
  o->handler = a->handler;
  o->timeout_ms = a->timeout_ms;
}

static int print_context(const uint8_t *ctx, size_t n) {
  b64_print(stdout, ctx, n);
  fputc('\n', stdout);
  return EXIT_OK;
}

/* After a write, says on stderr when concurrent versions remain beside it. */
static void note_siblings(const kv_client_result_t *r, const char *key, bool is_put) {
  size_t others = r->n_siblings - (is_put && r->n_siblings > 0 ? 1 : 0);
  if (others > 0)
    fprintf(stderr, "kvctl: '%s' also has %zu concurrent version(s); 'get' shows them\n", key,
            others);
}

static int cmd_write(kv_client_t *c, const args_t *a, bool is_put) {
  int rc;
  uint8_t *ctx = NULL, *value = NULL;
  size_t ctx_bytes = 0, value_bytes = 0;
  if (a->context_b64 && !b64_decode(a->context_b64, &ctx, &ctx_bytes))
    return usage_error("--context is not valid base64");
  const char *keyspace = a->pos[1], *key = a->pos[2];
  if (is_put && strcmp(a->pos[3], "-") == 0) {
    rc = read_stdin(&value, &value_bytes);
    if (rc != EXIT_OK) {
      free(ctx);
      return rc;
    }
  }
  kv_client_opts_t o;
  opts_from(a, &o);
  kv_client_status_t st;
  kv_client_result_t r;
  int err;
  if (is_put) {
    const void *v = value ? (const void *)value : a->pos[3];
    size_t vb = value ? value_bytes : strlen(a->pos[3]);
    err = kv_client_put(c, keyspace, key, strlen(key), v, vb, ctx, ctx_bytes, &o, &r, &st);
  } else {
    err = kv_client_delete(c, keyspace, key, strlen(key), ctx, ctx_bytes, &o, &r, &st);
  }
  free(ctx);
  free(value);
  if (err != KV_OK) return cluster_error(&st);
  rc = print_context(r.context, r.context_bytes);
  note_siblings(&r, key, is_put);
  kv_client_result_free(&r);
  return rc;
}

static void print_get_json(const kv_client_result_t *r) {
  printf("{\"found\": %s, \"siblings\": [", r->found ? "true" : "false");
  for (size_t i = 0; i < r->n_siblings; i++) {
    const kv_client_sibling_t *s = &r->siblings[i];
    printf("%s{\"value\": ", i ? ", " : "");
    json_string(stdout, s->value, s->value_bytes);
    fputs(", \"value_b64\": \"", stdout);
    b64_print(stdout, s->value, s->value_bytes);
    fputs("\"}", stdout);
  }
  fputs("], \"context\": \"", stdout);
  b64_print(stdout, r->context, r->context_bytes);
  fputs("\"}\n", stdout);
}

static int cmd_get(kv_client_t *c, const args_t *a) {
  int rc;
  kv_client_opts_t o;
  opts_from(a, &o);
  kv_client_status_t st;
  kv_client_result_t r;
  const char *key = a->pos[2];
  if (kv_client_get(c, a->pos[1], key, strlen(key), &o, &r, &st) != KV_OK)
    return cluster_error(&st);
  if (a->json) {
    print_get_json(&r);
  } else {
    for (size_t i = 0; i < r.n_siblings; i++) {
      fwrite(r.siblings[i].value, 1, r.siblings[i].value_bytes, stdout);
      fputc('\n', stdout);
    }
    if (!r.found) fputs("kvctl: not found\n", stderr);
  }
  rc = r.found ? EXIT_OK : EXIT_NOT_FOUND;
  kv_client_result_free(&r);
  return rc;
}

/* The node's status (malloc'd; the caller frees it), or NULL with *rc set to the exit code
 * after printing why. */
static kv_client_node_status_t *status_fetch(kv_client_t *c, int *rc) {
  kv_client_node_status_t *s = malloc(sizeof *s);
  if (!s) {
    *rc = usage_error("out of memory");
    return NULL;
  }
  kv_client_status_t st;
  if (kv_client_node_status(c, s, &st) != KV_OK) {
    free(s);
    *rc = cluster_error(&st);
    return NULL;
  }
  return s;
}

/* The anti-entropy part of kvctl status: the exchanges this node started with each peer. */
static void status_aae(const kv_client_node_status_t *s) {
  if (s->aae_interval_ms == 0) {
    printf("anti-entropy: off\n");
    return;
  }
  printf("anti-entropy: an exchange with each peer every %u ms\n", s->aae_interval_ms);
  printf("%-12s %9s %6s %16s %13s %14s\n", "peer", "exchanges", "failed", "last exchange",
         "last repaired", "total repaired");
  for (size_t i = 0; i < s->n_peers; i++) {
    const kv_client_peer_t *p = &s->peers[i];
    char last[32] = "never";
    if (p->aae_last_ms_ago >= 0)
      snprintf(last, sizeof last, "%lld ms ago", (long long)p->aae_last_ms_ago);
    printf("%-12s %9llu %6llu %16s %13llu %14llu\n", p->id, (unsigned long long)p->aae_exchanges,
           (unsigned long long)p->aae_failed, last, (unsigned long long)p->aae_last_repaired,
           (unsigned long long)p->aae_keys_repaired);
  }
}

/* Clock sanity: each peer's clock offset, and a line per peer past the bound. */
static void print_clocks(const kv_client_node_status_t *s) {
  printf("clock offsets (peer minus this node; max_clock_skew_ms %u):", s->max_clock_skew_ms);
  for (size_t i = 0; i < s->n_peers; i++) {
    const kv_client_peer_t *p = &s->peers[i];
    if (p->clock_known) printf(" %s %+lld ms", p->id, (long long)p->clock_offset_ms);
    else printf(" %s unknown", p->id);
  }
  printf("\n");
  for (size_t i = 0; i < s->n_peers; i++)
    if (s->peers[i].clock_skewed)
      printf("clock of %s is SKEWED by %+lld ms: lww decisions over its writes are suspect\n",
             s->peers[i].id, (long long)s->peers[i].clock_offset_ms);
}

static int cmd_status(kv_client_t *c) {
  int rc;
  kv_client_node_status_t *s = status_fetch(c, &rc);
  if (!s) return rc;
  printf("node %s of cluster %s (incarnation %016llx)\n", s->node, s->cluster,
         (unsigned long long)s->incarnation);
  printf("%-12s %-24s %-5s %8s %s\n", "peer", "address", "state", "phi", "last heard");
  for (size_t i = 0; i < s->n_peers; i++) {
    const kv_client_peer_t *p = &s->peers[i];
    char heard[32] = "never";
    if (p->last_heard_ms_ago >= 0)
      snprintf(heard, sizeof heard, "%lld ms ago", (long long)p->last_heard_ms_ago);
    printf("%-12s %-24s %-5s %8.1f %s\n", p->id, p->address, p->up ? "up" : "down", p->phi,
           heard);
  }
  printf("replication lag (W-th ack to last ack) over %llu writes: p50 %.3f ms, p99 %.3f ms, "
         "max %.3f ms\n",
         (unsigned long long)s->lag_writes, s->lag_p50_ms, s->lag_p99_ms, s->lag_max_ms);
  printf("tombstones (reaped %u ms after every primary acknowledged the delete): %llu reaped, "
         "%llu waiting, %llu kept, %llu dropped\n",
         s->reap_grace_ms, (unsigned long long)s->reap_reaped,
         (unsigned long long)s->reap_waiting, (unsigned long long)s->reap_kept,
         (unsigned long long)s->reap_dropped);
  status_aae(s);
  print_clocks(s);
  free(s);
  return EXIT_OK;
}

/* kvctl hints: what the node keeps for each peer (hinted handoff). */
static int cmd_hints(kv_client_t *c) {
  int rc;
  kv_client_node_status_t *s = status_fetch(c, &rc);
  if (!s) return rc;
  printf("hints kept by %s\n", s->node);
  printf("%-12s %-5s %10s %12s %10s %10s\n", "peer", "state", "pending", "bytes", "delivered",
         "dropped");
  for (size_t i = 0; i < s->n_peers; i++) {
    const kv_client_peer_t *p = &s->peers[i];
    printf("%-12s %-5s %10llu %12llu %10llu %10llu\n", p->id, p->up ? "up" : "down",
           (unsigned long long)p->hints_pending, (unsigned long long)p->hint_bytes,
           (unsigned long long)p->hints_delivered, (unsigned long long)p->hints_dropped);
  }
  free(s);
  return EXIT_OK;
}

/* fault set|clear|list. PEER[,PEER...] (a->pos[2]) is split at its commas; empty names are
 * sent as they are, for the node to refuse. */
static int cmd_fault(kv_client_t *c, const args_t *a, kv_client_fault_op_t op) {
  char *copy = a->n_pos > 2 ? strdup(a->pos[2]) : NULL;
  size_t n = 0;
  for (const char *p = copy; p && *p; p++) n += *p == ',';
  n += copy != NULL;
  const char **peers = calloc(n ? n : 1, sizeof *peers);
  if ((a->n_pos > 2 && !copy) || !peers) {
    free(copy);
    free(peers);
    return usage_error("out of memory");
  }
  char *at = copy;
  for (size_t i = 0; i < n; i++) {
    peers[i] = at;
    at += strcspn(at, ",");
    if (*at) *at++ = '\0';
  }
  kv_client_fault_t f = {.delay_ms = a->delay_ms, .jitter_ms = a->jitter_ms,
                         .exp_delay_ms = a->exp_delay_ms, .both_ways = a->both_ways,
                         .drop = a->partition ? 1 : a->drop};
  kv_client_faults_t out;
  kv_client_status_t st;
  int err = kv_client_fault(c, op, peers, n, op == KV_CLIENT_FAULT_SET ? &f : NULL, &out, &st);
  free(copy);
  free(peers);
  if (err != KV_OK) return cluster_error(&st);
  for (size_t i = 0; op == KV_CLIENT_FAULT_LIST && i < out.n_faults; i++) {
    const kv_client_fault_t *x = &out.faults[i];
    printf("%s delay %lld ms, jitter %lld ms, ", x->peer, (long long)x->delay_ms,
           (long long)x->jitter_ms);
    if (x->exp_delay_ms) printf("exponential %lld ms, ", (long long)x->exp_delay_ms);
    printf("drop %g%s%s\n", x->drop, x->drop >= 1 ? " (partition)" : "",
           x->both_ways ? ", both ways" : "");
  }
  return EXIT_OK;
}

/* ---- conflicts ---------------------------------------------------------------------- */

static void print_version_text(const char *label, const kv_client_conflict_version_t *v) {
  printf("  %-9s ", label);
  if (v->node[0]) printf("%s/%016llx:%llu", v->node, (unsigned long long)v->incarnation,
                         (unsigned long long)v->counter);
  else printf("(merged)");
  printf(" hlc %llu ", (unsigned long long)v->hlc);
  if (v->tombstone) fputs("(delete)", stdout);
  else json_string(stdout, v->value, v->value_bytes);
  puts(v->truncated ? " (truncated)" : "");
}

static void print_conflict_text(const kv_client_conflict_t *e) {
  time_t secs = (time_t)(e->time_ms / 1000);
  struct tm tm;
  char when[32];
  gmtime_r(&secs, &tm);
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  printf("#%llu %s.%03lluZ %s/", (unsigned long long)e->seq, when,
         (unsigned long long)(e->time_ms % 1000), e->keyspace);
  fwrite(e->key, 1, e->key_bytes, stdout);
  printf(" by %s on %s%s\n", e->handler, e->reason, e->suspect ? " (suspect clock)" : "");
  print_version_text("kept", &e->kept);
  for (size_t i = 0; i < e->n_discarded; i++) print_version_text("discarded", &e->discarded[i]);
}

static void print_version_json(const kv_client_conflict_version_t *v) {
  printf("{\"node\": ");
  json_string(stdout, (const uint8_t *)v->node, strlen(v->node));
  printf(", \"incarnation\": %llu, \"counter\": %llu, \"hlc\": %llu, \"tombstone\": %s, "
         "\"truncated\": %s, \"value\": ", (unsigned long long)v->incarnation,
         (unsigned long long)v->counter, (unsigned long long)v->hlc,
         v->tombstone ? "true" : "false", v->truncated ? "true" : "false");
  json_string(stdout, v->value, v->value_bytes);
  fputs(", \"value_b64\": \"", stdout);
  b64_print(stdout, v->value, v->value_bytes);
  fputs("\"}", stdout);
}

static void print_conflict_json(const kv_client_conflict_t *e) {
  printf("{\"seq\": %llu, \"time_ms\": %llu, \"keyspace\": ", (unsigned long long)e->seq,
         (unsigned long long)e->time_ms);
  json_string(stdout, (const uint8_t *)e->keyspace, strlen(e->keyspace));
  fputs(", \"key\": ", stdout);
  json_string(stdout, e->key, e->key_bytes);
  fputs(", \"handler\": ", stdout);
  json_string(stdout, (const uint8_t *)e->handler, strlen(e->handler));
  printf(", \"reason\": \"%s\", \"suspect\": %s, \"kept\": ", e->reason,
         e->suspect ? "true" : "false");
  print_version_json(&e->kept);
  fputs(", \"discarded\": [", stdout);
  for (size_t i = 0; i < e->n_discarded; i++) {
    if (i) fputs(", ", stdout);
    print_version_json(&e->discarded[i]);
  }
  fputs("]}\n", stdout);
}

/* kvctl conflicts: every page of the journal, then the per-handler counts. */
static int cmd_conflicts(kv_client_t *c, const args_t *a) {
  uint64_t after = 0;
  kv_client_conflicts_t page;
  kv_client_status_t st;
  for (;;) {
    if (kv_client_conflicts(c, after, &page, &st) != KV_OK) {
      kv_client_conflicts_free(&page);
      return cluster_error(&st);
    }
    for (size_t i = 0; i < page.n_conflicts; i++) {
      if (a->json) print_conflict_json(&page.conflicts[i]);
      else print_conflict_text(&page.conflicts[i]);
      after = page.conflicts[i].seq;
    }
    if (!page.more || page.n_conflicts == 0) break;
    kv_client_conflicts_free(&page);
  }
  if (a->json) {
    fputs("{\"counts\": {", stdout);
    for (size_t i = 0; i < page.n_counts; i++) {
      if (i) fputs(", ", stdout);
      json_string(stdout, (const uint8_t *)page.counts[i].handler, strlen(page.counts[i].handler));
      printf(": %llu", (unsigned long long)page.counts[i].discarded);
    }
    printf("}, \"evicted\": %llu}\n", (unsigned long long)page.evicted);
  } else {
    printf("discarded versions by handler:");
    for (size_t i = 0; i < page.n_counts; i++)
      printf(" %s %llu", page.counts[i].handler, (unsigned long long)page.counts[i].discarded);
    printf("%s; %llu older entries evicted\n", page.n_counts ? "" : " none",
           (unsigned long long)page.evicted);
  }
  kv_client_conflicts_free(&page);
  return EXIT_OK;
}

/* kvctl applied: when each replica applied the key's newest write this node coordinated. */
static int cmd_applied(kv_client_t *c, const args_t *a) {
  kv_client_applied_t w;
  kv_client_status_t st;
  if (kv_client_applied(c, a->pos[1], a->pos[2], strlen(a->pos[2]), &w, &st) != KV_OK)
    return cluster_error(&st);
  printf("acked %llu\n", (unsigned long long)w.acked_ms);
  for (size_t i = 0; i < w.n_replicas; i++)
    printf("%s %llu %+lld ms\n", w.replicas[i].node, (unsigned long long)w.replicas[i].applied_ms,
           (long long)(w.replicas[i].applied_ms - w.acked_ms));
  return EXIT_OK;
}

/* ---- ring -------------------------------------------------------------------------- */

static void json_str(const char *s) { json_string(stdout, (const uint8_t *)s, strlen(s)); }

/* A node in a table cell: "ID/RACK", or "ID" when it has no rack. */
static void node_label(char *out, size_t n, const kv_client_ring_node_t *x) {
  snprintf(out, n, "%s%s%s", x->id, x->rack[0] ? "/" : "", x->rack);
}

/* The nodes a request for row would use now: its live primaries, then the stand-ins, as the
 * coordinator orders its targets. Returns how many went into out. */
static size_t ring_uses(const kv_client_ring_t *r, const kv_client_ring_partition_t *row,
                        uint32_t *out) {
  size_t n = 0;
  for (size_t i = 0; i < row->n_primaries; i++)
    if (r->nodes[row->primaries[i]].up) out[n++] = row->primaries[i];
  for (size_t i = 0; i < row->n_primaries; i++)
    if (row->stand_ins[i] >= 0) out[n++] = (uint32_t)row->stand_ins[i];
  return n;
}

static void ring_node_json(const kv_client_ring_t *r, uint32_t i) {
  const kv_client_ring_node_t *x = &r->nodes[i];
  fputs("{\"node\": ", stdout);
  json_str(x->id);
  fputs(", \"region\": ", stdout);
  json_str(x->region);
  fputs(", \"rack\": ", stdout);
  json_str(x->rack);
  printf(", \"up\": %s", x->up ? "true" : "false");
}

/* A partition's fields as JSON members (no braces): its number, primaries (each with its
 * stand-in or null), fallbacks and the nodes a request would use now. */
static void ring_partition_json(const kv_client_ring_t *r, const kv_client_ring_partition_t *row) {
  printf("\"partition\": %u, \"primaries\": [", row->partition);
  for (size_t i = 0; i < row->n_primaries; i++) {
    fputs(i ? ", " : "", stdout);
    ring_node_json(r, row->primaries[i]);
    fputs(", \"stand_in\": ", stdout);
    if (row->stand_ins[i] >= 0) json_str(r->nodes[row->stand_ins[i]].id);
    else fputs("null", stdout);
    fputs("}", stdout);
  }
  fputs("], \"fallbacks\": [", stdout);
  for (size_t i = 0; i < row->n_fallbacks; i++) {
    fputs(i ? ", " : "", stdout);
    ring_node_json(r, row->fallbacks[i]);
    fputs("}", stdout);
  }
  fputs("], \"uses\": [", stdout);
  uint32_t uses[2 * KV_REPLICAS_MAX];
  size_t n = ring_uses(r, row, uses);
  for (size_t i = 0; i < n; i++) {
    fputs(i ? ", " : "", stdout);
    json_str(r->nodes[uses[i]].id);
  }
  fputs("]", stdout);
}

/* How many partitions of ks node i is a primary of. */
static size_t ring_primary_count(const kv_client_ring_keyspace_t *ks, uint32_t i) {
  size_t n = 0;
  for (size_t p = 0; p < ks->n_partitions; p++)
    for (size_t k = 0; k < ks->partitions[p].n_primaries; k++)
      n += ks->partitions[p].primaries[k] == i;
  return n;
}

static void ring_whole_json(const kv_client_ring_t *r) {
  fputs("{\"node\": ", stdout);
  json_str(r->node);
  printf(", \"partitions\": %u, \"nodes\": [", r->partitions);
  for (uint32_t i = 0; i < r->n_nodes; i++) {
    const kv_client_ring_node_t *x = &r->nodes[i];
    fputs(i ? ", {\"id\": " : "{\"id\": ", stdout);
    json_str(x->id);
    fputs(", \"address\": ", stdout);
    json_str(x->address);
    fputs(", \"region\": ", stdout);
    json_str(x->region);
    fputs(", \"rack\": ", stdout);
    json_str(x->rack);
    printf(", \"up\": %s, \"primary_partitions\": {", x->up ? "true" : "false");
    for (size_t k = 0; k < r->n_keyspaces; k++) {
      fputs(k ? ", " : "", stdout);
      json_str(r->keyspaces[k].name);
      printf(": %zu", ring_primary_count(&r->keyspaces[k], i));
    }
    fputs("}}", stdout);
  }
  fputs("], \"keyspaces\": [", stdout);
  for (size_t k = 0; k < r->n_keyspaces; k++) {
    const kv_client_ring_keyspace_t *ks = &r->keyspaces[k];
    fputs(k ? ", {\"name\": " : "{\"name\": ", stdout);
    json_str(ks->name);
    fputs(", \"replication\": {", stdout);
    for (size_t i = 0; i < ks->n_regions; i++) {
      fputs(i ? ", " : "", stdout);
      json_str(ks->regions[i]);
      printf(": %u", ks->replicas[i]);
    }
    printf("}, \"sloppy_quorum\": %s, \"partitions\": [", ks->sloppy_quorum ? "true" : "false");
    for (size_t p = 0; p < ks->n_partitions; p++) {
      fputs(p ? ", {" : "{", stdout);
      ring_partition_json(r, &ks->partitions[p]);
      fputs("}", stdout);
    }
    fputs("]}", stdout);
  }
  fputs("]}\n", stdout);
}

/* One cell of nodes of region `region` from list (all regions when NULL), space-separated:
 * "ID/RACK", ":down" when the node asked believes it down, ">ID" for the fallback standing in
 * for a primary now. "-" when there are none. */
static void ring_cell(const kv_client_ring_t *r, const uint32_t *list, size_t n,
                      const int32_t *stand_ins, const char *region, char *out, size_t cap) {
  size_t used = 0;
  out[0] = '\0';
  for (size_t i = 0; i < n; i++) {
    const kv_client_ring_node_t *x = &r->nodes[list[i]];
    if (region && strcmp(x->region, region) != 0) continue;
    char label[KV_NODE_ID_BYTES_MAX + KV_RACK_BYTES_MAX + 2];
    node_label(label, sizeof label, x);
    int w = snprintf(out + used, cap - used, "%s%s%s%s%s", used ? " " : "", label,
                     x->up ? "" : ":down", stand_ins && stand_ins[i] >= 0 ? ">" : "",
                     stand_ins && stand_ins[i] >= 0 ? r->nodes[stand_ins[i]].id : "");
    if (w < 0 || (size_t)w >= cap - used) break;
    used += (size_t)w;
  }
  if (used == 0) snprintf(out, cap, "-");
}

static void ring_whole_text(const kv_client_ring_t *r) {
  printf("ring as %s sees it: %u partitions, %zu nodes, %zu keyspace%s\n", r->node, r->partitions,
         r->n_nodes, r->n_keyspaces, r->n_keyspaces == 1 ? "" : "s");
  printf("%-12s %-24s %-10s %-10s %-5s %s\n", "node", "address", "region", "rack", "state",
         "primary of (partitions per keyspace)");
  for (uint32_t i = 0; i < r->n_nodes; i++) {
    const kv_client_ring_node_t *x = &r->nodes[i];
    printf("%-12s %-24s %-10s %-10s %-5s", x->id, x->address, x->region, x->rack[0] ? x->rack : "-",
           x->up ? "up" : "down");
    for (size_t k = 0; k < r->n_keyspaces; k++)
      printf("%s %s %zu", k ? "," : "", r->keyspaces[k].name,
             ring_primary_count(&r->keyspaces[k], i));
    printf("\n");
  }
  enum { CELL = KV_NODES_MAX * (KV_NODE_ID_BYTES_MAX * 2 + KV_RACK_BYTES_MAX + 8) };
  static char primaries[CELL], fallbacks[CELL];
  for (size_t k = 0; k < r->n_keyspaces; k++) {
    const kv_client_ring_keyspace_t *ks = &r->keyspaces[k];
    printf("\nkeyspace %s: replication", ks->name);
    for (size_t i = 0; i < ks->n_regions; i++)
      printf("%s %s %u", i ? "," : "", ks->regions[i], ks->replicas[i]);
    printf("; sloppy quorum %s (NODE/RACK, :down as %s sees it, >NODE the fallback standing "
           "in now)\n", ks->sloppy_quorum ? "on" : "off", r->node);
    printf("%-9s %-10s %-32s %s\n", "partition", "region", "primaries", "fallbacks");
    for (size_t p = 0; p < ks->n_partitions; p++) {
      const kv_client_ring_partition_t *row = &ks->partitions[p];
      for (size_t i = 0; i < ks->n_regions; i++) {
        ring_cell(r, row->primaries, row->n_primaries, row->stand_ins, ks->regions[i], primaries,
                  sizeof primaries);
        ring_cell(r, row->fallbacks, row->n_fallbacks, NULL, ks->regions[i], fallbacks,
                  sizeof fallbacks);
        printf("%-9u %-10s %-32s %s\n", row->partition, ks->regions[i], primaries, fallbacks);
      }
    }
  }
}

/* kvctl ring KEYSPACE KEY: the key's partition, its primaries and fallbacks, and the nodes a
 * request would use now. */
static void ring_key_text(const kv_client_ring_t *r, const char *key) {
  const kv_client_ring_keyspace_t *ks = &r->keyspaces[0];
  const kv_client_ring_partition_t *row = &ks->partitions[0];
  printf("keyspace %s, key %s: partition %u of %u, as %s sees it (sloppy quorum %s)\n", ks->name,
         key, row->partition, r->partitions, r->node, ks->sloppy_quorum ? "on" : "off");
  printf("%-12s %-10s %-10s %-5s %s\n", "primary", "region", "rack", "state", "stand-in");
  for (size_t i = 0; i < row->n_primaries; i++) {
    const kv_client_ring_node_t *x = &r->nodes[row->primaries[i]];
    const char *in = x->up ? "-" : row->stand_ins[i] >= 0 ? r->nodes[row->stand_ins[i]].id : "none";
    printf("%-12s %-10s %-10s %-5s %s\n", x->id, x->region, x->rack[0] ? x->rack : "-",
           x->up ? "up" : "down", in);
  }
  if (row->n_fallbacks == 0) printf("fallbacks: none\n");
  else printf("%-12s %-10s %-10s %s\n", "fallback", "region", "rack", "state");
  for (size_t i = 0; i < row->n_fallbacks; i++) {
    const kv_client_ring_node_t *x = &r->nodes[row->fallbacks[i]];
    printf("%-12s %-10s %-10s %s\n", x->id, x->region, x->rack[0] ? x->rack : "-",
           x->up ? "up" : "down");
  }
  uint32_t uses[2 * KV_REPLICAS_MAX];
  size_t n = ring_uses(r, row, uses);
  printf("uses now:");
  for (size_t i = 0; i < n; i++) printf(" %s", r->nodes[uses[i]].id);
  printf("%s\n", n ? "" : " none");
}

static void ring_key_json(const kv_client_ring_t *r, const char *key) {
  const kv_client_ring_keyspace_t *ks = &r->keyspaces[0];
  fputs("{\"node\": ", stdout);
  json_str(r->node);
  fputs(", \"keyspace\": ", stdout);
  json_str(ks->name);
  fputs(", \"key\": ", stdout);
  json_str(key);
  printf(", \"partitions\": %u, \"sloppy_quorum\": %s, ", r->partitions,
         ks->sloppy_quorum ? "true" : "false");
  ring_partition_json(r, &ks->partitions[0]);
  fputs("}\n", stdout);
}

/* kvctl ring [KEYSPACE KEY]: the whole ring, or one key's place on it. */
static int cmd_ring(kv_client_t *c, const args_t *a) {
  bool one_key = a->n_pos == 3;
  const char *keyspace = one_key ? a->pos[1] : "", *key = one_key ? a->pos[2] : "";
  kv_client_ring_t r;
  kv_client_status_t st;
  if (kv_client_ring(c, keyspace, key, strlen(key), &r, &st) != KV_OK) {
    kv_client_ring_free(&r);
    return cluster_error(&st);
  }
  if (one_key && (r.n_keyspaces != 1 || r.keyspaces[0].n_partitions != 1)) {
    kv_client_ring_free(&r);
    fprintf(stderr, "INTERNAL: the node answered with more than the key's partition\n");
    return EXIT_CLUSTER;
  }
  if (one_key && a->json) ring_key_json(&r, key);
  else if (one_key) ring_key_text(&r, key);
  else if (a->json) ring_whole_json(&r);
  else ring_whole_text(&r);
  kv_client_ring_free(&r);
  return EXIT_OK;
}

int main(int argc, char **argv) {
  args_t a;
  int rc = parse_args(argc, argv, &a);
  if (rc != EXIT_OK) return rc;
  if (a.help || (a.n_pos > 0 && strcmp(a.pos[0], "help") == 0)) {
    usage(stdout);
    return EXIT_OK;
  }
  if (a.n_pos == 0) {
    usage(stderr);
    return EXIT_USAGE;
  }
  const char *cmd = a.pos[0];
  bool is_put = strcmp(cmd, "put") == 0, is_get = strcmp(cmd, "get") == 0,
       is_delete = strcmp(cmd, "delete") == 0, is_status = strcmp(cmd, "status") == 0,
       is_hints = strcmp(cmd, "hints") == 0, is_fault = strcmp(cmd, "fault") == 0,
       is_conflicts = strcmp(cmd, "conflicts") == 0, is_applied = strcmp(cmd, "applied") == 0,
       is_ring = strcmp(cmd, "ring") == 0;
  kv_client_fault_op_t fault_op = KV_CLIENT_FAULT_LIST;
  if (is_put)
    rc = check_command(&a, 3,
                       "KEYSPACE KEY VALUE [-c LEVEL] [-w N] [--pw N] [--durable] [--context CTX] "
                       "[-H HANDLER]",
                       OPT_LEVEL | OPT_W | OPT_PW | OPT_DURABLE | OPT_CONTEXT | OPT_HANDLER);
  else if (is_get)
    rc = check_command(&a, 2,
                       "KEYSPACE KEY [-c LEVEL] [-r N] [--pr N] [--local] [--read-repair MODE] "
                       "[-H HANDLER] [--json]",
                       OPT_LEVEL | OPT_R | OPT_PR | OPT_LOCAL | OPT_JSON | OPT_REPAIR | OPT_HANDLER);
  else if (is_delete)
    rc = check_command(&a, 2, "KEYSPACE KEY [-c LEVEL] [--context CTX] [-H HANDLER]",
                       OPT_LEVEL | OPT_CONTEXT | OPT_HANDLER);
  else if (is_status || is_hints)
    rc = check_command(&a, 0, "", 0);
  else if (is_conflicts)
    rc = check_command(&a, 0, "[--json]", OPT_JSON);
  else if (is_applied)
    rc = check_command(&a, 2, "KEYSPACE KEY", 0);
  else if (is_ring)
    rc = check_ring(&a);
  else if (is_fault)
    rc = check_fault(&a, &fault_op);
  else
    return usage_error("unknown command '%s'; 'kvctl -h' lists them", cmd);
  if (rc != EXIT_OK) return rc;

  const char *addr = a.addr;
  if (!addr) addr = getenv("TUNEKV_ADDR");
  if (!addr || !*addr) addr = DEFAULT_ADDR;
  kv_client_t *c;
  kv_client_status_t st;
  kv_cli_auth_env(&a.auth);
  if (kv_client_open_auth(addr, &a.auth, &c, &st) != KV_OK)
    return usage_error("%s: %s", addr, st.msg);
  if (is_status) rc = cmd_status(c);
  else if (is_hints) rc = cmd_hints(c);
  else if (is_fault) rc = cmd_fault(c, &a, fault_op);
  else if (is_conflicts) rc = cmd_conflicts(c, &a);
  else if (is_applied) rc = cmd_applied(c, &a);
  else if (is_ring) rc = cmd_ring(c, &a);
  else rc = is_get ? cmd_get(c, &a) : cmd_write(c, &a, is_put);
  kv_client_close(c);
  if (fflush(stdout) != 0 && rc == EXIT_OK) {
    perror("kvctl: writing standard output");
    rc = EXIT_USAGE;
  }
  return rc;
}
