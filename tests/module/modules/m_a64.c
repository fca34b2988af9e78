/* aarch64 module, relocated without running (link-only) on any host: the
 * test decodes the relocated instructions. */
#include <stdlib.h>
int a64_data[4] = { 1, 2, 3, 4 };
int *a64_ptrs[] = { &a64_data[0], &a64_data[2] };

__attribute__((noinline)) int a64_callee(int x)
{
	return x + a64_data[1];
}

__attribute__((noinline)) int a64_caller(int x)
{
	return a64_callee(x) + abs(x);
}

int *a64_data_address(void)
{
	return &a64_data[0];
}
