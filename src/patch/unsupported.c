/*
 * unsupported.c - live patching on an architecture it does not know how to
 * change instructions of safely, nor relocate them for hooks and probes:
 * every call says so.
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

int execmem_hook(void *target, void *replacement, void **original)
{
	(void)target;
	(void)replacement;
	(void)original;
	return -ENOTSUP;
}

int execmem_unhook(void *target)
{
	(void)target;
	return -ENOTSUP;
}

int execmem_probe(void *addr, execmem_probe_handler handler, void *ctx)
{
	(void)addr;
	(void)handler;
	(void)ctx;
	return -ENOTSUP;
}

int execmem_unprobe(void *addr)
{
	(void)addr;
	return -ENOTSUP;
}
