/*
 * module_debug.c - loaded modules as debuggers and profilers see them.
 * Each object of a module is registered with the GDB JIT interface as a
 * copy of its file in which every loaded section's sh_addr is its load
 * address: the debugger relocates the debug sections of a relocatable file
 * itself, against those addresses, so symbols, line tables and call frame
 * information all point at the loaded code.  The copy leaves out the bytes
 * of the loaded code and data, which the debugger reads from the process.  Functions are named for the
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

/*
 * Whether the debugger's copy of obj holds section s's bytes.  Loaded
 * sections other than .eh_frame, and the relocations of those, are left
 * out: the debugger reads the code and data from the process, and they
 * are most of an object's bytes.  Symbols, strings, groups, debug sections
 * and their relocations, and the unwind tables it relocates itself, stay.
 */
static int bytes_needed(const struct mod_section *sec)
{
	if (sec->type == SHT_NOBITS || sec->type == SHT_RELA || sec->type == SHT_REL || !sec->data)
		return 0;
	return !(sec->flags & SHF_ALLOC) || is_eh_frame(sec);
}

static int debugger_needs(const struct mod_object *obj, uint32_t s)
{
	const struct mod_section *sec = &obj->sections[s];
	if (sec->type == SHT_RELA || sec->type == SHT_REL)   /* info: checked by the parser */
		return sec->data && bytes_needed(&obj->sections[sec->info]);
	return bytes_needed(sec);
}

/* The header of section s in the copy: its load address, and for a section
 * whose bytes are left out, no bytes: SHT_NOBITS, or for a relocation
 * section no entries (it stays a relocation section: a COMDAT group may
 * list it, and a group naming an inactive section is malformed). */
static Elf64_Shdr placed_header(const struct load *ld, const struct mod_object *obj,
				const Elf64_Ehdr *eh, uint32_t s, int needed, uint64_t *offset)
{
	const struct mod_section *sec = &obj->sections[s];
	Elf64_Shdr sh;
	memcpy(&sh, obj->image + eh->e_shoff + (size_t)s * sizeof sh, sizeof sh);
	if (sec->region != REGION_NONE)
		sh.sh_addr = section_address(ld, sec);
	if (needed) {
		*offset = mod_align_up(*offset, sec->align < 8 ? sec->align : 8);
		sh.sh_offset = *offset;
		*offset += sec->size;
	} else if (sec->type == SHT_RELA || sec->type == SHT_REL) {
		sh.sh_offset = 0;
		sh.sh_size = 0;
	} else if (s) {
		sh.sh_type = SHT_NOBITS;
		sh.sh_offset = 0;
	}
	return sh;
}

/* A copy of obj for the debugger: its ELF header, the bytes of the sections
 * debugger_needs() (flagged in needed[], one per section), then the
 * section headers with the load addresses. */
static void *placed_copy(const struct load *ld, const struct mod_object *obj, uint8_t *needed,
			 size_t *size)
{
	Elf64_Ehdr eh;
	memcpy(&eh, obj->image, sizeof eh);
	uint64_t end = sizeof eh;
	for (uint32_t s = 0; s < obj->nsections; s++) {
		needed[s] = s && debugger_needs(obj, s);
		if (needed[s])
			end = mod_align_up(end, 8) + obj->sections[s].size;
	}
	uint64_t shoff = mod_align_up(end, 8);
	*size = shoff + (size_t)obj->nsections * sizeof(Elf64_Shdr);
	uint8_t *copy = malloc(*size);
	if (!copy)
		return NULL;
	uint64_t offset = sizeof eh;
	for (uint32_t s = 0; s < obj->nsections; s++) {
		Elf64_Shdr sh = placed_header(ld, obj, &eh, s, needed[s], &offset);
		if (needed[s])
			memcpy(copy + sh.sh_offset, obj->sections[s].data, obj->sections[s].size);
		memcpy(copy + shoff + (size_t)s * sizeof sh, &sh, sizeof sh);
	}
	eh.e_shoff = shoff;
	memcpy(copy, &eh, sizeof eh);
	return copy;
}

/* The most sections an object of the load has. */
static uint32_t most_sections(const struct load *ld)
{
	uint32_t n = 1;
	for (uint32_t o = 0; o < ld->nobjects; o++)
		n = ld->objects[o].nsections > n ? ld->objects[o].nsections : n;
	return n;
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
	uint8_t *needed = malloc(most_sections(ld));
	for (uint32_t o = 0; needed && o < ld->nobjects; o++) {
		size_t size;
		void *copy = placed_copy(ld, &ld->objects[o], needed, &size);
		if (copy)
			d->entries[d->count++] = em_gdb_register(copy, size);
	}
	free(needed);
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
