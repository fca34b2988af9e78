/* Archive member a: calls member b. */
int arch_b(int x);
int arch_common_counter;   /* COMMON with -fcommon */

int arch_a(int x)
{
	arch_common_counter++;
	return arch_b(x) * 2;
}
