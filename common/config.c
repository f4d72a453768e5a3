/* config.c: loading and checking the cluster config file (DESIGN section 12).
 *
 * A load runs four steps; each stops at the first problem and says where it is:
 *
 *   1. read  - the whole file into memory (at most CFG_FILE_BYTES_MAX), so both parsers below
 *              see the same bytes.
 *   2. walk  - libyaml's event parser builds a small tree of the document that keeps the
 *              line of every key and sequence entry. It reports YAML syntax errors, keys given
 *              twice and aliases, and it holds the `replication` mappings, whose keys are
 *              region names that no fixed libcyaml schema can list.
 *   3. cyaml - libcyaml loads the document against cfg_schema into "raw" structs of string
 *              pointers: every field is optional there, so a missing field is NULL and step 4
 *              can name it with the line of its mapping. libcyaml's own messages carry no
 *              reliable line, so its backtrace (captured by cfg_cyaml_log) is turned into a
 *              path that is looked up in the tree.
 *   4. check - every value is checked and copied into kv_config_t, with lines from the tree.
 *
 * Every error is KV_ECONFIG with "FILE:LINE: sentence" (line 0 when the file itself cannot
 * be read), except running out of memory (KV_ENOMEM). Nothing allocated survives the call:
 * the tree and the raw structs are freed before kv_config_load returns.
 */
#include "config.h"

#include <cyaml/cyaml.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "conflict.h"
#include "fmt.h"
#include "log.h"

/* A config with every limit used is about 100 KiB; anything far larger is a wrong file. */
#define CFG_FILE_BYTES_MAX (1024u * 1024u)
/* Keys and sequence entries kept by the walk; the largest sensible file has about 2000. */
#define CFG_TREE_ENTRIES_MAX 8192
/* The config nests three levels; deeper documents are not configs. */
#define CFG_DEPTH_MAX 16
/* Steps kept from a libcyaml backtrace (the schema is three levels deep). */
#define CFG_STEPS_MAX 8
/* Room for a user's value quoted inside a message. */
#define CFG_SHOW_BYTES 72

/* ------------------------------------------------------------------------------------------
 * Raw structs and the libcyaml schema
 * ---------------------------------------------------------------------------------------- */

/* Numbers are strings too: libcyaml reads "-1" into a uint64_t as 2^64-1, and step 4 can name
 * the allowed range when it parses them itself. */
typedef struct {
  char *name;
  char *partitions;
  char *phi_threshold;
  char *anti_entropy_interval_ms;
  char *tombstone_grace_ms;
  char *max_clock_skew_ms;
  char *block_cache_mb;
  char *memtable_mb;
} cfg_raw_cluster_t;

typedef struct {
  char *id;
  char *address;
  char *region;
  char *rack;
} cfg_raw_node_t;

typedef struct {
  char *name;
  char *read;
  char *write;
  char *handler;
  char *fallback_handler;
  char *siblings_max;
  char *key_bytes_max;
  char *value_bytes_max;
  char *sloppy_quorum; /* a string too: libcyaml reads any word that is not false-like as true */
} cfg_raw_keyspace_t;

typedef struct {
  char *cert;
  char *key;
  char *ca;
  char *client_auth;
} cfg_raw_tls_t;

typedef struct {
  char *name;
  char *secret;
  char *secret_file;
  char *admin;        /* a string, as sloppy_quorum */
} cfg_raw_token_t;

typedef struct {
  cfg_raw_cluster_t *cluster;
  cfg_raw_node_t *nodes;
  unsigned nodes_count;
  cfg_raw_keyspace_t *keyspaces;
  unsigned keyspaces_count;
  cfg_raw_tls_t *tls;
  cfg_raw_token_t *tokens;
  unsigned tokens_count;
} cfg_raw_t;

#define CFG_OPT (CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL)
#define CFG_STR(key, type, member) \
  CYAML_FIELD_STRING_PTR(key, CFG_OPT, type, member, 0, CYAML_UNLIMITED)

static const cyaml_schema_field_t cfg_cluster_fields[] = {
    CFG_STR("name", cfg_raw_cluster_t, name),
    CFG_STR("partitions", cfg_raw_cluster_t, partitions),
    CFG_STR("phi_threshold", cfg_raw_cluster_t, phi_threshold),
    CFG_STR("anti_entropy_interval_ms", cfg_raw_cluster_t, anti_entropy_interval_ms),
    CFG_STR("tombstone_grace_ms", cfg_raw_cluster_t, tombstone_grace_ms),
    CFG_STR("max_clock_skew_ms", cfg_raw_cluster_t, max_clock_skew_ms),
    CFG_STR("block_cache_mb", cfg_raw_cluster_t, block_cache_mb),
    CFG_STR("memtable_mb", cfg_raw_cluster_t, memtable_mb),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t cfg_node_fields[] = {
    CFG_STR("id", cfg_raw_node_t, id),
    CFG_STR("address", cfg_raw_node_t, address),
    CFG_STR("region", cfg_raw_node_t, region),
    CFG_STR("rack", cfg_raw_node_t, rack),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t cfg_keyspace_fields[] = {
    CFG_STR("name", cfg_raw_keyspace_t, name),
    /* Read from the tree instead: its keys are region names. */
    CYAML_FIELD_IGNORE("replication", CYAML_FLAG_OPTIONAL),
    CFG_STR("read", cfg_raw_keyspace_t, read),
    CFG_STR("write", cfg_raw_keyspace_t, write),
    CFG_STR("handler", cfg_raw_keyspace_t, handler),
    CFG_STR("fallback_handler", cfg_raw_keyspace_t, fallback_handler),
    /* Read from the tree instead, where each entry's line is known. */
    CYAML_FIELD_IGNORE("region_priority", CYAML_FLAG_OPTIONAL),
    CFG_STR("siblings_max", cfg_raw_keyspace_t, siblings_max),
    CFG_STR("key_bytes_max", cfg_raw_keyspace_t, key_bytes_max),
    CFG_STR("value_bytes_max", cfg_raw_keyspace_t, value_bytes_max),
    CFG_STR("sloppy_quorum", cfg_raw_keyspace_t, sloppy_quorum),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t cfg_tls_fields[] = {
    CFG_STR("cert", cfg_raw_tls_t, cert),
    CFG_STR("key", cfg_raw_tls_t, key),
    CFG_STR("ca", cfg_raw_tls_t, ca),
    CFG_STR("client_auth", cfg_raw_tls_t, client_auth),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t cfg_token_fields[] = {
    CFG_STR("name", cfg_raw_token_t, name),
    CFG_STR("secret", cfg_raw_token_t, secret),
    CFG_STR("secret_file", cfg_raw_token_t, secret_file),
    /* Read from the tree instead, where each entry's line is known. */
    CYAML_FIELD_IGNORE("read", CYAML_FLAG_OPTIONAL),
    CYAML_FIELD_IGNORE("write", CYAML_FLAG_OPTIONAL),
    CFG_STR("admin", cfg_raw_token_t, admin),
    CYAML_FIELD_END,
};

static const cyaml_schema_value_t cfg_token_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, cfg_raw_token_t, cfg_token_fields),
};

static const cyaml_schema_value_t cfg_node_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, cfg_raw_node_t, cfg_node_fields),
};

static const cyaml_schema_value_t cfg_keyspace_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, cfg_raw_keyspace_t, cfg_keyspace_fields),
};

/* Counts are checked in step 4, where the offending entry's line is known. */
static const cyaml_schema_field_t cfg_top_fields[] = {
    CYAML_FIELD_MAPPING_PTR("cluster", CFG_OPT, cfg_raw_t, cluster, cfg_cluster_fields),
    CYAML_FIELD_SEQUENCE("nodes", CFG_OPT, cfg_raw_t, nodes, &cfg_node_schema, 0,
                         CYAML_UNLIMITED),
    CYAML_FIELD_SEQUENCE("keyspaces", CFG_OPT, cfg_raw_t, keyspaces, &cfg_keyspace_schema, 0,
                         CYAML_UNLIMITED),
    CYAML_FIELD_MAPPING_PTR("tls", CFG_OPT, cfg_raw_t, tls, cfg_tls_fields),
    CYAML_FIELD_SEQUENCE("tokens", CFG_OPT, cfg_raw_t, tokens, &cfg_token_schema, 0,
                         CYAML_UNLIMITED),
    CYAML_FIELD_END,
};

static const cyaml_schema_value_t cfg_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, cfg_raw_t, cfg_top_fields),
};

