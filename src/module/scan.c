/*
 * scan.c - stage 4 of a load: check every relocation, count the PLT stubs,
 * GOT entries and load stubs it needs and reserve their room, and note the
 * imports that code reaches PC-relatively (where the module may lie).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "rela.h"
#include "reach.h"
#include "reloc.h"

static int add_slot(struct slot_list *list, int32_t entry, uint32_t object, uint32_t symbol,
		    int32_t *slot)
{
	struct slot_owner *n = mod_grow(list->items, list->count, &list->capacity, sizeof(*n), 64);
	if (!n)
		return -ENOMEM;
	list->items = n;
	*slot = (int32_t)list->count;
	list->items[list->count++] = (struct slot_owner){ entry, object, symbol };
	return 0;
}

/*
 * Give symbol i of object o a GOT slot, once.  A global's slot is shared by
 * every object of the module (it is kept in its entry); obj->got_slot holds
 * each symbol's slot as well, so that applying relocations reads one small
 * array instead of the large table of global entries.
 */
static int add_got_slot(struct load *ld, uint32_t o, uint32_t i)
{
	struct mod_object *obj = &ld->objects[o];

	if (!obj->got_slot) {
		obj->got_slot = mod_pool_alloc(&ld->pool, obj->nsymbols * sizeof(*obj->got_slot));
		if (!obj->got_slot)
			return -ENOMEM;
		memset(obj->got_slot, 0xff, obj->nsymbols * sizeof(*obj->got_slot));
	}
	int32_t entry = obj->entry[i];
	int32_t *slot = entry >= 0 ? &ld->globals.entries[entry].got_slot : &obj->got_slot[i];
	if (*slot < 0 && add_slot(&ld->got, entry, o, i, slot))
		return -ENOMEM;
	obj->got_slot[i] = *slot;
	return 0;
}

/* Inline: most GOT relocations name a symbol that has its slot already. */
static inline int need_got(struct load *ld, uint32_t o, uint32_t i)
{
	const int32_t *slots = ld->objects[o].got_slot;
	return slots && slots[i] >= 0 ? 0 : add_got_slot(ld, o, i);
}

/* Imports may lie anywhere: give them a PLT stub in case they are far. */
static int need_plt(struct load *ld, uint32_t o, uint32_t i)
{
	struct mod_entry *e = &ld->globals.entries[ld->objects[o].entry[i]];
	return e->plt_slot >= 0 ? 0 : add_slot(&ld->plt, ld->objects[o].entry[i], o, i,
					       &e->plt_slot);
}

static int unsupported_reloc(const struct load *ld, const struct mod_object *obj,
			     const struct mod_section *rel, uint32_t type, uint32_t symbol,
			     uint64_t offset)
{
	char buf[64];
	const char *why;
	const char *name = mod_reloc_name(ld->arch, type, buf, sizeof(buf), &why);
	return mod_error(ENOTSUP, "%s: section %s: unsupported relocation %s (%s) against "
			 "symbol '%s' at offset 0x%llx", obj->name, rel->name, name,
			 why ? why : "not implemented", symbol_name(obj, symbol),
			 (unsigned long long)offset);
}

/* A relocation cannot use this symbol: thread-local, or defined in a
 * section that is not loaded. */
static int symbol_unusable(const struct mod_object *obj, uint32_t i)
{
	const struct mod_symbol *sym = &obj->symbols[i];
	return sym->type == STT_TLS || (i && sym->shndx != SHN_UNDEF &&
					sym->shndx < SHN_LORESERVE &&
					obj->sections[sym->shndx].region == REGION_NONE);
}

/* Why a relocation cannot use its symbol (symbol_unusable() said so). */
static int unusable_symbol_error(const struct mod_object *obj, const struct mod_section *rel,
				 const struct mod_howto *howto, uint32_t i, uint64_t offset)
{
	const struct mod_symbol *sym = &obj->symbols[i];
	if (sym->type == STT_TLS)
		return mod_error(ENOTSUP, "%s: section %s: %s against '%s': thread-local storage "
				 "is not supported", obj->name, rel->name, howto->name, sym->name);
	return mod_error(ENOTSUP, "%s: section %s: %s against '%s' at offset 0x%llx refers "
			 "to section %s, which is not loaded", obj->name, rel->name,
			 howto->name, symbol_name(obj, i), (unsigned long long)offset,
			 obj->sections[sym->shndx].name);
}

