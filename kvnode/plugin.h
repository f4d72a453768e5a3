/* plugin.h: conflict handler plugins (common/conflict.h): shared objects that the config
 * names as `handler: plugin:/path/to/x.so` (or fallback_handler).
 *
 * kv_plugins_load opens each one named, once, asks it for its entry point, checks the ABI
 * version it answers and registers it in the handler registry under its full name
 * ("plugin:/path/to/x.so"), so requests and keyspaces find it like a built-in. A plugin that
 * cannot be loaded stops kvnode at start (exit 2, the config contract of DESIGN section 12):
 * a keyspace must never run with a handler other than the one its config names. Plugins
 * stay loaded until the process ends. Call at start-up, before other threads run. */
#ifndef KV_PLUGIN_H
#define KV_PLUGIN_H

#include "config.h"
#include "kv_err.h"

/* Loads every plugin cfg names. KV_ECONFIG with "FILE:LINE: sentence" (the keyspace's line)
 * when one cannot be opened, exports no tunekv_conflict_plugin, returns none, answers an ABI
 * version other than KV_CONFLICT_ABI_VERSION, or has no resolve function. */
kv_err kv_plugins_load(const kv_config_t *cfg, kv_status_t *st);

#endif