/* ------------------------------------------------------------------------------------------
 * Load state
 * ---------------------------------------------------------------------------------------- */

typedef enum { CFG_SCALAR, CFG_MAPPING, CFG_SEQUENCE } cfg_kind_t;

/* One value of the document, with the key or position that leads to it. */
typedef struct {
  int parent;     /* the enclosing mapping or sequence; -1 for the document's root */
  int index;      /* position among the parent's entries */
  char *key;      /* the key when the parent is a mapping, else NULL; owned */
  char *scalar;   /* the text when kind is CFG_SCALAR, else NULL; owned */
  cfg_kind_t kind;
  uint32_t line;  /* line of the key, or of the value when the parent is a sequence */
} cfg_entry_t;

/* An open mapping or sequence during the walk. */
typedef struct {
  int entry;
  int children;
  char *key;      /* mapping only: a key waiting for its value; owned */
  uint32_t key_line;
} cfg_frame_t;

/* One step of a libcyaml backtrace: a mapping field, or a sequence entry (1-based). */
typedef struct {
  char field[64];
  unsigned entry; /* 0 for a field step */
} cfg_step_t;

typedef struct {
  char problem[256];
  cfg_step_t steps[CFG_STEPS_MAX]; /* innermost first, as libcyaml prints them */
  int step_count;
} cfg_cyaml_log_t;

typedef struct {
  const char *path;
  kv_status_t *st;
  char *text;
  size_t text_bytes;
  cfg_entry_t *entries; /* in document order, so a parent comes before its children */
  int entry_count;
  int entry_cap;
  cfg_frame_t stack[CFG_DEPTH_MAX];
  int depth;
  int documents;
  cfg_raw_t *raw;
  cfg_cyaml_log_t log;
} cfg_load_t;

static const cfg_raw_t cfg_raw_empty;

__attribute__((format(printf, 3, 4)))
static kv_err cfg_fail(const cfg_load_t *c, uint32_t line, const char *fmt, ...) {
  char sentence[KV_STATUS_MSG_BYTES];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sentence, sizeof sentence, fmt, ap);
  va_end(ap);
  return kv_status_set(c->st, KV_ECONFIG, "%s:%u: %s", c->path, line, sentence);
}

static kv_err cfg_nomem(const cfg_load_t *c) {
  return kv_status_set(c->st, KV_ENOMEM, "%s: out of memory while loading", c->path);
}

/* A user's string made safe and short for a message. */
static const char *cfg_show(char buf[CFG_SHOW_BYTES], const char *s) {
  return kv_fmt_bytes(buf, CFG_SHOW_BYTES, s, strlen(s));
}

/* ------------------------------------------------------------------------------------------
 * Step 1: read
 * ---------------------------------------------------------------------------------------- */

static kv_err cfg_read(cfg_load_t *c) {
  FILE *f = fopen(c->path, "rb");
  if (!f) return cfg_fail(c, 0, "cannot open the file: %s", strerror(errno));
  c->text = malloc(CFG_FILE_BYTES_MAX + 1);
  if (!c->text) {
    fclose(f);
    return cfg_nomem(c);
  }
  /* One byte more than the limit tells a file at the limit from a larger one. */
  c->text_bytes = fread(c->text, 1, CFG_FILE_BYTES_MAX + 1, f);
  int read_errno = ferror(f) ? errno : 0;
  fclose(f);
  if (read_errno) return cfg_fail(c, 0, "cannot read the file: %s", strerror(read_errno));
  if (c->text_bytes > CFG_FILE_BYTES_MAX)
    return cfg_fail(c, 0, "the file is larger than %u bytes; it is not a tunekv config",
                    CFG_FILE_BYTES_MAX);
  c->text[c->text_bytes] = '\0';
  return KV_OK;
}

/* ------------------------------------------------------------------------------------------
 * Step 2: walk
 * ---------------------------------------------------------------------------------------- */

static int cfg_child(const cfg_load_t *c, int parent, const char *key) {
  for (int i = parent + 1; i < c->entry_count; i++)
    if (c->entries[i].parent == parent && c->entries[i].key && strcmp(c->entries[i].key, key) == 0)
      return i;
  return -1;
}

static int cfg_nth(const cfg_load_t *c, int parent, int index) {
  for (int i = parent + 1; i < c->entry_count; i++)
    if (c->entries[i].parent == parent && c->entries[i].index == index) return i;
  return -1;
}

/* Line of a field of the mapping at entry, or of the mapping itself when the field is absent. */
static uint32_t cfg_field_line(const cfg_load_t *c, int entry, const char *key) {
  int at = cfg_child(c, entry, key);
  return c->entries[at >= 0 ? at : entry].line;
}

static cfg_frame_t *cfg_top_frame(cfg_load_t *c) {
  return c->depth > 0 ? &c->stack[c->depth - 1] : NULL;
}

/* Adds a value under the open container, taking over the waiting key. Returns its index. */
static kv_err cfg_add_entry(cfg_load_t *c, cfg_kind_t kind, uint32_t line, int *out) {
  if (c->entry_count == CFG_TREE_ENTRIES_MAX)
    return cfg_fail(c, line, "the file has more than %d entries; it is not a tunekv config",
                    CFG_TREE_ENTRIES_MAX);
  if (c->entry_count == c->entry_cap) {
    int cap = c->entry_cap ? c->entry_cap * 2 : 64;
    cfg_entry_t *grown = realloc(c->entries, (size_t)cap * sizeof *grown);
    if (!grown) return cfg_nomem(c);
    c->entries = grown;
    c->entry_cap = cap;
  }
  cfg_frame_t *frame = cfg_top_frame(c);
  cfg_entry_t *e = &c->entries[c->entry_count];
  *e = (cfg_entry_t){.parent = -1, .kind = kind, .line = line};
  if (frame) {
    e->parent = frame->entry;
    e->index = frame->children++;
    e->key = frame->key;
    if (frame->key) e->line = frame->key_line;
    frame->key = NULL;
  }
  *out = c->entry_count++;
  return KV_OK;
}

static bool cfg_wants_key(cfg_load_t *c) {
  cfg_frame_t *frame = cfg_top_frame(c);
  return frame && c->entries[frame->entry].kind == CFG_MAPPING && !frame->key;
}

static kv_err cfg_walk_key(cfg_load_t *c, const char *key, uint32_t line) {
  cfg_frame_t *frame = cfg_top_frame(c);
  int first = cfg_child(c, frame->entry, key);
  char shown[CFG_SHOW_BYTES];
  if (first >= 0)
    return cfg_fail(c, line, "field '%s' is given twice (first at line %u)", cfg_show(shown, key),
                    c->entries[first].line);
  frame->key = strdup(key);
  if (!frame->key) return cfg_nomem(c);
  frame->key_line = line;
  return KV_OK;
}

static kv_err cfg_walk_scalar(cfg_load_t *c, const yaml_event_t *ev, uint32_t line) {
  const char *text = (const char *)ev->data.scalar.value;
  if (cfg_wants_key(c)) return cfg_walk_key(c, text, line);
  int at;
  kv_err err = cfg_add_entry(c, CFG_SCALAR, line, &at);
  if (err) return err;
  c->entries[at].scalar = strdup(text);
  return c->entries[at].scalar ? KV_OK : cfg_nomem(c);
}

static kv_err cfg_walk_open(cfg_load_t *c, cfg_kind_t kind, uint32_t line) {
  if (cfg_wants_key(c))
    return cfg_fail(c, line, "a key must be a plain word, not a mapping or a list");
  if (c->depth == CFG_DEPTH_MAX)
    return cfg_fail(c, line, "the document nests deeper than %d levels", CFG_DEPTH_MAX);
  int at;
  kv_err err = cfg_add_entry(c, kind, line, &at);
  if (err) return err;
  c->stack[c->depth++] = (cfg_frame_t){.entry = at};
  return KV_OK;
}

static kv_err cfg_walk_event(cfg_load_t *c, const yaml_event_t *ev) {
  uint32_t line = (uint32_t)ev->start_mark.line + 1;
  char shown[CFG_SHOW_BYTES];
  switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
      if (++c->documents == 1) return KV_OK;
      return cfg_fail(c, line, "the file holds more than one YAML document");
    case YAML_ALIAS_EVENT:
      /* An alias would make the tree and libcyaml's view of the document disagree. */
      return cfg_fail(c, line, "YAML aliases such as '*%s' are not supported in the config",
                      cfg_show(shown, (const char *)ev->data.alias.anchor));
    case YAML_SCALAR_EVENT:
      return cfg_walk_scalar(c, ev, line);
    case YAML_MAPPING_START_EVENT:
      return cfg_walk_open(c, CFG_MAPPING, line);
    case YAML_SEQUENCE_START_EVENT:
      return cfg_walk_open(c, CFG_SEQUENCE, line);
    case YAML_MAPPING_END_EVENT:
    case YAML_SEQUENCE_END_EVENT:
      KV_ASSERT(c->depth > 0);
      c->depth--;
      return KV_OK;
    default:
      return KV_OK;
  }
}

