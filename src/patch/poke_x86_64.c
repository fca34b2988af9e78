/*
 * poke_x86_64.c - x86-64 for live patching: a site is any instruction
 * sequence of up to 15 bytes; its temporary trap is INT3 (0xcc), which
 * leaves the program counter one byte past the site.  A site whose first
 * byte is the only one that changes needs no trap: a one-byte store is
 * seen whole or not at all, and a thread already past that byte runs the
 * old bytes that follow it, the same as the new ones.
 */
#include "poke_int.h"

#include <cpuid.h>
#include <signal.h>
#include <string.h>
#include <ucontext.h>

static bool x86_direct(const uint8_t *old, const uint8_t *new_bytes, size_t len)
{
	return memcmp(old + 1, new_bytes + 1, len - 1) == 0;
}

static bool x86_is_trap(uintptr_t site)
{
	return *(const volatile uint8_t *)site == 0xcc;
}

static uintptr_t x86_context_pc(const void *ucontext)
{
	return (uintptr_t)((const ucontext_t *)ucontext)->uc_mcontext.gregs[REG_RIP];
}

static void x86_set_context_pc(void *ucontext, uintptr_t pc)
{
	((ucontext_t *)ucontext)->uc_mcontext.gregs[REG_RIP] = (greg_t)pc;
}

/* CPUID serialises: the architecture's answer to cross-modified code
 * (the SDM's "execute a serializing instruction" before running it). */
static void x86_serialise(void)
{
	unsigned a, b, c, d;
	__cpuid(0, a, b, c, d);
	__asm__ volatile("" : : "r"(a), "r"(b), "r"(c), "r"(d) : "memory");
}

const struct em_poke_arch em_poke_arch = {
	.max_len = 15,
	.align = 1,
	.trap_len = 1,
	.trap = { 0xcc },
	.direct = x86_direct,
	.trap_pc_offset = 1,
	.trap_si_code = SI_KERNEL, /* INT3 (#BP); single steps and INT1 raise TRAP_* */
	.is_trap = x86_is_trap,
	.context_pc = x86_context_pc,
	.set_context_pc = x86_set_context_pc,
	.serialise = x86_serialise,
};
