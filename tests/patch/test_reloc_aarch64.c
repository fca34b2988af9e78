/*
 * test_reloc_aarch64.c - each PC-relative form the aarch64 relocator
 * rewrites, on hand-made code run from execmem, with the trampoline near
 * the code (fields re-aimed) and more than 4 GiB away (longer forms); and
 * each refusal with its reason.
 */
#include "reloc_test.h"

#include <errno.h>
#include <string.h>

#define RET 0xd65f03c0u
#define NOP 0xd503201fu
#define MOV_X0(imm) (0xd2800000u | ((uint32_t)(imm) << 5))

static void *return_address_seen;
static volatile long adrp_data = 5150;

__attribute__((noinline)) static long record_caller(long a)
{
	return_address_seen = __builtin_return_address(0);
	return a + 40;
}

__attribute__((noinline)) static long seventy_seven(long a)
{
	return a + 77;
}

/* Within BL's reach of the test's functions. */
static uint8_t *place_code(const uint32_t *words, size_t n)
{
	uint8_t *code = execmem_alloc_near(EXECMEM_CODE, 64, (void *)record_caller, 64 << 20);
	RT_CHECK(code != NULL, "no code near the test: %s", execmem_last_error());
	if (code)
		RT_CHECK(execmem_write(code, words, n * 4) == 0, "%s", execmem_last_error());
	return code;
}

static uint32_t branch26(uint32_t op, const void *from, const void *to)
{
	return op | (uint32_t)((((intptr_t)to - (intptr_t)from) >> 2) & 0x3ffffff);
}

/* Relocates need bytes of code into a trampoline near it or > 4 GiB away. */
static struct moved move(const uint8_t *code, size_t need, enum placement where)
{
	return move_window(code, 64, need, where);
}

static long call_long(const struct moved *m, long arg)
{
	return ((long (*)(long))(uintptr_t)m->tramp)(arg);
}

/* Code taking one of two ways: each input and the result it must give. */
struct two_way {
	const char *what;
	uint32_t words[8];
	size_t n, need;
	long in0, out0, in1, out1;
};

static const struct two_way two_ways[] = {
	{ "cbz", { 0xb4000060, MOV_X0(1), RET, MOV_X0(2), RET }, 5, 4, 0, 2, 9, 1 },
	{ "tbz", { 0x36000060, MOV_X0(1), RET, MOV_X0(2), RET }, 5, 4, 4, 2, 3, 1 },
	/* cmp x0, #5; b.eq +12 */
	{ "b.eq", { 0xf100141f, 0x54000060, MOV_X0(1), RET, MOV_X0(2), RET }, 6, 8, 5, 2, 6, 1 },
	/* adr x0, +16; ldr x0, [x0]; ret; nop; .quad 1234 */
	{ "adr", { 0x10000080, 0xf9400000, RET, NOP, 1234, 0 }, 6, 4, 0, 1234, 1, 1234 },
	/* ldr x0, +8; ret; .quad */
	{ "ldr x", { 0x58000040, RET, 0x55667788, 0x11223344 }, 4, 4, 0, 0x1122334455667788, 0,
	  0x1122334455667788 },
	{ "ldr w", { 0x18000040, RET, 0x85667788, 0x11223344 }, 4, 4, 0, 0x85667788, 0, 0x85667788 },
	{ "ldrsw", { 0x98000040, RET, 0x85667788, 0x11223344 }, 4, 4, 0, (long)(int32_t)0x85667788,
	  0, (long)(int32_t)0x85667788 },
	/* prfm pldl1keep, +8; mov x0, #7; ret */
	{ "prfm", { 0xd8000040, MOV_X0(7), RET }, 3, 4, 0, 7, 1, 7 },
};

static void test_two_ways(enum placement where)
{
	for (size_t i = 0; i < sizeof two_ways / sizeof two_ways[0]; i++) {
		const struct two_way *t = &two_ways[i];
		uint8_t *code = place_code(t->words, t->n);
		struct moved m = move(code, t->need, where);
		RT_CHECK(m.rc == 0, "%s: %s", t->what, execmem_last_error());
		if (m.rc == 0) {
			long got0 = call_long(&m, t->in0), got1 = call_long(&m, t->in1);
			RT_CHECK(got0 == t->out0 && got1 == t->out1,
				 "%s %s: %ld %ld, expected %ld %ld", where == NEAR ? "near" : "far",
				 t->what, got0, got1, t->out0, t->out1);
		}
		execmem_free(m.tramp);
		execmem_free(code);
	}
}

/* adrp x0, page; ldr x0, [x0, #lo12]; ret */
static void test_adrp(enum placement where)
{
	uint32_t words[3] = { 0, 0xf9400000, RET };
	uint8_t *code = place_code(words, 3);
	uintptr_t data = (uintptr_t)&adrp_data;
	int64_t pages = (int64_t)(data >> 12) - (int64_t)((uintptr_t)code >> 12);
	words[0] = 0x90000000 | ((uint32_t)(pages & 3) << 29) | ((uint32_t)((pages >> 2) & 0x7ffff) << 5);
	words[1] |= (uint32_t)((data & 0xfff) / 8) << 10;
	execmem_write(code, words, sizeof words);
	struct moved m = move(code, 4, where);
	RT_CHECK(m.rc == 0, "adrp: %s", execmem_last_error());
	if (m.rc == 0)
		RT_CHECK(call_long(&m, 0) == 5150, "%s adrp", where == NEAR ? "near" : "far");
	execmem_free(m.tramp);
	execmem_free(code);
}

