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
