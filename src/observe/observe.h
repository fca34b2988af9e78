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

/* Set once the first name exists; never cleared. */
extern EM_OBS_HIDDEN atomic_bool em_observe_armed;

static inline bool em_observe_hooks_on(void)
{
	return __builtin_expect(atomic_load_explicit(&em_observe_armed, memory_order_relaxed), 0);
}

/* Hooks of the core: [addr, addr + len) was freed / was rewritten. */
EM_OBS_HIDDEN void em_observe_freed(uintptr_t addr, size_t len);
EM_OBS_HIDDEN void em_observe_written(uintptr_t addr, size_t len);

/* names.c: name a range for the perf outputs only (the caller registers
 * the code with the debugger itself), as module loading does. */
EM_OBS_HIDDEN int em_name_for_perf(void *addr, size_t len, const char *name);

/* perf.c, called under the names lock. */
struct em_name;
EM_OBS_HIDDEN int em_perf_set_outputs(unsigned flags, const struct em_name *names, size_t count);
EM_OBS_HIDDEN void em_perf_named(const struct em_name *n);
EM_OBS_HIDDEN unsigned em_perf_outputs_from_env(void);

/* gdb_jit.c: the descriptor list.  An entry holds a symbol file the caller
 * built; register takes ownership of the malloc'd file. */
struct em_gdb_entry;
EM_OBS_HIDDEN struct em_gdb_entry *em_gdb_register(void *symfile, size_t size);
EM_OBS_HIDDEN void em_gdb_unregister(struct em_gdb_entry *e);

/* gdb_symfile.c: the ELF symbol file of a batch of names (malloc'd). */
struct em_symbol {
	uintptr_t start;
	size_t size;
	const char *name;
};
EM_OBS_HIDDEN void *em_symfile_build(const struct em_symbol *syms, size_t count, size_t *size);

/* module_debug.c: a module as tools see it, from its publication (after
 * its constructors ran) to its unload (before its memory is freed). */
struct load;
struct execmem_module;
EM_OBS_HIDDEN void mod_observe_publish(struct load *ld);
EM_OBS_HIDDEN void mod_observe_unload(struct execmem_module *m);

/* One name of names.c's table. */
struct em_name {
	uintptr_t start, end;
	char *name;
	struct em_name_batch *batch; /* its debugger batch, or NULL */
	bool perf_only;
};

#endif
