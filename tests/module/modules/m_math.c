/* Module using libm; built natively too (MATH_MAIN) for comparison. */
#include <math.h>
#include <stdio.h>

long math_value(long x)
{
	return (long)(sqrt((double)x) * 1e6) + (long)(cos((double)x / 7) * 1e6);
}

#ifdef MATH_MAIN
int main(void)
{
	printf("math_value(2) = %ld\n", math_value(2));
	return 0;
}
#endif
