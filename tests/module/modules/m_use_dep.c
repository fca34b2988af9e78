/* Module: calls a shared library given with -l; its constructor prints,
 * which shows whether it ran. */
#include <stdio.h>

int dep_value(int x);
int use_dep_data = 5;

__attribute__((constructor)) static void announce(void)
{
	puts("use_dep constructor ran");
}

long use_dep(long x)
{
	return dep_value((int)x) + use_dep_data;
}
