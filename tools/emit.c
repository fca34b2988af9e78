/*
 * emit.c - a tiny emitter for x86-64, aarch64 and riscv64.
 *
 * A program loads a 32-bit value derived from its index, adds a series of
 * small index-dependent constants (as many as its size calls for) and
 * returns.  The expected result is computed alongside, so the caller can
 * check every program it runs.
 */
#include "emit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint32_t start_value(uint64_t index)
{
	return (uint32_t)(index * 0x9E3779B1u + 0x12345u);
}

/* Kept within 11 bits so that every architecture encodes it as an
 * immediate (riscv64's addiw takes a signed 12-bit one). */
static uint32_t addend(uint64_t index, size_t step)
{
	return (uint32_t)(((index * 2654435761u) >> 7) ^ (step * 40503u)) & 0x7ffu;
}

#if defined(__x86_64__)

enum { LOAD_SIZE = 5, ADD_SIZE = 5, RET_SIZE = 1, GRANULE = 1 };

static void put_u32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v)); /* x86-64 is little-endian, like its immediates */
}

static size_t emit_load(uint8_t *p, uint32_t value)
{
	p[0] = 0xB8; /* mov eax, imm32 */
	put_u32(p + 1, value);
	return LOAD_SIZE;
}

static size_t emit_add(uint8_t *p, uint32_t value)
{
	p[0] = 0x05; /* add eax, imm32 */
	put_u32(p + 1, value);
	return ADD_SIZE;
}

static size_t emit_ret(uint8_t *p)
{
	p[0] = 0xC3;
	return RET_SIZE;
}

/* Bytes left over by a size that is not a multiple of ADD_SIZE. */
static size_t emit_filler(uint8_t *p, size_t len)
{
	memset(p, 0x90, len); /* nop */
	return len;
}

#elif defined(__aarch64__)

enum { LOAD_SIZE = 8, ADD_SIZE = 4, RET_SIZE = 4, GRANULE = 4 };

static void put_insn(uint8_t *p, uint32_t insn)
{
	memcpy(p, &insn, sizeof(insn)); /* instructions are little-endian */
}

static size_t emit_load(uint8_t *p, uint32_t value)
{
	put_insn(p, 0x52800000u | ((value & 0xffffu) << 5));     /* movz w0, #lo */
	put_insn(p + 4, 0x72A00000u | ((value >> 16) << 5));     /* movk w0, #hi, lsl #16 */
	return LOAD_SIZE;
}

static size_t emit_add(uint8_t *p, uint32_t value)
{
	put_insn(p, 0x11000000u | (value << 10));                /* add w0, w0, #imm12 */
	return ADD_SIZE;
}

static size_t emit_ret(uint8_t *p)
{
	put_insn(p, 0xD65F03C0u);                                /* ret */
	return RET_SIZE;
}

static size_t emit_filler(uint8_t *p, size_t len)
{
	(void)p;
	(void)len; /* sizes are whole instructions: nothing is left over */
	return 0;
}

#elif defined(__riscv) && __riscv_xlen == 64

enum { LOAD_SIZE = 8, ADD_SIZE = 4, RET_SIZE = 4, GRANULE = 4 };
enum { REG_A0 = 10 };

static void put_insn(uint8_t *p, uint32_t insn)
{
	memcpy(p, &insn, sizeof(insn));
}

static uint32_t addiw_a0(uint32_t imm12)
{
	return ((imm12 & 0xfffu) << 20) | (REG_A0 << 15) | (REG_A0 << 7) | 0x1Bu;
}

static size_t emit_load(uint8_t *p, uint32_t value)
{
	/* lui takes the upper 20 bits; addiw adds the sign-extended lower 12,
	 * so the upper part is rounded to compensate for a negative one. */
	int32_t low = (int32_t)(value << 20) >> 20;
	uint32_t high = (value - (uint32_t)low) >> 12;

	put_insn(p, (high << 12) | (REG_A0 << 7) | 0x37u);       /* lui a0, high */
	put_insn(p + 4, addiw_a0((uint32_t)low));                /* addiw a0, a0, low */
	return LOAD_SIZE;
}

static size_t emit_add(uint8_t *p, uint32_t value)
{
	put_insn(p, addiw_a0(value));                            /* addiw a0, a0, imm */
	return ADD_SIZE;
}

static size_t emit_ret(uint8_t *p)
{
	put_insn(p, 0x00008067u);                                /* jalr x0, 0(ra) */
	return RET_SIZE;
}

static size_t emit_filler(uint8_t *p, size_t len)
{
	(void)p;
	(void)len;
	return 0;
}

#else
#error "the execmem command's emitter supports x86-64, aarch64 and riscv64"
#endif

size_t emit_min_size(void)
{
	return LOAD_SIZE + RET_SIZE;
}

size_t emit_granule(void)
{
	return GRANULE;
}

size_t emit_fit_size(size_t size)
{
	size -= size % GRANULE;
	return size < emit_min_size() ? emit_min_size() : size;
}

size_t emit_program(uint8_t *buf, size_t size, uint64_t index, uint32_t *expected)
{
	size = emit_fit_size(size);
	size_t body = size - LOAD_SIZE - RET_SIZE;
	size_t adds = body / ADD_SIZE;
	uint32_t value = start_value(index);
	uint8_t *p = buf;

	p += emit_load(p, value);
	for (size_t step = 0; step < adds; step++) {
		uint32_t k = addend(index, step);
		p += emit_add(p, k);
		value += k;
	}
	p += emit_filler(p, body - adds * ADD_SIZE);
	p += emit_ret(p);
	*expected = value;
	return (size_t)(p - buf);
}

uint64_t prng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static size_t uniform_in(uint64_t *state, size_t lo, size_t hi_inclusive)
{
	return lo + (size_t)(prng_next(state) % (hi_inclusive - lo + 1));
}

size_t size_mix_next(uint64_t *state)
{
	switch (prng_next(state) % 4) {
	case 0:
	case 1:
		return emit_fit_size(uniform_in(state, 16, 499));
	case 2:
		return emit_fit_size(uniform_in(state, 500, 2047));
	default:
		return emit_fit_size(uniform_in(state, 2048, 16384));
	}
}

void program_set_free(struct program_set *set)
{
	free(set->bytes);
	free(set->offset);
	free(set->size);
	free(set->expected);
	memset(set, 0, sizeof(*set));
}

int program_set_make(struct program_set *set, size_t count, size_t fixed_size, uint64_t seed)
{
	uint64_t state = seed;

	memset(set, 0, sizeof(*set));
	set->count = count;
	set->offset = calloc(count ? count : 1, sizeof(*set->offset));
	set->size = calloc(count ? count : 1, sizeof(*set->size));
	set->expected = calloc(count ? count : 1, sizeof(*set->expected));
	if (!set->offset || !set->size || !set->expected)
		goto nomem;
	for (size_t i = 0; i < count; i++) {
		set->size[i] = fixed_size ? emit_fit_size(fixed_size) : size_mix_next(&state);
		set->offset[i] = set->total_bytes;
		set->total_bytes += set->size[i];
		if (set->size[i] > set->max_size)
			set->max_size = set->size[i];
	}
	set->bytes = malloc(set->total_bytes ? set->total_bytes : 1);
	if (!set->bytes)
		goto nomem;
	for (size_t i = 0; i < count; i++)
		emit_program(set->bytes + set->offset[i], set->size[i], seed + i, &set->expected[i]);
	return 0;
nomem:
	program_set_free(set);
	return -ENOMEM;
}
