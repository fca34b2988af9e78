/*
 * hook_subjects.c - functions whose prologues the relocation tests move.
 * Built several times, by gcc and clang at -O0..-O3 and with endbr64
 * (SUBJECT_TAG names each build), without headers so that any compiler
 * of the target builds it.
 */
#include "hook_subjects.h"

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define NAME(fn) CAT(fn, SUBJECT_TAG)

static volatile long counter = 5;
static const long table[4] = { 10, 20, 30, 40 };

__attribute__((noinline)) static long helper(long a)
{
	__asm__ volatile("" ::: "memory"); /* not folded into its callers */
	return a ^ 0x55;
}

/* Frame setup and arithmetic. */
static long arith(long a)
{
	return a * 7 + 3;
}

/* A RIP-relative load first. */
static long global_load(long a)
{
	return counter + a;
}

static long table_load(long a)
{
	return table[a & 3] + a;
}

/* A tail call: a jump in the first bytes. */
static long tail(long a)
{
	return helper(a + 1);
}

/* A conditional branch in the first bytes. */
static long branch(long a)
{
	if (a == 0)
		return helper(5);
	return a * a + 2;
}

/* A call in the first bytes. */
static long call_first(long a)
{
	return helper(a) * 2 + 1;
}

static long loop(long a)
{
	long s = 0;
	for (long i = 0; i < a; i++)
		s += i * i;
	return s;
}

static long constant(long a)
{
	(void)a;
	return 42;
}

/* Too short to hook once optimised (mov + ret). */
static long identity(long a)
{
	return a;
}

const struct hook_subject NAME(hook_subjects)[] = {
	{ "arith", arith, 0 },
	{ "global_load", global_load, 0 },
	{ "table_load", table_load, 0 },
	{ "tail", tail, 0 },
	{ "branch", branch, 0 },
	{ "call_first", call_first, 0 },
	{ "loop", loop, 0 },
	{ "constant", constant, HOOK_SUBJECT_MAY_BE_SHORT },
	{ "identity", identity, HOOK_SUBJECT_MAY_BE_SHORT },
	{ 0, 0, 0 },
};
