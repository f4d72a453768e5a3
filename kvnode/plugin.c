/* plugin.c: loading conflict handler plugins with dlopen (see plugin.h).
 *
 * The entry point is looked up by name (KV_CONFLICT_PLUGIN_SYMBOL) and called once; its
 * answer must start with abi_version, so a plugin of any version can be told apart before
 * anything else in it is read. RTLD_NOW makes a plugin with unresolved symbols fail here, at
 * start, rather than on the first conflict; RTLD_LOCAL keeps plugins from seeing each
 * other's symbols. Handles are never closed: the registry points into them for the life of
 * the process. */
#include "plugin.h"

#include <dlfcn.h>
#include <string.h>

#include "conflict.h"

/* Loads the plugin `handler` names ("plugin:PATH") for the keyspace at line, unless it is
 * registered already. */
static kv_err plugin_load(const kv_config_t *cfg, const char *what, const char *handler,
                          uint32_t line, kv_status_t *st) {
  if (kv_conflict_find(handler)) return KV_OK;
  const char *path = handler + strlen(KV_CONFLICT_PLUGIN_PREFIX);
  void *so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!so)
    return kv_status_set(st, KV_ECONFIG, "%s:%u: %s '%s' cannot be loaded: %s", cfg->path, line,
                         what, handler, dlerror());
  kv_conflict_plugin_entry_fn entry;
  /* ISO C has no cast from void * to a function pointer; POSIX guarantees this one works. */
  void *sym = dlsym(so, KV_CONFLICT_PLUGIN_SYMBOL);
  memcpy(&entry, &sym, sizeof entry);
  const kv_conflict_plugin_t *p = entry ? entry() : NULL;
  kv_err err = KV_OK;
  if (!entry)
    err = kv_status_set(st, KV_ECONFIG, "%s:%u: %s '%s' exports no %s function", cfg->path, line,
                        what, handler, KV_CONFLICT_PLUGIN_SYMBOL);
  else if (!p)
    err = kv_status_set(st, KV_ECONFIG, "%s:%u: %s '%s' returned no plugin from %s", cfg->path,
                        line, what, handler, KV_CONFLICT_PLUGIN_SYMBOL);
  else if (p->abi_version != KV_CONFLICT_ABI_VERSION)
    err = kv_status_set(st, KV_ECONFIG, "%s:%u: %s '%s' answers ABI version %u; this kvnode "
                        "speaks version %u", cfg->path, line, what, handler, p->abi_version,
                        KV_CONFLICT_ABI_VERSION);
  else if (!p->resolve)
    err = kv_status_set(st, KV_ECONFIG, "%s:%u: %s '%s' has no resolve function", cfg->path,
                        line, what, handler);
  else
    err = kv_conflict_register(handler, p->resolve, st);
  if (err != KV_OK) dlclose(so);
  return err;
}

static bool is_plugin(const char *handler) {
  return strncmp(handler, KV_CONFLICT_PLUGIN_PREFIX, strlen(KV_CONFLICT_PLUGIN_PREFIX)) == 0;
}

kv_err kv_plugins_load(const kv_config_t *cfg, kv_status_t *st) {
  for (uint32_t i = 0; i < cfg->keyspace_count; i++) {
    const kv_keyspace_conf_t *ks = &cfg->keyspaces[i];
    kv_err err = KV_OK;
    if (is_plugin(ks->handler)) err = plugin_load(cfg, "handler", ks->handler, ks->line, st);
    if (!err && is_plugin(ks->fallback_handler))
      err = plugin_load(cfg, "fallback_handler", ks->fallback_handler, ks->line, st);
    if (err) return err;
  }
  return KV_OK;
}
