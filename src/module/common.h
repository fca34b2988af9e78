/*
 * common.h - the types and helpers that the module loader's files share
 * (not public).  The files, from the public API down; each calls only
 * files below it:
 *   module.c        the public API (include/execmem/module.h)
 *   load.c          one load, stage after stage, and its undoing on failure
 *   select.c        1: the objects, and the archive members they need
 *   publish.c       8: exports, constructors, sealing, registration
 *   relocate.c      4, 7: relocations, PLT stubs, GOT, write windows
 *   place.c         6: every block in execmem memory, all within reach
 *   resolve.c       5: an address for every import
 *   layout.c        2-3: sections into blocks, global and COMMON symbols
 *   comdat.c        the COMDAT groups that are kept
 *   unload.c        destructors, dependencies, memory
 *   blocks.c        room in the module's blocks for sections, PLT, GOT
 *   input.c         read or map the files, descriptors and buffers to link
 *   archive.c       split a static archive into its members, read its index
 *   elf_object.c    parse and validate one ELF relocatable object
 *   crt.c           the C runtime pieces glibc keeps out of the process
 *   registry.c      loaded modules and their exports
 *   symtab.c        the module-wide table of global symbols (name -> entry)
 *   reach.c         the window of addresses a module may lie in
 *   reloc.c         relocation types and machines (engine: reloc_engine.h),
 *   reloc_x86_64.c, reloc_aarch64.c   the per-architecture tables
 *   common.c        error messages, array growth, type names
 */
#ifndef EXECMEM_MODULE_COMMON_H
#define EXECMEM_MODULE_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <elf.h>
#include "execmem.h"
#include "execmem/module.h"

#define MOD_HIDDEN __attribute__((visibility("hidden")))

/* Limits that keep hostile input from making us allocate absurd amounts. */
#define MOD_MAX_SECTIONS   (1u << 20)
#define MOD_MAX_SYMBOLS    (1u << 24)
#define MOD_MAX_REGION     ((uint64_t)256 << 20) /* bytes of one module */
#define MOD_MAX_ALIGN      ((uint64_t)1 << 16)
#define MOD_MAX_MEMBERS    65536
#define MOD_BLOCK_TARGET   (EXECMEM_CHUNK_SIZE / 4)

/* ---- errors --------------------------------------------------------- */

