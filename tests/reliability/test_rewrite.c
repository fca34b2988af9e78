/*
 * test_rewrite.c - code that is run, rewritten and run again returns what
 * was written last, whatever put it there: execmem_write(), a write
 * window, execmem_invalidate() followed by a write, or a free and a new
 * allocation at the same address.  Natively this is what every JIT does;
 * the test exists to be run under valgrind (tests/reliability/
 * CMakeLists.txt), which translates code once and runs its translation
 * until told the bytes changed.
 */
#include <string.h>

#include "rtest.h"

enum { PROGRAM_SIZE = 64, ROUNDS = 3 };

static enum execmem_mode mode;

/* Runs the program a few times, so that a translation of it exists. */
static void check_returns(const void *code, uint32_t value, const char *after)
{
	for (int i = 0; i < ROUNDS; i++)
		RT_CHECK(rt_program_returns(mode, code, value), "after %s: does not return %u", after,
			 value);
}

static void rewrite_in_place(void)
{
	void *code = rt_new_program(NULL, PROGRAM_SIZE, 1);
	RT_CHECK(code, "no program");
	if (!code)
		return;
	check_returns(code, 1, "the first write");
	RT_CHECK(rt_write_program(code, 2), "execmem_write refused");
	check_returns(code, 2, "execmem_write");

	uint8_t program[RT_PROGRAM_MAX];
	size_t len = rt_emit_return(program, 3);
	void *window = execmem_write_begin(code);
	RT_CHECK(window, "no write window");
	if (window) {
		memcpy(window, program, len);
		RT_CHECK(execmem_write_end(code) == 0, "window not closed");
		check_returns(code, 3, "a write window");
	}

	RT_CHECK(execmem_invalidate(code, PROGRAM_SIZE) == 0, "invalidate refused");
	RT_CHECK(rt_is_trap_filled(code, PROGRAM_SIZE), "invalidated code is not traps");
	RT_CHECK(rt_write_program(code, 4), "write after invalidate refused");
	check_returns(code, 4, "invalidate and write");
	RT_CHECK(execmem_free(code) == 0, "free refused");
}

/* A freed program's address handed out again runs the new program. */
static void reuse_after_free(void)
{
	void *first = rt_new_program(NULL, PROGRAM_SIZE, 5);
	RT_CHECK(first, "no program");
	if (!first)
		return;
	check_returns(first, 5, "the first write");
	RT_CHECK(execmem_free(first) == 0, "free refused");
	void *again = rt_new_program(NULL, PROGRAM_SIZE, 6);
	RT_CHECK(again == first, "the freed address %p was not reused (got %p)", first, again);
	if (again)
		check_returns(again, 6, "free and reallocation");
	RT_CHECK(execmem_free(again) == 0, "free refused");
}

int main(void)
{
	mode = rt_mode_under_test();
	rewrite_in_place();
	reuse_after_free();
	return rt_finish("rewrite");
}
