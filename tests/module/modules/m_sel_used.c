/* Archive member: needed by m_sel_main.c; needs sel_second from another archive. */
int sel_second(int x);

int sel_used(int x)
{
	return sel_second(x) + 1;
}
