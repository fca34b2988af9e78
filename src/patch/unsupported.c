/*
 * unsupported.c - live patching on an architecture it does not know how to
 * change instructions of safely: every call says so.
 */
#include "execmem/patch.h"
#include "poke.h"

#include <errno.h>

int em_poke_batch(const struct em_poke_site *sites, size_t n)
{
	(void)sites;
	(void)n;
	return -ENOTSUP;
}

int em_threads_outside(const struct em_pc_range *ranges, size_t n)
{
	(void)ranges;
	(void)n;
	return -ENOTSUP;
}

int execmem_patch(void *addr, const void *bytes, size_t len)
{
	(void)addr;
	(void)bytes;
	(void)len;
	return -ENOTSUP;
}

int execmem_patch_batch(const struct execmem_patch_site *sites, size_t n)
{
	(void)sites;
	(void)n;
	return -ENOTSUP;
}
