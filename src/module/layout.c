/*
 * layout.c - stages 2-3 of a load: give every allocated section of the
 * selected objects a block and an offset, merge the symbols of all objects
 * and make room for COMMON symbols.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "load_state.h"

/* ------------------------------------------------------------------ */
/* 2. classify                                                         */
/* ------------------------------------------------------------------ */

/* ".init_array.00101" -> 101; the plain section runs after numbered ones. */
static uint32_t init_priority(const char *name, const char *base)
{
	const char *p = name + strlen(base);
	if (*p != '.')
		return 65536;
	unsigned long v = strtoul(p + 1, NULL, 10);
	return v > 65535 ? 65535 : (uint32_t)v;
}

static int add_init(struct init_list *list, uint32_t object, uint32_t section,
		    uint32_t priority, int reversed)
{
	struct init_section *n = mod_grow(list->items, list->count, &list->capacity, sizeof(*n), 8);
	if (!n)
		return -ENOMEM;
	list->items = n;
	list->items[list->count++] = (struct init_section){ object, section, priority, reversed };
	return 0;
}

/* Record constructor and destructor sections; returns 0 or -ENOMEM. */
static int note_init_section(struct load *ld, uint32_t o, uint32_t s)
{
	const struct mod_section *sec = &ld->objects[o].sections[s];

	if (sec->type == SHT_INIT_ARRAY || starts_with(sec->name, ".init_array"))
		return add_init(&ld->ctors, o, s, init_priority(sec->name, ".init_array"), 0);
	if (sec->type == SHT_FINI_ARRAY || starts_with(sec->name, ".fini_array"))
		return add_init(&ld->dtors, o, s, init_priority(sec->name, ".fini_array"), 0);
	if (starts_with(sec->name, ".ctors"))
		return add_init(&ld->ctors, o, s, 65536 - init_priority(sec->name, ".ctors") % 65536, 1);
	if (starts_with(sec->name, ".dtors"))
		return add_init(&ld->dtors, o, s, 65536 - init_priority(sec->name, ".dtors") % 65536, 1);
	return 0;
}

static int is_init_section(const struct mod_section *sec)
{
	return sec->type == SHT_INIT_ARRAY || sec->type == SHT_FINI_ARRAY ||
	       starts_with(sec->name, ".init_array") || starts_with(sec->name, ".fini_array") ||
	       starts_with(sec->name, ".ctors") || starts_with(sec->name, ".dtors");
}

/* The region of an allocated section, REGION_NONE to skip it, or an error. */
static int region_of(const struct mod_object *obj, const struct mod_section *sec, int *region)
{
	*region = REGION_NONE;
	if (starts_with(sec->name, ".gnu.lto_"))
		return mod_error(ENOTSUP, "%s: section %s: GCC LTO bytecode (built with -flto) is "
				 "not supported", obj->name, sec->name);
	if (!(sec->flags & SHF_ALLOC) || sec->type == SHT_NOTE || sec->type == SHT_GROUP ||
	    sec->discarded)
		return 0;
	if (sec->flags & SHF_TLS) {
		if (sec->size == 0)
			return 0;
		return mod_error(ENOTSUP, "%s: section %s: thread-local storage is not supported",
				 obj->name, sec->name);
	}
	if (sec->type == SHT_PREINIT_ARRAY)
		return mod_error(ENOTSUP, "%s: section %s: .preinit_array is only for executables",
				 obj->name, sec->name);
	if (sec->align > MOD_MAX_ALIGN)
		return mod_error(ENOEXEC, "%s: section %s: alignment %llu is too large", obj->name,
				 sec->name, (unsigned long long)sec->align);
	if (sec->flags & SHF_EXECINSTR)
		*region = REGION_TEXT;
	else if (strcmp(sec->name, ".data..ro_after_init") == 0 ||
		 starts_with(sec->name, ".data..ro_after_init."))
		*region = REGION_ROAI;
	else if (is_init_section(sec))
		*region = REGION_RODATA;   /* read by the loader only */
	else if (sec->flags & SHF_WRITE)
		*region = REGION_DATA;
	else
		*region = REGION_RODATA;
	return 0;
}

/*
 * An empty section takes no room, but its symbols need an address: it goes
 * at the end of an open block of its region, or of any block, so that it
 * never costs an allocation of its own.
 */
static int place_empty_section(struct load *ld, struct mod_section *sec)
{
	uint32_t open = ld->open_block[sec->region];
	if (!open && ld->module->nblocks)
		open = 1;
	if (!open)
		return load_reserve(ld, sec->region, 0, 1, &sec->block, &sec->block_offset);
	sec->block = open - 1;
	sec->block_offset = ld->module->blocks[open - 1].size;
	return 0;
}

/* An unwind table is registered on its own (publish.c), so it needs
 * the zero-length entry that ends a table, which the linker would add:
 * 4 bytes of the zeros execmem fills data memory with. */
static uint64_t terminator_size(const struct mod_section *sec)
{
	return is_eh_frame(sec) ? 4 : 0;
}

