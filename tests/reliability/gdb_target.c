/*
 * gdb_target.c - a program for gdb to stop in: it puts "return 42" in JIT
 * code of the default arena, leaves its address in jit_code, calls
 * code_ready() (where gdb sets its breakpoint on *jit_code), runs the code
 * and prints the mode its arena chose and why.
 */
#include <stdio.h>

#include "rtest.h"

void *volatile jit_code;

__attribute__((noinline)) void code_ready(void);
__attribute__((noinline)) void code_ready(void)
{
	__asm__ volatile("" ::: "memory");
}

int main(void)
{
	jit_code = rt_new_program(NULL, 64, 42);
	if (!jit_code)
		return 1;
	code_ready();
	printf("returned %u\n", rt_call(jit_code));
	struct execmem_stats st;
	execmem_stats(&st);
	printf("mode %s (%s)\n", execmem_mode_name(st.mode), execmem_mode_reason_name(st.mode_reason));
	return 0;
}
