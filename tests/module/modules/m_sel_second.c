/* Archive member of a second archive: needs sel_third, in the first archive
 * again, so the archives are searched twice. */
int sel_third(int x);

int sel_second(int x)
{
	return sel_third(x) * 10;
}
