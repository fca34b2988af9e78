/* m_loads.c - a variable of the C library that the test program does not
 * use (so it is not copied next to the program): PIE code built by gcc
 * loads it with `mov optarg(%rip), %rax` and takes its address with
 * `lea optarg(%rip), %rax`, both PC-relative.  Out of reach, the first goes
 * through a load stub, the second becomes a load from a GOT entry. */
extern char *optarg;

char *loads_value(void);
char **loads_address(void);

char *loads_value(void)
{
	return optarg;
}

char **loads_address(void)
{
	return &optarg;
}
