/* test_util.c - see test_util.h. */
#include "test_util.h"

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

int tu_wx_mappings(void)
{
	FILE *maps = fopen("/proc/self/maps", "r");
	if (!maps)
		return -1;
	char line[512];
	int found = 0;
	while (fgets(line, sizeof line, maps)) {
		char perms[8] = "";
		if (sscanf(line, "%*x-%*x %7s", perms) == 1 && perms[1] == 'w' && perms[2] == 'x') {
			fprintf(stderr, "W+X mapping: %s", line);
			found++;
		}
	}
	fclose(maps);
	return found;
}

int tu_finish(const char *name)
{
	printf("%s: %d passed, %d failed\n", name, tu_passed, tu_failed);
	return tu_failed ? 1 : 0;
}
