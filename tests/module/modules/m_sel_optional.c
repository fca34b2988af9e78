/* Archive member that only a weak reference names: not linked. */
int sel_optional(void)
{
	return 1;
}
