/*
 * comdat.c - COMDAT groups (SHT_GROUP with GRP_COMDAT): the sections of an
 * inline function, a template instance, a vtable or typeinfo that every
 * object using it carries a copy of.  One copy is used:
 *   - the first object of the load that has the group keeps it;
 *   - a group whose exported symbols all exist already (in a module loaded
 *     earlier, or in the host, looked up as imports are) is dropped as
 *     well, so that the host's or an earlier module's definition wins;
 * and the sections of a dropped group are not loaded: the symbols they
 * defined become imports, resolved to the copy that is used.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "load_state.h"
#include "registry.h"

/* The member section indices of a group, checked; NULL when malformed. */
static const uint8_t *group_members(const struct mod_object *obj, uint32_t g, uint32_t *count)
{
	const struct mod_section *group = &obj->sections[g];
	if (!group->data || group->size < 4 || group->size % 4)
		return NULL;
	*count = (uint32_t)(group->size / 4 - 1);
	for (uint32_t k = 0; k < *count; k++) {
		uint32_t m;
		memcpy(&m, group->data + 4 + 4 * k, 4);
		if (m == 0 || m >= obj->nsections || m == g)
			return NULL;
	}
	return group->data + 4;
}

static uint32_t member(const uint8_t *members, uint32_t k)
{
	uint32_t m;
	memcpy(&m, members + 4 * k, 4);
	return m;
}

static int is_comdat(const struct mod_section *sec)
{
	uint32_t flags;
	if (sec->type != SHT_GROUP || !sec->data || sec->size < 4)
		return 0;
	memcpy(&flags, sec->data, 4);
	return (flags & GRP_COMDAT) != 0;
}

static const char *group_signature(const struct mod_object *obj, const struct mod_section *group)
{
	if (group->link != obj->symtab_index || group->info == 0 || group->info >= obj->nsymbols)
		return NULL;
	const struct mod_symbol *sym = &obj->symbols[group->info];
	if (sym->type == STT_SECTION && sym->shndx < obj->nsections)
		return obj->sections[sym->shndx].name;
	return sym->name;
}

/* Does a module loaded earlier or the host define name (as imports are resolved)? */
static int defined_outside(const struct load *ld, const char *name)
{
	const struct execmem_module_options *opt = ld->options;
	struct execmem_module *provider = NULL;

	if (opt && opt->resolver && opt->resolver(name, opt->resolver_context))
		return 1;
	mod_registry_lock();
	uintptr_t address = mod_registry_lookup(name, &provider);
	mod_registry_unlock();
	if (address)
		return 1;
	return !(ld->flags & EXECMEM_MODULE_NO_HOST_SYMBOLS) && dlsym(RTLD_DEFAULT, name);
}

static int is_exported_definition(const struct mod_symbol *sym)
{
	return (sym->bind == STB_GLOBAL || sym->bind == STB_WEAK || sym->bind == STB_GNU_UNIQUE) &&
	       sym->name[0] && sym->shndx != SHN_UNDEF && sym->shndx < SHN_LORESERVE &&
	       (sym->visibility == STV_DEFAULT || sym->visibility == STV_PROTECTED);
}

/* What is known of group section g (state[g]); 0 for other sections. */
enum group_state {
	GROUP_NO_EXPORT = 1,   /* defines no exported symbol (so far) */
	GROUP_OUTSIDE,         /* all it exports is defined outside the module */
	GROUP_OWN,             /* it exports something nothing outside defines */
};

/* The state of every group of obj; group_of[s] is the group of section s, or 0. */
static void find_groups_defined_outside(const struct load *ld, const struct mod_object *obj,
					const uint32_t *group_of, uint8_t *state)
{
	for (uint32_t i = 1; i < obj->nsymbols; i++) {
		const struct mod_symbol *sym = &obj->symbols[i];
		if (!is_exported_definition(sym) || sym->shndx >= obj->nsections)
			continue;
		uint32_t g = group_of[sym->shndx];
		if (!g || state[g] == GROUP_OWN)
			continue;
		state[g] = defined_outside(ld, sym->name) ? GROUP_OUTSIDE : GROUP_OWN;
	}
}

/* Do not load the sections of group g: what they define becomes imports. */
static void drop_group(struct mod_object *obj, const uint32_t *group_of, uint32_t g)
{
	for (uint32_t s = 1; s < obj->nsections; s++)
		if (group_of[s] == g)
			obj->sections[s].discarded = 1;
	for (uint32_t i = 1; i < obj->nsymbols; i++) {
		struct mod_symbol *sym = &obj->symbols[i];
		if (sym->shndx < obj->nsections && group_of[sym->shndx] == g &&
		    sym->bind != STB_LOCAL)
			sym->shndx = SHN_UNDEF;
	}
}

static int select_in_object(struct load *ld, struct mod_object *obj, struct mod_symtab *kept,
			    uint32_t *group_of, uint8_t *state)
{
	memset(group_of, 0, obj->nsections * sizeof(*group_of));
	memset(state, 0, obj->nsections);
	for (uint32_t g = 1; g < obj->nsections; g++) {
		uint32_t count;
		if (!is_comdat(&obj->sections[g]))
			continue;
		const uint8_t *members = group_members(obj, g, &count);
		if (!members || !group_signature(obj, &obj->sections[g]))
			return mod_error(ENOEXEC, "%s: section %s: malformed COMDAT group", obj->name,
					 obj->sections[g].name);
		for (uint32_t k = 0; k < count; k++)
			group_of[member(members, k)] = g;
		state[g] = GROUP_NO_EXPORT;
	}
	find_groups_defined_outside(ld, obj, group_of, state);
	for (uint32_t g = 1; g < obj->nsections; g++) {
		if (!state[g])
			continue;
		int created;
		const char *signature = group_signature(obj, &obj->sections[g]);
		if (mod_symtab_intern(kept, signature, &created) < 0)
			return mod_error(ENOMEM, "%s: out of memory", ld->name);
		if (!created || state[g] == GROUP_OUTSIDE)
			drop_group(obj, group_of, g);
	}
	return 0;
}

int load_select_groups(struct load *ld)
{
	struct mod_symtab kept;
	uint32_t most = 0;
	int err = 0;

	for (uint32_t o = 0; o < ld->nobjects; o++)
		if (ld->objects[o].nsections > most)
			most = ld->objects[o].nsections;
	if (mod_symtab_init(&kept, 64))
		return mod_error(ENOMEM, "%s: out of memory", ld->name);
	uint32_t *group_of = malloc((most + 1) * sizeof(*group_of));
	uint8_t *state = malloc(most + 1);
	if (!group_of || !state)
		err = mod_error(ENOMEM, "%s: out of memory", ld->name);
	for (uint32_t o = 0; o < ld->nobjects && !err; o++)
		err = select_in_object(ld, &ld->objects[o], &kept, group_of, state);
	free(group_of);
	free(state);
	mod_symtab_release(&kept);
	return err;
}