static uint32_t cfg_line_at_offset(const cfg_load_t *c, size_t offset) {
  uint32_t line = 1;
  for (size_t i = 0; i < offset && i < c->text_bytes; i++) line += c->text[i] == '\n';
  return line;
}

static kv_err cfg_syntax_error(const cfg_load_t *c, const yaml_parser_t *p) {
  if (p->error == YAML_MEMORY_ERROR) return cfg_nomem(c);
  /* The reader (bad encoding) knows only a byte offset; the others know a line. */
  uint32_t line = p->error == YAML_READER_ERROR ? cfg_line_at_offset(c, p->problem_offset)
                                                : (uint32_t)p->problem_mark.line + 1;
  const char *problem = p->problem ? p->problem : "unreadable YAML";
  if (!p->context)
    return cfg_fail(c, line, "YAML syntax error: %s", problem);
  return cfg_fail(c, line, "YAML syntax error: %s (%s at line %u)", problem, p->context,
                  (uint32_t)p->context_mark.line + 1);
}

static kv_err cfg_walk(cfg_load_t *c) {
  yaml_parser_t p;
  if (!yaml_parser_initialize(&p)) return cfg_nomem(c);
  yaml_parser_set_input_string(&p, (const unsigned char *)c->text, c->text_bytes);
  kv_err err = KV_OK;
  bool done = false;
  while (!err && !done) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&p, &ev)) {
      err = cfg_syntax_error(c, &p);
      break;
    }
    done = ev.type == YAML_STREAM_END_EVENT;
    err = cfg_walk_event(c, &ev);
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&p);
  return err;
}

/* ------------------------------------------------------------------------------------------
 * Step 3: cyaml
 * ---------------------------------------------------------------------------------------- */

/* Keeps the first problem libcyaml reports and the steps of its backtrace, e.g.
 *   "Load: Unexpected key: colour"
 *   "Load: Backtrace:"
 *   "  in mapping (line: 3, column: 23)"          (no step)
 *   "  in sequence entry '2' (line: 3, ...)"      (entry 2)
 *   "  in mapping field 'nodes' (line: 2, ...)"   (field nodes) */
static void cfg_cyaml_log(cyaml_log_t level, void *ctx, const char *fmt, va_list args) {
  cfg_cyaml_log_t *log = ctx;
  char msg[256];
  vsnprintf(msg, sizeof msg, fmt, args);
  msg[strcspn(msg, "\n")] = '\0';
  const char *text = strncmp(msg, "Load: ", 6) == 0 ? msg + 6 : msg;
  cfg_step_t step = {.entry = 0};
  if (sscanf(text, "  in mapping field '%63[^']'", step.field) == 1 ||
      sscanf(text, "  in sequence entry '%u'", &step.entry) == 1) {
    if (log->step_count < CFG_STEPS_MAX) log->steps[log->step_count++] = step;
  } else if (strncmp(text, "  in ", 5) != 0 && strcmp(text, "Backtrace:") != 0 &&
             !log->problem[0]) {
    snprintf(log->problem, sizeof log->problem, "%s", text);
  }
}

static cyaml_config_t cfg_cyaml_config(cfg_load_t *c) {
  return (cyaml_config_t){
      .log_fn = cfg_cyaml_log,
      .log_ctx = &c->log,
      .mem_fn = cyaml_mem,
      .log_level = CYAML_LOG_ERROR,
      .flags = CYAML_CFG_DEFAULT,
  };
}

/* The tree entry at the end of libcyaml's backtrace (as far as it resolves), or -1 when the
 * document is empty. */
static int cfg_cyaml_entry(const cfg_load_t *c) {
  if (c->entry_count == 0) return -1;
  int at = 0;
  for (int i = c->log.step_count - 1; i >= 0; i--) {
    const cfg_step_t *s = &c->log.steps[i];
    int next = s->entry ? cfg_nth(c, at, (int)s->entry - 1) : cfg_child(c, at, s->field);
    if (next < 0) break;
    at = next;
  }
  return at;
}

/* Where an unknown field sits, named by the outermost field of the backtrace. */
static const char *cfg_cyaml_place(const cfg_load_t *c) {
  if (c->log.step_count == 0) return "at the top level";
  const char *outer = c->log.steps[c->log.step_count - 1].field;
  if (strcmp(outer, "nodes") == 0) return "in a node";
  if (strcmp(outer, "keyspaces") == 0) return "in a keyspace";
  if (strcmp(outer, "tls") == 0) return "in the tls section";
  if (strcmp(outer, "tokens") == 0) return "in a token";
  return "in the cluster section";
}

/* What a libcyaml type or event name ("MAPPING", "SEQUENCE_START", "UINT") is to a user. */
static const char *cfg_cyaml_shape(const char *name) {
  if (strncmp(name, "MAPPING", 7) == 0) return "a mapping";
  if (strncmp(name, "SEQUENCE", 8) == 0) return "a list";
  return "a single value";
}

/* "'nodes'", "entry 2 of 'nodes'", or "the file": the value a type error is about. */
static void cfg_cyaml_subject(const cfg_load_t *c, char *buf, size_t buf_bytes) {
  const cfg_step_t *s = c->log.steps;
  if (c->log.step_count == 0)
    snprintf(buf, buf_bytes, "the file");
  else if (s[0].entry == 0)
    snprintf(buf, buf_bytes, "'%s'", s[0].field);
  else if (c->log.step_count > 1)
    snprintf(buf, buf_bytes, "entry %u of '%s'", s[0].entry, s[1].field);
  else
    snprintf(buf, buf_bytes, "entry %u", s[0].entry);
}

static kv_err cfg_cyaml_error(const cfg_load_t *c, cyaml_err_t e) {
  int at = cfg_cyaml_entry(c);
  uint32_t line = at >= 0 ? c->entries[at].line : 1;
  char key[64], shown[CFG_SHOW_BYTES], expected[32], got[32], subject[96];
  if (e == CYAML_ERR_INVALID_KEY && sscanf(c->log.problem, "Unexpected key: %63[^\n]", key) == 1) {
    int k = at >= 0 ? cfg_child(c, at, key) : -1;
    return cfg_fail(c, k >= 0 ? c->entries[k].line : line, "unknown field '%s' %s",
                    cfg_show(shown, key), cfg_cyaml_place(c));
  }
  if (sscanf(c->log.problem, "Expecting %31[A-Z_], got event: %31[A-Z_]", expected, got) == 2) {
    cfg_cyaml_subject(c, subject, sizeof subject);
    return cfg_fail(c, line, "%s must be %s, not %s", subject, cfg_cyaml_shape(expected),
                    cfg_cyaml_shape(got));
  }
  return cfg_fail(c, line, "%s", c->log.problem[0] ? c->log.problem : cyaml_strerror(e));
}

static kv_err cfg_cyaml_load(cfg_load_t *c) {
  cyaml_config_t cy = cfg_cyaml_config(c);
  cyaml_data_t *data = NULL;
  cyaml_err_t e = cyaml_load_data((const uint8_t *)c->text, c->text_bytes, &cy, &cfg_schema,
                                  &data, NULL);
  if (e == CYAML_ERR_OOM) return cfg_nomem(c);
  if (e != CYAML_OK) return cfg_cyaml_error(c, e);
  c->raw = data;
  return KV_OK;
}

/* ------------------------------------------------------------------------------------------
 * Step 4: check
 * ---------------------------------------------------------------------------------------- */

static const cfg_raw_t *cfg_raw(const cfg_load_t *c) {
  return c->raw ? c->raw : &cfg_raw_empty;
}

static kv_err cfg_missing(const cfg_load_t *c, uint32_t line, const char *what, const char *field) {
  return cfg_fail(c, line, "%s is missing the required field '%s'", what, field);
}

/* Digits only, no sign or spaces, and no overflow. */
static bool cfg_parse_uint(const char *s, uint64_t *out) {
  if (!s[0]) return false;
  uint64_t v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10) return false;
    v = v * 10 + (uint64_t)(*s - '0');
  }
  *out = v;
  return true;
}

