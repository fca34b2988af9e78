/*
 * common.h - what every file of the module loader shares (not public): the
 * limits, the error message, array growth, memory regions and the loaded
 * module itself.  Each other header belongs to the file of its name; the
 * files and the order of a load are mapped in docs/modules.md.
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

/*
 * Memory that lives as long as one load: the parsed objects' arrays and
 * names.  Taken from blocks of a few dozen KiB and given back all at once
 * (a load of a large archive made and freed some 6,000 small arrays).
 */
struct mod_pool_block;
struct mod_pool {
	struct mod_pool_block *blocks;  /* the one being filled first */
	size_t used, size;              /* of the first block */
};
/* size bytes aligned to 16, or NULL when out of memory. */
MOD_HIDDEN void *mod_pool_alloc(struct mod_pool *pool, size_t size);
MOD_HIDDEN void mod_pool_release(struct mod_pool *pool);

/* Monotonic nanoseconds, for execmem_module_load_times(). */
MOD_HIDDEN uint64_t mod_now_ns(void);

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
	uint64_t load_ns[EXECMEM_MODULE_STAGES]; /* execmem_module_load_times() */
	uintptr_t dso_handle;           /* address of its __dso_handle, or 0 */
	struct execmem_module *crt_next; /* list of modules with a handle (crt.c) */
	struct mod_debug *debug;        /* its registration with tools (src/observe/) */
	const void **eh_frames;         /* unwind tables registered (execmem/unwind.h) */
	uint32_t neh_frames;
};

MOD_HIDDEN const char *mod_type_name(enum execmem_type type);

#endif
