/*
 * x86_64.c - x86-64: INT3 traps; rel32 branches and RIP-relative data reach
 * +-2 GiB.  Instruction fetch snoops stores, so publishing code needs no
 * cache maintenance, and a thread that acquires the address of new code
 * executes it correctly (the bytes were never fetched at that address since
 * its INT3 fill).
 */
#include "internal.h"

static int x86_publish(void *exec, size_t len)
{
	(void)exec;
	(void)len;
	return 0;
}

const struct em_arch em_arch = {
	.name = "x86_64",
	.trap = { 0xcc },
	.trap_len = 1,
	.code_reach = (size_t)1 << 31,
	.code_fallback_reach = 0,
	.data_reach = (size_t)1 << 31,
	.needs_sync_cores = false,
	.publish = x86_publish,
};
