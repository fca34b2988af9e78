/*
 * emit.h - the small code generator of the `execmem` command.
 *
 * Every program it makes is a function `uint32_t f(void)` whose result
 * depends on the program's index, padded with real arithmetic (not NOPs
 * alone) to an exact requested size, so that a program that was copied
 * wrongly, partially or to the wrong place returns a wrong value.
 */
#ifndef EXECMEM_TOOLS_EMIT_H
#define EXECMEM_TOOLS_EMIT_H

#include <stddef.h>
#include <stdint.h>

typedef uint32_t (*program_fn)(void);

/* Smallest program the emitter can make (load a value and return). */
size_t emit_min_size(void);

/* Size granule of instructions (1 on x86-64, 4 on aarch64 and riscv64). */
size_t emit_granule(void);

/*
 * Write into buf a program of exactly emit_fit_size(size) bytes that returns
 * a value derived from index, and return that value in *expected.
 * Returns the number of bytes written.
 */
size_t emit_program(uint8_t *buf, size_t size, uint64_t index, uint32_t *expected);

/* size clamped to at least emit_min_size() and rounded down to the granule. */
size_t emit_fit_size(size_t size);

/*
 * Sizes of programs as real JIT users produce them: half under 500 B, a
 * quarter from 500 B to 2 KiB, a quarter from 2 KiB to 16 KiB.
 * Deterministic for a given *state.
 */
size_t size_mix_next(uint64_t *state);

/* A fast deterministic pseudo-random generator (splitmix64). */
uint64_t prng_next(uint64_t *state);

/*
 * A set of ready-made program images, generated once so that the timed
 * loops of the benchmark measure memory handling, not code generation.
 */
struct program_set {
	size_t count;
	uint8_t *bytes;         /* all images, one after the other */
	size_t *offset;         /* where image i starts in bytes */
	size_t *size;           /* its size */
	uint32_t *expected;     /* what it returns */
	size_t total_bytes;     /* sum of sizes */
	size_t max_size;
};

/* Programs of the size mix (fixed_size == 0) or all of fixed_size bytes.
 * Returns 0 or -ENOMEM. */
int program_set_make(struct program_set *set, size_t count, size_t fixed_size, uint64_t seed);
void program_set_free(struct program_set *set);

#endif