/* Record a message for execmem_module_last_error() and return -err. */
MOD_HIDDEN int mod_error(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
MOD_HIDDEN void mod_clear_error(void);
/* The message of the last failure in this thread ("" when none). */
MOD_HIDDEN const char *mod_last_error(void);
/*
 * Room for one more item of item_size bytes in the array items, which holds
 * count items in *capacity slots: doubles the slots (starting at `first`)
 * when they are full.  Returns the array, moved or not, or NULL when out of
 * memory (items and *capacity unchanged).
 */
MOD_HIDDEN void *mod_grow(void *items, size_t count, size_t *capacity, size_t item_size,
			  size_t first);

/* ---- overflow-safe arithmetic ----------------------------------------- */

/* True when [offset, offset + len) lies inside [0, size). */
static inline int mod_range_ok(uint64_t offset, uint64_t len, uint64_t size)
{
	return offset <= size && len <= size - offset;
}

static inline uint64_t mod_align_up(uint64_t value, uint64_t align)
{
	return (value + align - 1) & ~(align - 1);
}

/* ---- memory regions ------------------------------------------------- */

/* Where loaded bytes go: a region is a memory type; its sections are packed
 * into blocks of at most MOD_BLOCK_TARGET bytes, one execmem allocation each,
 * so that modules live in execmem's shared, warm 2 MiB chunks. */
enum mod_region {
	REGION_TEXT,     /* EXECMEM_CODE_NEAR, followed by the PLT stubs */
	REGION_RODATA,   /* EXECMEM_RODATA, followed by the GOT */
	REGION_DATA,     /* EXECMEM_DATA, followed by COMMON symbols */
	REGION_ROAI,     /* EXECMEM_RO_AFTER_INIT */
	REGION_COUNT,
	REGION_NONE = -1 /* not loaded */
};

/* ---- parsed objects --------------------------------------------------- */

struct mod_section {
	const char *name;
	uint32_t type, link, info;
	int region;                   /* enum mod_region */
	uint64_t flags, size, align, entsize, offset;
	const uint8_t *data;          /* NULL for SHT_NOBITS */
	uint32_t block;               /* index of its block */
	int discarded;                /* in a COMDAT group another copy of which is used */
	int copied;                   /* its bytes are in the block (stage 7) */
	uint64_t block_offset;        /* where it lies inside the block */
};

struct mod_symbol {
	const char *name;
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
	/* filled by the loader: */
	int32_t *entry;               /* per symbol: global table entry or -1 for locals */
	int32_t *got_slot;            /* per symbol: its GOT slot, or -1; lazily made */
	uintptr_t *address;           /* per symbol: final address */
};

/*
 * Parse and validate the object image[0..size).  The image must stay alive
 * as long as obj is used (names and data point into it).  Returns 0 or
 * -ENOEXEC with a message.
 */
MOD_HIDDEN int mod_object_parse(struct mod_object *obj, const uint8_t *image, size_t size,
				const char *name);
MOD_HIDDEN void mod_object_release(struct mod_object *obj);

/* Archives: the members that are objects, in file order. */
struct mod_member {
	const uint8_t *data;
	size_t size;
	size_t header_offset;         /* of its header in the archive: the index refers to it */
	char name[256];
};
MOD_HIDDEN int mod_is_archive(const uint8_t *image, size_t size);
MOD_HIDDEN int mod_archive_members(const uint8_t *image, size_t size, const char *archive_name,
				   struct mod_member **members, size_t *count);

/* One entry of an archive's symbol index: a symbol some member defines. */
struct mod_archive_symbol {
	const char *name;             /* in the archive image */
	size_t header_offset;         /* of that member */
};
/*
 * The archive's symbol index ("/" or "/SYM64/"), checked against the image:
 * *symbols is NULL and *count 0 when the archive has none.  Returns 0,
 * -ENOEXEC (malformed) or -ENOMEM, with a message.
 */
MOD_HIDDEN int mod_archive_index(const uint8_t *image, size_t size, const char *archive_name,
				 struct mod_archive_symbol **symbols, size_t *count);

/* One input of a load, its bytes in memory (see input.c). */
struct mod_input {
	const uint8_t *image;
	size_t size;
	const char *name;
	int whole_archive;
	void *mapping;                /* what input.c mapped or read, to give back */
	size_t mapping_size;
	int mapping_is_heap;
	char default_name[32];        /* "<fd N>" */
};
/* Read or map the inputs; on failure nothing is left open.  0 or -errno. */
MOD_HIDDEN int mod_open_inputs(const struct execmem_module_input *inputs, size_t ninputs,
			       struct mod_input **out);
MOD_HIDDEN void mod_close_inputs(struct mod_input *inputs, size_t ninputs);

/* ---- the module-wide symbol table ------------------------------------- */

enum mod_entry_state {
	ENTRY_UNDEFINED,   /* referenced, not defined in the module */
	ENTRY_DEFINED,
	ENTRY_COMMON,
};

struct mod_entry {
	const char *name;
	int state;
	int weak;                 /* every definition or reference seen so far is weak */
	int exported;             /* defined with default/protected visibility */
	uint32_t object, symbol;  /* the defining (or first referencing) object symbol */
	uint64_t common_size, common_align;
	uint32_t common_block;
	uintptr_t address;
	int32_t plt_slot, got_slot;
	struct execmem_module *provider; /* module that resolved an import, if any */
	uint64_t near_reach;      /* an import that code reaches PC-relatively, with no PLT
				   * or GOT to go through: its smallest reach, else 0 */
	const char *near_howto;   /* the relocation that asks it, for messages */
};

struct mod_symtab {
	struct mod_entry *entries;
	uint32_t count, capacity;
	uint32_t *slots;           /* open addressing: entry index + 1, 0 empty */
	uint32_t mask;
};

MOD_HIDDEN uint32_t mod_hash_name(const char *name);
MOD_HIDDEN int mod_symtab_init(struct mod_symtab *table, uint32_t expected);
/* Find name; returns the entry index or -1. */
MOD_HIDDEN int32_t mod_symtab_find(const struct mod_symtab *table, const char *name);
/* Find or add name; *created says whether it was added.  -1 when out of memory. */
MOD_HIDDEN int32_t mod_symtab_intern(struct mod_symtab *table, const char *name, int *created);
MOD_HIDDEN void mod_symtab_release(struct mod_symtab *table);

/* ---- relocations -------------------------------------------------------- */

/* How the value of a relocation is computed (S symbol, A addend, P place). */
enum mod_value {
	VAL_NONE,        /* nothing to do */
	VAL_ABS,         /* S + A */
	VAL_PCREL,       /* S + A - P */
	VAL_GOT_PCREL,   /* G(S) + A - P */
	VAL_GOTOFF,      /* S + A - GOT */
	VAL_GOTPC,       /* GOT + A - P */
	VAL_PAGE_PCREL,  /* Page(S + A) - Page(P) */
	VAL_GOT_PAGE,    /* Page(G(S)) - Page(P) */
	VAL_GOT_ABS,     /* G(S) */
};

/* How the value is put into the place (and checked). */
enum mod_field {
	FIELD_NONE,
	FIELD_U64,        /* 64-bit word */
	FIELD_S32,        /* 32-bit word, value must fit signed */
	FIELD_U32,        /* 32-bit word, value must fit unsigned */
	FIELD_X32,        /* 32-bit word, signed or unsigned */
	FIELD_S16, FIELD_X16, FIELD_S8, FIELD_X8,
	FIELD_A64_B26,    /* B/BL imm26, value >> 2, +-128 MiB */
	FIELD_A64_B19,    /* B.cond/CBZ/LDR literal imm19 at bit 5, +-1 MiB */
	FIELD_A64_B14,    /* TBZ imm14 at bit 5, +-32 KiB */
	FIELD_A64_ADR,    /* ADR/ADRP imm21 (immlo:immhi), value >> shift */
	FIELD_A64_IMM12,  /* ADD/LDR/STR imm12 at bit 10: (value & 0xfff) >> shift */
	FIELD_A64_MOVW,   /* MOVZ/MOVK imm16 at bit 5: value >> shift */
};

/* What mod_arch.indirect_form() finds. */
enum mod_indirect { INDIRECT_NONE, INDIRECT_GOT, INDIRECT_STUB };

/* Flags of a relocation type. */
#define HOWTO_BRANCH   0x01  /* a branch: may go through a PLT stub */
#define HOWTO_GOT      0x02  /* needs a GOT entry for its symbol */
#define HOWTO_CHECK    0x04  /* the field overflows: check it */
#define HOWTO_LOW32    0x08  /* a 32-bit absolute address: module goes to the low 2 GiB */
#define HOWTO_USES_GOT 0x10  /* refers to the GOT base (_GLOBAL_OFFSET_TABLE_) */

struct mod_howto {
	const char *name;     /* NULL: unsupported */
	uint8_t value;        /* enum mod_value */
	uint8_t field;        /* enum mod_field */
	uint8_t shift;
	uint8_t flags;        /* HOWTO_* */
};

struct mod_arch {
	uint16_t machine;
	const char *name;
	const struct mod_howto *howtos;    /* indexed by relocation type */
	uint32_t nhowtos;
	/* Why a relocation type without a howto is unsupported, or NULL. */
	const char *(*unsupported_name)(uint32_t type, const char **why);
	uint8_t trap[4];                   /* fill pattern for gaps in code */
	uint8_t trap_size;
	uint32_t plt_size;
	void (*write_plt)(uint8_t *stub, uint64_t stub_address, uint64_t target);
	/*
	 * A relocation of type patches the instruction at code[offset] with the
	 * distance to its symbol, which may lie out of reach: can the
	 * instruction get there another way?  INDIRECT_GOT: it only takes the
	 * address, and a form as long loads it from a GOT entry (relocated as
	 * got_form_type); INDIRECT_STUB: it loads a pointer-sized value, and
	 * may jump to a stub that loads it from the full address and jumps
	 * back.  NULL when the architecture has neither.
	 */
	int (*indirect_form)(const uint8_t *code, uint64_t offset, uint32_t type, int64_t addend);
	uint32_t got_form_type;
	void (*use_got_form)(uint8_t *code, uint64_t offset);
	uint32_t load_stub_size;
	/* Write at stub (its address stub_address) a stub loading the value
	 * that the instruction whose field is at code[offset] (address place)
	 * loads, target being S + A of its relocation (of type), and make the
	 * instruction jump to it. */
	void (*use_load_stub)(uint8_t *code, uint64_t offset, uint64_t place, uint32_t type,
			      uint64_t target, uint8_t *stub, uint64_t stub_address);
};

MOD_HIDDEN extern const struct mod_arch mod_arch_x86_64;
MOD_HIDDEN extern const struct mod_arch mod_arch_aarch64;
MOD_HIDDEN const struct mod_arch *mod_arch_for(uint16_t machine);
MOD_HIDDEN uint16_t mod_host_machine(void);

/* The relocation type's howto, or NULL when unsupported. */
static inline const struct mod_howto *mod_howto_for(const struct mod_arch *arch, uint32_t type)
{
	if (type >= arch->nhowtos || !arch->howtos[type].name)
		return NULL;
	return &arch->howtos[type];
}

/* Describe relocation type in messages: "R_X86_64_PC32" or "type 123". */
MOD_HIDDEN const char *mod_reloc_name(const struct mod_arch *arch, uint32_t type,
				      char *buf, size_t len, const char **why);

/* Everything the value computation needs for one relocation. */
struct mod_reloc_site {
	uint64_t S, A, P;     /* symbol, addend, place (final address) */
	uint64_t G;           /* address of the symbol's GOT entry (when needed) */
	uint64_t GOT;         /* GOT base */
	uint8_t *loc;         /* where the field is, in the private image */
	uint64_t room;        /* bytes available at loc */
};

/*
 * Apply one relocation.  Returns 0, -ERANGE (value does not fit; the place is
 * unchanged, so the caller may retry with a PLT stub as S), -EINVAL (place
 * too small or misaligned value); *detail gets a short reason.
 */
MOD_HIDDEN int mod_reloc_apply(const struct mod_howto *howto, struct mod_reloc_site *site,
			       const char **detail);

/* ---- loaded modules ------------------------------------------------------ */

struct mod_export {
	const char *name;           /* in the module's string pool */
	uintptr_t address;
	uint64_t size;
	uint8_t type;               /* enum execmem_type of its section */
	uint8_t is_function, is_exported;
};

struct mod_placed_section {
	const char *name, *object;  /* in the string pool */
	uintptr_t address;
	uint64_t size;
	uint8_t type;
};

/* One execmem allocation holding sections of one region. */
struct mod_block {
	int region;
	enum execmem_type type;
	uint64_t size, align;
	void *alloc;                    /* NULL until placed */
	uintptr_t base;                 /* block start (aligned) inside alloc */
	uint8_t *window;                /* open write window, or NULL */
	uint8_t *image;                 /* writable view of base while it is open */
};

struct execmem_module {
	char *name;
	uint16_t machine;
	unsigned flags;
	struct mod_block *blocks;
	uint32_t nblocks;
	char *strings;                  /* pool for exports and section names */
	struct mod_export *exports;
	uint32_t nexports;
	uint32_t *export_slots;         /* hash of exports: index + 1 */
	uint32_t export_mask;
	struct mod_placed_section *sections;
	uint32_t nsections;
	void (**fini)(void);            /* destructors in the order to run them */
	uint32_t nfini;
	struct execmem_module **deps;   /* modules this one takes symbols from */
	uint32_t ndeps;
	uint32_t users;                 /* loaded modules that depend on this one */
	int registered;
	struct execmem_module *prev, *next;
	struct execmem_module_stats stats;
	uintptr_t dso_handle;           /* address of its __dso_handle, or 0 */
	struct execmem_module *crt_next; /* list of modules with a handle (crt.c) */
	struct mod_debug *debug;        /* its registration with tools (src/observe/) */
	const void **eh_frames;         /* unwind tables registered (execmem/unwind.h) */
	uint32_t neh_frames;
};

/* Look name up in the module's own exports hash (any global symbol). */
MOD_HIDDEN const struct mod_export *mod_find_export(const struct execmem_module *module,
						    const char *name);

/*
 * Registry.  mod_registry_lock() serialises changes to the list of loaded
 * modules and to users counts.
 */
MOD_HIDDEN void mod_registry_lock(void);
MOD_HIDDEN void mod_registry_unlock(void);
/* With the lock held: find an exported symbol in a loaded module. */
MOD_HIDDEN uintptr_t mod_registry_lookup(const char *name, struct execmem_module **provider);
MOD_HIDDEN void mod_registry_add(struct execmem_module *module);
MOD_HIDDEN void mod_registry_remove(struct execmem_module *module);

/* The loader proper: link the inputs into a module named name. */
MOD_HIDDEN int mod_load_inputs(const struct mod_input *inputs, size_t ninputs, const char *name,
			       const struct execmem_module_options *options,
			       struct execmem_module **out);

/*
 * The C runtime pieces (crt.c).  mod_crt_object() is the relocatable object
 * of libc_nonshared.a's functions for the host machine, linked into modules
 * that need them; mod_crt_symbol() the loader's own definitions of what it
 * references, or 0.  A module with a __dso_handle is attached before its
 * constructors run, so that its registrations are kept; mod_crt_finalize()
 * runs them (unload), mod_crt_detach() drops them unrun (failed load).
 */
MOD_HIDDEN const uint8_t *mod_crt_object(size_t *size);
MOD_HIDDEN uintptr_t mod_crt_symbol(const char *name);
MOD_HIDDEN void mod_crt_attach(struct execmem_module *module);
MOD_HIDDEN void mod_crt_finalize(struct execmem_module *module);
MOD_HIDDEN void mod_crt_detach(struct execmem_module *module);

/*
 * Unloading (unload.c).  mod_unload() takes a module that no other uses out
 * of the registry, runs its destructors and frees it: 0, or -EBUSY with a
 * message.  A failed load undoes itself with the pieces: mod_run_destructors()
 * (constructors ran), mod_drop_dependencies(), mod_release_memory().
 */
MOD_HIDDEN int mod_unload(struct execmem_module *module);
MOD_HIDDEN void mod_run_destructors(struct execmem_module *module);
MOD_HIDDEN void mod_drop_dependencies(struct execmem_module *module);
MOD_HIDDEN void mod_release_memory(struct execmem_module *module);

MOD_HIDDEN const char *mod_type_name(enum execmem_type type);

#endif
