/* Module: thread-local storage, which the loader rejects. */
__thread int per_thread = 5;

int tls_get(void)
{
	return per_thread;
}