int load_classify_sections(struct load *ld)
{
	int groups = load_select_groups(ld);     /* drops the duplicate copies first */
	if (groups)
		return groups;
	for (int empty = 0; empty < 2; empty++) {       /* empty sections last */
		for (uint32_t o = 0; o < ld->nobjects; o++) {
			struct mod_object *obj = &ld->objects[o];
			for (uint32_t s = 1; s < obj->nsections; s++) {
				struct mod_section *sec = &obj->sections[s];
				if ((sec->size == 0) != empty)
					continue;
				int region, err = region_of(obj, sec, &region);
				sec->region = err ? REGION_NONE : region;
				if (err)
					return err;
				if (region == REGION_NONE)
					continue;
				err = empty ? place_empty_section(ld, sec)
					    : load_reserve(ld, region, sec->size + terminator_size(sec),
							   sec->align, &sec->block, &sec->block_offset);
				if (!err && note_init_section(ld, o, s))
					err = mod_error(ENOMEM, "%s: out of memory", ld->name);
				if (err)
					return err;
			}
		}
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* 3. symbols                                                          */
/* ------------------------------------------------------------------ */

static void define_entry(struct mod_entry *e, uint32_t o, uint32_t i, const struct mod_symbol *sym)
{
	e->state = ENTRY_DEFINED;
	e->weak = sym->bind == STB_WEAK;
	e->exported = sym->visibility == STV_DEFAULT || sym->visibility == STV_PROTECTED;
	e->object = o;
	e->symbol = i;
}

static int merge_definition(struct load *ld, struct mod_entry *e, uint32_t o, uint32_t i,
			    const struct mod_symbol *sym)
{
	if (e->state != ENTRY_DEFINED) {
		define_entry(e, o, i, sym);
		return 0;
	}
	if (sym->bind == STB_WEAK)
		return 0;              /* the first definition, or a strong one, stays */
	if (e->weak) {
		define_entry(e, o, i, sym);
		return 0;
	}
	return mod_error(EEXIST, "%s: symbol '%s' is defined in both %s and %s", ld->name,
			 sym->name, ld->objects[e->object].name, ld->objects[o].name);
}

static int merge_common(struct load *ld, struct mod_entry *e, uint32_t o, uint32_t i,
			const struct mod_symbol *sym)
{
	uint64_t align = sym->value ? sym->value : 1;
	if (align & (align - 1) || align > MOD_MAX_ALIGN || sym->size > MOD_MAX_REGION)
		return mod_error(ENOEXEC, "%s: COMMON symbol '%s' has a bad size or alignment",
				 ld->objects[o].name, sym->name);
	if (e->state == ENTRY_DEFINED)
		return 0;
	if (e->state == ENTRY_UNDEFINED) {
		e->state = ENTRY_COMMON;
		e->object = o;
		e->symbol = i;
		e->exported = sym->visibility == STV_DEFAULT || sym->visibility == STV_PROTECTED;
	}
	if (sym->size > e->common_size)
		e->common_size = sym->size;
	if (align > e->common_align)
		e->common_align = align;
	return 0;
}

/* Merge one symbol into its entry, which selection made (select.c). */
static int merge_symbol(struct load *ld, uint32_t o, uint32_t i)
{
	struct mod_object *obj = &ld->objects[o];
	const struct mod_symbol *sym = &obj->symbols[i];

	if (sym->type == STT_GNU_IFUNC && sym->shndx != SHN_UNDEF)
		return mod_error(ENOTSUP, "%s: symbol '%s': IFUNC symbols are not supported",
				 obj->name, sym->name);
	if (obj->entry[i] < 0)
		return 0;
	struct mod_entry *e = &ld->globals.entries[obj->entry[i]];
	if (sym->shndx == SHN_UNDEF) {
		if (sym->bind != STB_WEAK && e->state == ENTRY_UNDEFINED)
			e->weak = 0;
		return 0;
	}
	if (sym->shndx == SHN_COMMON)
		return merge_common(ld, e, o, i, sym);
	return merge_definition(ld, e, o, i, sym);
}

/*
 * __dso_handle identifies a loaded object to __cxa_atexit(): C++ static
 * destructors and atexit() in shared objects register with it, and
 * __cxa_finalize() runs them.  Executables and shared libraries get it from
 * crtbegin.o; a module gets 8 bytes of its own data (code refers to it
 * PC-relatively, so it must lie near), and unload finalizes it.
 */
static void give_dso_handle(struct load *ld)
{
	int32_t i = mod_symtab_find(&ld->globals, "__dso_handle");
	if (i < 0 || ld->globals.entries[i].state != ENTRY_UNDEFINED)
		return;
	struct mod_entry *e = &ld->globals.entries[i];
	e->state = ENTRY_COMMON;
	e->common_size = 8;
	e->common_align = 8;
	e->exported = 0;
	ld->dso_handle_entry = i + 1;
}

/* Every global symbol has its entry already, in ld->globals; the merge
 * decides what each entry is. */
int load_build_symbols(struct load *ld)
{
	for (uint32_t o = 0; o < ld->nobjects; o++) {
		struct mod_object *obj = &ld->objects[o];
		obj->address = mod_pool_alloc(&ld->pool, obj->nsymbols * sizeof(*obj->address));
		if (!obj->address)
			return mod_error(ENOMEM, "%s: out of memory for symbols", ld->name);
		memset(obj->address, 0, obj->nsymbols * sizeof(*obj->address));
		for (uint32_t i = 1; i < obj->nsymbols; i++) {
			int err = merge_symbol(ld, o, i);
			if (err)
				return err;
		}
	}
	give_dso_handle(ld);
	return 0;
}

/* COMMON symbols become zeroed space at the end of the data region. */
int load_allocate_commons(struct load *ld)
{
	int first = 1;
	for (uint32_t i = 0; i < ld->globals.count; i++) {
		struct mod_entry *e = &ld->globals.entries[i];
		if (e->state != ENTRY_COMMON)
			continue;
		uint64_t offset;
		int err = load_reserve(ld, REGION_DATA, e->common_size, e->common_align,
				  &e->common_block, &offset);
		if (err)
			return err;
		e->address = offset;   /* an offset until the block is placed */
		if (first || e->common_block != ld->common_block) {
			ld->common_block = e->common_block;   /* the map shows the last block's */
			ld->common_offset = offset;
			ld->common_size = 0;
			first = 0;
		}
		ld->common_size = offset + e->common_size - ld->common_offset;
	}
	return 0;
}