/* A number for a message: bare when it is one ("100"), quoted when it is not ("'many'"). */
static const char *cfg_show_number(char buf[CFG_SHOW_BYTES], const char *text) {
  uint64_t v;
  char shown[CFG_SHOW_BYTES - 2];
  if (cfg_parse_uint(text, &v))
    snprintf(buf, CFG_SHOW_BYTES, "%llu", (unsigned long long)v);
  else
    snprintf(buf, CFG_SHOW_BYTES, "'%s'", kv_fmt_bytes(shown, sizeof shown, text, strlen(text)));
  return buf;
}

/* A decimal number: digits, then maybe a point and more digits ("8", "12.5"); no sign,
 * exponent, or spaces. */
static bool cfg_parse_decimal(const char *s, double *out) {
  size_t n = strspn(s, "0123456789");
  if (n == 0) return false;
  if (s[n] == '.') {
    size_t fraction = strspn(s + n + 1, "0123456789");
    if (fraction == 0) return false;
    n += 1 + fraction;
  }
  if (s[n] != '\0') return false;
  *out = strtod(s, NULL);
  return true;
}

static bool cfg_name_char(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         ch == '-' || ch == '_' || ch == '.';
}

/* Copies a name (node id, region, keyspace, ...) into dst, which holds max + 1 bytes, after
 * checking it is 1..max bytes of letters, digits, '-', '_' and '.': names end up in logs,
 * metrics labels and file names, where anything else needs quoting. */
static kv_err cfg_copy_name(const cfg_load_t *c, const char *what, const char *value,
                            uint32_t max, uint32_t line, char *dst) {
  char shown[CFG_SHOW_BYTES], ch[8];
  size_t len = strlen(value);
  if (len == 0) return cfg_fail(c, line, "%s is empty", what);
  if (len > max)
    return cfg_fail(c, line, "%s '%s' is %zu bytes; the limit is %u", what,
                    cfg_show(shown, value), len, max);
  for (size_t i = 0; i < len; i++) {
    if (cfg_name_char(value[i])) continue;
    return cfg_fail(c, line, "%s '%s' has the character '%s'; use letters, digits, '-', '_' "
                    "and '.'", what, cfg_show(shown, value), kv_fmt_bytes(ch, sizeof ch, value + i, 1));
  }
  memcpy(dst, value, len + 1);
  return KV_OK;
}

/* A host name or IPv4 address, or an IPv6 address in brackets. */
static bool cfg_host_ok(const char *host, size_t len) {
  bool bracketed = host[0] == '[';
  if (bracketed && (len < 3 || host[len - 1] != ']')) return false;
  size_t from = bracketed ? 1 : 0, to = bracketed ? len - 1 : len;
  for (size_t i = from; i < to; i++) {
    char ch = host[i];
    bool ok = bracketed ? (ch == ':' || ch == '.' || (ch >= '0' && ch <= '9') ||
                           (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F'))
                        : (cfg_name_char(ch) && ch != '_');
    if (!ok) return false;
  }
  return true;
}

static kv_err cfg_copy_address(const cfg_load_t *c, const char *addr, uint32_t line, char *dst) {
  char shown[CFG_SHOW_BYTES], port_shown[CFG_SHOW_BYTES];
  size_t len = strlen(addr);
  if (len > KV_ADDRESS_BYTES_MAX)
    return cfg_fail(c, line, "address '%s' is %zu bytes; the limit is %u", cfg_show(shown, addr),
                    len, KV_ADDRESS_BYTES_MAX);
  const char *colon = strrchr(addr, ':');
  if (!colon || colon[1] == '\0')
    return cfg_fail(c, line, "address '%s' has no port; write it as HOST:PORT",
                    cfg_show(shown, addr));
  if (colon == addr)
    return cfg_fail(c, line, "address '%s' has no host; write it as HOST:PORT",
                    cfg_show(shown, addr));
  if (!cfg_host_ok(addr, (size_t)(colon - addr)))
    return cfg_fail(c, line, "address '%s' has a bad host; use a host name, an IPv4 address or "
                    "an IPv6 address in brackets", cfg_show(shown, addr));
  uint64_t port;
  if (!cfg_parse_uint(colon + 1, &port))
    return cfg_fail(c, line, "address '%s' has port '%s'; the port must be a number between 1 "
                    "and 65535", cfg_show(shown, addr), cfg_show(port_shown, colon + 1));
  if (port == 0 || port > 65535)
    return cfg_fail(c, line, "address '%s' has port %llu; the port must be between 1 and 65535",
                    cfg_show(shown, addr), (unsigned long long)port);
  memcpy(dst, addr, len + 1);
  return KV_OK;
}

static kv_err cfg_check_partitions(const cfg_load_t *c, const char *raw, uint32_t line,
                                   kv_config_t *out) {
  uint64_t q;
  char shown[CFG_SHOW_BYTES];
  /* Partition = top bits of a hash (DESIGN section 5), so Q must be a power of two. */
  if (!cfg_parse_uint(raw, &q) || q == 0 || q > KV_PARTITIONS_MAX || (q & (q - 1)) != 0)
    return cfg_fail(c, line, "partitions is %s; it must be a power of two between 1 and %u",
                    cfg_show_number(shown, raw), KV_PARTITIONS_MAX);
  out->partitions = (uint32_t)q;
  return KV_OK;
}

static kv_err cfg_check_phi(const cfg_load_t *c, const char *raw, uint32_t line,
                            kv_config_t *out) {
  char shown[CFG_SHOW_BYTES];
  double phi;
  bool number = cfg_parse_decimal(raw, &phi);
  if (!number || phi < KV_PHI_THRESHOLD_MIN || phi > KV_PHI_THRESHOLD_MAX)
    return cfg_fail(c, line, number ? "phi_threshold is %s; it must be a number between %g and %g"
                                    : "phi_threshold is '%s'; it must be a number between %g "
                                      "and %g",
                    cfg_show(shown, raw), KV_PHI_THRESHOLD_MIN, KV_PHI_THRESHOLD_MAX);
  out->phi_threshold = phi;
  return KV_OK;
}

/* A duration in ms, 0 .. max. */
static kv_err cfg_check_ms(const cfg_load_t *c, const char *what, const char *raw, uint32_t max,
                           uint32_t line, uint32_t *out) {
  uint64_t v;
  char shown[CFG_SHOW_BYTES];
  if (!cfg_parse_uint(raw, &v) || v > max)
    return cfg_fail(c, line, "%s is %s; it must be a whole number of milliseconds between 0 and %u",
                    what, cfg_show_number(shown, raw), max);
  *out = (uint32_t)v;
  return KV_OK;
}

/* A storage size in MiB, KV_STORE_MB_MIN .. KV_STORE_MB_MAX, into bytes. */
static kv_err cfg_check_mb(const cfg_load_t *c, const char *what, const char *raw, uint32_t line,
                           uint64_t *out) {
  uint64_t v;
  char shown[CFG_SHOW_BYTES];
  if (!cfg_parse_uint(raw, &v) || v < KV_STORE_MB_MIN || v > KV_STORE_MB_MAX)
    return cfg_fail(c, line, "%s is %s; it must be a whole number of MiB between %u and %u",
                    what, cfg_show_number(shown, raw), KV_STORE_MB_MIN, KV_STORE_MB_MAX);
  *out = v << 20;
  return KV_OK;
}

static kv_err cfg_check_cluster(const cfg_load_t *c, kv_config_t *out) {
  const cfg_raw_cluster_t *raw = cfg_raw(c)->cluster;
  snprintf(out->cluster_name, sizeof out->cluster_name, "tunekv");
  out->partitions = KV_PARTITIONS_DEFAULT;
  out->phi_threshold = KV_PHI_THRESHOLD_DEFAULT;
  out->anti_entropy_interval_ms = KV_AAE_INTERVAL_MS_DEFAULT;
  out->tombstone_grace_ms = KV_TOMBSTONE_GRACE_MS_DEFAULT;
  out->max_clock_skew_ms = KV_CLOCK_SKEW_MS_DEFAULT;
  out->block_cache_bytes = KV_STORE_BLOCK_CACHE_BYTES;
  out->memtable_bytes = KV_STORE_MEMTABLES_BYTES;
  if (!raw) return KV_OK;
  int at = cfg_child(c, 0, "cluster");
  KV_ASSERT(at >= 0);
  kv_err err = KV_OK;
  if (raw->name)
    err = cfg_copy_name(c, "cluster name", raw->name, KV_CLUSTER_NAME_BYTES_MAX,
                        cfg_field_line(c, at, "name"), out->cluster_name);
  if (!err && raw->partitions)
    err = cfg_check_partitions(c, raw->partitions, cfg_field_line(c, at, "partitions"), out);
  if (!err && raw->phi_threshold)
    err = cfg_check_phi(c, raw->phi_threshold, cfg_field_line(c, at, "phi_threshold"), out);
  if (!err && raw->anti_entropy_interval_ms)
    err = cfg_check_ms(c, "anti_entropy_interval_ms", raw->anti_entropy_interval_ms,
                       KV_AAE_INTERVAL_MS_MAX, cfg_field_line(c, at, "anti_entropy_interval_ms"),
                       &out->anti_entropy_interval_ms);
  if (!err && raw->tombstone_grace_ms)
    err = cfg_check_ms(c, "tombstone_grace_ms", raw->tombstone_grace_ms,
                       KV_TOMBSTONE_GRACE_MS_MAX, cfg_field_line(c, at, "tombstone_grace_ms"),
                       &out->tombstone_grace_ms);
  if (!err && raw->block_cache_mb)
    err = cfg_check_mb(c, "block_cache_mb", raw->block_cache_mb,
                       cfg_field_line(c, at, "block_cache_mb"), &out->block_cache_bytes);
  if (!err && raw->memtable_mb)
    err = cfg_check_mb(c, "memtable_mb", raw->memtable_mb, cfg_field_line(c, at, "memtable_mb"),
                       &out->memtable_bytes);
  uint64_t skew;
  char shown[CFG_SHOW_BYTES];
  if (!err && raw->max_clock_skew_ms &&
      (!cfg_parse_uint(raw->max_clock_skew_ms, &skew) || skew == 0 ||
       skew > KV_CLOCK_SKEW_MS_MAX))
    return cfg_fail(c, cfg_field_line(c, at, "max_clock_skew_ms"), "max_clock_skew_ms is %s; "
                    "it must be between 1 and %u", cfg_show_number(shown, raw->max_clock_skew_ms),
                    KV_CLOCK_SKEW_MS_MAX);
  if (!err && raw->max_clock_skew_ms) out->max_clock_skew_ms = (uint32_t)skew;
  return err;
}

static uint32_t cfg_region_nodes(const kv_config_t *cfg, const char *region) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < cfg->node_count; i++) n += strcmp(cfg->nodes[i].region, region) == 0;
  return n;
}

