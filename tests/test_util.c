/* test_util.c - see test_util.h. */
#include "test_util.h"

#include "execmem.h"


#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tu_passed, tu_failed;

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

size_t tu_emit_return(uint8_t *buf, int32_t value)
{
#if defined(__x86_64__)
	buf[0] = 0xb8; /* mov eax, imm32 */
	put32(buf + 1, (uint32_t)value);
	buf[5] = 0xc3; /* ret */
	return 6;
#elif defined(__aarch64__)
	uint32_t v = (uint32_t)value;
	put32(buf, 0x52800000u | ((v & 0xffff) << 5));          /* movz w0, #lo */
	put32(buf + 4, 0x72a00000u | ((v >> 16) << 5));        /* movk w0, #hi, lsl 16 */
	put32(buf + 8, 0xd65f03c0u);                            /* ret */
	return 12;
#elif defined(__riscv)
	uint32_t v = (uint32_t)value;
	uint32_t hi = (v + 0x800) & 0xfffff000u, lo = v & 0xfff;
	put32(buf, 0x00000537u | hi);                           /* lui a0, hi */
	put32(buf + 4, 0x0005051bu | (lo << 20));               /* addiw a0, a0, lo */
	put32(buf + 8, 0x00008067u);                            /* ret */
	return 12;
#endif
}

int tu_returns(const void *p, int32_t value, int through_alias)
{
	static int qemu_user = -1;
	if (qemu_user < 0) {
		const char *env = getenv("EXECMEM_TEST_QEMU_USER");
		qemu_user = env && *env == '1';
		if (qemu_user)
			fprintf(stderr, "note: under qemu-user, code written through an alias is "
					"checked by its bytes, not run\n");
	}
	if (qemu_user && through_alias) {
		uint8_t code[16];
		size_t len = tu_emit_return(code, value);
		return memcmp(p, code, len) == 0;
	}
	return ((int (*)(void))p)() == value;
}

size_t tu_trap(uint8_t *buf)
{
#if defined(__x86_64__)
	buf[0] = 0xcc;
	return 1;
#elif defined(__aarch64__)
	put32(buf, 0xd4200000u);
	return 4;
#elif defined(__riscv)
	put32(buf, 0x00100073u);
	return 4;
#endif
}

/* The tool's own memory (valgrind's translations) is not the program's W+X. */
static int report_wx(const struct execmem_finding *f, void *found)
{
	if (f->kind != EXECMEM_FINDING_WX || f->mapping.tool)
		return 0;
	fprintf(stderr, "W+X mapping: %" PRIxPTR "-%" PRIxPTR " %s\n", f->mapping.start, f->mapping.end,
		f->mapping.name);
	++*(int *)found;
	return 0;
}

int tu_wx_mappings(void)
{
	int found = 0;
	return execmem_audit(0, report_wx, &found, NULL) ? -1 : found;
}

int tu_finish(const char *name)
{
	printf("%s: %d passed, %d failed\n", name, tu_passed, tu_failed);
	return tu_failed ? 1 : 0;
}
