/*
 * gdb_jit.c - the GDB JIT interface: a list of in-memory symbol files in
 * __jit_debug_descriptor, and __jit_debug_register_code(), on which a
 * debugger keeps a breakpoint to learn of every change to the list.
 */
#include <pthread.h>
#include <stdlib.h>

#include "execmem.h"
#include "observe.h"

enum jit_action { JIT_NOACTION, JIT_REGISTER, JIT_UNREGISTER };

struct em_gdb_entry {
	struct em_gdb_entry *next_entry, *prev_entry;
	const char *symfile_addr;
	uint64_t symfile_size;
};

struct jit_descriptor {
	uint32_t version;
	uint32_t action_flag;
	struct em_gdb_entry *relevant_entry, *first_entry;
};

/* The names and layout are what debuggers look for: they must be global. */
EXECMEM_API void __jit_debug_register_code(void);
EXECMEM_API extern struct jit_descriptor __jit_debug_descriptor;

EXECMEM_API struct jit_descriptor __jit_debug_descriptor = { 1, JIT_NOACTION, NULL, NULL };

/* The debugger's breakpoint lives here: the call must really happen. */
EXECMEM_API __attribute__((noinline, used)) void __jit_debug_register_code(void)
{
	__asm__ volatile("" ::: "memory");
}

static pthread_mutex_t descriptor_lock = PTHREAD_MUTEX_INITIALIZER;

static void announce(struct em_gdb_entry *e, enum jit_action action)
{
	__jit_debug_descriptor.relevant_entry = e;
	__jit_debug_descriptor.action_flag = action;
	__jit_debug_register_code();
	__jit_debug_descriptor.action_flag = JIT_NOACTION;
}

struct em_gdb_entry *em_gdb_register(void *symfile, size_t size)
{
	struct em_gdb_entry *e = calloc(1, sizeof *e);
	if (!e) {
		free(symfile);
		return NULL;
	}
	e->symfile_addr = symfile;
	e->symfile_size = size;
	pthread_mutex_lock(&descriptor_lock);
	e->next_entry = __jit_debug_descriptor.first_entry;
	if (e->next_entry)
		e->next_entry->prev_entry = e;
	__jit_debug_descriptor.first_entry = e;
	announce(e, JIT_REGISTER);
	pthread_mutex_unlock(&descriptor_lock);
	return e;
}

void em_gdb_unregister(struct em_gdb_entry *e)
{
	if (!e)
		return;
	pthread_mutex_lock(&descriptor_lock);
	if (e->prev_entry)
		e->prev_entry->next_entry = e->next_entry;
	else
		__jit_debug_descriptor.first_entry = e->next_entry;
	if (e->next_entry)
		e->next_entry->prev_entry = e->prev_entry;
	announce(e, JIT_UNREGISTER);
	pthread_mutex_unlock(&descriptor_lock);
	free((void *)e->symfile_addr);
	free(e);
}
