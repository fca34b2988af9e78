/*
 * observe.h - what the core and the module loader tell the tools' side of
 * execmem (names, perf outputs, the GDB JIT interface), and what those
 * parts share.  The core's only cost while nothing is named is the load and
 * branch of em_observe_hooks_on().
 */
#ifndef EXECMEM_OBSERVE_H
#define EXECMEM_OBSERVE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EM_OBS_HIDDEN __attribute__((visibility("hidden")))

/* Set once the first name or unwind range exists; never cleared. */
extern EM_OBS_HIDDEN atomic_bool em_observe_armed;
/* Set while the jitdump is open: only it records rewrites. */
extern EM_OBS_HIDDEN atomic_bool em_observe_rewrites;

static inline bool em_observe_hooks_on(void)
{
	return __builtin_expect(atomic_load_explicit(&em_observe_armed, memory_order_relaxed), 0);
}

static inline bool em_observe_rewrites_on(void)
{
	return __builtin_expect(atomic_load_explicit(&em_observe_rewrites, memory_order_relaxed), 0);
}

/*
 * Hooks of the core.  While em_observe_hooks_on(): em_observe_free() frees
 * the allocation at addr of c (em_pool_free()) and drops what describes
 * it, under the one lock of the tools' side, so that no other thread can
 * reuse and describe the memory in between; em_observe_freed() drops what
 * describes [addr, addr + len), memory that is going away.  While
 * em_observe_rewrites_on(): em_observe_written() says [addr, addr + len)
 * was rewritten.
 */
struct em_chunk;
/* hooks.c */
EM_OBS_HIDDEN int em_observe_free(struct em_chunk *c, uintptr_t addr);
EM_OBS_HIDDEN void em_observe_freed(uintptr_t addr, size_t len);
/* names.c */
EM_OBS_HIDDEN void em_observe_written(uintptr_t addr, size_t len);
/* names.c: drop the names of [addr, addr + len) (under em_observe_lock()). */
EM_OBS_HIDDEN void em_names_drop(uintptr_t addr, size_t len);

/* names.c: the lock of the tools' side (names, perf outputs, unwind
 * ranges), taken after any lock of the core's callers and before the
 * core's own locks and the descriptor lock of gdb_jit.c. */
EM_OBS_HIDDEN void em_observe_lock(void);
EM_OBS_HIDDEN void em_observe_unlock(void);

/*
 * names.c: name count ranges for the perf outputs only (the caller
 * registers the code with the debugger itself), as module loading does,
 * in time linear in the table and the batch: the nowners ranges are the
 * caller's allocations (sorted, each checked once; what they held so
 * far is dropped), and a range is named only when it lies inside one of
 * them and has a name (an odd symbol of an object costs its own name, not
 * its module's).  syms is sorted in place by address; of ranges that
 * overlap each other, the lowest (the first of those starting at one
 * address) is kept.  Returns 0, -EINVAL (an owner is not an allocation, or
 * owners overlap) or -ENOMEM; nothing is named then.
 */
struct em_symbol;
struct em_range;
EM_OBS_HIDDEN int em_names_for_perf(struct em_symbol *syms, size_t count,
				    const struct em_range *owners, size_t nowners);

/* perf.c, called under the names lock. */
struct em_name;
EM_OBS_HIDDEN int em_perf_set_outputs(unsigned flags, const struct em_name *names, size_t count);
EM_OBS_HIDDEN void em_perf_named(const struct em_name *n);
/* The range was rewritten: a new CODE_LOAD. */
EM_OBS_HIDDEN void em_perf_rewritten(const struct em_name *n);
EM_OBS_HIDDEN unsigned em_perf_outputs_from_env(void);
EM_OBS_HIDDEN void em_perf_after_fork(const struct em_name *names, size_t count);

/* gdb_jit.c: the descriptor list.  An entry holds a symbol file the caller
 * built; register takes ownership of the malloc'd file. */
struct em_gdb_entry;
EM_OBS_HIDDEN struct em_gdb_entry *em_gdb_register(void *symfile, size_t size);
EM_OBS_HIDDEN void em_gdb_unregister(struct em_gdb_entry *e);

/* gdb_symfile.c: the ELF symbol file (malloc'd) of code ranges, with a
 * function symbol for each named one, and call frame information in
 * .eh_frame format lying in memory at eh->address (eh may be NULL). */
struct em_symbol {
	uintptr_t start;
	size_t size;
	const char *name; /* NULL: the range has no symbol */
};
struct em_eh_frame {
	uintptr_t address;
	size_t size;
};
EM_OBS_HIDDEN void *em_symfile_build(const struct em_symbol *syms, size_t count,
				     const struct em_eh_frame *eh, size_t *size);

/* unwind.c: call frame information of ranges, dropped with their memory
 * (called under em_observe_lock()). */
EM_OBS_HIDDEN void em_unwind_freed(uintptr_t addr, size_t len);

/* module_debug.c: a module as tools see it, from its publication (after
 * its constructors ran) to its unload (before its memory is freed). */
struct load;
struct execmem_module;
EM_OBS_HIDDEN void mod_observe_publish(struct load *ld);
EM_OBS_HIDDEN void mod_observe_unload(struct execmem_module *m);

/* range_table.c: disjoint ranges sorted by address.  Items are item_size
 * bytes and begin with their struct em_range. */
struct em_range {
	uintptr_t start, end;
};
struct em_range_table {
	void *items;
	size_t count, capacity, item_size;
};
EM_OBS_HIDDEN void *em_range_at(const struct em_range_table *t, size_t i);
/* Index of the first item ending after addr. */
EM_OBS_HIDDEN size_t em_range_first_after(const struct em_range_table *t, uintptr_t addr);
EM_OBS_HIDDEN void *em_range_containing(const struct em_range_table *t, uintptr_t addr);
/* Removes the items overlapping [lo, hi), drop() first; returns where they were. */
EM_OBS_HIDDEN size_t em_range_drop(struct em_range_table *t, uintptr_t lo, uintptr_t hi,
				   void (*drop)(void *item));
/* Room for an item at index at (uninitialised), or NULL when out of memory. */
EM_OBS_HIDDEN void *em_range_insert(struct em_range_table *t, size_t at);
/* Inserts the n items (sorted by address, overlapping neither each other
 * nor the table's) in one pass.  0, or -1 when out of memory (t unchanged). */
EM_OBS_HIDDEN int em_range_merge(struct em_range_table *t, const void *items, size_t n);

/* One name of names.c's table. */
struct em_name_block;
struct em_name {
	struct em_range range;
	char *name;                  /* its own allocation, or inside block */
	struct em_name_block *block; /* the strings of its em_names_for_perf() batch, or NULL */
	struct em_name_batch *batch; /* its debugger batch, or NULL */
	bool perf_only;
};

#endif