static uint32_t cfg_region_count(const kv_config_t *cfg) {
  uint32_t regions = 0;
  for (uint32_t i = 0; i < cfg->node_count; i++) {
    uint32_t first = 0;
    while (strcmp(cfg->nodes[first].region, cfg->nodes[i].region) != 0) first++;
    regions += first == i;
  }
  return regions;
}

/* The node just filled in at out->nodes[node_count] against the ones before it. */
static kv_err cfg_check_node_unique(const cfg_load_t *c, const kv_config_t *out, int entry) {
  const kv_node_conf_t *n = &out->nodes[out->node_count];
  char shown[CFG_SHOW_BYTES];
  for (uint32_t j = 0; j < out->node_count; j++) {
    const kv_node_conf_t *other = &out->nodes[j];
    if (strcmp(other->id, n->id) == 0)
      return cfg_fail(c, cfg_field_line(c, entry, "id"), "node id '%s' is used twice (first at "
                      "line %u)", n->id, other->line);
    if (strcmp(other->address, n->address) == 0)
      return cfg_fail(c, cfg_field_line(c, entry, "address"), "address '%s' is used twice "
                      "(first at line %u)", cfg_show(shown, n->address), other->line);
  }
  return KV_OK;
}

static kv_err cfg_check_node(const cfg_load_t *c, const cfg_raw_node_t *raw, int entry,
                             kv_config_t *out) {
  KV_ASSERT(entry >= 0);
  kv_node_conf_t *n = &out->nodes[out->node_count];
  n->line = c->entries[entry].line;
  if (!raw->id) return cfg_missing(c, n->line, "a node", "id");
  if (!raw->address) return cfg_missing(c, n->line, "a node", "address");
  kv_err err = cfg_copy_name(c, "node id", raw->id, KV_NODE_ID_BYTES_MAX,
                             cfg_field_line(c, entry, "id"), n->id);
  if (!err) err = cfg_copy_address(c, raw->address, cfg_field_line(c, entry, "address"),
                                   n->address);
  /* Region and rack matter only for placement; a cluster that never names them is one
   * region, "local", with no racks. */
  snprintf(n->region, sizeof n->region, "local");
  if (!err && raw->region)
    err = cfg_copy_name(c, "region", raw->region, KV_REGION_BYTES_MAX,
                        cfg_field_line(c, entry, "region"), n->region);
  if (!err && raw->rack && raw->rack[0])
    err = cfg_copy_name(c, "rack", raw->rack, KV_RACK_BYTES_MAX, cfg_field_line(c, entry, "rack"),
                        n->rack);
  if (!err) err = cfg_check_node_unique(c, out, entry);
  if (err) return err;
  out->node_count++;
  if (cfg_region_count(out) > KV_REGIONS_MAX)
    return cfg_fail(c, cfg_field_line(c, entry, "region"), "region '%s' is one region too many; "
                    "the limit is %u regions", n->region, KV_REGIONS_MAX);
  return KV_OK;
}

static kv_err cfg_check_nodes(const cfg_load_t *c, kv_config_t *out) {
  const cfg_raw_t *raw = cfg_raw(c);
  int list = cfg_child(c, 0, "nodes");
  if (list < 0) return cfg_missing(c, 1, "the file", "nodes");
  out->nodes_line = c->entries[list].line;
  if (raw->nodes_count == 0)
    return cfg_fail(c, out->nodes_line, "the nodes list is empty; a cluster needs at least "
                    "one node");
  if (raw->nodes_count > KV_NODES_MAX)
    return cfg_fail(c, c->entries[cfg_nth(c, list, KV_NODES_MAX)].line,
                    "there are %u nodes; the limit is %u", raw->nodes_count, KV_NODES_MAX);
  for (unsigned i = 0; i < raw->nodes_count; i++) {
    kv_err err = cfg_check_node(c, &raw->nodes[i], cfg_nth(c, list, (int)i), out);
    if (err) return err;
  }
  return KV_OK;
}

/* "east, west": the regions nodes are in, for a message. */
static void cfg_region_list(const kv_config_t *cfg, char *buf, size_t buf_bytes) {
  size_t used = 0;
  buf[0] = '\0';
  for (uint32_t i = 0; i < cfg->node_count && used < buf_bytes; i++) {
    uint32_t first = 0;
    while (strcmp(cfg->nodes[first].region, cfg->nodes[i].region) != 0) first++;
    if (first != i) continue;
    int n = snprintf(buf + used, buf_bytes - used, "%s%s", used ? ", " : "", cfg->nodes[i].region);
    used += n > 0 ? (size_t)n : 0;
  }
}

/* One "region: replicas" entry of a keyspace's replication mapping. */
static kv_err cfg_check_replicas(const cfg_load_t *c, const kv_config_t *cfg,
                                 const cfg_entry_t *e, kv_keyspace_conf_t *k) {
  char shown[CFG_SHOW_BYTES], regions[KV_REGIONS_MAX * (KV_REGION_BYTES_MAX + 2) + 1];
  uint32_t nodes = cfg_region_nodes(cfg, e->key);
  if (nodes == 0) {
    cfg_region_list(cfg, regions, sizeof regions);
    return cfg_fail(c, e->line, "replication region '%s' has no nodes (the nodes are in: %s)",
                    cfg_show(shown, e->key), regions);
  }
  uint64_t count;
  if (e->kind != CFG_SCALAR || !cfg_parse_uint(e->scalar, &count))
    return cfg_fail(c, e->line, "replication for region '%s' must be a whole number of replicas",
                    e->key);
  if (count == 0)
    return cfg_fail(c, e->line, "replication for region '%s' is 0; it must be at least 1", e->key);
  if (count > nodes)
    return cfg_fail(c, e->line, "replication for region '%s' is %llu, but the region has %u "
                    "node%s", e->key, (unsigned long long)count, nodes, nodes == 1 ? "" : "s");
  /* Keys are unique (the walk checks) and each names a node region, so they fit. */
  KV_ASSERT(k->replication_count < KV_REGIONS_MAX);
  kv_replication_conf_t *r = &k->replication[k->replication_count++];
  snprintf(r->region, sizeof r->region, "%s", e->key);
  r->replicas = (uint32_t)count;
  k->n += r->replicas;
  return KV_OK;
}

