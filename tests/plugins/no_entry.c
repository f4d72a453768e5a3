/* no_entry.c: a test plugin that exports no tunekv_conflict_plugin. */
int tunekv_something_else(void);
int tunekv_something_else(void) { return 1; }
