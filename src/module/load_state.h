/*
 * load_state.h - the state of one module load, shared by the stages that
 * load.c runs in this order:
 *   select.c    1: the objects, and the archive members they need
 *   layout.c    2-3: sections into blocks (comdat.c picks the COMDAT
 *               groups kept), global symbols, COMMON symbols
 *   scan.c      4: check the relocations, reserve PLT stubs and GOT entries
 *   resolve.c   5: an address for every import
 *   place.c     6: every block in execmem memory, all within reach
 *   relocate.c  7: addresses, write windows, relocation, PLT and GOT
 *   publish.c   8: module description, constructors, sealing, registry
 * (unload.c undoes a failed load.)
 */
#ifndef EXECMEM_MODULE_LOAD_STATE_H
#define EXECMEM_MODULE_LOAD_STATE_H

#include <string.h>
#include "elf_object.h"
#include "input.h"
#include "reloc_howto.h"
#include "symtab.h"

/* A constructor or destructor section, for ordering. */
struct init_section {
	uint32_t object, section;
	uint32_t priority;
	int reversed;          /* .ctors/.dtors run their entries backwards */
};

struct init_list {
	struct init_section *items;
	uint32_t count;
	size_t capacity;
};

/* One GOT entry or PLT stub: which symbol it stands for. */
struct slot_owner {
	int32_t entry;         /* global entry, or -1 for a local symbol: */
	uint32_t object, symbol;
};

struct slot_list {
	struct slot_owner *items;
	uint32_t count;
	size_t capacity;
};

/* A relocation whose instruction may jump to a load stub (INDIRECT_STUB):
 * relocation k of relocation section `section` of object `object`. */
struct stub_site {
	uint32_t object, section;
	uint64_t index;
};

struct stub_list {
	struct stub_site *items;     /* in scan order, which is the order applied */
	uint32_t count;
	size_t capacity;
};

struct load {
	const char *name;               /* for messages: the file or options->name */
	unsigned flags;                 /* EXECMEM_MODULE_* */
	const struct execmem_module_options *options;
	const struct mod_arch *arch;
	struct mod_object *objects;     /* what select.c picked, in link order */
	uint32_t nobjects;
	size_t objects_capacity;
	struct mod_pool pool;           /* the objects' arrays, "archive(member)" names */
	struct mod_symtab globals;      /* every global name defined or referenced */
	uint32_t open_block[REGION_COUNT];  /* block being filled: index + 1, 0 none */
	size_t blocks_capacity;
	uint64_t total_size;
	uint32_t plt_block, got_block, common_block;   /* where the loader's own */
	uint64_t plt_offset, got_offset, common_offset, common_size; /* areas lie */
	int have_got, uses_got_base;
	struct slot_list plt, got;      /* what each stub and GOT entry stands for */
	struct stub_list stubs;         /* load stubs, after the PLT */
	uint32_t stub_block;
	uint64_t stub_offset;
	struct init_list ctors, dtors;
	int low32;                      /* needs the low 2 GiB (R_X86_64_32/32S) */
	int32_t dso_handle_entry;       /* entry + 1 of the module's __dso_handle, or 0 */
	struct execmem_module *module;  /* its blocks are the load's blocks */
	struct execmem_arena *arena;    /* NULL: the default arena */
	uint64_t relocations;
	uint64_t stage_ns[EXECMEM_MODULE_STAGES];   /* execmem_module_load_times() */
};

/* Inline, byte by byte: most names differ from the prefix in their second
 * byte, and every loaded section is compared against several prefixes. */
static inline int starts_with(const char *s, const char *prefix)
{
	for (; *prefix; s++, prefix++)
		if (*s != *prefix)
			return 0;
	return 1;
}

static inline int is_eh_frame(const struct mod_section *sec)
{
	return sec->eh_frame;
}

static inline uintptr_t section_address(const struct load *ld, const struct mod_section *sec)
{
	return ld->module->blocks[sec->block].base + sec->block_offset;
}

static inline uint8_t *section_image(const struct load *ld, const struct mod_section *sec)
{
	return ld->module->blocks[sec->block].image + sec->block_offset;
}

static inline uintptr_t got_base(const struct load *ld)
{
	return ld->have_got ? ld->module->blocks[ld->got_block].base + ld->got_offset : 0;
}

static inline uintptr_t plt_base(const struct load *ld)
{
	return ld->module->blocks[ld->plt_block].base + ld->plt_offset;
}

static inline int is_got_symbol(const char *name)
{
	return strcmp(name, "_GLOBAL_OFFSET_TABLE_") == 0;
}

/* select.c */
MOD_HIDDEN int load_select_objects(struct load *ld, const struct mod_input *inputs,
				   size_t ninputs);
/* comdat.c */
MOD_HIDDEN int load_select_groups(struct load *ld);
/* layout.c */
MOD_HIDDEN int load_classify_sections(struct load *ld);
MOD_HIDDEN int load_build_symbols(struct load *ld);
MOD_HIDDEN int load_allocate_commons(struct load *ld);
/* blocks.c */
MOD_HIDDEN int load_reserve(struct load *ld, int region, uint64_t size, uint64_t align,
			    uint32_t *block, uint64_t *offset);
/* scan.c */
MOD_HIDDEN int load_scan_relocations(struct load *ld);
MOD_HIDDEN int load_reserve_plt_got(struct load *ld);
/* relocate.c */
MOD_HIDDEN int load_compute_addresses(struct load *ld);
MOD_HIDDEN int load_open_windows(struct load *ld);
MOD_HIDDEN int load_close_windows(struct load *ld);
MOD_HIDDEN int load_apply_relocations(struct load *ld);
MOD_HIDDEN void load_write_plt_and_got(struct load *ld);
/* resolve.c */
MOD_HIDDEN int load_resolve_imports(struct load *ld);
/* place.c */
MOD_HIDDEN int load_place_blocks(struct load *ld);
/* publish.c */
MOD_HIDDEN int load_publish(struct load *ld);

#endif