static kv_err cfg_check_replication(const cfg_load_t *c, const kv_config_t *cfg, int entry,
                                    kv_keyspace_conf_t *k) {
  int rep = cfg_child(c, entry, "replication");
  if (rep < 0) return cfg_missing(c, k->line, "a keyspace", "replication");
  uint32_t line = c->entries[rep].line;
  if (c->entries[rep].kind != CFG_MAPPING)
    return cfg_fail(c, line, "replication must be a mapping of region to replicas, like "
                    "{ local: 3 }");
  for (int i = rep + 1; i < c->entry_count; i++) {
    if (c->entries[i].parent != rep) continue;
    kv_err err = cfg_check_replicas(c, cfg, &c->entries[i], k);
    if (err) return err;
  }
  if (k->replication_count == 0)
    return cfg_fail(c, line, "replication is empty; name at least one region, like { local: 3 }");
  if (k->n > KV_REPLICAS_MAX)
    return cfg_fail(c, line, "replication adds up to %u replicas; the limit is %u", k->n,
                    KV_REPLICAS_MAX);
  return KV_OK;
}

static kv_err cfg_check_level(const cfg_load_t *c, const char *what, const char *raw,
                              uint32_t line, kv_keyspace_conf_t *k, kv_level_t *out) {
  char shown[CFG_SHOW_BYTES];
  kv_level_t level = KV_LEVEL_QUORUM;
  /* "" would parse as KV_LEVEL_DEFAULT, which a keyspace's own default cannot be. */
  if (raw && (!raw[0] || !kv_level_parse(raw, &level)))
    return cfg_fail(c, line, "%s level '%s' is unknown; use one of %s", what,
                    cfg_show(shown, raw), kv_level_names_list());
  if (level == KV_LEVEL_ANY && strcmp(what, "read") == 0)
    return cfg_fail(c, line, "read level ANY is only for writes");
  uint32_t needed = level == KV_LEVEL_TWO ? 2 : level == KV_LEVEL_THREE ? 3 : 1;
  if (needed > k->n)
    return cfg_fail(c, line, "%s level %s needs %u replicas, but keyspace '%s' has %u", what,
                    kv_level_name(level), needed, k->name, k->n);
  *out = level;
  return KV_OK;
}

static kv_err cfg_check_limit(const cfg_load_t *c, const char *what, const char *raw,
                              uint32_t dflt, uint32_t max, uint32_t line, uint32_t *out) {
  *out = dflt;
  if (!raw) return KV_OK;
  uint64_t v;
  char shown[CFG_SHOW_BYTES];
  if (!cfg_parse_uint(raw, &v) || v == 0 || v > max)
    return cfg_fail(c, line, "%s is %s; it must be between 1 and %u", what,
                    cfg_show_number(shown, raw), max);
  *out = (uint32_t)v;
  return KV_OK;
}

static kv_err cfg_check_bool(const cfg_load_t *c, const char *what, const char *raw,
                             uint32_t line, bool *out) {
  static const char *const words[] = {"false", "true", "no", "yes", "off", "on"};
  if (!raw) return KV_OK;
  for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
    if (strcasecmp(raw, words[i]) != 0) continue;
    *out = i % 2 == 1;
    return KV_OK;
  }
  char shown[CFG_SHOW_BYTES];
  return cfg_fail(c, line, "%s is '%s'; it must be true or false", what, cfg_show(shown, raw));
}

/* A conflict handler: a built-in's name, or "plugin:" and a path (loaded by kvnode). */
static kv_err cfg_check_handler(const cfg_load_t *c, const char *what, const char *raw,
                                uint32_t line, char *dst) {
  char shown[CFG_SHOW_BYTES];
  size_t len = strlen(raw), prefix = strlen(KV_CONFLICT_PLUGIN_PREFIX);
  if (len == 0) return cfg_fail(c, line, "%s is empty", what);
  if (strncmp(raw, KV_CONFLICT_PLUGIN_PREFIX, prefix) == 0) {
    if (len == prefix)
      return cfg_fail(c, line, "%s '%s' names no file; use plugin:/path/to/handler.so", what, raw);
    if (len > KV_HANDLER_BYTES_MAX)
      return cfg_fail(c, line, "%s '%s' is %zu bytes; the limit is %u", what, cfg_show(shown, raw),
                      len, KV_HANDLER_BYTES_MAX);
    for (size_t i = 0; i < len; i++)
      if ((unsigned char)raw[i] < 0x20)
        return cfg_fail(c, line, "%s '%s' has a control character", what, cfg_show(shown, raw));
  } else if (!kv_conflict_is_builtin(raw)) {
    return cfg_fail(c, line, "%s '%s' is unknown; use one of %s, or plugin:/path/to/handler.so",
                    what, cfg_show(shown, raw), kv_conflict_builtin_names());
  }
  memcpy(dst, raw, len + 1);
  return KV_OK;
}

/* region_priority: a list of regions that nodes are in, each once, highest priority first. */
static kv_err cfg_check_region_priority(const cfg_load_t *c, const kv_config_t *cfg, int entry,
                                        kv_keyspace_conf_t *k) {
  int list = cfg_child(c, entry, "region_priority");
  if (list < 0) return KV_OK;
  char shown[CFG_SHOW_BYTES], regions[KV_REGIONS_MAX * (KV_REGION_BYTES_MAX + 2) + 1];
  if (c->entries[list].kind != CFG_SEQUENCE)
    return cfg_fail(c, c->entries[list].line, "region_priority must be a list of regions, like "
                    "[east, west]");
  for (int i = list + 1; i < c->entry_count; i++) {
    const cfg_entry_t *e = &c->entries[i];
    if (e->parent != list) continue;
    if (e->kind != CFG_SCALAR)
      return cfg_fail(c, e->line, "region_priority must be a list of regions, like [east, west]");
    if (cfg_region_nodes(cfg, e->scalar) == 0) {
      cfg_region_list(cfg, regions, sizeof regions);
      return cfg_fail(c, e->line, "region_priority names region '%s', which has no nodes (the "
                      "nodes are in: %s)", cfg_show(shown, e->scalar), regions);
    }
    for (uint32_t j = 0; j < k->region_priority_count; j++)
      if (strcmp(k->region_priority[j], e->scalar) == 0)
        return cfg_fail(c, e->line, "region_priority names region '%s' twice", e->scalar);
    /* Distinct node regions: at most KV_REGIONS_MAX of them. */
    KV_ASSERT(k->region_priority_count < KV_REGIONS_MAX);
    snprintf(k->region_priority[k->region_priority_count++], sizeof k->region_priority[0], "%s",
             e->scalar);
  }
  return KV_OK;
}

/* Everything of a keyspace after its name and replication. */
static kv_err cfg_check_options(const cfg_load_t *c, const cfg_raw_keyspace_t *raw, int entry,
                                const kv_config_t *cfg, kv_keyspace_conf_t *k) {
  kv_err err = cfg_check_level(c, "read", raw->read, cfg_field_line(c, entry, "read"), k,
                               &k->read);
  if (!err) err = cfg_check_level(c, "write", raw->write, cfg_field_line(c, entry, "write"), k,
                                  &k->write);
  snprintf(k->handler, sizeof k->handler, "siblings");
  if (!err && raw->handler)
    err = cfg_check_handler(c, "handler", raw->handler, cfg_field_line(c, entry, "handler"),
                            k->handler);
  snprintf(k->fallback_handler, sizeof k->fallback_handler, "lww");
  if (!err && raw->fallback_handler)
    err = cfg_check_handler(c, "fallback_handler", raw->fallback_handler,
                            cfg_field_line(c, entry, "fallback_handler"), k->fallback_handler);
  if (!err && strcmp(k->fallback_handler, "siblings") == 0)
    err = cfg_fail(c, cfg_field_line(c, entry, "fallback_handler"), "fallback_handler cannot be "
                   "siblings: past siblings_max the versions must be resolved to one");
  if (!err) err = cfg_check_region_priority(c, cfg, entry, k);
  if (!err) err = cfg_check_limit(c, "siblings_max", raw->siblings_max, KV_SIBLINGS_DEFAULT,
                                  KV_SIBLINGS_MAX, cfg_field_line(c, entry, "siblings_max"),
                                  &k->siblings_max);
  if (!err) err = cfg_check_limit(c, "key_bytes_max", raw->key_bytes_max, KV_KEY_BYTES_DEFAULT,
                                  KV_KEY_BYTES_HARD_MAX, cfg_field_line(c, entry, "key_bytes_max"),
                                  &k->key_bytes_max);
  if (!err) err = cfg_check_limit(c, "value_bytes_max", raw->value_bytes_max,
                                  KV_VALUE_BYTES_DEFAULT, KV_VALUE_BYTES_HARD_MAX,
                                  cfg_field_line(c, entry, "value_bytes_max"), &k->value_bytes_max);
  k->sloppy_quorum = true;
  if (!err) err = cfg_check_bool(c, "sloppy_quorum", raw->sloppy_quorum,
                                 cfg_field_line(c, entry, "sloppy_quorum"), &k->sloppy_quorum);
  return err;
}

