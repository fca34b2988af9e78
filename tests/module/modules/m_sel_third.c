/* Archive member: the end of the chain. */
int sel_third(int x)
{
	return x + 3;
}
