/*
 * poke_aarch64.c - AArch64 for live patching: sites are one or two
 * aligned instructions.  The architecture lets a single instruction be
 * swapped by one aligned 32-bit store while other cores execute it when
 * the old and the new encoding are both B, BL, NOP, BRK, SVC, HVC, SMC or
 * ISB (the Arm ARM's concurrent modification and execution of
 * instructions): such a site is one store.  Any other change takes the
 * trap protocol, its trap a BRK with an immediate of its own (#0xe5) so
 * that a trap left by a batch that has ended is told from the program's.
 * BRK leaves the program counter at the site.
 */
#include "poke_int.h"

#include <signal.h>
#include <ucontext.h>

#define BRK_POKE (0xd4200000u | 0xe5u << 5)

static uint32_t word_at(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static bool live_swappable(uint32_t insn)
{
	return (insn & 0x7c000000u) == 0x14000000u ||  /* B, BL */
	       insn == 0xd503201fu ||                  /* NOP */
	       ((insn & 0xffe0001cu) == 0xd4000000u && (insn & 3)) || /* SVC, HVC, SMC */
	       (insn & 0xffe0001fu) == 0xd4200000u ||  /* BRK */
	       (insn & 0xfffff0ffu) == 0xd50330dfu;    /* ISB */
}

static bool a64_direct(const uint8_t *old, const uint8_t *new_bytes, size_t len)
{
	return len == 4 && live_swappable(word_at(old)) && live_swappable(word_at(new_bytes));
}

static bool a64_is_trap(uintptr_t site)
{
	return (*(const volatile uint32_t *)site & 0xffe0001fu) == 0xd4200000u; /* BRK #any */
}

static uintptr_t a64_context_pc(const void *ucontext)
{
	return (uintptr_t)((const ucontext_t *)ucontext)->uc_mcontext.pc;
}

static void a64_set_context_pc(void *ucontext, uintptr_t pc)
{
	((ucontext_t *)ucontext)->uc_mcontext.pc = pc;
}

static void a64_serialise(void)
{
	__asm__ volatile("isb" ::: "memory");
}

const struct em_poke_arch em_poke_arch = {
	.max_len = 8,
	.align = 4,
	.trap_len = 4,
	.trap = { BRK_POKE & 0xff, BRK_POKE >> 8 & 0xff, BRK_POKE >> 16 & 0xff, BRK_POKE >> 24 },
	.direct = a64_direct,
	.trap_pc_offset = 0,
	.trap_si_code = TRAP_BRKPT,
	.is_trap = a64_is_trap,
	.context_pc = a64_context_pc,
	.set_context_pc = a64_set_context_pc,
	.serialise = a64_serialise,
};
