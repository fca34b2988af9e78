/* Archive member that nothing needs; it needs a symbol that nothing
 * defines, so linking it fails. */
int sel_symbol_nobody_defines(int x);

int sel_broken(int x)
{
	return sel_symbol_nobody_defines(x);
}
