/* reloc.c - what the relocators of every architecture share (reloc.h). */
#include "patch/reloc.h"

#include <errno.h>

#include "internal.h"

int em_reloc_too_short(uintptr_t target, size_t end, size_t need)
{
	em_set_error("execmem_hook: the function at %#lx ends after %zu bytes, before the %zu "
		     "bytes the jump needs: too short to hook", (unsigned long)target, end, need);
	return -ENOEXEC;
}
