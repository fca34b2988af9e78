/*
 * registry.h - the list of loaded modules and their exports.
 */
#ifndef EXECMEM_MODULE_REGISTRY_H
#define EXECMEM_MODULE_REGISTRY_H

#include "common.h"

/* Look name up in the module's own exports hash (any global symbol). */
MOD_HIDDEN const struct mod_export *mod_find_export(const struct execmem_module *module,
						    const char *name);

/*
 * Registry.  mod_registry_lock() serialises changes to the list of loaded
 * modules and to users counts.
 */
MOD_HIDDEN void mod_registry_lock(void);
MOD_HIDDEN void mod_registry_unlock(void);
/* With the lock held: find an exported symbol in a loaded module. */
MOD_HIDDEN uintptr_t mod_registry_lookup(const char *name, struct execmem_module **provider);
MOD_HIDDEN void mod_registry_add(struct execmem_module *module);
MOD_HIDDEN void mod_registry_remove(struct execmem_module *module);

#endif
