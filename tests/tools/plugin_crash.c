/* plugin_crash.c - a module built without frame pointers whose g() traps
 * under f(): gdb's backtrace needs the module's call frame information. */
__attribute__((noinline)) static int g(int x)
{
	volatile int a[16];
	for (int i = 0; i < 16; i++)
		a[i] = x + i;
	if (a[3] == 4)
		__builtin_trap();
	return a[5];
}

int f(int x)
{
	volatile int b[8];
	b[1] = g(x);
	return b[1] + 1;
}

/* A COMDAT group holding a relocation section, as C++ inline functions and
 * templates have: the debugger's copy of the object must stay an object
 * gdb reads, or the backtrace above loses its frames' names and lines. */
#if defined(__x86_64__)
__asm__(".section .text.plugin_crash_grouped,\"axG\",@progbits,plugin_crash_grouped,comdat\n"
	".globl plugin_crash_grouped\n"
	".type plugin_crash_grouped, @function\n"
	"plugin_crash_grouped:\n"
	"\tjmp f\n"
	".size plugin_crash_grouped, .-plugin_crash_grouped\n"
	".previous\n");
#endif
