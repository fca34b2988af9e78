/*
 * module_debug.c - loaded modules as debuggers and profilers see them.
 * Each object of a module is registered with the GDB JIT interface as a
 * copy of its file in which every loaded section's sh_addr is its load
 * address: the debugger relocates the debug sections of a relocatable file
 * itself, against those addresses, so symbols, line tables and call frame
 * information all point at the loaded code.  Functions are named for the
 * perf outputs; the names die with the module's memory.
 */
#include <stdlib.h>
#include <string.h>

#include "module/load_state.h"
#include "observe.h"

struct mod_debug {
	uint32_t count;
	struct em_gdb_entry *entries[];
};

static void *placed_copy(const struct load *ld, const struct mod_object *obj, size_t *size)
{
	uint8_t *copy = malloc(obj->image_size);
	if (!copy)
		return NULL;
	memcpy(copy, obj->image, obj->image_size);
	Elf64_Ehdr eh;
	memcpy(&eh, copy, sizeof eh);
	for (uint32_t s = 1; s < obj->nsections; s++) {
		const struct mod_section *sec = &obj->sections[s];
		if (sec->region == REGION_NONE)
			continue;
		Elf64_Addr addr = section_address(ld, sec);
		memcpy(copy + eh.e_shoff + (size_t)s * eh.e_shentsize + offsetof(Elf64_Shdr, sh_addr),
		       &addr, sizeof addr);
	}
	*size = obj->image_size;
	return copy;
}

static void name_functions(const struct load *ld, const struct mod_object *obj)
{
	for (uint32_t i = 1; i < obj->nsymbols; i++) {
		const struct mod_symbol *sym = &obj->symbols[i];
		if (sym->type != STT_FUNC || !sym->size || !*sym->name || sym->shndx == SHN_UNDEF ||
		    sym->shndx >= obj->nsections || obj->sections[sym->shndx].region == REGION_NONE)
			continue;
		em_name_for_perf((void *)obj->address[i], sym->size, sym->name);
	}
	(void)ld;
}

void mod_observe_publish(struct load *ld)
{
	struct mod_debug *d = calloc(1, sizeof *d + ld->nobjects * sizeof d->entries[0]);
	if (!d)
		return; /* tools miss this module; it runs all the same */
	for (uint32_t o = 0; o < ld->nobjects; o++) {
		const struct mod_object *obj = &ld->objects[o];
		size_t size;
		void *copy = placed_copy(ld, obj, &size);
		if (copy)
			d->entries[d->count++] = em_gdb_register(copy, size);
		name_functions(ld, obj);
	}
	ld->module->debug = d;
}

void mod_observe_unload(struct execmem_module *m)
{
	struct mod_debug *d = m->debug;
	for (uint32_t i = 0; d && i < d->count; i++)
		em_gdb_unregister(d->entries[i]);
	free(d);
	m->debug = NULL;
}
