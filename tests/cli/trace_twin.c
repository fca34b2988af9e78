/* trace_twin.c - a second local function named twin, for test_trace_symbols.c. */
int (*trace_twin_here(void))(void);

__attribute__((noinline)) static int twin(void)
{
	return 2;
}

int (*trace_twin_here(void))(void)
{
	return twin;
}
