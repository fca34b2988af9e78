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

static size_t count_functions(const struct load *ld)
{
	size_t n = 0;
	for (uint32_t o = 0; o < ld->nobjects; o++)
		n += ld->objects[o].nsymbols;
	return n;
}

static int is_named_function(const struct mod_object *obj, const struct mod_symbol *sym)
{
	return sym->type == STT_FUNC && sym->size && *sym->name && sym->shndx != SHN_UNDEF &&
	       sym->shndx < obj->nsections && obj->sections[sym->shndx].region != REGION_NONE;
}

/* The module's blocks, by address: every function lies in one. */
static size_t sorted_blocks(const struct execmem_module *m, struct em_range *out)
{
	size_t n = 0;
	for (uint32_t b = 0; b < m->nblocks; b++) {
		if (!m->blocks[b].size)
			continue;
		struct em_range r = { m->blocks[b].base, m->blocks[b].base + m->blocks[b].size };
		size_t at = n++;
		for (; at && out[at - 1].start > r.start; at--)
			out[at] = out[at - 1];
		out[at] = r;
	}
	return n;
}

/* Every function of the module named for the perf outputs, in one batch
 * (one at a time costs a search and a move of the table for each). */
static void name_functions(const struct load *ld)
{
	struct em_symbol *syms = malloc((count_functions(ld) + 1) * sizeof *syms);
	struct em_range *owners = malloc((ld->module->nblocks + 1) * sizeof *owners);
	size_t n = 0;
	for (uint32_t o = 0; syms && o < ld->nobjects; o++) {
		const struct mod_object *obj = &ld->objects[o];
		for (uint32_t i = 1; i < obj->nsymbols; i++)
			if (is_named_function(obj, &obj->symbols[i]))
				syms[n++] = (struct em_symbol){ obj->address[i], obj->symbols[i].size,
								obj->symbols[i].name };
	}
	if (syms && owners)
		em_names_for_perf(syms, n, owners, sorted_blocks(ld->module, owners));
	free(owners);
	free(syms); /* the perf outputs miss the module if anything failed; it runs all the same */
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
	}
	ld->module->debug = d;
	name_functions(ld);
}

void mod_observe_unload(struct execmem_module *m)
{
	struct mod_debug *d = m->debug;
	for (uint32_t i = 0; d && i < d->count; i++)
		em_gdb_unregister(d->entries[i]);
	free(d);
	m->debug = NULL;
}