/* stp x29, x30, [sp, #-16]!; bl record_caller; ldp x29, x30, [sp], #16;
 * add x0, x0, #1; ret: the callee sees the original code as its return. */
static void test_bl(enum placement where)
{
	uint32_t words[5] = { 0xa9bf7bfd, 0, 0xa8c17bfd, 0x91000400, RET };
	uint8_t *code = place_code(words, 5);
	words[1] = branch26(0x94000000, code + 4, (void *)record_caller);
	execmem_write(code, words, sizeof words);
	struct moved m = move(code, 8, where);
	RT_CHECK(m.rc == 0, "bl: %s", execmem_last_error());
	if (m.rc == 0) {
		return_address_seen = NULL;
		RT_CHECK(call_long(&m, 1) == 42, "bl moved");
		RT_CHECK(return_address_seen == code + 8, "return address %p, expected %p",
			 return_address_seen, (void *)(code + 8));
	}
	execmem_free(m.tramp);
	execmem_free(code);
}

/* b seventy_seven: a function that starts with a jump */
static void test_b_first(enum placement where)
{
	uint32_t words[2] = { 0, 0xd4200000 };
	uint8_t *code = place_code(words, 2);
	words[0] = branch26(0x14000000, code, (void *)seventy_seven);
	execmem_write(code, words, sizeof words);
	struct moved m = move(code, 4, where);
	RT_CHECK(m.rc == 0, "b: %s", execmem_last_error());
	if (m.rc == 0)
		RT_CHECK(call_long(&m, 1) == 78, "b moved");
	execmem_free(m.tramp);
	execmem_free(code);
}

struct refusal {
	const char *what;
	uint32_t words[4];
	size_t need;
	uintptr_t tramp;
	int rc;
	const char *reason;
};

static const struct refusal refusals[] = {
	{ "ret then padding", { RET, 0 }, 8, 0x500000, -ENOEXEC, "too short" },
	{ "trap first", { 0xd4200000, RET }, 4, 0x500000, -ENOEXEC, "is a trap" },
	/* subs x0, x0, #1; b.ne -4 */
	{ "loop into the window", { 0xf1000400, 0x54ffffe1, RET }, 8, 0x500000, -ENOEXEC,
	  "branches back" },
	{ "bl before the end", { 0x94000010, NOP, RET }, 8, 0x500000, -ENOEXEC,
	  "return into the patched bytes" },
	{ "blr", { 0xd63f0020, RET }, 4, 0x500000, -ENOEXEC, "indirect call" },
	{ "far simd literal", { 0x5c000040, RET }, 4, 0x400000 + 16 * GiB, -ERANGE, "SIMD" },
	{ "6-byte jump", { NOP, NOP, RET }, 6, 0x500000, -EINVAL, "not supported" },
};

static void test_refusals(void)
{
	for (size_t i = 0; i < sizeof refusals / sizeof refusals[0]; i++) {
		const struct refusal *r = &refusals[i];
		uint8_t out[EM_RELOC_MAX_OUT];
		struct em_reloc_result res;
		int rc = em_reloc_window((const uint8_t *)r->words, sizeof r->words, 0x400000,
					 r->need, r->tramp, out, sizeof out, &res);
		RT_CHECK(rc == r->rc, "%s: %d, expected %d", r->what, rc, r->rc);
		RT_CHECK(strstr(execmem_last_error(), r->reason) != NULL, "%s: \"%s\"", r->what,
			 execmem_last_error());
		printf("refused %-24s %s\n", r->what, execmem_last_error());
	}
}

/* The entry jump's three forms and their lengths. */
static void test_jump_forms(void)
{
	uint8_t out[EM_RELOC_MAX_JUMP];
	uint32_t w;
	RT_CHECK(em_reloc_jump(0x400000, 0x400000 + 64 * 1024 * 1024, out) == 4, "b");
	memcpy(&w, out, 4);
	RT_CHECK(w == 0x14000000u + (64 * 1024 * 1024 / 4), "b encoding %08x", w);
	RT_CHECK(em_reloc_jump(0x400000, 0x400000 + 2 * GiB, out) == 8, "adrp + br x16");
	RT_CHECK(em_reloc_jump(0x400000, 0x400010 + 2 * GiB, out) == 16, "ldr x17 + br x17");
	RT_CHECK(em_reloc_jump(0x400000, 0x400000 + 8 * GiB, out) == 16, "ldr x17 beyond adrp");
}

int main(void)
{
	for (enum placement where = NEAR; where <= FAR; where++) {
		test_two_ways(where);
		test_adrp(where);
		test_bl(where);
		test_b_first(where);
	}
	test_refusals();
	test_jump_forms();
	return rt_finish("test_reloc_aarch64");
}
