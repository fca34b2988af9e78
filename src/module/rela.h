/*
 * rela.h - reading a relocation section: what the scan (scan.c) and the
 * relocation (relocate.c) of every entry share.  Inline: both run them
 * once per relocation.
 */
#ifndef EXECMEM_MODULE_RELA_H
#define EXECMEM_MODULE_RELA_H

#include <string.h>
#include "load_state.h"

static inline void read_rela(const struct mod_section *rel, uint64_t index, Elf64_Rela *out)
{
	memcpy(out, rel->data + index * sizeof(*out), sizeof(*out));
}

static inline const char *symbol_name(const struct mod_object *obj, uint32_t i)
{
	const struct mod_symbol *sym = &obj->symbols[i];
	if (sym->type == STT_SECTION && sym->shndx < obj->nsections)
		return obj->sections[sym->shndx].name;
	return sym->name[0] ? sym->name : "(unnamed)";
}

/*
 * An unwind table entry of a function whose COMDAT group was dropped
 * (comdat.c): it is left unrelocated, its address field 0, which the
 * unwinder takes for a removed function, as the static linker leaves it.
 */
static inline int describes_discarded(const struct mod_object *obj,
				      const struct mod_section *target, uint32_t symbol)
{
	uint32_t shndx = obj->symbols[symbol].shndx;
	return is_eh_frame(target) && shndx < obj->nsections && obj->sections[shndx].discarded;
}

/* How this relocation's instruction may reach its symbol from afar
 * (arch->indirect_form()). */
static inline int indirect_form_of(const struct load *ld, const struct mod_section *target,
				   const uint8_t *code, const Elf64_Rela *r)
{
	if (!ld->arch->indirect_form || !(target->flags & SHF_EXECINSTR) ||
	    r->r_offset > target->size)
		return INDIRECT_NONE;
	return ld->arch->indirect_form(code, r->r_offset, (uint32_t)ELF64_R_TYPE(r->r_info),
				       r->r_addend);
}

/* The index of the section a relocation section patches, or 0 when sec is
 * not a relocation section or patches a section that is not loaded. */
static inline uint32_t patched_section(const struct mod_object *obj,
				       const struct mod_section *sec)
{
	if (sec->type != SHT_RELA && sec->type != SHT_REL)
		return 0;
	return obj->sections[sec->info].region == REGION_NONE ? 0 : sec->info;
}

#endif
