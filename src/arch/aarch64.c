/*
 * aarch64.c - AArch64: BRK #0 traps; BL/B reach +-128 MiB, farther callees
 * are reached through veneers (ADRP-based, +-4 GiB), so near code falls back
 * to a 2 GiB window; ADRP data reach is +-4 GiB.  Publishing cleans the data cache and invalidates the instruction
 * cache to the point of unification (broadcast to all cores); other threads
 * still need a context synchronisation (ISB or execmem_sync_cores()).
 */
#include "internal.h"

static int aarch64_publish(void *exec, size_t len)
{
	char *start = exec;
	__builtin___clear_cache(start, start + len);
	return 0;
}

const struct em_arch em_arch = {
	.name = "aarch64",
	.trap = { 0x00, 0x00, 0x20, 0xd4 }, /* brk #0 */
	.trap_len = 4,
	.code_reach = (size_t)128 << 20,
	.code_fallback_reach = (size_t)2 << 30,
	.data_reach = (size_t)4 << 30,
	.needs_sync_cores = true,
	.publish = aarch64_publish,
};