static kv_err cfg_check_keyspace(const cfg_load_t *c, const cfg_raw_keyspace_t *raw, int entry,
                                 kv_config_t *out) {
  KV_ASSERT(entry >= 0);
  kv_keyspace_conf_t *k = &out->keyspaces[out->keyspace_count];
  k->line = c->entries[entry].line;
  if (!raw->name) return cfg_missing(c, k->line, "a keyspace", "name");
  uint32_t name_line = cfg_field_line(c, entry, "name");
  kv_err err = cfg_copy_name(c, "keyspace name", raw->name, KV_KEYSPACE_NAME_BYTES_MAX,
                             name_line, k->name);
  if (err) return err;
  for (uint32_t j = 0; j < out->keyspace_count; j++)
    if (strcmp(out->keyspaces[j].name, k->name) == 0)
      return cfg_fail(c, name_line, "keyspace '%s' is defined twice (first at line %u)", k->name,
                      out->keyspaces[j].line);
  err = cfg_check_replication(c, out, entry, k);
  if (!err) err = cfg_check_options(c, raw, entry, out, k);
  if (err) return err;
  out->keyspace_count++;
  return KV_OK;
}

static kv_err cfg_check_keyspaces(const cfg_load_t *c, kv_config_t *out) {
  const cfg_raw_t *raw = cfg_raw(c);
  int list = cfg_child(c, 0, "keyspaces");
  if (list < 0) return cfg_missing(c, 1, "the file", "keyspaces");
  if (raw->keyspaces_count == 0)
    return cfg_fail(c, c->entries[list].line, "the keyspaces list is empty; define at least one "
                    "keyspace");
  if (raw->keyspaces_count > KV_KEYSPACES_MAX)
    return cfg_fail(c, c->entries[cfg_nth(c, list, KV_KEYSPACES_MAX)].line,
                    "there are %u keyspaces; the limit is %u", raw->keyspaces_count,
                    KV_KEYSPACES_MAX);
  for (unsigned i = 0; i < raw->keyspaces_count; i++) {
    kv_err err = cfg_check_keyspace(c, &raw->keyspaces[i], cfg_nth(c, list, (int)i), out);
    if (err) return err;
  }
  return KV_OK;
}

/* ------------------------------------------------------------------------------------------
 * Step 4, continued: tls and tokens
 * ---------------------------------------------------------------------------------------- */

/* A path of the tls section, 1..KV_TLS_PATH_BYTES_MAX bytes. Whether it can be read is for
 * kvnode/tls_rpc.c to say, when it loads the file. */
static kv_err cfg_copy_path(const cfg_load_t *c, const char *what, const char *raw,
                            uint32_t line, char *dst) {
  char shown[CFG_SHOW_BYTES];
  size_t len = strlen(raw);
  if (len == 0) return cfg_fail(c, line, "%s is empty; give the path of a PEM file", what);
  if (len > KV_TLS_PATH_BYTES_MAX)
    return cfg_fail(c, line, "%s '%s' is %zu bytes; the limit is %u", what, cfg_show(shown, raw),
                    len, KV_TLS_PATH_BYTES_MAX);
  memcpy(dst, raw, len + 1);
  return KV_OK;
}

static kv_err cfg_check_tls(const cfg_load_t *c, kv_config_t *out) {
  static const cfg_raw_tls_t none;
  kv_tls_conf_t *t = &out->tls;
  t->client_auth_required = true;
  int at = cfg_child(c, 0, "tls");
  if (at < 0) return KV_OK;
  /* "tls:" with nothing under it loads as no mapping at all. */
  const cfg_raw_tls_t *raw = cfg_raw(c)->tls ? cfg_raw(c)->tls : &none;
  uint32_t line = c->entries[at].line;
  if (!raw->cert) return cfg_missing(c, line, "tls", "cert");
  if (!raw->key) return cfg_missing(c, line, "tls", "key");
  if (!raw->ca) return cfg_missing(c, line, "tls", "ca");
  t->cert_line = cfg_field_line(c, at, "cert");
  t->key_line = cfg_field_line(c, at, "key");
  t->ca_line = cfg_field_line(c, at, "ca");
  kv_err err = cfg_copy_path(c, "tls.cert", raw->cert, t->cert_line, t->cert);
  if (!err) err = cfg_copy_path(c, "tls.key", raw->key, t->key_line, t->key);
  if (!err) err = cfg_copy_path(c, "tls.ca", raw->ca, t->ca_line, t->ca);
  if (err) return err;
  if (raw->client_auth) {
    char shown[CFG_SHOW_BYTES];
    if (strcmp(raw->client_auth, "optional") == 0)
      t->client_auth_required = false;
    else if (strcmp(raw->client_auth, "require") != 0)
      return cfg_fail(c, cfg_field_line(c, at, "client_auth"), "tls.client_auth is '%s'; use "
                      "require or optional", cfg_show(shown, raw->client_auth));
  }
  t->enabled = true;
  return KV_OK;
}

/* A token's read or write list: keyspace names, or "*" for every keyspace, as a bit set. */
static kv_err cfg_check_token_keyspaces(const cfg_load_t *c, const kv_config_t *cfg, int entry,
                                        const char *role, const kv_token_conf_t *t,
                                        uint64_t *out) {
  int list = cfg_child(c, entry, role);
  if (list < 0) return KV_OK;
  char shown[CFG_SHOW_BYTES];
  for (int i = list; i < c->entry_count; i++) {
    const cfg_entry_t *e = &c->entries[i];
    if (i != list && e->parent != list) continue;
    if ((i == list && e->kind != CFG_SEQUENCE) || (i != list && e->kind != CFG_SCALAR))
      return cfg_fail(c, e->line, "token '%s' %s must be a list of keyspaces, like [default], "
                      "or [\"*\"] for every keyspace", t->name, role);
    if (i == list) continue;
    if (strcmp(e->scalar, "*") == 0) {
      *out = cfg->keyspace_count == 64 ? ~0ull : (1ull << cfg->keyspace_count) - 1;
      continue;
    }
    uint32_t k = 0;
    while (k < cfg->keyspace_count && strcmp(cfg->keyspaces[k].name, e->scalar) != 0) k++;
    if (k == cfg->keyspace_count)
      return cfg_fail(c, e->line, "token '%s' %s names keyspace '%s', which is not defined",
                      t->name, role, cfg_show(shown, e->scalar));
    *out |= 1ull << k;
  }
  return KV_OK;
}

/* Reads a secret_file: its bytes, less one line ending. At most max + 2 bytes are read, so a
 * longer file is told from one at the limit with its newline. */
static kv_err cfg_read_secret_file(const cfg_load_t *c, const kv_token_conf_t *t,
                                   const char *path, uint32_t line, char *buf, size_t max,
                                   size_t *len) {
  char shown[CFG_SHOW_BYTES];
  FILE *f = fopen(path, "rb");
  if (!f)
    return cfg_fail(c, line, "token '%s' secret_file '%s' cannot be read: %s", t->name,
                    cfg_show(shown, path), strerror(errno));
  size_t n = fread(buf, 1, max + 2, f);
  int read_errno = ferror(f) ? errno : 0;
  fclose(f);
  if (read_errno)
    return cfg_fail(c, line, "token '%s' secret_file '%s' cannot be read: %s", t->name,
                    cfg_show(shown, path), strerror(read_errno));
  if (n > 0 && buf[n - 1] == '\n') n--;
  if (n > 0 && buf[n - 1] == '\r') n--;
  *len = n;
  return KV_OK;
}

/* Exactly one of secret and secret_file, 16 to 256 printable ASCII bytes without spaces. The
 * secret itself never appears in a message. */
