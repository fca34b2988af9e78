/*
 * test_reloc.c - the relocation engine (src/module/reloc_engine.h) on its own: for
 * each x86-64 and aarch64 relocation type, apply it to a known instruction
 * or word and check the encoded bytes against the architecture manuals'
 * encodings, the overflow limits, and that a failed relocation leaves the
 * place untouched (the loader then retries through a PLT stub).
 * Runs on any host: it is byte manipulation only.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "module/reloc.h"
#include "module/reach.h"

#include "module_check.h"

static int failures;


struct reloc_case {
	uint16_t machine;
	uint32_t type;
	uint64_t S, A, P, G, GOT;
	uint64_t before;      /* bytes at the place, little-endian */
	int err;              /* expected result */
	uint64_t after;       /* expected bytes when err == 0 */
};

static const struct reloc_case cases[] = {
	/* x86-64: data words */
	{ EM_X86_64, R_X86_64_64, 0x1122334455667788, 8, 0, 0, 0, 0, 0, 0x1122334455667790 },
	{ EM_X86_64, R_X86_64_PC32, 0x401000, (uint64_t)-4, 0x400000, 0, 0, 0, 0, 0xffc },
	{ EM_X86_64, R_X86_64_PC32, 0x400000, 0, 0x401000, 0, 0, 0, 0, 0xfffff000 },
	{ EM_X86_64, R_X86_64_PC32, 0x100000000, 0, 0x1000, 0, 0, 0x55, -ERANGE, 0x55 },
	{ EM_X86_64, R_X86_64_PLT32, 0x80002000, (uint64_t)-4, 0x1000, 0, 0, 0x55, -ERANGE, 0x55 },
	{ EM_X86_64, R_X86_64_32, 0xfffffff0, 0, 0, 0, 0, 0, 0, 0xfffffff0 },
	{ EM_X86_64, R_X86_64_32, 0x100000000, 0, 0, 0, 0, 0, -ERANGE, 0 },
	{ EM_X86_64, R_X86_64_32S, 0x7ffffff0, 0, 0, 0, 0, 0, 0, 0x7ffffff0 },
	{ EM_X86_64, R_X86_64_32S, 0x80000000, 0, 0, 0, 0, 0, -ERANGE, 0 },
	{ EM_X86_64, R_X86_64_PC64, 0x1000, 0, 0x2000, 0, 0, 0, 0, 0xfffffffffffff000 },
	{ EM_X86_64, R_X86_64_GOTPCREL, 0xdead, (uint64_t)-4, 0x1000, 0x3000, 0, 0, 0, 0x1ffc },
	{ EM_X86_64, R_X86_64_REX_GOTPCRELX, 0, (uint64_t)-4, 0x1000, 0x800, 0, 0, 0, 0xfffff7fc },
	{ EM_X86_64, R_X86_64_GOTOFF64, 0x5000, 0x10, 0, 0, 0x4000, 0, 0, 0x1010 },
	{ EM_X86_64, R_X86_64_GOTPC32, 0, 3, 0x1000, 0, 0x3000, 0, 0, 0x2003 },
	{ EM_X86_64, R_X86_64_16, 0xffff, 0, 0, 0, 0, 0, 0, 0xffff },
	{ EM_X86_64, R_X86_64_16, 0x10000, 0, 0, 0, 0, 0, -ERANGE, 0 },
	{ EM_X86_64, R_X86_64_PC8, 0x1080, 0, 0x1000, 0, 0, 0, -ERANGE, 0 },
	{ EM_X86_64, R_X86_64_PC8, 0x107f, 0, 0x1000, 0, 0, 0, 0, 0x7f },

	/* aarch64: BL (0x94000000), B.EQ (0x54000000), TBZ (0x36000000) */
	{ EM_AARCH64, R_AARCH64_CALL26, 0x11000, 0, 0x10000, 0, 0, 0x94000000, 0, 0x94000400 },
	{ EM_AARCH64, R_AARCH64_CALL26, 0x10000, 0, 0x11000, 0, 0, 0x94000000, 0, 0x97fffc00 },
	{ EM_AARCH64, R_AARCH64_JUMP26, 0x10000 + (128 << 20), 0, 0x10000, 0, 0, 0x14000000,
	  -ERANGE, 0x14000000 },
	{ EM_AARCH64, R_AARCH64_JUMP26, 0x10002, 0, 0x10000, 0, 0, 0x14000000, -EINVAL, 0 },
	{ EM_AARCH64, R_AARCH64_CONDBR19, 0x10100, 0, 0x10000, 0, 0, 0x54000000, 0, 0x54000800 },
	{ EM_AARCH64, R_AARCH64_CONDBR19, 0x10000 + (1 << 20), 0, 0x10000, 0, 0, 0x54000000,
	  -ERANGE, 0 },
	{ EM_AARCH64, R_AARCH64_TSTBR14, 0x10020, 0, 0x10000, 0, 0, 0x36000000, 0, 0x36000100 },
	{ EM_AARCH64, R_AARCH64_TSTBR14, 0x10000 + (32 << 10), 0, 0x10000, 0, 0, 0x36000000,
	  -ERANGE, 0 },
	/* ADRP x0 (0x90000000): page delta 0x2345 -> immlo 1, immhi 0x8d1 */
	{ EM_AARCH64, R_AARCH64_ADR_PREL_PG_HI21, 0x12345678, 0, 0x10000ffc, 0, 0, 0x90000000, 0,
	  0x90000000 | (1u << 29) | (0x8d1u << 5) },
	{ EM_AARCH64, R_AARCH64_ADR_PREL_PG_HI21, 0x200000000, 0, 0x1000, 0, 0, 0x90000000,
	  -ERANGE, 0 },
	/* ADR x0 (0x10000000), +5 bytes: immlo 1, immhi 1 */
	{ EM_AARCH64, R_AARCH64_ADR_PREL_LO21, 0x1005, 0, 0x1000, 0, 0, 0x10000000, 0,
	  0x10000000 | (1u << 29) | (1u << 5) },
	/* ADD x0, x0, #lo12 (0x91000000) */
	{ EM_AARCH64, R_AARCH64_ADD_ABS_LO12_NC, 0x12345678, 0, 0, 0, 0, 0x91000000, 0,
	  0x91000000 | (0x678u << 10) },
	/* LDR x0, [x0, #lo12] (0xf9400000): scaled by 8, must be aligned */
	{ EM_AARCH64, R_AARCH64_LDST64_ABS_LO12_NC, 0x12345670, 0, 0, 0, 0, 0xf9400000, 0,
	  0xf9400000 | ((0x670u >> 3) << 10) },
	{ EM_AARCH64, R_AARCH64_LDST64_ABS_LO12_NC, 0x12345674, 0, 0, 0, 0, 0xf9400000, -EINVAL, 0 },
	{ EM_AARCH64, R_AARCH64_LDST8_ABS_LO12_NC, 0x12345fff, 0, 0, 0, 0, 0x39400000, 0,
	  0x39400000 | (0xfffu << 10) },
	{ EM_AARCH64, R_AARCH64_LDST128_ABS_LO12_NC, 0x12345ff0, 0, 0, 0, 0, 0x3dc00000, 0,
	  0x3dc00000 | (0xffu << 10) },
	/* GOT: ADRP of the entry's page, LDR of its low 12 bits */
	{ EM_AARCH64, R_AARCH64_ADR_GOT_PAGE, 0, 0, 0x1000, 0x3008, 0, 0x90000000, 0,
	  0x90000000 | (2u << 29) },
	{ EM_AARCH64, R_AARCH64_LD64_GOT_LO12_NC, 0, 0, 0, 0x3008, 0, 0xf9400000, 0,
	  0xf9400000 | (1u << 10) },
	/* MOVZ/MOVK x0 (0xd2800000 / 0xf2800000) */
	{ EM_AARCH64, R_AARCH64_MOVW_UABS_G0_NC, 0x1122334455667788, 0, 0, 0, 0, 0xf2800000, 0,
	  0xf2800000 | (0x7788u << 5) },
	{ EM_AARCH64, R_AARCH64_MOVW_UABS_G3, 0x1122334455667788, 0, 0, 0, 0, 0xf2800000, 0,
	  0xf2800000 | (0x1122u << 5) },
	{ EM_AARCH64, R_AARCH64_MOVW_UABS_G1, 0x100000000, 0, 0, 0, 0, 0xd2800000, -ERANGE, 0 },
	/* data */
	{ EM_AARCH64, R_AARCH64_ABS32, (uint64_t)-1, 0, 0, 0, 0, 0, 0, 0xffffffff },
	{ EM_AARCH64, R_AARCH64_ABS32, 0x100000000, 0, 0, 0, 0, 0, -ERANGE, 0 },
	{ EM_AARCH64, R_AARCH64_PREL32, 0x1000, 0, 0x2000, 0, 0, 0, 0, 0xfffff000 },
	{ EM_AARCH64, R_AARCH64_PREL64, 0x1000, 0, 0x2000, 0, 0, 0, 0, 0xfffffffffffff000 },
	{ EM_AARCH64, R_AARCH64_ABS64, 0x1122334455667788, 0, 0, 0, 0, 0, 0, 0x1122334455667788 },
};

