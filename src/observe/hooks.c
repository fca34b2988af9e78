/*
 * hooks.c - what the core tells the tools' side when memory goes away: the
 * names (names.c) and the unwind ranges (unwind.c) of that memory are
 * dropped under the one lock of the tools' side, so that no other thread
 * can reuse and describe the memory in between.
 */
#include "internal.h"
#include "observe.h"

static void drop_described(uintptr_t addr, size_t len)
{
	em_names_drop(addr, len);
	em_unwind_freed(addr, len);
}

int em_observe_free(struct em_chunk *c, uintptr_t addr)
{
	em_observe_lock();
	size_t len = em_usable(c, addr);
	int rc = em_free_owned(c, addr);
	if (!rc && len)
		drop_described(addr, len);
	em_observe_unlock();
	return rc;
}

void em_observe_freed(uintptr_t addr, size_t len)
{
	em_observe_lock();
	drop_described(addr, len);
	em_observe_unlock();
}
