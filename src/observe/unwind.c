/*
 * unwind.c - call frame information of JIT code, given in .eh_frame format:
 * registered with the process's unwinder (execmem/unwind.h) and with the
 * debugger (a symbol file with the .eh_frame section at the address of the
 * bytes), and withdrawn from both when the code is freed.
 */
#include <stdlib.h>
#include <string.h>

#include "execmem/unwind.h"
#include "internal.h"
#include "observe.h"

struct unwind_range {
	struct em_range range;
	const void *eh_frame;
	bool with_unwinder;
	struct em_gdb_entry *entry;
};

static struct em_range_table ranges = { .item_size = sizeof(struct unwind_range) };

static void withdraw(void *item)
{
	struct unwind_range *u = item;
	if (u->with_unwinder)
		execmem_unwind_unregister(u->eh_frame);
	em_gdb_unregister(u->entry);
}

/* A process without an unwinder (-ENOTSUP) still tells the debugger. */
static int add_range(size_t at, uintptr_t start, size_t len, const void *eh_frame, size_t size)
{
	int rc = execmem_unwind_register(eh_frame, size);
	if (rc && rc != -ENOTSUP)
		return rc;
	struct em_symbol text = { start, len, NULL };
	struct em_eh_frame eh = { (uintptr_t)eh_frame, size };
	size_t file_size;
	void *file = em_symfile_build(&text, 1, &eh, &file_size);
	struct em_gdb_entry *entry = file ? em_gdb_register(file, file_size) : NULL;
	struct unwind_range *u = entry ? em_range_insert(&ranges, at) : NULL;
	if (!u) {
		em_gdb_unregister(entry);
		if (!rc)
			execmem_unwind_unregister(eh_frame);
		return -ENOMEM;
	}
	*u = (struct unwind_range){ { start, start + len }, eh_frame, rc == 0, entry };
	return 0;
}

int execmem_set_unwind(void *addr, size_t len, const void *eh_frame, size_t size)
{
	struct em_chunk *c = em_addrmap_get(addr);
	if (!c || !len)
		return -EINVAL;
	uintptr_t start = (uintptr_t)addr;
	em_observe_lock();
	/* Checked under the lock, as names are (see names.c). */
	int rc = em_check_range(c, start, len);
	rc = rc == -EBUSY ? 0 : rc;
	if (!rc) {
		size_t at = em_range_drop(&ranges, start, start + len, withdraw);
		if (eh_frame)
			rc = add_range(at, start, len, eh_frame, size);
	}
	atomic_store(&em_observe_armed, true);
	em_observe_unlock();
	return rc;
}

void em_unwind_freed(uintptr_t addr, size_t len)
{
	em_range_drop(&ranges, addr, addr + len, withdraw);
}