static uint64_t get_le(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void put_le(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void run_case(const struct reloc_case *c)
{
	const struct mod_arch *arch = mod_arch_for(c->machine);
	const struct mod_howto *howto = arch ? mod_howto_for(arch, c->type) : NULL;
	uint8_t place[16];
	const char *detail;

	if (!howto) {
		CHECK(0, "%s type %u has no howto", arch ? arch->name : "?", (unsigned)c->type);
		return;
	}
	memset(place, 0xee, sizeof(place));
	put_le(place, c->before);
	struct mod_reloc_site site = { .S = c->S, .A = c->A, .P = c->P, .G = c->G, .GOT = c->GOT,
				       .loc = place, .room = 8 };
	int err = mod_reloc_apply(howto, &site, &detail);
	CHECK(err == c->err, "%s: result %d, expected %d (%s)", howto->name, err, c->err,
	      detail ? detail : "");
	uint64_t got = get_le(place);
	if (c->err == 0)
		CHECK(got == c->after, "%s: bytes %#llx, expected %#llx", howto->name,
		      (unsigned long long)got, (unsigned long long)c->after);
	else if (c->err == -ERANGE)
		CHECK(got == c->before, "%s: a failed relocation changed the place", howto->name);
	CHECK(place[8] == 0xee, "%s: wrote past its field", howto->name);
}

static void test_room(void)
{
	const struct mod_howto *howto = mod_howto_for(&mod_arch_x86_64, R_X86_64_64);
	uint8_t place[8] = { 0 };
	const char *detail;
	struct mod_reloc_site site = { .S = 1, .loc = place, .room = 7 };
	CHECK(mod_reloc_apply(howto, &site, &detail) == -EINVAL, "64-bit field in 7 bytes");
}

static void test_unsupported_names(void)
{
	char buf[64];
	const char *why;
	const char *name = mod_reloc_name(&mod_arch_x86_64, R_X86_64_GOTTPOFF, buf, sizeof(buf), &why);
	CHECK(strcmp(name, "R_X86_64_GOTTPOFF") == 0 && why && strstr(why, "thread-local"),
	      "TLS relocation named %s (%s)", name, why ? why : "");
	CHECK(mod_howto_for(&mod_arch_x86_64, R_X86_64_GOTTPOFF) == NULL, "TLS has a howto");
	name = mod_reloc_name(&mod_arch_aarch64, 9999, buf, sizeof(buf), &why);
	CHECK(strstr(name, "9999") != NULL, "unknown type named %s", name);
	CHECK(mod_howto_for(&mod_arch_aarch64, 9999) == NULL, "type 9999 has a howto");
}

/* Which relocations limit where a module may lie, and by how much. */
static void test_reach_of_howtos(void)
{
	const struct mod_arch *x = &mod_arch_x86_64, *a = &mod_arch_aarch64;
	CHECK(mod_howto_reach(mod_howto_for(x, R_X86_64_PC32)) == 0x7fffffff, "PC32 reach");
	CHECK(mod_howto_reach(mod_howto_for(x, R_X86_64_PLT32)) == 0, "PLT32: a branch");
	CHECK(mod_howto_reach(mod_howto_for(x, R_X86_64_GOTPCREL)) == 0, "GOTPCREL: the GOT");
	CHECK(mod_howto_reach(mod_howto_for(x, R_X86_64_PC64)) == 0, "PC64 reaches anywhere");
	CHECK(mod_howto_reach(mod_howto_for(x, R_X86_64_64)) == 0, "64: absolute");
	CHECK(mod_howto_reach(mod_howto_for(a, R_AARCH64_ADR_PREL_PG_HI21)) ==
	      ((uint64_t)1 << 32) - 8192, "ADRP reach");
	CHECK(mod_howto_reach(mod_howto_for(a, R_AARCH64_ADR_PREL_LO21)) == (1u << 20) - 1,
	      "ADR reach");
	CHECK(mod_howto_reach(mod_howto_for(a, R_AARCH64_CALL26)) == 0, "CALL26: a branch");
	CHECK(mod_howto_reach(mod_howto_for(a, R_AARCH64_ADR_GOT_PAGE)) == 0, "GOT page");
}

/* The window: the intersection of what every target allows, and who set it. */
static void test_window(void)
{
	const uint64_t g = (uint64_t)1 << 30, reach = ((uint64_t)2 << 30) - 1;
	struct mod_window w;

	mod_window_init(&w, 0, UINT64_MAX);
	mod_window_narrow(&w, 0x7f0000000000, reach, 1);
	CHECK(w.lo == 0x7f0000000000 - reach && w.hi == 0x7f0000000000 + reach,
	      "one target: [%#llx, %#llx]", (unsigned long long)w.lo, (unsigned long long)w.hi);
	mod_window_narrow(&w, 0x7f0000000000 + 3 * g, reach, 2);
	CHECK(w.lo == 0x7f0000000000 + 3 * g - reach && w.hi == 0x7f0000000000 + reach,
	      "two targets 3 GiB apart: [%#llx, %#llx]", (unsigned long long)w.lo,
	      (unsigned long long)w.hi);
	CHECK(w.lo_by == 2 && w.hi_by == 1, "bounds set by %u and %u", w.lo_by, w.hi_by);
	CHECK(mod_window_holds(&w, g - 2) && !mod_window_holds(&w, g + 1),
	      "1 GiB of window left");
	mod_window_narrow(&w, 0x7f0000000000 + 5 * g, reach, 3);
	CHECK(!mod_window_holds(&w, 1) && w.lo_by == 3 && w.hi_by == 1,
	      "targets 5 GiB apart leave nothing");
	mod_window_init(&w, 0, UINT64_MAX);
	mod_window_narrow(&w, 0x1000, reach, 1);
	CHECK(w.lo == 0 && w.lo_by == 0 && w.hi == 0x1000 + reach, "saturates at 0");
	mod_window_narrow(&w, UINT64_MAX - 0x1000, reach, 2);
	CHECK(!mod_window_holds(&w, 1), "targets at both ends of the space");
}

/* lea sym(%rip) of a symbol out of reach becomes a load from its GOT entry;
 * a pointer load jumps to a stub; anything else is left alone. */
static void test_indirect_forms(void)
{
	const struct mod_arch *x = &mod_arch_x86_64;
	uint8_t lea[] = { 0x48, 0x8d, 0x05, 0, 0, 0, 0 };          /* lea 0(%rip), %rax */
	uint8_t lea32[] = { 0x90, 0x8d, 0x05, 0, 0, 0, 0 };        /* nop; lea 0(%rip), %eax */
	uint8_t cmp[] = { 0x48, 0x83, 0x3d, 0, 0, 0, 0, 0 };       /* cmpq $0, 0(%rip) */
	CHECK(x->indirect_form(lea, 3, R_X86_64_PC32, -4) == INDIRECT_GOT, "lea with REX.W");
	CHECK(x->indirect_form(lea, 3, R_X86_64_PC32, 0) == INDIRECT_NONE, "lea of sym+4");
	CHECK(x->indirect_form(lea, 3, R_X86_64_PLT32, -4) == INDIRECT_NONE, "not a PC32");
	CHECK(x->indirect_form(lea32, 3, R_X86_64_PC32, -4) == INDIRECT_NONE, "lea without REX.W");
	CHECK(x->indirect_form(cmp, 3, R_X86_64_PC32, -5) == INDIRECT_NONE, "cmp");
	CHECK(x->indirect_form(lea, 2, R_X86_64_PC32, -4) == INDIRECT_NONE, "too close to start");
	x->use_got_form(lea, 3);
	CHECK(lea[0] == 0x48 && lea[1] == 0x8b && lea[2] == 0x05, "mov 0(%%rip), %%rax: %02x %02x %02x",
	      lea[0], lea[1], lea[2]);

	/* mov 0(%rip), %r13 at 0x1000: its field at 0x1003, next instruction 0x1007. */
	uint8_t load[] = { 0x4c, 0x8b, 0x2d, 0, 0, 0, 0 };
	uint8_t stub[32];
	CHECK(x->indirect_form(load, 3, R_X86_64_PC32, -4) == INDIRECT_STUB, "pointer load");
	memset(stub, 0xcc, sizeof(stub));
	x->use_load_stub(load, 3, 0x1003, R_X86_64_PC32, 0x123456789a - 4, stub, 0x2000);
	static const uint8_t jump[] = { 0xe9, 0xfb, 0x0f, 0, 0, 0x66, 0x90 };   /* to 0x2000 */
	static const uint8_t expect[] = {
		0x49, 0xbd, 0x9a, 0x78, 0x56, 0x34, 0x12, 0, 0, 0,     /* movabs $..., %r13 */
		0x4d, 0x8b, 0x6d, 0x00,                               /* mov 0(%r13), %r13 */
		0xe9, 0xf4, 0xef, 0xff, 0xff,                         /* jmp 0x1007 */
		0xcc,
	};
	CHECK(memcmp(load, jump, sizeof(jump)) == 0, "instruction jumps to its stub");
	CHECK(memcmp(stub, expect, sizeof(expect)) == 0, "stub bytes");

	/* clang -fno-pic: mov 0, %rsp-relative SIB form, mov abs32, %rdi. */
	uint8_t abs[] = { 0x48, 0x8b, 0x3c, 0x25, 0, 0, 0, 0 };
	CHECK(x->indirect_form(abs, 4, R_X86_64_32S, 0) == INDIRECT_STUB, "absolute pointer load");
	x->use_load_stub(abs, 4, 0x1004, R_X86_64_32S, 0x7f0000001000, stub, 0x2000);
	static const uint8_t abs_jump[] = { 0xe9, 0xfb, 0x0f, 0, 0, 0x0f, 0x1f, 0x00 };
	static const uint8_t abs_stub[] = { 0x48, 0xbf, 0x00, 0x10, 0, 0, 0, 0x7f, 0, 0,
					    0x48, 0x8b, 0x3f, 0xe9 };
	CHECK(memcmp(abs, abs_jump, sizeof(abs_jump)) == 0, "absolute load jumps to its stub");
	CHECK(memcmp(stub, abs_stub, sizeof(abs_stub)) == 0, "absolute load's stub");
	CHECK(mod_arch_aarch64.indirect_form == NULL, "aarch64 has no such forms");
}

int main(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
	test_room();
	test_unsupported_names();
	test_reach_of_howtos();
	test_window();
	test_indirect_forms();
	if (failures)
		fprintf(stderr, "%d check(s) failed\n", failures);
	else
		printf("all %zu relocation cases passed\n", sizeof(cases) / sizeof(cases[0]));
	return failures ? 1 : 0;
}
