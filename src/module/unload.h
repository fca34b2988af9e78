/*
 * unload.h - the end of a loaded module, and the undoing of a failed load.
 */
#ifndef EXECMEM_MODULE_UNLOAD_H
#define EXECMEM_MODULE_UNLOAD_H

#include "common.h"

/*
 * Unloading (unload.c).  mod_unload() takes a module that no other uses out
 * of the registry, runs its destructors and frees it: 0, or -EBUSY with a
 * message.  A failed load undoes itself with the pieces: mod_run_destructors()
 * (constructors ran), mod_drop_dependencies(), mod_release_memory().
 */
MOD_HIDDEN int mod_unload(struct execmem_module *module);
MOD_HIDDEN void mod_run_destructors(struct execmem_module *module);
MOD_HIDDEN void mod_drop_dependencies(struct execmem_module *module);
MOD_HIDDEN void mod_release_memory(struct execmem_module *module);

#endif
