/*
 * image.c - the host program's image: the span of the main executable's
 * loadable segments, which CODE_NEAR code must reach with direct branches.
 */
#include "internal.h"

#include <link.h>

struct bounds {
	uintptr_t lo, hi;
};

static int main_program_bounds(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	struct bounds *b = arg;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD)
			continue;
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
		uintptr_t hi = lo + ph->p_memsz;
		if (!b->lo || lo < b->lo)
			b->lo = lo;
		if (hi > b->hi)
			b->hi = hi;
	}
	return 1; /* the main program is always reported first */
}

void em_image_bounds(uintptr_t *lo, uintptr_t *hi)
{
	struct bounds b = { 0, 0 };
	dl_iterate_phdr(main_program_bounds, &b);
	if (!b.hi) {
		/* No program headers (unusual loaders): use this library's code. */
		b.lo = (uintptr_t)&em_image_bounds;
		b.hi = b.lo + 1;
	}
	*lo = b.lo;
	*hi = b.hi;
}
