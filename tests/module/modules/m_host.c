/* Module: calls back into the host program (and reads its data when PIC). */
int host_add(int a, int b);
extern int host_value;

int call_host(int x)
{
#ifdef __PIC__
	return host_add(x, 1) + host_value;
#else
	return host_add(x, 1) + 100;   /* -fno-pic data references cannot reach the host */
#endif
}

/* The address of a host function taken by the module. */
void *host_fn_address(void)
{
	return (void *)host_add;
}
