/*
 * unload.c - the last stage of a module's life: run its destructors, give
 * back the modules it used, unregister its unwind tables and free its
 * memory.  A failed load undoes itself with the same pieces.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdlib.h>
#include "execmem/unwind.h"
#include "crt.h"
#include "registry.h"
#include "unload.h"
#include "observe/observe.h"

/* With the registry lock held: a loaded module that uses module, or NULL. */
static const struct execmem_module *find_user(const struct execmem_module *module)
{
	for (const struct execmem_module *m = module->next; m; m = m->next)
		for (uint32_t i = 0; i < m->ndeps; i++)
			if (m->deps[i] == module)
				return m;
	return NULL;
}

/*
 * Destructors, in the order a shared library's run at dlclose(): the
 * .fini_array/.dtors functions, then (as crtbegin.o's would) the functions
 * registered with atexit() or __cxa_atexit() for the module's __dso_handle:
 * C++ static destructors and atexit().
 */
void mod_run_destructors(struct execmem_module *module)
{
	if (module->flags & EXECMEM_MODULE_LINK_ONLY)
		return;
	for (uint32_t i = 0; i < module->nfini; i++)
		module->fini[i]();
	mod_crt_finalize(module);
}

void mod_drop_dependencies(struct execmem_module *module)
{
	mod_registry_lock();
	for (uint32_t i = 0; i < module->ndeps; i++)
		module->deps[i]->users--;
	mod_registry_unlock();
	free(module->deps);
	module->deps = NULL;
	module->ndeps = 0;
}

static void unregister_unwind_tables(struct execmem_module *module)
{
	for (uint32_t i = 0; i < module->neh_frames; i++)
		execmem_unwind_unregister(module->eh_frames[i]);
	free(module->eh_frames);
	module->eh_frames = NULL;
	module->neh_frames = 0;
}

void mod_release_memory(struct execmem_module *module)
{
	unregister_unwind_tables(module);
	for (uint32_t b = 0; b < module->nblocks; b++)
		if (module->blocks[b].alloc)
			execmem_free(module->blocks[b].alloc);
	free(module->blocks);
	free(module->exports);
	free(module->export_slots);
	free(module->sections);
	free(module->fini);
	free(module->strings);
	free(module->name);
	free(module->deps);
	free(module);
}

int mod_unload(struct execmem_module *module)
{
	mod_registry_lock();
	if (module->users) {
		const struct execmem_module *user = find_user(module);
		int err = mod_error(EBUSY, "%s: still used by module %s", module->name,
				    user ? user->name : "(unknown)");
		mod_registry_unlock();
		return err;
	}
	mod_registry_remove(module);
	mod_registry_unlock();
	mod_run_destructors(module);
	mod_drop_dependencies(module);
	mod_observe_unload(module);
	mod_release_memory(module);
	return 0;
}
