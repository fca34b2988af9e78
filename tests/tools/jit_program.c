/*
 * jit_program.c - named JIT code for the tests under the real tools:
 *   crash  runs a function that traps (ud2 after a frame prologue), for a
 *          debugger's backtrace;
 *   pack   the same, with a second function in the same allocation before
 *          it (which runs first and returns);
 *   spin   spends about a third of a second in a named loop, for a profiler;
 *   unwind a C function that traps is called from named JIT code without a
 *          frame pointer whose call frame information is registered.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "execmem.h"
#include "jit_unwind.h"

/* push %rbp; mov %rsp,%rbp; ud2 */
static const uint8_t trapping[] = { 0x55, 0x48, 0x89, 0xe5, 0x0f, 0x0b };
/* mov $7,%eax; ret */
static const uint8_t returning[] = { 0xb8, 7, 0, 0, 0, 0xc3 };
/* mov $50000000,%ecx; 1: dec %ecx; jnz 1b; xor %eax,%eax; ret */
static const uint8_t spinning[] = { 0xb9, 0x80, 0xf0, 0xfa, 0x02, 0xff, 0xc9,
				    0x75, 0xfc, 0x31, 0xc0, 0xc3 };

static __attribute__((noinline)) int call_jit(void *code)
{
	int (*fn)(void) = (int (*)(void))(uintptr_t)code;
	return fn() + 1;
}

static void *load(uint8_t *at, const uint8_t *bytes, size_t len, const char *name)
{
	if (execmem_write(at, bytes, len) || execmem_set_name(at, len, name))
		return NULL;
	return at;
}

static uint8_t eh_frame[FRAMED_CALL_EH_FRAME_SIZE];

static __attribute__((noinline)) void trap_in_c(void)
{
	__builtin_trap();
}

static int run_unwind(uint8_t *code)
{
	if (!load(code, framed_call, sizeof framed_call, "jit_middle"))
		return 2;
	framed_call_eh_frame(eh_frame, code);
	if (execmem_set_unwind(code, sizeof framed_call, eh_frame, sizeof eh_frame))
		return 2;
	void (*fn)(void (*)(void)) = (void (*)(void (*)(void)))(uintptr_t)code;
	fn(trap_in_c);
	return 0;
}

int main(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "crash";
	uint8_t *code = execmem_alloc(EXECMEM_CODE, 256);
	if (!code)
		return 2;
	if (strcmp(what, "spin") == 0) {
		if (!load(code, spinning, sizeof spinning, "jit_spinner"))
			return 2;
		for (int i = 0; i < 8; i++)
			call_jit(code);
		printf("%d\n", (int)getpid()); /* whose perf map to remove */
		return 0;
	}
	if (strcmp(what, "unwind") == 0)
		return run_unwind(code);
	int pack = strcmp(what, "pack") == 0;
	uint8_t *crasher = load(pack ? code + 64 : code, trapping, sizeof trapping, "jit_crasher");
	if (!crasher || (pack && (!load(code, returning, sizeof returning, "jit_returner") ||
				  call_jit(code) != 8)))
		return 3;
	printf("%d\n", call_jit(crasher));
	return 0;
}
