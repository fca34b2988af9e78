/*
 * reloc_test.h - what the relocator tests of both architectures share: a
 * window of hand-made code relocated into a trampoline near it or more than
 * 4 GiB away, and copied there to run.
 */
#ifndef EXECMEM_TEST_RELOC_TEST_H
#define EXECMEM_TEST_RELOC_TEST_H

#include "patch/reloc.h"
#include "rtest.h"

#include <errno.h>

#define GiB ((uintptr_t)1 << 30)

enum placement { NEAR, FAR };

struct moved {
	uint8_t *tramp;
	struct em_reloc_result res;
	uint8_t out[EM_RELOC_MAX_OUT];
	int rc;
};

/* Relocates need bytes of code (avail of them readable) into a trampoline
 * near it or > 4 GiB away. */
static inline struct moved move_window(const uint8_t *code, size_t avail, size_t need,
				       enum placement where)
{
	struct moved m = { 0 };
	const void *hint = where == NEAR ? code : (const void *)((uintptr_t)code + 16 * GiB);
	m.tramp = execmem_alloc_near(EXECMEM_CODE, EM_RELOC_MAX_OUT, hint, GiB);
	RT_CHECK(m.tramp != NULL, "no trampoline: %s", execmem_last_error());
	if (!m.tramp) {
		m.rc = -ENOMEM;
		return m;
	}
	uintptr_t distance = (uintptr_t)m.tramp > (uintptr_t)code ? (uintptr_t)m.tramp - (uintptr_t)code
								    : (uintptr_t)code - (uintptr_t)m.tramp;
	RT_CHECK(where == NEAR || distance > 4 * GiB, "far trampoline only %#lx away",
		 (unsigned long)distance);
	m.rc = em_reloc_window(code, avail, (uintptr_t)code, need, (uintptr_t)m.tramp, m.out,
			       sizeof m.out, &m.res);
	if (m.rc == 0)
		RT_CHECK(execmem_write(m.tramp, m.out, m.res.len) == 0, "%s", execmem_last_error());
	return m;
}

#endif
