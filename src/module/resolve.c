/*
 * resolve.c - stage 5 of a load: give every import an address, from the
 * caller's resolver, the modules loaded before, the loader's own C runtime
 * pieces or the host program, and note which loaded modules it uses.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include "load_state.h"
#include "crt.h"
#include "registry.h"

static int add_dependency(struct execmem_module *module, struct execmem_module *provider)
{
	for (uint32_t i = 0; i < module->ndeps; i++)
		if (module->deps[i] == provider)
			return 0;
	struct execmem_module **n = realloc(module->deps, (module->ndeps + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	module->deps = n;
	module->deps[module->ndeps++] = provider;
	provider->users++;     /* registry lock held by the caller */
	return 0;
}

/* Imports the resolver callback gives; runs without any lock. */
static void resolve_with_callback(struct load *ld)
{
	const struct execmem_module_options *opt = ld->options;
	if (!opt || !opt->resolver)
		return;
	for (uint32_t i = 0; i < ld->globals.count; i++) {
		struct mod_entry *e = &ld->globals.entries[i];
		if (e->state != ENTRY_UNDEFINED || is_got_symbol(e->name))
			continue;
		e->address = (uintptr_t)opt->resolver(e->name, opt->resolver_context);
	}
}

static int resolve_from_modules_and_host(struct load *ld)
{
	int use_host = !(ld->flags & EXECMEM_MODULE_NO_HOST_SYMBOLS);
	int err = 0;

	mod_registry_lock();
	for (uint32_t i = 0; i < ld->globals.count && !err; i++) {
		struct mod_entry *e = &ld->globals.entries[i];
		if (e->state != ENTRY_UNDEFINED || e->address || is_got_symbol(e->name))
			continue;
		e->address = mod_registry_lookup(e->name, &e->provider);
		if (e->provider) {
			if (add_dependency(ld->module, e->provider))
				err = mod_error(ENOMEM, "%s: out of memory", ld->name);
		} else if (!(e->address = mod_crt_symbol(e->name)) && use_host) {
			e->address = (uintptr_t)dlsym(RTLD_DEFAULT, e->name);
		}
		if (!err && !e->address && !e->weak)
			err = mod_error(ENOENT, "%s: undefined symbol '%s' (referenced by %s)",
					ld->name, e->name, ld->objects[e->object].name);
	}
	mod_registry_unlock();
	return err;
}

/* Imports: the resolver callback first (without locks), then modules and host. */
int load_resolve_imports(struct load *ld)
{
	resolve_with_callback(ld);
	return resolve_from_modules_and_host(ld);
}
