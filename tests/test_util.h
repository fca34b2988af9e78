/* test_util.h - a tiny test harness shared by the core tests. */
#ifndef EXECMEM_TEST_UTIL_H
#define EXECMEM_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

extern int tu_passed, tu_failed;

#define CHECK(cond)                                                                   \
	do {                                                                          \
		if (cond) {                                                           \
			tu_passed++;                                                  \
		} else {                                                              \
			tu_failed++;                                                  \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
		}                                                                     \
	} while (0)

#define CHECK_EQ(a, b)                                                                \
	do {                                                                          \
		long long va_ = (long long)(a), vb_ = (long long)(b);                 \
		if (va_ == vb_) {                                                     \
			tu_passed++;                                                  \
		} else {                                                              \
			tu_failed++;                                                  \
			fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", __FILE__, \
				__LINE__, #a, va_, #b, vb_);                          \
		}                                                                     \
	} while (0)

/* Machine code of `int f(void) { return value; }` for this CPU; returns its length. */
size_t tu_emit_return(uint8_t *buf, int32_t value);

/*
 * Whether the function at p returns value.  qemu-user runs code rewritten
 * through a second mapping stale, so under it (EXECMEM_TEST_QEMU_USER=1)
 * code written through an alias is checked by its bytes instead of called;
 * the full-system emulation run calls it.
 */
int tu_returns(const void *p, int32_t value, int through_alias);

/* The trap instruction's bytes for this CPU. */
size_t tu_trap(uint8_t *buf);

/* Mappings that are writable and executable at once, from /proc/self/maps. */
int tu_wx_mappings(void);

/* Prints the closing "N passed, N failed" line; returns the exit status. */
int tu_finish(const char *name);

#endif
