/*
 * registry.c - the list of loaded modules, in load order, whose exported
 * symbols later modules may use.  One mutex guards the list and the users
 * counts; it is never held while module code (constructors, destructors) or
 * a user's resolver runs.
 */
#include <pthread.h>
#include <string.h>
#include "registry.h"
#include "symtab.h"

static pthread_mutex_t registry_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct execmem_module *registry_head, *registry_tail;

void mod_registry_lock(void)
{
	pthread_mutex_lock(&registry_mutex);
}

void mod_registry_unlock(void)
{
	pthread_mutex_unlock(&registry_mutex);
}

const struct mod_export *mod_find_export(const struct execmem_module *module, const char *name)
{
	if (!module->export_slots)
		return NULL;
	uint32_t s = mod_hash_name(name) & module->export_mask;
	for (; module->export_slots[s]; s = (s + 1) & module->export_mask) {
		const struct mod_export *e = &module->exports[module->export_slots[s] - 1];
		if (strcmp(e->name, name) == 0)
			return e;
	}
	return NULL;
}

uintptr_t mod_registry_lookup(const char *name, struct execmem_module **provider)
{
	for (struct execmem_module *m = registry_head; m; m = m->next) {
		if (m->flags & EXECMEM_MODULE_NO_EXPORT)
			continue;
		const struct mod_export *e = mod_find_export(m, name);
		if (e && e->is_exported) {
			*provider = m;
			return e->address;
		}
	}
	*provider = NULL;
	return 0;
}

void mod_registry_add(struct execmem_module *module)
{
	module->prev = registry_tail;
	module->next = NULL;
	if (registry_tail)
		registry_tail->next = module;
	else
		registry_head = module;
	registry_tail = module;
	module->registered = 1;
}

void mod_registry_remove(struct execmem_module *module)
{
	if (!module->registered)
		return;
	if (module->prev)
		module->prev->next = module->next;
	else
		registry_head = module->next;
	if (module->next)
		module->next->prev = module->prev;
	else
		registry_tail = module->prev;
	module->prev = module->next = NULL;
	module->registered = 0;
}
