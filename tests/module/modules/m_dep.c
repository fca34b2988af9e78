/* Built as a shared library libexecmem_test_dep.so for `execmem load -l`. */
int dep_value(int x)
{
	return x * 3 + 1;
}
