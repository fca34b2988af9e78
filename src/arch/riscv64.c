/*
 * riscv64.c - RISC-V 64: EBREAK traps; AUIPC+JALR and AUIPC-based data
 * access reach +-2 GiB.  FENCE.I only affects the hart that runs it, so
 * publishing asks the kernel to flush the instruction caches of all harts
 * (riscv_flush_icache), which is a system call per publication.
 */
#include "internal.h"

static int riscv64_publish(void *exec, size_t len)
{
	char *start = exec;
	return em_os_flush_icache(start, start + len);
}

const struct em_arch em_arch = {
	.name = "riscv64",
	.trap = { 0x73, 0x00, 0x10, 0x00 }, /* ebreak */
	.trap_len = 4,
	.code_reach = (size_t)1 << 31,
	.code_fallback_reach = 0,
	.data_reach = (size_t)1 << 31,
	.needs_sync_cores = true,
	.publish = riscv64_publish,
};
