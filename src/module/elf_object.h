/*
 * elf_object.h - one parsed ELF relocatable object: its sections and symbols.
 */
#ifndef EXECMEM_MODULE_ELF_OBJECT_H
#define EXECMEM_MODULE_ELF_OBJECT_H

#include "common.h"

struct mod_section {
	const char *name;
	uint32_t type, link, info;
	int region;                   /* enum mod_region */
	uint64_t flags, size, align, entsize, offset;
	const uint8_t *data;          /* NULL for SHT_NOBITS */
	uint32_t block;               /* index of its block */
	int discarded;                /* in a COMDAT group another copy of which is used */
	int copied;                   /* its bytes are in the block (stage 7) */
	int eh_frame;                 /* named .eh_frame: the loader asks often */
	uint64_t block_offset;        /* where it lies inside the block */
};

struct mod_symbol {
	const char *name;
	uint32_t hash;                /* mod_hash_name(name) unless STB_LOCAL, else 0 */
	uint64_t value, size;
	uint32_t shndx;               /* SHN_XINDEX already replaced */
	uint8_t bind, type, visibility;
};

struct mod_object {
	const char *name;             /* file or archive member name */
	const uint8_t *image;
	size_t image_size;
	uint16_t machine;
	uint32_t nsections;
	struct mod_section *sections;
	uint32_t nsymbols;
	struct mod_symbol *symbols;
	uint32_t symtab_index;        /* 0 when the object has no symbol table */
	/* filled by the loader, from the load's pool: */
	int32_t *entry;               /* per symbol: global table entry or -1 for locals */
	int32_t *got_slot;            /* per symbol: its GOT slot, or -1; lazily made */
	uintptr_t *address;           /* per symbol: final address */
};

/*
 * Parse and validate the object image[0..size).  The image must stay alive
 * as long as obj is used (names and data point into it), and the pool its
 * arrays come from.  Returns 0, -ENOEXEC or -ENOMEM with a message.
 */
MOD_HIDDEN int mod_object_parse(struct mod_object *obj, const uint8_t *image, size_t size,
				const char *name, struct mod_pool *pool);

#endif