/* What the scan needs to know of a symbol, worked out once per symbol:
 * tens of thousands of relocations refer to a few thousand symbols. */
#define SYMBOL_UNUSABLE 0x01   /* symbol_unusable() */
#define SYMBOL_IMPORT   0x02   /* a global the module does not define */

static uint8_t *classify_symbols(struct load *ld, const struct mod_object *obj)
{
	uint8_t *kinds = mod_pool_alloc(&ld->pool, obj->nsymbols);
	if (!kinds) {
		mod_error(ENOMEM, "%s: out of memory", ld->name);
		return NULL;
	}
	for (uint32_t i = 0; i < obj->nsymbols; i++) {
		int32_t entry = obj->entry[i];
		int import = entry >= 0 && ld->globals.entries[entry].state == ENTRY_UNDEFINED;
		kinds[i] = (uint8_t)((symbol_unusable(obj, i) ? SYMBOL_UNUSABLE : 0) |
				     (import ? SYMBOL_IMPORT : 0));
	}
	return kinds;
}

static int add_stub_site(struct load *ld, uint32_t o, uint32_t section, uint64_t index)
{
	struct stub_site *n = mod_grow(ld->stubs.items, ld->stubs.count, &ld->stubs.capacity,
				       sizeof(*n), 16);
	if (!n)
		return -ENOMEM;
	ld->stubs.items = n;
	ld->stubs.items[ld->stubs.count++] = (struct stub_site){ o, section, index };
	return 0;
}

/*
 * An import reached through a PC-relative field of limited reach that no
 * PLT stub can stand in for.  An instruction that only takes the address
 * gets a GOT entry, one that loads a pointer gets a load stub, used when
 * the import turns out to be out of reach; any other makes the module lie
 * within reach of the import (place.c).
 */
static int note_reach(struct load *ld, uint32_t o, const struct mod_section *rel,
		      const struct mod_section *target, const struct mod_howto *howto,
		      const Elf64_Rela *r, uint64_t index)
{
	uint64_t reach = mod_howto_reach(howto);
	uint32_t symbol = (uint32_t)ELF64_R_SYM(r->r_info);
	if (!reach && !(howto->flags & HOWTO_LOW32))
		return 0;
	switch (indirect_form_of(ld, target, target->data, r)) {
	case INDIRECT_GOT:
		return need_got(ld, o, symbol);
	case INDIRECT_STUB:
		return add_stub_site(ld, o, (uint32_t)(rel - ld->objects[o].sections), index);
	default:
		break;
	}
	if (!reach)
		return 0;
	struct mod_entry *e = &ld->globals.entries[ld->objects[o].entry[symbol]];
	uint64_t addend = r->r_addend < 0 ? -(uint64_t)r->r_addend : (uint64_t)r->r_addend;
	uint64_t need = reach > addend ? reach - addend : 1;
	if (!e->near_reach || need < e->near_reach) {
		e->near_reach = need;
		e->near_howto = howto->name;
	}
	return 0;
}