static kv_err cfg_check_token_secret(const cfg_load_t *c, const cfg_raw_token_t *raw, int entry,
                                     kv_token_conf_t *t) {
  uint32_t line = cfg_field_line(c, entry, raw->secret_file ? "secret_file" : "secret");
  if (raw->secret && raw->secret_file)
    return cfg_fail(c, line, "token '%s' has both secret and secret_file; give one", t->name);
  if (!raw->secret && !raw->secret_file)
    return cfg_fail(c, t->line, "token '%s' has no secret; give secret or secret_file", t->name);
  char buf[KV_TOKEN_SECRET_BYTES_MAX + 2];
  const char *secret = raw->secret;
  size_t len = raw->secret ? strlen(raw->secret) : 0;
  if (raw->secret_file) {
    kv_err err = cfg_read_secret_file(c, t, raw->secret_file, line, buf,
                                      KV_TOKEN_SECRET_BYTES_MAX, &len);
    if (err) return err;
    secret = buf;
  }
  const char *what = raw->secret_file ? "secret_file holds a secret of" : "secret is";
  if (len < KV_TOKEN_SECRET_BYTES_MIN)
    return cfg_fail(c, line, "token '%s' %s %zu bytes; use at least %u (openssl rand -hex 16 "
                    "makes one)", t->name, what, len, KV_TOKEN_SECRET_BYTES_MIN);
  if (len > KV_TOKEN_SECRET_BYTES_MAX)
    return cfg_fail(c, line, "token '%s' %s more than %u bytes, the limit", t->name, what,
                    KV_TOKEN_SECRET_BYTES_MAX);
  for (size_t i = 0; i < len; i++)
    if (secret[i] < 0x21 || secret[i] > 0x7e)
      return cfg_fail(c, line, "token '%s' secret has a space or a byte that is not printable "
                      "ASCII; it travels in an HTTP header", t->name);
  memcpy(t->secret, secret, len);
  t->secret_bytes = (uint32_t)len;
  return KV_OK;
}

/* The token just filled in at out->tokens[token_count] against the ones before it. */
static kv_err cfg_check_token_unique(const cfg_load_t *c, const kv_config_t *out, int entry) {
  const kv_token_conf_t *t = &out->tokens[out->token_count];
  for (uint32_t j = 0; j < out->token_count; j++) {
    const kv_token_conf_t *other = &out->tokens[j];
    if (strcmp(other->name, t->name) == 0)
      return cfg_fail(c, cfg_field_line(c, entry, "name"), "token name '%s' is used twice "
                      "(first at line %u)", t->name, other->line);
    if (other->secret_bytes == t->secret_bytes &&
        memcmp(other->secret, t->secret, t->secret_bytes) == 0)
      return cfg_fail(c, t->line, "token '%s' has the same secret as token '%s' (line %u); "
                      "each token needs its own", t->name, other->name, other->line);
  }
  return KV_OK;
}

static kv_err cfg_check_token(const cfg_load_t *c, const cfg_raw_token_t *raw, int entry,
                              kv_config_t *out) {
  KV_ASSERT(entry >= 0);
  kv_token_conf_t *t = &out->tokens[out->token_count];
  t->line = c->entries[entry].line;
  if (!raw->name) return cfg_missing(c, t->line, "a token", "name");
  kv_err err = cfg_copy_name(c, "token name", raw->name, KV_TOKEN_NAME_BYTES_MAX,
                             cfg_field_line(c, entry, "name"), t->name);
  if (!err) err = cfg_check_token_secret(c, raw, entry, t);
  if (!err) err = cfg_check_token_keyspaces(c, out, entry, "read", t, &t->read_keyspaces);
  if (!err) err = cfg_check_token_keyspaces(c, out, entry, "write", t, &t->write_keyspaces);
  if (!err) err = cfg_check_bool(c, "admin", raw->admin, cfg_field_line(c, entry, "admin"),
                                 &t->admin);
  if (!err && !t->admin && !t->read_keyspaces && !t->write_keyspaces)
    err = cfg_fail(c, t->line, "token '%s' has no role; give it read or write keyspaces, or "
                   "admin: true", t->name);
  if (!err) err = cfg_check_token_unique(c, out, entry);
  if (err) return err;
  out->token_count++;
  return KV_OK;
}

static kv_err cfg_check_tokens(const cfg_load_t *c, kv_config_t *out) {
  const cfg_raw_t *raw = cfg_raw(c);
  int list = cfg_child(c, 0, "tokens");
  if (list < 0) return KV_OK;
  out->tokens_line = c->entries[list].line;
  if (raw->tokens_count == 0)
    return cfg_fail(c, out->tokens_line, "the tokens list is empty; define a token, or remove "
                    "the list to ask for none");
  if (!out->tls.enabled)
    return cfg_fail(c, out->tokens_line, "tokens need tls: without it bearer tokens would "
                    "cross the network in the clear; add a tls section");
  if (raw->tokens_count > KV_TOKENS_MAX)
    return cfg_fail(c, c->entries[cfg_nth(c, list, KV_TOKENS_MAX)].line,
                    "there are %u tokens; the limit is %u", raw->tokens_count, KV_TOKENS_MAX);
  for (unsigned i = 0; i < raw->tokens_count; i++) {
    kv_err err = cfg_check_token(c, &raw->tokens[i], cfg_nth(c, list, (int)i), out);
    if (err) return err;
  }
  return KV_OK;
}

static void cfg_load_free(cfg_load_t *c) {
  for (int i = 0; i < c->entry_count; i++) {
    free(c->entries[i].key);
    free(c->entries[i].scalar);
  }
  /* A walk stopped by an error may hold a key that never got its value. */
  for (int i = 0; i < c->depth; i++) free(c->stack[i].key);
  free(c->entries);
  free(c->text);
  if (c->raw) {
    cyaml_config_t cy = cfg_cyaml_config(c);
    cyaml_free(&cy, &cfg_schema, c->raw, 0);
  }
}

kv_err kv_config_load(const char *path, kv_config_t *out, kv_status_t *st) {
  KV_ASSERT(path && out && st);
  memset(out, 0, sizeof *out);
  kv_status_clear(st);
  cfg_load_t c = {.path = path, .st = st};
  size_t path_len = strlen(path);
  if (path_len >= sizeof out->path)
    return cfg_fail(&c, 0, "the path is %zu bytes; the limit is %zu", path_len,
                    sizeof out->path - 1);
  memcpy(out->path, path, path_len + 1);
  kv_err err = cfg_read(&c);
  if (!err) err = cfg_walk(&c);
  if (!err) err = cfg_cyaml_load(&c);
  if (!err) err = cfg_check_cluster(&c, out);
  if (!err) err = cfg_check_nodes(&c, out);
  if (!err) err = cfg_check_keyspaces(&c, out);
  if (!err) err = cfg_check_tls(&c, out);
  if (!err) err = cfg_check_tokens(&c, out);
  cfg_load_free(&c);
  /* A half-checked config must not be mistaken for a good one. */
  if (err) memset(out, 0, sizeof *out);
  return err;
}

/* ------------------------------------------------------------------------------------------
 * Lookups
 * ---------------------------------------------------------------------------------------- */

int kv_config_node_index(const kv_config_t *cfg, const char *id) {
  KV_ASSERT(cfg && id);
  for (uint32_t i = 0; i < cfg->node_count; i++)
    if (strcmp(cfg->nodes[i].id, id) == 0) return (int)i;
  return -1;
}

const kv_node_conf_t *kv_config_node(const kv_config_t *cfg, const char *id) {
  int i = kv_config_node_index(cfg, id);
  return i < 0 ? NULL : &cfg->nodes[i];
}

const kv_keyspace_conf_t *kv_config_keyspace(const kv_config_t *cfg, const char *name) {
  KV_ASSERT(cfg && name);
  for (uint32_t i = 0; i < cfg->keyspace_count; i++)
    if (strcmp(cfg->keyspaces[i].name, name) == 0) return &cfg->keyspaces[i];
  return NULL;
}

void kv_config_limits(const kv_config_t *cfg, uint32_t *key_bytes_max,
                      uint32_t *value_bytes_max, uint32_t *siblings_max) {
  KV_ASSERT(cfg && key_bytes_max && value_bytes_max && siblings_max);
  *key_bytes_max = *value_bytes_max = *siblings_max = 0;
  for (uint32_t i = 0; i < cfg->keyspace_count; i++) {
    const kv_keyspace_conf_t *k = &cfg->keyspaces[i];
    if (k->key_bytes_max > *key_bytes_max) *key_bytes_max = k->key_bytes_max;
    if (k->value_bytes_max > *value_bytes_max) *value_bytes_max = k->value_bytes_max;
    if (k->siblings_max > *siblings_max) *siblings_max = k->siblings_max;
  }
}
