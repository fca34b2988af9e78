/* Module: the object of the member selection tests; what it calls comes
 * from archives. */
int sel_used(int x);
int sel_optional(void) __attribute__((weak));

int sel_main(int x)
{
	return sel_used(x) + (sel_optional ? 1000000 : 0);
}