static int scan_one(struct load *ld, uint32_t o, const struct mod_section *rel,
		    const struct mod_section *target, const uint8_t *kinds, const Elf64_Rela *r,
		    uint64_t index)
{
	const struct mod_object *obj = &ld->objects[o];
	uint32_t type = (uint32_t)ELF64_R_TYPE(r->r_info);
	uint64_t symbol = ELF64_R_SYM(r->r_info);

	if (symbol >= obj->nsymbols)
		return mod_error(ENOEXEC, "%s: section %s: relocation symbol index %llu out of range",
				 obj->name, rel->name, (unsigned long long)symbol);
	const struct mod_howto *howto = mod_howto_for(ld->arch, type);
	if (!howto)
		return unsupported_reloc(ld, obj, rel, type, (uint32_t)symbol, r->r_offset);
	if (kinds[symbol] & SYMBOL_UNUSABLE) {
		if (describes_discarded(obj, target, (uint32_t)symbol))
			return 0;
		return unusable_symbol_error(obj, rel, howto, (uint32_t)symbol, r->r_offset);
	}
	int err = 0;
	if (howto->flags & HOWTO_GOT)
		err = need_got(ld, o, (uint32_t)symbol);
	if (!err && (howto->flags & (HOWTO_BRANCH | HOWTO_LOW32)) &&
	    (kinds[symbol] & SYMBOL_IMPORT))
		err = need_plt(ld, o, (uint32_t)symbol);
	if (!err && (kinds[symbol] & SYMBOL_IMPORT))
		err = note_reach(ld, o, rel, target, howto, r, index);
	if (err)
		return mod_error(ENOMEM, "%s: out of memory", ld->name);
	/* A 32-bit absolute address of the module itself needs the module
	 * below 2 GiB; one of a host function needs its PLT stub there. */
	if (howto->flags & HOWTO_LOW32)
		ld->low32 = 1;
	if (howto->flags & HOWTO_USES_GOT)
		ld->uses_got_base = 1;
	return 0;
}

static int scan_section(struct load *ld, uint32_t o, const struct mod_section *rel,
			const struct mod_section *target, const uint8_t *kinds)
{
	const struct mod_object *obj = &ld->objects[o];
	if (rel->type == SHT_REL)
		return mod_error(ENOTSUP, "%s: section %s: SHT_REL relocations are not "
				 "supported", obj->name, rel->name);
	if (target->type == SHT_NOBITS && rel->size)
		return mod_error(ENOEXEC, "%s: section %s relocates %s, which has no "
				 "contents", obj->name, rel->name, target->name);
	uint64_t n = rel->size / sizeof(Elf64_Rela);
	for (uint64_t k = 0; k < n; k++) {
		Elf64_Rela r;
		read_rela(rel, k, &r);
		int err = scan_one(ld, o, rel, target, kinds, &r, k);
		if (err)
			return err;
	}
	ld->relocations += n;
	return 0;
}

int load_scan_relocations(struct load *ld)
{
	for (uint32_t o = 0; o < ld->nobjects; o++) {
		const struct mod_object *obj = &ld->objects[o];
		uint8_t *kinds = classify_symbols(ld, obj);
		int err = kinds ? 0 : -ENOMEM;
		for (uint32_t s = 1; s < obj->nsections && !err; s++) {
			const struct mod_section *rel = &obj->sections[s];
			uint32_t target = patched_section(obj, rel);
			if (target)
				err = scan_section(ld, o, rel, &obj->sections[target], kinds);
		}
		if (err)
			return err;
	}
	return 0;
}

/* PLT stubs follow the code; the GOT follows the read-only data. */
int load_reserve_plt_got(struct load *ld)
{
	int err = 0;
	if (ld->plt.count)
		err = load_reserve(ld, REGION_TEXT, (uint64_t)ld->plt.count * ld->arch->plt_size, 16,
			      &ld->plt_block, &ld->plt_offset);
	if (!err && ld->stubs.count)
		err = load_reserve(ld, REGION_TEXT,
				   (uint64_t)ld->stubs.count * ld->arch->load_stub_size, 16,
				   &ld->stub_block, &ld->stub_offset);
	/* The GOT exists when used, or when code refers to its base. */
	int got_needed = ld->got.count || ld->uses_got_base ||
			 mod_symtab_find(&ld->globals, "_GLOBAL_OFFSET_TABLE_") >= 0;
	if (!err && got_needed) {
		err = load_reserve(ld, REGION_RODATA, (uint64_t)ld->got.count * 8, 8, &ld->got_block,
			      &ld->got_offset);
		ld->have_got = !err;
	}
	return err;
}
